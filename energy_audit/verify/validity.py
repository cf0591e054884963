"""Validity: each return against the data contract, and what the reader could not read.

:func:`check_validity` runs every rule of :data:`VALIDITY_RULES` on the returns of a year and
returns one findings table (data contract §5, category ``validity``). Types, nullability and
ranges come from the contract alone: the returns are validated with the pandera model built
from ``schemas/returns.toml`` (:func:`energy_audit.contract.pandera_schema`), lazily, and every
failure case pandera reports becomes a finding instead of an exception. The quarantine of the
reader (data contract, "Cell values") becomes findings too, one per entry, with the raw text, so
nothing read is lost on the way to the panel.

Rules:

- ``VAL-001`` a required value (a non-nullable column: area, occupants, electricity, water,
  identity) is empty, or NaN;
- ``VAL-002`` a value outside the contract's range (a negative quantity, area or occupants not
  > 0, a year outside 2000-2100), naming the bound;
- ``VAL-003`` a column of the wrong dtype (only frames built by hand: the readers always give the
  contract dtypes), one finding per column;
- ``VAL-004`` a cell the reader quarantined, with its raw text and the reason;
- ``VAL-005`` a row the reader quarantined whole (its identity could not be read), quoting the row;
- ``VAL-006`` a return of another year than the year verified (warning);
- ``VAL-007`` the return's credit code fails its GB 32100-2015 / GB 11714 check characters.

How pandera's failure cases map to findings (checked on pandera 0.35 with polars 2.1):
``SchemaErrors.failure_cases`` is a polars frame with ``failure_case`` (the value as text, null
for a null), ``schema_context``, ``column``, ``check`` (``not_nullable``, ``greater_than(0)``,
``greater_than_or_equal_to(0)``, ``less_than_or_equal_to(2100)``, ``str_length(18, 18)``,
``dtype('Float64')`` …), ``check_number`` and ``index``, the 0-based position of the row in the
validated frame (null for a dtype failure, and for a check that could not run because the
column has the wrong dtype). NaN counts as null for ``not_nullable``; checks skip nulls. Each
failure case gives exactly one finding, and some share one: a row failure → a finding of that
row (VAL-001, VAL-002; the length of the credit code → VAL-007, which checks more); a dtype
failure → VAL-003 of the column, which also accounts for the checks that could not run on it; a
null in a cell the reader quarantined → the VAL-004 finding of that cell (the value was given
but unreadable, not "not reported").
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Final

import polars as pl

from energy_audit import contract
from energy_audit.contract import ColumnSpec
from energy_audit.directory.codes import (
    CREDIT_CODE_ALPHABET,
    CREDIT_CODE_LENGTH,
    credit_codes_valid,
    validate_credit_code,
)
from energy_audit.errors import UnusableInputError
from energy_audit.findings import Rule, empty_findings, findings_from_hits, sort_findings
from energy_audit.io.readers import ReadResult
from energy_audit.messages import number, number_text
from energy_audit.verify.settings import VerifySettings

__all__ = [
    "R_INVALID_CODE",
    "R_OTHER_YEAR",
    "R_OUT_OF_RANGE",
    "R_REQUIRED_MISSING",
    "R_UNREADABLE_CELL",
    "R_UNREADABLE_ROW",
    "R_WRONG_TYPE",
    "VALIDITY_RULES",
    "check_validity",
]


def _rule(rule_id: str, severity: str, zh: str, en: str) -> Rule:
    return Rule(rule_id, "validity", severity, zh, en)  # type: ignore[arg-type]


R_REQUIRED_MISSING = _rule("VAL-001", "error", "必填项未填报", "required value not reported")
R_OUT_OF_RANGE = _rule(
    "VAL-002", "error", "数值超出规定范围", "value outside the range the contract allows"
)
R_WRONG_TYPE = _rule("VAL-003", "error", "列的数据类型错误", "column of the wrong data type")
R_UNREADABLE_CELL = _rule(
    "VAL-004", "error", "单元格无法读取", "a cell of the return could not be read"
)
R_UNREADABLE_ROW = _rule(
    "VAL-005",
    "error",
    "整行无法识别单位或年度",
    "a row whose institution or year could not be read",
)
R_OTHER_YEAR = _rule(
    "VAL-006", "warning", "统计年度不是查验年度", "return of another year than the year verified"
)
R_INVALID_CODE = _rule(
    "VAL-007",
    "error",
    "报表的统一社会信用代码校验位错误",
    "credit code of the return fails its check characters",
)

VALIDITY_RULES: Final[tuple[Rule, ...]] = (
    R_REQUIRED_MISSING,
    R_OUT_OF_RANGE,
    R_WRONG_TYPE,
    R_UNREADABLE_CELL,
    R_UNREADABLE_ROW,
    R_OTHER_YEAR,
    R_INVALID_CODE,
)
"""Every validity rule, in id order."""

_PROVENANCE: Final[Mapping[str, pl.DataType]] = {
    "source_file": pl.String(),
    "source_sheet": pl.String(),
    "source_row": pl.Int64(),
}
_POS: Final = "__pos"
_FAILURE_SCHEMA: Final[Mapping[str, pl.DataType]] = {
    "failure_case": pl.String(),
    "schema_context": pl.String(),
    "column": pl.String(),
    "check": pl.String(),
    "check_number": pl.Int64(),
    "index": pl.Int64(),
}


@functools.cache
def _schema() -> Any:
    return contract.pandera_schema("returns")


def _spec(name: str | None) -> ColumnSpec | None:
    if name is None:
        return None
    try:
        return contract.table("returns").column(name)
    except KeyError:
        return None


def _header_zh(name: str | None) -> str:
    spec = _spec(name)
    return contract.header_zh(spec) if spec is not None else str(name)


# ------------------------------------------------------------------------- message pieces


def _where_zh() -> pl.Expr:
    sheet, row = pl.col("source_sheet"), pl.col("source_row")
    return (
        pl.when(sheet.is_not_null() & row.is_not_null())
        .then(pl.format("工作表“{}”第 {} 行：", sheet, row))
        .when(row.is_not_null())
        .then(pl.format("第 {} 行：", row))
        .otherwise(pl.lit(""))
    )


def _where_en() -> pl.Expr:
    sheet, row = pl.col("source_sheet"), pl.col("source_row")
    return (
        pl.when(sheet.is_not_null() & row.is_not_null())
        .then(pl.format("sheet {}, row {}: ", sheet, row))
        .when(row.is_not_null())
        .then(pl.format("row {}: ", row))
        .otherwise(pl.lit(""))
    )


def _key() -> pl.Expr:
    """Discriminator of a row for finding ids: where it was read, else its position."""
    where = pl.concat_str(
        pl.col("source_file").fill_null(""),
        pl.col("source_sheet").fill_null(""),
        pl.col("source_row").cast(pl.String),
        separator=":",
    )
    return (
        pl.when(pl.col("source_row").is_not_null())
        .then(where)
        .otherwise(pl.format("#{}", pl.col(_POS) + 1))
        .alias("key")
    )


def _distinct_keys(hits: pl.DataFrame) -> pl.DataFrame:
    """Make ``key`` unique among hits of one rule about the same return and field.

    Two rows with the same provenance (a frame concatenated with itself) get ``:1``, ``:2`` …
    in their order, so ids stay distinct and stable.
    """
    if hits.is_empty():
        return hits
    nth = pl.int_range(pl.len()).over("institution_id", "year", "field", "key")
    return hits.with_columns(
        pl.when(nth > 0)
        .then(pl.concat_str(pl.col("key"), pl.lit(":"), nth.cast(pl.String)))
        .otherwise(pl.col("key"))
        .alias("key")
    )


# ----------------------------------------------------------------------------- preparation


def _prepare(returns: pl.DataFrame) -> pl.DataFrame:
    """Contract columns (all-null ``Null`` columns given their dtype) plus provenance and position.

    Raises
    ------
    UnusableInputError
        If a contract column is missing.
    """
    spec = contract.table("returns")
    missing = [c for c in spec.columns if c.name not in returns.columns]
    if missing:
        names = ", ".join(f"{c.name} ({c.header_zh})" for c in missing)
        raise UnusableInputError(
            f"待核查的填报数据缺少数据契约规定的列 {contract.names_zh(c.name for c in missing)}；"
            "读取函数总会给出全部列（请用 energy_audit.read_returns 读取文件，或从 "
            "contract.table('returns').empty_frame() 开始构建数据）",
            f"returns to verify lack the contract column(s) {names}; the readers always give "
            "every column (read the file with energy_audit.read_returns, or start a frame "
            "from contract.table('returns').empty_frame())",
        )
    frame = returns.select(
        *[
            pl.col(c.name).cast(c.polars_dtype)
            if returns.schema[c.name] == pl.Null
            else pl.col(c.name)
            for c in spec.columns
        ],
        *[
            pl.col(name).cast(dtype, strict=False)
            if name in returns.columns
            else pl.lit(None, dtype).alias(name)
            for name, dtype in _PROVENANCE.items()
        ],
    )
    return frame.with_row_index(_POS).with_columns(pl.col(_POS).cast(pl.Int64))


def _quarantine_frame(quarantine: pl.DataFrame | None) -> pl.DataFrame:
    schema = contract.table("quarantine").polars_schema
    if quarantine is None:
        return pl.DataFrame(schema=schema)
    missing = [c for c in schema.names() if c not in quarantine.columns]
    if missing:
        raise UnusableInputError(
            f"隔离区数据缺少列 {'、'.join(missing)}；请传入 ReadResult.quarantine",
            f"quarantine lacks column(s) {', '.join(missing)}; pass ReadResult.quarantine",
        )
    return quarantine.select(pl.col(name).cast(dtype) for name, dtype in schema.items())


def _failure_cases(frame: pl.DataFrame) -> pl.DataFrame:
    """Every failure of the contract's pandera model on ``frame`` (empty when it passes)."""
    import pandera.errors

    names = list(contract.table("returns").names)
    try:
        _schema().validate(frame.select(names), lazy=True)
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        return cases.select(
            pl.col(name).cast(dtype, strict=False)
            if name in cases.columns
            else pl.lit(None, dtype).alias(name)
            for name, dtype in _FAILURE_SCHEMA.items()
        )
    return pl.DataFrame(schema=_FAILURE_SCHEMA)


