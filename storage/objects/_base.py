"""The object store interface, its errors and the key rules every store applies."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

_log = logging.getLogger("tongban.storage")

DEFAULT_PART_SIZE = 16 * 1024 * 1024
"""Multipart part size of :class:`S3ObjectStore`; an upload holds up to three parts in memory."""

_MIN_PART_SIZE = 5 * 1024 * 1024  # the S3 minimum for every part but the last
_MAX_PART_SIZE = 5 * 1024 * 1024 * 1024
# Limits of S3 (whole key) and of filesystems (one name), applied to both stores so that
# objects can move between them.
_MAX_KEY_BYTES = 1024
_MAX_SEGMENT_BYTES = 255
_PARTIAL_PREFIX = ".partial-"  # unfinished filesystem writes; reserved, never a key segment
_DELETE_BATCH = 1000  # the most keys one S3 DeleteObjects request may carry


# ---- errors ----------------------------------------------------------------------------------


class ObjectStoreError(Exception):
    """Base of every object store error.

    ``code`` is stable and ``retryable`` says whether the same call may succeed later.
    """

    code = "object-store-error"
    retryable = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ObjectNotFound(ObjectStoreError):
    """No object is stored under the key."""

    code = "object-not-found"


class InvalidObjectKey(ObjectStoreError):
    """The caller passed a key (or prefix) that is not a safe relative name."""

    code = "invalid-object-key"


class ObjectSizeMismatch(ObjectStoreError):
    """The stream did not carry the number of bytes the caller declared."""

    code = "object-size-mismatch"


class ObjectStoreConfigError(ObjectStoreError):
    """A store URL or option is malformed, unknown or contradictory."""

    code = "object-store-config"


class ObjectStoreUnavailable(ObjectStoreError):
    """The store could not be reached or failed transiently (refused, timed out, 5xx)."""

    code = "object-store-unavailable"
    retryable = True


class ObjectStoreFull(ObjectStoreError):
    """The store has no room left (the filesystem said ENOSPC or EDQUOT); smaller objects may
    still fit, and freeing space heals it."""

    code = "object-store-full"
    retryable = True


# ---- records and the interface ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredObject:
    """What a write stored: the key, its size in bytes and the SHA-256 (hex) of those bytes."""

    key: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """The size in bytes of a stored object."""

    key: str
    size: int


class ObjectStore(ABC):
    """Opaque blobs under slash-separated relative keys such as ``packets/<id>/0.seg``."""

    @abstractmethod
    def put_stream(
        self, key: str, chunks: Iterable[bytes], *, length: int | None = None
    ) -> StoredObject:
        """Store the bytes of ``chunks`` under ``key``, replacing any object there.

        The iterable is consumed once and never held whole. If it raises, the exception
        propagates unchanged and ``key`` keeps whatever it held before.

        Args:
            key: where to store the object.
            chunks: the object's bytes, in order.
            length: if given, the exact number of bytes ``chunks`` must yield.

        Raises:
            InvalidObjectKey: ``key`` is not a safe relative name.
            ObjectSizeMismatch: ``length`` was given and the stream was shorter or longer.
            ObjectStoreUnavailable: the store could not be reached (retryable).
        """

    def put_bytes(self, key: str, data: bytes) -> StoredObject:
        """Store a small object held in memory; see :meth:`put_stream`."""
        return self.put_stream(key, (data,), length=len(data))

    @abstractmethod
    def open_stream(self, key: str, *, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Open an object for reading; the iterator yields chunks of at most ``chunk_size``.

        Raises:
            ObjectNotFound: nothing is stored under ``key`` (raised here, not on first read).
            InvalidObjectKey: ``key`` is not a safe relative name.
        """

    def read_bytes(self, key: str) -> bytes:
        """Read a small object whole.

        Raises:
            ObjectNotFound: nothing is stored under ``key``.
        """
        return b"".join(self.open_stream(key))

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """Describe a stored object.

        Raises:
            ObjectNotFound: nothing is stored under ``key``.
        """

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        try:
            self.stat(key)
        except ObjectNotFound:
            return False
        return True

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete the object under ``key``; deleting a missing object is not an error."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with ``prefix``; return how many there were."""

    @abstractmethod
    def list_keys(self, prefix: str = "") -> Iterator[str]:
        """Yield the keys that start with ``prefix``, in lexicographic order."""

    @abstractmethod
    def remove_stale_partials(
        self, older_than: datetime, *, writing: Callable[[str], bool] = lambda _key: False
    ) -> int:
        """Remove what writes cut off by a crash left behind; return how many were removed.

        On a filesystem these are ``.partial-*`` files last written before ``older_than``;
        on S3, incomplete multipart uploads started before it. One whose key (for a partial
        file, its path relative to the store) ``writing`` says is still being written is
        kept whatever its age.

        Raises:
            ValueError: ``older_than`` is naive.
            ObjectStoreUnavailable: the store could not be reached (retryable).
        """

    @abstractmethod
    def close(self) -> None:
        """Release connections; the store must not be used afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# ---- keys ------------------------------------------------------------------------------------


def _key_problem(name: str, *, prefix: bool) -> str | None:
    if not name:
        return None if prefix else "it is empty"
    if name.startswith("/"):
        return "it starts with '/' (keys are relative)"
    if "\\" in name:
        return "it contains a backslash"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "it contains a NUL or control character"
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        return "it is not valid Unicode"
    if len(encoded) > _MAX_KEY_BYTES:
        return f"it is longer than {_MAX_KEY_BYTES} bytes in UTF-8"
    segments = name.split("/")
    if prefix and segments[-1] == "":
        segments.pop()  # a prefix may end with '/'
    for segment in segments:
        if segment == "":
            return "it has an empty segment ('//' or a trailing '/')"
        if segment in {".", ".."}:
            return f"it has a {segment!r} segment"
        if segment.startswith(_PARTIAL_PREFIX):
            return f"a segment starts with the reserved {_PARTIAL_PREFIX!r}"
        if len(segment.encode("utf-8")) > _MAX_SEGMENT_BYTES:
            return f"a segment is longer than {_MAX_SEGMENT_BYTES} bytes in UTF-8"
    return None


def _check_key(key: object, *, prefix: bool = False) -> str:
    what = "prefix" if prefix else "key"
    if not isinstance(key, str):
        raise InvalidObjectKey(f"object {what} must be a str, not {type(key).__name__}")
    problem = _key_problem(key, prefix=prefix)
    if problem is not None:
        raise InvalidObjectKey(f"invalid object {what} {key!r}: {problem}")
    return key


def _check_length(length: int | None) -> None:
    if length is not None and length < 0:
        raise ValueError(f"length must be >= 0, not {length}")


def _check_aware(moment: datetime) -> float:
    """The POSIX timestamp of an aware datetime; a naive one is refused."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a moment must carry its time zone (an aware datetime)")
    return moment.timestamp()


