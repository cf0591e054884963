"""Quarterly directory diff: kinds of change, field-level changes and the change report."""

from __future__ import annotations

from pathlib import Path

import fastexcel
import polars as pl
import pytest

from energy_audit.directory.codes import make_credit_codes
from energy_audit.directory.diff import (
    CHANGE_KINDS,
    CHANGES_SCHEMA,
    PERSONAL_MASK,
    diff_directories,
    mask_personal,
    summarize_changes,
    write_change_report,
)
from energy_audit.errors import UnusableInputError
from energy_audit.synthetic import make_directory

NO_CHANGES = dict.fromkeys(CHANGE_KINDS, 0)


def edit(frame: pl.DataFrame, institution_id: str, /, **values: object) -> pl.DataFrame:
    """Set some fields of one institution's row."""
    hit = pl.col("institution_id") == institution_id
    return frame.with_columns(
        pl.when(hit).then(pl.lit(v, dtype=frame.schema[c])).otherwise(pl.col(c)).alias(c)
        for c, v in values.items()
    )


@pytest.fixture(scope="module")
def base() -> pl.DataFrame:
    return make_directory(200, seed=5)


@pytest.fixture(scope="module")
def picks(base: pl.DataFrame) -> dict[str, str]:
    """Distinct active units with a parent, one per edit of the quarter."""
    ids = base.filter(
        (pl.col("status") == "active")
        & pl.col("parent_id").is_not_null()
        & (pl.col("district_code") != "120116")
    )["institution_id"].to_list()
    roles = ["removed", "dissolved", "merged", "target", "renamed", "moved", "phone", "both"]
    return dict(zip(roles, ids[-len(roles) :], strict=True))


def new_rows(base: pl.DataFrame, n: int) -> pl.DataFrame:
    """``n`` new institutions: copies of the first rows with fresh valid codes."""
    codes = make_credit_codes("12", "120101", [f"9{i:07d}" for i in range(n)])
    assert not set(codes) & set(base["institution_id"])
    return base.head(n).with_columns(
        pl.Series("institution_id", codes, dtype=pl.String),
        (pl.col("name") + "新址").alias("name"),
    )


@pytest.fixture(scope="module")
def quarter(base: pl.DataFrame, picks: dict[str, str]) -> pl.DataFrame:
    """The next quarter's snapshot: one of each kind of change, by hand."""
    new = base.filter(pl.col("institution_id") != picks["removed"])
    new = edit(new, picks["dissolved"], status="dissolved")
    new = edit(new, picks["merged"], status="merged", merged_into_id=picks["target"])
    new = edit(new, picks["renamed"], name="天津市新名称中心")
    new = edit(new, picks["moved"], district_code="120116", parent_id=picks["target"])
    new = edit(new, picks["phone"], contact_phone="022-99999999", key_energy_user=True)
    new = edit(new, picks["both"], name="天津市另一新名称", address="天津市滨海新区新港路1号")
    return pl.concat([new, new_rows(base, 2)], how="vertical")


def test_identical_snapshots_have_no_changes(base: pl.DataFrame) -> None:
    changes = diff_directories(base, base)
    assert changes.is_empty()
    assert changes.schema == CHANGES_SCHEMA
    assert summarize_changes(changes) == NO_CHANGES


def test_counts_per_kind(base: pl.DataFrame, quarter: pl.DataFrame) -> None:
    counts = summarize_changes(diff_directories(base, quarter))
    # "changed": moved (2 fields), phone (2 fields), both (address) -> 3 institutions
    assert counts == {
        "added": 2,
        "dissolved": 1,
        "merged": 1,
        "renamed": 2,
        "changed": 3,
        "removed": 1,
    }
    assert list(counts) == list(CHANGE_KINDS)


def test_field_level_changes(
    base: pl.DataFrame, quarter: pl.DataFrame, picks: dict[str, str]
) -> None:
    changes = diff_directories(base, quarter)
    old = {r["institution_id"]: r for r in base.iter_rows(named=True)}
    rows = set(changes.iter_rows())
    p = picks
    expected = {
        (p["removed"], "removed", "name", old[p["removed"]]["name"], None),
        (p["dissolved"], "dissolved", "status", "active", "dissolved"),
        (p["merged"], "merged", "merged_into_id", None, p["target"]),
        (p["renamed"], "renamed", "name", old[p["renamed"]]["name"], "天津市新名称中心"),
        (p["moved"], "changed", "district_code", old[p["moved"]]["district_code"], "120116"),
        (p["moved"], "changed", "parent_id", old[p["moved"]]["parent_id"], p["target"]),
        (p["phone"], "changed", "key_energy_user", "false", "true"),
        # the contact changed; its values stay in the store
        (p["phone"], "changed", "contact_phone", PERSONAL_MASK, PERSONAL_MASK),
        (p["both"], "renamed", "name", old[p["both"]]["name"], "天津市另一新名称"),
        (p["both"], "changed", "address", old[p["both"]]["address"], "天津市滨海新区新港路1号"),
    }
    assert old[p["phone"]]["key_energy_user"] is False
    added = {r for r in rows if r[1] == "added"}
    assert rows - added == expected
    assert {(r[2], r[3]) for r in added} == {("name", None)}
    assert {r[4] for r in added} == set(new_rows(base, 2)["name"])
    # a status change reported as dissolved / merged is not repeated as "changed"
    assert changes.filter(pl.col("field") == "status")["change"].to_list() == ["dissolved"]


