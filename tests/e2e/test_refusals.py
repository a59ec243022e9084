"""Every bad input gets a precise gRPC status and message and leaves the store as it was."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.harness import (
    Cluster,
    ForgedFile,
    citizen_id,
    deliver,
    delivered,
    forge_delivery,
    snapshot,
    wait_until,
)
from tongban.keys.pki import (
    Role,
    certificate_pem,
    generate_root,
    generate_signing_key,
    issue_certificate,
    private_key_pem,
)
from tongban.keys.signing import PrivateKeySigner
from tongban.proto import hall_pb2, hall_pb2_grpc, relay_pb2

ODA = ("HB-ODA-01", "异地办理营业执照变更登记")


def _hall_stub(
    cluster: Cluster,
    node: str,
    hall: str,
    *,
    cert: bytes | None = None,
    key: bytes | None = None,
    root: bytes | None = None,
) -> hall_pb2_grpc.HallServiceStub:
    d = cluster.fed / node / "halls" / hall
    creds = grpc.ssl_channel_credentials(
        root or (d / "root.pem").read_bytes(),
        key if key is not None else (d / "key.pem").read_bytes(),
        cert if cert is not None else (d / "cert.pem").read_bytes(),
    )
    endpoint = cluster.directory().node(node).endpoint
    ch = grpc.secure_channel(
        endpoint, creds, options=[("grpc.ssl_target_name_override", f"node-{node}.tongban")]
    )
    return hall_pb2_grpc.HallServiceStub(ch)


def _header(**kw: object) -> hall_pb2.SubmitHeader:
    base: dict[str, object] = dict(
        packet_id=str(uuid.uuid4()),
        kind=hall_pb2.PACKET_KIND_APPLICATION,
        mode=hall_pb2.HANDLING_MODE_ON_BEHALF,
        matter_code=ODA[0],
        matter_name=ODA[1],
        recipients=[hall_pb2.Recipient(node_id="420100")],
        applicant=hall_pb2.Applicant(
            name="张三", id_type=hall_pb2.APPLICANT_ID_TYPE_CITIZEN, id_number=citizen_id()
        ),
        form_json=b'{"a": 1}',
    )
    base.update(kw)
    return hall_pb2.SubmitHeader(**base)  # type: ignore[arg-type]


def _file_parts(
    name: str, data: bytes, sha: str | None = None, end: bool = True
) -> Iterator[hall_pb2.SubmitRequest]:
    yield hall_pb2.SubmitRequest(
        file_begin=hall_pb2.FileBegin(name=name, media_type="image/jpeg", size=len(data))
    )
    yield hall_pb2.SubmitRequest(data=data)
    if end:
        yield hall_pb2.SubmitRequest(
            file_end=hall_pb2.FileEnd(sha256=sha or hashlib.sha256(data).hexdigest())
        )


def _refused_submit(
    cluster: Cluster,
    header: hall_pb2.SubmitHeader,
    files: list[hall_pb2.SubmitRequest] | None = None,
    node: str = "420700",
    hall: str = "420700-hall-1",
) -> grpc.RpcError:
    stub = _hall_stub(cluster, node, hall)
    before = snapshot(cluster.nodes[node])
    with pytest.raises(grpc.RpcError) as exc:
        stub.Submit(iter([hall_pb2.SubmitRequest(header=header), *(files or [])]), timeout=20)
    assert snapshot(cluster.nodes[node]) == before, (
        "a refused submit must leave the store as it was"
    )
    if files is None:
        # The same packet in one plain call gets the very same answer and stores nothing.
        with pytest.raises(grpc.RpcError) as plain:
            stub.SubmitForm(header, timeout=20)
        assert (plain.value.code(), plain.value.details()) == (
            exc.value.code(),
            exc.value.details(),
        )
        assert snapshot(cluster.nodes[node]) == before
    return exc.value


# ---- hall-side refusals ----------------------------------------------------------------------


def test_invalid_citizen_id_is_refused(cluster: Cluster) -> None:
    bad = citizen_id()[:-1] + ("0" if citizen_id()[-1] != "0" else "1")
    err = _refused_submit(
        cluster,
        _header(
            applicant=hall_pb2.Applicant(
                name="张三", id_type=hall_pb2.APPLICANT_ID_TYPE_CITIZEN, id_number=bad
            )
        ),
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == (
        f"invalid-identifier: citizen id check digit is '{bad[-1]}', expected '{citizen_id()[-1]}'"
    )


def test_invalid_credit_code_is_refused(cluster: Cluster) -> None:
    err = _refused_submit(
        cluster,
        _header(
            applicant=hall_pb2.Applicant(
                name="某公司",
                id_type=hall_pb2.APPLICANT_ID_TYPE_COMPANY,
                id_number="91350100M000100Y44",
            )
        ),
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("invalid-identifier: ")
    assert "check" in err.details()


def test_unknown_matter_code_is_refused(cluster: Cluster) -> None:
    err = _refused_submit(cluster, _header(matter_code="HB-9999-99", matter_name=""))
    assert (err.code(), err.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "unknown-matter: unknown matter code 'HB-9999-99'",
    )


def test_malformed_form_is_refused(cluster: Cluster) -> None:
    err = _refused_submit(cluster, _header(form_json=b'{"a": 1'))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("malformed-form: form is not UTF-8 JSON: ")
    err = _refused_submit(cluster, _header(form_json=b"[1, 2]"))
    assert (err.code(), err.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "malformed-form: form must be a JSON object, got list",
    )


def test_oversize_form_and_oversize_message(cluster: Cluster) -> None:
    big_form = json.dumps({"x": "a" * (1 << 20)}).encode()
    err = _refused_submit(cluster, _header(form_json=big_form))
    assert (err.code(), err.details()) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"too-large: form is {len(big_form)} bytes; the limit is 1048576",
    )
    huge = b"\0" * (9 << 20)  # one message above the node's 8 MiB message limit
    stub = _hall_stub(cluster, "420700", "420700-hall-1")
    before = snapshot(cluster.nodes["420700"])
    header = _header(form_json=huge)
    for send in (
        lambda: stub.Submit(iter([hall_pb2.SubmitRequest(header=header)]), timeout=20),
        lambda: stub.SubmitForm(header, timeout=20),
    ):
        with pytest.raises(grpc.RpcError) as exc:
            send()
        assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "larger than max" in exc.value.details()
    assert snapshot(cluster.nodes["420700"]) == before
    err = _refused_submit(cluster, _header(), list(_file_parts("a.bin", huge)))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in err.details()


def test_hall_declared_digest_mismatch_is_refused(cluster: Cluster) -> None:
    err = _refused_submit(cluster, _header(), list(_file_parts("a.jpg", b"abc", sha="00" * 32)))
    assert (err.code(), err.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "manifest-digest-mismatch: file 0 'a.jpg': the SHA-256 the hall declared does not match the bytes received",
    )


def test_truncated_hall_stream_is_refused(cluster: Cluster) -> None:
    err = _refused_submit(cluster, _header(), list(_file_parts("a.jpg", b"abc", end=False)))
    assert (err.code(), err.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "truncated-stream: the stream ended inside file 'a.jpg' (no file end)",
    )


def test_recipient_outside_the_federation_is_refused(cluster: Cluster) -> None:
    err = _refused_submit(cluster, _header(recipients=[hall_pb2.Recipient(node_id="110000")]))
    assert (err.code(), err.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid-request: recipient node '110000' is not in the federation directory",
    )


def test_hall_cannot_read_another_halls_packet(cluster: Cluster) -> None:
    ez = cluster.hall("420700")
    from tongban.client.hall import Applicant

    r = ez.submit(
        matter=ODA, to=["420100"], applicant=Applicant("张三", "citizen", citizen_id()), form={}
    )
    wait_until("delivery", delivered(ez, r.packet_id))
    for node, hall in (("420100", "420100-hall-2"), ("420700", "420700-hall-2")):
        stub = _hall_stub(cluster, node, hall)
        with pytest.raises(grpc.RpcError) as exc:
            list(stub.Fetch(hall_pb2.FetchRequest(packet_id=r.packet_id), timeout=10))
        assert (exc.value.code(), exc.value.details()) == (
            grpc.StatusCode.NOT_FOUND,
            f"not-found: packet {r.packet_id} not found for hall {hall}",
        )
        assert r.packet_id not in [
            e.packet_id for e in stub.ListInbox(hall_pb2.InboxRequest()).entries
        ]
        with pytest.raises(grpc.RpcError) as exc:
            stub.GetCase(hall_pb2.CaseRequest(case_id=r.case_id))
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND


def test_identity_comes_from_the_certificate(cluster: Cluster) -> None:
    # A hall of 鄂州 presenting its own (valid) certificate to the 武汉 node.
    d = cluster.fed / "420700" / "halls" / "420700-hall-1"
    stub = _hall_stub(
        cluster,
        "420100",
        "420100-hall-1",
        cert=(d / "cert.pem").read_bytes(),
        key=(d / "key.pem").read_bytes(),
    )
    with pytest.raises(grpc.RpcError) as exc:
        stub.ListInbox(hall_pb2.InboxRequest())
    assert (exc.value.code(), exc.value.details()) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "permission-denied: hall 420700-hall-1 belongs to node 420700, not to 420100",
    )
    # A node certificate is not a hall.
    n = cluster.fed / "420700" / "tls"
    stub = _hall_stub(
        cluster,
        "420100",
        "420100-hall-1",
        cert=(n / "node.pem").read_bytes(),
        key=(n / "node-key.pem").read_bytes(),
    )
    with pytest.raises(grpc.RpcError) as exc:
        stub.ListInbox(hall_pb2.InboxRequest())
    assert (exc.value.code(), exc.value.details()) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "permission-denied: node 420700 of node 420700 may not use the hall service",
    )


def test_client_without_certificate_or_from_outside_is_refused_at_the_handshake(
    cluster: Cluster,
) -> None:
    root = (cluster.fed / "public" / "root.pem").read_bytes()
    endpoint = cluster.directory().node("420100").endpoint
    no_cert = grpc.secure_channel(
        endpoint,
        grpc.ssl_channel_credentials(root),
        options=[("grpc.ssl_target_name_override", "node-420100.tongban")],
    )
    with pytest.raises(grpc.RpcError) as exc:
        hall_pb2_grpc.HallServiceStub(no_cert).ListInbox(hall_pb2.InboxRequest(), timeout=5)
    assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
    now = datetime.now(UTC)
    other_key, other_root = generate_root(now=now, name="not the federation")
    k = generate_signing_key()
    cert = issue_certificate(
        other_key,
        other_root,
        k.public_key(),
        role=Role.HALL,
        node_id="420100",
        name="420100-hall-1",
        now=now,
    )
    stub = _hall_stub(
        cluster, "420100", "420100-hall-1", cert=certificate_pem(cert), key=private_key_pem(k)
    )
    with pytest.raises(grpc.RpcError) as exc:
        stub.ListInbox(hall_pb2.InboxRequest(), timeout=5)
    assert exc.value.code() == grpc.StatusCode.UNAVAILABLE


# ---- node-to-node refusals -------------------------------------------------------------------


def _refused_delivery(
    cluster: Cluster,
    requests: list[relay_pb2.DeliverRequest],
    *,
    as_node: str = "420700",
    to_node: str = "420100",
) -> grpc.RpcError:
    before = snapshot(cluster.nodes[to_node])
    with pytest.raises(grpc.RpcError) as exc:
        deliver(cluster, requests, as_node=as_node, to_node=to_node)
    assert snapshot(cluster.nodes[to_node]) == before, (
        "a refused delivery must leave the store as it was"
    )
    return exc.value


FILES = [ForgedFile("a.bin", b"A" * 3000), ForgedFile("b.bin", b"B" * 10)]


def test_forged_delivery_is_accepted_when_intact(cluster: Cluster) -> None:
    """The forging helper itself produces packets a node accepts (so the refusals below mean something)."""
    reqs = forge_delivery(cluster, sender="420700", recipient="420100", files=FILES)
    resp = deliver(cluster, reqs, as_node="420700", to_node="420100")
    assert (
        not resp.duplicate
        and resp.receipt.payload_type == "application/vnd.tongban.receipt.v1+json"
    )


def test_tampered_ciphertext_segment_is_refused(cluster: Cluster) -> None:
    def flip(segs: list[relay_pb2.DeliverRequest]) -> list[relay_pb2.DeliverRequest]:
        ct = bytearray(segs[1].segment.ciphertext)
        ct[10] ^= 0x01
        segs[1].segment.ciphertext = bytes(ct)
        return segs

    err = _refused_delivery(
        cluster,
        forge_delivery(
            cluster, sender="420700", recipient="420100", files=FILES, mutate_segments=flip
        ),
    )
    assert (err.code(), err.details()) == (
        grpc.StatusCode.DATA_LOSS,
        "decryption-failed: segment 1 failed authentication",
    )


def test_truncated_file_stream_is_refused(cluster: Cluster) -> None:
    err = _refused_delivery(
        cluster,
        forge_delivery(
            cluster,
            sender="420700",
            recipient="420100",
            files=FILES[:1],
            mutate_segments=lambda s: s[:-1],
        ),
    )
    assert (err.code(), err.details()) == (
        grpc.StatusCode.DATA_LOSS,
        "truncated-stream: stream ended after 2 segments without the final one",
    )


def test_manifest_digest_mismatch_is_refused(cluster: Cluster) -> None:
    err = _refused_delivery(
        cluster,
        forge_delivery(
            cluster,
            sender="420700",
            recipient="420100",
            files=FILES,
            manifest_sha=lambda i, sha: "0" * 64 if i == 1 else sha,
        ),
    )
    assert (err.code(), err.details()) == (
        grpc.StatusCode.DATA_LOSS,
        "manifest-digest-mismatch: file 1 'b.bin' does not match its signed SHA-256 digest",
    )


def test_signature_by_a_key_not_in_the_directory_is_refused(cluster: Cluster) -> None:
    rogue = PrivateKeySigner(ed25519.Ed25519PrivateKey.generate())
    err = _refused_delivery(
        cluster,
        forge_delivery(cluster, sender="420700", recipient="420100", files=FILES, signer=rogue),
    )
    assert (err.code(), err.details()) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "bad-signature: no signature verifies under a key this signer holds",
    )


def test_packet_signed_by_another_member_is_refused(cluster: Cluster) -> None:
    # Signed with 深圳's real key but sent over 鄂州's connection: the connection decides the sender.
    err = _refused_delivery(
        cluster,
        forge_delivery(
            cluster,
            sender="420700",
            recipient="420100",
            files=FILES,
            signer=cluster.signer_of("440300"),
        ),
    )
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


def test_packet_for_another_node_is_refused(cluster: Cluster) -> None:
    reqs = forge_delivery(
        cluster, sender="420700", recipient="420100", files=FILES, addressed_to=["440300"]
    )
    err = _refused_delivery(cluster, reqs)
    pid = json.loads(reqs[0].opening.statement.payload)["packet_id"]
    assert (err.code(), err.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        f"wrong-recipient: packet {pid} is addressed to 440300, not to this node 420100",
    )


def test_replayed_packet_returns_the_same_receipt_and_no_second_case(
    cluster: Cluster, tmp_path: Path
) -> None:
    reqs = forge_delivery(cluster, sender="420700", recipient="420100", files=FILES)
    first = deliver(cluster, reqs, as_node="420700", to_node="420100")
    after_first = snapshot(cluster.nodes["420100"])
    again = deliver(cluster, reqs, as_node="420700", to_node="420100")
    assert again.duplicate and not first.duplicate
    assert again.receipt == first.receipt
    assert snapshot(cluster.nodes["420100"]) == after_first
    assert after_first["rows"]["cases"] == 1 and after_first["rows"]["packets"] == 1
    # Same packet id, different content: a conflict, not a silent overwrite.
    other = forge_delivery(
        cluster,
        sender="420700",
        recipient="420100",
        files=FILES[:1],
        packet_id=uuid.UUID(json.loads(reqs[0].opening.statement.payload)["packet_id"]),
    )
    err = _refused_delivery(cluster, other)
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    assert err.details().endswith("is already held with other content")


def test_hall_resubmit_with_same_packet_id_is_idempotent(cluster: Cluster) -> None:
    from tongban.client.hall import Applicant

    ez = cluster.hall("420700")
    pid = str(uuid.uuid4())
    a = Applicant("张三", "citizen", citizen_id())
    first = ez.submit(matter=ODA, to=["420100"], applicant=a, form={}, packet_id=pid)
    second = ez.submit(matter=ODA, to=["420100"], applicant=a, form={}, packet_id=pid)
    assert second.duplicate and not first.duplicate and second.case_id == first.case_id
    wait_until("delivery", delivered(ez, pid))
    assert snapshot(cluster.nodes["420700"])["rows"]["cases"] == 1
    assert snapshot(cluster.nodes["420100"])["rows"]["cases"] == 1
