"""Unit-slip factors of the returns columns: the one table the slip rules compare ratios with.

Review practice (domain.md §6): a figure in 万 units typed under the base unit (×10⁻⁴), kg for t
or MJ for GJ (×1,000), an extra digit (×10), kilograms of fuel typed under litres (× the fuel's
density). :func:`slip_factors_for` gives a column's factors; the generic matchers of
:mod:`energy_audit.outliers.yoy` take them as an argument (they know no contract).
"""

from __future__ import annotations

from energy_audit import contract
from energy_audit.factors import TableSource, density_kg_per_l
from energy_audit.outliers.yoy import DECIMAL_SLIP_FACTORS

__all__ = ["slip_factors_for"]


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