def _check_chunk_size(chunk_size: int) -> None:
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be > 0, not {chunk_size}")


def _size_mismatch(key: str, length: int, got: int, *, more: bool) -> ObjectSizeMismatch:
    seen = f"more than {length}" if more else f"{got}"
    return ObjectSizeMismatch(f"object {key!r}: declared {length} bytes, the stream had {seen}")


# ---- reading ---------------------------------------------------------------------------------


class _Source(Protocol):
    def read(self, size: int, /) -> bytes: ...

    def close(self) -> None: ...


class _ObjectChunks(Iterator[bytes]):
    """Chunks of one open object; releases the file or connection at the end or on close()."""

    def __init__(
        self,
        source: _Source,
        chunk_size: int,
        translate: Callable[[Exception], ObjectStoreError | None],
    ) -> None:
        self._source: _Source | None = source
        self._chunk_size = chunk_size
        self._translate = translate

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> bytes:
        if self._source is None:
            raise StopIteration
        try:
            data = self._source.read(self._chunk_size)
        except Exception as exc:
            self.close()
            failure = self._translate(exc)
            if failure is None:
                raise
            raise failure from exc
        if not data:
            self.close()
            raise StopIteration
        return data

    def close(self) -> None:
        source, self._source = self._source, None
        if source is not None:
            source.close()

    def __del__(self) -> None:
        self.close()
