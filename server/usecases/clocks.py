"""The case clock at the handling node: when it starts, what stops it, when it next wakes.

One row per leg this node handles (:class:`CaseClockRow`). It is created when the
application arrives (state ``receiving``: the 5-working-day supplement window runs), starts
at acceptance (``running``), stands still while a supplement request or a suspension is open
(their intervals are kept), and ends with the decision or refusal (``closed``; ``defaulted``
when the node approved by default on overdue). ``wake_at`` is the next moment supervision
has work on it; the deadlines themselves are computed by :mod:`tongban.server.domain.deadlines`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from tongban.keys.clock import CHINA, format_time, parse_time
from tongban.server.domain.deadlines import (
    SUPPLEMENT_WINDOW_DAYS,
    Card,
    Pause,
    Schedule,
    WorkCalendar,
    close_of,
    schedule,
    working_days_after,
)
from tongban.server.domain.errors import IllegalTransition, InvalidRequest
from tongban.server.domain.matters import Matter
from tongban.storage.deadline_tables import CaseClockRow, MatterRow
from tongban.storage.sql import CaseRow, LegRow

__all__ = [
    "DEFERRED_CARD",
    "ClockHooks",
    "cards_of",
    "matter_at",
    "new_clock_row",
    "note_supplement_arrived",
    "pauses_of",
    "reschedule",
    "schedule_of",
    "start_clock",
    "supplement_window",
]

_log = logging.getLogger("tongban.server.deadlines")

DEFERRED_CARD = "deferred_missing"
"""The card raised when materials deferred under 容缺受理 are not in by their due date."""


def new_clock_row(case: CaseRow, leg: LegRow, received_at: datetime) -> CaseClockRow:
    """The clock of a leg that just arrived; its limits are fixed at acceptance.

    It wakes no earlier than the supplement window could close (5 calendar days after the
    day of receipt; the exact close is computed with the calendar when it wakes).
    """
    first_close = close_of(received_at.astimezone(CHINA).date() + timedelta(days=5))
    return CaseClockRow(
        case_id=case.case_id,
        leg_node=leg.node_id,
        matter_code=case.matter_code,
        matter_version=0,
        handling_hall=leg.hall_id,
        accepting_node=case.accepting_node,
        accepting_hall=case.accepting_hall,
        promised_days=0,
        legal_days=0,
        exempt=False,
        received_at=received_at,
        accepted_at=None,
        pauses="[]",
        deferred="",
        state="receiving",
        cards="",
        due_at=None,
        legal_due_at=None,
        uncertain=False,
        wake_at=first_close,
        alert="",
    )


def pauses_of(clock: CaseClockRow) -> list[Pause]:
    return [
        Pause(
            parse_time(p["start"]),
            parse_time(p["end"]) if p["end"] else None,
            str(p["kind"]),
        )
        for p in json.loads(clock.pauses)
    ]


def _pause_list(clock: CaseClockRow) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = json.loads(clock.pauses)
    return result


def cards_of(clock: CaseClockRow) -> list[str]:
    return [c for c in clock.cards.split(",") if c]


def supplement_window(clock: CaseClockRow, calendar: WorkCalendar) -> tuple[datetime, date, bool]:
    """When the 5-working-day window for a supplement request closes (see
    :func:`working_days_after`)."""
    return working_days_after(clock.received_at, SUPPLEMENT_WINDOW_DAYS, calendar)


def schedule_of(clock: CaseClockRow, calendar: WorkCalendar) -> Schedule | None:
    """The card times of a started clock (None before acceptance)."""
    if clock.accepted_at is None:
        return None
    return schedule(
        clock.accepted_at, clock.promised_days, clock.legal_days, pauses_of(clock), calendar
    )


def _deferred(clock: CaseClockRow) -> dict[str, Any] | None:
    if not clock.deferred:
        return None
    value: dict[str, Any] = json.loads(clock.deferred)
    return value


def reschedule(clock: CaseClockRow, calendar: WorkCalendar) -> Schedule | None:
    """Recompute due times, the uncertainty flag and ``wake_at`` from the clock's state."""
    if clock.state in ("closed", "defaulted"):
        clock.wake_at = None
        return None
    if clock.state == "receiving":
        closes, _, uncertain = supplement_window(clock, calendar)
        clock.wake_at, clock.uncertain = closes, uncertain
        return None
    sched = schedule_of(clock, calendar)
    wakes: list[datetime] = []
    if sched is not None:
        clock.due_at = next((c.at for c in sched.cards if c.card is Card.OVERDUE), None)
        clock.legal_due_at = next((c.at for c in sched.cards if c.card is Card.LEGAL_OVERDUE), None)
        clock.uncertain = sched.uncertain
        following = sched.next_after(Card(c) for c in cards_of(clock) if c in set(Card))
        if following is not None:
            wakes.append(following.at)
    deferred = _deferred(clock)
    if deferred is not None and DEFERRED_CARD not in cards_of(clock):
        wakes.append(close_of(date.fromisoformat(deferred["due"])))
    clock.wake_at = min(wakes) if wakes else None
    return sched


def matter_at(session: Session, code: str) -> tuple[Matter, int]:
    row = session.get(MatterRow, code)
    if row is None:
        raise IllegalTransition(
            f"matter {code} is not in this node's catalogue; its limits are unknown",
            code="unknown-matter",
        )
    return Matter.from_json(json.loads(row.entry), where=f"stored matter {code}"), row.version


