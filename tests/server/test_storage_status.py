"""Storage failures map to statuses that say what happened, and the log keeps the cause."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import grpc
import pytest

from tongban.cli.demo import free_ports
from tongban.server.grpc.peers import peer_call_failed
from tongban.server.grpc.status import (
    DATABASE_UNREACHABLE,
    OBJECT_STORE_UNREACHABLE,
    RETRYABLE_KEY,
    STORAGE_FULL,
    refusal_of,
    retryable_of,
    status_of,
)
from tongban.storage.objects import (
    FilesystemObjectStore,
    ObjectStoreError,
    ObjectStoreFull,
    ObjectStoreUnavailable,
    S3ObjectStore,
    _filesystem,
)
from tongban.storage.sql import MetadataUnavailable


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (MetadataUnavailable("refused"), grpc.StatusCode.UNAVAILABLE, DATABASE_UNREACHABLE),
        (
            ObjectStoreUnavailable("put: refused"),
            grpc.StatusCode.UNAVAILABLE,
            OBJECT_STORE_UNREACHABLE,
        ),
        (ObjectStoreFull("no room"), grpc.StatusCode.RESOURCE_EXHAUSTED, STORAGE_FULL),
        (
            ObjectStoreError("bad", code="io-error"),
            grpc.StatusCode.INTERNAL,
            "object-store: io-error",
        ),
    ],
)
def test_storage_errors_map_to_statuses(
    error: Exception, code: grpc.StatusCode, message: str
) -> None:
    assert status_of(error) == (code, message)
    assert retryable_of(error) is (code != grpc.StatusCode.INTERNAL)


def test_the_log_keeps_the_cause_the_caller_is_not_shown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    code, message = refusal_of(
        ObjectStoreFull("could not write object 'k': No space left on device"), who="Submit"
    )
    assert (code, message) == (grpc.StatusCode.RESOURCE_EXHAUSTED, STORAGE_FULL)
    assert "No space left on device" not in message
    assert caplog.records[-1].getMessage() == (
        f"refused Submit: RESOURCE_EXHAUSTED {STORAGE_FULL} "
        "(could not write object 'k': No space left on device)"
    )


def test_enospc_and_quota_are_a_full_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FilesystemObjectStore(tmp_path)
    for number in (errno.ENOSPC, errno.EDQUOT, errno.EIO):

        def fail(fd: int, data: memoryview, number: int = number) -> None:
            raise OSError(number, os.strerror(number))

        monkeypatch.setattr(_filesystem, "_write_all", fail)
        with pytest.raises(ObjectStoreError) as raised:
            store.put_bytes("a/b", b"x" * 10)
        assert isinstance(raised.value, ObjectStoreFull) is (number != errno.EIO)
        assert raised.value.message == f"could not write object 'a/b': {os.strerror(number)}"
        assert not list(tmp_path.rglob(".partial-*"))
        assert not store.exists("a/b")


def test_an_s3_store_nobody_answers_is_unavailable() -> None:
    port = free_ports(1)[0]
    store = S3ObjectStore(
        f"127.0.0.1:{port}",
        access_key="a",
        secret_key="b" * 8,
        bucket="nobody-home",
        secure=False,
        create_bucket=False,
        timeout=2,
    )
    with pytest.raises(ObjectStoreUnavailable) as raised:
        store.put_bytes("k", b"data")
    assert status_of(raised.value) == (grpc.StatusCode.UNAVAILABLE, OBJECT_STORE_UNREACHABLE)
    store.close()


class _Failed(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str, retryable: str) -> None:
        self._code, self._details, self._retryable = code, details, retryable

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return ((RETRYABLE_KEY, self._retryable),)


def test_a_peer_with_a_full_disk_is_retried_not_split_as_too_large() -> None:
    full = peer_call_failed(_Failed(grpc.StatusCode.RESOURCE_EXHAUSTED, STORAGE_FULL, "true"))
    assert full.retryable and not full.too_large
    large = peer_call_failed(
        _Failed(grpc.StatusCode.RESOURCE_EXHAUSTED, "too-large: message over 8 MiB", "false")
    )
    assert large.too_large
