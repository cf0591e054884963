"""Systemic rule findings folded into batches: one finding per rule and file or district.

Counts are hand-made: each frame says how many returns a scope has and on how many the rule
fires, so the share of every batch can be checked by eye.
"""

import dataclasses
import json

import polars as pl
import pytest
from typer.testing import CliRunner

from energy_audit import contract, read_returns
from energy_audit.cli import EXIT_OK, app
from energy_audit.errors import SettingsError, UnusableInputError
from energy_audit.findings import DEFAULT_PRIORITY, finding_id, findings_from_hits
from energy_audit.synthetic import make_directory, make_returns, write_returns_file
from energy_audit.verify.batches import batch_findings, fold_systemic
from energy_audit.verify.consistency import CONSISTENCY_RULES
from energy_audit.verify.run import verify
from energy_audit.verify.settings import VerifySettings

YEAR = 2024
PV = next(r for r in CONSISTENCY_RULES if r.rule_id == "CON-004")  # warning, 0.5
RULES_ONLY = VerifySettings(
    statistical=dataclasses.replace(VerifySettings().statistical, enabled=False)
)


def _city(districts: dict[str, int], files: int = 1) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Directory and returns: ``n`` institutions per district, spread over ``files`` files.

    Institution ``i`` of the city reports in file ``f{i % files}.xlsx``.
    """
    ids, codes = [], []
    for code, n in districts.items():
        ids += [f"{code}-{k:03d}" for k in range(n)]
        codes += [code] * n
    directory = pl.DataFrame({"institution_id": ids, "district_code": codes})
    returns = pl.DataFrame(
        {
            "institution_id": ids,
            "year": [YEAR] * len(ids),
            "source_file": [f"f{i % files}.xlsx" for i in range(len(ids))],
            "source_row": [i + 2 for i in range(len(ids))],
        }
    )
    return directory, returns


def _hits(returns: pl.DataFrame, ids: list[str], rule=PV) -> pl.DataFrame:
    """Findings of ``rule`` on the returns of ``ids``."""
    hits = returns.filter(pl.col("institution_id").is_in(ids)).select(
        "institution_id",
        "year",
        pl.lit("pv_generation_kwh").alias("field"),
        pl.lit("光伏发电量大于用电量").alias("message_zh"),
        pl.lit("PV generation above electricity").alias("message_en"),
        "source_file",
        "source_row",
    )
    return findings_from_hits(rule, hits)


def _settings(share: float = 0.5, minimum: int = 20) -> VerifySettings:
    return dataclasses.replace(RULES_ONLY, batch_share=share, batch_min_returns=minimum)


# ------------------------------------------------------------------ a file without water


@pytest.fixture(scope="module")
def no_water(tmp_path_factory):
    """A synthetic city whose one returns file has the water column empty in every row."""
    folder = tmp_path_factory.mktemp("no_water")
    directory = make_directory(600, seed=11)
    returns, _ = make_returns(directory, [YEAR], seed=11, defects=False)
    path, _ = write_returns_file(
        returns.with_columns(pl.lit(None, pl.Float64).alias("water_m3")),
        folder / "returns_2024.xlsx",
        seed=11,
        messy_rate=0.0,
    )
    directory_path = folder / "directory.parquet"
    directory.write_parquet(directory_path)
    read = read_returns(path, year=YEAR)
    return directory, read, returns.height, path, directory_path


def test_file_without_water_gives_one_batch_naming_file_and_count(no_water):
    directory, read, n, _, _ = no_water
    findings = verify(directory, read, YEAR, settings=RULES_ONLY).findings
    water = findings.filter((pl.col("rule_id") == "VAL-001") & (pl.col("field") == "water_m3"))
    batch = water.filter(pl.col("institution_id").is_null())
    members = water.filter(pl.col("institution_id").is_not_null())
    assert batch.height == 1  # the district batches lie inside the file's: dropped
    b = batch.row(0, named=True)
    assert members.height == n  # every return of the file, each once
    assert b["value"] == n
    assert b["severity"] == "error" and b["category"] == "validity"
    assert b["priority"] == DEFAULT_PRIORITY["error"] and b["batch_id"] is None
    assert b["source_file"] == "returns_2024.xlsx" and b["year"] == YEAR
    assert b["finding_id"] == finding_id(
        "VAL-001", None, YEAR, None, "batch:file:returns_2024.xlsx"
    )
    assert b["message_zh"].startswith(
        f"文件 returns_2024.xlsx 中 2024 年的 {n:,} 条填报（共 {n:,} 条，占 100.0%）触发同一规则："
        "必填项未填报，字段“水(立方米)”(water_m3)（VAL-001），按一个批次问题处理"
    )
    assert b["message_en"].startswith(
        f"file returns_2024.xlsx: {n:,} of {n:,} returns of 2024 (100.0%) trip the same rule: "
        "required value not reported, field water_m3"
    )
    assert (members["priority"] == 0.0).all()
    assert (members["batch_id"] == b["finding_id"]).all()
    # the batch heads the queue; nothing else was folded
    assert findings.row(0, named=True)["finding_id"] == b["finding_id"]
    others = findings.filter(
        pl.col("batch_id").is_null() & (pl.col("finding_id") != b["finding_id"])
    )
    assert (others["priority"] > 0).all()


def test_batches_are_listed_with_their_members(no_water):
    directory, read, n, _, _ = no_water
    result = verify(directory, read, YEAR, settings=RULES_ONLY)
    batches = result.batches()
    assert batches.select("rule_id", "members").to_dicts() == [{"rule_id": "VAL-001", "members": n}]


def test_cli_says_how_many_batches_were_folded(no_water, tmp_path):
    _, _, n, path, directory_path = no_water
    args = [
        "verify",
        "--directory",
        str(directory_path),
        "--returns",
        str(path),
        "--year",
        str(YEAR),
        "--evidence",
        "0",
    ]
    zh = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "zh")])
    assert zh.exit_code == EXIT_OK, zh.output
    assert "按批次处理：1 个系统性问题" in zh.output
    assert f"其下 {n:,} 条发现保留在表中，优先级降为 0" in zh.output
    en = CliRunner().invoke(app, ["--lang=en", *args, "--out", str(tmp_path / "en")])
    assert en.exit_code == EXIT_OK, en.output
    assert "folded into batches: 1 systemic rule finding(s)" in en.output
    record = json.loads((tmp_path / "zh" / "verify.json").read_text(encoding="utf-8"))
    assert record["batches"] == {"batches": 1, "findings_folded": n}
    assert record["settings"]["batch_share"] == 0.5
    written = pl.read_parquet(tmp_path / "zh" / "findings.parquet")
    assert written.schema == contract.table("findings").polars_schema
    assert written["batch_id"].drop_nulls().len() == n
    header = pl.read_excel(tmp_path / "zh" / "findings.xlsx", sheet_name="有效性", has_header=False)
    assert "批次编号" in header.row(1)


# ----------------------------------------------------------------------- district batches


def test_district_where_60_percent_trip_a_rule_is_one_batch():
    # 河西区 50 returns, 30 of them hit (60 %); 河东区 50 returns, 5 hit. Five files of 20
    # returns: at most 6 hits a file, below the minimum of 20.
    directory, returns = _city({"120103": 50, "120102": 50}, files=5)
    hexi = [f"120103-{k:03d}" for k in range(30)]
    hedong = [f"120102-{k:03d}" for k in range(5)]
    findings = _hits(returns, hexi + hedong)
    out = fold_systemic(findings, returns, directory, _settings())
    batch = batch_findings(out)
    assert batch.height == 1
    b = batch.row(0, named=True)
    assert (b["rule_id"], b["value"], b["members"], b["field"]) == (
        "CON-004",
        30,
        30,
        "pv_generation_kwh",
    )
    assert b["source_file"] is None and b["institution_id"] is None
    assert b["priority"] == DEFAULT_PRIORITY["warning"]
    assert b["finding_id"] == finding_id("CON-004", None, YEAR, None, "batch:district:120103")
    assert b["message_zh"].startswith(
        "河西区（120103）2024 年的 30 条填报（共 50 条，占 60.0%）触发同一规则："
        "光伏发电量大于用电量，字段“太阳能光电系统发电量(千瓦时)”(pv_generation_kwh)（CON-004）"
    )
    assert b["message_en"].startswith("Hexi (河西区, 120103): 30 of 50 returns of 2024 (60.0%)")
    folded = out.filter(pl.col("batch_id").is_not_null())
    assert sorted(folded["institution_id"]) == hexi
    assert (folded["priority"] == 0).all()
    rest = out.filter(pl.col("institution_id").is_in(hedong))
    assert rest["batch_id"].is_null().all() and (rest["priority"] == 0.5).all()
    assert out.height == findings.height + 1  # nothing lost


def test_rule_on_10_percent_of_a_file_is_no_batch():
    directory, returns = _city({"120101": 200})
    findings = _hits(returns, [f"120101-{k:03d}" for k in range(0, 200, 10)])  # 20 of 200
    out = fold_systemic(findings, returns, directory, _settings())
    assert out.height == 20
    assert out["batch_id"].is_null().all()
    assert (out["priority"] == 0.5).all()
    assert out.sort("finding_id").equals(findings.sort("finding_id"))


def test_statistical_findings_are_never_folded():
    directory, returns = _city({"120101": 40})
    statistical = dataclasses.replace(PV, rule_id="STA-999", category="statistical")
    findings = _hits(returns, returns["institution_id"].to_list(), rule=statistical)
    out = fold_systemic(findings, returns, directory, _settings())
    assert out["batch_id"].is_null().all() and out.height == 40


# --------------------------------------------------------------------- one batch, the larger


def test_file_batch_wins_over_the_districts_inside_it():
    # one file of 100 returns: 40 of 河西区, 60 of 河东区, the rule fires on all 100
    directory, returns = _city({"120103": 40, "120102": 60})
    findings = _hits(returns, returns["institution_id"].to_list())
    batch = batch_findings(fold_systemic(findings, returns, directory, _settings()))
    assert batch.select("source_file", "value", "members").rows() == [("f0.xlsx", 100, 100)]


def test_district_batch_wins_over_its_smaller_files():
    # 河西区 90 returns over 3 files of 30, all hit: district batch 90 > file batches 30
    directory, returns = _city({"120103": 90}, files=3)
    findings = _hits(returns, returns["institution_id"].to_list())
    out = fold_systemic(findings, returns, directory, _settings())
    batch = batch_findings(out)
    assert batch.select("source_file", "value", "members").rows() == [(None, 90, 90)]
    assert "河西区（120103）" in batch["message_zh"][0]


def test_a_batch_keeps_the_members_no_larger_batch_takes():
    # file f0: 40 returns of 和平区 and 10 of 河西区, all hit (file batch 50); 河西区 also has
    # 50 returns in f1 with 45 hit: 河西区's batch (55 of 60) is larger than f0's (50) for the
    # 10 returns of f0, and it keeps them with its 45.
    directory = pl.DataFrame(
        {
            "institution_id": [f"a{k}" for k in range(40)] + [f"b{k}" for k in range(60)],
            "district_code": ["120101"] * 40 + ["120103"] * 60,
        }
    )
    returns = directory.select(
        "institution_id",
        pl.lit(YEAR).alias("year"),
        pl.when(pl.int_range(pl.len()) < 50)
        .then(pl.lit("f0.xlsx"))
        .otherwise(pl.lit("f1.xlsx"))
        .alias("source_file"),
        (pl.int_range(pl.len()) + 2).alias("source_row"),
    )
    hit = [f"a{k}" for k in range(40)] + [f"b{k}" for k in range(55)]
    out = fold_systemic(_hits(returns, hit), returns, directory, _settings())
    batch = batch_findings(out).sort("value")
    assert batch.select("source_file", "value", "members").rows() == [
        ("f0.xlsx", 50, 40),
        (None, 55, 55),
    ]
    assert out.filter(pl.col("batch_id").is_not_null()).height == 95


# ------------------------------------------------------------------------ ids and thresholds


def test_batch_ids_are_stable_across_runs():
    directory, returns = _city({"120103": 50, "120104": 30}, files=2)
    ids = [f"120103-{k:03d}" for k in range(50)] + [f"120104-{k:03d}" for k in range(25)]
    first = fold_systemic(_hits(returns, ids), returns, directory, _settings())
    second = fold_systemic(_hits(returns, ids), returns, directory, _settings())
    assert first.equals(second)
    # the members keep the ids they had before folding
    assert set(first["finding_id"]) >= set(_hits(returns, ids)["finding_id"])
    # and the order of the input does not matter
    shuffled = _hits(returns, ids).sample(fraction=1.0, shuffle=True, seed=1)
    third = fold_systemic(shuffled, returns, directory, _settings())
    assert third.sort("finding_id").equals(first.sort("finding_id"))


@pytest.mark.parametrize(
    ("returns_n", "hits", "share", "minimum", "batch"),
    [
        (40, 20, 0.5, 20, True),  # exactly half, exactly the minimum
        (40, 19, 0.5, 19, False),  # 47.5 %: below the share
        (41, 21, 0.5, 20, True),  # 51.2 %
        (20, 20, 0.5, 20, True),  # all, exactly the minimum
        (19, 19, 0.5, 20, False),  # all, one below the minimum
        (20, 12, 0.6, 12, True),  # exactly 60 % (12/20 in floating point)
        (20, 11, 0.6, 11, False),  # 55 %
        (10, 3, 0.3, 3, True),  # exactly 30 %
        (50, 50, 1.0, 1, True),
        (50, 49, 1.0, 1, False),
    ],
)
def test_share_and_minimum_are_inclusive(returns_n, hits, share, minimum, batch):
    directory, returns = _city({"120101": returns_n})
    findings = _hits(returns, [f"120101-{k:03d}" for k in range(hits)])
    out = fold_systemic(findings, returns, directory, _settings(share, minimum))
    # one batch: the file and the district hold the same returns (the file kept on the tie)
    assert batch_findings(out)["source_file"].to_list() == (["f0.xlsx"] if batch else [])
    assert out["batch_id"].is_not_null().sum() == (hits if batch else 0)


def test_tie_of_file_and_district_goes_to_the_file_and_the_district_batch_is_dropped():
    directory, returns = _city({"120101": 20})
    out = fold_systemic(
        _hits(returns, returns["institution_id"].to_list()), returns, directory, _settings()
    )
    batch = batch_findings(out)
    assert batch.select("source_file", "members").rows() == [("f0.xlsx", 20)]


def test_a_rule_firing_twice_on_a_return_counts_it_once():
    directory, returns = _city({"120101": 40})
    half = [f"120101-{k:03d}" for k in range(19)]
    once = _hits(returns, half)
    twice = pl.concat(
        [
            once,
            once.with_columns(
                pl.lit("electricity_kwh").alias("field"),
                (pl.col("finding_id") + "b").alias("finding_id"),
            ),
        ]
    )
    out = fold_systemic(twice, returns, directory, _settings(0.45, 19))
    batch = batch_findings(out)
    assert batch["value"].to_list() == [19]  # 19 returns of 40 (47.5 %), 38 findings
    assert batch["members"].to_list() == [38]
    assert batch["field"].to_list() == [None]  # the members name two fields


def test_a_due_return_not_received_counts_among_the_district_returns():
    # 河西区: 30 institutions, 10 returns received; COV-001 on the 20 missing → 20 of 30
    from energy_audit.verify.coverage import COVERAGE_RULES

    missing = next(r for r in COVERAGE_RULES if r.rule_id == "COV-001")
    directory, everyone = _city({"120103": 30})
    returns = everyone.head(10)
    hits = everyone.tail(20).select(
        "institution_id",
        "year",
        pl.lit("未报送").alias("message_zh"),
        pl.lit("no return").alias("message_en"),
    )
    out = fold_systemic(findings_from_hits(missing, hits), returns, directory, _settings())
    batch = batch_findings(out)
    assert batch.select("value", "members").rows() == [(20, 20)]
    assert "共 30 条，占 66.7%" in batch["message_zh"][0]


def test_folded_findings_are_not_folded_again():
    directory, returns = _city({"120101": 30})
    out = fold_systemic(
        _hits(returns, returns["institution_id"].to_list()), returns, directory, _settings()
    )
    with pytest.raises(UnusableInputError, match=r"已按批次处理过") as info:
        fold_systemic(out, returns, directory, _settings())
    assert "already folded" in info.value.message("en")


def test_no_findings_stay_no_findings():
    directory, returns = _city({"120101": 30})
    out = fold_systemic(_hits(returns, []), returns, directory, _settings())
    assert out.is_empty() and out.schema == contract.table("findings").polars_schema


# ------------------------------------------------------------------------------ settings


def test_batch_settings_round_trip_and_defaults():
    s = VerifySettings()
    assert (s.batch_share, s.batch_min_returns) == (0.5, 20)
    t = VerifySettings.from_dict({"batch_share": 1, "batch_min_returns": 5})
    assert t.batch_share == 1.0 and isinstance(t.batch_share, float)
    assert VerifySettings.from_dict(json.loads(json.dumps(t.to_dict()))) == t


@pytest.mark.parametrize(
    ("values", "zh", "en"),
    [
        (
            {"batch_share": 0},
            "设置项 batch_share 的值 0 超出范围，应大于 0 且不大于 1",
            "setting batch_share is 0, expected a number > 0 and ≤ 1",
        ),
        (
            {"batch_share": 1.5},
            "设置项 batch_share 的值 1.5 超出范围",
            "setting batch_share is 1.5, expected a number > 0 and ≤ 1",
        ),
        (
            {"batch_share": "half"},
            '设置项 batch_share 的值 "half" 类型不对，应为数字',
            'setting batch_share is "half", expected a number',
        ),
        (
            {"batch_min_returns": 0},
            "设置项 batch_min_returns 的值 0 超出范围，应为不小于 1 的整数",
            "setting batch_min_returns is 0, expected a whole number ≥ 1",
        ),
        (
            {"batch_min_returns": 20.5},
            "设置项 batch_min_returns 的值 20.5 类型不对，应为整数",
            "setting batch_min_returns is 20.5, expected a whole number",
        ),
    ],
)
def test_bad_batch_settings_are_clear_errors(tmp_path, values, zh, en):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(values), encoding="utf-8")
    with pytest.raises(SettingsError, match=rf"s\.json：{zh}") as info:
        VerifySettings.from_json(path)
    assert en in info.value.message("en")


def test_settings_built_directly_are_checked_too():
    with pytest.raises(SettingsError, match=r"batch_share 的值 -0.1 超出范围"):
        VerifySettings(batch_share=-0.1)
    with pytest.raises(SettingsError, match=r"batch_min_returns 的值 0 超出范围"):
        dataclasses.replace(VerifySettings(), batch_min_returns=0)
