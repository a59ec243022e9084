"""The sending node trusts a peer's receipt only when it is signed by the peer and names the
packet it sent; anything else leaves the delivery pending and retried, with the reason."""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import select

from tests.harness import Cluster, citizen_id, start_cluster, wait_until
from tongban.client.hall import Applicant, HallClient, Material
from tongban.keys.envelope import Envelope, sign_envelope
from tongban.keys.signing import PrivateKeySigner, Signer
from tongban.proto import relay_pb2, relay_pb2_grpc
from tongban.server.domain.statements import RECEIPT_TYPE, PacketStatement, Receipt
from tongban.server.grpc.converters import envelope_from_proto, envelope_to_proto
from tongban.server.grpc.status import RETRYABLE_KEY
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


# Each field is also got wrong with a value below and one above the right one, so a
# comparison that only looks one way is caught whatever the packet's random id.
def _other_statement(facts: ReceiptFacts, signer: Signer) -> Envelope:
    other = hashlib.sha256(b"another statement").hexdigest()
    return _signed(replace(facts, statement_sha256=other), signer)


def _lowest_statement(facts: ReceiptFacts, signer: Signer) -> Envelope:
    return _signed(replace(facts, statement_sha256="0" * 64), signer)


def _highest_statement(facts: ReceiptFacts, signer: Signer) -> Envelope:
    return _signed(replace(facts, statement_sha256="f" * 64), signer)


def _other_packet(facts: ReceiptFacts, signer: Signer) -> Envelope:
    return _signed(replace(facts, packet_id=uuid.uuid4()), signer)


def _lowest_packet(facts: ReceiptFacts, signer: Signer) -> Envelope:
    return _signed(replace(facts, packet_id=uuid.UUID(int=0)), signer)


def _highest_packet(facts: ReceiptFacts, signer: Signer) -> Envelope:
    return _signed(replace(facts, packet_id=uuid.UUID(int=(1 << 128) - 1)), signer)


def _other_receiver(facts: ReceiptFacts, signer: Signer) -> Envelope:
    return _signed(replace(facts, receiver=OTHER), signer)


def _lower_receiver(facts: ReceiptFacts, signer: Signer) -> Envelope:
    return _signed(replace(facts, receiver="110000"), signer)


def _wrong_type(facts: ReceiptFacts, signer: Signer) -> Envelope:
    return _signed(facts, signer, payload_type="application/vnd.tongban.event-ack.v1+json")


# How a peer answers DeliverBatch instead of with one receipt per packet: it may abort the
# call (context.abort) or return outcomes of its own. It gets the honest outcomes to reuse.
BatchAnswer = Callable[
    [relay_pb2.DeliverBatchRequest, grpc.ServicerContext, list[relay_pb2.DeliverOutcome]],
    relay_pb2.DeliverBatchResponse,
]


