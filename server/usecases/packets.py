"""Packets: a hall submits one, its node seals and stores it, peers receive and verify it,
and halls fetch it back decrypted and checked against the signed manifest.

Nothing is acknowledged before it is durable: blobs are stored under a fresh attempt
prefix, the metadata commits in one transaction, and any failure removes that attempt's
blobs, so a refused or interrupted transfer leaves the store as it was.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tongban.keys.content import (
    FORM_FILE_INDEX,
    MAX_SEGMENT_SIZE,
    TAG_SIZE,
    FileCipher,
    SealedSegment,
    new_data_key,
    unwrap_data_key,
    wrap_data_key,
)
from tongban.keys.envelope import (
    MAX_JSON_DEPTH,
    Envelope,
    canonical_json,
    parse_json_object,
    sign_envelope,
    verify_envelope,
)
from tongban.keys.errors import BadPeerData, echo
from tongban.keys.file_names import DistinctFileNames, check_file_names
from tongban.keys.identifiers import validate_citizen_id, validate_credit_code
from tongban.keys.records import KeyRecord
from tongban.keys.seals import SealRecord
from tongban.server.config import FORM_HEADROOM, MAX_DELIVERY_BATCH, Limits
from tongban.server.domain.errors import (
    Conflict,
    IllegalTransition,
    IntegrityFailure,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    TooLarge,
)
from tongban.server.domain.statements import (
    PACKET_TYPE,
    RECEIPT_TYPE,
    EventStatement,
    FileEntry,
    PacketStatement,
    Receipt,
    RecipientEntry,
    check_statement_bounds,
    check_text,
)
from tongban.server.usecases.cases import (
    OutboxItem,
    append_local_event,
    apply_remote_event,
    decode_signatures,
    encode_signatures,
    enqueue,
    event_envelope,
    local_event,
    outbox_items,
    outbox_row,
    remote_event,
)
from tongban.server.usecases.runtime import NodeRuntime
from tongban.server.usecases.seals import seal_result_digest
from tongban.storage.sql import (
    Base,
    CaseRow,
    DeliveryRow,
    EventRow,
    LegRow,
    PacketFileRow,
    PacketRow,
    SealRow,
)

__all__ = [
    "DEFAULT_INBOX_PAGE",
    "MAX_INBOX_PAGE",
    "Applicant",
    "DeliverOpening",
    "DeliverOutcome",
    "DeliverSegment",
    "FetchFileEnd",
    "FetchOpening",
    "FileBegin",
    "FileEnd",
    "InboxItem",
    "OutgoingPacket",
    "SubmitHeader",
    "SubmitResult",
    "delivery_openings",
    "delivery_parts",
    "fetch_packet",
    "inline_opening",
    "list_inbox",
    "read_outgoing",
    "receive_batch",
    "receive_packet",
    "submit_packet",
]

_log = logging.getLogger("tongban.server.usecases.packets")
# Entries one ListInbox call returns when it names no limit, and at most.
DEFAULT_INBOX_PAGE = 100
MAX_INBOX_PAGE = 1000
_CHINA = ZoneInfo("Asia/Shanghai")


# ---- domain types (the servicers convert protobuf to and from these) ------------------------


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
            + sum(len(s.ciphertext) + _SEGMENT_OVERHEAD for s in self.segments)
            + 256
        )


_SEGMENT_OVERHEAD = 32  # a segment's fields and framing around its ciphertext, at most


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
        return self.opening.weight + sum(
            f.size + f.segments * _SEGMENT_OVERHEAD for f in self.files
        )


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


# ---- submit ---------------------------------------------------------------------------------


@dataclass
class _Plan:
    packet_id: uuid.UUID
    case_id: uuid.UUID
    recipients: tuple[RecipientEntry, ...]
    form_plain: bytes


def _check_applicant(applicant: Applicant | None, today: datetime) -> dict[str, str] | None:
    if applicant is None:
        return None
    check_text("applicant name", applicant.name)
    check_text("applicant id number", applicant.id_number)
    name = applicant.name.strip()
    if not name:
        raise InvalidRequest("applicant name is empty")
    if applicant.id_type == "citizen":
        # Birth dates are calendar dates in China; UTC is still "yesterday" before 08:00.
        number = validate_citizen_id(applicant.id_number, today=today.astimezone(_CHINA).date())
    elif applicant.id_type == "company":
        number = validate_credit_code(applicant.id_number)
    else:
        raise InvalidRequest(
            "applicant id type must be citizen (公民身份号码) or company (统一社会信用代码)"
        )
    return {"name": name, "id_type": applicant.id_type, "id_number": number}


def _parse_form(form_json: bytes, limit: int) -> dict[str, Any]:
    if len(form_json) > limit:
        raise TooLarge(f"form is {len(form_json)} bytes; the limit is {limit}")
    try:
        return parse_json_object(form_json or b"{}", "form")
    except BadPeerData as exc:
        raise InvalidRequest(exc.message, code="malformed-form") from None


def _form_plain(rt: NodeRuntime, header: SubmitHeader) -> bytes:
    """The form and applicant as sealed into the packet (canonical JSON), checked."""
    limit = rt.config.limits.max_form_bytes
    form = _parse_form(header.form_json, limit)
    applicant = _check_applicant(header.applicant, rt.clock())
    plain = canonical_json({"applicant": applicant, "form": form})
    if len(plain) > limit + FORM_HEADROOM:
        # Canonical JSON may be longer than what the hall sent ("1e5" is 100000.0).
        raise TooLarge(f"form is {len(plain)} bytes once encoded; the limit is {limit}")
    return plain


def _packet_id(header: SubmitHeader) -> uuid.UUID:
    try:
        return uuid.UUID(header.packet_id) if header.packet_id else uuid.uuid4()
    except ValueError:
        raise InvalidRequest(f"packet id {echo(header.packet_id)} is not a UUID") from None


def _case_id(header: SubmitHeader) -> uuid.UUID:
    try:
        return uuid.UUID(header.case_id)
    except ValueError:
        raise InvalidRequest(f"case id {echo(header.case_id)} is not a UUID") from None


def _check_header_text(header: SubmitHeader) -> None:
    check_text("matter code", header.matter_code)
    check_text("matter name", header.matter_name)
    for r in header.recipients:
        check_text("node id", r.node)
        check_text("hall id", r.hall)
        check_text("department", r.department)


def _resolve_recipients(rt: NodeRuntime, header: SubmitHeader) -> tuple[RecipientEntry, ...]:
    directory = rt.directory.current
    out: list[RecipientEntry] = []
    for r in header.recipients:
        if r.node == rt.node_id:
            raise InvalidRequest(f"a packet cannot be addressed to this node {rt.node_id} itself")
        if not directory.has_node(r.node):
            raise InvalidRequest(
                f"recipient node {echo(r.node)} is not in the federation directory"
            )
        node = directory.node(r.node)
        hall = r.hall or node.default_hall
        if not node.has_hall(hall):
            raise InvalidRequest(f"node {r.node} has no hall {echo(hall)}")
        out.append(RecipientEntry(r.node, hall, r.department))
    if len({r.node for r in out}) != len(out):
        raise InvalidRequest("a recipient node is named twice")
    return tuple(out)


def _plan(rt: NodeRuntime, hall_id: str, header: SubmitHeader) -> _Plan:
    packet_id = _packet_id(header)
    _check_header_text(header)
    if header.kind == "application":
        form_plain = _form_plain(rt, header)
        rt.matters.check(header.matter_code, header.matter_name or None)
        recipients = _resolve_recipients(rt, header)
        if header.mode == "on_behalf" and len(recipients) != 1:
            raise InvalidRequest("异地代收代办 goes to exactly one handling node")
        if header.mode == "joint" and len(recipients) < 2:
            raise InvalidRequest("多地联办 needs at least two participants")
        if header.mode not in ("on_behalf", "joint"):
            raise InvalidRequest("handling mode must be on_behalf (代收代办) or joint (联办)")
        if header.applicant is None:
            raise InvalidRequest("an application needs an applicant")
        case_id = uuid.uuid4()
    elif header.kind in ("supplement", "result"):
        case_id = _case_id(header)
        form_plain = _form_plain(rt, header)
        with rt.metadata.read() as session:
            recipients = (_leg_for_packet(session, rt, hall_id, header, str(case_id))[2],)
    else:
        raise InvalidRequest(f"unknown packet kind {echo(header.kind)}")
    return _Plan(packet_id, case_id, recipients, form_plain)


def _leg_for_packet(
    session: Session, rt: NodeRuntime, hall_id: str, header: SubmitHeader, case_id: str
) -> tuple[CaseRow, LegRow, RecipientEntry]:
    """The case and leg a supplement or result packet belongs to, checked for this hall."""
    case = session.get(CaseRow, case_id)
    if case is None:
        raise NotFound(f"case {case_id} not found for hall {hall_id}")
    if header.kind == "supplement":
        if case.accepting_node != rt.node_id or case.accepting_hall != hall_id:
            raise NotFound(f"case {case_id} not found for hall {hall_id}")
        if len(header.recipients) != 1:
            raise InvalidRequest("a supplement goes to exactly one leg")
        leg = session.get(LegRow, (case_id, header.recipients[0].node))
        if leg is None:
            raise NotFound(f"case {case_id} has no leg {echo(header.recipients[0].node)}")
        if leg.status != "supplement_requested":
            raise IllegalTransition(
                f"leg {leg.node_id} is {leg.status}; no supplement was requested"
            )
        return case, leg, RecipientEntry(leg.node_id, leg.hall_id, leg.department)
    leg = session.get(LegRow, (case_id, rt.node_id))
    if leg is None or leg.hall_id != hall_id:
        raise NotFound(f"case {case_id} not found for hall {hall_id}")
    if leg.status != "decided":
        raise IllegalTransition(f"leg {leg.node_id} is {leg.status}; results follow a decision")
    return case, leg, RecipientEntry(case.accepting_node, case.accepting_hall, leg.department)


def _check_file_begin(
    part: FileBegin, index: int, names: DistinctFileNames, limits: Limits
) -> None:
    """Refuse a file before any of its bytes are read: its name, media type and size."""
    what = f"file {index}"
    names.add(part.name, what=what)
    check_text("media type", part.media_type)
    if not part.media_type or "/" not in part.media_type:
        raise InvalidRequest(f"{what} {echo(part.name)} needs a media type such as application/pdf")
    if part.size < -1:
        raise InvalidRequest(
            f"{what} {echo(part.name)} declares size {part.size}; a size is -1 (unknown) "
            "or 0 and up"
        )
    if part.size > limits.max_file_bytes:
        raise TooLarge(
            f"{what} {echo(part.name)} declares {part.size} bytes; the limit is "
            f"{limits.max_file_bytes}"
        )


def _file_chunks(
    parts: Iterator[SubmitPart], name: str, limit: int, end: list[FileEnd]
) -> Iterator[bytes]:
    size = 0
    for part in parts:
        if isinstance(part, bytes):
            size += len(part)
            if size > limit:
                raise TooLarge(f"file {echo(name)} exceeds the limit of {limit} bytes")
            yield part
        elif isinstance(part, FileEnd):
            end.append(part)
            return
        else:
            raise InvalidRequest(f"file {echo(name)} was not ended before the next part")
    raise InvalidRequest(
        f"the stream ended inside file {echo(name)} (no file end)", code="truncated-stream"
    )


def submit_packet(rt: NodeRuntime, hall_id: str, parts: Iterator[SubmitPart]) -> SubmitResult:
    """Seal, store and queue a hall's packet; return once it is durable.

    A packet id already used is answered without storing anything: by the original
    answer (``duplicate``) when this hall sent this very packet before, else by
    :class:`Conflict`, the same whoever holds the id.

    Raises:
        InvalidRequest, TooLarge, NotFound, IllegalTransition, MatterError, InvalidIdentifier,
        BadFileName: the packet is refused and nothing is stored.
        Conflict: the packet id is already used for a different packet.
    """
    first = next(parts, None)
    if not isinstance(first, SubmitHeader):
        raise InvalidRequest("the first message of a submit must be the header")
    header = first
    packet_id = _packet_id(header)
    first_file = next(parts, None)
    if first_file is not None:
        parts = itertools.chain([first_file], parts)
    if first_file is not None or header.kind != "application":
        # A retry is answered before any file is stored again. A new application without
        # files skips this read: its insert would collide with a held one, which is then
        # looked up (below, in _commit_outgoing).
        held = _held_outgoing(rt, packet_id)
        if held is not None:
            return _answer_resend(rt, hall_id, header, held, _resent_files(parts, held))
    plan = _plan(rt, hall_id, header)
    limits = rt.config.limits
    # An attempt's files share the packet's directory, named after the attempt: a directory
    # of their own would cost every packet another directory to create and sync.
    prefix = f"out/{plan.packet_id}/{uuid.uuid4().hex[:12]}-"
    data_key = new_data_key()
    entries: list[FileEntry] = []
    file_rows: list[PacketFileRow] = []
    names = DistinctFileNames()
    with rt.transfers.hold(prefix):
        try:
            for part in parts:
                if not isinstance(part, FileBegin):
                    raise InvalidRequest("file data must follow a file begin")
                index = len(entries)
                if index >= limits.max_files:
                    raise TooLarge(f"a packet holds at most {limits.max_files} files")
                _check_file_begin(part, index, names, limits)
                cipher = FileCipher(
                    data_key, plan.packet_id, index, segment_size=limits.segment_size
                )
                end: list[FileEnd] = []
                segments = [0]

                def sealed(
                    c: FileCipher = cipher,
                    n: list[int] = segments,
                    e: list[FileEnd] = end,
                    name: str = part.name,
                ) -> Iterator[bytes]:
                    for seg in c.encrypt_chunks(
                        _file_chunks(parts, name, limits.max_file_bytes, e)
                    ):
                        n[0] += 1
                        yield seg.ciphertext

                stored = rt.objects.put_stream(f"{prefix}{index}", sealed())
                digest = cipher.plaintext_digest
                if part.size >= 0 and digest.size != part.size:
                    raise InvalidRequest(
                        f"file {index} {echo(part.name)} declared {part.size} bytes "
                        f"but {digest.size} arrived"
                    )
                if end[0].sha256.lower() != digest.hexdigest():
                    raise InvalidRequest(
                        f"file {index} {echo(part.name)}: the SHA-256 the hall declared does "
                        "not match the bytes received",
                        code="manifest-digest-mismatch",
                    )
                entries.append(
                    FileEntry(
                        index,
                        part.name,
                        part.media_type,
                        digest.size,
                        digest.hexdigest(),
                        segments[0],
                    )
                )
                file_rows.append(
                    PacketFileRow(
                        packet_id=str(plan.packet_id),
                        file_index=index,
                        name=part.name,
                        media_type=part.media_type,
                        size=digest.size,
                        sha256=digest.hexdigest(),
                        segment_count=segments[0],
                        blob_key=stored.key,
                        ciphertext_size=stored.size,
                        ciphertext_sha256=stored.sha256,
                    )
                )
            return _commit_outgoing(rt, hall_id, header, plan, data_key, entries, file_rows, prefix)
        except BaseException:
            rt.objects.delete_prefix(prefix)
            raise


# ---- a packet id used before ----------------------------------------------------------------

# What a hall's file is compared by when a packet is sent again: name, media type, size, SHA-256.
_FileFacts = tuple[str, str, int, str]


@dataclass(frozen=True)
class _HeldOutgoing:
    """What is held under a packet id a hall sends: the packet row and its files' facts."""

    row: PacketRow
    files: tuple[_FileFacts, ...]
    deliveries: tuple[DeliveryInfo, ...]


