"""Signed OFD documents (GB/T 33190): a result rendered as OFD, sealed, and verified.

An OFD document is a ZIP package of XML files. Signing adds, per GB/T 33190 §18:

- ``Doc_0/Signs/Signatures.xml`` listing the signatures, named from ``OFD.xml``'s DocBody;
- ``Doc_0/Signs/Sign_N/Signature.xml`` whose ``SignedInfo`` holds an SM3 check value for
  every protected file (every file of the package except ``Signatures.xml`` and the
  signature's own folder), the stamp's place on the page and the seal file;
- ``SignedValue.dat``: the ``SES_Signature`` whose ``dataHash`` is the SM3 of
  ``Signature.xml`` and whose ``propertyInfo`` is that file's path;
- ``Seal.esl``: the ``SES_Seal``, whose picture viewers draw as the stamp.

Verification reads the same structure back: each check value, which files no signature
covers, the seal file, and then the signature as for a ``.ses``.
"""

from __future__ import annotations

import base64
import io
import posixpath
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO
from xml.etree.ElementTree import Element

from defusedxml import ElementTree as SafeTree

from tongban.keys.clock import require_aware
from tongban.keys.gbt38540.sealing import (
    Gbt38540FormatError,
    sign_document,
    sm3_of,
)
from tongban.keys.signing import SM2_SM3_OID, Sm2Signer

__all__ = [
    "OFD_NAMESPACE",
    "SM3_OID",
    "OfdReference",
    "OfdSignature",
    "read_ofd_signature",
    "render_result_ofd",
    "sign_ofd",
]

OFD_NAMESPACE = "http://www.ofdspec.org/2016"
"""The XML namespace of GB/T 33190 documents."""
SM3_OID = "1.2.156.10197.1.401"
"""SM3, the ``CheckMethod`` of the references."""

_NS = {"ofd": OFD_NAMESPACE}
_SIGNS = "Doc_0/Signs"
_SIGNATURES = f"{_SIGNS}/Signatures.xml"
_MAX_ENTRIES = 10_000
_MAX_UNCOMPRESSED = 512 << 20
_XML_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'


@dataclass(frozen=True)
class OfdReference:
    """One protected file: its path in the package and the SM3 value the signature holds."""

    path: str
    check_value: bytes


@dataclass(frozen=True)
class OfdSignature:
    """One signature of an OFD package, as read from it (nothing checked yet)."""

    signature_xml_path: str
    signature_xml: bytes
    signed_value: bytes
    references: tuple[OfdReference, ...]
    check_method: str
    seal_file: bytes | None
    signature_count: int
    digests: dict[str, bytes]  # SM3 of every file in the package, by path


