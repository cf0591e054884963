"""A synthetic Tianjin-like city whose truth is known: directory, yearly returns, defects, files.

The generator serves three purposes: tests with known answers (every injected defect is a row of
the *truth* table), demonstrations without personal data, and benchmarks at national scale (1.6
million institutions; everything is vectorised with numpy and polars).

Three layers:

- :func:`make_directory` builds a 名录库 (data contract §1): municipal bureaus with subordinate
  units, district governments with bureaus and street/town offices, the units under them, mass
  organisations and a few associations registered with 民政; valid credit codes whose prefix matches
  the institution type; a few dissolved or merged institutions.
- :func:`make_returns` builds one return per institution in scope and year (data contract §2) with
  sector-dependent energy and water use, district trends, prices, and injected defects of every
  kind listed in :data:`DEFECT_KINDS`.
- :func:`write_city` writes them the way they arrive at the office: xlsx with a title row and
  Chinese headers and labels (taken from the data contract, ``schemas/``), CSV (one year in
  GB18030 with electricity in 万千瓦时), parquet with canonical columns, plus the truth table.
  Some xlsx/CSV cells carry the text people type (``1,234``, ``１２３``, ``500 千瓦时``, ``—``,
  ``约3000``), recorded as ``messy_cell`` truth rows. Each returns file is written by
  :func:`write_returns_file`, which also writes any returns frame (e.g. for a benchmark).

Directory maintenance, for the quarterly directory run:

- :func:`evolve_directory` turns a directory into the next quarter's snapshot (institutions added,
  dissolved, merged, removed, renamed, moved, re-parented, edited) and returns the change table
  it made (:data:`CHANGES_SCHEMA`, kinds :data:`DIRECTORY_CHANGE_KINDS`).
- :func:`inject_directory_defects` injects one of each directory defect
  (:data:`DIRECTORY_DEFECT_KINDS`: invalid codes, duplicates, unknown labels, parent problems …)
  and returns their truth table (:data:`DIRECTORY_DEFECT_SCHEMA`).

Scope: the directory is one snapshot (the fourth quarter of the last year). An institution is in
scope of every year when its status is ``active``; dissolved and merged institutions file no
return unless a ``return_from_dissolved`` / ``return_from_merged`` defect says so.

All numbers describing the synthetic city (sector profiles, prices, district trends, defect rates)
are illustrative parameters of the generator, not reference values.
"""

from __future__ import annotations

import datetime as dt
import math
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl
import xlsxwriter

from energy_audit import contract
from energy_audit.contract import ColumnSpec
from energy_audit.directory.codes import CREDIT_CODE_ALPHABET, make_credit_codes
from energy_audit.districts import load_districts
from energy_audit.errors import ContractError
from energy_audit.factors import ITEM_COLUMNS, density_kg_per_l, kgce_per_canonical_unit
from energy_audit.io.headers import unit_factor
from energy_audit.progress import Progress, quiet

__all__ = [
    "CHANGES_SCHEMA",
    "DEFAULT_DEFECT_RATES",
    "DEFAULT_EVOLUTION_RATES",
    "DEFECT_KINDS",
    "DIRECTORY_CHANGE_KINDS",
    "DIRECTORY_COLUMNS",
    "DIRECTORY_DEFECT_KINDS",
    "DIRECTORY_DEFECT_SCHEMA",
    "EVOLUTION_EVENTS",
    "MESSY_CELL_VARIANTS",
    "RETURNS_COLUMNS",
    "RETURNS_HEADERS_ZH",
    "STATISTICAL_DEFECT_KINDS",
    "TRUTH_SCHEMA",
    "XLSX_MAX_ROWS",
    "district_trends",
    "evolve_directory",
    "inject_directory_defects",
    "make_directory",
    "make_returns",
    "write_city",
    "write_returns_file",
]

# --------------------------------------------------------------------------------------------
# Columns, Chinese headers and labels: all from the data contract (schemas/, energy_audit.contract)
# --------------------------------------------------------------------------------------------

_DIRECTORY: Final = contract.table("directory")
_RETURNS: Final = contract.table("returns")

#: Directory columns (data contract §1), in contract and file order.
DIRECTORY_COLUMNS: Final = _DIRECTORY.names

#: Returns columns (data contract §2), in contract and file order.
RETURNS_COLUMNS: Final = _RETURNS.names

_ENERGY_ITEMS: Final = tuple(ITEM_COLUMNS.values())
_QUANTITIES: Final = (*_ENERGY_ITEMS, "pv_generation_kwh", "water_m3")
_COSTS: Final = ("electricity_cost_yuan", "natural_gas_cost_yuan", "water_cost_yuan")
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


# --------------------------------------------------------------------------------------------
# Defects
# --------------------------------------------------------------------------------------------

#: Every defect kind the generator injects, with a one-line description (domain.md §6).
DEFECT_KINDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "unit_slip_10k": "a figure in 万 units typed under the base unit: reported = true / 10,000",
        "unit_slip_kg_for_t": "coal in kg typed under 吨: reported = true × 1000",
        "unit_slip_mj_for_gj": "heat in MJ typed under GJ (百万千焦): reported = true × 1000",
        "unit_slip_kg_for_l": "fuel in kg typed under litres: reported = true × density",
        "typo_x10": "an extra digit: reported = true × 10",
        "yoy_jump": "one item jumps or drops by more than 30 % on last year's reported value",
        "area_change": "building area differs by more than 10 % from last year",
        "occupants_change": "occupants differ by more than 10 % from last year",
        "copied_figures": "every quantity and cost identical to last year's return",
        "round_number": "a metered item reported as a round number (e.g. exactly 100,000 kWh)",
        "identical_siblings": "units of one parent report identical quantities and costs",
        "pv_exceeds_electricity": "PV generation reported above electricity consumption",
        "vehicles_no_fuel": "vehicles reported but no gasoline or diesel",
        "metered_heat_zero": "heat billed by meter (按热量计费) but zero heat reported",
        "total_mismatch": "the institution's own total ≠ Σ items × standard-coal coefficients",
        "absurd_unit_price": "electricity cost implies an absurd price (万元 under 元, or × 100)",
        "missing_return": "an institution in scope has no return for the year",
        "unknown_institution": "a return from an institution not in the directory",
        "return_from_dissolved": "a return from an institution the directory lists as dissolved",
        "return_from_merged": "a return from an institution the directory lists as merged",
        "duplicate_exact": "the same return twice, identical",
        "duplicate_conflicting": "two returns of one institution and year, electricity differs",
        "name_mismatch": "the reported name differs from the directory name",
        "negative_value": "a quantity reported negative",
        "nonpositive_area": "building area reported as zero or negative",
        "nonpositive_occupants": "occupants reported as zero",
        "messy_cell": "a file cell typed as text (1,234, １２３, 500 千瓦时, —, 约3000)",
    }
)

STATISTICAL_DEFECT_KINDS: Final = (
    "unit_slip_10k",
    "unit_slip_kg_for_t",
    "unit_slip_mj_for_gj",
    "unit_slip_kg_for_l",
    "typo_x10",
    "yoy_jump",
    "copied_figures",
    "identical_siblings",
    "round_number",
)
"""Kinds of :data:`DEFECT_KINDS` that only the statistical stage can find (no rule proves them
wrong); the detection benchmark and tests measure recall on these."""

#: Default rate of each defect kind, as a share of the in-scope institution-years (for
#: ``messy_cell``: of the numeric cells of each xlsx/CSV returns file and of the directory codes).
#: At least one of each kind is injected when a row qualifies.
DEFAULT_DEFECT_RATES: Final[Mapping[str, float]] = MappingProxyType(
    {
        "unit_slip_10k": 0.004,
        "unit_slip_kg_for_t": 0.002,
        "unit_slip_mj_for_gj": 0.003,
        "unit_slip_kg_for_l": 0.003,
        "typo_x10": 0.004,
        "yoy_jump": 0.005,
        "area_change": 0.004,
        "occupants_change": 0.004,
        "copied_figures": 0.004,
        "round_number": 0.004,
        "identical_siblings": 0.001,
        "pv_exceeds_electricity": 0.002,
        "vehicles_no_fuel": 0.003,
        "metered_heat_zero": 0.003,
        "total_mismatch": 0.004,
        "absurd_unit_price": 0.003,
        "missing_return": 0.01,
        "unknown_institution": 0.002,
        "return_from_dissolved": 0.002,
        "return_from_merged": 0.002,
        "duplicate_exact": 0.002,
        "duplicate_conflicting": 0.002,
        "name_mismatch": 0.005,
        "negative_value": 0.002,
        "nonpositive_area": 0.002,
        "nonpositive_occupants": 0.002,
        "messy_cell": 0.002,
    }
)

#: The ways a messy cell is written, and whether a reader can recover the number from it.
MESSY_CELL_VARIANTS: Final[Mapping[str, bool]] = MappingProxyType(
    {
        "thousands_comma": True,  # 1,234.5
        "fullwidth_comma": True,  # 1，234.5
        "fullwidth_digits": True,  # １２３４.５
        "trailing_unit": True,  # 1234.5 千瓦时
        "padded": True,  # "  1234.5 "
        "dash": False,  # — (null: the number is lost)
        "approximate": False,  # 约1200 (not a number: quarantined)
    }
)

#: Columns of the truth table.
TRUTH_SCHEMA: Final[Mapping[str, pl.DataType]] = MappingProxyType(
    {
        "institution_id": pl.String(),
        "year": pl.Int64(),
        "defect": pl.String(),
        "field": pl.String(),
        "true_value": pl.Float64(),
        "reported_value": pl.Float64(),
        "factor": pl.Float64(),
        "true_text": pl.String(),
        "reported_text": pl.String(),
        "related_id": pl.String(),
        "source_file": pl.String(),
        "source_row": pl.Int64(),
        "recoverable": pl.Boolean(),
        "detail": pl.String(),
    }
)

# --------------------------------------------------------------------------------------------
# Parameters of the synthetic city (illustrative, not reference values)
# --------------------------------------------------------------------------------------------

_REGION_NAME: Final = "天津市"
_CENTRAL_DISTRICTS: Final = frozenset({"120101", "120102", "120103", "120104", "120105", "120106"})
#: Relative number of institutions per district (district and street level).
_DISTRICT_SIZE: Final[Mapping[str, float]] = MappingProxyType(
    {
        "120101": 0.5, "120102": 0.8, "120103": 0.9, "120104": 1.0, "120105": 0.8,
        "120106": 0.6, "120110": 0.9, "120111": 1.0, "120112": 0.9, "120113": 0.9,
        "120114": 1.3, "120115": 1.1, "120116": 2.0, "120117": 0.7, "120118": 1.0,
        "120119": 1.0,
    }
)  # fmt: skip
#: True yearly change of energy and water intensity per district [fraction per year].
_DISTRICT_TREND: Final[Mapping[str, float]] = MappingProxyType(
    {
        "120101": -0.030, "120102": -0.025, "120103": -0.030, "120104": -0.020,
        "120105": -0.025, "120106": -0.015, "120110": 0.000, "120111": -0.020,
        "120112": 0.000, "120113": -0.020, "120114": 0.020, "120115": -0.010,
        "120116": 0.015, "120117": 0.000, "120118": -0.025, "120119": -0.030,
    }
)  # fmt: skip
_TREND_PATTERN: Final = (-0.03, -0.02, 0.0, -0.025, 0.02, -0.01, 0.0, -0.03)
#: Retired region codes (chars 3-8 of a credit code) still found on codes of a district, with
#: the share of the district's institutions that carry one.
_RETIRED_REGION_CODES: Final[Mapping[str, tuple[tuple[str, ...], float]]] = MappingProxyType(
    {"120119": (("120225",), 0.4), "120116": (("120107", "120108", "120109"), 0.15)}
)
_MUNICIPAL_REGION_CODE: Final = "120000"
_HEAT_BILLING_P: Final = {"central": (0.40, 0.55, 0.05), "outer": (0.25, 0.45, 0.30)}


@dataclass(frozen=True)
class _SectorProfile:
    """Energy and water profile of a sector (medians; lognormal spread)."""

    area_m2: float  # median building area of a municipal unit [m²]
    m2_per_occupant: float  # [m² per person]
    nonheat_kgce_per_m2: float  # energy except space heating [kgce/m²]
    gas_user_share: float  # share of institutions with a gas connection
    gas_energy_share: float  # share of non-heating energy from gas, for gas users
    vehicles_mean: float  # [vehicles]
    diesel_vehicle_share: float
    water_m3_per_occupant: float  # [m³ per person]
    staff_share: float  # staff quota / occupants
    key_user_share: float  # share flagged 重点用能单位 in the directory


_SECTOR_PROFILES: Final[Mapping[str, _SectorProfile]] = MappingProxyType(
    {
        "agency": _SectorProfile(15000, 35, 13.0, 0.6, 0.12, 3.0, 0.10, 18, 0.85, 0.01),
        "university": _SectorProfile(150000, 22, 6.0, 0.95, 0.20, 6.0, 0.20, 30, 0.12, 0.6),
        "school": _SectorProfile(20000, 18, 4.5, 0.5, 0.15, 0.3, 0.10, 7, 0.09, 0.005),
        "hospital": _SectorProfile(70000, 18, 22.0, 0.9, 0.25, 4.0, 0.40, 40, 0.45, 0.2),
        "venue": _SectorProfile(25000, 7, 12.0, 0.4, 0.10, 0.5, 0.10, 5, 0.15, 0.02),
        "research": _SectorProfile(10000, 40, 16.0, 0.5, 0.12, 1.5, 0.15, 25, 0.80, 0.02),
        "other_service": _SectorProfile(4000, 30, 10.0, 0.4, 0.12, 1.0, 0.15, 16, 0.70, 0.005),
        "organization": _SectorProfile(2500, 35, 9.0, 0.3, 0.10, 0.5, 0.05, 15, 0.80, 0.0),
    }
)
_SECTORS: Final = tuple(_SECTOR_PROFILES)
_LEVEL_AREA_FACTOR: Final = (1.0, 0.5, 0.2)  # municipal, district, subdistrict
_LEVEL_INTENSITY_FACTOR: Final = (1.1, 1.0, 0.9)
_AREA_SIGMA: Final = 0.5
_MIN_AREA_M2: Final = 150.0
_KEY_USER_AREA_FACTOR: Final = 2.5
_HEAT_GJ_PER_M2: Final = 0.33  # metered district heat [GJ/m² per season]
_BY_AREA_ESTIMATE_SHARE: Final = 0.2  # by-area billed institutions that still report heat
_BOILER_GAS_M3_PER_M2: Final = 8.5  # own gas boiler [m³/m²]
_BOILER_COAL_T_PER_M2: Final = 0.028  # own coal boiler [t/m²]
_ELECTRIC_HEAT_KWH_PER_M2: Final = 35.0  # electric heating [kWh/m²]
_PV_SHARE: Final = 0.08
_LPG_SHARE: Final = 0.04
_OTHER_ENERGY_SHARE: Final = 0.02
_GASOLINE_L_PER_VEHICLE: Final = 2200.0
_DIESEL_L_PER_VEHICLE: Final = 3500.0
_ELECTRICITY_PRICE: Final = (0.60, 1.05)  # [元/kWh], times a yearly ±2 %
_GAS_PRICE: Final = (3.0, 3.9)  # [元/m³]
_WATER_PRICE: Final = (4.5, 7.9)  # [元/m³]
_YEAR_NOISE_SIGMA: Final = 0.03
_YEAR_NOISE_CLIP: Final = 0.06  # keeps true year-on-year changes below 30 %
_WEATHER_RANGE: Final = (0.95, 1.05)
#: Rows of one Excel sheet, title and header rows included (larger frames get no xlsx file).
XLSX_MAX_ROWS: Final = 1_048_576
_XLSX_FIRST_ROW: Final = 3  # row 1 the title, row 2 the headers
_CSV_FIRST_ROW: Final = 2  # line 1 the headers
_FIXED_CREATED: Final = dt.datetime(2025, 1, 1, 0, 0, 0)

# Seed streams: one independent generator per purpose, so that adding a draw in one place does
# not change the others.
_STREAM_DIRECTORY, _STREAM_RETURNS, _STREAM_DEFECTS, _STREAM_FILES = 1, 2, 3, 4

# --------------------------------------------------------------------------------------------
# Vocabulary for names and addresses
# --------------------------------------------------------------------------------------------

