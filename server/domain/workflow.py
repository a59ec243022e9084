"""The life of a case leg: which party may move it from which status to which.

A leg is one handling participant's share of a case. The accepting node's hall speaks for
the applicant; the handling node's hall decides. At every status exactly one party may act,
so both nodes append to a leg's event chain in turn and never race.

    submitted ──accept──> accepted ──decide──> decided ──result──> result_returned
        │  └─request_supplement─> supplement_requested ─supplement─> supplemented
        └─refuse──> refused                                   (then accept / refuse)
    result_returned ──issue──> issued ──deliver──> delivered
    accepted ──suspend──> suspended ──resume──> accepted          (挂起 / 恢复, clock stops)

A ``card`` (a supervision card the handling node issues as deadlines pass) is a note in
the chain, not a step: it leaves the status as it is, and only the handling side may
record it on a leg that has not ended.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from tongban.server.domain.errors import IllegalTransition

__all__ = [
    "DECIDED_STATUSES",
    "NOTE_EVENTS",
    "LegStatus",
    "Party",
    "Transition",
    "aggregate_status",
    "check_transition",
]


class Party(enum.StrEnum):
    ACCEPTING = "accepting"
    HANDLING = "handling"


class LegStatus(enum.StrEnum):
    SUBMITTED = "submitted"  # 收件
    ACCEPTED = "accepted"  # 受理
    SUSPENDED = "suspended"  # 挂起 (clock stops)
    REFUSED = "refused"  # 不予受理
    SUPPLEMENT_REQUESTED = "supplement_requested"  # 补正 (clock stops)
    SUPPLEMENTED = "supplemented"  # 补齐
    DECIDED = "decided"  # 办结
    RESULT_RETURNED = "result_returned"  # 结果回传
    ISSUED = "issued"  # 出件
    DELIVERED = "delivered"  # 送达


@dataclass(frozen=True)
class Transition:
    event: str
    party: Party
    sources: frozenset[LegStatus]
    target: LegStatus


S = LegStatus
# Supplement may be requested once only (一次性告知): never again from "supplemented".
_OPEN = frozenset({S.SUBMITTED, S.SUPPLEMENTED})
_TRANSITIONS = {
    t.event: t
    for t in (
        Transition("accepted", Party.HANDLING, _OPEN, S.ACCEPTED),
        Transition("refused", Party.HANDLING, _OPEN, S.REFUSED),
        Transition(
            "supplement_requested", Party.HANDLING, frozenset({S.SUBMITTED}), S.SUPPLEMENT_REQUESTED
        ),
        Transition(
            "supplemented", Party.ACCEPTING, frozenset({S.SUPPLEMENT_REQUESTED}), S.SUPPLEMENTED
        ),
        Transition("suspended", Party.HANDLING, frozenset({S.ACCEPTED}), S.SUSPENDED),
        Transition("resumed", Party.HANDLING, frozenset({S.SUSPENDED}), S.ACCEPTED),
        Transition("decided", Party.HANDLING, frozenset({S.ACCEPTED}), S.DECIDED),
        Transition("result_returned", Party.HANDLING, frozenset({S.DECIDED}), S.RESULT_RETURNED),
        Transition("issued", Party.ACCEPTING, frozenset({S.RESULT_RETURNED}), S.ISSUED),
        Transition("delivered", Party.ACCEPTING, frozenset({S.ISSUED}), S.DELIVERED),
    )
}

DECIDED_STATUSES = frozenset({S.DECIDED, S.RESULT_RETURNED, S.ISSUED, S.DELIVERED})
_ENDED = DECIDED_STATUSES | {S.REFUSED}
NOTE_EVENTS = frozenset({"card"})


def check_transition(event: str, party: Party, current: str, *, leg: str) -> LegStatus:
    """The status after ``event`` by ``party`` on a leg now at ``current``.

    ``submitted`` is not a transition: it creates the leg.

    Raises:
        IllegalTransition: unknown event, wrong party, or not allowed from ``current``.
    """
    if event in NOTE_EVENTS:
        if party is not Party.HANDLING:
            raise IllegalTransition(f"only the handling side may record {event!r} on leg {leg}")
        if current in _ENDED:
            raise IllegalTransition(f"leg {leg} is {current}; {event!r} is not allowed now")
        return LegStatus(current)
    t = _TRANSITIONS.get(event)
    if t is None:
        raise IllegalTransition(f"unknown case event {event!r}")
    if t.party is not party:
        raise IllegalTransition(f"only the {t.party.value} side may record {event!r} on leg {leg}")
    if current not in t.sources:
        raise IllegalTransition(f"leg {leg} is {current}; {event!r} is not allowed now")
    return t.target


def aggregate_status(statuses: Iterable[str]) -> tuple[str, bool]:
    """The case status over its legs, and whether the case is complete.

    A joint case is complete only when every leg has ended: decided (approved or denied,
    and later steps) or refused. A complete case is as far as its least advanced decided
    leg (``issued`` once every decided leg's result was issued), or refused if all were.
    """
    legs = list(statuses)
    if not legs:
        return "empty", False
    order = list(LegStatus)
    complete = all(s in _ENDED for s in legs)
    if complete:
        decided = [s for s in legs if s in DECIDED_STATUSES]
        if not decided:
            return "refused", True
        return min(decided, key=lambda s: order.index(LegStatus(s))), True
    behind = min((s for s in legs if s not in _ENDED), key=lambda s: order.index(LegStatus(s)))
    done = sum(1 for s in legs if s in _ENDED)
    return (behind if len(legs) == 1 else f"{behind} ({done}/{len(legs)} legs ended)"), False
