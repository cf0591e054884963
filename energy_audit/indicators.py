"""Energy, water and CO2 indicators of the returns, and their ratio-of-sums aggregation.

Definitions (data-contract.md §3, domain.md §3):

- ``total_energy_tce`` 能源消费总量 [tce]: Σ quantity × standard-coal coefficient / 1000.
- ``energy_per_capita_kgce`` 人均综合能耗 [kgce/person]: total energy [kgce] / occupants.
- ``energy_per_m2_kgce`` 单位建筑面积能耗 [kgce/m²]: total energy [kgce] / building area.
- ``water_per_capita_m3`` 人均用水量 [m³/person]: water / occupants.
- ``co2_t`` 碳排放总量 [t]: Σ quantity × emission factor of the row's year / 1000.
- ``co2_per_m2_kg`` 单位建筑面积碳排放 [kg/m²]: CO2 [kg] / building area.

Choices made here:

- Coefficients and emission factors are chosen per row by its ``year`` (and one
  ``region_code`` for the whole frame) with the rules of :mod:`energy_audit.factors`; which rows
  were used is given by :func:`energy_audit.factors.factors_used`, never stored in the frame.
- A quantity column absent from the frame counts as 0 (the form had no such line). A null
  quantity ("not reported") also counts as 0 in the totals, so one missing item does not blank
  the institution's total; verification reports the null separately.
- On-site PV generation (``pv_generation_kwh``) is not subtracted from electricity: the returns'
  electricity is the electricity consumed, and PV is reported as a separate line.
- An intensity is null (never ``inf``) where its denominator (occupants or building area) is
  null or not > 0, and a water intensity is null where water is null.
- Groups are ratios of sums (Σ energy / Σ occupants), never means of the institutions' ratios.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, TypeVar

import polars as pl

from energy_audit import contract
from energy_audit.errors import UnusableInputError
from energy_audit.factors import ITEM_COLUMNS, FactorPeriod, TableSource, factor_periods

FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)

INDICATOR_COLUMNS: Final = contract.table("indicators").names
"""Columns added by :func:`indicators`, in order: those of ``schemas/indicators.toml``."""

REQUIRED_COLUMNS: Final = ("year", "building_area_m2", "occupants", "water_m3")
"""Columns :func:`indicators` cannot do without (energy columns may be absent: they count 0)."""

INTENSITIES: Final[tuple[tuple[str, pl.Expr, str], ...]] = (
    ("energy_per_capita_kgce", pl.col("total_energy_tce") * 1000.0, "occupants"),
    ("energy_per_m2_kgce", pl.col("total_energy_tce") * 1000.0, "building_area_m2"),
    ("water_per_capita_m3", pl.col("water_m3"), "occupants"),
    ("co2_per_m2_kg", pl.col("co2_t") * 1000.0, "building_area_m2"),
)
"""Each intensity as (column, numerator expression, denominator column): for a row and a group."""

UNIT_PRICES: Final[tuple[tuple[str, str, str], ...]] = (
    ("electricity_price_yuan_per_kwh", "electricity_kwh", "electricity_cost_yuan"),
    ("gas_price_yuan_per_m3", "natural_gas_m3", "natural_gas_cost_yuan"),
    ("water_price_yuan_per_m3", "water_m3", "water_cost_yuan"),
)
"""Each implied unit price as (column [元 per unit], quantity column, cost column [元])."""

SUM_COLUMNS: Final = ("building_area_m2", "occupants", "total_energy_tce", "water_m3", "co2_t")
"""Columns :func:`aggregate` sums for each group."""


def _check_schema(schema: pl.Schema) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in schema]
    if missing:
        raise UnusableInputError(
            f"填报数据缺少计算指标所需的列 {contract.names_zh(missing)}",
            f"returns frame lacks column(s) {', '.join(missing)} needed for the indicators",
        )
    if not schema["year"].is_integer():
        raise UnusableInputError(
            f"填报数据的 year 列（统计年度）应为整数类型，而不是 {schema['year']}",
            f"returns column year must be an integer, not {schema['year']}",
        )
    numeric = [*REQUIRED_COLUMNS[1:], *(c for c in ITEM_COLUMNS.values() if c in schema)]
    wrong = [c for c in numeric if not (schema[c].is_numeric() or schema[c] == pl.Null)]
    if wrong:
        listed_zh = "、".join(f"{c}（{schema[c]}）" for c in wrong)
        listed = ", ".join(f"{c} ({schema[c]})" for c in wrong)
        raise UnusableInputError(
            f"填报数据的列 {listed_zh}应为数值类型", f"returns column(s) {listed} must be numeric"
        )


def _by_year(periods: Sequence[FactorPeriod], value_of: str, column: str) -> pl.Expr:
    """Expression giving each row the factor of its ``year`` (first period also covers earlier)."""
    values = [getattr(p, value_of)[column] for p in periods]
    if len(set(values)) == 1:
        return pl.lit(values[0])
    later = [(p.from_year, v) for p, v in zip(periods[1:], values[1:], strict=True)][::-1]
    chain = pl.when(pl.col("year") >= later[0][0]).then(later[0][1])
    for start, value in later[1:]:
        chain = chain.when(pl.col("year") >= start).then(value)
    return chain.otherwise(values[0])


def _weighted_sum(periods: Sequence[FactorPeriod], value_of: str, schema: pl.Schema) -> pl.Expr:
    """Σ quantity × factor over the quantity columns present; null quantities count 0."""
    total = pl.when(pl.col("year").is_not_null()).then(pl.lit(0.0))
    for column in ITEM_COLUMNS.values():
        if column in schema:
            quantity = pl.col(column).cast(pl.Float64).fill_null(0.0)
            total = total + quantity * _by_year(periods, value_of, column)
    return total


def total_energy_expr(
    schema: pl.Schema | None = None, coefficients: TableSource | None = None
) -> pl.Expr:
    """Expression of ``total_energy_tce``: Σ quantity × coefficient of the row's year / 1000.

    The one definition of a return's total energy [tce], used by :func:`indicators` and by
    the reconciliation of the institution's own total (:mod:`energy_audit.reconciliation`).
    Null quantities count 0; null where ``year`` is null.

    Parameters
    ----------
    schema : polars.Schema, optional
        Schema of the frame: quantity columns absent from it count 0. Default: every
        quantity column of :data:`energy_audit.factors.ITEM_COLUMNS` is read.
    coefficients : str, os.PathLike, polars.DataFrame, polars.LazyFrame, optional
        Standard-coal coefficient table (default: the packaged GB/T 2589-2020 table).

    Returns
    -------
    polars.Expr
        Float64 [tce].

    Raises
    ------
    SettingsError
        If the coefficient table is unusable.
    """
    periods = factor_periods(coefficients)
    if schema is None:
        schema = pl.Schema(dict.fromkeys(ITEM_COLUMNS.values(), pl.Float64()))
    return _weighted_sum(periods, "kgce_per_unit", schema) / 1000.0


def coefficient_expr(column: str, coefficients: TableSource | None = None) -> pl.Expr:
    """Expression of the standard-coal coefficient of ``column`` for the row's ``year``.

    Parameters
    ----------
    column : str
        Quantity column of the returns (``natural_gas_m3``, …; :data:`ITEM_COLUMNS` values).
    coefficients : str, os.PathLike, polars.DataFrame, polars.LazyFrame, optional
        Standard-coal coefficient table (default: the packaged one).

    Returns
    -------
    polars.Expr
        Float64 [kgce per canonical unit of ``column``] (natural gas 1.33 kgce/m³ packaged).

    Raises
    ------
    SettingsError
        If the coefficient table is unusable.
    """
    return _by_year(factor_periods(coefficients), "kgce_per_unit", column)


def _ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    return pl.when(denominator > 0).then(numerator / denominator)


def unit_price_expr(quantity: str, cost: str) -> pl.Expr:
    """Implied unit price of an item (单价): its cost ÷ its quantity [元 per unit].

    Null unless both are reported and > 0 (a price of a zero quantity or cost says nothing).

    Examples
    --------
    >>> import polars as pl
    >>> r = pl.DataFrame({"kwh": [500_000.0, 0.0], "yuan": [410_000.0, 5.0]})
    >>> r.select(unit_price_expr("kwh", "yuan").alias("price"))["price"].to_list()
    [0.82, None]
    """
    q, c = pl.col(quantity), pl.col(cost)
    return pl.when((q > 0) & (c > 0)).then(c / q)


def indicators(
    returns: FrameT,
    *,
    coefficients: TableSource | None = None,
    emission_factors: TableSource | None = None,
    region_code: str = "120000",
) -> FrameT:
    """Add total energy, CO2 and the four intensities to each return.

    Parameters
    ----------
    returns : polars.DataFrame or polars.LazyFrame
        Yearly returns with the canonical columns of data-contract.md §2: at least ``year``,
        ``building_area_m2`` [m²], ``occupants`` [persons] and ``water_m3`` [m³]; the quantity
        columns ``electricity_kwh`` [kWh], ``natural_gas_m3`` [m³], ``coal_t`` [t],
        ``gasoline_l`` [L], ``diesel_l`` [L], ``lpg_kg`` [kg], ``heat_gj`` [GJ] and
        ``other_energy_tce`` [tce] where present (absent or null: 0).
    coefficients : str, os.PathLike, polars.DataFrame, polars.LazyFrame, optional
        Standard-coal coefficient table (:func:`energy_audit.factors.load_coefficients`).
        Default: packaged GB/T 2589-2020 table (electricity 0.1229 kgce/kWh, …; domain.md §2).
    emission_factors : str, os.PathLike, polars.DataFrame, polars.LazyFrame, optional
        CO2 factor table (:func:`energy_audit.factors.load_emission_factors`). Default:
        packaged table (Tianjin grid 0.7041 kg CO2/kWh, …; domain.md §2).
    region_code : str, default "120000"
        GB/T 2260 code of the region whose emission factors apply (Tianjin).

    Returns
    -------
    polars.DataFrame or polars.LazyFrame
        The kind of frame given: its columns unchanged, in order, followed by
        :data:`INDICATOR_COLUMNS` (Float64; an existing column of that name is replaced):
        ``total_energy_tce`` [tce], ``energy_per_capita_kgce`` [kgce/person],
        ``energy_per_m2_kgce`` [kgce/m²], ``water_per_capita_m3`` [m³/person], ``co2_t`` [t],
        ``co2_per_m2_kg`` [kg/m²]. A row with a null ``year`` gets null energy and CO2
        figures (no factor applies); its water per capita needs no factor.

    Raises
    ------
    UnusableInputError
        If a required column is missing or a column has a non-numeric dtype.
    SettingsError
        If a coefficient or factor table is unusable or ``region_code`` is not 6 digits.

    Notes
    -----
    Vectorised: the years are split into the periods of
    :func:`energy_audit.factors.factor_periods` and each factor becomes a ``when/then`` on
    ``year``; no Python code runs per row. Null quantities count as 0 and PV generation is not
    subtracted (module docstring).

    Examples
    --------
    The worked example of domain.md §3 (Tianjin, 2022):

    >>> import polars as pl
    >>> from energy_audit.indicators import indicators
    >>> r = pl.DataFrame({"year": [2022], "electricity_kwh": [500_000.0],
    ...     "natural_gas_m3": [20_000.0], "gasoline_l": [8_000.0], "water_m3": [6_000.0],
    ...     "building_area_m2": [10_000.0], "occupants": [300]})
    >>> out = indicators(r)
    >>> round(out["total_energy_tce"][0], 2), round(out["co2_t"][0], 2)
    (96.64, 412.37)
    """
    lazy = returns.lazy()
    schema = lazy.collect_schema()
    _check_schema(schema)
    periods = factor_periods(coefficients, emission_factors, region_code)
    out = lazy.with_columns(
        (_weighted_sum(periods, "kgce_per_unit", schema) / 1000.0).alias("total_energy_tce"),
        (_weighted_sum(periods, "co2_kg_per_unit", schema) / 1000.0).alias("co2_t"),
    ).with_columns(
        _ratio(numerator, pl.col(denominator)).alias(name)
        for name, numerator, denominator in INTENSITIES
    )
    names = [c for c in schema.names() if c not in INDICATOR_COLUMNS]
    out = out.select(*names, *INDICATOR_COLUMNS)
    return out.collect() if isinstance(returns, pl.DataFrame) else out


def aggregate(
    frame: FrameT,
    by: str | Sequence[str] | None = None,
    *,
    per_year: bool = True,
    coefficients: TableSource | None = None,
    emission_factors: TableSource | None = None,
    region_code: str = "120000",
) -> FrameT:
    """Sum returns by group and give each group's intensities as ratios of sums.

    Parameters
    ----------
    frame : polars.DataFrame or polars.LazyFrame
        Returns, with or without the columns of :func:`indicators`; if any of
        :data:`INDICATOR_COLUMNS` is missing, :func:`indicators` is applied first (with the
        tables and region given here).
    by : str or sequence of str, optional
        Grouping column(s), e.g. ``"district_code"``, ``["sector"]``, ``["admin_level"]``;
        ``None`` for one group (the whole city).
    per_year : bool, default True
        Also group by ``year`` (first key) when the frame has that column, so that several
        years are never summed together. ``False`` sums across years.
    coefficients, emission_factors : str, os.PathLike, polars.DataFrame, polars.LazyFrame, optional
        Tables used when the indicators must be computed (see :func:`indicators`).
    region_code : str, default "120000"
        Region used when the indicators must be computed (see :func:`indicators`).

    Returns
    -------
    polars.DataFrame or polars.LazyFrame
        The kind of frame given, one row per group sorted by the keys (nulls last): the keys,
        ``institutions`` (distinct ``institution_id``, or rows where there is none),
        ``building_area_m2`` [m²], ``occupants`` [persons], ``total_energy_tce`` [tce],
        ``water_m3`` [m³], ``co2_t`` [t] (plain sums of all rows), then
        ``energy_per_capita_kgce`` [kgce/person], ``energy_per_m2_kgce`` [kgce/m²],
        ``water_per_capita_m3`` [m³/person], ``co2_per_m2_kg`` [kg/m²].

    Raises
    ------
    UnusableInputError
        If a grouping column or a column the indicators need is missing.
    SettingsError
        If the indicators must be computed and a table is unusable.

    Notes
    -----
    Each intensity is Σ numerator / Σ denominator over the rows whose own intensity is defined
    (not null), so a return without occupants adds neither its energy nor its occupants to the
    per-capita figure, and a group of one institution has that institution's intensities. It is
    never a mean of the institutions' ratios (data-contract.md §3). A group in which no row has
    a defined intensity gets null.
    """
    keys = [by] if isinstance(by, str) else list(by or [])
    lazy = frame.lazy()
    schema = lazy.collect_schema()
    missing = [c for c in (*keys, "building_area_m2", "occupants", "water_m3") if c not in schema]
    if missing:
        raise UnusableInputError(
            f"待汇总的数据缺少列 {contract.names_zh(missing)}",
            f"frame to aggregate lacks column(s) {', '.join(missing)}",
        )
    if not all(c in schema for c in INDICATOR_COLUMNS):
        lazy = indicators(
            lazy,
            coefficients=coefficients,
            emission_factors=emission_factors,
            region_code=region_code,
        )
    if per_year and "year" in schema and "year" not in keys:
        keys = ["year", *keys]
    count = pl.col("institution_id").n_unique() if "institution_id" in schema else pl.len()
    sums = [
        count.cast(pl.Int64).alias("institutions"),
        *(pl.col(c).sum() for c in SUM_COLUMNS),
    ]
    parts = []
    for name, numerator, denominator in INTENSITIES:
        defined = pl.col(name).is_not_null()
        parts += [
            numerator.filter(defined).sum().alias(f"__num_{name}"),
            pl.col(denominator).filter(defined).cast(pl.Float64).sum().alias(f"__den_{name}"),
        ]
    grouped = (
        lazy.group_by(keys).agg(*sums, *parts).sort(keys, nulls_last=True)
        if keys
        else lazy.select(*sums, *parts)
    )
    out = grouped.select(
        *keys,
        "institutions",
        *SUM_COLUMNS,
        *(
            _ratio(pl.col(f"__num_{name}"), pl.col(f"__den_{name}")).alias(name)
            for name, _, _ in INTENSITIES
        ),
    )
    return out.collect() if isinstance(frame, pl.DataFrame) else out
