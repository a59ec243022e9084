"""The site without a node: answers from one node's published, signed lists only.

The folder is what ``tongban published fetch`` writes (``directory.json``, and the node's
``<node>/seal-registry.json`` and ``<node>/status-list.json``). Everything is verified against the
federation root before it is used, and again on every refresh; a refresh that does not
verify keeps the lists already loaded (and says so in the log). A bank can run this in its
own network with nothing but the root certificate and a copy of the folder.

Offline, an identifier's page can say that an e-certificate was revoked, cancelled or has
expired, never that it is valid: the lists name changes, not every document issued. The
upload check runs the full verification with the status list.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from cryptography import x509

from tongban.keys.clock import format_time, utcnow
from tongban.keys.directory import FederationDirectory, load_directory
from tongban.keys.ecert import ECertStatusList, load_status_list, parse_ecert_identifier
from tongban.keys.envelope import Envelope, parse_json_object
from tongban.keys.errors import BadPeerData, KeysError
from tongban.keys.seal_registry import SealRegistry, load_seal_registry
from tongban.keys.verification import (
    SealVerificationReport,
    SubIndication,
    seal_verification_result,
)
from tongban.server.domain.errors import Unavailable
from tongban.server.web.ecert_view import (
    ECertView,
    record_report,
    skipped,
    status_check,
    undecided,
)

__all__ = ["PublishedBackend", "PublishedLists"]

_log = logging.getLogger("tongban.server.web")
Clock = Callable[[], datetime]
_OFFLINE_NOTE = "离线核验只能查到证照状态的变更，无法确认此证照是否签发、是否有效。请上传文件核验。"


@dataclass(frozen=True)
class PublishedLists:
    """One node's lists, each verified."""

    directory: FederationDirectory
    registry: SealRegistry
    status: ECertStatusList
    status_envelope: Envelope

    @property
    def node_id(self) -> str:
        return self.registry.node_id


def _envelope(path: Path) -> Envelope:
    return Envelope.from_json_dict(parse_json_object(path.read_bytes(), str(path)))


def load_published(folder: Path, roots: list[x509.Certificate], *, at: datetime) -> PublishedLists:
    """Read and verify the directory in ``folder`` and the one node's lists beside it.

    Raises:
        OSError: a file cannot be read.
        KeysError: a list is malformed or does not verify (signature, node, currency).
    """
    directory = load_directory(_envelope(folder / "directory.json"), roots, at=at)
    nodes = sorted(p for p in folder.iterdir() if (p / "seal-registry.json").is_file())
    if len(nodes) != 1:
        held = ", ".join(p.name for p in nodes) or "none"
        raise BadPeerData(
            f"the offline site serves one node's lists; {folder} holds those of: {held}"
        )
    registry = load_seal_registry(_envelope(nodes[0] / "seal-registry.json"), directory, at=at)
    status_envelope = _envelope(nodes[0] / "status-list.json")
    keys = directory.node(registry.node_id).signing_keys(at)
    status = load_status_list(status_envelope, keys, at=at)
    if status.node_id != registry.node_id:
        raise BadPeerData(
            f"the status list is node {status.node_id}'s, the seal registry node "
            f"{registry.node_id}'s"
        )
    return PublishedLists(directory, registry, status, status_envelope)


class PublishedBackend:
    """Answers from the lists in ``folder``, re-read every ``refresh_seconds``."""

    def __init__(
        self,
        folder: Path,
        roots: list[x509.Certificate],
        *,
        clock: Clock = utcnow,
        refresh_seconds: float = 300.0,
    ) -> None:
        self._folder = folder
        self._roots = roots
        self._clock = clock
        self._refresh_seconds = refresh_seconds
        self._lists = load_published(folder, roots, at=clock())
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def lists(self) -> PublishedLists:
        return self._lists

    @property
    def site_name(self) -> str:
        node = self._lists.directory.node(self._lists.node_id)
        return f"{node.name}（节点 {node.node_id}）· 离线核验"

    def refresh(self) -> bool:
        """Re-read the folder; True if the lists verified and were taken."""
        try:
            fresh = load_published(self._folder, self._roots, at=self._clock())
        except (OSError, KeysError) as exc:
            _log.warning("published lists in %s not taken: %s", self._folder, exc)
            return False
        with self._lock:
            if fresh.node_id != self._lists.node_id:
                _log.warning("published lists in %s now name another node", self._folder)
                return False
            self._lists = fresh
        return True

    def start(self) -> None:
        """Refresh on a schedule, on a thread of its own, until :meth:`stop`."""

        def loop() -> None:
            while not self._stop.wait(self._refresh_seconds):
                self.refresh()

        self._thread = threading.Thread(target=loop, name="published-refresh", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def _current(self, at: datetime) -> PublishedLists:
        lists = self._lists
        if not lists.status.issued_at <= at <= lists.status.next_update:
            raise Unavailable(
                f"the status list of node {lists.node_id} is not current (valid until "
                f"{format_time(lists.status.next_update)}); refresh the published lists"
            )
        return lists

    def ecert(self, identifier: str) -> ECertView:
        ident = parse_ecert_identifier(identifier)
        at = self._clock()
        lists = self._current(at)
        source = (
            f"the status list node {lists.node_id} issued at {format_time(lists.status.issued_at)}"
        )
        entry = lists.status.status_at(identifier, at)
        seals = [s for s in lists.registry.seals if s.org_uscc == ident.issuer_uscc]
        checks = [
            undecided(
                "ecert_issued",
                SubIndication.SIGNED_DATA_NOT_FOUND,
                "offline, the published lists do not name every document issued: upload "
                "the document to check it",
            ),
            skipped("seal_registered", "checked on the uploaded document"),
            skipped("key_validity", "checked on the uploaded document"),
        ]
        if entry is not None:
            checks.append(status_check(entry, source))
        else:
            checks.append(skipped("ecert_status", f"no change recorded in {source}"))
        report = record_report(
            identifier, checks, at=at, seal=seals[0] if len(seals) == 1 else None, status=entry
        )
        return ECertView(
            identifier=identifier,
            type_code=ident.type_code,
            issuer_uscc=ident.issuer_uscc,
            report=report,
            source=(
                f"节点 {lists.node_id} 发布的已签名状态列表"
                f"（{format_time(lists.status.issued_at)} 签发）"
            ),
            status=entry,
            seal=seals[0] if len(seals) == 1 else None,
            note="" if entry is not None else _OFFLINE_NOTE,
        )

    def verify(self, document: BinaryIO, seal: bytes | None) -> SealVerificationReport:
        at = self._clock()
        lists = self._current(at)
        return seal_verification_result(
            document,
            seal=seal,
            roots=self._roots,
            seals=lists.registry.seals,
            at=at,
            status_list=lists.status_envelope,
            status_keys=lists.directory.node(lists.node_id).signing_keys(at),
            # Currency is the list's own promise (next_update), checked above and by the
            # verifier; no shorter age is imposed on top of it.
            status_max_age=None,
        )
