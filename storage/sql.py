"""The SQL metadata layer: packets, files, deliveries, cases, legs, events and the outbox.

Why one module of about 530 lines: the table definitions and the group commit that writes
them belong together; the schema's history is in the Alembic migrations.

Rows hold opaque bytes (signed statements, ciphertext of small forms, wrapped keys); this
module knows nothing of their cryptography. SQLite (WAL, synchronous FULL) is the embedded
default; PostgreSQL is the production path. The schema is owned by Alembic migrations
(``tongban.storage.migrations``); :func:`open_metadata_store` brings a database up to date.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
    insert,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.sql.dml import Insert

from tongban.storage.sql_faults import MetadataUnavailable, translate_connection_errors

__all__ = [
    "Base",
    "CaseRow",
    "DeliveryRow",
    "ECertRow",
    "EventRow",
    "LegRow",
    "MetadataStore",
    "MetadataUnavailable",
    "OutboxRow",
    "PacketFileRow",
    "PacketRow",
    "SealRow",
    "UTCDateTime",
    "open_metadata_store",
    "row_values",
]


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes in, timezone-aware UTC datetimes out, on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused by the metadata store")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class PacketRow(Base):
    """A packet this node sent ("out") or received ("in")."""

    __tablename__ = "packets"

    row_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    packet_id: Mapped[str] = mapped_column(String(36), unique=True)
    direction: Mapped[str] = mapped_column(String(3))
    kind: Mapped[str] = mapped_column(String(16))
    case_id: Mapped[str] = mapped_column(String(36), index=True)
    mode: Mapped[str] = mapped_column(String(16))
    matter_code: Mapped[str] = mapped_column(String(64))
    matter_name: Mapped[str] = mapped_column(String(256))
    sender_node: Mapped[str] = mapped_column(String(16))
    sender_hall: Mapped[str] = mapped_column(String(128))
    local_hall: Mapped[str] = mapped_column(String(128), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    stored_at: Mapped[datetime] = mapped_column(UTCDateTime())
    statement: Mapped[bytes] = mapped_column(LargeBinary)
    statement_type: Mapped[str] = mapped_column(String(128))
    signatures: Mapped[bytes] = mapped_column(LargeBinary)
    signed_by_key: Mapped[str] = mapped_column(String(64))
    form_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    wrap_key_id: Mapped[str] = mapped_column(String(64))
    stored_digest: Mapped[str] = mapped_column(String(64))
    receipt: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    file_count: Mapped[int] = mapped_column(Integer)
    total_size: Mapped[int] = mapped_column(BigInteger)


class PacketFileRow(Base):
    __tablename__ = "packet_files"

    packet_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("packets.packet_id", ondelete="CASCADE"), primary_key=True
    )
    file_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(512))
    media_type: Mapped[str] = mapped_column(String(128))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    segment_count: Mapped[int] = mapped_column(BigInteger)
    blob_key: Mapped[str] = mapped_column(String(256))
    ciphertext_size: Mapped[int] = mapped_column(BigInteger)
    ciphertext_sha256: Mapped[str] = mapped_column(String(64))


class DeliveryRow(Base):
    """One recipient of an outgoing packet, with its wrapped key and receipt."""

    __tablename__ = "deliveries"

    packet_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("packets.packet_id", ondelete="CASCADE"), primary_key=True
    )
    node_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    hall_id: Mapped[str] = mapped_column(String(128))
    department: Mapped[str] = mapped_column(String(128))
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    receipt: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class CaseRow(Base):
    __tablename__ = "cases"

    case_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    mode: Mapped[str] = mapped_column(String(16))
    matter_code: Mapped[str] = mapped_column(String(64))
    matter_name: Mapped[str] = mapped_column(String(256))
    accepting_node: Mapped[str] = mapped_column(String(16))
    accepting_hall: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LegRow(Base):
    """One participant's leg of a case: its own status, decision and event chain head."""

    __tablename__ = "legs"

    case_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("cases.case_id", ondelete="CASCADE"), primary_key=True
    )
    node_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    hall_id: Mapped[str] = mapped_column(String(128))
    department: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(32))
    decision: Mapped[str] = mapped_column(String(16), default="")
    supplement_requests: Mapped[int] = mapped_column(Integer, default=0)
    head_hash: Mapped[str] = mapped_column(String(64), default="")
    head_seq: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class EventRow(Base):
    """A signed case event; ``event_hash`` is the SHA-256 of its payload."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("case_id", "leg_node", "seq"),)

    event_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(36), index=True)
    leg_node: Mapped[str] = mapped_column(String(16))
    seq: Mapped[int] = mapped_column(Integer)
    prev_hash: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(32))
    actor_node: Mapped[str] = mapped_column(String(16))
    actor_hall: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    packet_id: Mapped[str] = mapped_column(String(36), default="")
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    signatures: Mapped[bytes] = mapped_column(LargeBinary)
    signed_by_key: Mapped[str] = mapped_column(String(64))


class OutboxRow(Base):
    """Work owed to another node (a packet or an event), retried until acknowledged."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    dest_node: Mapped[str] = mapped_column(String(16), index=True)
    # Work for one case goes out in order: a leg's packet before the events that follow it.
    case_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(8))
    ref: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(8), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class SealRow(Base):
    """A seal registered at this node: its published record, image and key location."""

    __tablename__ = "seals"

    seal_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    org_uscc: Mapped[str] = mapped_column(String(18))
    record: Mapped[bytes] = mapped_column(LargeBinary)
    image_png: Mapped[bytes] = mapped_column(LargeBinary)
    key_ref: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ECertRow(Base):
    """An e-certificate this node issued by sealing a document, with its current status."""

    __tablename__ = "ecerts"
    __table_args__ = (UniqueConstraint("type_code", "serial"),)

    identifier: Mapped[str] = mapped_column(String(128), primary_key=True)
    seal_id: Mapped[str] = mapped_column(String(64), index=True)
    type_code: Mapped[str] = mapped_column(String(16))
    serial: Mapped[int] = mapped_column(BigInteger)
    document_name: Mapped[str] = mapped_column(String(512))
    document_sha256: Mapped[str] = mapped_column(String(64))
    packet_id: Mapped[str] = mapped_column(String(36), default="")
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(Text, default="")


