"""Standard-coal coefficients and CO2 emission factors: the cited tables and how rows are chosen.

Two tables ship with the package, one row per value, each row with its ``source`` and a ``tag``
(``src`` found in a public source, ``derived`` computed from sourced numbers, ``unverified`` a
sensible default not confirmed against the official text; domain.md §2):

``energy_audit/data/coefficients.csv``
    ``table_version, item, kind, value, unit, valid_from, source, tag``. ``kind`` is
    ``kgce_per_unit`` (standard-coal coefficient, GB/T 2589-2020 综合能耗计算通则, electricity at
    its calorific equivalent 当量值) or ``density_kg_per_l`` (used to turn a per-kg coefficient
    into a per-litre one, and by the readers to turn 吨/千克 of gasoline or diesel into litres).
    The packaged rows carry ``valid_from = 2020``: the year of the GB/T 2589-2020 edition and the
    baseline year of the 14th Five-Year plan; by the fallback rule below they also serve every
    earlier year.
``energy_audit/data/emission_factors.csv``
    ``table_version, item, region_code, valid_from, value, unit, source, tag``. Grid electricity
    has one row per published year (生态环境部/国家统计局): national (``000000``) 2021-2023 and
    Tianjin (``120000``) 2022. The fuel and heat factors are national defaults with
    ``valid_from = 2020``. On-site PV generation has no factor (it is no item of the tables).

The item names (``electricity``, ``natural_gas``, …) and the returns column each item belongs to
come from the data contract (``schemas/returns.toml``, key ``item``), exposed here as
:data:`ITEM_COLUMNS`; the canonical unit of each column and the unit labels a table may use
(``kgce/kg``, ``kg CO2/m3``, ``kg/L``…) come from ``schemas/units.toml``.

Selection rules
---------------
For a data year ``Y`` and an item, the row used is the one with the latest ``valid_from <= Y``;
when every row of the item starts after ``Y``, the item's earliest row is used (so 2020 data is
computed with the first published grid factor rather than with nothing).

Emission factors are also chosen by region, per item: the rows of ``region_code`` itself; if it
has none for the item, the rows of its province (``region_code[:2] + "0000"``: a district such
as ``120101`` falls back to Tianjin); only if neither has any, the national rows ``000000``.
The year rule is then applied within the chosen region. So with the packaged table, Tianjin
electricity in 2021 uses Tianjin's own 2022 factor 0.7041 (its earliest row), not the national
2021 average 0.5568: a province's factor describes its grid better than the national mean.

Every table passed by a user goes through the same validation as the packaged one; a table that
cannot be used raises :class:`~energy_audit.errors.SettingsError` naming the table and the rows.
"""

from __future__ import annotations

import functools
import io
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, TypeAlias

import polars as pl

from energy_audit import contract
from energy_audit.errors import ContractError, SettingsError

TableSource: TypeAlias = str | os.PathLike[str] | pl.DataFrame | pl.LazyFrame
"""A reference table: a CSV or Parquet file, or a polars frame with the table's columns."""

ITEM_COLUMNS: Final[Mapping[str, str]] = MappingProxyType(
    {c.item: c.name for c in contract.table("returns").columns if c.item is not None}
)
"""Energy item of the coefficient tables → quantity column of the returns, in contract order.

``{"electricity": "electricity_kwh", "natural_gas": "natural_gas_m3", "coal": "coal_t",
"gasoline": "gasoline_l", "diesel": "diesel_l", "lpg": "lpg_kg", "heat": "heat_gj",
"other_energy": "other_energy_tce"}``, read from ``schemas/returns.toml`` (key ``item``).
"""

NATIONAL_REGION_CODE: Final = "000000"
"""``region_code`` of the national rows of the emission-factor table."""

COEFFICIENT_KINDS: Final = ("kgce_per_unit", "density_kg_per_l")
"""Allowed ``kind`` values of the coefficient table."""

TAGS: Final = ("src", "derived", "unverified")
"""Allowed ``tag`` values (domain.md: found in a source, computed from sourced numbers, neither)."""

COEFFICIENT_COLUMNS: Final[Mapping[str, pl.DataType]] = MappingProxyType(
    {
        "table_version": pl.String(),
        "item": pl.String(),
        "kind": pl.String(),
        "value": pl.Float64(),
        "unit": pl.String(),
        "valid_from": pl.Int64(),
        "source": pl.String(),
        "tag": pl.String(),
    }
)
"""Columns of the coefficient table and their dtypes after loading."""

