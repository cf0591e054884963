"""The CSV/text layer: quotes as Excel reads them, bounded memory, encodings, sniffing.

Each case of issue 9 that concerns text files ends in the data (as the value the file holds) or
in one UnusableInputError naming the file, the line and the column.
"""

import csv
import io
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import xlsxwriter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from energy_audit import read_returns
from energy_audit.errors import UnusableInputError
from energy_audit.io import delimited
from energy_audit.io.delimited import MAX_FIELDS, detect_delimiter, parse_records, read_delimited

ID1 = "11100000000013338W"
ID2 = "12100000000018032A"
ID3 = "11430000006122244L"
HEADER = "统一社会信用代码,统计年度,单位名称,建筑面积(平方米),用能人数,电(千瓦时),水(吨)"


def row(id_: str, name: str, area: str = "100") -> str:
    return f"{id_},2024,{name},{area},3,10,1"


def write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def encoding_note(result) -> str:
    kinds = pl.col("kind").is_in(["encoding", "delimiter"])
    return " ".join(result.notes.filter(kinds)["detail"].to_list())


# ------------------------------------------------------------------------------------ quotes


def test_stray_quote_is_refused_naming_its_line_and_column(tmp_path):
    # Issue 9, case 2: the quote swallowed the following lines into one name cell, exit 0.
    path = write(
        tmp_path / "stray.csv",
        f'{HEADER}\n{ID1},2024,"测试单位1,12000.5,3,10,1\n{row(ID2, "乙")}\n{row(ID3, "丙")}\n',
    )
    with pytest.raises(UnusableInputError, match=r"stray\.csv：第 2 行第 3 列的引号") as exc:
        read_returns(path)
    assert "line 2, column 3: unbalanced quote" in exc.value.message_en
    assert "swallows line 3" in exc.value.message_en


def test_stray_quote_on_the_last_line_runs_to_the_end_of_the_file(tmp_path):
    path = write(tmp_path / "eof.csv", f'{HEADER}\n{row(ID2, "乙")}\n{ID1},2024,"测试单位1,5,3\n')
    with pytest.raises(UnusableInputError, match="第 3 行第 3 列") as exc:
        read_returns(path)
    assert "runs to the end of the file" in exc.value.message_en


def test_text_after_a_closing_quote_is_refused(tmp_path):
    # "甲"乙 is no cell a spreadsheet writes; it is what a stray quote meeting another leaves.
    path = write(tmp_path / "t.csv", f'{HEADER}\n{ID1},2024,"甲"乙,100,3,10,1\n')
    with pytest.raises(UnusableInputError, match="第 2 行第 3 列") as exc:
        read_returns(path)
    assert "followed by '乙'" in exc.value.message_en


def test_a_stray_quote_closed_by_a_later_quote_is_refused(tmp_path):
    # The next quote in the file (a quoted "1,234" two lines down) closes the stray one.
    path = write(
        tmp_path / "s.csv",
        f'{HEADER}\n{ID1},2024,"甲,100,3,10,1\n{ID2},2024,乙,"1,234",3,10,1\n',
    )
    with pytest.raises(UnusableInputError, match="第 2 行第 3 列"):
        read_returns(path)


def test_quoted_multiline_cells_doubled_quotes_and_literal_quotes_are_read(tmp_path):
    path = write(
        tmp_path / "ok.csv",
        f"标题\n\n{HEADER}\n"
        f'{ID1},2024,"天津市和平区\n南京路1号",100,3,10,1\n\n'
        f'{ID2},2024,"他说""好""",100,3,10,1\n'
        f'{ID3},2024,甲"乙,"1,234",3,10,1\n',
    )
    result = read_returns(path)
    assert result.data["name"].to_list() == ["天津市和平区\n南京路1号", '他说"好"', '甲"乙']
    assert result.data["source_row"].to_list() == [4, 7, 8]  # the line where a record starts
    assert result.data["building_area_m2"].to_list() == [100.0, 100.0, 1234.0]
    assert result.quarantine.is_empty()


