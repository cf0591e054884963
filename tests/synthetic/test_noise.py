"""Noise families: the spread of clean year-over-year log ratios is what the docstrings say."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from energy_audit.synthetic import NOISE_FAMILIES, make_directory, make_returns
from energy_audit.verify.settings import VerifySettings

SEED = 5
YEARS = range(2020, 2025)
FUELS = ("coal_t", "gasoline_l", "diesel_l", "lpg_kg", "heat_gj")
#: Robust spread (1.4826 · MAD) of ln(this year / last year) among clean returns, as
#: energy_audit.synthetic.noise documents it, per family and item.
HEAVY = {
    "electricity_kwh": 0.12,
    "natural_gas_m3": 0.20,
    **dict.fromkeys(FUELS, 0.25),
    "water_m3": 0.15,
    "occupants": 0.05,
}
LIGHT = {**dict.fromkeys(HEAVY, 0.045), "occupants": 0.021}
EXPECTED = {"light": LIGHT, "heavy": HEAVY, "mixture": HEAVY}
TOLERANCE = 0.15  # relative: a few hundred ratios of the rarer items (LPG, coal)


@pytest.fixture(scope="module")
def directory() -> pl.DataFrame:
    return make_directory(6000, SEED)


@pytest.fixture(scope="module")
def log_ratios(directory: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """ln(this / last) of every clean return, item and family (rows: year, item, ratio)."""
    out = {}
    for family in NOISE_FAMILIES:
        returns, truth = make_returns(directory, YEARS, SEED, defects=False, noise=family)
        assert truth.is_empty()
        items = [*HEAVY, "building_area_m2"]
        frame = returns.sort("institution_id", "year").select(
            "institution_id", "year", *(pl.col(c).cast(pl.Float64) for c in items)
        )
        long = frame.unpivot(items, index=["institution_id", "year"], variable_name="item")
        out[family] = (
            long.with_columns(last=pl.col("value").shift().over("institution_id", "item"))
            .filter((pl.col("value") > 0) & (pl.col("last") > 0))
            .select("institution_id", "year", "item", lr=(pl.col("value") / pl.col("last")).log())
        )
    return out


def robust_spread(values: pl.Expr) -> pl.Expr:
    return 1.4826 * (values - values.median()).abs().median()


def test_noise_families_are_named() -> None:
    assert list(NOISE_FAMILIES) == ["light", "heavy", "mixture"]
    assert all(isinstance(d, str) and d for d in NOISE_FAMILIES.values())
    directory = make_directory(200, SEED)
    with pytest.raises(ValueError, match="unknown noise family 'wild'"):
        make_returns(directory, YEARS, SEED, noise="wild")


@pytest.mark.parametrize("family", list(NOISE_FAMILIES))
def test_spread_of_clean_log_ratios(log_ratios: dict[str, pl.DataFrame], family: str) -> None:
    """Robust spread within each year (the weather of the year is common to all), median of
    the years; printed with ``pytest -s``."""
    spreads = (
        log_ratios[family]
        .group_by("item", "year")
        .agg(spread=robust_spread(pl.col("lr")), n=pl.len())
        .group_by("item")
        .agg(pl.col("spread").median(), pl.col("n").sum())
    )
    measured = dict(spreads.select("item", "spread").iter_rows())
    print(f"\n{family}: robust spread of ln(this/last), measured (documented), ratios")
    for item, expected in EXPECTED[family].items():
        n = spreads.filter(pl.col("item") == item)["n"].item()
        print(f"  {item:17} {measured[item]:.3f} ({expected:.3f})  n={n}")
        assert measured[item] == pytest.approx(expected, rel=TOLERANCE), item
    # area: re-measures only (light, heavy), plus building changes (mixture)
    assert measured["building_area_m2"] == 0.0


def test_heavy_steps_are_capped(log_ratios: dict[str, pl.DataFrame]) -> None:
    """A clean figure never changes by more than × 3 a year, but for weather and trend."""
    largest = log_ratios["heavy"].group_by("item").agg(pl.col("lr").abs().max())
    margin = math.log(1.05 / 0.95) + 0.03 + 0.01  # weather, trend, rounding
    for item, value in largest.iter_rows():
        assert value <= math.log(3) + margin, item
    # heavy tails: beyond 4.5 robust spreads far more often than a normal (7e-6)
    electricity = log_ratios["heavy"].filter(pl.col("item") == "electricity_kwh")["lr"]
    beyond = ((electricity - electricity.median()).abs() > 4.5 * 0.12).mean()
    assert 0.005 < beyond < 0.03


def test_light_changes_stay_small(log_ratios: dict[str, pl.DataFrame]) -> None:
    largest = log_ratios["light"].filter(pl.col("item") != "natural_gas_m3")["lr"].abs().max()
    assert largest < math.log(1.3)  # below the 30 % of review practice (weather included)


def test_mixture_buildings_change_with_their_energy(
    log_ratios: dict[str, pl.DataFrame],
) -> None:
    area = log_ratios["mixture"].filter(pl.col("item") == "building_area_m2")
    changed = area.filter(pl.col("lr").abs() > math.log(1.06))  # beyond a re-measure
    share = changed.height / area.height
    assert 0.02 < share < 0.04  # about 3 % of the institutions a year
    grow, shrink = changed.filter(pl.col("lr") > 0)["lr"], changed.filter(pl.col("lr") < 0)["lr"]
    assert grow.min() >= math.log(1.1) - 1e-6 and grow.max() <= math.log(1.8) + 1e-6
    assert shrink.min() >= math.log(0.55) - 1e-6 and shrink.max() <= math.log(0.9) + 1e-6
    # electricity, water and occupants follow the area (each with its own noise)
    for item in ("electricity_kwh", "water_m3", "occupants"):
        both = changed.join(
            log_ratios["mixture"].filter(pl.col("item") == item),
            on=["institution_id", "year"],
            suffix="_item",
        )
        slope = np.polyfit(both["lr"].to_numpy(), both["lr_item"].to_numpy(), 1)[0]
        assert 0.8 < slope < 1.2, item
    # no building changes in the other families: re-measures of at most 5 %
    for family in ("light", "heavy"):
        other = log_ratios[family].filter(pl.col("item") == "building_area_m2")["lr"]
        assert ((other.exp() - 1).abs() <= 0.05 + 1e-6).all()
        assert 0.01 < (other != 0).mean() < 0.03


#: Robust spread of ln(unit price this year / last year) within a year, per family: light
#: two uniform × 0.98-1.02 draws (≈ 0.018); heavy and mixture two Student-t(3) deviations of
#: robust spread 0.04 (≈ 0.063), energy_audit.synthetic.noise._price_factors.
PRICE_SPREAD = {"light": 0.018, "heavy": 0.063, "mixture": 0.063}
PRICED = {
    "electricity_kwh": ("electricity_cost_yuan", "electricity_price_yuan_per_kwh"),
    "natural_gas_m3": ("natural_gas_cost_yuan", "gas_price_yuan_per_m3"),
    "water_m3": ("water_cost_yuan", "water_price_yuan_per_m3"),
}


@pytest.mark.parametrize("family", list(NOISE_FAMILIES))
def test_unit_prices_move_within_the_price_rules_bands(directory, family) -> None:
    returns, _ = make_returns(directory, YEARS, SEED, defects=False, noise=family)
    # about 10 % of the institutions report no cost in any year, the others every year
    none = returns.group_by("institution_id").agg(
        pl.col("electricity_cost_yuan").is_null().all().alias("none"),
        pl.col("electricity_cost_yuan").is_null().any().alias("some"),
    )
    assert 0.09 <= none["none"].mean() <= 0.12
    assert (none["some"] == none["none"]).all()
    bands = VerifySettings()
    for quantity, (cost, band) in PRICED.items():
        priced = returns.sort("institution_id", "year").filter(pl.col(quantity) > 0)
        price = priced.select(
            "year",
            p=pl.col(cost) / pl.col(quantity),
            d=(pl.col(cost) / pl.col(quantity)).log().diff().over("institution_id"),
        )
        low, high = getattr(bands, band)
        assert price["p"].drop_nulls().is_between(low, high).all(), quantity  # no CON-007…009
        spread = (
            price.filter(pl.col("d").is_not_null())
            .group_by("year")
            .agg(s=robust_spread(pl.col("d")))["s"]
            .median()
        )
        assert spread == pytest.approx(PRICE_SPREAD[family], rel=0.15), quantity
