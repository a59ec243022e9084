"""Verify a sealed document offline, as a bank or an employer would.

The verification itself lives in :mod:`tongban.keys.verification` (pure cryptography, so the
node's online verification service runs the very same code); this is its public face for
third parties, who need only ``tongban.client`` and ``tongban.keys``. National-format seals
(a GB/T 38540 ``.ses`` or a signed OFD) are verified by :class:`Gbt38540Verifier`, which
returns the same report.

Example:
    >>> from datetime import UTC, datetime
    >>> report = seal_verification_result(b"document", seal=b"not a seal", roots=[], seals=[],
    ...     at=datetime(2026, 1, 1, tzinfo=UTC))
    >>> report.indication.value, report.sub_indication.value
    ('INVALID', 'FORMAT_FAILURE')
"""

from __future__ import annotations

from tongban.keys.gbt38540 import Gbt38540Verifier, gbt38540_verification_result
from tongban.keys.verification import (
    CheckOutcome,
    CheckResult,
    Indication,
    OnlineStatusLookup,
    SealIdentity,
    SealIndeterminateError,
    SealInvalidError,
    SealVerificationError,
    SealVerificationReport,
    SealVerifier,
    SubIndication,
    seal_verification_result,
    verify_seal,
)

__all__ = [
    "CheckOutcome",
    "CheckResult",
    "Gbt38540Verifier",
    "Indication",
    "OnlineStatusLookup",
    "SealIdentity",
    "SealIndeterminateError",
    "SealInvalidError",
    "SealVerificationError",
    "SealVerificationReport",
    "SealVerifier",
    "SubIndication",
    "gbt38540_verification_result",
    "seal_verification_result",
    "verify_seal",
]
