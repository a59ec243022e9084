"""The signed statements nodes exchange: packets, case events, receipts and event acks.

Each is canonical JSON carried in a :class:`~tongban.keys.envelope.Envelope`. Parsing reads
the payload bytes that were signed and keeps them; nothing is re-serialized to verify.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tongban.keys.clock import format_time, parse_time
from tongban.keys.content import MAX_SEGMENT_SIZE
from tongban.keys.envelope import canonical_json, parse_json_object
from tongban.keys.errors import BadPeerData, echo
from tongban.keys.file_names import check_file_names
from tongban.server.domain.errors import InvalidRequest

__all__ = [
    "ACK_TYPE",
    "EVENT_TYPE",
    "PACKET_TYPE",
    "RECEIPT_TYPE",
    "TEXT_LIMITS",
    "EventAck",
    "EventStatement",
    "FileEntry",
    "PacketStatement",
    "Receipt",
    "RecipientEntry",
    "check_statement_bounds",
    "check_text",
]

PACKET_TYPE = "application/vnd.tongban.packet.v1+json"
EVENT_TYPE = "application/vnd.tongban.event.v1+json"
RECEIPT_TYPE = "application/vnd.tongban.receipt.v1+json"
ACK_TYPE = "application/vnd.tongban.event-ack.v1+json"
CIPHER = "aes-256-gcm-stream-v1"
KINDS = ("application", "supplement", "result")
_SHA256 = re.compile(r"[0-9a-f]{64}")
MODES = ("on_behalf", "joint")


# Most characters each text field of a packet header may hold (the SQL columns hold these).
TEXT_LIMITS: Mapping[str, int] = {
    "matter code": 64,
    "matter name": 256,
    "node id": 16,
    "hall id": 128,
    "department": 128,
    "media type": 128,
    "applicant name": 128,
    "applicant id number": 32,
}


def check_text(field: str, value: str) -> None:
    """Refuse a header text field longer than its limit in :data:`TEXT_LIMITS`.

    Raises:
        InvalidRequest (``field-too-long``): the message names the field and its limit.
    """
    limit = TEXT_LIMITS[field]
    if len(value) > limit:
        raise InvalidRequest(
            f"{field} is {len(value)} characters; the limit is {limit}", code="field-too-long"
        )


# What converting a field of the wrong JSON type raises: uuid.UUID(5) an AttributeError,
# int(1e999) an OverflowError.
_FIELD_ERRORS = (KeyError, TypeError, ValueError, AttributeError, OverflowError)


def _bad(what: str, exc: BaseException) -> InvalidRequest:
    return InvalidRequest(f"malformed {what}: {echo(exc)}", code="malformed-statement")


def _parse(payload: bytes, what: str) -> dict[str, Any]:
    """A statement's JSON object; anything but plain JSON is a malformed statement."""
    try:
        return parse_json_object(payload, what)
    except BadPeerData as exc:
        raise InvalidRequest(exc.message, code="malformed-statement") from None


@dataclass(frozen=True)
class RecipientEntry:
    node: str
    hall: str
    department: str


@dataclass(frozen=True)
class FileEntry:
    index: int
    name: str
    media_type: str
    size: int
    sha256: str
    segments: int


