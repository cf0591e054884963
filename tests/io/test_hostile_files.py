"""Hostile and careless files (issue 9): nothing lost, nothing non-finite in the data, one message.

Each case ends in the data as the value the file holds, in quarantine with a reason in Chinese
and English, or in one UnusableInputError naming the file.
"""

import json
import struct
import zipfile
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xlsxwriter

from energy_audit import read_directory, read_returns
from energy_audit.errors import UnusableInputError
from energy_audit.io import excel
from energy_audit.io.cells import EXCEL_ERRORS
from energy_audit.io.readers import PERSONAL_MASK

ID1 = "11100000000013338W"  # 住房和城乡建设部 (domain.md §4)
ID2 = "12100000000018032A"
HEADERS = ["统一社会信用代码", "统计年度", "单位名称", "建筑面积", "用能人数", "电(千瓦时)", "水"]
POWER = 5  # column F


def _book(path: Path, rows: list[list], formulas=(), **options) -> Path:
    """Header and rows from A1; ``formulas``: (row, col, formula, cached value or None)."""
    wb = xlsxwriter.Workbook(str(path), {"strings_to_formulas": False, **options})
    ws = wb.add_worksheet("表1")
    ws.write_row(0, 0, HEADERS)
    for i, row in enumerate(rows, start=1):
        for j, value in enumerate(row):
            if value is not None:
                ws.write(i, j, value)
    for row, col, formula, value in formulas:
        if value is None:
            ws.write_formula(row, col, formula)
        else:
            ws.write_formula(row, col, formula, None, value)
    wb.close()
    return path


def _row(code=ID1, power=10, occupants=3, name="甲"):
    return [code, 2023, name, 100, occupants, power, 1]


def _cells(result):
    q = result.quarantine.filter(pl.col("column").is_not_null())
    return {
        (r, c): (v, zh, en)
        for r, c, v, zh, en in q.select(
            "source_row", "column", "raw_value", "reason", "reason_en"
        ).iter_rows()
    }


def _no_infinite(result):
    for name, dtype in result.data.schema.items():
        if dtype == pl.Float64:
            assert result.data[name].is_finite().fill_null(True).all(), name


