"""The quarterly maintenance run through the CLI: check, diff, update, history; exit codes."""

import json

import polars as pl
import pytest
from typer.testing import CliRunner

from energy_audit import contract
from energy_audit.cli import EXIT_BLOCKED, EXIT_OK, EXIT_UNUSABLE_INPUT, EXIT_USAGE, app
from energy_audit.io.writers import write_excel
from energy_audit.synthetic import make_directory

runner = CliRunner()


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory):
    """Two clean quarterly snapshots as workbooks, and a third with an error (sector unknown)."""
    folder = tmp_path_factory.mktemp("snapshots")
    q1 = make_directory(250, seed=21)
    q2 = q1.with_columns(
        pl.when(pl.int_range(pl.len()) == 4)
        .then(pl.lit("天津市新名称中心"))
        .otherwise("name")
        .alias("name"),
        pl.when(pl.int_range(pl.len()) == 6)
        .then(pl.lit("dissolved"))
        .otherwise("status")
        .alias("status"),
    )
    bad = q2.with_columns(
        pl.when(pl.int_range(pl.len()) == 8)
        .then(pl.lit("商业企业"))
        .otherwise("sector")
        .alias("sector")
    )
    paths = {}
    for name, frame in (("q1", q1), ("q2", q2), ("bad", bad)):
        paths[name] = write_excel(
            {"名录库": frame}, folder / f"{name}.xlsx", title="天津市公共机构名录库"
        )
    return paths, q1


def _manifest(store):
    return (store / "manifest.json").read_bytes()


def test_check_writes_findings_in_the_contract_schema(snapshots, tmp_path):
    paths, _ = snapshots
    result = runner.invoke(app, ["directory", "check", str(paths["bad"]), "--out", str(tmp_path)])
    assert result.exit_code == EXIT_OK, result.output
    findings = pl.read_parquet(tmp_path / "findings.parquet")
    assert findings.schema == contract.table("findings").polars_schema
    assert findings["rule_id"].to_list() == ["DIR-005"]
    shown = pl.read_excel(tmp_path / "findings.xlsx", read_options={"header_row": 2})
    assert shown.select("规则编号", "类别", "严重程度").row(0) == ("DIR-005", "名录库", "错误")
    assert "DIR-005" in result.output


def test_findings_workbook_in_english(snapshots, tmp_path):
    from energy_audit.directory.maintenance import check_file

    paths, _ = snapshots
    check_file(paths["bad"], tmp_path, lang="en")
    shown = pl.read_excel(
        tmp_path / "findings.xlsx", sheet_name="findings", read_options={"header_row": 2}
    )
    assert shown.select("rule_id", "category", "severity").row(0) == (
        "DIR-005",
        "directory",
        "error",
    )
    title = pl.read_excel(tmp_path / "findings.xlsx", has_header=False).item(0, 0)
    assert title == f"Directory check: {paths['bad'].name}"


def test_unwritable_out_is_one_message(snapshots, tmp_path):
    from energy_audit.directory.maintenance import check_file, diff_files
    from energy_audit.errors import UnusableInputError

    paths, _ = snapshots
    taken = tmp_path / "taken"
    taken.write_text("a file, not a folder")
    with pytest.raises(UnusableInputError, match="无法写入输出文件") as e:
        check_file(paths["bad"], taken)
    assert str(taken) in str(e.value) and "cannot write" in e.value.message("en")
    with pytest.raises(UnusableInputError, match="无法写入输出文件"):
        diff_files(paths["q1"], paths["q2"], taken / "below")


def test_diff_writes_changes(snapshots, tmp_path):
    paths, q1 = snapshots
    result = runner.invoke(
        app, ["directory", "diff", str(paths["q1"]), str(paths["q2"]), "--out", str(tmp_path)]
    )
    assert result.exit_code == EXIT_OK, result.output
    changes = pl.read_parquet(tmp_path / "changes.parquet")
    assert set(changes["change"]) == {"renamed", "dissolved"}
    renamed = changes.filter(pl.col("change") == "renamed").row(0, named=True)
    assert renamed["institution_id"] == q1["institution_id"][4]
    assert renamed["new_value"] == "天津市新名称中心"
    assert "更名 1" in result.output and "撤销 1" in result.output


