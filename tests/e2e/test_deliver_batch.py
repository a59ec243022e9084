"""DeliverBatch: several small packets in one call, file segments inline, each judged exactly
as by Deliver."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import select

from tests.harness import (
    Cluster,
    ForgedFile,
    citizen_id,
    deliver,
    forge_delivery,
    snapshot,
    wait_until,
)
from tongban.client.hall import Applicant
from tongban.keys.clock import utcnow
from tongban.keys.envelope import Envelope, canonical_json, verify_envelope
from tongban.keys.errors import SignatureError
from tongban.keys.signing import PrivateKeySigner
from tongban.proto import relay_pb2, relay_pb2_grpc
from tongban.server.config import MAX_DELIVERY_BATCH
from tongban.server.domain.statements import RECEIPT_TYPE, Receipt
from tongban.server.grpc.converters import envelope_from_proto
from tongban.server.grpc.servicers import RelayServicer
from tongban.storage.sql import CaseRow, PacketRow

A, B, C = "420700", "420100", "440300"  # 鄂州 sends, 武汉 receives, 深圳 is a bystander
ODA = ("HB-ODA-01", "异地办理营业执照变更登记")
OK = grpc.StatusCode.OK.value[0]

# What storing one forged application adds to the receiver: the packet, a new case with its
# one leg, and the "submitted" event that travels in the opening. Nothing else, no blobs.
# An application also starts its leg's deadline clock at the handling node.
ONE_PACKET = {"packets": 1, "cases": 1, "legs": 1, "events": 1, "case_clocks": 1}


# ---- helpers ---------------------------------------------------------------------------------


def _opening(cluster: Cluster, **kw: Any) -> relay_pb2.PacketOpening:
    """The opening of a forged delivery from 鄂州 to 武汉 (the whole packet when it has no files)."""
    kw.setdefault("sender", A)
    kw.setdefault("recipient", B)
    return forge_delivery(cluster, **kw)[0].opening


def _pid(opening: relay_pb2.PacketOpening) -> str:
    return str(json.loads(opening.statement.payload)["packet_id"])


def _case_id(opening: relay_pb2.PacketOpening) -> str:
    return str(json.loads(opening.statement.payload)["case_id"])


def _batch(
    cluster: Cluster,
    openings: list[relay_pb2.PacketOpening],
    *,
    as_node: str = A,
    to_node: str = B,
) -> list[relay_pb2.DeliverOutcome]:
    with cluster.node_channel(as_node, to_node) as ch:
        response = relay_pb2_grpc.RelayServiceStub(ch).DeliverBatch(
            relay_pb2.DeliverBatchRequest(packets=openings), timeout=20
        )
    return list(response.outcomes)


def _alone(
    cluster: Cluster, opening: relay_pb2.PacketOpening, *, as_node: str = A
) -> grpc.RpcError:
    """Deliver one packet on its own, expecting a refusal that leaves the store as it was."""
    before = snapshot(cluster.nodes[B])
    with pytest.raises(grpc.RpcError) as exc:
        deliver(cluster, [relay_pb2.DeliverRequest(opening=opening)], as_node=as_node, to_node=B)
    assert snapshot(cluster.nodes[B]) == before, "a refused delivery must leave the store as it was"
    return exc.value


def _grown_by(before: dict[str, Any], after: dict[str, Any], n: int) -> None:
    """``after`` holds exactly ``n`` more stored packets than ``before`` and nothing else."""
    expected = {t: c + n * ONE_PACKET.get(t, 0) for t, c in before["rows"].items()}
    assert after["rows"] == expected
    assert after["blobs"] == before["blobs"]


def _held(cluster: Cluster, node: str, packet_ids: list[str]) -> dict[str, int]:
    """How many packet rows the node holds for each of ``packet_ids``."""
    with cluster.nodes[node].metadata.read() as session:
        rows = session.scalars(
            select(PacketRow.packet_id).where(PacketRow.packet_id.in_(packet_ids))
        ).all()
    return {p: rows.count(p) for p in packet_ids}


def _no_trace(cluster: Cluster, openings: list[relay_pb2.PacketOpening]) -> None:
    ids = [_pid(o) for o in openings]
    assert _held(cluster, B, ids) == dict.fromkeys(ids, 0)
    with cluster.nodes[B].metadata.read() as session:
        cases = session.scalars(
            select(CaseRow.case_id).where(CaseRow.case_id.in_([_case_id(o) for o in openings]))
        ).all()
    assert cases == []


def _stored_receipt(cluster: Cluster, packet_id: str) -> Envelope:
    with cluster.nodes[B].metadata.read() as session:
        row = session.scalar(select(PacketRow).where(PacketRow.packet_id == packet_id))
        assert row is not None and row.direction == "in" and row.receipt is not None
        return Envelope.from_json_dict(json.loads(row.receipt))


def _check_receipt(
    cluster: Cluster, outcome: relay_pb2.DeliverOutcome, opening: relay_pb2.PacketOpening
) -> Receipt:
    """A stored outcome: B's signed receipt naming exactly this packet, as B keeps it."""
    assert outcome.code == OK and outcome.message == ""
    assert outcome.HasField("receipt")
    env = envelope_from_proto(outcome.receipt)
    directory = cluster.directory()
    verify_envelope(env, directory.node(B).signing_keys(utcnow()), payload_type=RECEIPT_TYPE)
    with pytest.raises(SignatureError):  # signed by the receiver, not by anybody else
        verify_envelope(env, directory.node(A).signing_keys(utcnow()), payload_type=RECEIPT_TYPE)
    receipt = Receipt.from_payload(env.payload)
    assert str(receipt.packet_id) == _pid(opening)
    assert receipt.receiver == B
    assert receipt.statement_sha256 == hashlib.sha256(opening.statement.payload).hexdigest()
    assert (
        receipt.stored_digest
        == hashlib.sha256(
            canonical_json(
                {
                    "statement": receipt.statement_sha256,
                    "form": hashlib.sha256(opening.form_ciphertext).hexdigest(),
                    "files": [],
                }
            )
        ).hexdigest()
    )
    assert _stored_receipt(cluster, _pid(opening)) == env
    return receipt


