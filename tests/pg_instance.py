"""A PostgreSQL server of a test's own, to stop and start at will (Debian's postgresql package).

``initdb`` makes a cluster in a temporary folder and ``pg_ctl`` runs it on a free port of
127.0.0.1 with trust authentication. PostgreSQL refuses to run as root: as root the programs
run as the ``postgres`` user, and the folder is given to it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.availability import unavailable
from tongban.cli.demo import free_ports

__all__ = ["PostgresInstance", "postgres_programs"]

INSTALL_HINT = "apt-get install -y --no-install-recommends postgresql"


def postgres_programs() -> Path | None:
    """The folder of the newest installed PostgreSQL's ``initdb`` and ``pg_ctl``, if any."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parent.parent.name),
    )
    return Path(found[-1]).parent if found else None


class PostgresInstance:
    """One PostgreSQL cluster in a temporary folder; ``url`` reaches its ``postgres`` database."""

    def __init__(self) -> None:
        programs = postgres_programs()
        if programs is None:
            unavailable(f"the database outage tests need PostgreSQL's programs; {INSTALL_HINT}")
        assert programs is not None
        self._bin = programs
        self.port = free_ports(1)[0]
        self.folder = Path(tempfile.mkdtemp(prefix="tongban-pg-"))
        self._user: str | None = None
        if os.geteuid() == 0:
            self._user = "postgres"
            entry = pwd.getpwnam("postgres")
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        self._data = self.folder / "data"
        self._run("initdb", "-D", str(self._data), "-A", "trust", "-U", "postgres", "-E", "UTF8")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str) -> None:
        command = [str(self._bin / program), *args]
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed: {done.stdout}\n{done.stderr}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self._data), "-l", str(self.folder / "log"), "-o", options, "-w",
            "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` ends sessions, ``immediate`` is like a crash."""
        self._run("pg_ctl", "-D", str(self._data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(RuntimeError):  # not running
            self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)
