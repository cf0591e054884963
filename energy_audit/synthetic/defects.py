"""Defects of the yearly returns: kinds, rates, and the injector that records them.

Each injected defect is one row of the truth table (:data:`TRUTH_SCHEMA`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl

from energy_audit.factors import density_kg_per_l
from energy_audit.synthetic.columns import (
    _COSTS,
    _HEAT_BILLING,
    _QUANTITIES,
    _RETURNS,
    _VALUE_COLUMNS,
)
from energy_audit.synthetic.directory import _index_of
from energy_audit.synthetic.institutions import _Institutions
from energy_audit.synthetic.noise import _not_round
from energy_audit.synthetic.parameters import _REGION_NAME
from energy_audit.synthetic.totals import _total_tce

__all__ = [
    "DEFAULT_DEFECT_RATES",
    "DEFECT_KINDS",
    "STATISTICAL_DEFECT_KINDS",
    "TRUTH_SCHEMA",
]


#: Every defect kind the generator injects, with a one-line description (domain.md §6).
DEFECT_KINDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "unit_slip_10k": "a figure in 万 units typed under the base unit: reported = true / 10,000",
        "unit_slip_kg_for_t": "coal in kg typed under 吨: reported = true × 1000",
        "unit_slip_mj_for_gj": "heat in MJ typed under GJ (百万千焦): reported = true × 1000",
        "unit_slip_kg_for_l": "fuel in kg typed under litres: reported = true × density",
        "typo_x10": "an extra digit: reported = true × 10",
        "yoy_jump": "one item jumps or drops by more than 30 % on last year's reported value",
        "area_change": "building area differs by more than 10 % from last year",
        "occupants_change": "occupants differ by more than 10 % from last year",
        "copied_figures": "every quantity and cost identical to last year's return",
        "round_number": "a metered item reported as a round number (e.g. exactly 100,000 kWh)",
        "identical_siblings": "units of one parent report identical quantities and costs",
        "pv_exceeds_electricity": "PV generation reported above electricity consumption",
        "vehicles_no_fuel": "vehicles reported but no gasoline or diesel",
        "metered_heat_zero": "heat billed by meter (按热量计费) but zero heat reported",
        "total_mismatch": "the institution's own total ≠ Σ items × standard-coal coefficients",
        "absurd_unit_price": "electricity cost implies an absurd price (万元 under 元, or × 100)",
        "missing_return": "an institution in scope has no return for the year",
        "unknown_institution": "a return from an institution not in the directory",
        "return_from_dissolved": "a return from an institution the directory lists as dissolved",
        "return_from_merged": "a return from an institution the directory lists as merged",
        "duplicate_exact": "the same return twice, identical",
        "duplicate_conflicting": "two returns of one institution and year, electricity differs",
        "name_mismatch": "the reported name differs from the directory name",
        "negative_value": "a quantity reported negative",
        "nonpositive_area": "building area reported as zero or negative",
        "nonpositive_occupants": "occupants reported as zero",
        "messy_cell": "a file cell typed as text (1,234, １２３, 500 千瓦时, —, 约3000)",
    }
)

STATISTICAL_DEFECT_KINDS: Final = (
    "unit_slip_10k",
    "unit_slip_kg_for_t",
    "unit_slip_mj_for_gj",
    "unit_slip_kg_for_l",
    "typo_x10",
    "yoy_jump",
    "copied_figures",
    "identical_siblings",
    "round_number",
)
"""Kinds of :data:`DEFECT_KINDS` that only the statistical stage can find (no rule proves them
wrong); the detection benchmark and tests measure recall on these."""

#: Default rate of each defect kind, as a share of the in-scope institution-years (for
#: ``messy_cell``: of the numeric cells of each xlsx/CSV returns file and of the directory codes).
#: At least one of each kind is injected when a row qualifies.
DEFAULT_DEFECT_RATES: Final[Mapping[str, float]] = MappingProxyType(
    {
        "unit_slip_10k": 0.004,
        "unit_slip_kg_for_t": 0.002,
        "unit_slip_mj_for_gj": 0.003,
        "unit_slip_kg_for_l": 0.003,
        "typo_x10": 0.004,
        "yoy_jump": 0.005,
        "area_change": 0.004,
        "occupants_change": 0.004,
        "copied_figures": 0.004,
        "round_number": 0.004,
        "identical_siblings": 0.001,
        "pv_exceeds_electricity": 0.002,
        "vehicles_no_fuel": 0.003,
        "metered_heat_zero": 0.003,
        "total_mismatch": 0.004,
        "absurd_unit_price": 0.003,
        "missing_return": 0.01,
        "unknown_institution": 0.002,
        "return_from_dissolved": 0.002,
        "return_from_merged": 0.002,
        "duplicate_exact": 0.002,
        "duplicate_conflicting": 0.002,
        "name_mismatch": 0.005,
        "negative_value": 0.002,
        "nonpositive_area": 0.002,
        "nonpositive_occupants": 0.002,
        "messy_cell": 0.002,
    }
)

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


def _defect_rates(defects: bool | Mapping[str, float]) -> dict[str, float]:
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


class _Injector:
    """Injects defects into the true grid and records each one in the truth table."""

    def __init__(
        self,
        values: dict[str, npt.NDArray],
        inst: _Institutions,
        years: npt.NDArray[np.int64],
        rates: Mapping[str, float],
        rng: np.random.Generator,
    ) -> None:
        self.v = values
        self.inst = inst
        self.years = years
        self.rates = rates
        self.rng = rng
        self.i = values["_inst"]
        self.yi = values["_yi"]
        status = inst.status[self.i]
        self.scope = status == "active"
        self.used = np.zeros(self.scope.size, dtype=bool)
        self.n_scope = int(self.scope.sum())
        self.keep = self.scope.copy()
        self.name_rows = np.zeros(0, dtype=np.int64)
        self.name_texts = pl.Series([], dtype=pl.String)
        self.extra: list[tuple[npt.NDArray[np.int64], dict[str, npt.NDArray]]] = []
        self.truth: list[pl.DataFrame] = []

    # ---- bookkeeping ------------------------------------------------------------------------

    def count(self, kind: str) -> int:
        rate = self.rates.get(kind, 0.0)
        return 0 if rate <= 0 else max(1, round(rate * self.n_scope))

    def pick(
        self, kind: str, eligible: npt.NDArray[np.bool_], *, yoy: bool = False
    ) -> npt.NDArray[np.int64]:
        """Choose rows for a defect among eligible unused rows, and mark them used."""
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
            columns["true_value"] = pl.Series(t)
            columns["reported_value"] = pl.Series(r)
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

    # ---- the defects ------------------------------------------------------------------------

    def run(self) -> None:
        v, rng = self.v, self.rng
        scope = self.scope

        rows = self.pick("missing_return", scope)
        self.keep[rows] = False
        self.record("missing_return", rows)

        rows = self.pick("unit_slip_10k", scope)
        fields = self.choose_field(
            rows, {"electricity_kwh": 0.7, "natural_gas_m3": 0.15, "water_m3": 0.15}
        )
        for field in np.unique(fields):
            r = rows[fields == field]
            self.set_field("unit_slip_10k", r, str(field), v[field][r] / 10_000)

        rows = self.pick("unit_slip_kg_for_t", scope & (v["coal_t"] > 0))
        self.set_field("unit_slip_kg_for_t", rows, "coal_t", v["coal_t"][rows] * 1000)

        rows = self.pick("unit_slip_mj_for_gj", scope & (v["heat_gj"] > 0))
        self.set_field("unit_slip_mj_for_gj", rows, "heat_gj", v["heat_gj"][rows] * 1000)

        rows = self.pick(
            "unit_slip_kg_for_l", scope & ((v["gasoline_l"] > 0) | (v["diesel_l"] > 0))
        )
        fields = self.choose_field(rows, {"gasoline_l": 0.7, "diesel_l": 0.3})
        for field in np.unique(fields):
            r = rows[fields == field]
            density = density_kg_per_l(None, _RETURNS.column(str(field)).item)
            self.set_field("unit_slip_kg_for_l", r, str(field), np.round(v[field][r] * density, 2))

        rows = self.pick("typo_x10", scope)
        fields = self.choose_field(
            rows, {"electricity_kwh": 0.5, "water_m3": 0.3, "natural_gas_m3": 0.2}
        )
        for field in np.unique(fields):
            r = rows[fields == field]
            self.set_field("typo_x10", r, str(field), v[field][r] * 10)

        rows = self.pick("yoy_jump", scope, yoy=True)
        fields = self.choose_field(
            rows, {"electricity_kwh": 0.6, "natural_gas_m3": 0.2, "water_m3": 0.2}
        )
        up = rng.random(rows.size) < 0.5
        ratio = np.where(up, rng.uniform(1.45, 2.4, rows.size), rng.uniform(0.35, 0.62, rows.size))
        for field in np.unique(fields):
            here = fields == field
            r = rows[here]
            jumped = _not_round(v[field][r - 1] * ratio[here], rng)
            self.set_field(
                "yoy_jump", r, str(field), jumped, detail="ratio to last year's reported value"
            )

        rows = self.pick("area_change", scope, yoy=True)
        up = rng.random(rows.size) < 0.5
        ratio = np.where(up, rng.uniform(1.15, 1.6, rows.size), rng.uniform(0.5, 0.85, rows.size))
        self.set_field(
            "area_change",
            rows,
            "building_area_m2",
            np.round(v["building_area_m2"][rows - 1] * ratio, 2),
        )

        rows = self.pick("occupants_change", scope & (v["occupants"] >= 10), yoy=True)
        up = rng.random(rows.size) < 0.5
        ratio = np.where(up, rng.uniform(1.2, 1.8, rows.size), rng.uniform(0.4, 0.82, rows.size))
        self.set_field(
            "occupants_change",
            rows,
            "occupants",
            np.round(v["occupants"][rows - 1] * ratio).astype(np.int64),
        )

        rows = self.pick("copied_figures", scope, yoy=True)
        self.copy_figures("copied_figures", rows, rows - 1, detail="figures of last year's return")

        rows = self.pick(
            "round_number", scope & ((v["electricity_kwh"] >= 10_000) | (v["water_m3"] >= 10_000))
        )
        fields = self.choose_field(rows, {"electricity_kwh": 0.8, "water_m3": 0.2}, above=9_999)
        for field in np.unique(fields):
            r = rows[fields == field]
            digits = np.where(rng.random(r.size) < 0.3, 1, 2)
            scale = 10.0 ** (np.floor(np.log10(v[field][r])) - digits + 1)
            self.set_field("round_number", r, str(field), np.round(v[field][r] / scale) * scale)

        self.identical_siblings()

        rows = self.pick("pv_exceeds_electricity", scope & (v["pv_generation_kwh"] > 0))
        if rows.size == 0:
            rows = self.pick("pv_exceeds_electricity", scope)
        pv = _not_round(v["electricity_kwh"][rows] * rng.uniform(1.2, 3.0, rows.size), rng)
        self.set_field("pv_exceeds_electricity", rows, "pv_generation_kwh", pv)

        rows = self.pick(
            "vehicles_no_fuel",
            scope & (v["vehicles"] > 0) & ((v["gasoline_l"] + v["diesel_l"]) > 0),
        )
        for field in ("gasoline_l", "diesel_l"):
            r = rows[v[field][rows] > 0]
            self.set_field("vehicles_no_fuel", r, field, np.zeros(r.size))

        metered = self.inst.heat[self.i] == _HEAT_BILLING.index("metered")
        rows = self.pick("metered_heat_zero", scope & metered & (v["heat_gj"] > 0))
        self.set_field("metered_heat_zero", rows, "heat_gj", np.zeros(rows.size))

        rows = self.pick("absurd_unit_price", scope & (v["electricity_cost_yuan"] > 0))
        wan = rng.random(rows.size) < 0.6
        cost = v["electricity_cost_yuan"][rows]
        self.set_field(
            "absurd_unit_price",
            rows,
            "electricity_cost_yuan",
            np.round(np.where(wan, cost / 10_000, cost * 100), 2),
        )

        rows = self.pick("negative_value", scope)
        fields = self.choose_field(
            rows,
            {"electricity_kwh": 0.4, "water_m3": 0.3, "natural_gas_m3": 0.15, "gasoline_l": 0.15},
        )
        for field in np.unique(fields):
            r = rows[fields == field]
            self.set_field("negative_value", r, str(field), -v[field][r])

        rows = self.pick("nonpositive_area", scope)
        zero = rng.random(rows.size) < 0.7
        self.set_field(
            "nonpositive_area",
            rows,
            "building_area_m2",
            np.where(zero, 0.0, -v["building_area_m2"][rows]),
        )

        rows = self.pick("nonpositive_occupants", scope)
        self.set_field(
            "nonpositive_occupants", rows, "occupants", np.zeros(rows.size, dtype=np.int64)
        )

        self.name_mismatch()

        # Totals as the form computes them from the reported items; then wrong totals.
        all_rows = np.arange(self.i.size)
        v["reported_total_tce"] = _total_tce(v, all_rows, self.years)
        rows = self.pick("total_mismatch", scope)
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
        self.set_field(
            "total_mismatch",
            rows,
            "reported_total_tce",
            np.round(v["reported_total_tce"][rows] * ratio, 3),
        )

        # Returns that should not be there.
        status = self.inst.status[self.i]
        for kind, which in (
            ("return_from_dissolved", "dissolved"),
            ("return_from_merged", "merged"),
        ):
            rows = self.pick(kind, status == which)
            self.keep[rows] = True
            related = self.inst.related.gather(self.i[rows]) if which == "merged" else None
            self.record(kind, rows, related=related)
        rows = self.pick("unknown_institution", status == "phantom")
        self.keep[rows] = True
        self.record("unknown_institution", rows, reported_text=self.inst.names.gather(self.i[rows]))

        # Duplicates (appended after the year's rows, as a second submission).
        rows = self.pick("duplicate_exact", scope & self.keep)
        self.extra.append((rows, {c: v[c][rows].copy() for c in _VALUE_COLUMNS}))
        self.record("duplicate_exact", rows)
        rows = self.pick("duplicate_conflicting", scope & self.keep)
        second = {c: v[c][rows].copy() for c in _VALUE_COLUMNS}
        up = rng.random(rows.size) < 0.5
        ratio = np.where(up, rng.uniform(1.05, 1.25, rows.size), rng.uniform(0.8, 0.95, rows.size))
        second["electricity_kwh"] = _not_round(second["electricity_kwh"] * ratio, rng)
        second["electricity_cost_yuan"] = np.round(second["electricity_cost_yuan"] * ratio, 2)
        second["reported_total_tce"] = _total_tce(second, np.arange(rows.size), self.years)
        self.extra.append((rows, second))
        self.record(
            "duplicate_conflicting",
            rows,
            field="electricity_kwh",
            true=v["electricity_kwh"][rows],
            reported=second["electricity_kwh"],
            detail="the second return of the year",
        )

    def copy_figures(
        self,
        kind: str,
        rows: npt.NDArray[np.int64],
        source: npt.NDArray[np.int64],
        detail: str,
        related: pl.Series | None = None,
    ) -> None:
        """Give ``rows`` the quantities and costs of ``source`` rows; one truth row per field."""
        for field in (*_QUANTITIES, *_COSTS):
            differs = self.v[field][rows] != self.v[field][source]
            r = rows[differs]
            self.set_field(
                kind,
                r,
                field,
                self.v[field][source[differs]].copy(),
                detail=detail,
                related=None if related is None else related.filter(pl.Series(differs)),
            )

    def identical_siblings(self) -> None:
        k = self.count("identical_siblings")
        parent = self.inst.parent[self.i]
        ok = self.scope & ~self.used & (parent >= 0)
        if k == 0 or not ok.any():
            return
        candidates = pl.DataFrame(
            {
                "row": np.flatnonzero(ok),
                "parent": parent[ok],
                "yi": self.yi[ok],
                "u": self.rng.random(int(ok.sum())),
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
            np.sort(self.rng.choice(groups.height, size=min(k, groups.height), replace=False))
        )
        members = ranked.join(chosen, on=["parent", "yi"], how="semi", maintain_order="left")
        rows = members["row"].to_numpy()
        self.used[rows] = True
        source = members.with_columns(src=pl.col("row").first().over("parent", "yi"))
        copies = source.filter(pl.col("rank") > 1)
        src_rows = copies["src"].to_numpy()
        self.copy_figures(
            "identical_siblings",
            copies["row"].to_numpy(),
            src_rows,
            detail="same figures as a unit of the same parent (related_id)",
            related=self.inst.ids.gather(self.i[src_rows]),
        )

    def reported_names(self, rows: npt.NDArray[np.int64]) -> pl.Series:
        """Names as reported on the given grid rows (the directory name unless changed)."""
        names = self.inst.names.gather(self.i[rows])
        changed = np.flatnonzero(np.isin(rows, self.name_rows))
        if changed.size:
            texts = self.name_texts.gather(np.searchsorted(self.name_rows, rows[changed]))
            names = names.scatter(changed, texts)
        return names

    def name_mismatch(self) -> None:
        rows = self.pick("name_mismatch", self.scope)
        if rows.size == 0:
            return
        names = self.inst.names.gather(self.i[rows])
        variant = pl.Series(self.rng.integers(0, 3, rows.size))
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
        self.name_rows, self.name_texts = rows, reported  # rows are sorted (see pick)
        self.record("name_mismatch", rows, field="name", true_text=names, reported_text=reported)


def _empty_truth() -> pl.DataFrame:
    return pl.DataFrame(schema=dict(TRUTH_SCHEMA))


def _truth_frame(columns: Mapping[str, object]) -> pl.DataFrame:
    """Build a truth table from some of its columns (the others null), in schema order."""
    frame = pl.DataFrame(dict(columns))
    return frame.select(
        pl.col(c).cast(t) if c in frame.columns else pl.lit(None, dtype=t).alias(c)
        for c, t in TRUTH_SCHEMA.items()
    )
