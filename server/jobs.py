"""Scheduled jobs of a node (APScheduler, with the job store in the node's SQL database).

Job functions are module-level so the persistent store can name them; each finds its node
in a registry filled when the node starts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, timedelta
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor as JobExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine

from tongban.keys.clock import utcnow

__all__ = [
    "NodeJobs",
    "run_delivery_retry",
    "run_directory_refresh",
    "run_orphan_sweep",
    "run_supervision",
]

_log = logging.getLogger("tongban.server.jobs")
_registry: dict[str, dict[str, Callable[[], object]]] = {}
_registry_lock = threading.Lock()


class _JobPool(JobExecutor):  # type: ignore[misc]  # APScheduler ships no types
    """APScheduler's thread pool, which takes no job once it is shutting down.

    ``BackgroundScheduler.shutdown`` shuts the executors down while its own thread may be
    between finding a due job and submitting it; the pool then raises ``cannot schedule new
    futures after shutdown``, logged with a traceback. Here the submission and the start of
    the shutdown are ordered by a lock, and a job due after it is dropped: the node is
    stopping and runs it at its next start.
    """

    def __init__(self, max_workers: int) -> None:
        super().__init__(max_workers)
        self._closing = threading.Lock()
        self._closed = False

    def submit_job(self, job: Any, run_times: Any) -> None:
        with self._closing:
            if not self._closed:
                super().submit_job(job, run_times)

    def shutdown(self, wait: bool = True) -> None:
        with self._closing:
            self._closed = True
        super().shutdown(wait)


def _run(node_id: str, job: str) -> None:
    with _registry_lock:
        fn = _registry.get(node_id, {}).get(job)
    if fn is None:
        return
    try:
        fn()
    except Exception:
        _log.exception("job %s of node %s failed", job, node_id)


def run_delivery_retry(node_id: str) -> None:
    """Retry every outbox item whose backoff has run out."""
    _run(node_id, "delivery")


def run_directory_refresh(node_id: str) -> None:
    """Take a newer signed directory if one was published."""
    _run(node_id, "directory")


def run_orphan_sweep(node_id: str) -> None:
    """Remove blobs that no committed packet refers to (left by crashes and lost races)."""
    _run(node_id, "orphans")


def run_supervision(node_id: str) -> None:
    """Issue the cards, deemed acceptances and default approvals that fell due."""
    _run(node_id, "supervision")


class NodeJobs:
    def __init__(self, node_id: str, engine: Engine) -> None:
        self._node_id = node_id
        self._scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=engine)},
            executors={"default": _JobPool(2)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
            timezone=UTC,
        )

    def start(
        self,
        *,
        delivery: Callable[[], object],
        delivery_seconds: float,
        directory: Callable[[], object],
        directory_seconds: float,
        orphans: Callable[[], object],
        orphan_seconds: float,
        supervision: Callable[[], object] | None = None,
        supervision_seconds: float = 300.0,
    ) -> None:
        with _registry_lock:
            _registry[self._node_id] = {
                "delivery": delivery,
                "directory": directory,
                "orphans": orphans,
            }
            if supervision is not None:
                _registry[self._node_id]["supervision"] = supervision
        s = self._scheduler
        s.add_job(
            run_delivery_retry,
            "interval",
            seconds=delivery_seconds,
            args=[self._node_id],
            id="delivery-retry",
            replace_existing=True,
        )
        s.add_job(
            run_directory_refresh,
            "interval",
            seconds=directory_seconds,
            args=[self._node_id],
            id="directory-refresh",
            replace_existing=True,
        )
        s.add_job(
            run_orphan_sweep,
            "interval",
            seconds=orphan_seconds,
            args=[self._node_id],
            id="orphan-sweep",
            replace_existing=True,
            # Soon after start too: a crash is exactly what leaves orphans behind.
            next_run_time=utcnow() + timedelta(seconds=5),
        )
        if supervision is not None and supervision_seconds > 0:
            s.add_job(
                run_supervision,
                "interval",
                seconds=supervision_seconds,
                args=[self._node_id],
                id="supervision",
                replace_existing=True,
                # At start as well: what fell due while the node was down is issued now.
                next_run_time=utcnow() + timedelta(seconds=2),
            )
        s.start()

    def stop(self) -> None:
        with _registry_lock:
            _registry.pop(self._node_id, None)
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
