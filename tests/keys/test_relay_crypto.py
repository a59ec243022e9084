"""Envelope signing, the segment stream cipher and HPKE key wrapping."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from tongban.keys.content import (
    FileCipher,
    SealedSegment,
    TruncatedStreamError,
    new_data_key,
    unwrap_data_key,
    wrap_data_key,
)
from tongban.keys.envelope import (
    Envelope,
    EnvelopeSignature,
    canonical_json,
    sign_envelope,
    verify_envelope,
)
from tongban.keys.errors import (
    BadPeerData,
    CallerError,
    DecryptionError,
    SignatureError,
    UnknownKeyError,
)
from tongban.keys.pki import generate_encryption_key
from tongban.keys.records import KeyRecord
from tongban.keys.signing import PrivateKeySigner

T = "application/vnd.tongban.test+json"


def _signer() -> PrivateKeySigner:
    return PrivateKeySigner(ed25519.Ed25519PrivateKey.generate())


# ---- envelope ------------------------------------------------------------------------------


def test_envelope_round_trip_through_json() -> None:
    s = _signer()
    env = sign_envelope(canonical_json({"b": 1, "a": "通办"}), T, [s])
    again = Envelope.from_json_dict(env.to_json_dict())
    assert again == env
    assert verify_envelope(again, {s.key_id: s.public_key}, payload_type=T).key_id == s.key_id


def test_envelope_one_changed_payload_byte_is_refused() -> None:
    s = _signer()
    env = sign_envelope(b'{"a":1}', T, [s])
    bad = Envelope(b'{"a":2}', env.payload_type, env.signatures)
    with pytest.raises(SignatureError, match="no signature verifies"):
        verify_envelope(bad, {s.key_id: s.public_key})


def test_envelope_payload_type_is_bound_into_the_signature() -> None:
    s = _signer()
    env = sign_envelope(b"{}", T, [s])
    retyped = Envelope(env.payload, "application/other", env.signatures)
    with pytest.raises(SignatureError):
        verify_envelope(retyped, {s.key_id: s.public_key})
    with pytest.raises(BadPeerData, match=r"expected 'application/vnd.tongban.test\+json'"):
        verify_envelope(retyped, {s.key_id: s.public_key}, payload_type=T)


def test_key_id_is_only_a_hint() -> None:
    good, other = _signer(), _signer()
    env = sign_envelope(b"{}", T, [good])
    # A wrong hint does not make a good signature fail ...
    misnamed = Envelope(env.payload, T, (EnvelopeSignature(other.key_id, env.signatures[0].sig),))
    assert verify_envelope(misnamed, {good.key_id: good.public_key}).key_id == good.key_id
    # ... and a right hint does not make a foreign signature pass.
    forged = Envelope(env.payload, T, (EnvelopeSignature(good.key_id, other.sign(b"x")),))
    with pytest.raises(SignatureError):
        verify_envelope(forged, {good.key_id: good.public_key})


def test_signature_by_a_key_not_acceptable_is_refused() -> None:
    env = sign_envelope(b"{}", T, [_signer()])
    known = _signer()
    with pytest.raises(SignatureError):
        verify_envelope(env, {known.key_id: known.public_key})
    with pytest.raises(UnknownKeyError, match="no acceptable signing key"):
        verify_envelope(env, {})


def test_malformed_envelope_json_is_a_clear_error() -> None:
    with pytest.raises(BadPeerData, match="malformed signed envelope"):
        Envelope.from_json_dict({"payload": "zz", "payloadType": T, "signatures": []})


# ---- segment stream cipher -------------------------------------------------------------------


def _seal(
    data: bytes, size: int, key: bytes, pid: uuid.UUID, index: int = 0
) -> list[SealedSegment]:
    cipher = FileCipher(key, pid, index, segment_size=size)
    chunks = [data[i : i + 7] for i in range(0, len(data), 7)] or [b""]
    return list(cipher.encrypt_chunks(chunks))


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=300), size=st.integers(1, 64))
def test_segments_round_trip_for_any_size(data: bytes, size: int) -> None:
    key, pid = new_data_key(), uuid.uuid4()
    segs = _seal(data, size, key, pid)
    assert [s.index for s in segs] == list(range(len(segs)))
    assert [s.final for s in segs] == [False] * (len(segs) - 1) + [True]
    # Every non-final segment is full, so the layout is fixed by the size alone.
    assert all(len(s.ciphertext) == size + 16 for s in segs[:-1])
    opener = FileCipher(key, pid, 0, segment_size=size)
    assert b"".join(opener.decrypt_segments(segs)) == data
    assert opener.plaintext_digest.size == len(data)


def test_empty_file_still_has_a_final_segment() -> None:
    segs = _seal(b"", 16, new_data_key(), uuid.uuid4())
    assert len(segs) == 1 and segs[0].final and len(segs[0].ciphertext) == 16


@pytest.mark.parametrize(
    ("mutate", "error", "message"),
    [
        (
            lambda s: [
                s[0],
                SealedSegment(1, s[1].final, bytes([s[1].ciphertext[0] ^ 1]) + s[1].ciphertext[1:]),
                *s[2:],
            ],
            DecryptionError,
            "segment 1 failed authentication",
        ),
        (
            lambda s: s[:-1],
            TruncatedStreamError,
            "stream ended after 2 segments without the final one",
        ),
        (lambda s: [s[1], s[0], s[2]], BadPeerData, "segment 1 arrived where 0 was expected"),
        (
            lambda s: [s[0], s[1], SealedSegment(2, False, s[2].ciphertext)],
            DecryptionError,
            "segment 2 failed authentication",
        ),
        (
            lambda s: [s[0], SealedSegment(1, True, s[1].ciphertext)],
            DecryptionError,
            "segment 1 failed authentication",
        ),
    ],
    ids=["flipped-byte", "truncated", "reordered", "final-flag-removed", "cut-and-marked-final"],
)
def test_tampered_segment_streams_are_refused(mutate, error, message) -> None:  # type: ignore[no-untyped-def]
    key, pid = new_data_key(), uuid.uuid4()
    segs = _seal(b"x" * 40, 16, key, pid)
    assert len(segs) == 3
    with pytest.raises(error, match=message):
        list(FileCipher(key, pid, 0, segment_size=16).decrypt_segments(mutate(segs)))


def test_segments_are_bound_to_packet_and_file() -> None:
    key, pid = new_data_key(), uuid.uuid4()
    segs = _seal(b"hello", 16, key, pid, index=0)
    with pytest.raises(DecryptionError):
        list(FileCipher(key, pid, 1, segment_size=16).decrypt_segments(segs))
    with pytest.raises(DecryptionError):
        list(FileCipher(key, uuid.uuid4(), 0, segment_size=16).decrypt_segments(segs))


def test_segment_size_limits() -> None:
    with pytest.raises(CallerError, match="segment size"):
        FileCipher(new_data_key(), uuid.uuid4(), 0, segment_size=0)


# ---- HPKE key wrapping -----------------------------------------------------------------------


def test_wrapped_key_opens_only_for_its_packet_node_and_key() -> None:
    node_key, other = generate_encryption_key(), generate_encryption_key()
    pid, dk = uuid.uuid4(), new_data_key()
    wrapped = wrap_data_key(dk, node_key.public_key(), pid, "420100")
    assert unwrap_data_key(wrapped, [other, node_key], pid, "420100") == dk
    for keys, p, node in (
        ([other], pid, "420100"),
        ([node_key], uuid.uuid4(), "420100"),
        ([node_key], pid, "440300"),
    ):
        with pytest.raises(DecryptionError, match=r"^data key could not be unwrapped$"):
            unwrap_data_key(wrapped, keys, p, node)
    tampered = wrapped[:-1] + bytes([wrapped[-1] ^ 1])
    with pytest.raises(DecryptionError):
        unwrap_data_key(tampered, [node_key], pid, "420100")


# ---- key records -----------------------------------------------------------------------------

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def test_key_record_window_and_revocation() -> None:
    s = _signer()
    rec = KeyRecord.for_signing(s.public_key, not_before=NOW, not_after=NOW + timedelta(days=1))
    assert not rec.valid_at(NOW - timedelta(seconds=1))
    assert rec.valid_at(NOW)
    assert not rec.valid_at(NOW + timedelta(days=1))
    revoked = rec.revoked(NOW + timedelta(hours=1))
    assert revoked.valid_at(NOW + timedelta(minutes=59))
    assert not revoked.valid_at(NOW + timedelta(hours=1))
    assert KeyRecord.from_json_dict(revoked.to_json_dict()) == revoked
    with pytest.raises(CallerError, match="naive"):
        rec.valid_at(datetime(2026, 11, 1))


def test_key_record_must_match_its_key() -> None:
    s = _signer()
    rec = KeyRecord.for_signing(s.public_key, not_before=NOW, not_after=NOW + timedelta(days=1))
    other = _signer()
    from dataclasses import replace

    from tongban.keys.pki import public_key_der

    swapped = replace(rec, public_key_der=public_key_der(other.public_key))
    with pytest.raises(BadPeerData, match="does not match its public key"):
        swapped.signing_key()
