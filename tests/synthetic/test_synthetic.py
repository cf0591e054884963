"""The synthetic city: determinism, directory and returns invariants, and the truth table."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from energy_audit import ReadResult, contract, read_directory, read_returns, synthetic
from energy_audit.directory.codes import credit_codes_valid, validate_credit_code
from energy_audit.districts import load_districts
from energy_audit.errors import ContractError
from energy_audit.factors import kgce_per_canonical_unit
from energy_audit.io.cells import is_blank
from energy_audit.synthetic import (
    CHANGES_SCHEMA,
    DEFECT_KINDS,
    DIRECTORY_CHANGE_KINDS,
    DIRECTORY_COLUMNS,
    DIRECTORY_DEFECT_KINDS,
    DIRECTORY_DEFECT_SCHEMA,
    EVOLUTION_EVENTS,
    MESSY_CELL_VARIANTS,
    RETURNS_COLUMNS,
    TRUTH_SCHEMA,
    district_trends,
    evolve_directory,
    inject_directory_defects,
    make_directory,
    make_returns,
    write_city,
    write_returns_file,
)

YEARS = range(2020, 2025)
SEED = 11
CITY_YEARS = range(2022, 2025)
LEVEL_RANK = {"municipal": 0, "district": 1, "subdistrict": 2}
ENERGY_ITEMS = (
    "electricity_kwh", "natural_gas_m3", "coal_t", "gasoline_l", "diesel_l", "lpg_kg", "heat_gj",
    "other_energy_tce",
)  # fmt: skip
QUANTITIES = (*ENERGY_ITEMS, "pv_generation_kwh", "water_m3")


@pytest.fixture(scope="module")
def directory() -> pl.DataFrame:
    return make_directory(2000, SEED)


@pytest.fixture(scope="module")
def clean(directory: pl.DataFrame) -> pl.DataFrame:
    returns, truth = make_returns(directory, YEARS, SEED, defects=False)
    assert truth.is_empty()
    return returns


@pytest.fixture(scope="module")
def dirty(directory: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    return make_returns(directory, YEARS, SEED)


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


def computed_total_tce(frame: pl.DataFrame) -> pl.Expr:
    """Σ items × coefficients [tce], using the coefficients of each row's year."""
    years = frame["year"].unique().to_list()
    per_year = {y: kgce_per_canonical_unit(None, y) for y in years}
    return pl.coalesce(
        pl.when(pl.col("year") == y).then(sum(pl.col(c) * k[c] for c in ENERGY_ITEMS) / 1000)
        for y, k in per_year.items()
    )


# --- determinism -----------------------------------------------------------------------------


def test_same_seed_same_frames(directory: pl.DataFrame) -> None:
    assert make_directory(2000, SEED).equals(directory)
    first = make_returns(directory, YEARS, SEED)
    second = make_returns(directory, YEARS, SEED)
    assert first[0].equals(second[0])
    assert first[1].equals(second[1])


def test_same_seed_same_file_bytes(city: dict[str, Path], tmp_path: Path) -> None:
    again = flat(write_city(tmp_path, 300, CITY_YEARS, SEED))
    assert again.keys() == city.keys()
    for key, path in city.items():
        assert again[key].read_bytes() == path.read_bytes(), key  # xlsx too: fixed timestamps


def test_different_seed_differs(directory: pl.DataFrame) -> None:
    other = make_directory(2000, SEED + 1)
    assert not other.equals(directory)
    assert other["institution_id"].to_list() != directory["institution_id"].to_list()
    a = make_returns(directory, YEARS, SEED)[0]
    b = make_returns(directory, YEARS, SEED + 1)[0]
    assert not a.equals(b)


# --- directory -------------------------------------------------------------------------------


def test_directory_columns_and_codes(directory: pl.DataFrame) -> None:
    assert directory.columns == list(DIRECTORY_COLUMNS)
    assert directory.height == 2000
    assert directory["institution_id"].n_unique() == 2000
    assert credit_codes_valid(directory["institution_id"].to_list()).all()
    for code in directory["institution_id"].sample(50, seed=1):
        assert validate_credit_code(code).is_valid


def test_directory_prefix_matches_type(directory: pl.DataFrame) -> None:
    prefix = directory.select(
        pl.col("institution_type"), pl.col("institution_id").str.slice(0, 2).alias("prefix")
    )
    allowed = {
        "agency": {"11"},
        "public_service_unit": {"12"},
        "organization": {"13", "51", "52", "53"},
    }
    for kind, code in prefix.unique().iter_rows():
        assert code in allowed[kind], (kind, code)
    assert prefix.filter(pl.col("prefix").is_in(["51", "52", "53"])).height >= 3


