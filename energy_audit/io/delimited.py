r"""Delimited text files (CSV, TSV, TXT) → a grid of text cells with the line of each record.

This is the text layer under :mod:`energy_audit.io.readers`: it turns the bytes of a file into a
frame of String columns ``c0, c1, …`` (one row per record) and the 1-based line where each
record starts, or refuses the file with one :class:`~energy_audit.errors.UnusableInputError`
naming the file, the line and the column. It never guesses silently: what it decided (encoding,
separator, the real type of a misnamed file) is returned as notes.

Steps
-----
1. **Sniffing** (:func:`sniff_format`): a workbook (ZIP ``PK\x03\x04`` with ``xl/`` or an
   OpenDocument ``mimetype``; OLE2 ``D0 CF 11 E0`` as old ``.xls``) or a Parquet file (``PAR1``)
   is recognised by its first bytes whatever its name; PDF, gzip and other archives are refused.
2. **Encoding** (:func:`decode_to_utf8`): UTF-8 (with or without BOM), UTF-16 (with BOM, or
   without one when every other byte is NUL), GB18030 (as Chinese Excel saves CSV). A file
   that is not valid UTF-8 is classified line by line: lines valid in UTF-8, lines valid only in
   GB18030. A file holding both (a GB18030 header above UTF-8 rows) has each line read in its own
   encoding and a note naming the lines of the minority encoding. A line in neither encoding,
   or a UTF-8 line with a damaged byte (mostly valid UTF-8, not plausible GB18030 text), is
   refused naming the line and the byte. NUL bytes in a non-UTF-16 file are refused (not text).
3. **Separator** (:func:`detect_delimiter`): among ``,`` tab ``;`` ``|`` the one that gives the
   most of the first lines one common field count of at least 2; a separator other than the
   comma is noted.
4. **Records** (:func:`parse_records`), quotes as a spreadsheet program reads them (RFC 4180 as
   Excel): a quote opens a quoted field only at the start of a field; inside it ``""`` is a
   quote and line breaks belong to the cell; a quote inside an unquoted field is a character of
   the cell. A quoted field is *unbalanced* — refused, naming the line and column where the
   quote opened — when (a) it runs to the end of the file, (b) its closing quote is followed by
   text other than the separator, the line end or spaces, or (c) it runs over a whole line that
   by itself has as many fields as the file's records (it swallows a record). Refusing is what
   keeps "nothing lost": the lines after a stray quote cannot be told apart from cell text
   without guessing, and one message naming the line lets the sender fix the file in a minute.

Memory is bounded by a small multiple of the file size whatever its shape: a record wider than
:data:`MAX_FIELDS` (Excel's 16,384 columns) is refused naming its line before any per-field
object is made; well-formed files are parsed by polars straight from the bytes (fast path), the
others by a line tokenizer that writes canonical CSV for polars, chunk by chunk, and keeps the
record starts in a NumPy array (8 bytes per record). No cell size limit applies (Python's
``csv`` module, which stops at 131,072 characters, is not used).
"""

from __future__ import annotations

import codecs
import io
import re
import zipfile
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import polars as pl

from energy_audit.errors import UnusableInputError

MAX_FIELDS = 16_384
"""Most fields in one record: Excel's column limit (XFD). A wider record is refused."""

DELIMITERS: tuple[str, ...] = (",", "\t", ";", "|")
"""Separators considered, in order of preference when two fit the file equally well."""

DELIMITER_NAMES: dict[str, tuple[str, str]] = {
    ",": ("逗号", "comma"),
    "\t": ("制表符", "tab"),
    ";": ("分号", "semicolon"),
    "|": ("竖线", "vertical bar"),
}

HEAD_BYTES = 65_536
"""Bytes from the top of the file used to detect the separator and the record width."""

HEAD_LINES = 100
"""Lines from the top of the file used to detect the separator and the record width."""

CHUNK_BYTES = 8 << 20
"""Block size [bytes] of the chunked decoding and tokenizing (bounds temporary memory)."""

_QUOTE = 0x22
_SPACES = b" \t"

