"""Systemic rule findings: one batch finding where a rule fires on most returns of a scope.

A returns file whose water column is empty, a form of the year without a line, a district that
types every figure in the wrong unit: each is one fact, yet the rules report it once per return
(every row of such a file gets a VAL-001 error at priority 0.9), and the panel's review budget
fills with it. :func:`fold_systemic` finds, for every rule of the categories in
:data:`FOLDED_CATEGORIES`, the scopes where the rule fires on a large share of the returns, and
hands the panel one finding per systemic rule and scope instead:

- scopes: one source file (``source_file`` of the returns) and one district (the directory's
  ``district_code`` of the institution), each per year of the returns;
- a scope is systemic for a rule when the rule fires on at least ``settings.batch_share`` of
  the scope's returns and on at least ``settings.batch_min_returns`` of them (both thresholds
  included). Returns are counted distinct (``institution_id`` and ``year``): a rule firing twice
  on one return counts once. The scope's returns are those received plus those due and not
  received that a finding names (COV-001: an institution of the district that sent nothing);
- the batch finding has the rule's id, category and severity, no institution, the scope's year,
  the members' ``field`` where they all share one, ``value`` = the returns concerned, the
  rule's default priority (:data:`energy_audit.findings.DEFAULT_PRIORITY` of its severity) and
  a message naming the scope, the count, the share and the rule;
- its members stay in the table (nothing is lost) with priority 0 and ``batch_id`` = the
  batch's ``finding_id``. A finding in a file batch and a district batch goes to the larger
  (more returns; the file on a tie), and a batch left with no member of its own (a district
  batch lying wholly inside a file batch) is dropped: it tells the same fact again.

Statistical findings (their priority is their own evidence) and directory findings are never
folded. Finding ids stay stable: members keep theirs; a batch's id is
:func:`energy_audit.findings.finding_id` of the rule, the year and ``batch:<kind>:<scope>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import polars as pl

from energy_audit import contract
from energy_audit.districts import load_districts
from energy_audit.errors import UnusableInputError
from energy_audit.findings import (
    DEFAULT_PRIORITY,
    Rule,
    empty_findings,
    finding_id,
    sort_findings,
)
from energy_audit.verify.consistency import CONSISTENCY_RULES
from energy_audit.verify.coverage import COVERAGE_RULES
from energy_audit.verify.settings import VerifySettings
from energy_audit.verify.validity import VALIDITY_RULES

__all__ = ["FOLDED_CATEGORIES", "SCOPE_KINDS", "batch_findings", "fold_systemic"]

FOLDED_CATEGORIES: Final[tuple[str, ...]] = ("coverage", "validity", "consistency", "plausibility")
"""Categories whose findings are folded into batches (never ``statistical`` nor ``directory``)."""

SCOPE_KINDS: Final[tuple[str, ...]] = ("file", "district")
"""Kinds of scope a batch covers, in the order a tie between two batches is decided."""

_RULES: Final[Mapping[str, Rule]] = {
    r.rule_id: r for r in (*COVERAGE_RULES, *VALIDITY_RULES, *CONSISTENCY_RULES)
}
_ROW: Final = "__row"
_SCOPE: Final = "__scope"


def _return_keys(returns: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    """Identity and source file of every return (distinct), typed as the findings are."""
    names = returns.collect_schema().names()
    missing = [c for c in ("institution_id", "year") if c not in names]
    if missing:
        raise UnusableInputError(
            f"填报数据缺少列 {contract.names_zh(missing)}，无法统计批次问题",
            f"returns lack the column(s) {', '.join(missing)}: batches cannot be counted",
        )
    return (
        returns.lazy()
        .select(
            pl.col("institution_id").cast(pl.String, strict=False),
            pl.col("year").cast(pl.Int64, strict=False),
            (pl.col("source_file") if "source_file" in names else pl.lit(None))
            .cast(pl.String)
            .alias("source_file"),
        )
        .unique()
    )


def _district_map(directory: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    """``institution_id`` → ``district_code`` of the directory (first row of a repeated code)."""
    names = directory.collect_schema().names()
    missing = [c for c in ("institution_id", "district_code") if c not in names]
    if missing:
        raise UnusableInputError(
            f"名录库缺少列 {contract.names_zh(missing, 'directory')}，无法按区统计批次问题",
            f"the directory lacks the column(s) {', '.join(missing)}: district batches "
            "cannot be counted",
        )
    return (
        directory.lazy()
        .select(
            pl.col("institution_id").cast(pl.String, strict=False),
            pl.col("district_code").cast(pl.String, strict=False),
        )
        .drop_nulls()
        .unique("institution_id", keep="first", maintain_order=True)
    )


def _systemic(
    members: pl.LazyFrame, population: pl.LazyFrame, kind: str, settings: VerifySettings
) -> pl.DataFrame:
    """Systemic (rule, scope, year) of one kind of scope, with the batch's figures and id.

    ``members``: the folded findings with their scope (``__scope``, never null); ``population``:
    the distinct returns (``__scope``, ``year``, ``institution_id``) of each scope.
    """
    key = [_SCOPE, "year", "institution_id"]
    total = (
        pl.concat([population.select(key), members.select(key)])
        .unique()
        .group_by(_SCOPE, "year")
        .agg(pl.len().cast(pl.Int64).alias("total"))
    )
    counts = members.group_by("rule_id", _SCOPE, "year").agg(
        pl.col("category").first(),
        pl.col("severity").first(),
        pl.col("institution_id").n_unique().cast(pl.Int64).alias("returns"),
        pl.col("field").n_unique().alias("fields"),
        pl.col("field").first(),
    )
    found = (
        counts.join(total, on=[_SCOPE, "year"], how="left", nulls_equal=True)
        .filter(
            (pl.col("returns") >= settings.batch_min_returns)
            & (pl.col("returns") / pl.col("total") >= settings.batch_share)
        )
        .with_columns(
            pl.when(pl.col("fields") == 1).then(pl.col("field")).alias("field"),
            pl.lit(kind).alias("kind"),
        )
        .drop("fields")
        .sort("rule_id", _SCOPE, "year", nulls_last=True)
        .collect()
    )
    ids = [
        finding_id(rule_id, None, year, None, f"batch:{kind}:{scope}")
        for rule_id, scope, year in found.select("rule_id", _SCOPE, "year").iter_rows()
    ]
    return found.with_columns(pl.Series("batch_id", ids, dtype=pl.String))


def _field_text(field: str | None) -> tuple[str, str]:
    """``，字段“水(立方米)”(water_m3)`` and ``, field water_m3 (水(立方米))``; empty for none."""
    if field is None:
        return "", ""
    spec = contract.table("returns")
    header = contract.header_zh(spec.column(field)) if field in spec.names else field
    return f"，字段“{header}”({field})", f", field {field} ({header})"


def _messages(batch: Mapping[str, object], names: Mapping[str, tuple[str, str]]) -> tuple[str, str]:
    """Chinese and English message of one batch finding."""
    scope, year = str(batch[_SCOPE]), batch["year"]
    n, total = int(batch["returns"]), int(batch["total"])  # type: ignore[call-overload]
    share = n / total
    rule_id = str(batch["rule_id"])
    rule = _RULES.get(rule_id)
    title_zh, title_en = (rule.title_zh, rule.title_en) if rule else (rule_id, rule_id)
    field_zh, field_en = _field_text(batch["field"])  # type: ignore[arg-type]
    year_zh = f"{year} 年的 " if year is not None else ""
    year_en = f" of {year}" if year is not None else ""
    if batch["kind"] == "file":
        where_zh, where_en = f"文件 {scope} 中 {year_zh}", f"file {scope}"
    elif scope in names:
        zh, en = names[scope]
        where_zh, where_en = f"{zh}（{scope}）{year_zh}", f"{en} ({zh}, {scope})"
    else:
        where_zh = f"区划代码 {scope}（不在区划表中）{year_zh}"
        where_en = f"district {scope} (not in the district table)"
    message_zh = (
        f"{where_zh}{n:,} 条填报（共 {total:,} 条，占 {share:.1%}）触发同一规则："
        f"{title_zh}{field_zh}（{rule_id}），按一个批次问题处理；逐条发现保留在表中，优先级降为 0"
    )
    message_en = (
        f"{where_en}: {n:,} of {total:,} returns{year_en} ({share:.1%}) trip the same rule: "
        f"{title_en}{field_en} ({rule_id}); handled as one batch problem, the single findings "
        "stay in the table at priority 0"
    )
    return message_zh, message_en


def _batch_rows(batches: pl.DataFrame, districts: pl.DataFrame | None) -> pl.DataFrame:
    """Return the batch findings in contract columns and dtypes."""
    if batches.is_empty():
        return empty_findings()
    table = load_districts(districts)
    names = {
        code: (zh or code, en or zh or code)
        for code, zh, en in table.select("district_code", "name_zh", "name_en").iter_rows()
    }
    texts = [_messages(b, names) for b in batches.iter_rows(named=True)]
    frame = batches.select(
        pl.col("batch_id").alias("finding_id"),
        "rule_id",
        "category",
        "severity",
        pl.lit(None, pl.String).alias("institution_id"),
        "year",
        "field",
        pl.col("returns").cast(pl.Float64).alias("value"),
        pl.lit(None, pl.Float64).alias("expected_low"),
        pl.lit(None, pl.Float64).alias("expected_high"),
        pl.lit(None, pl.Float64).alias("suggested_value"),
        pl.col("severity")
        .replace_strict(dict(DEFAULT_PRIORITY), return_dtype=pl.Float64)
        .alias("priority"),
        pl.Series("message_zh", [t[0] for t in texts], dtype=pl.String),
        pl.Series("message_en", [t[1] for t in texts], dtype=pl.String),
        pl.when(pl.col("kind") == "file").then(pl.col(_SCOPE)).alias("source_file"),
        pl.lit(None, pl.Int64).alias("source_row"),
        pl.lit(None, pl.String).alias("batch_id"),
        pl.lit(None).alias("evidence"),
    )
    schema = contract.table("findings").polars_schema
    return frame.select(pl.col(name).cast(dtype) for name, dtype in schema.items())


def fold_systemic(
    findings: pl.DataFrame,
    returns: pl.DataFrame | pl.LazyFrame,
    directory: pl.DataFrame | pl.LazyFrame,
    settings: VerifySettings | None = None,
    *,
    districts: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Fold each rule's findings on most returns of one file or district into one batch finding.

    Parameters
    ----------
    findings : polars.DataFrame
        Findings (data contract §5), e.g. everything the checks of :func:`energy_audit.verify.
        run.verify` returned; not yet folded (``batch_id`` null or absent). Not changed.
    returns : polars.DataFrame or polars.LazyFrame
        The returns verified (``institution_id``, ``year``, ``source_file``): the returns of
        each scope (a file without ``source_file`` has no file batches).
    directory : polars.DataFrame or polars.LazyFrame
        The directory (``institution_id``, ``district_code``): the district of each
        institution.
    settings : VerifySettings, optional
        ``batch_share`` [0-1] and ``batch_min_returns`` [returns] (default
        :class:`VerifySettings`).
    districts : polars.DataFrame, optional
        District table naming the districts in messages (default: the packaged one,
        :func:`energy_audit.districts.load_districts`).

    Returns
    -------
    polars.DataFrame
        ``findings`` plus one batch finding per systemic rule and scope, highest priority
        first (:func:`energy_audit.findings.sort_findings`). Members of a batch have priority
        0 and ``batch_id`` = the batch's ``finding_id``; every other finding is unchanged with
        ``batch_id`` null. See the module docstring for the rules of folding.

    Raises
    ------
    UnusableInputError
        If ``findings`` are already folded, or ``returns`` / ``directory`` lack the identity
        or district columns.

    Examples
    --------
    >>> folded = fold_systemic(findings, returns, directory)  # doctest: +SKIP
    >>> batch_findings(folded).select("rule_id", "value", "members", "message_zh")  # doctest: +SKIP
    """
    settings = settings or VerifySettings()
    schema = contract.table("findings").polars_schema
    for name in ("batch_id", "evidence"):
        if name not in findings.columns:
            findings = findings.with_columns(pl.lit(None).alias(name))
    findings = findings.select(pl.col(name).cast(dtype) for name, dtype in schema.items())
    if findings["batch_id"].is_not_null().any():
        raise UnusableInputError(
            "这些核查发现已按批次处理过（batch_id 已有取值），不能再次处理",
            "these findings are already folded into batches (batch_id is set): fold them once",
        )
    indexed = findings.with_row_index(_ROW).lazy()
    members = indexed.filter(
        pl.col("category").is_in(FOLDED_CATEGORIES) & pl.col("institution_id").is_not_null()
    ).select(
        _ROW, "rule_id", "category", "severity", "institution_id", "year", "field", "source_file"
    )
    # the returns' keys, the districts and the members in districts are each read by several
    # queries below: collected once, not once per query (a unique and a join of 1 M rows)
    keys = _return_keys(returns).collect().lazy()
    district_of = _district_map(directory).collect().lazy()

    in_files = members.filter(pl.col("source_file").is_not_null()).with_columns(
        pl.col("source_file").alias(_SCOPE)
    )
    file_population = keys.filter(pl.col("source_file").is_not_null()).select(
        pl.col("source_file").alias(_SCOPE), "year", "institution_id"
    )
    in_districts = (
        members.join(district_of, on="institution_id", how="inner")
        .with_columns(pl.col("district_code").alias(_SCOPE))
        .collect()
        .lazy()
    )
    district_population = keys.join(district_of, on="institution_id", how="inner").select(
        pl.col("district_code").alias(_SCOPE), "year", "institution_id"
    )
    found = {
        "file": _systemic(in_files, file_population, "file", settings),
        "district": _systemic(in_districts, district_population, "district", settings),
    }
    if all(f.is_empty() for f in found.values()):
        return sort_findings(findings)

    # each member goes to its larger batch (more returns; the file on a tie)
    on = ["rule_id", _SCOPE, "year"]
    choice = in_files.select(_ROW, *on).join(
        found["file"].lazy().select(*on, "batch_id", "returns"),
        on=on,
        how="inner",
        nulls_equal=True,
    )
    choice = pl.concat(
        [
            choice.with_columns(pl.lit(0).alias("order")),
            in_districts.select(_ROW, *on)
            .join(
                found["district"].lazy().select(*on, "batch_id", "returns"),
                on=on,
                how="inner",
                nulls_equal=True,
            )
            .with_columns(pl.lit(1).alias("order")),
        ]
    )
    assigned = (
        choice.group_by(_ROW)
        .agg(
            pl.col("batch_id")
            .sort_by("returns", "order", descending=[True, False])
            .first()
            .alias("__batch")
        )
        .collect()
    )
    folded = (
        findings.with_row_index(_ROW)
        .join(assigned, on=_ROW, how="left", maintain_order="left")
        .with_columns(
            pl.when(pl.col("__batch").is_not_null())
            .then(pl.lit(0.0))
            .otherwise(pl.col("priority"))
            .alias("priority"),
            pl.col("__batch").alias("batch_id"),
        )
        .select(schema.names())
    )
    kept = assigned.get_column("__batch").unique().implode()
    batches = pl.concat(
        [f.filter(pl.col("batch_id").is_in(kept)) for f in found.values()], how="vertical"
    )
    return sort_findings(pl.concat([folded, _batch_rows(batches, districts)], how="vertical"))


def batch_findings(findings: pl.DataFrame) -> pl.DataFrame:
    """Return the batch findings of a folded findings table, with their number of members.

    Parameters
    ----------
    findings : polars.DataFrame
        Findings as :func:`fold_systemic` (or :func:`energy_audit.verify.run.verify`) returns
        them.

    Returns
    -------
    polars.DataFrame
        The batch findings (those whose ``finding_id`` is some finding's ``batch_id``), in
        their order, plus ``members`` (UInt32): the findings folded into each.
    """
    if "batch_id" not in findings.columns:
        return findings.clear().with_columns(pl.lit(None, pl.UInt32).alias("members"))
    members = (
        findings.filter(pl.col("batch_id").is_not_null())
        .group_by("batch_id")
        .agg(pl.len().alias("members"))
        .rename({"batch_id": "finding_id"})
    )
    return findings.join(members, on="finding_id", how="inner", maintain_order="left")