def test_spaces_after_a_closing_quote_stay_in_the_cell_as_excel_keeps_them():
    frame, rows = parse_records("x.csv", b'a,"b" ,c\n', ",", 3)
    assert frame.row(0) == ("a", "b ", "c")
    assert rows.tolist() == [1]


# ------------------------------------------------------------------------- size and memory


def test_cell_longer_than_the_csv_module_limit_is_read(tmp_path):
    # Issue 9, case 5: `_csv.Error: field larger than field limit (131072)`.
    long_name = "测" * 200_000
    path = write(tmp_path / "long.csv", f"{HEADER}\n{row(ID1, long_name)}\n")
    assert read_returns(path).data["name"].to_list() == [long_name]
    # the same cell quoted, next to a multi-line cell (the tokenizer, not polars, reads it)
    path = write(
        tmp_path / "longq.csv",
        f"{HEADER}\n{row(ID1, chr(34) + long_name + chr(34))}\n"
        f"{row(ID2, chr(34) + '甲' + chr(10) + '乙' + chr(34))}\n",
    )
    result = read_returns(path)
    assert result.data["name"].to_list() == [long_name, "甲\n乙"]
    assert result.data["source_row"].to_list() == [2, 3]


def test_line_of_ten_megabytes_is_read(tmp_path):
    path = write(tmp_path / "big.csv", f"{HEADER}\n{row(ID1, 'x' * 10_000_000)}\n")
    assert read_returns(path).data["name"].str.len_chars().to_list() == [10_000_000]


def test_record_wider_than_excel_is_refused_before_any_frame_is_built(tmp_path):
    # Issue 9, case 6: a one-line file of 2 million fields needed ≈ 58 GB.
    path = write(tmp_path / "wide.csv", f"{HEADER}\n" + ",".join(["1"] * 2_000_000) + "\n")
    with pytest.raises(UnusableInputError, match="第 2 行有 2,000,000 个字段") as exc:
        read_returns(path)
    assert "beyond Excel's limit of 16,384 columns" in exc.value.message_en


def test_wide_quoted_record_is_refused_while_being_split(tmp_path):
    wide = ",".join(['"1"'] * (MAX_FIELDS + 1))
    path = write(tmp_path / "wideq.csv", f"{HEADER}\n{wide}\n")
    with pytest.raises(UnusableInputError, match="第 2 行有超过 16,384 个字段"):
        read_returns(path)


def test_widest_excel_record_is_accepted():
    frame, _ = parse_records("x.csv", (",".join(["1"] * MAX_FIELDS) + "\n").encode(), ",", 0)
    assert frame.width == MAX_FIELDS


def test_empty_column_tail_is_dropped_and_nothing_else():
    data = ("a,b,,c" + "," * 5000 + "\n1,2,,3" + "," * 5000 + "\n").encode()
    frame, _ = parse_records("x.csv", data, ",", 0)
    assert frame.columns == ["c0", "c1", "c2", "c3"]  # the empty third column stays in place
    assert frame.row(1) == ("1", "2", None, "3")


# ---------------------------------------------------------------------------------- encodings


def test_gb18030_header_above_utf8_rows_is_read_line_by_line(tmp_path):
    # Issue 9, case 7: read as mojibake without a note.
    data = HEADER.encode("gb18030") + f"\n{row(ID1, '测试单位')}\n{row(ID2, '乙单位')}\n".encode()
    result = read_returns(write(tmp_path / "m.csv", data))
    assert result.data["name"].to_list() == ["测试单位", "乙单位"]
    assert result.data["electricity_kwh"].to_list() == [10.0, 10.0]
    assert "gb18030 1" in encoding_note(result)
    text = read_delimited(tmp_path / "m.csv")
    (note,) = text.notes
    assert note.detail_zh.startswith("编码混用：第 1 行（共 1 行）是 GB18030")


