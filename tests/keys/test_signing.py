"""The Signer seam: which keys may sign, and how signatures are checked."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tongban.keys.errors import CallerError, SignatureError
from tongban.keys.signing import PrivateKeySigner, Signer, algorithm_of, verify_signature


def test_algorithm_names_ed25519_and_p256_and_refuses_other_curves() -> None:
    assert algorithm_of(ed25519.Ed25519PrivateKey.generate().public_key()) == "ed25519"
    assert algorithm_of(ec.generate_private_key(ec.SECP256R1()).public_key()) == (
        "ecdsa-p256-sha256"
    )
    with pytest.raises(CallerError, match=r"^unsupported curve secp384r1$"):
        algorithm_of(ec.generate_private_key(ec.SECP384R1()).public_key())


def test_a_signer_over_a_p384_key_is_refused() -> None:
    with pytest.raises(CallerError, match=r"^unsupported curve secp384r1; use P-256$"):
        PrivateKeySigner(ec.generate_private_key(ec.SECP384R1()))


@pytest.mark.parametrize(
    ("key", "algorithm"),
    [
        (ed25519.Ed25519PrivateKey.generate(), "ed25519"),
        (ec.generate_private_key(ec.SECP256R1()), "ecdsa-p256-sha256"),
    ],
    ids=["ed25519", "p256"],
)
def test_signatures_verify_only_over_the_signed_bytes(
    key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey, algorithm: str
) -> None:
    signer = PrivateKeySigner(key)
    assert signer.algorithm == algorithm
    sig = signer.sign(b"statement")
    verify_signature(signer.public_key, sig, b"statement")
    with pytest.raises(SignatureError, match=r"^signature does not verify$"):
        verify_signature(signer.public_key, sig, b"statement!")


@pytest.mark.parametrize("missing", ["key_id", "public_key", "sign"])
def test_a_signer_must_implement_every_part(missing: str) -> None:
    parts: dict[str, object] = {
        "key_id": property(lambda self: "k"),
        "public_key": property(lambda self: ed25519.Ed25519PrivateKey.generate().public_key()),
        "sign": lambda self, data: b"",
    }
    del parts[missing]
    partial = type("PartialSigner", (Signer,), parts)
    with pytest.raises(TypeError, match=missing):
        partial()
