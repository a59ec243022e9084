"""A hall lists its inbox and fetches packets back, decrypted and checked."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from tongban.keys.content import (
    FORM_FILE_INDEX,
    MAX_SEGMENT_SIZE,
    TAG_SIZE,
    FileCipher,
    SealedSegment,
    unwrap_data_key,
)
from tongban.keys.envelope import (
    Envelope,
    canonical_json,
    verify_envelope,
)
from tongban.keys.errors import echo
from tongban.keys.keyring import NodeKeyRing
from tongban.server.domain.errors import (
    IntegrityFailure,
    InvalidRequest,
    NotFound,
)
from tongban.server.domain.statements import (
    PACKET_TYPE,
    PacketStatement,
)
from tongban.server.usecases.events import decode_signatures
from tongban.server.usecases.id_prefixes import resolve_packet_id
from tongban.server.usecases.messages import (
    Applicant,
    FetchFileEnd,
    FetchOpening,
    FetchPart,
    InboxItem,
)
from tongban.server.usecases.outgoing import delivery_states, records_of
from tongban.server.usecases.runtime import DirectoryHolder, InboxNotifier
from tongban.storage.objects import ObjectStore
from tongban.storage.sql import (
    MetadataStore,
    PacketFileRow,
    PacketRow,
)

__all__ = [
    "DEFAULT_INBOX_PAGE",
    "MAX_INBOX_PAGE",
    "HallInbox",
]
# Entries one ListInbox call returns when it names no limit, and at most.
DEFAULT_INBOX_PAGE = 100
MAX_INBOX_PAGE = 1000


def _item(session: Session, row: PacketRow) -> InboxItem:
    deliveries = delivery_states(session, row.packet_id) if row.direction == "out" else ()
    return InboxItem(
        row.row_id,
        row.packet_id,
        row.case_id,
        row.kind,
        row.mode,
        row.matter_code,
        row.matter_name,
        row.sender_node,
        row.sender_hall,
        row.direction,
        row.created_at,
        deliveries,
        row.file_count,
        row.total_size,
    )


class HallInbox:
    """A hall's view of the packets it sent and received: list, watch and fetch them.

    Its dependencies are its constructor's arguments: the metadata and object stores that
    hold the packets, the node's key ring that unwraps their data keys, the directory whose
    keys check the senders' signatures, and the notifier that wakes watchers.
    """

    def __init__(
        self,
        *,
        node_id: str,
        metadata: MetadataStore,
        objects: ObjectStore,
        keys: NodeKeyRing,
        directory: DirectoryHolder,
        notifier: InboxNotifier,
    ) -> None:
        self.node_id = node_id
        self.metadata = metadata
        self.objects = objects
        self.keys = keys
        self.directory = directory
        self._notifier = notifier

    def packet_id(self, hall_id: str, given: str) -> str:
        """The whole id of the one packet of this hall whose id is ``given`` or starts with it.

        Raises: as :func:`~tongban.server.usecases.id_prefixes.resolve_packet_id`.
        """
        return resolve_packet_id(self, hall_id, given)

    def watch(
        self, hall_id: str, *, direction: str, include_existing: bool, active: Callable[[], bool]
    ) -> Iterator[InboxItem]:
        """This hall's packets as they arrive, while ``active()`` holds: first those already
        held if ``include_existing``, then each new one, oldest first.

        Raises:
            InvalidRequest: an unknown direction.
        """
        after = 0
        if not include_existing:
            existing = self.list(hall_id, direction=direction, limit=MAX_INBOX_PAGE)
            while existing:
                after = existing[-1].row_id
                existing = self.list(
                    hall_id, direction=direction, after_row=after, limit=MAX_INBOX_PAGE
                )
        generation = self._notifier.generation
        while active():
            for item in self.list(
                hall_id, direction=direction, after_row=after, limit=MAX_INBOX_PAGE
            ):
                after = item.row_id
                yield item
            generation = self._notifier.wait(generation, timeout=1.0)

    def list(
        self, hall_id: str, *, direction: str = "", after_row: int = 0, limit: int = 0
    ) -> list[InboxItem]:
        """Packets this hall sent or received, oldest first, after ``after_row``: ``limit``
        of them (0 for :data:`DEFAULT_INBOX_PAGE`), never more than :data:`MAX_INBOX_PAGE`.

        Raises:
            InvalidRequest: an unknown direction or a negative limit.
        """
        if direction not in ("", "in", "out"):
            raise InvalidRequest("direction must be 'in', 'out' or empty")
        query = select(PacketRow).where(
            PacketRow.local_hall == hall_id, PacketRow.row_id > after_row
        )
        if direction:
            query = query.where(PacketRow.direction == direction)
        if limit < 0:
            raise InvalidRequest(
                f"limit {limit} is negative; use 0 for {DEFAULT_INBOX_PAGE} entries"
            )
        limit = min(limit or DEFAULT_INBOX_PAGE, MAX_INBOX_PAGE)
        with self.metadata.read() as session:
            rows = list(session.scalars(query.order_by(PacketRow.row_id).limit(limit)))
            return [_item(session, r) for r in rows]

    def fetch(self, hall_id: str, packet_id: str) -> Iterator[FetchPart]:
        """Verify and decrypt a packet of this hall: the opening, then each file's bytes.

        Each file ends with a :class:`FetchFileEnd`; its bytes are good only if ``verified``.

        Raises:
            NotFound: no such packet for this hall (another hall's packet is not revealed).
            IntegrityFailure / DecryptionError: stored content was altered.
        """
        with self.metadata.read() as session:
            row = session.scalar(select(PacketRow).where(PacketRow.packet_id == packet_id))
            if row is None or row.local_hall != hall_id:
                raise NotFound(f"packet {packet_id} not found for hall {hall_id}")
            item = _item(session, row)
            files = list(
                session.scalars(
                    select(PacketFileRow)
                    .where(PacketFileRow.packet_id == packet_id)
                    .order_by(PacketFileRow.file_index)
                )
            )
        env = Envelope(row.statement, row.statement_type, decode_signatures(row.signatures))
        st = PacketStatement.from_payload(row.statement)
        at = row.stored_at if row.direction == "in" else row.created_at
        keys = self.directory.current.node(st.sender_node).signing_keys(at)
        verified = verify_envelope(env, keys, payload_type=PACKET_TYPE)
        data_key = unwrap_data_key(
            row.wrapped_key,
            self.keys.decryption_candidates(row.wrap_key_id),
            st.packet_id,
            self.node_id,
        )
        form_plain = FileCipher(
            data_key, st.packet_id, FORM_FILE_INDEX, segment_size=MAX_SEGMENT_SIZE
        ).open(0, row.form_ciphertext, final=True)
        if hashlib.sha256(form_plain).hexdigest() != st.form_sha256:
            raise IntegrityFailure("the stored form does not match its signed digest")
        content = json.loads(form_plain)
        a = content.get("applicant")
        applicant = Applicant(a["name"], a["id_type"], a["id_number"]) if a else None
        yield FetchOpening(
            item,
            applicant,
            canonical_json(content["form"]),
            st.files,
            "verified",
            verified.key_id,
            env,
        )
        record = st.segment_size + TAG_SIZE
        for entry, f in zip(st.files, files, strict=True):
            yield entry
            cipher = FileCipher(data_key, st.packet_id, f.file_index, segment_size=st.segment_size)
            blob = self.objects.open_stream(f.blob_key, chunk_size=record)
            segs = (
                SealedSegment(i, i == f.segment_count - 1, ct)
                for i, ct in enumerate(records_of(blob, record))
            )
            yield from cipher.decrypt_segments(segs)
            digest = cipher.plaintext_digest.hexdigest()
            if digest != entry.sha256 or cipher.plaintext_digest.size != entry.size:
                raise IntegrityFailure(
                    f"stored file {entry.index} {echo(entry.name)} does not match its digest"
                )
            yield FetchFileEnd(entry.index, digest, True)
