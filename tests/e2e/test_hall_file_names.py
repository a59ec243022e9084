"""A hall's file names become names on disk at the receiving hall: the node takes only plain
names, and a refused submit leaves both nodes as they were."""

from __future__ import annotations

import hashlib
import uuid

import grpc
import pytest
from sqlalchemy import func, select

from tests.harness import Cluster, citizen_id, snapshot
from tongban.proto import hall_pb2, hall_pb2_grpc
from tongban.storage.sql import OutboxRow

SENDER, PEER = "420700", "420100"


def _hall_stub(cluster: Cluster) -> hall_pb2_grpc.HallServiceStub:
    d = cluster.fed / SENDER / "halls" / f"{SENDER}-hall-1"
    creds = grpc.ssl_channel_credentials(
        (d / "root.pem").read_bytes(), (d / "key.pem").read_bytes(), (d / "cert.pem").read_bytes()
    )
    channel = grpc.secure_channel(
        cluster.directory().node(SENDER).endpoint,
        creds,
        options=[("grpc.ssl_target_name_override", f"node-{SENDER}.tongban")],
    )
    return hall_pb2_grpc.HallServiceStub(channel)


def _submit_requests(file_name: str, data: bytes) -> list[hall_pb2.SubmitRequest]:
    header = hall_pb2.SubmitHeader(
        packet_id=str(uuid.uuid4()),
        kind=hall_pb2.PACKET_KIND_APPLICATION,
        mode=hall_pb2.HANDLING_MODE_ON_BEHALF,
        matter_code="HB-ODA-01",
        matter_name="异地办理营业执照变更登记",
        recipients=[hall_pb2.Recipient(node_id=PEER)],
        applicant=hall_pb2.Applicant(
            name="张三", id_type=hall_pb2.APPLICANT_ID_TYPE_CITIZEN, id_number=citizen_id()
        ),
        form_json=b'{"a": 1}',
    )
    return [
        hall_pb2.SubmitRequest(header=header),
        hall_pb2.SubmitRequest(
            file_begin=hall_pb2.FileBegin(
                name=file_name, media_type="application/pdf", size=len(data)
            )
        ),
        hall_pb2.SubmitRequest(data=data),
        hall_pb2.SubmitRequest(file_end=hall_pb2.FileEnd(sha256=hashlib.sha256(data).hexdigest())),
    ]


def _outbox_rows(cluster: Cluster) -> int:
    with cluster.nodes[SENDER].metadata.read() as session:
        return session.scalar(select(func.count()).select_from(OutboxRow)) or 0


def test_a_plain_file_name_is_taken(cluster: Cluster) -> None:
    """The control: the same submit with a plain name is stored and queued for delivery."""
    response = _hall_stub(cluster).Submit(iter(_submit_requests("id-card.pdf", b"%PDF")))
    assert response.packet_id
    assert _outbox_rows(cluster) == 1


@pytest.mark.parametrize("file_name", ["..", "."])
def test_a_dot_file_name_is_refused_and_nothing_is_stored(cluster: Cluster, file_name: str) -> None:
    before = {n: snapshot(cluster.nodes[n]) for n in (SENDER, PEER)}
    with pytest.raises(grpc.RpcError) as refused:
        _hall_stub(cluster).Submit(iter(_submit_requests(file_name, b"%PDF")), timeout=20)
    assert (refused.value.code(), refused.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        f"bad-file-name: file 0 {file_name!r} is '.' or '..'",
    )
    assert {n: snapshot(cluster.nodes[n]) for n in (SENDER, PEER)} == before
    assert _outbox_rows(cluster) == 0