def test_one_gb18030_row_among_utf8_rows_is_named(tmp_path):
    data = (
        f"{HEADER}\n{row(ID1, '测试单位')}\n".encode()
        + f"{row(ID2, '乙单位')}\n".encode("gb18030")
        + f"{row(ID3, '丙单位')}\n".encode()
    )
    result = read_returns(write(tmp_path / "m.csv", data))
    assert result.data["name"].to_list() == ["测试单位", "乙单位", "丙单位"]
    assert "gb18030 3" in encoding_note(result)


def test_utf8_rows_in_a_gb18030_file_are_named(tmp_path):
    data = (
        f"{HEADER}\n{row(ID1, '测试单位')}\n{row(ID2, '乙单位')}\n".encode("gb18030")
        + f"{row(ID3, '丙单位')}\n".encode()
    )
    result = read_returns(write(tmp_path / "m.csv", data))
    assert result.data["name"].to_list() == ["测试单位", "乙单位", "丙单位"]
    assert "utf-8 4" in encoding_note(result)


def test_a_damaged_byte_in_utf8_is_refused_naming_the_line_and_column(tmp_path):
    data = bytearray(f"{HEADER}\n{row(ID1, '天津市测试单位')}\n{row(ID2, '乙')}\n".encode())
    at = data.index("测".encode())
    data[at + 1] ^= 0x40  # a byte flip: no longer UTF-8, but decodable as GB18030 (mojibake)
    with pytest.raises(UnusableInputError, match="第 2 行第 3 列") as exc:
        read_returns(write(tmp_path / "flip.csv", bytes(data)))
    assert "not valid UTF-8" in exc.value.message_en


def test_bytes_of_no_encoding_in_a_gb18030_file_are_refused(tmp_path):
    data = f"{HEADER}\n{row(ID1, '测试')}\n".encode("gb18030") + b"\xff\xff,2024\n"
    with pytest.raises(UnusableInputError, match="第 3 行第 1 列（该行第 1 个字节）"):
        read_returns(write(tmp_path / "bad.csv", data))


def test_nul_bytes_are_not_text(tmp_path):
    with pytest.raises(UnusableInputError, match="第 2 行含有 NUL 字节"):
        read_returns(write(tmp_path / "nul.csv", f"{HEADER}\n{ID1},\x00\n"))


@pytest.mark.parametrize(
    ("encoding", "label"),
    [
        ("utf-8-sig", "utf-8 with BOM"),
        ("utf-16", "utf-16"),
        ("utf-16-le", "utf-16"),
        ("gb18030", "gb18030"),
        ("utf-8", "utf-8"),
    ],
)
def test_encodings_are_detected(tmp_path, encoding, label):
    text = f"{HEADER}\r\n{row(ID1, '测试单位')}\r\n"
    read = read_delimited(write(tmp_path / "e.csv", text.encode(encoding)))
    assert read.encoding == label
    assert read.frame.row(1)[2] == "测试单位"
    assert read.frame.row(0)[0] == "统一社会信用代码"  # no BOM left in the first cell


# ----------------------------------------------------------------------- sniffing and separators


def test_workbook_named_csv_is_read_as_a_workbook(tmp_path):
    path = tmp_path / "returns.csv"
    wb = xlsxwriter.Workbook(path)
    ws = wb.add_worksheet()
    for i, values in enumerate([HEADER.split(","), [ID1, 2024, "甲", 100, 3, 10, 1]]):
        for j, value in enumerate(values):
            ws.write(i, j, value)
    wb.close()
    assert delimited.sniff_format(path) == "workbook"
    result = read_returns(path)
    assert result.data["institution_id"].to_list() == [ID1]
    (kind,) = result.notes.filter(pl.col("kind") == "file_type").rows(named=True)
    assert kind["detail"] == "文件名为 .csv，内容却是 Excel 工作簿：按 Excel 工作簿 读取"
    assert kind["detail_en"] == "named .csv, holds: Excel workbook; read as such"


