"""Case events: each step of a leg is a statement signed by the acting node and linked to
the leg's previous event by hash, so both nodes hold the same tamper-evident chain.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tongban.keys.envelope import Envelope, EnvelopeSignature, sign_envelope, verify_envelope
from tongban.keys.errors import KeysError
from tongban.server.domain.errors import (
    IllegalTransition,
    InvalidRequest,
    NotFound,
    PermissionDenied,
)
from tongban.server.domain.statements import EVENT_TYPE, EventStatement
from tongban.server.domain.workflow import Party, aggregate_status, check_transition
from tongban.server.usecases.messages import OutboxItem
from tongban.server.usecases.runtime import NodeRuntime
from tongban.storage.sql import CaseRow, EventRow, LegRow, OutboxRow

__all__ = [
    "CaseAction",
    "CaseViewData",
    "HistoryEntry",
    "LegViewData",
    "OutboxItem",
    "act_on_case",
    "append_local_event",
    "apply_remote_event",
    "case_history",
    "case_view",
    "decode_signatures",
    "encode_signatures",
    "enqueue",
    "local_event",
    "outbox_items",
    "outbox_row",
    "remote_event",
]


def encode_signatures(env: Envelope) -> bytes:
    return json.dumps([{"keyid": s.key_id, "sig": s.sig.hex()} for s in env.signatures]).encode()


def decode_signatures(data: bytes) -> tuple[EnvelopeSignature, ...]:
    return tuple(EnvelopeSignature(s["keyid"], bytes.fromhex(s["sig"])) for s in json.loads(data))


def event_envelope(row: EventRow) -> Envelope:
    return Envelope(row.payload, EVENT_TYPE, decode_signatures(row.signatures))


def outbox_row(runtime: NodeRuntime, dest: str, case_id: str, kind: str, ref: str) -> OutboxRow:
    """A new outbox row owing ``dest`` a packet or event, due now."""
    now = runtime.clock()
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
    session: Session, runtime: NodeRuntime, dest: str, case_id: str, kind: str, ref: str
) -> OutboxRow:
    """Owe ``dest`` a packet or event; the delivery worker sends it until acknowledged."""
    row = outbox_row(runtime, dest, case_id, kind, ref)
    session.add(row)
    return row


def outbox_items(
    session: Session, rows: list[OutboxRow], *, batchable: bool = False
) -> list[OutboxItem]:
    """The items of freshly added outbox rows (their ids assigned by a flush)."""
    session.flush()
    return [OutboxItem(r.id, r.dest_node, r.case_id, r.kind, r.ref, batchable) for r in rows]


def party_of(runtime: NodeRuntime, case: CaseRow, leg: LegRow) -> Party:
    if leg.node_id == runtime.node_id:
        return Party.HANDLING
    if case.accepting_node == runtime.node_id:
        return Party.ACCEPTING
    raise PermissionDenied(f"node {runtime.node_id} takes no part in leg {leg.node_id}")


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
    runtime: NodeRuntime,
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
    at = at or runtime.clock()
    if event == "submitted":
        if leg.head_seq != 0:
            raise IllegalTransition(f"leg {leg.node_id} was already submitted")
        status = "submitted"
    else:
        status = check_transition(event, party_of(runtime, case, leg), leg.status, leg=leg.node_id)
    st = EventStatement(
        case_id=uuid.UUID(case.case_id),
        leg=leg.node_id,
        seq=leg.head_seq + 1,
        prev=leg.head_hash,
        event=event,
        actor_node=runtime.node_id,
        actor_hall=actor_hall,
        at=at,
        detail=dict(detail),
        packet_id=packet_id,
    )
    signer = runtime.keys.signer(at)
    env = sign_envelope(st.to_payload(), EVENT_TYPE, [signer])
    _apply(leg, st, env.digest, status)
    return env, _row(st, env, signer.key_id)


def append_local_event(
    session: Session,
    runtime: NodeRuntime,
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
    env, row = local_event(
        runtime, case, leg, event, actor_hall, detail, packet_id=packet_id, at=at
    )
    session.add(row)
    return env


def verify_event_signature(
    runtime: NodeRuntime, env: Envelope, actor_node: str, at: datetime
) -> str:
    """Check an event's signature against the actor node's keys valid at ``at``; key id."""
    keys = runtime.directory.current.node(actor_node).signing_keys(at)
    return verify_envelope(env, keys, payload_type=EVENT_TYPE).key_id


def _peer_statement(
    runtime: NodeRuntime, peer_node: str, env: Envelope
) -> tuple[EventStatement, str]:
    """An event a peer node made and signed itself: its statement and signing key id."""
    st = EventStatement.from_payload(env.payload)
    if st.actor_node != peer_node:
        raise PermissionDenied(
            f"event was made by node {st.actor_node} but sent by node {peer_node}"
        )
    return st, verify_event_signature(runtime, env, peer_node, runtime.clock())


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
    runtime: NodeRuntime, peer_node: str, env: Envelope, case: CaseRow, leg: LegRow
) -> tuple[EventStatement, EventRow]:
    """Verify a peer's event for a leg held as ``leg`` (e.g. one being created), advance
    the leg, and return the event's row for the caller to store; no database access.

    Raises: as :func:`apply_remote_event`, and InvalidRequest for an event of another leg.
    """
    st, key_id = _peer_statement(runtime, peer_node, env)
    return st, _chained_row(peer_node, st, env, key_id, case, leg)


def apply_remote_event(
    session: Session,
    runtime: NodeRuntime,
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
    st, key_id = _peer_statement(runtime, peer_node, env)
    existing = session.get(EventRow, env.digest)
    if existing is not None:
        return st, True
    case = case or session.get(CaseRow, str(st.case_id))
    leg = leg or session.get(LegRow, (str(st.case_id), st.leg))
    if case is None or leg is None:
        raise NotFound(f"case {st.case_id} leg {st.leg} is not known at node {runtime.node_id}")
    session.add(_chained_row(peer_node, st, env, key_id, case, leg))
    return st, False


# ---- hall-facing case operations -----------------------------------------------------------


@dataclass(frozen=True)
class CaseAction:
    """What a hall asks to do to a leg."""

    event: str
    detail: Mapping[str, Any]


@dataclass(frozen=True)
class LegViewData:
    node_id: str
    hall_id: str
    department: str
    status: str
    decision: str
    event_count: int
    head_hash: str
    result_packets: tuple[str, ...]


@dataclass(frozen=True)
class CaseViewData:
    case_id: str
    mode: str
    matter_code: str
    matter_name: str
    accepting_node: str
    accepting_hall: str
    status: str
    complete: bool
    legs: tuple[LegViewData, ...]
    created_at: datetime


@dataclass(frozen=True)
class HistoryEntry:
    leg: str
    seq: int
    type: str
    actor_node: str
    actor_hall: str
    at: datetime
    detail_json: str
    hash: str
    prev_hash: str
    signature_status: str
    signed_by_key: str


def _visible_case(
    session: Session, runtime: NodeRuntime, hall_id: str, case_id: str
) -> tuple[CaseRow, list[LegRow]]:
    """The case and the legs this hall may see; NotFound for anything else."""
    case = session.get(CaseRow, case_id)
    if case is not None:
        legs = list(session.scalars(select(LegRow).where(LegRow.case_id == case_id)))
        if case.accepting_node == runtime.node_id and case.accepting_hall == hall_id:
            return case, legs
        mine = [g for g in legs if g.node_id == runtime.node_id and g.hall_id == hall_id]
        if mine:
            return case, mine
    raise NotFound(f"case {case_id} not found for hall {hall_id}")


def _view(session: Session, case: CaseRow, legs: Sequence[LegRow]) -> CaseViewData:
    from tongban.storage.sql import PacketRow

    views = []
    for g in sorted(legs, key=lambda g: g.node_id):
        results = session.scalars(
            select(PacketRow.packet_id).where(
                PacketRow.case_id == case.case_id,
                PacketRow.kind == "result",
                PacketRow.sender_node == g.node_id,
            )
        )
        views.append(
            LegViewData(
                g.node_id,
                g.hall_id,
                g.department,
                g.status,
                g.decision,
                g.head_seq,
                g.head_hash,
                tuple(results),
            )
        )
    status, complete = aggregate_status(g.status for g in legs)
    return CaseViewData(
        case.case_id,
        case.mode,
        case.matter_code,
        case.matter_name,
        case.accepting_node,
        case.accepting_hall,
        status,
        complete,
        tuple(views),
        case.created_at,
    )


def case_view(runtime: NodeRuntime, hall_id: str, case_id: str) -> CaseViewData:
    with runtime.metadata.read() as session:
        case, legs = _visible_case(session, runtime, hall_id, case_id)
        return _view(session, case, legs)


_ACTIONS = {
    "accepted": Party.HANDLING,
    "refused": Party.HANDLING,
    "supplement_requested": Party.HANDLING,
    "decided": Party.HANDLING,
    "issued": Party.ACCEPTING,
    "delivered": Party.ACCEPTING,
}


def _check_detail(action: CaseAction) -> dict[str, Any]:
    detail = dict(action.detail)
    if action.event == "refused" and not str(detail.get("reason", "")).strip():
        raise InvalidRequest("refusing a case needs a reason (不予受理理由)")
    if action.event == "supplement_requested":
        missing = [str(m).strip() for m in detail.get("missing", []) if str(m).strip()]
        if not missing:
            raise InvalidRequest("a supplement request must list the missing materials")
        detail["missing"] = missing
    if action.event == "decided" and detail.get("decision") not in ("approved", "denied"):
        raise InvalidRequest("a decision must be 'approved' or 'denied'")
    return detail


def act_on_case(
    runtime: NodeRuntime, hall_id: str, case_id: str, leg_node: str, action: CaseAction
) -> CaseViewData:
    """Apply a hall's action to one leg, sign the event and owe it to the other party.

    Raises:
        NotFound: the case or leg is not visible to this hall.
        IllegalTransition: the step is not allowed now or not by this party.
        InvalidRequest: the action lacks what it needs (a reason, the missing materials…).
    """
    if action.event not in _ACTIONS:
        raise InvalidRequest(f"unknown action {action.event!r}")
    detail = _check_detail(action)
    with runtime.metadata.transaction() as session:
        case, legs = _visible_case(session, runtime, hall_id, case_id)
        if not leg_node:
            if len(legs) != 1:
                raise InvalidRequest(f"case {case_id} has {len(legs)} legs; name the leg")
            leg_node = legs[0].node_id
        leg = next((g for g in legs if g.node_id == leg_node), None)
        if leg is None:
            raise NotFound(f"case {case_id} has no leg {leg_node} for hall {hall_id}")
        party = party_of(runtime, case, leg)
        if party is not _ACTIONS[action.event]:
            raise IllegalTransition(
                f"only the {_ACTIONS[action.event].value} side may record "
                f"{action.event!r} on leg {leg.node_id}"
            )
        if party is Party.HANDLING and leg.hall_id != hall_id:
            raise NotFound(f"case {case_id} not found for hall {hall_id}")
        env = append_local_event(session, runtime, case, leg, action.event, hall_id, detail)
        dest = case.accepting_node if party is Party.HANDLING else leg.node_id
        items = outbox_items(
            session, [enqueue(session, runtime, dest, case.case_id, "event", env.digest)]
        )
        view = _view(session, case, legs)
    runtime.offer_delivery(items)
    return view


def case_history(
    runtime: NodeRuntime, hall_id: str, case_id: str
) -> tuple[list[HistoryEntry], bool]:
    """Every event of the visible legs, each with its signature and chain status."""
    with runtime.metadata.read() as session:
        _, legs = _visible_case(session, runtime, hall_id, case_id)
        rows = list(
            session.scalars(
                select(EventRow)
                .where(
                    EventRow.case_id == case_id, EventRow.leg_node.in_([g.node_id for g in legs])
                )
                .order_by(EventRow.at, EventRow.leg_node, EventRow.seq)
            )
        )
    entries = []
    intact = True
    heads: dict[str, str] = {}
    for row in sorted(rows, key=lambda r: (r.leg_node, r.seq)):
        env = event_envelope(row)
        status = "verified"
        try:
            if hashlib.sha256(row.payload).hexdigest() != row.event_hash:
                raise InvalidRequest("stored event does not match its hash")
            st = EventStatement.from_payload(row.payload)
            key_id = verify_event_signature(runtime, env, st.actor_node, st.at)
            if st.prev != heads.get(row.leg_node, "") or st.seq != row.seq:
                status = "broken-chain"
        except (KeysError, InvalidRequest) as exc:
            status, key_id = f"invalid: {exc}", ""
        intact = intact and status == "verified"
        heads[row.leg_node] = row.event_hash
        entries.append(
            HistoryEntry(
                row.leg_node,
                row.seq,
                row.type,
                row.actor_node,
                row.actor_hall,
                row.at,
                json.dumps(json.loads(row.payload)["detail"], ensure_ascii=False),
                row.event_hash,
                row.prev_hash,
                status,
                key_id,
            )
        )
    entries.sort(key=lambda e: (e.at, e.leg, e.seq))
    return entries, intact
