"""Statistical findings: the generic outlier methods of :mod:`energy_audit.outliers`, wired in.

:func:`check_statistical` scores a year's returns with each method, turns what stands out into
findings of :data:`STATISTICAL_RULES` (category ``statistical``) and gives every finding of a
return one priority, so that the panel sees the likely errors first:

- ``STA-001`` … ``STA-003``: energy per m², energy per person and water per person far from the
  peer median (robust z on the log scale, peers = same year and sector + subsector → sector →
  all; :func:`energy_audit.outliers.peer.robust_peer_scores`). ``expected_low`` /
  ``expected_high`` are the peer band median · exp(∓k · scale).
- ``STA-004``: an item (electricity, natural gas, heat, water) or the total energy far from what
  a robust regression on log area, log occupants and the directory's sector, subsector, level,
  district and heat billing expects (:func:`energy_audit.outliers.regression.expected_consumption`,
  fitted per item and year). ``expected_low`` / ``expected_high``: the prediction interval.
- ``STA-005``: the change on last year matches a unit-slip factor (10ᵏ, 1,000, fuel densities;
  :func:`energy_audit.outliers.yoy.year_over_year_long`); ``suggested_value`` is the figure
  divided by the factor. A change that undoes last year's slip is not flagged (last year was
  wrong, not this year), nor one where this year's figure fits the peers (per m², same year and
  sector) better than the correction would: then last year slipped.
- ``STA-006``: a large change on last year (robust z of the log change among the year's returns)
  that matches no unit factor.
- ``STA-007``: every quantity and cost identical to last year
  (:func:`energy_audit.outliers.copies.copied_figures`).
- ``STA-008``: figures identical to another unit of the same parent
  (:func:`energy_audit.outliers.copies.identical_within_groups`, group ``parent_id``).
- ``STA-009`` (info): a metered figure rounder than chance, the institution's history and its
  peers make likely (:func:`energy_audit.outliers.copies.round_numbers`).
- ``STA-010``: a batch — a year's returns of one district or one parent body — whose pooled
  quantities' first-two digits are far from Benford's law
  (:func:`energy_audit.outliers.digits.benford_by_group`): Nigrini's MAD in "nonconformity"
  *and* a chi-square q-value (Benjamini-Hochberg over the batches) ≤ ``benford_q``. A finding
  of the batch: ``field`` is the column forming it (``district_code``, ``parent_id``),
  ``institution_id`` the parent body (null for a district, named in the message), ``value``
  the MAD, ``expected_high`` the nonconformity bound 0.0022, priority 1 − q of the batch.
  The test is scale invariant, so canonical units serve as well as the units reported. No
  chart draws a batch yet (:func:`energy_audit.panel.evidence.write_evidence` records why in
  its index); the numbers are in the message. The last-digit test
  (:func:`energy_audit.outliers.digits.last_digit_by_group`) is not wired in: canonical
  figures converted from 万千瓦时 or 万立方米 end in zeros by the conversion, which would
  condemn every district whose institutions report in 万 units; use it on figures as reported.

Priority
--------
Each method gives every return it could score one p-value (for a method scoring several
columns, the smallest p times their number, Bonferroni; copies, which have no p-value, count with
``copy_p`` where they fire). Per return the methods' p-values are combined with the Cauchy
combination test (:func:`energy_audit.outliers.priority.cauchy_combination_by`; p-values above
``combine_p_max`` are truncated to it), the combined p-values of all returns are turned into
Benjamini-Hochberg q-values (:func:`energy_audit.outliers.priority.benjamini_hochberg`) and the
priority is :func:`energy_audit.outliers.priority.priority_from_q`, 1 − q. Returns of equal q
(BH q-values tie often) are told apart by their combined p: the priority is lowered by at most
:data:`TIE_BREAK` in the order of the combined p, so :func:`q_value` (1 − priority) is the q-value
to within 10⁻⁹. Every finding of a return carries the return's priority: a return hit by
several methods has a smaller combined p and ranks higher.

The panel asks for "the top N returns" with :func:`top_findings` and for "everything at a
false-discovery rate q₀" with :func:`findings_at_fdr`; :func:`score_returns` gives the
per-return table (p per method, combined p, q, priority) behind both.

References
----------
.. [1] Domain reference, §6 "What reviewers look for".
.. [2] Liu, Y. and Xie, J. (2020). Cauchy combination test. JASA 115(529), 393-402.
.. [3] Benjamini, Y. and Hochberg, Y. (1995). Controlling the false discovery rate. J. R.
   Statist. Soc. B 57(1), 289-300.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

import numpy as np
import polars as pl
from scipy import special

from energy_audit import contract
from energy_audit.districts import load_districts
from energy_audit.errors import UnusableInputError
from energy_audit.factors import ITEM_COLUMNS
from energy_audit.findings import Rule, empty_findings, findings_from_hits, sort_findings
from energy_audit.indicators import indicators
from energy_audit.outliers.copies import copied_figures, identical_within_groups, round_numbers
from energy_audit.outliers.digits import NIGRINI_FIRST_TWO_MAD, benford_by_group
from energy_audit.outliers.peer import robust_peer_scores
from energy_audit.outliers.priority import (
    benjamini_hochberg,
    cauchy_combination_by,
    priority_from_q,
)
from energy_audit.outliers.regression import expected_consumption
from energy_audit.outliers.yoy import year_over_year_long
from energy_audit.verify.settings import StatisticalSettings, VerifySettings

__all__ = [
    "EVIDENCE",
    "METHODS",
    "STATISTICAL_RULES",
    "TIE_BREAK",
    "check_statistical",
    "evidence_data",
    "findings_at_fdr",
    "q_value",
    "score_returns",
    "top_findings",
]


def _rule(rule_id: str, severity: str, zh: str, en: str, *settings: str) -> Rule:
    return Rule(rule_id, "statistical", severity, zh, en, settings)  # type: ignore[arg-type]


_S = "statistical."
R_PEER_ENERGY_M2 = _rule(
    "STA-001",
    "warning",
    "单位建筑面积能耗偏离同类机构",
    "energy per m² far from peers (robust z, log scale)",
    _S + "peer_k",
    _S + "peer_min_group_size",
)
R_PEER_ENERGY_CAPITA = _rule(
    "STA-002",
    "warning",
    "人均能耗偏离同类机构",
    "energy per person far from peers (robust z, log scale)",
    _S + "peer_k",
    _S + "peer_min_group_size",
)
R_PEER_WATER_CAPITA = _rule(
    "STA-003",
    "warning",
    "人均用水量偏离同类机构",
    "water per person far from peers (robust z, log scale)",
    _S + "peer_k",
    _S + "peer_min_group_size",
)
R_MODEL = _rule(
    "STA-004",
    "warning",
    "消费量偏离按面积、人数、类型预测的期望值",
    "consumption far from the value expected from area, occupants and kind (robust regression)",
    _S + "model_targets",
    _S + "model_categorical",
    _S + "model_z",
    _S + "model_level",
    _S + "model_max_fit_rows",
)
R_UNIT_SLIP = _rule(
    "STA-005",
    "warning",
    "与上年之比接近单位换算倍数（疑似单位错误）",
    "ratio to last year near a unit factor (likely unit slip)",
    _S + "yoy_tolerance",
    _S + "slip_p",
)
R_YOY_CHANGE = _rule(
    "STA-006",
    "warning",
    "较上年变化异常大",
    "unusually large change on last year (robust z of the log change)",
    _S + "yoy_z",
)
R_COPIED = _rule(
    "STA-007",
    "warning",
    "各项数量与上年完全相同（疑似照抄上年）",
    "every quantity identical to last year (likely copied)",
    _S + "copy_min_nonzero",
)
R_SIBLING = _rule(
    "STA-008",
    "warning",
    "与同一上级单位的其他机构数据完全相同",
    "figures identical to another unit of the same parent",
    _S + "copy_min_nonzero",
)
R_ROUND = _rule(
    "STA-009",
    "info",
    "计量数据为异常整数（疑似估算）",
    "metered figure suspiciously round (likely an estimate)",
    _S + "round_p_max",
    _S + "round_prior_weight",
)

R_DIGITS = _rule(
    "STA-010",
    "warning",
    "区或上级单位的填报数据前两位数字不符合本福特定律（疑似成批编造）",
    "first-two digits of a district's or parent body's figures far from Benford's law "
    "(batch of made-up figures?)",
    _S + "digit_groups",
    _S + "benford_min_count",
    _S + "benford_q",
)

STATISTICAL_RULES: Final = (
    R_PEER_ENERGY_M2,
    R_PEER_ENERGY_CAPITA,
    R_PEER_WATER_CAPITA,
    R_MODEL,
    R_UNIT_SLIP,
    R_YOY_CHANGE,
    R_COPIED,
    R_SIBLING,
    R_ROUND,
    R_DIGITS,
)
"""Rules of the statistical stage, in id order."""

METHODS: Final = ("peer", "model", "yoy", "copies", "siblings", "round_numbers")
"""Methods that score every return (switches of :class:`StatisticalSettings`), in order. The
digit test (switch ``digits``, STA-010) judges batches of returns, not returns: its findings
name a district or parent body and carry the batch's own priority."""