EMISSION_FACTOR_COLUMNS: Final[Mapping[str, pl.DataType]] = MappingProxyType(
    {
        "table_version": pl.String(),
        "item": pl.String(),
        "region_code": pl.String(),
        "valid_from": pl.Int64(),
        "value": pl.Float64(),
        "unit": pl.String(),
        "source": pl.String(),
        "tag": pl.String(),
    }
)
"""Columns of the emission-factor table and their dtypes after loading."""

USED_COLUMNS: Final = (
    "year",
    "kind",
    "item",
    "column",
    "region_code",
    "value",
    "unit",
    "valid_from",
    "table_version",
    "source",
    "tag",
)
"""Columns of the frame returned by :func:`factors_used`."""

_PACKAGED = {"coefficients": "coefficients.csv", "emission factors": "emission_factors.csv"}
_TABLE_ZH = {"coefficients": "折标系数表", "emission factors": "排放因子表"}
_MAX_LISTED_PROBLEMS = 20

_Text: TypeAlias = tuple[str, str]
"""A text in Chinese and in English (a table's label, a problem of a row)."""

_COEFFICIENTS_TABLE: Final[_Text] = ("折标系数表", "coefficients table")


# --------------------------------------------------------------------------------------------
# units


@dataclass(frozen=True)
class _Ratio:
    """A unit ``numerator/denominator`` resolved against ``schemas/units.toml``."""

    numerator: contract.Unit
    denominator: contract.Unit


class _BadUnit(ValueError):
    """A unit text that is no ratio of registry units; ``args[0]`` English, ``zh`` Chinese."""

    def __init__(self, zh: str, en: str) -> None:
        super().__init__(en)
        self.zh = zh


def _parse_ratio(unit: str, *, co2: bool = False) -> _Ratio:
    """Split ``"kgce/kWh"`` (or ``"kg CO2/kWh"`` with ``co2``) into two registry units.

    Raises ``_BadUnit`` (a ``ValueError``) with a short reason in Chinese and English when the
    text is not such a ratio.
    """
    parts = unit.split("/")
    if len(parts) != 2:
        raise _BadUnit(
            f"单位 {unit!r} 不是“分子/分母”的形式",
            f"unit {unit!r} is not of the form numerator/denominator",
        )
    num_text, den_text = (contract.normalize_label(p) for p in parts)
    if co2:
        if not num_text.endswith("co2"):
            raise _BadUnit(
                f"单位 {unit!r} 应为每单位能源的二氧化碳质量，例如 'kg CO2/kWh'",
                f"unit {unit!r} must be mass of CO2 per unit, e.g. 'kg CO2/kWh'",
            )
        num_text = num_text.removesuffix("co2")
    registry = contract.units()
    num, den = registry.get(num_text), registry.get(den_text)
    if num is None or den is None:
        unknown = num_text if num is None else den_text
        raise _BadUnit(
            f"单位 {unit!r}：{unknown!r} 不是 schemas/units.toml 中的单位",
            f"unit {unit!r}: {unknown!r} is not a unit of schemas/units.toml",
        )
    return _Ratio(num, den)


def _column_unit(item: str) -> contract.Unit:
    """Canonical unit of the returns column of ``item``."""
    return _unit(contract.table("returns").column(ITEM_COLUMNS[item]).unit or "")


def _unit(label: str) -> contract.Unit:
    unit = contract.units().get(label)
    if unit is None:  # pragma: no cover - schemas/units.toml defines kg and kgce
        raise ContractError(
            f"schemas/units.toml 中没有单位 {label!r}", f"schemas/units.toml has no unit {label!r}"
        )
    return unit


def _per_column_unit(
    value: float, den: contract.Unit, col: contract.Unit, density: float | None
) -> float:
    """Convert ``value`` per ``den`` into ``value`` per ``col``.

    ``density`` [t/m³ = kg/L] is required (callers check :func:`_needs_density`) when one unit
    is a mass and the other a volume.
    """
    if den.dimension == col.dimension:
        return value * (col.factor / den.factor)  # ratio first: exactly 1.0 for equal units
    if density is None:  # pragma: no cover - callers pass one when _needs_density
        raise SettingsError(
            f"将“每 {den.label}”换算为“每 {col.label}”需要密度",
            f"a density is needed to convert per {den.label} to per {col.label}",
        )
    if den.dimension == "mass" and col.dimension == "volume":
        return value * density * col.factor / den.factor
    return value * col.factor / (density * den.factor)


def _needs_density(den: contract.Unit, col: contract.Unit) -> bool:
    return den.dimension != col.dimension


