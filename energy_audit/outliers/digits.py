"""Digit tests for batches of made-up figures: Benford's first-two digits and last-digit uniformity.

Both tests look at a batch of figures at once (a district's or a parent body's returns), never at
one return: a made-up figure is unremarkable alone, but a batch of them leaves traces in the digits.

- :func:`benford_first_two` / :func:`benford_by_group`: the first-two digits test (10-99) against
  Benford's law with Nigrini's mean absolute deviation (MAD) and his conformity ranges
  (:data:`NIGRINI_FIRST_TWO_MAD`), plus Pearson's chi-square and the most over-represented digit
  pairs (Nigrini's Z-statistic).
- :func:`last_digit_uniformity` / :func:`last_digit_by_group`: Pearson's chi-square test that the
  last digit of the integer part is uniform on 0-9; invented or estimated figures end in 0 and 5
  too often.

Choices made here:

- Values below 10 (first-two test) or below ``min_value`` (last-digit test, default 100),
  negative values and NaN/inf are left out and counted in ``n_excluded``; nulls ("not reported")
  are not values and are neither tested nor counted.
- A batch smaller than ``min_count`` gets its descriptive figures (counts, MAD) but no verdict:
  conformity ``"insufficient data"`` and null chi-square and p-value, so that a p-value handed on
  to a false-discovery-rate procedure is always a valid one.
- Digits are those of the value as stored (float64). Apply the tests to the figures as the
  institution reported them, before any unit conversion: converting 万千瓦时 to kWh (× 10⁴)
  appends zeros and moves nothing in the first two digits but everything in the last one.

References
----------
.. [1] Nigrini, M. J. (2012). *Benford's Law: Applications for Forensic Accounting, Auditing,
   and Fraud Detection*. Hoboken, NJ: John Wiley & Sons. (MAD conformity ranges, Table 7.1;
   Z-statistic; first-two digits test.)
.. [2] Benford, F. (1938). The law of anomalous numbers. *Proceedings of the American
   Philosophical Society*, 78(4), 551-572.
.. [3] Barney, B. J., & Schulzke, K. S. (2016). Moderating "cry wolf" events with excess MAD in
   Benford's law research and practice. *Journal of Forensic Accounting Research*, 1(1).
.. [4] Nigrini, M. J. (2011). *Forensic Analytics: Methods and Techniques for Forensic
   Accounting Investigations*. Hoboken, NJ: John Wiley & Sons. Chapter 8, the last-two digits
   test (invented numbers and excessive rounding).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple

import numpy as np
import polars as pl
from scipy import stats

from energy_audit.errors import SettingsError, UnusableInputError

FIRST_TWO_DIGITS: Final = np.arange(10, 100)
"""The 90 first-two digit combinations 10, 11, …, 99."""

BENFORD_FIRST_TWO_P: Final = np.log10(1.0 + 1.0 / FIRST_TWO_DIGITS)
"""Benford's probability of each first-two digit combination d: P(d) = log10(1 + 1/d) [2]_."""


class MadRange(NamedTuple):
    """One conformity class of the MAD test: ``mad_above`` < MAD ≤ ``mad_up_to``."""

    conformity: str
    mad_above: float
    mad_up_to: float


NIGRINI_FIRST_TWO_MAD: Final[tuple[MadRange, ...]] = (
    MadRange("close conformity", 0.0, 0.0012),
    MadRange("acceptable conformity", 0.0012, 0.0018),
    MadRange("marginally acceptable conformity", 0.0018, 0.0022),
    MadRange("nonconformity", 0.0022, math.inf),
)
"""Nigrini's MAD conformity ranges for the first-two digits test, in order.

A MAD of exactly 0.0012 is "close conformity" (each class includes its upper bound).
"""

NIGRINI_FIRST_TWO_MAD_SOURCE: Final = (
    "Nigrini, M. J. (2012). Benford's Law: Applications for Forensic Accounting, Auditing, and "
    "Fraud Detection. Wiley. Table 7.1, first-two digits row: close conformity 0.0000-0.0012, "
    "acceptable 0.0012-0.0018, marginally acceptable 0.0018-0.0022, nonconformity > 0.0022."
)
"""Where :data:`NIGRINI_FIRST_TWO_MAD` comes from."""

