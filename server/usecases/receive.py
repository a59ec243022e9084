"""A peer delivers packets: each checked against the signed statement, opened and stored.

Why one module of about 600 lines: ``Deliver`` and ``DeliverBatch`` must judge and store a
packet exactly alike (the batch path is the stream path with segments inline), so both,
and the checks and rows they share, stay side by side where a difference would show.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tongban.keys.content import (
    FORM_FILE_INDEX,
    MAX_SEGMENT_SIZE,
    FileCipher,
    SealedSegment,
    unwrap_data_key,
)
from tongban.keys.envelope import (
    MAX_JSON_DEPTH,
    Envelope,
    canonical_json,
    parse_json_object,
    sign_envelope,
    verify_envelope,
)
from tongban.keys.errors import BadPeerData, echo
from tongban.keys.keyring import NodeKeyRing
from tongban.server.config import FORM_HEADROOM, MAX_DELIVERY_BATCH, Limits
from tongban.server.domain.errors import (
    Conflict,
    IntegrityFailure,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    TooLarge,
)
from tongban.server.domain.statements import (
    PACKET_TYPE,
    RECEIPT_TYPE,
    EventStatement,
    PacketStatement,
    Receipt,
    RecipientEntry,
    check_statement_bounds,
    check_text,
)
from tongban.server.usecases.clocks import new_clock_row, note_supplement_arrived
from tongban.server.usecases.events import apply_remote_event, encode_signatures, remote_event
from tongban.server.usecases.messages import (
    DeliverOpening,
    DeliverPart,
    DeliverSegment,
)
from tongban.server.usecases.runtime import ActiveTransfers, Clock, DirectoryHolder, InboxNotifier
from tongban.storage.objects import ObjectStore
from tongban.storage.sql import (
    Base,
    CaseRow,
    LegRow,
    MetadataStore,
    PacketFileRow,
    PacketRow,
)

__all__ = [
    "DeliverOutcome",
    "ReceivePackets",
]


def _segments_of(parts: Iterator[DeliverPart], index: int) -> Iterator[SealedSegment]:
    for part in parts:
        if not isinstance(part, DeliverSegment):
            raise InvalidRequest("only segments may follow the packet opening")
        if part.file_index != index:
            raise IntegrityFailure(
                f"segment for file {part.file_index} arrived while file {index} was open",
                code="truncated-stream",
            )
        yield SealedSegment(part.segment_index, part.final, part.ciphertext)
        if part.final:
            return


@dataclass(frozen=True)
class _Incoming:
    """A delivered packet's opening, checked: signed by the peer, addressed here, form good."""

    st: PacketStatement
    opening: DeliverOpening
    key_id: str
    me: RecipientEntry
    form_plain: bytes
    data_key: bytes


@dataclass(frozen=True)
class DeliverOutcome:
    """What became of one packet of a batch: its signed receipt, or why it was refused."""

    receipt: Envelope | None
    duplicate: bool = False
    error: Exception | None = None


def _check_received_bounds(st: PacketStatement, limits: Limits) -> None:
    """A peer's packet within this node's limits, checked before any of its data is read.

    Raises:
        TooLarge: more files, a larger file or a larger form than this node takes.
        InvalidRequest, BadFileName: a field, file name or count the statement gets wrong.
    """
    check_statement_bounds(st)
    if len(st.files) > limits.max_files:
        raise TooLarge(f"the packet holds {len(st.files)} files; the limit is {limits.max_files}")
    for f in st.files:
        if f.size > limits.max_file_bytes:
            raise TooLarge(
                f"file {f.index} {echo(f.name)} is {f.size} bytes; the limit is "
                f"{limits.max_file_bytes}"
            )
    form_limit = limits.max_form_bytes + FORM_HEADROOM
    if st.form_size > form_limit:
        raise TooLarge(f"the form is {st.form_size} bytes; the limit is {form_limit}")


