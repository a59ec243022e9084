"""Small packets travel in batches, but never at the cost of arriving: whenever a batch is
not taken (a peer's smaller message limit, a peer of an older version), the packet goes in a
stream of its own, and a hall SDK works with a node that has no SubmitForm."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.harness import Cluster, citizen_id, delivered, wait_until
from tongban.client.hall import Applicant
from tongban.proto import hall_pb2_grpc
from tongban.server.domain.errors import InvalidRequest
from tongban.server.grpc.servicers import HallServicer
from tongban.server.usecases import receive as packets
from tongban.storage.sql import DeliveryRow

A, B = "420700", "420100"
ODA = ("HB-ODA-01", "异地办理营业执照变更登记")
APPLICANT = Applicant("张三", "citizen", citizen_id())


def _delivery(cluster: Cluster, packet_id: str) -> tuple[str, int, str]:
    with cluster.nodes[A].metadata.read() as session:
        row = session.scalar(
            select(DeliveryRow).where(DeliveryRow.packet_id == packet_id, DeliveryRow.node_id == B)
        )
        assert row is not None
        return row.state, row.attempts, row.last_error


def _send_scan(cluster: Cluster, tmp_path: Path, size: int) -> tuple[str, bytes]:
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(os.urandom(size))
    ez = cluster.hall(A)
    r = ez.submit(matter=ODA, to=[B], applicant=APPLICANT, form={"k": 1}, files=[scan])
    wait_until("delivery", delivered(ez, r.packet_id))
    return r.packet_id, scan.read_bytes()


def _fetched(cluster: Cluster, packet_id: str, tmp_path: Path) -> bytes:
    got = cluster.hall(B).fetch(packet_id, tmp_path / "at-b")
    assert [f.verified for f in got.files] == [True]
    return got.files[0].path.read_bytes()


@pytest.fixture
def two_nodes(make_cluster: Callable[..., Cluster]) -> Iterator[Cluster]:
    cluster = make_cluster((A, B), start=False)
    yield cluster


def test_a_packet_too_large_for_the_peers_message_limit_goes_in_a_stream(
    two_nodes: Cluster, tmp_path: Path
) -> None:
    cluster = two_nodes
    cluster.start(A)  # 8 MiB messages: a 1.9 MB packet looks small enough for a batch
    cluster.overrides["limits"] = {"max_message_bytes": 1536 << 10}
    cluster.start(B)  # but B takes messages of 1.5 MiB at most
    packet_id, data = _send_scan(cluster, tmp_path, 1_900_000)
    # Delivered at the first attempt: the refused batch call was not counted as a failure.
    assert _delivery(cluster, packet_id) == ("delivered", 1, "")
    assert _fetched(cluster, packet_id, tmp_path) == data


def test_a_peer_that_takes_files_only_in_a_stream_gets_them_so(
    two_nodes: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = packets.ReceivePackets.receive_batch
    refused: list[str] = []

    def like_an_older_node(
        rt: Any, peer: str, openings: Sequence[packets.DeliverOpening]
    ) -> list[packets.DeliverOutcome]:
        outcomes = real(rt, peer, [o for o in openings if not o.segments])
        for i, o in enumerate(openings):
            if o.segments:
                refused.append(o.statement.digest)
                error = InvalidRequest("packet carries files; deliver it on its own")
                outcomes.insert(i, packets.DeliverOutcome(None, error=error))
        return outcomes

    monkeypatch.setattr(packets.ReceivePackets, "receive_batch", like_an_older_node)
    cluster = two_nodes
    cluster.start(A)
    cluster.start(B)
    packet_id, data = _send_scan(cluster, tmp_path, 300_000)
    assert len(refused) == 1  # it went in a batch first, and was refused there
    assert _delivery(cluster, packet_id) == ("delivered", 1, "")
    assert _fetched(cluster, packet_id, tmp_path) == data


def test_the_hall_sdk_submits_to_a_node_without_submit_form(
    two_nodes: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A node from before SubmitForm answers it with UNIMPLEMENTED.
    monkeypatch.setattr(HallServicer, "SubmitForm", hall_pb2_grpc.HallServiceServicer.SubmitForm)
    cluster = two_nodes
    cluster.start(A)
    cluster.start(B)
    ez = cluster.hall(A)
    first = ez.submit(matter=ODA, to=[B], applicant=APPLICANT, form={"n": 1})
    second = ez.submit(matter=ODA, to=[B], applicant=APPLICANT, form={"n": 2})
    assert not first.duplicate and not second.duplicate
    for r in (first, second):
        wait_until("delivery", delivered(ez, r.packet_id))
    assert ez._submit_form is False  # asked once, then the stream only


def test_packets_beyond_what_the_dispatcher_keeps_in_memory_are_read_back(
    two_nodes: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tongban.server.usecases import delivery

    monkeypatch.setattr(delivery, "_MAX_HELD_BYTES", 0)  # every packet is read from the store
    cluster = two_nodes
    cluster.start(A)
    cluster.start(B)
    ez = cluster.hall(A)
    sent = [ez.submit(matter=ODA, to=[B], applicant=APPLICANT, form={"n": i}) for i in range(5)]
    packet_id, data = _send_scan(cluster, tmp_path, 200_000)
    for r in sent:
        wait_until("delivery", delivered(ez, r.packet_id))
        assert _delivery(cluster, r.packet_id) == ("delivered", 1, "")
    assert _fetched(cluster, packet_id, tmp_path) == data
