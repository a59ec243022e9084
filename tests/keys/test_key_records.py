"""Key records: windows, revocation, and a record's key matching its id and purpose."""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tongban.keys.errors import BadPeerData, CallerError
from tongban.keys.pki import generate_encryption_key, public_key_der
from tongban.keys.records import ENCRYPTION_ALGORITHM, KeyPurpose, KeyRecord, encryption_key_id
from tongban.keys.signing import key_id_of

NOW = datetime(2026, 11, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def _signing_record() -> KeyRecord:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return KeyRecord.for_signing(key, not_before=NOW, not_after=NOW + DAY)


def _encryption_record() -> KeyRecord:
    key = generate_encryption_key().public_key()
    return KeyRecord.for_encryption(key, not_before=NOW, not_after=NOW + DAY)


def test_a_signing_record_describes_its_key() -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    rec = KeyRecord.for_signing(key, not_before=NOW, not_after=NOW + DAY)
    assert (rec.key_id, rec.purpose, rec.algorithm, rec.revoked_at) == (
        key_id_of(key),
        KeyPurpose.SIGNING,
        "ecdsa-p256-sha256",
        None,
    )
    assert rec.signing_key().public_numbers() == key.public_numbers()


def test_an_encryption_record_describes_its_key() -> None:
    key = generate_encryption_key().public_key()
    rec = KeyRecord.for_encryption(key, not_before=NOW, not_after=NOW + DAY)
    assert (rec.key_id, rec.purpose, rec.algorithm) == (
        encryption_key_id(key),
        KeyPurpose.ENCRYPTION,
        ENCRYPTION_ALGORITHM,
    )
    assert public_key_der(rec.encryption_key()) == public_key_der(key)


@pytest.mark.parametrize("length", [timedelta(0), -DAY])
def test_an_empty_window_is_refused(length: timedelta) -> None:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    with pytest.raises(
        CallerError, match=r"^key window is empty: 2026-11-01T00:00:00.000000Z \.\. "
    ):
        KeyRecord.for_signing(key, not_before=NOW, not_after=NOW + length)
    shortest = KeyRecord.for_signing(key, not_before=NOW, not_after=NOW + timedelta(microseconds=1))
    assert shortest.valid_at(NOW)


def test_a_naive_window_is_refused() -> None:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    with pytest.raises(CallerError, match=r"^not_before must be timezone-aware"):
        KeyRecord.for_signing(key, not_before=NOW.replace(tzinfo=None), not_after=NOW + DAY)
    with pytest.raises(CallerError, match=r"^not_after must be timezone-aware"):
        KeyRecord.for_signing(key, not_before=NOW, not_after=(NOW + DAY).replace(tzinfo=None))


def test_the_window_includes_its_start_and_excludes_its_end() -> None:
    rec = _signing_record()
    tick = timedelta(microseconds=1)
    assert [
        rec.valid_at(t)
        for t in (NOW - DAY, NOW - tick, NOW, NOW + DAY - tick, NOW + DAY, NOW + 2 * DAY)
    ] == [False, False, True, True, False, False]


def test_revocation_ends_the_window_at_its_moment() -> None:
    at = NOW + timedelta(hours=1)
    tick = timedelta(microseconds=1)
    rec = _signing_record().revoked(at)
    assert rec.revoked_at == at
    assert [rec.valid_at(t) for t in (NOW, at - tick, at, NOW + DAY - tick)] == [
        True,
        True,
        False,
        False,
    ]
    with pytest.raises(CallerError, match=r"^revoked_at must be timezone-aware"):
        _signing_record().revoked(at.replace(tzinfo=None))


def test_records_round_trip_through_json_with_and_without_revocation() -> None:
    rec = _signing_record()
    assert rec.to_json_dict()["revoked_at"] is None
    assert KeyRecord.from_json_dict(rec.to_json_dict()) == rec
    revoked = rec.revoked(NOW + DAY / 2)
    assert revoked.to_json_dict()["revoked_at"] == "2026-11-01T12:00:00.000000Z"
    assert KeyRecord.from_json_dict(revoked.to_json_dict()) == revoked


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.pop("keyid"),
        lambda d: d.update(purpose="sealing"),
        lambda d: d.update(public_key="zz"),
        lambda d: d.update(not_before="yesterday"),
    ],
    ids=["no-keyid", "unknown-purpose", "not-hex", "bad-time"],
)
def test_a_malformed_record_is_refused(change) -> None:  # type: ignore[no-untyped-def]
    data = _signing_record().to_json_dict()
    change(data)
    with pytest.raises(BadPeerData, match=r"^malformed key record: "):
        KeyRecord.from_json_dict(data)


