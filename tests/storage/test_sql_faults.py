"""Connection-level database failures become one retryable error; statement errors do not."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from tests.pg_instance import PostgresInstance
from tongban.cli.demo import free_ports
from tongban.storage.sql import (
    CaseRow,
    MetadataStore,
    MetadataUnavailable,
    open_metadata_store,
)


def _case(case_id: str) -> CaseRow:
    now = datetime.now(UTC)
    return CaseRow(
        case_id=case_id,
        mode="on_behalf",
        matter_code="m",
        matter_name="m",
        accepting_node="n",
        accepting_hall="h",
        created_at=now,
    )


def test_a_database_nobody_listens_for_is_unavailable_and_retryable() -> None:
    port = free_ports(1)[0]
    with pytest.raises(MetadataUnavailable) as raised:
        open_metadata_store(f"postgresql://postgres@127.0.0.1:{port}/none")
    assert raised.value.retryable is True
    assert raised.value.code == "database-unavailable"
    assert raised.value.message.startswith("the metadata database is unreachable: ")
    assert "refused" in raised.value.message.lower()


@pytest.mark.postgres
def test_a_constraint_error_stays_what_it_is(pg_schema: Callable[[str], str]) -> None:
    store = open_metadata_store(pg_schema("faults"))
    try:
        store.insert_new([_case("c1")])
        with pytest.raises(IntegrityError):
            store.insert_new([_case("c1")])
    finally:
        store.close()


def test_sqlite_errors_about_the_statement_are_not_an_outage(tmp_path: Path) -> None:
    store = open_metadata_store(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        with pytest.raises(OperationalError), store.read() as session:
            session.execute(text("select * from no_such_table"))
    finally:
        store.close()


@pytest.fixture
def own_postgres() -> Iterator[PostgresInstance]:
    pg = PostgresInstance()
    pg.start()
    yield pg
    pg.remove()


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_server_stopped_under_open_connections_is_unavailable_then_back(
    own_postgres: PostgresInstance, mode: str
) -> None:
    store: MetadataStore = open_metadata_store(own_postgres.url)
    try:
        with store.read() as session:  # a pooled connection that the stop will kill
            assert session.execute(text("select 1")).scalar() == 1
        own_postgres.stop(mode)
        with pytest.raises(MetadataUnavailable), store.read() as session:
            session.execute(text("select 1"))
        with pytest.raises(MetadataUnavailable):
            store.insert_new([_case("c1")])
        own_postgres.start()
        store.insert_new([_case("c1")])
        with store.read() as session:
            assert session.execute(text("select count(*) from cases")).scalar() == 1
    finally:
        store.close()
