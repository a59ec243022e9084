"""An attacker holding node 420700's files tries to act as node 420100 against real nodes.

Three CAs are tried: 420700's seal CA (online on that node), 420700's identity CA (offline,
but an attacker with all of the node's files may hold it), and 420700's seal CA certificate
as it was issued before the hierarchy of ADR 0004 — a migrated federation still has it,
root-issued and valid for years, with the same online key. The TLS handshake refuses the
first two (wrong usage, names outside the CA's constraints); only the node's own check that
the directory's identity CA issued the certificate refuses the third, with the reason.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from tests.harness import Cluster, citizen_id, deliver, forge_delivery, snapshot
from tests.legacy_pki import legacy_ca, legacy_leaf
from tongban.client.hall import Applicant
from tongban.keys.clock import utcnow
from tongban.keys.pki import (
    Role,
    certificate_pem,
    load_certificate,
    load_private_key,
    private_key_pem,
)
from tongban.proto import (
    hall_pb2,
    hall_pb2_grpc,
    relay_pb2,
    relay_pb2_grpc,
    seal_pb2,
    seal_pb2_grpc,
)

A, B, C = "420700", "420100", "440300"
ODA = ("HB-ODA-01", "异地办理营业执照变更登记")
CAS = ["seal-ca", "identity-ca", "pre-hierarchy-seal-ca"]

pytestmark = pytest.mark.slow


def _key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = load_private_key(path.read_bytes())
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def attacker_ca(
    cluster: Cluster, which: str
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A CA whose key an attacker holding node A's files holds."""
    if which == "seal-ca":
        folder = cluster.fed / A / "seals"
        return _key(folder / "ca-key.pem"), load_certificate((folder / "ca.pem").read_bytes())
    if which == "identity-ca":
        folder = cluster.fed / "offline" / A
        return _key(folder / "identity-ca-key.pem"), load_certificate(
            (folder / "identity-ca.pem").read_bytes()
        )
    root_key = _key(cluster.fed / "root" / "root-key.pem")
    root = load_certificate((cluster.fed / "root" / "root.pem").read_bytes())
    return legacy_ca(
        root_key, root, A, utcnow(), key=_key(cluster.fed / A / "seals" / "ca-key.pem")
    )


def forged(
    cluster: Cluster, which: str, role: Role, name: str
) -> tuple[bytes, bytes, x509.Certificate]:
    """Key PEM, chain PEM and certificate of ``role`` ``name`` of node B, minted by ``which``."""
    ca_key, ca = attacker_ca(cluster, which)
    key, cert = legacy_leaf(
        ca_key,
        ca,
        role=role,
        node_id=B,
        name=name,
        now=utcnow(),
        dns_names=(f"{name}.{role.value}.node-{B}.tongban",) if role is not Role.NODE else (),
    )
    return private_key_pem(key), certificate_pem(cert) + certificate_pem(ca), cert


def _channel(cluster: Cluster, to_node: str, key: bytes, chain: bytes) -> grpc.Channel:
    root = (cluster.fed / "public" / "root.pem").read_bytes()
    return grpc.secure_channel(
        cluster.directory().node(to_node).endpoint,
        grpc.ssl_channel_credentials(root, key, chain),
        options=[("grpc.ssl_target_name_override", f"node-{to_node}.tongban")],
    )


def _expected(which: str, cert: x509.Certificate, who: str) -> tuple[grpc.StatusCode, str]:
    if which != "pre-hierarchy-seal-ca":
        return grpc.StatusCode.UNAVAILABLE, ""  # the TLS handshake refuses: no message to read
    return grpc.StatusCode.UNAUTHENTICATED, (
        f"unauthenticated: untrusted-certificate: the certificate of {who} was not issued by the "
        f"identity CA the directory lists for node {B} (its issuer: {cert.issuer.rfc4514_string()})"
    )


