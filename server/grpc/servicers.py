"""gRPC servicers: they read the caller's identity, convert messages, and delegate.

No use-case logic lives here, and protobuf types stop at this layer.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from tongban.keys.clock import format_time
from tongban.proto import hall_pb2, hall_pb2_grpc, relay_pb2, relay_pb2_grpc
from tongban.server.grpc.converters import (
    deliver_parts_from_proto,
    envelope_from_proto,
    envelope_to_proto,
    opening_from_proto,
)
from tongban.server.grpc.hall_converters import (
    action_from_proto,
    case_view_to_proto,
    fetch_responses,
    header_from_proto,
    inbox_entry,
    submit_parts,
    submit_response,
)
from tongban.server.grpc.identity import caller_identity
from tongban.server.grpc.status import guard, guard_stream, refusal_of
from tongban.server.usecases.cases import CaseSteps
from tongban.server.usecases.inbox import HallInbox
from tongban.server.usecases.receive import ReceivePackets
from tongban.server.usecases.runtime import DirectoryHolder, require_hall, require_node
from tongban.server.usecases.submit import SubmitPackets

__all__ = ["HallServicer", "RelayServicer"]


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
            r = self._submit.submit(self._hall(context), submit_parts(request_iterator))
            return submit_response(r)

        return guard(context, "Submit", call)

    def SubmitForm(
        self, request: hall_pb2.SubmitHeader, context: grpc.ServicerContext
    ) -> hall_pb2.SubmitResponse:
        def call() -> hall_pb2.SubmitResponse:
            hall = self._hall(context)
            return submit_response(self._submit.submit(hall, iter([header_from_proto(request)])))

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
            return hall_pb2.InboxResponse(entries=[inbox_entry(i) for i in items])

        return guard(context, "ListInbox", call)

    def WatchInbox(
        self, request: hall_pb2.InboxRequest, context: grpc.ServicerContext
    ) -> Iterator[hall_pb2.InboxEntry]:
        def stream() -> Iterator[hall_pb2.InboxEntry]:
            items = self._inbox.watch(
                self._hall(context),
                direction=request.direction,
                include_existing=request.include_existing,
                active=context.is_active,
            )
            for item in items:
                yield inbox_entry(item)

        return guard_stream(context, "WatchInbox", stream)

    def Fetch(
        self, request: hall_pb2.FetchRequest, context: grpc.ServicerContext
    ) -> Iterator[hall_pb2.FetchResponse]:
        def stream() -> Iterator[hall_pb2.FetchResponse]:
            hall = self._hall(context)
            packet_id = self._inbox.packet_id(hall, request.packet_id)
            yield from fetch_responses(self._inbox.fetch(hall, packet_id))

        return guard_stream(context, "Fetch", stream)

    def Act(self, request: hall_pb2.ActRequest, context: grpc.ServicerContext) -> hall_pb2.CaseView:
        def call() -> hall_pb2.CaseView:
            hall = self._hall(context)
            case_id = self._cases.case_id(hall, request.case_id)
            view = self._cases.act(hall, case_id, request.leg, action_from_proto(request))
            return case_view_to_proto(view)

        return guard(context, "Act", call)

    def GetCase(
        self, request: hall_pb2.CaseRequest, context: grpc.ServicerContext
    ) -> hall_pb2.CaseView:
        def call() -> hall_pb2.CaseView:
            hall = self._hall(context)
            case_id = self._cases.case_id(hall, request.case_id)
            return case_view_to_proto(self._cases.view(hall, case_id))

        return guard(context, "GetCase", call)

    def History(
        self, request: hall_pb2.CaseRequest, context: grpc.ServicerContext
    ) -> hall_pb2.HistoryResponse:
        def call() -> hall_pb2.HistoryResponse:
            hall = self._hall(context)
            case_id = self._cases.case_id(hall, request.case_id)
            entries, intact = self._cases.history(hall, case_id)
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
            receipt, dup = self._receive.receive(peer, deliver_parts_from_proto(request_iterator))
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
