"""Properties of directory loading: any change to a valid, root-signed directory document
either loads or is refused with a ``KeysError`` (``BadPeerData`` and its kind), never
anything else."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.server.test_statements_properties import _delete, _paths, _replace
from tongban.keys.directory import (
    DIRECTORY_PAYLOAD_TYPE,
    FederationDirectory,
    HallEntry,
    NodeEntry,
    load_directory,
    sign_directory,
)
from tongban.keys.envelope import sign_envelope
from tongban.keys.errors import BadPeerData, KeysError
from tongban.keys.federation import Federation, NodeSpec, create_federation
from tongban.keys.signing import PrivateKeySigner

NOW = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
)
# Values worth trying anywhere: overflowing numbers, another node's part, empty containers.
special = st.sampled_from(["1e999", "-1", "0", "[]", "{}", '""', '"x"', "true", "null"]).map(
    json.loads
)


@pytest.fixture(scope="module")
def fed() -> Federation:
    specs = [
        NodeSpec("420700", "鄂州市", "127.0.0.1:50051"),
        NodeSpec("420100", "武汉市", "127.0.0.1:50052"),
    ]
    return create_federation(specs, now=NOW)


def _mangle(data: st.DataObject, document: Any) -> Any:
    paths = _paths(document)
    path = data.draw(st.sampled_from(paths), label="path")
    return data.draw(
        st.one_of(
            (json_values | special).map(lambda new: _replace(document, path, new)),
            st.just(_delete(document, path)),
            # A part of the document moved elsewhere: right shape, wrong place.
            st.sampled_from(paths).map(
                lambda other: _replace(document, path, _get(document, other))
            ),
        ),
        label="mangled",
    )


def _get(document: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        document = document[step]
    return document


SLOW = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def test_a_signed_directory_loads_back_equal(fed: Federation) -> None:
    loaded = load_directory(fed.signed_directory, [fed.root_certificate], at=NOW)
    assert loaded == fed.directory
    again = sign_directory(loaded, PrivateKeySigner(fed.root_key))
    assert again.payload == fed.signed_directory.payload
    assert load_directory(again, [fed.root_certificate], at=NOW) == loaded


@SLOW
@given(
    names=st.lists(texts, min_size=2, max_size=2),
    endpoints=st.lists(texts, min_size=2, max_size=2),
    halls=st.lists(st.builds(HallEntry, texts, texts), max_size=3),
    version=st.integers(1, 2**62),
    seals=st.lists(st.dictionaries(texts, json_values, max_size=3), max_size=2),
)
def test_any_directory_round_trips_through_its_signed_form(
    fed: Federation,
    names: list[str],
    endpoints: list[str],
    halls: list[HallEntry],
    version: int,
    seals: list[dict[str, Any]],
) -> None:
    nodes = tuple(
        replace(node, name=name, public_endpoint=endpoint, halls=tuple(halls))
        for node, name, endpoint in zip(fed.directory.nodes, names, endpoints, strict=True)
    )
    directory = replace(fed.directory, version=version, nodes=nodes, seals=tuple(seals))
    envelope = sign_directory(directory, PrivateKeySigner(fed.root_key))
    assert load_directory(envelope, [fed.root_certificate], at=NOW) == directory


@SLOW
@given(data=st.data())
def test_any_change_to_a_signed_directory_loads_or_is_refused(
    fed: Federation, data: st.DataObject
) -> None:
    document = json.loads(fed.signed_directory.payload)
    mangled = _mangle(data, document)
    payload = json.dumps(mangled).encode()
    envelope = sign_envelope(payload, DIRECTORY_PAYLOAD_TYPE, [PrivateKeySigner(fed.root_key)])
    try:
        loaded = load_directory(envelope, [fed.root_certificate], at=NOW)
    except KeysError as exc:
        assert exc.code
    else:
        assert isinstance(loaded, FederationDirectory)
        assert all(isinstance(n, NodeEntry) for n in loaded.nodes)


@SLOW
@given(data=st.data())
def test_any_change_to_a_node_entry_parses_or_is_bad_peer_data(
    fed: Federation, data: st.DataObject
) -> None:
    entry = fed.directory.nodes[0].to_json_dict()
    assert NodeEntry.from_json_dict(entry) == fed.directory.nodes[0]
    mangled = _mangle(data, entry)
    try:
        node = NodeEntry.from_json_dict(mangled)
    except BadPeerData as exc:
        assert exc.code
    else:
        assert isinstance(node, NodeEntry)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("version",), float("inf")),  # int(inf) raised OverflowError
        (("nodes", 0), "420700"),  # a node that is not an object: AttributeError
        (("nodes", 0, "keys", 0), "k"),  # a key record that is not an object
        (("nodes", 0, "keys", 0, "not_before"), 5),  # parse_time(5): AttributeError
    ],
)
def test_known_wrong_types_are_refused(fed: Federation, path: tuple[Any, ...], value: Any) -> None:
    mangled = _replace(json.loads(fed.signed_directory.payload), path, value)
    envelope = sign_envelope(
        json.dumps(mangled).encode(), DIRECTORY_PAYLOAD_TYPE, [PrivateKeySigner(fed.root_key)]
    )
    with pytest.raises(BadPeerData, match=r"malformed|holds Infinity, which JSON does not allow"):
        load_directory(envelope, [fed.root_certificate], at=NOW)
