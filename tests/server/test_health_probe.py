"""The health status follows the storage probe, and graceful shutdown has the last word."""

from __future__ import annotations

from grpc_health.v1 import health, health_pb2

from tongban.server.grpc.health_probe import HealthProbe

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _status(servicer: health.HealthServicer, name: str) -> int:
    request = health_pb2.HealthCheckRequest(service=name)
    return int(servicer.Check(request, None).status)


def test_health_goes_not_serving_while_storage_is_unreachable_and_back() -> None:
    servicer = health.HealthServicer()
    answers: list[str | None] = [None, "database: refused", "database: refused", None]
    probe = HealthProbe(servicer, ("", "svc"), lambda: answers.pop(0), interval=60)
    probe.probe()
    assert _status(servicer, "") == SERVING and _status(servicer, "svc") == SERVING
    probe.probe()
    assert _status(servicer, "") == NOT_SERVING and _status(servicer, "svc") == NOT_SERVING
    assert not probe.serving
    probe.probe()
    assert _status(servicer, "") == NOT_SERVING
    probe.probe()
    assert _status(servicer, "") == SERVING and probe.serving


def test_a_probe_that_raises_is_not_serving() -> None:
    servicer = health.HealthServicer()

    def broken() -> str | None:
        raise RuntimeError("boom")

    HealthProbe(servicer, ("",), broken, interval=60).probe()
    assert _status(servicer, "") == NOT_SERVING


def test_graceful_shutdown_is_not_undone_by_a_probe() -> None:
    servicer = health.HealthServicer()
    answers: list[str | None] = ["object store: refused", None]
    probe = HealthProbe(servicer, ("",), lambda: answers.pop(0), interval=60)
    probe.probe()
    servicer.enter_graceful_shutdown()
    probe.probe()  # the store answers again, but the node is going away
    assert probe.serving
    assert _status(servicer, "") == NOT_SERVING
