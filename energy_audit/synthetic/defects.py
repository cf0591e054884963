"""Defects of the yearly returns: a registry of kinds, each injected by one small function.

Every kind is a :class:`Defect` of the registry :data:`DEFECTS`, in injection order: its
description, whether only the statistical stage can find it, its default rate, the rule ids of
the library expected to find it (``docs/rules.md``), and the function that injects it. The
injector (:class:`_Injector`) keeps the grid of true values of every institution and year,
chooses rows for each kind (a row carries at most one defect), changes the values and records
each change as one row of the truth table (:data:`TRUTH_SCHEMA`).

:data:`DEFECT_KINDS`, :data:`STATISTICAL_DEFECT_KINDS` and :data:`DEFAULT_DEFECT_RATES` are
views of the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl

from energy_audit.synthetic.columns import (
    _COSTS,
    _HEAT_BILLING,
    _PRICED_ITEMS,
    _QUANTITIES,
    _VALUE_COLUMNS,
)
from energy_audit.synthetic.directory import _index_of
from energy_audit.synthetic.institutions import _Institutions
from energy_audit.synthetic.noise import _not_round
from energy_audit.synthetic.parameters import _REGION_NAME
from energy_audit.synthetic.totals import _OwnTotals

__all__ = [
    "DEFAULT_DEFECT_RATES",
    "DEFECTS",
    "DEFECT_KINDS",
    "STATISTICAL_DEFECT_KINDS",
    "TRUTH_SCHEMA",
    "Defect",
]

#: Columns of the truth table.
TRUTH_SCHEMA: Final[Mapping[str, pl.DataType]] = MappingProxyType(
    {
        "institution_id": pl.String(),
        "year": pl.Int64(),
        "defect": pl.String(),
        "field": pl.String(),
        "true_value": pl.Float64(),
        "reported_value": pl.Float64(),
        "factor": pl.Float64(),
        "true_text": pl.String(),
        "reported_text": pl.String(),
        "related_id": pl.String(),
        "source_file": pl.String(),
        "source_row": pl.Int64(),
        "recoverable": pl.Boolean(),
        "detail": pl.String(),
    }
)


class _Injector:
    """Injects defects into the true grid and records each one in the truth table.

    The grid holds one row per institution and year, institution-major (the row before a row is
    the institution's previous year). ``used`` marks rows that carry a defect (or are the clean
    previous year a year-on-year defect is measured against), so that each defect stays one
    truth row; ``keep`` marks the rows that become returns. ``values`` holds the returns
    columns and ``_inst`` (institution of each row), ``_yi`` (year index) and
    ``_building_changed`` (a real building change that year, ``mixture`` family).
    """

    def __init__(
        self,
        values: dict[str, npt.NDArray],
        inst: _Institutions,
        years: npt.NDArray[np.int64],
        rates: Mapping[str, float],
        rng: np.random.Generator,
        own_totals: _OwnTotals,
    ) -> None:
        self.v = values
        self.own_totals = own_totals
        self.inst = inst
        self.years = years
        self.rates = rates
        self.rng = rng
        self.i = values["_inst"]
        self.yi = values["_yi"]
        self.status = inst.status[self.i]
        self.scope = self.status == "active"
        self.used = np.zeros(self.scope.size, dtype=bool)
        self.n_scope = int(self.scope.sum())
        self.keep = self.scope.copy()
        self.name_rows = np.zeros(0, dtype=np.int64)
        self.name_texts = pl.Series([], dtype=pl.String)
        self.extra: list[tuple[npt.NDArray[np.int64], dict[str, npt.NDArray]]] = []
        self.truth: list[pl.DataFrame] = []

    # ---- bookkeeping ------------------------------------------------------------------------

    def run(self) -> None:
        """Inject every kind of :data:`DEFECTS` whose rate is positive, in registry order."""
        for defect in DEFECTS.values():
            if defect.inject is not None:
                defect.inject(self, defect.kind)

    def count(self, kind: str) -> int:
        """Rows a kind asks for: its rate × the in-scope rows, at least one when positive."""
        rate = self.rates.get(kind, 0.0)
        return 0 if rate <= 0 else max(1, round(rate * self.n_scope))

    def pick(
        self, kind: str, eligible: npt.NDArray[np.bool_], *, yoy: bool = False
    ) -> npt.NDArray[np.int64]:
        """Choose rows for a defect among eligible unused rows, and mark them used.

        With ``yoy`` the rows have a previous year, which stays clean (it is marked used too).
        """
        k = self.count(kind)
        if k == 0:
            return np.zeros(0, dtype=np.int64)
        ok = eligible & ~self.used
        if yoy:
            prev_free = np.zeros_like(ok)
            prev_free[1:] = ~self.used[:-1]
            ok &= (self.yi > 0) & prev_free
        candidates = np.flatnonzero(ok)
        if candidates.size == 0:
            return candidates
        rows = np.sort(self.rng.choice(candidates, size=min(k, candidates.size), replace=False))
        if yoy:  # the previous year stays clean: it is what the jump is measured against
            rows = rows[~np.isin(rows - 1, rows)]
            self.used[rows - 1] = True
        self.used[rows] = True
        return rows

    def record(
        self,
        kind: str,
        rows: npt.NDArray[np.int64],
        *,
        field: str | None = None,
        true: npt.NDArray | None = None,
        reported: npt.NDArray | None = None,
        related: pl.Series | None = None,
        true_text: pl.Series | None = None,
        reported_text: pl.Series | None = None,
        detail: str | pl.Series | None = None,
    ) -> None:
        """Add one truth row per row; ``factor`` is reported ÷ true where true is not 0."""
        n = rows.size
        if n == 0:
            return
        inst_rows = self.i[rows]
        columns: dict[str, pl.Series] = {
            "institution_id": self.inst.ids.gather(inst_rows),
            "year": pl.Series(self.years[self.yi[rows]], dtype=pl.Int64),
            "defect": pl.Series([kind] * n, dtype=pl.String),
            "field": pl.Series([field] * n, dtype=pl.String),
        }
        if true is not None and reported is not None:
            t = np.asarray(true, dtype=np.float64)
            r = np.asarray(reported, dtype=np.float64)
            columns["true_value"] = pl.Series(t).fill_nan(None)  # NaN: not reported
            columns["reported_value"] = pl.Series(r).fill_nan(None)
            with np.errstate(divide="ignore", invalid="ignore"):
                factor = np.where(t != 0, r / np.where(t != 0, t, 1.0), np.nan)
            columns["factor"] = pl.Series(factor).fill_nan(None)
        if related is not None:
            columns["related_id"] = related
        if true_text is not None:
            columns["true_text"] = true_text
        if reported_text is not None:
            columns["reported_text"] = reported_text
        if detail is not None:
            columns["detail"] = detail if isinstance(detail, pl.Series) else pl.Series([detail] * n)
        self.truth.append(_truth_frame(columns))

    def set_field(
        self,
        kind: str,
        rows: npt.NDArray[np.int64],
        field: str,
        reported: npt.NDArray,
        **kw: object,
    ) -> None:
        """Report ``reported`` in ``field`` of ``rows`` and record the change."""
        true = self.v[field][rows].astype(np.float64)
        self.v[field][rows] = reported
        self.record(
            kind, rows, field=field, true=true, reported=np.asarray(reported, np.float64), **kw
        )

    def choose_field(
        self, rows: npt.NDArray[np.int64], options: Mapping[str, float], above: float = 0.0
    ) -> npt.NDArray[np.str_]:
        """Choose a field per row among weighted ``options``, one whose value is above ``above``.

        Rows must have at least one such field.
        """
        fields = np.array(list(options))
        p = np.array(list(options.values()))
        chosen = self.rng.choice(fields, size=rows.size, p=p / p.sum())
        positive = np.column_stack([self.v[f][rows] > above for f in fields])
        ok = positive[np.arange(rows.size), _index_of(chosen, fields.tolist())]
        chosen[~ok] = fields[np.argmax(positive[~ok], axis=1)]
        return chosen

    def set_fields(
        self,
        kind: str,
        rows: npt.NDArray[np.int64],
        fields: npt.NDArray[np.str_],
        reported: Callable[[str, npt.NDArray[np.int64], npt.NDArray[np.bool_]], npt.NDArray],
        **kw: object,
    ) -> None:
        """Set each row's own field (``fields``) to ``reported(field, rows, where)``.

        ``where`` marks the rows (of ``rows``) of that field, for draws made for all rows.
        """
        for field in np.unique(fields):
            here = fields == field
            self.set_field(
                kind, rows[here], str(field), reported(str(field), rows[here], here), **kw
            )

    def bill(self, kind: str, rows: npt.NDArray[np.int64], fields: npt.NDArray[np.str_]) -> None:
        """Bill each row's reported ``fields`` at its price: the cost follows the figure.

        For an institution that computes its cost from the figure it reports rather than
        copying it from the bills, so that the implied unit price does not betray the figure.
        Fields without a cost column, and institutions that report no costs, are left alone.
        """
        for k, (item, cost) in enumerate(zip(_PRICED_ITEMS, _COSTS, strict=True)):
            r = rows[(fields == item) & ~np.isnan(self.v[cost][rows])]
            self.set_field(kind, r, cost, np.round(self.v[item][r] * self.v["_price"][r, k], 2))

    def copy_figures(
        self,
        kind: str,
        rows: npt.NDArray[np.int64],
        source: npt.NDArray[np.int64],
        detail: str,
        related: pl.Series | None = None,
    ) -> None:
        """Give ``rows`` the quantities, costs and total of ``source`` rows; a truth row per field.

        A copied form copies its total too: the copy stays consistent with itself.
        """
        for field in (*_QUANTITIES, *_COSTS, "reported_total_tce"):
            a, b = self.v[field][rows], self.v[field][source]
            differs = (a != b) & ~(np.isnan(a) & np.isnan(b))  # no cost reported in either
            r = rows[differs]
            self.set_field(
                kind,
                r,
                field,
                self.v[field][source[differs]].copy(),
                detail=detail,
                related=None if related is None else related.filter(pl.Series(differs)),
            )

    def reported_names(self, rows: npt.NDArray[np.int64]) -> pl.Series:
        """Names as reported on the given grid rows (the directory name unless changed)."""
        names = self.inst.names.gather(self.i[rows])
        changed = np.flatnonzero(np.isin(rows, self.name_rows))
        if changed.size:
            texts = self.name_texts.gather(np.searchsorted(self.name_rows, rows[changed]))
            names = names.scatter(changed, texts)
        return names


# --------------------------------------------------------------------------------------------
# One function per kind: ``inject(injector, kind)``
# --------------------------------------------------------------------------------------------


#: Share of the ``yoy_jump`` figures whose cost is computed from the wrong figure (the rest keep
#: the cost of the bills).
_BILLED_JUMP_SHARE: Final = 0.25
#: Share of the ``unit_slip_10k`` figures typed from a rounded 万 figure.
_WAN_ROUNDED_SHARE: Final = 0.5
#: Density of an actual fuel delivery [kg/L] (domain.md §2: 0.73 gasoline, 0.84-0.86 diesel).
_DELIVERY_DENSITY_KG_PER_L: Final[Mapping[str, tuple[float, float]]] = MappingProxyType(
    {"gasoline_l": (0.72, 0.76), "diesel_l": (0.82, 0.87)}
)


def _missing_return(inj: _Injector, kind: str) -> None:
    rows = inj.pick(kind, inj.scope)
    inj.keep[rows] = False
    inj.record(kind, rows)


def _unit_slip_10k(inj: _Injector, kind: str) -> None:
    """Divide by 10,000; half of them typed from the 万 figure rounded to 1 or 2 decimals.

    A rounded figure keeps at least two significant digits (else it is typed unrounded).
    """
    rng = inj.rng
    rows = inj.pick(kind, inj.scope)
    fields = inj.choose_field(
        rows, {"electricity_kwh": 0.7, "natural_gas_m3": 0.15, "water_m3": 0.15}
    )
    rounded = rng.random(rows.size) < _WAN_ROUNDED_SHARE
    decimals = rng.integers(1, 3, rows.size)

    def reported(field: str, r: npt.NDArray[np.int64], here: npt.NDArray[np.bool_]) -> npt.NDArray:
        wan = inj.v[field][r] / 10_000
        for d in (1, 2):
            now = rounded[here] & (decimals[here] == d) & (np.abs(wan) >= 10.0 ** (1 - d))
            wan[now] = np.round(wan[now], d)
        return wan

    inj.set_fields(kind, rows, fields, reported)


def _times(item: str, factor: float) -> Callable[[_Injector, str], None]:
    """Make the injector of a slip that multiplies ``item`` by ``factor`` where it is positive."""

    def inject(inj: _Injector, kind: str) -> None:
        rows = inj.pick(kind, inj.scope & (inj.v[item] > 0))
        inj.set_field(kind, rows, item, inj.v[item][rows] * factor)

    return inject


def _unit_slip_kg_for_l(inj: _Injector, kind: str) -> None:
    """Report kilograms under litres, with the density of the actual delivery."""
    v, rng = inj.v, inj.rng
    rows = inj.pick(kind, inj.scope & ((v["gasoline_l"] > 0) | (v["diesel_l"] > 0)))
    fields = inj.choose_field(rows, {"gasoline_l": 0.7, "diesel_l": 0.3})

    def reported(field: str, r: npt.NDArray[np.int64], _: object) -> npt.NDArray:
        density = rng.uniform(*_DELIVERY_DENSITY_KG_PER_L[field], r.size)
        return np.round(v[field][r] * density, 2)

    inj.set_fields(kind, rows, fields, reported)


def _typo_x10(inj: _Injector, kind: str) -> None:
    rows = inj.pick(kind, inj.scope)
    fields = inj.choose_field(
        rows, {"electricity_kwh": 0.5, "water_m3": 0.3, "natural_gas_m3": 0.2}
    )
    inj.set_fields(kind, rows, fields, lambda f, r, _: inj.v[f][r] * 10)


def _yoy_jump(inj: _Injector, kind: str) -> None:
    rng = inj.rng
    rows = inj.pick(kind, inj.scope, yoy=True)
    fields = inj.choose_field(
        rows, {"electricity_kwh": 0.6, "natural_gas_m3": 0.2, "water_m3": 0.2}
    )
    up = rng.random(rows.size) < 0.5
    ratio = np.where(up, rng.uniform(1.45, 2.4, rows.size), rng.uniform(0.35, 0.62, rows.size))
    inj.set_fields(
        kind,
        rows,
        fields,
        lambda f, r, here: _not_round(inj.v[f][r - 1] * ratio[here], rng),
        detail="ratio to last year's reported value",
    )
    billed = rng.random(rows.size) < _BILLED_JUMP_SHARE
    inj.bill(kind, rows[billed], fields[billed])


def _area_change(inj: _Injector, kind: str) -> None:
    """Report the area 20-60 % above or 20-50 % below the true one, energy unchanged.

    Not in a year of a real building change (``mixture``), so that last year's area, within
    5 % of this year's true one, is more than 10 % away from the reported one.
    """
    rng = inj.rng
    rows = inj.pick(kind, inj.scope & ~inj.v["_building_changed"], yoy=True)
    up = rng.random(rows.size) < 0.5
    ratio = np.where(up, rng.uniform(1.2, 1.6, rows.size), rng.uniform(0.5, 0.8, rows.size))
    area = inj.v["building_area_m2"]
    inj.set_field(kind, rows, "building_area_m2", np.round(area[rows] * ratio, 2))


def _occupants_change(inj: _Injector, kind: str) -> None:
    """Report 25-80 % more or 22-60 % fewer occupants than the true ones, energy unchanged."""
    rng = inj.rng
    occupants = inj.v["occupants"]
    rows = inj.pick(kind, inj.scope & (occupants >= 10) & ~inj.v["_building_changed"], yoy=True)
    up = rng.random(rows.size) < 0.5
    ratio = np.where(up, rng.uniform(1.25, 1.8, rows.size), rng.uniform(0.4, 0.78, rows.size))
    inj.set_field(kind, rows, "occupants", np.round(occupants[rows] * ratio).astype(np.int64))


def _digit_typo(rng: np.random.Generator, values: npt.NDArray) -> npt.NDArray[np.float64]:
    """Type each value with an extra digit (× 10) or a lost one (÷ 10), half each."""
    return np.where(rng.random(values.size) < 0.5, values * 10.0, values / 10.0)


def _area_typo(inj: _Injector, kind: str) -> None:
    rows = inj.pick(kind, inj.scope)
    area = inj.v["building_area_m2"][rows]
    inj.set_field(kind, rows, "building_area_m2", np.round(_digit_typo(inj.rng, area), 2))


def _occupants_typo(inj: _Injector, kind: str) -> None:
    occupants = inj.v["occupants"]
    rows = inj.pick(kind, inj.scope & (occupants >= 20))
    typed = np.maximum(np.round(_digit_typo(inj.rng, occupants[rows])), 1).astype(np.int64)
    inj.set_field(kind, rows, "occupants", typed)


def _copied_figures(inj: _Injector, kind: str) -> None:
    rows = inj.pick(kind, inj.scope, yoy=True)
    inj.copy_figures(kind, rows, rows - 1, detail="figures of last year's return")


def _round_number(inj: _Injector, kind: str) -> None:
    """Report electricity or water with 1 or 2 significant digits (an estimate).

    Not on a figure that is naturally round already (a multiple of 1,000), whose estimate
    could be the figure itself.
    """
    v, rng = inj.v, inj.rng

    def candidate(field: str) -> npt.NDArray[np.bool_]:
        return (v[field] >= 10_000) & (np.mod(v[field], 1000) != 0)

    electricity, water = candidate("electricity_kwh"), candidate("water_m3")
    rows = inj.pick(kind, inj.scope & (electricity | water))
    either = electricity[rows] & water[rows]
    on_water = np.where(either, rng.random(rows.size) < 0.2, water[rows])
    fields = np.where(on_water, "water_m3", "electricity_kwh")

    def reported(field: str, r: npt.NDArray[np.int64], _: object) -> npt.NDArray:
        digits = np.where(rng.random(r.size) < 0.3, 1, 2)
        scale = 10.0 ** (np.floor(np.log10(v[field][r])) - digits + 1)
        return np.round(v[field][r] / scale) * scale

    inj.set_fields(kind, rows, fields, reported)
    inj.bill(kind, rows, fields)  # an estimate is billed as estimated


def _identical_siblings(inj: _Injector, kind: str) -> None:
    """Make groups of three units of one parent and year: two copy the figures of the first."""
    k = inj.count(kind)
    parent = inj.inst.parent[inj.i]
    ok = inj.scope & ~inj.used & (parent >= 0)
    if k == 0 or not ok.any():
        return
    candidates = pl.DataFrame(
        {
            "row": np.flatnonzero(ok),
            "parent": parent[ok],
            "yi": inj.yi[ok],
            "u": inj.rng.random(int(ok.sum())),
        }
    )
    ranked = (
        candidates.with_columns(
            rank=pl.col("u").rank("ordinal").over("parent", "yi"),
            size=pl.len().over("parent", "yi"),
        )
        .filter((pl.col("size") >= 3) & (pl.col("rank") <= 3))
        .sort("parent", "yi", "rank")
    )
    groups = ranked.select("parent", "yi").unique(maintain_order=True)
    if groups.height == 0:
        return
    chosen = groups.gather(
        np.sort(inj.rng.choice(groups.height, size=min(k, groups.height), replace=False))
    )
    members = ranked.join(chosen, on=["parent", "yi"], how="semi", maintain_order="left")
    rows = members["row"].to_numpy()
    inj.used[rows] = True
    source = members.with_columns(src=pl.col("row").first().over("parent", "yi"))
    copies = source.filter(pl.col("rank") > 1)
    src_rows = copies["src"].to_numpy()
    inj.copy_figures(
        kind,
        copies["row"].to_numpy(),
        src_rows,
        detail="same figures as a unit of the same parent (related_id)",
        related=inj.inst.ids.gather(inj.i[src_rows]),
    )


def _pv_exceeds_electricity(inj: _Injector, kind: str) -> None:
    v, rng = inj.v, inj.rng
    rows = inj.pick(kind, inj.scope & (v["pv_generation_kwh"] > 0))
    if rows.size == 0:
        rows = inj.pick(kind, inj.scope)
    pv = _not_round(v["electricity_kwh"][rows] * rng.uniform(1.2, 3.0, rows.size), rng)
    inj.set_field(kind, rows, "pv_generation_kwh", pv)


def _vehicles_no_fuel(inj: _Injector, kind: str) -> None:
    v = inj.v
    rows = inj.pick(kind, inj.scope & (v["vehicles"] > 0) & ((v["gasoline_l"] + v["diesel_l"]) > 0))
    for field in ("gasoline_l", "diesel_l"):
        r = rows[v[field][rows] > 0]
        inj.set_field(kind, r, field, np.zeros(r.size))


def _metered_heat_zero(inj: _Injector, kind: str) -> None:
    metered = inj.inst.heat[inj.i] == _HEAT_BILLING.index("metered")
    rows = inj.pick(kind, inj.scope & metered & (inj.v["heat_gj"] > 0))
    inj.set_field(kind, rows, "heat_gj", np.zeros(rows.size))


def _absurd_unit_price(inj: _Injector, kind: str) -> None:
    cost = inj.v["electricity_cost_yuan"]
    rows = inj.pick(kind, inj.scope & (cost > 0))
    wan = inj.rng.random(rows.size) < 0.6
    reported = np.where(wan, cost[rows] / 10_000, cost[rows] * 100)
    inj.set_field(kind, rows, "electricity_cost_yuan", np.round(reported, 2))


def _negative_value(inj: _Injector, kind: str) -> None:
    rows = inj.pick(kind, inj.scope)
    fields = inj.choose_field(
        rows,
        {"electricity_kwh": 0.4, "water_m3": 0.3, "natural_gas_m3": 0.15, "gasoline_l": 0.15},
    )
    inj.set_fields(kind, rows, fields, lambda f, r, _: -inj.v[f][r])


def _nonpositive_area(inj: _Injector, kind: str) -> None:
    rows = inj.pick(kind, inj.scope)
    zero = inj.rng.random(rows.size) < 0.7
    area = inj.v["building_area_m2"][rows]
    inj.set_field(kind, rows, "building_area_m2", np.where(zero, 0.0, -area))


def _nonpositive_occupants(inj: _Injector, kind: str) -> None:
    rows = inj.pick(kind, inj.scope)
    inj.set_field(kind, rows, "occupants", np.zeros(rows.size, dtype=np.int64))


def _name_mismatch(inj: _Injector, kind: str) -> None:
    rows = inj.pick(kind, inj.scope)
    if rows.size == 0:
        return
    names = inj.inst.names.gather(inj.i[rows])
    variant = pl.Series(inj.rng.integers(0, 3, rows.size))
    frame = pl.DataFrame({"name": names, "variant": variant})
    prefix_toggled = (
        pl.when(pl.col("name").str.starts_with(_REGION_NAME))
        .then(pl.col("name").str.strip_prefix(_REGION_NAME))
        .otherwise(pl.concat_str(pl.lit(_REGION_NAME), pl.col("name")))
    )
    reported = frame.select(
        pl.when(pl.col("variant") == 1)
        .then(pl.concat_str(pl.col("name"), pl.lit("（本部）")))
        .when((pl.col("variant") == 2) & pl.col("name").str.contains("委员会"))
        .then(pl.col("name").str.replace("委员会", "委", literal=True))
        .otherwise(prefix_toggled)
    ).to_series()
    inj.name_rows, inj.name_texts = rows, reported  # rows are sorted (see pick)
    inj.record(kind, rows, field="name", true_text=names, reported_text=reported)


def _total_mismatch(inj: _Injector, kind: str) -> None:
    v, rng = inj.v, inj.rng
    rows = inj.pick(kind, inj.scope)
    kgce_as_tce = rng.random(rows.size) < 0.3
    ratio = np.where(
        kgce_as_tce,
        1000.0,
        np.where(
            rng.random(rows.size) < 0.5,
            rng.uniform(1.15, 1.6, rows.size),
            rng.uniform(0.5, 0.85, rows.size),
        ),
    )
    total = v["reported_total_tce"][rows]
    inj.set_field(kind, rows, "reported_total_tce", np.round(total * ratio, 2))


def _return_from(status: str) -> Callable[[_Injector, str], None]:
    """Make the injector of returns from institutions listed with ``status`` (dissolved …)."""

    def inject(inj: _Injector, kind: str) -> None:
        rows = inj.pick(kind, inj.status == status)
        inj.keep[rows] = True
        related = inj.inst.related.gather(inj.i[rows]) if status == "merged" else None
        inj.record(kind, rows, related=related)

    return inject


def _unknown_institution(inj: _Injector, kind: str) -> None:
    rows = inj.pick(kind, inj.status == "phantom")
    inj.keep[rows] = True
    inj.record(kind, rows, reported_text=inj.inst.names.gather(inj.i[rows]))


def _duplicate_exact(inj: _Injector, kind: str) -> None:
    """Send a return twice, identical (the second after the year's rows, a later submission)."""
    v = inj.v
    rows = inj.pick(kind, inj.scope & inj.keep)
    inj.extra.append((rows, {c: v[c][rows].copy() for c in _VALUE_COLUMNS}))
    inj.record(kind, rows)


def _duplicate_conflicting(inj: _Injector, kind: str) -> None:
    """Send a second return of the year whose electricity (and its cost) differs by 5-25 %."""
    v, rng = inj.v, inj.rng
    rows = inj.pick(kind, inj.scope & inj.keep)
    second = {c: v[c][rows].copy() for c in _VALUE_COLUMNS}
    up = rng.random(rows.size) < 0.5
    ratio = np.where(up, rng.uniform(1.05, 1.25, rows.size), rng.uniform(0.8, 0.95, rows.size))
    second["electricity_kwh"] = _not_round(second["electricity_kwh"] * ratio, rng)
    second["electricity_cost_yuan"] = np.round(second["electricity_cost_yuan"] * ratio, 2)
    second["reported_total_tce"] = inj.own_totals.total_tce(
        second, np.arange(rows.size), inj.i[rows]
    )
    inj.extra.append((rows, second))
    inj.record(
        kind,
        rows,
        field="electricity_kwh",
        true=v["electricity_kwh"][rows],
        reported=second["electricity_kwh"],
        detail="the second return of the year",
    )


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Defect:
    """One kind of defect of the yearly returns.

    Attributes
    ----------
    kind : str
        Name of the kind, the ``defect`` column of the truth table.
    description : str
        One line saying what the defect is (domain.md §6).
    statistical : bool
        True when no rule proves the return wrong and only the statistical stage can find it
        (:data:`STATISTICAL_DEFECT_KINDS`, the kinds the detection benchmark measures).
    rate : float
        Default rate [share of the in-scope institution-years; for ``messy_cell``: of the
        numeric cells of each xlsx/CSV returns file and of the directory codes].
    expected_rules : tuple of str
        Rule ids of the library (``docs/rules.md``) that find the kind today: for a kind that is
        not statistical, every injected return is found by one of them.
    inject : callable or None
        ``inject(injector, kind)`` changes the true grid and records the truth rows; None for
        defects of the files (``messy_cell``, written by
        :func:`energy_audit.synthetic.write_returns_file`).
    """

    kind: str
    description: str
    statistical: bool
    rate: float
    expected_rules: tuple[str, ...]
    inject: Callable[[_Injector, str], None] | None


_PRICE_RULES: Final = ("CON-007", "CON-008", "CON-009")

#: Every defect kind, in injection order.
DEFECTS: Final[Mapping[str, Defect]] = MappingProxyType(
    {
        d.kind: d
        for d in (
            Defect(
                "missing_return",
                "an institution in scope has no return for the year",
                False, 0.01, ("COV-001",), _missing_return,
            ),
            Defect(
                "unit_slip_10k",
                "a figure in 万 units typed under the base unit: reported = true / 10,000 "
                "(half of them from the 万 figure rounded to 1 or 2 decimals)",
                True, 0.004, ("STA-005", "CON-003", *_PRICE_RULES), _unit_slip_10k,
            ),
            Defect(
                "unit_slip_kg_for_t",
                "coal in kg typed under 吨: reported = true × 1000",
                True, 0.002, ("STA-005", "CON-003"), _times("coal_t", 1000.0),
            ),
            Defect(
                "unit_slip_mj_for_gj",
                "heat in MJ typed under GJ (百万千焦): reported = true × 1000",
                True, 0.003, ("STA-005", "CON-003"), _times("heat_gj", 1000.0),
            ),
            Defect(
                "unit_slip_kg_for_l",
                "fuel in kg typed under litres: reported = true × the delivery's density "
                "(gasoline 0.72-0.76, diesel 0.82-0.87 kg/L)",
                True, 0.003, ("STA-005", "CON-003"), _unit_slip_kg_for_l,
            ),
            Defect(
                "typo_x10",
                "an extra digit: reported = true × 10",
                True, 0.004, ("STA-005", "CON-003", *_PRICE_RULES), _typo_x10,
            ),
            Defect(
                "yoy_jump",
                "one item jumps or drops by more than 30 % on last year's reported value",
                True, 0.005, ("STA-006", "CON-003"), _yoy_jump,
            ),
            Defect(
                "area_change",
                "building area reported 20-60 % above or 20-50 % below the true one (more than "
                "10 % from last year), energy unchanged",
                True, 0.004, ("CON-001", "STA-001", "STA-004"), _area_change,
            ),
            Defect(
                "occupants_change",
                "occupants reported 25-80 % above or 22-60 % below the true ones (more than 10 % "
                "from last year), energy unchanged",
                True, 0.004, ("CON-002", "STA-002", "STA-003"), _occupants_change,
            ),
            Defect(
                "area_typo",
                "building area with an extra or a lost digit: reported = true × 10 or ÷ 10, "
                "energy unchanged",
                True, 0.002, ("CON-001", "STA-001", "STA-004"), _area_typo,
            ),
            Defect(
                "occupants_typo",
                "occupants with an extra or a lost digit: reported = true × 10 or ÷ 10 (whole, "
                "at least 1)",
                True, 0.002, ("CON-002", "STA-002", "STA-003"), _occupants_typo,
            ),
            Defect(
                "copied_figures",
                "every quantity and cost identical to last year's return",
                True, 0.004, ("STA-007",), _copied_figures,
            ),
            Defect(
                "round_number",
                "a metered item reported as a round number (e.g. exactly 100,000 kWh)",
                True, 0.004, ("STA-009",), _round_number,
            ),
            Defect(
                "identical_siblings",
                "units of one parent report identical quantities and costs",
                True, 0.001, ("STA-008",), _identical_siblings,
            ),
            Defect(
                "pv_exceeds_electricity",
                "PV generation reported above electricity consumption",
                False, 0.002, ("CON-004",), _pv_exceeds_electricity,
            ),
            Defect(
                "vehicles_no_fuel",
                "vehicles reported but no gasoline or diesel",
                False, 0.003, ("CON-005",), _vehicles_no_fuel,
            ),
            Defect(
                "metered_heat_zero",
                "heat billed by meter (按热量计费) but zero heat reported",
                False, 0.003, ("CON-006",), _metered_heat_zero,
            ),
            Defect(
                "absurd_unit_price",
                "electricity cost implies an absurd price (万元 under 元, or × 100)",
                False, 0.003, ("CON-007",), _absurd_unit_price,
            ),
            Defect(
                "negative_value",
                "a quantity reported negative",
                False, 0.002, ("VAL-002",), _negative_value,
            ),
            Defect(
                "nonpositive_area",
                "building area reported as zero or negative",
                False, 0.002, ("VAL-002",), _nonpositive_area,
            ),
            Defect(
                "nonpositive_occupants",
                "occupants reported as zero",
                False, 0.002, ("VAL-002",), _nonpositive_occupants,
            ),
            Defect(
                "name_mismatch",
                "the reported name differs from the directory name",
                False, 0.005, ("COV-006",), _name_mismatch,
            ),
            Defect(
                "total_mismatch",
                "the institution's own total ≠ Σ items × standard-coal coefficients",
                False, 0.004, ("CON-003",), _total_mismatch,
            ),
            Defect(
                "return_from_dissolved",
                "a return from an institution the directory lists as dissolved",
                False, 0.002, ("COV-003",), _return_from("dissolved"),
            ),
            Defect(
                "return_from_merged",
                "a return from an institution the directory lists as merged",
                False, 0.002, ("COV-003",), _return_from("merged"),
            ),
            Defect(
                "unknown_institution",
                "a return from an institution not in the directory",
                False, 0.002, ("COV-002",), _unknown_institution,
            ),
            Defect(
                "duplicate_exact",
                "the same return twice, identical",
                False, 0.002, ("COV-004",), _duplicate_exact,
            ),
            Defect(
                "duplicate_conflicting",
                "two returns of one institution and year, electricity differs",
                False, 0.002, ("COV-005",), _duplicate_conflicting,
            ),
            Defect(
                "messy_cell",
                "a file cell typed as text (1,234, １２３, 500 千瓦时, —, 约3000)",
                False, 0.002, ("VAL-004", "VAL-001"), None,
            ),
        )
    }
)  # fmt: skip

#: Every defect kind the generator injects, with a one-line description (domain.md §6); a view
#: of :data:`DEFECTS`, in injection order.
DEFECT_KINDS: Final[Mapping[str, str]] = MappingProxyType(
    {k: d.description for k, d in DEFECTS.items()}
)

STATISTICAL_DEFECT_KINDS: Final = tuple(k for k, d in DEFECTS.items() if d.statistical)
"""Kinds of :data:`DEFECT_KINDS` that only the statistical stage can find (no rule proves them
wrong); the detection benchmark and tests measure recall on these."""

#: Default rate of each defect kind, as a share of the in-scope institution-years (for
#: ``messy_cell``: of the numeric cells of each xlsx/CSV returns file and of the directory codes).
#: At least one of each kind is injected when a row qualifies.
DEFAULT_DEFECT_RATES: Final[Mapping[str, float]] = MappingProxyType(
    {k: d.rate for k, d in DEFECTS.items()}
)


def _defect_rates(defects: bool | Mapping[str, float]) -> dict[str, float]:
    """Rates of every kind: the defaults, none (``False``) or the defaults with overrides."""
    if defects is False:
        return dict.fromkeys(DEFECT_KINDS, 0.0)
    rates = dict(DEFAULT_DEFECT_RATES)
    if defects is True:
        return rates
    unknown = sorted(set(defects) - set(DEFECT_KINDS))
    if unknown:
        raise ValueError(f"unknown defect kind(s) {unknown}; known: {sorted(DEFECT_KINDS)}")
    rates.update({k: float(v) for k, v in defects.items()})
    return rates


def _empty_truth() -> pl.DataFrame:
    return pl.DataFrame(schema=dict(TRUTH_SCHEMA))


def _truth_frame(columns: Mapping[str, object]) -> pl.DataFrame:
    """Build a truth table from some of its columns (the others null), in schema order."""
    frame = pl.DataFrame(dict(columns))
    return frame.select(
        pl.col(c).cast(t) if c in frame.columns else pl.lit(None, dtype=t).alias(c)
        for c, t in TRUTH_SCHEMA.items()
    )