def _compatible(den: contract.Unit, col: contract.Unit) -> bool:
    return den.dimension == col.dimension or {den.dimension, col.dimension} == {"mass", "volume"}


def _density_kg_per_l(row: Mapping[str, Any]) -> float:
    ratio = _parse_ratio(row["unit"])
    return row["value"] * (ratio.numerator.factor / ratio.denominator.factor)


# --------------------------------------------------------------------------------------------
# loading and validation


def _row_name(index: int, is_csv: bool) -> _Text:
    """Where a row is: the line of the CSV file, else the 1-based data row (header excluded)."""
    if is_csv:
        return f"第 {index + 2} 行", f"line {index + 2}"
    return f"数据第 {index + 1} 行", f"row {index + 1}"


def _read_csv_text(data: bytes) -> pl.DataFrame:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("gb18030")  # CSV saved by Chinese Excel (toolchain.md)
    return pl.read_csv(io.BytesIO(text.encode("utf-8")), infer_schema=False)


def _read(source: TableSource | None, what: str) -> tuple[pl.DataFrame, _Text, bool]:
    """Read a table; return the raw frame, a label naming it, and whether it came from a CSV."""
    zh = _TABLE_ZH[what]
    if source is None:
        name = _PACKAGED[what]
        data = resources.files("energy_audit").joinpath("data", name).read_bytes()
        label = (
            f"内置{zh} energy_audit/data/{name}",
            f"packaged {what} table energy_audit/data/{name}",
        )
        return _read_csv_text(data), label, True
    if isinstance(source, pl.LazyFrame):
        source = source.collect()
    if isinstance(source, pl.DataFrame):
        return source, (f"{zh}（DataFrame）", f"{what} table (DataFrame)"), False
    path = Path(source)
    label = (f"{zh} {path}", f"{what} table {path}")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pl.read_parquet(path), label, False
        if path.suffix.lower() in (".csv", ".txt"):
            return _read_csv_text(path.read_bytes()), label, True
    except (OSError, UnicodeDecodeError, pl.exceptions.PolarsError) as exc:
        raise SettingsError(
            f"{label[0]}：无法读取文件：{exc}", f"{label[1]}: cannot read the file: {exc}"
        ) from exc
    raise SettingsError(
        f"{label[0]}：未知的文件类型 {path.suffix!r}，请使用 .csv 或 .parquet",
        f"{label[1]}: unknown file type {path.suffix!r}; use .csv or .parquet",
    )


def _typed(
    raw: pl.DataFrame, columns: Mapping[str, pl.DataType], label: _Text, is_csv: bool
) -> tuple[pl.DataFrame, list[_Text]]:
    """Select and type the table's columns; list the cells that are not of their type."""
    missing = [c for c in columns if c not in raw.columns]
    if missing:
        raise SettingsError(
            f"{label[0]}：缺少列 {'、'.join(missing)}；该表应有列 {'、'.join(columns)}",
            f"{label[1]}: missing column(s) {', '.join(missing)}; "
            f"the table needs {', '.join(columns)}",
        )
    text = raw.select(
        pl.col(c).cast(pl.String).str.strip_chars().replace("", None)
        if raw.schema[c] == pl.String
        else pl.col(c)
        for c in columns
    )
    problems: list[_Text] = []
    exprs = []
    for name, dtype in columns.items():
        col = pl.col(name)
        if dtype == pl.String():
            exprs.append(col.cast(pl.String))
            continue
        as_float = col.cast(pl.Float64, strict=False)
        unreadable = as_float.is_null()
        kind = ("数字", "a number")
        if dtype == pl.Int64():
            unreadable = unreadable | (as_float.floor() != as_float)
            kind = ("整数", "an integer")
        bad = col.is_not_null() & unreadable
        for i, value in text.with_row_index().filter(bad).select("index", name).iter_rows():
            where = _row_name(i, is_csv)
            problems.append(
                (
                    f"{where[0]}：{name} 的值 {value!r} 不是{kind[0]}",
                    f"{where[1]}: {name} {value!r} is not {kind[1]}",
                )
            )
        exprs.append(pl.when(~bad).then(as_float).cast(dtype))
    return text.select(exprs), problems


