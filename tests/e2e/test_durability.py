"""Node processes killed mid-transfer and restarted lose nothing and duplicate nothing."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.harness import Cluster, citizen_id, delivered, start_cluster, wait_until
from tongban.client.errors import RequestRefused
from tongban.client.hall import Applicant, HallClient, Material

pytestmark = pytest.mark.slow

ODA = ("HB-ODA-01", "异地办理营业执照变更登记")
SIZE = 160 << 20


class NodeProcess:
    def __init__(self, cluster: Cluster, node_id: str, log: Path) -> None:
        self.cluster, self.node_id, self.log = cluster, node_id, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(
            os.environ,
            TONGBAN_DELIVERY_POLL_INTERVAL="0.2",
            TONGBAN_DELIVERY_INITIAL_BACKOFF="0.1",
            TONGBAN_DELIVERY_MAX_BACKOFF="0.5",
            TONGBAN_NODE_SHUTDOWN_GRACE_SECONDS="2",
        )
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tongban.cli.main",
                    "-v",
                    "node",
                    "serve",
                    "--config",
                    str(self.cluster.fed / self.node_id / "node.toml"),
                ],
                env=env,
                stdout=log,
                stderr=log,
            )
        hall = self.cluster.fed / self.node_id / "halls" / f"{self.node_id}-hall-1"
        creds = grpc.ssl_channel_credentials(
            (hall / "root.pem").read_bytes(),
            (hall / "key.pem").read_bytes(),
            (hall / "cert.pem").read_bytes(),
        )
        endpoint = self.cluster.directory().node(self.node_id).endpoint
        with grpc.secure_channel(
            endpoint,
            creds,
            options=[("grpc.ssl_target_name_override", f"node-{self.node_id}.tongban")],
        ) as ch:
            stub = health_pb2_grpc.HealthStub(ch)

            def up() -> bool:
                assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[
                    -2000:
                ]
                try:
                    return stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1
                except grpc.RpcError:
                    return False

            wait_until(f"node {self.node_id} to serve", up, timeout=30)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[tuple[Cluster, dict[str, NodeProcess]]]:
    cluster = start_cluster(tmp_path, ("420700", "420100"), start=False)
    # The harness reads the directory through a running node; load it from the folder instead.
    from tongban.keys.clock import utcnow
    from tongban.keys.pki import load_certificates
    from tongban.server.usecases.runtime import read_directory_file

    roots = load_certificates((cluster.fed / "public" / "root.pem").read_bytes())
    directory = read_directory_file(cluster.fed / "public" / "directory.json", roots, at=utcnow())
    cluster.directory = lambda: directory  # type: ignore[method-assign]
    nodes = {n: NodeProcess(cluster, n, tmp_path / f"{n}.log") for n in ("420700", "420100")}
    yield cluster, nodes
    for p in nodes.values():
        if p.proc is not None and p.proc.poll() is None:
            p.kill9()


def _material(seed: int) -> tuple[Material, str]:
    block = hashlib.sha256(str(seed).encode()).digest() * 32768  # 1 MiB
    digest = hashlib.sha256()
    for _ in range(SIZE // len(block)):
        digest.update(block)
    return Material(
        "big.bin",
        None,
        "application/octet-stream",
        lambda: (block for _ in range(SIZE // len(block))),
        SIZE,
    ), digest.hexdigest()


def _blob_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def test_receiver_killed_mid_transfer_gets_the_packet_once_after_restart(
    procs, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    cluster, nodes = procs
    nodes["420700"].start()
    nodes["420100"].start()
    ez = HallClient.from_profile(cluster.fed / "420700" / "halls" / "420700-hall-1")
    wh = HallClient.from_profile(cluster.fed / "420100" / "halls" / "420100-hall-1")
    material, sha = _material(1)
    r = ez.submit(
        matter=ODA,
        to=["420100"],
        applicant=Applicant("张三", "citizen", citizen_id()),
        form={},
        files=[material],
    )
    wh_blobs = cluster.fed / "420100" / "var" / "blobs" / "in"
    wait_until("the transfer to be under way", lambda: _blob_bytes(wh_blobs) > 8 << 20, timeout=60)
    nodes["420100"].kill9()
    assert not delivered(ez, r.packet_id)()
    nodes["420100"].start()
    wh = HallClient.from_profile(cluster.fed / "420100" / "halls" / "420100-hall-1")
    wait_until("redelivery after restart", delivered(ez, r.packet_id), timeout=120)
    items = [i for i in wh.inbox("in")]
    assert [i.packet_id for i in items] == [r.packet_id]
    got = wh.fetch(r.packet_id, tmp_path / "got")
    assert got.files[0].sha256 == sha and got.files[0].verified
    h = hashlib.sha256()
    with got.files[0].path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    assert h.hexdigest() == sha
    assert len(wh.case(r.case_id).legs) == 1
    ez.close()
    wh.close()
    assert nodes["420700"].terminate() == 0
    assert nodes["420100"].terminate() == 0


def test_sender_killed_mid_submit_then_resubmit_stores_once(procs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cluster, nodes = procs
    nodes["420700"].start()
    nodes["420100"].start()
    ez = HallClient.from_profile(cluster.fed / "420700" / "halls" / "420700-hall-1")
    material, sha = _material(2)
    pid = str(uuid.uuid4())
    ez_blobs = cluster.fed / "420700" / "var" / "blobs" / "out"
    import threading

    outcome: list[BaseException | None] = []

    def submit() -> None:
        try:
            ez.submit(
                matter=ODA,
                to=["420100"],
                applicant=Applicant("张三", "citizen", citizen_id()),
                form={},
                files=[material],
                packet_id=pid,
                retries=0,
            )
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    t = threading.Thread(target=submit)
    t.start()
    wait_until("the upload to be under way", lambda: _blob_bytes(ez_blobs) > 8 << 20, timeout=60)
    nodes["420700"].kill9()
    t.join(30)
    assert (
        isinstance(outcome[0], RequestRefused) and outcome[0].status == grpc.StatusCode.UNAVAILABLE
    )
    nodes["420700"].start()
    ez.close()
    ez = HallClient.from_profile(cluster.fed / "420700" / "halls" / "420700-hall-1")
    r = ez.submit(
        matter=ODA,
        to=["420100"],
        applicant=Applicant("张三", "citizen", citizen_id()),
        form={},
        files=[material],
        packet_id=pid,
    )
    assert not r.duplicate  # nothing of the killed attempt was committed
    wait_until("delivery", delivered(ez, pid), timeout=120)
    # The very same packet again (its file too: a packet without it would be other content).
    again = ez.submit(
        matter=ODA,
        to=["420100"],
        applicant=Applicant("张三", "citizen", citizen_id()),
        form={},
        files=[material],
        packet_id=pid,
    )
    assert again.duplicate and again.case_id == r.case_id
    assert [i.packet_id for i in ez.inbox("out")] == [pid]
    wh = HallClient.from_profile(cluster.fed / "420100" / "halls" / "420100-hall-1")
    assert [i.packet_id for i in wh.inbox("in")] == [pid]
    assert wh.fetch(pid, tmp_path / "o").files[0].sha256 == sha
    ez.close()
    wh.close()


def test_sigterm_mid_upload_exits_cleanly_and_the_packet_is_stored_once(
    procs, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """SIGTERM gives running calls the grace period, then cancels them: the upload either
    finished (a resubmit is a duplicate) or was abandoned (a resubmit stores it) — never half."""
    import threading

    cluster, nodes = procs
    nodes["420700"].start()
    ez = HallClient.from_profile(cluster.fed / "420700" / "halls" / "420700-hall-1")
    material, sha = _material(3)
    pid = str(uuid.uuid4())
    outcome: list[object] = []

    def submit() -> None:
        try:
            outcome.append(
                ez.submit(
                    matter=ODA,
                    to=["420100"],
                    applicant=Applicant("张三", "citizen", citizen_id()),
                    form={},
                    files=[material],
                    packet_id=pid,
                    retries=0,
                )
            )
        except RequestRefused as exc:
            outcome.append(exc)

    t = threading.Thread(target=submit)
    t.start()
    wait_until(
        "the upload to be under way",
        lambda: _blob_bytes(cluster.fed / "420700" / "var" / "blobs" / "out") > 8 << 20,
        timeout=60,
    )
    assert nodes["420700"].terminate() == 0  # graceful: exit code 0 within the grace period
    t.join(30)
    nodes["420700"].start()
    ez.close()
    ez = HallClient.from_profile(cluster.fed / "420700" / "halls" / "420700-hall-1")
    again = ez.submit(
        matter=ODA,
        to=["420100"],
        applicant=Applicant("张三", "citizen", citizen_id()),
        form={},
        files=[material],
        packet_id=pid,
    )
    finished = not isinstance(outcome[0], RequestRefused)
    assert again.duplicate is finished
    assert [i.packet_id for i in ez.inbox("out")] == [pid]
    assert ez.fetch(pid, tmp_path / "o").files[0].sha256 == sha
    leftovers = [
        p
        for p in (cluster.fed / "420700" / "var" / "blobs").rglob("*")
        if p.name.startswith(".partial-")
    ]
    assert leftovers == []
    ez.close()
