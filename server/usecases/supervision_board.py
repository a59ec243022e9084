"""What supervision shows: open case legs with their card colour and remaining working days.

Read-only; the pass that changes them is :class:`~tongban.server.usecases.supervision.Supervision`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select

from tongban.keys.clock import CHINA
from tongban.server.domain.deadlines import WorkCalendar
from tongban.server.usecases.calendar_book import CalendarBook
from tongban.server.usecases.clocks import cards_of
from tongban.storage.deadline_tables import CaseClockRow
from tongban.storage.sql import MetadataStore

__all__ = ["CARD_ORDER", "SupervisedLeg", "closing_day", "open_legs", "remaining_working_days"]

_OPEN_STATES = ("receiving", "notified", "running", "paused")
CARD_ORDER = ["", "yellow", "red", "overdue", "legal_overdue"]
"""The cards of a limit, weakest first ("" is none)."""


@dataclass(frozen=True)
class SupervisedLeg:
    """An open leg as supervision lists it."""

    case_id: str
    leg_node: str
    matter_code: str
    handling_hall: str
    accepting_node: str
    accepting_hall: str
    state: str
    card: str
    due_date: date | None
    legal_due_date: date | None
    remaining_working_days: int | None
    uncertain: bool
    alert: str


def closing_day(at: datetime | None) -> date | None:
    """The date whose close (midnight in China) is ``at``."""
    return None if at is None else (at.astimezone(CHINA) - timedelta(microseconds=1)).date()


def remaining_working_days(due: date, today: date, calendar: WorkCalendar) -> int:
    """Working days left until the end of ``due``, today included; negative once past."""
    if today <= due:
        return sum(
            1
            for i in range((due - today).days + 1)
            if calendar.is_workday(today + timedelta(days=i))
        )
    return -sum(
        1 for i in range(1, (today - due).days + 1) if calendar.is_workday(due + timedelta(days=i))
    )


def open_legs(
    metadata: MetadataStore, now: datetime, *, hall: str = "", matter: str = "", card: str = ""
) -> list[SupervisedLeg]:
    """Open legs (of ``hall`` on either side, of ``matter``, showing ``card``), most urgent
    first."""
    today = now.astimezone(CHINA).date()
    with metadata.read() as session:
        calendar = CalendarBook.calendar_in(session)
        stmt = select(CaseClockRow).where(CaseClockRow.state.in_(_OPEN_STATES))
        if hall:
            stmt = stmt.where(
                (CaseClockRow.handling_hall == hall) | (CaseClockRow.accepting_hall == hall)
            )
        if matter:
            stmt = stmt.where(CaseClockRow.matter_code == matter)
        clocks = list(session.scalars(stmt))
    result = []
    for c in clocks:
        colour = _colour(cards_of(c))
        if card and colour != card:
            continue
        due = closing_day(c.due_at) if c.accepted_at is not None else None
        result.append(
            SupervisedLeg(
                case_id=c.case_id,
                leg_node=c.leg_node,
                matter_code=c.matter_code,
                handling_hall=c.handling_hall,
                accepting_node=c.accepting_node,
                accepting_hall=c.accepting_hall,
                state=c.state,
                card=colour,
                due_date=due,
                legal_due_date=closing_day(c.legal_due_at) if c.accepted_at else None,
                remaining_working_days=(
                    remaining_working_days(due, today, calendar) if due else None
                ),
                uncertain=c.uncertain,
                alert=c.alert,
            )
        )
    result.sort(
        key=lambda s: (
            s.remaining_working_days if s.remaining_working_days is not None else 10**6,
            s.case_id,
        )
    )
    return result


def _colour(cards: Iterable[str]) -> str:
    """The strongest promised-limit card issued (legal overdue shows as overdue)."""
    best = max((CARD_ORDER.index(c) for c in cards if c in CARD_ORDER), default=0)
    return "overdue" if best >= 3 else CARD_ORDER[best]
