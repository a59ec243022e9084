"""Every result goes out sealed, or is refused: a handling node without a usable seal says which
seal is missing and the command that registers one, and stores and queues nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from sqlalchemy import func, select

from tests.harness import Cluster, citizen_id, delivered, register_seal, snapshot, wait_until
from tongban.client.errors import RequestRefused
from tongban.client.hall import Applicant, HallClient
from tongban.client.seals import SealClient
from tongban.keys.clock import format_time, utcnow
from tongban.storage.sql import OutboxRow

ODA = ("HB-ODA-01", "异地办理营业执照变更登记")
HANDLER = "420100"
COMMAND_TAIL = "--seal-id ID --name NAME --org-name ORGANISATION --uscc CODE"


def _decided_case(cluster: Cluster) -> tuple[str, HallClient, HallClient]:
    ez, wh = cluster.hall("420700"), cluster.hall(HANDLER)
    r = ez.submit(
        matter=ODA, to=[HANDLER], applicant=Applicant("张三", "citizen", citizen_id()), form={}
    )
    wait_until("delivery", delivered(ez, r.packet_id))
    wh.accept(r.case_id)
    wh.decide(r.case_id, approved=True)
    wait_until("decision at 鄂州", lambda: ez.case(r.case_id).legs[0].status == "decided")
    return r.case_id, ez, wh


def _outbox(cluster: Cluster, node: str) -> int:
    with cluster.nodes[node].metadata.read() as session:
        return int(session.scalar(select(func.count()).select_from(OutboxRow)) or 0)


def _profile(cluster: Cluster) -> Path:
    return (cluster.fed / HANDLER / "admins" / f"{HANDLER}-admin").resolve()


def _refused_and_unchanged(cluster: Cluster, tmp_path: Path) -> str:
    """Return a result at the handling node; check it is refused, stores and queues nothing."""
    case_id, ez, wh = _decided_case(cluster)
    permit = tmp_path / "permit.pdf"
    permit.write_bytes(b"%PDF-1.4 permit")
    before, queued = snapshot(cluster.nodes[HANDLER]), _outbox(cluster, HANDLER)
    with pytest.raises(RequestRefused) as caught:
        wh.return_result(case_id, [permit])
    assert caught.value.status == grpc.StatusCode.FAILED_PRECONDITION
    assert snapshot(cluster.nodes[HANDLER]) == before  # no blob, no e-certificate, no event
    assert _outbox(cluster, HANDLER) == queued  # nothing owed to the accepting node
    assert wh.case(case_id).legs[0].status == "decided"
    assert ez.case(case_id).legs[0].status == "decided"
    return caught.value.message


def _admin(cluster: Cluster) -> SealClient:
    return SealClient.from_profile(cluster.fed / HANDLER / "admins" / f"{HANDLER}-admin")


def test_a_node_with_no_seal_refuses_results(cluster: Cluster, tmp_path: Path) -> None:
    assert _refused_and_unchanged(cluster, tmp_path) == (
        f"no-usable-seal: node {HANDLER} has no seal registered, so its results cannot be "
        f"sealed; register one: tongban seal register --profile {_profile(cluster)} "
        f"{COMMAND_TAIL}"
    )


def test_a_node_whose_only_seal_is_revoked_refuses_results(
    cluster: Cluster, tmp_path: Path
) -> None:
    register_seal(cluster, HANDLER, "wh-old")
    with _admin(cluster) as admin:
        revoked = admin.revoke_seal("wh-old", "superseded")
    assert revoked.revoked_at is not None
    assert _refused_and_unchanged(cluster, tmp_path) == (
        f"no-usable-seal: node {HANDLER} has no usable seal for its results; register another: "
        f"tongban seal register --profile {_profile(cluster)} {COMMAND_TAIL} (wh-old was "
        f"revoked at {format_time(revoked.revoked_at)})"
    )


def test_a_node_whose_seal_is_outside_its_window_refuses_results(
    cluster: Cluster, tmp_path: Path
) -> None:
    start = (utcnow() + timedelta(days=2)).replace(microsecond=0)
    end = start + timedelta(days=30)
    register_seal(cluster, HANDLER, "wh-next", not_before=start, not_after=end)
    assert _refused_and_unchanged(cluster, tmp_path) == (
        f"no-usable-seal: node {HANDLER} has no usable seal for its results; register another: "
        f"tongban seal register --profile {_profile(cluster)} {COMMAND_TAIL} (wh-next is "
        f"valid only from {format_time(start)} to {format_time(end)})"
    )


def test_a_configured_result_seal_that_is_not_registered_refuses_results(
    make_cluster: Callable[..., Cluster], tmp_path: Path
) -> None:
    c = make_cluster(("420700", HANDLER), overrides={"seals": {"result_seal": "wh-approval"}})
    register_seal(c, HANDLER, "wh-other")  # usable, but not the one the node is told to use
    assert _refused_and_unchanged(c, tmp_path) == (
        f"no-usable-seal: the result seal wh-approval ([seals] result_seal) is not registered "
        f"at node {HANDLER}; register it: tongban seal register --profile {_profile(c)} "
        "--seal-id wh-approval --name NAME --org-name ORGANISATION --uscc CODE"
    )


def test_once_a_seal_is_registered_the_same_result_goes_out_sealed(
    cluster: Cluster, tmp_path: Path
) -> None:
    _refused_and_unchanged(cluster, tmp_path)
    register_seal(cluster, HANDLER, "wh-approval")
    case_id, ez, wh = _decided_case(cluster)
    permit = tmp_path / "permit.pdf"
    res = wh.return_result(case_id, [permit])
    wait_until("result at 鄂州", lambda: ez.case(case_id).legs[0].status == "result_returned")
    got = ez.fetch(res.packet_id, tmp_path / "got")
    assert [f.name for f in got.files] == ["permit.pdf", "permit.pdf.p7s"]
