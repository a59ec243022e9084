"""What a seal verification reports: indications, per-check results, the report and its errors.

Also the collector the checks write into (:class:`_Checks`), whose bottom line decides the
report's indication: a definite failure (INVALID) outranks a check that could not be decided
(INDETERMINATE); among equals the first check decides.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tongban.keys.clock import format_time
from tongban.keys.ecert import ECertStatus
from tongban.keys.errors import BadPeerData


class Indication(enum.StrEnum):
    """The bottom line of a verification (ETSI EN 319 102-1): valid, invalid or undecided."""

    VALID = "VALID"
    INVALID = "INVALID"
    INDETERMINATE = "INDETERMINATE"


class SubIndication(enum.StrEnum):
    """Why a seal is not VALID: ETSI EN 319 102-1 names, and three for e-certificates."""

    FORMAT_FAILURE = "FORMAT_FAILURE"
    HASH_FAILURE = "HASH_FAILURE"
    SIG_CRYPTO_FAILURE = "SIG_CRYPTO_FAILURE"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"
    NOT_YET_VALID = "NOT_YET_VALID"
    SIG_CONSTRAINTS_FAILURE = "SIG_CONSTRAINTS_FAILURE"
    CHAIN_CONSTRAINTS_FAILURE = "CHAIN_CONSTRAINTS_FAILURE"
    CRYPTO_CONSTRAINTS_FAILURE = "CRYPTO_CONSTRAINTS_FAILURE"
    NO_SIGNING_CERTIFICATE_FOUND = "NO_SIGNING_CERTIFICATE_FOUND"
    NO_CERTIFICATE_CHAIN_FOUND = "NO_CERTIFICATE_CHAIN_FOUND"
    OUT_OF_BOUNDS_NO_POE = "OUT_OF_BOUNDS_NO_POE"
    REVOKED_NO_POE = "REVOKED_NO_POE"
    NO_POE = "NO_POE"
    TRY_LATER = "TRY_LATER"
    SIGNED_DATA_NOT_FOUND = "SIGNED_DATA_NOT_FOUND"
    # Not ETSI: the seal is sound but the e-certificate it carries has lost its validity.
    ECERT_REVOKED = "ECERT_REVOKED"
    ECERT_CANCELLED = "ECERT_CANCELLED"
    ECERT_EXPIRED = "ECERT_EXPIRED"


class CheckOutcome(enum.StrEnum):
    """How one check of a verification came out."""

    PASSED = "passed"
    FAILED = "failed"
    INDETERMINATE = "indeterminate"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class CheckResult:
    """One check of a verification: its name, outcome and what it found, in words."""

    name: str
    outcome: CheckOutcome
    detail: str


@dataclass(frozen=True)
class SealIdentity:
    """Who sealed: from the certificate, and the registered seal when it is known."""

    seal_id: str
    node_id: str
    certificate_subject: str
    certificate_sha256: str
    seal_name: str | None = None
    org_uscc: str | None = None


@dataclass(frozen=True)
class SealVerificationReport:
    """The outcome of verifying one sealed document; plain data, ready to render."""

    indication: Indication
    sub_indication: SubIndication | None
    summary: str
    checks: tuple[CheckResult, ...]
    verified_at: datetime
    format: str = "unknown"
    signer: SealIdentity | None = None
    signing_time: datetime | None = None
    ecert_identifier: str | None = None
    ecert_status: ECertStatus | None = None

    @property
    def valid(self) -> bool:
        return self.indication is Indication.VALID

    def check(self, name: str) -> CheckResult:
        """The result of one check by name.

        Raises:
            KeyError: no such check.
        """
        for result in self.checks:
            if result.name == name:
                return result
        raise KeyError(name)

    def to_json_dict(self) -> dict[str, Any]:
        """The report as JSON values, as `tongban verify --json` prints it."""
        signer = self.signer
        return {
            "indication": self.indication.value,
            "sub_indication": self.sub_indication.value if self.sub_indication else None,
            "summary": self.summary,
            "format": self.format,
            "verified_at": format_time(self.verified_at),
            "signing_time": format_time(self.signing_time) if self.signing_time else None,
            "signer": None
            if signer is None
            else {
                "seal_id": signer.seal_id,
                "seal_name": signer.seal_name,
                "org_uscc": signer.org_uscc,
                "node_id": signer.node_id,
                "certificate_subject": signer.certificate_subject,
                "certificate_sha256": signer.certificate_sha256,
            },
            "ecert_identifier": self.ecert_identifier,
            "ecert_status": self.ecert_status.value if self.ecert_status else None,
            "checks": [
                {"name": c.name, "outcome": c.outcome.value, "detail": c.detail}
                for c in self.checks
            ],
        }

    def to_json(self) -> str:
        """The report as indented JSON text."""
        return json.dumps(self.to_json_dict(), ensure_ascii=False, indent=2)


class SealVerificationError(BadPeerData):
    """A sealed document did not verify; ``report`` says why."""

    code = "seal-not-valid"

    def __init__(self, report: SealVerificationReport) -> None:
        super().__init__(report.summary)
        self.report = report


class SealInvalidError(SealVerificationError):
    """The seal is INVALID: the document, the signature or the key's validity failed."""

    code = "seal-invalid"


