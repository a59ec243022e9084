"""Make GB/T 38540 seals (``SES_Seal``) and signatures (``SES_Signature``), and read them.

What is signed, exactly as the standard says:

- the seal maker signs the DER of ``SES_SealInfo`` (``SES_Seal.signedValue``);
- the seal user signs the DER of ``TBS_Sign`` (``SES_Signature.signature``), which holds
  the whole seal, the signing time, the SM3 hash of the document and ``propertyInfo``.

Both are SM2 with SM3 and the standard user id ``1234567812345678``.

Example:
    >>> read_signature(b"not DER")
    Traceback (most recent call last):
    ...
    tongban.keys.gbt38540.sealing.Gbt38540FormatError: not a DER SES_Signature: ...
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

from asn1crypto import core
from cryptography.hazmat.primitives import hashes

from tongban.keys.clock import require_aware
from tongban.keys.errors import BadPeerData, CallerError
from tongban.keys.gbt38540.structures import (
    CertInfoList,
    ExtensionDatas,
    SesSeal,
    SesSealInfo,
    SesSignature,
    TbsSign,
)
from tongban.keys.signing import SM2_SM3_OID, Sm2Signer

__all__ = [
    "SEAL_TYPE_ORGANIZATION",
    "SEAL_VERSION",
    "SUPPORTED_VERSIONS",
    "Gbt38540FormatError",
    "SealPicture",
    "make_seal",
    "read_seal",
    "read_signature",
    "seal_certificates",
    "sign_document",
    "sm3_of",
]

SEAL_VERSION = 4
"""The version this module writes: GB/T 38540-2020."""
SUPPORTED_VERSIONS = (4, 5)
"""Versions read: 4, and 5 (the same layout, as some readers write it)."""
SEAL_TYPE_ORGANIZATION = 1
"""``SES_ESPropertyInfo.type`` of an organisation's seal (单位印章)."""

_CHUNK = 1 << 20
DocumentSource = Path | bytes | IO[bytes]


class Gbt38540FormatError(BadPeerData):
    """Bytes that are not a GB/T 38540 structure this reader accepts; the message says why."""

    code = "gbt38540-format"


@dataclass(frozen=True)
class SealPicture:
    """The seal's picture: its type ("PNG"), the image bytes and its size in millimetres."""

    data: bytes
    width_mm: int
    height_mm: int
    type: str = "PNG"


def sm3_of(document: DocumentSource) -> bytes:
    """SM3 of a document, read in segments from a file, a stream or bytes."""
    digest = hashes.Hash(hashes.SM3())
    if isinstance(document, bytes):
        digest.update(document)
    elif isinstance(document, Path):
        with document.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
    else:
        while chunk := document.read(_CHUNK):
            digest.update(chunk)
    return digest.finalize()


def _generalized(moment: datetime) -> core.GeneralizedTime:
    # Whole seconds, as every reader writes it (…Z with no fraction).
    return core.GeneralizedTime(moment.replace(microsecond=0))


def _ext_datas(extensions: Sequence[tuple[str, bool, bytes]]) -> ExtensionDatas | None:
    if not extensions:
        return None
    return ExtensionDatas(
        [
            {"extn_id": oid, "critical": critical, "extn_value": value}
            for oid, critical, value in extensions
        ]
    )


def make_seal(
    *,
    maker: Sm2Signer,
    maker_certificate: bytes,
    seal_id: str,
    name: str,
    user_certificates: Sequence[bytes],
    created: datetime,
    valid_start: datetime,
    valid_end: datetime,
    picture: SealPicture,
    seal_type: int = SEAL_TYPE_ORGANIZATION,
    vendor_id: str = "tongban",
    extensions: Sequence[tuple[str, bool, bytes]] = (),
) -> bytes:
    """A version-4 ``SES_Seal`` (DER) made and signed by the seal maker.

    Raises:
        CallerError: naive times, an empty window, no user certificate, or an id that is
            not ASCII (IA5String).
    """
    created = require_aware(created, "created")
    valid_start = require_aware(valid_start, "valid_start")
    valid_end = require_aware(valid_end, "valid_end")
    if valid_end <= valid_start:
        raise CallerError("a seal's validity must end after it starts")
    if not user_certificates:
        raise CallerError("a seal lists at least one certificate allowed to use it")
    if not (seal_id.isascii() and vendor_id.isascii()):
        raise CallerError("seal id and vendor id are IA5String: ASCII only")
    info = SesSealInfo(
        {
            "header": {"id": "ES", "version": SEAL_VERSION, "vid": vendor_id},
            "es_id": seal_id,
            "property": {
                "type": seal_type,
                "name": name,
                "cert_list_type": 1,
                "cert_list": CertInfoList([bytes(c) for c in user_certificates]),
                "create_date": _generalized(created),
                "valid_start": _generalized(valid_start),
                "valid_end": _generalized(valid_end),
            },
            "picture": {
                "type": picture.type,
                "data": picture.data,
                "width": picture.width_mm,
                "height": picture.height_mm,
            },
        }
    )
    ext = _ext_datas(extensions)
    if ext is not None:
        info["ext_datas"] = ext
    seal = SesSeal(
        {
            "e_seal_info": info,
            "cert": bytes(maker_certificate),
            "sign_alg_id": SM2_SM3_OID,
            "signed_value": maker.sign(info.dump()),
        }
    )
    der: bytes = seal.dump()
    return der


def seal_certificates(seal: SesSeal) -> tuple[bytes, ...] | tuple[tuple[str, bytes], ...]:
    """The seal's certificate list: DER certificates, or (algorithm, digest) pairs."""
    prop = seal["e_seal_info"]["property"]
    parsed = prop["cert_list"]
    if prop["cert_list_type"].native == 2:
        return tuple((str(d["type"].native), bytes(d["value"].native)) for d in parsed)
    return tuple(bytes(c.native) for c in parsed)