def test_directory_region_codes(directory: pl.DataFrame) -> None:
    region = directory.select(pl.col("institution_id").str.slice(2, 6), "district_code")
    retired = region.filter(pl.col("institution_id") == "120225")
    assert retired.height > 0
    assert set(retired["district_code"]) == {"120119"}  # 蓟州区, formerly 蓟县 (120225)


def test_directory_covers_districts_sectors_levels(directory: pl.DataFrame) -> None:
    assert set(directory["district_code"]) == set(load_districts()["district_code"])
    assert set(directory["sector"]) == {
        "agency", "university", "school", "hospital", "venue", "research", "other_service",
        "organization",
    }  # fmt: skip
    assert set(directory["institution_type"]) == {"agency", "public_service_unit", "organization"}
    assert set(directory["admin_level"]) == set(LEVEL_RANK)
    assert set(directory["heat_billing"]) == {"metered", "by_area", "none"}
    assert set(directory["status"]) == {"active", "dissolved", "merged"}
    assert directory["name"].str.contains("天津").all()


def test_directory_hierarchy(directory: pl.DataFrame) -> None:
    ids = set(directory["institution_id"])
    parents = directory.filter(pl.col("parent_id").is_not_null())
    assert parents.height > 0.8 * directory.height
    assert set(parents["parent_id"]) <= ids
    # A child's level is never above its parent's; a district unit's parent is in its district.
    joined = parents.join(
        directory.select(
            pl.col("institution_id").alias("parent_id"),
            pl.col("admin_level").alias("parent_level"),
            pl.col("district_code").alias("parent_district"),
        ),
        on="parent_id",
    )
    child = joined["admin_level"].replace_strict(LEVEL_RANK)
    parent = joined["parent_level"].replace_strict(LEVEL_RANK)
    assert (child >= parent).all()
    local = joined.filter(pl.col("parent_level") != "municipal")
    assert (local["district_code"] == local["parent_district"]).all()
    # No cycles: walking up from every institution ends within a few steps.
    parent_of = dict(zip(directory["institution_id"], directory["parent_id"], strict=True))
    for start in directory["institution_id"]:
        seen, node = set(), start
        while node is not None:
            assert node not in seen
            seen.add(node)
            node = parent_of[node]
        assert len(seen) <= 4


def test_directory_merged_and_dissolved(directory: pl.DataFrame) -> None:
    merged = directory.filter(pl.col("status") == "merged")
    assert merged.height > 0
    assert merged["merged_into_id"].null_count() == 0
    active = set(directory.filter(pl.col("status") == "active")["institution_id"])
    assert set(merged["merged_into_id"]) <= active
    assert directory.filter(pl.col("status") != "merged")["merged_into_id"].null_count() == (
        directory.height - merged.height
    )
    # Parents stay active.
    assert set(directory["parent_id"].drop_nulls()) <= active


def test_directory_too_small() -> None:
    with pytest.raises(ValueError, match="at least"):
        make_directory(20, 1)


# --- clean returns ---------------------------------------------------------------------------


def test_clean_returns_cover_scope_exactly(directory: pl.DataFrame, clean: pl.DataFrame) -> None:
    assert clean.columns == list(RETURNS_COLUMNS)
    active = directory.filter(pl.col("status") == "active")
    assert clean.height == active.height * len(YEARS)
    assert clean.select("institution_id", "year").is_unique().all()
    assert set(clean["institution_id"]) == set(active["institution_id"])
    names = dict(zip(directory["institution_id"], directory["name"], strict=True))
    assert (clean["name"] == clean["institution_id"].replace_strict(names)).all()


def test_clean_returns_are_plausible(clean: pl.DataFrame) -> None:
    numeric = [c for c in RETURNS_COLUMNS if c not in ("institution_id", "name", "year")]
    assert clean.select(pl.min_horizontal(pl.col(numeric).min())).item() >= 0
    assert (clean["building_area_m2"] > 0).all()
    assert (clean["occupants"] > 0).all()
    checks = clean.select(
        total_error=((pl.col("reported_total_tce") / computed_total_tce(clean)) - 1).abs().max(),
        price_low=(pl.col("electricity_cost_yuan") / pl.col("electricity_kwh")).min(),
        price_high=(pl.col("electricity_cost_yuan") / pl.col("electricity_kwh")).max(),
        pv_ok=(pl.col("pv_generation_kwh") <= pl.col("electricity_kwh")).all(),
        fuel_ok=((pl.col("vehicles") == 0) | (pl.col("gasoline_l") + pl.col("diesel_l") > 0)).all(),
    ).row(0, named=True)
    assert checks["total_error"] < 0.005
    assert 0.5 <= checks["price_low"] <= checks["price_high"] <= 1.2
    assert checks["pv_ok"]
    assert checks["fuel_ok"]
    # Metered quantities are whole numbers but never round hundreds.
    for column in ("electricity_kwh", "natural_gas_m3", "water_m3"):
        values = clean.filter(pl.col(column) > 0)[column]
        assert (values % 1 == 0).all()
        assert (values % 100 != 0).all(), column


