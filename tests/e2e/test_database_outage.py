"""A node whose PostgreSQL goes away says it is unavailable, not broken, and comes back by itself.

The test runs a PostgreSQL server of its own (tests/pg_instance.py) and stops and starts it
under a running node.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.harness import Backend, Cluster, citizen_id, delivered, start_cluster, wait_until
from tests.pg_instance import PostgresInstance
from tongban.client.errors import RequestRefused
from tongban.client.hall import Applicant, SubmitReceipt
from tongban.server.grpc.status import DATABASE_UNREACHABLE

ODA = ("HB-ODA-01", "异地办理营业执照变更登记")
SENDER, RECEIVER = "420700", "420100"


@pytest.fixture
def postgres() -> Iterator[PostgresInstance]:
    pg = PostgresInstance()
    pg.start()
    yield pg
    pg.remove()


@pytest.fixture
def pg_cluster(tmp_path: Path, postgres: PostgresInstance) -> Iterator[Cluster]:
    def database(node_id: str) -> str:
        if node_id == SENDER:
            return postgres.url
        return f"sqlite:///{tmp_path / 'fed' / node_id / 'var' / 'metadata.db'}"

    cluster = start_cluster(
        tmp_path,
        (SENDER, RECEIVER),
        backend=Backend(database=database),
        overrides={"node": {"health_probe_seconds": 0.2}},
    )
    yield cluster
    cluster.close()


def _health(cluster: Cluster) -> int:
    with cluster.node_channel(RECEIVER, SENDER) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return int(stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status)


def _submit(cluster: Cluster, packet_id: str, *, retries: int) -> SubmitReceipt:
    return cluster.hall(SENDER).submit(
        matter=ODA,
        to=[RECEIVER],
        applicant=Applicant("张三", "citizen", citizen_id()),
        form={"n": packet_id},
        packet_id=packet_id,
        retries=retries,
    )


def test_database_outage_is_unavailable_not_serving_and_the_sdk_retry_gets_through(
    pg_cluster: Cluster, postgres: PostgresInstance, caplog: pytest.LogCaptureFixture
) -> None:
    cluster = pg_cluster
    before = _submit(cluster, str(uuid.uuid4()), retries=0)
    wait_until("the first packet's delivery", delivered(cluster.hall(SENDER), before.packet_id))
    assert _health(cluster) == health_pb2.HealthCheckResponse.SERVING

    postgres.stop()
    refused_id = str(uuid.uuid4())
    with pytest.raises(RequestRefused) as refused:
        _submit(cluster, refused_id, retries=0)
    assert refused.value.status == grpc.StatusCode.UNAVAILABLE
    assert refused.value.message == DATABASE_UNREACHABLE
    wait_until(
        "health to say NOT_SERVING",
        lambda: _health(cluster) == health_pb2.HealthCheckResponse.NOT_SERVING,
        timeout=10,
    )
    # The operator's log says what the database driver said.
    assert any(
        "database-unavailable" in r.getMessage()
        and "metadata database is unreachable" in r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING
    )

    # A submit during the outage, retried by the SDK with its backoff until the database is back.
    retried_id = str(uuid.uuid4())
    outcome: list[SubmitReceipt | BaseException] = []

    def submit_through_the_outage() -> None:
        try:
            outcome.append(_submit(cluster, retried_id, retries=12))
        except BaseException as exc:
            outcome.append(exc)

    refusals_before = _unavailable_refusals(caplog)
    worker = threading.Thread(target=submit_through_the_outage)
    worker.start()
    wait_until(
        "the SDK to be refused once", lambda: _unavailable_refusals(caplog) > refusals_before
    )
    postgres.start()
    worker.join(60)
    assert len(outcome) == 1 and isinstance(outcome[0], SubmitReceipt), outcome
    assert outcome[0].packet_id == retried_id and not outcome[0].duplicate
    wait_until(
        "health to say SERVING again",
        lambda: _health(cluster) == health_pb2.HealthCheckResponse.SERVING,
        timeout=10,
    )
    wait_until("the retried packet's delivery", delivered(cluster.hall(SENDER), retried_id))
    # The refused submit stored nothing; the retried one is there once.
    out = sorted(i.packet_id for i in cluster.hall(SENDER).inbox("out"))
    assert out == sorted([before.packet_id, retried_id])
    received = sorted(i.packet_id for i in cluster.hall(RECEIVER).inbox("in"))
    assert received == sorted([before.packet_id, retried_id])


def _unavailable_refusals(caplog: pytest.LogCaptureFixture) -> int:
    return sum(
        1
        for r in caplog.records
        if r.getMessage().startswith("refused") and DATABASE_UNREACHABLE in r.getMessage()
    )
