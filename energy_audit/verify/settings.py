"""Settings of a verification run: every threshold of every rule, in one frozen object.

Defaults follow review practice (domain.md §6): a change of area or occupants over 10 % needs an
explanation; electricity in Tianjin costs about 0.5-1.2 元/kWh. Bands for gas and water prices
are sensible defaults for Tianjin public institutions, not published values [unverified]: the
office should confirm them and can override any field.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from energy_audit.errors import SettingsError


@dataclass(frozen=True)
class VerifySettings:
    """Thresholds of the verification rules (serialisable: :meth:`to_dict`).

    Attributes
    ----------
    area_change_max_pct : float
        Largest change of building area from last year [%] without a finding (CON rules).
    occupants_change_max_pct : float
        Largest change of occupants from last year [%] without a finding.
    total_tolerance_pct : float
        Largest difference between the institution's own total (reported_total_tce) and
        Σ items × coefficients [% of the computed total] without a finding.
    total_tolerance_tce : float
        ... or in absolute terms [tce] (rounding on small totals); a finding needs both.
    electricity_price_yuan_per_kwh : tuple of float
        Plausible band of the implied electricity price [元/kWh] (domain.md §6: 0.5-1.2).
    gas_price_yuan_per_m3 : tuple of float
        Plausible band of the implied natural-gas price [元/m³] [unverified default].
    water_price_yuan_per_m3 : tuple of float
        Plausible band of the implied water price [元/m³] [unverified default].
    unit_slip_factors : tuple of float
        Factors a unit slip multiplies a quantity by (10, 1,000, 10,000): when the implied price
        is off by about one of them, the corrected quantity is suggested.
    unit_slip_tolerance : float
        How close (as a ratio, e.g. 0.25 = within 25 %) the price ratio must be to a factor.
    vehicle_fuel_columns : tuple of str
        Returns columns that count as vehicle fuel (the form's vehicle-fuel lines 汽油, 柴油).
        LPG is left out: in public institutions it is a canteen fuel; add ``lpg_kg`` where LPG
        vehicles run.
    region_code : str
        Region whose emission factors and districts apply (Tianjin 120000).
    coefficient_table : str or None
        Path of a user coefficient table (None: the packaged GB/T 2589-2020 table).
    """

    area_change_max_pct: float = 10.0
    occupants_change_max_pct: float = 10.0
    total_tolerance_pct: float = 2.0
    total_tolerance_tce: float = 0.05
    electricity_price_yuan_per_kwh: tuple[float, float] = (0.5, 1.2)
    gas_price_yuan_per_m3: tuple[float, float] = (2.0, 6.0)
    water_price_yuan_per_m3: tuple[float, float] = (2.5, 12.0)
    unit_slip_factors: tuple[float, ...] = (10.0, 1000.0, 10000.0)
    unit_slip_tolerance: float = 0.25
    vehicle_fuel_columns: tuple[str, ...] = ("gasoline_l", "diesel_l")
    region_code: str = "120000"
    coefficient_table: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a JSON-serialisable dict."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "settings") -> VerifySettings:
        """Build settings from a dict such as :meth:`to_dict` returns; absent keys keep defaults.

        Raises
        ------
        SettingsError
            If a key is unknown or a value has the wrong shape.
        """
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise SettingsError(f"{where}: unknown setting(s) {', '.join(unknown)}")
        converted: dict[str, Any] = {}
        for name, value in values.items():
            default = getattr(cls(), name)
            if isinstance(default, tuple):
                if not isinstance(value, list | tuple):
                    raise SettingsError(f"{where}: {name} must be a list, got {value!r}")
                value = tuple(value)
            elif isinstance(default, float) and isinstance(value, int | float):
                value = float(value)
            converted[name] = value
        return cls(**converted)

    @classmethod
    def from_json(cls, path: str | Path) -> VerifySettings:
        """Read settings from a JSON file (an object of setting → value).

        Raises
        ------
        SettingsError
            If the file cannot be read or holds unknown settings.
        """
        try:
            values = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SettingsError(f"{path}: cannot read settings: {exc}") from exc
        if not isinstance(values, dict):
            raise SettingsError(f"{path}: settings must be a JSON object")
        return cls.from_dict(values, str(path))
