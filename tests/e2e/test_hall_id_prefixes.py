"""Ids people can copy: whole ids in the inbox at any width, and unambiguous prefixes taken
by every command that names a packet or a case, as git takes them."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from tests.fixtures_seal import WUHAN_USCC, make_pdf
from tests.harness import Cluster, citizen_id, delivered, wait_until
from tongban.cli.main import main
from tongban.client.errors import RequestRefused
from tongban.client.hall import Applicant
from tongban.client.seals import SealClient
from tongban.keys.clock import utcnow


def _hall(cluster: Cluster, node: str) -> str:
    return str(cluster.fed / node / "halls" / f"{node}-hall-1")


def _submit(cluster: Cluster, packet_id: str | None = None) -> tuple[str, str]:
    r = cluster.hall("420700").submit(
        matter=("HB-ODA-01", ""),
        to=["420100"],
        applicant=Applicant("张三", "citizen", citizen_id()),
        form={"变更事项": "住所"},
        packet_id=packet_id,
    )
    return r.packet_id, r.case_id


def test_inbox_prints_whole_ids_at_a_narrow_terminal(
    cluster: Cluster, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    packet, case = _submit(cluster)
    monkeypatch.setenv("COLUMNS", "40")
    assert main(["hall", "--profile", _hall(cluster, "420700"), "inbox"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if packet in line)
    assert re.search(rf"(^|\s){re.escape(packet)}\s+{re.escape(case)}\s", row), out


def test_commands_take_a_prefix_of_a_case_or_packet_id(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    packet, case = _submit(cluster)
    wait_until("delivery", delivered(cluster.hall("420700"), packet))
    wh = _hall(cluster, "420100")
    got = tmp_path / "got"
    assert main(["hall", "--profile", wh, "fetch", packet[:6], "--out", str(got)]) == 0
    assert f"packet {packet} from 420700/420700-hall-1" in capsys.readouterr().out
    assert main(["hall", "--profile", wh, "accept", case[:6].upper()]) == 0
    assert main(["hall", "--profile", wh, "decide", case[:8], "--decision", "approved"]) == 0
    capsys.readouterr()
    assert main(["hall", "--profile", wh, "case", case[:5]]) == 0
    assert f'"case_id": "{case}"' in capsys.readouterr().out
    _register_seal(cluster)
    permit = tmp_path / "permit.pdf"
    permit.write_bytes(make_pdf("Permit 2026-0001"))
    assert main(["hall", "--profile", wh, "result", case[:7], "--file", str(permit)]) == 0
    assert f"case   {case}" in capsys.readouterr().out
    ez = cluster.hall("420700")
    wait_until("result at 鄂州", lambda: ez.case(case).legs[0].status == "result_returned")
    assert main(["hall", "--profile", _hall(cluster, "420700"), "issue", case[:10]]) == 0
    # The case says how far it went, as its one leg does.
    issued = ez.case(case)
    assert (issued.status, issued.legs[0].status, issued.complete) == ("issued", "issued", True)
    assert main(["hall", "--profile", wh, "history", case[:9]]) == 0
    assert "chain intact" in capsys.readouterr().out


def _register_seal(cluster: Cluster) -> None:
    now = utcnow()
    admin = cluster.fed / "420100" / "admins" / "420100-admin"
    with SealClient.from_profile(admin) as client:
        client.register_seal(
            "wh-approval",
            "武汉市行政审批局行政审批专用章",
            WUHAN_USCC,
            org_name="武汉市行政审批局",
            not_before=now - timedelta(minutes=1),
            not_after=now + timedelta(days=30),
        )


def test_an_ambiguous_packet_prefix_lists_the_candidates(
    cluster: Cluster,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    first, second = "abcd0000-0000-4000-8000-000000000001", "abcd0000-0000-4000-8000-000000000002"
    _submit(cluster, first)
    _submit(cluster, second)
    ez = _hall(cluster, "420700")
    before = [i.packet_id for i in cluster.hall("420700").inbox()]
    assert main(["hall", "--profile", ez, "fetch", "abcd", "--out", "never"]) == 2
    assert capsys.readouterr().out == (
        "tongban hall: INVALID_ARGUMENT: invalid-request: packet id 'abcd' is ambiguous: "
        f"2 packets of hall 420700-hall-1 start with it ({first}, {second}); "
        "give more characters\n"
    )
    assert not Path("never").exists()
    assert [i.packet_id for i in cluster.hall("420700").inbox()] == before
    # One more character decides.
    with pytest.raises(RequestRefused) as refused:
        cluster.hall("420700").fetch("abcd0000-0000-4000-8000-00000000000", Path("never"))
    assert refused.value.status == grpc.StatusCode.INVALID_ARGUMENT
    assert not Path("never").exists()


def test_a_prefix_never_finds_another_halls_packet(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    packet, case = _submit(cluster)
    other = cluster.hall("420700", 2)
    with pytest.raises(RequestRefused) as refused:
        other.fetch(packet[:8], Path("never"))
    assert (refused.value.status, refused.value.message) == (
        grpc.StatusCode.NOT_FOUND,
        f"not-found: hall 420700-hall-2 has no packet whose id starts '{packet[:8]}'; "
        "copy it from `tongban hall inbox`",
    )
    with pytest.raises(RequestRefused) as refused:
        other.case(case[:8])
    assert refused.value.status == grpc.StatusCode.NOT_FOUND