def _identity(frame: pl.DataFrame, positions: pl.Series) -> pl.DataFrame:
    """Identity and provenance of the rows at ``positions`` (0-based), in that order."""
    return frame.select(
        pl.col("institution_id").cast(pl.String, strict=False).gather(positions),
        pl.col("year").cast(pl.Int64, strict=False).gather(positions),
        *[pl.col(name).gather(positions) for name in _PROVENANCE],
        pl.col(_POS).gather(positions),
    )


# ------------------------------------------------------------------------------ the rules


def _row_failures(
    frame: pl.DataFrame, cases: pl.DataFrame, quarantined: pl.DataFrame
) -> dict[Rule, list[pl.DataFrame]]:
    """VAL-001 and VAL-002 hits from the failure cases that name a row."""
    out: dict[Rule, list[pl.DataFrame]] = {R_REQUIRED_MISSING: [], R_OUT_OF_RANGE: []}
    groups = cases.group_by("column", "check", maintain_order=True).agg(
        pl.col("index"), pl.col("failure_case")
    )
    for column, check, index, failure in groups.iter_rows():
        spec = _spec(column)
        positions = pl.Series(index, dtype=pl.Int64)
        value = (
            frame.get_column(column).cast(pl.Float64, strict=False).gather(positions)
            if column in frame.columns
            else pl.Series([None] * len(positions), dtype=pl.Float64)
        )
        rows = _identity(frame, positions).with_columns(
            value.alias("value"),
            pl.Series("failure_case", failure, dtype=pl.String),
            pl.lit(column, pl.String).alias("field"),
        )
        # a finite value in the one number format; else pandera's text of the case (-inf)
        finite = pl.col("value").is_finite().fill_null(False)
        text = pl.when(finite).then(number(pl.col("value"))).otherwise(pl.col("failure_case"))
        header = _header_zh(column)
        if check == "not_nullable":
            rows = rows.join(
                quarantined,
                on=["source_file", "source_sheet", "source_row", "field"],
                how="anti",
                nulls_equal=True,
            )
            nan = pl.col("value").is_nan().fill_null(False)
            rows = rows.with_columns(
                pl.concat_str(
                    _where_zh(),
                    pl.lit(f"必填项“{header}”({column})"),
                    pl.when(nan).then(pl.lit("为 NaN（不是数值）")).otherwise(pl.lit("未填报")),
                ).alias("message_zh"),
                pl.concat_str(
                    _where_en(),
                    pl.lit(f"required value {column} ({header}) "),
                    pl.when(nan)
                    .then(pl.lit("is NaN (not a number)"))
                    .otherwise(pl.lit("is not reported")),
                ).alias("message_en"),
            )
            out[R_REQUIRED_MISSING].append(rows)
            continue
        low = spec.min if spec is not None else None
        high = spec.max if spec is not None else None
        if spec is not None and check.startswith("greater_than") and low is not None:
            rule_zh = (
                f"应大于 {number_text(low)}"
                if spec.min_exclusive
                else f"应不小于 {number_text(low)}"
            )
            rule_en = f"must be {'>' if spec.min_exclusive else '≥'} {number_text(low)}"
        elif spec is not None and check.startswith("less_than") and high is not None:
            rule_zh, rule_en = f"应不大于 {number_text(high)}", f"must be ≤ {number_text(high)}"
        else:  # a check the contract may add later (allowed values, length …)
            rule_zh = f"不符合规定（{check}）"
            rule_en = f"fails the contract check {check}"
        out[R_OUT_OF_RANGE].append(
            rows.with_columns(
                pl.lit(low, pl.Float64).alias("expected_low"),
                pl.lit(high, pl.Float64).alias("expected_high"),
                pl.format(f"{{}}“{header}”({column})为 {{}}，{rule_zh}", _where_zh(), text).alias(
                    "message_zh"
                ),
                pl.format(f"{{}}{column} ({header}) is {{}}, {rule_en}", _where_en(), text).alias(
                    "message_en"
                ),
            )
        )
    return out


