"""Delivering what this node owes other nodes: packets and events from the outbox.

Work for one case goes to one destination strictly in order (a leg's packet before its
events); different cases go out in parallel. A failed attempt is retried with backoff
until the peer acknowledges with a signed receipt or ack; errors that cannot heal by
waiting (the peer refused the content itself) park the item as ``failed`` for an admin.

Why one module of about 550 lines: the dispatcher is one object whose lanes, queues and
held bytes change together under one lock; splitting it would spread that invariant.
Calls to peers go through :class:`PeerTransport`; the node's is gRPC
(:mod:`tongban.server.grpc.peers`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from datetime import datetime, timedelta
from functools import cache
from typing import cast

from sqlalchemy import Table, and_, bindparam, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Update

from tongban.keys.envelope import Envelope, verify_envelope
from tongban.keys.errors import KeysError
from tongban.server.config import DeliveryPolicy, Limits
from tongban.server.domain.statements import ACK_TYPE, RECEIPT_TYPE, EventAck, Receipt
from tongban.server.usecases.clock_skew import ClockSkewWatch
from tongban.server.usecases.delivery_transport import BatchOutcome, PeerCallFailed, PeerTransport
from tongban.server.usecases.events import event_envelope
from tongban.server.usecases.messages import DeliverOpening, OutboxItem, OutgoingPacket
from tongban.server.usecases.outgoing import OutgoingPackets
from tongban.server.usecases.peer_backoff import PeerBackoff, ReportingTransport
from tongban.server.usecases.runtime import Clock, DirectoryHolder
from tongban.storage.sql import (
    DeliveryRow,
    EventRow,
    MetadataStore,
    OutboxRow,
    PacketRow,
    UTCDateTime,
)

__all__ = ["BatchOutcome", "DeliveryDispatcher", "PeerCallFailed", "PeerTransport"]

_log = logging.getLogger("tongban.server.usecases.delivery")


class _Refused(Exception):
    """The peer's answer did not check out (bad receipt, wrong ack)."""


# Calls at a time that carry batches of packets to one node. While one is on its way the
# next batch fills; a second call keeps the receiver busy while it waits on its disk for a
# batch with files (measured: form-only throughput the same with one or two, packets with
# three 300 KB files about a quarter faster with two).
_DRAINERS = 2
# Most bytes of freshly submitted packets the dispatcher keeps in memory to send them without
# reading them back; a peer that hangs must not make a node hold every packet it queues.
_MAX_HELD_BYTES = 64 << 20


@cache
def _completion_statements() -> tuple[Update, Update]:
    """The two updates that record delivered packets, built once (so that their compiled
    form is found by identity rather than by walking them again)."""
    deliveries = cast(Table, DeliveryRow.__table__)
    outbox = cast(Table, OutboxRow.__table__)
    mark_delivered = (
        update(deliveries)
        .where(
            deliveries.c.packet_id == bindparam("b_packet"),
            deliveries.c.node_id == bindparam("b_node"),
        )
        .values(
            state="delivered",
            receipt=bindparam("b_receipt"),
            delivered_at=bindparam("b_at", type_=UTCDateTime()),
            attempts=deliveries.c.attempts + 1,
            last_error="",
        )
    )
    mark_done = (
        update(outbox)
        .where(outbox.c.id == bindparam("b_id"))
        .values(
            state="done",
            attempts=outbox.c.attempts + 1,
            done_at=bindparam("b_now", type_=UTCDateTime()),
            last_error="",
        )
    )
    return mark_delivered, mark_done


