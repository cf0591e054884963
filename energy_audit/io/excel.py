"""Excel workbooks: what calamine does not tell about a cell, and its errors in plain words.

fastexcel (calamine) reads a formula cell as the result the workbook has cached for it. A
workbook written by a program that does not calculate has no such result: openpyxl and Apache
POI write the formula without a value, xlsxwriter writes ``0`` and asks Excel to recalculate on
opening (``<calcPr fullCalcOnLoad="1"/>``). calamine reads the first as an empty cell and the
second as 0, so a figure typed as ``=B2*2`` would silently be blank or zero.
:func:`flagged_cells` streams the sheet XML of an ``.xlsx`` / ``.xlsm`` (the zip members, in
blocks: memory does not grow with the sheet) and reports

- formula cells without a calculated result (no cached value, an empty one, or — in a workbook
  that asks to be recalculated on opening — the placeholder ``0``);
- Excel error cells (``<c t="e">``: ``#DIV/0!``, ``#SPILL!``…), which calamine either reads as
  empty (the classic errors, reported by ``to_arrow_with_errors``) or refuses the whole workbook
  for (``#SPILL!``, ``#CALC!``, …: "Unsupported cell error value").

For the latter, :func:`copy_with_errors_as_text` writes a copy of the workbook whose error
cells are text cells, which calamine reads; the flags from :func:`flagged_cells` still put those
cells in quarantine. ``.xls``, ``.xlsb`` and ``.ods`` are not zip packages of SpreadsheetML:
their error cells come from calamine alone, and their formulas are read as cached (Excel and
LibreOffice always store the result in those formats).

References
----------
ECMA-376 Part 1 (Office Open XML), §18.3.1.4 ``c`` (cell: ``t``, ``f``, ``v``), §18.2.2
``calcPr`` (``fullCalcOnLoad``), §18.17.4 (error values). XlsxWriter documentation, "Formula
Results" (the value 0 and the recalculation flag).
"""

from __future__ import annotations

import posixpath
import re
import shutil
import tempfile
import xml.etree.ElementTree as ET
import zipfile
import zlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from xml.parsers import expat

import polars as pl

from energy_audit.errors import UnusableInputError
from energy_audit.io import cells

_BLOCK = 1 << 20
_MAX_FORMULA_SHOWN = 200  # characters of a formula shown in quarantine
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
_OFFICE_DOCUMENT = "/officeDocument"
# A formula element or an error-typed cell somewhere in a block of sheet XML: only then is the
# sheet parsed (most sheets people type have neither).
_INTERESTING = re.compile(rb"<(?:[A-Za-z_][\w.\-]*:)?f[\s/>]|\st\s*=\s*[\"']e[\"']")
_ERROR_TYPE = re.compile(rb"(<(?:[A-Za-z_][\w.\-]*:)?c\s[^>]*?\st\s*=\s*)([\"'])e\2")
_REF = re.compile(r"^\$?([A-Za-z]{1,3})\$?(\d{1,7})$")

# calamine's names of the error values (CellErrorType) → as Excel shows them.
_CALAMINE_ERRORS = {
    "Div0": "#DIV/0!",
    "NA": "#N/A",
    "Name": "#NAME?",
    "Null": "#NULL!",
    "Num": "#NUM!",
    "Ref": "#REF!",
    "Value": "#VALUE!",
    "GettingData": "#GETTING_DATA",
}


@dataclass(frozen=True)
class FlaggedCell:
    """A cell whose value calamine gives is not what the file holds.

    Attributes
    ----------
    row : int
        1-based Excel row number.
    column : int
        0-based column number (A = 0).
    reason : str
        :data:`energy_audit.io.cells.REASON_FORMULA` or ``REASON_EXCEL_ERROR``.
    raw : str
        The cell as a person sees it: the formula (``=B2*2``) or the error value (``#DIV/0!``).
    """

    row: int
    column: int
    reason: str
    raw: str


