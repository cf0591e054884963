"""The energy-audit command line: outputs, reproducibility, exit codes, language, messages."""

import hashlib
import json
from importlib import metadata

import openpyxl
import polars as pl
import pytest
from rich.cells import cell_len
from typer.testing import CliRunner

from energy_audit.cli import EXIT_OK, EXIT_UNUSABLE_INPUT, EXIT_USAGE, _lang_of, app
from energy_audit.synthetic import make_directory

runner = CliRunner()


def _digest(folder):
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _invoke(args, lang=None, **kwargs):
    """Run the CLI; in English with ``lang="en"`` (the global option, before the command)."""
    return runner.invoke(app, ([f"--lang={lang}"] if lang else []) + list(args), **kwargs)


def _shows(output, text):
    """``text`` is in the output, though typer's error panel boxes and wraps it."""
    joined = "".join(line.strip(" │╭╮╰╯─") for line in output.splitlines())
    return text.replace(" ", "") in joined.replace(" ", "")


def _clean_exit(result, code):
    """The command ended with ``code`` and a message, never a traceback."""
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------- the commands


def test_synth_same_seed_same_files(tmp_path):
    args = ["synth", "--institutions", "200", "--years", "2023-2024", "--seed", "5"]
    a = runner.invoke(app, [*args, "--out", str(tmp_path / "a")])
    b = runner.invoke(app, [*args, "--out", str(tmp_path / "b")])
    assert a.exit_code == b.exit_code == EXIT_OK, a.output
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    c = runner.invoke(app, [*args[:-1], "6", "--out", str(tmp_path / "c")])
    assert c.exit_code == EXIT_OK, c.output
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    assert "已写出 11 个文件到" in a.output
    # not a terminal: one line per stage, numbered
    assert "[1/3] 生成名录库…\n[2/3] 生成填报数据…\n[3/3] 写出文件…" in a.output
    en = _invoke([*args, "--out", str(tmp_path / "d")], lang="en")
    assert "[3/3] writing files…" in en.output and "wrote 11 files to" in en.output


def test_clean_is_a_flag(tmp_path):
    args = ["synth", "--institutions", "200", "--years", "2024", "--formats", "parquet"]
    clean = runner.invoke(app, [*args, "--clean", "--out", str(tmp_path / "clean")])
    assert clean.exit_code == EXIT_OK, clean.output
    assert pl.read_parquet(tmp_path / "clean" / "truth.parquet").is_empty()
    dirty = runner.invoke(app, [*args, "--out", str(tmp_path / "dirty")])
    assert dirty.exit_code == EXIT_OK, dirty.output
    assert not pl.read_parquet(tmp_path / "dirty" / "truth.parquet").is_empty()
    # a flag takes no value: "true" is an extra argument, and the help shows no "<bool>"
    _clean_exit(runner.invoke(app, [*args, "--clean", "true", "--out", str(tmp_path)]), 2)
    help_line = next(
        line
        for line in runner.invoke(app, ["synth", "--help"]).output.splitlines()
        if "--clean" in line
    )
    assert "bool" not in help_line.lower() and "不注入缺陷" in help_line


