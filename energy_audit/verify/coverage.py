"""Coverage (完整性): every institution in scope has exactly one return, and only they do.

The scope of year Y is the directory's institutions that must report for Y: with a directory
store, every institution active at any time in Y (:meth:`DirectoryStore.scope`); with a single
snapshot, its ``active`` institutions (a snapshot cannot tell when a dissolved one stopped).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import polars as pl

from energy_audit import contract
from energy_audit.directory.checks import normalized_name
from energy_audit.findings import Rule, empty_findings, findings_from_hits, provenance


def _rule(rule_id: str, severity: str, zh: str, en: str) -> Rule:
    return Rule(rule_id, "coverage", severity, zh, en)  # type: ignore[arg-type]


R_MISSING = _rule("COV-001", "error", "名录库内单位未报送", "institution in scope sent no return")
R_UNKNOWN = _rule(
    "COV-002", "error", "报送单位不在名录库中", "return from an institution not in the directory"
)
R_OUT_OF_SCOPE = _rule(
    "COV-003", "warning", "报送单位已撤销或合并", "return from a dissolved or merged institution"
)
R_DUPLICATE = _rule(
    "COV-004", "warning", "重复报送(数据相同)", "the same return sent twice (identical)"
)
R_CONFLICT = _rule(
    "COV-005", "error", "重复报送且数据不一致", "two returns of one institution and year differ"
)
R_NAME = _rule(
    "COV-006", "warning", "填报单位名称与名录库不一致", "reported name differs from the directory"
)

COVERAGE_RULES: Final[tuple[Rule, ...]] = (
    R_MISSING,
    R_UNKNOWN,
    R_OUT_OF_SCOPE,
    R_DUPLICATE,
    R_CONFLICT,
    R_NAME,
)
"""Every coverage rule, in id order."""

_RETURN_COLUMNS: Final = contract.table("returns").names
_FIGURES: Final = tuple(c for c in _RETURN_COLUMNS if c not in ("institution_id", "year", "name"))


@dataclass(frozen=True)
class Coverage:
    """Who was expected to report and who did, for one year.

    Attributes
    ----------
    expected : int
        Institutions in scope.
    received : int
        Institutions in scope with at least one return.
    missing : int
        Institutions in scope without a return.
    unknown : int
        Institutions with a return that are not in the directory.
    out_of_scope : int
        Institutions with a return that are in the directory but not in scope.
    duplicated : int
        Institutions with more than one return of the year.
    """

    expected: int
    received: int
    missing: int
    unknown: int
    out_of_scope: int
    duplicated: int

    @property
    def submission_rate_pct(self) -> float | None:
        """Received ÷ expected [%] (None when nobody is expected)."""
        return 100.0 * self.received / self.expected if self.expected else None

    def to_dict(self) -> dict[str, float | int | None]:
        """Return the counts as a JSON-serialisable dict."""
        return {
            "expected": self.expected,
            "received": self.received,
            "missing": self.missing,
            "unknown": self.unknown,
            "out_of_scope": self.out_of_scope,
            "duplicated": self.duplicated,
            "submission_rate_pct": self.submission_rate_pct,
        }


def _row_key(frame: pl.DataFrame) -> pl.Expr:
    """Where a return came from (file:sheet:row), else its position in the input frame."""
    parts = [
        pl.col(c).cast(pl.String).fill_null("")
        for c in ("source_file", "source_sheet", "source_row")
        if c in frame.columns
    ]
    if parts:
        return pl.concat_str(parts, separator=":")
    return pl.format("#{}", "_position")


def check_coverage(
    returns: pl.DataFrame, *, directory: pl.DataFrame, scope: pl.DataFrame, year: int
) -> tuple[pl.DataFrame, Coverage]:
    """Check the returns of ``year`` against the directory and its scope.

    Parameters
    ----------
    returns : polars.DataFrame
        Canonical returns (other years are ignored here; validity reports them).
    directory : polars.DataFrame
        Every institution the directory knows (any status), canonical columns.
    scope : polars.DataFrame
        The institutions that must report for ``year`` (``institution_id``, ``name``).
    year : int
        Reporting year.

    Returns
    -------
    findings : polars.DataFrame
        Coverage findings (data contract §5).
    coverage : Coverage
        Expected / received / missing / unknown counts.
    """
    r = returns.with_row_index("_position").filter(pl.col("year") == year)
    known = directory.unique("institution_id", keep="last", maintain_order=True)
    in_scope = scope.select("institution_id").unique()
    ids = r.select("institution_id").unique()
    # one join finds every return's directory entry, if any (unknown, out of scope, name)
    listed = r.join(
        known.select(
            "institution_id",
            "status",
            "merged_into_id",
            pl.col("name").alias("directory_name"),
            pl.lit(True).alias("_listed"),
        ),
        on="institution_id",
        how="left",
        maintain_order="left",
    )
    hits: dict[Rule, pl.DataFrame] = {}

    # the first row of each institution of the scope that sent nothing
    missing = scope.join(ids, on="institution_id", how="anti").unique(
        "institution_id", keep="first"
    )
    hits[R_MISSING] = missing.select(
        "institution_id",
        pl.lit(year).alias("year"),
        pl.lit(None, pl.String).alias("field"),
        pl.format(
            "{}（{}）在{}年名录库报送范围内，但未报送数据", "name", "institution_id", pl.lit(year)
        ).alias("message_zh"),
        pl.format(
            "{} ({}) is in the {} scope but sent no return", "name", "institution_id", pl.lit(year)
        ).alias("message_en"),
    )

    unknown = listed.filter(pl.col("_listed").is_null())
    hits[R_UNKNOWN] = unknown.select(
        "institution_id",
        "year",
        pl.lit("institution_id").alias("field"),
        pl.format(
            "报送单位 {}（{}）不在名录库中", "institution_id", pl.col("name").fill_null("未填名称")
        ).alias("message_zh"),
        pl.format(
            "{} ({}) is not in the directory", "institution_id", pl.col("name").fill_null("no name")
        ).alias("message_en"),
        *provenance(unknown),
        _row_key(unknown).alias("key"),
    )

    out = listed.filter(pl.col("_listed")).join(in_scope, on="institution_id", how="anti")
    hits[R_OUT_OF_SCOPE] = out.select(
        "institution_id",
        "year",
        pl.lit("institution_id").alias("field"),
        pl.format(
            "单位 {} 在名录库中状态为 {}{}，不在{}年报送范围内",
            "institution_id",
            "status",
            pl.when(pl.col("merged_into_id").is_not_null())
            .then(pl.format("（并入 {}）", "merged_into_id"))
            .otherwise(pl.lit("")),
            pl.lit(year),
        ).alias("message_zh"),
        pl.format(
            "{} is {} in the directory{}, not in the {} scope",
            "institution_id",
            "status",
            pl.when(pl.col("merged_into_id").is_not_null())
            .then(pl.format(" (into {})", "merged_into_id"))
            .otherwise(pl.lit("")),
            pl.lit(year),
        ).alias("message_en"),
        *provenance(out),
        _row_key(out).alias("key"),
    )

    figures = [c for c in _FIGURES if c in r.columns]
    multi = r.with_columns(pl.len().over("institution_id").alias("copies")).filter(
        pl.col("copies") > 1
    )
    if multi.height:
        multi = multi.with_columns(
            pl.struct(figures).n_unique().over("institution_id").alias("variants")
        )
        identical = (
            multi.filter(pl.col("variants") == 1)
            .with_columns(pl.int_range(pl.len()).over("institution_id").alias("copy"))
            .filter(pl.col("copy") > 0)
        )
        hits[R_DUPLICATE] = identical.select(
            "institution_id",
            "year",
            pl.lit(None, pl.String).alias("field"),
            pl.format("{}年数据重复报送 {} 份，内容相同", "year", "copies").alias("message_zh"),
            pl.format("{} copies of the {} return, identical", "copies", "year").alias(
                "message_en"
            ),
            *provenance(identical),
            _row_key(identical).alias("key"),
        )
        conflicting = multi.filter(pl.col("variants") > 1)
        differing = (
            conflicting.group_by("institution_id")
            .agg([pl.col(c).n_unique().alias(c) for c in figures])
            .select(
                "institution_id",
                pl.concat_str(
                    [pl.when(pl.col(c) > 1).then(pl.lit(c)) for c in figures],
                    separator=", ",
                    ignore_nulls=True,
                ).alias("fields"),
            )
        )
        conflicting = conflicting.join(differing, on="institution_id")
        hits[R_CONFLICT] = conflicting.select(
            "institution_id",
            "year",
            pl.lit(None, pl.String).alias("field"),
            pl.format("{}年报送 {} 份且数据不一致（{}）", "year", "copies", "fields").alias(
                "message_zh"
            ),
            pl.format("{} returns for {} that differ in {}", "copies", "year", "fields").alias(
                "message_en"
            ),
            *provenance(conflicting),
            _row_key(conflicting).alias("key"),
        )

    named = listed.filter(pl.col("_listed") & pl.col("name").is_not_null())
    if named.height:
        # the same text has the same key: normalise only the names that differ as written
        named = named.filter(pl.col("name").ne_missing(pl.col("directory_name"))).filter(
            normalized_name(pl.col("name")) != normalized_name(pl.col("directory_name"))
        )
    hits[R_NAME] = named.select(
        "institution_id",
        "year",
        pl.lit("name").alias("field"),
        pl.format("填报名称“{}”与名录库名称“{}”不一致", "name", "directory_name").alias(
            "message_zh"
        ),
        pl.format(
            "reported name '{}' differs from the directory's '{}'", "name", "directory_name"
        ).alias("message_en"),
        *provenance(named),
        _row_key(named).alias("key"),
    )

    parts = [
        findings_from_hits(rule, hits[rule])
        for rule in COVERAGE_RULES
        if rule in hits and hits[rule].height
    ]
    findings = pl.concat(parts) if parts else empty_findings()
    received = in_scope.height - missing.height  # the scope's institutions that sent a return
    coverage = Coverage(
        expected=in_scope.height,
        received=received,
        missing=in_scope.height - received,
        unknown=unknown["institution_id"].n_unique(),
        out_of_scope=out["institution_id"].n_unique(),
        duplicated=multi["institution_id"].n_unique() if multi.height else 0,
    )
    return findings, coverage
