"""The ``Signer`` seam: a private key in a file and one in an HSM are interchangeable.

Signatures are Ed25519 (relay statements) or ECDSA P-256 with SHA-256 (seals, and any
key an HSM holds). A key id is the SHA-256 of the public key's SubjectPublicKeyInfo; it
is a hint for finding the key, never a proof of who signed.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519

from tongban.keys.errors import CallerError, SignatureError
from tongban.keys.pki import CertificatePublicKey, public_key_der

__all__ = [
    "PrivateKeySigner",
    "Signer",
    "algorithm_of",
    "key_id_of",
    "verify_signature",
]


def key_id_of(public_key: CertificatePublicKey | x25519.X25519PublicKey) -> str:
    """Key id: lowercase hex SHA-256 of the SubjectPublicKeyInfo DER."""
    return hashlib.sha256(public_key_der(public_key)).hexdigest()


def algorithm_of(public_key: CertificatePublicKey) -> str:
    """The algorithm name key records publish: "ed25519" or "ecdsa-p256-sha256".

    Raises:
        CallerError: an elliptic-curve key not on P-256.
    """
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(public_key.curve, ec.SECP256R1):
        return "ecdsa-p256-sha256"
    raise CallerError(f"unsupported curve {public_key.curve.name}")


class Signer(ABC):
    """Something that signs bytes with a private key it may never reveal."""

    @property
    @abstractmethod
    def key_id(self) -> str:
        """The key id of the public key."""

    @property
    @abstractmethod
    def public_key(self) -> CertificatePublicKey:
        """The public key matching the private key."""

    @abstractmethod
    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` (the whole message; hashing is the signer's business)."""

    @property
    def algorithm(self) -> str:
        return algorithm_of(self.public_key)


class PrivateKeySigner(Signer):
    """A :class:`Signer` over an in-memory Ed25519 or ECDSA P-256 private key."""

    def __init__(self, key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey) -> None:
        if isinstance(key, ec.EllipticCurvePrivateKey) and not isinstance(key.curve, ec.SECP256R1):
            raise CallerError(f"unsupported curve {key.curve.name}; use P-256")
        self._key = key
        self._public = key.public_key()
        self._key_id = key_id_of(self._public)

    @property
    def key_id(self) -> str:
        return self._key_id

    @property
    def public_key(self) -> CertificatePublicKey:
        return self._public

    def sign(self, data: bytes) -> bytes:
        """An Ed25519 signature, or a DER-encoded ECDSA signature over SHA-256 of ``data``."""
        if isinstance(self._key, ed25519.Ed25519PrivateKey):
            return self._key.sign(data)
        return self._key.sign(data, ec.ECDSA(hashes.SHA256()))


def verify_signature(public_key: CertificatePublicKey, signature: bytes, data: bytes) -> None:
    """Check one signature.

    Raises:
        SignatureError: the signature does not verify.
    """
    try:
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, data)
        else:
            public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureError("signature does not verify") from None