def _held_outgoing(rt: NodeRuntime, packet_id: uuid.UUID) -> _HeldOutgoing | None:
    with rt.metadata.read() as session:
        row = session.scalar(select(PacketRow).where(PacketRow.packet_id == str(packet_id)))
        if row is None:
            return None
        files = tuple(
            (f.name, f.media_type, f.size, f.sha256)
            for f in session.scalars(
                select(PacketFileRow)
                .where(PacketFileRow.packet_id == row.packet_id)
                .order_by(PacketFileRow.file_index)
            )
        )
        return _HeldOutgoing(row, files, _deliveries(session, row.packet_id))


def _hall_files(kind: str, files: Sequence[_FileFacts]) -> Sequence[_FileFacts]:
    """The files the hall sent, without the ``FILE.p7s`` seals the node added to a result."""
    half = len(files) // 2
    if (
        kind == "result"
        and half
        and len(files) == 2 * half
        and all(
            s[0] == f"{f[0]}.p7s" and s[1] == "application/pkcs7-signature"
            for f, s in zip(files[:half], files[half:], strict=True)
        )
    ):
        return files[:half]
    return files


def _reused(packet_id: uuid.UUID | str) -> Conflict:
    # One answer whoever holds the id (this hall, another hall, a peer's packet), so that a
    # hall learns nothing about packets that are not its own.
    return Conflict(
        f"packet id {packet_id} is already used for a different packet; "
        "send this one under a new packet id"
    )


