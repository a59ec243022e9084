"""Properties of the timestamp codec: format_time and parse_time."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tongban.keys.clock import format_time, parse_time
from tongban.keys.errors import CallerError

offsets = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
aware = st.datetimes(timezones=st.just(UTC) | offsets)
FORMAT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


@settings(max_examples=200)
@given(aware)
@example(datetime(1, 1, 1, tzinfo=UTC))
@example(datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))
@example(datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))
def test_format_then_parse_is_the_same_instant(moment: datetime) -> None:
    try:
        text = format_time(moment)
    except OverflowError:
        # Only an instant whose UTC form lies outside years 1-9999 cannot be written.
        assert moment.utcoffset() != timedelta(0)
        assert moment.year in (1, 9999)
        return
    assert FORMAT.fullmatch(text), text
    parsed = parse_time(text)
    assert parsed == moment
    assert parsed.tzinfo is UTC
    assert format_time(parsed) == text


@settings(max_examples=200)
@given(aware)
def test_any_rfc3339_offset_is_read_as_the_same_instant(moment: datetime) -> None:
    text = moment.isoformat()
    try:
        parsed = parse_time(text)
    except ValueError:
        # The instant is not representable in UTC (year 1 or 9999 pushed over the edge).
        assert moment.year in (1, 9999)
        return
    assert parsed == moment and parsed.tzinfo is UTC


@settings(max_examples=100)
@given(st.datetimes(timezones=st.none()))
def test_naive_times_are_refused_both_ways(moment: datetime) -> None:
    with pytest.raises(CallerError, match="timezone-aware"):
        format_time(moment)
    with pytest.raises(ValueError, match="has no timezone"):
        parse_time(moment.isoformat())


garbage = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="0123456789-:TZ.+ ", max_size=40),
    st.none(),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=300)
@given(garbage)
@example("0001-01-01T00:00:00+01:00")  # before year 1 in UTC
@example("9999-12-31T23:00:00-01:00")  # after year 9999 in UTC
@example(20260101)
@example(None)
def test_parse_time_raises_only_value_error(text: object) -> None:
    try:
        parsed = parse_time(text)  # type: ignore[arg-type]
    except ValueError:
        return
    assert isinstance(text, str)
    assert parsed.tzinfo is UTC
