"""Conversions between the hall service's protobuf messages and the use cases' own types.

The hall servicer converts through this module and nothing else; protobuf stops here.
"""

from __future__ import annotations

from collections.abc import Iterator

from tongban.keys.clock import format_time
from tongban.proto import hall_pb2
from tongban.server.domain.errors import InvalidRequest
from tongban.server.domain.statements import FileEntry, RecipientEntry
from tongban.server.grpc.converters import envelope_to_proto
from tongban.server.usecases import cases, messages

__all__ = [
    "action_from_proto",
    "case_view_to_proto",
    "fetch_responses",
    "header_from_proto",
    "inbox_entry",
    "submit_parts",
    "submit_response",
]


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


def header_from_proto(h: hall_pb2.SubmitHeader) -> messages.SubmitHeader:
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


def submit_parts(requests: Iterator[hall_pb2.SubmitRequest]) -> Iterator[messages.SubmitPart]:
    for req in requests:
        which = req.WhichOneof("part")
        if which == "header":
            yield header_from_proto(req.header)
        elif which == "file_begin":
            fb = req.file_begin
            yield messages.FileBegin(fb.name, fb.media_type, fb.size)
        elif which == "data":
            yield req.data
        elif which == "file_end":
            yield messages.FileEnd(req.file_end.sha256)
        else:
            raise InvalidRequest("empty submit message")


def submit_response(r: messages.SubmitResult) -> hall_pb2.SubmitResponse:
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


def inbox_entry(item: messages.InboxItem) -> hall_pb2.InboxEntry:
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


def case_view_to_proto(v: cases.CaseViewData) -> hall_pb2.CaseView:
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


def action_from_proto(req: hall_pb2.ActRequest) -> cases.CaseAction:
    which = req.WhichOneof("action")
    if which == "accept":
        accept = req.accept
        detail: dict[str, object] = {"accepted_with_missing": list(accept.accepted_with_missing)}
        if accept.deferred_due:
            detail["deferred_due"] = accept.deferred_due
        if accept.commitment:
            detail["commitment"] = accept.commitment
        return cases.CaseAction("accepted", detail)
    if which == "suspend":
        return cases.CaseAction("suspended", {"reason": req.suspend.reason})
    if which == "resume":
        return cases.CaseAction("resumed", {"note": req.resume.note})
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


def fetch_responses(parts: Iterator[messages.FetchPart]) -> Iterator[hall_pb2.FetchResponse]:
    for part in parts:
        if isinstance(part, messages.FetchOpening):
            a = part.applicant
            yield hall_pb2.FetchResponse(
                opening=hall_pb2.FetchOpening(
                    entry=inbox_entry(part.item),
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
