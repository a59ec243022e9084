"""The signed federation directory, the node key ring, and federation creation."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tongban.keys.clock import format_time
from tongban.keys.directory import (
    DIRECTORY_PAYLOAD_TYPE,
    FederationDirectory,
    NodeEntry,
    UnknownNodeError,
    load_directory,
    sign_directory,
)
from tongban.keys.envelope import Envelope, canonical_json, sign_envelope
from tongban.keys.errors import BadPeerData, CallerError, SignatureError, UnknownKeyError
from tongban.keys.federation import NodeSpec, create_federation
from tongban.keys.keyring import NodeKeyRing, save_private_keys
from tongban.keys.pki import (
    Role,
    generate_encryption_key,
    generate_root,
    generate_signing_key,
    identity_from_certificate,
)
from tongban.keys.records import KeyRecord
from tongban.keys.signing import PrivateKeySigner, key_id_of

NOW = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def fed():  # type: ignore[no-untyped-def]
    specs = [
        NodeSpec("420700", "鄂州市", "127.0.0.1:50051"),
        NodeSpec("420100", "武汉市", "127.0.0.1:50052"),
    ]
    return create_federation(specs, now=NOW)


def test_directory_verifies_with_the_root_only(fed) -> None:  # type: ignore[no-untyped-def]
    d = load_directory(fed.signed_directory, [fed.root_certificate], at=NOW)
    assert [n.node_id for n in d.nodes] == ["420700", "420100"]
    assert d.node("420100").name == "武汉市"
    assert d.node("420700").default_hall == "420700-hall-1"
    with pytest.raises(UnknownNodeError, match="node '999999' is not a member"):
        d.node("999999")


def test_directory_refused_with_the_wrong_root(fed) -> None:  # type: ignore[no-untyped-def]
    _, other_root = generate_root(now=NOW)
    with pytest.raises(SignatureError):
        load_directory(fed.signed_directory, [other_root], at=NOW)


def test_directory_refused_when_altered_expired_or_not_newer(fed) -> None:  # type: ignore[no-untyped-def]
    env = fed.signed_directory
    altered = Envelope(
        env.payload.replace(b"127.0.0.1:50052", b"127.0.0.1:50099"),
        env.payload_type,
        env.signatures,
    )
    with pytest.raises(SignatureError):
        load_directory(altered, [fed.root_certificate], at=NOW)
    with pytest.raises(BadPeerData, match="directory version 1 expired at"):
        load_directory(env, [fed.root_certificate], at=NOW + timedelta(days=366))
    with pytest.raises(BadPeerData, match="directory version 1 is not newer than 1"):
        load_directory(env, [fed.root_certificate], at=NOW, newer_than=1)


def test_newer_directory_signed_by_root_is_taken(fed) -> None:  # type: ignore[no-untyped-def]
    v2 = replace(fed.directory, version=2, envelope=None)
    env = sign_directory(v2, PrivateKeySigner(fed.root_key))
    assert load_directory(env, [fed.root_certificate], at=NOW, newer_than=1).version == 2


def test_certificates_carry_identity(fed) -> None:  # type: ignore[no-untyped-def]
    node = fed.node("420700")
    assert identity_from_certificate(node.tls_certificate).role is Role.NODE
    hall = identity_from_certificate(node.halls[0].certificate)
    assert (hall.role, hall.node_id, hall.name) == (Role.HALL, "420700", "420700-hall-1")
    assert identity_from_certificate(node.admins[0].certificate).role is Role.ADMIN


def test_keyring_loads_published_keys_and_signs(fed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    node = fed.node("420100")
    save_private_keys(tmp_path, node.signing_keys, node.encryption_keys)
    ring = NodeKeyRing.load(tmp_path, fed.directory.node("420100"))
    signer = ring.signer(NOW)
    assert signer.key_id in fed.directory.node("420100").signing_keys(NOW)
    with pytest.raises(UnknownKeyError, match="holds no signing key valid at"):
        ring.signer(NOW + timedelta(days=400))
    assert len(ring.decryption_candidates("")) == 1


def test_keyring_ignores_keys_the_directory_does_not_publish(fed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    other = fed.node("420700")
    save_private_keys(tmp_path, other.signing_keys, other.encryption_keys)
    with pytest.raises(CallerError, match="holds no published signing and encryption keys"):
        NodeKeyRing.load(tmp_path, fed.directory.node("420100"))


def test_federation_refuses_duplicate_nodes() -> None:
    with pytest.raises(CallerError, match="node ids must be unique"):
        create_federation([NodeSpec("420700", "a", "h:1"), NodeSpec("420700", "b", "h:2")], now=NOW)


def test_directory_type_is_frozen(fed) -> None:  # type: ignore[no-untyped-def]
    assert isinstance(fed.directory, FederationDirectory)


# ---- the directory's decisions, one refusal each --------------------------------------------


def _signed(fed, payload: dict[str, object]) -> Envelope:  # type: ignore[no-untyped-def]
    return sign_envelope(
        canonical_json(payload), DIRECTORY_PAYLOAD_TYPE, [PrivateKeySigner(fed.root_key)]
    )


def _payload(fed) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return json.loads(fed.directory.to_payload())  # type: ignore[no-any-return]


def test_a_directory_expires_at_its_moment(fed) -> None:  # type: ignore[no-untyped-def]
    env, roots = fed.signed_directory, [fed.root_certificate]
    expires = fed.directory.expires_at
    assert load_directory(env, roots, at=expires - timedelta(microseconds=1)).version == 1
    with pytest.raises(BadPeerData) as exc:
        load_directory(env, roots, at=expires)
    assert exc.value.message == f"directory version 1 expired at {format_time(expires)}"


def test_a_first_directory_needs_no_version_held(fed) -> None:  # type: ignore[no-untyped-def]
    payload = _payload(fed) | {"version": 0}
    with pytest.raises(BadPeerData) as exc:
        load_directory(_signed(fed, payload), [fed.root_certificate], at=NOW)
    assert exc.value.message == "directory version 0 is not newer than 0"
    assert load_directory(fed.signed_directory, [fed.root_certificate], at=NOW).version == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.pop("version"), "malformed directory: KeyError('version')"),
        (
            lambda p: p.update(version="one"),
            "malformed directory: ValueError(\"invalid literal for int() with base 10: 'one'\")",
        ),
        (
            lambda p: p.update(nodes=7),
            "malformed directory: TypeError(\"'int' object is not iterable\")",
        ),
    ],
    ids=["no-version", "version-not-a-number", "nodes-not-a-list"],
)
def test_a_malformed_directory_is_refused(fed, change, message: str) -> None:  # type: ignore[no-untyped-def]
    payload = _payload(fed)
    change(payload)
    with pytest.raises(BadPeerData) as exc:
        load_directory(_signed(fed, payload), [fed.root_certificate], at=NOW)
    assert type(exc.value) is BadPeerData
    assert exc.value.message == message


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda n: n.pop("endpoint"), "malformed node entry: KeyError('endpoint')"),
        (
            lambda n: n.update(keys=7),
            "malformed node entry: TypeError(\"'int' object is not iterable\")",
        ),
    ],
    ids=["no-endpoint", "keys-not-a-list"],
)
def test_a_malformed_node_entry_is_refused(fed, change, message: str) -> None:  # type: ignore[no-untyped-def]
    entry = fed.directory.node("420100").to_json_dict()
    change(entry)
    with pytest.raises(BadPeerData) as exc:
        NodeEntry.from_json_dict(entry)
    assert type(exc.value) is BadPeerData
    assert exc.value.message == message


def test_a_node_entry_without_its_seal_ca_names_the_migration(fed) -> None:  # type: ignore[no-untyped-def]
    entry = fed.directory.node("420100").to_json_dict()
    del entry["seal_ca"]
    with pytest.raises(BadPeerData) as exc:
        NodeEntry.from_json_dict(entry)
    assert exc.value.message.startswith(
        "node 420100 has no identity CA and seal CA in the directory: it was written before"
    )


def test_a_node_entry_with_its_two_cas_swapped_is_refused(fed) -> None:  # type: ignore[no-untyped-def]
    entry = fed.directory.node("420100").to_json_dict()
    entry["identity_ca"], entry["seal_ca"] = entry["seal_ca"], entry["identity_ca"]
    with pytest.raises(BadPeerData) as exc:
        NodeEntry.from_json_dict(entry)
    assert exc.value.message.startswith(
        "the identity-ca certificate of node 420100 must be limited to its own extended key usages"
    )
    entry = fed.directory.node("420100").to_json_dict()
    entry["seal_ca"] = entry["identity_ca"]
    with pytest.raises(BadPeerData) as exc:
        NodeEntry.from_json_dict(entry)
    assert exc.value.message.startswith(
        "the seal certificate of node 420100 must be limited to its own extended key usages"
    )
    assert NodeEntry.from_json_dict(fed.directory.node("420100").to_json_dict()) == (
        fed.directory.node("420100")
    )


def _rotated(fed) -> tuple[NodeEntry, dict[str, KeyRecord]]:  # type: ignore[no-untyped-def]
    """Node 420100 with an old and a new signing key and two overlapping encryption keys."""
    day = timedelta(days=1)
    records = {
        "old signing": KeyRecord.for_signing(
            generate_signing_key().public_key(), not_before=NOW - 10 * day, not_after=NOW
        ),
        "new signing": KeyRecord.for_signing(
            generate_signing_key().public_key(), not_before=NOW, not_after=NOW + 10 * day
        ),
        "newer encryption": KeyRecord.for_encryption(
            generate_encryption_key().public_key(), not_before=NOW - day, not_after=NOW + 10 * day
        ),
        "older encryption": KeyRecord.for_encryption(
            generate_encryption_key().public_key(),
            not_before=NOW - 10 * day,
            not_after=NOW + 10 * day,
        ),
    }
    return replace(fed.directory.node("420100"), keys=tuple(records.values())), records


def test_the_signing_keys_are_those_valid_at_the_moment(fed) -> None:  # type: ignore[no-untyped-def]
    node, records = _rotated(fed)
    for at, name in [(NOW - timedelta(seconds=1), "old signing"), (NOW, "new signing")]:
        keys = node.signing_keys(at)
        assert list(keys) == [records[name].key_id]
        assert key_id_of(keys[records[name].key_id]) == records[name].key_id
    assert node.signing_keys(NOW + timedelta(days=10)) == {}


def test_the_newest_valid_encryption_key_is_used(fed) -> None:  # type: ignore[no-untyped-def]
    node, records = _rotated(fed)
    assert node.encryption_key(NOW) == records["newer encryption"]
    assert node.encryption_key(NOW - timedelta(days=2)) == records["older encryption"]
    revoked = replace(
        node,
        keys=(records["newer encryption"].revoked(NOW), records["older encryption"]),
    )
    assert revoked.encryption_key(NOW) == records["older encryption"]
    at = NOW + timedelta(days=10)
    with pytest.raises(UnknownKeyError) as exc:
        node.encryption_key(at)
    assert type(exc.value) is UnknownKeyError
    assert exc.value.message == f"node 420100 has no encryption key valid at {format_time(at)}"


def test_a_node_is_found_by_its_exact_id(fed) -> None:  # type: ignore[no-untyped-def]
    assert fed.directory.node("420700").node_id == "420700"
    assert fed.directory.node("420100").node_id == "420100"
    with pytest.raises(UnknownNodeError) as exc:
        fed.directory.node("4201")
    assert exc.value.message == "node '4201' is not a member of the federation"


def test_an_older_directory_is_refused_and_the_moment_must_be_named(fed) -> None:  # type: ignore[no-untyped-def]
    env, roots = fed.signed_directory, [fed.root_certificate]
    with pytest.raises(BadPeerData) as exc:
        load_directory(env, roots, at=NOW, newer_than=2)
    assert exc.value.message == "directory version 1 is not newer than 2"
    with pytest.raises(TypeError, match=r"takes 2 positional arguments but 3 were given"):
        load_directory(env, roots, NOW)  # type: ignore[misc]


def test_a_key_record_whose_purpose_is_only_text_is_not_used(fed) -> None:  # type: ignore[no-untyped-def]
    """Only the KeyPurpose member counts, as in KeyRecord itself."""
    node, records = _rotated(fed)
    signing = replace(records["new signing"], purpose="signing")
    encryption = replace(records["newer encryption"], purpose="encryption")
    bare = replace(node, keys=(signing, encryption))
    assert bare.signing_keys(NOW) == {}
    with pytest.raises(UnknownKeyError) as exc:
        bare.encryption_key(NOW)
    assert exc.value.message == f"node 420100 has no encryption key valid at {format_time(NOW)}"
