"""Supervision of deadlines: cards, deemed acceptance and approval by default on overdue.

A pass (:meth:`Supervision.run`) takes ``now`` and reads only the clocks whose ``wake_at``
has come (an index on that column), so its cost follows the number of cases that change,
not the number open. For each it issues, once, what fell due by ``now``:

- 视为受理: no supplement request within 5 working days of receipt; the leg is accepted as
  of its receipt, by the node, as an event.
- Cards (yellow 50 %, red 90 %, overdue 100 % of the promised limit; legal overdue; a
  deferred material missing at its due date): each a signed event in the leg's chain,
  sent to the accepting node like every event, and a row whose key (case, leg, card)
  admits it once.
- 超时默认: a non-exempt leg still undecided at its overdue card is approved by the node:
  the matter's notice is rendered, sealed (PAdES, visible seal and QR, e-certificate id),
  the decision recorded, and the notice returned as a result packet. An exempt matter, or a
  seal that cannot be used, escalates instead: the overdue card and an alert for admins,
  never an unsealed approval.

Everything on one leg happens in one transaction holding the leg's clock row, so a pass
racing another, or a hall deciding at the same moment, yields one outcome: the loser sees
the leg already decided and gets FAILED_PRECONDITION. Events of a late pass (the node was
down) carry the time they fell due and say they are late.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tongban.keys.clock import CHINA, format_time
from tongban.keys.keyring import NodeKeyRing
from tongban.server.domain.deadlines import Card, CardDue, WorkCalendar, close_of
from tongban.server.domain.errors import NotFound, RelayError
from tongban.server.domain.matters import Matter
from tongban.server.usecases.calendar_book import CalendarBook
from tongban.server.usecases.clocks import (
    DEFERRED_CARD,
    cards_of,
    matter_at,
    reschedule,
    start_clock,
    supplement_window,
)
from tongban.server.usecases.events import append_local_event, enqueue, outbox_items
from tongban.server.usecases.messages import (
    FileBegin,
    FileEnd,
    OutboxItem,
    SubmitHeader,
    SubmitPart,
)
from tongban.server.usecases.notice_pdf import fill_notice, render_notice_pdf
from tongban.server.usecases.runtime import Clock, DirectoryHolder
from tongban.server.usecases.seals import SealOffice
from tongban.server.usecases.supervision_board import (
    CARD_ORDER,
    SupervisedLeg,
    closing_day,
    open_legs,
)
from tongban.storage.deadline_tables import CaseCardRow, CaseClockRow, DefaultNoticeRow
from tongban.storage.sql import CaseRow, LegRow, MetadataStore, OutboxRow

__all__ = ["PassReport", "Supervision"]

_log = logging.getLogger("tongban.server.supervision")
_ENDED = frozenset({"refused", "decided", "result_returned", "issued", "delivered"})
_NOTICE_NAMESPACE = uuid.UUID("6f2d0c52-6a43-4c1e-9a55-1d7b3c1f0e11")


@dataclass
class PassReport:
    """What one supervision pass did."""

    woken: int = 0
    cards: dict[str, int] = field(default_factory=dict)
    deemed_accepted: int = 0
    approved_by_default: int = 0
    escalated: int = 0
    alerts: list[str] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return sum(self.cards.values()) + self.deemed_accepted

    def add(self, other: PassReport) -> None:
        """Count what ``other`` (one leg's part of the pass) did."""
        for card, n in other.cards.items():
            self.cards[card] = self.cards.get(card, 0) + n
        self.deemed_accepted += other.deemed_accepted
        self.approved_by_default += other.approved_by_default
        self.escalated += other.escalated
        self.alerts.extend(other.alerts)


class Supervision:
    """Cards, deemed acceptance and default approval on the node's clock.

    Dependencies: the metadata store; the calendar book; the node's relay keys and the
    directory (the events it records are signed like a hall's); the seal office that seals
    default-approval notices; ``return_result``, which submits a result packet for a hall
    (the node's own submission path); ``offer_delivery`` for new outbox items; the clock.
    """

    def __init__(
        self,
        *,
        node_id: str,
        metadata: MetadataStore,
        calendar: CalendarBook,
        keys: NodeKeyRing,
        directory: DirectoryHolder,
        seals: SealOffice,
        return_result: Callable[[str, Iterator[SubmitPart]], object] | None,
        offer_delivery: Callable[[list[OutboxItem]], None],
        clock: Clock,
        late_after: timedelta = timedelta(hours=1),
        batch: int = 200,
    ) -> None:
        self.node_id = node_id
        self.metadata = metadata
        self.calendar_book = calendar
        self.keys = keys
        self.directory = directory
        self.seals = seals
        self.return_result = return_result
        self.offer_delivery = offer_delivery
        self.clock = clock
        self.late_after = late_after
        self.batch = batch

    # ---- the pass ---------------------------------------------------------------------

    def run(self, now: datetime | None = None) -> PassReport:
        """Issue everything that fell due by ``now`` (default: the node's clock), once."""
        now = now or self.clock()
        report = PassReport()
        with self.metadata.read() as session:
            calendar = CalendarBook.calendar_in(session)
            due = session.execute(
                select(CaseClockRow.case_id, CaseClockRow.leg_node)
                .where(CaseClockRow.wake_at <= now)
                .order_by(CaseClockRow.wake_at)
            ).all()
            unsent = list(
                session.scalars(
                    select(DefaultNoticeRow).where(DefaultNoticeRow.result_packet == "")
                )
            )
        for first in range(0, len(due), self.batch):
            self._wake_batch(due[first : first + self.batch], now, calendar, report)
        for notice in unsent:
            self._send_notice(notice.case_id, notice.leg_node, report)
        return report

    def _lock(self, session: Session, case_id: str, leg_node: str) -> CaseClockRow | None:
        stmt = select(CaseClockRow).where(
            CaseClockRow.case_id == case_id, CaseClockRow.leg_node == leg_node
        )
        if self.metadata.dialect == "postgresql":
            stmt = stmt.with_for_update()
        return session.scalars(stmt).one_or_none()

    def _wake_batch(
        self,
        keys: Sequence[Any],
        now: datetime,
        calendar: WorkCalendar,
        report: PassReport,
    ) -> None:
        """Wake a batch of legs in one transaction (one commit, one sync to disk), each in a
        savepoint of its own so that one leg's failure stays with it."""
        rows: list[OutboxRow] = []
        defaulted: list[tuple[str, str]] = []
        with self.metadata.transaction() as session:
            for case_id, leg_node in keys:
                report.woken += 1
                part = PassReport()
                try:
                    with session.begin_nested():
                        found, state = self._wake(session, case_id, leg_node, now, calendar, part)
                except Exception as exc:  # one leg's failure must not stop the others
                    message = exc.message if isinstance(exc, RelayError) else repr(exc)
                    report.alerts.append(f"case {case_id} leg {leg_node}: {message}")
                    _log.error("supervision of case %s leg %s failed: %s", case_id, leg_node, exc)
                    continue
                report.add(part)
                rows.extend(found)
                if state == "defaulted":
                    defaulted.append((case_id, leg_node))
            items = outbox_items(session, rows) if rows else []
        if items:
            self.offer_delivery(items)
        for case_id, leg_node in defaulted:
            self._send_notice(case_id, leg_node, report)

    def _wake(
        self,
        session: Session,
        case_id: str,
        leg_node: str,
        now: datetime,
        calendar: WorkCalendar,
        report: PassReport,
    ) -> tuple[list[OutboxRow], str]:
        rows: list[OutboxRow] = []
        # The leg first, then its clock: the order a hall's step takes them in too.
        case = session.get(CaseRow, case_id)
        leg = session.get(LegRow, (case_id, leg_node))
        if case is None or leg is None:
            raise NotFound(f"case {case_id} leg {leg_node} has a clock but no leg")
        if self.metadata.dialect == "postgresql":
            session.refresh(leg, with_for_update=True)
        clock = self._lock(session, case_id, leg_node)
        if clock is None or clock.wake_at is None or clock.wake_at > now:
            return rows, ""  # another pass got here first
        if leg.status in _ENDED:
            clock.state = "closed"
            reschedule(clock, calendar)
            return rows, clock.state
        if clock.state == "receiving":
            closes, _, _ = supplement_window(clock, calendar)
            if closes > now or leg.status != "submitted":
                if leg.status != "submitted":
                    clock.state = "notified"
                reschedule(clock, calendar)
                return rows, clock.state
            rows.append(self._deemed_acceptance(session, case, leg, clock, closes, now))
            start_clock(session, clock, clock.received_at, calendar)
            report.deemed_accepted += 1
        rows.extend(self._cards(session, case, leg, clock, now, calendar, report))
        return rows, clock.state

    def _event(
        self,
        session: Session,
        case: CaseRow,
        leg: LegRow,
        event: str,
        detail: dict[str, Any],
        now: datetime,
    ) -> OutboxRow:
        env = append_local_event(session, self, case, leg, event, "", detail, at=now)
        return enqueue(session, self, case.accepting_node, case.case_id, "event", env.digest)

    def _lateness(self, due_at: datetime, now: datetime) -> dict[str, Any]:
        late = now - due_at > self.late_after
        detail: dict[str, Any] = {"due_at": format_time(due_at), "late": late}
        if late:
            detail["late_by_seconds"] = int((now - due_at).total_seconds())
        return detail

    def _deemed_acceptance(
        self,
        session: Session,
        case: CaseRow,
        leg: LegRow,
        clock: CaseClockRow,
        closes: datetime,
        now: datetime,
    ) -> OutboxRow:
        detail = {
            "deemed": True,
            "reason": "未在收件后5个工作日内一次性告知补正，视为受理",
            "accepted_as_of": format_time(clock.received_at),
            **self._lateness(closes, now),
        }
        return self._event(session, case, leg, "accepted", detail, now)

    def _cards(
        self,
        session: Session,
        case: CaseRow,
        leg: LegRow,
        clock: CaseClockRow,
        now: datetime,
        calendar: WorkCalendar,
        report: PassReport,
    ) -> list[OutboxRow]:
        rows: list[OutboxRow] = []
        sched = reschedule(clock, calendar)
        issued = set(cards_of(clock))
        due: list[tuple[str, datetime, dict[str, Any]]] = []
        if sched is not None:
            for c in sched.due(now):
                if c.card.value not in issued:
                    due.append((c.card.value, c.at, self._card_detail(clock, c, sched.uncertain)))
        deferred = json.loads(clock.deferred) if clock.deferred else None
        if deferred and DEFERRED_CARD not in issued:
            at = close_of(date.fromisoformat(deferred["due"]))
            if at <= now:
                due.append(
                    (
                        DEFERRED_CARD,
                        at,
                        {
                            "card": DEFERRED_CARD,
                            "materials": deferred["materials"],
                            "commitment": deferred["commitment"],
                            "due_date": deferred["due"],
                        },
                    )
                )
        for card, at, detail in sorted(due, key=lambda d: d[1]):
            detail.update(self._lateness(at, now))
            row = self._event(session, case, leg, "card", detail, now)
            rows.append(row)
            session.add(
                CaseCardRow(
                    case_id=case.case_id,
                    leg_node=leg.node_id,
                    card=card,
                    due_at=at,
                    issued_at=now,
                    late=bool(detail["late"]),
                    event_hash=row.ref,
                )
            )
            issued.add(card)
            clock.cards = ",".join(c for c in [*CARD_ORDER[1:], DEFERRED_CARD] if c in issued)
            report.cards[card] = report.cards.get(card, 0) + 1
            if card == Card.OVERDUE.value:
                rows.extend(self._overdue(session, case, leg, clock, at, now, report))
                if clock.state == "defaulted":
                    break  # decided: the leg takes no further cards
        if clock.state != "defaulted":
            reschedule(clock, calendar)
        return rows

    @staticmethod
    def _card_detail(clock: CaseClockRow, c: CardDue, uncertain: bool) -> dict[str, Any]:
        legal = c.card is Card.LEGAL_OVERDUE
        return {
            "card": c.card.value,
            "limit": "legal" if legal else "promised",
            "limit_days": clock.legal_days if legal else clock.promised_days,
            "due_date": c.day.isoformat(),
            "uncertain": uncertain,
        }

    def _overdue(
        self,
        session: Session,
        case: CaseRow,
        leg: LegRow,
        clock: CaseClockRow,
        due_at: datetime,
        now: datetime,
        report: PassReport,
    ) -> list[OutboxRow]:
        where = f"case {case.case_id} leg {leg.node_id} ({clock.matter_code})"
        if clock.exempt:
            clock.alert = "overdue; the matter is exempt from approval by default: escalated"
            report.escalated += 1
            _log.warning("%s is overdue and exempt from approval by default: escalated", where)
            return []
        if leg.status != "accepted":
            return []
        try:
            with session.begin_nested():
                row = self._approve_by_default(session, case, leg, clock, due_at, now)
            report.approved_by_default += 1
            return [row]
        except Exception as exc:  # any failure: escalate, never an unsealed approval
            message = exc.message if isinstance(exc, RelayError) else str(exc)
            clock.alert = f"overdue; approval by default not issued: {message}"
            report.escalated += 1
            report.alerts.append(f"{where}: {clock.alert}")
            _log.error("%s: %s", where, clock.alert)
            return []

    def _approve_by_default(
        self,
        session: Session,
        case: CaseRow,
        leg: LegRow,
        clock: CaseClockRow,
        due_at: datetime,
        now: datetime,
    ) -> OutboxRow:
        matter, _ = matter_at(session, clock.matter_code)
        seal_id = self.seals.result_seal(session)  # NoUsableSeal: escalate, approve nothing
        pdf = render_notice_pdf(fill_notice(matter, _notice_fields(case, leg, clock, matter, now)))
        sealed = self.seals.seal_pdf_in(
            session, seal_id=seal_id, document_name="默认许可决定书.pdf", pdf=pdf, at=now
        )
        detail = {
            "decision": "approved",
            "default_on_overdue": True,
            "note": "超时默认许可",
            "ecert": sealed.identifier,
            "seal_id": sealed.seal_id,
            "notice_sha256": hashlib.sha256(sealed.signature).hexdigest(),
            **self._lateness(due_at, now),
        }
        row = self._event(session, case, leg, "decided", detail, now)
        session.add(
            DefaultNoticeRow(
                case_id=case.case_id,
                leg_node=leg.node_id,
                ecert_id=sealed.identifier,
                pdf=sealed.signature,
                decided_at=now,
                result_packet="",
            )
        )
        clock.state = "defaulted"
        clock.alert = f"approved by default on overdue at {format_time(now)} ({sealed.identifier})"
        clock.wake_at = None
        return row

    def _send_notice(self, case_id: str, leg_node: str, report: PassReport) -> None:
        """Return a default-approval notice to the accepting hall as a result packet."""
        if self.return_result is None:
            return
        with self.metadata.read() as session:
            notice = session.get(DefaultNoticeRow, (case_id, leg_node))
            case = session.get(CaseRow, case_id)
            leg = session.get(LegRow, (case_id, leg_node))
            if notice is None or notice.result_packet or case is None or leg is None:
                return
            pdf, hall, mode = notice.pdf, leg.hall_id, case.mode
            matter_code, matter_name = case.matter_code, case.matter_name
        packet_id = str(uuid.uuid5(_NOTICE_NAMESPACE, f"{case_id}/{leg_node}"))
        header = SubmitHeader(
            packet_id=packet_id,
            kind="result",
            mode=mode,
            matter_code=matter_code,
            matter_name=matter_name,
            recipients=(),
            applicant=None,
            form_json=b"{}",
            case_id=case_id,
        )
        parts: list[SubmitPart] = [
            header,
            FileBegin("默认许可决定书.pdf", "application/pdf", len(pdf)),
            pdf,
            FileEnd(hashlib.sha256(pdf).hexdigest()),
        ]
        try:
            self.return_result(hall, iter(parts))
        except RelayError as exc:
            report.alerts.append(f"case {case_id}: the notice is not yet returned: {exc.message}")
            _log.error("case %s: returning the default-approval notice failed: %s", case_id, exc)
            return
        with self.metadata.transaction() as session:
            row = session.get(DefaultNoticeRow, (case_id, leg_node))
            if row is not None:
                row.result_packet = packet_id

    # ---- listing ----------------------------------------------------------------------

    def listing(
        self,
        now: datetime | None = None,
        *,
        hall: str = "",
        matter: str = "",
        card: str = "",
    ) -> list[SupervisedLeg]:
        """Open legs with their card colour and remaining working days, most urgent first
        (see :func:`~tongban.server.usecases.supervision_board.open_legs`)."""
        return open_legs(self.metadata, now or self.clock(), hall=hall, matter=matter, card=card)


def _notice_fields(
    case: CaseRow, leg: LegRow, clock: CaseClockRow, matter: Matter, now: datetime
) -> dict[str, str]:
    def day(at: datetime | None) -> str:
        if at is None:
            return ""
        d = at.astimezone(CHINA).date()
        return f"{d.year}年{d.month}月{d.day}日"

    due = closing_day(clock.due_at)
    return {
        "case_id": case.case_id,
        "matter_code": matter.code,
        "matter_name": matter.name,
        "department": leg.department or matter.lead,
        "handling_node": leg.node_id,
        "accepting_node": case.accepting_node,
        "accepting_hall": case.accepting_hall,
        "received_date": day(clock.received_at),
        "accepted_date": day(clock.accepted_at),
        "due_date": f"{due.year}年{due.month}月{due.day}日" if due else "",
        "decided_date": day(now),
        "promised_days": str(clock.promised_days),
        "legal_days": str(clock.legal_days),
    }
