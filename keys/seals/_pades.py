"""PAdES seals on PDF documents, with the visible stamp, QR code and link, through pyHanko."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import asn1crypto.tsp  # noqa: F401
from asn1crypto import algos, cms
from cryptography import x509

from tongban.keys.ecert import ECertIdentifier, verification_link
from tongban.keys.errors import CallerError
from tongban.keys.seals._cms import _asn1_cert, _check_seal_key, _identifier_attribute
from tongban.keys.seals._records import ECERT_IDENTIFIER_ATTRIBUTE, DocumentSource
from tongban.keys.signing import Signer


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


# The stamp's shape: the QR code and the text in the left part, the seal picture in a square
# of the stamp's height on the right, so the picture never lies over the text.
_STAMP_WIDTH, _STAMP_HEIGHT = 330, 110


def _media_box(page: Any) -> Any:
    """A page's /MediaBox, its own or inherited from the page tree (ISO 32000-1, 7.7.3.4)."""
    node = page
    for _ in range(64):  # the page tree is shallow; a cycle must not loop forever
        if "/MediaBox" in node:
            return node["/MediaBox"]
        if "/Parent" not in node:
            break
        node = node["/Parent"]
    raise KeyError("/MediaBox")


def _stamp_box(writer: Any, page: int) -> tuple[int, int, int, int]:
    """The bottom right corner of the page, inset by 36 points (less on a small page); the
    stamp keeps its 3:1 shape and shrinks to fit a page narrower or shorter than it."""
    page_ref, _ = writer.find_page_for_modification(page)
    x0, y0, x1, y1 = (float(v) for v in _media_box(page_ref.get_object()))
    inset = min(36.0, (x1 - x0) * 0.05, (y1 - y0) * 0.05)
    width = min(_STAMP_WIDTH, x1 - x0 - 2 * inset, 3 * (y1 - y0 - 2 * inset))
    height = width * _STAMP_HEIGHT / _STAMP_WIDTH
    right, bottom = x1 - inset, y0 + inset
    return (int(right - width), int(bottom), int(right), int(bottom + height))


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
        # The picture takes the square at the right end, the QR code and the text the rest;
        # each is shrunk to its own part, so neither covers the other at any stamp size.
        box_width, box_height = stamp_box[2] - stamp_box[0], stamp_box[3] - stamp_box[1]
        square = min(box_height, box_width // 2)
        style = QRStampStyle(
            stamp_text="E-certificate\n%(ecert)s\nSealed %(ts)s",
            timestamp_format="%Y-%m-%d %H:%M:%S UTC",
            border_width=0,
            background=PdfImage(seal_image),
            background_opacity=0.85,
            background_layout=SimpleBoxLayoutRule(
                x_align=AxisAlignment.ALIGN_MAX,
                y_align=AxisAlignment.ALIGN_MID,
                margins=Margins(left=box_width - square + 2, right=2, top=2, bottom=2),
                inner_content_scaling=InnerScaling.SHRINK_TO_FIT,
            ),
            inner_content_layout=SimpleBoxLayoutRule(
                x_align=AxisAlignment.ALIGN_MIN,
                y_align=AxisAlignment.ALIGN_MID,
                margins=Margins(left=0, right=square + 2, top=0, bottom=0),
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