def _refused(outcome: relay_pb2.DeliverOutcome) -> tuple[grpc.StatusCode, str]:
    """A refused outcome: no receipt, and its status as a (code, message) pair."""
    assert not outcome.HasField("receipt") and not outcome.duplicate
    assert outcome.code != OK
    [code] = [c for c in grpc.StatusCode if c.value[0] == outcome.code]
    return code, outcome.message


# ---- the receiving side ----------------------------------------------------------------------


def test_batch_of_valid_packets_is_stored_once_each_with_signed_receipts(
    cluster: Cluster,
) -> None:
    openings = [_opening(cluster, form={"n": i, "地址": f"武汉 {i}"}, matter=ODA) for i in range(5)]
    assert len({_case_id(o) for o in openings}) == 5
    before = snapshot(cluster.nodes[B])
    outcomes = _batch(cluster, openings)
    assert len(outcomes) == len(openings)
    for outcome, opening in zip(outcomes, openings, strict=True):
        assert not outcome.duplicate
        _check_receipt(cluster, outcome, opening)
    _grown_by(before, snapshot(cluster.nodes[B]), len(openings))
    ids = [_pid(o) for o in openings]
    assert _held(cluster, B, ids) == dict.fromkeys(ids, 1)
    inbox = [i for i in cluster.hall(B).inbox("in") if i.packet_id in ids]
    assert sorted(i.packet_id for i in inbox) == sorted(ids)
    assert {(i.sender_node, i.kind, i.mode) for i in inbox} == {(A, "application", "on_behalf")}
    assert {i.case_id: i.packet_id for i in inbox} == {_case_id(o): _pid(o) for o in openings}


