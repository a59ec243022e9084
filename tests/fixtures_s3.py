"""Pytest fixtures for the local S3 server: one cluster per session, one bucket per test.

Import them into ``tests/conftest.py``. Without the Ceph programs the S3 tests are skipped,
or fail when ``CI=true`` so a CI image cannot silently lose them.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.availability import unavailable
from tests.s3server import INSTALL_HINT, S3Server, missing_binaries, start_s3_server
from tongban.storage.objects import S3ObjectStore

__all__ = ["TEST_PART_SIZE", "require_s3_binaries", "s3_server", "s3_store"]

TEST_PART_SIZE = 5 * 1024 * 1024
"""Part size of ``s3_store``: the S3 minimum, so multipart paths run on small objects."""

# Ceph's admin sockets are Unix sockets, whose paths may not exceed 107 bytes.
_MAX_STATE_DIR = 60


def require_s3_binaries() -> None:
    """Skip the test (fail it when ``CI=true``) if a Ceph program is missing."""
    missing = missing_binaries()
    if not missing:
        return
    reason = (
        f"the local S3 server needs programs that are not installed: {', '.join(missing)}; "
        f"install with: {INSTALL_HINT}"
    )
    unavailable(reason)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A single-node Ceph radosgw on free 127.0.0.1 ports, stopped when the session ends."""
    require_s3_binaries()
    state_dir = tmp_path_factory.mktemp("s3")
    if len(str(state_dir)) > _MAX_STATE_DIR:
        state_dir = Path(tempfile.mkdtemp(prefix="tongban-s3-"))
    server = start_s3_server(state_dir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_store(s3_server: S3Server) -> Iterator[S3ObjectStore]:
    """An :class:`S3ObjectStore` on a fresh bucket, emptied and removed after the test."""
    store = S3ObjectStore(
        s3_server.endpoint,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        bucket=f"t-{uuid.uuid4().hex[:20]}",
        secure=False,
        part_size=TEST_PART_SIZE,
    )
    try:
        yield store
    finally:
        store.delete_prefix("")
        _remove_bucket(s3_server, store.bucket)
        store.close()


def _remove_bucket(server: S3Server, bucket: str) -> None:
    from minio import Minio

    client = Minio(
        server.endpoint, access_key=server.access_key, secret_key=server.secret_key, secure=False
    )
    client.remove_bucket(bucket)