def _sqlite_pragmas(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
    # Autocommit at the driver level so that BEGIN is ours (see _sqlite_begin).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL: a committed packet survives power loss, not only a process crash.
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # Writers take the lock up front: two deferred transactions that both upgrade to
    # writing would otherwise fail with "database is locked" instead of waiting. Readers
    # begin deferred and, in WAL mode, never wait for a writer.
    read_only = conn.get_execution_options().get("tongban_read_only", False)
    conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def row_values(row: Base) -> dict[str, Any]:
    """The column values set on a (transient) row object."""
    state = row.__dict__
    return {c.key: state[c.key] for c in row.__table__.columns if c.key in state}


@dataclass(eq=False)
class _NewRows:
    """One caller's part of a group commit: new rows to insert and work to run after
    them, and what became of it."""

    rows: Sequence[Base]
    keyed: Sequence[Base]
    work: Callable[[Session], None] | None = None
    done: bool = False
    ids: list[int] = field(default_factory=list)
    error: Exception | None = None


@cache
def _table_order() -> dict[Table, int]:
    """Tables in dependency order (parents first), computed once."""
    return {table: i for i, table in enumerate(Base.metadata.sorted_tables)}


@cache
def _insert_statement(table: Table, returning_id: bool) -> Insert:
    # One statement object per table, so that its compiled form is found by identity.
    stmt = insert(table)
    return stmt.returning(table.c.id, sort_by_parameter_order=True) if returning_id else stmt


def _insert_groups(session: Session, requests: Sequence[_NewRows]) -> None:
    """Insert every request's rows, one executemany per table in dependency order, and
    hand each request the generated keys of its ``keyed`` rows (one multi-row INSERT …
    RETURNING per table, in parameter order)."""
    conn = session.connection()
    by_table: dict[Table, list[dict[str, Any]]] = {}
    for req in requests:
        for row in req.rows:
            by_table.setdefault(cast(Table, row.__table__), []).append(row_values(row))
    order = _table_order()
    for table in sorted(by_table, key=order.__getitem__):
        # Rows of one table that set different columns would need separate statements.
        params = by_table[table]
        for cols in {frozenset(p) for p in params}:
            same = [p for p in params if frozenset(p) == cols]
            conn.execute(_insert_statement(table, False), same)
    by_keyed_table: dict[Table, list[tuple[_NewRows, Base]]] = {}
    for req in requests:
        for row in req.keyed:
            by_keyed_table.setdefault(cast(Table, row.__table__), []).append((req, row))
    for table, pairs in by_keyed_table.items():
        ids = conn.execute(
            _insert_statement(table, True), [row_values(row) for _, row in pairs]
        ).scalars()
        for (req, _), new_id in zip(pairs, ids, strict=True):
            req.ids.append(int(new_id))
    for req in requests:
        if req.work is not None:
            req.work(session)


class MetadataStore:
    """Sessions over the metadata database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(
            engine.execution_options(tongban_read_only=True), expire_on_commit=False
        )
        # SQLite has one writer at a time and makes waiters sleep and poll; queueing them on
        # a lock in this process hands the database over at once instead.
        self._write_lock = threading.Lock() if engine.dialect.name == "sqlite" else None
        # Group commit for insert_new: callers queue their rows; whoever holds the group
        # lock writes everything queued so far in one transaction.
        self._group_lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queued: list[_NewRows] = []

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits on success and rolls back on any exception."""
        if self._write_lock is None:
            with self._sessions() as session, session.begin():
                yield session
            return
        with self._write_lock, self._sessions() as session, session.begin():
            yield session

    def insert_new(self, rows: Sequence[Base], *, keyed: Sequence[Base] = ()) -> list[int]:
        """Insert new rows and return the generated ``id`` of each ``keyed`` row, once they
        are committed.

        Concurrent callers share one transaction and one commit (group commit): the rows of
        all of them are written with one statement per table. If any caller's part fails,
        each part is tried again on its own in a savepoint, so only the caller whose rows
        break a constraint gets the :class:`IntegrityError`, and nothing of its rows stays.

        Raises:
            IntegrityError: a row of this caller collides with one already stored.
            Exception: the shared transaction could not be committed (nothing was stored).
        """
        mine = _NewRows(rows, keyed)
        self._write_queued([mine])
        if mine.error is not None:
            raise mine.error
        return mine.ids

    def insert_each(self, row_sets: Sequence[Sequence[Base]]) -> list[Exception | None]:
        """Insert several independent sets of new rows, each all or nothing, with the group
        commit of :meth:`insert_new`; per set, None once it is committed, or why it is not
        stored (an :class:`IntegrityError` when its rows collide with stored ones)."""
        requests = [_NewRows(rows, ()) for rows in row_sets]
        self._write_queued(requests)
        return [req.error for req in requests]

    def write_grouped(self, work: Callable[[Session], None]) -> None:
        """Run ``work`` in a write transaction shared with concurrent callers (the group
        commit of :meth:`insert_new`); return once it is committed.

        If another caller's part fails, ``work`` runs a second time in a savepoint of its
        own: it must do nothing but work in the session it is given.

        Raises:
            Exception: what ``work`` raised, or why the transaction could not be committed;
                nothing of it stays.
        """
        mine = _NewRows((), (), work)
        self._write_queued([mine])
        if mine.error is not None:
            raise mine.error

    def _write_queued(self, requests: list[_NewRows]) -> None:
        with self._queue_lock:
            self._queued.extend(requests)
        with self._group_lock:
            if not all(req.done for req in requests):
                self._write_group()
        for req in requests:
            if not req.done:  # the group that held it was interrupted before it was written
                req.error = RuntimeError("the write was interrupted; nothing was stored")

    def _write_group(self) -> None:
        """Write everything queued so far; the caller holds the group lock."""
        group: list[_NewRows] = []
        try:
            with self._queue_lock:
                group, self._queued = self._queued, []
            try:
                with self.transaction() as session:
                    _insert_groups(session, group)
            except Exception:
                if len(group) == 1:
                    raise
                for req in group:
                    req.ids.clear()
                # Someone's part failed (e.g. its rows collide): each caller's part in a
                # savepoint of its own, so the failure stays with its caller.
                with self.transaction() as session:
                    for req in group:
                        try:
                            with session.begin_nested():
                                _insert_groups(session, [req])
                        except Exception as exc:
                            req.ids.clear()
                            req.error = exc
        except Exception as exc:
            for req in group:  # nothing was committed: this is every caller's answer
                req.ids.clear()
                req.error = exc
        except BaseException:
            for req in group:
                req.ids.clear()
                req.error = RuntimeError("the write was interrupted; nothing was stored")
            raise  # in the interrupted thread alone
        finally:
            for req in group:
                req.done = True

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only session: a consistent snapshot that never blocks or waits for writers."""
        with self._read_sessions() as session, session.begin():
            yield session

    def close(self) -> None:
        self.engine.dispose()


def _owner_only_database(path: Path) -> None:
    """Create the SQLite file (and tighten an existing one and its -wal/-shm files) to
    owner read/write only: it holds applicants' case metadata. SQLite gives the -wal and
    -shm files it creates later the mode of the database file."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with suppress(FileNotFoundError):
            if file.stat().st_mode & 0o077:
                file.chmod(0o600)


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.partition(":///")[2].partition("?")[0]
        if path and not path.startswith(":memory:"):
            _owner_only_database(Path(path))
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            # Enough connections for every RPC thread and delivery worker of a node.
            pool_size=16,
            max_overflow=64,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        translate_connection_errors(engine)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine = create_engine(
        url,
        pool_size=10,
        max_overflow=10,
        pool_pre_ping=True,
        # A database that does not answer is reported as unreachable within seconds,
        # not after the operating system's TCP timeout.
        connect_args={"connect_timeout": 5},
    )
    translate_connection_errors(engine)
    return engine


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("tongban.storage") / "migrations"))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")


def open_metadata_store(url: str, *, migrate_schema: bool = True) -> MetadataStore:
    """Open (and by default migrate) the metadata database at ``url``.

    ``sqlite:///path.db`` for the embedded default, ``postgresql://…`` for production.
    """
    engine = _make_engine(url)
    if migrate_schema:
        migrate(engine)
    return MetadataStore(engine)
