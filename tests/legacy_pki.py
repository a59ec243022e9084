"""Certificates as the federation issued them before ADR 0004, for migration and attack tests.

Before the per-node identity CAs, the root issued every TLS certificate itself, and each
node's seal CA was a root-issued CA with no extended key usage: a CA whose key sits online
on the node and which any TLS stack accepts as a path to the root. A migrated federation
still has that old seal CA certificate (valid for years), so an attacker holding one
node's files holds such a CA: the tests use it to mint certificates.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tongban.keys.envelope import Envelope, canonical_json, parse_json_object, sign_envelope
from tongban.keys.pki import (
    Role,
    certificate_pem,
    generate_signing_key,
    load_certificate,
    load_private_key,
    write_private_key,
)
from tongban.keys.signing import PrivateKeySigner

__all__ = ["legacy_ca", "legacy_leaf", "make_legacy"]


def _name(unit: str, node_id: str, name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, node_id),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )


def _builder(
    subject: x509.Name,
    public: ec.EllipticCurvePublicKey,
    issuer: x509.Certificate,
    now: datetime,
    *,
    ca: bool,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, ca, ca, False, False), critical=True
        )
    )


def legacy_ca(
    root_key: ec.EllipticCurvePrivateKey,
    root: x509.Certificate,
    node_id: str,
    now: datetime,
    *,
    key: ec.EllipticCurvePrivateKey | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A node seal CA as issued before ADR 0004: root-issued, no usages, no constraints."""
    key = key or generate_signing_key()
    cert = _builder(
        _name(Role.SEAL.value, node_id, f"{node_id} seal CA"), key.public_key(), root, now, ca=True
    ).sign(root_key, hashes.SHA256())
    return key, cert


def legacy_leaf(
    issuer_key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate,
    *,
    role: Role,
    node_id: str,
    name: str,
    now: datetime,
    key: ec.EllipticCurvePrivateKey | None = None,
    dns_names: tuple[str, ...] = (),
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A TLS certificate as before ADR 0004 (or as an attacker mints one with such a CA)."""
    key = key or generate_signing_key()
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if role is Role.NODE:
        usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
        dns_names = (*dns_names, f"node-{node_id}.tongban", "localhost")
    builder = _builder(_name(role.value, node_id, name), key.public_key(), issuer, now, ca=False)
    builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if dns_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(d) for d in dns_names]), critical=False
        )
    return key, builder.sign(issuer_key, hashes.SHA256())


def make_legacy(fed: Path, *, now: datetime) -> None:
    """Turn a federation folder into what `federation init` wrote before ADR 0004.

    Every TLS certificate is re-issued by the root for the same key, each seal CA becomes
    a root-issued CA without usages (same key and name), the directory loses the CA
    fields, and the offline identity CAs are gone.
    """
    root_key = load_private_key((fed / "root" / "root-key.pem").read_bytes())
    root = load_certificate((fed / "root" / "root.pem").read_bytes())
    assert isinstance(root_key, ec.EllipticCurvePrivateKey)
    signed = json.loads((fed / "public" / "directory.json").read_text("utf-8"))
    envelope = Envelope.from_json_dict(signed)
    data = parse_json_object(envelope.payload, "directory")
    for n in data["nodes"]:
        node_id = n["node_id"]
        folder = fed / node_id
        tls_key = load_private_key((folder / "tls" / "node-key.pem").read_bytes())
        assert isinstance(tls_key, ec.EllipticCurvePrivateKey)
        _, tls = legacy_leaf(
            root_key, root, role=Role.NODE, node_id=node_id, name=node_id, now=now, key=tls_key
        )
        (folder / "tls" / "node.pem").write_bytes(certificate_pem(tls))
        for kind, role in (("halls", Role.HALL), ("admins", Role.ADMIN)):
            for client in sorted((folder / kind).iterdir()):
                key = load_private_key((client / "key.pem").read_bytes())
                assert isinstance(key, ec.EllipticCurvePrivateKey)
                _, cert = legacy_leaf(
                    root_key, root, role=role, node_id=node_id, name=client.name, now=now, key=key
                )
                (client / "cert.pem").write_bytes(certificate_pem(cert))
        seal_key = load_private_key((folder / "seals" / "ca-key.pem").read_bytes())
        assert isinstance(seal_key, ec.EllipticCurvePrivateKey)
        _, seal_ca = legacy_ca(root_key, root, node_id, now, key=seal_key)
        (folder / "seals" / "ca.pem").write_bytes(certificate_pem(seal_ca))
        write_private_key(folder / "seals" / "ca-key.pem", seal_key)
        n["certificate"] = certificate_pem(tls).decode()
        del n["identity_ca"], n["seal_ca"]
    shutil.rmtree(fed / "offline")
    old = sign_envelope(canonical_json(data), envelope.payload_type, [PrivateKeySigner(root_key)])
    text = json.dumps(old.to_json_dict(), indent=1) + "\n"
    (fed / "public" / "directory.json").write_text(text, encoding="utf-8")
    for n in data["nodes"]:
        (fed / n["node_id"] / "directory.json").write_text(text, encoding="utf-8")
