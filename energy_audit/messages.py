"""Messages of findings: one number format, and templates filled from a finding's columns.

Every rule whose message names numbers writes it from one template per language, filled by
:func:`render` from the finding's columns and its ``evidence`` (data contract §5), so the text
and the numbers the panel and the charts read cannot disagree. Numbers are written by
:func:`number` everywhere (one format for all rules), p-values by :func:`p_value`.

A template is plain text with placeholders:

``{name}``
    the column ``name`` (a field of the struct column ``evidence`` is named without prefix
    when the frame has no column of that name), written by :func:`number` when numeric, as it
    is when text, ``—`` when null;
``{name:fmt}``
    with a format: ``num`` (:func:`number`), ``int`` (a whole number), ``pct`` (a ratio as a
    change in per cent, ``1.25`` → ``25.0``), ``pct1`` (a share in per cent, ``0.031`` →
    ``3.1``), ``z`` (one decimal), ``p`` (:func:`p_value`), ``ratio`` (four decimals),
    ``list`` (a list of text joined by ``、``), ``list_en`` (joined by ``, ``), ``zh`` and ``en``
    (the Chinese or English name of a field, :data:`FIELDS`), ``unit`` (its unit);
Two names are computed from the finding: ``ratio`` (``value`` ÷ the evidence's
``previous_value``, null where that is not positive) and ``gap_tce``
(``reported_total_tce`` − ``computed_total_tce``).

``[then|else]``
    an optional clause: ``then`` where every placeholder in it is non-null, else ``else``
    (which may be empty: ``[then]``).

Examples
--------
>>> import polars as pl
>>> frame = pl.DataFrame({"field": ["electricity_kwh"], "value": [123456.7], "p": [3.2e-7]})
>>> frame.select(render("{field:zh} {value} {field:unit}（p = {p:p}）")).item()
'电力 123457 kWh（p = 3.2e-07）'
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Final

import polars as pl

__all__ = ["FIELDS", "number", "number_text", "p_value", "render", "template_fields"]

FIELDS: Final[Mapping[str, tuple[str, str, str]]] = {
    "electricity_kwh": ("电力", "electricity", "kWh"),
    "natural_gas_m3": ("天然气", "natural gas", "m³"),
    "coal_t": ("煤炭", "coal", "t"),
    "gasoline_l": ("汽油", "gasoline", "L"),
    "diesel_l": ("柴油", "diesel", "L"),
    "lpg_kg": ("液化石油气", "LPG", "kg"),
    "heat_gj": ("热力", "heat", "GJ"),
    "other_energy_tce": ("其他能源", "other energy", "tce"),
    "water_m3": ("水", "water", "m³"),
    "electricity_cost_yuan": ("电费", "electricity cost", "元"),
    "natural_gas_cost_yuan": ("天然气费", "natural gas cost", "元"),
    "water_cost_yuan": ("水费", "water cost", "元"),
    "total_energy_tce": ("综合能耗", "total energy", "tce"),
    "reported_total_tce": ("填报能源消费总量", "reported total energy", "tce"),
    "energy_per_m2_kgce": ("单位面积能耗", "energy per m²", "kgce/m²"),
    "energy_per_capita_kgce": ("人均能耗", "energy per person", "kgce"),
    "water_per_capita_m3": ("人均用水量", "water per person", "m³"),
    "building_area_m2": ("建筑面积", "building area", "m²"),
    "occupants": ("用能人数", "occupants", "人"),
    "m2_per_occupant": ("人均建筑面积", "floor area per person", "m²"),
}
"""Chinese name, English name and unit of each field a message names."""

_MISSING: Final = "—"


def number(expr: pl.Expr) -> pl.Expr:
    """Write a number for a message: the one number format of every rule.

    Magnitudes of 1,000 and more as whole numbers (``192477``), from 1 to 1,000 with at most
    two decimals (``12.5``, ``0.73`` → ``0.73``), below 1 with four significant digits
    (``0.00007``, ``0.1229``), whole numbers without a decimal point (``-5``); ``—`` for null,
    NaN or infinity.

    Parameters
    ----------
    expr : polars.Expr
        A numeric expression.

    Returns
    -------
    polars.Expr
        Text.
    """
    x = expr.cast(pl.Float64)
    size = x.abs()
    rounded = (
        pl.when(size >= 1000)
        .then(x.round(0))
        .when(size >= 1)
        .then(x.round(2))
        .otherwise(x.round_sig_figs(4))
    )
    whole = rounded == rounded.round(0)
    text = (
        pl.when(whole & (size < 1e15))
        .then(rounded.cast(pl.Int64, strict=False).cast(pl.String))
        .otherwise(rounded.cast(pl.String))
    )
    return pl.when(x.is_finite()).then(text).otherwise(pl.lit(_MISSING))


def number_text(x: float) -> str:
    """Write one number (a setting, a factor, a bound) as :func:`number` writes a column.

    Examples
    --------
    >>> number_text(10000.0), number_text(0.25), number_text(2.0)
    ('10000', '0.25', '2')
    """
    return str(pl.select(number(pl.lit(float(x)))).item())


def p_value(expr: pl.Expr) -> pl.Expr:
    """Write a p-value with two significant digits in scientific notation (``3.2e-07``).

    ``< 1e-300`` for 0, ``—`` for null. Vectorised (no Python call per row).
    """
    p = expr.cast(pl.Float64)
    exponent = p.log10().floor()
    mantissa = pl.lit(10.0).pow(p.log10() - exponent).round(1)  # also for subnormal p
    # 9.96 rounds to 10.0: carry into the exponent
    carry = mantissa >= 10.0
    mantissa = pl.when(carry).then(mantissa / 10.0).otherwise(mantissa)
    exponent = pl.when(carry).then(exponent + 1).otherwise(exponent).cast(pl.Int64)
    sign = pl.when(exponent < 0).then(pl.lit("-")).otherwise(pl.lit("+"))
    digits = exponent.abs().cast(pl.String).str.zfill(2)
    text = pl.concat_str(
        mantissa.round(1).cast(pl.String).str.replace(r"^(\d)$", "${1}.0"),
        pl.lit("e"),
        sign,
        digits,
    )
    return (
        pl.when(p.is_null() | p.is_nan())
        .then(pl.lit(_MISSING))
        .when(p <= 0)
        .then(pl.lit("< 1e-300"))
        .otherwise(text)
    )


_TOKEN: Final = re.compile(r"\{(\w+)(?::(\w+))?\}")
_CLAUSE: Final = re.compile(r"\[([^\[\]|]*)(?:\|([^\[\]|]*))?\]")


def template_fields(template: str) -> list[str]:
    """Names of the columns a template reads, in order of first use."""
    seen: list[str] = []
    for name, _ in _TOKEN.findall(template):
        if name not in seen:
            seen.append(name)
    return seen


def _column(name: str, schema: Mapping[str, pl.DataType] | None) -> pl.Expr:
    if name == "ratio":  # no ratio to a previous figure of 0 (or below): null, not inf
        previous = _column("previous_value", schema)
        return pl.when(previous > 0).then(pl.col("value") / previous)
    if name == "gap_tce":
        return _column("reported_total_tce", schema) - _column("computed_total_tce", schema)
    if schema is None or name in schema or "evidence" not in schema:
        return pl.col(name)
    return pl.col("evidence").struct.field(name)


def _names(column: pl.Expr, i: int) -> pl.Expr:
    return column.replace_strict({k: v[i] for k, v in FIELDS.items()}, default=column)


def _placeholder(name: str, fmt: str, schema: Mapping[str, pl.DataType] | None) -> pl.Expr:
    col = _column(name, schema)
    if fmt == "":
        dtype = None
        if schema is not None:
            dtype = schema.get(name)
            if dtype is None and isinstance(schema.get("evidence"), pl.Struct):
                dtype = dict(schema["evidence"].to_schema()).get(name)  # type: ignore[union-attr]
        fmt = "text" if dtype is not None and not dtype.is_numeric() else "num"
    if fmt == "num":
        return number(col)
    if fmt == "int":
        return col.round(0).cast(pl.Int64, strict=False).cast(pl.String)
    if fmt == "pct":
        return ((col - 1.0) * 100.0).round(1).cast(pl.String)
    if fmt == "pct1":
        return (col * 100.0).round(1).cast(pl.String)
    if fmt == "z":
        return col.round(1).cast(pl.String)
    if fmt == "ratio":
        return col.round(4).cast(pl.String)
    if fmt == "p":
        return p_value(col)
    if fmt == "list":
        return col.list.join("、")
    if fmt == "list_en":
        return col.list.join(", ")
    if fmt in ("zh", "en", "unit"):
        return _names(col.cast(pl.String), ("zh", "en", "unit").index(fmt))
    if fmt == "text":
        return col.cast(pl.String)
    raise ValueError(f"unknown placeholder format {fmt!r} in a message template")


def _pieces(text: str, schema: Mapping[str, pl.DataType] | None) -> tuple[list[pl.Expr], list]:
    """Literal and placeholder expressions of ``text``; the placeholders' raw columns."""
    out: list[pl.Expr] = []
    used: list[pl.Expr] = []
    at = 0
    for m in _TOKEN.finditer(text):
        if m.start() > at:
            out.append(pl.lit(text[at : m.start()]))
        name, fmt = m.group(1), m.group(2) or ""
        out.append(_placeholder(name, fmt, schema).fill_null(_MISSING))
        used.append(_column(name, schema))
        at = m.end()
    if at < len(text):
        out.append(pl.lit(text[at:]))
    return out, used