def _column_failures(
    frame: pl.DataFrame, dtypes: pl.DataFrame, unrun: pl.DataFrame, other: pl.DataFrame
) -> dict[Rule, pl.DataFrame]:
    """VAL-003 (one per column of the wrong dtype) and column-level VAL-002 hits."""
    files = frame.get_column("source_file").drop_nulls().unique().sort().to_list()
    file = files[0] if len(files) == 1 else None
    key = ",".join(files)
    blocked = {c: int(n) for c, n in unrun.group_by("column").len().iter_rows()}
    wrong = []
    for column, actual in dtypes.select("column", "failure_case").iter_rows():
        spec = _spec(column)
        expected = str(spec.polars_dtype) if spec is not None else "?"
        header = _header_zh(column)
        zh = f"列“{header}”({column})的数据类型为 {actual}，应为 {expected}"
        en = f"column {column} ({header}) has dtype {actual}, expected {expected}"
        if blocked.get(column):
            zh += f"，其 {blocked[column]} 项取值检查未能进行"
            en += f"; {blocked[column]} check(s) of its values could not run"
        wrong.append({"field": column, "message_zh": zh, "message_en": en})
    others = [
        {
            "field": column,
            "message_zh": f"列“{_header_zh(column)}”({column})未通过检查 {check}：{failure}",
            "message_en": f"column {column} fails the contract check {check}: {failure}",
        }
        for column, check, failure in other.select("column", "check", "failure_case").iter_rows()
    ]

    def frame_of(rows: list[dict[str, str]]) -> pl.DataFrame:
        return pl.DataFrame(
            rows, schema={"field": pl.String, "message_zh": pl.String, "message_en": pl.String}
        ).with_columns(
            pl.lit(None, pl.String).alias("institution_id"),
            pl.lit(None, pl.Int64).alias("year"),
            pl.lit(file, pl.String).alias("source_file"),
            pl.lit(key).alias("key"),
        )

    return {R_WRONG_TYPE: frame_of(wrong), R_OUT_OF_RANGE: frame_of(others)}


