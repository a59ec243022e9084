"""Serving the site with uvicorn on a thread of its own, over HTTPS.

The TLS layer asks for a client certificate but does not require one: phones have none,
administrators present theirs for the operations view. A presented certificate must chain
to the federation root (the handshake checks it); the leaf reaches the application as the
ASGI TLS extension's ``client_cert_chain``.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.utils import is_ssl

from tongban.keys.errors import CallerError

__all__ = ["SiteListener"]

_START_TIMEOUT = 10.0


class _ClientCertificateProtocol(H11Protocol):
    """HTTP/1.1 that passes the verified client certificate on to the application."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not is_ssl(transport):
            return
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            return
        pem = ssl.DER_cert_to_PEM_cert(der)
        inner = self.app

        async def with_certificate(scope: Any, receive: Any, send: Any) -> None:
            extensions = dict(scope.get("extensions") or {})
            extensions["tls"] = {"client_cert_chain": [pem], "client_cert_error": None}
            await inner({**scope, "extensions": extensions}, receive, send)

        self.app = with_certificate


def _bind(address: str) -> socket.socket:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise CallerError(f"listen address {address!r} is not host:port")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP by name: asyncio turns Nagle off (TCP_NODELAY) only on connections of a
    # socket that says it is TCP. With Nagle on, a response's body waits for the ACK of its
    # headers, which the client delays: 40 ms a request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, int(port)))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    return sock


class SiteListener:
    """The site on ``address``: :meth:`start` binds (port 0 picks one), :meth:`stop` ends it."""

    def __init__(
        self,
        app: ASGIApp,
        address: str,
        *,
        tls_cert: Path | None,
        tls_key: Path | None,
        client_roots: Path | None = None,
    ) -> None:
        self._address = address
        options: dict[str, Any] = {}
        if tls_cert is not None and tls_key is not None:
            options = {"ssl_certfile": str(tls_cert), "ssl_keyfile": str(tls_key)}
            if client_roots is not None:
                options.update(ssl_ca_certs=str(client_roots), ssl_cert_reqs=ssl.CERT_OPTIONAL)
        self._config = uvicorn.Config(
            app,
            http=_ClientCertificateProtocol,
            lifespan="off",
            log_level="warning",
            access_log=False,
            server_header=False,
            timeout_keep_alive=5,
            **options,
        )
        self._server = uvicorn.Server(self._config)
        self._thread: threading.Thread | None = None
        self.port = 0

    def start(self) -> int:
        """Bind, start serving on a thread, and return the bound port."""
        sock = _bind(self._address)
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="web", daemon=True
        )
        self._thread.start()
        pause = threading.Event()
        for _ in range(int(_START_TIMEOUT / 0.01)):
            if self._server.started or not self._thread.is_alive():
                break
            pause.wait(0.01)
        if not self._server.started:
            raise OSError(f"the verification site did not start on {self._address}")
        return self.port

    def stop(self, grace: float = 5.0) -> None:
        """Stop taking connections, let running requests finish for ``grace`` seconds."""
        if self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(grace + 1.0)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(2.0)
        self._thread = None
