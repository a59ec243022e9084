"""Ids as people type them: a whole id, or an unambiguous prefix of one, as git takes them.

A prefix is matched only against what the asking hall may see (the cases it accepted or
handles, the packets in its inbox), so an answer never reveals another hall's ids. Ids are
UUIDs in their printed form; letters are taken in either case. A whole id goes on as it
is: the use case that takes it says whether this hall has it.
"""

from __future__ import annotations

import re
from typing import Protocol

from sqlalchemy import and_, exists, or_, select

from tongban.keys.errors import echo
from tongban.server.domain.errors import InvalidRequest, NotFound
from tongban.storage.sql import CaseRow, LegRow, MetadataStore, PacketRow

__all__ = ["MIN_PREFIX", "resolve_case_id", "resolve_packet_id"]

# Fewest characters of an id that are looked up as a prefix (as git asks for 4).
MIN_PREFIX = 4
# Most candidates an ambiguous prefix lists.
_SHOWN = 5
_ID_TEXT = re.compile(r"[0-9a-f-]{1,36}")
_WHERE = "copy it from `tongban hall inbox`"
# Length of a whole id; one of it (or longer) is looked up as it is, by the use case.
_WHOLE = 36


class IdLookup(Protocol):
    """What finding an id by its prefix needs: this node's id and its metadata store."""

    @property
    def node_id(self) -> str: ...

    @property
    def metadata(self) -> MetadataStore: ...


def _whole(given: str) -> str:
    """A whole id in its stored (lower-case) form; anything else as given, for the use case
    to refuse in its own words."""
    text = given.strip().lower()
    return text if _ID_TEXT.fullmatch(text) else given


def _checked(what: str, given: str) -> str:
    text = given.strip().lower()
    if not _ID_TEXT.fullmatch(text):
        raise InvalidRequest(
            f"{what} id {echo(given)} is not an id (ids are hex digits and hyphens); {_WHERE}"
        )
    if len(text.replace("-", "")) < MIN_PREFIX:
        raise InvalidRequest(
            f"{what} id {echo(given)} is too short: give at least {MIN_PREFIX} characters; {_WHERE}"
        )
    return text


def _one(what: str, given: str, hall_id: str, found: list[str]) -> str:
    if len(found) == 1:
        return found[0]
    if not found:
        raise NotFound(f"hall {hall_id} has no {what} whose id starts {echo(given)}; {_WHERE}")
    count = f"more than {_SHOWN}" if len(found) > _SHOWN else str(len(found))
    listed = ", ".join(found[:_SHOWN]) + (", …" if len(found) > _SHOWN else "")
    raise InvalidRequest(
        f"{what} id {echo(given)} is ambiguous: {count} {what}s of hall {hall_id} start with it "
        f"({listed}); give more characters"
    )


def resolve_case_id(rt: IdLookup, hall_id: str, given: str) -> str:
    """The one case this hall may see whose id is ``given`` or starts with it.

    Raises:
        InvalidRequest: not an id, shorter than :data:`MIN_PREFIX`, or ambiguous (the
            candidates are listed).
        NotFound: no case of this hall matches.
    """
    if len(given) >= _WHOLE:
        return _whole(given)
    text = _checked("case", given)
    mine = or_(
        and_(CaseRow.accepting_node == rt.node_id, CaseRow.accepting_hall == hall_id),
        exists().where(
            LegRow.case_id == CaseRow.case_id,
            LegRow.node_id == rt.node_id,
            LegRow.hall_id == hall_id,
        ),
    )
    with rt.metadata.read() as session:
        found = list(
            session.scalars(
                select(CaseRow.case_id)
                .where(CaseRow.case_id.startswith(text, autoescape=True), mine)
                .order_by(CaseRow.case_id)
                .limit(_SHOWN + 1)
            )
        )
    return _one("case", given, hall_id, found)


def resolve_packet_id(rt: IdLookup, hall_id: str, given: str) -> str:
    """The one packet in this hall's inbox whose id is ``given`` or starts with it.

    Raises:
        InvalidRequest: not an id, shorter than :data:`MIN_PREFIX`, or ambiguous.
        NotFound: no packet of this hall matches.
    """
    if len(given) >= _WHOLE:
        return _whole(given)
    text = _checked("packet", given)
    with rt.metadata.read() as session:
        found = list(
            session.scalars(
                select(PacketRow.packet_id)
                .where(
                    PacketRow.packet_id.startswith(text, autoescape=True),
                    PacketRow.local_hall == hall_id,
                )
                .order_by(PacketRow.packet_id)
                .limit(_SHOWN + 1)
            )
        )
    return _one("packet", given, hall_id, found)
