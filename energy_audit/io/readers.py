"""Readers: files people send (xlsx, csv, parquet) → canonical frames, quarantine and notes.

Readers read; they do not judge (data contract). They find the header row under any title rows,
match headers to contract columns (aliases, units in brackets), clean every cell
(:mod:`energy_audit.io.cells`), and record where each row came from. A cell that cannot be read
is null in the data and listed in the quarantine table; a row whose identity cannot be read
(no institution id; for returns also no year) goes whole to quarantine. Blank rows (every cell
empty) are not rows. So, always::

    non-blank rows below the header = rows in .data + whole rows in .quarantine

Row numbers (``source_row``) are 1-based as a person sees them: the Excel row number, the line
of a CSV file where the record starts, the record number (1 = first record) of a Parquet file.
"""

from __future__ import annotations

import functools
import hashlib
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from energy_audit import contract
from energy_audit.contract import ColumnSpec, TableSpec
from energy_audit.districts import district_lookup, load_districts
from energy_audit.errors import UnusableInputError
from energy_audit.glossary import term, terms
from energy_audit.io import cells, delimited, excel, parquet
from energy_audit.io.headers import (
    DensityLookup,
    HeaderMatch,
    cell_unit_factors,
    header_score,
    match_header,
    resolve_headers,
)
from energy_audit.io.limits import check_ods, check_parquet, check_workbook

NOTE_COLUMNS: dict[str, pl.DataType] = {
    "source_file": pl.String(),
    "source_sheet": pl.String(),
    "kind": pl.String(),
    "column": pl.String(),
    "header": pl.String(),
    "detail": pl.String(),
    "detail_en": pl.String(),
}
"""Schema of :attr:`ReadResult.notes`. ``kind`` is one of :data:`NOTE_KINDS`; ``detail`` says
what the reader did in Chinese, ``detail_en`` the same in English."""

PERSONAL_MASK = "[已隐去]"
"""What quarantine shows instead of the text of a personal column (联系人, 联系电话: contract
columns with ``personal = true``), in a cell entry and in the JSON of a whole row."""

NOTE_KINDS: tuple[str, ...] = (
    "header_row",
    "unit_conversion",
    "cell_unit_conversion",
    "absent_column",
    "ignored_column",
    "default_year",
    "normalized_id",
    "blank_rows",
    "skipped_sheet",
    "encoding",
    "delimiter",
    "file_type",
)

MAX_COLUMN_NOTES = 20
"""Ignored columns noted one by one; the rest of a wide file's are counted in one note."""

HEADER_SEARCH_ROWS = 30
"""How many rows from the top of a sheet are searched for the header row."""

EXCEL_SUFFIXES = (".xlsx", ".xlsm", ".xlsb", ".xls", ".ods")
CSV_SUFFIXES = (".csv", ".txt", ".tsv")
PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass(frozen=True)
class ReadResult:
    """What a reader returns.

    Attributes
    ----------
    data : polars.DataFrame
        Contract columns in contract order, canonical units, then ``source_file``,
        ``source_sheet``, ``source_row``.
    quarantine : polars.DataFrame
        ``source_file, source_sheet, source_row, column, raw_value, reason, reason_en``: one
        row per unreadable cell, and one per row whose identity cannot be read (``column``
        null, ``raw_value`` the whole row as JSON, personal columns masked as
        :data:`PERSONAL_MASK`). ``reason`` is Chinese, ``reason_en`` English; both name the
        header.
    notes : polars.DataFrame
        What the reader did that a person should know (unit conversions, absent columns filled
        with their default, ignored columns, blank rows skipped…); see :data:`NOTE_COLUMNS`.
    rows_in : int
        Non-blank rows read below the header rows, over all sheets.
    """

    data: pl.DataFrame
    quarantine: pl.DataFrame
    notes: pl.DataFrame
    rows_in: int = field(default=0)

    def __repr__(self) -> str:
        whole = int(self.quarantine["column"].is_null().sum())
        return (
            f"ReadResult（读入 {self.rows_in} 行：数据 {self.data.height} 行，隔离整行 {whole} 行、"
            f"单元格 {self.quarantine.height - whole} 个；说明 {self.notes.height} 条）"
        )


