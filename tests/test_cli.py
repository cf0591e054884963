"""The energy-audit command line: outputs, reproducibility, exit codes."""

import hashlib
import json

import polars as pl
from typer.testing import CliRunner

from energy_audit.cli import EXIT_OK, EXIT_UNUSABLE_INPUT, EXIT_USAGE, app

runner = CliRunner()


def _digest(folder):
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_synth_same_seed_same_files(tmp_path):
    args = ["synth", "--institutions", "200", "--years", "2023-2024", "--seed", "5"]
    a = runner.invoke(app, [*args, "--out", str(tmp_path / "a")])
    b = runner.invoke(app, [*args, "--out", str(tmp_path / "b")])
    assert a.exit_code == b.exit_code == EXIT_OK, a.output
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    c = runner.invoke(app, [*args[:-1], "6", "--out", str(tmp_path / "c")])
    assert c.exit_code == EXIT_OK, c.output
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_demo_writes_every_stage(tmp_path):
    out = tmp_path / "demo"
    result = runner.invoke(
        app, ["demo", "--out", str(out), "--institutions", "200", "--years", "2022-2024"]
    )
    assert result.exit_code == EXIT_OK, result.output
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["settings"]["institutions"] == 200
    for name in (
        "read/returns.parquet",
        "read/quarantine.parquet",
        "indicators/by_district.parquet",
        "indicators/indicators.xlsx",
        "indicators/factors_used.csv",
    ):
        assert name in manifest["outputs"], name
    assert [d["stored"] for d in manifest["directory"].values()] == [True, True]
    assert (out / "directory" / "store" / "manifest.json").exists()
    assert manifest["verify"]["coverage"]["expected"] > 0
    assert (out / "verify" / "findings.xlsx").exists()
    assert "verify/evidence/index.csv" in manifest["outputs"]
    charts = [name for name in manifest["outputs"] if name.endswith(".png")]
    assert len(charts) == manifest["verify"]["evidence_charts"] > 0
    rows = manifest["rows"]
    assert (
        rows["returns_rows_in"] == rows["returns_in_data"] + rows["returns_whole_rows_quarantined"]
    )
    city = pl.read_parquet(out / "indicators" / "by_city.parquet")
    assert city["year"].to_list() == [2022, 2023, 2024]
    # every input file is recorded with its hash
    assert all(len(h) == 64 for h in manifest["inputs"].values())


def test_read_reports_and_writes(tmp_path):
    frame = pl.DataFrame(
        {
            "统一社会信用代码": ["11100000000013338W"],
            "统计年度": ["2023"],
            "建筑面积": ["1,000"],
            "用能人数": ["约30"],
            "电(万千瓦时)": ["1.5"],
            "水": ["10"],
        }
    )
    path = tmp_path / "r.parquet"
    frame.write_parquet(path)
    result = runner.invoke(app, ["read", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == EXIT_OK, result.output
    assert "1 cells in quarantine" in result.output
    data = pl.read_parquet(tmp_path / "o" / "returns.parquet")
    assert data["electricity_kwh"].to_list() == [15000.0]


def test_unusable_input_exits_1_with_one_message(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("统一社会信用代码,统计年度,建筑面积,用能人数,电(千卡),水\n", encoding="utf-8")
    result = runner.invoke(app, ["read", str(path)])
    assert result.exit_code == EXIT_UNUSABLE_INPUT
    assert "bad.csv" in result.output and "unknown unit '千卡'" in result.output
    assert "Traceback" not in result.output


def test_usage_errors_exit_2(tmp_path):
    assert runner.invoke(app, ["read"]).exit_code == EXIT_USAGE
    assert (
        runner.invoke(app, ["synth", "--out", str(tmp_path), "--years", "20x"]).exit_code
        == EXIT_USAGE
    )
    assert runner.invoke(app, ["read", "x.csv", "--kind", "nope"]).exit_code == EXIT_USAGE


def test_contract_command_writes_the_docs(tmp_path):
    out = tmp_path / "c.md"
    assert runner.invoke(app, ["contract", "--out", str(out)]).exit_code == EXIT_OK
    assert "electricity_kwh" in out.read_text(encoding="utf-8")
