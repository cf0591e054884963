"""Statistical findings: the generic outlier methods of :mod:`energy_audit.outliers`, wired in.

:func:`check_statistical` scores a year's returns with each method, turns what stands out into
findings of :data:`STATISTICAL_RULES` (category ``statistical``) and gives every finding of a
return one priority, so that the panel sees the likely errors first:

Every score is calibrated on the year's own data, statistic by statistic
(:mod:`energy_audit.outliers.calibration`): its p-value is the share of the year's returns with
a score at least as large, extended by a Pareto tail fitted to the largest ones. No constant
stands in for evidence: a unit-slip window's p-value is the chance that an ordinary change of
that item and year lands in it (from the density of changes just outside it), a copy's the
chance of every figure repeating to its precision (from the density of changes next to 0).

- ``STA-001`` … ``STA-003``: energy per m², energy per person and water per person far from the
  peer median (robust z on the log scale, peers = same year and sector + subsector → sector →
  all; :func:`energy_audit.outliers.peer.robust_peer_scores`). ``expected_low`` /
  ``expected_high`` are the peer band median · exp(∓k · scale).
- ``STA-004``: an item (electricity, natural gas, heat, water) or the total energy far from what
  a robust regression on log area, log occupants and the directory's sector, subsector, level,
  district and heat billing expects (:func:`energy_audit.outliers.regression.expected_consumption`,
  fitted per item and year). ``expected_low`` / ``expected_high``: the prediction interval.
- ``STA-005``: the change on last year (of an item, the floor area or the occupants) falls in a
  unit-slip window (10ᵏ, fuel densities; :func:`energy_audit.slips.slip_factors_for`)
  sized by the measured noise of that item's changes (:func:`_slip_windows`), and the
  suggested value (the figure ÷ the factor) falls inside the model's prediction interval where
  the model scored the figure. A change that undoes last year's slip is not flagged (last year
  was wrong, not this year), nor one where this year's figure fits the peers better than the
  correction would (without a return two back): then last year slipped.
- ``STA-006``: a large change on last year of an item, the total or an intensity, not
  explained by a unit slip, nor by the item's cost following it (electricity, gas and water:
  the bills measure the same consumption; a figure mistyped beside the cost of the bills
  moves the implied unit price by the error, 单价审核 [1]_).
- ``STA-007``: every quantity and cost identical to last year within ``copy_rtol``
  (:func:`energy_audit.outliers.copies.copied_figures`).
- ``STA-008``: figures identical to another unit of the same parent
  (:func:`energy_audit.outliers.copies.identical_within_groups`, group ``parent_id``).
- ``STA-009`` (info): metered figures rounder than chance, the institution's history and its
  peers make likely for its magnitude (:func:`energy_audit.outliers.copies.round_numbers`).
- ``STA-010``: a batch — a year's returns of one district or one parent body — whose pooled
  quantities' first-two digits are far from Benford's law
  (:func:`energy_audit.outliers.digits.benford_by_group`): Nigrini's MAD in "nonconformity"
  *and* a chi-square q-value (Benjamini-Hochberg over the batches) ≤ ``benford_q``. A finding
  of the batch: ``field`` is the column forming it (``district_code``, ``parent_id``),
  ``institution_id`` the parent body (null for a district, named in the message), ``value``
  the MAD, ``expected_high`` the nonconformity bound 0.0022, priority
  :func:`energy_audit.outliers.priority.priority_from_p` of the batch's q. The test is scale
  invariant, so canonical units serve as well as the units reported. The last-digit test
  (:func:`energy_audit.outliers.digits.last_digit_by_group`) is not wired in: canonical
  figures converted from 万千瓦时 or 万立方米 end in zeros by the conversion, which would
  condemn every district whose institutions report in 万 units; use it on figures as reported.
- ``STA-011``: a change of floor area, occupants or floor area per person on last year larger
  than the year's own changes make likely (a ×10 typo in 建筑面积 or 用能人数 moves the
  intensities, not the totals), and not followed by the total energy or the other of the
  two (a real building change moves them together); an item's change the floor area or head
  count follows is explained the same way (``change_follow``).
- Changes on last year (STA-006, STA-011) are also measured against the return two back: a
  figure back at its level of two years ago undoes last year's error, not this year's.
- ``STA-012``: floor area per person far from the peers, or changed unusually on last year.
- ``STA-013``: the reported total differs from Σ items × coefficients beyond its rounding (and
  beyond the coefficients some institutions use), and one item times one unit factor closes
  the gap (:func:`_reconciliation`): close to proof of a slip, with the value that closes it;
  or an item changed unusually on last year beside the gap (:func:`_gap_and_change`), with the
  value the total gives that item were it the only error.

Priority
--------
A return's pieces of evidence (one calibrated p-value per method and field) are combined with
the weighted Cauchy combination test (:func:`energy_audit.outliers.priority.
cauchy_combination_by`, :func:`_combined`): each method that scored the return weighs the same,
and within a method an energy item weighs its expected share of the return's energy
(materiality, :func:`_materiality`), so that the panel's hours go where the tonnes of coal
equivalent are. The combination is in turn calibrated on the year's returns
(:func:`energy_audit.outliers.calibration.tail_p` of 1/p: the share of the year's returns
with at least as much evidence, whatever the dependence between the pieces and however
conservative each of them is, a Pareto tail beyond), and the combined p of a return is the
smaller of that and the combination's own p: on a clean year the rank is exact and the
combination conservative (a Cauchy combination of conservative pieces: 15-30 % of nominal at
1 % on clean synthetic cities), on a year with gross errors the rank among them understates a
×10,000 slip, which the combination does not (the smaller of two p-values errs by at most 2α,
Bonferroni; measured 0.75-1.0 α at 1 % and 5 %). A year of fewer than
:data:`energy_audit.outliers.calibration.MIN_CALIBRATION_SIZE` returns keeps the combination's
own p. The priority is a monotone map of the combined p
(:func:`energy_audit.outliers.priority.priority_from_p`): the queue is in the order of the
evidence and does not tie where the evidence differs. A Benjamini-Hochberg q-value is given only
where the year's combined p-values pass an empirical-null check (:func:`_null_backed`: uniform
above 0.2); otherwise the queue shows ranks only. On clean cities of every noise family the
combined p-values are calibrated: p ≤ α for between α/2 and 2α of the returns
(``tests/verify/test_statistical.py``, ``benchmarks/detection.py``).

Returns whose combined p is at most ``report_p`` get findings: every piece of evidence with
p ≤ ``finding_p`` and the strongest one; a suggested correction (STA-005, STA-013) is shown
wherever its own p ≤ ``report_p``. The panel asks for "the
top N returns" with :func:`top_findings`; :func:`score_returns` gives the per-return table (p
per method, combined p, q, priority) behind it.

References
----------
.. [1] Domain reference, §6 "What reviewers look for".
.. [2] Liu, Y. and Xie, J. (2020). Cauchy combination test. JASA 115(529), 393-402.
.. [3] Benjamini, Y. and Hochberg, Y. (1995). Controlling the false discovery rate. J. R.
   Statist. Soc. B 57(1), 289-300.
.. [4] Efron, B. (2004). Large-scale simultaneous hypothesis testing: the choice of a null
   hypothesis. JASA 99(465), 96-104.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl

from energy_audit import contract
from energy_audit.districts import load_districts
from energy_audit.errors import UnusableInputError
from energy_audit.factors import ITEM_COLUMNS, TableSource, kgce_per_canonical_unit
from energy_audit.findings import (
    EVIDENCE_DTYPE,
    Rule,
    empty_findings,
    findings_from_hits,
    sort_findings,
)
from energy_audit.indicators import UNIT_PRICES, indicators
from energy_audit.outliers.calibration import (
    MIN_CALIBRATION_SIZE,
    TAIL_INDEX_BOUNDS,
    exact_match_p,
    tail_p,
    window_p,
)
from energy_audit.outliers.copies import copied_figures, identical_within_groups, round_numbers
from energy_audit.outliers.digits import NIGRINI_FIRST_TWO_MAD, benford_by_group
from energy_audit.outliers.peer import MAD_TO_SIGMA, robust_peer_scores
from energy_audit.outliers.priority import (
    benjamini_hochberg,
    cauchy_combination_by,
    priority_from_p,
)
from energy_audit.outliers.regression import expected_consumption
from energy_audit.outliers.yoy import EarlierReturns, earlier_returns, year_over_year_by_column
from energy_audit.reconciliation import reconcile_totals, reported_decimals
from energy_audit.slips import slip_factors_for
from energy_audit.verify.settings import StatisticalSettings, VerifySettings

__all__ = [
    "METHODS",
    "STATISTICAL_RULES",
    "StatisticalResult",
    "check_statistical",
    "evidence_data",
    "score_returns",
    "statistical_stage",
    "top_findings",
]


def _rule(
    rule_id: str, severity: str, zh: str, en: str, *settings: str, template: tuple[str, str]
) -> Rule:
    return Rule(  # type: ignore[arg-type]
        rule_id, "statistical", severity, zh, en, settings, template[0], template[1]
    )


# Message templates (energy_audit.messages), filled from the finding and its evidence.
_P = ("（校准 p = {p:p}）", " (calibrated p = {p:p})")
_LAST = (
    "[，上年（{previous_year:int}）{previous_value}|，无上年数据]",
    "[; last year ({previous_year:int}) {previous_value}|; no previous return]",
)
_PEER_TEMPLATE = (
    "{field:zh} {value} {field:unit}，同类 {peer_size:int} 家机构中位数 {median}（正常范围 "
    "{expected_low}–{expected_high}，稳健z = {score:z}）" + _P[0] + _LAST[0],
    "{field:en} {value} {field:unit}, median of {peer_size:int} peers {median} (range "
    "{expected_low}–{expected_high}, robust z = {score:z})" + _P[1] + _LAST[1],
)
_CHANGE_TEMPLATE = (
    "{field:zh} {value}，上年（{previous_year:int}）{previous_value}[，变化 {ratio:pct}%]"
    "（按本年 {peer_size:int} 家同项变化的中位数推算应为 {median}）" + _P[0],
    "{field:en} {value}, last year ({previous_year:int}) {previous_value}[, change {ratio:pct} %] "
    "(the year's median change over {peer_size:int} returns gives {median})" + _P[1],
)

_S = "statistical."
R_PEER_ENERGY_M2 = _rule(
    "STA-001",
    "warning",
    "单位建筑面积能耗偏离同类机构",
    "energy per m² far from peers (robust z, log scale)",
    _S + "peer_k",
    _S + "peer_min_group_size",
    _S + "tail_share",
    template=_PEER_TEMPLATE,
)
R_PEER_ENERGY_CAPITA = _rule(
    "STA-002",
    "warning",
    "人均能耗偏离同类机构",
    "energy per person far from peers (robust z, log scale)",
    _S + "peer_k",
    _S + "peer_min_group_size",
    _S + "tail_share",
    template=_PEER_TEMPLATE,
)
R_PEER_WATER_CAPITA = _rule(
    "STA-003",
    "warning",
    "人均用水量偏离同类机构",
    "water per person far from peers (robust z, log scale)",
    _S + "peer_k",
    _S + "peer_min_group_size",
    _S + "tail_share",
    template=_PEER_TEMPLATE,
)
R_MODEL = _rule(
    "STA-004",
    "warning",
    "消费量偏离按面积、人数、类型预测的期望值",
    "consumption far from the value expected from area, occupants and kind (robust regression)",
    _S + "model_targets",
    _S + "model_categorical",
    _S + "model_level",
    _S + "model_max_fit_rows",
    _S + "tail_share",
    template=(
        "{field:zh} {value} {field:unit}，按面积、人数和类型预测的期望值 {median}（预测区间 "
        "{expected_low}–{expected_high}，学生化残差 {score:z}）" + _P[0] + _LAST[0],
        "{field:en} {value} {field:unit}, expected from area, occupants and kind {median} "
        "(prediction interval {expected_low}–{expected_high}, studentized residual {score:z})"
        + _P[1]
        + _LAST[1],
    ),
)
R_UNIT_SLIP = _rule(
    "STA-005",
    "warning",
    "与上年之比接近单位换算倍数（疑似单位错误）",
    "ratio to last year near a unit factor (likely unit slip)",
    _S + "yoy_tolerance",
    _S + "slip_noise_k",
    _S + "slip_min_half_width",
    _S + "model_level",
    template=(
        "{field:zh} {value}，上年（{previous_year:int}）{previous_value}，之比 {ratio:ratio} "
        "在单位换算倍数 {slip_factor} 的窗口内（±{window_half_width:pct1}%，按本年变化幅度确定），"
        "建议值 {suggested_value}" + _P[0],
        "{field:en} {value}, last year ({previous_year:int}) {previous_value}, ratio "
        "{ratio:ratio} inside the window of the unit factor {slip_factor} "
        "(±{window_half_width:pct1} %, sized by this year's changes); suggested "
        "{suggested_value}" + _P[1],
    ),
)
R_YOY_CHANGE = _rule(
    "STA-006",
    "warning",
    "较上年变化异常大",
    "unusually large change on last year (calibrated on the year's changes)",
    _S + "tail_share",
    _S + "change_two_back",
    _S + "change_follow",
    template=_CHANGE_TEMPLATE,
)
R_COPIED = _rule(
    "STA-007",
    "warning",
    "各项数量与上年完全相同（疑似照抄上年）",
    "every quantity identical to last year (likely copied)",
    _S + "copy_min_nonzero",
    _S + "copy_rtol",
    template=(
        "各项数量与费用与上年（{previous_year:int}）相同，如电力 {value} kWh" + _P[0],
        "every quantity and cost identical to last year ({previous_year:int}), e.g. "
        "electricity {value} kWh" + _P[1],
    ),
)
R_SIBLING = _rule(
    "STA-008",
    "warning",
    "与同一上级单位的其他机构数据完全相同",
    "figures identical to another unit of the same parent",
    _S + "copy_min_nonzero",
    template=(
        "数据与同一上级单位（{peer_values:list}）的 {related_ids:list} 完全相同，"
        "如电力 {value} kWh" + _P[0],
        "figures identical to {related_ids:list_en} of the same parent "
        "({peer_values:list_en}), e.g. electricity {value} kWh" + _P[1],
    ),
)
R_ROUND = _rule(
    "STA-009",
    "info",
    "计量数据为异常整数（疑似估算）",
    "metered figure suspiciously round (likely an estimate)",
    _S + "round_prior_weight",
    template=(
        "{field:zh} {value} 末尾有 {score:int} 个零（偶然、本机构历史和同类中出现的比率均低）"
        + _P[0]
        + _LAST[0],
        "{field:en} {value} ends in {score:int} zeros (rare by chance, in its own history and "
        "among peers)" + _P[1] + _LAST[1],
    ),
)
R_SIZE = _rule(
    "STA-011",
    "warning",
    "建筑面积、用能人数或人均建筑面积较上年变化异常",
    "building area, occupants or floor area per person changed unusually on last year "
    "(calibrated on the year's changes)",
    _S + "tail_share",
    _S + "change_two_back",
    _S + "change_follow",
    template=_CHANGE_TEMPLATE,
)
R_DENSITY = _rule(
    "STA-012",
    "warning",
    "人均建筑面积偏离同类机构（面积或人数可能有误）",
    "floor area per person far from peers (area or occupants may be wrong)",
    _S + "peer_k",
    _S + "peer_min_group_size",
    _S + "tail_share",
    template=_PEER_TEMPLATE,
)
R_RECONCILIATION = _rule(
    "STA-013",
    "warning",
    "填报的能源消费总量与分项不符，某一分项按单位换算倍数改正后即吻合（疑似单位错误），"
    "或该分项较上年变化异常（疑似该分项填错）",
    "the reported total differs from the items, and one item times a unit factor closes the gap "
    "(likely unit slip), or that item changed unusually on last year (likely mistyped)",
    "reconciliation_coefficients",
    _S + "yoy_tolerance",
    template=(
        "填报能源消费总量 {reported_total_tce} tce，分项折算合计 {computed_total_tce} tce，"
        "差 {gap_tce} tce；[{field:zh} {value} 若按倍数 {slip_factor} 填错，改为 "
        "{suggested_value} 即吻合|{field:zh} {value} 较上年（{previous_year:int}）"
        "{previous_value} 变化 {ratio:pct}%，若仅此项有误，按总量应为 {suggested_value}]" + _P[0],
        "reported total {reported_total_tce} tce, items give {computed_total_tce} tce, gap "
        "{gap_tce} tce; [{field:en} {value} mistyped by the factor {slip_factor}: "
        "{suggested_value} closes it|{field:en} {value} changed {ratio:pct} % on last year "
        "({previous_year:int}: {previous_value}); were it the only error, the total gives "
        "{suggested_value}]" + _P[1],
    ),
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
    template=(
        "{batch_zh}{year:int}年 {peer_size:int} 个填报数的前两位数字不符合本福特定律：MAD "
        "{score:ratio}（> {expected_high:ratio} 即不符合；同样本量下偶然约 {median:ratio}），"
        "卡方检验 p = {p:p}；偏多的前两位：{top_pairs:list}",
        "first-two digits of the {peer_size:int} figures of {batch_en} in {year:int} do not "
        "conform to Benford's law: MAD {score:ratio} (nonconformity above "
        "{expected_high:ratio}; by chance about {median:ratio}), chi-square p = {p:p}; "
        "over-represented: {top_pairs:list_en}",
    ),
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
    R_SIZE,
    R_DENSITY,
    R_RECONCILIATION,
)
"""Rules of the statistical stage, in id order."""

METHODS: Final = (
    "peer",
    "density",
    "model",
    "yoy",
    "slips",
    "size",
    "intensity",
    "reconciliation",
    "copies",
    "siblings",
    "round_numbers",
)
"""Methods that score every return (switches of :class:`StatisticalSettings`), in order; each
gives a return one or more calibrated p-values (one per item it scores), combined per return.
The digit test (switch ``digits``, STA-010) judges batches of returns, not returns: its
findings name a district or parent body and carry the batch's own priority."""