def _code_messages(code: str) -> tuple[str, str]:
    """Chinese and English message for one credit code that fails the vectorised check."""
    check = validate_credit_code(code)
    if check.is_valid:  # only its writing is off (case, width, spaces): hand-built frames
        return (
            f"统一社会信用代码“{code}”书写不规范，规范写法为 {check.code}",
            f"credit code '{code}' is not in normal form; written normally it is {check.code}",
        )
    if not check.code:
        return "统一社会信用代码为空", "credit code is empty"
    zh = []
    if len(check.code) != CREDIT_CODE_LENGTH:
        zh.append(f"长度为 {len(check.code)} 位，应为 {CREDIT_CODE_LENGTH} 位")
    bad = sorted({c for c in check.code if c not in CREDIT_CODE_ALPHABET})
    if bad:
        zh.append(f"含不允许的字符 {'、'.join(bad)}（I、O、S、V、Z 不用）")
    org = check.expected_organization_check_char
    if org is not None and check.code[16] != org:
        zh.append(f"第 17 位（组织机构代码校验位）为 {check.code[16]}，应为 {org}")
    expected = check.expected_check_char
    if expected is not None and check.code[17] != expected:
        zh.append(f"校验位（第 18 位）为 {check.code[17]}，应为 {expected}")
    return (
        f"统一社会信用代码 {code} 无效：{'；'.join(zh)}",
        f"credit code {code} is invalid: {'; '.join(check.problems)}",
    )


