"""The ``Signer`` seam: a private key in a file and one in an HSM are interchangeable.

Signatures are Ed25519 (relay statements) or ECDSA P-256 with SHA-256 (seals, and any
key an HSM holds); national-format seals (GB/T 38540) sign with SM2 and SM3 through
:class:`Sm2Signer`, implemented with Tongsuo (tongsuopy). A key id is the SHA-256 of the
public key's SubjectPublicKeyInfo; it is a hint for finding the key, never a proof of who
signed.
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
    "SM2_SM3_OID",
    "SM2_USER_ID",
    "PrivateKeySigner",
    "Signer",
    "Sm2PrivateKeySigner",
    "Sm2Signer",
    "algorithm_of",
    "key_id_of",
    "verify_signature",
    "verify_sm2_signature",
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


# --- SM2 (GB/T 38540 seals) -------------------------------------------------------------

SM2_USER_ID = b"1234567812345678"
"""The SM2 signer id of GM/T 0009 that GB/T 38540 signatures and SM2 certificates use."""

SM2_SM3_OID = "1.2.156.10197.1.501"
"""SM2 signature with SM3 (GM/T 0006), the algorithm identifier seals carry."""


class Sm2Signer(ABC):
    """Something that signs bytes with an SM2 private key it may never reveal.

    The SM2 side of the seam: ``cryptography`` has no SM2, so an SM2 key cannot be a
    :class:`Signer` (whose public key is a ``cryptography`` key); it offers the same
    three things, with the public key as SubjectPublicKeyInfo DER.
    """

    algorithm = "sm2-sm3"

    @property
    @abstractmethod
    def public_key_der(self) -> bytes:
        """The public key as SubjectPublicKeyInfo DER."""

    @property
    def key_id(self) -> str:
        """Lowercase hex SHA-256 of the SubjectPublicKeyInfo DER, as for other keys."""
        return hashlib.sha256(self.public_key_der).hexdigest()

    @abstractmethod
    def sign(self, data: bytes) -> bytes:
        """A DER SM2 signature over SM3(Z ‖ ``data``), Z computed with :data:`SM2_USER_ID`."""


class Sm2PrivateKeySigner(Sm2Signer):
    """An :class:`Sm2Signer` over an in-memory SM2 private key (Tongsuo, via tongsuopy)."""

    def __init__(self, key: object) -> None:
        from tongsuopy.crypto.asymciphers import ec as sm_ec
        from tongsuopy.crypto.serialization import Encoding, PublicFormat

        if not isinstance(key, sm_ec.EllipticCurvePrivateKey) or not isinstance(
            key.curve, sm_ec.SM2
        ):
            raise CallerError("an SM2 signer needs an SM2 private key")
        self._key = key
        self._public_der: bytes = key.public_key().public_bytes(
            Encoding.DER, PublicFormat.SubjectPublicKeyInfo
        )

    @classmethod
    def generate(cls) -> Sm2PrivateKeySigner:
        """A signer over a fresh SM2 key."""
        from tongsuopy.crypto.asymciphers import ec as sm_ec

        return cls(sm_ec.generate_private_key(sm_ec.SM2()))

    @classmethod
    def from_pem(cls, pem: bytes) -> Sm2PrivateKeySigner:
        """A signer over an unencrypted PKCS#8 PEM SM2 key.

        Raises:
            CallerError: not an SM2 private key.
        """
        from tongsuopy.crypto.serialization import load_pem_private_key

        try:
            key = load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise CallerError(f"not an SM2 private key: {exc}") from None
        return cls(key)

    def private_key_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM, for the node's key folder."""
        from tongsuopy.crypto.serialization import Encoding, NoEncryption, PrivateFormat

        pem: bytes = self._key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        return pem

    @property
    def public_key_der(self) -> bytes:
        return self._public_der

    def sign(self, data: bytes) -> bytes:
        """A DER SM2 signature over SM3(Z ‖ ``data``) with the standard user id."""
        from tongsuopy.crypto import hashes as sm_hashes
        from tongsuopy.crypto.asymciphers import ec as sm_ec

        signature: bytes = self._key.sign(data, sm_ec.ECDSA(sm_hashes.SM3()))
        return signature


def verify_sm2_signature(public_key_der: bytes, signature: bytes, data: bytes) -> None:
    """Check one SM2 signature with SM3 and the standard user id (:data:`SM2_USER_ID`).

    Raises:
        SignatureError: the signature does not verify, or the key is not an SM2 key.
    """
    from tongsuopy.crypto import exceptions as sm_exceptions
    from tongsuopy.crypto import hashes as sm_hashes
    from tongsuopy.crypto.asymciphers import ec as sm_ec
    from tongsuopy.crypto.serialization import load_der_public_key

    try:
        key = load_der_public_key(public_key_der)
    except (ValueError, TypeError):
        raise SignatureError("the public key is not a readable SM2 key") from None
    if not isinstance(key, sm_ec.EllipticCurvePublicKey) or not isinstance(key.curve, sm_ec.SM2):
        raise SignatureError("the public key is not an SM2 key")
    try:
        key.verify(signature, data, sm_ec.ECDSA(sm_hashes.SM3()))
    except (sm_exceptions.InvalidSignature, ValueError):
        raise SignatureError("SM2 signature does not verify") from None