_MUNICIPAL_BUREAUS: Final = (
    ("education", "天津市教育委员会"), ("health", "天津市卫生健康委员会"),
    ("culture", "天津市文化和旅游局"), ("sports", "天津市体育局"),
    ("science", "天津市科学技术局"), ("offices", "天津市机关事务管理局"),
    ("development", "天津市发展和改革委员会"), ("industry", "天津市工业和信息化局"),
    ("civil", "天津市民政局"), ("justice", "天津市司法局"), ("finance", "天津市财政局"),
    ("hr", "天津市人力资源和社会保障局"), ("planning", "天津市规划和自然资源局"),
    ("ecology", "天津市生态环境局"), ("housing", "天津市住房和城乡建设委员会"),
    ("transport", "天津市交通运输委员会"), ("water", "天津市水务局"),
    ("agriculture", "天津市农业农村委员会"), ("commerce", "天津市商务局"),
    ("veterans", "天津市退役军人事务局"), ("emergency", "天津市应急管理局"),
    ("audit", "天津市审计局"), ("market", "天津市市场监督管理局"),
    ("statistics", "天津市统计局"), ("medical_security", "天津市医疗保障局"),
    ("public_security", "天津市公安局"), ("court", "天津市高级人民法院"),
    ("procuratorate", "天津市人民检察院"), ("government", "天津市人民政府办公厅"),
    ("congress", "天津市人大常委会办公厅"), ("cppcc", "天津市政协办公厅"),
    ("party", "中共天津市委办公厅"), ("organization", "中共天津市委组织部"),
    ("propaganda", "中共天津市委宣传部"), ("archives", "天津市档案馆"),
)  # fmt: skip
_DISTRICT_BUREAUS: Final = (
    ("education", "教育局"), ("health", "卫生健康委员会"), ("culture", "文化和旅游局"),
    ("science", "科学技术局"), ("civil", "民政局"), ("finance", "财政局"),
    ("development", "发展和改革委员会"), ("hr", "人力资源和社会保障局"),
    ("housing", "住房和建设委员会"), ("ecology", "生态环境局"), ("market", "市场监督管理局"),
    ("agriculture", "农业农村委员会"), ("emergency", "应急管理局"), ("audit", "审计局"),
    ("statistics", "统计局"), ("justice", "司法局"), ("water", "水务局"),
    ("veterans", "退役军人事务局"), ("offices", "机关事务管理局"), ("planning", "规划和自然资源局"),
)  # fmt: skip
_UNIVERSITIES: Final = (
    "天津师范大学", "天津理工大学", "天津科技大学", "天津工业大学", "天津医科大学",
    "天津中医药大学", "天津财经大学", "天津商业大学", "天津外国语大学", "天津城建大学",
    "天津农学院", "天津体育学院", "天津音乐学院", "天津美术学院", "天津职业技术师范大学",
    "天津市职业大学", "天津交通职业学院", "天津轻工职业技术学院", "天津电子信息职业技术学院",
    "天津机电职业技术学院", "天津现代职业技术学院", "天津医学高等专科学校", "天津城市职业学院",
    "天津海运职业学院", "天津艺术职业学院", "天津石油职业技术学院", "天津铁道职业技术学院",
)  # fmt: skip
_MUNICIPAL_HOSPITALS: Final = (
    "天津市第一中心医院", "天津市第三中心医院", "天津市人民医院", "天津市肿瘤医院",
    "天津市儿童医院", "天津市胸科医院", "天津市眼科医院", "天津市口腔医院", "天津市第二人民医院",
    "天津市海河医院", "天津市安定医院", "天津市环湖医院", "天津市中医药研究院附属医院",
    "天津市妇女儿童保健中心", "天津市疾病预防控制中心", "天津市急救中心", "天津市血液中心",
    "天津市天津医院", "天津市第四中心医院", "天津市第五中心医院",
)  # fmt: skip
_MUNICIPAL_VENUES: Final = (
    "天津博物馆", "天津美术馆", "天津图书馆", "天津自然博物馆", "天津市群众艺术馆", "天津大剧院",
    "天津奥林匹克中心体育场", "天津市人民体育馆", "天津市少年儿童图书馆", "天津科学技术馆",
    "天津市文化中心", "天津市体育中心", "天津市水上运动中心", "天津市青少年活动中心",
)  # fmt: skip
_RESEARCH_FIELDS: Final = (
    "农业科学", "水产", "畜牧兽医", "环境保护科学", "建筑设计", "电子仪表", "化工", "机械",
    "医药科学", "中医药", "计量监督检测科学", "城市规划设计", "水利科学", "地震", "气象科学",
    "社会科学", "历史", "心理卫生", "劳动经济", "海洋",
)  # fmt: skip
_MUNICIPAL_SERVICES: Final = (
    "信息中心", "机关服务中心", "宣传教育中心", "培训中心", "综合保障中心", "事务服务中心",
    "执法总队", "监测中心", "检验检测中心", "政务服务中心", "评审中心", "发展研究中心",
)  # fmt: skip
_MASS_ORGANIZATIONS: Final = (
    "天津市总工会", "共青团天津市委员会", "天津市妇女联合会", "天津市科学技术协会",
    "天津市文学艺术界联合会", "天津市归国华侨联合会", "天津市工商业联合会",
    "天津市残疾人联合会", "天津市红十字会", "天津市社会科学界联合会", "天津市作家协会",
)  # fmt: skip
_ASSOCIATION_FIELDS: Final = (
    "节能", "建筑", "医学", "护理", "教育", "计算机", "环境科学", "档案", "地理", "统计",
    "会计", "青少年发展", "慈善", "老年", "图书馆", "体育", "文物保护", "心理",
)  # fmt: skip
_ASSOCIATION_SUFFIX: Final = {"51": "协会", "52": "研究中心", "53": "发展基金会"}
_DISTRICT_HOSPITALS: Final = (
    "人民医院", "中医医院", "妇幼保健计划生育服务中心", "疾病预防控制中心", "第二人民医院",
    "中心医院", "精神卫生中心", "口腔医院",
)  # fmt: skip
_DISTRICT_VENUES: Final = (
    "图书馆", "文化馆", "体育中心", "博物馆", "少年宫", "青少年活动中心", "全民健身中心",
)  # fmt: skip
_DISTRICT_RESEARCH: Final = (
    "农业科学研究所", "教育科学研究所", "城乡规划设计院", "水利勘测设计所", "畜牧兽医研究所",
)  # fmt: skip
_DISTRICT_SERVICES: Final = (
    "综合服务中心", "信息中心", "事务服务中心", "执法大队", "培训中心", "档案室", "监测站",
    "技术推广中心",
)  # fmt: skip
_DISTRICT_ORGANIZATIONS: Final = (
    "总工会", "妇女联合会", "科学技术协会", "残疾人联合会", "红十字会", "工商业联合会",
    "文学艺术界联合会",
)  # fmt: skip
_STREET_STEMS: Final = (
    "劝业场", "小白楼", "五大道", "新兴", "南市", "南营门", "大王庄", "大直沽", "唐家口",
    "向阳楼", "春华", "二号桥", "友谊路", "挂甲寺", "越秀路", "马场", "天塔", "尖山", "陈塘庄",
    "梅江", "长虹", "鼓楼", "嘉陵道", "学府", "万兴", "王顶堤", "华苑", "体育中心", "光复道",
    "望海楼", "铁东路", "建昌道", "宁园", "王串场", "江都路", "月牙河", "西于庄", "丁字沽",
    "邵公庄", "芥园", "铃铛阁", "和苑", "西沽", "三条石", "万新", "张贵庄", "丰年村", "无瑕",
    "华明", "李七庄", "西营门", "精武", "中北", "双口", "果园新村", "佳园里", "集贤里", "瑞景",
)  # fmt: skip
_TOWN_STEMS: Final = (
    "杨柳青", "王稳庄", "辛口", "小站", "双港", "八里台", "咸水沽", "葛沽", "双街", "西堤头",
    "大良", "下朱庄", "杨村", "大口屯", "林亭口", "芦台", "东棘坨", "独流", "大邱庄",
    "唐官屯", "渔阳", "邦均", "下营", "上仓", "太平", "中塘", "杨家泊", "北辰", "宜兴埠",
    "南蔡村", "黄庄", "潘庄", "马伸桥", "别山", "七里海", "宁车沽",
)  # fmt: skip
_STREET_SERVICES: Final = (
    "党群服务中心", "综合执法大队", "社区服务中心", "便民服务中心", "退役军人服务站",
    "综合治理中心",
)  # fmt: skip
_STREET_SCHOOLS: Final = ("中心小学", "中心幼儿园", "中学", "第二小学")
_STREET_HOSPITALS: Final = ("社区卫生服务中心", "卫生服务站")
_STREET_VENUES: Final = ("综合文化站", "图书分馆", "全民健身中心")
_NEW_UNITS: Final = (
    "融媒体中心", "政务服务中心", "数据发展中心", "社会治理中心", "城市管理服务中心",
    "网格化管理中心", "营商环境服务中心",
)  # fmt: skip
_ROAD_STEMS: Final = (
    "南京", "成都", "重庆", "大沽", "卫津", "解放南", "黄河", "长江", "红旗", "复康", "友谊",
    "珠江", "中山", "建国", "新华", "津塘", "海河东", "光华", "迎宾", "育梁", "泉州", "雅安",
    "睦南", "马场", "西康", "常德", "唐山", "沙市", "佟楼", "气象台", "紫金山", "洞庭",
)  # fmt: skip
_ROAD_SUFFIXES: Final = ("路", "道", "大街")
_SURNAMES: Final = tuple(
    "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董程曹袁邓许傅沈曾彭吕苏卢"
    "蒋蔡贾丁魏薛叶阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟"
)
_GIVEN_CHARS: Final = tuple(
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超霞平刚桂英华红玉兰晶文建国志宏海燕鹏飞新宇博佳欣雪梅"
)
_MOBILE_PREFIXES: Final = ("133", "135", "137", "138", "139", "150", "151", "152", "158", "186")


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _rng(seed: int, stream: int) -> np.random.Generator:
    """One independent random generator per (seed, purpose)."""
    return np.random.default_rng([int(seed), stream])


_ZH_DIGITS: Final = "零一二三四五六七八九"


def _zh_below_10000(n: int) -> str:
    units = ("", "十", "百", "千")
    out, pending_zero = "", False
    for power in (3, 2, 1, 0):
        digit = n // 10**power % 10
        if digit == 0:
            pending_zero = pending_zero or bool(out)
            continue
        if pending_zero:
            out += "零"
            pending_zero = False
        out += _ZH_DIGITS[digit] + units[power]
    return out


def _zh_numeral(n: int) -> str:
    """Write 1 ≤ n < 10⁸ in Chinese numerals (十二, 一百零五, 一万零一十)."""
    if n < 10_000:
        text = _zh_below_10000(n)
    else:
        high, low = divmod(n, 10_000)
        text = _zh_below_10000(high) + "万"
        if low:
            text += ("零" if low < 1000 else "") + _zh_below_10000(low)
    return text[1:] if text.startswith("一十") else text


_NUMERALS: list[str] = ["零"]


def _numerals(indices: npt.NDArray[np.int64]) -> pl.Series:
    """Chinese numerals of many integers (a table extended once per distinct maximum)."""
    top = int(indices.max()) if indices.size else 0
    if top >= len(_NUMERALS):
        _NUMERALS.extend(_zh_numeral(i) for i in range(len(_NUMERALS), top + 1))
    return pl.Series(_NUMERALS[: top + 1], dtype=pl.String).gather(indices)


def _vocab(words: Sequence[str], indices: npt.NDArray[np.int64]) -> pl.Series:
    """Gather words by index (vectorised)."""
    return pl.Series(list(words), dtype=pl.String).gather(indices % len(words))


def _cycle_suffix(cycle_index: npt.NDArray[np.int64]) -> pl.Series:
    """Return ``""`` on the first pass through a word list, then ``（二）``, ``（三）``, etc."""
    numerals = _numerals(cycle_index + 1)
    return (
        pl.DataFrame({"c": cycle_index, "n": numerals})
        .select(
            pl.when(pl.col("c") > 0)
            .then(pl.concat_str(pl.lit("（"), pl.col("n"), pl.lit("）")))
            .otherwise(pl.lit(""))
        )
        .to_series()
    )


def _index_of(
    values: pl.Series | npt.ArrayLike, vocabulary: Sequence[str]
) -> npt.NDArray[np.int64]:
    """Position of each value in ``vocabulary`` (vectorised; unknown values raise)."""
    lookup = {v: i for i, v in enumerate(vocabulary)}
    series = values if isinstance(values, pl.Series) else pl.Series(np.asarray(values).astype(str))
    return series.replace_strict(lookup, return_dtype=pl.Int64).to_numpy()


def _gather_or_null(values: pl.Series, index: npt.NDArray[np.int64]) -> pl.Series:
    """``values[index]``, null where ``index`` is negative."""
    gathered = values.gather(np.maximum(index, 0))
    return gathered.zip_with(
        pl.Series(index >= 0), pl.Series([None] * index.size, dtype=values.dtype)
    )


def _digits(values: npt.NDArray[np.int64], width: int) -> npt.NDArray[np.str_]:
    """Zero-padded decimal strings of non-negative integers, as a numpy unicode array."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    matrix = (values[:, None] // powers[None, :]) % 10 + ord("0")
    return np.ascontiguousarray(matrix.astype(np.uint32)).view(f"U{width}").ravel()


def _pick_in_groups(
    child_group: npt.NDArray[np.int64],
    pool_rows: npt.NDArray[np.int64],
    pool_group: npt.NDArray[np.int64],
    rng: np.random.Generator,
) -> npt.NDArray[np.int64]:
    """For each child, a uniformly random pool row of the same group (any group if none).

    Returns -1 where the pool is empty.
    """
    n = child_group.shape[0]
    if pool_rows.size == 0:
        return np.full(n, -1, dtype=np.int64)
    n_groups = int(max(child_group.max(initial=0), pool_group.max(initial=0))) + 1
    order = np.argsort(pool_group, kind="stable")
    sorted_rows = pool_rows[order]
    counts = np.bincount(pool_group, minlength=n_groups)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    u = rng.random(n)
    c = counts[child_group]
    in_group = starts[child_group] + np.floor(u * c).astype(np.int64)
    anywhere = np.floor(u * pool_rows.size).astype(np.int64)
    return np.where(
        c > 0, sorted_rows[np.minimum(in_group, pool_rows.size - 1)], pool_rows[anywhere]
    )


def _largest_remainder(total: int, weights: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Split ``total`` into integers proportional to ``weights`` (Hamilton's method)."""
    if total <= 0 or weights.sum() <= 0:
        return np.zeros(weights.shape[0], dtype=np.int64)
    exact = total * weights / weights.sum()
    out = np.floor(exact).astype(np.int64)
    remainder = total - int(out.sum())
    out[np.argsort(-(exact - out), kind="stable")[:remainder]] += 1
    return out