def test_update_stores_clean_snapshots_and_refuses_errors(snapshots, tmp_path):
    paths, q1 = snapshots
    store = tmp_path / "store"
    first = runner.invoke(
        app,
        ["directory", "update", str(paths["q1"]), "--store", str(store), "--as-of", "2024-12-31"],
    )
    assert first.exit_code == EXIT_OK, first.output
    before = _manifest(store)
    refused = runner.invoke(
        app,
        ["directory", "update", str(paths["bad"]), "--store", str(store), "--as-of", "2025-03-31"],
    )
    assert refused.exit_code == EXIT_BLOCKED, refused.output
    assert _manifest(store) == before  # store unchanged
    assert len(list((store / "snapshots").iterdir())) == 1
    # the findings and the change report are still written for the office to act on
    assert (store / "reports" / "2025-03-31" / "findings.parquet").exists()

    no_reason = runner.invoke(
        app,
        [
            "directory",
            "update",
            str(paths["bad"]),
            "--store",
            str(store),
            "--as-of",
            "2025-03-31",
            "--accept-errors",
        ],
    )
    assert no_reason.exit_code == EXIT_USAGE
    accepted = runner.invoke(
        app,
        [
            "directory",
            "update",
            str(paths["bad"]),
            "--store",
            str(store),
            "--as-of",
            "2025-03-31",
            "--accept-errors",
            "--reason",
            "区局确认，下季度更正",
        ],
    )
    assert accepted.exit_code == EXIT_OK, accepted.output
    entry = json.loads(_manifest(store))["snapshots"][-1]
    assert entry["accepted_with_errors"] is True
    assert entry["reason"] == "区局确认，下季度更正"

    late = runner.invoke(
        app,
        ["directory", "update", str(paths["q2"]), "--store", str(store), "--as-of", "2025-01-31"],
    )
    assert late.exit_code == EXIT_UNUSABLE_INPUT
    assert "不晚于库中最新的快照" in late.output

    history = runner.invoke(
        app, ["directory", "history", q1["institution_id"][8], "--store", str(store)]
    )
    assert history.exit_code == EXIT_OK, history.output
    assert "2024-12-31" in history.output and "2025-03-31" in history.output


def test_personal_data_is_never_printed(snapshots, tmp_path):
    paths, q1 = snapshots
    store = tmp_path / "store"
    outputs = [
        runner.invoke(app, ["directory", "check", str(paths["q1"])]).output,
        runner.invoke(app, ["directory", "diff", str(paths["q1"]), str(paths["q2"])]).output,
        runner.invoke(
            app,
            [
                "directory",
                "update",
                str(paths["q1"]),
                "--store",
                str(store),
                "--as-of",
                "2024-12-31",
            ],
        ).output,
        runner.invoke(
            app, ["directory", "history", q1["institution_id"][0], "--store", str(store)]
        ).output,
    ]
    text = "\n".join(outputs)
    for phone, name in q1.select("contact_phone", "contact_name").head(50).iter_rows():
        assert phone not in text
        assert name not in text


def test_unusable_input(tmp_path):
    missing = runner.invoke(app, ["directory", "check", str(tmp_path / "nope.xlsx")])
    assert missing.exit_code == EXIT_UNUSABLE_INPUT
    not_a_store = tmp_path / "other"
    not_a_store.mkdir()
    (not_a_store / "x.txt").write_text("x")
    result = runner.invoke(
        app, ["directory", "history", "11100000000013338W", "--store", str(not_a_store)]
    )
    assert result.exit_code == EXIT_UNUSABLE_INPUT
    bad_date = runner.invoke(
        app, ["directory", "update", "x.xlsx", "--store", str(tmp_path), "--as-of", "31/12/2024"]
    )
    assert bad_date.exit_code == EXIT_USAGE