class ReceiptForgingPeer(relay_pb2_grpc.RelayServiceServicer):
    """Stands in for the peer node: takes every delivery and answers with ``answer`` (or,
    for DeliverBatch, with ``batch`` when given)."""

    def __init__(
        self,
        signer: Signer,
        answer: Answer,
        batch: BatchAnswer | None = None,
        duplicate: bool = False,
    ) -> None:
        self._signer = signer
        self._answer = answer
        self._batch = batch
        self._duplicate = duplicate
        self.deliveries = 0
        self.calls: list[str] = []

    def _receipt(self, opening: relay_pb2.PacketOpening) -> relay_pb2.DeliverOutcome:
        statement = envelope_from_proto(opening.statement)
        facts = ReceiptFacts(
            PacketStatement.from_payload(statement.payload).packet_id,
            PEER,
            hashlib.sha256(statement.payload).hexdigest(),
        )
        self.deliveries += 1
        return relay_pb2.DeliverOutcome(
            receipt=envelope_to_proto(self._answer(facts, self._signer)),
            duplicate=self._duplicate,
        )

    def Deliver(
        self, request_iterator: Iterator[relay_pb2.DeliverRequest], context: grpc.ServicerContext
    ) -> relay_pb2.DeliverResponse:
        self.calls.append("Deliver")
        requests = list(request_iterator)
        outcome = self._receipt(requests[0].opening)
        return relay_pb2.DeliverResponse(receipt=outcome.receipt, duplicate=outcome.duplicate)

    def DeliverBatch(
        self, request: relay_pb2.DeliverBatchRequest, context: grpc.ServicerContext
    ) -> relay_pb2.DeliverBatchResponse:
        self.calls.append("DeliverBatch")
        outcomes = [self._receipt(p) for p in request.packets]
        if self._batch is not None:
            return self._batch(request, context, outcomes)
        return relay_pb2.DeliverBatchResponse(outcomes=outcomes)


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
        with self.cluster.nodes[SENDER].metadata.read() as session:
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

    def start(
        answer: Answer,
        *,
        batch_size: int,
        batch: BatchAnswer | None = None,
        duplicate: bool = False,
        poll_interval: float | None = None,
    ) -> SendingNode:
        delivery: dict[str, Any] = {"batch_size": batch_size}
        if poll_interval is not None:
            delivery["poll_interval"] = poll_interval
        cluster = start_cluster(
            tmp_path / f"c{len(started)}",
            (SENDER, PEER, OTHER),
            start=False,
            overrides={"delivery": delivery},
        )
        cfg = cluster.config(PEER)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        started.append((cluster, server))
        peer = ReceiptForgingPeer(cluster.signer_of(PEER), answer, batch, duplicate)
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
    pytest.param(
        _lowest_statement, "the receipt does not name this packet and node", id="lower-statement"
    ),
    pytest.param(
        _highest_statement,
        "the receipt does not name this packet and node",
        id="higher-statement",
    ),
    pytest.param(
        _lowest_packet, "the receipt does not name this packet and node", id="lower-packet"
    ),
    pytest.param(
        _highest_packet, "the receipt does not name this packet and node", id="higher-packet"
    ),
    pytest.param(
        _lower_receiver, "the receipt does not name this packet and node", id="lower-receiver"
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
    caplog.set_level(logging.WARNING, logger="tongban.server.usecases.delivery")
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


# ---- what else a peer may answer to a batch ------------------------------------------------

FORM_ONLY: list[Material] = []
SMALL_FILE = [Material("id-card.pdf", open=lambda: iter([b"%PDF-1.7 card"]))]


def _refuse_each(code: int, message: str) -> BatchAnswer:
    def batch(
        request: relay_pb2.DeliverBatchRequest,
        context: grpc.ServicerContext,
        outcomes: list[relay_pb2.DeliverOutcome],
    ) -> relay_pb2.DeliverBatchResponse:
        refused = relay_pb2.DeliverOutcome(code=code, message=message)
        return relay_pb2.DeliverBatchResponse(outcomes=[refused for _ in request.packets])

    return batch


def _abort(code: grpc.StatusCode, message: str) -> BatchAnswer:
    def batch(
        request: relay_pb2.DeliverBatchRequest,
        context: grpc.ServicerContext,
        outcomes: list[relay_pb2.DeliverOutcome],
    ) -> relay_pb2.DeliverBatchResponse:
        context.abort(code, message)
        raise AssertionError("abort raises")

    return batch


def _no_outcomes(
    request: relay_pb2.DeliverBatchRequest,
    context: grpc.ServicerContext,
    outcomes: list[relay_pb2.DeliverOutcome],
) -> relay_pb2.DeliverBatchResponse:
    return relay_pb2.DeliverBatchResponse()


def _settle(node: SendingNode, pid: str) -> tuple[OutboxRow, DeliveryRow]:
    outbox, delivery = wait_until("the delivery to settle", node.settled(pid))
    return outbox, delivery


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
        (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED"),
        (grpc.StatusCode.DATA_LOSS, "DATA_LOSS"),
        (grpc.StatusCode.ALREADY_EXISTS, "ALREADY_EXISTS"),
    ],
)
def test_a_packet_the_peer_refuses_in_a_batch_is_parked(
    sending_node: Callable[..., SendingNode],
    caplog: pytest.LogCaptureFixture,
    code: grpc.StatusCode,
    name: str,
) -> None:
    """The peer judged the content itself: sending the same bytes again cannot help."""
    caplog.set_level(logging.WARNING, logger="tongban.server.usecases.delivery")
    number = code.value[0]
    node = sending_node(_honest, batch_size=64, batch=_refuse_each(number, "judged: no"))
    pid = node.submit(FORM_ONLY)
    outbox, delivery = _settle(node, pid)
    error = f"{name}: judged: no"
    assert (outbox.state, outbox.attempts, outbox.last_error) == ("failed", 1, error)
    assert (delivery.state, delivery.receipt, delivery.last_error) == ("failed", None, error)
    warning = f"delivery of packet {pid} to {PEER} failed (parked): {error}"
    assert warning in [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize(
    ("number", "name"),
    [(grpc.StatusCode.UNAVAILABLE.value[0], "UNAVAILABLE"), (99, "UNKNOWN")],
    ids=["unavailable", "unknown-code"],
)
def test_a_packet_the_peer_could_not_take_now_is_retried(
    sending_node: Callable[..., SendingNode], number: int, name: str
) -> None:
    node = sending_node(_honest, batch_size=64, batch=_refuse_each(number, "later"))
    pid = node.submit(FORM_ONLY)
    outbox, delivery = _settle(node, pid)
    assert (outbox.state, outbox.last_error) == ("pending", f"{name}: later")
    assert outbox.attempts >= 2
    assert (delivery.state, delivery.receipt) == ("pending", None)


def _twice(
    request: relay_pb2.DeliverBatchRequest,
    context: grpc.ServicerContext,
    outcomes: list[relay_pb2.DeliverOutcome],
) -> relay_pb2.DeliverBatchResponse:
    return relay_pb2.DeliverBatchResponse(outcomes=outcomes * 2)


@pytest.mark.parametrize(("answer", "came"), [(_no_outcomes, 0), (_twice, 2)], ids=["none", "two"])
def test_a_batch_answer_with_the_wrong_number_of_outcomes_is_retried(
    sending_node: Callable[..., SendingNode], answer: BatchAnswer, came: int
) -> None:
    node = sending_node(_honest, batch_size=64, batch=answer)
    pid = node.submit(FORM_ONLY)
    outbox, delivery = _settle(node, pid)
    error = f"bad answer from node {PEER}: {came} outcomes came back for 1 packets"
    assert (outbox.state, outbox.last_error, delivery.state) == ("pending", error, "pending")
    assert (delivery.receipt, delivery.last_error) == (None, error)
    assert outbox.attempts >= 2


def test_a_packet_with_files_the_peer_takes_in_a_batch_is_not_sent_again(
    sending_node: Callable[..., SendingNode],
) -> None:
    node = sending_node(_honest, batch_size=64)
    pid = node.submit(SMALL_FILE)
    outbox, delivery = _settle(node, pid)
    assert (outbox.state, outbox.attempts, delivery.state) == ("done", 1, "delivered")
    assert node.peer.calls == ["DeliverBatch"]


@pytest.mark.parametrize(
    ("code", "state", "error"),
    [
        (grpc.StatusCode.PERMISSION_DENIED, "failed", "PERMISSION_DENIED: not you"),
        (grpc.StatusCode.UNAVAILABLE, "pending", "UNAVAILABLE: not you"),
    ],
    ids=["permanent", "transient"],
)
def test_a_refused_batch_call_is_parked_or_retried_by_its_status(
    sending_node: Callable[..., SendingNode], code: grpc.StatusCode, state: str, error: str
) -> None:
    node = sending_node(_honest, batch_size=64, batch=_abort(code, "not you"))
    pid = node.submit(FORM_ONLY)
    outbox, delivery = _settle(node, pid)
    assert (outbox.state, outbox.last_error) == (state, error)
    assert (delivery.state, delivery.receipt) == (state, None)
    assert "Deliver" not in node.peer.calls


def _abort_judged(code: grpc.StatusCode, message: str) -> BatchAnswer:
    """Refuse the call as a node does when it judged the caller: not retryable, said so."""

    def batch(
        request: relay_pb2.DeliverBatchRequest,
        context: grpc.ServicerContext,
        outcomes: list[relay_pb2.DeliverOutcome],
    ) -> relay_pb2.DeliverBatchResponse:
        context.set_trailing_metadata(((RETRYABLE_KEY, "false"),))
        context.abort(code, message)
        raise AssertionError("abort raises")

    return batch


@pytest.mark.parametrize(
    ("code", "state"),
    [
        # The peer may not know this node's newest certificate yet: a directory refresh on
        # either side heals that, so it is retried though the peer said it judged the call.
        (grpc.StatusCode.UNAUTHENTICATED, "pending"),
        (grpc.StatusCode.UNIMPLEMENTED, "failed"),
        (grpc.StatusCode.PERMISSION_DENIED, "failed"),
    ],
    ids=["unauthenticated", "unimplemented", "permission-denied"],
)
def test_a_judged_refusal_parks_the_packet_unless_it_is_of_this_nodes_identity(
    sending_node: Callable[..., SendingNode], code: grpc.StatusCode, state: str
) -> None:
    node = sending_node(_honest, batch_size=64, batch=_abort_judged(code, "judged"))
    pid = node.submit(FORM_ONLY)
    outbox, delivery = _settle(node, pid)
    error = f"{code.name}: judged"
    assert (outbox.state, outbox.last_error) == (state, error)
    assert (delivery.state, delivery.receipt, delivery.last_error) == (state, None, error)
    assert outbox.attempts >= (2 if state == "pending" else 1)


def test_a_batch_too_large_for_the_peer_goes_one_packet_at_a_time(
    sending_node: Callable[..., SendingNode],
) -> None:
    node = sending_node(
        _honest, batch_size=64, batch=_abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "too big")
    )
    pid = node.submit(FORM_ONLY)
    outbox, delivery = _settle(node, pid)
    assert (outbox.state, delivery.state) == ("done", "delivered")
    assert node.peer.calls == ["DeliverBatch", "Deliver"]


