"""Tests of energy_audit.outliers.yoy: hand-made slips, robust z by hand, synthetic recall."""

from __future__ import annotations

import functools
import math
import re

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from scipy import stats

from energy_audit.errors import SettingsError, UnusableInputError
from energy_audit.factors import ITEM_COLUMNS, density_kg_per_l
from energy_audit.outliers import yoy
from energy_audit.outliers.peer import MAD_TO_SIGMA
from energy_audit.outliers.yoy import (
    DECIMAL_SLIP_FACTORS,
    LONG_COLUMNS,
    MEAN_AD_TO_SD,
    year_over_year,
    year_over_year_long,
)
from energy_audit.slips import slip_factors_for
from energy_audit.synthetic import make_directory, make_returns

QUANTITIES = [*ITEM_COLUMNS.values(), "water_m3"]
PER_COLUMN = (
    "previous",
    "ratio",
    "log_ratio",
    "slip",
    "suggested",
    "reverts",
    "z",
    "p",
    "log_ratio_two_back",
)


def returns(rows: list[tuple[str, int, float | None]], column: str = "electricity_kwh"):
    """A returns frame from (institution, year, value) rows."""
    ids, years, values = zip(*rows, strict=True)
    return pl.DataFrame(
        {"institution_id": list(ids), "year": list(years), column: list(values)},
        schema={"institution_id": pl.String, "year": pl.Int64, column: pl.Float64},
    )


def row_of(out: pl.DataFrame, institution: str, year: int) -> dict:
    return out.filter((pl.col("institution_id") == institution) & (pl.col("year") == year)).row(
        0, named=True
    )


# --------------------------------------------------------------------------------------------
# Hand-made unit slips


def test_wan_kwh_typed_under_kwh_is_found_with_its_factor_and_correction() -> None:
    # domain.md §6: 万千瓦时 typed under 千瓦时 → ÷10,000. 500,000 kWh last year, 50 this year.
    out = year_over_year(returns([("A", 2022, 500_000.0), ("A", 2023, 50.0)]), ["electricity_kwh"])
    row = row_of(out, "A", 2023)
    assert row["yoy_previous_year"] == 2022
    assert row["yoy_electricity_kwh_previous"] == 500_000.0
    assert row["yoy_electricity_kwh_ratio"] == pytest.approx(1e-4)
    assert row["yoy_electricity_kwh_log_ratio"] == pytest.approx(math.log(1e-4))
    assert row["yoy_electricity_kwh_slip"] == 1e-4
    assert row["yoy_electricity_kwh_suggested"] == pytest.approx(500_000.0)
    assert row["yoy_electricity_kwh_reverts"] is None  # no return two back to tell the direction
    first = row_of(out, "A", 2022)
    assert first["yoy_previous_year"] is None
    assert all(first[f"yoy_electricity_kwh_{s}"] is None for s in PER_COLUMN if s != "reverts")


def test_mj_typed_under_gj_is_a_factor_1000() -> None:
    # heat in MJ under 百万千焦 (GJ): ×1,000; a 2 % real change stays within the tolerance
    out = year_over_year(
        returns([("A", 2022, 1_200.0), ("A", 2023, 1_176_000.0)], "heat_gj"), ["heat_gj"]
    )
    row = row_of(out, "A", 2023)
    assert row["yoy_heat_gj_slip"] == 1000.0
    assert row["yoy_heat_gj_suggested"] == pytest.approx(1_176.0)


def test_kg_for_t_of_coal_is_a_factor_1000() -> None:
    out = year_over_year(
        returns([("A", 2022, 120.5), ("A", 2023, 118_300.0)], "coal_t"), ["coal_t"]
    )
    row = row_of(out, "A", 2023)
    assert row["yoy_coal_t_slip"] == 1000.0
    assert row["yoy_coal_t_suggested"] == pytest.approx(118.3)


@pytest.mark.parametrize(("column", "item"), [("gasoline_l", "gasoline"), ("diesel_l", "diesel")])
def test_kilograms_of_fuel_typed_under_litres_match_the_density(column: str, item: str) -> None:
    density = density_kg_per_l(None, item)  # 0.73 gasoline, 0.85 diesel (factors table)
    litres = 8_000.0
    fuel = {column: slip_factors_for(column)}
    out = year_over_year(
        returns([("A", 2022, litres), ("A", 2023, litres * density)], column),
        [column],
        slip_factors=fuel,
    )
    row = row_of(out, "A", 2023)
    assert row[f"yoy_{column}_slip"] == pytest.approx(density)
    assert row[f"yoy_{column}_suggested"] == pytest.approx(litres)
    # and the reverse (litres where kilograms were typed last year): 1 / density
    back = year_over_year(
        returns([("A", 2022, litres * density), ("A", 2023, litres)], column),
        [column],
        slip_factors=fuel,
    )
    assert row_of(back, "A", 2023)[f"yoy_{column}_slip"] == pytest.approx(1 / density)