# Characters a line of Chinese text plausibly holds besides ASCII: CJK ideographs and
# extension A, CJK and full-width punctuation, general punctuation (— … “ ”), letter-like
# symbols, number forms (Ⅰ Ⅱ), enclosed numbers (①), ·, ×, ÷, °, ±, №, ￥. A line that decodes as
# GB18030 only into other characters is taken for damaged bytes, not for GB18030 text.
_PLAUSIBLE_GB = re.compile(
    "[\x00-\x7f\u00b0\u00b1\u00b7\u00d7\u00f7\u2010-\u206f\u2100-\u218f\u2460-\u24ff"
    "\u2500-\u257f\u25a0-\u25ff\u2605\u2606\u3000-\u303f\u3200-\u32ff\u3400-\u4dbf"
    "\u4e00-\u9fff\ufe30-\ufe4f\uff00-\uffef]*"
)


class LoadNote(NamedTuple):
    """What the text layer decided that a person should know (a reader note)."""

    kind: str  # "encoding" or "delimiter"
    detail_zh: str
    detail_en: str


@dataclass(frozen=True)
class DelimitedFile:
    """A delimited text file read into cells.

    Attributes
    ----------
    frame : polars.DataFrame
        String columns ``c0 … c{n-1}``, one row per record (a blank line is a row of nulls).
    row_numbers : numpy.ndarray
        Int64, the 1-based line where each record starts (a record with a line break inside a
        quoted cell spans several lines).
    encoding : str
        ``utf-8``, ``utf-8 with BOM``, ``utf-16``, ``gb18030`` or a description of a mixed file.
    delimiter : str
        The separator used.
    notes : tuple of LoadNote
        Encoding, separator other than the comma.
    """

    frame: pl.DataFrame
    row_numbers: np.ndarray
    encoding: str
    delimiter: str
    notes: tuple[LoadNote, ...]


# ----------------------------------------------------------------------------------- sniffing


def sniff_format(path: Path) -> str:
    """Tell what a file holds, from its first bytes: ``workbook``, ``ods``, ``parquet``, ``text``.

    Parameters
    ----------
    path : Path
        The file (any name).

    Returns
    -------
    str
        ``workbook`` (xlsx/xlsm in a ZIP container, or an OLE2 file as old .xls), ``ods``
        (an OpenDocument package), ``parquet`` or ``text`` (anything else: the text layer
        decides).

    Raises
    ------
    UnusableInputError
        The file is a PDF, a compressed archive or a ZIP archive that is not a workbook.
    """
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise UnusableInputError(
            f"{path.name}：无法读取文件：{exc}", f"{path.name}: cannot read: {exc}"
        ) from exc
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return "workbook"  # a damaged workbook: the workbook reader says what is wrong
        if "mimetype" in names:
            return "ods"  # OpenDocument: its own bounds apply before calamine reads it
        if any(n.startswith("xl/") for n in names):
            return "workbook"
        raise UnusableInputError(
            f"{path.name}：这是一个 ZIP 压缩包，不是 Excel 工作簿或 CSV 文件："
            "请解压后提交其中的表格",
            f"{path.name}: this is a ZIP archive, not an Excel workbook or a CSV file: "
            "extract it and send the table inside",
        )
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "workbook"
    if head.startswith(b"PAR1"):
        return "parquet"
    for magic, zh, en in (
        (b"%PDF", "PDF 文档", "a PDF document"),
        (b"\x1f\x8b", "gzip 压缩文件", "a gzip-compressed file"),
        (b"7z\xbc\xaf", "7z 压缩包", "a 7z archive"),
        (b"Rar!", "RAR 压缩包", "a RAR archive"),
    ):
        if head.startswith(magic):
            raise UnusableInputError(
                f"{path.name}：这是{zh}，不是表格文件：请提交 Excel 工作簿、CSV 或 Parquet 文件",
                f"{path.name}: this is {en}, not a table: send an Excel workbook, CSV or Parquet",
            )
    return "text"


def looks_like_text(path: Path) -> bool:
    """Tell whether ``path`` starts as a delimited table (a CSV saved under another name).

    The first 64 KB must decode as UTF-8, UTF-16 (BOM) or GB18030 and have lines of at least two
    fields with one of :data:`DELIMITERS`; other text is not taken for a table.
    """
    try:
        with path.open("rb") as fh:
            head = fh.read(HEAD_BYTES)
    except OSError:
        return False
    if not head or sniff_format(path) != "text":
        return False
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return True  # UTF-16 with BOM is text; the text layer checks the rest
    cut = max(head.rfind(b"\n"), head.rfind(b"\r")) + 1 or len(head)
    try:
        utf8, _, _ = decode_to_utf8(path.name, head[:cut])
    except UnusableInputError:
        return False
    return detect_delimiter(_head_lines(utf8))[1] >= 2