EVIDENCE: Final = ("peer", "model", "yoy", "slip", "copies", "siblings", "round_numbers")
"""p-value columns combined per return: the methods', with the unit-slip signature (from the
``yoy`` method) as a piece of evidence of its own."""

TIE_BREAK: Final = 1e-9
"""Largest amount the priority is lowered by to order returns of equal q by combined p."""

_ITEMS: Final = tuple(ITEM_COLUMNS.values())
_QUANTITIES: Final = (*_ITEMS, "water_m3")
_COSTS: Final = ("electricity_cost_yuan", "natural_gas_cost_yuan", "water_cost_yuan")
_METERED: Final = ("electricity_kwh", "natural_gas_m3", "heat_gj", "water_m3")
_NUMERIC: Final = (*_QUANTITIES, *_COSTS, "building_area_m2", "occupants", "pv_generation_kwh")
_DIRECTORY: Final = ("sector", "subsector", "admin_level", "district_code", "heat_billing")

_PEER: Final = (
    (R_PEER_ENERGY_M2, "energy_per_m2_kgce", "单位面积能耗", "energy per m²", "kgce/m²"),
    (R_PEER_ENERGY_CAPITA, "energy_per_capita_kgce", "人均能耗", "energy per person", "kgce"),
    (R_PEER_WATER_CAPITA, "water_per_capita_m3", "人均用水量", "water per person", "m³"),
)

_NAMES: Final = {
    "electricity_kwh": ("电力", "electricity", "kWh"),
    "natural_gas_m3": ("天然气", "natural gas", "m³"),
    "coal_t": ("煤炭", "coal", "t"),
    "gasoline_l": ("汽油", "gasoline", "L"),
    "diesel_l": ("柴油", "diesel", "L"),
    "lpg_kg": ("液化石油气", "LPG", "kg"),
    "heat_gj": ("热力", "heat", "GJ"),
    "other_energy_tce": ("其他能源", "other energy", "tce"),
    "water_m3": ("水", "water", "m³"),
    "total_energy_tce": ("综合能耗", "total energy", "tce"),
    "energy_per_m2_kgce": ("单位面积能耗", "energy per m²", "kgce/m²"),
    "energy_per_capita_kgce": ("人均能耗", "energy per person", "kgce"),
    "water_per_capita_m3": ("人均用水量", "water per person", "m³"),
}

_KEY: Final = ("institution_id", "year")


# --------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------


def _num(expr: pl.Expr) -> pl.Expr:
    """Show a number with 4 significant digits at most, no exponent, '—' for null."""
    size = expr.abs()
    text = (
        pl.when(size >= 1000)
        .then(expr.round(0).cast(pl.Int64, strict=False).cast(pl.String))
        .when(size >= 1)
        .then(expr.round(2).cast(pl.String))
        .otherwise(expr.round(6).cast(pl.String))
    )
    return text.fill_null("—")


def _item_names(column: str) -> tuple[pl.Expr, pl.Expr]:
    """Chinese and English name of the quantity named in ``column`` (the name itself if unknown)."""
    zh, en = (
        pl.col(column).replace_strict({k: v[i] for k, v in _NAMES.items()}, default=pl.col(column))
        for i in (0, 1)
    )
    return zh, en


