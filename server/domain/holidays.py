"""Holidays and make-up working days (调休): the seed from ``chinese-calendar`` and the
admin's calendar files.

A calendar file declares the years it completes and lists their holidays on working days
and their working days on weekends::

    {"years": [2027],
     "holidays": [{"date": "2027-10-01", "name": "国庆节"}],
     "workdays": [{"date": "2027-10-09", "name": "国庆节调休"}]}

A year is *known* (its deadlines exact) once it is seeded from the package or imported
from such a file; setting a single day does not make a year known.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

from tongban.server.domain.deadlines import DayKind

__all__ = ["CalendarDay", "CalendarFileInvalid", "package_calendar", "parse_calendar_file"]


class CalendarFileInvalid(Exception):
    """A calendar file cannot be used; nothing of it is applied."""

    code = "calendar-invalid"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class CalendarDay:
    day: date
    kind: DayKind
    name: str


def package_calendar() -> tuple[list[CalendarDay], set[int]]:
    """The days the ``chinese-calendar`` package lists that differ from the weekday rule,
    and the years it knows.

    The package lists every holiday (weekends among them) and every make-up working day;
    only the ones that change a day's kind are kept, with the package's English names.
    """
    from chinese_calendar import constants

    days: list[CalendarDay] = []
    for day, name in constants.holidays.items():
        if day.weekday() < 5:
            days.append(CalendarDay(day, DayKind.HOLIDAY, str(name)))
    for day, name in constants.workdays.items():
        if day.weekday() >= 5:
            days.append(CalendarDay(day, DayKind.WORKDAY, str(name)))
    years = {d.year for d in constants.holidays}
    days.sort(key=lambda d: d.day)
    return days, years


def _entries(document: dict[str, Any], key: str) -> list[Any]:
    value = document.get(key, [])
    if not isinstance(value, list):
        raise CalendarFileInvalid(f'"{key}" must be a list')
    return value


def parse_calendar_file(
    text: str | bytes, *, source: str = "calendar file"
) -> tuple[list[CalendarDay], set[int]]:
    """The days and the completed years of a calendar file (see the module).

    Raises:
        CalendarFileInvalid: not JSON, unknown keys, a date that does not exist or lies
            outside the declared years, a date listed twice, or one both holiday and
            working day; the message names ``source`` and the date.
    """
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise CalendarFileInvalid(f"{source} is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise CalendarFileInvalid(f"{source}: the document must be an object")
    unknown = sorted(set(document) - {"years", "holidays", "workdays", "about"})
    if unknown:
        raise CalendarFileInvalid(f"{source}: unknown keys {unknown}")
    years = document.get("years")
    if (
        not isinstance(years, list)
        or not years
        or not all(
            isinstance(y, int) and not isinstance(y, bool) and 1900 < y < 2200 for y in years
        )
    ):
        raise CalendarFileInvalid(f'{source}: "years" must list the years the file completes')
    seen: dict[date, DayKind] = {}
    days: list[CalendarDay] = []
    for kind, key in ((DayKind.HOLIDAY, "holidays"), (DayKind.WORKDAY, "workdays")):
        for index, entry in enumerate(_entries(document, key)):
            where = f"{source}: {key}[{index}]"
            if (
                not isinstance(entry, dict)
                or set(entry) - {"date", "name"}
                or ("date" in entry and not isinstance(entry["date"], str))
            ):
                raise CalendarFileInvalid(f'{where} must be {{"date": "YYYY-MM-DD", "name": …}}')
            text_date = entry.get("date", "")
            try:
                day = date.fromisoformat(text_date)
            except ValueError:
                raise CalendarFileInvalid(f"{where}: {text_date!r} is not a date") from None
            if len(text_date) != 10:
                raise CalendarFileInvalid(f"{where}: {text_date!r} is not a date")
            if day.year not in years:
                raise CalendarFileInvalid(
                    f"{where}: {day} lies outside the declared years {sorted(years)}"
                )
            if day in seen:
                if seen[day] is kind:
                    raise CalendarFileInvalid(f"{where}: {day} is listed twice")
                raise CalendarFileInvalid(f"{where}: {day} is both a holiday and a working day")
            name = entry.get("name", "")
            if not isinstance(name, str):
                raise CalendarFileInvalid(f"{where}: the name must be a string")
            seen[day] = kind
            days.append(CalendarDay(day, kind, name))
    days.sort(key=lambda d: d.day)
    return days, set(years)