@dataclass(frozen=True)
class PacketStatement:
    """What the sending node signs: header, form digest and the manifest of files."""

    packet_id: uuid.UUID
    case_id: uuid.UUID
    kind: str
    mode: str
    matter_code: str
    matter_name: str
    sender_node: str
    sender_hall: str
    recipients: tuple[RecipientEntry, ...]
    created_at: datetime
    segment_size: int
    form_size: int
    form_sha256: str
    files: tuple[FileEntry, ...]

    def to_payload(self) -> bytes:
        return canonical_json(
            {
                "type": "tongban-packet",
                "packet_id": str(self.packet_id),
                "case_id": str(self.case_id),
                "kind": self.kind,
                "mode": self.mode,
                "matter": {"code": self.matter_code, "name": self.matter_name},
                "sender": {"node": self.sender_node, "hall": self.sender_hall},
                "recipients": [
                    {"node": r.node, "hall": r.hall, "department": r.department}
                    for r in self.recipients
                ],
                "created_at": format_time(self.created_at),
                "content": {
                    "cipher": CIPHER,
                    "segment_size": self.segment_size,
                    "form": {"size": self.form_size, "sha256": self.form_sha256},
                    "files": [
                        {
                            "index": f.index,
                            "name": f.name,
                            "media_type": f.media_type,
                            "size": f.size,
                            "sha256": f.sha256,
                            "segments": f.segments,
                        }
                        for f in self.files
                    ],
                },
            }
        )

    @classmethod
    def from_payload(cls, payload: bytes) -> PacketStatement:
        """Raises: InvalidRequest if the payload is not a well-formed packet statement."""
        data = _parse(payload, "packet statement")
        try:
            content = data["content"]
            if data["type"] != "tongban-packet" or content["cipher"] != CIPHER:
                raise ValueError("not a tongban packet v1")
            st = cls(
                packet_id=uuid.UUID(data["packet_id"]),
                case_id=uuid.UUID(data["case_id"]),
                kind=str(data["kind"]),
                mode=str(data["mode"]),
                matter_code=str(data["matter"]["code"]),
                matter_name=str(data["matter"]["name"]),
                sender_node=str(data["sender"]["node"]),
                sender_hall=str(data["sender"]["hall"]),
                recipients=tuple(
                    RecipientEntry(str(r["node"]), str(r["hall"]), str(r["department"]))
                    for r in data["recipients"]
                ),
                created_at=parse_time(data["created_at"]),
                segment_size=int(content["segment_size"]),
                form_size=int(content["form"]["size"]),
                form_sha256=str(content["form"]["sha256"]),
                files=tuple(
                    FileEntry(
                        int(f["index"]),
                        str(f["name"]),
                        str(f["media_type"]),
                        int(f["size"]),
                        str(f["sha256"]),
                        int(f["segments"]),
                    )
                    for f in content["files"]
                ),
            )
        except _FIELD_ERRORS as exc:
            raise _bad("packet statement", exc) from None
        if st.kind not in KINDS or st.mode not in MODES:
            raise InvalidRequest(f"unknown packet kind {echo(st.kind)} or mode {echo(st.mode)}")
        if [f.index for f in st.files] != list(range(len(st.files))):
            raise InvalidRequest("packet manifest file indexes must be 0..n-1 in order")
        if not st.recipients:
            raise InvalidRequest("packet names no recipient")
        return st

    def recipient(self, node_id: str) -> RecipientEntry | None:
        return next((r for r in self.recipients if r.node == node_id), None)


