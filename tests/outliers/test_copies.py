"""Tests of energy_audit.outliers.copies: copies, identical siblings, round numbers."""

from __future__ import annotations

import functools

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from energy_audit.errors import SettingsError, UnusableInputError
from energy_audit.factors import ITEM_COLUMNS
from energy_audit.outliers.copies import (
    copied_figures,
    identical_within_groups,
    round_numbers,
)
from energy_audit.outliers.yoy import earlier_returns
from energy_audit.synthetic import make_directory, make_returns

QUANTITIES = [*ITEM_COLUMNS.values(), "water_m3"]
TWO = ["electricity_kwh", "water_m3"]


def frame_of(rows: list[tuple], columns: tuple[str, ...] = ("electricity_kwh", "water_m3")):
    names = ["institution_id", "year", *columns]
    return pl.DataFrame(
        [dict(zip(names, r, strict=True)) for r in rows],
        schema={
            "institution_id": pl.String,
            "year": pl.Int64,
            **dict.fromkeys(columns, pl.Float64),
        },
    )


def row_of(out: pl.DataFrame, institution: str, year: int) -> dict:
    return out.filter((pl.col("institution_id") == institution) & (pl.col("year") == year)).row(
        0, named=True
    )


# --------------------------------------------------------------------------------------------
# Copied from last year


def test_copied_return_is_flagged_and_one_changed_digit_is_not() -> None:
    frame = frame_of(
        [
            ("A", 2022, 512_345.0, 6_021.0),
            ("A", 2023, 512_345.0, 6_021.0),  # copied
            ("B", 2022, 80_123.0, 1_500.0),
            ("B", 2023, 80_123.0, 1_501.0),  # one digit changed
            ("C", 2023, 70_000.0, 900.0),  # no previous return
        ]
    )
    out = copied_figures(frame, TWO)
    assert row_of(out, "A", 2023)["is_copied_from_last_year"] is True
    assert row_of(out, "A", 2023)["copied_from_year"] == 2022
    assert row_of(out, "B", 2023)["is_copied_from_last_year"] is False
    assert row_of(out, "B", 2023)["copied_from_year"] is None
    assert row_of(out, "C", 2023)["is_copied_from_last_year"] is False
    assert out["is_copied_from_last_year"].null_count() == 0
    assert out.columns == [*frame.columns, "is_copied_from_last_year", "copied_from_year"]


def test_copies_need_min_nonzero_quantities_and_nulls_match_nulls() -> None:
    frame = frame_of(
        [
            ("Z", 2022, 0.0, 0.0),
            ("Z", 2023, 0.0, 0.0),  # nothing reported: no copy
            ("O", 2022, 5_123.0, 0.0),
            ("O", 2023, 5_123.0, 0.0),  # a single non-zero item
            ("N", 2022, 5_123.0, None),
            ("N", 2023, 5_123.0, None),
        ],
        ("electricity_kwh", "water_m3"),
    ).with_columns(gas=pl.Series([7.0, 7.0, 1.0, 1.0, 3.0, 3.0]))
    out = copied_figures(frame, [*TWO, "gas"])
    assert row_of(out, "Z", 2023)["is_copied_from_last_year"] is False
    assert row_of(out, "O", 2023)["is_copied_from_last_year"] is True  # two non-zero: 5,123; 1
    assert row_of(out, "N", 2023)["is_copied_from_last_year"] is True  # null = null
    strict = copied_figures(frame, [*TWO, "gas"], min_nonzero=3)
    assert not strict["is_copied_from_last_year"].any()
    with pytest.raises(SettingsError, match="min_nonzero"):
        copied_figures(frame, TWO, min_nonzero=3)


def test_copies_compare_with_the_history() -> None:
    current = frame_of([("A", 2023, 512_345.0, 6_021.0)])
    history = frame_of([("A", 2021, 1.0, 1.0), ("A", 2022, 512_345.0, 6_021.0)])
    out = copied_figures(current, TWO, history=history)
    assert out["is_copied_from_last_year"].to_list() == [True]
    assert out["copied_from_year"].to_list() == [2022]


# --------------------------------------------------------------------------------------------
# Identical siblings