def _last_year(prev: str, prev_year: str) -> tuple[pl.Expr, pl.Expr]:
    """Chinese and English clause naming last year's value (or saying there is none)."""
    has = pl.col(prev).is_not_null()
    zh = (
        pl.when(has)
        .then(
            pl.concat_str(pl.lit("，上年（"), pl.col(prev_year), pl.lit("）"), _num(pl.col(prev)))
        )
        .otherwise(pl.lit("，无上年数据"))
    )
    en = (
        pl.when(has)
        .then(
            pl.concat_str(
                pl.lit("; last year ("), pl.col(prev_year), pl.lit(") "), _num(pl.col(prev))
            )
        )
        .otherwise(pl.lit("; no previous return"))
    )
    return zh, en


# --------------------------------------------------------------------------------------------
# Preparation
# --------------------------------------------------------------------------------------------


_FRAME_ZH: Final = {"returns": "填报数据", "history": "历史数据"}
"""Chinese name of the frames :func:`_canonical` prepares."""


def _canonical(frame: pl.DataFrame, what: str) -> pl.DataFrame:
    missing = [c for c in _KEY if c not in frame.columns]
    if missing:
        raise UnusableInputError(
            f"{_FRAME_ZH.get(what, what)}缺少列 {contract.names_zh(missing)}",
            f"{what} frame lacks column(s) {', '.join(missing)}",
        )
    exprs = [
        pl.col("institution_id").cast(pl.String),
        pl.col("year").cast(pl.Int64, strict=False),
        *(
            pl.col(c).cast(pl.Float64, strict=False)
            if c in frame.columns
            else pl.lit(None, pl.Float64).alias(c)
            for c in _NUMERIC
        ),
    ]
    for name, dtype in (("source_file", pl.String), ("source_row", pl.Int64)):
        if name in frame.columns:
            exprs.append(pl.col(name).cast(dtype, strict=False))
        else:
            exprs.append(pl.lit(None, dtype).alias(name))
    return frame.select(exprs).filter(
        pl.col("institution_id").is_not_null() & pl.col("year").is_not_null()
    )


def _with_indicators(r: pl.DataFrame, s: VerifySettings) -> pl.DataFrame:
    return indicators(r, coefficients=s.coefficient_table, region_code=s.region_code)


def _with_directory(rows: pl.DataFrame, directory: pl.DataFrame) -> pl.DataFrame:
    """Add the directory's peer-group, predictor and parent columns to each row (in order)."""
    return rows.join(
        _directory_columns(directory), on="institution_id", how="left", maintain_order="left"
    )


def _directory_columns(directory: pl.DataFrame) -> pl.DataFrame:
    if "institution_id" not in directory.columns:
        raise UnusableInputError(
            "名录库数据缺少列 institution_id（统一社会信用代码）",
            "directory frame lacks column institution_id",
        )
    cols = [
        pl.col(c).cast(pl.String) if c in directory.columns else pl.lit(None, pl.String).alias(c)
        for c in (*_DIRECTORY, "parent_id")
    ]
    return directory.select(pl.col("institution_id").cast(pl.String), *cols).unique(
        "institution_id", keep="first", maintain_order=True
    )


def _tail_p(frame: pl.DataFrame, score: str, df: float, name: str = "p") -> pl.DataFrame:
    """Add the two-sided Student-t (``df`` degrees of freedom) p-value of a robust score."""
    z = frame[score].cast(pl.Float64).fill_null(np.nan).to_numpy()
    p = 2.0 * special.stdtr(df, -np.abs(z))  # Student t lower tail, whole column at once
    return frame.with_columns(pl.Series(name, p, dtype=pl.Float64).fill_nan(None))


def _bonferroni_min(frame: pl.DataFrame, p: str, name: str) -> pl.DataFrame:
    """Per row, the smallest p of a long frame times the number of p-values (at most 1)."""
    return (
        frame.filter(pl.col(p).is_not_null() & pl.col(p).is_not_nan())
        .group_by("_row")
        .agg((pl.col(p).min() * pl.len()).clip(upper_bound=1.0).alias(name))
    )


_Blocks = dict[str, pl.DataFrame]
"""Year-over-year table split by column: one frame per column, its rows in the order of the
returns (row i is the return with ``_row`` i)."""


def _blocks(long: pl.DataFrame, columns: list[str], n: int) -> _Blocks:
    """Split the year-over-year table into its per-column blocks, without copying.

    :func:`year_over_year_long` gives one block of ``n`` rows per column, in the order of
    ``columns``, each in the order of the returns.
    """
    return {c: long.slice(i * n, n) for i, c in enumerate(columns)}


def _with_last_year(hit: pl.DataFrame, blocks: _Blocks, field: str) -> pl.DataFrame:
    """Add ``previous`` and ``previous_year`` of each hit's ``field`` column to the hits.

    Gathered by ``_row`` from the column's block: no join over the whole year-over-year table.
    """
    none = (
        pl.lit(None, pl.Float64).alias("previous"),
        pl.lit(None, pl.String).alias("previous_year"),
    )
    parts = [hit.clear().with_columns(none)]  # the schema, also when there is no hit
    for (column,), part in hit.group_by(field, maintain_order=True):
        block = blocks.get(str(column))
        rows = part["_row"]
        parts.append(
            part.with_columns(none)
            if block is None
            else part.with_columns(
                block["previous"].gather(rows), block["previous_year"].gather(rows)
            )
        )
    return pl.concat(parts, how="vertical")


# --------------------------------------------------------------------------------------------
# Methods: each returns (hits by rule, p per row)
# --------------------------------------------------------------------------------------------

_Hits = dict[Rule, pl.DataFrame]


