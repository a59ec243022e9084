"""The default object store: files under a folder, written durably and atomically."""

from __future__ import annotations

import errno
import hashlib
import os
import queue
import stat
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from datetime import datetime
from pathlib import Path

from tongban.storage.objects._base import (
    _PARTIAL_PREFIX,
    InvalidObjectKey,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    ObjectStoreFull,
    StoredObject,
    _check_aware,
    _check_chunk_size,
    _check_key,
    _check_length,
    _ObjectChunks,
    _size_mismatch,
)


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


# What the operating system says when the filesystem (or the user's quota) has no room.
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def _io_error(action: str, key: str, exc: OSError) -> ObjectStoreError:
    message = f"could not {action} object {key!r}: {exc.strerror or exc}"
    if exc.errno in _FULL:
        return ObjectStoreFull(message)
    return ObjectStoreError(message, code="io-error")


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

    def remove_stale_partials(
        self, older_than: datetime, *, writing: Callable[[str], bool] = lambda _key: False
    ) -> int:
        cutoff = _check_aware(older_than)
        removed = 0
        dirs: set[Path] = set()
        for dirpath, _dirnames, filenames in os.walk(self._root):
            for name in filenames:
                if not name.startswith(_PARTIAL_PREFIX):
                    continue
                path = Path(dirpath) / name
                try:
                    # The last write, not the first: a long transfer keeps its file fresh.
                    if path.stat().st_mtime >= cutoff or writing(self._key_of(path)):
                        continue
                    path.unlink()
                except FileNotFoundError:
                    continue  # its write finished or gave up meanwhile
                except OSError as exc:
                    raise _io_error("delete", self._key_of(path), exc) from exc
                removed += 1
                dirs.add(path.parent)
        for directory in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
            self._prune(directory)
        return removed

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