def test_density_factors_only_for_litre_columns() -> None:
    assert slip_factors_for("electricity_kwh") == tuple(sorted(DECIMAL_SLIP_FACTORS))
    assert slip_factors_for("not_a_contract_column") == tuple(sorted(DECIMAL_SLIP_FACTORS))
    gasoline = density_kg_per_l(None, "gasoline")
    assert slip_factors_for("gasoline_l") == tuple(
        sorted([*DECIMAL_SLIP_FACTORS, gasoline, 1 / gasoline])
    )
    # kilograms of electricity-like columns: a ratio 0.73 is no slip there
    out = year_over_year(returns([("A", 2022, 8_000.0), ("A", 2023, 5_840.0)]), ["electricity_kwh"])
    assert row_of(out, "A", 2023)["yoy_electricity_kwh_slip"] is None


def test_normal_change_has_no_slip() -> None:
    out = year_over_year(
        returns([("A", 2022, 100_000.0), ("A", 2023, 108_000.0)]), ["electricity_kwh"]
    )
    row = row_of(out, "A", 2023)
    assert row["yoy_electricity_kwh_ratio"] == pytest.approx(1.08)
    assert row["yoy_electricity_kwh_slip"] is None
    assert row["yoy_electricity_kwh_suggested"] is None


def test_tolerance_is_relative_to_the_factors_log() -> None:
    # tolerance 0.15: factor 10 matches ratios 10^0.85 ≈ 7.08 .. 10^1.15 ≈ 14.1
    frame = returns(
        [("A", 2022, 1_000.0), ("A", 2023, 7_200.0), ("B", 2022, 1_000.0), ("B", 2023, 6_900.0)]
    )
    out = year_over_year(frame, ["electricity_kwh"])
    assert row_of(out, "A", 2023)["yoy_electricity_kwh_slip"] == 10.0
    assert row_of(out, "B", 2023)["yoy_electricity_kwh_slip"] is None
    wider = year_over_year(frame, ["electricity_kwh"], tolerance=0.2)
    assert row_of(wider, "B", 2023)["yoy_electricity_kwh_slip"] == 10.0


def test_given_slip_factors_replace_the_defaults() -> None:
    frame = returns(
        [("A", 2022, 1_000.0), ("A", 2023, 3_000.0), ("B", 2022, 10.0), ("B", 2023, 1e5)]
    )
    out = year_over_year(frame, ["electricity_kwh"], slip_factors=[3.0])
    assert row_of(out, "A", 2023)["yoy_electricity_kwh_slip"] == 3.0
    assert row_of(out, "B", 2023)["yoy_electricity_kwh_slip"] is None
    per_column = year_over_year(frame, ["electricity_kwh"], slip_factors={"electricity_kwh": [3.0]})
    assert_frame_equal(per_column, out)


def test_zero_or_null_previous_gives_no_ratio_never_inf() -> None:
    frame = returns(
        [
            ("A", 2022, 0.0),
            ("A", 2023, 500.0),
            ("B", 2022, None),
            ("B", 2023, 500.0),
            ("C", 2022, 500.0),
            ("C", 2023, 0.0),
            ("D", 2022, 500.0),
            ("D", 2023, None),
            ("E", 2022, 500.0),
            ("E", 2023, -5.0),
        ]
    )
    out = year_over_year(frame, ["electricity_kwh"])
    for institution in "ABDE":
        row = row_of(out, institution, 2023)
        assert row["yoy_electricity_kwh_ratio"] is None
        assert row["yoy_electricity_kwh_log_ratio"] is None
        assert row["yoy_electricity_kwh_slip"] is None
    c = row_of(out, "C", 2023)
    assert c["yoy_electricity_kwh_ratio"] == 0.0
    assert c["yoy_electricity_kwh_log_ratio"] is None
    numbers = out.select(pl.col(pl.Float64))
    assert (
        not numbers.select(pl.any_horizontal(pl.all().is_infinite().fill_null(False)))
        .to_series()
        .any()
    )
    assert (
        not numbers.select(pl.any_horizontal(pl.all().is_nan().fill_null(False))).to_series().any()
    )


