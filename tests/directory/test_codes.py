"""Unified social credit codes (GB 32100-2015) and organization codes (GB 11714)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from energy_audit.directory.codes import (
    CREDIT_CODE_ALPHABET,
    credit_code_check_char,
    credit_codes_valid,
    make_credit_codes,
    normalize_credit_code,
    organization_code_check_char,
    validate_credit_code,
)

# Real codes that pass both checks (domain.md §4); the first is 住房和城乡建设部.
REAL_CODES = (
    "11100000000013338W",
    "12100000000018032A",
    "113700000045046442",
    "11430000006122244L",
)


@pytest.mark.parametrize("code", REAL_CODES)
def test_real_codes_are_valid(code: str) -> None:
    check = validate_credit_code(code)
    assert check.is_valid
    assert check.problems == ()
    assert check.code == code
    assert credit_code_check_char(code[:17]) == code[17]
    assert organization_code_check_char(code[8:16]) == code[16]


def test_real_codes_valid_vectorised() -> None:
    assert credit_codes_valid(list(REAL_CODES)).all()


def test_check_characters_by_hand() -> None:
    # 11100000000013338: Σ value × weight = 1·1 + 1·3 + 1·9 + 1·8 + 3·24 + 3·10 + 3·30 + 8·28 = 437;
    # 437 mod 31 = 3; (31 − 3) mod 31 = 28 → alphabet[28] = 'W'.
    assert credit_code_check_char("11100000000013338") == "W"
    # 00001333: 1·5 + 3·8 + 3·4 + 3·2 = 47; 47 mod 11 = 3; 11 − 3 = 8.
    assert organization_code_check_char("00001333") == "8"
    # 11 − (0 mod 11) = 11 is written '0'; 6·2 = 12 ≡ 1, 11 − 1 = 10 is written 'X'.
    assert organization_code_check_char("00000000") == "0"
    assert organization_code_check_char("00000006") == "X"
    # Letters count A = 10 … Z = 35 in the organization code: 'A'·2 = 20 ≡ 9 → 2.
    assert organization_code_check_char("0000000A") == "2"


def test_wrong_check_character_names_the_expected_one() -> None:
    check = validate_credit_code("11100000000013338Y")
    assert not check.is_valid
    assert check.problems == ("check character is 'Y', expected 'W'",)
    assert check.expected_check_char == "W"


def test_wrong_organization_check_character_names_the_expected_one() -> None:
    first17 = "1110000000001333" + "5"  # org check should be '8'
    code = first17 + credit_code_check_char(first17)  # position 18 consistent with the typo
    check = validate_credit_code(code)
    assert not check.is_valid
    assert check.problems == (
        "organization code check character (position 17) is '5', expected '8'",
    )
    assert check.expected_organization_check_char == "8"
    assert not credit_codes_valid([code])[0]


@pytest.mark.parametrize(
    "typed",
    [
        "１１１０００００００００１３３３８Ｗ",  # full-width
        "11100000000013338w",  # lower case
        "11100000-000013338-W",  # hyphens
        "1110 0000 0000 1333 8W",  # spaces
        " 11100000－00001333８ｗ\u3000",  # a bit of everything
    ],
)
def test_normalisation(typed: str) -> None:
    assert normalize_credit_code(typed) == "11100000000013338W"
    check = validate_credit_code(typed)
    assert check.is_valid
    assert check.code == "11100000000013338W"


def test_letters_that_look_like_digits_are_not_fixed() -> None:
    check = validate_credit_code("1110000000001333OW")  # letter O typed for zero
    assert not check.is_valid
    assert check.code == "1110000000001333OW"
    assert "character 'O' at position 17 is not allowed" in check.problems[0]


@pytest.mark.parametrize(
    ("code", "problem"),
    [(None, "code is empty"), ("  ", "code is empty"), ("1110000000001333", "length is 16")],
)
def test_unusable_codes(code: str | None, problem: str) -> None:
    check = validate_credit_code(code)
    assert not check.is_valid
    assert check.problems[0].startswith(problem)


def test_retired_region_code_is_never_a_problem() -> None:
    # 120225 (former 蓟县) and a code no region has: only the check characters matter.
    codes = make_credit_codes(["11", "12"], ["120225", "999999"], ["12345678", "MB000001"])
    for code in codes:
        assert validate_credit_code(code).is_valid


def test_make_credit_codes_rejects_bad_parts() -> None:
    with pytest.raises(ValueError, match="2 characters"):
        make_credit_codes("1", "120101", "12345678")
    with pytest.raises(ValueError, match="credit-code alphabet"):
        make_credit_codes("11", "120101", "1234567I")  # I is not in the alphabet
    with pytest.raises(ValueError, match="17 characters"):
        credit_code_check_char("1110")
    with pytest.raises(ValueError, match="not in the credit-code alphabet"):
        credit_code_check_char("1110000000001333O")
    with pytest.raises(ValueError, match="not 0-9 or A-Z"):
        organization_code_check_char("0000000-")


ORG_BODY_CHARS = list(CREDIT_CODE_ALPHABET)  # body chars must also be credit-code chars
valid_codes = st.builds(
    lambda prefix, region, body: str(make_credit_codes(prefix, region, body)[0]),
    st.sampled_from(["11", "12", "13", "51", "52", "53", "91"]),
    st.text("0123456789", min_size=6, max_size=6),
    st.text(ORG_BODY_CHARS, min_size=8, max_size=8),
)


@given(valid_codes)
def test_generated_codes_are_valid(code: str) -> None:
    assert validate_credit_code(code).is_valid
    assert credit_codes_valid([code])[0]


# Every single substitution is caught. The weights of positions 1-17 are 3^k mod 31, never 0
# modulo the prime 31, and two different characters differ by 1-30 in value, so changing one
# character changes Σ value × weight by a non-zero amount mod 31: the mod-31 check alone detects
# every substitution in positions 1-17, and a substituted position 18 no longer equals the
# (unchanged) expected character. No restriction of the property is needed. (The GB 11714 check
# alone would not do: it ignores positions 1-8, and e.g. '1' → 'C' (values 1 and 12) changes
# its sum by 11 × weight ≡ 0 mod 11.)
@given(valid_codes, st.integers(0, 17), st.sampled_from(CREDIT_CODE_ALPHABET))
def test_any_single_substitution_is_invalid(code: str, position: int, char: str) -> None:
    if code[position] == char:
        return
    changed = code[:position] + char + code[position + 1 :]
    check = validate_credit_code(changed)
    assert not check.is_valid
    assert check.problems
    assert not credit_codes_valid([changed])[0]


# Adjacent transpositions change Σ by (a − b)(w_i − w_{i+1}) = −2(a − b)·w_i ≢ 0 mod 31 within
# positions 1-17; a swap with position 18 can coincide, so it is left out here.
@given(valid_codes, st.integers(0, 15))
def test_adjacent_transposition_is_invalid(code: str, position: int) -> None:
    a, b = code[position], code[position + 1]
    if a == b:
        return
    swapped = code[:position] + b + a + code[position + 2 :]
    assert not validate_credit_code(swapped).is_valid


@given(st.lists(st.one_of(st.none(), st.text(max_size=20), valid_codes), max_size=20))
def test_vectorised_and_scalar_checks_agree(codes: list[str | None]) -> None:
    expected = [
        c is not None and normalize_credit_code(c) == c and validate_credit_code(c).is_valid
        for c in codes
    ]
    assert credit_codes_valid(codes).tolist() == expected


def test_make_credit_codes_broadcasts() -> None:
    assert make_credit_codes("11", "100000", np.array([], dtype="U8")).shape == (0,)
    assert make_credit_codes("11", ["100000", "120225"], "00001333").shape == (2,)
    with pytest.raises(ValueError, match="same length"):
        make_credit_codes(["11", "12"], ["100000"] * 3, "00001333")


def test_make_credit_codes_is_vectorised() -> None:
    n = 10_000
    bodies = np.char.zfill(np.arange(n).astype("U8"), 8)
    codes = make_credit_codes("12", "120101", bodies)
    assert codes.shape == (n,)
    assert credit_codes_valid(codes).all()
    assert len(set(codes.tolist())) == n


def test_problems_are_also_written_in_chinese_one_for_one():
    # DIR-001 quotes these in message_zh: no English inside a Chinese message.
    bad_char = validate_credit_code("1110000000001333OW")
    assert bad_char.problems_zh == (
        f"第 17 位字符“O”不允许使用（允许的字符：{CREDIT_CODE_ALPHABET}）",
    )
    assert len(validate_credit_code("1234").problems_zh) == 1
    assert validate_credit_code("1234").problems_zh[0] == "长度为 4 位，应为 18 位"
    assert validate_credit_code(None).problems_zh == ("代码为空",)
    for code in ("11100000000013338Y", "1110000000001333OW", "12", ""):
        check = validate_credit_code(code)
        assert len(check.problems_zh) == len(check.problems)
        assert all(re.search(r"[\u4e00-\u9fff]", p) for p in check.problems_zh)
        assert not any(word in p for p in check.problems_zh for word in ("character", "expected"))
