"""A hall's case steps: view a case, act on one of its legs, and read its event history.

Each step of a leg is a statement signed by the acting node and linked to the leg's
previous event by hash, so both nodes hold the same tamper-evident chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tongban.keys.envelope import Envelope, sign_envelope
from tongban.keys.errors import KeysError
from tongban.keys.keyring import NodeKeyRing
from tongban.server.domain.errors import (
    IllegalTransition,
    InvalidRequest,
    NotFound,
)
from tongban.server.domain.statements import ACK_TYPE, EventAck, EventStatement
from tongban.server.domain.workflow import Party, aggregate_status
from tongban.server.usecases.clocks import ClockHooks
from tongban.server.usecases.events import (
    append_local_event,
    apply_remote_event,
    enqueue,
    event_envelope,
    outbox_items,
    party_of,
    verify_event_signature,
)
from tongban.server.usecases.id_prefixes import resolve_case_id
from tongban.server.usecases.messages import OutboxItem
from tongban.server.usecases.runtime import Clock, DirectoryHolder
from tongban.storage.sql import CaseRow, EventRow, LegRow, MetadataStore

__all__ = [
    "CaseAction",
    "CaseSteps",
    "CaseViewData",
    "HistoryEntry",
    "LegViewData",
    "OutboxItem",
]


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
    session: Session, node_id: str, hall_id: str, case_id: str
) -> tuple[CaseRow, list[LegRow]]:
    """The case and the legs this hall may see; NotFound for anything else."""
    case = session.get(CaseRow, case_id)
    if case is not None:
        legs = list(session.scalars(select(LegRow).where(LegRow.case_id == case_id)))
        if case.accepting_node == node_id and case.accepting_hall == hall_id:
            return case, legs
        mine = [g for g in legs if g.node_id == node_id and g.hall_id == hall_id]
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


_ACTIONS = {
    "accepted": Party.HANDLING,
    "refused": Party.HANDLING,
    "supplement_requested": Party.HANDLING,
    "decided": Party.HANDLING,
    "suspended": Party.HANDLING,
    "resumed": Party.HANDLING,
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
    if action.event == "suspended" and not str(detail.get("reason", "")).strip():
        raise InvalidRequest("suspending a case needs a reason (挂起理由)")
    if action.event == "decided" and detail.get("decision") not in ("approved", "denied"):
        raise InvalidRequest("a decision must be 'approved' or 'denied'")
    return detail


class CaseSteps:
    """What halls do to cases, and what a peer's case event does here.

    Its dependencies are its constructor's arguments: the metadata store with the cases,
    legs and events; the node's relay keys, which sign the events this node records; the
    directory, whose keys check the events peers made; the clock; ``offer_delivery``,
    which hands new outbox items to the delivery worker once they are committed; and the
    case clocks' hooks, which check and move a leg's deadline clock with each step.
    """

    def __init__(
        self,
        *,
        node_id: str,
        metadata: MetadataStore,
        keys: NodeKeyRing,
        directory: DirectoryHolder,
        clock: Clock,
        offer_delivery: Callable[[list[OutboxItem]], None],
        clocks: ClockHooks | None = None,
    ) -> None:
        self.node_id = node_id
        self.clocks = clocks
        self.metadata = metadata
        self.keys = keys
        self.directory = directory
        self.clock = clock
        self.offer_delivery = offer_delivery

    def receive_event(self, peer_node: str, env: Envelope) -> tuple[Envelope, bool]:
        """Apply a case event a peer node pushed; return the signed acknowledgement and
        whether the event was already held.

        Raises: as :func:`~tongban.server.usecases.events.apply_remote_event`.
        """
        with self.metadata.transaction() as session:
            _, duplicate = apply_remote_event(session, self, peer_node, env)
        now = self.clock()
        ack = sign_envelope(
            EventAck(env.digest, self.node_id, now).to_payload(),
            ACK_TYPE,
            [self.keys.signer(now)],
        )
        return ack, duplicate

    def view(self, hall_id: str, case_id: str) -> CaseViewData:
        with self.metadata.read() as session:
            case, legs = _visible_case(session, self.node_id, hall_id, case_id)
            return _view(session, case, legs)

    def act(self, hall_id: str, case_id: str, leg_node: str, action: CaseAction) -> CaseViewData:
        """Apply a hall's action to one leg, sign the event and owe it to the other party.

        Raises:
            NotFound: the case or leg is not visible to this hall.
            IllegalTransition: the step is not allowed now or not by this party.
            InvalidRequest: the action lacks what it needs (a reason, the missing materials…).
        """
        if action.event not in _ACTIONS:
            raise InvalidRequest(f"unknown action {action.event!r}")
        detail = _check_detail(action)
        with self.metadata.transaction() as session:
            case, legs = _visible_case(session, self.node_id, hall_id, case_id)
            if not leg_node:
                if len(legs) != 1:
                    raise InvalidRequest(f"case {case_id} has {len(legs)} legs; name the leg")
                leg_node = legs[0].node_id
            leg = next((g for g in legs if g.node_id == leg_node), None)
            if leg is None:
                raise NotFound(f"case {case_id} has no leg {leg_node} for hall {hall_id}")
            party = party_of(self, case, leg)
            if party is not _ACTIONS[action.event]:
                raise IllegalTransition(
                    f"only the {_ACTIONS[action.event].value} side may record "
                    f"{action.event!r} on leg {leg.node_id}"
                )
            if party is Party.HANDLING and leg.hall_id != hall_id:
                raise NotFound(f"case {case_id} not found for hall {hall_id}")
            if self.metadata.dialect == "postgresql":
                # The leg as committed now, locked: a concurrent step (a supervision pass
                # deciding by default) either went first or waits for this one.
                session.refresh(leg, with_for_update=True)
            now = self.clock()
            clocks = self.clocks if party is Party.HANDLING else None
            if clocks is not None:
                clocks.before(session, case, leg, action.event, detail, now)
            env = append_local_event(
                session, self, case, leg, action.event, hall_id, detail, at=now
            )
            if clocks is not None:
                clocks.after(session, case, leg, action.event, detail, now)
            dest = case.accepting_node if party is Party.HANDLING else leg.node_id
            items = outbox_items(
                session, [enqueue(session, self, dest, case.case_id, "event", env.digest)]
            )
            view = _view(session, case, legs)
        self.offer_delivery(items)
        return view

    def history(self, hall_id: str, case_id: str) -> tuple[list[HistoryEntry], bool]:
        """Every event of the visible legs, each with its signature and chain status."""
        with self.metadata.read() as session:
            _, legs = _visible_case(session, self.node_id, hall_id, case_id)
            rows = list(
                session.scalars(
                    select(EventRow)
                    .where(
                        EventRow.case_id == case_id,
                        EventRow.leg_node.in_([g.node_id for g in legs]),
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
                key_id = verify_event_signature(self, env, st.actor_node, st.at)
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

    def case_id(self, hall_id: str, given: str) -> str:
        """The whole id of the one case of this hall whose id is ``given`` or starts with it.

        Raises: as :func:`~tongban.server.usecases.id_prefixes.resolve_case_id`.
        """
        return resolve_case_id(self, hall_id, given)