def siblings_frame() -> pl.DataFrame:
    return frame_of(
        [
            ("A", 2023, 81_234.0, 2_345.0),
            ("B", 2023, 81_234.0, 2_345.0),  # = A, same parent
            ("C", 2023, 95_871.0, 2_345.0),  # one figure differs
            ("D", 2023, 81_234.0, 2_345.0),  # = A, other parent
            ("E", 2023, 81_234.0, 2_345.0),  # = A, no parent
            ("B", 2023, 81_234.0, 2_345.0),  # B's duplicate return
            ("A", 2022, 60_000.0, 1_000.0),  # A's last year = F's this year: another year
            ("F", 2023, 60_000.0, 1_000.0),
            ("G", 2023, 0.0, 0.0),
            ("H", 2023, 0.0, 0.0),  # both report nothing
        ]
    ).with_columns(parent_id=pl.Series(["P", "P", "P", "Q", None, "P", "P", "P", "P", "P"]))


def test_identical_siblings_are_flagged_with_their_ids() -> None:
    out = identical_within_groups(siblings_frame(), TWO, "parent_id")
    assert out["is_identical_to_sibling"].to_list() == [
        True,
        True,
        False,
        False,
        False,
        True,
        False,
        False,
        False,
        False,
    ]
    assert out["identical_sibling_ids"].to_list() == [
        ["B"],
        ["A"],
        None,
        None,
        None,
        ["A"],
        None,
        None,
        None,
        None,
    ]
    # three identical siblings name each other
    three = siblings_frame().with_columns(
        pl.when(pl.col("institution_id") == "D")
        .then(pl.lit("P"))
        .otherwise("parent_id")
        .alias("parent_id")
    )
    out = identical_within_groups(three, TWO, "parent_id")
    assert row_of(out, "D", 2023)["identical_sibling_ids"] == ["A", "B"]
    assert out.filter(pl.col("institution_id") == "A")["identical_sibling_ids"].to_list() == [
        ["B", "D"],
        None,
    ]


def test_identical_siblings_need_the_group_column() -> None:
    with pytest.raises(UnusableInputError, match="输入数据缺少分组列 parent_id") as info:
        identical_within_groups(frame_of([("A", 2023, 1.0, 1.0)]), TWO, "parent_id")
    assert "group column parent_id" in info.value.message_en


# --------------------------------------------------------------------------------------------
# Round numbers


def test_exactly_100000_is_flagged_and_123457_is_not() -> None:
    frame = frame_of([("A", 2023, 100_000.0, 6_021.0), ("B", 2023, 123_457.0, 5_987.0)])
    out = round_numbers(frame, TWO)
    a, b = row_of(out, "A", 2023), row_of(out, "B", 2023)
    assert a["round_electricity_kwh_roundness"] == 5
    assert a["round_electricity_kwh_expected"] == pytest.approx(1e-5)
    # no history: (0 + κ·1e-5) / (0 + κ)
    assert a["round_electricity_kwh_history_rate"] == pytest.approx(1e-5)
    # peers: B (123,457, six digits, no zero) measures the units 10⁰…10³, none of them a
    # habit: r₀ = (1 + 1) / (1 + 1) = 1 → 1e-5; rⱼ = (0 + 10⁻ʲ) / (1 + 1) → 10⁻ʲ/2 · 10ʲ⁻⁵
    # = 0.5e-5 for j = 1…3; no figure of 7 digits or more measures 10⁴, 10⁵: rⱼ = 10⁻ʲ →
    # 1e-5. The largest is the chance 1e-5.
    assert a["round_electricity_kwh_peer_rate"] == pytest.approx(1e-5)
    assert a["round_electricity_kwh_p"] == pytest.approx(1e-5)
    # twice the smaller of Bonferroni over the return's two figures (2e-5) and Fisher's
    # x (1 − ln x) with x = 1e-5 · 1 (1.25e-4)
    assert a["round_p"] == pytest.approx(4e-5)
    assert a["round_column"] == "electricity_kwh"
    assert b["round_electricity_kwh_roundness"] == 0
    assert b["round_electricity_kwh_p"] == 1.0
    assert b["round_p"] == 1.0


@pytest.mark.parametrize(
    ("value", "roundness"),
    [
        (100_000.0, 5),
        (123_400.0, 2),
        (123_457.0, 0),
        (1_000.5, 0),  # a fractional part: read from a meter
        (-5_000.0, 3),
        (1.1 * 1e5, 4),  # = 110,000.00000000001, a float artefact of a unit conversion
        (7.0, 0),
        (0.0, None),
        (None, None),
    ],
)
def test_roundness_is_the_trailing_zeros_of_a_whole_figure(
    value: float | None, roundness: int | None
) -> None:
    out = round_numbers(frame_of([("A", 2023, value, 1.0)]), TWO)
    assert out["round_electricity_kwh_roundness"].to_list() == [roundness]
    if roundness is None:
        assert out["round_electricity_kwh_p"].to_list() == [None]


