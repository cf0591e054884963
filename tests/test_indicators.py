"""Tests of energy_audit.indicators: the worked example, ratio-of-sums, frames and factors."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from energy_audit.errors import SettingsError, UnusableInputError
from energy_audit.factors import (
    ITEM_COLUMNS,
    co2_kg_per_canonical_unit,
    kgce_per_canonical_unit,
    load_coefficients,
)
from energy_audit.indicators import INDICATOR_COLUMNS, aggregate, indicators


def worked_example() -> pl.DataFrame:
    """domain.md §3, worked example (Tianjin, 2022)."""
    return pl.DataFrame(
        {
            "institution_id": ["11100000000013338W"],
            "year": [2022],
            "building_area_m2": [10_000.0],
            "occupants": [300],
            "electricity_kwh": [500_000.0],
            "natural_gas_m3": [20_000.0],
            "gasoline_l": [8_000.0],
            "water_m3": [6_000.0],
        }
    )


def test_worked_example_of_domain_md() -> None:
    # domain.md §3 worked example [derived]: 96.64 tce; 9.66 kgce/m²; 322.14 kgce/person;
    # 20.00 m³/person; CO2 at Tianjin 2022 factors ≈ 412.37 t, 41.24 kg/m².
    row = indicators(worked_example()).row(0, named=True)
    assert round(row["total_energy_tce"], 2) == 96.64
    assert round(row["energy_per_m2_kgce"], 2) == 9.66
    assert round(row["energy_per_capita_kgce"], 2) == 322.14
    assert round(row["water_per_capita_m3"], 2) == 20.00
    assert round(row["co2_t"], 2) == 412.37
    assert round(row["co2_per_m2_kg"], 2) == 41.24


def test_output_columns_and_input_unchanged() -> None:
    frame = worked_example()
    before = frame.clone()
    out = indicators(frame)
    assert_frame_equal(frame, before)
    assert out.columns == [*frame.columns, *INDICATOR_COLUMNS]
    assert out.schema["total_energy_tce"] == pl.Float64
    # running it again on its own output replaces the columns, same values
    assert_frame_equal(indicators(out), out)


def test_lazy_in_lazy_out() -> None:
    frame = worked_example()
    lazy = indicators(frame.lazy())
    assert isinstance(lazy, pl.LazyFrame)
    assert_frame_equal(lazy.collect(), indicators(frame))


def test_absent_and_null_quantities_count_zero() -> None:
    base = worked_example()
    absent = indicators(base)
    # every other energy column present, null ("not reported") or 0: same totals
    others = [c for c in ITEM_COLUMNS.values() if c not in base.columns]
    nulls = indicators(base.with_columns(pl.lit(None, pl.Float64).alias(c) for c in others))
    zeros = indicators(base.with_columns(pl.lit(0.0).alias(c) for c in others))
    for out in (nulls, zeros):
        assert_frame_equal(out.select(INDICATOR_COLUMNS), absent.select(INDICATOR_COLUMNS))
    # a null reported item counts 0: only the other two items remain
    gas_null = indicators(base.with_columns(pl.lit(None, pl.Float64).alias("natural_gas_m3")))
    assert gas_null["total_energy_tce"][0] == pytest.approx((61_450 + 8_000 * 1.074122) / 1000)


def test_every_energy_item_is_counted() -> None:
    one_of_each = pl.DataFrame(
        {"year": [2022], "building_area_m2": [1.0], "occupants": [1], "water_m3": [0.0]}
    ).with_columns(pl.lit(1.0).alias(c) for c in ITEM_COLUMNS.values())
    out = indicators(one_of_each).row(0, named=True)
    assert out["total_energy_tce"] * 1000 == pytest.approx(
        sum(kgce_per_canonical_unit(None, 2022).values())
    )
    assert out["co2_t"] * 1000 == pytest.approx(sum(co2_kg_per_canonical_unit(None, 2022).values()))


def test_pv_generation_is_not_subtracted() -> None:
    with_pv = worked_example().with_columns(pv_generation_kwh=pl.lit(100_000.0))
    assert indicators(with_pv)["total_energy_tce"][0] == pytest.approx(96.642976)


def test_zero_or_null_denominators_give_null() -> None:
    frame = pl.DataFrame(
        {
            "year": [2022, 2022, 2022, None],
            "building_area_m2": [0.0, None, 100.0, 100.0],
            "occupants": [None, 0, 10, 10],
            "electricity_kwh": [1000.0, 1000.0, 1000.0, 1000.0],
            "water_m3": [10.0, 10.0, None, 10.0],
        },
        schema_overrides={"year": pl.Int64},
    )
    out = indicators(frame)
    assert out["energy_per_m2_kgce"].to_list()[:2] == [None, None]
    assert out["co2_per_m2_kg"].to_list()[:2] == [None, None]
    assert out["energy_per_capita_kgce"].to_list()[:2] == [None, None]
    assert out["water_per_capita_m3"].to_list()[:3] == [None, None, None]
    assert out["energy_per_capita_kgce"][2] == pytest.approx(12.29)
    # no year: no factors, so no energy or CO2 figures; water per capita needs no factor
    assert all(out[c][3] is None for c in INDICATOR_COLUMNS if c != "water_per_capita_m3")
    assert out["water_per_capita_m3"][3] == 1.0
    assert not any(out.select(pl.col(INDICATOR_COLUMNS).is_infinite().any()).row(0))


def test_grid_factor_follows_the_year() -> None:
    frame = pl.DataFrame(
        {
            "year": [2020, 2021, 2022, 2023, 2024],
            "building_area_m2": [1.0] * 5,
            "occupants": [1] * 5,
            "electricity_kwh": [1000.0] * 5,
            "water_m3": [0.0] * 5,
        }
    )
    # Tianjin: its own 2022 factor serves every year (region before nation, factors.py)
    assert indicators(frame)["co2_t"].to_list() == pytest.approx([0.7041] * 5)
    # national: 2021 factor for 2020 (earliest row) and 2021, then 2022, then 2023 onwards
    national = indicators(frame, region_code="000000")["co2_t"].to_list()
    assert national == pytest.approx([0.5568, 0.5568, 0.5366, 0.5306, 0.5306])


def test_vectorised_lookup_matches_the_scalar_rules() -> None:
    years = list(range(2018, 2026))
    frame = pl.DataFrame(
        {"year": years, "building_area_m2": [1.0] * 8, "occupants": [1] * 8, "water_m3": 0.0}
    ).with_columns(pl.lit(1.0).alias(c) for c in ITEM_COLUMNS.values())
    out = indicators(frame, region_code="000000")
    for year, co2_t in zip(years, out["co2_t"], strict=True):
        expected = sum(co2_kg_per_canonical_unit(None, year, "000000").values()) / 1000
        assert co2_t == pytest.approx(expected)


def test_user_coefficient_table_changes_the_result() -> None:
    # Some provincial standards use 1.2143 kgce/m³ for natural gas (domain.md §2).
    provincial = load_coefficients().with_columns(
        pl.when(pl.col("item") == "natural_gas")
        .then(pl.lit(1.2143))
        .otherwise(pl.col("value"))
        .alias("value")
    )
    out = indicators(worked_example(), coefficients=provincial)
    expected = (500_000 * 0.1229 + 20_000 * 1.2143 + 8_000 * 1.4714 * 0.73) / 1000
    assert out["total_energy_tce"][0] == pytest.approx(expected)
    assert round(out["total_energy_tce"][0], 2) == 94.33  # not 96.64


def test_bad_user_table_raises_settings_error() -> None:
    bad = load_coefficients().with_columns(pl.lit("kgce/kg").alias("unit"))
    with pytest.raises(SettingsError, match="不能用于 electricity") as info:
        indicators(worked_example(), coefficients=bad)
    assert "cannot apply to electricity" in info.value.message_en
    with pytest.raises(SettingsError, match="region_code"):
        indicators(worked_example(), region_code="tianjin")


def test_unusable_returns() -> None:
    with pytest.raises(
        UnusableInputError, match="缺少计算指标所需的列 occupants（用能人数）"
    ) as info:
        indicators(worked_example().drop("occupants"))
    assert "lacks column(s) occupants" in info.value.message_en
    with pytest.raises(UnusableInputError, match="year 列（统计年度）应为整数类型") as info:
        indicators(worked_example().with_columns(pl.col("year").cast(pl.String)))
    assert "year must be an integer" in info.value.message_en
    with pytest.raises(UnusableInputError, match="electricity_kwh（String）应为数值类型") as info:
        indicators(worked_example().with_columns(pl.col("electricity_kwh").cast(pl.String)))
    assert "electricity_kwh (String) must be numeric" in info.value.message_en


def test_unusable_returns_name_the_column_in_both_languages() -> None:
    with pytest.raises(UnusableInputError) as info:
        indicators(worked_example().drop("water_m3"))
    for message in (info.value.message_zh, info.value.message_en):
        assert "water_m3" in message
    assert str(info.value) == info.value.message_zh
    assert info.value.message("en") == info.value.message_en


# ---------------------------------------------------------------------------------------------
# aggregation: ratios of sums


def three_institutions() -> pl.DataFrame:
    """A big, a small and a middle institution; other_energy_tce (1000 kgce/tce) keeps it exact."""
    return pl.DataFrame(
        {
            "institution_id": ["A", "B", "C"],
            "district_code": ["120101", "120101", "120102"],
            "year": [2022, 2022, 2022],
            "building_area_m2": [50_000.0, 1_000.0, 5_000.0],
            "occupants": [1000, 20, 100],
            "other_energy_tce": [100.0, 10.0, 30.0],
            "water_m3": [40_000.0, 500.0, 2_000.0],
        }
    )


def test_city_aggregate_is_a_ratio_of_sums() -> None:
    frame = three_institutions()
    city = aggregate(frame).row(0, named=True)
    # by hand: Σ energy 140 tce = 140,000 kgce; Σ occupants 1,120; Σ area 56,000 m²;
    # Σ water 42,500 m³; Σ CO2 = 140 tce × 2,660 kg/tce (packaged other_energy factor).
    assert city["institutions"] == 3
    assert city["total_energy_tce"] == pytest.approx(140.0)
    assert city["energy_per_capita_kgce"] == pytest.approx(125.0)
    assert city["energy_per_m2_kgce"] == pytest.approx(2.5)
    assert city["water_per_capita_m3"] == pytest.approx(42_500 / 1_120)
    assert city["co2_per_m2_kg"] == pytest.approx(140 * 2_660 / 56_000)
    # the mean of the institutions' ratios is a different (wrong) answer
    rows = indicators(frame)
    assert rows["energy_per_capita_kgce"].mean() == pytest.approx(300.0)
    assert rows["energy_per_m2_kgce"].mean() == pytest.approx(6.0)
    assert city["energy_per_capita_kgce"] != pytest.approx(300.0)


def test_district_aggregate_by_hand() -> None:
    out = aggregate(three_institutions(), by="district_code")
    assert out["district_code"].to_list() == ["120101", "120102"]
    assert out["year"].to_list() == [2022, 2022]
    first = out.row(0, named=True)
    assert first["institutions"] == 2
    assert first["occupants"] == 1_020
    assert first["energy_per_capita_kgce"] == pytest.approx(110_000 / 1_020)  # not (100+500)/2
    assert first["energy_per_m2_kgce"] == pytest.approx(110_000 / 51_000)  # not (2+10)/2


def test_aggregate_lazy_and_precomputed_indicators() -> None:
    frame = three_institutions()
    eager = aggregate(frame, ["district_code"])
    lazy = aggregate(frame.lazy(), ["district_code"])
    assert isinstance(lazy, pl.LazyFrame)
    assert_frame_equal(lazy.collect(), eager)
    assert_frame_equal(aggregate(indicators(frame), ["district_code"]), eager)
    assert_frame_equal(aggregate(indicators(frame.lazy()), ["district_code"]).collect(), eager)


def test_aggregate_keeps_years_apart() -> None:
    two_years = pl.concat(
        [three_institutions(), three_institutions().with_columns(year=pl.lit(2023, pl.Int64))]
    )
    per_year = aggregate(two_years)
    assert per_year["year"].to_list() == [2022, 2023]
    assert per_year["total_energy_tce"].to_list() == pytest.approx([140.0, 140.0])
    pooled = aggregate(two_years, per_year=False).row(0, named=True)
    assert pooled["total_energy_tce"] == pytest.approx(280.0)
    assert pooled["institutions"] == 3
    assert pooled["energy_per_capita_kgce"] == pytest.approx(125.0)


def test_aggregate_uses_matching_rows_for_each_intensity() -> None:
    # C reports no occupants: its energy counts in the total and per m², not per capita.
    frame = three_institutions().with_columns(
        pl.when(pl.col("institution_id") == "C")
        .then(None)
        .otherwise(pl.col("occupants"))
        .alias("occupants")
    )
    city = aggregate(frame).row(0, named=True)
    assert city["total_energy_tce"] == pytest.approx(140.0)
    assert city["occupants"] == 1_020
    assert city["energy_per_capita_kgce"] == pytest.approx(110_000 / 1_020)
    assert city["energy_per_m2_kgce"] == pytest.approx(2.5)


def test_aggregate_group_without_denominator_is_null() -> None:
    frame = three_institutions().with_columns(occupants=pl.lit(0))
    assert aggregate(frame)["energy_per_capita_kgce"].to_list() == [None]


def test_aggregate_input_unchanged_and_bad_keys() -> None:
    frame = three_institutions()
    before = frame.clone()
    aggregate(frame, "district_code")
    assert_frame_equal(frame, before)
    with pytest.raises(UnusableInputError, match="待汇总的数据缺少列 sector") as info:
        aggregate(frame, ["sector"])
    assert "lacks column(s) sector" in info.value.message_en


positive = st.floats(min_value=1.0, max_value=1e7, allow_nan=False)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(positive, st.integers(1, 10_000), positive, positive, st.integers(2018, 2025)),
        min_size=1,
        max_size=8,
    )
)
def test_groups_of_one_reproduce_the_row_indicators(rows: list[tuple]) -> None:
    frame = pl.DataFrame(
        rows,
        schema=["building_area_m2", "occupants", "electricity_kwh", "water_m3", "year"],
        orient="row",
    ).with_row_index("institution_id")
    each = aggregate(frame, "institution_id", per_year=False).sort("institution_id")
    own = indicators(frame).sort("institution_id")
    for column in ("energy_per_capita_kgce", "energy_per_m2_kgce", "water_per_capita_m3"):
        assert each[column].to_list() == pytest.approx(own[column].to_list(), rel=1e-12)
    assert each["co2_per_m2_kg"].to_list() == pytest.approx(own["co2_per_m2_kg"].to_list())
