"""Binding a node's port: a listener elsewhere is a clear refusal, a port in TIME_WAIT is not."""

from __future__ import annotations

import socket

import pytest

from tongban.server.listen import PortInUse, bind_port


def _bound(address: str) -> int:
    return int(address.rpartition(":")[2])


def test_a_port_another_program_listens_on_is_refused_before_grpc_tries() -> None:
    tried: list[str] = []
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = f"127.0.0.1:{holder.getsockname()[1]}"
        with pytest.raises(PortInUse) as refused:
            bind_port(lambda a: tried.append(a) or 0, busy, "[node] listen")
    assert str(refused.value) == (
        f"cannot listen on {busy}: the address is in use by another program; "
        "stop that program or choose a free port ([node] listen in node.toml)"
    )
    assert tried == []


def test_a_port_whose_last_connection_waits_in_time_wait_is_free() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        conn, _ = listener.accept()
        conn.close()  # the listening side closes first: its port enters TIME_WAIT
        client.close()
    address = f"127.0.0.1:{port}"
    assert bind_port(_bound, address, "[node] listen") == port


def test_another_bind_failure_names_the_setting() -> None:
    with pytest.raises(OSError, match=r"^cannot listen on 127.0.0.1:1 \(\[node\] public_listen"):
        bind_port(lambda a: 0, "127.0.0.1:1", "[node] public_listen")
