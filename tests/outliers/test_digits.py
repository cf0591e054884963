import doctest
import math
import re

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from energy_audit.errors import SettingsError, UnusableInputError
from energy_audit.outliers import digits
from energy_audit.outliers.digits import (
    BENFORD_COLUMNS,
    BENFORD_FIRST_TWO_P,
    INSUFFICIENT_DATA,
    LAST_DIGIT_COLUMNS,
    NIGRINI_FIRST_TWO_MAD,
    MadRange,
    benford_by_group,
    benford_first_two,
    first_two_digits,
    last_digit,
    last_digit_by_group,
    last_digit_uniformity,
)

CONFORMING = {"close conformity", "acceptable conformity"}


def benford_sample(n: int, seed: int) -> np.ndarray:
    """10^U with U uniform over six whole decades: first digits follow Benford exactly."""
    return 10.0 ** np.random.default_rng(seed).uniform(1.0, 7.0, n)


# --- Benford's law and Nigrini's table -------------------------------------------------------


def test_benford_probabilities():
    assert BENFORD_FIRST_TWO_P.shape == (90,)
    assert BENFORD_FIRST_TWO_P.sum() == pytest.approx(1.0, abs=1e-12)  # log10(100/10)
    assert BENFORD_FIRST_TWO_P[0] == pytest.approx(0.0413926852, abs=1e-10)  # log10(11/10)
    assert BENFORD_FIRST_TWO_P[-1] == pytest.approx(0.0043648054, abs=1e-10)  # log10(100/99)


def test_nigrini_first_two_digits_ranges():
    # Nigrini (2012), Table 7.1, first-two digits: 0.0000-0.0012 close, 0.0012-0.0018
    # acceptable, 0.0018-0.0022 marginally acceptable, above 0.0022 nonconformity.
    assert [tuple(r) for r in NIGRINI_FIRST_TWO_MAD] == [
        ("close conformity", 0.0, 0.0012),
        ("acceptable conformity", 0.0012, 0.0018),
        ("marginally acceptable conformity", 0.0018, 0.0022),
        ("nonconformity", 0.0022, math.inf),
    ]


@pytest.mark.parametrize(
    ("mad", "conformity"),
    [
        (0.0, "close conformity"),
        (0.0012, "close conformity"),
        (0.00121, "acceptable conformity"),
        (0.0018, "acceptable conformity"),
        (0.0022, "marginally acceptable conformity"),
        (0.00221, "nonconformity"),
    ],
)
def test_conformity_bounds_belong_to_the_lower_class(mad, conformity):
    assert digits._conformity(np.array([mad]), NIGRINI_FIRST_TWO_MAD).to_list() == [conformity]


# --- first two digits -------------------------------------------------------------------------


def _first_two(values):
    return pl.select(first_two_digits(pl.Series(values, dtype=pl.Float64))).to_series().to_list()


@given(st.integers(min_value=10, max_value=10**15))
def test_first_two_digits_of_integers(n):
    assert _first_two([float(n)]) == [int(str(n)[:2])]


def test_first_two_digits_near_powers_of_ten():
    powers = [10.0**k for k in range(1, 16)]
    below = [np.nextafter(p, 0.0) for p in powers[1:]]
    assert _first_two(powers) == [10] * 15
    assert _first_two(below) == [99] * 14
    assert _first_two([12.999, 1.5e20]) == [12, 15]


def test_hand_computed_mad_of_a_tiny_batch():
    # Every first-two digit pair is 10: AP(10) = 1, AP(d) = 0 otherwise, so
    # sum |AP - EP| = (1 - EP(10)) + (1 - EP(10)) and MAD = 2 (1 - log10(1.1)) / 90.
    result = benford_first_two([10, 105, 1099.5], min_count=1)
    assert result.n == 3
    assert result.mean_abs_deviation == pytest.approx(2 * (1 - math.log10(1.1)) / 90, rel=1e-12)
    assert result.mean_abs_deviation == pytest.approx(0.0213023848, abs=1e-10)
    assert result.counts[0] == 3
    assert result.counts.sum() == 3
    assert result.conformity == "nonconformity"
    # Nigrini's Z with the continuity correction: (|1 - p| - 1/6) / sqrt(p (1 - p) / 3).
    p = math.log10(1.1)
    assert result.top_digit_pairs == (10,)
    assert result.top_digit_pairs_z[0] == pytest.approx(
        ((1 - p) - 1 / 6) / math.sqrt(p * (1 - p) / 3)
    )
    # Pearson: (3 - 3p)^2 / (3p) + sum over the other cells of their expected counts 3 P(d).
    assert result.chi2 == pytest.approx((3 - 3 * p) ** 2 / (3 * p) + 3 * (1 - p))


