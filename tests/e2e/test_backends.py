"""The relay round trip and a full case on every storage combination: SQLite or PostgreSQL
metadata, filesystem or S3 (a real Ceph radosgw) blobs."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.harness import Backend, Cluster, citizen_id, delivered, snapshot, wait_until
from tongban.client.hall import Applicant

ODA = ("HB-ODA-01", "异地办理营业执照变更登记")


@pytest.fixture(
    params=[
        pytest.param(("postgres", "fs"), marks=pytest.mark.postgres, id="postgres-fs"),
        pytest.param(("sqlite", "s3"), marks=pytest.mark.s3, id="sqlite-s3"),
        pytest.param(
            ("postgres", "s3"), marks=[pytest.mark.postgres, pytest.mark.s3], id="postgres-s3"
        ),
    ]
)
def backend(request: pytest.FixtureRequest) -> Backend:
    database, objects = request.param
    b = Backend()
    if database == "postgres":
        make: Callable[[str], str] = request.getfixturevalue("pg_schema")
        urls: dict[str, str] = {}
        b.database = lambda node: urls.setdefault(node, make(node))
    if objects == "s3":
        server = request.getfixturevalue("s3_server")
        run = uuid.uuid4().hex[:8]
        b.objects = lambda node: (
            server.url(f"tb-{run}-{node}"),
            server.access_key,
            server.secret_key,
        )
    return b


def test_round_trip_and_case_flow(
    make_cluster: Callable[..., Cluster], backend: Backend, tmp_path: Path
) -> None:
    c = make_cluster(("420700", "420100"), backend=backend)
    ez, wh = c.hall("420700"), c.hall("420100")
    data = os.urandom(3_300_000)  # several segments, and with 16 MiB S3 parts one part
    (tmp_path / "scan.pdf").write_bytes(data)
    r = ez.submit(
        matter=ODA,
        to=["420100"],
        applicant=Applicant("张三", "citizen", citizen_id()),
        form={"n": 1},
        files=[tmp_path / "scan.pdf"],
    )
    wait_until("delivery", delivered(ez, r.packet_id))
    got = wh.fetch(r.packet_id, tmp_path / "o")
    assert got.files[0].path.read_bytes() == data
    assert got.files[0].sha256 == hashlib.sha256(data).hexdigest()
    # Nothing rests in plaintext: the stored blob is ciphertext of the right size.
    store = c.nodes["420100"].objects
    [key] = [k for k in store.list_keys("in/")]
    blob = store.read_bytes(key)
    assert data[:64] not in blob and len(blob) == len(data) + 16 * 4
    wh.accept(r.case_id)
    wh.decide(r.case_id, approved=True)
    wait_until("decision at 鄂州", lambda: ez.case(r.case_id).legs[0].status == "decided")
    events, intact = ez.history(r.case_id)
    assert intact and [e.type for e in events] == ["submitted", "accepted", "decided"]
    before = snapshot(c.nodes["420100"])
    # Restarting the node on the same stores keeps everything.
    c.stop("420100")
    c.start("420100")
    assert snapshot(c.nodes["420100"]) == before
    assert (
        c.hall("420100").fetch(r.packet_id, tmp_path / "again").files[0].path.read_bytes() == data
    )
