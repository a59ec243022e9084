"""Seals at a node: registration, sealing, e-certificate status, and the signed public lists.

An admin registers seals; documents are sealed (result packets automatically); the node
keeps its e-certificates' status and the signed lists a third party verifies with.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from tongban.keys.ecert import (
    ECertIdentifier,
    ECertStatus,
    ECertStatusEntry,
    ECertStatusList,
    parse_ecert_identifier,
    sign_status_list,
)
from tongban.keys.envelope import Envelope
from tongban.keys.errors import CallerError, echo
from tongban.keys.identifiers import validate_credit_code
from tongban.keys.keyring import NodeKeyRing
from tongban.keys.pki import private_key_pem
from tongban.keys.seal_registry import SealRegistry, sign_seal_registry
from tongban.keys.seals import (
    RevocationReason,
    SealRecord,
    check_seal_image,
    create_seal,
    seal_digest,
    seal_pdf,
)
from tongban.server.domain.errors import (
    Conflict,
    IllegalTransition,
    InvalidRequest,
    NotFound,
    TooLarge,
)
from tongban.server.usecases.clock_skew import ClockSkewWatch
from tongban.server.usecases.national_seals import PROFILE_CMS, PROFILE_GBT38540, NationalSeals
from tongban.server.usecases.result_seal import result_seal_id
from tongban.server.usecases.runtime import Clock
from tongban.server.usecases.seal_image import render_seal_image
from tongban.server.usecases.seal_keys import SealBook
from tongban.storage.sql import ECertRow, MetadataStore, SealRow

__all__ = ["RESULT_ECERT_TYPE", "SealOffice", "SealedDocument"]

_SEAL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_MAX_PDF = 64 << 20
RESULT_ECERT_TYPE = "RESULT"


def _write_new_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """Write a seal's private key, never over an existing one (owner-only)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise Conflict(f"seal id {path.stem!r} is already registered") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_key_pem(key))
        fh.flush()
        os.fsync(fh.fileno())


def _record(row: SealRow) -> SealRecord:
    return SealRecord.from_json_dict(json.loads(row.record))


def _seal_row(session: Session, seal_id: str) -> SealRow:
    row = session.get(SealRow, seal_id)
    if row is None:
        raise NotFound(f"unknown seal id {echo(seal_id)}")
    return row


def _next_identifier(session: Session, type_code: str, uscc: str) -> tuple[ECertIdentifier, int]:
    # Serials are allocated under a lock: SQLite writers are serialised by BEGIN IMMEDIATE,
    # PostgreSQL ones by a transaction-scoped advisory lock.
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(text("select pg_advisory_xact_lock(3005)"))
    last = session.scalar(select(func.max(ECertRow.serial)).where(ECertRow.type_code == type_code))
    serial = (last or 0) + 1
    return ECertIdentifier(type_code, uscc, f"{serial:012d}"), serial


def _issued(
    identifier: ECertIdentifier,
    serial: int,
    seal_id: str,
    document_name: str,
    sha256_hex: str,
    packet_id: str,
    now: datetime,
) -> ECertRow:
    """The row of an e-certificate issued now, valid."""
    return ECertRow(
        identifier=str(identifier),
        seal_id=seal_id,
        type_code=identifier.type_code,
        serial=serial,
        document_name=document_name,
        document_sha256=sha256_hex,
        packet_id=packet_id,
        issued_at=now,
        status=ECertStatus.VALID.value,
        changed_at=now,
        reason="",
    )


@dataclass(frozen=True)
class SealedDocument:
    identifier: str
    seal_id: str
    signature: bytes  # detached CMS (DER), or the sealed PDF
    pdf: bool