def test_values_below_ten_and_non_finite_are_excluded_and_nulls_ignored():
    result = benford_first_two([9.99, -50.0, 0.0, float("nan"), float("inf"), None, 10.0, 99.5])
    assert (result.n, result.n_excluded) == (2, 5)
    assert result.counts[0] == 1 and result.counts[-1] == 1


def test_benford_sample_conforms():
    result = benford_first_two(benford_sample(10_000, seed=2012))
    assert result.n == 10_000
    assert result.conformity in CONFORMING
    # Its MAD is what chance alone gives a Benford sample of this size.
    assert result.mean_abs_deviation == pytest.approx(result.expected_mean_abs_deviation, rel=0.2)
    assert result.p_value > 0.01


def test_uniform_first_two_digits_do_not_conform():
    result = benford_first_two(np.repeat(np.arange(10, 100), 20) * 1.0)  # n = 1,800
    assert result.conformity == "nonconformity"
    assert result.mean_abs_deviation > 0.0022
    assert result.p_value < 1e-12


def test_made_up_round_figures_do_not_conform():
    rng = np.random.default_rng(5)
    starts = np.array([10, 12, 15, 20, 25, 30, 40, 50, 60, 80])
    values = rng.choice(starts, 2000) * 10.0 ** rng.integers(1, 5, 2000)  # 1,200 kWh, 50,000 …
    result = benford_first_two(values)
    assert result.conformity == "nonconformity"
    assert set(result.top_digit_pairs) <= set(starts.tolist())
    assert len(result.top_digit_pairs) == 3


def test_small_batch_gets_no_verdict():
    result = benford_first_two(benford_sample(999, seed=1))
    assert result.conformity == INSUFFICIENT_DATA
    assert result.chi2 is None and result.p_value is None
    assert result.mean_abs_deviation > 0  # descriptive figures are still given
    empty = benford_first_two([])
    assert (empty.n, empty.conformity) == (0, INSUFFICIENT_DATA)
    assert math.isnan(empty.mean_abs_deviation)
    assert empty.top_digit_pairs == ()


def test_expected_mad_of_benford_samples_shrinks_with_n():
    # At n = 1,000 an exactly Benford sample is expected to be "nonconformity" by MAD alone.
    small = benford_first_two(benford_sample(1000, seed=3))
    large = benford_first_two(benford_sample(40_000, seed=3))
    assert small.expected_mean_abs_deviation == pytest.approx(0.00251, abs=1e-5)
    assert large.expected_mean_abs_deviation == pytest.approx(0.00251 / math.sqrt(40), rel=1e-3)


def test_custom_mad_ranges():
    ranges = (MadRange("fine", 0.0, 0.05), MadRange("bad", 0.05, math.inf))
    assert benford_first_two([10, 105], min_count=1, mad_ranges=ranges).conformity == "fine"
    with pytest.raises(SettingsError, match="最后一个为无穷大") as info:
        benford_first_two([10], min_count=1, mad_ranges=(MadRange("x", 0.0, 1.0),))
    assert "ending with infinity" in info.value.message_en


# --- Benford by group -------------------------------------------------------------------------


def _districts() -> pl.DataFrame:
    rng = np.random.default_rng(9)
    honest = benford_sample(6000, seed=4)
    invented = rng.choice([10, 12, 15, 20, 50], 6000) * 10.0 ** rng.integers(2, 5, 6000)
    few = benford_sample(10, seed=5)
    return pl.DataFrame(
        {
            "district": ["honest"] * 3000 + ["invented"] * 3000 + ["few"] * 5 + [None] * 5,
            "electricity_kwh": [*honest[:3000], *invented[:3000], *few[:5], *few[5:]],
            "water_m3": [*honest[3000:], *invented[3000:], None, 3.0, 4.0, 5.0, 6.0, *[None] * 5],
        }
    )


