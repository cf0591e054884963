"""Property: a real file with hostile cells loses nothing, or is refused naming the file (issue 9).

The synthetic city's returns (messy cells included) are written as CSV, xlsx and Parquet, once
as they are and once with cells replaced by what hostile or careless senders put there: whole
numbers beyond Int64, non-finite numbers, Excel error values and error cells, formulas without
a result, formula-like text, very long text, unit-less garbage. Then, cell by cell:

- rows in = rows in the data + whole rows in quarantine;
- every non-blank cell of a contract column is in the data or in quarantine (or its row is);
- an untouched cell reads exactly as it does in the untouched file; a touched text cell reads
  as written; a touched number is in quarantine with the text written, or a finite value;
- no value in the data is infinite or NaN;
- ``energy-audit read`` ends with exit 0 or 1 and no traceback.

Byte-level damage to CSV (flips, stray quotes, truncation) is the property test of
``tests/io/test_delimited.py``; damage to workbooks and Parquet files is at the end here.
"""

from __future__ import annotations

import csv
import io
import re

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xlsxwriter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from energy_audit import contract
from energy_audit.cli import app
from energy_audit.errors import UnusableInputError
from energy_audit.io import cells
from energy_audit.io.headers import match_header
from energy_audit.io.readers import read_returns
from energy_audit.synthetic import write_city

SPEC = contract.table("returns")
NUMBER_LIKE = [
    "99999999999999999999",  # beyond Int64
    "1e20",
    "1e400",  # overflows to inf
    "inf",
    "-inf",
    "NaN",
    "#DIV/0!",
    "#REF!",
    "#VALUE!",
    "#NUM!",
    "#N/A",
    "约3000",
    "1,2345",
    "1e300",  # finite: read
    "-0",
]
TEXT_LIKE = [
    '=HYPERLINK("http://x","点我")',
    "=cmd|' /C notepad'!'A1'",
    "+1",
    "-1+2",
    "@SUM(A1)",
    "单位" * 5000,  # 10,000 characters
    "  前后空格  ",
]
XLSX_ONLY = ["<error cell>", "<formula without result>"]
FORMATS = ("csv", "xlsx", "parquet")
PLAIN_NUMBER = re.compile(r"-?(?:0|[1-9]\d{0,14})(?:\.\d+)?")
HYPOTHESIS = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
runner = CliRunner()


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """Header and rows of text of a real synthetic returns CSV (GB18030, messy cells)."""
    paths = write_city(tmp_path_factory.mktemp("city"), 160, [2024], seed=11, formats=["csv"])
    raw = paths["returns_csv"][2024].read_bytes()
    text = raw.decode("utf-8-sig") if raw.startswith(b"\xef\xbb\xbf") else raw.decode("gb18030")
    header, *rows = list(csv.reader(io.StringIO(text)))
    return header, rows


def _columns(header):
    """Position → contract column of each header naming one."""
    out = {}
    for i, h in enumerate(header):
        hit = match_header(h, SPEC)
        if hit is not None:
            out[i] = hit[0]
    return out


def _write(fmt, path, header, rows, special):
    """Write header and rows; ``special`` (row, col) → kind for xlsx-only cells.

    In a workbook, a plain number of a number column is a number cell; all else is text.
    """
    numeric_at = {i for i, c in _columns(header).items() if c.dtype in ("float", "int")}
    if fmt == "csv":
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows([header, *rows])
        path.write_text(buffer.getvalue(), encoding="utf-8")
    elif fmt == "parquet":
        table = {h: [r[i] if r[i] != "" else None for r in rows] for i, h in enumerate(header)}
        pq.write_table(pa.table({h: pa.array(v, pa.string()) for h, v in table.items()}), path)
    else:
        book = xlsxwriter.Workbook(str(path), {"strings_to_formulas": False})
        sheet = book.add_worksheet("填报")
        for j, h in enumerate(header):
            sheet.write_string(0, j, h)
        for i, row in enumerate(rows, start=1):
            for j, value in enumerate(row):
                kind = special.get((i - 1, j))
                if kind == "<error cell>":
                    sheet.write_formula(i, j, "=1/0", None, "#DIV/0!")
                elif kind == "<formula without result>":
                    sheet.write_formula(i, j, f"=D{i + 1}*2")
                elif value == "":
                    continue
                elif j in numeric_at and PLAIN_NUMBER.fullmatch(value):
                    sheet.write_number(i, j, float(value))  # as a person types a number
                else:
                    sheet.write_string(i, j, value)
        book.close()
    return path


def _source_row(fmt, index):
    """The row number a person sees for data row ``index`` (0-based)."""
    if fmt == "parquet":
        return index + 1  # records count from 1, the header is the column names
    return index + 2  # the header on line / row 1, every record on one line


def _read(path):
    try:
        return read_returns(path)
    except UnusableInputError as exc:
        assert path.name in exc.message_zh and path.name in exc.message_en, exc.message_zh
        return None


