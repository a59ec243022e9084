"""The CPU floor of each relay figure: what the unavoidable parts cost on this machine.

Run: ``.venv/bin/python bench/bench_floor.py [--rounds N] [--quick]``  (about 40 seconds)

Every packet the relay carries needs, at the least, two gRPC hops over mutual TLS (hall to
node A, A to node B), the packet's cryptography (HPKE wrap for A itself and for B, unwrap at
B, three Ed25519 signatures: statement, "submitted" event and receipt, and their three
verifications), and for files: AES-256-GCM at both nodes, SHA-256 of the plaintext at the
hall and at both nodes and of the ciphertext B stored (its receipt names that digest), and
the bytes written durably at both nodes, and the rows each node commits. Each hop is priced
the way the relay makes it: the hall's form-only packet is one unary call; its application
is the real submit stream of ten messages (header, then begin / data / end per scan); small
packets travel from A to B up to 64 in one ``DeliverBatch`` call, so that call is priced per
batch and divided by its packets; large ones go one stream each. SHA-256 is counted once
per pass the code makes over a file's bytes: the plaintext at the hall, at A and at B, and
the ciphertext at A and at B as each stores it (five). SQL is priced as the node writes it:
one statement per table for a group of packets (group commit) and one commit per group,
through SQLAlchemy Core on the node's own schema and SQLite settings (WAL, synchronous
FULL) -- the ORM's own cost is not counted.
This script measures each of those parts alone, in this process and in a bare grpcio server
process (generic handlers, no protobuf, no application code), and adds them up into the CPU
one packet (or one MB) needs before any of the relay's own code runs.

The machine's cores bound every figure: ``rate <= cores / floor``. The last column is what
a target leaves, per packet (or per MB), for everything else the halls and both nodes do:
servicers, validation, SQL, workflow, delivery. Where it is near zero or below, no
implementation of this design on this stack reaches the target on this machine. The parts
vary by 10-20 % from run to run here, so each is the median of several rounds.

Output: a table on stdout and ``bench/results/floor-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

from tongban.keys.content import new_data_key, unwrap_data_key, wrap_data_key

MB = 1_000_000
TARGETS = {"a": 800.0, "b": 150.0, "c": 200.0}

_SERVER = r"""
import sys, grpc
from concurrent import futures
def sink(requests, context):
    for _ in requests:
        pass
    return b"ok"
def unary(request, context):
    return b"ok"
handler = grpc.method_handlers_generic_handler("floor.Sink", {
    "Stream": grpc.stream_unary_rpc_method_handler(sink),
    "Unary": grpc.unary_unary_rpc_method_handler(unary),
})
server = grpc.server(futures.ThreadPoolExecutor(32),
                     options=[("grpc.max_receive_message_length", 64 << 20)])
server.add_generic_rpc_handlers((handler,))
key, cert = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
creds = grpc.ssl_server_credentials([(key, cert)], root_certificates=cert,
                                    require_client_auth=True)
