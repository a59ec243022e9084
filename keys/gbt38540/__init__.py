"""GB/T 38540-2020 electronic seals: SM2/SM3 ``SES_Seal`` and ``SES_Signature``, and OFD.

Pure cryptography, like the rest of :mod:`tongban.keys`: the ASN.1 structures
(:mod:`~tongban.keys.gbt38540.structures`), SM2 certificates
(:mod:`~tongban.keys.gbt38540.certificates`), making and reading seals and signatures
(:mod:`~tongban.keys.gbt38540.sealing`), signed OFD packages
(:mod:`~tongban.keys.gbt38540.ofd`) and the verifier, which reports with the same
:class:`~tongban.keys.verification.SealVerificationReport` as CMS seals
(:mod:`~tongban.keys.gbt38540.verifier`).
"""

from __future__ import annotations

from tongban.keys.gbt38540.certificates import (
    Sm2CertificateFacts,
    Sm2ChainError,
    Sm2Role,
    check_sm2_path,
    issue_sm2_certificate,
    read_sm2_certificate,
)
from tongban.keys.gbt38540.ofd import (
    OfdReference,
    OfdSignature,
    read_ofd_signature,
    render_result_ofd,
    sign_ofd,
)
from tongban.keys.gbt38540.sealing import (
    SEAL_TYPE_ORGANIZATION,
    SEAL_VERSION,
    SUPPORTED_VERSIONS,
    Gbt38540FormatError,
    SealPicture,
    make_seal,
    read_seal,
    read_signature,
    seal_certificates,
    sign_document,
    sm3_of,
)
from tongban.keys.gbt38540.verifier import (
    FORMAT_OFD,
    FORMAT_SES,
    Gbt38540Verifier,
    gbt38540_verification_result,
)

__all__ = [
    "FORMAT_OFD",
    "FORMAT_SES",
    "SEAL_TYPE_ORGANIZATION",
    "SEAL_VERSION",
    "SUPPORTED_VERSIONS",
    "Gbt38540FormatError",
    "Gbt38540Verifier",
    "OfdReference",
    "OfdSignature",
    "SealPicture",
    "Sm2CertificateFacts",
    "Sm2ChainError",
    "Sm2Role",
    "check_sm2_path",
    "gbt38540_verification_result",
    "issue_sm2_certificate",
    "make_seal",
    "read_ofd_signature",
    "read_seal",
    "read_signature",
    "read_sm2_certificate",
    "render_result_ofd",
    "seal_certificates",
    "sign_document",
    "sign_ofd",
    "sm3_of",
]
