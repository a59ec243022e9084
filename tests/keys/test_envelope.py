"""Signed envelopes: canonical bytes, strict parsing, and which signatures are accepted."""

from __future__ import annotations

import dataclasses
import hashlib
import re

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from tongban.keys.envelope import (
    Envelope,
    EnvelopeSignature,
    VerifiedSignature,
    canonical_json,
    parse_json_object,
    sign_envelope,
    verify_envelope,
)
from tongban.keys.errors import BadPeerData, SignatureError
from tongban.keys.signing import PrivateKeySigner

T = "application/vnd.tongban.test+json"


def _signer() -> PrivateKeySigner:
    return PrivateKeySigner(ed25519.Ed25519PrivateKey.generate())


def test_canonical_json_sorts_keys_keeps_utf8_and_has_no_spaces() -> None:
    assert canonical_json({"b": 1, "a": {"名": "张三"}}) == '{"a":{"名":"张三"},"b":1}'.encode()


def test_canonical_json_refuses_nan() -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        canonical_json({"x": float("nan")})


def test_parse_json_object_takes_an_object() -> None:
    assert parse_json_object(b'{"a":1}', "receipt") == {"a": 1}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff{}", r"^receipt is not UTF-8 JSON: 'utf-8' codec can't decode byte 0xff"),
        (b"{", r"^receipt is not UTF-8 JSON: Expecting property name"),
        (b"[1]", r"^receipt must be a JSON object, got list$"),
    ],
    ids=["not-utf8", "not-json", "not-an-object"],
)
def test_parse_json_object_refuses_anything_else(data: bytes, message: str) -> None:
    with pytest.raises(BadPeerData, match=message):
        parse_json_object(data, "receipt")


def test_digest_names_the_exact_payload() -> None:
    env = sign_envelope(b'{"a":1}', T, [_signer()])
    assert env.digest == hashlib.sha256(b'{"a":1}').hexdigest()


def test_envelopes_and_verdicts_cannot_be_changed_after_the_fact() -> None:
    env = sign_envelope(b"{}", T, [_signer()])
    for obj, name, value in (
        (env, "payload", b"{}"),
        (env.signatures[0], "sig", b""),
        (VerifiedSignature("k"), "key_id", "other"),
    ):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, name, value)


def test_payload_type_is_keyword_only() -> None:
    s = _signer()
    env = sign_envelope(b"{}", T, [s])
    with pytest.raises(TypeError):
        verify_envelope(env, {s.key_id: s.public_key}, T)  # type: ignore[misc]


@pytest.mark.parametrize("wrong", ["application/a", "application/z"], ids=["sorts-before", "after"])
def test_any_other_payload_type_is_refused(wrong: str) -> None:
    s = _signer()
    env = sign_envelope(b"{}", wrong, [s])
    message = f"payload type is '{wrong}', expected '{T}'"
    with pytest.raises(BadPeerData, match=f"^{re.escape(message)}$"):
        verify_envelope(env, {s.key_id: s.public_key}, payload_type=T)


def test_payload_type_is_compared_by_value() -> None:
    s = _signer()
    env = sign_envelope(b"{}", T, [s])
    same_text = "".join(list(T))  # equal, but another string object
    assert same_text is not env.payload_type
    assert verify_envelope(env, {s.key_id: s.public_key}, payload_type=same_text).key_id == s.key_id


def test_an_unknown_hint_is_tried_against_every_acceptable_key() -> None:
    """The right key comes after keys that fail: trying goes on until one verifies."""
    first, second, signer = _signer(), _signer(), _signer()
    env = sign_envelope(b"{}", T, [signer])
    hinted = dataclasses.replace(env.signatures[0], key_id="not-a-known-key")
    env = dataclasses.replace(env, signatures=(hinted,))
    keys = {first.key_id: first.public_key, second.key_id: second.public_key}
    keys[signer.key_id] = signer.public_key
    assert list(keys)[-1] == signer.key_id
    assert verify_envelope(env, keys).key_id == signer.key_id


def test_a_later_good_signature_is_found_after_a_bad_one() -> None:
    signer, stranger = _signer(), _signer()
    good = sign_envelope(b"{}", T, [signer]).signatures[0]
    bad = EnvelopeSignature(signer.key_id, bytes(64))
    env = Envelope(b"{}", T, (bad, good))
    assert verify_envelope(env, {signer.key_id: signer.public_key}).key_id == signer.key_id
    with pytest.raises(SignatureError):
        verify_envelope(Envelope(b"{}", T, (bad,)), {signer.key_id: signer.public_key})
    with pytest.raises(SignatureError):
        verify_envelope(env, {stranger.key_id: stranger.public_key})
