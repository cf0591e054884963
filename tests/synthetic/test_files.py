"""Files of the synthetic city: bytes, headers and labels from the contract, messy cells, and
the readers recovering what was written."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import polars as pl
import pytest

from energy_audit import ReadResult, contract, read_directory, read_returns, synthetic
from energy_audit.directory.codes import validate_credit_code
from energy_audit.errors import ContractError
from energy_audit.io.cells import is_blank
from energy_audit.synthetic import (
    DIRECTORY_COLUMNS,
    MESSY_CELL_VARIANTS,
    RETURNS_COLUMNS,
    TRUTH_SCHEMA,
    WAN_UNITS,
    make_directory,
    make_returns,
    through_files,
    write_city,
    write_returns_file,
)

SEED = 11  # the seed of conftest's directory
CITY_YEARS = range(2022, 2025)


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The files of a small city, flattened to ``returns_<year>_<format>`` keys."""
    return flat(write_city(tmp_path_factory.mktemp("city"), 300, CITY_YEARS, SEED))


def flat(written: dict[str, Path | dict[int, Path]]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for key, value in written.items():
        if isinstance(value, dict):
            out.update({f"returns_{y}_{key.removeprefix('returns_')}": p for y, p in value.items()})
        else:
            out[key] = value
    return out


def test_same_seed_same_file_bytes(city: dict[str, Path], tmp_path: Path) -> None:
    again = flat(write_city(tmp_path, 300, CITY_YEARS, SEED))
    assert again.keys() == city.keys()
    for key, path in city.items():
        assert again[key].read_bytes() == path.read_bytes(), key  # xlsx too: fixed timestamps


# --- files -----------------------------------------------------------------------------------


def test_written_files(city: dict[str, Path]) -> None:
    expected = {
        "directory_xlsx",
        "directory_parquet",
        "truth_parquet",
        "truth_csv",
        "district_trends_csv",
    }
    expected |= {f"returns_{y}_{f}" for y in CITY_YEARS for f in ("xlsx", "csv", "parquet")}
    assert set(city) == expected
    directory = pl.read_parquet(city["directory_parquet"])
    assert directory.equals(make_directory(300, SEED))
    returns = pl.concat(pl.read_parquet(city[f"returns_{y}_parquet"]) for y in CITY_YEARS)
    assert returns.equals(make_returns(directory, CITY_YEARS, SEED)[0])
    sheet = pl.read_excel(city["directory_xlsx"], has_header=False, infer_schema_length=0)
    assert sheet[0, 0] == "天津市公共机构名录库（2024年第4季度）"
    assert sheet.row(1)[:5] == ("统一社会信用代码", "单位名称", "所在区", "单位性质", "单位类别")
    assert set(sheet[2:, 3]) <= {"机关", "事业单位", "团体组织"}
    first_csv = city["returns_2022_csv"].read_bytes()
    header = first_csv.decode("gb18030").splitlines()[0]
    assert "电（万千瓦时）" in header
    assert city["returns_2023_csv"].read_bytes().startswith(b"\xef\xbb\xbf")  # UTF-8 BOM


def test_xlsx_only_when_it_fits(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(synthetic.files, "XLSX_MAX_ROWS", 250)
    written = write_city(tmp_path, 300, [2024], SEED, formats=("xlsx",))
    assert set(written) == {
        "directory_parquet", "returns_parquet", "truth_parquet", "truth_csv", "district_trends_csv"
    }  # fmt: skip
    assert written["returns_parquet"] == {2024: tmp_path / "returns_2024.parquet"}
    with pytest.raises(ValueError, match="unknown format"):
        write_city(tmp_path, 300, [2024], SEED, formats=("xls",))


def _number(text: str, unit: str) -> float:
    cleaned = unicodedata.normalize("NFKC", text).strip().replace(",", "")
    return float(cleaned.removesuffix(unit).strip())


def test_messy_cells_are_in_the_files(city: dict[str, Path]) -> None:
    truth = pl.read_parquet(city["truth_parquet"])
    messy = truth.filter(pl.col("defect") == "messy_cell")
    assert messy.height > 0
    assert set(messy["detail"]) >= set(synthetic.MESSY_CELL_VARIANTS) | {"credit_code_typed"}
    headers = list(synthetic.RETURNS_HEADERS_ZH)
    for file, rows in messy.group_by("source_file"):
        path = next(p for p in city.values() if p.name == file[0])
        if path.suffix == ".xlsx":
            sheet = pl.read_excel(path, has_header=False, infer_schema_length=0)
        else:
            encoding = "gb18030" if "2022" in path.name else "utf8"
            sheet = pl.read_csv(path, has_header=False, infer_schema=False, encoding=encoding)
        for row in rows.iter_rows(named=True):
            column = row["field"]
            index = headers.index(column) if path.name.startswith("returns") else 0
            cell = sheet[row["source_row"] - 1, index]  # source_row counts from 1
            assert cell == row["reported_text"], row
            if row["field"] == "institution_id":
                assert validate_credit_code(cell).code == row["true_text"]
            elif row["recoverable"]:
                scale = 10_000 if "2022.csv" in file[0] and column == "electricity_kwh" else 1
                header = synthetic.RETURNS_HEADERS_ZH[column]
                unit = "万千瓦时" if scale != 1 else header[header.index("(") + 1 : -1]
                assert _number(cell, unit) * scale == pytest.approx(row["true_value"], rel=1e-12)


# --- headers and labels come from the contract -----------------------------------------------


def test_headers_and_labels_are_the_contracts(city: dict[str, Path]) -> None:
    spec = contract.table("returns")
    for column, header in synthetic.RETURNS_HEADERS_ZH.items():
        col = spec.column(column)
        if col.unit is None:
            assert header == col.header_zh
        else:
            unit = "吨" if column == "water_m3" else contract.unit_label_zh(col.unit)
            assert header == f"{col.header_zh}({unit})"
    sheet = pl.read_excel(city["returns_2024_xlsx"], has_header=False, infer_schema_length=0)
    assert sheet.row(1) == tuple(
        h + ("*" if spec.column(c).required else "")
        for c, h in synthetic.RETURNS_HEADERS_ZH.items()
    )
    assert sheet.row(1)[RETURNS_COLUMNS.index("electricity_kwh")] == "电(千瓦时)*"
    sheet = pl.read_excel(city["directory_xlsx"], has_header=False, infer_schema_length=0)
    directory = contract.table("directory")
    assert sheet.row(1)[3:] == tuple(c.header_zh for c in directory.columns[3:])
    sectors = {v.labels[0] for v in directory.column("sector").values}
    assert set(sheet[2:, DIRECTORY_COLUMNS.index("sector")]) <= sectors


def test_unit_variants_are_checked_against_the_contract() -> None:
    water = contract.table("returns").column("water_m3")
    assert synthetic.columns._header_zh(water, unit="万立方米") == "水(万立方米)"
    with pytest.raises(ContractError, match="not a unit of column water_m3"):
        synthetic.columns._header_zh(water, unit="千瓦时")
    with pytest.raises(ContractError, match="not an alias of column water_m3"):
        synthetic.columns._header_zh(water, alias="用电量")


# --- round trip: the readers recover what the generator wrote -------------------------------


def _messy(city: dict[str, Path], path: Path) -> pl.DataFrame:
    truth = pl.read_parquet(city["truth_parquet"])
    return truth.filter((pl.col("defect") == "messy_cell") & (pl.col("source_file") == path.name))


def test_round_trip_directory(city: dict[str, Path]) -> None:
    expected = pl.read_parquet(city["directory_parquet"])
    result = read_directory(city["directory_xlsx"])
    assert result.rows_in == result.data.height == expected.height
    assert result.quarantine.is_empty()
    assert result.data["source_row"].to_list() == list(range(3, expected.height + 3))
    assert result.data.select(DIRECTORY_COLUMNS).equals(expected)  # labels mapped back to codes
    typed = _messy(city, city["directory_xlsx"])
    assert typed.height > 0
    read = typed.join(result.data, on="source_row", suffix="_read")
    assert (read["institution_id_read"] == read["true_text"]).all()


def _long(frame: pl.DataFrame, first_row: int) -> pl.DataFrame:
    numeric = [c for c in RETURNS_COLUMNS if c not in ("institution_id", "name")]
    return (
        frame.with_row_index("source_row", offset=first_row)
        .select(pl.col("source_row").cast(pl.Int64), pl.col(numeric).cast(pl.Float64))
        .unpivot(index="source_row", variable_name="field")
    )


@pytest.mark.parametrize(
    ("key", "first_row"), [("returns_2024_xlsx", 3), ("returns_2022_csv", 2)]
)  # the xlsx has a title row; the CSV of the first year is GB18030 in 万千瓦时
def test_round_trip_returns(city: dict[str, Path], key: str, first_row: int) -> None:
    path = city[key]
    expected = pl.read_parquet(city[f"returns_{key.split('_')[1]}_parquet"])
    result = read_returns(path)
    assert_read_back(expected, result, _messy(city, path), first_row)


def assert_read_back(
    expected: pl.DataFrame, result: ReadResult, messy: pl.DataFrame, first_row: int
) -> None:
    """Every cell is read back as written except the unrecoverable messy cells (then null)."""
    assert result.rows_in == result.data.height == expected.height
    assert result.data["source_row"].to_list() == list(
        range(first_row, first_row + expected.height)
    )
    ids = ["institution_id", "name"]
    assert result.data.select(ids).equals(expected.select(ids))
    lost = messy.filter(~pl.col("recoverable"))
    assert messy["recoverable"].sum() > 0
    assert lost.height > 0
    cells = _long(expected, first_row).join(
        _long(result.data.drop("source_row"), first_row),
        on=["source_row", "field"],
        suffix="_read",
    )
    assert cells.height == expected.height * (len(RETURNS_COLUMNS) - 2)
    cells = cells.join(
        lost.select("source_row", "field", lost=pl.lit(True)),
        on=["source_row", "field"],
        how="left",
    )
    kept = cells.filter(pl.col("lost").is_null())
    same = ((pl.col("value_read") - pl.col("value")).abs() <= 1e-9 * pl.col("value").abs()) | (
        pl.col("value_read").is_null() & pl.col("value").is_null()
    )
    differ = kept.filter(~same.fill_null(False))
    assert differ.is_empty(), differ
    assert cells.filter(pl.col("lost").is_not_null())["value_read"].is_null().all()

    # Nothing readable is quarantined; an unreadable cell is quarantined with its text unless
    # the reader takes it for a blank (—).
    q = result.quarantine
    quarantined = set(q.select("source_row", "column", "raw_value").iter_rows())
    unreadable = set(lost.select("source_row", "field", "reported_text").iter_rows())
    assert quarantined
    assert quarantined <= unreadable
    for _, _, text in unreadable - quarantined:
        assert pl.select(is_blank(pl.lit(text))).item(), text


# --- write_returns_file: any returns frame, written as write_city writes a year --------------


@pytest.fixture(scope="module")
def year_2024() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Returns of 2024 of a small city (about 300 rows) and their truth."""
    return make_returns(make_directory(300, SEED), [2024], SEED)


@pytest.mark.parametrize(
    ("name", "options", "first_row"),
    [
        ("returns.xlsx", {}, 3),  # title row, then the header row
        ("returns.csv", {}, 2),
        ("returns.csv", {"units": {"electricity_kwh": "万千瓦时"}, "encoding": "gb18030"}, 2),
    ],
)
def test_write_returns_file_round_trip(
    year_2024: tuple[pl.DataFrame, pl.DataFrame],
    tmp_path: Path,
    name: str,
    options: dict[str, object],
    first_row: int,
) -> None:
    returns, truth = year_2024
    before = returns.clone()
    path, messy = write_returns_file(
        returns, tmp_path / name, seed=SEED, truth=truth, messy_rate=0.02, **options
    )
    assert returns.equals(before)  # the input is not changed
    assert path == tmp_path / name
    assert messy.schema == pl.Schema(TRUTH_SCHEMA)
    assert set(messy["defect"]) == {"messy_cell"}
    assert set(messy["source_file"]) == {name}
    assert set(messy["detail"]) == set(MESSY_CELL_VARIANTS)
    # 2 % of the numeric cells, none on a return that already carries a defect
    assert messy.height == round(0.02 * returns.height * (len(RETURNS_COLUMNS) - 3))
    assert messy.join(truth, on=["institution_id", "year"], how="semi").is_empty()
    if "encoding" in options:
        header = path.read_bytes().decode("gb18030").splitlines()[0]
        assert "电（万千瓦时）" in header
    assert_read_back(returns, read_returns(path), messy, first_row)


def test_write_returns_file_parquet_and_errors(
    year_2024: tuple[pl.DataFrame, pl.DataFrame], tmp_path: Path
) -> None:
    returns, truth = year_2024
    path, messy = write_returns_file(returns, tmp_path / "r.parquet", seed=SEED, truth=truth)
    assert pl.read_parquet(path).equals(returns)
    assert messy.is_empty()
    _, none = write_returns_file(returns, tmp_path / "r.csv", seed=SEED, messy_rate=0.0)
    assert none.is_empty()
    two_years = pl.concat([returns, returns.with_columns(year=pl.lit(2023, dtype=pl.Int64))])
    for frame, file, options, match in (
        (returns, "r.xls", {}, "unknown format '.xls'"),
        (returns.drop("water_m3"), "r.csv", {}, r"missing \['water_m3'\]"),
        (two_years, "r.csv", {}, "pass year="),
        (returns, "r.csv", {"year": 2023}, "the file is of 2023"),
        (returns, "r.xlsx", {"encoding": "gb18030"}, "encoding applies to CSV"),
        (returns, "r.parquet", {"units": {"water_m3": "吨"}}, "units do not apply"),
        (returns, "r.csv", {"messy_rate": 1.5}, "messy_rate"),
    ):
        with pytest.raises(ValueError, match=match):
            write_returns_file(frame, tmp_path / file, seed=SEED, **options)
    with pytest.raises(ContractError, match="not a unit of column water_m3"):
        write_returns_file(returns, tmp_path / "r.csv", seed=SEED, units={"water_m3": "千瓦时"})


def test_write_city_takes_a_noise_family(tmp_path: Path) -> None:
    written = write_city(tmp_path, 300, [2023, 2024], SEED, formats=(), noise="mixture")
    returns = pl.concat(pl.read_parquet(p) for p in written["returns_parquet"].values())
    directory = pl.read_parquet(written["directory_parquet"])
    assert returns.equals(make_returns(directory, [2023, 2024], SEED, noise="mixture")[0])
    assert not returns.equals(make_returns(directory, [2023, 2024], SEED)[0])
    with pytest.raises(ValueError, match="unknown noise family"):
        write_city(tmp_path, 300, [2024], SEED, noise="none")


def test_through_files_in_wan_units(
    year_2024: tuple[pl.DataFrame, pl.DataFrame], tmp_path: Path
) -> None:
    """History written in 万 units and read back: the canonical figures with the round trip's
    float error, not bit for bit."""
    returns, _ = make_returns(make_directory(300, SEED), [2022, 2023, 2024], SEED)
    before = returns.clone()
    back = through_files(returns, tmp_path / "history")
    assert returns.equals(before)
    assert sorted(p.name for p in (tmp_path / "history").iterdir()) == [
        "returns_2022.csv", "returns_2023.csv", "returns_2024.csv"
    ]  # fmt: skip
    header = (tmp_path / "history" / "returns_2024.csv").read_text("utf-8-sig").splitlines()[0]
    assert {"电（万千瓦时）", "天然气（万立方米）", "水（万吨）"} <= set(header.split(","))
    assert back.height == returns.height
    assert back.select(RETURNS_COLUMNS).columns == list(RETURNS_COLUMNS)
    assert back.select("institution_id", "year").equals(returns.select("institution_id", "year"))
    for column in RETURNS_COLUMNS[3:]:
        read, written = back[column].cast(pl.Float64), returns[column].cast(pl.Float64)
        # 6 decimals of 万 units: 0.01 kWh; canonical columns exact
        tolerance = 0.005 + 1e-9 * written.abs() if column in WAN_UNITS else 0.0
        assert ((read - written).abs() <= tolerance).all(), column
    # the reader's × 10,000 leaves float error on many whole figures (192476.99999999997)
    whole = returns["electricity_kwh"] % 1 == 0
    assert (back["electricity_kwh"].filter(whole) != returns["electricity_kwh"].filter(whole)).any()
    xlsx = through_files(returns.filter(pl.col("year") == 2024), tmp_path / "x", fmt="xlsx")
    assert xlsx.height == returns.filter(pl.col("year") == 2024).height
    empty = through_files(returns.clear(), tmp_path / "none")
    assert empty.is_empty() and set(RETURNS_COLUMNS) <= set(empty.columns)
    with pytest.raises(ValueError, match="fmt must be"):
        through_files(returns, tmp_path / "p", fmt="parquet")


def test_write_returns_file_decimals(
    year_2024: tuple[pl.DataFrame, pl.DataFrame], tmp_path: Path
) -> None:
    returns, _ = year_2024
    path, _ = write_returns_file(
        returns, tmp_path / "r.csv", seed=SEED, messy_rate=0.0, units=WAN_UNITS, decimals=2
    )
    text = pl.read_csv(path, infer_schema=False, encoding="utf8")["电（万千瓦时）"]
    assert (
        text.str.split(".").list.get(1, null_on_oob=True).str.len_chars().fill_null(0) <= 2
    ).all()
    for bad in (-1, 16):
        with pytest.raises(ValueError, match="decimals must be"):
            write_returns_file(returns, tmp_path / "r.csv", seed=SEED, decimals=bad)
    with pytest.raises(ValueError, match="units do not apply"):
        write_returns_file(returns, tmp_path / "r.parquet", seed=SEED, decimals=4)
