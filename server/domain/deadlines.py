"""Deadlines in working days: the calendar, the case clock's pauses, and the card times.

Plain date arithmetic, no storage: a :class:`WorkCalendar` says which dates are working
days (holidays and make-up working days, 调休, of the years it knows; weekends only for
the others, flagged as uncertain), and :func:`schedule` turns an acceptance time, a limit
and the clock's pauses into the moments each card falls due.

The counting rules, as a hall counts:

- Dates are dates in China (Asia/Shanghai). The day of acceptance is not counted (期间开始
  之日不计算在内); counting starts with the next working day.
- A working day counts when the clock is running at its close: a day on which a supplement
  request (补正) or a suspension (挂起) is still open at midnight does not count, a pause
  opened and closed within one day costs nothing.
- A limit of N working days is due at the close of the Nth counted day; a card at fraction
  f of it falls due at the close of counted day ⌈f·N⌉ (yellow 50 %, red 90 %, overdue
  100 %). A limit of 0 (即办, same day) is due at the close of the acceptance day, or of the
  first working day after it when that day is not one.
- While a pause is open nothing further falls due; the schedule is computed again when it
  closes.

Example::

    >>> from datetime import date, datetime, UTC
    >>> cal = WorkCalendar({date(2026, 10, 1): DayKind.HOLIDAY}, known_years={2026})
    >>> s = schedule(datetime(2026, 9, 30, 2, tzinfo=UTC), 1, 1, (), cal)
    >>> s.due_date
    datetime.date(2026, 10, 2)
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from tongban.keys.clock import CHINA, require_aware

__all__ = [
    "CARD_FRACTIONS",
    "SUPPLEMENT_WINDOW_DAYS",
    "Card",
    "CardDue",
    "DayKind",
    "Pause",
    "Schedule",
    "WorkCalendar",
    "close_of",
    "schedule",
    "working_days_after",
]

SUPPLEMENT_WINDOW_DAYS = 5
"""Missing materials are notified once within this many working days of receipt, or the
application counts as accepted (视为受理)."""

# Far enough for any legal limit; a calendar that yields no working day in ten years is
# wrong, and the loop must end.
_MAX_SCAN_DAYS = 3660


class DayKind(enum.StrEnum):
    WORKDAY = "workday"
    HOLIDAY = "holiday"


class Card(enum.StrEnum):
    """The supervision cards, in the order they fall due for one limit."""

    YELLOW = "yellow"  # 50 % of the promised limit
    RED = "red"  # 90 % of the promised limit
    OVERDUE = "overdue"  # 100 % of the promised limit
    LEGAL_OVERDUE = "legal_overdue"  # 100 % of the legal limit


CARD_FRACTIONS: Mapping[Card, float] = {Card.YELLOW: 0.5, Card.RED: 0.9, Card.OVERDUE: 1.0}


@dataclass(frozen=True)
class WorkCalendar:
    """Which dates are working days.

    ``days`` overrides the weekday rule (Monday to Friday work) for listed dates:
    a holiday on a weekday, a make-up working day on a weekend. ``known_years`` are the
    years whose overrides are complete; any other year is counted on weekends only and
    every answer that used it is uncertain.
    """

    days: Mapping[date, DayKind] = field(default_factory=dict)
    known_years: frozenset[int] | set[int] = frozenset()

    def is_workday(self, day: date) -> bool:
        """Whether ``day`` is a working day (by the weekday rule where nothing is listed)."""
        kind = self.days.get(day)
        if kind is not None:
            return kind is DayKind.WORKDAY
        return day.weekday() < 5

    def knows(self, day: date) -> bool:
        """Whether the calendar of ``day``'s year is complete (not weekends only)."""
        return day.year in self.known_years


@dataclass(frozen=True)
class Pause:
    """An interval in which the clock stood still; ``end`` None while it is still open."""

    start: datetime
    end: datetime | None
    kind: str  # "supplement" or "suspension"

    def __post_init__(self) -> None:
        require_aware(self.start, "pause start")
        if self.end is not None and require_aware(self.end, "pause end") < self.start:
            raise ValueError("a pause cannot end before it starts")

    def covers(self, at: datetime) -> bool:
        return self.start <= at and (self.end is None or at < self.end)