# ----------------------------------------------------------------------------------- encoding


def _line_of(data: bytes, offset: int) -> tuple[int, int]:
    """1-based line and 1-based byte within that line of byte ``offset`` (any line ending)."""
    start = max(data.rfind(b"\n", 0, offset), data.rfind(b"\r", 0, offset)) + 1
    line = data.count(b"\n", 0, start) + data.count(b"\r", 0, start)
    line -= data.count(b"\r\n", 0, start)
    return line + 1, offset - start + 1


def _field_of(line: bytes, byte: int) -> int:
    """1-based field holding byte ``byte`` (1-based) of ``line``, by the likeliest separator."""
    prefix = line[: byte - 1]
    sep = max((b",", b"\t", b";"), key=line.count)
    return prefix.count(sep) + 1


def _damaged(name: str, line_no: int, line: bytes, byte: int, expected: str) -> UnusableInputError:
    col = _field_of(line, byte)
    return UnusableInputError(
        f"{name}：第 {line_no} 行第 {col} 列（该行第 {byte} 个字节）不是有效的 {expected} 文本，"
        "文件可能已损坏：请从原表格重新另存为 CSV UTF-8 或 Excel 工作簿",
        f"{name}, line {line_no}, column {col} (byte {byte} of the line): not valid {expected} "
        "text; the file may be damaged: save it again as CSV UTF-8 or as an Excel workbook",
    )


def _ranges(lines: list[int], most: int = 8) -> str:
    """``1, 3-5, 9`` (at most ``most`` ranges, then ``…``)."""
    spans: list[list[int]] = []
    for n in lines:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans[:most])
    return text + (", …" if len(spans) > most else "")


def _mostly_utf8(line: bytes) -> bool:
    """Tell whether ``line`` is UTF-8 with a few damaged bytes rather than another encoding."""
    text = line.decode("utf-8", errors="replace")
    damaged = len(re.findall("\ufffd+", text))  # one damaged byte spoils up to 3 characters
    cjk = sum(1 for ch in text if "\u2e80" <= ch < "\ufffd")  # what GB18030 bytes rarely make
    return cjk >= 2 * damaged


def _is_utf8(data: bytes) -> bool:
    """Tell whether ``data`` is valid UTF-8, checked in blocks (no full-size copy)."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        for start in range(0, len(data), CHUNK_BYTES):
            decoder.decode(data[start : start + CHUNK_BYTES], final=False)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _utf16_without_bom(head: bytes) -> str | None:
    """Return ``utf-16-le``/``utf-16-be`` if the head reads as UTF-16 without BOM, else None."""
    if len(head) < 4:
        return None
    even, odd = head[0::2].count(0), head[1::2].count(0)
    # ASCII characters (digits, separators) have a NUL byte in UTF-16; UTF-8 and GB18030 text
    # has none. NULs on one side only, in at least a fifth of the characters: UTF-16.
    if odd >= 0.2 * (len(head) // 2) and even <= odd / 10:
        return "utf-16-le"
    if even >= 0.2 * (len(head) // 2) and odd <= even / 10:
        return "utf-16-be"
    return None


def decode_to_utf8(name: str, data: bytes) -> tuple[bytes, str, list[LoadNote]]:
    """Return the file's text as UTF-8 bytes (no BOM), the encoding found, and notes.

    Parameters
    ----------
    name : str
        File name for messages.
    data : bytes
        The whole file.

    Returns
    -------
    tuple of (bytes, str, list of LoadNote)
        UTF-8 text, the encoding label (``utf-8``, ``utf-8 with BOM``, ``utf-16``,
        ``gb18030`` or ``utf-8 + gb18030: …`` naming the minority lines), and notes.

    Raises
    ------
    UnusableInputError
        Bytes that are text in no supported encoding (naming the line and the byte), NUL bytes.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        body, label = data[3:], "utf-8 with BOM"
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")) or _utf16_without_bom(data[:4096]):
        encoding = "utf-16" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else None
        encoding = encoding or _utf16_without_bom(data[:4096]) or "utf-16"
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as exc:
            prefix = data[: exc.start].decode(encoding, errors="replace")
            line = prefix.count("\n") + 1
            raise UnusableInputError(
                f"{name}：第 {line} 行不是有效的 UTF-16 文本（文件第 {exc.start + 1} 个字节），"
                "文件可能已损坏或被截断：请重新另存为 CSV UTF-8 或 Excel 工作簿",
                f"{name}, line {line}: not valid UTF-16 text (byte {exc.start + 1} of the file); "
                "the file may be damaged or truncated: save it again as CSV UTF-8 or a workbook",
            ) from exc
        if "\x00" in text:
            line = text[: text.index("\x00")].count("\n") + 1
            raise _not_text(name, line)
        return text.lstrip("\ufeff").encode("utf-8"), "utf-16", []
    else:
        body, label = data, "utf-8"
    if _is_utf8(body):
        if b"\x00" in body:
            raise _not_text(name, _line_of(body, body.index(b"\x00"))[0])
        return body, label, []
    if label == "utf-8 with BOM":
        label = "utf-8"  # a BOM and then GB18030 lines: classified as any file below
    return _classify_lines(name, body)


