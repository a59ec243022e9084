"""``tongban verify`` for the national format: a ``.ses`` beside its file, or a signed OFD.

The report is the same :class:`~tongban.keys.verification.SealVerificationReport` as for
CMS; only the verifier differs (:mod:`tongban.keys.gbt38540`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tongban.keys.gbt38540 import Gbt38540Verifier
from tongban.keys.seals import SealRecord
from tongban.keys.verification import SealVerificationReport

__all__ = ["is_national_format", "national_report"]


def is_national_format(document: Path, seal: Path | None) -> bool:
    """True for a GB/T 38540 signature (``--seal FILE.ses``) or an OFD document."""
    if seal is not None:
        return seal.suffix.lower() == ".ses"
    return document.suffix.lower() == ".ofd"


def national_report(
    document: Path,
    seal: Path | None,
    *,
    roots: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate],
    seals: Iterable[SealRecord],
    at: datetime,
) -> SealVerificationReport:
    """Verify a ``.ses`` with its document, or a signed OFD, against SM2 roots."""
    der = serialization.Encoding.DER
    verifier = Gbt38540Verifier(
        [r.public_bytes(der) for r in roots],
        seals,
        intermediates=[c.public_bytes(der) for c in intermediates],
    )
    if seal is None:
        return verifier.ofd_result(document, at=at)
    return verifier.result(document, signature=seal, at=at)