def start_clock(
    session: Session,
    clock: CaseClockRow,
    at: datetime,
    calendar: WorkCalendar,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Start a clock at acceptance ``at`` with the limits of the matter in force now."""
    matter, version = matter_at(session, clock.matter_code)
    clock.matter_version = version
    clock.promised_days, clock.legal_days = matter.promised_days, matter.legal_days
    clock.exempt = matter.exempt
    clock.accepted_at = at
    clock.state = "running"
    missing = list((detail or {}).get("accepted_with_missing", []))
    if missing:
        sched = schedule_of(clock, calendar)
        due = (detail or {}).get("deferred_due") or (
            sched.due_date.isoformat() if sched and sched.due_date else ""
        )
        clock.deferred = json.dumps(  # 容缺受理: what is owed, by when, on whose word
            {
                "materials": missing,
                "due": due,
                "commitment": str((detail or {}).get("commitment", "")),
                "received": False,
            },
            ensure_ascii=False,
        )
    reschedule(clock, calendar)
    if clock.uncertain:
        _log.warning(
            "case %s leg %s: its deadlines fall in a year without calendar data; they are "
            "counted on weekends only and are uncertain",
            clock.case_id,
            clock.leg_node,
        )


class ClockHooks:
    """What a hall's step on a leg does to the leg's clock, checked before the step is
    recorded and applied after, in the same transaction.

    ``calendar`` reads the working-day calendar in that transaction.
    """

    def __init__(self, calendar: Any) -> None:
        self._calendar = calendar

    @staticmethod
    def clock_for(session: Session, case: CaseRow, leg: LegRow) -> CaseClockRow:
        clock = session.get(CaseClockRow, (case.case_id, leg.node_id))
        if clock is None:  # a leg received before clocks were kept
            clock = new_clock_row(case, leg, leg.updated_at)
            session.add(clock)
        return clock

    def before(
        self,
        session: Session,
        case: CaseRow,
        leg: LegRow,
        event: str,
        detail: Mapping[str, Any],
        now: datetime,
    ) -> None:
        """Refuse a step the clock forbids.

        Raises:
            IllegalTransition: the case was approved by default on overdue; a supplement
                request after the 5-working-day window.
            InvalidRequest: deferring a material the matter does not allow to be deferred.
        """
        clock = session.get(CaseClockRow, (case.case_id, leg.node_id))
        if clock is not None and clock.state == "defaulted":
            raise IllegalTransition(
                f"case {case.case_id} leg {leg.node_id} was approved by default on overdue "
                f"({clock.alert}); {event!r} is not allowed now",
                code="approved-by-default",
            )
        if clock is None:
            return
        calendar = self._calendar(session)
        if event == "supplement_requested":
            closes, last_day, _ = supplement_window(clock, calendar)
            if now >= closes:
                raise IllegalTransition(
                    f"a supplement request must be made within {SUPPLEMENT_WINDOW_DAYS} working "
                    f"days of receipt, by the end of {last_day}; case {case.case_id} counts as "
                    "accepted (视为受理)",
                    code="supplement-window-closed",
                )
        if event == "accepted":
            missing = [str(m) for m in detail.get("accepted_with_missing", [])]
            if missing:
                matter, _ = matter_at(session, clock.matter_code)
                refused = [m for m in missing if m not in matter.deferrable]
                if refused:
                    raise InvalidRequest(
                        f"matter {matter.code} does not allow deferring {refused} (容缺受理 "
                        f"allows {list(matter.deferrable) or 'nothing'})"
                    )
                if not str(detail.get("commitment", "")).strip():
                    raise InvalidRequest(
                        f"容缺受理 needs the applicant's commitment to hand in {missing} (承诺书)"
                    )
                due = str(detail.get("deferred_due", ""))
                if due:
                    try:
                        due_day = date.fromisoformat(due)
                    except ValueError:
                        raise InvalidRequest(
                            f"deferred materials' due date {due!r} is not a date (YYYY-MM-DD)"
                        ) from None
                    if len(due) != 10 or due_day <= now.astimezone(CHINA).date():
                        raise InvalidRequest(
                            f"deferred materials' due date {due} must be a date after today"
                        )

    def after(
        self,
        session: Session,
        case: CaseRow,
        leg: LegRow,
        event: str,
        detail: Mapping[str, Any],
        now: datetime,
    ) -> None:
        """Move the clock for a step just recorded at ``now``."""
        clock = self.clock_for(session, case, leg)
        calendar = self._calendar(session)
        pauses = _pause_list(clock)
        if event == "accepted":
            start_clock(session, clock, now, calendar, detail)
            return
        if event in ("refused", "decided"):
            clock.state = "closed"
        elif event in ("supplement_requested", "suspended"):
            kind = "supplement" if event == "supplement_requested" else "suspension"
            pauses.append(
                {
                    "start": format_time(now),
                    "end": None,
                    "kind": kind,
                    "reason": str(detail.get("reason", "")),
                }
            )
            clock.state = "notified" if kind == "supplement" else "paused"
        elif event in ("supplemented", "resumed"):
            for p in pauses:
                if p["end"] is None:
                    p["end"] = format_time(now)
            if event == "resumed":
                clock.state = "running"
        clock.pauses = json.dumps(pauses, ensure_ascii=False)
        reschedule(clock, calendar)


def note_supplement_arrived(session: Session, case_id: str, leg_node: str, at: datetime) -> None:
    """Close the open supplement pause of a leg whose materials arrived at ``at``."""
    clock = session.get(CaseClockRow, (case_id, leg_node))
    if clock is None:
        return
    pauses = _pause_list(clock)
    for p in pauses:
        if p["end"] is None and p["kind"] == "supplement":
            p["end"] = format_time(at)
    clock.pauses = json.dumps(pauses, ensure_ascii=False)
