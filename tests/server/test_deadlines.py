"""Tests of tongban.server.domain.deadlines and .holidays: the deadline scenario table, the
2026 holidays as ``chinese-calendar`` lists them, and calendar files that are refused."""

from __future__ import annotations

import doctest
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import chinese_calendar
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tongban.keys.clock import CHINA
from tongban.server.domain import deadlines as deadlines_module
from tongban.server.domain.deadlines import (
    Card,
    DayKind,
    Pause,
    WorkCalendar,
    close_of,
    schedule,
    working_days_after,
)
from tongban.server.domain.holidays import (
    CalendarFileInvalid,
    package_calendar,
    parse_calendar_file,
)


def cst(text: str) -> datetime:
    """A time in China, written as it is on the hall's wall clock."""
    return datetime.fromisoformat(text).replace(tzinfo=CHINA)


@pytest.fixture(scope="module")
def calendar() -> WorkCalendar:
    days, years = package_calendar()
    return WorkCalendar({d.day: d.kind for d in days}, frozenset(years))


def test_doctest() -> None:
    assert doctest.testmod(deadlines_module).failed == 0


def test_2026_spring_festival_and_national_day_as_the_package_lists_them(
    calendar: WorkCalendar,
) -> None:
    # 春节 15–23 February with make-up Saturdays 14 and 28 February;
    # 国庆 1–7 October with make-up Sunday 20 September and Saturday 10 October.
    for day in [date(2026, 2, 16) + timedelta(days=i) for i in range(6)]:
        assert not calendar.is_workday(day), day
    for day in (date(2026, 2, 14), date(2026, 2, 28), date(2026, 9, 20), date(2026, 10, 10)):
        assert day.weekday() >= 5 and calendar.is_workday(day), day
    for day in [date(2026, 10, 1) + timedelta(days=i) for i in range(7)]:
        assert not calendar.is_workday(day), day
    assert calendar.knows(date(2026, 12, 31)) and not calendar.knows(date(2027, 1, 1))
    # Every day of the years the package knows agrees with the package's own answer.
    day = date(2004, 1, 1)
    while day <= date(2026, 12, 31):
        assert calendar.is_workday(day) == chinese_calendar.is_workday(day), day
        day += timedelta(days=1)


@dataclass(frozen=True)
class Scenario:
    name: str
    accepted: str  # China time
    promised: int
    legal: int
    pauses: tuple[tuple[str, str | None, str], ...]
    yellow: date | None
    red: date | None
    due: date | None
    legal_due: date | None
    uncertain: bool = False
    paused: bool = False