def _check_received_form(form_plain: bytes) -> None:
    """The decrypted form of a peer's packet: plain JSON with a form object and an
    applicant whose fields are within their limits.

    Raises:
        InvalidRequest (``malformed-form``, ``field-too-long``).
    """
    try:
        # The hall's form sits one level down, under "form".
        content = parse_json_object(form_plain, "packet form", max_depth=MAX_JSON_DEPTH + 1)
    except BadPeerData as exc:
        raise InvalidRequest(exc.message, code="malformed-form") from None
    applicant = content.get("applicant")
    if not isinstance(content.get("form"), dict) or not (
        applicant is None or isinstance(applicant, dict)
    ):
        raise InvalidRequest("packet form content is malformed", code="malformed-form")
    if applicant is not None:
        fields = {"applicant name": "name", "applicant id number": "id_number"}
        for field, key in fields.items():
            value = applicant.get(key)
            if not isinstance(value, str):
                raise InvalidRequest(f"packet form has no {field}", code="malformed-form")
            check_text(field, value)


def _opened_ciphertext(cipher: FileCipher, segments: Iterator[SealedSegment]) -> Iterator[bytes]:
    """One file's ciphertext as received; each segment is opened (tag, order, final flag)
    before it is kept, so nothing unauthenticated reaches the store."""
    held: list[bytes] = []

    def tee() -> Iterator[SealedSegment]:
        for seg in segments:
            held.append(seg.ciphertext)
            yield seg

    for _plain in cipher.decrypt_segments(tee()):
        yield held.pop()


_HeldRow = tuple[str, bytes, bytes | None]  # direction, statement, receipt of a held packet


def _named_packets(openings: Sequence[DeliverOpening]) -> list[str]:
    """The packet ids the openings' statements name (unreadable ones are skipped here and
    refused when checked)."""
    ids = []
    for opening in openings:
        # Whatever makes a statement unreadable refuses that packet alone, when it is checked.
        with suppress(Exception):
            ids.append(str(PacketStatement.from_payload(opening.statement.payload).packet_id))
    return ids


_EXPECTED_EVENT = {
    "application": "submitted",
    "supplement": "supplemented",
    "result": "result_returned",
}


def _incoming_packet_row(
    checked: _Incoming,
    local_hall: str,
    file_rows: list[PacketFileRow],
    receipt_env: Envelope,
    stored_digest: str,
) -> PacketRow:
    st, opening = checked.st, checked.opening
    return PacketRow(
        packet_id=str(st.packet_id),
        direction="in",
        kind=st.kind,
        case_id=str(st.case_id),
        mode=st.mode,
        matter_code=st.matter_code,
        matter_name=st.matter_name,
        sender_node=st.sender_node,
        sender_hall=st.sender_hall,
        local_hall=local_hall,
        created_at=st.created_at,
        stored_at=Receipt.from_payload(receipt_env.payload).received_at,
        statement=opening.statement.payload,
        statement_type=PACKET_TYPE,
        signatures=encode_signatures(opening.statement),
        signed_by_key=checked.key_id,
        form_ciphertext=opening.form_ciphertext,
        wrapped_key=opening.wrapped_key,
        wrap_key_id=opening.recipient_key_id,
        stored_digest=stored_digest,
        receipt=json.dumps(receipt_env.to_json_dict()).encode(),
        file_count=len(file_rows),
        total_size=sum(r.size for r in file_rows),
    )


def _check_packet_event(checked: _Incoming, ev: EventStatement) -> None:
    st = checked.st
    if ev.packet_id != str(st.packet_id) or ev.event != _EXPECTED_EVENT[st.kind]:
        raise InvalidRequest(f"event {ev.event!r} does not belong to packet {st.packet_id}")


def _check_event_count(checked: _Incoming) -> None:
    if len(checked.opening.events) != 1:
        expected = _EXPECTED_EVENT[checked.st.kind]
        raise InvalidRequest(
            f"a {checked.st.kind} packet must carry exactly one {expected!r} event"
        )


