"""Tests of tongban.keys.identifiers: exact rejection messages and check-digit properties."""

from __future__ import annotations

import doctest
from datetime import date

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tongban.keys import identifiers
from tongban.keys.errors import KeysError
from tongban.keys.identifiers import (
    InvalidIdentifier,
    citizen_id_check_char,
    credit_code_check_char,
    region_name,
    validate_citizen_id,
    validate_credit_code,
    validate_division_code,
)

TODAY = date(2024, 6, 1)

# Province-level prefixes written out from GB/T 2260 (not imported from the module, so a
# slip in its table shows up here), plus 83 for Taiwan residents' residence permits.
PROVINCES = [
    "11",
    "12",
    "13",
    "14",
    "15",
    "21",
    "22",
    "23",
    "31",
    "32",
    "33",
    "34",
    "35",
    "36",
    "37",
    "41",
    "42",
    "43",
    "44",
    "45",
    "46",
    "50",
    "51",
    "52",
    "53",
    "54",
    "61",
    "62",
    "63",
    "64",
    "65",
    "71",
    "81",
    "82",
]
CREDIT_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"

# Credit codes published on business licences and collected in python-stdnum's test
# data, plus the one on the brief. Each exercises a different corner.
REAL_CREDIT_CODES = [
    "91350100M000100Y43",  # letters in the organisation code
    "91110000600037341L",  # enterprise registered in Beijing
    "91310115MA1K3BTP2B",  # "MA" organisation code assigned after 2015
    "9144030071526726XG",  # organisation code check character X
    "121200004013590816",  # 机构编制 / 事业单位
    "92340602MA2PBMEM24",  # 个体工商户
    "91620105L015101280",  # organisation code starting with a letter
]


def with_citizen_check(first17: str) -> str:
    return first17 + citizen_id_check_char(first17)


def with_credit_check(first17: str) -> str:
    return first17 + credit_code_check_char(first17)


def org_code_check(first8: str) -> str:
    """GB 11714-1997 written out independently of the module, as a cross-check."""
    values = [int(c) if c.isdigit() else ord(c) - 55 for c in first8]
    rest = 11 - sum(v * w for v, w in zip(values, (3, 7, 9, 10, 5, 8, 4, 2), strict=True)) % 11
    return {10: "X", 11: "0"}.get(rest, str(rest))


# --- citizen ids -----------------------------------------------------------------------


def test_citizen_id_standard_example() -> None:
    # The worked example of GB 11643-1999.
    assert validate_citizen_id("11010519491231002X", today=TODAY) == "11010519491231002X"
    assert citizen_id_check_char("11010519491231002") == "X"


def test_citizen_id_normalises_lowercase_x_and_blanks() -> None:
    assert validate_citizen_id(" 11010519491231002x\n", today=TODAY) == "11010519491231002X"


def test_citizen_id_born_today_is_accepted() -> None:
    number = with_citizen_check("42070220240601123")
    assert validate_citizen_id(number, today=TODAY) == number


def test_citizen_id_taiwan_residence_permit_is_accepted() -> None:
    number = with_citizen_check("83000019900101002")
    assert validate_citizen_id(number, today=TODAY) == number


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("11010519491231002", "citizen id must be 18 characters, got 17"),
        ("11010519491231002X1", "citizen id must be 18 characters, got 19"),
        ("", "citizen id must be 18 characters, got 0"),
        ("1101051949123100A2", "citizen id character 17 is 'A', not a digit"),
        ("X10105194912310021", "citizen id character 1 is 'X', not a digit"),
        ("１10105194912310021", "citizen id character 1 is '１', not a digit"),
        ("11010519491231002Y", "citizen id check character is 'Y', must be a digit or X"),
        (
            with_citizen_check("99010519491231002"),
            "citizen id address code 990105 has no province-level division 99",
        ),
        (
            with_citizen_check("10000019491231002"),
            "citizen id address code 100000 has no province-level division 10",
        ),
        (
            with_citizen_check("42070220230230001"),
            "citizen id birth date 20230230 is not a calendar date",
        ),
        (
            with_citizen_check("42070219901301001"),
            "citizen id birth date 19901301 is not a calendar date",
        ),
        (
            with_citizen_check("42070219900001001"),
            "citizen id birth date 19900001 is not a calendar date",
        ),
        # The second example of GB 11643 itself: its check digit is right, but nobody
        # born in 1880 applies for anything.
        ("440524188001010014", "citizen id birth date 18800101 is before 1900"),
        (
            with_citizen_check("42070220240602001"),
            "citizen id birth date 20240602 is after today (2024-06-01)",
        ),
        ("110105194912310025", "citizen id check digit is '5', expected 'X'"),
        ("42070219900101002X", "citizen id check digit is 'X', expected '5'"),
    ],
)
def test_citizen_id_rejections(text: str, message: str) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        validate_citizen_id(text, today=TODAY)
    assert caught.value.message == message
    assert str(caught.value) == message
    assert caught.value.code == "invalid-identifier"


