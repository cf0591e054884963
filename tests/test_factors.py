"""Tests of energy_audit.factors: the packaged tables, the selection rules, user tables."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest

from energy_audit import factors
from energy_audit.errors import SettingsError
from energy_audit.factors import (
    ITEM_COLUMNS,
    co2_kg_per_canonical_unit,
    density_kg_per_l,
    factor_periods,
    factors_used,
    kgce_per_canonical_unit,
    load_coefficients,
    load_emission_factors,
)


def _write_csv(frame: pl.DataFrame, path: Path) -> Path:
    frame.write_csv(path)
    return path


# ---------------------------------------------------------------------------------------------
# packaged tables


def test_item_columns_follow_the_contract() -> None:
    assert dict(ITEM_COLUMNS) == {
        "electricity": "electricity_kwh",
        "natural_gas": "natural_gas_m3",
        "coal": "coal_t",
        "gasoline": "gasoline_l",
        "diesel": "diesel_l",
        "lpg": "lpg_kg",
        "heat": "heat_gj",
        "other_energy": "other_energy_tce",
    }
    assert "pv_generation_kwh" not in ITEM_COLUMNS.values()  # PV carries no factor


def test_packaged_tables_are_cited_and_tagged() -> None:
    for table in (load_coefficients(), load_emission_factors()):
        assert table["source"].str.len_chars().min() > 10
        assert set(table["tag"]) <= {"src", "derived", "unverified"}
        assert set(table["item"]) == set(ITEM_COLUMNS)
    coef = load_coefficients()
    assert set(coef["table_version"]) == {"GB/T 2589-2020"}
    # domain.md §2 tags: LPG and heat coefficients are not confirmed against the standard.
    unverified = coef.filter(pl.col("tag") == "unverified")["item"].to_list()
    assert sorted(unverified) == ["heat", "lpg"]


def test_packaged_table_is_a_copy() -> None:
    first = load_coefficients()
    first[0, "value"] = 99.0
    assert load_coefficients()[0, "value"] == pytest.approx(0.1229)


def test_kgce_per_canonical_unit_packaged() -> None:
    # domain.md §2 (GB/T 2589-2020): per-kg values composed with the density or × 1000.
    got = kgce_per_canonical_unit(None, 2022)
    expected = {
        "electricity_kwh": 0.1229,
        "natural_gas_m3": 1.3300,
        "coal_t": 714.3,
        "gasoline_l": 1.4714 * 0.73,
        "diesel_l": 1.4571 * 0.85,
        "lpg_kg": 1.7143,
        "heat_gj": 34.12,
        "other_energy_tce": 1000.0,
    }
    assert got == pytest.approx(expected, rel=1e-12)
    assert got["electricity_kwh"] == 0.1229  # equal units: no rounding noise


def test_coefficients_before_valid_from_use_the_earliest_row() -> None:
    assert kgce_per_canonical_unit(None, 2015) == kgce_per_canonical_unit(None, 2020)


def test_density() -> None:
    assert density_kg_per_l(None, "gasoline") == 0.73
    assert density_kg_per_l(None, "diesel", 2010) == 0.85
    with pytest.raises(SettingsError, match="折标系数表：表中没有 'lpg' 的密度") as info:
        density_kg_per_l(None, "lpg")
    assert "no density of 'lpg'" in info.value.message_en


# ---------------------------------------------------------------------------------------------
# emission factors: region, then year


@pytest.mark.parametrize(
    ("region", "year", "expected"),
    [
        # Tianjin has one row (2022, 0.7041): it serves every year, 2021 included, because a
        # region's own rows come before the national ones (documented rule of factors.py).
        ("120000", 2021, 0.7041),
        ("120000", 2022, 0.7041),
        ("120000", 2024, 0.7041),
        # a Tianjin district falls back to its province, not to the nation
        ("120101", 2021, 0.7041),
        # national rows: latest valid_from <= year, else the earliest (2021)
        ("000000", 2019, 0.5568),
        ("000000", 2021, 0.5568),
        ("000000", 2022, 0.5366),
        ("000000", 2023, 0.5306),
        ("000000", 2030, 0.5306),
        # a province without rows gets the national average of the year
        ("310000", 2022, 0.5366),
    ],
)
def test_grid_factor_by_region_and_year(region: str, year: int, expected: float) -> None:
    assert co2_kg_per_canonical_unit(None, year, region)["electricity_kwh"] == expected


def test_other_items_fall_back_to_national_rows() -> None:
    got = co2_kg_per_canonical_unit(None, 2022, "120000")
    assert got["natural_gas_m3"] == 2.162
    assert got["gasoline_l"] == 2.135
    assert got["coal_t"] == 1870.0
    assert set(got) == set(ITEM_COLUMNS.values())


def test_bad_region_code() -> None:
    with pytest.raises(SettingsError, match="'1200' 应为 6 位数字的 GB/T 2260 区划代码") as info:
        co2_kg_per_canonical_unit(None, 2022, "1200")
    assert "6-digit" in info.value.message_en


def test_factor_per_mass_of_a_litre_column_uses_the_density() -> None:
    table = load_emission_factors().with_columns(
        pl.when(pl.col("item") == "gasoline")
        .then(pl.lit(2.925))
        .otherwise(pl.col("value"))
        .alias("value"),
        pl.when(pl.col("item") == "gasoline")
        .then(pl.lit("t CO2/t"))
        .otherwise(pl.col("unit"))
        .alias("unit"),
    )
    got = co2_kg_per_canonical_unit(table, 2022)
    assert got["gasoline_l"] == pytest.approx(2.925 * 0.73)


def test_region_without_any_row_for_an_item() -> None:
    table = load_emission_factors().with_columns(
        pl.when(pl.col("item") == "electricity")
        .then(pl.lit("310000"))
        .otherwise(pl.col("region_code"))
        .alias("region_code")
    )
    table = table.unique(["item", "region_code", "valid_from"], maintain_order=True)
    with pytest.raises(
        SettingsError, match="区划 120000 及 000000 均没有 electricity 的排放因子"
    ) as info:
        co2_kg_per_canonical_unit(table, 2022, "120000")
    assert "no electricity factor for region 120000" in info.value.message_en


# ---------------------------------------------------------------------------------------------
# records of what was used


def test_factors_used_names_the_rows() -> None:
    used = factors_used(2022)
    assert used.columns == list(factors.USED_COLUMNS)
    grid = used.filter((pl.col("kind") == "co2_kg_per_unit") & (pl.col("item") == "electricity"))
    assert grid.select("region_code", "value", "valid_from", "unit").row(0) == (
        "120000",
        0.7041,
        2022,
        "kg CO2/kWh",
    )
    dens = used.filter(pl.col("kind") == "density_kg_per_l")
    assert sorted(dens["item"]) == ["diesel", "gasoline"]
    assert used.filter(pl.col("kind") != "co2_kg_per_unit")["region_code"].null_count() == 10
    assert used.height == 8 + 2 + 8


def test_factors_used_several_years() -> None:
    used = factors_used([2023, 2021, 2021], region_code="000000")
    grid = used.filter((pl.col("kind") == "co2_kg_per_unit") & (pl.col("item") == "electricity"))
    assert grid.select("year", "value").rows() == [(2021, 0.5568), (2023, 0.5306)]


def test_factor_periods() -> None:
    assert len(factor_periods()) == 1  # Tianjin: one grid factor, one coefficient edition
    periods = factor_periods(region_code="000000")
    assert [p.from_year for p in periods] == [2020, 2022, 2023]
    assert [p.co2_kg_per_unit["electricity_kwh"] for p in periods] == [0.5568, 0.5366, 0.5306]


# ---------------------------------------------------------------------------------------------
# user tables


def test_user_csv_with_a_second_edition(tmp_path: Path) -> None:
    newer = load_coefficients().filter(pl.col("item") == "natural_gas")
    newer = newer.with_columns(
        value=pl.lit(1.2143), valid_from=pl.lit(2023, pl.Int64), table_version=pl.lit("local")
    )
    path = _write_csv(pl.concat([load_coefficients(), newer]), tmp_path / "coef.csv")
    assert kgce_per_canonical_unit(path, 2022)["natural_gas_m3"] == 1.33
    assert kgce_per_canonical_unit(str(path), 2024)["natural_gas_m3"] == 1.2143


def test_user_parquet_and_dataframe(tmp_path: Path) -> None:
    path = tmp_path / "ef.parquet"
    load_emission_factors().write_parquet(path)
    assert load_emission_factors(path).equals(load_emission_factors())
    assert load_emission_factors(load_emission_factors().lazy()).equals(load_emission_factors())


def test_user_csv_in_gb18030(tmp_path: Path) -> None:
    path = tmp_path / "coef.csv"
    text = load_coefficients().write_csv()
    path.write_bytes(text.encode("gb18030"))
    assert load_coefficients(path).equals(load_coefficients())


def _bad_coefficients(tmp_path: Path, **changes: object) -> Path:
    """The packaged table with row 0 (line 2 of the CSV) changed."""
    table = load_coefficients().with_columns(pl.col(pl.Float64, pl.Int64).cast(pl.String))
    for column, value in changes.items():
        table[0, column] = value
    return _write_csv(table, tmp_path / "bad.csv")


@pytest.mark.parametrize(
    ("changes", "message_zh", "message_en"),
    [
        (
            {"item": "eletricity"},
            r"第 2 行：未知的能源品种 item 'eletricity'",
            r"line 2: unknown item 'eletricity'",
        ),
        (
            {"value": "abc"},
            r"第 2 行：value 的值 'abc' 不是数字",
            r"line 2: value 'abc' is not a number",
        ),
        (
            {"value": "-0.1"},
            r"第 2 行：electricity 的 value -0\.1 应为有限数且 > 0",
            r"line 2: value -0.1 of electricity must be finite and > 0",
        ),
        (
            {"valid_from": "2020.5"},
            r"第 2 行：valid_from 的值 '2020\.5' 不是整数",
            r"line 2: valid_from '2020.5' is not an integer",
        ),
        (
            {"unit": "kgce/kg"},
            r"第 2 行：单位 'kgce/kg' 不能用于 electricity：其填报列 electricity_kwh",
            r"line 2: unit 'kgce/kg' cannot apply to electricity",
        ),
        (
            {"unit": "kWh"},
            r"第 2 行：单位 'kWh' 不是“分子/分母”的形式",
            r"line 2: unit 'kWh' is not of the form numerator/denominator",
        ),
        (
            {"unit": "kgce/furlong"},
            r"'furlong' 不是 schemas/units\.toml 中的单位",
            r"'furlong' is not a unit",
        ),
        ({"tag": "maybe"}, r"第 2 行：tag 'maybe' 不是", r"line 2: tag 'maybe'"),
        ({"kind": "price"}, r"第 2 行：kind 'price' 不是", r"line 2: kind 'price'"),
        ({"source": ""}, r"第 2 行：source 为空", r"line 2: empty source"),
    ],
)
def test_bad_user_coefficients(
    tmp_path: Path, changes: dict[str, str], message_zh: str, message_en: str
) -> None:
    path = _bad_coefficients(tmp_path, **changes)
    with pytest.raises(SettingsError, match=r"折标系数表 .*bad\.csv 无法使用（") as info:
        load_coefficients(path)
    assert re.search(r"coefficients table .*bad\.csv cannot be used", info.value.message_en)
    with pytest.raises(SettingsError, match=message_zh) as info:
        kgce_per_canonical_unit(path, 2022)
    assert re.search(message_en, info.value.message_en)


def test_bad_user_coefficients_table_level(tmp_path: Path) -> None:
    coef = load_coefficients()
    with pytest.raises(SettingsError, match=r"折标系数表（DataFrame）：缺少列 tag；") as info:
        load_coefficients(coef.drop("tag"))
    assert "missing column(s) tag" in info.value.message_en
    with pytest.raises(
        SettingsError, match=r"item='coal', kind='kgce_per_unit', valid_from=2020 重复出现"
    ) as info:
        load_coefficients(pl.concat([coef, coef.filter(pl.col("item") == "coal")]))
    assert "item='coal', kind='kgce_per_unit', valid_from=2020 repeats" in info.value.message_en
    with pytest.raises(SettingsError, match="表中没有能源品种 heat 的 kgce_per_unit 行") as info:
        load_coefficients(coef.filter(pl.col("item") != "heat"))
    assert "no kgce_per_unit row for item(s) heat" in info.value.message_en
    no_density = coef.filter(
        ~((pl.col("item") == "diesel") & (pl.col("kind") == "density_kg_per_l"))
    )
    with pytest.raises(SettingsError, match="请为 diesel 添加一行 density_kg_per_l") as info:
        load_coefficients(no_density)
    assert "add a density_kg_per_l row for diesel" in info.value.message_en
    with pytest.raises(SettingsError, match="数据第 1 行：value 为空") as info:
        load_coefficients(coef.with_columns(pl.lit(None, pl.Float64).alias("value")))
    assert "row 1: empty value" in info.value.message_en


def test_bad_user_files(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"absent\.csv：无法读取文件") as info:
        load_coefficients(tmp_path / "absent.csv")
    assert "cannot read the file" in info.value.message_en
    with pytest.raises(SettingsError, match=r"排放因子表 .*factors\.xlsx：未知的文件类型 '\.xlsx'"):
        load_emission_factors(tmp_path / "factors.xlsx")


def test_bad_user_emission_factors() -> None:
    ef = load_emission_factors()
    with pytest.raises(SettingsError, match=r"数据第 1 行：region_code '12' 应为 6 位数字") as info:
        load_emission_factors(ef.with_columns(pl.lit("12").alias("region_code")))
    assert "row 1: region_code '12' must be 6 digits" in info.value.message_en
    with pytest.raises(
        SettingsError, match=r"数据第 1 行：单位 'kgce/kWh' 应为每单位能源的二氧化碳质量"
    ) as info:
        load_emission_factors(ef.with_columns(pl.lit("kgce/kWh").alias("unit")))
    assert "row 1: unit 'kgce/kWh' must be mass of CO2" in info.value.message_en
    with pytest.raises(SettingsError, match="表中没有能源品种 lpg 的行"):
        load_emission_factors(ef.filter(pl.col("item") != "lpg"))
    with pytest.raises(SettingsError, match="应为有限数且 ≥ 0"):
        load_emission_factors(ef.with_columns(pl.lit(float("nan")).alias("value")))


def test_factor_table_messages_name_the_same_file_and_row_in_both_languages(
    tmp_path: Path,
) -> None:
    path = _bad_coefficients(tmp_path, value="abc")
    with pytest.raises(SettingsError) as info:
        load_coefficients(path)
    error = info.value
    assert str(error) == error.message("zh") == error.message_zh
    for message in (error.message_zh, error.message_en):
        assert str(path) in message
        assert "value" in message and "'abc'" in message
    assert "第 2 行" in error.message_zh and "line 2" in error.message_en
    assert "不是数字" in error.message_zh and "is not a number" in error.message_en