def test_each_refused_packet_gets_what_deliver_gives_and_leaves_no_trace(
    cluster: Cluster,
) -> None:
    good_1 = _opening(cluster)
    tampered = _opening(cluster)
    form = bytearray(tampered.form_ciphertext)
    form[5] ^= 0x01
    tampered.form_ciphertext = bytes(form)
    rogue = _opening(cluster, signer=PrivateKeySigner(ed25519.Ed25519PrivateKey.generate()))
    elsewhere = _opening(cluster, addressed_to=[C])
    # Signed with 鄂州's real key and sent by 鄂州, but the statement names 深圳 as the sender.
    impostor = _opening(cluster, sender=C, signer=cluster.signer_of(A))
    good_2 = _opening(cluster)
    batch = [good_1, tampered, rogue, elsewhere, impostor, good_2]
    expected = {
        1: (grpc.StatusCode.DATA_LOSS, "decryption-failed: segment 0 failed authentication"),
        2: (
            grpc.StatusCode.UNAUTHENTICATED,
            "bad-signature: no signature verifies under a key this signer holds",
        ),
        3: (
            grpc.StatusCode.INVALID_ARGUMENT,
            f"wrong-recipient: packet {_pid(elsewhere)} is addressed to {C}, not to this node {B}",
        ),
        4: (
            grpc.StatusCode.PERMISSION_DENIED,
            f"permission-denied: packet names sender {C} but came from node {A}",
        ),
    }

    before = snapshot(cluster.nodes[B])
    outcomes = _batch(cluster, batch)
    assert len(outcomes) == len(batch)
    for i in (0, 5):
        assert not outcomes[i].duplicate
        _check_receipt(cluster, outcomes[i], batch[i])
    for i, status in expected.items():
        assert _refused(outcomes[i]) == status
    _grown_by(before, snapshot(cluster.nodes[B]), 2)
    assert _held(cluster, B, [_pid(good_1), _pid(good_2)]) == {_pid(good_1): 1, _pid(good_2): 1}
    _no_trace(cluster, [tampered, rogue, elsewhere, impostor])

    # The single-packet Deliver ends each refused packet with the very same status and message.
    for i, status in expected.items():
        err = _alone(cluster, batch[i])
        assert (err.code(), err.details()) == status
    _no_trace(cluster, [tampered, rogue, elsewhere, impostor])

    # The same mixed batch again: the stored ones are replays, the refused ones still refused.
    after = snapshot(cluster.nodes[B])
    again = _batch(cluster, batch)
    assert [(o.code, o.duplicate) for o in (again[0], again[5])] == [(OK, True), (OK, True)]
    assert (again[0].receipt, again[5].receipt) == (outcomes[0].receipt, outcomes[5].receipt)
    assert {i: _refused(again[i]) for i in expected} == expected
    assert snapshot(cluster.nodes[B]) == after


def test_replayed_batch_returns_the_same_receipts_and_stores_nothing(cluster: Cluster) -> None:
    openings = [_opening(cluster, form={"n": i}) for i in range(4)]
    first = _batch(cluster, openings)
    assert [(o.code, o.duplicate) for o in first] == [(OK, False)] * 4
    after_first = snapshot(cluster.nodes[B])

    again = _batch(cluster, openings)
    assert [(o.code, o.message, o.duplicate) for o in again] == [(OK, "", True)] * 4
    assert [o.receipt.SerializeToString() for o in again] == [
        o.receipt.SerializeToString() for o in first
    ]
    for outcome, opening in zip(again, openings, strict=True):
        _check_receipt(cluster, outcome, opening)
    assert snapshot(cluster.nodes[B]) == after_first

    # A packet delivered by a batch is a replay for Deliver too, with the same receipt.
    single = deliver(cluster, [relay_pb2.DeliverRequest(opening=openings[2])], as_node=A, to_node=B)
    assert single.duplicate and single.receipt == first[2].receipt
    # And one delivered by Deliver is a replay inside a batch.
    alone = _opening(cluster)
    stored = deliver(cluster, [relay_pb2.DeliverRequest(opening=alone)], as_node=A, to_node=B)
    assert not stored.duplicate
    held = snapshot(cluster.nodes[B])
    [outcome] = _batch(cluster, [alone])
    assert (outcome.code, outcome.duplicate, outcome.receipt) == (OK, True, stored.receipt)
    assert snapshot(cluster.nodes[B]) == held


