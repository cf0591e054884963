import doctest
import re

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from energy_audit.errors import SettingsError, UnusableInputError
from energy_audit.outliers import esd
from energy_audit.outliers.esd import (
    ESD_COLUMNS,
    esd_critical_values,
    generalized_esd,
    generalized_esd_by_group,
)

# Rosner (1983)'s 54 observations, as used in the worked example of the NIST/SEMATECH
# e-Handbook of Statistical Methods, 1.3.5.17.3 "Generalized Extreme Studentized Deviate Test
# for Outliers" (https://www.itl.nist.gov/div898/handbook/eda/section3/eda35h3.htm):
# r = 10, alpha = 0.05, result: 3 outliers.
ROSNER = [
    -0.25, 0.68, 0.94, 1.15, 1.20, 1.26, 1.26, 1.34, 1.38, 1.43, 1.49, 1.49, 1.55, 1.56,
    1.58, 1.65, 1.69, 1.70, 1.76, 1.77, 1.81, 1.91, 1.94, 1.96, 1.99, 2.06, 2.09, 2.10,
    2.14, 2.15, 2.23, 2.24, 2.26, 2.35, 2.37, 2.40, 2.47, 2.54, 2.62, 2.64, 2.90, 2.92,
    2.92, 2.93, 3.21, 3.26, 3.30, 3.59, 3.68, 4.30, 4.64, 5.34, 5.42, 6.01,
]  # fmt: skip
# The handbook's summary table, i = 1..10: test statistic R_i and critical value lambda_i.
NIST_R = [3.118, 2.942, 3.179, 2.810, 2.815, 2.848, 2.279, 2.310, 2.101, 2.067]
NIST_LAMBDA = [3.158, 3.151, 3.143, 3.136, 3.128, 3.120, 3.111, 3.103, 3.094, 3.085]


def test_nist_worked_example_number_of_outliers_and_which():
    result = generalized_esd(ROSNER, max_outliers=10, alpha=0.05)
    assert result.n == 54
    assert result.n_outliers == 3
    assert sorted(np.asarray(ROSNER)[result.outlier_indices]) == [5.34, 5.42, 6.01]
    assert result.outlier_indices.tolist() == [53, 52, 51]  # most extreme first


def test_nist_worked_example_table():
    result = generalized_esd(ROSNER, max_outliers=10, alpha=0.05)
    # The handbook prints the values cut (not rounded) to three decimals: R_2 = 2.94297...
    # appears as 2.942. All twenty printed figures are reproduced exactly that way.
    assert np.floor(result.statistics * 1000).astype(int).tolist() == [
        round(v * 1000) for v in NIST_R
    ]
    assert np.floor(result.critical_values * 1000).astype(int).tolist() == [
        round(v * 1000) for v in NIST_LAMBDA
    ]
    assert result.statistics == pytest.approx(NIST_R, abs=1e-3)
    assert result.critical_values == pytest.approx(NIST_LAMBDA, abs=1e-3)


def test_masked_outlier_counts_because_a_later_step_exceeds():
    # R_2 < lambda_2 in the NIST example, yet the second value is an outlier since R_3 > lambda_3.
    result = generalized_esd(ROSNER, max_outliers=10)
    assert result.statistics[1] < result.critical_values[1]
    assert result.statistics[2] > result.critical_values[2]
    assert (result.statistics[3:] < result.critical_values[3:]).all()


def test_removal_order_follows_from_the_data():
    # Not printed by NIST; follows from the data: 6.01, 5.42, 5.34, 4.64, -0.25, 4.30, ...
    result = generalized_esd(ROSNER, max_outliers=10)
    assert result.candidate_indices.tolist() == [53, 52, 51, 50, 0, 49, 48, 47, 1, 46]


def test_clean_normal_sample_has_no_outlier():
    x = np.random.default_rng(20240501).normal(10.0, 2.0, 200)
    result = generalized_esd(x, max_outliers=20)
    assert result.n_outliers == 0
    assert result.outlier_indices.size == 0


def test_low_and_high_outliers_found_in_normal_sample():
    x = np.random.default_rng(7).normal(0.0, 1.0, 100)
    x[[3, 60]] = [-9.0, 12.0]
    result = generalized_esd(x, max_outliers=10)
    assert sorted(result.outlier_indices.tolist()) == [3, 60]


def test_input_unchanged_and_any_order():
    x = np.array(ROSNER[::-1])
    copy = x.copy()
    result = generalized_esd(x, max_outliers=10)
    np.testing.assert_array_equal(x, copy)
    assert result.outlier_indices.tolist() == [0, 1, 2]


