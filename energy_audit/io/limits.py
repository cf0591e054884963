"""The limits of what a reader loads: a small file must not take a machine.

Readers turn every cell into text, so a file's cost is its cells, not its bytes, and formats
let a few bytes stand for very many cells:

- calamine (the engine of :func:`fastexcel.read_excel`) builds each sheet as a dense grid from
  the first to the last cell used: a 5 KB ``.xlsx`` holding ``A1`` and one cell at ``GJI200001``
  asks for 32 GB and aborts the process, no exception, no message; and a zip member may inflate
  a thousand-fold. :func:`check_workbook` reads the zip directory and streams each worksheet's
  XML once (bounded memory: one block at a time, cell references parsed with numpy).
- OpenDocument repeats rows and cells by attribute: :func:`check_ods`.
- Parquet encodes runs: 770 KB can hold 200 million rows. :func:`check_parquet`.

Each refuses with one message naming the file (and the sheet and farthest cell) before the
reader allocates. The bounds are far above real returns: a full Excel sheet of 1,048,576 rows ×
30 columns is 31 million cells, all of them used.
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from xml.etree import ElementTree

import numpy as np

from energy_audit.errors import UnusableInputError
from energy_audit.io import excel

MAX_SPARSE_CELLS: Final[int] = 10_000_000
"""Grid size [cells] up to which a sheet is loaded however few of its cells are used."""

MIN_DENSITY: Final[float] = 1 / 8
"""Least share of used cells in a larger grid (calamine holds 32 bytes per grid cell)."""

MAX_INFLATED_BYTES: Final[int] = 4 << 30
"""Most bytes all parts of a workbook may inflate to [bytes] (a full sheet is about 1.5 GB)."""

MAX_INFLATION: Final[float] = 200.0
"""Most a part larger than 64 MB may inflate relative to its compressed size (XML: 5-20×)."""

MAX_ODS_CELLS: Final[int] = 50_000_000
"""Most cells with a value an OpenDocument sheet may expand to [cells] (repeated cells count
each time: ``number-columns-repeated="16384"`` in 1.5 KB of XML is 16,384 values)."""

MAX_PARQUET_CELLS: Final[int] = 50_000_000
"""Cells [rows × columns] up to which a Parquet file is read whatever its size on disk."""

MAX_CELLS_PER_BYTE: Final[float] = 100.0
"""Most cells per byte of a larger Parquet file (real returns: about one cell per byte)."""

_BLOCK: Final[int] = 1 << 24
_REF: Final = b' r="'
_DIGIT_WIDTH: Final[int] = 7  # Excel rows go to 1,048,576


@dataclass(frozen=True)
class SheetExtent:
    """How far the cells of one worksheet reach.

    Attributes
    ----------
    name : str
        Sheet name as the workbook lists it.
    part : str
        Zip member holding the sheet's XML.
    max_row, max_col : int
        Largest 1-based row and column of any cell or row reference (0 for an empty sheet).
    cells : int
        Cell references in the sheet (cells written, empty ones included).
    interesting : bool
        The XML holds a formula or an error-typed cell (:func:`energy_audit.io.excel.
        is_interesting`): the reader then parses it for formulas without a result.
    """

    name: str
    part: str
    max_row: int
    max_col: int
    cells: int
    interesting: bool = False

    @property
    def grid_cells(self) -> int:
        """Cells of the dense grid a reader would build [cells]."""
        return self.max_row * self.max_col

    @property
    def farthest(self) -> str:
        """The A1-style reference of the grid's bottom-right corner."""
        return f"{column_letters(self.max_col)}{self.max_row}"


