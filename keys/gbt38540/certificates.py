"""SM2 certificates: the SM2 branch of the federation's hierarchy (ADR 0004).

``cryptography`` neither signs nor checks SM2, so certificates are built with asn1crypto and
signed through an :class:`~tongban.keys.signing.Sm2Signer`, and a path is checked here:
each signature with SM2/SM3 and the standard user id (GM/T 0015), each issuer a CA, each
certificate valid at the moment asked about, the top one a given root (byte for byte).

::

    federation SM2 root        CA, pathLen 1; keyCertSign, cRLSign       (offline)
    └── SM2 seal CA of node N  CA, pathLen 0; EKU documentSigning        (online on N)
        ├── seal maker of N    OU=seal-maker; digitalSignature+nonRepudiation
        └── seal S             OU=seal;       digitalSignature+nonRepudiation
"""

from __future__ import annotations

import enum
import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import keys, x509

from tongban.keys.clock import require_aware
from tongban.keys.errors import BadPeerData, CallerError, SignatureError
from tongban.keys.signing import SM2_SM3_OID, Sm2Signer, verify_sm2_signature

__all__ = [
    "Sm2CertificateFacts",
    "Sm2ChainError",
    "Sm2Role",
    "check_sm2_path",
    "issue_sm2_certificate",
    "read_sm2_certificate",
]

_DOCUMENT_SIGNING = "1.3.6.1.5.5.7.3.36"
_MAX_DEPTH = 4


class Sm2Role(enum.Enum):
    """What an SM2 certificate may do; decides its extensions."""

    ROOT = "root"
    SEAL_CA = "seal-ca"
    SEAL_MAKER = "seal-maker"
    SEAL = "seal"


class Sm2ChainError(BadPeerData):
    """An SM2 certificate does not chain to a trusted SM2 root at the moment asked about."""

    code = "sm2-chain"


@dataclass(frozen=True)
class Sm2CertificateFacts:
    """What a verifier reads from an SM2 certificate."""

    der: bytes
    subject: str
    issuer: str
    serial: int
    not_before: datetime
    not_after: datetime
    is_ca: bool
    public_key_der: bytes
    subject_fields: tuple[tuple[str, str], ...]

    @property
    def fingerprint(self) -> str:
        """Lowercase hex SHA-256 of the certificate DER."""
        return hashlib.sha256(self.der).hexdigest()

    def field(self, name: str) -> str | None:
        """The first subject attribute called ``name`` ("organization_name"…), if any."""
        for key, value in self.subject_fields:
            if key == name:
                return value
        return None


def _extensions(role: Sm2Role) -> list[dict[str, object]]:
    ca = role in (Sm2Role.ROOT, Sm2Role.SEAL_CA)
    constraints: dict[str, object] = {"ca": ca}
    if ca:
        constraints["path_len_constraint"] = 1 if role is Sm2Role.ROOT else 0
    usage = {"key_cert_sign", "crl_sign"} if ca else {"digital_signature", "non_repudiation"}
    extensions: list[dict[str, object]] = [
        {"extn_id": "basic_constraints", "critical": True, "extn_value": constraints},
        {"extn_id": "key_usage", "critical": True, "extn_value": usage},
    ]
    if role is not Sm2Role.ROOT:
        extensions.append(
            {"extn_id": "extended_key_usage", "critical": False, "extn_value": [_DOCUMENT_SIGNING]}
        )
    return extensions


def issue_sm2_certificate(
    *,
    issuer: Sm2Signer,
    issuer_certificate: bytes | None,
    subject: dict[str, str],
    public_key_der: bytes,
    serial: int,
    not_before: datetime,
    not_after: datetime,
    role: Sm2Role,
) -> bytes:
    """Issue an SM2 certificate (DER); a root when ``issuer_certificate`` is None.

    ``subject`` holds asn1crypto name attributes in order, e.g.
    ``{"country_name": "CN", "organization_name": "node-a", "common_name": "…"}``.

    Raises:
        CallerError: naive times, an empty window, a non-root without issuer certificate, or
            a root whose key is not the issuer's.
    """
    not_before = require_aware(not_before, "not_before")
    not_after = require_aware(not_after, "not_after")
    if not_after <= not_before:
        raise CallerError("a certificate's window must end after it starts")
    subject_name = x509.Name.build(subject, use_printable=False)
    if issuer_certificate is None:
        if role is not Sm2Role.ROOT:
            raise CallerError("only a root certificate is self-signed")
        if public_key_der != issuer.public_key_der:
            raise CallerError("a root certificate is signed by its own key")
        issuer_name = subject_name
    else:
        issuer_name = x509.Certificate.load(issuer_certificate).subject
    algorithm = {"algorithm": SM2_SM3_OID}
    tbs = x509.TbsCertificate(
        {
            "version": "v3",
            "serial_number": serial,
            "signature": algorithm,
            "issuer": issuer_name,
            "validity": {
                "not_before": x509.Time({"utc_time": not_before}),
                "not_after": x509.Time({"utc_time": not_after}),
            },
            "subject": subject_name,
            "subject_public_key_info": keys.PublicKeyInfo.load(public_key_der),
            "extensions": _extensions(role),
        }
    )
    signature = issuer.sign(tbs.dump())
    certificate = x509.Certificate(
        {"tbs_certificate": tbs, "signature_algorithm": algorithm, "signature_value": signature}
    )
    der: bytes = certificate.dump()
    return der