def _not_text(name: str, line: int) -> UnusableInputError:
    return UnusableInputError(
        f"{name}：第 {line} 行含有 NUL 字节，这不是文本文件：请提交 Excel 工作簿或 CSV 文件",
        f"{name}, line {line}: holds NUL bytes; this is not a text file: send a workbook or CSV",
    )


def _lines(data: bytes) -> Iterator[bytes]:
    """Yield the physical lines of ``data`` with their endings (LF, CRLF or CR), in blocks."""
    pos, size = 0, len(data)
    while pos < size:
        end = data.find(b"\n", pos + CHUNK_BYTES)
        end = size if end < 0 else end + 1
        yield from data[pos:end].splitlines(keepends=True)
        pos = end


def _classify_lines(name: str, data: bytes) -> tuple[bytes, str, list[LoadNote]]:
    """Decode a file that is not valid UTF-8, line by line (GB18030, or mixed with UTF-8)."""
    if b"\x00" in data:
        raise _not_text(name, _line_of(data, data.index(b"\x00"))[0])
    utf8_lines: list[int] = []
    gb_lines: list[int] = []
    out: list[bytes] = []
    for line_no, line in enumerate(_lines(data), 1):
        if line.isascii():
            out.append(line)
            continue
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as exc:
            utf8_error = exc
        else:
            utf8_lines.append(line_no)
            out.append(line)
            continue
        try:
            text = line.decode("gb18030")
        except UnicodeDecodeError as exc:
            expected = "UTF-8" if _mostly_utf8(line) else "GB18030"
            start = utf8_error.start if expected == "UTF-8" else exc.start
            raise _damaged(name, line_no, line, start + 1, expected) from exc
        if _mostly_utf8(line) or not _PLAUSIBLE_GB.fullmatch(text):
            raise _damaged(name, line_no, line, utf8_error.start + 1, "UTF-8")
        gb_lines.append(line_no)
        out.append(text.encode("utf-8"))
    utf8 = b"".join(out)
    del out
    if not utf8_lines:
        return utf8, "gb18030", []
    mixed = "utf-8 + gb18030"
    if len(gb_lines) <= len(utf8_lines):
        minority, other, rest = gb_lines, "GB18030", "UTF-8"
    else:
        minority, other, rest = utf8_lines, "UTF-8", "GB18030"
    note = LoadNote(
        "encoding",
        f"编码混用：第 {_ranges(minority)} 行（共 {len(minority)} 行）是 {other}，"
        f"其余各行是 {rest}；每行按其自身的编码读取",
        f"mixed encodings: line(s) {_ranges(minority)} ({len(minority)} line(s)) are {other}, "
        f"the other lines {rest}; each line was read in its own encoding",
    )
    return utf8, f"{mixed}: {other.lower()} {_ranges(minority, 3)}", [note]


# ---------------------------------------------------------------------------------- separator


def _count_fields(body: bytes, delim: bytes) -> int | None:
    """Fields of one line read alone (Excel quote rule); None if a quote stays open."""
    if b'"' not in body:
        return body.count(delim) + 1
    n, pos, fields = len(body), 0, 0
    while True:
        fields += 1
        if pos < n and body[pos] == _QUOTE:  # a quoted field: find its closing quote
            pos += 1
            while True:
                j = body.find(b'"', pos)
                if j < 0:
                    return None
                if j + 1 < n and body[j + 1] == _QUOTE:
                    pos = j + 2
                    continue
                pos = j + 1
                break
        k = body.find(delim, pos)
        if k < 0:
            return fields
        pos = k + 1