def column_letters(col: int) -> str:
    """Return the Excel letters of a 1-based column (1 → ``A``, 27 → ``AA``)."""
    letters = ""
    while col > 0:
        col, rem = divmod(col - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def _refs_in_block(buf: np.ndarray, limit: int) -> tuple[int, int, int]:
    """Max row, max column and count of ``r="…"`` references starting before ``limit``.

    A longer number (more letters) is larger, so only the longest references are parsed.
    """
    # The 4-byte pattern compared as one uint32 at each of the 4 alignments: 1 pass of memory.
    pattern = np.frombuffer(_REF, dtype="<u4")[0]
    found = []
    for offset in range(4):
        end = min(limit + len(_REF) - 1, buf.size - 3 - _DIGIT_WIDTH - len(_REF))
        words = (end - offset) // 4  # patterns that start before limit
        if words > 0:
            view = buf[offset : offset + 4 * words].view("<u4")
            found.append(np.flatnonzero(view == pattern) * 4 + offset)
    pos = np.concatenate(found) + len(_REF) if found else np.empty(0, dtype=np.int64)
    if pos.size == 0:
        return 0, 0, 0
    n_letters = np.zeros(pos.size, dtype=np.int64)
    still = np.ones(pos.size, dtype=bool)
    for k in range(3):
        x = buf[pos + k]
        still &= (x >= 65) & (x <= 90)
        n_letters += still
    n_digits = np.zeros(pos.size, dtype=np.int64)
    still[:] = True
    start = pos + n_letters
    for k in range(_DIGIT_WIDTH):
        x = buf[start + k]
        still &= (x >= 48) & (x <= 57)
        n_digits += still

    def value(at: np.ndarray, width: int, base: int, zero: int) -> int:
        out = np.zeros(at.size, dtype=np.int64)
        for k in range(width):
            out = out * base + (buf[at + k].astype(np.int64) - zero)
        return int(out.max(initial=0))

    longest = n_letters.max()
    col = value(pos[n_letters == longest], int(longest), 26, 64) if longest else 0
    widest = n_digits.max()
    row = value(start[n_digits == widest], int(widest), 10, 48) if widest else 0
    return row, col, int(np.count_nonzero(n_letters))


def _scan_sheet(archive: zipfile.ZipFile, member: str, name: str) -> SheetExtent:
    max_row = max_col = cells = 0
    interesting = False
    carry = b""
    with archive.open(member) as stream:
        while True:
            block = stream.read(_BLOCK)
            data = carry + block
            if not data:
                break
            # References starting in the last bytes are read with the next block.
            keep = 0 if not block else len(_REF) + 3 + _DIGIT_WIDTH + 1
            buf = np.frombuffer(data + b"\0" * (len(_REF) + 4 + _DIGIT_WIDTH), dtype=np.uint8)
            r, c, n = _refs_in_block(buf, len(data) - keep)
            interesting = interesting or excel.is_interesting(data)
            max_row, max_col, cells = max(max_row, r), max(max_col, c), cells + n
            carry = data[len(data) - keep :] if keep else b""
            if not block:
                break
    return SheetExtent(name, member, max_row, max_col, cells, interesting)


def check_workbook(path: str | Path) -> list[SheetExtent]:
    """Refuse an ``.xlsx``/``.xlsm`` whose sheets or parts would take far more than its size.

    Parameters
    ----------
    path : str or Path
        The workbook. A file that is not a zip package is left to the reader (which says so).

    Returns
    -------
    list of SheetExtent
        One per worksheet part, in the package's order.

    Raises
    ------
    UnusableInputError
        If the parts inflate beyond :data:`MAX_INFLATED_BYTES` or a part more than
        :data:`MAX_INFLATION`-fold, or a sheet's grid exceeds :data:`MAX_SPARSE_CELLS` with
        less than :data:`MIN_DENSITY` of it used; the message names the sheet and its
        farthest cell.
    """
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        return []
    with archive:
        infos = archive.infolist()
        total = sum(i.file_size for i in infos)
        if total > MAX_INFLATED_BYTES:
            raise UnusableInputError(
                f"{path.name}：工作簿解压后达 {total / 2**30:.1f} GB（上限 "
                f"{MAX_INFLATED_BYTES / 2**30:.0f} GB），不予读取：请检查文件是否损坏或被篡改",
                f"{path.name}: the workbook inflates to {total / 2**30:.1f} GB (limit "
                f"{MAX_INFLATED_BYTES / 2**30:.0f} GB); not read: the file may be damaged or "
                "crafted",
            )
        for info in infos:
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size > 64 << 20 and ratio > MAX_INFLATION:
                raise UnusableInputError(
                    f"{path.name}：部件 {info.filename} 压缩比达 {ratio:,.0f} 倍（上限 "
                    f"{MAX_INFLATION:.0f} 倍），不予读取：请检查文件是否损坏或被篡改",
                    f"{path.name}: part {info.filename} inflates {ratio:,.0f}-fold (limit "
                    f"{MAX_INFLATION:.0f}); not read: the file may be damaged or crafted",
                )
        try:
            return _check_sheets(path, archive, infos)
        # A damaged part: zipfile raises these (NotImplementedError for flags it does not know).
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
            raise UnusableInputError(
                f"{path.name}：无法作为 Excel 工作簿打开：文件已损坏（{exc}）",
                f"{path.name}: cannot be opened as an Excel workbook: the file is damaged ({exc})",
            ) from exc


def _check_sheets(
    path: Path, archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo]
) -> list[SheetExtent]:
    """Scan every worksheet part; refuse a sparse grid (see :func:`check_workbook`)."""
    names_in_zip = {info.filename for info in infos}
    try:
        parts, _ = excel.sheet_parts(archive)
    except ElementTree.ParseError:
        return []  # not a workbook calamine reads either: the reader says so
    extents = []
    for name, member in parts.items():
        if member not in names_in_zip:
            continue
        sheet = _scan_sheet(archive, member, name)
        grid = sheet.grid_cells
        if grid > MAX_SPARSE_CELLS and sheet.cells < MIN_DENSITY * grid:
            raise UnusableInputError(
                f"{path.name}（工作表 {sheet.name}）：单元格一直延伸到 {sheet.farthest}"
                f"（{sheet.max_row:,} 行 × {sheet.max_col:,} 列，{grid:,} 个单元格），"
                f"实际只写了 {sheet.cells:,} 个：请删除远处的单元格后另存再报",
                f"{path.name} (sheet {sheet.name}): cells reach {sheet.farthest} "
                f"({sheet.max_row:,} rows × {sheet.max_col:,} columns, {grid:,} cells) but "
                f"only {sheet.cells:,} are written: delete the far cells and save again",
            )
        extents.append(sheet)
    return extents


