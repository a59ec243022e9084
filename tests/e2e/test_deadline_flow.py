"""Deadlines end to end over moved time: the clock, cards in both nodes' chains, deemed
acceptance, approval by default with a sealed notice, exempt matters, races and catch-up."""

from __future__ import annotations

import io
import json
import subprocess
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import select

from tests.harness import Backend, Cluster, citizen_id, delivered, start_cluster, wait_until
from tongban.client.errors import RequestRefused
from tongban.client.hall import Applicant, HallClient
from tongban.client.verify import Indication, seal_verification_result
from tongban.keys.clock import format_time, utcnow
from tongban.keys.pki import load_certificates
from tongban.server.app import RelayNode
from tongban.server.domain.deadlines import Card, schedule
from tongban.server.usecases.clocks import pauses_of
from tongban.server.usecases.operations import Operations
from tongban.storage.deadline_tables import CaseCardRow, CaseClockRow, DefaultNoticeRow
from tongban.storage.sql import EventRow

ODA = ("HB-ODA-01", "异地办理营业执照变更登记")  # set to promised 10, legal 20 working days
EXEMPT = ("HB-ODA-04", "异地换领、补领居民身份证")  # exempt: public security
APPLICANT = Applicant("张三", "citizen", citizen_id())
SEAL_NAME = "武汉市行政审批局行政审批专用章"
USCC = "11420100MB0000123A"
CALENDAR_2027 = {
    "years": [2027],
    "holidays": [{"date": "2027-01-01", "name": "元旦"}],
    "workdays": [],
}


