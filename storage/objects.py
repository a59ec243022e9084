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

import hashlib
import logging
import os
import queue
import re
import stat
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Protocol, Self, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import certifi
import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, S3Error, ServerError
from minio.helpers import check_bucket_name

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
    "ObjectStoreUnavailable",
    "S3ObjectStore",
    "StoredObject",
    "open_object_store",
]

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


# ---- filesystem ------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        written = os.write(fd, data)
        data = data[written:]


def _io_error(action: str, key: str, exc: OSError) -> ObjectStoreError:
    return ObjectStoreError(
        f"could not {action} object {key!r}: {exc.strerror or exc}", code="io-error"
    )


class _HashingWriter:
    """Hashes chunks and writes them to a file: the first in the caller's thread, the rest
    in a thread of its own, so that the caller makes the next chunk meanwhile (hashing and
    writing release the GIL). At most ``depth`` chunks wait for it: memory stays bounded.
    """

    def __init__(self, fd: int, key: str, depth: int = 2) -> None:
        self._fd = fd
        self._key = key
        self._depth = depth
        self.digest = hashlib.sha256()
        self._chunks = 0
        self._queue: queue.Queue[memoryview | None] | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def _write(self, fd: int, view: memoryview) -> None:
        self.digest.update(view)
        try:
            _write_all(fd, view)
        except OSError as exc:
            raise _io_error("write", self._key, exc) from exc

    def _run(self, fd: int, pending: queue.Queue[memoryview | None]) -> None:
        # The thread writes through a descriptor of its own, so that whatever the caller
        # does with its descriptor (closing it when interrupted), these writes stay on this
        # file.
        try:
            while (view := pending.get()) is not None:
                if self._error is None:  # after a failure only drain: the caller never blocks
                    try:
                        self._write(fd, view)
                    except BaseException as exc:
                        self._error = exc
        finally:
            os.close(fd)

    def add(self, view: memoryview) -> None:
        """Hash and write ``view``, which must not change afterwards.

        Raises:
            ObjectStoreError: an earlier chunk could not be written.
        """
        if self._error is not None:
            raise self._error
        self._chunks += 1
        if self._chunks == 1:
            self._write(self._fd, view)
            return
        if self._queue is None:
            try:
                fd = os.dup(self._fd)
            except OSError as exc:
                raise _io_error("write", self._key, exc) from exc
            self._queue = queue.Queue(self._depth)
            self._thread = threading.Thread(
                target=self._run, args=(fd, self._queue), name="object-writer", daemon=True
            )
            self._thread.start()
        self._queue.put(view)

    def close(self) -> None:
        """Wait until every chunk is written.

        Raises:
            ObjectStoreError: a chunk could not be written.
        """
        if self._queue is not None and self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._queue = None
        if self._error is not None:
            raise self._error