def test_parquet_named_csv_is_read_as_parquet(tmp_path):
    path = tmp_path / "returns.csv"
    pl.DataFrame(
        {
            "institution_id": [ID1],
            "year": [2024],
            "building_area_m2": [100.0],
            "occupants": [3],
            "electricity_kwh": [10.0],
            "water_m3": [1.0],
        }
    ).write_parquet(path)
    assert delimited.sniff_format(path) == "parquet"
    result = read_returns(path)
    assert result.data["institution_id"].to_list() == [ID1]


def test_csv_named_xlsx_is_read_as_csv_and_garbage_is_left_to_the_workbook_reader(tmp_path):
    path = write(tmp_path / "returns.xlsx", f"{HEADER}\n{row(ID1, '甲')}\n")
    assert delimited.looks_like_text(path)
    assert read_returns(path).data["name"].to_list() == ["甲"]
    garbage = write(tmp_path / "broken.xlsx", b"this is not a workbook")
    assert not delimited.looks_like_text(garbage)


def test_opendocument_named_csv_gets_the_opendocument_bounds(tmp_path):
    # A 1.5 KB OpenDocument file of 10¹⁰ repeated values, named .csv: bounded as an .ods is.
    import zipfile

    content = (
        '<?xml version="1.0" encoding="UTF-8"?><office:document-content '
        'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body>'
        '<office:spreadsheet><table:table table:name="S">'
        '<table:table-row table:number-rows-repeated="100000">'
        '<table:table-cell table:number-columns-repeated="100000" office:value-type="float" '
        'office:value="1"/></table:table-row></table:table></office:spreadsheet></office:body>'
        "</office:document-content>"
    )
    path = tmp_path / "bomb.csv"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr("content.xml", content)
    assert delimited.sniff_format(path) == "ods"
    with pytest.raises(UnusableInputError, match=r"bomb\.csv：重复单元格"):
        read_returns(path)


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "workbook"),
        (b"PAR1\x00\x00", "parquet"),
        (b"plain,text\n", "text"),
    ],
)
def test_sniff_format_by_magic_bytes(tmp_path, head, kind):
    assert delimited.sniff_format(write(tmp_path / "f.csv", head)) == kind


def test_archives_and_pdf_are_refused_by_name(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "a.csv", "w") as archive:
        archive.writestr("returns.csv", "x")
    with pytest.raises(UnusableInputError, match="ZIP 压缩包"):
        read_returns(tmp_path / "a.csv")
    with pytest.raises(UnusableInputError, match="PDF"):
        read_returns(write(tmp_path / "b.csv", b"%PDF-1.7\n"))


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_separator_is_detected_and_noted(tmp_path, sep):
    # Issue 9, point 10: a semicolon-separated file got "no header row". The name holds commas.
    text = f"{HEADER}\n{row(ID1, '甲,乙,丙')}\n{row(ID2, '丁')}\n".replace(",", sep)
    text = text.replace(f"甲{sep}乙{sep}丙", "甲,乙,丙")
    result = read_returns(write(tmp_path / "s.csv", text))
    assert result.data["name"].to_list() == ["甲,乙,丙", "丁"]
    assert repr(sep) in encoding_note(result)
    assert read_delimited(tmp_path / "s.csv").notes[0].kind == "delimiter"


def test_detect_delimiter_prefers_the_consistent_field_count():
    head = [b"title", b"a;b;c", b"1,5;2;3", b"4;5,5;6"]
    assert detect_delimiter(head) == (";", 3)
    assert detect_delimiter([b"single"]) == (",", 0)


# ---------------------------------------------------------------------------- line numbers


