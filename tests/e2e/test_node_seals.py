"""Seals at the node: results are sealed automatically, and anyone can verify them."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from tests.harness import Cluster, citizen_id, delivered, wait_until
from tongban.client.hall import Applicant
from tongban.client.verify import Indication, SubIndication, seal_verification_result
from tongban.keys.clock import format_time, utcnow
from tongban.keys.directory import load_directory
from tongban.keys.pki import load_certificates
from tongban.keys.seal_registry import load_seal_registry
from tongban.proto import seal_pb2, seal_pb2_grpc
from tongban.server.grpc.converters import envelope_from_proto

ODA = ("HB-ODA-01", "异地办理营业执照变更登记")
SEAL_NAME = "武汉市行政审批局行政审批专用章"
USCC = "11420100MB0000123A"  # 武汉市 (420100), like the seal's name


def _admin_stub(cluster: Cluster, node: str, who: str = "admin") -> seal_pb2_grpc.SealServiceStub:
    d = (
        cluster.fed
        / node
        / ("admins" if who == "admin" else "halls")
        / (f"{node}-admin" if who == "admin" else f"{node}-hall-1")
    )
    creds = grpc.ssl_channel_credentials(
        (d / "root.pem").read_bytes(), (d / "key.pem").read_bytes(), (d / "cert.pem").read_bytes()
    )
    ch = grpc.secure_channel(
        cluster.directory().node(node).endpoint,
        creds,
        options=[("grpc.ssl_target_name_override", f"node-{node}.tongban")],
    )
    return seal_pb2_grpc.SealServiceStub(ch)


def _public_stub(cluster: Cluster, node: str) -> seal_pb2_grpc.VerifyServiceStub:
    """No client certificate at all: only the root, to check the node."""
    root = (cluster.fed / "public" / "root.pem").read_bytes()
    ch = grpc.secure_channel(
        cluster.directory().node(node).public_endpoint,
        grpc.ssl_channel_credentials(root),
        options=[("grpc.ssl_target_name_override", f"node-{node}.tongban")],
    )
    return seal_pb2_grpc.VerifyServiceStub(ch)


def _register(
    cluster: Cluster, node: str = "420100", seal_id: str = "wh-approval"
) -> seal_pb2.SealInfo:
    now = utcnow()
    return _admin_stub(cluster, node).RegisterSeal(
        seal_pb2.RegisterSealRequest(
            seal_id=seal_id,
            name=SEAL_NAME,
            org_uscc=USCC,
            org_name="武汉市行政审批局",
            not_before=format_time(now - timedelta(minutes=1)),
            not_after=format_time(now + timedelta(days=365)),
        )
    )


def _decided_case(cluster: Cluster, tmp: Path) -> tuple[str, object, object]:
    ez, wh = cluster.hall("420700"), cluster.hall("420100")
    r = ez.submit(
        matter=ODA, to=["420100"], applicant=Applicant("张三", "citizen", citizen_id()), form={}
    )
    wait_until("delivery", delivered(ez, r.packet_id))
    wh.accept(r.case_id)
    wh.decide(r.case_id, approved=True)
    return r.case_id, ez, wh


def test_register_needs_an_admin_of_the_node(cluster: Cluster) -> None:
    with pytest.raises(grpc.RpcError) as exc:
        _admin_stub(cluster, "420100", who="hall").RegisterSeal(
            seal_pb2.RegisterSealRequest(seal_id="x")
        )
    assert (exc.value.code(), exc.value.details()) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "permission-denied: hall 420100-hall-1 of node 420100 is not an admin of node 420100",
    )
    info = _register(cluster)
    assert (info.seal_id, info.name, info.node_id) == ("wh-approval", SEAL_NAME, "420100")
    with pytest.raises(grpc.RpcError) as exc:
        _register(cluster)
    assert (exc.value.code(), exc.value.details()) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "conflict: seal id 'wh-approval' is already registered",
    )


def test_result_is_sealed_automatically_and_verifies_independently(
    cluster: Cluster, tmp_path: Path
) -> None:
    _register(cluster)
    case_id, ez, wh = _decided_case(cluster, tmp_path)
    permit = tmp_path / "permit.pdf"
    permit.write_bytes(b"%PDF-1.4 pretend permit " * 1000)
    res = wh.return_result(case_id, [permit])  # type: ignore[attr-defined]
    wait_until("result at 鄂州", lambda: ez.case(case_id).legs[0].status == "result_returned")  # type: ignore[attr-defined]
    got = ez.fetch(res.packet_id, tmp_path / "got")  # type: ignore[attr-defined]
    assert [f.name for f in got.files] == ["permit.pdf", "permit.pdf.p7s"]
    doc, p7s = got.files[0].path, got.files[1].path
    # Independent verifier: OpenSSL with nothing but the federation root.
    root = cluster.fed / "public" / "root.pem"
    out = subprocess.run(
        [
            "openssl",
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            str(p7s),
            "-content",
            str(doc),
            "-CAfile",
            str(root),
            "-purpose",
            "any",
            "-out",
            "/dev/null",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "Verification successful" in out.stderr
    # The history records the e-certificate identifiers issued for the result.
    events, _ = ez.history(case_id)  # type: ignore[attr-defined]
    [returned] = [e for e in events if e.type == "result_returned"]
    [identifier] = returned.detail["ecerts"]
    assert identifier.startswith(f"1.2.156.3005.2.RESULT.{USCC}.")
    # Offline: root -> directory -> node key -> seal registry, all fetched without a client certificate.
    pub = _public_stub(cluster, "420100")
    roots = load_certificates(root.read_bytes())
    directory = load_directory(
        envelope_from_proto(pub.GetDirectory(seal_pb2.PublishedRequest())), roots, at=utcnow()
    )
    registry = load_seal_registry(
        envelope_from_proto(pub.GetSealRegistry(seal_pb2.PublishedRequest())),
        directory,
        at=utcnow(),
    )
    report = seal_verification_result(doc, seal=p7s, roots=roots, seals=registry.seals, at=utcnow())
    assert report.indication is Indication.VALID, report.summary
    assert report.ecert_identifier == identifier
    # Online, then revoked: the node's verification service reports it at once.
    online = pub.Verify(
        iter(
            [
                seal_pb2.VerifyRequest(
                    header=seal_pb2.VerifyHeader(document_name="permit.pdf", detached=True)
                ),
                seal_pb2.VerifyRequest(document_data=doc.read_bytes()),
                seal_pb2.VerifyRequest(seal_data=p7s.read_bytes()),
            ]
        )
    )
    assert online.indication == "VALID"
    _admin_stub(cluster, "420100").ChangeECertStatus(
        seal_pb2.ChangeECertStatusRequest(
            identifier=identifier, status="revoked", reason="许可证被依法撤销"
        )
    )
    online = pub.Verify(
        iter(
            [
                seal_pb2.VerifyRequest(header=seal_pb2.VerifyHeader(detached=True)),
                seal_pb2.VerifyRequest(document_data=doc.read_bytes()),
                seal_pb2.VerifyRequest(seal_data=p7s.read_bytes()),
            ]
        )
    )
    assert (online.indication, online.sub_indication) == (
        "INVALID",
        SubIndication.ECERT_REVOKED.value,
    )
    assert json.loads(online.report_json)["indication"] == "INVALID"
    status = pub.GetECertStatus(seal_pb2.ECertStatusRequest(identifier=identifier))
    assert (status.status, status.reason) == ("revoked", "许可证被依法撤销")
    # A tampered document fails online too.
    bad = bytearray(doc.read_bytes())
    bad[100] ^= 1
    online = pub.Verify(
        iter(
            [
                seal_pb2.VerifyRequest(header=seal_pb2.VerifyHeader(detached=True)),
                seal_pb2.VerifyRequest(document_data=bytes(bad)),
                seal_pb2.VerifyRequest(seal_data=p7s.read_bytes()),
            ]
        )
    )
    assert (online.indication, online.sub_indication) == ("INVALID", "HASH_FAILURE")


def test_result_with_a_revoked_configured_seal_is_refused(make_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    c = make_cluster(("420700", "420100"), overrides={"seals": {"result_seal": "wh-approval"}})
    _register(c)
    revoked = _admin_stub(c, "420100").RevokeSeal(
        seal_pb2.RevokeSealRequest(seal_id="wh-approval", reason="keyCompromise", note="印章遗失")
    )
    case_id, _ez, wh = _decided_case(c, tmp_path)
    (tmp_path / "p.pdf").write_bytes(b"x")
    from tests.harness import snapshot
    from tongban.client.errors import RequestRefused

    before = snapshot(c.nodes["420100"])
    with pytest.raises(RequestRefused) as exc:
        wh.return_result(case_id, [tmp_path / "p.pdf"])  # type: ignore[attr-defined]
    revoked_at = revoked.revoked_at
    admin = (c.fed / "420100" / "admins" / "420100-admin").resolve()
    assert (exc.value.status, exc.value.message) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "no-usable-seal: the result seal wh-approval ([seals] result_seal) of node 420100 was "
        f"revoked at {revoked_at}; register another, name it in [seals] result_seal: tongban "
        f"seal register --profile {admin} --seal-id ID --name NAME --org-name ORGANISATION "
        "--uscc CODE",
    )
    assert snapshot(c.nodes["420100"]) == before  # no blob, no e-certificate, no event


def test_ecert_status_refusals(cluster: Cluster) -> None:
    admin = _admin_stub(cluster, "420100")
    with pytest.raises(grpc.RpcError) as exc:
        admin.ChangeECertStatus(
            seal_pb2.ChangeECertStatusRequest(
                identifier=f"1.2.156.3005.2.DOC.{USCC}.000000000001.001.0",
                status="revoked",
                reason="x",
            )
        )
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert exc.value.details().startswith("bad-ecert-check-character:")
    with pytest.raises(grpc.RpcError) as exc:
        _public_stub(cluster, "420100").GetECertStatus(
            seal_pb2.ECertStatusRequest(identifier="garbage")
        )
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert exc.value.details().startswith("bad-ecert-identifier:")
