"""A hall submits a packet: checked, signed, encrypted, stored durably, queued for delivery.

Nothing is acknowledged before it is durable: blobs are stored under a fresh attempt
prefix, the metadata commits in one transaction, and any failure removes that attempt's
blobs, so a refused or interrupted transfer leaves the store as it was.

Why one module of about 550 lines: the steps of one submission (store the files, seal a
result, sign, commit the rows and the outbox) share one attempt prefix and one
transaction; apart, the rule "everything of an attempt or nothing" would span modules.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tongban.keys.content import (
    FORM_FILE_INDEX,
    MAX_SEGMENT_SIZE,
    FileCipher,
    new_data_key,
    wrap_data_key,
)
from tongban.keys.envelope import (
    Envelope,
    sign_envelope,
)
from tongban.keys.errors import echo
from tongban.keys.file_names import DistinctFileNames, check_file_names
from tongban.keys.keyring import NodeKeyRing
from tongban.keys.records import KeyRecord
from tongban.server.config import Limits
from tongban.server.domain.errors import (
    InvalidRequest,
    TooLarge,
)
from tongban.server.domain.matters import MatterCatalog
from tongban.server.domain.statements import (
    PACKET_TYPE,
    FileEntry,
    PacketStatement,
    RecipientEntry,
)
from tongban.server.usecases.cases import OutboxItem
from tongban.server.usecases.events import (
    append_local_event,
    encode_signatures,
    enqueue,
    local_event,
    outbox_items,
    outbox_row,
)
from tongban.server.usecases.messages import (
    DeliverOpening,
    DeliveryInfo,
    FileBegin,
    FileEnd,
    OutgoingPacket,
    StoredFile,
    SubmitHeader,
    SubmitPart,
    SubmitResult,
)
from tongban.server.usecases.outgoing import delivery_states
from tongban.server.usecases.resend import answer_resend, held_outgoing, resent_files
from tongban.server.usecases.runtime import ActiveTransfers, Clock, DirectoryHolder, InboxNotifier
from tongban.server.usecases.seals import SealOffice
from tongban.server.usecases.submit_checks import (
    SubmitPlan,
    check_file_begin,
    file_chunks,
    leg_for_packet,
    packet_id_of,
    plan_submit,
)
from tongban.storage.objects import ObjectStore
from tongban.storage.sql import (
    CaseRow,
    DeliveryRow,
    LegRow,
    MetadataStore,
    PacketFileRow,
    PacketRow,
)

__all__ = ["SubmitPackets", "delivery_states"]


# ---- a packet id used before ----------------------------------------------------------------


def _delivery_rows(
    plan: SubmitPlan, wraps: list[tuple[RecipientEntry, KeyRecord, bytes]]
) -> list[DeliveryRow]:
    return [
        DeliveryRow(
            packet_id=str(plan.packet_id),
            node_id=r.node,
            hall_id=r.hall,
            department=r.department,
            wrapped_key=wrapped,
            key_id=key.key_id,
            state="pending",
            attempts=0,
            last_error="",
        )
        for r, key, wrapped in wraps
    ]


class SubmitPackets:
    """A hall's submission: check it, seal and store the packet, and owe it to its recipients.

    Its dependencies are its constructor's arguments: the metadata and object stores, the
    node's keys (they sign statements and events and wrap data keys), the directory (the
    recipients and their keys), the matter catalogue, the limits, the clock, the seal office
    that seals results, the set of transfers in flight (so the orphan sweep leaves their blobs
    alone), the inbox notifier, and ``offer_delivery``, which hands committed outbox items to
    the delivery worker.
    """

    def __init__(
        self,
        *,
        node_id: str,
        metadata: MetadataStore,
        objects: ObjectStore,
        keys: NodeKeyRing,
        directory: DirectoryHolder,
        matters: MatterCatalog,
        limits: Limits,
        clock: Clock,
        seals: SealOffice,
        transfers: ActiveTransfers,
        inbox: InboxNotifier,
        offer_delivery: Callable[[list[OutboxItem]], None],
    ) -> None:
        self.node_id = node_id
        self.metadata = metadata
        self.objects = objects
        self.keys = keys
        self.directory = directory
        self.matters = matters
        self.limits = limits
        self.clock = clock
        self.seals = seals
        self.transfers = transfers
        self.inbox = inbox
        self.offer_delivery = offer_delivery

    def submit(self, hall_id: str, parts: Iterator[SubmitPart]) -> SubmitResult:
        """Seal, store and queue a hall's packet; return once it is durable.

        A packet id already used is answered without storing anything: by the original
        answer (``duplicate``) when this hall sent this very packet before, else by
        :class:`Conflict`, the same whoever holds the id.

        Raises:
            InvalidRequest, TooLarge, NotFound, IllegalTransition, MatterError, InvalidIdentifier,
            BadFileName: the packet is refused and nothing is stored.
            Conflict: the packet id is already used for a different packet.
        """
        first = next(parts, None)
        if not isinstance(first, SubmitHeader):
            raise InvalidRequest("the first message of a submit must be the header")
        header = first
        packet_id = packet_id_of(header)
        first_file = next(parts, None)
        if first_file is not None:
            parts = itertools.chain([first_file], parts)
        if first_file is not None or header.kind != "application":
            # A retry is answered before any file is stored again. A new application without
            # files skips this read: its insert would collide with a held one, which is then
            # looked up (below, in _commit_outgoing).
            held = held_outgoing(self, packet_id)
            if held is not None:
                return answer_resend(self, hall_id, header, held, resent_files(parts, held))
        plan = plan_submit(self, hall_id, header)
        if header.kind == "result":
            with self.metadata.read() as session:
                self.seals.result_seal(session)  # refused before any file is taken, not after
        limits = self.limits
        # An attempt's files share the packet's directory, named after the attempt: a directory
        # of their own would cost every packet another directory to create and sync.
        prefix = f"out/{plan.packet_id}/{uuid.uuid4().hex[:12]}-"
        data_key = new_data_key()
        entries: list[FileEntry] = []
        file_rows: list[PacketFileRow] = []
        names = DistinctFileNames()
        with self.transfers.hold(prefix):
            try:
                for part in parts:
                    if not isinstance(part, FileBegin):
                        raise InvalidRequest("file data must follow a file begin")
                    index = len(entries)
                    if index >= limits.max_files:
                        raise TooLarge(f"a packet holds at most {limits.max_files} files")
                    check_file_begin(part, index, names, limits)
                    cipher = FileCipher(
                        data_key, plan.packet_id, index, segment_size=limits.segment_size
                    )
                    end: list[FileEnd] = []
                    segments = [0]

                    def sealed(
                        c: FileCipher = cipher,
                        n: list[int] = segments,
                        e: list[FileEnd] = end,
                        name: str = part.name,
                    ) -> Iterator[bytes]:
                        for seg in c.encrypt_chunks(
                            file_chunks(parts, name, limits.max_file_bytes, e)
                        ):
                            n[0] += 1
                            yield seg.ciphertext

                    stored = self.objects.put_stream(f"{prefix}{index}", sealed())
                    digest = cipher.plaintext_digest
                    if part.size >= 0 and digest.size != part.size:
                        raise InvalidRequest(
                            f"file {index} {echo(part.name)} declared {part.size} bytes "
                            f"but {digest.size} arrived"
                        )
                    if end[0].sha256.lower() != digest.hexdigest():
                        raise InvalidRequest(
                            f"file {index} {echo(part.name)}: the SHA-256 the hall declared does "
                            "not match the bytes received",
                            code="manifest-digest-mismatch",
                        )
                    entries.append(
                        FileEntry(
                            index,
                            part.name,
                            part.media_type,
                            digest.size,
                            digest.hexdigest(),
                            segments[0],
                        )
                    )
                    file_rows.append(
                        PacketFileRow(
                            packet_id=str(plan.packet_id),
                            file_index=index,
                            name=part.name,
                            media_type=part.media_type,
                            size=digest.size,
                            sha256=digest.hexdigest(),
                            segment_count=segments[0],
                            blob_key=stored.key,
                            ciphertext_size=stored.size,
                            ciphertext_sha256=stored.sha256,
                        )
                    )
                return self._commit_outgoing(
                    hall_id, header, plan, data_key, entries, file_rows, prefix
                )
            except BaseException:
                self.objects.delete_prefix(prefix)
                raise

    def _commit_outgoing(
        self,
        hall_id: str,
        header: SubmitHeader,
        plan: SubmitPlan,
        data_key: bytes,
        entries: list[FileEntry],
        file_rows: list[PacketFileRow],
        prefix: str,
    ) -> SubmitResult:
        now = self.clock()
        form_cipher = FileCipher(
            data_key, plan.packet_id, FORM_FILE_INDEX, segment_size=MAX_SEGMENT_SIZE
        )
        form_ct = form_cipher.seal(0, plan.form_plain, final=True)
        st = PacketStatement(
            packet_id=plan.packet_id,
            case_id=plan.case_id,
            kind=header.kind,
            mode=header.mode if header.kind == "application" else "",
            matter_code=header.matter_code,
            matter_name=header.matter_name,
            sender_node=self.node_id,
            sender_hall=hall_id,
            recipients=plan.recipients,
            created_at=now,
            segment_size=self.limits.segment_size,
            form_size=len(plan.form_plain),
            form_sha256=hashlib.sha256(plan.form_plain).hexdigest(),
            files=tuple(entries),
        )
        sent = [(e.name, e.media_type, e.size, e.sha256) for e in entries]
        try:
            return self._store_outgoing(
                hall_id, header, plan, data_key, entries, file_rows, st, form_ct, prefix
            )
        except IntegrityError:
            # The id is held: sent before (a new application without files is not looked up
            # first), or a concurrent submit of the same packet id won. Answer as for a retry.
            held = held_outgoing(self, plan.packet_id)
            if held is None:
                raise
            return answer_resend(self, hall_id, header, held, sent)

    def _store_outgoing(
        self,
        hall_id: str,
        header: SubmitHeader,
        plan: SubmitPlan,
        data_key: bytes,
        entries: list[FileEntry],
        file_rows: list[PacketFileRow],
        st: PacketStatement,
        form_ct: bytes,
        prefix: str,
    ) -> SubmitResult:
        now = st.created_at
        directory = self.directory.current
        signer = self.keys.signer(now)
        # Public-key work happens before the write transaction, which should hold the database
        # for SQL alone.
        self_key = directory.node(self.node_id).encryption_key(now)
        self_wrap = wrap_data_key(data_key, self_key.encryption_key(), plan.packet_id, self.node_id)
        wraps: list[tuple[RecipientEntry, KeyRecord, bytes]] = []
        for r in plan.recipients:
            key = directory.node(r.node).encryption_key(now)
            wraps.append(
                (r, key, wrap_data_key(data_key, key.encryption_key(), plan.packet_id, r.node))
            )
        if header.kind == "application":
            return self._store_application(
                hall_id, header, plan, entries, file_rows, st, form_ct, self_wrap, self_key, wraps
            )
        with self.metadata.transaction() as session:
            case, leg, _ = leg_for_packet(session, self, hall_id, header, str(plan.case_id))
            event = "supplemented" if header.kind == "supplement" else "result_returned"
            st = dataclasses.replace(
                st, mode=case.mode, matter_code=case.matter_code, matter_name=case.matter_name
            )
            ecerts: list[str] = []
            if header.kind == "result":
                ecerts = self._seal_results(session, plan, data_key, entries, file_rows, prefix)
                # The seals' names ("FILE.p7s") must not collide with the hall's files.
                check_file_names(e.name for e in entries)
                st = dataclasses.replace(st, files=tuple(entries))
            env = sign_envelope(st.to_payload(), PACKET_TYPE, [signer])
            session.add(self._packet_row(hall_id, st, env, form_ct, self_wrap, self_key))
            session.flush()
            session.add_all(file_rows)
            detail: dict[str, Any] = {"files": [e.name for e in entries], "matter": st.matter_code}
            if ecerts:
                detail["ecerts"] = ecerts
            append_local_event(
                session,
                self,
                case,
                leg,
                event,
                hall_id,
                {**detail, "packet_id": str(plan.packet_id)},
                packet_id=str(plan.packet_id),
                at=now,
            )
            session.add_all(_delivery_rows(plan, wraps))
            owed = [
                enqueue(session, self, r.node, str(plan.case_id), "packet", str(plan.packet_id))
                for r in plan.recipients
            ]
            items = outbox_items(session, owed, batchable=not entries)
            deliveries = tuple(DeliveryInfo(r.node, "pending", 0, "") for r in plan.recipients)
        self.inbox.notify()
        self.offer_delivery(items)
        return SubmitResult(str(plan.packet_id), str(plan.case_id), False, deliveries)

    def _store_application(
        self,
        hall_id: str,
        header: SubmitHeader,
        plan: SubmitPlan,
        entries: list[FileEntry],
        file_rows: list[PacketFileRow],
        st: PacketStatement,
        form_ct: bytes,
        self_wrap: bytes,
        self_key: KeyRecord,
        wraps: list[tuple[RecipientEntry, KeyRecord, bytes]],
    ) -> SubmitResult:
        """Store a new application: its case, one leg per recipient, each leg's signed
        "submitted" event, the packet and what is owed to each recipient.

        Everything is new, so it is built and signed before the write transaction, which then
        only inserts rows (no reads, no unit of work).
        """
        now = st.created_at
        packet_id, case_id = str(plan.packet_id), str(plan.case_id)
        env = sign_envelope(st.to_payload(), PACKET_TYPE, [self.keys.signer(now)])
        case = CaseRow(
            case_id=case_id,
            mode=header.mode,
            matter_code=header.matter_code,
            matter_name=st.matter_name,
            accepting_node=self.node_id,
            accepting_hall=hall_id,
            created_at=now,
        )
        legs = [
            LegRow(
                case_id=case_id,
                node_id=r.node,
                hall_id=r.hall,
                department=r.department,
                status="new",
                decision="",
                supplement_requests=0,
                head_hash="",
                head_seq=0,
                updated_at=now,
            )
            for r in plan.recipients
        ]
        detail = {
            "files": [e.name for e in entries],
            "matter": st.matter_code,
            "packet_id": packet_id,
        }
        events = [
            local_event(self, case, leg, "submitted", hall_id, detail, packet_id=packet_id, at=now)
            for leg in legs
        ]
        outbox = [outbox_row(self, r.node, case_id, "packet", packet_id) for r in plan.recipients]
        ids = self.metadata.insert_new(
            [
                case,
                *legs,
                self._packet_row(hall_id, st, env, form_ct, self_wrap, self_key),
                *file_rows,
                *(row for _, row in events),
                *_delivery_rows(plan, wraps),
            ],
            keyed=outbox,
        )
        stored_files = tuple(
            StoredFile(f.file_index, f.blob_key, f.segment_count, f.ciphertext_size)
            for f in file_rows
        )
        # Each recipient's leg is the one of the same index; its event travels with the packet.
        items = [
            OutboxItem(
                i,
                o.dest_node,
                o.case_id,
                o.kind,
                o.ref,
                batchable=self.limits.travels_inline(sum(e.size for e in entries)),
                packet=OutgoingPacket(
                    DeliverOpening(env, wrapped, key.key_id, form_ct, (event_env,)),
                    stored_files,
                    st.segment_size,
                ),
            )
            for i, o, (_, key, wrapped), (event_env, _) in zip(
                ids, outbox, wraps, events, strict=True
            )
        ]
        self.inbox.notify()
        self.offer_delivery(items)
        deliveries = tuple(DeliveryInfo(r.node, "pending", 0, "") for r in plan.recipients)
        return SubmitResult(packet_id, case_id, False, deliveries)

    def _packet_row(
        self,
        hall_id: str,
        st: PacketStatement,
        env: Envelope,
        form_ct: bytes,
        self_wrap: bytes,
        self_key: KeyRecord,
    ) -> PacketRow:
        return PacketRow(
            packet_id=str(st.packet_id),
            direction="out",
            kind=st.kind,
            case_id=str(st.case_id),
            mode=st.mode,
            matter_code=st.matter_code,
            matter_name=st.matter_name,
            sender_node=self.node_id,
            sender_hall=hall_id,
            local_hall=hall_id,
            created_at=st.created_at,
            stored_at=st.created_at,
            statement=env.payload,
            statement_type=PACKET_TYPE,
            signatures=encode_signatures(env),
            signed_by_key=env.signatures[0].key_id,
            form_ciphertext=form_ct,
            wrapped_key=self_wrap,
            wrap_key_id=self_key.key_id,
            stored_digest="",
            receipt=None,
            file_count=len(st.files),
            total_size=sum(e.size for e in st.files),
        )

    def _seal_results(
        self,
        session: Session,
        plan: SubmitPlan,
        data_key: bytes,
        entries: list[FileEntry],
        file_rows: list[PacketFileRow],
        prefix: str,
    ) -> list[str]:
        """Seal every result document (detached CMS from its digest) and add each FILE.p7s to
        the packet; returns the e-certificate identifiers issued."""
        seal_id = self.seals.result_seal(session)
        identifiers = []
        for entry in list(entries):
            identifier, p7s = self.seals.seal_result_digest(
                session,
                seal_id=seal_id,
                document_name=entry.name,
                sha256_hex=entry.sha256,
                packet_id=str(plan.packet_id),
            )
            identifiers.append(identifier)
            index = len(entries)
            cipher = FileCipher(
                data_key, plan.packet_id, index, segment_size=self.limits.segment_size
            )
            segments = list(cipher.encrypt_chunks([p7s]))
            stored = self.objects.put_stream(f"{prefix}{index}", (s.ciphertext for s in segments))
            sha = hashlib.sha256(p7s).hexdigest()
            name = f"{entry.name}.p7s"
            entries.append(
                FileEntry(index, name, "application/pkcs7-signature", len(p7s), sha, len(segments))
            )
            file_rows.append(
                PacketFileRow(
                    packet_id=str(plan.packet_id),
                    file_index=index,
                    name=name,
                    media_type="application/pkcs7-signature",
                    size=len(p7s),
                    sha256=sha,
                    segment_count=len(segments),
                    blob_key=stored.key,
                    ciphertext_size=stored.size,
                    ciphertext_sha256=stored.sha256,
                )
            )
        return identifiers
