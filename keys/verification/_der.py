"""Reading a seal's CMS SignedData (RFC 5652) with a small DER walker of its own.

A seal is read without a general ASN.1 library: the shape is fixed, the walker never
re-encodes what it reads, and it is many times faster. Every slice is bounds-checked;
anything unexpected is a :class:`_FormatError`, which the verifier reports as
INVALID/FORMAT_FAILURE. What is read here is not yet judged: the checks do that.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from tongban.keys.seals import ECERT_IDENTIFIER_ATTRIBUTE

_MAX_P7S = 1 << 20


class _FormatError(Exception):
    """The signature container cannot be processed."""


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
