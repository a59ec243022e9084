"""The seal verifier's decisions at their edges, each with its exact outcome.

The key-validity cases call the check itself with a claimed signing time, a verification
time and a record (ADR 0006): a seal is judged at the moment it claims, and the edges (the
certificate's and the record's windows, the revocation instant, the allowed clock skew)
fall on the documented side. The other cases verify whole seals.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from tests.fixtures_seal import SEAL_FROM, SEAL_UNTIL, new_seal, seal_world
from tests.legacy_pki import legacy_ca
from tongban.keys.clock import format_time
from tongban.keys.pki import CaKind, generate_signing_key, issue_ca
from tongban.keys.seals import RevocationReason, SealRecord, seal_detached
from tongban.keys.signing import PrivateKeySigner
from tongban.keys.verification import CheckOutcome, Indication, SealVerifier, SubIndication
from tongban.keys.verification._checks import _check_key_validity
from tongban.keys.verification._ecert import _check_ecert, _check_ecert_status
from tongban.keys.verification._report import _Checks, _Context

DOCUMENT = b"permit 2026-0001\n" * 64
TICK = timedelta(microseconds=1)
MID = SEAL_FROM + timedelta(days=100)
CERT = "CN=鄂州市行政审批局行政审批专用章,2.5.4.97=NTRCN-11420700MB1539542A,O=鄂州市行政审批局,C=CN"
WINDOW = f"{format_time(SEAL_FROM)} .. {format_time(SEAL_UNTIL)}"


def _t(at: datetime) -> str:
    return format_time(at)


@dataclass(frozen=True)
class Case:
    name: str
    signing_time: datetime | None
    at: datetime
    outcome: CheckOutcome
    sub: SubIndication | None
    detail: str
    revoked: tuple[datetime, RevocationReason] | None = None
    window: tuple[datetime, datetime] | None = None  # the record's, if narrower


def _valid(when: str, later: str = "") -> str:
    return f"certificates and seal valid and not revoked at {when}{later}"


CASES = [
    Case(
        "signed at the edge of the allowed clock skew",
        MID + timedelta(minutes=5),
        MID,
        CheckOutcome.PASSED,
        None,
        _valid(f"the signing time {_t(MID + timedelta(minutes=5))}"),
    ),
    Case(
        "signed just past the allowed clock skew",
        MID + timedelta(minutes=5) + TICK,
        MID,
        CheckOutcome.INDETERMINATE,
        SubIndication.NO_POE,
        f"the signing time {_t(MID + timedelta(minutes=5) + TICK)} is after the verification "
        f"time {_t(MID)}",
    ),
    Case(
        "signed a little after the verification time",
        MID + timedelta(minutes=1),
        MID,
        CheckOutcome.PASSED,
        None,
        _valid(f"the signing time {_t(MID + timedelta(minutes=1))}"),
    ),
    Case(
        "signed at the first instant of the certificate",
        SEAL_FROM,
        MID,
        CheckOutcome.PASSED,
        None,
        _valid(f"the signing time {_t(SEAL_FROM)}"),
    ),
    Case(
        "signed just before the certificate",
        SEAL_FROM - TICK,
        MID,
        CheckOutcome.FAILED,
        SubIndication.NOT_YET_VALID,
        f"certificate {CERT} (valid {WINDOW}) is not yet valid at the signing time "
        f"{_t(SEAL_FROM - TICK)}",
    ),
    Case(
        "signed at the last instant of the certificate",
        SEAL_UNTIL,
        SEAL_UNTIL + timedelta(days=1),
        CheckOutcome.PASSED,
        None,
        _valid(f"the signing time {_t(SEAL_UNTIL)}"),
    ),
    Case(
        "signed just after the certificate",
        SEAL_UNTIL + TICK,
        SEAL_UNTIL + timedelta(days=1),
        CheckOutcome.FAILED,
        SubIndication.EXPIRED,
        f"certificate {CERT} (valid {WINDOW}) is expired at the signing time "
        f"{_t(SEAL_UNTIL + TICK)}",
    ),
    Case(
        "no signing time, verified after the certificate",
        None,
        SEAL_UNTIL + TICK,
        CheckOutcome.INDETERMINATE,
        SubIndication.OUT_OF_BOUNDS_NO_POE,
        f"certificate {CERT} (valid {WINDOW}) is expired at the verification time "
        f"{_t(SEAL_UNTIL + TICK)} (the seal states no signing time)",
    ),
    Case(
        "no signing time, verified after a retirement",
        None,
        MID,
        CheckOutcome.INDETERMINATE,
        SubIndication.REVOKED_NO_POE,
        f"seal 420700-approval was revoked at {_t(MID)} (superseded), not later than the "
        f"verification time {_t(MID)} (the seal states no signing time)",
        revoked=(MID, RevocationReason.SUPERSEDED),
    ),
    Case(
        "no signing time, verified before a retirement",
        None,
        MID - TICK,
        CheckOutcome.PASSED,
        None,
        _valid(
            f"the verification time {_t(MID - TICK)} (the seal states no signing time)",
            f"; revoked at {_t(MID)} (superseded), after the verification time",
        ),
        revoked=(MID, RevocationReason.SUPERSEDED),
    ),
    Case(
        "verified at the instant of a retirement",
        MID - timedelta(days=1),
        MID,
        CheckOutcome.PASSED,
        None,
        _valid(
            f"the signing time {_t(MID - timedelta(days=1))}",
            f"; revoked later, at {_t(MID)} (superseded), which does not affect seals made before",
        ),
        revoked=(MID, RevocationReason.SUPERSEDED),
    ),
    Case(
        "verified at the instant of a compromise",
        MID - timedelta(days=1),
        MID,
        CheckOutcome.INDETERMINATE,
        SubIndication.REVOKED_NO_POE,
        f"the key of seal 420700-approval was revoked at {_t(MID)} for key compromise "
        f"(keyCompromise); the signing time {_t(MID - timedelta(days=1))} is only the "
        "signer's claim, and nothing proves the seal existed before the revocation",
        revoked=(MID, RevocationReason.KEY_COMPROMISE),
    ),
    Case(
        "verified just before a compromise",
        MID - timedelta(days=1),
        MID - TICK,
        CheckOutcome.PASSED,
        None,
        _valid(
            f"the signing time {_t(MID - timedelta(days=1))}",
            f"; revoked at {_t(MID)} (keyCompromise), after the verification time",
        ),
        revoked=(MID, RevocationReason.KEY_COMPROMISE),
    ),
    Case(
        "signed at the last instant of the record",
        MID,
        MID + timedelta(days=1),
        CheckOutcome.PASSED,
        None,
        _valid(f"the signing time {_t(MID)}"),
        window=(SEAL_FROM + timedelta(days=1), MID),
    ),
    Case(
        "signed after the record, inside the certificate",
        MID + TICK,
        MID + timedelta(days=1),
        CheckOutcome.FAILED,
        SubIndication.EXPIRED,
        f"seal 420700-approval is registered for {_t(SEAL_FROM + timedelta(days=1))} .. "
        f"{_t(MID)}, not the signing time {_t(MID + TICK)}",
        window=(SEAL_FROM + timedelta(days=1), MID),
    ),
    Case(
        "signed at the first instant of the record",
        SEAL_FROM + timedelta(days=1),
        MID,
        CheckOutcome.PASSED,
        None,
        _valid(f"the signing time {_t(SEAL_FROM + timedelta(days=1))}"),
        window=(SEAL_FROM + timedelta(days=1), MID),
    ),
    Case(
        "signed before the record, inside the certificate",
        SEAL_FROM + timedelta(days=1) - TICK,
        MID,
        CheckOutcome.FAILED,
        SubIndication.NOT_YET_VALID,
        f"seal 420700-approval is registered for {_t(SEAL_FROM + timedelta(days=1))} .. "
        f"{_t(MID)}, not the signing time {_t(SEAL_FROM + timedelta(days=1) - TICK)}",
        window=(SEAL_FROM + timedelta(days=1), MID),
    ),
]


def _record(case: Case) -> SealRecord:
    record = seal_world().record
    if case.window is not None:
        record = replace(record, not_before=case.window[0], not_after=case.window[1])
    if case.revoked is not None:
        record = record.revoked(*case.revoked)
    return record


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_key_validity_at_the_edges(case: Case) -> None:
    record = _record(case)
    checks = _Checks()
    context = _Context(at=case.at, signing_time=case.signing_time)
    _check_key_validity(record.certificate, None, record, checks, context, proven_time=None)
    (result,) = checks.results
    assert (result.name, result.outcome, result.detail) == (
        "key_validity",
        case.outcome,
        case.detail,
    )
    assert [v[1] for v in checks.verdicts] == ([case.sub] if case.sub else [])


# ---- which CA may issue a seal (ADR 0004) ---------------------------------------------------


def _seal_under(kind: CaKind | None) -> tuple[bytes, SealRecord]:
    """A seal of node 420700 whose certificate a CA of that kind issued (None: a seal CA from
    before ADR 0004, without extended key usages), the CA carried in the seal."""
    world = seal_world()
    ca_key = generate_signing_key()
    if kind is None:
        ca_key, ca = legacy_ca(world.root_key, world.root, "420700", SEAL_FROM, key=ca_key)
    else:
        ca = issue_ca(
            world.root_key,
            world.root,
            ca_key.public_key(),
            kind=kind,
            node_id="420700",
            now=SEAL_FROM,
        )
    made = new_seal(ca_key, ca, seal_id=f"420700-{kind.value if kind else 'legacy'}")
    assert made.key is not None
    p7s = seal_detached(
        DOCUMENT,
        PrivateKeySigner(made.key),
        made.record.certificate,
        chain=[ca],
        at=MID,
        ecert_identifier=None,
    )
    return p7s, made.record


@pytest.mark.parametrize("kind", [CaKind.SEAL, None], ids=["seal-ca", "pre-hierarchy-ca"])
def test_a_seal_ca_or_one_from_before_the_hierarchy_issues_seals(kind: CaKind | None) -> None:
    p7s, record = _seal_under(kind)
    report = SealVerifier([seal_world().root], [record]).result(
        DOCUMENT, seal=p7s, at=MID + timedelta(days=1)
    )
    chain = report.check("certificate_chain")
    assert (chain.outcome, chain.detail) == (
        CheckOutcome.PASSED,
        f"seal {record.seal_id} of node 420700; chains to "
        f"{seal_world().root.subject.rfc4514_string()} (3 certificates)",
    )


def test_a_seal_minted_by_a_nodes_identity_ca_does_not_chain() -> None:
    p7s, record = _seal_under(CaKind.IDENTITY)
    report = SealVerifier([seal_world().root], [record]).result(
        DOCUMENT, seal=p7s, at=MID + timedelta(days=1)
    )
    assert (report.indication, report.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
    )
    chain = report.check("certificate_chain")
    assert chain.detail.startswith("the seal certificate does not chain to a trusted root: ")
    assert "the issuing CA may not issue document-signing certificates" in chain.detail


# ---- the record a seal is registered under ------------------------------------------------


def _made_at_mid() -> bytes:
    world = seal_world()
    return seal_detached(
        DOCUMENT, world.signer, world.record.certificate, at=MID, ecert_identifier=None
    )


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        (
            {"node_id": "420100"},
            "the record of seal '420700-approval' (node 420100) does not match its "
            "certificate (seal '420700-approval', node 420700)",
        ),
        (
            {"node_id": "440300"},
            "the record of seal '420700-approval' (node 440300) does not match its "
            "certificate (seal '420700-approval', node 420700)",
        ),
        (
            {"seal_id": "420700-other"},
            "the record of seal '420700-other' (node 420700) does not match its "
            "certificate (seal '420700-approval', node 420700)",
        ),
        (
            {"seal_id": "420700-aardvark"},
            "the record of seal '420700-aardvark' (node 420700) does not match its "
            "certificate (seal '420700-approval', node 420700)",
        ),
    ],
    ids=["node-sorting-before", "node-sorting-after", "seal-sorting-after", "seal-sorting-before"],
)
def test_a_record_of_the_certificate_under_another_name_is_not_its_registration(
    change: dict[str, str], detail: str
) -> None:
    world = seal_world()
    record = replace(world.record, **change)  # type: ignore[arg-type]
    report = SealVerifier([world.root], [record]).result(
        DOCUMENT, seal=_made_at_mid(), at=MID + timedelta(days=1)
    )
    registered = report.check("seal_registered")
    assert (registered.outcome, registered.detail) == (CheckOutcome.INDETERMINATE, detail)
    assert report.valid is False
    assert (report.indication, report.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.SIG_CONSTRAINTS_FAILURE,
    )
    assert report.signer is not None
    assert (report.signer.seal_id, report.signer.node_id, report.signer.seal_name) == (
        "420700-approval",
        "420700",
        record.name,
    )


def test_a_registered_seal_names_its_record() -> None:
    world = seal_world()
    report = SealVerifier([world.root], [world.record]).result(
        DOCUMENT, seal=_made_at_mid(), at=MID + timedelta(days=1)
    )
    assert report.valid is True
    registered = report.check("seal_registered")
    assert (registered.outcome, registered.detail) == (
        CheckOutcome.PASSED,
        f"{world.record.name} (420700-approval) of {world.record.org_uscc}, node 420700",
    )
    chain = report.check("certificate_chain")
    assert (chain.outcome, chain.detail) == (
        CheckOutcome.PASSED,
        f"seal 420700-approval of node 420700; chains to {world.root.subject.rfc4514_string()} "
        "(2 certificates)",
    )
    signature = report.check("signature")
    assert (signature.outcome, signature.detail) == (
        CheckOutcome.PASSED,
        "ECDSA secp256r1 with SHA256 over the signed attributes verifies",
    )


def test_a_seal_whose_signing_certificate_attribute_names_another_certificate() -> None:
    """A certificate with the seal's key, issuer and serial but other bytes (a longer
    window) put in place of the signed one: the signature still verifies with its key, yet
    the signed attributes name the original, so the signer is not identified."""
    from asn1crypto import cms
    from asn1crypto import x509 as asn1_x509

    world = seal_world()
    original = world.record.certificate
    builder = (
        x509.CertificateBuilder()
        .subject_name(original.subject)
        .issuer_name(original.issuer)
        .public_key(original.public_key())
        .serial_number(original.serial_number)
        .not_valid_before(original.not_valid_before_utc)
        .not_valid_after(original.not_valid_after_utc + timedelta(days=1))
    )
    for extension in original.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    twin = builder.sign(world.root_key, hashes.SHA256())
    info = cms.ContentInfo.load(_made_at_mid())
    info["content"]["certificates"] = [
        asn1_x509.Certificate.load(twin.public_bytes(serialization.Encoding.DER))
    ]
    record = replace(world.record, certificate=twin)
    report = SealVerifier([world.root], [record]).result(
        DOCUMENT, seal=info.dump(force=True), at=MID + timedelta(days=1)
    )
    signature = report.check("signature")
    assert (signature.outcome, signature.detail) == (
        CheckOutcome.INDETERMINATE,
        "the signing-certificate attribute names another certificate",
    )
    assert (report.indication, report.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.NO_SIGNING_CERTIFICATE_FOUND,
    )
    assert report.check("certificate_chain").outcome is CheckOutcome.PASSED


def test_a_signature_algorithm_other_than_ecdsa_with_sha2_is_not_accepted() -> None:
    """ECDSA with SHA-1 (1.2.840.10045.4.1) named in place of ECDSA with SHA-256."""
    from asn1crypto import cms

    world = seal_world()
    info = cms.ContentInfo.load(_made_at_mid())
    signer_info = info["content"]["signer_infos"][0]
    signer_info["signature_algorithm"] = cms.SignedDigestAlgorithm({"algorithm": "sha1_ecdsa"})
    report = SealVerifier([world.root], [world.record]).result(
        DOCUMENT, seal=info.dump(force=True), at=MID + timedelta(days=1)
    )
    signature = report.check("signature")
    assert (signature.outcome, signature.detail) == (
        CheckOutcome.INDETERMINATE,
        "signature algorithm unknown OID 2a8648ce3d0401 with a ECPublicKey is not "
        "accepted for seals",
    )
    assert (report.indication, report.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.CRYPTO_CONSTRAINTS_FAILURE,
    )


def test_the_moment_the_key_validity_check_judges_at_must_be_named() -> None:
    world = seal_world()
    with pytest.raises(TypeError, match=r"takes 5 positional arguments but 6 were given"):
        _check_key_validity(  # type: ignore[misc]
            world.record.certificate, None, world.record, _Checks(), _Context(at=MID), None
        )


def test_the_status_sources_of_the_ecert_checks_must_be_named() -> None:
    # online and status_source are both optional: named, they cannot be passed the wrong way.
    with pytest.raises(TypeError, match=r"takes 5 positional arguments but 7 were given"):
        _check_ecert(None, None, "", _Checks(), _Context(at=MID), None, None)  # type: ignore[misc]
    with pytest.raises(TypeError, match=r"takes 4 positional arguments but 6 were given"):
        _check_ecert_status("", "", _Checks(), _Context(at=MID), None, None)  # type: ignore[misc]


# ---- the bottom line ------------------------------------------------------------------------


def test_the_bottom_line_is_the_first_failure_else_the_first_undecided_check() -> None:
    checks = _Checks()
    checks.passed("format", "fine")
    checks.undecided("signature", SubIndication.NO_SIGNING_CERTIFICATE_FOUND, "undecided 1")
    checks.failed("document_integrity", SubIndication.HASH_FAILURE, "failed 1")
    checks.undecided("seal_registered", SubIndication.SIG_CONSTRAINTS_FAILURE, "undecided 2")
    checks.failed("key_validity", SubIndication.EXPIRED, "failed 2")
    assert checks.bottom_line() == (Indication.INVALID, SubIndication.HASH_FAILURE, "failed 1")
    undecided = _Checks()
    undecided.passed("format", "fine")
    undecided.undecided("signature", SubIndication.NO_POE, "undecided 1")
    undecided.undecided("key_validity", SubIndication.TRY_LATER, "undecided 2")
    assert undecided.bottom_line() == (
        Indication.INDETERMINATE,
        SubIndication.NO_POE,
        "undecided 1",
    )
    passed = _Checks()
    passed.passed("format", "fine")
    assert passed.bottom_line() == (Indication.VALID, None, "")


# ---- seals the verifier cannot place ----------------------------------------------------------


def _outcomes(report: object) -> list[tuple[str, CheckOutcome]]:
    return [(c.name, c.outcome) for c in report.checks]  # type: ignore[attr-defined]


def test_without_a_signing_certificate_the_checks_that_need_one_are_skipped() -> None:
    from asn1crypto import cms

    world = seal_world()
    info = cms.ContentInfo.load(_made_at_mid())
    info["content"]["certificates"] = []
    report = SealVerifier([world.root], []).result(
        DOCUMENT, seal=info.dump(force=True), at=MID + timedelta(days=1)
    )
    assert report.valid is False
    assert _outcomes(report) == [
        ("format", CheckOutcome.PASSED),
        ("document_integrity", CheckOutcome.PASSED),
        ("signature", CheckOutcome.INDETERMINATE),
        ("certificate_chain", CheckOutcome.SKIPPED),
        ("seal_registered", CheckOutcome.SKIPPED),
        ("key_validity", CheckOutcome.SKIPPED),
        ("ecert_identifier", CheckOutcome.SKIPPED),
        ("ecert_status", CheckOutcome.SKIPPED),
    ]
    assert {report.check(n).detail for n in ("certificate_chain", "seal_registered")} == {
        "no signing certificate"
    }


def test_an_unregistered_seal_whose_id_sorts_before_a_registered_one_is_unknown() -> None:
    world = seal_world()
    stranger = new_seal(world.root_key, world.root, seal_id="420700-aardvark")
    assert stranger.key is not None
    p7s = seal_detached(
        DOCUMENT,
        PrivateKeySigner(stranger.key),
        stranger.record.certificate,
        at=MID,
        ecert_identifier=None,
    )
    report = SealVerifier([world.root], [world.record]).result(
        DOCUMENT, seal=p7s, at=MID + timedelta(days=1)
    )
    assert report.check("seal_registered").detail == (
        "seal id '420700-aardvark' is not in the published seal records"
    )
    # every check ran to the end: nothing broke off for want of a record
    assert _outcomes(report) == [
        ("format", CheckOutcome.PASSED),
        ("document_integrity", CheckOutcome.PASSED),
        ("signature", CheckOutcome.PASSED),
        ("certificate_chain", CheckOutcome.PASSED),
        ("seal_registered", CheckOutcome.INDETERMINATE),
        ("key_validity", CheckOutcome.INDETERMINATE),
        ("ecert_identifier", CheckOutcome.SKIPPED),
        ("ecert_status", CheckOutcome.SKIPPED),
    ]


def test_a_signing_certificate_attribute_is_compared_by_value_both_ways() -> None:
    """Certificates like the seal's but with other bytes, one whose digest sorts before the
    attribute's and one after: both are refused, so the digests are compared for equality."""
    from asn1crypto import cms
    from asn1crypto import x509 as asn1_x509

    world = seal_world()
    original = world.record.certificate
    genuine = hashlib.sha256(original.public_bytes(serialization.Encoding.DER)).digest()
    twins: dict[bool, x509.Certificate] = {}
    while len(twins) < 2:
        builder = (
            x509.CertificateBuilder()
            .subject_name(original.subject)
            .issuer_name(original.issuer)
            .public_key(original.public_key())
            .serial_number(original.serial_number)
            .not_valid_before(original.not_valid_before_utc)
            .not_valid_after(original.not_valid_after_utc)
        )
        for extension in original.extensions:
            builder = builder.add_extension(extension.value, extension.critical)
        twin = builder.sign(world.root_key, hashes.SHA256())  # ECDSA: new bytes each time
        der = twin.public_bytes(serialization.Encoding.DER)
        twins.setdefault(hashlib.sha256(der).digest() > genuine, twin)
    for twin in twins.values():
        info = cms.ContentInfo.load(_made_at_mid())
        info["content"]["certificates"] = [
            asn1_x509.Certificate.load(twin.public_bytes(serialization.Encoding.DER))
        ]
        report = SealVerifier([world.root], [replace(world.record, certificate=twin)]).result(
            DOCUMENT, seal=info.dump(force=True), at=MID + timedelta(days=1)
        )
        assert report.check("signature").detail == (
            "the signing-certificate attribute names another certificate"
        )


