"""What a running node shares between its use cases: the current directory, inbox wake-ups,
transfers in flight, and the rules of who may call which service."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from cryptography import x509

from tongban.keys.directory import FederationDirectory, NodeEntry, load_directory
from tongban.keys.envelope import Envelope, parse_json_object
from tongban.keys.errors import KeysError
from tongban.keys.pki import Identity, Role
from tongban.server.domain.errors import PermissionDenied

__all__ = [
    "ActiveTransfers",
    "Clock",
    "DirectoryHolder",
    "InboxNotifier",
    "require_admin",
    "require_hall",
    "require_node",
]

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


def require_hall(node_id: str, directory: FederationDirectory, identity: Identity) -> str:
    """The calling hall's id, if it is a hall of this node.

    Raises:
        PermissionDenied: not a hall, or a hall of another node, or not enrolled here.
    """
    if identity.role is not Role.HALL:
        raise PermissionDenied(f"{identity} may not use the hall service")
    if identity.node_id != node_id:
        raise PermissionDenied(
            f"hall {identity.name} belongs to node {identity.node_id}, not to {node_id}"
        )
    if not directory.node(node_id).has_hall(identity.name):
        raise PermissionDenied(f"hall {identity.name} is not enrolled at node {node_id}")
    return identity.name


def require_node(directory: FederationDirectory, identity: Identity) -> NodeEntry:
    """The calling peer node's directory entry.

    Raises:
        PermissionDenied: the caller is not a member node.
    """
    if identity.role is not Role.NODE:
        raise PermissionDenied(f"{identity} may not use the relay service")
    if not directory.has_node(identity.node_id):
        raise PermissionDenied(f"node {identity.node_id} is not in the federation directory")
    return directory.node(identity.node_id)


def require_admin(node_id: str, identity: Identity) -> str:
    """The calling admin's name, if it is an admin of this node.

    Raises:
        PermissionDenied: not an admin of this node.
    """
    if identity.role is not Role.ADMIN or identity.node_id != node_id:
        raise PermissionDenied(f"{identity} is not an admin of node {node_id}")
    return identity.name
