"""Validity rules: each defect built by hand gives its rule; nothing the reader read is lost.

Bounds and nullability are read from the contract (schemas/returns.toml) in these tests too, so a
test states what the contract means, not a second copy of its numbers.
"""

import csv
import math

import polars as pl
import pytest
import xlsxwriter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from energy_audit import contract, read_returns
from energy_audit.directory.codes import credit_code_check_char, make_credit_codes
from energy_audit.errors import UnusableInputError
from energy_audit.synthetic import DEFECT_KINDS, make_directory, make_returns, write_returns_file
from energy_audit.verify.validity import VALIDITY_RULES, check_validity

SPEC = contract.table("returns")
CODES = [str(c) for c in make_credit_codes("12", "120101", ["10000001", "10000002", "10000003"])]
YEAR = 2024
GOOD = {
    "institution_id": CODES[0],
    "year": YEAR,
    "name": "天津市第一中学",
    "building_area_m2": 12000.0,
    "occupants": 1500,
    "electricity_kwh": 350417.0,
    "water_m3": 20311.0,
}


def _returns(*rows: dict, provenance: bool = True) -> pl.DataFrame:
    """Returns in contract columns and dtypes (plus provenance of a CSV file, rows 2, 3, …)."""
    frame = pl.concat(
        [SPEC.empty_frame(), pl.DataFrame(list(rows), schema=SPEC.polars_schema)],
        how="vertical",
    )
    if provenance:
        frame = frame.with_columns(
            pl.lit("returns_2024.csv").alias("source_file"),
            pl.lit(None, pl.String).alias("source_sheet"),
            pl.int_range(2, pl.len() + 2, dtype=pl.Int64).alias("source_row"),
        )
    return frame


def _of(findings: pl.DataFrame, rule_id: str) -> pl.DataFrame:
    return findings.filter(pl.col("rule_id") == rule_id)


