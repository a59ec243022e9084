"""Electronic seals (电子印章): registration records, seal images, and sealing documents.

A seal is a registered name (e.g. 鄂州市行政审批局行政审批专用章) of an organisation, bound
to a P-256 key and an X.509 certificate under the federation root. Any file is sealed as a
detached CMS SignedData (DER ``.p7s``) that ``openssl cms -verify`` accepts; a PDF is sealed
in place as PAdES with the seal image and a QR code on the page. Both carry the signing time,
the certificate chain and, as a signed attribute, the e-certificate identifier.

The private key is only reached through a :class:`~tongban.keys.signing.Signer`, so a key in
an HSM seals the same way as one in a file.

Example:
    >>> from datetime import UTC, datetime, timedelta
    >>> from tongban.keys.pki import generate_root
    >>> from tongban.keys.signing import PrivateKeySigner
    >>> now = datetime(2026, 1, 1, tzinfo=UTC)
    >>> root_key, root = generate_root(now=now)
    >>> seal = create_seal(seal_id="420700-approval", name="鄂州市行政审批局行政审批专用章",
    ...     org_uscc="11420700MB1539542A", node_id="420700", issuer_key=root_key,
    ...     issuer_cert=root, not_before=now, not_after=now + timedelta(days=365),
    ...     image_png=b"png", now=now)
    >>> p7s = seal_detached(b"permit", PrivateKeySigner(seal.key), seal.record.certificate,
    ...     at=now, ecert_identifier=None)
    >>> p7s[:1]
    b'0'
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import io
import math
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

# Imported for its side effect: it adds signing-certificate-v2 to asn1crypto's CMS attribute
# table, which asn1crypto caches on first use; pyHanko needs the entry when it signs PDFs.
import asn1crypto.tsp  # noqa: F401
from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tongban.keys.clock import format_time, parse_time, require_aware
from tongban.keys.ecert import ECertIdentifier, verification_link
from tongban.keys.errors import BadPeerData, CallerError
from tongban.keys.identifiers import InvalidIdentifier, validate_credit_code
from tongban.keys.pki import (
    Role,
    certificate_fingerprint,
    certificate_pem,
    generate_signing_key,
    issue_certificate,
    load_certificate,
    public_key_der,
)
from tongban.keys.signing import Signer

__all__ = [
    "ECERT_IDENTIFIER_ATTRIBUTE",
    "FONT_ENV_VAR",
    "MAX_SEAL_IMAGE_BYTES",
    "SEAL_IMAGE_SIDES",
    "BadSealImage",
    "DocumentSource",
    "NewSeal",
    "RevocationReason",
    "SealFontMissingError",
    "SealRecord",
    "check_seal_image",
    "create_seal",
    "digest_document",
    "find_cjk_font",
    "render_seal_image",
    "seal_detached",
    "seal_digest",
    "seal_pdf",
]

# A UUID-derived OID (ITU-T X.667): an attribute of our own needs no registered arc.
ECERT_IDENTIFIER_ATTRIBUTE = "2.25.31634492887665145451589254790945096114"
FONT_ENV_VAR = "TONGBAN_SEAL_FONT"
SEAL_RED = (230, 0, 18, 255)

DocumentSource = Path | bytes | BinaryIO
_CHUNK = 1 << 20
_SEAL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_MAX_NAME = 40
# Well-known places of CJK fonts (Debian fonts-wqy-zenhei / fonts-noto-cjk / arphic,
# macOS, Windows), tried before asking fontconfig.
_FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Bold.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/System/Library/Fonts/STHeiti Medium.ttc",
    "/System/Library/Fonts/PingFang.ttc",
    "C:/Windows/Fonts/simsun.ttc",
    "C:/Windows/Fonts/simhei.ttf",
)


# A seal image to register: a PNG of at most this many bytes, each side within this range
# of pixels (the drawn seal is 480 px; a stamp is printed about 4 cm wide).
MAX_SEAL_IMAGE_BYTES = 1 << 20
SEAL_IMAGE_SIDES = (32, 2048)


class BadSealImage(CallerError):
    """A seal image that is not a PNG within the size limits, or does not decode."""

    code = "bad-seal-image"


def check_seal_image(png: bytes) -> tuple[int, int]:
    """Decode a seal image as a PNG within the limits; return its width and height.

    The header is read (and its size checked) before any pixel is decoded.

    Raises:
        BadSealImage: too many bytes, not a PNG, a side out of range, or undecodable.
    """
    from PIL import Image, UnidentifiedImageError

    if len(png) > MAX_SEAL_IMAGE_BYTES:
        raise BadSealImage(f"seal image is {len(png)} bytes; the limit is {MAX_SEAL_IMAGE_BYTES}")
    try:
        with Image.open(io.BytesIO(png), formats=["PNG"]) as image:
            width, height = image.size
            low, high = SEAL_IMAGE_SIDES
            if not (low <= width <= high and low <= height <= high):
                raise BadSealImage(
                    f"seal image is {width}x{height} pixels; each side must be {low}-{high}"
                )
            image.load()
    except UnidentifiedImageError:
        raise BadSealImage("seal image is not a PNG") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise BadSealImage(f"seal image does not decode as a PNG: {exc}") from None
    return width, height


class SealFontMissingError(CallerError):
    """No font with Chinese characters is available to draw a seal image."""

    code = "seal-font-missing"


class RevocationReason(enum.StrEnum):
    """Why a seal was revoked: the reason codes of RFC 5280 (section 5.3.1) that fit a seal.

    The reason decides what a revocation does to seals whose time of sealing is not proven
    (ADR 0006): after a compromise, or for no stated reason, the signing time a seal claims is
    no evidence, since whoever holds the key can write any time; after an orderly retirement
    (superseded, cessationOfOperation, affiliationChanged) it is believed.
    """

    UNSPECIFIED = "unspecified"
    KEY_COMPROMISE = "keyCompromise"
    CA_COMPROMISE = "caCompromise"
    AFFILIATION_CHANGED = "affiliationChanged"
    SUPERSEDED = "superseded"
    CESSATION_OF_OPERATION = "cessationOfOperation"

    @property
    def key_possibly_compromised(self) -> bool:
        """True unless the reason says the key was retired in good order.

        ``unspecified`` counts as a possible compromise: a revocation that does not say why
        must not leave a thief's backdated seals VALID.
        """
        return self in (
            RevocationReason.UNSPECIFIED,
            RevocationReason.KEY_COMPROMISE,
            RevocationReason.CA_COMPROMISE,
        )

    @classmethod
    def from_code(cls, code: str) -> RevocationReason:
        """The reason for an RFC 5280 code such as ``keyCompromise``; ``""`` is unspecified.

        Raises:
            CallerError: not one of the codes.
        """
        if not code.strip():
            return cls.UNSPECIFIED
        try:
            return cls(code.strip())
        except ValueError:
            raise CallerError(
                f"unknown revocation reason {code!r}: one of {', '.join(cls)}"
            ) from None

    @classmethod
    def from_recorded(cls, text: str) -> tuple[RevocationReason, str]:
        """Read the reason field of a stored or published record, old ones included.

        Records written before reasons were codes hold free text (``印章钥匙泄露``); such a
        text becomes the note of an ``unspecified`` revocation, which counts as a possible
        compromise. Returns the reason and the note that text leaves.
        """
        try:
            return cls(text), ""
        except ValueError:
            return cls.UNSPECIFIED, text


@dataclass(frozen=True)
class SealRecord:
    """A registered seal as the federation directory publishes it."""

    seal_id: str
    name: str
    org_uscc: str
    node_id: str
    certificate: x509.Certificate
    image_sha256: str
    not_before: datetime
    not_after: datetime
    revoked_at: datetime | None = None
    revocation_reason: RevocationReason | None = None  # set exactly when revoked_at is
    revocation_note: str = ""  # the admin's words, for people; the reason is what counts

    @property
    def certificate_fingerprint(self) -> str:
        return certificate_fingerprint(self.certificate)

    def valid_at(self, at: datetime) -> bool:
        """True if the seal may be applied at ``at``: inside its window, not yet revoked."""
        at = require_aware(at, "at")
        if not self.not_before <= at <= self.not_after:
            return False
        return self.revoked_at is None or at < self.revoked_at

    def revoked(
        self,
        at: datetime,
        reason: RevocationReason | str = RevocationReason.UNSPECIFIED,
        note: str = "",
    ) -> SealRecord:
        """This record revoked from ``at`` on, for ``reason``, with the admin's ``note``.

        Seals made before ``at`` stay valid only where their time is proven, or where the
        reason is an orderly retirement (see :class:`RevocationReason`).

        Raises:
            CallerError: ``reason`` is not a revocation reason code, or ``at`` is naive.
        """
        code = (
            reason if isinstance(reason, RevocationReason) else RevocationReason.from_code(reason)
        )
        return replace(
            self,
            revoked_at=require_aware(at, "revoked_at"),
            revocation_reason=code,
            revocation_note=note.strip(),
        )

    @property
    def revocation_text(self) -> str:
        """The reason code and the note, as a report shows them: ``keyCompromise: 钥匙泄露``."""
        if self.revocation_reason is None:
            return ""
        code = self.revocation_reason.value
        return f"{code}: {self.revocation_note}" if self.revocation_note else code

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "seal_id": self.seal_id,
            "name": self.name,
            "org_uscc": self.org_uscc,
            "node_id": self.node_id,
            "certificate": certificate_pem(self.certificate).decode(),
            "image_sha256": self.image_sha256,
            "not_before": format_time(self.not_before),
            "not_after": format_time(self.not_after),
            "revoked_at": format_time(self.revoked_at) if self.revoked_at else None,
            "revocation_reason": self.revocation_reason.value if self.revocation_reason else "",
            "revocation_note": self.revocation_note,
        }

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> SealRecord:
        """Rebuild from :meth:`to_json_dict` output.

        Raises:
            BadPeerData: fields missing or malformed.
        """
        try:
            revoked = data.get("revoked_at")
            reason: RevocationReason | None = None
            note = str(data.get("revocation_note") or "")
            if revoked:
                reason, old_note = RevocationReason.from_recorded(
                    str(data.get("revocation_reason") or "")
                )
                note = note or old_note
            return cls(
                seal_id=str(data["seal_id"]),
                name=str(data["name"]),
                org_uscc=str(data["org_uscc"]),
                node_id=str(data["node_id"]),
                certificate=load_certificate(str(data["certificate"]).encode()),
                image_sha256=str(data["image_sha256"]),
                not_before=parse_time(data["not_before"]),
                not_after=parse_time(data["not_after"]),
                revoked_at=parse_time(revoked) if revoked else None,
                revocation_reason=reason,
                revocation_note=note if revoked else "",
            )
        except BadPeerData as exc:
            raise BadPeerData(f"malformed seal record: {exc.message}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BadPeerData(f"malformed seal record: {exc!r}") from None


@dataclass(frozen=True)
class NewSeal:
    """A freshly registered seal; ``key`` is None when the key lives elsewhere (an HSM)."""

    record: SealRecord
    key: ec.EllipticCurvePrivateKey | None
    image_png: bytes


def create_seal(
    *,
    seal_id: str,
    name: str,
    org_uscc: str,
    node_id: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    issuer_cert: x509.Certificate,
    not_before: datetime,
    not_after: datetime,
    now: datetime,
    image_png: bytes | None = None,
    key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey | None = None,
    font_path: Path | None = None,
) -> NewSeal:
    """Register a seal: a P-256 key, its certificate for the seal window, and an image.

    ``key`` may be a private key, a public key whose private half stays in an HSM, or None
    for a new key. Without ``image_png`` the round red seal is drawn.

    Raises:
        CallerError: a malformed id, name or credit code, an empty window, a non-P-256 key.
        SealFontMissingError: an image must be drawn and no CJK font is found.
    """
    if not _SEAL_ID.fullmatch(seal_id):
        raise CallerError(f"seal id {seal_id!r} must be 1-64 characters of A-Z a-z 0-9 . _ -")
    if not name.strip() or len(name) > _MAX_NAME:
        raise CallerError(f"seal name must be 1-{_MAX_NAME} characters, got {len(name)}")
    try:
        if validate_credit_code(org_uscc) != org_uscc:
            raise CallerError(f"credit code {org_uscc!r} must be upper case")
    except InvalidIdentifier as exc:
        raise CallerError(f"owning organisation {org_uscc!r}: {exc.message}") from None
    if not node_id:
        raise CallerError("a seal belongs to a node; node_id is empty")
    # Certificates and signing times have whole seconds; so must the published window, or a
    # document sealed in the seal's first second would fall before its own record.
    start = require_aware(not_before, "not_before").replace(microsecond=0)
    end = require_aware(not_after, "not_after").replace(microsecond=0)
    if end <= start:
        raise CallerError(f"seal window is empty: {format_time(start)} .. {format_time(end)}")
    if key is None:
        key = generate_signing_key()
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    if not isinstance(public.curve, ec.SECP256R1):
        raise CallerError(f"seal keys are P-256, got {public.curve.name}")
    certificate = issue_certificate(
        issuer_key,
        issuer_cert,
        public,
        role=Role.SEAL,
        node_id=node_id,
        name=seal_id,
        now=now,
        not_before=start,
        not_after=end,
    )
    if image_png is None:
        image_png = render_seal_image(name, font_path=font_path)
    record = SealRecord(
        seal_id=seal_id,
        name=name,
        org_uscc=org_uscc,
        node_id=node_id,
        certificate=certificate,
        image_sha256=hashlib.sha256(image_png).hexdigest(),
        not_before=start,
        not_after=end,
    )
    private = key if isinstance(key, ec.EllipticCurvePrivateKey) else None
    return NewSeal(record, private, image_png)


# --- seal image -------------------------------------------------------------------------


def find_cjk_font(font_path: Path | None = None) -> Path:
    """Locate a font that has Chinese characters.

    Tried in order: ``font_path``, the ``TONGBAN_SEAL_FONT`` environment variable, a few
    well-known locations, then ``fc-list :lang=zh``.

    Raises:
        SealFontMissingError: none found.
    """
    if font_path is not None:
        if not font_path.is_file():
            raise SealFontMissingError(f"seal font {font_path} does not exist")
        return font_path
    configured = os.environ.get(FONT_ENV_VAR)
    if configured:
        if not Path(configured).is_file():
            raise SealFontMissingError(f"{FONT_ENV_VAR}={configured} does not exist")
        return Path(configured)
    for candidate in _FONT_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    fc_list = shutil.which("fc-list")
    if fc_list:
        try:
            listing = subprocess.run(
                [fc_list, ":lang=zh", "file"],
                check=False,
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            listing = ""
        for line in sorted(listing.splitlines()):
            path = Path(line.split(":", 1)[0].strip())
            if path.suffix.lower() in (".ttf", ".ttc", ".otf") and path.is_file():
                return path
    raise SealFontMissingError(
        "no font with Chinese characters found to draw the seal image; install one "
        "(Debian: apt-get install fonts-wqy-zenhei or fonts-noto-cjk), set "
        f"{FONT_ENV_VAR} to a .ttf/.ttc/.otf file, or pass a seal image"
    )


def _star(cx: float, cy: float, outer: float) -> list[tuple[float, float]]:
    inner = outer * 0.382  # the golden-ratio inner radius of a regular pentagram
    points = []
    for i in range(10):
        radius = outer if i % 2 == 0 else inner
        angle = math.pi * i / 5
        points.append((cx + radius * math.sin(angle), cy - radius * math.cos(angle)))
    return points


def render_seal_image(name: str, *, size: int = 480, font_path: Path | None = None) -> bytes:
    """Draw the round red seal: ``name`` along the upper rim, a star in the centre; PNG.

    Raises:
        CallerError: an empty name or a size below 120 px.
        SealFontMissingError: no CJK font is found.
    """
    from PIL import Image, ImageDraw, ImageFont

    if not name.strip():
        raise CallerError("seal name is empty")
    if size < 120:
        raise CallerError(f"seal image size {size} px is too small; use at least 120")
    font_file = find_cjk_font(font_path)
    image = Image.new("RGBA", (size, size), (255, 255, 255, 0))
    draw = ImageDraw.Draw(image)
    centre = size / 2
    ring = size * 0.035
    outer = size / 2 - 2
    draw.ellipse(
        (centre - outer, centre - outer, centre + outer, centre + outer),
        outline=SEAL_RED,
        width=round(ring),
    )
    draw.polygon(_star(centre, centre, size * 0.17), fill=SEAL_RED)
    # Characters sit evenly on an arc over the top, as on a GA 241 official seal; long
    # names get smaller characters rather than a wider arc.
    chars = [c for c in name if not c.isspace()]
    span = math.radians(min(250.0, 32.0 * len(chars)))
    font_size = size * 0.14
    text_radius = outer - ring - font_size * 0.65
    font_size = min(font_size, text_radius * span / len(chars) * 0.92)
    text_radius = outer - ring - font_size * 0.62
    try:
        font = ImageFont.truetype(str(font_file), size=round(font_size))
    except OSError as exc:
        raise SealFontMissingError(f"cannot load seal font {font_file}: {exc}") from None
    cell = round(font_size * 1.5)
    for i, char in enumerate(chars):
        theta = -span / 2 + span * (i + 0.5) / len(chars)
        glyph = Image.new("RGBA", (cell, cell), (255, 255, 255, 0))
        ImageDraw.Draw(glyph).text(
            (cell / 2, cell / 2),
            char,
            font=font,
            fill=SEAL_RED,
            anchor="mm",
            stroke_width=max(1, round(font_size / 28)),
            stroke_fill=SEAL_RED,
        )
        glyph = glyph.rotate(-math.degrees(theta), resample=Image.Resampling.BICUBIC)
        x = centre + text_radius * math.sin(theta) - cell / 2
        y = centre - text_radius * math.cos(theta) - cell / 2
        image.alpha_composite(glyph, dest=(round(x), round(y)))
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


# --- detached CMS -----------------------------------------------------------------------


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


# --- PAdES ------------------------------------------------------------------------------


def _pyhanko_signer(
    signer: Signer,
    certificate: x509.Certificate,
    chain: Sequence[x509.Certificate],
    identifier: str,
) -> Any:
    from pyhanko.sign import signers
    from pyhanko.sign.attributes import CMSAttributeProvider, SignedAttributeProviderSpec
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    class IdentifierProvider(CMSAttributeProvider):
        attribute_type = ECERT_IDENTIFIER_ATTRIBUTE

        async def get_attribute(self, dry_run: bool = False) -> cms.CMSAttribute:
            return _identifier_attribute(identifier)

    class WithIdentifier(SignedAttributeProviderSpec):
        def __init__(self, inner: SignedAttributeProviderSpec) -> None:
            self._inner = inner

        def signed_attr_providers(
            self, data_digest: bytes, digest_algorithm: str
        ) -> Iterator[CMSAttributeProvider]:
            yield from self._inner.signed_attr_providers(
                data_digest=data_digest, digest_algorithm=digest_algorithm
            )
            yield IdentifierProvider()

    class SealSigner(signers.Signer):
        """pyHanko's signer over our :class:`Signer`, adding the identifier attribute."""

        async def async_sign_raw(
            self, data: bytes, digest_algorithm: str, dry_run: bool = False
        ) -> bytes:
            if digest_algorithm != "sha256":
                raise CallerError(f"seals use SHA-256, pyHanko asked for {digest_algorithm}")
            if dry_run:
                return bytes(72)  # the longest DER ECDSA P-256 signature
            return signer.sign(data)

        def _signed_attr_provider_spec(self, *args: Any, **kwargs: Any) -> Any:
            return WithIdentifier(super()._signed_attr_provider_spec(*args, **kwargs))

    return SealSigner(
        signing_cert=_asn1_cert(certificate),
        cert_registry=SimpleCertificateStore.from_certs(  # type: ignore[no-untyped-call]
            [_asn1_cert(c) for c in chain]
        ),
        signature_mechanism=algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}),
    )