def _escape(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def render_result_ofd(title: str, lines: Sequence[str], *, doc_id: str, created: datetime) -> bytes:
    """An unsigned one-page A4 OFD document: ``title`` and ``lines`` in 宋体 (SimSun).

    Raises:
        CallerError: ``created`` is naive.
    """
    created = require_aware(created, "created")
    texts = [
        (title, 20.0, 30.0, 7.0),
        *((line, 20.0, 50.0 + 10 * i, 5.0) for i, line in enumerate(lines)),
    ]
    objects = "".join(
        f'<ofd:TextObject ID="{10 + i}" Boundary="{x} {y - size} 170 {size * 1.5}" Font="2" '
        f'Size="{size}"><ofd:TextCode X="0" Y="{size}">{_escape(text)}</ofd:TextCode>'
        "</ofd:TextObject>"
        for i, (text, x, y, size) in enumerate(texts)
    )
    files = {
        "OFD.xml": (
            f'<ofd:OFD xmlns:ofd="{OFD_NAMESPACE}" Version="1.0" DocType="OFD"><ofd:DocBody>'
            f"<ofd:DocInfo><ofd:DocID>{_escape(doc_id)}</ofd:DocID><ofd:Title>{_escape(title)}"
            f"</ofd:Title><ofd:CreationDate>{created.date().isoformat()}</ofd:CreationDate>"
            "<ofd:Creator>tongban</ofd:Creator></ofd:DocInfo>"
            "<ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot></ofd:DocBody></ofd:OFD>"
        ),
        "Doc_0/Document.xml": (
            f'<ofd:Document xmlns:ofd="{OFD_NAMESPACE}"><ofd:CommonData>'
            f"<ofd:MaxUnitID>{10 + len(texts)}</ofd:MaxUnitID><ofd:PageArea>"
            "<ofd:PhysicalBox>0 0 210 297</ofd:PhysicalBox></ofd:PageArea>"
            "<ofd:PublicRes>PublicRes.xml</ofd:PublicRes></ofd:CommonData>"
            '<ofd:Pages><ofd:Page ID="1" BaseLoc="Pages/Page_0/Content.xml"/></ofd:Pages>'
            "</ofd:Document>"
        ),
        "Doc_0/PublicRes.xml": (
            f'<ofd:Res xmlns:ofd="{OFD_NAMESPACE}" BaseLoc="Res"><ofd:Fonts>'
            '<ofd:Font ID="2" FontName="宋体" FamilyName="宋体"/></ofd:Fonts></ofd:Res>'
        ),
        "Doc_0/Pages/Page_0/Content.xml": (
            f'<ofd:Page xmlns:ofd="{OFD_NAMESPACE}"><ofd:Content>'
            f'<ofd:Layer ID="3">{objects}</ofd:Layer></ofd:Content></ofd:Page>'
        ),
    }
    return _zip({name: (_XML_HEAD + text).encode() for name, text in files.items()}, created)


def _zip(files: dict[str, bytes], moment: datetime) -> bytes:
    out = io.BytesIO()
    stamp = (
        max(moment.year, 1980),
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
    )
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as package:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            package.writestr(info, data)
    return out.getvalue()


def _open(source: Path | bytes | BinaryIO) -> zipfile.ZipFile:
    try:
        handle = io.BytesIO(source) if isinstance(source, bytes) else source
        package = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise Gbt38540FormatError(f"not an OFD package (a ZIP file): {exc}") from None
    entries = package.infolist()
    if len(entries) > _MAX_ENTRIES:
        raise Gbt38540FormatError(f"the OFD package has more than {_MAX_ENTRIES} files")
    if sum(e.file_size for e in entries) > _MAX_UNCOMPRESSED:
        raise Gbt38540FormatError("the OFD package expands to more than 512 MiB")
    return package


def _xml(package: zipfile.ZipFile, path: str) -> Element:
    try:
        data = package.read(path)
    except KeyError:
        raise Gbt38540FormatError(f"the OFD package has no {path}") from None
    try:
        root: Element = SafeTree.fromstring(data)
    except Exception as exc:  # defusedxml raises ParseError and its own refusals
        raise Gbt38540FormatError(f"{path} is not well-formed XML: {exc}") from None
    return root


def _resolve(base: str, location: str) -> str:
    """A package path from a location written in the file at ``base`` (absolute or not)."""
    joined = (
        location.lstrip("/")
        if location.startswith("/")
        else posixpath.join(posixpath.dirname(base), location)
    )
    normal = posixpath.normpath(joined)
    if normal.startswith("../") or normal == "..":
        raise Gbt38540FormatError(f"the location {location!r} leaves the package")
    return normal


def _text(element: Element, path: str) -> str | None:
    found = element.find(path, _NS)
    return None if found is None or found.text is None else found.text.strip()


def sign_ofd(
    ofd: bytes,
    *,
    seal: bytes,
    signer: Sm2Signer,
    signer_certificate: bytes,
    at: datetime,
    page_id: str = "1",
    boundary: tuple[float, float, float, float] = (140.0, 230.0, 40.0, 40.0),
) -> bytes:
    """``ofd`` with one more signature: every file so far protected by its SM3 value.

    ``boundary`` is where the stamp goes on page ``page_id`` (x, y, width, height in mm).

    Raises:
        Gbt38540FormatError: ``ofd`` is not an OFD package.
        CallerError: as :func:`~tongban.keys.gbt38540.sealing.sign_document`.
    """
    at = require_aware(at, "at")
    with _open(ofd) as package:
        files = {info.filename: package.read(info) for info in package.infolist()}
    root_xml = _xml_of(files, "OFD.xml")
    body = root_xml.find("ofd:DocBody", _NS)
    if body is None:
        raise Gbt38540FormatError("OFD.xml has no DocBody")
    count = 0
    if _text(body, "ofd:Signatures") is None:
        files["OFD.xml"] = files["OFD.xml"].replace(
            b"</ofd:DocBody>",
            f"<ofd:Signatures>{_SIGNATURES}</ofd:Signatures></ofd:DocBody>".encode(),
        )
        signature_list = (
            f'<ofd:Signatures xmlns:ofd="{OFD_NAMESPACE}">'
            "<ofd:MaxSignId>0</ofd:MaxSignId></ofd:Signatures>"
        )
        files[_SIGNATURES] = (_XML_HEAD + signature_list).encode()
    else:
        count = len(_xml_of(files, _SIGNATURES).findall("ofd:Signature", _NS))
    folder = f"{_SIGNS}/Sign_{count}"
    protected = {
        name: data for name, data in files.items() if name != _SIGNATURES and not name.endswith("/")
    }
    references = "".join(
        f'<ofd:Reference FileRef="/{_escape(name)}"><ofd:CheckValue>'
        f"{base64.b64encode(sm3_of(data)).decode()}</ofd:CheckValue></ofd:Reference>"
        for name, data in sorted(protected.items())
    )
    x, y, w, h = boundary
    signature_xml = (
        _XML_HEAD + f'<ofd:Signature xmlns:ofd="{OFD_NAMESPACE}"><ofd:SignedInfo>'
        '<ofd:Provider ProviderName="tongban" Version="0.1.0" Company="tongban"/>'
        f"<ofd:SignatureMethod>{SM2_SM3_OID}</ofd:SignatureMethod>"
        f"<ofd:SignatureDateTime>{at.strftime('%Y%m%d%H%M%SZ')}</ofd:SignatureDateTime>"
        f'<ofd:References CheckMethod="{SM3_OID}">{references}</ofd:References>'
        f'<ofd:StampAnnot ID="{count + 1}" PageRef="{_escape(page_id)}" '
        f'Boundary="{x} {y} {w} {h}"/>'
        f"<ofd:Seal><ofd:BaseLoc>/{folder}/Seal.esl</ofd:BaseLoc></ofd:Seal>"
        f"</ofd:SignedInfo><ofd:SignedValue>/{folder}/SignedValue.dat</ofd:SignedValue>"
        "</ofd:Signature>"
    ).encode()
    signed_value = sign_document(
        signature_xml,
        seal=seal,
        signer=signer,
        signer_certificate=signer_certificate,
        at=at,
        property_info=f"/{folder}/Signature.xml",
    )
    files[f"{folder}/Signature.xml"] = signature_xml
    files[f"{folder}/SignedValue.dat"] = signed_value
    files[f"{folder}/Seal.esl"] = seal
    entry = f'<ofd:Signature ID="{count + 1}" Type="Seal" BaseLoc="/{folder}/Signature.xml"/>'
    files[_SIGNATURES] = (
        files[_SIGNATURES]
        .replace(
            f"<ofd:MaxSignId>{count}</ofd:MaxSignId>".encode(),
            f"<ofd:MaxSignId>{count + 1}</ofd:MaxSignId>".encode(),
        )
        .replace(b"</ofd:Signatures>", entry.encode() + b"</ofd:Signatures>")
    )
    return _zip(files, at)


def _xml_of(files: dict[str, bytes], path: str) -> Element:
    if path not in files:
        raise Gbt38540FormatError(f"the OFD package has no {path}")
    try:
        root: Element = SafeTree.fromstring(files[path])
    except Exception as exc:  # defusedxml raises ParseError and its own refusals
        raise Gbt38540FormatError(f"{path} is not well-formed XML: {exc}") from None
    return root


def read_ofd_signature(source: Path | bytes | BinaryIO) -> OfdSignature:
    """The last signature of an OFD package, with its references (nothing checked yet).

    Raises:
        Gbt38540FormatError: not an OFD package, no signature, or a malformed one.
    """
    with _open(source) as package:
        digests = {}
        for info in package.infolist():
            if not info.filename.endswith("/"):
                with package.open(info) as member:
                    digests[posixpath.normpath(info.filename)] = sm3_of(member)
        body = _xml(package, "OFD.xml").find("ofd:DocBody", _NS)
        location = None if body is None else _text(body, "ofd:Signatures")
        if location is None:
            raise Gbt38540FormatError(
                "the OFD document carries no signature (no Signatures in OFD.xml)"
            )
        list_path = _resolve("OFD.xml", location)
        entries = _xml(package, list_path).findall("ofd:Signature", _NS)
        if not entries:
            raise Gbt38540FormatError(f"{list_path} lists no signature")
        base_loc = entries[-1].get("BaseLoc")
        if not base_loc:
            raise Gbt38540FormatError(f"the last signature in {list_path} has no BaseLoc")
        signature_path = _resolve(list_path, base_loc)
        signature = _xml(package, signature_path)
        signature_xml = package.read(signature_path)
        value_loc = _text(signature, "ofd:SignedValue")
        refs = signature.find("ofd:SignedInfo/ofd:References", _NS)
        if value_loc is None or refs is None:
            raise Gbt38540FormatError(f"{signature_path} lacks SignedValue or References")
        try:
            signed_value = package.read(_resolve(signature_path, value_loc))
        except KeyError:
            raise Gbt38540FormatError(f"the signed value {value_loc} is missing") from None
        references = []
        for ref in refs.findall("ofd:Reference", _NS):
            file_ref, value = ref.get("FileRef"), _text(ref, "ofd:CheckValue")
            if not file_ref or value is None:
                raise Gbt38540FormatError(
                    f"{signature_path} has a Reference without FileRef or CheckValue"
                )
            try:
                check = base64.b64decode(value, validate=True)
            except ValueError:
                raise Gbt38540FormatError(f"the CheckValue of {file_ref} is not base64") from None
            references.append(OfdReference(_resolve(signature_path, file_ref), check))
        seal_loc = _text(signature, "ofd:SignedInfo/ofd:Seal/ofd:BaseLoc")
        seal_file = None
        if seal_loc is not None:
            try:
                seal_file = package.read(_resolve(signature_path, seal_loc))
            except KeyError:
                raise Gbt38540FormatError(f"the seal file {seal_loc} is missing") from None
        return OfdSignature(
            signature_xml_path=signature_path,
            signature_xml=signature_xml,
            signed_value=signed_value,
            references=tuple(references),
            check_method=refs.get("CheckMethod", "MD5"),
            seal_file=seal_file,
            signature_count=len(entries),
            digests=digests,
        )