class DeliveryDispatcher:
    """Sends due outbox items with a pool of workers; ``dispatch_due`` is safe to call often.

    Small packets (files up to what ``Limits.travels_inline`` allows) to one node are queued
    per node and sent together, up to the policy's ``batch_size`` per call and at most
    ``_DRAINERS`` calls at a time; everything else goes out one call per item.
    """

    def __init__(
        self,
        *,
        metadata: MetadataStore,
        directory: DirectoryHolder,
        outgoing: OutgoingPackets,
        limits: Limits,
        clock: Clock,
        policy: DeliveryPolicy,
        transport: PeerTransport,
        clock_skew: ClockSkewWatch | None = None,
    ) -> None:
        self._metadata = metadata
        self._directory = directory
        self._packets = outgoing
        self._limits = limits
        self._clock = clock
        self._policy = policy
        # Backoff is per peer: while one is down a single item probes it (peer_backoff).
        self._peers = PeerBackoff(policy, clock)
        self._skew = clock_skew
        self._transport = ReportingTransport(transport, self._peers, self._peer_back)
        self._pool = ThreadPoolExecutor(policy.workers, thread_name_prefix="deliver")
        self._lock = threading.Lock()
        self._in_flight: set[int] = set()
        # Lanes (destination, case) with an item on its way, and lanes whose order only a
        # scan of the outbox can tell (an item in backoff, or one offered behind another).
        self._busy: set[tuple[str, str]] = set()
        self._unsettled: set[tuple[str, str]] = set()
        # Batchable packets waiting per destination, and how many calls drain each queue.
        self._queued: dict[str, list[OutboxItem]] = {}
        self._draining: dict[str, int] = {}
        # Bytes of fresh packets held in memory for items in flight, by item id; past
        # _MAX_HELD_BYTES an item goes without, and its packet is read from the store.
        self._held: dict[int, int] = {}
        self._held_bytes = 0
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="delivery-dispatch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def kick(self) -> None:
        """Scan the outbox now rather than at the next poll."""
        self._wake.set()

    def offer(self, items: list[OutboxItem]) -> None:
        """Send freshly committed items at once when nothing is ahead of them in their lane.

        Anything else is left to the outbox scan, which alone knows a lane's order.
        """
        with self._lock:
            for item in items:
                lane = (item.dest_node, item.case_id)
                if (
                    lane in self._busy
                    or lane in self._unsettled
                    or self._stopped.is_set()
                    or self._peers.held_back(item.dest_node)
                ):
                    self._unsettled.add(lane)
                    continue
                self._start(item)

    def _start(self, item: OutboxItem) -> None:
        """Hand an item to the workers; the caller holds ``_lock``."""
        self._busy.add((item.dest_node, item.case_id))
        self._in_flight.add(item.id)
        if item.packet is not None:
            weight = item.packet.opening.weight
            if self._held_bytes + weight > _MAX_HELD_BYTES:
                item = dataclasses.replace(item, packet=None)
            else:
                self._held[item.id] = weight
                self._held_bytes += weight
        if item.batchable and self._policy.batch_size > 1:
            self._queued.setdefault(item.dest_node, []).append(item)
            if self._draining.get(item.dest_node, 0) < _DRAINERS:
                self._draining[item.dest_node] = self._draining.get(item.dest_node, 0) + 1
                self._pool.submit(self._drain, item.dest_node)
        else:
            self._pool.submit(self._attempt, item)

    def stop(self, timeout: float = 10.0) -> None:
        self._stopped.set()
        self._wake.set()
        self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _loop(self) -> None:
        while not self._stopped.is_set():
            # Periodic retries come from the scheduled job; this loop serves kicks.
            self._wake.wait(30.0)
            self._wake.clear()
            if self._stopped.is_set():
                return
            try:
                self.dispatch_due()
            except Exception:
                _log.exception("delivery dispatch failed; will look again")

    def dispatch_due(self) -> int:
        """Start an attempt for every due item that is first in line for its case."""
        now = self._clock()
        with self._lock:
            free = self._policy.workers * 4 - len(self._in_flight)
        if free <= 0:
            return 0
        with self._metadata.read() as session:
            # Plain tuples, oldest first: the first pending item of a lane blocks the rest.
            rows = session.execute(
                select(
                    OutboxRow.id,
                    OutboxRow.dest_node,
                    OutboxRow.case_id,
                    OutboxRow.kind,
                    OutboxRow.ref,
                    OutboxRow.next_attempt_at,
                    PacketRow.total_size,
                )
                .outerjoin(
                    PacketRow,
                    and_(OutboxRow.kind == "packet", PacketRow.packet_id == OutboxRow.ref),
                )
                .where(OutboxRow.state == "pending")
                .order_by(OutboxRow.id)
                .limit(2000)
            ).all()
        started = 0
        limits = self._limits
        seen: set[tuple[str, str]] = set()
        with self._lock:
            for row_id, dest, case_id, kind, ref, due, total_size in rows:
                lane = (dest, case_id)
                if lane in seen:
                    continue
                seen.add(lane)
                if lane in self._busy or due > now:
                    continue
                if self._stopped.is_set() or started >= free:
                    break
                # Last: a peer that is down lets this claim its one probe, which must start.
                if self._peers.held_back(dest):
                    continue
                batchable = kind == "packet" and limits.travels_inline(total_size or 0)
                self._start(OutboxItem(row_id, dest, case_id, kind, ref, batchable))
                started += 1
            # A lane stays unsettled while it still has work; then offers go straight out again.
            pending = {(dest, case_id) for _, dest, case_id, *_ in rows}
            self._unsettled = {ln for ln in self._unsettled if ln in pending or ln in self._busy}
        return started

    def _attempt(self, row: OutboxItem) -> None:
        try:
            self._try(row)
        finally:
            self._release([row])

    def _try(self, row: OutboxItem) -> None:
        try:
            if row.kind == "packet":
                self._send_packet(row)
            else:
                self._send_event(row)
        except Exception as exc:
            self._fail_with(row, exc)
        else:
            if row.kind != "packet":  # a packet's delivery commits its own completion
                self._done(row)

    def _release(self, rows: list[OutboxItem]) -> None:
        rescan = False
        with self._lock:
            for row in rows:
                lane = (row.dest_node, row.case_id)
                self._in_flight.discard(row.id)
                self._held_bytes -= self._held.pop(row.id, 0)
                self._busy.discard(lane)
                self._peers.settled(row.dest_node)
                rescan = rescan or lane in self._unsettled
        if rescan:
            # Something waits behind an item, or it failed: the scan decides what's next.
            self._wake.set()

    def _peer_back(self, dest: str) -> None:
        """A peer answers again: everything waiting for it is due now, and goes at once."""
        now = self._clock()
        with self._metadata.transaction() as session:
            session.execute(
                update(OutboxRow)
                .where(
                    OutboxRow.dest_node == dest,
                    OutboxRow.state == "pending",
                    OutboxRow.next_attempt_at > now,
                )
                .values(next_attempt_at=now)
            )
        self._wake.set()

    def _fail_with(self, row: OutboxItem, exc: BaseException) -> None:
        """Record a failed attempt: parked when the peer judged the content, else retried."""
        with self._lock:
            self._unsettled.add((row.dest_node, row.case_id))
        if isinstance(exc, PeerCallFailed):
            # A peer that does not accept this node's identity may not know its newest
            # certificate yet: a directory refresh on either side heals that, so it waits.
            permanent = not exc.retryable and exc.status != "UNAUTHENTICATED"
            self._failed(row, f"{exc.status}: {exc.message}", permanent=permanent)
        elif isinstance(exc, _Refused | KeysError):
            self._failed(row, f"bad answer from node {row.dest_node}: {exc}", permanent=False)
        else:
            _log.error(
                "delivery of %s %s to %s failed", row.kind, row.ref, row.dest_node, exc_info=exc
            )
            self._failed(row, f"{type(exc).__name__}: {exc}", permanent=False)

    def _checked_receipt(self, row: OutboxItem, receipt_env: Envelope, statement: bytes) -> Receipt:
        peer = self._directory.current.node(row.dest_node)
        verify_envelope(receipt_env, peer.signing_keys(self._clock()), payload_type=RECEIPT_TYPE)
        receipt = Receipt.from_payload(receipt_env.payload)
        if (
            str(receipt.packet_id) != row.ref
            or receipt.receiver != row.dest_node
            or receipt.statement_sha256 != hashlib.sha256(statement).hexdigest()
        ):
            raise _Refused("the receipt does not name this packet and node")
        return receipt

    def _send_packet(self, row: OutboxItem) -> None:
        peer = self._directory.current.node(row.dest_node)
        parts = self._packets.parts(row.packet or self._packets.read(row.ref, row.dest_node))
        opening = next(parts)
        assert isinstance(opening, DeliverOpening)
        sent = self._clock()
        receipt_env, duplicate = self._transport.deliver(
            peer, itertools.chain([opening], parts), timeout=self._policy.rpc_timeout
        )
        answered = self._clock()
        receipt = self._checked_receipt(row, receipt_env, opening.statement.payload)
        self._observe_clock(row.dest_node, sent, answered, receipt, duplicate=duplicate)
        self._complete([(row, receipt_env, receipt)])
        _log.info(
            "delivered packet %s to %s%s",
            row.ref,
            row.dest_node,
            " (already held)" if duplicate else "",
        )

    def _drain(self, dest: str) -> None:
        """Send the queued batchable packets for ``dest`` until none is left."""
        while True:
            with self._lock:
                queue = self._queued.get(dest, [])
                if not queue or self._stopped.is_set():
                    self._draining[dest] -= 1
                    return
                batch = queue[: self._policy.batch_size]
                del queue[: self._policy.batch_size]
            try:
                self._try_batch(dest, batch)
            except Exception:
                _log.exception("delivery of a batch to %s failed", dest)
            finally:
                self._release(batch)

    def _try_batch(self, dest: str, rows: list[OutboxItem]) -> None:
        try:
            packets = self._outgoing(dest, rows)
        except Exception as exc:
            for row in rows:
                self._fail_with(row, exc)
            return
        # Not what the queue thought (e.g. a packet grown too large): one call for each.
        for row in rows:
            if row.ref not in packets:
                self._try(row)
        batch: list[OutboxItem] = []
        size = 0
        budget = self._limits.max_message_bytes // 2
        for row in (r for r in rows if r.ref in packets):
            weight = packets[row.ref].weight
            if batch and size + weight > budget:
                self._send_batch(dest, batch, packets)
                batch, size = [], 0
            batch.append(row)
            size += weight
        if batch:
            self._send_batch(dest, batch, packets)

    def _outgoing(self, dest: str, rows: list[OutboxItem]) -> dict[str, OutgoingPacket]:
        """What each row sends, as its submit left it or else read from the store; a packet
        too large for half a message is left out."""
        packets = {r.ref: r.packet for r in rows if r.packet is not None}
        unread = [r.ref for r in rows if r.packet is None]
        if unread:
            openings = self._packets.openings(dest, unread)  # those without files, at once
            packets.update((ref, OutgoingPacket(o)) for ref, o in openings.items())
            for ref in unread:
                if ref not in packets:
                    with suppress(Exception):  # then tried on its own, which records why
                        packets[ref] = self._packets.read(ref, dest)
        budget = self._limits.max_message_bytes // 2
        return {ref: p for ref, p in packets.items() if p.weight <= budget}

    def _send_batch(
        self, dest: str, rows: list[OutboxItem], packets: dict[str, OutgoingPacket]
    ) -> None:
        sent = self._clock()
        try:
            outcomes = self._transport.deliver_batch(
                self._directory.current.node(dest),
                [self._packets.inline_opening(packets[r.ref]) for r in rows],
                timeout=self._policy.rpc_timeout,
            )
            if len(outcomes) != len(rows):
                raise _Refused(f"{len(outcomes)} outcomes came back for {len(rows)} packets")
        except PeerCallFailed as exc:
            if exc.too_large:
                # Too large for the peer's message limit: each packet on its own, streamed.
                for row in rows:
                    self._try(row)
                return
            for row in rows:
                self._fail_with(row, exc)
            return
        except Exception as exc:
            for row in rows:
                self._fail_with(row, exc)
            return
        answered = self._clock()
        delivered: list[tuple[OutboxItem, Envelope, Receipt]] = []
        held = 0
        for row, outcome in zip(rows, outcomes, strict=True):
            if outcome.refusal is not None and packets[row.ref].files:
                # The stream has the last word on a packet with files (a peer of an older
                # version takes such packets only that way).
                self._try(row)
                continue
            try:
                if outcome.refusal is not None:
                    raise outcome.refusal
                if outcome.receipt is None:
                    raise _Refused("a batch outcome carries neither a receipt nor a refusal")
                receipt = self._checked_receipt(
                    row, outcome.receipt, packets[row.ref].opening.statement.payload
                )
            except Exception as exc:
                self._fail_with(row, exc)
            else:
                if not delivered:  # one stamp per call tells the peer's clock
                    self._observe_clock(dest, sent, answered, receipt, duplicate=outcome.duplicate)
                delivered.append((row, outcome.receipt, receipt))
                held += outcome.duplicate
        if not delivered:
            return
        try:
            self._complete(delivered)
        except Exception as exc:
            for row, _, _ in delivered:
                self._fail_with(row, exc)
            return
        _log.info(
            "delivered %d packets to %s in one call (%d already held)", len(delivered), dest, held
        )

    def _observe_clock(
        self, dest: str, sent: datetime, answered: datetime, receipt: Receipt, *, duplicate: bool
    ) -> None:
        """Compare the peer's stamp on a fresh receipt with this node's send/answer times (a
        duplicate's receipt carries the time of the first delivery)."""
        if self._skew is not None and not duplicate:
            self._skew.observe(dest, sent, answered, receipt.received_at)

    def _complete(self, delivered: list[tuple[OutboxItem, Envelope, Receipt]]) -> None:
        """Record signed receipts: the deliveries are done, their outbox items too."""
        now = self._clock()
        mark_delivered, mark_done = _completion_statements()

        def record(session: Session) -> None:
            session.execute(
                mark_delivered,
                [
                    {
                        "b_packet": row.ref,
                        "b_node": row.dest_node,
                        "b_receipt": json.dumps(env.to_json_dict()).encode(),
                        "b_at": receipt.received_at,
                    }
                    for row, env, receipt in delivered
                ],
            )
            session.execute(mark_done, [{"b_id": row.id, "b_now": now} for row, _, _ in delivered])

        self._metadata.write_grouped(record)

    def _send_event(self, row: OutboxItem) -> None:
        peer = self._directory.current.node(row.dest_node)
        with self._metadata.read() as session:
            event = session.get(EventRow, row.ref)
            assert event is not None
            env = event_envelope(event)
        ack_env = self._transport.push_event(peer, env, timeout=self._policy.rpc_timeout)
        verify_envelope(ack_env, peer.signing_keys(self._clock()), payload_type=ACK_TYPE)
        ack = EventAck.from_payload(ack_env.payload)
        if ack.event_hash != row.ref or ack.receiver != row.dest_node:
            raise _Refused("the ack does not name this event and node")

    def _done(self, row: OutboxItem) -> None:
        with self._metadata.transaction() as session:
            item = session.get(OutboxRow, row.id)
            assert item is not None
            item.state = "done"
            item.attempts += 1
            item.done_at = self._clock()
            item.last_error = ""

    def _failed(self, row: OutboxItem, error: str, *, permanent: bool) -> None:
        _log.warning(
            "delivery of %s %s to %s failed (%s): %s",
            row.kind,
            row.ref,
            row.dest_node,
            "parked" if permanent else "will retry",
            error,
        )
        with self._metadata.transaction() as session:
            item = session.get(OutboxRow, row.id)
            assert item is not None
            item.attempts += 1
            item.last_error = error[:2000]
            if permanent:
                item.state = "failed"
            else:
                delay = self._policy.backoff(item.attempts)
                item.next_attempt_at = self._clock() + timedelta(seconds=delay)
            if row.kind == "packet":
                delivery = session.get(DeliveryRow, (row.ref, row.dest_node))
                if delivery is not None:
                    delivery.attempts = item.attempts
                    delivery.last_error = item.last_error
                    if permanent:
                        delivery.state = "failed"