def _head_lines(data: bytes) -> list[bytes]:
    """Return the first complete lines of ``data`` (at most :data:`HEAD_LINES`, within 64 KB)."""
    head = data[:HEAD_BYTES]
    if len(data) > HEAD_BYTES:
        cut = max(head.rfind(b"\n"), head.rfind(b"\r"))
        head = head[: cut + 1] if cut >= 0 else b""
    return [_body(line) for line in head.splitlines(keepends=True)[:HEAD_LINES]]


def _body(line: bytes) -> bytes:
    if line.endswith(b"\r\n"):
        return line[:-2]
    if line.endswith((b"\n", b"\r")):
        return line[:-1]
    return line


def detect_delimiter(head: list[bytes]) -> tuple[str, int]:
    """Detect the separator of a file and the field count of its records, from its first lines.

    Parameters
    ----------
    head : list of bytes
        The first lines (UTF-8, without line endings).

    Returns
    -------
    tuple of (str, int)
        The separator among :data:`DELIMITERS` giving the most lines one common field count of at
        least 2 (ties: the earlier in :data:`DELIMITERS`; none fits: ``,``), and that count
        (0 if none).
    """
    best, best_key = ",", (0, 0)
    for delim in DELIMITERS:
        counts: dict[int, int] = {}
        for body in head:
            n = _count_fields(body, delim.encode())
            if n is not None and n >= 2:
                counts[n] = counts.get(n, 0) + 1
        if not counts:
            continue
        width, lines = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
        if (lines, width) > best_key:
            best, best_key = delim, (lines, width)
    return best, best_key[1]


# ------------------------------------------------------------------------------------ records


def _too_wide(name: str, line: int, fields: int | None = None) -> UnusableInputError:
    """Refuse a record wider than :data:`MAX_FIELDS` (``fields``: its count, None: not counted)."""
    zh = f" {fields:,} 个" if fields else f"超过 {MAX_FIELDS:,} 个"
    en = f"{fields:,}" if fields else f"more than {MAX_FIELDS:,}"
    return UnusableInputError(
        f"{name}：第 {line} 行有{zh}字段，超过 Excel 的列数上限 {MAX_FIELDS:,}："
        "这不是一张统计表（分隔符是否有误？），文件未读入",
        f"{name}, line {line}: {en} fields, beyond Excel's limit of {MAX_FIELDS:,} columns: "
        "this is not a table (wrong separator?); the file was not read",
    )


def _unbalanced(name: str, line: int, column: int, why_zh: str, why_en: str) -> UnusableInputError:
    return UnusableInputError(
        f"{name}：第 {line} 行第 {column} 列的引号没有正确闭合（{why_zh}）："
        '单元格内的引号应写成两个引号（""），或用 Excel 打开后另存为；'
        "文件未读入，以免后面的行被并入这个单元格",
        f"{name}, line {line}, column {column}: unbalanced quote ({why_en}): write a quote inside "
        'a cell as two quotes ("") or save the file again from Excel; the file was not read, so '
        "that the lines after it are not swallowed into this cell",
    )


