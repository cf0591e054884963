"""Synthetic returns: determinism, invariants of clean returns, the defects and their truth."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from energy_audit.directory.codes import credit_codes_valid
from energy_audit.factors import kgce_per_canonical_unit
from energy_audit.synthetic import (
    DEFECT_KINDS,
    NOISE_FAMILIES,
    RETURNS_COLUMNS,
    TRUTH_SCHEMA,
    district_trends,
    make_directory,
    make_returns,
)

YEARS = range(2020, 2025)
KEY_COLUMNS = ["institution_id", "year"]
SEED = 11  # the seed of conftest's directory
ENERGY_ITEMS = (
    "electricity_kwh", "natural_gas_m3", "coal_t", "gasoline_l", "diesel_l", "lpg_kg", "heat_gj",
    "other_energy_tce",
)  # fmt: skip
QUANTITIES = (*ENERGY_ITEMS, "pv_generation_kwh", "water_m3")


@pytest.fixture(scope="module")
def clean(directory: pl.DataFrame) -> pl.DataFrame:
    returns, truth = make_returns(directory, YEARS, SEED, defects=False)
    assert truth.is_empty()
    return returns


@pytest.fixture(scope="module")
def dirty(directory: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    return make_returns(directory, YEARS, SEED)


def computed_total_tce(frame: pl.DataFrame) -> pl.Expr:
    """Σ items × coefficients [tce], using the coefficients of each row's year."""
    years = frame["year"].unique().to_list()
    per_year = {y: kgce_per_canonical_unit(None, y) for y in years}
    return pl.coalesce(
        pl.when(pl.col("year") == y).then(sum(pl.col(c) * k[c] for c in ENERGY_ITEMS) / 1000)
        for y, k in per_year.items()
    )


PROVINCIAL_GAS_KGCE_PER_M3 = 1.2143  # domain.md §2: some provincial standards


def own_total_explained(frame: pl.DataFrame) -> pl.Series:
    """Whether each row's own total is Σ items × coefficients (national, or natural gas at the
    provincial 1.2143 kgce/m³), rounded to 0.01, 0.1 or 1 tce (ways institutions compute it)."""
    national = computed_total_tce(frame)
    provincial = (
        national
        + pl.col("natural_gas_m3")
        * (PROVINCIAL_GAS_KGCE_PER_M3 - kgce_per_canonical_unit(None, 2024)["natural_gas_m3"])
        / 1000
    )
    reported = pl.col("reported_total_tce")
    ways = [
        ((reported - total).abs() <= step / 2 + 1e-9)
        & ((reported / step - (reported / step).round()).abs() < 1e-6)
        for total in (national, provincial)
        for step in (0.01, 0.1, 1.0)
    ]
    return frame.select(pl.any_horizontal(ways)).to_series()


# --- determinism -----------------------------------------------------------------------------


@pytest.mark.parametrize("noise", list(NOISE_FAMILIES))
def test_same_seed_same_frames(directory: pl.DataFrame, noise: str) -> None:
    assert make_directory(2000, SEED).equals(directory)
    first = make_returns(directory, YEARS, SEED, noise=noise)
    second = make_returns(directory, YEARS, SEED, noise=noise)
    assert first[0].equals(second[0])
    assert first[1].equals(second[1])


def test_families_share_the_institutions(directory: pl.DataFrame) -> None:
    """The families differ in the yearly changes only: the first year's static draws (areas,
    vehicles, prices …) are the same."""
    frames = {
        f: make_returns(directory, YEARS, SEED, defects=False, noise=f)[0] for f in NOISE_FAMILIES
    }
    first = {f: r.filter(pl.col("year") == 2020) for f, r in frames.items()}
    static = ["institution_id", "building_area_m2", "staff_quota", "vehicles"]
    assert first["light"].select(static).equals(first["heavy"].select(static))
    assert first["light"].select(static).equals(first["mixture"].select(static))
    assert not frames["light"].equals(frames["heavy"])
    assert not frames["heavy"].equals(frames["mixture"])


def test_different_seed_differs(directory: pl.DataFrame) -> None:
    other = make_directory(2000, SEED + 1)
    assert not other.equals(directory)
    assert other["institution_id"].to_list() != directory["institution_id"].to_list()
    a = make_returns(directory, YEARS, SEED)[0]
    b = make_returns(directory, YEARS, SEED + 1)[0]
    assert not a.equals(b)


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
        price_low=(pl.col("electricity_cost_yuan") / pl.col("electricity_kwh")).min(),
        price_high=(pl.col("electricity_cost_yuan") / pl.col("electricity_kwh")).max(),
        pv_ok=(pl.col("pv_generation_kwh") <= pl.col("electricity_kwh")).all(),
        fuel_ok=((pl.col("vehicles") == 0) | (pl.col("gasoline_l") + pl.col("diesel_l") > 0)).all(),
    ).row(0, named=True)
    assert 0.5 <= checks["price_low"] <= checks["price_high"] <= 1.2
    assert checks["pv_ok"]
    assert checks["fuel_ok"]
    # Metered quantities are whole numbers; about 1 % of those of 1,000 or more are naturally
    # round (a multiple of 100 or 1,000: estimated bills, quotas), smaller ones never.
    for column in ("electricity_kwh", "natural_gas_m3", "water_m3"):
        values = clean.filter(pl.col(column) > 0)[column]
        assert (values % 1 == 0).all()
        assert (values.filter(values < 1000) % 100 != 0).all(), column
        large = values.filter(values >= 1000)
        assert 0.005 < (large % 100 == 0).mean() < 0.015, column
    heat = clean.filter(pl.col("heat_gj") >= 1000)["heat_gj"]
    assert 0.005 < (heat % 100 == 0).mean() < 0.015
    # Head counts: a good share rounded to tens by the institutions with 300 or more.
    large = clean.filter(pl.col("occupants") >= 300)["occupants"]
    assert 0.4 < (large % 10 == 0).mean() < 0.7


