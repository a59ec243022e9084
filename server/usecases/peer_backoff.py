"""Backing off a peer node as a whole while it cannot be reached, not each item on its own.

While a peer is down, only one item at a time probes it (when the peer's backoff has run
out); every other item for it waits without a call. The first call that reaches the peer
again ends the backoff, and the dispatcher makes the peer's whole backlog due at once, so
it flows at full rate, in order per case, instead of each item waiting out a backoff its
own failures grew during the outage.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from tongban.keys.directory import NodeEntry
from tongban.keys.envelope import Envelope
from tongban.server.config import DeliveryPolicy
from tongban.server.usecases.delivery_transport import BatchOutcome, PeerCallFailed, PeerTransport
from tongban.server.usecases.messages import DeliverOpening, DeliverPart
from tongban.server.usecases.runtime import Clock

__all__ = ["PeerBackoff", "ReportingTransport"]

_log = logging.getLogger("tongban.server.usecases.delivery")

# Statuses that say the peer (or its own storage) is not there, rather than judging an item.
_UNREACHABLE = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED"})


@dataclass
class _Down:
    failures: int
    next_probe: datetime
    probing: bool = False


class PeerBackoff:
    """Which peers are down, when each may be probed next, and whether a probe is out."""

    def __init__(self, policy: DeliveryPolicy, clock: Clock) -> None:
        self._policy = policy
        self._clock = clock
        self._lock = threading.Lock()
        self._down: dict[str, _Down] = {}

    def held_back(self, dest: str) -> bool:
        """Whether an item for ``dest`` must wait; False for the one item that probes it."""
        with self._lock:
            down = self._down.get(dest)
            if down is None:
                return False
            if down.probing or self._clock() < down.next_probe:
                return True
            down.probing = True
            return False

    def unreachable(self, dest: str) -> None:
        """A call to ``dest`` did not reach it: back off the peer, a little longer each time."""
        with self._lock:
            down = self._down.get(dest)
            failures = 1 if down is None else down.failures + 1
            delay = min(self._policy.max_peer_probe_interval, self._policy.backoff(failures))
            self._down[dest] = _Down(failures, self._clock() + timedelta(seconds=delay))
        if failures == 1:
            _log.warning("node %s cannot be reached; probing it until it answers", dest)

    def reachable(self, dest: str) -> bool:
        """A call reached ``dest``; True if it was down until now."""
        with self._lock:
            was_down = self._down.pop(dest, None) is not None
        if was_down:
            _log.info("node %s answers again; its backlog is due now", dest)
        return was_down

    def settled(self, dest: str) -> None:
        """An item for ``dest`` finished without a call's verdict: its probe slot is free."""
        with self._lock:
            down = self._down.get(dest)
            if down is not None:
                down.probing = False


class ReportingTransport:
    """A :class:`PeerTransport` that tells a :class:`PeerBackoff` whether each call reached
    its peer, and calls ``on_back`` with a peer that answers again after being down."""

    def __init__(
        self, transport: PeerTransport, backoff: PeerBackoff, on_back: Callable[[str], None]
    ) -> None:
        self._transport = transport
        self._backoff = backoff
        self._on_back = on_back

    def _failed(self, peer: NodeEntry, exc: PeerCallFailed) -> None:
        if exc.status in _UNREACHABLE and exc.retryable:
            self._backoff.unreachable(peer.node_id)
        else:
            self._reached(peer)  # it answered, if only to refuse

    def _reached(self, peer: NodeEntry) -> None:
        if self._backoff.reachable(peer.node_id):
            self._on_back(peer.node_id)

    def deliver(
        self, peer: NodeEntry, parts: Iterator[DeliverPart], *, timeout: float
    ) -> tuple[Envelope, bool]:
        try:
            answer = self._transport.deliver(peer, parts, timeout=timeout)
        except PeerCallFailed as exc:
            self._failed(peer, exc)
            raise
        self._reached(peer)
        return answer

    def deliver_batch(
        self, peer: NodeEntry, openings: Sequence[DeliverOpening], *, timeout: float
    ) -> list[BatchOutcome]:
        try:
            outcomes = self._transport.deliver_batch(peer, openings, timeout=timeout)
        except PeerCallFailed as exc:
            self._failed(peer, exc)
            raise
        self._reached(peer)
        return outcomes

    def push_event(self, peer: NodeEntry, event: Envelope, *, timeout: float) -> Envelope:
        try:
            ack = self._transport.push_event(peer, event, timeout=timeout)
        except PeerCallFailed as exc:
            self._failed(peer, exc)
            raise
        self._reached(peer)
        return ack
