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

import csv
import functools
import hashlib
import io
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from energy_audit import contract
from energy_audit.contract import ColumnSpec, TableSpec
from energy_audit.districts import district_lookup, load_districts
from energy_audit.errors import UnusableInputError
from energy_audit.io import cells
from energy_audit.io.headers import (
    DensityLookup,
    cell_unit_factors,
    header_score,
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
}
"""Schema of :attr:`ReadResult.notes`. ``kind`` is one of :data:`NOTE_KINDS`."""

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
)

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
        ``source_file, source_sheet, source_row, column, raw_value, reason``: one row per
        unreadable cell, and one per row whose identity cannot be read (``column`` null,
        ``raw_value`` the whole row as JSON).
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
            f"ReadResult({self.rows_in} rows in: {self.data.height} in data, {whole} whole rows "
            f"and {self.quarantine.height - whole} cells in quarantine; {self.notes.height} notes)"
        )


@dataclass
class _Sheet:
    """Raw text of one sheet (or CSV / Parquet file) with the person-visible row numbers."""

    name: str | None
    frame: pl.DataFrame  # String columns c0, c1, …
    row_numbers: list[int]
    header_row: int | None = None  # index into frame; None: headers are the column names
    headers: list[str | None] = field(default_factory=list)


def file_sha256(path: str | Path) -> str:
    """Return the SHA-256 (hex) of a file, read in blocks: outputs record the inputs they used."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------- raw loading


def _load_excel(path: Path) -> list[_Sheet]:
    import fastexcel

    # Before calamine, which aborts the process on a far cell and expands repeated ODS cells.
    if path.suffix.lower() == ".ods":
        check_ods(path)
    else:
        check_workbook(path)
    try:
        reader = fastexcel.read_excel(str(path))
    except Exception as exc:  # fastexcel raises its own error types
        raise UnusableInputError(f"{path.name}: cannot open as a workbook: {exc}") from exc
    sheets = []
    for name in reader.sheet_names:
        try:
            sheet = reader.load_sheet(name, header_row=None, dtypes="string", skip_rows=0)
            frame = sheet.to_polars()
        except Exception as exc:
            raise UnusableInputError(f"{path.name} (sheet {name}): cannot read: {exc}") from exc
        frame = frame.rename({c: f"c{i}" for i, c in enumerate(frame.columns)})
        frame = frame.with_columns(pl.all().cast(pl.String))
        sheets.append(_Sheet(name, frame, list(range(1, frame.height + 1))))
    return sheets


def _decode(path: Path, data: bytes) -> tuple[str, str]:
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8"), "utf-8 with BOM"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), "utf-16"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030"), "gb18030"
    except UnicodeDecodeError as exc:
        raise UnusableInputError(
            f"{path.name}: not UTF-8 and not GB18030 text (byte {exc.start}): save it as CSV "
            "UTF-8 or as an Excel workbook"
        ) from exc


def _csv_by_lines(text: str, delimiter: str) -> pl.DataFrame | None:
    """Parse CSV text with polars when every record is one line; else ``None``.

    Polars is fast, but with a quoted field spanning lines its row numbers are no longer line
    numbers, and a row wider than the first rows stops it: then the caller falls back to the
    ``csv`` module, which is slow but exact.
    """
    if "\r" in text.replace("\r\n", ""):
        return None
    head = list(itertools.islice(csv.reader(io.StringIO(text[:200_000]), delimiter=delimiter), 50))
    width = max((len(r) for r in head), default=0)
    if width == 0:
        return None
    try:
        frame = pl.read_csv(
            io.BytesIO(text.encode("utf-8")),
            has_header=False,
            separator=delimiter,
            schema={f"c{i}": pl.String for i in range(width)},
            missing_columns="insert",
        )
    except pl.exceptions.PolarsError:
        return None
    lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    return frame if frame.height == lines else None


def _load_csv(path: Path) -> tuple[list[_Sheet], str]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnusableInputError(f"{path.name}: cannot read: {exc}") from exc
    text, encoding = _decode(path, data)
    head = text[:20000]
    delimiter = ","
    if head.count("\t") > head.count(",") and head.count("\t") > 0:
        delimiter = "\t"
    fast = _csv_by_lines(text, delimiter)
    if fast is not None:
        return [_Sheet(None, fast, list(range(1, fast.height + 1)))], encoding
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[list[str]] = []
    starts: list[int] = []
    last = 0
    try:
        for row in reader:
            starts.append(last + 1)
            rows.append(row)
            last = reader.line_num
    except csv.Error as exc:
        raise UnusableInputError(f"{path.name}, line {last + 1}: malformed CSV: {exc}") from exc
    width = max((len(r) for r in rows), default=0)
    columns = [[r[i] if i < len(r) else None for r in rows] for i in range(width)]
    frame = pl.DataFrame(
        {f"c{i}": pl.Series(col, dtype=pl.String) for i, col in enumerate(columns)},
        height=len(rows),
    )
    return [_Sheet(None, frame, starts)], encoding


def _load_parquet(path: Path) -> list[_Sheet]:
    check_parquet(path)  # before polars, which would decode every run
    try:
        frame = pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise UnusableInputError(f"{path.name}: cannot read as Parquet: {exc}") from exc
    headers: list[str | None] = list(frame.columns)
    nested = [c for c, t in frame.schema.items() if t.is_nested()]
    if nested:
        raise UnusableInputError(
            f"{path.name}: column(s) {', '.join(nested)} hold lists or structs, not cell values"
        )
    frame = frame.select(
        pl.col(c).cast(pl.String).alias(f"c{i}") for i, c in enumerate(frame.columns)
    )
    return [_Sheet(None, frame, list(range(1, frame.height + 1)), None, headers)]


def _load(path: Path) -> tuple[list[_Sheet], str | None]:
    if not path.exists():
        raise UnusableInputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in EXCEL_SUFFIXES:
        return _load_excel(path), None
    if suffix in CSV_SUFFIXES:
        return _load_csv(path)
    if suffix in PARQUET_SUFFIXES:
        return _load_parquet(path), None
    raise UnusableInputError(
        f"{path.name}: unknown file type {suffix!r}; give .xlsx, .csv or .parquet"
    )


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

    def note(self, kind: str, detail: str, column: str | None = None, header: str | None = None):
        self.notes.append(
            {
                "source_file": self.file,
                "source_sheet": self.sheet,
                "kind": kind,
                "column": column,
                "header": header,
                "detail": detail,
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
    order = "__blank_order"
    frame = frame.with_row_index(order)
    has_number = pl.any_horizontal(
        pl.col(c).cast(pl.Float64, strict=False).is_not_null() for c in columns
    )
    sure = frame.filter(has_number)
    rest = frame.filter(~has_number)
    rest = rest.filter(pl.any_horizontal(~cells.is_blank(pl.col(c)) for c in columns))
    return pl.concat([sure, rest], how="vertical").sort(order).drop(order)


def _read_sheet(
    sheet: _Sheet, ctx: _Context, identity: Sequence[str], defaults: dict[str, Any]
) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    spec = ctx.spec
    matches, ignored = resolve_headers(sheet.headers, spec, ctx.where, ctx.density)
    by_name = {m.column.name: m for m in matches}
    missing = [
        c for c in spec.columns if c.required and c.name not in by_name and c.name not in defaults
    ]
    if missing:
        wanted = ", ".join(f"{c.name} ({c.header_zh})" for c in missing)
        found = ", ".join(str(h) for h in sheet.headers if h) or "none"
        raise UnusableInputError(
            f"{ctx.where}: required column(s) missing: {wanted}; headers found: {found}"
        )
    if sheet.header_row is not None:
        ctx.note("header_row", f"header found on row {sheet.row_numbers[sheet.header_row]}")
    for m in matches:
        if m.unit_label is not None and m.factor != 1.0:
            ctx.note(
                "unit_conversion",
                f"values in {m.unit_label} multiplied by {m.factor:g} into {m.column.unit}",
                m.column.name,
                m.header,
            )
    for pos, header in ignored:
        ctx.note(
            "ignored_column", f"column {pos + 1} is not in the contract: ignored", None, header
        )

    start = 0 if sheet.header_row is None else sheet.header_row + 1
    raw = sheet.frame.slice(start).with_columns(
        pl.Series("__row", sheet.row_numbers[start:], dtype=pl.Int64)
    )
    raw_cols = [f"c{m.position}" for m in matches]
    n_all = raw.height
    raw = _nonblank_rows(raw, raw.columns[:-1])
    if n_all - raw.height:
        ctx.note("blank_rows", f"{n_all - raw.height} blank row(s) skipped")
    headerless = [
        c
        for i, c in enumerate(raw.columns[:-1])
        if (i >= len(sheet.headers) or not sheet.headers[i])
    ]
    for c in headerless:
        n = raw.select((~cells.is_blank(pl.col(c))).sum()).item()
        if n:
            ctx.note("ignored_column", f"column {int(c[1:]) + 1} has no header but {n} values")

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
    others = [m for m in matches if m not in numeric]
    exprs = []
    for m in others:
        value, reason = _clean(m.column, pl.col(f"c{m.position}"), ctx)
        exprs += [value.alias(m.column.name), reason.alias(cells.reason_column(m.column.name))]
    cleaned = cleaned.with_columns(exprs)
    own_units = cleaned.select(
        pl.col(cells.own_unit_column(m.column.name)).sum().alias(m.column.name) for m in numeric
    )
    for m in numeric:
        n = own_units[m.column.name].item()
        if n:
            ctx.note(
                "cell_unit_conversion",
                f"{n} cell(s) carried a unit of their own (500 千瓦时): read into {m.column.unit}",
                m.column.name,
                m.header,
            )

    # Defaults: absent columns and blank cells where the caller gave a value (year=).
    fill = []
    for col in spec.columns:
        if col.name in by_name:
            if col.name in defaults:
                blank = pl.col(col.name).is_null() & pl.col(cells.reason_column(col.name)).is_null()
                n = cleaned.select(blank.sum()).item()
                if n:
                    ctx.note(
                        "default_year",
                        f"{n} blank cell(s) set to {defaults[col.name]}",
                        col.name,
                        by_name[col.name].header,
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
            ctx.note("absent_column", f"column absent: set to {default}", col.name)
        else:
            ctx.note("absent_column", "column absent: left empty", col.name)
        fill.append(pl.lit(default, col.polars_dtype).alias(col.name))
    if fill:
        cleaned = cleaned.with_columns(fill)

    for name in (c.name for c in spec.columns if c.dtype == "credit_code"):
        if name in by_name:
            pos = f"c{by_name[name].position}"
            n = cleaned.select(
                (pl.col(name).is_not_null() & (pl.col(name) != pl.col(pos).str.strip_chars())).sum()
            ).item()
            if n:
                ctx.note(
                    "normalized_id",
                    f"{n} code(s) normalised (width, case, spaces, hyphens)",
                    name,
                    by_name[name].header,
                )

    # Identity: rows without it go whole to quarantine.
    ident_ok = pl.all_horizontal(pl.col(c).is_not_null() for c in identity)
    headers_json = pl.struct(
        [
            pl.col(c).alias(str(sheet.headers[int(c[1:])] or f"column {int(c[1:]) + 1}"))
            for c in raw_cols
        ]
    ).struct.json_encode()
    missing_what = " and ".join(f"{by_name[c].header if c in by_name else c}" for c in identity)
    whole = cleaned.filter(~ident_ok).select(
        pl.lit(ctx.file).alias("source_file"),
        pl.lit(ctx.sheet, pl.String).alias("source_sheet"),
        pl.col("__row").alias("source_row"),
        pl.lit(None, pl.String).alias("column"),
        headers_json.alias("raw_value"),
        pl.concat_str(
            pl.lit(f"identity cannot be read ({missing_what}): "),
            pl.concat_str(
                [
                    pl.when(pl.col(c).is_null()).then(pl.lit(f"{c} missing or unreadable; "))
                    for c in identity
                ],
                ignore_nulls=True,
            ),
        )
        .str.strip_chars_end("; ")
        .alias("reason"),
    )
    kept = cleaned.filter(ident_ok)
    cell_q = [
        kept.filter(pl.col(cells.reason_column(m.column.name)).is_not_null()).select(
            pl.lit(ctx.file).alias("source_file"),
            pl.lit(ctx.sheet, pl.String).alias("source_sheet"),
            pl.col("__row").alias("source_row"),
            pl.lit(m.column.name).alias("column"),
            pl.col(f"c{m.position}").alias("raw_value"),
            pl.concat_str(
                pl.col(cells.reason_column(m.column.name)),
                pl.lit(f" (header {m.header!r})"),
            ).alias("reason"),
        )
        for m in matches
    ]
    data = kept.select(
        *[pl.col(c.name).cast(c.polars_dtype) for c in spec.columns],
        pl.lit(ctx.file).alias("source_file"),
        pl.lit(ctx.sheet, pl.String).alias("source_sheet"),
        pl.col("__row").alias("source_row"),
    )
    quarantine = pl.concat([whole, *cell_q], how="vertical")
    return data, quarantine, raw.height


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
    sheets, encoding = _load(path)
    notes: list[dict[str, Any]] = []
    if sheet is not None:
        sheets = [s for s in sheets if s.name == sheet]
        if not sheets:
            raise UnusableInputError(f"{path.name}: no sheet named {sheet!r}")
    lookup = district_lookup(load_districts() if districts is None else districts)
    datas, quarantines, rows_in = [], [], 0
    for s in sheets:
        ctx = _Context(spec, path.name, s.name, density, lookup, notes)
        if encoding is not None:
            ctx.note("encoding", f"read as {encoding}")
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
                f"no header row naming the {spec.name} columns; {filled} non-empty row(s) not read",
            )
            continue
        d, q, n = _read_sheet(s, ctx, identity, defaults)
        datas.append(d)
        quarantines.append(q)
        rows_in += n
    if not datas:
        names = ", ".join(f"{c.header_zh}" for c in spec.columns if c.required)
        raise UnusableInputError(
            f"{path.name}: no header row found in the first {HEADER_SEARCH_ROWS} rows of any "
            f"sheet; expected headers such as {names}"
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
