"""Which certificate counts as a seal's, and how its path to a trusted root is found.

A seal certificate names a seal (role, node) and allows non-repudiation; anything else that
chains to the root is reported as CHAIN_CONSTRAINTS_FAILURE with who it says it is. The
path is searched at the signing time, and when that fails, at moments the seal certificate
was valid, so that a certificate expired at the signing time is reported as EXPIRED.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from tests.fixtures_seal import SEAL_FROM, SEAL_UNTIL, forge_detached, new_seal, seal_world
from tongban.keys.clock import format_time
from tongban.keys.pki import CaKind, Role, generate_signing_key, issue_ca, issue_certificate
from tongban.keys.seals import seal_detached
from tongban.keys.signing import PrivateKeySigner
from tongban.keys.verification import CheckOutcome, Indication, SealVerifier, SubIndication

DOCUMENT = b"permit 2026-0002\n" * 64
MID = SEAL_FROM + timedelta(days=100)


def _key_usage(*, non_repudiation: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=non_repudiation,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _reissued(
    cert: x509.Certificate,
    *,
    key_usage: x509.KeyUsage | None = None,
    subject: x509.Name | None = None,
    drop_key_usage: bool = False,
) -> x509.Certificate:
    """The certificate again, from the same root, with another key usage or subject."""
    world = seal_world()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject or cert.subject)
        .issuer_name(cert.issuer)
        .public_key(cert.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(cert.not_valid_before_utc)
        .not_valid_after(cert.not_valid_after_utc)
    )
    for extension in cert.extensions:
        if isinstance(extension.value, x509.KeyUsage):
            if drop_key_usage:
                continue
            if key_usage is None:
                builder = builder.add_extension(extension.value, extension.critical)
            else:
                builder = builder.add_extension(key_usage, critical=True)
        elif subject is None or not isinstance(extension.value, x509.SubjectAlternativeName):
            builder = builder.add_extension(extension.value, extension.critical)
    return builder.sign(world.root_key, hashes.SHA256())


def _chain_check(certificate: x509.Certificate) -> tuple[CheckOutcome, str, Indication, object]:
    world = seal_world()
    p7s = seal_detached(DOCUMENT, world.signer, certificate, at=MID, ecert_identifier=None)
    report = SealVerifier([world.root], [world.record]).result(
        DOCUMENT, seal=p7s, at=MID + timedelta(days=1)
    )
    chain = report.check("certificate_chain")
    return chain.outcome, chain.detail, report.indication, report.sub_indication


def test_a_seal_certificate_without_non_repudiation_is_not_a_seals() -> None:
    seal = seal_world().record.certificate
    signing_only = _reissued(seal, key_usage=_key_usage(non_repudiation=False))
    assert _chain_check(signing_only) == (
        CheckOutcome.INDETERMINATE,
        "the certificate is not a seal certificate with non-repudiation: "
        "seal 420700-approval of node 420700",
        Indication.INDETERMINATE,
        SubIndication.CHAIN_CONSTRAINTS_FAILURE,
    )
    # the same certificate with non-repudiation is a seal's
    assert _chain_check(_reissued(seal))[0] is CheckOutcome.PASSED


def test_a_seal_certificate_without_a_key_usage_is_not_a_seals() -> None:
    unrestricted = _reissued(seal_world().record.certificate, drop_key_usage=True)
    assert _chain_check(unrestricted) == (
        CheckOutcome.INDETERMINATE,
        "the certificate is not a seal certificate with non-repudiation: "
        "seal 420700-approval of node 420700",
        Indication.INDETERMINATE,
        SubIndication.CHAIN_CONSTRAINTS_FAILURE,
    )


def test_a_hall_certificate_with_non_repudiation_is_not_a_seals() -> None:
    world = seal_world()
    assert world.seal.key is not None
    hall = issue_certificate(
        world.root_key,
        world.root,
        world.seal.key.public_key(),
        role=Role.HALL,
        node_id="420700",
        name="420700-hall-1",
        now=SEAL_FROM,
    )
    committing = _reissued(hall, key_usage=_key_usage(non_repudiation=True))
    assert _chain_check(committing) == (
        CheckOutcome.INDETERMINATE,
        "the certificate is not a seal certificate with non-repudiation: "
        "hall 420700-hall-1 of node 420700",
        Indication.INDETERMINATE,
        SubIndication.CHAIN_CONSTRAINTS_FAILURE,
    )


def test_a_certificate_that_names_no_seal_is_not_a_seals() -> None:
    seal = seal_world().record.certificate
    nameless = _reissued(
        seal,
        subject=x509.Name(
            [
                x509.NameAttribute(x509.NameOID.COMMON_NAME, "someone"),
                x509.NameAttribute(x509.NameOID.COUNTRY_NAME, "CN"),
            ]
        ),
    )
    # It has non-repudiation; what it is not is a certificate that names a seal.
    assert _chain_check(nameless) == (
        CheckOutcome.INDETERMINATE,
        "the certificate is not a seal certificate with non-repudiation: "
        "certificate subject has 0 OU attributes, expected 1",
        Indication.INDETERMINATE,
        SubIndication.CHAIN_CONSTRAINTS_FAILURE,
    )


def test_the_path_is_found_at_the_start_of_the_seal_certificate_when_the_signing_time_fails() -> (
    None
):
    """A seal CA valid for the first ten days of the seal certificate only: at the signing
    time (day 100) and at the middle of the seal's window it is expired, a second after the
    seal certificate's start it is not; the seal is then INVALID/EXPIRED, not untrusted."""
    world = seal_world()
    ca_key = generate_signing_key()
    ca = issue_ca(
        world.root_key,
        world.root,
        ca_key.public_key(),
        kind=CaKind.SEAL,
        node_id="420700",
        now=SEAL_FROM,
        not_before=SEAL_FROM - timedelta(days=1),
        not_after=SEAL_FROM + timedelta(days=10),
    )
    made = new_seal(ca_key, ca, seal_id="420700-early-ca")
    assert made.key is not None
    p7s = forge_detached(
        DOCUMENT,
        PrivateKeySigner(made.key),
        made.record.certificate,
        signing_time=MID,
        identifier=None,
        chain=[ca],
    )
    report = SealVerifier([world.root], [made.record]).result(
        DOCUMENT, seal=p7s, at=MID + timedelta(days=1)
    )
    chain = report.check("certificate_chain")
    assert (chain.outcome, chain.detail) == (
        CheckOutcome.PASSED,
        f"seal 420700-early-ca of node 420700; chains to {world.root.subject.rfc4514_string()} "
        "(3 certificates)",
    )
    window = f"{format_time(ca.not_valid_before_utc)} .. {format_time(ca.not_valid_after_utc)}"
    assert (report.indication, report.sub_indication) == (Indication.INVALID, SubIndication.EXPIRED)
    assert report.check("key_validity").detail == (
        f"certificate {ca.subject.rfc4514_string()} (valid {window}) is expired at the "
        f"signing time {format_time(MID)}"
    )


