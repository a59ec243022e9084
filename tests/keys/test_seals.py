"""Seal registration, seal images, and sealing: OpenSSL and pyHanko check what we produce."""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import tracemalloc
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from PIL import Image

from tests.availability import require_programs
from tests.fixtures_seal import (
    ECERT,
    EZHOU_USCC,
    NOW,
    ORG_NAME,
    SEAL_FROM,
    SEAL_NAME,
    SEAL_UNTIL,
    VERIFY_URL,
    make_pdf,
    new_seal,
    openssl_cms_verify,
    seal_image,
    seal_world,
    write_pem,
)
from tongban.keys.ecert import verification_link
from tongban.keys.errors import BadPeerData, CallerError
from tongban.keys.pki import (
    CaKind,
    CertificatePublicKey,
    Role,
    generate_signing_key,
    issue_ca,
)
from tongban.keys.seal_subject import seal_identity
from tongban.keys.seals import (
    ECERT_IDENTIFIER_ATTRIBUTE,
    RevocationReason,
    SealRecord,
    create_seal,
    seal_detached,
    seal_pdf,
)
from tongban.keys.signing import PrivateKeySigner, Signer
from tongban.server.usecases.seal_image import (
    FONT_ENV_VAR,
    SealFontMissingError,
    find_cjk_font,
    render_seal_image,
)

# --- records -----------------------------------------------------------------------------


def test_create_seal_issues_a_seal_certificate_for_the_window() -> None:
    world = seal_world()
    record = world.record
    identity = seal_identity(record.certificate)
    assert (identity.role, identity.node_id, identity.name) == (Role.SEAL, "420700", record.seal_id)
    assert record.certificate.subject.rfc4514_string() == (
        f"CN={SEAL_NAME},2.5.4.97=NTRCN-{EZHOU_USCC},O={ORG_NAME},C=CN"
    )
    assert record.certificate.not_valid_before_utc == SEAL_FROM
    assert record.certificate.not_valid_after_utc == SEAL_UNTIL
    usage = record.certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.content_commitment and usage.digital_signature
    assert (record.name, record.org_uscc) == (SEAL_NAME, EZHOU_USCC)
    assert record.image_sha256 == hashlib.sha256(world.seal.image_png).hexdigest()
    assert isinstance(world.seal.key, ec.EllipticCurvePrivateKey)


def test_seal_record_json_round_trip_keeps_revocation() -> None:
    record = seal_world().record
    assert SealRecord.from_json_dict(record.to_json_dict()) == record
    assert (record.revocation_reason, record.revocation_text) == (None, "")
    revoked = record.revoked(NOW, RevocationReason.KEY_COMPROMISE, " 印章遗失 ")
    data = revoked.to_json_dict()
    assert (data["revocation_reason"], data["revocation_note"]) == ("keyCompromise", "印章遗失")
    assert SealRecord.from_json_dict(data) == revoked
    assert revoked.revocation_text == "keyCompromise: 印章遗失"
    assert revoked.valid_at(NOW - timedelta(seconds=1))
    assert not revoked.valid_at(NOW)
    assert record.revoked(NOW, "superseded").revocation_reason is RevocationReason.SUPERSEDED


def test_a_revocation_without_a_reason_is_unspecified_and_an_unknown_code_is_refused() -> None:
    record = seal_world().record
    assert record.revoked(NOW).revocation_reason is RevocationReason.UNSPECIFIED
    assert record.revoked(NOW, "  ").revocation_reason is RevocationReason.UNSPECIFIED
    with pytest.raises(CallerError) as caught:
        record.revoked(NOW, "印章遗失")
    assert caught.value.message == (
        "unknown revocation reason '印章遗失': one of unspecified, keyCompromise, caCompromise, "
        "affiliationChanged, superseded, cessationOfOperation"
    )