def _insert_incoming(
    session: Session,
    rt: ReceivePackets,
    checked: _Incoming,
    file_rows: list[PacketFileRow],
    receipt_env: Envelope,
    stored_digest: str,
) -> None:
    """Store a checked packet with its event(s), its case and leg created or advanced."""
    st, opening = checked.st, checked.opening
    _check_event_count(checked)
    received_at = Receipt.from_payload(receipt_env.payload).received_at
    case, leg, local_hall = _incoming_case(session, rt, st, checked.me, received_at)
    session.add(_incoming_packet_row(checked, local_hall, file_rows, receipt_env, stored_digest))
    session.flush()
    session.add_all(file_rows)
    new_leg = leg.head_seq == 0
    ev, _dup = apply_remote_event(
        session, rt, st.sender_node, opening.events[0], case=case, leg=leg
    )
    _check_packet_event(checked, ev)
    if st.kind == "application" and new_leg:
        session.add(new_clock_row(case, leg, received_at))
    if ev.event == "supplemented":
        note_supplement_arrived(session, case.case_id, leg.node_id, received_at)
    session.flush()


def _incoming_case(
    session: Session, rt: ReceivePackets, st: PacketStatement, me: RecipientEntry, now: datetime
) -> tuple[CaseRow, LegRow, str]:
    case = session.get(CaseRow, str(st.case_id))
    if st.kind == "application":
        new_case, new_leg = rt._new_incoming_case(st, me, now)  # checks the hall, too
        if case is None:
            case = new_case
            session.add(case)
            session.flush()  # parents first: rows are not linked by ORM relationships
        elif case.accepting_node != st.sender_node:
            raise PermissionDenied(f"case {st.case_id} belongs to node {case.accepting_node}")
        leg = session.get(LegRow, (case.case_id, rt.node_id))
        if leg is None:
            leg = new_leg
            session.add(leg)
        return case, leg, me.hall
    if case is None:
        raise NotFound(f"case {st.case_id} is not known at node {rt.node_id}")
    leg_node = rt.node_id if st.kind == "supplement" else st.sender_node
    leg = session.get(LegRow, (case.case_id, leg_node))
    if leg is None:
        raise NotFound(f"case {st.case_id} has no leg {leg_node} at node {rt.node_id}")
    hall = leg.hall_id if st.kind == "supplement" else case.accepting_hall
    return case, leg, hall