def _write_csv(path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


HEADER = ["统一社会信用代码", "统计年度", "单位名称", "建筑面积", "用能人数", "电(万千瓦时)", "水"]


def _line(code: str = CODES[0], **cells: str) -> list[str]:
    values = {
        "统一社会信用代码": code,
        "统计年度": str(YEAR),
        "单位名称": "天津市第一中学",
        "建筑面积": "12000",
        "用能人数": "1500",
        "电(万千瓦时)": "35.0417",
        "水": "20311",
    }
    values.update(cells)
    return [values[h] for h in HEADER]


# ----------------------------------------------------------------------------- catalogue


def test_rules_are_validity_rules_with_stable_ids():
    ids = [r.rule_id for r in VALIDITY_RULES]
    assert ids == [f"VAL-{i:03d}" for i in range(1, len(ids) + 1)]
    assert {r.category for r in VALIDITY_RULES} == {"validity"}
    assert all(r.title_zh and r.title_en for r in VALIDITY_RULES)
    severity = {r.rule_id: r.severity for r in VALIDITY_RULES}
    assert severity["VAL-006"] == "warning"
    assert {s for i, s in severity.items() if i != "VAL-006"} == {"error"}


def test_clean_returns_have_no_findings():
    findings = check_validity(
        _returns(GOOD, {**GOOD, "institution_id": CODES[1], "heated_area_m2": None}), year=YEAR
    )
    assert findings.is_empty()
    assert findings.schema == contract.table("findings").polars_schema


def test_clean_file_has_no_findings(tmp_path):
    path = tmp_path / "returns_2024.csv"
    _write_csv(path, HEADER, [_line(), _line(CODES[1], 建筑面积="1,200", 用能人数="１５００")])
    assert check_validity(read_returns(path), year=YEAR).is_empty()


# -------------------------------------------------------------------------------- VAL-001


@pytest.mark.parametrize("column", [c.name for c in SPEC.columns if not c.nullable])
def test_required_value_not_reported(column):
    row = {**GOOD, column: None}
    findings = check_validity(_returns(GOOD, row), year=YEAR)
    hit = _of(findings, "VAL-001")
    assert hit.height == 1
    assert hit["field"][0] == column
    assert hit["source_row"][0] == 3
    assert hit["severity"][0] == "error"
    assert SPEC.column(column).header_zh in hit["message_zh"][0]
    assert "未填报" in hit["message_zh"][0]
    assert f"required value {column}" in hit["message_en"][0]
    if column != "institution_id":
        assert hit["institution_id"][0] == CODES[0]


def test_required_nan_is_not_reported_either():
    hit = _of(check_validity(_returns({**GOOD, "water_m3": math.nan}), year=YEAR), "VAL-001")
    assert hit["field"].to_list() == ["water_m3"]
    assert "NaN" in hit["message_en"][0]


def test_optional_value_empty_is_no_finding():
    optional = [c.name for c in SPEC.columns if c.nullable]
    row = {**GOOD, **dict.fromkeys(optional)}
    assert check_validity(_returns(row), year=YEAR).is_empty()


# -------------------------------------------------------------------------------- VAL-002


@pytest.mark.parametrize(
    ("column", "bad", "good"),
    [
        ("building_area_m2", 0.0, 0.5),
        ("occupants", 0, 1),
        ("electricity_kwh", -1.0, 0.0),
        ("water_m3", -20311.0, 0.0),
        ("natural_gas_m3", -3.5, 0.0),
        ("vehicles", -2, 0),
    ],
)
def test_value_out_of_range(column, bad, good):
    spec = SPEC.column(column)
    hit = _of(check_validity(_returns({**GOOD, column: bad}), year=YEAR), "VAL-002")
    assert hit.height == 1
    assert hit["field"][0] == column
    assert hit["value"][0] == bad
    assert hit["expected_low"][0] == spec.min
    assert hit["expected_high"][0] is None
    sign = ">" if spec.min_exclusive else "≥"
    assert f"must be {sign} {spec.min:g}" in hit["message_en"][0]
    assert f"is {bad:g}," in hit["message_en"][0]
    assert ("应大于" if spec.min_exclusive else "应不小于") in hit["message_zh"][0]
    assert check_validity(_returns({**GOOD, column: good}), year=YEAR).is_empty()


@pytest.mark.parametrize(
    ("bad", "text"),
    [
        (-12345.678, "-12346"),  # 1,000 and more: whole numbers
        (-12.3456, "-12.35"),  # 1 to 1,000: at most two decimals
        (-0.00012345, "-0.0001235"),  # below 1: four significant digits
        (-5.0, "-5"),  # whole: no decimal point
        (-math.inf, "-inf"),  # not finite: the value as pandera reports it
    ],
)
def test_out_of_range_value_is_written_in_the_one_number_format(bad, text):
    hit = _of(check_validity(_returns({**GOOD, "electricity_kwh": bad}), year=YEAR), "VAL-002")
    assert f"(electricity_kwh)为 {text}，应不小于 0" in hit["message_zh"][0]
    assert f"electricity_kwh (电(千瓦时)) is {text}, must be ≥ 0" in hit["message_en"][0]


def test_year_outside_contract_range_is_out_of_range_not_other_year():
    spec = SPEC.column("year")
    findings = check_validity(_returns({**GOOD, "year": 1999}), year=YEAR)
    assert findings["rule_id"].to_list() == ["VAL-002"]
    assert (findings["expected_low"][0], findings["expected_high"][0]) == (spec.min, spec.max)
    assert findings["year"][0] == 1999


def test_every_bound_and_null_of_the_contract_gives_one_finding():
    """Each contract column with a bound, just outside it, and each required column empty."""
    rows, expected = [], []
    for i, spec in enumerate(SPEC.columns):
        code = str(make_credit_codes("12", "120102", f"{i:08d}")[0])
        if spec.min is not None:
            outside = spec.min if spec.min_exclusive else spec.min - 1
            rows.append({**GOOD, "institution_id": code, spec.name: outside})
            expected.append(("VAL-002", code, spec.name))
        if spec.max is not None:
            rows.append({**GOOD, "institution_id": code, spec.name: spec.max + 1})
            expected.append(("VAL-002", code, spec.name))
        if not spec.nullable and spec.name != "institution_id":
            rows.append({**GOOD, "institution_id": code, spec.name: None})
            expected.append(("VAL-001", code, spec.name))
    findings = check_validity(_returns(*rows), year=YEAR).filter(pl.col("rule_id") != "VAL-006")
    got = sorted(findings.select("rule_id", "institution_id", "field").iter_rows())
    assert got == sorted(expected)


# -------------------------------------------------------------------------------- VAL-003


def test_wrong_dtype_is_one_finding_per_column_not_an_exception():
    frame = _returns(GOOD, {**GOOD, "institution_id": CODES[1], "occupants": -3}).with_columns(
        pl.col("occupants").cast(pl.Float64), pl.col("water_m3").cast(pl.String)
    )
    findings = check_validity(frame, year=YEAR)
    wrong = _of(findings, "VAL-003")
    assert sorted(wrong["field"].to_list()) == ["occupants", "water_m3"]
    assert wrong["institution_id"].null_count() == 2
    water = wrong.filter(pl.col("field") == "water_m3")
    assert "has dtype String, expected Float64" in water["message_en"][0]
    assert "could not run" in water["message_en"][0]  # its range check could not run
    assert "应为 Float64" in water["message_zh"][0]
    # the values of a float-typed occupants column are still checked against the range
    assert _of(findings, "VAL-002")["field"].to_list() == ["occupants"]


def test_right_dtypes_and_all_null_optional_column_give_no_type_finding():
    frame = _returns(GOOD).with_columns(pl.lit(None).alias("coal_t"))  # dtype Null
    assert frame.schema["coal_t"] == pl.Null
    assert check_validity(frame, year=YEAR).is_empty()


def test_missing_contract_column_is_unusable_input():
    with pytest.raises(UnusableInputError, match=r"缺少.*occupants（用能人数）") as info:
        check_validity(_returns(GOOD).drop("occupants"), year=YEAR)
    assert "occupants (用能人数)" in info.value.message_en


# ------------------------------------------------------------------------ VAL-004, VAL-005


def test_unreadable_cell_names_raw_text_header_and_reason(tmp_path):
    path = tmp_path / "returns_2024.csv"
    _write_csv(path, HEADER, [_line(), _line(CODES[1], **{"电(万千瓦时)": "约3000"})])
    result = read_returns(path)
    assert result.quarantine.height == 1
    findings = check_validity(result, year=YEAR)
    assert findings["rule_id"].to_list() == ["VAL-004"]  # and no VAL-001 for the same cell
    hit = findings.row(0, named=True)
    assert hit["field"] == "electricity_kwh"
    assert (hit["institution_id"], hit["year"]) == (CODES[1], YEAR)
    assert (hit["source_file"], hit["source_row"]) == ("returns_2024.csv", 3)
    assert "约3000" in hit["message_zh"] and "约3000" in hit["message_en"]
    assert "电(千瓦时)" in hit["message_zh"]
    assert "不是数字" in hit["message_zh"]
    assert "not a number" in hit["message_en"]


def test_readable_messy_cells_are_no_finding(tmp_path):
    path = tmp_path / "returns_2024.csv"
    _write_csv(path, HEADER, [_line(**{"电(万千瓦时)": "35.0417 万千瓦时", "水": " 20,311 "})])
    assert check_validity(read_returns(path), year=YEAR).is_empty()


def test_unreadable_row_quotes_the_row(tmp_path):
    path = tmp_path / "returns_2024.csv"
    _write_csv(path, HEADER, [_line(), _line("", 建筑面积="987")])
    result = read_returns(path)
    findings = check_validity(result.data, year=YEAR, quarantine=result.quarantine)
    hit = _of(findings, "VAL-005")
    assert findings.height == hit.height == 1
    assert hit["institution_id"][0] is None and hit["field"][0] is None
    assert hit["source_row"][0] == 3
    raw = result.quarantine["raw_value"][0]
    assert '"建筑面积":"987"' in raw
    # the reader's reasons as they are, in each language
    assert "统一社会信用代码缺失或无法读取" in hit["message_zh"][0]
    assert "institution_id missing or unreadable" in hit["message_en"][0]
    assert raw in hit["message_zh"][0] and raw in hit["message_en"][0]
    assert "统一社会信用代码缺失" in hit["message_zh"][0]


def test_quarantine_of_a_workbook_names_the_sheet(tmp_path):
    path = tmp_path / "returns.xlsx"
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("2024年")
    for r, row in enumerate([HEADER, _line(), _line(水="二万")]):
        sheet.write_row(r, 0, row)
    book.close()
    hit = _of(check_validity(read_returns(path), year=YEAR), "VAL-004")
    assert hit.height == 1
    assert hit["message_zh"][0].startswith("工作表“2024年”第 3 行")
    assert hit["message_en"][0].startswith("sheet 2024年, row 3")


# -------------------------------------------------------------------------------- VAL-006


def test_return_of_another_year():
    findings = check_validity(_returns({**GOOD, "year": YEAR - 1}), year=YEAR)
    hit = _of(findings, "VAL-006")
    assert findings.height == hit.height == 1
    assert hit["severity"][0] == "warning"
    assert (hit["value"][0], hit["expected_low"][0], hit["expected_high"][0]) == (
        YEAR - 1,
        YEAR,
        YEAR,
    )
    assert str(YEAR - 1) in hit["message_en"][0] and str(YEAR) in hit["message_zh"][0]
    assert check_validity(_returns({**GOOD, "year": YEAR - 1}), year=YEAR - 1).is_empty()


# -------------------------------------------------------------------------------- VAL-007


def test_invalid_check_character_names_the_expected_one():
    right = CODES[2][17]
    wrong = CODES[2][:17] + ("0" if right != "0" else "1")
    findings = check_validity(_returns(GOOD, {**GOOD, "institution_id": wrong}), year=YEAR)
    hit = _of(findings, "VAL-007")
    assert findings.height == hit.height == 1
    assert hit["institution_id"][0] == wrong
    assert credit_code_check_char(wrong[:17]) == right
    assert f"应为 {right}" in hit["message_zh"][0]
    assert f"expected {right!r}" in hit["message_en"][0]


def test_short_code_is_one_finding_not_two():
    """pandera's length check and the GB 32100 check see the same defect: one finding."""
    findings = check_validity(_returns({**GOOD, "institution_id": CODES[0][:-1]}), year=YEAR)
    assert findings["rule_id"].to_list() == ["VAL-007"]
    assert "length is 17, expected 18" in findings["message_en"][0]
    assert "长度为 17 位" in findings["message_zh"][0]


def test_code_written_in_lower_case_gets_its_normal_form():
    findings = check_validity(_returns({**GOOD, "institution_id": CODES[0].lower()}), year=YEAR)
    assert findings["rule_id"].to_list() == ["VAL-007"]
    assert CODES[0] in findings["message_zh"][0]


# ----------------------------------------------------------------- ids, inputs, laziness


def _defective() -> pl.DataFrame:
    return _returns(
        GOOD,
        {**GOOD, "occupants": None, "building_area_m2": -1.0},
        {**GOOD, "year": YEAR - 1, "institution_id": CODES[1][:-1] + "0"},
        {**GOOD, "occupants": None},  # same institution and year as row 2: a distinct finding
    )


def test_finding_ids_are_stable_and_distinct():
    first = check_validity(_defective(), year=YEAR)
    second = check_validity(_defective(), year=YEAR)
    assert first.equals(second)
    assert first["finding_id"].n_unique() == first.height
    assert _of(first, "VAL-001").height == 2


def test_same_provenance_twice_still_gives_distinct_ids():
    frame = _returns({**GOOD, "occupants": None})
    findings = check_validity(pl.concat([frame, frame]), year=YEAR)
    assert findings.height == 2 and findings["finding_id"].n_unique() == 2


def test_without_provenance_ids_follow_the_row_position():
    frame = _defective().drop("source_file", "source_sheet", "source_row")
    findings = check_validity(frame, year=YEAR)
    assert findings["source_row"].null_count() == findings.height
    assert findings["finding_id"].n_unique() == findings.height
    assert check_validity(frame, year=YEAR)["finding_id"].equals(findings["finding_id"])


def test_input_is_not_modified():
    frame = _defective().with_columns(
        pl.col("water_m3").cast(pl.String), pl.lit(None).alias("coal_t")
    )
    before = frame.clone()
    quarantine = pl.DataFrame(
        {
            "source_file": ["returns_2024.csv"],
            "source_sheet": [None],
            "source_row": [3],
            "column": ["occupants"],
            "raw_value": ["约1500人"],
            "reason": ["不是数字（表头“用能人数”）"],
            "reason_en": ["not a number (header '用能人数')"],
        },
        schema=contract.table("quarantine").polars_schema,
    )
    q_before = quarantine.clone()
    check_validity(frame, year=YEAR, quarantine=quarantine)
    assert frame.equals(before) and frame.schema == before.schema
    assert quarantine.equals(q_before)


def test_quarantined_cell_replaces_the_not_reported_finding():
    frame = _returns({**GOOD, "occupants": None})
    quarantine = pl.DataFrame(
        {
            "source_file": ["returns_2024.csv"],
            "source_sheet": [None],
            "source_row": [2],
            "column": ["occupants"],
            "raw_value": ["约1500人"],
            "reason": ["不是数字（表头“用能人数”）"],
            "reason_en": ["not a number (header '用能人数')"],
        },
        schema=contract.table("quarantine").polars_schema,
    )
    assert _of(check_validity(frame, year=YEAR), "VAL-001").height == 1
    findings = check_validity(frame, year=YEAR, quarantine=quarantine)
    assert findings["rule_id"].to_list() == ["VAL-004"]
    assert findings["institution_id"][0] == CODES[0]


def test_lazy_frame_gives_the_same_findings():
    frame = _defective()
    assert check_validity(frame.lazy(), year=YEAR).equals(check_validity(frame, year=YEAR))


# ---------------------------------------------------------------------- property: values


finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)
value_of = {
    "float": st.one_of(st.none(), finite, st.just(math.nan)),
    "int": st.one_of(st.none(), st.integers(-1000, 100_000)),
}
NUMERIC = [c for c in SPEC.columns if c.dtype in value_of]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries({c.name: value_of[c.dtype] for c in NUMERIC}), min_size=1, max_size=8
    )
)
def test_every_contract_violation_is_one_finding(rows):
    """Nulls of required columns and values outside the contract's bounds, counted from the spec."""
    frame = _returns(*[{**GOOD, **r} for r in rows])
    expected = []
    for i, row in enumerate(rows):
        for spec in NUMERIC:
            v = row[spec.name]
            if v is None or (isinstance(v, float) and math.isnan(v)):
                if not spec.nullable:
                    expected.append(("VAL-001", i + 2, spec.name))
                continue
            low_ok = spec.min is None or (v > spec.min if spec.min_exclusive else v >= spec.min)
            high_ok = spec.max is None or v <= spec.max
            if not (low_ok and high_ok):
                expected.append(("VAL-002", i + 2, spec.name))
    findings = check_validity(frame, year=YEAR)
    got = sorted(findings.select("rule_id", "source_row", "field").iter_rows())
    assert got == sorted(expected)


