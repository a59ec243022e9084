"""Conversions between protobuf messages and the node's own types: protobuf stops here.

Every servicer and every call to a peer converts through this module.
"""

from __future__ import annotations

from collections.abc import Iterator

from tongban.keys.envelope import Envelope, EnvelopeSignature
from tongban.proto import common_pb2, relay_pb2
from tongban.server.domain.errors import InvalidRequest
from tongban.server.usecases.messages import DeliverOpening, DeliverPart, DeliverSegment

__all__ = [
    "deliver_parts_from_proto",
    "deliver_requests",
    "envelope_from_proto",
    "envelope_to_proto",
    "opening_from_proto",
    "opening_to_proto",
    "segment_from_proto",
]


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


def opening_to_proto(part: DeliverOpening) -> relay_pb2.PacketOpening:
    msg = relay_pb2.PacketOpening(
        statement=envelope_to_proto(part.statement),
        wrapped_key=part.wrapped_key,
        recipient_key_id=part.recipient_key_id,
        form_ciphertext=part.form_ciphertext,
        events=[envelope_to_proto(e) for e in part.events],
    )
    for seg in part.segments:
        _fill_segment(msg.segments.add(), seg)
    return msg


def opening_from_proto(msg: relay_pb2.PacketOpening) -> DeliverOpening:
    return DeliverOpening(
        envelope_from_proto(msg.statement),
        msg.wrapped_key,
        msg.recipient_key_id,
        msg.form_ciphertext,
        tuple(envelope_from_proto(e) for e in msg.events),
        tuple(segment_from_proto(s) for s in msg.segments),
    )


def segment_from_proto(msg: relay_pb2.Segment) -> DeliverSegment:
    return DeliverSegment(msg.file_index, msg.segment_index, msg.final, msg.ciphertext)


def _fill_segment(msg: relay_pb2.Segment, part: DeliverSegment) -> None:
    # Filled in place: a nested constructor would copy the ciphertext twice.
    msg.file_index = part.file_index
    msg.segment_index = part.segment_index
    msg.final = part.final
    msg.ciphertext = part.ciphertext


def deliver_requests(parts: Iterator[DeliverPart]) -> Iterator[relay_pb2.DeliverRequest]:
    for part in parts:
        if isinstance(part, DeliverOpening):
            yield relay_pb2.DeliverRequest(opening=opening_to_proto(part))
        else:
            request = relay_pb2.DeliverRequest()
            _fill_segment(request.segment, part)
            yield request


def deliver_parts_from_proto(
    requests: Iterator[relay_pb2.DeliverRequest],
) -> Iterator[DeliverPart]:
    for req in requests:
        which = req.WhichOneof("part")
        if which == "opening":
            yield opening_from_proto(req.opening)
        elif which == "segment":
            yield segment_from_proto(req.segment)
        else:
            raise InvalidRequest("empty delivery message")