D = date
SCENARIOS = [
    Scenario(
        "spring festival with make-up Saturdays",
        "2026-02-12T10:00",
        10,
        20,
        (),
        D(2026, 2, 26),
        D(2026, 3, 3),
        D(2026, 3, 4),
        D(2026, 3, 18),
    ),
    Scenario(
        "mid-autumn and national day, make-up Sunday",
        "2026-09-18T16:30",
        5,
        10,
        (),
        D(2026, 9, 22),
        D(2026, 9, 24),
        D(2026, 9, 24),
        D(2026, 10, 9),
    ),
    Scenario(
        "supplement over a make-up Saturday after national day",
        "2026-09-30T09:00",
        3,
        10,
        (("2026-10-09T10:00", "2026-10-12T15:00", "supplement"),),
        D(2026, 10, 12),
        D(2026, 10, 13),
        D(2026, 10, 13),
        D(2026, 10, 22),
    ),
    Scenario(
        "suspension opened and closed within a day costs nothing",
        "2026-03-02T09:00",
        2,
        2,
        (("2026-03-03T10:00", "2026-03-03T16:00", "suspension"),),
        D(2026, 3, 3),
        D(2026, 3, 4),
        D(2026, 3, 4),
        D(2026, 3, 4),
    ),
    Scenario(
        "supplement then suspension, both counted out",
        "2026-03-02T09:00",
        4,
        6,
        (
            ("2026-03-03T09:00", "2026-03-04T09:00", "supplement"),
            ("2026-03-05T11:00", "2026-03-09T08:00", "suspension"),
        ),
        D(2026, 3, 9),
        D(2026, 3, 11),
        D(2026, 3, 11),
        D(2026, 3, 13),
    ),
    Scenario(
        "open suspension: nothing further falls due",
        "2026-03-02T09:00",
        2,
        5,
        (("2026-03-04T10:00", None, "suspension"),),
        D(2026, 3, 3),
        None,
        None,
        None,
        paused=True,
    ),
    Scenario(
        "new year across the year end",
        "2025-12-31T17:00",
        3,
        3,
        (),
        D(2026, 1, 5),
        D(2026, 1, 6),
        D(2026, 1, 6),
        D(2026, 1, 6),
    ),
    Scenario(
        "same-day matter on a make-up Saturday",
        "2026-02-14T10:00",
        0,
        1,
        (),
        D(2026, 2, 14),
        D(2026, 2, 14),
        D(2026, 2, 14),
        D(2026, 2, 24),
    ),
    Scenario(
        "same-day matter accepted on a holiday",
        "2026-02-15T10:00",
        0,
        1,
        (),
        D(2026, 2, 24),
        D(2026, 2, 24),
        D(2026, 2, 24),
        D(2026, 2, 24),
    ),
    Scenario(
        "2027 has no calendar: weekends only, uncertain",
        "2027-09-30T10:00",
        3,
        3,
        (),
        D(2027, 10, 4),
        D(2027, 10, 5),
        D(2027, 10, 5),
        D(2027, 10, 5),
        uncertain=True,
    ),
    Scenario(
        "acceptance late in the evening in China is that day, not the UTC one",
        "2026-03-02T23:30",
        1,
        1,
        (),
        D(2026, 3, 3),
        D(2026, 3, 3),
        D(2026, 3, 3),
        D(2026, 3, 3),
    ),
]