def _peer(r: pl.DataFrame, st: StatisticalSettings, blocks: _Blocks) -> tuple[_Hits, pl.DataFrame]:
    levels = [["year", "sector", "subsector"], ["year", "sector"], ["year"]]
    hits: _Hits = {}
    ps = []
    for rule, column, zh, en, unit in _PEER:
        scored = robust_peer_scores(
            r.select("_row", "year", "sector", "subsector", column),
            column,
            levels,
            min_group_size=st.peer_min_group_size,
            k=st.peer_k,
        )
        ps.append(_tail_p(scored, "peer_score", st.tail_df).select("_row", "p"))
        hit = _with_last_year(
            scored.filter(pl.col("peer_score").abs() > st.peer_k).with_columns(
                pl.lit(column).alias("_column")
            ),
            blocks,
            "_column",
        )
        last_zh, last_en = _last_year("previous", "previous_year")
        hits[rule] = hit.select(
            "_row",
            pl.lit(column).alias("field"),
            pl.col(column).alias("value"),
            pl.col("peer_low").alias("expected_low"),
            pl.col("peer_high").alias("expected_high"),
            pl.concat_str(
                pl.lit(f"{zh} "),
                _num(pl.col(column)),
                pl.lit(f" {unit}，同类机构中位数 "),
                _num(pl.col("peer_median")),
                pl.lit("（正常范围 "),
                _num(pl.col("peer_low")),
                pl.lit("–"),
                _num(pl.col("peer_high")),
                pl.lit("，稳健z = "),
                pl.col("peer_score").round(1).cast(pl.String),
                pl.lit("）"),
                last_zh,
            ).alias("message_zh"),
            pl.concat_str(
                pl.lit(f"{en} "),
                _num(pl.col(column)),
                pl.lit(f" {unit}, peer median "),
                _num(pl.col("peer_median")),
                pl.lit(" (range "),
                _num(pl.col("peer_low")),
                pl.lit("–"),
                _num(pl.col("peer_high")),
                pl.lit(", robust z = "),
                pl.col("peer_score").round(1).cast(pl.String),
                pl.lit(")"),
                last_en,
            ).alias("message_en"),
        )
    return hits, _bonferroni_min(pl.concat(ps), "p", "peer")


def _model(r: pl.DataFrame, st: StatisticalSettings, blocks: _Blocks) -> tuple[_Hits, pl.DataFrame]:
    parts = []
    categorical = [c for c in st.model_categorical if c in r.columns]
    for target in st.model_targets:
        if target not in r.columns:
            continue
        for sub in r.partition_by("year", maintain_order=True):
            try:
                out = expected_consumption(
                    sub.select("_row", target, "building_area_m2", "occupants", *categorical),
                    target,
                    numeric=["building_area_m2", "occupants"],
                    categorical=categorical,
                    level=st.model_level,
                    max_fit_rows=st.model_max_fit_rows,
                )
            except UnusableInputError:  # too few valid rows this year: no model
                continue
            parts.append(
                out.select(
                    "_row",
                    pl.lit(target).alias("field"),
                    pl.col(target).alias("value"),
                    "model_expected",
                    "model_studentized",
                    "model_low",
                    "model_high",
                    "model_p",
                )
            )
    if not parts:
        return {}, pl.DataFrame(schema={"_row": pl.UInt32, "model": pl.Float64})
    scored = pl.concat(parts)
    hit = _with_last_year(
        scored.filter(pl.col("model_studentized").abs() >= st.model_z), blocks, "field"
    )
    name, name_en = _item_names("field")
    last_zh, last_en = _last_year("previous", "previous_year")
    hits = hit.select(
        "_row",
        "field",
        "value",
        pl.col("model_low").alias("expected_low"),
        pl.col("model_high").alias("expected_high"),
        pl.concat_str(
            name,
            pl.lit(" "),
            _num(pl.col("value")),
            pl.lit("，按面积、人数和类型预测的期望值 "),
            _num(pl.col("model_expected")),
            pl.lit(f"（{round(st.model_level * 100)}% 预测区间 "),
            _num(pl.col("model_low")),
            pl.lit("–"),
            _num(pl.col("model_high")),
            pl.lit("，学生化残差 "),
            pl.col("model_studentized").round(1).cast(pl.String),
            pl.lit("）"),
            last_zh,
        ).alias("message_zh"),
        pl.concat_str(
            name_en,
            pl.lit(" "),
            _num(pl.col("value")),
            pl.lit(", expected from area, occupants and kind "),
            _num(pl.col("model_expected")),
            pl.lit(f" ({round(st.model_level * 100)} % prediction interval "),
            _num(pl.col("model_low")),
            pl.lit("–"),
            _num(pl.col("model_high")),
            pl.lit(", studentized residual "),
            pl.col("model_studentized").round(1).cast(pl.String),
            pl.lit(")"),
            last_en,
        ).alias("message_en"),
    )
    scored = _tail_p(scored, "model_studentized", st.tail_df)
    return {R_MODEL: hits}, _bonferroni_min(scored, "p", "model")


def _last_year_slipped(r: pl.DataFrame, long: pl.DataFrame) -> pl.DataFrame:
    """Flag slip signatures where this year's figure fits the peers better than the correction.

    A ratio to last year near a unit factor says one of the two years slipped, not which. The
    institution's own return two back decides where there is one (``reverts``,
    :func:`energy_audit.outliers.yoy.year_over_year`); where there is none (``reverts`` null),
    the peers decide: per m², within the year and sector, the figure closer (on the log
    scale) to the peer median is taken as right. When it is this year's, last year slipped,
    and this year is not flagged.
    """
    per_m2 = (
        r.select("_row", "year", "sector", "building_area_m2", *_QUANTITIES)
        .unpivot(index=["_row", "year", "sector", "building_area_m2"], variable_name="column")
        .filter((pl.col("value") > 0) & (pl.col("building_area_m2") > 0))
        .with_columns((pl.col("value") / pl.col("building_area_m2")).log().alias("log_per_m2"))
        .with_columns(pl.col("log_per_m2").median().over("year", "sector", "column").alias("med"))
        .select("_row", "column", "building_area_m2", "med")
    )
    slips = long.filter(pl.col("slip_factor").is_not_null() & pl.col("reverts").is_null()).join(
        per_m2, on=["_row", "column"], how="inner"
    )
    now = ((pl.col("value") / pl.col("building_area_m2")).log() - pl.col("med")).abs()
    fixed = ((pl.col("suggested_value") / pl.col("building_area_m2")).log() - pl.col("med")).abs()
    return slips.filter(now < fixed).select("_row", "column", pl.lit(True).alias("last_slipped"))


