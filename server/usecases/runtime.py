"""The running node's collaborators, built once at start-up and passed to every use case."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
from cryptography import x509

from tongban.keys.clock import utcnow
from tongban.keys.directory import FederationDirectory, NodeEntry, load_directory
from tongban.keys.envelope import Envelope, parse_json_object
from tongban.keys.errors import KeysError
from tongban.keys.keyring import NodeKeyRing
from tongban.keys.pki import Identity, Role, certificate_pem, load_certificate, node_host_name
from tongban.keys.trust import CLIENT_AUTH, authenticate_certificate
from tongban.proto import relay_pb2_grpc
from tongban.server.config import NodeConfig
from tongban.server.domain.errors import PermissionDenied, Unauthenticated
from tongban.server.domain.matters import MatterCatalog
from tongban.storage.objects import ObjectStore
from tongban.storage.sql import MetadataStore

if TYPE_CHECKING:
    from tongban.server.usecases.cases import OutboxItem
    from tongban.server.usecases.seals import SealBook

__all__ = ["DirectoryHolder", "InboxNotifier", "NodeRuntime", "PeerChannels", "caller_identity"]

Clock = Callable[[], datetime]


def read_directory_file(
    path: Path, roots: list[x509.Certificate], *, at: datetime, newer_than: int = 0
) -> FederationDirectory:
    data = parse_json_object(path.read_bytes(), f"directory file {path}")
    return load_directory(Envelope.from_json_dict(data), roots, at=at, newer_than=newer_than)


class DirectoryHolder:
    """The node's current directory; replaced only by a verified, newer version."""

    def __init__(self, path: Path, roots: list[x509.Certificate], clock: Clock) -> None:
        self._path = path
        self._roots = roots
        self._clock = clock
        self._lock = threading.Lock()
        self._current = read_directory_file(path, roots, at=clock())

    @property
    def current(self) -> FederationDirectory:
        return self._current

    def refresh(self) -> bool:
        """Re-read the directory file; True if a newer verified version was taken."""
        with self._lock:
            try:
                newer = read_directory_file(
                    self._path, self._roots, at=self._clock(), newer_than=self._current.version
                )
            except KeysError:
                return False
            self._current = newer
            return True


class InboxNotifier:
    """Wakes inbox watchers when packets arrive for a hall."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._generation = 0

    def notify(self) -> None:
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> int:
        with self._cond:
            self._cond.wait_for(lambda: self._generation != seen, timeout=timeout)
            return self._generation

    @property
    def generation(self) -> int:
        return self._generation


class ActiveTransfers:
    """Blob prefixes that uploads and deliveries are writing right now.

    A blob outside every committed file row is an orphan only if no transfer in this process
    is still writing it; after a restart nothing is.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._prefixes: set[str] = set()

    @contextmanager
    def hold(self, prefix: str) -> Iterator[None]:
        with self._lock:
            self._prefixes.add(prefix)
        try:
            yield
        finally:
            with self._lock:
                self._prefixes.discard(prefix)

    def active(self, key: str) -> bool:
        with self._lock:
            return any(key.startswith(p) for p in self._prefixes)


class PeerChannels:
    """mTLS channels to the other nodes, each pinned to the peer's identity CA and name.

    A channel trusts nothing but the identity CA that the signed directory lists for that
    peer, and checks that the certificate names the peer's host: a certificate issued by
    any other CA under the federation root, or for another node, fails the handshake.
    """

    def __init__(self, cert_chain: bytes, private_key: bytes, max_message: int) -> None:
        self._chain = cert_chain
        self._key = private_key
        self._max = max_message
        self._lock = threading.Lock()
        self._channels: dict[tuple[str, str, bytes], grpc.Channel] = {}

    def stub(self, peer: NodeEntry) -> relay_pb2_grpc.RelayServiceStub:
        anchor = certificate_pem(peer.identity_ca)
        key = (peer.node_id, peer.endpoint, anchor)
        with self._lock:
            channel = self._channels.get(key)
            if channel is None:
                creds = grpc.ssl_channel_credentials(anchor, self._key, self._chain)
                channel = grpc.secure_channel(
                    peer.endpoint,
                    creds,
                    options=[
                        # The certificate must name this very node, not just any member.
                        ("grpc.ssl_target_name_override", node_host_name(peer.node_id)),
                        ("grpc.max_send_message_length", self._max),
                        ("grpc.max_receive_message_length", self._max),
                    ],
                )
                self._channels[key] = channel
        return relay_pb2_grpc.RelayServiceStub(channel)

    def close(self) -> None:
        with self._lock:
            for channel in self._channels.values():
                channel.close()
            self._channels.clear()


