"""parse_json_object reads plain JSON only: a table of refusals and properties (hypothesis)."""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tongban.keys.envelope import MAX_JSON_DEPTH, canonical_json, parse_json_object
from tongban.keys.errors import BadPeerData


def _nested(depth: int) -> bytes:
    """An object ``depth`` levels deep (the object itself is level 1)."""
    inner = b"[" * (depth - 1) + b"]" * (depth - 1) if depth > 1 else b"0"
    return b'{"a":' + inner + b"}"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_nested(MAX_JSON_DEPTH + 1), "form nests deeper than 32 levels"),
        (b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "form nests deeper than 32 levels"),
        (b'{"a": {"b": ' * 20 + b"1" + b"}}" * 20, "form nests deeper than 32 levels"),
        (b'{"a": NaN}', "form holds NaN, which JSON does not allow"),
        (b'{"a": [Infinity]}', "form holds Infinity, which JSON does not allow"),
        (b'{"a": -Infinity}', "form holds -Infinity, which JSON does not allow"),
        (b'{"a": -1e999}', "form holds a number too large for a float (Infinity)"),
        (
            b'{"a": ' + b"7" * (sys.get_int_max_str_digits() + 1) + b"}",
            f"form holds an integer longer than {sys.get_int_max_str_digits()} digits",
        ),
        (b'{"a": "x\\udfffy"}', "form holds a lone surrogate, which is not Unicode text"),
        (b'{"\\ud83d": 1}', "form holds a lone surrogate, which is not Unicode text"),
        (b"[1]", "form must be a JSON object, got list"),
    ],
    ids=[
        "depth-33",
        "depth-100000",
        "objects-41",
        "nan",
        "infinity",
        "minus-infinity",
        "overflow",
        "long-int",
        "surrogate-value",
        "surrogate-key",
        "not-object",
    ],
)
def test_refusals(data: bytes, message: str) -> None:
    with pytest.raises(BadPeerData) as exc:
        parse_json_object(data, "form")
    assert exc.value.message == message


def test_depth_limit_is_inclusive_and_adjustable() -> None:
    assert parse_json_object(_nested(MAX_JSON_DEPTH), "form")
    assert parse_json_object(b'{"a": "\\ud83d\\ude00"}', "form") == {"a": "😀"}  # a pair is fine
    with pytest.raises(BadPeerData):
        parse_json_object(_nested(MAX_JSON_DEPTH + 2), "form", max_depth=MAX_JSON_DEPTH + 1)
    assert parse_json_object(_nested(MAX_JSON_DEPTH + 1), "form", max_depth=MAX_JSON_DEPTH + 1)


JSON_LEAF = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


@given(st.dictionaries(st.text(), JSON_VALUE, max_size=4))
def test_plain_json_round_trips(value: dict[str, Any]) -> None:
    data = canonical_json(value)
    if _depth(value) <= MAX_JSON_DEPTH:
        assert parse_json_object(data, "form") == json.loads(data)


@given(st.binary(max_size=200))
def test_any_bytes_give_an_object_or_bad_peer_data(data: bytes) -> None:
    with contextlib.suppress(BadPeerData):
        assert isinstance(parse_json_object(data, "form"), dict)


@given(st.text(max_size=100))
def test_any_text_gives_an_object_or_bad_peer_data(text: str) -> None:
    with contextlib.suppress(BadPeerData):
        assert isinstance(parse_json_object(text.encode("utf-8", "surrogatepass"), "form"), dict)


@given(st.integers(min_value=1, max_value=80))
def test_nesting_is_refused_exactly_above_the_limit(depth: int) -> None:
    data = _nested(depth)
    if depth <= MAX_JSON_DEPTH:
        parse_json_object(data, "form")
    else:
        with pytest.raises(BadPeerData):
            parse_json_object(data, "form")


def _nested_objects(depth: int) -> bytes:
    return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH])
def test_objects_nested_up_to_the_limit_are_read(depth: int) -> None:
    assert parse_json_object(_nested_objects(depth), "form")


def test_objects_nested_one_past_the_limit_are_refused() -> None:
    with pytest.raises(BadPeerData) as exc:
        parse_json_object(_nested_objects(MAX_JSON_DEPTH + 1), "form")
    assert exc.value.message == f"form nests deeper than {MAX_JSON_DEPTH} levels"


def test_the_depth_limit_is_passed_by_name() -> None:
    with pytest.raises(TypeError):
        parse_json_object(b"{}", "form", 3)  # type: ignore[misc]
