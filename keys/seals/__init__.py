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
    ...     org_name="鄂州市行政审批局",
    ...     org_uscc="11420700MB1539542A", node_id="420700", issuer_key=root_key,
    ...     issuer_cert=root, not_before=now, not_after=now + timedelta(days=365),
    ...     image_png=b"png", now=now)
    >>> p7s = seal_detached(b"permit", PrivateKeySigner(seal.key), seal.record.certificate,
    ...     at=now, ecert_identifier=None)
    >>> p7s[:1]
    b'0'
"""

from __future__ import annotations

from tongban.keys.seals._cms import digest_document, seal_detached, seal_digest
from tongban.keys.seals._pades import seal_pdf
from tongban.keys.seals._records import (
    ECERT_IDENTIFIER_ATTRIBUTE,
    MAX_SEAL_IMAGE_BYTES,
    SEAL_IMAGE_SIDES,
    BadSealImage,
    DocumentSource,
    NewSeal,
    RevocationReason,
    SealRecord,
    check_seal_image,
    create_seal,
)

__all__ = [
    "ECERT_IDENTIFIER_ATTRIBUTE",
    "MAX_SEAL_IMAGE_BYTES",
    "SEAL_IMAGE_SIDES",
    "BadSealImage",
    "DocumentSource",
    "NewSeal",
    "RevocationReason",
    "SealRecord",
    "check_seal_image",
    "create_seal",
    "digest_document",
    "seal_detached",
    "seal_digest",
    "seal_pdf",
]
