"""kill -9 in the middle of a transfer leaves partial writes; the orphan sweep removes them."""

from __future__ import annotations

import contextlib
import hashlib
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Cluster, citizen_id, delivered, start_cluster, wait_until
from tests.node_process import NodeProcess, read_directory
from tongban.client.hall import Applicant, HallClient, Material

pytestmark = pytest.mark.slow

ODA = ("HB-ODA-01", "异地办理营业执照变更登记")
SENDER, RECEIVER = "420700", "420100"
SIZE = 48 << 20
# The sweep runs every second once started, and takes a partial write not touched for
# three seconds for a crash's leftover.
SWEEP = {
    "TONGBAN_STORAGE_ORPHAN_SWEEP_SECONDS": "1",
    "TONGBAN_STORAGE_LONGEST_TRANSFER_SECONDS": "3",
}


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[tuple[Cluster, dict[str, NodeProcess]]]:
    cluster = start_cluster(tmp_path, (SENDER, RECEIVER), start=False)
    read_directory(cluster)
    nodes = {n: NodeProcess(cluster, n, tmp_path / f"{n}.log", SWEEP) for n in (SENDER, RECEIVER)}
    yield cluster, nodes
    for p in nodes.values():
        if p.running:
            p.kill9()


def _material(seed: int) -> Material:
    block = hashlib.sha256(str(seed).encode()).digest() * 32768  # 1 MiB
    return Material(
        "big.bin",
        None,
        "application/octet-stream",
        lambda: (block for _ in range(SIZE // len(block))),
        SIZE,
    )


def _partials(cluster: Cluster, node_id: str, under: str = "") -> list[Path]:
    return sorted((cluster.fed / node_id / "var" / "blobs" / under).rglob(".partial-*"))


def _submit(hall: HallClient, material: Material, packet_id: str) -> None:
    hall.submit(
        matter=ODA,
        to=[RECEIVER],
        applicant=Applicant("张三", "citizen", citizen_id()),
        form={},
        files=[material],
        packet_id=packet_id,
        retries=0,
    )


def test_partial_writes_of_killed_transfers_are_swept_on_both_nodes(
    procs: tuple[Cluster, dict[str, NodeProcess]],
) -> None:
    cluster, nodes = procs
    nodes[SENDER].start()
    nodes[RECEIVER].start()
    hall = HallClient.from_profile(cluster.fed / SENDER / "halls" / f"{SENDER}-hall-1")

    # The receiver killed while a delivery streams in.
    delivered_id = str(uuid.uuid4())
    _submit(hall, _material(1), delivered_id)
    wait_until("the delivery to be under way", lambda: _partials(cluster, RECEIVER), timeout=60)
    nodes[RECEIVER].kill9()
    assert _partials(cluster, RECEIVER)

    # The sender killed while a hall's upload streams in.
    def upload() -> None:
        with contextlib.suppress(Exception):  # the node is killed under it on purpose
            _submit(hall, _material(2), str(uuid.uuid4()))

    uploader = threading.Thread(target=upload)
    uploader.start()
    wait_until(
        "the upload to be under way",
        lambda: _partials(cluster, SENDER, "out"),
        timeout=60,
    )
    nodes[SENDER].kill9()
    uploader.join(30)
    assert _partials(cluster, SENDER)

    nodes[SENDER].start()
    nodes[RECEIVER].start()
    hall.close()
    hall = HallClient.from_profile(cluster.fed / SENDER / "halls" / f"{SENDER}-hall-1")
    wait_until("redelivery after the restart", delivered(hall, delivered_id), timeout=120)
    wait_until(
        "the sweep to remove every partial write",
        lambda: not _partials(cluster, SENDER) and not _partials(cluster, RECEIVER),
        timeout=30,
    )
    hall.close()
    assert nodes[SENDER].terminate() == 0
    assert nodes[RECEIVER].terminate() == 0
