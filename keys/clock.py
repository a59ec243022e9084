"""Time handling: every validity check takes an explicit, timezone-aware moment."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from tongban.keys.errors import CallerError

__all__ = ["CHINA", "china_date", "format_time", "parse_time", "require_aware", "utcnow"]

# Calendar dates of the domain (birth dates, working days) are dates in China.
CHINA = ZoneInfo("Asia/Shanghai")


def utcnow() -> datetime:
    """Return the current time in UTC (the only place that reads the wall clock)."""
    return datetime.now(UTC)


def china_date(at: datetime | None = None) -> date:
    """The calendar date in China at ``at`` (now, if not given)."""
    return require_aware(at or utcnow()).astimezone(CHINA).date()


def require_aware(at: datetime, what: str = "time") -> datetime:
    """Return ``at`` in UTC, refusing naive datetimes.

    Raises:
        CallerError: ``at`` has no timezone.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise CallerError(f"{what} must be timezone-aware, got naive {at.isoformat()}")
    return at.astimezone(UTC)


def format_time(at: datetime) -> str:
    """RFC 3339 in UTC with microseconds, the form used in every signed statement."""
    # isoformat, not strftime("%Y"): strftime writes years before 1000 without their zeros.
    return require_aware(at).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """Parse the RFC 3339 form written by :func:`format_time` (any offset accepted).

    Raises:
        ValueError: not a string holding an RFC 3339 timestamp with a timezone, or one
            whose instant lies outside years 1-9999 in UTC.
    """
    if not isinstance(text, str):
        raise ValueError(f"timestamp must be a string, not {type(text).__name__}")
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no timezone")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"timestamp {text!r} is outside years 1-9999 in UTC") from None