def test_line_numbers_with_cr_line_endings_and_blank_lines(tmp_path):
    text = f"{HEADER}\r{row(ID1, '甲')}\r\r{row(ID2, chr(34) + '乙' + chr(13) + '丙' + chr(34))}\r"
    result = read_returns(write(tmp_path / "cr.csv", text))
    assert result.data["source_row"].to_list() == [2, 4]
    assert result.data["name"].to_list() == ["甲", "乙\r丙"]


grid_cell = st.lists(st.sampled_from([*'ab,"\n\r ;甲', "\r\n"]), max_size=5).map("".join)
grids = st.lists(st.lists(grid_cell, min_size=3, max_size=3), min_size=1, max_size=8)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grids)
def test_what_a_csv_writer_writes_is_read_back_cell_for_cell(grid):
    """Property: RFC 4180 text (Python's csv writer, as Excel quotes) parses into its grid."""
    buffer = io.StringIO()
    csv.writer(buffer).writerows(grid)  # Excel line ends (CRLF)
    text = buffer.getvalue()
    frame, rows = parse_records("g.csv", text.encode(), ",", 0)
    got = [[c or "" for c in (*r, None, None, None)[:3]] for r in frame.rows()]
    assert got == grid
    # each record starts after the line breaks of the records before it
    lines = [1]
    for r in grid[:-1]:
        cells_text = io.StringIO()
        csv.writer(cells_text).writerow(r)
        written = cells_text.getvalue()
        lines.append(lines[-1] + len(written.encode().splitlines()))
    assert rows.tolist() == lines
    assert rows.dtype == np.int64


# ------------------------------------------------------------------ mutations of a real file

_SYNTHETIC: dict[str, bytes] = {}


def synthetic_csv(encoding: str) -> bytes:
    """A small synthetic returns CSV as the office receives it (messy cells, quoted numbers)."""
    if encoding not in _SYNTHETIC:
        import tempfile

        from energy_audit.synthetic import make_directory, make_returns, write_returns_file

        directory = make_directory(200, 3)
        returns, truth = make_returns(directory, years=[2024], seed=3, defects=True)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "r.csv"
            write_returns_file(
                returns.head(25), path, seed=3, year=2024, truth=truth, encoding=encoding
            )
            _SYNTHETIC[encoding] = path.read_bytes()
    return _SYNTHETIC[encoding]


mutation = st.tuples(
    st.sampled_from(["flip", "quote", "truncate", "newline"]), st.floats(0, 1), st.integers(1, 255)
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["utf-8-sig", "gb18030"]), st.lists(mutation, min_size=1, max_size=3))
def test_mutated_synthetic_files_lose_nothing_or_are_refused_by_name(tmp_path_factory, enc, ops):
    """Property: a damaged file is read without loss, or refused with one message naming it.

    Byte flips, stray quotes, truncation and line breaks at random places of a real synthetic
    file: either rows in = rows in data + whole rows in quarantine, or UnusableInputError naming
    the file. A stray quote never lowers the number of rows read (no line is swallowed).
    """
    original = synthetic_csv(enc)
    data = bytearray(original)
    for op, where, value in ops:
        at = min(int(where * len(data)), len(data) - 1)
        if op == "flip":
            data[at] ^= value
        elif op == "quote":
            data[at:at] = b'"'
        elif op == "truncate":
            data = data[: max(at, 1)]
        else:
            data[at:at] = b"\n"
    path = tmp_path_factory.mktemp("m") / "mutated.csv"
    path.write_bytes(bytes(data))
    try:
        result = read_returns(path)
    except UnusableInputError as exc:
        assert str(exc).startswith("mutated.csv") and exc.message_en.startswith("mutated.csv")
        return
    whole = int(result.quarantine["column"].is_null().sum())
    assert result.rows_in == result.data.height + whole
    if all(op == "quote" for op, _, _ in ops):
        base = tmp_path_factory.mktemp("o") / "original.csv"
        base.write_bytes(original)
        assert result.rows_in == read_returns(base).rows_in