def _stamp_box(writer: Any, page: int) -> tuple[int, int, int, int]:
    page_ref, _ = writer.find_page_for_modification(page)
    x0, y0, x1, _ = (float(v) for v in page_ref.get_object()["/MediaBox"])
    width, height = 250, 110
    right = int(x1) - 36
    bottom = int(y0) + 36
    return (max(int(x0), right - width), bottom, right, bottom + height)


def _add_link(writer: Any, page: int, box: tuple[int, int, int, int], url: str) -> None:
    # Viewers open the verification page on a click on the QR code (the stamp's left
    # square); the rest of the stamp stays the signature widget that shows seal details.
    from pyhanko.pdf_utils import generic as typed_generic
    from pyhanko.pdf_utils.generic import pdf_name, pdf_string

    generic: Any = typed_generic  # its object constructors carry no annotations
    x1, y1, x2, y2 = box
    qr_area = (x1, y1, min(x2, x1 + (y2 - y1)), y2)
    annotation = generic.DictionaryObject(
        {
            pdf_name("/Type"): pdf_name("/Annot"),
            pdf_name("/Subtype"): pdf_name("/Link"),
            pdf_name("/Rect"): generic.ArrayObject([generic.FloatObject(v) for v in qr_area]),
            pdf_name("/Border"): generic.ArrayObject([generic.NumberObject(0)] * 3),
            pdf_name("/A"): generic.DictionaryObject(
                {pdf_name("/S"): pdf_name("/URI"), pdf_name("/URI"): pdf_string(url)}
            ),
        }
    )
    page_ref, _ = writer.find_page_for_modification(page)
    writer.register_annotation(page_ref, writer.add_object(annotation))