def test_a_change_that_undoes_last_years_slip_is_not_a_slip() -> None:
    # 2022 is typed in 万千瓦时: its own row carries the slip; 2023 returns to the 2021 level
    frame = returns([("A", 2021, 480_000.0), ("A", 2022, 49.0), ("A", 2023, 510_000.0)])
    out = year_over_year(frame, ["electricity_kwh"])
    assert row_of(out, "A", 2022)["yoy_electricity_kwh_slip"] == 1e-4
    row = row_of(out, "A", 2023)
    assert row["yoy_electricity_kwh_reverts"] is True
    assert row["yoy_electricity_kwh_slip"] is None
    assert row["yoy_electricity_kwh_suggested"] is None
    # without a return two years back, the direction cannot be told: the change is flagged
    out = year_over_year(frame.filter(pl.col("year") > 2021), ["electricity_kwh"])
    assert row_of(out, "A", 2023)["yoy_electricity_kwh_slip"] == 1e4
    assert row_of(out, "A", 2023)["yoy_electricity_kwh_reverts"] is None


def test_the_return_two_back_tells_which_year_slipped_despite_ordinary_changes() -> None:
    # gasoline in kg typed under litres (×0.73, domain.md §2) with ordinary changes around it
    this_year = year_over_year(
        returns([("A", 2021, 1_000.0), ("A", 2022, 1_040.0), ("A", 2023, 1_040.0 * 0.73 * 0.98)],
                "gasoline_l"),
        ["gasoline_l"],
        slip_factors={"gasoline_l": slip_factors_for("gasoline_l")},
    )  # fmt: skip
    row = row_of(this_year, "A", 2023)
    assert row["yoy_gasoline_l_slip"] == pytest.approx(0.73)
    assert row["yoy_gasoline_l_reverts"] is False
    # 2022 slipped (×0.73 with a 3 % real rise); 2023 is back at the 2021 level, give or take 1 %
    last_year = year_over_year(
        returns([("A", 2021, 1_000.0), ("A", 2022, 730.0 * 1.03), ("A", 2023, 1_010.0)],
                "gasoline_l"),
        ["gasoline_l"],
        slip_factors={"gasoline_l": slip_factors_for("gasoline_l")},
    )  # fmt: skip
    assert row_of(last_year, "A", 2022)["yoy_gasoline_l_slip"] == pytest.approx(0.73)
    row = row_of(last_year, "A", 2023)
    assert row["yoy_gasoline_l_reverts"] is True
    assert row["yoy_gasoline_l_slip"] is None
    # no factor matched: nothing to revert
    assert row_of(last_year, "A", 2021)["yoy_gasoline_l_reverts"] is False


def test_previous_return_is_the_latest_earlier_year() -> None:
    frame = returns([("A", 2020, 90.0), ("A", 2021, 100.0), ("A", 2023, 120.0), ("B", 2023, 5.0)])
    out = year_over_year(frame.reverse(), ["electricity_kwh"])  # row order does not matter
    assert row_of(out, "A", 2023)["yoy_previous_year"] == 2021
    assert row_of(out, "A", 2023)["yoy_electricity_kwh_previous"] == 100.0
    assert row_of(out, "B", 2023)["yoy_previous_year"] is None
    assert out["institution_id"].to_list() == frame.reverse()["institution_id"].to_list()


def test_history_supplies_previous_years_and_wins_over_the_frame() -> None:
    current = returns([("A", 2023, 50.0), ("B", 2023, 99.0)])
    history = returns([("A", 2022, 500_000.0), ("B", 2021, 100.0)])
    out = year_over_year(current, ["electricity_kwh"], history=history)
    assert row_of(out, "A", 2023)["yoy_electricity_kwh_slip"] == 1e-4
    assert row_of(out, "B", 2023)["yoy_previous_year"] == 2021
    assert out.height == 2
    # a year in both: the history's (verified) figure is the reference
    both = returns([("A", 2022, 480.0), ("A", 2023, 50.0)])
    out = year_over_year(both, ["electricity_kwh"], history=history)
    assert row_of(out, "A", 2023)["yoy_electricity_kwh_previous"] == 500_000.0
    # a quantity absent from the history gives no previous value
    out = year_over_year(
        current.with_columns(water_m3=pl.lit(10.0)),
        ["electricity_kwh", "water_m3"],
        history=history,
    )
    assert row_of(out, "A", 2023)["yoy_water_m3_previous"] is None


def test_duplicated_returns_both_get_the_previous_year() -> None:
    frame = returns(
        [("A", 2022, 100.0), ("A", 2022, 300.0), ("A", 2023, 110.0), ("A", 2023, 110.0)]
    )
    out = year_over_year(frame, ["electricity_kwh"])
    assert out.height == 4
    later = out.filter(pl.col("year") == 2023)
    assert later["yoy_electricity_kwh_previous"].to_list() == [100.0, 100.0]  # first of 2022


# --------------------------------------------------------------------------------------------
# Robust z and p, by hand


def five_changes(log_ratios: list[float]) -> pl.DataFrame:
    rows = []
    for i, lr in enumerate(log_ratios):
        rows += [(f"I{i}", 2022, 1_000.0), (f"I{i}", 2023, 1_000.0 * math.exp(lr))]
    return returns(rows)


