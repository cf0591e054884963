"""Changes between two directory snapshots (名录库季度变更): one row per change.

The city office maintains the directory every quarter. :func:`diff_directories` compares two
snapshots field by field and returns one row per change, :func:`summarize_changes` counts them
and :func:`write_change_report` writes the workbook the office reads (one sheet per kind of
change, Chinese headers).

Kinds of change (column ``change``), in the order they are reported:

============  ======  ==========================================================================
change        中文     meaning
============  ======  ==========================================================================
added         新增     in the new snapshot, not in the old one
dissolved     撤销     status became ``dissolved``
merged        合并     status became ``merged``; ``new_value`` is the ``merged_into_id`` target
renamed       更名     ``name`` changed
changed       信息变更  any other field changed: one row per field (district_code, parent_id,
                       admin_level, sector, …, contact fields included)
removed       移除     in the old snapshot, absent from the new one although it was never
                       marked dissolved or merged: nothing may leave the directory silently
============  ======  ==========================================================================

Values are compared in a normalised text form (:func:`normalize_directory`): surrounding white
space is ignored, an empty text is the same as a null, booleans are ``true`` / ``false``, enum
codes are compared as written and a blank ``status`` reads as its contract default ``active``.

Personal data (the contract columns marked ``personal``: contact name and phone) stays in the
directory store: a change of contact is reported (``changed``, field ``contact_phone``) but its
old and new values are withheld as :data:`PERSONAL_MASK` in the changes table and in every
report written from it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Final

import polars as pl

from energy_audit import contract, glossary
from energy_audit.errors import Lang, UnusableInputError
from energy_audit.io.readers import PERSONAL_MASK
from energy_audit.io.writers import header, write_excel

__all__ = [
    "CHANGES_SCHEMA",
    "CHANGE_KINDS",
    "CHANGE_KIND_ZH",
    "COMPARED_FIELDS",
    "PERSONAL_FIELDS",
    "PERSONAL_MASK",
    "comparison_exprs",
    "diff_directories",
    "diff_normalized",
    "mask_personal",
    "normalize_directory",
    "summarize_changes",
    "write_change_report",
]

_DIRECTORY: Final = contract.table("directory")

#: Kinds of change in report order (also the sort order of :func:`diff_directories`).
CHANGE_KINDS: Final[tuple[str, ...]] = (
    "added",
    "dissolved",
    "merged",
    "renamed",
    "changed",
    "removed",
)

#: Chinese name of each kind of change (glossary domain ``change_kind``): the sheet names of
#: the change report.
CHANGE_KIND_ZH: Final[Mapping[str, str]] = MappingProxyType(
    {kind: glossary.term("change_kind", kind) for kind in CHANGE_KINDS}
)

#: Directory fields compared between snapshots (every contract column but the key), in
#: contract order.
COMPARED_FIELDS: Final[tuple[str, ...]] = tuple(
    name for name in _DIRECTORY.names if name != "institution_id"
)

#: Columns and dtypes of the changes table.
CHANGES_SCHEMA: Final = pl.Schema(
    {
        "institution_id": pl.String(),
        "change": pl.String(),
        "field": pl.String(),
        "old_value": pl.String(),
        "new_value": pl.String(),
    }
)

#: Directory fields holding personal data (contract ``personal = true``): contact name, phone.
PERSONAL_FIELDS: Final[tuple[str, ...]] = tuple(c.name for c in _DIRECTORY.columns if c.personal)


_BOOL_TERMS: Final[Mapping[str, Mapping[str, str]]] = MappingProxyType(
    {"zh": {"true": "是", "false": "否"}, "en": {"true": "yes", "false": "no"}}
)


def comparison_exprs(columns: Collection[str]) -> list[pl.Expr]:
    """Return the expressions that put a directory's values in the form used to compare them.

    Parameters
    ----------
    columns : Collection of str
        Columns of the frame the expressions will run on.

    Returns
    -------
    list of polars.Expr
        One ``String`` expression per contract column (``institution_id`` then
        :data:`COMPARED_FIELDS`), named after it: the value stripped of surrounding white
        space, empty text as null, booleans as ``true`` / ``false``; an absent column (or a null
        value) takes its contract default where it has one (``status``: ``active``), else null.

    Raises
    ------
    UnusableInputError
        If a required contract column (``institution_id``, ``name``, …) is not in ``columns``.
    """
    missing = [c.name for c in _DIRECTORY.columns if c.required and c.name not in columns]
    if missing:
        missing_zh = "、".join(f"{header(c, 'zh')}（{c}）" for c in missing)
        raise UnusableInputError(
            f"名录库表缺少必填列：{missing_zh}；现有列：{'、'.join(columns) or '无'}",
            f"the directory table lacks required column(s) {', '.join(missing)}; "
            f"it has {', '.join(columns) or 'no columns'}",
        )
    exprs = []
    for col in _DIRECTORY.columns:
        if col.name in columns:
            text = pl.col(col.name).cast(pl.String).str.strip_chars()
            value = pl.when(text == "").then(None).otherwise(text)
        else:
            value = pl.lit(None, pl.String)
        if col.absent_default is not None:
            value = value.fill_null(pl.lit(str(col.absent_default)))
        exprs.append(value.cast(pl.String).alias(col.name))
    return exprs


def normalize_directory(frame: pl.DataFrame) -> pl.DataFrame:
    """Return the directory's values in the text form used to compare snapshots.

    Parameters
    ----------
    frame : polars.DataFrame
        A canonical directory table (data contract §1). Columns outside the contract (such as
        ``source_file``, ``source_sheet``, ``source_row``) are ignored; an optional contract
        column that is absent takes its contract default (``status``: ``active``) or null.

    Returns
    -------
    polars.DataFrame
        ``institution_id`` and :data:`COMPARED_FIELDS`, all ``String``, rows in input order,
        as :func:`comparison_exprs` makes them: values stripped of surrounding white space,
        empty text as null, booleans as ``true`` / ``false``, a null ``status`` as ``active``.

    Raises
    ------
    UnusableInputError
        If a required contract column (``institution_id``, ``name``, …) is missing.
    """
    return frame.select(comparison_exprs(frame.columns))


def diff_normalized(old: pl.DataFrame, new: pl.DataFrame, *, key: str) -> pl.DataFrame:
    """Compare two normalised frames row by row, matched on ``key``.

    The engine of :func:`diff_directories`, also used by
    :meth:`energy_audit.directory.history.DirectoryStore.history` to compare consecutive versions
    of one institution (matched on the version number).

    Parameters
    ----------
    old, new : polars.DataFrame
        Frames with the ``key`` column and :data:`COMPARED_FIELDS` as returned by
        :func:`normalize_directory`; ``key`` must be unique and non-null in each.
    key : str
        Column on which rows are matched.

    Returns
    -------
    polars.DataFrame
        ``key, change, field, old_value, new_value`` sorted by kind of change
        (:data:`CHANGE_KINDS` order), ``key`` and field (contract order).
    """
    fields = COMPARED_FIELDS
    o = old.select(pl.col(key), *(pl.col(f).alias(f"o:{f}") for f in fields)).with_columns(
        pl.lit(True).alias("o:present")
    )
    n = new.select(pl.col(key), *(pl.col(f).alias(f"n:{f}") for f in fields)).with_columns(
        pl.lit(True).alias("n:present")
    )
    both = o.join(n, on=key, how="full", coalesce=True).with_columns(
        pl.col("o:present").fill_null(False), pl.col("n:present").fill_null(False)
    )

    def o_(f: str) -> pl.Expr:
        return pl.col(f"o:{f}")

    def n_(f: str) -> pl.Expr:
        return pl.col(f"n:{f}")

    in_both = pl.col("o:present") & pl.col("n:present")
    dissolved = in_both & (n_("status") == "dissolved") & o_("status").ne_missing("dissolved")
    merged = in_both & (n_("status") == "merged") & o_("status").ne_missing("merged")

    # (kind, condition, field, old value, new value)
    rules: list[tuple[str, pl.Expr, str, pl.Expr, pl.Expr]] = [
        ("added", ~pl.col("o:present"), "name", pl.lit(None, pl.String), n_("name")),
        ("dissolved", dissolved, "status", o_("status"), n_("status")),
        ("merged", merged, "merged_into_id", o_("merged_into_id"), n_("merged_into_id")),
        ("renamed", in_both & o_("name").ne_missing(n_("name")), "name", o_("name"), n_("name")),
    ]
    for f in fields:
        if f == "name":
            continue
        differs = in_both & o_(f).ne_missing(n_(f))
        if f == "status":
            differs = differs & ~dissolved & ~merged
        elif f == "merged_into_id":
            differs = differs & ~merged
        rules.append(("changed", differs, f, o_(f), n_(f)))
    rules.append(("removed", ~pl.col("n:present"), "name", o_("name"), pl.lit(None, pl.String)))

    parts = [
        both.filter(condition).select(
            pl.col(key),
            pl.lit(kind, pl.String).alias("change"),
            pl.lit(field, pl.String).alias("field"),
            old_value.cast(pl.String).alias("old_value"),
            new_value.cast(pl.String).alias("new_value"),
        )
        for kind, condition, field, old_value, new_value in rules
    ]
    kind_order = {k: i for i, k in enumerate(CHANGE_KINDS)}
    field_order = {f: i for i, f in enumerate(fields)}
    out = pl.concat(parts, how="vertical")
    return (
        out.with_columns(
            pl.col("change").replace_strict(kind_order, return_dtype=pl.Int32).alias("_k"),
            pl.col("field").replace_strict(field_order, return_dtype=pl.Int32).alias("_f"),
        )
        .sort("_k", key, "_f")
        .drop("_k", "_f")
    )


def diff_directories(old: pl.DataFrame, new: pl.DataFrame) -> pl.DataFrame:
    """Compare two directory snapshots: one row per change.

    Parameters
    ----------
    old, new : polars.DataFrame
        Canonical directory tables (data contract §1), the earlier snapshot first. Columns
        outside the contract (``source_file``, ``source_sheet``, ``source_row``, …) are ignored.
        An ``institution_id`` that appears more than once in a snapshot is compared by its first
        occurrence (the directory checks report the duplicate); rows without an
        ``institution_id`` cannot be matched and are not compared (the reader never produces
        them: it puts such rows in quarantine).

    Returns
    -------
    polars.DataFrame
        ``institution_id, change, field, old_value, new_value`` (all ``String``; values in the
        normalised text form of :func:`normalize_directory`):

        - ``added``: ``field`` = ``name``, ``new_value`` the name;
        - ``dissolved``: ``field`` = ``status``, old status → ``dissolved``;
        - ``merged``: ``field`` = ``merged_into_id``, ``new_value`` the institution it was
          merged into (null if the snapshot does not say: a directory check finding);
        - ``renamed``: ``field`` = ``name``, old name → new name;
        - ``changed``: one row per other field whose value changed (a status or target change
          already reported as ``dissolved`` / ``merged`` is not repeated);
        - ``removed``: ``field`` = ``name``, ``old_value`` the name: the institution is absent
          from the new snapshot without having been marked dissolved or merged in it.

        Sorted by kind (:data:`CHANGE_KINDS` order), ``institution_id``, then field in contract
        order. An institution can have several rows (e.g. renamed and moved to another
        district). The values of :data:`PERSONAL_FIELDS` are withheld (:func:`mask_personal`):
        a contact change is a row whose values are :data:`PERSONAL_MASK` (null where there was
        no value).

    Raises
    ------
    UnusableInputError
        If either frame lacks a required directory column.

    Examples
    --------
    >>> import polars as pl
    >>> from energy_audit.synthetic import make_directory
    >>> old = make_directory(200, seed=1)
    >>> new = old.with_columns(
    ...     pl.when(pl.int_range(pl.len()) == 0)
    ...     .then(pl.lit("120116"))
    ...     .otherwise(pl.col("district_code"))
    ...     .alias("district_code")
    ... )
    >>> diff_directories(old, new).select("change", "field", "new_value").row(0)
    ('changed', 'district_code', '120116')
    """
    return mask_personal(diff_normalized(_comparable(old), _comparable(new), key="institution_id"))


def mask_personal(changes: pl.DataFrame) -> pl.DataFrame:
    """Withhold the values of personal-data fields in a changes table.

    Parameters
    ----------
    changes : polars.DataFrame
        ``field``, ``old_value`` and ``new_value`` (as :func:`diff_normalized` returns them).

    Returns
    -------
    polars.DataFrame
        The same rows; where ``field`` is one of :data:`PERSONAL_FIELDS`, a non-null
        ``old_value`` / ``new_value`` is :data:`PERSONAL_MASK` (a null stays null, so the row
        still says whether a contact was added, changed or removed).
    """
    personal = pl.col("field").is_in(list(PERSONAL_FIELDS))
    return changes.with_columns(
        pl.when(personal & pl.col(side).is_not_null())
        .then(pl.lit(PERSONAL_MASK, pl.String))
        .otherwise(pl.col(side))
        .alias(side)
        for side in ("old_value", "new_value")
    )


def _comparable(frame: pl.DataFrame) -> pl.DataFrame:
    """Normalise, drop rows without an id and keep the first row of each id."""
    norm = normalize_directory(frame).filter(pl.col("institution_id").is_not_null())
    return norm.filter(pl.col("institution_id").is_first_distinct())


def summarize_changes(changes: pl.DataFrame) -> dict[str, int]:
    """Count the institutions concerned by each kind of change.

    Parameters
    ----------
    changes : polars.DataFrame
        As returned by :func:`diff_directories`.

    Returns
    -------
    dict of str to int
        Every kind of :data:`CHANGE_KINDS`, in that order, with the number of distinct
        institutions having such a change [institutions] (0 where none). ``changed`` counts
        institutions, not fields: one institution with three edited fields counts once.
    """
    counts = changes.group_by("change").agg(pl.col("institution_id").n_unique().alias("n"))
    found = dict(zip(counts["change"].to_list(), counts["n"].to_list(), strict=True))
    return {kind: int(found.get(kind, 0)) for kind in CHANGE_KINDS}


def _display_values(changes: pl.DataFrame, lang: Lang) -> pl.DataFrame:
    """Show enum codes and booleans as glossary terms in ``lang``; withhold personal data."""
    out = mask_personal(changes)
    for col in _DIRECTORY.columns:
        if col.dtype == "enum":
            mapping = dict(glossary.terms(col.name, lang))
        elif col.dtype == "bool":
            mapping = dict(_BOOL_TERMS[lang])
        else:
            continue
        is_field = pl.col("field") == col.name
        out = out.with_columns(
            pl.when(is_field)
            .then(pl.col(side).replace(mapping))
            .otherwise(pl.col(side))
            .alias(side)
            for side in ("old_value", "new_value")
        )
    return out


def write_change_report(
    changes: pl.DataFrame,
    path: str | Path,
    *,
    old_label: str,
    new_label: str,
    lang: Lang = "zh",
) -> Path:
    """Write the change report workbook (名录库变更报告).

    Sheets, in order: ``汇总`` (summary: per kind, the institutions and rows concerned; the
    合计 row counts each institution once even if it has several kinds of change), then
    one sheet per kind of change — ``新增``, ``撤销``, ``合并``, ``更名``, ``信息变更``,
    ``移除`` (glossary domain ``change_kind``) — each written even when empty, with the headers
    统一社会信用代码, 变更类型, 字段 (the field's Chinese header from the data contract, e.g.
    所在区划代码), 原值, 新值. Enum codes and booleans are written with their glossary terms
    (``dissolved`` → 撤销, ``true`` → 是). A title row above each sheet's header (row 3) names
    the two snapshots. With ``lang="en"`` sheet names, headers, kinds and terms are English.

    Parameters
    ----------
    changes : polars.DataFrame
        As returned by :func:`diff_directories`.
    path : str or Path
        The ``.xlsx`` file to write (its folder is created).
    old_label, new_label : str
        How the two snapshots are named in the title, e.g. ``"2024-09-30"`` and
        ``"2024-12-31"`` (dates in ISO 8601) or their file names.
    lang : {"zh", "en"}, default "zh"
        Language of sheet names, headers and terms.

    Returns
    -------
    pathlib.Path
        The path written.

    Notes
    -----
    The values of personal-data fields (contact name and phone) are never written: they show
    as :data:`PERSONAL_MASK`, and the row still says that the field changed. The store keeps
    the values.
    """
    kind_terms = glossary.terms("change_kind", lang)
    counts = summarize_changes(changes)
    rows = changes.group_by("change").len()
    row_counts = dict(zip(rows["change"].to_list(), rows["len"].to_list(), strict=True))
    summary = pl.DataFrame(
        {
            "change": [
                *(kind_terms[k] for k in CHANGE_KINDS),
                glossary.term("change_report", "total", lang),
            ],
            "institutions_changed": [
                *(counts[k] for k in CHANGE_KINDS),
                changes["institution_id"].n_unique(),
            ],
            "rows": [
                *(int(row_counts.get(k, 0)) for k in CHANGE_KINDS),
                changes.height,
            ],
        },
        schema={"change": pl.String, "institutions_changed": pl.Int64, "rows": pl.Int64},
    )
    shown = _display_values(changes.select(CHANGES_SCHEMA.names()), lang)
    shown = shown.with_columns(
        pl.col("field").replace_strict(
            {f: header(f, lang) for f in COMPARED_FIELDS}, default=pl.col("field")
        )
    )
    sheets: dict[str, pl.DataFrame] = {glossary.term("change_report", "summary", lang): summary}
    for kind in CHANGE_KINDS:
        sheets[kind_terms[kind]] = shown.filter(pl.col("change") == kind)
    colon = "：" if lang == "zh" else ": "
    title = f"{glossary.term('change_report', 'title', lang)}{colon}{old_label} → {new_label}"
    return write_excel(
        sheets, path, title=title, lang=lang, value_domains={"change": "change_kind"}
    )