def column_letters(column: int) -> str:
    """Excel column letters of a 0-based column number (0 → ``A``, 27 → ``AB``)."""
    letters = ""
    column += 1
    while column:
        column, rest = divmod(column - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _column_number(letters: str) -> int:
    n = 0
    for ch in letters.upper():
        n = n * 26 + ord(ch) - 64
    return n - 1


def error_value(detail: str) -> str | None:
    """Return the error value (``#DIV/0!``) a fastexcel ``CellError.detail`` names, or None."""
    m = re.search(r"Error\((\w+)\)", detail)
    if m is None:
        return None
    return _CALAMINE_ERRORS.get(m.group(1), f"#{m.group(1).upper()}")


# ---------------------------------------------------------------------------- package structure


def _parse_small(zf: zipfile.ZipFile, name: str) -> ET.Element | None:
    try:
        with zf.open(name) as fh:
            return ET.parse(fh).getroot()
    except KeyError:
        return None


def _target(base: str, target: str) -> str:
    if target.startswith("/"):
        return target.lstrip("/")
    return posixpath.normpath(posixpath.join(posixpath.dirname(base), target))


def _rels(zf: zipfile.ZipFile, part: str) -> dict[str, tuple[str, str]]:
    rels_name = posixpath.join(posixpath.dirname(part), "_rels", posixpath.basename(part) + ".rels")
    root = _parse_small(zf, rels_name)
    out: dict[str, tuple[str, str]] = {}
    if root is None:
        return out
    for rel in root.iter(f"{{{_PKG_REL_NS}}}Relationship"):
        out[rel.get("Id", "")] = (rel.get("Type", ""), _target(part, rel.get("Target", "")))
    return out


def sheet_parts(zf: zipfile.ZipFile) -> tuple[dict[str, str], bool]:
    """Return sheet name → zip member of its XML, and whether to recalculate on opening.

    The workbook part is found through the package relationships, its sheets through its own
    (ECMA-376 Part 2 §9), as calamine finds them.
    """
    package = _rels(zf, "")
    workbook = next(
        (t for kind, t in package.values() if kind.endswith(_OFFICE_DOCUMENT)), "xl/workbook.xml"
    )
    root = _parse_small(zf, workbook)
    if root is None:
        return {}, False
    rels = _rels(zf, workbook)
    parts: dict[str, str] = {}
    full_calc = False
    for el in root.iter():
        local = el.tag.rsplit("}", 1)[-1]
        if local == "sheet":
            rid = el.get(f"{{{_REL_NS}}}id", "")
            if rid in rels and el.get("name") is not None:
                parts[str(el.get("name"))] = rels[rid][1]
        elif local == "calcPr":
            full_calc = el.get("fullCalcOnLoad", "").lower() in ("1", "true")
    return parts, full_calc


def _blocks(fh: IO[bytes]) -> Iterator[bytes]:
    while block := fh.read(_BLOCK):
        yield block


# Literal bytes one of which every match of _INTERESTING holds: a block without any of them is
# passed over at memory speed instead of by the (slow, prefix-less) regular expression.
_INTERESTING_HINTS = (b"<f", b":f", b'"e"', b"'e'")


def is_interesting(block: bytes) -> bool:
    """Tell whether a block of sheet XML holds a formula element or an error-typed cell."""
    if not any(hint in block for hint in _INTERESTING_HINTS):
        return False
    return _INTERESTING.search(block) is not None


def _has_interesting(zf: zipfile.ZipFile, part: str) -> bool:
    tail = b""
    with zf.open(part) as fh:
        for block in _blocks(fh):
            if is_interesting(tail + block):
                return True
            tail = block[-64:]
    return False


# ------------------------------------------------------------------------------- sheet scanning


class _SheetScan:
    """expat handlers: follow rows and cells, keep the formula and error cells to flag."""

    def __init__(self, full_calc: bool) -> None:
        self.full_calc = full_calc
        self.flags: list[FlaggedCell] = []
        self.shared: dict[str, str] = {}
        self.in_data = False
        self.row = 0
        self.col = -1
        self.cell: dict[str, Any] | None = None
        self.text: list[str] | None = None
        self.text_size = 0

    def start(self, name: str, attrs: dict[str, str]) -> None:
        local = name.rsplit(" ", 1)[-1]
        if local == "sheetData":
            self.in_data = True
        elif not self.in_data:
            return
        elif local == "row":
            r = attrs.get("r", "")
            self.row = int(r) if r.isdigit() else self.row + 1
            self.col = -1
        elif local == "c":
            m = _REF.match(attrs.get("r", ""))
            if m:
                self.col, self.row = _column_number(m.group(1)), int(m.group(2))
            else:
                self.col += 1
            self.cell = {"t": attrs.get("t", "n"), "f": None, "si": None, "v": None}
        elif self.cell is not None and local in ("f", "v"):
            if local == "f":
                self.cell["si"] = attrs.get("si")
            self.text, self.text_size = [], 0

    def chars(self, data: str) -> None:
        if self.text is not None and self.text_size < _MAX_FORMULA_SHOWN + 1:
            self.text.append(data)
            self.text_size += len(data)

    def end(self, name: str) -> None:
        local = name.rsplit(" ", 1)[-1]
        if local == "sheetData":
            self.in_data = False
        elif self.cell is None:
            return
        elif local in ("f", "v") and self.text is not None:
            self.cell[local] = "".join(self.text)
            self.text = None
        elif local == "c":
            self._judge(self.cell)
            self.cell = None

    def _judge(self, cell: dict[str, Any]) -> None:
        kind, value = cell["t"], cell["v"]
        if kind == "e":
            raw = (value or "").strip() or "#VALUE!"
            self.flags.append(FlaggedCell(self.row, self.col, cells.REASON_EXCEL_ERROR, raw))
            return
        formula = cell["f"]
        if formula is None:
            return
        if formula == "" and cell["si"] is not None:
            formula = self.shared.get(cell["si"], "")
        elif cell["si"] is not None:
            self.shared.setdefault(cell["si"], formula)
        if kind in ("str", "s", "inlineStr"):
            uncached = value is None  # an empty text is a result (="")
        else:
            uncached = value is None or not value.strip()
            if kind == "n" and self.full_calc and value is not None and value.strip() == "0":
                uncached = True  # xlsxwriter's placeholder: "recalculate on opening"
        if uncached:
            shown = "=" + formula[:_MAX_FORMULA_SHOWN]
            self.flags.append(FlaggedCell(self.row, self.col, cells.REASON_FORMULA, shown))


def _scan(zf: zipfile.ZipFile, part: str, full_calc: bool) -> list[FlaggedCell]:
    scan = _SheetScan(full_calc)
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.StartElementHandler = scan.start
    parser.EndElementHandler = scan.end
    parser.CharacterDataHandler = scan.chars
    parser.buffer_text = True
    with zf.open(part) as fh:
        for block in _blocks(fh):
            parser.Parse(block, False)
        parser.Parse(b"", True)
    return scan.flags


def flagged_cells(
    path: Path, interesting: Collection[str] | None = None
) -> dict[str, list[FlaggedCell]]:
    """Find the formula cells without a result and the error cells of every sheet.

    Parameters
    ----------
    path : Path
        A workbook; only ``.xlsx`` / ``.xlsm`` packages are scanned (others give ``{}``).
    interesting : collection of str, optional
        The sheet parts (zip members) known to hold formulas or error cells, when an earlier
        pass over the XML found them (:func:`energy_audit.io.limits.check_workbook`): only these
        are parsed, the others are not searched again. Default: search every sheet.

    Returns
    -------
    dict of str to list of FlaggedCell
        Sheets without such cells are absent.

    Raises
    ------
    UnusableInputError
        If a sheet holding formulas or error cells is not well-formed XML (then nobody can say
        which of its cells hold a result).
    """
    if not zipfile.is_zipfile(path):
        return {}
    out: dict[str, list[FlaggedCell]] = {}
    with zipfile.ZipFile(path) as zf:
        try:
            parts, full_calc = sheet_parts(zf)
        except (
            ET.ParseError,
            zipfile.BadZipFile,
            zlib.error,
            OSError,
            EOFError,
            NotImplementedError,
        ):
            return {}  # not a SpreadsheetML package calamine reads either
        for name, part in parts.items():
            try:
                if interesting is not None and part not in interesting:
                    continue
                if interesting is None and not _has_interesting(zf, part):
                    continue
                flags = _scan(zf, part, full_calc)
            except KeyError:
                continue
            except (
                expat.ExpatError,
                zipfile.BadZipFile,
                zlib.error,
                OSError,
                EOFError,
                NotImplementedError,
            ) as exc:
                raise UnusableInputError(
                    f"{path.name}（工作表 {name}）：工作表内容已损坏，无法确认公式单元格是否有计算"
                    f"结果（{_short(exc)}）",
                    f"{path.name} (sheet {name}): the sheet is damaged; cannot tell whether its "
                    f"formula cells hold a result ({_short(exc)})",
                ) from exc
            if flags:
                out[name] = flags
    return out


def copy_with_errors_as_text(path: Path, target: Path) -> None:
    """Copy a workbook, its error cells (``t="e"``) turned into text cells calamine reads.

    The sheet XML is rewritten block by block; other members are copied as they are.
    """
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
        parts, _ = sheet_parts(src)
        sheets = set(parts.values())
        for info in src.infolist():
            with src.open(info) as fin, dst.open(info.filename, "w", force_zip64=True) as fout:
                if info.filename not in sheets:
                    shutil.copyfileobj(fin, fout, _BLOCK)
                    continue
                rest = b""
                for block in _blocks(fin):
                    data = rest + block
                    cut = data.rfind(b">") + 1
                    fout.write(_ERROR_TYPE.sub(rb"\1\2str\2", data[:cut]))
                    rest = data[cut:]
                fout.write(rest)


# ----------------------------------------------------------------------------- error messages


def _short(exc: BaseException) -> str:
    """Return the first line of an error, without calamine's layers of prefixes."""
    text = str(exc).split("\nContext:", 1)[0].strip().splitlines()[0] if str(exc) else ""
    prefix = re.compile(r"^(?:calamine error|fastexcel error|\w+ error|Error)\s*:\s*", re.I)
    while True:
        shorter = prefix.sub("", text, count=1)
        if shorter == text:
            break
        text = shorter
    return text[:200] or type(exc).__name__


def cause(exc: BaseException) -> tuple[str, str]:
    """Return the essential cause of a calamine / fastexcel error, in Chinese and English."""
    text = _short(exc)
    if re.search(r"EOCD|invalid zip|InvalidArchive|zip archive", text, re.I):
        return "不是完整的 zip 压缩包，可能已截断", "not a complete zip archive (truncated?)"
    if re.search(r"Invalid OLE|not an office document", text, re.I):
        return "不是 Excel 97-2003 工作簿", "not an Excel 97-2003 workbook"
    m = re.search(r"File not found '([^']*)'", text)
    if m:
        return f"缺少工作簿内部文件 {m.group(1)}", f"workbook part {m.group(1)} is missing"
    m = re.search(r"Unsupported cell error value '([^']*)'", text)
    if m:
        value = m.group(1)
        return f"无法读取的 Excel 错误值 {value}", f"unsupported Excel error value {value}"
    return text, text


def open_error(path: Path, exc: BaseException) -> UnusableInputError:
    """Build the one error for a workbook that cannot be opened (bilingual, cause only)."""
    zh, en = cause(exc)
    return UnusableInputError(
        f"{path.name}：无法作为 Excel 工作簿打开：文件已损坏或不是工作簿（{zh}）",
        f"{path.name}: cannot be opened as an Excel workbook: the file is damaged or not a "
        f"workbook ({en})",
    )


def sheet_error(path: Path, sheet: str, exc: BaseException) -> UnusableInputError:
    """Build the one error for a sheet that cannot be read (bilingual, cause only)."""
    zh, en = cause(exc)
    return UnusableInputError(
        f"{path.name}（工作表 {sheet}）：无法读取该工作表（{zh}）",
        f"{path.name} (sheet {sheet}): the sheet cannot be read ({en})",
    )


# ------------------------------------------------------------------------------------ loading


@dataclass(frozen=True)
class Sheet:
    """The cells of one sheet as text, with the cells whose text is not their value.

    Attributes
    ----------
    name : str
        Sheet name.
    frame : polars.DataFrame
        ``String`` columns ``c0, c1, …``; row ``i`` is sheet row ``i + 1``. A flagged cell holds
        the text a person sees (``#DIV/0!``, ``=B2*2``).
    flags : dict of str to polars.Series
        Frame column → reason key (``cells.REASON_*``) per row, null where the cell is read as
        it is; only columns with a flagged cell.
    """

    name: str
    frame: pl.DataFrame
    flags: dict[str, pl.Series]


class _UnsupportedErrorValue(Exception):
    """calamine met an error value it does not know (``#SPILL!``)."""


def load_sheets(path: Path, interesting: Collection[str] | None = None) -> list[Sheet]:
    """Read every sheet of a workbook as text, its error cells and uncalculated formulas flagged.

    Parameters
    ----------
    path : Path
        ``.xlsx``, ``.xlsm``, ``.xlsb``, ``.xls`` or ``.ods``.
    interesting : collection of str, optional
        See :func:`flagged_cells`.

    Returns
    -------
    list of Sheet
        In workbook order.

    Raises
    ------
    UnusableInputError
        If the workbook cannot be opened or a sheet cannot be read: one short message in
        Chinese and English with the file, the sheet and the essential cause (never
        calamine's chain of contexts).
    """
    import fastexcel

    try:
        reader = fastexcel.read_excel(str(path))
    except Exception as exc:  # fastexcel raises its own error types
        raise open_error(path, exc) from exc
    flagged = flagged_cells(path, interesting)
    try:
        return _sheets(path, reader, flagged)
    except _UnsupportedErrorValue:
        # calamine refuses a workbook holding #SPILL!, #CALC!…: read a copy whose error cells
        # are text; the flags put them in quarantine all the same.
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / f"copy{path.suffix}"
            copy_with_errors_as_text(path, copy)
            try:
                reader = fastexcel.read_excel(str(copy))
            except Exception as exc:
                raise open_error(path, exc) from exc
            return _sheets(path, reader, flagged, retry=False)


def _sheets(
    path: Path, reader: Any, flagged: dict[str, list[FlaggedCell]], *, retry: bool = True
) -> list[Sheet]:
    sheets = []
    for name in reader.sheet_names:
        try:
            sheet = reader.load_sheet(name, header_row=None, dtypes="string", skip_rows=0)
            batch, errors = sheet.to_arrow_with_errors()
            frame = pl.from_arrow(batch)
            columns = sheet.available_columns()
        except Exception as exc:
            if retry and "Unsupported cell error value" in str(exc):
                raise _UnsupportedErrorValue from exc
            raise sheet_error(path, name, exc) from exc
        assert isinstance(frame, pl.DataFrame)
        frame = frame.rename({c: f"c{i}" for i, c in enumerate(frame.columns)})
        frame = frame.with_columns(pl.all().cast(pl.String))
        offset = columns[0].absolute_index if columns else 0
        cells_flagged: dict[tuple[int, int], tuple[str, str]] = {}
        for error in errors.errors if errors is not None else ():
            row, col = error.position
            value = error_value(error.detail)
            cells_flagged[(row, col + offset)] = (
                (cells.REASON_EXCEL_ERROR, value)
                if value is not None
                else (cells.REASON_UNREADABLE_CELL, error.detail)
            )
        for cell in flagged.get(name, ()):
            cells_flagged[(cell.row - 1, cell.column)] = (cell.reason, cell.raw)
        frame, flags = flag_cells(frame, offset, cells_flagged)
        sheets.append(Sheet(name, frame, flags))
    return sheets


def flag_cells(
    frame: pl.DataFrame, offset: int, flagged: dict[tuple[int, int], tuple[str, str]]
) -> tuple[pl.DataFrame, dict[str, pl.Series]]:
    """Write the flagged cells' text into ``frame`` and return their reasons per column.

    Parameters
    ----------
    frame : polars.DataFrame
        Text columns ``c0, c1, …`` of a sheet, ``c0`` being sheet column ``offset`` (0-based);
        row ``i`` is sheet row ``i + 1``.
    offset : int
        Sheet column of ``c0``.
    flagged : dict
        ``(row index, sheet column) → (reason key, text)``. A cell outside the frame (calamine
        leaves out cells without a value) widens or lengthens it.

    Returns
    -------
    frame : polars.DataFrame
        Columns renumbered from the leftmost column (of the frame or of a flagged cell).
    flags : dict of str to polars.Series
        As :attr:`Sheet.flags`.
    """
    if not flagged:
        return frame, {}
    first = min(offset, *(c for _, c in flagged))
    width = max(offset + frame.width, *(c + 1 for _, c in flagged)) - first
    height = max(frame.height, *(r + 1 for r, _ in flagged))
    if first != offset or width != frame.width or height != frame.height:
        shift = offset - first
        empty = pl.Series([None] * height, dtype=pl.String)
        frame = pl.DataFrame(
            [
                (
                    frame[f"c{i - shift}"].extend(empty.head(height - frame.height))
                    if 0 <= i - shift < frame.width
                    else empty
                ).alias(f"c{i}")
                for i in range(width)
            ]
        )
    by_column: dict[int, list[tuple[int, str, str]]] = {}
    for (row, col), (reason, raw) in sorted(flagged.items()):
        by_column.setdefault(col - first, []).append((row, reason, raw))
    texts, flags = [], {}
    for col, entries in by_column.items():
        rows = [r for r, _, _ in entries]
        name = f"c{col}"
        texts.append(frame[name].scatter(rows, [raw for _, _, raw in entries]))
        flags[name] = pl.Series(name, [None] * height, dtype=pl.String).scatter(
            rows, [reason for _, reason, _ in entries]
        )
    return frame.with_columns(texts), flags