@pytest.mark.parametrize("body", ["1101051949123100", "110105194912310021", "1101051949123100X"])
def test_citizen_id_check_char_rejects_bad_body(body: str) -> None:
    with pytest.raises(InvalidIdentifier, match="citizen id body must be 17 digits"):
        citizen_id_check_char(body)


@st.composite
def citizen_ids(draw: st.DrawFn) -> str:
    province = draw(st.sampled_from([*PROVINCES, "83"]))
    rest = draw(st.text("0123456789", min_size=4, max_size=4))
    birth = draw(st.dates(min_value=date(1900, 1, 1), max_value=TODAY))
    sequence = draw(st.text("0123456789", min_size=3, max_size=3))
    return with_citizen_check(f"{province}{rest}{birth:%Y%m%d}{sequence}")


@given(citizen_ids())
def test_constructed_citizen_ids_validate(number: str) -> None:
    assert validate_citizen_id(number, today=TODAY) == number
    assert validate_citizen_id(number.lower(), today=TODAY) == number


@given(citizen_ids(), st.integers(0, 17), st.sampled_from("0123456789X"))
def test_citizen_id_single_substitution_is_rejected(number: str, at: int, char: str) -> None:
    # MOD 11-2 weights are powers of 2, never 0 mod 11, and 11 is prime: changing one
    # character always changes the weighted sum.
    assume(number[at] != char)
    changed = number[:at] + char + number[at + 1 :]
    with pytest.raises(InvalidIdentifier):
        validate_citizen_id(changed, today=TODAY)


@given(citizen_ids(), st.integers(0, 16))
def test_citizen_id_adjacent_transposition_is_rejected(number: str, at: int) -> None:
    # Swapping a, b at weights 2w, w changes the sum by (a - b)·w, non-zero mod 11 as
    # 0 < |a - b| <= 10. Holds for the check character too (it carries weight 1).
    assume(number[at] != number[at + 1])
    swapped = number[:at] + number[at + 1] + number[at] + number[at + 2 :]
    with pytest.raises(InvalidIdentifier):
        validate_citizen_id(swapped, today=TODAY)


# --- credit codes ----------------------------------------------------------------------


@pytest.mark.parametrize("code", REAL_CREDIT_CODES)
def test_real_credit_codes_validate(code: str) -> None:
    assert validate_credit_code(code) == code
    assert validate_credit_code(code.lower()) == code
    assert credit_code_check_char(code[:17]) == code[17]
    assert org_code_check(code[8:16]) == code[16]