def test_history_and_peers_raise_the_expected_rate() -> None:
    # A: 100,000 in 2020, meter readings in 2021-2022, 200,000 in 2023 (t = 5)
    # peers in 2023: B not round, C 300,000 (t = 5)
    frame = frame_of(
        [
            ("A", 2020, 100_000.0, 1.0),
            ("A", 2021, 123_457.0, 1.0),
            ("A", 2022, 234_567.0, 1.0),
            ("A", 2023, 200_000.0, 1.0),
            ("B", 2023, 123_457.0, 1.0),
            ("C", 2023, 300_000.0, 1.0),
        ]
    )
    a = row_of(round_numbers(frame, TWO), "A", 2023)
    # history: m = 1 of n = 3 earlier figures with t ≥ 5 → (1 + 1e-5) / (3 + 1)
    assert a["round_electricity_kwh_history_rate"] == pytest.approx((1 + 1e-5) / 4)
    # peers: C (300,000: one significant digit) is an estimate and raises no habit rate; B
    # (123,457) shows no habit: every term is at most the chance 1e-5 (as in the test above)
    assert a["round_electricity_kwh_peer_rate"] == pytest.approx(1e-5)
    assert a["round_electricity_kwh_p"] == pytest.approx((1 + 1e-5) / 4)
    # a heavier prior pulls both towards chance
    heavy = row_of(round_numbers(frame, TWO, prior_weight=10.0), "A", 2023)
    assert heavy["round_electricity_kwh_history_rate"] == pytest.approx((1 + 10e-5) / 13)


def test_an_institution_that_always_rounds_is_less_suspicious_than_a_sudden_round_figure() -> None:
    rows = []
    for year in range(2019, 2024):
        rows.append(("ALWAYS", year, 50_000.0 + 10_000 * (year - 2019), 1.0))  # 50,000 … 90,000
        rows.append(("SUDDEN", year, 123_457.0 + year if year < 2023 else 100_000.0, 1.0))
        rows += [(f"P{i}", year, 98_765.0 + 17 * i + year, 1.0) for i in range(20)]
    out = round_numbers(frame_of(rows), TWO).filter(pl.col("year") == 2023)
    always, sudden = row_of(out, "ALWAYS", 2023), row_of(out, "SUDDEN", 2023)
    assert always["round_electricity_kwh_roundness"] == 4
    assert sudden["round_electricity_kwh_roundness"] == 5
    assert always["round_electricity_kwh_p"] > 0.5
    assert sudden["round_electricity_kwh_p"] < 1e-3


def test_a_peer_groups_habit_of_a_unit_makes_that_unit_ordinary() -> None:
    # "rounding": 1,010,000, 1,070,000, … (to 10⁴, three significant digits: a habit);
    # "metered": 1,234,567 + i
    rows, sector = [], []
    for i in range(10):
        rows.append((f"R{i}", 2023, (101 + 6 * i) * 10_000.0, 1.0))
        sector.append("rounding")
        rows.append((f"M{i}", 2023, 1_234_567.0 + i, 1.0))
        sector.append("metered")
    rows.append(("E", 2023, 2_000_000.0, 1.0))  # an estimate among the rounders
    sector.append("rounding")
    frame = frame_of(rows).with_columns(sector=pl.Series(sector))
    grouped = round_numbers(frame, TWO, groups="sector")
    # 9 of the 9 other rounders show the habit 10⁴: r₄ = (9 + 1e-4) / (9 + 1)
    assert row_of(grouped, "R0", 2023)["round_electricity_kwh_p"] == pytest.approx((9 + 1e-4) / 10)
    # the estimate needs two more zeros than the habit: r₄ · 10⁻² (10 rounders measure r₄)
    assert row_of(grouped, "E", 2023)["round_electricity_kwh_p"] == pytest.approx(
        (10 + 1e-4) / 11 / 100
    )
    city_wide = round_numbers(frame, TWO)
    # 9 of the 19 others of seven digits show it: (9 + 1e-4) / 20
    assert row_of(city_wide, "R0", 2023)["round_electricity_kwh_p"] == pytest.approx(
        (9 + 1e-4) / 20
    )


