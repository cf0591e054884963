"""Property: whatever people type, nothing read is lost (data contract, "Cell values").

For arbitrary cell contents: non-blank rows in = rows in the data + whole rows in quarantine,
and every non-blank cell that is null in the data is in quarantine (and only those).
"""

import csv
import re
import unicodedata

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from energy_audit import read_returns
from energy_audit.io.cells import NULL_TOKENS

HEADERS = {
    "统一社会信用代码": "institution_id",
    "统计年度": "year",
    "建筑面积": "building_area_m2",
    "用能人数": "occupants",
    "电(万千瓦时)": "electricity_kwh",
    "水": "water_m3",
    "单位名称": "name",
}
NUMERIC = ["year", "building_area_m2", "occupants", "electricity_kwh", "water_m3"]

typical = st.sampled_from(
    [
        "1,234",
        "１２３",
        "500 千瓦时",
        "—",
        "约3000",
        "-",
        "无",
        "12.5",
        "2023",
        "2023年",
        "",
        " ",
        "11100000000013338W",
        "N/A",
        "1,2345",
        "3e2",
        "-7",
        "合计",
    ]
)
# No NUL (not text) and no bare carriage return: unquoted, a CR is a line break to every reader,
# so the file would really hold more rows than the grid.
cell = st.one_of(
    st.none(), typical, st.text(max_size=6).filter(lambda s: not {"\x00", "\r"} & set(s))
)
rows = st.lists(st.lists(cell, min_size=len(HEADERS), max_size=len(HEADERS)), max_size=12)


# Unicode White_Space, as the reader's regex \s sees it (Python's str.split also splits on the
# control characters \x1c-\x1f, which are not white space: a cell holding one is not blank).
WHITE_SPACE = re.compile(
    "[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
)


def _blank(value):
    if value is None:
        return True
    key = WHITE_SPACE.sub("", unicodedata.normalize("NFKC", value)).lower()
    return key in NULL_TOKENS


def _check(result, grid, source_rows):
    non_blank = [r for r in grid if not all(_blank(v) for v in r)]
    q = result.quarantine
    whole = q.filter(pl.col("column").is_null())
    assert result.rows_in == len(non_blank)
    assert result.rows_in == result.data.height + whole.height
    # rows kept have an identity
    assert result.data["institution_id"].null_count() == 0
    assert result.data["year"].null_count() == 0
    cell_q = {
        (r, c)
        for r, c in q.filter(pl.col("column").is_not_null())
        .select("source_row", "column")
        .iter_rows()
    }
    assert not {r for r, _ in cell_q} & set(whole["source_row"].to_list())
    by_row = {r: i for i, r in enumerate(result.data["source_row"].to_list())}
    headers = list(HEADERS)
    for raw_row, source_row in zip(grid, source_rows, strict=True):
        if source_row not in by_row:
            continue
        data_row = result.data.row(by_row[source_row], named=True)
        for header, value in zip(headers, raw_row, strict=True):
            column = HEADERS[header]
            in_q = (source_row, column) in cell_q
            if column in NUMERIC:
                lost = data_row[column] is None and not _blank(value)
                assert lost == in_q, (header, value, data_row[column])
            else:
                assert not in_q


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(grid=rows)
def test_nothing_lost_parquet(tmp_path, grid):
    frame = pl.DataFrame(
        {h: pl.Series([r[i] for r in grid], dtype=pl.String) for i, h in enumerate(HEADERS)}
    )
    path = tmp_path / "r.parquet"
    frame.write_parquet(path)
    result = read_returns(path)
    _check(result, grid, list(range(1, len(grid) + 1)))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    grid=rows,
    quoting=st.sampled_from([csv.QUOTE_ALL, csv.QUOTE_MINIMAL]),
    terminator=st.sampled_from(["\r\n", "\n"]),
)
def test_nothing_lost_csv(tmp_path, grid, quoting, terminator):
    # QUOTE_MINIMAL with "\n" lets most files take the fast (polars) parser; quoted line breaks
    # in a cell make the reader fall back to the csv module: both must give the same answer.
    path = tmp_path / "r.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, quoting=quoting, lineterminator=terminator)
        writer.writerow(HEADERS)
        starts, line = [], 2
        for r in grid:
            starts.append(line)
            values = ["" if v is None else v for v in r]
            writer.writerow(values)
            line += sum(v.count("\n") for v in values) + 1
    result = read_returns(path)
    _check(result, grid, starts)
