"""National-format seals at a node: GB/T 38540 registration, ``.ses`` signatures, OFD results.

The node's SM2 material sits in ``<seals dir>/national/``: its SM2 seal CA (``ca.der``,
``ca-key.pem``), its seal maker (``maker.der``, ``maker-key.pem``), and per registered seal
the SM2 key (``keys/<seal id>.pem``) and the ``SES_Seal`` (``seals/<seal id>.esl``). The
seal's record, with its SM2 certificate, is published in the registry like any other.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tongban.keys.gbt38540 import (
    SealPicture,
    Sm2Role,
    issue_sm2_certificate,
    make_seal,
    read_sm2_certificate,
    render_result_ofd,
    sign_document,
    sign_ofd,
)
from tongban.keys.seals import SealRecord
from tongban.keys.signing import Sm2PrivateKeySigner
from tongban.server.domain.errors import Conflict, IllegalTransition, InvalidRequest, NotFound
from tongban.server.usecases.runtime import Clock
from tongban.storage.sql import MetadataStore, SealRow

__all__ = ["PROFILE_CMS", "PROFILE_GBT38540", "NationalSealBook", "NationalSeals"]

PROFILE_CMS = "cms"
PROFILE_GBT38540 = "gbt38540"
_STAMP_MM = 40


@dataclass(frozen=True)
class NationalSealBook:
    """The node's SM2 seal CA and seal maker, and the folder of national seals."""

    folder: Path
    ca_key: Sm2PrivateKeySigner
    ca_certificate: bytes
    maker_key: Sm2PrivateKeySigner
    maker_certificate: bytes

    @classmethod
    def load(cls, folder: Path) -> NationalSealBook:
        """Read the SM2 seal CA and maker from ``folder``."""
        return cls(
            folder,
            Sm2PrivateKeySigner.from_pem((folder / "ca-key.pem").read_bytes()),
            (folder / "ca.der").read_bytes(),
            Sm2PrivateKeySigner.from_pem((folder / "maker-key.pem").read_bytes()),
            (folder / "maker.der").read_bytes(),
        )

    def key_path(self, seal_id: str) -> Path:
        """Where the SM2 key of a national seal is kept."""
        return self.folder / "keys" / f"{seal_id}.pem"

    def seal_path(self, seal_id: str) -> Path:
        """Where the ``SES_Seal`` of a national seal is kept."""
        return self.folder / "seals" / f"{seal_id}.esl"


def _write_new(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise Conflict(f"seal id {path.stem!r} is already registered") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


class NationalSeals:
    """Register GB/T 38540 seals and sign with them: ``.ses`` files and OFD results.

    Dependencies: the node id, the metadata store (seal rows), the SM2 seal book, the clock.
    """

    def __init__(
        self, *, node_id: str, metadata: MetadataStore, book: NationalSealBook, clock: Clock
    ) -> None:
        self.node_id = node_id
        self.metadata = metadata
        self.book = book
        self.clock = clock

    def register(
        self,
        *,
        seal_id: str,
        name: str,
        org_uscc: str,
        not_before: datetime,
        not_after: datetime,
        image_png: bytes,
    ) -> SealRecord:
        """An SM2 key and certificate for the seal, its ``SES_Seal``, and its record.

        The caller (``SealOffice.register_seal``) has checked id, name, credit code and image.

        Raises:
            InvalidRequest: the seal would outlive the SM2 seal CA.
            Conflict: the seal id is taken.
        """
        book = self.book
        if not_after > read_sm2_certificate(book.ca_certificate).not_after:
            raise InvalidRequest("the seal cannot outlive the node's SM2 seal CA certificate")
        now = self.clock()
        key = Sm2PrivateKeySigner.generate()
        certificate = issue_sm2_certificate(
            issuer=book.ca_key,
            issuer_certificate=book.ca_certificate,
            subject={
                "country_name": "CN",
                "organization_name": self.node_id,
                "organizational_unit_name": "seal",
                "common_name": seal_id,
                "serial_number": org_uscc,
            },
            public_key_der=key.public_key_der,
            serial=int.from_bytes(os.urandom(16), "big") >> 1,
            not_before=not_before,
            not_after=not_after,
            role=Sm2Role.SEAL,
        )
        seal = make_seal(
            maker=book.maker_key,
            maker_certificate=book.maker_certificate,
            seal_id=seal_id,
            name=name,
            user_certificates=[certificate],
            created=now,
            valid_start=not_before,
            valid_end=not_after,
            picture=SealPicture(image_png, _STAMP_MM, _STAMP_MM),
        )
        record = SealRecord(
            seal_id=seal_id,
            name=name,
            org_uscc=org_uscc,
            node_id=self.node_id,
            certificate=x509.load_der_x509_certificate(certificate),
            image_sha256=hashlib.sha256(image_png).hexdigest(),
            not_before=not_before,
            not_after=not_after,
        )
        with self.metadata.transaction() as session:
            if session.get(SealRow, seal_id) is not None:
                raise Conflict(f"seal id {seal_id!r} is already registered")
            _write_new(book.key_path(seal_id), key.private_key_pem(), 0o600)
            try:
                _write_new(book.seal_path(seal_id), seal, 0o644)
                session.add(
                    SealRow(
                        seal_id=seal_id,
                        name=name,
                        org_uscc=org_uscc,
                        record=json.dumps(record.to_json_dict()).encode(),
                        image_png=image_png,
                        key_ref=f"national/keys/{seal_id}.pem",
                        created_at=now,
                        revoked_at=None,
                    )
                )
                session.flush()
            except BaseException:
                book.key_path(seal_id).unlink(missing_ok=True)
                book.seal_path(seal_id).unlink(missing_ok=True)
                raise
        return record

    def _material(self, seal_id: str) -> tuple[Sm2PrivateKeySigner, bytes, bytes]:
        with self.metadata.read() as session:
            row = session.get(SealRow, seal_id)
            if row is None:
                raise NotFound(f"unknown seal id {seal_id!r}")
            record = SealRecord.from_json_dict(json.loads(row.record))
        if not record.valid_at(self.clock()):
            raise IllegalTransition(
                f"seal {seal_id} is not valid now (revoked or outside its window)"
            )
        if not self.book.key_path(seal_id).exists():
            raise IllegalTransition(f"seal {seal_id} is not a national-format seal of this node")
        key = Sm2PrivateKeySigner.from_pem(self.book.key_path(seal_id).read_bytes())
        seal = self.book.seal_path(seal_id).read_bytes()
        return key, seal, record.certificate.public_bytes(Encoding.DER)

    def sign_file(self, seal_id: str, document: bytes, *, document_name: str) -> bytes:
        """A ``SES_Signature`` (the ``FILE.ses``) over ``document`` with a national seal.

        Raises:
            NotFound / IllegalTransition: no such seal, not national, revoked or expired.
        """
        key, seal, certificate = self._material(seal_id)
        name = document_name if document_name.isascii() else "document"
        return sign_document(
            document,
            seal=seal,
            signer=key,
            signer_certificate=certificate,
            at=self.clock(),
            property_info=name,
        )

    def issue_ofd_result(
        self, seal_id: str, *, title: str, lines: Sequence[str], doc_id: str
    ) -> bytes:
        """A result rendered as OFD and signed with a national seal (GB/T 33190).

        Raises:
            NotFound / IllegalTransition: no such seal, not national, revoked or expired.
        """
        key, seal, certificate = self._material(seal_id)
        now = self.clock()
        unsigned = render_result_ofd(title, lines, doc_id=doc_id, created=now)
        return sign_ofd(unsigned, seal=seal, signer=key, signer_certificate=certificate, at=now)
