"""The federation directory: member nodes, their endpoints, certificates, halls and keys.

It is a statement signed by the federation root key; a node or a third-party verifier
needs only the root certificate (or its fingerprint) to trust it. A newer directory is
accepted only with a higher version than the one held.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from tongban.keys.clock import format_time, parse_time, require_aware
from tongban.keys.envelope import (
    Envelope,
    canonical_json,
    parse_json_object,
    sign_envelope,
    verify_envelope,
)
from tongban.keys.errors import BadPeerData, UnknownKeyError
from tongban.keys.pki import (
    CaKind,
    CertificatePublicKey,
    certificate_pem,
    check_node_ca,
    load_certificate,
)
from tongban.keys.records import KeyPurpose, KeyRecord
from tongban.keys.signing import Signer, key_id_of

__all__ = [
    "DIRECTORY_PAYLOAD_TYPE",
    "FederationDirectory",
    "HallEntry",
    "NodeEntry",
    "UnknownNodeError",
    "load_directory",
    "sign_directory",
]

DIRECTORY_PAYLOAD_TYPE = "application/vnd.tongban.directory.v1+json"


class UnknownNodeError(UnknownKeyError):
    """The directory has no member with that node id."""

    code = "unknown-node"


@dataclass(frozen=True)
class HallEntry:
    """A hall of a member node: the id its certificate names, and its display name."""

    hall_id: str
    name: str

    def to_json_dict(self) -> dict[str, Any]:
        """The hall as it appears in the signed directory payload."""
        return {"hall_id": self.hall_id, "name": self.name}


@dataclass(frozen=True)
class NodeEntry:
    """One member node.

    ``identity_ca`` is the only CA whose certificates are this node's TLS identities (the
    node itself, its halls and admins); ``seal_ca`` the only one whose certificates are its
    seals. Both are issued by the federation root (docs/adr/0004-certificate-hierarchy.md).
    """

    node_id: str
    name: str
    endpoint: str
    certificate: x509.Certificate
    identity_ca: x509.Certificate
    seal_ca: x509.Certificate
    keys: tuple[KeyRecord, ...]
    halls: tuple[HallEntry, ...] = ()
    public_endpoint: str = ""

    @property
    def default_hall(self) -> str:
        return self.halls[0].hall_id if self.halls else ""

    def has_hall(self, hall_id: str) -> bool:
        """Whether the directory lists ``hall_id`` among this node's halls."""
        return any(h.hall_id == hall_id for h in self.halls)

    def signing_keys(self, at: datetime) -> dict[str, CertificatePublicKey]:
        """Signing keys valid at ``at``, by key id."""
        return {
            r.key_id: r.signing_key()
            for r in self.keys
            if r.purpose is KeyPurpose.SIGNING and r.valid_at(at)
        }

    def encryption_key(self, at: datetime) -> KeyRecord:
        """The newest encryption key valid at ``at``.

        Raises:
            UnknownKeyError: the node has no encryption key valid then.
        """
        live = [r for r in self.keys if r.purpose is KeyPurpose.ENCRYPTION and r.valid_at(at)]
        if not live:
            raise UnknownKeyError(
                f"node {self.node_id} has no encryption key valid at {format_time(at)}"
            )
        return max(live, key=lambda r: r.not_before)

    def to_json_dict(self) -> dict[str, Any]:
        """The node as it appears in the signed directory payload, certificates as PEM."""
        return {
            "node_id": self.node_id,
            "name": self.name,
            "endpoint": self.endpoint,
            "public_endpoint": self.public_endpoint,
            "certificate": certificate_pem(self.certificate).decode(),
            "identity_ca": certificate_pem(self.identity_ca).decode(),
            "seal_ca": certificate_pem(self.seal_ca).decode(),
            "keys": [k.to_json_dict() for k in self.keys],
            "halls": [h.to_json_dict() for h in self.halls],
        }

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> NodeEntry:
        """Raises: BadPeerData for a malformed entry or one without the node's two CAs."""
        if not isinstance(data, Mapping):
            raise BadPeerData(f"malformed node entry: a {type(data).__name__}, not an object")
        node_id = str(data.get("node_id", ""))
        if "identity_ca" not in data or "seal_ca" not in data:
            raise BadPeerData(
                f"node {node_id} has no identity CA and seal CA in the directory: it was "
                "written before the certificate hierarchy of ADR 0004; migrate the federation "
                "with `tongban federation migrate`"
            )
        try:
            entry = cls(
                node_id=str(data["node_id"]),
                name=str(data["name"]),
                endpoint=str(data["endpoint"]),
                public_endpoint=str(data.get("public_endpoint", "")),
                certificate=load_certificate(str(data["certificate"]).encode()),
                identity_ca=load_certificate(str(data["identity_ca"]).encode()),
                seal_ca=load_certificate(str(data["seal_ca"]).encode()),
                keys=tuple(KeyRecord.from_json_dict(k) for k in data["keys"]),
                halls=tuple(HallEntry(str(h["hall_id"]), str(h["name"])) for h in data["halls"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BadPeerData(f"malformed node entry: {exc!r}") from None
        check_node_ca(entry.identity_ca, kind=CaKind.IDENTITY, node_id=entry.node_id)
        check_node_ca(entry.seal_ca, kind=CaKind.SEAL, node_id=entry.node_id)
        return entry


@dataclass(frozen=True)
class FederationDirectory:
    """A verified directory. Build one with :func:`load_directory` or for signing."""

    version: int
    issued_at: datetime
    expires_at: datetime
    nodes: tuple[NodeEntry, ...]
    seals: tuple[Mapping[str, Any], ...] = ()
    envelope: Envelope | None = field(default=None, compare=False)

    def node(self, node_id: str) -> NodeEntry:
        """Raises: UnknownNodeError if no member has that id."""
        for n in self.nodes:
            if n.node_id == node_id:
                return n
        raise UnknownNodeError(f"node {node_id!r} is not a member of the federation")

    def has_node(self, node_id: str) -> bool:
        """Whether ``node_id`` is a member; :meth:`node` raises where this answers False."""
        return any(n.node_id == node_id for n in self.nodes)

    def to_payload(self) -> bytes:
        """The canonical JSON bytes the root key signs (see :func:`sign_directory`)."""
        return canonical_json(
            {
                "type": "tongban-directory",
                "version": self.version,
                "issued_at": format_time(self.issued_at),
                "expires_at": format_time(self.expires_at),
                "nodes": [n.to_json_dict() for n in self.nodes],
                "seals": list(self.seals),
            }
        )


def sign_directory(directory: FederationDirectory, root_signer: Signer) -> Envelope:
    """Sign a directory with the federation root key."""
    return sign_envelope(directory.to_payload(), DIRECTORY_PAYLOAD_TYPE, [root_signer])


def _root_keys(roots: Iterable[x509.Certificate]) -> dict[str, CertificatePublicKey]:
    keys: dict[str, CertificatePublicKey] = {}
    for cert in roots:
        key = cert.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise BadPeerData("federation root key must be ECDSA")
        keys[key_id_of(key)] = key
    return keys


def load_directory(
    envelope: Envelope,
    roots: Iterable[x509.Certificate],
    *,
    at: datetime,
    newer_than: int = 0,
) -> FederationDirectory:
    """Verify a signed directory against the root certificate(s) and parse it.

    Raises:
        SignatureError: not signed by a root key.
        BadPeerData: malformed, expired at ``at``, or not newer than ``newer_than``.
    """
    at = require_aware(at, "at")
    verify_envelope(envelope, _root_keys(roots), payload_type=DIRECTORY_PAYLOAD_TYPE)
    data = parse_json_object(envelope.payload, "directory")
    try:
        directory = FederationDirectory(
            version=int(data["version"]),
            issued_at=parse_time(data["issued_at"]),
            expires_at=parse_time(data["expires_at"]),
            nodes=tuple(NodeEntry.from_json_dict(n) for n in data["nodes"]),
            seals=tuple(data.get("seals", [])),
            envelope=envelope,
        )
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise BadPeerData(f"malformed directory: {exc!r}") from None
    if directory.expires_at <= at:
        raise BadPeerData(
            f"directory version {directory.version} expired at {format_time(directory.expires_at)}"
        )
    if directory.version <= newer_than:
        raise BadPeerData(f"directory version {directory.version} is not newer than {newer_than}")
    return directory