def _invalid_codes(frame: pl.DataFrame, length_failures: pl.Series) -> pl.DataFrame:
    """VAL-007 hits: non-null codes that fail GB 32100 / GB 11714 (vectorised, then explained)."""
    codes = frame.get_column("institution_id")
    bad = codes.is_not_null() & pl.Series(~credit_codes_valid(codes.to_numpy()))
    bad = bad | frame.get_column(_POS).is_in(length_failures.implode())
    hits = frame.filter(bad)
    if hits.is_empty():
        return pl.DataFrame()
    messages = {code: _code_messages(code) for code in hits["institution_id"].unique()}
    zh = {code: m[0] for code, m in messages.items()}
    en = {code: m[1] for code, m in messages.items()}
    return hits.select(
        "institution_id",
        "year",
        pl.lit("institution_id").alias("field"),
        pl.concat_str(
            _where_zh(), pl.col("institution_id").replace_strict(zh, return_dtype=pl.String)
        ).alias("message_zh"),
        pl.concat_str(
            _where_en(), pl.col("institution_id").replace_strict(en, return_dtype=pl.String)
        ).alias("message_en"),
        *_PROVENANCE,
        _key(),
    )


def _other_year(frame: pl.DataFrame, year: int, flagged: pl.Series) -> pl.DataFrame:
    """VAL-006 hits: a year inside the contract's range but not the year verified."""
    value = pl.col("year").cast(pl.Int64, strict=False)
    hits = frame.filter(
        value.is_not_null() & (value != year) & ~pl.col(_POS).is_in(flagged.implode())
    )
    return hits.select(
        pl.col("institution_id").cast(pl.String, strict=False),
        value.alias("year"),
        pl.lit("year").alias("field"),
        value.cast(pl.Float64).alias("value"),
        pl.lit(float(year)).alias("expected_low"),
        pl.lit(float(year)).alias("expected_high"),
        pl.format(f"{{}}统计年度为 {{}}，不是查验年度 {year}", _where_zh(), value).alias(
            "message_zh"
        ),
        pl.format(
            f"{{}}return of year {{}}, not of the year verified ({year})", _where_en(), value
        ).alias("message_en"),
        *_PROVENANCE,
        _key(),
    )


