"""Case and packet id prefixes, resolved only among what the asking hall may see."""

from __future__ import annotations

import types
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tongban.server.domain.errors import InvalidRequest, NotFound
from tongban.server.usecases.id_prefixes import resolve_case_id, resolve_packet_id
from tongban.storage.sql import CaseRow, LegRow, open_metadata_store


def _case(session: object, case_id: str, accepting: tuple[str, str], leg: tuple[str, str]) -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    session.add(  # type: ignore[attr-defined]
        CaseRow(
            case_id=case_id,
            mode="on_behalf",
            matter_code="HB-ODA-01",
            matter_name="",
            accepting_node=accepting[0],
            accepting_hall=accepting[1],
            created_at=now,
        )
    )
    session.add(  # type: ignore[attr-defined]
        LegRow(
            case_id=case_id,
            node_id=leg[0],
            hall_id=leg[1],
            department="",
            status="submitted",
            updated_at=now,
        )
    )


@pytest.fixture
def store_runtime(tmp_path: Path) -> types.SimpleNamespace:
    store = open_metadata_store(f"sqlite:///{tmp_path / 'meta.db'}")
    with store.transaction() as s:
        # Accepted by this node's hall-1 and handled elsewhere.
        _case(s, "1234aaaa-0000-4000-8000-000000000001", ("420700", "h1"), ("420100", "x"))
        # Handled by this node's hall-1, accepted elsewhere.
        _case(s, "1234aaaa-0000-4000-8000-000000000002", ("420100", "x"), ("420700", "h1"))
        # Handled by this node's hall-2: hall-1 never sees it.
        _case(s, "1234bbbb-0000-4000-8000-000000000003", ("420100", "x"), ("420700", "h2"))
    return types.SimpleNamespace(node_id="420700", metadata=store)


def test_case_prefixes_match_only_the_halls_own_cases(store_runtime: types.SimpleNamespace) -> None:
    rt = store_runtime
    with pytest.raises(InvalidRequest) as ambiguous:
        resolve_case_id(rt, "h1", "1234")  # type: ignore[arg-type]
    assert ambiguous.value.message == (
        "case id '1234' is ambiguous: 2 cases of hall h1 start with it "
        "(1234aaaa-0000-4000-8000-000000000001, 1234aaaa-0000-4000-8000-000000000002); "
        "give more characters"
    )
    assert resolve_case_id(rt, "h2", "1234") == "1234bbbb-0000-4000-8000-000000000003"  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        resolve_case_id(rt, "h1", "1234bb")  # type: ignore[arg-type]
    upper = "1234AAAA-0000-4000-8000-000000000002"
    assert resolve_case_id(rt, "h1", upper) == upper.lower()  # type: ignore[arg-type]
    whole = str(uuid.uuid4())
    assert resolve_case_id(rt, "h1", whole) == whole  # type: ignore[arg-type]


def test_prefix_characters_are_checked_before_any_lookup(
    store_runtime: types.SimpleNamespace,
) -> None:
    for given in ("12%", "1234_", "12'3"):
        with pytest.raises(InvalidRequest):
            resolve_packet_id(store_runtime, "h1", given)  # type: ignore[arg-type]


def test_a_prefix_needs_four_characters_besides_hyphens(
    store_runtime: types.SimpleNamespace,
) -> None:
    for given in ("123", "12-3", "---1"):
        with pytest.raises(InvalidRequest) as short:
            resolve_case_id(store_runtime, "h2", given)  # type: ignore[arg-type]
        assert short.value.message == (
            f"case id '{given}' is too short: give at least 4 characters; "
            "copy it from `tongban hall inbox`"
        )
    assert resolve_case_id(store_runtime, "h2", "1234") == (  # type: ignore[arg-type]
        "1234bbbb-0000-4000-8000-000000000003"
    )


def test_many_candidates_are_cut_to_five(tmp_path: Path) -> None:
    store = open_metadata_store(f"sqlite:///{tmp_path / 'meta.db'}")
    ids = [f"5555{n:04d}-0000-4000-8000-000000000000" for n in range(7)]
    with store.transaction() as s:
        for case_id in ids:
            _case(s, case_id, ("420700", "h1"), ("420100", "x"))
    rt = types.SimpleNamespace(node_id="420700", metadata=store)
    with pytest.raises(InvalidRequest) as ambiguous:
        resolve_case_id(rt, "h1", "5555")  # type: ignore[arg-type]
    assert ambiguous.value.message == (
        "case id '5555' is ambiguous: more than 5 cases of hall h1 start with it "
        f"({', '.join(ids[:5])}, …); give more characters"
    )
    with pytest.raises(NotFound) as none:
        resolve_case_id(rt, "h1", "5556")  # type: ignore[arg-type]
    assert none.value.message == (
        "hall h1 has no case whose id starts '5556'; copy it from `tongban hall inbox`"
    )
