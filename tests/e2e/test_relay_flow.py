"""Cities exchange packets end to end through real nodes (in-process, on loopback)."""

from __future__ import annotations

import hashlib
import itertools
import os
from pathlib import Path

import grpc
import pytest

from tests.harness import Cluster, citizen_id, delivered, register_seal, snapshot, wait_until
from tongban.client.errors import RequestRefused
from tongban.client.hall import Applicant, Material

APPLICANT = Applicant("张三", "citizen", citizen_id())
ODA = ("HB-ODA-01", "异地办理营业执照变更登记")


def _file(tmp: Path, name: str, size: int) -> Path:
    p = tmp / name
    p.write_bytes(os.urandom(size))
    return p


def test_on_behalf_packet_round_trips_byte_for_byte(cluster: Cluster, tmp_path: Path) -> None:
    ez, wh = cluster.hall("420700"), cluster.hall("420100")
    big = _file(tmp_path, "scan.pdf", 2_500_000)  # spans three 1 MiB segments
    empty = _file(tmp_path, "empty.txt", 0)
    sent: list[int] = []
    r = ez.submit(
        matter=ODA,
        to=["420100"],
        applicant=APPLICANT,
        form={"地址": "武汉"},
        files=[big, empty],
        progress=sent.append,
    )
    assert sum(sent) == 2_500_000
    assert r.deliveries == {"420100": "pending"} or r.deliveries == {"420100": "delivered"}
    wait_until("delivery", delivered(ez, r.packet_id))
    [item] = [i for i in wh.inbox("in") if i.packet_id == r.packet_id]
    assert (item.case_id, item.sender_node, item.kind, item.mode) == (
        r.case_id,
        "420700",
        "application",
        "on_behalf",
    )
    got = wh.fetch(r.packet_id, tmp_path / "out")
    assert got.signature_status == "verified"
    assert got.applicant == APPLICANT
    assert got.form == {"地址": "武汉"}
    assert [f.name for f in got.files] == ["scan.pdf", "empty.txt"]
    assert got.files[0].path.read_bytes() == big.read_bytes()
    assert got.files[1].path.read_bytes() == b""
    assert got.files[0].sha256 == hashlib.sha256(big.read_bytes()).hexdigest()
    # The sending hall can read its own packet back too.
    mine = ez.fetch(r.packet_id, tmp_path / "mine")
    assert mine.files[0].path.read_bytes() == big.read_bytes()


def test_full_case_with_supplement_result_and_identical_chains(
    cluster: Cluster, tmp_path: Path
) -> None:
    ez, wh = cluster.hall("420700"), cluster.hall("420100")
    r = ez.submit(
        matter=ODA,
        to=["420100"],
        applicant=APPLICANT,
        form={},
        files=[_file(tmp_path, "a.jpg", 10)],
    )
    case = r.case_id
    wait_until("delivery", delivered(ez, r.packet_id))
    wh.request_supplement(case, ["营业执照正本"])
    wait_until(
        "supplement request reaches 鄂州",
        lambda: ez.case(case).legs[0].status == "supplement_requested",
    )
    sup = ez.supplement(case, "420100", [_file(tmp_path, "licence.jpg", 20)])
    wait_until("supplement reaches 武汉", lambda: wh.case(case).legs[0].status == "supplemented")
    assert wh.fetch(sup.packet_id, tmp_path / "sup").files[0].name == "licence.jpg"
    wh.accept(case)
    wh.decide(case, approved=True, note="准予")
    register_seal(cluster, "420100")
    res = wh.return_result(case, [_file(tmp_path, "permit.pdf", 30)])
    wait_until("result reaches 鄂州", lambda: ez.case(case).legs[0].status == "result_returned")
    assert ez.case(case).legs[0].result_packets == (res.packet_id,)
    assert ez.fetch(res.packet_id, tmp_path / "res").files[0].verified
    ez.issue(case)
    wait_until("出件 reaches 武汉", lambda: wh.case(case).legs[0].status == "issued")
    ours, intact_a = ez.history(case)
    theirs, intact_b = wh.history(case)
    assert intact_a and intact_b
    assert [e.type for e in ours] == [
        "submitted",
        "supplement_requested",
        "supplemented",
        "accepted",
        "decided",
        "result_returned",
        "issued",
    ]
    assert [(e.hash, e.prev_hash) for e in ours] == [(e.hash, e.prev_hash) for e in theirs]
    assert all(e.signature_status == "verified" for e in ours)
    assert [e.actor_node for e in ours] == [
        "420700",
        "420100",
        "420700",
        "420100",
        "420100",
        "420100",
        "420700",
    ]
    for prev, cur in itertools.pairwise(ours):
        assert cur.prev_hash == prev.hash


