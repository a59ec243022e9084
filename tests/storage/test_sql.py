"""The SQL metadata layer on SQLite and PostgreSQL: migrations, time handling, transactions."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, inspect, select
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

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


def _outbox(ref: str, at: datetime) -> OutboxRow:
    return OutboxRow(
        dest_node="420100",
        case_id=ref,
        kind="packet",
        ref=ref,
        state="pending",
        attempts=0,
        next_attempt_at=at,
        last_error="",
        created_at=at,
    )


def _all_queued(store: MetadataStore, calls: list[Callable[[], Any]]) -> tuple[list[Any], int]:
    """Make every call at once, each on its own thread, all queued before any of them
    writes (the test holds the group lock meanwhile); what each returned or raised, and how
    many transactions committed."""
    commits: list[int] = []
    event.listen(store.engine, "commit", lambda _conn: commits.append(1))
    outcomes: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            outcomes[i] = calls[i]()
        except BaseException as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    with store._group_lock:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while len(store._queued) < len(calls) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert len(store._queued) == len(calls)
    for t in threads:
        t.join(10)
    return outcomes, len(commits)


def _queued_insert_new(
    store: MetadataStore, callers: list[tuple[list[CaseRow], list[OutboxRow]]]
) -> tuple[list[Any], int]:
    """insert_new for every caller at once (see _all_queued)."""
    return _all_queued(
        store,
        [lambda r=rows, k=keyed: store.insert_new(r, keyed=k) for rows, keyed in callers],
    )


def test_insert_new_writes_concurrent_callers_in_one_commit(store: MetadataStore) -> None:
    now = datetime.now(UTC)
    callers = [
        ([_case(f"c{i}", now)], [_outbox(f"c{i}", now), _outbox(f"c{i}b", now)]) for i in range(6)
    ]
    outcomes, commits = _queued_insert_new(store, callers)
    assert commits == 1
    with store.read() as s:
        refs = dict(s.execute(select(OutboxRow.id, OutboxRow.ref)).all())
        assert sorted(s.scalars(select(CaseRow.case_id)).all()) == [f"c{i}" for i in range(6)]
    for i, ids in enumerate(outcomes):
        assert isinstance(ids, list)
        assert [refs[n] for n in ids] == [f"c{i}", f"c{i}b"]


def test_insert_new_refuses_only_the_caller_whose_rows_collide(store: MetadataStore) -> None:
    now = datetime.now(UTC)
    with store.transaction() as s:
        s.add(_case("held", now))
    callers = [
        ([_case("a", now)], [_outbox("a", now)]),
        ([_case("held", now)], [_outbox("held-outbox", now)]),  # collides with the stored case
        ([_case("b", now)], [_outbox("b", now)]),
    ]
    outcomes, commits = _queued_insert_new(store, callers)
    assert isinstance(outcomes[1], IntegrityError)
    assert commits == 1  # the first try rolled back; the one by one try committed once
    with store.read() as s:
        assert sorted(s.scalars(select(CaseRow.case_id)).all()) == ["a", "b", "held"]
        refs = dict(s.execute(select(OutboxRow.id, OutboxRow.ref)).all())
    assert sorted(refs.values()) == ["a", "b"]  # nothing of the refused caller stayed
    assert [refs[n] for n in outcomes[0]] == ["a"]  # type: ignore[union-attr]
    assert [refs[n] for n in outcomes[2]] == ["b"]  # type: ignore[union-attr]


def test_insert_new_alone_raises_the_collision_and_leaves_nothing(store: MetadataStore) -> None:
    now = datetime.now(UTC)
    store.insert_new([_case("x", now)])
    with pytest.raises(IntegrityError):
        store.insert_new([_case("y", now), _case("x", now)], keyed=[_outbox("y", now)])
    with store.read() as s:
        assert s.scalars(select(CaseRow.case_id)).all() == ["x"]
        assert s.scalars(select(OutboxRow.id)).all() == []


def test_write_grouped_keeps_a_failing_callers_work_to_itself(store: MetadataStore) -> None:
    now = datetime.now(UTC)

    def add(case_id: str, fail: bool) -> Callable[[Session], None]:
        def work(session: Session) -> None:
            session.add(_case(case_id, now))
            session.flush()
            if fail:
                raise RuntimeError(f"{case_id} changed its mind")

        return work

    names = ["a", "bad", "b", "c"]
    results, commits = _all_queued(
        store, [lambda c=c: store.write_grouped(add(c, c == "bad")) for c in names]
    )
    outcomes = dict(zip(names, results, strict=True))
    assert str(outcomes.pop("bad")) == "bad changed its mind"
    assert outcomes == {"a": None, "b": None, "c": None}
    assert commits == 1  # the shared try rolled back; the one by one try committed once
    with store.read() as s:
        assert sorted(s.scalars(select(CaseRow.case_id)).all()) == ["a", "b", "c"]