def test_clean_returns_year_on_year(clean: pl.DataFrame) -> None:
    yoy = (
        clean.sort("institution_id", "year")
        .with_columns(total=computed_total_tce(clean))
        .with_columns(
            ratio=pl.col("total") / pl.col("total").shift().over("institution_id"),
            area_ratio=pl.col("building_area_m2")
            / pl.col("building_area_m2").shift().over("institution_id"),
            occupants_ratio=pl.col("occupants")
            / pl.col("occupants").shift().over("institution_id"),
        )
        .drop_nulls("ratio")
    )
    assert yoy["ratio"].is_between(0.7, 1.3).all()
    assert (yoy["area_ratio"] == 1).all()
    assert yoy["occupants_ratio"].is_between(0.9, 1.1).all()


def test_metered_heat_and_sector_levels(directory: pl.DataFrame, clean: pl.DataFrame) -> None:
    frame = clean.join(
        directory.select("institution_id", "sector", "heat_billing"), on="institution_id"
    )
    assert (frame.filter(pl.col("heat_billing") == "metered")["heat_gj"] > 0).all()
    per_m2 = (
        frame.with_columns(kgce=computed_total_tce(frame) * 1000)
        .group_by("sector")
        .agg(per_m2=pl.col("kgce").sum() / pl.col("building_area_m2").sum())
    )
    by_sector = dict(per_m2.iter_rows())
    assert by_sector["hospital"] > by_sector["agency"] > by_sector["school"]
    city = frame.select(computed_total_tce(frame).sum() * 1000 / pl.col("building_area_m2").sum())
    assert 12 < city.item() < 35  # kgce/m²: above the national 18 only by heating, not wildly


def test_district_trends_show_in_the_data(directory: pl.DataFrame, clean: pl.DataFrame) -> None:
    trends = district_trends()
    assert trends.height == 16
    assert (trends["intensity_change_per_year"] < -0.02).sum() >= 3
    assert (trends["intensity_change_per_year"] > 0).sum() in (1, 2)
    frame = clean.join(directory.select("institution_id", "district_code"), on="institution_id")
    intensity = (
        frame.with_columns(kgce=computed_total_tce(frame) * 1000)
        .group_by("district_code", "year")
        .agg(per_m2=pl.col("kgce").sum() / pl.col("building_area_m2").sum())
        .pivot("year", index="district_code", values="per_m2")
        .select("district_code", change=pl.col("2024") / pl.col("2020"))
        .join(trends, on="district_code")
    )
    falling = intensity.filter(pl.col("intensity_change_per_year") <= -0.025)["change"]
    rising = intensity.filter(pl.col("intensity_change_per_year") > 0)["change"]
    assert falling.max() < rising.min()


# --- defects and truth -----------------------------------------------------------------------


