"""A case's signed event chain per leg: local and remote events, their checks, their outbox.

The outbox items made here carry each event to the other nodes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from tongban.keys.envelope import Envelope, EnvelopeSignature, sign_envelope, verify_envelope
from tongban.keys.keyring import NodeKeyRing
from tongban.server.domain.errors import (
    IllegalTransition,
    InvalidRequest,
    NotFound,
    PermissionDenied,
)
from tongban.server.domain.statements import EVENT_TYPE, EventStatement
from tongban.server.domain.workflow import Party, check_transition
from tongban.server.usecases.messages import OutboxItem
from tongban.server.usecases.runtime import Clock, DirectoryHolder
from tongban.storage.sql import CaseRow, EventRow, LegRow, OutboxRow

__all__ = [
    "EventParts",
    "append_local_event",
    "apply_remote_event",
    "decode_signatures",
    "encode_signatures",
    "enqueue",
    "event_envelope",
    "local_event",
    "outbox_items",
    "outbox_row",
    "party_of",
    "remote_event",
    "verify_event_signature",
]


class EventParts(Protocol):
    """What recording and checking case events needs of the node that does it."""

    @property
    def node_id(self) -> str: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def keys(self) -> NodeKeyRing: ...

    @property
    def directory(self) -> DirectoryHolder: ...


def encode_signatures(env: Envelope) -> bytes:
    return json.dumps([{"keyid": s.key_id, "sig": s.sig.hex()} for s in env.signatures]).encode()


def decode_signatures(data: bytes) -> tuple[EnvelopeSignature, ...]:
    return tuple(EnvelopeSignature(s["keyid"], bytes.fromhex(s["sig"])) for s in json.loads(data))


def event_envelope(row: EventRow) -> Envelope:
    return Envelope(row.payload, EVENT_TYPE, decode_signatures(row.signatures))


def outbox_row(node: EventParts, dest: str, case_id: str, kind: str, ref: str) -> OutboxRow:
    """A new outbox row owing ``dest`` a packet or event, due now."""
    now = node.clock()
    return OutboxRow(
        dest_node=dest,
        case_id=case_id,
        kind=kind,
        ref=ref,
        state="pending",
        attempts=0,
        next_attempt_at=now,
        last_error="",
        created_at=now,
    )


def enqueue(
    session: Session, node: EventParts, dest: str, case_id: str, kind: str, ref: str
) -> OutboxRow:
    """Owe ``dest`` a packet or event; the delivery worker sends it until acknowledged."""
    row = outbox_row(node, dest, case_id, kind, ref)
    session.add(row)
    return row


def outbox_items(
    session: Session, rows: list[OutboxRow], *, batchable: bool = False
) -> list[OutboxItem]:
    """The items of freshly added outbox rows (their ids assigned by a flush)."""
    session.flush()
    return [OutboxItem(r.id, r.dest_node, r.case_id, r.kind, r.ref, batchable) for r in rows]


def party_of(node: EventParts, case: CaseRow, leg: LegRow) -> Party:
    if leg.node_id == node.node_id:
        return Party.HANDLING
    if case.accepting_node == node.node_id:
        return Party.ACCEPTING
    raise PermissionDenied(f"node {node.node_id} takes no part in leg {leg.node_id}")


def _apply(leg: LegRow, st: EventStatement, event_hash: str, status: str) -> None:
    leg.status = status
    leg.head_hash = event_hash
    leg.head_seq = st.seq
    leg.updated_at = st.at
    if st.event == "decided":
        leg.decision = str(st.detail.get("decision", ""))
    if st.event == "supplement_requested":
        leg.supplement_requests += 1


def _row(st: EventStatement, env: Envelope, key_id: str) -> EventRow:
    return EventRow(
        event_hash=env.digest,
        case_id=str(st.case_id),
        leg_node=st.leg,
        seq=st.seq,
        prev_hash=st.prev,
        type=st.event,
        actor_node=st.actor_node,
        actor_hall=st.actor_hall,
        at=st.at,
        packet_id=st.packet_id,
        payload=env.payload,
        signatures=encode_signatures(env),
        signed_by_key=key_id,
    )


def local_event(
    node: EventParts,
    case: CaseRow,
    leg: LegRow,
    event: str,
    actor_hall: str,
    detail: Mapping[str, Any],
    *,
    packet_id: str = "",
    at: datetime | None = None,
) -> tuple[Envelope, EventRow]:
    """Check and sign an event this node's hall caused, chained to ``leg``, whose head it
    advances; the event row is returned for the caller to store with the leg.

    Raises:
        IllegalTransition: the step is not allowed for this party now.
    """
    at = at or node.clock()
    if event == "submitted":
        if leg.head_seq != 0:
            raise IllegalTransition(f"leg {leg.node_id} was already submitted")
        status = "submitted"
    else:
        status = check_transition(event, party_of(node, case, leg), leg.status, leg=leg.node_id)
    st = EventStatement(
        case_id=uuid.UUID(case.case_id),
        leg=leg.node_id,
        seq=leg.head_seq + 1,
        prev=leg.head_hash,
        event=event,
        actor_node=node.node_id,
        actor_hall=actor_hall,
        at=at,
        detail=dict(detail),
        packet_id=packet_id,
    )
    signer = node.keys.signer(at)
    env = sign_envelope(st.to_payload(), EVENT_TYPE, [signer])
    _apply(leg, st, env.digest, status)
    return env, _row(st, env, signer.key_id)


def append_local_event(
    session: Session,
    node: EventParts,
    case: CaseRow,
    leg: LegRow,
    event: str,
    actor_hall: str,
    detail: Mapping[str, Any],
    *,
    packet_id: str = "",
    at: datetime | None = None,
) -> Envelope:
    """Record an event this node's hall caused: check the step, sign, chain and store it.

    Raises:
        IllegalTransition: the step is not allowed for this party now.
    """
    env, row = local_event(node, case, leg, event, actor_hall, detail, packet_id=packet_id, at=at)
    session.add(row)
    return env


def verify_event_signature(node: EventParts, env: Envelope, actor_node: str, at: datetime) -> str:
    """Check an event's signature against the actor node's keys valid at ``at``; key id."""
    keys = node.directory.current.node(actor_node).signing_keys(at)
    return verify_envelope(env, keys, payload_type=EVENT_TYPE).key_id


def _peer_statement(node: EventParts, peer_node: str, env: Envelope) -> tuple[EventStatement, str]:
    """An event a peer node made and signed itself: its statement and signing key id."""
    st = EventStatement.from_payload(env.payload)
    if st.actor_node != peer_node:
        raise PermissionDenied(
            f"event was made by node {st.actor_node} but sent by node {peer_node}"
        )
    return st, verify_event_signature(node, env, peer_node, node.clock())


def _chained_row(
    peer_node: str,
    st: EventStatement,
    env: Envelope,
    key_id: str,
    case: CaseRow,
    leg: LegRow,
) -> EventRow:
    """Check that a peer's event may extend ``leg`` now, advance the leg, and return the
    event's row."""
    if str(st.case_id) != case.case_id or st.leg != leg.node_id:
        raise InvalidRequest(
            f"event of case {st.case_id} leg {st.leg} sent for case {case.case_id} "
            f"leg {leg.node_id}"
        )
    if st.event == "submitted":
        if leg.head_seq != 0 or st.seq != 1 or st.prev:
            raise IllegalTransition(f"leg {st.leg} cannot be submitted twice")
        if case.accepting_node != peer_node:
            raise PermissionDenied(f"only node {case.accepting_node} may submit case {st.case_id}")
        status = "submitted"
    else:
        expected = Party.HANDLING if peer_node == st.leg else Party.ACCEPTING
        if expected is Party.ACCEPTING and case.accepting_node != peer_node:
            raise PermissionDenied(f"node {peer_node} takes no part in leg {st.leg}")
        if st.seq != leg.head_seq + 1 or st.prev != leg.head_hash:
            raise IllegalTransition(
                f"event {st.seq} of leg {st.leg} does not follow the held event {leg.head_seq}"
            )
        status = check_transition(st.event, expected, leg.status, leg=st.leg)
    row = _row(st, env, key_id)
    _apply(leg, st, env.digest, status)
    return row


