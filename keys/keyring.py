"""A node's own private keys, matched with the records the directory publishes for them.

The newest signing key valid now signs; every encryption key the node still holds can
decrypt, so data wrapped before a rotation stays readable (cf. ``MultiFernet``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519

from tongban.keys.clock import format_time, require_aware
from tongban.keys.directory import NodeEntry
from tongban.keys.errors import CallerError, UnknownKeyError
from tongban.keys.pki import load_private_key, write_private_key
from tongban.keys.records import KeyPurpose, KeyRecord, encryption_key_id
from tongban.keys.signing import PrivateKeySigner, Signer, key_id_of

__all__ = ["NodeKeyRing", "save_private_keys"]


@dataclass(frozen=True)
class NodeKeyRing:
    """The private keys a node holds, each paired with the directory record it publishes."""

    node_id: str
    signers: tuple[tuple[KeyRecord, Signer], ...]
    decryption_keys: tuple[tuple[KeyRecord, x25519.X25519PrivateKey], ...]

    def signer(self, at: datetime) -> Signer:
        """The newest signing key valid at ``at``.

        Raises:
            UnknownKeyError: none is valid then.
        """
        at = require_aware(at, "at")
        live = [(r, s) for r, s in self.signers if r.valid_at(at)]
        if not live:
            raise UnknownKeyError(
                f"node {self.node_id} holds no signing key valid at {format_time(at)}"
            )
        return max(live, key=lambda rs: rs[0].not_before)[1]

    def decryption_candidates(self, key_id_hint: str) -> list[x25519.X25519PrivateKey]:
        """Every held encryption key not revoked, the hinted one first (the hint is no proof)."""
        keys = [(r, k) for r, k in self.decryption_keys if r.revoked_at is None]
        keys.sort(key=lambda rk: rk[0].key_id != key_id_hint)
        return [k for _, k in keys]

    @classmethod
    def load(cls, folder: Path, entry: NodeEntry) -> NodeKeyRing:
        """Load ``*.pem`` private keys from ``folder`` and pair them with published records.

        Keys the directory does not (yet) list are ignored: an unpublished key cannot be
        verified or addressed by anyone.

        Raises:
            CallerError: the folder holds no key of this node's published records.
        """
        records = {r.key_id: r for r in entry.keys}
        signers: list[tuple[KeyRecord, Signer]] = []
        decrypt: list[tuple[KeyRecord, x25519.X25519PrivateKey]] = []
        for path in sorted(folder.glob("*.pem")):
            key = load_private_key(path.read_bytes())
            if isinstance(key, x25519.X25519PrivateKey):
                record = records.get(encryption_key_id(key.public_key()))
                if record is not None and record.purpose is KeyPurpose.ENCRYPTION:
                    decrypt.append((record, key))
            elif isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
                record = records.get(key_id_of(key.public_key()))
                if record is not None and record.purpose is KeyPurpose.SIGNING:
                    signers.append((record, PrivateKeySigner(key)))
        if not signers or not decrypt:
            raise CallerError(
                f"{folder} holds no published signing and encryption keys of node {entry.node_id}"
            )
        return cls(entry.node_id, tuple(signers), tuple(decrypt))


def save_private_keys(
    folder: Path,
    signing: Sequence[ed25519.Ed25519PrivateKey],
    encryption: Sequence[x25519.X25519PrivateKey],
) -> None:
    """Write private keys as ``signing-<id>.pem`` / ``encryption-<id>.pem``, owner-only."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    for s in signing:
        write_private_key(folder / f"signing-{key_id_of(s.public_key())[:16]}.pem", s)
    for e in encryption:
        write_private_key(folder / f"encryption-{encryption_key_id(e.public_key())[:16]}.pem", e)
