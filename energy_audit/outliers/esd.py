"""Rosner's generalized extreme studentized deviate (ESD) test for up to r outliers.

The test removes, r times, the observation farthest from the mean of those left and studentizes
its distance, R_i = max abs(x − x̄) / s; the number of outliers is the largest i with R_i > λ_i,
where λ_i is Rosner's t-distribution approximation of the critical value [1]_. Testing for *up
to* r outliers avoids the masking of one outlier by another that defeats Grubbs' one-outlier
test; only an upper bound r is needed, not the number of outliers.

- :func:`generalized_esd`: one sample (numpy-like); checked against the worked example of the
  NIST/SEMATECH e-Handbook [2]_ (Rosner's 54 observations, r = 10, α = 0.05: 3 outliers).
- :func:`generalized_esd_by_group`: every peer group of a frame, on log values by default
  (energy and water quantities are roughly lognormal), marking each row.

References
----------
.. [1] Rosner, B. (1983). Percentage points for a generalized ESD many-outlier procedure.
   *Technometrics*, 25(2), 165-172.
.. [2] NIST/SEMATECH e-Handbook of Statistical Methods, section 1.3.5.17.3, "Generalized
   Extreme Studentized Deviate Test for Outliers",
   https://www.itl.nist.gov/div898/handbook/eda/section3/eda35h3.htm
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, TypeVar

import numpy as np
import polars as pl
from scipy import stats

from energy_audit.errors import SettingsError, UnusableInputError

FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)

ESD_ALPHA: Final = 0.05
"""Default significance level α of the whole procedure (probability of any false outlier)."""

ESD_MAX_OUTLIERS_SHARE: Final = 0.1
"""Default upper bound r of a group's outliers, as a share of its tested values (r = ⌊share·n⌋)."""

ESD_MIN_GROUP_SIZE: Final = 25
"""Default fewest tested values for a group to be tested.

Rosner's critical-value approximation was found by his simulations to be very accurate from
n = 25 (NIST e-Handbook [2]_, which adds "reasonably accurate" from n = 15).
"""

ESD_COLUMNS: Final = ("esd_n", "esd_statistic", "esd_critical_value", "esd_is_outlier")
"""Columns added by :func:`generalized_esd_by_group`, in order."""

_ESD_STRUCT: Final = pl.Struct(
    {
        "esd_n": pl.Int64,
        "esd_statistic": pl.Float64,
        "esd_critical_value": pl.Float64,
        "esd_is_outlier": pl.Boolean,
    }
)


@dataclass(frozen=True, eq=False)
class EsdResult:
    """Result of the generalized ESD test on one sample.

    Attributes
    ----------
    n : int
        Sample size.
    max_outliers : int
        Upper bound r of the number of outliers tested for.
    alpha : float
        Significance level α.
    statistics : numpy.ndarray
        R_1, …, R_r: at step i, the largest abs(x − mean) / sd over the n − i + 1 values
        left (sd with ddof = 1).
    critical_values : numpy.ndarray
        λ_1, …, λ_r (:func:`esd_critical_values`).
    candidate_indices : numpy.ndarray
        Index (into the input) of the value removed at each step 1, …, r.
    n_outliers : int
        Largest i with R_i > λ_i, 0 if none.
    """

    n: int
    max_outliers: int
    alpha: float
    statistics: np.ndarray
    critical_values: np.ndarray
    candidate_indices: np.ndarray
    n_outliers: int

    @property
    def outlier_indices(self) -> np.ndarray:
        """Indices (into the input) of the outliers, most extreme first."""
        return self.candidate_indices[: self.n_outliers]


def _check_alpha(alpha: float) -> None:
    if not (isinstance(alpha, int | float) and 0.0 < alpha < 1.0):
        raise SettingsError(
            f"alpha 应为严格介于 0 和 1 之间的数，而不是 {alpha!r}",
            f"alpha must be a number strictly between 0 and 1, not {alpha!r}",
        )