def test_a_batch_of_estimates_does_not_make_itself_ordinary() -> None:
    # 1,000 metered figures, 20 of them in hundreds (a habit), 30 estimates of 4-5 zeros
    rng = np.random.default_rng(5)
    metered = [float(v) for v in rng.integers(100_001, 999_999, 950)]
    metered = [v if v % 100 else v + 1 for v in metered]
    hundreds = [float(v) * 100 for v in rng.integers(1_001, 9_999, 20)]
    estimates = [float(v) * 10_000 for v in rng.integers(11, 99, 30)]
    values = metered + hundreds + estimates
    rows = [(f"I{i}", 2023, v, 1.0) for i, v in enumerate(values)]
    out = round_numbers(frame_of(rows), TWO)
    estimate = row_of(out, "I990", 2023)  # 30 estimates: 3 % of the figures have t ≥ 4
    t = estimate["round_electricity_kwh_roundness"]
    assert t >= 4
    # the estimates raise no habit rate: the largest term is the hundreds' habit (20 of 970
    # figures of five digits or more) times two more zeros by chance, about 2e-4
    assert estimate["round_electricity_kwh_peer_rate"] < 1e-3


@settings(max_examples=50, deadline=None)
@given(value=st.integers(1, 10**12))
def test_roundness_counts_trailing_zeros(value: int) -> None:
    out = round_numbers(frame_of([("A", 2023, float(value), 1.0)]), TWO)
    text = str(value)
    assert out["round_electricity_kwh_roundness"].to_list() == [len(text) - len(text.rstrip("0"))]


def test_round_numbers_errors() -> None:
    frame = frame_of([("A", 2023, 1.0, 1.0)])
    with pytest.raises(SettingsError, match="prior_weight"):
        round_numbers(frame, TWO, prior_weight=0)
    with pytest.raises(UnusableInputError, match="sector"):
        round_numbers(frame, TWO, groups="sector")
    with pytest.raises(UnusableInputError, match="gas"):
        round_numbers(frame, ["gas"])


# --------------------------------------------------------------------------------------------
# Frames


@pytest.mark.parametrize(
    "method",
    [
        functools.partial(copied_figures, columns=TWO),
        functools.partial(identical_within_groups, columns=TWO, group="parent_id"),
        functools.partial(round_numbers, columns=TWO),
        functools.partial(round_numbers, columns=TWO, groups="parent_id"),
    ],
)
def test_dataframe_and_lazyframe_give_the_same_result_and_input_is_unchanged(method) -> None:
    frame = siblings_frame()
    before = frame.clone()
    eager = method(frame)
    lazy = method(frame.lazy())
    assert isinstance(lazy, pl.LazyFrame)
    assert_frame_equal(eager, lazy.collect())
    assert_frame_equal(frame, before)
    assert eager.height == frame.height
    assert eager.columns[: frame.width] == frame.columns
    assert_frame_equal(method(eager), eager)  # added columns are replaced on a second run


# --------------------------------------------------------------------------------------------
# The synthetic city


@functools.cache
def city(seed: int, defects: bool = True) -> tuple[pl.DataFrame, pl.DataFrame]:
    directory = make_directory(3000, seed=seed)
    returns, truth = make_returns(directory, range(2020, 2025), seed=seed, defects=defects)
    parents = directory.select("institution_id", "parent_id")
    return returns.join(parents, on="institution_id", how="left", maintain_order="left"), truth


