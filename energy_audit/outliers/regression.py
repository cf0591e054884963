"""Expected consumption: a robust regression of log consumption on size and kind of institution.

What an institution *should* use follows from what it is: its floor area, the people it serves,
its sector, administrative level and district. ENERGY STAR scores rest on the same idea: a
multivariate regression fitted to a nationally representative survey of buildings (CBECS in the
United States) predicts a property's energy use from its size and activities, and the actual use
is compared with the prediction [1]_. Here the regression is fitted to the returns
themselves, so it must not be pulled by the very errors it is meant to find: it is an
M-estimate with Tukey's bisquare weights (Beaton & Tukey 1974 [2]_), computed by iteratively
reweighted least squares (IRLS) from a Huber M-estimate (Huber 1981 [3]_), with the scale
re-estimated at each step by the MAD of the residuals.

Each return then gets its expected value, its residual on the log scale, a studentized residual
and a prediction interval; a unit slip that changes the total many times over (heat in MJ
under GJ, ×1000) is a residual of many robust standard deviations.

References
----------
.. [1] ENERGY STAR, *Portfolio Manager Technical Reference: ENERGY STAR Score*, U.S. EPA, 2021.
.. [2] A. E. Beaton and J. W. Tukey, "The fitting of power series, meaning polynomials,
   illustrated on band-spectroscopic data", *Technometrics* 16(2), 147-185, 1974.
   :doi:`10.1080/00401706.1974.10489171`
.. [3] P. J. Huber, *Robust Statistics*, New York: Wiley, 1981.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, TypeVar

import numpy as np
import numpy.typing as npt
import polars as pl
from scipy import linalg, special, stats

from energy_audit.errors import SettingsError, UnusableInputError
from energy_audit.outliers.peer import MAD_TO_SIGMA, middle_pair

__all__ = [
    "DEFAULT_HUBER_TUNING",
    "DEFAULT_MIN_LEVEL_SIZE",
    "DEFAULT_TUNING",
    "MODEL_COLUMNS",
    "NULL_LEVEL",
    "OTHER_LEVEL",
    "RobustFit",
    "expected_consumption",
    "fit_expected_consumption",
]

FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)
FloatArray = npt.NDArray[np.float64]

DEFAULT_TUNING: Final = 4.685
"""Tukey bisquare tuning constant [robust σ]: 95 % efficiency at the normal distribution."""

DEFAULT_HUBER_TUNING: Final = 1.345
"""Huber tuning constant of the starting fit [robust σ]: 95 % efficiency at the normal."""

DEFAULT_MIN_LEVEL_SIZE: Final = 5
"""Fewest fitted rows a categorical level needs for its own coefficient [rows]; rarer levels are
merged into :data:`OTHER_LEVEL`."""

OTHER_LEVEL: Final = "(other)"
"""Name of the level the rare levels of a categorical are merged into."""

NULL_LEVEL: Final = "(null)"
"""Name of the level of a null categorical value."""

MODEL_COLUMNS: Final = ("expected", "residual", "studentized", "low", "high", "p")
"""Columns :func:`expected_consumption` adds, after the prefix, in order."""

SAMPLE_LEVEL_ROWS: Final = 200
"""Rows of each categorical level a subsample fit keeps at least (all of a rarer level's)."""

_SAMPLE_SEED: Final = 20_240_331  # fixed: the same input gives the same subsample and findings
_START_TOL: Final = 1e-4  # convergence tolerance of the Huber start (only a starting point)


@dataclass(frozen=True, eq=False)
class RobustFit:
    """A fitted expected-consumption model and its diagnostics.

    Attributes
    ----------
    target : str
        Column modelled (e.g. ``total_energy_tce``).
    numeric, categorical : tuple of str
        Predictor columns.
    log : bool
        Whether the target and the numeric predictors enter as natural logs.
    coefficients : mapping of str to float
        Coefficient of each design column, by name: ``intercept``, ``log(building_area_m2)``
        (or the column name when ``log=False``), ``sector[hospital]`` (the effect of that level
        against the reference level) …; on the log scale of the target when ``log=True``.
        Aliased columns (see ``dropped``) are not listed.
    reference : mapping of str to str
        Reference (dropped) level of each categorical: its most frequent level.
    levels : mapping of str to tuple of str
        Every level of each categorical that has a coefficient or is the reference, in design
        order (reference first); may include :data:`OTHER_LEVEL`.
    merged : mapping of str to tuple of str
        Rare levels of each categorical (fewer than ``min_level_size`` fitted rows), merged into
        :data:`OTHER_LEVEL`, or into the reference when they are too few together.
    dropped : tuple of str
        Design columns left out because they were (nearly) linear combinations of others.
    scale : float
        Robust residual scale: 1.4826 × MAD of the final residuals [log units of the target].
    n : int
        Rows fitted (valid positive target and predictors) [rows].
    df_resid : int
        Residual degrees of freedom n − p, with p the number of coefficients.
    iterations : int
        IRLS iterations of the bisquare stage.
    start_iterations : int
        IRLS iterations of the Huber starting fit.
    converged : bool
        Whether the bisquare stage reached the tolerance within ``max_iter`` iterations.
    tuning : float
        Bisquare tuning constant used [robust σ].
    weights_zero : int
        Fitted rows whose final bisquare weight is 0 (|residual| ≥ tuning × scale) [rows].
    unscaled_covariance : numpy.ndarray
        (XᵀWX)⁻¹ at the final weights, p × p, in the order of ``coefficients``; multiplied by
        ``scale``² it approximates the coefficients' covariance.
    """

    target: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    log: bool
    coefficients: Mapping[str, float]
    reference: Mapping[str, str]
    levels: Mapping[str, tuple[str, ...]]
    merged: Mapping[str, tuple[str, ...]]
    dropped: tuple[str, ...]
    scale: float
    n: int
    df_resid: int
    iterations: int
    start_iterations: int
    converged: bool
    tuning: float
    weights_zero: int
    unscaled_covariance: FloatArray = field(repr=False)


@dataclass
class _Cells:
    """The distinct combinations of categorical levels (*cells*) among a design's rows."""

    of_row: npt.NDArray[np.intp]  # per row, its cell
    codes: list[npt.NDArray[np.intp]]  # per categorical, the level of each cell
    pairs: list[tuple[int, int, npt.NDArray[np.intp]]]  # (i, i2, level pair of each cell)

    @property
    def size(self) -> int:
        """Number of cells."""
        return self.codes[0].size if self.codes else 1

    def take(self, rows: npt.NDArray[np.intp], sizes: Sequence[int]) -> _Cells:
        """Restrict the cells to some of the rows, numbered as :func:`_cells` numbers them.

        :func:`_cells` numbers the cells present in the order of their mixed-radix code, so the
        cells of ``rows`` keep their order, renumbered from 0: no pass over the rows' levels.
        """
        if not self.codes:
            return _Cells(np.zeros(rows.size, dtype=np.intp), [], [])
        cell = self.of_row[rows]
        seen = np.bincount(cell, minlength=self.size) > 0
        present = np.flatnonzero(seen)
        of_row = (np.cumsum(seen) - 1)[cell].astype(np.intp)
        levels = [code[present] for code in self.codes]
        return _Cells(of_row, levels, _pairs(levels, sizes))


def _pairs(
    levels: Sequence[npt.NDArray[np.intp]], sizes: Sequence[int]
) -> list[tuple[int, int, npt.NDArray[np.intp]]]:
    """(i, i2, level pair of each cell) of every pair of categoricals i < i2."""
    return [
        (i, i2, levels[i] * sizes[i2] + levels[i2])
        for i in range(len(sizes))
        for i2 in range(i + 1, len(sizes))
    ]


def _cells(codes: Sequence[npt.NDArray[np.intp]], sizes: Sequence[int], n: int) -> _Cells:
    """Find the cells of the rows: mixed-radix code of the levels, then its distinct values."""
    if not codes:
        return _Cells(np.zeros(n, dtype=np.intp), [], [])
    combined = np.zeros(n, dtype=np.int64)
    stride = 1
    for code, size in zip(codes, sizes, strict=True):
        combined += code.astype(np.int64) * stride
        stride *= size
    if stride <= max(4 * n, 1 << 20):  # few possible cells: a table instead of a sort
        seen = np.bincount(combined, minlength=stride) > 0
        present = np.flatnonzero(seen)
        index = np.cumsum(seen) - 1
        of_row = index[combined].astype(np.intp)
    else:
        present, of_row = np.unique(combined, return_inverse=True)
    levels, stride = [], 1
    for size in sizes:
        levels.append(((present // stride) % size).astype(np.intp))
        stride *= size
    return _Cells(of_row.ravel(), levels, _pairs(levels, sizes))


@dataclass
class _Design:
    """The design matrix of some rows, kept in its structure rather than as a dense matrix.

    Columns: the dense block (intercept, then the numeric predictors), then for each categorical
    one 0/1 column per level but the reference (level 0). Each row has exactly one level per
    categorical, and the rows fall into few *cells* (distinct combinations of levels), so
    XᵀWX, Xβ and xᵢ A xᵢᵀ reduce to dense products of the small dense block and weighted sums
    per cell (:func:`numpy.bincount`), then counts per level and per pair of levels over the
    cells: O(n) passes instead of an n × p² matrix product.
    """

    dense: FloatArray  # rows × d, Fortran order
    codes: list[npt.NDArray[np.intp]]  # per categorical, the level index (0 = reference) of rows
    sizes: list[int]  # number of levels per categorical
    keep: npt.NDArray[np.intp]  # columns estimated (the others are aliased: coefficient 0)
    cells: _Cells | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.cells is None:
            self.cells = _cells(self.codes, self.sizes, self.dense.shape[0])

    @property
    def p(self) -> int:
        """Number of design columns, aliased ones included."""
        return self.dense.shape[1] + sum(size - 1 for size in self.sizes)

    def blocks(self) -> list[tuple[slice, int]]:
        """(columns, number of levels) of each categorical."""
        out, start = [], self.dense.shape[1]
        for size in self.sizes:
            out.append((slice(start, start + size - 1), size))
            start += size - 1
        return out

    def take(self, rows: npt.NDArray[np.intp]) -> _Design:
        """Restrict the design to some of its rows."""
        assert self.cells is not None
        return _Design(
            np.asfortranarray(self.dense[rows]),
            [c[rows] for c in self.codes],
            self.sizes,
            self.keep,
            self.cells.take(rows, self.sizes),
        )

    def normal_equations(self, w: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        """XᵀWX and XᵀWy (all p columns)."""
        assert self.cells is not None
        d = self.dense.shape[1]
        gram, rhs = np.zeros((self.p, self.p)), np.zeros(self.p)
        wd = self.dense * w[:, None]
        wy = w * y
        # sums over the rows of the thin dense block by numpy's pairwise sum, not BLAS (whose
        # threads only contend for the cores at n × 3)
        for j in range(d):
            rhs[j] = np.sum(self.dense[:, j] * wy)
            for k in range(j + 1):
                gram[j, k] = gram[k, j] = np.sum(wd[:, j] * self.dense[:, k])
        if not self.sizes:
            return gram, rhs
        cells = self.cells
        # per cell: Σ w·x_j (x_0 = 1: the weight) and Σ w·y
        cell_wd = [np.bincount(cells.of_row, wd[:, j], cells.size) for j in range(d)]
        cell_wy = np.bincount(cells.of_row, wy, cells.size)
        blocks = self.blocks()
        for (cols, size), code in zip(blocks, cells.codes, strict=True):
            for j in range(d):  # column 0 is the intercept: weighted level counts
                gram[j, cols] = gram[cols, j] = np.bincount(code, cell_wd[j], size)[1:]
            gram[cols, cols] = np.diag(gram[0, cols])
            rhs[cols] = np.bincount(code, cell_wy, size)[1:]
        for i, i2, pair in cells.pairs:
            (cols, size), (cols2, size2) = blocks[i], blocks[i2]
            cross = np.bincount(pair, cell_wd[0], size * size2).reshape(size, size2)
            gram[cols, cols2] = cross[1:, 1:]
            gram[cols2, cols] = cross[1:, 1:].T
        return gram, rhs

    def solve(self, w: FloatArray, y: FloatArray) -> FloatArray:
        """β of the weighted normal equations, 0 for the aliased columns."""
        gram, rhs = self.normal_equations(w, y)
        k = self.keep
        beta = np.zeros(self.p)
        try:
            beta[k] = linalg.solve(gram[np.ix_(k, k)], rhs[k], assume_a="pos")
        except (linalg.LinAlgError, ValueError):  # singular at these weights
            beta[k] = np.linalg.lstsq(gram[np.ix_(k, k)], rhs[k], rcond=None)[0]
        return beta

    def linear(self, beta: FloatArray) -> FloatArray:
        """Xβ."""
        assert self.cells is not None
        out = np.einsum("ij,j->i", self.dense, beta[: self.dense.shape[1]])
        if self.sizes:
            effect = np.zeros(self.cells.size)
            for (cols, _), code in zip(self.blocks(), self.cells.codes, strict=True):
                effect += np.concatenate([[0.0], beta[cols]])[code]
            out += effect[self.cells.of_row]
        return out

    def quadratic(self, a: FloatArray) -> FloatArray:
        """xᵢ A xᵢᵀ of every row, A symmetric p × p."""
        assert self.cells is not None
        d = self.dense.shape[1]
        out = np.einsum("ij,jk,ik->i", self.dense, a[:d, :d], self.dense)
        if not self.sizes:
            return out
        cells = self.cells
        blocks = self.blocks()

        def padded(rows: slice, cols: slice, n_rows: int, n_cols: int) -> FloatArray:
            block = np.zeros((n_rows, n_cols))
            block[1:, 1:] = a[rows, cols]
            return block

        # per cell: the categorical × categorical part, and each dense column's coefficient
        within = np.zeros(cells.size)
        mixed = np.zeros((d, cells.size))
        for (cols, size), code in zip(blocks, cells.codes, strict=True):
            dense_cat = np.zeros((d, size))
            dense_cat[:, 1:] = a[:d, cols]
            mixed += dense_cat[:, code]
            within += np.diag(padded(cols, cols, size, size))[code]
        for i, i2, _ in cells.pairs:
            (cols, size), (cols2, size2) = blocks[i], blocks[i2]
            within += 2.0 * padded(cols, cols2, size, size2)[cells.codes[i], cells.codes[i2]]
        for j in range(d):
            out += 2.0 * self.dense[:, j] * mixed[j][cells.of_row]
        out += within[cells.of_row]
        return out


@dataclass
class _Model:
    """The design of the rows with valid predictors, with names and where the rows are."""

    design: _Design
    names: list[str]
    rows: npt.NDArray[np.intp]  # positions in the frame
    y: FloatArray  # transformed target of those rows (nan where not valid)
    reference: dict[str, str]
    levels: dict[str, tuple[str, ...]]
    merged: dict[str, tuple[str, ...]]


def _check(
    schema: pl.Schema,
    target: str,
    numeric: Sequence[str],
    categorical: Sequence[str],
    max_iter: int,
    tuning: float,
    level: float | None,
    min_level_size: int,
) -> None:
    for name, what in ((numeric, "numeric"), (categorical, "categorical")):
        if isinstance(name, str):
            raise SettingsError(
                f"{what} 应为列名的序列，而不是字符串 {name!r}",
                f"{what} must be a sequence of column names, not the string {name!r}",
            )
    wanted = [target, *numeric, *categorical]
    missing = [c for c in dict.fromkeys(wanted) if c not in schema]
    if missing:
        raise UnusableInputError(
            f"输入数据缺少模型所需的列 {'、'.join(missing)}",
            f"frame lacks column(s) {', '.join(missing)} for the model",
        )
    wrong = [c for c in (target, *numeric) if not (schema[c].is_numeric() or schema[c] == pl.Null)]
    if wrong:
        listed_zh = "、".join(f"{c}（{schema[c]}）" for c in wrong)
        listed = ", ".join(f"{c} ({schema[c]})" for c in wrong)
        raise UnusableInputError(
            f"模型的列 {listed_zh}应为数值类型", f"model column(s) {listed} must be numeric"
        )
    if target in numeric or target in categorical:
        raise SettingsError(
            f"目标列 {target!r} 不能同时作为预测变量",
            f"target {target!r} cannot also be a predictor",
        )
    if max_iter < 1:
        raise SettingsError(
            f"max_iter 至少应为 1，而不是 {max_iter}",
            f"max_iter must be at least 1, not {max_iter}",
        )
    if not tuning > 0:
        raise SettingsError(
            f"tuning 应为正数，而不是 {tuning}", f"tuning must be positive, not {tuning}"
        )
    if level is not None and not 0 < level < 1:
        raise SettingsError(
            f"level 应介于 0 和 1 之间，而不是 {level}",
            f"level must be between 0 and 1, not {level}",
        )
    if min_level_size < 1:
        raise SettingsError(
            f"min_level_size 至少应为 1，而不是 {min_level_size}",
            f"min_level_size must be at least 1, not {min_level_size}",
        )


def _transform(values: FloatArray, log: bool) -> FloatArray:
    """Take the log of the positive finite values (or the finite values), nan elsewhere."""
    ok = np.isfinite(values) & (values > 0) if log else np.isfinite(values)
    out = np.full(values.shape, np.nan)
    out[ok] = np.log(values[ok]) if log else values[ok]
    return out


def _independent_columns(gram: FloatArray, tol: float = 1e-10) -> npt.NDArray[np.intp]:
    """Find the columns, in order, that are not (nearly) linear combinations of earlier ones.

    Greedy Gram-Schmidt on the Gram matrix XᵀX: column j is kept when the part of it orthogonal
    to the kept columns has a squared norm above ``tol`` × its own.
    """
    kept: list[int] = []
    for j in range(gram.shape[0]):
        if gram[j, j] <= 0:
            continue
        if kept:
            g_kj = gram[kept, j]
            residual = gram[j, j] - g_kj @ linalg.solve(
                gram[np.ix_(kept, kept)], g_kj, assume_a="pos"
            )
        else:
            residual = gram[j, j]
        if residual > tol * gram[j, j]:
            kept.append(j)
    return np.array(kept, dtype=np.intp)


def _model(
    data: pl.DataFrame,
    target: str,
    numeric: Sequence[str],
    categorical: Sequence[str],
    log: bool,
    min_level_size: int,
) -> _Model:
    """Code the rows with valid predictors: intercept, (log) numeric, categorical levels."""
    y_all = _transform(data[target].cast(pl.Float64).to_numpy(), log)
    xs = [_transform(data[c].cast(pl.Float64).to_numpy(), log) for c in numeric]
    ok = np.ones(data.height, dtype=bool)
    for values in xs:
        ok &= ~np.isnan(values)
    rows = np.flatnonzero(ok)
    fitted = ~np.isnan(y_all[rows])
    names = ["intercept", *(f"log({c})" if log else c for c in numeric)]
    codes: list[npt.NDArray[np.intp]] = []
    reference: dict[str, str] = {}
    levels: dict[str, tuple[str, ...]] = {}
    merged: dict[str, tuple[str, ...]] = {}
    # the distinct combinations of labels (one hash pass), their rows and fitted rows
    combos, of_row = _label_combinations(data, categorical, rows)
    rows_in = np.bincount(of_row, minlength=combos.height)
    fit_in = np.bincount(of_row[fitted], minlength=combos.height)
    seen = rows_in > 0
    for column in categorical:
        labels = combos[column]
        present = labels.filter(pl.Series(seen)).unique().sort().to_list()
        inverse = labels.cast(pl.Enum(present), strict=False).to_physical()
        inverse = inverse.fill_null(0).to_numpy().astype(np.intp)  # null: a combination unseen
        fit_counts = np.bincount(inverse, fit_in, minlength=len(present)).astype(np.int64)
        rare = fit_counts < min_level_size
        kept = [v for v, r in zip(present, rare, strict=True) if not r]
        kept_counts = [int(c) for c, r in zip(fit_counts, rare, strict=True) if not r]
        rare_fitted = int(fit_counts[rare].sum())
        if rare_fitted >= min_level_size or not kept:
            kept.append(OTHER_LEVEL)
            kept_counts.append(rare_fitted)
        order = sorted(range(len(kept)), key=lambda i: (-kept_counts[i], kept[i]))
        kept = [kept[i] for i in order]  # most frequent first: the reference
        index = {v: i for i, v in enumerate(kept)}
        rare_target = index.get(OTHER_LEVEL, 0)
        level_of = np.array([index.get(v, rare_target) for v in present], dtype=np.intp)
        codes.append(level_of[inverse][of_row])
        reference[column] = kept[0]
        levels[column] = tuple(kept)
        merged[column] = tuple(v for v, r in zip(present, rare, strict=True) if r)
        names += [f"{column}[{v}]" for v in kept[1:]]
    dense = np.empty((rows.size, 1 + len(numeric)), order="F")
    dense[:, 0] = 1.0
    for j, values in enumerate(xs, start=1):
        dense[:, j] = values[rows]
    design = _Design(
        dense, codes, [len(levels[c]) for c in categorical], np.arange(len(names), dtype=np.intp)
    )
    return _Model(design, names, rows, y_all[rows], reference, levels, merged)


def _label_combinations(
    data: pl.DataFrame, categorical: Sequence[str], rows: npt.NDArray[np.intp]
) -> tuple[pl.DataFrame, npt.NDArray[np.intp]]:
    """Distinct combinations of the categoricals' labels (text, null as :data:`NULL_LEVEL`).

    Returns the combinations (one row each) and the combination of each of ``rows``.
    """
    if not categorical:
        return pl.DataFrame(), np.zeros(rows.size, dtype=np.intp)
    table = (
        data.select(pl.col(c).cast(pl.String) for c in categorical)
        .with_row_index("__ea_i")
        .group_by(list(categorical))
        .agg("__ea_i")
    )
    sizes = table["__ea_i"].list.len().to_numpy()
    every = np.empty(data.height, dtype=np.intp)
    every[table["__ea_i"].explode().to_numpy()] = np.repeat(np.arange(sizes.size), sizes)
    combos = table.drop("__ea_i").with_columns(pl.all().fill_null(NULL_LEVEL))
    return combos, every[rows]


def _numpy_median(values: FloatArray) -> float:
    """:func:`numpy.median` of a 1-d array, from a selection instead of a partition."""
    if values.size == 0 or np.isnan(values).any():
        return math.nan
    lo, hi = middle_pair(values)
    return lo if values.size % 2 else (lo + hi) / 2.0


def _mad_scale(residuals: FloatArray) -> float:
    """1.4826 × MAD of the residuals (about their median)."""
    return MAD_TO_SIGMA * _numpy_median(np.abs(residuals - _numpy_median(residuals)))


def _huber_weights(u: FloatArray) -> FloatArray:
    """Huber weights min(1, 1/|u|) of residuals u in units of c·scale."""
    return 1.0 / np.maximum(np.abs(u), 1.0)


def _bisquare_weights(u: FloatArray) -> FloatArray:
    """Tukey bisquare weights (1 − u²)² for |u| < 1, else 0, of residuals u in units of c·scale."""
    return np.where(np.abs(u) < 1.0, (1.0 - u * u) ** 2, 0.0)


def _irls(
    design: _Design,
    y: FloatArray,
    beta: FloatArray,
    weight: Callable[[FloatArray], FloatArray],
    tuning: float,
    max_iter: int,
    tol: float,
) -> tuple[FloatArray, int, bool]:
    """Iterate β ← WLS(w(r / (tuning · s))), s the MAD scale of the current residuals r."""
    for iteration in range(1, max_iter + 1):
        residuals = y - design.linear(beta)
        scale = _mad_scale(residuals)
        if scale <= 0.0:  # more than half the rows fitted exactly: nothing left to reweight
            return beta, iteration - 1, True
        new = design.solve(weight(residuals / (tuning * scale)), y)
        change = float(np.max(np.abs(new - beta)))
        beta = new
        if change <= tol * (1.0 + float(np.max(np.abs(beta)))):
            return beta, iteration, True
    return beta, max_iter, False


def _fit_sample(design: _Design, max_rows: int | None) -> npt.NDArray[np.intp] | None:
    """Rows the coefficients are estimated on when there are more than ``max_rows``.

    Each row is kept with probability max(max_rows / n, SAMPLE_LEVEL_ROWS / rows of its level)
    over its categoricals, so rare levels keep their rows. The sample depends on the
    predictors only, not on the target, so the estimate stays unbiased.
    """
    if max_rows is not None and not (
        isinstance(max_rows, int) and not isinstance(max_rows, bool) and max_rows >= 1
    ):
        raise SettingsError(
            f"max_fit_rows 应为正整数或 None，实际为 {max_rows!r}",
            f"max_fit_rows must be a positive integer or None, got {max_rows!r}",
        )
    n = design.dense.shape[0]
    if max_rows is None or n <= max_rows:
        return None
    keep = np.full(n, max_rows / n)
    for code, size in zip(design.codes, design.sizes, strict=True):
        rows = np.bincount(code, minlength=size).astype(np.float64)
        keep = np.maximum(keep, np.minimum(1.0, SAMPLE_LEVEL_ROWS / rows[code]))
    return np.flatnonzero(np.random.default_rng(_SAMPLE_SEED).random(n) < keep)


@dataclass
class _Scored:
    fit: RobustFit
    model: _Model
    fitted_value: FloatArray  # x β of the rows with valid predictors
    q: FloatArray  # x (XᵀWX)⁻¹ xᵀ of those rows
    weights: FloatArray  # final bisquare weight (0 for rows not fitted)


def _fit(
    data: pl.DataFrame,
    target: str,
    numeric: Sequence[str],
    categorical: Sequence[str],
    *,
    log: bool,
    max_iter: int,
    tuning: float,
    tol: float,
    min_level_size: int,
    max_fit_rows: int | None = None,
) -> _Scored:
    model = _model(data, target, numeric, categorical, log, min_level_size)
    fitted = np.flatnonzero(~np.isnan(model.y))
    n = fitted.size
    design = model.design
    sub = design if n == model.rows.size else design.take(fitted)
    y = model.y[fitted]
    ones = np.ones(n)
    sub.keep = design.keep = _independent_columns(sub.normal_equations(ones, y)[0])
    p = design.keep.size
    if n <= p:
        raise UnusableInputError(
            f"只有 {n} 行的 {target}{'（须为正值）' if log else ''}和预测变量均有效，"
            f"不足以拟合 {p} 个系数",
            f"only {n} row(s) have a valid {'positive ' if log else ''}{target} and predictors: "
            f"too few to fit {p} coefficient(s)",
        )
    sample = _fit_sample(sub, max_fit_rows)
    est, y_est = (sub, y) if sample is None else (sub.take(sample), y[sample])
    beta = est.solve(np.ones(y_est.size), y_est)  # ordinary least squares
    beta, start_iterations, _ = _irls(
        est, y_est, beta, _huber_weights, DEFAULT_HUBER_TUNING, max_iter, max(tol, _START_TOL)
    )
    beta, iterations, converged = _irls(est, y_est, beta, _bisquare_weights, tuning, max_iter, tol)
    residuals = y - sub.linear(beta)
    scale = _mad_scale(residuals)
    w = (
        _bisquare_weights(residuals / (tuning * scale))
        if scale > 0
        else (residuals == 0).astype(np.float64)
    )
    k = design.keep
    gram = sub.normal_equations(w, y)[0][np.ix_(k, k)]
    try:
        a_kept = linalg.inv(gram, check_finite=False)
    except linalg.LinAlgError:
        a_kept = np.linalg.pinv(gram, hermitian=True)
    a = np.zeros((design.p, design.p))
    a[np.ix_(k, k)] = a_kept
    weights = np.zeros(model.rows.size)
    weights[fitted] = w
    fit = RobustFit(
        target=target,
        numeric=tuple(numeric),
        categorical=tuple(categorical),
        log=log,
        coefficients=MappingProxyType({model.names[j]: float(beta[j]) for j in k}),
        reference=MappingProxyType(dict(model.reference)),
        levels=MappingProxyType(dict(model.levels)),
        merged=MappingProxyType(dict(model.merged)),
        dropped=tuple(c for j, c in enumerate(model.names) if j not in set(k.tolist())),
        scale=scale,
        n=n,
        df_resid=n - p,
        iterations=iterations,
        start_iterations=start_iterations,
        converged=converged,
        tuning=tuning,
        weights_zero=int(np.sum(w == 0.0)),
        unscaled_covariance=a_kept,
    )
    return _Scored(fit, model, design.linear(beta), design.quadratic(a), weights)


def fit_expected_consumption(
    frame: pl.DataFrame | pl.LazyFrame,
    target: str,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    log: bool = True,
    max_iter: int = 50,
    tuning: float = DEFAULT_TUNING,
    tol: float = 1e-6,
    min_level_size: int = DEFAULT_MIN_LEVEL_SIZE,
    max_fit_rows: int | None = None,
) -> RobustFit:
    r"""Fit the robust expected-consumption regression and return its coefficients and diagnostics.

    The model (with ``log=True``) is

    .. math:: \log y_i = \beta_0 + \sum_j \beta_j \log x_{ij}
              + \sum_c \gamma_{c, \ell_c(i)} + \varepsilon_i,

    with one effect γ per level of each categorical, the reference (most frequent) level's
    being 0, fitted by Tukey's bisquare M-estimator. See :func:`expected_consumption` for the
    parameters and the method.

    Parameters
    ----------
    frame : polars.DataFrame or polars.LazyFrame
        One row per return (a LazyFrame is collected). Not changed.
    target : str
        Consumption column, e.g. ``total_energy_tce`` [tce] or ``water_m3`` [m³].
    numeric : sequence of str
        Size predictors, e.g. ``["building_area_m2", "occupants"]`` [m², persons].
    categorical : sequence of str
        Kind predictors, e.g. ``["sector", "admin_level", "district_code"]``.
    log : bool, default True
        Take natural logs of the target and the numeric predictors (elasticities).
    max_iter : int, default 50
        Most IRLS iterations of each stage (Huber start, bisquare).
    tuning : float, default 4.685
        Bisquare tuning constant [robust σ].
    tol : float, default 1e-6
        Convergence: largest coefficient change ≤ tol × (1 + largest |coefficient|).
    min_level_size : int, default 5
        Fewest fitted rows of a level for its own coefficient [rows].
    max_fit_rows : int, optional
        Estimate on a subsample of about this many rows (see :func:`expected_consumption`).

    Returns
    -------
    RobustFit
        Coefficients by name, scale, n, iterations, convergence and the matrices behind the
        leverages.

    Raises
    ------
    UnusableInputError
        If a column is missing or not numeric, or too few rows are valid to fit the model.
    SettingsError
        If a setting is out of range.
    """
    data = _collect(frame, target, numeric, categorical, max_iter, tuning, None, min_level_size)
    return _fit(
        data,
        target,
        numeric,
        categorical,
        log=log,
        max_iter=max_iter,
        tuning=tuning,
        tol=tol,
        min_level_size=min_level_size,
        max_fit_rows=max_fit_rows,
    ).fit


def _collect(
    frame: pl.DataFrame | pl.LazyFrame,
    target: str,
    numeric: Sequence[str],
    categorical: Sequence[str],
    max_iter: int,
    tuning: float,
    level: float | None,
    min_level_size: int,
) -> pl.DataFrame:
    """Check the settings and columns, then collect the model's columns."""
    lazy = frame.lazy()
    schema = lazy.collect_schema()
    _check(schema, target, numeric, categorical, max_iter, tuning, level, min_level_size)
    return lazy.select(list(dict.fromkeys([target, *numeric, *categorical]))).collect()


_THREADED_MIN_SIZE: Final = 200_000
"""Most values :func:`_student_cdf` evaluates in one thread."""


def _student_cdf(df: int, t: FloatArray) -> FloatArray:
    """Student t CDF with ``df`` degrees of freedom of every value, in threads for large t.

    :func:`scipy.special.stdtr` (about 0.2 µs a value) releases the GIL: chunks of a large
    array evaluate in parallel, each value exactly as in one call.
    """
    workers = min(os.cpu_count() or 1, 4)
    if t.size < _THREADED_MIN_SIZE or workers < 2:
        return special.stdtr(df, t)
    with ThreadPoolExecutor(workers) as pool:
        parts = list(pool.map(lambda chunk: special.stdtr(df, chunk), np.array_split(t, workers)))
    return np.concatenate(parts)


def _scatter(n: int, rows: npt.NDArray[np.int64], values: FloatArray) -> FloatArray:
    out = np.full(n, np.nan)
    out[rows] = values
    return out


def expected_consumption(
    frame: FrameT,
    target: str,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    log: bool = True,
    prefix: str = "model_",
    max_iter: int = 50,
    tuning: float = DEFAULT_TUNING,
    level: float = 0.95,
    tol: float = 1e-6,
    min_level_size: int = DEFAULT_MIN_LEVEL_SIZE,
    max_fit_rows: int | None = None,
) -> FrameT:
    """Give each return its expected consumption from a robust regression on size and kind.

    Parameters
    ----------
    frame : polars.DataFrame or polars.LazyFrame
        One row per return, e.g. returns joined with the directory's ``sector``,
        ``admin_level``, ``district_code`` and with ``total_energy_tce`` from
        :func:`energy_audit.indicators.indicators`. Not changed.
    target : str
        Consumption column to model, e.g. ``total_energy_tce`` [tce] or ``water_m3`` [m³].
    numeric : sequence of str
        Size predictors, e.g. ``["building_area_m2", "occupants"]`` [m², persons]; entered
        as natural logs when ``log``.
    categorical : sequence of str
        Kind predictors (any dtype, compared as text), one-hot coded with the most frequent
        level as reference; null is a level of its own (``"(null)"``).
    log : bool, default True
        Model log(target) on log(numeric): multiplicative effects, residuals as log ratios.
    prefix : str, default "model_"
        Prefix of the added columns.
    max_iter : int, default 50
        Most IRLS iterations of each stage (Huber start, bisquare).
    tuning : float, default 4.685
        Tukey bisquare constant c [robust σ]: a residual beyond c robust σ gets weight 0.
    level : float, default 0.95
        Coverage of the prediction interval.
    tol : float, default 1e-6
        Convergence: largest coefficient change ≤ tol × (1 + largest |coefficient|).
    min_level_size : int, default 5
        Fewest fitted rows a categorical level needs for its own coefficient [rows]; rarer
        levels are merged into ``"(other)"`` (into the reference if fewer than this together).
    max_fit_rows : int, optional
        Estimate the coefficients on a random subsample of about this many rows when more
        rows are valid (every categorical level keeps at least :data:`SAMPLE_LEVEL_ROWS` rows,
        all of a rarer level's); the scale, leverages, residuals and intervals are those of
        all rows. The sample depends on the predictors only and is the same on every run.
        ``None`` (default): all rows.

    Returns
    -------
    polars.DataFrame or polars.LazyFrame
        The kind of frame given (a LazyFrame is collected internally and returned lazy): its
        columns (a column with the name of an added one is replaced), then, Float64:

        - ``<prefix>expected``: exp(x β), the model's median prediction in the target's units
          (x β itself when ``log=False``);
        - ``<prefix>residual``: log(target) − x β [natural log units], the log ratio of the
          reported to the expected value (target − x β when ``log=False``);
        - ``<prefix>studentized``: residual / (s · √(1 − hᵢ)), s the robust scale and hᵢ the
          leverage [robust σ];
        - ``<prefix>low``, ``<prefix>high``: prediction interval at ``level``, in the target's
          units: exp(x β ∓ t · s · √(1 + x (XᵀWX)⁻¹ xᵀ)), t the Student quantile with n − p
          degrees of freedom;
        - ``<prefix>p``: two-sided p-value of the studentized residual, Student t with n − p
          degrees of freedom.

        Rows whose numeric predictors are not valid (null, non-finite, or ≤ 0 when ``log``) get
        nulls; rows with valid predictors but a target that is not (null, zero …) get
        ``expected``, ``low`` and ``high`` and null residuals.

    Raises
    ------
    UnusableInputError
        If a column is missing or not numeric, or too few rows are valid to fit the model.
    SettingsError
        If a setting is out of range.

    See Also
    --------
    fit_expected_consumption : the fitted coefficients and diagnostics (:class:`RobustFit`).

    Notes
    -----
    The regression is fitted on the rows whose target and numeric predictors are valid. Design:
    an intercept, the (log) numeric predictors, and for each categorical one 0/1 column per
    level except the reference (its most frequent level); levels with fewer than
    ``min_level_size`` fitted rows share one ``"(other)"`` column. Columns that are linear
    combinations of others are dropped (:attr:`RobustFit.dropped`).

    Estimation, by iteratively reweighted least squares (weighted normal equations):

    1. ordinary least squares;
    2. Huber's M-estimate [3]_ (weights min(1, 1.345 s / |r|)), the starting fit;
    3. Tukey's bisquare M-estimate [2]_ (weights (1 − (r / (c s))²)² for |r| < c s, else 0),
       c = ``tuning``;

    with s = 1.4826 × MAD of the residuals re-estimated at each iteration. The reported scale
    is that of the final residuals. Leverages are the diagonal of the weighted hat matrix,
    hᵢ = wᵢ xᵢ (XᵀWX)⁻¹ xᵢᵀ, so a row the fit rejected (wᵢ = 0) has hᵢ = 0 and its
    studentized residual is its residual in robust σ. The interval is that of a new return
    with the row's predictors, using s² (XᵀWX)⁻¹ as the covariance of β (an approximation for
    an M-estimate). ``expected`` is the exp of the predicted log: the median, not the mean, of
    the predicted distribution, which is what a check compares a reported value with.

    Like the regressions behind the ENERGY STAR score [1]_ (energy use predicted from size and
    operating characteristics, actual use compared with the prediction), but on the log scale
    and fitted robustly to the returns themselves, so that the defects under review do not
    shape the expectation.

    Computation: the n × p design matrix is never formed. Each row has one level per
    categorical, and the rows fall into few cells (distinct combinations of levels, found by
    one hash pass over the labels), so each iteration assembles XᵀWX and XᵀWy from a small
    dense product (intercept and numeric columns) and weighted sums per cell
    (:func:`numpy.bincount`), then counts per level and per pair of levels over the cells,
    and solves a p × p system; Xβ and the leverages are gathers of the same kind, and the MAD
    scale a selection rather than a sort. About 0.6 s for 1 million rows, five categoricals
    (45 columns) and ``max_fit_rows=200_000`` on two cores; sums grouped by cell round
    differently from sums by level, which moves the coefficients by about 10⁻¹¹ (relative).

    References
    ----------
    .. [1] ENERGY STAR, *Portfolio Manager Technical Reference: ENERGY STAR Score*, U.S. EPA,
       2021.
    .. [2] A. E. Beaton and J. W. Tukey, "The fitting of power series, meaning polynomials,
       illustrated on band-spectroscopic data", *Technometrics* 16(2), 147-185, 1974.
    .. [3] P. J. Huber, *Robust Statistics*, Wiley, 1981.

    Examples
    --------
    Energy proportional to area (1 kgce/m²) with 10 % noise, one figure typed in 万:

    >>> import numpy as np, polars as pl
    >>> rng = np.random.default_rng(0)
    >>> area = np.exp(rng.normal(9.0, 1.0, 200))
    >>> tce = area * 1e-3 * np.exp(rng.normal(0.0, 0.1, 200))
    >>> tce[0] /= 10_000
    >>> frame = pl.DataFrame({"tce": tce, "area": area})
    >>> out = expected_consumption(frame, "tce", numeric=["area"], categorical=[])
    >>> out["model_studentized"][0] < -50, bool((out["model_studentized"][1:].abs() < 4).all())
    (True, True)
    """
    whole = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
    data = _collect(whole, target, numeric, categorical, max_iter, tuning, level, min_level_size)
    scored = _fit(
        data,
        target,
        numeric,
        categorical,
        log=log,
        max_iter=max_iter,
        tuning=tuning,
        tol=tol,
        min_level_size=min_level_size,
        max_fit_rows=max_fit_rows,
    )
    fit, model = scored.fit, scored.model
    residual = model.y - scored.fitted_value
    h = scored.weights * scored.q
    s = fit.scale
    with np.errstate(divide="ignore", invalid="ignore"):
        studentized = np.where(
            (s > 0) & (h < 1.0), residual / (s * np.sqrt(np.maximum(1.0 - h, 0.0))), np.nan
        )
    half_width = stats.t.ppf(0.5 + level / 2.0, fit.df_resid) * s * np.sqrt(1.0 + scored.q)
    low, high = scored.fitted_value - half_width, scored.fitted_value + half_width
    back = np.exp if log else (lambda values: values)
    p = 2.0 * _student_cdf(fit.df_resid, -np.abs(studentized))
    n_rows = data.height
    values = {
        "expected": back(scored.fitted_value),
        "residual": residual,
        "studentized": studentized,
        "low": back(low),
        "high": back(high),
        "p": p,
    }
    added = [
        pl.Series(f"{prefix}{name}", _scatter(n_rows, model.rows, v), dtype=pl.Float64).fill_nan(
            None
        )
        for name, v in values.items()
    ]
    out = whole.drop([c.name for c in added], strict=False).with_columns(added)
    return out.lazy() if isinstance(frame, pl.LazyFrame) else out