class SealOffice:
    """A node's seals and the e-certificates they issue: register, revoke, seal, publish.

    Its dependencies are its constructor's arguments: the metadata store that holds seal
    and e-certificate rows, the node's relay keys that sign its registry and status list,
    the seal book with the seal keys (None where no seal CA is configured), and the clock.
    """

    def __init__(
        self,
        *,
        node_id: str,
        metadata: MetadataStore,
        keys: NodeKeyRing,
        book: SealBook | None,
        clock: Clock,
        verification_url: str,
        status_list_hours: float,
        result_seal: str = "",
        clock_skew: ClockSkewWatch | None = None,
        national: NationalSeals | None = None,
    ) -> None:
        self.node_id = node_id
        self.clock_skew = clock_skew
        self.national = national
        self.metadata = metadata
        self.keys = keys
        self.seals = book
        self.clock = clock
        self.verification_url = verification_url
        self.status_list_hours = status_list_hours
        self.configured_result_seal = result_seal

    def _book(self) -> SealBook:
        if self.clock_skew is not None:
            self.clock_skew.check_for_sealing()  # a seal's time must be one others can trust
        if self.seals is None:
            raise IllegalTransition(f"node {self.node_id} has no seal CA configured ([seals] dir)")
        return self.seals

    def register_seal(
        self,
        *,
        seal_id: str,
        name: str,
        org_name: str,
        org_uscc: str,
        not_before: datetime,
        not_after: datetime,
        image_png: bytes | None = None,
        profile: str = PROFILE_CMS,
    ) -> SealRecord:
        """Create a seal key and certificate under the node's seal CA and publish the record.

        ``profile`` is ``cms`` (ECDSA P-256, CMS/PAdES) or ``gbt38540`` (SM2, an ``SES_Seal``
        made by the node's seal maker, see :class:`NationalSeals`).

        Raises:
            InvalidRequest: bad seal id, name, organisation name, credit code, window or
                profile.
            BadSealImage: the image is not a PNG within the limits.
            Conflict: the seal id is taken.
            IllegalTransition: the node has no seal CA for that profile.
        """
        if profile not in (PROFILE_CMS, PROFILE_GBT38540):
            raise InvalidRequest(f"unknown seal profile {echo(profile)}: cms or gbt38540")
        if profile == PROFILE_CMS:
            book = self._book()
        elif self.national is None:
            raise IllegalTransition(f"node {self.node_id} has no SM2 seal CA configured")
        if not _SEAL_ID.fullmatch(seal_id):
            raise InvalidRequest(f"seal id {echo(seal_id)} must be 1-64 of A-Z a-z 0-9 . _ -")
        if not name.strip():
            raise InvalidRequest("a seal needs its registered name")
        if not org_name.strip():
            raise InvalidRequest("a seal needs the name of the organisation that owns it")
        uscc = validate_credit_code(org_uscc)
        if not_after <= not_before:
            raise InvalidRequest("the seal's validity window is empty")
        if image_png is not None:
            # Every PDF stamp draws it: an image that does not decode would fail each of them.
            check_seal_image(image_png)
        else:
            image_png = render_seal_image(name.strip())
        if self.national is not None and profile == PROFILE_GBT38540:
            return self.national.register(
                seal_id=seal_id,
                name=name.strip(),
                org_uscc=uscc,
                not_before=not_before,
                not_after=not_after,
                image_png=image_png,
            )
        if not_after > book.ca_certificate.not_valid_after_utc:
            raise InvalidRequest("the seal cannot outlive the node's seal CA certificate")
        now = self.clock()
        with self.metadata.transaction() as session:
            if session.get(SealRow, seal_id) is not None:
                raise Conflict(f"seal id {seal_id!r} is already registered")
            new = create_seal(
                seal_id=seal_id,
                name=name.strip(),
                org_name=org_name.strip(),
                org_uscc=uscc,
                node_id=self.node_id,
                issuer_key=book.ca_key,
                issuer_cert=book.ca_certificate,
                not_before=not_before,
                not_after=not_after,
                now=now,
                image_png=image_png,
            )
            assert new.key is not None
            key_file = book.key_path(seal_id)
            _write_new_key(key_file, new.key)
            try:
                session.add(
                    SealRow(
                        seal_id=seal_id,
                        name=new.record.name,
                        org_uscc=uscc,
                        record=json.dumps(new.record.to_json_dict()).encode(),
                        image_png=new.image_png,
                        key_ref=f"keys/{seal_id}.pem",
                        created_at=now,
                        revoked_at=None,
                    )
                )
                session.flush()
            except BaseException:
                key_file.unlink(missing_ok=True)
                raise
        return new.record

    def revoke_seal(
        self,
        seal_id: str,
        *,
        reason: str = "",
        note: str = "",
        at: datetime | None = None,
    ) -> SealRecord:
        """Revoke a seal from ``at`` on (default now) for ``reason``, an RFC 5280 reason code.

        An empty reason is ``unspecified``, which counts as a possible key compromise: the seal's
        earlier documents then stay VALID only where their time is proven (ADR 0006).

        Raises:
            InvalidRequest: ``reason`` is not a revocation reason code.
            NotFound / IllegalTransition: no such seal, or it was revoked already.
        """
        try:
            code = RevocationReason.from_code(reason)
        except CallerError as exc:
            raise InvalidRequest(exc.message) from None
        at = at or self.clock()
        with self.metadata.transaction() as session:
            row = _seal_row(session, seal_id)
            if row.revoked_at is not None:
                raise IllegalTransition(f"seal {seal_id} was already revoked")
            record = _record(row).revoked(at, code, note)
            row.record = json.dumps(record.to_json_dict()).encode()
            row.revoked_at = at
        return record

    def registered_seals(self) -> list[SealRecord]:
        """The records of every seal registered at this node, revoked ones included."""
        with self.metadata.read() as session:
            rows = session.scalars(select(SealRow).order_by(SealRow.seal_id))
            return [_record(r) for r in rows]

    def seal_registry(self) -> Envelope:
        """This node's seal records, signed with its relay signing key."""
        records = self.registered_seals()
        now = self.clock()
        version = len(records) + sum(1 for r in records if r.revoked_at is not None)
        registry = SealRegistry(self.node_id, version, now, tuple(records))
        return sign_seal_registry(registry, self.keys.signer(now))

    def _usable(self, session: Session, seal_id: str, at: datetime) -> SealRecord:
        # The seal as of ``at``: revoked, or outside its window, it is not used.
        record = _record(_seal_row(session, seal_id))
        if not record.valid_at(at):
            raise IllegalTransition(
                f"seal {seal_id} is not valid now (revoked or outside its window)"
            )
        return record

    def seal_document(
        self,
        *,
        seal_id: str,
        document_name: str,
        chunks: Iterable[bytes],
        type_code: str,
        pdf: bool = False,
    ) -> SealedDocument:
        """Seal a document with a registered seal and issue it an e-certificate identifier.

        Raises:
            NotFound: unknown seal id.
            IllegalTransition: the seal is revoked or outside its window.
            TooLarge: a PDF above 64 MiB (PAdES rewrites the file, so it is held in memory).
        """
        book = self._book()
        # Take the whole upload before any transaction opens: a slow client must not hold a lock.
        digest = hashlib.sha256()
        data = bytearray()
        for chunk in chunks:
            digest.update(chunk)
            if pdf:
                data += chunk
                if len(data) > _MAX_PDF:
                    raise TooLarge(f"a PDF to seal may be at most {_MAX_PDF} bytes")
        now = self.clock()
        signer = book.signer_if_present(seal_id)
        chain = [book.ca_certificate]
        with self.metadata.transaction() as session:
            record = self._usable(session, seal_id, now)
            if signer is None:
                raise IllegalTransition(f"the key of seal {seal_id} is missing at this node")
            identifier, serial = _next_identifier(session, type_code, record.org_uscc)
            if pdf:
                out = io.BytesIO()
                seal_pdf(
                    bytes(data),
                    out,
                    signer,
                    record.certificate,
                    chain=chain,
                    at=now,
                    ecert_identifier=identifier,
                    verification_url=self.verification_url,
                    seal_image_png=_seal_row(session, seal_id).image_png,
                )
                signature = out.getvalue()
            else:
                signature = seal_digest(
                    digest.digest(),
                    signer,
                    record.certificate,
                    chain=chain,
                    at=now,
                    ecert_identifier=identifier,
                )
            session.add(
                _issued(identifier, serial, seal_id, document_name, digest.hexdigest(), "", now)
            )
        return SealedDocument(str(identifier), seal_id, signature, pdf)

    def seal_pdf_in(
        self,
        session: Session,
        *,
        seal_id: str,
        document_name: str,
        pdf: bytes,
        at: datetime,
        type_code: str = RESULT_ECERT_TYPE,
    ) -> SealedDocument:
        """Seal a PDF (PAdES, visible stamp and QR) at ``at`` inside the caller's transaction,
        so the e-certificate exists only if what it seals is committed with it.

        Raises:
            NotFound: unknown seal id.
            IllegalTransition: the seal is revoked or outside its window at ``at``, or its
                key is missing.
        """
        book = self._book()
        record = self._usable(session, seal_id, at)
        signer = book.signer_if_present(seal_id)
        if signer is None:
            raise IllegalTransition(f"the key of seal {seal_id} is missing at this node")
        identifier, serial = _next_identifier(session, type_code, record.org_uscc)
        out = io.BytesIO()
        seal_pdf(
            pdf,
            out,
            signer,
            record.certificate,
            chain=[book.ca_certificate],
            at=at,
            ecert_identifier=identifier,
            verification_url=self.verification_url,
            seal_image_png=_seal_row(session, seal_id).image_png,
        )
        session.add(
            ECertRow(
                identifier=str(identifier),
                seal_id=seal_id,
                type_code=type_code,
                serial=serial,
                document_name=document_name,
                document_sha256=hashlib.sha256(pdf).hexdigest(),
                packet_id="",
                issued_at=at,
                status=ECertStatus.VALID.value,
                changed_at=at,
                reason="",
            )
        )
        session.flush()
        return SealedDocument(str(identifier), seal_id, out.getvalue(), True)

    def seal_result_digest(
        self,
        session: Session,
        *,
        seal_id: str,
        document_name: str,
        sha256_hex: str,
        packet_id: str,
    ) -> tuple[str, bytes]:
        """Seal a result document from its digest inside the packet's transaction."""
        book = self._book()
        now = self.clock()
        record = self._usable(session, seal_id, now)
        identifier, serial = _next_identifier(session, RESULT_ECERT_TYPE, record.org_uscc)
        signature = seal_digest(
            bytes.fromhex(sha256_hex),
            book.signer(seal_id),
            record.certificate,
            chain=[book.ca_certificate],
            at=now,
            ecert_identifier=identifier,
        )
        session.add(_issued(identifier, serial, seal_id, document_name, sha256_hex, packet_id, now))
        session.flush()
        return str(identifier), signature

    def change_ecert_status(self, identifier: str, status: str, *, reason: str) -> ECertStatusEntry:
        """Revoke (撤销/吊销), cancel (注销) or expire (失效) an issued e-certificate.

        Raises:
            ECertIdentifierError: malformed identifier or bad check character.
            NotFound: not issued by this node.
            InvalidRequest: unknown status or missing reason.
            IllegalTransition: it is no longer valid.
        """
        parse_ecert_identifier(identifier)
        try:
            new = ECertStatus(status)
        except ValueError:
            raise InvalidRequest(f"unknown e-certificate status {echo(status)}") from None
        if new is ECertStatus.VALID:
            raise InvalidRequest("an e-certificate cannot be made valid again; issue a new one")
        if new in (ECertStatus.REVOKED, ECertStatus.CANCELLED) and not reason.strip():
            raise InvalidRequest(f"a {new.value} e-certificate needs a reason")
        now = self.clock()
        with self.metadata.transaction() as session:
            row = session.get(ECertRow, identifier)
            if row is None:
                raise NotFound(f"e-certificate {identifier} was not issued by node {self.node_id}")
            if row.status != ECertStatus.VALID.value:
                raise IllegalTransition(f"e-certificate {identifier} is already {row.status}")
            row.status, row.changed_at, row.reason = new.value, now, reason.strip()
        return ECertStatusEntry(identifier, new, now, reason.strip())

    def ecert_status(self, identifier: str) -> ECertStatusEntry:
        """The current status of an e-certificate this node issued (for online verification)."""
        parse_ecert_identifier(identifier)
        with self.metadata.read() as session:
            row = session.get(ECertRow, identifier)
            if row is None:
                raise NotFound(f"e-certificate {identifier} was not issued by node {self.node_id}")
            return ECertStatusEntry(identifier, ECertStatus(row.status), row.changed_at, row.reason)

    def status_list(self) -> Envelope:
        """Every status change of this node's e-certificates, signed, valid for a stated period."""
        now = self.clock()
        with self.metadata.read() as session:
            rows = list(
                session.scalars(
                    select(ECertRow)
                    .where(ECertRow.status != ECertStatus.VALID.value)
                    .order_by(ECertRow.changed_at)
                )
            )
        listing = ECertStatusList.empty(
            self.node_id, issued_at=now, next_update=now + timedelta(hours=self.status_list_hours)
        )
        for r in rows:
            listing = listing.with_change(
                parse_ecert_identifier(r.identifier),
                ECertStatus(r.status),
                changed_at=r.changed_at,
                reason=r.reason or r.status,
                issued_at=now,
                next_update=listing.next_update,
            )
        return sign_status_list(listing, self.keys.signer(now))

    def result_seal(self, session: Session) -> str:
        """The seal for this node's results: ``[seals] result_seal``, else the newest usable one.

        Raises:
            NoUsableSeal: none may be applied now; nothing may be sent unsealed.
        """
        return result_seal_id(
            session,
            node_id=self.node_id,
            book=self.seals,
            now=self.clock(),
            configured=self.configured_result_seal,
        )