def test_synth_takes_a_noise_family(tmp_path):
    args = ["synth", "--institutions", "200", "--years", "2023-2024", "--formats", "parquet"]
    heavy = runner.invoke(app, [*args, "--noise", "heavy", "--out", str(tmp_path / "h")])
    assert heavy.exit_code == EXIT_OK, heavy.output
    light = runner.invoke(app, [*args, "--out", str(tmp_path / "l")])
    assert light.exit_code == EXIT_OK, light.output
    read = {k: pl.read_parquet(tmp_path / k / "returns_2024.parquet") for k in ("h", "l")}
    assert not read["h"].equals(read["l"])
    wild = runner.invoke(app, [*args, "--noise", "wild", "--out", str(tmp_path / "w")])
    _clean_exit(wild, 2)
    assert "未知的波动类型" in wild.output and "light, heavy, mixture" in wild.output


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
    # progress, one line per stage, and the summary in Chinese
    for line in ("[1/9] 生成名录库…", "[7/9] 核查…", "[9/9] 计算指标…"):
        assert line in result.output
    assert f"填报数据：读取 {rows['returns_rows_in']:,} 行" in result.output
    assert "全市指标" in result.output and "人均用水量" in result.output
    # the findings workbook speaks Chinese: sheet per category, terms for codes
    book = openpyxl.load_workbook(out / "verify" / "findings.xlsx", read_only=True)
    assert "完整性" in book.sheetnames
    cells = {c for row in book["完整性"].iter_rows(values_only=True) for c in row}
    assert "错误" in cells and "error" not in cells


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
    assert "隔离区：0 整行、1 个单元格" in result.output
    assert "约30" in result.output  # the quarantined cell is listed
    data = pl.read_parquet(tmp_path / "o" / "returns.parquet")
    assert data["electricity_kwh"].to_list() == [15000.0]
    en = _invoke(["read", str(path)], lang="en")
    assert "quarantine: 0 whole row(s) and 1 cell(s)" in en.output


def _bad_returns(tmp_path, n_bad):
    """A returns file of which ``n_bad`` rows have an unreadable number of occupants."""
    n = n_bad + 5
    frame = pl.DataFrame(
        {
            "统一社会信用代码": ["11100000000013338W"] * n,
            "统计年度": ["2023"] * n,
            "建筑面积": ["1000"] * n,
            "用能人数": [f"约{i}" for i in range(n_bad)] + ["30"] * 5,
            "电(千瓦时)": ["15000"] * n,
            "水": ["10"] * n,
        }
    )
    path = tmp_path / "returns.csv"
    frame.write_csv(path)
    return path


def test_read_lists_the_first_quarantined_cells_and_counts_the_rest(tmp_path):
    path = _bad_returns(tmp_path, 8)
    result = runner.invoke(app, ["read", str(path), "--show", "3"])
    assert result.exit_code == EXIT_OK, result.output
    for header in ("行号", "列", "原始内容", "原因"):
        assert header in result.output
    listed = [f"约{i}" for i in range(8) if f" 约{i} " in result.output]
    assert listed == ["约0", "约1", "约2"]
    assert "另有 5 项未列出" in result.output
    assert "用能人数(人)" in result.output  # the column by its Chinese header
    en = _invoke(["read", str(path), "--show", "3"], lang="en")
    assert "raw value" in en.output and "5 more not listed" in en.output


def test_read_writes_a_workbook_without_contacts(tmp_path):
    directory = make_directory(200, seed=1)
    directory = directory.with_columns(pl.col(c).cast(pl.String) for c in directory.columns)
    no_id = pl.int_range(pl.len()) == 3
    directory = directory.with_columns(
        pl.when(no_id).then(None).otherwise(pl.col("institution_id")).alias("institution_id"),
        pl.when(pl.int_range(pl.len()) == 5)
        .then(pl.lit("也许"))
        .otherwise(pl.col("key_energy_user"))
        .alias("key_energy_user"),
    )
    contacts = directory["contact_name"].drop_nulls().to_list()
    phones = directory["contact_phone"].drop_nulls().to_list()
    path = tmp_path / "directory.parquet"
    directory.write_parquet(path)
    out = tmp_path / "out"
    result = runner.invoke(app, ["read", str(path), "--kind", "directory", "--out", str(out)])
    assert result.exit_code == EXIT_OK, result.output
    assert "隔离区：1 整行、1 个单元格" in result.output
    assert "（整行）" in result.output and "也许" in result.output
    book = openpyxl.load_workbook(out / "quarantine.xlsx")
    assert book.sheetnames == ["隔离区", "读取说明", "数据"]
    quarantine = [row for row in book["隔离区"].iter_rows(values_only=True)]
    assert any("也许" in row for row in quarantine)
    data_headers = [c.value for c in book["数据"][3]]
    assert "单位名称" in data_headers and data_headers.count(None) == 0
    text = " ".join(
        str(c)
        for sheet in book.worksheets
        for row in sheet.iter_rows(values_only=True)
        for c in row
        if c is not None
    )
    for secret in contacts[:50] + phones[:50]:
        assert secret not in text
        assert secret not in result.output
    assert "天津市" in text  # the names of institutions are there
    assert (out / "quarantine.parquet").exists()
    written = pl.read_parquet(out / "directory.parquet")  # contacts stay in the store only
    assert written.height == 199 and not {"contact_name", "contact_phone"} & set(written.columns)


