"""E-certificate identifiers (GB/T 36904, ISO 7064 MOD 37,36) and signed status lists."""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given
from hypothesis import strategies as st

from tests.fixtures_seal import ECERT, EZHOU_USCC, NOW
from tongban.keys.ecert import (
    ECERT_PREFIX,
    ECertCheckCharacterError,
    ECertIdentifier,
    ECertIdentifierError,
    ECertStatus,
    ECertStatusEntry,
    ECertStatusList,
    StatusListStaleError,
    load_status_list,
    mod37_36_check_character,
    parse_ecert_identifier,
    sign_status_list,
    verification_link,
)
from tongban.keys.envelope import Envelope
from tongban.keys.errors import BadPeerData, CallerError, SignatureError
from tongban.keys.signing import PrivateKeySigner

ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


# --- ISO 7064 MOD 37,36 ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "check"),
    [
        # Published MOD 37,36 test vectors (also used by the cdigit and iso7064 libraries).
        ("A12425GABC1234002", "M"),
        ("RABD", "A"),
        ("X0H", "X"),
        ("B7Q3SFTUSH2QN7BIXBPMNZAM", "I"),
        ("TBR", "1"),
        ("EFWW032G2TI", "U"),
        ("9", "J"),
        ("B3739U6CR", "K"),
        ("OW", "N"),
        ("1M", "Q"),
        ("WP8Z0", "9"),
        ("MM61BF7H6C2O86NNMW8ZY8V", "8"),
    ],
)
def test_mod37_36_matches_published_vectors(data: str, check: str) -> None:
    assert mod37_36_check_character(data) == check


@pytest.mark.parametrize(
    "identifier",
    [
        # Identifiers published by provincial e-certificate platforms.
        "1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.001.U",
        "1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.002.S",
        "1.2.156.3005.2.11100000000013338W087.11370800MB28559184.37080001202411010001.001.3",
        "1.2.156.3005.2.11100000000013338W009.11330105002500287C.2025052201.002.0",
    ],
)
def test_real_identifiers_parse_and_print_back(identifier: str) -> None:
    assert str(parse_ecert_identifier(identifier)) == identifier


def test_mod37_36_refuses_characters_outside_its_alphabet() -> None:
    with pytest.raises(CallerError, match=r"character '\*' is not in the MOD 37,36 alphabet"):
        mod37_36_check_character("AB*C")
    with pytest.raises(CallerError, match="character 'a'"):
        mod37_36_check_character("abc")


@given(st.text(alphabet=ALNUM, min_size=1, max_size=80))
def test_check_character_is_in_the_alphanumeric_set(data: str) -> None:
    # MOD 37,36 is the hybrid system: no '*' (that is MOD 37-2).
    assert mod37_36_check_character(data) in ALNUM


@given(
    st.text(alphabet=ALNUM, min_size=1, max_size=60),
    st.data(),
)
def test_every_single_substitution_is_detected(data: str, draw: st.DataObject) -> None:
    position = draw.draw(st.integers(0, len(data) - 1))
    replacement = draw.draw(st.sampled_from([c for c in ALNUM if c != data[position]]))
    changed = data[:position] + replacement + data[position + 1 :]
    assert mod37_36_check_character(changed) != mod37_36_check_character(data)


# --- identifiers -------------------------------------------------------------------------

identifiers = st.builds(
    ECertIdentifier,
    type_code=st.text(alphabet=ALNUM, min_size=1, max_size=32),
    issuer_uscc=st.sampled_from([EZHOU_USCC, "11430000006122244L", "91350100M000100Y43"]),
    serial=st.text(alphabet=ALNUM, min_size=1, max_size=64),
    version=st.integers(0, 999).map(lambda v: f"{v:03d}"),
)


@given(identifiers)
def test_identifier_round_trips_through_text(identifier: ECertIdentifier) -> None:
    text = str(identifier)
    assert text.startswith(ECERT_PREFIX + ".")
    assert parse_ecert_identifier(text) == identifier
    body = text[len(ECERT_PREFIX) + 1 : -2].replace(".", "")
    assert text[-1] == mod37_36_check_character(body)