def test_same_packet_twice_in_one_batch(cluster: Cluster) -> None:
    twice, other = _opening(cluster), _opening(cluster)
    before = snapshot(cluster.nodes[B])
    outcomes = _batch(cluster, [twice, other, twice])
    assert len(outcomes) == 3
    assert not outcomes[0].duplicate and not outcomes[1].duplicate
    _check_receipt(cluster, outcomes[0], twice)
    _check_receipt(cluster, outcomes[1], other)
    assert _refused(outcomes[2]) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        f"invalid-request: packet {_pid(twice)} appears twice in the batch",
    )
    _grown_by(before, snapshot(cluster.nodes[B]), 2)
    assert _held(cluster, B, [_pid(twice), _pid(other)]) == {_pid(twice): 1, _pid(other): 1}


def _inline(requests: list[relay_pb2.DeliverRequest]) -> relay_pb2.PacketOpening:
    """A forged delivery's opening with its file segments inline, as DeliverBatch carries it."""
    opening = relay_pb2.PacketOpening()
    opening.CopyFrom(requests[0].opening)
    opening.segments.extend(r.segment for r in requests[1:])
    return opening


def test_packet_with_files_travels_inline_and_is_stored_byte_for_byte(
    cluster: Cluster, tmp_path: Path
) -> None:
    files = [ForgedFile("a.bin", bytes(range(256)) * 12), ForgedFile("b.bin", b"B" * 10)]
    with_files = _inline(forge_delivery(cluster, sender=A, recipient=B, files=files))
    assert len(with_files.segments) == 4  # 3072 bytes in 1 KiB segments, then one of 10
    plain = _opening(cluster)
    before = snapshot(cluster.nodes[B])
    outcomes = _batch(cluster, [with_files, plain])
    assert [o.code for o in outcomes] == [OK, OK]
    assert not outcomes[0].duplicate and not outcomes[1].duplicate
    _check_receipt(cluster, outcomes[1], plain)
    after = snapshot(cluster.nodes[B])
    assert after["rows"]["packet_files"] == before["rows"]["packet_files"] + 2
    assert len(after["blobs"]) == len(before["blobs"]) + 2
    pid = _pid(with_files)
    fetched = cluster.hall(B).fetch(pid, tmp_path)
    for f in files:
        assert (tmp_path / f.name).read_bytes() == f.data
    assert {f.name: f.verified for f in fetched.files} == {"a.bin": True, "b.bin": True}
    # The same packet again, inline or streamed: the same receipt, nothing stored twice.
    again = _batch(cluster, [with_files])[0]
    assert again.duplicate and again.receipt == outcomes[0].receipt
    assert snapshot(cluster.nodes[B]) == after


def test_inline_files_are_judged_as_deliver_judges_them(cluster: Cluster) -> None:
    files = [ForgedFile("a.bin", b"A" * 3000)]
    missing = forge_delivery(cluster, sender=A, recipient=B, files=files)[0].opening
    tampered = _inline(forge_delivery(cluster, sender=A, recipient=B, files=files))
    tampered.segments[1].ciphertext = (
        bytes([tampered.segments[1].ciphertext[0] ^ 1]) + (tampered.segments[1].ciphertext[1:])
    )
    extra = _opening(cluster)
    extra.segments.add(file_index=0, segment_index=0, final=True, ciphertext=b"x" * 32)
    plain = _opening(cluster)
    before = snapshot(cluster.nodes[B])
    outcomes = _batch(cluster, [missing, tampered, extra, plain])
    assert _refused(outcomes[0]) == (
        grpc.StatusCode.DATA_LOSS,
        "truncated-stream: stream ended after 0 segments without the final one",
    )
    assert _refused(outcomes[1]) == (
        grpc.StatusCode.DATA_LOSS,
        "decryption-failed: segment 1 failed authentication",
    )
    assert _refused(outcomes[2]) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid-request: data arrived after the last file of the packet",
    )
    _check_receipt(cluster, outcomes[3], plain)
    _grown_by(before, snapshot(cluster.nodes[B]), 1)  # no blob of a refused packet stays
    _no_trace(cluster, [missing, tampered, extra])