@pytest.mark.parametrize(
    ("recorded", "reason", "note"),
    [
        ({"revocation_reason": "印章钥匙泄露"}, RevocationReason.UNSPECIFIED, "印章钥匙泄露"),
        ({"revocation_reason": ""}, RevocationReason.UNSPECIFIED, ""),
        ({}, RevocationReason.UNSPECIFIED, ""),
        ({"revocation_reason": "superseded"}, RevocationReason.SUPERSEDED, ""),
        (
            {"revocation_reason": "keyCompromise", "revocation_note": "被盗"},
            RevocationReason.KEY_COMPROMISE,
            "被盗",
        ),
    ],
    ids=["free text", "empty", "absent", "a code", "a code and a note"],
)
def test_revoked_records_of_every_age_are_read(
    recorded: dict[str, str], reason: RevocationReason, note: str
) -> None:
    data = seal_world().record.to_json_dict()
    del data["revocation_reason"], data["revocation_note"]
    record = SealRecord.from_json_dict(data | {"revoked_at": "2026-03-02T09:30:00Z"} | recorded)
    assert (record.revoked_at, record.revocation_reason, record.revocation_note) == (
        NOW,
        reason,
        note,
    )
    unrevoked = SealRecord.from_json_dict(data | recorded)
    assert (unrevoked.revocation_reason, unrevoked.revocation_note) == (None, "")


@pytest.mark.parametrize(
    ("reason", "possibly_compromised"),
    [
        (RevocationReason.UNSPECIFIED, True),
        (RevocationReason.KEY_COMPROMISE, True),
        (RevocationReason.CA_COMPROMISE, True),
        (RevocationReason.AFFILIATION_CHANGED, False),
        (RevocationReason.SUPERSEDED, False),
        (RevocationReason.CESSATION_OF_OPERATION, False),
    ],
)
def test_which_revocation_reasons_mean_the_key_may_be_in_other_hands(
    reason: RevocationReason, possibly_compromised: bool
) -> None:
    assert reason.key_possibly_compromised is possibly_compromised


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"certificate": "not a pem"}, "malformed seal record"),
        ({"not_before": "yesterday"}, "malformed seal record"),
        ({"seal_id": None, "name": None} | {"delete": "seal_id"}, "malformed seal record"),
    ],
)
def test_malformed_seal_records_are_refused(change: dict[str, object], message: str) -> None:
    data = seal_world().record.to_json_dict()
    if "delete" in change:
        del data[str(change["delete"])]
    else:
        data.update(change)
    with pytest.raises(BadPeerData, match=message):
        SealRecord.from_json_dict(data)


def test_create_seal_refuses_bad_input() -> None:
    world = seal_world()
    common = {
        "seal_id": "s1",
        "name": SEAL_NAME,
        "org_uscc": EZHOU_USCC,
        "org_name": ORG_NAME,
        "node_id": "420700",
        "issuer_key": world.root_key,
        "issuer_cert": world.root,
        "not_before": SEAL_FROM,
        "not_after": SEAL_UNTIL,
        "now": NOW,
        "image_png": b"img",
    }
    cases: list[tuple[dict[str, object], str]] = [
        ({"seal_id": "bad id!"}, "seal id 'bad id!' must be"),
        ({"name": ""}, "seal name must be 1-40 characters"),
        ({"org_name": " "}, "organisation name must be 1-64 characters, got 1"),
        ({"org_name": "局" * 65}, "organisation name must be 1-64 characters, got 65"),
        ({"org_uscc": "11420700MB1539548W"}, "organisation code check character"),
        ({"not_after": SEAL_FROM}, "seal window is empty"),
        ({"key": ec.generate_private_key(ec.SECP384R1())}, "seal keys are P-256"),
        ({"node_id": ""}, "node_id is empty"),
    ]
    for change, message in cases:
        with pytest.raises(CallerError, match=message):
            create_seal(**(common | change))  # type: ignore[arg-type]


def test_a_key_held_elsewhere_registers_by_its_public_key() -> None:
    world = seal_world()
    hsm_key = generate_signing_key()
    seal = create_seal(
        seal_id="hsm-seal",
        name=SEAL_NAME,
        org_uscc=EZHOU_USCC,
        org_name=ORG_NAME,
        node_id="420700",
        issuer_key=world.root_key,
        issuer_cert=world.root,
        not_before=SEAL_FROM,
        not_after=SEAL_UNTIL,
        now=NOW,
        image_png=b"img",
        key=hsm_key.public_key(),
    )
    assert seal.key is None
    assert seal.record.certificate.public_key() == hsm_key.public_key()


# --- image -------------------------------------------------------------------------------


