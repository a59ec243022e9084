"""Check-digit identifiers: 公民身份号码, 统一社会信用代码 and administrative division codes.

Pure functions, no I/O. Each ``validate_*`` returns the normalised identifier or raises
:class:`InvalidIdentifier` with a message that names the field at fault.

Example::

    >>> from datetime import date
    >>> body = "11010519491231002"
    >>> validate_citizen_id(body + citizen_id_check_char(body), today=date(2024, 1, 1))
    '11010519491231002X'
    >>> validate_credit_code("91350100m000100y43")
    '91350100M000100Y43'
    >>> region_name(validate_division_code("420700"))
    '鄂州市'
    >>> validate_citizen_id("11010519491231002", today=date(2024, 1, 1))
    Traceback (most recent call last):
        ...
    tongban.keys.identifiers.InvalidIdentifier: citizen id must be 18 characters, got 17
"""

from __future__ import annotations

from datetime import date

from tongban.keys.errors import KeysError, echo

__all__ = [
    "InvalidIdentifier",
    "citizen_id_check_char",
    "credit_code_check_char",
    "organisation_code_check_char",
    "region_name",
    "validate_citizen_id",
    "validate_credit_code",
    "validate_division_code",
]


class InvalidIdentifier(KeysError):
    """An identifier is malformed or fails its check character."""

    code = "invalid-identifier"


# First two digits of every province-level division in GB/T 2260, plus 71 (台湾省),
# 81 (香港) and 82 (澳门), which the standard lists although no mainland office uses them.
_PROVINCES = frozenset(
    {
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
    }
)

# Residence permits for Taiwan residents (港澳台居民居住证, 2018) carry a citizen-id style
# number with address code 830000, which is not a GB/T 2260 division.
_CITIZEN_ID_EXTRA_PROVINCES = frozenset({"83"})

# Bodies registered by a national authority (e.g. ministries, central enterprises) carry
# 100000 in positions 3-8 of their credit code: the nation, not a division.
_CREDIT_CODE_NATIONAL_DIVISION = "100000"

_EARLIEST_BIRTH = date(1900, 1, 1)

# GB 11643-1999: weight of position i (1-based) is 2**(18 - i) mod 11.
_CITIZEN_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_CITIZEN_CHECK_CHARS = "0123456789X"

# GB 32100-2015: 31 characters; I, O, S, V and Z are never used, to avoid misreading.
_CREDIT_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_VALUES = {char: value for value, char in enumerate(_CREDIT_ALPHABET)}
# Weight of position i (1-based) is 3**(i - 1) mod 31.
_CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
# Position 1: 1-9 are the registration departments of GB 32100-2015 (1 机构编制 … 9 工商),
# A 中央军委改革和编制办公室, N 农业, Y 其他.
_CREDIT_AUTHORITIES = frozenset("123456789ANY")
# GB 11714-1997 organisation code check over positions 9-16 of the credit code.
_ORG_CODE_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def _clean(text: str) -> str:
    # Copying from a form or a scanned licence often brings surrounding blanks along.
    # Only ASCII is uppercased: str.upper() can change the length ("ß" becomes "SS").
    return "".join(char.upper() if char.isascii() else char for char in text.strip())


def _org_char_value(char: str) -> int:
    # GB 11714 values letters by their place in the full Latin alphabet (A=10 … Z=35),
    # not by their place in the credit-code alphabet: checked against published codes.
    return int(char) if char.isdigit() else ord(char) - ord("A") + 10


def citizen_id_check_char(first17: str) -> str:
    """The GB 11643 check character (ISO 7064 MOD 11-2) for the first 17 digits.

    Raises:
        InvalidIdentifier: ``first17`` is not 17 ASCII digits.
    """
    if len(first17) != 17 or not (first17.isascii() and first17.isdigit()):
        raise InvalidIdentifier(f"citizen id body must be 17 digits, got {first17!r}")
    total = sum(
        int(digit) * weight for digit, weight in zip(first17, _CITIZEN_WEIGHTS, strict=True)
    )
    return _CITIZEN_CHECK_CHARS[(12 - total % 11) % 11]


def credit_code_check_char(first17: str) -> str:
    """The GB 32100 check character (MOD 31) for the first 17 characters of a credit code.

    Raises:
        InvalidIdentifier: ``first17`` is not 17 characters of the credit-code alphabet.
    """
    if len(first17) != 17 or any(char not in _CREDIT_VALUES for char in first17):
        raise InvalidIdentifier(
            f"credit code body must be 17 characters of {_CREDIT_ALPHABET}, got {first17!r}"
        )
    total = sum(
        _CREDIT_VALUES[char] * weight for char, weight in zip(first17, _CREDIT_WEIGHTS, strict=True)
    )
    return _CREDIT_ALPHABET[(31 - total % 31) % 31]


def organisation_code_check_char(first8: str) -> str:
    """GB 11714 check character of an 8-character organisation code body."""
    total = sum(
        _org_char_value(char) * w for char, w in zip(first8, _ORG_CODE_WEIGHTS, strict=True)
    )
    remainder = 11 - total % 11
    return {10: "X", 11: "0"}.get(remainder, str(remainder))