INSUFFICIENT_DATA: Final = "insufficient data"
"""Conformity given to a batch with fewer than ``min_count`` values: no verdict."""

BENFORD_MIN_COUNT: Final = 1000
"""Default fewest values for a first-two digits verdict: the order of size (about 1,000 records
or more) that Nigrini [1]_ asks of a data set for the first-two digits test.

Even at 1,000 values an exactly Benford sample has an expected MAD of about 0.0025, in
"nonconformity" by chance alone; below about 4,400 values its expected MAD is above 0.0012 (see
``expected_mean_abs_deviation`` and the Notes of :func:`benford_by_group`).
"""

BENFORD_TOP: Final = 3
"""Default number of over-represented digit pairs reported per batch."""

LAST_DIGIT_MIN_VALUE: Final = 100.0
"""Default smallest value whose last digit is tested (see :func:`last_digit_uniformity`)."""

LAST_DIGIT_MIN_COUNT: Final = 50
"""Default fewest values for a last-digit verdict: 5 expected in each of the 10 cells."""

BENFORD_COLUMNS: Final = (
    "n_values",
    "n_excluded",
    "mean_abs_deviation",
    "expected_mean_abs_deviation",
    "conformity",
    "chi2",
    "p_value",
    "top_digit_pairs",
    "top_digit_pairs_z",
)
"""Columns of :func:`benford_by_group` after the group keys."""

LAST_DIGIT_COLUMNS: Final = (
    "n_values",
    "n_excluded",
    "digit_counts",
    "share_0_or_5",
    "chi2",
    "p_value",
)
"""Columns of :func:`last_digit_by_group` after the group keys."""


@dataclass(frozen=True, eq=False)
class BenfordResult:
    """Result of the first-two digits test on one batch of values.

    Attributes
    ----------
    n : int
        Values tested (finite, ≥ 10).
    n_excluded : int
        Non-null values left out (below 10, negative, NaN or infinite).
    counts : numpy.ndarray
        Count of each first-two digit combination 10, …, 99 (90 integers).
    mean_abs_deviation : float
        Nigrini's MAD: mean over the 90 combinations of abs(actual − Benford proportion);
        NaN when ``n`` is 0.
    expected_mean_abs_deviation : float
        MAD expected of a sample of ``n`` values that follows Benford's law exactly; NaN when
        ``n`` is 0.
    conformity : str
        Nigrini's conformity class, or ``"insufficient data"`` when ``n < min_count``.
    chi2, p_value : float or None
        Pearson's chi-square (89 degrees of freedom) and its p-value; None when
        ``n < min_count``.
    top_digit_pairs : tuple of int
        The most over-represented combinations (actual > Benford), largest Z first.
    top_digit_pairs_z : tuple of float
        Their Z-statistics.
    """

    n: int
    n_excluded: int
    counts: np.ndarray
    mean_abs_deviation: float
    expected_mean_abs_deviation: float
    conformity: str
    chi2: float | None
    p_value: float | None
    top_digit_pairs: tuple[int, ...]
    top_digit_pairs_z: tuple[float, ...]


@dataclass(frozen=True, eq=False)
class LastDigitResult:
    """Result of the last-digit uniformity test on one batch of values.

    Attributes
    ----------
    n : int
        Values tested (finite, ≥ ``min_value``).
    n_excluded : int
        Non-null values left out (below ``min_value``, negative, NaN or infinite).
    counts : numpy.ndarray
        Count of each last digit 0, …, 9 of the integer part (10 integers).
    share_0_or_5 : float
        Share of tested values whose last digit is 0 or 5 (0.2 expected); NaN when ``n`` is 0.
    chi2, p_value : float or None
        Pearson's chi-square against the uniform distribution (9 degrees of freedom) and its
        p-value; None when ``n < min_count``.
    """

    n: int
    n_excluded: int
    counts: np.ndarray
    share_0_or_5: float
    chi2: float | None
    p_value: float | None


