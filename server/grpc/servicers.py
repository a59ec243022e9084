"""gRPC servicers: they read the caller's identity, convert messages, and delegate.

No use-case logic lives here, and protobuf types stop at this layer.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from tongban.keys.clock import format_time
from tongban.proto import hall_pb2, hall_pb2_grpc, relay_pb2, relay_pb2_grpc
from tongban.server.domain.errors import InvalidRequest
from tongban.server.domain.statements import FileEntry, RecipientEntry
from tongban.server.grpc.converters import (
    envelope_from_proto,
    envelope_to_proto,
    opening_from_proto,
    segment_from_proto,
)
from tongban.server.grpc.identity import caller_identity
from tongban.server.grpc.status import guard, guard_stream, refusal_of
from tongban.server.usecases import cases, inbox, messages
from tongban.server.usecases.cases import CaseSteps
from tongban.server.usecases.inbox import HallInbox
from tongban.server.usecases.receive import ReceivePackets
from tongban.server.usecases.runtime import DirectoryHolder, require_hall, require_node
from tongban.server.usecases.submit import SubmitPackets

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
        accept = req.accept
        detail: dict[str, object] = {"accepted_with_missing": list(accept.accepted_with_missing)}
        if accept.deferred_due:
            detail["deferred_due"] = accept.deferred_due
        if accept.commitment:
            detail["commitment"] = accept.commitment
        return cases.CaseAction("accepted", detail)
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
    if which == "suspend":
        return cases.CaseAction("suspended", {"reason": req.suspend.reason})
    if which == "resume":
        return cases.CaseAction("resumed", {"note": req.resume.note})
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
    def __init__(
        self,
        *,
        node_id: str,
        directory: DirectoryHolder,
        submit: SubmitPackets,
        inbox: HallInbox,
        cases: CaseSteps,
    ) -> None:
        self._node_id = node_id
        self._directory = directory
        self._submit = submit
        self._inbox = inbox
        self._cases = cases

    def _hall(self, context: grpc.ServicerContext) -> str:
        directory = self._directory.current
        return require_hall(self._node_id, directory, caller_identity(context, directory))

    def Submit(
        self, request_iterator: Iterator[hall_pb2.SubmitRequest], context: grpc.ServicerContext
    ) -> hall_pb2.SubmitResponse:
        def call() -> hall_pb2.SubmitResponse:
            r = self._submit.submit(self._hall(context), _submit_parts(request_iterator))
            return _submit_response(r)

        return guard(context, "Submit", call)

    def SubmitForm(
        self, request: hall_pb2.SubmitHeader, context: grpc.ServicerContext
    ) -> hall_pb2.SubmitResponse:
        def call() -> hall_pb2.SubmitResponse:
            hall = self._hall(context)
            return _submit_response(self._submit.submit(hall, iter([_header(request)])))

        return guard(context, "SubmitForm", call)

    def ListInbox(
        self, request: hall_pb2.InboxRequest, context: grpc.ServicerContext
    ) -> hall_pb2.InboxResponse:
        def call() -> hall_pb2.InboxResponse:
            items = self._inbox.list(
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
                existing = self._inbox.list(
                    hall, direction=request.direction, limit=inbox.MAX_INBOX_PAGE
                )
                while existing:
                    after = existing[-1].row_id
                    existing = self._inbox.list(
                        hall,
                        direction=request.direction,
                        after_row=after,
                        limit=inbox.MAX_INBOX_PAGE,
                    )
            generation = self._inbox.generation
            while context.is_active():
                for item in self._inbox.list(
                    hall,
                    direction=request.direction,
                    after_row=after,
                    limit=inbox.MAX_INBOX_PAGE,
                ):
                    after = item.row_id
                    yield _entry(item)
                generation = self._inbox.wait(generation, timeout=1.0)

        return guard_stream(context, "WatchInbox", stream)

    def Fetch(
        self, request: hall_pb2.FetchRequest, context: grpc.ServicerContext
    ) -> Iterator[hall_pb2.FetchResponse]:
        def stream() -> Iterator[hall_pb2.FetchResponse]:
            parts = self._inbox.fetch(self._hall(context), request.packet_id)
            yield from _fetch_responses(parts)

        return guard_stream(context, "Fetch", stream)

    def Act(self, request: hall_pb2.ActRequest, context: grpc.ServicerContext) -> hall_pb2.CaseView:
        def call() -> hall_pb2.CaseView:
            view = self._cases.act(
                self._hall(context), request.case_id, request.leg, _action(request)
            )
            return _case_view(view)

        return guard(context, "Act", call)

    def GetCase(
        self, request: hall_pb2.CaseRequest, context: grpc.ServicerContext
    ) -> hall_pb2.CaseView:
        return guard(
            context,
            "GetCase",
            lambda: _case_view(self._cases.view(self._hall(context), request.case_id)),
        )

    def History(
        self, request: hall_pb2.CaseRequest, context: grpc.ServicerContext
    ) -> hall_pb2.HistoryResponse:
        def call() -> hall_pb2.HistoryResponse:
            entries, intact = self._cases.history(self._hall(context), request.case_id)
            return hall_pb2.HistoryResponse(
                case_id=request.case_id,
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
    def __init__(
        self, *, directory: DirectoryHolder, receive: ReceivePackets, cases: CaseSteps
    ) -> None:
        self._directory = directory
        self._receive = receive
        self._cases = cases

    def _peer(self, context: grpc.ServicerContext) -> str:
        directory = self._directory.current
        return require_node(directory, caller_identity(context, directory)).node_id

    def Deliver(
        self, request_iterator: Iterator[relay_pb2.DeliverRequest], context: grpc.ServicerContext
    ) -> relay_pb2.DeliverResponse:
        def call() -> relay_pb2.DeliverResponse:
            peer = self._peer(context)
            receipt, dup = self._receive.receive(peer, _deliver_parts(request_iterator))
            return relay_pb2.DeliverResponse(receipt=envelope_to_proto(receipt), duplicate=dup)

        return guard(context, "Deliver", call)

    def DeliverBatch(
        self, request: relay_pb2.DeliverBatchRequest, context: grpc.ServicerContext
    ) -> relay_pb2.DeliverBatchResponse:
        def call() -> relay_pb2.DeliverBatchResponse:
            peer = self._peer(context)
            openings = [opening_from_proto(o) for o in request.packets]
            outcomes = self._receive.receive_batch(peer, openings)
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
            peer = self._peer(context)
            ack, dup = self._cases.receive_event(peer, envelope_from_proto(request.event))
            return relay_pb2.PushEventResponse(ack=envelope_to_proto(ack), duplicate=dup)

        return guard(context, "PushEvent", call)
