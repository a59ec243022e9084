"""What callers hand the packet use cases and get back: plain values, no protobuf, no SQL."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from tongban.keys.envelope import (
    Envelope,
)
from tongban.server.domain.statements import (
    FileEntry,
    RecipientEntry,
)

__all__ = [
    "SEGMENT_OVERHEAD",
    "Applicant",
    "DeliverOpening",
    "DeliverPart",
    "DeliverSegment",
    "DeliveryInfo",
    "FetchFileEnd",
    "FetchOpening",
    "FetchPart",
    "FileBegin",
    "FileEnd",
    "InboxItem",
    "OutboxItem",
    "OutgoingPacket",
    "StoredFile",
    "SubmitHeader",
    "SubmitPart",
    "SubmitResult",
]


@dataclass(frozen=True)
class Applicant:
    name: str
    id_type: str  # "citizen" (公民身份号码) or "company" (统一社会信用代码)
    id_number: str


@dataclass(frozen=True)
class SubmitHeader:
    packet_id: str
    kind: str
    mode: str
    matter_code: str
    matter_name: str
    recipients: tuple[RecipientEntry, ...]
    applicant: Applicant | None
    form_json: bytes
    case_id: str = ""


@dataclass(frozen=True)
class FileBegin:
    name: str
    media_type: str
    size: int


@dataclass(frozen=True)
class FileEnd:
    sha256: str


SubmitPart = SubmitHeader | FileBegin | bytes | FileEnd


@dataclass(frozen=True)
class DeliveryInfo:
    node_id: str
    state: str
    attempts: int
    last_error: str


@dataclass(frozen=True)
class SubmitResult:
    packet_id: str
    case_id: str
    duplicate: bool
    deliveries: tuple[DeliveryInfo, ...]


@dataclass(frozen=True)
class DeliverOpening:
    statement: Envelope
    wrapped_key: bytes
    recipient_key_id: str
    form_ciphertext: bytes
    events: tuple[Envelope, ...]
    # The file segments, when they travel inline (a batch) rather than as parts of a stream.
    segments: tuple[DeliverSegment, ...] = ()

    @property
    def weight(self) -> int:
        """Roughly the bytes this opening takes in a message."""
        signed = [self.statement, *self.events]
        return (
            len(self.form_ciphertext)
            + len(self.wrapped_key)
            + sum(len(e.payload) + 128 * len(e.signatures) for e in signed)
            + sum(len(s.ciphertext) + SEGMENT_OVERHEAD for s in self.segments)
            + 256
        )


SEGMENT_OVERHEAD = 32  # a segment's fields and framing around its ciphertext, at most


@dataclass(frozen=True)
class DeliverSegment:
    file_index: int
    segment_index: int
    final: bool
    ciphertext: bytes


@dataclass(frozen=True)
class StoredFile:
    """Where a file's sealed segments are stored, one record after another."""

    index: int
    blob_key: str
    segments: int
    size: int  # of the stored ciphertext


@dataclass(frozen=True)
class OutgoingPacket:
    """What one recipient is sent of a stored packet: the opening, then each file's
    segments of ``segment_size`` plaintext bytes."""

    opening: DeliverOpening
    files: tuple[StoredFile, ...] = ()
    segment_size: int = 0

    @property
    def weight(self) -> int:
        """Roughly the bytes the packet takes in a message with its segments inline."""
        return self.opening.weight + sum(f.size + f.segments * SEGMENT_OVERHEAD for f in self.files)


DeliverPart = DeliverOpening | DeliverSegment


@dataclass(frozen=True)
class InboxItem:
    row_id: int
    packet_id: str
    case_id: str
    kind: str
    mode: str
    matter_code: str
    matter_name: str
    sender_node: str
    sender_hall: str
    direction: str
    created_at: datetime
    deliveries: tuple[DeliveryInfo, ...]
    file_count: int
    total_size: int


@dataclass(frozen=True)
class FetchOpening:
    item: InboxItem
    applicant: Applicant | None
    form_json: bytes
    files: tuple[FileEntry, ...]
    signature_status: str
    signed_by_key: str
    statement: Envelope


@dataclass(frozen=True)
class FetchFileEnd:
    index: int
    sha256: str
    verified: bool


FetchPart = FetchOpening | FileEntry | bytes | FetchFileEnd


@dataclass(frozen=True)
class OutboxItem:
    """One item owed to another node, as the delivery dispatcher handles it."""

    id: int
    dest_node: str
    case_id: str
    kind: str
    ref: str
    # A small packet, which may travel in one call with others to the same node.
    batchable: bool = False
    # What the packet sends this node, when the submit that stored it is still at hand,
    # so that a fresh packet goes out without being read back.
    packet: OutgoingPacket | None = field(default=None, compare=False, repr=False)
