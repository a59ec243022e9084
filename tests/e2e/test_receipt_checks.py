"""The sending node trusts a peer's receipt only when it is signed by the peer and names the
packet it sent; anything else leaves the delivery pending and retried, with the reason."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import select

from tests.harness import Cluster, citizen_id, start_cluster, wait_until
from tongban.client.hall import Applicant, HallClient, Material
from tongban.keys.envelope import Envelope, sign_envelope
from tongban.keys.signing import PrivateKeySigner, Signer
from tongban.proto import relay_pb2, relay_pb2_grpc
from tongban.server.delivery import envelope_from_proto, envelope_to_proto
from tongban.server.statements import RECEIPT_TYPE, PacketStatement, Receipt
from tongban.storage.sql import DeliveryRow, OutboxRow

SENDER, PEER, OTHER = "420700", "420100", "440300"
ODA = ("HB-ODA-01", "异地办理营业执照变更登记")


@dataclass(frozen=True)
class ReceiptFacts:
    """What a receipt says, before it is signed."""

    packet_id: uuid.UUID
    receiver: str
    statement_sha256: str


# How a dishonest peer answers: from the honest facts and signer, the receipt it returns.
Answer = Callable[[ReceiptFacts, Signer], Envelope]


def _signed(facts: ReceiptFacts, signer: Signer, payload_type: str = RECEIPT_TYPE) -> Envelope:
    receipt = Receipt(
        packet_id=facts.packet_id,
        receiver=facts.receiver,
        statement_sha256=facts.statement_sha256,
        stored_digest="0" * 64,
        received_at=datetime.now(UTC),
    )
    return sign_envelope(receipt.to_payload(), payload_type, [signer])


def _honest(facts: ReceiptFacts, signer: Signer) -> Envelope:
    return _signed(facts, signer)


def _forged_signature(facts: ReceiptFacts, signer: Signer) -> Envelope:
    # Signed by a key the peer does not hold, under the hint of the peer's real key.
    stranger = PrivateKeySigner(ed25519.Ed25519PrivateKey.generate())
    env = _signed(facts, stranger)
    return replace(env, signatures=(replace(env.signatures[0], key_id=signer.key_id),))


def _unsigned(facts: ReceiptFacts, signer: Signer) -> Envelope:
    return replace(_signed(facts, signer), signatures=())


def _other_statement(facts: ReceiptFacts, signer: Signer) -> Envelope:
    other = hashlib.sha256(b"another statement").hexdigest()
    return _signed(replace(facts, statement_sha256=other), signer)


def _other_packet(facts: ReceiptFacts, signer: Signer) -> Envelope:
    return _signed(replace(facts, packet_id=uuid.uuid4()), signer)


def _other_receiver(facts: ReceiptFacts, signer: Signer) -> Envelope:
    return _signed(replace(facts, receiver=OTHER), signer)


def _wrong_type(facts: ReceiptFacts, signer: Signer) -> Envelope:
    return _signed(facts, signer, payload_type="application/vnd.tongban.event-ack.v1+json")


class ReceiptForgingPeer(relay_pb2_grpc.RelayServiceServicer):
    """Stands in for the peer node: takes every delivery and answers with ``answer``."""

    def __init__(self, signer: Signer, answer: Answer) -> None:
        self._signer = signer
        self._answer = answer
        self.deliveries = 0

    def _receipt(self, opening: relay_pb2.PacketOpening) -> relay_pb2.DeliverOutcome:
        statement = envelope_from_proto(opening.statement)
        facts = ReceiptFacts(
            PacketStatement.from_payload(statement.payload).packet_id,
            PEER,
            hashlib.sha256(statement.payload).hexdigest(),
        )
        self.deliveries += 1
        return relay_pb2.DeliverOutcome(
            receipt=envelope_to_proto(self._answer(facts, self._signer))
        )

    def Deliver(
        self, request_iterator: Iterator[relay_pb2.DeliverRequest], context: grpc.ServicerContext
    ) -> relay_pb2.DeliverResponse:
        requests = list(request_iterator)
        outcome = self._receipt(requests[0].opening)
        return relay_pb2.DeliverResponse(receipt=outcome.receipt)

    def DeliverBatch(
        self, request: relay_pb2.DeliverBatchRequest, context: grpc.ServicerContext
    ) -> relay_pb2.DeliverBatchResponse:
        return relay_pb2.DeliverBatchResponse(outcomes=[self._receipt(p) for p in request.packets])


@dataclass
class SendingNode:
    """The real sending node, its hall, and the fake peer it delivers to."""

    cluster: Cluster
    peer: ReceiptForgingPeer
    hall: HallClient

    def submit(self, files: list[Material]) -> str:
        applicant = Applicant("张三", "citizen", citizen_id())
        receipt = self.hall.submit(
            matter=ODA, to=[PEER], applicant=applicant, form={"k": "v"}, files=files
        )
        return receipt.packet_id

    def rows(self, packet_id: str) -> tuple[OutboxRow, DeliveryRow]:
        with self.cluster.nodes[SENDER].runtime.metadata.read() as session:
            outbox = session.scalars(
                select(OutboxRow).where(OutboxRow.kind == "packet", OutboxRow.ref == packet_id)
            ).one()
            delivery = session.get(DeliveryRow, (packet_id, PEER))
            assert delivery is not None
            session.expunge_all()
        return outbox, delivery

    def settled(self, packet_id: str) -> Callable[[], tuple[OutboxRow, DeliveryRow] | None]:
        """A probe: the rows once the packet was retried or (wrongly) taken as delivered."""

        def probe() -> tuple[OutboxRow, DeliveryRow] | None:
            outbox, delivery = self.rows(packet_id)
            return (outbox, delivery) if outbox.attempts >= 2 or outbox.state != "pending" else None

        return probe


@pytest.fixture
def sending_node(tmp_path: Path) -> Iterator[Callable[..., SendingNode]]:
    """Start node 420700 for real and, in place of node 420100, a peer that answers every
    delivery with the receipt a given ``Answer`` makes (with 420100's TLS identity and key)."""
    started: list[tuple[Cluster, grpc.Server]] = []

    def start(answer: Answer, *, batch_size: int) -> SendingNode:
        cluster = start_cluster(
            tmp_path / f"c{len(started)}",
            (SENDER, PEER, OTHER),
            start=False,
            overrides={"delivery": {"batch_size": batch_size}},
        )
        cfg = cluster.config(PEER)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        started.append((cluster, server))
        peer = ReceiptForgingPeer(cluster.signer_of(PEER), answer)
        relay_pb2_grpc.add_RelayServiceServicer_to_server(peer, server)
        creds = grpc.ssl_server_credentials(
            [(cfg.tls_key.read_bytes(), cfg.tls_cert.read_bytes())],
            root_certificates=cfg.root_cert.read_bytes(),
            require_client_auth=True,
        )
        assert server.add_secure_port(cfg.listen, creds) != 0
        server.start()
        cluster.start(SENDER)
        return SendingNode(cluster, peer, cluster.hall(SENDER))

    yield start
    for cluster, server in started:
        cluster.close()
        server.stop(0)


# Packets without files travel in DeliverBatch; with batch_size 1 each goes in a Deliver stream.
PATHS = [
    pytest.param(64, [], id="batch"),
    pytest.param(1, [Material("id-card.pdf", open=lambda: iter([b"%PDF-1.7 card"]))], id="stream"),
]


@pytest.mark.parametrize(("batch_size", "files"), PATHS)
def test_an_honest_receipt_marks_the_packet_delivered(
    sending_node: Callable[..., SendingNode], batch_size: int, files: list[Material]
) -> None:
    """The control: the stand-in peer's honest receipt is accepted, so refusals below are
    caused by what each receipt gets wrong and by nothing else."""
    node = sending_node(_honest, batch_size=batch_size)
    pid = node.submit(files)
    outbox, delivery = wait_until("the delivery to settle", node.settled(pid))
    assert (outbox.state, outbox.attempts, outbox.last_error) == ("done", 1, "")
    assert (delivery.state, delivery.last_error) == ("delivered", "")
    assert delivery.receipt is not None
    assert node.peer.deliveries == 1


BAD_RECEIPTS = [
    pytest.param(
        _forged_signature, "no signature verifies under a key this signer holds", id="forged"
    ),
    pytest.param(_unsigned, "statement carries no signature", id="unsigned"),
    pytest.param(
        _wrong_type,
        f"payload type is 'application/vnd.tongban.event-ack.v1+json', expected {RECEIPT_TYPE!r}",
        id="wrong-payload-type",
    ),
    pytest.param(
        _other_statement, "the receipt does not name this packet and node", id="other-statement"
    ),
    pytest.param(
        _other_packet, "the receipt does not name this packet and node", id="other-packet"
    ),
    pytest.param(
        _other_receiver, "the receipt does not name this packet and node", id="other-receiver"
    ),
]


@pytest.mark.parametrize(("batch_size", "files"), PATHS)
@pytest.mark.parametrize(("answer", "reason"), BAD_RECEIPTS)
def test_a_bad_receipt_leaves_the_packet_undelivered_and_retried(
    sending_node: Callable[..., SendingNode],
    caplog: pytest.LogCaptureFixture,
    answer: Answer,
    reason: str,
    batch_size: int,
    files: list[Material],
) -> None:
    caplog.set_level(logging.WARNING, logger="tongban.server.delivery")
    node = sending_node(answer, batch_size=batch_size)
    pid = node.submit(files)
    outbox, delivery = wait_until("a second attempt after the bad receipt", node.settled(pid))
    error = f"bad answer from node {PEER}: {reason}"
    assert (outbox.state, outbox.last_error, outbox.done_at) == ("pending", error, None)
    assert (delivery.state, delivery.receipt, delivery.delivered_at) == ("pending", None, None)
    assert delivery.last_error == error
    assert [i.deliveries for i in node.hall.inbox("out") if i.packet_id == pid] == [
        {PEER: "pending"}
    ]
    warning = f"delivery of packet {pid} to {PEER} failed (will retry): {error}"
    assert warning in [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
