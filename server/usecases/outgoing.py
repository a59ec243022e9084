"""What this node sends a peer for a stored packet: its opening, and its segments from the store."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from tongban.keys.content import (
    TAG_SIZE,
)
from tongban.keys.envelope import (
    Envelope,
)
from tongban.server.domain.errors import (
    NotFound,
)
from tongban.server.domain.statements import (
    PACKET_TYPE,
    PacketStatement,
)
from tongban.server.usecases.events import decode_signatures, event_envelope
from tongban.server.usecases.messages import (
    DeliverOpening,
    DeliverPart,
    DeliverSegment,
    DeliveryInfo,
    OutgoingPacket,
    StoredFile,
)
from tongban.storage.objects import ObjectStore
from tongban.storage.sql import (
    DeliveryRow,
    EventRow,
    MetadataStore,
    PacketFileRow,
    PacketRow,
)

__all__ = ["OutgoingPackets", "delivery_states", "records_of"]


def records_of(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Re-cut a byte stream into records of ``size`` bytes (the last may be shorter)."""
    buf = bytearray()
    for chunk in chunks:
        if not buf and len(chunk) == size:
            yield chunk  # the store read exactly one record: pass it on without copying
            continue
        buf += chunk
        while len(buf) >= size:
            yield bytes(buf[:size])
            del buf[:size]
    if buf:
        yield bytes(buf)


def _opening(packet: PacketRow, delivery: DeliveryRow, events: list[EventRow]) -> DeliverOpening:
    return DeliverOpening(
        Envelope(packet.statement, PACKET_TYPE, decode_signatures(packet.signatures)),
        delivery.wrapped_key,
        delivery.key_id,
        packet.form_ciphertext,
        tuple(event_envelope(e) for e in events),
    )


class OutgoingPackets:
    """Reads what this node owes its peers: stored outgoing packets, their events and files."""

    def __init__(self, *, node_id: str, metadata: MetadataStore, objects: ObjectStore) -> None:
        self._node_id = node_id
        self._metadata = metadata
        self._objects = objects

    def _event_leg(self, packet: PacketRow, node_id: str) -> str:
        """The leg whose event travels with a packet: the recipient's, or ours for a result."""
        return node_id if packet.kind != "result" else self._node_id

    def read(self, packet_id: str, node_id: str) -> OutgoingPacket:
        """What a stored outgoing packet sends to one recipient, read from the store.

        Raises:
            NotFound: the packet is not stored or not owed to ``node_id``.
        """
        with self._metadata.read() as session:
            packet = session.scalar(select(PacketRow).where(PacketRow.packet_id == packet_id))
            delivery = session.get(DeliveryRow, (packet_id, node_id))
            if packet is None or delivery is None:
                raise NotFound(f"no delivery of packet {packet_id} to node {node_id}")
            files = tuple(
                StoredFile(f.file_index, f.blob_key, f.segment_count, f.ciphertext_size)
                for f in session.scalars(
                    select(PacketFileRow)
                    .where(PacketFileRow.packet_id == packet_id)
                    .order_by(PacketFileRow.file_index)
                )
            )
            events = list(
                session.scalars(
                    select(EventRow).where(
                        EventRow.packet_id == packet_id,
                        EventRow.leg_node == self._event_leg(packet, node_id),
                    )
                )
            )
        st = PacketStatement.from_payload(packet.statement)
        return OutgoingPacket(_opening(packet, delivery, events), files, st.segment_size)

    def parts(self, packet: OutgoingPacket) -> Iterator[DeliverPart]:
        """The opening of an outgoing packet, then every segment of its files in order."""
        yield packet.opening
        yield from self._stored_segments(packet)

    def _stored_segments(self, packet: OutgoingPacket) -> Iterator[DeliverSegment]:
        record = packet.segment_size + TAG_SIZE
        for f in packet.files:
            stream = self._objects.open_stream(f.blob_key, chunk_size=record)
            for i, ct in enumerate(records_of(stream, record)):
                yield DeliverSegment(f.index, i, i == f.segments - 1, ct)

    def inline_opening(self, packet: OutgoingPacket) -> DeliverOpening:
        """The packet's opening with its files' segments inline, read from the store."""
        if not packet.files:
            return packet.opening
        return dataclasses.replace(packet.opening, segments=tuple(self._stored_segments(packet)))

    def openings(self, node_id: str, packet_ids: Sequence[str]) -> dict[str, DeliverOpening]:
        """The openings of stored outgoing packets without files, for one recipient, read at
        once; a packet that has files or no delivery to ``node_id`` is left out."""
        ids = list(packet_ids)
        with self._metadata.read() as session:
            packets = {
                p.packet_id: p
                for p in session.scalars(
                    select(PacketRow).where(PacketRow.packet_id.in_(ids), PacketRow.file_count == 0)
                )
            }
            deliveries = {
                d.packet_id: d
                for d in session.scalars(
                    select(DeliveryRow).where(
                        DeliveryRow.node_id == node_id, DeliveryRow.packet_id.in_(ids)
                    )
                )
            }
            events: dict[str, list[EventRow]] = {}
            for e in session.scalars(select(EventRow).where(EventRow.packet_id.in_(ids))):
                packet = packets.get(e.packet_id)
                if packet is not None and e.leg_node == self._event_leg(packet, node_id):
                    events.setdefault(e.packet_id, []).append(e)
        return {
            pid: _opening(packets[pid], deliveries[pid], events.get(pid, []))
            for pid in ids
            if pid in packets and pid in deliveries
        }


def delivery_states(session: Session, packet_id: str) -> tuple[DeliveryInfo, ...]:
    """Where the packet is in its delivery to each recipient node."""
    rows = session.scalars(
        select(DeliveryRow).where(DeliveryRow.packet_id == packet_id).order_by(DeliveryRow.node_id)
    )
    return tuple(DeliveryInfo(d.node_id, d.state, d.attempts, d.last_error) for d in rows)
