"""Consistency rules (匹配性): a return's figures against each other, last year and the directory.

:func:`check_consistency` runs every rule of :data:`CONSISTENCY_RULES` on the yearly returns and
returns one findings table (category ``consistency``, every rule a ``warning``: each contradiction
has innocent explanations the panel must rule out). Review practice (domain.md §6):

- ``CON-001`` / ``CON-002``: building area or occupants changed by more than
  ``area_change_max_pct`` / ``occupants_change_max_pct`` from the institution's previous return
  (the latest earlier year present, normally year − 1). ``expected_low`` / ``expected_high`` are
  last year's value ∓ / ± the threshold.
- ``CON-003``: the institution's own total (``reported_total_tce``, when reported) does not
  reconcile with its items (:func:`energy_audit.reconciliation.reconcile_totals`, the one
  definition STA-013 shares): Σ items × standard-coal coefficients of the return's year (null
  items count 0, as in :mod:`energy_audit.indicators`), with the table's coefficients and with
  the accepted alternative ones (``reconciliation_coefficients``: natural gas 1.2143 kgce/m³),
  differs from it by more than the total's rounding (half a unit of its last decimal: 0.5 tce
  for a total written to whole tce). Such a gap is a finding only when it is material: above
  ``total_tolerance_pct`` of the computed total *and* above ``total_tolerance_tce``, to each of
  the two computed totals (an institution on the provincial gas coefficient 1 % off its own
  computation is as immaterial as one on the table's). ``value`` is the reported total,
  ``expected_low`` / ``expected_high`` / ``suggested_value`` the total with the table's
  coefficients; the message also gives the alternative total where it differs. A ratio near
  1000 is named as kgce typed under tce.
- ``CON-004``: PV generation above the electricity consumed (both reported).
- ``CON-005``: vehicles > 0 but no vehicle fuel (``VerifySettings.vehicle_fuel_columns``
  all null or 0).
- ``CON-006``: heat billed by meter (directory ``heat_billing = metered``) but ``heat_gj`` 0 or
  null. Billed by area or no district heating: no finding (zero heat is normal there).
- ``CON-007`` … ``CON-009``: implied unit price (cost ÷ quantity, only when both are reported and
  > 0) of electricity, natural gas and water outside its band, with the likely slip as the
  suggested value (below).

Previous returns
----------------
The earlier years are looked up in ``history`` and in ``returns`` itself (rows of earlier years),
so one frame of several years checks each year against the one before. A (institution, year)
present twice among them is taken by its first row, ``history`` before ``returns``.

Unit slips in the price rules
-----------------------------
The slip factors are those of the one table of unit slips, :mod:`energy_audit.slips`, which the
statistical slip rule (STA-005) uses too: a figure read ``f`` times its true value, ``f`` a
factor of its column (:func:`energy_audit.slips.slip_factors_for`: 10ᵏ, k = ±1…±4, for the
quantities and the costs of electricity, gas and water). A price is cost ÷ quantity, so a slip
of the cost moves it by ``m = f``, a slip of the quantity by ``m = 1/f``
(:func:`energy_audit.slips.price_slip_factors`): a price off by 10, 100, 1,000 or 10,000 either
way. A candidate ``m`` is accepted when the *corrected* price ``price / m`` lies in the band
widened by ``unit_slip_tolerance`` in log space, ``[low / (1 + tol), high × (1 + tol)]``, i.e. its
log-distance from the band is at most ``log(1 + tol)``; among accepted candidates the one whose
corrected price is nearest (in log) to the band's geometric mid-point wins. A price just outside
the band has no candidate: a finding without a suggestion.

Which figure slipped: a multiplier only one figure's factors give is that figure's slip. Else,
with a previous return of the institution that reported both figures, the one whose ratio to last
year is nearer (in log) to the slip (a quantity too small by ``m`` is about ``1/m`` of last
year's; a cost too large by ``m`` is about ``m`` times last year's) — true figures change little
from year to year compared with a factor of 10. Without one: a price too *high* by 100 is a cost
typed without its decimal point (元 to the 分, two decimals: cost ÷ 100), by other factors a
quantity typed in a larger unit (万千瓦时 or 兆瓦时 under 千瓦时: quantity × ``m``) or short of a
digit (× 10); a price too *low* by 1,000 or 10,000 is a cost typed in 千元 or 万元 under 元 (cost ×
``f``), by 10 or 100 a quantity with extra digits (quantity ÷ ``f``).

The finding's ``field`` is the figure to correct (the quantity column when there is no
suggestion); ``value`` is that figure as read, ``expected_low`` / ``expected_high`` the range of
that figure the band allows given the other one (quantity: cost ÷ high … cost ÷ low; cost:
quantity × low … quantity × high), so value, range and suggestion share one unit; the messages
give the implied price and the band in 元 per unit.

Findings carry the returns' provenance (``source_file``, ``source_row``; null when absent) and a
stable ``finding_id`` whose key is ``source_file:source_sheet:source_row``, or, for a row without
``source_row`` (a frame built by hand), ``#<n>``: the row's occurrence (1, 2, …) among the rows of
its institution and year. Duplicate returns never share an id, and an id does not depend on the
other institutions or years in the frame.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import polars as pl

from energy_audit import contract
from energy_audit.errors import UnusableInputError
from energy_audit.factors import ITEM_COLUMNS
from energy_audit.findings import Rule, empty_findings, findings_from_hits, sort_findings
from energy_audit.indicators import unit_price_expr
from energy_audit.messages import number, number_text
from energy_audit.outliers.yoy import earlier_returns
from energy_audit.reconciliation import reconcile_totals
from energy_audit.slips import price_slip_factors
from energy_audit.verify.settings import VerifySettings

__all__ = [
    "CONSISTENCY_RULES",
    "check_consistency",
]


def _rule(rule_id: str, zh: str, en: str, *settings: str) -> Rule:
    return Rule(rule_id, "consistency", "warning", zh, en, settings)


R_AREA_CHANGE = _rule(
    "CON-001",
    "建筑面积较上年变化超过阈值",
    "building area changed from last year by more than the threshold",
    "area_change_max_pct",
)
R_OCCUPANTS_CHANGE = _rule(
    "CON-002",
    "用能人数较上年变化超过阈值",
    "occupants changed from last year by more than the threshold",
    "occupants_change_max_pct",
)
R_TOTAL_MISMATCH = _rule(
    "CON-003",
    "自报能源消费总量与分项折标煤合计不符（填报精度与认可的替代系数均不能解释）",
    "the institution's own total differs from Σ items × standard-coal coefficients (beyond its "
    "rounding and the accepted alternative coefficients)",
    "total_tolerance_pct",
    "total_tolerance_tce",
    "reconciliation_coefficients",
    "coefficient_table",
)
R_PV_EXCEEDS_ELECTRICITY = _rule(
    "CON-004",
    "光伏发电量大于用电量",
    "PV generation above the electricity consumed",
)
R_VEHICLES_NO_FUEL = _rule(
    "CON-005",
    "有车辆但未填报车用燃油(汽油、柴油)",
    "vehicles reported but no vehicle fuel (gasoline, diesel)",
)
R_METERED_HEAT_ZERO = _rule(
    "CON-006",
    "按热量计费但热力为零或未填报",
    "heat billed by meter (directory) but no heat reported",
)
R_ELECTRICITY_PRICE = _rule(
    "CON-007",
    "隐含电价(电费÷用电量)超出合理区间",
    "implied electricity price (cost ÷ kWh) outside its band",
    "electricity_price_yuan_per_kwh",
    "unit_slip_tolerance",
)
R_GAS_PRICE = _rule(
    "CON-008",
    "隐含天然气价格(天然气费÷用气量)超出合理区间",
    "implied natural-gas price (cost ÷ m³) outside its band",
    "gas_price_yuan_per_m3",
    "unit_slip_tolerance",
)
R_WATER_PRICE = _rule(
    "CON-009",
    "隐含水价(水费÷用水量)超出合理区间",
    "implied water price (cost ÷ m³) outside its band",
    "water_price_yuan_per_m3",
    "unit_slip_tolerance",
)

CONSISTENCY_RULES: Final[tuple[Rule, ...]] = (
    R_AREA_CHANGE,
    R_OCCUPANTS_CHANGE,
    R_TOTAL_MISMATCH,
    R_PV_EXCEEDS_ELECTRICITY,
    R_VEHICLES_NO_FUEL,
    R_METERED_HEAT_ZERO,
    R_ELECTRICITY_PRICE,
    R_GAS_PRICE,
    R_WATER_PRICE,
)
"""Every consistency rule, in id order."""

KGCE_PER_TCE: Final = 1000.0
"""kgce in one tce: a reported total this many times the computed one was typed in kgce."""

_RETURNS: Final = contract.table("returns")
_PROVENANCE: Final = (
    ("source_file", pl.String),
    ("source_sheet", pl.String),
    ("source_row", pl.Int64),
)
_ITEMS: Final = tuple(ITEM_COLUMNS.values())
_NUMERIC: Final = (
    "building_area_m2",
    "occupants",
    "vehicles",
    "pv_generation_kwh",
    *_ITEMS,
    "water_m3",
    "electricity_cost_yuan",
    "natural_gas_cost_yuan",
    "water_cost_yuan",
    "reported_total_tce",
)


@dataclass(frozen=True)
class _Priced:
    """A priced item: its quantity and cost columns, band and names."""

    rule: Rule
    quantity: str
    cost: str
    band: str  # name of the VerifySettings field
    price_zh: str
    price_en: str
    quantity_zh: str
    cost_zh: str
    unit_zh: str
    unit_en: str
    larger_zh: Mapping[int, str]  # the quantity's larger units, by factor
    larger_en: Mapping[int, str]


_PRICED: Final[tuple[_Priced, ...]] = (
    _Priced(
        R_ELECTRICITY_PRICE,
        "electricity_kwh",
        "electricity_cost_yuan",
        "electricity_price_yuan_per_kwh",
        "电价",
        "electricity price",
        "用电量",
        "电费",
        "千瓦时",
        "kWh",
        {10_000: "万千瓦时", 1000: "兆瓦时"},
        {10_000: "10⁴ kWh (万千瓦时)", 1000: "MWh"},
    ),
    _Priced(
        R_GAS_PRICE,
        "natural_gas_m3",
        "natural_gas_cost_yuan",
        "gas_price_yuan_per_m3",
        "天然气价格",
        "natural-gas price",
        "天然气用量",
        "天然气费",
        "立方米",
        "m³",
        {10_000: "万立方米", 1000: "千立方米"},
        {10_000: "10⁴ m³ (万立方米)", 1000: "10³ m³"},
    ),
    _Priced(
        R_WATER_PRICE,
        "water_m3",
        "water_cost_yuan",
        "water_price_yuan_per_m3",
        "水价",
        "water price",
        "用水量",
        "水费",
        "立方米",
        "m³",
        {10_000: "万立方米", 1000: "千立方米"},
        {10_000: "10⁴ m³ (万立方米)", 1000: "10³ m³"},
    ),
)

_COST_LARGER_ZH: Final[Mapping[int, str]] = {10_000: "万元", 1000: "千元"}
_COST_LARGER_EN: Final[Mapping[int, str]] = {10_000: "10⁴ yuan (万元)", 1000: "10³ yuan (千元)"}
COST_WITHOUT_DECIMAL_POINT: Final = 100.0
"""A cost in 元 to the 分 (two decimals) typed without its decimal point is this many times too
large: without last year, a price too high by this factor is taken as the cost's slip."""


