"""GB/T 38540 seals and signatures: built, read back byte for byte, and checked by others."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import gmssl_pyx
import pytest
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fixtures_gbt import (
    NOW,
    SEAL_ID,
    SEAL_NAME,
    a_seal,
    openssl_asn1,
    openssl_sm2_verify,
    seal_png,
    sm2_pki,
    sm_crypto_verify,
)
from tongban.keys.errors import CallerError, SignatureError
from tongban.keys.gbt38540 import (
    Gbt38540FormatError,
    read_seal,
    read_signature,
    seal_certificates,
    sign_document,
)
from tongban.keys.signing import SM2_USER_ID, Sm2PrivateKeySigner, verify_sm2_signature

DOCUMENT = "准予行政许可决定书 No. 2026-0001".encode()


def _point(certificate: bytes) -> bytes:
    """The 64-byte x||y of a certificate's SM2 key (GmSSL's form)."""
    spki = asn1_x509.Certificate.load(certificate).public_key
    return bytes(spki["public_key"].native)[1:]


def _signature(document: bytes = DOCUMENT, **changes: object) -> bytes:
    pki = sm2_pki()
    kwargs: dict[str, object] = {
        "seal": a_seal(),
        "signer": pki.user_key,
        "signer_certificate": pki.user,
        "at": NOW,
        "property_info": "permit.pdf",
    }
    kwargs.update(changes)
    return sign_document(document, **kwargs)  # type: ignore[no-any-return]


def test_seal_fields_read_back_as_written() -> None:
    pki = sm2_pki()
    seal = read_seal(a_seal())
    info = seal["e_seal_info"]
    assert info["header"].native == {"id": "ES", "version": 4, "vid": "tongban"}
    assert info["es_id"].native == SEAL_ID
    assert info["property"]["name"].native == SEAL_NAME
    assert info["property"]["create_date"].native == NOW - timedelta(days=1)
    assert info["property"]["valid_end"].native == NOW + timedelta(days=365)
    assert seal_certificates(seal) == (pki.user,)
    assert info["picture"].native == {"type": "PNG", "data": seal_png(), "width": 40, "height": 40}
    assert seal["cert"].native == pki.maker
    assert seal["sign_alg_id"].dotted == "1.2.156.10197.1.501"


def test_signature_fields_and_byte_for_byte_round_trip() -> None:
    der = _signature()
    parsed = read_signature(der)
    tbs = parsed["to_sign"]
    assert tbs["version"].native == 4
    assert tbs["time_info"].native == NOW
    assert tbs["data_hash"].native == _sm3(DOCUMENT)
    assert tbs["property_info"].native == "permit.pdf"
    assert tbs["eseal"].dump() == a_seal_bytes(der)
    assert parsed.dump(force=True) == der


def a_seal_bytes(der: bytes) -> bytes:
    return bytes(read_signature(der)["to_sign"]["eseal"].dump())


def _sm3(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize()


def test_gmssl_verifies_both_signatures_and_rejects_other_user_id() -> None:
    """GmSSL (gmssl-pyx), a second SM2 implementation, checks what Tongsuo signed."""
    pki = sm2_pki()
    parsed = read_signature(_signature())
    tbs, seal = parsed["to_sign"], parsed["to_sign"]["eseal"]
    signature = parsed["signature"].native
    assert gmssl_pyx.sm2_verify(_point(pki.user), tbs.dump(), signature, SM2_USER_ID)
    assert gmssl_pyx.sm2_verify(
        _point(pki.maker), seal["e_seal_info"].dump(), seal["signed_value"].native, SM2_USER_ID
    )
    assert not gmssl_pyx.sm2_verify(_point(pki.user), tbs.dump(), signature, b"another-user-id")


def test_tongsuo_verifies_what_gmssl_signs_and_not_another_user_id() -> None:
    pki = sm2_pki()
    key = Sm2PrivateKeySigner.generate()
    pem_free = gmssl_pyx.sm2_key_generate()  # GmSSL's own key, signing with the standard id
    public, private = pem_free
    signature = gmssl_pyx.sm2_sign(private, public, DOCUMENT, SM2_USER_ID)
    spki = bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d03420004") + public
    verify_sm2_signature(spki, signature, DOCUMENT)
    other = gmssl_pyx.sm2_sign(private, public, DOCUMENT, b"another-user-id")
    with pytest.raises(SignatureError, match="SM2 signature does not verify"):
        verify_sm2_signature(spki, other, DOCUMENT)
    with pytest.raises(SignatureError, match="does not verify"):
        verify_sm2_signature(key.public_key_der, signature, DOCUMENT)
    assert pki.user_key.key_id != key.key_id


def test_openssl_verifies_signer_and_seal_maker(tmp_path: Path) -> None:
    """``openssl dgst -sm3 -sigopt distid:…`` over the DER found by ``openssl asn1parse``."""
    pki = sm2_pki()
    der = _signature()
    nodes = openssl_asn1(der, tmp_path)
    tbs = nodes[1]  # SES_Signature ▸ TBS_Sign
    top = [n for n in nodes if n.depth == 1]
    assert top[0].offset == tbs.offset
    signature = top[3].content(der)[1:]  # BIT STRING without its unused-bits byte
    assert openssl_sm2_verify(pki.user, signature, tbs.whole(der), tmp_path) == "Verified OK"
    seal = [n for n in nodes if n.depth == 2][1]
    seal_parts = [
        n
        for n in nodes
        if n.depth == 3 and seal.offset < n.offset < seal.offset + seal.header + seal.length
    ]
    seal_info, seal_sig = seal_parts[0].whole(der), seal_parts[3].content(der)[1:]
    assert openssl_sm2_verify(pki.maker, seal_sig, seal_info, tmp_path) == "Verified OK"
    tampered = tbs.whole(der).replace(b"permit.pdf", b"permit.PDF")
    assert openssl_sm2_verify(pki.user, signature, tampered, tmp_path) == "Verification failure"


def test_openssl_verifies_each_sm2_certificate_signature(tmp_path: Path) -> None:
    """Each certificate's signature checked by OpenSSL with its issuer's key and the standard
    id (``openssl verify`` cannot be given the SM2 id for the chain in OpenSSL 3.0)."""
    pki = sm2_pki()
    pairs = [(pki.root, pki.root), (pki.ca, pki.root), (pki.maker, pki.ca), (pki.user, pki.ca)]
    for child, issuer in pairs:
        nodes = openssl_asn1(child, tmp_path)
        top = [n for n in nodes if n.depth == 1]
        tbs, signature = top[0].whole(child), top[2].content(child)[1:]
        assert openssl_sm2_verify(issuer, signature, tbs, tmp_path) == "Verified OK"
    nodes = openssl_asn1(pki.user, tmp_path)
    top = [n for n in nodes if n.depth == 1]
    wrong_issuer = openssl_sm2_verify(
        pki.root, top[2].content(pki.user)[1:], top[0].whole(pki.user), tmp_path
    )
    assert wrong_issuer == "Verification failure"


def test_sm_crypto_verifies_signatures_and_data_hash(tmp_path: Path) -> None:
    (tmp_path / "permit.pdf").write_bytes(DOCUMENT)
    (tmp_path / "permit.pdf.ses").write_bytes(_signature())
    verdict = sm_crypto_verify(tmp_path / "permit.pdf.ses", tmp_path / "permit.pdf")
    assert verdict == {"signature": True, "seal_signature": True, "data_hash": True}
    (tmp_path / "permit.pdf").write_bytes(DOCUMENT + b" ")
    verdict = sm_crypto_verify(tmp_path / "permit.pdf.ses", tmp_path / "permit.pdf")
    assert verdict == {"signature": True, "seal_signature": True, "data_hash": False}


def test_sm_crypto_rejects_a_signature_made_with_another_user_id(tmp_path: Path) -> None:
    """Signed by GmSSL with user id "another-user-id": sm-crypto checks with the standard one."""
    pki = sm2_pki()
    parsed = read_signature(_signature())
    tbs = parsed["to_sign"].dump()
    public = _point(pki.user)
    private = _private_of(pki.user_key)
    wrong = gmssl_pyx.sm2_sign(private, public, tbs, b"another-user-id")
    parsed["signature"] = wrong
    (tmp_path / "doc").write_bytes(DOCUMENT)
    (tmp_path / "doc.ses").write_bytes(parsed.dump(force=True))
    verdict = sm_crypto_verify(tmp_path / "doc.ses", tmp_path / "doc")
    assert verdict == {"signature": False, "seal_signature": True, "data_hash": True}


def _private_of(signer: Sm2PrivateKeySigner) -> bytes:
    from asn1crypto import keys

    info = keys.PrivateKeyInfo.load(_pem_body(signer.private_key_pem()))
    return int(info["private_key"].parsed["private_key"].native).to_bytes(32, "big")


def _pem_body(pem: bytes) -> bytes:
    from asn1crypto import pem as asn1_pem

    _, _, der = asn1_pem.unarmor(pem)
    return bytes(der)


def test_sign_document_refuses_what_cannot_be_a_valid_signature() -> None:
    pki = sm2_pki()
    other = pki.issue(Sm2PrivateKeySigner.generate(), "not-listed", serial=99)
    with pytest.raises(
        CallerError, match=r"^the signer's certificate is not in the seal's certificate list$"
    ):
        _signature(signer_certificate=other)
    with pytest.raises(CallerError, match=r"^the seal is valid .* not at "):
        _signature(at=NOW + timedelta(days=400))
    with pytest.raises(CallerError, match=r"^propertyInfo is an IA5String: ASCII only$"):
        _signature(property_info="许可证.pdf")


@pytest.mark.parametrize(
    ("der", "message"),
    [
        (b"", "^not a DER SES_Signature: "),
        (b"\x30\x03\x02\x01", "^not a DER SES_Signature: "),
        (b"garbage that is not DER", "^not a DER SES_Signature: "),
        (b"\x30\x05\x30\x03\x02\x01\x07", "^an SES_Signature of version 7 is not supported; "),
    ],
)
def test_read_signature_refuses_garbage(der: bytes, message: str) -> None:
    with pytest.raises(Gbt38540FormatError, match=message):
        read_signature(der)


def test_read_signature_refuses_truncation_and_trailing_bytes() -> None:
    der = _signature()
    for cut in (len(der) - 1, len(der) // 2, 10):
        with pytest.raises(Gbt38540FormatError, match=r"^not a DER SES_Signature: "):
            read_signature(der[:cut])
    with pytest.raises(Gbt38540FormatError, match=r"^not a DER SES_Signature: "):
        read_signature(der + b"\x00")


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_corruption_is_refused_or_parsed_never_crashes(data: st.DataObject) -> None:
    der = bytearray(_cached_signature())
    index = data.draw(st.integers(0, len(der) - 1))
    der[index] ^= data.draw(st.integers(1, 255))
    try:
        parsed = read_signature(bytes(der))
    except Gbt38540FormatError:
        return
    assert parsed.dump() == bytes(der)


_CACHE: dict[str, bytes] = {}


def _cached_signature() -> bytes:
    if "sig" not in _CACHE:
        _CACHE["sig"] = _signature()
    return _CACHE["sig"]


def test_version_1_structures_are_refused_clearly() -> None:
    """A GM/T 0031-2014 seal (header version 1) and signature (TBS_Sign version 1)."""
    from tongban.keys.gbt38540.structures import SesSeal, SesSignature

    seal = SesSeal.load(a_seal())
    seal["e_seal_info"]["header"]["version"] = 1
    with pytest.raises(
        Gbt38540FormatError, match=r"^an SES_Seal of version 1 \(GM/T 0031-2014\) is not supported"
    ):
        read_seal(seal.dump(force=True))
    sig = SesSignature.load(_signature())
    sig["to_sign"]["version"] = 1
    with pytest.raises(
        Gbt38540FormatError,
        match=r"^an SES_Signature of version 1 \(GM/T 0031-2014\) is not supported",
    ):
        read_signature(sig.dump(force=True))