def _yoy(
    long: pl.DataFrame, st: StatisticalSettings, r: pl.DataFrame
) -> tuple[_Hits, pl.DataFrame]:
    items = long.filter(pl.col("column").is_in(list(_QUANTITIES)))
    items = items.join(
        _last_year_slipped(r, items), on=["_row", "column"], how="left"
    ).with_columns(pl.col("reverts").fill_null(False) | pl.col("last_slipped").fill_null(False))
    name, name_en = _item_names("column")
    # "<item> <value>, last year (<year>) <previous>": the start of every message
    against_zh = [
        name,
        pl.lit(" "),
        _num(pl.col("value")),
        pl.lit("，上年（"),
        pl.col("previous_year").cast(pl.String),
        pl.lit("）"),
        _num(pl.col("previous")),
    ]
    against_en = [
        name_en,
        pl.lit(" "),
        _num(pl.col("value")),
        pl.lit(", last year ("),
        pl.col("previous_year").cast(pl.String),
        pl.lit(") "),
        _num(pl.col("previous")),
    ]
    band = 1.0 + st.yoy_band_pct / 100.0
    common = [
        "_row",
        pl.col("column").alias("field"),
        "value",
        (pl.col("previous") / band).alias("expected_low"),
        (pl.col("previous") * band).alias("expected_high"),
    ]
    ratio = pl.col("ratio").round(4).cast(pl.String)
    is_slip = pl.col("slip_factor").is_not_null() & ~pl.col("reverts")
    slip = items.filter(is_slip).select(
        *common,
        "suggested_value",
        pl.concat_str(
            *against_zh,
            pl.lit("，之比 "),
            ratio,
            pl.lit(" 接近单位换算倍数 "),
            _num(pl.col("slip_factor")),
            pl.lit("，建议值 "),
            _num(pl.col("suggested_value")),
        ).alias("message_zh"),
        pl.concat_str(
            *against_en,
            pl.lit(", ratio "),
            ratio,
            pl.lit(" near the unit factor "),
            _num(pl.col("slip_factor")),
            pl.lit("; suggested "),
            _num(pl.col("suggested_value")),
        ).alias("message_en"),
    )
    change = items.filter(
        pl.col("slip_factor").is_null() & ~pl.col("reverts") & (pl.col("z").abs() >= st.yoy_z)
    ).select(
        *common,
        pl.concat_str(
            *against_zh,
            pl.lit("，变化 "),
            ((pl.col("ratio") - 1.0) * 100.0).round(1).cast(pl.String),
            pl.lit("%（稳健z = "),
            pl.col("z").round(1).cast(pl.String),
            pl.lit("）"),
        ).alias("message_zh"),
        pl.concat_str(
            *against_en,
            pl.lit(", change "),
            ((pl.col("ratio") - 1.0) * 100.0).round(1).cast(pl.String),
            pl.lit(" % (robust z = "),
            pl.col("z").round(1).cast(pl.String),
            pl.lit(")"),
        ).alias("message_en"),
    )
    # a change undoing last year's slip says last year was wrong, not this year
    usable = _tail_p(items, "z", st.tail_df).with_columns(
        pl.when(~pl.col("reverts")).then(pl.col("p")).alias("p")
    )
    # a slip signature is evidence of its own (a narrow window around a known factor), not
    # one more of the many item changes the Bonferroni step discounts
    slipped = items.filter(is_slip).select("_row", pl.lit(st.slip_p).alias("slip")).unique("_row")
    p = _bonferroni_min(usable, "p", "yoy").join(slipped, on="_row", how="full", coalesce=True)
    return {R_UNIT_SLIP: slip, R_YOY_CHANGE: change}, p


def _copies(
    r: pl.DataFrame, h: pl.DataFrame | None, st: StatisticalSettings, columns: list[str]
) -> tuple[_Hits, pl.DataFrame]:
    out = copied_figures(
        r.select("_row", *_KEY, *columns), columns, history=h, min_nonzero=st.copy_min_nonzero
    ).filter(pl.col("is_copied_from_last_year"))
    year = pl.col("copied_from_year").cast(pl.String)
    hits = out.select(
        "_row",
        pl.lit(None, pl.String).alias("field"),
        pl.col("electricity_kwh").alias("value"),
        pl.concat_str(
            pl.lit("各项数量与费用与上年（"),
            year,
            pl.lit("）完全相同，如电力 "),
            _num(pl.col("electricity_kwh")),
            pl.lit(" kWh、水 "),
            _num(pl.col("water_m3")),
            pl.lit(" m³"),
        ).alias("message_zh"),
        pl.concat_str(
            pl.lit("every quantity and cost identical to last year ("),
            year,
            pl.lit("), e.g. electricity "),
            _num(pl.col("electricity_kwh")),
            pl.lit(" kWh, water "),
            _num(pl.col("water_m3")),
            pl.lit(" m³"),
        ).alias("message_en"),
    )
    return {R_COPIED: hits}, out.select("_row", pl.lit(st.copy_p).alias("copies"))


def _siblings(
    r: pl.DataFrame, st: StatisticalSettings, columns: list[str]
) -> tuple[_Hits, pl.DataFrame]:
    out = identical_within_groups(
        r.select("_row", *_KEY, "parent_id", *columns),
        columns,
        "parent_id",
        min_nonzero=st.copy_min_nonzero,
    ).filter(pl.col("is_identical_to_sibling"))
    ids = pl.col("identical_sibling_ids").list.join("、")
    hits = out.select(
        "_row",
        pl.lit(None, pl.String).alias("field"),
        pl.col("electricity_kwh").alias("value"),
        pl.concat_str(
            pl.lit("数据与同一上级单位（"),
            pl.col("parent_id"),
            pl.lit("）的 "),
            ids,
            pl.lit(" 完全相同，如电力 "),
            _num(pl.col("electricity_kwh")),
            pl.lit(" kWh"),
        ).alias("message_zh"),
        pl.concat_str(
            pl.lit("figures identical to "),
            pl.col("identical_sibling_ids").list.join(", "),
            pl.lit(" of the same parent ("),
            pl.col("parent_id"),
            pl.lit("), e.g. electricity "),
            _num(pl.col("electricity_kwh")),
            pl.lit(" kWh"),
        ).alias("message_en"),
    )
    return {R_SIBLING: hits}, out.select("_row", pl.lit(st.copy_p).alias("siblings"))


