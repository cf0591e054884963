"""The exceptions of energy_audit: one small hierarchy, messages that say what and where.

Findings about the data are never exceptions (they are rows of the findings table). Exceptions
are for input that cannot be used at all and for programming errors.

Every error carries its message in Chinese (the users' language, and ``str(error)``) and in
English (``error.message_en``; the command line prints it with ``--lang en``)::

    raise UnusableInputError(
        f"{name}：第 {line} 行引号未闭合", f"{name}, line {line}: unbalanced quote"
    )
"""

from __future__ import annotations

from typing import Literal

Lang = Literal["zh", "en"]
"""A language of messages and outputs: ``zh`` (default) or ``en``."""


class EnergyAuditError(Exception):
    """Base class of every error raised on purpose by energy_audit.

    Parameters
    ----------
    message_zh : str
        The message in Chinese: what was wrong and where (file, row, column).
    message_en : str, optional
        The same message in English (default: the Chinese one).
    """

    def __init__(self, message_zh: str, message_en: str | None = None) -> None:
        super().__init__(message_zh)
        self.message_zh = message_zh
        self.message_en = message_en if message_en is not None else message_zh

    def message(self, lang: Lang = "zh") -> str:
        """Return the message in ``lang`` (``zh`` or ``en``)."""
        return self.message_en if lang == "en" else self.message_zh


class UnusableInputError(EnergyAuditError):
    """An input file or table cannot be used at all.

    Examples: the file cannot be opened, a required column is missing, a header names a unit
    nobody knows. The message names the file and the column (and the row where there is one).
    """


class ContractError(EnergyAuditError):
    """The data contract files in ``schemas/`` are inconsistent (a packaging or editing error)."""


class SettingsError(EnergyAuditError):
    """A settings object or user-supplied reference table (coefficients, factors) is invalid."""
