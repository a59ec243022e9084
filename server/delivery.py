"""Delivering what this node owes other nodes: packets and events from the outbox.

Work for one case goes to one destination strictly in order (a leg's packet before its
events); different cases go out in parallel. A failed attempt is retried with backoff
until the peer acknowledges with a signed receipt or ack; errors that cannot heal by
waiting (the peer refused the content itself) park the item as ``failed`` for an admin.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import grpc
from sqlalchemy import select

from tongban.keys.envelope import Envelope, EnvelopeSignature, verify_envelope
from tongban.keys.errors import KeysError
from tongban.proto import common_pb2, relay_pb2
from tongban.server.cases import OutboxItem, event_envelope
from tongban.server.config import DeliveryPolicy
from tongban.server.packets import DeliverOpening, DeliverPart, delivery_parts
from tongban.server.runtime import NodeRuntime
from tongban.server.statements import ACK_TYPE, RECEIPT_TYPE, EventAck, Receipt
from tongban.storage.sql import DeliveryRow, EventRow, OutboxRow, PacketRow

__all__ = ["DeliveryDispatcher", "envelope_from_proto", "envelope_to_proto"]

_log = logging.getLogger("tongban.server.delivery")

# The peer judged the content itself; sending the same bytes again cannot succeed.
_PERMANENT = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.DATA_LOSS,
        grpc.StatusCode.ALREADY_EXISTS,
    }
)


class _Refused(Exception):
    """The peer's answer did not check out (bad receipt, wrong ack)."""


def envelope_to_proto(env: Envelope) -> common_pb2.SignedEnvelope:
    return common_pb2.SignedEnvelope(
        payload=env.payload,
        payload_type=env.payload_type,
        signatures=[common_pb2.Signature(key_id=s.key_id, sig=s.sig) for s in env.signatures],
    )


def envelope_from_proto(msg: common_pb2.SignedEnvelope) -> Envelope:
    return Envelope(
        msg.payload,
        msg.payload_type,
        tuple(EnvelopeSignature(s.key_id, s.sig) for s in msg.signatures),
    )


def _requests(parts: Iterator[DeliverPart]) -> Iterator[relay_pb2.DeliverRequest]:
    for part in parts:
        if isinstance(part, DeliverOpening):
            yield relay_pb2.DeliverRequest(
                opening=relay_pb2.PacketOpening(
                    statement=envelope_to_proto(part.statement),
                    wrapped_key=part.wrapped_key,
                    recipient_key_id=part.recipient_key_id,
                    form_ciphertext=part.form_ciphertext,
                    events=[envelope_to_proto(e) for e in part.events],
                )
            )
        else:
            yield relay_pb2.DeliverRequest(
                segment=relay_pb2.Segment(
                    file_index=part.file_index,
                    segment_index=part.segment_index,
                    final=part.final,
                    ciphertext=part.ciphertext,
                )
            )


