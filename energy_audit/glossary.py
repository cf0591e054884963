"""Glossary: the terms energy_audit shows people, in Chinese (default) and English.

Two sources, each term in one place: the labels of enumerated contract columns (``sector``,
``category``, ``severity``, ``status``…; the first label of each value in ``schemas/*.toml``, the
English term being the code) and ``schemas/glossary.toml`` for every other term (directory change
kinds, reader note kinds, quarantine reasons, headers of columns outside the contract). Writers
and the command line translate codes through :func:`term` and :func:`translate`, so a new rule,
sector or reason is translated where it is defined.

Examples
--------
>>> term("severity", "error")
'错误'
>>> term("change_kind", "renamed", "en")
'renamed'
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Mapping

import polars as pl

from energy_audit import contract
from energy_audit.errors import ContractError, Lang

__all__ = ["Lang", "domains", "term", "terms", "translate"]


@functools.cache
def _glossary_file() -> dict[str, dict[str, dict[str, str]]]:
    path = contract.schema_dir() / "glossary.toml"
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ContractError(f"术语表 {path} 无法读取：{exc}", f"glossary {path}: {exc}") from exc
    for domain, entries in raw.items():
        for key, entry in entries.items():
            if set(entry) != {"zh", "en"}:
                raise ContractError(
                    f"术语表 {path}：[{domain}.{key}] 须恰有 zh 与 en",
                    f"glossary {path}: [{domain}.{key}] needs exactly zh and en",
                )
    return raw


@functools.cache
def _enum_terms() -> dict[str, dict[str, dict[str, str]]]:
    """Terms of the contract's enumerated columns, by column name (first table wins)."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    for name in contract.TABLE_NAMES:
        for col in contract.table(name).columns:
            if col.dtype == "enum" and col.name not in out:
                out[col.name] = {
                    v.code: {"zh": v.labels[0] if v.labels else v.code, "en": v.code}
                    for v in col.values
                }
    return out


def domains() -> tuple[str, ...]:
    """Return every domain the glossary knows (enumerated contract columns, then the file's)."""
    return (*_enum_terms(), *(d for d in _glossary_file() if d not in _enum_terms()))


def terms(domain: str, lang: Lang = "zh") -> Mapping[str, str]:
    """Return the term of every key of ``domain`` in ``lang``.

    Parameters
    ----------
    domain : str
        An enumerated contract column (``sector``, ``category``, ``severity``…) or a section of
        ``schemas/glossary.toml`` (``change_kind``, ``note_kind``, ``reason``, ``header``).
    lang : {"zh", "en"}, default "zh"
        Language of the terms.

    Returns
    -------
    Mapping of str to str
        Key (code) → term.

    Raises
    ------
    ContractError
        If the glossary has no such domain.
    """
    entries = _enum_terms().get(domain) or _glossary_file().get(domain)
    if entries is None:
        raise ContractError(
            f"术语表没有“{domain}”；已有：{', '.join(domains())}",
            f"no glossary domain {domain!r}; known: {', '.join(domains())}",
        )
    return {key: entry[lang] for key, entry in entries.items()}


def term(domain: str, key: str, lang: Lang = "zh") -> str:
    """Return the term for ``key`` of ``domain`` in ``lang``; an unknown key is returned as is."""
    return terms(domain, lang).get(key, key)


def translate(expr: pl.Expr, domain: str, lang: Lang = "zh") -> pl.Expr:
    """Replace the codes of a ``String`` expression by their terms (unknown values kept).

    Parameters
    ----------
    expr : polars.Expr
        Codes (e.g. a ``severity`` column).
    domain : str
        See :func:`terms`.
    lang : {"zh", "en"}, default "zh"
        Language of the terms.

    Returns
    -------
    polars.Expr
        ``String``: the term where the code is known, else the value itself; nulls stay null.
    """
    return expr.cast(pl.String).replace(dict(terms(domain, lang)))