# --------------------------------------------------------------------------------------------
# Preparation
# --------------------------------------------------------------------------------------------


_FRAME_ZH: Final = {"returns": "填报数据", "history": "历史数据", "directory": "名录库数据"}
"""Chinese name of the frames :func:`_require` checks."""


def _require(frame: pl.DataFrame, what: str, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UnusableInputError(
            f"{_FRAME_ZH.get(what, what)}缺少列 {contract.names_zh(missing)}",
            f"{what} frame lacks column(s) {', '.join(missing)}",
        )


def _canonical(frame: pl.DataFrame, *, provenance: bool) -> pl.DataFrame:
    """Return the columns the rules read, typed; absent ones as the contract says (items 0)."""
    exprs = [
        pl.col("institution_id").cast(pl.String),
        pl.col("year").cast(pl.Int64, strict=False),
    ]
    for name in _NUMERIC:
        if name in frame.columns:
            exprs.append(pl.col(name).cast(pl.Float64, strict=False))
        else:
            default = _RETURNS.column(name).absent_default
            exprs.append(pl.lit(default, pl.Float64).alias(name))
    if provenance:
        for name, dtype in _PROVENANCE:
            src = pl.col(name).cast(dtype) if name in frame.columns else pl.lit(None, dtype)
            exprs.append(src.alias(name))
    return frame.select(exprs)


_PREVIOUS: Final = (
    "building_area_m2",
    "occupants",
    *(p.quantity for p in _PRICED),
    *(p.cost for p in _PRICED),
)


def _with_previous(r: pl.DataFrame, history: pl.DataFrame | None) -> pl.DataFrame:
    """Add ``prev_year`` and ``prev_<column>`` (:data:`_PREVIOUS`) of each row's previous return.

    The previous return of :mod:`energy_audit.outliers.yoy` (one definition: the latest
    earlier year in history ∪ returns, history first; one sort and gathers, no join).
    """
    h = None if history is None else _canonical(history, provenance=False)
    earlier = earlier_returns(r, h, _PREVIOUS, "institution_id", "year")
    last = earlier.lag(1)
    return r.with_columns(
        earlier.year.gather(last).alias("prev_year"),
        *(earlier.values[c].gather(last).alias(f"prev_{c}") for c in _PREVIOUS),
    )


# --------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------


def _pct(expr: pl.Expr) -> pl.Expr:
    """Show a signed percentage with one decimal: ``+20.0``, ``-15.3``."""
    text = expr.round(1).cast(pl.String)
    return pl.when(expr > 0).then(pl.concat_str(pl.lit("+"), text)).otherwise(text)


def _hit_columns() -> list[str]:
    """Columns every hit frame carries: provenance and the row index (for the finding key)."""
    return ["source_file", "source_sheet", "source_row", "_row"]


def _with_keys(r: pl.DataFrame, hits: Mapping[Rule, pl.DataFrame]) -> dict[Rule, pl.DataFrame]:
    """Add the finding key to every hit (module docstring), computed for the hit rows only."""
    if not hits:
        return {}
    occurrence = pl.DataFrame(schema={"_row": pl.UInt32, "_occurrence": pl.Int64})
    if r["source_row"].null_count():
        rows = pl.concat([h.select("_row") for h in hits.values()])["_row"].unique()
        ids = r.filter(pl.col("_row").is_in(rows.implode())).select("institution_id", "year")
        occurrence = (
            r.select("_row", "institution_id", "year")
            .join(ids.unique(), on=["institution_id", "year"], how="semi", nulls_equal=True)
            .sort("_row")
            .select(
                "_row",
                pl.int_range(1, pl.len() + 1, dtype=pl.Int64)
                .over("institution_id", "year")
                .alias("_occurrence"),
            )
        )
    row_key = pl.concat_str(
        pl.col("source_file").fill_null(""),
        pl.col("source_sheet").fill_null(""),
        pl.col("source_row").cast(pl.String),
        separator=":",
    )
    index_key = pl.concat_str(pl.lit("#"), pl.col("_occurrence").cast(pl.String))
    key = pl.when(pl.col("source_row").is_not_null()).then(row_key).otherwise(index_key)
    return {
        rule: h.join(occurrence, on="_row", how="left", maintain_order="left")
        .with_columns(key.alias("key"))
        .drop("_row", "_occurrence", "source_sheet")
        for rule, h in hits.items()
    }


# --------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------


def _change(
    r: pl.DataFrame, column: str, max_pct: float, zh: str, en: str, unit_zh: str, unit_en: str
) -> pl.DataFrame:
    """Rows whose ``column`` changed by more than ``max_pct`` % from the previous return."""
    cur, prev = pl.col(column), pl.col(f"prev_{column}")
    change = ((cur - prev) / prev * 100.0).round(6)  # round: 110 vs 100 is 10 %, not 10.000…2 %
    hits = r.filter((cur > 0) & (prev > 0) & (change.abs() > max_pct)).with_columns(
        change.alias("_pct")
    )
    threshold = number_text(max_pct)
    return hits.select(
        "institution_id",
        "year",
        pl.lit(column).alias("field"),
        cur.alias("value"),
        (prev * (1 - max_pct / 100.0)).alias("expected_low"),
        (prev * (1 + max_pct / 100.0)).alias("expected_high"),
        pl.concat_str(
            pl.lit(f"{zh}由 "),
            pl.col("prev_year").cast(pl.String),
            pl.lit(" 年的 "),
            number(prev),
            pl.lit(f" {unit_zh}变为 "),
            pl.col("year").cast(pl.String),
            pl.lit(" 年的 "),
            number(cur),
            pl.lit(f" {unit_zh}，变化 "),
            _pct(pl.col("_pct")),
            pl.lit(f"%，超过 ±{threshold}%"),
        ).alias("message_zh"),
        pl.concat_str(
            pl.lit(f"{en} "),
            number(prev),
            pl.lit(f" {unit_en} in "),
            pl.col("prev_year").cast(pl.String),
            pl.lit(", "),
            number(cur),
            pl.lit(f" {unit_en} in "),
            pl.col("year").cast(pl.String),
            pl.lit(": "),
            _pct(pl.col("_pct")),
            pl.lit(f" %, more than ±{threshold} %"),
        ).alias("message_en"),
        *_hit_columns(),
    )


def _near(ratio: pl.Expr, factor: float, tolerance: float) -> pl.Expr:
    """``ratio`` within ``tolerance`` of ``factor``, measured in log: |log(ratio / factor)|."""
    return (ratio / factor).log().abs() <= math.log1p(tolerance)


def _total_mismatch(r: pl.DataFrame, s: VerifySettings) -> pl.DataFrame:
    """CON-003: own totals that do not reconcile with the items and whose gap is material."""
    reported = pl.col("reported_total_tce")
    computed, alternative = pl.col("computed_total_tce"), pl.col("alternative_total_tce")

    def material(basis: pl.Expr) -> pl.Expr:
        gap = (reported - basis).abs()
        return (gap > s.total_tolerance_tce) & (gap > basis.abs() * s.total_tolerance_pct / 100.0)

    hits = reconcile_totals(
        r.filter(reported.is_not_null()),
        coefficients=s.coefficient_table,
        alternative_coefficients=s.reconciliation_coefficients,
    ).filter(~pl.col("is_reconciled") & material(computed) & material(alternative))
    ratio = reported / computed
    kgce = (computed > 0) & _near(ratio, KGCE_PER_TCE, s.unit_slip_tolerance)
    share = pl.when(computed != 0).then(
        pl.concat_str(pl.lit("（"), _pct((reported - computed) / computed * 100.0), pl.lit("%）"))
    )
    share_en = pl.when(computed != 0).then(
        pl.concat_str(pl.lit(" ("), _pct((reported - computed) / computed * 100.0), pl.lit(" %)"))
    )
    other = (alternative - computed).abs() > 0
    alternative_zh = pl.when(other).then(
        pl.concat_str(pl.lit("，按认可的替代折标系数为 "), number(alternative), pl.lit(" 吨标准煤"))
    )
    alternative_en = pl.when(other).then(
        pl.concat_str(
            pl.lit(", "), number(alternative), pl.lit(" tce with the accepted alternative ones")
        )
    )
    return hits.select(
        "institution_id",
        "year",
        pl.lit("reported_total_tce").alias("field"),
        reported.alias("value"),
        computed.alias("expected_low"),
        computed.alias("expected_high"),
        computed.alias("suggested_value"),
        pl.concat_str(
            [
                pl.lit("自报能源消费总量 "),
                number(reported),
                pl.lit(" 吨标准煤，按分项折标煤计算为 "),
                number(computed),
                pl.lit(" 吨标准煤，相差 "),
                number(reported - computed),
                pl.lit(" 吨标准煤"),
                share,
                alternative_zh,
                pl.when(kgce).then(pl.lit("；疑似单位误填：千克标准煤填作吨标准煤")),
            ],
            ignore_nulls=True,
        ).alias("message_zh"),
        pl.concat_str(
            [
                pl.lit("own total "),
                number(reported),
                pl.lit(" tce, Σ items × coefficients "),
                number(computed),
                pl.lit(" tce: differs by "),
                number(reported - computed),
                pl.lit(" tce"),
                share_en,
                alternative_en,
                pl.when(kgce).then(pl.lit("; likely unit slip: kgce typed as tce")),
            ],
            ignore_nulls=True,
        ).alias("message_en"),
        *_hit_columns(),
    )


def _pv_exceeds(r: pl.DataFrame) -> pl.DataFrame:
    pv, elec = pl.col("pv_generation_kwh"), pl.col("electricity_kwh")
    hits = r.filter(pv.is_not_null() & elec.is_not_null() & (pv > elec))
    return hits.select(
        "institution_id",
        "year",
        pl.lit("pv_generation_kwh").alias("field"),
        pv.alias("value"),
        pl.lit(0.0).alias("expected_low"),
        elec.alias("expected_high"),
        pl.concat_str(
            pl.lit("光伏发电量 "),
            number(pv),
            pl.lit(" 千瓦时大于用电量 "),
            number(elec),
            pl.lit(" 千瓦时"),
        ).alias("message_zh"),
        pl.concat_str(
            pl.lit("PV generation "),
            number(pv),
            pl.lit(" kWh is above the electricity consumed, "),
            number(elec),
            pl.lit(" kWh"),
        ).alias("message_en"),
        *_hit_columns(),
    )


def _vehicles_no_fuel(r: pl.DataFrame, fuel_columns: tuple[str, ...]) -> pl.DataFrame:
    no_fuel = pl.all_horizontal(pl.col(c).is_null() | (pl.col(c) == 0) for c in fuel_columns)
    hits = r.filter((pl.col("vehicles") > 0) & no_fuel)
    lpg = pl.col("lpg_kg")
    with_lpg_zh = pl.when(lpg > 0).then(
        pl.concat_str(pl.lit("（液化石油气 "), number(lpg), pl.lit(" 千克，通常为炊事用)"))
    )
    with_lpg_en = pl.when(lpg > 0).then(
        pl.concat_str(pl.lit(" (LPG "), number(lpg), pl.lit(" kg, usually for cooking)"))
    )
    return hits.select(
        "institution_id",
        "year",
        pl.lit("vehicles").alias("field"),
        pl.col("vehicles").alias("value"),
        pl.concat_str(
            [
                pl.lit("车辆数 "),
                number(pl.col("vehicles")),
                pl.lit(" 辆，但汽油、柴油均为 0 或未填报"),
                with_lpg_zh,
            ],
            ignore_nulls=True,
        ).alias("message_zh"),
        pl.concat_str(
            [
                number(pl.col("vehicles")),
                pl.lit(" vehicles but gasoline and diesel are 0 or not reported"),
                with_lpg_en,
            ],
            ignore_nulls=True,
        ).alias("message_en"),
        *_hit_columns(),
    )


def _metered_heat_zero(r: pl.DataFrame, directory: pl.DataFrame) -> pl.DataFrame:
    heat = pl.col("heat_gj")
    if "heat_billing" not in directory.columns:
        return pl.DataFrame()
    billing = directory.select(pl.col("institution_id").cast(pl.String), "heat_billing")
    metered = billing.filter(pl.col("heat_billing") == "metered").select("institution_id")
    hits = r.filter(heat.is_null() | (heat == 0)).join(
        metered, on="institution_id", how="semi", maintain_order="left"
    )
    # An institution listed twice is taken by its first row: look only at the few ids that hit.
    first = billing.filter(pl.col("institution_id").is_in(hits["institution_id"].implode()))
    first = first.filter(pl.col("institution_id").is_first_distinct())
    hits = hits.join(
        first.filter(pl.col("heat_billing") == "metered").select("institution_id"),
        on="institution_id",
        how="semi",
        maintain_order="left",
    )
    what_zh = pl.when(heat.is_null()).then(pl.lit("未填报")).otherwise(pl.lit("为 0"))
    what_en = pl.when(heat.is_null()).then(pl.lit("not reported")).otherwise(pl.lit("0 GJ"))
    return hits.select(
        "institution_id",
        "year",
        pl.lit("heat_gj").alias("field"),
        heat.alias("value"),
        pl.concat_str(pl.lit("名录库中供热计费方式为按热量计费，但热力"), what_zh).alias(
            "message_zh"
        ),
        pl.concat_str(pl.lit("heat is billed by meter (directory) but heat is "), what_en).alias(
            "message_en"
        ),
        *_hit_columns(),
    )


_DIGITS: Final[Mapping[int, tuple[str, str, str]]] = {
    10: ("一", "a digit", "an extra digit"),
    100: ("两", "two digits", "two extra digits"),
}
"""Slips by a factor of 10 or 100 that no unit explains: digits missing or typed in excess."""


def _slip_texts(p: _Priced, f: float) -> dict[tuple[str, str], tuple[str, str]]:
    """(figure, direction) → (zh, en) description of a slip by factor ``f``.

    Figure ``quantity`` or ``cost``; direction ``up`` (the true figure is ``f`` times the one
    read) or ``down`` (``1/f`` times).
    """
    whole = round(f)
    key = whole if math.isclose(f, whole, rel_tol=1e-9) else None
    q_big_zh, q_big_en = p.larger_zh.get(key or 0), p.larger_en.get(key or 0)
    c_big_zh, c_big_en = _COST_LARGER_ZH.get(key or 0), _COST_LARGER_EN.get(key or 0)
    n = number_text(f)
    out: dict[tuple[str, str], tuple[str, str]] = {}
    for figure, name_zh, unit_zh, unit_en, big_zh, big_en in (
        ("quantity", p.quantity_zh, p.unit_zh, p.unit_en, q_big_zh, q_big_en),
        ("cost", p.cost_zh, "元", "yuan", c_big_zh, c_big_en),
    ):
        if big_zh is not None and big_en is not None:
            out[(figure, "up")] = (
                f"疑似单位误填：{big_zh}填作{unit_zh}",
                f"likely unit slip: {big_en} typed as {unit_en}",
            )
            out[(figure, "down")] = (
                f"疑似单位误填：{unit_zh}填作{big_zh}",
                f"likely unit slip: {unit_en} typed as {big_en}",
            )
        elif key in _DIGITS:
            digits_zh, digits_en, extra_en = _DIGITS[key]
            out[(figure, "up")] = (
                f"疑似{name_zh}少录{digits_zh}位数",
                f"likely the {figure} lacks {digits_en}",
            )
            out[(figure, "down")] = (
                f"疑似{name_zh}多录{digits_zh}位数",
                f"likely the {figure} has {extra_en}",
            )
            if figure == "cost" and key == COST_WITHOUT_DECIMAL_POINT:
                out[(figure, "down")] = (
                    f"疑似{name_zh}漏输小数点（多录两位数）",
                    "likely the cost was typed without its decimal point (two extra digits)",
                )
        else:
            out[(figure, "up")] = (
                f"疑似{name_zh}偏小 {n} 倍",
                f"likely the {figure} is {n} times too small",
            )
            out[(figure, "down")] = (
                f"疑似{name_zh}偏大 {n} 倍",
                f"likely the {figure} is {n} times too large",
            )
    return out


def _price(r: pl.DataFrame, p: _Priced, s: VerifySettings) -> pl.DataFrame:
    low, high = getattr(s, p.band)
    q, c = pl.col(p.quantity), pl.col(p.cost)
    price = pl.col("_price")
    hits = r.with_columns(unit_price_expr(p.quantity, p.cost).alias("_price")).filter(
        (price < low) | (price > high)
    )
    if hits.is_empty():
        return pl.DataFrame()

    # The slip m (price read = true price × m) whose corrected price is nearest the band's middle.
    widen = 1.0 + s.unit_slip_tolerance
    middle = math.sqrt(low * high)
    slips = price_slip_factors(p.quantity, p.cost, s.coefficient_table)
    hits = hits.with_columns(
        pl.lit(None, pl.Float64).alias("_m"), pl.lit(math.inf).alias("_distance")
    )
    for slip in slips:
        corrected = price / slip.multiplier
        accepted = (corrected >= low / widen) & (corrected <= high * widen)
        accepted = accepted & ((price > high) if slip.multiplier > 1 else (price < low))
        distance = (corrected / middle).log().abs()
        better = accepted & (distance < pl.col("_distance"))
        hits = hits.with_columns(
            pl.when(better).then(pl.lit(slip.multiplier)).otherwise(pl.col("_m")).alias("_m"),
            pl.when(better).then(distance).otherwise(pl.col("_distance")).alias("_distance"),
        )

    # Which figure slipped: the one figure whose factors give m, else last year's figures
    # decide, else the default of the module docstring.
    m = pl.col("_m")

    def at(multiplier: float) -> pl.Expr:
        return (m - multiplier).abs() <= 1e-9 * max(multiplier, 1.0)

    only_cost = pl.any_horizontal(
        pl.lit(False), *(at(x.multiplier) for x in slips if x.figures == ("cost",))
    )
    only_quantity = pl.any_horizontal(
        pl.lit(False), *(at(x.multiplier) for x in slips if x.figures == ("quantity",))
    )
    q0, c0 = pl.col(f"prev_{p.quantity}"), pl.col(f"prev_{p.cost}")
    cost_units = [float(k) for k in _COST_LARGER_ZH]
    by_default = (m < 1) & pl.any_horizontal((1.0 / m - u).abs() < 1e-6 * u for u in cost_units)
    by_default = by_default | at(COST_WITHOUT_DECIMAL_POINT)
    known = (q0 > 0) & (c0 > 0)
    quantity_gap = (q / q0 * m).log().abs()
    cost_gap = (c / c0 / m).log().abs()
    by_history = pl.when(known).then(cost_gap < quantity_gap).otherwise(by_default)
    cost_slip = m.is_not_null() & (only_cost | (~only_quantity & by_history))
    hits = hits.with_columns(cost_slip.fill_null(False).alias("_cost_slip"))
    on_cost = pl.col("_cost_slip")

    slip_zh = pl.lit(None, pl.String)
    slip_en = pl.lit(None, pl.String)
    for slip in slips:
        up = slip.multiplier > 1  # the price is too high: the true quantity is larger
        texts = _slip_texts(p, slip.multiplier if up else 1.0 / slip.multiplier)
        zh_q, en_q = texts[("quantity", "up" if up else "down")]
        zh_c, en_c = texts[("cost", "down" if up else "up")]
        slip_zh = pl.when(at(slip.multiplier) & ~on_cost).then(pl.lit(zh_q)).otherwise(slip_zh)
        slip_zh = pl.when(at(slip.multiplier) & on_cost).then(pl.lit(zh_c)).otherwise(slip_zh)
        slip_en = pl.when(at(slip.multiplier) & ~on_cost).then(pl.lit(en_q)).otherwise(slip_en)
        slip_en = pl.when(at(slip.multiplier) & on_cost).then(pl.lit(en_c)).otherwise(slip_en)

    suggested = pl.when(m.is_null()).then(None).when(on_cost).then(c / m).otherwise(q * m)
    hits = hits.with_columns(
        suggested.alias("suggested_value"), slip_zh.alias("_slip_zh"), slip_en.alias("_slip_en")
    )
    sugg = pl.col("suggested_value")
    fix_zh = pl.when(m.is_not_null()).then(
        pl.concat_str(
            pl.lit("；"),
            pl.col("_slip_zh"),
            pl.lit("，建议"),
            pl.when(on_cost).then(pl.lit(p.cost_zh)).otherwise(pl.lit(p.quantity_zh)),
            pl.lit("改为 "),
            number(sugg),
            pl.when(on_cost).then(pl.lit(" 元")).otherwise(pl.lit(f" {p.unit_zh}")),
        )
    )
    fix_en = pl.when(m.is_not_null()).then(
        pl.concat_str(
            pl.lit("; "),
            pl.col("_slip_en"),
            pl.lit(", suggested "),
            pl.when(on_cost).then(pl.lit(p.cost)).otherwise(pl.lit(p.quantity)),
            pl.lit(" "),
            number(sugg),
        )
    )
    band_zh = f"{number_text(low)}–{number_text(high)} 元/{p.unit_zh}"
    band_en = f"{number_text(low)}-{number_text(high)} yuan/{p.unit_en}"
    return hits.select(
        "institution_id",
        "year",
        pl.when(on_cost).then(pl.lit(p.cost)).otherwise(pl.lit(p.quantity)).alias("field"),
        pl.when(on_cost).then(c).otherwise(q).alias("value"),
        pl.when(on_cost).then(q * low).otherwise(c / high).alias("expected_low"),
        pl.when(on_cost).then(q * high).otherwise(c / low).alias("expected_high"),
        "suggested_value",
        pl.concat_str(
            [
                pl.lit(f"隐含{p.price_zh} "),
                number(price),
                pl.lit(f" 元/{p.unit_zh}（{p.cost_zh} "),
                number(c),
                pl.lit(f" 元 ÷ {p.quantity_zh} "),
                number(q),
                pl.lit(f" {p.unit_zh}）超出合理区间 {band_zh}"),
                fix_zh,
            ],
            ignore_nulls=True,
        ).alias("message_zh"),
        pl.concat_str(
            [
                pl.lit(f"implied {p.price_en} "),
                number(price),
                pl.lit(f" yuan/{p.unit_en} (cost "),
                number(c),
                pl.lit(" yuan ÷ "),
                number(q),
                pl.lit(f" {p.unit_en}) outside {band_en}"),
                fix_en,
            ],
            ignore_nulls=True,
        ).alias("message_en"),
        *_hit_columns(),
    )


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def check_consistency(
    returns: pl.DataFrame,
    *,
    directory: pl.DataFrame,
    history: pl.DataFrame | None = None,
    settings: VerifySettings | None = None,
) -> pl.DataFrame:
    """Run every consistency rule on the yearly returns and return the findings.

    Parameters
    ----------
    returns : polars.DataFrame
        Canonical returns (data contract §2), one or several years, with provenance columns
        (``source_file``, ``source_sheet``, ``source_row``) where read from files. An absent
        energy item counts 0; other absent columns are "not reported" (their rules stay silent).
    directory : polars.DataFrame
        Canonical directory (data contract §1): ``institution_id`` and ``heat_billing`` are
        read (an institution listed twice is taken by its first row).
    history : polars.DataFrame, optional
        Canonical returns of earlier years. The previous return of an institution is the one of
        the latest earlier year found in ``history`` or in ``returns`` itself (module docstring).
    settings : VerifySettings, optional
        Thresholds (default :class:`VerifySettings`): ``area_change_max_pct`` [%],
        ``occupants_change_max_pct`` [%], ``total_tolerance_pct`` [%], ``total_tolerance_tce``
        [tce], ``reconciliation_coefficients`` [kgce/unit], the price bands [元/unit],
        ``unit_slip_tolerance`` and ``coefficient_table``.
        The price rules' slip factors are those of :mod:`energy_audit.slips` (module
        docstring), not a setting.

    Returns
    -------
    polars.DataFrame
        Findings (data contract §5) of :data:`CONSISTENCY_RULES`, category ``consistency``,
        sorted by priority.

    Raises
    ------
    UnusableInputError
        If ``returns`` or ``history`` lacks ``institution_id`` or ``year``, or ``directory``
        lacks ``institution_id``.
    SettingsError
        If the coefficient table or the alternative coefficients of the settings are unusable.

    Notes
    -----
    Vectorised polars: previous returns come from one sort of history ∪ returns and gathers
    (:func:`energy_audit.outliers.yoy.earlier_returns`); the coefficients of each year
    present are fetched once and applied with ``when/then`` on ``year``. Messages and ids are
    built only for the rows that hit.

    Examples
    --------
    >>> import polars as pl
    >>> r = pl.DataFrame({"institution_id": ["X"], "year": [2024], "electricity_kwh": [120.0],
    ...     "electricity_cost_yuan": [1_000_000.0]})
    >>> d = pl.DataFrame({"institution_id": ["X"], "heat_billing": ["by_area"]})
    >>> f = check_consistency(r, directory=d)
    >>> f.select("rule_id", "field", "suggested_value").row(0)
    ('CON-007', 'electricity_kwh', 1200000.0)
    """
    s = settings or VerifySettings()
    _require(returns, "returns", ("institution_id", "year"))
    _require(directory, "directory", ("institution_id",))
    if history is not None:
        _require(history, "history", ("institution_id", "year"))
    r = _canonical(returns, provenance=True).with_row_index("_row")
    r = _with_previous(r, history)
    hits: dict[Rule, pl.DataFrame] = {
        R_AREA_CHANGE: _change(
            r,
            "building_area_m2",
            s.area_change_max_pct,
            "建筑面积",
            "building area",
            "平方米",
            "m²",
        ),
        R_OCCUPANTS_CHANGE: _change(
            r, "occupants", s.occupants_change_max_pct, "用能人数", "occupants", "人", "persons"
        ),
        R_TOTAL_MISMATCH: _total_mismatch(r, s),
        R_PV_EXCEEDS_ELECTRICITY: _pv_exceeds(r),
        R_VEHICLES_NO_FUEL: _vehicles_no_fuel(r, s.vehicle_fuel_columns),
        R_METERED_HEAT_ZERO: _metered_heat_zero(r, directory),
        **{p.rule: _price(r, p, s) for p in _PRICED},
    }
    hits = _with_keys(r, {rule: h for rule, h in hits.items() if h.height})
    parts = [findings_from_hits(rule, hits[rule]) for rule in CONSISTENCY_RULES if rule in hits]
    return sort_findings(pl.concat(parts, how="vertical")) if parts else empty_findings()
