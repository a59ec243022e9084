"""What an administrator watches: the outbox, deliveries, keys, seals and e-certificates.

Read-only figures from the node's database and directory, for the operations view and the
Prometheus metrics. A database that cannot be reached is :class:`Unavailable`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from tongban.keys.ecert import ECertStatus
from tongban.server.domain.deadlines import Card
from tongban.server.domain.errors import Unavailable
from tongban.server.usecases.runtime import Clock, DirectoryHolder
from tongban.storage.deadline_tables import CaseClockRow
from tongban.storage.sql import (
    DeliveryRow,
    ECertRow,
    MetadataStore,
    MetadataUnavailable,
    OutboxRow,
    PacketRow,
    SealRow,
)

__all__ = [
    "DeliveryLine",
    "KeyLine",
    "Operations",
    "OperationsSnapshot",
    "OutboxLine",
]

_RECENT = 20


@dataclass(frozen=True)
class OutboxLine:
    """What waits for one destination node."""

    destination: str
    queued: int
    oldest_created_at: datetime | None
    next_attempt_at: datetime | None
    last_error: str
    failed: int


@dataclass(frozen=True)
class DeliveryLine:
    """One packet delivery to a node: delivered, waiting or failed."""

    packet_id: str
    destination: str
    state: str
    attempts: int
    last_error: str
    stored_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True)
class KeyLine:
    """One key or certificate the node relies on, and until when."""

    name: str
    purpose: str
    not_after: datetime
    revoked: bool


@dataclass(frozen=True)
class OperationsSnapshot:
    """The node's state as an administrator reads it, at ``at``."""

    node_id: str
    at: datetime
    outbox: tuple[OutboxLine, ...]
    recent_deliveries: tuple[DeliveryLine, ...]
    recent_failures: tuple[DeliveryLine, ...]
    delivery_seconds: tuple[float, ...]  # stored -> delivered, every delivered packet
    packets: dict[str, int]  # direction ("in", "out") -> count
    bytes_stored: int
    seals: int
    seals_revoked: int
    ecerts: dict[str, int]  # status -> count
    keys: tuple[KeyLine, ...]
    # Open cases (clock not closed) by the most serious card they hold: "none", "yellow",
    # "red", "overdue", "legal_overdue".
    cards: dict[str, int] = field(default_factory=dict)

    def age_of_oldest(self, line: OutboxLine) -> float:
        """Seconds the oldest queued item for ``line``'s destination has waited."""
        if line.oldest_created_at is None:
            return 0.0
        return max(0.0, (self.at - line.oldest_created_at).total_seconds())


_SEVERITY = ("none", *(card.value for card in Card))


def _open_cases_by_card(issued: Iterable[str]) -> dict[str, int]:
    """How many open cases hold each card as their most serious one (``none``: no card)."""
    counts = dict.fromkeys(_SEVERITY, 0)
    for listed in issued:
        held = [c for c in listed.split(",") if c in counts] or ["none"]
        counts[max(held, key=_SEVERITY.index)] += 1
    return counts


def _delivery(d: DeliveryRow, stored_at: datetime) -> DeliveryLine:
    return DeliveryLine(
        d.packet_id, d.node_id, d.state, d.attempts, d.last_error, stored_at, d.delivered_at
    )


