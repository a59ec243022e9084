"""A node serving its verification site, for the web tests: a seal, sealed PDFs, a client."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx

from tests.fixtures_seal import make_pdf
from tests.harness import Backend, Cluster, start_cluster
from tongban.cli.demo import free_ports
from tongban.client.seals import SealClient
from tongban.keys.clock import utcnow

NODE = "420100"
SEAL_ID = "wh-approval"
SEAL_NAME = "武汉市行政审批局行政审批专用章"
USCC = "11420100MB0000123A"


@dataclass
class SiteNode:
    cluster: Cluster
    base_url: str
    _clients: list[SealClient] = field(default_factory=list)

    @property
    def fed(self) -> Path:
        return self.cluster.fed

    @property
    def root_pem(self) -> Path:
        return self.fed / "public" / "root.pem"

    def admin(self) -> SealClient:
        c = SealClient.from_profile(self.fed / NODE / "admins" / f"{NODE}-admin")
        self._clients.append(c)
        return c

    def hall(self) -> SealClient:
        c = SealClient.from_profile(self.fed / NODE / "halls" / f"{NODE}-hall-1")
        self._clients.append(c)
        return c

    def seal_pdf(
        self, text: str = "Business licence 2026-0001", name: str = "营业执照.pdf"
    ) -> tuple[str, bytes]:
        sealed = self.hall().seal_document(
            make_pdf(text), seal_id=SEAL_ID, type_code="LICENCE", pdf=True, document_name=name
        )
        return sealed.identifier, sealed.data

    def http(self, cert: Path | None = None) -> httpx.Client:
        """A client that trusts the federation root (the site presents the node's TLS
        certificate, named for the node rather than for 127.0.0.1)."""
        ctx = ssl.create_default_context(cafile=str(self.root_pem))
        ctx.check_hostname = False
        if cert is not None:
            ctx.load_cert_chain(cert / "cert.pem", cert / "key.pem")
        return httpx.Client(base_url=self.base_url, verify=ctx, timeout=30.0)

    def close(self) -> None:
        for c in self._clients:
            c.close()
        self.cluster.close()


def start_site_node(root: Path, backend: Backend | None = None, **web: object) -> SiteNode:
    """One node with its site on a fixed free port and a registered seal."""
    [port] = free_ports(1)
    base_url = f"https://127.0.0.1:{port}"
    settings: dict[str, object] = {"listen": f"127.0.0.1:{port}", "site_url": base_url}
    settings.update(web)
    cluster = start_cluster(root, (NODE,), backend=backend, overrides={"web": settings})
    node = SiteNode(cluster, base_url)
    now = utcnow()
    node.admin().register_seal(
        SEAL_ID,
        SEAL_NAME,
        USCC,
        org_name="武汉市行政审批局",
        not_before=now - timedelta(minutes=1),
        not_after=now + timedelta(days=365),
    )
    return node
