"""How true figures vary from year to year."""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

__all__: list[str] = []

_YEAR_NOISE_SIGMA: Final = 0.03
_YEAR_NOISE_CLIP: Final = 0.06  # keeps true year-on-year changes below 30 %
_WEATHER_RANGE: Final = (0.95, 1.05)


def _not_round(
    values: npt.NDArray[np.float64], rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """Round to whole units and move exact multiples of 100 off the round number (meters)."""
    out = np.round(values)
    round_ones = (out > 0) & (np.mod(out, 100) == 0)
    out[round_ones] += rng.integers(1, 100, int(round_ones.sum()))
    return out


def _lognormal(
    rng: np.random.Generator, median: npt.NDArray[np.float64] | float, sigma: float, n: int
) -> npt.NDArray[np.float64]:
    return np.asarray(median) * np.exp(rng.normal(0.0, sigma, n))