def _same_header(rt: NodeRuntime, header: SubmitHeader, st: PacketStatement) -> bool:
    """Whether ``header`` asks for exactly what the held statement ``st`` says (the header
    is checked as for a new packet; its errors are the caller's to see)."""
    _check_header_text(header)
    if header.kind not in ("application", "supplement", "result"):
        raise InvalidRequest(f"unknown packet kind {echo(header.kind)}")
    plain = _form_plain(rt, header)
    if header.kind != st.kind or hashlib.sha256(plain).hexdigest() != st.form_sha256:
        return False
    if header.kind == "application":
        asked = (header.mode, header.matter_code, header.matter_name)
        return asked == (st.mode, st.matter_code, st.matter_name) and (
            _resolve_recipients(rt, header) == st.recipients
        )
    if _case_id(header) != st.case_id:
        return False
    if header.kind == "supplement":
        return [r.node for r in header.recipients] == [r.node for r in st.recipients]
    return True


def _resent_files(parts: Iterator[SubmitPart], held: _HeldOutgoing) -> Iterator[_FileFacts]:
    """The facts of each file a hall sends again, read (and hashed) without being stored;
    a file that cannot match the held one ends the stream early."""
    st_kind = held.row.kind
    expected = _hall_files(st_kind, held.files)
    for index, part in enumerate(parts):
        if not isinstance(part, FileBegin):
            raise InvalidRequest("file data must follow a file begin")
        if index >= len(expected) or (part.name, part.media_type) != expected[index][:2]:
            yield (part.name, part.media_type, -1, "")
            return
        digest = hashlib.sha256()
        size = 0
        end: list[FileEnd] = []
        for chunk in _file_chunks(parts, part.name, expected[index][2], end):
            size += len(chunk)
            digest.update(chunk)
        if end[0].sha256.lower() != digest.hexdigest():
            raise InvalidRequest(
                f"file {index} {echo(part.name)}: the SHA-256 the hall declared does not "
                "match the bytes received",
                code="manifest-digest-mismatch",
            )
        yield (part.name, part.media_type, size, digest.hexdigest())


def _answer_resend(
    rt: NodeRuntime,
    hall_id: str,
    header: SubmitHeader,
    held: _HeldOutgoing,
    files: Iterable[_FileFacts],
) -> SubmitResult:
    """The answer to a packet id already held: the original answer if this hall sent
    exactly this packet before, else the conflict.

    Raises:
        Conflict: the id is held for another hall, for a received packet, or for other
            content; the message is the same in each case.
    """
    row = held.row
    st = PacketStatement.from_payload(row.statement)
    same = _same_header(rt, header, st)
    if row.direction != "out" or row.local_hall != hall_id or not same:
        raise _reused(row.packet_id)
    expected = _hall_files(row.kind, held.files)
    sent: list[_FileFacts] = []
    for facts in files:
        sent.append(facts)
        if len(sent) > len(expected) or facts != expected[len(sent) - 1]:
            raise _reused(row.packet_id)
    if len(sent) != len(expected):
        raise _reused(row.packet_id)
    return SubmitResult(row.packet_id, row.case_id, True, held.deliveries)


def _deliveries(session: Session, packet_id: str) -> tuple[DeliveryInfo, ...]:
    rows = session.scalars(
        select(DeliveryRow).where(DeliveryRow.packet_id == packet_id).order_by(DeliveryRow.node_id)
    )
    return tuple(DeliveryInfo(d.node_id, d.state, d.attempts, d.last_error) for d in rows)


def _commit_outgoing(
    rt: NodeRuntime,
    hall_id: str,
    header: SubmitHeader,
    plan: _Plan,
    data_key: bytes,
    entries: list[FileEntry],
    file_rows: list[PacketFileRow],
    prefix: str,
) -> SubmitResult:
    now = rt.clock()
    form_cipher = FileCipher(
        data_key, plan.packet_id, FORM_FILE_INDEX, segment_size=MAX_SEGMENT_SIZE
    )
    form_ct = form_cipher.seal(0, plan.form_plain, final=True)
    st = PacketStatement(
        packet_id=plan.packet_id,
        case_id=plan.case_id,
        kind=header.kind,
        mode=header.mode if header.kind == "application" else "",
        matter_code=header.matter_code,
        matter_name=header.matter_name,
        sender_node=rt.node_id,
        sender_hall=hall_id,
        recipients=plan.recipients,
        created_at=now,
        segment_size=rt.config.limits.segment_size,
        form_size=len(plan.form_plain),
        form_sha256=hashlib.sha256(plan.form_plain).hexdigest(),
        files=tuple(entries),
    )
    sent = [(e.name, e.media_type, e.size, e.sha256) for e in entries]
    try:
        return _store_outgoing(
            rt, hall_id, header, plan, data_key, entries, file_rows, st, form_ct, prefix
        )
    except IntegrityError:
        # The id is held: sent before (a new application without files is not looked up
        # first), or a concurrent submit of the same packet id won. Answer as for a retry.
        held = _held_outgoing(rt, plan.packet_id)
        if held is None:
            raise
        return _answer_resend(rt, hall_id, header, held, sent)


