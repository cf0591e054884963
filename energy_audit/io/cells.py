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
  and gets a reason.
"""

from __future__ import annotations

from collections.abc import Mapping

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
    "#n/a",
    "null",
    "none",
)
"""Cell texts (after NFKC, trimming and lower-casing) that mean "no value"."""

REASON_NOT_A_NUMBER = "not a number"
REASON_BAD_UNIT = "trailing text is not a unit of this column"
REASON_NOT_WHOLE = "not a whole number"
REASON_NOT_A_YEAR = "not a year"
REASON_NOT_BOOLEAN = "not a yes/no value"

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
    return raw.str.normalize("NFKC").str.replace_all(r"\s+", "").str.to_lowercase()


def is_blank(raw: pl.Expr) -> pl.Expr:
    """Flag cells that are empty or holds one of :data:`NULL_TOKENS`."""
    return raw.is_null() | matching_key(raw).is_in(list(NULL_TOKENS))


def number(
    raw: pl.Expr, factor: float, unit_factors: Mapping[str, float], *, whole: bool = False
) -> tuple[pl.Expr, pl.Expr]:
    """Clean a numeric column into canonical units.

    Parameters
    ----------
    raw : polars.Expr
        Raw cell text (``String``).
    factor : float
        Multiplier from the header's unit to the column's canonical unit, applied to cells that
        carry no unit of their own.
    unit_factors : Mapping of str to float
        Multiplier to the canonical unit for each unit label a cell may end with, keyed by
        :func:`matching_key` form (e.g. ``{"千瓦时": 1.0, "万千瓦时": 1e4}`` for kWh).
    whole : bool, default False
        The column holds whole numbers (``Int64``); a fractional value is not readable.

    Returns
    -------
    value, reason : polars.Expr
        ``Float64`` (``Int64`` if ``whole``) value in the canonical unit, and the reason a
        non-blank cell could not be read (null where it could, or where the cell is blank).
    """
    text = normalized_text(raw)
    blank = is_blank(raw)
    num_text = text.str.extract(rf"^({_NUMBER})", 1)
    rest = matching_key(text.str.replace(rf"^{_NUMBER}", ""))
    mapping = {str(k): float(v) for k, v in unit_factors.items()}
    cell_factor = (
        pl.when(rest == "")
        .then(pl.lit(float(factor)))
        .otherwise(rest.replace_strict(mapping, default=None, return_dtype=pl.Float64))
    )
    num = num_text.str.replace_all(",", "").cast(pl.Float64, strict=False)
    value = num * cell_factor
    reason = (
        pl.when(blank)
        .then(None)
        .when(num_text.is_null() | num.is_null())
        .then(pl.lit(REASON_NOT_A_NUMBER))
        .when(cell_factor.is_null())
        .then(pl.lit(REASON_BAD_UNIT))
    )
    if whole:
        reason = reason.when(value.is_finite() & (value.round(0) != value)).then(
            pl.lit(REASON_NOT_WHOLE)
        )
    reason = reason.otherwise(None)
    value = pl.when(reason.is_null() & ~blank).then(value).otherwise(None)
    if whole:
        value = value.round(0).cast(pl.Int64, strict=False)
    return value, reason


def has_own_unit(raw: pl.Expr) -> pl.Expr:
    """Flag readable numbers followed by a unit of its own (``500 千瓦时``)."""
    text = normalized_text(raw)
    rest = matching_key(text.str.replace(rf"^{_NUMBER}", ""))
    return text.str.contains(rf"^{_NUMBER}") & (rest != "")


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
    reason = pl.when(~is_blank(raw) & value.is_null()).then(pl.lit(REASON_NOT_A_YEAR))
    return value, reason.otherwise(None)


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
    reason = pl.when(~blank & value.is_null()).then(pl.lit(REASON_NOT_BOOLEAN)).otherwise(None)
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