@dataclass
class _Sheet:
    """Raw text of one sheet (or CSV / Parquet file) with the person-visible row numbers."""

    name: str | None
    frame: pl.DataFrame  # String columns c0, c1, …
    row_numbers: list[int]
    header_row: int | None = None  # index into frame; None: headers are the column names
    headers: list[str | None] = field(default_factory=list)
    # Cells whose text is not their value (an Excel error, a formula without a result, bytes
    # that are not UTF-8): frame column → reason key per frame row (null where none).
    flags: dict[str, pl.Series] = field(default_factory=dict)


def file_sha256(path: str | Path) -> str:
    """Return the SHA-256 (hex) of a file, read in blocks: outputs record the inputs they used."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------- raw loading


def _load_excel(path: Path) -> list[_Sheet]:
    # Before calamine, which aborts the process on a far cell and expands repeated ODS cells.
    interesting = None
    if path.suffix.lower() == ".ods":
        check_ods(path)
    elif zipfile.is_zipfile(path):
        # The same pass found the sheets holding formulas or error cells: only those are parsed.
        interesting = {e.part for e in check_workbook(path) if e.interesting}
    return [
        _Sheet(s.name, s.frame, list(range(1, s.frame.height + 1)), flags=s.flags)
        for s in excel.load_sheets(path, interesting)
    ]


def _load_csv(path: Path) -> tuple[list[_Sheet], list[delimited.LoadNote]]:
    """Cells of a delimited text file as one sheet, and the notes on how it was read.

    Encoding, separator, quotes and the start line of each record: see
    :mod:`energy_audit.io.delimited`.
    """
    text = delimited.read_delimited(path)
    read_as = delimited.LoadNote(
        "encoding", f"按 {text.encoding} 编码读取", f"read as {text.encoding}"
    )
    sheet = _Sheet(None, text.frame, text.row_numbers)  # type: ignore[arg-type]
    return [sheet], [read_as, *text.notes]


def _load_parquet(path: Path) -> list[_Sheet]:
    check_parquet(path)  # before polars, which would decode every run
    frame, headers, flags = parquet.load_table(path)
    return [_Sheet(None, frame, list(range(1, frame.height + 1)), None, headers, flags)]


def _load(path: Path) -> tuple[list[_Sheet], list[delimited.LoadNote]]:
    """Sheets of a file read as what its bytes hold, and the notes on how it was read.

    The suffix names the expected kind; the first bytes decide (:func:`delimited.sniff_format`):
    a workbook or Parquet file named ``.csv`` (or a CSV named ``.xlsx``) is read as what it is,
    and a ``file_type`` note says so.
    """
    if not path.exists():
        raise UnusableInputError(f"{path}：文件不存在", f"{path}: no such file")
    if not path.is_file():
        raise UnusableInputError(
            f"{path}：不是文件（是文件夹？）", f"{path}: not a file (a folder?)"
        )
    suffix = path.suffix.lower()
    named = (
        "workbook"
        if suffix in EXCEL_SUFFIXES
        else "text"
        if suffix in CSV_SUFFIXES
        else "parquet"
        if suffix in PARQUET_SUFFIXES
        else None
    )
    holds = delimited.sniff_format(path)
    if holds == "ods":
        if suffix != ".ods":
            check_ods(path)  # _load_excel bounds an OpenDocument sheet only when named .ods
        holds = "workbook"
    if holds == "text" and named != "text":
        if named is None:
            raise UnusableInputError(
                f"{path.name}：未知的文件类型 {suffix!r}：请提交 .xlsx、.csv 或 .parquet 文件",
                f"{path.name}: unknown file type {suffix!r}; give .xlsx, .csv or .parquet",
            )
        if not delimited.looks_like_text(path):
            holds = named  # not text either: the reader of its kind says what is wrong
    notes: list[delimited.LoadNote] = []
    if holds == "workbook":
        sheets = _load_excel(path)
    elif holds == "parquet":
        sheets = _load_parquet(path)
    else:
        sheets, notes = _load_csv(path)
    if holds != named:
        zh, en = {
            "workbook": ("Excel 工作簿", "Excel workbook"),
            "parquet": ("Parquet 文件", "Parquet file"),
            "text": ("CSV 文本", "CSV text"),
        }[holds]
        notes.append(
            delimited.LoadNote(
                "file_type",
                f"文件名为 {suffix or '（无后缀）'}，内容却是 {zh}：按 {zh} 读取",
                f"named {suffix or '(no suffix)'}, holds: {en}; read as such",
            )
        )
    return sheets, notes


# ------------------------------------------------------------------------------ header finding


def _find_header(sheet: _Sheet, spec: TableSpec) -> bool:
    """Locate the header row of ``sheet`` in its first rows; False if there is none."""
    if sheet.header_row is None and sheet.headers:
        return header_score(sheet.headers, spec) >= 2
    best, best_score = None, 1
    top = sheet.frame.head(HEADER_SEARCH_ROWS)
    for i, row in enumerate(top.iter_rows()):
        score = header_score(row, spec)
        if score > best_score:
            best, best_score = i, score
    if best is None:
        return False
    sheet.header_row = best
    sheet.headers = list(top.row(best))
    return True


# ---------------------------------------------------------------------------------- assembling


@dataclass
class _Context:
    spec: TableSpec
    file: str
    sheet: str | None
    density: DensityLookup
    districts: dict[str, str]
    notes: list[dict[str, Any]]

    @property
    def where(self) -> str:
        return self.file if self.sheet is None else f"{self.file} (sheet {self.sheet})"

    @property
    def where_zh(self) -> str:
        return self.file if self.sheet is None else f"{self.file}（工作表 {self.sheet}）"

    def note(
        self,
        kind: str,
        detail: str,
        column: str | None = None,
        header: str | None = None,
        detail_en: str | None = None,
    ) -> None:
        """Record a note: ``detail`` in Chinese, ``detail_en`` in English (default: ``detail``)."""
        self.notes.append(
            {
                "source_file": self.file,
                "source_sheet": self.sheet,
                "kind": kind,
                "column": column,
                "header": header,
                "detail": detail,
                "detail_en": detail if detail_en is None else detail_en,
            }
        )


def _clean(col: ColumnSpec, raw: pl.Expr, ctx: _Context) -> tuple[pl.Expr, pl.Expr]:
    """Value and reason expressions for one matched non-numeric column."""
    if col.dtype == "year":
        return cells.year(raw)
    if col.dtype == "bool":
        return cells.boolean(raw)
    if col.dtype == "enum":
        mapping = {}
        for value in col.values:
            for key in (value.code, *value.labels):
                mapping[contract.normalize_label(key)] = value.code
        return cells.label(raw, mapping), pl.lit(None, pl.String)
    if col.dtype == "district":
        mapping = {contract.normalize_label(k): v for k, v in ctx.districts.items()}
        return cells.label(raw, mapping), pl.lit(None, pl.String)
    if col.dtype == "credit_code":
        return cells.credit_code(raw), pl.lit(None, pl.String)
    return cells.text(raw), pl.lit(None, pl.String)


def _nonblank_rows(frame: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
    """Drop rows whose cells are all blank, keeping the order.

    Rows with a cell that reads as a plain number are certainly not blank; only the others get
    the (slower) text test of :func:`cells.is_blank`.
    """
    if not columns:
        return frame.clear()
    has_number = frame.select(
        pl.any_horizontal(pl.col(c).cast(pl.Float64, strict=False).is_not_null() for c in columns)
    ).to_series()
    if has_number.all():
        return frame  # no copy: most files have no blank row
    rest = pl.arg_where(~has_number, eager=True)
    filled = frame[rest].select(pl.any_horizontal(~cells.is_blank(pl.col(c)) for c in columns))
    keep = has_number.scatter(rest, filled.to_series())
    return frame if keep.all() else frame.filter(keep)


def _read_sheet(
    sheet: _Sheet, ctx: _Context, identity: Sequence[str], defaults: dict[str, Any]
) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    spec = ctx.spec
    matches, ignored = resolve_headers(sheet.headers, spec, ctx.where, ctx.density, ctx.where_zh)
    by_name = {m.column.name: m for m in matches}
    missing = [
        c for c in spec.columns if c.required and c.name not in by_name and c.name not in defaults
    ]
    if missing:
        found = "、".join(str(h) for h in sheet.headers if h) or "无"
        raise UnusableInputError(
            f"{ctx.where_zh}：缺少必填列 {'、'.join(c.header_zh for c in missing)}；"
            f"文件中的表头：{found}",
            f"{ctx.where}: required column(s) missing: "
            f"{', '.join(f'{c.name} ({c.header_zh})' for c in missing)}; headers found: "
            f"{', '.join(str(h) for h in sheet.headers if h) or 'none'}",
        )
    _header_notes(sheet, ctx, matches, ignored)

    start = 0 if sheet.header_row is None else sheet.header_row + 1
    columns = list(sheet.frame.columns)
    raw = sheet.frame.slice(start).with_columns(
        pl.Series("__row", sheet.row_numbers[start:], dtype=pl.Int64),
        *[flags.slice(start).alias(_flag_column(c)) for c, flags in sheet.flags.items()],
    )
    n_all = raw.height
    raw = _nonblank_rows(raw, columns)
    if n_all - raw.height:
        n = n_all - raw.height
        ctx.note("blank_rows", f"跳过空行 {n} 行", detail_en=f"{n} blank row(s) skipped")
    headerless = [
        (i, c) for i, c in enumerate(columns) if not (i < len(sheet.headers) and sheet.headers[i])
    ]
    if headerless:
        counts = raw.select((~cells.is_blank(pl.col(c))).sum().alias(c) for _, c in headerless)
        filled = [(i, n) for (i, c), n in zip(headerless, counts.row(0), strict=True) if n]
        for i, n in filled[:MAX_COLUMN_NOTES]:
            ctx.note(
                "ignored_column",
                f"第 {i + 1} 列没有表头，但有 {n} 个值：未读取",
                detail_en=f"column {i + 1} has no header but {n} values",
            )
        if len(filled) > MAX_COLUMN_NOTES:
            rest = filled[MAX_COLUMN_NOTES:]
            ctx.note(
                "ignored_column",
                f"另有 {len(rest):,} 列没有表头但有值（第 {rest[0][0] + 1}–{rest[-1][0] + 1} 列"
                f"之间，共 {sum(n for _, n in rest):,} 个值）：未读取",
                detail_en=f"{len(rest):,} more columns without a header hold values (between "
                f"columns {rest[0][0] + 1} and {rest[-1][0] + 1}, "
                f"{sum(n for _, n in rest):,} values): not read",
            )

    cleaned = _clean_cells(raw, matches, sheet, ctx)
    cleaned = _fill_defaults(cleaned, ctx, by_name, defaults)
    _normalized_id_notes(cleaned, ctx, by_name)

    # Identity: rows without it go whole to quarantine.
    ident_ok = pl.all_horizontal(pl.col(c).is_not_null() for c in identity)
    whole = cleaned.filter(~ident_ok).select(
        *_provenance(ctx),
        pl.lit(None, pl.String).alias("column"),
        _row_json(sheet, matches).alias("raw_value"),
        *_identity_reasons(ctx, identity, by_name),
    )
    kept = cleaned.filter(ident_ok)
    cell_q = [
        kept.filter(pl.col(cells.reason_column(m.column.name)).is_not_null()).select(
            *_provenance(ctx),
            pl.lit(m.column.name).alias("column"),
            _shown(m.column, pl.col(f"c{m.position}")).alias("raw_value"),
            *_cell_reasons(m, pl.col(f"c{m.position}")),
        )
        for m in matches
    ]
    data = kept.select(
        *[pl.col(c.name).cast(c.polars_dtype) for c in spec.columns],
        *_provenance(ctx),
    )
    quarantine = pl.concat([whole, *cell_q], how="vertical")
    return data, quarantine, raw.height


def _flag_column(column: str) -> str:
    return f"__flag_{column}"


def _header_notes(
    sheet: _Sheet, ctx: _Context, matches: Sequence[HeaderMatch], ignored: Sequence[tuple[int, str]]
) -> None:
    if sheet.header_row is not None:
        row = sheet.row_numbers[sheet.header_row]
        ctx.note("header_row", f"表头在第 {row} 行", detail_en=f"header found on row {row}")
    for m in matches:
        if m.unit_label is not None and m.factor != 1.0:
            ctx.note(
                "unit_conversion",
                f"以{m.unit_label}填报的数值乘以 {m.factor:g}，换算为 {m.column.unit}",
                m.column.name,
                m.header,
                f"values in {m.unit_label} multiplied by {m.factor:g} into {m.column.unit}",
            )
    for pos, header in ignored[:MAX_COLUMN_NOTES]:
        ctx.note(
            "ignored_column",
            f"第 {pos + 1} 列不在数据规范中：未读取",
            None,
            header,
            f"column {pos + 1} is not in the contract: ignored",
        )
    if len(ignored) > MAX_COLUMN_NOTES:
        rest = ignored[MAX_COLUMN_NOTES:]
        ctx.note(
            "ignored_column",
            f"另有 {len(rest):,} 列不在数据规范中（第 {rest[0][0] + 1}–{rest[-1][0] + 1} 列之间）"
            "：未读取",
            None,
            None,
            f"{len(rest):,} more columns are not in the contract (between columns "
            f"{rest[0][0] + 1} and {rest[-1][0] + 1}): ignored",
        )


def _clean_cells(
    raw: pl.DataFrame, matches: Sequence[HeaderMatch], sheet: _Sheet, ctx: _Context
) -> pl.DataFrame:
    """Value and reason key (:func:`cells.reason_column`) of every matched column."""
    numeric = [m for m in matches if m.column.dtype in ("float", "int")]
    cleaned = cells.clean_numbers(
        raw,
        [
            cells.NumberColumn(
                source=f"c{m.position}",
                target=m.column.name,
                factor=m.factor,
                unit_factors=cell_unit_factors(m.column, ctx.density),
                whole=m.column.dtype == "int",
            )
            for m in numeric
        ],
    )
    exprs = []
    for m in (m for m in matches if m not in numeric):
        value, reason = _clean(m.column, pl.col(f"c{m.position}"), ctx)
        exprs += [value.alias(m.column.name), reason.alias(cells.reason_column(m.column.name))]
    cleaned = cleaned.with_columns(exprs)
    # A flagged cell (Excel error, formula without a result, not UTF-8) is never a value.
    flagged = [m for m in matches if f"c{m.position}" in sheet.flags]
    cleaned = cleaned.with_columns(
        expr
        for m in flagged
        for flag in (pl.col(_flag_column(f"c{m.position}")),)
        for expr in (
            pl.when(flag.is_null()).then(pl.col(m.column.name)).alias(m.column.name),
            pl.coalesce(flag, pl.col(cells.reason_column(m.column.name))).alias(
                cells.reason_column(m.column.name)
            ),
        )
    )
    own_units = cleaned.select(
        pl.col(cells.own_unit_column(m.column.name)).sum().alias(m.column.name) for m in numeric
    )
    for m in numeric:
        n = own_units[m.column.name].item()
        if n:
            ctx.note(
                "cell_unit_conversion",
                f"{n} 个单元格自带单位（如 500 千瓦时）：已换算为 {m.column.unit}",
                m.column.name,
                m.header,
                f"{n} cell(s) carried a unit of their own (500 千瓦时): read into {m.column.unit}",
            )
    return cleaned


def _fill_defaults(
    cleaned: pl.DataFrame,
    ctx: _Context,
    by_name: dict[str, HeaderMatch],
    defaults: dict[str, Any],
) -> pl.DataFrame:
    """Absent columns and blank cells where the caller gave a value (``year=``)."""
    fill = []
    for col in ctx.spec.columns:
        if col.name in by_name:
            if col.name in defaults:
                blank = pl.col(col.name).is_null() & pl.col(cells.reason_column(col.name)).is_null()
                n = cleaned.select(blank.sum()).item()
                if n:
                    ctx.note(
                        "default_year",
                        f"{n} 个空单元格填为 {defaults[col.name]}",
                        col.name,
                        by_name[col.name].header,
                        f"{n} blank cell(s) set to {defaults[col.name]}",
                    )
                    fill.append(
                        pl.when(blank)
                        .then(pl.lit(defaults[col.name], col.polars_dtype))
                        .otherwise(pl.col(col.name))
                        .alias(col.name)
                    )
            continue
        default = defaults.get(col.name, col.absent_default)
        if default is not None:
            ctx.note(
                "absent_column",
                f"缺少此列：按 {default} 计",
                col.name,
                detail_en=f"column absent: set to {default}",
            )
        else:
            ctx.note(
                "absent_column", "缺少此列：留空", col.name, detail_en="column absent: left empty"
            )
        fill.append(pl.lit(default, col.polars_dtype).alias(col.name))
    return cleaned.with_columns(fill) if fill else cleaned


def _normalized_id_notes(
    cleaned: pl.DataFrame, ctx: _Context, by_name: dict[str, HeaderMatch]
) -> None:
    for name in (c.name for c in ctx.spec.columns if c.dtype == "credit_code"):
        if name in by_name:
            pos = f"c{by_name[name].position}"
            n = cleaned.select(
                (pl.col(name).is_not_null() & (pl.col(name) != pl.col(pos).str.strip_chars())).sum()
            ).item()
            if n:
                ctx.note(
                    "normalized_id",
                    f"{n} 个代码已规范化（全角、大小写、空格、连字符）",
                    name,
                    by_name[name].header,
                    f"{n} code(s) normalised (width, case, spaces, hyphens)",
                )


def _provenance(ctx: _Context) -> list[pl.Expr]:
    return [
        pl.lit(ctx.file).alias("source_file"),
        pl.lit(ctx.sheet, pl.String).alias("source_sheet"),
        pl.col("__row").alias("source_row"),
    ]


def _shown(column: ColumnSpec, raw: pl.Expr) -> pl.Expr:
    """Show a cell's text as quarantine does: personal columns masked (:data:`PERSONAL_MASK`)."""
    if not column.personal:
        return raw
    return pl.when(raw.is_null()).then(None).otherwise(pl.lit(PERSONAL_MASK))