def _store_outgoing(
    rt: NodeRuntime,
    hall_id: str,
    header: SubmitHeader,
    plan: _Plan,
    data_key: bytes,
    entries: list[FileEntry],
    file_rows: list[PacketFileRow],
    st: PacketStatement,
    form_ct: bytes,
    prefix: str,
) -> SubmitResult:
    now = st.created_at
    directory = rt.directory.current
    signer = rt.keys.signer(now)
    # Public-key work happens before the write transaction, which should hold the database
    # for SQL alone.
    self_key = directory.node(rt.node_id).encryption_key(now)
    self_wrap = wrap_data_key(data_key, self_key.encryption_key(), plan.packet_id, rt.node_id)
    wraps: list[tuple[RecipientEntry, KeyRecord, bytes]] = []
    for r in plan.recipients:
        key = directory.node(r.node).encryption_key(now)
        wraps.append(
            (r, key, wrap_data_key(data_key, key.encryption_key(), plan.packet_id, r.node))
        )
    if header.kind == "application":
        return _store_application(
            rt, hall_id, header, plan, entries, file_rows, st, form_ct, self_wrap, self_key, wraps
        )
    with rt.metadata.transaction() as session:
        case, leg, _ = _leg_for_packet(session, rt, hall_id, header, str(plan.case_id))
        event = "supplemented" if header.kind == "supplement" else "result_returned"
        st = dataclasses.replace(
            st, mode=case.mode, matter_code=case.matter_code, matter_name=case.matter_name
        )
        ecerts: list[str] = []
        if header.kind == "result":
            ecerts = _seal_results(rt, session, plan, data_key, entries, file_rows, prefix)
            # The seals' names ("FILE.p7s") must not collide with the hall's files.
            check_file_names(e.name for e in entries)
            st = dataclasses.replace(st, files=tuple(entries))
        env = sign_envelope(st.to_payload(), PACKET_TYPE, [signer])
        session.add(_packet_row(rt, hall_id, st, env, form_ct, self_wrap, self_key))
        session.flush()
        session.add_all(file_rows)
        detail: dict[str, Any] = {"files": [e.name for e in entries], "matter": st.matter_code}
        if ecerts:
            detail["ecerts"] = ecerts
        append_local_event(
            session,
            rt,
            case,
            leg,
            event,
            hall_id,
            {**detail, "packet_id": str(plan.packet_id)},
            packet_id=str(plan.packet_id),
            at=now,
        )
        session.add_all(_delivery_rows(plan, wraps))
        owed = [
            enqueue(session, rt, r.node, str(plan.case_id), "packet", str(plan.packet_id))
            for r in plan.recipients
        ]
        items = outbox_items(session, owed, batchable=not entries)
        deliveries = tuple(DeliveryInfo(r.node, "pending", 0, "") for r in plan.recipients)
    rt.inbox.notify()
    rt.offer_delivery(items)
    return SubmitResult(str(plan.packet_id), str(plan.case_id), False, deliveries)


def _store_application(
    rt: NodeRuntime,
    hall_id: str,
    header: SubmitHeader,
    plan: _Plan,
    entries: list[FileEntry],
    file_rows: list[PacketFileRow],
    st: PacketStatement,
    form_ct: bytes,
    self_wrap: bytes,
    self_key: KeyRecord,
    wraps: list[tuple[RecipientEntry, KeyRecord, bytes]],
) -> SubmitResult:
    """Store a new application: its case, one leg per recipient, each leg's signed
    "submitted" event, the packet and what is owed to each recipient.

    Everything is new, so it is built and signed before the write transaction, which then
    only inserts rows (no reads, no unit of work).
    """
    now = st.created_at
    packet_id, case_id = str(plan.packet_id), str(plan.case_id)
    env = sign_envelope(st.to_payload(), PACKET_TYPE, [rt.keys.signer(now)])
    case = CaseRow(
        case_id=case_id,
        mode=header.mode,
        matter_code=header.matter_code,
        matter_name=st.matter_name,
        accepting_node=rt.node_id,
        accepting_hall=hall_id,
        created_at=now,
    )
    legs = [
        LegRow(
            case_id=case_id,
            node_id=r.node,
            hall_id=r.hall,
            department=r.department,
            status="new",
            decision="",
            supplement_requests=0,
            head_hash="",
            head_seq=0,
            updated_at=now,
        )
        for r in plan.recipients
    ]
    detail = {"files": [e.name for e in entries], "matter": st.matter_code, "packet_id": packet_id}
    events = [
        local_event(rt, case, leg, "submitted", hall_id, detail, packet_id=packet_id, at=now)
        for leg in legs
    ]
    outbox = [outbox_row(rt, r.node, case_id, "packet", packet_id) for r in plan.recipients]
    ids = rt.metadata.insert_new(
        [
            case,
            *legs,
            _packet_row(rt, hall_id, st, env, form_ct, self_wrap, self_key),
            *file_rows,
            *(row for _, row in events),
            *_delivery_rows(plan, wraps),
        ],
        keyed=outbox,
    )
    stored_files = tuple(
        StoredFile(f.file_index, f.blob_key, f.segment_count, f.ciphertext_size) for f in file_rows
    )
    # Each recipient's leg is the one of the same index; its event travels with the packet.
    items = [
        OutboxItem(
            i,
            o.dest_node,
            o.case_id,
            o.kind,
            o.ref,
            batchable=rt.config.limits.travels_inline(sum(e.size for e in entries)),
            packet=OutgoingPacket(
                DeliverOpening(env, wrapped, key.key_id, form_ct, (event_env,)),
                stored_files,
                st.segment_size,
            ),
        )
        for i, o, (_, key, wrapped), (event_env, _) in zip(ids, outbox, wraps, events, strict=True)
    ]
    rt.inbox.notify()
    rt.offer_delivery(items)
    deliveries = tuple(DeliveryInfo(r.node, "pending", 0, "") for r in plan.recipients)
    return SubmitResult(packet_id, case_id, False, deliveries)


def _packet_row(
    rt: NodeRuntime,
    hall_id: str,
    st: PacketStatement,
    env: Envelope,
    form_ct: bytes,
    self_wrap: bytes,
    self_key: KeyRecord,
) -> PacketRow:
    return PacketRow(
        packet_id=str(st.packet_id),
        direction="out",
        kind=st.kind,
        case_id=str(st.case_id),
        mode=st.mode,
        matter_code=st.matter_code,
        matter_name=st.matter_name,
        sender_node=rt.node_id,
        sender_hall=hall_id,
        local_hall=hall_id,
        created_at=st.created_at,
        stored_at=st.created_at,
        statement=env.payload,
        statement_type=PACKET_TYPE,
        signatures=encode_signatures(env),
        signed_by_key=env.signatures[0].key_id,
        form_ciphertext=form_ct,
        wrapped_key=self_wrap,
        wrap_key_id=self_key.key_id,
        stored_digest="",
        receipt=None,
        file_count=len(st.files),
        total_size=sum(e.size for e in st.files),
    )


def _delivery_rows(
    plan: _Plan, wraps: list[tuple[RecipientEntry, KeyRecord, bytes]]
) -> list[DeliveryRow]:
    return [
        DeliveryRow(
            packet_id=str(plan.packet_id),
            node_id=r.node,
            hall_id=r.hall,
            department=r.department,
            wrapped_key=wrapped,
            key_id=key.key_id,
            state="pending",
            attempts=0,
            last_error="",
        )
        for r, key, wrapped in wraps
    ]


def _result_seal(rt: NodeRuntime, session: Session) -> str | None:
    """The seal for this node's results: the configured one, else the newest usable one."""
    if rt.seals is None:
        return None
    if rt.config.result_seal:
        return rt.config.result_seal
    now = rt.clock()
    for row in session.scalars(select(SealRow).order_by(SealRow.created_at.desc())):
        if SealRecord.from_json_dict(json.loads(row.record)).valid_at(now):
            return row.seal_id
    _log.warning("node %s has no usable seal; results go out unsealed", rt.node_id)
    return None


def _seal_results(
    rt: NodeRuntime,
    session: Session,
    plan: _Plan,
    data_key: bytes,
    entries: list[FileEntry],
    file_rows: list[PacketFileRow],
    prefix: str,
) -> list[str]:
    """Seal every result document (detached CMS from its digest) and add each FILE.p7s to
    the packet; returns the e-certificate identifiers issued."""
    seal_id = _result_seal(rt, session)
    if seal_id is None:
        return []
    identifiers = []
    for entry in list(entries):
        identifier, p7s = seal_result_digest(
            rt,
            session,
            seal_id=seal_id,
            document_name=entry.name,
            sha256_hex=entry.sha256,
            packet_id=str(plan.packet_id),
        )
        identifiers.append(identifier)
        index = len(entries)
        cipher = FileCipher(
            data_key, plan.packet_id, index, segment_size=rt.config.limits.segment_size
        )
        segments = list(cipher.encrypt_chunks([p7s]))
        stored = rt.objects.put_stream(f"{prefix}{index}", (s.ciphertext for s in segments))
        sha = hashlib.sha256(p7s).hexdigest()
        name = f"{entry.name}.p7s"
        entries.append(
            FileEntry(index, name, "application/pkcs7-signature", len(p7s), sha, len(segments))
        )
        file_rows.append(
            PacketFileRow(
                packet_id=str(plan.packet_id),
                file_index=index,
                name=name,
                media_type="application/pkcs7-signature",
                size=len(p7s),
                sha256=sha,
                segment_count=len(segments),
                blob_key=stored.key,
                ciphertext_size=stored.size,
                ciphertext_sha256=stored.sha256,
            )
        )
    return identifiers


