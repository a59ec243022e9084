"""Detached CMS seals (``FILE.p7s``): the SignedData a third party checks with openssl."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

import asn1crypto.tsp  # noqa: F401
from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tongban.keys.clock import format_time, require_aware
from tongban.keys.ecert import ECertIdentifier
from tongban.keys.errors import CallerError
from tongban.keys.pki import (
    public_key_der,
)
from tongban.keys.seals._records import _CHUNK, ECERT_IDENTIFIER_ATTRIBUTE, DocumentSource
from tongban.keys.signing import Signer


def _chunks(source: DocumentSource) -> Iterator[bytes]:
    if isinstance(source, bytes):
        yield source
    elif isinstance(source, Path):
        with source.open("rb") as stream:
            yield from iter(lambda: stream.read(_CHUNK), b"")
    else:
        yield from iter(lambda: source.read(_CHUNK), b"")


def digest_document(source: DocumentSource, algorithm: str = "sha256") -> bytes:
    """Hash a document in 1 MiB chunks, so a large file is never held whole.

    Raises:
        CallerError: the algorithm is not SHA-256/384/512.
    """
    if algorithm not in ("sha256", "sha384", "sha512"):
        raise CallerError(f"digest algorithm {algorithm!r} is not accepted for seals")
    digest = hashlib.new(algorithm)
    for chunk in _chunks(source):
        digest.update(chunk)
    return digest.digest()


def _check_seal_key(signer: Signer, certificate: x509.Certificate, at: datetime) -> datetime:
    at = require_aware(at, "at")
    if public_key_der(signer.public_key) != certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise CallerError("the signer's key does not match the seal certificate")
    if signer.algorithm != "ecdsa-p256-sha256":
        raise CallerError(f"seals are ECDSA P-256, the signer is {signer.algorithm}")
    if not certificate.not_valid_before_utc <= at <= certificate.not_valid_after_utc:
        raise CallerError(
            f"the seal certificate is not valid at {format_time(at)} (valid "
            f"{format_time(certificate.not_valid_before_utc)} .. "
            f"{format_time(certificate.not_valid_after_utc)})"
        )
    return at


def _asn1_cert(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def _identifier_attribute(identifier: str) -> cms.CMSAttribute:
    return cms.CMSAttribute(
        {"type": ECERT_IDENTIFIER_ATTRIBUTE, "values": [core.UTF8String(identifier)]}
    )


# The detached SignedData is assembled as DER by hand: it is a fixed shape, and building it
# through a general ASN.1 library costs fifty times the signature itself.


def _der(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes((tag, size)) + content
    octets = (size.bit_length() + 7) // 8
    return bytes((tag, 0x80 | octets)) + size.to_bytes(octets, "big") + content


def _sequence(*parts: bytes) -> bytes:
    return _der(0x30, b"".join(parts))


def _set_of(*parts: bytes) -> bytes:
    # DER orders a SET OF by the encodings of its members.
    return _der(0x31, b"".join(sorted(parts)))


def _integer(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def _oid(dotted: str) -> bytes:
    numbers = [int(n) for n in dotted.split(".")]
    body = bytearray()
    for number in (numbers[0] * 40 + numbers[1], *numbers[2:]):
        chunk = [number & 0x7F]
        rest = number >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        body += bytes(reversed(chunk))
    return _der(0x06, bytes(body))


def _time(at: datetime) -> bytes:
    # RFC 5652 11.3: UTCTime for 1950-2049, GeneralizedTime otherwise.
    if 1950 <= at.year < 2050:
        return _der(0x17, at.strftime("%y%m%d%H%M%SZ").encode())
    return _der(0x18, at.strftime("%Y%m%d%H%M%SZ").encode())


_OID_DATA = _oid("1.2.840.113549.1.7.1")
_OID_SIGNED_DATA = _oid("1.2.840.113549.1.7.2")
_OID_CONTENT_TYPE = _oid("1.2.840.113549.1.9.3")
_OID_MESSAGE_DIGEST = _oid("1.2.840.113549.1.9.4")
_OID_SIGNING_TIME = _oid("1.2.840.113549.1.9.5")
_OID_SIGNING_CERTIFICATE_V2 = _oid("1.2.840.113549.1.9.16.2.47")
_OID_ECERT_IDENTIFIER = _oid(ECERT_IDENTIFIER_ATTRIBUTE)
_SHA256 = _sequence(_oid("2.16.840.1.101.3.4.2.1"))
_ECDSA_WITH_SHA256 = _sequence(_oid("1.2.840.10045.4.3.2"))


def _attribute(oid: bytes, value: bytes) -> bytes:
    return _sequence(oid, _set_of(value))


def _build_detached_cms(
    digest: bytes,
    signer: Signer,
    certificate: x509.Certificate,
    chain: Sequence[x509.Certificate],
    *,
    signing_time: datetime,
    identifier: str | None,
) -> bytes:
    """Assemble and sign the SignedData; no validity checks (callers make them)."""
    leaf = certificate.public_bytes(serialization.Encoding.DER)
    issuer = certificate.issuer.public_bytes()
    serial = _integer(certificate.serial_number)
    # ESS signing-certificate-v2 binds the signature to this certificate, not just its key.
    ess_cert_id = _sequence(
        _der(0x04, hashlib.sha256(leaf).digest()),
        _sequence(_sequence(_der(0xA4, issuer)), serial),
    )
    attributes = [
        _attribute(_OID_CONTENT_TYPE, _OID_DATA),
        _attribute(_OID_SIGNING_TIME, _time(signing_time)),
        _attribute(_OID_MESSAGE_DIGEST, _der(0x04, digest)),
        _attribute(_OID_SIGNING_CERTIFICATE_V2, _sequence(_sequence(ess_cert_id))),
    ]
    if identifier is not None:
        attributes.append(_attribute(_OID_ECERT_IDENTIFIER, _der(0x0C, identifier.encode())))
    signed_attrs = _set_of(*attributes)
    signature = signer.sign(signed_attrs)
    signer_info = _sequence(
        _integer(1),
        _sequence(issuer, serial),
        _SHA256,
        b"\xa0" + signed_attrs[1:],  # [0] IMPLICIT in place of the SET tag
        _ECDSA_WITH_SHA256,
        _der(0x04, signature),
    )
    certificates = b"".join([leaf, *(c.public_bytes(serialization.Encoding.DER) for c in chain)])
    signed_data = _sequence(
        _integer(1),
        _set_of(_SHA256),
        _sequence(_OID_DATA),
        _der(0xA0, certificates),
        _set_of(signer_info),
    )
    return _sequence(_OID_SIGNED_DATA, _der(0xA0, signed_data))


def seal_detached(
    document: DocumentSource,
    signer: Signer,
    certificate: x509.Certificate,
    *,
    chain: Sequence[x509.Certificate] = (),
    at: datetime,
    ecert_identifier: ECertIdentifier | None,
) -> bytes:
    """Seal any file: a detached CMS SignedData, DER, for ``FILE.p7s``.

    It carries the signing time ``at`` (whole seconds), the seal certificate and ``chain``,
    and the e-certificate identifier when one is given. The document is streamed.

    Raises:
        CallerError: the signer does not hold the certificate's key, or the certificate is
            not valid at ``at``.
    """
    return seal_digest(
        digest_document(document),
        signer,
        certificate,
        chain=chain,
        at=at,
        ecert_identifier=ecert_identifier,
    )


def seal_digest(
    sha256: bytes,
    signer: Signer,
    certificate: x509.Certificate,
    *,
    chain: Sequence[x509.Certificate] = (),
    at: datetime,
    ecert_identifier: ECertIdentifier | None,
) -> bytes:
    """:func:`seal_detached` for a document whose SHA-256 is already known.

    A relay node hashes result documents while it streams them into storage; sealing from
    that digest spares reading the document twice.

    Raises:
        CallerError: a digest of the wrong length, or as for :func:`seal_detached`.
    """
    if len(sha256) != 32:
        raise CallerError("a SHA-256 digest is 32 bytes")
    at = _check_seal_key(signer, certificate, at).replace(microsecond=0)
    identifier = str(ecert_identifier) if ecert_identifier is not None else None
    return _build_detached_cms(
        sha256, signer, certificate, chain, signing_time=at, identifier=identifier
    )
