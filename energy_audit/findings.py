"""Findings: the one table every check hands the panel, and the rule catalogue type.

A finding is a row of the contract table ``findings`` (``schemas/findings.toml``, data contract
§5). Checks never raise on bad data: they return findings. Each rule has a stable id
(``DIR-001``…), a category, a severity and a one-line description in Chinese and English;
:func:`findings_from_hits` turns a check's hits (one row per problem, with the numbers) into
finding rows with a stable ``finding_id``: the same input gives the same ids on every run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

import polars as pl

from energy_audit import contract
from energy_audit.messages import render_messages

Category = Literal[
    "coverage", "validity", "consistency", "plausibility", "statistical", "directory"
]
Severity = Literal["error", "warning", "info"]

FINDING_COLUMNS: Final = contract.table("findings").names
"""Columns of the findings table, in contract order."""

CATEGORY_ZH: Final[Mapping[str, str]] = {
    v.code: v.labels[0] for v in contract.table("findings").column("category").values
}
"""Chinese name of each finding category (完整性, 有效性, 匹配性, 合理性…), from the contract."""

DEFAULT_PRIORITY: Final[Mapping[str, float]] = {"error": 0.9, "warning": 0.5, "info": 0.1}
"""Priority [0-1] of a finding whose rule gives none, by severity (higher is reviewed first)."""


@dataclass(frozen=True)
class Rule:
    """One rule of the catalogue.

    Attributes
    ----------
    rule_id : str
        Stable code, e.g. ``DIR-001``; never reused for another meaning.
    category : str
        ``coverage``, ``validity``, ``consistency``, ``plausibility``, ``statistical`` or
        ``directory``.
    severity : str
        ``error`` (cannot be right), ``warning`` (needs a look) or ``info``.
    title_zh, title_en : str
        One-line description.
    settings : tuple of str
        Names of the settings (thresholds) the rule reads, if any.
    template_zh, template_en : str
        Message templates (:mod:`energy_audit.messages`), filled from each finding's columns
        and ``evidence``; empty when the check writes its messages itself.
    """

    rule_id: str
    category: Category
    severity: Severity
    title_zh: str
    title_en: str
    settings: tuple[str, ...] = field(default=())
    template_zh: str = ""
    template_en: str = ""


def provenance(frame: pl.DataFrame) -> list[pl.Expr]:
    """Return ``source_file`` and ``source_row`` of a hit frame (null when ``frame`` has none)."""
    return [
        pl.col(c) if c in frame.columns else pl.lit(None).alias(c)
        for c in ("source_file", "source_row")
    ]


def empty_findings() -> pl.DataFrame:
    """Return an empty findings table with the contract's columns and dtypes."""
    return contract.table("findings").empty_frame()


def finding_id(
    rule_id: str, institution_id: str | None, year: int | None, fld: str | None, key: str
) -> str:
    """Return the stable id of a finding.

    Parameters
    ----------
    rule_id, institution_id, year, fld : str, int or None
        What the finding is about.
    key : str
        Discriminator when a rule can fire several times for the same institution, year and
        field (e.g. the source row of a duplicate); empty otherwise.

    Returns
    -------
    str
        ``<rule_id>-<12 hex digits>`` (SHA-1 of the parts): the same on every run and machine.
    """
    text = "\x1f".join(
        ["" if p is None else str(p) for p in (rule_id, institution_id, year, fld, key)]
    )
    return f"{rule_id}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:12]}"


def _id_text(values: pl.Series) -> pl.Series:
    """Python's ``str`` of each value (empty for null), as text."""
    if values.dtype == pl.String:
        text = values
    elif values.dtype.is_integer() or values.dtype == pl.Null:  # written as Python does
        text = values.cast(pl.String)
    else:  # floats, booleans …: Python's own text, value by value
        text = pl.Series(values.name, [None if v is None else str(v) for v in values.to_list()])
    return text.cast(pl.String).fill_null("")


