"""The third-party verifier: every bad input gets a precise report, and OpenSSL agrees."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fixtures_seal import (
    ECERT,
    NOW,
    SEAL_FROM,
    SEAL_UNTIL,
    VERIFY_URL,
    WUHAN_USCC,
    append_incremental_update,
    forge_detached,
    make_pdf,
    new_seal,
    openssl_cms_verify,
    seal_image,
    seal_world,
    write_pem,
)
from tongban.cli.main import main
from tongban.client.verify import (
    CheckOutcome,
    Indication,
    SealIndeterminateError,
    SealInvalidError,
    SealVerificationReport,
    SealVerifier,
    SubIndication,
    seal_verification_result,
    verify_seal,
)
from tongban.keys.ecert import (
    ECertIdentifier,
    ECertStatus,
    ECertStatusEntry,
    ECertStatusList,
    sign_status_list,
)
from tongban.keys.envelope import Envelope
from tongban.keys.errors import CallerError
from tongban.keys.pki import CaKind, Role, generate_signing_key, issue_ca, issue_certificate
from tongban.keys.seals import RevocationReason, SealRecord, seal_detached, seal_pdf
from tongban.keys.signing import PrivateKeySigner

DOCUMENT = b"%PDF-like result document: permit 2026-0001\n" + bytes(range(256)) * 800
LATER = NOW + timedelta(days=30)  # verification happens well after sealing
CHECKS = (
    "format",
    "document_integrity",
    "signature",
    "certificate_chain",
    "seal_registered",
    "key_validity",
    "ecert_identifier",
    "ecert_status",
)
NODE_KEY = ed25519.Ed25519PrivateKey.generate()


def _sealed(at: datetime = NOW) -> bytes:
    world = seal_world()
    return seal_detached(
        DOCUMENT, world.signer, world.record.certificate, at=at, ecert_identifier=ECERT
    )


def _verify(
    seal: bytes | None, document: bytes = DOCUMENT, *, at: datetime = LATER, **kwargs: object
) -> SealVerificationReport:
    world = seal_world()
    options: dict[str, object] = {"roots": [world.root], "seals": [world.record]} | kwargs
    return seal_verification_result(document, seal=seal, at=at, **options)  # type: ignore[arg-type]


def _outcomes(report: SealVerificationReport) -> dict[str, str]:
    return {c.name: c.outcome.value for c in report.checks}


# --- the good case -----------------------------------------------------------------------


def test_a_good_detached_seal_is_valid_with_every_check_reported() -> None:
    report = _verify(_sealed())
    assert (report.indication, report.sub_indication) == (Indication.VALID, None)
    assert [c.name for c in report.checks] == list(CHECKS)
    assert _outcomes(report) == dict.fromkeys(CHECKS, "passed") | {"ecert_status": "skipped"}
    assert report.summary == (
        "VALID: sealed by 鄂州市行政审批局行政审批专用章 (420700-approval) of 11420700MB1539542A "
        f"at 2026-03-02T09:30:00.000000Z; e-certificate {ECERT}, current status not checked"
    )
    assert report.signing_time == NOW
    assert report.signer is not None and report.signer.seal_name == "鄂州市行政审批局行政审批专用章"
    assert report.ecert_identifier == str(ECERT)
    assert report.format == "cms-detached"


def test_report_json_has_the_bottom_line_in_indication() -> None:
    data = json.loads(_verify(_sealed()).to_json())
    assert data["indication"] == "VALID"
    assert data["sub_indication"] is None
    assert data["signing_time"] == "2026-03-02T09:30:00.000000Z"
    assert data["signer"]["org_uscc"] == "11420700MB1539542A"
    assert [c["name"] for c in data["checks"]] == list(CHECKS)
    bad = json.loads(_verify(b"\x30\x03\x02\x01").to_json())
    assert (bad["indication"], bad["sub_indication"]) == ("INVALID", "FORMAT_FAILURE")


def test_verify_seal_raises_with_the_report_unless_valid() -> None:
    world = seal_world()
    common = {"roots": [world.root], "seals": [world.record], "at": LATER}
    assert verify_seal(DOCUMENT, seal=_sealed(), **common).valid  # type: ignore[arg-type]
    with pytest.raises(SealInvalidError) as invalid:
        verify_seal(DOCUMENT + b"x", seal=_sealed(), **common)  # type: ignore[arg-type]
    assert invalid.value.code == "seal-invalid"
    assert invalid.value.report.sub_indication is SubIndication.HASH_FAILURE
    with pytest.raises(SealIndeterminateError) as undecided:
        verify_seal(DOCUMENT, seal=_sealed(), **common | {"seals": []})  # type: ignore[arg-type]
    assert undecided.value.code == "seal-indeterminate"


def test_naive_times_are_refused() -> None:
    with pytest.raises(CallerError, match="naive"):
        _verify(_sealed(), at=datetime(2026, 4, 1))


# --- the bad-input list ------------------------------------------------------------------


def test_one_flipped_byte_in_the_document() -> None:
    changed = bytearray(DOCUMENT)
    changed[10_000] ^= 0x01
    report = _verify(_sealed(), bytes(changed))
    assert (report.indication, report.sub_indication) == (
        Indication.INVALID,
        SubIndication.HASH_FAILURE,
    )
    assert report.check("document_integrity").detail.startswith("the document's SHA256 ")
    assert report.check("document_integrity").detail.endswith(
        "does not match the sealed digest: it was changed after sealing, "
        "or this seal belongs to another document"
    )
    assert report.check("signature").outcome is CheckOutcome.PASSED


def test_a_seal_by_a_key_not_chained_to_the_root() -> None:
    world = seal_world()
    impostor = world.impostor
    assert impostor.key is not None
    p7s = seal_detached(
        DOCUMENT,
        PrivateKeySigner(impostor.key),
        impostor.record.certificate,
        at=NOW,
        ecert_identifier=ECERT,
    )
    report = _verify(p7s)
    assert (report.indication, report.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
    )
    assert report.check("certificate_chain").detail.startswith(
        "the seal certificate does not chain to a trusted root: "
    )
    assert report.check("seal_registered").detail == (
        "seal '420700-approval' is registered with a different certificate"
    )
    assert report.check("signature").outcome is CheckOutcome.PASSED


def test_the_wrong_root_given() -> None:
    report = _verify(_sealed(), roots=[seal_world().other_root])
    assert (report.indication, report.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
    )
    assert report.summary.startswith(
        "INDETERMINATE (NO_CERTIFICATE_CHAIN_FOUND): the seal certificate does not chain"
    )
    no_root = _verify(_sealed(), roots=[])
    assert no_root.check("certificate_chain").detail == (
        "the seal certificate does not chain to a trusted root: "
        "no trusted root certificate was given"
    )


# --- revocation: whether a claimed signing time counts depends on the reason -------------
#
# The seal key is revoked at NOW. A thief holding it writes any signing time, so after a
# revocation that says the key may be in other hands the claimed time proves nothing; after
# an orderly retirement it is believed (ADR 0006).

BACKDATED = NOW - timedelta(minutes=1)


def _backdated(signing_time: datetime = BACKDATED) -> bytes:
    """A seal made with the seal key, claiming ``signing_time`` whenever it was really made."""
    world = seal_world()
    return forge_detached(
        DOCUMENT, world.signer, world.record.certificate, signing_time=signing_time
    )


def test_a_backdated_seal_of_a_key_revoked_for_compromise_is_revoked_no_poe() -> None:
    revoked = seal_world().record.revoked(NOW, RevocationReason.KEY_COMPROMISE, "印章钥匙泄露")
    report = _verify(_backdated(), seals=[revoked])
    assert (report.indication, report.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.REVOKED_NO_POE,
    )
    detail = (
        "the key of seal 420700-approval was revoked at 2026-03-02T09:30:00.000000Z for key "
        "compromise (keyCompromise: 印章钥匙泄露); the signing time "
        "2026-03-02T09:29:00.000000Z is only the signer's claim, and nothing proves the seal "
        "existed before the revocation"
    )
    assert report.check("key_validity").outcome is CheckOutcome.INDETERMINATE
    assert report.check("key_validity").detail == detail
    assert report.summary == f"INDETERMINATE (REVOKED_NO_POE): {detail}"
    # everything else about the seal is sound: only its time is in doubt
    assert {c.name for c in report.checks if c.outcome is CheckOutcome.PASSED} == set(CHECKS) - {
        "key_validity",
        "ecert_status",
    }
    with pytest.raises(SealIndeterminateError):
        verify_seal(
            DOCUMENT, seal=_backdated(), roots=[seal_world().root], seals=[revoked], at=LATER
        )


def test_a_backdated_pdf_seal_of_a_compromised_key_is_revoked_no_poe() -> None:
    world = seal_world()
    out = io.BytesIO()
    seal_pdf(
        make_pdf(),
        out,
        world.signer,
        world.record.certificate,
        at=BACKDATED,
        ecert_identifier=ECERT,
        verification_url=VERIFY_URL,
        seal_image_png=seal_image(),
    )
    revoked = world.record.revoked(NOW, RevocationReason.KEY_COMPROMISE)
    report = _verify(None, out.getvalue(), seals=[revoked])
    assert (report.format, report.indication, report.sub_indication) == (
        "pades",
        Indication.INDETERMINATE,
        SubIndication.REVOKED_NO_POE,
    )
    assert report.check("key_validity").detail == (
        "the key of seal 420700-approval was revoked at 2026-03-02T09:30:00.000000Z for key "
        "compromise (keyCompromise); the signing time "
        "2026-03-02T09:29:00.000000Z is only the signer's claim, and nothing proves the seal "
        "existed before the revocation"
    )


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        (RevocationReason.CA_COMPROMISE, "for compromise of its certificate authority"),
        (
            RevocationReason.UNSPECIFIED,
            "for an unspecified reason, which counts as a possible key compromise",
        ),
    ],
)
def test_other_revocations_that_may_mean_a_stolen_key_count_as_compromise(
    reason: RevocationReason, words: str
) -> None:
    revoked = seal_world().record.revoked(NOW, reason)
    report = _verify(_backdated(), seals=[revoked])
    assert (report.indication, report.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.REVOKED_NO_POE,
    )
    assert report.check("key_validity").detail == (
        f"the key of seal 420700-approval was revoked at 2026-03-02T09:30:00.000000Z {words} "
        f"({reason.value}); the signing time 2026-03-02T09:29:00.000000Z is only the signer's "
        "claim, and nothing proves the seal existed before the revocation"
    )


def test_a_record_revoked_with_a_free_text_reason_counts_as_unspecified() -> None:
    # Records written before reasons were codes carry the admin's words only.
    data = seal_world().record.to_json_dict() | {
        "revoked_at": "2026-03-02T09:30:00Z",
        "revocation_reason": "换章",
    }
    del data["revocation_note"]
    old = SealRecord.from_json_dict(data)
    assert (old.revocation_reason, old.revocation_note) == (RevocationReason.UNSPECIFIED, "换章")
    report = _verify(_backdated(), seals=[old])
    assert (report.indication, report.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.REVOKED_NO_POE,
    )
    assert report.check("key_validity").detail == (
        "the key of seal 420700-approval was revoked at 2026-03-02T09:30:00.000000Z for an "
        "unspecified reason, which counts as a possible key compromise (unspecified: 换章); the "
        "signing time 2026-03-02T09:29:00.000000Z is only the signer's claim, and nothing "
        "proves the seal existed before the revocation"
    )


@pytest.mark.parametrize(
    "reason",
    [
        RevocationReason.SUPERSEDED,
        RevocationReason.CESSATION_OF_OPERATION,
        RevocationReason.AFFILIATION_CHANGED,
    ],
)
def test_a_seal_made_before_an_orderly_revocation_stays_valid(reason: RevocationReason) -> None:
    revoked = seal_world().record.revoked(NOW, reason, "换章")
    report = _verify(_backdated(), seals=[revoked])
    assert (report.indication, report.sub_indication) == (Indication.VALID, None)
    assert report.check("key_validity").detail == (
        "certificates and seal valid and not revoked at the signing time "
        "2026-03-02T09:29:00.000000Z; revoked later, at 2026-03-02T09:30:00.000000Z "
        f"({reason.value}: 换章), which does not affect seals made before"
    )


@pytest.mark.parametrize("reason", [RevocationReason.KEY_COMPROMISE, RevocationReason.SUPERSEDED])
def test_a_seal_claiming_a_time_after_the_revocation_is_revoked(reason: RevocationReason) -> None:
    revoked = seal_world().record.revoked(NOW, reason)
    report = _verify(_backdated(NOW + timedelta(minutes=1)), seals=[revoked])
    assert (report.indication, report.sub_indication) == (Indication.INVALID, SubIndication.REVOKED)
    assert report.check("key_validity").detail == (
        f"seal 420700-approval was revoked at 2026-03-02T09:30:00.000000Z ({reason.value}), "
        "not later than the signing time 2026-03-02T09:31:00.000000Z"
    )
    at_the_instant = _verify(_backdated(NOW), seals=[revoked])
    assert at_the_instant.sub_indication is SubIndication.REVOKED


def test_verified_before_a_compromise_revocation_takes_effect_the_seal_is_valid() -> None:
    # Whoever verifies at a time holds the seal then: that time is itself a proof of
    # existence, and here it precedes the revocation.
    revoked = seal_world().record.revoked(NOW, RevocationReason.KEY_COMPROMISE)
    report = _verify(_backdated(NOW - timedelta(hours=2)), seals=[revoked], at=BACKDATED)
    assert (report.indication, report.sub_indication) == (Indication.VALID, None)
    assert report.check("key_validity").detail == (
        "certificates and seal valid and not revoked at the signing time "
        "2026-03-02T07:30:00.000000Z; revoked at 2026-03-02T09:30:00.000000Z (keyCompromise), "
        "after the verification time"
    )
    after = _verify(_backdated(NOW - timedelta(hours=2)), seals=[revoked], at=NOW)
    assert after.sub_indication is SubIndication.REVOKED_NO_POE


@pytest.mark.parametrize(
    ("reason", "proven", "indication", "sub", "detail"),
    [
        (
            RevocationReason.KEY_COMPROMISE,
            BACKDATED,
            CheckOutcome.PASSED,
            None,
            "certificates and seal valid and not revoked at the proven time "
            "2026-03-02T09:29:00.000000Z; revoked later, at 2026-03-02T09:30:00.000000Z "
            "(keyCompromise), which does not affect seals made before",
        ),
        (
            RevocationReason.SUPERSEDED,
            NOW + timedelta(hours=1),
            CheckOutcome.FAILED,
            SubIndication.REVOKED,
            "seal 420700-approval was revoked at 2026-03-02T09:30:00.000000Z (superseded), "
            "not later than the proven time 2026-03-02T10:30:00.000000Z",
        ),
        (
            RevocationReason.KEY_COMPROMISE,
            NOW + timedelta(hours=1),
            CheckOutcome.FAILED,
            SubIndication.REVOKED,
            "seal 420700-approval was revoked at 2026-03-02T09:30:00.000000Z (keyCompromise), "
            "not later than the proven time 2026-03-02T10:30:00.000000Z",
        ),
    ],
    ids=["proven before a compromise", "proven after a retirement", "proven after a compromise"],
)
def test_a_proven_time_decides_before_or_after_whatever_the_reason(
    reason: RevocationReason,
    proven: datetime,
    indication: CheckOutcome,
    sub: SubIndication | None,
    detail: str,
) -> None:
    # Seals carry no time stamp yet; this is the seam the time-stamp work fills (ADR 0006):
    # the key-validity check given a proven time beside the claimed one.
    from tongban.keys.verification._checks import _check_key_validity
    from tongban.keys.verification._report import _Checks, _Context

    world = seal_world()
    record = world.record.revoked(NOW, reason)
    checks = _Checks()
    context = _Context(at=LATER, signing_time=BACKDATED)
    _check_key_validity(record.certificate, None, record, checks, context, proven_time=proven)
    (result,) = checks.results
    assert (result.outcome, result.detail) == (indication, detail)
    assert [v[1] for v in checks.verdicts] == ([sub] if sub else [])


def test_a_certificate_expired_at_the_signing_time() -> None:
    world = seal_world()
    signing_time = SEAL_UNTIL + timedelta(days=3)
    p7s = forge_detached(
        DOCUMENT, world.signer, world.record.certificate, signing_time=signing_time
    )
    report = _verify(p7s, at=signing_time + timedelta(days=1))
    assert (report.indication, report.sub_indication) == (Indication.INVALID, SubIndication.EXPIRED)
    assert report.check("certificate_chain").outcome is CheckOutcome.PASSED
    assert report.check("key_validity").detail == (
        "certificate CN=鄂州市行政审批局行政审批专用章,2.5.4.97=NTRCN-11420700MB1539542A,O=鄂州市行政审批局,C=CN (valid "
        "2026-03-01T09:30:00.000000Z .. 2027-03-02T09:30:00.000000Z) is expired at the "
        "signing time 2027-03-05T09:30:00.000000Z"
    )


@pytest.mark.parametrize(
    ("name", "mangle"),
    [
        ("truncated", lambda der: der[: len(der) // 2]),
        ("one byte short", lambda der: der[:-1]),
        ("garbage", lambda der: b"this is not a seal at all" * 10),
        ("empty", lambda der: b""),
        ("PEM instead of DER", lambda der: b"-----BEGIN CMS-----\n" + der[:40].hex().encode()),
    ],
)
def test_a_truncated_or_garbage_p7s(name: str, mangle: Callable[[bytes], bytes]) -> None:
    report = _verify(mangle(_sealed()))
    assert (report.indication, report.sub_indication) == (
        Indication.INVALID,
        SubIndication.FORMAT_FAILURE,
    ), name
    assert [c.name for c in report.checks] == ["format"]
    assert report.check("format").detail.startswith("the seal file is not DER CMS SignedData: ")
    assert report.summary.startswith("INVALID (FORMAT_FAILURE): the seal file is not DER CMS")


def test_a_cms_that_is_not_a_detached_signed_data() -> None:
    from asn1crypto import cms

    data = cms.ContentInfo({"content_type": "data", "content": b"hello"}).dump()
    report = _verify(data)
    assert report.check("format").detail == "the seal file holds CMS data, not SignedData"


@pytest.fixture(scope="module")
def sealed_pdf() -> bytes:
    world = seal_world()
    out = io.BytesIO()
    seal_pdf(
        make_pdf(),
        out,
        world.signer,
        world.record.certificate,
        at=NOW,
        ecert_identifier=ECERT,
        verification_url=VERIFY_URL,
        seal_image_png=seal_image(),
    )
    return out.getvalue()


def test_a_sealed_pdf_is_valid(sealed_pdf: bytes) -> None:
    report = _verify(None, sealed_pdf)
    assert (report.indication, report.format) == (Indication.VALID, "pades")
    assert report.check("document_integrity").detail == "the seal covers the entire file"
    assert report.signing_time == NOW
    assert report.ecert_identifier == str(ECERT)


def test_a_pdf_changed_after_sealing_by_an_incremental_update(sealed_pdf: bytes) -> None:
    report = _verify(None, append_incremental_update(sealed_pdf))
    assert (report.indication, report.sub_indication) == (
        Indication.INVALID,
        SubIndication.HASH_FAILURE,
    )
    assert report.check("document_integrity").detail.startswith(
        "the PDF was changed after sealing: 1 incremental update(s) follow the sealed "
        "revision (modification level suspicious"
    )
    # the sealed revision itself is intact: the seal is sound, the file is not
    assert report.check("signature").outcome is CheckOutcome.PASSED


def test_a_pdf_altered_inside_the_sealed_bytes(sealed_pdf: bytes) -> None:
    altered = sealed_pdf.replace(b"Business licence 2026-0001", b"Business licence 2026-0009")
    assert altered != sealed_pdf
    report = _verify(None, altered)
    assert (report.indication, report.sub_indication) == (
        Indication.INVALID,
        SubIndication.HASH_FAILURE,
    )
    assert report.check("document_integrity").detail == (
        "the sealed byte range does not match the sealed digest: the PDF was altered in place"
    )


@pytest.mark.parametrize(
    ("document", "detail"),
    [
        (b"plain text, no seal", "no seal file was given and the document is not a readable PDF"),
        (make_pdf(), "the PDF carries no seal: no signed signature field"),
    ],
)
def test_a_document_without_a_seal(document: bytes, detail: str) -> None:
    report = _verify(None, document)
    assert (report.indication, report.sub_indication) == (
        Indication.INVALID,
        SubIndication.FORMAT_FAILURE,
    )
    assert report.check("format").detail.startswith(detail)


def test_an_ecert_identifier_with_a_bad_check_character() -> None:
    world = seal_world()
    bad = str(ECERT)[:-1] + "P"
    p7s = forge_detached(
        DOCUMENT, world.signer, world.record.certificate, signing_time=NOW, identifier=bad
    )
    report = _verify(p7s)
    assert (report.indication, report.sub_indication) == (
        Indication.INVALID,
        SubIndication.FORMAT_FAILURE,
    )
    assert report.check("ecert_identifier").detail == (
        f"{bad!r}: e-certificate identifier check character is 'P', expected 'O'"
    )
    assert report.check("ecert_status").outcome is CheckOutcome.SKIPPED


def test_an_unknown_seal_id() -> None:
    world = seal_world()
    stranger = new_seal(world.root_key, world.root, seal_id="420700-unregistered")
    assert stranger.key is not None
    p7s = seal_detached(
        DOCUMENT,
        PrivateKeySigner(stranger.key),
        stranger.record.certificate,
        at=NOW,
        ecert_identifier=ECERT,
    )
    report = _verify(p7s)
    assert (report.indication, report.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.SIG_CONSTRAINTS_FAILURE,
    )
    assert report.check("seal_registered").detail == (
        "seal id '420700-unregistered' is not in the published seal records"
    )
    assert report.check("certificate_chain").outcome is CheckOutcome.PASSED
    assert report.check("key_validity").outcome is CheckOutcome.INDETERMINATE


def test_a_hall_certificate_is_not_a_seal() -> None:
    world = seal_world()
    key = generate_signing_key()
    hall = issue_certificate(
        world.root_key,
        world.root,
        key.public_key(),
        role=Role.HALL,
        node_id="420700",
        name="420700-hall-1",
        now=SEAL_FROM,
    )
    p7s = seal_detached(DOCUMENT, PrivateKeySigner(key), hall, at=NOW, ecert_identifier=ECERT)
    report = _verify(p7s)
    assert (report.indication, report.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.CHAIN_CONSTRAINTS_FAILURE,
    )
    assert report.check("certificate_chain").detail == (
        "the certificate is not a seal certificate with non-repudiation: "
        "hall 420700-hall-1 of node 420700"
    )


def test_a_signature_that_does_not_verify() -> None:
    from asn1crypto import cms

    info = cms.ContentInfo.load(_sealed())
    signer_info = info["content"]["signer_infos"][0]
    signature = bytearray(signer_info["signature"].native)
    signature[-3] ^= 0x40
    signer_info["signature"] = bytes(signature)
    report = _verify(info.dump(force=True))
    assert (report.indication, report.sub_indication) in {
        (Indication.INVALID, SubIndication.SIG_CRYPTO_FAILURE),
        (Indication.INVALID, SubIndication.FORMAT_FAILURE),  # DER of r/s itself broken
    }


def test_the_records_supply_a_certificate_the_seal_left_out() -> None:
    from asn1crypto import cms

    info = cms.ContentInfo.load(_sealed())
    info["content"]["certificates"] = []
    report = _verify(info.dump(force=True))
    assert report.indication is Indication.VALID
    without_records = _verify(info.dump(force=True), seals=[])
    assert (without_records.indication, without_records.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.NO_SIGNING_CERTIFICATE_FOUND,
    )


# --- rotation and validity windows: a table ----------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    signed_at: datetime
    verified_at: datetime
    revoked_at: datetime | None
    indication: Indication
    sub: SubIndication | None


ROTATION = [
    Scenario(
        "sealed, verified the same day", NOW, NOW + timedelta(hours=1), None, Indication.VALID, None
    ),
    Scenario(
        "verified years after the certificate expired",
        NOW,
        SEAL_UNTIL + timedelta(days=900),
        None,
        Indication.VALID,
        None,
    ),
    Scenario(
        "sealed before revocation, verified after",
        NOW,
        LATER,
        NOW + timedelta(days=1),
        Indication.VALID,
        None,
    ),
    Scenario(
        "sealed at the revocation instant",
        NOW,
        LATER,
        NOW,
        Indication.INVALID,
        SubIndication.REVOKED,
    ),
    Scenario(
        "sealed after revocation",
        NOW + timedelta(days=2),
        LATER,
        NOW + timedelta(days=1),
        Indication.INVALID,
        SubIndication.REVOKED,
    ),
    Scenario(
        "certificate expired at signing time",
        SEAL_UNTIL + timedelta(seconds=1),
        SEAL_UNTIL + timedelta(days=1),
        None,
        Indication.INVALID,
        SubIndication.EXPIRED,
    ),
    Scenario(
        "certificate not yet valid at signing time",
        SEAL_FROM - timedelta(hours=1),
        LATER,
        None,
        Indication.INVALID,
        SubIndication.NOT_YET_VALID,
    ),
    Scenario(
        "signing time after the verification time",
        NOW + timedelta(days=2),
        NOW,
        None,
        Indication.INDETERMINATE,
        SubIndication.NO_POE,
    ),
]


@pytest.mark.parametrize("scenario", ROTATION, ids=lambda s: s.name)
def test_validity_table(scenario: Scenario) -> None:
    world = seal_world()
    record = world.record
    if scenario.revoked_at is not None:
        record = record.revoked(scenario.revoked_at, RevocationReason.SUPERSEDED)
    p7s = forge_detached(
        DOCUMENT, world.signer, world.record.certificate, signing_time=scenario.signed_at
    )
    report = _verify(p7s, at=scenario.verified_at, seals=[record])
    assert (report.indication, report.sub_indication) == (scenario.indication, scenario.sub)
    result = openssl_verdict(p7s)
    # OpenSSL knows neither our records nor the signing-time rules: it checks the maths and
    # the chain at the wall clock, so it agrees wherever those decide
    if scenario.sub in (None, SubIndication.REVOKED, SubIndication.NO_POE):
        assert result == 0


def test_key_rotation_keeps_history() -> None:
    world = seal_world()
    rotated_at = NOW + timedelta(days=10)
    old = world.record.revoked(rotated_at, RevocationReason.SUPERSEDED, "scheduled rotation")
    successor = new_seal(world.root_key, world.root, not_before=rotated_at)
    assert successor.key is not None
    records = [old, successor.record]
    verifier = SealVerifier([world.root], records)
    made_before = forge_detached(
        DOCUMENT,
        world.signer,
        world.record.certificate,
        signing_time=rotated_at - timedelta(days=1),
    )
    old_key_after = forge_detached(
        DOCUMENT,
        world.signer,
        world.record.certificate,
        signing_time=rotated_at + timedelta(days=1),
    )
    new_key = seal_detached(
        DOCUMENT,
        PrivateKeySigner(successor.key),
        successor.record.certificate,
        at=rotated_at + timedelta(days=1),
        ecert_identifier=ECERT,
    )
    at = rotated_at + timedelta(days=40)
    assert verifier.result(DOCUMENT, seal=made_before, at=at).indication is Indication.VALID
    assert verifier.result(DOCUMENT, seal=old_key_after, at=at).sub_indication is (
        SubIndication.REVOKED
    )
    assert verifier.result(DOCUMENT, seal=new_key, at=at).indication is Indication.VALID


# --- e-certificate status ----------------------------------------------------------------


def _status_list(
    *changes: tuple[ECertStatus, datetime, str], node: str = "420700", issued: datetime = LATER
) -> Envelope:
    status_list = ECertStatusList.empty(node, issued_at=issued, next_update=issued + timedelta(1))
    for status, when, reason in changes:
        status_list = status_list.with_change(
            ECERT,
            status,
            changed_at=when,
            reason=reason,
            issued_at=issued,
            next_update=issued + timedelta(days=1),
        )
    return sign_status_list(status_list, PrivateKeySigner(NODE_KEY))


@pytest.mark.parametrize(
    ("status", "sub", "label"),
    [
        (ECertStatus.REVOKED, SubIndication.ECERT_REVOKED, "撤销"),
        (ECertStatus.CANCELLED, SubIndication.ECERT_CANCELLED, "注销"),
        (ECertStatus.EXPIRED, SubIndication.ECERT_EXPIRED, "失效"),
    ],
)
def test_status_list_reports_a_changed_ecert(
    status: ECertStatus, sub: SubIndication, label: str
) -> None:
    envelope = _status_list((status, NOW + timedelta(days=3), "经营者申请"))
    report = _verify(_sealed(), status_list=envelope, status_keys=NODE_KEY.public_key())
    assert (report.indication, report.sub_indication, report.ecert_status) == (
        Indication.INVALID,
        sub,
        status,
    )
    assert report.check("ecert_status").detail == (
        f"{status.value} ({label}) at 2026-03-05T09:30:00.000000Z: 经营者申请 (according to "
        "the status list of node 420700 issued 2026-04-01T09:30:00.000000Z)"
    )
    # the seal itself is still sound
    assert report.check("key_validity").outcome is CheckOutcome.PASSED


def test_status_list_without_changes_reports_valid() -> None:
    report = _verify(_sealed(), status_list=_status_list(), status_keys=NODE_KEY.public_key())
    assert (report.indication, report.ecert_status) == (Indication.VALID, ECertStatus.VALID)
    assert report.summary.endswith(f"e-certificate {ECERT} is valid")
    # a change dated after the verification time has not happened yet
    future = _status_list((ECertStatus.REVOKED, LATER + timedelta(hours=1), "x"))
    report = _verify(_sealed(), status_list=future, status_keys=NODE_KEY.public_key())
    assert report.indication is Indication.VALID


@pytest.mark.parametrize(
    ("envelope", "keys", "detail"),
    [
        (
            _status_list(issued=LATER - timedelta(days=3)),
            NODE_KEY.public_key(),
            "status list not usable: status list of node 420700 was due for update at "
            "2026-03-30T09:30:00.000000Z",
        ),
        (
            _status_list(),
            ed25519.Ed25519PrivateKey.generate().public_key(),
            "status list not usable: no signature verifies under a key this signer holds",
        ),
        (
            _status_list(node="420100"),
            NODE_KEY.public_key(),
            "the status list is node 420100's; the e-certificate was issued by node 420700",
        ),
        (
            _status_list(node="420800"),
            NODE_KEY.public_key(),
            "the status list is node 420800's; the e-certificate was issued by node 420700",
        ),
    ],
    ids=["stale", "wrong key", "another node", "another node, sorting after"],
)
def test_unusable_status_list_is_indeterminate(
    envelope: Envelope, keys: ed25519.Ed25519PublicKey, detail: str
) -> None:
    report = _verify(_sealed(), status_list=envelope, status_keys=keys)
    assert (report.indication, report.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.TRY_LATER,
    )
    assert report.check("ecert_status").detail == detail


def test_status_list_older_than_the_stated_period_is_indeterminate() -> None:
    envelope = _status_list(issued=LATER - timedelta(hours=5))
    report = _verify(
        _sealed(),
        status_list=envelope,
        status_keys=NODE_KEY.public_key(),
        status_max_age=timedelta(hours=4),
    )
    assert report.sub_indication is SubIndication.TRY_LATER
    assert "is older than 4:00:00" in report.check("ecert_status").detail


def test_online_status_lookup() -> None:
    def revoked(identifier: str) -> ECertStatusEntry:
        return ECertStatusEntry(identifier, ECertStatus.REVOKED, NOW, "吊销")

    def down(identifier: str) -> ECertStatusEntry:
        raise ConnectionError("verification service unreachable")

    assert _verify(_sealed(), online_status=revoked).sub_indication is SubIndication.ECERT_REVOKED
    report = _verify(_sealed(), online_status=down)
    assert (report.indication, report.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.TRY_LATER,
    )
    assert report.check("ecert_status").detail == (
        "the verification service failed: verification service unreachable"
    )


def test_online_lookup_answering_valid() -> None:
    def valid(identifier: str) -> ECertStatusEntry:
        return ECertStatusEntry(identifier, ECertStatus.VALID, NOW, "")

    report = _verify(_sealed(), online_status=valid)
    assert (report.indication, report.sub_indication, report.ecert_status) == (
        Indication.VALID,
        None,
        ECertStatus.VALID,
    )
    assert report.check("ecert_status").detail == (
        "valid according to the issuing node's verification service"
    )


def test_online_lookup_without_a_reason() -> None:
    def cancelled(identifier: str) -> ECertStatusEntry:
        return ECertStatusEntry(identifier, ECertStatus.CANCELLED, NOW, "")

    report = _verify(_sealed(), online_status=cancelled)
    assert (report.indication, report.sub_indication, report.ecert_status) == (
        Indication.INVALID,
        SubIndication.ECERT_CANCELLED,
        ECertStatus.CANCELLED,
    )
    assert report.check("ecert_status").detail == (
        "cancelled (注销) at 2026-03-02T09:30:00.000000Z: no reason given "
        "(according to the issuing node's verification service)"
    )


@pytest.mark.parametrize(
    "issuer",
    [WUHAN_USCC, "11420800MB0000457Y"],
    ids=["sorting before the seal's organisation", "sorting after it"],
)
def test_an_identifier_naming_another_issuer_is_indeterminate(issuer: str) -> None:
    world = seal_world()
    other = ECertIdentifier(ECERT.type_code, issuer, ECERT.serial, ECERT.version)
    p7s = seal_detached(
        DOCUMENT, world.signer, world.record.certificate, at=NOW, ecert_identifier=other
    )
    report = _verify(p7s, status_list=_status_list(), status_keys=NODE_KEY.public_key())
    assert (report.indication, report.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.SIG_CONSTRAINTS_FAILURE,
    )
    assert report.check("ecert_identifier").detail == (
        f"the identifier names issuer {issuer}, but the seal belongs to 11420700MB1539542A"
    )
    assert report.summary == (
        f"INDETERMINATE (SIG_CONSTRAINTS_FAILURE): the identifier names issuer {issuer}, "
        "but the seal belongs to 11420700MB1539542A"
    )
    # the status is still looked up, under the identifier the seal carries
    assert report.check("ecert_status").outcome is CheckOutcome.PASSED
    assert report.ecert_identifier == str(other)


def test_without_a_signing_certificate_the_status_list_node_is_not_compared() -> None:
    # The issuing node is known only from the seal's certificate or record; without either,
    # the status list's own node is all there is, and the seal is INDETERMINATE anyway.
    from asn1crypto import cms

    info = cms.ContentInfo.load(_sealed())
    info["content"]["certificates"] = []
    report = _verify(
        info.dump(force=True),
        seals=[],
        status_list=_status_list(node="420100"),
        status_keys=NODE_KEY.public_key(),
    )
    assert (report.indication, report.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.NO_SIGNING_CERTIFICATE_FOUND,
    )
    assert report.check("ecert_identifier").outcome is CheckOutcome.PASSED
    assert report.check("ecert_status").detail == (
        "valid according to the status list of node 420100 issued 2026-04-01T09:30:00.000000Z"
    )


def test_a_status_list_needs_its_key() -> None:
    with pytest.raises(CallerError, match="checked with its node's key"):
        _verify(_sealed(), status_list=_status_list())


# --- OpenSSL as the independent verifier -------------------------------------------------

_TMP: dict[str, Path] = {}


def openssl_verdict(p7s: bytes, document: bytes = DOCUMENT, root: str = "root") -> int:
    import tempfile

    folder = _TMP.setdefault("dir", Path(tempfile.mkdtemp(prefix="tongban-seal-")))
    world = seal_world()
    (folder / "doc").write_bytes(document)
    (folder / "doc.p7s").write_bytes(p7s)
    ca = write_pem(folder / f"{root}.pem", world.root if root == "root" else world.other_root)
    return openssl_cms_verify(folder / "doc", folder / "doc.p7s", ca).returncode


def test_openssl_agrees_on_the_bad_inputs() -> None:
    world = seal_world()
    good = _sealed()
    changed = bytearray(DOCUMENT)
    changed[10_000] ^= 0x01
    impostor = world.impostor
    assert impostor.key is not None
    foreign = seal_detached(
        DOCUMENT,
        PrivateKeySigner(impostor.key),
        impostor.record.certificate,
        at=NOW,
        ecert_identifier=ECERT,
    )
    assert openssl_verdict(good) == 0
    assert openssl_verdict(good, bytes(changed)) == 4
    assert openssl_verdict(foreign) == 4
    assert openssl_verdict(good, root="other") == 4
    assert openssl_verdict(good[: len(good) // 2]) == 2


# --- the command line --------------------------------------------------------------------


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    world = seal_world()
    paths = {
        "doc": tmp_path / "permit.bin",
        "p7s": tmp_path / "permit.bin.p7s",
        "root": write_pem(tmp_path / "root.pem", world.root),
        "dir": tmp_path / "seals.json",
        "key": tmp_path / "seal-key.pem",
        "cert": write_pem(tmp_path / "seal-cert.pem", world.record.certificate),
    }
    paths["doc"].write_bytes(DOCUMENT)
    paths["p7s"].write_bytes(_sealed())
    paths["dir"].write_text(json.dumps({"seals": [world.record.to_json_dict()]}), "utf-8")
    assert world.seal.key is not None
    paths["key"].write_bytes(
        world.seal.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def _cli(*args: str | Path) -> int:
    return main([str(a) for a in args])


def test_cli_verify_exit_codes_and_json(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    base = (
        "verify",
        files["doc"],
        "--seal",
        files["p7s"],
        "--trust",
        files["root"],
        "--directory",
        files["dir"],
        "--at",
        "2026-04-01T00:00:00Z",
    )
    assert _cli(*base) == 0
    out = capsys.readouterr().out
    assert out.startswith("VALID: sealed by 鄂州市行政审批局行政审批专用章")
    assert "  ok   document_integrity" in out
    assert _cli(*base, "--json") == 0
    assert json.loads(capsys.readouterr().out)["indication"] == "VALID"
    files["doc"].write_bytes(DOCUMENT + b"!")
    assert _cli(*base, "--json") == 1
    assert json.loads(capsys.readouterr().out)["sub_indication"] == "HASH_FAILURE"
    files["doc"].write_bytes(DOCUMENT)
    no_directory = base[:-4] + base[-2:]
    assert _cli(*no_directory) == 3
    assert capsys.readouterr().out.startswith("INDETERMINATE (SIG_CONSTRAINTS_FAILURE)")
    files["p7s"].write_bytes(b"garbage")
    assert _cli(*base) == 1
    assert capsys.readouterr().out.startswith("INVALID (FORMAT_FAILURE)")


def test_cli_verify_reports_input_errors_without_a_traceback(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli("verify", files["doc"], "--seal", files["p7s"], "--trust", files["doc"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tongban verify: error: trust root ")
    assert "Traceback" not in err
    assert _cli("verify", files["doc"], "--trust", files["root"] / "missing") == 2
    assert "cannot read trust root" in capsys.readouterr().err
    assert _cli("verify", files["doc"], "--trust", files["root"], "--at", "yesterday") == 2
    assert "--at 'yesterday'" in capsys.readouterr().err


def test_cli_verify_a_pdf_after_an_incremental_update(
    sealed_pdf: bytes, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    pdf = files["doc"].with_suffix(".pdf")
    pdf.write_bytes(append_incremental_update(sealed_pdf))
    code = _cli("verify", pdf, "--trust", files["root"], "--directory", files["dir"], "--json")
    captured = capsys.readouterr()
    assert code == 1
    assert json.loads(captured.out)["sub_indication"] == "HASH_FAILURE"
    assert "Traceback" not in captured.err


def test_cli_verify_with_a_status_list(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = tmp_path / "status.json"
    envelope = _status_list((ECertStatus.CANCELLED, NOW + timedelta(days=1), "企业注销"))
    status.write_text(json.dumps(envelope.to_json_dict()), "utf-8")
    key = tmp_path / "node-statement-key.pem"
    key.write_bytes(
        NODE_KEY.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    code = _cli(
        "verify",
        files["doc"],
        "--seal",
        files["p7s"],
        "--trust",
        files["root"],
        "--directory",
        files["dir"],
        "--status-list",
        status,
        "--status-key",
        key,
        "--at",
        "2026-04-01T10:00:00Z",
        "--json",
    )
    assert code == 1
    assert json.loads(capsys.readouterr().out)["sub_indication"] == "ECERT_CANCELLED"


def test_cli_verify_with_the_signed_federation_directory(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tongban.keys.directory import FederationDirectory, NodeEntry, sign_directory
    from tongban.keys.records import KeyRecord

    world = seal_world()
    ca_key = generate_signing_key()
    identity_ca = issue_ca(
        world.root_key,
        world.root,
        ca_key.public_key(),
        kind=CaKind.IDENTITY,
        node_id="420700",
        now=SEAL_FROM,
    )
    seal_ca = issue_ca(
        world.root_key,
        world.root,
        generate_signing_key().public_key(),
        kind=CaKind.SEAL,
        node_id="420700",
        now=SEAL_FROM,
    )
    node_cert = issue_certificate(
        ca_key,
        identity_ca,
        generate_signing_key().public_key(),
        role=Role.NODE,
        node_id="420700",
        name="420700",
        now=SEAL_FROM,
    )
    statement_key = KeyRecord.for_signing(
        NODE_KEY.public_key(), not_before=SEAL_FROM, not_after=SEAL_UNTIL
    )
    directory = FederationDirectory(
        version=1,
        issued_at=SEAL_FROM,
        expires_at=SEAL_UNTIL,
        nodes=(
            NodeEntry(
                "420700", "鄂州市", "127.0.0.1:1", node_cert, identity_ca, seal_ca, (statement_key,)
            ),
        ),
        seals=(world.record.to_json_dict(),),
    )
    signed = sign_directory(directory, PrivateKeySigner(world.root_key))
    (tmp_path / "directory.json").write_text(json.dumps(signed.to_json_dict()), "utf-8")
    status = tmp_path / "status.json"
    status.write_text(json.dumps(_status_list().to_json_dict()), "utf-8")
    code = _cli(
        "verify",
        files["doc"],
        "--seal",
        files["p7s"],
        "--trust",
        files["root"],
        "--directory",
        tmp_path / "directory.json",
        "--status-list",
        status,
        "--at",
        "2026-04-01T10:00:00Z",
        "--json",
    )
    data = json.loads(capsys.readouterr().out)
    assert (code, data["indication"], data["ecert_status"]) == (0, "VALID", "valid")
    # a directory signed by another root is refused as input
    other = sign_directory(directory, PrivateKeySigner(world.other_root_key))
    (tmp_path / "directory.json").write_text(json.dumps(other.to_json_dict()), "utf-8")
    code = _cli(
        "verify",
        files["doc"],
        "--seal",
        files["p7s"],
        "--trust",
        files["root"],
        "--directory",
        tmp_path / "directory.json",
    )
    assert code == 2
    assert "directory" in capsys.readouterr().err


def test_cli_seal_then_verify_with_openssl(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.p7s"
    code = _cli(
        "seal",
        files["doc"],
        "--seal-key",
        files["key"],
        "--seal-cert",
        files["cert"],
        "--out",
        out,
        "--ecert",
        str(ECERT),
        "--at",
        "2026-03-02T10:00:00Z",
    )
    assert code == 0
    assert capsys.readouterr().out.startswith(f"sealed {files['doc']} -> {out}")
    assert openssl_cms_verify(files["doc"], out, files["root"]).returncode == 0
    report = _verify(out.read_bytes())
    assert report.signing_time == datetime.fromisoformat("2026-03-02T10:00:00+00:00")


def test_cli_seal_refuses_a_bad_identifier(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = _cli(
        "seal",
        files["doc"],
        "--seal-key",
        files["key"],
        "--seal-cert",
        files["cert"],
        "--ecert",
        str(ECERT)[:-1] + "P",
    )
    assert code == 2
    assert capsys.readouterr().err == (
        "tongban seal: error: e-certificate identifier check character is 'P', expected 'O'\n"
    )


def test_cli_seal_a_pdf(files: dict[str, Path], tmp_path: Path) -> None:
    pdf = tmp_path / "licence.pdf"
    pdf.write_bytes(make_pdf())
    image = tmp_path / "seal.png"
    image.write_bytes(seal_image())
    code = _cli(
        "seal",
        pdf,
        "--pdf",
        "--seal-key",
        files["key"],
        "--seal-cert",
        files["cert"],
        "--ecert",
        str(ECERT),
        "--verify-url",
        VERIFY_URL,
        "--image",
        image,
        "--at",
        "2026-03-02T10:00:00Z",
    )
    assert code == 0
    sealed = tmp_path / "licence.sealed.pdf"
    assert _verify(None, sealed.read_bytes()).indication is Indication.VALID


def test_record_json_is_what_the_cli_reads(files: dict[str, Path]) -> None:
    data = json.loads(files["dir"].read_text("utf-8"))
    assert SealRecord.from_json_dict(data["seals"][0]) == seal_world().record


# --- the DER reader never fails with anything but a report -------------------------------


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_seals_always_get_a_report(data: st.DataObject) -> None:
    good = _GOOD_SEAL
    position = data.draw(st.integers(0, len(good) - 1))
    value = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(position + 1, len(good)))
    mutated = good[:position] + bytes([value]) + good[position + 1 : cut]
    report = _verify(mutated)
    json.loads(report.to_json())
    if mutated != good and report.indication is Indication.VALID:
        # Only what the verifier deliberately ignores may change: version numbers, the
        # outer digest-algorithm list, and certificates that then fail to match the signer
        # (the published record supplies the right one). Never what the signature covers.
        assert cut == len(good)
        assert not any(start <= position < end for start, end in _COVERED)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_as_a_seal_get_a_report(blob: bytes) -> None:
    report = _verify(blob)
    assert report.indication is not Indication.VALID


def _covered_ranges(der: bytes) -> list[tuple[int, int]]:
    from asn1crypto import cms

    signed_data = cms.ContentInfo.load(der)["content"]
    info = signed_data["signer_infos"][0]
    base = der.rindex(info.dump())
    fields = ("sid", "digest_algorithm", "signed_attrs", "signature_algorithm", "signature")
    ranges = []
    for name in fields:
        part = info[name].dump()
        start = der.index(part, base)
        ranges.append((start, start + len(part)))
    encap = signed_data["encap_content_info"].dump()
    ranges.append((der.index(encap), der.index(encap) + len(encap)))
    return ranges


_GOOD_SEAL = _sealed()
_COVERED = _covered_ranges(_GOOD_SEAL)


def test_an_oversize_or_unreadable_seal_file(tmp_path: Path) -> None:
    report = _verify(b"\x30" * ((1 << 20) + 1))
    assert report.check("format").detail == (
        "the seal file is larger than 1048576 bytes; a seal is smaller"
    )
    world = seal_world()
    missing = seal_verification_result(
        DOCUMENT, seal=tmp_path / "none.p7s", roots=[world.root], seals=[], at=LATER
    )
    assert (missing.indication, missing.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.SIGNED_DATA_NOT_FOUND,
    )
    assert missing.check("format").detail.startswith("cannot read: [Errno 2]")
