"""The node's working-day calendar: seeded from ``chinese-calendar``, edited by admins.

Every change resets the wake time of the running case clocks, so the next supervision
pass recomputes their deadlines on the new calendar.
"""

from __future__ import annotations

import logging
from datetime import date, datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from tongban.server.domain.deadlines import DayKind, WorkCalendar
from tongban.server.domain.errors import InvalidRequest
from tongban.server.domain.holidays import (
    CalendarDay,
    CalendarFileInvalid,
    package_calendar,
    parse_calendar_file,
)
from tongban.server.usecases.runtime import Clock
from tongban.storage.deadline_tables import CalendarDayRow, CalendarYearRow, CaseClockRow
from tongban.storage.sql import MetadataStore

__all__ = ["CalendarBook", "YearView"]

_log = logging.getLogger("tongban.server.calendar")
PACKAGE_SOURCE = "chinese-calendar"


class YearView:
    """One year of the calendar as stored: where it came from (None: not known) and its days."""

    def __init__(self, year: int, source: str | None, days: list[CalendarDay]) -> None:
        self.year = year
        self.source = source
        self.days = days

    @property
    def known(self) -> bool:
        return self.source is not None


def _rows_of(days: list[CalendarDay], source: str, now: datetime) -> list[CalendarDayRow]:
    return [
        CalendarDayRow(day=d.day, kind=d.kind.value, name=d.name, source=source, changed_at=now)
        for d in days
    ]


def _wake_running_clocks(session: Session, now: datetime) -> None:
    session.execute(update(CaseClockRow).where(CaseClockRow.state == "running").values(wake_at=now))


class CalendarBook:
    """The calendar table. Dependencies: the metadata store and the clock."""

    def __init__(self, *, metadata: MetadataStore, clock: Clock) -> None:
        self.metadata = metadata
        self.clock = clock

    def seed_from_package(self) -> list[int]:
        """Add the years ``chinese-calendar`` knows and the table does not; never overwrite
        a year an admin imported. Returns the years added, and logs a warning for this year
        and the next when neither source knows them."""
        days, years = package_calendar()
        now = self.clock()
        with self.metadata.transaction() as session:
            have = set(session.scalars(select(CalendarYearRow.year)))
            new = sorted(years - have)
            if new:
                edited = set(
                    session.scalars(
                        select(CalendarDayRow.day).where(CalendarDayRow.source != PACKAGE_SOURCE)
                    )
                )
                session.add_all(
                    _rows_of(
                        [d for d in days if d.day.year in new and d.day not in edited],
                        PACKAGE_SOURCE,
                        now,
                    )
                )
                session.add_all(
                    CalendarYearRow(year=y, source=PACKAGE_SOURCE, changed_at=now) for y in new
                )
                _wake_running_clocks(session, now)
            known = have | set(new)
        this_year = now.year
        for year in (this_year, this_year + 1):
            if year not in known:
                _log.warning(
                    "the calendar of %d is not known: deadlines in it are counted on weekends "
                    "only and shown as uncertain; import it with `tongban calendar import`",
                    year,
                )
        return new

    def calendar(self) -> WorkCalendar:
        """The calendar as it is stored now."""
        with self.metadata.read() as session:
            return self.calendar_in(session)

    @staticmethod
    def calendar_in(session: Session) -> WorkCalendar:
        days = {r.day: DayKind(r.kind) for r in session.scalars(select(CalendarDayRow))}
        years = frozenset(session.scalars(select(CalendarYearRow.year)))
        return WorkCalendar(days, years)

    def show(self, year: int) -> YearView:
        """The stored days of ``year`` and whether the year is known."""
        with self.metadata.read() as session:
            row = session.get(CalendarYearRow, year)
            rows = session.scalars(
                select(CalendarDayRow)
                .where(
                    CalendarDayRow.day >= date(year, 1, 1), CalendarDayRow.day <= date(year, 12, 31)
                )
                .order_by(CalendarDayRow.day)
            )
            days = [CalendarDay(r.day, DayKind(r.kind), r.name) for r in rows]
        return YearView(year, row.source if row else None, days)

    def import_file(self, text: bytes, *, source: str, actor: str) -> list[int]:
        """Replace the years a calendar file declares with its days; the years become known.

        Raises:
            InvalidRequest: the file is refused (see :func:`parse_calendar_file`); nothing
                is changed.
        """
        try:
            days, years = parse_calendar_file(text, source=source)
        except CalendarFileInvalid as exc:
            raise InvalidRequest(exc.message, code=exc.code) from None
        now = self.clock()
        origin = f"import by {actor}"[:64]
        with self.metadata.transaction() as session:
            for year in years:
                session.execute(
                    delete(CalendarDayRow).where(
                        CalendarDayRow.day >= date(year, 1, 1),
                        CalendarDayRow.day <= date(year, 12, 31),
                    )
                )
                row = session.get(CalendarYearRow, year)
                if row is None:
                    session.add(CalendarYearRow(year=year, source=origin, changed_at=now))
                else:
                    row.source, row.changed_at = origin, now
            session.add_all(_rows_of(days, origin, now))
            _wake_running_clocks(session, now)
        _log.info("calendar years %s imported by %s from %s", sorted(years), actor, source)
        return sorted(years)

    def set_day(self, day: date, kind: str, *, name: str, actor: str) -> CalendarDay:
        """Make ``day`` a holiday or a working day. The year stays as known (or not) as it was.

        Raises:
            InvalidRequest: ``kind`` is neither ``workday`` nor ``holiday``.
        """
        try:
            parsed = DayKind(kind)
        except ValueError:
            raise InvalidRequest(
                f"a day is 'workday' or 'holiday', not {kind!r}", code="calendar-invalid"
            ) from None
        now = self.clock()
        origin = f"set by {actor}"[:64]
        with self.metadata.transaction() as session:
            row = session.get(CalendarDayRow, day)
            if row is None:
                session.add(
                    CalendarDayRow(
                        day=day, kind=parsed.value, name=name, source=origin, changed_at=now
                    )
                )
            else:
                row.kind, row.name, row.source, row.changed_at = parsed.value, name, origin, now
            _wake_running_clocks(session, now)
        _log.info("calendar day %s set to %s by %s", day, parsed.value, actor)
        return CalendarDay(day, parsed, name)
