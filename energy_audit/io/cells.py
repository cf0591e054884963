"""Cell cleaning: turn the text people type into canonical values, or say why it cannot be.

Every function here works on polars expressions over a ``String`` column of raw cell text and
returns two expressions: the cleaned value and a ``reason`` that is non-null exactly where a
non-empty cell could not be read (the reader puts those cells in quarantine). The rules are the
data contract's ("Cell values"):

- ``1,234`` and ``1，234``, full-width digits ``１２３``, surrounding spaces and a trailing unit
  (``500 千瓦时``) are cleaned to numbers; a trailing unit of the column's dimension is converted
  to the canonical unit;
- empty, ``-``, ``—``, ``/``, ``无``, ``N/A`` (and close variants) are null, not errors;
- anything else (``约3000``, ``1,2345``, ``12.5`` in a whole-number column) is null in the data
  and gets a reason; so do an Excel error value (``#DIV/0!``, ``#N/A``: :data:`EXCEL_ERRORS`), a
  value that is not finite (``1e400``, ``inf``, ``nan``) and a whole number a column of whole
  numbers cannot hold (``99999999999999999999``, ``1e20``).

A reason is a key of the glossary's ``reason`` domain (``schemas/glossary.toml``: :data:`REASONS`);
the reader turns it into the Chinese and English text of the quarantine table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import polars as pl

NULL_TOKENS: tuple[str, ...] = (
    "",
    "-",
    "--",
    "—",
    "——",
    "–",
    "/",
    "无",
    "n/a",
    "na",
    "null",
    "none",
)
"""Cell texts (after NFKC, trimming and lower-casing) that mean "no value".

``#N/A`` is not one of them: in a spreadsheet it is an error value (a lookup that found
nothing), and Excel writes it into a CSV as the text ``#N/A``; it goes to quarantine with the
other :data:`EXCEL_ERRORS`.
"""

EXCEL_ERRORS: tuple[str, ...] = (
    "#NULL!",
    "#DIV/0!",
    "#VALUE!",
    "#REF!",
    "#NAME?",
    "#NUM!",
    "#N/A",
    "#GETTING_DATA",
    "#SPILL!",
    "#CALC!",
    "#FIELD!",
    "#BLOCKED!",
    "#CONNECT!",
    "#BUSY!",
    "#UNKNOWN!",
    "#PYTHON!",
)
"""Excel's error values, as a cell shows them (and as Excel writes them into a CSV).