# --------------------------------------------------------------------------- language, help


def test_help_is_chinese_by_default_and_english_with_lang_en(monkeypatch):
    monkeypatch.delenv("ENERGY_AUDIT_LANG", raising=False)
    zh = runner.invoke(app, ["--help"])
    assert zh.exit_code == EXIT_OK
    assert "核查公共机构能源资源消费统计年报" in zh.output
    assert "选项" in zh.output and "命令" in zh.output and "显示此帮助并退出" in zh.output
    assert "Show this message" not in zh.output
    en = runner.invoke(app, ["--lang", "en", "--help"])
    assert "Verify public institutions' yearly energy and water returns" in en.output
    assert "Options" in en.output and "Show this message and exit." in en.output
    assert "核查公共机构能源资源消费统计年报" not in en.output
    by_env = runner.invoke(app, ["--help"], env={"ENERGY_AUDIT_LANG": "en"})
    assert "Verify public institutions" in by_env.output
    # commands' help, and a subgroup's
    assert "为优先级最高的这么多份填报绘制" in runner.invoke(app, ["verify", "--help"]).output
    assert "Draw the statistical findings" in _invoke(["verify", "--help"], lang="en").output
    assert "显示一个单位的各个版本" in runner.invoke(app, ["directory", "--help"]).output
    assert (
        "Show the versions of one institution"
        in _invoke(["directory", "history", "--help"], lang="en").output
    )
    # back to Chinese in the same process
    assert "核查公共机构能源资源消费统计年报" in runner.invoke(app, ["--help"]).output


def test_language_of_a_run():
    assert _lang_of([], {}) == "zh"
    assert _lang_of(["--lang", "en", "read", "x"], {}) == "en"
    assert _lang_of(["--lang=en"], {"ENERGY_AUDIT_LANG": "zh"}) == "en"
    assert _lang_of(["read", "--lang", "en"], {}) == "zh"  # after the command: not global
    assert _lang_of(["--version"], {"ENERGY_AUDIT_LANG": " EN "}) == "en"
    assert _lang_of(["--lang", "fr"], {}) == "zh"


def test_unknown_language_is_a_usage_error():
    result = runner.invoke(app, ["--lang", "fr", "rules"])
    _clean_exit(result, EXIT_USAGE)
    assert "“fr”不是可选值" in result.output


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == EXIT_OK
    assert result.output.strip() == f"energy-audit {metadata.version('energy_audit')}"


# ------------------------------------------------------------------------- errors and exits


