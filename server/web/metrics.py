"""Prometheus metrics of the site: requests by route and status, and verifications."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SiteMetrics"]


class SiteMetrics:
    """The site's own metrics, in ``registry`` (the node adds its own collectors to it)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "tongban_http_requests",
            "HTTP requests answered by the verification site",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "tongban_http_request_seconds",
            "Time to answer an HTTP request of the verification site",
            ["route"],
            registry=registry,
        )
        self.verifications = Counter(
            "tongban_verifications",
            "Verifications by the site: of an identifier's records or of an upload",
            ["kind", "indication"],
            registry=registry,
        )

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """Counts and times every request, labelled by its route template (never the id)."""

        async def measured(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            route = _route_of(scope)
            status = 500
            started = time.perf_counter()

            async def send_status(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                await send(message)

            try:
                await app(scope, receive, send_status)
            finally:
                self.latency.labels(route=route).observe(time.perf_counter() - started)
                self.requests.labels(route=route, method=scope["method"], status=str(status)).inc()

        return measured


def _route_of(scope: Scope) -> str:
    router = scope.get("app")
    for route in getattr(getattr(router, "router", None), "routes", []):
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return str(getattr(route, "path", "other"))
    return "other"
