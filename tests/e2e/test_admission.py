"""Stalled callers cannot starve a node: lanes with caps per caller, and the idle timeout.

The nodes here run with small lanes, so that the stalled streams outnumber every thread of
the server: without admission they would hold all of them and nothing else would be served.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.harness import (
    Cluster,
    ForgedFile,
    citizen_id,
    delivered,
    forge_delivery,
    snapshot,
    wait_until,
)
from tongban.client.hall import Applicant, Material
from tongban.proto import hall_pb2, hall_pb2_grpc, relay_pb2_grpc, seal_pb2, seal_pb2_grpc

ODA = ("HB-ODA-01", "异地办理营业执照变更登记")
SERVING = health_pb2.HealthCheckResponse.SERVING

# Main port: 6 + 6 + 2 + 2 + 1 calls + 3 spare = 20 threads; public port: 3 + 2 + 1 + 3 = 9.
SMALL_LANES = {
    "hall_calls": 6,
    "hall_calls_per_caller": 4,
    "peer_calls": 6,
    "peer_calls_per_caller": 4,
    "admin_calls": 2,
    "admin_calls_per_caller": 1,
    "health_calls": 2,
    "health_calls_per_caller": 1,
    "ops_calls": 1,
    "ops_calls_per_caller": 1,
    "verify_calls": 3,
    "verify_calls_per_caller": 2,
    "spare_threads": 3,
}


def _mtls_channel(cluster: Cluster, node: str, profile: Path) -> grpc.Channel:
    creds = grpc.ssl_channel_credentials(
        (profile / "root.pem").read_bytes(),
        (profile / "key.pem").read_bytes(),
        (profile / "cert.pem").read_bytes(),
    )
    return grpc.secure_channel(
        cluster.directory().node(node).endpoint,
        creds,
        options=[("grpc.ssl_target_name_override", f"node-{node}.tongban")],
    )


def _hall_channel(cluster: Cluster, node: str, n: int) -> grpc.Channel:
    return _mtls_channel(cluster, node, cluster.fed / node / "halls" / f"{node}-hall-{n}")


def _public_channel(cluster: Cluster, node: str, endpoint: str | None = None) -> grpc.Channel:
    root = (cluster.fed / "public" / "root.pem").read_bytes()
    return grpc.secure_channel(
        endpoint or cluster.directory().node(node).public_endpoint,
        grpc.ssl_channel_credentials(root),
        options=[("grpc.ssl_target_name_override", f"node-{node}.tongban")],
    )


def _header(to: str = "420100") -> hall_pb2.SubmitHeader:
    return hall_pb2.SubmitHeader(
        packet_id=str(uuid.uuid4()),
        kind=hall_pb2.PACKET_KIND_APPLICATION,
        mode=hall_pb2.HANDLING_MODE_ON_BEHALF,
        matter_code=ODA[0],
        matter_name=ODA[1],
        recipients=[hall_pb2.Recipient(node_id=to)],
        applicant=hall_pb2.Applicant(
            name="张三", id_number=citizen_id(), id_type=hall_pb2.APPLICANT_ID_TYPE_CITIZEN
        ),
        form_json=json.dumps({"k": "v"}).encode(),
    )


@dataclass
class Stalls:
    """Calls whose request streams send their first messages and then wait."""

    release: threading.Event = field(default_factory=threading.Event)
    calls: list[grpc.Future] = field(default_factory=list)  # type: ignore[type-arg]

    def open(self, call: Callable[..., grpc.Future], first: list[Any]) -> grpc.Future:  # type: ignore[type-arg]
        def requests() -> Iterator[Any]:
            yield from first
            self.release.wait()

        future = call.future(requests(), timeout=120)  # type: ignore[attr-defined]
        self.calls.append(future)
        return future

    def ended(self) -> list[grpc.Future]:  # type: ignore[type-arg]
        return [f for f in self.calls if f.done()]

    def refusals(self) -> list[tuple[grpc.StatusCode, str]]:
        return [(f.exception().code(), f.exception().details()) for f in self.ended()]

    def cancel(self) -> None:
        for f in self.calls:
            f.cancel()
        self.release.set()


def _timed(what: str, call: Callable[[], Any], within: float) -> Any:
    start = time.monotonic()
    result = call()
    took = time.monotonic() - start
    assert took < within, f"{what} took {took:.2f} s"
    return result


def test_stalled_hall_streams_leave_other_halls_health_and_peers_served(make_cluster) -> None:  # type: ignore[no-untyped-def]
    cluster: Cluster = make_cluster(overrides={"admission": SMALL_LANES})
    node = cluster.nodes["420700"]
    threads = node.admission.threads(SMALL_LANES["spare_threads"])
    assert threads == 20 < 40  # without admission, 40 stalled streams hold every thread
    attacker = hall_pb2_grpc.HallServiceStub(_hall_channel(cluster, "420700", 1))
    stalls = Stalls()
    try:
        start = time.monotonic()
        for _ in range(40):
            stalls.open(attacker.Submit, [hall_pb2.SubmitRequest(header=_header())])
        # Every call over the hall's share is refused at once, without being queued.
        wait_until("36 refusals", lambda: len(stalls.ended()) == 36, timeout=10)
        assert time.monotonic() - start < 10
        assert set(stalls.refusals()) == {
            (
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "busy: limit 4 concurrent hall calls per caller (hall_calls_per_caller)",
            )
        }
        wait_until("4 admitted", lambda: node.admission.held("hall") == 4)

        # Another hall of the node.
        other = cluster.hall("420700", 2)
        _timed("another hall's inbox", lambda: other.inbox("out"), within=5)
        sent = _timed(
            "another hall's submit",
            lambda: other.submit(
                matter=ODA,
                to=["420100"],
                applicant=Applicant("李四", "citizen", citizen_id()),
                form={"n": 1},
            ),
            within=5,
        )
        # The health check, even with the stalling hall's own certificate.
        health = health_pb2_grpc.HealthStub(_hall_channel(cluster, "420700", 1))
        assert (
            _timed("health", lambda: health.Check(health_pb2.HealthCheckRequest(), timeout=2), 2.5)
        ).status == SERVING
        # A peer node delivering to this node, by its own dispatcher.
        wuhan = cluster.hall("420100")
        incoming = wuhan.submit(
            matter=ODA,
            to=["420700"],
            applicant=Applicant("王五", "citizen", citizen_id()),
            form={"n": 2},
        )
        _timed(
            "delivery from 420100",
            lambda: wait_until("in", delivered(wuhan, incoming.packet_id)),
            10,
        )
        # ... and this node's own packet reached its peer.
        wait_until("out", delivered(other, sent.packet_id), timeout=10)

        # The other hall fills what the hall lane has left; the lane cap stops it there.
        rival = hall_pb2_grpc.HallServiceStub(_hall_channel(cluster, "420700", 2))
        held = Stalls()
        for _ in range(3):
            held.open(rival.Submit, [hall_pb2.SubmitRequest(header=_header())])
        wait_until("one more refusal", lambda: len(held.ended()) == 1, timeout=10)
        assert held.refusals() == [
            (grpc.StatusCode.RESOURCE_EXHAUSTED, "busy: limit 6 concurrent hall calls (hall_calls)")
        ]
        assert node.admission.held("hall") == 6
        # A full hall lane still leaves health checks and peers their own threads.
        assert (
            _timed("health", lambda: health.Check(health_pb2.HealthCheckRequest(), timeout=2), 2.5)
        ).status == SERVING
        again = wuhan.submit(
            matter=ODA,
            to=["420700"],
            applicant=Applicant("赵六", "citizen", citizen_id()),
            form={"n": 3},
        )
        _timed(
            "delivery from 420100", lambda: wait_until("in", delivered(wuhan, again.packet_id)), 10
        )
        held.cancel()
    finally:
        stalls.cancel()
    # A cancelled call gives its place back.
    wait_until("lane empty", lambda: node.admission.held("hall") == 0)


def _bind_ipv6_loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_stalled_anonymous_verify_streams_leave_the_public_port_served(make_cluster) -> None:  # type: ignore[no-untyped-def]
    if not _bind_ipv6_loopback():
        pytest.skip("needs the IPv6 loopback ::1 for a second anonymous address")
    cluster: Cluster = make_cluster(
        ("420700", "420100"), start=False, overrides={"admission": SMALL_LANES}
    )
    port = cluster.config("420700").public_listen.rpartition(":")[2]
    # Listen on both stacks: callers via 127.0.0.1 and via ::1 are two addresses.
    cluster.overrides["node"] = {"public_listen": f"[::]:{port}"}
    node = cluster.start("420700")
    threads = node.public_admission.threads(SMALL_LANES["spare_threads"])
    assert threads == 9 < 10
    attacker = seal_pb2_grpc.VerifyServiceStub(_public_channel(cluster, "420700"))
    stalls = Stalls()
    try:
        for _ in range(10):
            stalls.open(
                attacker.Verify,
                [seal_pb2.VerifyRequest(header=seal_pb2.VerifyHeader(document_name="x.pdf"))],
            )
        wait_until("8 refusals", lambda: len(stalls.ended()) == 8, timeout=10)
        assert set(stalls.refusals()) == {
            (
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "busy: limit 2 concurrent verify calls per caller (verify_calls_per_caller)",
            )
        }
        wait_until("2 admitted", lambda: node.public_admission.held("verify") == 2)
        # Health on the public port, from the very address that stalls.
        health = health_pb2_grpc.HealthStub(_public_channel(cluster, "420700"))
        assert (
            _timed("health", lambda: health.Check(health_pb2.HealthCheckRequest(), timeout=2), 2.5)
        ).status == SERVING
        # Another anonymous caller.
        other = seal_pb2_grpc.VerifyServiceStub(_public_channel(cluster, "420700", f"[::1]:{port}"))
        directory = _timed(
            "another address",
            lambda: other.GetDirectory(seal_pb2.PublishedRequest(), timeout=5),
            within=5,
        )
        assert directory.payload_type
        report = _timed(
            "another address verifies",
            lambda: other.Verify(
                iter(
                    [
                        seal_pb2.VerifyRequest(header=seal_pb2.VerifyHeader(document_name="a")),
                        seal_pb2.VerifyRequest(document_data=b"not a sealed document"),
                    ]
                ),
                timeout=5,
            ),
            within=5,
        )
        assert report.indication in {"INVALID", "INDETERMINATE"}
        # The second address takes what the lane has left; the lane cap stops it there.
        held = Stalls()
        for _ in range(2):
            held.open(
                other.Verify,
                [seal_pb2.VerifyRequest(header=seal_pb2.VerifyHeader(document_name="y.pdf"))],
            )
        wait_until("one more refusal", lambda: len(held.ended()) == 1, timeout=10)
        assert held.refusals() == [
            (
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "busy: limit 3 concurrent verify calls (verify_calls)",
            )
        ]
        assert (
            _timed("health", lambda: health.Check(health_pb2.HealthCheckRequest(), timeout=2), 2.5)
        ).status == SERVING
        held.cancel()
        # The mutual-TLS port is a server of its own.
        mtls_health = health_pb2_grpc.HealthStub(_hall_channel(cluster, "420700", 1))
        assert mtls_health.Check(health_pb2.HealthCheckRequest(), timeout=2).status == SERVING
    finally:
        stalls.cancel()
    wait_until("lane empty", lambda: node.public_admission.held("verify") == 0)


def _files_under(root: Path, prefix: str) -> list[Path]:
    return (
        [p for p in (root / prefix).rglob("*") if p.is_file()] if (root / prefix).exists() else []
    )


def test_idle_submit_is_ended_and_its_partial_blobs_removed(make_cluster) -> None:  # type: ignore[no-untyped-def]
    cluster: Cluster = make_cluster(
        ("420700", "420100"),
        overrides={"admission": {"idle_timeout_seconds": 1.0}, "limits": {"segment_size": 4096}},
    )
    node = cluster.nodes["420700"]
    before = snapshot(node)
    blobs = Path(node.config.objects)
    stub = hall_pb2_grpc.HallServiceStub(_hall_channel(cluster, "420700", 1))
    header = _header()
    stalls = Stalls()
    try:
        call = stalls.open(
            stub.Submit,
            [
                hall_pb2.SubmitRequest(header=header),
                hall_pb2.SubmitRequest(
                    file_begin=hall_pb2.FileBegin(name="scan.pdf", media_type="application/pdf")
                ),
                hall_pb2.SubmitRequest(data=b"%PDF" * 16384),
            ],
        )
        # Segments were written before the hall fell silent.
        wait_until("partial blobs", lambda: _files_under(blobs, "out"), timeout=5)
        start = time.monotonic()
        exc = call.exception(timeout=10)
        took = time.monotonic() - start
        assert (exc.code(), exc.details()) == (
            grpc.StatusCode.DEADLINE_EXCEEDED,
            "idle-timeout: no message for 1 s",
        )
        assert took < 2.5
    finally:
        stalls.cancel()
    wait_until("partial blobs removed", lambda: not _files_under(blobs, "out"), timeout=5)
    assert snapshot(node) == before
    wait_until("lane empty", lambda: node.admission.held("hall") == 0)


def test_idle_delivery_from_a_peer_is_ended_and_its_partial_blobs_removed(make_cluster) -> None:  # type: ignore[no-untyped-def]
    cluster: Cluster = make_cluster(
        ("420700", "420100"), overrides={"admission": {"idle_timeout_seconds": 1.0}}
    )
    node = cluster.nodes["420100"]
    before = snapshot(node)
    blobs = Path(node.config.objects)
    requests = forge_delivery(
        cluster,
        sender="420700",
        recipient="420100",
        files=[ForgedFile("scan.pdf", b"%PDF" * 65536)],
        segment_size=4096,
    )
    stub = relay_pb2_grpc.RelayServiceStub(cluster.node_channel("420700", "420100"))
    stalls = Stalls()
    try:
        call = stalls.open(stub.Deliver, requests[:20])  # the opening and 19 of 64 segments
        wait_until("partial blobs", lambda: _files_under(blobs, "in"), timeout=5)
        exc = call.exception(timeout=10)
        assert (exc.code(), exc.details()) == (
            grpc.StatusCode.DEADLINE_EXCEEDED,
            "idle-timeout: no message for 1 s",
        )
    finally:
        stalls.cancel()
    wait_until("partial blobs removed", lambda: not _files_under(blobs, "in"), timeout=5)
    assert snapshot(node) == before
    wait_until("lane empty", lambda: node.admission.held("peer") == 0)


def test_unary_call_whose_request_never_comes_is_ended(make_cluster) -> None:  # type: ignore[no-untyped-def]
    cluster: Cluster = make_cluster(
        ("420700", "420100"), overrides={"admission": {"idle_timeout_seconds": 1.0}}
    )
    channel = _hall_channel(cluster, "420700", 1)
    # The same method on the wire, but the request message is never sent.
    list_inbox = channel.stream_unary(
        "/tongban.relay.v1.HallService/ListInbox",
        request_serializer=hall_pb2.InboxRequest.SerializeToString,
        response_deserializer=hall_pb2.InboxResponse.FromString,
    )
    stalls = Stalls()
    try:
        call = stalls.open(list_inbox, [])
        exc = call.exception(timeout=10)
        assert (exc.code(), exc.details()) == (
            grpc.StatusCode.DEADLINE_EXCEEDED,
            "idle-timeout: no message for 1 s",
        )
    finally:
        stalls.cancel()
    wait_until("lane empty", lambda: cluster.nodes["420700"].admission.held("hall") == 0)


def test_anonymous_verification_stops_reading_at_its_size_limit(make_cluster) -> None:  # type: ignore[no-untyped-def]
    cluster: Cluster = make_cluster(
        ("420700", "420100"), overrides={"limits": {"max_anonymous_verify_bytes": 1 << 20}}
    )
    stub = seal_pb2_grpc.VerifyServiceStub(_public_channel(cluster, "420700"))
    sent = [0]

    def endless() -> Iterator[seal_pb2.VerifyRequest]:
        yield seal_pb2.VerifyRequest(header=seal_pb2.VerifyHeader(document_name="big.pdf"))
        chunk = b"\0" * (64 << 10)
        while True:
            sent[0] += 1
            yield seal_pb2.VerifyRequest(document_data=chunk)

    with pytest.raises(grpc.RpcError) as exc:
        stub.Verify(endless(), timeout=20)
    assert (exc.value.code(), exc.value.details()) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "too-large: the document exceeds what anonymous verification accepts: limit 1048576 bytes",
    )
    # An endless document ended the call: the node stopped reading once past the limit
    # (what the client sent beyond 17 chunks sat in transport buffers).
    assert 17 <= sent[0] < 1024


def test_fetch_whose_caller_stops_reading_is_ended(make_cluster) -> None:  # type: ignore[no-untyped-def]
    cluster: Cluster = make_cluster(
        ("420700", "420100"), overrides={"admission": {"idle_timeout_seconds": 1.0}}
    )
    hall = cluster.hall("420700")
    size = 48 << 20  # far more than flow control lets the node send unread
    sent = hall.submit(
        matter=ODA,
        to=["420100"],
        applicant=Applicant("张三", "citizen", citizen_id()),
        form={},
        files=[
            Material(
                "scan.bin",
                None,
                "application/octet-stream",
                lambda: (b"\x5a" * (1 << 20) for _ in range(48)),
                size,
            )
        ],
    )
    stub = hall_pb2_grpc.HallServiceStub(_hall_channel(cluster, "420700", 1))
    responses = stub.Fetch(hall_pb2.FetchRequest(packet_id=sent.packet_id), timeout=30)
    assert next(responses).HasField("opening")
    node = cluster.nodes["420700"]
    wait_until("the fetch waits on its caller", lambda: node.admission.held("hall") == 1)
    # The caller takes nothing: the node's send waits, then the call ends.
    wait_until("the fetch ended", lambda: node.admission.held("hall") == 0, timeout=5)
    with pytest.raises(grpc.RpcError) as exc:
        for _ in responses:
            pass
    assert (exc.value.code(), exc.value.details()) == (
        grpc.StatusCode.DEADLINE_EXCEEDED,
        "idle-timeout: no message for 1 s",
    )