def test_own_totals_are_the_institutions(clean: pl.DataFrame) -> None:
    """The own total: Σ true items × coefficients (about 20 % with the provincial gas value),
    rounded to 0.01 tce (about 70 %), 0.1 tce (20 %) or 1 tce (10 %)."""
    assert own_total_explained(clean).all()
    national = clean.select(
        ((pl.col("reported_total_tce") - computed_total_tce(clean)).abs() <= 0.005).mean()
    )
    assert 0.5 < national.item() < 0.7  # national coefficients and 0.01 tce: 0.8 × 0.7
    whole = clean.filter(pl.col("reported_total_tce") >= 50)["reported_total_tce"]
    assert 0.07 < (whole % 1 == 0).mean() < 0.14  # rounded to 1 tce, or by chance (0.1 × 0.1 …)


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
    # about 2 % of the institutions a year re-measure their area, by 0.5-5 %
    remeasured = yoy.filter(pl.col("area_ratio") != 1)["area_ratio"]
    assert 0.01 < remeasured.len() / yoy.height < 0.03
    assert ((remeasured - 1).abs().is_between(0.0049, 0.0501)).all()
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
        nulls_equal=True,  # a copied blank (no cost reported) is blank in the returns
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
    """``factor`` is the factor actually applied: reported ÷ true."""
    _, truth = dirty
    for kind, factor in (("unit_slip_kg_for_t", 1000.0), ("unit_slip_mj_for_gj", 1000.0)):
        assert np.allclose(_kind(truth, kind)["factor"], factor, rtol=1e-12), kind
    assert np.allclose(_kind(truth, "typo_x10")["factor"], 10.0, rtol=1e-12)
    area = _kind(truth, "area_typo")
    assert set(area["field"]) == {"building_area_m2"}
    factor = area["factor"].to_numpy()
    assert (np.isclose(factor, 10, rtol=1e-3) | np.isclose(factor, 0.1, rtol=1e-3)).all()
    occupants = _kind(truth, "occupants_typo")  # × 10 or ÷ 10, whole
    assert set(occupants["field"]) == {"occupants"}
    wrong_by = occupants.select(
        pl.min_horizontal(
            (pl.col("reported_value") - pl.col("true_value") * 10).abs(),
            (pl.col("reported_value") - pl.col("true_value") / 10).abs(),
        )
    ).to_series()
    assert (wrong_by <= 0.5).all()
    assert (occupants["reported_value"] >= 1).all()
    # 万 figures: exact ÷ 10,000, or typed rounded to 1 or 2 decimals (2 significant digits kept)
    slips = _kind(truth, "unit_slip_10k")
    wan = slips["true_value"] / 10_000
    exact = (slips["reported_value"] - wan).abs() <= 1e-12 * wan
    assert 0.3 < exact.mean() < 0.8
    rounded = slips.filter(~exact)
    assert ((rounded["factor"] / 1e-4 - 1).abs() < 0.05).all()
    assert (
        (rounded["reported_value"] * 100 - (rounded["reported_value"] * 100).round()).abs() < 1e-9
    ).all()
    # kilograms under litres with the density of the delivery
    fuel = _kind(truth, "unit_slip_kg_for_l")
    for field, (low, high) in {"gasoline_l": (0.72, 0.76), "diesel_l": (0.82, 0.87)}.items():
        factor = fuel.filter(pl.col("field") == field)["factor"]
        assert factor.is_between(low - 1e-3, high + 1e-3).all(), field
    assert fuel["factor"].n_unique() > fuel.height // 2  # not one nominal density


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
    # area and head count wrong by more than 10 % against this year's true value too
    for kind in ("area_change", "occupants_change"):
        factor = _kind(truth, kind)["factor"]
        assert ((factor < 0.9) | (factor > 1.1)).all(), kind
    # a copied form copies its own total with it
    assert "reported_total_tce" in set(copied["field"])


def test_slips_open_a_gap_to_the_own_total(dirty: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    """The own total comes from the true items: the reported total is explained by them (one
    item put back to its true value), and a large slip makes it differ from the reported items'."""
    returns, truth = dirty
    kinds = ["unit_slip_10k", "unit_slip_kg_for_t", "unit_slip_mj_for_gj", "typo_x10"]
    slips = truth.filter(pl.col("defect").is_in(kinds))
    assert slips.height > 0
    rows = returns.join(slips.select(*KEY_COLUMNS, "field", "true_value"), on=KEY_COLUMNS)
    true_items = pl.concat(
        [
            group.with_columns(pl.col("true_value").alias(field[0]))
            for field, group in rows.group_by("field")
        ],
        how="diagonal",
    ).drop("field", "true_value")
    assert own_total_explained(true_items).all()
    gap = (pl.col("reported_total_tce") - computed_total_tce(rows)).abs()
    assert rows.select((gap > 0.02 * pl.col("reported_total_tce")).mean()).item() > 0.5


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
    billed = rounded.filter(pl.col("field").str.ends_with("_cost_yuan"))  # the estimate's bill
    assert billed.height > 0
    assert (billed["reported_value"] != billed["true_value"]).all()
    rounded = rounded.filter(~pl.col("field").str.ends_with("_cost_yuan"))
    assert (rounded["reported_value"] % 1000 == 0).all()
    assert (rounded["true_value"] % 1000 != 0).all()  # not a naturally round figure
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
    assert own_total_explained(clean_keys).all()


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