def mask_personal_quarantine(quarantine: pl.DataFrame, table: str) -> pl.DataFrame:
    """Withhold personal data in a quarantine table, however it was made.

    The readers already write quarantine this way; a check that takes a quarantine from its
    caller (:func:`energy_audit.directory.checks.check_directory`) applies it again before it
    quotes anything.

    Parameters
    ----------
    quarantine : polars.DataFrame
        Quarantine table (data contract): ``column``, ``raw_value`` at least.
    table : str
        Contract table the quarantined rows belong to (``directory``, ``returns``).

    Returns
    -------
    polars.DataFrame
        The same rows. A non-empty cell entry of a personal column reads :data:`PERSONAL_MASK`;
        in a whole-row entry (JSON ``{header: text}``), a non-empty value under a header naming a
        personal column does; a whole-row text that is not a JSON object becomes the mask alone
        (nothing can tell which part of it is personal).

    Examples
    --------
    >>> row = '{"单位名称": "甲", "联系电话": "022-1"}'
    >>> q = pl.DataFrame({"column": [None], "raw_value": [row]})
    >>> mask_personal_quarantine(q, "directory")["raw_value"][0]
    '{"单位名称": "甲", "联系电话": "[已隐去]"}'
    """
    spec = contract.table(table)
    personal = [c.name for c in spec.columns if c.personal]
    if not personal:
        return quarantine

    def row(text: str | None) -> str | None:
        if text is None:
            return None
        try:
            values = json.loads(text)
        except ValueError:
            return PERSONAL_MASK
        if not isinstance(values, dict):
            return PERSONAL_MASK
        for key, value in values.items():
            match = match_header(str(key), spec)
            if match is not None and match[0].personal and value not in (None, ""):
                values[key] = PERSONAL_MASK
        return json.dumps(values, ensure_ascii=False)

    return quarantine.with_columns(
        pl.when(pl.col("column").is_in(personal) & pl.col("raw_value").is_not_null())
        .then(pl.lit(PERSONAL_MASK, pl.String))
        .when(pl.col("column").is_null())
        .then(pl.col("raw_value").map_elements(row, return_dtype=pl.String, skip_nulls=True))
        .otherwise(pl.col("raw_value"))
        .alias("raw_value")
    )


