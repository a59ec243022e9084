"""Start and stop the project's local S3 server (single-node Ceph radosgw) for tests.

The cluster is run by ``scripts/s3-server.sh``; this module picks free ports on 127.0.0.1,
waits until the gateway answers ``GET /`` and hands back the endpoint and credentials.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "INSTALL_HINT",
    "S3Server",
    "S3ServerError",
    "missing_binaries",
    "start_s3_server",
]

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "s3-server.sh"
INSTALL_HINT = "apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd"
_BINARIES = (
    "ceph-mon",
    "ceph-osd",
    "radosgw",
    "radosgw-admin",
    "ceph",
    "ceph-authtool",
    "monmaptool",
)
# The OSD binds in this range (the script's default); the other ports stay out of it.
_OSD_PORTS = range(6800, 7301)
_ACCESS_KEY = "tongbantest"
_SECRET_KEY = "tongbantest-secret-0123456789"
_START_TIMEOUT = 180.0
_READY_TIMEOUT = 30.0


class S3ServerError(RuntimeError):
    """The local S3 server did not start or stop."""


def missing_binaries() -> list[str]:
    """The Ceph programs the server needs that are not on PATH."""
    return [name for name in _BINARIES if shutil.which(name) is None]


def _free_ports(count: int) -> list[int]:
    held: list[socket.socket] = []
    try:
        while len(held) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            if sock.getsockname()[1] in _OSD_PORTS:
                sock.close()
                continue
            held.append(sock)
        return [sock.getsockname()[1] for sock in held]
    finally:
        for sock in held:
            sock.close()


def _conf_port(conf: Path, prefix: str) -> int | None:
    for line in conf.read_text().splitlines():
        if line.startswith(prefix):
            return int(line.rsplit(":", 1)[1])
    return None


@dataclass(frozen=True)
class S3Server:
    """A running single-node Ceph cluster whose radosgw serves S3 on 127.0.0.1."""

    state_dir: Path
    port: int
    access_key: str
    secret_key: str
    host: str = "127.0.0.1"

    @property
    def endpoint(self) -> str:
        """``host:port`` as the minio client wants it."""
        return f"{self.host}:{self.port}"

    def url(self, bucket: str, *, credentials: bool = False) -> str:
        """An ``s3://`` store URL for ``bucket`` (credentials in it only if asked)."""
        auth = f"{self.access_key}:{self.secret_key}@" if credentials else ""
        return f"s3://{auth}{self.endpoint}/{bucket}?secure=false"

    def stop(self) -> None:
        """Stop the daemons; the state directory (and the data) stays."""
        _run_script("down", self.state_dir, {}, timeout=60)

    def restart(self) -> float:
        """Stop and start again on the same ports and data; return the start's seconds."""
        self.stop()
        started = time.monotonic()
        _run_script("up", self.state_dir, self._env(), timeout=_START_TIMEOUT)
        _wait_ready(self.port, self.state_dir)
        return time.monotonic() - started

    def _env(self) -> dict[str, str]:
        return {"RGW_PORT": str(self.port), "AK": self.access_key, "SK": self.secret_key}


def _run_script(action: str, state_dir: Path, env: dict[str, str], *, timeout: float) -> str:
    try:
        done = subprocess.run(
            ["bash", str(SCRIPT), action, str(state_dir)],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise S3ServerError(f"s3-server.sh {action} took more than {timeout:.0f}s") from exc
    if done.returncode != 0:
        raise S3ServerError(
            f"s3-server.sh {action} {state_dir} failed ({done.returncode}):\n"
            f"{done.stdout[-2000:]}{done.stderr[-4000:]}"
        )
    return done.stdout


def _wait_ready(port: int, state_dir: Path) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = exc
        time.sleep(0.05)
    raise S3ServerError(f"radosgw of {state_dir} does not answer GET / on {port}: {last}")


def start_s3_server(state_dir: Path) -> S3Server:
    """Start (or create) the cluster in ``state_dir`` and wait until S3 answers.

    A new cluster gets free ports on 127.0.0.1; an existing one keeps the ports it was
    created with. Raises :class:`S3ServerError` with the script's output if it fails, after
    stopping whatever it started.
    """
    missing = missing_binaries()
    if missing:
        raise S3ServerError(f"missing {', '.join(missing)}; install with: {INSTALL_HINT}")
    state_dir.mkdir(parents=True, exist_ok=True)
    conf = state_dir / "ceph.conf"
    port = _conf_port(conf, "rgw frontends") if conf.exists() else None
    env = {"AK": _ACCESS_KEY, "SK": _SECRET_KEY}
    if port is None:
        port, mon_port = _free_ports(2)
        env.update(RGW_PORT=str(port), MON_PORT=str(mon_port))
    server = S3Server(state_dir, port, _ACCESS_KEY, _SECRET_KEY)
    try:
        _run_script("up", state_dir, env, timeout=_START_TIMEOUT)
        _wait_ready(port, state_dir)
    except BaseException:
        with contextlib.suppress(S3ServerError):
            server.stop()
        raise
    return server
