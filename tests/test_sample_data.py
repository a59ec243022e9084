"""Sample data a reader copies: every credit code valid, and each carrying the division
code of the city its organisation is named after (a 武汉 seal with 武汉's 420100)."""

from __future__ import annotations

import re
import subprocess
from datetime import date
from pathlib import Path

import pytest

from tongban.cli.demo import SAMPLE_ORGANISATIONS
from tongban.keys.identifiers import (
    _REGIONS,
    InvalidIdentifier,
    validate_citizen_id,
    validate_credit_code,
)

ROOT = Path(__file__).resolve().parent.parent
# Where sample data lives: the documents, the demo, docstrings, benchmarks and the shared
# test fixtures. Test files that feed the node bad codes on purpose are not sample data.
SAMPLE_PLACES = ("README.md", "docs", "cli", "client", "keys", "server", "bench", "examples")
SAMPLE_FIXTURES = ("tests/fixtures_seal.py", "tests/harness.py")
CREDIT_CODE = re.compile(r"(?<![0-9A-Z])[0-9A-Z]{2}[0-9]{6}[0-9A-Z]{10}(?![0-9A-Z])")
CITY_NAMES = {name: code for code, (name, _) in _REGIONS.items()}


def _sample_lines() -> list[tuple[str, int, str]]:
    tracked = subprocess.run(
        ["git", "ls-files", "--", *SAMPLE_PLACES, *SAMPLE_FIXTURES],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    lines = []
    for name in tracked:
        path = ROOT / name
        if path.suffix not in (".py", ".md", ".toml", ".json", ".sh", ".txt") or not path.is_file():
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if CREDIT_CODE.search(line):
                lines.append((name, number, line))
    return lines


def _is_citizen_id(text: str) -> bool:
    try:
        validate_citizen_id(text, today=date(2026, 1, 1))
    except InvalidIdentifier:
        return False
    return True


def _city_of(text: str) -> str | None:
    """The division code of the one bundled city the text names, if it names one."""
    named = {code for name, code in CITY_NAMES.items() if name in text}
    return named.pop() if len(named) == 1 else None


def test_sample_lines_were_found() -> None:
    places = {name for name, _, _ in _sample_lines()}
    assert {"README.md", "tests/fixtures_seal.py", "keys/identifiers.py"} <= places


@pytest.mark.parametrize(("where", "number", "line"), _sample_lines())
def test_every_sample_credit_code_is_valid_and_of_the_named_city(
    where: str, number: int, line: str
) -> None:
    for code in CREDIT_CODE.findall(line):
        if code.startswith("1110000000001333"):
            continue  # the e-certificate standard's own issuing-body code, in a longer id
        if _is_citizen_id(code):
            continue  # a 居民身份证号码 has the same shape
        try:
            validate_credit_code(code)
        except InvalidIdentifier as exc:
            pytest.fail(f"{where}:{number}: {code}: {exc.message}")
        city = _city_of(line)
        if city is not None:
            assert code[2:8] == city, f"{where}:{number}: {code} is not of {city}"


@pytest.mark.parametrize(("name", "code"), sorted(SAMPLE_ORGANISATIONS.items()))
def test_the_demos_organisations_carry_their_own_city(name: str, code: str) -> None:
    assert validate_credit_code(code) == code
    city = _city_of(name)
    assert city is not None and code[2:8] == city