def finding_ids(rule_id: str, hits: pl.DataFrame) -> pl.Series:
    """Return :func:`finding_id` of every row of ``hits``, in order.

    Parameters
    ----------
    rule_id : str
        The rule that fired.
    hits : polars.DataFrame
        ``institution_id``, ``year``, ``field`` and ``key`` of each finding (any dtypes; null
        is empty, as in :func:`finding_id`).

    Returns
    -------
    polars.Series
        ``finding_id`` (String): the texts are joined in polars, then each is hashed by
        :mod:`hashlib` (no vectorised SHA-1 exists; one C call per finding).
    """
    parts = pl.DataFrame([_id_text(hits[c]) for c in ("institution_id", "year", "field", "key")])
    text = parts.select(pl.concat_str([pl.lit(rule_id), pl.all()], separator="\x1f")).to_series()
    sha1 = hashlib.sha1
    digests = [sha1(t).hexdigest()[:12] for t in text.cast(pl.Binary).to_list()]
    return (f"{rule_id}-" + pl.Series(digests, dtype=pl.String)).alias("finding_id")


def findings_from_hits(
    rule: Rule, hits: pl.DataFrame, *, priority: float | None = None
) -> pl.DataFrame:
    """Turn a check's hits into finding rows of ``rule``.

    Parameters
    ----------
    rule : Rule
        The rule that fired.
    hits : polars.DataFrame
        One row per problem. Required columns: ``institution_id``, and ``message_zh`` and
        ``message_en`` unless the rule has templates (they are then rendered from the hits,
        :func:`energy_audit.messages.render`). Optional: ``year``, ``field``, ``value``,
        ``expected_low``, ``expected_high``, ``suggested_value``, ``priority``,
        ``source_file``, ``source_row``, ``batch_id`` (null:
        :func:`energy_audit.verify.batches.fold_systemic` sets it), ``evidence`` (the
        contract's struct; fields it lacks are null) and ``key`` (discriminator for
        :func:`finding_id`).
    priority : float, optional
        Priority [0-1] of every finding (default: the hits' ``priority`` column, else
        :data:`DEFAULT_PRIORITY` of the rule's severity).

    Returns
    -------
    polars.DataFrame
        Findings in contract columns and dtypes, one per hit, in the hits' order.
    """
    schema = contract.table("findings").polars_schema
    if hits.is_empty():
        return empty_findings()
    frame = hits
    if "evidence" in frame.columns:
        frame = frame.with_columns(evidence_struct(frame["evidence"]))
    if rule.template_zh and "message_zh" not in frame.columns:
        frame = render_messages(frame, (rule.template_zh, rule.template_en))
    for name in (
        "year",
        "field",
        "value",
        "expected_low",
        "expected_high",
        "suggested_value",
        "source_file",
        "source_row",
        "batch_id",
        "evidence",
        "key",
    ):
        if name not in frame.columns:
            frame = frame.with_columns(pl.lit(None).alias(name))
    if priority is not None or "priority" not in frame.columns:
        frame = frame.with_columns(
            pl.lit(priority if priority is not None else DEFAULT_PRIORITY[rule.severity]).alias(
                "priority"
            )
        )
    frame = frame.with_columns(
        finding_ids(rule.rule_id, frame),
        pl.lit(rule.rule_id).alias("rule_id"),
        pl.lit(rule.category).alias("category"),
        pl.lit(rule.severity).alias("severity"),
    )
    return frame.select(pl.col(name).cast(dtype) for name, dtype in schema.items())


EVIDENCE_DTYPE: Final = contract.table("findings").column("evidence").polars_dtype
"""The ``evidence`` struct of a finding (``schemas/findings.toml``)."""


def evidence_struct(evidence: pl.Series) -> pl.Series:
    """Cast a struct with some of the evidence fields to the contract's ``evidence`` struct.

    Fields ``evidence`` lacks are null; a field the contract does not know is an error.
    """
    known = dict(EVIDENCE_DTYPE.to_schema())  # type: ignore[attr-defined]
    given = evidence.struct.fields
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ValueError(f"evidence fields not in schemas/findings.toml: {unknown}")
    fields = [
        pl.col("e").struct.field(n).cast(d) if n in given else pl.lit(None, d).alias(n)
        for n, d in known.items()
    ]
    # a null evidence (a rule finding) stays null, not a struct of nulls
    return (
        pl.DataFrame({"e": evidence})
        .with_columns(pl.struct(fields).alias("s"))
        .select(pl.when(pl.col("e").is_not_null()).then(pl.col("s")).alias("evidence"))
        .to_series()
    )


def sort_findings(findings: pl.DataFrame) -> pl.DataFrame:
    """Order findings as the panel works: priority (high first), then rule, institution, year."""
    return findings.sort(
        ["priority", "rule_id", "institution_id", "year", "field", "finding_id"],
        descending=[True, False, False, False, False, False],
        nulls_last=True,
    )
