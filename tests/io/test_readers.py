"""Readers: real files (xlsx with title rows, GB18030 CSV, Parquet) into canonical frames."""

from pathlib import Path

import polars as pl
import pytest
import xlsxwriter

from energy_audit import read_directory, read_returns
from energy_audit.errors import UnusableInputError

ID1 = "11100000000013338W"  # 住房和城乡建设部 (domain.md §4)
ID2 = "12100000000018032A"
ID3 = "11430000006122244L"

RETURN_HEADERS = [
    "统一社会信用代码",
    "统计年度",
    "单位名称",
    "建筑面积(平方米)",
    "用能人数",
    "电(千瓦时)",
    "水(吨)",
]


def write_xlsx(path: Path, rows: list[list], *, title_rows: int = 1, sheet: str = "表1") -> Path:
    wb = xlsxwriter.Workbook(path)
    ws = wb.add_worksheet(sheet)
    if title_rows:
        ws.write(0, 0, "2023年度公共机构能源资源消费统计表")
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            if value is not None:
                ws.write(title_rows + 1 + i if title_rows else i, j, value)
    wb.close()
    return path


def write_csv(path: Path, rows: list[list], encoding: str = "utf-8") -> Path:
    text = "\n".join(",".join("" if v is None else str(v) for v in row) for row in rows) + "\n"
    path.write_bytes(text.encode(encoding))
    return path


def test_xlsx_with_title_row(tmp_path):
    path = write_xlsx(
        tmp_path / "returns.xlsx",
        [RETURN_HEADERS, [ID1, 2023, "住房和城乡建设部", 10000, 300, 500000, 6000]],
    )
    result = read_returns(path)
    row = result.data.row(0, named=True)
    assert row["institution_id"] == ID1
    assert row["year"] == 2023
    assert row["building_area_m2"] == 10000.0
    assert row["occupants"] == 300
    assert row["electricity_kwh"] == 500000.0
    assert row["water_m3"] == 6000.0
    # absent energy items count as 0 and the reader says so (data contract §2)
    assert row["natural_gas_m3"] == 0.0
    absent = result.notes.filter(pl.col("kind") == "absent_column")["column"].to_list()
    assert "natural_gas_m3" in absent
    # provenance: the Excel row a person sees (title row 1, blank row 2, header row 3)
    assert (row["source_file"], row["source_sheet"], row["source_row"]) == (
        "returns.xlsx",
        "表1",
        4,
    )
    assert result.quarantine.is_empty()
    assert result.rows_in == 1


def test_gb18030_csv_with_unit_in_header(tmp_path):
    path = write_csv(
        tmp_path / "returns.csv",
        [
            ["天津市2023年公共机构能源消费统计"],
            [
                "统一社会信用代码",
                "统计年度",
                "建筑面积（万平方米）",
                "用能人数",
                "电（万千瓦时）",
                "用水量",
            ],
            [ID1, 2023, 1.5, 300, 12.5, 6000],
        ],
        encoding="gb18030",
    )
    result = read_returns(path)
    row = result.data.row(0, named=True)
    assert row["electricity_kwh"] == pytest.approx(125000.0)
    assert row["building_area_m2"] == pytest.approx(15000.0)
    assert row["source_row"] == 3
    assert row["source_sheet"] is None
    conversions = result.notes.filter(pl.col("kind") == "unit_conversion")
    assert set(conversions["column"]) == {"electricity_kwh", "building_area_m2"}
    assert "10000" in conversions.filter(pl.col("column") == "electricity_kwh")["detail"][0]
    assert "gb18030" in result.notes.filter(pl.col("kind") == "encoding")["detail"][0]


def test_utf8_bom_csv(tmp_path):
    path = tmp_path / "returns.csv"
    rows = [RETURN_HEADERS, [ID1, 2023, "甲", 100, 3, 10, 1]]
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(",".join(map(str, r)) for r in rows).encode())
    result = read_returns(path)
    assert result.data["institution_id"].to_list() == [ID1]


def test_messy_cells(tmp_path):
    path = write_xlsx(
        tmp_path / "messy.xlsx",
        [
            RETURN_HEADERS,
            [ID1, 2023, "甲", "1,234", "１２３", "500 千瓦时", "—"],
            [ID2, 2023, "乙", "1，234", "约3000", "7,000", "/"],
        ],
    )
    result = read_returns(path)
    data = result.data.sort("source_row")
    assert data["building_area_m2"].to_list() == [1234.0, 1234.0]
    assert data["occupants"].to_list() == [123, None]
    assert data["electricity_kwh"].to_list() == [500.0, 7000.0]
    assert data["water_m3"].to_list() == [None, None]  # blank, not an error
    q = result.quarantine
    assert q.height == 1
    assert q.row(0, named=True) == {
        "source_file": "messy.xlsx",
        "source_sheet": "表1",
        "source_row": 5,
        "column": "occupants",
        "raw_value": "约3000",
        "reason": "不是数字（表头“用能人数”）",
        "reason_en": "not a number (header '用能人数')",
    }