# --------------------------------------------------------------- property: nothing lost


typical = st.sampled_from(
    ["1,234", "１２３", "500 千瓦时", "—", "约3000", "-", "无", "12.5", "2023", "2024年", "", " ",
     CODES[0], CODES[1], "N/A", "1,2345", "3e2", "-7", "合计", "0"]
)  # fmt: skip
cell = st.one_of(
    st.none(), typical, st.text(max_size=6).filter(lambda s: not {"\x00", "\r"} & set(s))
)
grid = st.lists(st.lists(cell, min_size=len(HEADER), max_size=len(HEADER)), max_size=10)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(grid=grid, quoting=st.sampled_from([csv.QUOTE_ALL, csv.QUOTE_MINIMAL]))
def test_every_quarantine_entry_is_exactly_one_finding(tmp_path, grid, quoting):
    path = tmp_path / "returns_2024.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, quoting=quoting, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows([["" if v is None else v for v in row] for row in grid])
    result = read_returns(path)
    q = result.quarantine
    whole = q.filter(pl.col("column").is_null())
    assert result.rows_in == result.data.height + whole.height

    findings = check_validity(result.data, year=YEAR, quarantine=q)
    from_q = findings.filter(pl.col("rule_id").is_in(["VAL-004", "VAL-005"]))
    entries = sorted(q.select("source_row", "column").iter_rows(), key=str)
    got = sorted(from_q.select("source_row", "field").iter_rows(), key=str)
    assert got == entries
    assert (_of(findings, "VAL-005")["field"].null_count()) == whole.height
    for raw, rule in zip(q["raw_value"], q["column"].is_null(), strict=True):
        wanted = "VAL-005" if rule else "VAL-004"
        assert (
            from_q.filter(
                (pl.col("rule_id") == wanted) & pl.col("message_en").str.contains(raw, literal=True)
            ).height
            >= 1
        )
    # a quarantined cell is not also reported as "not reported"
    reported_missing = set(_of(findings, "VAL-001").select("source_row", "field").iter_rows())
    assert not reported_missing & set(entries)
    assert findings["finding_id"].n_unique() == findings.height


