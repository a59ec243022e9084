"""The seal verifier: reads a detached seal or a sealed PDF and runs the checks in order.

:class:`SealVerifier` holds what does not change between documents (the trusted roots, the
published seal records, the status sources, the remembered certificate paths);
:func:`seal_verification_result` and :func:`verify_seal` are the one-document shortcuts.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from cryptography import x509

from tongban.keys.clock import require_aware
from tongban.keys.envelope import Envelope
from tongban.keys.errors import CallerError
from tongban.keys.pki import CertificatePublicKey
from tongban.keys.seals import DocumentSource, SealRecord
from tongban.keys.verification._checks import (
    _DIGESTS,
    _check_chain,
    _check_key_validity,
    _check_registered,
    _check_signature,
)
from tongban.keys.verification._der import _FormatError, _parse_signed_data, _read_seal, _Signed
from tongban.keys.verification._ecert import OnlineStatusLookup, _check_ecert, _StatusSource
from tongban.keys.verification._paths import _CertFacts, _CertificatePaths, _der
from tongban.keys.verification._report import (
    Indication,
    SealIndeterminateError,
    SealInvalidError,
    SealVerificationReport,
    SubIndication,
    _Checks,
    _Context,
    _report_of,
)

_CHUNK = 1 << 20


class SealVerifier:
    """Verifies sealed documents against fixed roots and seal records.

    Reuse one verifier for many documents: certificate paths are built once per seal
    certificate and remembered.

    Raises:
        CallerError: a status list without the key to check it (on construction).
    """

    def __init__(
        self,
        roots: Sequence[x509.Certificate],
        seals: Iterable[SealRecord],
        *,
        status_list: Envelope | None = None,
        status_keys: CertificatePublicKey | Mapping[str, CertificatePublicKey] | None = None,
        status_max_age: timedelta | None = timedelta(days=1),
        online_status: OnlineStatusLookup | None = None,
    ) -> None:
        if status_list is not None and status_keys is None:
            raise CallerError("a status list is checked with its node's key; none was given")
        self._records = tuple(seals)
        self._by_fingerprint = {r.certificate_fingerprint: r for r in self._records}
        self._status = (
            _StatusSource(status_list, status_keys, status_max_age)
            if status_list is not None and status_keys is not None
            else None
        )
        self._online = online_status
        self._paths = _CertificatePaths(roots)
        self._record_facts = tuple(self._paths.facts_of(_der(r.certificate)) for r in self._records)

    # -- public --------------------------------------------------------------------------

    def result(
        self,
        document: DocumentSource,
        *,
        seal: Path | bytes | BinaryIO | None = None,
        at: datetime,
    ) -> SealVerificationReport:
        """Verify ``document`` with its detached ``seal`` (``.p7s``), or as a sealed PDF.

        Never raises for bad input: every problem is in the report.

        Raises:
            CallerError: ``at`` is naive.
        """
        at = require_aware(at, "at")
        checks = _Checks()
        context = _Context(at=at)
        try:
            if seal is not None:
                context.format = "cms-detached"
                self._verify_detached(document, seal, checks, context)
            else:
                context.format = "pades"
                self._verify_pdf(document, checks, context)
        except _FormatError as exc:
            checks.failed("format", SubIndication.FORMAT_FAILURE, str(exc))
        except OSError as exc:
            checks.undecided("format", SubIndication.SIGNED_DATA_NOT_FOUND, f"cannot read: {exc}")
        except Exception as exc:  # the promise is a report, whatever the input does
            checks.undecided(
                "verification",
                SubIndication.FORMAT_FAILURE,
                f"unexpected error while verifying: {type(exc).__name__}: {exc}",
            )
        return _report_of(checks, context)

    def verify(
        self,
        document: DocumentSource,
        *,
        seal: Path | bytes | BinaryIO | None = None,
        at: datetime,
    ) -> SealVerificationReport:
        """Like :meth:`result`, but raise unless the bottom line is VALID.

        Raises:
            SealInvalidError: INVALID.
            SealIndeterminateError: INDETERMINATE.
            CallerError: ``at`` is naive.
        """
        report = self.result(document, seal=seal, at=at)
        if report.indication is Indication.INVALID:
            raise SealInvalidError(report)
        if report.indication is Indication.INDETERMINATE:
            raise SealIndeterminateError(report)
        return report

    # -- the two containers ----------------------------------------------------------------

    def _verify_detached(
        self,
        document: DocumentSource,
        seal: Path | bytes | BinaryIO,
        checks: _Checks,
        context: _Context,
    ) -> None:
        signed = _parse_signed_data(_read_seal(seal), "the seal file")
        context.signing_time = signed.signing_time
        checks.passed("format", "detached CMS SignedData (RFC 5652) with one signer")
        if signed.digest_algorithm not in _DIGESTS:
            checks.undecided(
                "document_integrity",
                SubIndication.CRYPTO_CONSTRAINTS_FAILURE,
                f"digest algorithm {signed.digest_algorithm} is not accepted",
            )
        else:
            actual = _digest(document, signed.digest_algorithm)
            if actual == signed.message_digest:
                checks.passed(
                    "document_integrity",
                    f"{signed.digest_algorithm.upper()} of the document matches the sealed digest",
                )
            else:
                checks.failed(
                    "document_integrity",
                    SubIndication.HASH_FAILURE,
                    f"the document's {signed.digest_algorithm.upper()} {actual.hex()[:16]}… "
                    "does not match the sealed digest: it was changed after sealing, "
                    "or this seal belongs to another document",
                )
        self._judge(signed, checks, context)

    def _verify_pdf(self, document: DocumentSource, checks: _Checks, context: _Context) -> None:
        from pyhanko.pdf_utils.reader import PdfFileReader
        from pyhanko.sign.diff_analysis import DiffResult, ModificationLevel
        from pyhanko.sign.validation.status import SignatureCoverageLevel

        if isinstance(document, Path):
            # pyHanko reads a PDF by seeking in it; the file stays on disk, not in memory.
            with document.open("rb") as pdf_file:
                self._verify_pdf(pdf_file, checks, context)
            return
        source = io.BytesIO(document) if isinstance(document, bytes) else document
        try:
            reader = PdfFileReader(source, strict=False)
            signatures = reader.embedded_signatures
        except Exception as exc:  # pyHanko raises many types on malformed files
            raise _FormatError(
                f"no seal file was given and the document is not a readable PDF: {exc}"
            ) from None
        if not signatures:
            raise _FormatError("the PDF carries no seal: no signed signature field")
        embedded = signatures[-1]
        signed = _parse_signed_data(embedded.pkcs7_content, "the PDF's signature", zero_padded=True)
        context.signing_time = signed.signing_time or embedded.self_reported_timestamp
        subfilter = embedded.sig_object.get("/SubFilter", "?")
        checks.passed(
            "format",
            f"PAdES signature ({subfilter}) in field {embedded.field_name!r}; "
            f"{len(signatures)} signature(s) in the file, the last one verified",
        )
        try:
            embedded.compute_integrity_info()
            actual = embedded.compute_digest()
        except Exception as exc:  # byte range or revision structure unusable
            checks.failed(
                "document_integrity",
                SubIndication.FORMAT_FAILURE,
                f"cannot compute what the seal covers: {exc}",
            )
        else:
            coverage = embedded.coverage
            diff = embedded.diff_result
            later = reader.xrefs.total_revisions - 1 - embedded.signed_revision
            if actual != signed.message_digest:
                checks.failed(
                    "document_integrity",
                    SubIndication.HASH_FAILURE,
                    "the sealed byte range does not match the sealed digest: the PDF was "
                    "altered in place",
                )
            elif coverage == SignatureCoverageLevel.ENTIRE_FILE:
                checks.passed("document_integrity", "the seal covers the entire file")
            elif (
                coverage == SignatureCoverageLevel.ENTIRE_REVISION
                and isinstance(diff, DiffResult)
                and diff.modification_level <= ModificationLevel.LTA_UPDATES
            ):
                checks.passed(
                    "document_integrity",
                    f"the seal covers its revision; {later} later update(s) only add "
                    "validation data",
                )
            else:
                if isinstance(diff, DiffResult):
                    level = diff.modification_level.name
                else:
                    reason = str(diff).splitlines()
                    level = f"suspicious: {reason[0]}" if reason else "suspicious"
                checks.failed(
                    "document_integrity",
                    SubIndication.HASH_FAILURE,
                    f"the PDF was changed after sealing: {later} incremental update(s) follow "
                    f"the sealed revision (modification level {level})",
                )
        self._judge(signed, checks, context)

    # -- checks shared by both containers ------------------------------------------------

    def _signer_certificate(self, signed: _Signed) -> _CertFacts | None:
        if signed.issuer_der is None or signed.serial is None:
            return None
        for der in signed.certificates:
            try:
                facts = self._paths.facts_of(der)
            except ValueError:  # an unreadable extra certificate is not the signer's
                continue
            if facts.serial == signed.serial and facts.issuer_der == signed.issuer_der:
                return facts
        for facts in self._record_facts:
            if facts.serial == signed.serial and facts.issuer_der == signed.issuer_der:
                return facts
        return None

    def _judge(self, signed: _Signed, checks: _Checks, context: _Context) -> None:
        later = ("certificate_chain", "seal_registered", "key_validity")
        leaf = self._signer_certificate(signed)
        if leaf is None:
            checks.undecided(
                "signature",
                SubIndication.NO_SIGNING_CERTIFICATE_FOUND,
                "the seal's certificate is neither in the seal nor in the published records",
            )
            for name in later:
                checks.skipped(name, "no signing certificate")
            self._judge_ecert(signed, None, "", checks, context)
            return
        if signed.ess_cert_hashes and not any(
            alg in _DIGESTS and hashlib.new(alg, leaf.der).digest() == value
            for alg, value in signed.ess_cert_hashes
        ):
            checks.undecided(
                "signature",
                SubIndication.NO_SIGNING_CERTIFICATE_FOUND,
                "the signing-certificate attribute names another certificate",
            )
        else:
            _check_signature(signed, leaf.cert, checks)
        chain = _check_chain(self._paths, leaf, signed, checks, context)
        record = _check_registered(leaf, self._records, self._by_fingerprint, checks, context)
        _check_key_validity(
            leaf.cert, chain, record, checks, context, proven_time=context.proven_time
        )
        self._judge_ecert(
            signed, record, record.node_id if record else leaf.node_id, checks, context
        )

    def _judge_ecert(
        self,
        signed: _Signed,
        record: SealRecord | None,
        node_id: str,
        checks: _Checks,
        context: _Context,
    ) -> None:
        _check_ecert(
            signed,
            record,
            node_id,
            checks,
            context,
            online=self._online,
            status_source=self._status,
        )


def _digest(source: DocumentSource, algorithm: str) -> bytes:
    digest = hashlib.new(algorithm)
    if isinstance(source, bytes):
        digest.update(source)
    elif isinstance(source, Path):
        with source.open("rb") as stream:
            for chunk in iter(lambda: stream.read(_CHUNK), b""):
                digest.update(chunk)
    else:
        for chunk in iter(lambda: source.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.digest()


def seal_verification_result(
    document: DocumentSource,
    *,
    seal: Path | bytes | BinaryIO | None = None,
    roots: Sequence[x509.Certificate],
    seals: Iterable[SealRecord],
    at: datetime,
    status_list: Envelope | None = None,
    status_keys: CertificatePublicKey | Mapping[str, CertificatePublicKey] | None = None,
    status_max_age: timedelta | None = timedelta(days=1),
    online_status: OnlineStatusLookup | None = None,
) -> SealVerificationReport:
    """Verify one sealed document and report; never raises for bad input.

    ``seal`` is the detached ``.p7s``; without it ``document`` must be a sealed PDF.
    ``status_list`` is the issuing node's signed status list, checked with ``status_keys``
    and accepted if issued within ``status_max_age`` before ``at``.

    Raises:
        CallerError: ``at`` is naive, or a status list comes without its key.
    """
    verifier = SealVerifier(
        roots,
        seals,
        status_list=status_list,
        status_keys=status_keys,
        status_max_age=status_max_age,
        online_status=online_status,
    )
    return verifier.result(document, seal=seal, at=at)


def verify_seal(
    document: DocumentSource,
    *,
    seal: Path | bytes | BinaryIO | None = None,
    roots: Sequence[x509.Certificate],
    seals: Iterable[SealRecord],
    at: datetime,
    status_list: Envelope | None = None,
    status_keys: CertificatePublicKey | Mapping[str, CertificatePublicKey] | None = None,
    status_max_age: timedelta | None = timedelta(days=1),
    online_status: OnlineStatusLookup | None = None,
) -> SealVerificationReport:
    """Verify one sealed document; return the report only if it is VALID.

    Raises:
        SealInvalidError: the bottom line is INVALID.
        SealIndeterminateError: the bottom line is INDETERMINATE.
        CallerError: ``at`` is naive, or a status list comes without its key.
    """
    verifier = SealVerifier(
        roots,
        seals,
        status_list=status_list,
        status_keys=status_keys,
        status_max_age=status_max_age,
        online_status=online_status,
    )
    return verifier.verify(document, seal=seal, at=at)