_ITEMS: Final = tuple(ITEM_COLUMNS.values())
_QUANTITIES: Final = (*_ITEMS, "water_m3")
_BILLED: Final = {quantity: cost for _, quantity, cost in UNIT_PRICES}
"""Item column → the column of its cost (an independent measure of the same consumption)."""
_COSTS: Final = tuple(_BILLED.values())
_METERED: Final = ("electricity_kwh", "natural_gas_m3", "heat_gj", "water_m3")
_NUMERIC: Final = (
    *_QUANTITIES,
    *_COSTS,
    "building_area_m2",
    "occupants",
    "pv_generation_kwh",
    "reported_total_tce",
)
_DIRECTORY: Final = ("sector", "subsector", "admin_level", "district_code", "heat_billing")

_PEER: Final = (
    (R_PEER_ENERGY_M2, "energy_per_m2_kgce"),
    (R_PEER_ENERGY_CAPITA, "energy_per_capita_kgce"),
    (R_PEER_WATER_CAPITA, "water_per_capita_m3"),
)
_DENSITY: Final = (R_DENSITY, "m2_per_occupant")
_SIZES: Final = ("building_area_m2", "occupants")
_SUGGESTING: Final = frozenset({"STA-005", "STA-013"})
"""Rules whose findings carry a suggested correction: shown wherever their own evidence has
p ≤ ``report_p``, listed return or not, being what the panel acts on."""

_KEY: Final = ("institution_id", "year")


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
    """Add the indicators and the occupancy density ``m2_per_occupant`` [m²/person]."""
    out = indicators(r, coefficients=s.coefficient_table, region_code=s.region_code)
    density = pl.when(pl.col("occupants") > 0).then(
        pl.col("building_area_m2") / pl.col("occupants")
    )
    return out.with_columns(density.alias("m2_per_occupant"))


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


_Blocks = dict[str, pl.DataFrame]
"""Year-over-year table by column (:func:`energy_audit.outliers.yoy.year_over_year_by_column`):
one frame per column, its rows in the order of the returns (row i is the return with ``_row``
i)."""


def _from_blocks(
    hit: pl.DataFrame, blocks: _Blocks, field: str, columns: Mapping[str, tuple[str, pl.DataType]]
) -> pl.DataFrame:
    """Add columns of each hit's ``field`` column block: name → (block column, dtype).

    Gathered by ``_row`` from the column's block (:data:`_Blocks`): no join over the whole
    year-over-year table; null where the hit's field has no block.
    """
    none = [pl.lit(None, dtype).alias(name) for name, (_, dtype) in columns.items()]
    parts = [hit.clear().with_columns(none)]  # the schema, also when there is no hit
    for (column,), part in hit.group_by(field, maintain_order=True):
        block = blocks.get(str(column))
        rows = part["_row"]
        parts.append(
            part.with_columns(none)
            if block is None
            else part.with_columns(
                block[source].gather(rows).alias(name) for name, (source, _) in columns.items()
            )
        )
    return pl.concat(parts, how="vertical")


def _with_last_year(hit: pl.DataFrame, blocks: _Blocks, field: str) -> pl.DataFrame:
    """Add ``previous_value`` and ``previous_year`` of each hit's ``field`` column to the hits."""
    return _from_blocks(
        hit,
        blocks,
        field,
        {"previous_value": ("previous", pl.Float64), "previous_year": ("previous_year", pl.Int64)},
    )


# --------------------------------------------------------------------------------------------
# Evidence units: every method gives one calibrated p per return and field it scores
# --------------------------------------------------------------------------------------------

_Hits = dict[Rule, pl.DataFrame]
"""Candidate findings by rule: one row per return (``_row``) and field, with the finding's
columns and ``p``, the calibrated p-value of its piece of evidence."""

_METHOD: Final = pl.Enum(METHODS)
"""Dtype of the evidence units' ``method``: a small integer code per unit, not its name."""

