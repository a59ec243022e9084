"""Key records: a public key with its purpose and validity window, as published in the directory.

Rotation is data: a node publishes several records per purpose; the newest one valid at a
moment is used for new work, and every record stays so that old signatures still verify at
the time they were made.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519

from tongban.keys.clock import format_time, parse_time, require_aware
from tongban.keys.errors import BadPeerData, CallerError
from tongban.keys.pki import CertificatePublicKey, public_key_der
from tongban.keys.signing import algorithm_of, key_id_of

__all__ = ["ENCRYPTION_ALGORITHM", "KeyPurpose", "KeyRecord", "encryption_key_id"]

ENCRYPTION_ALGORITHM = "hpke-x25519-hkdf-sha256-aes-256-gcm"


class KeyPurpose(enum.StrEnum):
    """What a published key is for: signing statements or receiving wrapped data keys."""

    SIGNING = "signing"
    ENCRYPTION = "encryption"


def encryption_key_id(public_key: x25519.X25519PublicKey) -> str:
    """Key id of an HPKE public key: SHA-256 of its SubjectPublicKeyInfo, hex."""
    return key_id_of(public_key)


@dataclass(frozen=True)
class KeyRecord:
    """One published public key and the window in which it may be used."""

    key_id: str
    purpose: KeyPurpose
    algorithm: str
    public_key_der: bytes
    not_before: datetime
    not_after: datetime
    revoked_at: datetime | None = None

    @classmethod
    def for_signing(
        cls, key: CertificatePublicKey, *, not_before: datetime, not_after: datetime
    ) -> KeyRecord:
        """A signing record for an Ed25519 or ECDSA P-256 key and its validity window.

        Raises:
            CallerError: a naive time, an empty window, or an unsupported curve.
        """
        return cls._checked(
            key_id_of(key),
            KeyPurpose.SIGNING,
            algorithm_of(key),
            public_key_der(key),
            not_before,
            not_after,
        )

    @classmethod
    def for_encryption(
        cls, key: x25519.X25519PublicKey, *, not_before: datetime, not_after: datetime
    ) -> KeyRecord:
        """An encryption record for an X25519 key that peers wrap data keys to, and its window.

        Raises:
            CallerError: a naive time or an empty window.
        """
        return cls._checked(
            encryption_key_id(key),
            KeyPurpose.ENCRYPTION,
            ENCRYPTION_ALGORITHM,
            public_key_der(key),
            not_before,
            not_after,
        )

    @classmethod
    def _checked(
        cls,
        key_id: str,
        purpose: KeyPurpose,
        algorithm: str,
        der: bytes,
        not_before: datetime,
        not_after: datetime,
    ) -> KeyRecord:
        start = require_aware(not_before, "not_before")
        end = require_aware(not_after, "not_after")
        if end <= start:
            raise CallerError(f"key window is empty: {format_time(start)} .. {format_time(end)}")
        return cls(key_id, purpose, algorithm, der, start, end)

    def valid_at(self, at: datetime) -> bool:
        """True if the key may be used at ``at``: inside its window and not yet revoked."""
        at = require_aware(at, "at")
        if not self.not_before <= at < self.not_after:
            return False
        return self.revoked_at is None or at < self.revoked_at

    def revoked(self, at: datetime) -> KeyRecord:
        """A copy revoked from ``at`` on; the key stays valid for moments before it.

        Raises:
            CallerError: ``at`` is naive.
        """
        return replace(self, revoked_at=require_aware(at, "revoked_at"))

    def signing_key(self) -> CertificatePublicKey:
        """The public key of a signing record.

        Raises:
            BadPeerData: not a signing record, or the key does not match its id.
        """
        if self.purpose is not KeyPurpose.SIGNING:
            raise BadPeerData(f"key {self.key_id[:16]} is not a signing key")
        key = serialization.load_der_public_key(self.public_key_der)
        if not isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
            raise BadPeerData(f"key {self.key_id[:16]} has unsupported type")
        if key_id_of(key) != self.key_id:
            raise BadPeerData(f"key record {self.key_id[:16]} does not match its public key")
        return key

    def encryption_key(self) -> x25519.X25519PublicKey:
        """The public key of an encryption record.

        Raises:
            BadPeerData: not an X25519 encryption record, or the key does not match its id.
        """
        if self.purpose is not KeyPurpose.ENCRYPTION:
            raise BadPeerData(f"key {self.key_id[:16]} is not an encryption key")
        key = serialization.load_der_public_key(self.public_key_der)
        if not isinstance(key, x25519.X25519PublicKey):
            raise BadPeerData(f"key {self.key_id[:16]} is not an X25519 key")
        if encryption_key_id(key) != self.key_id:
            raise BadPeerData(f"key record {self.key_id[:16]} does not match its public key")
        return key

    def to_json_dict(self) -> dict[str, Any]:
        """The record as it appears in the signed directory payload."""
        return {
            "keyid": self.key_id,
            "purpose": self.purpose.value,
            "algorithm": self.algorithm,
            "public_key": self.public_key_der.hex(),
            "not_before": format_time(self.not_before),
            "not_after": format_time(self.not_after),
            "revoked_at": format_time(self.revoked_at) if self.revoked_at else None,
        }

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> KeyRecord:
        """Raises: BadPeerData on missing or malformed fields."""
        if not isinstance(data, Mapping):
            raise BadPeerData(f"malformed key record: a {type(data).__name__}, not an object")
        try:
            revoked = data.get("revoked_at")
            return cls(
                key_id=str(data["keyid"]),
                purpose=KeyPurpose(data["purpose"]),
                algorithm=str(data["algorithm"]),
                public_key_der=bytes.fromhex(data["public_key"]),
                not_before=parse_time(data["not_before"]),
                not_after=parse_time(data["not_after"]),
                revoked_at=parse_time(revoked) if revoked else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BadPeerData(f"malformed key record: {exc!r}") from None
