"""The node that owes a case event trusts the peer's acknowledgement only when the peer
signed it as an event ack and it names that event and that peer; anything else leaves the
event owed and retried, with the reason."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import select

from tests.harness import Cluster, deliver, forge_delivery, start_cluster, wait_until
from tongban.client.hall import HallClient
from tongban.keys.envelope import Envelope, sign_envelope
from tongban.keys.signing import PrivateKeySigner, Signer
from tongban.proto import relay_pb2, relay_pb2_grpc
from tongban.server.domain.statements import ACK_TYPE, RECEIPT_TYPE, EventAck, PacketStatement
from tongban.server.grpc.converters import envelope_from_proto, envelope_to_proto
from tongban.storage.sql import OutboxRow

# The peer stands in for the accepting node; the real node handles the case and owes the
# peer its "accepted" event.
ACCEPTING, HANDLING, OTHER = "420700", "420100", "440300"


@dataclass(frozen=True)
class AckFacts:
    """What an honest ack says, before it is signed."""

    event_hash: str
    receiver: str


# How a dishonest peer acknowledges: from the honest facts and signer, the ack it returns.
AckAnswer = Callable[[AckFacts, Signer], Envelope]


def _signed(facts: AckFacts, signer: Signer, payload_type: str = ACK_TYPE) -> Envelope:
    ack = EventAck(facts.event_hash, facts.receiver, datetime.now(UTC))
    return sign_envelope(ack.to_payload(), payload_type, [signer])


def _honest(facts: AckFacts, signer: Signer) -> Envelope:
    return _signed(facts, signer)


def _forged_signature(facts: AckFacts, signer: Signer) -> Envelope:
    # Signed by a key the peer does not hold, under the hint of the peer's real key.
    stranger = PrivateKeySigner(ed25519.Ed25519PrivateKey.generate())
    env = _signed(facts, stranger)
    return replace(env, signatures=(replace(env.signatures[0], key_id=signer.key_id),))


def _unsigned(facts: AckFacts, signer: Signer) -> Envelope:
    return replace(_signed(facts, signer), signatures=())


def _wrong_type(facts: AckFacts, signer: Signer) -> Envelope:
    return _signed(facts, signer, payload_type=RECEIPT_TYPE)


# Each field is got wrong with a value below and one above the right one, so a comparison
# that only looks one way is caught whatever the event's hash.
def _lowest_event(facts: AckFacts, signer: Signer) -> Envelope:
    return _signed(replace(facts, event_hash="0" * 64), signer)


def _highest_event(facts: AckFacts, signer: Signer) -> Envelope:
    return _signed(replace(facts, event_hash="f" * 64), signer)


def _other_event(facts: AckFacts, signer: Signer) -> Envelope:
    return _signed(replace(facts, event_hash=hashlib.sha256(b"another event").hexdigest()), signer)


def _higher_receiver(facts: AckFacts, signer: Signer) -> Envelope:
    return _signed(replace(facts, receiver=OTHER), signer)


def _lower_receiver(facts: AckFacts, signer: Signer) -> Envelope:
    return _signed(replace(facts, receiver="110000"), signer)


class AckForgingPeer(relay_pb2_grpc.RelayServiceServicer):
    """Stands in for the accepting node: takes every pushed event and answers with ``answer``."""

    def __init__(self, signer: Signer, answer: AckAnswer) -> None:
        self._signer = signer
        self._answer = answer
        self.pushed: list[str] = []

    def PushEvent(
        self, request: relay_pb2.PushEventRequest, context: grpc.ServicerContext
    ) -> relay_pb2.PushEventResponse:
        event = envelope_from_proto(request.event)
        self.pushed.append(event.digest)
        ack = self._answer(AckFacts(event.digest, ACCEPTING), self._signer)
        return relay_pb2.PushEventResponse(ack=envelope_to_proto(ack))


@dataclass
class HandlingNode:
    """The real handling node with a case from the stand-in peer, and its hall."""

    cluster: Cluster
    peer: AckForgingPeer
    hall: HallClient
    case_id: str

    def event_rows(self) -> list[OutboxRow]:
        with self.cluster.nodes[HANDLING].metadata.read() as session:
            rows = list(session.scalars(select(OutboxRow).where(OutboxRow.kind == "event")))
            session.expunge_all()
        return rows

    def settled(self) -> OutboxRow | None:
        """The owed event's row once it was retried or (wrongly) taken as acknowledged."""
        rows = self.event_rows()
        assert len(rows) <= 1
        if rows and (rows[0].attempts >= 2 or rows[0].state != "pending"):
            return rows[0]
        return None


