"""The node's figures as Prometheus metrics, read from its database at each scrape.

Counts of what the database holds (packets, deliveries, seals, e-certificates) are exact
across restarts and replicas, which counters kept in one process's memory would not be.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from tongban.server.domain.errors import Unavailable
from tongban.server.usecases.operations import OperationsSnapshot

__all__ = ["DELIVERY_BUCKETS", "NodeCollector"]

_log = logging.getLogger("tongban.server.web")
DELIVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


class NodeCollector(Collector):
    """Outbox, packets, deliveries, bytes, seals and e-certificates of one node."""

    def __init__(self, snapshot: Callable[[], OperationsSnapshot]) -> None:
        self._snapshot = snapshot

    def describe(self) -> list[Metric]:
        return []  # read at scrape time only: never at registration

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("tongban_database_up", "1 if the node's database answered")
        try:
            s = self._snapshot()
        except Unavailable as exc:
            _log.warning("metrics: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        queued = GaugeMetricFamily(
            "tongban_outbox_queued", "Items waiting to be delivered", labels=["destination"]
        )
        oldest = GaugeMetricFamily(
            "tongban_outbox_oldest_age_seconds",
            "How long the oldest waiting item has waited",
            labels=["destination"],
        )
        parked = GaugeMetricFamily(
            "tongban_outbox_failed",
            "Items given up on (permanent refusals)",
            labels=["destination"],
        )
        for line in s.outbox:
            queued.add_metric([line.destination], line.queued)
            oldest.add_metric([line.destination], s.age_of_oldest(line))
            parked.add_metric([line.destination], line.failed)
        yield from (queued, oldest, parked)
        packets = CounterMetricFamily(
            "tongban_packets",
            "Packets stored: submitted here (out) or received from peers (in)",
            labels=["direction"],
        )
        for direction in ("in", "out"):
            packets.add_metric([direction], s.packets.get(direction, 0))
        yield packets
        delivered = CounterMetricFamily(
            "tongban_packets_delivered", "Packet deliveries a peer acknowledged"
        )
        delivered.add_metric([], len(s.delivery_seconds))
        yield delivered
        yield _histogram(s.delivery_seconds)
        stored = GaugeMetricFamily("tongban_bytes_stored", "Bytes of packet files stored")
        stored.add_metric([], s.bytes_stored)
        yield stored
        seals = CounterMetricFamily("tongban_seals_registered", "Seals registered at this node")
        seals.add_metric([], s.seals)
        yield seals
        ecerts = GaugeMetricFamily(
            "tongban_ecerts",
            "E-certificates issued (documents sealed), by status",
            labels=["status"],
        )
        for status, n in sorted(s.ecerts.items()):
            ecerts.add_metric([status], n)
        yield ecerts
        sealed = CounterMetricFamily("tongban_seals_made", "Documents sealed by this node")
        sealed.add_metric([], sum(s.ecerts.values()))
        yield sealed


def _histogram(seconds: tuple[float, ...]) -> HistogramMetricFamily:
    ordered = sorted(seconds)
    buckets = [(str(b), bisect.bisect_right(ordered, b)) for b in DELIVERY_BUCKETS]
    buckets.append(("+Inf", len(ordered)))
    return HistogramMetricFamily(
        "tongban_delivery_seconds",
        "From a packet stored at this node to its delivery acknowledged by the peer",
        buckets=buckets,
        sum_value=sum(ordered),
    )