class FilesystemObjectStore(ObjectStore):
    """Objects as files under ``root``; every write is atomic and durable once it returns.

    A write streams into a temporary file beside its target, fsyncs it, renames it over
    the target and fsyncs the directory, so a crash leaves the old object or the new one.
    """

    def __init__(self, root: Path | str) -> None:
        """Use (and create if needed) the directory ``root``.

        Raises:
            ObjectStoreError: ``root`` cannot be created.
        """
        self._root = Path(root).absolute()
        try:
            self._root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ObjectStoreError(
                f"cannot create the object store directory {str(self._root)!r}: {exc.strerror}",
                code="io-error",
            ) from exc

    @property
    def root(self) -> Path:
        """The directory that holds the objects."""
        return self._root

    def __repr__(self) -> str:
        return f"FilesystemObjectStore({str(self._root)!r})"

    def _path(self, key: str) -> Path:
        return self._root.joinpath(*key.split("/")) if key else self._root

    def _make_parents(self, key: str) -> Path:
        parent = self._path(key).parent
        if parent.is_dir():
            return parent
        path = self._root
        for segment in key.split("/")[:-1]:
            path = path / segment
            try:
                path.mkdir()
            except FileExistsError:
                if not path.is_dir():
                    raise InvalidObjectKey(
                        f"object key {key!r} conflicts with the object {self._key_of(path)!r}",
                        code="object-key-conflict",
                    ) from None
                continue
            except NotADirectoryError:
                raise InvalidObjectKey(
                    f"object key {key!r} passes through an existing object",
                    code="object-key-conflict",
                ) from None
            # The new directory's name is itself an entry that must survive a crash.
            _fsync_dir(path.parent)
        return parent

    def _key_of(self, path: Path) -> str:
        return path.relative_to(self._root).as_posix()

    def _open_partial(self, key: str) -> tuple[Path, int, str]:
        # A concurrent delete may prune the directory between mkdir and mkstemp.
        for attempt in range(3):
            try:
                parent = self._make_parents(key)
                fd, name = tempfile.mkstemp(prefix=_PARTIAL_PREFIX, dir=parent)
            except FileNotFoundError:
                if attempt == 2:
                    raise
                continue
            return parent, fd, name
        raise AssertionError("unreachable")

    def put_stream(
        self, key: str, chunks: Iterable[bytes], *, length: int | None = None
    ) -> StoredObject:
        key = _check_key(key)
        _check_length(length)
        try:
            parent, fd, partial = self._open_partial(key)
        except OSError as exc:
            raise _io_error("create", key, exc) from exc
        writer = _HashingWriter(fd, key)
        size = 0
        try:
            try:
                for chunk in chunks:
                    # A chunk may be written after the next one is made: keep a copy of
                    # anything the caller could still change.
                    view = memoryview(chunk if isinstance(chunk, bytes) else bytes(chunk))
                    size += view.nbytes
                    if length is not None and size > length:
                        raise _size_mismatch(key, length, size, more=True)
                    writer.add(view)
            except BaseException:
                with suppress(Exception):
                    writer.close()  # the caller's failure is the one to report
                raise
            writer.close()
            if length is not None and size != length:
                raise _size_mismatch(key, length, size, more=False)
            try:
                os.fsync(fd)
                os.close(fd)
                fd = -1
                os.replace(partial, self._path(key))
            except IsADirectoryError:
                raise InvalidObjectKey(
                    f"object key {key!r} names a directory of other objects",
                    code="object-key-conflict",
                ) from None
            except OSError as exc:
                raise _io_error("write", key, exc) from exc
        except BaseException:
            if fd >= 0:
                os.close(fd)
            with suppress(OSError):
                os.unlink(partial)
            raise
        try:
            _fsync_dir(parent)
        except OSError as exc:
            raise _io_error("write", key, exc) from exc
        return StoredObject(key, size, writer.digest.hexdigest())

    def open_stream(self, key: str, *, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        key = _check_key(key)
        _check_chunk_size(chunk_size)
        try:
            source = open(self._path(key), "rb", buffering=0)  # noqa: SIM115 - closed by the iterator
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(f"no object stored under {key!r}") from None
        except OSError as exc:
            raise _io_error("open", key, exc) from exc

        def translate(exc: Exception) -> ObjectStoreError | None:
            return _io_error("read", key, exc) if isinstance(exc, OSError) else None

        return _ObjectChunks(source, chunk_size, translate)

    def stat(self, key: str) -> ObjectInfo:
        key = _check_key(key)
        try:
            st = os.stat(self._path(key))
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(f"no object stored under {key!r}") from None
        except OSError as exc:
            raise _io_error("stat", key, exc) from exc
        if not stat.S_ISREG(st.st_mode):
            raise ObjectNotFound(f"no object stored under {key!r}")
        return ObjectInfo(key, st.st_size)

    def delete(self, key: str) -> None:
        key = _check_key(key)
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return
        except OSError as exc:
            raise _io_error("delete", key, exc) from exc
        self._prune(path.parent)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``, and leftovers of writes interrupted there."""
        prefix = _check_key(prefix, prefix=True)
        count = 0
        dirs: set[Path] = set()
        for key in list(self._walk_prefix(prefix, partial=True)):
            path = self._path(key)
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise _io_error("delete", key, exc) from exc
            dirs.add(path.parent)
            if not path.name.startswith(_PARTIAL_PREFIX):
                count += 1
        # Deepest first, so a directory is empty by the time its parent is tried.
        for directory in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
            self._prune(directory)
        return count

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        prefix = _check_key(prefix, prefix=True)
        return self._walk_prefix(prefix, partial=False)

    def close(self) -> None:
        """Nothing to release: every call opens and closes its own files."""

    def _prune(self, directory: Path) -> None:
        """Remove ``directory`` and its parents while they are empty, up to the root."""
        while directory != self._root and self._root in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    def _walk_prefix(self, prefix: str, *, partial: bool) -> Iterator[str]:
        head, _, _ = prefix.rpartition("/")
        start = f"{head}/" if head else ""
        return self._walk(self._path(head), start, prefix, partial=partial)

    def _walk(self, directory: Path, start: str, prefix: str, *, partial: bool) -> Iterator[str]:
        try:
            with os.scandir(directory) as it:
                entries = list(it)
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise _io_error("list", start or "/", exc) from exc
        # Sorting a directory as "name/" orders the whole walk exactly like the full keys.
        named: list[tuple[str, os.DirEntry[str], bool]] = []
        for entry in entries:
            if entry.name.startswith(_PARTIAL_PREFIX) and not partial:
                continue
            if entry.is_dir(follow_symlinks=False):
                below = f"{start}{entry.name}/"
                if below.startswith(prefix) or prefix.startswith(below):
                    named.append((entry.name + "/", entry, True))
            elif entry.is_file(follow_symlinks=False) and (start + entry.name).startswith(prefix):
                named.append((entry.name, entry, False))
        named.sort(key=lambda item: item[0])
        for _, entry, is_dir in named:
            if is_dir:
                below = f"{start}{entry.name}/"
                yield from self._walk(Path(entry.path), below, prefix, partial=partial)
            else:
                yield start + entry.name


# ---- S3 --------------------------------------------------------------------------------------

_RETRYABLE_S3_CODES = frozenset(
    {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "RequestTimeTooSkewed"}
)
_DENIED_S3_CODES = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"}
)


def _s3_failure(exc: Exception, what: str) -> ObjectStoreError | None:
    """The store error for a failure of the minio client, or None if it is not one."""
    if isinstance(exc, S3Error):
        detail = f"{what}: {exc.code}: {exc.message}"
        if exc.code in {"NoSuchKey", "NoSuchObject"}:
            return ObjectNotFound(f"{what}: no such object")
        if exc.code == "NoSuchBucket":
            return ObjectStoreError(detail, code="no-such-bucket")
        if exc.code in _RETRYABLE_S3_CODES:
            return ObjectStoreUnavailable(detail)
        if exc.code in _DENIED_S3_CODES:
            return ObjectStoreError(detail, code="access-denied")
        return ObjectStoreError(detail, code="s3-error")
    if isinstance(exc, ServerError | InvalidResponseError):
        return ObjectStoreUnavailable(f"{what}: {exc}")
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return ObjectStoreUnavailable(f"{what}: {type(exc).__name__}: {exc}")
    return None


@contextmanager
def _s3_call(what: str) -> Iterator[None]:
    """Turn failures of the minio client (and of its HTTP stack) into store errors."""
    try:
        yield
    except ObjectStoreError:
        raise
    except Exception as exc:
        failure = _s3_failure(exc, what)
        if failure is None:
            raise
        raise failure from exc


class _ChunkReader:
    """A file-like view of an iterable of chunks, as the minio client reads uploads.

    Each read returns exactly the bytes asked for in one copy, however small the chunks.
    The digest and size cover exactly the bytes handed out.
    """

    def __init__(self, key: str, chunks: Iterable[bytes], length: int | None) -> None:
        self._key = key
        self._chunks = iter(chunks)
        self._length = length
        self._pending = memoryview(b"")
        self._done = False
        self.digest = hashlib.sha256()
        self.size = 0
        self.failure: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            raise ValueError("the upload reader needs a size")
        pieces: list[memoryview] = []
        wanted = size
        while wanted > 0:
            if not self._pending and (self._done or not self._next_chunk()):
                break
            piece = self._pending[:wanted]
            self._pending = self._pending[wanted:]
            pieces.append(piece)
            wanted -= piece.nbytes
        return b"".join(pieces)

    def _next_chunk(self) -> bool:
        try:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                self._done = True
                if self._length is not None and self.size != self._length:
                    raise _size_mismatch(self._key, self._length, self.size, more=False) from None
                return False
            view = memoryview(chunk).cast("B")
            self.size += view.nbytes
            if self._length is not None and self.size > self._length:
                raise _size_mismatch(self._key, self._length, self.size, more=True)
        except BaseException as exc:
            # Recorded so the caller's own exception can be re-raised as it was, even if the
            # client fails again while aborting the upload.
            self.failure = exc
            raise
        self.digest.update(view)
        self._pending = view
        return True


class _ResponseSource:
    def __init__(self, response: Any) -> None:
        self._response = response

    def read(self, size: int, /) -> bytes:
        data: bytes = self._response.read(size)
        return data

    def close(self) -> None:
        self._response.close()
        self._response.release_conn()


class S3ObjectStore(ObjectStore):
    """Objects in one bucket of an S3 server (MinIO, Ceph radosgw, AWS) via the minio client.

    Uploads go up in parts of ``part_size`` bytes. Memory stays under three parts whatever
    the object's size: the minio client keeps the part it sent while reading the next one,
    and copies each part once more.

    Only behaviour common to MinIO and radosgw is relied on: the ETag of a multipart upload
    is never used (radosgw returns none); digests are computed here. Uploads cut off by a
    crash leave incomplete multipart uploads behind; an AbortIncompleteMultipartUpload
    lifecycle rule on the bucket reclaims them.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        access_key: str,
        secret_key: str,
        bucket: str,
        secure: bool = True,
        region: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
        create_bucket: bool = True,
        timeout: float = 60.0,
    ) -> None:
        """Connect to ``endpoint`` (``host[:port]``) and use ``bucket``.

        Args:
            endpoint: the server's host and port, without scheme.
            access_key: S3 access key.
            secret_key: S3 secret key.
            bucket: the bucket holding the objects.
            secure: use HTTPS (certificates checked against ``SSL_CERT_FILE`` or certifi).
            region: the bucket's region; when None it is asked of the server once.
            part_size: multipart part size in bytes, 5 MiB to 5 GiB.
            create_bucket: create the bucket if it does not exist (checks the connection).
            timeout: seconds to wait for a connection and between received bytes.

        Raises:
            ObjectStoreConfigError: an argument is malformed.
            ObjectStoreUnavailable: the server could not be reached (with ``create_bucket``).
            ObjectStoreError: the server refused, e.g. ``code == "access-denied"``.
        """
        if not _MIN_PART_SIZE <= part_size <= _MAX_PART_SIZE:
            raise ObjectStoreConfigError(
                f"part_size must be between {_MIN_PART_SIZE} and {_MAX_PART_SIZE} bytes, "
                f"not {part_size}"
            )
        if not access_key or not secret_key:
            raise ObjectStoreConfigError("an S3 store needs an access key and a secret key")
        try:
            check_bucket_name(bucket, strict=True)
        except ValueError:
            raise ObjectStoreConfigError(
                f"invalid bucket name {bucket!r}: use 3-63 lowercase letters, digits, '.' or '-'"
            ) from None
        self._endpoint = endpoint
        self._bucket = bucket
        self._secure = secure
        self._region = region
        self._part_size = part_size
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=min(timeout, 10.0), read=timeout),
            maxsize=10,
            cert_reqs="CERT_REQUIRED",
            ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
            # Few, quick retries: a store that is down should surface as unavailable
            # promptly, and the caller's own retry policy decides what happens next.
            retries=urllib3.Retry(
                total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]
            ),
        )
        try:
            self._client = Minio(
                endpoint,
                access_key=access_key,
                secret_key=secret_key,
                secure=secure,
                region=region,
                http_client=self._http,
            )
        except ValueError as exc:
            self._http.clear()
            raise ObjectStoreConfigError(f"invalid S3 endpoint {endpoint!r}: {exc}") from None
        if create_bucket:
            try:
                self._ensure_bucket()
            except BaseException:
                self._http.clear()
                raise

    @property
    def endpoint(self) -> str:
        """The server's ``host[:port]``."""
        return self._endpoint

    @property
    def bucket(self) -> str:
        """The bucket holding the objects."""
        return self._bucket

    @property
    def secure(self) -> bool:
        """Whether the store talks HTTPS."""
        return self._secure

    @property
    def region(self) -> str | None:
        """The configured region, if any."""
        return self._region

    @property
    def part_size(self) -> int:
        """Multipart part size in bytes."""
        return self._part_size

    def __repr__(self) -> str:
        scheme = "https" if self._secure else "http"
        return f"S3ObjectStore({scheme}://{self._endpoint}/{self._bucket})"

    def _ensure_bucket(self) -> None:
        with _s3_call(f"bucket {self._bucket!r} at {self._endpoint}"):
            if self._client.bucket_exists(self._bucket):
                return
            try:
                self._client.make_bucket(self._bucket, location=self._region)
            except S3Error as exc:
                # Another node may create the bucket at the same moment.
                if exc.code != "BucketAlreadyOwnedByYou":
                    raise

    def put_stream(
        self, key: str, chunks: Iterable[bytes], *, length: int | None = None
    ) -> StoredObject:
        key = _check_key(key)
        _check_length(length)
        reader = _ChunkReader(key, chunks, length)
        try:
            # Unknown length (-1) keeps the client reading part by part until the stream
            # ends, so a short or long stream is caught before the upload completes.
            self._client.put_object(
                self._bucket,
                key,
                cast(BinaryIO, reader),  # the client only calls read(size)
                -1,
                part_size=self._part_size,
                num_parallel_uploads=1,
            )
        except BaseException as exc:
            failure = reader.failure
            if failure is None:
                translated = None
                if isinstance(exc, Exception):
                    translated = _s3_failure(exc, f"put {key!r}")
                if translated is None:
                    raise
                raise translated from exc
            if exc is failure:
                raise
            _log.warning("aborting the upload of %r failed too: %s", key, exc)
            # The caller's exception, not the client's, says what went wrong.
            raise failure  # noqa: B904
        return StoredObject(key, reader.size, reader.digest.hexdigest())

    def open_stream(self, key: str, *, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        key = _check_key(key)
        _check_chunk_size(chunk_size)
        what = f"get {key!r}"
        with _s3_call(what):
            response = self._client.get_object(self._bucket, key)
        return _ObjectChunks(
            _ResponseSource(response), chunk_size, lambda exc: _s3_failure(exc, what)
        )

    def stat(self, key: str) -> ObjectInfo:
        key = _check_key(key)
        with _s3_call(f"stat {key!r}"):
            info = self._client.stat_object(self._bucket, key)
        if info.size is None:
            raise ObjectStoreError(f"stat {key!r}: the server sent no size", code="s3-error")
        return ObjectInfo(key, info.size)

    def delete(self, key: str) -> None:
        key = _check_key(key)
        with _s3_call(f"delete {key!r}"):
            self._client.remove_object(self._bucket, key)

    def delete_prefix(self, prefix: str) -> int:
        prefix = _check_key(prefix, prefix=True)
        count = 0
        batch: list[str] = []
        for key in self.list_keys(prefix):
            batch.append(key)
            if len(batch) == _DELETE_BATCH:
                count += self._delete_batch(batch, prefix)
                batch = []
        if batch:
            count += self._delete_batch(batch, prefix)
        return count

    def _delete_batch(self, keys: list[str], prefix: str) -> int:
        what = f"delete under {prefix!r}"
        with _s3_call(what):
            errors = list(
                self._client.remove_objects(self._bucket, [DeleteObject(k) for k in keys])
            )
        failed = [e for e in errors if e.code != "NoSuchKey"]
        if failed:
            first = failed[0]
            raise ObjectStoreError(
                f"{what}: {len(failed)} objects not deleted, e.g. {first.name!r}: "
                f"{first.code}: {first.message}",
                code="s3-error",
            )
        return len(keys)

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        prefix = _check_key(prefix, prefix=True)
        return self._list(prefix)

    def _list(self, prefix: str) -> Iterator[str]:
        with _s3_call(f"list {prefix!r}"):
            for obj in self._client.list_objects(
                self._bucket, prefix=prefix or None, recursive=True
            ):
                yield str(obj.object_name)

    def close(self) -> None:
        self._http.clear()


# ---- URLs ------------------------------------------------------------------------------------

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_S3_OPTIONS = frozenset(
    {"access_key", "secret_key", "secure", "region", "part_size", "create_bucket"}
)
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _as_bool(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ObjectStoreConfigError(f"{name} must be true or false, not {value!r}")


def _as_part_size(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise ObjectStoreConfigError(f"part_size must be a whole number of bytes, not {value!r}")


def _credential(name: str, in_url: str, option: object) -> str:
    given = "" if option is None else str(option)
    if in_url and given and in_url != given:
        raise ObjectStoreConfigError(f"the {name} is given both in the URL and as an option")
    return in_url or given


def open_object_store(url: str, **options: object) -> ObjectStore:
    """Open the store a URL names.

    ``file:///abs/path`` or a bare path opens a :class:`FilesystemObjectStore`.
    ``s3://ACCESS:SECRET@host:port/bucket?secure=false&region=R&part_size=N`` opens an
    :class:`S3ObjectStore`; the credentials may instead come as options (e.g. from the
    environment) and must be percent-encoded in the URL when they contain ``/`` or ``@``.

    Args:
        url: the store's URL.
        options: ``access_key``, ``secret_key``, ``secure``, ``region``, ``part_size`` and
            ``create_bucket`` (default true); they apply to S3 only, and a filesystem store
            ignores them. Empty values count as absent.

    Raises:
        ObjectStoreConfigError: the URL or an option is malformed, unknown or contradictory.
        ObjectStoreUnavailable: the S3 server could not be reached.
    """
    unknown = sorted(set(options) - _S3_OPTIONS)
    if unknown:
        raise ObjectStoreConfigError(f"unknown object store options: {', '.join(unknown)}")
    if not url.strip():
        raise ObjectStoreConfigError("the object store URL is empty")
    if not _SCHEME.match(url):
        return FilesystemObjectStore(Path(url))
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in {"", "localhost"}:
            raise ObjectStoreConfigError(
                f"a file URL must name a local path (file:///path), not host {parts.netloc!r}"
            )
        if parts.query or parts.fragment:
            raise ObjectStoreConfigError("a file URL takes no query or fragment")
        return FilesystemObjectStore(Path(unquote(parts.path)))
    if scheme != "s3":
        raise ObjectStoreConfigError(
            f"unsupported object store scheme {parts.scheme!r} (use file:// or s3://)"
        )
    return _open_s3(parts.netloc, parts.path, parts.query, parts.fragment, options)


def _open_s3(
    netloc: str, path: str, query: str, fragment: str, options: dict[str, object]
) -> S3ObjectStore:
    userinfo, _, hostport = netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    if not hostport:
        raise ObjectStoreConfigError("an s3:// URL needs a host: s3://host:port/bucket")
    bucket = path.strip("/")
    if not bucket or "/" in bucket:
        raise ObjectStoreConfigError("an s3:// URL names exactly one bucket: s3://host:port/bucket")
    if fragment:
        raise ObjectStoreConfigError("an s3:// URL takes no fragment")
    settings: dict[str, object] = {}
    for name, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if name not in {"secure", "region", "part_size"}:
            raise ObjectStoreConfigError(f"unknown s3:// URL parameter {name!r}")
        if name in settings:
            raise ObjectStoreConfigError(f"the s3:// URL parameter {name!r} is repeated")
        settings[name] = value
    parse: dict[str, Callable[[object], object]] = {
        "secure": lambda v: _as_bool("secure", v),
        "region": str,
        "part_size": _as_part_size,
    }
    for name, convert in parse.items():
        option = options.get(name)
        if option is None or option == "":
            continue
        if name in settings and convert(settings[name]) != convert(option):
            raise ObjectStoreConfigError(f"{name} is given both in the URL and as an option")
        settings[name] = option
    access_key = _credential("access key", unquote(user), options.get("access_key"))
    secret_key = _credential("secret key", unquote(password), options.get("secret_key"))
    if not access_key or not secret_key:
        raise ObjectStoreConfigError(
            "an s3:// store needs credentials: s3://ACCESS:SECRET@host/bucket "
            "or the access_key and secret_key options"
        )
    region = str(settings["region"]) if settings.get("region") else None
    return S3ObjectStore(
        hostport,
        access_key=access_key,
        secret_key=secret_key,
        bucket=unquote(bucket),
        secure=_as_bool("secure", settings.get("secure", True)),
        region=region,
        part_size=_as_part_size(settings.get("part_size", DEFAULT_PART_SIZE)),
        create_bucket=_as_bool("create_bucket", options.get("create_bucket", True)),
    )
