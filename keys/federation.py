"""Creating a federation: every key and certificate it starts with, and its first directory.

That is the root and, for each node, its two CAs (identity and seal), its TLS identity,
its relay keys and the certificates of its halls and admins. The hierarchy is described in
:mod:`tongban.keys.pki`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519

from tongban.keys.clock import require_aware
from tongban.keys.directory import FederationDirectory, HallEntry, NodeEntry, sign_directory
from tongban.keys.envelope import Envelope
from tongban.keys.errors import CallerError
from tongban.keys.pki import (
    CaKind,
    Role,
    generate_encryption_key,
    generate_root,
    generate_signing_key,
    issue_ca,
    issue_certificate,
)
from tongban.keys.records import KeyRecord
from tongban.keys.signing import PrivateKeySigner

__all__ = [
    "ClientIdentity",
    "Federation",
    "NodeMaterial",
    "NodeSpec",
    "create_federation",
    "issue_client",
]


@dataclass(frozen=True)
class NodeSpec:
    """What to create for one node of a new federation: its id, names, endpoints and halls."""

    node_id: str
    name: str
    endpoint: str
    public_endpoint: str = ""
    hall_count: int = 2
    host: str = "127.0.0.1"


@dataclass(frozen=True)
class ClientIdentity:
    """A hall's or admin's client certificate and key."""

    name: str
    role: Role
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate


@dataclass(frozen=True)
class NodeMaterial:
    """Every private key and certificate created for one node, and its directory entry."""

    spec: NodeSpec
    tls_key: ec.EllipticCurvePrivateKey
    tls_certificate: x509.Certificate
    signing_keys: tuple[ed25519.Ed25519PrivateKey, ...]
    encryption_keys: tuple[x25519.X25519PrivateKey, ...]
    halls: tuple[ClientIdentity, ...]
    admins: tuple[ClientIdentity, ...]
    entry: NodeEntry
    # The node's own CA for seal certificates: root -> node seal CA -> seal. Held online.
    seal_ca_key: ec.EllipticCurvePrivateKey
    seal_ca_certificate: x509.Certificate
    # The node's CA for TLS identities (node, halls, admins). Held offline.
    identity_ca_key: ec.EllipticCurvePrivateKey
    identity_ca_certificate: x509.Certificate


@dataclass(frozen=True)
class Federation:
    """A new federation: the root key and certificate, each node's material, the directory."""

    root_key: ec.EllipticCurvePrivateKey
    root_certificate: x509.Certificate
    nodes: tuple[NodeMaterial, ...]
    directory: FederationDirectory
    signed_directory: Envelope
    created_at: datetime = field(compare=False)

    def node(self, node_id: str) -> NodeMaterial:
        """The material created for ``node_id``.

        Raises:
            CallerError: no node of this federation has that id.
        """
        for n in self.nodes:
            if n.spec.node_id == node_id:
                return n
        raise CallerError(f"no node {node_id} in this federation")


def issue_client(
    ca_key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
    role: Role,
    node_id: str,
    name: str,
    now: datetime,
) -> ClientIdentity:
    """A new key and TLS client certificate for a hall or admin, from the node's identity CA."""
    key = generate_signing_key()
    cert = issue_certificate(
        ca_key, ca, key.public_key(), role=role, node_id=node_id, name=name, now=now
    )
    return ClientIdentity(name, role, key, cert)


def create_federation(
    specs: Sequence[NodeSpec],
    *,
    now: datetime,
    key_validity: timedelta = timedelta(days=365),
    directory_validity: timedelta = timedelta(days=365),
    seal_ca_days: int = 3650,
) -> Federation:
    """Generate every key and certificate of a new federation and sign its first directory.

    Raises:
        CallerError: no nodes, or a node id given twice.
    """
    now = require_aware(now, "now")
    ids = [s.node_id for s in specs]
    if not ids:
        raise CallerError("a federation needs at least one node")
    if len(set(ids)) != len(ids):
        raise CallerError(f"node ids must be unique: {ids}")
    root_key, root = generate_root(now=now)
    start = now - timedelta(minutes=5)
    materials = []
    for spec in specs:
        identity_ca_key = generate_signing_key()
        identity_ca = issue_ca(
            root_key,
            root,
            identity_ca_key.public_key(),
            kind=CaKind.IDENTITY,
            node_id=spec.node_id,
            now=now,
            valid_days=seal_ca_days,
        )
        tls_key = generate_signing_key()
        tls_cert = issue_certificate(
            identity_ca_key,
            identity_ca,
            tls_key.public_key(),
            role=Role.NODE,
            node_id=spec.node_id,
            name=spec.node_id,
            now=now,
        )
        signing = ed25519.Ed25519PrivateKey.generate()
        encryption = generate_encryption_key()
        records = (
            KeyRecord.for_signing(
                signing.public_key(), not_before=start, not_after=now + key_validity
            ),
            KeyRecord.for_encryption(
                encryption.public_key(), not_before=start, not_after=now + key_validity
            ),
        )
        halls = tuple(
            issue_client(
                identity_ca_key,
                identity_ca,
                Role.HALL,
                spec.node_id,
                f"{spec.node_id}-hall-{i}",
                now,
            )
            for i in range(1, spec.hall_count + 1)
        )
        admins = (
            issue_client(
                identity_ca_key, identity_ca, Role.ADMIN, spec.node_id, f"{spec.node_id}-admin", now
            ),
        )
        seal_ca_key = generate_signing_key()
        seal_ca = issue_ca(
            root_key,
            root,
            seal_ca_key.public_key(),
            kind=CaKind.SEAL,
            node_id=spec.node_id,
            now=now,
            valid_days=seal_ca_days,
        )
        entry = NodeEntry(
            node_id=spec.node_id,
            name=spec.name,
            endpoint=spec.endpoint,
            public_endpoint=spec.public_endpoint,
            certificate=tls_cert,
            identity_ca=identity_ca,
            seal_ca=seal_ca,
            keys=records,
            halls=tuple(HallEntry(h.name, f"{spec.name} 窗口 {i}") for i, h in enumerate(halls, 1)),
        )
        materials.append(
            NodeMaterial(
                spec,
                tls_key,
                tls_cert,
                (signing,),
                (encryption,),
                halls,
                admins,
                entry,
                seal_ca_key,
                seal_ca,
                identity_ca_key,
                identity_ca,
            )
        )
    directory = FederationDirectory(
        version=1,
        issued_at=now,
        expires_at=now + directory_validity,
        nodes=tuple(m.entry for m in materials),
    )
    envelope = sign_directory(directory, PrivateKeySigner(root_key))
    return Federation(root_key, root, tuple(materials), directory, envelope, now)