class SealIndeterminateError(SealVerificationError):
    """The seal is INDETERMINATE: what is missing to decide is in the report."""

    code = "seal-indeterminate"


# --- internals of the package -------------------------------------------------------------


@dataclass
class _Checks:
    results: list[CheckResult] = field(default_factory=list)
    verdicts: list[tuple[Indication, SubIndication, str]] = field(default_factory=list)

    def passed(self, name: str, detail: str) -> None:
        self.results.append(CheckResult(name, CheckOutcome.PASSED, detail))

    def skipped(self, name: str, detail: str) -> None:
        self.results.append(CheckResult(name, CheckOutcome.SKIPPED, detail))

    def failed(self, name: str, sub: SubIndication, detail: str) -> None:
        self.results.append(CheckResult(name, CheckOutcome.FAILED, detail))
        self.verdicts.append((Indication.INVALID, sub, detail))

    def undecided(self, name: str, sub: SubIndication, detail: str) -> None:
        self.results.append(CheckResult(name, CheckOutcome.INDETERMINATE, detail))
        self.verdicts.append((Indication.INDETERMINATE, sub, detail))

    def bottom_line(self) -> tuple[Indication, SubIndication | None, str]:
        for wanted in (Indication.INVALID, Indication.INDETERMINATE):
            for indication, sub, detail in self.verdicts:
                if indication is wanted:
                    return indication, sub, detail
        return Indication.VALID, None, ""


@dataclass
class _Context:
    at: datetime
    format: str = "unknown"
    signer: SealIdentity | None = None
    signing_time: datetime | None = None  # claimed by the sealer
    # Proven by a trusted time stamp over the signature; set once time stamps are read
    # (ADR 0006), None until then.
    proven_time: datetime | None = None
    identifier: str | None = None
    ecert_status: ECertStatus | None = None


def _report_of(checks: _Checks, context: _Context) -> SealVerificationReport:
    indication, sub, detail = checks.bottom_line()
    if indication is Indication.VALID:
        summary = _valid_summary(context)
    else:
        summary = f"{indication.value} ({sub.value if sub else ''}): {detail}"
    return SealVerificationReport(
        indication=indication,
        sub_indication=sub,
        summary=summary,
        checks=tuple(checks.results),
        verified_at=context.at,
        format=context.format,
        signer=context.signer,
        signing_time=context.signing_time,
        ecert_identifier=context.identifier,
        ecert_status=context.ecert_status,
    )


def _valid_summary(context: _Context) -> str:
    signer = context.signer
    who = (
        f"{signer.seal_name} ({signer.seal_id}) of {signer.org_uscc}"
        if signer is not None
        else "an unknown seal"
    )
    when = format_time(context.signing_time) if context.signing_time else "an unstated time"
    if context.identifier is None:
        ecert = "no e-certificate identifier"
    elif context.ecert_status is None:
        ecert = f"e-certificate {context.identifier}, current status not checked"
    else:
        ecert = f"e-certificate {context.identifier} is {context.ecert_status.value}"
    return f"VALID: sealed by {who} at {when}; {ecert}"