_UNIT_SCHEMA: Final = {"_row": pl.UInt32, "method": _METHOD, "field": pl.String, "p": pl.Float64}
"""Evidence units: the return, the method (:data:`METHODS`) and field, and the calibrated
p-value."""


def _units(frame: pl.DataFrame, method: str, field: str | pl.Expr) -> pl.DataFrame:
    """Select the evidence units of ``frame`` (:data:`_UNIT_SCHEMA`) to combine."""
    column = pl.lit(field) if isinstance(field, str) else field
    # the four columns first, then the filter: no copy of a wide frame's other columns
    return frame.select(
        pl.col("_row").cast(pl.UInt32),
        pl.lit(method, dtype=_METHOD).alias("method"),
        column.cast(pl.String).alias("field"),
        pl.col("p").cast(pl.Float64),
    ).filter(pl.col("p").is_not_null())


def _no_units() -> pl.DataFrame:
    return pl.DataFrame(schema=_UNIT_SCHEMA)


_PEER_LEVELS: Final = (("year", "sector", "subsector"), ("year", "sector"), ("year",))
"""Peer groups, finest first: a group too small for its own statistics borrows its parent's."""


def _peer_group(level: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """``peer_keys`` and ``peer_values`` of the peer level each row was scored at."""
    keys = pl.lit(None, pl.List(pl.String))
    values = pl.lit(None, pl.List(pl.String))
    for i, group in reversed(list(enumerate(_PEER_LEVELS))):
        keys = pl.when(level == i).then(pl.concat_list([pl.lit(k) for k in group])).otherwise(keys)
        values = (
            pl.when(level == i)
            .then(pl.concat_list([pl.col(k).cast(pl.String) for k in group]))
            .otherwise(values)
        )
    return keys.alias("peer_keys"), values.alias("peer_values")


def _peer(
    r: pl.DataFrame, st: StatisticalSettings, blocks: _Blocks, specs: Sequence[tuple], method: str
) -> tuple[_Hits, pl.DataFrame]:
    """STA-001…003, STA-012: a value's robust z on the log scale against its peer group."""
    hits: _Hits = {}
    units = []
    for rule, column in specs:
        scored = robust_peer_scores(
            r.select("_row", "year", "sector", "subsector", column),
            column,
            [list(g) for g in _PEER_LEVELS],
            min_group_size=st.peer_min_group_size,
            k=st.peer_k,
        ).with_columns(pl.col("peer_score").abs().alias("_a"))
        scored = tail_p(scored, "_a", ["year"], tail_share=st.tail_share)
        units.append(_units(scored, method, column))
        hit = _with_last_year(
            scored.filter(pl.col("p") <= st.report_p).with_columns(pl.lit(column).alias("_c")),
            blocks,
            "_c",
        )
        hits[rule] = hit.select(
            "_row",
            pl.lit(column).alias("field"),
            pl.col(column).alias("value"),
            pl.col("peer_low").alias("expected_low"),
            pl.col("peer_high").alias("expected_high"),
            "p",
            pl.lit(method).alias("method"),
            *_peer_group(pl.col("peer_level")),
            pl.col("peer_level").cast(pl.Int64),
            pl.col("peer_n").cast(pl.Int64).alias("peer_size"),
            pl.col("peer_median").alias("median"),
            pl.col("peer_scale").alias("scale"),
            pl.col("peer_score").alias("score"),
            "previous_value",
            "previous_year",
        )
    return hits, pl.concat(units)


def _model(
    r: pl.DataFrame, st: StatisticalSettings, blocks: _Blocks
) -> tuple[_Hits, pl.DataFrame, pl.DataFrame]:
    """STA-004; also the model's prediction interval per return and field (for suggestions)."""
    parts = []
    categorical = [c for c in st.model_categorical if c in r.columns]
    targets = [t for t in st.model_targets if t in r.columns]
    # the year's rows of the model's columns, partitioned once for every target
    years = r.select(
        "_row", "year", *targets, "building_area_m2", "occupants", *categorical
    ).partition_by("year", maintain_order=True)
    for target in targets:
        for sub in years:
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
            scored = tail_p(
                out.with_columns(pl.col("model_studentized").abs().alias("_a")),
                "_a",
                tail_share=st.tail_share,
            )
            parts.append(
                scored.select(
                    "_row",
                    pl.lit(target).alias("field"),
                    pl.col(target).alias("value"),
                    "model_expected",
                    "model_studentized",
                    (pl.col("model_residual") / pl.col("model_studentized")).alias("_scale"),
                    "model_low",
                    "model_high",
                    "p",
                    pl.lit(scored["model_studentized"].count(), pl.Int64).alias("_n"),
                )
            )
    if not parts:
        ranges = pl.DataFrame(
            schema={"_row": pl.UInt32, "field": pl.String, "model_low": pl.Float64,
                    "model_high": pl.Float64}
        )  # fmt: skip
        return {}, _no_units(), ranges
    scored = pl.concat(parts)
    hit = _with_last_year(scored.filter(pl.col("p") <= st.report_p), blocks, "field")
    hits = hit.select(
        "_row",
        "field",
        "value",
        pl.col("model_low").alias("expected_low"),
        pl.col("model_high").alias("expected_high"),
        "p",
        pl.lit("model").alias("method"),
        pl.col("_n").alias("peer_size"),
        pl.col("model_expected").alias("median"),
        pl.col("_scale").alias("scale"),
        pl.col("model_studentized").alias("score"),
        "previous_value",
        "previous_year",
    )
    ranges = scored.select(pl.col("_row").cast(pl.UInt32), "field", "model_low", "model_high")
    return {R_MODEL: hits}, _units(scored, "model", pl.col("field")), ranges


def _last_year_slipped(r: pl.DataFrame, slips: pl.DataFrame) -> pl.DataFrame:
    """Flag slip signatures where this year's figure fits the peers better than the correction.

    A ratio to last year near a unit factor says one of the two years slipped, not which. The
    institution's own return two back decides where there is one (``reverts``,
    :func:`energy_audit.outliers.yoy.year_over_year`); where there is none (``reverts`` null),
    the peers decide: per m², within the year and sector, the figure closer (on the log
    scale) to the peer median is taken as right. When it is this year's, last year slipped,
    and this year is not flagged. Floor area and occupants are judged per person and per m²
    of the other.
    """
    flagged = [pl.DataFrame(schema={"_row": pl.UInt32, "column": pl.String})]
    candidates = slips.filter(pl.col("reverts").is_null())
    # per column: the peers' median per m² (per person for the floor area) in each year and
    # sector, then only the candidates' rows are judged (no table of every figure)
    for (column,), part in candidates.group_by("column"):
        other = "occupants" if column == "building_area_m2" else "building_area_m2"
        level = (pl.col(str(column)) / pl.col(other)).log()
        medians = (
            r.filter((pl.col(str(column)) > 0) & (pl.col(other) > 0))
            .group_by("year", "sector")
            .agg(level.median().alias("med"))
        )
        rows = part["_row"]
        judged = part.with_columns(
            r["sector"].gather(rows).alias("sector"), r[other].gather(rows).alias("_per")
        ).join(medians, on=["year", "sector"], how="inner", nulls_equal=True)
        now = ((pl.col("value") / pl.col("_per")).log() - pl.col("med")).abs()
        fixed = ((pl.col("suggested_value") / pl.col("_per")).log() - pl.col("med")).abs()
        flagged.append(
            judged.filter((pl.col("value") > 0) & (pl.col("_per") > 0) & (now < fixed)).select(
                pl.col("_row").cast(pl.UInt32), pl.col("column").cast(pl.String)
            )
        )
    return pl.concat(flagged).with_columns(pl.lit(True).alias("last_slipped"))


def _change_stats(blocks: _Blocks, columns: Sequence[str]) -> pl.DataFrame:
    """Summarise the year's changes on last year per column: count, median, robust spread.

    Column by column, from the column's block of the year-over-year table (:data:`_Blocks`),
    with only ``year`` and ``log_ratio`` read: no copy of the whole table.

    Returns
    -------
    polars.DataFrame
        ``column``, ``year``, ``n`` (returns with a change), ``median_lr`` (median log-ratio),
        ``median_lr_two_back`` (median log-ratio to the return two back) and ``sigma``
        (1.4826 · MAD of the log-ratios; √(π/2) · mean absolute deviation when the MAD is 0)
        [ln units].
    """
    lr = pl.col("log_ratio")
    dev = (lr - lr.median()).abs()
    parts = [
        blocks[c]
        .select("year", "log_ratio", "log_ratio_two_back")
        .filter(lr.is_not_null())
        .group_by("year")
        .agg(
            pl.len().cast(pl.Int64).alias("n"),
            lr.median().alias("median_lr"),
            pl.col("log_ratio_two_back").median().alias("median_lr_two_back"),
            (MAD_TO_SIGMA * dev.median()).alias("_mad"),
            (math.sqrt(math.pi / 2.0) * dev.mean()).alias("_mean"),
        )
        .with_columns(pl.lit(c, pl.String).alias("column"))
        for c in columns
    ]
    return pl.concat(parts).select(
        "column",
        "year",
        "n",
        "median_lr",
        "median_lr_two_back",
        pl.when(pl.col("_mad") > 0).then("_mad").otherwise("_mean").alias("sigma"),
    )


def _rows_with_stats(
    blocks: _Blocks, stats: pl.DataFrame, columns: Sequence[str], keep: Sequence[str]
) -> pl.DataFrame:
    """Stack the blocks of ``columns`` (in order) with their column's and year's statistics.

    The rows of a left join of the stacked blocks with ``stats`` (:func:`_change_stats`) on
    (``column``, ``year``), joined block by block on ``year`` (a block is one column): no
    hash of every row's column name. Of the blocks, only the columns ``keep`` (with
    ``year``): a narrow stack of a few fresh columns of tens of millions of rows.
    """
    kept = list(dict.fromkeys(["year", *keep]))
    return pl.concat(
        [
            block.select(kept).join(
                stats.filter(pl.col("column") == c).drop("column"),
                on="year",
                how="left",
                maintain_order="left",
            )
            for c, block in blocks.items()
            if c in columns
        ],
        how="vertical",
        rechunk=True,  # one chunk: the window and tail computations after run faster
    )


def _slip_windows(
    blocks: _Blocks,
    stats: pl.DataFrame,
    columns: Sequence[str],
    st: StatisticalSettings,
    coefficients: TableSource | None,
) -> pl.DataFrame:
    """Match each change on last year with a unit-slip window sized by the measured noise.

    Per column and year: the noise σ of the log-ratios (:func:`_change_stats`); the window of
    factor f is ln f ± h, h = min(yoy_tolerance · |ln f|, max(slip_noise_k · σ,
    slip_min_half_width)); a change matches the nearest window (in half-widths) containing it.
    Its ``window_p`` is the chance that an ordinary change of that column and year lands in the
    window (:func:`energy_audit.outliers.calibration.window_p`, from the window's shoulders).

    Returns
    -------
    polars.DataFrame
        The rows of the ``columns``' blocks whose change matches a window: ``_row``,
        ``year``, ``column``, ``value``, ``previous``, ``previous_year``, ``ratio``,
        ``reverts``, ``slip_factor``, ``half_width``, ``distance`` (in half-widths), ``n``
        (changes of the column and year), ``suggested_value``, ``window_p``.
    """
    out = []
    sigmas = {(c, y): (n, v) for c, y, n, v in stats.select("column", "year", "n", "sigma").rows()}
    # block by block (a block is one column), year by year: no stack of every column's rows
    parts = (
        ((column, year), part)
        for column, block in blocks.items()
        if column in columns
        for (year,), part in block.filter(pl.col("log_ratio").is_not_null()).group_by(
            "year", maintain_order=True
        )
    )
    for (column, year), part in parts:
        lr = part["log_ratio"].to_numpy()
        n, sigma = sigmas[(column, year)]
        factors = np.asarray(slip_factors_for(str(column), coefficients), dtype=np.float64)
        centres = np.log(factors)
        half = np.minimum(
            st.yoy_tolerance * np.abs(centres),
            max(st.slip_noise_k * sigma, st.slip_min_half_width),
        )
        distance = np.abs(lr[:, None] - centres[None, :]) / half[None, :]
        nearest = np.argmin(distance, axis=1)
        nearest_distance = distance[np.arange(lr.size), nearest]
        inside = nearest_distance <= 1.0
        if not inside.any():
            continue
        window = window_p(lr, centres, half)
        matched = part.filter(pl.Series(inside))
        k = nearest[inside]
        out.append(
            matched.select(
                "_row", "year", "column", "value", "previous", "previous_year", "ratio",
                "reverts",
            ).with_columns(
                pl.Series("slip_factor", factors[k]),
                pl.Series("half_width", half[k]),
                pl.Series("distance", nearest_distance[inside]),
                pl.lit(n, pl.Int64).alias("n"),
                pl.Series("window_p", window[k]),
            )
        )  # fmt: skip
    if not out:
        return pl.DataFrame(
            schema={"_row": pl.UInt32, "year": pl.Int64, "column": pl.String,
                    "value": pl.Float64, "previous": pl.Float64, "previous_year": pl.Int64,
                    "ratio": pl.Float64, "reverts": pl.Boolean, "slip_factor": pl.Float64,
                    "half_width": pl.Float64, "distance": pl.Float64, "n": pl.Int64,
                    "suggested_value": pl.Float64, "window_p": pl.Float64}
        )  # fmt: skip
    return pl.concat(out).with_columns(
        (pl.col("value") / pl.col("slip_factor")).alias("suggested_value")
    )


def _band(st: StatisticalSettings) -> tuple[pl.Expr, pl.Expr]:
    """``expected_low`` / ``expected_high`` of a change finding: last year ± ``yoy_band_pct``."""
    band = 1.0 + st.yoy_band_pct / 100.0
    return (
        (pl.col("previous") / band).alias("expected_low"),
        (pl.col("previous") * band).alias("expected_high"),
    )


def _last_year_evidence() -> tuple[pl.Expr, pl.Expr]:
    """``previous_value`` and ``previous_year`` (int) of a row of the year-over-year table."""
    return (
        pl.col("previous").alias("previous_value"),
        "previous_year",
    )


def _slips(
    r: pl.DataFrame,
    blocks: _Blocks,
    stats: pl.DataFrame,
    st: StatisticalSettings,
    ranges: pl.DataFrame,
    coefficients: TableSource | None,
) -> tuple[_Hits, pl.DataFrame, pl.DataFrame]:
    """STA-005: a change on last year inside a unit-slip window, with a consistent suggestion.

    The suggestion (the figure ÷ the factor) must fall inside the model's prediction interval
    where the model scored the figure; a change that undoes last year's slip, or whose figure
    fits the peers better than its correction would (without a return two back), is last
    year's fault. Returns the hits, the units and the matched windows (all of them, for
    STA-006 to leave out the changes a slip explains).
    """
    columns = [*_QUANTITIES, *_SIZES]
    windows = _slip_windows(blocks, stats, columns, st, coefficients)
    windows = windows.join(_last_year_slipped(r, windows), on=["_row", "column"], how="left").join(
        ranges.rename({"field": "column"}), on=["_row", "column"], how="left"
    )
    consistent = pl.col("model_low").is_null() | pl.col("suggested_value").is_between(
        pl.col("model_low"), pl.col("model_high")
    )
    windows = windows.with_columns(
        (
            ~pl.col("reverts").fill_null(False)
            & ~pl.col("last_slipped").fill_null(False)
            & consistent
        ).alias("is_slip")
    )
    slips = windows.filter(pl.col("is_slip")).with_columns(pl.col("window_p").alias("p"))
    hit = slips.filter(pl.col("p") <= st.report_p).select(
        "_row",
        pl.col("column").alias("field"),
        "value",
        *_band(st),
        "suggested_value",
        "p",
        pl.lit("slips").alias("method"),
        pl.col("n").alias("peer_size"),
        pl.col("distance").alias("score"),
        *_last_year_evidence(),
        "slip_factor",
        pl.col("half_width").alias("window_half_width"),
    )
    return {R_UNIT_SLIP: hit}, _units(slips, "slips", pl.col("column")), windows


def _with_cost_change(
    blocks: _Blocks, stats: pl.DataFrame, column: str, cost: str | None
) -> pl.DataFrame:
    """``column``'s block with its cost's changes on the same rows, less their year's medians.

    ``_b1`` (on the previous return) and ``_b2`` (on the return two back) [ln units]; null
    without a cost (``cost`` None; else a column of ``blocks``), or where the cost or its
    earlier figure is not reported. Blocks are aligned row by row (:data:`_Blocks`), so no
    join is needed.
    """
    block = blocks[column]
    if cost is None:
        none = pl.lit(None, pl.Float64)
        return block.with_columns(none.alias("_b1"), none.alias("_b2"))
    medians = stats.filter(pl.col("column") == cost).drop("column")
    centred = (
        blocks[cost]
        .select("year", "log_ratio", "log_ratio_two_back")
        .join(medians, on="year", how="left", maintain_order="left")
    )
    return block.with_columns(
        (centred["log_ratio"] - centred["median_lr"]).alias("_b1"),
        (centred["log_ratio_two_back"] - centred["median_lr_two_back"]).alias("_b2"),
    )


def _changes(
    blocks: _Blocks,
    stats: pl.DataFrame,
    st: StatisticalSettings,
    windows: pl.DataFrame,
    columns: Sequence[str],
    rule: Rule,
    method: str,
    follow: Mapping[str, pl.DataFrame] | None = None,
    billed: Mapping[str, str] | None = None,
) -> tuple[_Hits, pl.DataFrame, pl.DataFrame]:
    """STA-006 (items, intensities) and STA-011 (area, occupants, area per person).

    The score is |log-ratio − the year's median log-ratio| of the column, calibrated on the
    year's own changes (:func:`energy_audit.outliers.calibration.tail_p`). A change that
    undoes last year's slip says last year was wrong: it is not scored. With
    ``change_two_back`` the score is the smaller of that on the previous return and that on
    the return before it (a figure back at its level of two years ago: last year was wrong,
    not this year), calibrated apart for the returns with and without a return two back.
    With ``follow`` (column → its block of the year-over-year table: the total energy, the
    floor area, the occupants) and ``change_follow``, a change of floor area or occupants
    counts only as far as none of the others followed it: each lag's score is the smallest of
    |Δ ln size| and |Δ ln size − Δ ln other| over the other columns (each Δ less its column's
    median of the year). A new wing brings its occupants and its energy; a floor area typed
    30 % too large brings neither. With ``billed`` (item column → its cost column, both in
    ``blocks``) and ``change_follow``, an item's change is also explained as far as its cost
    followed it: the bills measure the same consumption, so an ordinary change of use moves
    the cost with it, while a figure mistyped or estimated beside the cost of the bills leaves
    the implied unit price off by the error (单价审核, domain.md §6). The finding's ``median``
    is last year's value moved by the year's median change.

    Returns the hits, the evidence units, and the units by which a gap of the total is
    judged (:func:`_gap_and_change`): with ``billed``, twice the smaller p of the change with
    and without its cost where a cost was reported (a cost computed from a mistyped figure
    follows it), the bare change's p elsewhere; otherwise the evidence units.
    """
    by = ["column", "year"]
    billing = bool(billed) and st.change_follow
    costs = {c: cost for c, cost in (billed or {}).items() if c in columns and cost in blocks}
    if billing:
        blocks = {c: _with_cost_change(blocks, stats, c, costs.get(c)) for c in columns}
    # a narrow stack for the scores; the hits' figures are gathered from the blocks after
    lags = {"_f1": ["_b1"], "_f2": ["_b2"]} if billing else {"_f1": [], "_f2": []}
    items = _rows_with_stats(
        blocks,
        stats.select(*by, "median_lr", "median_lr_two_back"),
        columns,
        ["_row", "column", "log_ratio", "log_ratio_two_back", "reverts", *lags["_f1"]]
        + lags["_f2"],
    )
    followers = [] if follow is None or not st.change_follow else list(follow.items())
    for i, (column, block) in enumerate(followers):
        # the follower's change, less its year's median, on the rows of every other column
        medians = stats.filter(pl.col("column") == column).drop("column")
        centred = block.select("year", "log_ratio", "log_ratio_two_back").join(
            medians, on="year", how="left", maintain_order="left"
        )
        rows, other = items["_row"], items["column"] != column
        items = items.with_columns(
            pl.when(other)
            .then((centred["log_ratio"] - centred["median_lr"]).gather(rows))
            .alias(f"_f1_{i}"),
            pl.when(other)
            .then((centred["log_ratio_two_back"] - centred["median_lr_two_back"]).gather(rows))
            .alias(f"_f2_{i}"),
        )

    def score(own: pl.Expr, key: str, own_lags: Mapping[str, list[str]]) -> pl.Expr:
        # a change of floor area or occupants that the energy, or the other of the two,
        # follows is explained, and so is an item's change its cost follows (each change
        # less its column's median of the year; no cost reported: null, ignored)
        named = [f"{key}_{i}" for i in range(len(followers))] + own_lags[key]
        return pl.min_horizontal(own.abs(), *((own - pl.col(c)).abs() for c in named))

    def lagged(own_lags: Mapping[str, list[str]]) -> pl.Expr:
        one = score(pl.col("log_ratio") - pl.col("median_lr"), "_f1", own_lags)
        if st.change_two_back:
            two = score(
                pl.col("log_ratio_two_back") - pl.col("median_lr_two_back"), "_f2", own_lags
            )
            one = pl.min_horizontal(one, two)
        return pl.when(~pl.col("reverts").fill_null(False)).then(one)

    items = items.with_columns(
        lagged(lags).alias("_a"), pl.col("log_ratio_two_back").is_not_null().alias("_two")
    )
    groups = [*by, "_two"] if st.change_two_back else by
    if billing:  # changes with a cost to follow them are calibrated apart from those without
        items = items.with_columns(pl.col("_b1").is_not_null().alias("_c"))
        items = tail_p(items, "_a", [*groups, "_c"], tail_share=st.tail_share)
    else:
        items = tail_p(items, "_a", groups, tail_share=st.tail_share)
    units = _units(items, method, pl.col("column"))
    judged = units
    if billing:
        # which item a gap of the total points to is judged by the better of the change with
        # and without its cost (Bonferroni over the two: a cost computed from a mistyped
        # figure follows it), by the bare change where no cost was reported; a column without
        # a cost has the same score and groups both ways (units are sorted later: their
        # order does not matter)
        needed = [c for c in items.columns if c.startswith(("_f1_", "_f2_"))]
        bare = (
            items.select(
                *dict.fromkeys(["_row", "p", "_c", *groups, "reverts", *needed]),
                "log_ratio", "median_lr", "log_ratio_two_back", "median_lr_two_back",
            )
            .filter(pl.col("column").is_in(list(costs)))
            .with_columns(lagged({"_f1": [], "_f2": []}).alias("_a"))
        )  # fmt: skip
        bare = tail_p(bare, "_a", groups, tail_share=st.tail_share, name="_p_bare")
        either = (2.0 * pl.min_horizontal("p", "_p_bare")).clip(upper_bound=1.0)
        judged = pl.concat(
            [
                units.filter(~pl.col("field").is_in(list(costs))),
                _units(
                    bare.with_columns(
                        pl.when(pl.col("_c")).then(either).otherwise("_p_bare").alias("p")
                    ),
                    method,
                    pl.col("column"),
                ),
            ]
        )
    explained = windows.filter(pl.col("is_slip")).select("_row", "column")
    shown = items.filter(pl.col("p") <= st.report_p).join(
        explained, on=["_row", "column"], how="anti"
    )
    shown = _from_blocks(
        shown.join(stats.select(*by, "n", "sigma"), on=by, how="left", maintain_order="left"),
        blocks,
        "column",
        {
            "value": ("value", pl.Float64),
            "previous": ("previous", pl.Float64),
            "previous_year": ("previous_year", pl.Int64),
        },
    )
    hit = shown.select(
        "_row",
        pl.col("column").alias("field"),
        "value",
        *_band(st),
        "p",
        pl.lit(method).alias("method"),
        pl.col("n").alias("peer_size"),
        (pl.col("previous") * pl.col("median_lr").exp()).alias("median"),
        pl.col("sigma").alias("scale"),
        pl.col("_a").alias("score"),
        *_last_year_evidence(),
    )
    return {rule: hit}, units, judged


_CLOSURE_MIN_HALF_WIDTH: Final = 0.05
"""Narrowest window of an implied factor [ln units]: fuel delivered at 0.72-0.76 kg/L against
the nominal 0.73, a slip typed from a rounded 万 figure."""


def _closure(
    work: pl.DataFrame,
    gapped: pl.DataFrame,
    column: str,
    kgce_per_unit: float,
    gap: str,
    coefficients: TableSource | None,
    n: int,
) -> pl.DataFrame:
    """Find the unit-slip window the implied factor of ``column`` falls in, per gapped return.

    f̂ = v / (v + gap / c); the window of factor f is ln f ± h, h = the rounding of the total
    as seen on the item (at least :data:`_CLOSURE_MIN_HALF_WIDTH`, at most half of |ln f|).
    ``_distance`` is |ln f̂ − ln f| / h of the nearest window (≤ 1 inside), ``p``
    the chance of an f̂ of this column landing in that window by accident, from the
    window's shoulders among the year's returns whose total has a gap.
    """
    factors = np.asarray(slip_factors_for(column, coefficients), dtype=np.float64)
    centres = np.log(factors)
    cap = 0.5 * np.abs(centres)
    true = pl.col(column) + pl.col(gap) * 1000.0 / kgce_per_unit
    implied = pl.when((pl.col(column) > 0) & (true > 0)).then((pl.col(column) / true).log())
    # the null: implied factors of the returns whose gap is real (an ok total never matches)
    others = gapped.select(implied.alias("x"))["x"].drop_nulls().to_numpy()
    # P(match) = P(gap) · P(match | gap) = (λ + 1) / (n + 1) over all n returns with a total
    window = window_p(others, centres, np.minimum(cap, _CLOSURE_MIN_HALF_WIDTH))
    window = window * (others.size + 1.0) / (n + 1.0)
    lr = gapped.select(implied.alias("x"))["x"].fill_null(np.nan).to_numpy()
    rounding = (
        gapped.select((pl.col("_tol") * 1000.0 / kgce_per_unit / true).abs().alias("d"))["d"]
        .fill_null(np.inf)
        .to_numpy()
    )
    half = np.minimum(cap[None, :], np.maximum(rounding[:, None], _CLOSURE_MIN_HALF_WIDTH))
    with np.errstate(invalid="ignore"):
        distance = np.abs(lr[:, None] - centres[None, :]) / half
    distance = np.where(np.isfinite(distance), distance, np.inf)
    k = np.argmin(distance, axis=1)
    return gapped.select(
        "_row",
        pl.lit(column).alias("field"),
        pl.col(column).alias("value"),
        true.alias("suggested_value"),
        "reported_total_tce",
        pl.col(gap).alias("_gap"),
        pl.lit(n, pl.Int64).alias("_n"),
    ).with_columns(
        pl.Series("slip_factor", factors[k]),
        pl.Series("_distance", distance[np.arange(lr.size), k]),
        pl.Series("p", np.clip(window[k], 1.0 / (n + 1.0), 1.0)),
    )


def _gap_and_change(
    work: pl.DataFrame,
    gapped: pl.DataFrame,
    items: Sequence[str],
    changes: pl.DataFrame,
    report_p: float,
) -> pl.DataFrame:
    """Evidence of a gap that an item's unusual change explains, per gapped return.

    Under the null the own total's gap (not explained by rounding or accepted coefficients)
    and the change of an item on last year are independent: the chance of a gap *and* a
    change of some item with p ≤ x is at most k · P(gap) · x over the return's k items with
    a change p-value (Bonferroni), P(gap) = (g + 1) / (n + 1) the year's share of the n
    returns with a total that have one. Only a change reportable on its own (p ≤
    ``report_p``) counts: a gap beside ordinary changes is the total's own matter (CON-003),
    not evidence against an item. ``changes``: the year-over-year units (``_row``,
    ``field``, ``p``). Returns ``_row``, ``field`` (the item of the most unusual change),
    ``p``, ``_gap`` [tce], ``reported_total_tce``, ``_n``.
    """
    n, g = work.height, gapped.height
    p_gap = (g + 1.0) / (n + 1.0)
    return (
        gapped.select("_row", "_gap", "reported_total_tce")
        .join(changes.filter(pl.col("field").is_in(list(items))), on="_row", how="inner")
        .group_by("_row")
        .agg(
            pl.len().alias("_k"),
            pl.col("field").sort_by("p").first(),
            pl.col("p").min(),
            pl.col("_gap", "reported_total_tce").first(),
        )
        .filter(pl.col("p") <= report_p)
        .with_columns(
            (pl.col("_k") * p_gap * pl.col("p")).clip(upper_bound=1.0).alias("p"),
            pl.lit(n, pl.Int64).alias("_n"),
        )
    )


def _gap_hits(
    culprits: pl.DataFrame, r: pl.DataFrame, blocks: _Blocks, coefficients: TableSource | None
) -> pl.DataFrame:
    """STA-013 findings of a gap and an item's unusual change (:func:`_gap_and_change`).

    The value that closes the gap were the item the only error, vᵢ + gap / cᵢ, is suggested
    only where it is positive and nearer last year's figure than the reported one (in ratio):
    a correction consistent with the evidence; otherwise the evidence counts in the ranking
    and gives no finding.
    """
    parts = [culprits.clear().with_columns(
        pl.lit(None, pl.Float64).alias(c)
        for c in ("value", "previous_value", "suggested_value")
    ).with_columns(pl.lit(None, pl.Int64).alias("previous_year"))]  # fmt: skip
    years = r["year"]
    factors = {int(y): kgce_per_canonical_unit(coefficients, int(y)) for y in years.unique()}
    for (column,), part in culprits.group_by("field"):
        block = blocks[str(column)]
        rows = part["_row"]
        per_unit = years.gather(rows).replace_strict(
            {y: f[str(column)] for y, f in factors.items()}, return_dtype=pl.Float64
        )
        value = block["value"].gather(rows)
        parts.append(
            part.with_columns(
                value.alias("value"),
                block["previous"].gather(rows).alias("previous_value"),
                (value + part["_gap"] * 1000.0 / per_unit).alias("suggested_value"),
                block["previous_year"].gather(rows),
            )
        )
    hits = pl.concat(parts, how="diagonal_relaxed")
    return hits.filter(
        (pl.col("suggested_value") > 0)
        & (
            (pl.col("suggested_value") / pl.col("previous_value")).log().abs()
            < (pl.col("value") / pl.col("previous_value")).log().abs()
        )
    )


def _reconciliation(
    r: pl.DataFrame, settings: VerifySettings, changes: pl.DataFrame, blocks: _Blocks
) -> tuple[_Hits, pl.DataFrame]:
    """STA-013: the reported total, the items, and the one item × one factor that closes the gap.

    The gap is the reported total minus Σ items × coefficients [tce]. A total that reconciles
    (:func:`energy_audit.reconciliation.reconcile_totals`, shared with CON-003: the gap within
    half a unit of the total's last decimal, with the table's coefficients or the accepted
    alternative ones, ``reconciliation_coefficients``) has no gap. Otherwise each item i with
    a figure vᵢ > 0 implies the factor f̂ = vᵢ / (vᵢ + gap / cᵢ) by which it would have been
    mistyped, were it the only mistake (with the packaged coefficients and with the alternative
    ones); f̂ inside a unit-slip window of the item (:func:`_closure`) is the signature. Its
    evidence is the chance that an f̂ of that item lands in that window by accident, from the
    window's shoulders among the year's returns with a total
    (:func:`energy_audit.outliers.calibration.window_p`): a window that ordinary
    discrepancies (rounding, other coefficients) reach gets a weak p, one they never reach
    about 1 / (n + 1). The suggested value closes the gap. A gapped return no slip closes is
    judged by its items' changes instead (:func:`_gap_and_change`, :func:`_gap_hits`).
    """
    if "reported_total_tce" not in r.columns:
        return {}, _no_units()
    st, coefficients = settings.statistical, settings.coefficient_table
    reconciled = reconcile_totals(
        r.filter(pl.col("reported_total_tce") > 0),
        coefficients=coefficients,
        alternative_coefficients=settings.reconciliation_coefficients,
    ).rename(
        {"total_gap_tce": "_gap", "alternative_gap_tce": "_gap_alt", "total_rounding_tce": "_tol"}
    )
    parts, culprits = [], []
    for (year,), work in reconciled.group_by("year", maintain_order=True):
        coef = kgce_per_canonical_unit(coefficients, int(year))
        items = [c for c in _ITEMS if c in coef]
        n = work.height
        gapped = work.filter(~pl.col("is_reconciled"))
        if gapped.is_empty():
            continue
        culprits.append(_gap_and_change(work, gapped, items, changes, st.report_p))
        candidates = []
        for gap in ("_gap", "_gap_alt"):
            for c in items:
                candidates.append(_closure(work, gapped, c, coef[c], gap, coefficients, n))
        found = (
            pl.concat(candidates)
            .filter(pl.col("_distance") <= 1.0)
            .sort("_row", "_distance")
            .unique("_row", keep="first", maintain_order=True)
        )
        parts.append(found)
    if not parts:
        return {}, _no_units()
    found = pl.concat(parts)
    culprit = pl.concat(culprits)
    # a return whose gap one slip closes is that slip's, not a change's
    culprit = culprit.join(found.select("_row"), on="_row", how="anti")
    columns = [
        "_row",
        "field",
        "value",
        "suggested_value",
        "p",
        pl.lit("reconciliation").alias("method"),
        pl.col("_n").alias("peer_size"),
        "reported_total_tce",
        (pl.col("reported_total_tce") - pl.col("_gap")).alias("computed_total_tce"),
    ]
    slip = found.filter(pl.col("p") <= st.report_p).select(
        *columns, pl.col("_distance").alias("score"), "slip_factor"
    )
    changed = _gap_hits(culprit, r, blocks, coefficients).select(
        *columns, "previous_value", "previous_year"
    )
    hit = pl.concat([slip, changed], how="diagonal_relaxed")
    return {R_RECONCILIATION: hit}, pl.concat(
        [
            _units(found, "reconciliation", pl.col("field")),
            _units(culprit, "reconciliation", pl.col("field")),
        ]
    )


def _precision(value: pl.Expr) -> pl.Expr:
    """Relative precision of a figure: half a unit of its last decimal over the figure."""
    return 0.5 * pl.lit(10.0).pow(-reported_decimals(value).cast(pl.Float64)) / value.abs()


def _copies(
    r: pl.DataFrame,
    earlier: EarlierReturns,
    st: StatisticalSettings,
    columns: list[str],
    blocks: _Blocks,
) -> tuple[_Hits, pl.DataFrame]:
    """STA-007; evidence: the chance of every non-zero figure repeating to its precision.

    Per column, the chance that a figure equals last year's within its precision is estimated
    from the density of the year's log-ratios of that column next to 0
    (:func:`energy_audit.outliers.calibration.exact_match_p`); a copy's p-value is the product
    over its non-zero quantities (at most 1).
    """
    out = copied_figures(
        r.select("_row", *_KEY, *columns),
        columns,
        earlier=earlier,
        min_nonzero=st.copy_min_nonzero,
        rtol=st.copy_rtol,
    ).filter(pl.col("is_copied_from_last_year"))
    if out.is_empty():
        return {}, _no_units()
    p = np.ones(out.height)
    for c in _QUANTITIES:
        ratios = blocks[c]["log_ratio"].to_numpy()
        values = out.select(pl.when(pl.col(c) > 0).then(_precision(pl.col(c))).alias("e"))
        eps = values["e"].fill_null(np.nan).to_numpy()
        chance = exact_match_p(ratios, np.nan_to_num(eps, nan=0.0))
        p *= np.where(np.isfinite(eps), chance, 1.0)
    out = out.with_columns(pl.Series("p", np.clip(p, 1e-300, 1.0)))
    hits = out.select(
        "_row",
        pl.lit(None, pl.String).alias("field"),
        pl.col("electricity_kwh").alias("value"),
        "p",
        pl.lit("copies").alias("method"),
        pl.col("electricity_kwh").alias("previous_value"),
        pl.col("copied_from_year").cast(pl.Int64).alias("previous_year"),
    )
    return {R_COPIED: hits}, _units(out, "copies", pl.lit(None, pl.String))


def _siblings(
    r: pl.DataFrame, st: StatisticalSettings, columns: list[str]
) -> tuple[_Hits, pl.DataFrame]:
    """STA-008; evidence: the chance that a sibling's figures all coincide to their precision.

    Per column, the chance that two returns' figures agree within ε (relative) is about
    2ε ∫ f², f the density of the column's log figures in the year (a histogram of width
    0.05); with g − 1 other units under the parent, (g − 1) times that; the product over the
    non-zero quantities.
    """
    out = identical_within_groups(
        r.select("_row", *_KEY, "parent_id", *columns),
        columns,
        "parent_id",
        min_nonzero=st.copy_min_nonzero,
    ).filter(pl.col("is_identical_to_sibling"))
    if out.is_empty():
        return {}, _no_units()
    size = r.group_by("parent_id", "year").agg(pl.len().alias("_g"))
    out = out.join(size, on=["parent_id", "year"], how="left")
    p = np.ones(out.height)
    others = (out["_g"].to_numpy() - 1).clip(1, None)
    for c in _QUANTITIES:
        logs = r.filter(pl.col(c) > 0).select(pl.col(c).log())[c].to_numpy()
        if logs.size < 2:
            continue
        counts, edges = np.histogram(logs, bins=max(1, int(np.ptp(logs) / 0.05)))
        width = float(edges[1] - edges[0]) if edges.size > 1 else 1.0
        density = float(np.sum((counts / logs.size) ** 2) / width)
        eps = out.select(pl.when(pl.col(c) > 0).then(_precision(pl.col(c))).alias("e"))["e"]
        e = eps.fill_null(np.nan).to_numpy()
        p *= np.where(np.isfinite(e), np.minimum(1.0, others * 2 * e * density), 1.0)
    out = out.with_columns(pl.Series("p", np.clip(p, 1e-300, 1.0)))
    hits = out.select(
        "_row",
        pl.lit(None, pl.String).alias("field"),
        pl.col("electricity_kwh").alias("value"),
        "p",
        pl.lit("siblings").alias("method"),
        pl.concat_list(pl.lit("parent_id")).alias("peer_keys"),
        pl.concat_list(pl.col("parent_id").cast(pl.String)).alias("peer_values"),
        pl.col("_g").cast(pl.Int64).alias("peer_size"),
        pl.col("identical_sibling_ids").cast(pl.List(pl.String)).alias("related_ids"),
    )
    return {R_SIBLING: hits}, _units(out, "siblings", pl.lit(None, pl.String))


def _round(
    r: pl.DataFrame, earlier: EarlierReturns, st: StatisticalSettings, blocks: _Blocks
) -> tuple[_Hits, pl.DataFrame]:
    """STA-009; evidence: each metered figure's roundness.

    :func:`energy_audit.outliers.copies.round_numbers` gives each metered figure the largest of
    its chance, own-history and peer rates (for its magnitude) of being this round. Each
    figure is a unit of evidence, combined with the others of the return, weighted by
    materiality, as every method's are (:func:`_combined`): several round figures of one
    return together weigh more than one. The finding names the roundest figure.
    """
    columns = list(_METERED)
    out = round_numbers(
        r.select("_row", *_KEY, *columns),
        columns,
        earlier=earlier,
        prior_weight=st.round_prior_weight,
    )
    value = pl.lit(None, pl.Float64)
    roundness = pl.lit(None, pl.Int32)
    figure_p = pl.lit(None, pl.Float64)
    for c in columns:
        here = pl.col("round_column") == c
        value = pl.when(here).then(pl.col(c)).otherwise(value)
        roundness = pl.when(here).then(pl.col(f"round_{c}_roundness")).otherwise(roundness)
        figure_p = pl.when(here).then(pl.col(f"round_{c}_p")).otherwise(figure_p)
    # the roundest figure, with its own p-value (the return's is the stage's combination)
    hit = _with_last_year(
        out.with_columns(figure_p.alias("p"))
        .filter((pl.col("p") <= st.report_p) & pl.col("round_column").is_not_null())
        .with_columns(value.alias("value"), roundness.alias("t")),
        blocks,
        "round_column",
    )
    hits = hit.select(
        "_row",
        pl.col("round_column").alias("field"),
        "value",
        "p",
        pl.lit("round_numbers").alias("method"),
        pl.col("t").cast(pl.Float64).alias("score"),
        "previous_value",
        "previous_year",
    )
    # one unit per figure: the figures' evidence is combined, weighted by their materiality,
    # with every other method's (:func:`_combined`)
    units = pl.concat(
        _units(out.with_columns(pl.col(f"round_{c}_p").alias("p")), "round_numbers", c)
        for c in columns
    )
    return {R_ROUND: hits}, units


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
    hits = hit.select(
        pl.when(is_district).then(pl.lit(None, pl.String)).otherwise(pl.col("code"))
        .alias("institution_id"),
        "year",
        pl.col("group").alias("field"),  # the directory column that forms the batch
        pl.col("mean_abs_deviation").alias("value"),
        pl.lit(nonconformity).alias("expected_high"),
        pl.col("q").map_batches(priority_from_p, return_dtype=pl.Float64).alias("priority"),
        pl.concat_str(pl.col("group"), pl.lit(":"), pl.col("code")).alias("key"),
        who_zh.alias("batch_zh"),
        who_en.alias("batch_en"),
        pl.col("top_digit_pairs").cast(pl.List(pl.String)).alias("top_pairs"),
        pl.struct(
            pl.lit("digits").alias("method"),
            pl.concat_list(pl.col("group")).alias("peer_keys"),
            pl.concat_list(pl.col("code")).alias("peer_values"),
            pl.col("n_values").cast(pl.Int64).alias("peer_size"),
            pl.col("expected_mean_abs_deviation").alias("median"),
            pl.col("mean_abs_deviation").alias("score"),
            pl.col("p_value").alias("p"),
        ).alias("evidence"),
    )  # fmt: skip
    return findings_from_hits(R_DIGITS, hits)


# --------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------


_Weights = dict[str, npt.NDArray[np.float64]]
"""Materiality of each weighted field: its weight per return (element i: ``_row`` i)."""


def _materiality(
    r: pl.DataFrame, blocks: _Blocks, st: StatisticalSettings, coefficients: TableSource | None
) -> _Weights:
    """Weight of each item in a return's evidence: its expected share of the return's energy.

    The expected tce of an energy item is the larger of this year's and last year's figure
    times its coefficient (a figure typed ÷ 10,000 keeps last year's weight); its weight is
    its share of the return's sum of those, at least ``materiality_floor``, times
    1 − ``water_weight``; water weighs ``water_weight``. Every other field (totals,
    intensities, area, occupants, whole-return evidence) weighs 1, and so does an item
    without a coefficient in the return's year (:func:`_weight_of`).
    """
    weights: _Weights = {}

    def weight(c: str) -> npt.NDArray[np.float64]:
        return weights.setdefault(c, np.ones(r.height))

    for (year,), rows in r.group_by("year", maintain_order=True):
        coef = kgce_per_canonical_unit(coefficients, int(year))
        items = [c for c in _ITEMS if c in coef]
        at = rows["_row"].to_numpy()
        expected = {}
        for c in items:
            previous = blocks[c]["previous"].gather(rows["_row"]) if c in blocks else None
            now = rows[c].fill_null(0.0).clip(lower_bound=0.0)
            base = now if previous is None else pl.Series(np.fmax(now, previous.fill_null(0.0)))
            expected[c] = base * coef[c]
        total = sum(expected.values())
        total = total.replace(0.0, None)  # no energy at all: no shares (floor weights)
        for c in items:
            share = (expected[c] / total).fill_null(0.0).fill_nan(0.0)
            share = share.clip(lower_bound=st.materiality_floor) * (1.0 - st.water_weight)
            weight(c)[at] = share.cast(pl.Float64).to_numpy()
        weight("water_m3")[at] = st.water_weight
    return weights


def _codes(values: pl.Series, levels: Sequence[str]) -> npt.NDArray[np.int64]:
    """Index of each value in ``levels`` (``len(levels)`` for any other value or null).

    Looked up once per run of equal values: evidence units come in long runs of one method
    and field.
    """
    runs = values.rle().struct.unnest()
    code = (
        runs["value"]
        .cast(pl.String)
        .replace_strict(
            list(levels), list(range(len(levels))), default=len(levels), return_dtype=pl.Int64
        )
        .fill_null(len(levels))
    )
    return np.repeat(code.to_numpy(), runs["len"].to_numpy())


def _weight_of(frame: pl.DataFrame, weights: _Weights) -> pl.Series:
    """Materiality ``_w`` of each row of ``frame`` (``_row``, ``field``), gathered; else 1."""
    if frame.is_empty():
        return pl.Series("_w", [], dtype=pl.Float64)
    fields = list(weights)
    n = len(next(iter(weights.values()))) if weights else 0
    table = np.vstack([*(weights[f] for f in fields), np.ones(n)])
    rows = frame["_row"].cast(pl.Int64).to_numpy()
    return pl.Series("_w", table[_codes(frame["field"], fields), rows], dtype=pl.Float64)


def _sorted_units(units: pl.DataFrame) -> pl.DataFrame:
    """Order the evidence units by method (:data:`METHODS`) and field (by name), stably.

    The combination's sums (:func:`_combined`, by :func:`numpy.bincount` in row order) then
    run over each return's units in the same order whatever order the methods' frames came
    in, so a rerun gives the same bits: within a method, the fields by name; over the
    methods, the methods in :data:`METHODS` order (each return's first unit of a method
    comes after all of the methods before it). One stable radix sort on a small integer
    key, not a sort of every unit by return. Returns ``_row``, ``method``, ``p`` and ``_w``
    (the field is not needed past here).
    """
    if units.is_empty():
        return units
    runs = units["field"].rle().struct.field("value")
    fields = sorted(runs.drop_nulls().unique().to_list())
    key = units["method"].to_physical().cast(pl.Int64).to_numpy() * (len(fields) + 1)
    key += _codes(units["field"], fields)
    if key.max() < 1 << 15:  # numpy's stable sort of 16-bit integers is a radix sort
        key = key.astype(np.int16)
    order = np.argsort(key, kind="stable")
    return pl.DataFrame(
        {
            "_row": units["_row"].to_numpy()[order],
            "method": units["method"].gather(order),
            "p": units["p"].to_numpy()[order],
            "_w": units["_w"].to_numpy()[order],
        }
    )


def _strongest(units: pl.DataFrame, n: int) -> pl.Series:
    """Smallest p-value of each return's units (``_best``, null without any), per ``_row``.

    NaN is ignored as polars' ``min`` ignores it.
    """
    best = np.full(n, np.nan)
    if units.height:
        np.fmin.at(best, units["_row"].cast(pl.Int64).to_numpy(), units["p"].to_numpy())
    return pl.Series("_best", best).fill_nan(None)


def _analyse(
    returns: pl.DataFrame,
    directory: pl.DataFrame,
    history: pl.DataFrame | None,
    settings: VerifySettings,
    timings: dict[str, float] | None = None,
) -> tuple[pl.DataFrame, _Hits, pl.DataFrame, _Weights]:
    """Score the returns: (rows, candidate hits by rule, evidence units, materiality weights).

    The evidence units carry their materiality ``_w`` and are sorted by return, method and
    field (:func:`_sorted_units`). ``timings``, if given, receives the wall-clock seconds of
    each step (preparation, each method that ran, ``materiality`` and ``units``; the
    combination is added by the caller).
    """
    st = settings.statistical
    coefficients = settings.coefficient_table
    clock = time.perf_counter()
    r = _with_indicators(_canonical(returns, "returns"), settings).with_row_index("_row")
    r = _with_directory(r, directory)
    h = None
    if history is not None:
        h = _with_indicators(_canonical(history, "history"), settings).drop(
            "source_file", "source_row"
        )
    copy_columns = [*_QUANTITIES, *_COSTS]
    intensities = [p[1] for p in _PEER]
    yoy_columns = [
        *_QUANTITIES, "total_energy_tce", *_SIZES, *intensities, _DENSITY[1], *_BILLED.values()
    ]  # fmt: skip
    prev_cols = ["_row", "column", "value", "previous", "previous_year", "ratio", "log_ratio",
                 "slip_factor", "suggested_value", "reverts", "log_ratio_two_back"]  # fmt: skip
    # one sort of history ∪ returns for every method that compares a return with earlier ones
    compared = list(dict.fromkeys([*yoy_columns, *copy_columns, *_METERED]))
    earlier = earlier_returns(r, h, compared, "institution_id", "year")
    blocks = {
        c: block.rename({"row_index": "_row"}).select("year", *prev_cols)
        for c, block in year_over_year_by_column(
            r.select("_row", *_KEY, *yoy_columns),
            yoy_columns,
            earlier=earlier,
            slip_factors={c: slip_factors_for(c, coefficients) for c in yoy_columns},
            tolerance=st.yoy_tolerance,
            scores=False,  # the changes are calibrated by tail_p, not by a robust z
        ).items()
    }
    stats = _change_stats(blocks, yoy_columns)
    times = {} if timings is None else timings
    times["preparation"] = time.perf_counter() - clock
    units: list[pl.DataFrame] = []
    ranges = pl.DataFrame(
        schema={"_row": pl.UInt32, "field": pl.String, "model_low": pl.Float64,
                "model_high": pl.Float64}
    )  # fmt: skip
    windows = pl.DataFrame(schema={"_row": pl.UInt32, "column": pl.String, "is_slip": pl.Boolean})
    item_changes = _no_units()

    def model() -> tuple[_Hits, pl.DataFrame]:
        nonlocal ranges
        found, unit, ranges = _model(r, st, blocks)
        return found, unit

    def slips() -> tuple[_Hits, pl.DataFrame]:
        nonlocal windows
        found, unit, windows = _slips(r, blocks, stats, st, ranges, coefficients)
        return found, unit

    def changes(
        columns: Sequence[str],
        rule: Rule,
        method: str,
        follow: Mapping[str, pl.DataFrame] | None = None,
    ) -> tuple[_Hits, pl.DataFrame]:
        return _changes(blocks, stats, st, windows, columns, rule, method, follow)[:2]

    def yoy() -> tuple[_Hits, pl.DataFrame]:
        nonlocal item_changes
        # an item's change that the premises follow (a new wing) is explained as the other
        # way round, and so is one its cost follows (:func:`_changes`)
        found, unit, item_changes = _changes(
            blocks,
            stats,
            st,
            windows,
            [*_QUANTITIES, "total_energy_tce"],
            R_YOY_CHANGE,
            "yoy",
            {c: blocks[c] for c in _SIZES},
            _BILLED,
        )
        return found, unit

    runs: list[tuple[str, bool, Callable[[], tuple[_Hits, pl.DataFrame]]]] = [
        ("peer", st.peer, lambda: _peer(r, st, blocks, _PEER, "peer")),
        ("density", st.density, lambda: _peer(r, st, blocks, (_DENSITY,), "density")),
        ("model", st.model, model),
        ("slips", st.slips, slips),
        ("yoy", st.yoy, yoy),
        (
            "size",
            st.size,
            lambda: changes(
                _SIZES, R_SIZE, "size", {c: blocks[c] for c in ("total_energy_tce", *_SIZES)}
            ),
        ),
        ("intensity", st.intensity, lambda: changes(intensities, R_YOY_CHANGE, "intensity")),
        ("density_change", st.density, lambda: changes([_DENSITY[1]], R_SIZE, "density")),
        (
            "reconciliation",
            st.reconciliation,
            lambda: _reconciliation(r, settings, item_changes, blocks),
        ),
        ("copies", st.copies, lambda: _copies(r, earlier, st, copy_columns, blocks)),
        ("siblings", st.siblings, lambda: _siblings(r, st, copy_columns)),
        ("round_numbers", st.round_numbers, lambda: _round(r, earlier, st, blocks)),
    ]
    found: dict[Rule, list[pl.DataFrame]] = {}
    for method, enabled, run in runs:
        if enabled:
            clock = time.perf_counter()
            method_hits, unit = run()
            for rule, hit in method_hits.items():
                if hit.height:
                    found.setdefault(rule, []).append(hit)
            units.append(unit)
            times[method] = time.perf_counter() - clock
    hits = {rule: pl.concat(parts, how="diagonal_relaxed") for rule, parts in found.items()}
    clock = time.perf_counter()
    weights = _materiality(r, blocks, st, coefficients)
    times["materiality"] = time.perf_counter() - clock
    clock = time.perf_counter()
    table = pl.concat(units) if units else _no_units()
    table = _sorted_units(table.with_columns(_weight_of(table, weights)))
    times["units"] = time.perf_counter() - clock
    return r, hits, table, weights


COMBINED_INDEX_FLOOR: Final = 0.5
"""Floor of the tail index of 1/p when the combined p is calibrated on the year's returns.

1/p of a uniform p has a Pareto tail of index 1; a combination of conservative pieces has a
lighter one (0.58-0.66 measured on clean synthetic cities of every noise family), which the
calibration follows. The floor keeps the few largest of a small year (tens of returns, a dozen
above the threshold) from being extrapolated beyond the square of their own evidence."""


def _null_backed(p: npt.NDArray[np.float64], tolerance: float) -> bool:
    """Whether the combined p-values above 0.2 look uniform (Kolmogorov distance ≤ tolerance).

    Defects sit at small p; above 0.2 there are almost only clean returns, whose p-values
    should be uniform on [0.2, 1] if the calibration holds. When they are not, the p-values
    are not backed by an empirical null and no q-value is given.
    """
    upper = np.sort(p[np.isfinite(p) & (p > 0.2)])
    if upper.size < 50:
        return False
    cdf = (upper - 0.2) / 0.8
    ecdf = np.arange(1, upper.size + 1) / upper.size
    distance = float(np.max(np.maximum(np.abs(ecdf - cdf), np.abs(ecdf - 1 / upper.size - cdf))))
    return distance <= tolerance


def _combined(units: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Weighted Cauchy combination of each return's units, per method and over the methods.

    Within a method an energy item weighs its materiality (:func:`_materiality`), every other
    field 1; the methods that scored a return weigh the same. Each p-value is truncated at 0.5
    (a p-value near 1 has an unbounded negative Cauchy term that would cancel real evidence
    elsewhere). The Cauchy statistic of a method's combination is the weighted mean of its
    terms, so combining the methods' combined p-values with equal weights is the flat
    combination of all units with the product weights.

    Returns
    -------
    per_method : polars.DataFrame
        ``_row``, ``method``, ``p_combined`` (the method's combined p-value).
    combined : polars.DataFrame
        ``_row``, ``methods`` (methods combined), ``p_combined``.
    """
    if units.is_empty():
        each = {"_row": pl.UInt32, "method": _METHOD, "p_combined": pl.Float64}
        empty = {"_row": pl.UInt32, "methods": pl.UInt32, "p_combined": pl.Float64}
        return pl.DataFrame(schema=each), pl.DataFrame(schema=empty)
    clipped = units.with_columns(pl.col("p").clip(upper_bound=0.5))
    per_method = cauchy_combination_by(clipped, "p", ["_row", "method"], weight="_w").drop(
        "methods"
    )
    combined = cauchy_combination_by(per_method, "p_combined", ["_row"]).with_columns(
        pl.col("methods").cast(pl.UInt32)
    )
    return per_method, combined


def _priorities(r: pl.DataFrame, units: pl.DataFrame, st: StatisticalSettings) -> pl.DataFrame:
    """Combine each return's evidence (:func:`_combined`): combined p, q where backed, priority."""
    per_method, combined = _combined(units)
    ran = [m for m in METHODS if getattr(st, m)]
    # one p per return and method: scattered by ``_row`` (the returns' positions), no pivot
    wide = np.full((len(ran) + 1, r.height), np.nan)
    wide[_codes(per_method["method"], ran), per_method["_row"].cast(pl.Int64).to_numpy()] = (
        per_method["p_combined"].to_numpy()
    )
    rows = combined["_row"].cast(pl.Int64).to_numpy()
    methods = np.zeros(r.height, dtype=np.uint32)
    methods[rows] = combined["methods"].to_numpy()
    p_all = np.full(r.height, np.nan)
    p_all[rows] = combined["p_combined"].to_numpy()
    present = np.zeros(r.height, dtype=bool)
    present[rows] = True
    absent = pl.Series(~present)
    table = r.select("_row", *_KEY).with_columns(
        *(pl.Series(m, wide[i]).fill_nan(None) for i, m in enumerate(ran)),
        pl.Series("methods", methods, dtype=pl.UInt32).set(absent, None),
        pl.Series("p_combined", p_all, dtype=pl.Float64).set(absent, None),
    )
    # the combination calibrated on the year's own returns, as every piece of evidence is: the
    # share of the year's returns with at least this much evidence, a Pareto tail beyond; the
    # smaller of that and the combination's own p (which a rank among the year's gross errors
    # cannot show). A year too small to calibrate keeps the combination's own p.
    table = (
        tail_p(
            table.with_columns((1.0 / pl.col("p_combined").clip(lower_bound=1e-300)).alias("_s")),
            "_s",
            ["year"],
            tail_share=st.tail_share,
            index_bounds=(COMBINED_INDEX_FLOOR, TAIL_INDEX_BOUNDS[1]),
            name="_calibrated",
        )
        .with_columns(
            pl.when(pl.len().over("year") >= MIN_CALIBRATION_SIZE)
            .then(pl.min_horizontal("_calibrated", "p_combined"))
            .otherwise("p_combined")
            .alias("p_combined")
        )
        .drop("_s", "_calibrated")
    )
    p = table["p_combined"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    q = (
        benjamini_hochberg(p)
        if _null_backed(p, st.null_check_tolerance)
        else np.full(p.size, np.nan)
    )
    return table.with_columns(
        pl.Series("q_value", q, dtype=pl.Float64).fill_nan(None),
        pl.Series("priority", priority_from_p(p), dtype=pl.Float64),
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
        ``priority`` (combination); ``benchmarks/detection.py`` prints them.

    Returns
    -------
    polars.DataFrame
        One row per return with an institution and year, in the order of ``returns``:
        ``institution_id``, ``year``, the combined p-value of each method that scored it
        (columns named as :data:`METHODS`; null where the method could not score the return
        or, for copies, siblings and slips, found nothing), ``methods`` (methods combined),
        ``p_combined`` (weighted Cauchy combination), ``q_value``
        (Benjamini-Hochberg over the year's returns, null unless the p-values pass the
        empirical-null check, ``null_check_tolerance``) and ``priority`` [0-1]
        (:func:`energy_audit.outliers.priority.priority_from_p`).
    """
    s = _settings(settings)
    times = {} if timings is None else timings
    r, _, units, _ = _analyse(returns, directory, history, s, times)
    clock = time.perf_counter()
    ranked = _priorities(r, units, s.statistical).drop("_row")
    times["priority"] = time.perf_counter() - clock
    return ranked


def check_statistical(
    returns: pl.DataFrame,
    *,
    directory: pl.DataFrame,
    history: pl.DataFrame | None = None,
    settings: VerifySettings | StatisticalSettings | None = None,
) -> pl.DataFrame:
    """Return the statistical findings of the returns (:func:`statistical_stage`'s findings).

    Parameters and errors as in :func:`statistical_stage`.
    """
    return statistical_stage(
        returns, directory=directory, history=history, settings=settings
    ).findings


@dataclass(frozen=True)
class StatisticalResult:
    """What :func:`statistical_stage` found.

    Attributes
    ----------
    findings : polars.DataFrame
        Statistical findings (data contract §5), highest priority first.
    scores : polars.DataFrame
        One row per return scored (:func:`score_returns`), with ``source_file`` and
        ``source_row``: the combined p-value of every return, listed or not, which the
        panel's queue combines with the rule findings (:mod:`energy_audit.verify.queue`).
    timings : dict of str to float
        Wall-clock time of each step [s]: ``preparation`` (indicators, year-over-year table),
        each method that ran (:data:`METHODS`), ``digits``, ``priority`` (combination) and
        ``findings`` (building the findings from the hits).
    """

    findings: pl.DataFrame
    scores: pl.DataFrame
    timings: dict[str, float] = field(default_factory=dict)


def _no_scores() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "institution_id": pl.String,
            "year": pl.Int64,
            "source_file": pl.String,
            "source_row": pl.Int64,
            "p_combined": pl.Float64,
            "priority": pl.Float64,
        }
    )


def statistical_stage(
    returns: pl.DataFrame,
    *,
    directory: pl.DataFrame,
    history: pl.DataFrame | None = None,
    settings: VerifySettings | StatisticalSettings | None = None,
) -> StatisticalResult:
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
    StatisticalResult
        ``findings`` (data contract §5) of :data:`STATISTICAL_RULES`, highest priority first:
        for each return whose combined p-value is at most ``report_p``, every piece of
        evidence with a p-value at most ``finding_p`` and always its strongest one; and
        every suggested correction whose own p-value is at most ``report_p``. Every finding
        of a return carries the return's priority (module docstring); and ``scores``, the
        per-return table of :func:`score_returns` with ``source_file`` and ``source_row``;
        ``timings``, the wall-clock seconds of each step.

    Raises
    ------
    UnusableInputError
        If ``returns`` or ``history`` lacks ``institution_id`` or ``year``, or ``directory``
        lacks ``institution_id``.
    """
    s = _settings(settings)
    if not s.statistical.enabled:
        return StatisticalResult(empty_findings(), _no_scores())
    st = s.statistical
    times: dict[str, float] = {}
    r, hits, units, weights = _analyse(returns, directory, history, s, times)
    clock = time.perf_counter()
    batches = _digits(r, st) if st.digits else empty_findings()
    times["digits"] = time.perf_counter() - clock
    clock = time.perf_counter()
    ranked = _priorities(r, units, st)
    times["priority"] = time.perf_counter() - clock
    clock = time.perf_counter()
    scores = pl.concat(
        [r.select("source_file", "source_row"), ranked.drop("_row")], how="horizontal"
    )
    if not hits:
        return StatisticalResult(batches, scores, times)
    # every rule's hits at once, with their return's priority, combined p, strongest
    # evidence, materiality and provenance gathered by ``_row`` (row i of ``r`` and
    # ``ranked`` is the return with ``_row`` i): no join
    per_row = r.select(
        *_KEY, "source_file", "source_row", pl.struct(*_KEY).is_duplicated().alias("_dup")
    ).with_columns(
        ranked["priority"],
        ranked["p_combined"].alias("return_p"),
        _strongest(units, r.height),
    )
    ids = {rule.rule_id: rule for rule in STATISTICAL_RULES}
    every = pl.concat(
        [hit.with_columns(pl.lit(rule.rule_id).alias("_rule")) for rule, hit in hits.items()],
        how="diagonal_relaxed",
    )
    # a suggested correction is shown wherever its own evidence is (p ≤ report_p): the panel
    # acts on it even when the rest of the return is unremarkable
    suggesting = pl.col("_rule").is_in(sorted(_SUGGESTING))
    every = every.with_columns(per_row.select("priority", "return_p")[every["_row"]].get_columns())
    every = every.filter(suggesting | (pl.col("return_p") <= st.report_p))
    every = every.with_columns(per_row["_best"].gather(every["_row"])).filter(
        (pl.col("p") <= st.finding_p) | (pl.col("p") <= pl.col("_best")) | suggesting
    )
    every = every.with_columns(
        *per_row.drop("priority", "return_p", "_best")[every["_row"]].get_columns(),
        _weight_of(every, weights).alias("materiality"),
    ).with_columns(
        pl.when(pl.col("_dup"))
        .then(pl.col("_row").cast(pl.String))
        .otherwise(pl.lit(""))
        .alias("key"),
    )
    parts = [
        findings_from_hits(ids[str(rule_id)], _with_evidence(hit.drop("_rule")))
        for (rule_id,), hit in every.partition_by("_rule", as_dict=True).items()
    ]
    findings = sort_findings(pl.concat([*parts, batches], how="vertical"))
    times["findings"] = time.perf_counter() - clock
    return StatisticalResult(findings, scores, times)


def _with_evidence(hit: pl.DataFrame) -> pl.DataFrame:
    """Gather a hit frame's evidence columns into the ``evidence`` struct of the contract."""
    fields = [f for f in EVIDENCE_DTYPE.to_schema() if f in hit.columns]  # type: ignore[attr-defined]
    return hit.with_columns(pl.struct(fields).alias("evidence"))


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
        ``energy_per_m2_kgce`` …, and ``m2_per_occupant``) and the directory's ``sector``,
        ``subsector``, ``admin_level``, ``district_code``, ``heat_billing`` and ``parent_id``:
        every ``field`` a statistical finding names, with the peer-group columns
        (:func:`energy_audit.panel.evidence.plot_finding`).
    """
    s = _settings(settings)
    frames = [returns] if history is None else [history, returns]
    rows = pl.concat(
        [_canonical(f, "returns" if f is returns else "history") for f in frames],
        how="vertical",
    )
    return _with_directory(_with_indicators(rows, s), directory)


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
