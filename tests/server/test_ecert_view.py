"""The report over an e-certificate's records: which check decides the bottom line."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.fixtures_seal import NOW, SEAL_FROM, SEAL_UNTIL, seal_world
from tongban.keys.ecert import ECertStatus, ECertStatusEntry
from tongban.keys.seals import RevocationReason
from tongban.keys.verification import CheckOutcome, Indication, SubIndication
from tongban.server.web.ecert_view import (
    issued_checks,
    record_report,
    skipped,
    status_check,
    undecided,
)

ID = "1.2.156.3005.2.LICENCE.91350100M000100Y43.000000000001.001.V"


def _status(status: ECertStatus = ECertStatus.VALID, reason: str = "") -> ECertStatusEntry:
    return ECertStatusEntry(ID, status, NOW, reason)


def _report(issued_at=NOW, seal=..., status=None):  # type: ignore[no-untyped-def]
    record = seal_world().record if seal is ... else seal
    status = status or _status()
    checks = [
        *issued_checks(node_id="420100", issued_at=issued_at, seal=record),
        status_check(status, "the records of node 420100"),
    ]
    return record_report(ID, checks, at=NOW + timedelta(days=1), seal=record, status=status)


def test_a_recorded_valid_ecertificate_is_valid() -> None:
    report = _report()
    assert (report.indication, report.sub_indication) == (Indication.VALID, None)
    assert report.summary == f"VALID: e-certificate {ID} is on record and valid"
    assert [c.name for c in report.checks] == [
        "ecert_identifier",
        "ecert_issued",
        "seal_registered",
        "key_validity",
        "ecert_status",
    ]
    assert all(c.outcome is CheckOutcome.PASSED for c in report.checks)
    assert report.ecert_status is ECertStatus.VALID and report.ecert_identifier == ID
    assert report.format == "ecert-record"
    assert report.signer is not None and report.signer.seal_name == seal_world().record.name
    assert report.signer.certificate_sha256 == seal_world().record.certificate_fingerprint


@pytest.mark.parametrize(
    ("status", "sub"),
    [
        (ECertStatus.REVOKED, SubIndication.ECERT_REVOKED),
        (ECertStatus.CANCELLED, SubIndication.ECERT_CANCELLED),
        (ECertStatus.EXPIRED, SubIndication.ECERT_EXPIRED),
    ],
)
def test_a_changed_status_makes_it_invalid(status: ECertStatus, sub: SubIndication) -> None:
    report = _report(status=_status(status, "依法吊销"))
    assert (report.indication, report.sub_indication) == (Indication.INVALID, sub)
    assert report.check("ecert_status").outcome is CheckOutcome.FAILED
    assert report.check("ecert_status").detail == (
        f"{status.value} since 2026-03-02T09:30:00.000000Z according to the records of node 420100: 依法吊销"
    )
    assert report.ecert_status is status
    assert report.summary.startswith("INVALID: ")


def test_an_unregistered_seal_is_invalid() -> None:
    report = _report(seal=None)
    assert (report.indication, report.sub_indication) == (
        Indication.INVALID,
        SubIndication.NO_SIGNING_CERTIFICATE_FOUND,
    )
    assert [c.name for c in report.checks] == [
        "ecert_identifier",
        "ecert_issued",
        "seal_registered",
        "ecert_status",
    ]
    assert report.signer is None


def test_a_seal_revoked_before_issue_is_invalid_even_if_the_status_is_valid() -> None:
    revoked = seal_world().record.revoked(
        NOW - timedelta(hours=1), RevocationReason.KEY_COMPROMISE, ""
    )
    report = _report(seal=revoked)
    assert (report.indication, report.sub_indication) == (Indication.INVALID, SubIndication.REVOKED)
    assert report.check("key_validity").detail == "the seal was revoked before sealing"
    # At the very time of revocation the seal is no longer valid either.
    at_revocation = seal_world().record.revoked(NOW, RevocationReason.KEY_COMPROMISE, "")
    assert _report(seal=at_revocation).sub_indication is SubIndication.REVOKED
    # Revoked after the issue: the record stands.
    later = seal_world().record.revoked(
        NOW + timedelta(seconds=1), RevocationReason.KEY_COMPROMISE, ""
    )
    assert _report(seal=later).indication is Indication.VALID


@pytest.mark.parametrize(
    "issued_at", [SEAL_FROM - timedelta(seconds=1), SEAL_UNTIL + timedelta(seconds=1)]
)
def test_issued_outside_the_seal_window_is_invalid(issued_at) -> None:  # type: ignore[no-untyped-def]
    report = _report(issued_at=issued_at)
    assert (report.indication, report.sub_indication) == (
        Indication.INVALID,
        SubIndication.OUT_OF_BOUNDS_NO_POE,
    )
    assert report.check("key_validity").detail == (
        "the document was sealed outside the seal's validity window"
    )


def test_a_definite_failure_outranks_an_undecided_check_and_the_first_failure_decides() -> None:
    undecided_first = [
        undecided("ecert_issued", SubIndication.SIGNED_DATA_NOT_FOUND, "offline"),
        status_check(_status(ECertStatus.REVOKED, "x"), "the list"),
    ]
    report = record_report(ID, undecided_first, at=NOW, seal=None, status=None)
    assert (report.indication, report.sub_indication) == (
        Indication.INVALID,
        SubIndication.ECERT_REVOKED,
    )
    only_undecided = [
        undecided("ecert_issued", SubIndication.SIGNED_DATA_NOT_FOUND, "offline"),
        skipped("ecert_status", "no change recorded"),
    ]
    report = record_report(ID, only_undecided, at=NOW, seal=None, status=None)
    assert (report.indication, report.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.SIGNED_DATA_NOT_FOUND,
    )
    assert report.summary == "INDETERMINATE: offline"
    assert report.ecert_status is None
    skipped_only = record_report(ID, [skipped("ecert_status", "x")], at=NOW, seal=None, status=None)
    assert skipped_only.indication is Indication.VALID  # skipped checks decide nothing
    two_failures = [
        *issued_checks(node_id="420100", issued_at=NOW, seal=None),
        status_check(_status(ECertStatus.EXPIRED), "the list"),
    ]
    first = record_report(ID, two_failures, at=NOW, seal=None, status=None)
    assert first.sub_indication is SubIndication.NO_SIGNING_CERTIFICATE_FOUND


def test_reports_and_views_are_frozen() -> None:
    import dataclasses

    from tongban.server.web.ecert_view import ECertView, RecordCheck

    check = status_check(_status(), "the list")
    with pytest.raises(dataclasses.FrozenInstanceError):
        check.sub_indication = SubIndication.HASH_FAILURE  # type: ignore[misc]
    view = ECertView(ID, "LICENCE", "91350100M000100Y43", _report(), "records")
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.document_name = "other"  # type: ignore[misc]
    assert isinstance(check, RecordCheck)
