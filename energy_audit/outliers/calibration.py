"""Calibrate scores on the data's own distribution: tail p-values and window null rates.

A robust z measures distance in units of the data's spread, but how often a distance occurs
depends on the data: the 98th percentile of |z| ranges from 3 to 10 across methods and cities.
A p-value computed from one fixed tail (normal, Student t) is then too small for the noisy
statistics and too large for the quiet ones, and any combination of p-values across
statistics is taken over by the noisiest. The functions here estimate each statistic's null
distribution from its own values, one group (statistic, item, year) at a time:

- :func:`tail_p`: the p-value of a non-negative score (e.g. |robust z|) as the share of the
  group's values at least as large (the conformal p-value: exactly uniform when the values are
  exchangeable), with a Pareto tail fitted to the largest values beyond the threshold (a
  peaks-over-threshold extension, so that the most extreme values are still told apart and can
  have p-values below 1/n). The tail index is the median-based Hill estimate, which a minority
  of gross errors among the largest values does not move.
- :func:`window_p`: the probability that a value falls in a narrow window (a unit-slip window
  around a factor's log) *by chance*, estimated from the density of the group's values in the
  window's shoulders on either side (other windows excluded), not from a constant and not from
  the window itself (which holds the slips).
- :func:`exact_match_p`: the probability that two figures agree to their precision by chance,
  from the density of their log-ratios next to zero (copies, identical siblings).

Defects in the data make these estimates conservative (the tails look heavier than the clean
tails), never anti-conservative.

References
----------
.. [1] Vovk, V., Gammerman, A. and Shafer, G. (2005). Algorithmic Learning in a Random World.
   Springer (conformal p-values: rank among exchangeable values).
.. [2] Hill, B. M. (1975). A simple general approach to inference about the tail of a
   distribution. Annals of Statistics 3(5), 1163-1174.
.. [3] Davison, A. C. and Smith, R. L. (1990). Models for exceedances over high thresholds.
   J. R. Statist. Soc. B 52(3), 393-442 (peaks over threshold).
.. [4] Efron, B. (2004). Large-scale simultaneous hypothesis testing: the choice of a null
   hypothesis. JASA 99(465), 96-104 (estimating the null from the data).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl

from energy_audit.errors import SettingsError

__all__ = [
    "MIN_CALIBRATION_SIZE",
    "SHOULDER_WIDTHS",
    "TAIL_INDEX_BOUNDS",
    "TAIL_MIN_COUNT",
    "TAIL_SHARE",
    "exact_match_p",
    "tail_p",
    "window_p",
]

TAIL_SHARE: Final = 0.05
"""Share of a group's values above the tail threshold: below it the p-value is the empirical
share, above it the fitted Pareto tail."""

TAIL_MIN_COUNT: Final = 10
"""Fewest values above the tail threshold (in small groups the threshold is lower)."""

TAIL_INDEX_BOUNDS: Final = (0.05, 2.0)
"""Floor and cap of the Pareto tail index ξ (survival ∝ x^(−1/ξ)): 0.05 is a tail lighter
than any seen in returns data, 2 heavier than a Cauchy's (ξ = 1). With fewer than three values
above the threshold the cap is used (the most conservative tail)."""

MIN_CALIBRATION_SIZE: Final = 30
"""Fewest values a group needs for its own calibration; a smaller group gets the p-value of
the score under a standard Cauchy distribution (the heaviest usual tail, conservative)."""

SHOULDER_WIDTHS: Final = 2.0
"""Width of each shoulder of a window, in half-widths of the window: with 2, each shoulder is as
wide as the window, and the two together twice as wide."""

_LN2: Final = math.log(2.0)


def _check_frame_columns(frame: pl.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SettingsError(
            f"校准数据缺少列 {'、'.join(missing)}",
            f"calibration frame lacks column(s) {', '.join(missing)}",
        )


def _tail_p_group(
    a: npt.NDArray[np.float64], tail_share: float, bounds: tuple[float, float]
) -> npt.NDArray[np.float64]:
    """Return the calibrated p-values of one group's scores ``a`` (NaN: none)."""
    out = np.full(a.size, np.nan)
    valid = np.isfinite(a) & (a >= 0)
    x = a[valid]
    n = x.size
    if n == 0:
        return out
    if n < MIN_CALIBRATION_SIZE:
        out[valid] = 1.0 - (2.0 / math.pi) * np.arctan(x)
        return out
    # values ≥ a: n less the rank of the first of a's ties (polars' "min" rank, one sort)
    ge = n + 1 - pl.Series(x).rank("min").to_numpy().astype(np.int64)
    p = ge / (n + 1.0)
    positive = x[x > 0]
    if positive.size:
        m = positive.size
        k = int(min(max(math.ceil(tail_share * n), TAIL_MIN_COUNT), m // 2))
        # the (k + 1)-th largest positive score, or the smallest (a selection, not a sort)
        at = m - k - 1 if k >= 1 and m > k else 0
        u = float(np.partition(positive, at)[at])
        exceed = positive[positive > u]
        lo, hi = bounds
        xi = (
            float(np.clip(np.median(np.log(exceed / u)) / _LN2, lo, hi)) if exceed.size >= 3 else hi
        )
        ge_u = int(np.count_nonzero(x >= u))
        beyond = np.flatnonzero(x > u)
        p[beyond] = ge_u / (n + 1.0) * np.power(x[beyond] / u, -1.0 / xi)
    out[valid] = np.clip(p, 0.0, 1.0)
    return out


def tail_p(
    frame: pl.DataFrame,
    score: str,
    by: Sequence[str] = (),
    *,
    tail_share: float = TAIL_SHARE,
    index_bounds: tuple[float, float] = TAIL_INDEX_BOUNDS,
    name: str = "p",
) -> pl.DataFrame:
    r"""Add the calibrated p-value of a non-negative score, from its own group's distribution.

    Parameters
    ----------
    frame : polars.DataFrame
        One row per scored unit; not changed.
    score : str
        Non-negative score column, large = surprising (e.g. ``|robust z|``); null, NaN and
        negative values get a null p-value and take no part in the calibration.
    by : sequence of str, default ()
        Columns of the groups calibrated apart (e.g. ``["column", "year"]``).
    tail_share : float, default :data:`TAIL_SHARE`
        Share of the group's values fitted by the Pareto tail, in (0, 0.5].
    index_bounds : tuple of float, default :data:`TAIL_INDEX_BOUNDS`
        Floor and cap of the tail index ξ, 0 < floor ≤ cap. A floor of 1 for the score 1/p of
        a p-value keeps the tail at least as heavy as that of a uniform p: beyond the
        threshold the p-values are the score's own, rescaled, never sharpened.
    name : str, default "p"
        Name of the added column.

    Returns
    -------
    polars.DataFrame
        ``frame`` with ``name`` (Float64) added or replaced, in the frame's order.

    Notes
    -----
    In a group of n valid scores, n₊ of them positive, let
    k = max(:data:`TAIL_MIN_COUNT`, ⌈tail_share · n⌉), at most n₊/2, and u the (k+1)-th
    largest positive score, or the smallest positive score when there are too few: the
    threshold is the same quantile of every statistic, but never below the median of the
    positive scores, so that a statistic that is mostly exactly 0 (the change of a floor area
    nobody re-measured) has the upper half of its positive scores as its tail, and a few
    gross errors among them (a floor area typed 30 % too large) are judged against the
    re-measures, not against each other. Then

    .. math::

        p(a) = \frac{\#\{j : a_j \ge a\}}{n + 1} \quad (a \le u), \qquad
        p(a) = \frac{\#\{j : a_j \ge u\}}{n + 1} \left(\frac{a}{u}\right)^{-1/\xi}
        \quad (a > u),

    continuous at u, with ξ = median(ln(a_j / u) : a_j > u)
    / ln 2 (the median of an exponential variable with mean ξ is ξ ln 2), clipped to
    :data:`TAIL_INDEX_BOUNDS`. The first part is the conformal p-value [1]_ (uniform when the
    values are exchangeable); the second a Pareto tail fitted over the threshold [2]_ [3]_.
    Groups with fewer than :data:`MIN_CALIBRATION_SIZE` scores: p = 1 − (2/π)
    arctan(a), the two-sided tail of a standard Cauchy distribution. One rank per group (the
    counts # {a_j ≥ a} from polars' "min" rank) and a selection for u; about 0.1 s for a
    group of 1 million scores.

    Examples
    --------
    >>> import polars as pl
    >>> f = pl.DataFrame({"z": [*(i / 10 for i in range(1, 100)), 1000.0]})
    >>> p = tail_p(f, "z")["p"]
    >>> round(p[49], 4), round(p[0], 4)  # z = 5: 51 of 100 at least as large
    (0.505, 0.9901)
    >>> bool(p[99] < 1 / 101)  # z = 1,000: beyond the empirical range
    True
    """
    _check_frame_columns(frame, [score, *by])
    if not 0 < tail_share <= 0.5:
        raise SettingsError(
            f"tail_share 应在 (0, 0.5] 内，实际为 {tail_share!r}",
            f"tail_share must be in (0, 0.5], got {tail_share!r}",
        )
    lo, hi = index_bounds
    if not 0 < lo <= hi:
        raise SettingsError(
            f"index_bounds 应满足 0 < 下限 ≤ 上限，实际为 {index_bounds!r}",
            f"index_bounds must satisfy 0 < floor ≤ cap, got {index_bounds!r}",
        )
    a = frame.select(pl.col(score).cast(pl.Float64).fill_null(np.nan)).to_series().to_numpy()
    if not by:
        out = _tail_p_group(a, tail_share, (lo, hi))
    else:  # the rows of each group (a null key is a group of its own), without copying
        out = np.full(a.size, np.nan)
        groups = frame.select(by).with_row_index("_i").group_by(list(by)).agg("_i")["_i"]
        for rows in groups:
            index = rows.to_numpy()
            out[index] = _tail_p_group(a[index], tail_share, (lo, hi))
    return frame.with_columns(pl.Series(name, out, dtype=pl.Float64).fill_nan(None))


def _window_mass(sorted_values: npt.NDArray[np.float64], low: float, high: float) -> int:
    """Count the sorted values in [low, high]."""
    return int(
        np.searchsorted(sorted_values, high, side="right")
        - np.searchsorted(sorted_values, low, side="left")
    )


def window_p(
    values: npt.ArrayLike,
    centers: npt.ArrayLike,
    half_widths: npt.ArrayLike,
) -> npt.NDArray[np.float64]:
    r"""Return the chance that one of ``values`` falls in each window, from the shoulders.

    Parameters
    ----------
    values : array_like of float
        The group's values (e.g. the log-ratios to last year of one item in one year); NaN
        ignored.
    centers, half_widths : array_like of float
        Windows [c − h, c + h] (e.g. c = ln f of a unit-slip factor f, h its tolerance).

    Returns
    -------
    numpy.ndarray
        Per window, p = (λ + 1) / (n + 1), where n is the number of values and λ the number
        expected in the window by chance: the values in its two shoulders [c − 3h, c − h) and
        (c + h, c + 3h] (:data:`SHOULDER_WIDTHS`), minus any part covered by another window,
        times the window's width over the shoulders' remaining width. The window's own
        values (the slips) do not count. A window whose shoulders are all covered by other
        windows gets λ = 0.

    Notes
    -----
    This is a local density estimate of the null at the window: wherever ordinary changes
    are dense (fuel use moves ±25 % a year, so the 0.73 window of kilograms typed for litres
    is full of them), a value in the window is weak evidence; where they are absent (a ratio
    of 10⁻⁴ to last year), strong.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> changes = rng.normal(0.0, 0.25, 10_000)  # ordinary changes, ±25 %
    >>> p = window_p(changes, [np.log(0.73), np.log(1e-4)], [0.05, 1.4])
    >>> bool(p[0] > 0.03), bool(p[1] < 1e-3)
    (True, True)
    """
    x = np.asarray(values, dtype=np.float64)
    x = np.sort(x[np.isfinite(x)])
    c = np.atleast_1d(np.asarray(centers, dtype=np.float64))
    h = np.atleast_1d(np.asarray(half_widths, dtype=np.float64))
    if c.shape != h.shape:
        raise SettingsError(
            "centers 与 half_widths 的长度应相同", "centers and half_widths must have equal length"
        )
    n = x.size
    out = np.empty(c.size)
    for i in range(c.size):
        # the shoulders as intervals, minus every other window
        pieces = [(c[i] - (1 + SHOULDER_WIDTHS) * h[i], c[i] - h[i]),
                  (c[i] + h[i], c[i] + (1 + SHOULDER_WIDTHS) * h[i])]  # fmt: skip
        for j in range(c.size):
            if j == i:
                continue
            lo_j, hi_j = c[j] - h[j], c[j] + h[j]
            cut = []
            for lo, hi in pieces:
                if hi_j <= lo or lo_j >= hi:
                    cut.append((lo, hi))
                    continue
                if lo < lo_j:
                    cut.append((lo, lo_j))
                if hi_j < hi:
                    cut.append((hi_j, hi))
            pieces = cut
        width = sum(hi - lo for lo, hi in pieces)
        count = sum(_window_mass(x, lo, hi) for lo, hi in pieces)
        expected = 0.0 if width <= 0 else count * (2.0 * h[i]) / width
        out[i] = (expected + 1.0) / (n + 1.0)
    return np.clip(out, 0.0, 1.0)


def exact_match_p(
    log_ratios: npt.ArrayLike, precision: npt.ArrayLike, *, bandwidth: float | None = None
) -> npt.NDArray[np.float64]:
    r"""Return the chance that a figure equals another to within ``precision`` by accident.

    Parameters
    ----------
    log_ratios : array_like of float
        The group's log-ratios between the compared figures (e.g. each return's electricity
        this year over last year), NaN ignored. Exact zeros (the matches themselves) take no
        part in the density.
    precision : array_like of float
        Per figure to judge, the relative precision ε of the match (e.g. half a unit of the
        last digit over the figure): a match is |log-ratio| ≤ ε.
    bandwidth : float, optional
        Half-width of the neighbourhood of 0 whose density is measured; default the 2 %
        quantile of |log-ratio| of the non-zero values, at least 10⁻⁴.

    Returns
    -------
    numpy.ndarray
        Per figure, min(1, 2ε · f̂(0)), with f̂(0) the density of the non-zero log-ratios
        within ±bandwidth of 0 (plus one value, so that a density is never 0).

    Examples
    --------
    >>> import numpy as np
    >>> r = np.random.default_rng(1).normal(0.0, 0.1, 5_000)
    >>> float(exact_match_p(r, [1e-6])[0]) < 1e-4
    True
    """
    x = np.asarray(log_ratios, dtype=np.float64)
    x = np.abs(x[np.isfinite(x)])
    x = x[x > 0]
    eps = np.asarray(precision, dtype=np.float64)
    if x.size == 0:
        return np.ones_like(eps)
    h = bandwidth if bandwidth is not None else max(float(np.quantile(x, 0.02)), 1e-4)
    density = (float((x <= h).sum()) + 1.0) / (x.size * 2.0 * h)
    return np.clip(2.0 * eps * density, 0.0, 1.0)
