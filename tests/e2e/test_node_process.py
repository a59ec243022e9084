"""`tongban node serve` as an operator runs it: the summary it prints on start, a quiet -v,
and a SIGTERM that ends it cleanly every time."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.harness import start_cluster
from tongban.cli.demo import free_ports
from tongban.cli.main import _expected_scheduler_skips


def _environ(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TONGBAN_")}
    return {**env, **extra}


def _start(config: Path, **env: str) -> tuple[subprocess.Popen[str], list[str]]:
    """Start the node and read its summary (stdout up to the seals line)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tongban.cli.main", "-v", "node", "serve", "--config", str(config)],
        env=_environ(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    while not lines or not lines[-1].startswith("  usable seals"):
        line = proc.stdout.readline()
        if not line:
            _, err = proc.communicate(timeout=30)
            pytest.fail(f"the node ended before its summary: {err}")
        lines.append(line.rstrip("\n"))
    return proc, lines


def _ports(n: int) -> list[str]:
    return [f"127.0.0.1:{p}" for p in free_ports(n)]


def test_the_start_summary_says_what_the_node_is(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path, ["420700"], start=False)
    node_dir = cluster.fed / "420700"
    relay, public = _ports(2)
    proc, summary = _start(
        node_dir / "node.toml", TONGBAN_NODE_LISTEN=relay, TONGBAN_NODE_PUBLIC_LISTEN=public
    )
    try:
        assert summary == [
            "node 420700 鄂州市 serving",
            f"  relay port   {relay} (mutual TLS: halls, admins, peer nodes)",
            f"  public port  {public} (TLS, anyone: seal verification)",
            f"  metadata     sqlite {node_dir / 'var' / 'metadata.db'}",
            f"  objects      filesystem {node_dir / 'var' / 'blobs'}",
            "  directory    version 1",
            "  usable seals none (results cannot be sealed)",
        ]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)


def test_verbose_logging_has_no_scheduler_line_every_second(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path, ["420700"], start=False)
    relay, public = _ports(2)
    proc, _ = _start(
        cluster.fed / "420700" / "node.toml",
        TONGBAN_NODE_LISTEN=relay,
        TONGBAN_NODE_PUBLIC_LISTEN=public,
        TONGBAN_DELIVERY_POLL_INTERVAL="0.2",
    )
    time.sleep(3)  # fifteen delivery polls
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "apscheduler" not in err
    assert "Running job" not in err and "executed successfully" not in err
    assert "signal 15: shutting down" in err  # -v does show the node's own INFO lines


@pytest.mark.slow
def test_sigterm_always_ends_the_node_cleanly(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path, ["420700"], start=False)
    config = cluster.fed / "420700" / "node.toml"
    # Jobs fire many times a second, so a stop often meets one being handed to its pool.
    for attempt in range(8):
        relay, public = _ports(2)
        proc, _ = _start(
            config,
            TONGBAN_NODE_LISTEN=relay,
            TONGBAN_NODE_PUBLIC_LISTEN=public,
            TONGBAN_DELIVERY_POLL_INTERVAL="0.01",
            TONGBAN_NODE_SHUTDOWN_GRACE_SECONDS="1",
        )
        time.sleep(0.1 + 0.13 * attempt)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert (proc.returncode, attempt) == (0, attempt), err
        assert "Traceback" not in err, err
        assert "cannot schedule new futures after shutdown" not in err, err
        assert " ERROR " not in err, err


@pytest.mark.parametrize(
    ("name", "level", "message", "shown"),
    [
        (
            "apscheduler.scheduler",
            logging.WARNING,
            'Execution of job "x" skipped: maximum number of running instances reached (1)',
            False,
        ),
        (
            "apscheduler.executors.default",
            logging.WARNING,
            'Run time of job "x" was missed by 0:00:01',
            False,
        ),
        (
            "apscheduler.scheduler",
            logging.ERROR,
            'Error submitting job "x" to executor "default"',
            True,
        ),
        ("tongban.server", logging.WARNING, "was missed by nobody", True),
    ],
)
def test_only_the_schedulers_expected_skips_are_left_out(
    name: str, level: int, message: str, shown: bool
) -> None:
    record = logging.LogRecord(name, level, __file__, 1, message, None, None)
    assert _expected_scheduler_skips(record) is shown