def remote_event(
    node: EventParts, peer_node: str, env: Envelope, case: CaseRow, leg: LegRow
) -> tuple[EventStatement, EventRow]:
    """Verify a peer's event for a leg held as ``leg`` (e.g. one being created), advance
    the leg, and return the event's row for the caller to store; no database access.

    Raises: as :func:`apply_remote_event`, and InvalidRequest for an event of another leg.
    """
    st, key_id = _peer_statement(node, peer_node, env)
    return st, _chained_row(peer_node, st, env, key_id, case, leg)


def apply_remote_event(
    session: Session,
    node: EventParts,
    peer_node: str,
    env: Envelope,
    *,
    case: CaseRow | None = None,
    leg: LegRow | None = None,
) -> tuple[EventStatement, bool]:
    """Verify an event a peer node sent and append it to this node's copy of the leg.

    Returns the statement and whether it was already held (a replay changes nothing).

    Raises:
        Unauthenticated (via keys errors): bad signature.
        PermissionDenied: the event was not made by the sending node, or that node may not
            act on this leg.
        IllegalTransition: the event does not extend the chain or is not allowed now.
    """
    st, key_id = _peer_statement(node, peer_node, env)
    existing = session.get(EventRow, env.digest)
    if existing is not None:
        return st, True
    case = case or session.get(CaseRow, str(st.case_id))
    leg = leg or session.get(LegRow, (str(st.case_id), st.leg))
    if case is None or leg is None:
        raise NotFound(f"case {st.case_id} leg {st.leg} is not known at node {node.node_id}")
    session.add(_chained_row(peer_node, st, env, key_id, case, leg))
    return st, False
