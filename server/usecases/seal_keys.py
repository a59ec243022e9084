"""The node's seal CA and the private keys of its registered seals, kept in a folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from tongban.keys.pki import load_certificate, load_private_key
from tongban.keys.signing import PrivateKeySigner
from tongban.server.domain.errors import InvalidRequest

__all__ = ["SealBook"]


@dataclass(frozen=True)
class SealBook:
    """The node's seal CA and the folder of registered seals' private keys."""

    folder: Path
    ca_key: ec.EllipticCurvePrivateKey
    ca_certificate: x509.Certificate

    @classmethod
    def load(cls, folder: Path) -> SealBook:
        key = load_private_key((folder / "ca-key.pem").read_bytes())
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise InvalidRequest(f"{folder / 'ca-key.pem'} is not an ECDSA key")
        return cls(folder, key, load_certificate((folder / "ca.pem").read_bytes()))

    def key_path(self, seal_id: str) -> Path:
        return self.folder / "keys" / f"{seal_id}.pem"

    def signer_if_present(self, seal_id: str) -> PrivateKeySigner | None:
        return self.signer(seal_id) if self.key_path(seal_id).exists() else None

    def signer(self, seal_id: str) -> PrivateKeySigner:
        key = load_private_key(self.key_path(seal_id).read_bytes())
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise InvalidRequest(f"seal {seal_id} key is not ECDSA")
        return PrivateKeySigner(key)