def first_two_digits(value: pl.Expr) -> pl.Expr:
    """Polars expression giving the first two significant digits (10-99) of a value ≥ 10.

    Parameters
    ----------
    value : polars.Expr
        Numeric expression.

    Returns
    -------
    polars.Expr
        Int16 expression: ⌊x / 10^(⌊log10 x⌋ − 1)⌋, corrected where rounding of ``log10``
        near a power of ten gives 9 or 100 (for example x = 999.9999999999999); null where x
        is null, not finite or below 10.

    Examples
    --------
    >>> import polars as pl
    >>> x = pl.Series([10.0, 129.9, 1000.0, 99_999.0, 9.5])
    >>> pl.select(first_two_digits(x)).to_series().to_list()
    [10, 12, 10, 99, None]
    """
    x = value.cast(pl.Float64)
    scale = pl.lit(10.0).pow(x.log10().floor() - 1.0)
    digits = (x / scale).floor()
    corrected = (
        pl.when(digits >= 100.0)
        .then((x / (scale * 10.0)).floor())
        .when(digits < 10.0)
        .then((x / (scale / 10.0)).floor())
        .otherwise(digits)
    )
    # ``scale`` and ``digits`` on every value, the condition last: the lazy engine then
    # computes each once (common subexpressions)
    return pl.when(x.is_finite() & (x >= 10.0)).then(corrected).cast(pl.Int16)


def last_digit(value: pl.Expr) -> pl.Expr:
    """Polars expression giving the last digit (0-9) of the integer part of a value ≥ 0.

    Null where the value is null, not finite or negative.

    Examples
    --------
    >>> import polars as pl
    >>> pl.select(last_digit(pl.Series([100.0, 1234.9, 85.0, -3.0]))).to_series().to_list()
    [0, 4, 5, None]
    """
    x = pl.when(value.is_finite() & (value >= 0)).then(value.cast(pl.Float64))
    return (x.floor() % 10.0).cast(pl.Int16)


def _keys(group: str | Sequence[str] | None) -> list[str]:
    return [group] if isinstance(group, str) else list(group or [])


def _grouped_counts(
    frame: pl.DataFrame | pl.LazyFrame,
    value_columns: str | Sequence[str],
    group: str | Sequence[str] | None,
    *,
    digit: Callable[[pl.Expr], pl.Expr],
    usable: Callable[[pl.Expr], pl.Expr],
    first: int,
    cells: int,
    outputs: Sequence[str],
) -> tuple[pl.DataFrame, np.ndarray]:
    """Count the digits of the usable values per group.

    ``digit`` and ``usable`` map a value column to its digit and to whether the value is tested.
    Returns the groups (keys, ``n_values``, ``n_excluded``; sorted by the keys, nulls last) and
    a (groups × cells) count matrix whose column j counts digit ``first + j``.
    """
    columns = [value_columns] if isinstance(value_columns, str) else list(value_columns)
    keys = _keys(group)
    if not columns:
        raise UnusableInputError(
            "数字分布检验至少需要一个数值列", "digit test needs at least one value column"
        )
    lazy = frame.lazy()
    schema = lazy.collect_schema()
    missing = [c for c in (*keys, *columns) if c not in schema]
    if missing:
        raise UnusableInputError(
            f"数字分布检验的数据缺少列 {'、'.join(missing)}",
            f"frame for the digit test lacks column(s) {', '.join(missing)}",
        )
    wrong = [c for c in columns if not (schema[c].is_numeric() or schema[c] == pl.Null)]
    if wrong:
        listed_zh = "、".join(f"{c}（{schema[c]}）" for c in wrong)
        listed = ", ".join(f"{c} ({schema[c]})" for c in wrong)
        raise UnusableInputError(
            f"数字分布检验的数值列 {listed_zh}应为数值类型",
            f"digit test value column(s) {listed} must be numeric",
        )
    clash = [k for k in keys if k in outputs or k.startswith("__")]
    if clash:
        raise UnusableInputError(
            f"分组列名 {'、'.join(clash)} 与输出列重名",
            f"group column name(s) {', '.join(clash)} clash with outputs",
        )
    data = lazy.select(*keys, *(pl.col(c).cast(pl.Float64) for c in columns)).collect()
    if keys:
        present_keys = data.select(keys)
        groups = present_keys.unique().sort(keys, nulls_last=True)
        code = present_keys.join(
            groups.with_row_index("__g"),
            on=keys,
            how="left",
            nulls_equal=True,
            maintain_order="left",
        )["__g"].cast(pl.Int64)
    else:
        groups = pl.DataFrame()
        code = pl.zeros(data.height, pl.Int64, eager=True)
    n_groups = groups.height if keys else 1
    # Each value has a state: its digit's cell (0 … cells − 1), ``cells`` when it is tested but
    # has no digit, ``cells + 1`` when it is left out, null when not reported. A (group, state)
    # pair is one cell of a groups × (cells + 2) table, counted by one bincount of all the
    # columns' states (computed in parallel).
    width = cells + 2

    def state(value: pl.Expr) -> pl.Expr:
        tested = digit(value).cast(pl.Int64).sub(first).fill_null(cells)
        kind = pl.when(usable(value)).then(tested).when(value.is_not_null()).then(cells + 1)
        return kind + pl.col("__g") * width

    coded = data.lazy().with_columns(code.alias("__g"))
    states = pl.concat(coded.select(state(pl.col(c)).alias("__state")) for c in columns)
    cell = states.drop_nulls().collect()["__state"].to_numpy()
    table = np.bincount(cell, minlength=n_groups * width).reshape(n_groups, width)
    groups = pl.concat(
        [
            groups,
            pl.DataFrame(
                {"n_values": table[:, : cells + 1].sum(axis=1), "n_excluded": table[:, cells + 1]}
            ),
        ],
        how="horizontal",
    )
    return groups, np.ascontiguousarray(table[:, :cells])


