"""Header matching: which contract column a header names, and in which unit.

Headers are matched after :func:`energy_audit.contract.normalize_label` (trimmed, NFKC,
``【】[]`` as ``()``, a trailing ``*`` ignored). A header is the canonical name, an alias, or an
alias followed by its unit in brackets (``电(万千瓦时)``) or after a slash (``电/万千瓦时``).
A unit of the wrong dimension or one nobody knows is an :class:`UnusableInputError` naming the
file and the header: the reader never guesses a unit.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from energy_audit.contract import ColumnSpec, TableSpec, normalize_label, units
from energy_audit.errors import UnusableInputError

_UNIT_SUFFIX = re.compile(r"^(?P<base>.+?)(?:\((?P<paren>[^()]*)\)|/(?P<slash>[^/()]+))$")

# Dimensions of schemas/units.toml, in Chinese for messages.
_DIMENSION_ZH = {
    "electricity": "电量",
    "volume": "体积",
    "mass": "质量",
    "heat": "热量",
    "coal_equivalent": "标准煤",
    "area": "面积",
    "persons": "人数",
    "vehicles": "车辆数",
    "money": "金额",
    "percent": "百分比",
}

DensityLookup = Callable[[str], float]
"""Returns the density [kg/L] of a liquid fuel item (``gasoline``, ``diesel``)."""


@dataclass(frozen=True)
class HeaderMatch:
    """A header matched to a contract column.

    Attributes
    ----------
    position : int
        0-based position of the header in the file's header row.
    header : str
        The header as written.
    column : ColumnSpec
        The contract column it names.
    unit_label : str or None
        The unit written in the header, if any.
    factor : float
        Multiplier from the header's unit to the column's canonical unit (1.0 without a unit).
    """

    position: int
    header: str
    column: ColumnSpec
    unit_label: str | None
    factor: float


@functools.cache
def _alias_index(spec: TableSpec) -> dict[str, ColumnSpec]:
    index: dict[str, ColumnSpec] = {}
    for col in spec.columns:
        for key in (col.name, *col.aliases):
            index[normalize_label(key)] = col
    return index


def unit_factor(column: ColumnSpec, unit_label: str, density: DensityLookup) -> float | None:
    """Multiplier from ``unit_label`` to the canonical unit of ``column``.

    Parameters
    ----------
    column : ColumnSpec
        Contract column with a canonical ``unit``.
    unit_label : str
        A unit as written (any width or case).
    density : callable
        Density [kg/L] of the column's fuel item, used when a litre column is given in 吨 / 千克.

    Returns
    -------
    float or None
        The multiplier, or ``None`` when the label is not a unit of this column's dimension.
        Water: 1 t = 1 m³. Liquid fuels: litres = kg ÷ density (domain.md §2).
    """
    reg = units()
    unit = reg.get(unit_label)
    canonical = reg.get(column.unit) if column.unit else None
    if unit is None or canonical is None:
        return None
    if unit.dimension == canonical.dimension:
        return unit.factor / canonical.factor
    if unit.dimension == "mass" and canonical.dimension == "volume" and column.mass_as_volume:
        tonnes = unit.factor  # size of the unit in t
        if column.mass_as_volume == "water":
            return tonnes / canonical.factor  # 1 t of water = 1 m³
        if column.mass_as_volume == "density" and column.item:
            litres = tonnes * 1000.0 / density(column.item)
            return litres * reg.units["l"].factor / canonical.factor
    return None


def cell_unit_factors(column: ColumnSpec, density: DensityLookup) -> dict[str, float]:
    """Multiplier to the canonical unit for every unit label a cell of ``column`` may end with.

    Returns
    -------
    dict of str to float
        Keyed by normalised label (as :func:`energy_audit.io.cells.matching_key` writes it).
    """
    if column.unit is None:
        return {}
    out: dict[str, float] = {}
    for key in units().units:
        f = unit_factor(column, key, density)
        if f is not None:
            out[key] = f
    return out


def match_header(header: str, spec: TableSpec) -> tuple[ColumnSpec, str | None] | None:
    """Return the column a header names and the unit text it carries, or ``None``.

    The unit is not checked here; see :func:`resolve_headers`.
    """
    index = _alias_index(spec)
    key = normalize_label(header)
    if key in index:
        return index[key], None
    m = _UNIT_SUFFIX.match(key)
    if m and m.group("base") in index:
        return index[m.group("base")], m.group("paren") or m.group("slash") or None
    return None


def header_score(cells: Sequence[str | None], spec: TableSpec) -> int:
    """Count the distinct contract columns a candidate header row names."""
    found = set()
    for cell in cells:
        if cell is None:
            continue
        hit = match_header(str(cell), spec)
        if hit is not None:
            found.add(hit[0].name)
    return len(found)


def resolve_headers(
    headers: Sequence[str | None],
    spec: TableSpec,
    where: str,
    density: DensityLookup,
    where_zh: str | None = None,
) -> tuple[list[HeaderMatch], list[tuple[int, str]]]:
    """Match a header row to contract columns and units.

    Parameters
    ----------
    headers : sequence of str or None
        The header row as read.
    spec : TableSpec
        Contract table the file should hold.
    where : str
        File (and sheet) for messages: ``name.xlsx (sheet 表1)``.
    density : callable
        Density lookup for liquid fuels given by mass.
    where_zh : str, optional
        The same in Chinese (``name.xlsx（工作表 表1）``; default: ``where``).

    Returns
    -------
    matches : list of HeaderMatch
        One per header that names a contract column.
    ignored : list of (int, str)
        Position and text of non-empty headers that name no contract column.

    Raises
    ------
    UnusableInputError
        If a header's unit is unknown or of another dimension, or two headers name one column.
    """
    where_zh = where if where_zh is None else where_zh
    matches: list[HeaderMatch] = []
    ignored: list[tuple[int, str]] = []
    taken: dict[str, str] = {}
    for pos, header in enumerate(headers):
        if header is None or not str(header).strip():
            continue
        header = str(header)
        hit = match_header(header, spec)
        if hit is None:
            ignored.append((pos, header))
            continue
        col, unit_text = hit
        factor = 1.0
        if unit_text is not None and col.unit is not None:
            f = unit_factor(col, unit_text, density)
            if f is None:
                known = units().get(unit_text)
                why_zh, why = (
                    (
                        f"单位“{unit_text}”是{_DIMENSION_ZH.get(known.dimension, known.dimension)}"
                        "单位，不是本列的单位",
                        f"unit {unit_text!r} is {known.dimension}, not a unit of this column",
                    )
                    if known
                    else (f"不认识的单位“{unit_text}”", f"unknown unit {unit_text!r}")
                )
                raise UnusableInputError(
                    f"{where_zh}：表头“{header}”（{col.name}，标准单位 {col.unit}）：{why_zh}；"
                    "请修改表头（表头可用的单位见 docs/data-contract.md）",
                    f"{where}: column {header!r} ({col.name}, canonical unit {col.unit}): {why}; "
                    "fix the header (see docs/data-contract.md for the units a header may name)",
                )
            factor = f
        elif unit_text is not None:
            unit_text = None  # a bracket on a column without unit, e.g. 统一社会信用代码(18位)
        if col.name in taken:
            raise UnusableInputError(
                f"{where_zh}：表头“{taken[col.name]}”与“{header}”指同一列 {col.name}；"
                "请只保留其中一列",
                f"{where}: columns {taken[col.name]!r} and {header!r} both name {col.name}; "
                "keep one of them",
            )
        taken[col.name] = header
        matches.append(HeaderMatch(pos, header, col, unit_text, factor))
    return matches, ignored
