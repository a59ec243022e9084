"""The gRPC health status follows the node's storage: NOT_SERVING while it cannot be reached.

A load balancer that checks ``grpc.health.v1`` stops sending calls to a node whose database
or object store is down, and sends them again once both answer. Graceful shutdown has the
last word: once the servicer is shutting down, the probe changes nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from grpc_health.v1 import health, health_pb2

__all__ = ["HealthProbe"]

_log = logging.getLogger("tongban.server")


class HealthProbe:
    """Asks ``problem`` every ``interval`` seconds and sets the services' health from it."""

    def __init__(
        self,
        servicer: health.HealthServicer,
        services: Sequence[str],
        problem: Callable[[], str | None],
        *,
        interval: float,
    ) -> None:
        self._servicer = servicer
        self._services = tuple(services)
        self._problem = problem
        self._interval = interval
        self._stopped = threading.Event()
        self._serving: bool | None = None
        self._thread = threading.Thread(target=self._loop, name="health-probe", daemon=True)

    @property
    def serving(self) -> bool:
        """Whether the last probe found the storage answering (True before the first)."""
        return self._serving is not False

    def start(self) -> None:
        self.probe()
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()

    def probe(self) -> None:
        """Probe once and set the health of every service from the answer."""
        try:
            problem = self._problem()
        except Exception as exc:  # a probe that fails is itself a reason not to serve
            problem = f"the storage probe failed: {type(exc).__name__}: {exc}"
        serving = problem is None
        if serving == self._serving:
            return
        if serving and self._serving is not None:
            _log.info("storage answers again: serving")
        elif not serving:
            _log.warning("storage unreachable, health is NOT_SERVING: %s", problem)
        self._serving = serving
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in self._services:
            self._servicer.set(name, status)

    def _loop(self) -> None:
        while not self._stopped.wait(self._interval):
            self.probe()