def test_unusable_input_exits_1_with_one_message(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("统一社会信用代码,统计年度,建筑面积,用能人数,电(千卡),水\n", encoding="utf-8")
    result = runner.invoke(app, ["read", str(path)])
    _clean_exit(result, EXIT_UNUSABLE_INPUT)
    assert "错误：bad.csv" in result.output and "千卡" in result.output
    assert len([line for line in result.output.splitlines() if "错误" in line]) == 1
    en = _invoke(["read", str(path)], lang="en")
    _clean_exit(en, EXIT_UNUSABLE_INPUT)
    assert "error: bad.csv" in en.output and "千卡" in en.output


def test_usage_errors_exit_2_with_chinese_messages(tmp_path):
    missing = runner.invoke(app, ["read"])
    _clean_exit(missing, EXIT_USAGE)
    assert "缺少参数" in missing.output and "用法：" in missing.output
    years = runner.invoke(app, ["synth", "--out", str(tmp_path), "--years", "20x"])
    _clean_exit(years, EXIT_USAGE)
    assert "请给出年份（2024）或年份范围（2020-2024）" in years.output
    kind = runner.invoke(app, ["read", "x.csv", "--kind", "nope"])
    _clean_exit(kind, EXIT_USAGE)
    assert "请给出 returns 或 directory" in kind.output
    assert "缺少选项 '--out'" in runner.invoke(app, ["synth"]).output
    assert "没有选项 --bogus" in runner.invoke(app, ["rules", "--bogus"]).output
    assert "应不小于 1" in runner.invoke(app, ["synth", "--out", "x", "--institutions", "0"]).output
    en = _invoke(["synth"], lang="en")
    _clean_exit(en, EXIT_USAGE)
    assert "Missing option '--out'" in en.output


@pytest.mark.parametrize(
    "command",
    [
        ["synth", "--institutions", "200", "--years", "2024"],
        ["demo", "--institutions", "200", "--years", "2024"],
        ["verify", "--directory", "d.xlsx", "--returns", "r.xlsx", "--year", "2024"],
        ["read", "r.csv"],
        ["directory", "check", "d.xlsx"],
        ["directory", "diff", "a.xlsx", "b.xlsx"],
    ],
)
def test_out_naming_a_file_is_a_clear_usage_error(tmp_path, command):
    taken = tmp_path / "taken"
    taken.write_text("x", encoding="utf-8")
    for out, where in ((taken, taken), (taken / "sub", taken)):
        result = runner.invoke(app, [*command, "--out", str(out)])
        _clean_exit(result, EXIT_USAGE)
        assert _shows(result.output, f"{where} 是一个文件，不是文件夹")
    en = _invoke([*command, "--out", str(taken)], lang="en")
    _clean_exit(en, EXIT_USAGE)
    assert _shows(en.output, f"{taken} is a file, not a folder")


@pytest.mark.parametrize("command", ["rules", "contract"])
def test_markdown_out_in_a_missing_folder(tmp_path, command):
    result = runner.invoke(app, [command, "--out", str(tmp_path / "nowhere" / "x.md")])
    _clean_exit(result, EXIT_USAGE)
    assert _shows(result.output, f"文件夹 {tmp_path / 'nowhere'} 不存在")
    en = _invoke([command, "--out", str(tmp_path / "nowhere" / "x.md")], lang="en")
    _clean_exit(en, EXIT_USAGE)
    assert _shows(en.output, f"the folder {tmp_path / 'nowhere'} does not exist")
    ok = runner.invoke(app, [command, "--out", str(tmp_path / "x.md")])
    assert ok.exit_code == EXIT_OK and f"已写出 {tmp_path / 'x.md'}" in ok.output


def test_contract_command_writes_the_docs(tmp_path):
    out = tmp_path / "c.md"
    assert runner.invoke(app, ["contract", "--out", str(out)]).exit_code == EXIT_OK
    assert "electricity_kwh" in out.read_text(encoding="utf-8")


def test_a_file_that_cannot_be_written_is_one_message(tmp_path):
    path = _bad_returns(tmp_path, 1)
    out = tmp_path / "out"
    (out / "returns.parquet").mkdir(parents=True)  # the file to write is a folder
    result = runner.invoke(app, ["read", str(path), "--out", str(out)])
    _clean_exit(result, EXIT_UNUSABLE_INPUT)
    assert "无法读写" in result.output and "returns.parquet" in result.output
    en = _invoke(["read", str(path), "--out", str(out)], lang="en")
    _clean_exit(en, EXIT_UNUSABLE_INPUT)
    assert "cannot read or write" in en.output and "returns.parquet" in en.output


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    out = tmp_path_factory.mktemp("city")
    result = runner.invoke(
        app, ["synth", "--institutions", "300", "--years", "2023-2024", "--out", str(out)]
    )
    assert result.exit_code == EXIT_OK, result.output
    return out


@pytest.mark.parametrize(
    ("settings", "zh", "en"),
    [
        (
            '{"area_change_max_pct": "ten"}',
            '设置项 area_change_max_pct 的值 "ten" 类型不对，应为数字',
            'setting area_change_max_pct is "ten", expected a number',
        ),
        ('{"area_change_max_pct": 5,\n oops}', "第 2 行第 2 列不是有效的 JSON", "line 2, column 2"),
    ],
)
def test_verify_with_bad_settings_is_one_message(tmp_path, city, settings, zh, en):
    path = tmp_path / "s.json"
    path.write_text(settings, encoding="utf-8")
    args = [
        "verify",
        "--directory",
        str(city / "directory_2024Q4.xlsx"),
        "--returns",
        str(city / "returns_2024.xlsx"),
        "--year",
        "2024",
        "--out",
        str(tmp_path / "v"),
        "--settings",
        str(path),
    ]
    result = runner.invoke(app, args)
    _clean_exit(result, EXIT_UNUSABLE_INPUT)
    assert f"错误：{path}：" in result.output and zh in result.output
    english = _invoke(args, lang="en")
    _clean_exit(english, EXIT_UNUSABLE_INPUT)
    assert en in english.output


def test_verify_shows_stages_and_chinese_tables(tmp_path, city):
    args = [
        "verify",
        "--directory",
        str(city / "directory_2024Q4.xlsx"),
        "--returns",
        str(city / "returns_2024.xlsx"),
        "--history",
        str(city / "returns_2023.xlsx"),
        "--year",
        "2024",
        "--evidence",
        "0",
    ]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "zh")])
    assert result.exit_code == EXIT_OK, result.output
    assert "[1/5] 读取名录库…" in result.output and "[4/5] 核查…" in result.output
    assert "2024：应报" in result.output and "严重程度" in result.output
    en = _invoke([*args, "--out", str(tmp_path / "en")], lang="en")
    assert "[4/5] verifying…" in en.output and "2024: expected" in en.output
    book = openpyxl.load_workbook(tmp_path / "en" / "findings.xlsx", read_only=True)
    assert "coverage" in book.sheetnames