def _round(
    r: pl.DataFrame, h: pl.DataFrame | None, st: StatisticalSettings, blocks: _Blocks
) -> tuple[_Hits, pl.DataFrame]:
    columns = list(_METERED)
    out = round_numbers(
        r.select("_row", *_KEY, *columns),
        columns,
        history=h,
        prior_weight=st.round_prior_weight,
    )
    value = pl.lit(None, pl.Float64)
    roundness = pl.lit(None, pl.Int32)
    for c in columns:
        value = pl.when(pl.col("round_column") == c).then(pl.col(c)).otherwise(value)
        roundness = (
            pl.when(pl.col("round_column") == c)
            .then(pl.col(f"round_{c}_roundness"))
            .otherwise(roundness)
        )
    hit = _with_last_year(
        out.filter(pl.col("round_p") <= st.round_p_max).with_columns(
            value.alias("value"), roundness.alias("t")
        ),
        blocks,
        "round_column",
    )
    last_zh, last_en = _last_year("previous", "previous_year")
    name, name_en = _item_names("round_column")
    hits = hit.select(
        "_row",
        pl.col("round_column").alias("field"),
        "value",
        pl.concat_str(
            name,
            pl.lit(" "),
            _num(pl.col("value")),
            pl.lit(" 末尾有 "),
            pl.col("t").cast(pl.String),
            pl.lit(" 个零（偶然、本机构历史和同类中出现的概率 ≤ "),
            pl.col("round_p").round(6).cast(pl.String),
            pl.lit("）"),
            last_zh,
        ).alias("message_zh"),
        pl.concat_str(
            name_en,
            pl.lit(" "),
            _num(pl.col("value")),
            pl.lit(" ends in "),
            pl.col("t").cast(pl.String),
            pl.lit(" zeros (chance, own history and peers: p ≤ "),
            pl.col("round_p").round(6).cast(pl.String),
            pl.lit(")"),
            last_en,
        ).alias("message_en"),
    )
    return {R_ROUND: hits}, out.select("_row", pl.col("round_p").alias("round_numbers"))


def _digits(r: pl.DataFrame, st: StatisticalSettings) -> pl.DataFrame:
    """STA-010: batches whose first-two digits are far from Benford's law.

    A batch is a year's returns of one district or parent body; its finding names the batch,
    not a return (module docstring).
    """
    columns = list(_QUANTITIES)  # scale invariant: canonical units are as good as reported
    districts = dict(load_districts().select("district_code", "name_zh").iter_rows())
    tables = []
    for group in st.digit_groups:
        if group not in r.columns:
            continue
        table = benford_by_group(
            r.filter(pl.col(group).is_not_null()).select("year", group, *columns),
            columns,
            ["year", group],
            min_count=st.benford_min_count,
        )
        tables.append(
            table.with_columns(pl.lit(group).alias("group"), pl.col(group).alias("code")).drop(
                group
            )
        )
    if not tables:
        return empty_findings()
    table = pl.concat(tables, how="vertical").filter(pl.col("p_value").is_not_null())
    if table.is_empty():
        return empty_findings()
    q = benjamini_hochberg(table["p_value"].to_numpy())
    table = table.with_columns(pl.Series("q", q, dtype=pl.Float64))
    hit = table.filter((pl.col("conformity") == "nonconformity") & (pl.col("q") <= st.benford_q))
    if hit.is_empty():
        return empty_findings()
    nonconformity = NIGRINI_FIRST_TWO_MAD[-1].mad_above  # Nigrini's last class
    is_district = pl.col("group") == "district_code"
    who_zh = (
        pl.when(is_district)
        .then(
            pl.concat_str(
                pl.col("code").replace_strict(districts, default=pl.lit("")), pl.lit("（"),
                pl.col("code"), pl.lit("）"),
            )
        )
        .otherwise(pl.concat_str(pl.lit("上级单位 "), pl.col("code"), pl.lit(" 所属单位")))
    )  # fmt: skip
    who_en = (
        pl.when(is_district)
        .then(pl.concat_str(pl.lit("district "), pl.col("code")))
        .otherwise(pl.concat_str(pl.lit("units of parent "), pl.col("code")))
    )
    pairs = pl.col("top_digit_pairs").cast(pl.List(pl.String)).list.join("、")
    pairs_en = pl.col("top_digit_pairs").cast(pl.List(pl.String)).list.join(", ")
    mad = pl.col("mean_abs_deviation").round(4).cast(pl.String)
    chance = pl.col("expected_mean_abs_deviation").round(4).cast(pl.String)
    p = pl.col("p_value").map_elements(
        lambda v: f"{v:.1e}" if v > 0 else "< 1e-300", return_dtype=pl.String
    )
    hits = hit.select(
        pl.when(is_district).then(pl.lit(None, pl.String)).otherwise(pl.col("code"))
        .alias("institution_id"),
        "year",
        pl.col("group").alias("field"),  # the directory column that forms the batch
        pl.col("mean_abs_deviation").alias("value"),
        pl.lit(nonconformity).alias("expected_high"),
        (1.0 - pl.col("q")).alias("priority"),
        pl.concat_str(pl.col("group"), pl.lit(":"), pl.col("code")).alias("key"),
        pl.concat_str(
            who_zh, pl.col("year").cast(pl.String), pl.lit("年 "),
            pl.col("n_values").cast(pl.String),
            pl.lit(" 个填报数的前两位数字不符合本福特定律：MAD "), mad,
            pl.lit(f"（> {nonconformity} 即不符合；同样本量下偶然约 "), chance,
            pl.lit("），卡方检验 p = "), p, pl.lit("；偏多的前两位："), pairs,
        ).alias("message_zh"),
        pl.concat_str(
            pl.lit("first-two digits of the "), pl.col("n_values").cast(pl.String),
            pl.lit(" figures of "), who_en, pl.lit(" in "), pl.col("year").cast(pl.String),
            pl.lit(" do not conform to Benford's law: MAD "), mad,
            pl.lit(f" (nonconformity above {nonconformity}; by chance about "), chance,
            pl.lit("), chi-square p = "), p, pl.lit("; over-represented: "), pairs_en,
        ).alias("message_en"),
    )  # fmt: skip
    return findings_from_hits(R_DIGITS, hits)