def _check_count(name: str, value: int, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
        raise SettingsError(
            f"{name} 应为 ≥ {least} 的整数，而不是 {value!r}",
            f"{name} must be an integer ≥ {least}, not {value!r}",
        )


def _conformity(mad: np.ndarray, ranges: Sequence[MadRange]) -> pl.Series:
    uppers = np.array([r.mad_up_to for r in ranges])
    if len(uppers) == 0 or np.any(np.diff(uppers) <= 0) or not math.isinf(uppers[-1]):
        raise SettingsError(
            "MAD 区间的上界应依次递增，且最后一个为无穷大",
            "MAD ranges must have increasing upper bounds ending with infinity",
        )
    index = np.searchsorted(uppers, mad, side="left")
    return pl.Series("conformity", [r.conformity for r in ranges], dtype=pl.String).gather(index)


def _benford_table(
    groups: pl.DataFrame,
    counts: np.ndarray,
    *,
    min_count: int,
    top: int,
    mad_ranges: Sequence[MadRange],
) -> pl.DataFrame:
    """Benford statistics of each row of ``counts`` (groups × 90)."""
    expected = BENFORD_FIRST_TWO_P
    n = counts.sum(axis=1)
    some = n > 0
    safe_n = np.where(some, n, 1).astype(float)[:, None]
    actual = counts / safe_n
    deviation = np.abs(actual - expected)
    mad = np.where(some, deviation.mean(axis=1), np.nan)
    # E|p̂ − p| ≈ sd · √(2/π) for a binomial proportion (normal approximation), averaged over the
    # 90 cells: what a sample of n values that follows Benford exactly gives by chance [3].
    expected_mad = np.where(
        some,
        np.sqrt(2.0 / np.pi) * np.sqrt(expected * (1.0 - expected)).mean() / np.sqrt(safe_n[:, 0]),
        np.nan,
    )
    # Nigrini's Z-statistic with the continuity correction 1/(2N), applied only when it is
    # smaller than |AP − EP| [1].
    correction = 1.0 / (2.0 * safe_n)
    z = (deviation - np.where(correction < deviation, correction, 0.0)) / np.sqrt(
        expected * (1.0 - expected) / safe_n
    )
    sufficient = n >= min_count
    chi2 = np.full(len(n), np.nan)
    p_value = np.full(len(n), np.nan)
    if sufficient.any():
        test = stats.chisquare(
            counts[sufficient], f_exp=n[sufficient, None] * expected[None, :], axis=1
        )
        chi2[sufficient] = test.statistic
        p_value[sufficient] = test.pvalue
    conformity = _conformity(np.where(some, mad, 0.0), mad_ranges)
    order, kept = _top_over(np.where(actual > expected, z, -np.inf), top)
    return groups.with_columns(
        pl.Series("mean_abs_deviation", mad, dtype=pl.Float64).fill_nan(None),
        pl.Series("expected_mean_abs_deviation", expected_mad, dtype=pl.Float64).fill_nan(None),
        conformity.set(pl.Series(~sufficient), INSUFFICIENT_DATA),
        pl.Series("chi2", chi2, dtype=pl.Float64).fill_nan(None),
        pl.Series("p_value", p_value, dtype=pl.Float64).fill_nan(None),
        _ragged("top_digit_pairs", FIRST_TWO_DIGITS[order].astype(np.int64), kept),
        _ragged("top_digit_pairs_z", np.take_along_axis(z, order, axis=1), kept),
    )


def _top_over(over: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """Columns of each row's ``top`` largest values, largest first (ties: leftmost first).

    ``over`` (rows × cells, no NaN) is −inf where a cell is not a candidate; it is overwritten.
    Returns the columns (rows × min(top, cells)) and whether each is a candidate (finite): the
    order of a stable descending sort, by one arg-max per rank instead of sorting every row.
    """
    rows, cells = over.shape
    ranks = min(top, cells)
    order = np.zeros((rows, ranks), dtype=np.intp)
    kept = np.zeros((rows, ranks), dtype=bool)
    every = np.arange(rows)
    for rank in range(ranks):
        order[:, rank] = over.argmax(axis=1)
        kept[:, rank] = np.isfinite(over[every, order[:, rank]])
        over[every, order[:, rank]] = -np.inf
    return order, kept


def _ragged(name: str, values: np.ndarray, kept: np.ndarray) -> pl.Series:
    """One list per row of ``values`` (rows × k): the row's values where ``kept``, in order."""
    rows, width = values.shape
    dtype = pl.Series(values[:0].ravel()).dtype
    if rows == 0 or width == 0:
        empty = pl.Series(name, [[]], dtype=pl.List(dtype))
        return empty.gather(np.zeros(rows, dtype=np.int64))
    cells = pl.Series(name, values.ravel()).set(pl.Series(~kept.ravel()), None)
    return cells.reshape((rows, width)).arr.to_list().list.drop_nulls()


def benford_by_group(
    frame: pl.DataFrame | pl.LazyFrame,
    value_columns: str | Sequence[str],
    group: str | Sequence[str] | None,
    *,
    min_count: int = BENFORD_MIN_COUNT,
    top: int = BENFORD_TOP,
    mad_ranges: Sequence[MadRange] = NIGRINI_FIRST_TWO_MAD,
) -> pl.DataFrame:
    """First-two digits test against Benford's law for each group (e.g. district, parent body).

    The values of all ``value_columns`` of a group's rows are pooled into one batch (e.g. the
    electricity, gas and water figures of a district's returns), and the batch's first-two
    digit distribution (10-99) is compared with Benford's law P(d) = log10(1 + 1/d) [2]_ by
    Nigrini's mean absolute deviation and conformity ranges [1]_ and by Pearson's chi-square.

    Parameters
    ----------
    frame : polars.DataFrame or polars.LazyFrame
        Rows to test, e.g. returns as reported; not changed.
    value_columns : str or sequence of str
        Numeric column(s) whose values are tested (any unit: the law is scale invariant).
    group : str or sequence of str or None
        Column(s) defining the batches; None tests the whole frame as one batch.
    min_count : int, default :data:`BENFORD_MIN_COUNT` (1,000)
        Fewest tested values for a verdict; a smaller batch gets conformity
        ``"insufficient data"`` and null ``chi2`` / ``p_value``.
    top : int, default :data:`BENFORD_TOP` (3)
        How many over-represented digit pairs to report.
    mad_ranges : sequence of MadRange, default :data:`NIGRINI_FIRST_TWO_MAD`
        Conformity classes by MAD (increasing upper bounds, the last infinite).

    Returns
    -------
    polars.DataFrame
        One row per group (every group present in ``frame``, sorted by the keys, nulls last;
        one row when ``group`` is None): the keys, then

        - ``n_values`` (Int64): values tested (finite, ≥ 10);
        - ``n_excluded`` (Int64): non-null values left out (< 10, negative, NaN, inf);
        - ``mean_abs_deviation`` (Float64): Nigrini's MAD, (1/90) Σ_d abs(AP_d − EP_d) over
          d = 10…99, with AP the actual and EP the Benford proportion (null if no value);
        - ``expected_mean_abs_deviation`` (Float64): the MAD an exactly Benford sample of the
          same size has by chance, √(2/π)·(1/90)·Σ_d √(EP_d(1 − EP_d)/n) (normal approximation
          of each cell's binomial proportion); Barney and Schulzke's *excess MAD* [3]_ is
          ``mean_abs_deviation`` − this;
        - ``conformity`` (String): the class of ``mad_ranges`` containing the MAD, or
          ``"insufficient data"`` when ``n_values < min_count``;
        - ``chi2``, ``p_value`` (Float64): Pearson's chi-square against Benford (89 degrees of
          freedom, :func:`scipy.stats.chisquare`), null when ``n_values < min_count``;
        - ``top_digit_pairs`` (List[Int64]), ``top_digit_pairs_z`` (List[Float64]): up to
          ``top`` digit pairs whose actual proportion exceeds Benford's, largest Nigrini
          Z-statistic first, Z = (abs(AP − EP) − 1/(2n)) / √(EP(1 − EP)/n) (the 1/(2n)
          continuity correction only where smaller than abs(AP − EP)).

        Always a DataFrame, also for a LazyFrame input: a summary of a few rows per batch,
        computed with scipy.

    Raises
    ------
    UnusableInputError
        If a column is missing, a value column is not numeric, no value column is given or a
        group column is named like an output column.
    SettingsError
        If ``min_count`` < 1, ``top`` < 0 or ``mad_ranges`` is malformed.

    Notes
    -----
    Values below 10 have no second digit and are left out (Nigrini [1]_ likewise drops them
    from the first-two digits test). Energy and water figures spread over several orders of
    magnitude and are products of many factors (area × intensity × …), which is when Benford's
    law is expected to hold; figures made up by a person over-use some digit pairs (round
    starts such as 10, 15, 20, 50) and show up as a large MAD.

    The MAD does not grow with the sample size as chi-square does (with thousands of values
    chi-square rejects for deviations of no practical importance, which is why Nigrini uses
    the MAD), but it *shrinks* with it: an exactly Benford sample of 1,000 values has an
    expected MAD of about 0.0025, already "nonconformity"; the expected MAD falls below 0.0022
    at about 1,300 values, below 0.0018 at about 1,950 and below 0.0012 at about 4,400. Read
    ``conformity`` of batches of a few thousand values next to
    ``expected_mean_abs_deviation``, or raise ``min_count``.

    Examples
    --------
    >>> import polars as pl
    >>> frame = pl.DataFrame({"district": ["A", "A", "B"], "kwh": [1234.0, 5.0, 987.0]})
    >>> out = benford_by_group(frame, "kwh", "district", min_count=1)
    >>> out.select("district", "n_values", "n_excluded", "top_digit_pairs").rows()
    [('A', 1, 1, [12]), ('B', 1, 0, [98])]
    """
    return _benford(frame, value_columns, group, min_count, top, mad_ranges)[0]


def _benford(
    frame: pl.DataFrame | pl.LazyFrame,
    value_columns: str | Sequence[str],
    group: str | Sequence[str] | None,
    min_count: int,
    top: int,
    mad_ranges: Sequence[MadRange],
) -> tuple[pl.DataFrame, np.ndarray]:
    """Compute the table of :func:`benford_by_group` and its (groups × 90) count matrix."""
    _check_count("min_count", min_count, 1)
    _check_count("top", top, 0)
    groups, counts = _grouped_counts(
        frame,
        value_columns,
        group,
        digit=first_two_digits,
        usable=lambda value: value.is_finite() & (value >= 10.0),
        first=10,
        cells=90,
        outputs=BENFORD_COLUMNS,
    )
    table = _benford_table(groups, counts, min_count=min_count, top=top, mad_ranges=mad_ranges)
    return table, counts


def _as_frame(values: object) -> pl.DataFrame:
    try:
        series = pl.Series("__values", values, strict=False).cast(pl.Float64)
    except (TypeError, ValueError, pl.exceptions.PolarsError) as error:
        raise UnusableInputError(
            f"数字分布检验的值应为数字：{error}", f"digit test values must be numbers: {error}"
        ) from error
    return series.to_frame()


def benford_first_two(
    values: object,
    *,
    min_count: int = BENFORD_MIN_COUNT,
    top: int = BENFORD_TOP,
    mad_ranges: Sequence[MadRange] = NIGRINI_FIRST_TWO_MAD,
) -> BenfordResult:
    """First-two digits test of one batch of values against Benford's law (Nigrini's MAD).

    Parameters
    ----------
    values : array_like
        Numbers (list, numpy array, polars Series); nulls are ignored, values below 10,
        negative, NaN or infinite are left out and counted.
    min_count, top, mad_ranges
        As in :func:`benford_by_group`.

    Returns
    -------
    BenfordResult
        Counts, MAD and expected MAD, conformity class, chi-square and p-value, top digit pairs
        (definitions in :func:`benford_by_group`).

    Raises
    ------
    UnusableInputError
        If ``values`` are not numbers.
    SettingsError
        If a setting is invalid.

    References
    ----------
    See the module references: Nigrini (2012) [1]_, Benford (1938) [2]_.

    Examples
    --------
    The MAD of a batch whose first two digits are all 10: AP(10) = 1 and 0 elsewhere, so the
    90 absolute deviations sum to 2·(1 − log10(1.1)):

    >>> r = benford_first_two([10, 105, 1099.5], min_count=1)
    >>> round(r.mean_abs_deviation, 7), r.conformity, r.top_digit_pairs
    (0.0213024, 'nonconformity', (10,))
    """
    out, counts = _benford(_as_frame(values), "__values", None, min_count, top, mad_ranges)
    row = out.row(0, named=True)
    return BenfordResult(
        n=row["n_values"],
        n_excluded=row["n_excluded"],
        counts=counts[0],
        mean_abs_deviation=_nan_if_none(row["mean_abs_deviation"]),
        expected_mean_abs_deviation=_nan_if_none(row["expected_mean_abs_deviation"]),
        conformity=row["conformity"],
        chi2=row["chi2"],
        p_value=row["p_value"],
        top_digit_pairs=tuple(row["top_digit_pairs"]),
        top_digit_pairs_z=tuple(row["top_digit_pairs_z"]),
    )


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else value


def last_digit_by_group(
    frame: pl.DataFrame | pl.LazyFrame,
    value_columns: str | Sequence[str],
    group: str | Sequence[str] | None,
    *,
    min_value: float = LAST_DIGIT_MIN_VALUE,
    min_count: int = LAST_DIGIT_MIN_COUNT,
) -> pl.DataFrame:
    """Chi-square test that the last digit of metered values is uniform, for each group.

    The last digit of the integer part of a meter reading (or of the difference of two
    readings) is equally likely to be 0, 1, …, 9; a batch of invented or estimated figures has
    too many ending in 0 and 5 (e.g. 12,000 or 3,450 kWh written instead of a reading). The
    values of all ``value_columns`` of a group's rows are pooled and their last digits compared
    with the uniform distribution by Pearson's chi-square (:func:`scipy.stats.chisquare`).

    Parameters
    ----------
    frame : polars.DataFrame or polars.LazyFrame
        Rows to test, e.g. returns as reported (before unit conversion); not changed.
    value_columns : str or sequence of str
        Numeric column(s) of metered quantities (electricity, gas, water, heat).
    group : str or sequence of str or None
        Column(s) defining the batches; None tests the whole frame as one batch.
    min_value : float, default :data:`LAST_DIGIT_MIN_VALUE` (100)
        Smallest value tested. Below 100 the last digit of the integer part is the first or
        second significant digit, which is not uniform even for honest figures: under
        Benford's law the second digit is 0 with probability 0.120 and 9 with 0.085, while the
        third digit is within 0.098-0.102 of uniform. Energy quantities of public institutions
        are nearly all ≥ 100, so little is lost.
    min_count : int, default :data:`LAST_DIGIT_MIN_COUNT` (50)
        Fewest tested values for a p-value (50 gives 5 expected in each cell, the usual rule
        for the chi-square approximation); a smaller batch gets null ``chi2`` and ``p_value``.

    Returns
    -------
    polars.DataFrame
        One row per group (sorted by the keys, nulls last; one row when ``group`` is None): the
        keys, then ``n_values`` (Int64: values tested, finite and ≥ ``min_value``),
        ``n_excluded`` (Int64: non-null values left out), ``digit_counts`` (List[Int64]: counts
        of last digits 0…9), ``share_0_or_5`` (Float64: share of tested values ending in 0 or
        5, 0.2 expected; null if none), ``chi2`` and ``p_value`` (Float64: Pearson's chi-square
        with 9 degrees of freedom and its p-value; null when ``n_values < min_count``). Always
        a DataFrame, also for a LazyFrame input.

    Raises
    ------
    UnusableInputError
        If a column is missing, a value column is not numeric or a group column is named like
        an output column.
    SettingsError
        If ``min_count`` < 1 or ``min_value`` is negative or not finite.

    Notes
    -----
    Quantities that are legitimately round fail this test too: a contractual or estimated
    figure (e.g. heat billed by area), or a value converted from a larger unit. Apply it to
    metered items as reported. Nigrini's last-two digits test [4]_ rests on the same idea.

    Examples
    --------
    >>> import polars as pl
    >>> frame = pl.DataFrame({"kwh": [100.0, 205.0, 310.0, 47.0]})
    >>> last_digit_by_group(frame, "kwh", None, min_count=1).select(
    ...     "n_values", "n_excluded", "share_0_or_5").row(0)
    (3, 1, 1.0)
    """
    _check_count("min_count", min_count, 1)
    if not (isinstance(min_value, int | float) and math.isfinite(min_value) and min_value >= 0):
        raise SettingsError(
            f"min_value 应为 ≥ 0 的有限数，而不是 {min_value!r}",
            f"min_value must be a finite number ≥ 0, not {min_value!r}",
        )
    groups, counts = _grouped_counts(
        frame,
        value_columns,
        group,
        digit=last_digit,
        usable=lambda value: value.is_finite() & (value >= float(min_value)),
        first=0,
        cells=10,
        outputs=LAST_DIGIT_COLUMNS,
    )
    n = counts.sum(axis=1)
    share = np.where(n > 0, (counts[:, 0] + counts[:, 5]) / np.where(n > 0, n, 1), np.nan)
    sufficient = n >= min_count
    chi2 = np.full(len(n), np.nan)
    p_value = np.full(len(n), np.nan)
    if sufficient.any():
        test = stats.chisquare(counts[sufficient], axis=1)
        chi2[sufficient] = test.statistic
        p_value[sufficient] = test.pvalue
    return groups.with_columns(
        pl.Series("digit_counts", counts.tolist(), dtype=pl.List(pl.Int64)),
        pl.Series("share_0_or_5", share, dtype=pl.Float64).fill_nan(None),
        pl.Series("chi2", chi2, dtype=pl.Float64).fill_nan(None),
        pl.Series("p_value", p_value, dtype=pl.Float64).fill_nan(None),
    )


def last_digit_uniformity(
    values: object,
    *,
    min_value: float = LAST_DIGIT_MIN_VALUE,
    min_count: int = LAST_DIGIT_MIN_COUNT,
) -> LastDigitResult:
    """Chi-square test that the last digit of one batch of metered values is uniform on 0-9.

    Parameters
    ----------
    values : array_like
        Numbers (list, numpy array, polars Series); nulls are ignored, values below
        ``min_value``, NaN or infinite are left out and counted.
    min_value, min_count
        As in :func:`last_digit_by_group` (why values below 100 are left out is explained
        there).

    Returns
    -------
    LastDigitResult
        Counts of the last digits 0-9, share ending in 0 or 5, chi-square and p-value.

    Raises
    ------
    UnusableInputError
        If ``values`` are not numbers.
    SettingsError
        If a setting is invalid.

    Examples
    --------
    >>> r = last_digit_uniformity(range(100, 1100))
    >>> r.n, r.counts.tolist(), r.p_value
    (1000, [100, 100, 100, 100, 100, 100, 100, 100, 100, 100], 1.0)
    """
    out = last_digit_by_group(
        _as_frame(values), "__values", None, min_value=min_value, min_count=min_count
    )
    row = out.row(0, named=True)
    return LastDigitResult(
        n=row["n_values"],
        n_excluded=row["n_excluded"],
        counts=np.array(row["digit_counts"], dtype=np.int64),
        share_0_or_5=_nan_if_none(row["share_0_or_5"]),
        chi2=row["chi2"],
        p_value=row["p_value"],
    )
