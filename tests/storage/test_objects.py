"""The object store contract, run against the filesystem store and a real S3 server."""

from __future__ import annotations

import hashlib
import os
import stat
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fixtures_s3 import TEST_PART_SIZE, require_s3_binaries
from tests.s3server import S3Server, start_s3_server
from tongban.storage.objects import (
    DEFAULT_PART_SIZE,
    FilesystemObjectStore,
    InvalidObjectKey,
    ObjectInfo,
    ObjectNotFound,
    ObjectSizeMismatch,
    ObjectStore,
    ObjectStoreConfigError,
    ObjectStoreError,
    ObjectStoreUnavailable,
    S3ObjectStore,
    StoredObject,
    open_object_store,
)

PART = TEST_PART_SIZE
MiB = 1024 * 1024


class Boom(Exception):
    """Raised by a test stream to stand for any failure of the data source."""


def pattern(size: int, *, chunk: int = 64 * 1024, seed: int = 0) -> Iterator[bytes]:
    """Deterministic, non-repeating-per-block bytes, generated chunk by chunk."""
    block = hashlib.sha256(seed.to_bytes(8, "big")).digest() * (chunk // 32 + 1)
    sent = 0
    n = 0
    while sent < size:
        take = min(chunk, size - sent)
        head = n.to_bytes(8, "big")
        yield (head + block)[:take]
        sent += take
        n += 1


def digest_of(chunks: Iterator[bytes]) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    for c in chunks:
        h.update(c)
        size += len(c)
    return size, h.hexdigest()


@pytest.fixture(params=["filesystem", pytest.param("s3", marks=pytest.mark.s3)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "filesystem":
        with FilesystemObjectStore(tmp_path / "blobs") as fs:
            yield fs
    else:
        yield request.getfixturevalue("s3_store")


def everything_in(store: ObjectStore) -> list[str]:
    """Whatever the store holds, including what ``list_keys`` does not show: unfinished
    filesystem writes (``.partial-*`` files) and incomplete S3 multipart uploads."""
    if isinstance(store, FilesystemObjectStore):
        # Files only: directories are not objects (a failed write may leave empty ones).
        return sorted(
            p.relative_to(store.root).as_posix() for p in store.root.rglob("*") if p.is_file()
        )
    assert isinstance(store, S3ObjectStore)
    uploads = store._client._list_multipart_uploads(store.bucket).uploads
    return sorted([*store.list_keys(""), *(f"multipart-upload:{u.object_name}" for u in uploads)])


def test_everything_in_sees_what_a_listing_hides(store: ObjectStore) -> None:
    """The helper the checks below rely on does see leftovers of unfinished writes."""
    if isinstance(store, FilesystemObjectStore):
        (store.root / "p").mkdir()
        (store.root / "p" / ".partial-x").write_bytes(b"left over")
        assert everything_in(store) == ["p/.partial-x"]
    else:
        assert isinstance(store, S3ObjectStore)
        store._client._create_multipart_upload(store.bucket, "p/0.seg", {})
        assert everything_in(store) == ["multipart-upload:p/0.seg"]
    assert list(store.list_keys("")) == []


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


# ---- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size", [0, 1, PART - 1, PART, PART + 1, 2 * PART + 7], ids=lambda s: f"{s}B"
)
def test_round_trip_is_byte_for_byte(store: ObjectStore, size: int) -> None:
    key = "packets/6f1c/0.seg"
    expected_size, expected_sha = digest_of(pattern(size, chunk=100_003))

    stored = store.put_stream(key, pattern(size, chunk=100_003))

    assert stored == StoredObject(key, expected_size, expected_sha)
    assert store.stat(key) == ObjectInfo(key, size)
    assert store.exists(key)
    chunks = list(store.open_stream(key, chunk_size=MiB))
    assert all(0 < len(c) <= MiB for c in chunks)
    assert digest_of(iter(chunks)) == (size, expected_sha)
    assert hashlib.sha256(store.read_bytes(key)).hexdigest() == expected_sha


def test_put_bytes_and_declared_length(store: ObjectStore) -> None:
    assert store.put_bytes("a/b", b"hello") == StoredObject(
        "a/b", 5, hashlib.sha256(b"hello").hexdigest()
    )
    assert store.read_bytes("a/b") == b"hello"
    stored = store.put_stream("a/c", iter([b"he", b"", b"llo"]), length=5)
    assert stored.size == 5
    assert store.read_bytes("a/c") == b"hello"


def test_overwrite_replaces_the_object(store: ObjectStore) -> None:
    store.put_bytes("k", b"first version")
    store.put_bytes("k", b"second")
    assert store.read_bytes("k") == b"second"
    assert list(store.list_keys("")) == ["k"]


def test_small_read_chunks_cover_the_object(store: ObjectStore) -> None:
    store.put_bytes("k", bytes(range(256)) * 10)
    chunks = list(store.open_stream("k", chunk_size=100))
    assert all(len(c) <= 100 for c in chunks)
    assert b"".join(chunks) == bytes(range(256)) * 10


def test_a_reader_closed_early_releases_its_source(store: ObjectStore) -> None:
    store.put_bytes("k", b"x" * (3 * MiB))
    assert store.read_bytes("k") == b"x" * (3 * MiB)  # an S3 store now holds a connection
    before = open_descriptors()
    # Every stream stays referenced, so only close() can release its file or connection.
    streams = []
    for _ in range(20):
        stream = store.open_stream("k", chunk_size=1024)
        assert next(stream) == b"x" * 1024
        stream.close()  # type: ignore[attr-defined]
        streams.append(stream)
    assert open_descriptors() <= before + 1
    assert all(list(s) == [] for s in streams)
    assert store.read_bytes("k") == b"x" * (3 * MiB)


@pytest.mark.slow
def test_large_object_streams_in_bounded_memory(store: ObjectStore) -> None:
    size = 40 * MiB + 12_345
    _, expected_sha = digest_of(pattern(size, chunk=256 * 1024, seed=7))
    # An S3 upload holds up to three parts (measured: 3.1); the filesystem one chunk (1.0 MiB).
    bound = 3 * PART + 2 * MiB if isinstance(store, S3ObjectStore) else 2 * MiB

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        stored = store.put_stream("big/object", pattern(size, chunk=256 * 1024, seed=7))
        _, put_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        read = digest_of(store.open_stream("big/object", chunk_size=MiB))
        _, get_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert (stored.size, stored.sha256) == (size, expected_sha)
    assert read == (size, expected_sha)
    assert put_peak < bound, f"upload peaked at {put_peak / MiB:.1f} MiB"
    assert get_peak < 4 * MiB, f"download peaked at {get_peak / MiB:.1f} MiB"


# ---- failures leave nothing behind -----------------------------------------------------------


def failing_after(size: int, error: BaseException) -> Iterator[bytes]:
    yield from pattern(size)
    raise error


@pytest.mark.parametrize("sent", [0, 10, PART + 1, 2 * PART + 3], ids=lambda s: f"after-{s}B")
def test_a_failing_stream_stores_nothing(store: ObjectStore, sent: int) -> None:
    error = Boom("the source broke")
    with pytest.raises(Boom) as raised:
        store.put_stream("packets/p/0.seg", failing_after(sent, error))
    assert raised.value is error
    assert not store.exists("packets/p/0.seg")
    assert everything_in(store) == []


def test_a_failing_stream_keeps_the_previous_object(store: ObjectStore) -> None:
    store.put_bytes("k", b"old")
    with pytest.raises(Boom):
        store.put_stream("k", failing_after(PART + 1, Boom()))
    assert store.read_bytes("k") == b"old"
    assert everything_in(store) == ["k"]


@pytest.mark.parametrize(("declared", "actual"), [(5, 4), (5, 6), (0, 1), (PART + 1, PART)])
def test_a_stream_of_the_wrong_length_stores_nothing(
    store: ObjectStore, declared: int, actual: int
) -> None:
    with pytest.raises(ObjectSizeMismatch) as raised:
        store.put_stream("k", pattern(actual, chunk=4096), length=declared)
    assert raised.value.code == "object-size-mismatch"
    assert not raised.value.retryable
    assert not store.exists("k")
    assert everything_in(store) == []


def test_missing_objects_raise_not_found(store: ObjectStore) -> None:
    for call in (
        lambda: store.read_bytes("no/such"),
        lambda: store.open_stream("no/such"),
        lambda: store.stat("no/such"),
    ):
        with pytest.raises(ObjectNotFound) as raised:
            call()
        assert raised.value.code == "object-not-found"
        assert isinstance(raised.value, ObjectStoreError)
    assert not store.exists("no/such")


def test_delete_is_idempotent(store: ObjectStore) -> None:
    store.put_bytes("a/b", b"x")
    store.delete("a/b")
    store.delete("a/b")
    store.delete("never/was")
    assert not store.exists("a/b")
    assert list(store.list_keys("")) == []


# ---- keys ------------------------------------------------------------------------------------

INVALID_KEYS = [
    pytest.param("", id="empty"),
    pytest.param("/etc/passwd", id="absolute"),
    pytest.param("..", id="dotdot"),
    pytest.param("a/../b", id="dotdot-inside"),
    pytest.param("../escape", id="dotdot-leading"),
    pytest.param(".", id="dot"),
    pytest.param("a/./b", id="dot-inside"),
    pytest.param("a\\b", id="backslash"),
    pytest.param("..\\..\\x", id="backslash-dotdot"),
    pytest.param("a\x00b", id="nul"),
    pytest.param("a\nb", id="newline"),
    pytest.param("a//b", id="empty-segment"),
    pytest.param("a/", id="trailing-slash"),
    pytest.param("a/.partial-x", id="reserved-prefix"),
    pytest.param("/".join(["x" * 200] * 5) + "/xxxxxxxxxxxxxxxxxxxxxxxxx", id="too-long"),
    pytest.param("a/" + "x" * 256, id="segment-too-long"),
    pytest.param("案" * 86, id="segment-too-long-in-utf8"),
    pytest.param("\udc80", id="lone-surrogate"),
    pytest.param(b"a/b", id="bytes"),
]


@pytest.mark.parametrize("key", INVALID_KEYS)
def test_invalid_keys_are_refused_everywhere(store: ObjectStore, key: str, tmp_path: Path) -> None:
    calls: list[Callable[[], object]] = [
        lambda: store.put_bytes(key, b"x"),
        lambda: store.put_stream(key, iter([b"x"])),
        lambda: store.open_stream(key),
        lambda: store.read_bytes(key),
        lambda: store.stat(key),
        lambda: store.exists(key),
        lambda: store.delete(key),
    ]
    for call in calls:
        with pytest.raises(InvalidObjectKey) as raised:
            call()
        assert raised.value.code == "invalid-object-key"
        assert "key" in str(raised.value)
    assert everything_in(store) == []
    # A key that escaped a filesystem store would land beside its root, not in it.
    assert sorted(p.name for p in tmp_path.iterdir()) == (
        ["blobs"] if isinstance(store, FilesystemObjectStore) else []
    )


@pytest.mark.parametrize("prefix", ["/a", "a/../", "..", "a\\", "a//", "a\x00"])
def test_invalid_prefixes_are_refused(store: ObjectStore, prefix: str) -> None:
    with pytest.raises(InvalidObjectKey):
        store.list_keys(prefix)
    with pytest.raises(InvalidObjectKey):
        store.delete_prefix(prefix)


def test_unusual_but_valid_keys_round_trip(store: ObjectStore) -> None:
    longest = "/".join(["x" * 255] * 3 + ["y" * 254, "z"])  # 1024 bytes
    keys = ["..a", "a..", "a/b..c/.d", "案件/材料 1.pdf", longest, "案" * 85, "a b+c=d"]
    for key in keys:
        store.put_bytes(key, key.encode())
    for key in keys:
        assert store.read_bytes(key) == key.encode()
    assert list(store.list_keys("")) == sorted(keys)


def test_list_and_delete_by_prefix(store: ObjectStore) -> None:
    keys = [
        "other/x",
        "packets/a/0.seg",
        "packets/a/1.seg",
        "packets/a-b/0.seg",
        "packets/ab/0.seg",
        "packets/a/sub/2.seg",
    ]
    for key in keys:
        store.put_bytes(key, b"x")

    assert list(store.list_keys("")) == sorted(keys)
    assert list(store.list_keys()) == sorted(keys)
    assert list(store.list_keys("packets/a/")) == [
        "packets/a/0.seg",
        "packets/a/1.seg",
        "packets/a/sub/2.seg",
    ]
    assert list(store.list_keys("packets/a")) == sorted(
        k for k in keys if k.startswith("packets/a")
    )
    assert list(store.list_keys("packets/a/1")) == ["packets/a/1.seg"]
    assert list(store.list_keys("nothing/")) == []

    assert store.delete_prefix("packets/a/") == 3
    assert store.delete_prefix("packets/a/") == 0
    assert list(store.list_keys("")) == ["other/x", "packets/a-b/0.seg", "packets/ab/0.seg"]
    assert store.delete_prefix("") == 3
    assert list(store.list_keys("")) == []


# ---- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "code", "retryable"),
    [
        (ObjectStoreError, "object-store-error", False),
        (ObjectNotFound, "object-not-found", False),
        (InvalidObjectKey, "invalid-object-key", False),
        (ObjectSizeMismatch, "object-size-mismatch", False),
        (ObjectStoreConfigError, "object-store-config", False),
        (ObjectStoreUnavailable, "object-store-unavailable", True),
    ],
)
def test_errors_carry_a_stable_code(
    cls: type[ObjectStoreError], code: str, retryable: bool
) -> None:
    err = cls("message")
    assert (err.code, err.retryable, err.message, str(err)) == (
        code,
        retryable,
        "message",
        "message",
    )
    assert issubclass(cls, ObjectStoreError)


def test_an_unreachable_s3_server_is_retryable() -> None:
    with pytest.raises(ObjectStoreUnavailable) as raised:
        S3ObjectStore(
            "127.0.0.1:1",
            access_key="a",
            secret_key="b",
            bucket="relay",
            secure=False,
            timeout=2,
        )
    assert raised.value.retryable
    assert raised.value.code == "object-store-unavailable"


@pytest.mark.s3
def test_wrong_credentials_are_refused(s3_server: S3Server) -> None:
    with pytest.raises(ObjectStoreError) as raised:
        S3ObjectStore(
            s3_server.endpoint,
            access_key=s3_server.access_key,
            secret_key="wrong-secret",
            bucket="relay-denied",
            secure=False,
        )
    assert raised.value.code == "access-denied"
    assert not raised.value.retryable
    assert "wrong-secret" not in str(raised.value)


@pytest.mark.s3
def test_an_existing_bucket_is_reused(s3_store: S3ObjectStore, s3_server: S3Server) -> None:
    s3_store.put_bytes("k", b"kept")
    again = S3ObjectStore(
        s3_server.endpoint,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        bucket=s3_store.bucket,
        secure=False,
    )
    with again:
        assert again.read_bytes("k") == b"kept"


# ---- filesystem specifics --------------------------------------------------------------------


def test_filesystem_objects_survive_a_new_store(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    with FilesystemObjectStore(root) as first:
        stored = first.put_stream("packets/p/0.seg", pattern(3 * MiB + 1))
    with FilesystemObjectStore(root) as second:
        assert second.stat("packets/p/0.seg").size == 3 * MiB + 1
        assert digest_of(second.open_stream("packets/p/0.seg")) == (stored.size, stored.sha256)


def test_filesystem_write_syncs_file_and_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    store = FilesystemObjectStore(tmp_path)
    store.put_bytes("existing/a", b"x")
    monkeypatch.setattr(os, "fsync", spy)
    store.put_bytes("existing/b", b"y")
    assert synced == ["file", "dir"]
    synced.clear()
    store.put_bytes("new/deeper/c", b"z")
    # Two new directories made durable in their parents, then the file and its directory.
    assert synced == ["dir", "dir", "file", "dir"]


def test_filesystem_leaves_no_partial_files(tmp_path: Path) -> None:
    store = FilesystemObjectStore(tmp_path)
    store.put_bytes("p/ok", b"x")
    with pytest.raises(Boom):
        store.put_stream("p/bad", failing_after(1000, Boom()))
    with pytest.raises(ObjectSizeMismatch):
        store.put_stream("p/short", iter([b"x"]), length=2)
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["ok"]
    assert stat.S_IMODE((tmp_path / "p" / "ok").stat().st_mode) & 0o077 == 0


def test_filesystem_delete_prunes_empty_directories(tmp_path: Path) -> None:
    store = FilesystemObjectStore(tmp_path / "blobs")
    store.put_bytes("packets/p1/0.seg", b"x")
    store.put_bytes("packets/p1/1.seg", b"x")
    store.put_bytes("packets/p2/0.seg", b"x")
    (tmp_path / "blobs" / "packets" / "p1" / ".partial-crashed").write_bytes(b"left over")
    assert store.delete_prefix("packets/p1/") == 2
    assert not (tmp_path / "blobs" / "packets" / "p1").exists()
    store.delete("packets/p2/0.seg")
    assert not (tmp_path / "blobs" / "packets").exists()
    assert (tmp_path / "blobs").is_dir()


def test_filesystem_key_conflicts_are_caller_errors(tmp_path: Path) -> None:
    store = FilesystemObjectStore(tmp_path)
    store.put_bytes("a", b"file")
    with pytest.raises(InvalidObjectKey) as raised:
        store.put_bytes("a/b", b"x")
    assert raised.value.code == "object-key-conflict"
    store.put_bytes("d/e", b"x")
    with pytest.raises(InvalidObjectKey):
        store.put_bytes("d", b"x")
    with pytest.raises(ObjectNotFound):
        store.stat("d")
    assert store.read_bytes("a") == b"file"
    assert list(store.list_keys("")) == ["a", "d/e"]


# ---- URLs ------------------------------------------------------------------------------------


def test_file_urls_and_bare_paths(tmp_path: Path) -> None:
    for url in (f"file://{tmp_path}/a", str(tmp_path / "b"), f"file://localhost{tmp_path}/c"):
        store = open_object_store(url, access_key="", secret_key="")
        assert isinstance(store, FilesystemObjectStore)
    assert {p.name for p in tmp_path.iterdir()} == {"a", "b", "c"}
    spaced = open_object_store(f"file://{tmp_path}/with%20space")
    assert isinstance(spaced, FilesystemObjectStore)
    assert spaced.root == tmp_path / "with space"


@pytest.mark.parametrize(
    ("url", "options", "expected"),
    [
        (
            "s3://ak:sk@minio.example:9000/relay",
            {},
            ("minio.example:9000", "relay", True, None, DEFAULT_PART_SIZE),
        ),
        (
            "s3://minio.example/relay?secure=false&region=cn-central-1&part_size=8388608",
            {"access_key": "ak", "secret_key": "sk"},
            ("minio.example", "relay", False, "cn-central-1", 8 * MiB),
        ),
        (
            "s3://ak:s%2Fk%40x@127.0.0.1:7480/relay?secure=0",
            {"secure": False, "access_key": "", "secret_key": None},
            ("127.0.0.1:7480", "relay", False, None, DEFAULT_PART_SIZE),
        ),
        (
            "S3://ak:sk@[::1]:9000/relay/",
            {"part_size": "5242880"},
            ("[::1]:9000", "relay", True, None, 5 * MiB),
        ),
    ],
)
def test_s3_urls(url: str, options: dict[str, object], expected: tuple[object, ...]) -> None:
    # Without create_bucket the store is built without talking to a server.
    store = open_object_store(url, create_bucket=False, **options)
    assert isinstance(store, S3ObjectStore)
    assert (store.endpoint, store.bucket, store.secure, store.region, store.part_size) == expected
    assert "sk" not in repr(store)


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("", {}, "empty"),
        ("   ", {}, "empty"),
        ("ftp://host/x", {}, "unsupported object store scheme"),
        ("file://otherhost/x", {}, "local path"),
        ("file:///x?y=1", {}, "no query"),
        ("s3://host:9000/relay", {}, "needs credentials"),
        ("s3://ak@host:9000/relay", {}, "needs credentials"),
        ("s3://ak:sk@host:9000", {}, "exactly one bucket"),
        ("s3://ak:sk@host:9000/relay/sub", {}, "exactly one bucket"),
        ("s3://ak:sk@/relay", {}, "needs a host"),
        ("s3://ak:sk@host/relay?bogus=1", {}, "unknown s3:// URL parameter"),
        ("s3://ak:sk@host/relay?secure=maybe", {}, "secure must be true or false"),
        ("s3://ak:sk@host/relay?secure=1&secure=0", {}, "repeated"),
        ("s3://ak:sk@host/relay?part_size=5MiB", {}, "part_size must be a whole number"),
        ("s3://ak:sk@host/relay?part_size=1024", {}, "part_size must be between"),
        ("s3://ak:sk@host/relay", {"access_key": "other"}, "access key is given both"),
        ("s3://ak:sk@host/relay?secure=false", {"secure": True}, "secure is given both"),
        ("s3://ak:sk@host/relay", {"bucket": "x"}, "unknown object store options: bucket"),
        ("s3://ak:sk@host/No_Such", {}, "invalid bucket name"),
        ("s3://ak:sk@host/relay", {"create_bucket": "perhaps"}, "create_bucket must be"),
    ],
)
def test_bad_store_urls_are_refused(url: str, options: dict[str, object], message: str) -> None:
    with pytest.raises(ObjectStoreConfigError, match=message) as raised:
        open_object_store(url, **options)
    assert raised.value.code == "object-store-config"
    assert "sk@" not in str(raised.value)


