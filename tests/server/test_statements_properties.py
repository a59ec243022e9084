"""Properties of the statement parsers: what a peer signs round trips, garbage is refused.

Whatever bytes arrive, ``from_payload`` returns a statement or raises ``InvalidRequest``
(or ``BadPeerData`` from ``parse_json_object`` when the bytes are not one JSON object; both
become INVALID_ARGUMENT); nothing else may escape, or a peer could turn a refusal into an
internal error.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tongban.keys.errors import BadPeerData
from tongban.server.domain.errors import InvalidRequest
from tongban.server.domain.statements import (
    KINDS,
    MODES,
    EventAck,
    EventStatement,
    FileEntry,
    PacketStatement,
    Receipt,
    RecipientEntry,
)

texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
moments = st.datetimes(timezones=st.just(UTC))
sizes = st.integers(0, 2**63)
hex_digests = st.binary(min_size=32, max_size=32).map(bytes.hex)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def packets(draw: st.DrawFn) -> PacketStatement:
    files = draw(
        st.lists(st.tuples(texts, texts, sizes, hex_digests, st.integers(0, 10**6)), max_size=3)
    )
    return PacketStatement(
        packet_id=draw(st.uuids()),
        case_id=draw(st.uuids()),
        kind=draw(st.sampled_from(KINDS)),
        mode=draw(st.sampled_from(MODES)),
        matter_code=draw(texts),
        matter_name=draw(texts),
        sender_node=draw(texts),
        sender_hall=draw(texts),
        recipients=tuple(
            draw(st.lists(st.builds(RecipientEntry, texts, texts, texts), min_size=1, max_size=3))
        ),
        created_at=draw(moments),
        segment_size=draw(sizes),
        form_size=draw(sizes),
        form_sha256=draw(hex_digests),
        files=tuple(FileEntry(i, *f) for i, f in enumerate(files)),
    )


events = st.builds(
    EventStatement,
    case_id=st.uuids(),
    leg=texts,
    seq=st.integers(0, 2**63),
    prev=hex_digests | st.just(""),
    event=texts,
    actor_node=texts,
    actor_hall=texts,
    at=moments,
    detail=st.dictionaries(texts, json_values, max_size=3),
    packet_id=st.uuids().map(str) | st.just(""),
)
receipts = st.builds(
    Receipt,
    packet_id=st.uuids(),
    receiver=texts,
    statement_sha256=hex_digests,
    stored_digest=hex_digests,
    received_at=moments,
)
acks = st.builds(EventAck, event_hash=hex_digests, receiver=texts, received_at=moments)
statements = st.one_of(packets(), events, receipts, acks)


@settings(max_examples=200)
@given(statements)
def test_every_statement_round_trips_through_its_payload(
    statement: PacketStatement | EventStatement | Receipt | EventAck,
) -> None:
    payload = statement.to_payload()
    parsed = type(statement).from_payload(payload)
    assert parsed == statement
    assert parsed.to_payload() == payload


PARSERS = [PacketStatement, EventStatement, Receipt, EventAck]


def _parse_or_refuse(cls: type[Any], payload: bytes) -> None:
    try:
        parsed = cls.from_payload(payload)
    except InvalidRequest as exc:
        assert exc.code in {"malformed-statement", "invalid-request"}
    except BadPeerData as exc:
        assert exc.code == "bad-peer-data"
        assert " statement " in exc.message or exc.message.startswith(("receipt ", "event ack "))
    else:
        assert isinstance(parsed, cls)


@pytest.mark.parametrize("cls", PARSERS, ids=lambda c: c.__name__)
@settings(max_examples=100)
@given(payload=st.binary(max_size=200))
@example(payload=b"[" * 100_000)
@example(payload=b'{"type":' + b"9" * 5000 + b"}")
def test_garbage_bytes_are_refused_as_invalid_requests(cls: type[Any], payload: bytes) -> None:
    _parse_or_refuse(cls, payload)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document: object members and array items, at any depth."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    return [*value[:head], _replace(value[head], rest, new), *value[head + 1 :]]


def _delete(value: Any, path: tuple[Any, ...]) -> Any:
    head, rest = path[0], path[1:]
    if rest:
        if isinstance(value, dict):
            return {**value, head: _delete(value[head], rest)}
        return [*value[:head], _delete(value[head], rest), *value[head + 1 :]]
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k != head}
    return [*value[:head], *value[head + 1 :]]


@settings(max_examples=300)
@given(statements, st.data())
def test_a_statement_with_one_field_changed_parses_or_is_refused(
    statement: PacketStatement | EventStatement | Receipt | EventAck, data: st.DataObject
) -> None:
    document = json.loads(statement.to_payload())
    path = data.draw(st.sampled_from(_paths(document)), label="path")
    mangled = data.draw(
        st.one_of(
            json_values.map(lambda new: _replace(document, path, new)),
            st.just(_delete(document, path)),
            st.sampled_from(["1e999", "-1e999", "1.5", "true", '"x"']).map(
                lambda literal: _replace(document, path, json.loads(literal))
            ),
        ),
        label="mangled",
    )
    _parse_or_refuse(type(statement), json.dumps(mangled).encode())


EXAMPLE_EVENT = EventStatement(
    uuid.UUID(int=1),
    "420100",
    1,
    "",
    "accepted",
    "420100",
    "420100-hall-1",
    datetime(2026, 3, 2, tzinfo=UTC),
    {},
)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("at", 20260101),  # parse_time(int) raised AttributeError
        ("at", "0001-01-01T00:00:00+01:00"),  # before year 1 in UTC: OverflowError
        ("seq", float("inf")),  # int(inf) raised OverflowError
        ("case_id", 5),  # uuid.UUID(5) raised AttributeError
        ("case_id", []),
    ],
)
def test_known_wrong_types_are_refused(field: str, value: Any) -> None:
    document = {**json.loads(EXAMPLE_EVENT.to_payload()), field: value}
    with pytest.raises(
        InvalidRequest, match=r"malformed event statement|event statement holds Infinity"
    ):
        EventStatement.from_payload(json.dumps(document).encode())