@given(identifiers, st.data())
def test_any_other_check_character_is_refused(
    identifier: ECertIdentifier, draw: st.DataObject
) -> None:
    text = str(identifier)
    other = draw.draw(st.sampled_from([c for c in ALNUM if c != text[-1]]), label="other")
    with pytest.raises(ECertCheckCharacterError) as exc:
        parse_ecert_identifier(text[:-1] + other)
    assert exc.value.code == "bad-ecert-check-character"
    assert exc.value.message == (
        f"e-certificate identifier check character is {other!r}, expected {text[-1]!r}"
    )


@given(st.text(max_size=120))
def test_parser_never_fails_with_anything_but_its_own_error(text: str) -> None:
    with contextlib.suppress(ECertIdentifierError):
        parse_ecert_identifier(text)


@given(identifiers, st.data())
def test_corrupting_one_character_of_an_identifier_is_always_refused(
    identifier: ECertIdentifier, draw: st.DataObject
) -> None:
    text = str(identifier)
    start = len(ECERT_PREFIX) + 1
    position = draw.draw(
        st.sampled_from([i for i in range(start, len(text)) if text[i] != "."]), label="position"
    )
    replacement = draw.draw(st.sampled_from([c for c in ALNUM if c != text[position]]))
    with pytest.raises(ECertIdentifierError):
        parse_ecert_identifier(text[:position] + replacement + text[position + 1 :])


def test_the_bad_check_character_error_is_precise() -> None:
    good = str(ECERT)
    assert good == "1.2.156.3005.2.11100000000013338W011.11420700MB1539542A.2026000001.001.O"
    with pytest.raises(ECertCheckCharacterError) as exc:
        parse_ecert_identifier(good[:-1] + "P")
    assert (exc.value.code, exc.value.message) == (
        "bad-ecert-check-character",
        "e-certificate identifier check character is 'P', expected 'O'",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1.2.156.3005.1.A.11420700MB1539542A.1.001.X", "must start with '1.2.156.3005.2.'"),
        ("1.2.156.3005.2.A.11420700MB1539542A.1.001", "has 4 parts after the prefix, expected 5"),
        ("1.2.156.3005.2.A.11420700MB1539542A.1.001.*", "check character '*' must be one of"),
        ("1.2.156.3005.2.A.11420700MB1539542A.1.001.XY", "check character 'XY' must be one of"),
        ("1.2.156.3005.2.a.11420700MB1539542A.1.001.X", "type code 'a' must be 1-32"),
        ("1.2.156.3005.2.A.11420700MB1539548W.1.001.X", "organisation code check character"),
        ("1.2.156.3005.2.A.11420700mb1539542a.1.001.X", "canonical upper-case form"),
        ("1.2.156.3005.2.A.11420700MB1539542A..001.X", "serial '' must be 1-64"),
        ("1.2.156.3005.2.A.11420700MB1539542A.1.1.X", "version '1' must be three digits"),
    ],
)
def test_malformed_identifiers_say_which_part_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ECertIdentifierError, match=message.replace("*", r"\*")) as exc:
        parse_ecert_identifier(text)
    assert exc.value.code == "bad-ecert-identifier"


def test_verification_link_carries_the_identifier() -> None:
    link = verification_link("https://verify.example.cn/ecert", ECERT)
    assert link == (
        "https://verify.example.cn/ecert?ecert=1.2.156.3005.2.11100000000013338W011."
        "11420700MB1539542A.2026000001.001.O"
    )
    assert verification_link("https://v.example.cn/?lang=zh", ECERT).startswith(
        "https://v.example.cn/?lang=zh&ecert=1.2.156"
    )


# --- status lists ------------------------------------------------------------------------

NODE_KEY = ed25519.Ed25519PrivateKey.generate()
NODE_SIGNER = PrivateKeySigner(NODE_KEY)


def _list(*changes: tuple[ECertStatus, timedelta, str]) -> ECertStatusList:
    status_list = ECertStatusList.empty(
        "420700", issued_at=NOW, next_update=NOW + timedelta(days=1)
    )
    for status, offset, reason in changes:
        status_list = status_list.with_change(
            ECERT,
            status,
            changed_at=NOW + offset,
            reason=reason,
            issued_at=NOW,
            next_update=NOW + timedelta(days=1),
        )
    return status_list


