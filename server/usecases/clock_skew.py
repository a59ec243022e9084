"""How far this node's clock is from its peers', learnt from every delivery's receipt.

A peer stamps its receipt with its own clock (``received_at``). The sender knows the
receipt was stamped between the moment it sent the packet and the moment the answer came,
by its own clock: a stamp before that interval means the peer's clock is behind, after it
ahead, by at least the distance to the interval. That skew is logged and counted when it is
over the tolerance; when it is over the refusal threshold against every peer heard from,
this node's own clock is the odd one out, and it refuses to seal until a later delivery
shows the clocks agree again (a seal's time must be one others can trust).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from datetime import datetime

from tongban.server.domain.errors import ClockSkewed

__all__ = ["ClockSkewWatch", "skew_seconds"]

_log = logging.getLogger("tongban.server.usecases.clock_skew")


def skew_seconds(sent: datetime, answered: datetime, peer_time: datetime) -> float:
    """Seconds the peer's clock is ahead (positive) or behind (negative) at least; 0 when its
    stamp falls within the round trip."""
    if peer_time < sent:
        return (peer_time - sent).total_seconds()
    if peer_time > answered:
        return (peer_time - answered).total_seconds()
    return 0.0


class ClockSkewWatch:
    """The latest skew against each peer, how often it was over the tolerance, and whether
    this node may seal."""

    def __init__(self, *, tolerance_seconds: float, refuse_seconds: float) -> None:
        self._tolerance = tolerance_seconds
        self._refuse = refuse_seconds
        self._lock = threading.Lock()
        self._latest: dict[str, float] = {}
        self.over_tolerance: Counter[str] = Counter()

    def observe(self, peer: str, sent: datetime, answered: datetime, peer_time: datetime) -> float:
        """Record what one receipt says of ``peer``'s clock; return the skew in seconds."""
        skew = skew_seconds(sent, answered, peer_time)
        with self._lock:
            before = self._latest.get(peer, 0.0)
            self._latest[peer] = skew
            if abs(skew) > self._tolerance:
                self.over_tolerance[peer] += 1
        if abs(skew) > self._tolerance:
            _log.warning(
                "clock skew: node %s's clock is %+.1f s from this node's (tolerance %.1f s)",
                peer,
                skew,
                self._tolerance,
            )
        elif abs(before) > self._tolerance:
            _log.info("clock skew: node %s's clock agrees with this node's again", peer)
        return skew

    def skews(self) -> dict[str, float]:
        """The latest skew against each peer heard from, in seconds (peer ahead: positive)."""
        with self._lock:
            return dict(self._latest)

    def check_for_sealing(self) -> None:
        """Raise unless this node's clock may be trusted to date a seal.

        Raises:
            ClockSkewed: the clock is off every peer heard from by more than the threshold,
                all in the same direction.
        """
        with self._lock:
            latest = dict(self._latest)
        if not latest:
            return
        ahead = all(s > self._refuse for s in latest.values())
        behind = all(s < -self._refuse for s in latest.values())
        if ahead or behind:
            worst = min(latest.values(), key=abs)
            raise ClockSkewed(
                f"this node's clock is {abs(worst):.0f} s "
                f"{'behind' if ahead else 'ahead of'} its peers' (the limit is "
                f"{self._refuse:.0f} s); fix the clock before sealing"
            )
