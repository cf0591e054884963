"""The yearly returns of a directory: true values, then the defects of :mod:`.defects`."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl

from energy_audit.factors import kgce_per_canonical_unit
from energy_audit.synthetic.columns import (
    _COSTS,
    _FLOAT_COLUMNS,
    _INT_COLUMNS,
    _PRICED_ITEMS,
    _VALUE_COLUMNS,
    RETURNS_COLUMNS,
)
from energy_audit.synthetic.defects import _defect_rates, _empty_truth, _Injector
from energy_audit.synthetic.directory import (
    _district_table,
    district_trends,
)
from energy_audit.synthetic.institutions import _Institutions, _institutions
from energy_audit.synthetic.noise import (
    _WEATHER_RANGE,
    _BuildingChanges,
    _check_noise,
    _naturally_round,
    _not_round,
    _price_factors,
    _remeasured_area,
    _rounded_occupants,
    _YearlyNoise,
)
from energy_audit.synthetic.parameters import (
    _AREA_SIGMA,
    _BOILER_COAL_T_PER_M2,
    _BOILER_GAS_M3_PER_M2,
    _BY_AREA_ESTIMATE_SHARE,
    _DIESEL_L_PER_VEHICLE,
    _ELECTRIC_HEAT_KWH_PER_M2,
    _ELECTRICITY_PRICE,
    _GAS_PRICE,
    _GASOLINE_L_PER_VEHICLE,
    _HEAT_GJ_PER_M2,
    _KEY_USER_AREA_FACTOR,
    _LEVEL_AREA_FACTOR,
    _LEVEL_INTENSITY_FACTOR,
    _LPG_SHARE,
    _MIN_AREA_M2,
    _OTHER_ENERGY_SHARE,
    _PV_SHARE,
    _SECTOR_PROFILES,
    _SECTORS,
    _STREAM_BUILDINGS,
    _STREAM_DEFECTS,
    _STREAM_PRICES,
    _STREAM_REALISM,
    _STREAM_RETURNS,
    _WATER_PRICE,
    _rng,
)
from energy_audit.synthetic.totals import _OwnTotals

__all__ = [
    "make_returns",
]


#: Metered items some of whose clean figures are naturally round (estimated bills, quotas).
_METERED: Final = ("electricity_kwh", "natural_gas_m3", "heat_gj", "water_m3")


def _lognormal(
    rng: np.random.Generator, median: npt.NDArray[np.float64] | float, sigma: float, n: int
) -> npt.NDArray[np.float64]:
    """``n`` log-normal draws around ``median`` with log-spread ``sigma``."""
    return np.asarray(median) * np.exp(rng.normal(0.0, sigma, n))


def _check_years(years: Iterable[int]) -> npt.NDArray[np.int64]:
    out = np.asarray(sorted(set(int(y) for y in years)), dtype=np.int64)
    if out.size == 0:
        raise ValueError("years must name at least one year")
    if out.size > 1 and (np.diff(out) != 1).any():
        raise ValueError(
            f"years must be consecutive (last year = the row before), got {out.tolist()}"
        )
    return out


def _profile_array(field: str) -> npt.NDArray[np.float64]:
    return np.array([getattr(_SECTOR_PROFILES[s], field) for s in _SECTORS], dtype=np.float64)


def _true_values(
    inst: _Institutions,
    years: npt.NDArray[np.int64],
    trend: npt.NDArray[np.float64],
    rng: np.random.Generator,
    realism: np.random.Generator,
    building_rng: np.random.Generator,
    price_rng: np.random.Generator,
    noise: str,
) -> dict[str, npt.NDArray]:
    """Draw the true returns of every institution and year (institution-major grid).

    ``rng`` draws the institutions and the family's yearly noise (:mod:`.noise`), ``realism``
    the re-measured areas, round occupants and naturally round figures, ``building_rng`` the
    building changes of the ``mixture`` family, ``price_rng`` the yearly unit prices: each its
    own stream, so that the ``light`` family keeps the draws it had before the others existed.
    """
    m, ny = inst.size, years.size
    s, lv = inst.sector, inst.level

    # Static: area, occupants, equipment.
    area_median = (
        _profile_array("area_m2")[s]
        * np.asarray(_LEVEL_AREA_FACTOR)[lv]
        * np.where(inst.key_user, _KEY_USER_AREA_FACTOR, 1.0)
    )
    area = np.maximum(_lognormal(rng, area_median, _AREA_SIGMA, m), _MIN_AREA_M2)
    heated = area * rng.uniform(0.85, 1.0, m)
    occupants = np.maximum(
        np.round(area / _lognormal(rng, _profile_array("m2_per_occupant")[s], 0.25, m)), 3
    )
    staff = np.maximum(np.round(occupants * _profile_array("staff_share")[s]), 1)
    vehicles = rng.poisson(_profile_array("vehicles_mean")[s] * np.where(lv == 0, 1.5, 1.0))
    diesel_vehicles = rng.binomial(vehicles, _profile_array("diesel_vehicle_share")[s])

    # Static: yearly energy use before heating [kgce], its split, heating by billing type.
    nonheat = (
        area
        * _lognormal(rng, _profile_array("nonheat_kgce_per_m2")[s], 0.3, m)
        * np.asarray(_LEVEL_INTENSITY_FACTOR)[lv]
    )
    gas_user = rng.random(m) < _profile_array("gas_user_share")[s]
    gas_share = np.where(gas_user, _profile_array("gas_energy_share")[s], 0.0)
    coef = kgce_per_canonical_unit(None, int(years[0]))
    elec0 = nonheat * (1 - gas_share) / coef["electricity_kwh"]
    gas0 = nonheat * gas_share / coef["natural_gas_m3"]
    metered, by_area, none = (inst.heat == i for i in range(3))
    heat0 = np.where(
        metered | (by_area & (rng.random(m) < _BY_AREA_ESTIMATE_SHARE)),
        heated * _lognormal(rng, _HEAT_GJ_PER_M2, 0.15, m),
        0.0,
    )
    boiler_u = rng.random(m)
    coal_boiler = none & ~inst.central & (boiler_u < 0.2)
    electric_boiler = none & (boiler_u >= np.where(inst.central, 0.7, 0.8))
    gas_boiler = none & ~coal_boiler & ~electric_boiler
    gas_heat0 = np.where(gas_boiler, heated * _lognormal(rng, _BOILER_GAS_M3_PER_M2, 0.15, m), 0.0)
    coal0 = np.where(coal_boiler, heated * _lognormal(rng, _BOILER_COAL_T_PER_M2, 0.15, m), 0.0)
    elec_heat0 = np.where(
        electric_boiler, heated * _lognormal(rng, _ELECTRIC_HEAT_KWH_PER_M2, 0.2, m), 0.0
    )
    gasoline0 = (vehicles - diesel_vehicles) * _lognormal(rng, _GASOLINE_L_PER_VEHICLE, 0.25, m)
    diesel0 = diesel_vehicles * _lognormal(rng, _DIESEL_L_PER_VEHICLE, 0.25, m)
    lpg0 = np.where(~gas_user & (rng.random(m) < _LPG_SHARE), occupants * rng.uniform(3, 8, m), 0.0)
    other0 = np.where(rng.random(m) < _OTHER_ENERGY_SHARE, _lognormal(rng, 5.0, 0.5, m), 0.0)
    pv_share = np.where(
        rng.random(m) < _PV_SHARE * np.where(lv == 0, 1.5, 1.0), rng.uniform(0.02, 0.12, m), 0.0
    )
    water0 = occupants * _lognormal(rng, _profile_array("water_m3_per_occupant")[s], 0.25, m)
    price_e = rng.uniform(*_ELECTRICITY_PRICE, m)
    price_g = rng.uniform(*_GAS_PRICE, m)
    price_w = rng.uniform(*_WATER_PRICE, m)

    # Yearly: district trend, city weather (heating), the family's noise, building changes.
    i = np.repeat(np.arange(m), ny)
    yi = np.tile(np.arange(ny), m)
    trend_factor = (1.0 + trend[inst.district[i]]) ** yi
    weather = rng.uniform(*_WEATHER_RANGE, ny)[yi]
    yearly = _YearlyNoise(noise, m, ny, rng)
    building = _BuildingChanges(noise, m, ny, building_rng)
    measured = _remeasured_area(m, ny, realism) * building.area()

    def factor(item: str) -> npt.NDArray[np.float64]:
        return yearly.factor(item) * building.factor(item)

    elec = (
        elec0[i] * factor("electricity_kwh") + elec_heat0[i] * weather * factor("electricity_kwh")
    ) * trend_factor
    gas = (
        gas0[i] * factor("natural_gas_m3") + gas_heat0[i] * weather * factor("natural_gas_m3")
    ) * trend_factor
    values: dict[str, npt.NDArray] = {
        "year": years[yi],
        "building_area_m2": np.round(area[i] * measured, 2),
        "heated_area_m2": np.round(heated[i] * measured, 2),
        "occupants": _rounded_occupants(occupants[i] * factor("occupants"), occupants, i, realism),
        "staff_quota": staff[i].astype(np.int64),
        "vehicles": vehicles[i].astype(np.int64),
        "electricity_kwh": _not_round(elec, rng),
        "natural_gas_m3": _not_round(gas, rng),
        "coal_t": np.round(coal0[i] * weather * trend_factor * factor("coal_t"), 3),
        "gasoline_l": np.round(gasoline0[i] * trend_factor * factor("gasoline_l"), 2),
        "diesel_l": np.round(diesel0[i] * trend_factor * factor("diesel_l"), 2),
        "lpg_kg": np.round(lpg0[i] * trend_factor * factor("lpg_kg"), 1),
        "heat_gj": np.round(heat0[i] * weather * trend_factor * factor("heat_gj"), 2),
        "other_energy_tce": np.round(other0[i] * trend_factor * factor("other_energy_tce"), 3),
        "water_m3": _not_round(water0[i] * trend_factor * factor("water_m3"), rng),
    }
    for item in _METERED:  # estimated bills, fixed quotas
        values[item] = _naturally_round(values[item], realism)
    values["pv_generation_kwh"] = _not_round(values["electricity_kwh"] * pv_share[i], rng)
    prices = np.column_stack([price_e[i], price_g[i], price_w[i]]) * _price_factors(
        noise, m, ny, 3, price_rng
    )
    for k, (item, cost) in enumerate(zip(_PRICED_ITEMS, _COSTS, strict=True)):
        values[cost] = np.round(values[item] * prices[:, k], 2)
    values["_price"] = prices  # the institution's price of the year, for defects that bill
    values["_building_changed"] = building.changed
    values["_inst"] = i
    values["_yi"] = yi
    return values


def make_returns(
    directory: pl.DataFrame,
    years: Iterable[int],
    seed: int,
    defects: bool | Mapping[str, float] = True,
    *,
    noise: str = "light",
    districts: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Make the yearly returns of a directory, with injected defects and their truth.

    True values follow sector profiles (lognormal areas, occupants, energy per m² and water per
    person; hospitals high, schools low; students counted in occupants), heating by billing type
    (metered heat in GJ, own gas/coal/electric boilers where there is no district heating),
    vehicles and fuel, PV on some roofs, district trends (:func:`district_trends`), a city-wide
    weather factor and the yearly noise of the family ``noise`` (:data:`NOISE_FAMILIES`,
    :mod:`energy_audit.synthetic.noise`). In every family some figures are as people write
    them, none of which is a defect: about 1 % of the metered figures are naturally round
    (multiples of 100 or 1,000; the others are whole numbers that are not), many head counts
    are multiples of 10, about 2 % of the institutions a year re-measure their floor area
    (± 0.5-5 %).

    ``reported_total_tce`` is the institution's own total, computed from its own records: the
    true item figures, before any slip or typo, × the packaged standard-coal coefficients of
    the year (:func:`energy_audit.factors.kgce_per_canonical_unit`) or, for about 20 % of the
    institutions, natural gas at a provincial 1.2143 kgce/m³; rounded to 0.01 tce (70 %), 0.1
    tce (20 %) or 1 tce (10 %) (:mod:`energy_audit.synthetic.totals`). A unit slip or a typo
    therefore opens a gap between the reported total and the total recomputed from the reported
    items; copied figures copy the total with them; ``total_mismatch`` is a wrong total.

    Parameters
    ----------
    directory : polars.DataFrame
        A directory with the columns of :data:`DIRECTORY_COLUMNS` (e.g. from
        :func:`make_directory`). Institutions with status ``active`` are in scope every year.
    years : iterable of int
        Consecutive data years, e.g. ``range(2020, 2025)``.
    seed : int
        Random seed: the same directory, years, seed and family give the same frames.
    defects : bool or mapping of str to float, default True
        True for the default rates (:data:`DEFAULT_DEFECT_RATES`), False for none, or a mapping
        overriding the rate of some kinds (share of in-scope institution-years).
    noise : str, default "light"
        Noise family (:data:`NOISE_FAMILIES`): ``light``, ``heavy`` or ``mixture``.
    districts : polars.DataFrame, optional
        District table the directory was made with (default Tianjin's).

    Returns
    -------
    returns : polars.DataFrame
        The columns of :data:`RETURNS_COLUMNS` in canonical units, sorted by year, then
        directory order; duplicates and returns of unknown institutions follow each year.
    truth : polars.DataFrame
        One row per injected defect and field (columns :data:`TRUTH_SCHEMA`); ``field`` is
        null for defects of the whole return (missing, unknown, duplicate …).

    Raises
    ------
    ValueError
        If the directory lacks columns or has unknown codes, the years are not consecutive, a
        defect kind or the noise family is unknown.

    Examples
    --------
    >>> from energy_audit.synthetic import make_directory
    >>> directory = make_directory(300, seed=1)
    >>> returns, truth = make_returns(directory, range(2023, 2025), seed=1, noise="heavy")
    >>> returns.height > 500, truth["defect"].n_unique() > 15
    (True, True)
    """
    year_array = _check_years(years)
    rates = _defect_rates(defects)
    _check_noise(noise)
    table = _district_table(districts)
    rng = _rng(seed, _STREAM_RETURNS)
    defect_rng = _rng(seed, _STREAM_DEFECTS)
    realism = _rng(seed, _STREAM_REALISM)
    n_active = int((directory["status"] == "active").sum())
    n_phantom_rows = (
        0
        if rates["unknown_institution"] <= 0
        else max(1, round(rates["unknown_institution"] * n_active * year_array.size))
    )
    n_phantoms = math.ceil(n_phantom_rows / year_array.size) * 2 if n_phantom_rows else 0
    inst = _institutions(directory, table, n_phantoms, defect_rng)
    trend = district_trends(table)["intensity_change_per_year"].to_numpy()
    values = _true_values(
        inst,
        year_array,
        trend,
        rng,
        realism,
        _rng(seed, _STREAM_BUILDINGS),
        _rng(seed, _STREAM_PRICES),
        noise,
    )
    own_totals = _OwnTotals.draw(inst.size, realism)
    values["reported_total_tce"] = own_totals.total_tce(
        values, np.arange(values["year"].size), values["_inst"]
    )

    injector = _Injector(values, inst, year_array, rates, defect_rng, own_totals)
    injector.run()

    # The kept rows of the grid in grid order, then each set of duplicates (a later submission).
    keep = np.flatnonzero(injector.keep)
    grid_size = values["year"].size
    parts = [(keep, {c: values[c][keep] for c in _VALUE_COLUMNS}), *injector.extra]
    returns = pl.concat(
        [
            pl.DataFrame(
                {
                    "institution_id": inst.ids.gather(values["_inst"][rows]),
                    "name": injector.reported_names(rows),
                    **part,
                    "_order": k * grid_size + rows,
                }
            )
            for k, (rows, part) in enumerate(parts)
        ],
        how="vertical",
    )
    returns = (
        returns.with_columns(
            pl.col(list(_INT_COLUMNS)).cast(pl.Int64),
            pl.col(list(_FLOAT_COLUMNS)).cast(pl.Float64),
        )
        .with_columns(pl.col(_COSTS).fill_nan(None))  # no cost reported
        .sort("year", "_order")
        .select(RETURNS_COLUMNS)
    )
    truth = (pl.concat(injector.truth, how="vertical") if injector.truth else _empty_truth()).sort(
        "year", "institution_id", "defect", "field", nulls_last=True, maintain_order=True
    )
    return returns, truth