def test_a_record_serves_only_its_purpose() -> None:
    sign, enc = _signing_record(), _encryption_record()
    with pytest.raises(BadPeerData, match=rf"^key {enc.key_id[:16]} is not a signing key$"):
        enc.signing_key()
    with pytest.raises(BadPeerData, match=rf"^key {sign.key_id[:16]} is not an encryption key$"):
        sign.encryption_key()


def test_a_signing_record_over_an_x25519_key_is_refused() -> None:
    x = generate_encryption_key().public_key()
    rec = replace(_signing_record(), key_id=key_id_of(x), public_key_der=public_key_der(x))
    with pytest.raises(BadPeerData, match=rf"^key {rec.key_id[:16]} has unsupported type$"):
        rec.signing_key()


def test_an_encryption_record_over_a_signing_key_is_refused() -> None:
    s = ed25519.Ed25519PrivateKey.generate().public_key()
    rec = replace(_encryption_record(), key_id=key_id_of(s), public_key_der=public_key_der(s))
    with pytest.raises(BadPeerData, match=rf"^key {rec.key_id[:16]} is not an X25519 key$"):
        rec.encryption_key()


@pytest.mark.parametrize("read", ["signing_key", "encryption_key"])
def test_a_record_whose_key_does_not_match_its_id_is_refused(read: str) -> None:
    """Each of two records given the other's key: one key's id sorts before the record's id
    and the other's after, so the refusal does not depend on which keys were drawn."""
    make = _signing_record if read == "signing_key" else _encryption_record
    first, second = make(), make()
    for rec, other in ((first, second), (second, first)):
        swapped = replace(rec, public_key_der=other.public_key_der)
        with pytest.raises(
            BadPeerData, match=rf"^key record {rec.key_id[:16]} does not match its public key$"
        ):
            getattr(swapped, read)()


def test_a_record_cannot_be_changed_in_place() -> None:
    """Revoking gives a new record; the one the directory published stays as it was."""
    rec = _signing_record()
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.revoked_at = NOW  # type: ignore[misc]
    assert rec.revoked(NOW).revoked_at == NOW
    assert rec.revoked_at is None


def test_the_window_must_be_named() -> None:
    """Positional dates could be given in the wrong order without a word."""
    signing = ed25519.Ed25519PrivateKey.generate().public_key()
    encryption = generate_encryption_key().public_key()
    for make, key in ((KeyRecord.for_signing, signing), (KeyRecord.for_encryption, encryption)):
        with pytest.raises(TypeError, match=r"takes 2 positional arguments but 4 were given"):
            make(key, NOW, NOW + DAY)  # type: ignore[misc,operator]


@pytest.mark.parametrize("purpose", ["signing", "encryption"])
def test_a_purpose_that_is_not_a_key_purpose_serves_nothing(purpose: str) -> None:
    """Only the KeyPurpose member itself counts: a record built around the parser with the
    bare text of a purpose is not trusted for it."""
    rec = _signing_record() if purpose == "signing" else _encryption_record()
    bare = replace(rec, purpose=str(purpose))
    read = bare.signing_key if purpose == "signing" else bare.encryption_key
    kind = "a signing" if purpose == "signing" else "an encryption"
    with pytest.raises(BadPeerData, match=rf"^key {rec.key_id[:16]} is not {kind} key$"):
        read()