class ReceivePackets:
    """Packets a peer node delivers: check them, store them, answer with a signed receipt.

    Its dependencies are its constructor's arguments: the metadata and object stores, the
    node's keys (they unwrap data keys and sign receipts), the directory (the senders' keys
    and this node's halls), the limits, the clock, the set of transfers in flight, and the
    inbox notifier that wakes the halls' watchers.
    """

    def __init__(
        self,
        *,
        node_id: str,
        metadata: MetadataStore,
        objects: ObjectStore,
        keys: NodeKeyRing,
        directory: DirectoryHolder,
        limits: Limits,
        clock: Clock,
        transfers: ActiveTransfers,
        inbox: InboxNotifier,
    ) -> None:
        self.node_id = node_id
        self.metadata = metadata
        self.objects = objects
        self.keys = keys
        self.directory = directory
        self.limits = limits
        self.clock = clock
        self.transfers = transfers
        self.inbox = inbox

    def _check_opening(
        self,
        peer_node: str,
        opening: DeliverOpening,
        held: Mapping[str, _HeldRow] | None = None,
    ) -> _Incoming | Envelope:
        """Check a packet opening; the original receipt instead when the packet is already held
        (looked up in ``held`` when given, else in the store)."""
        now = self.clock()
        sender = self.directory.current.node(peer_node)
        verified = verify_envelope(
            opening.statement, sender.signing_keys(now), payload_type=PACKET_TYPE
        )
        st = PacketStatement.from_payload(opening.statement.payload)
        _check_received_bounds(st, self.limits)
        if st.sender_node != peer_node:
            raise PermissionDenied(
                f"packet names sender {st.sender_node} but came from node {peer_node}"
            )
        me = st.recipient(self.node_id)
        if me is None:
            to = ", ".join(r.node for r in st.recipients)
            raise InvalidRequest(
                f"packet {st.packet_id} is addressed to {to}, not to this node {self.node_id}",
                code="wrong-recipient",
            )
        receipt = self._held_receipt(st, opening.statement, held)
        if receipt is not None:
            return receipt
        data_key = unwrap_data_key(
            opening.wrapped_key,
            self.keys.decryption_candidates(opening.recipient_key_id),
            st.packet_id,
            self.node_id,
        )
        form_plain = FileCipher(
            data_key, st.packet_id, FORM_FILE_INDEX, segment_size=MAX_SEGMENT_SIZE
        ).open(0, opening.form_ciphertext, final=True)
        if (
            len(form_plain) != st.form_size
            or hashlib.sha256(form_plain).hexdigest() != st.form_sha256
        ):
            raise IntegrityFailure(
                "the form does not match its signed digest", code="manifest-digest-mismatch"
            )
        _check_received_form(form_plain)
        return _Incoming(st, opening, verified.key_id, me, form_plain, data_key)

    def receive(self, peer_node: str, parts: Iterator[DeliverPart]) -> tuple[Envelope, bool]:
        """Verify, decrypt-check and store a packet a peer delivers; return the signed receipt.

        A packet already held is not stored again: the original receipt is returned.

        Raises:
            Unauthenticated (keys errors): the statement is not signed by a key of the peer.
            PermissionDenied: the statement names another sender than the connected peer.
            InvalidRequest: malformed, or addressed to another node.
            IntegrityFailure / DecryptionError: content differs from what was signed.
        """
        opening = next(parts, None)
        if not isinstance(opening, DeliverOpening):
            raise InvalidRequest("the first message of a delivery must be the packet opening")
        checked = self._check_opening(peer_node, opening)
        if isinstance(checked, Envelope):
            return checked, True
        return self._store_checked(checked, itertools.chain(opening.segments, parts))

    def _store_checked(
        self, checked: _Incoming, parts: Iterator[DeliverPart]
    ) -> tuple[Envelope, bool]:
        """Store a checked packet's files from ``parts`` (its segments, file by file), then the
        packet; its receipt, and whether the packet was stored meanwhile by another delivery."""
        st = checked.st
        prefix = f"in/{st.packet_id}/{uuid.uuid4().hex[:12]}-"
        file_rows: list[PacketFileRow] = []
        with self.transfers.hold(prefix):
            try:
                for f in st.files:
                    cipher = FileCipher(
                        checked.data_key, st.packet_id, f.index, segment_size=st.segment_size
                    )
                    ciphertext = _opened_ciphertext(cipher, _segments_of(parts, f.index))
                    stored = self.objects.put_stream(f"{prefix}{f.index}", ciphertext)
                    digest = cipher.plaintext_digest
                    if digest.size != f.size or digest.hexdigest() != f.sha256:
                        raise IntegrityFailure(
                            f"file {f.index} {echo(f.name)} does not match its signed "
                            "SHA-256 digest",
                            code="manifest-digest-mismatch",
                        )
                    file_rows.append(
                        PacketFileRow(
                            packet_id=str(st.packet_id),
                            file_index=f.index,
                            name=f.name,
                            media_type=f.media_type,
                            size=f.size,
                            sha256=f.sha256,
                            segment_count=f.segments,
                            blob_key=stored.key,
                            ciphertext_size=stored.size,
                            ciphertext_sha256=stored.sha256,
                        )
                    )
                if next(parts, None) is not None:
                    raise InvalidRequest("data arrived after the last file of the packet")
                return self._commit_incoming(checked, file_rows)
            except BaseException:
                self.objects.delete_prefix(prefix)
                raise

    def receive_batch(
        self, peer_node: str, openings: Sequence[DeliverOpening]
    ) -> list[DeliverOutcome]:
        """Receive several small packets, their file segments inline; each is checked and
        stored on its own.

        Packets without files are stored together with the group commit, each all or nothing;
        a packet with files is stored as by :func:`receive_packet`. A refused packet changes
        nothing and leaves the others of the batch unaffected.

        Raises:
            TooLarge: more packets than one batch may carry (nothing is stored).
        """
        if len(openings) > MAX_DELIVERY_BATCH:
            raise TooLarge(
                f"a delivery batch holds at most {MAX_DELIVERY_BATCH} packets, not {len(openings)}"
            )
        outcomes: list[DeliverOutcome | None] = [None] * len(openings)
        ready: list[tuple[int, _Incoming, Envelope, str]] = []
        named: set[uuid.UUID] = set()
        held_rows = self._held_rows(_named_packets(openings))
        for i, opening in enumerate(openings):
            try:
                checked = self._check_opening(peer_node, opening, held_rows)
                if isinstance(checked, Envelope):
                    outcomes[i] = DeliverOutcome(checked, duplicate=True)
                    continue
                if checked.st.packet_id in named:
                    raise InvalidRequest(
                        f"packet {checked.st.packet_id} appears twice in the batch"
                    )
                named.add(checked.st.packet_id)
                if not checked.st.files and opening.segments:
                    raise InvalidRequest("data arrived after the last file of the packet")
                if checked.st.files:
                    # Its files are stored now, then the packet with the group commit.
                    receipt, duplicate = self._store_checked(checked, iter(opening.segments))
                    outcomes[i] = DeliverOutcome(receipt, duplicate=duplicate)
                    continue
                ready.append((i, checked, *self._receipt(checked, [])))
            except Exception as exc:
                outcomes[i] = DeliverOutcome(None, error=exc)
        raced: list[tuple[int, _Incoming]] = []
        # New applications (the common case) are built and checked in memory and inserted with
        # the group commit, each packet on its own; the rest need the case as held.
        known = self._held_cases([str(c.st.case_id) for _, c, _, _ in ready])
        fresh: list[tuple[int, _Incoming, Envelope, list[Base]]] = []
        rest: list[tuple[int, _Incoming, Envelope, str]] = []
        for i, checked, receipt_env, stored_digest in ready:
            case_id = str(checked.st.case_id)
            if checked.st.kind != "application" or case_id in known:
                rest.append((i, checked, receipt_env, stored_digest))
                continue
            known.add(case_id)  # a second packet of this case in the batch goes the long way
            try:
                rows = self._new_application_rows(checked, [], receipt_env, stored_digest)
            except Exception as exc:
                outcomes[i] = DeliverOutcome(None, error=exc)
            else:
                fresh.append((i, checked, receipt_env, rows))
        if fresh:
            errors = self.metadata.insert_each([rows for *_, rows in fresh])
            for (i, checked, receipt_env, _), error in zip(fresh, errors, strict=True):
                if error is None:
                    outcomes[i] = DeliverOutcome(receipt_env)
                elif isinstance(error, IntegrityError):
                    raced.append((i, checked))
                else:
                    outcomes[i] = DeliverOutcome(None, error=error)
        if rest:
            with self.metadata.transaction() as session:
                for i, checked, receipt_env, stored_digest in rest:
                    try:
                        with session.begin_nested():
                            _insert_incoming(session, self, checked, [], receipt_env, stored_digest)
                    except IntegrityError:
                        raced.append((i, checked))
                    except Exception as exc:
                        outcomes[i] = DeliverOutcome(None, error=exc)
                    else:
                        outcomes[i] = DeliverOutcome(receipt_env)
        if fresh or rest:
            self.inbox.notify()
        for i, checked in raced:
            # Stored meanwhile by a concurrent delivery of the same packet: answer as for a replay.
            try:
                held = self._held_receipt(checked.st, checked.opening.statement)
                if held is None:
                    raise Conflict(
                        f"packet {checked.st.packet_id} could not be stored; send it again"
                    )
                outcomes[i] = DeliverOutcome(held, duplicate=True)
            except Exception as exc:
                outcomes[i] = DeliverOutcome(None, error=exc)
        done = [o for o in outcomes if o is not None]
        assert len(done) == len(outcomes), "every packet of a batch has an outcome"
        return done

    def _held_rows(self, packet_ids: Iterable[str]) -> dict[str, _HeldRow]:
        """What is held under these packet ids, read at once."""
        ids = list(packet_ids)
        if not ids:
            return {}
        with self.metadata.read() as session:
            rows = session.execute(
                select(
                    PacketRow.packet_id, PacketRow.direction, PacketRow.statement, PacketRow.receipt
                ).where(PacketRow.packet_id.in_(ids))
            ).all()
        return {pid: (direction, statement, receipt) for pid, direction, statement, receipt in rows}

    def _held_receipt(
        self,
        st: PacketStatement,
        statement: Envelope,
        held: Mapping[str, _HeldRow] | None = None,
    ) -> Envelope | None:
        """The receipt given for this very packet before; None if it is not held.

        Raises:
            Conflict: the packet id is held with other content.
        """
        pid = str(st.packet_id)
        row = (self._held_rows([pid]) if held is None else held).get(pid)
        if row is None:
            return None
        direction, payload, receipt = row
        if direction != "in" or payload != statement.payload or receipt is None:
            raise Conflict(f"packet id {st.packet_id} is already held with other content")
        return Envelope.from_json_dict(json.loads(receipt))

    def _held_cases(self, case_ids: Sequence[str]) -> set[str]:
        """Which of these cases this node holds, read at once."""
        if not case_ids:
            return set()
        with self.metadata.read() as session:
            return set(
                session.scalars(select(CaseRow.case_id).where(CaseRow.case_id.in_(set(case_ids))))
            )

    def _receipt(self, checked: _Incoming, file_rows: list[PacketFileRow]) -> tuple[Envelope, str]:
        """The signed receipt for a packet about to be stored, and the digest it names."""
        now = self.clock()
        opening = checked.opening
        stored_digest = hashlib.sha256(
            canonical_json(
                {
                    "statement": opening.statement.digest,
                    "form": hashlib.sha256(opening.form_ciphertext).hexdigest(),
                    "files": [r.ciphertext_sha256 for r in file_rows],
                }
            )
        ).hexdigest()
        receipt = Receipt(
            checked.st.packet_id, self.node_id, opening.statement.digest, stored_digest, now
        )
        receipt_env = sign_envelope(receipt.to_payload(), RECEIPT_TYPE, [self.keys.signer(now)])
        return receipt_env, stored_digest

    def _commit_incoming(
        self, checked: _Incoming, file_rows: list[PacketFileRow]
    ) -> tuple[Envelope, bool]:
        receipt_env, stored_digest = self._receipt(checked, file_rows)
        try:
            if checked.st.kind == "application" and not self._held_cases([str(checked.st.case_id)]):
                self.metadata.insert_new(
                    self._new_application_rows(checked, file_rows, receipt_env, stored_digest)
                )
            else:
                with self.metadata.transaction() as session:
                    _insert_incoming(session, self, checked, file_rows, receipt_env, stored_digest)
        except IntegrityError:
            held = self._held_receipt(checked.st, checked.opening.statement)
            if held is None:
                raise
            return held, True
        self.inbox.notify()
        return receipt_env, False

    def _new_application_rows(
        self,
        checked: _Incoming,
        file_rows: list[PacketFileRow],
        receipt_env: Envelope,
        stored_digest: str,
    ) -> list[Base]:
        """The rows that store a new application whose case this node does not hold yet,
        built and checked (the event's signature and chain included) without the database."""
        st, opening = checked.st, checked.opening
        _check_event_count(checked)
        received_at = Receipt.from_payload(receipt_env.payload).received_at
        case, leg = self._new_incoming_case(st, checked.me, received_at)
        ev, event_row = remote_event(self, st.sender_node, opening.events[0], case, leg)
        _check_packet_event(checked, ev)
        packet = _incoming_packet_row(
            checked, checked.me.hall, file_rows, receipt_env, stored_digest
        )
        return [case, leg, packet, *file_rows, event_row, new_clock_row(case, leg, received_at)]

    def _new_incoming_case(
        self, st: PacketStatement, me: RecipientEntry, now: datetime
    ) -> tuple[CaseRow, LegRow]:
        if not self.directory.current.node(self.node_id).has_hall(me.hall):
            raise InvalidRequest(f"node {self.node_id} has no hall {echo(me.hall)}")
        case = CaseRow(
            case_id=str(st.case_id),
            mode=st.mode,
            matter_code=st.matter_code,
            matter_name=st.matter_name,
            accepting_node=st.sender_node,
            accepting_hall=st.sender_hall,
            created_at=st.created_at,
        )
        leg = LegRow(
            case_id=case.case_id,
            node_id=self.node_id,
            hall_id=me.hall,
            department=me.department,
            status="new",
            decision="",
            supplement_requests=0,
            head_hash="",
            head_seq=0,
            updated_at=now,
        )
        return case, leg
