"""The one table of unit-slip factors: per column, and seen from an implied price."""

import pytest

from energy_audit import slips
from energy_audit.factors import density_kg_per_l
from energy_audit.outliers.yoy import DECIMAL_SLIP_FACTORS
from energy_audit.slips import PriceSlip, price_slip_factors, slip_factors_for

DECIMAL = (1e-4, 1e-3, 1e-2, 0.1, 10.0, 100.0, 1e3, 1e4)  # 10ᵏ, k = ±1…±4 (domain.md §6)


def test_decimal_columns_slip_by_powers_of_ten():
    assert slip_factors_for("electricity_kwh") == pytest.approx(DECIMAL)
    assert slip_factors_for("electricity_cost_yuan") == pytest.approx(DECIMAL)


def test_a_price_of_two_decimal_columns_slips_by_powers_of_ten_through_either_figure():
    got = price_slip_factors("electricity_kwh", "electricity_cost_yuan")
    assert [s.multiplier for s in got] == pytest.approx(DECIMAL)
    assert {s.figures for s in got} == {("quantity", "cost")}


def test_a_litre_quantity_adds_its_density_as_a_slip_of_the_quantity_only():
    # kilograms typed under litres: quantity × 0.73 (gasoline), so the price ÷ 0.73
    d = density_kg_per_l(None, "gasoline")
    assert d == pytest.approx(0.73)
    got = {round(s.multiplier, 6): s.figures for s in price_slip_factors("gasoline_l", "x")}
    assert got[round(1 / d, 6)] == ("quantity",)
    assert got[round(d, 6)] == ("quantity",)
    assert got[10.0] == ("quantity", "cost")
    assert len(got) == len(DECIMAL) + 2


def test_price_factors_are_the_reciprocal_quantity_factors_and_the_cost_factors():
    for slip in price_slip_factors("diesel_l", "electricity_cost_yuan"):
        assert isinstance(slip, PriceSlip)
        from_quantity = any(
            slip.multiplier == pytest.approx(1 / f) for f in slip_factors_for("diesel_l")
        )
        from_cost = any(
            slip.multiplier == pytest.approx(f) for f in slip_factors_for("electricity_cost_yuan")
        )
        assert ("quantity" in slip.figures) == from_quantity
        assert ("cost" in slip.figures) == from_cost


def test_a_change_of_the_table_reaches_both(monkeypatch):
    monkeypatch.setattr(slips, "DECIMAL_SLIP_FACTORS", (*DECIMAL_SLIP_FACTORS, 3.0))
    assert 3.0 in slip_factors_for("water_m3")
    got = {
        round(s.multiplier, 9): s.figures for s in price_slip_factors("water_m3", "water_cost_yuan")
    }
    assert got[3.0] == ("cost",)  # a cost three times its true value
    assert got[round(1 / 3, 9)] == ("quantity",)  # a quantity three times its true value