def test_row_without_identity_goes_whole_to_quarantine(tmp_path):
    path = write_xlsx(
        tmp_path / "r.xlsx",
        [RETURN_HEADERS, [ID1, 2023, "甲", 100, 3, 10, 1], [None, None, "合计", 100, 3, 10, 1]],
    )
    result = read_returns(path)
    assert result.data.height == 1
    whole = result.quarantine.filter(pl.col("column").is_null())
    assert whole["source_row"].to_list() == [5]
    assert "合计" in whole["raw_value"][0]
    assert whole["reason"][0] == (
        "无法识别本行（统一社会信用代码、统计年度）：统一社会信用代码缺失或无法读取；"
        "统计年度缺失或无法读取"
    )
    assert whole["reason_en"][0] == (
        "identity cannot be read (统一社会信用代码 and 统计年度): institution_id missing or "
        "unreadable; year missing or unreadable"
    )
    assert result.rows_in == result.data.height + whole.height


def test_year_argument_fills_absent_or_blank_year(tmp_path):
    headers = [h for h in RETURN_HEADERS if h != "统计年度"]
    path = write_xlsx(tmp_path / "r.xlsx", [headers, [ID1, "甲", 100, 3, 10, 1]])
    with pytest.raises(UnusableInputError, match=r"r\.xlsx.*缺少必填列 统计年度"):
        read_returns(path)
    result = read_returns(path, year=2024)
    assert result.data["year"].to_list() == [2024]
    assert "default_year" not in result.notes["kind"].to_list()  # the column was absent
    assert result.notes.filter(pl.col("column") == "year")["kind"].to_list() == ["absent_column"]


def test_missing_required_column_is_a_clear_error(tmp_path):
    headers = [h for h in RETURN_HEADERS if not h.startswith("电")]
    path = write_xlsx(tmp_path / "no_power.xlsx", [headers, [ID1, 2023, "甲", 100, 3, 1]])
    with pytest.raises(
        UnusableInputError, match=r"no_power\.xlsx（工作表 表1）：缺少必填列 电"
    ) as err:
        read_returns(path)
    assert "electricity_kwh (电)" in err.value.message_en


def test_unknown_unit_is_a_clear_error(tmp_path):
    headers = [*RETURN_HEADERS[:5], "电(千卡)", "水(吨)"]
    path = write_xlsx(tmp_path / "bad_unit.xlsx", [headers, [ID1, 2023, "甲", 100, 3, 10, 1]])
    with pytest.raises(
        UnusableInputError, match=r"bad_unit\.xlsx.*“电\(千卡\)”.*不认识的单位“千卡”"
    ) as err:
        read_returns(path)
    assert "unknown unit '千卡'" in err.value.message_en


def test_unit_of_wrong_dimension_is_a_clear_error(tmp_path):
    headers = [*RETURN_HEADERS[:5], "电(立方米)", "水(吨)"]
    path = write_xlsx(tmp_path / "dim.xlsx", [headers, [ID1, 2023, "甲", 100, 3, 10, 1]])
    with pytest.raises(UnusableInputError, match=r"dim\.xlsx.*单位“立方米”是体积单位") as err:
        read_returns(path)
    assert "'立方米' is volume" in err.value.message_en


def test_no_header_row_is_a_clear_error(tmp_path):
    path = write_csv(tmp_path / "x.csv", [["a", "b"], [1, 2]])
    with pytest.raises(UnusableInputError, match=r"x\.csv：任何工作表的前 30 行中都没有找到表头行"):
        read_returns(path)


def test_unreadable_file_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"this is not a workbook")
    with pytest.raises(UnusableInputError, match=r"broken\.xlsx：无法作为 Excel 工作簿打开"):
        read_returns(path)
    with pytest.raises(UnusableInputError, match=r"absent\.csv"):
        read_returns(tmp_path / "absent.csv")


def test_fuel_by_mass_is_turned_into_litres(tmp_path):
    path = write_xlsx(
        tmp_path / "fuel.xlsx",
        [[*RETURN_HEADERS, "汽油(吨)", "柴油(千克)"], [ID1, 2023, "甲", 100, 3, 10, 1, 5.84, 850]],
    )
    row = read_returns(path).data.row(0, named=True)
    # domain.md §2: gasoline 0.73 kg/L, diesel 0.85 kg/L
    assert row["gasoline_l"] == pytest.approx(5840 / 0.73)
    assert row["diesel_l"] == pytest.approx(1000.0)