class DeliveryDispatcher:
    """Sends due outbox items with a pool of workers; ``dispatch_due`` is safe to call often."""

    def __init__(self, runtime: NodeRuntime, policy: DeliveryPolicy) -> None:
        self._rt = runtime
        self._policy = policy
        self._pool = ThreadPoolExecutor(policy.workers, thread_name_prefix="deliver")
        self._lock = threading.Lock()
        self._in_flight: set[int] = set()
        # Lanes (destination, case) with an item on its way, and lanes whose order only a
        # scan of the outbox can tell (an item in backoff, or one offered behind another).
        self._busy: set[tuple[str, str]] = set()
        self._unsettled: set[tuple[str, str]] = set()
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
                if lane in self._busy or lane in self._unsettled or self._stopped.is_set():
                    self._unsettled.add(lane)
                    continue
                self._start(item)

    def _start(self, item: OutboxItem) -> None:
        self._busy.add((item.dest_node, item.case_id))
        self._in_flight.add(item.id)
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
        now = self._rt.clock()
        with self._lock:
            free = self._policy.workers * 4 - len(self._in_flight)
        if free <= 0:
            return 0
        with self._rt.metadata.read() as session:
            # Plain tuples, oldest first: the first pending item of a lane blocks the rest.
            rows = session.execute(
                select(
                    OutboxRow.id,
                    OutboxRow.dest_node,
                    OutboxRow.case_id,
                    OutboxRow.kind,
                    OutboxRow.ref,
                    OutboxRow.next_attempt_at,
                )
                .where(OutboxRow.state == "pending")
                .order_by(OutboxRow.id)
                .limit(2000)
            ).all()
        started = 0
        seen: set[tuple[str, str]] = set()
        with self._lock:
            for row_id, dest, case_id, kind, ref, due in rows:
                lane = (dest, case_id)
                if lane in seen:
                    continue
                seen.add(lane)
                if lane in self._busy or due > now:
                    continue
                if self._stopped.is_set() or started >= free:
                    break
                self._start(OutboxItem(row_id, dest, case_id, kind, ref))
                started += 1
            # A lane stays unsettled while it still has work; then offers go straight out again.
            pending = {(dest, case_id) for _, dest, case_id, *_ in rows}
            self._unsettled = {ln for ln in self._unsettled if ln in pending or ln in self._busy}
        return started

    def _attempt(self, row: OutboxItem) -> None:
        try:
            if row.kind == "packet":
                self._send_packet(row)
            else:
                self._send_event(row)
        except grpc.RpcError as exc:
            self._unsettle(row)
            code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
            details = exc.details() if hasattr(exc, "details") else str(exc)
            self._failed(row, f"{code.name}: {details}", permanent=code in _PERMANENT)
        except (_Refused, KeysError) as exc:
            self._unsettle(row)
            self._failed(row, f"bad answer from node {row.dest_node}: {exc}", permanent=False)
        except Exception as exc:
            self._unsettle(row)
            _log.exception("delivery of %s %s to %s failed", row.kind, row.ref, row.dest_node)
            self._failed(row, f"{type(exc).__name__}: {exc}", permanent=False)
        else:
            if row.kind != "packet":  # a packet's delivery commits its own completion
                self._done(row)
        finally:
            lane = (row.dest_node, row.case_id)
            with self._lock:
                self._in_flight.discard(row.id)
                self._busy.discard(lane)
                rescan = lane in self._unsettled
            if rescan:
                # Something waits behind this item, or it failed: the scan decides what's next.
                self._wake.set()

    def _unsettle(self, row: OutboxItem) -> None:
        with self._lock:
            self._unsettled.add((row.dest_node, row.case_id))

    def _send_packet(self, row: OutboxItem) -> None:
        rt = self._rt
        peer = rt.directory.current.node(row.dest_node)
        stub = rt.peers.stub(peer)
        response = stub.Deliver(
            _requests(delivery_parts(rt, row.ref, row.dest_node)),
            timeout=self._policy.rpc_timeout,
        )
        receipt_env = envelope_from_proto(response.receipt)
        verify_envelope(receipt_env, peer.signing_keys(rt.clock()), payload_type=RECEIPT_TYPE)
        receipt = Receipt.from_payload(receipt_env.payload)
        with rt.metadata.transaction() as session:
            packet = session.scalar(select(PacketRow).where(PacketRow.packet_id == row.ref))
            assert packet is not None
            expected = hashlib.sha256(packet.statement).hexdigest()
            if (
                str(receipt.packet_id) != row.ref
                or receipt.receiver != row.dest_node
                or receipt.statement_sha256 != expected
            ):
                raise _Refused("the receipt does not name this packet and node")
            delivery = session.get(DeliveryRow, (row.ref, row.dest_node))
            assert delivery is not None
            delivery.state = "delivered"
            delivery.receipt = json.dumps(receipt_env.to_json_dict()).encode()
            delivery.delivered_at = receipt.received_at
            delivery.attempts += 1
            delivery.last_error = ""
            item = session.get(OutboxRow, row.id)
            assert item is not None
            item.state = "done"
            item.attempts += 1
            item.done_at = rt.clock()
            item.last_error = ""
        _log.info(
            "delivered packet %s to %s%s",
            row.ref,
            row.dest_node,
            " (already held)" if response.duplicate else "",
        )

    def _send_event(self, row: OutboxItem) -> None:
        rt = self._rt
        peer = rt.directory.current.node(row.dest_node)
        with rt.metadata.read() as session:
            event = session.get(EventRow, row.ref)
            assert event is not None
            env = event_envelope(event)
        response = rt.peers.stub(peer).PushEvent(
            relay_pb2.PushEventRequest(event=envelope_to_proto(env)),
            timeout=self._policy.rpc_timeout,
        )
        ack_env = envelope_from_proto(response.ack)
        verify_envelope(ack_env, peer.signing_keys(rt.clock()), payload_type=ACK_TYPE)
        ack = EventAck.from_payload(ack_env.payload)
        if ack.event_hash != row.ref or ack.receiver != row.dest_node:
            raise _Refused("the ack does not name this event and node")

    def _done(self, row: OutboxItem) -> None:
        with self._rt.metadata.transaction() as session:
            item = session.get(OutboxRow, row.id)
            assert item is not None
            item.state = "done"
            item.attempts += 1
            item.done_at = self._rt.clock()
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
        with self._rt.metadata.transaction() as session:
            item = session.get(OutboxRow, row.id)
            assert item is not None
            item.attempts += 1
            item.last_error = error[:2000]
            if permanent:
                item.state = "failed"
            else:
                delay = self._policy.backoff(item.attempts)
                item.next_attempt_at = self._rt.clock() + timedelta(seconds=delay)
            if row.kind == "packet":
                delivery = session.get(DeliveryRow, (row.ref, row.dest_node))
                if delivery is not None:
                    delivery.attempts = item.attempts
                    delivery.last_error = item.last_error
                    if permanent:
                        delivery.state = "failed"