@pytest.mark.s3
def test_open_object_store_reaches_the_s3_server(s3_server: S3Server) -> None:
    bucket = f"url-{time.time_ns()}"
    with open_object_store(
        s3_server.url(bucket),
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
    ) as store:
        store.put_bytes("k", b"v")
        assert store.read_bytes("k") == b"v"
    # The same bucket through credentials in the URL: it sees the object written above.
    with open_object_store(s3_server.url(bucket, credentials=True)) as store:
        assert isinstance(store, S3ObjectStore)
        assert store.bucket == bucket
        assert list(store.list_keys("")) == ["k"]
        assert store.read_bytes("k") == b"v"
        assert store.delete_prefix("") == 1
        assert list(store.list_keys("")) == []


# ---- the local S3 server ---------------------------------------------------------------------


@pytest.mark.s3
@pytest.mark.slow
def test_s3_server_restart_keeps_objects(tmp_path_factory: pytest.TempPathFactory) -> None:
    # A second cluster beside the session's: its ports must not collide with the first.
    require_s3_binaries()
    started = time.monotonic()
    server = start_s3_server(tmp_path_factory.mktemp("s3r"))
    first_start = time.monotonic() - started
    try:
        with S3ObjectStore(
            server.endpoint,
            access_key=server.access_key,
            secret_key=server.secret_key,
            bucket="durable",
            secure=False,
            part_size=PART,
        ) as store:
            stored = store.put_stream("k", pattern(PART + 1))
        restart = server.restart()
        with S3ObjectStore(
            server.endpoint,
            access_key=server.access_key,
            secret_key=server.secret_key,
            bucket="durable",
            secure=False,
        ) as store:
            assert digest_of(store.open_stream("k")) == (stored.size, stored.sha256)
    finally:
        server.stop()
    print(f"S3 server: first start {first_start:.1f}s, restart {restart:.1f}s")