def test_credit_code_national_registration_division() -> None:
    # Bodies registered by a national authority carry 100000 instead of a division.
    body = "11100000" + "00001312"
    code = with_credit_check(body + org_code_check(body[8:]))
    assert validate_credit_code(code) == code


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("91350100M000100Y4", "credit code must be 18 characters, got 17"),
        ("91350100M000100Y433", "credit code must be 18 characters, got 19"),
        (
            "91350100O000100Y43",
            "credit code character 9 is 'O', not in 0123456789ABCDEFGHJKLMNPQRTUWXY",
        ),
        (
            "91350100M000100I43",
            "credit code character 16 is 'I', not in 0123456789ABCDEFGHJKLMNPQRTUWXY",
        ),
        (
            "91350100M000100Y4-",
            "credit code character 18 is '-', not in 0123456789ABCDEFGHJKLMNPQRTUWXY",
        ),
        (
            "B1350100M000100Y43",
            "credit code registration department 'B' is not one of 1-9, A, N, Y",
        ),
        (
            "01350100M000100Y43",
            "credit code registration department '0' is not one of 1-9, A, N, Y",
        ),
        ("90350100M000100Y43", "credit code organisation type '0' is not a digit 1-9"),
        ("9A350100M000100Y43", "credit code organisation type 'A' is not a digit 1-9"),
        ("9135A100M000100Y43", "credit code division code 35A100 is not 6 digits"),
        (
            "91990100M000100Y43",
            "credit code division code 990100 has no province-level division 99",
        ),
        (
            "91350100M000100Y53",
            "credit code organisation code check character is '5', expected '4'",
        ),
        ("91350100M000100Y4X", "credit code check character is 'X', expected '3'"),
    ],
)
def test_credit_code_rejections(text: str, message: str) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        validate_credit_code(text)
    assert caught.value.message == message
    assert isinstance(caught.value, KeysError)


@pytest.mark.parametrize("body", ["91350100M000100Y", "91350100M000100Y43", "91350100M0001O0Y4"])
def test_credit_code_check_char_rejects_bad_body(body: str) -> None:
    with pytest.raises(InvalidIdentifier, match="credit code body must be 17 characters"):
        credit_code_check_char(body)


@st.composite
def credit_codes(draw: st.DrawFn) -> str:
    authority = draw(st.sampled_from("123456789ANY"))
    kind = draw(st.sampled_from("123456789"))
    province = draw(st.sampled_from(PROVINCES))
    division = draw(
        st.just("100000") | st.text("0123456789", min_size=4, max_size=4).map(province.__add__)
    )
    org = draw(st.text(CREDIT_ALPHABET, min_size=8, max_size=8))
    return with_credit_check(f"{authority}{kind}{division}{org}{org_code_check(org)}")


@given(credit_codes())
def test_constructed_credit_codes_validate(code: str) -> None:
    assert validate_credit_code(code) == code


@given(credit_codes(), st.integers(0, 17), st.sampled_from(CREDIT_ALPHABET))
def test_credit_code_single_substitution_is_rejected(code: str, at: int, char: str) -> None:
    # MOD 31 weights are powers of 3, never 0 mod 31, and 31 is prime.
    assume(code[at] != char)
    changed = code[:at] + char + code[at + 1 :]
    with pytest.raises(InvalidIdentifier):
        validate_credit_code(changed)


@given(credit_codes(), st.integers(0, 16))
def test_credit_code_adjacent_transposition_is_rejected(code: str, at: int) -> None:
    # Neighbouring weights are w and 3w (or 28 and 1 at the end); their difference is
    # never 0 mod 31, and 0 < |a - b| < 31, so the sum changes.
    assume(code[at] != code[at + 1])
    swapped = code[:at] + code[at + 1] + code[at] + code[at + 2 :]
    with pytest.raises(InvalidIdentifier):
        validate_credit_code(swapped)


# --- division codes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("42070", "division code must be 6 digits, got '42070'"),
        ("4207000", "division code must be 6 digits, got '4207000'"),
        ("42070A", "division code must be 6 digits, got '42070A'"),
        ("４２０７００", "division code must be 6 digits, got '４２０７００'"),
        ("990000", "division code 990000 has no province-level division 99"),
        ("100000", "division code 100000 has no province-level division 10"),
    ],
)
def test_division_code_rejections(text: str, message: str) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        validate_division_code(text)
    assert caught.value.message == message


@pytest.mark.parametrize("province", PROVINCES)
def test_every_province_prefix_is_a_division(province: str) -> None:
    assert validate_division_code(province + "0000") == province + "0000"


def test_region_names() -> None:
    assert region_name("420700") == "鄂州市"
    assert region_name("422800") == "恩施土家族苗族自治州"
    assert region_name(" 410505 ") == "安阳市殷都区"
    assert region_name("110000") is None
    with pytest.raises(InvalidIdentifier):
        region_name("990000")


def test_module_docstring_example_runs() -> None:
    result = doctest.testmod(identifiers)
    assert result.attempted > 0
    assert result.failed == 0
