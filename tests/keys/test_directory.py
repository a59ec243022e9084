"""The signed federation directory, the node key ring, and federation creation."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tongban.keys.directory import (
    FederationDirectory,
    UnknownNodeError,
    load_directory,
    sign_directory,
)
from tongban.keys.envelope import Envelope
from tongban.keys.errors import BadPeerData, CallerError, SignatureError, UnknownKeyError
from tongban.keys.federation import NodeSpec, create_federation
from tongban.keys.keyring import NodeKeyRing, save_private_keys
from tongban.keys.pki import Role, generate_root, identity_from_certificate
from tongban.keys.signing import PrivateKeySigner

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
