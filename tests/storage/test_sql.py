"""The SQL metadata layer on SQLite and PostgreSQL: migrations, time handling, transactions."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError, StatementError

from tongban.storage.sql import CaseRow, MetadataStore, OutboxRow, open_metadata_store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MetadataStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'sub' / 'meta.db'}"
    else:
        make: Callable[[str], str] = request.getfixturevalue("pg_schema")
        url = make("sql")
    s = open_metadata_store(url)
    yield s
    s.close()


def _case(case_id: str, at: datetime) -> CaseRow:
    return CaseRow(
        case_id=case_id,
        mode="on_behalf",
        matter_code="HB-ODA-01",
        matter_name="x",
        accepting_node="420700",
        accepting_hall="420700-hall-1",
        created_at=at,
    )


def test_migration_creates_the_schema_and_is_idempotent(store: MetadataStore) -> None:
    tables = set(inspect(store.engine).get_table_names())
    assert {
        "packets",
        "packet_files",
        "deliveries",
        "cases",
        "legs",
        "events",
        "outbox",
        "alembic_version",
    } <= tables
    from tongban.storage.sql import migrate

    migrate(store.engine)  # a second run changes nothing and does not fail


def test_times_come_back_aware_in_utc_and_naive_ones_are_refused(store: MetadataStore) -> None:
    at = datetime(2026, 11, 21, 16, 30, tzinfo=timezone(timedelta(hours=8)))
    with store.transaction() as s:
        s.add(_case("c1", at))
    with store.transaction() as s:
        got = s.get(CaseRow, "c1")
        assert got is not None and got.created_at == at and got.created_at.tzinfo == UTC
    with pytest.raises(StatementError, match="naive datetime refused"), store.transaction() as s:
        s.add(_case("c2", datetime(2026, 11, 21)))


def test_a_failed_transaction_leaves_nothing(store: MetadataStore) -> None:
    now = datetime.now(UTC)
    with store.transaction() as s:
        s.add(_case("dup", now))
    with pytest.raises(IntegrityError), store.transaction() as s:
        s.add(_case("other", now))
        s.flush()
        s.add(_case("dup", now))
    with store.transaction() as s:
        assert s.scalars(select(CaseRow.case_id).order_by(CaseRow.case_id)).all() == ["dup"]


def test_concurrent_writers_wait_for_each_other(store: MetadataStore) -> None:
    now = datetime.now(UTC)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(25):
                with store.transaction() as s:
                    count = len(s.scalars(select(OutboxRow.id)).all())
                    s.add(
                        OutboxRow(
                            dest_node="420100",
                            case_id=f"{n}-{i}",
                            kind="event",
                            ref=str(count),
                            state="pending",
                            attempts=0,
                            next_attempt_at=now,
                            last_error="",
                            created_at=now,
                        )
                    )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with store.transaction() as s:
        assert len(s.scalars(select(OutboxRow.id)).all()) == 100
