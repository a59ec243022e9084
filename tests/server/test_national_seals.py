"""Registering a gbt38540 seal through SealOffice, and what the node signs with it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tests.fixtures_gbt import NODE, NOW, seal_png, sm2_pki
from tongban.keys.gbt38540 import Gbt38540Verifier, read_seal
from tongban.keys.verification import Indication
from tongban.server.domain.errors import Conflict, IllegalTransition, InvalidRequest
from tongban.server.usecases.national_seals import NationalSealBook, NationalSeals
from tongban.server.usecases.seals import SealOffice
from tongban.storage.sql import open_metadata_store

USCC = "11420700MB1539542A"


def _office(tmp_path: Path, *, national: bool = True) -> SealOffice:
    pki = sm2_pki()
    folder = tmp_path / "seals" / "national"
    folder.mkdir(parents=True)
    (folder / "ca-key.pem").write_bytes(pki.ca_key.private_key_pem())
    (folder / "ca.der").write_bytes(pki.ca)
    (folder / "maker-key.pem").write_bytes(pki.maker_key.private_key_pem())
    (folder / "maker.der").write_bytes(pki.maker)
    metadata = open_metadata_store(f"sqlite:///{tmp_path / 'meta.db'}")
    seals = NationalSeals(
        node_id=NODE, metadata=metadata, book=NationalSealBook.load(folder), clock=lambda: NOW
    )
    return SealOffice(
        node_id=NODE,
        metadata=metadata,
        keys=None,  # type: ignore[arg-type]  # registering signs no registry
        book=None,
        clock=lambda: NOW,
        verification_url="https://verify.example.cn",
        status_list_hours=24,
        national=seals if national else None,
    )


def _register(office: SealOffice, **changes: object) -> object:
    values: dict[str, object] = {
        "seal_id": "approval-sm2",
        "name": "鄂州市行政审批局行政审批专用章",
        "org_name": "鄂州市行政审批局",
        "org_uscc": USCC,
        "not_before": NOW - timedelta(hours=1),
        "not_after": NOW + timedelta(days=365),
        "image_png": seal_png(),
        "profile": "gbt38540",
    }
    values.update(changes)
    return office.register_seal(**values)  # type: ignore[arg-type]


def _verifier(office: SealOffice) -> Gbt38540Verifier:
    pki = sm2_pki()
    return Gbt38540Verifier([pki.root], office.registered_seals(), intermediates=[pki.ca])


def test_registered_national_seal_signs_a_file_that_verifies(tmp_path: Path) -> None:
    office = _office(tmp_path)
    record = _register(office)
    assert office.registered_seals() == [record]
    assert office.national is not None
    seal = read_seal(office.national.book.seal_path("approval-sm2").read_bytes())
    assert seal["e_seal_info"]["es_id"].native == "approval-sm2"
    assert seal["e_seal_info"]["picture"]["data"].native == seal_png()
    ses = office.national.sign_file("approval-sm2", b"permit", document_name="permit.pdf")
    report = _verifier(office).result(b"permit", signature=ses, at=NOW)
    assert report.indication is Indication.VALID, report.summary


def test_national_seal_issues_a_signed_ofd_result(tmp_path: Path) -> None:
    office = _office(tmp_path)
    _register(office)
    assert office.national is not None
    ofd = office.national.issue_ofd_result(
        "approval-sm2", title="准予行政许可决定书", lines=["准予许可"], doc_id="case-1"
    )
    report = _verifier(office).ofd_result(ofd, at=NOW)
    assert report.indication is Indication.VALID, report.summary
    assert report.signer is not None and report.signer.org_uscc == USCC


def test_unknown_profile_is_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    office = _office(tmp_path)
    with pytest.raises(InvalidRequest, match=r"^unknown seal profile 'sm9': cms or gbt38540$"):
        _register(office, profile="sm9")
    assert office.registered_seals() == []
    assert not (tmp_path / "seals" / "national" / "keys").exists()


def test_national_profile_without_sm2_ca_is_refused(tmp_path: Path) -> None:
    office = _office(tmp_path, national=False)
    with pytest.raises(IllegalTransition, match=r"^node node-a has no SM2 seal CA configured$"):
        _register(office)
    assert office.registered_seals() == []


def test_second_registration_of_a_seal_id_is_a_conflict_and_keeps_the_first(
    tmp_path: Path,
) -> None:
    office = _office(tmp_path)
    first = _register(office)
    book = office.national.book if office.national else None
    assert book is not None
    key_before = book.key_path("approval-sm2").read_bytes()
    with pytest.raises(Conflict, match=r"^seal id 'approval-sm2' is already registered$"):
        _register(office, name="another name")
    assert office.registered_seals() == [first]
    assert book.key_path("approval-sm2").read_bytes() == key_before


def test_a_seal_may_not_outlive_the_sm2_ca(tmp_path: Path) -> None:
    office = _office(tmp_path)
    with pytest.raises(
        InvalidRequest, match=r"^the seal cannot outlive the node's SM2 seal CA certificate$"
    ):
        _register(office, not_after=NOW + timedelta(days=20 * 365))
    assert office.registered_seals() == []


def test_signing_with_an_unknown_seal_is_not_found(tmp_path: Path) -> None:
    from tongban.server.domain.errors import NotFound

    office = _office(tmp_path)
    assert office.national is not None
    with pytest.raises(NotFound, match=r"^unknown seal id 'nope'$"):
        office.national.sign_file("nope", b"x", document_name="x")
