"""Parameters of the synthetic city: illustrative values of the generator, not reference values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import numpy as np

__all__: list[str] = []


_REGION_NAME: Final = "天津市"
_CENTRAL_DISTRICTS: Final = frozenset({"120101", "120102", "120103", "120104", "120105", "120106"})
#: Relative number of institutions per district (district and street level).
_DISTRICT_SIZE: Final[Mapping[str, float]] = MappingProxyType(
    {
        "120101": 0.5, "120102": 0.8, "120103": 0.9, "120104": 1.0, "120105": 0.8,
        "120106": 0.6, "120110": 0.9, "120111": 1.0, "120112": 0.9, "120113": 0.9,
        "120114": 1.3, "120115": 1.1, "120116": 2.0, "120117": 0.7, "120118": 1.0,
        "120119": 1.0,
    }
)  # fmt: skip
#: True yearly change of energy and water intensity per district [fraction per year].
_DISTRICT_TREND: Final[Mapping[str, float]] = MappingProxyType(
    {
        "120101": -0.030, "120102": -0.025, "120103": -0.030, "120104": -0.020,
        "120105": -0.025, "120106": -0.015, "120110": 0.000, "120111": -0.020,
        "120112": 0.000, "120113": -0.020, "120114": 0.020, "120115": -0.010,
        "120116": 0.015, "120117": 0.000, "120118": -0.025, "120119": -0.030,
    }
)  # fmt: skip
_TREND_PATTERN: Final = (-0.03, -0.02, 0.0, -0.025, 0.02, -0.01, 0.0, -0.03)
#: Retired region codes (chars 3-8 of a credit code) still found on codes of a district, with
#: the share of the district's institutions that carry one.
_RETIRED_REGION_CODES: Final[Mapping[str, tuple[tuple[str, ...], float]]] = MappingProxyType(
    {"120119": (("120225",), 0.4), "120116": (("120107", "120108", "120109"), 0.15)}
)
_MUNICIPAL_REGION_CODE: Final = "120000"
_HEAT_BILLING_P: Final = {"central": (0.40, 0.55, 0.05), "outer": (0.25, 0.45, 0.30)}


@dataclass(frozen=True)
class _SectorProfile:
    """Energy and water profile of a sector (medians; lognormal spread)."""

    area_m2: float  # median building area of a municipal unit [m²]
    m2_per_occupant: float  # [m² per person]
    nonheat_kgce_per_m2: float  # energy except space heating [kgce/m²]
    gas_user_share: float  # share of institutions with a gas connection
    gas_energy_share: float  # share of non-heating energy from gas, for gas users
    vehicles_mean: float  # [vehicles]
    diesel_vehicle_share: float
    water_m3_per_occupant: float  # [m³ per person]
    staff_share: float  # staff quota / occupants
    key_user_share: float  # share flagged 重点用能单位 in the directory


_SECTOR_PROFILES: Final[Mapping[str, _SectorProfile]] = MappingProxyType(
    {
        "agency": _SectorProfile(15000, 35, 13.0, 0.6, 0.12, 3.0, 0.10, 18, 0.85, 0.01),
        "university": _SectorProfile(150000, 22, 6.0, 0.95, 0.20, 6.0, 0.20, 30, 0.12, 0.6),
        "school": _SectorProfile(20000, 18, 4.5, 0.5, 0.15, 0.3, 0.10, 7, 0.09, 0.005),
        "hospital": _SectorProfile(70000, 18, 22.0, 0.9, 0.25, 4.0, 0.40, 40, 0.45, 0.2),
        "venue": _SectorProfile(25000, 7, 12.0, 0.4, 0.10, 0.5, 0.10, 5, 0.15, 0.02),
        "research": _SectorProfile(10000, 40, 16.0, 0.5, 0.12, 1.5, 0.15, 25, 0.80, 0.02),
        "other_service": _SectorProfile(4000, 30, 10.0, 0.4, 0.12, 1.0, 0.15, 16, 0.70, 0.005),
        "organization": _SectorProfile(2500, 35, 9.0, 0.3, 0.10, 0.5, 0.05, 15, 0.80, 0.0),
    }
)
_SECTORS: Final = tuple(_SECTOR_PROFILES)
_LEVEL_AREA_FACTOR: Final = (1.0, 0.5, 0.2)  # municipal, district, subdistrict
_LEVEL_INTENSITY_FACTOR: Final = (1.1, 1.0, 0.9)
_AREA_SIGMA: Final = 0.5
_MIN_AREA_M2: Final = 150.0
_KEY_USER_AREA_FACTOR: Final = 2.5
_HEAT_GJ_PER_M2: Final = 0.33  # metered district heat [GJ/m² per season]
_BY_AREA_ESTIMATE_SHARE: Final = 0.2  # by-area billed institutions that still report heat
_BOILER_GAS_M3_PER_M2: Final = 8.5  # own gas boiler [m³/m²]
_BOILER_COAL_T_PER_M2: Final = 0.028  # own coal boiler [t/m²]
_ELECTRIC_HEAT_KWH_PER_M2: Final = 35.0  # electric heating [kWh/m²]
_PV_SHARE: Final = 0.08
_LPG_SHARE: Final = 0.04
_OTHER_ENERGY_SHARE: Final = 0.02
_GASOLINE_L_PER_VEHICLE: Final = 2200.0
_DIESEL_L_PER_VEHICLE: Final = 3500.0
# An institution's unit price [元 per unit], times the yearly factors of noise._price_factors
# (× 0.8-1.2 and the tariff's × 0.97-1.03: a clean electricity price stays inside the price
# rule's band 0.5-1.2 元/kWh)
_ELECTRICITY_PRICE: Final = (0.65, 0.95)  # [元/kWh]
_GAS_PRICE: Final = (3.0, 3.9)  # [元/m³]
_WATER_PRICE: Final = (4.5, 7.9)  # [元/m³]

# Seed streams: one independent generator per purpose, so that adding a draw in one place does
# not change the others.
_STREAM_DIRECTORY, _STREAM_RETURNS, _STREAM_DEFECTS, _STREAM_FILES = 1, 2, 3, 4
_STREAM_EVOLUTION, _STREAM_DIRECTORY_DEFECTS = 5, 6
_STREAM_REALISM, _STREAM_BUILDINGS = 7, 8  # realism of every noise family; building changes
_STREAM_PRICES = 9  # the yearly unit prices

# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _rng(seed: int, stream: int) -> np.random.Generator:
    """One independent random generator per (seed, purpose)."""
    return np.random.default_rng([int(seed), stream])
