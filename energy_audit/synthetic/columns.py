"""Columns, Chinese headers and labels of the generator's files.

All from the data contract (``schemas/``, :mod:`energy_audit.contract`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import polars as pl

from energy_audit import contract
from energy_audit.contract import ColumnSpec
from energy_audit.errors import ContractError
from energy_audit.factors import ITEM_COLUMNS, density_kg_per_l
from energy_audit.io.headers import unit_factor

__all__ = [
    "DIRECTORY_COLUMNS",
    "RETURNS_COLUMNS",
    "RETURNS_HEADERS_ZH",
]


_DIRECTORY: Final = contract.table("directory")
_RETURNS: Final = contract.table("returns")

#: Directory columns (data contract §1), in contract and file order.
DIRECTORY_COLUMNS: Final = _DIRECTORY.names

#: Returns columns (data contract §2), in contract and file order.
RETURNS_COLUMNS: Final = _RETURNS.names

_ENERGY_ITEMS: Final = tuple(ITEM_COLUMNS.values())
_QUANTITIES: Final = (*_ENERGY_ITEMS, "pv_generation_kwh", "water_m3")
_COSTS: Final = ("electricity_cost_yuan", "natural_gas_cost_yuan", "water_cost_yuan")
_PRICED_ITEMS: Final = ("electricity_kwh", "natural_gas_m3", "water_m3")  # billed in _COSTS
_INT_COLUMNS: Final = tuple(c.name for c in _RETURNS.columns if c.dtype == "int")
_FLOAT_COLUMNS: Final = tuple(c.name for c in _RETURNS.columns if c.dtype == "float")

_LEVELS: Final = ("municipal", "district", "subdistrict")
_HEAT_BILLING: Final = ("metered", "by_area", "none")

#: How the directory file writes a boolean (the contract lists no labels for ``bool`` columns).
_YES_NO: Final[Mapping[bool, str]] = MappingProxyType({True: "是", False: "否"})

# Realistic departures from the contract's own header, written on purpose (and checked against
# the contract): the district column holds names, so it is headed by the alias 所在区; water is
# counted in 吨 (1 t = 1 m³); the first CSV year gives electricity in 万千瓦时.
_DISTRICT_ALIAS: Final = "所在区"
_RETURNS_UNITS: Final[Mapping[str, str]] = MappingProxyType({"water_m3": "吨"})
_FIRST_CSV_UNITS: Final[Mapping[str, str]] = MappingProxyType(
    {**_RETURNS_UNITS, "electricity_kwh": "万千瓦时"}
)


def _file_scale(column: ColumnSpec, unit: str) -> float:
    """Canonical units per unit ``unit`` written in the header of ``column`` (万千瓦时 → 10,000).

    Raises
    ------
    ContractError
        If ``unit`` is not a unit a header of ``column`` may name.
    """
    scale = unit_factor(column, unit, lambda item: density_kg_per_l(None, item))
    if scale is None:
        raise ContractError(f"{unit!r} is not a unit of column {column.name} ({column.unit})")
    return scale


def _header_zh(column: ColumnSpec, *, alias: str | None = None, unit: str | None = None) -> str:
    """Chinese header of a column: its first alias, and its unit in Chinese in brackets.

    Parameters
    ----------
    column : ColumnSpec
        Contract column.
    alias : str, optional
        Another of the column's aliases, written instead of the first.
    unit : str, optional
        A unit the header may name, written instead of the canonical unit's Chinese label.

    Returns
    -------
    str
        E.g. ``单位名称``, ``电(千瓦时)``, ``水(吨)``: half-width brackets, no ``*``.
    """
    if alias is not None and alias not in column.aliases:
        raise ContractError(f"{alias!r} is not an alias of column {column.name}")
    if unit is not None:
        _file_scale(column, unit)  # raises if a header of this column may not name the unit
    return contract.header_zh(column, alias=alias, unit=unit)


def _file_scales(units: Mapping[str, str]) -> dict[str, float]:
    """Canonical units per file unit of the returns columns ``units`` names, where not 1."""
    scales = {c: _file_scale(_RETURNS.column(c), u) for c, u in units.items()}
    return {c: f for c, f in scales.items() if f != 1.0}


def _fullwidth_brackets(header: str) -> str:
    return header.replace("(", "（").replace(")", "）")


def _returns_headers_zh(units: Mapping[str, str]) -> dict[str, str]:
    """Chinese header of each returns column, ``units`` overriding the canonical units."""
    return {c.name: _header_zh(c, unit=units.get(c.name)) for c in _RETURNS.columns}


#: Chinese header of each returns column as the xlsx files write it, computed from the data
#: contract (required columns then get a trailing ``*``; CSV files use full-width brackets).
RETURNS_HEADERS_ZH: Final[Mapping[str, str]] = MappingProxyType(_returns_headers_zh(_RETURNS_UNITS))


def _labels_zh(column: ColumnSpec, districts: pl.DataFrame) -> dict[object, str] | None:
    """Label the directory file writes for each value of ``column`` (None: written as is).

    Enumerations: the first label of each contract value (``public_service_unit`` → 事业单位);
    districts: their name (和平区); booleans: 是/否.
    """
    if column.dtype == "enum":
        return {v.code: v.labels[0] for v in column.values}
    if column.dtype == "district":
        return dict(zip(districts["district_code"], districts["name_zh"], strict=True))
    if column.dtype == "bool":
        return dict(_YES_NO)
    return None


_VALUE_COLUMNS: Final = tuple(c for c in RETURNS_COLUMNS if c not in ("institution_id", "name"))