def test_batch_size_limit(cluster: Cluster) -> None:
    too_many = [_opening(cluster) for _ in range(MAX_DELIVERY_BATCH + 1)]
    assert len(too_many) == 257
    before = snapshot(cluster.nodes[B])
    with pytest.raises(grpc.RpcError) as exc:
        _batch(cluster, too_many)
    assert (exc.value.code(), exc.value.details()) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "too-large: a delivery batch holds at most 256 packets, not 257",
    )
    assert snapshot(cluster.nodes[B]) == before
    _no_trace(cluster, too_many)
    # Exactly the limit is one call.
    outcomes = _batch(cluster, too_many[:MAX_DELIVERY_BATCH])
    assert [(o.code, o.duplicate) for o in outcomes] == [(OK, False)] * MAX_DELIVERY_BATCH
    _grown_by(before, snapshot(cluster.nodes[B]), MAX_DELIVERY_BATCH)
    _no_trace(cluster, too_many[MAX_DELIVERY_BATCH:])


def test_empty_batch_returns_no_outcomes(cluster: Cluster) -> None:
    before = snapshot(cluster.nodes[B])
    assert _batch(cluster, []) == []
    assert snapshot(cluster.nodes[B]) == before


def test_batch_from_a_hall_certificate_is_refused_like_deliver(cluster: Cluster) -> None:
    d = cluster.fed / A / "halls" / f"{A}-hall-1"
    creds = grpc.ssl_channel_credentials(
        (d / "root.pem").read_bytes(), (d / "key.pem").read_bytes(), (d / "cert.pem").read_bytes()
    )
    expected = (
        grpc.StatusCode.PERMISSION_DENIED,
        f"permission-denied: hall {A}-hall-1 of node {A} may not use the relay service",
    )
    opening = _opening(cluster)
    before = snapshot(cluster.nodes[B])
    with grpc.secure_channel(
        cluster.directory().node(B).endpoint,
        creds,
        options=[("grpc.ssl_target_name_override", f"node-{B}.tongban")],
    ) as ch:
        stub = relay_pb2_grpc.RelayServiceStub(ch)
        with pytest.raises(grpc.RpcError) as batch_err:
            stub.DeliverBatch(relay_pb2.DeliverBatchRequest(packets=[opening]), timeout=20)
        with pytest.raises(grpc.RpcError) as single_err:
            stub.Deliver(iter([relay_pb2.DeliverRequest(opening=opening)]), timeout=20)
    assert (batch_err.value.code(), batch_err.value.details()) == expected
    assert (single_err.value.code(), single_err.value.details()) == expected
    assert snapshot(cluster.nodes[B]) == before
    _no_trace(cluster, [opening])


def test_concurrent_identical_batches_store_each_packet_once(cluster: Cluster) -> None:
    openings = [_opening(cluster, form={"n": i}) for i in range(8)]
    before = snapshot(cluster.nodes[B])
    start = threading.Barrier(2)

    def send() -> list[relay_pb2.DeliverOutcome]:
        with cluster.node_channel(A, B) as ch:
            stub = relay_pb2_grpc.RelayServiceStub(ch)
            start.wait(10)
            return list(
                stub.DeliverBatch(
                    relay_pb2.DeliverBatchRequest(packets=openings), timeout=20
                ).outcomes
            )

    with ThreadPoolExecutor(2) as pool:
        first, second = (f.result() for f in [pool.submit(send), pool.submit(send)])
    for x, y, opening in zip(first, second, openings, strict=True):
        assert (x.code, y.code) == (OK, OK)
        assert x.receipt == y.receipt
        assert sorted([x.duplicate, y.duplicate]) == [False, True]
        _check_receipt(cluster, x, opening)
    _grown_by(before, snapshot(cluster.nodes[B]), len(openings))


