"""What a submit is checked against before anything is stored, and the plan it turns into.

The checks cover the header, the applicant, the form, the recipients and each file's name
and size.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from tongban.keys.clock import china_date
from tongban.keys.envelope import (
    canonical_json,
    parse_json_object,
)
from tongban.keys.errors import BadPeerData, echo
from tongban.keys.file_names import DistinctFileNames
from tongban.keys.identifiers import validate_citizen_id, validate_credit_code
from tongban.server.config import FORM_HEADROOM, Limits
from tongban.server.domain.errors import (
    IllegalTransition,
    InvalidRequest,
    NotFound,
    TooLarge,
)
from tongban.server.domain.matters import MatterCatalog
from tongban.server.domain.statements import (
    RecipientEntry,
    check_text,
)
from tongban.server.usecases.messages import (
    Applicant,
    FileBegin,
    FileEnd,
    SubmitHeader,
    SubmitPart,
)
from tongban.server.usecases.runtime import Clock, DirectoryHolder
from tongban.storage.sql import (
    CaseRow,
    LegRow,
    MetadataStore,
)

__all__ = [
    "PlanParts",
    "SubmitPlan",
    "case_id_of",
    "check_file_begin",
    "check_header_text",
    "file_chunks",
    "leg_for_packet",
    "packet_id_of",
    "plan_submit",
    "resolve_recipients",
    "sealed_form_of",
]


class PlanParts(Protocol):
    """What checking and planning a hall's submission needs of the node."""

    @property
    def node_id(self) -> str: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def limits(self) -> Limits: ...

    @property
    def directory(self) -> DirectoryHolder: ...

    @property
    def matters(self) -> MatterCatalog: ...

    @property
    def metadata(self) -> MetadataStore: ...


@dataclass
class SubmitPlan:
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
        number = validate_citizen_id(applicant.id_number, today=china_date(today))
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


def sealed_form_of(rt: PlanParts, header: SubmitHeader) -> bytes:
    """The form and applicant as sealed into the packet (canonical JSON), checked."""
    limit = rt.limits.max_form_bytes
    form = _parse_form(header.form_json, limit)
    applicant = _check_applicant(header.applicant, rt.clock())
    plain = canonical_json({"applicant": applicant, "form": form})
    if len(plain) > limit + FORM_HEADROOM:
        # Canonical JSON may be longer than what the hall sent ("1e5" is 100000.0).
        raise TooLarge(f"form is {len(plain)} bytes once encoded; the limit is {limit}")
    return plain


def packet_id_of(header: SubmitHeader) -> uuid.UUID:
    try:
        return uuid.UUID(header.packet_id) if header.packet_id else uuid.uuid4()
    except ValueError:
        raise InvalidRequest(f"packet id {echo(header.packet_id)} is not a UUID") from None


def case_id_of(header: SubmitHeader) -> uuid.UUID:
    try:
        return uuid.UUID(header.case_id)
    except ValueError:
        raise InvalidRequest(f"case id {echo(header.case_id)} is not a UUID") from None


def check_header_text(header: SubmitHeader) -> None:
    check_text("matter code", header.matter_code)
    check_text("matter name", header.matter_name)
    for r in header.recipients:
        check_text("node id", r.node)
        check_text("hall id", r.hall)
        check_text("department", r.department)


def resolve_recipients(rt: PlanParts, header: SubmitHeader) -> tuple[RecipientEntry, ...]:
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


def plan_submit(rt: PlanParts, hall_id: str, header: SubmitHeader) -> SubmitPlan:
    packet_id = packet_id_of(header)
    check_header_text(header)
    if header.kind == "application":
        form_plain = sealed_form_of(rt, header)
        rt.matters.check(header.matter_code, header.matter_name or None)
        recipients = resolve_recipients(rt, header)
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
        case_id = case_id_of(header)
        form_plain = sealed_form_of(rt, header)
        with rt.metadata.read() as session:
            recipients = (leg_for_packet(session, rt, hall_id, header, str(case_id))[2],)
    else:
        raise InvalidRequest(f"unknown packet kind {echo(header.kind)}")
    return SubmitPlan(packet_id, case_id, recipients, form_plain)


def leg_for_packet(
    session: Session, rt: PlanParts, hall_id: str, header: SubmitHeader, case_id: str
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


def check_file_begin(part: FileBegin, index: int, names: DistinctFileNames, limits: Limits) -> None:
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


def file_chunks(
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
