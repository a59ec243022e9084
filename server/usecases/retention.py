"""Removing blobs nothing refers to, and writes a crash cut off.

A node killed between storing a transfer's blobs and committing its metadata leaves blobs
under an attempt prefix that no file row names; so does a delivery that lost a race to an
identical one. They hold only ciphertext, but they are dead weight: this sweep removes every
such blob that no transfer in this process is still writing. A node killed in the middle
of writing a blob leaves the write itself (a ``.partial-*`` file, an incomplete S3
multipart upload): :class:`CrashLeftovers` removes those once they are older than the
longest transfer the node allows.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select

from tongban.server.usecases.runtime import ActiveTransfers, Clock
from tongban.storage.objects import ObjectStore
from tongban.storage.sql import MetadataStore, PacketFileRow

__all__ = ["CrashLeftovers", "sweep_orphan_blobs"]

_log = logging.getLogger("tongban.server.usecases.retention")
_PREFIXES = ("out/", "in/")


def sweep_orphan_blobs(
    metadata: MetadataStore, objects: ObjectStore, transfers: ActiveTransfers
) -> int:
    """Delete blobs under ``out/`` and ``in/`` that no committed file row refers to.

    The order matters: keys are listed, those a transfer is still writing are set aside, and
    only then are the file rows read. A transfer that was writing when the keys were listed
    has by then either committed (its rows are seen) or given up (its blobs are orphans).
    """
    listed = [k for p in _PREFIXES for k in objects.list_keys(p)]
    settled = [k for k in listed if not transfers.active(k)]
    if not settled:
        return 0
    with metadata.read() as session:
        referenced = set(session.scalars(select(PacketFileRow.blob_key)))
    removed = 0
    for key in settled:
        if key not in referenced:
            objects.delete(key)
            removed += 1
    if removed:
        _log.info("removed %d orphaned blobs", removed)
    return removed


class CrashLeftovers:
    """Removes unfinished writes older than the longest transfer: no live transfer has one."""

    def __init__(
        self,
        *,
        objects: ObjectStore,
        transfers: ActiveTransfers,
        clock: Clock,
        longest_transfer_seconds: float,
    ) -> None:
        self._objects = objects
        self._transfers = transfers
        self._clock = clock
        self._longest = timedelta(seconds=longest_transfer_seconds)

    def sweep(self) -> int:
        """Remove the stale partial writes; return how many there were."""
        removed = self._objects.remove_stale_partials(
            self._clock() - self._longest, writing=self._transfers.active
        )
        if removed:
            _log.info("removed %d unfinished writes left by a crash", removed)
        return removed