def test_robust_z_is_the_modified_z_score() -> None:
    # log-ratios 0, 0.1, -0.1, 0.2, 2: median 0.1, |deviations| 0.1, 0, 0.2, 0.1, 1.9 → MAD 0.1
    out = year_over_year(five_changes([0.0, 0.1, -0.1, 0.2, 2.0]), ["electricity_kwh"])
    z = out.filter(pl.col("year") == 2023)["yoy_electricity_kwh_z"].to_list()
    scale = 0.1 * MAD_TO_SIGMA
    expected = [(lr - 0.1) / scale for lr in (0.0, 0.1, -0.1, 0.2, 2.0)]
    assert z == pytest.approx(expected)
    p = out.filter(pl.col("year") == 2023)["yoy_electricity_kwh_p"].to_list()
    assert p[0] == pytest.approx(0.5)  # |z| = 0.6745 = Φ⁻¹(0.75)
    assert p[4] == pytest.approx(2 * stats.norm.sf((2.0 - 0.1) / scale))
    assert p[1] == pytest.approx(1.0)


def test_mean_absolute_deviation_when_the_mad_is_zero() -> None:
    # log-ratios 0, 0, 0, 0, 1: MAD 0, mean |deviation| 0.2 → scale 0.2·√(π/2)
    out = year_over_year(five_changes([0.0, 0.0, 0.0, 0.0, 1.0]), ["electricity_kwh"])
    z = out.filter(pl.col("year") == 2023)["yoy_electricity_kwh_z"].to_list()
    assert z == pytest.approx([0, 0, 0, 0, 1.0 / (0.2 * MEAN_AD_TO_SD)])
    # all equal: no scale, no z
    out = year_over_year(five_changes([0.0] * 5), ["electricity_kwh"])
    assert out.filter(pl.col("year") == 2023)["yoy_electricity_kwh_z"].null_count() == 5


def test_peer_groups_with_enough_members_use_their_own_median() -> None:
    # group "big": 10 institutions whose log-ratio is 0.5 (± small); "small": 2 at 0.0
    rows, sector = [], []
    for i in range(10):
        rows += [(f"B{i}", 2022, 1_000.0), (f"B{i}", 2023, 1_000.0 * math.exp(0.5 + 0.01 * i))]
        sector += ["big", "big"]
    for i in range(2):
        rows += [(f"S{i}", 2022, 1_000.0), (f"S{i}", 2023, 1_000.0 * math.exp(0.01 * i))]
        sector += ["small", "small"]
    frame = returns(rows).with_columns(sector=pl.Series(sector))
    grouped = year_over_year(frame, ["electricity_kwh"], groups="sector", min_group_size=10)
    plain = year_over_year(frame, ["electricity_kwh"])
    big = grouped.filter((pl.col("sector") == "big") & (pl.col("year") == 2023))
    assert big["yoy_electricity_kwh_z"].abs().max() < 2  # centred on the group's 0.5
    small_g = grouped.filter((pl.col("sector") == "small") & (pl.col("year") == 2023))
    small_p = plain.filter((pl.col("sector") == "small") & (pl.col("year") == 2023))
    # the small group borrows the year's median and scale
    assert small_g["yoy_electricity_kwh_z"].to_list() == pytest.approx(
        small_p["yoy_electricity_kwh_z"].to_list()
    )


# --------------------------------------------------------------------------------------------
# Frames, shapes, errors


def small_city() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "institution_id": ["A", "A", "A", "B", "B", "C"],
            "year": [2021, 2022, 2023, 2022, 2023, 2023],
            "electricity_kwh": [480_000.0, 500_000.0, 50.0, 1_000.0, 1_080.0, 5.0],
            "gasoline_l": [1_000.0, 1_000.0, 730.0, 0.0, 10.0, None],
            "sector": ["x", "x", "x", "y", "y", "y"],
        }
    )


def test_dataframe_and_lazyframe_give_the_same_result_and_input_is_unchanged() -> None:
    frame = small_city()
    before = frame.clone()
    eager = year_over_year(frame, ["electricity_kwh", "gasoline_l"], groups="sector")
    lazy = year_over_year(frame.lazy(), ["electricity_kwh", "gasoline_l"], groups="sector")
    assert isinstance(lazy, pl.LazyFrame)
    assert_frame_equal(eager, lazy.collect())
    assert_frame_equal(frame, before)
    assert eager.columns == [
        *frame.columns,
        "yoy_previous_year",
        *(f"yoy_{c}_{s}" for c in ("electricity_kwh", "gasoline_l") for s in PER_COLUMN),
    ]
    # on its own output: the added columns are replaced, same values
    assert_frame_equal(
        year_over_year(eager, ["electricity_kwh", "gasoline_l"], groups="sector"), eager
    )


