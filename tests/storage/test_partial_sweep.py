"""Writes a crash cut off are removed once stale, on both stores; live and finished ones stay."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.storage.test_objects import everything_in
from tongban.storage.objects import FilesystemObjectStore, ObjectStore, S3ObjectStore

HOUR = timedelta(hours=1)


@pytest.fixture(params=["filesystem", pytest.param("s3", marks=pytest.mark.s3)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "filesystem":
        with FilesystemObjectStore(tmp_path / "blobs") as fs:
            yield fs
    else:
        yield request.getfixturevalue("s3_store")


def _crash_leftover(store: ObjectStore, key: str, *, age: timedelta) -> None:
    """What a write killed by SIGKILL leaves behind, started (or last written) ``age`` ago."""
    if isinstance(store, FilesystemObjectStore):
        folder = store.root.joinpath(*key.split("/")[:-1])
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / ".partial-k9x2"
        partial.write_bytes(b"ciphertext" * 1000)
        then = (datetime.now(UTC) - age).timestamp()
        os.utime(partial, (then, then))
    else:
        assert isinstance(store, S3ObjectStore)
        store._client._create_multipart_upload(store.bucket, key, {})


def test_stale_partial_writes_are_removed_and_finished_objects_stay(store: ObjectStore) -> None:
    store.put_bytes("in/p1/a1/0.seg", b"committed")
    _crash_leftover(store, "in/p2/a1/0.seg", age=2 * HOUR)
    assert len(everything_in(store)) == 2
    now = datetime.now(UTC)
    if isinstance(store, S3ObjectStore):
        now += 3 * HOUR  # the upload was started just now by the server's clock
    assert store.remove_stale_partials(now - HOUR) == 1
    assert everything_in(store) == ["in/p1/a1/0.seg"]
    assert store.read_bytes("in/p1/a1/0.seg") == b"committed"
    assert store.remove_stale_partials(now - HOUR) == 0
    if isinstance(store, FilesystemObjectStore):
        assert not (store.root / "in" / "p2").exists()  # its emptied folders went too


def test_a_recent_partial_write_stays(store: ObjectStore) -> None:
    _crash_leftover(store, "out/p3/a1/0.seg", age=timedelta(minutes=1))
    assert store.remove_stale_partials(datetime.now(UTC) - HOUR) == 0
    assert len(everything_in(store)) == 1


def test_a_write_still_under_way_stays_whatever_its_age(store: ObjectStore) -> None:
    _crash_leftover(store, "out/p4/a1/0.seg", age=5 * HOUR)
    later = datetime.now(UTC) + 10 * HOUR
    seen: list[str] = []

    def writing(key: str) -> bool:
        seen.append(key)
        return key.startswith("out/p4/a1/")

    assert store.remove_stale_partials(later, writing=writing) == 0
    assert len(everything_in(store)) == 1 and len(seen) == 1
    assert store.remove_stale_partials(later) == 1
    assert everything_in(store) == []


def test_a_naive_moment_is_refused(store: ObjectStore) -> None:
    with pytest.raises(ValueError, match="aware"):
        store.remove_stale_partials(datetime.now())  # naive: the point of the test