def test_an_extra_certificate_with_a_duplicated_extension_is_malformed() -> None:
    """cryptography reports a duplicated extension with its own error type, not ValueError;
    the seal's chain is still undecided with the reason, not an unexpected error."""
    from asn1crypto import cms
    from asn1crypto import x509 as asn1_x509

    world = seal_world()
    root = asn1_x509.Certificate.load(world.root.public_bytes(serialization.Encoding.DER))
    extensions = root["tbs_certificate"]["extensions"]
    extensions.append(extensions[0])
    doubled = asn1_x509.Certificate.load(root.dump(force=True))
    with pytest.raises(x509.DuplicateExtension):
        _ = x509.load_der_x509_certificate(doubled.dump()).extensions
    p7s = seal_detached(
        DOCUMENT, world.signer, world.record.certificate, at=MID, ecert_identifier=None
    )
    info = cms.ContentInfo.load(p7s)
    certificates = list(info["content"]["certificates"])
    info["content"]["certificates"] = [
        *certificates,
        cms.CertificateChoices({"certificate": doubled}),
    ]
    report = SealVerifier([world.root], [world.record]).result(
        DOCUMENT, seal=info.dump(force=True), at=MID + timedelta(days=1)
    )
    assert (report.indication, report.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
    )
    assert report.check("certificate_chain").detail.startswith(
        "the seal certificate does not chain to a trusted root: a certificate in the seal is "
        "malformed: unreadable certificate: "
    )