def test_filesystem_write_failure_in_the_writer_thread_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks after the first are written by a thread of their own; a failure there still
    ends the put with the store's error, and nothing of the object stays."""
    from tongban.storage.objects import _filesystem as objects

    real_write = os.write
    writes: list[int] = []

    def failing_write(fd: int, data: bytes | memoryview) -> int:
        writes.append(len(data))
        if len(writes) == 3:
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    store = FilesystemObjectStore(tmp_path)
    monkeypatch.setattr(objects.os, "write", failing_write)
    chunks = [bytes([i]) * 65536 for i in range(8)]
    with pytest.raises(ObjectStoreError) as raised:
        store.put_stream("p/big", iter(chunks))
    assert str(raised.value) == "could not write object 'p/big': No space left on device"
    assert raised.value.code == "object-store-full"  # ENOSPC: the store is full
    assert len(writes) == 3  # nothing was written after the failure
    monkeypatch.undo()
    assert not store.exists("p/big")
    assert list((tmp_path / "p").iterdir()) == []


def test_filesystem_keeps_chunks_the_caller_changes_afterwards(tmp_path: Path) -> None:
    """A chunk may be written after the caller made the next one from the same buffer."""
    store = FilesystemObjectStore(tmp_path)
    buffer = bytearray(4096)

    def reused() -> Iterator[bytes]:
        for i in range(16):
            buffer[:] = bytes([i]) * 4096
            yield buffer  # type: ignore[misc]

    stored = store.put_stream("k", reused())
    expected = b"".join(bytes([i]) * 4096 for i in range(16))
    assert store.read_bytes("k") == expected
    assert stored.sha256 == hashlib.sha256(expected).hexdigest()