# ------------------------------------------------------------------ synthetic, known truth


def test_synthetic_defects_of_validity_kinds_are_all_found(tmp_path):
    kinds = ("negative_value", "nonpositive_area", "nonpositive_occupants")
    rates = {k: 0.0 for k in DEFECT_KINDS} | dict.fromkeys(kinds, 0.03)
    directory = make_directory(400, seed=21)
    clean, _ = make_returns(directory, [YEAR], seed=22, defects=False)
    assert check_validity(clean, year=YEAR).is_empty()

    returns, truth = make_returns(directory, [YEAR], seed=22, defects=rates)
    path, messy = write_returns_file(
        returns, tmp_path / "returns_2024.csv", seed=23, truth=truth, messy_rate=0.01
    )
    findings = check_validity(read_returns(path), year=YEAR)
    assert truth.height and messy.filter(~pl.col("recoverable")).height

    found = set(_of(findings, "VAL-002").select("institution_id", "field").iter_rows())
    assert set(truth.select("institution_id", "field").iter_rows()) <= found
    lost = messy.filter(~pl.col("recoverable"))
    unreadable = set(_of(findings, "VAL-004").select("source_row", "field").iter_rows())
    not_reported = set(_of(findings, "VAL-001").select("source_row", "field").iter_rows())
    for row, field, text in lost.select("source_row", "field", "reported_text").iter_rows():
        if (row, field) not in unreadable:  # a dash: null, "not reported" if it is required
            assert text.strip() in {"—", "-", "－"}, text
            assert (row, field) in not_reported or SPEC.column(field).nullable
    # every error is about a defective return or a messy cell
    defective = set(truth["institution_id"]) | set(
        returns.with_row_index("i")
        .filter(pl.col("i").is_in((lost["source_row"] - 2).implode()))
        .get_column("institution_id")
    )
    assert set(findings["institution_id"]) <= defective
