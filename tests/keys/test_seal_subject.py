"""Who a seal certificate names: the organisation for people, the node and seal for the verifier."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from tests.availability import require_programs
from tests.fixtures_seal import EZHOU_USCC, NOW, ORG_NAME, SEAL_NAME, seal_world, write_pem
from tongban.keys.errors import BadPeerData
from tongban.keys.pki import (
    Identity,
    Role,
    generate_root,
    generate_signing_key,
    issue_certificate,
)
from tongban.keys.seal_subject import (
    legal_person_identifier,
    seal_identity,
    seal_subject,
    seal_uri,
    semantics_statement,
)

QC_STATEMENTS = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.3")


def _seal_cert(*, uris: list[str], subject: x509.Name | None = None) -> x509.Certificate:
    root_key, root = generate_root(now=NOW)
    return issue_certificate(
        root_key,
        root,
        generate_signing_key().public_key(),
        role=Role.SEAL,
        node_id="420700",
        name="s1",
        now=NOW,
        subject=subject,
        uris=uris,
    )


def test_the_subject_names_the_organisation_its_code_and_the_seal() -> None:
    cert = seal_world().record.certificate
    assert [(a.oid, a.value) for a in cert.subject] == [
        (NameOID.COUNTRY_NAME, "CN"),
        (NameOID.ORGANIZATION_NAME, ORG_NAME),
        (NameOID.ORGANIZATION_IDENTIFIER, f"NTRCN-{EZHOU_USCC}"),
        (NameOID.COMMON_NAME, SEAL_NAME),
    ]
    assert legal_person_identifier(EZHOU_USCC) == "NTRCN-" + EZHOU_USCC
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "urn:tongban:seal:420700:420700-approval"
    ]
    qc = cert.extensions.get_extension_for_oid(QC_STATEMENTS)
    assert not qc.critical
    assert qc.value == semantics_statement()
    # SEQUENCE { SEQUENCE { id-qcs-pkixQCSyntax-v2, SEQUENCE { id-etsi-qcs-semanticsId-Legal } } }
    assert isinstance(qc.value, x509.UnrecognizedExtension)
    assert qc.value.value == bytes.fromhex("3017301506082b06010505070b023009060704008bec490102")


def test_the_verifier_reads_node_and_seal_from_the_alternative_name() -> None:
    assert seal_identity(seal_world().record.certificate) == Identity(
        Role.SEAL, "420700", "420700-approval"
    )
    # The subject plays no part: another organisation's name does not change whose seal it is.
    other = seal_subject(org_name="别的机关", org_uscc=EZHOU_USCC, seal_name="别的章")
    cert = _seal_cert(uris=[seal_uri("420100", "wh")], subject=other)
    assert seal_identity(cert) == Identity(Role.SEAL, "420100", "wh")


def test_a_certificate_of_the_older_form_is_read_from_its_subject() -> None:
    cert = _seal_cert(uris=[])
    assert cert.subject.rfc4514_string() == "CN=s1,OU=seal,O=420700,C=CN"
    assert seal_identity(cert) == Identity(Role.SEAL, "420700", "s1")
    # Another URI in the alternative name is not a seal name.
    assert seal_identity(_seal_cert(uris=["https://verify.example/420700"])) == Identity(
        Role.SEAL, "420700", "s1"
    )


@pytest.mark.parametrize(
    ("uris", "message"),
    [
        (
            ["urn:tongban:seal:420700:a", "urn:tongban:seal:420700:b"],
            "the certificate names 2 seals, expected 1",
        ),
        (["urn:tongban:seal:420700"], "malformed seal name 'urn:tongban:seal:420700'"),
        (["urn:tongban:seal::s1"], "malformed seal name 'urn:tongban:seal::s1'"),
        (["urn:tongban:seal:420700:"], "malformed seal name 'urn:tongban:seal:420700:'"),
    ],
)
def test_a_malformed_seal_name_is_refused(uris: list[str], message: str) -> None:
    with pytest.raises(BadPeerData) as caught:
        seal_identity(_seal_cert(uris=uris))
    assert caught.value.message == message


def test_openssl_shows_the_organisation_and_the_seal(tmp_path: Path) -> None:
    require_programs("openssl", install="apt-get install openssl")
    pem = write_pem(tmp_path / "seal.pem", seal_world().record.certificate)
    shown = subprocess.run(
        [
            "openssl",
            "x509",
            "-in",
            str(pem),
            "-noout",
            "-subject",
            "-nameopt",
            "utf8,sep_comma_plus",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert shown == (
        f"subject=C=CN,O={ORG_NAME},organizationIdentifier=NTRCN-{EZHOU_USCC},CN={SEAL_NAME}\n"
    )
    san = subprocess.run(
        ["openssl", "x509", "-in", str(pem), "-noout", "-ext", "subjectAltName"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "URI:urn:tongban:seal:420700:420700-approval" in san
    assert seal_world().record.certificate.not_valid_after_utc - NOW < timedelta(days=366)
