"""Verify a sealed document offline, as a bank or an employer would.

Needs only the federation root certificate(s) and the published seal records; the signed
status list of the issuing node adds the e-certificate's current status. The report follows
ETSI EN 319 102-1: a bottom line VALID / INVALID / INDETERMINATE with a sub-indication, and
one result per check:

========================  ===================================================================
``format``                a detached CMS SignedData, or a PAdES signature in a PDF
``document_integrity``    the document's digest matches; a PDF was not changed afterwards
``signature``             the signature over the signed attributes verifies
``certificate_chain``     the seal certificate chains to a trusted root and is a seal's
``seal_registered``       the certificate is that of a seal in the published records
``key_validity``          certificates and seal valid, seal not revoked, when it was sealed
``ecert_identifier``      the e-certificate identifier is well formed (GB/T 36904)
``ecert_status``          the e-certificate is not revoked, cancelled or expired
========================  ===================================================================

A definite failure (INVALID) outranks a check that could not be decided (INDETERMINATE);
among equals the first check in the table decides.

The signing time is the one the signer wrote (CMS signing-time, or the PDF's /M): a claim,
not a proof (ADR 0006). A seal that claims a time at or after its key's revocation is
INVALID/REVOKED. One that claims an earlier time stays VALID after an orderly revocation
(superseded, cessationOfOperation, affiliationChanged), but not after a revocation that
says the key may have been in other hands (keyCompromise, caCompromise, or unspecified):
whoever holds a stolen key can write any signing time, so without a proof of the time the
seal is INDETERMINATE/REVOKED_NO_POE. A proven time (a trusted time stamp, once seals carry
one) decides before or after whatever the reason.

Example:
    >>> from datetime import UTC, datetime
    >>> report = seal_verification_result(b"document", seal=b"not a seal", roots=[], seals=[],
    ...     at=datetime(2026, 1, 1, tzinfo=UTC))
    >>> report.indication.value, report.sub_indication.value
    ('INVALID', 'FORMAT_FAILURE')
"""

from __future__ import annotations

from tongban.keys.verification._ecert import OnlineStatusLookup
from tongban.keys.verification._report import (
    CheckOutcome,
    CheckResult,
    Indication,
    SealIdentity,
    SealIndeterminateError,
    SealInvalidError,
    SealVerificationError,
    SealVerificationReport,
    SubIndication,
)
from tongban.keys.verification._verifier import (
    SealVerifier,
    seal_verification_result,
    verify_seal,
)

__all__ = [
    "CheckOutcome",
    "CheckResult",
    "Indication",
    "OnlineStatusLookup",
    "SealIdentity",
    "SealIndeterminateError",
    "SealInvalidError",
    "SealVerificationError",
    "SealVerificationReport",
    "SealVerifier",
    "SubIndication",
    "seal_verification_result",
    "verify_seal",
]