# --------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------


def _analyse(
    returns: pl.DataFrame,
    directory: pl.DataFrame,
    history: pl.DataFrame | None,
    settings: VerifySettings,
    timings: dict[str, float] | None = None,
) -> tuple[pl.DataFrame, _Hits, pl.DataFrame]:
    """Score the returns: (rows, hits by rule, per-row p-value of each method that ran).

    ``timings``, if given, receives the wall-clock seconds of each step (preparation, each
    method that ran, priorities are added by the caller).
    """
    st = settings.statistical
    clock = time.perf_counter()
    r = _with_indicators(_canonical(returns, "returns"), settings).with_row_index("_row")
    r = _with_directory(r, directory)
    h = None
    if history is not None:
        h = _with_indicators(_canonical(history, "history"), settings).drop(
            "source_file", "source_row"
        )
    copy_columns = [*_QUANTITIES, *_COSTS]
    yoy_columns = [*_QUANTITIES, "total_energy_tce", *(p[1] for p in _PEER)]
    prev_cols = ["_row", "column", "value", "previous", "previous_year", "ratio", "slip_factor",
                 "suggested_value", "reverts", "z", "p"]  # fmt: skip
    long = year_over_year_long(
        r.select("_row", *_KEY, *yoy_columns),
        yoy_columns,
        history=None if h is None else h.select(*_KEY, *yoy_columns),
        tolerance=st.yoy_tolerance,
    )
    long = long.rename({"row_index": "_row"}).select(
        *prev_cols[:4], pl.col("previous_year").cast(pl.String), *prev_cols[5:]
    )
    blocks = _blocks(long, yoy_columns, r.height)
    hits: _Hits = {}
    ps: list[pl.DataFrame] = []
    h_items = None if h is None else h.select(*_KEY, *copy_columns)
    times = {} if timings is None else timings
    times["preparation"] = time.perf_counter() - clock
    runs: list[tuple[str, bool, Callable[[], tuple[_Hits, pl.DataFrame]]]] = [
        ("peer", st.peer, lambda: _peer(r, st, blocks)),
        ("model", st.model, lambda: _model(r, st, blocks)),
        ("yoy", st.yoy, lambda: _yoy(long, st, r)),
        ("copies", st.copies, lambda: _copies(r, h_items, st, copy_columns)),
        ("siblings", st.siblings, lambda: _siblings(r, st, copy_columns)),
        ("round_numbers", st.round_numbers, lambda: _round(r, h_items, st, blocks)),
    ]
    for method, enabled, run in runs:
        if enabled:
            clock = time.perf_counter()
            method_hits, p = run()
            hits.update({rule: hit for rule, hit in method_hits.items() if hit.height})
            ps.append(p)
            times[method] = time.perf_counter() - clock
    return r, hits, _p_table(r, ps)


def _p_table(r: pl.DataFrame, ps: list[pl.DataFrame]) -> pl.DataFrame:
    table = r.select("_row", *_KEY)
    for p in ps:
        table = table.join(p.with_columns(pl.col("_row").cast(pl.UInt32)), on="_row", how="left")
    return table


