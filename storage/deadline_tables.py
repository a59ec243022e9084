"""Tables of deadlines: the working-day calendar, the matter catalogue with its versions,
each case leg's clock, and the supervision cards issued.

Kept apart from :mod:`tongban.storage.sql` (which is at its size limit) but on the same
declarative base, so one Alembic history (revision 0003) owns them.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tongban.storage.sql import Base, UTCDateTime

__all__ = [
    "CalendarDayRow",
    "CalendarYearRow",
    "CaseCardRow",
    "CaseClockRow",
    "DefaultNoticeRow",
    "MatterRow",
    "MatterVersionRow",
]


class CalendarDayRow(Base):
    """A date whose kind differs from the weekday rule: a holiday or a make-up working day."""

    __tablename__ = "calendar_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(128), default="")
    source: Mapped[str] = mapped_column(String(64))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CalendarYearRow(Base):
    """A year whose holidays and make-up days are complete, and where they came from."""

    __tablename__ = "calendar_years"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    source: Mapped[str] = mapped_column(String(64))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MatterRow(Base):
    """A matter of the node's catalogue, as its latest version (the entry as JSON)."""

    __tablename__ = "matters"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    entry: Mapped[bytes] = mapped_column(LargeBinary)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    changed_by: Mapped[str] = mapped_column(String(128))


class MatterVersionRow(Base):
    """Every version a matter has had, with who changed it and when."""

    __tablename__ = "matter_versions"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    entry: Mapped[bytes] = mapped_column(LargeBinary)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    changed_by: Mapped[str] = mapped_column(String(128))


class CaseClockRow(Base):
    """The clock of one case leg at its handling node.

    ``wake_at`` is the earliest moment something is due on it (a card, the end of the
    supplement window, a deferred material); the supervision pass reads only the rows whose
    ``wake_at`` has come, through its index, never every open case.
    """

    __tablename__ = "case_clocks"
    __table_args__ = (Index("ix_case_clocks_wake_at", "wake_at"),)

    case_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    leg_node: Mapped[str] = mapped_column(String(16), primary_key=True)
    matter_code: Mapped[str] = mapped_column(String(64))
    matter_version: Mapped[int] = mapped_column(Integer)
    handling_hall: Mapped[str] = mapped_column(String(128))
    accepting_node: Mapped[str] = mapped_column(String(16))
    accepting_hall: Mapped[str] = mapped_column(String(128))
    promised_days: Mapped[int] = mapped_column(Integer)
    legal_days: Mapped[int] = mapped_column(Integer)
    exempt: Mapped[bool] = mapped_column(Boolean)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # JSON list of {"start", "end", "kind", "reason"}; the last may be open (end null).
    pauses: Mapped[str] = mapped_column(Text, default="[]")
    # JSON: deferred materials under 容缺受理 and their due date, if any.
    deferred: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(16))  # receiving, running, paused, closed
    cards: Mapped[str] = mapped_column(String(128), default="")  # issued, comma-separated
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    legal_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    uncertain: Mapped[bool] = mapped_column(Boolean, default=False)
    wake_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    alert: Mapped[str] = mapped_column(Text, default="")


class CaseCardRow(Base):
    """A card issued on a case leg: at most one of each kind (the primary key says so)."""

    __tablename__ = "case_cards"

    case_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    leg_node: Mapped[str] = mapped_column(String(16), primary_key=True)
    card: Mapped[str] = mapped_column(String(24), primary_key=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    late: Mapped[bool] = mapped_column(Boolean)
    event_hash: Mapped[str] = mapped_column(String(64), default="")


class DefaultNoticeRow(Base):
    """The sealed default-approval notice of a leg the node approved on overdue, and the
    result packet that returned it (empty until it is sent)."""

    __tablename__ = "default_notices"

    case_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    leg_node: Mapped[str] = mapped_column(String(16), primary_key=True)
    ecert_id: Mapped[str] = mapped_column(String(128))
    pdf: Mapped[bytes] = mapped_column(LargeBinary)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())
    result_packet: Mapped[str] = mapped_column(String(36), default="")
