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

import enum
import hashlib
import io
import json
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from tongban.keys.clock import format_time, require_aware
from tongban.keys.ecert import (
    ECertIdentifierError,
    ECertStatus,
    ECertStatusEntry,
    load_status_list,
    parse_ecert_identifier,
)
from tongban.keys.envelope import Envelope
from tongban.keys.errors import BadPeerData, CallerError
from tongban.keys.pki import (
    DOCUMENT_SIGNING,
    CertificatePublicKey,
    Role,
)
from tongban.keys.seal_subject import seal_identity
from tongban.keys.seals import (
    ECERT_IDENTIFIER_ATTRIBUTE,
    DocumentSource,
    RevocationReason,
    SealRecord,
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

OnlineStatusLookup = Callable[[str], ECertStatusEntry]
"""Ask the issuing node's verification service for an identifier's current status."""

_MAX_P7S = 1 << 20
_CHUNK = 1 << 20
_CLOCK_SKEW = timedelta(minutes=5)
_DIGESTS: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_ECDSA = {"sha256_ecdsa": "sha256", "sha384_ecdsa": "sha384", "sha512_ecdsa": "sha512"}


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


# --- internals ----------------------------------------------------------------------------


class _FormatError(Exception):
    """The signature container cannot be processed."""


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


@dataclass(frozen=True)
class _Signed:
    """What one SignerInfo says, read without judging it."""

    digest_algorithm: str
    signature_algorithm: str
    signature: bytes
    signed_attrs_der: bytes
    message_digest: bytes | None
    signing_time: datetime | None
    identifier: str | None
    ess_cert_hashes: tuple[tuple[str, bytes], ...]
    issuer_der: bytes | None
    serial: int | None
    certificates: tuple[bytes, ...]  # DER, as carried in the seal


# A seal is read with a small DER walker of its own instead of a general ASN.1 library:
# the shape is fixed, the walker never re-encodes what it reads, and it is many times faster.
# Every slice is bounds-checked; anything unexpected is a _FormatError.

_Node = tuple[int, int, int, int]  # tag, start of the header, start and end of the content


def _node(data: bytes, pos: int, end: int) -> _Node:
    if pos + 2 > end:
        raise _FormatError(f"truncated at byte {pos}")
    tag, size = data[pos], data[pos + 1]
    if tag & 0x1F == 0x1F:
        raise _FormatError(f"unsupported high tag number at byte {pos}")
    start = pos + 2
    if size & 0x80:
        octets = size & 0x7F
        if octets == 0 or octets > 4 or start + octets > end:
            raise _FormatError(f"bad length at byte {pos + 1}")
        size = int.from_bytes(data[start : start + octets], "big")
        start += octets
    if start + size > end:
        raise _FormatError(f"truncated: byte {pos} announces {size} bytes, {end - start} remain")
    return tag, pos, start, start + size


def _children(data: bytes, parent: _Node) -> list[_Node]:
    nodes = []
    pos, end = parent[2], parent[3]
    while pos < end:
        node = _node(data, pos, end)
        nodes.append(node)
        pos = node[3]
    return nodes


def _expect(node: _Node, tag: int, what: str) -> _Node:
    if node[0] != tag:
        raise _FormatError(f"{what}: expected tag 0x{tag:02x}, found 0x{node[0]:02x}")
    return node


def _content(data: bytes, node: _Node) -> bytes:
    return data[node[2] : node[3]]


def _oid_body(dotted: str) -> bytes:
    numbers = [int(n) for n in dotted.split(".")]
    body = bytearray()
    for number in (numbers[0] * 40 + numbers[1], *numbers[2:]):
        chunk = [number & 0x7F]
        rest = number >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        body += bytes(reversed(chunk))
    return bytes(body)


_OIDS = {
    _oid_body(dotted): name
    for dotted, name in {
        "1.2.840.113549.1.7.1": "data",
        "1.2.840.113549.1.7.2": "signed_data",
        "1.2.840.113549.1.7.3": "enveloped_data",
        "1.2.840.113549.1.9.16.1.4": "tst_info",
        "1.2.840.113549.1.9.3": "content_type",
        "1.2.840.113549.1.9.4": "message_digest",
        "1.2.840.113549.1.9.5": "signing_time",
        "1.2.840.113549.1.9.16.2.47": "signing_certificate_v2",
        ECERT_IDENTIFIER_ATTRIBUTE: "ecert_identifier",
        "2.16.840.1.101.3.4.2.1": "sha256",
        "2.16.840.1.101.3.4.2.2": "sha384",
        "2.16.840.1.101.3.4.2.3": "sha512",
        "1.2.840.10045.4.3.2": "sha256_ecdsa",
        "1.2.840.10045.4.3.3": "sha384_ecdsa",
        "1.2.840.10045.4.3.4": "sha512_ecdsa",
    }.items()
}


def _oid(data: bytes, node: _Node, what: str) -> str:
    body = _content(data, _expect(node, 0x06, what))
    return _OIDS.get(body) or f"unknown OID {body.hex()}"


def _algorithm(data: bytes, node: _Node, what: str) -> str:
    parts = _children(data, _expect(node, 0x30, what))
    if not parts:
        raise _FormatError(f"{what} is empty")
    return _oid(data, parts[0], what)


def _time_value(data: bytes, node: _Node) -> datetime:
    text = _content(data, node).decode("ascii", "replace")
    if node[0] == 0x17 and len(text) == 13 and text.endswith("Z"):
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif not (node[0] == 0x18 and text.endswith("Z")):
        raise _FormatError(f"signing time {text!r} is not UTCTime or GeneralizedTime in UTC")
    try:
        if not text[:14].isdigit():
            raise ValueError(text)
        n = [int(text[i : i + 2]) for i in range(4, 14, 2)]
        return datetime(int(text[:4]), n[0], n[1], n[2], n[3], n[4], tzinfo=UTC)
    except ValueError:
        raise _FormatError(f"signing time {text!r} is not a valid time") from None


def _ess_hashes(data: bytes, value: _Node) -> tuple[tuple[str, bytes], ...]:
    certs = _children(data, _expect(value, 0x30, "signing-certificate-v2"))
    hashes_found = []
    for ess_cert in _children(data, _expect(certs[0], 0x30, "ESS certificates")):
        parts = _children(data, _expect(ess_cert, 0x30, "ESS certificate"))
        algorithm = "sha256"  # the DEFAULT of ESSCertIDv2
        if parts and parts[0][0] == 0x30:
            algorithm = _algorithm(data, parts[0], "ESS hash algorithm")
            parts = parts[1:]
        if not parts:
            raise _FormatError("ESS certificate without a hash")
        hashes_found.append((algorithm, _content(data, _expect(parts[0], 0x04, "ESS hash"))))
    return tuple(hashes_found)


def _parse_signed_data(data: bytes, what: str, *, zero_padded: bool = False) -> _Signed:
    """Read a DER ContentInfo holding a detached SignedData with one signer.

    ``zero_padded``: a PDF reserves room for the signature and pads it with zero bytes.
    """
    try:
        return _walk_signed_data(data, zero_padded)
    except _FormatError as exc:
        if str(exc).startswith("holds CMS"):
            raise _FormatError(f"{what} {exc}") from None
        raise _FormatError(f"{what} is not DER CMS SignedData: {exc}") from None
    except (IndexError, ValueError, UnicodeDecodeError) as exc:
        raise _FormatError(f"{what} is not DER CMS SignedData: {exc}") from None


def _walk_signed_data(data: bytes, zero_padded: bool) -> _Signed:
    top = _expect(_node(data, 0, len(data)), 0x30, "ContentInfo")
    if top[3] != len(data) and not (zero_padded and not data[top[3] :].strip(b"\0")):
        raise _FormatError(f"{len(data) - top[3]} bytes follow the ContentInfo")
    content_type, explicit = _children(data, top)[:2]
    kind = _oid(data, content_type, "content type")
    if kind != "signed_data":
        raise _FormatError(f"holds CMS {kind}, not SignedData")
    (signed_data,) = _children(data, _expect(explicit, 0xA0, "content"))
    parts = _children(data, _expect(signed_data, 0x30, "SignedData"))
    encap = _children(data, _expect(parts[2], 0x30, "encapsulated content"))
    if len(encap) > 1:
        raise _FormatError("the seal embeds its content; a detached seal is expected")
    if not encap or _oid(data, encap[0], "encapsulated content type") != "data":
        raise _FormatError("the encapsulated content type is not data")
    certificates: list[bytes] = []
    for extra in parts[3:-1]:
        if extra[0] == 0xA0:
            certificates += [data[c[1] : c[3]] for c in _children(data, extra) if c[0] == 0x30]
    infos = _children(data, _expect(parts[-1], 0x31, "signer infos"))
    if len(infos) != 1:
        raise _FormatError(f"expected one signer, found {len(infos)}")
    fields = _children(data, _expect(infos[0], 0x30, "SignerInfo"))
    sid = fields[1]
    issuer_der = serial = None
    if sid[0] == 0x30:
        issuer, number = _children(data, sid)
        issuer_der = data[issuer[1] : issuer[3]]
        # INTEGER is two's complement: a serial read as unsigned would match no certificate.
        serial = int.from_bytes(_content(data, _expect(number, 0x02, "serial")), "big", signed=True)
    attrs_node = fields[3]
    if attrs_node[0] != 0xA0:
        raise _FormatError("the signature has no signed attributes")
    attrs: dict[str, _Node] = {}
    for attribute in _children(data, attrs_node):
        kind_node, values = _children(data, _expect(attribute, 0x30, "attribute"))
        name = _oid(data, kind_node, "attribute type")
        members = _children(data, _expect(values, 0x31, "attribute values"))
        if name in attrs or len(members) != 1:
            raise _FormatError(f"signed attribute {name} is not single-valued")
        attrs[name] = members[0]
    if "content_type" not in attrs or "message_digest" not in attrs:
        raise _FormatError("the content-type or message-digest attribute is missing")
    if _oid(data, attrs["content_type"], "content-type attribute") != "data":
        raise _FormatError("the signed content type is not data")
    # The signature covers the SET OF as received, only re-tagged from [0] to SET.
    signed_attrs_der = b"\x31" + data[attrs_node[1] + 1 : attrs_node[3]]
    identifier = attrs.get("ecert_identifier")
    signing_time = attrs.get("signing_time")
    ess = attrs.get("signing_certificate_v2")
    return _Signed(
        digest_algorithm=_algorithm(data, fields[2], "digest algorithm"),
        signature_algorithm=_algorithm(data, fields[4], "signature algorithm"),
        signature=_content(data, _expect(fields[5], 0x04, "signature")),
        signed_attrs_der=signed_attrs_der,
        message_digest=_content(data, _expect(attrs["message_digest"], 0x04, "message digest")),
        signing_time=_time_value(data, signing_time) if signing_time else None,
        identifier=_content(data, _expect(identifier, 0x0C, "e-certificate identifier")).decode()
        if identifier
        else None,
        ess_cert_hashes=_ess_hashes(data, ess) if ess else (),
        issuer_der=issuer_der,
        serial=serial,
        certificates=tuple(certificates),
    )


def _read_seal(source: Path | bytes | BinaryIO) -> bytes:
    """The seal's bytes, never more than the limit plus one (so an oversize one is seen)."""
    if isinstance(source, bytes):
        data = source
    elif isinstance(source, Path):
        with source.open("rb") as stream:
            data = stream.read(_MAX_P7S + 1)
    else:
        data = source.read(_MAX_P7S + 1)
    if len(data) > _MAX_P7S:
        raise _FormatError(f"the seal file is larger than {_MAX_P7S} bytes; a seal is smaller")
    return data


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


def _window(cert: x509.Certificate) -> str:
    return f"{format_time(cert.not_valid_before_utc)} .. {format_time(cert.not_valid_after_utc)}"


@dataclass(frozen=True)
class _CertFacts:
    """What the checks need from one certificate; none of it depends on time."""

    cert: x509.Certificate
    der: bytes
    fingerprint: str
    issuer_der: bytes
    serial: int
    subject: str
    seal_id: str
    node_id: str
    holder: str  # who it says it is, for the report
    seal_certificate: bool  # a seal's role and the non-repudiation key usage

    @classmethod
    def of(cls, der: bytes) -> _CertFacts:
        """Raises: ValueError for a certificate that cannot be read."""
        try:
            return cls._read(der)
        except ValueError:
            raise
        except Exception as exc:  # cryptography has several error types for bad DER
            raise ValueError(f"unreadable certificate: {exc}") from None

    @classmethod
    def _read(cls, der: bytes) -> _CertFacts:
        with warnings.catch_warnings():
            # A malformed certificate is reported, not warned about on stderr.
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            return cls._read_loudly(der)

    @classmethod
    def _read_loudly(cls, der: bytes) -> _CertFacts:
        cert = x509.load_der_x509_certificate(der)
        subject = cert.subject.rfc4514_string()
        try:
            identity = seal_identity(cert)
        except BadPeerData as exc:
            seal_id, node_id, holder, is_seal = subject, "", exc.message, False
        else:
            seal_id, node_id, holder = identity.name, identity.node_id, str(identity)
            is_seal = identity.role is Role.SEAL
        usage = _key_usage(cert)
        return cls(
            cert=cert,
            der=der,
            fingerprint=hashlib.sha256(der).hexdigest(),
            issuer_der=cert.issuer.public_bytes(),
            serial=cert.serial_number,
            subject=subject,
            seal_id=seal_id,
            node_id=node_id,
            holder=holder,
            seal_certificate=is_seal and usage is not None and usage.content_commitment,
        )


_FACTS_CACHE = 256


def _seal_ca_usages(
    _policy: object, _cert: x509.Certificate, usages: x509.ExtendedKeyUsage | None
) -> None:
    # A CA limited to other usages (a node's TLS identity CA) issues no seals. A CA without
    # the extension is one from before ADR 0004; its seals must keep verifying.
    if usages is not None and DOCUMENT_SIGNING not in usages:
        raise ValueError("the issuing CA may not issue document-signing certificates")


_SEAL_CA_POLICY = ExtensionPolicy.webpki_defaults_ca().may_be_present(
    x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _seal_ca_usages
)


@dataclass(frozen=True)
class _StatusSource:
    envelope: Envelope
    keys: CertificatePublicKey | Mapping[str, CertificatePublicKey]
    max_age: timedelta | None


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
        self._roots = tuple(roots)
        self._records = tuple(seals)
        self._by_fingerprint = {r.certificate_fingerprint: r for r in self._records}
        self._status = (
            _StatusSource(status_list, status_keys, status_max_age)
            if status_list is not None and status_keys is not None
            else None
        )
        self._online = online_status
        self._paths: dict[tuple[str, ...], tuple[x509.Certificate, ...]] = {}
        self._facts: dict[bytes, _CertFacts] = {}
        self._record_facts = tuple(self._facts_of(_der(r.certificate)) for r in self._records)

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
        return self._report(checks, context)

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

    def _facts_of(self, der: bytes) -> _CertFacts:
        facts = self._facts.get(der)
        if facts is None:
            if len(self._facts) >= _FACTS_CACHE:
                self._facts.clear()
            facts = self._facts[der] = _CertFacts.of(der)
        return facts

    def _signer_certificate(self, signed: _Signed) -> _CertFacts | None:
        if signed.issuer_der is None or signed.serial is None:
            return None
        for der in signed.certificates:
            try:
                facts = self._facts_of(der)
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
            self._check_ecert(signed, None, "", checks, context)
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
            self._check_signature(signed, leaf.cert, checks)
        chain = self._check_chain(leaf, signed, checks, context)
        record = self._check_registered(leaf, checks, context)
        self._check_key_validity(
            leaf.cert, chain, record, checks, context, proven_time=context.proven_time
        )
        self._check_ecert(
            signed, record, record.node_id if record else leaf.node_id, checks, context
        )

    def _check_signature(self, signed: _Signed, cert: x509.Certificate, checks: _Checks) -> None:
        key = cert.public_key()
        hash_name = _ECDSA.get(signed.signature_algorithm)
        if hash_name is None or not isinstance(key, ec.EllipticCurvePublicKey):
            checks.undecided(
                "signature",
                SubIndication.CRYPTO_CONSTRAINTS_FAILURE,
                f"signature algorithm {signed.signature_algorithm} with a "
                f"{type(key).__name__} is not accepted for seals",
            )
            return
        try:
            key.verify(signed.signature, signed.signed_attrs_der, ec.ECDSA(_DIGESTS[hash_name]()))
        except InvalidSignature:
            checks.failed(
                "signature",
                SubIndication.SIG_CRYPTO_FAILURE,
                "the signature does not verify with the seal certificate's key",
            )
            return
        checks.passed(
            "signature",
            f"ECDSA {key.curve.name} with {hash_name.upper()} over the signed attributes verifies",
        )

    def _path(
        self, leaf: _CertFacts, extra: Sequence[bytes], moment: datetime
    ) -> tuple[tuple[x509.Certificate, ...] | None, str]:
        if not self._roots:
            return None, "no trusted root certificate was given"
        others = [self._facts_of(der) for der in extra if der != leaf.der]
        key = (leaf.fingerprint, *sorted(f.fingerprint for f in others))
        cached = self._paths.get(key)
        if cached is not None:
            return cached, ""
        start, end = leaf.cert.not_valid_before_utc, leaf.cert.not_valid_after_utc
        # The path is searched at a moment the leaf was valid, so that a certificate
        # expired at the signing time is reported as EXPIRED, not as untrusted.
        probes = [moment] if start <= moment <= end else []
        probes += [start + (end - start) / 2, start + timedelta(seconds=1)]
        problem = ""
        for probe in probes:
            verifier = (
                PolicyBuilder()
                .store(Store(list(self._roots)))
                .time(probe)
                .extension_policies(
                    ca_policy=_SEAL_CA_POLICY, ee_policy=ExtensionPolicy.permit_all()
                )
                .build_client_verifier()
            )
            try:
                verified = verifier.verify(leaf.cert, [f.cert for f in others])
            except (VerificationError, ValueError) as exc:
                problem = str(exc)
                continue
            chain = tuple(verified.chain)
            if len(self._paths) >= _FACTS_CACHE:
                self._paths.clear()
            self._paths[key] = chain
            return chain, ""
        return None, problem

    def _check_chain(
        self, leaf: _CertFacts, signed: _Signed, checks: _Checks, context: _Context
    ) -> tuple[x509.Certificate, ...] | None:
        try:
            chain, problem = self._path(
                leaf, signed.certificates, context.proven_time or context.signing_time or context.at
            )
        except ValueError as exc:  # an extra certificate in the seal is unreadable
            chain, problem = None, f"a certificate in the seal is malformed: {exc}"
        if chain is None:
            checks.undecided(
                "certificate_chain",
                SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
                f"the seal certificate does not chain to a trusted root: {problem}",
            )
            return None
        if not leaf.seal_certificate:
            checks.undecided(
                "certificate_chain",
                SubIndication.CHAIN_CONSTRAINTS_FAILURE,
                f"the certificate is not a seal certificate with non-repudiation: {leaf.holder}",
            )
            return chain
        root = self._facts_of(_der(chain[-1])).subject
        checks.passed(
            "certificate_chain", f"{leaf.holder}; chains to {root} ({len(chain)} certificates)"
        )
        return chain

    def _check_registered(
        self, leaf: _CertFacts, checks: _Checks, context: _Context
    ) -> SealRecord | None:
        seal_id, node_id = leaf.seal_id, leaf.node_id
        record = self._by_fingerprint.get(leaf.fingerprint)
        context.signer = SealIdentity(
            seal_id=seal_id,
            node_id=node_id,
            certificate_subject=leaf.subject,
            certificate_sha256=leaf.fingerprint,
            seal_name=record.name if record else None,
            org_uscc=record.org_uscc if record else None,
        )
        if record is None:
            known = any(r.seal_id == seal_id for r in self._records)
            detail = (
                f"seal {seal_id!r} is registered with a different certificate"
                if known
                else f"seal id {seal_id!r} is not in the published seal records"
            )
            checks.undecided("seal_registered", SubIndication.SIG_CONSTRAINTS_FAILURE, detail)
            return None
        if record.node_id != node_id or record.seal_id != seal_id:
            checks.undecided(
                "seal_registered",
                SubIndication.SIG_CONSTRAINTS_FAILURE,
                f"the record of seal {record.seal_id!r} (node {record.node_id}) does not match "
                f"its certificate (seal {seal_id!r}, node {node_id})",
            )
            return None
        checks.passed(
            "seal_registered",
            f"{record.name} ({record.seal_id}) of {record.org_uscc}, node {record.node_id}",
        )
        return record

    def _check_key_validity(
        self,
        cert: x509.Certificate,
        chain: Sequence[x509.Certificate] | None,
        record: SealRecord | None,
        checks: _Checks,
        context: _Context,
        *,
        proven_time: datetime | None,
    ) -> None:
        """Certificates, seal window and revocation at the moment of sealing (ADR 0006).

        ``proven_time`` is a time the seal is proven to have existed by (a trusted time
        stamp); none is read yet, so it is None. The claimed signing time is the signer's
        own word: it is believed for expiry and for an orderly revocation, never against a
        revocation that says the key may have been in other hands.
        """
        name = "key_validity"
        signing_time = context.signing_time
        if signing_time is not None and signing_time > context.at + _CLOCK_SKEW:
            checks.undecided(
                name,
                SubIndication.NO_POE,
                f"the signing time {format_time(signing_time)} is after the verification "
                f"time {format_time(context.at)}",
            )
            return
        moment = proven_time or signing_time or context.at
        if proven_time is not None:
            when = f"the proven time {format_time(moment)}"
        elif signing_time is not None:
            when = f"the signing time {format_time(moment)}"
        else:
            when = f"the verification time {format_time(moment)} (the seal states no signing time)"
        for each in chain or (cert,):
            if moment > each.not_valid_after_utc or moment < each.not_valid_before_utc:
                late = moment > each.not_valid_after_utc
                detail = (
                    f"certificate {each.subject.rfc4514_string()} (valid {_window(each)}) is "
                    f"{'expired' if late else 'not yet valid'} at {when}"
                )
                if signing_time is None and proven_time is None:
                    checks.undecided(name, SubIndication.OUT_OF_BOUNDS_NO_POE, detail)
                else:
                    sub = SubIndication.EXPIRED if late else SubIndication.NOT_YET_VALID
                    checks.failed(name, sub, detail)
                return
        if record is None:
            checks.undecided(
                name,
                SubIndication.TRY_LATER,
                f"certificates valid at {when}; revocation unknown: the seal is not in the "
                "published records",
            )
            return
        revoked_at = record.revoked_at
        if revoked_at is not None and moment >= revoked_at:
            detail = (
                f"seal {record.seal_id} was revoked at {format_time(revoked_at)} "
                f"({record.revocation_text}), not later than {when}"
            )
            if proven_time is None and signing_time is None:
                checks.undecided(name, SubIndication.REVOKED_NO_POE, detail)
            else:
                checks.failed(name, SubIndication.REVOKED, detail)
            return
        reason = record.revocation_reason or RevocationReason.UNSPECIFIED
        if (
            revoked_at is not None
            and proven_time is None
            and context.at >= revoked_at
            and reason.key_possibly_compromised
        ):
            # Only the signer's word puts the seal before the revocation, and after a
            # compromise whoever holds the key can write any time. The verification time
            # proves nothing either: it is after the revocation.
            checks.undecided(
                name,
                SubIndication.REVOKED_NO_POE,
                f"the key of seal {record.seal_id} was revoked at {format_time(revoked_at)} "
                f"{_COMPROMISE[reason]} ({record.revocation_text}); {when} is only the "
                "signer's claim, and nothing proves the seal existed before the revocation",
            )
            return
        if not record.not_before <= moment <= record.not_after:
            late = moment > record.not_after
            checks.failed(
                name,
                SubIndication.EXPIRED if late else SubIndication.NOT_YET_VALID,
                f"seal {record.seal_id} is registered for {format_time(record.not_before)} .. "
                f"{format_time(record.not_after)}, not {when}",
            )
            return
        later = ""
        if revoked_at is not None and revoked_at > context.at:
            later = (
                f"; revoked at {format_time(revoked_at)} ({record.revocation_text}), after "
                "the verification time"
            )
        elif revoked_at is not None:
            later = (
                f"; revoked later, at {format_time(revoked_at)} ({record.revocation_text}), "
                "which does not affect seals made before"
            )
        checks.passed(name, f"certificates and seal valid and not revoked at {when}{later}")

    def _check_ecert(
        self,
        signed: _Signed,
        record: SealRecord | None,
        node_id: str,
        checks: _Checks,
        context: _Context,
    ) -> None:
        if signed.identifier is None:
            checks.skipped("ecert_identifier", "the seal carries no e-certificate identifier")
            checks.skipped("ecert_status", "no e-certificate identifier")
            return
        context.identifier = signed.identifier
        try:
            identifier = parse_ecert_identifier(signed.identifier)
        except ECertIdentifierError as exc:
            checks.failed(
                "ecert_identifier",
                SubIndication.FORMAT_FAILURE,
                f"{signed.identifier!r}: {exc.message}",
            )
            checks.skipped("ecert_status", "the e-certificate identifier is malformed")
            return
        if record is not None and identifier.issuer_uscc != record.org_uscc:
            checks.undecided(
                "ecert_identifier",
                SubIndication.SIG_CONSTRAINTS_FAILURE,
                f"the identifier names issuer {identifier.issuer_uscc}, but the seal belongs "
                f"to {record.org_uscc}",
            )
        else:
            checks.passed("ecert_identifier", f"{identifier} (GB/T 36904, check character ok)")
        self._check_ecert_status(str(identifier), node_id, checks, context)

    def _check_ecert_status(
        self, identifier: str, node_id: str, checks: _Checks, context: _Context
    ) -> None:
        name = "ecert_status"
        entry: ECertStatusEntry | None
        if self._online is not None:
            try:
                entry = self._online(identifier)
            except Exception as exc:  # whatever the transport raised, the status is unknown
                checks.undecided(
                    name, SubIndication.TRY_LATER, f"the verification service failed: {exc}"
                )
                return
            source = "the issuing node's verification service"
        elif self._status is not None:
            try:
                status_list = load_status_list(
                    self._status.envelope,
                    self._status.keys,
                    at=context.at,
                    max_age=self._status.max_age,
                )
            except BadPeerData as exc:
                checks.undecided(
                    name, SubIndication.TRY_LATER, f"status list not usable: {exc.message}"
                )
                return
            if node_id and status_list.node_id != node_id:
                checks.undecided(
                    name,
                    SubIndication.TRY_LATER,
                    f"the status list is node {status_list.node_id}'s; the e-certificate was "
                    f"issued by node {node_id}",
                )
                return
            entry = status_list.status_at(identifier, context.at)
            source = (
                f"the status list of node {status_list.node_id} issued "
                f"{format_time(status_list.issued_at)}"
            )
        else:
            checks.skipped(name, "no status list was given; the current status was not checked")
            return
        status = entry.status if entry is not None else ECertStatus.VALID
        context.ecert_status = status
        if status is ECertStatus.VALID or entry is None:
            checks.passed(name, f"valid according to {source}")
            return
        checks.failed(
            name,
            _STATUS_SUB[status],
            f"{status.value} ({_STATUS_ZH[status]}) at {format_time(entry.changed_at)}: "
            f"{entry.reason or 'no reason given'} (according to {source})",
        )

    def _report(self, checks: _Checks, context: _Context) -> SealVerificationReport:
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


_COMPROMISE = {
    RevocationReason.KEY_COMPROMISE: "for key compromise",
    RevocationReason.CA_COMPROMISE: "for compromise of its certificate authority",
    RevocationReason.UNSPECIFIED: "for an unspecified reason, which counts as a possible "
    "key compromise",
}
_STATUS_SUB = {
    ECertStatus.REVOKED: SubIndication.ECERT_REVOKED,
    ECertStatus.CANCELLED: SubIndication.ECERT_CANCELLED,
    ECertStatus.EXPIRED: SubIndication.ECERT_EXPIRED,
}
_STATUS_ZH = {
    ECertStatus.VALID: "有效",
    ECertStatus.REVOKED: "撤销",
    ECertStatus.CANCELLED: "注销",
    ECertStatus.EXPIRED: "失效",
}


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _key_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


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
