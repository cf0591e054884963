"""The institution's own total against its items: hand-computed cases of rounding and of the
provincial natural-gas coefficient (domain.md §2), the one definition CON-003 and STA-013 share."""

import polars as pl
import pytest

from energy_audit.errors import SettingsError
from energy_audit.factors import ITEM_COLUMNS
from energy_audit.reconciliation import (
    RECONCILIATION_COLUMNS,
    reconcile_totals,
    reported_decimals,
    rounding_tce,
)

GAS = (("natural_gas_m3", 1.2143),)  # some provincial standards; GB/T 2589-2020: 1.33


def returns(reported: list[float | None], **items: float) -> pl.DataFrame:
    """Returns of 2024 with the given items (others 0) and own totals [tce]."""
    n = len(reported)
    values = {c: [items.get(c, 0.0)] * n for c in ITEM_COLUMNS.values()}
    return pl.DataFrame(
        {"year": [2024] * n, **values, "reported_total_tce": reported},
        schema_overrides={"reported_total_tce": pl.Float64},
    )


def test_decimals_and_rounding_of_a_reported_total():
    x = pl.Series([97.0, 96.6, 96.64, 96.643, 96.64291, 100.0, 0.0])
    decimals = pl.select(reported_decimals(pl.lit(x))).to_series().to_list()
    assert decimals == [0, 1, 2, 3, 3, 0, 0]
    rounding = pl.select(rounding_tce(pl.lit(x))).to_series()
    # half a unit of the last decimal, plus 1e-6 of the total
    assert rounding.to_list() == pytest.approx(
        [
            0.5 + 97e-6,
            0.05 + 96.6e-6,
            0.005 + 96.64e-6,
            0.0005 + 96.643e-6,
            0.0005 + 96.64291e-6,
            0.5 + 100e-6,
            0.5,
        ]
    )


def test_a_total_rounded_to_whole_tce_reconciles_and_a_real_gap_does_not():
    # 20,000 kWh × 0.1229 kgce/kWh = 2,458 kgce = 2.458 tce
    out = reconcile_totals(returns([2.0, 3.0, 2.5, 2.4, 2.46], electricity_kwh=20_000.0))
    assert out["computed_total_tce"].to_list() == pytest.approx([2.458] * 5)
    assert out["total_gap_tce"].to_list() == pytest.approx([-0.458, 0.542, 0.042, -0.058, 0.002])
    # 2 (±0.5) holds 2.458; 3 (±0.5) does not; 2.5 (±0.05) does; 2.4 (±0.05) does not
    assert out["is_reconciled"].to_list() == [True, False, True, False, True]


def test_gas_at_the_provincial_coefficient_reconciles():
    # 500,000 kWh × 0.1229 + 200,000 m³ × 1.33 + 8,000 L × 1.4714 kgce/kg × 0.73 kg/L
    # = 61,450 + 266,000 + 8,592.976 = 336,042.976 kgce; with gas at 1.2143: 312,902.976 kgce
    frame = returns(
        [312.90, 336.04, 320.0, None],
        electricity_kwh=500_000.0,
        natural_gas_m3=200_000.0,
        gasoline_l=8_000.0,
    )
    out = reconcile_totals(frame, alternative_coefficients=GAS)
    assert out["computed_total_tce"].to_list() == pytest.approx([336.042976] * 4)
    assert out["alternative_total_tce"].to_list() == pytest.approx([312.902976] * 4)
    assert out["alternative_gap_tce"][0] == pytest.approx(-0.002976)
    assert out["is_reconciled"].to_list() == [True, True, False, None]  # None: not reported
    # without the accepted alternative, the provincial total is a gap
    plain = reconcile_totals(frame)
    assert plain["is_reconciled"].to_list() == [False, True, False, None]
    assert plain["alternative_total_tce"].equals(plain["computed_total_tce"])


def test_the_frame_kind_and_its_columns_are_kept():
    frame = returns([2.0], electricity_kwh=20_000.0).with_columns(pl.lit("X").alias("name"))
    lazy = reconcile_totals(frame.lazy(), alternative_coefficients={"natural_gas_m3": 1.2143})
    assert isinstance(lazy, pl.LazyFrame)
    out = lazy.collect()
    assert out.columns == [*frame.columns, *RECONCILIATION_COLUMNS]
    assert out.select(frame.columns).equals(frame)
    again = reconcile_totals(out)  # existing columns of those names are replaced
    assert again.columns == out.columns


def test_without_a_year_or_a_total_nothing_is_decided():
    frame = pl.DataFrame({"year": [None, 2024], "electricity_kwh": [1000.0, None]})
    out = reconcile_totals(frame.cast({"year": pl.Int64}))
    assert out["computed_total_tce"].to_list() == [None, 0.0]
    assert out["is_reconciled"].to_list() == [None, None]  # no reported_total_tce column


@pytest.mark.parametrize(
    ("alternatives", "match"),
    [
        ((("natural_gas", 1.2143),), r"替代折标系数：'natural_gas' 不是能源分项列"),
        ((("water_m3", 1.0),), r"'water_m3' 不是能源分项列"),
        ((("natural_gas_m3", 0.0),), r"natural_gas_m3 的系数 0.0 应为正数"),
    ],
)
def test_unusable_alternative_coefficients_are_refused(alternatives, match):
    with pytest.raises(SettingsError, match=match):
        reconcile_totals(returns([1.0]), alternative_coefficients=alternatives)