def test_equal_values_give_zero_statistics():
    result = generalized_esd([5.0] * 30, max_outliers=3)
    assert result.statistics.tolist() == [0.0, 0.0, 0.0]
    assert result.n_outliers == 0


def test_critical_values_decrease_and_match_formula():
    n, alpha = 54, 0.05
    lam = esd_critical_values(n, 10, alpha)
    assert (np.diff(lam) < 0).all()
    # lambda_1 is Grubbs' two-sided critical value (n - 1)/sqrt(n) * sqrt(t^2 / (n - 2 + t^2)).
    from scipy import stats

    t = stats.t.ppf(1 - alpha / (2 * n), n - 2)
    assert lam[0] == pytest.approx((n - 1) / np.sqrt(n) * np.sqrt(t**2 / (n - 2 + t**2)))


@pytest.mark.parametrize(
    ("values", "kwargs", "error", "match_zh", "match_en"),
    [
        ([1.0, np.nan, 3.0, 4.0], {"max_outliers": 1}, UnusableInputError, "1 个 NaN", "1 NaN"),
        (
            [1.0, 2.0, 3.0],
            {"max_outliers": 2},
            UnusableInputError,
            "至少需要 4 个值，实际只有 3 个",
            "at least 4 values, got 3",
        ),
        (
            [[1.0, 2.0], [3.0, 4.0]],
            {"max_outliers": 1},
            UnusableInputError,
            "需要一维的值",
            "one-dimensional",
        ),
        (["a", "b", "c"], {"max_outliers": 1}, UnusableInputError, "应为数字", "must be numbers"),
        (
            ROSNER,
            {"max_outliers": 0},
            SettingsError,
            "max_outliers 应为 ≥ 1 的整数",
            "max_outliers must be an integer ≥ 1",
        ),
        (ROSNER, {"max_outliers": 2, "alpha": 1.5}, SettingsError, "alpha 应为", "alpha must be"),
    ],
)
def test_errors(values, kwargs, error, match_zh, match_en):
    with pytest.raises(error, match=match_zh) as info:
        generalized_esd(values, **kwargs)
    assert re.search(match_en, info.value.message_en)


def _peer_frame() -> pl.DataFrame:
    rng = np.random.default_rng(11)
    a = np.exp(rng.normal(11.0, 0.4, 40))
    a[5] *= 1000.0  # unit slip: kWh written where 10^3 kWh was meant
    b = np.exp(rng.normal(9.0, 0.3, 40))
    c = np.exp(rng.normal(8.0, 0.3, 10))  # too few to test
    values = [*a, None, 0.0, *b, *c]
    sectors = ["a"] * 42 + ["b"] * 40 + ["c"] * 10
    return pl.DataFrame(
        {"id": list(range(len(values))), "sector": sectors, "kwh": values},
        schema={"id": pl.Int64, "sector": pl.String, "kwh": pl.Float64},
    )


def test_by_group_marks_the_slip_only():
    frame = _peer_frame()
    out = generalized_esd_by_group(frame, "kwh", "sector")
    assert out.columns == [*frame.columns, *ESD_COLUMNS]
    assert out.height == frame.height
    assert out.filter(pl.col("esd_is_outlier"))["id"].to_list() == [5]
    by_sector = out.group_by("sector").agg(
        pl.col("esd_n").first(), pl.col("esd_is_outlier").null_count().alias("untested")
    )
    assert sorted(by_sector.rows()) == [("a", 40, 2), ("b", 40, 0), ("c", 10, 10)]
    # r = floor(0.1 * 40) = 4 candidates per tested group carry R_i and lambda_i.
    candidates = out.filter(pl.col("esd_statistic").is_not_null())
    assert candidates.group_by("sector").len().sort("sector").rows() == [("a", 4), ("b", 4)]
    assert out.filter(pl.col("kwh").is_null() | (pl.col("kwh") <= 0))[
        "esd_is_outlier"
    ].to_list() == [
        None,
        None,
    ]


def test_by_group_agrees_with_single_sample_test_on_logs():
    frame = _peer_frame()
    out = generalized_esd_by_group(frame, "kwh", "sector", alpha=0.05)
    group_a = frame.filter((pl.col("sector") == "a") & (pl.col("kwh") > 0))
    single = generalized_esd(np.log(group_a["kwh"].to_numpy()), max_outliers=4)
    rows = out.filter(pl.col("id").is_in(group_a["id"][single.candidate_indices].to_list()))
    assert sorted(rows["esd_statistic"].to_list()) == pytest.approx(sorted(single.statistics))
    assert sorted(rows["esd_critical_value"].to_list()) == pytest.approx(
        sorted(single.critical_values)
    )


