"""A node whose disk is full says so (RESOURCE_EXHAUSTED), logs the system's reason, stores
nothing of the refused packet, and keeps taking packets that fit."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from tests.harness import Cluster, citizen_id, delivered, snapshot, wait_until
from tongban.client.errors import RequestRefused
from tongban.client.hall import Applicant, Material
from tongban.server.grpc.status import STORAGE_FULL
from tongban.storage.objects import _filesystem

ODA = ("HB-ODA-01", "异地办理营业执照变更登记")
SENDER, RECEIVER = "420700", "420100"
ROOM = 3 << 20  # the most bytes the full filesystem still lets one file grow to


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes fail with ENOSPC, as the kernel fails them, once a file would grow past ROOM."""
    write_all: Callable[[int, memoryview], None] = _filesystem._write_all

    def nearly_full(fd: int, data: memoryview) -> None:
        if os.fstat(fd).st_size + len(data) > ROOM:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        write_all(fd, data)

    monkeypatch.setattr(_filesystem, "_write_all", nearly_full)


def _material(name: str, size: int) -> Material:
    block = name.encode() * (65536 // len(name))

    def chunks() -> Iterator[bytes]:
        left = size
        while left:
            piece = block[: min(left, len(block))]
            left -= len(piece)
            yield piece

    return Material(name, None, "application/octet-stream", chunks, size)


def _partials(root: Path) -> list[Path]:
    return [p for p in root.rglob(".partial-*")]


def test_a_full_disk_is_resource_exhausted_and_smaller_packets_still_fit(
    cluster: Cluster, full_disk: None, caplog: pytest.LogCaptureFixture
) -> None:
    hall = cluster.hall(SENDER)
    before = snapshot(cluster.nodes[SENDER])
    with pytest.raises(RequestRefused) as refused:
        hall.submit(
            matter=ODA,
            to=[RECEIVER],
            applicant=Applicant("张三", "citizen", citizen_id()),
            form={},
            files=[_material("big.bin", 8 << 20)],
            retries=0,
        )
    assert refused.value.status == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert refused.value.message == STORAGE_FULL
    assert snapshot(cluster.nodes[SENDER]) == before
    assert _partials(cluster.fed / SENDER / "var" / "blobs") == []
    # The operator reads the operating system's own words in the node's log.
    assert any(
        r.levelno == logging.WARNING
        and STORAGE_FULL in r.getMessage()
        and "No space left on device" in r.getMessage()
        for r in caplog.records
    )
    fits = hall.submit(
        matter=ODA,
        to=[RECEIVER],
        applicant=Applicant("张三", "citizen", citizen_id()),
        form={},
        files=[_material("small.bin", 100 << 10)],
        retries=0,
    )
    wait_until("the packet that fits to be delivered", delivered(hall, fits.packet_id))
    got = cluster.hall(RECEIVER).fetch(fits.packet_id, cluster.root / "got")
    assert got.files[0].path.read_bytes() == b"".join(_material("small.bin", 100 << 10).chunks())
