import zipfile

import pytest
import xlsxwriter

from energy_audit.errors import UnusableInputError
from energy_audit.io import limits
from energy_audit.io.limits import check_workbook, column_letters
from energy_audit.io.readers import read_returns


def _book(path, cells, sheet="填报"):
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet(sheet)
    for (row, col), value in cells.items():
        ws.write(row, col, value)
    wb.close()
    return path


@pytest.mark.parametrize(
    ("col", "letters"), [(1, "A"), (26, "Z"), (27, "AA"), (702, "ZZ"), (703, "AAA"), (16384, "XFD")]
)
def test_column_letters(col, letters):
    assert column_letters(col) == letters


def test_a_far_cell_in_a_tiny_workbook_is_refused_before_calamine_sees_it(tmp_path):
    # calamine would allocate 200,001 × 5,001 cells (32 GB) and abort the process.
    cells = {(0, 0): "统一社会信用代码", (0, 1): "统计年度", (200000, 5000): 1}
    path = _book(tmp_path / "远.xlsx", cells)
    assert path.stat().st_size < 10_000
    with pytest.raises(UnusableInputError, match=r"远\.xlsx（工作表 填报）.*GJI200001") as info:
        read_returns(path)
    assert "200,001 rows × 5,001 columns" in info.value.message_en
    assert "only 3 are written" in info.value.message_en


def test_extents_count_every_cell_and_the_farthest_row_and_column(tmp_path, monkeypatch):
    cells = {(r, c): r * 10 + c for r in range(300) for c in range(4)}
    cells[(120, 30)] = "注"  # AE121
    monkeypatch.setattr(limits, "_BLOCK", 97)  # references cut by block ends are still read
    (sheet,) = check_workbook(_book(tmp_path / "b.xlsx", cells))
    assert (sheet.name, sheet.max_row, sheet.max_col, sheet.cells) == ("填报", 300, 31, 1201)
    assert sheet.farthest == "AE300"


def test_a_large_grid_that_is_mostly_used_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_SPARSE_CELLS", 100)
    dense = {(r, c): 1 for r in range(40) for c in range(5)}  # 200 cells, all used
    assert check_workbook(_book(tmp_path / "dense.xlsx", dense))[0].cells == 200
    sparse = {(0, 0): 1, (39, 4): 1, **{(r, 0): 1 for r in range(20)}}  # 21 of 200 < 1/8
    with pytest.raises(UnusableInputError, match="E40"):
        check_workbook(_book(tmp_path / "sparse.xlsx", sparse))


def test_a_part_that_inflates_a_thousandfold_is_refused(tmp_path):
    path = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("xl/worksheets/sheet1.xml", b"\0" * (80 << 20))
    assert path.stat().st_size < 1 << 20
    with pytest.raises(UnusableInputError, match="压缩比") as info:
        check_workbook(path)
    assert "xl/worksheets/sheet1.xml" in info.value.message_en


def test_a_file_that_is_not_a_zip_is_left_to_the_reader(tmp_path):
    path = tmp_path / "x.xlsx"
    path.write_bytes(b"not a zip")
    assert check_workbook(path) == []


def _ods(path, repeat, value_type=' office:value-type="float" office:value="1"'):
    content = (
        '<?xml version="1.0" encoding="UTF-8"?><office:document-content '
        'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body>'
        '<office:spreadsheet><table:table table:name="S"><table:table-row>'
        '<table:table-cell office:value-type="string"><text:p>统计年度</text:p>'
        "</table:table-cell></table:table-row>"
        f'<table:table-row table:number-rows-repeated="{repeat}">'
        f'<table:table-cell table:number-columns-repeated="{repeat}"{value_type}/>'
        "</table:table-row></table:table></office:spreadsheet></office:body>"
        "</office:document-content>"
    )
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        z.writestr("content.xml", content)
    return path


def test_repeated_ods_cells_are_counted_each_time_and_bounded(tmp_path):
    from energy_audit.io.limits import check_ods

    assert check_ods(_ods(tmp_path / "small.ods", 3)) == 1 + 9
    # 1.5 KB holding 10¹⁰ values: refused before calamine builds them.
    path = _ods(tmp_path / "many.ods", 100_000)
    with pytest.raises(UnusableInputError, match=r"many\.ods：重复单元格") as info:
        read_returns(path)
    assert "repeated cells expand" in info.value.message_en
    # Empty repeated cells (LibreOffice's unused rest of a sheet) cost nothing.
    assert check_ods(_ods(tmp_path / "empty.ods", 100_000, value_type="")) == 1


def test_a_parquet_file_of_runs_claiming_far_more_cells_than_bytes_is_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from energy_audit.io.limits import check_parquet

    path = tmp_path / "runs.parquet"
    n = 60_000_000  # 120 M cells in well under 1 MB
    pq.write_table(
        pa.table({"统一社会信用代码": pa.nulls(n, pa.string()), "电": pa.nulls(n)}), path
    )
    assert path.stat().st_size < 1 << 20
    with pytest.raises(UnusableInputError, match=r"runs\.parquet：.*60,000,000 行 × 2 列") as info:
        read_returns(path)
    assert "claims 60,000,000 rows × 2 columns" in info.value.message_en
    ordinary = tmp_path / "ordinary.parquet"
    pq.write_table(pa.table({"a": list(range(1000)), "b": [str(i) for i in range(1000)]}), ordinary)
    assert check_parquet(ordinary) == (1000, 2)


def test_a_damaged_sheet_part_is_one_message_not_a_zip_error(tmp_path):
    # Found by the damage property test: a flipped byte inside the compressed sheet XML made
    # zipfile raise zlib.error / BadZipFile (bad CRC) out of the reader.
    cells = {(r, c): r * c for r in range(50) for c in range(6)}
    path = _book(tmp_path / "ok.xlsx", cells)
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("xl/worksheets/sheet1.xml")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for at in range(start + 10, start + info.compress_size - 10, 37):
        raw[at] ^= 0x5A
    damaged = tmp_path / "坏.xlsx"
    damaged.write_bytes(bytes(raw))
    with pytest.raises(UnusableInputError, match=r"坏\.xlsx：无法作为 Excel 工作簿打开") as info:
        read_returns(damaged)
    assert "cannot be opened as an Excel workbook" in info.value.message_en