# --------------------------------------------------------------------- directory history


def _cell_width(text):
    return max(cell_len(line) for line in text.splitlines())


def test_directory_history_normalises_the_id_and_fits_80_columns(tmp_path, city):
    store = tmp_path / "store"
    update = runner.invoke(
        app,
        [
            "directory",
            "update",
            str(city / "directory_2024Q4.xlsx"),
            "--store",
            str(store),
            "--as-of",
            "2024-12-31",
        ],
    )
    assert update.exit_code == EXIT_OK, update.output
    directory = pl.read_parquet(city / "directory_2024Q4.parquet")
    row = directory.filter(pl.col("parent_id").is_not_null()).row(0, named=True)
    code = row["institution_id"]
    typed = f" {code[:4]} {code[4:10]}-{code[10:].lower()} "
    wide = code.translate({i: i + 0xFEE0 for i in range(0x21, 0x7F)})
    for given in (code, typed, wide):
        result = runner.invoke(
            app, ["directory", "history", given, "--store", str(store)], env={"COLUMNS": "80"}
        )
        assert result.exit_code == EXIT_OK, result.output
        assert f"{code} 的历史（1 个版本）" in result.output
        assert row["name"] in result.output and row["parent_id"] in result.output
        assert "单位名称" in result.output and "版本 1：2024-12-31 — 至今（新增）" in result.output
        assert _cell_width(result.output) <= 80
        assert row["contact_name"] not in result.output
        assert row["contact_phone"] not in result.output
    en = _invoke(["directory", "history", typed, "--store", str(store)], lang="en")
    assert "Version 1: 2024-12-31 – now (added)" in en.output and "parent_id" in en.output
    missing = runner.invoke(app, ["directory", "history", "nope", "--store", str(store)])
    _clean_exit(missing, EXIT_UNUSABLE_INPUT)
    assert "存储中没有单位 nope" in missing.output