def _check_rows(
    table: pl.DataFrame, label: _Text, is_csv: bool, problems: list[_Text], *, co2: bool
) -> None:
    """Append the problems of each row (nulls, unknown names, bad values and units)."""
    for i, row in enumerate(table.iter_rows(named=True)):
        zh, en = _row_name(i, is_csv)
        empty = [k for k, v in row.items() if v is None]
        if empty:
            problems.append((f"{zh}：{'、'.join(empty)} 为空", f"{en}: empty {', '.join(empty)}"))
            continue
        item = row["item"]
        if item not in ITEM_COLUMNS:
            problems.append(
                (
                    f"{zh}：未知的能源品种 item {item!r}；已知品种：{'、'.join(ITEM_COLUMNS)}",
                    f"{en}: unknown item {item!r}; known items: {', '.join(ITEM_COLUMNS)}",
                )
            )
            continue
        if row["tag"] not in TAGS:
            problems.append(
                (
                    f"{zh}：tag {row['tag']!r} 不是 {'、'.join(TAGS)} 之一",
                    f"{en}: tag {row['tag']!r} is not one of {', '.join(TAGS)}",
                )
            )
        kind = "co2_kg_per_unit" if co2 else row["kind"]
        if not co2 and kind not in COEFFICIENT_KINDS:
            problems.append(
                (
                    f"{zh}：kind {kind!r} 不是 {'、'.join(COEFFICIENT_KINDS)} 之一",
                    f"{en}: kind {kind!r} is not one of {', '.join(COEFFICIENT_KINDS)}",
                )
            )
            continue
        value = row["value"]
        if not math.isfinite(value) or value < 0 or (value == 0 and not co2):
            need = "≥ 0" if co2 else "> 0"
            problems.append(
                (
                    f"{zh}：{item} 的 value {value!r} 应为有限数且 {need}",
                    f"{en}: value {value!r} of {item} must be finite and {need}",
                )
            )
        if co2 and not (len(row["region_code"]) == 6 and row["region_code"].isdigit()):
            problems.append(
                (
                    f"{zh}：region_code {row['region_code']!r} 应为 6 位数字区划代码（GB/T 2260）",
                    f"{en}: region_code {row['region_code']!r} must be 6 digits (GB/T 2260)",
                )
            )
        try:
            ratio = _parse_ratio(row["unit"], co2=co2)
        except _BadUnit as exc:
            problems.append((f"{zh}：{exc.zh}", f"{en}: {exc}"))
            continue
        num, den, col = ratio.numerator, ratio.denominator, _column_unit(item)
        if kind == "density_kg_per_l":
            if (num.dimension, den.dimension) != ("mass", "volume"):
                problems.append(
                    (
                        f"{zh}：密度单位 {row['unit']!r} 不是“质量/体积”",
                        f"{en}: density unit {row['unit']!r} is not mass/volume",
                    )
                )
            continue
        want = "mass" if co2 else "coal_equivalent"
        if num.dimension != want:
            problems.append(
                (
                    f"{zh}：{item} 的单位 {row['unit']!r} 的分子应为"
                    + ("质量" if co2 else "标准煤量"),
                    f"{en}: unit {row['unit']!r} of {item} must count {want.replace('_', ' ')}"
                    " in its numerator",
                )
            )
        elif not _compatible(den, col):
            problems.append(
                (
                    f"{zh}：单位 {row['unit']!r} 不能用于 {item}：其填报列 "
                    f"{ITEM_COLUMNS[item]} 的单位是 {col.label}",
                    f"{en}: unit {row['unit']!r} cannot apply to {item}, whose returns column "
                    f"{ITEM_COLUMNS[item]} is in {col.label}",
                )
            )


def _check_keys(table: pl.DataFrame, key: list[str], problems: list[_Text]) -> None:
    """Append a problem for each repeated key and for each item without a row."""
    dup = table.filter(pl.struct(key).is_duplicated()).select(key).unique(maintain_order=True)
    for values in dup.iter_rows():
        named = ", ".join(f"{k}={v!r}" for k, v in zip(key, values, strict=True))
        problems.append((f"{named} 重复出现", f"{named} repeats"))
    kinds = table.filter(pl.col("kind") == "kgce_per_unit") if "kind" in table.columns else table
    missing = [item for item in ITEM_COLUMNS if item not in set(kinds["item"])]
    if missing:
        has_kind = "kind" in table.columns
        problems.append(
            (
                f"表中没有能源品种 {'、'.join(missing)} 的"
                + (" kgce_per_unit 行" if has_kind else "行"),
                f"no {'kgce_per_unit row' if has_kind else 'row'} for item(s) {', '.join(missing)}",
            )
        )