def test_benford_by_group_verdicts():
    out = benford_by_group(_districts(), ["electricity_kwh", "water_m3"], "district")
    assert out.columns == ["district", *BENFORD_COLUMNS]
    assert out["district"].to_list() == ["few", "honest", "invented", None]
    rows = {r["district"]: r for r in out.iter_rows(named=True)}
    assert rows["honest"]["n_values"] == 6000
    assert rows["honest"]["conformity"] in CONFORMING
    assert rows["invented"]["conformity"] == "nonconformity"
    assert set(rows["invented"]["top_digit_pairs"]) <= {10, 12, 15, 20, 50}
    assert (rows["few"]["n_values"], rows["few"]["n_excluded"]) == (5, 4)
    assert rows["few"]["conformity"] == INSUFFICIENT_DATA
    assert rows["few"]["p_value"] is None
    assert rows[None]["n_values"] == 5


def test_benford_by_group_matches_single_batch():
    frame = _districts()
    out = benford_by_group(frame, ["electricity_kwh", "water_m3"], "district")
    honest = frame.filter(pl.col("district") == "honest")
    single = benford_first_two([*honest["electricity_kwh"], *honest["water_m3"]])
    row = out.filter(pl.col("district") == "honest").row(0, named=True)
    assert row["mean_abs_deviation"] == pytest.approx(single.mean_abs_deviation, rel=1e-12)
    assert row["p_value"] == pytest.approx(single.p_value, rel=1e-12)
    assert tuple(row["top_digit_pairs"]) == single.top_digit_pairs


def test_benford_by_group_dataframe_and_lazyframe_agree_and_input_unchanged():
    frame = _districts()
    before = frame.clone()
    eager = benford_by_group(frame, ["electricity_kwh", "water_m3"], ["district"])
    lazy = benford_by_group(frame.lazy(), ["electricity_kwh", "water_m3"], ["district"])
    assert isinstance(lazy, pl.DataFrame)
    assert_frame_equal(eager, lazy)
    assert_frame_equal(frame, before)


def test_benford_by_group_keeps_groups_without_values():
    frame = pl.DataFrame({"parent": ["p1", "p2"], "kwh": [1234.0, None]})
    out = benford_by_group(frame, "kwh", "parent", min_count=1)
    assert out.select("parent", "n_values", "mean_abs_deviation", "conformity").rows() == [
        ("p1", 1, pytest.approx(2 * (1 - math.log10(13 / 12)) / 90), "nonconformity"),
        ("p2", 0, None, INSUFFICIENT_DATA),
    ]


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match_zh", "match_en"),
    [
        (("gas", "district"), {}, UnusableInputError, "缺少列.*gas", "lacks column.*gas"),
        (("district", None), {}, UnusableInputError, "应为数值类型", "must be numeric"),
        (([], None), {}, UnusableInputError, "至少需要一个数值列", "at least one value column"),
        (
            ("electricity_kwh", "district"),
            {"min_count": 0},
            SettingsError,
            "min_count 应为 ≥ 1 的整数",
            "min_count",
        ),
        (("electricity_kwh", "district"), {"top": -1}, SettingsError, "top 应为 ≥ 0", "top"),
    ],
)
def test_benford_by_group_errors(args, kwargs, error, match_zh, match_en):
    with pytest.raises(error, match=match_zh) as info:
        benford_by_group(_districts(), *args, **kwargs)
    assert re.search(match_en, info.value.message_en)


def test_group_named_like_an_output_is_refused():
    frame = pl.DataFrame({"chi2": ["a"], "kwh": [100.0]})
    with pytest.raises(UnusableInputError, match="分组列名 chi2 与输出列重名") as info:
        benford_by_group(frame, "kwh", "chi2")
    assert "chi2 clash" in info.value.message_en


def test_non_numeric_values_are_refused():
    with pytest.raises(UnusableInputError, match="数字分布检验的值应为数字") as info:
        benford_first_two(["a", "b"])
    assert "must be numbers" in info.value.message_en