References: Microsoft Support, "How to correct a #… error" (one page per value); ECMA-376
Part 1, §18.17.4 (the error values of SpreadsheetML: ``#NULL!`` … ``#GETTING_DATA``).
"""

# Reasons: keys of the glossary's ``reason`` domain.
REASON_NOT_A_NUMBER = "not_a_number"
REASON_BAD_UNIT = "bad_unit"
REASON_NOT_WHOLE = "not_whole"
REASON_NOT_A_YEAR = "not_a_year"
REASON_NOT_BOOLEAN = "not_boolean"
REASON_OUT_OF_RANGE = "out_of_int_range"
REASON_NOT_FINITE = "not_finite"
REASON_EXCEL_ERROR = "excel_error"
REASON_FORMULA = "formula_not_calculated"
REASON_NOT_UTF8 = "not_utf8"
REASON_UNREADABLE_CELL = "cell_unreadable"

REASONS: tuple[str, ...] = (
    REASON_NOT_A_NUMBER,
    REASON_BAD_UNIT,
    REASON_NOT_WHOLE,
    REASON_NOT_A_YEAR,
    REASON_NOT_BOOLEAN,
    REASON_OUT_OF_RANGE,
    REASON_NOT_FINITE,
    REASON_EXCEL_ERROR,
    REASON_FORMULA,
    REASON_NOT_UTF8,
    REASON_UNREADABLE_CELL,
)
"""Every reason a cell can be quarantined for (glossary keys; the reader adds the header)."""

MAX_EXACT_WHOLE = 2**53
"""Largest whole number [-] read exactly through floating point (``1e15``, ``3.0``, ``万人``).

A whole number written as plain digits is read exactly up to the Int64 limit (2⁶³ − 1)."""

# A number as people write it: optional sign, digits with optional thousands separators
# (strict groups of three, so 1,2345 is not silently read as 12345), decimals, exponent.
_NUMBER = r"[+-]?(?:\d{1,3}(?:,\d{3})+(?:\.\d*)?|\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"

_TRUE_LABELS = ("是", "y", "yes", "true", "1", "√", "✓", "t", "1.0")
_FALSE_LABELS = ("否", "n", "no", "false", "0", "×", "✗", "f", "0.0")


def normalized_text(raw: pl.Expr) -> pl.Expr:
    """Unicode NFKC and trimmed text of a raw cell (full-width → half-width)."""
    return raw.str.normalize("NFKC").str.strip_chars()


def matching_key(raw: pl.Expr) -> pl.Expr:
    """Key for matching labels: NFKC, no white space at all, lower case."""
    return _key(raw.str.normalize("NFKC"))


def is_blank(raw: pl.Expr) -> pl.Expr:
    """Flag cells that are empty or holds one of :data:`NULL_TOKENS`."""
    return raw.is_null() | matching_key(raw).is_in(list(NULL_TOKENS))


def is_excel_error(raw: pl.Expr) -> pl.Expr:
    """Flag cells that hold one of Excel's error values (:data:`EXCEL_ERRORS`, any case)."""
    return normalized_text(raw).str.to_uppercase().is_in(list(EXCEL_ERRORS)).fill_null(False)


@dataclass(frozen=True)
class NumberColumn:
    """How to clean one numeric column (see :func:`clean_numbers`).

    Attributes
    ----------
    source : str
        Column of raw cell text (``String``).
    target : str
        Column to write the value to, in the canonical unit.
    factor : float
        Multiplier from the header's unit to the canonical unit, applied to cells that carry no
        unit of their own.
    unit_factors : Mapping of str to float
        Multiplier to the canonical unit for each unit label a cell may end with, keyed by
        :func:`matching_key` form (e.g. ``{"千瓦时": 1.0, "万千瓦时": 1e4}`` for kWh).
    whole : bool
        The column holds whole numbers (``Int64``): a fractional value is not readable.
    """

    source: str
    target: str
    factor: float = 1.0
    unit_factors: Mapping[str, float] = field(default_factory=dict)
    whole: bool = False


def reason_column(target: str) -> str:
    """Name the column :func:`clean_numbers` writes the reason for ``target`` to."""
    return f"__reason_{target}"


def own_unit_column(target: str) -> str:
    """Name the flag column: the cell of ``target`` carried a unit of its own (500 千瓦时)."""
    return f"__own_unit_{target}"


def _exact_whole(digits: pl.Expr, factor: pl.Expr | float) -> pl.Expr:
    """Int64 of number text written as plain digits with a factor of 1, else null (exact)."""
    exact = digits.cast(pl.Int64, strict=False)
    if isinstance(factor, float):
        return exact if factor == 1.0 else pl.lit(None, pl.Int64)
    return pl.when(factor == 1.0).then(exact)


def _whole_in_range(value: pl.Expr) -> pl.Expr:
    return value.abs() < MAX_EXACT_WHOLE


def _plain(col: NumberColumn) -> pl.Expr:
    """Flag cells the fast path can take: null, or a plain finite number (whole if required)."""
    value = pl.col(col.source).cast(pl.Float64, strict=False) * float(col.factor)
    ok = value.is_finite()
    if col.whole:
        exact = _exact_whole(pl.col(col.source), float(col.factor)).is_not_null()
        ok = exact | (ok & (value.round(0) == value) & _whole_in_range(value))
    return pl.col(col.source).is_null() | ok.fill_null(False)


def _finish(value: pl.Expr, col: NumberColumn, exact: pl.Expr | None = None) -> pl.Expr:
    if col.whole:
        value = value.round(0).cast(pl.Int64, strict=False)
        if exact is not None:
            value = pl.coalesce(exact, value)
    return value.alias(col.target)


def _key(expr: pl.Expr) -> pl.Expr:
    return expr.str.replace_all(r"\s+", "").str.to_lowercase()


def _clean_numbers_fully(frame: pl.DataFrame, columns: Sequence[NumberColumn]) -> pl.DataFrame:
    """Clean numeric columns cell by cell with every rule (the path for messy rows).

    Each intermediate result is a temporary column computed once: text, blank flag, number
    text, trailing text, unit factor, value.
    """
    names = [tuple(f"__{k}{i}" for k in "tbnrfvx") for i in range(len(columns))]
    pairs = list(zip(columns, names, strict=True))
    frame = frame.with_columns(normalized_text(pl.col(c.source)).alias(n[0]) for c, n in pairs)
    frame = frame.with_columns(
        expr
        for _, (t, b, n, r, _f, _v, _x) in pairs
        for expr in (
            (pl.col(t).is_null() | _key(pl.col(t)).is_in(list(NULL_TOKENS))).alias(b),
            pl.col(t).str.extract(rf"^({_NUMBER})", 1).alias(n),
            _key(pl.col(t).str.replace(rf"^{_NUMBER}", "")).alias(r),
        )
    )
    frame = frame.with_columns(
        expr
        for c, (_t, _b, n, r, f, v, _x) in pairs
        for expr in (
            pl.when(pl.col(r) == "")
            .then(pl.lit(float(c.factor)))
            .otherwise(
                pl.col(r).replace_strict(
                    {str(k): float(x) for k, x in c.unit_factors.items()},
                    default=None,
                    return_dtype=pl.Float64,
                )
            )
            .alias(f),
            pl.col(n).str.replace_all(",", "").cast(pl.Float64, strict=False).alias(v),
        )
    )
    stage = []
    for c, (t, b, n, _r, f, v, x) in pairs:
        value = pl.col(v) * pl.col(f)
        exact = _exact_whole(pl.col(n).str.replace_all(",", ""), pl.col(f))
        reason = (
            pl.when(pl.col(b))
            .then(None)
            .when(pl.col(t).str.to_uppercase().is_in(list(EXCEL_ERRORS)))
            .then(pl.lit(REASON_EXCEL_ERROR))
            .when(_key(pl.col(t)).str.contains(r"^[+-]?(?:inf|infinity|nan)$"))
            .then(pl.lit(REASON_NOT_FINITE))
            .when(pl.col(n).is_null() | pl.col(v).is_null())
            .then(pl.lit(REASON_NOT_A_NUMBER))
            .when(pl.col(f).is_null())
            .then(pl.lit(REASON_BAD_UNIT))
            .when(~value.is_finite())
            .then(pl.lit(REASON_NOT_FINITE))
        )
        if c.whole:
            reason = (
                reason.when(value.round(0) != value)
                .then(pl.lit(REASON_NOT_WHOLE))
                .when(exact.is_null() & ~_whole_in_range(value))
                .then(pl.lit(REASON_OUT_OF_RANGE))
            )
        stage += [
            reason.otherwise(None).alias(reason_column(c.target)),
            value.alias(v),
            exact.alias(x),
        ]
    frame = frame.with_columns(stage)
    stage = []
    for c, (_t, b, _n, r, _f, v, x) in pairs:
        readable = pl.col(reason_column(c.target)).is_null() & ~pl.col(b)
        stage += [
            _finish(pl.when(readable).then(pl.col(v)), c, pl.when(readable).then(pl.col(x))),
            (readable & (pl.col(r) != "")).alias(own_unit_column(c.target)),
        ]
    outputs = [
        name
        for c in columns
        for name in (c.target, reason_column(c.target), own_unit_column(c.target))
    ]
    temporary = {name for group in names for name in group}
    kept = [name for name in frame.columns if name not in outputs and name not in temporary]
    return frame.with_columns(stage).select(*kept, *outputs)


def clean_numbers(
    frame: pl.DataFrame, columns: Sequence[NumberColumn], *, fast_path: bool = True
) -> pl.DataFrame:
    """Clean numeric columns of raw text into canonical units, with a reason where unreadable.

    Rows whose numeric cells are all empty or plain numbers (``1234.5``: most rows of most
    files) take a fast path, one cast and the header's factor; the other rows get every rule of
    this module. Both paths give the same result for every cell (a property test checks).

    Parameters
    ----------
    frame : polars.DataFrame
        Raw text columns (``String``); not changed.
    columns : sequence of NumberColumn
        The numeric columns to clean.
    fast_path : bool, default True
        Use the fast path for plain rows (``False``: every row the full way; for tests).

    Returns
    -------
    polars.DataFrame
        ``frame`` in its row order with, per column, ``target`` (``Float64``, ``Int64`` if
        whole) in the canonical unit, :func:`reason_column` (``String``, non-null exactly where a
        non-blank cell could not be read) and :func:`own_unit_column` (``Boolean``).
    """
    if not columns:
        return frame
    if not fast_path:
        return _clean_numbers_fully(frame, columns)
    # The fast rule is applied to every row (one cast per column, no text copied); the rows it
    # cannot take are cleaned the full way on their own and scattered into place. The frame's
    # text columns are never filtered, re-ordered or copied.
    sources = list(dict.fromkeys(c.source for c in columns))
    narrow = frame.select(sources)
    plain = narrow.select(pl.all_horizontal(_plain(c) for c in columns)).to_series()
    fast = narrow.select(
        expr
        for c in columns
        for expr in (
            _finish(
                pl.col(c.source).cast(pl.Float64, strict=False) * float(c.factor),
                c,
                _exact_whole(pl.col(c.source), float(c.factor)) if c.whole else None,
            ),
            pl.repeat(None, pl.len(), dtype=pl.String).alias(reason_column(c.target)),
            pl.repeat(False, pl.len()).alias(own_unit_column(c.target)),
        )
    )
    slow_rows = pl.arg_where(~plain, eager=True)
    if slow_rows.len():
        slow = _clean_numbers_fully(narrow[slow_rows], columns).select(fast.columns)
        fast = fast.with_columns(fast[name].scatter(slow_rows, slow[name]) for name in fast.columns)
    return frame.with_columns(fast)


def year(raw: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """Clean a year column: ``2023``, ``2023.0``, ``2023年``, ``2023年度``, ``２０２３``.

    Returns
    -------
    value, reason : polars.Expr
        ``Int64`` year and the reason a non-blank cell is not a year.
    """
    text = matching_key(raw)
    digits = text.str.extract(r"^(\d{4})(?:\.0+)?(?:年度?)?$", 1)
    value = digits.cast(pl.Int64, strict=False)
    reason = (
        pl.when(is_blank(raw) | value.is_not_null())
        .then(None)
        .when(is_excel_error(raw))
        .then(pl.lit(REASON_EXCEL_ERROR))
        .otherwise(pl.lit(REASON_NOT_A_YEAR))
    )
    return value, reason


def boolean(raw: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """Clean a yes/no column: 是/否, Y/N, yes/no, true/false, 1/0, √/×.

    Returns
    -------
    value, reason : polars.Expr
        ``Boolean`` value and the reason a non-blank cell is not a yes/no value.
    """
    key = matching_key(raw)
    mapping = {**dict.fromkeys(_TRUE_LABELS, True), **dict.fromkeys(_FALSE_LABELS, False)}
    value = key.replace_strict(mapping, default=None, return_dtype=pl.Boolean)
    blank = is_blank(raw)
    value = pl.when(blank).then(None).otherwise(value)
    reason = (
        pl.when(blank | value.is_not_null())
        .then(None)
        .when(is_excel_error(raw))
        .then(pl.lit(REASON_EXCEL_ERROR))
        .otherwise(pl.lit(REASON_NOT_BOOLEAN))
    )
    return value, reason


def label(raw: pl.Expr, mapping: Mapping[str, str]) -> pl.Expr:
    """Map labels to codes; an unknown label is kept verbatim (trimmed).

    Parameters
    ----------
    raw : polars.Expr
        Raw cell text.
    mapping : Mapping of str to str
        Code for each label, keyed by :func:`matching_key` form.

    Returns
    -------
    polars.Expr
        ``String``: the code where the label is known, else the trimmed text; null for blanks.
    """
    key = matching_key(raw)
    code = key.replace_strict(dict(mapping), default=None, return_dtype=pl.String)
    return (
        pl.when(is_blank(raw) & code.is_null())
        .then(None)
        .otherwise(pl.coalesce(code, raw.str.strip_chars()))
    )


def text(raw: pl.Expr) -> pl.Expr:
    """Trimmed text; blanks (:data:`NULL_TOKENS`) become null. Nothing else is changed."""
    return pl.when(is_blank(raw)).then(None).otherwise(raw.str.strip_chars())


def credit_code(raw: pl.Expr) -> pl.Expr:
    """Normalise a credit-code cell: NFKC, no spaces or hyphens, upper case; blanks → null.

    The code is not validated here (the directory stage does that, domain.md §4).
    """
    norm = raw.str.normalize("NFKC").str.replace_all(r"[\s\-‐‑–—－]+", "").str.to_uppercase()
    return pl.when(is_blank(raw)).then(None).otherwise(norm)