def _answer(error: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    code = error.code()
    return code, error.details() if code != grpc.StatusCode.UNAVAILABLE else ""


def _submit_to_b(cluster: Cluster) -> str:
    receipt = cluster.hall(A).submit(
        matter=ODA, to=[B], applicant=Applicant("张三", "citizen", citizen_id()), form={"k": "v"}
    )
    return receipt.packet_id


@pytest.mark.parametrize("which", CAS)
def test_a_forged_hall_of_b_reads_nothing(cluster: Cluster, which: str) -> None:
    packet = _submit_to_b(cluster)
    hall_b = cluster.hall(B)
    deadline = time.monotonic() + 15
    while not hall_b.inbox("in") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [i.packet_id for i in hall_b.inbox("in")] == [packet]
    before = snapshot(cluster.nodes[B])
    key, chain, cert = forged(cluster, which, Role.HALL, f"{B}-hall-1")
    with _channel(cluster, B, key, chain) as ch, pytest.raises(grpc.RpcError) as exc:
        hall_pb2_grpc.HallServiceStub(ch).ListInbox(hall_pb2.InboxRequest(), timeout=10)
    assert _answer(exc.value) == _expected(which, cert, f"hall {B}-hall-1 of node {B}")
    assert snapshot(cluster.nodes[B]) == before


@pytest.mark.parametrize("which", CAS)
def test_a_forged_admin_of_b_registers_no_seal(cluster: Cluster, which: str) -> None:
    before = snapshot(cluster.nodes[B])
    key, chain, cert = forged(cluster, which, Role.ADMIN, f"{B}-admin")
    now = utcnow()
    request = seal_pb2.RegisterSealRequest(
        seal_id="forged-seal",
        name="武汉市行政审批局行政审批专用章",
        org_uscc="11420100MB0000123A",
        org_name="武汉市行政审批局",
        not_before=now.isoformat(),
        not_after=(now + timedelta(days=30)).isoformat(),
    )
    with _channel(cluster, B, key, chain) as ch, pytest.raises(grpc.RpcError) as exc:
        seal_pb2_grpc.SealServiceStub(ch).RegisterSeal(request, timeout=10)
    assert _answer(exc.value) == _expected(which, cert, f"admin {B}-admin of node {B}")
    assert snapshot(cluster.nodes[B]) == before


@pytest.mark.parametrize("which", CAS)
def test_a_forged_node_b_delivers_nothing_to_c(cluster: Cluster, which: str) -> None:
    # Even a packet that node B really signed is refused from a connection not really B's.
    requests = forge_delivery(cluster, sender=B, recipient=C)
    before = snapshot(cluster.nodes[C])
    key, chain, cert = forged(cluster, which, Role.NODE, B)
    with _channel(cluster, C, key, chain) as ch, pytest.raises(grpc.RpcError) as exc:
        relay_pb2_grpc.RelayServiceStub(ch).Deliver(iter(requests), timeout=10)
    assert _answer(exc.value) == _expected(which, cert, f"node {B} of node {B}")
    assert snapshot(cluster.nodes[C]) == before
    # The real node B with the same packet is accepted: the refusal was the identity alone.
    assert deliver(cluster, requests, as_node=B, to_node=C).receipt.payload


class _RecordingRelay(relay_pb2_grpc.RelayServiceServicer):
    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    def _count(self, context: grpc.ServicerContext) -> None:
        with self.lock:
            self.calls += 1
        context.abort(grpc.StatusCode.UNAVAILABLE, "a fake node")

    def Deliver(
        self, request_iterator: Iterator[relay_pb2.DeliverRequest], context: grpc.ServicerContext
    ) -> relay_pb2.DeliverResponse:
        self._count(context)
        raise AssertionError("unreachable")

    def DeliverBatch(
        self, request: relay_pb2.DeliverBatchRequest, context: grpc.ServicerContext
    ) -> relay_pb2.DeliverBatchResponse:
        self._count(context)
        raise AssertionError("unreachable")


@pytest.mark.parametrize("which", CAS)
def test_node_a_sends_nothing_to_a_server_posing_as_b(cluster: Cluster, which: str) -> None:
    endpoint = cluster.directory().node(B).endpoint
    cluster.stop(B)
    key, chain, _ = forged(cluster, which, Role.NODE, B)
    fake = _RecordingRelay()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    relay_pb2_grpc.add_RelayServiceServicer_to_server(fake, server)
    assert server.add_secure_port(endpoint, grpc.ssl_server_credentials([(key, chain)])) != 0
    server.start()
    try:
        packet = _submit_to_b(cluster)
        # Several delivery rounds (poll 0.2 s, backoff up to 1 s) against the impostor.
        time.sleep(4)
        assert fake.calls == 0
        outgoing = [i for i in cluster.hall(A).inbox("out") if i.packet_id == packet]
        assert [dict(i.deliveries) for i in outgoing] == [{B: "pending"}]
    finally:
        server.stop(0)