class MovableClock:
    """The nodes' clock: real time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utcnow() + self.offset

    def move_to(self, at: datetime) -> None:
        self.offset = at - utcnow()


def _timed_cluster(
    tmp_path: Path, backend: Backend | None = None
) -> Iterator[tuple[Cluster, MovableClock]]:
    clock = MovableClock()
    cluster = start_cluster(
        tmp_path,
        ("420700", "420100"),
        start=False,
        backend=backend,
        overrides={"matters": {"supervision_seconds": 0}},
    )
    for node in ("420700", "420100"):
        cluster.start(node, clock=clock)
    for node in cluster.nodes.values():
        # The calendar of 2027 is made complete, so that deadlines after New Year are exact.
        node.calendar.import_file(json.dumps(CALENDAR_2027).encode(), source="test", actor="test")
    wh = cluster.nodes["420100"]
    for code in (ODA[0], EXEMPT[0]):
        wh.matter_book.set(code, {"promised_days": 10, "legal_days": 20}, actor="test")
    now = utcnow()
    wh.seals.register_seal(
        seal_id="wh-approval",
        name=SEAL_NAME,
        org_name="武汉市行政审批局",
        org_uscc=USCC,
        not_before=now - timedelta(minutes=1),
        not_after=now + timedelta(days=365),
    )
    yield cluster, clock
    cluster.close()


@pytest.fixture
def timed(tmp_path: Path) -> Iterator[tuple[Cluster, MovableClock]]:
    yield from _timed_cluster(tmp_path)


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def timed_any(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Cluster, MovableClock]]:
    """The timed cluster on SQLite, and on PostgreSQL where row locks decide races."""
    backend = None
    if request.param == "postgres":
        make: Callable[[str], str] = request.getfixturevalue("pg_schema")
        urls: dict[str, str] = {}
        backend = Backend(database=lambda node: urls.setdefault(node, make(node)))
    yield from _timed_cluster(tmp_path, backend)


def _submit(cluster: Cluster, matter: tuple[str, str] = ODA) -> str:
    ez = cluster.hall("420700")
    r = ez.submit(matter=matter, to=["420100"], applicant=APPLICANT, form={})
    wait_until("delivery", delivered(ez, r.packet_id))
    return r.case_id


def _clock_row(node: RelayNode, case_id: str) -> CaseClockRow:
    with node.metadata.read() as s:
        row = s.get(CaseClockRow, (case_id, "420100"))
        assert row is not None
        return row


def _cards(node: RelayNode, case_id: str) -> list[tuple[str, bool]]:
    with node.metadata.read() as s:
        rows = s.scalars(
            select(CaseCardRow).where(CaseCardRow.case_id == case_id).order_by(CaseCardRow.due_at)
        )
        return [(r.card, r.late) for r in rows]


def _events(node: RelayNode, case_id: str) -> list[tuple[str, dict[str, Any]]]:
    with node.metadata.read() as s:
        rows = s.scalars(select(EventRow).where(EventRow.case_id == case_id).order_by(EventRow.seq))
        return [(r.type, json.loads(r.payload)["detail"]) for r in rows]


def _expected(node: RelayNode, case_id: str) -> dict[Card, datetime]:
    row = _clock_row(node, case_id)
    assert row.accepted_at is not None
    sched = schedule(
        row.accepted_at, row.promised_days, row.legal_days, pauses_of(row), node.calendar.calendar()
    )
    return {c.card: c.at for c in sched.cards}


def test_yellow_red_then_approved_by_default_with_a_sealed_notice(
    timed: tuple[Cluster, MovableClock], tmp_path: Path
) -> None:
    cluster, clock = timed
    wh_node, ez_node = cluster.nodes["420100"], cluster.nodes["420700"]
    ez, wh = cluster.hall("420700"), cluster.hall("420100")
    case_id = _submit(cluster)
    wh.accept(case_id)
    due = _expected(wh_node, case_id)
    assert _clock_row(wh_node, case_id).uncertain is False
    tick = timedelta(microseconds=1)

    # Nothing before the yellow card's moment; the card at it, once.
    assert wh_node.supervision.run(due[Card.YELLOW] - tick).changed == 0
    clock.move_to(due[Card.YELLOW])
    assert wh_node.supervision.run(due[Card.YELLOW]).cards == {"yellow": 1}
    assert wh_node.supervision.run(due[Card.YELLOW]).changed == 0
    [line] = [s for s in wh_node.supervision.listing() if s.case_id == case_id]
    assert line.card == "yellow" and line.remaining_working_days is not None
    # The operations view counts the open case under its card.
    ops = Operations(
        node_id="420100", metadata=wh_node.metadata, directory=wh_node.directory, clock=clock
    )
    assert ops.snapshot().cards == {
        "none": 0,
        "yellow": 1,
        "red": 0,
        "overdue": 0,
        "legal_overdue": 0,
    }

    clock.move_to(due[Card.RED])
    assert wh_node.supervision.run(due[Card.RED]).cards == {"red": 1}
    clock.move_to(due[Card.OVERDUE])
    report = wh_node.supervision.run(due[Card.OVERDUE])
    assert report.cards == {"overdue": 1} and report.approved_by_default == 1, report
    assert _cards(wh_node, case_id) == [("yellow", False), ("red", False), ("overdue", False)]

    # The decision and every card are signed events in both nodes' chains.
    decided = [d for t, d in _events(wh_node, case_id) if t == "decided"]
    assert len(decided) == 1 and decided[0]["default_on_overdue"] is True
    assert decided[0]["due_at"] == format_time(due[Card.OVERDUE])
    wait_until(
        "the decision reaches 鄂州",
        lambda: (
            [t for t, _ in _events(ez_node, case_id)] == [t for t, _ in _events(wh_node, case_id)]
        ),
    )
    history, intact = ez.history(case_id)
    assert intact
    assert [e.type for e in history if e.type in ("card", "decided")] == [
        "card",
        "card",
        "card",
        "decided",
    ]
    assert [e.detail["card"] for e in history if e.type == "card"] == ["yellow", "red", "overdue"]

    # The notice comes back to the accepting hall as a result packet, sealed (PAdES).
    with wh_node.metadata.read() as s:
        notice = s.get(DefaultNoticeRow, (case_id, "420100"))
        assert notice is not None and notice.result_packet
        pdf, identifier, packet = notice.pdf, notice.ecert_id, notice.result_packet
    wait_until("the notice reaches 鄂州", delivered_to(ez, packet))
    got = ez.fetch(packet, tmp_path / "notice")
    assert got.signature_status == "verified"
    assert got.files[0].name == "默认许可决定书.pdf"
    f = got.files[0]
    assert f.path.read_bytes() == pdf
    text = subprocess.run(
        ["pdftotext", str(f.path), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "默认许可决定书" in text and case_id in text and "异地办理营业执照变更登记" in text

    roots = load_certificates((cluster.fed / "public" / "root.pem").read_bytes())
    report_v = seal_verification_result(
        pdf, roots=roots, seals=wh_node.seals.registered_seals(), at=clock()
    )
    assert report_v.indication is Indication.VALID, report_v.summary
    assert report_v.ecert_identifier == identifier

    from asn1crypto import x509 as asn1_x509
    from cryptography.hazmat.primitives import serialization
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    reader = PdfFileReader(io.BytesIO(pdf))
    (signature,) = reader.embedded_signatures
    status = validate_pdf_signature(
        signature,
        ValidationContext(
            trust_roots=[
                asn1_x509.Certificate.load(r.public_bytes(serialization.Encoding.DER))
                for r in roots
            ],
            moment=clock(),
            allow_fetching=False,
            revocation_mode="soft-fail",
        ),
    )
    assert (status.intact, status.valid, status.trusted) == (True, True, True)

    # The hall can no longer decide: one decision, the other caller told why.
    with pytest.raises(RequestRefused) as refused:
        wh.decide(case_id, approved=False)
    assert refused.value.status is grpc.StatusCode.FAILED_PRECONDITION
    assert refused.value.message == (
        f"approved-by-default: case {case_id} leg 420100 was approved by default on overdue "
        f"(approved by default on overdue at {format_time(due[Card.OVERDUE])} ({identifier})); "
        "'decided' is not allowed now"
    )
    assert [t for t, _ in _events(wh_node, case_id)].count("decided") == 1


def delivered_to(client: HallClient, packet_id: str) -> Any:
    def probe() -> bool:
        return any(i.packet_id == packet_id for i in client.inbox("in"))

    return probe


def test_an_exempt_matter_escalates_instead(timed: tuple[Cluster, MovableClock]) -> None:
    cluster, clock = timed
    wh_node = cluster.nodes["420100"]
    wh = cluster.hall("420100")
    case_id = _submit(cluster, EXEMPT)
    wh.accept(case_id)
    due = _expected(wh_node, case_id)
    clock.move_to(due[Card.OVERDUE])
    report = wh_node.supervision.run(due[Card.OVERDUE])
    assert report.cards == {"yellow": 1, "red": 1, "overdue": 1}
    assert (report.approved_by_default, report.escalated) == (0, 1)
    assert "decided" not in [t for t, _ in _events(wh_node, case_id)]
    row = _clock_row(wh_node, case_id)
    assert row.alert == "overdue; the matter is exempt from approval by default: escalated"
    [line] = [s for s in wh_node.supervision.listing(card="overdue") if s.case_id == case_id]
    assert line.alert == row.alert
    wh.decide(case_id, approved=True)  # the hall still decides it


def test_a_revoked_seal_escalates_and_approves_nothing(
    timed: tuple[Cluster, MovableClock],
) -> None:
    cluster, clock = timed
    wh_node = cluster.nodes["420100"]
    wh = cluster.hall("420100")
    case_id = _submit(cluster)
    wh.accept(case_id)
    due = _expected(wh_node, case_id)
    wh_node.seals.revoke_seal("wh-approval", reason="superseded", at=due[Card.RED])
    clock.move_to(due[Card.OVERDUE])
    report = wh_node.supervision.run(due[Card.OVERDUE])
    assert report.approved_by_default == 0 and report.escalated == 1
    assert "decided" not in [t for t, _ in _events(wh_node, case_id)]
    alert = _clock_row(wh_node, case_id).alert
    assert alert.startswith(
        "overdue; approval by default not issued: node 420100 has no usable seal for its "
        "results; register another: tongban seal register --profile "
    )
    assert alert.endswith(f"(wh-approval was revoked at {format_time(due[Card.RED])})")
    with wh_node.metadata.read() as s:
        assert s.get(DefaultNoticeRow, (case_id, "420100")) is None


def test_catch_up_after_downtime_issues_each_card_once_and_late(
    timed_any: tuple[Cluster, MovableClock],
) -> None:
    cluster, clock = timed_any
    wh_node = cluster.nodes["420100"]
    wh = cluster.hall("420100")
    case_id = _submit(cluster)
    wh.accept(case_id)
    due = _expected(wh_node, case_id)
    later = due[Card.LEGAL_OVERDUE] + timedelta(days=3)
    clock.move_to(later)
    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda: results.append(wh_node.supervision.run(later)))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Three passes at once: the cards once, and one decision (which ends the leg's cards).
    assert _cards(wh_node, case_id) == [("yellow", True), ("red", True), ("overdue", True)]
    decided = [d for t, d in _events(wh_node, case_id) if t == "decided"]
    assert len(decided) == 1 and decided[0]["late"] is True
    assert decided[0]["due_at"] == format_time(due[Card.OVERDUE])
    assert decided[0]["late_by_seconds"] == int((later - due[Card.OVERDUE]).total_seconds())
    assert sum(r.approved_by_default for r in results) == 1


def test_a_hall_deciding_while_the_job_runs_gives_one_decision(
    timed_any: tuple[Cluster, MovableClock],
) -> None:
    cluster, clock = timed_any
    wh_node = cluster.nodes["420100"]
    wh = cluster.hall("420100")
    cases = [_submit(cluster) for _ in range(4)]
    for c in cases:
        wh.accept(c)
    overdue = max(_expected(wh_node, c)[Card.OVERDUE] for c in cases)
    clock.move_to(overdue)
    outcomes: dict[str, str] = {}

    def hall() -> None:
        for c in cases:
            try:
                wh.decide(c, approved=True)
                outcomes[c] = "hall"
            except RequestRefused as exc:
                assert exc.status is grpc.StatusCode.FAILED_PRECONDITION, exc
                outcomes[c] = "refused"

    t = threading.Thread(target=hall)
    t.start()
    report = wh_node.supervision.run(overdue)
    t.join()
    for c in cases:
        decided = [d for kind, d in _events(wh_node, c) if kind == "decided"]
        assert len(decided) == 1, c
        by_default = bool(decided[0].get("default_on_overdue"))
        assert outcomes[c] == ("refused" if by_default else "hall"), c
    assert report.approved_by_default == sum(1 for v in outcomes.values() if v == "refused")


def test_supplement_window_suspension_and_deemed_acceptance(
    timed: tuple[Cluster, MovableClock],
) -> None:
    cluster, clock = timed
    wh_node = cluster.nodes["420100"]
    wh = cluster.hall("420100")
    late_case = _submit(cluster)
    row = _clock_row(wh_node, late_case)
    from tongban.server.usecases.clocks import supplement_window

    closes, last_day, _ = supplement_window(row, wh_node.calendar.calendar())
    # After the window: the request is refused and nothing changes.
    clock.move_to(closes)
    before = _events(wh_node, late_case)
    with pytest.raises(RequestRefused) as refused:
        wh.request_supplement(late_case, ["营业执照正本"])
    assert refused.value.status is grpc.StatusCode.FAILED_PRECONDITION
    assert refused.value.message == (
        f"supplement-window-closed: a supplement request must be made within 5 working days "
        f"of receipt, by the end of {last_day}; case {late_case} counts as accepted (视为受理)"
    )
    assert _events(wh_node, late_case) == before
    # The pass records the deemed acceptance, as of receipt.
    report = wh_node.supervision.run(closes)
    assert report.deemed_accepted == 1
    accepted = [d for t, d in _events(wh_node, late_case) if t == "accepted"]
    assert accepted == [
        {
            "deemed": True,
            "reason": "未在收件后5个工作日内一次性告知补正，视为受理",
            "accepted_as_of": format_time(row.received_at),
            "due_at": format_time(closes),
            "late": False,
        }
    ]
    assert _clock_row(wh_node, late_case).accepted_at == row.received_at

    # Suspension: needs a reason, stops the clock, and resume restarts it later.
    with pytest.raises(RequestRefused) as refused:
        wh.suspend(late_case, "  ")
    assert (refused.value.status, refused.value.message) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid-request: suspending a case needs a reason (挂起理由)",
    )
    with pytest.raises(RequestRefused) as refused:
        wh.resume(late_case)
    assert refused.value.status is grpc.StatusCode.FAILED_PRECONDITION
    assert refused.value.message == (
        "illegal-transition: leg 420100 is accepted; 'resumed' is not allowed now"
    )
    due_before = _clock_row(wh_node, late_case).due_at
    assert due_before is not None
    wh.suspend(late_case, "等待现场核查")
    suspended = _clock_row(wh_node, late_case)
    assert (suspended.state, suspended.wake_at) == ("paused", None)
    assert wh_node.supervision.run(due_before + timedelta(days=30)).changed == 0
    clock.move_to(closes + timedelta(days=14))
    wh.resume(late_case)
    resumed = _clock_row(wh_node, late_case)
    assert resumed.state == "running" and resumed.due_at is not None
    assert resumed.due_at > due_before + timedelta(days=13)
    assert wh.case(late_case).legs[0].status == "accepted"


def test_deferred_materials_are_checked_and_carded_when_missing(
    timed: tuple[Cluster, MovableClock],
) -> None:
    cluster, clock = timed
    wh_node = cluster.nodes["420100"]
    wh = cluster.hall("420100")
    case_id = _submit(cluster)
    with pytest.raises(RequestRefused) as refused:
        wh.accept(case_id, accepted_with_missing=["营业执照正本"], commitment="我承诺三日内补交")
    assert refused.value.message == (
        "invalid-request: matter HB-ODA-01 does not allow deferring ['营业执照正本'] "
        "(容缺受理 allows ['公司章程修正案'])"
    )
    with pytest.raises(RequestRefused) as refused:
        wh.accept(case_id, accepted_with_missing=["公司章程修正案"])
    assert refused.value.message == (
        "invalid-request: 容缺受理 needs the applicant's commitment to hand in "
        "['公司章程修正案'] (承诺书)"
    )
    assert wh.case(case_id).legs[0].status == "submitted"
    due_day = (clock() + timedelta(days=2)).date().isoformat()
    wh.accept(
        case_id,
        accepted_with_missing=["公司章程修正案"],
        deferred_due=due_day,
        commitment="我承诺三日内补交",
    )
    report = wh_node.supervision.run(clock() + timedelta(days=3, hours=1))
    assert report.cards.get("deferred_missing") == 1
    [card] = [
        d for t, d in _events(wh_node, case_id) if t == "card" and d["card"] == "deferred_missing"
    ]
    assert card["materials"] == ["公司章程修正案"] and card["commitment"] == "我承诺三日内补交"


def test_supervise_command_lists_runs_and_refuses_bad_options(
    timed: tuple[Cluster, MovableClock], capsys: pytest.CaptureFixture[str]
) -> None:
    from tongban.cli.main import main

    cluster, _clock = timed
    wh_node = cluster.nodes["420100"]
    wh = cluster.hall("420100")
    yellow_case, quiet_case = _submit(cluster), _submit(cluster)
    wh.accept(yellow_case)
    due = _expected(wh_node, yellow_case)
    config = str(cluster.fed / "420100" / "node.toml")
    at = format_time(due[Card.YELLOW])

    assert main(["supervise", "--config", config, "--run-now", "--at", at, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    # The case never accepted was deemed accepted as of its receipt, so it is yellow too.
    assert (doc["pass"]["cards"], doc["pass"]["deemed_accepted"]) == ({"yellow": 2}, 1)
    lines = {c["case_id"]: c for c in doc["cases"]}
    assert lines[yellow_case]["card"] == "yellow"
    assert lines[yellow_case]["due_date"] == _expected_due_date(wh_node, yellow_case)
    assert lines[yellow_case]["remaining_working_days"] == 5
    assert lines[quiet_case]["state"] == "running" and lines[quiet_case]["card"] == "yellow"
    # The same moment again changes nothing: the card is held once.
    assert main(["supervise", "--config", config, "--run-now", "--at", at, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pass"]["cards"] == {}
    assert _cards(wh_node, yellow_case) == [("yellow", False)]

    assert main(["supervise", "--config", config, "--card", "yellow", "--at", at, "--json"]) == 0
    listed = {c["case_id"] for c in json.loads(capsys.readouterr().out)["cases"]}
    assert listed == {yellow_case, quiet_case}
    assert main(["supervise", "--config", config, "--card", "red", "--at", at, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cases"] == []
    assert main(["supervise", "--config", config, "--hall", "nobody", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cases"] == []
    assert main(["supervise", "--config", config, "--at", at]) == 0
    table = capsys.readouterr().out
    assert yellow_case[:8] in table and "yellow" in table

    assert main(["supervise", "--config", config, "--card", "green"]) == 2
    assert capsys.readouterr().err == (
        "tongban supervise: --card is yellow, red or overdue, not 'green'\n"
    )
    assert main(["supervise", "--config", config, "--at", "yesterday"]) == 2
    assert capsys.readouterr().err.startswith("tongban supervise: --at: ")


def _expected_due_date(node: RelayNode, case_id: str) -> str:
    row = _clock_row(node, case_id)
    assert row.accepted_at is not None
    sched = schedule(
        row.accepted_at, row.promised_days, row.legal_days, pauses_of(row), node.calendar.calendar()
    )
    assert sched.due_date is not None
    return sched.due_date.isoformat()


def test_a_node_restarted_after_a_deadline_catches_up_on_its_own(
    timed: tuple[Cluster, MovableClock],
) -> None:
    cluster, clock = timed
    wh = cluster.hall("420100")
    case_id = _submit(cluster)
    wh.accept(case_id)
    due = _expected(cluster.nodes["420100"], case_id)
    cluster.stop("420100")
    clock.move_to(due[Card.RED] + timedelta(hours=2))  # down across yellow and red
    cluster.overrides["matters"]["supervision_seconds"] = 3600.0  # the scheduled pass
    node = cluster.start("420100", clock=clock)
    wait_until("the pass at start", lambda: len(_cards(node, case_id)) == 2, timeout=30)
    assert _cards(node, case_id) == [("yellow", True), ("red", True)]
    cards = [d for t, d in _events(node, case_id) if t == "card"]
    assert [c["due_at"] for c in cards] == [
        format_time(due[Card.YELLOW]),
        format_time(due[Card.RED]),
    ]
