"""What each certificate of the hierarchy (ADR 0004) carries, extension by extension, and
what is read back from one. A verifier of another make decides by these bytes alone."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tongban.keys.errors import BadPeerData, CallerError
from tongban.keys.pki import (
    DOCUMENT_SIGNING,
    CaKind,
    Identity,
    Role,
    check_node_ca,
    extended_key_usages,
    generate_root,
    generate_signing_key,
    identity_from_certificate,
    is_ca,
    issue_ca,
    issue_certificate,
)

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
NODE = "420100"
SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH
EMAIL_PROTECTION = ExtendedKeyUsageOID.EMAIL_PROTECTION

ROOT_KEY, ROOT = generate_root(now=NOW)
CA_KEY = generate_signing_key()


def _usage(*, ca: bool, non_repudiation: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=non_repudiation,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _extensions(cert: x509.Certificate) -> dict[x509.ObjectIdentifier, tuple[bool, object]]:
    return {e.oid: (e.critical, e.value) for e in cert.extensions}


def _subject(unit: str, name: str) -> str:
    return f"CN={name},OU={unit},O={NODE},C=CN"


# ---- the two CAs of a node ------------------------------------------------------------------


def test_an_identity_ca_is_limited_to_tls_and_to_its_nodes_names() -> None:
    ca = issue_ca(ROOT_KEY, ROOT, CA_KEY.public_key(), kind=CaKind.IDENTITY, node_id=NODE, now=NOW)
    assert ca.subject.rfc4514_string() == _subject("identity-ca", f"{NODE} identity CA")
    assert ca.issuer == ROOT.subject
    ca.verify_directly_issued_by(ROOT)
    assert (ca.not_valid_before_utc, ca.not_valid_after_utc) == (
        NOW - timedelta(minutes=5),
        NOW + timedelta(days=3650),
    )
    assert _extensions(ca) == {
        x509.BasicConstraints.oid: (True, x509.BasicConstraints(ca=True, path_length=0)),
        x509.KeyUsage.oid: (True, _usage(ca=True, non_repudiation=False)),
        x509.ExtendedKeyUsage.oid: (False, x509.ExtendedKeyUsage([SERVER_AUTH, CLIENT_AUTH])),
        x509.SubjectKeyIdentifier.oid: (
            False,
            x509.SubjectKeyIdentifier.from_public_key(CA_KEY.public_key()),
        ),
        x509.AuthorityKeyIdentifier.oid: (
            False,
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ROOT_KEY.public_key()),
        ),
        x509.NameConstraints.oid: (
            True,
            x509.NameConstraints(
                permitted_subtrees=[
                    x509.DirectoryName(
                        x509.Name(
                            [
                                x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                                x509.NameAttribute(NameOID.ORGANIZATION_NAME, NODE),
                            ]
                        )
                    ),
                    x509.DNSName(f"node-{NODE}.tongban"),
                ],
                excluded_subtrees=None,
            ),
        ),
    }


def test_a_seal_ca_is_limited_to_document_signing() -> None:
    ca = issue_ca(ROOT_KEY, ROOT, CA_KEY.public_key(), kind=CaKind.SEAL, node_id=NODE, now=NOW)
    assert ca.subject.rfc4514_string() == _subject("seal", f"{NODE} seal CA")
    ca.verify_directly_issued_by(ROOT)
    assert _extensions(ca) == {
        x509.BasicConstraints.oid: (True, x509.BasicConstraints(ca=True, path_length=0)),
        x509.KeyUsage.oid: (True, _usage(ca=True, non_repudiation=False)),
        x509.ExtendedKeyUsage.oid: (
            False,
            x509.ExtendedKeyUsage([DOCUMENT_SIGNING, EMAIL_PROTECTION]),
        ),
        x509.SubjectKeyIdentifier.oid: (
            False,
            x509.SubjectKeyIdentifier.from_public_key(CA_KEY.public_key()),
        ),
        x509.AuthorityKeyIdentifier.oid: (
            False,
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ROOT_KEY.public_key()),
        ),
    }


def test_a_ca_window_can_be_given_and_must_not_be_empty() -> None:
    start, end = NOW + timedelta(days=1), NOW + timedelta(days=2)
    ca = issue_ca(
        ROOT_KEY,
        ROOT,
        CA_KEY.public_key(),
        kind=CaKind.SEAL,
        node_id=NODE,
        now=NOW,
        not_before=start,
        not_after=end,
    )
    assert (ca.not_valid_before_utc, ca.not_valid_after_utc) == (start, end)
    with pytest.raises(CallerError, match=r"^certificate window is empty: "):
        issue_ca(
            ROOT_KEY,
            ROOT,
            CA_KEY.public_key(),
            kind=CaKind.SEAL,
            node_id=NODE,
            now=NOW,
            not_before=end,
            not_after=start,
        )


# ---- end-entity certificates ------------------------------------------------------------------


def _issue(role: Role, name: str, **extra: object) -> tuple[x509.Certificate, object]:
    key = generate_signing_key()
    ca = issue_ca(ROOT_KEY, ROOT, CA_KEY.public_key(), kind=CaKind.IDENTITY, node_id=NODE, now=NOW)
    cert = issue_certificate(
        CA_KEY,
        ca,
        key.public_key(),
        role=role,
        node_id=NODE,
        name=name,
        now=NOW,
        **extra,  # type: ignore[arg-type]
    )
    cert.verify_directly_issued_by(ca)
    return cert, key.public_key()


def _leaf_extensions(
    public: object,
    *,
    non_repudiation: bool,
    usages: list[x509.ObjectIdentifier],
    names: list[x509.GeneralName],
) -> dict[x509.ObjectIdentifier, tuple[bool, object]]:
    expected: dict[x509.ObjectIdentifier, tuple[bool, object]] = {
        x509.BasicConstraints.oid: (True, x509.BasicConstraints(ca=False, path_length=None)),
        x509.KeyUsage.oid: (True, _usage(ca=False, non_repudiation=non_repudiation)),
        x509.SubjectKeyIdentifier.oid: (
            False,
            x509.SubjectKeyIdentifier.from_public_key(public),  # type: ignore[arg-type]
        ),
        x509.AuthorityKeyIdentifier.oid: (
            False,
            x509.AuthorityKeyIdentifier.from_issuer_public_key(CA_KEY.public_key()),
        ),
        x509.ExtendedKeyUsage.oid: (False, x509.ExtendedKeyUsage(usages)),
    }
    if names:
        expected[x509.SubjectAlternativeName.oid] = (False, x509.SubjectAlternativeName(names))
    return expected


def test_a_node_certificate_serves_and_calls_under_its_host_name() -> None:
    cert, public = _issue(Role.NODE, NODE, dns_names=["relay.example"], ip_addresses=["10.0.0.7"])
    assert cert.subject.rfc4514_string() == _subject("node", NODE)
    assert (cert.not_valid_before_utc, cert.not_valid_after_utc) == (
        NOW - timedelta(minutes=5),
        NOW + timedelta(days=825),
    )
    assert _extensions(cert) == _leaf_extensions(
        public,
        non_repudiation=False,
        usages=[SERVER_AUTH, CLIENT_AUTH],
        names=[
            x509.DNSName(f"node-{NODE}.tongban"),
            x509.DNSName("relay.example"),
            x509.IPAddress(ipaddress.ip_address("10.0.0.7")),
        ],
    )


@pytest.mark.parametrize("role", [Role.HALL, Role.ADMIN])
def test_a_hall_or_admin_certificate_only_calls(role: Role) -> None:
    cert, public = _issue(role, f"{NODE}-Window-1")
    assert cert.subject.rfc4514_string() == _subject(role.value, f"{NODE}-Window-1")
    assert _extensions(cert) == _leaf_extensions(
        public,
        non_repudiation=False,
        usages=[CLIENT_AUTH],
        names=[x509.DNSName(f"{NODE}-window-1.{role.value}.node-{NODE}.tongban")],
    )


def test_a_seal_certificate_commits_to_content_and_names_no_host() -> None:
    cert, public = _issue(Role.SEAL, "seal-1")
    assert cert.subject.rfc4514_string() == _subject("seal", "seal-1")
    assert _extensions(cert) == _leaf_extensions(
        public, non_repudiation=True, usages=[DOCUMENT_SIGNING, EMAIL_PROTECTION], names=[]
    )


def test_no_end_entity_certificate_is_issued_as_the_root() -> None:
    with pytest.raises(CallerError, match=r"^use generate_root\(\) for the federation root$"):
        _issue(Role.ROOT, "root")


# ---- reading certificates back ----------------------------------------------------------------


def _certificate(
    subject: list[x509.NameAttribute], *extensions: x509.ExtensionType
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(ROOT.subject)
        .public_key(CA_KEY.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
    )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(ROOT_KEY, hashes.SHA256())


def _attributes(**values: str) -> list[x509.NameAttribute]:
    oids = {"c": NameOID.COUNTRY_NAME, "o": NameOID.ORGANIZATION_NAME}
    oids |= {"ou": NameOID.ORGANIZATIONAL_UNIT_NAME, "cn": NameOID.COMMON_NAME}
    return [x509.NameAttribute(oids[k.rstrip("2")], v) for k, v in values.items()]


def test_the_identity_is_read_from_one_ou_o_and_cn() -> None:
    cert = _certificate(_attributes(c="CN", o=NODE, ou="hall", cn=f"{NODE}-hall-1"))
    assert identity_from_certificate(cert) == Identity(Role.HALL, NODE, f"{NODE}-hall-1")


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        (
            _attributes(o=NODE, cn="x"),
            "certificate subject has 0 OU attributes, expected 1",
        ),
        (
            _attributes(o=NODE, ou="hall", ou2="admin", cn="x"),
            "certificate subject has 2 OU attributes, expected 1",
        ),
        (
            _attributes(ou="hall", cn="x"),
            "certificate subject has 0 O attributes, expected 1",
        ),
        (
            _attributes(o=NODE, o2="420700", ou="hall", cn="x"),
            "certificate subject has 2 O attributes, expected 1",
        ),
        (
            _attributes(o=NODE, ou="hall"),
            "certificate subject has 0 CN attributes, expected 1",
        ),
        (
            _attributes(o=NODE, ou="Hall", cn="x"),
            "certificate role 'Hall' is not a tongban role",
        ),
    ],
    ids=["no-ou", "two-ou", "no-o", "two-o", "no-cn", "unknown-role"],
)
def test_a_subject_that_names_no_single_identity_is_refused(
    attributes: list[x509.NameAttribute], message: str
) -> None:
    with pytest.raises(BadPeerData) as exc:
        identity_from_certificate(_certificate(attributes))
    assert type(exc.value) is BadPeerData
    assert exc.value.message == message


def test_ca_and_usages_are_read_from_the_extensions() -> None:
    bare = _certificate(_attributes(o=NODE))
    assert (is_ca(bare), extended_key_usages(bare)) == (False, None)
    leaf = _certificate(
        _attributes(o=NODE),
        x509.BasicConstraints(ca=False, path_length=None),
        x509.ExtendedKeyUsage([CLIENT_AUTH]),
    )
    assert (is_ca(leaf), extended_key_usages(leaf)) == (False, frozenset({CLIENT_AUTH}))
    ca = _certificate(_attributes(o=NODE), x509.BasicConstraints(ca=True, path_length=0))
    assert is_ca(ca) is True


# ---- a node's CA as the directory lists it ----------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "usages"),
    [
        (CaKind.IDENTITY, [SERVER_AUTH, CLIENT_AUTH]),
        (CaKind.IDENTITY, [CLIENT_AUTH, SERVER_AUTH, ExtendedKeyUsageOID.CODE_SIGNING]),
        (CaKind.SEAL, [DOCUMENT_SIGNING, EMAIL_PROTECTION]),
    ],
)
def test_a_ca_with_its_own_usages_is_taken(
    kind: CaKind, usages: list[x509.ObjectIdentifier]
) -> None:
    ca = _certificate(
        _attributes(c="CN", o=NODE),
        x509.BasicConstraints(ca=True, path_length=0),
        x509.ExtendedKeyUsage(usages),
    )
    check_node_ca(ca, kind=kind, node_id=NODE)


@pytest.mark.parametrize(
    ("kind", "usages"),
    [
        (CaKind.IDENTITY, [SERVER_AUTH]),
        (CaKind.IDENTITY, [CLIENT_AUTH]),
        (CaKind.IDENTITY, [SERVER_AUTH, CLIENT_AUTH, EMAIL_PROTECTION]),
        (CaKind.SEAL, [DOCUMENT_SIGNING]),
        (CaKind.SEAL, [EMAIL_PROTECTION]),
        (CaKind.SEAL, [DOCUMENT_SIGNING, EMAIL_PROTECTION, SERVER_AUTH]),
    ],
)
def test_a_ca_missing_its_usages_or_holding_the_others_is_refused(
    kind: CaKind, usages: list[x509.ObjectIdentifier]
) -> None:
    ca = _certificate(
        _attributes(c="CN", o=NODE),
        x509.BasicConstraints(ca=True, path_length=0),
        x509.ExtendedKeyUsage(usages),
    )
    with pytest.raises(BadPeerData) as exc:
        check_node_ca(ca, kind=kind, node_id=NODE)
    shown = sorted(u.dotted_string for u in usages)
    assert exc.value.message == (
        f"the {kind.value} certificate of node {NODE} must be limited to its own extended key "
        f"usages, has {shown}"
    )


@pytest.mark.parametrize(
    ("owners", "shown"),
    [([], "[]"), ([NODE, "420700"], f"['{NODE}', '420700']"), (["420700"], "['420700']")],
)
def test_a_ca_must_name_exactly_its_node(owners: list[str], shown: str) -> None:
    subject = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in owners]
    ca = _certificate(
        [x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"), *subject],
        x509.BasicConstraints(ca=True, path_length=0),
        x509.ExtendedKeyUsage([DOCUMENT_SIGNING, EMAIL_PROTECTION]),
    )
    with pytest.raises(BadPeerData) as exc:
        check_node_ca(ca, kind=CaKind.SEAL, node_id=NODE)
    assert exc.value.message == (
        f"the seal certificate of node {NODE} names organisation {shown}, not '{NODE}'"
    )


def test_a_certificate_without_basic_constraints_is_no_ca() -> None:
    cert = _certificate(
        _attributes(c="CN", o=NODE), x509.ExtendedKeyUsage([DOCUMENT_SIGNING, EMAIL_PROTECTION])
    )
    with pytest.raises(BadPeerData) as exc:
        check_node_ca(cert, kind=CaKind.SEAL, node_id=NODE)
    assert exc.value.message == f"the seal certificate of node {NODE} is not a CA certificate"


def test_what_a_certificate_is_for_must_be_named() -> None:
    """Kind, role, node and window are keywords: a positional mix-up cannot issue a CA of the
    other kind or a certificate for another node."""
    public = CA_KEY.public_key()
    with pytest.raises(TypeError, match=r"takes 3 positional arguments but 4 positional "):
        issue_ca(ROOT_KEY, ROOT, public, CaKind.SEAL, node_id=NODE, now=NOW)  # type: ignore[misc]
    ca = issue_ca(ROOT_KEY, ROOT, public, kind=CaKind.IDENTITY, node_id=NODE, now=NOW)
    with pytest.raises(TypeError, match=r"takes 3 positional arguments but 4 positional "):
        issue_certificate(  # type: ignore[misc]
            CA_KEY, ca, public, Role.NODE, node_id=NODE, name=NODE, now=NOW
        )
    with pytest.raises(TypeError, match=r"takes 1 positional argument but 2 positional "):
        check_node_ca(ca, CaKind.IDENTITY, node_id=NODE)  # type: ignore[misc]