def check_statement_bounds(st: PacketStatement) -> None:
    """Check what a peer's packet statement says before anything of it is stored: every
    text field within its limit, every file name good and distinct, and sizes, segment
    size and segment counts that agree.

    Raises:
        InvalidRequest (``field-too-long``, ``malformed-statement``), BadFileName.
    """
    check_text("matter code", st.matter_code)
    check_text("matter name", st.matter_name)
    check_text("node id", st.sender_node)
    check_text("hall id", st.sender_hall)
    for r in st.recipients:
        check_text("node id", r.node)
        check_text("hall id", r.hall)
        check_text("department", r.department)
    if not 0 < st.segment_size <= MAX_SEGMENT_SIZE:
        raise InvalidRequest(
            f"segment size {st.segment_size} is not between 1 and {MAX_SEGMENT_SIZE}",
            code="malformed-statement",
        )
    if st.form_size < 0:
        raise InvalidRequest(f"form size {st.form_size} is negative", code="malformed-statement")
    if not _SHA256.fullmatch(st.form_sha256):
        raise InvalidRequest("the form digest is not a SHA-256", code="malformed-statement")
    for f in st.files:
        check_text("media type", f.media_type)
        if not _SHA256.fullmatch(f.sha256):
            raise InvalidRequest(
                f"file {f.index} digest is not a SHA-256", code="malformed-statement"
            )
        if f.size < 0:
            raise InvalidRequest(
                f"file {f.index} declares size {f.size}", code="malformed-statement"
            )
        expected = max(1, -(-f.size // st.segment_size))
        if f.segments != expected:
            raise InvalidRequest(
                f"file {f.index} of {f.size} bytes in segments of {st.segment_size} has "
                f"{expected} segments, not {f.segments}",
                code="malformed-statement",
            )
    check_file_names(f.name for f in st.files)


@dataclass(frozen=True)
class EventStatement:
    """One step of a case leg, hash-linked to the leg's previous event."""

    case_id: uuid.UUID
    leg: str
    seq: int
    prev: str
    event: str
    actor_node: str
    actor_hall: str
    at: datetime
    detail: Mapping[str, Any]
    packet_id: str = ""

    def to_payload(self) -> bytes:
        return canonical_json(
            {
                "type": "tongban-event",
                "case_id": str(self.case_id),
                "leg": self.leg,
                "seq": self.seq,
                "prev": self.prev,
                "event": self.event,
                "actor": {"node": self.actor_node, "hall": self.actor_hall},
                "at": format_time(self.at),
                "detail": dict(self.detail),
                "packet_id": self.packet_id,
            }
        )

    @classmethod
    def from_payload(cls, payload: bytes) -> EventStatement:
        data = _parse(payload, "event statement")
        try:
            if data["type"] != "tongban-event":
                raise ValueError("not a tongban event")
            detail = data["detail"]
            if not isinstance(detail, dict):
                raise TypeError("detail must be an object")
            return cls(
                case_id=uuid.UUID(data["case_id"]),
                leg=str(data["leg"]),
                seq=int(data["seq"]),
                prev=str(data["prev"]),
                event=str(data["event"]),
                actor_node=str(data["actor"]["node"]),
                actor_hall=str(data["actor"]["hall"]),
                at=parse_time(data["at"]),
                detail=detail,
                packet_id=str(data.get("packet_id", "")),
            )
        except _FIELD_ERRORS as exc:
            raise _bad("event statement", exc) from None


@dataclass(frozen=True)
class Receipt:
    """The receiving node's signed word that it stored exactly this packet."""

    packet_id: uuid.UUID
    receiver: str
    statement_sha256: str
    stored_digest: str
    received_at: datetime

    def to_payload(self) -> bytes:
        return canonical_json(
            {
                "type": "tongban-receipt",
                "packet_id": str(self.packet_id),
                "receiver": self.receiver,
                "statement_sha256": self.statement_sha256,
                "stored_digest": self.stored_digest,
                "received_at": format_time(self.received_at),
            }
        )

    @classmethod
    def from_payload(cls, payload: bytes) -> Receipt:
        data = _parse(payload, "receipt")
        try:
            if data["type"] != "tongban-receipt":
                raise ValueError("not a tongban receipt")
            return cls(
                packet_id=uuid.UUID(data["packet_id"]),
                receiver=str(data["receiver"]),
                statement_sha256=str(data["statement_sha256"]),
                stored_digest=str(data["stored_digest"]),
                received_at=parse_time(data["received_at"]),
            )
        except _FIELD_ERRORS as exc:
            raise _bad("receipt", exc) from None


@dataclass(frozen=True)
class EventAck:
    event_hash: str
    receiver: str
    received_at: datetime

    def to_payload(self) -> bytes:
        return canonical_json(
            {
                "type": "tongban-event-ack",
                "event_hash": self.event_hash,
                "receiver": self.receiver,
                "received_at": format_time(self.received_at),
            }
        )

    @classmethod
    def from_payload(cls, payload: bytes) -> EventAck:
        data = _parse(payload, "event ack")
        try:
            if data["type"] != "tongban-event-ack":
                raise ValueError("not a tongban event ack")
            return cls(
                str(data["event_hash"]), str(data["receiver"]), parse_time(data["received_at"])
            )
        except _FIELD_ERRORS as exc:
            raise _bad("event ack", exc) from None
