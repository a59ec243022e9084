"""`tongban verify` on GB/T 38540 input: a .ses beside its file, and a signed OFD."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures_gbt import NOW, SEAL_ID, a_seal, sm2_pki
from tests.keys.test_gbt38540_verifier import _record
from tongban.cli.main import main
from tongban.keys.gbt38540 import render_result_ofd, sign_document, sign_ofd

DOCUMENT = b"permit text"


@pytest.fixture
def trust(tmp_path: Path) -> list[str]:
    pki = sm2_pki()
    (tmp_path / "sm2-root.der").write_bytes(pki.root)
    (tmp_path / "sm2-ca.der").write_bytes(pki.ca)
    (tmp_path / "seals.json").write_text(
        json.dumps({"seals": [_record(pki).to_json_dict()]}), encoding="utf-8"
    )
    return [
        "--trust", str(tmp_path / "sm2-root.der"),
        "--ca", str(tmp_path / "sm2-ca.der"),
        "--directory", str(tmp_path / "seals.json"),
        "--at", "2026-03-02T10:00:00Z",
    ]  # fmt: skip


def _ses(tmp_path: Path, document: bytes = DOCUMENT) -> Path:
    pki = sm2_pki()
    (tmp_path / "permit.txt").write_bytes(document)
    (tmp_path / "permit.txt.ses").write_bytes(
        sign_document(
            DOCUMENT,
            seal=a_seal(),
            signer=pki.user_key,
            signer_certificate=pki.user,
            at=NOW,
            property_info="permit.txt",
        )
    )
    return tmp_path / "permit.txt"


def test_verify_ses_is_valid_with_exit_0(
    tmp_path: Path, trust: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    document = _ses(tmp_path)
    code = main(["verify", str(document), "--seal", f"{document}.ses", "--json", *trust])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report["summary"]
    assert report["indication"] == "VALID"
    assert report["format"] == "gbt38540-ses"
    assert report["signer"]["seal_id"] == SEAL_ID


def test_verify_ses_of_a_changed_file_exits_1(
    tmp_path: Path, trust: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    document = _ses(tmp_path, DOCUMENT + b"?")
    code = main(["verify", str(document), "--seal", f"{document}.ses", *trust])
    out = capsys.readouterr().out
    assert code == 1
    assert out.splitlines()[0].startswith("INVALID (HASH_FAILURE): the SM3 hash ")


def test_verify_ses_without_the_sm2_ca_is_indeterminate_exit_3(
    tmp_path: Path, trust: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    document = _ses(tmp_path)
    without_ca = [a for a in trust if not a.endswith("sm2-ca.der") and a != "--ca"]
    code = main(["verify", str(document), "--seal", f"{document}.ses", "--json", *without_ca])
    report = json.loads(capsys.readouterr().out)
    assert code == 3
    assert report["sub_indication"] == "NO_CERTIFICATE_CHAIN_FOUND"


def test_verify_garbage_ses_exits_1_with_format_failure(
    tmp_path: Path, trust: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "doc").write_bytes(DOCUMENT)
    (tmp_path / "doc.ses").write_bytes(b"\x30\x82garbage")
    code = main(["verify", str(tmp_path / "doc"), "--seal", str(tmp_path / "doc.ses"), *trust])
    assert code == 1
    assert capsys.readouterr().out.startswith("INVALID (FORMAT_FAILURE): not a DER SES_Signature")


def test_verify_signed_ofd(
    tmp_path: Path, trust: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    pki = sm2_pki()
    ofd = sign_ofd(
        render_result_ofd("决定书", ["准予许可"], doc_id="d", created=NOW),
        seal=a_seal(),
        signer=pki.user_key,
        signer_certificate=pki.user,
        at=NOW,
    )
    (tmp_path / "result.ofd").write_bytes(ofd)
    code = main(["verify", str(tmp_path / "result.ofd"), "--json", *trust])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report["summary"]
    assert report["format"] == "gbt38540-ofd"
    assert [c["name"] for c in report["checks"]][:3] == ["format", "ofd_references", "ofd_coverage"]


def test_the_sdk_offers_the_national_verifier(tmp_path: Path) -> None:
    from tongban.client.verify import Indication, gbt38540_verification_result

    pki = sm2_pki()
    document = _ses(tmp_path)
    report = gbt38540_verification_result(
        document,
        signature=Path(f"{document}.ses"),
        roots=[pki.root],
        intermediates=[pki.ca],
        seals=[_record(pki)],
        at=NOW,
    )
    assert report.indication is Indication.VALID, report.summary