def test_lang_after_the_command_says_where_it_goes():
    result = runner.invoke(app, ["read", "x.csv", "--lang", "en"])
    _clean_exit(result, EXIT_USAGE)
    assert _shows(result.output, "--lang 是全局选项，须写在命令之前")


# ------------------------------------------------------------------------------ progress


def test_progress_on_a_terminal_is_a_bar_with_stage_and_counts(monkeypatch):
    import io

    from rich.console import Console

    from energy_audit import cli

    buffer = io.StringIO()
    monkeypatch.setattr(cli, "errors", Console(file=buffer, force_terminal=True, width=100))
    with cli._Progress(["synth_directory", "synth_returns", "synth_files"]) as shown:
        shown("synth_directory", 1, 1)
        shown("synth_files", 3, 11)
        shown("extra", 0, 0)  # a stage not announced is numbered after the others
        screen = buffer.getvalue()
    assert "[3/3] 写出文件" in screen and "3/11" in screen
    assert "[4/4] extra" in screen
    assert "…\n" not in screen  # no plain lines on a terminal


def test_progress_elsewhere_is_one_line_per_stage(monkeypatch):
    import io

    from rich.console import Console

    from energy_audit import cli

    buffer = io.StringIO()
    monkeypatch.setattr(cli, "errors", Console(file=buffer, force_terminal=False))
    with cli._Progress(["read_returns", "verify"]) as shown:
        for done in range(3):
            shown("read_returns", done, 2)
        shown("verify", 0, 4)
        shown("verify", 4, 4)
    assert buffer.getvalue() == "[1/2] 读取填报数据…\n[2/2] 核查…\n"


def test_commands_that_draw_warn_once_without_a_cjk_font(tmp_path, city, monkeypatch):
    from energy_audit import plotting

    monkeypatch.setattr(plotting, "CJK_FONT_FALLBACK", ["No Such Font SC"])
    args = [
        "verify",
        "--directory",
        str(city / "directory_2024Q4.xlsx"),
        "--returns",
        str(city / "returns_2024.xlsx"),
        "--year",
        "2024",
        "--evidence",
        "2",
        "--out",
        str(tmp_path / "v"),
    ]
    result = runner.invoke(app, args)
    _clean_exit(result, EXIT_OK)
    assert result.output.count("没有可用于图表的中文字体") == 1
    assert "pip install 'energy_audit[fonts]'" in result.output
    assert not list((tmp_path / "v" / "evidence").glob("*.png"))
    quiet = runner.invoke(app, [*args[:-3], "0", "--out", str(tmp_path / "w")])
    assert "中文字体" not in quiet.output  # nothing is drawn: no warning


def test_control_characters_of_a_file_never_reach_the_terminal(tmp_path):
    # A cell holding an escape sequence (clear the screen, a hidden link) is shown escaped.
    header = "统一社会信用代码,统计年度,单位名称,建筑面积(平方米),用能人数,电(千瓦时),水(吨)\n"
    row = "12120000MB1520001X,2024,\x1b]8;;http://x\x1b\\点我\x1b]8;;\x1b\\,100,3,abc\x1b[2J,1\n"
    path = tmp_path / "esc.csv"
    path.write_text(header + row, encoding="utf-8")
    result = runner.invoke(app, ["read", str(path)])
    _clean_exit(result, EXIT_OK)
    assert "\x1b" not in result.output
    assert "abc\\x1b[2J" in result.output  # the quarantined cell, escaped