def test_truth_schema_and_all_kinds(dirty: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    _, truth = dirty
    assert truth.schema == pl.Schema(TRUTH_SCHEMA)
    assert set(truth["defect"]) == set(DEFECT_KINDS) - {"messy_cell"}
    assert truth.select("institution_id", "defect").null_count().sum_horizontal().item() == 0


def _returns_long(returns: pl.DataFrame) -> pl.DataFrame:
    numeric = [c for c in RETURNS_COLUMNS if c not in ("institution_id", "year", "name")]
    return returns.with_columns(pl.col(numeric).cast(pl.Float64)).unpivot(
        numeric, index=["institution_id", "year"], variable_name="field", value_name="value"
    )


def test_every_field_defect_is_visible(dirty: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    returns, truth = dirty
    fields = truth.filter(pl.col("field").is_not_null() & (pl.col("field") != "name"))
    found = fields.join(
        _returns_long(returns),
        left_on=["institution_id", "year", "field", "reported_value"],
        right_on=["institution_id", "year", "field", "value"],
        how="semi",
    )
    assert found.height == fields.height
    names = truth.filter(pl.col("field") == "name")
    assert names.height > 0
    assert (names["true_text"] != names["reported_text"]).all()
    seen = names.join(
        returns, left_on=["institution_id", "year", "reported_text"],
        right_on=["institution_id", "year", "name"], how="semi",
    )  # fmt: skip
    assert seen.height == names.height


def _kind(truth: pl.DataFrame, kind: str) -> pl.DataFrame:
    rows = truth.filter(pl.col("defect") == kind)
    assert rows.height > 0, kind
    return rows


def test_unit_slips_have_their_factors(dirty: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    _, truth = dirty
    expected = {
        "unit_slip_10k": [1e-4],
        "unit_slip_kg_for_t": [1000.0],
        "unit_slip_mj_for_gj": [1000.0],
        "typo_x10": [10.0],
        "unit_slip_kg_for_l": [0.73, 0.85],
    }
    for kind, factors in expected.items():
        rows = _kind(truth, kind)
        for factor in rows["factor"]:
            assert min(abs(factor / f - 1) for f in factors) < 1e-3, (kind, factor)
    slips = _kind(truth, "unit_slip_10k")
    assert np.allclose(slips["reported_value"], slips["true_value"] / 10_000, rtol=1e-12)
    diesel = _kind(truth, "unit_slip_kg_for_l").filter(pl.col("field") == "diesel_l")
    assert diesel.is_empty() or np.allclose(diesel["factor"], 0.85, rtol=1e-3)


def test_year_on_year_defects(dirty: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    returns, truth = dirty
    long = _returns_long(returns)
    last_year = long.with_columns(pl.col("year") + 1).rename({"value": "last_value"})
    for kind, low, high in (
        ("yoy_jump", 0.7, 1.3),
        ("area_change", 0.9, 1.1),
        ("occupants_change", 0.9, 1.1),
    ):
        rows = _kind(truth, kind).join(last_year, on=["institution_id", "year", "field"])
        ratio = rows["reported_value"] / rows["last_value"]
        assert ((ratio < low) | (ratio > high)).all(), kind
    copied = _kind(truth, "copied_figures").join(last_year, on=["institution_id", "year", "field"])
    assert (copied["reported_value"] == copied["last_value"]).all()
    assert (copied["year"] > 2020).all()


def test_consistency_defects(
    directory: pl.DataFrame, dirty: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    returns, truth = dirty
    frame = returns.join(
        directory.select("institution_id", "heat_billing", "parent_id"),
        on="institution_id",
        how="left",
    )

    def rows_of(kind: str) -> pl.DataFrame:
        keys = _kind(truth, kind).select("institution_id", "year").unique()
        return frame.join(keys, on=["institution_id", "year"], how="semi")

    assert (
        (
            rows_of("pv_exceeds_electricity").select(
                pl.col("pv_generation_kwh") > pl.col("electricity_kwh")
            )
        )
        .to_series()
        .all()
    )
    no_fuel = rows_of("vehicles_no_fuel")
    assert (
        (no_fuel["vehicles"] > 0) & (no_fuel["gasoline_l"] == 0) & (no_fuel["diesel_l"] == 0)
    ).all()
    heat = rows_of("metered_heat_zero")
    assert ((heat["heat_billing"] == "metered") & (heat["heat_gj"] == 0)).all()
    mismatch = rows_of("total_mismatch")
    error = (
        mismatch["reported_total_tce"] / mismatch.select(computed_total_tce(mismatch)).to_series()
        - 1
    ).abs()
    assert (error > 0.1).all()
    price = (
        rows_of("absurd_unit_price")
        .select(pl.col("electricity_cost_yuan") / pl.col("electricity_kwh"))
        .to_series()
    )
    assert ((price < 0.01) | (price > 50)).all()
    rounded = _kind(truth, "round_number")
    assert (rounded["reported_value"] % 1000 == 0).all()
    assert (rounded["true_value"] % 100 != 0).all()
    assert (_kind(truth, "negative_value")["reported_value"] < 0).all()
    assert (_kind(truth, "nonpositive_area")["reported_value"] <= 0).all()
    assert (_kind(truth, "nonpositive_occupants")["reported_value"] == 0).all()
    # Identical siblings: same parent, same year, same figures as the related unit.
    siblings = _kind(truth, "identical_siblings")
    parents = dict(zip(directory["institution_id"], directory["parent_id"], strict=True))
    long = _returns_long(returns)
    source = siblings.join(
        long, left_on=["related_id", "year", "field"], right_on=["institution_id", "year", "field"]
    )
    assert source.height == siblings.height
    assert (source["reported_value"] == source["value"]).all()
    for a, b in siblings.select("institution_id", "related_id").unique().iter_rows():
        assert parents[a] == parents[b] is not None


def test_coverage_defects(
    directory: pl.DataFrame, dirty: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    returns, truth = dirty
    counts = returns.group_by("institution_id", "year").len()
    status = dict(zip(directory["institution_id"], directory["status"], strict=True))

    def count(kind: str) -> list[int | None]:
        keys = _kind(truth, kind).select("institution_id", "year")
        return keys.join(counts, on=["institution_id", "year"], how="left")["len"].to_list()

    assert set(count("missing_return")) == {None}
    assert set(count("duplicate_exact")) == {2}
    assert set(count("duplicate_conflicting")) == {2}
    assert set(count("unknown_institution")) == {1}
    assert set(_kind(truth, "unknown_institution")["institution_id"]).isdisjoint(status)
    assert credit_codes_valid(_kind(truth, "unknown_institution")["institution_id"]).all()
    for kind, which in (("return_from_dissolved", "dissolved"), ("return_from_merged", "merged")):
        assert set(count(kind)) == {1}
        assert {status[i] for i in _kind(truth, kind)["institution_id"]} == {which}
    exact = _kind(truth, "duplicate_exact").select("institution_id", "year")
    assert returns.join(exact, on=["institution_id", "year"], how="semi").is_duplicated().all()
    # Returns without a truth row are exactly the clean rows of the scope.
    clean_keys = returns.join(
        truth.select("institution_id", "year").unique(), on=["institution_id", "year"], how="anti"
    )
    active = {i for i, s in status.items() if s == "active"}
    assert set(clean_keys["institution_id"]) <= active
    assert clean_keys.select("institution_id", "year").is_unique().all()
    numeric = [c for c in RETURNS_COLUMNS if c not in ("institution_id", "name", "year")]
    assert clean_keys.select(pl.min_horizontal(pl.col(numeric).min())).item() >= 0
    total_error = clean_keys.select(
        (pl.col("reported_total_tce") / computed_total_tce(clean_keys) - 1).abs().max()
    )
    assert total_error.item() < 0.005


def test_defect_rates_can_be_set(directory: pl.DataFrame) -> None:
    _, truth = make_returns(
        directory, YEARS, SEED, defects={"typo_x10": 0.0, "missing_return": 0.05}
    )
    assert "typo_x10" not in set(truth["defect"])
    missing = truth.filter(pl.col("defect") == "missing_return").height
    assert missing == round(0.05 * (directory["status"] == "active").sum() * len(YEARS))
    with pytest.raises(ValueError, match="unknown defect kind"):
        make_returns(directory, YEARS, SEED, defects={"typo": 0.1})
    with pytest.raises(ValueError, match="consecutive"):
        make_returns(directory, [2020, 2022], SEED)


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
    messy = _kind(truth, "messy_cell")
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


def test_another_district_table() -> None:
    table = pl.DataFrame(
        {
            "region_code": ["110000"] * 4,
            "district_code": ["110101", "110102", "110105", "110106"],
            "name_zh": ["东城区", "西城区", "朝阳区", "丰台区"],
            "name_en": ["Dongcheng", "Xicheng", "Chaoyang", "Fengtai"],
            "source": ["GB/T 2260"] * 4,
        }
    )
    directory = make_directory(200, SEED, districts=table)
    assert set(directory["district_code"]) == set(table["district_code"])
    returns, truth = make_returns(directory, [2023, 2024], SEED, districts=table)
    assert returns.height > 0
    assert set(truth["defect"]) <= set(DEFECT_KINDS)
    assert district_trends(table).height == 4


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


# --- directory maintenance: the next quarter ---------------------------------------------------


def snapshot_diff(old: pl.DataFrame, new: pl.DataFrame) -> set[tuple[str | None, ...]]:
    """The changes between two snapshots, computed here independently of the generator.

    A status → merged change is the ``merged`` row of merged_into_id; values compared as text.
    """
    old_ids, new_ids = set(old["institution_id"]), set(new["institution_id"])
    rows: set[tuple[str | None, ...]] = {(i, "added", None, None, None) for i in new_ids - old_ids}
    rows |= {(i, "removed", None, None, None) for i in old_ids - new_ids}
    both = old.join(new, on="institution_id", suffix="_new")
    for column in DIRECTORY_COLUMNS[1:]:
        before, after = both[column].cast(pl.String), both[f"{column}_new"].cast(pl.String)
        differs = before.ne_missing(after)
        for code, a, b in zip(
            both["institution_id"].filter(differs),
            before.filter(differs),
            after.filter(differs),
            strict=True,
        ):
            if column == "status":
                assert (a, b) in {("active", "dissolved"), ("active", "merged")}, (code, a, b)
                if b == "merged":
                    continue
                change = "dissolved"
            else:
                change = {"merged_into_id": "merged", "name": "renamed"}.get(column, "changed")
            rows.add((code, change, column, a, b))
    return rows


def assert_sound(directory: pl.DataFrame) -> None:
    """What every clean snapshot keeps: valid unique codes and names, a sound hierarchy."""
    ids = directory["institution_id"]
    assert ids.n_unique() == directory.height
    assert credit_codes_valid(ids.to_list()).all()
    assert ids.str.slice(8, 9).n_unique() == directory.height  # organization codes too
    assert directory["name"].n_unique() == directory.height
    info = directory.select(
        pl.col("institution_id").alias("parent_id"),
        pl.col("admin_level").alias("parent_level"),
        pl.col("status").alias("parent_status"),
        pl.col("district_code").alias("parent_district"),
    )
    children = directory.filter(pl.col("parent_id").is_not_null()).join(
        info, on="parent_id", how="left"
    )
    assert children["parent_level"].null_count() == 0  # every parent exists
    child_rank = children["admin_level"].replace_strict(LEVEL_RANK)
    assert (child_rank >= children["parent_level"].replace_strict(LEVEL_RANK)).all()
    active = children.filter(pl.col("status") == "active")
    assert (active["parent_status"] == "active").all()
    local = children.filter(pl.col("parent_level") != "municipal")
    assert (local["district_code"] == local["parent_district"]).all()
    merged = directory.filter(pl.col("status") == "merged").join(
        info.rename({"parent_id": "merged_into_id"}), on="merged_into_id", how="left"
    )
    assert (merged["parent_status"] == "active").all()
    parent_of = dict(zip(ids, directory["parent_id"], strict=True))
    for start in ids:
        seen, node = set(), start
        while node is not None:
            assert node not in seen, f"cycle through {start}"
            seen.add(node)
            node = parent_of[node]


@pytest.fixture(scope="module")
def quarter(directory: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    return evolve_directory(directory, SEED)


def test_evolve_same_seed_same_result(
    directory: pl.DataFrame, quarter: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    before = directory.clone()
    again = evolve_directory(directory, SEED)
    assert again[0].equals(quarter[0])
    assert again[1].equals(quarter[1])
    assert directory.equals(before)  # the input is not changed
    other = evolve_directory(directory, SEED + 1)
    assert not other[1].equals(quarter[1])


def test_evolve_truth_is_the_difference(
    directory: pl.DataFrame, quarter: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    snapshot, changes = quarter
    assert changes.schema == pl.Schema(CHANGES_SCHEMA)
    assert snapshot.schema == directory.schema
    assert set(changes["change"]) == set(DIRECTORY_CHANGE_KINDS)
    assert set(changes.rows()) == snapshot_diff(directory, snapshot)
    assert changes.height == len(set(changes.rows()))
    fields = set(changes.filter(pl.col("change") == "changed")["field"])
    assert fields == {
        "parent_id", "district_code", "address", "heat_billing", "key_energy_user",
        "contact_name", "contact_phone",
    }  # fmt: skip
    # Rates of about 0.5-1 % per quarter.
    counts = dict(changes.group_by("change").len().rows())
    for kind in ("added", "dissolved", "merged", "renamed"):
        assert 0.003 * directory.height <= counts[kind] <= 0.012 * directory.height, kind
    assert 1 <= counts["removed"] <= 0.003 * directory.height


def test_evolve_each_kind(
    directory: pl.DataFrame, quarter: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    snapshot, changes = quarter
    new = {r["institution_id"]: r for r in snapshot.iter_rows(named=True)}
    old = {r["institution_id"]: r for r in directory.iter_rows(named=True)}

    def of(kind: str) -> pl.DataFrame:
        return changes.filter(pl.col("change") == kind)

    added = of("added")["institution_id"].to_list()
    assert not set(added) & set(old)
    assert snapshot["institution_id"].tail(len(added)).sort().to_list() == sorted(added)
    for code in added:
        row = new[code]
        assert code.startswith("12") and validate_credit_code(code).is_valid
        assert row["status"] == "active" and row["institution_type"] == "public_service_unit"
        parent = new[row["parent_id"]]
        assert parent["status"] == "active"
        assert LEVEL_RANK[parent["admin_level"]] <= LEVEL_RANK[row["admin_level"]]
        assert row["name"].startswith("天津") and row["address"].startswith("天津市")
    for code in of("removed")["institution_id"]:
        assert code not in new and old[code]["status"] == "active"
        assert code not in set(directory["parent_id"]) | set(directory["merged_into_id"])
    for code in of("dissolved")["institution_id"]:
        assert (old[code]["status"], new[code]["status"]) == ("active", "dissolved")
    for code, target in of("merged").select("institution_id", "new_value").iter_rows():
        assert (old[code]["status"], new[code]["status"]) == ("active", "merged")
        assert new[code]["merged_into_id"] == target and new[target]["status"] == "active"
        for column in ("sector", "district_code", "admin_level"):
            assert new[target][column] == new[code][column]
    for code, before, after in (
        of("renamed").select("institution_id", "old_value", "new_value").iter_rows()
    ):
        assert old[code]["name"] == before != after == new[code]["name"]
    moved = of("changed").filter(pl.col("field") == "district_code")
    for code, after in moved.select("institution_id", "new_value").iter_rows():
        assert new[code]["admin_level"] == "municipal"
        assert new[code]["address"].startswith("天津市" + district_name(after))


def district_name(code: str) -> str:
    return dict(load_districts().select("district_code", "name_zh").iter_rows())[code]


def test_evolve_several_quarters_stay_sound(directory: pl.DataFrame) -> None:
    assert_sound(directory)
    snapshot = directory
    for q in range(4):
        nxt, changes = evolve_directory(snapshot, q)
        assert_sound(nxt)
        assert set(changes.rows()) == snapshot_diff(snapshot, nxt)
        counts = dict(changes.group_by("change").len().rows())
        assert nxt.height == snapshot.height + counts["added"] - counts["removed"]
        snapshot = nxt


def test_evolve_children_of_leaving_parents_move(directory: pl.DataFrame) -> None:
    rates = {"dissolved": 0.05, "merged": 0.05, "added": 0.0}
    snapshot, changes = evolve_directory(directory, SEED, rates=rates)
    assert_sound(snapshot)
    leaving = set(changes.filter(pl.col("change").is_in(["dissolved", "merged"]))["institution_id"])
    orphans = directory.filter(
        pl.col("parent_id").is_in(list(leaving))
        & (pl.col("status") == "active")
        & ~pl.col("institution_id").is_in(list(leaving))
    )
    assert orphans.height >= 5
    moves = changes.filter(pl.col("field") == "parent_id")
    moved = dict(zip(moves["institution_id"], moves["old_value"], strict=True))
    for code, parent in orphans.select("institution_id", "parent_id").iter_rows():
        assert moved[code] == parent
    # Some move to the institution their parent merged into.
    target_of = dict(
        changes.filter(pl.col("change") == "merged")
        .select("institution_id", "new_value")
        .iter_rows()
    )
    new_parent = dict(moves.select("institution_id", "new_value").iter_rows())
    assert any(target_of.get(moved[c]) == new_parent[c] for c in orphans["institution_id"])


def test_evolve_rates(directory: pl.DataFrame) -> None:
    nothing, none = evolve_directory(directory, SEED, rates=dict.fromkeys(EVOLUTION_EVENTS, 0.0))
    assert nothing.equals(directory) and none.is_empty()
    only_added = {**dict.fromkeys(EVOLUTION_EVENTS, 0.0), "added": 0.05}
    grown, changes = evolve_directory(directory, SEED, rates=only_added)
    assert set(changes["change"]) == {"added"}
    assert changes.height == round(0.05 * directory.filter(pl.col("status") == "active").height)
    assert grown.head(directory.height).equals(directory)
    with pytest.raises(ValueError, match="unknown event 'born'"):
        evolve_directory(directory, SEED, rates={"born": 0.1})
    with pytest.raises(ValueError, match="between 0 and 1"):
        evolve_directory(directory, SEED, rates={"added": 1.5})


def test_evolve_refuses_unusable_directories(directory: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match="unique"):
        evolve_directory(pl.concat([directory, directory.head(1)]), SEED)
    with pytest.raises(ValueError, match=r"column sector has values .*商业企业"):
        evolve_directory(directory.with_columns(sector=pl.lit("商业企业")), SEED)
    with pytest.raises(ValueError, match="lacks column"):
        evolve_directory(directory.drop("status"), SEED)


# --- directory defects -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def defective(directory: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    return inject_directory_defects(directory, SEED)


def test_directory_defects_all_kinds(
    directory: pl.DataFrame, defective: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    frame, truth = defective
    assert truth.schema == pl.Schema(DIRECTORY_DEFECT_SCHEMA)
    assert frame.schema == directory.schema  # canonical dtypes kept
    assert set(truth["defect"]) == set(DIRECTORY_DEFECT_KINDS)
    assert frame.height == directory.height + 1  # the duplicate institution
    again = inject_directory_defects(directory, SEED)
    assert again[0].equals(frame) and again[1].equals(truth)
    # No collateral edits: one edited row per truth row, the appended duplicate aside.
    head = frame.head(directory.height)
    edited = pl.DataFrame(
        {
            c: head[c].cast(pl.String).ne_missing(directory[c].cast(pl.String))
            for c in DIRECTORY_COLUMNS
        }
    ).select(pl.any_horizontal(pl.all()).sum())
    assert edited.item() == truth.height - 1


def test_directory_defects_are_in_the_frame(
    directory: pl.DataFrame, defective: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    frame, truth = defective
    columns = contract.table("directory")
    known = {c.name: {v.code for v in c.values} for c in columns.columns if c.values}
    known["district_code"] = set(load_districts()["district_code"])
    ids = set(frame["institution_id"])
    rows: dict[str, list[dict[str, object]]] = {}
    for row in frame.iter_rows(named=True):
        rows.setdefault(row["institution_id"], []).append(row)

    def one(code: object) -> dict[str, object]:
        assert isinstance(code, str) and len(rows[code]) == 1, code
        return rows[code][0]

    for code, defect, field in truth.select("institution_id", "defect", "field").iter_rows():
        if defect == "duplicate_code":
            assert len(rows[code]) == 2 and rows[code][0]["name"] != rows[code][1]["name"]
            continue
        row = one(code)
        parent = one(row["parent_id"]) if row["parent_id"] in ids else None
        if defect == "invalid_check_char":
            check = validate_credit_code(code)
            assert not check.is_valid and check.expected_check_char != code[-1]
            assert check.expected_organization_check_char == code[16]
        elif defect == "duplicate_institution":
            assert validate_credit_code(code).is_valid
            twins = frame.filter(
                (pl.col("name") == row["name"]) & (pl.col("address") == row["address"])
            )
            assert twins.height == 2 and twins["institution_id"].n_unique() == 2
        elif defect.startswith("unknown_"):
            assert isinstance(row[field], str) and row[field] not in known[field]
        elif defect == "parent_missing":
            assert row["parent_id"] not in ids and validate_credit_code(row["parent_id"]).is_valid
        elif defect in ("parent_dissolved", "parent_merged"):
            assert row["status"] == "active" and parent is not None
            assert parent["status"] == defect.removeprefix("parent_")
        elif defect == "parent_cycle":
            assert parent is not None and parent["parent_id"] == code
        elif defect == "level_above_parent":
            assert parent is not None
            assert (row["admin_level"], parent["admin_level"]) == ("municipal", "subdistrict")
        elif defect == "type_code_mismatch":
            assert row["institution_type"] == "agency" and code.startswith("12")
        elif defect == "enterprise_code":
            assert code.startswith("91") and validate_credit_code(code).is_valid
        elif defect == "merged_without_target":
            assert row["status"] == "merged" and row["merged_into_id"] is None
        elif defect == "required_empty":
            assert row[field] is None
        else:  # pragma: no cover
            raise AssertionError(f"untested defect {defect}")
    # Codes written by the injector are valid unless the defect is an invalid code.
    fine = frame.filter(
        ~pl.col("institution_id").is_in(
            truth.filter(pl.col("defect") == "invalid_check_char")["institution_id"].to_list()
        )
    )
    assert credit_codes_valid(fine["institution_id"].to_list()).all()


def test_directory_defects_kinds_and_errors(
    directory: pl.DataFrame, quarter: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    frame, truth = inject_directory_defects(directory, SEED, kinds=["parent_cycle"])
    assert set(truth["defect"]) == {"parent_cycle"} and truth.height == 2
    assert frame.height == directory.height
    _, evolved = inject_directory_defects(quarter[0], SEED)  # an evolved snapshot works too
    assert set(evolved["defect"]) == set(DIRECTORY_DEFECT_KINDS)
    with pytest.raises(ValueError, match="unknown defect kind"):
        inject_directory_defects(directory, SEED, kinds=["typo"])
    with pytest.raises(ValueError, match="too few"):
        inject_directory_defects(directory.with_columns(status=pl.lit("dissolved")), SEED)