def _row_json(sheet: _Sheet, matches: Sequence[HeaderMatch]) -> pl.Expr:
    """Give the row as JSON ``{header: text}`` of the matched columns, personal ones masked."""
    return pl.struct(
        [
            _shown(m.column, pl.col(f"c{m.position}")).alias(
                str(sheet.headers[m.position] or f"column {m.position + 1}")
            )
            for m in matches
        ]
    ).struct.json_encode()


def _cell_reasons(m: HeaderMatch, raw: pl.Expr) -> list[pl.Expr]:
    """``reason`` (Chinese) and ``reason_en`` of a quarantined cell, naming its header."""
    key = pl.col(cells.reason_column(m.column.name))
    error = cells.normalized_text(raw).str.to_uppercase()
    out = []
    for lang, header in (("zh", f"（表头“{m.header}”）"), ("en", f" (header '{m.header}')")):
        text = key.replace_strict(dict(terms("reason", lang)), default=key, return_dtype=pl.String)
        value = pl.when(key == cells.REASON_EXCEL_ERROR).then(
            pl.concat_str(text, pl.lit(" "), error)
        )
        out.append(
            pl.concat_str(value.otherwise(text), pl.lit(header)).alias(
                "reason" if lang == "zh" else "reason_en"
            )
        )
    return out


