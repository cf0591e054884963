"""The data contract: load the table specifications in ``schemas/`` and build what they imply.

``schemas/`` holds one TOML file per table (columns, dtypes, Chinese aliases, units, ranges,
enumerations) plus ``units.toml`` (the units a header may name). It is the single source of
truth: the readers take their header aliases and units from it, verification takes its pandera
models from it (:func:`pandera_schema`) and ``docs/data-contract.md`` is generated from it
(:func:`render_markdown`; ``energy-audit contract --out docs/data-contract.md`` rewrites it).

In an installed wheel the files live in ``energy_audit/schemas``; in a source checkout (also an
editable install) they are read from the top-level ``schemas/`` folder.
"""

from __future__ import annotations

import functools
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import polars as pl

from energy_audit.errors import ContractError

Dtype = Literal[
    "str",
    "int",
    "float",
    "bool",
    "enum",
    "district",
    "year",
    "credit_code",
    "datetime",
    "list_str",
    "struct",
]

_POLARS_DTYPES: dict[str, pl.DataType] = {
    "str": pl.String(),
    "int": pl.Int64(),
    "float": pl.Float64(),
    "bool": pl.Boolean(),
    "enum": pl.String(),
    "district": pl.String(),
    "year": pl.Int64(),
    "credit_code": pl.String(),
    "datetime": pl.Datetime("us", "UTC"),
    "list_str": pl.List(pl.String()),
}

_FIELD_DTYPES: tuple[str, ...] = ("str", "int", "float", "bool", "list_str")
"""Dtypes a field of a ``struct`` column may have."""

TABLE_NAMES: tuple[str, ...] = (
    "directory",
    "returns",
    "targets",
    "measures",
    "findings",
    "decisions",
    "evaluation",
    "indicators",
    "quarantine",
)
"""Every table of the contract, in the order of the documentation."""


def schema_dir() -> Path:
    """Return the folder holding the contract files.

    Returns
    -------
    pathlib.Path
        ``energy_audit/schemas`` inside an installed wheel, else the checkout's ``schemas/``.
    """
    packaged = resources.files("energy_audit") / "schemas"
    if packaged.is_dir():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parent.parent / "schemas"
    if checkout.is_dir():
        return checkout
    raise ContractError(
        f"缺少数据契约文件夹：energy_audit/schemas（安装包）和 {checkout}（源码目录）均不存在",
        "the data contract folder is missing: neither energy_audit/schemas (installed) nor "
        f"{checkout} (source checkout) exists",
    )


def normalize_label(text: str) -> str:
    """Normalise a header, label or unit for matching.

    Unicode NFKC (full-width letters, digits and brackets become half-width), brackets
    ``【】[]`` become ``()``, all white space is removed, a trailing ``*`` is dropped and latin
    letters are lower-cased.

    Parameters
    ----------
    text : str
        Text as written in a file.

    Returns
    -------
    str
        The matching key.
    """
    out = unicodedata.normalize("NFKC", text)
    out = out.replace("【", "(").replace("】", ")").replace("[", "(").replace("]", ")")
    out = "".join(out.split()).rstrip("*").lower()
    return out