@st.composite
def mutations(draw, n_rows, columns, fmt):
    positions = sorted(columns)
    kinds = NUMBER_LIKE + TEXT_LIKE + (XLSX_ONLY if fmt == "xlsx" else [])
    picked = draw(
        st.lists(
            st.tuples(
                st.integers(0, n_rows - 1), st.sampled_from(positions), st.sampled_from(kinds)
            ),
            min_size=1,
            max_size=12,
            unique_by=lambda m: (m[0], m[1]),
        )
    )
    return picked


def _is_blank(text):
    return pl.select(cells.is_blank(pl.lit(text, pl.String))).item()


@pytest.mark.parametrize("fmt", FORMATS)
def test_hostile_cells_lose_nothing(grid, tmp_path, fmt):
    header, rows = grid
    columns = _columns(header)
    identity = {i for i, c in columns.items() if c.name in ("institution_id", "year")}
    columns_no_id = {i: c for i, c in columns.items() if i not in identity}
    baseline = read_returns(_write(fmt, tmp_path / f"base.{fmt}", header, rows, {}))
    base = {r["source_row"]: r for r in baseline.data.iter_rows(named=True)}

    @HYPOTHESIS
    @given(mutations(len(rows), columns_no_id, fmt))
    def check(changes):
        mutated = [list(r) for r in rows]
        special = {}
        for i, j, kind in changes:
            if kind in XLSX_ONLY:
                special[(i, j)] = kind
                mutated[i][j] = "0"  # what the file stores beside the formula, if anything
            else:
                mutated[i][j] = kind
        path = _write(fmt, tmp_path / f"mutated.{fmt}", header, mutated, special)
        result = _read(path)
        assert result is not None, "a cell-level change never makes a file unusable"
        whole = result.quarantine.filter(pl.col("column").is_null())
        assert result.rows_in == result.data.height + whole.height
        whole_rows = set(whole["source_row"].to_list())
        q = {
            (r["source_row"], r["column"]): r
            for r in result.quarantine.filter(pl.col("column").is_not_null()).iter_rows(named=True)
        }
        data = {r["source_row"]: r for r in result.data.iter_rows(named=True)}
        touched = {(i, j): kind for i, j, kind in changes}
        for i in range(len(mutated)):
            source_row = _source_row(fmt, i)
            if source_row in whole_rows:
                continue
            assert source_row in data, f"row {source_row} is neither in data nor in quarantine"
            for j, col in columns_no_id.items():
                value = data[source_row][col.name]
                kind = touched.get((i, j))
                if kind is None:
                    before = base.get(source_row, {}).get(col.name)
                    if (source_row, col.name) not in q:
                        assert value == before, (source_row, col.name, value, before)
                    continue
                if kind in XLSX_ONLY:
                    assert (source_row, col.name) in q, (kind, source_row, col.name)
                    continue
                if col.dtype in ("float", "int"):
                    entry = q.get((source_row, col.name))
                    if entry is not None:
                        assert entry["raw_value"] == kind and entry["reason"] and entry["reason_en"]
                    elif _is_blank(kind):
                        assert value is None
                    else:
                        assert value is not None, (kind, col.name)
                elif col.dtype == "str":
                    assert value == kind.strip(), (col.name, kind)
                else:
                    assert value is not None or (source_row, col.name) in q or _is_blank(kind)
        floats = [c for c, t in result.data.schema.items() if t == pl.Float64]
        not_finite = pl.any_horizontal(~pl.col(floats).is_finite()).any()
        assert not result.data.select(not_finite).item(), "a value that is not finite"
        cli = runner.invoke(app, ["read", str(path)])
        assert cli.exit_code == 0, cli.output
        assert cli.exception is None or isinstance(cli.exception, SystemExit)

    check()


@pytest.mark.parametrize("fmt", ["xlsx", "parquet"])
@HYPOTHESIS
@given(data=st.data())
def test_damaged_workbooks_and_parquet_files_are_read_or_refused(grid, tmp_path, fmt, data):
    header, rows = grid
    path = _write(fmt, tmp_path / f"whole.{fmt}", header, rows, {})
    raw = bytearray(path.read_bytes())
    # Positions as shares of the length: a workbook's size may differ by a byte between runs.
    share = st.floats(0, 1, exclude_max=True)
    how = data.draw(st.sampled_from(["truncate", "flip"]))
    if how == "truncate":
        raw = raw[: int(data.draw(share) * len(raw))]
    else:
        for at in data.draw(st.lists(share, min_size=1, max_size=8)):
            raw[int(at * len(raw))] ^= data.draw(st.integers(1, 255))
    damaged = tmp_path / f"damaged.{fmt}"
    damaged.write_bytes(bytes(raw))
    result = _read(damaged)
    if result is not None:
        whole = result.quarantine.filter(pl.col("column").is_null()).height
        assert result.rows_in == result.data.height + whole
    cli = runner.invoke(app, ["read", str(damaged)])
    assert cli.exit_code in (0, 1), cli.output
    assert cli.exception is None or isinstance(cli.exception, SystemExit), cli.exception
    assert "Traceback" not in cli.output
