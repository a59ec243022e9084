"""The site as a node serves it: the node's records, its TLS identity, its metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from tongban.server.config import NodeConfig
from tongban.server.web.listener import SiteListener
from tongban.server.web.metrics import SiteMetrics
from tongban.server.web.node_backend import NodeBackend
from tongban.server.web.node_metrics import NodeCollector
from tongban.server.web.site import SiteSettings, create_site

__all__ = ["NodeSite"]


class NodeSite:
    """The node's verification site on ``[web] listen``; started and stopped with the node."""

    def __init__(
        self, config: NodeConfig, backend: NodeBackend, registry: CollectorRegistry | None = None
    ) -> None:
        web = config.web
        registry = registry or CollectorRegistry()
        self.metrics = SiteMetrics(registry)
        self.backend = backend
        registry.register(NodeCollector(self.backend.operations))
        self.app = create_site(
            self.backend,
            SiteSettings(
                max_upload_bytes=web.max_upload_bytes,
                requests_per_minute=web.requests_per_minute,
                https=True,
            ),
            metrics=self.metrics,
        )
        self._listener = SiteListener(
            self.app,
            web.listen,
            tls_cert=web.tls_cert or config.tls_cert,
            tls_key=web.tls_key or config.tls_key,
            client_roots=config.root_cert,
        )

    def start(self) -> int:
        """Start serving; returns the bound port."""
        return self._listener.start()

    def stop(self, grace: float) -> None:
        """Stop serving, giving running requests ``grace`` seconds."""
        self._listener.stop(min(grace, 5.0))
