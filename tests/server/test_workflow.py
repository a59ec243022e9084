"""The leg state machine, exhaustively."""

from __future__ import annotations

import itertools

import pytest

from tongban.server.domain.errors import IllegalTransition
from tongban.server.domain.workflow import LegStatus, Party, aggregate_status, check_transition

H, A = Party.HANDLING, Party.ACCEPTING
ALLOWED = {
    ("accepted", H, "submitted"): "accepted",
    ("accepted", H, "supplemented"): "accepted",
    ("refused", H, "submitted"): "refused",
    ("refused", H, "supplemented"): "refused",
    ("supplement_requested", H, "submitted"): "supplement_requested",
    ("supplemented", A, "supplement_requested"): "supplemented",
    ("decided", H, "accepted"): "decided",
    ("result_returned", H, "decided"): "result_returned",
    ("issued", A, "result_returned"): "issued",
    ("delivered", A, "issued"): "delivered",
    ("suspended", H, "accepted"): "suspended",
    ("resumed", H, "suspended"): "accepted",
    # A card is a note of the handling side: the status stays, on any leg not ended.
    **{
        ("card", H, s): s
        for s in ("submitted", "accepted", "suspended", "supplement_requested", "supplemented")
    },
}
EVENTS = sorted({e for e, _, _ in ALLOWED})


GRID = list(itertools.product(EVENTS, [H, A], [s.value for s in LegStatus]))


def test_the_table_names_only_real_statuses() -> None:
    # An entry with a misspelt status would never meet the grid below and go untested.
    statuses = {s.value for s in LegStatus}
    assert {status for _, _, status in ALLOWED} <= statuses
    assert set(ALLOWED.values()) <= statuses
    assert set(ALLOWED) <= set(GRID)


@pytest.mark.parametrize(("event", "party", "status"), list(ALLOWED))
def test_allowed_transition(event: str, party: Party, status: str) -> None:
    assert check_transition(event, party, status, leg="420100") == ALLOWED[event, party, status]


@pytest.mark.parametrize(("event", "party", "status"), [g for g in GRID if g not in ALLOWED])
def test_refused_transition(event: str, party: Party, status: str) -> None:
    with pytest.raises(IllegalTransition) as exc:
        check_transition(event, party, status, leg="420100")
    right_party = any(e == event and p is party for e, p, _ in ALLOWED)
    if right_party:
        assert exc.value.message == f"leg 420100 is {status}; {event!r} is not allowed now"
    else:
        other = "accepting" if party is H else "handling"
        assert exc.value.message == f"only the {other} side may record {event!r} on leg 420100"


def test_unknown_event() -> None:
    with pytest.raises(IllegalTransition, match="unknown case event 'approve'"):
        check_transition("approve", H, "accepted", leg="x")


@pytest.mark.parametrize(
    ("legs", "expected"),
    [
        (["submitted"], ("submitted", False)),
        (["decided"], ("decided", True)),
        (["refused"], ("refused", True)),
        (["decided", "accepted"], ("accepted (1/2 legs ended)", False)),
        (["issued", "refused", "decided"], ("decided", True)),
        # After the result: the case says how far it went, as its leg does.
        (["result_returned"], ("result_returned", True)),
        (["issued"], ("issued", True)),
        (["delivered"], ("delivered", True)),
        (["delivered", "issued"], ("issued", True)),
        (["issued", "refused"], ("issued", True)),
        (["refused", "refused"], ("refused", True)),
        (["supplement_requested", "accepted"], ("accepted (0/2 legs ended)", False)),
        ([], ("empty", False)),
    ],
)
def test_aggregate(legs: list[str], expected: tuple[str, bool]) -> None:
    assert aggregate_status(legs) == expected