def _raise(label: _Text, problems: list[_Text]) -> None:
    if not problems:
        return
    listed = problems[:_MAX_LISTED_PROBLEMS]
    more = len(problems) - len(listed)
    tail_zh = f"\n  … 另有 {more} 个问题" if more else ""
    tail_en = f"\n  … and {more} more" if more else ""
    space = "" if label[0].endswith("）") else " "
    raise SettingsError(
        f"{label[0]}{space}无法使用（{len(problems)} 个问题）：\n  - "
        + "\n  - ".join(zh for zh, _ in listed)
        + tail_zh,
        f"{label[1]} cannot be used ({len(problems)} problem(s)):\n  - "
        + "\n  - ".join(en for _, en in listed)
        + tail_en,
    )


def _validated_coefficients(source: TableSource | None) -> pl.DataFrame:
    raw, label, is_csv = _read(source, "coefficients")
    table, problems = _typed(raw, COEFFICIENT_COLUMNS, label, is_csv)
    _check_rows(table, label, is_csv, problems, co2=False)
    _raise(label, problems)
    _check_keys(table, ["item", "kind", "valid_from"], problems)
    _raise(label, problems)
    for year in table["valid_from"].unique().sort():  # every combination the rules can pick
        _select_coefficients(table, year, label)
    return table


def _validated_emission_factors(source: TableSource | None) -> pl.DataFrame:
    raw, label, is_csv = _read(source, "emission factors")
    table, problems = _typed(raw, EMISSION_FACTOR_COLUMNS, label, is_csv)
    _check_rows(table, label, is_csv, problems, co2=True)
    _raise(label, problems)
    _check_keys(table, ["item", "region_code", "valid_from"], problems)
    _raise(label, problems)
    return table


@functools.cache
def _packaged_coefficients() -> pl.DataFrame:
    return _validated_coefficients(None)


@functools.cache
def _packaged_emission_factors() -> pl.DataFrame:
    return _validated_emission_factors(None)


def load_coefficients(path: TableSource | None = None) -> pl.DataFrame:
    """Load and validate a standard-coal coefficient table.

    Parameters
    ----------
    path : str, os.PathLike, polars.DataFrame or polars.LazyFrame, optional
        A ``.csv`` (UTF-8 or GB18030) or ``.parquet`` file, or a frame, with the columns of
        :data:`COEFFICIENT_COLUMNS`. Default: the packaged table
        ``energy_audit/data/coefficients.csv`` (GB/T 2589-2020, domain.md §2).

    Returns
    -------
    polars.DataFrame
        The table's columns in the order of :data:`COEFFICIENT_COLUMNS`, typed; ``value`` in
        [kgce per unit] or [kg/L] as the ``unit`` column says.

    Raises
    ------
    SettingsError
        If the file cannot be read, a column is missing, or a row is unusable (empty cell,
        unknown item, kind or tag, value not > 0, unit not ``kgce/<unit>`` resp. ``kg/L`` or
        not convertible to the returns column's unit, a repeated ``(item, kind, valid_from)``,
        an item without coefficient, a per-mass coefficient of a litre column without density).
        The message names the table and the line (CSV) or row (1-based, header excluded).
    """
    if path is None:
        return _packaged_coefficients().clone()
    return _validated_coefficients(path)


def load_emission_factors(path: TableSource | None = None) -> pl.DataFrame:
    """Load and validate a CO2 emission-factor table.

    Parameters
    ----------
    path : str, os.PathLike, polars.DataFrame or polars.LazyFrame, optional
        A ``.csv`` (UTF-8 or GB18030) or ``.parquet`` file, or a frame, with the columns of
        :data:`EMISSION_FACTOR_COLUMNS`. Default: the packaged table
        ``energy_audit/data/emission_factors.csv`` (grid factors of 生态环境部/国家统计局, fuel
        defaults; domain.md §2).

    Returns
    -------
    polars.DataFrame
        The table's columns in the order of :data:`EMISSION_FACTOR_COLUMNS`, typed; ``value``
        in [kg CO2 per unit] as the ``unit`` column says; ``region_code`` 6-digit text.

    Raises
    ------
    SettingsError
        If the file cannot be read, a column is missing, or a row is unusable (empty cell,
        unknown item or tag, value not ≥ 0, ``region_code`` not 6 digits, unit not
        ``<mass> CO2/<unit>`` or not convertible to the returns column's unit, a repeated
        ``(item, region_code, valid_from)``, an item without any row). The message names the
        table and the line (CSV) or row (1-based, header excluded).
    """
    if path is None:
        return _packaged_emission_factors().clone()
    return _validated_emission_factors(path)


