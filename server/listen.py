"""Binding a node's ports, with a refusal that names the port, its setting and the fix."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable

__all__ = ["PortInUse", "bind_port"]


class PortInUse(OSError):
    """Another program holds the address a node was told to listen on."""

    code = "port-in-use"


def _in_use(address: str) -> bool:
    """Whether binding ``address`` (HOST:PORT) now fails because something holds it."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104 - the node's own listen address
    if port in ("", "0"):
        return False
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except (OSError, ValueError):
        return False  # grpc refuses the address itself, with its own words
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as probe:
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return True
    return False


def bind_port(add_port: Callable[[str], int], address: str, setting: str) -> int:
    """Bind ``address`` with grpc's ``add_port``; returns the port.

    Raises:
        PortInUse: another program listens there; the message names ``setting`` to change.
        OSError: the address cannot be bound for another reason.
    """
    in_use = PortInUse(
        f"cannot listen on {address}: the address is in use by another program; "
        f"stop that program or choose a free port ({setting} in node.toml)"
    )
    if _in_use(address):  # before grpc, which logs its own failure as well
        raise in_use
    try:
        port = add_port(address)
    except RuntimeError:
        port = 0
    if port == 0:
        if _in_use(address):
            raise in_use
        raise OSError(f"cannot listen on {address} ({setting} in node.toml)")
    return port