@dataclass(frozen=True)
class EnumValue:
    """One allowed value of an enumerated column and the labels a file may use for it."""

    code: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class StructField:
    """One field of a ``struct`` column (e.g. the ``evidence`` of a finding)."""

    name: str
    dtype: str
    unit: str | None
    description: str

    @property
    def polars_dtype(self) -> pl.DataType:
        """Polars dtype of the field."""
        return _POLARS_DTYPES[self.dtype]


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a contract table, as written in ``schemas/<table>.toml``.

    Attributes
    ----------
    name : str
        Canonical column name (snake_case, unit at the end).
    dtype : str
        Contract dtype: ``str``, ``int``, ``float``, ``bool``, ``enum``, ``district`` (a district
        code of the region), ``year`` (a calendar year, ``2023`` or ``2023年``), ``credit_code``
        (a unified social credit code, normalised when read), ``datetime``, ``list_str`` (a
        list of text) or ``struct`` (named fields, :attr:`fields`; output tables only).
    required : bool
        The column must be present in an input file.
    nullable : bool
        An empty value is acceptable (``False``: a null is a validity failure).
    aliases : tuple of str
        Headers a file may use for the column besides its canonical name (Chinese first).
    unit : str or None
        Canonical unit, a label of ``units.toml`` (e.g. ``kWh``, ``m3``, ``l``).
    item : str or None
        Energy item of the coefficient tables (``electricity``, ``gasoline``, …).
    mass_as_volume : str or None
        ``"water"`` (1 t = 1 m³) or ``"density"`` (litres by the item's density) where the
        column accepts a mass unit in its header.
    min, max : float or None
        Allowed range; ``min_exclusive`` makes the lower bound strict.
    length : int or None
        Exact length of a text value.
    values : tuple of EnumValue
        Allowed codes of an ``enum`` column with their labels.
    absent_default : Any
        Value an absent optional column takes in the data (``None``: stays null).
    personal : bool
        Personal data: never printed in reports or summaries.
    fields : tuple of StructField
        The fields of a ``struct`` column, in order (empty otherwise).
    """

    name: str
    dtype: Dtype
    required: bool
    nullable: bool
    aliases: tuple[str, ...]
    unit: str | None
    item: str | None
    mass_as_volume: str | None
    min: float | None
    min_exclusive: bool
    max: float | None
    length: int | None
    values: tuple[EnumValue, ...]
    absent_default: Any
    personal: bool
    description_zh: str
    rule: str
    fields: tuple[StructField, ...] = ()

    @property
    def polars_dtype(self) -> pl.DataType:
        """Polars dtype of the column in canonical frames."""
        if self.dtype == "struct":
            return pl.Struct({f.name: f.polars_dtype for f in self.fields})
        return _POLARS_DTYPES[self.dtype]

    @property
    def codes(self) -> tuple[str, ...]:
        """Allowed codes of an ``enum`` column (empty otherwise)."""
        return tuple(v.code for v in self.values)

    @property
    def header_zh(self) -> str:
        """Chinese header used when the library writes this column (first alias)."""
        return self.aliases[0] if self.aliases else self.name


@dataclass(frozen=True)
class TableSpec:
    """One table of the contract: its columns and what a row means."""

    name: str
    title_zh: str
    title_en: str
    grain: str
    key: tuple[str, ...]
    input: bool
    columns: tuple[ColumnSpec, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """Canonical column names in contract order."""
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> ColumnSpec:
        """Return the specification of column ``name``.

        Raises
        ------
        KeyError
            If the table has no such column.
        """
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"table {self.name!r} has no column {name!r}")

    @property
    def polars_schema(self) -> pl.Schema:
        """Polars schema of the canonical frame (contract columns, contract order)."""
        return pl.Schema({c.name: c.polars_dtype for c in self.columns})

    def empty_frame(self) -> pl.DataFrame:
        """Return an empty frame with the table's canonical columns and dtypes."""
        return pl.DataFrame(schema=self.polars_schema)


@dataclass(frozen=True)
class Unit:
    """A unit label a header may name: its dimension and size in the dimension's base unit."""

    label: str
    dimension: str
    factor: float


@dataclass(frozen=True)
class UnitRegistry:
    """The units of ``schemas/units.toml``, keyed by normalised label."""

    units: Mapping[str, Unit]
    bases: Mapping[str, str]

    def get(self, label: str) -> Unit | None:
        """Return the unit written as ``label`` (any width or case), or ``None`` if unknown."""
        return self.units.get(normalize_label(label))

    def __contains__(self, label: str) -> bool:
        return normalize_label(label) in self.units


def _is_cjk(text: str) -> bool:
    return all(unicodedata.name(ch, "").startswith("CJK UNIFIED IDEOGRAPH") for ch in text)


def unit_label_zh(unit: str) -> str | None:
    """Return the Chinese label of a unit of ``units.toml`` (``kWh`` → ``千瓦时``, ``l`` → ``升``).

    Parameters
    ----------
    unit : str
        A unit label (any width or case).

    Returns
    -------
    str or None
        The first label of the unit's dimension that has the unit's size and is written in CJK
        characters; ``None`` if the registry does not know the unit or has no such label.
    """
    registry = units()
    known = registry.get(unit)
    if known is None:
        return None
    for label in registry.units.values():
        if (
            label.dimension == known.dimension
            and label.factor == known.factor
            and _is_cjk(label.label)
        ):
            return label.label
    return None


def names_zh(names: Iterable[str], table_name: str = "returns") -> str:
    """Name columns in a Chinese message: ``occupants（用能人数）、water_m3（用水量）``.

    Parameters
    ----------
    names : iterable of str
        Column names; a name that is no column of the table is written as it is.
    table_name : str, default "returns"
        The contract table whose Chinese headers (:attr:`ColumnSpec.header_zh`) are added.

    Returns
    -------
    str
        The names in order, each with its Chinese header in full-width brackets, joined by ``、``.
    """
    spec = table(table_name)
    return "、".join(f"{n}（{spec.column(n).header_zh}）" if n in spec.names else n for n in names)


def header_zh(column: ColumnSpec, *, alias: str | None = None, unit: str | None = None) -> str:
    """Return the Chinese header the library writes for a column: alias and unit in brackets.

    Parameters
    ----------
    column : ColumnSpec
        Contract column.
    alias : str, optional
        Alias to write instead of the first one (:attr:`ColumnSpec.header_zh`).
    unit : str, optional
        Unit label to write instead of the canonical unit's Chinese label.

    Returns
    -------
    str
        E.g. ``单位名称``, ``电(千瓦时)``, ``人均综合能耗(千克标准煤/人)`` (an alias that already
        carries brackets is written as it is).
    """
    text = alias or column.header_zh
    if column.unit is None or "(" in text:
        return text
    return f"{text}({unit or unit_label_zh(column.unit) or column.unit})"


_ALLOWED_KEYS = {
    "name",
    "dtype",
    "required",
    "nullable",
    "aliases",
    "unit",
    "item",
    "mass_as_volume",
    "min",
    "min_exclusive",
    "max",
    "length",
    "values",
    "absent_default",
    "personal",
    "description_zh",
    "rule",
    "fields",
}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ContractError(
            f"{path}：无法读取数据契约文件：{exc}", f"{path}: cannot read the contract file: {exc}"
        ) from exc


@functools.cache
def units() -> UnitRegistry:
    """Return the unit registry of ``schemas/units.toml``.

    Returns
    -------
    UnitRegistry
        Unit labels (normalised) with their dimension and size in the base unit.
    """
    path = schema_dir() / "units.toml"
    raw = _read_toml(path)
    table: dict[str, Unit] = {}
    bases: dict[str, str] = {}
    for dim, spec in raw.get("dimensions", {}).items():
        bases[dim] = spec["base"]
        for label, factor in spec["units"].items():
            key = normalize_label(label)
            if key in table:
                raise ContractError(
                    f"{path}：单位标签 {label!r} 出现了两次",
                    f"{path}: unit label {label!r} appears twice",
                )
            table[key] = Unit(label=label, dimension=dim, factor=float(factor))
    return UnitRegistry(units=table, bases=bases)


def _column(path: Path, raw: Mapping[str, Any]) -> ColumnSpec:
    unknown = set(raw) - _ALLOWED_KEYS
    name = raw.get("name", "?")
    if unknown:
        raise ContractError(
            f"{path}：列 {name!r} 含有未知的键 {sorted(unknown)}",
            f"{path}: column {name!r} has unknown keys {sorted(unknown)}",
        )
    dtype = raw.get("dtype")
    if dtype not in _POLARS_DTYPES and dtype != "struct":
        raise ContractError(
            f"{path}：列 {name!r} 的 dtype {dtype!r} 未知",
            f"{path}: column {name!r} has unknown dtype {dtype!r}",
        )
    fields = tuple(_struct_field(path, name, f) for f in raw.get("fields", []))
    if (dtype == "struct") != bool(fields):
        raise ContractError(
            f"{path}：列 {name!r} 只有 dtype 为 struct 时才列出字段，且必须列出",
            f"{path}: column {name!r} lists fields if and only if its dtype is struct",
        )
    values = tuple(
        EnumValue(code=v["code"], labels=tuple(v.get("labels", ()))) for v in raw.get("values", [])
    )
    if dtype == "enum" and not values:
        raise ContractError(
            f"{path}：枚举列 {name!r} 没有列出任何取值",
            f"{path}: enum column {name!r} lists no values",
        )
    required = bool(raw.get("required", False))
    return ColumnSpec(
        name=name,
        dtype=dtype,
        required=required,
        nullable=bool(raw.get("nullable", True)),
        aliases=tuple(raw.get("aliases", ())),
        unit=raw.get("unit"),
        item=raw.get("item"),
        mass_as_volume=raw.get("mass_as_volume"),
        min=raw.get("min"),
        min_exclusive=bool(raw.get("min_exclusive", False)),
        max=raw.get("max"),
        length=raw.get("length"),
        values=values,
        absent_default=raw.get("absent_default"),
        personal=bool(raw.get("personal", False)),
        description_zh=raw.get("description_zh", ""),
        rule=raw.get("rule", ""),
        fields=fields,
    )


def _struct_field(path: Path, column: str, raw: Mapping[str, Any]) -> StructField:
    unknown = set(raw) - {"name", "dtype", "unit", "description"}
    name = raw.get("name", "?")
    if unknown or raw.get("dtype") not in _FIELD_DTYPES:
        raise ContractError(
            f"{path}：列 {column!r} 的字段 {name!r} 含有未知的键 {sorted(unknown)} 或 dtype "
            f"不在 {list(_FIELD_DTYPES)} 中",
            f"{path}: field {name!r} of column {column!r} has unknown keys {sorted(unknown)} "
            f"or a dtype not in {list(_FIELD_DTYPES)}",
        )
    return StructField(
        name=name,
        dtype=raw["dtype"],
        unit=raw.get("unit"),
        description=raw.get("description", ""),
    )


@functools.cache
def table(name: str) -> TableSpec:
    """Return the specification of contract table ``name``.

    Parameters
    ----------
    name : str
        One of :data:`TABLE_NAMES`.

    Returns
    -------
    TableSpec
        Columns in contract order.

    Raises
    ------
    ContractError
        If the file is missing or inconsistent (unknown keys or dtypes, duplicate columns or
        aliases, a unit not in ``units.toml``).
    """
    if name not in TABLE_NAMES:
        raise ContractError(
            f"没有名为 {name!r} 的数据契约表；已有的表：{'、'.join(TABLE_NAMES)}",
            f"no contract table {name!r}; known tables: {', '.join(TABLE_NAMES)}",
        )
    path = schema_dir() / f"{name}.toml"
    raw = _read_toml(path)
    meta = raw.get("table", {})
    cols = tuple(_column(path, c) for c in raw.get("columns", []))
    seen: dict[str, str] = {}
    reg = units()
    for col in cols:
        for key in (col.name, *col.aliases):
            k = normalize_label(key)
            if k in seen and seen[k] != col.name:
                raise ContractError(
                    f"{path}：表头 {key!r} 同时指向列 {seen[k]!r} 和 {col.name!r}",
                    f"{path}: header {key!r} names both {seen[k]!r} and {col.name!r}",
                )
            seen[k] = col.name
        if meta.get("input") and col.unit is not None and col.unit not in reg:
            raise ContractError(
                f"{path}：列 {col.name!r} 的单位 {col.unit!r} 不在 units.toml 中",
                f"{path}: column {col.name!r} has unit {col.unit!r}, not in units.toml",
            )
    if len({c.name for c in cols}) != len(cols):
        raise ContractError(f"{path}：有列名出现了两次", f"{path}: a column name appears twice")
    return TableSpec(
        name=meta.get("name", name),
        title_zh=meta.get("title_zh", ""),
        title_en=meta.get("title_en", ""),
        grain=meta.get("grain", ""),
        key=tuple(meta.get("key", ())),
        input=bool(meta.get("input", False)),
        columns=cols,
    )


def pandera_schema(name: str, district_codes: tuple[str, ...] | None = None) -> Any:
    """Build the pandera (polars) schema of contract table ``name``.

    Parameters
    ----------
    name : str
        Contract table name.
    district_codes : tuple of str, optional
        Allowed district codes for ``district`` columns. Default: the packaged region's
        (Tianjin's 16 districts, GB/T 2260).

    Returns
    -------
    pandera.polars.DataFrameSchema
        Dtypes, nullability and range / enumeration / length checks of every column. Extra
        columns (provenance, indicators) are allowed.
    """
    import pandera.polars as pa

    from energy_audit.districts import load_districts

    spec = table(name)
    if district_codes is None:
        district_codes = tuple(load_districts()["district_code"].to_list())
    columns = {}
    for col in spec.columns:
        checks = []
        if col.min is not None:
            checks.append(pa.Check.gt(col.min) if col.min_exclusive else pa.Check.ge(col.min))
        if col.max is not None:
            checks.append(pa.Check.le(col.max))
        if col.length is not None:
            checks.append(pa.Check.str_length(col.length, col.length))
        if col.dtype == "enum":
            checks.append(pa.Check.isin(list(col.codes)))
        if col.dtype == "district":
            checks.append(pa.Check.isin(list(district_codes)))
        columns[col.name] = pa.Column(
            col.polars_dtype,
            checks=checks,
            nullable=col.nullable,
            required=True,
            description=col.rule or None,
            title=col.description_zh or None,
        )
    return pa.DataFrameSchema(columns, name=spec.name, strict=False, coerce=False)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown() -> str:
    """Render the whole contract as Markdown (the text of ``docs/data-contract.md``).

    Returns
    -------
    str
        One section per table and one for the units, generated from ``schemas/``.
    """
    lines = [
        "# Data contract",
        "",
        "<!-- Generated from schemas/ by `energy-audit contract --out docs/data-contract.md`;",
        "     do not edit by hand: tests/test_contract.py fails when the two drift apart. -->",
        "",
        "Canonical column names are English snake_case with the unit at the end. Input files may",
        "use the canonical names or any alias listed; headers are matched after trimming, NFKC",
        "normalisation (full-width → half-width), `【】[]` read as `()` and a trailing",
        "`*` ignored. A header may carry its unit in brackets (`电(万千瓦时)`): the reader",
        "converts the column to the canonical unit and records the conversion in its notes.",
        "",
    ]
    for i, name in enumerate(TABLE_NAMES, start=1):
        spec = table(name)
        lines += [
            f"## {i}. {spec.title_en} — {spec.title_zh} (`{spec.name}`)",
            "",
            f"Grain: {spec.grain}. Key: {', '.join(f'`{k}`' for k in spec.key)}.",
            "",
            "| column | 中文表头 | type | unit | required | nullable | rule |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in spec.columns:
            dtype = c.dtype
            if c.values:
                dtype += ": " + ", ".join(
                    f"`{v.code}` {'/'.join(v.labels)}".strip() for v in c.values
                )
            rng = []
            if c.min is not None:
                rng.append(f"{'>' if c.min_exclusive else '≥'} {c.min:g}")
            if c.max is not None:
                rng.append(f"≤ {c.max:g}")
            if c.length is not None:
                rng.append(f"length {c.length}")
            if c.absent_default is not None:
                rng.append(f"absent column → {c.absent_default}")
            rule = "; ".join([*rng, c.rule] if c.rule else rng)
            lines.append(
                "| "
                + " | ".join(
                    _md_escape(x)
                    for x in (
                        f"`{c.name}`",
                        " / ".join(c.aliases),
                        dtype,
                        c.unit or "",
                        "yes" if c.required else "",
                        "" if c.nullable else "no",
                        rule,
                    )
                )
                + " |"
            )
        lines.append("")
        for c in spec.columns:
            if c.fields:
                lines += [
                    f"Fields of `{c.name}`:",
                    "",
                    "| field | type | unit | meaning |",
                    "|---|---|---|---|",
                    *(
                        "| "
                        + " | ".join(
                            _md_escape(x)
                            for x in (f"`{f.name}`", f.dtype, f.unit or "", f.description)
                        )
                        + " |"
                        for f in c.fields
                    ),
                    "",
                ]
    reg = units()
    lines += [
        f"## {len(TABLE_NAMES) + 1}. Units a header may name",
        "",
        "| dimension | base | labels (size in base unit) |",
        "|---|---|---|",
    ]
    by_dim: dict[str, list[Unit]] = {}
    for u in reg.units.values():
        by_dim.setdefault(u.dimension, []).append(u)
    for dim, us in by_dim.items():
        labels = ", ".join(f"{u.label} ({u.factor:g})" for u in us)
        lines.append(f"| {dim} | {reg.bases[dim]} | {_md_escape(labels)} |")
    lines.append("")
    return "\n".join(lines)