def test_parquet_with_canonical_columns(tmp_path):
    frame = pl.DataFrame(
        {
            "institution_id": [ID1, ID2],
            "year": [2023, 2023],
            "building_area_m2": [100.0, 200.0],
            "occupants": [3, 4],
            "electricity_kwh": [10.5, 20.0],
            "water_m3": [1.0, None],
        }
    )
    path = tmp_path / "r.parquet"
    frame.write_parquet(path)
    result = read_returns(path)
    assert result.data.select(frame.columns).equals(frame)
    assert result.data["source_row"].to_list() == [1, 2]


def test_every_sheet_with_a_header_is_read(tmp_path):
    path = tmp_path / "two.xlsx"
    wb = xlsxwriter.Workbook(path)
    wb.add_worksheet("填表说明").write(0, 0, "请按要求填写")
    for name, code in (("和平区", ID1), ("河东区", ID2)):
        ws = wb.add_worksheet(name)
        ws.write_row(0, 0, RETURN_HEADERS)
        ws.write_row(1, 0, [code, 2023, name, 100, 3, 10, 1])
    wb.close()
    result = read_returns(path)
    assert result.data["source_sheet"].to_list() == ["和平区", "河东区"]
    skipped = result.notes.filter(pl.col("kind") == "skipped_sheet")
    assert skipped["source_sheet"].to_list() == ["填表说明"]
    assert "1 个非空行未读取" in skipped["detail"][0]
    assert "1 non-empty row" in skipped["detail_en"][0]


def test_csv_row_numbers_follow_lines(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text(
        "标题\n\n" + ",".join(RETURN_HEADERS) + "\n"
        f'{ID1},2023,"甲\n乙",100,3,10,1\n\n{ID2},2023,丙,100,3,10,1\n',
        encoding="utf-8",
    )
    result = read_returns(path)
    assert result.data["source_row"].to_list() == [4, 7]
    assert result.data["name"].to_list() == ["甲\n乙", "丙"]


def test_directory_labels_map_to_codes(tmp_path):
    headers = [
        "统一社会信用代码",
        "单位名称",
        "所在区",
        "单位性质",
        "单位类别",
        "隶属关系",
        "是否重点用能单位",
        "供热计费方式",
        "状态",
    ]
    path = write_xlsx(
        tmp_path / "dir.xlsx",
        [
            headers,
            [ID1, "甲", "和平区", "机关", "党政机关", "市级", "是", "按热量计费", "正常"],
            [ID2, "乙", "120116", "事业单位", "商业企业", "40", "N", "无", "撤销"],
        ],
    )
    result = read_directory(path)
    data = result.data.sort("source_row")
    assert data["district_code"].to_list() == ["120101", "120116"]
    assert data["institution_type"].to_list() == ["agency", "public_service_unit"]
    assert data["sector"].to_list() == ["agency", "商业企业"]  # unknown label kept verbatim
    assert data["admin_level"].to_list() == ["municipal", "district"]
    assert data["key_energy_user"].to_list() == [True, False]
    assert data["heat_billing"].to_list() == ["metered", "none"]
    assert data["status"].to_list() == ["active", "dissolved"]
    assert result.quarantine.is_empty()


def test_input_is_read_not_judged(tmp_path):
    # a negative quantity and an invalid credit code go into the data as read
    path = write_xlsx(
        tmp_path / "r.xlsx", [RETURN_HEADERS, ["11100000000013338X", 2023, "甲", 100, 3, -10, 1]]
    )
    row = read_returns(path).data.row(0, named=True)
    assert row["institution_id"] == "11100000000013338X"
    assert row["electricity_kwh"] == -10.0


def test_a_wide_file_notes_twenty_ignored_columns_and_counts_the_rest(tmp_path):
    header = "统一社会信用代码,统计年度,建筑面积(平方米),用能人数,电(千瓦时),水(吨)"
    extra = ",".join(f"备注{i}" for i in range(30))
    row = "12120000MB1520001X,2024,100,3,10,1" + ",x" * 30 + ",y" * 25
    path = tmp_path / "wide.csv"
    path.write_text(f"{header},{extra}\n{row}\n", encoding="utf-8")
    notes = read_returns(path).notes.filter(pl.col("kind") == "ignored_column")
    assert notes.height == 20 + 1 + 20 + 1  # not in the contract; without a header but values
    assert notes["header"][:20].to_list() == [f"备注{i}" for i in range(20)]
    assert "另有 10 列不在数据规范中（第 27–36 列之间）" in notes["detail"][20]
    assert notes["detail_en"][-1].startswith("5 more columns without a header hold values")
