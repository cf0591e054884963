"""Directory checks (名录库): each a rule with a stable id, each returning findings.

:func:`check_directory` runs every rule of :data:`DIRECTORY_RULES` on a directory snapshot and
returns one findings table (category ``directory``, year null). A check never changes its input
and never raises on bad data. Rules (domain.md §4-5, data contract §1):

- codes: invalid GB 32100 / GB 11714 check characters (with the expected characters), the same
  code twice, an enterprise code (91…), a code whose category does not fit the institution type;
- duplicates: the same institution under two codes (same normalised name in one district, or
  same normalised name and address);
- values: unknown district, unknown enumeration labels, empty required fields;
- hierarchy: parent missing, parent dissolved or merged, cycles, a unit above its parent's level;
- merges: merged without a target, or a target not in the directory;
- reading: cells and rows the reader had to quarantine.

Personal data (contract columns marked ``personal``: contact name and phone) never enters a
finding: in a quarantined row or cell a personal value is quoted as
:data:`~energy_audit.io.readers.PERSONAL_MASK`
(:func:`~energy_audit.io.readers.mask_personal_quarantine`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import polars as pl

from energy_audit import contract
from energy_audit.directory.codes import credit_codes_valid, validate_credit_code
from energy_audit.districts import load_districts
from energy_audit.findings import (
    Rule,
    empty_findings,
    findings_from_hits,
    provenance,
    sort_findings,
)
from energy_audit.io.readers import ReadResult, mask_personal_quarantine


def _rule(rule_id: str, severity: str, zh: str, en: str, *settings: str) -> Rule:
    return Rule(rule_id, "directory", severity, zh, en, settings)  # type: ignore[arg-type]


R_INVALID_CODE = _rule(
    "DIR-001", "error", "统一社会信用代码校验位错误", "credit code fails its check characters"
)
R_DUPLICATE_CODE = _rule(
    "DIR-002", "error", "统一社会信用代码重复", "the same credit code appears more than once"
)
R_PROBABLE_DUPLICATE = _rule(
    "DIR-003", "warning", "疑似同一单位使用两个代码", "probably one institution under two codes"
)
R_UNKNOWN_DISTRICT = _rule(
    "DIR-004", "error", "所在区不在区划表中", "district not in the region's district table"
)
R_UNKNOWN_VALUE = _rule(
    "DIR-005", "error", "取值不在规定范围内", "value not among the contract's codes or labels"
)
R_REQUIRED_EMPTY = _rule("DIR-006", "error", "必填项为空", "required field is empty")
R_PARENT_MISSING = _rule(
    "DIR-007", "error", "上级主管单位不在名录库中", "parent institution not in the directory"
)
R_PARENT_INACTIVE = _rule(
    "DIR-008", "warning", "上级主管单位已撤销或合并", "parent institution is dissolved or merged"
)
R_PARENT_CYCLE = _rule("DIR-009", "error", "上级主管关系成环", "cycle in the parent chain")
R_LEVEL_ABOVE_PARENT = _rule(
    "DIR-010",
    "error",
    "隶属层级高于上级主管单位",
    "administrative level above the parent's",
    "level_order",
)
R_TYPE_CODE_MISMATCH = _rule(
    "DIR-011",
    "warning",
    "单位性质与代码类别不符",
    "institution type does not fit the code's category",
    "type_prefixes",
)
R_ENTERPRISE_CODE = _rule(
    "DIR-012",
    "warning",
    "代码为企业代码(91开头)",
    "credit code of an enterprise",
    "enterprise_prefixes",
)
R_MERGED_WITHOUT_TARGET = _rule(
    "DIR-013", "error", "合并单位未填并入单位", "merged without merged_into_id"
)
R_MERGE_TARGET_MISSING = _rule(
    "DIR-014",
    "error",
    "并入单位不在名录库中或非正常状态",
    "merge target not in the directory or not active",
)
R_UNREADABLE_CELL = _rule(
    "DIR-015", "error", "单元格无法读取", "a cell of the file could not be read"
)
R_UNREADABLE_ROW = _rule(
    "DIR-016", "error", "行无法识别单位(无代码)", "a row without a readable credit code"
)

DIRECTORY_RULES: Final[tuple[Rule, ...]] = (
    R_INVALID_CODE,
    R_DUPLICATE_CODE,
    R_PROBABLE_DUPLICATE,
    R_UNKNOWN_DISTRICT,
    R_UNKNOWN_VALUE,
    R_REQUIRED_EMPTY,
    R_PARENT_MISSING,
    R_PARENT_INACTIVE,
    R_PARENT_CYCLE,
    R_LEVEL_ABOVE_PARENT,
    R_TYPE_CODE_MISMATCH,
    R_ENTERPRISE_CODE,
    R_MERGED_WITHOUT_TARGET,
    R_MERGE_TARGET_MISSING,
    R_UNREADABLE_CELL,
    R_UNREADABLE_ROW,
)
"""Every directory rule, in id order."""


@dataclass(frozen=True)
class DirectoryCheckSettings:
    """Settings of the directory checks (one frozen, serialisable object).

    Attributes
    ----------
    level_order : tuple of str
        Administrative levels from highest to lowest (NBS 20, 40, 60).
    type_prefixes : Mapping of str to tuple of str
        Credit-code prefixes (positions 1-2) that fit each institution type (domain.md §4):
        机关 11, 事业单位 12, 团体组织 13 or 51-53 (registered with 民政).
    enterprise_prefixes : tuple of str
        Prefixes of enterprise codes (工商: 91 company, 92 individual business, 93 co-op).
    """

    level_order: tuple[str, ...] = ("municipal", "district", "subdistrict")
    type_prefixes: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: {
            "agency": ("11",),
            "public_service_unit": ("12",),
            "organization": ("13", "51", "52", "53"),
        }
    )
    enterprise_prefixes: tuple[str, ...] = ("91", "92", "93")

    def to_dict(self) -> dict[str, object]:
        """Return the settings as a JSON-serialisable dict."""
        return {
            "level_order": list(self.level_order),
            "type_prefixes": {k: list(v) for k, v in self.type_prefixes.items()},
            "enterprise_prefixes": list(self.enterprise_prefixes),
        }


def normalized_name(text: pl.Expr) -> pl.Expr:
    """Return the key two names of one institution share: NFKC, no spaces or punctuation.

    ``天津市第一中学（南校区）`` and ``天津市 第一中学(南校区)`` give the same key; ``第一中学`` and
    ``第二中学`` do not. A null name gives ``""``.

    Parameters
    ----------
    text : polars.Expr
        Names (or addresses) as ``String``.

    Returns
    -------
    polars.Expr
        The matching key, lower case.
    """
    return (
        text.fill_null("").str.normalize("NFKC").str.replace_all(r"[\s\W_]+", "").str.to_lowercase()
    )


def _invalid_codes(d: pl.DataFrame) -> pl.DataFrame:
    codes = d["institution_id"].to_list()
    bad = d.filter(pl.Series(~credit_codes_valid(codes)))
    rows = []
    for code, src_file, src_row in bad.select(
        "institution_id", "source_file", "source_row"
    ).iter_rows():
        check = validate_credit_code(code)
        problems = "; ".join(check.problems)
        problems_zh = "；".join(check.problems_zh)
        expected = check.expected_check_char
        zh = f"统一社会信用代码 {code} 无效：{problems_zh}"
        if expected is not None and check.code[-1:] != expected:
            zh = f"统一社会信用代码 {code} 校验位为 {check.code[-1]}，应为 {expected}"
        rows.append(
            {
                "institution_id": code,
                "field": "institution_id",
                "message_zh": zh,
                "message_en": f"credit code {code}: {problems}",
                "source_file": src_file,
                "source_row": src_row,
                "key": str(src_row),
            }
        )
    return pl.DataFrame(rows) if rows else pl.DataFrame()


def _duplicate_codes(d: pl.DataFrame) -> pl.DataFrame:
    dup = d.with_columns(
        pl.len().over("institution_id").alias("n"),
        pl.col("source_row").min().over("institution_id").alias("first_row"),
    ).filter(pl.col("n") > 1)
    return dup.select(
        "institution_id",
        pl.lit("institution_id").alias("field"),
        pl.format(
            "统一社会信用代码 {} 在名录库中出现 {} 次（首次在第 {} 行）",
            "institution_id",
            "n",
            "first_row",
        ).alias("message_zh"),
        pl.format(
            "credit code {} appears {} times in the directory (first on row {})",
            "institution_id",
            "n",
            "first_row",
        ).alias("message_en"),
        *provenance(dup),
        pl.col("source_row").cast(pl.String).alias("key"),
    )


def _probable_duplicates(d: pl.DataFrame) -> pl.DataFrame:
    keyed = d.unique("institution_id", keep="first", maintain_order=True).with_columns(
        normalized_name(pl.col("name")).alias("name_key"),
        normalized_name(pl.col("address")).alias("addr_key"),
    )
    parts = []
    for by, why_zh, why_en in (
        (["name_key", "district_code"], "同区同名", "same name in the same district"),
        (["name_key", "addr_key"], "名称和地址相同", "same name and address"),
    ):
        grouped = keyed.filter(pl.col("name_key") != "")
        if "addr_key" in by:
            grouped = grouped.filter(pl.col("addr_key") != "")
        grouped = grouped.with_columns(
            pl.col("institution_id").implode().over(by).alias("others")
        ).filter(pl.col("others").list.len() > 1)
        parts.append(
            grouped.select(
                "institution_id",
                pl.lit("name").alias("field"),
                pl.col("others")
                .list.set_difference(pl.concat_list("institution_id"))
                .list.sort()
                .list.join("、")
                .alias("others"),
                pl.lit(why_zh).alias("why_zh"),
                pl.lit(why_en).alias("why_en"),
                "name",
                *provenance(grouped),
            )
        )
    hits = pl.concat(parts).unique(["institution_id", "others"], keep="first", maintain_order=True)
    return hits.select(
        "institution_id",
        "field",
        pl.format(
            "{}（{}）与 {} 疑似同一单位（{}）", "name", "institution_id", "others", "why_zh"
        ).alias("message_zh"),
        pl.format(
            "{} ({}) is probably the same institution as {} ({})",
            "name",
            "institution_id",
            "others",
            "why_en",
        ).alias("message_en"),
        "source_file",
        "source_row",
        pl.col("others").alias("key"),
    )


def _unknown_values(
    d: pl.DataFrame, district_codes: list[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    spec = contract.table("directory")
    district = d.filter(
        pl.col("district_code").is_not_null() & ~pl.col("district_code").is_in(district_codes)
    )
    districts = district.select(
        "institution_id",
        pl.lit("district_code").alias("field"),
        pl.format("所在区“{}”不在区划表中", "district_code").alias("message_zh"),
        pl.format("district '{}' is not a district of the region", "district_code").alias(
            "message_en"
        ),
        *provenance(district),
    )
    parts = []
    for col in spec.columns:
        if col.dtype != "enum" or col.name not in d.columns:
            continue
        bad = d.filter(pl.col(col.name).is_not_null() & ~pl.col(col.name).is_in(list(col.codes)))
        allowed = "、".join(f"{v.labels[0] if v.labels else v.code}" for v in col.values)
        parts.append(
            bad.select(
                "institution_id",
                pl.lit(col.name).alias("field"),
                pl.format(f"{col.description_zh}“{{}}”不是规定取值（{allowed}）", col.name).alias(
                    "message_zh"
                ),
                pl.format(
                    f"{col.name} '{{}}' is not one of {', '.join(col.codes)}", col.name
                ).alias("message_en"),
                *provenance(bad),
            )
        )
    return districts, pl.concat(parts) if parts else pl.DataFrame()


def _required_empty(d: pl.DataFrame) -> pl.DataFrame:
    spec = contract.table("directory")
    parts = []
    for col in spec.columns:
        if not col.required or col.name == "institution_id" or col.name not in d.columns:
            continue
        blank = pl.col(col.name).is_null()
        if col.polars_dtype == pl.String:
            blank = blank | (pl.col(col.name).str.strip_chars() == "")
        bad = d.filter(blank)
        parts.append(
            bad.select(
                "institution_id",
                pl.lit(col.name).alias("field"),
                pl.lit(f"必填项“{col.description_zh}”为空").alias("message_zh"),
                pl.lit(f"required field {col.name} is empty").alias("message_en"),
                *provenance(bad),
            )
        )
    return pl.concat(parts) if parts else pl.DataFrame()


def _hierarchy(d: pl.DataFrame, settings: DirectoryCheckSettings) -> dict[Rule, pl.DataFrame]:
    first = d.unique("institution_id", keep="first", maintain_order=True)
    parents = first.select(
        pl.col("institution_id").alias("parent_id"),
        pl.col("status").alias("parent_status"),
        pl.col("admin_level").alias("parent_level"),
        pl.col("name").alias("parent_name"),
    )
    children = d.filter(pl.col("parent_id").is_not_null()).join(parents, on="parent_id", how="left")
    missing = children.filter(
        pl.col("parent_status").is_null()
        & pl.col("parent_level").is_null()
        & pl.col("parent_name").is_null()
    )
    known = children.join(
        missing.select("institution_id", "source_row"),
        on=["institution_id", "source_row"],
        how="anti",
    )
    inactive = known.filter(
        (pl.col("status").fill_null("active") == "active")
        & pl.col("parent_status").is_in(["dissolved", "merged"])
    )
    rank = {level: i for i, level in enumerate(settings.level_order)}
    above = known.with_columns(
        pl.col("admin_level").replace_strict(rank, default=None, return_dtype=pl.Int64).alias("r"),
        pl.col("parent_level")
        .replace_strict(rank, default=None, return_dtype=pl.Int64)
        .alias("pr"),
    ).filter(pl.col("r") < pl.col("pr"))
    out = {
        R_PARENT_MISSING: missing.select(
            "institution_id",
            pl.lit("parent_id").alias("field"),
            pl.format("上级主管单位 {} 不在名录库中", "parent_id").alias("message_zh"),
            pl.format("parent {} is not in the directory", "parent_id").alias("message_en"),
            *provenance(missing),
        ),
        R_PARENT_INACTIVE: inactive.select(
            "institution_id",
            pl.lit("parent_id").alias("field"),
            pl.format(
                "上级主管单位 {}（{}）状态为 {}", "parent_id", "parent_name", "parent_status"
            ).alias("message_zh"),
            pl.format("parent {} ({}) is {}", "parent_id", "parent_name", "parent_status").alias(
                "message_en"
            ),
            *provenance(inactive),
        ),
        R_LEVEL_ABOVE_PARENT: above.select(
            "institution_id",
            pl.lit("admin_level").alias("field"),
            pl.format(
                "隶属层级 {} 高于上级主管单位 {} 的层级 {}",
                "admin_level",
                "parent_id",
                "parent_level",
            ).alias("message_zh"),
            pl.format(
                "level {} is above its parent {}'s level {}",
                "admin_level",
                "parent_id",
                "parent_level",
            ).alias("message_en"),
            *provenance(above),
        ),
    }
    out[R_PARENT_CYCLE] = _cycles(first)
    return out


def _cycles(first: pl.DataFrame) -> pl.DataFrame:
    """Institutions on a cycle of the parent chain (a self-parent is a cycle of one)."""
    parent = dict(first.select("institution_id", "parent_id").iter_rows())
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    on_cycle: dict[str, list[str]] = {}
    for start in parent:
        path: list[str] = []
        node: str | None = start
        while node is not None and node in parent and state.get(node) is None:
            state[node] = 1
            path.append(node)
            node = parent[node]
        if node is not None and state.get(node) == 1:
            cycle = path[path.index(node) :]
            for member in cycle:
                on_cycle[member] = cycle
        for member in path:
            state[member] = 2
    if not on_cycle:
        return pl.DataFrame()
    rows = first.filter(pl.col("institution_id").is_in(list(on_cycle)))
    chains = {k: " → ".join([*v[v.index(k) :], *v[: v.index(k)], k]) for k, v in on_cycle.items()}
    return rows.select(
        "institution_id",
        pl.lit("parent_id").alias("field"),
        pl.format("上级主管关系成环：{}", pl.col("institution_id").replace_strict(chains)).alias(
            "message_zh"
        ),
        pl.format(
            "cycle in the parent chain: {}", pl.col("institution_id").replace_strict(chains)
        ).alias("message_en"),
        *provenance(rows),
    )


def _codes_and_types(d: pl.DataFrame, settings: DirectoryCheckSettings) -> dict[Rule, pl.DataFrame]:
    valid = d.filter(pl.Series(credit_codes_valid(d["institution_id"].to_list())))
    prefix = pl.col("institution_id").str.slice(0, 2)
    enterprise = valid.filter(prefix.is_in(list(settings.enterprise_prefixes)))
    type_rows = []
    for inst_type, prefixes in settings.type_prefixes.items():
        type_rows.append(
            valid.filter(
                (pl.col("institution_type") == inst_type)
                & ~prefix.is_in(list(prefixes))
                & ~prefix.is_in(list(settings.enterprise_prefixes))
            ).with_columns(pl.lit("/".join(prefixes)).alias("expected"))
        )
    mismatch = pl.concat(type_rows) if type_rows else valid.clear()
    return {
        R_ENTERPRISE_CODE: enterprise.select(
            "institution_id",
            pl.lit("institution_id").alias("field"),
            pl.format(
                "代码 {} 为企业代码（{}开头），公共机构一般不应为企业", "institution_id", prefix
            ).alias("message_zh"),
            pl.format("code {} is an enterprise code (prefix {})", "institution_id", prefix).alias(
                "message_en"
            ),
            *provenance(enterprise),
        ),
        R_TYPE_CODE_MISMATCH: mismatch.select(
            "institution_id",
            pl.lit("institution_type").alias("field"),
            pl.format(
                "单位性质为 {}，但代码前两位为 {}（应为 {}）",
                "institution_type",
                prefix,
                "expected",
            ).alias("message_zh"),
            pl.format(
                "institution type {} but code prefix {} (expected {})",
                "institution_type",
                prefix,
                "expected",
            ).alias("message_en"),
            *provenance(mismatch),
        ),
    }


def _merges(d: pl.DataFrame) -> dict[Rule, pl.DataFrame]:
    merged = d.filter(pl.col("status") == "merged")
    without = merged.filter(pl.col("merged_into_id").is_null())
    active = (
        d.filter(pl.col("status").fill_null("active") == "active")["institution_id"]
        .unique()
        .to_list()
    )
    bad_target = merged.filter(
        pl.col("merged_into_id").is_not_null() & ~pl.col("merged_into_id").is_in(active)
    )
    return {
        R_MERGED_WITHOUT_TARGET: without.select(
            "institution_id",
            pl.lit("merged_into_id").alias("field"),
            pl.lit("状态为合并，但未填写并入单位统一社会信用代码").alias("message_zh"),
            pl.lit("status is merged but merged_into_id is empty").alias("message_en"),
            *provenance(without),
        ),
        R_MERGE_TARGET_MISSING: bad_target.select(
            "institution_id",
            pl.lit("merged_into_id").alias("field"),
            pl.format("并入单位 {} 不在名录库中或非正常状态", "merged_into_id").alias("message_zh"),
            pl.format(
                "merge target {} is not an active institution of the directory", "merged_into_id"
            ).alias("message_en"),
            *provenance(bad_target),
        ),
    }


def _quarantine(d: pl.DataFrame, quarantine: pl.DataFrame) -> dict[Rule, pl.DataFrame]:
    if quarantine.is_empty():
        return {}
    quarantine = mask_personal_quarantine(quarantine, "directory")  # it may come from a caller
    ids = (
        d.select("institution_id", "source_file", "source_sheet", "source_row")
        if "source_file" in d.columns
        else None
    )
    cells = quarantine.filter(pl.col("column").is_not_null())
    if ids is not None:
        cells = cells.join(
            ids, on=["source_file", "source_sheet", "source_row"], how="left", nulls_equal=True
        )
    else:
        cells = cells.with_columns(pl.lit(None, pl.String).alias("institution_id"))
    rows = quarantine.filter(pl.col("column").is_null())
    # The reader's quarantine has the reason in both languages; a caller's may have only one.
    reason_en = pl.col("reason_en" if "reason_en" in quarantine.columns else "reason")
    return {
        R_UNREADABLE_CELL: cells.select(
            "institution_id",
            pl.col("column").alias("field"),
            pl.format("第 {} 行“{}”无法读取：{}", "source_row", "raw_value", "reason").alias(
                "message_zh"
            ),
            pl.format(
                "row {}: '{}' cannot be read: {}", "source_row", "raw_value", reason_en
            ).alias("message_en"),
            "source_file",
            "source_row",
            pl.col("column").alias("key"),
        ),
        R_UNREADABLE_ROW: rows.select(
            pl.lit(None, pl.String).alias("institution_id"),
            pl.lit(None, pl.String).alias("field"),
            pl.format("第 {} 行没有可读的统一社会信用代码：{}", "source_row", "raw_value").alias(
                "message_zh"
            ),
            pl.format("row {} has no readable credit code: {}", "source_row", "raw_value").alias(
                "message_en"
            ),
            "source_file",
            "source_row",
            pl.concat_str(
                pl.col("source_sheet").fill_null(""), pl.col("source_row").cast(pl.String)
            ).alias("key"),
        ),
    }


def check_directory(
    directory: pl.DataFrame | ReadResult,
    *,
    quarantine: pl.DataFrame | None = None,
    districts: pl.DataFrame | None = None,
    settings: DirectoryCheckSettings | None = None,
) -> pl.DataFrame:
    """Run every directory rule on a snapshot and return the findings.

    Parameters
    ----------
    directory : polars.DataFrame or ReadResult
        Canonical directory (data contract §1), e.g. ``read_directory(path)``; a ReadResult
        brings its quarantine along.
    quarantine : polars.DataFrame, optional
        The reader's quarantine (when ``directory`` is a frame): its entries become findings.
    districts : polars.DataFrame, optional
        The region's district table (default: Tianjin's, :func:`load_districts`).
    settings : DirectoryCheckSettings, optional
        Level order and code prefixes (default :class:`DirectoryCheckSettings`).

    Returns
    -------
    polars.DataFrame
        Findings (data contract §5), category ``directory``, ``year`` null, sorted by priority.
    """
    if isinstance(directory, ReadResult):
        quarantine = directory.quarantine if quarantine is None else quarantine
        directory = directory.data
    settings = settings or DirectoryCheckSettings()
    spec = contract.table("directory")
    d = directory
    for col in spec.columns:
        if col.name not in d.columns:
            d = d.with_columns(pl.lit(col.absent_default, col.polars_dtype).alias(col.name))
    for name, dtype in (
        ("source_file", pl.String),
        ("source_sheet", pl.String),
        ("source_row", pl.Int64),
    ):
        if name not in d.columns:
            d = d.with_columns(
                pl.int_range(1, pl.len() + 1).alias(name)
                if name == "source_row"
                else pl.lit(None, dtype).alias(name)
            )
    d = d.filter(pl.col("institution_id").is_not_null())
    codes = load_districts(districts)["district_code"].to_list()
    unknown_district, unknown_values = _unknown_values(d, codes)
    hits: dict[Rule, pl.DataFrame] = {
        R_INVALID_CODE: _invalid_codes(d),
        R_DUPLICATE_CODE: _duplicate_codes(d),
        R_PROBABLE_DUPLICATE: _probable_duplicates(d),
        R_UNKNOWN_DISTRICT: unknown_district,
        R_UNKNOWN_VALUE: unknown_values,
        R_REQUIRED_EMPTY: _required_empty(d),
        **_hierarchy(d, settings),
        **_codes_and_types(d, settings),
        **_merges(d),
        **_quarantine(d, quarantine if quarantine is not None else pl.DataFrame()),
    }
    parts = [
        findings_from_hits(rule, hits[rule])
        for rule in DIRECTORY_RULES
        if rule in hits and hits[rule].height
    ]
    return sort_findings(pl.concat(parts, how="vertical")) if parts else empty_findings()
