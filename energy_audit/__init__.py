"""energy_audit: verify public institutions' yearly energy and water returns.

The package follows the data's one-way flow (files → canonical tables → directory scope →
verification → panel decisions → verified data → indicators → evaluation → report). What a user
needs most is importable from here::

    from energy_audit import read_directory, read_returns, indicators, aggregate
"""

from energy_audit import _allocator  # noqa: F401  (before polars loads: see its docstring)
from energy_audit.indicators import aggregate, indicators
from energy_audit.io.readers import ReadResult, read_directory, read_returns

__all__ = ["ReadResult", "aggregate", "indicators", "read_directory", "read_returns"]
__version__ = "0.1.0"