def close_of(day: date) -> datetime:
    """The moment ``day`` ends in China (midnight at the start of the next day), aware."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=CHINA)


@dataclass(frozen=True)
class CardDue:
    card: Card
    day: date  # the counted working day at whose close the card falls due
    at: datetime


@dataclass(frozen=True)
class Schedule:
    """When a case's limits run out, given its pauses so far.

    ``cards`` holds the cards that will fall due if no new pause opens, in time order;
    while a pause is open it holds only those that fell due before it. ``uncertain`` is set
    when a year without calendar data was counted (weekends only).
    """

    accepted_day: date
    promised_days: int
    legal_days: int
    cards: tuple[CardDue, ...]
    uncertain: bool
    paused: bool

    @property
    def due_date(self) -> date | None:
        """The last day of the promised limit (None while paused before it)."""
        return next((c.day for c in self.cards if c.card is Card.OVERDUE), None)

    @property
    def legal_due_date(self) -> date | None:
        return next((c.day for c in self.cards if c.card is Card.LEGAL_OVERDUE), None)

    def due(self, now: datetime) -> list[CardDue]:
        """The cards that have fallen due by ``now``."""
        return [c for c in self.cards if c.at <= now]

    def next_after(self, issued: Iterable[Card]) -> CardDue | None:
        """The earliest card not yet issued (None when all are, or the clock is paused)."""
        done = set(issued)
        return next((c for c in self.cards if c.card not in done), None)


def _threshold(fraction: float, limit: int) -> int:
    # 0.9 * 10 is 9.000000000000002 in binary floating point; round first.
    return math.ceil(round(fraction * limit, 9))


def schedule(
    accepted_at: datetime,
    promised_days: int,
    legal_days: int,
    pauses: Iterable[Pause],
    calendar: WorkCalendar,
) -> Schedule:
    """The card times of a case accepted at ``accepted_at`` (see the module's rules).

    Raises:
        ValueError: a limit is negative, the promised limit exceeds the legal one, or a
            time is naive.
    """
    if promised_days < 0 or legal_days < promised_days:
        raise ValueError(
            f"limits must satisfy 0 <= promised <= legal, got {promised_days} and {legal_days}"
        )
    accepted_day = require_aware(accepted_at, "acceptance time").astimezone(CHINA).date()
    spans = sorted(pauses, key=lambda p: p.start)
    wanted: dict[int, list[Card]] = {}
    for card, fraction in CARD_FRACTIONS.items():
        wanted.setdefault(_threshold(fraction, promised_days), []).append(card)
    wanted.setdefault(legal_days, []).append(Card.LEGAL_OVERDUE)
    cards: list[CardDue] = []
    uncertain = False
    paused = False
    # Limit 0: the acceptance day itself counts if it is a working day.
    day = accepted_day if 0 in wanted else accepted_day + timedelta(days=1)
    counted = 0
    for _ in range(_MAX_SCAN_DAYS):
        if not wanted:
            break
        close = close_of(day)
        open_pause = next((p for p in spans if p.start < close and p.end is None), None)
        if open_pause is not None:
            paused = True
            break
        if not calendar.knows(day):
            uncertain = True
        if calendar.is_workday(day) and not any(p.covers(close) for p in spans):
            if day > accepted_day:
                counted += 1
            for k in sorted(k for k in wanted if k <= counted):
                cards.extend(CardDue(c, day, close) for c in wanted.pop(k))
        day += timedelta(days=1)
    else:
        raise ValueError(f"no working day in {_MAX_SCAN_DAYS} days after {accepted_day}")
    order = list(Card)
    cards.sort(key=lambda c: (c.at, order.index(c.card)))
    return Schedule(accepted_day, promised_days, legal_days, tuple(cards), uncertain, paused)


def working_days_after(
    start: datetime, days: int, calendar: WorkCalendar
) -> tuple[datetime, date, bool]:
    """The close of the ``days``-th working day after ``start``'s date (in China), that
    date, and whether a year without calendar data was counted.

    Used for the supplement window: a request later than this moment is refused, and a
    case without one is deemed accepted at it.
    """
    day = require_aware(start, "start").astimezone(CHINA).date()
    counted = 0
    uncertain = False
    for _ in range(_MAX_SCAN_DAYS):
        if counted >= days:
            return close_of(day), day, uncertain
        day += timedelta(days=1)
        uncertain = uncertain or not calendar.knows(day)
        if calendar.is_workday(day):
            counted += 1
    raise ValueError(f"no working day in {_MAX_SCAN_DAYS} days after {start}")
