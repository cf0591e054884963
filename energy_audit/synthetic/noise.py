"""How true figures vary from year to year (noise families), and how institutions write them.

A noise family (:data:`NOISE_FAMILIES`) says how an institution's true figures change from one
year to the next; every family shares the district trends, the city-wide weather of the heating
season and the realism below, none of which is a defect:

- ``light`` (the default): each item's yearly factor is independent, log-normal with σ 0.03
  clipped at ±0.06 (occupants: its square root), so that ln(this year / last year) has a
  robust spread (1.4826 · MAD) of about 0.045 (occupants 0.02) and never exceeds ±0.12 (plus
  weather and trend).
- ``heavy``: each institution's log level of each item is a random walk whose yearly step is
  Student-t with 3 degrees of freedom, scaled so that the robust spread of the step is
  :data:`_STEP_SPREAD` (0.25 for the fuels and heat, 0.20 for natural gas, 0.12 for
  electricity, 0.15 for water, 0.05 for occupants). A single step is capped at
  ``|ln 3|`` (:data:`_MAX_STEP`): a clean figure never changes by more than × 3 in one year
  but for the weather (× 0.9-1.1 on heating) and the trend (a few %). Student-t with 3
  degrees of freedom has heavy tails: 1.5 % of the steps lie beyond 4.5 robust spreads, where
  a normal puts 7 · 10⁻⁶.
- ``mixture``: ``heavy``, plus real building changes: about 3 % of the institutions a year
  (:data:`_BUILDING_CHANGE_SHARE`) gain or lose floor area (× 1.1-1.8 or × 0.55-0.9), and their
  occupants, energy (except vehicle fuel) and water follow proportionally, each with its own
  log-normal noise (σ 0.1): real changes, never defects.

Realism in every family:

- about 1 % of the clean metered figures (electricity, natural gas, heat, water of 1,000 units
  or more) are naturally round, a multiple of 100 or 1,000 (estimated bills, fixed quotas);
  the other electricity, gas and water figures are whole numbers that are not multiples of 100
  (heat is given to 0.01 GJ).
- half of the institutions with 300 occupants or more report them rounded, to a multiple of 10
  (100 from 3,000 occupants).
- about 2 % of the institutions a year re-measure their floor area (building and heated area ×
  (1 ± 0.5-5 %)), energy unchanged.
- costs are billed at unit prices that move: each tariff city-wide by × 0.97-1.03 a year, and
  each institution's price of each item by its own yearly deviation (:func:`_price_factors`:
  ``light`` × 0.98-1.02; ``heavy`` and ``mixture`` Student-t with 3 degrees of freedom of
  robust spread 0.04, capped at × 1.2 either way: billing periods that straddle the year, tariff
  mixes, late bills). About 10 % of the institutions report no costs at all
  (:data:`_NO_COST_SHARE`, costs are optional on the form).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import numpy as np
import numpy.typing as npt

from energy_audit.outliers.peer import MAD_TO_SIGMA

__all__ = [
    "NOISE_FAMILIES",
]

#: Noise families of :func:`energy_audit.synthetic.make_returns`, name → one-line description.
NOISE_FAMILIES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "light": (
            "independent yearly noise per item, log-normal σ 0.03 clipped at ±0.06: "
            "ln(this/last) robust spread ≈ 0.045, occupants 0.02 (the default)"
        ),
        "heavy": (
            "random walk of each item's log level, Student-t(3) steps capped at ×3: robust "
            "spread of ln(this/last) 0.25 fuels and heat, 0.20 gas, 0.12 electricity, 0.15 water, "
            "0.05 occupants"
        ),
        "mixture": (
            "heavy, plus real building changes: about 3 % of institutions a year gain or lose "
            "floor area (×1.1-1.8 or ×0.55-0.9), occupants, energy and water following"
        ),
    }
)

_YEAR_NOISE_SIGMA: Final = 0.03
_YEAR_NOISE_CLIP: Final = 0.06  # keeps true year-on-year changes below 13 %
_WEATHER_RANGE: Final = (0.95, 1.05)

#: Robust spread (1.4826 · MAD) of a yearly step of the log level, per item [ln units].
_STEP_SPREAD: Final[Mapping[str, float]] = MappingProxyType(
    {
        "electricity_kwh": 0.12,
        "natural_gas_m3": 0.20,
        "coal_t": 0.25,
        "gasoline_l": 0.25,
        "diesel_l": 0.25,
        "lpg_kg": 0.25,
        "heat_gj": 0.25,
        "other_energy_tce": 0.25,
        "water_m3": 0.15,
        "occupants": 0.05,
    }
)
_T_DF: Final = 3
#: Robust spread of Student-t with 3 degrees of freedom: 1.4826 × its 75 % quantile (0.76489).
_T3_ROBUST_SPREAD: Final = MAD_TO_SIGMA * 0.7648923284043447
#: Largest yearly step of a log level: ln 3 (a clean figure changes by at most × 3 a year).
_MAX_STEP: Final = math.log(3.0)

_BUILDING_CHANGE_SHARE: Final = 0.03  # institutions a year (mixture)
_BUILDING_GROWTH: Final = (1.1, 1.8)
_BUILDING_SHRINK: Final = (0.55, 0.9)
_BUILDING_FOLLOW_SIGMA: Final = 0.1  # own noise of what follows a building change [ln units]
#: Items that follow a building change (vehicle fuel does not).
_FOLLOWS_BUILDING: Final = frozenset(
    {
        "occupants",
        "electricity_kwh",
        "natural_gas_m3",
        "coal_t",
        "lpg_kg",
        "heat_gj",
        "other_energy_tce",
        "water_m3",
    }
)

_TARIFF_CHANGE: Final = (0.97, 1.03)  # city-wide yearly factor of each tariff
_PRICE_SPREAD: Final = 0.04  # robust spread of an institution's yearly price deviation [ln]
_MAX_PRICE_DEVIATION: Final = math.log(1.2)  # the deviation's cap [ln units]
_NO_COST_SHARE: Final = 0.1  # of the institutions: no cost reported in any year

_REMEASURE_SHARE: Final = 0.02  # institutions a year
_REMEASURE_CHANGE: Final = (0.005, 0.05)  # relative change of the area measured
_ROUND_FIGURE_SHARE: Final = 0.01  # of the clean metered figures of 1,000 units or more
_ROUND_FIGURE_MIN: Final = 1_000.0
_ROUND_TO_1000_SHARE: Final = 0.4  # of the round figures of 10,000 units or more
_ROUND_OCCUPANTS_SHARE: Final = 0.5  # of the institutions with 300 occupants or more
_ROUND_OCCUPANTS_MIN: Final = 300
_ROUND_OCCUPANTS_100_MIN: Final = 3_000


def _check_noise(noise: str) -> str:
    """Return ``noise`` if it names a family of :data:`NOISE_FAMILIES`.

    Raises
    ------
    ValueError
        If it does not.
    """
    if noise not in NOISE_FAMILIES:
        raise ValueError(f"unknown noise family {noise!r}; known: {list(NOISE_FAMILIES)}")
    return noise


class _YearlyNoise:
    """Multiplicative yearly factors of the true figures of a grid (institution-major).

    ``light`` draws a new independent factor at every call (so two parts of one item, e.g.
    electricity for appliances and for heating, get their own noise); ``heavy`` and ``mixture``
    draw one random walk per item at its first call and give it to every part of the item.
    """

    def __init__(self, family: str, m: int, ny: int, rng: np.random.Generator) -> None:
        self.family = _check_noise(family)
        self.m, self.ny = m, ny
        self.rng = rng
        self._walks: dict[str, npt.NDArray[np.float64]] = {}

    def factor(self, item: str) -> npt.NDArray[np.float64]:
        """Yearly factor of ``item`` for every grid row [1]."""
        if self.family == "light":
            step = self.rng.normal(0.0, _YEAR_NOISE_SIGMA, self.m * self.ny)
            noise = np.exp(np.clip(step, -_YEAR_NOISE_CLIP, _YEAR_NOISE_CLIP))
            return np.sqrt(noise) if item == "occupants" else noise
        if item not in self._walks:
            self._walks[item] = self._walk(_STEP_SPREAD[item])
        return self._walks[item]

    def _walk(self, spread: float) -> npt.NDArray[np.float64]:
        """Exp of a random walk starting at 0, Student-t(3) steps of robust spread ``spread``."""
        scale = spread / _T3_ROBUST_SPREAD
        steps = self.rng.standard_t(_T_DF, (self.m, self.ny - 1)) * scale
        np.clip(steps, -_MAX_STEP, _MAX_STEP, out=steps)
        level = np.zeros((self.m, self.ny))
        np.cumsum(steps, axis=1, out=level[:, 1:])
        return np.exp(level).ravel()


class _BuildingChanges:
    """Real building changes of the ``mixture`` family (none in the other families).

    In a year of change the floor area is multiplied by a factor drawn from
    :data:`_BUILDING_GROWTH` or :data:`_BUILDING_SHRINK` (half each), and each item of
    :data:`_FOLLOWS_BUILDING` by the same factor times its own log-normal noise; the new level
    stays in the following years.
    """

    def __init__(self, family: str, m: int, ny: int, rng: np.random.Generator) -> None:
        self.rng = rng
        self.shape = (m, ny)
        if family != "mixture" or ny < 2:
            self.events = np.zeros(self.shape, dtype=bool)
        else:
            self.events = rng.random(self.shape) < _BUILDING_CHANGE_SHARE
            self.events[:, 0] = False  # a change happens between two years
        n = int(self.events.sum())
        grow = rng.random(n) < 0.5
        change = np.where(
            grow, rng.uniform(*_BUILDING_GROWTH, n), rng.uniform(*_BUILDING_SHRINK, n)
        )
        self.log_change = np.zeros(self.shape)
        self.log_change[self.events] = np.log(change)
        self._factors: dict[str, npt.NDArray[np.float64]] = {}

    @property
    def changed(self) -> npt.NDArray[np.bool_]:
        """Grid rows of a year with a building change."""
        return self.events.ravel()

    def area(self) -> npt.NDArray[np.float64]:
        """Factor of the floor area on every grid row [1]."""
        return np.exp(np.cumsum(self.log_change, axis=1)).ravel()

    def factor(self, item: str) -> npt.NDArray[np.float64]:
        """Factor of ``item`` on every grid row: the area's, with the item's own noise [1].

        Drawn at the item's first call; every part of the item (e.g. electricity for
        appliances and for heating) gets the same.
        """
        if item not in _FOLLOWS_BUILDING or not self.events.any():
            return np.ones(self.events.size)
        if item not in self._factors:
            own = np.zeros(self.shape)
            own[self.events] = self.rng.normal(0.0, _BUILDING_FOLLOW_SIGMA, int(self.events.sum()))
            self._factors[item] = np.exp(np.cumsum(self.log_change + own, axis=1)).ravel()
        return self._factors[item]


def _price_factors(
    family: str, m: int, ny: int, items: int, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """Factor of each item's unit price on every grid row, one column per item [1].

    The city-wide tariff of the year (:data:`_TARIFF_CHANGE`) times the institution's own
    deviation of the year: ``light`` uniform × 0.98-1.02; ``heavy`` and ``mixture``
    Student-t(3) of robust spread :data:`_PRICE_SPREAD` [ln units], capped at
    :data:`_MAX_PRICE_DEVIATION`. Rows of the institutions that report no costs
    (:data:`_NO_COST_SHARE`) are NaN.
    """
    tariff = rng.uniform(*_TARIFF_CHANGE, (ny, items))
    if family == "light":
        own = rng.uniform(0.98, 1.02, (m, ny, items))
    else:
        steps = rng.standard_t(_T_DF, (m, ny, items)) * (_PRICE_SPREAD / _T3_ROBUST_SPREAD)
        own = np.exp(np.clip(steps, -_MAX_PRICE_DEVIATION, _MAX_PRICE_DEVIATION))
    factors = own * tariff[None, :, :]
    factors[rng.random(m) < _NO_COST_SHARE] = np.nan
    return factors.reshape(m * ny, items)


def _remeasured_area(m: int, ny: int, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """Factor of the measured floor area on every grid row: re-measures of ± 0.5-5 % [1]."""
    events = rng.random((m, ny)) < _REMEASURE_SHARE
    events[:, 0] = False
    n = int(events.sum())
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    log_change = np.zeros((m, ny))
    log_change[events] = np.log1p(sign * rng.uniform(*_REMEASURE_CHANGE, n))
    return np.exp(np.cumsum(log_change, axis=1)).ravel()


def _not_round(
    values: npt.NDArray[np.float64], rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """Round to whole units and move exact multiples of 100 off the round number (meters).

    A multiple of 100 moves by 1 to 9 units either way, so that a small figure (100 m³ of
    water) is not changed by much.
    """
    out = np.round(values)
    round_ones = (out > 0) & (np.mod(out, 100) == 0)
    shift = rng.integers(0, 18, int(round_ones.sum()))
    out[round_ones] += np.where(shift < 9, shift - 9, shift - 8)
    return out


def _naturally_round(
    values: npt.NDArray[np.float64], rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """Round :data:`_ROUND_FIGURE_SHARE` of the figures of 1,000 or more to 100 (or 1,000).

    An estimated bill or a fixed quota: a figure of 10,000 or more becomes a multiple of 1,000
    with probability :data:`_ROUND_TO_1000_SHARE`, else of 100. Returns a new array.
    """
    out = values.copy()
    rows = np.flatnonzero(
        (values >= _ROUND_FIGURE_MIN) & (rng.random(values.size) < _ROUND_FIGURE_SHARE)
    )
    thousand = (values[rows] >= 10 * _ROUND_FIGURE_MIN) & (
        rng.random(rows.size) < _ROUND_TO_1000_SHARE
    )
    step = np.where(thousand, 1000.0, 100.0)
    out[rows] = np.round(values[rows] / step) * step
    return out


def _rounded_occupants(
    occupants: npt.NDArray[np.float64],
    base: npt.NDArray[np.float64],
    inst: npt.NDArray[np.int64],
    rng: np.random.Generator,
) -> npt.NDArray[np.int64]:
    """Occupants as reported: whole, at least 1, rounded to 10 (100) by the institutions that do.

    Parameters
    ----------
    occupants : numpy.ndarray
        True occupants of every grid row [persons].
    base : numpy.ndarray
        Occupants of each institution in the first year, which decide the habit [persons].
    inst : numpy.ndarray
        Institution of every grid row.
    rng : numpy.random.Generator
        Random generator (the habit of each institution).
    """
    habit = (base >= _ROUND_OCCUPANTS_MIN) & (rng.random(base.size) < _ROUND_OCCUPANTS_SHARE)
    step = np.where(base >= _ROUND_OCCUPANTS_100_MIN, 100.0, 10.0)
    whole = np.maximum(np.round(occupants), 1)
    rounded = np.maximum(np.round(occupants / step[inst]) * step[inst], step[inst])
    return np.where(habit[inst], rounded, whole).astype(np.int64)
