"""A backlog for a peer that was down starts draining within seconds of its return.

While the peer is down one item at a time probes it (the backoff is the peer's, not each
item's), and the channel's reconnect backoff is bounded; the first call that reaches the peer
makes its whole backlog due at once.
"""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import func, select

from tests.harness import Cluster, citizen_id, wait_until
from tongban.client.hall import Applicant
from tongban.storage.sql import DeliveryRow, OutboxRow

pytestmark = pytest.mark.slow

SENDER, RECEIVER = "420700", "420100"
PACKETS = 120
OUTAGE = 20.0  # seconds the receiver stays down with the backlog queued
# The defaults but for the probe interval: items alone would back off to a minute.
POLICY = {"initial_backoff": 0.5, "max_backoff": 60.0, "max_peer_probe_interval": 2.0}


def _delivered(cluster: Cluster) -> int:
    with cluster.nodes[SENDER].metadata.read() as session:
        return int(
            session.scalar(
                select(func.count()).where(
                    DeliveryRow.node_id == RECEIVER, DeliveryRow.state == "delivered"
                )
            )
            or 0
        )


def _attempts(cluster: Cluster) -> int:
    with cluster.nodes[SENDER].metadata.read() as session:
        return int(
            session.scalar(
                select(func.sum(OutboxRow.attempts)).where(OutboxRow.dest_node == RECEIVER)
            )
            or 0
        )


def test_the_backlog_drains_within_seconds_of_the_peers_return(make_cluster) -> None:  # type: ignore[no-untyped-def]
    cluster: Cluster = make_cluster((SENDER, RECEIVER), overrides={"delivery": POLICY})
    cluster.stop(RECEIVER, grace=0.1)
    hall = cluster.hall(SENDER)
    ids = []
    for n in range(PACKETS):
        r = hall.submit(
            matter=("HB-ODA-01", "异地办理营业执照变更登记"),
            to=[RECEIVER],
            applicant=Applicant("张三", "citizen", citizen_id()),
            form={"n": n},
            packet_id=str(uuid.uuid4()),
        )
        ids.append(r.packet_id)
    time.sleep(OUTAGE)
    assert _delivered(cluster) == 0
    # One probe at a time while the peer is down: far fewer calls than items.
    attempts_while_down = _attempts(cluster)
    assert attempts_while_down < PACKETS + OUTAGE, attempts_while_down

    back = time.monotonic()
    cluster.start(RECEIVER)
    wait_until("the first delivery after the return", lambda: _delivered(cluster) > 0, timeout=60)
    first = time.monotonic() - back
    wait_until("the whole backlog", lambda: _delivered(cluster) == PACKETS, timeout=120)
    drained = time.monotonic() - back
    print(f"backlog of {PACKETS}: first delivery {first:.1f} s, all {drained:.1f} s after return")
    assert first < 8.0
    # Every item went as soon as the peer answered, none waited out a backoff of its own.
    assert drained < first + 10.0
    received = {i.packet_id for i in cluster.hall(RECEIVER).inbox("in", limit=1000)}
    assert received == set(ids)