class Operations:
    """The figures an administrator watches, read from the node's database and directory.

    Its dependencies are its constructor's arguments: the metadata store, the directory
    (this node's keys and certificates) and the clock.
    """

    def __init__(
        self, *, node_id: str, metadata: MetadataStore, directory: DirectoryHolder, clock: Clock
    ) -> None:
        self.node_id = node_id
        self.metadata = metadata
        self.directory = directory
        self.clock = clock

    def _keys(self) -> tuple[KeyLine, ...]:
        me = self.directory.current.node(self.node_id)
        lines = [
            KeyLine("TLS certificate", "tls", me.certificate.not_valid_after_utc, False),
            KeyLine("identity CA", "identity-ca", me.identity_ca.not_valid_after_utc, False),
            KeyLine("seal CA", "seal-ca", me.seal_ca.not_valid_after_utc, False),
        ]
        lines += [
            KeyLine(r.key_id, r.purpose.value, r.not_after, r.revoked_at is not None)
            for r in me.keys
        ]
        return tuple(sorted(lines, key=lambda k: k.not_after))

    def snapshot(self) -> OperationsSnapshot:
        """Read the figures at once.

        Raises:
            Unavailable: the database cannot be reached.
        """
        now = self.clock()
        try:
            with self.metadata.read() as s:
                waiting = OutboxRow.state == "pending"
                per_dest = s.execute(
                    select(
                        OutboxRow.dest_node,
                        func.count(),
                        func.min(OutboxRow.created_at),
                        func.min(OutboxRow.next_attempt_at),
                    )
                    .where(waiting)
                    .group_by(OutboxRow.dest_node)
                ).all()
                failed = dict(
                    s.execute(
                        select(OutboxRow.dest_node, func.count())
                        .where(OutboxRow.state == "failed")
                        .group_by(OutboxRow.dest_node)
                    ).all()
                )
                errors = {
                    dest: err
                    for dest, err in s.execute(
                        select(OutboxRow.dest_node, OutboxRow.last_error)
                        .where(OutboxRow.state != "done", OutboxRow.last_error != "")
                        .order_by(OutboxRow.id)
                    )
                }
                dests = sorted({r[0] for r in per_dest} | set(failed))
                counts = {r[0]: r for r in per_dest}
                outbox = tuple(
                    OutboxLine(
                        d,
                        counts[d][1] if d in counts else 0,
                        counts[d][2] if d in counts else None,
                        counts[d][3] if d in counts else None,
                        errors.get(d, ""),
                        failed.get(d, 0),
                    )
                    for d in dests
                )
                joined = select(DeliveryRow, PacketRow.stored_at).join(
                    PacketRow, PacketRow.packet_id == DeliveryRow.packet_id
                )
                recent = tuple(
                    _delivery(d, at)
                    for d, at in s.execute(
                        joined.where(DeliveryRow.state == "delivered")
                        .order_by(DeliveryRow.delivered_at.desc())
                        .limit(_RECENT)
                    )
                )
                failures = tuple(
                    _delivery(d, at)
                    for d, at in s.execute(
                        joined.where(DeliveryRow.last_error != "")
                        .order_by(PacketRow.stored_at.desc())
                        .limit(_RECENT)
                    )
                )
                seconds = tuple(
                    (delivered - stored).total_seconds()
                    for stored, delivered in s.execute(
                        select(PacketRow.stored_at, DeliveryRow.delivered_at)
                        .join(PacketRow, PacketRow.packet_id == DeliveryRow.packet_id)
                        .where(DeliveryRow.delivered_at.is_not(None))
                    )
                    if delivered is not None
                )
                packets = dict(
                    s.execute(
                        select(PacketRow.direction, func.count()).group_by(PacketRow.direction)
                    ).all()
                )
                bytes_stored = int(
                    s.scalar(select(func.coalesce(func.sum(PacketRow.total_size), 0))) or 0
                )
                seals = int(s.scalar(select(func.count()).select_from(SealRow)) or 0)
                revoked = int(
                    s.scalar(
                        select(func.count())
                        .select_from(SealRow)
                        .where(SealRow.revoked_at.is_not(None))
                    )
                    or 0
                )
                cards = _open_cases_by_card(
                    s.scalars(select(CaseClockRow.cards).where(CaseClockRow.state != "closed"))
                )
                ecerts = {status.value: 0 for status in ECertStatus}
                ecerts.update(
                    s.execute(select(ECertRow.status, func.count()).group_by(ECertRow.status)).all()
                )
        except (SQLAlchemyError, MetadataUnavailable):
            raise Unavailable("the node's database cannot be reached; try again later") from None
        return OperationsSnapshot(
            node_id=self.node_id,
            at=now,
            outbox=outbox,
            recent_deliveries=recent,
            recent_failures=failures,
            delivery_seconds=seconds,
            packets=packets,
            bytes_stored=bytes_stored,
            seals=seals,
            seals_revoked=revoked,
            ecerts=ecerts,
            keys=self._keys(),
            cards=cards,
        )
