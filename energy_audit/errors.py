"""The exceptions of energy_audit: one small hierarchy, messages that say what and where.

Findings about the data are never exceptions (they are rows of the findings table). Exceptions
are for input that cannot be used at all and for programming errors.
"""

from __future__ import annotations


class EnergyAuditError(Exception):
    """Base class of every error raised on purpose by energy_audit."""


class UnusableInputError(EnergyAuditError):
    """An input file or table cannot be used at all.

    Examples: the file cannot be opened, a required column is missing, a header names a unit
    nobody knows. The message names the file and the column (and the row where there is one).
    """


class ContractError(EnergyAuditError):
    """The data contract files in ``schemas/`` are inconsistent (a packaging or editing error)."""


class SettingsError(EnergyAuditError):
    """A settings object or user-supplied reference table (coefficients, factors) is invalid."""
