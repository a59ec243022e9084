"""A node in a process of its own (``tongban node serve``), to kill -9, SIGTERM and restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.harness import Cluster, wait_until
from tongban.keys.clock import utcnow
from tongban.keys.pki import load_certificates
from tongban.server.usecases.runtime import read_directory_file

__all__ = ["FAST_DELIVERY", "NodeProcess", "read_directory"]

# Retries soon after a failure, so that a test sees recovery in seconds.
FAST_DELIVERY = {
    "TONGBAN_DELIVERY_POLL_INTERVAL": "0.2",
    "TONGBAN_DELIVERY_INITIAL_BACKOFF": "0.1",
    "TONGBAN_DELIVERY_MAX_BACKOFF": "0.5",
    "TONGBAN_NODE_SHUTDOWN_GRACE_SECONDS": "2",
}


def read_directory(cluster: Cluster) -> None:
    """Let the harness read the directory from the federation folder (no node in-process)."""
    roots = load_certificates((cluster.fed / "public" / "root.pem").read_bytes())
    directory = read_directory_file(cluster.fed / "public" / "directory.json", roots, at=utcnow())
    cluster.directory = lambda: directory  # type: ignore[method-assign]


class NodeProcess:
    """``tongban node serve`` for one node of ``cluster``; its output goes to ``log``."""

    def __init__(
        self, cluster: Cluster, node_id: str, log: Path, env: dict[str, str] | None = None
    ) -> None:
        self.cluster, self.node_id, self.log = cluster, node_id, log
        self.env = {**FAST_DELIVERY, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, *, wait: bool = True) -> None:
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
                env=dict(os.environ, **self.env),
                stdout=log,
                stderr=log,
            )
        if wait:
            wait_until(f"node {self.node_id} to serve", self.serving, timeout=60)

    def serving(self) -> bool:
        """Whether the node answers its health check with SERVING."""
        assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-3000:]
        hall = self.cluster.fed / self.node_id / "halls" / f"{self.node_id}-hall-1"
        creds = grpc.ssl_channel_credentials(
            (hall / "root.pem").read_bytes(),
            (hall / "key.pem").read_bytes(),
            (hall / "cert.pem").read_bytes(),
        )
        endpoint = self.cluster.directory().node(self.node_id).endpoint
        options = [("grpc.ssl_target_name_override", f"node-{self.node_id}.tongban")]
        with grpc.secure_channel(endpoint, creds, options=options) as channel:
            try:
                status = (
                    health_pb2_grpc.HealthStub(channel)
                    .Check(health_pb2.HealthCheckRequest(), timeout=1)
                    .status
                )
            except grpc.RpcError:
                return False
        return bool(status == health_pb2.HealthCheckResponse.SERVING)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)
