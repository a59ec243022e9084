"""Parsing the signed statements nodes exchange: what is taken, and the exact refusals."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from tongban.keys.envelope import canonical_json
from tongban.server.domain.errors import InvalidRequest
from tongban.server.domain.statements import (
    EventAck,
    EventStatement,
    FileEntry,
    PacketStatement,
    Receipt,
    RecipientEntry,
)

AT = datetime(2026, 11, 1, 8, 30, tzinfo=UTC)
PACKET = uuid.UUID("6f1c2a57-0d1e-4c3b-9a8f-2b7e5d4c3a21")
CASE = uuid.UUID("0b9d7e1f-3c4a-4e5b-8f6a-7d8c9e0f1a2b")


def _packet(**changes: Any) -> PacketStatement:
    base = PacketStatement(
        packet_id=PACKET,
        case_id=CASE,
        kind="application",
        mode="joint",
        matter_code="HB-ODA-01",
        matter_name="异地办理营业执照变更登记",
        sender_node="420700",
        sender_hall="420700-hall-1",
        recipients=(
            RecipientEntry("420100", "420100-hall-1", "市场监管"),
            RecipientEntry("440300", "440300-hall-1", "消防"),
        ),
        created_at=AT,
        segment_size=1 << 20,
        form_size=12,
        form_sha256="ab" * 32,
        files=(
            FileEntry(0, "id-card.pdf", "application/pdf", 3, "cd" * 32, 1),
            FileEntry(1, "licence.pdf", "application/pdf", 5, "ef" * 32, 2),
        ),
    )
    return dataclasses.replace(base, **changes)


def _edited(payload: bytes, edit: Callable[[dict[str, Any]], object]) -> bytes:
    data = json.loads(payload)
    edit(data)
    return canonical_json(data)


def _refused(parse: Callable[[bytes], object], payload: bytes) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as refused:
        parse(payload)
    return refused.value


def test_a_packet_statement_round_trips_exactly() -> None:
    st = _packet()
    assert PacketStatement.from_payload(st.to_payload()) == st
    assert json.loads(st.to_payload())["content"]["cipher"] == "aes-256-gcm-stream-v1"
    assert st.recipient("440300") == RecipientEntry("440300", "440300-hall-1", "消防")
    assert st.recipient("110000") is None


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(type="tongban-event"), "ValueError('not a tongban packet v1')"),
        (
            lambda d: d["content"].update(cipher="aes-128-gcm"),
            "ValueError('not a tongban packet v1')",
        ),
        (lambda d: d.pop("case_id"), "KeyError('case_id')"),
        (lambda d: d.update(packet_id="not-a-uuid"), "ValueError('badly formed hexadecimal"),
        (lambda d: d["content"].update(segment_size="big"), 'ValueError("invalid literal'),
        (lambda d: d.update(recipients=7), "TypeError(\"'int' object is not iterable\")"),
    ],
    ids=["type", "cipher", "missing-field", "bad-uuid", "bad-number", "bad-list"],
)
def test_a_malformed_packet_statement_is_refused(
    edit: Callable[[dict[str, Any]], object], message: str
) -> None:
    err = _refused(PacketStatement.from_payload, _edited(_packet().to_payload(), edit))
    assert err.code == "malformed-statement"
    assert err.message.startswith(f"malformed packet statement: {message}")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(kind="decision"), "unknown packet kind 'decision' or mode 'joint'"),
        (dict(mode="solo"), "unknown packet kind 'application' or mode 'solo'"),
        (dict(recipients=()), "packet names no recipient"),
        (
            dict(files=(FileEntry(1, "a.pdf", "application/pdf", 1, "00" * 32, 1),)),
            "packet manifest file indexes must be 0..n-1 in order",
        ),
    ],
    ids=["kind", "mode", "no-recipient", "file-indexes"],
)
def test_a_packet_statement_that_breaks_a_rule_is_refused(
    changes: dict[str, Any], message: str
) -> None:
    err = _refused(PacketStatement.from_payload, _packet(**changes).to_payload())
    assert (err.code, err.message) == ("invalid-request", message)


@pytest.mark.parametrize("kind", ["application", "supplement", "result"])
@pytest.mark.parametrize("mode", ["on_behalf", "joint"])
def test_every_packet_kind_and_mode_is_taken(kind: str, mode: str) -> None:
    st = _packet(kind=kind, mode=mode, files=())
    assert PacketStatement.from_payload(st.to_payload()) == st


def _event(**changes: Any) -> EventStatement:
    base = EventStatement(
        case_id=CASE,
        leg="420100",
        seq=2,
        prev="12" * 32,
        event="accepted",
        actor_node="420100",
        actor_hall="420100-hall-1",
        at=AT,
        detail={"note": "材料齐全"},
        packet_id=str(PACKET),
    )
    return dataclasses.replace(base, **changes)


def test_an_event_round_trips_and_its_packet_id_is_optional() -> None:
    ev = _event()
    assert EventStatement.from_payload(ev.to_payload()) == ev
    without = _edited(ev.to_payload(), lambda d: d.pop("packet_id"))
    assert EventStatement.from_payload(without) == _event(packet_id="")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(type="tongban-packet"), "ValueError('not a tongban event')"),
        (lambda d: d.update(detail=["x"]), "TypeError('detail must be an object')"),
        (lambda d: d.pop("seq"), "KeyError('seq')"),
    ],
    ids=["type", "detail", "missing-field"],
)
def test_a_malformed_event_is_refused(
    edit: Callable[[dict[str, Any]], object], message: str
) -> None:
    err = _refused(EventStatement.from_payload, _edited(_event().to_payload(), edit))
    assert (err.code, err.message) == (
        "malformed-statement",
        f"malformed event statement: {message}",
    )


def test_a_receipt_round_trips() -> None:
    receipt = Receipt(PACKET, "420100", "ab" * 32, "cd" * 32, AT)
    assert Receipt.from_payload(receipt.to_payload()) == receipt


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(type="tongban-event-ack"), "ValueError('not a tongban receipt')"),
        (lambda d: d.pop("statement_sha256"), "KeyError('statement_sha256')"),
    ],
    ids=["type", "missing-field"],
)
def test_a_malformed_receipt_is_refused(
    edit: Callable[[dict[str, Any]], object], message: str
) -> None:
    payload = _edited(Receipt(PACKET, "420100", "ab" * 32, "cd" * 32, AT).to_payload(), edit)
    err = _refused(Receipt.from_payload, payload)
    assert (err.code, err.message) == ("malformed-statement", f"malformed receipt: {message}")


def test_an_event_ack_round_trips() -> None:
    ack = EventAck("ab" * 32, "420100", AT)
    assert EventAck.from_payload(ack.to_payload()) == ack


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(type="tongban-receipt"), "ValueError('not a tongban event ack')"),
        (lambda d: d.pop("receiver"), "KeyError('receiver')"),
    ],
    ids=["type", "missing-field"],
)
def test_a_malformed_event_ack_is_refused(
    edit: Callable[[dict[str, Any]], object], message: str
) -> None:
    payload = _edited(EventAck("ab" * 32, "420100", AT).to_payload(), edit)
    err = _refused(EventAck.from_payload, payload)
    assert (err.code, err.message) == ("malformed-statement", f"malformed event ack: {message}")


def test_statements_cannot_be_changed_once_made() -> None:
    made: list[tuple[object, str]] = [
        (RecipientEntry("420100", "h", "d"), "node"),
        (FileEntry(0, "a", "b", 1, "c", 1), "name"),
        (_packet(), "sender_node"),
        (_event(), "leg"),
        (Receipt(PACKET, "420100", "a", "b", AT), "receiver"),
        (EventAck("a", "420100", AT), "receiver"),
    ]
    for obj, name in made:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, name, "other")
