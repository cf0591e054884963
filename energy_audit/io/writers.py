"""Writers: every workbook and CSV file energy_audit publishes goes through this module.

Workbooks carry headers in the reader's language (Chinese by default: the first alias of a
contract column with its unit, or the ``header`` domain of the glossary), the values of coded
columns as glossary terms (``severity`` ``error`` → 错误, ``sector`` ``hospital`` → 医疗卫生机构),
two decimals for measured values, a frozen header row and an optional title row, so a person can
open them in Excel as they would a form from the office. CSV files carry the same headers and
terms. Parquet files keep the canonical column names, codes and dtypes: they are what programs
read back (callers write them with polars directly).

Text is never a formula. Workbooks are opened with ``strings_to_formulas``, ``strings_to_urls``
and ``strings_to_numbers`` off, and every text cell, header and title that a spreadsheet would
evaluate (starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return) is written with a
leading ``'``, as OWASP recommends against CSV / formula injection [1]_. The one expression that
does it, :func:`neutralized`, serves workbooks and CSV alike. Numbers stay numbers: only text
columns are touched.

References
----------
.. [1] OWASP, "CSV Injection", https://owasp.org/www-community/attacks/CSV_Injection
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final, TypeVar

import polars as pl

from energy_audit import contract, glossary
from energy_audit.errors import Lang, UnusableInputError

__all__ = [
    "FORMULA_TRIGGERS",
    "chinese_header",
    "header",
    "neutralize_text",
    "neutralized",
    "output_folder",
    "present",
    "safe_text",
    "write_csv",
    "write_excel",
]

FORMULA_TRIGGERS: Final[str] = "=+-@\t\r"
"""First characters that make a spreadsheet evaluate a text (OWASP): ``= + - @``, tab, CR."""

_TRIGGER_PATTERN: Final = r"^([=+\-@\t\r])"
_TEXT_DTYPES: Final = (pl.String, pl.Categorical, pl.Enum)
#: Glossary domains that name a column whose values are codes. ``header`` is a domain of column
#: names, not of values: a ``header`` column (the reader's notes) holds a file's own header text.
_NOT_VALUE_DOMAINS: Final = frozenset({"header"})

FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)


def neutralized(expr: pl.Expr) -> pl.Expr:
    """Return text a spreadsheet will not evaluate: a leading ``'`` before a formula trigger.

    Parameters
    ----------
    expr : polars.Expr
        ``String`` values.

    Returns
    -------
    polars.Expr
        ``String``: a value starting with one of :data:`FORMULA_TRIGGERS` (``=``, ``+``, ``-``,
        ``@``, tab, carriage return) gets a leading ``'`` (``=1+1`` → ``'=1+1``); other values
        and nulls are unchanged.

    Examples
    --------
    >>> import polars as pl
    >>> pl.select(neutralized(pl.lit("=1+1"))).item()
    "'=1+1"
    """
    return expr.cast(pl.String).str.replace(_TRIGGER_PATTERN, "'${1}")


def neutralize_text(frame: FrameT) -> FrameT:
    """Apply :func:`neutralized` to every text column of a frame (numbers are left alone).

    Parameters
    ----------
    frame : polars.DataFrame or polars.LazyFrame
        Any frame; ``String``, ``Categorical`` and ``Enum`` columns are the text columns.

    Returns
    -------
    polars.DataFrame or polars.LazyFrame
        The same kind of frame, text columns as ``String`` with formula-like values escaped.
    """
    schema = frame.collect_schema()
    text = [c for c, t in schema.items() if isinstance(t, _TEXT_DTYPES)]
    return frame.with_columns(neutralized(pl.col(c)).alias(c) for c in text)


def safe_text(text: str) -> str:
    """Return one text (a title, a header) as :func:`neutralized` writes it."""
    return str(pl.select(neutralized(pl.lit(text, pl.String))).item())


@functools.cache
def _header_index() -> dict[str, str]:
    index = dict(glossary.terms("header", "zh"))
    # The indicators table first: its headers carry their units in Chinese.
    for name in ("indicators", *contract.TABLE_NAMES):
        for col in contract.table(name).columns:
            index.setdefault(col.name, contract.header_zh(col))
    return index


def chinese_header(column: str) -> str:
    """Return the Chinese header the library writes for a canonical column.

    Parameters
    ----------
    column : str
        Canonical column name (e.g. ``electricity_kwh``).

    Returns
    -------
    str
        The glossary's ``header`` term when it has one (``source_row`` → 行号), else the
        contract's first alias with its unit in Chinese (``电(千瓦时)``); the name itself if
        neither knows the column.
    """
    return _header_index().get(column, column)


def header(column: str, lang: Lang = "zh") -> str:
    """Return the header written for a canonical column in ``lang``.

    Parameters
    ----------
    column : str
        Canonical column name.
    lang : {"zh", "en"}, default "zh"
        ``zh``: :func:`chinese_header`; ``en``: the glossary's English ``header`` term where
        there is one (``source_row`` → ``row``), else the canonical name (the English term of a
        contract column is its name, units included: ``electricity_kwh``).

    Returns
    -------
    str
        The header.
    """
    if lang == "zh":
        return chinese_header(column)
    return glossary.terms("header", "en").get(column, column)


def present(
    frame: pl.DataFrame,
    *,
    lang: Lang = "zh",
    translate_headers: bool = True,
    translate_values: bool = True,
    value_domains: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """Return a frame as the writers show it to people: terms, headers, no formulas.

    Parameters
    ----------
    frame : polars.DataFrame
        Canonical columns (or any columns: unknown names and codes are kept as they are).
    lang : {"zh", "en"}, default "zh"
        Language of headers and terms.
    translate_headers : bool, default True
        Rename columns to :func:`header` in ``lang`` (kept canonical when two columns would get
        the same header).
    translate_values : bool, default True
        Replace the codes of a text column named after a glossary domain (``category``,
        ``severity``, ``sector``, ``status``, ``institution_type``, ``admin_level``…; see
        :func:`energy_audit.glossary.domains`) by their term in ``lang``; unknown values kept.
    value_domains : Mapping of str to str, optional
        More coded columns: column → glossary domain (e.g. ``{"kind": "note_kind"}`` for the
        reader's notes, ``{"change": "change_kind"}`` for directory changes).

    Returns
    -------
    polars.DataFrame
        A new frame: same rows and dtypes but text columns (``String``), every text value and
        header neutralised (:func:`neutralized`). A struct column (a finding's ``evidence``)
        is written as JSON text, a list of text joined by ``、``. The input is not changed.
    """
    out = frame.with_columns(
        pl.col(c).struct.json_encode()
        if isinstance(t, pl.Struct)
        else pl.col(c).cast(pl.List(pl.String)).list.join("、")
        for c, t in frame.schema.items()
        if isinstance(t, (pl.Struct, pl.List))
    )
    if translate_values:
        coded = {d: d for d in glossary.domains() if d not in _NOT_VALUE_DOMAINS}
        coded.update(value_domains or {})
        out = out.with_columns(
            glossary.translate(pl.col(c), coded[c], lang).alias(c)
            for c, t in out.schema.items()
            if c in coded and isinstance(t, _TEXT_DTYPES)
        )
    names = {c: header(c, lang) if translate_headers else c for c in out.columns}
    if len(set(names.values())) != len(names):
        names = {c: c for c in out.columns}
    safe = {c: safe_text(h) for c, h in names.items()}
    if len(set(safe.values())) == len(safe):
        out = out.rename(safe)
    return neutralize_text(out)


def write_excel(
    sheets: Mapping[str, pl.DataFrame],
    path: str | Path,
    *,
    title: str | None = None,
    lang: Lang = "zh",
    translate_headers: bool = True,
    translate_values: bool = True,
    value_domains: Mapping[str, str] | None = None,
    decimals: int = 2,
) -> Path:
    """Write frames as sheets of one workbook, text as text (never a formula).

    Parameters
    ----------
    sheets : Mapping of str to polars.DataFrame
        Sheet name (at most 31 characters) → frame, in order.
    path : str or Path
        The ``.xlsx`` file to write; its folder is created.
    title : str, optional
        Title written in row 1 above the header (row 3), as offices write their forms.
    lang : {"zh", "en"}, default "zh"
        Language of headers and coded values (see :func:`present`).
    translate_headers : bool, default True
        Write :func:`header` of each column instead of the canonical name.
    translate_values : bool, default True
        Write the glossary term of coded values (``error`` → 错误).
    value_domains : Mapping of str to str, optional
        Coded columns not named after their glossary domain (see :func:`present`).
    decimals : int, default 2
        Decimals shown for floating-point columns (the stored value keeps full precision).

    Returns
    -------
    pathlib.Path
        The path written. The bytes depend only on the arguments (fixed document properties).

    Notes
    -----
    Every text cell, header and the title go through :func:`neutralized`; numbers, booleans and
    dates are written as such.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "#,##0." + "0" * decimals if decimals else "#,##0"
    with _workbook(path) as wb:
        for name, frame in sheets.items():
            shown = present(
                frame,
                lang=lang,
                translate_headers=translate_headers,
                translate_values=translate_values,
                value_domains=value_domains,
            )
            floats = [c for c, t in shown.schema.items() if t in (pl.Float32, pl.Float64)]
            shown.write_excel(
                wb,
                worksheet=name[:31],
                position=(2, 0) if title else (0, 0),
                column_formats=dict.fromkeys(floats, fmt),
                autofit=True,
                freeze_panes=(3, 0) if title else (1, 0),
                header_format={"bold": True, "text_wrap": True},
                include_header=True,
            )
            if title:
                wb.get_worksheet_by_name(name[:31]).write_string(
                    0, 0, safe_text(title), wb.add_format({"bold": True})
                )
    return path


def write_csv(
    frame: pl.DataFrame,
    path: str | Path,
    *,
    lang: Lang = "zh",
    translate_headers: bool = True,
    translate_values: bool = True,
    value_domains: Mapping[str, str] | None = None,
) -> Path:
    """Write a frame as a CSV file that Excel on a Chinese Windows opens correctly.

    The file is UTF-8 with a byte-order mark: Excel reads a CSV without one in the system code
    page (GBK on a Chinese Windows) and shows UTF-8 Chinese as mojibake, while with the BOM it
    reads UTF-8; polars, pandas and Python's ``utf-8-sig`` strip the mark. Fields are separated
    by commas, quoted where needed, lines end with a line feed; floats keep full precision.

    Parameters
    ----------
    frame : polars.DataFrame
        The table.
    path : str or Path
        The ``.csv`` file to write; its folder is created.
    lang : {"zh", "en"}, default "zh"
        Language of headers and coded values (see :func:`present`).
    translate_headers : bool, default True
        Write :func:`header` of each column instead of the canonical name; ``False`` for a file
        that programs read back by column name.
    translate_values : bool, default True
        Write the glossary term of coded values (``error`` → 错误).
    value_domains : Mapping of str to str, optional
        Coded columns not named after their glossary domain (see :func:`present`).

    Returns
    -------
    pathlib.Path
        The path written.

    Notes
    -----
    Every text field and header goes through :func:`neutralized` (a leading ``'`` before
    ``= + - @``, tab or CR), so a spreadsheet opening the file evaluates nothing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    shown = present(
        frame,
        lang=lang,
        translate_headers=translate_headers,
        translate_values=translate_values,
        value_domains=value_domains,
    )
    shown.write_csv(path, include_bom=True)
    return path


@contextlib.contextmanager
def _workbook(path: Path) -> Iterator[Any]:
    """Open an xlsxwriter workbook that writes text as text, with fixed document properties."""
    import xlsxwriter

    book = xlsxwriter.Workbook(
        str(path),
        {"strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False},
    )
    book.set_properties(
        {"created": dt.datetime(2000, 1, 1, tzinfo=dt.UTC), "author": "energy_audit"}
    )
    try:
        yield book
    finally:
        book.close()


@contextlib.contextmanager
def output_folder(out_dir: str | Path) -> Iterator[Path]:
    """Create an output folder; a file-system error while writing in it is one clear message.

    Parameters
    ----------
    out_dir : str or Path
        The folder (created with its parents).

    Yields
    ------
    pathlib.Path
        The folder, to write the outputs in inside the ``with`` block.

    Raises
    ------
    UnusableInputError
        If the folder cannot be created or a file in it cannot be written (``out_dir`` names
        an existing file, no permission, disk full); the message names the path.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        yield out
    except OSError as exc:
        where = exc.filename or out
        raise UnusableInputError(
            f"{where}：无法写入输出文件：{exc.strerror or exc}",
            f"{where}: cannot write the outputs: {exc.strerror or exc}",
        ) from exc
