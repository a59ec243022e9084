"""The SQLite metadata database is readable by its owner only, like the keys and blobs."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from tongban.storage.sql import open_metadata_store


@pytest.fixture
def usual_umask() -> Iterator[None]:
    old = os.umask(0o022)  # the common default, under which files are made 0644
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("usual_umask")
def test_new_database_and_its_wal_files_are_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "var" / "metadata.db"
    store = open_metadata_store(f"sqlite:///{db}")
    try:
        with store.transaction() as session:
            session.execute(text("create table t (x integer)"))
            session.execute(text("insert into t values (1)"))
        files = {p.name: _mode(p) for p in db.parent.iterdir()}
        assert files == {"metadata.db": 0o600, "metadata.db-wal": 0o600, "metadata.db-shm": 0o600}
        assert _mode(db.parent) == 0o700
    finally:
        store.close()


@pytest.mark.usefixtures("usual_umask")
def test_existing_readable_database_is_tightened(tmp_path: Path) -> None:
    db = tmp_path / "metadata.db"
    first = open_metadata_store(f"sqlite:///{db}")
    first.close()
    db.chmod(0o644)
    store = open_metadata_store(f"sqlite:///{db}")
    try:
        assert _mode(db) == 0o600
    finally:
        store.close()