def _quarantined_cells(frame: pl.DataFrame, q_cells: pl.DataFrame) -> pl.DataFrame:
    """VAL-004 hits: one per quarantined cell, with the return's identity where it is known."""
    on = ["source_file", "source_sheet", "source_row"]
    ident = (
        frame.select(
            pl.col("institution_id").cast(pl.String, strict=False),
            pl.col("year").cast(pl.Int64, strict=False),
            *on,
        )
        .join(q_cells.select(on).unique(), on=on, how="semi", nulls_equal=True)
        .unique(on, keep="first", maintain_order=True)
    )
    hits = q_cells.join(ident, on=on, how="left", nulls_equal=True, maintain_order="left")
    header = pl.col("column").replace_strict(
        {c.name: _header_zh(c.name) for c in contract.table("returns").columns},
        default=pl.col("column"),
        return_dtype=pl.String,
    )
    return hits.select(
        "institution_id",
        "year",
        pl.col("column").alias("field"),
        pl.format(
            "{}“{}”({})的内容“{}”无法读取：{}",
            _where_zh(),
            header,
            "column",
            pl.col("raw_value").fill_null(""),
            pl.col("reason").fill_null(""),
        ).alias("message_zh"),
        pl.format(
            "{}{} ({}): '{}' cannot be read: {}",
            _where_en(),
            "column",
            header,
            pl.col("raw_value").fill_null(""),
            pl.col("reason_en").fill_null(""),
        ).alias("message_en"),
        *on,
        pl.concat_str(
            pl.col("source_file").fill_null(""),
            pl.col("source_sheet").fill_null(""),
            pl.col("source_row").cast(pl.String),
            separator=":",
        ).alias("key"),
    )


def _quarantined_rows(q_rows: pl.DataFrame) -> pl.DataFrame:
    """VAL-005 hits: one per row quarantined whole, quoting the row as read."""
    return q_rows.select(
        pl.lit(None, pl.String).alias("institution_id"),
        pl.lit(None, pl.Int64).alias("year"),
        pl.lit(None, pl.String).alias("field"),
        pl.format(
            "{}整行未进入查验：{}；原行内容：{}",
            _where_zh(),
            pl.col("reason").fill_null(""),
            pl.col("raw_value").fill_null(""),
        ).alias("message_zh"),
        pl.format(
            "{}the row cannot be verified: {}; the row as read: {}",
            _where_en(),
            pl.col("reason_en").fill_null(""),
            pl.col("raw_value").fill_null(""),
        ).alias("message_en"),
        "source_file",
        "source_sheet",
        "source_row",
        pl.concat_str(
            pl.col("source_file").fill_null(""),
            pl.col("source_sheet").fill_null(""),
            pl.col("source_row").cast(pl.String),
            separator=":",
        ).alias("key"),
    )


# ------------------------------------------------------------------------------ entry point