def test_default_seal_image_is_a_round_red_seal_with_a_star() -> None:
    png = render_seal_image(SEAL_NAME, size=300)
    image = Image.open(io.BytesIO(png))
    assert (image.format, image.mode, image.size) == ("PNG", "RGBA", (300, 300))
    red = (230, 0, 18, 255)
    assert image.getpixel((150, 150)) == red  # the star's centre
    assert image.getpixel((0, 0))[3] == 0  # transparent outside the ring
    assert image.getpixel((150, 3)) == red  # the ring at the top
    assert image.getpixel((150, 275))[3] == 0  # no text in the open bottom of the arc
    # the name's characters fill the upper rim
    upper_ring = [image.getpixel((x, y))[3] for x in range(60, 240) for y in range(20, 60)]
    assert sum(1 for a in upper_ring if a > 0) > 500
    assert render_seal_image(SEAL_NAME, size=300) == png  # deterministic, so its hash is stable


def test_the_seal_record_pins_the_drawn_picture_by_its_digest() -> None:
    world = seal_world()
    seal = create_seal(
        seal_id="drawn",
        name="武汉市行政审批局",
        org_uscc=EZHOU_USCC,
        org_name=ORG_NAME,
        node_id="420700",
        issuer_key=world.root_key,
        issuer_cert=world.root,
        not_before=SEAL_FROM,
        not_after=SEAL_UNTIL,
        now=NOW,
        image_png=render_seal_image("武汉市行政审批局", size=240),
    )
    assert seal.image_png.startswith(b"\x89PNG")
    assert seal.record.image_sha256 == hashlib.sha256(seal.image_png).hexdigest()


def test_missing_font_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(
        SealFontMissingError, match=r"seal font .*nofont\.ttf does not exist"
    ) as exc:
        render_seal_image(SEAL_NAME, font_path=tmp_path / "nofont.ttf")
    assert exc.value.code == "seal-font-missing"
    monkeypatch.setenv(FONT_ENV_VAR, str(tmp_path / "gone.ttc"))
    with pytest.raises(SealFontMissingError, match=f"{FONT_ENV_VAR}=.*gone.ttc does not exist"):
        find_cjk_font()
    monkeypatch.delenv(FONT_ENV_VAR)
    monkeypatch.setattr("tongban.server.usecases.seal_image._FONT_CANDIDATES", ())
    monkeypatch.setattr("tongban.server.usecases.seal_image.shutil.which", lambda _: None)
    with pytest.raises(SealFontMissingError, match="apt-get install fonts-wqy-zenhei"):
        find_cjk_font()
    not_a_font = tmp_path / "x.ttf"
    not_a_font.write_bytes(b"nope")
    with pytest.raises(SealFontMissingError, match="cannot load seal font"):
        render_seal_image(SEAL_NAME, font_path=not_a_font)


# --- detached CMS, checked by OpenSSL ----------------------------------------------------


@pytest.fixture
def sealed_file(tmp_path: Path) -> tuple[Path, Path, Path]:
    world = seal_world()
    document = tmp_path / "permit.bin"
    document.write_bytes(b"\x00\x01permit body\xff" * 9000)
    p7s = tmp_path / "permit.bin.p7s"
    p7s.write_bytes(
        seal_detached(
            document, world.signer, world.record.certificate, at=NOW, ecert_identifier=ECERT
        )
    )
    return document, p7s, write_pem(tmp_path / "root.pem", world.root)


def test_openssl_verifies_a_detached_seal(sealed_file: tuple[Path, Path, Path]) -> None:
    document, p7s, root = sealed_file
    result = openssl_cms_verify(document, p7s, root)
    assert (result.returncode, result.stderr.strip()) == (0, "CMS Verification successful")