@functools.lru_cache(maxsize=256)
def read_sm2_certificate(der: bytes) -> Sm2CertificateFacts:
    """Read an SM2 certificate's facts (remembered: a verifier meets the same few often).

    Raises:
        BadPeerData: not a readable X.509 certificate.
    """
    try:
        cert = x509.Certificate.load(der, strict=True)
        tbs = cert["tbs_certificate"]
        basic = cert.basic_constraints_value
        validity = tbs["validity"]
        fields = tuple(
            (str(attribute["type"].native), str(attribute["value"].native))
            for rdn in tbs["subject"].chosen
            for attribute in rdn
        )
        return Sm2CertificateFacts(
            der=bytes(der),
            subject=tbs["subject"].human_friendly,
            issuer=tbs["issuer"].human_friendly,
            serial=int(tbs["serial_number"].native),
            not_before=validity["not_before"].native,
            not_after=validity["not_after"].native,
            is_ca=bool(basic is not None and basic["ca"].native),
            public_key_der=tbs["subject_public_key_info"].dump(),
            subject_fields=fields,
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise BadPeerData(f"not a readable X.509 certificate: {exc}") from None


@functools.lru_cache(maxsize=1024)
def _signature_checks(child: bytes, issuer_public_key: bytes) -> bool:
    # A pure function of the two byte strings: remembered, so that a verifier checking many
    # documents of a few seals does not verify the same certificates again.
    cert = x509.Certificate.load(child)
    if cert["signature_algorithm"]["algorithm"].dotted != SM2_SM3_OID:
        return False
    try:
        verify_sm2_signature(
            issuer_public_key, cert["signature_value"].native, cert["tbs_certificate"].dump()
        )
    except SignatureError:
        return False
    return True


def check_sm2_path(
    leaf: bytes, *, roots: Sequence[bytes], intermediates: Sequence[bytes], at: datetime
) -> tuple[Sm2CertificateFacts, ...]:
    """The path from ``leaf`` to one of ``roots``, every certificate valid at ``at``.

    Raises:
        Sm2ChainError: no such path; the message says where it broke.
        CallerError: ``at`` is naive.
    """
    at = require_aware(at, "at")
    if not roots:
        raise Sm2ChainError("no trusted SM2 root certificate was given")
    root_set = {bytes(r) for r in roots}
    candidates = [read_sm2_certificate(d) for d in (*roots, *intermediates)]
    current = read_sm2_certificate(leaf)
    path = [current]
    for _ in range(_MAX_DEPTH):
        if not current.not_before <= at <= current.not_after:
            raise Sm2ChainError(
                f"certificate {current.subject} is not valid at {at.isoformat()} "
                f"(valid {current.not_before.isoformat()} .. {current.not_after.isoformat()})"
            )
        if current.der in root_set:
            return tuple(path)
        issuers = [
            c
            for c in candidates
            if c.subject == current.issuer and c.is_ca and c.der != current.der
        ]
        issuer = next(
            (c for c in issuers if _signature_checks(current.der, c.public_key_der)), None
        )
        if issuer is None:
            reason = (
                "whose signature does not verify with its issuer's SM2 key"
                if issuers
                else f"whose issuer {current.issuer} is not a known SM2 CA"
            )
            raise Sm2ChainError(f"certificate {current.subject} does not chain: {reason}")
        current = issuer
        path.append(current)
    raise Sm2ChainError(f"the SM2 certificate path is longer than {_MAX_DEPTH}")
