"""Robust peer scores: median and MAD within peer groups, small groups borrowing from their parent.

Each return is compared with its peers (institutions of the same sector and subsector, say) on the
log scale, where energy and water use are roughly normal and a unit slip is a shift (÷10,000 for
万千瓦时 under 千瓦时 is −9.21 on the natural log scale). Centre and spread are the median and the
median absolute deviation (MAD), which a minority of wrong figures cannot drag along; the signed
score is the robust z of Iglewicz & Hoaglin (1993) and the usual cut-off is 3.5.

Peer groups form a hierarchy, finest first (``[["sector", "subsector"], ["sector"], []]``): a
return whose finest group is too small to give a stable median and MAD uses the next coarser
group's ("borrowing strength"), and the output says which level it used.

References
----------
.. [1] B. Iglewicz and D. C. Hoaglin, *How to Detect and Handle Outliers*, ASQC Basic References
   in Quality Control vol. 16, Milwaukee: ASQC Quality Press, 1993.
.. [2] P. J. Rousseeuw and C. Croux, "Alternatives to the median absolute deviation", *Journal of
   the American Statistical Association* 88(424), 1273-1283, 1993.
   :doi:`10.1080/01621459.1993.10476408`
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

import numpy as np
import numpy.typing as npt
import polars as pl
from scipy import special

from energy_audit.errors import SettingsError, UnusableInputError

__all__ = [
    "DEFAULT_K",
    "DEFAULT_MIN_GROUP_SIZE",
    "DEFAULT_MIN_SCALE",
    "MAD_TO_SIGMA",
    "PEER_COLUMNS",
    "robust_peer_scores",
]

FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)

MAD_TO_SIGMA: Final = 1.482602218505602
"""Factor making the MAD a consistent estimator of σ for normal data: 1 / Φ⁻¹(3/4) ≈ 1.4826
(Rousseeuw & Croux 1993)."""

DEFAULT_K: Final = 3.5
"""Robust-z cut-off of the peer range: |score| > 3.5 is a potential outlier (Iglewicz & Hoaglin
1993, for the modified z-score)."""

DEFAULT_MIN_GROUP_SIZE: Final = 10
"""Fewest valid values a peer group needs to give its own median and MAD [values]."""

DEFAULT_MIN_SCALE: Final = 0.05
"""Floor of the peer scale: 0.05 on the natural log scale, i.e. a spread of about 5 % of the
value (with ``log=False``: 5 % of the group's absolute median). A choice of this library, not a
published value: real peer groups of public institutions spread far more (0.3-0.6 on the log
scale), so the floor only acts where most peers report the same figure (MAD = 0)."""

PEER_COLUMNS: Final = ("median", "scale", "n", "level", "score", "low", "high", "p")
"""Columns :func:`robust_peer_scores` adds, after the prefix, in order."""

_TMP: Final = "__peer_tmp_"


# --------------------------------------------------------------------------------------------
# Group medians (shared with energy_audit.outliers.yoy)


@dataclass(frozen=True)
class _Groups:
    """The rows of a frame by group of some key columns; a row with a null key is in none."""

    codes: npt.NDArray[np.int64]
    """Per row: its group, −1 for none."""
    order: npt.NDArray[np.int64]
    """The rows in a group, group by group (group g is ``order[offsets[g]:offsets[g + 1]]``)."""
    offsets: npt.NDArray[np.int64]

    @property
    def size(self) -> int:
        """Number of groups."""
        return self.offsets.size - 1

    def rows(self, g: int) -> npt.NDArray[np.int64]:
        """Return the rows of group ``g``, in the frame's order."""
        return self.order[self.offsets[g] : self.offsets[g + 1]]

    @functools.cached_property
    def _index(self) -> pl.Series:
        index = pl.Series(self.codes).cast(pl.get_index_type(), strict=False)  # −1: null
        return index

    def per_row(self, name: str, values: pl.Series) -> pl.Series:
        """Each row's value of its group in ``values`` (one per group; null: no group)."""
        return values.gather(self._index).alias(name)


def _groups(frame: pl.DataFrame, keys: Sequence[str]) -> _Groups:
    """Group the rows of ``frame`` by ``keys`` (``[]``: one group of all rows); one hash pass."""
    n = frame.height
    if not keys:
        return _Groups(np.zeros(n, np.int64), np.arange(n, dtype=np.int64), np.array([0, n]))
    table = (
        frame.select(keys)
        .with_row_index("__ea_i")
        .filter(pl.all_horizontal(pl.col(k).is_not_null() for k in keys))
        .group_by(keys)
        .agg("__ea_i")
    )
    sizes = table["__ea_i"].list.len().to_numpy().astype(np.int64)
    order = table["__ea_i"].explode().to_numpy().astype(np.int64)
    codes = np.full(n, -1, dtype=np.int64)
    codes[order] = np.repeat(np.arange(sizes.size, dtype=np.int64), sizes)
    return _Groups(codes, order, np.concatenate([[0], np.cumsum(sizes)]))


_SELECT_DIRECT: Final = 65_536
"""Fewer values than this are partitioned whole (:func:`middle_pair`)."""


def middle_pair(values: npt.NDArray[np.float64]) -> tuple[float, float]:
    """Return the order statistics k and k + 1 (k = ⌊(n − 1) / 2⌋, 0-based) of ``values``.

    The middle value twice when n is odd, the middle pair when n is even, NaN sorted last (as
    :func:`numpy.partition` and polars sort it). Exact: a strided sample brackets the middle,
    one pass counts the values below and keeps those inside the bracket, and only those are
    partitioned; when the bracket misses the middle, the whole array is partitioned.
    """
    n = values.size
    k = (n - 1) // 2
    odd = n % 2 == 1
    if n >= _SELECT_DIRECT:
        step = max(1, n // 16_384)
        sample = np.sort(values[::step])
        m = sample.size
        margin = int(4.0 * math.sqrt(m)) + 2  # about 8 standard errors of the sample rank
        low = sample[max(0, m // 2 - margin)]
        high = sample[min(m - 1, m // 2 + margin)]
        if not (np.isnan(low) or np.isnan(high)):
            below = int(np.count_nonzero(values < low))
            inside = values[(values >= low) & (values <= high)]
            last = k if odd else k + 1
            if below <= k and last < below + inside.size:
                pair = np.partition(inside, [k - below, last - below])
                return float(pair[k - below]), float(pair[last - below])
    part = np.partition(values, k)
    if odd:
        return float(part[k]), float(part[k])
    if np.isnan(part[-1]):  # NaN above the middle: the pair by a second partition
        part = np.partition(values, [k, k + 1])
        return float(part[k]), float(part[k + 1])
    return float(part[k]), float(part[k + 1 :].min())


def _median(values: npt.NDArray[np.float64]) -> float:
    """Median as polars computes it: lo + (hi − lo) / 2 of the middle pair, NaN sorted last."""
    if values.size == 0:
        return math.nan
    lo, hi = middle_pair(values)
    return lo if values.size % 2 else lo + (hi - lo) * 0.5


def _median_mad(
    groups: _Groups, values: npt.NDArray[np.float64], present: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Count, median and MAD (median of |x − median|) of the ``present`` values of each group.

    The numbers of ``pl.col(x).count()``, ``.median()`` and ``(x − median).abs().median()``
    in a ``group_by`` (NaN where a group has no value), from a partition per group instead
    of a sort.
    """
    count = np.zeros(groups.size, dtype=np.int64)
    median = np.full(groups.size, np.nan)
    mad = np.full(groups.size, np.nan)
    whole = groups.size == 1 and groups.order.size == values.size
    for g in range(groups.size):
        if whole:
            x = values[present]
        else:
            rows = groups.rows(g)
            x = values[rows[present[rows]]]
        count[g] = x.size
        if x.size:
            median[g] = _median(x)
            mad[g] = _median(np.abs(x - median[g]))
    return count, median, mad


def _as_levels(groups: Sequence[str | Sequence[str]]) -> list[list[str]]:
    if isinstance(groups, str):
        raise SettingsError(
            f"groups 应为分组层级的序列（例如 [[{groups!r}], []]），而不是字符串 {groups!r}",
            f"groups must be a sequence of levels (e.g. [[{groups!r}], []]), not the string "
            f"{groups!r}",
        )
    levels = [[g] if isinstance(g, str) else list(g) for g in groups]
    if not levels:
        raise SettingsError(
            "groups 至少应包含一个分组层级（[] 表示全部行为一组）",
            "groups must name at least one level ([] for all rows)",
        )
    return levels


def _check(
    schema: pl.Schema, value: str, levels: Sequence[Sequence[str]], min_group_size: int, k: float
) -> None:
    if value not in schema:
        raise UnusableInputError(
            f"输入数据缺少要评分的数值列 {value!r}",
            f"frame lacks the value column {value!r} to score",
        )
    if not (schema[value].is_numeric() or schema[value] == pl.Null):
        raise UnusableInputError(
            f"数值列 {value!r} 应为数值类型，而不是 {schema[value]}",
            f"value column {value!r} must be numeric, not {schema[value]}",
        )
    missing = sorted({c for level in levels for c in level if c not in schema})
    if missing:
        raise UnusableInputError(
            f"输入数据缺少同类分组列 {'、'.join(missing)}",
            f"frame lacks peer-group column(s) {', '.join(missing)}",
        )
    if min_group_size < 1:
        raise SettingsError(
            f"min_group_size 至少应为 1，而不是 {min_group_size}",
            f"min_group_size must be at least 1, not {min_group_size}",
        )
    if not k > 0:
        raise SettingsError(f"k 应为正数，而不是 {k}", f"k must be positive, not {k}")


def _two_sided_normal_p(z: pl.Series) -> pl.Series:
    """Two-sided p-value 2·Φ(−|z|) of standard-normal scores (null stays null)."""
    values = z.cast(pl.Float64).to_numpy()
    return pl.Series(z.name, 2.0 * special.ndtr(-np.abs(values)), dtype=pl.Float64).fill_nan(None)


def robust_peer_scores(
    frame: FrameT,
    value: str,
    groups: Sequence[str | Sequence[str]],
    *,
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
    log: bool = True,
    k: float = DEFAULT_K,
    min_scale: float = DEFAULT_MIN_SCALE,
    prefix: str = "peer_",
) -> FrameT:
    r"""Score each value against the median and MAD of its peer group (robust z, log scale).

    Parameters
    ----------
    frame : polars.DataFrame or polars.LazyFrame
        One row per return. Not changed.
    value : str
        Numeric column to score, e.g. ``energy_per_m2_kgce`` [kgce/m²] or ``total_energy_tce``
        [tce]; any unit (the scores have none).
    groups : sequence of (str or sequence of str)
        Peer-group levels, finest first, each the column(s) defining a group, e.g.
        ``[["sector", "subsector"], ["sector"], []]``; ``[]`` is one group of all rows.
    min_group_size : int, default 10
        Fewest valid values [values] a group needs for its own statistics; a row whose group at
        one level has fewer uses the next coarser level ("borrowing strength").
    log : bool, default True
        Work on the natural log of the value (relative deviations; the usual choice for
        consumption, which is skewed and positive). ``False`` works on the value itself.
    k : float, default 3.5
        Robust-z cut-off of the peer range ``low``-``high`` (Iglewicz & Hoaglin 1993 [1]_).
    min_scale : float, default 0.05
        Floor of the scale (see :data:`DEFAULT_MIN_SCALE`): on the log scale the scale is at
        least ``min_scale`` (a relative spread of about ``min_scale``); with ``log=False`` at
        least ``min_scale`` × |group median|.
    prefix : str, default "peer_"
        Prefix of the added columns.

    Returns
    -------
    polars.DataFrame or polars.LazyFrame
        The kind of frame given: its columns (a column with the name of an added one is
        replaced), then, in order:

        - ``<prefix>median`` (Float64): the peer median, in the value's units; with ``log=True``
          exp of the median of log values (for an even count, the geometric mean of the two
          middle values).
        - ``<prefix>scale`` (Float64): 1.4826 × MAD, floored at ``min_scale`` (on the natural
          log scale when ``log=True``, else in the value's units).
        - ``<prefix>n`` (Int64): number of valid values in the peer group used [values].
        - ``<prefix>level`` (Int64): index in ``groups`` of the level used (0 = finest).
        - ``<prefix>score`` (Float64): signed robust z = (log v − log median) / scale
          (or (v − median) / scale).
        - ``<prefix>low``, ``<prefix>high`` (Float64): median · exp(∓k · scale) (or
          median ∓ k · scale), in the value's units: the range where |score| ≤ k.
        - ``<prefix>p`` (Float64): two-sided p-value of the score under the normal
          approximation, 2 · Φ(−|score|).

    Raises
    ------
    UnusableInputError
        If ``value`` or a group column is missing, or ``value`` is not numeric.
    SettingsError
        If ``groups`` is empty or a string, ``min_group_size`` < 1 or ``k`` ≤ 0.

    Notes
    -----
    For each level a group's statistics use its *valid* values: finite, and > 0 when ``log``.
    With the logs (or values) :math:`x_i` of a group, :math:`m = \operatorname{median}(x_i)`,
    :math:`\mathrm{MAD} = \operatorname{median}|x_i - m|` and
    :math:`s = \max(1.4826\,\mathrm{MAD},\ \text{floor})`; the score of a valid value is
    :math:`z = (x - m)/s`, the modified z-score of Iglewicz & Hoaglin [1]_ (they write it
    :math:`0.6745 (x - m)/\mathrm{MAD}`, the same number before the floor). 1.4826 makes the
    MAD consistent for σ at the normal distribution; Rousseeuw & Croux [2]_ discuss the MAD's
    50 % breakdown point and efficiency.

    Each row takes the statistics of the finest level whose group has at least
    ``min_group_size`` valid values. A row with a null in a level's group column(s) belongs to
    no group at that level (null is not a peer group) and borrows from the next. Where no level
    qualifies, all added columns of the row are null.

    Rows whose value is null, non-finite or (with ``log``) ≤ 0 take no part in the statistics;
    they still get their group's median, scale, n, level and range, but a null score and p
    (the log is undefined: never an error). The floor keeps a group whose values are mostly
    identical (MAD = 0) from giving infinite scores; with ``log=False`` a group whose median
    and MAD are both 0 has scale 0 and null scores.

    Vectorised, no Python code per row: per level one hash pass groups the rows, a selection
    per group gives its median and MAD (the numbers of a polars ``group_by``) and a gather
    gives each row its group's (no join); the p-value is :func:`scipy.special.ndtr` on whole
    columns. A LazyFrame is collected first and the result returned lazy.

    References
    ----------
    .. [1] B. Iglewicz and D. C. Hoaglin, *How to Detect and Handle Outliers*, ASQC Quality
       Press, 1993.
    .. [2] P. J. Rousseeuw and C. Croux, "Alternatives to the median absolute deviation",
       *JASA* 88(424), 1273-1283, 1993.

    Examples
    --------
    Ten plausible electricity figures and one typed ×1000:

    >>> import polars as pl
    >>> kwh = [80, 85, 90, 95, 105, 110, 115, 120, 125, 130, 100_000]
    >>> out = robust_peer_scores(pl.DataFrame({"kwh": kwh}), "kwh", [[]])
    >>> round(out["peer_median"][0], 6), out["peer_n"][0], out["peer_level"][0]
    (110.0, 11, 0)
    >>> [round(z, 1) for z in out["peer_score"]]
    [-1.5, -1.2, -0.9, -0.7, -0.2, 0.0, 0.2, 0.4, 0.6, 0.8, 31.3]
    """
    levels = _as_levels(groups)
    lazy = frame.lazy()
    schema = lazy.collect_schema()
    _check(schema, value, levels, min_group_size, k)
    names = {c: f"{prefix}{c}" for c in PEER_COLUMNS}

    data = frame if isinstance(frame, pl.DataFrame) else lazy.collect()
    v = pl.col(value).cast(pl.Float64)
    valid = v.is_finite() & (v > 0.0) if log else v.is_finite()
    x = f"{_TMP}x"
    logs = data.select(pl.when(valid).then(v.log() if log else v).alias(x)).to_series()
    present, values = logs.is_not_null().to_numpy(), logs.to_numpy()
    stats = [logs]
    for i, keys in enumerate(levels):
        groups = _groups(data, keys)
        count, median, mad = _median_mad(groups, values, present)
        missing = pl.Series(count == 0) if keys else pl.Series(np.zeros(count.size, bool))
        # a group without a valid value has no statistics at all
        per_group = {
            "n": pl.Series(count, dtype=pl.Int64).set(missing, None),
            "m": pl.Series(median).fill_nan(None),
            "mad": pl.Series(mad).fill_nan(None),
        }
        stats += [groups.per_row(f"{_TMP}{s}_{i}", v) for s, v in per_group.items()]
    base = data.with_columns(stats).lazy()

    def level_value(stat: str) -> pl.Expr:
        """Give the statistic of the level each row uses (null where none qualifies)."""
        chain = None
        for i in range(len(levels)):
            enough = pl.col(f"{_TMP}n_{i}") >= min_group_size
            then = pl.lit(i, dtype=pl.Int64) if stat == "level" else pl.col(f"{_TMP}{stat}_{i}")
            chain = pl.when(enough).then(then) if chain is None else chain.when(enough).then(then)
        assert chain is not None
        return chain.otherwise(None)

    m, s, z = f"{_TMP}m", f"{_TMP}s", f"{_TMP}z"
    floor = pl.lit(min_scale) if log else min_scale * pl.col(m).abs()
    base = base.with_columns(
        level_value("m").alias(m),
        level_value("mad").alias(f"{_TMP}mad"),
        level_value("n").alias(names["n"]),
        level_value("level").alias(names["level"]),
    ).with_columns(
        pl.when(pl.col(f"{_TMP}mad").is_not_null())
        .then(pl.max_horizontal(MAD_TO_SIGMA * pl.col(f"{_TMP}mad"), floor))
        .alias(s)
    )
    scaled = pl.when(pl.col(s) > 0).then((pl.col(x) - pl.col(m)) / pl.col(s))
    base = base.with_columns(scaled.alias(z))
    if log:
        centre = pl.col(m).exp()
        low, high = (pl.col(m) - k * pl.col(s)).exp(), (pl.col(m) + k * pl.col(s)).exp()
    else:
        centre = pl.col(m)
        low, high = pl.col(m) - k * pl.col(s), pl.col(m) + k * pl.col(s)
    added = {
        "median": centre,
        "scale": pl.col(s),
        "n": pl.col(names["n"]),
        "level": pl.col(names["level"]),
        "score": pl.col(z),
        "low": low,
        "high": high,
        "p": pl.col(z).map_batches(
            _two_sided_normal_p, return_dtype=pl.Float64, is_elementwise=True
        ),
    }
    kept = [c for c in schema.names() if c not in names.values()]
    out = base.select(*kept, *(expr.alias(names[c]) for c, expr in added.items()))
    return out.collect() if isinstance(frame, pl.DataFrame) else out
