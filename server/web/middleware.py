"""ASGI middleware of the site: security headers, a rate limit per address, an upload cap."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RateLimit", "SecurityHeaders", "UploadCap", "UploadTooLarge"]

# No script at all, styles only from the site itself; nothing may frame the page.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_STATIC_PREFIX = "/static/"

Responder = Callable[[Scope, Receive, Send, int, dict[str, str]], Awaitable[None]]


class SecurityHeaders:
    """Adds CSP and friends to every response; nothing but static files may be cached."""

    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self._app = app
        self._https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith(_STATIC_PREFIX)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[tuple[bytes, bytes]] = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                extra = [
                    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                    (b"cache-control", b"public, max-age=3600" if static else b"no-store"),
                ]
                if self._https:
                    extra.append((b"strict-transport-security", b"max-age=31536000"))
                headers += [(k, v) for k, v in extra if k not in names]
                message = {**message, "headers": headers}
            await send(message)

        await self._app(scope, receive, send_with_headers)


class RateLimit:
    """At most about ``per_minute`` requests a minute from one address; 429 after.

    A sliding-window counter (the current and the previous minute, weighted): constant work
    per request however high the limit, unlike a log of every hit.

    Static files are not counted: a page and its style sheet are one visit.
    """

    def __init__(self, app: ASGIApp, *, per_minute: int, refuse: Responder) -> None:
        self._app = app
        self._limiter = SlidingWindowCounterRateLimiter(MemoryStorage())
        self._item = RateLimitItemPerMinute(per_minute)
        self._refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(_STATIC_PREFIX):
            await self._app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else "unknown"
        if not self._limiter.hit(self._item, address):
            await self._refuse(scope, receive, send, 429, {"retry-after": "60"})
            return
        await self._app(scope, receive, send)


class UploadTooLarge(Exception):
    """A request body went past the site's upload limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body above {limit} bytes")
        self.limit = limit


class UploadCap:
    """Refuses a request body above ``limit`` bytes: at once by its Content-Length, else as
    it streams in (the endpoint's reading raises :class:`UploadTooLarge`)."""

    # Multipart framing (boundaries, part headers) beyond the files themselves.
    FRAMING = 16 << 10

    def __init__(self, app: ASGIApp, *, limit: int, refuse: Responder) -> None:
        self._app = app
        self._cap = limit + self.FRAMING
        self._limit = limit
        self._refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = dict(scope.get("headers", []))
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self._cap):
            await self._refuse(scope, receive, send, 413, {"connection": "close"})
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message: dict[str, Any] = dict(await receive())
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self._cap:
                    raise UploadTooLarge(self._limit)
            return message

        await self._app(scope, counted, send)
