"""/metrics after a few packets: the node's figures, the gRPC interceptor's and the site's."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import Cluster, citizen_id, delivered, start_cluster, wait_until
from tests.web_site import SiteNode
from tongban.cli.demo import free_ports
from tongban.client.errors import RequestRefused
from tongban.client.hall import Applicant
from tongban.server.app import RelayNode
from tongban.server.config import load_config

ODA = ("HB-ODA-01", "异地办理营业执照变更登记")


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _start_with_site(cluster: Cluster, node_id: str) -> SiteNode:
    [port] = free_ports(1)
    base = f"https://127.0.0.1:{port}"
    overrides = {k: dict(v) for k, v in cluster.overrides.items()}
    overrides["web"] = {"listen": f"127.0.0.1:{port}", "site_url": base}
    node = RelayNode(
        load_config(cluster.fed / node_id / "node.toml", environ={}, overrides=overrides)
    )
    node.start()
    cluster.nodes[node_id] = node
    return SiteNode(cluster, base)


def test_metrics_after_a_few_packets(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path, ("420700", "420100"), start=False)
    try:
        cluster.start("420100")
        site = _start_with_site(cluster, "420700")
        ez = cluster.hall("420700")
        for body in ("42070419900307123", "42070419900307124"):
            r = ez.submit(
                matter=ODA,
                to=["420100"],
                applicant=Applicant("张三", "citizen", citizen_id(body)),
                form={},
            )
            wait_until("delivery", delivered(ez, r.packet_id))
        with pytest.raises(RequestRefused, match="not in the federation directory"):
            ez.submit(
                matter=ODA,
                to=["999999"],
                applicant=Applicant("李四", "citizen", citizen_id()),
                form={},
            )
        with site.http() as http:
            assert http.get("/v/nonsense").status_code == 400
            text = http.get("/metrics").text
        m = _samples(text)
        assert m[("tongban_database_up", ())] == 1
        assert m[("tongban_packets_total", (("direction", "out"),))] == 2
        assert m[("tongban_packets_total", (("direction", "in"),))] == 0
        assert m[("tongban_packets_delivered_total", ())] == 2
        assert m[("tongban_delivery_seconds_count", ())] == 2
        assert m[("tongban_delivery_seconds_bucket", (("le", "+Inf"),))] == 2
        assert m[("tongban_bytes_stored", ())] == 0  # forms only, no files
        assert ("tongban_outbox_queued", (("destination", "420100"),)) not in m
        submit = "/tongban.relay.v1.HallService/SubmitForm"
        assert m[("tongban_grpc_requests_total", (("code", "OK"), ("method", submit)))] == 2
        refused = (("code", "INVALID_ARGUMENT"), ("method", submit))
        assert m[("tongban_grpc_requests_total", refused)] == 1
        assert m[("tongban_grpc_request_seconds_count", (("method", submit),))] == 3
        assert (
            m[
                (
                    "tongban_http_requests_total",
                    (("method", "GET"), ("route", "/v/{identifier}"), ("status", "400")),
                )
            ]
            == 1
        )
    finally:
        cluster.close()