@pytest.fixture
def handling_node(tmp_path: Path) -> Iterator[Callable[[AckAnswer], HandlingNode]]:
    """Start node 420100 for real and, in place of node 420700, a peer that delivered it an
    application and answers every pushed event with the ack a given ``AckAnswer`` makes
    (with 420700's TLS identity and key); the real node's hall accepts the case."""
    started: list[tuple[Cluster, grpc.Server]] = []

    def start(answer: AckAnswer) -> HandlingNode:
        cluster = start_cluster(
            tmp_path / f"c{len(started)}", (ACCEPTING, HANDLING, OTHER), start=False
        )
        cfg = cluster.config(ACCEPTING)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        started.append((cluster, server))
        peer = AckForgingPeer(cluster.signer_of(ACCEPTING), answer)
        relay_pb2_grpc.add_RelayServiceServicer_to_server(peer, server)
        creds = grpc.ssl_server_credentials(
            [(cfg.tls_key.read_bytes(), cfg.tls_cert.read_bytes())],
            root_certificates=cfg.root_cert.read_bytes(),
            require_client_auth=True,
        )
        assert server.add_secure_port(cfg.listen, creds) != 0
        server.start()
        cluster.start(HANDLING)
        requests = forge_delivery(cluster, sender=ACCEPTING, recipient=HANDLING)
        deliver(cluster, requests, as_node=ACCEPTING, to_node=HANDLING)
        statement = envelope_from_proto(requests[0].opening.statement)
        case_id = str(PacketStatement.from_payload(statement.payload).case_id)
        hall = cluster.hall(HANDLING)
        hall.accept(case_id)
        return HandlingNode(cluster, peer, hall, case_id)

    yield start
    for cluster, server in started:
        cluster.close()
        server.stop(0)


def test_an_honest_ack_settles_the_event(
    handling_node: Callable[[AckAnswer], HandlingNode],
) -> None:
    """The control: the stand-in peer's honest ack is accepted, so the refusals below are
    caused by what each ack gets wrong and by nothing else."""
    node = handling_node(_honest)
    row = wait_until("the event to settle", node.settled)
    assert (row.state, row.attempts, row.last_error, row.dest_node) == ("done", 1, "", ACCEPTING)
    assert row.done_at is not None
    assert node.peer.pushed == [row.ref]


BAD_ACKS = [
    pytest.param(
        _forged_signature, "no signature verifies under a key this signer holds", id="forged"
    ),
    pytest.param(_unsigned, "statement carries no signature", id="unsigned"),
    pytest.param(
        _wrong_type,
        f"payload type is {RECEIPT_TYPE!r}, expected {ACK_TYPE!r}",
        id="wrong-payload-type",
    ),
    pytest.param(_other_event, "the ack does not name this event and node", id="other-event"),
    pytest.param(_lowest_event, "the ack does not name this event and node", id="lower-event"),
    pytest.param(_highest_event, "the ack does not name this event and node", id="higher-event"),
    pytest.param(
        _higher_receiver, "the ack does not name this event and node", id="higher-receiver"
    ),
    pytest.param(_lower_receiver, "the ack does not name this event and node", id="lower-receiver"),
]


@pytest.mark.parametrize(("answer", "reason"), BAD_ACKS)
def test_a_bad_ack_leaves_the_event_owed_and_retried(
    handling_node: Callable[[AckAnswer], HandlingNode],
    caplog: pytest.LogCaptureFixture,
    answer: AckAnswer,
    reason: str,
) -> None:
    caplog.set_level(logging.WARNING, logger="tongban.server.usecases.delivery")
    node = handling_node(answer)
    row = wait_until("a second attempt after the bad ack", node.settled)
    error = f"bad answer from node {ACCEPTING}: {reason}"
    assert (row.state, row.last_error, row.done_at) == ("pending", error, None)
    assert node.peer.pushed[:2] == [row.ref, row.ref]
    warning = f"delivery of event {row.ref} to {ACCEPTING} failed (will retry): {error}"
    assert warning in [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
