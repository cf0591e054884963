"""The institution's own total (``reported_total_tce``)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from energy_audit.factors import kgce_per_canonical_unit
from energy_audit.synthetic.columns import _ENERGY_ITEMS

__all__: list[str] = []


def _total_tce(
    values: Mapping[str, npt.NDArray], rows: npt.NDArray[np.int64], years: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """Σ items × standard-coal coefficients of the rows' years [tce], rounded to 0.001."""
    out = np.zeros(rows.size)
    row_years = values["year"][rows]
    for year in np.unique(row_years):
        coef = kgce_per_canonical_unit(None, int(year))
        here = row_years == year
        kgce = sum(values[c][rows[here]] * coef[c] for c in _ENERGY_ITEMS)
        out[here] = kgce / 1000.0
    return np.round(out, 3)
