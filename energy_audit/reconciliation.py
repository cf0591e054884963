"""Whether an institution's own total reconciles with its items (自报能源消费总量与分项核对).

A return may carry the institution's own total (``reported_total_tce``, 能源消费总量). It
*reconciles* with the items when it equals Σ items × standard-coal coefficients of the year
(the return's ``total_energy_tce``, :func:`energy_audit.indicators.total_energy_expr`) up to
what the way it was written explains (domain.md §2, §6):

- its rounding: half a unit of the total's last decimal (:func:`reported_decimals`, 0-3
  decimals), plus :data:`ROUNDING_RTOL` of the total for the float noise of a figure read from
  a file; a total written as ``97`` reconciles with 96.64 tce, one written as ``96.7`` does not;
- an accepted alternative coefficient: some institutions compute with coefficients of a
  provincial standard instead of the table's (natural gas 1.2143 kgce/m³ instead of 1.33;
  ``VerifySettings.reconciliation_coefficients``). The alternative total applies all the
  accepted alternatives together (one standard in place of the other) and is compared with the
  same rounding.

:func:`reconcile_totals` adds :data:`RECONCILIATION_COLUMNS` to a frame of returns. It is the
one definition of "the total reconciles" used by the consistency rule ``CON-003`` (a gap no
rounding nor alternative explains, and material: above ``total_tolerance_pct`` and
``total_tolerance_tce``) and by the statistical rule ``STA-013`` (a gap one item × one unit
factor closes).

Examples
--------
The worked example of domain.md §3 (96.6429 tce) reported rounded to whole tce, and with gas at
1.2143 kgce/m³ (94.33 tce):

>>> import polars as pl
>>> from energy_audit.factors import ITEM_COLUMNS
>>> r = pl.DataFrame({"year": [2024] * 3, **{c: [0.0] * 3 for c in ITEM_COLUMNS.values()}})
>>> r = r.with_columns(electricity_kwh=pl.lit(500_000.0), natural_gas_m3=pl.lit(20_000.0),
...     gasoline_l=pl.lit(8_000.0), reported_total_tce=pl.Series([97.0, 94.33, 99.0]))
>>> out = reconcile_totals(r, alternative_coefficients=(("natural_gas_m3", 1.2143),))
>>> out["is_reconciled"].to_list()
[True, True, False]
>>> out["total_rounding_tce"].round(6).to_list()
[0.500097, 0.005094, 0.500099]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final, TypeVar

import polars as pl

from energy_audit.errors import SettingsError
from energy_audit.factors import ITEM_COLUMNS, TableSource
from energy_audit.indicators import coefficient_expr, total_energy_expr

__all__ = [
    "RECONCILIATION_COLUMNS",
    "ROUNDING_RTOL",
    "reconcile_totals",
    "reported_decimals",
    "rounding_tce",
]

FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)

RECONCILIATION_COLUMNS: Final = (
    "computed_total_tce",
    "alternative_total_tce",
    "total_gap_tce",
    "alternative_gap_tce",
    "total_rounding_tce",
    "is_reconciled",
)
"""Columns :func:`reconcile_totals` adds, in order."""

MAX_DECIMALS: Final = 3
"""Most decimals a reported total is taken to have: a figure with more is rounded to 0.001."""

ROUNDING_RTOL: Final = 1e-6
"""Relative slack added to the rounding of a total (float noise of a figure read from a file)."""

_KGCE_PER_TCE: Final = 1000.0


def reported_decimals(x: pl.Expr) -> pl.Expr:
    """Decimals a reported figure was given with (0-3): the first d with x·10^d whole.

    Parameters
    ----------
    x : polars.Expr
        A reported figure.

    Returns
    -------
    polars.Expr
        Int32 in 0 … :data:`MAX_DECIMALS` (``97`` → 0, ``96.6`` → 1, ``96.64`` → 2, ``96.6429``
        → 3); 3 for null.
    """
    out = pl.lit(MAX_DECIMALS)
    for d in range(MAX_DECIMALS - 1, -1, -1):
        scaled = x * 10.0**d
        whole = (scaled - scaled.round(0)).abs() <= 1e-6 * pl.max_horizontal(scaled.abs(), 1.0)
        out = pl.when(whole).then(pl.lit(d)).otherwise(out)
    return out


def rounding_tce(reported: pl.Expr) -> pl.Expr:
    """How far a reported total may be from the true one by its rounding alone [tce].

    Half a unit of the total's last decimal (:func:`reported_decimals`) plus
    :data:`ROUNDING_RTOL` × |total|: 0.5 tce for a total written to whole tce, 0.005 tce for one
    written to 0.01 tce.

    Parameters
    ----------
    reported : polars.Expr
        The reported total [tce].

    Returns
    -------
    polars.Expr
        Float64 [tce], null where ``reported`` is null.
    """
    half_unit = 0.5 * pl.lit(10.0).pow(-reported_decimals(reported).cast(pl.Float64))
    return half_unit + ROUNDING_RTOL * reported.abs()


def _alternatives(
    alternative_coefficients: Mapping[str, float] | Iterable[tuple[str, float]],
) -> dict[str, float]:
    pairs = (
        dict(alternative_coefficients)
        if isinstance(alternative_coefficients, Mapping)
        else dict(tuple(p) for p in alternative_coefficients)
    )
    items = set(ITEM_COLUMNS.values())
    for column, value in pairs.items():
        if column not in items:
            raise SettingsError(
                f"替代折标系数：{column!r} 不是能源分项列；"
                f"可用的列：{'、'.join(ITEM_COLUMNS.values())}",
                f"alternative coefficients: {column!r} is no energy item column; known: "
                f"{', '.join(ITEM_COLUMNS.values())}",
            )
        if not (isinstance(value, int | float) and value > 0 and value < float("inf")):
            raise SettingsError(
                f"替代折标系数：{column} 的系数 {value!r} 应为正数（千克标准煤/单位）",
                f"alternative coefficients: {column} is {value!r}, expected a positive number "
                "[kgce per unit]",
            )
    return pairs


def reconcile_totals(
    returns: FrameT,
    *,
    coefficients: TableSource | None = None,
    alternative_coefficients: Mapping[str, float] | Iterable[tuple[str, float]] = (),
) -> FrameT:
    """Add the computed totals, the gaps and whether the own total reconciles to each return.

    Parameters
    ----------
    returns : polars.DataFrame or polars.LazyFrame
        Returns with ``year`` (integer), ``reported_total_tce`` [tce] (absent: not reported)
        and the quantity columns (:data:`energy_audit.factors.ITEM_COLUMNS`; absent or null:
        0).
    coefficients : str, os.PathLike, polars.DataFrame, polars.LazyFrame, optional
        Standard-coal coefficient table (default: the packaged GB/T 2589-2020 table).
    alternative_coefficients : mapping or iterable of (str, float), default ()
        Coefficients some institutions use instead of the table's, by quantity column [kgce per
        canonical unit of the column], e.g. ``{"natural_gas_m3": 1.2143}``.

    Returns
    -------
    polars.DataFrame or polars.LazyFrame
        The kind of frame given, its columns unchanged, followed by
        :data:`RECONCILIATION_COLUMNS` (an existing column of that name is replaced):
        ``computed_total_tce`` [tce] Σ items × coefficients of the year;
        ``alternative_total_tce`` [tce] the same with the alternative coefficients in place
        (equal to the computed total where the return has none of their items);
        ``total_gap_tce`` and ``alternative_gap_tce`` [tce] the reported total minus each;
        ``total_rounding_tce`` [tce] :func:`rounding_tce` of the reported total;
        ``is_reconciled`` (Boolean) either gap within the rounding. Null gaps, rounding and
        ``is_reconciled`` where the total is not reported or ``year`` is null.

    Raises
    ------
    SettingsError
        If the coefficient table is unusable, or an alternative names no quantity column or is
        not a positive number.
    """
    alternatives = _alternatives(alternative_coefficients)
    lazy = returns.lazy()
    schema = lazy.collect_schema()
    names = [c for c in schema.names() if c not in RECONCILIATION_COLUMNS]
    items = [c for c in ITEM_COLUMNS.values() if c in schema]
    computed = total_energy_expr(schema, coefficients)
    correction = [
        pl.col(c).cast(pl.Float64).fill_null(0.0) * (value - coefficient_expr(c, coefficients))
        for c, value in alternatives.items()
        if c in items
    ]
    alternative = pl.col("computed_total_tce") + (
        pl.sum_horizontal(correction) / _KGCE_PER_TCE if correction else pl.lit(0.0)
    )
    reported = (
        pl.col("reported_total_tce").cast(pl.Float64)
        if "reported_total_tce" in schema
        else pl.lit(None, pl.Float64)
    )
    gap, alternative_gap = pl.col("total_gap_tce"), pl.col("alternative_gap_tce")
    rounding = pl.col("total_rounding_tce")
    out = (
        lazy.with_columns(computed.alias("computed_total_tce"))
        .with_columns(alternative.alias("alternative_total_tce"))
        .with_columns(
            (reported - pl.col("computed_total_tce")).alias("total_gap_tce"),
            (reported - pl.col("alternative_total_tce")).alias("alternative_gap_tce"),
            rounding_tce(reported).alias("total_rounding_tce"),
        )
        .with_columns(
            ((gap.abs() <= rounding) | (alternative_gap.abs() <= rounding)).alias("is_reconciled")
        )
        .select(*names, *RECONCILIATION_COLUMNS)
    )
    return out.collect() if isinstance(returns, pl.DataFrame) else out