def test_status_list_round_trip_and_lookup() -> None:
    revoked = _list((ECertStatus.REVOKED, -timedelta(hours=1), "许可被依法撤销"))
    envelope = sign_status_list(revoked, NODE_SIGNER)
    loaded = load_status_list(envelope, NODE_SIGNER.public_key, at=NOW + timedelta(hours=2))
    assert loaded == revoked
    entry = loaded.status_at(str(ECERT), NOW)
    assert entry is not None
    assert (entry.status, entry.reason) == (ECertStatus.REVOKED, "许可被依法撤销")
    assert loaded.status_at("1.2.156.3005.2.other", NOW) is None
    # a change recorded for later does not apply before it happened
    assert loaded.status_at(str(ECERT), NOW - timedelta(hours=2)) is None
    # the JSON form of the envelope survives a file
    again = Envelope.from_json_dict(json.loads(json.dumps(envelope.to_json_dict())))
    keys = {NODE_SIGNER.key_id: NODE_SIGNER.public_key}
    assert load_status_list(again, keys, at=NOW) == revoked


def test_latest_change_wins() -> None:
    status_list = _list(
        (ECertStatus.REVOKED, -timedelta(hours=3), "suspended by mistake"),
        (ECertStatus.CANCELLED, -timedelta(hours=1), "enterprise deregistered"),
    )
    entry = status_list.status_at(str(ECERT), NOW)
    assert entry is not None and entry.status is ECertStatus.CANCELLED


def test_revocation_and_cancellation_need_a_reason() -> None:
    with pytest.raises(CallerError, match="a revoked e-certificate needs a reason"):
        _list((ECertStatus.REVOKED, timedelta(0), " "))
    with pytest.raises(CallerError, match="a cancelled e-certificate needs a reason"):
        _list((ECertStatus.CANCELLED, timedelta(0), ""))
    with pytest.raises(CallerError, match="status list window is empty"):
        ECertStatusList.empty("420700", issued_at=NOW, next_update=NOW)
    with pytest.raises(CallerError, match="naive"):
        ECertStatusList.empty("420700", issued_at=datetime(2026, 1, 1), next_update=NOW)


@pytest.mark.parametrize(
    ("at", "max_age", "message"),
    [
        (NOW + timedelta(days=1, seconds=1), None, "was due for update at 2026-03-03T09:30"),
        (NOW + timedelta(hours=7), timedelta(hours=6), "is older than 6:00:00"),
        (NOW - timedelta(minutes=6), None, "is issued at 2026-03-02T09:30:00.000000Z, after"),
    ],
)
def test_stale_or_future_status_lists_are_refused(
    at: datetime, max_age: timedelta | None, message: str
) -> None:
    envelope = sign_status_list(_list(), NODE_SIGNER)
    with pytest.raises(StatusListStaleError, match=message) as exc:
        load_status_list(envelope, NODE_SIGNER.public_key, at=at, max_age=max_age)
    assert exc.value.code == "status-list-stale"


def test_status_list_signed_by_another_key_or_altered_is_refused() -> None:
    envelope = sign_status_list(_list(), NODE_SIGNER)
    other = ed25519.Ed25519PrivateKey.generate().public_key()
    with pytest.raises(SignatureError):
        load_status_list(envelope, other, at=NOW)
    altered = replace(envelope, payload=envelope.payload.replace(b"420700", b"420100"))
    with pytest.raises(SignatureError):
        load_status_list(altered, NODE_SIGNER.public_key, at=NOW)
    retyped = replace(envelope, payload_type="application/vnd.tongban.directory.v1+json")
    with pytest.raises(BadPeerData, match="payload type"):
        load_status_list(retyped, NODE_SIGNER.public_key, at=NOW)


def test_status_entry_json_is_checked() -> None:
    entry = ECertStatusEntry(str(ECERT), ECertStatus.EXPIRED, NOW, "有效期届满")
    assert ECertStatusEntry.from_json_dict(entry.to_json_dict()) == entry
    with pytest.raises(BadPeerData, match="malformed status entry"):
        ECertStatusEntry.from_json_dict({**entry.to_json_dict(), "status": "lost"})
    with pytest.raises(BadPeerData, match="malformed status entry"):
        ECertStatusEntry.from_json_dict({"identifier": "x"})


def test_status_values_are_the_four_of_the_domain() -> None:
    assert [s.value for s in ECertStatus] == ["valid", "revoked", "cancelled", "expired"]
    assert NOW.tzinfo is UTC
