"""Directory checks: each defect built by hand gives its rule id; a clean directory gives none."""

import polars as pl
import pytest

from energy_audit.directory.checks import DIRECTORY_RULES, check_directory, normalized_name
from energy_audit.directory.codes import credit_code_check_char, make_credit_codes
from energy_audit.directory.diff import PERSONAL_MASK
from energy_audit.io.readers import read_directory
from energy_audit.io.writers import write_excel
from energy_audit.synthetic import make_directory

VALID_91 = str(make_credit_codes("91", "120101", "12345678")[0])  # an enterprise code, valid


@pytest.fixture(scope="module")
def clean() -> pl.DataFrame:
    return make_directory(300, seed=4)


def _rules(findings: pl.DataFrame) -> set[str]:
    return set(findings["rule_id"].to_list())


def _set(frame: pl.DataFrame, row: int, **values) -> pl.DataFrame:
    """Copy of ``frame`` with the given columns changed in row ``row``."""
    return frame.with_columns(
        pl.when(pl.int_range(pl.len()) == row).then(pl.lit(v)).otherwise(pl.col(k)).alias(k)
        for k, v in values.items()
    )


def _row(frame: pl.DataFrame, **where) -> int:
    mask = pl.all_horizontal(pl.col(k) == v for k, v in where.items())
    return int(frame.with_row_index("i").filter(mask)["i"][0])


def test_clean_directory_has_no_findings(clean):
    assert check_directory(clean).is_empty()


def test_clean_10k_directory_has_no_errors():
    findings = check_directory(make_directory(10_000, seed=11))
    assert findings.filter(pl.col("severity") == "error").is_empty()


def test_rule_ids_are_unique_and_directory():
    ids = [r.rule_id for r in DIRECTORY_RULES]
    assert len(ids) == len(set(ids))
    assert {r.category for r in DIRECTORY_RULES} == {"directory"}


def test_invalid_check_character_names_the_expected_one(clean):
    code = clean["institution_id"][5]
    wrong = code[:17] + ("0" if code[17] != "0" else "1")
    findings = check_directory(_set(clean, 5, institution_id=wrong))
    hit = findings.filter(pl.col("rule_id") == "DIR-001")
    assert hit.height == 1
    assert f"应为 {code[17]}" in hit["message_zh"][0]
    assert f"expected {code[17]!r}" in hit["message_en"][0]


def test_duplicate_code(clean):
    twice = pl.concat([clean, clean.slice(7, 1)])
    hit = check_directory(twice).filter(pl.col("rule_id") == "DIR-002")
    assert hit["institution_id"].unique().to_list() == [clean["institution_id"][7]]
    assert hit["finding_id"].n_unique() == 2  # one per row, distinct ids


def test_probable_duplicate_under_two_codes(clean):
    second_code = str(make_credit_codes("12", "120101", "87654321")[0])
    other = clean.slice(9, 1).with_columns(pl.lit(second_code).alias("institution_id"))
    other = other.with_columns(
        pl.col("name").str.replace_all("", " ").str.strip_chars()
    )  # spaced out
    findings = check_directory(pl.concat([clean, other]))
    hit = findings.filter(pl.col("rule_id") == "DIR-003")
    assert set(hit["institution_id"]) == {clean["institution_id"][9], other["institution_id"][0]}
    assert hit["severity"].unique().to_list() == ["warning"]


def test_numbered_schools_are_not_duplicates():
    names = pl.Series(
        ["天津市第一中学（南校区）", "天津市 第一中学(南校区)", "第一中学", "第二中学", None]
    )
    keys = pl.select(normalized_name(pl.lit(names))).to_series().to_list()
    assert keys[0] == keys[1] == "天津市第一中学南校区"
    assert keys[2] != keys[3]
    assert keys[4] == ""


@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [
        ("district_code", "120225", "DIR-004"),  # 蓟县, retired: a code, not a district of today
        ("sector", "商业企业", "DIR-005"),
        ("institution_type", "企业", "DIR-005"),
        ("admin_level", "省级", "DIR-005"),
        ("name", None, "DIR-006"),
        ("district_code", None, "DIR-006"),
    ],
)
def test_values(clean, column, value, rule):
    findings = check_directory(_set(clean, 3, **{column: value}))
    hit = findings.filter(pl.col("rule_id") == rule)
    assert hit.height == 1
    assert hit["field"][0] == column
    assert hit["institution_id"][0] == clean["institution_id"][3]


def test_parent_missing_dissolved_and_level(clean):
    child = _row(clean, admin_level="subdistrict")
    parent_id = clean["institution_id"][child]
    missing = check_directory(_set(clean, child, parent_id="12120000MA05T1234X"))
    assert "DIR-007" in _rules(missing)

    with_parent = clean.filter(pl.col("parent_id").is_not_null() & (pl.col("status") == "active"))
    kid = with_parent.row(0, named=True)
    p = _row(clean, institution_id=kid["parent_id"])
    dissolved = check_directory(_set(clean, p, status="dissolved"))
    assert (
        kid["institution_id"]
        in dissolved.filter(pl.col("rule_id") == "DIR-008")["institution_id"].to_list()
    )

    # a municipal unit under a street-level one
    street = clean["institution_id"][child]
    top = _row(clean, admin_level="municipal")
    above = check_directory(_set(clean, top, parent_id=street))
    hit = above.filter(pl.col("rule_id") == "DIR-010")
    assert hit["institution_id"].to_list() == [clean["institution_id"][top]]
    assert parent_id  # the street unit exists


