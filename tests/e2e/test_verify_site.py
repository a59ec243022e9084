"""`tongban verify-site`: the site from a node's published lists, with no node behind it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures_seal import append_incremental_update
from tests.web_site import SEAL_NAME, SiteNode, start_site_node
from tongban.cli.demo import free_ports
from tongban.client.seals import VerificationClient, fetch_published
from tongban.keys.pki import load_certificates

pytestmark = pytest.mark.slow
NODE = "420100"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SiteNode]:
    n = start_site_node(tmp_path_factory.mktemp("published-node"))
    yield n
    n.close()


def _fetch(node: SiteNode, out: Path) -> None:
    root = node.root_pem.read_bytes()
    endpoint = node.cluster.directory().node(NODE).public_endpoint
    with VerificationClient(endpoint, node_id=NODE, root_pem=root) as client:
        fetch_published(client, out, roots=load_certificates(root))


def _verify_site(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tongban.cli.main", "verify-site", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _wait_up(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            httpx.get(url + "/", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("verify-site did not come up")


def test_offline_site_answers_from_the_published_lists(node: SiteNode, tmp_path: Path) -> None:
    valid_id, sealed = node.seal_pdf("Licence checked offline")
    revoked_id, _ = node.seal_pdf("Licence revoked before the lists were fetched")
    node.admin().change_ecert_status(revoked_id, "revoked", "许可证被依法吊销")
    published = tmp_path / "pub"
    _fetch(node, published)
    [port] = free_ports(1)
    url = f"http://127.0.0.1:{port}"
    proc = _verify_site(
        "--published",
        str(published),
        "--trust",
        str(node.root_pem),
        "--listen",
        f"127.0.0.1:{port}",
        "--refresh-seconds",
        "0.5",
    )
    try:
        _wait_up(url, proc)
        with httpx.Client(base_url=url, timeout=30) as http:
            revoked = http.get(f"/v/{revoked_id}")
            unknown = http.get(f"/v/{valid_id}")
            upload = http.post("/check", files={"document": ("p.pdf", sealed, "application/pdf")})
            tampered = http.post(
                "/api/v1/verify",
                files={"document": ("p.pdf", append_incremental_update(sealed), "application/pdf")},
            )
            ops = http.get("/ops")
            assert revoked.status_code == 200
            assert '<span class="word">无效</span>' in revoked.text
            assert (
                "<strong>已撤销</strong>" in revoked.text
                and "原因：许可证被依法吊销" in revoked.text
            )
            assert "离线核验" in revoked.text
            # Offline, an identifier without a recorded change is never called valid.
            assert unknown.status_code == 200
            assert '<span class="word">无法确定</span>' in unknown.text
            assert "离线核验只能查到证照状态的变更" in unknown.text
            assert upload.status_code == 200 and '<span class="word">有效</span>' in upload.text
            assert SEAL_NAME in upload.text
            assert tampered.json()["sub_indication"] == "HASH_FAILURE"
            assert ops.status_code == 404  # no node, no operations view
            # The node revokes the other one; the next fetch reaches the site by its refresh.
            node.admin().change_ecert_status(valid_id, "cancelled", "企业申请注销")
            _fetch(node, published)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                body = http.get(f"/api/v1/ecerts/{valid_id}").json()
                if body["status"] is not None:
                    break
                time.sleep(0.2)
            assert body["status"]["status"] == "cancelled"
            assert body["report"]["sub_indication"] == "ECERT_CANCELLED"
            # Lists that no longer verify are not taken: the last good ones stay.
            listing = json.loads((published / NODE / "status-list.json").read_text())
            listing["signatures"][0]["sig"] = listing["signatures"][0]["sig"][::-1]
            (published / NODE / "status-list.json").write_text(json.dumps(listing))
            time.sleep(1.5)
            again = http.get(f"/api/v1/ecerts/{valid_id}").json()
            assert again["status"]["status"] == "cancelled"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.startswith(f"serving the lists of node {NODE} on http://127.0.0.1:{port}")
    assert "published lists in" in err and "not taken" in err


def test_lists_that_do_not_verify_are_refused_at_start(node: SiteNode, tmp_path: Path) -> None:
    published = tmp_path / "pub"
    _fetch(node, published)
    other = tmp_path / "other-root.pem"
    from tests.fixtures_seal import seal_world, write_pem

    write_pem(other, seal_world().other_root)
    proc = _verify_site(
        "--published", str(published), "--trust", str(other), "--listen", "127.0.0.1:0"
    )
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert err.startswith("tongban verify-site: not trusted: ")
    missing = _verify_site("--published", str(tmp_path / "nowhere"), "--trust", str(node.root_pem))
    _, err = missing.communicate(timeout=60)
    assert missing.returncode == 2 and "No such file or directory" in err