def test_joint_case_completes_only_when_every_leg_is_decided(cluster: Cluster) -> None:
    ez, wh, sz = cluster.hall("420700"), cluster.hall("420100"), cluster.hall("440300")
    company = Applicant("鄂州市好味道餐饮有限公司", "company", "91420700MA49ABCDX6")
    r = ez.submit(
        matter=("HB-2020-09", "我要开饭店"),
        to=["420100", "440300"],
        departments=["市场监管", "税务"],
        applicant=company,
        form={"店名": "好味道"},
    )
    wait_until("delivery", delivered(ez, r.packet_id))
    view = ez.case(r.case_id)
    assert view.mode == "joint" and [g.node_id for g in view.legs] == ["420100", "440300"]
    assert [g.department for g in view.legs] == ["市场监管", "税务"]
    # Each participant sees only its own leg.
    assert [g.node_id for g in wh.case(r.case_id).legs] == ["420100"]
    wh.accept(r.case_id)
    sz.accept(r.case_id)
    wh.decide(r.case_id, approved=True)
    wait_until("one decision", lambda: ez.case(r.case_id).legs[0].status == "decided")
    half = ez.case(r.case_id)
    assert not half.complete and half.status == "accepted (1/2 legs ended)"
    sz.decide(r.case_id, approved=False, note="税务登记信息不全")
    done = wait_until("both decisions", lambda: (v := ez.case(r.case_id)).complete and v)
    assert done.status == "decided"
    assert [(g.status, g.decision) for g in done.legs] == [
        ("decided", "approved"),
        ("decided", "denied"),
    ]
    with pytest.raises(RequestRefused) as exc:
        ez.accept(r.case_id, leg="420100")
    assert exc.value.status == grpc.StatusCode.FAILED_PRECONDITION
    assert (
        exc.value.message
        == "illegal-transition: only the handling side may record 'accepted' on leg 420100"
    )


def test_illegal_transitions_are_refused_and_change_nothing(cluster: Cluster) -> None:
    ez, wh = cluster.hall("420700"), cluster.hall("420100")
    r = ez.submit(matter=ODA, to=["420100"], applicant=APPLICANT, form={})
    wait_until("delivery", delivered(ez, r.packet_id))
    wh.refuse(r.case_id, "材料不属于本机关受理范围")
    before = snapshot(cluster.nodes["420100"])
    with pytest.raises(RequestRefused) as exc:
        wh.decide(r.case_id, approved=True)
    assert exc.value.status == grpc.StatusCode.FAILED_PRECONDITION
    assert (
        exc.value.message
        == "illegal-transition: leg 420100 is refused; 'decided' is not allowed now"
    )
    assert snapshot(cluster.nodes["420100"]) == before


def test_supplement_may_be_requested_once_only(cluster: Cluster, tmp_path: Path) -> None:
    ez, wh = cluster.hall("420700"), cluster.hall("420100")
    r = ez.submit(matter=ODA, to=["420100"], applicant=APPLICANT, form={})
    wait_until("delivery", delivered(ez, r.packet_id))
    wh.request_supplement(r.case_id, ["户口簿"])
    wait_until(
        "request at 鄂州", lambda: ez.case(r.case_id).legs[0].status == "supplement_requested"
    )
    ez.supplement(r.case_id, "420100", [_file(tmp_path, "hk.jpg", 5)])
    wait_until("supplemented", lambda: wh.case(r.case_id).legs[0].status == "supplemented")
    with pytest.raises(RequestRefused) as exc:
        wh.request_supplement(r.case_id, ["再补一次"])
    assert exc.value.status == grpc.StatusCode.FAILED_PRECONDITION
    assert (
        exc.value.message
        == "illegal-transition: leg 420100 is supplemented; 'supplement_requested' is not allowed now"
    )


def test_refuse_needs_a_reason(cluster: Cluster) -> None:
    ez, wh = cluster.hall("420700"), cluster.hall("420100")
    r = ez.submit(matter=ODA, to=["420100"], applicant=APPLICANT, form={})
    wait_until("delivery", delivered(ez, r.packet_id))
    with pytest.raises(RequestRefused) as exc:
        wh.refuse(r.case_id, "  ")
    assert (exc.value.status, exc.value.message) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid-request: refusing a case needs a reason (不予受理理由)",
    )


def test_streamed_material_of_unknown_size(cluster: Cluster, tmp_path: Path) -> None:
    ez, wh = cluster.hall("420700"), cluster.hall("420100")
    blocks = [os.urandom(300_000) for _ in range(5)]
    m = Material("stream.bin", None, "application/octet-stream", lambda: iter(blocks), -1)
    r = ez.submit(matter=ODA, to=["420100"], applicant=APPLICANT, form={}, files=[m])
    wait_until("delivery", delivered(ez, r.packet_id))
    got = wh.fetch(r.packet_id, tmp_path / "o")
    assert got.files[0].path.read_bytes() == b"".join(blocks)


def test_unreachable_recipient_is_retried_until_it_acknowledges(
    make_cluster, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from tongban.storage.sql import DeliveryRow

    c = make_cluster(start=False)
    c.start("420700")
    ez = c.hall("420700")
    r = ez.submit(
        matter=ODA, to=["420100"], applicant=APPLICANT, form={}, files=[_file(tmp_path, "a", 100)]
    )

    def attempts() -> int:
        with c.nodes["420700"].metadata.transaction() as s:
            row = s.scalar(select(DeliveryRow).where(DeliveryRow.packet_id == r.packet_id))
            assert row is not None
            return (
                row.attempts
                if row.state == "pending" and row.last_error.startswith("UNAVAILABLE")
                else 0
            )

    wait_until("two failed attempts", lambda: attempts() >= 2)
    [item] = ez.inbox("out")
    assert item.deliveries == {"420100": "pending"}  # the hall sees it as pending delivery
    c.start("420100")
    wait_until("delivery once the recipient is up", delivered(ez, r.packet_id))
    wh = c.hall("420100")
    assert [i.packet_id for i in wh.inbox("in")] == [r.packet_id]
    assert (
        wh.fetch(r.packet_id, tmp_path / "o").files[0].path.read_bytes()
        == (tmp_path / "a").read_bytes()
    )