@dataclass
class NodeRuntime:
    config: NodeConfig
    directory: DirectoryHolder
    keys: NodeKeyRing
    metadata: MetadataStore
    objects: ObjectStore
    matters: MatterCatalog
    peers: PeerChannels
    clock: Clock = utcnow
    inbox: InboxNotifier = field(default_factory=InboxNotifier)
    transfers: ActiveTransfers = field(default_factory=ActiveTransfers)
    offer_delivery: Callable[[list[OutboxItem]], None] = lambda items: None
    seals: SealBook | None = None

    @property
    def node_id(self) -> str:
        return self.config.node_id

    def me(self) -> NodeEntry:
        return self.directory.current.node(self.node_id)


def caller_identity(context: grpc.ServicerContext, directory: FederationDirectory) -> Identity:
    """The verified identity in the caller's mTLS certificate.

    The TLS handshake checked the chain to the federation root; the identity counts only
    if the identity CA the directory lists for the caller's node issued the certificate
    (:func:`tongban.keys.trust.authenticate_certificate`).

    Raises:
        Unauthenticated: no client certificate, or one that may not claim its identity.
    """
    auth = context.auth_context()
    pems: list[bytes] = list(auth.get("x509_pem_cert") or [])  # type: ignore[arg-type]
    if not pems:
        raise Unauthenticated("a client certificate issued by the federation root is required")
    try:
        return _identity_in(pems[0], directory)
    except KeysError as exc:
        raise Unauthenticated(f"{exc.code}: {exc.message}") from None


_AUTHENTICATED: dict[tuple[bytes, int, datetime], Identity] = {}
_AUTHENTICATED_LOCK = threading.Lock()
_AUTHENTICATED_MAX = 1024


def _identity_in(pem: bytes, directory: FederationDirectory) -> Identity:
    # What a certificate may claim depends on its bytes and the directory version alone,
    # so each accepted pair is checked once rather than on every call.
    key = (pem, directory.version, directory.issued_at)
    with _AUTHENTICATED_LOCK:
        known = _AUTHENTICATED.get(key)
    if known is not None:
        return known
    identity = authenticate_certificate(load_certificate(pem), directory, usage=CLIENT_AUTH)
    with _AUTHENTICATED_LOCK:
        if len(_AUTHENTICATED) >= _AUTHENTICATED_MAX:
            _AUTHENTICATED.clear()
        _AUTHENTICATED[key] = identity
    return identity


def require_hall(runtime: NodeRuntime, identity: Identity) -> str:
    """The calling hall's id, if it is a hall of this node.

    Raises:
        PermissionDenied: not a hall, or a hall of another node, or not enrolled here.
    """
    if identity.role is not Role.HALL:
        raise PermissionDenied(f"{identity} may not use the hall service")
    if identity.node_id != runtime.node_id:
        raise PermissionDenied(
            f"hall {identity.name} belongs to node {identity.node_id}, not to {runtime.node_id}"
        )
    if not runtime.me().has_hall(identity.name):
        raise PermissionDenied(f"hall {identity.name} is not enrolled at node {runtime.node_id}")
    return identity.name


def require_node(runtime: NodeRuntime, identity: Identity) -> NodeEntry:
    """The calling peer node's directory entry.

    Raises:
        PermissionDenied: the caller is not a member node.
    """
    if identity.role is not Role.NODE:
        raise PermissionDenied(f"{identity} may not use the relay service")
    directory = runtime.directory.current
    if not directory.has_node(identity.node_id):
        raise PermissionDenied(f"node {identity.node_id} is not in the federation directory")
    return directory.node(identity.node_id)


def require_admin(runtime: NodeRuntime, identity: Identity) -> str:
    """The calling admin's name, if it is an admin of this node.

    Raises:
        PermissionDenied: not an admin of this node.
    """
    if identity.role is not Role.ADMIN or identity.node_id != runtime.node_id:
        raise PermissionDenied(f"{identity} is not an admin of node {runtime.node_id}")
    return identity.name
