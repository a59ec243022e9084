"""Verify GB/T 38540 signatures into the same report as CMS seals.

The report is :class:`~tongban.keys.verification.SealVerificationReport`; the national
format has its own checks beside the shared ones:

==========================  =================================================================
``format``                  a version-4 (or 5) ``SES_Signature``; version 1 is refused
``document_integrity``      the SM3 hash of the document equals ``TBS_Sign.dataHash``
``seal_signature``          the seal maker's SM2 signature over ``SES_SealInfo``
``signature``               the signer's SM2 signature over ``TBS_Sign``
``seal_certificate_list``   the signer's certificate is one the seal lists
``seal_window``             ``timeInfo`` lies in the seal's validStart .. validEnd
``certificate_chain``       signer and maker certificates chain to an SM2 root at ``timeInfo``
``seal_registered``         the signer's certificate is that of a published seal record
``key_validity``            the registered seal was valid and not revoked at ``timeInfo``
``ecert_identifier``        skipped: the national format carries no e-certificate identifier
==========================  =================================================================

A failure (INVALID) outranks an undecided check (INDETERMINATE); among equals the first
in the table decides. ``timeInfo`` is the signer's claim, as CMS signing-time is (ADR 0006).

Example:
    >>> from datetime import UTC, datetime
    >>> report = Gbt38540Verifier(roots=[], seals=[]).result(
    ...     b"document", signature=b"not DER", at=datetime(2026, 1, 1, tzinfo=UTC))
    >>> report.indication.value, report.sub_indication.value
    ('INVALID', 'FORMAT_FAILURE')
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tongban.keys.clock import format_time, require_aware
from tongban.keys.errors import BadPeerData, SignatureError
from tongban.keys.gbt38540.certificates import (
    Sm2CertificateFacts,
    Sm2ChainError,
    check_sm2_path,
    read_sm2_certificate,
)
from tongban.keys.gbt38540.ofd import SM3_OID, OfdSignature, read_ofd_signature
from tongban.keys.gbt38540.sealing import (
    DocumentSource,
    Gbt38540FormatError,
    read_signature,
    seal_certificates,
    sm3_of,
)
from tongban.keys.gbt38540.structures import SesSignature
from tongban.keys.seals import RevocationReason, SealRecord
from tongban.keys.signing import SM2_SM3_OID, verify_sm2_signature
from tongban.keys.verification import (
    CheckOutcome,
    CheckResult,
    Indication,
    SealIdentity,
    SealVerificationReport,
    SubIndication,
)

__all__ = ["FORMAT_OFD", "FORMAT_SES", "Gbt38540Verifier", "gbt38540_verification_result"]

FORMAT_SES = "gbt38540-ses"
"""``report.format`` of a detached ``SES_Signature`` (``FILE.ses``)."""
FORMAT_OFD = "gbt38540-ofd"
"""``report.format`` of a signed OFD document."""

_MAX_SES = 4 << 20
_REMEMBERED = 1024


@dataclass
class _Checks:
    results: list[CheckResult] = field(default_factory=list)
    verdicts: list[tuple[Indication, SubIndication, str]] = field(default_factory=list)
    signer: SealIdentity | None = None
    signing_time: datetime | None = None

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

    def report(self, at: datetime, format_name: str) -> SealVerificationReport:
        for wanted in (Indication.INVALID, Indication.INDETERMINATE):
            for indication, sub, detail in self.verdicts:
                if indication is wanted:
                    return self._report(at, format_name, indication, sub, f"{wanted.value} "
                                        f"({sub.value}): {detail}")  # fmt: skip
        who = self.signer
        name = f"{who.seal_name} ({who.seal_id})" if who and who.seal_name else "an unknown seal"
        when = format_time(self.signing_time) if self.signing_time else "an unstated time"
        summary = f"VALID: sealed by {name} at {when}; no e-certificate identifier"
        return self._report(at, format_name, Indication.VALID, None, summary)

    def _report(
        self,
        at: datetime,
        format_name: str,
        indication: Indication,
        sub: SubIndication | None,
        summary: str,
    ) -> SealVerificationReport:
        return SealVerificationReport(
            indication=indication,
            sub_indication=sub,
            summary=summary,
            checks=tuple(self.results),
            verified_at=at,
            format=format_name,
            signer=self.signer,
            signing_time=self.signing_time,
        )


class Gbt38540Verifier:
    """Verifies GB/T 38540 signatures against SM2 roots and the published seal records."""

    def __init__(
        self,
        roots: Sequence[bytes],
        seals: Iterable[SealRecord],
        *,
        intermediates: Sequence[bytes] = (),
    ) -> None:
        self._roots = tuple(bytes(r) for r in roots)
        self._intermediates = tuple(bytes(i) for i in intermediates)
        self._records = tuple(seals)
        self._by_fingerprint = {r.certificate_fingerprint: r for r in self._records}
        # Seal makers' signatures already verified (key, signature, seal info digest): every
        # document sealed with one seal carries the same one.
        self._makers_verified: set[bytes] = set()

    def result(
        self, document: DocumentSource, *, signature: bytes | Path, at: datetime
    ) -> SealVerificationReport:
        """Verify ``document`` with its detached ``SES_Signature``; never raises for bad input.

        Raises:
            CallerError: ``at`` is naive.
        """
        at = require_aware(at, "at")
        checks = _Checks()
        try:
            der = signature.read_bytes() if isinstance(signature, Path) else signature
            if len(der) > _MAX_SES:
                raise Gbt38540FormatError(f"the signature file is larger than {_MAX_SES} bytes")
            parsed = read_signature(der)
            checks.passed("format", "GB/T 38540 SES_Signature, version "
                          f"{parsed['to_sign']['version'].native}")  # fmt: skip
            self.judge(parsed, sm3_of(document), checks, at)
        except Gbt38540FormatError as exc:
            checks.failed("format", SubIndication.FORMAT_FAILURE, exc.message)
        except OSError as exc:
            checks.undecided("format", SubIndication.SIGNED_DATA_NOT_FOUND, f"cannot read: {exc}")
        return checks.report(at, FORMAT_SES)

    def ofd_result(self, ofd: Path | bytes, *, at: datetime) -> SealVerificationReport:
        """Verify a signed OFD document (its last signature); never raises for bad input.

        Raises:
            CallerError: ``at`` is naive.
        """
        at = require_aware(at, "at")
        checks = _Checks()
        try:
            found = read_ofd_signature(ofd)
            parsed = read_signature(found.signed_value)
            checks.passed(
                "format",
                f"OFD (GB/T 33190) with {found.signature_count} signature(s), the last one "
                f"verified: {found.signature_xml_path}, SES_Signature version "
                f"{parsed['to_sign']['version'].native}",
            )
            self._check_ofd_files(found, parsed, checks)
            self.judge(parsed, sm3_of(found.signature_xml), checks, at)
        except Gbt38540FormatError as exc:
            checks.failed("format", SubIndication.FORMAT_FAILURE, exc.message)
        except OSError as exc:
            checks.undecided("format", SubIndication.SIGNED_DATA_NOT_FOUND, f"cannot read: {exc}")
        return checks.report(at, FORMAT_OFD)

    def _check_ofd_files(self, found: OfdSignature, parsed: SesSignature, checks: _Checks) -> None:
        """The OFD's own checks: what Signature.xml protects, and what it leaves out."""
        named = str(parsed["to_sign"]["property_info"].native)
        if named.lstrip("/") != found.signature_xml_path:
            checks.failed(
                "ofd_references",
                SubIndication.SIG_CONSTRAINTS_FAILURE,
                f"the signature was made for {named!r}, not for /{found.signature_xml_path}",
            )
            return
        if found.check_method != SM3_OID:
            checks.undecided(
                "ofd_references",
                SubIndication.CRYPTO_CONSTRAINTS_FAILURE,
                f"check method {found.check_method} is not SM3",
            )
            return
        removed = [r.path for r in found.references if r.path not in found.digests]
        changed = [
            r.path
            for r in found.references
            if r.path in found.digests and found.digests[r.path] != r.check_value
        ]
        if removed or changed:
            parts = []
            if changed:
                parts.append(f"protected file(s) changed: {', '.join(sorted(changed))}")
            if removed:
                parts.append(f"protected file(s) removed: {', '.join(sorted(removed))}")
            checks.failed("ofd_references", SubIndication.HASH_FAILURE, "; ".join(parts))
        else:
            checks.passed(
                "ofd_references",
                f"all {len(found.references)} protected files match their SM3 check values",
            )
        own_folder = found.signature_xml_path.rsplit("/", 1)[0] + "/"
        covered = {r.path for r in found.references}
        extra = sorted(
            path
            for path in found.digests
            if path not in covered
            and not path.startswith(own_folder)
            and not path.endswith("/Signatures.xml")
        )
        if extra:
            checks.failed(
                "ofd_coverage",
                SubIndication.SIG_CONSTRAINTS_FAILURE,
                f"file(s) the signature does not cover: {', '.join(extra)}; it covers "
                f"{len(covered)} file(s): {', '.join(sorted(covered))}",
            )
        else:
            checks.passed(
                "ofd_coverage",
                f"the signature covers every file but the signature list and its own folder "
                f"({len(covered)} files)",
            )
        if found.seal_file is not None and found.seal_file != parsed["to_sign"]["eseal"].dump():
            checks.failed(
                "ofd_seal_file",
                SubIndication.SIG_CONSTRAINTS_FAILURE,
                "the seal file the stamp shows is not the seal inside the signature",
            )

    def judge(
        self, parsed: SesSignature, actual_hash: bytes, checks: _Checks, at: datetime
    ) -> None:
        """Every check after ``format`` for one parsed signature (the OFD verifier's too)."""
        tbs = parsed["to_sign"]
        seal = tbs["eseal"]
        info = seal["e_seal_info"]
        signing_time: datetime = tbs["time_info"].native
        checks.signing_time = signing_time
        if tbs["data_hash"].native == actual_hash:
            checks.passed("document_integrity", "the SM3 hash of the signed data matches")
        else:
            checks.failed(
                "document_integrity",
                SubIndication.HASH_FAILURE,
                f"the SM3 hash {actual_hash.hex()[:16]}… does not match the signed dataHash: "
                "the data was changed after signing, or the signature belongs to other data",
            )
        maker = self._certificate(bytes(seal["cert"].native), "seal maker's", checks)
        signer = self._certificate(bytes(parsed["cert"].native), "signer's", checks)
        self._sm2(
            "seal_signature",
            "the seal maker's",
            maker,
            seal["sign_alg_id"].dotted,
            bytes(seal["signed_value"].native),
            info.dump(),
            checks,
        )
        self._sm2(
            "signature",
            "the signer's",
            signer,
            parsed["signature_algorithm"].dotted,
            bytes(parsed["signature"].native),
            tbs.dump(),
            checks,
        )
        self._check_listed(parsed, checks)
        prop = info["property"]
        start, end = prop["valid_start"].native, prop["valid_end"].native
        if start <= signing_time <= end:
            checks.passed("seal_window", f"signed at {format_time(signing_time)}, inside the "
                          f"seal's window {format_time(start)} .. {format_time(end)}")  # fmt: skip
        else:
            checks.failed(
                "seal_window",
                SubIndication.EXPIRED if signing_time > end else SubIndication.NOT_YET_VALID,
                f"signed at {format_time(signing_time)}, outside the seal's window "
                f"{format_time(start)} .. {format_time(end)}",
            )
        self._check_chain(signer, maker, signing_time, checks)
        record = self._check_registered(signer, str(info["es_id"].native), checks)
        self._check_key_validity(record, signing_time, at, checks)
        checks.skipped("ecert_identifier", "the national format carries no e-certificate id")

    def _certificate(self, der: bytes, whose: str, checks: _Checks) -> Sm2CertificateFacts | None:
        try:
            return read_sm2_certificate(der)
        except BadPeerData as exc:
            checks.results.append(
                CheckResult("certificates", CheckOutcome.FAILED, f"the {whose} {exc.message}")
            )
            return None

    def _sm2(
        self,
        name: str,
        whose: str,
        cert: Sm2CertificateFacts | None,
        algorithm: str,
        signature: bytes,
        data: bytes,
        checks: _Checks,
    ) -> None:
        if cert is None:
            checks.failed(name, SubIndication.FORMAT_FAILURE, f"{whose} certificate is unreadable")
            return
        if algorithm != SM2_SM3_OID:
            checks.undecided(
                name,
                SubIndication.CRYPTO_CONSTRAINTS_FAILURE,
                f"{whose} signature algorithm {algorithm} is not SM2 with SM3",
            )
            return
        remembered = name == "seal_signature"
        known = hashlib.sha256(cert.public_key_der + signature + data).digest()
        try:
            if not (remembered and known in self._makers_verified):
                verify_sm2_signature(cert.public_key_der, signature, data)
                if remembered and len(self._makers_verified) < _REMEMBERED:
                    self._makers_verified.add(known)
        except SignatureError:
            checks.failed(
                name,
                SubIndication.SIG_CRYPTO_FAILURE,
                f"{whose} SM2 signature does not verify with its certificate's key and the "
                "standard user id 1234567812345678",
            )
            return
        checks.passed(name, f"{whose} SM2/SM3 signature verifies ({cert.subject})")

    def _check_listed(self, parsed: SesSignature, checks: _Checks) -> None:
        cert = bytes(parsed["cert"].native)
        listed = seal_certificates(parsed["to_sign"]["eseal"])
        found = cert in listed or any(
            isinstance(entry, tuple) and _digest(entry[0], cert) == entry[1] for entry in listed
        )
        if found:
            checks.passed("seal_certificate_list", "the signer's certificate is in the seal's list")
        else:
            checks.failed(
                "seal_certificate_list",
                SubIndication.SIG_CONSTRAINTS_FAILURE,
                f"the signer's certificate is not among the {len(listed)} certificate(s) the "
                "seal allows",
            )

    def _check_chain(
        self,
        signer: Sm2CertificateFacts | None,
        maker: Sm2CertificateFacts | None,
        moment: datetime,
        checks: _Checks,
    ) -> None:
        if signer is None or maker is None:
            checks.skipped("certificate_chain", "a certificate is unreadable")
            return
        try:
            for facts in (signer, maker):
                check_sm2_path(
                    facts.der, roots=self._roots, intermediates=self._intermediates, at=moment
                )
        except Sm2ChainError as exc:
            checks.undecided(
                "certificate_chain", SubIndication.NO_CERTIFICATE_CHAIN_FOUND, exc.message
            )
            return
        checks.passed(
            "certificate_chain",
            f"signer and seal maker chain to a trusted SM2 root at {format_time(moment)}",
        )

    def _check_registered(
        self, signer: Sm2CertificateFacts | None, seal_id: str, checks: _Checks
    ) -> SealRecord | None:
        if signer is None:
            checks.skipped("seal_registered", "the signer's certificate is unreadable")
            return None
        record = self._by_fingerprint.get(signer.fingerprint)
        checks.signer = SealIdentity(
            seal_id=record.seal_id if record else seal_id,
            node_id=record.node_id if record else (signer.field("organization_name") or ""),
            certificate_subject=signer.subject,
            certificate_sha256=signer.fingerprint,
            seal_name=record.name if record else None,
            org_uscc=record.org_uscc if record else None,
        )
        if record is None:
            checks.undecided(
                "seal_registered",
                SubIndication.SIG_CONSTRAINTS_FAILURE,
                f"seal {seal_id!r} with this certificate is not in the published seal records",
            )
            return None
        checks.passed(
            "seal_registered",
            f"{record.name} ({record.seal_id}) of {record.org_uscc}, node {record.node_id}",
        )
        return record

    def _check_key_validity(
        self, record: SealRecord | None, moment: datetime, at: datetime, checks: _Checks
    ) -> None:
        name = "key_validity"
        if record is None:
            checks.skipped(name, "the seal is not in the published records")
            return
        if moment > at:
            checks.undecided(name, SubIndication.NO_POE, f"signed at {format_time(moment)}, "
                             f"after the verification time {format_time(at)}")  # fmt: skip
            return
        if record.revoked_at is not None and moment >= record.revoked_at:
            checks.failed(
                name,
                SubIndication.REVOKED,
                f"seal {record.seal_id} was revoked at {format_time(record.revoked_at)} "
                f"({record.revocation_text}), not later than the signing time",
            )
            return
        reason = record.revocation_reason or RevocationReason.UNSPECIFIED
        if (
            record.revoked_at is not None
            and at >= record.revoked_at
            and (reason.key_possibly_compromised)
        ):
            # timeInfo is the signer's word; after a compromise the thief writes any time
            # (ADR 0006). The national format's optional time stamp is not read yet.
            checks.undecided(
                name,
                SubIndication.REVOKED_NO_POE,
                f"the key of seal {record.seal_id} was revoked at "
                f"{format_time(record.revoked_at)} ({record.revocation_text}); the signing time "
                f"{format_time(moment)} is only the signer's claim",
            )
            return
        if not record.not_before <= moment <= record.not_after:
            checks.failed(
                name,
                SubIndication.EXPIRED if moment > record.not_after else SubIndication.NOT_YET_VALID,
                f"seal {record.seal_id} is registered for {format_time(record.not_before)} .. "
                f"{format_time(record.not_after)}, not {format_time(moment)}",
            )
            return
        checks.passed(name, f"seal registered and not revoked at {format_time(moment)}")


def _digest(algorithm: str, data: bytes) -> bytes | None:
    """A certificate digest as a seal's certDigestList names it; None for other algorithms."""
    name = algorithm.lower()
    if name in ("sm3", SM3_OID):
        return sm3_of(data)
    if name in ("sha256", "sha-256"):
        return hashlib.sha256(data).digest()
    return None


def gbt38540_verification_result(
    document: DocumentSource,
    *,
    signature: bytes | Path,
    roots: Sequence[bytes],
    seals: Iterable[SealRecord],
    at: datetime,
    intermediates: Sequence[bytes] = (),
) -> SealVerificationReport:
    """Verify one document with its ``SES_Signature`` and report; never raises for bad input.

    Raises:
        CallerError: ``at`` is naive.
    """
    verifier = Gbt38540Verifier(roots, seals, intermediates=intermediates)
    return verifier.result(document, signature=signature, at=at)