class _Tokenizer:
    """Excel-rule CSV tokenizer over physical lines; writes canonical CSV records.

    A line without quotes outside a quoted field is a record as it is (written unchanged).
    Others are split into fields and written back quoted where needed (RFC 4180), so that
    polars parses the output into exactly these records.
    """

    def __init__(self, name: str, delim: bytes, width: int) -> None:
        self.name = name
        self.delim = delim
        self.width = width  # field count of the file's records (from the head), 0 if unknown
        self.fields: list[bytes] = []
        self.piece: list[bytes] = []
        self.in_quote = False
        self.multiline = False
        self.quote_at = (0, 0)  # line, column where the open quote opened
        self.max_fields = 0

    def feed(self, line_no: int, line: bytes) -> bytes | None:
        """Take one physical line; return a finished canonical record (no line end) or None."""
        body = _body(line)
        if not self.in_quote:
            if b'"' not in body:
                n = body.count(self.delim) + 1
                if n > MAX_FIELDS:
                    raise _too_wide(self.name, line_no, n)
                self.max_fields = max(self.max_fields, n)
                return body
            self.fields = []
        return self._scan(line_no, body, line[len(body) :])

    def _scan(self, line_no: int, body: bytes, ending: bytes) -> bytes | None:
        delim, d, n = self.delim, self.delim[0], len(body)
        pos = 0
        while True:
            if self.in_quote:
                j = body.find(b'"', pos)
                if j < 0:  # the line break belongs to the cell
                    if pos == 0 and self.width >= 3 and body.count(delim) + 1 >= self.width:
                        line, col = self.quote_at
                        raise _unbalanced(
                            self.name,
                            line,
                            col,
                            f"它吞并了第 {line_no} 行，"
                            f"而该行本身是一条有 {self.width} 个字段的记录",
                            f"it swallows line {line_no}, itself a record of {self.width} fields",
                        )
                    self.piece += (body[pos:], ending)
                    self.multiline = True
                    return None
                if j + 1 < n and body[j + 1] == _QUOTE:  # "" is a quote
                    self.piece.append(body[pos : j + 1])
                    pos = j + 2
                    continue
                self.piece.append(body[pos:j])
                self.in_quote = False
                pos = j + 1
                if pos < n and body[pos] != d:  # text after the closing quote
                    k = body.find(delim, pos)
                    tail = body[pos:] if k < 0 else body[pos:k]
                    if tail.strip(_SPACES) or self.multiline:
                        line, col = self.quote_at
                        where = f"第 {line_no} 行" if line_no != line else "同一行"
                        raise _unbalanced(
                            self.name,
                            line,
                            col,
                            f"{where}的闭合引号后紧跟文字 {tail[:20].decode(errors='replace')!r}",
                            f"the closing quote on line {line_no} is followed by "
                            f"{tail[:20].decode(errors='replace')!r}",
                        )
                    self.piece.append(tail)  # spaces after the closing quote, as Excel keeps
                    pos = n if k < 0 else k
                self.fields.append(b"".join(self.piece))
                self.piece, self.multiline = [], False
                if pos >= n:
                    return self._record(line_no)
                pos += 1  # the separator
                if pos == n:
                    self.fields.append(b"")
                    return self._record(line_no)
                continue
            if len(self.fields) >= MAX_FIELDS:
                raise _too_wide(self.name, self.quote_at[0] if self.multiline else line_no)
            if body[pos] == _QUOTE:  # a quote at the start of a field opens a quoted field
                self.in_quote = True
                self.quote_at = (line_no, len(self.fields) + 1)
                pos += 1
                continue
            k = body.find(delim, pos)
            if k < 0:
                self.fields.append(body[pos:])
                return self._record(line_no)
            self.fields.append(body[pos:k])
            pos = k + 1
            if pos == n:
                self.fields.append(b"")
                return self._record(line_no)

    def _record(self, line_no: int) -> bytes:
        if len(self.fields) > MAX_FIELDS:
            raise _too_wide(self.name, line_no, len(self.fields))
        self.max_fields = max(self.max_fields, len(self.fields))
        special = (b'"', self.delim, b"\n", b"\r")
        out = []
        for f in self.fields:
            if any(s in f for s in special):
                f = b'"' + f.replace(b'"', b'""') + b'"'
            out.append(f)
        self.fields = []
        return self.delim.join(out)

    def finish(self) -> None:
        """Refuse a quoted field still open at the end of the file."""
        if self.in_quote:
            line, col = self.quote_at
            raise _unbalanced(
                self.name,
                line,
                col,
                "引号一直到文件末尾都没有闭合",
                "it runs to the end of the file",
            )


def _read_grid(data: bytes | io.BytesIO, delimiter: str, width: int) -> pl.DataFrame:
    return pl.read_csv(
        data,
        has_header=False,
        separator=delimiter,
        schema={f"c{i}": pl.String for i in range(width)},
        missing_columns="insert",
    )


def _line_count(data: bytes) -> int:
    return data.count(b"\n") + (0 if not data or data.endswith(b"\n") else 1)


def _fast(data: bytes, delimiter: str, head: list[bytes]) -> pl.DataFrame | None:
    """Parse with polars when every record is one line (no quote spans a line break); else None.

    polars refuses a quote inside an unquoted field and text after a closing quote, and a
    line wider than the head; a quoted line break makes fewer rows than lines. Each of these
    sends the file to the tokenizer, so what this returns is what the tokenizer would return.
    """
    if not head or data.count(b"\r") != data.count(b"\r\n"):
        return None
    counts = [_count_fields(b, delimiter.encode()) for b in head]
    if any(c is None for c in counts):  # a quoted cell spans lines
        return None
    width = max(c for c in counts if c is not None)
    if width > MAX_FIELDS:
        return None
    try:
        frame = _read_grid(data, delimiter, width)
    except pl.exceptions.PolarsError:
        return None
    return frame if frame.height == _line_count(data) else None