def _check_count(name: str, value: int, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
        raise SettingsError(
            f"{name} 应为 ≥ {least} 的整数，而不是 {value!r}",
            f"{name} must be an integer ≥ {least}, not {value!r}",
        )


def esd_critical_values(n: int, max_outliers: int, alpha: float = ESD_ALPHA) -> np.ndarray:
    """Rosner's critical values λ_1, …, λ_r of the generalized ESD test.

    Parameters
    ----------
    n : int
        Sample size (≥ r + 2).
    max_outliers : int
        Upper bound r of the number of outliers (≥ 1).
    alpha : float, default 0.05
        Significance level.

    Returns
    -------
    numpy.ndarray
        λ_i = (n − i) t_{p, n−i−1} / √((n − i − 1 + t²_{p, n−i−1}) (n − i + 1)) for
        i = 1, …, r, where t_{p, ν} is the p quantile of Student's t with ν degrees of freedom
        and p = 1 − α / (2 (n − i + 1)) [1]_ (two-sided). λ_1 is Grubbs' critical value.

    Raises
    ------
    SettingsError
        If ``max_outliers`` < 1 or ``alpha`` is not in (0, 1).
    UnusableInputError
        If ``n`` < ``max_outliers`` + 2 (the last step would have no degree of freedom).

    Examples
    --------
    >>> esd_critical_values(54, 3).round(4).tolist()
    [3.1588, 3.1514, 3.1439]
    """
    _check_count("max_outliers", max_outliers, 1)
    _check_alpha(alpha)
    if n < max_outliers + 2:
        raise UnusableInputError(
            f"广义 ESD 检验在 max_outliers={max_outliers} 时至少需要 {max_outliers + 2} 个值，"
            f"实际只有 {n} 个",
            f"generalized ESD with max_outliers={max_outliers} needs at least "
            f"{max_outliers + 2} values, got {n}",
        )
    left = n - np.arange(1, max_outliers + 1) + 1  # values left before step i: n − i + 1
    t = stats.t.isf(alpha / (2.0 * left), left - 2)  # upper tail: precise for p near 1
    return (left - 1) * t / np.sqrt((left - 2 + t * t) * left)


def _esd_sorted(ascending: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Run r removal steps on ascending values; return the removed positions and R_1…R_r.

    The value farthest from the mean is always the smallest or the largest left, so the
    values left are a contiguous slice of the sorted array and each step costs O(1) with
    running sums of the values shifted by the median. Removing a value much larger than the
    rest cancels most digits of the running sum of squares; the rounding error is tracked and
    the sums are recomputed exactly (``math.fsum`` of the slice) when it could reach 1e-9 of
    what is left, which happens at most a few times per sample.
    """
    n = len(ascending)
    values = (ascending - ascending[n // 2]).tolist()
    low, high, left = 0, n - 1, n
    total = math.fsum(values)
    squares = math.fsum(v * v for v in values)
    error = 0.0
    positions = np.empty(r, dtype=np.int64)
    statistics = np.empty(r, dtype=np.float64)
    for step in range(r):
        if error > 1e-9 * squares:
            kept = values[low : high + 1]
            total, squares, error = math.fsum(kept), math.fsum(v * v for v in kept), 0.0
        mean = total / left
        variance = (squares - total * mean) / (left - 1)
        below, above = mean - values[low], values[high] - mean
        if above >= below:
            position, deviation, high = high, above, high - 1
        else:
            position, deviation, low = low, below, low + 1
        # A variance that is rounding noise of the sums means the values left are equal: no
        # deviation, no outlier.
        noise = 1e-12 * max(squares / left, mean * mean)
        statistics[step] = deviation / math.sqrt(variance) if variance > noise else 0.0
        positions[step] = position
        removed = values[position]
        error += 4.0 * sys.float_info.epsilon * (squares + abs(total) * abs(removed))
        total -= removed
        squares -= removed * removed
        left -= 1
    return positions, statistics


@lru_cache(maxsize=4096)
def _cached_critical_values(n: int, max_outliers: int, alpha: float) -> np.ndarray:
    """:func:`esd_critical_values`, remembered: many peer groups share a size."""
    values = esd_critical_values(n, max_outliers, alpha)
    values.setflags(write=False)
    return values


def _n_outliers(statistics: np.ndarray, critical_values: np.ndarray) -> int:
    exceed = np.flatnonzero(statistics > critical_values)
    return int(exceed[-1]) + 1 if exceed.size else 0


def generalized_esd(values: object, *, max_outliers: int, alpha: float = ESD_ALPHA) -> EsdResult:
    """Rosner's generalized ESD test for up to ``max_outliers`` outliers in one sample.

    Parameters
    ----------
    values : array_like
        One-dimensional sample, approximately normal apart from the outliers (take logs of
        energy quantities first); all finite.
    max_outliers : int
        Upper bound r of the number of outliers (1 ≤ r ≤ n − 2).
    alpha : float, default 0.05
        Significance level of the whole procedure.

    Returns
    -------
    EsdResult
        R_i and λ_i for i = 1…r, the value removed at each step and the number of outliers:
        the largest i with R_i > λ_i (so an R_i below its λ_i can still be an outlier when a
        later R_j exceeds λ_j: that is how masking is undone).

    Raises
    ------
    UnusableInputError
        If ``values`` is not one-dimensional numbers, contains NaN, inf or nulls, or has fewer
        than ``max_outliers`` + 2 values.
    SettingsError
        If ``max_outliers`` < 1 or ``alpha`` is not in (0, 1).

    Notes
    -----
    At step i (of the n − i + 1 values left): R_i = max abs(x − x̄) / s with s the standard
    deviation (ddof = 1); that value is then removed. Ties between the smallest and the largest
    value remove the largest. If all values left are equal, R_i = 0.

    References
    ----------
    Rosner (1983) [1]_; worked example: NIST/SEMATECH e-Handbook 1.3.5.17.3 [2]_.

    Examples
    --------
    Rosner's 54 observations, as in the NIST e-Handbook: 3 outliers, the three largest.

    >>> x = [-0.25, 0.68, 0.94, 1.15, 1.20, 1.26, 1.26, 1.34, 1.38, 1.43, 1.49, 1.49, 1.55,
    ...      1.56, 1.58, 1.65, 1.69, 1.70, 1.76, 1.77, 1.81, 1.91, 1.94, 1.96, 1.99, 2.06, 2.09,
    ...      2.10, 2.14, 2.15, 2.23, 2.24, 2.26, 2.35, 2.37, 2.40, 2.47, 2.54, 2.62, 2.64, 2.90,
    ...      2.92, 2.92, 2.93, 3.21, 3.26, 3.30, 3.59, 3.68, 4.30, 4.64, 5.34, 5.42, 6.01]
    >>> r = generalized_esd(x, max_outliers=10)
    >>> r.n_outliers, r.outlier_indices.tolist()
    (3, [53, 52, 51])
    """
    try:
        x = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise UnusableInputError(
            f"广义 ESD 检验的值应为数字：{error}",
            f"generalized ESD values must be numbers: {error}",
        ) from error
    if x.ndim != 1:
        raise UnusableInputError(
            f"广义 ESD 检验需要一维的值，实际形状为 {x.shape}",
            f"generalized ESD needs one-dimensional values, got {x.shape}",
        )
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        raise UnusableInputError(
            f"广义 ESD 检验的值中有 {bad} 个 NaN、空值或无穷大",
            f"generalized ESD values contain {bad} NaN, null or inf",
        )
    critical_values = esd_critical_values(len(x), max_outliers, alpha)
    order = np.argsort(x, kind="stable")
    positions, statistics = _esd_sorted(x[order], max_outliers)
    return EsdResult(
        n=len(x),
        max_outliers=max_outliers,
        alpha=float(alpha),
        statistics=statistics,
        critical_values=critical_values,
        candidate_indices=order[positions],
        n_outliers=_n_outliers(statistics, critical_values),
    )


def _esd_groups(
    rows: pl.Series,
    *,
    n_keys: int,
    share: float,
    alpha: float,
    log: bool,
    min_size: int,
) -> pl.Series:
    """Generalized ESD in every group of a struct column of keys ``__k0…`` and value ``__v``."""
    frame = rows.struct.unnest().with_row_index("__i")
    height = frame.height
    value = frame["__v"].cast(pl.Float64).to_numpy()
    usable = np.isfinite(value) & (value > 0.0) if log else np.isfinite(value)
    x = np.full(height, np.nan)
    x[usable] = np.log(value[usable]) if log else value[usable]
    keys = [f"__k{i}" for i in range(n_keys)]
    group_id = (
        frame.select(pl.col("__i").min().over(keys))["__i"].to_numpy().astype(np.int64)
        if keys
        else np.zeros(height, dtype=np.int64)
    )
    size = np.bincount(group_id[usable], minlength=height)[group_id] if height else group_id
    tested = np.zeros(height, dtype=bool)
    outlier = np.zeros(height, dtype=bool)
    statistic = np.full(height, np.nan)
    critical = np.full(height, np.nan)
    rows_used = np.flatnonzero(usable)
    rows_used = rows_used[np.lexsort((x[rows_used], group_id[rows_used]))]
    starts = np.flatnonzero(np.diff(group_id[rows_used], prepend=-1))
    ends = np.append(starts[1:], len(rows_used)).astype(np.int64)
    for start, end in zip(starts, ends[: len(starts)], strict=True):
        n = int(end - start)
        r = min(math.floor(share * n + 1e-9), n - 2)
        if n < min_size or r < 1:
            continue
        members = rows_used[start:end]
        positions, statistics = _esd_sorted(x[members], r)
        critical_values = _cached_critical_values(n, r, alpha)
        candidates = members[positions]
        tested[members] = True
        statistic[candidates] = statistics
        critical[candidates] = critical_values
        outlier[candidates[: _n_outliers(statistics, critical_values)]] = True
    out = pl.DataFrame(
        {
            "esd_n": size.astype(np.int64),
            "esd_statistic": statistic,
            "esd_critical_value": critical,
            "tested": tested,
            "outlier": outlier,
        }
    ).select(
        "esd_n",
        pl.col("esd_statistic", "esd_critical_value").fill_nan(None),
        pl.when("tested").then(pl.col("outlier")).alias("esd_is_outlier"),
    )
    return out.to_struct(rows.name)


def generalized_esd_by_group(
    frame: FrameT,
    value: str,
    group: str | Sequence[str] | None,
    *,
    max_outliers_share: float = ESD_MAX_OUTLIERS_SHARE,
    alpha: float = ESD_ALPHA,
    log: bool = True,
    min_group_size: int = ESD_MIN_GROUP_SIZE,
) -> FrameT:
    """Mark the generalized ESD outliers of ``value`` within each peer group.

    Parameters
    ----------
    frame : polars.DataFrame or polars.LazyFrame
        Rows to test (e.g. returns with ``energy_per_m2_kgce``); not changed.
    value : str
        Numeric column tested.
    group : str or sequence of str or None
        Peer-group column(s) (e.g. ``["sector", "subsector"]``); None for one group.
    max_outliers_share : float, default 0.1
        Upper bound r of each group's outliers as a share of its tested values n:
        r = ⌊share · n⌋ (at most n − 2). In (0, 0.5].
    alpha : float, default 0.05
        Significance level of each group's test.
    log : bool, default True
        Test the natural log of the values (energy data are roughly lognormal; a unit slip
        ×10ⁿ is then a shift of n·ln 10). Values ≤ 0 cannot be logged and are not tested.
    min_group_size : int, default 25
        Fewest tested values for a group to be tested (:data:`ESD_MIN_GROUP_SIZE`).

    Returns
    -------
    polars.DataFrame or polars.LazyFrame
        The kind of frame given, same rows in the same order, its columns unchanged followed by
        :data:`ESD_COLUMNS` (an existing column of that name is replaced):

        - ``esd_n`` (Int64): values tested in the row's group (finite, and > 0 when ``log``);
        - ``esd_statistic`` (Float64): R_i of the step at which this row was removed as the
          most extreme value left; null for rows not among the group's r candidates;
        - ``esd_critical_value`` (Float64): λ_i of that step; null likewise;
        - ``esd_is_outlier`` (Boolean): True for the group's outliers (the first k candidates,
          k the largest i with R_i > λ_i), False for the other rows of a tested group, null
          where not tested (value null, not finite or ≤ 0 with ``log``; group smaller than
          ``min_group_size`` or with r < 1).

    Raises
    ------
    UnusableInputError
        If a column is missing or ``value`` is not numeric.
    SettingsError
        If ``max_outliers_share`` is not in (0, 0.5], ``alpha`` not in (0, 1) or
        ``min_group_size`` < 3.

    Notes
    -----
    Vectorised per group: the values are sorted once per group and each removal step is O(1)
    (running sums), so a group of n values costs O(n log n + r). The test runs inside one
    polars ``map_batches`` over the whole column, so a LazyFrame stays lazy. Rosner [1]_
    assumes the values without outliers are normal: on raw energy figures (right-skewed) use
    ``log=True``, or the largest legitimate consumers will be flagged.

    Examples
    --------
    >>> import numpy as np, polars as pl
    >>> kwh = np.exp(np.random.default_rng(1).normal(11.0, 0.4, 40))
    >>> kwh[7] *= 1000.0  # a unit slip
    >>> frame = pl.DataFrame({"sector": ["school"] * 40, "kwh": kwh})
    >>> out = generalized_esd_by_group(frame, "kwh", "sector")
    >>> out["esd_is_outlier"].arg_true().to_list()
    [7]
    """
    keys = [group] if isinstance(group, str) else list(group or [])
    lazy = frame.lazy()
    schema = lazy.collect_schema()
    missing = [c for c in (*keys, value) if c not in schema]
    if missing:
        raise UnusableInputError(
            f"ESD 检验的数据缺少列 {'、'.join(missing)}",
            f"frame for the ESD test lacks column(s) {', '.join(missing)}",
        )
    if not (schema[value].is_numeric() or schema[value] == pl.Null):
        raise UnusableInputError(
            f"ESD 检验的数值列 {value}（{schema[value]}）应为数值类型",
            f"ESD value column {value} ({schema[value]}) must be numeric",
        )
    if not (isinstance(max_outliers_share, int | float) and 0.0 < max_outliers_share <= 0.5):
        raise SettingsError(
            f"max_outliers_share 应在 (0, 0.5] 区间内，而不是 {max_outliers_share!r}",
            f"max_outliers_share must be in (0, 0.5], not {max_outliers_share!r}",
        )
    _check_alpha(alpha)
    _check_count("min_group_size", min_group_size, 3)
    fields = [pl.col(k).alias(f"__k{i}") for i, k in enumerate(keys)]
    rows = pl.struct(*fields, pl.col(value).cast(pl.Float64).alias("__v"))
    esd = rows.map_batches(
        lambda s: _esd_groups(
            s,
            n_keys=len(keys),
            share=float(max_outliers_share),
            alpha=float(alpha),
            log=log,
            min_size=min_group_size,
        ),
        return_dtype=_ESD_STRUCT,
    ).alias("__esd")
    names = [c for c in schema.names() if c not in ESD_COLUMNS]
    out = lazy.select(*names, esd).unnest("__esd")
    return out.collect() if isinstance(frame, pl.DataFrame) else out