def validate_citizen_id(text: str, *, today: date) -> str:
    """Check a 公民身份号码 (GB 11643-1999) and return it with an uppercase check character.

    Args:
        text: the number; surrounding blanks and a lowercase ``x`` are accepted.
        today: the date against which the birth date must not lie in the future.

    Raises:
        InvalidIdentifier: wrong length or characters, unknown province, impossible
            birth date, or wrong check character.
    """
    number = _clean(text)
    if len(number) != 18:
        raise InvalidIdentifier(f"citizen id must be 18 characters, got {len(number)}")
    for position, char in enumerate(number[:17], start=1):
        if not ("0" <= char <= "9"):
            raise InvalidIdentifier(f"citizen id character {position} is {char!r}, not a digit")
    if number[17] not in _CITIZEN_CHECK_CHARS:
        raise InvalidIdentifier(
            f"citizen id check character is {number[17]!r}, must be a digit or X"
        )
    address = number[:6]
    if address[:2] not in _PROVINCES | _CITIZEN_ID_EXTRA_PROVINCES:
        raise InvalidIdentifier(
            f"citizen id address code {address} has no province-level division {address[:2]}"
        )
    birth_text = number[6:14]
    try:
        birth = date(int(birth_text[:4]), int(birth_text[4:6]), int(birth_text[6:]))
    except ValueError:
        raise InvalidIdentifier(
            f"citizen id birth date {birth_text} is not a calendar date"
        ) from None
    if birth < _EARLIEST_BIRTH:
        raise InvalidIdentifier(f"citizen id birth date {birth_text} is before 1900")
    if birth > today:
        raise InvalidIdentifier(
            f"citizen id birth date {birth_text} is after today ({today.isoformat()})"
        )
    expected = citizen_id_check_char(number[:17])
    if number[17] != expected:
        raise InvalidIdentifier(f"citizen id check digit is {number[17]!r}, expected {expected!r}")
    return number


def validate_credit_code(text: str) -> str:
    """Check a 统一社会信用代码 (GB 32100-2015) and return it in uppercase.

    Checks the alphabet, the registration department (position 1), the organisation type
    (position 2), the division code (positions 3-8), the GB 11714 organisation code check
    (position 17) and the MOD 31 check character (position 18).

    Raises:
        InvalidIdentifier: the first rule the code breaks, by position.
    """
    code = _clean(text)
    if len(code) != 18:
        raise InvalidIdentifier(f"credit code must be 18 characters, got {len(code)}")
    for position, char in enumerate(code, start=1):
        if char not in _CREDIT_VALUES:
            raise InvalidIdentifier(
                f"credit code character {position} is {char!r}, not in {_CREDIT_ALPHABET}"
            )
    if code[0] not in _CREDIT_AUTHORITIES:
        raise InvalidIdentifier(
            f"credit code registration department {code[0]!r} is not one of 1-9, A, N, Y"
        )
    # Every organisation type of GB 32100 and its amendments is a digit 1-9; the
    # per-department lists grow by notice, so only the shape is enforced.
    if not ("1" <= code[1] <= "9"):
        raise InvalidIdentifier(f"credit code organisation type {code[1]!r} is not a digit 1-9")
    division = code[2:8]
    if not division.isdigit():
        raise InvalidIdentifier(f"credit code division code {division} is not 6 digits")
    if division != _CREDIT_CODE_NATIONAL_DIVISION and division[:2] not in _PROVINCES:
        raise InvalidIdentifier(
            f"credit code division code {division} has no province-level division {division[:2]}"
        )
    org_expected = organisation_code_check_char(code[8:16])
    if code[16] != org_expected:
        raise InvalidIdentifier(
            f"credit code organisation code check character is {code[16]!r}, "
            f"expected {org_expected!r}"
        )
    expected = credit_code_check_char(code[:17])
    if code[17] != expected:
        raise InvalidIdentifier(
            f"credit code check character is {code[17]!r}, expected {expected!r}"
        )
    return code


def validate_division_code(text: str) -> str:
    """Check the shape of a GB/T 2260 six-digit division code and return it.

    Only the province level is checked against the standard: the lower levels change
    every year and are not bundled.

    Raises:
        InvalidIdentifier: not six digits, or no such province-level division.
    """
    code = text.strip()
    if len(code) != 6 or not (code.isascii() and code.isdigit()):
        raise InvalidIdentifier(f"division code must be 6 digits, got {echo(code)}")
    if code[:2] not in _PROVINCES:
        raise InvalidIdentifier(f"division code {code} has no province-level division {code[:2]}")
    return code


# Cities named in the source documents (code: (name, province)). Bundled, never read
# from a data directory at run time.
_REGIONS: dict[str, tuple[str, str]] = {
    "420700": ("鄂州市", "湖北省"),
    "420100": ("武汉市", "湖北省"),
    "420200": ("黄石市", "湖北省"),
    "421200": ("咸宁市", "湖北省"),
    "420900": ("孝感市", "湖北省"),
    "422800": ("恩施土家族苗族自治州", "湖北省"),
    "330482": ("平湖市", "浙江省"),
    "210800": ("营口市", "辽宁省"),
    "410505": ("安阳市殷都区", "河南省"),
    "440300": ("深圳市", "广东省"),
    "330100": ("杭州市", "浙江省"),
    "440100": ("广州市", "广东省"),
    "320100": ("南京市", "江苏省"),
}


def region_name(code: str) -> str | None:
    """The name of a bundled division, or None for a valid code that is not bundled.

    Raises:
        InvalidIdentifier: ``code`` is not a division code (see :func:`validate_division_code`).
    """
    entry = _REGIONS.get(validate_division_code(code))
    return None if entry is None else entry[0]