def test_errors_name_the_missing_column_in_both_languages():
    with pytest.raises(UnusableInputError) as info:
        benford_by_group(_districts(), "gas", "district")
    assert str(info.value) == info.value.message_zh
    for message in (info.value.message_zh, info.value.message_en):
        assert "gas" in message


# --- last digit -------------------------------------------------------------------------------


def test_last_digit_expression():
    values = pl.Series([100.0, 109.99, 1234.5, 1e12 + 7])
    assert pl.select(last_digit(values)).to_series().to_list() == [0, 9, 4, 7]


def test_uniform_last_digits_have_large_p_value():
    result = last_digit_uniformity(np.arange(100, 1100) + 0.25)
    assert result.counts.tolist() == [100] * 10
    assert result.chi2 == 0.0
    assert result.p_value == 1.0
    assert result.share_0_or_5 == pytest.approx(0.2)


def test_metered_looking_values_pass():
    values = np.exp(np.random.default_rng(8).normal(10.0, 1.0, 5000))
    assert last_digit_uniformity(values).p_value > 0.01


def test_zeros_and_fives_have_tiny_p_value():
    result = last_digit_uniformity(np.arange(100, 1100, 5))  # 200 values ending in 0 or 5
    assert result.counts.tolist() == [100, 0, 0, 0, 0, 100, 0, 0, 0, 0]
    assert result.share_0_or_5 == 1.0
    # Pearson: 2 cells (100 - 20)^2 / 20 + 8 cells 20 = 640 + 160 = 800.
    assert result.chi2 == pytest.approx(800.0)
    assert result.p_value < 1e-100


def test_last_digit_exclusions_and_small_batches():
    result = last_digit_uniformity([5.0, 99.99, -120.0, float("nan"), None, 100.0, 123.9])
    assert (result.n, result.n_excluded) == (2, 4)
    assert result.counts.tolist() == [1, 0, 0, 1, 0, 0, 0, 0, 0, 0]
    assert result.chi2 is None and result.p_value is None
    assert last_digit_uniformity([5.0, 15.0], min_value=0, min_count=1).n == 2
    with pytest.raises(SettingsError, match="min_value"):
        last_digit_uniformity([5.0], min_value=-1)


def test_last_digit_by_group():
    frame = pl.DataFrame(
        {
            "parent": ["a"] * 100 + ["b"] * 100,
            "kwh": [*range(1000, 1100), *range(2000, 3000, 10)],
            "m3": [*range(500, 600), *[None] * 100],
        },
        schema={"parent": pl.String, "kwh": pl.Float64, "m3": pl.Int64},
    )
    before = frame.clone()
    eager = last_digit_by_group(frame, ["kwh", "m3"], "parent")
    lazy = last_digit_by_group(frame.lazy(), ["kwh", "m3"], "parent")
    assert_frame_equal(eager, lazy)
    assert_frame_equal(frame, before)
    assert eager.columns == ["parent", *LAST_DIGIT_COLUMNS]
    a, b = eager.iter_rows(named=True)
    assert (a["n_values"], a["digit_counts"], a["p_value"]) == (200, [20] * 10, 1.0)
    assert (b["n_values"], b["digit_counts"][0], b["share_0_or_5"]) == (100, 100, 1.0)
    assert b["p_value"] < 1e-50


def test_docstring_examples_run():
    result = doctest.testmod(digits, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    assert result.attempted > 0


def test_top_digit_pairs_largest_z_first_only_over_represented():
    # 20 and 30 twice each (AP = 1/2): EP(30) < EP(20), so 30 has the larger Z; the other 88
    # pairs are under-represented and never listed, however large ``top``
    values = [20.0, 20.5, 30.0, 30.5]
    every = benford_first_two(values, min_count=1, top=200)
    assert every.top_digit_pairs == (30, 20)
    assert every.top_digit_pairs_z[0] > every.top_digit_pairs_z[1] > 0
    assert benford_first_two(values, min_count=1, top=1).top_digit_pairs == (30,)
    assert benford_first_two(values, min_count=1, top=0).top_digit_pairs == ()
