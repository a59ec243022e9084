"""A peer that is down is probed by one item at a time, on the peer's own backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tongban.server.config import DeliveryPolicy
from tongban.server.usecases.peer_backoff import PeerBackoff


class _Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 5, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_one_probe_at_a_time_after_the_backoff_then_everything_flows() -> None:
    clock = _Clock()
    policy = DeliveryPolicy(initial_backoff=1.0, multiplier=2.0, max_backoff=60.0)
    peers = PeerBackoff(policy, clock)
    assert not peers.held_back("420100")  # nothing known: send
    peers.unreachable("420100")
    assert peers.held_back("420100") and peers.held_back("420100")
    clock.now += timedelta(seconds=1)
    assert not peers.held_back("420100")  # the probe
    assert peers.held_back("420100")  # only one
    peers.unreachable("420100")  # the probe failed: two seconds now
    clock.now += timedelta(seconds=1.5)
    assert peers.held_back("420100")
    clock.now += timedelta(seconds=0.5)
    assert not peers.held_back("420100")
    assert peers.reachable("420100") is True
    assert not peers.held_back("420100") and not peers.held_back("420100")
    assert peers.reachable("420100") is False
    assert not peers.held_back("440300")  # other peers are not held back meanwhile


def test_the_probe_interval_is_capped() -> None:
    clock = _Clock()
    policy = DeliveryPolicy(initial_backoff=1.0, max_backoff=60.0, max_peer_probe_interval=5.0)
    peers = PeerBackoff(policy, clock)
    for _ in range(10):
        peers.unreachable("420100")
    clock.now += timedelta(seconds=5)
    assert not peers.held_back("420100")


def test_a_probe_that_ended_without_a_verdict_frees_the_slot() -> None:
    clock = _Clock()
    peers = PeerBackoff(DeliveryPolicy(initial_backoff=1.0), clock)
    peers.unreachable("420100")
    clock.now += timedelta(seconds=1)
    assert not peers.held_back("420100")
    peers.settled("420100")  # e.g. its packet could not be read from the store
    assert not peers.held_back("420100")