async def _sign_pdf_async(
    pdf_signer: Any, writer: Any, at: datetime, params: dict[str, str], output: BinaryIO
) -> None:
    from pyhanko.pdf_utils.misc import finalise_output
    from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes

    # PdfSigner.async_sign_pdf, except that the signing time is ours, not the wall clock.
    session = pdf_signer.init_signing_session(writer)
    session.system_time = at
    validation_info = await session.perform_presign_validation(writer)
    reserved = await session.estimate_signature_container_size(validation_info, tight=False)
    tbs = session.prepare_tbs_document(
        validation_info=validation_info, bytes_reserved=reserved, appearance_text_params=params
    )
    prepared, res_output = tbs.digest_tbs_document(output=output, in_place=False)
    post = await tbs.perform_signature(
        document_digest=prepared.document_digest,
        pdf_cms_signed_attrs=PdfCMSSignedAttributes(signing_time=at),
    )
    await post.post_signature_processing(res_output)
    # pyHanko signs in a buffer when the output cannot be read back; copy it over then.
    finalise_output(output, res_output)  # type: ignore[no-untyped-call]


def seal_pdf(
    document: DocumentSource,
    output: BinaryIO,
    signer: Signer,
    certificate: x509.Certificate,
    *,
    chain: Sequence[x509.Certificate] = (),
    at: datetime,
    ecert_identifier: ECertIdentifier,
    verification_url: str,
    seal_image_png: bytes,
    page: int = 0,
    box: tuple[int, int, int, int] | None = None,
    field_name: str = "Seal",
) -> None:
    """Seal a PDF as PAdES (B-B) with a visible stamp: seal image and QR code.

    The QR code carries :func:`~tongban.keys.ecert.verification_link` of the identifier.
    The sealed PDF is an incremental update of ``document``, written to ``output``. ``box``
    is (x1, y1, x2, y2) in points on page ``page``; by default the lower right corner.

    Raises:
        CallerError: key/certificate mismatch or not valid at ``at``, or an unusable PDF.
    """
    from PIL import Image
    from pyhanko.pdf_utils.images import PdfImage
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.layout import AxisAlignment, InnerScaling, Margins, SimpleBoxLayoutRule
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.sign import fields, signers
    from pyhanko.stamp import QRStampStyle

    at = _check_seal_key(signer, certificate, at).replace(microsecond=0)
    source: BinaryIO = (
        io.BytesIO(document)
        if isinstance(document, bytes)
        else (document.open("rb") if isinstance(document, Path) else document)
    )
    try:
        writer = IncrementalPdfFileWriter(source, strict=False)
        stamp_box = box or _stamp_box(writer, page)
        seal_image = Image.open(io.BytesIO(seal_image_png))
        seal_image.load()
        style = QRStampStyle(
            stamp_text="E-certificate\n%(ecert)s\nSealed %(ts)s",
            timestamp_format="%Y-%m-%d %H:%M:%S UTC",
            border_width=0,
            background=PdfImage(seal_image),
            background_opacity=0.85,
            background_layout=SimpleBoxLayoutRule(
                x_align=AxisAlignment.ALIGN_MAX,
                y_align=AxisAlignment.ALIGN_MID,
                margins=Margins(left=2, right=2, top=2, bottom=2),
                inner_content_scaling=InnerScaling.SHRINK_TO_FIT,
            ),
        )
        pdf_signer = signers.PdfSigner(
            signers.PdfSignatureMetadata(
                field_name=field_name,
                md_algorithm="sha256",
                subfilter=fields.SigSeedSubFilter.PADES,
                reason=f"e-certificate {ecert_identifier}",
            ),
            signer=_pyhanko_signer(signer, certificate, chain, str(ecert_identifier)),
            stamp_style=style,
            new_field_spec=fields.SigFieldSpec(field_name, on_page=page, box=stamp_box),
        )
        link = verification_link(verification_url, ecert_identifier)
        _add_link(writer, page, stamp_box, link)
        params = {
            "url": link,
            "ecert": _wrap(str(ecert_identifier), 38),
        }
        asyncio.run(_sign_pdf_async(pdf_signer, writer, at, params, output))
    except (PdfError, ValueError, KeyError, IndexError) as exc:
        raise CallerError(f"cannot seal this PDF: {exc}") from None
    finally:
        if isinstance(document, Path):
            source.close()


def _wrap(identifier: str, width: int) -> str:
    # Break the long identifier at its dots so each line stays readable on the stamp.
    lines: list[str] = []
    for part in identifier.split("."):
        if lines and len(lines[-1]) + 1 + len(part) <= width:
            lines[-1] += "." + part
        else:
            lines.append(part if not lines else "." + part)
    return "\n".join(lines)
