"""Writers: text is never a formula (OWASP), numbers stay numbers, headers and terms by language."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import openpyxl
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from energy_audit.io.writers import (
    FORMULA_TRIGGERS,
    neutralize_text,
    neutralized,
    present,
    safe_text,
    write_csv,
    write_excel,
)

FORMULA_LIKE = [
    '=HYPERLINK("http://x","click")',
    "=cmd|' /C notepad'!'A1'",
    "+1",
    "-1+2",
    "@SUM(A1)",
    "\t=1",
    "\r=1",
]
ORDINARY = ["天津市第一中学", "http://x.example/a", "0012", "1+1", "a=b", "'already quoted"]


@pytest.fixture
def frame() -> pl.DataFrame:
    n = len(FORMULA_LIKE) + len(ORDINARY)
    return pl.DataFrame(
        {
            "name": FORMULA_LIKE + ORDINARY,
            "value": [float(i) - 2.5 for i in range(n)],
            "source_row": list(range(-3, n - 3)),
            "category": ["coverage", "validity"] * (n // 2) + ["coverage"] * (n % 2),
            "severity": ["error"] * n,
            "sector": ["hospital"] * (n - 1) + ["not a code"],
        }
    )


def cells(path: Path) -> list[openpyxl.cell.Cell]:
    book = openpyxl.load_workbook(path)
    return [cell for ws in book.worksheets for row in ws.iter_rows() for cell in row]


def text_of(cell: openpyxl.cell.Cell) -> str:
    # xlsxwriter stores a carriage return as the OOXML escape _x000D_ (Excel reads it back as
    # CR); openpyxl does not unescape it.
    return str(cell.value).replace("_x000D_", "\r")


def test_workbook_has_no_formula_and_escapes_formula_like_text(tmp_path, frame):
    path = write_excel({"核查发现": frame}, tmp_path / "f.xlsx", title="=1+1 标题")
    written = cells(path)
    assert written and not [c.coordinate for c in written if c.data_type == "f"]
    texts = [text_of(c) for c in written if c.data_type == "s"]
    for text in texts:
        assert not text.startswith(tuple(FORMULA_TRIGGERS)), text
    for text in FORMULA_LIKE:
        assert "'" + text in texts
    for text in ORDINARY:
        assert text in texts  # ordinary text is written as it is
    assert "'=1+1 标题" in texts  # the title too
    assert not [c for c in written if c.hyperlink is not None]  # no URL turned into a link


def test_workbook_numbers_stay_numbers_and_headers_are_chinese(tmp_path, frame):
    path = write_excel({"核查发现": frame}, tmp_path / "f.xlsx")
    ws = openpyxl.load_workbook(path)["核查发现"]
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0] == ("单位名称", "填报值", "行号", "类别", "严重程度", "单位类别")
    body = list(ws.iter_rows(min_row=2))
    assert all(r[1].data_type == "n" and isinstance(r[1].value, float) for r in body)
    assert all(r[2].data_type == "n" and isinstance(r[2].value, int) for r in body)
    assert [r[2].value for r in body][:4] == [-3, -2, -1, 0]  # negative numbers are numbers
    assert {r[3].value for r in body} == {"完整性", "有效性"}
    assert {r[4].value for r in body} == {"错误"}
    assert [r[5].value for r in body][-2:] == ["医疗卫生机构", "not a code"]  # unknown code kept
    assert body[len(FORMULA_LIKE) + 2][0].value == "0012"  # not turned into the number 12


def test_workbook_in_english(tmp_path, frame):
    path = write_excel({"findings": frame}, tmp_path / "en.xlsx", lang="en")
    rows = list(openpyxl.load_workbook(path)["findings"].iter_rows(values_only=True))
    assert rows[0] == ("name", "value", "row", "category", "severity", "sector")
    assert {r[3] for r in rows[1:]} == {"coverage", "validity"}
    assert rows[1][4] == "error" and rows[1][5] == "hospital"
    assert rows[1][0] == "'" + FORMULA_LIKE[0]


def test_formula_like_header_is_escaped(tmp_path):
    path = write_excel({"s": pl.DataFrame({"=A1": ["x"], "-b": [1]})}, tmp_path / "h.xlsx")
    rows = list(openpyxl.load_workbook(path)["s"].iter_rows(values_only=True))
    assert rows == [("'=A1", "'-b"), ("x", 1)]


def test_workbook_bytes_are_reproducible(tmp_path, frame):
    a = write_excel({"s": frame}, tmp_path / "a.xlsx", title="t").read_bytes()
    b = write_excel({"s": frame}, tmp_path / "b.xlsx", title="t").read_bytes()
    assert a == b


def test_csv_is_utf8_with_bom_and_escapes_formula_like_text(tmp_path, frame):
    path = write_csv(frame, tmp_path / "out" / "f.csv")
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert rows[0] == ["单位名称", "填报值", "行号", "类别", "严重程度", "单位类别"]
    names = [r[0] for r in rows[1:]]
    assert names == ["'" + t for t in FORMULA_LIKE] + ORDINARY
    for row in rows[1:]:
        for field in row:
            assert not field.startswith(tuple(FORMULA_TRIGGERS)) or _is_number(field), field
    back = pl.read_csv(path)
    assert back.schema["填报值"] == pl.Float64 and back.schema["行号"] == pl.Int64
    assert back["填报值"].to_list() == frame["value"].to_list()
    assert set(back["类别"]) == {"完整性", "有效性"} and set(back["严重程度"]) == {"错误"}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_csv_in_english_and_with_canonical_headers(tmp_path, frame):
    en = pl.read_csv(write_csv(frame, tmp_path / "en.csv", lang="en"))
    assert en.columns == ["name", "value", "row", "category", "severity", "sector"]
    assert en["severity"].unique().to_list() == ["error"]
    canonical = pl.read_csv(write_csv(frame, tmp_path / "c.csv", translate_headers=False))
    assert canonical.columns == frame.columns
    assert canonical["severity"].unique().to_list() == ["错误"]
    codes = pl.read_csv(
        write_csv(frame, tmp_path / "k.csv", translate_headers=False, translate_values=False)
    )
    assert codes["category"].to_list() == frame["category"].to_list()


def test_present_keeps_the_input_and_neutralize_text_keeps_the_frame_kind(frame):
    before = frame.clone()
    shown = present(frame)
    assert frame.equals(before)
    assert shown.height == frame.height
    lazy = neutralize_text(frame.lazy())
    assert isinstance(lazy, pl.LazyFrame)
    collected = lazy.collect()
    assert collected["value"].equals(frame["value"])
    assert collected["name"].to_list()[: len(FORMULA_LIKE)] == ["'" + t for t in FORMULA_LIKE]
    cat = pl.DataFrame({"c": pl.Series(["=1", "a"], dtype=pl.Categorical)})
    assert neutralize_text(cat)["c"].to_list() == ["'=1", "a"]


@given(st.text(max_size=30))
def test_neutralized_prefixes_exactly_the_formula_like_texts(text):
    out = pl.select(neutralized(pl.lit(text, pl.String))).item()
    if text[:1] and text[0] in FORMULA_TRIGGERS:
        assert out == "'" + text
    else:
        assert out == text
    assert safe_text(text) == out


def test_value_domains_translate_columns_not_named_after_their_domain(tmp_path):
    notes = pl.DataFrame({"kind": ["header_row", "encoding", "other"], "detail": ["-x", "y", "z"]})
    path = write_csv(notes, tmp_path / "n.csv", value_domains={"kind": "note_kind"})
    back = pl.read_csv(path)
    assert back.columns == ["类型", "说明"]
    assert back["类型"].to_list() == ["表头行", "文本编码", "other"]
    assert back["说明"].to_list() == ["'-x", "y", "z"]
    plain = pl.read_csv(write_csv(notes, tmp_path / "p.csv"))
    assert plain["类型"].to_list() == notes["kind"].to_list()
