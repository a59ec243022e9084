"""Shared material for the seal tests: a test PKI, seals, PDFs and the OpenSSL verifier.

Everything is generated here; no key or certificate is stored in the repository.
"""

from __future__ import annotations

import functools
import io
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.writer import PdfFileWriter

from tongban.keys.ecert import ECertIdentifier
from tongban.keys.pki import certificate_pem, generate_root
from tongban.keys.seals import NewSeal, SealRecord, create_seal, digest_document
from tongban.keys.seals._cms import _build_detached_cms
from tongban.keys.signing import PrivateKeySigner, Signer

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
EZHOU_USCC = "11420700MB1539542A"
WUHAN_USCC = "11420100MB0000123A"
SEAL_NAME = "鄂州市行政审批局行政审批专用章"
ORG_NAME = "鄂州市行政审批局"
VERIFY_URL = "https://verify.420700.tongban.example.cn/ecert"
ECERT = ECertIdentifier("11100000000013338W011", EZHOU_USCC, "2026000001", "001")
# A valid seal: registered a day before NOW for a year.
SEAL_FROM = NOW - timedelta(days=1)
SEAL_UNTIL = NOW + timedelta(days=365)


@dataclass(frozen=True)
class SealWorld:
    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    seal: NewSeal
    other_root_key: ec.EllipticCurvePrivateKey
    other_root: x509.Certificate
    impostor: NewSeal  # same seal id and name, certified by the other root

    @property
    def record(self) -> SealRecord:
        return self.seal.record

    @property
    def signer(self) -> PrivateKeySigner:
        assert self.seal.key is not None
        return PrivateKeySigner(self.seal.key)


@functools.cache
def seal_world() -> SealWorld:
    """One PKI for the whole test session (key generation is the slow part)."""
    root_key, root = generate_root(now=NOW - timedelta(days=30))
    other_key, other_root = generate_root(now=NOW - timedelta(days=30), name="another root")
    image = seal_image()
    seal = new_seal(root_key, root, image_png=image)
    impostor = new_seal(other_key, other_root, image_png=image)
    return SealWorld(root_key, root, seal, other_key, other_root, impostor)


@functools.cache
def seal_image() -> bytes:
    from tongban.server.usecases.seal_image import render_seal_image

    return render_seal_image(SEAL_NAME, size=240)


def new_seal(
    issuer_key: ec.EllipticCurvePrivateKey,
    issuer_cert: x509.Certificate,
    *,
    seal_id: str = "420700-approval",
    not_before: datetime = SEAL_FROM,
    not_after: datetime = SEAL_UNTIL,
    image_png: bytes = b"test image",
) -> NewSeal:
    return create_seal(
        seal_id=seal_id,
        name=SEAL_NAME,
        org_uscc=EZHOU_USCC,
        org_name=ORG_NAME,
        node_id="420700",
        issuer_key=issuer_key,
        issuer_cert=issuer_cert,
        not_before=not_before,
        not_after=not_after,
        now=not_before,
        image_png=image_png,
    )


def forge_detached(
    document: bytes,
    signer: Signer,
    certificate: x509.Certificate,
    *,
    signing_time: datetime,
    identifier: str | None = str(ECERT),
    chain: Sequence[x509.Certificate] = (),
) -> bytes:
    """A detached seal made without the sealing-side checks, as a careless or hostile
    sealer could make one (expired certificate, malformed identifier)."""
    return _build_detached_cms(
        digest_document(document),
        signer,
        certificate,
        chain,
        signing_time=signing_time.replace(microsecond=0),
        identifier=identifier,
    )


def make_pdf(
    text: str = "Business licence 2026-0001", media_box: tuple[int, int] = (595, 842)
) -> bytes:
    """A one-page PDF (A4 unless ``media_box`` gives width and height in points) with a
    line of text, written by pyHanko's writer."""
    writer = PdfFileWriter(stream_xrefs=False)
    font = writer.add_object(
        generic.DictionaryObject(
            {
                pdf_name("/Type"): pdf_name("/Font"),
                pdf_name("/Subtype"): pdf_name("/Type1"),
                pdf_name("/BaseFont"): pdf_name("/Helvetica"),
            }
        )
    )
    content = generic.StreamObject(stream_data=f"BT /F1 20 Tf 72 720 Td ({text}) Tj ET".encode())
    page = generic.DictionaryObject(
        {
            pdf_name("/Type"): pdf_name("/Page"),
            pdf_name("/MediaBox"): generic.ArrayObject(
                [generic.NumberObject(n) for n in (0, 0, *media_box)]
            ),
            pdf_name("/Resources"): generic.DictionaryObject(
                {pdf_name("/Font"): generic.DictionaryObject({pdf_name("/F1"): font})}
            ),
            pdf_name("/Contents"): writer.add_object(content),
        }
    )
    writer.insert_page(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def append_incremental_update(pdf: bytes, text: str = "ALTERED") -> bytes:
    """Change the first page's content in an incremental update, as an editor would."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    page_ref, _ = writer.find_page_for_modification(0)
    page = page_ref.get_object()
    stream = generic.StreamObject(stream_data=f"BT /F1 20 Tf 72 600 Td ({text}) Tj ET".encode())
    page[pdf_name("/Contents")] = writer.add_object(stream)
    writer.mark_update(page_ref)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def write_pem(path: Path, *certs: x509.Certificate) -> Path:
    path.write_bytes(b"".join(certificate_pem(c) for c in certs))
    return path


def openssl_cms_verify(
    document: Path, p7s: Path, ca_file: Path
) -> subprocess.CompletedProcess[str]:
    """The third party's check, with nothing but OpenSSL."""
    openssl = shutil.which("openssl")
    assert openssl, "the openssl command is needed to check seals independently"
    return subprocess.run(
        [
            openssl,
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            str(p7s),
            "-content",
            str(document),
            "-CAfile",
            str(ca_file),
            "-purpose",
            "any",
            "-out",
            "/dev/null",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