def check_validity(
    returns: pl.DataFrame | pl.LazyFrame | ReadResult,
    *,
    year: int,
    quarantine: pl.DataFrame | None = None,
    settings: VerifySettings | None = None,
) -> pl.DataFrame:
    """Check the returns against the data contract and turn the reader's quarantine into findings.

    Parameters
    ----------
    returns : polars.DataFrame, polars.LazyFrame or ReadResult
        Canonical returns (data contract §2) with their provenance (``source_file``,
        ``source_sheet``, ``source_row``), e.g. ``read_returns(path).data``; a ReadResult
        brings its quarantine along. A LazyFrame is collected (pandera checks values only on
        collected frames). Not changed.
    year : int
        The year verified: returns of another year get VAL-006.
    quarantine : polars.DataFrame, optional
        The reader's quarantine (``source_file, source_sheet, source_row, column, raw_value,
        reason``): every entry becomes one finding (VAL-004 for a cell, VAL-005 for a row).
    settings : VerifySettings, optional
        Accepted so every verification check is called alike; no validity rule has a threshold
        (the bounds are the contract's, ``schemas/returns.toml``).

    Returns
    -------
    polars.DataFrame
        Findings (data contract §5), category ``validity``, sorted by priority. ``field`` is the
        canonical column; ``value`` the value as read where it is numeric; ``expected_low`` /
        ``expected_high`` the contract's bounds (for VAL-006 both are ``year``). Finding ids are
        keyed by where the row was read (file, sheet, row; the row's position when there is no
        provenance), so the same input gives the same ids.

    Raises
    ------
    UnusableInputError
        If ``returns`` lacks a contract column (or ``quarantine`` a quarantine column): the
        readers always give every column, so such a frame cannot be verified.

    Examples
    --------
    >>> result = read_returns("2024年能耗统计.xlsx")  # doctest: +SKIP
    >>> check_validity(result.data, year=2024, quarantine=result.quarantine)  # doctest: +SKIP
    """
    del settings  # no thresholds: see the docstring
    if isinstance(returns, ReadResult):
        quarantine = returns.quarantine if quarantine is None else quarantine
        returns = returns.data
    if isinstance(returns, pl.LazyFrame):
        returns = returns.collect()
    frame = _prepare(returns)
    q = _quarantine_frame(quarantine)
    q_cells = q.filter(pl.col("column").is_not_null())
    quarantined = q_cells.select(
        "source_file", "source_sheet", "source_row", pl.col("column").alias("field")
    ).unique()

    cases = _failure_cases(frame)
    is_dtype = pl.col("check").str.starts_with("dtype(")
    dtypes = cases.filter(is_dtype)
    wrong_columns = dtypes.get_column("column").unique().implode()
    rest = cases.filter(~is_dtype)
    unrun = rest.filter(pl.col("index").is_null() & pl.col("column").is_in(wrong_columns))
    column_level = rest.filter(pl.col("index").is_null() & ~pl.col("column").is_in(wrong_columns))
    by_row = rest.filter(pl.col("index").is_not_null())
    code_length = (pl.col("column") == "institution_id") & pl.col("check").str.starts_with(
        "str_length"
    )
    hits: dict[Rule, list[pl.DataFrame]] = {rule: [] for rule in VALIDITY_RULES}
    for rule, parts in _row_failures(frame, by_row.filter(~code_length), quarantined).items():
        hits[rule] += [p.with_columns(_key()) for p in parts]
    for rule, part in _column_failures(frame, dtypes, unrun, column_level).items():
        hits[rule].append(part)
    if frame.schema["institution_id"] == pl.String:
        hits[R_INVALID_CODE].append(
            _invalid_codes(frame, by_row.filter(code_length).get_column("index"))
        )
    flagged_years = by_row.filter(pl.col("column") == "year").get_column("index")
    hits[R_OTHER_YEAR].append(_other_year(frame, year, flagged_years))
    hits[R_UNREADABLE_CELL].append(_quarantined_cells(frame, q_cells))
    hits[R_UNREADABLE_ROW].append(_quarantined_rows(q.filter(pl.col("column").is_null())))

    findings = []
    for rule in VALIDITY_RULES:
        parts = [p for p in hits[rule] if p.height]
        if not parts:
            continue
        rule_hits = pl.concat(parts, how="diagonal_relaxed")
        findings.append(findings_from_hits(rule, _distinct_keys(rule_hits)))
    if not findings:
        return empty_findings()
    return sort_findings(pl.concat(findings, how="vertical"))