def test_by_group_dataframe_and_lazyframe_agree_and_input_unchanged():
    frame = _peer_frame()
    before = frame.clone()
    eager = generalized_esd_by_group(frame, "kwh", ["sector"])
    lazy = generalized_esd_by_group(frame.lazy(), "kwh", ["sector"])
    assert isinstance(eager, pl.DataFrame)
    assert isinstance(lazy, pl.LazyFrame)
    assert_frame_equal(eager, lazy.collect())
    assert_frame_equal(frame, before)


def test_by_group_without_group_null_keys_and_replaced_columns():
    frame = _peer_frame().with_columns(
        pl.when(pl.col("sector") == "b").then(None).otherwise(pl.col("sector")).alias("sector"),
        pl.lit(True).alias("esd_is_outlier"),
    )
    out = generalized_esd_by_group(frame, "kwh", "sector")
    assert out.columns == [c for c in frame.columns if c != "esd_is_outlier"] + list(ESD_COLUMNS)
    assert out.filter(pl.col("sector").is_null())["esd_is_outlier"].to_list() == [False] * 40
    whole = generalized_esd_by_group(frame, "kwh", None)
    assert whole["esd_n"].unique().to_list() == [90]
    assert whole.filter(pl.col("esd_is_outlier"))["id"].to_list() == [5]


def test_by_group_without_log_on_normal_values():
    rng = np.random.default_rng(3)
    values = rng.normal(0.0, 1.0, 50)
    values[10] = -8.0
    out = generalized_esd_by_group(pl.DataFrame({"x": values}), "x", None, log=False)
    assert out["esd_is_outlier"].arg_true().to_list() == [10]


def test_by_group_empty_frame():
    frame = pl.DataFrame(schema={"sector": pl.String, "kwh": pl.Float64})
    out = generalized_esd_by_group(frame, "kwh", "sector")
    assert out.height == 0
    assert out.columns == ["sector", "kwh", *ESD_COLUMNS]


@pytest.mark.parametrize(
    ("kwargs", "error", "match_zh", "match_en"),
    [
        ({"value": "gas"}, UnusableInputError, "缺少列.*gas", "lacks column.*gas"),
        (
            {"value": "sector"},
            UnusableInputError,
            "sector（String）应为数值类型",
            "must be numeric",
        ),
        ({"max_outliers_share": 0.8}, SettingsError, "max_outliers_share", "max_outliers_share"),
        ({"alpha": 0.0}, SettingsError, "alpha", "alpha"),
        ({"min_group_size": 2}, SettingsError, "min_group_size", "min_group_size"),
    ],
)
def test_by_group_errors(kwargs, error, match_zh, match_en):
    arguments = {"value": "kwh", "group": "sector", **kwargs}
    with pytest.raises(error, match=match_zh) as info:
        generalized_esd_by_group(_peer_frame(), **arguments)
    assert re.search(match_en, info.value.message_en)


def test_docstring_examples_run():
    result = doctest.testmod(esd, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    assert result.attempted > 0


def test_lazy_filter_after_the_test_does_not_change_the_groups():
    # A filter on the result must not be pushed below the test (it would shrink the groups).
    frame = _peer_frame()
    lazy = generalized_esd_by_group(frame.lazy(), "kwh", "sector").filter(pl.col("kwh") < 1e6)
    eager = generalized_esd_by_group(frame, "kwh", "sector").filter(pl.col("kwh") < 1e6)
    assert_frame_equal(lazy.collect(), eager)
    assert eager["esd_n"].max() == 40


def _naive_esd_statistics(x, r):
    """Rosner's steps written out: recompute mean and sd of what is left at every step."""
    left = list(map(float, x))
    out = []
    for _ in range(r):
        a = np.array(left)
        deviation = np.abs(a - a.mean())
        j = int(np.argmax(deviation))
        sd = a.std(ddof=1)
        out.append(deviation[j] / sd if sd > 0 else 0.0)
        left.pop(j)
    return np.array(out)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_running_sums_agree_with_recomputing_even_after_huge_outliers(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(1000.0, 10.0, 60)
    x[[2, 9, 30]] = [1e12, -3e9, 5e15]  # removing them cancels nearly all digits of the sums
    result = generalized_esd(x, max_outliers=12)
    np.testing.assert_allclose(result.statistics, _naive_esd_statistics(x, 12), rtol=1e-9)
    assert result.outlier_indices.tolist() == [30, 2, 9]
