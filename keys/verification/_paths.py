"""Certificate paths of seal certificates: what a certificate says, and whether it chains.

A path is built with pyca/cryptography's verifier from the seal's certificate to one of the
trusted roots, through the certificates the seal carries; every CA on the way must be one
that may issue document-signing certificates (ADR 0004). Facts and paths are remembered, so
one verifier checks many documents of the same seal cheaply.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from tongban.keys.errors import BadPeerData
from tongban.keys.pki import DOCUMENT_SIGNING, Role
from tongban.keys.seal_subject import seal_identity


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


class _CertificatePaths:
    """Builds and remembers the paths of seal certificates to fixed trusted roots."""

    def __init__(self, roots: Sequence[x509.Certificate]) -> None:
        self._roots = tuple(roots)
        self._paths: dict[tuple[str, ...], tuple[x509.Certificate, ...]] = {}
        self._facts: dict[bytes, _CertFacts] = {}

    def facts_of(self, der: bytes) -> _CertFacts:
        """What one certificate says, read once.

        Raises: ValueError for a certificate that cannot be read.
        """
        facts = self._facts.get(der)
        if facts is None:
            if len(self._facts) >= _FACTS_CACHE:
                self._facts.clear()
            facts = self._facts[der] = _CertFacts.of(der)
        return facts

    def path(
        self, leaf: _CertFacts, extra: Sequence[bytes], moment: datetime
    ) -> tuple[tuple[x509.Certificate, ...] | None, str]:
        """The path from ``leaf`` to a trusted root (leaf first), or None and why not.

        ``extra`` are the certificates the seal carries; ``moment`` is when the path should
        hold, tried first if the leaf was valid then.

        Raises: ValueError for an extra certificate that cannot be read.
        """
        if not self._roots:
            return None, "no trusted root certificate was given"
        others = [self.facts_of(der) for der in extra if der != leaf.der]
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


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _key_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None
