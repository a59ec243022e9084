"""A delivery cut off by the receiver's graceful shutdown is logged as a cancelled call."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from tests.harness import Cluster, citizen_id, delivered, wait_until
from tongban.client.hall import Applicant, Material

SENDER, RECEIVER = "420700", "420100"
SIZE = 64 << 20


def _material() -> Material:
    block = bytes(range(256)) * 4096  # 1 MiB

    def chunks() -> Iterator[bytes]:
        return (block for _ in range(SIZE // len(block)))

    return Material("big.bin", None, "application/octet-stream", chunks, SIZE)


def test_a_deliver_cancelled_by_shutdown_is_info_without_traceback(
    make_cluster, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    cluster: Cluster = make_cluster((SENDER, RECEIVER))
    caplog.set_level(logging.INFO)
    hall = cluster.hall(SENDER)
    receipt = hall.submit(
        matter=("HB-ODA-01", "异地办理营业执照变更登记"),
        to=[RECEIVER],
        applicant=Applicant("张三", "citizen", citizen_id()),
        form={},
        files=[_material()],
    )
    blobs = cluster.fed / RECEIVER / "var" / "blobs"
    wait_until("the delivery to stream in", lambda: list(blobs.rglob(".partial-*")), timeout=60)
    caplog.clear()
    cluster.stop(RECEIVER, grace=0.1)

    def cancelled_records() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "Deliver cancelled" in r.getMessage()]

    # The handler's thread notices the cancellation on its next read, which may come just
    # after the server reports it stopped.
    wait_until("the cancelled Deliver to be logged", cancelled_records, timeout=15)
    cancelled = cancelled_records()
    assert [(r.levelno, r.getMessage()) for r in cancelled] == [
        (
            logging.INFO,
            "Deliver cancelled before it finished (the node is shutting down or the caller "
            "went away); nothing of it was committed",
        )
    ]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []
    assert not list(blobs.rglob(".partial-*"))  # the cancelled transfer removed its partial

    cluster.start(RECEIVER)
    wait_until("delivery after the restart", delivered(hall, receipt.packet_id), timeout=120)