# --------------------------------------------------------------------------------------------
# selection


def _pick(rows: list[dict[str, Any]], year: int) -> dict[str, Any]:
    """Latest ``valid_from <= year``, else the earliest row."""
    earlier = [r for r in rows if r["valid_from"] <= year]
    if earlier:
        return max(earlier, key=lambda r: r["valid_from"])
    return min(rows, key=lambda r: r["valid_from"])


def _density_row(
    rows: list[dict[str, Any]], item: str, year: int, label: _Text, why: _Text
) -> dict[str, Any]:
    dens = [r for r in rows if r["item"] == item and r["kind"] == "density_kg_per_l"]
    if not dens:
        raise SettingsError(
            f"{label[0]}：{why[0]}；请为 {item} 添加一行 density_kg_per_l（密度）",
            f"{label[1]}: {why[1]}; add a density_kg_per_l row for {item}",
        )
    return _pick(dens, year)


def _select_coefficients(
    table: pl.DataFrame, year: int, label: _Text
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Coefficient per canonical unit of each column and the rows used (validated table)."""
    rows = table.to_dicts()
    values: dict[str, float] = {}
    used: list[dict[str, Any]] = []
    for item, column in ITEM_COLUMNS.items():
        row = _pick([r for r in rows if r["item"] == item and r["kind"] == "kgce_per_unit"], year)
        used.append(row)
        ratio, col = _parse_ratio(row["unit"]), _column_unit(item)
        density = None
        if _needs_density(ratio.denominator, col):
            why = (
                f"{item} 的折标系数单位为 {row['unit']}，而 {column} 的单位为 {col.label}",
                f"the {item} coefficient is in {row['unit']} but {column} is in {col.label}",
            )
            dens = _density_row(rows, item, year, label, why)
            used.append(dens)
            density = _density_kg_per_l(dens)
        per_den = row["value"] * (ratio.numerator.factor / _unit("kgce").factor)
        values[column] = _per_column_unit(per_den, ratio.denominator, col, density)
    return values, used


def _region_chain(region_code: str) -> list[str]:
    if not (isinstance(region_code, str) and len(region_code) == 6 and region_code.isdigit()):
        raise SettingsError(
            f"region_code {region_code!r} 应为 6 位数字的 GB/T 2260 区划代码",
            f"region_code {region_code!r} must be a 6-digit GB/T 2260 code",
        )
    chain = [region_code]
    for code in (region_code[:2] + "0000", NATIONAL_REGION_CODE):
        if code not in chain:
            chain.append(code)
    return chain


def _select_emission_factors(
    table: pl.DataFrame, year: int, region_code: str, coefficients: pl.DataFrame | None
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """CO2 factor per canonical unit of each column and the rows used (validated tables)."""
    chain = _region_chain(region_code)
    rows = table.to_dicts()
    values: dict[str, float] = {}
    used: list[dict[str, Any]] = []
    for item, column in ITEM_COLUMNS.items():
        of_item = [r for r in rows if r["item"] == item]
        for code in chain:
            candidates = [r for r in of_item if r["region_code"] == code]
            if candidates:
                break
        else:
            raise SettingsError(
                f"排放因子表：区划 {region_code} 及 {'、'.join(chain[1:])} 均没有 "
                f"{item} 的排放因子",
                f"emission factors table: no {item} factor for region {region_code} nor for "
                f"{', '.join(chain[1:])}",
            )
        row = _pick(candidates, year)
        used.append(row)
        ratio, col = _parse_ratio(row["unit"], co2=True), _column_unit(item)
        density = None
        if _needs_density(ratio.denominator, col):
            coef = _packaged_coefficients() if coefficients is None else coefficients
            why = (
                f"{item} 的排放因子单位为 {row['unit']}，而 {column} 的单位为 {col.label}",
                f"the {item} emission factor is in {row['unit']} but {column} is in {col.label}",
            )
            dens = _density_row(coef.to_dicts(), item, year, _COEFFICIENTS_TABLE, why)
            used.append(dens)
            density = _density_kg_per_l(dens)
        per_den = row["value"] * (ratio.numerator.factor / _unit("kg").factor)
        values[column] = _per_column_unit(per_den, ratio.denominator, col, density)
    return values, used


def kgce_per_canonical_unit(coefficients: TableSource | None, year: int) -> dict[str, float]:
    """Standard-coal coefficient of each quantity column of the returns, for one data year.

    Per-kg coefficients of litre columns are multiplied by the item's density [kg/L] (gasoline
    1.4714 kgce/kg × 0.73 kg/L = 1.0741 kgce/L); a per-kg coefficient of the coal column (in t)
    is multiplied by 1000 (0.7143 kgce/kg → 714.3 kgce/t). Row choice: the latest
    ``valid_from <= year``, else the item's earliest row (module docstring).

    Parameters
    ----------
    coefficients : str, os.PathLike, polars.DataFrame, polars.LazyFrame or None
        Coefficient table (see :func:`load_coefficients`); ``None`` for the packaged one.
    year : int
        Data year of the returns.

    Returns
    -------
    dict of str to float
        Returns column (``electricity_kwh``, …, ``other_energy_tce``) → [kgce per unit of that
        column's canonical unit].

    Raises
    ------
    SettingsError
        If the table is unusable (see :func:`load_coefficients`).
    """
    table = load_coefficients(coefficients)
    return _select_coefficients(table, year, _COEFFICIENTS_TABLE)[0]


def density_kg_per_l(coefficients: TableSource | None, item: str, year: int | None = None) -> float:
    """Density of a liquid fuel, used to turn 吨/千克 of gasoline or diesel into litres.

    Parameters
    ----------
    coefficients : str, os.PathLike, polars.DataFrame, polars.LazyFrame or None
        Coefficient table (see :func:`load_coefficients`); ``None`` for the packaged one.
    item : str
        Item name (``gasoline``, ``diesel``).
    year : int, optional
        Data year: the row with the latest ``valid_from <= year``, else the earliest. Default:
        the row with the latest ``valid_from``.

    Returns
    -------
    float
        Density [kg/L] (packaged: gasoline 0.73, diesel 0.85; domain.md §2).

    Raises
    ------
    SettingsError
        If the table is unusable or has no density row for ``item``.
    """
    rows = load_coefficients(coefficients).to_dicts()
    why = (f"表中没有 {item!r} 的密度", f"no density of {item!r} in the table")
    if year is None:
        dens = [r for r in rows if r["item"] == item and r["kind"] == "density_kg_per_l"]
        year = max((r["valid_from"] for r in dens), default=0)
    return _density_kg_per_l(_density_row(rows, item, year, _COEFFICIENTS_TABLE, why))


def co2_kg_per_canonical_unit(
    emission_factors: TableSource | None,
    year: int,
    region_code: str = "120000",
    *,
    coefficients: TableSource | None = None,
) -> dict[str, float]:
    """CO2 emission factor of each quantity column of the returns, for one data year and region.

    Region choice per item: ``region_code``'s own rows, else its province's, else the national
    ``000000`` rows; then the latest ``valid_from <= year``, else that region's earliest row
    (module docstring). With the packaged table, Tianjin (``120000``) electricity is 0.7041
    [kg CO2/kWh] for every year (its only row, 2022), another province gets the national
    average of the year (0.5568 in 2021, 0.5366 in 2022, 0.5306 from 2023).

    Parameters
    ----------
    emission_factors : str, os.PathLike, polars.DataFrame, polars.LazyFrame or None
        Emission-factor table (see :func:`load_emission_factors`); ``None`` for the packaged one.
    year : int
        Data year of the returns.
    region_code : str, default "120000"
        GB/T 2260 code of the region whose grid supplies the institutions (Tianjin).
    coefficients : str, os.PathLike, polars.DataFrame, polars.LazyFrame or None
        Coefficient table supplying densities, needed only when a factor of a litre column is
        given per mass (or the reverse); ``None`` for the packaged one.

    Returns
    -------
    dict of str to float
        Returns column → [kg CO2 per unit of that column's canonical unit].

    Raises
    ------
    SettingsError
        If a table is unusable, ``region_code`` is not 6 digits, or an item has no row for the
        region, its province or the nation.
    """
    table = load_emission_factors(emission_factors)
    coef = None if coefficients is None else load_coefficients(coefficients)
    return _select_emission_factors(table, year, region_code, coef)[0]


def factors_used(
    year: int | Iterable[int],
    *,
    coefficients: TableSource | None = None,
    emission_factors: TableSource | None = None,
    region_code: str = "120000",
) -> pl.DataFrame:
    """Return the coefficient, density and emission-factor rows used for the given data year(s).

    Outputs record this frame (e.g. the report's note on coefficients and factors) instead of
    carrying metadata inside the data frames.

    Parameters
    ----------
    year : int or iterable of int
        Data year(s), e.g. the distinct ``year`` values of the returns.
    coefficients, emission_factors : str, os.PathLike, polars.DataFrame, polars.LazyFrame or None
        The tables passed to :func:`energy_audit.indicators.indicators` (``None``: packaged).
    region_code : str, default "120000"
        GB/T 2260 code of the region (see :func:`co2_kg_per_canonical_unit`).

    Returns
    -------
    polars.DataFrame
        Columns :data:`USED_COLUMNS`: one row per year and table row used. ``kind`` is
        ``kgce_per_unit``, ``density_kg_per_l`` or ``co2_kg_per_unit``; ``column`` the returns
        column concerned; ``region_code`` null for coefficient rows; ``value`` and ``unit`` as
        in the table (not converted to the column's unit).

    Raises
    ------
    SettingsError
        As :func:`kgce_per_canonical_unit` and :func:`co2_kg_per_canonical_unit`.
    """
    years = [year] if isinstance(year, int) else sorted(set(year))
    coef = load_coefficients(coefficients)
    ef = load_emission_factors(emission_factors)
    out: list[dict[str, Any]] = []
    for y in years:
        rows = _select_coefficients(coef, y, _COEFFICIENTS_TABLE)[1]
        rows += [
            {**r, "kind": r.get("kind", "co2_kg_per_unit")}
            for r in _select_emission_factors(ef, y, region_code, coef)[1]
        ]
        seen: set[tuple[Any, ...]] = set()
        for r in rows:
            key = (r["kind"], r["item"], r.get("region_code"), r["valid_from"])
            if key not in seen:
                seen.add(key)
                out.append(
                    {**r, "year": y, "column": ITEM_COLUMNS[r["item"]], "region_code": key[2]}
                )
    schema = {
        "year": pl.Int64,
        "kind": pl.String,
        "item": pl.String,
        "column": pl.String,
        "region_code": pl.String,
        "value": pl.Float64,
        "unit": pl.String,
        "valid_from": pl.Int64,
        "table_version": pl.String,
        "source": pl.String,
        "tag": pl.String,
    }
    return pl.DataFrame([{k: r[k] for k in USED_COLUMNS} for r in out], schema=schema, orient="row")


@dataclass(frozen=True)
class FactorPeriod:
    """Coefficients and CO2 factors that hold from ``from_year`` until the next period starts.

    Attributes
    ----------
    from_year : int
        First data year of the period. The first period of :func:`factor_periods` also holds
        for every earlier year (the earliest-row rule).
    kgce_per_unit : Mapping of str to float
        Returns column → [kgce per canonical unit].
    co2_kg_per_unit : Mapping of str to float
        Returns column → [kg CO2 per canonical unit].
    """

    from_year: int
    kgce_per_unit: Mapping[str, float]
    co2_kg_per_unit: Mapping[str, float]


def factor_periods(
    coefficients: TableSource | None = None,
    emission_factors: TableSource | None = None,
    region_code: str = "120000",
) -> tuple[FactorPeriod, ...]:
    """Split the years into periods in which every coefficient and factor is constant.

    The chosen rows change only at a ``valid_from`` of one of the tables, so evaluating the
    selection rules at each distinct ``valid_from`` gives every value a data year can get; a
    year before the first ``valid_from`` gets the first period's values. Periods whose values
    equal the previous period's are merged. :func:`energy_audit.indicators.indicators` turns
    these into a vectorised lookup on the ``year`` column.

    Parameters
    ----------
    coefficients, emission_factors : str, os.PathLike, polars.DataFrame, polars.LazyFrame or None
        The tables (``None``: packaged).
    region_code : str, default "120000"
        GB/T 2260 code of the region (see :func:`co2_kg_per_canonical_unit`).

    Returns
    -------
    tuple of FactorPeriod
        In increasing ``from_year``, at least one.

    Raises
    ------
    SettingsError
        As :func:`kgce_per_canonical_unit` and :func:`co2_kg_per_canonical_unit`.
    """
    coef = load_coefficients(coefficients)
    ef = load_emission_factors(emission_factors)
    starts = sorted(set(coef["valid_from"]) | set(ef["valid_from"]))
    periods: list[FactorPeriod] = []
    for start in starts:
        kgce = _select_coefficients(coef, start, _COEFFICIENTS_TABLE)[0]
        co2 = _select_emission_factors(ef, start, region_code, coef)[0]
        if periods and (periods[-1].kgce_per_unit, periods[-1].co2_kg_per_unit) == (kgce, co2):
            continue
        periods.append(FactorPeriod(start, MappingProxyType(kgce), MappingProxyType(co2)))
    return tuple(periods)
