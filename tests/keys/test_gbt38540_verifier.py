"""The GB/T 38540 verifier: one report, as for CMS, and a precise one for every bad input."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import gmssl_pyx
import pytest
from cryptography import x509

from tests.fixtures_gbt import NODE, NOW, SEAL_ID, SEAL_NAME, Sm2Pki, a_seal, seal_png, sm2_pki
from tongban.keys.gbt38540 import sign_document
from tongban.keys.gbt38540.structures import SesSeal, SesSignature
from tongban.keys.gbt38540.verifier import FORMAT_SES, Gbt38540Verifier
from tongban.keys.seals import SealRecord
from tongban.keys.signing import Sm2PrivateKeySigner
from tongban.keys.verification import CheckOutcome, Indication, SubIndication

DOCUMENT = b"%PDF-1.7 permit"
USCC = "11420700MB1539542A"


def _record(pki: Sm2Pki, **changes: object) -> SealRecord:
    values: dict[str, object] = {
        "seal_id": SEAL_ID,
        "name": SEAL_NAME,
        "org_uscc": USCC,
        "node_id": NODE,
        "certificate": x509.load_der_x509_certificate(pki.user),
        "image_sha256": hashlib.sha256(seal_png()).hexdigest(),
        "not_before": NOW - timedelta(days=1),
        "not_after": NOW + timedelta(days=365),
    }
    values.update(changes)
    return SealRecord(**values)  # type: ignore[arg-type]


def _verifier(pki: Sm2Pki | None = None, **changes: object) -> Gbt38540Verifier:
    pki = pki or sm2_pki()
    return Gbt38540Verifier([pki.root], [_record(pki, **changes)], intermediates=[pki.ca])


def _sign(document: bytes = DOCUMENT, *, seal: bytes | None = None, at=NOW) -> bytes:  # type: ignore[no-untyped-def]
    pki = sm2_pki()
    return sign_document(
        document,
        seal=seal or a_seal(),
        signer=pki.user_key,
        signer_certificate=pki.user,
        at=at,
        property_info="permit.pdf",
    )


def _outcomes(report) -> dict[str, CheckOutcome]:  # type: ignore[no-untyped-def]
    return {c.name: c.outcome for c in report.checks}


def test_a_good_signature_is_valid_with_every_check_passed(tmp_path: Path) -> None:
    (tmp_path / "permit.pdf.ses").write_bytes(_sign())
    report = _verifier().result(DOCUMENT, signature=tmp_path / "permit.pdf.ses", at=NOW)
    assert report.indication is Indication.VALID, report.summary
    assert report.format == FORMAT_SES
    assert report.summary == (
        f"VALID: sealed by {SEAL_NAME} ({SEAL_ID}) at 2026-03-02T09:30:00.000000Z; "
        "no e-certificate identifier"
    )
    assert _outcomes(report) == {
        "format": CheckOutcome.PASSED,
        "document_integrity": CheckOutcome.PASSED,
        "seal_signature": CheckOutcome.PASSED,
        "signature": CheckOutcome.PASSED,
        "seal_certificate_list": CheckOutcome.PASSED,
        "seal_window": CheckOutcome.PASSED,
        "certificate_chain": CheckOutcome.PASSED,
        "seal_registered": CheckOutcome.PASSED,
        "key_validity": CheckOutcome.PASSED,
        "ecert_identifier": CheckOutcome.SKIPPED,
    }
    assert report.signer is not None and report.signer.org_uscc == USCC
    assert report.signing_time == NOW


@pytest.mark.parametrize(
    ("der", "detail"),
    [
        (b"", "not a DER SES_Signature: "),
        (b"garbage", "not a DER SES_Signature: "),
        (b"\x30\x05\x30\x03\x02\x01\x01", "an SES_Signature of version 1 (GM/T 0031-2014) is not"),
    ],
)
def test_garbage_is_a_format_failure(der: bytes, detail: str) -> None:
    report = _verifier().result(DOCUMENT, signature=der, at=NOW)
    assert (report.indication, report.sub_indication) == (
        Indication.INVALID,
        SubIndication.FORMAT_FAILURE,
    )
    assert report.check("format").detail.startswith(detail)
    assert [c.name for c in report.checks] == ["format"]


def test_truncated_signature_is_a_format_failure() -> None:
    der = _sign()
    report = _verifier().result(DOCUMENT, signature=der[:-5], at=NOW)
    assert report.sub_indication is SubIndication.FORMAT_FAILURE
    assert report.summary.startswith("INVALID (FORMAT_FAILURE): not a DER SES_Signature: ")


def test_changed_document_is_a_hash_failure() -> None:
    report = _verifier().result(DOCUMENT + b"!", signature=_sign(), at=NOW)
    assert (report.indication, report.sub_indication) == (
        Indication.INVALID,
        SubIndication.HASH_FAILURE,
    )
    assert report.check("document_integrity").detail.endswith(
        "does not match the signed dataHash: the data was changed after signing, or the "
        "signature belongs to other data"
    )
    assert report.check("signature").outcome is CheckOutcome.PASSED


def test_bad_seal_maker_signature() -> None:
    parsed = SesSignature.load(_sign())
    seal = parsed["to_sign"]["eseal"]
    value = bytearray(seal["signed_value"].native)
    value[-3] ^= 1
    seal["signed_value"] = bytes(value)
    pki = sm2_pki()
    # Re-sign TBS_Sign so only the maker's signature is wrong.
    parsed["signature"] = pki.user_key.sign(parsed["to_sign"].dump(force=True))
    report = _verifier().result(DOCUMENT, signature=parsed.dump(force=True), at=NOW)
    assert (report.indication, report.sub_indication) == (
        Indication.INVALID,
        SubIndication.SIG_CRYPTO_FAILURE,
    )
    assert report.check("seal_signature").outcome is CheckOutcome.FAILED
    assert report.check("signature").outcome is CheckOutcome.PASSED
    assert report.summary == (
        "INVALID (SIG_CRYPTO_FAILURE): the seal maker's SM2 signature does not verify with its "
        "certificate's key and the standard user id 1234567812345678"
    )


def test_signature_made_with_another_user_id_does_not_verify() -> None:
    pki = sm2_pki()
    parsed = SesSignature.load(_sign())
    from tests.keys.test_gbt38540_sealing import _point, _private_of

    parsed["signature"] = gmssl_pyx.sm2_sign(
        _private_of(pki.user_key), _point(pki.user), parsed["to_sign"].dump(), b"0000000000000000"
    )
    report = _verifier().result(DOCUMENT, signature=parsed.dump(force=True), at=NOW)
    assert report.sub_indication is SubIndication.SIG_CRYPTO_FAILURE
    assert report.check("signature").detail == (
        "the signer's SM2 signature does not verify with its certificate's key and the "
        "standard user id 1234567812345678"
    )
    assert report.check("seal_signature").outcome is CheckOutcome.PASSED


def test_signer_certificate_not_in_the_seals_list() -> None:
    pki = sm2_pki()
    stranger_key = Sm2PrivateKeySigner.generate()
    stranger = pki.issue(stranger_key, "stranger", serial=77)
    parsed = SesSignature.load(_sign())
    parsed["cert"] = stranger
    parsed["signature"] = stranger_key.sign(parsed["to_sign"].dump())
    report = _verifier().result(DOCUMENT, signature=parsed.dump(force=True), at=NOW)
    assert (report.indication, report.sub_indication) == (
        Indication.INVALID,
        SubIndication.SIG_CONSTRAINTS_FAILURE,
    )
    assert report.check("seal_certificate_list").detail == (
        "the signer's certificate is not among the 1 certificate(s) the seal allows"
    )
    assert report.check("signature").outcome is CheckOutcome.PASSED


def test_signature_outside_the_seal_window() -> None:
    pki = sm2_pki()
    parsed = SesSignature.load(_sign())
    late = NOW + timedelta(days=500)
    from asn1crypto import core

    parsed["to_sign"]["time_info"] = core.GeneralizedTime(late)
    parsed["signature"] = pki.user_key.sign(parsed["to_sign"].dump(force=True))
    report = _verifier(not_after=NOW + timedelta(days=900)).result(
        DOCUMENT, signature=parsed.dump(force=True), at=late + timedelta(days=1)
    )
    assert (report.indication, report.sub_indication) == (
        Indication.INVALID,
        SubIndication.EXPIRED,
    )
    assert report.check("seal_window").detail == (
        "signed at 2027-07-15T09:30:00.000000Z, outside the seal's window "
        "2026-03-01T09:30:00.000000Z .. 2027-03-02T09:30:00.000000Z"
    )


def test_unknown_root_is_indeterminate_and_unregistered_seal_too() -> None:
    other = Sm2PrivateKeySigner.generate()
    from tongban.keys.gbt38540 import Sm2Role, issue_sm2_certificate

    foreign_root = issue_sm2_certificate(
        issuer=other,
        issuer_certificate=None,
        subject={"common_name": "foreign"},
        public_key_der=other.public_key_der,
        serial=1,
        not_before=NOW - timedelta(days=1),
        not_after=NOW + timedelta(days=1),
        role=Sm2Role.ROOT,
    )
    report = Gbt38540Verifier([foreign_root], []).result(DOCUMENT, signature=_sign(), at=NOW)
    assert report.indication is Indication.INDETERMINATE
    assert report.sub_indication is SubIndication.NO_CERTIFICATE_CHAIN_FOUND
    assert "is not a known SM2 CA" in report.check("certificate_chain").detail
    assert report.check("seal_registered").outcome is CheckOutcome.INDETERMINATE


def test_revoked_seal_is_invalid_at_and_after_revocation() -> None:
    pki = sm2_pki()
    revoked = _record(pki).revoked(NOW - timedelta(hours=1), "keyCompromise")
    verifier = Gbt38540Verifier([pki.root], [revoked], intermediates=[pki.ca])
    report = verifier.result(DOCUMENT, signature=_sign(), at=NOW)
    assert report.sub_indication is SubIndication.REVOKED
    assert report.check("key_validity").detail.startswith(
        f"seal {SEAL_ID} was revoked at 2026-03-02T08:30:00.000000Z"
    )


@pytest.mark.parametrize(
    ("reason", "outcome", "sub"),
    [
        ("keyCompromise", CheckOutcome.INDETERMINATE, SubIndication.REVOKED_NO_POE),
        ("unspecified", CheckOutcome.INDETERMINATE, SubIndication.REVOKED_NO_POE),
        ("superseded", CheckOutcome.PASSED, None),
    ],
)
def test_signature_claimed_before_a_revocation(
    reason: str, outcome: CheckOutcome, sub: SubIndication | None
) -> None:
    """ADR 0006: a claimed time before a compromise proves nothing; before an orderly
    retirement it is believed."""
    pki = sm2_pki()
    revoked = _record(pki).revoked(NOW + timedelta(hours=1), reason)
    verifier = Gbt38540Verifier([pki.root], [revoked], intermediates=[pki.ca])
    report = verifier.result(DOCUMENT, signature=_sign(), at=NOW + timedelta(days=1))
    assert report.check("key_validity").outcome is outcome
    assert report.sub_indication is sub


def _signed_at(moment, *, seal: bytes | None = None) -> bytes:  # type: ignore[no-untyped-def]
    """A signature claiming ``moment``, re-signed by the seal user (sign_document refuses
    times outside the seal's window; a forger's tool would not)."""
    from asn1crypto import core

    pki = sm2_pki()
    parsed = SesSignature.load(_sign(seal=seal))
    parsed["to_sign"]["time_info"] = core.GeneralizedTime(moment)
    parsed["signature"] = pki.user_key.sign(parsed["to_sign"].dump(force=True))
    return bytes(parsed.dump(force=True))


@pytest.mark.parametrize(
    ("offset", "outcome", "sub"),
    [
        (timedelta(0), CheckOutcome.PASSED, None),
        (timedelta(days=2), CheckOutcome.PASSED, None),
        (-timedelta(seconds=1), CheckOutcome.FAILED, SubIndication.NOT_YET_VALID),
        (timedelta(days=2, seconds=1), CheckOutcome.FAILED, SubIndication.EXPIRED),
    ],
)
def test_seal_window_bounds_are_inclusive(
    offset: timedelta, outcome: CheckOutcome, sub: SubIndication | None
) -> None:
    seal = a_seal(start=NOW, end=NOW + timedelta(days=2))
    moment = NOW + offset
    report = _verifier(
        not_before=NOW - timedelta(days=9), not_after=NOW + timedelta(days=9)
    ).result(DOCUMENT, signature=_signed_at(moment, seal=seal), at=NOW + timedelta(days=5))
    assert report.check("seal_window").outcome is outcome
    assert report.sub_indication is sub


@pytest.mark.parametrize(
    ("record_changes", "sub", "detail"),
    [
        (
            {"not_before": NOW + timedelta(seconds=1)},
            SubIndication.NOT_YET_VALID,
            "is registered for",
        ),
        ({"not_after": NOW - timedelta(seconds=1)}, SubIndication.EXPIRED, "is registered for"),
        ({"not_before": NOW, "not_after": NOW}, None, "seal registered and not revoked at"),
    ],
)
def test_registered_window_decides_key_validity(
    record_changes: dict[str, object], sub: SubIndication | None, detail: str
) -> None:
    report = _verifier(**record_changes).result(DOCUMENT, signature=_sign(), at=NOW)
    assert report.sub_indication is sub
    assert detail in report.check("key_validity").detail


def test_signed_exactly_at_revocation_is_revoked_and_after_verification_is_no_poe() -> None:
    pki = sm2_pki()
    revoked = _record(pki).revoked(NOW, "superseded")
    verifier = Gbt38540Verifier([pki.root], [revoked], intermediates=[pki.ca])
    assert verifier.result(DOCUMENT, signature=_sign(), at=NOW).sub_indication is (
        SubIndication.REVOKED
    )
    future = _verifier().result(DOCUMENT, signature=_sign(), at=NOW - timedelta(seconds=1))
    assert future.sub_indication is SubIndication.NO_POE
    assert future.check("key_validity").detail.startswith(
        "signed at 2026-03-02T09:30:00.000000Z, after"
    )


def test_compromise_revoked_after_verification_time_is_not_held_against_the_seal() -> None:
    pki = sm2_pki()
    revoked = _record(pki).revoked(NOW + timedelta(hours=2), "keyCompromise")
    verifier = Gbt38540Verifier([pki.root], [revoked], intermediates=[pki.ca])
    report = verifier.result(DOCUMENT, signature=_sign(), at=NOW + timedelta(hours=1))
    assert report.indication is Indication.VALID, report.summary


def test_an_invalid_check_outranks_an_earlier_indeterminate_one() -> None:
    """Chain undecided (unknown root), then key_validity failed: the bottom line is INVALID."""
    pki = sm2_pki()
    revoked = _record(pki).revoked(NOW - timedelta(hours=1), "superseded")
    report = Gbt38540Verifier([], [revoked]).result(DOCUMENT, signature=_sign(), at=NOW)
    assert report.check("certificate_chain").outcome is CheckOutcome.INDETERMINATE
    assert (report.indication, report.sub_indication) == (Indication.INVALID, SubIndication.REVOKED)


def test_other_signature_algorithm_is_not_accepted() -> None:
    parsed = SesSignature.load(_sign())
    parsed["signature_algorithm"] = "1.2.840.10045.4.3.2"  # ecdsa-with-SHA256
    report = _verifier().result(DOCUMENT, signature=parsed.dump(force=True), at=NOW)
    assert report.check("signature").outcome is CheckOutcome.INDETERMINATE
    assert report.check("signature").detail == (
        "the signer's signature algorithm 1.2.840.10045.4.3.2 is not SM2 with SM3"
    )
    assert report.sub_indication is SubIndication.CRYPTO_CONSTRAINTS_FAILURE


def test_unreadable_seal_maker_certificate() -> None:
    pki = sm2_pki()
    parsed = SesSignature.load(_sign())
    parsed["to_sign"]["eseal"]["cert"] = b"not a certificate"
    parsed["signature"] = pki.user_key.sign(parsed["to_sign"].dump(force=True))
    report = _verifier().result(DOCUMENT, signature=parsed.dump(force=True), at=NOW)
    assert report.check("seal_signature").detail == "the seal maker's certificate is unreadable"
    assert report.check("certificate_chain").outcome is CheckOutcome.SKIPPED
    assert report.sub_indication is SubIndication.FORMAT_FAILURE


def _digest_listed_seal(algorithm: str, digest: bytes) -> bytes:
    """A seal that names its user by certificate digest (certListType 2), maker-signed."""
    from tongban.keys.gbt38540.structures import CertDigestList, SesSeal

    pki = sm2_pki()
    seal = SesSeal.load(a_seal())
    prop = seal["e_seal_info"]["property"]
    prop["cert_list_type"] = 2
    prop["cert_list"] = CertDigestList([{"type": algorithm, "value": digest}])
    seal["signed_value"] = pki.maker_key.sign(seal["e_seal_info"].dump(force=True))
    return bytes(seal.dump(force=True))


@pytest.mark.parametrize("algorithm", ["SM3", "sha256", "1.2.156.10197.1.401"])
def test_seal_listing_the_signer_by_digest(algorithm: str) -> None:
    from cryptography.hazmat.primitives import hashes

    pki = sm2_pki()
    if algorithm == "sha256":
        value = hashlib.sha256(pki.user).digest()
    else:
        h = hashes.Hash(hashes.SM3())
        h.update(pki.user)
        value = h.finalize()

    parsed = SesSignature.load(_sign())
    parsed["to_sign"]["eseal"] = SesSeal.load(_digest_listed_seal(algorithm, value))
    parsed["signature"] = pki.user_key.sign(parsed["to_sign"].dump(force=True))
    report = _verifier().result(DOCUMENT, signature=parsed.dump(force=True), at=NOW)
    assert report.indication is Indication.VALID, report.summary
    wrong = SesSignature.load(_sign())
    wrong["to_sign"]["eseal"] = SesSeal.load(_digest_listed_seal(algorithm, bytes(32)))
    wrong["signature"] = pki.user_key.sign(wrong["to_sign"].dump(force=True))
    report = _verifier().result(DOCUMENT, signature=wrong.dump(force=True), at=NOW)
    assert report.check("seal_certificate_list").detail == (
        "the signer's certificate is not among the 1 certificate(s) the seal allows"
    )


def test_seal_listing_by_an_unknown_digest_algorithm_does_not_admit_the_signer() -> None:
    pki = sm2_pki()
    parsed = SesSignature.load(_sign())
    parsed["to_sign"]["eseal"] = SesSeal.load(
        _digest_listed_seal("md5", hashlib.md5(pki.user).digest())
    )
    parsed["signature"] = pki.user_key.sign(parsed["to_sign"].dump(force=True))
    report = _verifier().result(DOCUMENT, signature=parsed.dump(force=True), at=NOW)
    assert report.check("seal_certificate_list").outcome is CheckOutcome.FAILED