def recall(truth: pl.DataFrame, kind: str, flagged: pl.DataFrame) -> tuple[int, int]:
    injected = truth.filter(pl.col("defect") == kind).select("institution_id", "year").unique()
    found = injected.join(flagged.select("institution_id", "year"), on=["institution_id", "year"])
    return found.unique().height, injected.height


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_synthetic_copies_and_identical_siblings_are_all_found(seed: int) -> None:
    frame, truth = city(seed)
    copies = copied_figures(frame, QUANTITIES).filter("is_copied_from_last_year")
    found, injected = recall(truth, "copied_figures", copies)
    assert injected > 0
    assert found == injected  # the bar: 100 % of copied figures
    # every flagged copy is an injected one (no other return repeats last year exactly)
    assert copies.height == injected
    siblings = identical_within_groups(frame, QUANTITIES, "parent_id").filter(
        "is_identical_to_sibling"
    )
    found, injected = recall(truth, "identical_siblings", siblings)
    assert injected > 0
    assert found == injected


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_synthetic_round_numbers_have_small_p(seed: int) -> None:
    frame, truth = city(seed)
    scored = round_numbers(frame, QUANTITIES)
    cells = (
        truth.filter(  # the estimated figure (its bill, estimated with it, is no figure of a meter)
            (pl.col("defect") == "round_number")
            & pl.col("field").is_in(["electricity_kwh", "water_m3"])
        )
        .join(scored, on=["institution_id", "year"], how="inner")
        .with_columns(
            p=pl.when(pl.col("field") == "electricity_kwh")
            .then(pl.col("round_electricity_kwh_p"))
            .otherwise(pl.col("round_water_m3_p"))
        )
        .group_by("institution_id", "year", "field")
        .agg(pl.col("p").min())
    )
    assert cells.height > 0
    assert (cells["p"] <= 0.01).mean() >= 0.95


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_clean_city_has_no_copies_nor_round_figures(seed: int) -> None:
    frame, _ = city(seed, defects=False)
    assert not copied_figures(frame, QUANTITIES)["is_copied_from_last_year"].any()
    assert not identical_within_groups(frame, QUANTITIES, "parent_id")[
        "is_identical_to_sibling"
    ].any()
    # about 1 % of clean metered figures are naturally round (estimated bills, quotas): few
    # of them are rounder than the institution's history and peers make likely
    assert (round_numbers(frame, QUANTITIES)["round_p"] <= 0.01).mean() <= 0.01


# --------------------------------------------------------------------------------------------
# The shortcuts keep the definitions: earlier returns by one sort, sets by a first hash pass


def test_history_rate_counts_earlier_non_zero_figures_and_history_wins() -> None:
    history = frame_of(
        [("A", 2020, 100_000.0, 1.0), ("A", 2021, 0.0, 1.0), ("A", 2022, 250_000.0, 1.0)]
    )
    frame = frame_of(
        [
            ("A", 2022, 123_457.0, 1.0),  # the history's 250,000 is A's 2022 figure
            ("A", 2023, 300_000.0, 1.0),
            ("A", 2023, 300_000.0, 1.0),  # a duplicated return: the same earlier figures
        ]
    )
    out = round_numbers(frame, TWO, history=history)
    # t = 5: of the earlier non-zero figures 100,000 (t = 5) and 250,000 (t = 4), one as round
    assert out["round_electricity_kwh_history_rate"].to_list() == pytest.approx(
        [1.0, (1 + 1e-5) / 3, (1 + 1e-5) / 3]
    )


def test_siblings_match_as_a_group_by_compares_signed_zeros_and_nan() -> None:
    frame = pl.DataFrame(
        {
            "institution_id": ["A", "B", "C", "D", "E"],
            "year": [2023] * 5,
            "parent_id": ["P"] * 5,
            "electricity_kwh": [81_234.0, 81_234.0, 5_000.0, 5_000.0, 5_000.0],
            "water_m3": [0.0, -0.0, float("nan"), float("nan"), 1.0],
            "gas": [2_345.0, 2_345.0, 7.0, 7.0, 7.0],
        }
    )
    out = identical_within_groups(frame, ["electricity_kwh", "water_m3", "gas"], "parent_id")
    # 0.0 and −0.0 are one value, and so are two NaN, as a group_by takes them
    assert out["identical_sibling_ids"].to_list() == [["B"], ["A"], ["D"], ["C"], None]


def test_earlier_returns_given_once_give_the_same_scores() -> None:
    history = frame_of(
        [("A", 2020, 100_000.0, 1.0), ("A", 2021, 0.0, 1.0), ("A", 2022, 250_000.0, 6_021.0)]
    )
    frame = frame_of([("A", 2022, 123_457.0, 1.0), ("A", 2023, 250_000.0, 6_021.0)])
    earlier = earlier_returns(frame, history, TWO, "institution_id", "year")
    assert_frame_equal(
        copied_figures(frame, TWO, earlier=earlier), copied_figures(frame, TWO, history=history)
    )
    assert_frame_equal(
        round_numbers(frame, TWO, earlier=earlier), round_numbers(frame, TWO, history=history)
    )
    with pytest.raises(SettingsError, match="只能给出其一"):
        round_numbers(frame, TWO, history=history, earlier=earlier)
