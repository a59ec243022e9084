"""Shared fixtures: PostgreSQL schemas, the local S3 server, and clusters of real nodes."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.availability import IN_CI, unavailable
from tests.fixtures_s3 import s3_server, s3_store  # noqa: F401 - fixtures
from tests.harness import Backend, Cluster, start_cluster

PG_URL = os.environ.get("TONGBAN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")

# Property tests explore new examples on every local run; in CI they run the same examples
# every time (derandomize), so a CI failure is reproducible and never a coin toss.
settings.register_profile("ci", derandomize=True, print_blob=True)
if IN_CI:
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL test database; skipped (or failed in CI) when it does not answer."""
    import psycopg

    try:
        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("select 1")
    except psycopg.Error as exc:
        unavailable(f"PostgreSQL at {PG_URL} is not reachable: {exc}")
    return PG_URL


@pytest.fixture
def pg_schema(postgres_url: str) -> Iterator[Callable[[str], str]]:
    """Make fresh schemas (one per name) in the test database; drop them afterwards."""
    import psycopg

    made: list[str] = []

    def make(name: str) -> str:
        schema = f"t_{uuid.uuid4().hex[:10]}_{name}"
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'create schema "{schema}"')
        made.append(schema)
        return f"{postgres_url}?options=-csearch_path%3D{schema}"

    yield make
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for schema in made:
            conn.execute(f'drop schema if exists "{schema}" cascade')


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """Three nodes (鄂州 420700, 武汉 420100, 深圳 440300) on SQLite and the filesystem store."""
    c = start_cluster(tmp_path)
    yield c
    c.close()


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    made: list[Cluster] = []

    def make(*args: object, **kwargs: object) -> Cluster:
        c = start_cluster(tmp_path / f"c{len(made)}", *args, **kwargs)  # type: ignore[arg-type]
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


__all__ = ["Backend"]
