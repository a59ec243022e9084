"""What the page for one e-certificate identifier shows, and the report it rests on.

A QR code carries only the identifier, not the document: the checks here are of the
issuer's records (issued, by a registered seal valid at the time, status now), in the same
report shape the document verifier produces. Whether a copy in hand is unaltered is
answered by uploading it, which runs the full verification.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tongban.keys.clock import format_time
from tongban.keys.ecert import ECertStatus, ECertStatusEntry
from tongban.keys.seals import SealRecord
from tongban.keys.verification import (
    CheckOutcome,
    CheckResult,
    Indication,
    SealIdentity,
    SealVerificationReport,
    SubIndication,
)

__all__ = ["ECertView", "RecordCheck", "record_report"]

_STATUS_SUB = {
    ECertStatus.REVOKED: SubIndication.ECERT_REVOKED,
    ECertStatus.CANCELLED: SubIndication.ECERT_CANCELLED,
    ECertStatus.EXPIRED: SubIndication.ECERT_EXPIRED,
}


@dataclass(frozen=True)
class RecordCheck:
    """One check of the records, and the sub-indication it gives when it does not pass."""

    result: CheckResult
    sub_indication: SubIndication | None = None


@dataclass(frozen=True)
class ECertView:
    """Everything the page for one identifier shows."""

    identifier: str
    type_code: str
    issuer_uscc: str
    report: SealVerificationReport
    source: str
    document_name: str | None = None
    document_sha256: str | None = None
    issued_at: datetime | None = None
    status: ECertStatusEntry | None = None
    seal: SealRecord | None = None
    note: str = ""  # shown under the bottom line instead of the reason, when set


def passed(name: str, detail: str) -> RecordCheck:
    return RecordCheck(CheckResult(name, CheckOutcome.PASSED, detail))


def failed(name: str, sub: SubIndication, detail: str) -> RecordCheck:
    return RecordCheck(CheckResult(name, CheckOutcome.FAILED, detail), sub)


def undecided(name: str, sub: SubIndication, detail: str) -> RecordCheck:
    return RecordCheck(CheckResult(name, CheckOutcome.INDETERMINATE, detail), sub)


def skipped(name: str, detail: str) -> RecordCheck:
    return RecordCheck(CheckResult(name, CheckOutcome.SKIPPED, detail))


def status_check(status: ECertStatusEntry, source: str) -> RecordCheck:
    """The e-certificate's current status as a check: passed only while it is valid."""
    if status.status is ECertStatus.VALID:
        return passed("ecert_status", f"valid according to {source}")
    when = format_time(status.changed_at)
    return failed(
        "ecert_status",
        _STATUS_SUB[status.status],
        f"{status.status.value} since {when} according to {source}: {status.reason}",
    )


def issued_checks(
    *, node_id: str, issued_at: datetime, seal: SealRecord | None
) -> list[RecordCheck]:
    """The issuer recorded this e-certificate, sealed with a registered seal valid then."""
    checks = [passed("ecert_issued", f"issued by node {node_id} at {format_time(issued_at)}")]
    if seal is None:
        checks.append(
            failed(
                "seal_registered",
                SubIndication.NO_SIGNING_CERTIFICATE_FOUND,
                "the seal it was issued with is not registered at the issuing node",
            )
        )
        return checks
    checks.append(
        passed("seal_registered", f"seal {seal.seal_id} ({seal.name}) of {seal.org_uscc}")
    )
    if seal.valid_at(issued_at):
        checks.append(passed("key_validity", "the seal was valid when the document was sealed"))
    elif seal.revoked_at is not None and seal.revoked_at <= issued_at:
        checks.append(
            failed("key_validity", SubIndication.REVOKED, "the seal was revoked before sealing")
        )
    else:
        checks.append(
            failed(
                "key_validity",
                SubIndication.OUT_OF_BOUNDS_NO_POE,
                "the document was sealed outside the seal's validity window",
            )
        )
    return checks


def record_report(
    identifier: str,
    checks: list[RecordCheck],
    *,
    at: datetime,
    seal: SealRecord | None,
    status: ECertStatusEntry | None,
) -> SealVerificationReport:
    """The report over the record checks: a definite failure first, then an undecided one."""
    all_checks = [
        passed("ecert_identifier", "well formed (GB/T 36904), check character matches"),
        *checks,
    ]
    failure = next((c for c in all_checks if c.result.outcome is CheckOutcome.FAILED), None)
    open_ = next((c for c in all_checks if c.result.outcome is CheckOutcome.INDETERMINATE), None)
    if failure is not None:
        indication, sub = Indication.INVALID, failure.sub_indication
        summary = f"INVALID: {failure.result.detail}"
    elif open_ is not None:
        indication, sub = Indication.INDETERMINATE, open_.sub_indication
        summary = f"INDETERMINATE: {open_.result.detail}"
    else:
        indication, sub = Indication.VALID, None
        summary = f"VALID: e-certificate {identifier} is on record and valid"
    signer = None
    if seal is not None:
        signer = SealIdentity(
            seal_id=seal.seal_id,
            node_id=seal.node_id,
            certificate_subject=seal.certificate.subject.rfc4514_string(),
            certificate_sha256=seal.certificate_fingerprint,
            seal_name=seal.name,
            org_uscc=seal.org_uscc,
        )
    return SealVerificationReport(
        indication=indication,
        sub_indication=sub,
        summary=summary,
        checks=tuple(c.result for c in all_checks),
        verified_at=at,
        format="ecert-record",
        signer=signer,
        ecert_identifier=identifier,
        ecert_status=status.status if status is not None else None,
    )
