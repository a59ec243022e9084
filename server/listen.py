"""Binding a node's ports, with a refusal that names the port, its setting and the fix."""

from __future__ import annotations

import socket
from collections.abc import Callable

__all__ = ["PortInUse", "bind_port"]


class PortInUse(OSError):
    """Another program holds the address a node was told to listen on."""

    code = "port-in-use"


def _in_use(address: str) -> bool:
    """Whether a program listens on ``address`` (HOST:PORT) now: it accepts a connection.

    Asked by connecting rather than by binding: a port whose earlier connections still wait
    out TIME_WAIT cannot be bound by a plain socket, yet grpc binds it and serves.
    """
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if port in ("", "0") or not port.isdigit():
        return False
    target = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104
    try:
        with socket.create_connection((target, int(port)), timeout=2):
            return True
    except OSError:
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