def test_deterministic_order(base: pl.DataFrame, quarter: pl.DataFrame) -> None:
    changes = diff_directories(base, quarter)
    shuffled = diff_directories(base.sample(fraction=1.0, seed=1), quarter.reverse())
    assert changes.equals(shuffled)
    kinds = changes["change"].to_list()
    assert kinds == sorted(kinds, key=CHANGE_KINDS.index)
    moved = changes.filter(pl.col("change") == "changed")
    assert moved.equals(moved.sort("institution_id", maintain_order=True))


def test_null_and_empty_are_alike_and_provenance_is_ignored(
    base: pl.DataFrame, picks: dict[str, str]
) -> None:
    new = edit(base, picks["phone"], subsector="", address="  ")
    new = new.with_columns(
        ("  " + pl.col("name") + " ").alias("name"),
        pl.lit("名录库.xlsx").alias("source_file"),
        pl.lit("Sheet1").alias("source_sheet"),
        pl.int_range(pl.len()).alias("source_row"),
    )
    old = edit(base, picks["phone"], subsector=None, address=None)
    assert diff_directories(old, new).is_empty()


def test_absent_status_column_reads_as_active(base: pl.DataFrame) -> None:
    active = base.filter(pl.col("status") == "active")
    assert diff_directories(active, active.drop("status", "merged_into_id")).is_empty()


def test_merge_target_change_and_reinstatement_are_changes(
    base: pl.DataFrame, picks: dict[str, str]
) -> None:
    old = edit(base, picks["merged"], status="merged", merged_into_id=picks["target"])
    old = edit(old, picks["dissolved"], status="dissolved")
    new = edit(old, picks["merged"], merged_into_id=picks["moved"])
    new = edit(new, picks["dissolved"], status="active")
    assert set(diff_directories(old, new).iter_rows()) == {
        (picks["merged"], "changed", "merged_into_id", picks["target"], picks["moved"]),
        (picks["dissolved"], "changed", "status", "dissolved", "active"),
    }


def test_duplicate_ids_compare_first_occurrence(base: pl.DataFrame, picks: dict[str, str]) -> None:
    twice = base.filter(pl.col("institution_id") == picks["renamed"]).with_columns(
        pl.lit("重复行的另一个名称").alias("name")
    )
    new = pl.concat([base, twice], how="vertical")
    assert diff_directories(base, new).is_empty()
    assert diff_directories(new, base).is_empty()


def test_missing_required_column_is_unusable(base: pl.DataFrame) -> None:
    with pytest.raises(UnusableInputError, match=r"缺少必填列：所在区划代码（district_code）") as e:
        diff_directories(base, base.drop("district_code"))
    assert "required column(s) district_code" in e.value.message("en")


def read_sheet(path: Path, sheet: str) -> pl.DataFrame:
    return pl.read_excel(path, sheet_name=sheet, read_options={"header_row": 2})


def test_change_report_sheets_and_headers(
    tmp_path: Path, base: pl.DataFrame, quarter: pl.DataFrame, picks: dict[str, str]
) -> None:
    changes = diff_directories(base, quarter)
    path = write_change_report(
        changes, tmp_path / "out" / "changes.xlsx", old_label="2024-09-30", new_label="2024-12-31"
    )
    assert path.is_file()
    assert fastexcel.read_excel(path).sheet_names == [
        "汇总",
        "新增",
        "撤销",
        "合并",
        "更名",
        "信息变更",
        "移除",
    ]
    title = pl.read_excel(path, sheet_name="汇总", has_header=False).item(0, 0)
    assert title == "公共机构名录库变更报告：2024-09-30 → 2024-12-31"

    summary = read_sheet(path, "汇总")
    assert summary.columns == ["变更类型", "单位数", "记录数"]
    assert dict(summary.select("变更类型", "单位数").iter_rows()) == {
        "新增": 2,
        "撤销": 1,
        "合并": 1,
        "更名": 2,
        "信息变更": 3,
        "移除": 1,
        "合计": 9,  # institution "both" is renamed and changed: counted once
    }
    assert summary.filter(pl.col("变更类型") == "信息变更")["记录数"].item() == 5

    headers = ["统一社会信用代码", "变更类型", "字段", "原值", "新值"]
    for sheet in ("新增", "撤销", "合并", "更名", "信息变更", "移除"):
        assert read_sheet(path, sheet).columns == headers

    dissolved = read_sheet(path, "撤销").row(0)
    assert dissolved == (picks["dissolved"], "撤销", "状态", "正常", "撤销")  # labels, not codes
    merged = read_sheet(path, "合并").row(0)
    assert merged[2:] == ("并入单位统一社会信用代码", None, picks["target"])
    edits = read_sheet(path, "信息变更")
    assert set(edits["字段"]) == {
        "所在区划代码",
        "上级主管单位统一社会信用代码",
        "是否重点用能单位",
        "联系电话",
        "单位地址",
    }
    phone = edits.filter(pl.col("字段") == "联系电话").row(0)
    assert phone[3:] == (PERSONAL_MASK, PERSONAL_MASK)  # personal data withheld
    assert edits.filter(pl.col("字段") == "是否重点用能单位").row(0)[3:] == ("否", "是")


