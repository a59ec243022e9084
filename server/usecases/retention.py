"""Removing blobs nothing refers to.

A node killed between storing a transfer's blobs and committing its metadata leaves blobs
under an attempt prefix that no file row names; so does a delivery that lost a race to an
identical one. They hold only ciphertext, but they are dead weight: this sweep removes every
such blob that no transfer in this process is still writing.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from tongban.server.usecases.runtime import ActiveTransfers
from tongban.storage.objects import ObjectStore
from tongban.storage.sql import MetadataStore, PacketFileRow

__all__ = ["sweep_orphan_blobs"]

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
