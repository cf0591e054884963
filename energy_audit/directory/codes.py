"""Unified social credit codes (统一社会信用代码, GB 32100-2015) and their check characters.

An 18-character code is built as::

    position  1      registration authority (1 = 机构编制, 5 = 民政, 9 = 工商 ...)
    position  2      category (for authority 1: 1 机关, 2 事业单位, 3 群团)
    positions 3-8    region code of the registering office at registration time
    positions 9-17   GB 11714 organization code (8 body characters + its own check character)
    position  18     GB 32100 check character (mod 31)

The region code (positions 3-8) may be a retired code (120225, the former 蓟县): it is never a
reason to reject a code and never the source of an institution's district.

Invalid codes exist in real lists. :func:`validate_credit_code` reports them with the expected
check characters; nothing here "fixes" a code silently.

References
----------
.. [1] GB 32100-2015 法人和其他组织统一社会信用代码编码规则.
.. [2] GB 11714-1997 全国组织机构代码编制规则.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "CREDIT_CODE_ALPHABET",
    "CREDIT_CODE_LENGTH",
    "CREDIT_CODE_WEIGHTS",
    "ORGANIZATION_CODE_WEIGHTS",
    "CreditCodeCheck",
    "credit_code_check_char",
    "credit_codes_valid",
    "make_credit_codes",
    "normalize_credit_code",
    "organization_code_check_char",
    "validate_credit_code",
]

#: The 31 characters of a credit code, in value order 0-30 (no I, O, S, V, Z) [1]_.
CREDIT_CODE_ALPHABET: str = "0123456789ABCDEFGHJKLMNPQRTUWXY"
#: Weights of positions 1-17 for the mod-31 check (the powers of 3 modulo 31) [1]_.
CREDIT_CODE_WEIGHTS: tuple[int, ...] = (
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
)  # fmt: skip
#: Weights of the 8 body characters of a GB 11714 organization code [2]_.
ORGANIZATION_CODE_WEIGHTS: tuple[int, ...] = (3, 7, 9, 10, 5, 8, 4, 2)
#: Length of a credit code [characters].
CREDIT_CODE_LENGTH: int = 18

_ORG_BODY_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # values 0-35 in GB 11714
_CREDIT_VALUE = {c: i for i, c in enumerate(CREDIT_CODE_ALPHABET)}
_ORG_VALUE = {c: i for i, c in enumerate(_ORG_BODY_CHARS)}
_HYPHENS_AND_SPACES = dict.fromkeys(map(ord, "-‐‑‒–—―−﹣ \t\r\n\u00a0\u3000"))

# Byte lookup tables for the vectorised functions: ASCII byte -> value (-1 = not allowed). Int16
# holds every weighted sum: at most 30 × 305 (credit code) and 35 × 48 (organization code).
_CREDIT_LUT = np.full(256, -1, dtype=np.int16)
_CREDIT_LUT[np.frombuffer(CREDIT_CODE_ALPHABET.encode("ascii"), dtype=np.uint8)] = np.arange(31)
_ORG_LUT = np.full(256, -1, dtype=np.int16)
_ORG_LUT[np.frombuffer(_ORG_BODY_CHARS.encode("ascii"), dtype=np.uint8)] = np.arange(36)
_CREDIT_CHAR_BYTES = np.frombuffer(CREDIT_CODE_ALPHABET.encode("ascii"), dtype=np.uint8)
_ORG_CHECK_BYTES = np.frombuffer(b"0123456789X0", dtype=np.uint8)  # index = 11 - (sum mod 11)
_CREDIT_WEIGHTS = np.asarray(CREDIT_CODE_WEIGHTS, dtype=np.int16)
_ORG_WEIGHTS = np.asarray(ORGANIZATION_CODE_WEIGHTS, dtype=np.int16)


@dataclass(frozen=True)
class CreditCodeCheck:
    """The result of checking one unified social credit code.

    Attributes
    ----------
    code : str
        The code after :func:`normalize_credit_code`.
    is_valid : bool
        True when the code has 18 allowed characters and both check characters are right.
    problems : tuple of str
        One English sentence per problem found, naming the expected character where there is
        one; empty when the code is valid.
    problems_zh : tuple of str
        The same sentences in Chinese, in the same order.
    expected_check_char : str or None
        The GB 32100 check character (position 18) computed from positions 1-17, or None when
        it cannot be computed (wrong length or characters).
    expected_organization_check_char : str or None
        The GB 11714 check character (position 17) computed from positions 9-16, or None when
        it cannot be computed.
    """

    code: str
    is_valid: bool
    problems: tuple[str, ...] = ()
    problems_zh: tuple[str, ...] = ()
    expected_check_char: str | None = None
    expected_organization_check_char: str | None = None


def normalize_credit_code(text: str) -> str:
    """Normalise the way people type a credit code.

    Full-width characters become half-width (Unicode NFKC), spaces and hyphens of any width are
    removed and letters are upper-cased. Nothing else is changed: an ``O`` typed for a ``0`` stays
    an ``O`` (and the code is then reported invalid, never silently repaired).

    Parameters
    ----------
    text : str
        The code as typed, e.g. ``"９１１１ 0000-00001333 8w"``.

    Returns
    -------
    str
        The normalised code (not necessarily valid).

    Examples
    --------
    >>> normalize_credit_code(" 11100000-00001333８w ")
    '11100000000013338W'
    """
    return unicodedata.normalize("NFKC", text).translate(_HYPHENS_AND_SPACES).upper()


def credit_code_check_char(first17: str) -> str:
    """Compute the GB 32100 check character (position 18) of a credit code.

    check = (31 − Σ value × weight mod 31) mod 31, written with :data:`CREDIT_CODE_ALPHABET`.

    Parameters
    ----------
    first17 : str
        Positions 1-17 of the code, already normalised.

    Returns
    -------
    str
        The check character.

    Raises
    ------
    ValueError
        If ``first17`` is not 17 characters of the credit-code alphabet.

    Examples
    --------
    >>> credit_code_check_char("11100000000013338")
    'W'
    """
    if len(first17) != CREDIT_CODE_LENGTH - 1:
        raise ValueError(f"expected 17 characters, got {len(first17)}: {first17!r}")
    total = 0
    for position, (char, weight) in enumerate(zip(first17, CREDIT_CODE_WEIGHTS, strict=True)):
        value = _CREDIT_VALUE.get(char)
        if value is None:
            raise ValueError(
                f"character {char!r} at position {position + 1} is not in the credit-code "
                f"alphabet {CREDIT_CODE_ALPHABET}"
            )
        total += value * weight
    return CREDIT_CODE_ALPHABET[(31 - total % 31) % 31]


def organization_code_check_char(body8: str) -> str:
    """Compute the GB 11714 check character of an organization code (credit-code position 17).

    Body characters are 0-9 and A-Z (A = 10 … Z = 35); check = 11 − (Σ value × weight mod 11),
    where 10 is written ``X`` and 11 is written ``0``.

    Parameters
    ----------
    body8 : str
        The 8 body characters (credit-code positions 9-16), already normalised.

    Returns
    -------
    str
        The check character, ``0``-``9`` or ``X``.

    Raises
    ------
    ValueError
        If ``body8`` is not 8 characters of 0-9 and A-Z.

    Examples
    --------
    >>> organization_code_check_char("00001333")
    '8'
    """
    if len(body8) != len(ORGANIZATION_CODE_WEIGHTS):
        raise ValueError(f"expected 8 characters, got {len(body8)}: {body8!r}")
    total = 0
    for position, (char, weight) in enumerate(zip(body8, ORGANIZATION_CODE_WEIGHTS, strict=True)):
        value = _ORG_VALUE.get(char)
        if value is None:
            raise ValueError(
                f"character {char!r} at position {position + 1} of the organization code is "
                "not 0-9 or A-Z"
            )
        total += value * weight
    return "0123456789X0"[11 - total % 11]


def validate_credit_code(code: str | None) -> CreditCodeCheck:
    """Check a unified social credit code (GB 32100-2015), after normalising it.

    Checks the length, the alphabet, the GB 11714 check character of the organization code
    (position 17) and the mod-31 check character (position 18). The region code (positions 3-8)
    and the category prefix are not judged here: a retired region code is valid, and whether a
    prefix suits a public institution is a directory rule.

    Parameters
    ----------
    code : str or None
        The code as typed.

    Returns
    -------
    CreditCodeCheck
        The normalised code, whether it is valid and the problems found.

    Examples
    --------
    >>> validate_credit_code("11100000000013338W").is_valid
    True
    >>> validate_credit_code("11100000000013338Y").problems
    ("check character is 'Y', expected 'W'",)
    >>> validate_credit_code("11100000000013338Y").problems_zh
    ('校验码为“Y”，应为“W”',)
    """
    empty = {"problems": ("code is empty",), "problems_zh": ("代码为空",)}
    if code is None:
        return CreditCodeCheck(code="", is_valid=False, **empty)
    normalized = normalize_credit_code(code)
    if not normalized:
        return CreditCodeCheck(code="", is_valid=False, **empty)
    problems: list[str] = []
    problems_zh: list[str] = []
    if len(normalized) != CREDIT_CODE_LENGTH:
        problems.append(f"length is {len(normalized)}, expected {CREDIT_CODE_LENGTH}")
        problems_zh.append(f"长度为 {len(normalized)} 位，应为 {CREDIT_CODE_LENGTH} 位")
    bad = [(i + 1, c) for i, c in enumerate(normalized) if c not in _CREDIT_VALUE]
    for position, char in bad:
        problems.append(
            f"character {char!r} at position {position} is not allowed "
            f"(allowed: {CREDIT_CODE_ALPHABET})"
        )
        problems_zh.append(
            f"第 {position} 位字符“{char}”不允许使用（允许的字符：{CREDIT_CODE_ALPHABET}）"
        )
    if problems:
        return CreditCodeCheck(
            code=normalized,
            is_valid=False,
            problems=tuple(problems),
            problems_zh=tuple(problems_zh),
        )

    expected_org = organization_code_check_char(normalized[8:16])
    if normalized[16] != expected_org:
        problems.append(
            f"organization code check character (position 17) is {normalized[16]!r}, "
            f"expected {expected_org!r}"
        )
        problems_zh.append(
            f"组织机构代码校验码（第 17 位）为“{normalized[16]}”，应为“{expected_org}”"
        )
    expected = credit_code_check_char(normalized[:17])
    if normalized[17] != expected:
        problems.append(f"check character is {normalized[17]!r}, expected {expected!r}")
        problems_zh.append(f"校验码为“{normalized[17]}”，应为“{expected}”")
    return CreditCodeCheck(
        code=normalized,
        is_valid=not problems,
        problems=tuple(problems),
        problems_zh=tuple(problems_zh),
        expected_check_char=expected,
        expected_organization_check_char=expected_org,
    )


def _code_points(array: npt.NDArray[np.str_], width: int) -> npt.NDArray[np.uint32]:
    """View strings of exactly ``width`` characters as an (n, width) code-point matrix."""
    fixed = np.ascontiguousarray(array.astype(f"U{width}"))
    return fixed.view(np.uint32).reshape(-1, width)


def _as_byte_matrix(values: npt.ArrayLike, width: int, what: str) -> npt.NDArray[np.uint8]:
    """Turn array-like strings of one width into an (n, width) matrix of ASCII bytes."""
    array = np.atleast_1d(np.asarray(values))
    if array.dtype.kind == "S":
        array = array.astype(f"U{max(array.dtype.itemsize, 1)}")
    if array.dtype.kind != "U":
        raise TypeError(f"{what} must be strings, got dtype {array.dtype}")
    lengths = np.char.str_len(array)
    if array.size and (lengths.min() != width or lengths.max() != width):
        raise ValueError(f"every {what} must have {width} characters")
    points = _code_points(array, width)
    if (points > 127).any():
        raise ValueError(f"every character of a {what} must be ASCII")
    return points.astype(np.uint8)


def _organization_check_bytes(body: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """GB 11714 check character (as a byte) of each row of 8 body characters (n, 8).

    Rows with a character outside 0-9 and A-Z get a meaningless byte: check them apart.
    """
    total = _ORG_LUT[body] @ _ORG_WEIGHTS
    return _ORG_CHECK_BYTES[11 - total % 11]


def _credit_check_bytes(first17: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """GB 32100 check character (as a byte) of each row of positions 1-17 (n, 17).

    Rows with a character outside :data:`CREDIT_CODE_ALPHABET` get a meaningless byte: check
    them apart.
    """
    total = _CREDIT_LUT[first17] @ _CREDIT_WEIGHTS
    return _CREDIT_CHAR_BYTES[(31 - total % 31) % 31]


def make_credit_codes(
    prefix: npt.ArrayLike, region: npt.ArrayLike, organization_body: npt.ArrayLike
) -> npt.NDArray[np.str_]:
    """Assemble many valid credit codes at once, computing both check characters (vectorised).

    Parameters
    ----------
    prefix : array_like of str
        Positions 1-2 (authority and category), e.g. ``"11"``; a scalar is broadcast.
    region : array_like of str
        Positions 3-8, a 6-digit region code, e.g. ``"120101"``; a scalar is broadcast.
    organization_body : array_like of str
        Positions 9-16, the 8 body characters of the organization code. Characters must be in
        the credit-code alphabet (digits and letters other than I, O, S, V, Z).

    Returns
    -------
    numpy.ndarray of str
        The 18-character codes, one per element of the broadcast inputs.

    Raises
    ------
    ValueError
        If a part has the wrong width or a character outside the credit-code alphabet.

    Examples
    --------
    >>> make_credit_codes("11", "100000", ["00001333"]).tolist()
    ['11100000000013338W']
    """
    parts = [
        _as_byte_matrix(prefix, 2, "prefix"),
        _as_byte_matrix(region, 6, "region code"),
        _as_byte_matrix(organization_body, 8, "organization body"),
    ]
    lengths = {p.shape[0] for p in parts} - {1}
    if len(lengths) > 1:
        raise ValueError("prefix, region and organization_body must have the same length or 1")
    n = lengths.pop() if lengths else 1
    codes = np.empty((n, CREDIT_CODE_LENGTH), dtype=np.uint8)
    codes[:, 0:2] = parts[0]
    codes[:, 2:8] = parts[1]
    codes[:, 8:16] = parts[2]
    if (_CREDIT_LUT[codes[:, 0:16]] < 0).any() or (_ORG_LUT[codes[:, 8:16]] < 0).any():
        raise ValueError(
            f"every character must be in the credit-code alphabet {CREDIT_CODE_ALPHABET}"
        )
    codes[:, 16] = _organization_check_bytes(codes[:, 8:16])
    codes[:, 17] = _credit_check_bytes(codes[:, 0:17])
    return codes.astype(np.uint32).view(f"U{CREDIT_CODE_LENGTH}").ravel()


def credit_codes_valid(codes: Sequence[str | None] | npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Tell which of many normalised codes are valid (vectorised :func:`validate_credit_code`).

    Codes are not normalised here: normalise first when the input is typed text. Use
    :func:`validate_credit_code` on the invalid ones to get the reasons.

    Parameters
    ----------
    codes : sequence or array_like of str
        Normalised codes; None counts as invalid.

    Returns
    -------
    numpy.ndarray of bool
        True where the code has 18 allowed characters and both check characters are right.
    """
    array = np.atleast_1d(np.asarray(codes, dtype=object))
    array = np.where(np.equal(array, None), "", array).astype(str)
    out = np.zeros(array.shape[0], dtype=bool)
    right_length = np.char.str_len(array) == CREDIT_CODE_LENGTH
    if not right_length.any():
        return out
    # a character beyond ASCII becomes DEL (127), which is in neither alphabet
    points = _code_points(array[right_length], CREDIT_CODE_LENGTH)
    chars = np.minimum(points, 127).astype(np.uint8)
    chars_ok = (_CREDIT_LUT[chars] >= 0).all(axis=1)
    org_ok = chars[:, 16] == _organization_check_bytes(chars[:, 8:16])
    check_ok = chars[:, 17] == _credit_check_bytes(chars[:, :17])
    out[right_length] = chars_ok & org_ok & check_ok
    return out
