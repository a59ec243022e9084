"""gRPC servicers: they read the caller's identity, convert messages, and delegate.

No use-case logic lives here, and protobuf types stop at this layer.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from tongban.keys.clock import format_time
from tongban.keys.envelope import sign_envelope
from tongban.proto import hall_pb2, hall_pb2_grpc, relay_pb2, relay_pb2_grpc
from tongban.server.domain.errors import InvalidRequest
from tongban.server.domain.statements import ACK_TYPE, EventAck, FileEntry, RecipientEntry
from tongban.server.grpc.converters import (
    envelope_from_proto,
    envelope_to_proto,
    opening_from_proto,
    segment_from_proto,
)
from tongban.server.grpc.identity import caller_identity
from tongban.server.grpc.status import guard, guard_stream, refusal_of
from tongban.server.usecases import cases, events, inbox, messages, receive, submit
from tongban.server.usecases.id_prefixes import resolve_case_id, resolve_packet_id
from tongban.server.usecases.runtime import NodeRuntime, require_hall, require_node

__all__ = ["HallServicer", "RelayServicer"]


_KINDS = {
    hall_pb2.PACKET_KIND_APPLICATION: "application",
    hall_pb2.PACKET_KIND_SUPPLEMENT: "supplement",
    hall_pb2.PACKET_KIND_RESULT: "result",
}
_KIND_TO_PB: dict[str, hall_pb2.PacketKind.ValueType] = {v: k for k, v in _KINDS.items()}
_MODES = {hall_pb2.HANDLING_MODE_ON_BEHALF: "on_behalf", hall_pb2.HANDLING_MODE_JOINT: "joint"}
_MODE_TO_PB: dict[str, hall_pb2.HandlingMode.ValueType] = {v: k for k, v in _MODES.items()}
_ID_TYPES = {
    hall_pb2.APPLICANT_ID_TYPE_CITIZEN: "citizen",
    hall_pb2.APPLICANT_ID_TYPE_COMPANY: "company",
}
_ID_TYPE_TO_PB = {v: k for k, v in _ID_TYPES.items()}


# ---- conversions ------------------------------------------------------------------------------


def _header(h: hall_pb2.SubmitHeader) -> messages.SubmitHeader:
    applicant = None
    if h.HasField("applicant"):
        if h.applicant.id_type not in _ID_TYPES:
            raise InvalidRequest("applicant id type must be CITIZEN or COMPANY")
        applicant = messages.Applicant(
            h.applicant.name, _ID_TYPES[h.applicant.id_type], h.applicant.id_number
        )
    return messages.SubmitHeader(
        packet_id=h.packet_id,
        kind=_KINDS.get(h.kind, "unspecified"),
        mode=_MODES.get(h.mode, "unspecified"),
        matter_code=h.matter_code,
        matter_name=h.matter_name,
        recipients=tuple(RecipientEntry(r.node_id, r.hall_id, r.department) for r in h.recipients),
        applicant=applicant,
        form_json=h.form_json,
        case_id=h.case_id,
    )


def _submit_parts(requests: Iterator[hall_pb2.SubmitRequest]) -> Iterator[messages.SubmitPart]:
    for req in requests:
        which = req.WhichOneof("part")
        if which == "header":
            yield _header(req.header)
        elif which == "file_begin":
            fb = req.file_begin
            yield messages.FileBegin(fb.name, fb.media_type, fb.size)
        elif which == "data":
            yield req.data
        elif which == "file_end":
            yield messages.FileEnd(req.file_end.sha256)
        else:
            raise InvalidRequest("empty submit message")


def _submit_response(r: messages.SubmitResult) -> hall_pb2.SubmitResponse:
    return hall_pb2.SubmitResponse(
        packet_id=r.packet_id,
        case_id=r.case_id,
        duplicate=r.duplicate,
        deliveries=_deliveries(r.deliveries),
    )


def _deliveries(ds: tuple[messages.DeliveryInfo, ...]) -> list[hall_pb2.DeliveryState]:
    return [
        hall_pb2.DeliveryState(
            node_id=d.node_id, state=d.state, attempts=d.attempts, last_error=d.last_error
        )
        for d in ds
    ]


def _entry(item: messages.InboxItem) -> hall_pb2.InboxEntry:
    return hall_pb2.InboxEntry(
        packet_id=item.packet_id,
        case_id=item.case_id,
        kind=_KIND_TO_PB.get(item.kind, hall_pb2.PACKET_KIND_UNSPECIFIED),
        mode=_MODE_TO_PB.get(item.mode, hall_pb2.HANDLING_MODE_UNSPECIFIED),
        matter_code=item.matter_code,
        matter_name=item.matter_name,
        sender_node=item.sender_node,
        sender_hall=item.sender_hall,
        direction=item.direction,
        created_at=format_time(item.created_at),
        deliveries=_deliveries(item.deliveries),
        file_count=item.file_count,
        total_size=item.total_size,
    )


def _file_info(f: FileEntry) -> hall_pb2.FileInfo:
    return hall_pb2.FileInfo(
        index=f.index, name=f.name, media_type=f.media_type, size=f.size, sha256=f.sha256
    )


def _case_view(v: cases.CaseViewData) -> hall_pb2.CaseView:
    return hall_pb2.CaseView(
        case_id=v.case_id,
        mode=_MODE_TO_PB.get(v.mode, hall_pb2.HANDLING_MODE_UNSPECIFIED),
        matter_code=v.matter_code,
        matter_name=v.matter_name,
        accepting_node=v.accepting_node,
        accepting_hall=v.accepting_hall,
        status=v.status,
        complete=v.complete,
        created_at=format_time(v.created_at),
        legs=[
            hall_pb2.LegView(
                node_id=g.node_id,
                hall_id=g.hall_id,
                department=g.department,
                status=g.status,
                decision=g.decision,
                event_count=g.event_count,
                head_hash=g.head_hash,
                result_packets=list(g.result_packets),
            )
            for g in v.legs
        ],
    )


def _action(req: hall_pb2.ActRequest) -> cases.CaseAction:
    which = req.WhichOneof("action")
    if which == "accept":
        return cases.CaseAction(
            "accepted", {"accepted_with_missing": list(req.accept.accepted_with_missing)}
        )
    if which == "refuse":
        return cases.CaseAction("refused", {"reason": req.refuse.reason})
    if which == "request_supplement":
        rs = req.request_supplement
        return cases.CaseAction(
            "supplement_requested", {"missing": list(rs.missing), "note": rs.note}
        )
    if which == "decide":
        decision = "approved" if req.decide.approved else "denied"
        return cases.CaseAction("decided", {"decision": decision, "note": req.decide.note})
    if which == "issue":
        return cases.CaseAction("issued", {"note": req.issue.note})
    if which == "deliver":
        return cases.CaseAction("delivered", {"note": req.deliver.note})
    raise InvalidRequest("the request names no action")


def _fetch_responses(parts: Iterator[messages.FetchPart]) -> Iterator[hall_pb2.FetchResponse]:
    for part in parts:
        if isinstance(part, messages.FetchOpening):
            a = part.applicant
            yield hall_pb2.FetchResponse(
                opening=hall_pb2.FetchOpening(
                    entry=_entry(part.item),
                    applicant=hall_pb2.Applicant(
                        name=a.name, id_type=_ID_TYPE_TO_PB[a.id_type], id_number=a.id_number
                    )
                    if a
                    else None,
                    form_json=part.form_json,
                    files=[_file_info(f) for f in part.files],
                    signature_status=part.signature_status,
                    signed_by_key=part.signed_by_key,
                    statement=envelope_to_proto(part.statement),
                )
            )
        elif isinstance(part, FileEntry):
            yield hall_pb2.FetchResponse(file_begin=_file_info(part))
        elif isinstance(part, messages.FetchFileEnd):
            yield hall_pb2.FetchResponse(
                file_end=hall_pb2.FetchFileEnd(
                    index=part.index, sha256=part.sha256, verified=part.verified
                )
            )
        else:
            yield hall_pb2.FetchResponse(data=part)


# ---- servicers --------------------------------------------------------------------------------


class HallServicer(hall_pb2_grpc.HallServiceServicer):
    def __init__(self, runtime: NodeRuntime) -> None:
        self._rt = runtime

    def _hall(self, context: grpc.ServicerContext) -> str:
        return require_hall(self._rt, caller_identity(context, self._rt.directory.current))

    def Submit(
        self, request_iterator: Iterator[hall_pb2.SubmitRequest], context: grpc.ServicerContext
    ) -> hall_pb2.SubmitResponse:
        def call() -> hall_pb2.SubmitResponse:
            r = submit.submit_packet(self._rt, self._hall(context), _submit_parts(request_iterator))
            return _submit_response(r)

        return guard(context, "Submit", call)

    def SubmitForm(
        self, request: hall_pb2.SubmitHeader, context: grpc.ServicerContext
    ) -> hall_pb2.SubmitResponse:
        def call() -> hall_pb2.SubmitResponse:
            hall = self._hall(context)
            return _submit_response(submit.submit_packet(self._rt, hall, iter([_header(request)])))

        return guard(context, "SubmitForm", call)

    def ListInbox(
        self, request: hall_pb2.InboxRequest, context: grpc.ServicerContext
    ) -> hall_pb2.InboxResponse:
        def call() -> hall_pb2.InboxResponse:
            items = inbox.list_inbox(
                self._rt,
                self._hall(context),
                direction=request.direction,
                limit=request.limit,
            )
            return hall_pb2.InboxResponse(entries=[_entry(i) for i in items])

        return guard(context, "ListInbox", call)

    def WatchInbox(
        self, request: hall_pb2.InboxRequest, context: grpc.ServicerContext
    ) -> Iterator[hall_pb2.InboxEntry]:
        def stream() -> Iterator[hall_pb2.InboxEntry]:
            hall = self._hall(context)
            after = 0
            if not request.include_existing:
                existing = inbox.list_inbox(
                    self._rt, hall, direction=request.direction, limit=inbox.MAX_INBOX_PAGE
                )
                while existing:
                    after = existing[-1].row_id
                    existing = inbox.list_inbox(
                        self._rt,
                        hall,
                        direction=request.direction,
                        after_row=after,
                        limit=inbox.MAX_INBOX_PAGE,
                    )
            generation = self._rt.inbox.generation
            while context.is_active():
                for item in inbox.list_inbox(
                    self._rt,
                    hall,
                    direction=request.direction,
                    after_row=after,
                    limit=inbox.MAX_INBOX_PAGE,
                ):
                    after = item.row_id
                    yield _entry(item)
                generation = self._rt.inbox.wait(generation, timeout=1.0)

        return guard_stream(context, "WatchInbox", stream)

    def Fetch(
        self, request: hall_pb2.FetchRequest, context: grpc.ServicerContext
    ) -> Iterator[hall_pb2.FetchResponse]:
        def stream() -> Iterator[hall_pb2.FetchResponse]:
            hall = self._hall(context)
            packet_id = resolve_packet_id(self._rt, hall, request.packet_id)
            parts = inbox.fetch_packet(self._rt, hall, packet_id)
            yield from _fetch_responses(parts)

        return guard_stream(context, "Fetch", stream)

    def Act(self, request: hall_pb2.ActRequest, context: grpc.ServicerContext) -> hall_pb2.CaseView:
        def call() -> hall_pb2.CaseView:
            hall = self._hall(context)
            case_id = resolve_case_id(self._rt, hall, request.case_id)
            view = cases.act_on_case(self._rt, hall, case_id, request.leg, _action(request))
            return _case_view(view)

        return guard(context, "Act", call)

    def GetCase(
        self, request: hall_pb2.CaseRequest, context: grpc.ServicerContext
    ) -> hall_pb2.CaseView:
        def call() -> hall_pb2.CaseView:
            hall = self._hall(context)
            case_id = resolve_case_id(self._rt, hall, request.case_id)
            return _case_view(cases.case_view(self._rt, hall, case_id))

        return guard(context, "GetCase", call)

    def History(
        self, request: hall_pb2.CaseRequest, context: grpc.ServicerContext
    ) -> hall_pb2.HistoryResponse:
        def call() -> hall_pb2.HistoryResponse:
            hall = self._hall(context)
            case_id = resolve_case_id(self._rt, hall, request.case_id)
            entries, intact = cases.case_history(self._rt, hall, case_id)
            return hall_pb2.HistoryResponse(
                case_id=case_id,
                chain_intact=intact,
                events=[
                    hall_pb2.HistoryEvent(
                        leg=e.leg,
                        seq=e.seq,
                        type=e.type,
                        actor_node=e.actor_node,
                        actor_hall=e.actor_hall,
                        at=format_time(e.at),
                        detail_json=e.detail_json,
                        hash=e.hash,
                        prev_hash=e.prev_hash,
                        signature_status=e.signature_status,
                        signed_by_key=e.signed_by_key,
                    )
                    for e in entries
                ],
            )

        return guard(context, "History", call)


def _deliver_parts(requests: Iterator[relay_pb2.DeliverRequest]) -> Iterator[messages.DeliverPart]:
    for req in requests:
        which = req.WhichOneof("part")
        if which == "opening":
            yield opening_from_proto(req.opening)
        elif which == "segment":
            yield segment_from_proto(req.segment)
        else:
            raise InvalidRequest("empty delivery message")


class RelayServicer(relay_pb2_grpc.RelayServiceServicer):
    def __init__(self, runtime: NodeRuntime) -> None:
        self._rt = runtime

    def Deliver(
        self, request_iterator: Iterator[relay_pb2.DeliverRequest], context: grpc.ServicerContext
    ) -> relay_pb2.DeliverResponse:
        def call() -> relay_pb2.DeliverResponse:
            peer = require_node(self._rt, caller_identity(context, self._rt.directory.current))
            receipt, dup = receive.receive_packet(
                self._rt, peer.node_id, _deliver_parts(request_iterator)
            )
            return relay_pb2.DeliverResponse(receipt=envelope_to_proto(receipt), duplicate=dup)

        return guard(context, "Deliver", call)

    def DeliverBatch(
        self, request: relay_pb2.DeliverBatchRequest, context: grpc.ServicerContext
    ) -> relay_pb2.DeliverBatchResponse:
        def call() -> relay_pb2.DeliverBatchResponse:
            peer = require_node(self._rt, caller_identity(context, self._rt.directory.current))
            openings = [opening_from_proto(o) for o in request.packets]
            outcomes = receive.receive_batch(self._rt, peer.node_id, openings)
            response = relay_pb2.DeliverBatchResponse()
            for opening, outcome in zip(openings, outcomes, strict=True):
                if outcome.receipt is not None:
                    response.outcomes.add(
                        receipt=envelope_to_proto(outcome.receipt), duplicate=outcome.duplicate
                    )
                else:
                    assert outcome.error is not None
                    code, message = refusal_of(
                        outcome.error, who=f"DeliverBatch packet {opening.statement.digest[:12]}"
                    )
                    response.outcomes.add(code=code.value[0], message=message)
            return response

        return guard(context, "DeliverBatch", call)

    def PushEvent(
        self, request: relay_pb2.PushEventRequest, context: grpc.ServicerContext
    ) -> relay_pb2.PushEventResponse:
        def call() -> relay_pb2.PushEventResponse:
            rt = self._rt
            peer = require_node(rt, caller_identity(context, self._rt.directory.current))
            env = envelope_from_proto(request.event)
            with rt.metadata.transaction() as session:
                _, dup = events.apply_remote_event(session, rt, peer.node_id, env)
            now = rt.clock()
            ack = sign_envelope(
                EventAck(env.digest, rt.node_id, now).to_payload(), ACK_TYPE, [rt.keys.signer(now)]
            )
            return relay_pb2.PushEventResponse(ack=envelope_to_proto(ack), duplicate=dup)

        return guard(context, "PushEvent", call)