def _priorities(table: pl.DataFrame, st: StatisticalSettings) -> pl.DataFrame:
    """Add ``methods``, ``p_combined``, ``q_value`` and ``priority`` to the per-row p table."""
    methods = [m for m in EVIDENCE if m in table.columns]
    if methods:
        long = table.select("_row", *methods).unpivot(
            index="_row", on=methods, variable_name="method", value_name="p"
        )
        long = long.with_columns(pl.col("p").clip(upper_bound=st.combine_p_max))
        combined = cauchy_combination_by(long, "p", ["_row"])
        table = table.join(combined, on="_row", how="left")
    else:
        table = table.with_columns(
            pl.lit(None, pl.UInt32).alias("methods"), pl.lit(None, pl.Float64).alias("p_combined")
        )
    p = table["p_combined"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    q = benjamini_hochberg(p)
    priority = priority_from_q(q)
    order = np.argsort(np.where(np.isfinite(p), p, np.inf), kind="stable")
    rank = np.empty(len(p))
    rank[order] = np.arange(len(p))
    priority = np.clip(priority - TIE_BREAK * rank / max(len(p), 1), 0.0, 1.0)
    priority[~np.isfinite(p)] = 0.0
    return table.with_columns(
        pl.Series("q_value", q, dtype=pl.Float64).fill_nan(None),
        pl.Series("priority", priority, dtype=pl.Float64),
    )


def _settings(settings: VerifySettings | StatisticalSettings | None) -> VerifySettings:
    if settings is None:
        return VerifySettings()
    if isinstance(settings, StatisticalSettings):
        return VerifySettings(statistical=settings)
    return settings


def score_returns(
    returns: pl.DataFrame,
    *,
    directory: pl.DataFrame,
    history: pl.DataFrame | None = None,
    settings: VerifySettings | StatisticalSettings | None = None,
    timings: dict[str, float] | None = None,
) -> pl.DataFrame:
    """Score every return with each method and rank the returns (no findings).

    Parameters
    ----------
    returns, directory, history, settings
        As in :func:`check_statistical`.
    timings : dict, optional
        If given, filled with the wall-clock time of each step [s]: ``preparation``
        (indicators, year-over-year table), each method that ran (:data:`METHODS`) and
        ``priority`` (combination and q-values); ``benchmarks/detection.py`` prints them.

    Returns
    -------
    polars.DataFrame
        One row per return with an institution and year, in the order of ``returns``:
        ``institution_id``, ``year``, the p-value of each method that ran (columns named as
        :data:`EVIDENCE`; null where the method could not score the return or, for copies,
        did not fire), ``methods`` (p-values combined), ``p_combined`` (Cauchy combination),
        ``q_value`` (Benjamini-Hochberg over the returns) and ``priority`` [0-1].
    """
    s = _settings(settings)
    times = {} if timings is None else timings
    _, _, table = _analyse(returns, directory, history, s, times)
    clock = time.perf_counter()
    ranked = _priorities(table, s.statistical).drop("_row")
    times["priority"] = time.perf_counter() - clock
    return ranked


def check_statistical(
    returns: pl.DataFrame,
    *,
    directory: pl.DataFrame,
    history: pl.DataFrame | None = None,
    settings: VerifySettings | StatisticalSettings | None = None,
) -> pl.DataFrame:
    """Find the returns that stand out statistically, with the numbers that make the case.

    Parameters
    ----------
    returns : polars.DataFrame
        Canonical returns (data contract §2) of the year(s) to score; rows without an
        institution or year are skipped (coverage and validity report them).
    directory : polars.DataFrame
        Canonical directory: ``institution_id`` and, where present, ``sector``,
        ``subsector``, ``admin_level``, ``district_code``, ``heat_billing`` (peer groups and
        model predictors) and ``parent_id`` (siblings).
    history : polars.DataFrame, optional
        Returns of earlier years (year-over-year, copies, the institution's rounding habit).
        Earlier years of ``returns`` are used too.
    settings : VerifySettings or StatisticalSettings, optional
        Thresholds and switches (``settings.statistical``); default :class:`VerifySettings`.

    Returns
    -------
    polars.DataFrame
        Findings (data contract §5) of :data:`STATISTICAL_RULES`, highest priority first;
        every finding of a return carries the return's priority (module docstring).

    Raises
    ------
    UnusableInputError
        If ``returns`` or ``history`` lacks ``institution_id`` or ``year``, or ``directory``
        lacks ``institution_id``.

    Notes
    -----
    Vectorised; the methods' own notes give their costs. About 1 s for 20,000 returns with
    history on two cores (``benchmarks/detection.py`` prints the time per method).
    """
    s = _settings(settings)
    if not s.statistical.enabled:
        return empty_findings()
    r, hits, table = _analyse(returns, directory, history, s)
    batches = _digits(r, s.statistical) if s.statistical.digits else empty_findings()
    if not hits:
        return batches
    ranked = _priorities(table, s.statistical).select("_row", "priority")
    duplicated = r.select("_row", pl.struct(*_KEY).is_duplicated().alias("_dup"))
    rows = r.select("_row", *_KEY, "source_file", "source_row").join(duplicated, on="_row")
    parts = []
    for rule in STATISTICAL_RULES:
        if rule not in hits:
            continue
        hit = (
            hits[rule]
            .join(rows, on="_row", how="left")
            .join(ranked, on="_row", how="left")
            .with_columns(
                pl.when(pl.col("_dup"))
                .then(pl.col("_row").cast(pl.String))
                .otherwise(pl.lit(""))
                .alias("key")
            )
        )
        parts.append(findings_from_hits(rule, hit))
    return sort_findings(pl.concat([*parts, batches], how="vertical"))


def evidence_data(
    returns: pl.DataFrame,
    *,
    directory: pl.DataFrame,
    history: pl.DataFrame | None = None,
    settings: VerifySettings | StatisticalSettings | None = None,
) -> pl.DataFrame:
    """Return the figures behind the statistical findings, as the evidence charts draw them.

    Parameters
    ----------
    returns, directory, history, settings
        As in :func:`check_statistical`.

    Returns
    -------
    polars.DataFrame
        One row per return of ``returns`` and ``history`` (institution and year present):
        the quantities, costs, building area and occupants in canonical units, the indicators
        (:func:`energy_audit.indicators.indicators`: ``total_energy_tce``,
        ``energy_per_m2_kgce`` …) and the directory's ``sector``, ``subsector``,
        ``admin_level``, ``district_code``, ``heat_billing`` and ``parent_id``: every
        ``field`` a statistical finding names, with the peer-group columns
        (:func:`energy_audit.panel.evidence.plot_finding`).
    """
    s = _settings(settings)
    frames = [returns] if history is None else [history, returns]
    rows = pl.concat(
        [_canonical(f, "returns" if f is returns else "history") for f in frames],
        how="vertical",
    )
    return _with_directory(_with_indicators(rows, s), directory)


def q_value(findings: pl.DataFrame) -> pl.Series:
    """Return the q-value (false-discovery rate) of each statistical finding: 1 − priority.

    Exact to :data:`TIE_BREAK` (10⁻⁹); null for findings of other categories, whose priority
    is not a q-value.
    """
    return findings.select(
        pl.when(pl.col("category") == "statistical")
        .then((1.0 - pl.col("priority")).clip(lower_bound=0.0))
        .alias("q_value")
    )["q_value"]


def findings_at_fdr(findings: pl.DataFrame, q: float = 0.05) -> pl.DataFrame:
    """Keep the statistical findings of the returns whose q-value is at most ``q``.

    Keeping every return with q ≤ q₀ gives a set in which about q₀ of the returns are
    expected to be false alarms (Benjamini & Hochberg 1995).
    """
    return sort_findings(
        findings.filter(
            (pl.col("category") == "statistical") & (pl.col("priority") >= 1.0 - q - TIE_BREAK)
        )
    )


def top_findings(findings: pl.DataFrame, n: int) -> pl.DataFrame:
    """Keep the statistical findings of the ``n`` returns of highest priority.

    Parameters
    ----------
    findings : polars.DataFrame
        Findings (e.g. :attr:`VerifyResult.findings`); other categories are left out.
    n : int
        Number of returns (institution and year) the panel can review.

    Returns
    -------
    polars.DataFrame
        All statistical findings of those returns, highest priority first.
    """
    stat = findings.filter(pl.col("category") == "statistical")
    top = (
        stat.group_by("institution_id", "year")
        .agg(pl.col("priority").max())
        .sort(["priority", "institution_id", "year"], descending=[True, False, False])
        .head(max(n, 0))
        .select("institution_id", "year")
    )
    return sort_findings(
        stat.join(top, on=["institution_id", "year"], how="semi", nulls_equal=True)
    )
