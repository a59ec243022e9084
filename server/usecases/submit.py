"""A hall submits a packet: checked, signed, encrypted, stored durably, queued for delivery.

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
from collections.abc import Iterable, Iterator, Sequence
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
    FileCipher,
    new_data_key,
    wrap_data_key,
)
from tongban.keys.envelope import (
    Envelope,
    canonical_json,
    parse_json_object,
    sign_envelope,
)
from tongban.keys.errors import BadPeerData, echo
from tongban.keys.file_names import DistinctFileNames, check_file_names
from tongban.keys.identifiers import validate_citizen_id, validate_credit_code
from tongban.keys.records import KeyRecord
from tongban.keys.seals import SealRecord
from tongban.server.config import FORM_HEADROOM, Limits
from tongban.server.domain.errors import (
    Conflict,
    IllegalTransition,
    InvalidRequest,
    NotFound,
    TooLarge,
)
from tongban.server.domain.statements import (
    PACKET_TYPE,
    FileEntry,
    PacketStatement,
    RecipientEntry,
    check_text,
)
from tongban.server.usecases.cases import (
    OutboxItem,
    append_local_event,
    encode_signatures,
    enqueue,
    local_event,
    outbox_items,
    outbox_row,
)
from tongban.server.usecases.messages import (
    Applicant,
    DeliverOpening,
    DeliveryInfo,
    FileBegin,
    FileEnd,
    OutgoingPacket,
    StoredFile,
    SubmitHeader,
    SubmitPart,
    SubmitResult,
)
from tongban.server.usecases.outgoing import delivery_states
from tongban.server.usecases.runtime import NodeRuntime
from tongban.server.usecases.seals import seal_result_digest
from tongban.storage.sql import (
    CaseRow,
    DeliveryRow,
    LegRow,
    PacketFileRow,
    PacketRow,
    SealRow,
)

__all__ = [
    "delivery_states",
    "submit_packet",
]

_log = logging.getLogger("tongban.server.usecases.submit")
_CHINA = ZoneInfo("Asia/Shanghai")


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
        return _HeldOutgoing(row, files, delivery_states(session, row.packet_id))


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
