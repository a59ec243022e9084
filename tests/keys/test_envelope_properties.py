"""Properties of the envelope codec: canonical JSON, parse_json_object, Envelope JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tongban.keys.envelope import (
    Envelope,
    EnvelopeSignature,
    canonical_json,
    parse_json_object,
)
from tongban.keys.errors import BadPeerData

# Text as JSON can carry it: any code point but a lone surrogate.
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=20,
)
json_objects = st.dictionaries(texts, json_values, max_size=6)


@settings(max_examples=100)
@given(json_objects)
def test_canonical_json_round_trips_and_is_a_fixed_point(value: dict[str, Any]) -> None:
    encoded = canonical_json(value)
    parsed = parse_json_object(encoded, "test object")
    assert parsed == value
    assert canonical_json(parsed) == encoded
    # No insignificant whitespace and keys in order, whatever order they came in.
    assert encoded == canonical_json(dict(reversed(list(value.items()))))
    assert encoded == json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


@settings(max_examples=200)
@given(st.binary(max_size=200))
@example(b"[" * 100_000)  # deeper than the interpreter's recursion limit
@example(b'{"a":' + b"1" * 5000 + b"}")  # more digits than int() converts
@example(b"\xff")
@example(b"[]")
@example(b"")
def test_parse_json_object_gives_a_dict_or_bad_peer_data(data: bytes) -> None:
    try:
        value = parse_json_object(data, "test object")
    except BadPeerData as exc:
        assert exc.message.startswith("test object ")
    else:
        assert isinstance(value, dict)


@settings(max_examples=200)
@given(json_values)
def test_parse_json_object_refuses_every_other_json_value(value: Any) -> None:
    encoded = json.dumps(value).encode()
    if isinstance(value, dict):
        assert parse_json_object(encoded, "x") == value
    else:
        with pytest.raises(BadPeerData, match="x must be a JSON object"):
            parse_json_object(encoded, "x")


envelopes = st.builds(
    Envelope,
    payload=st.binary(max_size=64),
    payload_type=texts,
    signatures=st.lists(
        st.builds(EnvelopeSignature, key_id=texts, sig=st.binary(max_size=72)), max_size=3
    ).map(tuple),
)


@settings(max_examples=200)
@given(envelopes)
def test_envelope_json_round_trips(envelope: Envelope) -> None:
    text = canonical_json(envelope.to_json_dict())
    assert Envelope.from_json_dict(parse_json_object(text, "envelope")) == envelope


def _mutations(base: dict[str, Any]) -> st.SearchStrategy[Any]:
    """``base`` with one field (top level or in a signature) removed or replaced."""
    anything = json_values | st.just(base["signatures"])

    def top(field: str, value: Any) -> dict[str, Any]:
        return {**base, field: value}

    def drop(field: str) -> dict[str, Any]:
        return {k: v for k, v in base.items() if k != field}

    def in_signature(field: str, value: Any) -> dict[str, Any]:
        first = {**base["signatures"][0], field: value}
        return {**base, "signatures": [first, *base["signatures"][1:]]}

    fields = st.sampled_from(["payload", "payloadType", "signatures"])
    return st.one_of(
        st.builds(top, fields, anything),
        st.builds(drop, fields),
        st.builds(in_signature, st.sampled_from(["keyid", "sig"]), anything),
        json_values,
    )


@settings(max_examples=200)
@given(st.data())
def test_a_mangled_envelope_is_bad_peer_data_or_well_formed(data: st.DataObject) -> None:
    base = Envelope(b'{"a":1}', "application/x", (EnvelopeSignature("k1", b"\x01\x02"),))
    mangled = data.draw(_mutations(base.to_json_dict()), label="mangled")
    try:
        envelope = Envelope.from_json_dict(mangled)
    except BadPeerData as exc:
        assert exc.message.startswith("malformed signed envelope")
    else:
        assert isinstance(envelope.payload, bytes) and isinstance(envelope.payload_type, str)
        assert all(isinstance(s.sig, bytes) for s in envelope.signatures)
