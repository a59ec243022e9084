"""The certificate hierarchy of ADR 0004: each key can do only its job.

An attacker here holds one member's files (node 420700's seal CA key, its identity CA key,
or the seal CA certificate it had before the hierarchy) and mints certificates for
another member (420100). Each test is one such attempt, refused with the reason.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.legacy_pki import legacy_ca, legacy_leaf
from tongban.keys.directory import FederationDirectory
from tongban.keys.errors import BadPeerData
from tongban.keys.federation import Federation, NodeSpec, create_federation, issue_client
from tongban.keys.pki import (
    DOCUMENT_SIGNING,
    CaKind,
    Identity,
    Role,
    certificate_pem,
    check_node_ca,
    extended_key_usages,
    generate_signing_key,
    issue_ca,
    issue_certificate,
)
from tongban.keys.trust import (
    CLIENT_AUTH,
    SERVER_AUTH,
    UntrustedCertificate,
    authenticate_certificate,
)

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
A, B = "420700", "420100"


@pytest.fixture(scope="module")
def fed() -> Federation:
    return create_federation(
        [NodeSpec(A, "鄂州", "127.0.0.1:1"), NodeSpec(B, "武汉", "127.0.0.1:2")], now=NOW
    )


def _refused(cert: x509.Certificate, directory: FederationDirectory, usage=CLIENT_AUTH) -> str:
    with pytest.raises(UntrustedCertificate) as exc:
        authenticate_certificate(cert, directory, usage=usage)
    assert exc.value.code == "untrusted-certificate"
    return exc.value.message


def _issuer(cert: x509.Certificate) -> str:
    return cert.issuer.rfc4514_string()


# ---- what each member's own certificates are --------------------------------------------


def test_genuine_hall_admin_and_node_certificates_are_who_they_say(fed: Federation) -> None:
    b = fed.node(B)
    assert authenticate_certificate(
        b.halls[0].certificate, fed.directory, usage=CLIENT_AUTH
    ) == Identity(Role.HALL, B, f"{B}-hall-1")
    assert authenticate_certificate(
        b.admins[0].certificate, fed.directory, usage=CLIENT_AUTH
    ) == Identity(Role.ADMIN, B, f"{B}-admin")
    for usage in (CLIENT_AUTH, SERVER_AUTH):
        assert authenticate_certificate(b.tls_certificate, fed.directory, usage=usage) == Identity(
            Role.NODE, B, B
        )


def test_every_tls_certificate_chains_through_its_own_nodes_identity_ca(fed: Federation) -> None:
    for node in fed.nodes:
        ca = node.identity_ca_certificate
        assert fed.directory.node(node.spec.node_id).identity_ca == ca
        assert fed.directory.node(node.spec.node_id).seal_ca == node.seal_ca_certificate
        for cert in (node.tls_certificate, *(c.certificate for c in node.halls + node.admins)):
            cert.verify_directly_issued_by(ca)
        ca.verify_directly_issued_by(fed.root_certificate)
        node.seal_ca_certificate.verify_directly_issued_by(fed.root_certificate)


def test_the_two_cas_of_a_node_carry_only_their_own_usages(fed: Federation) -> None:
    node = fed.node(A)
    identity = node.identity_ca_certificate
    seal = node.seal_ca_certificate
    assert extended_key_usages(identity) == {
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    }
    assert extended_key_usages(seal) == {DOCUMENT_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION}
    for ca in (identity, seal):
        constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
        assert (constraints.critical, constraints.value.ca, constraints.value.path_length) == (
            True,
            True,
            0,
        )
    names = identity.extensions.get_extension_for_class(x509.NameConstraints)
    assert names.critical
    assert names.value.permitted_subtrees == [
        x509.DirectoryName(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, A),
                ]
            )
        ),
        x509.DNSName(f"node-{A}.tongban"),
    ]


# ---- one member's CA vouching for another member ------------------------------------------


def test_a_hall_of_b_minted_with_as_seal_ca_key_is_refused(fed: Federation) -> None:
    a = fed.node(A)
    _, forged = legacy_leaf(
        a.seal_ca_key,
        a.seal_ca_certificate,
        role=Role.HALL,
        node_id=B,
        name=f"{B}-hall-1",
        now=NOW,
    )
    assert _refused(forged, fed.directory) == (
        f"the certificate of hall {B}-hall-1 of node {B} was not issued by the identity CA the "
        f"directory lists for node {B} (its issuer: {_issuer(forged)})"
    )


def test_an_admin_of_b_minted_with_as_identity_ca_key_is_refused(fed: Federation) -> None:
    a = fed.node(A)
    forged = issue_client(
        a.identity_ca_key, a.identity_ca_certificate, Role.ADMIN, B, f"{B}-admin", NOW
    ).certificate
    assert _refused(forged, fed.directory) == (
        f"the certificate of admin {B}-admin of node {B} was not issued by the identity CA the "
        f"directory lists for node {B} (its issuer: {_issuer(forged)})"
    )


@pytest.mark.parametrize("usage", [CLIENT_AUTH, SERVER_AUTH], ids=["as-client", "as-server"])
def test_node_b_minted_with_the_pre_hierarchy_seal_ca_of_a_is_refused(
    fed: Federation, usage: x509.ObjectIdentifier
) -> None:
    key, old_ca = legacy_ca(fed.root_key, fed.root_certificate, A, NOW, key=fed.node(A).seal_ca_key)
    _, forged = legacy_leaf(key, old_ca, role=Role.NODE, node_id=B, name=B, now=NOW)
    assert _refused(forged, fed.directory, usage) == (
        f"the certificate of node {B} of node {B} was not issued by the identity CA the "
        f"directory lists for node {B} (its issuer: {_issuer(forged)})"
    )


def test_a_root_issued_certificate_from_before_the_hierarchy_is_refused(fed: Federation) -> None:
    _, old = legacy_leaf(
        fed.root_key, fed.root_certificate, role=Role.HALL, node_id=B, name=f"{B}-hall-1", now=NOW
    )
    assert _refused(old, fed.directory).startswith(
        f"the certificate of hall {B}-hall-1 of node {B} was not issued by the identity CA"
    )


# ---- the other checks, one test each --------------------------------------------------------


def test_a_seal_certificate_is_not_a_tls_identity(fed: Federation) -> None:
    a = fed.node(A)
    seal = issue_certificate(
        a.seal_ca_key,
        a.seal_ca_certificate,
        generate_signing_key().public_key(),
        role=Role.SEAL,
        node_id=A,
        name="seal-1",
        now=NOW,
    )
    assert _refused(seal, fed.directory) == "a seal certificate is not a TLS identity"


def test_a_certificate_without_a_tongban_subject_is_refused(fed: Federation) -> None:
    a = fed.node(A)
    assert _refused(a.identity_ca_certificate, fed.directory) == (
        "the certificate is not a tongban identity: "
        "certificate role 'identity-ca' is not a tongban role"
    )


def test_a_ca_certificate_named_as_a_hall_is_refused(fed: Federation) -> None:
    a = fed.node(A)
    key = generate_signing_key()
    subject = a.halls[0].certificate.subject
    ca_hall = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(a.identity_ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(minutes=5))
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(a.identity_ca_key, hashes.SHA256())
    )
    assert _refused(ca_hall, fed.directory) == (
        f"the certificate of hall {A}-hall-1 of node {A} is a CA certificate"
    )


def test_a_hall_certificate_cannot_serve_as_a_node(fed: Federation) -> None:
    hall = fed.node(A).halls[0].certificate
    assert _refused(hall, fed.directory, SERVER_AUTH) == (
        f"the certificate of hall {A}-hall-1 of node {A} lacks the serverAuth extended key usage"
    )


def test_a_certificate_without_extended_key_usages_is_refused(fed: Federation) -> None:
    a = fed.node(A)
    key = generate_signing_key()
    bare = (
        x509.CertificateBuilder()
        .subject_name(a.halls[0].certificate.subject)
        .issuer_name(a.identity_ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(minutes=5))
        .not_valid_after(NOW + timedelta(days=1))
        .sign(a.identity_ca_key, hashes.SHA256())
    )
    assert _refused(bare, fed.directory) == (
        f"the certificate of hall {A}-hall-1 of node {A} lacks the clientAuth extended key usage"
    )


def test_a_node_outside_the_directory_is_refused(fed: Federation) -> None:
    a = fed.node(A)
    stranger = issue_client(
        a.identity_ca_key, a.identity_ca_certificate, Role.HALL, "440300", "440300-hall-1", NOW
    ).certificate
    assert _refused(stranger, fed.directory) == (
        "the certificate of hall 440300-hall-1 of node 440300 names node 440300, which is not a "
        "member of the federation"
    )


def test_the_usage_a_connection_needs_must_be_named(fed: Federation) -> None:
    """A caller cannot pass the usage by position and mix up clientAuth and serverAuth."""
    hall = fed.node(A).halls[0].certificate
    with pytest.raises(TypeError, match=r"takes 2 positional arguments but 3 were given"):
        authenticate_certificate(hall, fed.directory, CLIENT_AUTH)  # type: ignore[misc]


# ---- the directory refuses CAs that could do the other's job ------------------------------


@pytest.mark.parametrize(
    ("kind", "usages", "problem"),
    [
        (CaKind.IDENTITY, [DOCUMENT_SIGNING], "must be limited to its own extended key usages"),
        (
            CaKind.IDENTITY,
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH, DOCUMENT_SIGNING],
            "must be limited to its own extended key usages",
        ),
        (
            CaKind.SEAL,
            [DOCUMENT_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION, CLIENT_AUTH],
            "must be limited to its own extended key usages",
        ),
        (CaKind.SEAL, None, "must be limited to its own extended key usages, has []"),
    ],
)
def test_a_directory_ca_with_usages_of_the_other_kind_is_refused(
    fed: Federation, kind: CaKind, usages: list[x509.ObjectIdentifier] | None, problem: str
) -> None:
    key = generate_signing_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, A)]))
        .issuer_name(fed.root_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    )
    if usages is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    cert = builder.sign(fed.root_key, hashes.SHA256())
    with pytest.raises(BadPeerData) as exc:
        check_node_ca(cert, kind=kind, node_id=A)
    assert exc.value.message.startswith(f"the {kind.value} certificate of node {A} {problem}")


def test_a_directory_ca_of_another_node_or_not_a_ca_is_refused(fed: Federation) -> None:
    b = fed.node(B)
    with pytest.raises(BadPeerData) as exc:
        check_node_ca(b.identity_ca_certificate, kind=CaKind.IDENTITY, node_id=A)
    assert exc.value.message == (
        f"the identity-ca certificate of node {A} names organisation ['{B}'], not '{A}'"
    )
    with pytest.raises(BadPeerData) as exc:
        check_node_ca(b.tls_certificate, kind=CaKind.IDENTITY, node_id=B)
    assert exc.value.message == f"the identity-ca certificate of node {B} is not a CA certificate"
    check_node_ca(b.identity_ca_certificate, kind=CaKind.IDENTITY, node_id=B)
    check_node_ca(b.seal_ca_certificate, kind=CaKind.SEAL, node_id=B)


def test_a_directory_without_the_cas_names_the_migration(fed: Federation) -> None:
    from tongban.keys.directory import NodeEntry

    entry = fed.directory.node(A).to_json_dict()
    del entry["identity_ca"]
    with pytest.raises(BadPeerData) as exc:
        NodeEntry.from_json_dict(entry)
    assert exc.value.message == (
        f"node {A} has no identity CA and seal CA in the directory: it was written before the "
        "certificate hierarchy of ADR 0004; migrate the federation with "
        "`tongban federation migrate`"
    )


def test_hall_names_must_fit_a_tls_name(fed: Federation) -> None:
    from tongban.keys.errors import CallerError

    a = fed.node(A)
    with pytest.raises(CallerError) as exc:
        issue_client(a.identity_ca_key, a.identity_ca_certificate, Role.HALL, A, "窗口 1", NOW)
    assert exc.value.message == (
        "hall name '窗口 1' must be a DNS label (letters, digits and '-', at most 63 "
        "characters) to go in a TLS certificate"
    )


# ---- an independent verifier agrees: openssl -----------------------------------------------


def _openssl_verify(
    tmp_path: Path,
    fed: Federation,
    leaf: x509.Certificate,
    *extra: str,
    chain: x509.Certificate,
    purpose: str,
) -> str:
    (tmp_path / "root.pem").write_bytes(certificate_pem(fed.root_certificate))
    (tmp_path / "chain.pem").write_bytes(certificate_pem(chain))
    (tmp_path / "leaf.pem").write_bytes(certificate_pem(leaf))
    done = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            tmp_path / "root.pem",
            "-untrusted",
            tmp_path / "chain.pem",
            "-purpose",
            purpose,
            *extra,
            tmp_path / "leaf.pem",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout + done.stderr


def test_openssl_accepts_genuine_tls_and_refuses_what_the_seal_ca_mints(
    fed: Federation, tmp_path: Path
) -> None:
    a = fed.node(A)
    out = _openssl_verify(
        tmp_path, fed, a.halls[0].certificate, chain=a.identity_ca_certificate, purpose="sslclient"
    )
    assert out.strip().endswith("leaf.pem: OK")
    out = _openssl_verify(
        tmp_path,
        fed,
        a.tls_certificate,
        "-verify_hostname",
        f"node-{A}.tongban",
        chain=a.identity_ca_certificate,
        purpose="sslserver",
    )
    assert out.strip().endswith("leaf.pem: OK")
    _, forged = legacy_leaf(
        a.seal_ca_key, a.seal_ca_certificate, role=Role.NODE, node_id=B, name=B, now=NOW
    )
    for purpose in ("sslclient", "sslserver"):
        out = _openssl_verify(tmp_path, fed, forged, chain=a.seal_ca_certificate, purpose=purpose)
        assert "error 26 at 1 depth lookup: unsuitable certificate purpose" in out, out


def test_openssl_refuses_another_nodes_name_from_an_identity_ca(
    fed: Federation, tmp_path: Path
) -> None:
    a = fed.node(A)
    forged = issue_certificate(
        a.identity_ca_key,
        a.identity_ca_certificate,
        generate_signing_key().public_key(),
        role=Role.NODE,
        node_id=B,
        name=B,
        now=NOW,
    )
    out = _openssl_verify(
        tmp_path, fed, forged, chain=a.identity_ca_certificate, purpose="sslserver"
    )
    assert "permitted subtree violation" in out, out
    # Keeping its own organisation but naming the other node's host fails the same way.
    key = generate_signing_key()
    forged_host = issue_certificate(
        a.identity_ca_key,
        a.identity_ca_certificate,
        key.public_key(),
        role=Role.NODE,
        node_id=A,
        name=A,
        now=NOW,
        dns_names=[f"node-{B}.tongban"],
    )
    out = _openssl_verify(
        tmp_path, fed, forged_host, chain=a.identity_ca_certificate, purpose="sslserver"
    )
    assert "permitted subtree violation" in out, out


def test_a_seal_ca_from_the_identity_kind_cannot_be_built(fed: Federation) -> None:
    # issue_ca gives each kind only its own usages; the other kind's are not reachable.
    key = generate_signing_key()
    ca = issue_ca(
        fed.root_key, fed.root_certificate, key.public_key(), kind=CaKind.SEAL, node_id=A, now=NOW
    )
    assert ExtendedKeyUsageOID.SERVER_AUTH not in (extended_key_usages(ca) or set())
    with pytest.raises(x509.ExtensionNotFound):
        ca.extensions.get_extension_for_class(x509.NameConstraints)