def sign_document(
    document: DocumentSource,
    *,
    seal: bytes,
    signer: Sm2Signer,
    signer_certificate: bytes,
    at: datetime,
    property_info: str,
    extensions: Sequence[tuple[str, bool, bytes]] = (),
) -> bytes:
    """A ``SES_Signature`` (DER) over ``document``'s SM3 hash with ``seal``, signed at ``at``.

    ``property_info`` names what was signed (a file name, or the path of an OFD
    ``Signature.xml``); it is an IA5String.

    Raises:
        CallerError: ``at`` naive or outside the seal's window, a non-ASCII
            ``property_info``, or a signer certificate that the seal does not list.
        Gbt38540FormatError: ``seal`` is not a seal this module reads.
    """
    at = require_aware(at, "at")
    if not property_info.isascii():
        raise CallerError("propertyInfo is an IA5String: ASCII only")
    start, end, listed = _seal_terms(bytes(seal))
    if not start <= at <= end:
        raise CallerError(
            f"the seal is valid {start.isoformat()} .. {end.isoformat()}, not at {at.isoformat()}"
        )
    digest = hashlib.sha256(signer_certificate).digest()
    if bytes(signer_certificate) not in listed and not any(
        isinstance(entry, tuple) and entry[1] == digest for entry in listed
    ):
        raise CallerError("the signer's certificate is not in the seal's certificate list")
    tbs = TbsSign(
        {
            "version": SEAL_VERSION,
            # The seal as it was read: embedded byte for byte, never re-encoded.
            "eseal": SesSeal.load(seal),
            "time_info": _generalized(at),
            "data_hash": sm3_of(document),
            "property_info": property_info,
        }
    )
    ext = _ext_datas(extensions)
    if ext is not None:
        tbs["ext_datas"] = ext
    signature = SesSignature(
        {
            "to_sign": tbs,
            "cert": bytes(signer_certificate),
            "signature_algorithm": SM2_SM3_OID,
            "signature": signer.sign(tbs.dump()),
        }
    )
    der: bytes = signature.dump()
    return der


@functools.lru_cache(maxsize=64)
def _seal_terms(
    seal: bytes,
) -> tuple[datetime, datetime, tuple[bytes, ...] | tuple[tuple[str, bytes], ...]]:
    """A seal's window and certificate list, read once per seal (a node seals many files)."""
    parsed = read_seal(seal)
    prop = parsed["e_seal_info"]["property"]
    return prop["valid_start"].native, prop["valid_end"].native, seal_certificates(parsed)


def _version_at(der: bytes, path: Sequence[int], what: str) -> int:
    """The INTEGER at ``path`` in a generic parse, refusing what is not DER at all."""
    try:
        node: core.Asn1Value = core.load(der, strict=True)
        for index in path:
            if not isinstance(node, core.Sequence):
                raise ValueError("not a SEQUENCE where one was expected")
            node = node[index]
        if not isinstance(node, core.Integer):
            raise ValueError("no version number where the standard puts it")
        return int(node.native)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise Gbt38540FormatError(f"not a DER {what}: {exc}") from None


def _check_version(version: int, what: str) -> None:
    if version == 1:
        raise Gbt38540FormatError(
            f"{what} of version 1 (GM/T 0031-2014) is not supported; only GB/T 38540-2020 "
            "(version 4) and version 5 are read"
        )
    if version not in SUPPORTED_VERSIONS:
        raise Gbt38540FormatError(
            f"{what} of version {version} is not supported; only GB/T 38540-2020 "
            "(version 4) and version 5 are read"
        )


def _full_parse(value: core.Asn1Value, what: str) -> None:
    try:
        _ = value.native  # asn1crypto parses lazily: make every field prove it is well formed
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        raise Gbt38540FormatError(f"malformed {what}: {exc}") from None


def read_seal(der: bytes) -> SesSeal:
    """Parse a ``SES_Seal`` of version 4 or 5, checking every field's encoding.

    Raises:
        Gbt38540FormatError: not DER, trailing bytes, version 1 or unknown, a bad field.
    """
    _check_version(_version_at(der, (0, 0, 1), "SES_Seal"), "an SES_Seal")
    try:
        seal: SesSeal = SesSeal.load(der, strict=True)
    except (ValueError, TypeError) as exc:
        raise Gbt38540FormatError(f"not a DER SES_Seal: {exc}") from None
    _full_parse(seal, "SES_Seal")
    _check_seal_fields(seal)
    return seal


def _check_seal_fields(seal: SesSeal) -> None:
    info = seal["e_seal_info"]
    _check_version(int(info["header"]["version"].native), "an SES_Seal")
    if info["header"]["id"].native != "ES":
        raise Gbt38540FormatError('the seal header\'s id is not "ES"')
    if info["property"]["cert_list_type"].native not in (1, 2):
        raise Gbt38540FormatError("the seal's certListType is neither 1 nor 2")


def read_signature(der: bytes) -> SesSignature:
    """Parse a ``SES_Signature`` of version 4 or 5, checking every field's encoding.

    Raises:
        Gbt38540FormatError: not DER, trailing bytes, version 1 or unknown, a bad field.
    """
    _check_version(_version_at(der, (0, 0), "SES_Signature"), "an SES_Signature")
    try:
        signature: SesSignature = SesSignature.load(der, strict=True)
    except (ValueError, TypeError) as exc:
        raise Gbt38540FormatError(f"not a DER SES_Signature: {exc}") from None
    _full_parse(signature, "SES_Signature")
    _check_seal_fields(signature["to_sign"]["eseal"])
    return signature