def parse_records(
    name: str, data: bytes, delimiter: str, width: int
) -> tuple[pl.DataFrame, np.ndarray]:
    """Split UTF-8 delimited text into records: String columns, with the line where each starts.

    Parameters
    ----------
    name : str
        File name for messages.
    data : bytes
        UTF-8 text without BOM.
    delimiter : str
        One of :data:`DELIMITERS`.
    width : int
        Field count of the file's records (from :func:`detect_delimiter`; 0 if unknown): a line
        swallowed by a quoted field that has this many fields is a sign of a stray quote.

    Returns
    -------
    tuple of (polars.DataFrame, numpy.ndarray)
        Columns ``c0 …`` (String), and the 1-based start line of each record (Int64).

    Raises
    ------
    UnusableInputError
        An unbalanced quote (line and column where it opened), or a record wider than
        :data:`MAX_FIELDS` (its line).
    """
    head = _head_lines(data)
    fast = _fast(data, delimiter, head)
    if fast is not None:
        return _without_empty_tail(fast), np.arange(1, fast.height + 1, dtype=np.int64)
    tokenizer = _Tokenizer(name, delimiter.encode(), width)
    starts = array("q")
    out: list[bytes] = []
    record_start = 0
    for line_no, line in enumerate(_lines(data), 1):
        if not tokenizer.in_quote:
            record_start = line_no
        record = tokenizer.feed(line_no, line)
        if record is not None:
            starts.append(record_start)
            out += (record, b"\n")
    tokenizer.finish()
    if not starts:
        return pl.DataFrame(), np.zeros(0, dtype=np.int64)
    canonical = b"".join(out)
    del out
    frame = _read_grid(canonical, delimiter, tokenizer.max_fields)
    rows = np.frombuffer(starts, dtype=np.int64).copy()
    if frame.height != len(rows):  # canonical CSV parses into the tokenizer's records
        raise AssertionError(f"{name}: {frame.height} rows parsed from {len(rows)} records")
    return _without_empty_tail(frame), rows


def _without_empty_tail(frame: pl.DataFrame) -> pl.DataFrame:
    """Drop the trailing columns in which every cell is null (Excel's ``,,,,`` tails).

    They hold nothing, so nothing is lost; a wide empty tail would cost memory per column in
    every later step.
    """
    if frame.width <= 1:
        return frame
    nulls = frame.null_count().row(0)
    last = max((i for i, n in enumerate(nulls) if n < frame.height), default=0)
    return frame.select(frame.columns[: last + 1]) if last + 1 < frame.width else frame


# ------------------------------------------------------------------------------------- reading


def read_delimited(path: Path) -> DelimitedFile:
    """Read a delimited text file into cells: encoding, separator and records detected.

    Parameters
    ----------
    path : Path
        A ``.csv``, ``.tsv`` or ``.txt`` file (or any file :func:`sniff_format` calls text).

    Returns
    -------
    DelimitedFile
        The cells, the start line of each record, the encoding, the separator and notes.

    Raises
    ------
    UnusableInputError
        The file cannot be read, is not text, is text in no supported encoding, holds an
        unbalanced quote or a record wider than :data:`MAX_FIELDS`. The message names the file,
        the line and, where there is one, the column.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UnusableInputError(
            f"{path.name}：无法读取文件：{exc}", f"{path.name}: cannot read: {exc}"
        ) from exc
    data, encoding, notes = decode_to_utf8(path.name, raw)
    del raw
    delimiter, width = detect_delimiter(_head_lines(data))
    if delimiter != ",":
        zh, en = DELIMITER_NAMES[delimiter]
        notes.append(
            LoadNote(
                "delimiter",
                f"字段以{zh}（{delimiter!r}）分隔（自动识别）",
                f"fields separated by {en} ({delimiter!r}), detected",
            )
        )
    frame, rows = parse_records(path.name, data, delimiter, width)
    return DelimitedFile(frame, rows, encoding, delimiter, tuple(notes))