def test_the_chain_is_searched_at_the_signing_time() -> None:
    """A seal CA valid only for ten days around the signing time, long over when the seal is
    verified, and neither at the middle nor at the start of the seal certificate's window."""
    world = seal_world()
    ca_key = generate_signing_key()
    ca = issue_ca(
        world.root_key,
        world.root,
        ca_key.public_key(),
        kind=CaKind.SEAL,
        node_id="420700",
        now=SEAL_FROM,
        not_before=MID - timedelta(days=5),
        not_after=MID + timedelta(days=5),
    )
    made = new_seal(ca_key, ca, seal_id="420700-short-ca")
    assert made.key is not None
    p7s = seal_detached(
        DOCUMENT,
        PrivateKeySigner(made.key),
        made.record.certificate,
        chain=[ca],
        at=MID,
        ecert_identifier=None,
    )
    report = SealVerifier([world.root], [made.record]).result(
        DOCUMENT, seal=p7s, at=MID + timedelta(days=100)
    )
    chain = report.check("certificate_chain")
    assert (chain.outcome, chain.detail) == (
        CheckOutcome.PASSED,
        f"seal 420700-short-ca of node 420700; chains to {world.root.subject.rfc4514_string()} "
        "(3 certificates)",
    )
    assert report.valid is True


def test_an_unreadable_extra_certificate_in_the_seal_leaves_the_chain_undecided() -> None:
    from asn1crypto import cms

    world = seal_world()
    info = cms.ContentInfo.load(_made_at_mid())
    leaf = info["content"]["certificates"][0]
    junk = cms.CertificateChoices.load(b"\x30\x03\x02\x01\x05")  # SEQUENCE { INTEGER 5 }
    info["content"]["certificates"] = [leaf, junk]
    report = SealVerifier([world.root], [world.record]).result(
        DOCUMENT, seal=info.dump(), at=MID + timedelta(days=1)
    )
    chain = report.check("certificate_chain")
    assert chain.outcome is CheckOutcome.INDETERMINATE
    assert chain.detail.startswith(
        "the seal certificate does not chain to a trusted root: a certificate in the seal is "
        "malformed: "
    )
    assert (report.indication, report.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
    )
    assert [c.name for c in report.checks] == [
        "format",
        "document_integrity",
        "signature",
        "certificate_chain",
        "seal_registered",
        "key_validity",
        "ecert_identifier",
        "ecert_status",
    ]