def test_openssl_refuses_a_changed_document_or_the_wrong_root(
    sealed_file: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    document, p7s, root = sealed_file
    data = bytearray(document.read_bytes())
    data[1000] ^= 0x01
    changed = tmp_path / "changed.bin"
    changed.write_bytes(bytes(data))
    result = openssl_cms_verify(changed, p7s, root)
    assert result.returncode == 4
    assert "content verify error" in result.stderr or "digest failure" in result.stderr
    other_root = write_pem(tmp_path / "other.pem", seal_world().other_root)
    result = openssl_cms_verify(document, p7s, other_root)
    assert result.returncode == 4
    assert "unable to get local issuer certificate" in result.stderr


def test_detached_seal_carries_time_chain_and_identifier(
    sealed_file: tuple[Path, Path, Path],
) -> None:
    _, p7s, _ = sealed_file
    signed_data = cms.ContentInfo.load(p7s.read_bytes())["content"]
    assert signed_data["encap_content_info"]["content"].native is None  # detached
    info = signed_data["signer_infos"][0]
    attrs = {a["type"].dotted: a["values"] for a in info["signed_attrs"]}
    assert attrs["1.2.840.113549.1.9.5"][0].native == NOW  # signing-time
    assert "1.2.840.113549.1.9.16.2.47" in attrs  # signing-certificate-v2
    assert attrs[ECERT_IDENTIFIER_ATTRIBUTE][0].parsed is None or True
    assert str(ECERT).encode() in attrs[ECERT_IDENTIFIER_ATTRIBUTE][0].dump()
    assert len(signed_data["certificates"]) == 1
    assert info["signature_algorithm"]["algorithm"].native == "sha256_ecdsa"


def test_openssl_follows_an_intermediate_in_the_chain(tmp_path: Path) -> None:
    world = seal_world()
    ca_key = generate_signing_key()
    ca = issue_ca(
        world.root_key,
        world.root,
        ca_key.public_key(),
        kind=CaKind.SEAL,
        node_id="420700",
        now=SEAL_FROM,
    )
    seal = new_seal(ca_key, ca, seal_id="via-intermediate")
    assert seal.key is not None
    document = tmp_path / "d.txt"
    document.write_text("结果文书", encoding="utf-8")
    p7s = tmp_path / "d.txt.p7s"
    p7s.write_bytes(
        seal_detached(
            document,
            PrivateKeySigner(seal.key),
            seal.record.certificate,
            chain=[ca],
            at=NOW,
            ecert_identifier=None,
        )
    )
    result = openssl_cms_verify(document, p7s, write_pem(tmp_path / "root.pem", world.root))
    assert (result.returncode, result.stderr.strip()) == (0, "CMS Verification successful")


class CountingSigner(Signer):
    """Stands in for an HSM: it only ever sees the bytes to sign."""

    def __init__(self, inner: PrivateKeySigner) -> None:
        self.inner = inner
        self.calls: list[int] = []

    @property
    def key_id(self) -> str:
        return self.inner.key_id

    @property
    def public_key(self) -> CertificatePublicKey:
        return self.inner.public_key

    def sign(self, data: bytes) -> bytes:
        self.calls.append(len(data))
        return self.inner.sign(data)


def test_sealing_goes_through_the_signer_interface_only(tmp_path: Path) -> None:
    world = seal_world()
    signer = CountingSigner(world.signer)
    document = tmp_path / "doc"
    document.write_bytes(b"x" * 100_000)
    p7s = tmp_path / "doc.p7s"
    p7s.write_bytes(
        seal_detached(document, signer, world.record.certificate, at=NOW, ecert_identifier=ECERT)
    )
    # one signature over the signed attributes, never over the document itself
    assert len(signer.calls) == 1 and signer.calls[0] < 2000
    assert (
        openssl_cms_verify(document, p7s, write_pem(tmp_path / "r.pem", world.root)).returncode == 0
    )


def test_large_documents_are_streamed(tmp_path: Path) -> None:
    world = seal_world()
    document = tmp_path / "big.bin"
    with document.open("wb") as out:
        for i in range(48):
            out.write(bytes([i]) * (1 << 20))
    tracemalloc.start()
    try:
        p7s = seal_detached(
            document, world.signer, world.record.certificate, at=NOW, ecert_identifier=ECERT
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"sealing a 48 MiB file peaked at {peak} bytes"
    (tmp_path / "big.bin.p7s").write_bytes(p7s)
    result = openssl_cms_verify(
        document, tmp_path / "big.bin.p7s", write_pem(tmp_path / "root.pem", world.root)
    )
    assert result.returncode == 0


def test_sealing_refuses_a_wrong_key_or_an_invalid_certificate() -> None:
    world = seal_world()
    stranger = PrivateKeySigner(generate_signing_key())
    with pytest.raises(CallerError, match="does not match the seal certificate"):
        seal_detached(b"d", stranger, world.record.certificate, at=NOW, ecert_identifier=None)
    with pytest.raises(CallerError, match="not valid at 2027-"):
        seal_detached(
            b"d",
            world.signer,
            world.record.certificate,
            at=SEAL_UNTIL + timedelta(days=2),
            ecert_identifier=None,
        )
    with pytest.raises(CallerError, match="naive"):
        seal_detached(
            b"d",
            world.signer,
            world.record.certificate,
            at=datetime(2026, 3, 2),
            ecert_identifier=None,
        )


# --- PAdES, checked by pyHanko (and poppler/qpdf when installed) -------------------------


@pytest.fixture(scope="module")
def sealed_pdf() -> bytes:
    world = seal_world()
    out = io.BytesIO()
    seal_pdf(
        make_pdf(),
        out,
        world.signer,
        world.record.certificate,
        at=NOW,
        ecert_identifier=ECERT,
        verification_url=VERIFY_URL,
        seal_image_png=seal_image(),
    )
    return out.getvalue()


def test_pyhanko_validates_the_sealed_pdf(sealed_pdf: bytes) -> None:
    from asn1crypto import x509 as asn1_x509
    from cryptography.hazmat.primitives import serialization
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.status import SignatureCoverageLevel
    from pyhanko_certvalidator import ValidationContext

    world = seal_world()
    root = asn1_x509.Certificate.load(world.root.public_bytes(serialization.Encoding.DER))
    reader = PdfFileReader(io.BytesIO(sealed_pdf))
    (signature,) = reader.embedded_signatures
    context = ValidationContext(
        trust_roots=[root],
        moment=NOW + timedelta(hours=1),
        allow_fetching=False,
        revocation_mode="soft-fail",
    )
    status = validate_pdf_signature(signature, context)
    assert (status.intact, status.valid, status.trusted) == (True, True, True)
    assert status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    assert status.bottom_line
    assert signature.self_reported_timestamp == NOW
    assert signature.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"
    attrs = {a["type"].dotted for a in signature.signer_info["signed_attrs"]}
    assert ECERT_IDENTIFIER_ATTRIBUTE in attrs


def _xobjects(resources: object, depth: int = 0) -> list[Any]:
    found: list[Any] = []
    for ref in resources.get("/XObject", {}).values():  # type: ignore[attr-defined]
        obj = ref.get_object()
        found.append(obj)
        if obj["/Subtype"] == "/Form" and depth < 5:
            found += _xobjects(obj.get("/Resources", {}), depth + 1)
    return found


def test_sealed_pdf_shows_the_seal_image_and_a_qr_code_of_the_link(sealed_pdf: bytes) -> None:
    import qrcode
    from pyhanko.pdf_utils.reader import PdfFileReader

    link = verification_link(VERIFY_URL, ECERT)
    reader = PdfFileReader(io.BytesIO(sealed_pdf))
    page = reader.root["/Pages"]["/Kids"][0]
    annots = [a.get_object() for a in page["/Annots"]]
    assert [a["/A"]["/URI"] for a in annots if a["/Subtype"] == "/Link"] == [link]
    widget = next(a for a in annots if a["/Subtype"] == "/Widget")
    drawn = _xobjects(widget["/AP"]["/N"].get("/Resources", {}))
    # the seal image, embedded at its own resolution
    assert any(x["/Subtype"] == "/Image" and x["/Width"] == 240 for x in drawn)
    # the QR code: read its dark modules back from the drawing and compare them with the
    # QR symbol of the verification link (error correction M, as drawn)
    qr_streams = [x.data for x in drawn if x["/Subtype"] == "/Form" and b" 1 1 re" in x.data]
    assert len(qr_streams) == 1
    modules = {
        (int(row), int(col)) for col, row in re.findall(rb"(\d+) (\d+) 1 1 re", qr_streams[0])
    }
    symbol = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=0)
    symbol.add_data(link)
    symbol.make()
    expected = {
        (r, c) for r, line in enumerate(symbol.get_matrix()) for c, dark in enumerate(line) if dark
    }
    assert modules == expected


def test_poppler_pdfsig_agrees(sealed_pdf: bytes, tmp_path: Path) -> None:
    require_programs("pdfsig", install="apt-get install poppler-utils")
    path = tmp_path / "sealed.pdf"
    path.write_bytes(sealed_pdf)
    result = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True, check=False)
    assert "Signature is Valid." in result.stdout
    assert "Total document signed" in result.stdout


def test_qpdf_finds_the_sealed_pdf_well_formed(sealed_pdf: bytes, tmp_path: Path) -> None:
    require_programs("qpdf", install="apt-get install qpdf")
    path = tmp_path / "sealed.pdf"
    path.write_bytes(sealed_pdf)
    result = subprocess.run(
        ["qpdf", "--check", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_sealing_a_non_pdf_is_a_caller_error() -> None:
    world = seal_world()
    with pytest.raises(CallerError, match="cannot seal this PDF"):
        seal_pdf(
            b"not a pdf at all",
            io.BytesIO(),
            world.signer,
            world.record.certificate,
            at=NOW,
            ecert_identifier=ECERT,
            verification_url=VERIFY_URL,
            seal_image_png=seal_image(),
        )