def test_long_shape_holds_the_same_numbers() -> None:
    frame = small_city()
    cols = ["electricity_kwh", "gasoline_l"]
    factors = {c: slip_factors_for(c) for c in cols}
    wide = year_over_year(frame, cols, slip_factors=factors)
    long = year_over_year_long(frame, cols, slip_factors=factors)
    assert long.columns == ["institution_id", "year", *LONG_COLUMNS]
    assert long.height == frame.height * 2
    lazy = year_over_year_long(frame.lazy(), cols, slip_factors=factors)
    assert_frame_equal(lazy.collect(), long)
    names = (
        "previous",
        "ratio",
        "log_ratio",
        "slip_factor",
        "suggested_value",
        "reverts",
        "z",
        "p",
        "log_ratio_two_back",
    )
    for c in cols:
        part = long.filter(pl.col("column") == c)
        assert part["row_index"].to_list() == list(range(frame.height))
        assert part["value"].to_list() == frame[c].to_list()
        for suffix, name in zip(PER_COLUMN, names, strict=True):
            assert part[name].to_list() == wide[f"yoy_{c}_{suffix}"].to_list()
    slip = long.filter(pl.col("slip_factor").is_not_null())
    assert slip.select("institution_id", "year", "column", "slip_factor").rows() == [
        ("A", 2023, "electricity_kwh", 1e-4),
        ("A", 2023, "gasoline_l", pytest.approx(0.73)),
    ]


def test_log_ratio_two_back_is_the_change_on_the_return_before_the_previous() -> None:
    # 1,000 → 2,000 → 1,100: ln(1,100 / 1,000) on the third return, none before it
    r = returns([("A", 2021, 1000.0), ("A", 2022, 2000.0), ("A", 2023, 1100.0)])
    out = year_over_year(r, ["electricity_kwh"])["yoy_electricity_kwh_log_ratio_two_back"]
    assert out[0] is None and out[1] is None
    assert out[2] == pytest.approx(math.log(1.1))


def test_errors_say_what_is_wrong() -> None:
    frame = small_city()
    with pytest.raises(UnusableInputError, match=r"输入数据缺少列.*water_m3") as info:
        year_over_year(frame, ["water_m3"])
    assert re.search(r"lacks column.*water_m3", info.value.message_en)
    with pytest.raises(UnusableInputError, match=r"sector.*应为数值类型") as info:
        year_over_year(frame, ["sector"])
    assert re.search(r"sector.*must be numeric", info.value.message_en)
    with pytest.raises(UnusableInputError, match="year 列（统计年度）应为整数类型") as info:
        year_over_year(frame.with_columns(pl.col("year").cast(pl.String)), ["electricity_kwh"])
    assert "year must be an integer" in info.value.message_en
    with pytest.raises(UnusableInputError, match=r"分组列.*district") as info:
        year_over_year(frame, ["electricity_kwh"], groups="district")
    assert re.search(r"group column.*district", info.value.message_en)
    with pytest.raises(
        UnusableInputError, match="历史数据的 institution_id 列类型为 Int64"
    ) as info:
        year_over_year(
            frame,
            ["electricity_kwh"],
            history=pl.DataFrame({"institution_id": [1], "year": [2020], "electricity_kwh": [1.0]}),
        )
    assert "history column institution_id is Int64" in info.value.message_en
    with pytest.raises(SettingsError, match="tolerance"):
        year_over_year(frame, ["electricity_kwh"], tolerance=1.5)
    with pytest.raises(SettingsError, match="columns 为空") as info:
        year_over_year(frame, [])
    assert "columns is empty" in info.value.message_en
    with pytest.raises(SettingsError, match="重复出现 electricity_kwh") as info:
        year_over_year(frame, ["electricity_kwh", "electricity_kwh"])
    assert "repeats electricity_kwh" in info.value.message_en
    with pytest.raises(SettingsError, match="不等于 1 的正数") as info:
        year_over_year(frame, ["electricity_kwh"], slip_factors=[1.0, 10.0])
    assert "other than 1" in info.value.message_en
    with pytest.raises(SettingsError, match="不在 columns 中") as info:
        year_over_year(frame, ["electricity_kwh"], slip_factors={"water_m3": [10.0]})
    assert "not in columns" in info.value.message_en
    with pytest.raises(SettingsError, match="min_group_size"):
        year_over_year(frame, ["electricity_kwh"], min_group_size=0)