port = server.add_secure_port("127.0.0.1:0", creds)
server.start()
print(port, flush=True)
sys.stdin.read()
"""


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A P-256 key and a self-signed certificate for localhost, used by both ends."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = directory / "key.pem", directory / "cert.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _per_call(
    server_pid: int, call: Callable[[], object], calls: int, threads: int
) -> tuple[float, float]:
    """Client and server CPU seconds per call, ``calls`` calls on each of ``threads``."""
    call()

    def run() -> None:
        for _ in range(calls):
            call()

    workers = [threading.Thread(target=run) for _ in range(threads)]
    client0, server0 = time.process_time(), _cpu_of(server_pid)
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    n = calls * threads
    return (time.process_time() - client0) / n, (_cpu_of(server_pid) - server0) / n


def _per_op(op: Callable[[], object], seconds: float = 1.0) -> float:
    """CPU seconds of one ``op``, run repeatedly for about ``seconds``."""
    op()
    n, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        op()
        n += 1
    return (time.process_time() - start) / n


def measure_grpc(quick: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        key_path, cert_path = _self_signed(Path(tmp))
        server = subprocess.Popen(
            [sys.executable, "-c", _SERVER, str(key_path), str(cert_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline())
            cert = cert_path.read_bytes()
            creds = grpc.ssl_channel_credentials(cert, key_path.read_bytes(), cert)
            with grpc.secure_channel(
                f"localhost:{port}", creds, options=[("grpc.max_send_message_length", 64 << 20)]
            ) as channel:
                unary = channel.unary_unary("/floor.Sink/Unary")
                stream = channel.stream_unary("/floor.Sink/Stream")
                form = os.urandom(2_500)
                scale = 1 if quick else 3
                u_client, u_server = _per_call(server.pid, lambda: unary(form), 150 * scale, 8)
                # What A sends B for 64 form-only packets: statement, wrapped key, form
                # ciphertext and the "submitted" event of each, in one call.
                batch = os.urandom(64 * 3_400)
                bt_client, bt_server = _per_call(server.pid, lambda: unary(batch), 30 * scale, 4)
                small = os.urandom(100)
                scan = os.urandom(300_000)

                def application() -> object:
                    # header, then file_begin / data / file_end for each of 3 scans
                    return stream(iter([os.urandom(4_200), *([small, scan, small] * 3)]))

                b_client, b_server = _per_call(server.pid, application, 20 * scale, 4)
                block = os.urandom(1 << 20)
                m_client, m_server = _per_call(
                    server.pid, lambda: stream(iter([block] * 16)), 4 * scale, 4
                )
        finally:
            assert server.stdin is not None
            server.stdin.close()
            server.wait(10)
    mb = 16 * (1 << 20) / MB
    return {
        "unary_call_client_ms": u_client * 1e3,
        "unary_call_server_ms": u_server * 1e3,
        "batch64_call_client_ms": bt_client * 1e3,
        "batch64_call_server_ms": bt_server * 1e3,
        "application_stream_client_ms": b_client * 1e3,
        "application_stream_server_ms": b_server * 1e3,
        "stream_client_ms_per_mb": m_client / mb * 1e3,
        "stream_server_ms_per_mb": m_server / mb * 1e3,
    }


def measure_crypto() -> dict[str, float]:
    recipient = x25519.X25519PrivateKey.generate()
    signer = ed25519.Ed25519PrivateKey.generate()
    packet_id = uuid.uuid4()
    data_key = new_data_key()
    wrapped = wrap_data_key(data_key, recipient.public_key(), packet_id, "420100")
    statement = os.urandom(700)
    signature = signer.sign(statement)
    public = signer.public_key()
    block = os.urandom(1 << 20)
    aead = AESGCM(os.urandom(32))
    nonce = os.urandom(12)
    mb = (1 << 20) / MB
    return {
        "hpke_wrap_ms": _per_op(
            lambda: wrap_data_key(data_key, recipient.public_key(), packet_id, "420100")
        )
        * 1e3,
        "hpke_unwrap_ms": _per_op(
            lambda: unwrap_data_key(wrapped, [recipient], packet_id, "420100")
        )
        * 1e3,
        "ed25519_sign_ms": _per_op(lambda: signer.sign(statement)) * 1e3,
        "ed25519_verify_ms": _per_op(lambda: public.verify(signature, statement)) * 1e3,
        "sha256_ms_per_mb": _per_op(lambda: hashlib.sha256(block).digest()) / mb * 1e3,
        "aes_gcm_ms_per_mb": _per_op(lambda: aead.encrypt(nonce, block, None)) / mb * 1e3,
    }


def measure_write(directory: Path) -> dict[str, float]:
    """CPU of writing 1 MiB to a new file and making it durable, as a node stores a blob."""
    block = os.urandom(1 << 20)

    def put() -> None:
        path = directory / uuid.uuid4().hex
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, block)
            os.fsync(fd)
        finally:
            os.close(fd)
        path.unlink()

    return {"durable_write_ms_per_mb": _per_op(put) / ((1 << 20) / MB) * 1e3}


GROUP = 64  # packets per group commit in the measurement, as many as one DeliverBatch


def measure_sql(directory: Path) -> dict[str, float]:
    """CPU of the rows one packet adds at each node, written as the node writes them.

    A (sender) adds the case, its leg, the packet, its delivery, its "submitted" event and
    its outbox item, and later marks the delivery and the outbox item done; B (receiver)
    adds the case, leg, packet and event. Files add one row per file at each node. Rows are
    inserted ``GROUP`` packets at a time with one executemany per table and one commit.
    """
    from sqlalchemy import Table, bindparam, update

    from tongban.storage.sql import Base, open_metadata_store

    store = open_metadata_store(f"sqlite:///{directory / 'floor.db'}")
    tables = Base.metadata.tables
    sizes = {"statement": 700, "payload": 500, "signatures": 150, "form_ciphertext": 2_100}
    sizes |= {"wrapped_key": 120, "receipt": 400}
    now = datetime.now(UTC)
    serial = iter(range(10**9))
    packets: list[str] = []

    def row(table: Table, packet_id: str, case_id: str) -> dict[str, Any]:
        """A row as wide as the node's: the packet's ids, node ids, sized byte columns."""
        values: dict[str, Any] = {}
        for col in table.columns:
            if col.primary_key and col.autoincrement is True:
                continue
            # A TypeDecorator (the node's UTC datetimes) names what it stores in ``impl``.
            kind = getattr(col.type, "impl", col.type).python_type
            if col.name in ("packet_id", "case_id"):
                values[col.name] = packet_id if col.name == "packet_id" else case_id
            elif col.name.endswith("node") or col.name == "node_id":
                values[col.name] = "420100"
            elif kind is bytes:
                values[col.name] = os.urandom(sizes.get(col.name, 64))
            elif kind is int:
                values[col.name] = next(serial)
            elif kind is bool:
                values[col.name] = False
            elif kind is datetime:
                values[col.name] = now
            else:
                values[col.name] = uuid.uuid4().hex
        return values

    def write(names: list[str], files: int) -> Callable[[], object]:
        def op() -> None:
            ids = [(str(uuid.uuid4()), str(uuid.uuid4())) for _ in range(GROUP)]
            with store.engine.begin() as conn:
                for name in names:
                    t = tables[name]
                    conn.execute(t.insert(), [row(t, p, c) for p, c in ids])
                if files:
                    t = tables["packet_files"]
                    conn.execute(t.insert(), [row(t, p, c) for p, c in ids for _ in range(files)])
            packets[:] = [p for p, _ in ids]

        return op

    deliveries, outbox = tables["deliveries"], tables["outbox"]
    mark_delivery = (
        update(deliveries)
        .where(deliveries.c.packet_id == bindparam("p"), deliveries.c.node_id == "420100")
        .values(state="delivered", receipt=bindparam("r"), delivered_at=bindparam("t"))
    )
    mark_outbox = (
        update(outbox)
        .where(outbox.c.ref == bindparam("p"))
        .values(state="done", done_at=bindparam("t"))
    )

    def sent(files: int) -> Callable[[], object]:
        """A's groups: the packets' rows, then the group that marks them delivered."""

        def op() -> None:
            write(["cases", "legs", "packets", "deliveries", "events", "outbox"], files)()
            receipt = os.urandom(sizes["receipt"])
            with store.engine.begin() as conn:
                conn.execute(mark_delivery, [{"p": p, "r": receipt, "t": now} for p in packets])
                conn.execute(mark_outbox, [{"p": p, "t": now} for p in packets])

        return op

    received = ["cases", "legs", "packets", "events"]

    try:
        result = {
            "sql_a_sender_ms": _per_op(sent(0)) / GROUP * 1e3,
            "sql_a_receiver_ms": _per_op(write(received, 0)) / GROUP * 1e3,
            "sql_b_sender_ms": _per_op(sent(3)) / GROUP * 1e3,
            "sql_b_receiver_ms": _per_op(write(received, 3)) / GROUP * 1e3,
        }
    finally:
        store.close()
    return result


def floors(m: dict[str, float], cores: int) -> dict[str, dict[str, float]]:
    """CPU milliseconds per packet (a, b) or per MB (c) that no implementation avoids, and
    the rate that bounds on ``cores`` fully used."""
    sign, verify = m["ed25519_sign_ms"], m["ed25519_verify_ms"]
    per_packet = (
        2 * m["hpke_wrap_ms"] + m["hpke_unwrap_ms"] + 3 * sign + 3 * verify
    )  # wraps for A and B; statement, event and receipt signed and verified once each
    call = m["unary_call_client_ms"] + m["unary_call_server_ms"]
    batched = (m["batch64_call_client_ms"] + m["batch64_call_server_ms"]) / 64
    stream = m["application_stream_client_ms"] + m["application_stream_server_ms"]
    hop_mb = m["stream_client_ms_per_mb"] + m["stream_server_ms_per_mb"]
    # SHA-256 of the plaintext at the hall (its declared digest), at A (the signed manifest)
    # and at B (checked against it), and of the ciphertext A and B each store (the stored
    # digest A keeps, the one B's receipt names); AES-GCM at A and at B; the bytes written
    # durably at A and at B.
    per_mb = 5 * m["sha256_ms_per_mb"] + 2 * m["aes_gcm_ms_per_mb"]
    per_mb += 2 * m["durable_write_ms_per_mb"]
    scans_mb = 3 * 300_000 / MB
    # (a): the hall's SubmitForm call, A's share of a 64-packet DeliverBatch call.
    a = call + batched + per_packet + m["sql_a_sender_ms"] + m["sql_a_receiver_ms"]
    # (b): the hall's ten-message submit stream; A to B the same bytes in one stream.
    b = 2 * stream + per_packet + per_mb * scans_mb
    b += m["sql_b_sender_ms"] + m["sql_b_receiver_ms"]
    c = 2 * hop_mb + per_mb
    return {k: {"floor_ms": v, "bound": cores * 1e3 / v} for k, v in (("a", a), ("b", b), ("c", c))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls, one round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    rounds: list[dict[str, float]] = []
    for _ in range(1 if args.quick else max(1, args.rounds)):
        measured: dict[str, float] = {}
        measured.update(measure_grpc(args.quick))
        measured.update(measure_crypto())
        with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent) as tmp:
            measured.update(measure_write(Path(tmp)))
            measured.update(measure_sql(Path(tmp)))
        rounds.append(measured)
    median = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    bound = floors(median, cores)

    print(f"tongban CPU floor: {cores} CPUs, grpcio {grpc.__version__}, median of {len(rounds)}")
    for name, value in median.items():
        spread = ", ".join(f"{r[name]:.3f}" for r in rounds)
        print(f"  {name:32} {value:9.3f}   ({spread})")
    print()
    print(
        f"{'figure':30} {'floor CPU':>10} {'bound':>12} {'target':>11} "
        f"{'CPU at target':>14} {'left for the relay':>19}"
    )
    labels = {
        "a": ("(a) form-only, per packet", "/s"),
        "b": ("(b) 4 KiB + 3 x 300 KB, per pkt", "/s"),
        "c": ("(c) one big file, per MB", "MB/s"),
    }
    for key, (label, rate) in labels.items():
        f = bound[key]
        f["budget_ms"] = cores * 1e3 / TARGETS[key]  # the CPU per packet (MB) the target allows
        f["headroom_ms"] = f["budget_ms"] - f["floor_ms"]
        print(
            f"{label:30} {f['floor_ms']:7.2f} ms {f['bound']:7.0f} {rate:4} "
            f"{TARGETS[key]:6.0f} {rate:4} {f['budget_ms']:11.2f} ms {f['headroom_ms']:16.2f} ms"
        )
    results: dict[str, Any] = {
        "cores": cores,
        "grpcio": grpc.__version__,
        "rounds": [{k: round(v, 4) for k, v in r.items()} for r in rounds],
        "median": {k: round(v, 4) for k, v in median.items()},
        "floors": {k: {n: round(v, 3) for n, v in f.items()} for k, f in bound.items()},
    }
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out / f"floor-{stamp}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"\nJSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