def test_change_report_never_shows_personal_data(tmp_path: Path) -> None:
    # even a changes table that carries the values in clear is written masked
    raw = pl.DataFrame(
        {
            "institution_id": ["12120000MB0000000X"],
            "change": ["changed"],
            "field": ["contact_phone"],
            "old_value": ["022-12345678"],
            "new_value": ["022-99999999"],
        }
    )
    path = write_change_report(raw, tmp_path / "changes.xlsx", old_label="a", new_label="b")
    edits = read_sheet(path, "信息变更")
    assert edits.row(0)[2:] == ("联系电话", PERSONAL_MASK, PERSONAL_MASK)


def test_mask_personal_keeps_nulls_and_other_fields() -> None:
    changes = pl.DataFrame(
        {
            "institution_id": ["a", "a", "b"],
            "change": ["changed"] * 3,
            "field": ["contact_name", "address", "contact_phone"],
            "old_value": [None, "老地址", "022-1"],
            "new_value": ["张三", "新地址", None],
        }
    )
    assert mask_personal(changes).select("old_value", "new_value").rows() == [
        (None, PERSONAL_MASK),
        ("老地址", "新地址"),
        (PERSONAL_MASK, None),
    ]


def test_change_report_in_english(
    tmp_path: Path, base: pl.DataFrame, quarter: pl.DataFrame, picks: dict[str, str]
) -> None:
    path = write_change_report(
        diff_directories(base, quarter),
        tmp_path / "en.xlsx",
        old_label="a",
        new_label="b",
        lang="en",
    )
    assert fastexcel.read_excel(path).sheet_names == ["summary", *CHANGE_KINDS]
    title = pl.read_excel(path, sheet_name="summary", has_header=False).item(0, 0)
    assert title == "Directory change report: a → b"
    summary = read_sheet(path, "summary")
    assert summary.columns == ["change", "institutions", "rows"]
    assert summary["change"].to_list()[-1] == "total"
    dissolved = read_sheet(path, "dissolved")
    assert dissolved.columns == ["institution_id", "change", "field", "old_value", "new_value"]
    assert dissolved.row(0) == (picks["dissolved"], "dissolved", "status", "active", "dissolved")
    edits = read_sheet(path, "changed")
    assert edits.filter(pl.col("field") == "key_energy_user").row(0)[3:] == ("no", "yes")


def test_empty_change_report_has_every_sheet(tmp_path: Path, base: pl.DataFrame) -> None:
    path = write_change_report(
        diff_directories(base, base), tmp_path / "none.xlsx", old_label="a", new_label="b"
    )
    assert len(fastexcel.read_excel(path).sheet_names) == 7
    assert read_sheet(path, "汇总")["单位数"].to_list() == [0] * 7


def test_diff_finds_every_synthetic_quarterly_change():
    from energy_audit.directory.diff import diff_directories
    from energy_audit.synthetic import evolve_directory, make_directory

    old = make_directory(3_000, seed=8)
    new, truth = evolve_directory(old, seed=8)
    changes = diff_directories(old, new)

    def keyed(frame):
        # added/removed rows carry the name in diff_directories and no field in the truth
        return {
            (i, c, f if c not in ("added", "removed") else None)
            for i, c, f in frame.select("institution_id", "change", "field").iter_rows()
        }

    assert keyed(changes) == keyed(truth)
    truth = mask_personal(truth)
    assert truth.filter(pl.col("field") == "contact_phone").height > 0  # contacts do change
    values = {
        (i, c, f): (o, n)
        for i, c, f, o, n in changes.filter(
            ~pl.col("change").is_in(["added", "removed"])
        ).iter_rows()
    }
    for i, c, f, o, n in truth.filter(~pl.col("change").is_in(["added", "removed"])).iter_rows():
        assert values[(i, c, f)] == (o, n), (i, c, f)