@pytest.mark.parametrize(
    ("ca_from", "ca_until", "signed"),
    [
        (SEAL_FROM - timedelta(days=10), SEAL_FROM, SEAL_FROM),
        (SEAL_UNTIL, SEAL_UNTIL + timedelta(days=10), SEAL_UNTIL),
    ],
    ids=["CA ends as the seal certificate starts", "CA starts as it ends"],
)
def test_a_path_that_holds_only_at_the_signing_instant_on_the_edge_of_the_window(
    ca_from: datetime, ca_until: datetime, signed: datetime
) -> None:
    """Validity includes both ends of a window: sealed at the seal certificate's first (or
    last) instant, which is its CA's last (or first), the path holds then and only then."""
    world = seal_world()
    ca_key = generate_signing_key()
    ca = issue_ca(
        world.root_key,
        world.root,
        ca_key.public_key(),
        kind=CaKind.SEAL,
        node_id="420700",
        now=ca_from,
        not_before=ca_from,
        not_after=ca_until,
    )
    made = new_seal(ca_key, ca, seal_id="420700-edge-ca")
    assert made.key is not None
    leaf = made.record.certificate
    assert signed in (leaf.not_valid_before_utc, leaf.not_valid_after_utc)
    p7s = forge_detached(
        DOCUMENT,
        PrivateKeySigner(made.key),
        leaf,
        signing_time=signed,
        identifier=None,
        chain=[ca],
    )
    report = SealVerifier([world.root], [made.record]).result(
        DOCUMENT, seal=p7s, at=signed + timedelta(days=1)
    )
    assert (report.indication, report.sub_indication) == (Indication.VALID, None)
    assert report.check("certificate_chain").detail == (
        f"seal 420700-edge-ca of node 420700; chains to {world.root.subject.rfc4514_string()} "
        "(3 certificates)"
    )


_LEAF_MIDDLE = SEAL_FROM + (SEAL_UNTIL - SEAL_FROM) / 2
_SECOND = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("ca_from", "ca_until"),
    [
        (_LEAF_MIDDLE - timedelta(days=5), _LEAF_MIDDLE + timedelta(days=5)),
        (SEAL_FROM - timedelta(days=10), SEAL_FROM + _SECOND),
        (SEAL_FROM + _SECOND, SEAL_FROM + timedelta(days=10)),
    ],
    ids=["around the middle", "until a second after the start", "from a second after it"],
)
def test_the_path_is_searched_at_the_middle_and_a_second_after_the_start(
    ca_from: datetime, ca_until: datetime
) -> None:
    """Sealed on day 300, when the seal's CA had long expired: the path is then searched at
    the middle of the seal certificate's window and a second after its start, exactly."""
    world = seal_world()
    ca_key = generate_signing_key()
    ca = issue_ca(
        world.root_key,
        world.root,
        ca_key.public_key(),
        kind=CaKind.SEAL,
        node_id="420700",
        now=ca_from,
        not_before=ca_from,
        not_after=ca_until,
    )
    made = new_seal(ca_key, ca, seal_id="420700-brief-ca")
    assert made.key is not None
    signed = SEAL_FROM + timedelta(days=300)
    p7s = forge_detached(
        DOCUMENT,
        PrivateKeySigner(made.key),
        made.record.certificate,
        signing_time=signed,
        identifier=None,
        chain=[ca],
    )
    report = SealVerifier([world.root], [made.record]).result(
        DOCUMENT, seal=p7s, at=signed + timedelta(days=1)
    )
    assert report.check("certificate_chain").outcome is CheckOutcome.PASSED
    assert (report.indication, report.sub_indication) == (Indication.INVALID, SubIndication.EXPIRED)
