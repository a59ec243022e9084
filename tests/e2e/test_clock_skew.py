"""A peer whose clock is off shows on every delivery; far off, the node stops sealing."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

import grpc
import pytest

from tests.harness import Cluster, citizen_id, delivered, wait_until
from tongban.client.hall import Applicant
from tongban.keys.clock import utcnow
from tongban.server.domain.errors import ClockSkewed, NotFound
from tongban.server.grpc.status import status_of
from tongban.server.usecases.clock_skew import skew_seconds

SENDER, RECEIVER = "420700", "420100"
SKEW = {"clock_skew_tolerance_seconds": 5.0, "clock_skew_refuse_seconds": 20.0}


class ShiftedClock:
    """The receiver's clock, off by ``offset`` until someone sets it right."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utcnow() + self.offset


def _send(cluster: Cluster) -> None:
    hall = cluster.hall(SENDER)
    r = hall.submit(
        matter=("HB-ODA-01", "异地办理营业执照变更登记"),
        to=[RECEIVER],
        applicant=Applicant("张三", "citizen", citizen_id()),
        form={"n": str(uuid.uuid4())},
    )
    wait_until("delivery", delivered(hall, r.packet_id))


def _seal(cluster: Cluster) -> None:
    cluster.nodes[SENDER].seals.seal_document(
        seal_id="s", document_name="d.pdf", chunks=[b"%PDF"], type_code="0001"
    )


def test_skew_is_logged_counted_and_far_over_it_sealing_is_refused_until_fixed(
    make_cluster, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    cluster: Cluster = make_cluster((SENDER, RECEIVER), start=False, overrides={"node": SKEW})
    clock = ShiftedClock()
    cluster.start(SENDER)
    cluster.start(RECEIVER, clock=clock)
    watch = cluster.nodes[SENDER].clock_skew

    _send(cluster)  # clocks agree
    assert watch.over_tolerance[RECEIVER] == 0
    assert abs(watch.skews()[RECEIVER]) <= 1.0

    clock.offset = timedelta(seconds=10)  # over the tolerance, under the refusal
    caplog.set_level(logging.INFO)
    _send(cluster)
    assert watch.over_tolerance[RECEIVER] == 1
    assert 9.0 < watch.skews()[RECEIVER] <= 10.0
    warnings = [r.getMessage() for r in caplog.records if "clock skew" in r.getMessage()]
    assert (
        len(warnings) == 1
        and warnings[0].startswith(f"clock skew: node {RECEIVER}'s clock is +")
        and warnings[0].endswith("s from this node's (tolerance 5.0 s)")
    )
    with pytest.raises(NotFound, match="unknown seal id"):
        _seal(cluster)  # still allowed to seal: what stops it is the unknown seal

    clock.offset = timedelta(seconds=-60)  # far behind: this node is the odd one out
    _send(cluster)
    assert watch.over_tolerance[RECEIVER] == 2
    with pytest.raises(ClockSkewed) as refused:
        _seal(cluster)
    code, message = status_of(refused.value)  # type: ignore[misc]
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert message.startswith("clock-skew: this node's clock is ")
    assert message.endswith(
        "s ahead of its peers' (the limit is 20 s); fix the clock before sealing"
    )

    clock.offset = timedelta(0)  # fixed
    _send(cluster)
    with pytest.raises(NotFound, match="unknown seal id"):
        _seal(cluster)
    assert any("agrees with this node's again" in r.getMessage() for r in caplog.records)


def test_skew_is_only_what_the_round_trip_cannot_explain() -> None:
    t0 = datetime(2026, 5, 1, 8, 0, 0, tzinfo=utcnow().tzinfo)
    t1 = t0 + timedelta(seconds=2)
    assert skew_seconds(t0, t1, t0 + timedelta(seconds=1)) == 0.0
    assert skew_seconds(t0, t1, t0 - timedelta(seconds=300)) == -300.0
    assert skew_seconds(t0, t1, t1 + timedelta(seconds=7)) == 7.0