_TABLE_NS = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
_OFFICE_NS = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"


def _repeat(element: ElementTree.Element, what: str) -> int:
    raw = element.get(f"{{{_TABLE_NS}}}number-{what}-repeated", "1")
    return int(raw) if raw.isdigit() else 1


def check_ods(path: str | Path) -> int:
    """Refuse an OpenDocument spreadsheet whose repeated cells expand beyond a bound.

    A row or cell may say it repeats (``table:number-rows-repeated``,
    ``table:number-columns-repeated``): a 1.5 KB file can hold 1.6 billion values, which the
    reader would build. Empty repeated cells (how LibreOffice writes the unused rest of a
    sheet) cost nothing and are not counted.

    Parameters
    ----------
    path : str or Path
        The ``.ods`` file; one that is not a zip package is left to the reader.

    Returns
    -------
    int
        Cells with a value after expansion, over all sheets.

    Raises
    ------
    UnusableInputError
        If they exceed :data:`MAX_ODS_CELLS`.
    """
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        return 0
    total = 0
    with archive:
        try:
            stream = archive.open("content.xml")
        except KeyError:
            return 0
        with stream:
            row_cells, rows = 0, 1
            try:
                for event, element in ElementTree.iterparse(stream, events=("start", "end")):
                    tag = element.tag
                    if event == "start" and tag == f"{{{_TABLE_NS}}}table-row":
                        row_cells, rows = 0, _repeat(element, "rows")
                    elif event == "end" and tag == f"{{{_TABLE_NS}}}table-cell":
                        if element.get(f"{{{_OFFICE_NS}}}value-type") is not None or len(element):
                            row_cells += _repeat(element, "columns")
                        element.clear()
                    elif event == "end" and tag == f"{{{_TABLE_NS}}}table-row":
                        total += row_cells * rows
                        element.clear()
                        if total > MAX_ODS_CELLS:
                            raise UnusableInputError(
                                f"{path.name}：重复单元格展开后超过 {MAX_ODS_CELLS:,} 个"
                                "有值单元格，不予读取：请另存为 .xlsx 后再报",
                                f"{path.name}: repeated cells expand to more than "
                                f"{MAX_ODS_CELLS:,} cells with a value; not read: save it as "
                                ".xlsx and send it again",
                            )
            except ElementTree.ParseError:
                return total  # the reader reports a damaged file
    return total


def check_parquet(path: str | Path) -> tuple[int, int]:
    """Refuse a Parquet file that holds far more cells than its size suggests.

    Parameters
    ----------
    path : str or Path
        The file; one whose footer cannot be read is left to the reader (which says so).

    Returns
    -------
    rows, columns : int
        From the file's metadata (0, 0 if it cannot be read).

    Raises
    ------
    UnusableInputError
        If rows × columns exceed :data:`MAX_PARQUET_CELLS` and :data:`MAX_CELLS_PER_BYTE` per
        byte of the file.
    """
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        meta = pq.read_metadata(path)
    except Exception:  # pyarrow's error types vary; the reader gives the message
        return 0, 0
    rows, columns = meta.num_rows, meta.num_columns
    cells = rows * columns
    size = path.stat().st_size
    if cells > MAX_PARQUET_CELLS and cells > MAX_CELLS_PER_BYTE * size:
        raise UnusableInputError(
            f"{path.name}：{size / 2**20:,.1f} MB 的文件声称有 {rows:,} 行 × {columns:,} 列"
            f"（{cells:,} 个单元格，每字节 {cells / size:,.0f} 个），不予读取：请检查文件是否损坏"
            "或被篡改",
            f"{path.name}: a file of {size / 2**20:,.1f} MB claims {rows:,} rows × {columns:,} "
            f"columns ({cells:,} cells, {cells / size:,.0f} per byte); not read: the file may be "
            "damaged or crafted",
        )
    return rows, columns