def test_a_packet_with_files_refused_in_a_batch_gets_the_stream_last_word(
    sending_node: Callable[..., SendingNode],
) -> None:
    """A peer of an older version takes packets with files only as a stream."""
    refuse = _refuse_each(grpc.StatusCode.INVALID_ARGUMENT.value[0], "files by stream")
    node = sending_node(_honest, batch_size=64, batch=refuse)
    pid = node.submit(SMALL_FILE)
    outbox, delivery = _settle(node, pid)
    assert (outbox.state, delivery.state) == ("done", "delivered")
    assert node.peer.calls == ["DeliverBatch", "Deliver"]


@pytest.mark.parametrize(
    ("batch_size", "files", "logged"),
    [
        (64, FORM_ONLY, "delivered 1 packets to 420100 in one call (1 already held)"),
        (1, SMALL_FILE, "delivered packet {pid} to 420100 (already held)"),
    ],
    ids=["batch", "stream"],
)
def test_a_packet_the_peer_already_held_is_delivered_and_said_so(
    sending_node: Callable[..., SendingNode],
    caplog: pytest.LogCaptureFixture,
    batch_size: int,
    files: list[Material],
    logged: str,
) -> None:
    caplog.set_level(logging.INFO, logger="tongban.server.usecases.delivery")
    node = sending_node(_honest, batch_size=batch_size, duplicate=True)
    pid = node.submit(files)
    outbox, delivery = _settle(node, pid)
    assert (outbox.state, delivery.state) == ("done", "delivered")
    assert logged.format(pid=pid) in [r.getMessage() for r in caplog.records]


