"""Unit-slip factors of the returns columns: the one table the slip rules compare ratios with.

Review practice (domain.md §6): a figure in 万 units typed under the base unit (×10⁻⁴), kg for t
or MJ for GJ (×1,000), an extra digit (×10), kilograms of fuel typed under litres (× the fuel's
density). :func:`slip_factors_for` gives a column's factors; the generic matchers of
:mod:`energy_audit.outliers.yoy` take them as an argument (they know no contract), the price
rules of :mod:`energy_audit.verify.consistency` take :func:`price_slip_factors`, the factors of
a price's quantity and cost columns seen from the price.
"""

from __future__ import annotations

import math
from typing import Final, Literal, NamedTuple

from energy_audit import contract
from energy_audit.factors import TableSource, density_kg_per_l
from energy_audit.outliers.yoy import DECIMAL_SLIP_FACTORS

__all__ = ["PriceSlip", "price_slip_factors", "slip_factors_for"]


def slip_factors_for(column: str, coefficients: TableSource | None = None) -> tuple[float, ...]:
    """Unit-slip factors a ratio to last year is compared with, for one returns column.

    Every column gets :data:`DECIMAL_SLIP_FACTORS` (10ᵏ, k = ±1…±4; 1,000 and 1/1,000 cover
    MJ typed for GJ and kg typed for t). A litre column of the data contract (unit ``l`` with
    an energy ``item``: ``gasoline_l``, ``diesel_l``) also gets the item's density d [kg/L]
    and 1/d: kilograms typed under litres give a ratio d (gasoline 0.73, diesel 0.85;
    domain.md §2, §6), and the reverse 1/d.

    Parameters
    ----------
    column : str
        Column name; columns outside the returns contract get the decimal factors only.
    coefficients : str, os.PathLike, polars.DataFrame, polars.LazyFrame or None
        Coefficient table giving the densities
        (:func:`energy_audit.factors.density_kg_per_l`); ``None`` for the packaged one.

    Returns
    -------
    tuple of float
        The factors, ascending.

    Raises
    ------
    SettingsError
        If the coefficient table is unusable or lacks the item's density.

    Examples
    --------
    >>> slip_factors_for("electricity_kwh")
    (0.0001, 0.001, 0.01, 0.1, 10.0, 100.0, 1000.0, 10000.0)
    >>> [round(f, 4) for f in slip_factors_for("gasoline_l")[4:6]]
    [0.73, 1.3699]
    """
    factors = list(DECIMAL_SLIP_FACTORS)
    returns = contract.table("returns")
    if column in returns.names:
        spec = returns.column(column)
        if spec.unit == "l" and spec.item is not None:
            density = density_kg_per_l(coefficients, spec.item)
            factors += [density, 1.0 / density]
    return tuple(sorted(factors))


Figure = Literal["quantity", "cost"]
"""The figure of a price that slipped: its quantity or its cost."""

_FIGURES: Final[tuple[Figure, ...]] = ("quantity", "cost")


class PriceSlip(NamedTuple):
    """A unit slip seen from an implied price (cost ÷ quantity).

    Attributes
    ----------
    multiplier : float
        m: the price read is the true price × m.
    figures : tuple of {"quantity", "cost"}
        The figures whose slip by a factor of their column moves the price by m: the quantity
        read f times its true value gives m = 1/f, the cost read f times its true value m = f.
    """

    multiplier: float
    figures: tuple[Figure, ...]


def price_slip_factors(
    quantity: str, cost: str, coefficients: TableSource | None = None
) -> tuple[PriceSlip, ...]:
    """Multipliers a unit slip of either figure moves an implied price (cost ÷ quantity) by.

    A price is cost ÷ quantity: a slip of the quantity by a factor f of
    :func:`slip_factors_for` (``quantity``) moves the price by 1/f, a slip of the cost by a
    factor f of :func:`slip_factors_for` (``cost``) by f. Both columns' factors, seen from the
    price, so the price rules and the statistical slip rule share one table.

    Parameters
    ----------
    quantity, cost : str
        Returns columns of the quantity and of its cost (``electricity_kwh``,
        ``electricity_cost_yuan``).
    coefficients : str, os.PathLike, polars.DataFrame, polars.LazyFrame or None
        Coefficient table giving the densities of litre columns (:func:`slip_factors_for`).

    Returns
    -------
    tuple of PriceSlip
        One per distinct multiplier (equal within 1e-9 relative), ascending, each with the
        figures that can explain it.

    Raises
    ------
    SettingsError
        If the coefficient table is unusable or lacks a litre column's density.

    Examples
    --------
    >>> price_slip_factors("electricity_kwh", "electricity_cost_yuan")[-1]
    PriceSlip(multiplier=10000.0, figures=('quantity', 'cost'))
    >>> [(round(m, 4), figures) for m, figures in price_slip_factors("gasoline_l", "x")
    ...  if figures == ("quantity",)]
    [(0.73, ('quantity',)), (1.3699, ('quantity',))]
    """
    seen: list[tuple[float, Figure]] = [
        *((1.0 / f, "quantity") for f in slip_factors_for(quantity, coefficients)),
        *((f, "cost") for f in slip_factors_for(cost, coefficients)),
    ]
    out: list[PriceSlip] = []
    for m, figure in sorted(seen):
        if out and math.isclose(out[-1].multiplier, m, rel_tol=1e-9):
            both = {*out[-1].figures, figure}
            out[-1] = PriceSlip(out[-1].multiplier, tuple(f for f in _FIGURES if f in both))
        else:
            out.append(PriceSlip(m, (figure,)))
    return tuple(out)
