"""A hall sends a packet id again: the same packet gets its first answer, another is refused.

Another packet under a known id is a conflict, and the refusal does not say whose the id is.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import select

from tongban.keys.errors import echo
from tongban.server.domain.errors import (
    Conflict,
    InvalidRequest,
)
from tongban.server.domain.statements import (
    PacketStatement,
)
from tongban.server.usecases.messages import (
    DeliveryInfo,
    FileBegin,
    FileEnd,
    SubmitHeader,
    SubmitPart,
    SubmitResult,
)
from tongban.server.usecases.outgoing import delivery_states
from tongban.server.usecases.submit_checks import (
    PlanParts,
    case_id_of,
    check_header_text,
    file_chunks,
    resolve_recipients,
    sealed_form_of,
)
from tongban.storage.sql import (
    PacketFileRow,
    PacketRow,
)

__all__ = [
    "answer_resend",
    "held_outgoing",
    "resent_files",
]


# What a hall's file is compared by when a packet is sent again: name, media type, size, SHA-256.
_FileFacts = tuple[str, str, int, str]


@dataclass(frozen=True)
class _HeldOutgoing:
    """What is held under a packet id a hall sends: the packet row and its files' facts."""

    row: PacketRow
    files: tuple[_FileFacts, ...]
    deliveries: tuple[DeliveryInfo, ...]


def held_outgoing(rt: PlanParts, packet_id: uuid.UUID) -> _HeldOutgoing | None:
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


def _same_header(rt: PlanParts, header: SubmitHeader, st: PacketStatement) -> bool:
    """Whether ``header`` asks for exactly what the held statement ``st`` says (the header
    is checked as for a new packet; its errors are the caller's to see)."""
    check_header_text(header)
    if header.kind not in ("application", "supplement", "result"):
        raise InvalidRequest(f"unknown packet kind {echo(header.kind)}")
    plain = sealed_form_of(rt, header)
    if header.kind != st.kind or hashlib.sha256(plain).hexdigest() != st.form_sha256:
        return False
    if header.kind == "application":
        asked = (header.mode, header.matter_code, header.matter_name)
        return asked == (st.mode, st.matter_code, st.matter_name) and (
            resolve_recipients(rt, header) == st.recipients
        )
    if case_id_of(header) != st.case_id:
        return False
    if header.kind == "supplement":
        return [r.node for r in header.recipients] == [r.node for r in st.recipients]
    return True


def resent_files(parts: Iterator[SubmitPart], held: _HeldOutgoing) -> Iterator[_FileFacts]:
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
        for chunk in file_chunks(parts, part.name, expected[index][2], end):
            size += len(chunk)
            digest.update(chunk)
        if end[0].sha256.lower() != digest.hexdigest():
            raise InvalidRequest(
                f"file {index} {echo(part.name)}: the SHA-256 the hall declared does not "
                "match the bytes received",
                code="manifest-digest-mismatch",
            )
        yield (part.name, part.media_type, size, digest.hexdigest())


def answer_resend(
    rt: PlanParts,
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