def test_parent_cycle(clean):
    a, b = clean["institution_id"][0], clean["institution_id"][1]
    cyclic = _set(_set(clean, 0, parent_id=b), 1, parent_id=a)
    hit = check_directory(cyclic).filter(pl.col("rule_id") == "DIR-009")
    assert set(hit["institution_id"]) == {a, b}
    assert f"{a} → {b} → {a}" in " ".join(hit["message_zh"])
    self_parent = check_directory(_set(clean, 2, parent_id=clean["institution_id"][2]))
    assert "DIR-009" in _rules(self_parent)


def test_type_and_enterprise_codes(clean):
    agency = _row(clean, institution_type="agency")
    code = clean["institution_id"][agency]
    as_12 = "12" + code[2:17]
    as_12 += credit_code_check_char(as_12)
    hit = check_directory(_set(clean, agency, institution_id=as_12))
    assert "DIR-011" in _rules(hit)
    enterprise = check_directory(_set(clean, agency, institution_id=VALID_91))
    assert "DIR-012" in _rules(enterprise)
    assert "DIR-011" not in _rules(enterprise)  # reported once, as an enterprise code


def test_merges(clean):
    row = _row(clean, status="active")
    without = check_directory(_set(clean, row, status="merged", merged_into_id=None))
    assert "DIR-013" in _rules(without)
    bad_target = check_directory(
        _set(clean, row, status="merged", merged_into_id="12120000MA05T1234X")
    )
    assert "DIR-014" in _rules(bad_target)


def test_unreadable_cells_and_rows_are_findings(tmp_path, clean):
    frame = clean.head(5).with_columns(
        pl.col("key_energy_user").cast(pl.String),
    )
    frame = _set(frame, 1, key_energy_user="也许")
    frame = _set(frame, 2, institution_id=None)
    path = write_excel({"名录": frame}, tmp_path / "dir.xlsx")
    result = read_directory(path)
    findings = check_directory(result)
    cell = findings.filter(pl.col("rule_id") == "DIR-015")
    assert cell["field"].to_list() == ["key_energy_user"]
    assert cell["institution_id"].to_list() == [clean["institution_id"][1]]
    assert "也许" in cell["message_zh"][0]
    assert "不是“是/否”" in cell["message_zh"][0]
    assert "not a yes/no value" in cell["message_en"][0]  # the reader's English reason
    assert "不是" not in cell["message_en"][0]
    row = findings.filter(pl.col("rule_id") == "DIR-016")
    assert row.height == 1
    # the row is quoted without its personal data (联系人, 联系电话)
    assert frame["name"][2] in row["message_zh"][0] and frame["name"][2] in row["message_en"][0]
    for personal in (frame["contact_name"][2], frame["contact_phone"][2]):
        assert personal
        for text in findings.select(pl.col(pl.String)).rows():
            assert not any(personal in (t or "") for t in text)


def test_quarantined_personal_data_is_withheld(clean):
    quarantine = pl.DataFrame(
        {
            "source_file": ["名录.xlsx"] * 3,
            "source_sheet": ["名录"] * 3,
            "source_row": [4, 5, 6],
            "column": [None, "contact_phone", None],
            "raw_value": [
                '{"单位名称": "天津市某中学", "联系人": "张三", "联系电话(手机)": "13800000000"}',
                "13900000000",
                "not json 张三",
            ],
            "reason": ["identity cannot be read", "not a number", "identity cannot be read"],
        }
    )
    findings = check_directory(clean, quarantine=quarantine)
    text = "\n".join(findings["message_zh"].to_list() + findings["message_en"].to_list())
    assert "天津市某中学" in text
    for personal in ("张三", "13800000000", "13900000000"):
        assert personal not in text
    assert findings.filter(pl.col("rule_id") == "DIR-016").height == 2
    assert (
        findings.filter(pl.col("rule_id") == "DIR-015")["message_zh"][0].count(PERSONAL_MASK) == 1
    )
    rows = findings.filter(pl.col("rule_id") == "DIR-016")["message_zh"].to_list()
    assert rows[0].count(PERSONAL_MASK) == 2 and rows[1].endswith(PERSONAL_MASK)


def test_findings_are_stable_and_input_unchanged(clean):
    broken = _set(clean, 3, sector="商业企业")
    before = broken.clone()
    a = check_directory(broken)
    b = check_directory(broken)
    assert a.equals(b)
    assert broken.equals(before)
    assert a["year"].null_count() == a.height


# Which rule must find each injected directory defect (synthetic.DIRECTORY_DEFECT_KINDS).
EXPECTED_RULE = {
    "invalid_check_char": "DIR-001",
    "duplicate_code": "DIR-002",
    "duplicate_institution": "DIR-003",
    "unknown_district": "DIR-004",
    "unknown_type": "DIR-005",
    "unknown_sector": "DIR-005",
    "unknown_level": "DIR-005",
    "parent_missing": "DIR-007",
    "parent_dissolved": "DIR-008",
    "parent_merged": "DIR-008",
    "parent_cycle": "DIR-009",
    "level_above_parent": "DIR-010",
    "type_code_mismatch": "DIR-011",
    "enterprise_code": "DIR-012",
    "merged_without_target": "DIR-013",
    "required_empty": "DIR-006",
}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_injected_defect_is_found_by_its_rule(seed):
    from energy_audit.synthetic import DIRECTORY_DEFECT_KINDS, inject_directory_defects

    assert set(EXPECTED_RULE) == set(DIRECTORY_DEFECT_KINDS)
    broken, truth = inject_directory_defects(make_directory(2_000, seed=seed), seed=seed)
    found = {
        (i, r) for i, r in check_directory(broken).select("institution_id", "rule_id").iter_rows()
    }
    missed = [
        (defect, inst)
        for inst, defect in truth.select("institution_id", "defect").iter_rows()
        if (inst, EXPECTED_RULE[defect]) not in found
    ]
    assert not missed
