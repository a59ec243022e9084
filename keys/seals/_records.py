"""Seal records: what a registered seal is (id, name, organisation, certificate, window, picture
digest, revocation), and registering one.
"""

from __future__ import annotations

import enum
import hashlib
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import asn1crypto.tsp  # noqa: F401
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from tongban.keys.clock import format_time, parse_time, require_aware
from tongban.keys.errors import BadPeerData, CallerError
from tongban.keys.identifiers import InvalidIdentifier, validate_credit_code
from tongban.keys.pki import (
    Role,
    certificate_fingerprint,
    certificate_pem,
    generate_signing_key,
    issue_certificate,
    load_certificate,
)
from tongban.keys.seal_subject import seal_subject, seal_uri, semantics_statement

# A UUID-derived OID (ITU-T X.667): an attribute of our own needs no registered arc.
ECERT_IDENTIFIER_ATTRIBUTE = "2.25.31634492887665145451589254790945096114"

DocumentSource = Path | bytes | BinaryIO
_CHUNK = 1 << 20
_SEAL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_MAX_NAME = 40
_MAX_ORG_NAME = 64  # ub-organization-name (RFC 5280)


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
        """The record as published in the node's signed seal registry."""
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
    org_name: str,
    org_uscc: str,
    node_id: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    issuer_cert: x509.Certificate,
    not_before: datetime,
    not_after: datetime,
    now: datetime,
    image_png: bytes,
    key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey | None = None,
) -> NewSeal:
    """Register a seal: a P-256 key, its certificate for the seal window, and an image.

    The certificate names the organisation (``O=org_name``, ``organizationIdentifier``
    ``NTRCN-<org_uscc>``) and the seal (``CN=name``) for third parties, and the node and seal
    id for the verifier (:mod:`tongban.keys.seal_subject`).
    ``key`` may be a private key, a public key whose private half stays in an HSM, or None
    for a new key. ``image_png`` is the seal's picture (checked by the caller with
    :func:`check_seal_image`, or drawn by the node).

    Raises:
        CallerError: a malformed id, name or credit code, an empty window, a non-P-256 key.
    """
    if not _SEAL_ID.fullmatch(seal_id):
        raise CallerError(f"seal id {seal_id!r} must be 1-64 characters of A-Z a-z 0-9 . _ -")
    if not name.strip() or len(name) > _MAX_NAME:
        raise CallerError(f"seal name must be 1-{_MAX_NAME} characters, got {len(name)}")
    if not org_name.strip() or len(org_name) > _MAX_ORG_NAME:
        raise CallerError(
            f"organisation name must be 1-{_MAX_ORG_NAME} characters, got {len(org_name)}"
        )
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
        subject=seal_subject(org_name=org_name.strip(), org_uscc=org_uscc, seal_name=name),
        uris=[seal_uri(node_id, seal_id)],
        extensions=[semantics_statement()],
    )
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