# ---- the sending side: the dispatcher --------------------------------------------------------


class _Calls:
    """What the relay servicers were asked: packet ids per DeliverBatch call and per Deliver."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.batches: list[list[str]] = []
        self.singles: list[str] = []
        self.gate = threading.Event()  # DeliverBatch calls wait for it

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        batch_impl, deliver_impl = RelayServicer.DeliverBatch, RelayServicer.Deliver
        calls = self

        def spy_batch(
            self: RelayServicer, request: relay_pb2.DeliverBatchRequest, context: Any
        ) -> relay_pb2.DeliverBatchResponse:
            with calls.lock:
                calls.batches.append([_pid(o) for o in request.packets])
            calls.gate.wait(20)
            return batch_impl(self, request, context)

        def spy_deliver(
            self: RelayServicer, requests: Iterator[relay_pb2.DeliverRequest], context: Any
        ) -> relay_pb2.DeliverResponse:
            def seen() -> Iterator[relay_pb2.DeliverRequest]:
                for r in requests:
                    if r.WhichOneof("part") == "opening":
                        with calls.lock:
                            calls.singles.append(_pid(r.opening))
                    yield r

            return deliver_impl(self, seen(), context)

        monkeypatch.setattr(RelayServicer, "DeliverBatch", spy_batch)
        monkeypatch.setattr(RelayServicer, "Deliver", spy_deliver)


@pytest.mark.parametrize("batch_size", [None, 1], ids=["batched", "batch_size_1"])
def test_dispatcher_delivers_many_form_only_packets(
    make_cluster: Callable[..., Cluster],
    monkeypatch: pytest.MonkeyPatch,
    batch_size: int | None,
) -> None:
    calls = _Calls()
    calls.install(monkeypatch)  # before the nodes start, so their servicers carry the spies
    overrides = {} if batch_size is None else {"delivery": {"batch_size": batch_size}}
    cluster = make_cluster(overrides=overrides)
    ez, wh = cluster.hall(A), cluster.hall(B)
    n = 20
    try:

        def submit(i: int) -> str:
            return ez.submit(
                matter=ODA,
                to=[B],
                applicant=Applicant("张三", "citizen", citizen_id()),
                form={"n": i},
            ).packet_id

        with ThreadPoolExecutor(4) as pool:
            ids = list(pool.map(submit, range(n)))
    finally:
        calls.gate.set()  # the batches held back meanwhile may go now
    assert len(set(ids)) == n

    def all_delivered() -> bool:
        out = {i.packet_id: i.deliveries for i in ez.inbox("out", limit=100)}
        return all(out.get(p) == {B: "delivered"} for p in ids)

    wait_until("every packet delivered", all_delivered)
    assert sorted(i.packet_id for i in wh.inbox("in", limit=100)) == sorted(ids)
    assert _held(cluster, B, ids) == dict.fromkeys(ids, 1)
    assert snapshot(cluster.nodes[B])["rows"]["packets"] == n
    for p in ids:
        receipt = Receipt.from_payload(_stored_receipt(cluster, p).payload)
        assert (str(receipt.packet_id), receipt.receiver) == (p, B)

    with calls.lock:
        batches, singles = list(calls.batches), list(calls.singles)
    # Sets, not lists: the dispatcher may send an already delivered packet once more (its
    # outbox scan can act on rows read before the delivery completed); B answers "already held".
    if batch_size == 1:
        assert batches == []
        assert set(singles) == set(ids)  # one Deliver call per packet, no batches
    else:
        assert singles == []
        assert {p for b in batches for p in b} == set(ids)
        # At most two calls were under way while the halls submitted; the rest waited for them
        # and then went out together.
        assert max(len(b) for b in batches) > 1
