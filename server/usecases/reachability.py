"""Whether the node's storage answers: the database and the object store, asked cheaply."""

from __future__ import annotations

from sqlalchemy import text

from tongban.storage.objects import ObjectStore, ObjectStoreError
from tongban.storage.sql import MetadataStore, MetadataUnavailable

__all__ = ["StorageReachability"]

# A key no object is ever stored under: asking for it makes the store answer, nothing more.
_PROBE_KEY = "health/probe"


class StorageReachability:
    """Asks the metadata database and the object store for a trivial answer."""

    def __init__(self, *, metadata: MetadataStore, objects: ObjectStore) -> None:
        self._metadata = metadata
        self._objects = objects

    def problem(self) -> str | None:
        """Why the node cannot serve now (the first store that does not answer), or None."""
        try:
            with self._metadata.read() as session:
                session.execute(text("select 1"))
        except MetadataUnavailable as exc:
            return f"database: {exc.message}"
        try:
            self._objects.exists(_PROBE_KEY)
        except ObjectStoreError as exc:
            if exc.retryable:
                return f"object store: {exc.message}"
        return None