@pytest.mark.parametrize("s", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_deadline_scenarios(s: Scenario, calendar: WorkCalendar) -> None:
    pauses = [Pause(cst(a), cst(b) if b else None, kind) for a, b, kind in s.pauses]
    result = schedule(cst(s.accepted).astimezone(UTC), s.promised, s.legal, pauses, calendar)
    by_card = {c.card: c for c in result.cards}
    expected = {
        Card.YELLOW: s.yellow,
        Card.RED: s.red,
        Card.OVERDUE: s.due,
        Card.LEGAL_OVERDUE: s.legal_due,
    }
    assert {card: (by_card[card].day if card in by_card else None) for card in Card} == expected
    for card in by_card.values():
        assert card.at == close_of(card.day)
        assert card.at.astimezone(CHINA).time().isoformat() == "00:00:00"
    assert result.due_date == s.due and result.legal_due_date == s.legal_due
    assert result.uncertain is s.uncertain
    assert result.paused is s.paused


def test_cards_fall_due_at_the_close_of_their_day(calendar: WorkCalendar) -> None:
    s = schedule(cst("2026-02-12T10:00"), 10, 20, (), calendar)
    yellow_at = cst("2026-02-27T00:00")
    assert [c.card for c in s.due(yellow_at - timedelta(microseconds=1))] == []
    assert [c.card for c in s.due(yellow_at)] == [Card.YELLOW]
    following = s.next_after([Card.YELLOW])
    assert following is not None and following.card is Card.RED
    assert s.next_after(list(Card)) is None


def test_supplement_window_is_five_working_days_from_receipt(calendar: WorkCalendar) -> None:
    closes, day, uncertain = working_days_after(cst("2026-02-12T15:00"), 5, calendar)
    assert (day, closes, uncertain) == (D(2026, 2, 26), cst("2026-02-27T00:00"), False)
    closes, day, uncertain = working_days_after(cst("2026-12-30T15:00"), 5, calendar)
    # 31 Dec, then 2027 counted on weekends only: 1, 4, 5, 6 January.
    assert (day, uncertain) == (D(2027, 1, 6), True)


def test_refused_limits() -> None:
    cal = WorkCalendar()
    with pytest.raises(ValueError, match="0 <= promised <= legal, got 5 and 3"):
        schedule(cst("2026-03-02T09:00"), 5, 3, (), cal)
    with pytest.raises(ValueError, match="0 <= promised <= legal, got -1 and 3"):
        schedule(cst("2026-03-02T09:00"), -1, 3, (), cal)
    with pytest.raises(ValueError, match="a pause cannot end before it starts"):
        Pause(cst("2026-03-03T09:00"), cst("2026-03-02T09:00"), "supplement")


def test_a_calendar_without_working_days_ends_with_an_error() -> None:
    start = date(2026, 1, 1)
    cal = WorkCalendar({start + timedelta(days=i): DayKind.HOLIDAY for i in range(4000)})
    with pytest.raises(ValueError, match="no working day in 3660 days after 2026-01-01"):
        schedule(cst("2026-01-01T09:00"), 1, 1, (), cal)


@given(
    start=st.dates(min_value=date(2004, 1, 1), max_value=date(2026, 8, 31)),
    promised=st.integers(0, 30),
    extra=st.integers(0, 30),
)
def test_due_date_is_the_nth_working_day(start: date, promised: int, extra: int) -> None:
    days, years = package_calendar()
    cal = WorkCalendar({d.day: d.kind for d in days}, frozenset(years))
    s = schedule(
        datetime.combine(start, datetime.min.time(), CHINA), promised, promised + extra, (), cal
    )
    assert s.due_date is not None and s.legal_due_date is not None
    assert s.due_date >= start and chinese_calendar.is_workday(s.due_date)
    counted = sum(
        1
        for i in range(1, (s.due_date - start).days + 1)
        if chinese_calendar.is_workday(start + timedelta(days=i))
    )
    assert counted == (promised if promised else int(start != s.due_date))
    order = [c.at for c in s.cards]
    assert order == sorted(order)


def calendar_file(**doc: object) -> str:
    base: dict[str, object] = {
        "years": [2027],
        "holidays": [{"date": "2027-10-01", "name": "国庆节"}],
        "workdays": [{"date": "2027-10-09", "name": "国庆节调休"}],
    }
    base.update(doc)
    return json.dumps(base, ensure_ascii=False)


def test_calendar_file_parses() -> None:
    days, years = parse_calendar_file(calendar_file())
    assert years == {2027}
    assert [(d.day, d.kind, d.name) for d in days] == [
        (D(2027, 10, 1), DayKind.HOLIDAY, "国庆节"),
        (D(2027, 10, 9), DayKind.WORKDAY, "国庆节调休"),
    ]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"holidays": [{"date": "2027-02-30"}]}, "f: holidays[0]: '2027-02-30' is not a date"),
        ({"holidays": [{"date": "20271001"}]}, "f: holidays[0]: '20271001' is not a date"),
        (
            {"holidays": [{"date": "2027-10-01"}, {"date": "2027-10-01"}]},
            "f: holidays[1]: 2027-10-01 is listed twice",
        ),
        (
            {"workdays": [{"date": "2027-10-01"}]},
            "f: workdays[0]: 2027-10-01 is both a holiday and a working day",
        ),
        (
            {"workdays": [{"date": "2028-01-01"}]},
            "f: workdays[0]: 2028-01-01 lies outside the declared years [2027]",
        ),
        ({"years": []}, 'f: "years" must list the years the file completes'),
        ({"years": [True]}, 'f: "years" must list the years the file completes'),
        ({"extra": 1}, "f: unknown keys ['extra']"),
        ({"holidays": {}}, '"holidays" must be a list'),
        (
            {"holidays": [{"date": "2027-10-01", "why": 1}]},
            'f: holidays[0] must be {"date": "YYYY-MM-DD", "name": …}',
        ),
        (
            {"holidays": [{"date": "2027-10-01", "name": 3}]},
            "f: holidays[0]: the name must be a string",
        ),
    ],
)
def test_calendar_file_refused(doc: dict[str, object], message: str) -> None:
    with pytest.raises(CalendarFileInvalid) as info:
        parse_calendar_file(calendar_file(**doc), source="f")
    assert info.value.message == message


def test_calendar_file_not_json() -> None:
    with pytest.raises(CalendarFileInvalid, match=r"^f is not JSON"):
        parse_calendar_file("{", source="f")
    with pytest.raises(CalendarFileInvalid, match=r"^f: the document must be an object$"):
        parse_calendar_file("[]", source="f")
