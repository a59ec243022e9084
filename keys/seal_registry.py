"""A node's published list of the seals it registered, signed with the node's relay key.

Trust runs root -> directory -> the node's signing key -> this list, so a verifier that
holds only the root certificate learns which seals a node registered and which it revoked,
without the root key having to sign every registration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from tongban.keys.clock import format_time, parse_time, require_aware
from tongban.keys.directory import FederationDirectory
from tongban.keys.envelope import (
    Envelope,
    canonical_json,
    parse_json_object,
    sign_envelope,
    verify_envelope,
)
from tongban.keys.errors import BadPeerData
from tongban.keys.seals import SealRecord
from tongban.keys.signing import Signer

__all__ = ["SEAL_REGISTRY_TYPE", "SealRegistry", "load_seal_registry", "sign_seal_registry"]

SEAL_REGISTRY_TYPE = "application/vnd.tongban.seal-registry.v1+json"


@dataclass(frozen=True)
class SealRegistry:
    """Every seal one node registered, revoked ones included, as of ``issued_at``."""

    node_id: str
    version: int
    issued_at: datetime
    seals: tuple[SealRecord, ...]

    def to_payload(self) -> bytes:
        """The canonical JSON bytes the node signs (see :func:`sign_seal_registry`)."""
        return canonical_json(
            {
                "type": "tongban-seal-registry",
                "node_id": self.node_id,
                "version": self.version,
                "issued_at": format_time(self.issued_at),
                "seals": [s.to_json_dict() for s in self.seals],
            }
        )


def sign_seal_registry(registry: SealRegistry, signer: Signer) -> Envelope:
    """Sign the registry; verifiers accept only a signing key the node published."""
    return sign_envelope(registry.to_payload(), SEAL_REGISTRY_TYPE, [signer])


def load_seal_registry(
    envelope: Envelope, directory: FederationDirectory, *, at: datetime
) -> SealRegistry:
    """Verify a node's seal registry against the (already verified) directory.

    The signature must be by a signing key of the node the registry names, valid when the
    registry was issued; a registry from the future is refused.

    Raises:
        SignatureError / UnknownKeyError: not signed by that node.
        BadPeerData: malformed, or issued after ``at``.
    """
    at = require_aware(at, "at")
    data = parse_json_object(envelope.payload, "seal registry")
    try:
        if data["type"] != "tongban-seal-registry":
            raise ValueError("not a seal registry")
        node_id = str(data["node_id"])
        issued_at = parse_time(data["issued_at"])
        version = int(data["version"])
        records: Sequence[SealRecord] = [SealRecord.from_json_dict(s) for s in data["seals"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise BadPeerData(f"malformed seal registry: {exc!r}") from None
    if issued_at > at:
        raise BadPeerData(f"seal registry of node {node_id} is issued in the future")
    keys = directory.node(node_id).signing_keys(issued_at)
    verify_envelope(envelope, keys, payload_type=SEAL_REGISTRY_TYPE)
    if any(r.node_id != node_id for r in records):
        raise BadPeerData(f"seal registry of node {node_id} lists another node's seal")
    return SealRegistry(node_id, version, issued_at, tuple(records))
