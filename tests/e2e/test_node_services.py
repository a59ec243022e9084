"""Node services around the relay: live inbox, scheduled jobs in SQL, directory refresh, health."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import inspect, text

from tests.harness import Cluster, citizen_id
from tongban.client.hall import Applicant, InboxItem, Material
from tongban.keys.directory import HallEntry, sign_directory
from tongban.keys.pki import load_private_key
from tongban.keys.signing import PrivateKeySigner

ODA = ("HB-ODA-01", "异地办理营业执照变更登记")


def test_watch_streams_packets_as_they_arrive(cluster: Cluster) -> None:
    ez, wh = cluster.hall("420700"), cluster.hall("420100")
    seen: list[InboxItem] = []
    ready = threading.Event()

    def watch() -> None:
        stream = wh.watch("in", timeout=20)
        ready.set()
        for item in stream:
            seen.append(item)
            break  # the first packet is the one this test sends

    t = threading.Thread(target=watch)
    t.start()
    assert ready.wait(5), "the watch did not start"
    r = ez.submit(
        matter=ODA, to=["420100"], applicant=Applicant("张三", "citizen", citizen_id()), form={}
    )
    t.join(20)
    assert not t.is_alive(), "the watch saw nothing within 20 s"
    assert [i.packet_id for i in seen] == [r.packet_id]
    assert seen[0].direction == "in" and seen[0].sender_node == "420700"


def test_scheduler_keeps_its_jobs_in_the_node_database(cluster: Cluster) -> None:
    engine = cluster.nodes["420700"].metadata.engine
    assert "apscheduler_jobs" in inspect(engine).get_table_names()
    with engine.connect() as conn:
        ids = sorted(r[0] for r in conn.execute(text("select id from apscheduler_jobs")))
    assert ids == ["delivery-retry", "directory-refresh", "orphan-sweep", "supervision"]


def test_directory_refresh_takes_only_a_newer_root_signed_version(cluster: Cluster) -> None:
    node = cluster.nodes["420100"]
    holder = node.directory
    current = holder.current
    root = PrivateKeySigner(load_private_key((cluster.fed / "root" / "root-key.pem").read_bytes()))  # type: ignore[arg-type]
    wuhan = current.node("420100")
    grown = replace(wuhan, halls=(*wuhan.halls, HallEntry("420100-hall-3", "武汉市 窗口 3")))
    v2 = replace(
        current,
        version=2,
        nodes=tuple(grown if n.node_id == "420100" else n for n in current.nodes),
        envelope=None,
    )
    path = cluster.fed / "420100" / "directory.json"
    # Same version again: ignored.
    assert holder.refresh() is False
    # Not signed by the root: ignored.
    rogue = PrivateKeySigner(
        load_private_key(next((cluster.fed / "420100" / "keys").glob("signing-*.pem")).read_bytes())
    )  # type: ignore[arg-type]
    path.write_text(json.dumps(sign_directory(v2, rogue).to_json_dict()))
    assert holder.refresh() is False and holder.current.version == 1
    path.write_text(json.dumps(sign_directory(v2, root).to_json_dict()))
    assert holder.refresh() is True
    assert holder.current.version == 2 and holder.current.node("420100").has_hall("420100-hall-3")


def test_health_reports_serving(cluster: Cluster, tmp_path: Path) -> None:
    d = cluster.fed / "420700" / "halls" / "420700-hall-1"
    creds = grpc.ssl_channel_credentials(
        (d / "root.pem").read_bytes(), (d / "key.pem").read_bytes(), (d / "cert.pem").read_bytes()
    )
    with grpc.secure_channel(
        cluster.directory().node("420700").endpoint,
        creds,
        options=[("grpc.ssl_target_name_override", "node-420700.tongban")],
    ) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        for service in ("", "tongban.relay.v1.HallService", "tongban.relay.v1.RelayService"):
            assert (
                stub.Check(health_pb2.HealthCheckRequest(service=service)).status
                == health_pb2.HealthCheckResponse.SERVING
            )


def test_orphan_sweep_removes_only_unreferenced_idle_blobs(cluster: Cluster) -> None:
    from tongban.server.usecases.retention import sweep_orphan_blobs

    ez = cluster.hall("420700")
    r = ez.submit(
        matter=ODA,
        to=["420100"],
        applicant=Applicant("张三", "citizen", citizen_id()),
        form={},
        files=[
            Material("a.bin", None, "application/octet-stream", lambda: iter([b"x" * 100]), 100)
        ],
    )
    rt = cluster.nodes["420700"]
    kept = sorted(rt.objects.list_keys("out/"))
    assert len(kept) == 1
    # What a crash between blob write and commit leaves, one still being written, and a
    # blob of a committed packet.
    rt.objects.put_bytes("out/dead-packet/abc123/0", b"orphaned ciphertext")
    rt.objects.put_bytes("in/other-packet/def456/3", b"orphaned too")
    rt.objects.put_bytes("out/live-packet/ghi789/0", b"still uploading")
    with rt.transfers.hold("out/live-packet/ghi789/"):
        assert sweep_orphan_blobs(rt.metadata, rt.objects, rt.transfers) == 2
    assert sorted(rt.objects.list_keys("")) == sorted([*kept, "out/live-packet/ghi789/0"])
    assert (
        sweep_orphan_blobs(rt.metadata, rt.objects, rt.transfers) == 1
    )  # no longer active, never committed
    assert sorted(rt.objects.list_keys("")) == kept
    assert ez.fetch(r.packet_id, cluster.root / "o").files[0].path.read_bytes() == b"x" * 100
