"""Ranking across methods: Cauchy combination, Benjamini-Hochberg, priority."""

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from energy_audit.outliers.priority import (
    benjamini_hochberg,
    cauchy_combination,
    cauchy_combination_by,
    priority_from_p,
)


def test_benjamini_hochberg_by_hand():
    # sorted p: 0.005, 0.01, 0.03, 0.04 (m = 4) → m/i·p: 0.02, 0.02, 0.04, 0.04; running min from
    # the top keeps them (Benjamini & Hochberg 1995, step-up procedure).
    q = benjamini_hochberg([0.01, 0.04, 0.03, 0.005])
    assert q.tolist() == pytest.approx([0.02, 0.04, 0.04, 0.02])
    with_nan = benjamini_hochberg([0.01, np.nan, 0.04])
    assert np.isnan(with_nan[1])
    assert with_nan[[0, 2]].tolist() == pytest.approx([0.02, 0.04])  # m = 2, NaN not counted


def test_cauchy_combination_by_hand():
    # one p-value: itself; T = tan((0.5 − p)π) and back
    assert cauchy_combination([0.2]) == pytest.approx(0.2)
    # two equal p-values give the same p (weights sum to 1): Liu & Xie 2020, eq. (2)
    assert cauchy_combination([0.05, 0.05]) == pytest.approx(0.05)
    # p = 0.01 and 0.5: T = (tan(0.49π) + tan(0))/2 = 15.894…; p = 0.5 − arctan(T)/π = 0.02
    expected = 0.5 - np.arctan(np.tan(0.49 * np.pi) / 2) / np.pi
    assert cauchy_combination([0.01, 0.5]) == pytest.approx(expected)
    assert expected == pytest.approx(0.02, abs=1e-3)
    # a return hit by two methods ranks above one hit by one of them
    assert cauchy_combination([0.01, 0.01, 0.02]) < cauchy_combination([0.01, 0.5, 0.5])
    assert np.isnan(cauchy_combination([]))
    assert cauchy_combination([0.0]) < 1e-200  # no overflow at p = 0


def test_vectorised_combination_matches_the_function():
    frame = pl.DataFrame(
        {
            "institution_id": ["a", "a", "b", "b", "b", "c"],
            "year": [2024] * 6,
            "p": [0.01, 0.5, 0.2, 0.3, None, 0.04],
        }
    )
    before = frame.clone()
    out = cauchy_combination_by(frame, "p", ["institution_id", "year"])
    lazy = cauchy_combination_by(frame.lazy(), "p", ["institution_id", "year"])
    assert isinstance(lazy, pl.LazyFrame)
    assert_frame_equal(lazy.collect(), out, check_exact=False, rel_tol=1e-12)
    assert frame.equals(before)
    assert out["methods"].to_list() == [2, 2, 1]
    assert out["p_combined"].to_list() == pytest.approx(
        [cauchy_combination([0.01, 0.5]), cauchy_combination([0.2, 0.3]), 0.04]
    )


def test_priority_orders_by_evidence():
    assert priority_from_p([1e-3, 1.0, np.nan]).tolist() == pytest.approx([0.5, 0.0, 0.0])


def test_groups_come_in_order_of_first_appearance_and_sum_in_row_order() -> None:
    frame = pl.DataFrame(
        {
            "row": [2, 0, 2, 1, 0, 1],
            "method": ["peer", "peer", "model", "peer", "peer", "peer"],
            "p": [0.01, 0.2, 0.5, 0.03, 0.4, None],
            "w": [1.0, 1.0, 2.0, 0.0, 3.0, 1.0],
        }
    )
    out = cauchy_combination_by(frame, "p", ["row", "method"], weight="w")
    # (1, peer) has no p with a positive weight: no row
    assert out.select("row", "method").rows() == [(2, "peer"), (0, "peer"), (2, "model")]
    assert out["methods"].to_list() == [1, 2, 1]
    assert out["p_combined"].to_list() == pytest.approx(
        [0.01, cauchy_combination([0.2, 0.4], [1.0, 3.0]), 0.5]
    )


def random_units(seed: int, n: int = 5_000) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    methods = np.array(["peer", "model", "yoy", "copies"])
    blocks = np.sort(rng.integers(0, 4, n))  # in blocks, as the statistical stage makes them
    return pl.DataFrame(
        {
            "_row": rng.integers(0, n // 4, n).astype(np.uint32),
            "method": methods[blocks],
            "shuffled": methods[rng.integers(0, 4, n)],
            "p": np.where(rng.random(n) < 0.05, np.nan, rng.random(n) ** 3),
            "_w": np.where(rng.random(n) < 0.05, 0.0, rng.random(n)),
        }
    ).with_columns(pl.when(pl.col("_w") > 0.97).then(None).otherwise(pl.col("p")).alias("p"))


@pytest.mark.parametrize("seed", range(3))
def test_tabulated_and_hashed_combinations_agree(seed: int) -> None:
    units = random_units(seed)
    for by in (["_row", "method"], ["_row", "shuffled"], ["_row"], ["method"]):
        for weight in (None, "_w"):
            tabulated = cauchy_combination_by(units, "p", by, weight=weight)
            hashed = cauchy_combination_by(units.lazy(), "p", by, weight=weight).collect()
            # the same groups in the same order; the sums differ at most in the last bits
            assert_frame_equal(tabulated, hashed, check_exact=False, rel_tol=1e-12)
    # groups in runs (units sorted by return and method, as the statistical stage sorts them)
    # and a method of enum dtype: the same table as the hash group_by
    enum = pl.Enum(["peer", "model", "yoy", "copies"])
    for sorted_units in (units.sort("_row", "method"), units.sort("_row")):
        for frame in (sorted_units, sorted_units.with_columns(pl.col("method").cast(enum))):
            assert_frame_equal(
                cauchy_combination_by(frame, "p", ["_row", "method"], weight="_w"),
                cauchy_combination_by(frame.lazy(), "p", ["_row", "method"], weight="_w").collect(),
                check_exact=False,
                rel_tol=1e-12,
            )
    # a float key or a null key is not tabulated: the group_by gives the same table
    keyed = units.with_columns(pl.col("_row").cast(pl.Float64))
    assert_frame_equal(
        cauchy_combination_by(keyed, "p", ["_row"]),
        cauchy_combination_by(keyed.lazy(), "p", ["_row"]).collect(),
    )
