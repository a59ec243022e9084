"""Signed statements: exact payload bytes, a payload type, and signatures keyed by key id.

The signature covers the DSSE pre-authentication encoding of (payload type, payload), so a
payload cannot be replayed under another type. Verification reads the bytes received and
never re-serializes them.

Example:
    >>> from cryptography.hazmat.primitives.asymmetric import ed25519
    >>> from tongban.keys.signing import PrivateKeySigner
    >>> signer = PrivateKeySigner(ed25519.Ed25519PrivateKey.generate())
    >>> env = sign_envelope(b'{"a":1}', "application/vnd.tongban.test+json", [signer])
    >>> verify_envelope(env, {signer.key_id: signer.public_key}).key_id == signer.key_id
    True
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tongban.keys.errors import BadPeerData, SignatureError, UnknownKeyError
from tongban.keys.pki import CertificatePublicKey
from tongban.keys.signing import Signer, verify_signature

__all__ = [
    "MAX_JSON_DEPTH",
    "Envelope",
    "EnvelopeSignature",
    "VerifiedSignature",
    "canonical_json",
    "pae",
    "parse_json_object",
    "sign_envelope",
    "verify_envelope",
]


def canonical_json(value: Any) -> bytes:
    """Deterministic UTF-8 JSON: sorted keys, no insignificant whitespace."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


# Deepest nesting any JSON the project reads may have (the top-level object is level 1).
MAX_JSON_DEPTH = 32


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _json_fault(value: Any, max_depth: int) -> str | None:
    """Why a parsed value is not plain JSON: too deep, a non-finite number, or text that is
    not Unicode; None when it is fine."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > max_depth:
                return f"nests deeper than {max_depth} levels"
            if isinstance(item, dict):
                for key, child in item.items():
                    if not key.isascii() and not _is_unicode(key):
                        return "holds a lone surrogate, which is not Unicode text"
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            if not item.isascii() and not _is_unicode(item):
                return "holds a lone surrogate, which is not Unicode text"
        elif isinstance(item, float) and not math.isfinite(item):
            return "holds a number too large for a float (Infinity)"
    return None


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_json_object(data: bytes, what: str, *, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """Parse bytes that must hold one plain JSON object.

    Plain means: UTF-8, no ``NaN``/``Infinity`` (nor a number that overflows to it), no
    integer longer than Python converts (4300 digits), no lone surrogate, and at most
    ``max_depth`` levels of nesting.

    Raises:
        BadPeerData: not plain UTF-8 JSON, or not an object; the message says why.
    """
    try:
        value = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise BadPeerData(f"{what} is not UTF-8 JSON: {exc}") from None
    except RecursionError:
        raise BadPeerData(f"{what} nests deeper than {max_depth} levels") from None
    except json.JSONDecodeError as exc:
        raise BadPeerData(f"{what} is not UTF-8 JSON: {exc}") from None
    except ValueError as exc:
        # NaN/Infinity (from _reject_constant) or an integer beyond the conversion limit.
        text = str(exc)
        if "is not a JSON number" in text:
            raise BadPeerData(
                f"{what} holds {text.split(maxsplit=1)[0]}, which JSON does not allow"
            ) from None
        raise BadPeerData(
            f"{what} holds an integer longer than {sys.get_int_max_str_digits()} digits"
        ) from None
    if not isinstance(value, dict):
        raise BadPeerData(f"{what} must be a JSON object, got {type(value).__name__}")
    fault = _json_fault(value, max_depth)
    if fault is not None:
        raise BadPeerData(f"{what} {fault}")
    return value


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


@dataclass(frozen=True)
class EnvelopeSignature:
    """One signature over an envelope's PAE, with the id of the key said to have made it."""

    key_id: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    """A payload with its signatures; ``digest`` names this exact payload."""

    payload: bytes
    payload_type: str
    signatures: tuple[EnvelopeSignature, ...]

    @property
    def digest(self) -> str:
        """SHA-256 of the payload bytes, lowercase hex."""
        return hashlib.sha256(self.payload).hexdigest()

    def to_json_dict(self) -> dict[str, Any]:
        """A JSON-ready form with payload and signatures in hex, DSSE's field names."""
        return {
            "payload": self.payload.hex(),
            "payloadType": self.payload_type,
            "signatures": [{"keyid": s.key_id, "sig": s.sig.hex()} for s in self.signatures],
        }

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> Envelope:
        """Rebuild from :meth:`to_json_dict` output.

        Raises:
            BadPeerData: fields missing or of the wrong type.
        """
        try:
            sigs = tuple(
                EnvelopeSignature(str(s["keyid"]), bytes.fromhex(s["sig"]))
                for s in data["signatures"]
            )
            return cls(bytes.fromhex(data["payload"]), str(data["payloadType"]), sigs)
        except (KeyError, TypeError, ValueError) as exc:
            raise BadPeerData(f"malformed signed envelope: {exc!r}") from None


@dataclass(frozen=True)
class VerifiedSignature:
    """Which key's signature was accepted."""

    key_id: str


def sign_envelope(payload: bytes, payload_type: str, signers: Sequence[Signer]) -> Envelope:
    """Sign ``payload`` with every signer."""
    message = pae(payload_type, payload)
    sigs = tuple(EnvelopeSignature(s.key_id, s.sign(message)) for s in signers)
    return Envelope(payload, payload_type, sigs)


def verify_envelope(
    envelope: Envelope,
    keys: Mapping[str, CertificatePublicKey],
    *,
    payload_type: str | None = None,
) -> VerifiedSignature:
    """Accept the envelope if one signature verifies under one of ``keys``.

    The key ids in the envelope are hints: a signature whose hinted key is unknown is tried
    against every acceptable key, so a wrong hint never makes a good signature fail and a
    right hint never makes a bad one pass.

    Raises:
        BadPeerData: the payload type is not the expected one.
        UnknownKeyError: there are no acceptable keys or no signatures at all.
        SignatureError: no signature verifies under any acceptable key.
    """
    if payload_type is not None and envelope.payload_type != payload_type:
        raise BadPeerData(f"payload type is {envelope.payload_type!r}, expected {payload_type!r}")
    if not keys:
        raise UnknownKeyError("no acceptable signing key is known for this signer")
    if not envelope.signatures:
        raise SignatureError("statement carries no signature")
    message = pae(envelope.payload_type, envelope.payload)
    for sig in envelope.signatures:
        hinted = keys.get(sig.key_id)
        candidates = [(sig.key_id, hinted)] if hinted is not None else list(keys.items())
        for key_id, key in candidates:
            try:
                verify_signature(key, sig.sig, message)
            except SignatureError:
                continue
            return VerifiedSignature(key_id)
    raise SignatureError("no signature verifies under a key this signer holds")