def test_packets_behind_one_sent_again_by_stream_keep_their_batch_receipts(
    sending_node: Callable[..., SendingNode],
) -> None:
    """A batch holds a packet with files the peer takes only by stream, then a form-only
    packet: the first goes again as a stream, and the second is delivered by the batch's own
    receipt, without waiting for the outbox scan (slowed here to 30 s so that it cannot
    stand in)."""
    gate = threading.Event()
    sizes: list[int] = []

    def batch(
        request: relay_pb2.DeliverBatchRequest,
        context: grpc.ServicerContext,
        outcomes: list[relay_pb2.DeliverOutcome],
    ) -> relay_pb2.DeliverBatchResponse:
        sizes.append(len(request.packets))
        assert gate.wait(20)
        refused = relay_pb2.DeliverOutcome(
            code=grpc.StatusCode.INVALID_ARGUMENT.value[0], message="files by stream"
        )
        return relay_pb2.DeliverBatchResponse(
            outcomes=[
                refused if p.segments else o for p, o in zip(request.packets, outcomes, strict=True)
            ]
        )

    node = sending_node(_honest, batch_size=64, batch=batch, poll_interval=30.0)
    try:
        # Two calls hold both of the node's batch calls to the peer; the next two packets
        # wait in its queue and then go out together.
        blockers = [node.submit(FORM_ONLY) for _ in range(2)]
        wait_until("both batch calls under way", lambda: len(sizes) == 2)
        with_file, form_only = node.submit(SMALL_FILE), node.submit(FORM_ONLY)
    finally:
        gate.set()
    for pid in [*blockers, with_file, form_only]:
        outbox, delivery = wait_until(
            "every packet delivered", lambda pid=pid: (r := node.rows(pid))[0].state == "done" and r
        )
        assert (outbox.attempts, delivery.state) == (1, "delivered")
    assert sizes == [1, 1, 2]
    assert node.peer.calls == ["DeliverBatch", "DeliverBatch", "DeliverBatch", "Deliver"]


def _not_a_receipt(facts: ReceiptFacts, signer: Signer) -> Envelope:
    # Signed by the peer as a receipt, but its payload is not one.
    return sign_envelope(b'{"type": "tongban-receipt"}', RECEIPT_TYPE, [signer])


@pytest.mark.parametrize(("batch_size", "files"), PATHS)
def test_a_signed_answer_that_is_not_a_receipt_leaves_the_packet_retried(
    sending_node: Callable[..., SendingNode], batch_size: int, files: list[Material]
) -> None:
    node = sending_node(_not_a_receipt, batch_size=batch_size)
    pid = node.submit(files)
    outbox, delivery = wait_until("a second attempt after the bad answer", node.settled(pid))
    assert (outbox.state, delivery.state, delivery.receipt) == ("pending", "pending", None)
    assert outbox.last_error == delivery.last_error
    # Not a refusal the peer made nor a receipt that names another packet: an error of its
    # own kind, retried (the peer may answer properly next time), never parked.
    assert outbox.last_error == "InvalidRequest: malformed receipt: KeyError('packet_id')"
