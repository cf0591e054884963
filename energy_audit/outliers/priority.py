"""Ranking across methods: combine p-values per return, control the false-discovery rate.

Each statistical method gives a p-value per return and item (how surprising the figure is under
its model). The panel needs one order across methods and a way to say "everything above a
false-discovery rate q":

1. :func:`cauchy_combination` combines the p-values of the methods that looked at one return.
   The methods are dependent (they see the same figures), which Fisher's or Stouffer's methods
   assume away; the Cauchy combination test stays valid under arbitrary dependence for small
   p-values (Liu & Xie 2020). A return hit by several methods gets a smaller combined p and so
   ranks higher.
2. :func:`benjamini_hochberg` turns the combined p-values of all returns into q-values
   (Benjamini & Hochberg 1995): keeping every return with q ≤ 0.05 keeps a set in which at most
   about 5 % are expected to be false alarms.
3. :func:`priority_from_p` maps a combined p to a priority in [0, 1], monotone and without
   ties where p differs (1 − p is 1 in floating point below 10⁻¹⁶), so sorting by priority is
   sorting by evidence.

References
----------
.. [1] Liu, Y. and Xie, J. (2020). Cauchy combination test: a powerful test with analytic
   p-value calculation under arbitrary dependency structures. Journal of the American
   Statistical Association 115(529), 393-402.
.. [2] Benjamini, Y. and Hochberg, Y. (1995). Controlling the false discovery rate: a practical
   and powerful approach to multiple testing. J. R. Statist. Soc. B 57(1), 289-300.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, TypeVar

import numpy as np
import numpy.typing as npt
import polars as pl
from scipy import stats

FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)

_P_FLOOR = 1e-300
"""Smallest p-value used: tan((0.5 − p)π) overflows at p = 0."""


def cauchy_combination(
    p_values: Sequence[float] | npt.ArrayLike, weights: Sequence[float] | None = None
) -> float:
    """Combine dependent p-values with the Cauchy combination test [1]_.

    T = Σ wᵢ tan((0.5 − pᵢ)π) with Σ wᵢ = 1, and p = 0.5 − arctan(T)/π.

    Parameters
    ----------
    p_values : sequence of float
        p-values in (0, 1]; nulls/NaN are ignored.
    weights : sequence of float, optional
        Non-negative weights (default equal), normalised to sum 1.

    Returns
    -------
    float
        The combined p-value (NaN when no p-value is given).

    Examples
    --------
    >>> round(cauchy_combination([0.01]), 6)
    0.01
    >>> cauchy_combination([0.01, 0.01]) < 0.011
    True
    """
    p = np.asarray(p_values, dtype=float)
    w = np.ones_like(p) if weights is None else np.asarray(weights, dtype=float)
    keep = np.isfinite(p)
    p, w = p[keep], w[keep]
    if p.size == 0 or w.sum() <= 0:
        return float("nan")
    w = w / w.sum()
    p = np.clip(p, _P_FLOOR, 1.0)
    t = float(np.sum(w / np.tan(p * np.pi)))  # tan((0.5 − p)π) = cot(pπ), exact for tiny p
    return float(np.arctan(1.0 / t) / np.pi if t > 1.0 else 0.5 - np.arctan(t) / np.pi)


def cauchy_combination_by(
    frame: FrameT, p: str, by: Sequence[str], weight: str | None = None
) -> FrameT:
    """Combine the p-values of column ``p`` within each group of ``by`` (vectorised).

    Parameters
    ----------
    frame : polars.DataFrame or polars.LazyFrame
        One row per method and return (long format); not changed.
    p : str
        Column of p-values.
    by : sequence of str
        Columns identifying a return (e.g. ``institution_id``, ``year``).
    weight : str, optional
        Column of non-negative weights (default: equal), normalised to sum 1 within each
        group over the rows with a p-value. A p-value pᵢ of weight wᵢ then counts about as
        pᵢ / wᵢ (for small pᵢ, the combined p ≈ min pᵢ / wᵢ: a weighted Bonferroni bound).

    Returns
    -------
    polars.DataFrame or polars.LazyFrame
        The kind of frame given, one row per group with a p-value (in order of first
        appearance): the ``by`` columns, ``methods`` (p-values combined) and ``p_combined``.

    Notes
    -----
    A DataFrame whose groups are integer and text columns without nulls, with at most
    about four times as many possible groups as rows (e.g. a return index and a method
    name), is combined by tabulation: each group is one integer code, its sums run over its
    rows in row order (:func:`numpy.bincount`, the same bits on every run), about twice as
    fast as a hash ``group_by``. Other frames, and LazyFrames, go through ``group_by``, whose
    sums may round differently in the last bits.
    """
    clipped = pl.col(p).clip(_P_FLOOR, 1.0)
    term = 1.0 / (clipped * np.pi).tan()  # tan((0.5 − p)π) = cot(pπ), exact for tiny p
    ones = pl.col(p).is_not_null().cast(pl.Float64)  # one per p-value
    w = ones if weight is None else pl.col(weight).cast(pl.Float64).fill_null(0.0)
    keep = pl.col(p).is_not_null() & pl.col(p).is_not_nan()
    if weight is not None:
        keep = keep & (w > 0)
    if isinstance(frame, pl.DataFrame):
        codes = _dense_codes(frame, by)
        if codes is not None:
            return _combine_dense(frame, by, codes, keep, term * w, w)
    return (
        frame.lazy()
        .filter(keep)
        .group_by(by, maintain_order=True)
        .agg(
            pl.len().alias("methods"),
            ((term * w).sum() / w.sum()).alias("_t"),
        )
        .with_columns(_combined_p())
        .drop("_t")
        .pipe(lambda out: out.collect() if isinstance(frame, pl.DataFrame) else out)
    )


def _combined_p() -> pl.Expr:
    """Give the p-value of the Cauchy statistic ``_t``: 0.5 − arctan(T)/π (arctan(1/T)/π, T > 1)."""
    return (
        pl.when(pl.col("_t") > 1.0)
        .then((1.0 / pl.col("_t")).arctan() / np.pi)  # exact for tiny p
        .otherwise(0.5 - pl.col("_t").arctan() / np.pi)
        .alias("p_combined")
    )


_DENSE_FACTOR: Final = 4
"""A key space at most this many times the rows (or 2²⁰) is tabulated, not hashed."""


def _dense_codes(
    frame: pl.DataFrame, by: Sequence[str]
) -> tuple[npt.NDArray[np.int64], int] | None:
    """Code each row's group of ``by`` as one integer in a small range, if it fits.

    Integer columns count from their minimum, enum columns by their categories, text columns
    by their distinct values (in blocks) or their dense ranks; the codes combine in mixed
    radix. ``None`` when a column has nulls or another dtype, or the key space is more than
    :data:`_DENSE_FACTOR` times the rows (then hash the groups).
    """
    n = frame.height
    key: npt.NDArray[np.int64] | None = None
    size = 1
    for column in by:
        values = frame[column]
        if values.null_count():
            return None
        if values.dtype.is_integer():
            low = int(values.min()) if n else 0  # type: ignore[arg-type]
            span = int(values.max()) - low + 1 if n else 1  # type: ignore[operator]
            code = values.to_numpy().astype(np.int64) - low
        elif isinstance(values.dtype, pl.Enum):  # its categories' indices
            code = values.to_physical().cast(pl.Int64).to_numpy()
            span = max(len(values.dtype.categories), 1)
        elif values.dtype in (pl.String, pl.Categorical):
            text = values.cast(pl.String)
            runs = text.rle().struct.unnest()  # long frames are often in blocks of one value
            if runs.height <= n // 8:
                levels = runs["value"].unique()
                run_code = runs["value"].cast(pl.Enum(levels.to_list())).to_physical()
                code = np.repeat(run_code.to_numpy().astype(np.int64), runs["len"].to_numpy())
                span = max(levels.len(), 1)
            else:  # many values (a key per return): their dense ranks, no enum of them all
                code = text.rank("dense").cast(pl.Int64).to_numpy() - 1
                span = int(code.max()) + 1 if n else 1
        else:
            return None
        if size * span > max(_DENSE_FACTOR * n, 1 << 20):
            return None
        key = code if key is None else key * span + code
        size *= span
    return (np.zeros(n, dtype=np.int64) if key is None else key), size


def _combine_dense(
    frame: pl.DataFrame,
    by: Sequence[str],
    codes: tuple[npt.NDArray[np.int64], int],
    keep: pl.Expr,
    weighted_term: pl.Expr,
    w: pl.Expr,
) -> pl.DataFrame:
    """:func:`cauchy_combination_by` by tabulation: sums per group code, in row order.

    The terms and weights are those of the polars expressions; each group's sums run over
    its rows in order (:func:`numpy.bincount`), the same on every run.
    """
    key, size = codes
    parts = frame.select(keep.alias("k"), weighted_term.alias("tw"), w.alias("w"))
    kept = parts["k"].fill_null(False).to_numpy()
    rows = None if kept.all() else np.flatnonzero(kept)
    tw, w_ = parts["tw"].to_numpy(), parts["w"].to_numpy()
    if rows is not None:
        key, tw, w_ = key[rows], tw[rows], w_[rows]
    count = np.bincount(key, minlength=size)
    numerator = np.bincount(key, tw, minlength=size)
    denominator = np.bincount(key, w_, minlength=size)
    if key.size and bool(np.all(key[1:] >= key[:-1])):  # sorted: groups are runs
        at = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    else:
        first = np.full(size, key.size, dtype=np.int64)
        np.minimum.at(first, key, np.arange(key.size, dtype=np.int64))
        starts = np.zeros(key.size, dtype=bool)
        starts[first[count > 0]] = True
        at = np.flatnonzero(starts)  # each group's first row, in order of appearance
    group = key[at]
    with np.errstate(invalid="ignore", divide="ignore"):
        t = numerator[group] / denominator[group]
    return (
        frame.select(by)[at if rows is None else rows[at]]
        .with_columns(
            pl.Series("methods", count[group], dtype=pl.UInt32),
            pl.Series("_t", t, dtype=pl.Float64),
        )
        .with_columns(_combined_p())
        .drop("_t")
    )


def benjamini_hochberg(p_values: Sequence[float] | npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Return Benjamini-Hochberg q-values (adjusted p-values) [2]_.

    Parameters
    ----------
    p_values : sequence of float
        p-values in [0, 1]; NaN stays NaN and does not count in the number of tests.

    Returns
    -------
    numpy.ndarray
        q-values, same order; q ≤ q₀ selects a set with false-discovery rate ≤ q₀ (for
        independent or positively dependent tests).

    Examples
    --------
    >>> benjamini_hochberg([0.01, 0.04, 0.03, 0.005]).round(3).tolist()
    [0.02, 0.04, 0.04, 0.02]
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    keep = np.isfinite(p)
    if keep.any():
        out[keep] = stats.false_discovery_control(p[keep], method="bh")
    return out


_PRIORITY_SCALE: Final = 3.0
"""s₀ of :func:`priority_from_p`: a return at p = 10⁻³ has priority 0.5."""


def priority_from_p(p: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Return the priority [0-1] of returns with combined p-values ``p``, in the order of p.

    priority = s / (s + s₀), s = −log₁₀ p (p floored at 10⁻³⁰⁰), s₀ = 3: p = 0.05 → 0.30,
    10⁻³ → 0.50, 10⁻⁶ → 0.67, 10⁻²⁷ → 0.90; null or NaN → 0. Monotone and without ties where
    p differs, also far below 10⁻¹⁶ (where 1 − p is 1 in floating point).
    """
    values = np.asarray(p, dtype=np.float64)
    s = -np.log10(np.clip(values, 1e-300, 1.0))
    out = s / (s + _PRIORITY_SCALE)
    return np.where(np.isfinite(values), out, 0.0)
