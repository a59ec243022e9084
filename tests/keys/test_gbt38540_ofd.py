"""Signed OFD results: the GB/T 33190 signature structure, and every change to the package."""

from __future__ import annotations

import base64
import io
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from defusedxml import ElementTree

from tests.fixtures_gbt import NOW, a_seal, sm2_pki, sm_crypto_verify
from tests.keys.test_gbt38540_verifier import _verifier
from tongban.keys.gbt38540.ofd import render_result_ofd, sign_ofd
from tongban.keys.gbt38540.verifier import FORMAT_OFD
from tongban.keys.verification import CheckOutcome, Indication, SubIndication

NS = {"ofd": "http://www.ofdspec.org/2016"}
LINES = ["申请人：张三", "事项：食品经营许可", "结论：准予许可"]


def _signed() -> bytes:
    pki = sm2_pki()
    unsigned = render_result_ofd("准予行政许可决定书", LINES, doc_id="doc-1", created=NOW)
    return sign_ofd(
        unsigned, seal=a_seal(), signer=pki.user_key, signer_certificate=pki.user, at=NOW
    )


def _files(ofd: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(ofd)) as package:
        return {i.filename: package.read(i) for i in package.infolist()}


def _repack(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as package:
        for name, data in files.items():
            package.writestr(name, data)
    return out.getvalue()


def _sm3(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize()


def test_signed_ofd_has_the_gbt33190_structure() -> None:
    files = _files(_signed())
    assert sorted(files) == [
        "Doc_0/Document.xml",
        "Doc_0/Pages/Page_0/Content.xml",
        "Doc_0/PublicRes.xml",
        "Doc_0/Signs/Sign_0/Seal.esl",
        "Doc_0/Signs/Sign_0/Signature.xml",
        "Doc_0/Signs/Sign_0/SignedValue.dat",
        "Doc_0/Signs/Signatures.xml",
        "OFD.xml",
    ]
    root = ElementTree.fromstring(files["OFD.xml"])
    assert (
        root.findtext("ofd:DocBody/ofd:Signatures", namespaces=NS) == "Doc_0/Signs/Signatures.xml"
    )
    listed = ElementTree.fromstring(files["Doc_0/Signs/Signatures.xml"])
    assert [(s.get("Type"), s.get("BaseLoc")) for s in listed.findall("ofd:Signature", NS)] == [
        ("Seal", "/Doc_0/Signs/Sign_0/Signature.xml")
    ]
    signature = ElementTree.fromstring(files["Doc_0/Signs/Sign_0/Signature.xml"])
    refs = signature.find("ofd:SignedInfo/ofd:References", NS)
    assert refs is not None and refs.get("CheckMethod") == "1.2.156.10197.1.401"
    checks = {
        r.get("FileRef"): base64.b64decode(r.findtext("ofd:CheckValue", namespaces=NS) or "")
        for r in refs.findall("ofd:Reference", NS)
    }
    protected = [
        "Doc_0/Document.xml",
        "Doc_0/Pages/Page_0/Content.xml",
        "Doc_0/PublicRes.xml",
        "OFD.xml",
    ]
    assert checks == {f"/{name}": _sm3(files[name]) for name in protected}
    stamp = signature.find("ofd:SignedInfo/ofd:StampAnnot", NS)
    assert stamp is not None and stamp.get("PageRef") == "1"
    assert "准予许可" in files["Doc_0/Pages/Page_0/Content.xml"].decode()


def test_sm_crypto_verifies_the_signed_value_over_signature_xml(tmp_path: Path) -> None:
    files = _files(_signed())
    (tmp_path / "SignedValue.dat").write_bytes(files["Doc_0/Signs/Sign_0/SignedValue.dat"])
    (tmp_path / "Signature.xml").write_bytes(files["Doc_0/Signs/Sign_0/Signature.xml"])
    verdict = sm_crypto_verify(tmp_path / "SignedValue.dat", tmp_path / "Signature.xml")
    assert verdict == {"signature": True, "seal_signature": True, "data_hash": True}


def test_signed_ofd_verifies(tmp_path: Path) -> None:
    (tmp_path / "result.ofd").write_bytes(_signed())
    report = _verifier().ofd_result(tmp_path / "result.ofd", at=NOW)
    assert report.indication is Indication.VALID, report.summary
    assert report.format == FORMAT_OFD
    assert (
        report.check("ofd_references").detail
        == "all 4 protected files match their SM3 check values"
    )
    assert report.check("ofd_coverage").outcome is CheckOutcome.PASSED
    assert report.check("format").detail == (
        "OFD (GB/T 33190) with 1 signature(s), the last one verified: "
        "Doc_0/Signs/Sign_0/Signature.xml, SES_Signature version 4"
    )


def test_changed_protected_file() -> None:
    files = _files(_signed())
    content = "Doc_0/Pages/Page_0/Content.xml"
    files[content] = files[content].replace("准予许可".encode(), "不予许可".encode())
    report = _verifier().ofd_result(_repack(files), at=NOW)
    assert (report.indication, report.sub_indication) == (
        Indication.INVALID,
        SubIndication.HASH_FAILURE,
    )
    assert report.check("ofd_references").detail == f"protected file(s) changed: {content}"
    assert report.check("signature").outcome is CheckOutcome.PASSED


def test_removed_protected_file() -> None:
    files = _files(_signed())
    del files["Doc_0/PublicRes.xml"]
    report = _verifier().ofd_result(_repack(files), at=NOW)
    assert report.sub_indication is SubIndication.HASH_FAILURE
    assert report.check("ofd_references").detail == "protected file(s) removed: Doc_0/PublicRes.xml"


def test_extra_file_not_covered_is_reported_with_what_is_covered() -> None:
    files = _files(_signed())
    files["Doc_0/Res/extra.png"] = b"\x89PNG not covered"
    report = _verifier().ofd_result(_repack(files), at=NOW)
    assert (report.indication, report.sub_indication) == (
        Indication.INVALID,
        SubIndication.SIG_CONSTRAINTS_FAILURE,
    )
    assert report.check("ofd_coverage").detail == (
        "file(s) the signature does not cover: Doc_0/Res/extra.png; it covers 4 file(s): "
        "Doc_0/Document.xml, Doc_0/Pages/Page_0/Content.xml, Doc_0/PublicRes.xml, OFD.xml"
    )
    assert report.check("ofd_references").outcome is CheckOutcome.PASSED


def test_changed_signature_xml_breaks_the_data_hash() -> None:
    files = _files(_signed())
    path = "Doc_0/Signs/Sign_0/Signature.xml"
    files[path] = files[path].replace(b'PageRef="1"', b'PageRef="2"')
    report = _verifier().ofd_result(_repack(files), at=NOW)
    assert report.sub_indication is SubIndication.HASH_FAILURE
    assert report.check("document_integrity").outcome is CheckOutcome.FAILED


def test_seal_file_swapped_for_another_seal() -> None:
    files = _files(_signed())
    files["Doc_0/Signs/Sign_0/Seal.esl"] = a_seal()  # same content, another maker signature
    report = _verifier().ofd_result(_repack(files), at=NOW)
    assert report.check("ofd_seal_file").detail == (
        "the seal file the stamp shows is not the seal inside the signature"
    )
    assert report.sub_indication is SubIndication.SIG_CONSTRAINTS_FAILURE


@pytest.mark.parametrize(
    ("mutate", "detail"),
    [
        (lambda f: b"not a zip", "not an OFD package (a ZIP file): "),
        (
            lambda f: _repack({k: v for k, v in f.items() if k != "OFD.xml"}),
            "the OFD package has no OFD.xml",
        ),
        (
            lambda f: _repack(
                {
                    **f,
                    "OFD.xml": f["OFD.xml"].replace(
                        b"<ofd:Signatures>Doc_0/Signs/Signatures.xml</ofd:Signatures>", b""
                    ),
                }
            ),
            "the OFD document carries no signature (no Signatures in OFD.xml)",
        ),
        (
            lambda f: _repack({**f, "Doc_0/Signs/Sign_0/SignedValue.dat": b"\x30\x01"}),
            "not a DER SES_Signature: ",
        ),
        (
            lambda f: _repack({**f, "OFD.xml": b'<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'}),
            "OFD.xml is not well-formed XML: ",
        ),
    ],
)
def test_malformed_packages_are_format_failures(mutate, detail: str) -> None:  # type: ignore[no-untyped-def]
    report = _verifier().ofd_result(mutate(_files(_signed())), at=NOW)
    assert report.sub_indication is SubIndication.FORMAT_FAILURE
    assert report.check("format").detail.startswith(detail), report.check("format").detail


def test_a_second_signature_covers_the_first() -> None:
    pki = sm2_pki()
    twice = sign_ofd(
        _signed(), seal=a_seal(), signer=pki.user_key, signer_certificate=pki.user, at=NOW
    )
    files = _files(twice)
    assert "Doc_0/Signs/Sign_1/SignedValue.dat" in files
    report = _verifier().ofd_result(twice, at=NOW)
    assert report.indication is Indication.VALID, report.summary
    assert (
        report.check("ofd_references").detail
        == "all 7 protected files match their SM3 check values"
    )


def test_signature_made_for_another_signature_xml_is_refused() -> None:
    files = _files(_signed())
    files["Doc_0/Signs/Sign_7/Signature.xml"] = files.pop("Doc_0/Signs/Sign_0/Signature.xml")
    files["Doc_0/Signs/Signatures.xml"] = files["Doc_0/Signs/Signatures.xml"].replace(
        b"Sign_0/Signature.xml", b"Sign_7/Signature.xml"
    )
    report = _verifier().ofd_result(_repack(files), at=NOW)
    assert report.check("ofd_references").detail == (
        "the signature was made for '/Doc_0/Signs/Sign_0/Signature.xml', not for "
        "/Doc_0/Signs/Sign_7/Signature.xml"
    )
    assert report.sub_indication is SubIndication.SIG_CONSTRAINTS_FAILURE


def test_check_method_other_than_sm3_is_not_accepted() -> None:
    files = _files(_signed())
    path = "Doc_0/Signs/Sign_0/Signature.xml"
    files[path] = files[path].replace(b'CheckMethod="1.2.156.10197.1.401"', b'CheckMethod="MD5"')
    report = _verifier().ofd_result(_repack(files), at=NOW)
    assert report.check("ofd_references").detail == "check method MD5 is not SM3"
    assert report.check("ofd_references").outcome is CheckOutcome.INDETERMINATE