def _rewrite_sheet(path: Path, target: Path, edit) -> Path:
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(target, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                data = edit(data)
            dst.writestr(info, data)
    return target


# ------------------------------------------------------------- 1. whole numbers beyond Int64


@pytest.mark.parametrize("text", ["99999999999999999999", "1e20", "-9223372036854775809"])
def test_whole_number_beyond_int64_is_quarantined(tmp_path, text):
    path = _book(tmp_path / "r.xlsx", [_row(occupants=text), _row(ID2)])
    result = read_returns(path)
    assert result.data["occupants"].to_list() == [None, 3]
    assert _cells(result) == {
        (2, "occupants"): (
            text,
            "超出整数范围（表头“用能人数”）",
            "whole number out of range (header '用能人数')",
        )
    }


def test_whole_number_up_to_int64_is_read_exactly(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text(
        ",".join(HEADERS) + f"\n{ID1},2023,甲,100,9223372036854775807,10,1\n", encoding="utf-8"
    )
    result = read_returns(path)
    assert result.data["occupants"].to_list() == [9223372036854775807]
    assert result.quarantine.is_empty()


# ------------------------------------------------------------------------ 2. Excel error cells


@pytest.mark.parametrize(
    "error", ["#DIV/0!", "#REF!", "#VALUE!", "#NUM!", "#NAME?", "#NULL!", "#N/A"]
)
def test_excel_error_cell_is_quarantined(tmp_path, error):
    path = _book(tmp_path / "r.xlsx", [_row(power=None), _row(ID2)], [(1, POWER, "=1/0", error)])
    result = read_returns(path)
    assert result.data["electricity_kwh"].to_list() == [None, 10.0]
    assert _cells(result) == {
        (2, "electricity_kwh"): (
            error,
            f"Excel 错误值 {error}（表头“电(千瓦时)”）",
            f"Excel error value {error} (header '电(千瓦时)')",
        )
    }


@pytest.mark.parametrize("error", ["#SPILL!", "#CALC!", "#GETTING_DATA", "#FIELD!"])
def test_error_values_calamine_does_not_know_are_quarantined_too(tmp_path, error):
    # Excel 365 writes these as error cells (t="e"); calamine refuses the whole workbook for
    # them, so the reader reads a copy with the error cells as text.
    made = _book(
        tmp_path / "made.xlsx", [_row(power=None), _row(ID2)], [(1, POWER, "=1/0", "#N/A")]
    )
    path = _rewrite_sheet(
        made,
        tmp_path / "r.xlsx",
        lambda xml: xml.replace(b"<v>#N/A</v>", f"<v>{error}</v>".encode()),
    )
    assert b't="e"' in zipfile.ZipFile(path).read("xl/worksheets/sheet1.xml")
    result = read_returns(path)
    assert result.data["electricity_kwh"].to_list() == [None, 10.0]
    assert _cells(result)[(2, "electricity_kwh")][:2] == (
        error,
        f"Excel 错误值 {error}（表头“电(千瓦时)”）",
    )


def test_error_text_in_a_csv_is_an_error_value_not_a_blank(tmp_path):
    # Excel writes an error cell into a CSV as its text; #N/A is an error there too (decided:
    # it is no longer one of the blank tokens).
    path = tmp_path / "r.csv"
    lines = [",".join(HEADERS)] + [f"{ID1},2023,甲,100,3,{e},1" for e in EXCEL_ERRORS]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = read_returns(path)
    assert result.data.height == len(EXCEL_ERRORS)
    reasons = result.quarantine.sort("source_row")["reason"].to_list()
    assert reasons == [f"Excel 错误值 {e}（表头“电(千瓦时)”）" for e in EXCEL_ERRORS]


def test_error_cell_in_a_text_column_is_quarantined(tmp_path):
    path = _book(tmp_path / "r.xlsx", [_row(name=None)], [(1, 2, "=1/0", "#REF!")])
    result = read_returns(path)
    assert result.data["name"].to_list() == [None]
    assert _cells(result)[(2, "name")][:2] == ("#REF!", "Excel 错误值 #REF!（表头“单位名称”）")


def test_error_cell_in_the_id_sends_the_row_whole_to_quarantine(tmp_path):
    path = _book(tmp_path / "r.xlsx", [_row(code=None), _row(ID2)], [(1, 0, "=1/0", "#N/A")])
    result = read_returns(path)
    assert result.data["institution_id"].to_list() == [ID2]
    whole = result.quarantine.filter(pl.col("column").is_null())
    assert json.loads(whole["raw_value"][0])["统一社会信用代码"] == "#N/A"
    assert result.rows_in == result.data.height + whole.height


# --------------------------------------------------------------------------------- 3. formulas


def test_formula_without_a_result_is_quarantined_not_zero(tmp_path):
    # xlsxwriter calculates nothing: it stores 0 and asks Excel to recalculate on opening.
    path = _book(tmp_path / "r.xlsx", [_row(power=None), _row(ID2)], [(1, POWER, "=D2*2", None)])
    xml = zipfile.ZipFile(path).read("xl/worksheets/sheet1.xml")
    assert b"<f>D2*2</f><v>0</v>" in xml  # what calamine alone reads as 0
    result = read_returns(path)
    assert result.data["electricity_kwh"].to_list() == [None, 10.0]
    assert _cells(result) == {
        (2, "electricity_kwh"): (
            "=D2*2",
            "公式没有计算结果（表头“电(千瓦时)”）",
            "formula without a calculated result (header '电(千瓦时)')",
        )
    }


def test_formula_without_any_cached_value_is_quarantined(tmp_path):
    # openpyxl and Apache POI write <f> and no <v>: calamine reads an empty cell.
    made = _book(tmp_path / "made.xlsx", [_row(power=None)], [(1, POWER, "=D2*2", 7)])
    path = _rewrite_sheet(
        made,
        tmp_path / "r.xlsx",
        lambda xml: xml.replace(b"<f>D2*2</f><v>7</v>", b"<f>D2*2</f>"),
    )
    result = read_returns(path)
    assert _cells(result)[(2, "electricity_kwh")][:2] == (
        "=D2*2",
        "公式没有计算结果（表头“电(千瓦时)”）",
    )


def test_a_row_of_formulas_without_results_is_not_a_blank_row(tmp_path):
    made = _book(tmp_path / "made.xlsx", [_row(), [None] * 7], [(2, POWER, "=F2", 1)])
    path = _rewrite_sheet(
        made, tmp_path / "r.xlsx", lambda xml: xml.replace(b"<f>F2</f><v>1</v>", b"<f>F2</f>")
    )
    result = read_returns(path)
    assert result.rows_in == 2  # the row holding only =F2 is a row
    assert result.quarantine.filter(pl.col("column").is_null())["source_row"].to_list() == [3]


def test_formula_with_a_cached_value_reads_as_that_value(tmp_path):
    path = _book(
        tmp_path / "r.xlsx",
        [_row(power=None, name=None)],
        [(1, POWER, "=D2*2", 200), (1, 2, '=HYPERLINK("http://x","甲")', "甲")],
    )
    result = read_returns(path)
    assert result.data.select("electricity_kwh", "name").row(0) == (200.0, "甲")
    assert result.quarantine.is_empty()


def test_shared_formula_is_shown_with_its_text(tmp_path):
    made = _book(tmp_path / "made.xlsx", [_row(power=None), _row(ID2, power=None)])
    f = b'<c r="F2"><f t="shared" ref="F2:F3" si="0">D2*2</f></c>'
    g = b'<c r="F3"><f t="shared" si="0"/></c>'
    path = _rewrite_sheet(
        made,
        tmp_path / "r.xlsx",
        lambda xml: xml.replace(b'<c r="G2"', f + b'<c r="G2"').replace(
            b'<c r="G3"', g + b'<c r="G3"'
        ),
    )
    result = read_returns(path)
    shown = {r: v for (r, _), (v, _, _) in _cells(result).items()}
    assert shown == {2: "=D2*2", 3: "=D2*2"}


def test_a_workbook_whose_formula_sheet_is_broken_xml_is_refused(tmp_path):
    made = _book(tmp_path / "made.xlsx", [_row(power=None)], [(1, POWER, "=D2*2", 7)])
    path = _rewrite_sheet(
        made, tmp_path / "坏.xlsx", lambda xml: xml.replace(b"</sheetData>", b"</sheetDat>")
    )
    with pytest.raises(UnusableInputError, match=r"坏\.xlsx（工作表 表1）：工作表内容已损坏"):
        read_returns(path)


# ------------------------------------------------------------------ 4. values that are not finite


@pytest.mark.parametrize("text", ["1e400", "-1e400", "inf", "-inf", "nan", "Infinity"])
def test_not_finite_text_is_quarantined(tmp_path, text):
    path = tmp_path / "r.csv"
    path.write_text(",".join(HEADERS) + f"\n{ID1},2023,甲,{text},3,10,1\n", encoding="utf-8")
    result = read_returns(path)
    assert result.data["building_area_m2"].to_list() == [None]
    assert _cells(result)[(2, "building_area_m2")][1] == "不是有限数值（表头“建筑面积”）"


def test_header_unit_that_overflows_is_not_finite(tmp_path):
    path = tmp_path / "r.csv"
    header = ",".join(HEADERS).replace("电(千瓦时)", "电(万千瓦时)")
    path.write_text(header + f"\n{ID1},2023,甲,100,3,1e305,1\n", encoding="utf-8")
    result = read_returns(path)
    assert result.data["electricity_kwh"].to_list() == [None]
    _no_infinite(result)


def test_not_finite_parquet_floats_are_quarantined(tmp_path):
    frame = pl.DataFrame(
        {
            "institution_id": [ID1, ID2, ID1],
            "year": [2023, 2023, 2024],
            "building_area_m2": [float("inf"), float("nan"), 100.0],
            "occupants": [3, 3, 3],
            "electricity_kwh": [10.0, float("-inf"), 1e308],
            "water_m3": [1.0, 1.0, 1.0],
        }
    )
    path = tmp_path / "r.parquet"
    frame.write_parquet(path)
    result = read_returns(path)
    _no_infinite(result)
    assert result.data["electricity_kwh"].to_list() == [10.0, None, 1e308]
    assert set(_cells(result)) == {
        (1, "building_area_m2"),
        (2, "building_area_m2"),
        (2, "electricity_kwh"),
    }
    assert {zh for _, zh, _ in _cells(result).values()} >= {
        "不是有限数值（表头“building_area_m2”）"
    }


def test_infinite_cached_value_in_a_workbook_is_quarantined(tmp_path):
    made = _book(tmp_path / "made.xlsx", [_row(power=12345)])
    path = _rewrite_sheet(
        made, tmp_path / "r.xlsx", lambda xml: xml.replace(b"<v>12345</v>", b"<v>inf</v>")
    )
    result = read_returns(path)
    _no_infinite(result)
    assert result.data["electricity_kwh"].to_list() == [None]
    assert _cells(result)[(2, "electricity_kwh")][1] == "不是有限数值（表头“电(千瓦时)”）"


# ---------------------------------------------------------------- 5. Parquet text not UTF-8


def _bad_utf8_parquet(path: Path) -> Path:
    values = [ID1.encode(), ID2.encode()]
    names = [b"\xff\xfe\xb5\xa5\xce\xbb", "乙".encode()]  # GBK-ish bytes, not UTF-8
    offsets, data = [0], b""
    for v in names:
        data += v
        offsets.append(len(data))
    bad = pa.Array.from_buffers(
        pa.string(), 2, [None, pa.py_buffer(struct.pack("<3i", *offsets)), pa.py_buffer(data)]
    )
    table = pa.table(
        {
            "institution_id": pa.array([v.decode() for v in values]),
            "year": [2023, 2023],
            "name": bad,
            "building_area_m2": [100.0, 100.0],
            "occupants": [3, 3],
            "electricity_kwh": [10.0, 10.0],
            "water_m3": [1.0, 1.0],
            "contact": pa.array([b"\x80", b"ok"], pa.binary()),
        }
    )
    pq.write_table(table, path)
    return path


def test_parquet_text_that_is_not_utf8_is_quarantined_cell_by_cell(tmp_path):
    path = _bad_utf8_parquet(tmp_path / "r.parquet")
    with pytest.raises(pl.exceptions.ComputeError):
        pl.read_parquet(path)  # what the reader used to stop on
    result = read_returns(path)
    assert result.data["name"].to_list() == [None, "乙"]
    assert _cells(result) == {
        (1, "name"): (
            r"\xff\xfe\xb5\xa5λ",
            "不是 UTF-8 文本（表头“name”）",
            "not UTF-8 text (header 'name')",
        )
    }


def test_binary_parquet_column_is_decoded(tmp_path):
    table = pa.table(
        {
            "institution_id": pa.array([ID1.encode()], pa.binary()),
            "year": [2023],
            "building_area_m2": [100.0],
            "occupants": [3],
            "electricity_kwh": [10.0],
            "water_m3": pa.array([b"\xff"], pa.binary()),
        }
    )
    pq.write_table(table, tmp_path / "r.parquet")
    result = read_returns(tmp_path / "r.parquet")
    assert result.data["institution_id"].to_list() == [ID1]
    assert _cells(result)[(1, "water_m3")][:2] == (r"\xff", "不是 UTF-8 文本（表头“water_m3”）")


# --------------------------------------------------------- 6. calamine's chain stays inside


@pytest.mark.parametrize(
    ("content", "cause"),
    [
        (b"", "不是完整的 zip 压缩包"),
        (b"hello" * 100, "不是完整的 zip 压缩包"),
    ],
)
def test_damaged_workbook_gives_one_short_message(tmp_path, content, cause):
    path = tmp_path / "坏.xlsx"
    path.write_bytes(content)
    with pytest.raises(UnusableInputError) as info:
        read_returns(path)
    message = str(info.value)
    assert message.startswith("坏.xlsx：无法作为 Excel 工作簿打开：文件已损坏或不是工作簿（")
    assert cause in message
    for text in (message, info.value.message_en):
        assert "Context" not in text and "calamine" not in text and "\n" not in text
    assert info.value.message_en.startswith("坏.xlsx: cannot be opened as an Excel workbook")


def test_truncated_workbook_gives_one_short_message(tmp_path):
    made = _book(tmp_path / "made.xlsx", [_row()])
    path = tmp_path / "截断.xlsx"
    path.write_bytes(made.read_bytes()[: made.stat().st_size // 2])
    with pytest.raises(UnusableInputError, match=r"^截断\.xlsx：无法作为 Excel 工作簿打开") as info:
        read_returns(path)
    assert "Context" not in str(info.value)


def test_cause_of_calamine_errors():
    chain = "calamine error: Xls error: Cfb error: Invalid OLE (…)\nContext:\n    0: Could not"
    assert excel.cause(Exception(chain)) == (
        "不是 Excel 97-2003 工作簿",
        "not an Excel 97-2003 workbook",
    )
    missing = "calamine error: Xlsx error: File not found '_rels/.rels'\nContext:\n    0: x"
    assert excel.cause(Exception(missing)) == (
        "缺少工作簿内部文件 _rels/.rels",
        "workbook part _rels/.rels is missing",
    )
    assert excel.cause(Exception("calamine error: Xlsx error: odd thing\nContext:\n 0: x")) == (
        "odd thing",
        "odd thing",
    )


# ----------------------------------------------------------------------- 7. Chinese reasons


def test_every_note_is_in_both_languages(tmp_path):
    path = _book(tmp_path / "r.xlsx", [_row(power="500 千瓦时"), [None, None, "合计"]])
    result = read_returns(path)
    assert result.notes["detail"].null_count() == result.notes["detail_en"].null_count() == 0
    for detail, detail_en in result.notes.select("detail", "detail_en").iter_rows():
        assert any("\u4e00" <= ch <= "\u9fff" for ch in detail), detail
        assert detail != detail_en
    assert repr(result).startswith("ReadResult（读入 2 行：数据 1 行，隔离整行 1 行、单元格 0 个")


# ----------------------------------------------------------------------------- 8. personal data


def test_personal_columns_are_masked_in_quarantine(tmp_path):
    headers = ["统一社会信用代码", "单位名称", "联系人", "联系电话", "所在区", "单位性质"]
    headers += ["单位类别", "隶属关系"]
    rest = ["和平区", "机关", "党政机关", "市级"]
    path = tmp_path / "d.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet("名录")
    ws.write_row(0, 0, headers)
    ws.write_row(1, 0, [ID1, "甲", "张三", "13800000000", *rest])
    ws.write_row(2, 0, ["", "乙", "李四", "13900000000", *rest])
    ws.write_formula(3, 0, "=1/0", None, "#N/A")
    ws.write_row(3, 1, ["丙", "王五", None, *rest])
    ws.write_formula(3, 3, "=1/0", None, "#REF!")
    wb.close()
    result = read_directory(path)
    assert result.data["contact_name"].to_list() == ["张三"]  # the data keeps them
    text = result.quarantine.write_csv()
    for secret in ("李四", "13900000000", "王五"):
        assert secret not in text
    rows = [json.loads(v) for v in result.quarantine["raw_value"]]
    assert {k: rows[0][k] for k in headers[:4]} == {
        "统一社会信用代码": None,
        "单位名称": "乙",
        "联系人": PERSONAL_MASK,
        "联系电话": PERSONAL_MASK,
    }
    assert rows[1]["联系人"] == PERSONAL_MASK and rows[1]["联系电话"] == PERSONAL_MASK
