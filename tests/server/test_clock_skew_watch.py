"""The clock-skew watch: what a receipt's stamp says, what is counted, when sealing stops."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from tongban.server.domain.errors import ClockSkewed
from tongban.server.usecases.clock_skew import ClockSkewWatch, skew_seconds

T0 = datetime(2026, 5, 1, 8, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(seconds=2)


def _watch() -> ClockSkewWatch:
    return ClockSkewWatch(tolerance_seconds=5.0, refuse_seconds=60.0)


def _stamp(seconds: float) -> datetime:
    """A peer's stamp ``seconds`` outside the round trip (behind: before T0, ahead: after T1)."""
    return T0 + timedelta(seconds=seconds) if seconds < 0 else T1 + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("stamp", "skew"),
    [
        (T0, 0.0),
        (T1, 0.0),
        (T0 + timedelta(seconds=1), 0.0),
        (T0 - timedelta(seconds=300), -300.0),
        (T0 - timedelta(microseconds=1), -0.000001),
        (T1 + timedelta(seconds=7), 7.0),
        (T1 + timedelta(microseconds=1), 0.000001),
    ],
)
def test_skew_is_what_the_round_trip_cannot_explain(stamp: datetime, skew: float) -> None:
    assert skew_seconds(T0, T1, stamp) == pytest.approx(skew)


def test_within_tolerance_is_neither_logged_nor_counted(caplog: pytest.LogCaptureFixture) -> None:
    watch = _watch()
    assert watch.observe("420100", T0, T1, _stamp(5.0)) == 5.0
    assert watch.observe("420100", T0, T1, _stamp(-5.0)) == -5.0
    assert watch.over_tolerance["420100"] == 0
    assert not caplog.records
    watch.check_for_sealing()


def test_over_tolerance_is_logged_and_counted_per_peer(caplog: pytest.LogCaptureFixture) -> None:
    watch = _watch()
    watch.observe("420100", T0, T1, _stamp(5.5))
    watch.observe("420100", T0, T1, _stamp(-30.0))
    watch.observe("440300", T0, T1, _stamp(1.0))
    assert watch.over_tolerance == {"420100": 2}
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            logging.WARNING,
            "clock skew: node 420100's clock is +5.5 s from this node's (tolerance 5.0 s)",
        ),
        (
            logging.WARNING,
            "clock skew: node 420100's clock is -30.0 s from this node's (tolerance 5.0 s)",
        ),
    ]
    assert watch.skews() == {"420100": -30.0, "440300": 1.0}
    caplog.clear()
    caplog.set_level(logging.INFO)
    watch.observe("420100", T0, T1, _stamp(0.0))
    assert [r.getMessage() for r in caplog.records] == [
        "clock skew: node 420100's clock agrees with this node's again"
    ]


@pytest.mark.parametrize(
    ("skews", "refused"),
    [
        ({}, None),
        ({"420100": 60.0}, None),
        ({"420100": 61.0}, "behind"),
        ({"420100": -61.0}, "ahead of"),
        ({"420100": 61.0, "440300": 90.0}, "behind"),
        ({"420100": -61.0, "440300": -90.0}, "ahead of"),
        # One peer off: that peer's clock, not this node's, is the odd one out.
        ({"420100": 61.0, "440300": 0.0}, None),
        ({"420100": 61.0, "440300": -61.0}, None),
    ],
)
def test_sealing_stops_when_this_node_is_off_every_peer(
    skews: dict[str, float], refused: str | None
) -> None:
    watch = _watch()
    for peer, skew in skews.items():
        watch.observe(peer, T0, T1, _stamp(skew))
    if refused is None:
        watch.check_for_sealing()
        return
    with pytest.raises(ClockSkewed) as raised:
        watch.check_for_sealing()
    least = min(abs(s) for s in skews.values())
    assert raised.value.message == (
        f"this node's clock is {least:.0f} s {refused} its peers' (the limit is 60 s); "
        "fix the clock before sealing"
    )
    assert raised.value.code == "clock-skew"


def test_sealing_resumes_once_the_clocks_agree() -> None:
    watch = _watch()
    watch.observe("420100", T0, T1, _stamp(-120.0))
    with pytest.raises(ClockSkewed):
        watch.check_for_sealing()
    watch.observe("420100", T0, T1, _stamp(0.0))
    watch.check_for_sealing()
