"""The institution's own total (``reported_total_tce``), computed from its own records.

An institution computes its total from its true item figures, before any slip or typo of the
return: so a unit slip or a typo opens a gap between the reported total and the total recomputed
from the reported items, a signal the statistical stage can use. Most institutions use the
packaged coefficients of the year (:func:`energy_audit.factors.kgce_per_canonical_unit`); about
20 % use 1.2143 kgce/m³ for natural gas, a provincial standard (domain.md §2); totals are
rounded to 0.01 tce (70 %), 0.1 tce (20 %) or 1 tce (10 %). Each institution keeps its way
every year.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from energy_audit.factors import kgce_per_canonical_unit
from energy_audit.synthetic.columns import _ENERGY_ITEMS

__all__: list[str] = []

#: Natural gas coefficient of some provincial standards [kgce/m³] (domain.md §2; GB/T 2589-2020
#: has 1.3300). A parameter of the generator: the library's tables keep the national value.
_PROVINCIAL_GAS_KGCE_PER_M3: Final = 1.2143
_PROVINCIAL_GAS_SHARE: Final = 0.2
#: Rounding of the own total [tce] and the share of institutions that round so.
_TOTAL_STEPS: Final = (0.01, 0.1, 1.0)
_TOTAL_STEP_SHARES: Final = (0.7, 0.2, 0.1)


@dataclass(frozen=True)
class _OwnTotals:
    """How each institution computes its own total: gas coefficient and rounding."""

    provincial_gas: npt.NDArray[np.bool_]  # 1.2143 kgce/m³ for natural gas
    step: npt.NDArray[np.float64]  # rounding of the total [tce]

    @classmethod
    def draw(cls, m: int, rng: np.random.Generator) -> _OwnTotals:
        """Draw the way of ``m`` institutions."""
        provincial = rng.random(m) < _PROVINCIAL_GAS_SHARE
        step = rng.choice(np.asarray(_TOTAL_STEPS), size=m, p=np.asarray(_TOTAL_STEP_SHARES))
        return cls(provincial, step)

    def total_tce(
        self,
        values: Mapping[str, npt.NDArray],
        rows: npt.NDArray[np.int64],
        inst: npt.NDArray[np.int64],
    ) -> npt.NDArray[np.float64]:
        """Own total of ``rows`` of ``values`` [tce], each row of institution ``inst``.

        Σ items × the coefficients of the row's year (natural gas at 1.2143 kgce/m³ where the
        institution uses the provincial value), rounded to the institution's step; a positive
        total that would round to 0 is rounded to 0.01 tce instead.
        """
        out = np.zeros(rows.size)
        row_years = values["year"][rows]
        gas = self.provincial_gas[inst]
        for year in np.unique(row_years):
            coef = kgce_per_canonical_unit(None, int(year))
            here = row_years == year
            r = rows[here]
            kgce = sum(values[c][r] * coef[c] for c in _ENERGY_ITEMS)
            kgce = kgce + np.where(
                gas[here],
                values["natural_gas_m3"][r]
                * (_PROVINCIAL_GAS_KGCE_PER_M3 - coef["natural_gas_m3"]),
                0.0,
            )
            out[here] = kgce / 1000.0
        step = self.step[inst]
        rounded = np.round(np.round(out / step) * step, 2)
        return np.where((rounded == 0) & (out > 0), np.round(out, 2), rounded)