def test_missing_history_column_named_in_both_languages() -> None:
    history = pl.DataFrame({"institution_id": ["A"], "electricity_kwh": [1.0]})
    with pytest.raises(UnusableInputError) as info:
        year_over_year(small_city(), ["electricity_kwh"], history=history)
    assert info.value.message_zh == "历史数据缺少列 year"
    assert info.value.message_en == "history lacks column(s) year"


@settings(max_examples=60, deadline=None)
@given(
    previous=st.floats(1.0, 1e7),
    change=st.floats(0.9, 1.1),
    factor=st.sampled_from(DECIMAL_SLIP_FACTORS),
)
def test_any_decimal_slip_on_a_normal_change_is_found(
    previous: float, change: float, factor: float
) -> None:
    true = previous * change
    frame = returns([("A", 2022, previous), ("A", 2023, true * factor)])
    row = row_of(year_over_year(frame, ["electricity_kwh"]), "A", 2023)
    assert row["yoy_electricity_kwh_slip"] == factor
    assert row["yoy_electricity_kwh_suggested"] == pytest.approx(true, rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(previous=st.floats(1.0, 1e7), change=st.floats(0.5, 2.0))
def test_changes_up_to_a_factor_two_are_no_decimal_slip(previous: float, change: float) -> None:
    frame = returns([("A", 2022, previous), ("A", 2023, previous * change)])
    row = row_of(year_over_year(frame, ["electricity_kwh"]), "A", 2023)
    assert row["yoy_electricity_kwh_slip"] is None


# --------------------------------------------------------------------------------------------
# The synthetic city: recall per defect kind, false alarms on a clean city

SLIP_KINDS = (
    "unit_slip_10k",
    "unit_slip_kg_for_t",
    "unit_slip_mj_for_gj",
    "unit_slip_kg_for_l",
    "typo_x10",
)
SEEDS = (1, 2, 3)


@functools.cache
def city(seed: int, defects: bool = True) -> tuple[pl.DataFrame, pl.DataFrame]:
    directory = make_directory(3000, seed=seed)
    return make_returns(directory, range(2020, 2025), seed=seed, defects=defects)


def slip_recall(seed: int) -> pl.DataFrame:
    """Per slip kind: injected cells, cells whose right factor was found, and the same for the
    cells YoY can see (the two previous returns of the institution clean in that field)."""
    frame, truth = city(seed)
    long = year_over_year_long(
        frame, QUANTITIES, slip_factors={c: slip_factors_for(c) for c in QUANTITIES}
    )
    found = (
        long.filter(pl.col("slip_factor").is_not_null())
        .group_by("institution_id", "year", pl.col("column").alias("field"))
        .agg(pl.col("slip_factor").first())
    )
    # the institution's previous two return years
    years = frame.select("institution_id", "year").unique().sort("institution_id", "year")
    years = years.with_columns(
        p1=pl.col("year").shift(1).over("institution_id"),
        p2=pl.col("year").shift(2).over("institution_id"),
    )
    defective = truth.select("institution_id", "year", "field").unique()
    cells = truth.filter(pl.col("defect").is_in(SLIP_KINDS)).join(
        years, on=["institution_id", "year"], how="left"
    )
    for lag in ("p1", "p2"):
        cells = cells.join(
            defective.rename({"year": lag}).with_columns(pl.lit(True).alias(f"bad_{lag}")),
            on=["institution_id", lag, "field"],
            how="left",
        )
    cells = cells.join(found, on=["institution_id", "year", "field"], how="left").with_columns(
        hit=((pl.col("slip_factor").log() - pl.col("factor").log()).abs() < 0.05).fill_null(False),
        visible=pl.col("p1").is_not_null()
        & pl.col("bad_p1").is_null()
        & pl.col("bad_p2").is_null(),
    )
    return cells.group_by("defect").agg(
        pl.len().alias("injected"),
        pl.col("hit").sum().alias("found"),
        pl.col("visible").sum().alias("visible"),
        (pl.col("hit") & pl.col("visible")).sum().alias("visible_found"),
    )


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_synthetic_unit_slips_are_found_with_the_right_factor(seed: int) -> None:
    recall = {r["defect"]: r for r in slip_recall(seed).iter_rows(named=True)}
    assert set(recall) == set(SLIP_KINDS)
    # the bar: every ×1,000 and ×10,000 slip YoY can see, found with its factor
    for kind in ("unit_slip_10k", "unit_slip_kg_for_t", "unit_slip_mj_for_gj"):
        r = recall[kind]
        assert r["visible"] > 0
        assert r["visible_found"] == r["visible"], r
        assert r["found"] >= 0.5 * r["injected"], r  # first years have no previous return
    typo = recall["typo_x10"]
    assert typo["visible_found"] >= 0.95 * typo["visible"], typo
    # kg for litres (×0.73 / ×0.85) is close to a normal change: a narrow window, lower recall
    # (12-18 of 30-34 visible cells over the seeds, a binomial spread of ± 3 cells; the stage
    # finds the rest by the total they no longer add up to)
    kg = recall["unit_slip_kg_for_l"]
    assert kg["visible_found"] >= kg["visible"] / 3, kg


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_synthetic_yoy_jumps_have_small_p(seed: int) -> None:
    frame, truth = city(seed)
    long = year_over_year_long(
        frame, QUANTITIES, slip_factors={c: slip_factors_for(c) for c in QUANTITIES}
    )
    jumps = truth.filter(pl.col("defect") == "yoy_jump").join(
        long,
        left_on=["institution_id", "year", "field"],
        right_on=["institution_id", "year", "column"],
    )
    assert jumps.height > 0
    assert (jumps["p"] < 0.01).mean() >= 0.95


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_clean_city_has_few_slip_signatures(seed: int) -> None:
    frame, _ = city(seed, defects=False)
    long = year_over_year_long(frame, QUANTITIES).filter(pl.col("ratio").is_not_null())
    flagged = long.filter(pl.col("slip_factor").is_not_null())
    # only the narrow density window of diesel (0.85 ± 2.4 % in log) is reached by real changes
    assert flagged.height <= 0.001 * long.height
    assert set(flagged["column"]) <= {"diesel_l", "gasoline_l"}
    assert (long["p"] < 0.01).mean() < 0.02


# --------------------------------------------------------------------------------------------
# The previous returns by one sort (no join), and the group statistics without a group_by


def previous_by_join(frame: pl.DataFrame, history: pl.DataFrame, column: str) -> pl.DataFrame:
    """The previous two returns as a sort of history ∪ frame and a join back compute them.

    The definition of the module docstring written out directly: one row per (institution,
    year), history before frame, first row of a source first; lag k is k runs up, same key.
    """
    parts = [
        df.select("institution_id", "year", pl.col(column).cast(pl.Float64))
        .with_row_index("ord")
        .with_columns(pl.lit(src).alias("src"))
        for src, df in ((0, history), (1, frame))
    ]
    ref = (
        pl.concat(parts)
        .filter(pl.col("institution_id").is_not_null() & pl.col("year").is_not_null())
        .sort("institution_id", "year", "src", "ord")
        .unique(["institution_id", "year"], keep="first", maintain_order=True)
    )
    same = {k: pl.col("institution_id").eq(pl.col("institution_id").shift(k)) for k in (1, 2)}
    ref = ref.select(
        "institution_id",
        "year",
        pl.when(same[1]).then(pl.col("year").shift(1)).alias("previous_year"),
        *(pl.when(same[k]).then(pl.col(column).shift(k)).alias(f"lag{k}") for k in (1, 2)),
    )
    return frame.select("institution_id", "year").join(
        ref, on=["institution_id", "year"], how="left", maintain_order="left"
    )


def untidy_returns(seed: int, n: int = 400) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Frame and history with gaps, duplicated (institution, year), nulls and overlaps."""
    rng = np.random.default_rng(seed)

    def holes(values: list, share: float) -> list:
        return [None if r < share else v for v, r in zip(values, rng.random(n), strict=True)]

    frame = pl.DataFrame(
        {
            "institution_id": holes([f"I{i:03d}" for i in rng.integers(0, 60, n)], 0.03),
            "year": holes(rng.integers(2016, 2025, n).tolist(), 0.03),
            "electricity_kwh": holes(np.round(rng.lognormal(8, 1, n), 1).tolist(), 0.1),
        },
        schema={"institution_id": pl.String, "year": pl.Int64, "electricity_kwh": pl.Float64},
    )
    return frame.slice(0, n // 2), frame.slice(n // 2)  # history overlaps the frame's years


@pytest.mark.parametrize("seed", range(5))
def test_previous_returns_are_those_of_the_definition(seed: int) -> None:
    frame, history = untidy_returns(seed)
    out = year_over_year(frame, ["electricity_kwh"], history=history)
    expected = previous_by_join(frame, history, "electricity_kwh")
    assert out["yoy_previous_year"].to_list() == expected["previous_year"].to_list()
    assert out["yoy_electricity_kwh_previous"].to_list() == expected["lag1"].to_list()
    # lag 2 is the return two back: it decides reverts, seen here through the long table
    earlier = yoy.earlier_returns(frame, history, ["electricity_kwh"], "institution_id", "year")
    lag2 = earlier.values["electricity_kwh"].gather(earlier.lag(2))
    assert lag2.to_list() == expected["lag2"].to_list()


def test_two_keys_sharing_a_hash_fall_back_to_exact_ranks(monkeypatch) -> None:
    frame, history = untidy_returns(7)
    right = year_over_year(frame, ["electricity_kwh"], history=history)
    real = yoy._key_hash
    # the first hash takes only two values: nearly every pair of keys collides
    monkeypatch.setattr(
        yoy, "_key_hash", lambda keys, which: real(keys, which) % 2 if which == 0 else real(keys, 1)
    )
    calls: list[bool] = []
    order = yoy._key_order
    monkeypatch.setattr(
        yoy, "_key_order", lambda *args, exact: calls.append(exact) or order(*args, exact=exact)
    )
    assert_frame_equal(year_over_year(frame, ["electricity_kwh"], history=history), right)
    assert calls == [False, True]  # the collision was seen, and the exact ranks used


def test_duplicated_key_and_year_in_history_and_frame_take_the_first_history_row() -> None:
    history = returns([("A", 2022, 10.0), ("A", 2022, 20.0)])
    frame = returns([("A", 2022, 30.0), ("A", 2023, 40.0), ("A", 2023, 50.0)])
    out = year_over_year(frame, ["electricity_kwh"], history=history)
    assert out["yoy_electricity_kwh_previous"].to_list() == [None, 10.0, 10.0]


@pytest.mark.parametrize("seed", range(4))
def test_robust_statistics_are_those_of_a_group_by(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 3_000
    x = rng.normal(0.0, 0.2, n)
    x[rng.random(n) < 0.6] = 0.0  # MAD 0 in most groups: the mean absolute deviation
    x[rng.random(n) < 0.02] = np.nan  # NaN sorts last (a value, unlike null)
    frame = pl.DataFrame(
        {
            "year": [
                None if r < 0.05 else int(y)
                for r, y in zip(rng.random(n), rng.integers(2023, 2025, n), strict=True)
            ],
            "sector": rng.choice(["a", "b", "c"], n),
            "v": x,
            "w": rng.normal(size=n),
        }
    ).with_columns(
        pl.when(pl.int_range(pl.len()) % 11 == 0).then(None).otherwise(pl.col("v")).alias("v")
    )
    for part in (["year"], ["year", "sector"]):
        got = pl.DataFrame(yoy._robust_stats(frame, ["v", "w"], part, "t"))
        exprs = []
        for v in ("v", "w"):  # the statistics as a group_by gives them, joined back
            deviation = (pl.col(v) - pl.col(v).median()).abs()
            exprs += [
                pl.col(v).count().alias(f"__ea_t_n_{v}"),
                pl.col(v).median().alias(f"__ea_t_med_{v}"),
                pl.when(deviation.median() > 0)
                .then(deviation.median() * MAD_TO_SIGMA)
                .otherwise(deviation.mean() * MEAN_AD_TO_SD)
                .alias(f"__ea_t_sd_{v}"),
            ]
        expected = frame.join(
            frame.group_by(part).agg(exprs), on=part, how="left", maintain_order="left"
        ).select(got.columns)
        assert_frame_equal(got, expected, check_exact=True)


def test_earlier_returns_given_once_give_the_same_tables() -> None:
    frame, history = untidy_returns(3)
    columns = ["electricity_kwh"]
    earlier = yoy.earlier_returns(frame, history, columns, "institution_id", "year")
    assert_frame_equal(
        year_over_year(frame, columns, earlier=earlier),
        year_over_year(frame, columns, history=history),
    )
    blocks = yoy.year_over_year_by_column(frame, columns, earlier=earlier)
    assert list(blocks) == columns
    assert_frame_equal(
        pl.concat(list(blocks.values())), year_over_year_long(frame, columns, history=history)
    )


def test_blocks_without_scores_are_the_blocks_less_z_and_p() -> None:
    frame, history = untidy_returns(4)
    columns = ["electricity_kwh"]
    full = yoy.year_over_year_by_column(frame, columns, history=history)
    bare = yoy.year_over_year_by_column(frame, columns, history=history, scores=False)
    for c in columns:
        assert {"z", "p"} <= set(full[c].columns) and not {"z", "p"} & set(bare[c].columns)
        assert_frame_equal(bare[c], full[c].drop("z", "p"), check_exact=True)


def test_earlier_returns_must_fit_the_frame() -> None:
    frame, history = untidy_returns(3)
    earlier = yoy.earlier_returns(frame, history, ["electricity_kwh"], "institution_id", "year")
    with pytest.raises(SettingsError, match="只能给出其一"):
        year_over_year(frame, ["electricity_kwh"], history=history, earlier=earlier)
    with pytest.raises(SettingsError, match=r"它有 \d+ 行"):
        year_over_year(frame.head(5), ["electricity_kwh"], earlier=earlier)
    with pytest.raises(SettingsError, match="缺少列 water_m3"):
        year_over_year(frame.with_columns(water_m3=pl.lit(1.0)), ["water_m3"], earlier=earlier)