def _identity_reasons(
    ctx: _Context, identity: Sequence[str], by_name: dict[str, HeaderMatch]
) -> list[pl.Expr]:
    """``reason`` and ``reason_en`` of a row whose identity cannot be read."""
    headers = {
        c: by_name[c].header if c in by_name else ctx.spec.column(c).header_zh for c in identity
    }
    zh = (
        f"{term('reason', 'identity_unreadable')}（{'、'.join(headers.values())}）：",
        "；",
        lambda c: f"{headers[c]}{term('reason', 'missing_or_unreadable')}",
    )
    en = (
        f"{term('reason', 'identity_unreadable', 'en')} ({' and '.join(headers.values())}): ",
        "; ",
        lambda c: f"{c} {term('reason', 'missing_or_unreadable', 'en')}",
    )
    out = []
    for (lead, sep, what), name in ((zh, "reason"), (en, "reason_en")):
        parts = pl.concat_str(
            [pl.when(pl.col(c).is_null()).then(pl.lit(what(c))) for c in identity],
            separator=sep,
            ignore_nulls=True,
        )
        out.append(pl.concat_str(pl.lit(lead), parts).alias(name))
    return out


def _quarantine_schema() -> pl.Schema:
    return contract.table("quarantine").polars_schema


def _read(
    path: str | Path,
    spec: TableSpec,
    identity: Sequence[str],
    defaults: dict[str, Any],
    density: DensityLookup,
    districts: pl.DataFrame | None,
    sheet: str | None,
) -> ReadResult:
    path = Path(path)
    sheets, load_notes = _load(path)
    notes: list[dict[str, Any]] = []
    if sheet is not None:
        sheets = [s for s in sheets if s.name == sheet]
        if not sheets:
            raise UnusableInputError(
                f"{path.name}：没有名为“{sheet}”的工作表", f"{path.name}: no sheet named {sheet!r}"
            )
    lookup = district_lookup(load_districts() if districts is None else districts)
    datas, quarantines, rows_in = [], [], 0
    file_ctx = _Context(spec, path.name, None, density, lookup, notes)
    for note in load_notes:
        file_ctx.note(note.kind, note.detail_zh, detail_en=note.detail_en)
    for s in sheets:
        ctx = _Context(spec, path.name, s.name, density, lookup, notes)
        if not _find_header(s, spec):
            filled = (
                s.frame.select(
                    pl.any_horizontal(~cells.is_blank(pl.col(c)) for c in s.frame.columns).sum()
                ).item()
                if s.frame.width
                else 0
            )
            ctx.note(
                "skipped_sheet",
                f"没有列出{spec.title_zh}各列的表头行：{filled} 个非空行未读取",
                detail_en=f"no header row naming the {spec.name} columns; {filled} non-empty "
                "row(s) not read",
            )
            continue
        d, q, n = _read_sheet(s, ctx, identity, defaults)
        datas.append(d)
        quarantines.append(q)
        rows_in += n
    if not datas:
        names = [c.header_zh for c in spec.columns if c.required]
        raise UnusableInputError(
            f"{path.name}：任何工作表的前 {HEADER_SEARCH_ROWS} 行中都没有找到表头行；应有"
            f"{'、'.join(names)}等表头",
            f"{path.name}: no header row found in the first {HEADER_SEARCH_ROWS} rows of any "
            f"sheet; expected headers such as {', '.join(names)}",
        )
    data = pl.concat(datas, how="vertical")
    quarantine = pl.concat(quarantines, how="vertical").cast(_quarantine_schema())
    return ReadResult(
        data=data,
        quarantine=quarantine.sort("source_sheet", "source_row", "column", nulls_last=False),
        notes=pl.DataFrame(notes, schema=NOTE_COLUMNS),
        rows_in=rows_in,
    )