def _not_round(
    values: npt.NDArray[np.float64], rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """Round to whole units and move exact multiples of 100 off the round number (meters)."""
    out = np.round(values)
    round_ones = (out > 0) & (np.mod(out, 100) == 0)
    out[round_ones] += rng.integers(1, 100, int(round_ones.sum()))
    return out


def _lognormal(
    rng: np.random.Generator, median: npt.NDArray[np.float64] | float, sigma: float, n: int
) -> npt.NDArray[np.float64]:
    return np.asarray(median) * np.exp(rng.normal(0.0, sigma, n))


def _district_table(districts: pl.DataFrame | None) -> pl.DataFrame:
    return load_districts(districts).sort("district_code")


def _check_directory_columns(directory: pl.DataFrame) -> None:
    missing = [c for c in DIRECTORY_COLUMNS if c not in directory.columns]
    if missing:
        raise ValueError(f"directory lacks column(s) {', '.join(missing)}")


# --------------------------------------------------------------------------------------------
# Directory
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Role:
    """One kind of institution in the synthetic directory."""

    key: str
    level: str
    institution_type: str
    sector: str
    share: float  # share of the institutions above the minimum
    minimum: int  # per district for district/subdistrict roles, in all for municipal roles
    template: str  # placeholders: region district item cycle n stem parent parent_stem
    items: tuple[str, ...]
    item_keys: tuple[str, ...] | None = None  # keys (e.g. bureau) aligned with items
    parent_roles: tuple[str, ...] = ()
    parent_keys: tuple[str, ...] | None = None
    ordinal_by: str = "district"  # "role", "district" or "parent"
    rotate_items: bool = False  # start the item list at a different place in each district
    stem_template: str | None = None  # street/town offices: the stem their units' names use
    outer_only: bool = False  # towns: only outside the central districts
    subsector: str | None = None
    is_parent: bool = False  # roles that have subordinate units stay active


_MUNI_KEYS = tuple(k for k, _ in _MUNICIPAL_BUREAUS)
_DIST_KEYS = tuple(k for k, _ in _DISTRICT_BUREAUS)

_ROLES: Final[tuple[_Role, ...]] = (
    # municipal
    _Role("m_bureau", "municipal", "agency", "agency", 0.020, 5, "{item}{cycle}",
          tuple(n for _, n in _MUNICIPAL_BUREAUS), _MUNI_KEYS, ordinal_by="role", is_parent=True),
    _Role("m_university", "municipal", "public_service_unit", "university", 0.006, 1,
          "{item}{cycle}", _UNIVERSITIES, parent_roles=("m_bureau",), parent_keys=("education",),
          ordinal_by="role"),
    _Role("m_hospital", "municipal", "public_service_unit", "hospital", 0.012, 1, "{item}{cycle}",
          _MUNICIPAL_HOSPITALS, parent_roles=("m_bureau",), parent_keys=("health",),
          ordinal_by="role", subsector="三级医院"),
    _Role("m_school", "municipal", "public_service_unit", "school", 0.012, 1, "{region}第{n}{item}",
          ("中学",), parent_roles=("m_bureau",), parent_keys=("education",), ordinal_by="role"),
    _Role("m_venue", "municipal", "public_service_unit", "venue", 0.006, 1, "{item}{cycle}",
          _MUNICIPAL_VENUES, parent_roles=("m_bureau",), parent_keys=("culture", "sports"),
          ordinal_by="role"),
    _Role("m_research", "municipal", "public_service_unit", "research", 0.012, 1,
          "{region}{item}研究所{cycle}", _RESEARCH_FIELDS, parent_roles=("m_bureau",),
          parent_keys=("science",), ordinal_by="role"),
    _Role("m_other", "municipal", "public_service_unit", "other_service", 0.080, 1,
          "{parent}{item}{cycle}", _MUNICIPAL_SERVICES, parent_roles=("m_bureau",),
          ordinal_by="parent"),
    _Role("m_org", "municipal", "organization", "organization", 0.015, 1, "{item}{cycle}",
          _MASS_ORGANIZATIONS, ordinal_by="role"),
    # district
    _Role("d_gov", "district", "agency", "agency", 0.0, 1, "{region}{district}人民政府", ("",),
          is_parent=True),
    _Role("d_bureau", "district", "agency", "agency", 0.060, 5, "{region}{district}{item}{cycle}",
          tuple(n for _, n in _DISTRICT_BUREAUS), _DIST_KEYS, parent_roles=("d_gov",),
          is_parent=True),
    _Role("d_school", "district", "public_service_unit", "school", 0.220, 1,
          "{region}{district}第{n}{item}", ("小学", "中学", "幼儿园"), parent_roles=("d_bureau",),
          parent_keys=("education",)),
    _Role("d_hospital", "district", "public_service_unit", "hospital", 0.040, 1,
          "{region}{district}{item}{cycle}", _DISTRICT_HOSPITALS, parent_roles=("d_bureau",),
          parent_keys=("health",), subsector="二级医院"),
    _Role("d_venue", "district", "public_service_unit", "venue", 0.015, 0,
          "{region}{district}{item}{cycle}", _DISTRICT_VENUES, parent_roles=("d_bureau",),
          parent_keys=("culture",)),
    _Role("d_research", "district", "public_service_unit", "research", 0.005, 0,
          "{region}{district}{item}{cycle}", _DISTRICT_RESEARCH, parent_roles=("d_bureau",),
          parent_keys=("science",)),
    _Role("d_other", "district", "public_service_unit", "other_service", 0.130, 0,
          "{parent}{item}{cycle}", _DISTRICT_SERVICES, parent_roles=("d_bureau",),
          ordinal_by="parent"),
    _Role("d_org", "district", "organization", "organization", 0.025, 0,
          "{region}{district}{item}{cycle}", _DISTRICT_ORGANIZATIONS, parent_roles=("d_gov",)),
    # street / town
    _Role("s_street", "subdistrict", "agency", "agency", 0.035, 1,
          "{region}{district}{stem}办事处", _STREET_STEMS, parent_roles=("d_gov",),
          rotate_items=True, stem_template="{item}街道{cycle}", is_parent=True),
    _Role("s_town", "subdistrict", "agency", "agency", 0.025, 0,
          "{region}{district}{stem}人民政府", _TOWN_STEMS, parent_roles=("d_gov",),
          rotate_items=True, stem_template="{item}镇{cycle}", outer_only=True, is_parent=True),
    _Role("s_other", "subdistrict", "public_service_unit", "other_service", 0.120, 0,
          "{region}{district}{parent_stem}{item}{cycle}", _STREET_SERVICES,
          parent_roles=("s_street", "s_town"), ordinal_by="parent"),
    _Role("s_school", "subdistrict", "public_service_unit", "school", 0.060, 0,
          "{region}{district}{parent_stem}{item}{cycle}", _STREET_SCHOOLS,
          parent_roles=("s_street", "s_town"), ordinal_by="parent"),
    _Role("s_hospital", "subdistrict", "public_service_unit", "hospital", 0.025, 0,
          "{region}{district}{parent_stem}{item}{cycle}", _STREET_HOSPITALS,
          parent_roles=("s_street", "s_town"), ordinal_by="parent", subsector="基层医疗卫生机构"),
    _Role("s_venue", "subdistrict", "public_service_unit", "venue", 0.015, 0,
          "{region}{district}{parent_stem}{item}{cycle}", _STREET_VENUES,
          parent_roles=("s_street", "s_town"), ordinal_by="parent"),
)  # fmt: skip
_ROLE_NAMES: Final = tuple(r.key for r in _ROLES)
#: Subsector of a school, university or venue from its name: the first (pattern, subsector)
#: whose pattern the name contains, else the last entry.
_SUBSECTOR_BY_NAME: Final[Mapping[str, tuple[tuple[tuple[str, str], ...], str]]] = MappingProxyType(
    {
        "school": ((("幼儿园", "幼儿园"), ("小学", "小学")), "中学"),
        "university": ((("职业|专科", "高职院校"),), "本科院校"),
        "venue": ((("体育|健身|运动", "体育场馆"),), "文化场馆"),
    }
)
_TYPE_PREFIX: Final = {"agency": "11", "public_service_unit": "12", "organization": "13"}
_STATUS_SHARE: Final = {"dissolved": 0.015, "merged": 0.015}


def _role_minima(n_districts: int, n_outer: int) -> npt.NDArray[np.int64]:
    """Fewest institutions of each role in the city (district roles: per (outer) district)."""
    return np.array(
        [
            r.minimum
            if r.level == "municipal"
            else r.minimum * (n_outer if r.outer_only else n_districts)
            for r in _ROLES
        ],
        dtype=np.int64,
    )


def _compose(template: str, fields: Mapping[str, pl.Series | str]) -> pl.Series:
    """Fill a name template from vectorised fields (a tiny str.format for polars Series)."""
    pieces: list[pl.Expr] = []
    columns: dict[str, pl.Series] = {}
    for literal, field, _, _ in string.Formatter().parse(template):
        if literal:
            pieces.append(pl.lit(literal))
        if field is not None:
            value = fields[field]
            if isinstance(value, str):
                pieces.append(pl.lit(value))
            else:
                columns[field] = value
                pieces.append(pl.col(field))
    frame = pl.DataFrame(columns) if columns else pl.DataFrame({"_": [0]})
    return frame.select(pl.concat_str(pieces).alias("name")).to_series()


def _role_block(
    role: _Role,
    counts: npt.NDArray[np.int64],
    built: pl.DataFrame,
    districts: pl.DataFrame,
    location_weights: npt.NDArray[np.float64],
    first_row: int,
    rng: np.random.Generator,
) -> pl.DataFrame:
    """Generate the rows of one role (vectorised)."""
    n_districts = districts.height
    if role.level == "municipal":
        n = int(counts.sum())
        district = rng.choice(n_districts, size=n, p=location_weights).astype(np.int64)
    else:
        district = np.repeat(np.arange(n_districts, dtype=np.int64), counts)
        n = district.shape[0]
    block = pl.DataFrame(
        {
            "row": np.arange(first_row, first_row + n, dtype=np.int64),
            "district": district,
        }
    )

    parent = np.full(n, -1, dtype=np.int64)
    if role.parent_roles and n:
        pool = built.filter(pl.col("role").is_in(list(role.parent_roles)))
        if role.parent_keys is not None:
            pool = pool.filter(pl.col("key").is_in(list(role.parent_keys)))
        pool_rows = pool["row"].to_numpy()
        if role.level == "municipal":
            parent = _pick_in_groups(
                np.zeros(n, dtype=np.int64), pool_rows, np.zeros(pool_rows.size, np.int64), rng
            )
        else:
            parent = _pick_in_groups(district, pool_rows, pool["district"].to_numpy(), rng)
    block = block.with_columns(parent_row=pl.Series(parent, dtype=pl.Int64))

    group = {"role": [], "district": ["district"], "parent": ["parent_row"]}[role.ordinal_by]
    if group:
        block = block.with_columns(k=pl.int_range(pl.len(), dtype=pl.Int64).over(group))
    else:
        block = block.with_columns(k=pl.int_range(pl.len(), dtype=pl.Int64))
    k = block["k"].to_numpy()
    n_items = len(role.items)
    offset = district * 7 if role.rotate_items else np.zeros(n, dtype=np.int64)
    item_index = (k + offset) % n_items
    cycle_index = k // n_items
    cycle = _cycle_suffix(cycle_index)

    parent_info = built.select("row", "name", "stem").rename(
        {"row": "parent_row", "name": "parent", "stem": "parent_stem"}
    )
    block = block.join(parent_info, on="parent_row", how="left", maintain_order="left")
    fields: dict[str, pl.Series | str] = {
        "region": _REGION_NAME,
        "district": districts["name_zh"].gather(district),
        "item": _vocab(role.items, item_index),
        "cycle": cycle,
        "n": _numerals(cycle_index + 1),
        "parent": block["parent"].fill_null(""),
        "parent_stem": block["parent_stem"].fill_null(""),
    }
    stem = (
        _compose(role.stem_template, fields)
        if role.stem_template
        else pl.Series([None] * n, dtype=pl.String)
    )
    fields["stem"] = stem.fill_null("")
    name = _compose(role.template, fields) if n else pl.Series([], dtype=pl.String)
    key = (
        _vocab(role.item_keys, item_index)
        if role.item_keys
        else pl.Series([role.key] * n, dtype=pl.String)
    )
    prefix = np.full(n, _TYPE_PREFIX[role.institution_type], dtype="U2")

    if role.key == "m_org":  # beyond the mass organisations: associations registered with 民政
        extra = k >= n_items
        if extra.any():
            j = k[extra] - n_items
            kinds = rng.choice(np.array(["51", "52", "53"]), size=j.size, p=[0.7, 0.15, 0.15])
            prefix[extra] = kinds
            suffix = pl.Series([_ASSOCIATION_SUFFIX[x] for x in ("51", "52", "53")]).gather(
                np.searchsorted(np.array(["51", "52", "53"]), kinds)
            )
            tail = _cycle_suffix(j // len(_ASSOCIATION_FIELDS))
            association = _REGION_NAME + _vocab(_ASSOCIATION_FIELDS, j) + suffix + tail
            name = name.scatter(np.flatnonzero(extra), association)
            pool_rows = built.filter(pl.col("role") == "m_bureau")["row"].to_numpy()
            parent[extra] = pool_rows[rng.integers(0, pool_rows.size, j.size)]

    subsector = pl.Series([role.subsector] * n, dtype=pl.String)
    if role.sector in _SUBSECTOR_BY_NAME:
        rules, otherwise = _SUBSECTOR_BY_NAME[role.sector]
        label = pl.lit(otherwise)
        for pattern, then in reversed(rules):
            label = (
                pl.when(pl.col("name").str.contains(pattern)).then(pl.lit(then)).otherwise(label)
            )
        subsector = pl.DataFrame({"name": name}).select(label).to_series()

    return pl.DataFrame(
        {
            "row": block["row"],
            "role": pl.Series([role.key] * n, dtype=pl.String),
            "district": block["district"],
            "key": key,
            "stem": stem,
            "name": name,
            "parent_row": pl.Series(parent, dtype=pl.Int64),
            "prefix": pl.Series(prefix, dtype=pl.String),
            "subsector": subsector,
        }
    )


def _organization_bodies(n: int, rng: np.random.Generator) -> npt.NDArray[np.str_]:
    """Distinct 8-character organization-code bodies: digits, and some ``MB`` + 6 digits.

    Distinctness comes from affine bijections i → (a·i + b) mod 10^k with a coprime to 10.
    """
    n_mb = min(int(0.15 * n), 900_000)
    n_digits = n - n_mb
    if n_digits > 10**8:
        raise ValueError(f"n_institutions={n} is too many for distinct organization codes")
    a = int(rng.choice(np.array([7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47]))) * 10_000_019
    b = int(rng.integers(0, 10**8))
    digits = (a * np.arange(n_digits, dtype=np.int64) + b) % 10**8
    a6 = int(rng.choice(np.array([7, 11, 13, 17, 19, 23]))) * 1009
    b6 = int(rng.integers(0, 10**6))
    mb = (a6 * np.arange(n_mb, dtype=np.int64) + b6) % 10**6
    bodies = np.empty(n, dtype="U8")
    is_mb = np.zeros(n, dtype=bool)
    is_mb[rng.choice(n, size=n_mb, replace=False)] = True
    bodies[~is_mb] = _digits(digits, 8)
    bodies[is_mb] = np.char.add("MB", _digits(mb, 6))
    return bodies


def _heat_billing(central: npt.NDArray[np.bool_], rng: np.random.Generator) -> npt.NDArray[np.str_]:
    """Heat billing of institutions in central or outer districts (:data:`_HEAT_BILLING_P`)."""
    heat_u = rng.random(central.shape[0])
    p_central, p_outer = _HEAT_BILLING_P["central"], _HEAT_BILLING_P["outer"]
    metered_p = np.where(central, p_central[0], p_outer[0])
    by_area_p = np.where(central, p_central[1], p_outer[1])
    return np.where(
        heat_u < metered_p, "metered", np.where(heat_u < metered_p + by_area_p, "by_area", "none")
    )


def _key_energy_users(
    sector: npt.NDArray[np.str_], level: npt.NDArray[np.str_], rng: np.random.Generator
) -> npt.NDArray[np.bool_]:
    """Draw the 重点用能单位 flag: the sector's share, × 0.3 below the municipal level."""
    key_share = np.array([_SECTOR_PROFILES[s].key_user_share for s in _SECTORS])
    return rng.random(sector.shape[0]) < key_share[_index_of(sector, _SECTORS)] * np.where(
        level == "municipal", 1.0, 0.3
    )


def _addresses(district_names: pl.Series, rng: np.random.Generator) -> pl.Series:
    """Street addresses in the given districts (天津市和平区南京路123号)."""
    n = district_names.len()
    return (
        _REGION_NAME
        + district_names
        + _vocab(_ROAD_STEMS, rng.integers(0, len(_ROAD_STEMS), n))
        + _vocab(_ROAD_SUFFIXES, rng.integers(0, len(_ROAD_SUFFIXES), n))
        + pl.Series(rng.integers(1, 1000, n)).cast(pl.String)
        + "号"
    )


def _contacts(n: int, rng: np.random.Generator) -> tuple[pl.Series, pl.Series]:
    """Contact names and phone numbers (half mobile, half 022 landline)."""
    given2 = rng.random(n) < 0.6
    contact_name = (
        _vocab(_SURNAMES, rng.integers(0, len(_SURNAMES), n))
        + _vocab(_GIVEN_CHARS, rng.integers(0, len(_GIVEN_CHARS), n))
        + _vocab(_GIVEN_CHARS, rng.integers(0, len(_GIVEN_CHARS), n)).zip_with(
            pl.Series(given2), pl.Series([""] * n, dtype=pl.String)
        )
    )
    mobile = rng.random(n) < 0.5
    landline = "022-2" + pl.Series(_digits(rng.integers(0, 10**7, n), 7))
    cell = _vocab(_MOBILE_PREFIXES, rng.integers(0, len(_MOBILE_PREFIXES), n)) + pl.Series(
        _digits(rng.integers(0, 10**8, n), 8)
    )
    return contact_name, cell.zip_with(pl.Series(mobile), landline)


def make_directory(
    n_institutions: int, seed: int, *, districts: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Make a synthetic directory of public institutions (公共机构名录库).

    Municipal bureaus with their subordinate units (universities, hospitals, schools, venues,
    research institutes, service centres), mass organisations and a few associations; in each
    district a government, bureaus, street offices (and towns outside the centre) and the units
    under them. Parents always exist, come earlier in the hierarchy (no cycles) and are never
    of a lower administrative level than their units. About 1.5 % of the leaf units are dissolved
    and 1.5 % merged into an active unit (of the same kind and district where there is one).

    Parameters
    ----------
    n_institutions : int
        Number of institutions [institutions]; at least the minimum the hierarchy needs (about
        160 for Tianjin's 16 districts).
    seed : int
        Random seed: the same seed gives the same frame.
    districts : polars.DataFrame, optional
        District table (see :func:`energy_audit.districts.load_districts`); default Tianjin.

    Returns
    -------
    polars.DataFrame
        The columns of :data:`DIRECTORY_COLUMNS` with canonical codes as values
        (``key_energy_user`` boolean, everything else strings).

    Raises
    ------
    ValueError
        If ``n_institutions`` is below the minimum.

    Examples
    --------
    >>> directory = make_directory(500, seed=1)
    >>> directory.height, directory["district_code"].n_unique()
    (500, 16)
    """
    table = _district_table(districts)
    codes = table["district_code"].to_list()
    n_districts = len(codes)
    outer = np.array([c not in _CENTRAL_DISTRICTS for c in codes])
    minima = _role_minima(n_districts, int(outer.sum()))
    minimum = int(minima.sum())
    if n_institutions < minimum:
        raise ValueError(f"n_institutions must be at least {minimum}, got {n_institutions}")
    rng = _rng(seed, _STREAM_DIRECTORY)

    size = np.array([_DISTRICT_SIZE.get(c, 1.0) for c in codes])
    location = np.where(~outer, 3.0, np.where(np.array(codes) == "120116", 1.0, 0.5))
    location = location / location.sum()

    # How many of each role: the minima, then the rest by share (largest remainder).
    extra = _largest_remainder(n_institutions - minimum, np.array([r.share for r in _ROLES]))

    blocks: list[pl.DataFrame] = []
    built = pl.DataFrame(
        schema={"row": pl.Int64, "role": pl.String, "district": pl.Int64, "key": pl.String,
                "stem": pl.String, "name": pl.String}
    )  # fmt: skip
    first_row = 0
    for role, n_extra in zip(_ROLES, extra, strict=True):
        if role.level == "municipal":
            counts = np.array([role.minimum + n_extra])
        else:
            weights = size * outer if role.outer_only else size
            base = np.where(outer, role.minimum, 0 if role.outer_only else role.minimum)
            counts = base + rng.multinomial(int(n_extra), weights / weights.sum())
        block = _role_block(role, counts, built, table, location, first_row, rng)
        first_row += block.height
        blocks.append(block)
        built = pl.concat([built, block.select(built.columns)], how="vertical", rechunk=False)
    frame = pl.concat(blocks, how="vertical", rechunk=True)
    n = frame.height

    district = frame["district"].to_numpy()
    role_ix = _index_of(frame["role"], _ROLE_NAMES)
    level = np.array([r.level for r in _ROLES])[role_ix]
    institution_type = np.array([r.institution_type for r in _ROLES])[role_ix]
    sector = np.array([r.sector for r in _ROLES])[role_ix]
    is_parent_role = np.array([r.is_parent for r in _ROLES])[role_ix]

    # Credit codes: prefix by type, region code of the registering office.
    district_codes = np.array(codes)
    region = np.where(
        level == "municipal",
        _MUNICIPAL_REGION_CODE,
        district_codes[district],
    ).astype("U6")
    city_registered = rng.random(n) < 0.05
    region[city_registered] = _MUNICIPAL_REGION_CODE
    for code, (retired, share) in _RETIRED_REGION_CODES.items():
        if code not in codes:
            continue
        here = (district_codes[district] == code) & (rng.random(n) < share)
        region[here] = rng.choice(np.array(retired), size=int(here.sum()))
    bodies = _organization_bodies(n, rng)
    ids = make_credit_codes(frame["prefix"].to_numpy().astype("U2"), region, bodies)

    # Status: some leaf units dissolved or merged into an active unit of the same role/district.
    u = rng.random(n)
    status = np.full(n, "active", dtype="U9")
    leaf = ~is_parent_role
    status[leaf & (u < _STATUS_SHARE["dissolved"])] = "dissolved"
    merged = leaf & (u >= _STATUS_SHARE["dissolved"]) & (u < sum(_STATUS_SHARE.values()))
    merged_rows = np.flatnonzero(merged)
    active_rows = np.flatnonzero((status == "active") & ~merged)
    group = role_ix * n_districts + district
    target = _pick_in_groups(group[merged_rows], active_rows, group[active_rows], rng)
    status[merged_rows] = np.where(target >= 0, "merged", "active")
    ids_series = pl.Series(ids, dtype=pl.String)
    merged_into_row = np.full(n, -1, dtype=np.int64)
    merged_into_row[merged_rows] = target
    merged_into = _gather_or_null(ids_series, merged_into_row)
    parent_id = _gather_or_null(ids_series, frame["parent_row"].to_numpy())

    # Heating, key energy users, addresses and contacts.
    heat = _heat_billing(~outer[district], rng)
    key_user = _key_energy_users(sector, level, rng)
    address = _addresses(table["name_zh"].gather(district), rng)
    contact_name, contact_phone = _contacts(n, rng)

    return pl.DataFrame(
        {
            "institution_id": ids_series,
            "name": frame["name"],
            "district_code": pl.Series(district_codes[district], dtype=pl.String),
            "institution_type": pl.Series(institution_type, dtype=pl.String),
            "sector": pl.Series(sector, dtype=pl.String),
            "subsector": frame["subsector"],
            "admin_level": pl.Series(level, dtype=pl.String),
            "parent_id": parent_id,
            "address": address,
            "key_energy_user": pl.Series(key_user, dtype=pl.Boolean),
            "heat_billing": pl.Series(heat, dtype=pl.String),
            "status": pl.Series(status, dtype=pl.String),
            "merged_into_id": merged_into,
            "contact_name": contact_name,
            "contact_phone": contact_phone,
        }
    )


# --------------------------------------------------------------------------------------------
# Returns
# --------------------------------------------------------------------------------------------


def district_trends(districts: pl.DataFrame | None = None) -> pl.DataFrame:
    """Return the true yearly change of energy and water intensity per district.

    Parameters
    ----------
    districts : polars.DataFrame, optional
        District table (default Tianjin's). Districts the generator has no value for get one from
        a fixed pattern.

    Returns
    -------
    polars.DataFrame
        ``district_code``, ``name_zh``, ``intensity_change_per_year`` [fraction per year,
        negative = reduction].
    """
    table = _district_table(districts)
    codes = table["district_code"].to_list()
    trend = [
        _DISTRICT_TREND.get(code, _TREND_PATTERN[i % len(_TREND_PATTERN)])
        for i, code in enumerate(codes)
    ]
    return table.select("district_code", "name_zh").with_columns(
        intensity_change_per_year=pl.Series(trend, dtype=pl.Float64)
    )


def _check_years(years: Iterable[int]) -> npt.NDArray[np.int64]:
    out = np.asarray(sorted(set(int(y) for y in years)), dtype=np.int64)
    if out.size == 0:
        raise ValueError("years must name at least one year")
    if out.size > 1 and (np.diff(out) != 1).any():
        raise ValueError(
            f"years must be consecutive (last year = the row before), got {out.tolist()}"
        )
    return out


def _defect_rates(defects: bool | Mapping[str, float]) -> dict[str, float]:
    if defects is False:
        return dict.fromkeys(DEFECT_KINDS, 0.0)
    rates = dict(DEFAULT_DEFECT_RATES)
    if defects is True:
        return rates
    unknown = sorted(set(defects) - set(DEFECT_KINDS))
    if unknown:
        raise ValueError(f"unknown defect kind(s) {unknown}; known: {sorted(DEFECT_KINDS)}")
    rates.update({k: float(v) for k, v in defects.items()})
    return rates


@dataclass
class _Institutions:
    """What the generator needs per institution (directory rows, then phantom rows)."""

    ids: pl.Series
    names: pl.Series
    sector: npt.NDArray[np.int64]
    level: npt.NDArray[np.int64]
    district: npt.NDArray[np.int64]
    central: npt.NDArray[np.bool_]
    heat: npt.NDArray[np.int64]
    key_user: npt.NDArray[np.bool_]
    status: npt.NDArray[np.str_]
    parent: npt.NDArray[np.int64]  # row of the parent, -1 if none
    related: pl.Series  # merged_into_id (or null)

    @property
    def size(self) -> int:
        return self.sector.shape[0]


def _institutions(
    directory: pl.DataFrame, table: pl.DataFrame, n_phantoms: int, rng: np.random.Generator
) -> _Institutions:
    """Directory rows plus ``n_phantoms`` institutions that are not in the directory."""
    _check_directory_columns(directory)
    codes = table["district_code"].to_list()
    d = directory.with_row_index("row")
    parent = (
        d.select("row", "parent_id")
        .join(
            d.select(pl.col("institution_id").alias("parent_id"), pl.col("row").alias("p")),
            on="parent_id",
            how="left",
            maintain_order="left",
        )["p"]
        .fill_null(-1)
        .cast(pl.Int64)
        .to_numpy()
    )
    district = _index_of(directory["district_code"], codes)

    # Phantoms: new units (融媒体中心 …) that report but are not in the directory yet. Their
    # bodies start with "MC" (make_directory uses digits and "MB"); codes a foreign directory
    # already has are dropped.
    candidates = pl.Series(
        make_credit_codes(
            "12",
            np.array(codes)[rng.integers(0, len(codes), 2 * n_phantoms)],
            np.char.add("MC", _digits(rng.choice(10**6, size=2 * n_phantoms, replace=False), 6)),
        ),
        dtype=pl.String,
    )
    ph_ids = candidates.filter(~candidates.is_in(directory["institution_id"].implode())).head(
        n_phantoms
    )
    if ph_ids.len() < n_phantoms:
        raise ValueError("could not make credit codes outside the directory for the phantoms")
    ph_district = _index_of(ph_ids.str.slice(2, 6), codes)
    ph_k = np.arange(n_phantoms, dtype=np.int64)
    ph_names = (
        _REGION_NAME
        + table["name_zh"].gather(ph_district)
        + _vocab(_NEW_UNITS, ph_k)
        + _cycle_suffix(ph_k // len(_NEW_UNITS))
    )

    def both(values: npt.NDArray, extra: npt.NDArray) -> npt.NDArray:
        return np.concatenate([values, extra])

    def phantoms(index: int) -> npt.NDArray[np.int64]:
        return np.full(n_phantoms, index, dtype=np.int64)

    central = np.array([c in _CENTRAL_DISTRICTS for c in codes], dtype=bool)
    return _Institutions(  # phantoms: district-level other_service units, heating billed by area
        ids=pl.concat([directory["institution_id"], ph_ids]),
        names=pl.concat([directory["name"], ph_names]),
        sector=both(
            _index_of(directory["sector"], _SECTORS), phantoms(_SECTORS.index("other_service"))
        ),
        level=both(
            _index_of(directory["admin_level"], _LEVELS), phantoms(_LEVELS.index("district"))
        ),
        district=both(district, ph_district),
        central=both(central[district], central[ph_district]),
        heat=both(
            _index_of(directory["heat_billing"], _HEAT_BILLING),
            phantoms(_HEAT_BILLING.index("by_area")),
        ),
        key_user=both(
            directory["key_energy_user"].fill_null(False).to_numpy(), np.zeros(n_phantoms, bool)
        ),
        status=both(directory["status"].to_numpy().astype("U9"), np.full(n_phantoms, "phantom")),
        parent=both(parent, np.full(n_phantoms, -1)),
        related=pl.concat(
            [directory["merged_into_id"], pl.Series([None] * n_phantoms, dtype=pl.String)]
        ),
    )


def _profile_array(field: str) -> npt.NDArray[np.float64]:
    return np.array([getattr(_SECTOR_PROFILES[s], field) for s in _SECTORS], dtype=np.float64)


def _true_values(
    inst: _Institutions,
    years: npt.NDArray[np.int64],
    trend: npt.NDArray[np.float64],
    rng: np.random.Generator,
) -> dict[str, npt.NDArray]:
    """Draw the true returns of every institution and year (institution-major grid)."""
    m, ny = inst.size, years.size
    g = m * ny
    s, lv = inst.sector, inst.level

    # Static: area, occupants, equipment.
    area_median = (
        _profile_array("area_m2")[s]
        * np.asarray(_LEVEL_AREA_FACTOR)[lv]
        * np.where(inst.key_user, _KEY_USER_AREA_FACTOR, 1.0)
    )
    area = np.maximum(_lognormal(rng, area_median, _AREA_SIGMA, m), _MIN_AREA_M2)
    heated = area * rng.uniform(0.85, 1.0, m)
    occupants = np.maximum(
        np.round(area / _lognormal(rng, _profile_array("m2_per_occupant")[s], 0.25, m)), 3
    )
    staff = np.maximum(np.round(occupants * _profile_array("staff_share")[s]), 1)
    vehicles = rng.poisson(_profile_array("vehicles_mean")[s] * np.where(lv == 0, 1.5, 1.0))
    diesel_vehicles = rng.binomial(vehicles, _profile_array("diesel_vehicle_share")[s])

    # Static: yearly energy use before heating [kgce], its split, heating by billing type.
    nonheat = (
        area
        * _lognormal(rng, _profile_array("nonheat_kgce_per_m2")[s], 0.3, m)
        * np.asarray(_LEVEL_INTENSITY_FACTOR)[lv]
    )
    gas_user = rng.random(m) < _profile_array("gas_user_share")[s]
    gas_share = np.where(gas_user, _profile_array("gas_energy_share")[s], 0.0)
    coef = kgce_per_canonical_unit(None, int(years[0]))
    elec0 = nonheat * (1 - gas_share) / coef["electricity_kwh"]
    gas0 = nonheat * gas_share / coef["natural_gas_m3"]
    metered, by_area, none = (inst.heat == i for i in range(3))
    heat0 = np.where(
        metered | (by_area & (rng.random(m) < _BY_AREA_ESTIMATE_SHARE)),
        heated * _lognormal(rng, _HEAT_GJ_PER_M2, 0.15, m),
        0.0,
    )
    boiler_u = rng.random(m)
    coal_boiler = none & ~inst.central & (boiler_u < 0.2)
    electric_boiler = none & (boiler_u >= np.where(inst.central, 0.7, 0.8))
    gas_boiler = none & ~coal_boiler & ~electric_boiler
    gas_heat0 = np.where(gas_boiler, heated * _lognormal(rng, _BOILER_GAS_M3_PER_M2, 0.15, m), 0.0)
    coal0 = np.where(coal_boiler, heated * _lognormal(rng, _BOILER_COAL_T_PER_M2, 0.15, m), 0.0)
    elec_heat0 = np.where(
        electric_boiler, heated * _lognormal(rng, _ELECTRIC_HEAT_KWH_PER_M2, 0.2, m), 0.0
    )
    gasoline0 = (vehicles - diesel_vehicles) * _lognormal(rng, _GASOLINE_L_PER_VEHICLE, 0.25, m)
    diesel0 = diesel_vehicles * _lognormal(rng, _DIESEL_L_PER_VEHICLE, 0.25, m)
    lpg0 = np.where(~gas_user & (rng.random(m) < _LPG_SHARE), occupants * rng.uniform(3, 8, m), 0.0)
    other0 = np.where(rng.random(m) < _OTHER_ENERGY_SHARE, _lognormal(rng, 5.0, 0.5, m), 0.0)
    pv_share = np.where(
        rng.random(m) < _PV_SHARE * np.where(lv == 0, 1.5, 1.0), rng.uniform(0.02, 0.12, m), 0.0
    )
    water0 = occupants * _lognormal(rng, _profile_array("water_m3_per_occupant")[s], 0.25, m)
    price_e = rng.uniform(*_ELECTRICITY_PRICE, m)
    price_g = rng.uniform(*_GAS_PRICE, m)
    price_w = rng.uniform(*_WATER_PRICE, m)

    # Yearly: district trend, city weather (heating), small noise.
    i = np.repeat(np.arange(m), ny)
    yi = np.tile(np.arange(ny), m)
    trend_factor = (1.0 + trend[inst.district[i]]) ** yi
    weather = rng.uniform(*_WEATHER_RANGE, ny)[yi]

    def noise() -> npt.NDArray[np.float64]:
        return np.exp(
            np.clip(rng.normal(0.0, _YEAR_NOISE_SIGMA, g), -_YEAR_NOISE_CLIP, _YEAR_NOISE_CLIP)
        )

    elec = (elec0[i] * noise() + elec_heat0[i] * weather * noise()) * trend_factor
    gas = (gas0[i] * noise() + gas_heat0[i] * weather * noise()) * trend_factor
    values: dict[str, npt.NDArray] = {
        "year": years[yi],
        "building_area_m2": np.round(area, 2)[i],
        "heated_area_m2": np.round(heated, 2)[i],
        "occupants": np.maximum(np.round(occupants[i] * noise() ** 0.5), 1).astype(np.int64),
        "staff_quota": staff[i].astype(np.int64),
        "vehicles": vehicles[i].astype(np.int64),
        "electricity_kwh": _not_round(elec, rng),
        "natural_gas_m3": _not_round(gas, rng),
        "coal_t": np.round(coal0[i] * weather * trend_factor * noise(), 3),
        "gasoline_l": np.round(gasoline0[i] * trend_factor * noise(), 2),
        "diesel_l": np.round(diesel0[i] * trend_factor * noise(), 2),
        "lpg_kg": np.round(lpg0[i] * trend_factor * noise(), 1),
        "heat_gj": np.round(heat0[i] * weather * trend_factor * noise(), 2),
        "other_energy_tce": np.round(other0[i] * trend_factor * noise(), 3),
        "water_m3": _not_round(water0[i] * trend_factor * noise(), rng),
    }
    values["pv_generation_kwh"] = _not_round(values["electricity_kwh"] * pv_share[i], rng)
    yearly = rng.uniform(0.98, 1.02, g)
    values["electricity_cost_yuan"] = np.round(values["electricity_kwh"] * price_e[i] * yearly, 2)
    values["natural_gas_cost_yuan"] = np.round(values["natural_gas_m3"] * price_g[i] * yearly, 2)
    values["water_cost_yuan"] = np.round(values["water_m3"] * price_w[i] * yearly, 2)
    values["_inst"] = i
    values["_yi"] = yi
    return values


def _total_tce(
    values: Mapping[str, npt.NDArray], rows: npt.NDArray[np.int64], years: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """Σ items × standard-coal coefficients of the rows' years [tce], rounded to 0.001."""
    out = np.zeros(rows.size)
    row_years = values["year"][rows]
    for year in np.unique(row_years):
        coef = kgce_per_canonical_unit(None, int(year))
        here = row_years == year
        kgce = sum(values[c][rows[here]] * coef[c] for c in _ENERGY_ITEMS)
        out[here] = kgce / 1000.0
    return np.round(out, 3)


class _Injector:
    """Injects defects into the true grid and records each one in the truth table."""

    def __init__(
        self,
        values: dict[str, npt.NDArray],
        inst: _Institutions,
        years: npt.NDArray[np.int64],
        rates: Mapping[str, float],
        rng: np.random.Generator,
    ) -> None:
        self.v = values
        self.inst = inst
        self.years = years
        self.rates = rates
        self.rng = rng
        self.i = values["_inst"]
        self.yi = values["_yi"]
        status = inst.status[self.i]
        self.scope = status == "active"
        self.used = np.zeros(self.scope.size, dtype=bool)
        self.n_scope = int(self.scope.sum())
        self.keep = self.scope.copy()
        self.name_rows = np.zeros(0, dtype=np.int64)
        self.name_texts = pl.Series([], dtype=pl.String)
        self.extra: list[tuple[npt.NDArray[np.int64], dict[str, npt.NDArray]]] = []
        self.truth: list[pl.DataFrame] = []

    # ---- bookkeeping ------------------------------------------------------------------------

    def count(self, kind: str) -> int:
        rate = self.rates.get(kind, 0.0)
        return 0 if rate <= 0 else max(1, round(rate * self.n_scope))

    def pick(
        self, kind: str, eligible: npt.NDArray[np.bool_], *, yoy: bool = False
    ) -> npt.NDArray[np.int64]:
        """Choose rows for a defect among eligible unused rows, and mark them used."""
        k = self.count(kind)
        if k == 0:
            return np.zeros(0, dtype=np.int64)
        ok = eligible & ~self.used
        if yoy:
            prev_free = np.zeros_like(ok)
            prev_free[1:] = ~self.used[:-1]
            ok &= (self.yi > 0) & prev_free
        candidates = np.flatnonzero(ok)
        if candidates.size == 0:
            return candidates
        rows = np.sort(self.rng.choice(candidates, size=min(k, candidates.size), replace=False))
        if yoy:  # the previous year stays clean: it is what the jump is measured against
            rows = rows[~np.isin(rows - 1, rows)]
            self.used[rows - 1] = True
        self.used[rows] = True
        return rows

    def record(
        self,
        kind: str,
        rows: npt.NDArray[np.int64],
        *,
        field: str | None = None,
        true: npt.NDArray | None = None,
        reported: npt.NDArray | None = None,
        related: pl.Series | None = None,
        true_text: pl.Series | None = None,
        reported_text: pl.Series | None = None,
        detail: str | pl.Series | None = None,
    ) -> None:
        n = rows.size
        if n == 0:
            return
        inst_rows = self.i[rows]
        columns: dict[str, pl.Series] = {
            "institution_id": self.inst.ids.gather(inst_rows),
            "year": pl.Series(self.years[self.yi[rows]], dtype=pl.Int64),
            "defect": pl.Series([kind] * n, dtype=pl.String),
            "field": pl.Series([field] * n, dtype=pl.String),
        }
        if true is not None and reported is not None:
            t = np.asarray(true, dtype=np.float64)
            r = np.asarray(reported, dtype=np.float64)
            columns["true_value"] = pl.Series(t)
            columns["reported_value"] = pl.Series(r)
            with np.errstate(divide="ignore", invalid="ignore"):
                factor = np.where(t != 0, r / np.where(t != 0, t, 1.0), np.nan)
            columns["factor"] = pl.Series(factor).fill_nan(None)
        if related is not None:
            columns["related_id"] = related
        if true_text is not None:
            columns["true_text"] = true_text
        if reported_text is not None:
            columns["reported_text"] = reported_text
        if detail is not None:
            columns["detail"] = detail if isinstance(detail, pl.Series) else pl.Series([detail] * n)
        self.truth.append(_truth_frame(columns))

    def set_field(
        self,
        kind: str,
        rows: npt.NDArray[np.int64],
        field: str,
        reported: npt.NDArray,
        **kw: object,
    ) -> None:
        true = self.v[field][rows].astype(np.float64)
        self.v[field][rows] = reported
        self.record(
            kind, rows, field=field, true=true, reported=np.asarray(reported, np.float64), **kw
        )

    def choose_field(
        self, rows: npt.NDArray[np.int64], options: Mapping[str, float], above: float = 0.0
    ) -> npt.NDArray[np.str_]:
        """Choose a field per row among weighted ``options``, one whose value is above ``above``.

        Rows must have at least one such field.
        """
        fields = np.array(list(options))
        p = np.array(list(options.values()))
        chosen = self.rng.choice(fields, size=rows.size, p=p / p.sum())
        positive = np.column_stack([self.v[f][rows] > above for f in fields])
        ok = positive[np.arange(rows.size), _index_of(chosen, fields.tolist())]
        chosen[~ok] = fields[np.argmax(positive[~ok], axis=1)]
        return chosen

    # ---- the defects ------------------------------------------------------------------------

    def run(self) -> None:
        v, rng = self.v, self.rng
        scope = self.scope

        rows = self.pick("missing_return", scope)
        self.keep[rows] = False
        self.record("missing_return", rows)

        rows = self.pick("unit_slip_10k", scope)
        fields = self.choose_field(
            rows, {"electricity_kwh": 0.7, "natural_gas_m3": 0.15, "water_m3": 0.15}
        )
        for field in np.unique(fields):
            r = rows[fields == field]
            self.set_field("unit_slip_10k", r, str(field), v[field][r] / 10_000)

        rows = self.pick("unit_slip_kg_for_t", scope & (v["coal_t"] > 0))
        self.set_field("unit_slip_kg_for_t", rows, "coal_t", v["coal_t"][rows] * 1000)

        rows = self.pick("unit_slip_mj_for_gj", scope & (v["heat_gj"] > 0))
        self.set_field("unit_slip_mj_for_gj", rows, "heat_gj", v["heat_gj"][rows] * 1000)

        rows = self.pick(
            "unit_slip_kg_for_l", scope & ((v["gasoline_l"] > 0) | (v["diesel_l"] > 0))
        )
        fields = self.choose_field(rows, {"gasoline_l": 0.7, "diesel_l": 0.3})
        for field in np.unique(fields):
            r = rows[fields == field]
            density = density_kg_per_l(None, _RETURNS.column(str(field)).item)
            self.set_field("unit_slip_kg_for_l", r, str(field), np.round(v[field][r] * density, 2))

        rows = self.pick("typo_x10", scope)
        fields = self.choose_field(
            rows, {"electricity_kwh": 0.5, "water_m3": 0.3, "natural_gas_m3": 0.2}
        )
        for field in np.unique(fields):
            r = rows[fields == field]
            self.set_field("typo_x10", r, str(field), v[field][r] * 10)

        rows = self.pick("yoy_jump", scope, yoy=True)
        fields = self.choose_field(
            rows, {"electricity_kwh": 0.6, "natural_gas_m3": 0.2, "water_m3": 0.2}
        )
        up = rng.random(rows.size) < 0.5
        ratio = np.where(up, rng.uniform(1.45, 2.4, rows.size), rng.uniform(0.35, 0.62, rows.size))
        for field in np.unique(fields):
            here = fields == field
            r = rows[here]
            jumped = _not_round(v[field][r - 1] * ratio[here], rng)
            self.set_field(
                "yoy_jump", r, str(field), jumped, detail="ratio to last year's reported value"
            )

        rows = self.pick("area_change", scope, yoy=True)
        up = rng.random(rows.size) < 0.5
        ratio = np.where(up, rng.uniform(1.15, 1.6, rows.size), rng.uniform(0.5, 0.85, rows.size))
        self.set_field(
            "area_change",
            rows,
            "building_area_m2",
            np.round(v["building_area_m2"][rows - 1] * ratio, 2),
        )

        rows = self.pick("occupants_change", scope & (v["occupants"] >= 10), yoy=True)
        up = rng.random(rows.size) < 0.5
        ratio = np.where(up, rng.uniform(1.2, 1.8, rows.size), rng.uniform(0.4, 0.82, rows.size))
        self.set_field(
            "occupants_change",
            rows,
            "occupants",
            np.round(v["occupants"][rows - 1] * ratio).astype(np.int64),
        )

        rows = self.pick("copied_figures", scope, yoy=True)
        self.copy_figures("copied_figures", rows, rows - 1, detail="figures of last year's return")

        rows = self.pick(
            "round_number", scope & ((v["electricity_kwh"] >= 10_000) | (v["water_m3"] >= 10_000))
        )
        fields = self.choose_field(rows, {"electricity_kwh": 0.8, "water_m3": 0.2}, above=9_999)
        for field in np.unique(fields):
            r = rows[fields == field]
            digits = np.where(rng.random(r.size) < 0.3, 1, 2)
            scale = 10.0 ** (np.floor(np.log10(v[field][r])) - digits + 1)
            self.set_field("round_number", r, str(field), np.round(v[field][r] / scale) * scale)

        self.identical_siblings()

        rows = self.pick("pv_exceeds_electricity", scope & (v["pv_generation_kwh"] > 0))
        if rows.size == 0:
            rows = self.pick("pv_exceeds_electricity", scope)
        pv = _not_round(v["electricity_kwh"][rows] * rng.uniform(1.2, 3.0, rows.size), rng)
        self.set_field("pv_exceeds_electricity", rows, "pv_generation_kwh", pv)

        rows = self.pick(
            "vehicles_no_fuel",
            scope & (v["vehicles"] > 0) & ((v["gasoline_l"] + v["diesel_l"]) > 0),
        )
        for field in ("gasoline_l", "diesel_l"):
            r = rows[v[field][rows] > 0]
            self.set_field("vehicles_no_fuel", r, field, np.zeros(r.size))

        metered = self.inst.heat[self.i] == _HEAT_BILLING.index("metered")
        rows = self.pick("metered_heat_zero", scope & metered & (v["heat_gj"] > 0))
        self.set_field("metered_heat_zero", rows, "heat_gj", np.zeros(rows.size))

        rows = self.pick("absurd_unit_price", scope & (v["electricity_cost_yuan"] > 0))
        wan = rng.random(rows.size) < 0.6
        cost = v["electricity_cost_yuan"][rows]
        self.set_field(
            "absurd_unit_price",
            rows,
            "electricity_cost_yuan",
            np.round(np.where(wan, cost / 10_000, cost * 100), 2),
        )

        rows = self.pick("negative_value", scope)
        fields = self.choose_field(
            rows,
            {"electricity_kwh": 0.4, "water_m3": 0.3, "natural_gas_m3": 0.15, "gasoline_l": 0.15},
        )
        for field in np.unique(fields):
            r = rows[fields == field]
            self.set_field("negative_value", r, str(field), -v[field][r])

        rows = self.pick("nonpositive_area", scope)
        zero = rng.random(rows.size) < 0.7
        self.set_field(
            "nonpositive_area",
            rows,
            "building_area_m2",
            np.where(zero, 0.0, -v["building_area_m2"][rows]),
        )

        rows = self.pick("nonpositive_occupants", scope)
        self.set_field(
            "nonpositive_occupants", rows, "occupants", np.zeros(rows.size, dtype=np.int64)
        )

        self.name_mismatch()

        # Totals as the form computes them from the reported items; then wrong totals.
        all_rows = np.arange(self.i.size)
        v["reported_total_tce"] = _total_tce(v, all_rows, self.years)
        rows = self.pick("total_mismatch", scope)
        kgce_as_tce = rng.random(rows.size) < 0.3
        ratio = np.where(
            kgce_as_tce,
            1000.0,
            np.where(
                rng.random(rows.size) < 0.5,
                rng.uniform(1.15, 1.6, rows.size),
                rng.uniform(0.5, 0.85, rows.size),
            ),
        )
        self.set_field(
            "total_mismatch",
            rows,
            "reported_total_tce",
            np.round(v["reported_total_tce"][rows] * ratio, 3),
        )

        # Returns that should not be there.
        status = self.inst.status[self.i]
        for kind, which in (
            ("return_from_dissolved", "dissolved"),
            ("return_from_merged", "merged"),
        ):
            rows = self.pick(kind, status == which)
            self.keep[rows] = True
            related = self.inst.related.gather(self.i[rows]) if which == "merged" else None
            self.record(kind, rows, related=related)
        rows = self.pick("unknown_institution", status == "phantom")
        self.keep[rows] = True
        self.record("unknown_institution", rows, reported_text=self.inst.names.gather(self.i[rows]))

        # Duplicates (appended after the year's rows, as a second submission).
        rows = self.pick("duplicate_exact", scope & self.keep)
        self.extra.append((rows, {c: v[c][rows].copy() for c in _VALUE_COLUMNS}))
        self.record("duplicate_exact", rows)
        rows = self.pick("duplicate_conflicting", scope & self.keep)
        second = {c: v[c][rows].copy() for c in _VALUE_COLUMNS}
        up = rng.random(rows.size) < 0.5
        ratio = np.where(up, rng.uniform(1.05, 1.25, rows.size), rng.uniform(0.8, 0.95, rows.size))
        second["electricity_kwh"] = _not_round(second["electricity_kwh"] * ratio, rng)
        second["electricity_cost_yuan"] = np.round(second["electricity_cost_yuan"] * ratio, 2)
        second["reported_total_tce"] = _total_tce(second, np.arange(rows.size), self.years)
        self.extra.append((rows, second))
        self.record(
            "duplicate_conflicting",
            rows,
            field="electricity_kwh",
            true=v["electricity_kwh"][rows],
            reported=second["electricity_kwh"],
            detail="the second return of the year",
        )

    def copy_figures(
        self,
        kind: str,
        rows: npt.NDArray[np.int64],
        source: npt.NDArray[np.int64],
        detail: str,
        related: pl.Series | None = None,
    ) -> None:
        """Give ``rows`` the quantities and costs of ``source`` rows; one truth row per field."""
        for field in (*_QUANTITIES, *_COSTS):
            differs = self.v[field][rows] != self.v[field][source]
            r = rows[differs]
            self.set_field(
                kind,
                r,
                field,
                self.v[field][source[differs]].copy(),
                detail=detail,
                related=None if related is None else related.filter(pl.Series(differs)),
            )

    def identical_siblings(self) -> None:
        k = self.count("identical_siblings")
        parent = self.inst.parent[self.i]
        ok = self.scope & ~self.used & (parent >= 0)
        if k == 0 or not ok.any():
            return
        candidates = pl.DataFrame(
            {
                "row": np.flatnonzero(ok),
                "parent": parent[ok],
                "yi": self.yi[ok],
                "u": self.rng.random(int(ok.sum())),
            }
        )
        ranked = (
            candidates.with_columns(
                rank=pl.col("u").rank("ordinal").over("parent", "yi"),
                size=pl.len().over("parent", "yi"),
            )
            .filter((pl.col("size") >= 3) & (pl.col("rank") <= 3))
            .sort("parent", "yi", "rank")
        )
        groups = ranked.select("parent", "yi").unique(maintain_order=True)
        if groups.height == 0:
            return
        chosen = groups.gather(
            np.sort(self.rng.choice(groups.height, size=min(k, groups.height), replace=False))
        )
        members = ranked.join(chosen, on=["parent", "yi"], how="semi", maintain_order="left")
        rows = members["row"].to_numpy()
        self.used[rows] = True
        source = members.with_columns(src=pl.col("row").first().over("parent", "yi"))
        copies = source.filter(pl.col("rank") > 1)
        src_rows = copies["src"].to_numpy()
        self.copy_figures(
            "identical_siblings",
            copies["row"].to_numpy(),
            src_rows,
            detail="same figures as a unit of the same parent (related_id)",
            related=self.inst.ids.gather(self.i[src_rows]),
        )

    def reported_names(self, rows: npt.NDArray[np.int64]) -> pl.Series:
        """Names as reported on the given grid rows (the directory name unless changed)."""
        names = self.inst.names.gather(self.i[rows])
        changed = np.flatnonzero(np.isin(rows, self.name_rows))
        if changed.size:
            texts = self.name_texts.gather(np.searchsorted(self.name_rows, rows[changed]))
            names = names.scatter(changed, texts)
        return names

    def name_mismatch(self) -> None:
        rows = self.pick("name_mismatch", self.scope)
        if rows.size == 0:
            return
        names = self.inst.names.gather(self.i[rows])
        variant = pl.Series(self.rng.integers(0, 3, rows.size))
        frame = pl.DataFrame({"name": names, "variant": variant})
        prefix_toggled = (
            pl.when(pl.col("name").str.starts_with(_REGION_NAME))
            .then(pl.col("name").str.strip_prefix(_REGION_NAME))
            .otherwise(pl.concat_str(pl.lit(_REGION_NAME), pl.col("name")))
        )
        reported = frame.select(
            pl.when(pl.col("variant") == 1)
            .then(pl.concat_str(pl.col("name"), pl.lit("（本部）")))
            .when((pl.col("variant") == 2) & pl.col("name").str.contains("委员会"))
            .then(pl.col("name").str.replace("委员会", "委", literal=True))
            .otherwise(prefix_toggled)
        ).to_series()
        self.name_rows, self.name_texts = rows, reported  # rows are sorted (see pick)
        self.record("name_mismatch", rows, field="name", true_text=names, reported_text=reported)


_VALUE_COLUMNS: Final = tuple(c for c in RETURNS_COLUMNS if c not in ("institution_id", "name"))


def _empty_truth() -> pl.DataFrame:
    return pl.DataFrame(schema=dict(TRUTH_SCHEMA))


def _truth_frame(columns: Mapping[str, object]) -> pl.DataFrame:
    """Build a truth table from some of its columns (the others null), in schema order."""
    frame = pl.DataFrame(dict(columns))
    return frame.select(
        pl.col(c).cast(t) if c in frame.columns else pl.lit(None, dtype=t).alias(c)
        for c, t in TRUTH_SCHEMA.items()
    )


def make_returns(
    directory: pl.DataFrame,
    years: Iterable[int],
    seed: int,
    defects: bool | Mapping[str, float] = True,
    *,
    districts: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Make the yearly returns of a directory, with injected defects and their truth.

    True values follow sector profiles (lognormal areas, occupants, energy per m² and water per
    person; hospitals high, schools low; students counted in occupants), heating by billing type
    (metered heat in GJ, own gas/coal/electric boilers where there is no district heating),
    vehicles and fuel, PV on some roofs, district trends (:func:`district_trends`) and a
    city-wide weather factor. Metered quantities are whole numbers that are never multiples of
    100. ``reported_total_tce`` is Σ items × the packaged standard-coal coefficients of the year
    (:func:`energy_audit.factors.kgce_per_canonical_unit`), computed from the reported items.

    Parameters
    ----------
    directory : polars.DataFrame
        A directory with the columns of :data:`DIRECTORY_COLUMNS` (e.g. from
        :func:`make_directory`). Institutions with status ``active`` are in scope every year.
    years : iterable of int
        Consecutive data years, e.g. ``range(2020, 2025)``.
    seed : int
        Random seed: the same directory, years and seed give the same frames.
    defects : bool or mapping of str to float, default True
        True for the default rates (:data:`DEFAULT_DEFECT_RATES`), False for none, or a mapping
        overriding the rate of some kinds (share of in-scope institution-years).
    districts : polars.DataFrame, optional
        District table the directory was made with (default Tianjin's).

    Returns
    -------
    returns : polars.DataFrame
        The columns of :data:`RETURNS_COLUMNS` in canonical units, sorted by year, then
        directory order; duplicates and returns of unknown institutions follow each year.
    truth : polars.DataFrame
        One row per injected defect and field (columns :data:`TRUTH_SCHEMA`); ``field`` is
        null for defects of the whole return (missing, unknown, duplicate …).

    Raises
    ------
    ValueError
        If the directory lacks columns or has unknown codes, the years are not consecutive, or
        a defect kind is unknown.
    """
    year_array = _check_years(years)
    rates = _defect_rates(defects)
    table = _district_table(districts)
    rng = _rng(seed, _STREAM_RETURNS)
    defect_rng = _rng(seed, _STREAM_DEFECTS)
    n_active = int((directory["status"] == "active").sum())
    n_phantom_rows = (
        0
        if rates["unknown_institution"] <= 0
        else max(1, round(rates["unknown_institution"] * n_active * year_array.size))
    )
    n_phantoms = math.ceil(n_phantom_rows / year_array.size) * 2 if n_phantom_rows else 0
    inst = _institutions(directory, table, n_phantoms, defect_rng)
    trend = district_trends(table)["intensity_change_per_year"].to_numpy()
    values = _true_values(inst, year_array, trend, rng)

    injector = _Injector(values, inst, year_array, rates, defect_rng)
    injector.run()

    # The kept rows of the grid in grid order, then each set of duplicates (a later submission).
    keep = np.flatnonzero(injector.keep)
    grid_size = values["year"].size
    parts = [(keep, {c: values[c][keep] for c in _VALUE_COLUMNS}), *injector.extra]
    returns = pl.concat(
        [
            pl.DataFrame(
                {
                    "institution_id": inst.ids.gather(values["_inst"][rows]),
                    "name": injector.reported_names(rows),
                    **part,
                    "_order": k * grid_size + rows,
                }
            )
            for k, (rows, part) in enumerate(parts)
        ],
        how="vertical",
    )
    returns = (
        returns.with_columns(
            pl.col(list(_INT_COLUMNS)).cast(pl.Int64),
            pl.col(list(_FLOAT_COLUMNS)).cast(pl.Float64),
        )
        .sort("year", "_order")
        .select(RETURNS_COLUMNS)
    )
    truth = (pl.concat(injector.truth, how="vertical") if injector.truth else _empty_truth()).sort(
        "year", "institution_id", "defect", "field", nulls_last=True, maintain_order=True
    )
    return returns, truth


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------

_FORMATS: Final = ("xlsx", "csv", "parquet")
_FULLWIDTH_DIGITS: Final = str.maketrans("0123456789", "０１２３４５６７８９")
_MESSY_COLUMNS: Final = tuple(
    c for c in RETURNS_COLUMNS if c not in ("institution_id", "year", "name")
)


def _plain_number(value: float) -> str:
    """Shortest positional text of a number, as a spreadsheet shows it (``352417``, ``35.2417``)."""
    return np.format_float_positional(float(value), trim="-")


def _messy_text(variant: str, value: float, unit: str) -> str:
    """How a person might type ``value`` into a cell."""
    text = _plain_number(value)
    whole, dot, fraction = text.partition(".")
    if variant == "thousands_comma":
        return f"{int(whole):,}{dot}{fraction}"
    if variant == "fullwidth_comma":
        return f"{int(whole):,}".replace(",", "，") + dot + fraction
    if variant == "fullwidth_digits":
        return text.translate(_FULLWIDTH_DIGITS)
    if variant == "trailing_unit":
        return f"{text} {unit}" if unit else text
    if variant == "padded":
        return f"  {text} "
    if variant == "dash":
        return "—"
    # approximate: two significant digits after 约
    scale = 10.0 ** (math.floor(math.log10(abs(value))) - 1) if value else 1.0
    return "约" + _plain_number(round(value / scale) * scale)


def _messy_cells(
    returns: pl.DataFrame,
    units: Mapping[str, str],
    excluded: npt.NDArray[np.bool_],
    rate: float,
    rng: np.random.Generator,
    source_file: str,
    first_data_row: int,
) -> tuple[dict[str, tuple[npt.NDArray[np.int64], list[str]]], pl.DataFrame]:
    """Choose cells of a returns file to write as typed text; return the texts and their truth.

    ``units`` are the file's departures from the canonical units (万千瓦时: values ÷ 10,000).
    """
    columns = _MESSY_COLUMNS
    scale = _file_scales(units)
    if rate <= 0 or returns.height == 0:
        return {}, _empty_truth()
    matrix = np.column_stack(
        [returns[c].fill_null(0).to_numpy().astype(np.float64) > 0 for c in columns]
    )
    matrix &= ~excluded[:, None]
    cells = np.flatnonzero(matrix.ravel())
    if cells.size == 0:
        return {}, _empty_truth()
    n = min(cells.size, max(1, round(rate * returns.height * len(columns))))
    cells = np.sort(rng.choice(cells, size=n, replace=False))
    rows, cols = np.divmod(cells, len(columns))
    names = list(MESSY_CELL_VARIANTS)
    variants = [names[k % len(names)] for k in rng.permutation(n)]
    out: dict[str, tuple[list[int], list[str]]] = {}
    truth_rows: list[dict[str, object]] = []
    for row, col, variant in zip(rows.tolist(), cols.tolist(), variants, strict=True):
        column = columns[col]
        value = returns[column][row]
        in_file = value / scale.get(column, 1.0)
        if variant in ("thousands_comma", "fullwidth_comma") and in_file < 1000:
            variant = "padded"
        spec = _RETURNS.column(column)
        unit = units.get(column) or (contract.unit_label_zh(spec.unit) or "" if spec.unit else "")
        text = _messy_text(variant, in_file, unit)
        recoverable = MESSY_CELL_VARIANTS[variant]
        out.setdefault(column, ([], []))
        out[column][0].append(row)
        out[column][1].append(text)
        truth_rows.append(
            {
                "institution_id": returns["institution_id"][row],
                "year": returns["year"][row],
                "defect": "messy_cell",
                "field": column,
                "true_value": float(value),
                "reported_value": float(value) if recoverable else None,
                "reported_text": text,
                "source_file": source_file,
                "source_row": row + first_data_row,
                "recoverable": recoverable,
                "detail": variant,
            }
        )
    truth = _truth_frame(
        {c: pl.Series([r[c] for r in truth_rows], dtype=TRUTH_SCHEMA[c]) for c in truth_rows[0]}
    )
    return {c: (np.asarray(r, dtype=np.int64), t) for c, (r, t) in out.items()}, truth


def _write_xlsx(
    path: Path, title: str, headers: Sequence[str], columns: Sequence[list[object]]
) -> None:
    """Write one sheet: a merged title row, a header row, then the data (fixed timestamps)."""
    workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    workbook.set_properties(
        {"title": title, "author": "energy_audit.synthetic", "created": _FIXED_CREATED}
    )
    sheet = workbook.add_worksheet("Sheet1")
    title_format = workbook.add_format({"bold": True, "font_size": 14, "align": "center"})
    header_format = workbook.add_format({"bold": True, "text_wrap": True, "border": 1})
    sheet.set_column(0, len(headers) - 1, 14)
    sheet.merge_range(0, 0, 0, len(headers) - 1, title, title_format)
    sheet.write_row(1, 0, list(headers), header_format)
    for r, row in enumerate(zip(*columns, strict=True)):
        sheet.write_row(r + 2, 0, row)
    workbook.close()


def _as_text(series: pl.Series) -> pl.Series:
    """Numbers as a spreadsheet saves them to CSV: ``352417``, ``35.2417``; null stays null."""
    text = series.cast(pl.String)
    if series.dtype.is_float():
        text = text.str.replace(r"\.0$", "")
    return text


def _messy_credit_code(code: str, variant: int) -> str:
    if variant == 0:
        return " ".join(code[i : i + 4] for i in range(0, len(code), 4))
    if variant == 1:
        return f"{code[:8]}-{code[8:17]}-{code[17:]}"
    if variant == 2:
        return code.lower()
    return code.translate(_FULLWIDTH_DIGITS)


def write_returns_file(
    returns: pl.DataFrame,
    path: str | Path,
    *,
    seed: int | np.random.Generator,
    year: int | None = None,
    truth: pl.DataFrame | None = None,
    messy_rate: float = DEFAULT_DEFECT_RATES["messy_cell"],
    units: Mapping[str, str] | None = None,
    encoding: str | None = None,
) -> tuple[Path, pl.DataFrame]:
    """Write one year of returns as the office receives them; return the file and its messy cells.

    The format follows the suffix of ``path``, as :func:`write_city` writes each year:

    - ``.xlsx``: a merged title row ``<year>年度天津市公共机构能源资源消费统计表``, the Chinese
      headers with units (:data:`RETURNS_HEADERS_ZH`, required columns marked ``*``), numbers as
      numbers, messy cells as text; fixed timestamps, so the same input gives the same bytes.
    - ``.csv``: Chinese headers with full-width brackets (``电（千瓦时）``), numbers as text the
      way a spreadsheet saves them (``352417``, ``35.2417``), messy cells.
    - ``.parquet``: the canonical columns as they are (no units, no messy cells).

    A share ``messy_rate`` of the numeric cells of an xlsx or CSV file (at least one while the rate
    is positive) is typed as text (:data:`MESSY_CELL_VARIANTS`: ``1,234.5``, ``１２３４.５``,
    ``500 千瓦时``, ``—``, ``约1200`` …); each is one ``messy_cell`` row of the returned truth.

    Parameters
    ----------
    returns : polars.DataFrame
        Returns of one data year with the columns :data:`RETURNS_COLUMNS` (as made by
        :func:`make_returns`), in canonical units; not changed.
    path : str or Path
        File to write, ending in ``.xlsx``, ``.csv`` or ``.parquet`` (its folder must exist).
    seed : int or numpy.random.Generator
        Random seed of the messy cells; a generator is drawn from and advanced (:func:`write_city`
        passes one generator through all its files).
    year : int, optional
        Data year of the file (xlsx title row); default the only year in ``returns``.
    truth : polars.DataFrame, optional
        :func:`make_returns`' truth table: returns of an institution and year with a truth row get
        no messy cell, so that each defect stays one truth row.
    messy_rate : float, default ``DEFAULT_DEFECT_RATES["messy_cell"]``
        Share of the numeric cells typed as text [fraction, 0 to 1]; 0 writes none.
    units : mapping of str to str, optional
        Units the headers name instead of the usual ones, column → Chinese unit
        (``{"electricity_kwh": "万千瓦时"}``: values ÷ 10,000); merged over the usual units of
        the files (water in 吨, as :data:`RETURNS_HEADERS_ZH`). xlsx and CSV only.
    encoding : str, optional
        Encoding of a CSV file (``"utf-8-sig"``, UTF-8 with BOM, by default; ``"gb18030"`` as
        Chinese Excel saves it). CSV only.

    Returns
    -------
    path : Path
        The written file.
    messy_truth : polars.DataFrame
        :data:`TRUTH_SCHEMA` rows of defect ``messy_cell``, one per messy cell: ``field``,
        ``true_value`` (canonical units), ``reported_text``, ``recoverable``, ``source_file``
        (the file name) and ``source_row`` (the row as a person counts rows: the first data row is
        3 in xlsx, 2 in CSV). Empty for parquet.

    Raises
    ------
    ValueError
        If the suffix is not a known format, the columns are not :data:`RETURNS_COLUMNS`, the
        frame holds another year than ``year`` (or, without ``year``, not exactly one),
        ``messy_rate`` is outside [0, 1], the rows do not fit an xlsx sheet
        (:data:`XLSX_MAX_ROWS`), or ``units`` or ``encoding`` is given for a format without them.
    ContractError
        If a unit is not one a header of its column may name.
    """
    path = Path(path)
    fmt = path.suffix.lower().removeprefix(".")
    if fmt not in _FORMATS:
        raise ValueError(f"{path.name}: unknown format {path.suffix!r}; known: {list(_FORMATS)}")
    if set(returns.columns) != set(RETURNS_COLUMNS):
        missing = sorted(set(RETURNS_COLUMNS) - set(returns.columns))
        extra = sorted(set(returns.columns) - set(RETURNS_COLUMNS))
        raise ValueError(
            f"returns columns differ from RETURNS_COLUMNS: missing {missing}, extra {extra}"
        )
    years = sorted(returns["year"].drop_nulls().unique().to_list())
    if year is None:
        if len(years) != 1:
            raise ValueError(f"returns hold the years {years}; pass year= for a file of one year")
        year = int(years[0])
    elif set(years) - {year}:
        raise ValueError(f"returns hold the years {years}, the file is of {year}")
    if not 0.0 <= messy_rate <= 1.0:
        raise ValueError(f"messy_rate must be a fraction from 0 to 1, got {messy_rate}")
    if fmt != "csv" and encoding is not None:
        raise ValueError(f"{path.name}: encoding applies to CSV files only")
    if fmt == "xlsx" and returns.height + 2 > XLSX_MAX_ROWS:
        raise ValueError(f"{returns.height:,} rows do not fit one xlsx sheet ({XLSX_MAX_ROWS:,})")
    frame = returns.select(RETURNS_COLUMNS)
    if fmt == "parquet":
        if units:
            raise ValueError(f"{path.name}: parquet files hold canonical units; units do not apply")
        frame.write_parquet(path)
        return path, _empty_truth()

    file_units = {**_RETURNS_UNITS, **(units or {})}
    scale = _file_scales(file_units)
    rng = seed if isinstance(seed, np.random.Generator) else _rng(seed, _STREAM_FILES)
    if truth is None:
        excluded = np.zeros(frame.height, dtype=np.bool_)
    else:
        has_truth = truth.select("institution_id", "year").unique().with_columns(_flag=pl.lit(True))
        excluded = (
            frame.select("institution_id", "year")
            .join(has_truth, on=["institution_id", "year"], how="left", maintain_order="left")[
                "_flag"
            ]
            .fill_null(False)
            .to_numpy()
        )
    first_row = _XLSX_FIRST_ROW if fmt == "xlsx" else _CSV_FIRST_ROW
    texts, messy = _messy_cells(frame, file_units, excluded, messy_rate, rng, path.name, first_row)
    headers = _returns_headers_zh(file_units)
    if fmt == "xlsx":
        columns = []
        for c in RETURNS_COLUMNS:
            values = (frame[c] / scale[c] if c in scale else frame[c]).to_list()
            for row, text in zip(*texts.get(c, ((), ())), strict=True):
                values[int(row)] = text
            columns.append(values)
        _write_xlsx(
            path,
            f"{year}年度{_REGION_NAME}公共机构能源资源消费统计表",
            [h + ("*" if _RETURNS.column(c).required else "") for c, h in headers.items()],
            columns,
        )
    else:
        text_columns: dict[str, pl.Series] = {}
        for c, header in headers.items():
            text = _as_text(frame[c] / scale[c] if c in scale else frame[c])
            if c in texts:
                text = text.scatter(*texts[c])
            text_columns[_fullwidth_brackets(header)] = text
        csv = pl.DataFrame(text_columns).write_csv()
        path.write_bytes(csv.encode(encoding or "utf-8-sig"))
    return path, messy


def write_city(
    out_dir: str | Path,
    n_institutions: int,
    years: Iterable[int],
    seed: int,
    defects: bool | Mapping[str, float] = True,
    formats: Iterable[str] = _FORMATS,
    *,
    districts: pl.DataFrame | None = None,
    progress: Progress | None = None,
) -> dict[str, Path | dict[int, Path]]:
    """Write a synthetic city as the office receives it, with its truth table.

    Files (``Y`` = last year):

    - ``directory_YQ4.xlsx``: title row ``天津市公共机构名录库（Y年第4季度）``, the contract's
      Chinese headers and labels (the first of each, ``schemas/directory.toml``), district as its
      name under 所在区, 是/否; a few credit codes typed with spaces, hyphens, lower case or
      full-width digits.
    - ``directory_YQ4.parquet``: the canonical directory.
    - ``returns_<year>.xlsx``: title row, Chinese headers with units (:data:`RETURNS_HEADERS_ZH`,
      required columns marked ``*``), messy cells.
    - ``returns_<year>.csv``: UTF-8 with BOM and full-width brackets in headers, messy cells;
      the first year is GB18030 with electricity in 万千瓦时 (``电（万千瓦时）``, values ÷ 10,000).
    - ``returns_<year>.parquet``: the canonical returns of the year, no messy cells.
    - ``truth.parquet`` and ``truth.csv``: :func:`make_returns`' truth plus one ``messy_cell``
      row per messy cell (``source_file``, ``source_row`` as a person counts rows, the text, and
      whether the number can be recovered).
    - ``district_trends.csv``: :func:`district_trends`.

    xlsx files are only written when the rows fit a sheet (1,048,576 rows); parquet always.

    Parameters
    ----------
    out_dir : str or Path
        Output folder (created if needed).
    n_institutions : int
        Institutions in the directory [institutions].
    years : iterable of int
        Consecutive data years.
    seed : int
        Random seed: the same arguments give byte-identical files.
    defects : bool or mapping of str to float, default True
        As in :func:`make_returns`; the ``messy_cell`` rate applies to the files.
    formats : iterable of str, default ("xlsx", "csv", "parquet")
        Which of xlsx and csv to write besides parquet.
    districts : polars.DataFrame, optional
        District table (default Tianjin's).
    progress : callable, optional
        :data:`energy_audit.progress.Progress`, called with the stages ``synth_directory``
        (0 of 1, then 1 of 1), ``synth_returns`` (the same) and ``synth_files`` (files written
        of the files to write). Default: quiet.

    Returns
    -------
    dict
        Written files: ``directory_xlsx``, ``directory_parquet``, ``truth_parquet``,
        ``truth_csv``, ``district_trends_csv`` map to a Path; ``returns_xlsx``, ``returns_csv``
        and ``returns_parquet`` map year → Path (e.g. ``paths["returns_xlsx"][2024]``). Keys of
        files not written (xlsx too large, format not asked for) are absent.

    Raises
    ------
    ValueError
        If a format is unknown (and as :func:`make_directory`, :func:`make_returns`).
    """
    wanted = set(formats) | {"parquet"}
    unknown = sorted(wanted - set(_FORMATS))
    if unknown:
        raise ValueError(f"unknown format(s) {unknown}; known: {list(_FORMATS)}")
    year_array = _check_years(years)
    messy_rate = _defect_rates(defects)["messy_cell"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = _rng(seed, _STREAM_FILES)
    report = progress or quiet

    report("synth_directory", 0, 1)
    directory = make_directory(n_institutions, seed, districts=districts)
    report("synth_directory", 1, 1)
    report("synth_returns", 0, 1)
    returns, truth = make_returns(
        directory, year_array.tolist(), seed, defects=defects, districts=districts
    )
    report("synth_returns", 1, 1)
    rows_of_year = dict(returns.group_by("year").len().iter_rows())
    n_files = (
        2  # directory parquet, district trends
        + ("xlsx" in wanted and directory.height + 2 <= XLSX_MAX_ROWS)
        + sum(
            1
            + ("csv" in wanted)
            + ("xlsx" in wanted and rows_of_year.get(y, 0) + 2 <= XLSX_MAX_ROWS)
            for y in year_array.tolist()
        )
        + 2  # truth parquet and csv
    )
    files_done = 0

    def file_written() -> None:
        nonlocal files_done
        files_done += 1
        report("synth_files", files_done, n_files)

    report("synth_files", 0, n_files)
    table = _district_table(districts)
    written: dict[str, Path | dict[int, Path]] = {}
    returns_paths: dict[str, dict[int, Path]] = {fmt: {} for fmt in _FORMATS}
    truth_parts = [truth]
    last = int(year_array[-1])

    # Directory.
    stem = f"directory_{last}Q4"
    written["directory_parquet"] = out / f"{stem}.parquet"
    directory.write_parquet(written["directory_parquet"])
    file_written()
    if "xlsx" in wanted and directory.height + 2 <= XLSX_MAX_ROWS:
        path = out / f"{stem}.xlsx"
        labels = {c.name: _labels_zh(c, table) for c in _DIRECTORY.columns}
        labelled = directory.with_columns(
            pl.col(c).replace_strict(mapping, return_dtype=pl.String)
            for c, mapping in labels.items()
            if mapping is not None
        )
        ids = labelled["institution_id"]
        if messy_rate > 0:
            k = min(ids.len(), max(1, round(messy_rate * ids.len())))
            rows = np.sort(rng.choice(ids.len(), size=k, replace=False))
            variants = rng.integers(0, 4, k)
            texts = [
                _messy_credit_code(ids[int(r)], int(v)) for r, v in zip(rows, variants, strict=True)
            ]
            labelled = labelled.with_columns(ids.clone().scatter(rows, texts))
            truth_parts.append(
                _truth_frame(
                    {
                        "institution_id": ids.gather(rows),
                        "defect": ["messy_cell"] * k,
                        "field": ["institution_id"] * k,
                        "true_text": ids.gather(rows),
                        "reported_text": texts,
                        "source_file": [path.name] * k,
                        "source_row": rows + _XLSX_FIRST_ROW,
                        "recoverable": [True] * k,
                        "detail": ["credit_code_typed"] * k,
                    }
                )
            )
        _write_xlsx(
            path,
            f"{_REGION_NAME}公共机构名录库（{last}年第4季度）",
            [
                _header_zh(c, alias=_DISTRICT_ALIAS if c.dtype == "district" else None)
                for c in _DIRECTORY.columns
            ],
            [labelled[c].to_list() for c in DIRECTORY_COLUMNS],
        )
        written["directory_xlsx"] = path
        file_written()

    # Returns, one set of files per year (one random stream through all files: byte-identical).
    for year in year_array.tolist():
        frame = returns.filter(pl.col("year") == year)
        path, _ = write_returns_file(frame, out / f"returns_{year}.parquet", seed=rng, year=year)
        returns_paths["parquet"][year] = path
        file_written()
        if "xlsx" in wanted and frame.height + 2 <= XLSX_MAX_ROWS:
            path, messy = write_returns_file(
                frame,
                out / f"returns_{year}.xlsx",
                seed=rng,
                year=year,
                truth=truth,
                messy_rate=messy_rate,
            )
            returns_paths["xlsx"][year] = path
            truth_parts.append(messy)
            file_written()
        if "csv" in wanted:
            first = year == int(year_array[0])
            path, messy = write_returns_file(
                frame,
                out / f"returns_{year}.csv",
                seed=rng,
                year=year,
                truth=truth,
                messy_rate=messy_rate,
                units=_FIRST_CSV_UNITS if first else None,
                encoding="gb18030" if first else None,
            )
            returns_paths["csv"][year] = path
            truth_parts.append(messy)
            file_written()

    full_truth = pl.concat(truth_parts, how="vertical").sort(
        "year", "institution_id", "defect", "field", "source_file", "source_row",
        nulls_last=True, maintain_order=True,
    )  # fmt: skip
    written.update({f"returns_{fmt}": paths for fmt, paths in returns_paths.items() if paths})
    written["truth_parquet"] = out / "truth.parquet"
    full_truth.write_parquet(written["truth_parquet"])
    file_written()
    written["truth_csv"] = out / "truth.csv"
    full_truth.write_csv(written["truth_csv"])
    file_written()
    written["district_trends_csv"] = out / "district_trends.csv"
    district_trends(table).write_csv(written["district_trends_csv"])
    file_written()
    return written


# --------------------------------------------------------------------------------------------
# Directory maintenance: next quarter's snapshot and directory defects
# --------------------------------------------------------------------------------------------

#: Kinds of change between two directory snapshots, one row per change (the vocabulary of the
#: quarterly diff).
DIRECTORY_CHANGE_KINDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "added": "an institution new in the directory (field, old_value and new_value empty)",
        "dissolved": "status active → dissolved (field status)",
        "merged": "status active → merged (field merged_into_id; new_value the active target)",
        "renamed": "the name changed (field name)",
        "changed": "another field changed, one row per field (district_code, parent_id, …)",
        "removed": "a row deleted from the file without being marked dissolved or merged",
    }
)

#: Columns of a change table (:func:`evolve_directory`); values as text, booleans
#: ``true``/``false``.
CHANGES_SCHEMA: Final[Mapping[str, pl.DataType]] = MappingProxyType(
    {
        "institution_id": pl.String(),
        "change": pl.String(),
        "field": pl.String(),
        "old_value": pl.String(),
        "new_value": pl.String(),
    }
)

#: What can happen to the directory in a quarter (keys of the ``rates`` of
#: :func:`evolve_directory`).
EVOLUTION_EVENTS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "added": "a new public service unit beside an existing one (branch school, campus, centre)",
        "dissolved": "an active institution is dissolved (撤销)",
        "merged": "an active institution merges into an active one of its sector, level, district",
        "removed": "an active institution nobody refers to disappears from the file, unmarked",
        "renamed": "an institution is renamed (研究所 → 研究院, 中学 → 实验中学, …)",
        "moved_district": "a municipal institution moves to another district (and address)",
        "reparented": "an institution moves under another parent of the same level and sector",
        "address": "an institution's address changes",
        "heat_billing": "the heat billing changes (e.g. by area → metered)",
        "key_energy_user": "the 重点用能单位 flag flips",
        "contact": "a new contact person (name and phone) or a new phone number",
    }
)

#: Default rate of each event per quarter, as a share of the active institutions the event can
#: happen to (``added``: of all active institutions). At least one when the rate is positive and
#: an institution qualifies.
DEFAULT_EVOLUTION_RATES: Final[Mapping[str, float]] = MappingProxyType(
    {
        "added": 0.008,
        "dissolved": 0.005,
        "merged": 0.005,
        "removed": 0.001,
        "renamed": 0.005,
        "moved_district": 0.005,
        "reparented": 0.005,
        "address": 0.01,
        "heat_billing": 0.005,
        "key_energy_user": 0.005,
        "contact": 0.01,
    }
)

#: Directory defects :func:`inject_directory_defects` injects, with a one-line description.
DIRECTORY_DEFECT_KINDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "invalid_check_char": "a credit code whose check character (position 18) is wrong",
        "duplicate_code": "two rows, two institutions, with the same credit code",
        "duplicate_institution": "one institution twice under two valid codes: same name, address",
        "unknown_district": "a district that is not one of the region's (塘沽区, abolished 2009)",
        "unknown_type": "an institution type outside the contract (企业单位)",
        "unknown_sector": "a sector outside the contract (商业企业)",
        "unknown_level": "an administrative level outside the contract (省级)",
        "parent_missing": "parent_id is a valid code that is not in the directory",
        "parent_dissolved": "an active institution under a dissolved parent",
        "parent_merged": "an active institution under a merged parent",
        "parent_cycle": "two institutions each the parent of the other (A → B → A)",
        "level_above_parent": "a municipal institution under a street/town-level one",
        "type_code_mismatch": "an agency (机关) whose code starts 12 (事业单位)",
        "enterprise_code": "a valid enterprise code (91…) in the directory",
        "merged_without_target": "status merged but no merged_into_id",
        "required_empty": "a required field left empty (name, or district_code)",
    }
)

#: Columns of the truth table of :func:`inject_directory_defects`.
DIRECTORY_DEFECT_SCHEMA: Final[Mapping[str, pl.DataType]] = MappingProxyType(
    {
        "institution_id": pl.String(),
        "defect": pl.String(),
        "field": pl.String(),
        "detail": pl.String(),
    }
)

_STREAM_EVOLUTION, _STREAM_DIRECTORY_DEFECTS = 5, 6
_STATUSES: Final = ("active", "dissolved", "merged")
_INSTITUTION_TYPES: Final = tuple(_TYPE_PREFIX)
#: Renames: (pattern at the end of the name, replacement, text the name must not contain); the
#: first rule that applies wins.
_RENAME_RULES: Final = (
    ("研究所$", "研究院", None),
    ("(小学|中学|幼儿园)$", "实验${1}", "实验"),
    ("中医医院$", "中医院", None),
    ("卫生服务站$", "卫生服务中心", None),
    ("信息中心$", "大数据中心", None),
    ("执法大队$", "执法支队", None),
    ("文化馆$", "文化艺术中心", None),
    ("监测站$", "监测中心", None),
    ("培训中心$", "教育培训中心", "教育培训"),
    ("技术推广中心$", "技术推广服务中心", None),
    ("委员会$", "局", None),
    ("协会$", "学会", None),
)
#: Name endings of the units :func:`evolve_directory` adds beside an existing one, by sector,
#: after a road name (南京路分校); other_service units get a new centre under the parent instead.
_BRANCH_SUFFIX: Final[Mapping[str, str]] = MappingProxyType(
    {
        "school": "分校",
        "university": "校区",
        "hospital": "院区",
        "venue": "分馆",
        "research": "试验站",
    }
)
#: Values no contract enumeration knows, written by ``unknown_*`` directory defects.
_UNKNOWN_LABELS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "district_code": "塘沽区",
        "institution_type": "企业单位",
        "sector": "商业企业",
        "admin_level": "省级",
    }
)
_UNKNOWN_COLUMNS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "unknown_district": "district_code",
        "unknown_type": "institution_type",
        "unknown_sector": "sector",
        "unknown_level": "admin_level",
    }
)
_MAX_PARENT_DEPTH: Final = 10_000  # longer chains of parents are taken for cycles


def _codes_of(
    values: pl.Series, vocabulary: Sequence[str], *, allow_null: bool = False
) -> npt.NDArray[np.int64]:
    """Position of each value in ``vocabulary`` (-1 for null when allowed).

    Raises
    ------
    ValueError
        If a value is not in the vocabulary (or null where not allowed), naming the column.
    """
    unknown = values.filter(~values.is_in(list(vocabulary)) & values.is_not_null()).unique()
    if unknown.len() or (values.null_count() and not allow_null):
        shown = sorted(unknown.to_list())[:5] + ([None] if values.null_count() else [])
        raise ValueError(
            f"column {values.name} has values outside {list(vocabulary)}: {shown} (evolve a "
            "canonical directory)"
        )
    lookup = {v: i for i, v in enumerate(vocabulary)}
    return values.replace_strict(lookup, default=-1, return_dtype=pl.Int64).to_numpy()


def _rows_of(ids: pl.Series, values: pl.Series) -> npt.NDArray[np.int64]:
    """Row of each value among ``ids`` (-1 where the value is null or not an id)."""
    index = pl.DataFrame({"_v": ids, "_r": np.arange(ids.len(), dtype=np.int64)})
    return (
        pl.DataFrame({"_v": values})
        .join(index, on="_v", how="left", maintain_order="left")["_r"]
        .fill_null(-1)
        .to_numpy()
    )


def _endless(parent: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Rows whose chain of parents never ends (in a cycle or leading into one).

    Pointer doubling: after k rounds ``jump`` is the 2^k-th ancestor (-1 past a root), so a row
    still pointing somewhere once 2^k reaches the row count has an endless chain.
    """
    jump = parent.copy()
    steps = 1
    while True:
        alive = jump >= 0
        if not alive.any() or steps >= parent.shape[0]:
            return alive
        jump = np.where(alive, jump[np.maximum(jump, 0)], -1)
        steps *= 2


def _count(rate: float, eligible: int) -> int:
    """How many of ``eligible`` a rate selects: at least one when the rate is positive."""
    if rate <= 0 or eligible == 0:
        return 0
    return min(eligible, max(1, round(rate * eligible)))


def _pick_rows(
    eligible: npt.NDArray[np.bool_], rate: float, rng: np.random.Generator
) -> npt.NDArray[np.int64]:
    """Pick a random share ``rate`` of the eligible rows (sorted)."""
    rows = np.flatnonzero(eligible)
    k = _count(rate, rows.size)
    return np.sort(rng.choice(rows, size=k, replace=False)) if k else rows[:0]


def _surviving_ancestor(
    start: npt.NDArray[np.int64], parent: npt.NDArray[np.int64], leaving: npt.NDArray[np.bool_]
) -> npt.NDArray[np.int64]:
    """First row up the chain from ``start`` (inclusive) that is not leaving (-1: none)."""
    row = start.copy()
    for _ in range(_MAX_PARENT_DEPTH):
        up = (row >= 0) & leaving[np.maximum(row, 0)]
        if not up.any():
            return row
        row[up] = parent[row[up]]
    raise ValueError("the directory's chain of parents has a cycle")


def _renamed(names: pl.Series) -> pl.Series:
    """Each name renamed by the first rule of :data:`_RENAME_RULES` that applies (else null)."""
    name = pl.col("name")
    expr = pl.lit(None, dtype=pl.String)
    for pattern, replacement, unless in reversed(_RENAME_RULES):
        applies = name.str.contains(pattern)
        if unless is not None:
            applies = applies & ~name.str.contains(unless, literal=True)
        expr = pl.when(applies).then(name.str.replace(pattern, replacement)).otherwise(expr)
    return pl.DataFrame({"name": names}).select(expr.alias("name")).to_series()


def _is_in(values: pl.Series, other: pl.Series) -> pl.Series:
    """``values.is_in(other)`` that hashes the few ``values`` rather than the many ``other``."""
    return values.is_in(other.filter(other.is_in(values.implode())).implode())


def _distinct_names(names: pl.Series, taken: pl.Series) -> pl.Series:
    """Make new names distinct from ``taken`` and from each other: add （二）, （三）, …."""
    out = names
    for attempt in range(1, 1000):
        clash = (_is_in(out, taken) | ~out.is_first_distinct()).to_numpy()
        if not clash.any():
            return out
        suffix = _cycle_suffix(np.full(int(clash.sum()), attempt, dtype=np.int64))
        out = out.scatter(np.flatnonzero(clash), names.filter(clash) + suffix)
    raise ValueError("could not make distinct names")  # pragma: no cover


_BODY_CHARS: Final = np.array(list(CREDIT_CODE_ALPHABET))


def _new_codes(
    prefix: str, region: npt.NDArray[np.str_], taken: pl.Series, rng: np.random.Generator
) -> pl.Series:
    """Make valid credit codes whose organization code (characters 9-17) is not in ``taken``.

    Organization-code bodies are ``MA`` and six random characters of the credit-code alphabet
    (make_directory uses digits and ``MB``).
    """
    n = region.shape[0]
    out = pl.Series([None] * n, dtype=pl.String)
    taken_org = taken.drop_nulls().str.slice(8, 9)
    todo = np.arange(n)
    while todo.size:
        tail = _BODY_CHARS[rng.integers(0, _BODY_CHARS.size, (todo.size, 6))]
        bodies = np.char.add("MA", np.ascontiguousarray(tail).view("U6").ravel())
        codes = pl.Series(make_credit_codes(prefix, region[todo], bodies), dtype=pl.String)
        org = codes.str.slice(8, 9)
        ok = (~_is_in(org, taken_org) & org.is_first_distinct()).to_numpy()
        out = out.scatter(todo[ok], codes.filter(ok))
        taken_org = pl.concat([taken_org, org.filter(ok)])
        todo = todo[~ok]
    return out


def _change_rows(
    ids: pl.Series,
    change: str,
    field: str | None = None,
    old: pl.Series | None = None,
    new: pl.Series | None = None,
) -> pl.DataFrame:
    """Rows of a change table (:data:`CHANGES_SCHEMA`)."""
    n = ids.len()

    def text(values: pl.Series | None) -> pl.Series:
        if values is None:
            return pl.Series([None] * n, dtype=pl.String)
        return values.cast(pl.String)

    return pl.DataFrame(
        {
            "institution_id": ids,
            "change": [change] * n,
            "field": [field] * n,
            "old_value": text(old),
            "new_value": text(new),
        },
        schema=dict(CHANGES_SCHEMA),
    )


def _evolution_rates(rates: Mapping[str, float] | None) -> dict[str, float]:
    out = dict(DEFAULT_EVOLUTION_RATES)
    for event, rate in (rates or {}).items():
        if event not in EVOLUTION_EVENTS:
            raise ValueError(f"unknown event {event!r}; known: {list(EVOLUTION_EVENTS)}")
        if not 0 <= rate <= 1:
            raise ValueError(f"rate of {event!r} must be between 0 and 1, got {rate}")
        out[event] = float(rate)
    return out


def evolve_directory(
    directory: pl.DataFrame,
    seed: int,
    *,
    rates: Mapping[str, float] | None = None,
    districts: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Make the next quarter's snapshot of a directory, with the table of the changes made.

    What a quarter of directory maintenance brings (:data:`EVOLUTION_EVENTS`; at most one event
    per institution, except that children of a leaving institution also move):

    - institutions leave: dissolved; merged into an active institution of the same sector, level
      and district (that stays active); or, rarely, removed from the file without being marked
      (only institutions nobody refers to). Institutions other rows are merged into stay.
    - the active children of a leaving institution move to the merge target when it is at or
      above their level and no cycle results, else to the nearest remaining ancestor (or none):
      recorded as ``changed`` ``parent_id`` rows.
    - renames, moves to another parent of the parent's level and sector (in its district below
      the municipal level), municipal institutions moving district (district_code and address),
      new addresses, heat billing, 重点用能单位 flags and contacts.
    - new public service units beside an existing one (a branch school 分校, a hospital campus
      院区, a new centre under the same parent …), with the template's parent, district, level,
      sector and subsector, valid unique credit codes (prefix 12, organization codes not used in
      the directory) and unique names; appended at the end.

    In a directory without directory defects, parents stay acyclic and never below their
    children's level, and no active institution is left under a dissolved or merged one.

    Parameters
    ----------
    directory : polars.DataFrame
        A canonical directory (:data:`DIRECTORY_COLUMNS`, e.g. from :func:`make_directory`) with
        unique credit codes and known district, level, sector and status values. Not changed.
    seed : int
        Random seed: the same directory and seed give the same result.
    rates : mapping of str to float, optional
        Rates per quarter overriding :data:`DEFAULT_EVOLUTION_RATES` (keys of
        :data:`EVOLUTION_EVENTS`), each a share of the active institutions the event can happen
        to; ``added`` is a share of all active institutions. 0 switches an event off.
    districts : polars.DataFrame, optional
        District table (default Tianjin's).

    Returns
    -------
    snapshot : polars.DataFrame
        The next snapshot: the directory's rows in order (removed ones left out), updated, then
        the added institutions. Extra columns are kept (null for added rows).
    changes : polars.DataFrame
        :data:`CHANGES_SCHEMA`, one row per change (:data:`DIRECTORY_CHANGE_KINDS`): ``added``
        and ``removed`` with empty field and values; ``dissolved`` as status active → dissolved;
        ``merged`` as merged_into_id null → target; ``renamed`` as name; ``changed`` one row per
        field. Sorted by change, institution_id and field.

    Raises
    ------
    ValueError
        If a column is missing, a credit code is null or repeated, a value is outside the
        contract's (or the district table's) codes, the parents above a leaving institution
        form a cycle, or a rate is unknown or outside [0, 1].

    Examples
    --------
    >>> directory = make_directory(2000, seed=1)
    >>> snapshot, changes = evolve_directory(directory, seed=1)
    >>> sorted(changes["change"].unique())
    ['added', 'changed', 'dissolved', 'merged', 'removed', 'renamed']
    """
    _check_directory_columns(directory)
    rate = _evolution_rates(rates)
    table = _district_table(districts)
    codes = table["district_code"].to_list()
    rng = _rng(seed, _STREAM_EVOLUTION)
    n = directory.height
    ids = directory["institution_id"]
    if ids.null_count() or ids.n_unique() != n:
        raise ValueError("institution_id must be unique and never null to evolve a directory")
    status = _codes_of(directory["status"], _STATUSES)
    level = _codes_of(directory["admin_level"], _LEVELS)
    sector = _codes_of(directory["sector"], _SECTORS)
    district = _codes_of(directory["district_code"], codes)
    heat = _codes_of(directory["heat_billing"], _HEAT_BILLING, allow_null=True)
    service_unit = (directory["institution_type"] == "public_service_unit").to_numpy()
    parent = _rows_of(ids, directory["parent_id"])
    is_target = ids.is_in(directory["merged_into_id"].drop_nulls().implode()).to_numpy()
    has_child = np.zeros(n, dtype=bool)
    has_child[parent[parent >= 0]] = True
    active = status == _STATUSES.index("active")

    # 1. Leaving: removed (nobody refers to them), dissolved, merged (into a staying target).
    free = active & ~is_target
    removed = _pick_rows(free & ~has_child, rate["removed"], rng)
    free[removed] = False
    dissolved = _pick_rows(free, rate["dissolved"], rng)
    free[dissolved] = False
    merging = _pick_rows(free, rate["merged"], rng)
    leaving = np.zeros(n, dtype=bool)
    leaving[np.concatenate([removed, dissolved, merging])] = True
    group = (sector * len(_LEVELS) + level) * len(codes) + district
    pool = np.flatnonzero(active & ~leaving)
    target = _pick_in_groups(group[merging], pool, group[pool], rng)
    found = (target >= 0) & (group[np.maximum(target, 0)] == group[merging])
    leaving[merging[~found]] = False  # no other institution of its kind: no merge
    merging, target = merging[found], target[found]
    stay = active & ~leaving

    # 2. Active children of leaving institutions: to the merge target, else up the chain.
    new_parent = parent.copy()
    orphans = np.flatnonzero(stay & (parent >= 0) & leaving[np.maximum(parent, 0)])
    up = _surviving_ancestor(parent[orphans], parent, leaving)
    merged_into = np.full(n, -1, dtype=np.int64)
    merged_into[merging] = target
    via = merged_into[parent[orphans]]
    use_via = (via >= 0) & (level[np.maximum(via, 0)] <= level[orphans]) & (via != orphans)
    while True:
        new_parent[orphans] = np.where(use_via, via, up)
        cyclic = use_via & _endless(new_parent)[orphans]
        if not cyclic.any():
            break
        use_via &= ~cyclic

    # 3. Moves to another parent of the same level and sector (same district below municipal).
    own = stay.copy()  # institutions that may still have an event of their own
    own[orphans] = False
    reparent = _pick_rows(own & (new_parent >= 0), rate["reparented"], rng)
    own[reparent] = False
    supervises = np.zeros(n, dtype=bool)
    supervises[new_parent[stay & (new_parent >= 0)]] = True
    parent_kind = (level * len(_SECTORS) + sector) * (len(codes) + 1) + np.where(
        level == _LEVELS.index("municipal"), len(codes), district
    )
    supervisors = np.flatnonzero(stay & supervises)
    before = new_parent[reparent]
    choice = _pick_in_groups(parent_kind[before], supervisors, parent_kind[supervisors], rng)
    moves = (choice >= 0) & (parent_kind[np.maximum(choice, 0)] == parent_kind[before])
    moves &= (choice != before) & (choice != reparent)
    while True:
        new_parent[reparent] = np.where(moves, choice, before)
        cyclic = moves & _endless(new_parent)[reparent]
        if not cyclic.any():
            break
        moves &= ~cyclic
    own[reparent[~moves]] = True
    moved_parent = np.flatnonzero(new_parent != parent)

    # 4. Changes of other fields, one event per institution.
    names = directory["name"]
    n_rename = _count(rate["renamed"], int(own.sum()))
    rename = np.zeros(0, dtype=np.int64)
    new_names = pl.Series([], dtype=pl.String)
    if n_rename:
        candidates = np.flatnonzero(own)
        candidates = rng.choice(
            candidates, size=min(candidates.size, 4 * n_rename + 16), replace=False
        )
        proposed = _renamed(names.gather(candidates))
        usable = proposed.is_not_null() & ~_is_in(proposed, names) & proposed.is_first_distinct()
        keep = np.flatnonzero(usable.fill_null(False).to_numpy())[:n_rename]
        order = np.argsort(candidates[keep])
        rename, new_names = candidates[keep][order], proposed.gather(keep[order])
        own[rename] = False

    new_district = district.copy()
    targets = is_target.copy()
    targets[target] = True  # merge targets stay in the district of what merged into them
    movable = own & ~targets & (level == _LEVELS.index("municipal"))
    relocate = _pick_rows(movable, rate["moved_district"], rng)
    own[relocate] = False
    new_district[relocate] = (
        district[relocate] + rng.integers(1, len(codes), relocate.size)
    ) % len(codes)
    district_names = table["name_zh"]
    relocate_address = _addresses(district_names.gather(new_district[relocate]), rng)

    readdress = _pick_rows(own, rate["address"], rng)
    own[readdress] = False
    new_address = _addresses(district_names.gather(district[readdress]), rng)

    reheat = _pick_rows(own, rate["heat_billing"], rng)
    own[reheat] = False
    heat_now = heat[reheat]
    shift = rng.integers(1, len(_HEAT_BILLING), reheat.size)
    new_heat = np.where(heat_now >= 0, (heat_now + shift) % len(_HEAT_BILLING), shift)

    reflag = _pick_rows(own, rate["key_energy_user"], rng)
    own[reflag] = False

    recontact = _pick_rows(own, rate["contact"], rng)
    own[recontact] = False
    new_person = rng.random(recontact.size) < 0.6
    contact_names, contact_phones = _contacts(recontact.size, rng)

    # 5. New units beside an existing public service unit, under the same parent.
    n_added = _count(rate["added"], int(active.sum()))
    templates = np.flatnonzero(stay & service_unit & (new_parent >= 0))
    added = np.zeros(0, dtype=np.int64)
    if n_added and templates.size:
        drawn = templates[rng.integers(0, templates.size, 2 * n_added + 16)]
        plain = ~names.gather(drawn).str.contains("|".join(_BRANCH_SUFFIX.values())).to_numpy()
        added = drawn[plain][:n_added]
    k = added.size
    added_sector = pl.Series(np.array(_SECTORS)[sector[added]], dtype=pl.String)
    added_parent = new_parent[added]
    stems = _vocab(_ROAD_STEMS, rng.integers(0, len(_ROAD_STEMS), k)) + _vocab(
        _ROAD_SUFFIXES, rng.integers(0, len(_ROAD_SUFFIXES), k)
    )
    units = _vocab(_NEW_UNITS, rng.integers(0, len(_NEW_UNITS), k))
    added_names = (
        pl.DataFrame(
            {
                "template": names.gather(added),
                "parent": names.gather(added_parent),
                "sector": added_sector,
                "stem": stems,
                "unit": units,
            }
        )
        .select(
            pl.when(pl.col("sector").is_in(list(_BRANCH_SUFFIX)))
            .then(
                pl.concat_str(
                    "template",
                    "stem",
                    pl.col("sector").replace_strict(dict(_BRANCH_SUFFIX), default=""),
                )
            )
            .otherwise(pl.concat_str("parent", "unit"))
        )
        .to_series()
    )
    final_names = names.clone().scatter(rename, new_names) if rename.size else names
    added_names = _distinct_names(added_names, final_names)
    added_level = np.array(_LEVELS)[level[added]]
    added_district = new_district[added]
    district_codes = np.array(codes)
    region = np.where(
        added_level == "municipal", _MUNICIPAL_REGION_CODE, district_codes[added_district]
    ).astype("U6")
    added_ids = _new_codes("12", region, ids, rng)
    central = np.array([c in _CENTRAL_DISTRICTS for c in codes], dtype=bool)
    added_heat = _heat_billing(central[added_district], rng)
    added_key = _key_energy_users(added_sector.to_numpy().astype(str), added_level, rng)
    added_address = _addresses(district_names.gather(added_district), rng)
    added_contact, added_phone = _contacts(k, rng)

    # The snapshot.
    def set_values(column: str, rows: npt.NDArray[np.int64], values: object) -> pl.Series:
        series = directory[column].clone()
        return series.scatter(rows, values) if len(rows) else series

    status_rows = np.concatenate([dissolved, merging])
    status_values = ["dissolved"] * dissolved.size + ["merged"] * merging.size
    person_rows = recontact[new_person]
    parent_ids = _gather_or_null(ids, new_parent[moved_parent])
    updated = directory.with_columns(
        set_values("status", status_rows, status_values),
        set_values("merged_into_id", merging, ids.gather(target)),
        set_values("parent_id", moved_parent, parent_ids),
        set_values("name", rename, new_names),
        set_values("district_code", relocate, pl.Series(district_codes[new_district[relocate]])),
        set_values(
            "address",
            np.concatenate([relocate, readdress]),
            pl.concat([relocate_address, new_address]),
        ),
        set_values("heat_billing", reheat, pl.Series(np.array(_HEAT_BILLING)[new_heat])),
        set_values(
            "key_energy_user",
            reflag,
            ~directory["key_energy_user"].gather(reflag).fill_null(False),
        ),
        set_values("contact_name", person_rows, contact_names.filter(new_person)),
        set_values("contact_phone", recontact, contact_phones),
    )
    added_frame = pl.DataFrame(
        {
            "institution_id": added_ids,
            "name": added_names,
            "district_code": pl.Series(district_codes[added_district], dtype=pl.String),
            "institution_type": pl.Series(["public_service_unit"] * k, dtype=pl.String),
            "sector": added_sector,
            "subsector": directory["subsector"].gather(added),
            "admin_level": pl.Series(added_level, dtype=pl.String),
            "parent_id": ids.gather(added_parent),
            "address": added_address,
            "key_energy_user": pl.Series(added_key, dtype=pl.Boolean),
            "heat_billing": pl.Series(added_heat, dtype=pl.String),
            "status": pl.Series(["active"] * k, dtype=pl.String),
            "merged_into_id": pl.Series([None] * k, dtype=pl.String),
            "contact_name": added_contact,
            "contact_phone": added_phone,
        }
    ).cast({c: directory.schema[c] for c in DIRECTORY_COLUMNS})
    keep_rows = np.ones(n, dtype=bool)
    keep_rows[removed] = False
    snapshot = pl.concat(
        [updated.filter(pl.Series(keep_rows)), added_frame], how="diagonal"
    ).select(directory.columns)

    # The change table.
    def field_rows(
        change: str, field: str, rows: npt.NDArray[np.int64], new: pl.Series
    ) -> pl.DataFrame:
        old_values = directory[field].gather(rows)
        differs = (old_values.cast(pl.String).ne_missing(new.cast(pl.String))).to_numpy()
        return _change_rows(
            ids.gather(rows[differs]),
            change,
            field,
            old_values.filter(differs),
            new.filter(differs),
        )

    parts = [
        _change_rows(added_ids, "added"),
        _change_rows(ids.gather(removed), "removed"),
        _change_rows(
            ids.gather(dissolved),
            "dissolved",
            "status",
            directory["status"].gather(dissolved),
            pl.Series(["dissolved"] * dissolved.size),
        ),
        _change_rows(
            ids.gather(merging),
            "merged",
            "merged_into_id",
            directory["merged_into_id"].gather(merging),
            ids.gather(target),
        ),
        field_rows("renamed", "name", rename, new_names),
        field_rows("changed", "parent_id", moved_parent, parent_ids),
        field_rows("changed", "district_code", relocate, updated["district_code"].gather(relocate)),
    ]
    for field, rows in (
        ("address", np.concatenate([relocate, readdress])),
        ("heat_billing", reheat),
        ("key_energy_user", reflag),
        ("contact_name", person_rows),
        ("contact_phone", recontact),
    ):
        rows = np.sort(rows)
        parts.append(field_rows("changed", field, rows, updated[field].gather(rows)))
    changes = pl.concat(parts, how="vertical").sort(
        "change", "institution_id", "field", nulls_last=True, maintain_order=True
    )
    return snapshot, changes


def inject_directory_defects(
    directory: pl.DataFrame, seed: int, *, kinds: Iterable[str] | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Inject directory defects (:data:`DIRECTORY_DEFECT_KINDS`) into a copy of a directory.

    One defect of each kind, each on its own active institution that no other row refers to
    (as parent or merge target), so that defects do not mask each other: ``parent_cycle`` makes
    two institutions of one level each other's parent, ``required_empty`` empties one name and
    one district_code, ``duplicate_institution`` appends a copy of a row under a new valid code
    (same prefix and region code), ``duplicate_code`` gives a second institution of the same type
    the first one's code. New codes are valid unless the defect says otherwise; unknown labels are
    written as text (``塘沽区``, ``企业单位``, ``商业企业``, ``省级``) and emptied fields are null,
    so the frame keeps the canonical dtypes.

    Parameters
    ----------
    directory : polars.DataFrame
        A canonical directory without defects (e.g. from :func:`make_directory` or
        :func:`evolve_directory`). Not changed.
    seed : int
        Random seed: the same directory and seed give the same result.
    kinds : iterable of str, optional
        Defect kinds to inject (default all of :data:`DIRECTORY_DEFECT_KINDS`).

    Returns
    -------
    directory : polars.DataFrame
        The directory with the defects: the same rows in the same order, edited, plus the
        ``duplicate_institution`` rows at the end.
    truth : polars.DataFrame
        :data:`DIRECTORY_DEFECT_SCHEMA`, one row per defective row: ``institution_id`` as it is
        in the returned frame (for ``parent_*`` and ``level_above_parent`` the child; for
        ``duplicate_code`` the shared code; for ``duplicate_institution`` the new code),
        ``defect``, the ``field`` concerned and a ``detail`` sentence naming the values. Sorted
        by defect and institution_id.

    Raises
    ------
    ValueError
        If a kind is unknown, a column is missing, or the directory has too few institutions
        that nobody refers to (about 20 are needed).

    Examples
    --------
    >>> directory, truth = inject_directory_defects(make_directory(500, seed=1), seed=1)
    >>> truth["defect"].n_unique() == len(DIRECTORY_DEFECT_KINDS)
    True
    >>> truth.filter(pl.col("defect") == "unknown_sector")["detail"].item()
    "sector '商业企业' is not a known value (was 'hospital')"
    """
    _check_directory_columns(directory)
    wanted = list(DIRECTORY_DEFECT_KINDS) if kinds is None else list(dict.fromkeys(kinds))
    unknown = [k for k in wanted if k not in DIRECTORY_DEFECT_KINDS]
    if unknown:
        raise ValueError(f"unknown defect kind(s) {unknown}; known: {list(DIRECTORY_DEFECT_KINDS)}")
    rng = _rng(seed, _STREAM_DIRECTORY_DEFECTS)
    n = directory.height
    ids = directory["institution_id"]
    level = directory["admin_level"].replace_strict(
        {v: i for i, v in enumerate(_LEVELS)}, default=-1, return_dtype=pl.Int64
    )
    level = level.fill_null(-1).to_numpy()
    itype = directory["institution_type"].fill_null("").to_numpy().astype(str)
    status = directory["status"].fill_null("").to_numpy().astype(str)
    references = pl.concat([directory["parent_id"], directory["merged_into_id"]]).drop_nulls()
    referenced = ids.is_in(references.implode()).to_numpy()
    pool = rng.permutation(np.flatnonzero((status == "active") & ~referenced))
    used = np.zeros(n, dtype=bool)

    def take(where: npt.NDArray[np.bool_] | None = None, *, required: bool = True) -> int:
        """Use the next unused row of the shuffled pool (of those ``where`` marks)."""
        ok = ~used[pool] if where is None else ~used[pool] & where[pool]
        rows = pool[ok]
        if rows.size == 0:
            if not required:
                return -1
            raise ValueError(
                "the directory has too few active institutions nobody refers to for its defects"
            )
        used[rows[0]] = True
        return int(rows[0])

    def one_of(where: npt.NDArray[np.bool_]) -> int:
        """Use a random unused row among those ``where`` marks (-1 if none)."""
        rows = np.flatnonzero(where & ~used)
        if rows.size == 0:
            return -1
        row = int(rows[rng.integers(0, rows.size)])
        used[row] = True
        return row

    edits: dict[str, dict[int, str | None]] = {}
    truth: list[tuple[str, str, str, str]] = []
    extra_rows: list[pl.DataFrame] = []

    def edit(row: int, column: str, value: str | None) -> None:
        edits.setdefault(column, {})[row] = value

    def new_code(prefix: str, region: str) -> str:
        return _new_codes(prefix, np.array([region]), ids, rng)[0]

    def value(column: str, row: int) -> object:
        return directory[column][row]

    name = directory["name"]

    def note(institution_id: str, field: str, detail: str) -> None:
        truth.append((institution_id, kind, field, detail))  # the kind being injected

    for kind in wanted:
        if kind == "invalid_check_char":
            r = take()
            right = ids[r][17]
            wrong = CREDIT_CODE_ALPHABET[(CREDIT_CODE_ALPHABET.index(right) + 1) % 31]
            edit(r, "institution_id", ids[r][:17] + wrong)
            note(
                ids[r][:17] + wrong,
                "institution_id",
                f"check character {wrong!r}, expected {right!r}",
            )
        elif kind == "duplicate_code":
            a = take()
            b = take(itype == itype[a])
            edit(b, "institution_id", ids[a])
            note(ids[a], "institution_id", f"{name[a]} and {name[b]} (code was {ids[b]})")
        elif kind == "duplicate_institution":
            a = take()
            code = new_code(ids[a][:2], ids[a][2:8])
            extra_rows.append(directory.slice(a, 1).with_columns(institution_id=pl.lit(code)))
            note(code, "institution_id", f"same name and address as {ids[a]} ({name[a]})")
        elif kind in _UNKNOWN_COLUMNS:
            column = _UNKNOWN_COLUMNS[kind]
            r = take()
            label = _UNKNOWN_LABELS[column]
            edit(r, column, label)
            note(
                ids[r],
                column,
                f"{column} {label!r} is not a known value (was {value(column, r)!r})",
            )
        elif kind == "parent_missing":
            r = take()
            code = new_code("11", ids[r][2:8])
            edit(r, "parent_id", code)
            note(ids[r], "parent_id", f"parent {code} is not in the directory")
        elif kind in ("parent_dissolved", "parent_merged"):
            inactive = kind.removeprefix("parent_")
            has_status = status == inactive
            top = level[has_status].min() if has_status.any() else -1
            p = one_of(has_status & (level == top))
            if p < 0:  # no institution of that status yet: make one
                p = take(level == _LEVELS.index("municipal"), required=False)
                p = take() if p < 0 else p
                edit(p, "status", inactive)
                if inactive == "merged":
                    edit(p, "merged_into_id", ids[one_of(status == "active")])
            child = take(level >= level[p])
            edit(child, "parent_id", ids[p])
            note(ids[child], "parent_id", f"active, under {ids[p]}, which is {inactive}")
        elif kind == "parent_cycle":
            a = take()
            b = take(level == level[a])
            edit(a, "parent_id", ids[b])
            edit(b, "parent_id", ids[a])
            note(ids[a], "parent_id", f"{ids[a]} → {ids[b]} → {ids[a]}")
            note(ids[b], "parent_id", f"{ids[b]} → {ids[a]} → {ids[b]}")
        elif kind == "level_above_parent":
            m = take(level == _LEVELS.index("municipal"), required=False)
            if m < 0:
                m = take()
                edit(m, "admin_level", "municipal")
            s = one_of((status == "active") & (level == _LEVELS.index("subdistrict")))
            if s < 0:
                raise ValueError("the directory has no active subdistrict institution")
            edit(m, "parent_id", ids[s])
            note(ids[m], "admin_level", f"municipal, under {ids[s]} (subdistrict)")
        elif kind == "type_code_mismatch":
            r = take(itype == "agency", required=False)
            if r >= 0:
                code = new_code("12", ids[r][2:8])
                edit(r, "institution_id", code)
            else:
                r = take(itype == "public_service_unit")
                code = ids[r]
                edit(r, "institution_type", "agency")
            note(code, "institution_type", f"agency (机关) with a code starting {code[:2]}")
        elif kind == "enterprise_code":
            r = take()
            code = new_code("91", ids[r][2:8])
            edit(r, "institution_id", code)
            note(code, "institution_id", f"enterprise code 91… for a {itype[r]}")
        elif kind == "merged_without_target":
            r = take()
            edit(r, "status", "merged")
            edit(r, "merged_into_id", None)
            note(ids[r], "merged_into_id", "status merged, merged_into_id empty")
        elif kind == "required_empty":
            for column in ("name", "district_code"):
                r = take()
                edit(r, column, None)
                note(ids[r], column, f"{column} is empty")

    out = directory.with_columns(
        directory[column]
        .clone()
        .scatter(list(values), pl.Series(list(values.values()), dtype=pl.String))
        for column, values in edits.items()
    )
    out = pl.concat([out, *extra_rows], how="vertical")
    truth_frame = pl.DataFrame(truth, schema=dict(DIRECTORY_DEFECT_SCHEMA), orient="row").sort(
        "defect", "institution_id", "field", maintain_order=True
    )
    return out, truth_frame