def render(template: str, schema: Mapping[str, pl.DataType] | None = None) -> pl.Expr:
    """Build the expression that writes ``template`` for every row of a frame.

    Parameters
    ----------
    template : str
        Text with placeholders and optional clauses (module docstring).
    schema : mapping, optional
        The frame's schema: tells text from numbers and finds fields of ``evidence``. Without
        it every placeholder without a format is a number or text column of that name.

    Returns
    -------
    polars.Expr
        A String expression (no Python call per row).
    """
    parts: list[pl.Expr] = []
    at = 0
    for m in _CLAUSE.finditer(template):
        if m.start() > at:
            parts.extend(_pieces(template[at : m.start()], schema)[0])
        then, used = _pieces(m.group(1), schema)
        otherwise, _ = _pieces(m.group(2) or "", schema)
        present = pl.all_horizontal([c.is_not_null() for c in used]) if used else pl.lit(True)
        parts.append(
            pl.when(present)
            .then(pl.concat_str(then) if then else pl.lit(""))
            .otherwise(pl.concat_str(otherwise) if otherwise else pl.lit(""))
        )
        at = m.end()
    if at < len(template):
        parts.extend(_pieces(template[at:], schema)[0])
    return pl.concat_str(parts) if parts else pl.lit("")


def render_messages(
    frame: pl.DataFrame,
    templates: Sequence[str],
    names: Sequence[str] = ("message_zh", "message_en"),
) -> pl.DataFrame:
    """Add the messages of ``templates`` (one per language) to ``frame`` as ``names``."""
    schema = frame.schema
    return frame.with_columns(
        render(t, schema).alias(n) for t, n in zip(templates, names, strict=True)
    )