def _density_lookup(coefficients: pl.DataFrame | None) -> DensityLookup:
    """Density [kg/L] of a liquid fuel from the coefficient table, each item looked up once."""
    from energy_audit.factors import density_kg_per_l, load_coefficients

    table = load_coefficients(coefficients)

    @functools.cache
    def density(item: str) -> float:
        return density_kg_per_l(table, item)

    return density


def read_returns(
    path: str | Path,
    year: int | None = None,
    *,
    sheet: str | None = None,
    coefficients: pl.DataFrame | None = None,
) -> ReadResult:
    """Read a file of yearly returns (公共机构能源资源消费统计) into the canonical table.

    Parameters
    ----------
    path : str or Path
        ``.xlsx`` (every sheet with a header row is read), ``.csv`` (UTF-8, UTF-8 with BOM or
        GB18030, detected) or ``.parquet``.
    year : int, optional
        Reporting year for a file without a 统计年度 column, or for its blank year cells.
    sheet : str, optional
        Read only this sheet of a workbook.
    coefficients : polars.DataFrame, optional
        Coefficient table whose densities [kg/L] turn 吨 / 千克 of gasoline and diesel into
        litres (default: the packaged table, see :mod:`energy_audit.factors`).

    Returns
    -------
    ReadResult
        ``.data`` with the returns columns of the contract in canonical units (kWh, m³, t, L,
        kg, GJ, tce, m², persons, 元) plus provenance; ``.quarantine``; ``.notes``.

    Raises
    ------
    UnusableInputError
        The file cannot be read, no header row is found, a required column is missing, or a
        header names a unit that is unknown or of the wrong dimension.

    Examples
    --------
    >>> result = read_returns("2024年能耗统计.xlsx")  # doctest: +SKIP
    >>> result.data.select("institution_id", "electricity_kwh")  # doctest: +SKIP
    """
    density = _density_lookup(coefficients)
    defaults: dict[str, Any] = {} if year is None else {"year": int(year)}
    return _read(
        path,
        contract.table("returns"),
        ("institution_id", "year"),
        defaults,
        density,
        None,
        sheet,
    )


def read_directory(
    path: str | Path,
    *,
    sheet: str | None = None,
    districts: pl.DataFrame | None = None,
) -> ReadResult:
    """Read a directory snapshot (公共机构名录库) into the canonical table.

    Parameters
    ----------
    path : str or Path
        ``.xlsx``, ``.csv`` or ``.parquet``; title rows above the header are skipped.
    sheet : str, optional
        Read only this sheet of a workbook.
    districts : polars.DataFrame, optional
        District table used to map district names (和平区) to codes (default: Tianjin's, see
        :func:`energy_audit.districts.load_districts`).

    Returns
    -------
    ReadResult
        ``.data`` with the directory columns of the contract (labels such as 事业单位 mapped to
        codes such as ``public_service_unit``; unknown labels kept verbatim) plus provenance.

    Raises
    ------
    UnusableInputError
        As :func:`read_returns`.
    """
    return _read(
        path,
        contract.table("directory"),
        ("institution_id",),
        {},
        _no_density,
        districts,
        sheet,
    )


def _no_density(item: str) -> float:  # directory columns have no fuel quantities
    raise AssertionError(f"no density needed for directory column item {item}")
