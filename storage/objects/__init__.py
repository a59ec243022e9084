"""Object stores for encrypted blobs: opaque bytes under slash-separated keys.

Two implementations share one interface: :class:`FilesystemObjectStore` (the default) and
:class:`S3ObjectStore` (MinIO in production, any S3 server through the ``minio`` client).
Writes stream: an object is never held whole in memory, its SHA-256 is computed over the
bytes as they are stored, and a write that fails leaves nothing under its key.

Example::

    store = open_object_store("file:///var/lib/tongban/blobs")
    stored = store.put_stream("packets/p1/0.seg", iter([b"sealed ", b"segments"]))
    assert stored.size == 15
    assert b"".join(store.open_stream(stored.key)) == b"sealed segments"

Both stores are safe to share between threads.
"""

from __future__ import annotations

from tongban.storage.objects._base import (
    DEFAULT_PART_SIZE,
    InvalidObjectKey,
    ObjectInfo,
    ObjectNotFound,
    ObjectSizeMismatch,
    ObjectStore,
    ObjectStoreConfigError,
    ObjectStoreError,
    ObjectStoreFull,
    ObjectStoreUnavailable,
    StoredObject,
)
from tongban.storage.objects._filesystem import FilesystemObjectStore
from tongban.storage.objects._open import open_object_store
from tongban.storage.objects._s3 import S3ObjectStore

__all__ = [
    "DEFAULT_PART_SIZE",
    "FilesystemObjectStore",
    "InvalidObjectKey",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectSizeMismatch",
    "ObjectStore",
    "ObjectStoreConfigError",
    "ObjectStoreError",
    "ObjectStoreFull",
    "ObjectStoreUnavailable",
    "S3ObjectStore",
    "StoredObject",
    "open_object_store",
]
