"""Calibration on the data's own distribution: tail p-values, window and exact-match rates."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from energy_audit.errors import SettingsError
from energy_audit.outliers.calibration import (
    MIN_CALIBRATION_SIZE,
    TAIL_INDEX_BOUNDS,
    TAIL_MIN_COUNT,
    exact_match_p,
    tail_p,
    window_p,
)

# --------------------------------------------------------------------------------------------
# tail_p by hand and against its definition


def test_conformal_share_below_the_threshold_by_hand() -> None:
    # 0.1 … 9.9 and one 1,000: a score of 5 has 51 of the 100 at least as large → 51 / 101
    frame = pl.DataFrame({"z": [*(i / 10 for i in range(1, 100)), 1000.0]})
    p = tail_p(frame, "z")["p"]
    assert p[49] == pytest.approx(51 / 101)
    assert p[0] == pytest.approx(100 / 101)
    assert p[99] < 1 / 101  # beyond the sample: the Pareto tail


def test_ties_count_as_at_least_as_large() -> None:
    frame = pl.DataFrame({"z": [0.0] * 60 + [2.0] * 30 + [3.0] * 10})
    p = tail_p(frame, "z")["p"].to_list()
    # every score is at least 0; 40 of 100 are ≥ 2 (and 2 is below the threshold u = 2:
    # k = max(10, ⌈0.05 · 40⌉) = 10 of the 40 positive, u the 11th largest = 2)
    assert p[0] == pytest.approx(100 / 101)
    assert p[60] == pytest.approx(40 / 101)


def test_small_groups_get_the_cauchy_tail_and_bad_scores_none() -> None:
    frame = pl.DataFrame({"z": [0.0, 1.0, math.inf, -1.0, None, math.nan]})
    p = tail_p(frame, "z")["p"].to_list()
    assert p[0] == pytest.approx(1.0)
    assert p[1] == pytest.approx(0.5)  # 1 − (2/π) arctan 1
    assert p[2:] == [None, None, None, None]
    assert len(p) < MIN_CALIBRATION_SIZE


def tail_p_by_definition(a: np.ndarray, tail_share: float = 0.05) -> np.ndarray:
    """The p-values of one group written out from the Notes of :func:`tail_p`."""
    out = np.full(a.size, np.nan)
    valid = np.isfinite(a) & (a >= 0)
    x = a[valid]
    n = x.size
    if n == 0:
        return out
    if n < MIN_CALIBRATION_SIZE:
        out[valid] = 1.0 - (2.0 / math.pi) * np.arctan(x)
        return out
    ref = np.sort(x)
    p = (n - np.searchsorted(ref, x, side="left")) / (n + 1.0)
    positive = ref[ref > 0]
    if positive.size:
        k = int(min(max(math.ceil(tail_share * n), TAIL_MIN_COUNT), positive.size // 2))
        u = positive[-(k + 1)] if k >= 1 and positive.size > k else positive[0]
        exceed = positive[positive > u]
        lo, hi = TAIL_INDEX_BOUNDS
        xi = float(np.clip(np.median(np.log(exceed / u)) / math.log(2.0), lo, hi))
        xi = xi if exceed.size >= 3 else hi
        ge_u = n - np.searchsorted(ref, u, side="left")
        p = np.where(x > u, ge_u / (n + 1.0) * np.power(np.maximum(x, u) / u, -1.0 / xi), p)
    out[valid] = np.clip(p, 0.0, 1.0)
    return out


@pytest.mark.parametrize("seed", range(8))
def test_tail_p_is_its_definition_group_by_group(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 3_000))
    a = np.abs(rng.standard_cauchy(n)) * (rng.random(n) < 0.7)  # many exact zeros
    a = np.round(a, int(rng.integers(0, 4)))  # ties
    a[rng.random(n) < 0.05] = np.nan
    group = [None if r < 0.1 else g for r, g in zip(rng.random(n), "xyz" * n, strict=False)]
    frame = pl.DataFrame({"a": a, "g": group, "h": rng.integers(0, 2, n)})
    for by in ([], ["g"], ["g", "h"]):  # a null key is a group of its own
        got = tail_p(frame, "a", by, tail_share=0.1)["p"].to_numpy()
        expected = np.full(n, np.nan)
        keys = frame.select(by).with_row_index("i").group_by(by).agg("i")["i"] if by else None
        for rows in keys if by else [pl.Series(np.arange(n))]:
            index = rows.to_numpy()
            expected[index] = tail_p_by_definition(a[index], 0.1)
        np.testing.assert_array_equal(got, expected)


def test_tail_p_leaves_the_frame_and_its_order_alone() -> None:
    frame = pl.DataFrame({"g": ["b", "a"] * 40, "z": [float(i % 17) for i in range(80)]})
    before = frame.clone()
    out = tail_p(frame, "z", ["g"], name="q")
    assert frame.equals(before)
    assert_frame_equal(out.select("g", "z"), frame)
    assert out["q"].dtype == pl.Float64


def test_tail_p_settings_and_columns_are_checked() -> None:
    frame = pl.DataFrame({"z": [1.0]})
    with pytest.raises(SettingsError, match="tail_share 应在"):
        tail_p(frame, "z", tail_share=0.6)
    with pytest.raises(SettingsError, match="校准数据缺少列 g") as info:
        tail_p(frame, "z", ["g"])
    assert "lacks column(s) g" in info.value.message_en


# --------------------------------------------------------------------------------------------
# Window and exact-match rates by hand


def test_window_rate_from_its_shoulders_by_hand() -> None:
    # window [−0.1, 0.1] and shoulders [−0.3, −0.1), (0.1, 0.3]: 4 values in the shoulders
    # (width 0.4) → λ = 4 · 0.2 / 0.4 = 2; the value inside does not count; p = 3 / (7 + 1)
    values = [-0.25, -0.2, 0.0, 0.15, 0.2, 1.0, 2.0]
    assert window_p(values, [0.0], [0.1])[0] == pytest.approx(3 / 8)


def test_exact_match_rate_by_hand() -> None:
    # 100 non-zero |log-ratios| 0.01 … 1.00, bandwidth 0.05: 5 within → density (5 + 1) /
    # (100 · 2 · 0.05) = 0.6; a match to 10⁻⁴ then has chance 2 · 10⁻⁴ · 0.6
    ratios = np.arange(1, 101) / 100
    assert exact_match_p(ratios, [1e-4], bandwidth=0.05)[0] == pytest.approx(1.2e-4)


def test_a_few_gross_errors_of_a_mostly_zero_statistic_are_judged_against_the_rest() -> None:
    # a floor area's change: 9,700 unchanged, 280 re-measured by 0.5-5 %, 20 typed 20-50 % off
    rng = np.random.default_rng(3)
    changes = np.concatenate(
        [np.zeros(9_700), rng.uniform(0.005, 0.05, 280), rng.uniform(0.2, 0.5, 20)]
    )
    p = tail_p(pl.DataFrame({"a": changes}), "a")["p"].to_numpy()
    gross = p[-20:]
    # the threshold is the median of the positive scores (the share 5 % of all 10,000 values
    # would be 500, more than half of the 300 positive ones): the errors lie in the Pareto
    # tail fitted mostly to the re-measures, far below their ranks among each other (≥ 1/10001)
    assert gross.max() < 1e-3
    assert p[-300:-20].min() > gross.max()  # every re-measure less surprising than any error
    assert np.all(p[:9_700] == pytest.approx(10_000 / 10_001))  # every value is ≥ 0