# ---- delivery (sending side) ------------------------------------------------------------------


def _records(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Re-cut a byte stream into records of ``size`` bytes (the last may be shorter)."""
    buf = bytearray()
    for chunk in chunks:
        if not buf and len(chunk) == size:
            yield chunk  # the store read exactly one record: pass it on without copying
            continue
        buf += chunk
        while len(buf) >= size:
            yield bytes(buf[:size])
            del buf[:size]
    if buf:
        yield bytes(buf)


def _opening(packet: PacketRow, delivery: DeliveryRow, events: list[EventRow]) -> DeliverOpening:
    return DeliverOpening(
        Envelope(packet.statement, PACKET_TYPE, decode_signatures(packet.signatures)),
        delivery.wrapped_key,
        delivery.key_id,
        packet.form_ciphertext,
        tuple(event_envelope(e) for e in events),
    )


def _event_leg(rt: NodeRuntime, packet: PacketRow, node_id: str) -> str:
    """The leg whose event travels with a packet: the recipient's, or ours for a result."""
    return node_id if packet.kind != "result" else rt.node_id


def read_outgoing(rt: NodeRuntime, packet_id: str, node_id: str) -> OutgoingPacket:
    """What a stored outgoing packet sends to one recipient, read from the store.

    Raises:
        NotFound: the packet is not stored or not owed to ``node_id``.
    """
    with rt.metadata.read() as session:
        packet = session.scalar(select(PacketRow).where(PacketRow.packet_id == packet_id))
        delivery = session.get(DeliveryRow, (packet_id, node_id))
        if packet is None or delivery is None:
            raise NotFound(f"no delivery of packet {packet_id} to node {node_id}")
        files = tuple(
            StoredFile(f.file_index, f.blob_key, f.segment_count, f.ciphertext_size)
            for f in session.scalars(
                select(PacketFileRow)
                .where(PacketFileRow.packet_id == packet_id)
                .order_by(PacketFileRow.file_index)
            )
        )
        events = list(
            session.scalars(
                select(EventRow).where(
                    EventRow.packet_id == packet_id,
                    EventRow.leg_node == _event_leg(rt, packet, node_id),
                )
            )
        )
    st = PacketStatement.from_payload(packet.statement)
    return OutgoingPacket(_opening(packet, delivery, events), files, st.segment_size)


def delivery_parts(rt: NodeRuntime, packet: OutgoingPacket) -> Iterator[DeliverPart]:
    """The opening of an outgoing packet, then every segment of its files in order."""
    yield packet.opening
    yield from _stored_segments(rt, packet)


def _stored_segments(rt: NodeRuntime, packet: OutgoingPacket) -> Iterator[DeliverSegment]:
    record = packet.segment_size + TAG_SIZE
    for f in packet.files:
        stream = rt.objects.open_stream(f.blob_key, chunk_size=record)
        for i, ct in enumerate(_records(stream, record)):
            yield DeliverSegment(f.index, i, i == f.segments - 1, ct)


def inline_opening(rt: NodeRuntime, packet: OutgoingPacket) -> DeliverOpening:
    """The packet's opening with its files' segments inline, read from the store."""
    if not packet.files:
        return packet.opening
    return dataclasses.replace(packet.opening, segments=tuple(_stored_segments(rt, packet)))


def delivery_openings(
    rt: NodeRuntime, node_id: str, packet_ids: Sequence[str]
) -> dict[str, DeliverOpening]:
    """The openings of stored outgoing packets without files, for one recipient, read at
    once; a packet that has files or no delivery to ``node_id`` is left out."""
    ids = list(packet_ids)
    with rt.metadata.read() as session:
        packets = {
            p.packet_id: p
            for p in session.scalars(
                select(PacketRow).where(PacketRow.packet_id.in_(ids), PacketRow.file_count == 0)
            )
        }
        deliveries = {
            d.packet_id: d
            for d in session.scalars(
                select(DeliveryRow).where(
                    DeliveryRow.node_id == node_id, DeliveryRow.packet_id.in_(ids)
                )
            )
        }
        events: dict[str, list[EventRow]] = {}
        for e in session.scalars(select(EventRow).where(EventRow.packet_id.in_(ids))):
            packet = packets.get(e.packet_id)
            if packet is not None and e.leg_node == _event_leg(rt, packet, node_id):
                events.setdefault(e.packet_id, []).append(e)
    return {
        pid: _opening(packets[pid], deliveries[pid], events.get(pid, []))
        for pid in ids
        if pid in packets and pid in deliveries
    }


# ---- receiving side ---------------------------------------------------------------------------


def _segments_of(parts: Iterator[DeliverPart], index: int) -> Iterator[SealedSegment]:
    for part in parts:
        if not isinstance(part, DeliverSegment):
            raise InvalidRequest("only segments may follow the packet opening")
        if part.file_index != index:
            raise IntegrityFailure(
                f"segment for file {part.file_index} arrived while file {index} was open",
                code="truncated-stream",
            )
        yield SealedSegment(part.segment_index, part.final, part.ciphertext)
        if part.final:
            return


@dataclass(frozen=True)
class _Incoming:
    """A delivered packet's opening, checked: signed by the peer, addressed here, form good."""

    st: PacketStatement
    opening: DeliverOpening
    key_id: str
    me: RecipientEntry
    form_plain: bytes
    data_key: bytes


@dataclass(frozen=True)
class DeliverOutcome:
    """What became of one packet of a batch: its signed receipt, or why it was refused."""

    receipt: Envelope | None
    duplicate: bool = False
    error: Exception | None = None


def _check_opening(
    rt: NodeRuntime,
    peer_node: str,
    opening: DeliverOpening,
    held: Mapping[str, _HeldRow] | None = None,
) -> _Incoming | Envelope:
    """Check a packet opening; the original receipt instead when the packet is already held
    (looked up in ``held`` when given, else in the store)."""
    now = rt.clock()
    sender = rt.directory.current.node(peer_node)
    verified = verify_envelope(
        opening.statement, sender.signing_keys(now), payload_type=PACKET_TYPE
    )
    st = PacketStatement.from_payload(opening.statement.payload)
    _check_received_bounds(st, rt.config.limits)
    if st.sender_node != peer_node:
        raise PermissionDenied(
            f"packet names sender {st.sender_node} but came from node {peer_node}"
        )
    me = st.recipient(rt.node_id)
    if me is None:
        to = ", ".join(r.node for r in st.recipients)
        raise InvalidRequest(
            f"packet {st.packet_id} is addressed to {to}, not to this node {rt.node_id}",
            code="wrong-recipient",
        )
    receipt = _held_receipt(rt, st, opening.statement, held)
    if receipt is not None:
        return receipt
    data_key = unwrap_data_key(
        opening.wrapped_key,
        rt.keys.decryption_candidates(opening.recipient_key_id),
        st.packet_id,
        rt.node_id,
    )
    form_plain = FileCipher(
        data_key, st.packet_id, FORM_FILE_INDEX, segment_size=MAX_SEGMENT_SIZE
    ).open(0, opening.form_ciphertext, final=True)
    if len(form_plain) != st.form_size or hashlib.sha256(form_plain).hexdigest() != st.form_sha256:
        raise IntegrityFailure(
            "the form does not match its signed digest", code="manifest-digest-mismatch"
        )
    _check_received_form(form_plain)
    return _Incoming(st, opening, verified.key_id, me, form_plain, data_key)


def _check_received_bounds(st: PacketStatement, limits: Limits) -> None:
    """A peer's packet within this node's limits, checked before any of its data is read.

    Raises:
        TooLarge: more files, a larger file or a larger form than this node takes.
        InvalidRequest, BadFileName: a field, file name or count the statement gets wrong.
    """
    check_statement_bounds(st)
    if len(st.files) > limits.max_files:
        raise TooLarge(f"the packet holds {len(st.files)} files; the limit is {limits.max_files}")
    for f in st.files:
        if f.size > limits.max_file_bytes:
            raise TooLarge(
                f"file {f.index} {echo(f.name)} is {f.size} bytes; the limit is "
                f"{limits.max_file_bytes}"
            )
    form_limit = limits.max_form_bytes + FORM_HEADROOM
    if st.form_size > form_limit:
        raise TooLarge(f"the form is {st.form_size} bytes; the limit is {form_limit}")


def _check_received_form(form_plain: bytes) -> None:
    """The decrypted form of a peer's packet: plain JSON with a form object and an
    applicant whose fields are within their limits.

    Raises:
        InvalidRequest (``malformed-form``, ``field-too-long``).
    """
    try:
        # The hall's form sits one level down, under "form".
        content = parse_json_object(form_plain, "packet form", max_depth=MAX_JSON_DEPTH + 1)
    except BadPeerData as exc:
        raise InvalidRequest(exc.message, code="malformed-form") from None
    applicant = content.get("applicant")
    if not isinstance(content.get("form"), dict) or not (
        applicant is None or isinstance(applicant, dict)
    ):
        raise InvalidRequest("packet form content is malformed", code="malformed-form")
    if applicant is not None:
        fields = {"applicant name": "name", "applicant id number": "id_number"}
        for field, key in fields.items():
            value = applicant.get(key)
            if not isinstance(value, str):
                raise InvalidRequest(f"packet form has no {field}", code="malformed-form")
            check_text(field, value)


def receive_packet(
    rt: NodeRuntime, peer_node: str, parts: Iterator[DeliverPart]
) -> tuple[Envelope, bool]:
    """Verify, decrypt-check and store a packet a peer delivers; return the signed receipt.

    A packet already held is not stored again: the original receipt is returned.

    Raises:
        Unauthenticated (keys errors): the statement is not signed by a key of the peer.
        PermissionDenied: the statement names another sender than the connected peer.
        InvalidRequest: malformed, or addressed to another node.
        IntegrityFailure / DecryptionError: content differs from what was signed.
    """
    opening = next(parts, None)
    if not isinstance(opening, DeliverOpening):
        raise InvalidRequest("the first message of a delivery must be the packet opening")
    checked = _check_opening(rt, peer_node, opening)
    if isinstance(checked, Envelope):
        return checked, True
    return _store_checked(rt, checked, itertools.chain(opening.segments, parts))


def _store_checked(
    rt: NodeRuntime, checked: _Incoming, parts: Iterator[DeliverPart]
) -> tuple[Envelope, bool]:
    """Store a checked packet's files from ``parts`` (its segments, file by file), then the
    packet; its receipt, and whether the packet was stored meanwhile by another delivery."""
    st = checked.st
    prefix = f"in/{st.packet_id}/{uuid.uuid4().hex[:12]}-"
    file_rows: list[PacketFileRow] = []
    with rt.transfers.hold(prefix):
        try:
            for f in st.files:
                cipher = FileCipher(
                    checked.data_key, st.packet_id, f.index, segment_size=st.segment_size
                )
                ciphertext = _opened_ciphertext(cipher, _segments_of(parts, f.index))
                stored = rt.objects.put_stream(f"{prefix}{f.index}", ciphertext)
                digest = cipher.plaintext_digest
                if digest.size != f.size or digest.hexdigest() != f.sha256:
                    raise IntegrityFailure(
                        f"file {f.index} {echo(f.name)} does not match its signed SHA-256 digest",
                        code="manifest-digest-mismatch",
                    )
                file_rows.append(
                    PacketFileRow(
                        packet_id=str(st.packet_id),
                        file_index=f.index,
                        name=f.name,
                        media_type=f.media_type,
                        size=f.size,
                        sha256=f.sha256,
                        segment_count=f.segments,
                        blob_key=stored.key,
                        ciphertext_size=stored.size,
                        ciphertext_sha256=stored.sha256,
                    )
                )
            if next(parts, None) is not None:
                raise InvalidRequest("data arrived after the last file of the packet")
            return _commit_incoming(rt, checked, file_rows)
        except BaseException:
            rt.objects.delete_prefix(prefix)
            raise


def receive_batch(
    rt: NodeRuntime, peer_node: str, openings: Sequence[DeliverOpening]
) -> list[DeliverOutcome]:
    """Receive several small packets, their file segments inline; each is checked and
    stored on its own.

    Packets without files are stored together with the group commit, each all or nothing;
    a packet with files is stored as by :func:`receive_packet`. A refused packet changes
    nothing and leaves the others of the batch unaffected.

    Raises:
        TooLarge: more packets than one batch may carry (nothing is stored).
    """
    if len(openings) > MAX_DELIVERY_BATCH:
        raise TooLarge(
            f"a delivery batch holds at most {MAX_DELIVERY_BATCH} packets, not {len(openings)}"
        )
    outcomes: list[DeliverOutcome | None] = [None] * len(openings)
    ready: list[tuple[int, _Incoming, Envelope, str]] = []
    named: set[uuid.UUID] = set()
    held_rows = _held_rows(rt, _named_packets(openings))
    for i, opening in enumerate(openings):
        try:
            checked = _check_opening(rt, peer_node, opening, held_rows)
            if isinstance(checked, Envelope):
                outcomes[i] = DeliverOutcome(checked, duplicate=True)
                continue
            if checked.st.packet_id in named:
                raise InvalidRequest(f"packet {checked.st.packet_id} appears twice in the batch")
            named.add(checked.st.packet_id)
            if not checked.st.files and opening.segments:
                raise InvalidRequest("data arrived after the last file of the packet")
            if checked.st.files:
                # Its files are stored now, then the packet with the group commit.
                receipt, duplicate = _store_checked(rt, checked, iter(opening.segments))
                outcomes[i] = DeliverOutcome(receipt, duplicate=duplicate)
                continue
            ready.append((i, checked, *_receipt(rt, checked, [])))
        except Exception as exc:
            outcomes[i] = DeliverOutcome(None, error=exc)
    raced: list[tuple[int, _Incoming]] = []
    # New applications (the common case) are built and checked in memory and inserted with
    # the group commit, each packet on its own; the rest need the case as held.
    known = _held_cases(rt, [str(c.st.case_id) for _, c, _, _ in ready])
    fresh: list[tuple[int, _Incoming, Envelope, list[Base]]] = []
    rest: list[tuple[int, _Incoming, Envelope, str]] = []
    for i, checked, receipt_env, stored_digest in ready:
        case_id = str(checked.st.case_id)
        if checked.st.kind != "application" or case_id in known:
            rest.append((i, checked, receipt_env, stored_digest))
            continue
        known.add(case_id)  # a second packet of this case in the batch goes the long way
        try:
            rows = _new_application_rows(rt, checked, [], receipt_env, stored_digest)
        except Exception as exc:
            outcomes[i] = DeliverOutcome(None, error=exc)
        else:
            fresh.append((i, checked, receipt_env, rows))
    if fresh:
        errors = rt.metadata.insert_each([rows for *_, rows in fresh])
        for (i, checked, receipt_env, _), error in zip(fresh, errors, strict=True):
            if error is None:
                outcomes[i] = DeliverOutcome(receipt_env)
            elif isinstance(error, IntegrityError):
                raced.append((i, checked))
            else:
                outcomes[i] = DeliverOutcome(None, error=error)
    if rest:
        with rt.metadata.transaction() as session:
            for i, checked, receipt_env, stored_digest in rest:
                try:
                    with session.begin_nested():
                        _insert_incoming(session, rt, checked, [], receipt_env, stored_digest)
                except IntegrityError:
                    raced.append((i, checked))
                except Exception as exc:
                    outcomes[i] = DeliverOutcome(None, error=exc)
                else:
                    outcomes[i] = DeliverOutcome(receipt_env)
    if fresh or rest:
        rt.inbox.notify()
    for i, checked in raced:
        # Stored meanwhile by a concurrent delivery of the same packet: answer as for a replay.
        try:
            held = _held_receipt(rt, checked.st, checked.opening.statement)
            if held is None:
                raise Conflict(f"packet {checked.st.packet_id} could not be stored; send it again")
            outcomes[i] = DeliverOutcome(held, duplicate=True)
        except Exception as exc:
            outcomes[i] = DeliverOutcome(None, error=exc)
    done = [o for o in outcomes if o is not None]
    assert len(done) == len(outcomes), "every packet of a batch has an outcome"
    return done


def _opened_ciphertext(cipher: FileCipher, segments: Iterator[SealedSegment]) -> Iterator[bytes]:
    """One file's ciphertext as received; each segment is opened (tag, order, final flag)
    before it is kept, so nothing unauthenticated reaches the store."""
    held: list[bytes] = []

    def tee() -> Iterator[SealedSegment]:
        for seg in segments:
            held.append(seg.ciphertext)
            yield seg

    for _plain in cipher.decrypt_segments(tee()):
        yield held.pop()


_HeldRow = tuple[str, bytes, bytes | None]  # direction, statement, receipt of a held packet


def _held_rows(rt: NodeRuntime, packet_ids: Iterable[str]) -> dict[str, _HeldRow]:
    """What is held under these packet ids, read at once."""
    ids = list(packet_ids)
    if not ids:
        return {}
    with rt.metadata.read() as session:
        rows = session.execute(
            select(
                PacketRow.packet_id, PacketRow.direction, PacketRow.statement, PacketRow.receipt
            ).where(PacketRow.packet_id.in_(ids))
        ).all()
    return {pid: (direction, statement, receipt) for pid, direction, statement, receipt in rows}


def _held_receipt(
    rt: NodeRuntime,
    st: PacketStatement,
    statement: Envelope,
    held: Mapping[str, _HeldRow] | None = None,
) -> Envelope | None:
    """The receipt given for this very packet before; None if it is not held.

    Raises:
        Conflict: the packet id is held with other content.
    """
    pid = str(st.packet_id)
    row = (_held_rows(rt, [pid]) if held is None else held).get(pid)
    if row is None:
        return None
    direction, payload, receipt = row
    if direction != "in" or payload != statement.payload or receipt is None:
        raise Conflict(f"packet id {st.packet_id} is already held with other content")
    return Envelope.from_json_dict(json.loads(receipt))


def _named_packets(openings: Sequence[DeliverOpening]) -> list[str]:
    """The packet ids the openings' statements name (unreadable ones are skipped here and
    refused when checked)."""
    ids = []
    for opening in openings:
        # Whatever makes a statement unreadable refuses that packet alone, when it is checked.
        with suppress(Exception):
            ids.append(str(PacketStatement.from_payload(opening.statement.payload).packet_id))
    return ids


def _held_cases(rt: NodeRuntime, case_ids: Sequence[str]) -> set[str]:
    """Which of these cases this node holds, read at once."""
    if not case_ids:
        return set()
    with rt.metadata.read() as session:
        return set(
            session.scalars(select(CaseRow.case_id).where(CaseRow.case_id.in_(set(case_ids))))
        )


def _receipt(
    rt: NodeRuntime, checked: _Incoming, file_rows: list[PacketFileRow]
) -> tuple[Envelope, str]:
    """The signed receipt for a packet about to be stored, and the digest it names."""
    now = rt.clock()
    opening = checked.opening
    stored_digest = hashlib.sha256(
        canonical_json(
            {
                "statement": opening.statement.digest,
                "form": hashlib.sha256(opening.form_ciphertext).hexdigest(),
                "files": [r.ciphertext_sha256 for r in file_rows],
            }
        )
    ).hexdigest()
    receipt = Receipt(
        checked.st.packet_id, rt.node_id, opening.statement.digest, stored_digest, now
    )
    receipt_env = sign_envelope(receipt.to_payload(), RECEIPT_TYPE, [rt.keys.signer(now)])
    return receipt_env, stored_digest


def _commit_incoming(
    rt: NodeRuntime, checked: _Incoming, file_rows: list[PacketFileRow]
) -> tuple[Envelope, bool]:
    receipt_env, stored_digest = _receipt(rt, checked, file_rows)
    try:
        if checked.st.kind == "application" and not _held_cases(rt, [str(checked.st.case_id)]):
            rt.metadata.insert_new(
                _new_application_rows(rt, checked, file_rows, receipt_env, stored_digest)
            )
        else:
            with rt.metadata.transaction() as session:
                _insert_incoming(session, rt, checked, file_rows, receipt_env, stored_digest)
    except IntegrityError:
        held = _held_receipt(rt, checked.st, checked.opening.statement)
        if held is None:
            raise
        return held, True
    rt.inbox.notify()
    return receipt_env, False


_EXPECTED_EVENT = {
    "application": "submitted",
    "supplement": "supplemented",
    "result": "result_returned",
}


def _incoming_packet_row(
    checked: _Incoming,
    local_hall: str,
    file_rows: list[PacketFileRow],
    receipt_env: Envelope,
    stored_digest: str,
) -> PacketRow:
    st, opening = checked.st, checked.opening
    return PacketRow(
        packet_id=str(st.packet_id),
        direction="in",
        kind=st.kind,
        case_id=str(st.case_id),
        mode=st.mode,
        matter_code=st.matter_code,
        matter_name=st.matter_name,
        sender_node=st.sender_node,
        sender_hall=st.sender_hall,
        local_hall=local_hall,
        created_at=st.created_at,
        stored_at=Receipt.from_payload(receipt_env.payload).received_at,
        statement=opening.statement.payload,
        statement_type=PACKET_TYPE,
        signatures=encode_signatures(opening.statement),
        signed_by_key=checked.key_id,
        form_ciphertext=opening.form_ciphertext,
        wrapped_key=opening.wrapped_key,
        wrap_key_id=opening.recipient_key_id,
        stored_digest=stored_digest,
        receipt=json.dumps(receipt_env.to_json_dict()).encode(),
        file_count=len(file_rows),
        total_size=sum(r.size for r in file_rows),
    )


def _check_packet_event(checked: _Incoming, ev: EventStatement) -> None:
    st = checked.st
    if ev.packet_id != str(st.packet_id) or ev.event != _EXPECTED_EVENT[st.kind]:
        raise InvalidRequest(f"event {ev.event!r} does not belong to packet {st.packet_id}")


def _check_event_count(checked: _Incoming) -> None:
    if len(checked.opening.events) != 1:
        expected = _EXPECTED_EVENT[checked.st.kind]
        raise InvalidRequest(
            f"a {checked.st.kind} packet must carry exactly one {expected!r} event"
        )


def _new_application_rows(
    rt: NodeRuntime,
    checked: _Incoming,
    file_rows: list[PacketFileRow],
    receipt_env: Envelope,
    stored_digest: str,
) -> list[Base]:
    """The rows that store a new application whose case this node does not hold yet,
    built and checked (the event's signature and chain included) without the database."""
    st, opening = checked.st, checked.opening
    _check_event_count(checked)
    received_at = Receipt.from_payload(receipt_env.payload).received_at
    case, leg = _new_incoming_case(rt, st, checked.me, received_at)
    ev, event_row = remote_event(rt, st.sender_node, opening.events[0], case, leg)
    _check_packet_event(checked, ev)
    packet = _incoming_packet_row(checked, checked.me.hall, file_rows, receipt_env, stored_digest)
    return [case, leg, packet, *file_rows, event_row]


def _insert_incoming(
    session: Session,
    rt: NodeRuntime,
    checked: _Incoming,
    file_rows: list[PacketFileRow],
    receipt_env: Envelope,
    stored_digest: str,
) -> None:
    """Store a checked packet with its event(s), its case and leg created or advanced."""
    st, opening = checked.st, checked.opening
    _check_event_count(checked)
    received_at = Receipt.from_payload(receipt_env.payload).received_at
    case, leg, local_hall = _incoming_case(session, rt, st, checked.me, received_at)
    session.add(_incoming_packet_row(checked, local_hall, file_rows, receipt_env, stored_digest))
    session.flush()
    session.add_all(file_rows)
    ev, _dup = apply_remote_event(
        session, rt, st.sender_node, opening.events[0], case=case, leg=leg
    )
    _check_packet_event(checked, ev)
    session.flush()


def _new_incoming_case(
    rt: NodeRuntime, st: PacketStatement, me: RecipientEntry, now: datetime
) -> tuple[CaseRow, LegRow]:
    if not rt.me().has_hall(me.hall):
        raise InvalidRequest(f"node {rt.node_id} has no hall {echo(me.hall)}")
    case = CaseRow(
        case_id=str(st.case_id),
        mode=st.mode,
        matter_code=st.matter_code,
        matter_name=st.matter_name,
        accepting_node=st.sender_node,
        accepting_hall=st.sender_hall,
        created_at=st.created_at,
    )
    leg = LegRow(
        case_id=case.case_id,
        node_id=rt.node_id,
        hall_id=me.hall,
        department=me.department,
        status="new",
        decision="",
        supplement_requests=0,
        head_hash="",
        head_seq=0,
        updated_at=now,
    )
    return case, leg


def _incoming_case(
    session: Session, rt: NodeRuntime, st: PacketStatement, me: RecipientEntry, now: datetime
) -> tuple[CaseRow, LegRow, str]:
    case = session.get(CaseRow, str(st.case_id))
    if st.kind == "application":
        new_case, new_leg = _new_incoming_case(rt, st, me, now)  # checks the hall, too
        if case is None:
            case = new_case
            session.add(case)
            session.flush()  # parents first: rows are not linked by ORM relationships
        elif case.accepting_node != st.sender_node:
            raise PermissionDenied(f"case {st.case_id} belongs to node {case.accepting_node}")
        leg = session.get(LegRow, (case.case_id, rt.node_id))
        if leg is None:
            leg = new_leg
            session.add(leg)
        return case, leg, me.hall
    if case is None:
        raise NotFound(f"case {st.case_id} is not known at node {rt.node_id}")
    leg_node = rt.node_id if st.kind == "supplement" else st.sender_node
    leg = session.get(LegRow, (case.case_id, leg_node))
    if leg is None:
        raise NotFound(f"case {st.case_id} has no leg {leg_node} at node {rt.node_id}")
    hall = leg.hall_id if st.kind == "supplement" else case.accepting_hall
    return case, leg, hall


# ---- inbox and fetch --------------------------------------------------------------------------


def _item(session: Session, row: PacketRow) -> InboxItem:
    deliveries = _deliveries(session, row.packet_id) if row.direction == "out" else ()
    return InboxItem(
        row.row_id,
        row.packet_id,
        row.case_id,
        row.kind,
        row.mode,
        row.matter_code,
        row.matter_name,
        row.sender_node,
        row.sender_hall,
        row.direction,
        row.created_at,
        deliveries,
        row.file_count,
        row.total_size,
    )


def list_inbox(
    rt: NodeRuntime, hall_id: str, *, direction: str = "", after_row: int = 0, limit: int = 0
) -> list[InboxItem]:
    """Packets this hall sent or received, oldest first, after ``after_row``: ``limit``
    of them (0 for :data:`DEFAULT_INBOX_PAGE`), never more than :data:`MAX_INBOX_PAGE`.

    Raises:
        InvalidRequest: an unknown direction or a negative limit.
    """
    if direction not in ("", "in", "out"):
        raise InvalidRequest("direction must be 'in', 'out' or empty")
    query = select(PacketRow).where(PacketRow.local_hall == hall_id, PacketRow.row_id > after_row)
    if direction:
        query = query.where(PacketRow.direction == direction)
    if limit < 0:
        raise InvalidRequest(f"limit {limit} is negative; use 0 for {DEFAULT_INBOX_PAGE} entries")
    limit = min(limit or DEFAULT_INBOX_PAGE, MAX_INBOX_PAGE)
    with rt.metadata.read() as session:
        rows = list(session.scalars(query.order_by(PacketRow.row_id).limit(limit)))
        return [_item(session, r) for r in rows]


def fetch_packet(rt: NodeRuntime, hall_id: str, packet_id: str) -> Iterator[FetchPart]:
    """Verify and decrypt a packet of this hall: the opening, then each file's bytes.

    Each file ends with a :class:`FetchFileEnd`; its bytes are good only if ``verified``.

    Raises:
        NotFound: no such packet for this hall (another hall's packet is not revealed).
        IntegrityFailure / DecryptionError: stored content was altered.
    """
    with rt.metadata.read() as session:
        row = session.scalar(select(PacketRow).where(PacketRow.packet_id == packet_id))
        if row is None or row.local_hall != hall_id:
            raise NotFound(f"packet {packet_id} not found for hall {hall_id}")
        item = _item(session, row)
        files = list(
            session.scalars(
                select(PacketFileRow)
                .where(PacketFileRow.packet_id == packet_id)
                .order_by(PacketFileRow.file_index)
            )
        )
    env = Envelope(row.statement, row.statement_type, decode_signatures(row.signatures))
    st = PacketStatement.from_payload(row.statement)
    at = row.stored_at if row.direction == "in" else row.created_at
    keys = rt.directory.current.node(st.sender_node).signing_keys(at)
    verified = verify_envelope(env, keys, payload_type=PACKET_TYPE)
    data_key = unwrap_data_key(
        row.wrapped_key, rt.keys.decryption_candidates(row.wrap_key_id), st.packet_id, rt.node_id
    )
    form_plain = FileCipher(
        data_key, st.packet_id, FORM_FILE_INDEX, segment_size=MAX_SEGMENT_SIZE
    ).open(0, row.form_ciphertext, final=True)
    if hashlib.sha256(form_plain).hexdigest() != st.form_sha256:
        raise IntegrityFailure("the stored form does not match its signed digest")
    content = json.loads(form_plain)
    a = content.get("applicant")
    applicant = Applicant(a["name"], a["id_type"], a["id_number"]) if a else None
    yield FetchOpening(
        item, applicant, canonical_json(content["form"]), st.files, "verified", verified.key_id, env
    )
    record = st.segment_size + TAG_SIZE
    for entry, f in zip(st.files, files, strict=True):
        yield entry
        cipher = FileCipher(data_key, st.packet_id, f.file_index, segment_size=st.segment_size)
        blob = rt.objects.open_stream(f.blob_key, chunk_size=record)
        segs = (
            SealedSegment(i, i == f.segment_count - 1, ct)
            for i, ct in enumerate(_records(blob, record))
        )
        yield from cipher.decrypt_segments(segs)
        digest = cipher.plaintext_digest.hexdigest()
        if digest != entry.sha256 or cipher.plaintext_digest.size != entry.size:
            raise IntegrityFailure(
                f"stored file {entry.index} {echo(entry.name)} does not match its digest"
            )
        yield FetchFileEnd(entry.index, digest, True)
