"""Relay throughput end to end between two node processes, beside raw baselines of the same run.

Run: ``.venv/bin/python bench/bench_relay.py [--quick] [--threads N] [--workers N] [--keep]``

Two nodes, 420700 (A) and 420100 (B), run as separate processes
(``python -m tongban.cli.main node serve``) on loopback with SQLite and the filesystem
object store, exactly as ``federation init`` configures them. The benchmark process acts
as the halls of A, with several hall clients on their own threads and channels, so the
clients never share a GIL with a node. A packet counts as done end to end once A recorded
B's signed receipt, i.e. its delivery row at A is ``delivered``; progress is read from
A's database, and at the end every packet is checked once more through the hall API.

(a) form-only packets: 2 KiB form JSON, no files.
(b) a typical application: 4 KiB form and 3 scans of 300 KB of random bytes.
(c) one material file of 1 GiB (256 MiB with ``--quick``), streamed from a generator, from
    the hall's submit until delivered at B; the peak RSS (VmHWM, reset before the
    transfer) of each node process is read from /proc.

Baselines, in the same run, single thread, over the same bytes:
    raw crypto  HPKE wrap of a fresh data key (``wrap_data_key``) + AES-256-GCM over
                1 MiB segments + SHA-256 of the plaintext, straight through pyca/cryptography
                and hashlib.
    raw store   ``FilesystemObjectStore.put_stream`` of the same bytes into a temporary
                store (keys shaped like the node's, so directory creation and fsyncs count).
                Form-only packets have no blob at the node (the form lives in SQL); their
                baseline is one durable put of the 2 KiB form.

A relay does each of those at least twice per packet (sender and receiver), so ratios well
below 1 are expected; they say how much of the machine the relay's own overhead takes.

Also reported per phase: CPU seconds of A, B and the client process, submit latencies,
and the largest backlog (submitted, not yet delivered). Results go to stdout and to
``bench/results/relay-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import platform
import random
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tongban.cli.federation import node_specs, write_federation
from tongban.client.hall import Applicant, HallClient, Material
from tongban.keys.clock import utcnow
from tongban.keys.content import new_data_key, wrap_data_key
from tongban.keys.identifiers import citizen_id_check_char
from tongban.keys.pki import load_certificates
from tongban.server.usecases.runtime import read_directory_file
from tongban.storage.objects import FilesystemObjectStore

A, B = "420700", "420100"
ODA = ("HB-ODA-01", "异地办理营业执照变更登记")
SEGMENT = 1 << 20
MIB = 1 << 20
MB = 1_000_000
SCAN_SIZE = 300_000
RESULTS = Path(__file__).resolve().parent / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---- node processes and /proc ------------------------------------------------------------------


def log(message: str) -> None:
    """Progress on stderr, so that stdout holds only the report."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_status_kib(pid: int, name: str) -> int:
    """A ``Vm*`` line of /proc/<pid>/status, in KiB (0 if unreadable)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (``clear_refs`` 5, Linux >= 4.0)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU of a whole process (all threads)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rpartition(")")[2].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def self_cpu_seconds() -> tuple[float, float]:
    t = os.times()
    return t.user, t.system


@dataclass
class NodeProcess:
    node_id: str
    fed: Path
    log: Path
    env: dict[str, str]
    command: tuple[str, ...] = (sys.executable, "-m", "tongban.cli.main")
    proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _channel(self) -> grpc.Channel:
        hall = self.fed / self.node_id / "halls" / f"{self.node_id}-hall-1"
        creds = grpc.ssl_channel_credentials(
            (hall / "root.pem").read_bytes(),
            (hall / "key.pem").read_bytes(),
            (hall / "cert.pem").read_bytes(),
        )
        profile = (hall / "hall.toml").read_text(encoding="utf-8")
        endpoint = profile.split('endpoint = "')[1].split('"')[0]
        return grpc.secure_channel(
            endpoint,
            creds,
            options=[("grpc.ssl_target_name_override", f"node-{self.node_id}.tongban")],
        )

    def start(self, timeout: float = 60.0) -> None:
        config = self.fed / self.node_id / "node.toml"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tongban.cli.main",
                    "node",
                    "serve",
                    "--config",
                    str(config),
                ],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        with self._channel() as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    tail = self.log.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"node {self.node_id} exited at start-up:\n{tail}")
                try:
                    status = stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    if status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.1)
        raise RuntimeError(f"node {self.node_id} did not serve within {timeout} s")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


class RssSampler:
    """Samples VmRSS of some processes every few milliseconds; keeps the maximum."""

    def __init__(self, pids: dict[str, int], interval: float = 0.02) -> None:
        self._pids = pids
        self._interval = interval
        self.peak_kib = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pid in self._pids.items():
                self.peak_kib[name] = max(self.peak_kib[name], proc_status_kib(pid, "VmRSS"))
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Usage:
    """Wall time, CPU per process and peak RSS per node over one phase."""

    nodes: dict[str, NodeProcess]
    wall: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    cpu_sys: dict[str, float] = field(default_factory=dict)
    hwm_mib: dict[str, float] = field(default_factory=dict)
    sampled_peak_mib: dict[str, float] = field(default_factory=dict)
    rss_before_mib: dict[str, float] = field(default_factory=dict)
    hwm_reset: bool = True
    _cpu0: dict[str, tuple[float, float]] = field(default_factory=dict)
    _t0: float = 0.0
    _sampler: RssSampler | None = None

    def __enter__(self) -> Usage:
        for name, node in self.nodes.items():
            self.hwm_reset &= reset_peak_rss(node.pid)
            self.rss_before_mib[name] = proc_status_kib(node.pid, "VmRSS") / 1024
            self._cpu0[name] = cpu_seconds(node.pid)
        self._cpu0["client"] = self_cpu_seconds()
        self._sampler = RssSampler({n: p.pid for n, p in self.nodes.items()}).__enter__()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall = time.perf_counter() - self._t0
        assert self._sampler is not None
        self._sampler.__exit__()
        now = {name: cpu_seconds(node.pid) for name, node in self.nodes.items()}
        now["client"] = self_cpu_seconds()
        for name, (user, system) in now.items():
            user0, system0 = self._cpu0[name]
            self.cpu[name] = user - user0 + system - system0
            self.cpu_sys[name] = system - system0
        for name, node in self.nodes.items():
            self.hwm_mib[name] = proc_status_kib(node.pid, "VmHWM") / 1024
            self.sampled_peak_mib[name] = self._sampler.peak_kib[name] / 1024

    def as_dict(self) -> dict[str, Any]:
        return {
            "wall_s": round(self.wall, 3),
            "cpu_s": {k: round(v, 2) for k, v in self.cpu.items()},
            "cpu_system_s": {k: round(v, 2) for k, v in self.cpu_sys.items()},
            "cpu_share_of_machine": {
                k: round(v / self.wall / (os.cpu_count() or 1), 3) for k, v in self.cpu.items()
            },
            "peak_rss_mib": {k: round(v, 1) for k, v in self.hwm_mib.items()},
            "peak_rss_source": "VmHWM reset at phase start"
            if self.hwm_reset
            else "VmHWM since process start (reset refused)",
            "sampled_peak_rss_mib": {k: round(v, 1) for k, v in self.sampled_peak_mib.items()},
            "rss_at_start_mib": {k: round(v, 1) for k, v in self.rss_before_mib.items()},
        }


# ---- what is sent -------------------------------------------------------------------------------


def applicant() -> Applicant:
    body = "42070419900307123"
    return Applicant("张三", "citizen", body + citizen_id_check_char(body))


def form_of(size: int) -> dict[str, Any]:
    """A form whose JSON (as the SDK encodes it) is exactly ``size`` bytes."""
    form: dict[str, Any] = {
        "变更事项": "住所",
        "新住所": "武汉市江汉区新华路 1 号",
        "联系电话": "027-85551234",
        "备注": "",
    }
    base = len(json.dumps(form, ensure_ascii=False).encode())
    form["备注"] = "x" * (size - base)
    assert len(json.dumps(form, ensure_ascii=False).encode()) == size
    return form


class RandomPool:
    """Random bytes drawn once; scans are windows of it at random offsets."""

    def __init__(self, size: int = 8 * MIB, seed: int = 7) -> None:
        self.data = os.urandom(size)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def take(self, n: int) -> bytes:
        with self._lock:
            off = self._rng.randrange(0, len(self.data) - n)
        return self.data[off : off + n]

    def blocks(self, size: int) -> list[bytes]:
        return [self.data[i : i + size] for i in range(0, len(self.data) - size + 1, size)]


def scans(pool: RandomPool) -> list[Material]:
    out = []
    for k in range(3):
        data = pool.take(SCAN_SIZE)
        out.append(
            Material(f"扫描件-{k}.jpg", None, "image/jpeg", lambda d=data: iter((d,)), len(data))
        )
    return out


def big_chunks(blocks: list[bytes], size: int) -> Iterator[bytes]:
    """``size`` bytes (a multiple of the block size) made of pre-drawn random blocks."""
    for i in range(size // len(blocks[0])):
        yield blocks[i % len(blocks)]


# ---- baselines ----------------------------------------------------------------------------------


class RawCrypto:
    """HPKE wrap + AES-256-GCM segments + SHA-256, nothing else."""

    def __init__(self, recipient: Any) -> None:
        self._recipient = recipient

    def packet(self, files: list[Iterator[bytes]]) -> int:
        """Seal one packet's files (each an iterator of chunks <= one segment); bytes sealed."""
        key = new_data_key()
        packet_id = uuid.uuid4()
        wrap_data_key(key, self._recipient, packet_id, B)
        aead = AESGCM(key)
        total = 0
        for index, chunks in enumerate(files):
            digest = hashlib.sha256()
            for seg, chunk in enumerate(chunks):
                nonce = struct.pack(">I", index) + seg.to_bytes(7, "big") + b"\x00"
                aead.encrypt(nonce, chunk, packet_id.bytes + nonce)
                digest.update(chunk)
                total += len(chunk)
            digest.hexdigest()
        return total


def segments(data: bytes) -> Iterator[bytes]:
    view = memoryview(data)
    for i in range(0, max(len(data), 1), SEGMENT):
        yield view[i : i + SEGMENT]


def timed_rate(action: Callable[[], object], seconds: float) -> tuple[float, int]:
    """Operations per second of ``action`` over about ``seconds``."""
    action()
    count = 0
    start = time.perf_counter()
    while True:
        action()
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return count / elapsed, count


def timed_once(action: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    action()
    return time.perf_counter() - t0


def store_packet(store: FilesystemObjectStore, blobs: list[bytes]) -> None:
    prefix = f"out/{uuid.uuid4()}/{uuid.uuid4().hex[:12]}/"
    for i, blob in enumerate(blobs):
        store.put_stream(f"{prefix}{i}", segments(blob))


# ---- the relay phases ---------------------------------------------------------------------------


class DeliveredCounter:
    """Counts A's delivery rows in state ``delivered`` (read-only queries on A's SQLite)."""

    def __init__(self, db: Path) -> None:
        self._db = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)

    def count(self) -> int:
        row = self._db.execute(
            "SELECT count(*) FROM deliveries WHERE state = 'delivered'"
        ).fetchone()
        return int(row[0])

    def state_of(self, packet_id: str) -> str:
        row = self._db.execute(
            "SELECT state FROM deliveries WHERE packet_id = ?", (packet_id,)
        ).fetchone()
        return str(row[0]) if row else ""

    def failed(self) -> int:
        row = self._db.execute(
            "SELECT count(*) FROM outbox"
            " WHERE state = 'failed' OR (attempts > 0 AND state = 'pending')"
        ).fetchone()
        return int(row[0])

    def close(self) -> None:
        self._db.close()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_packets(
    label: str,
    clients: list[tuple[str, HallClient]],
    counter: DeliveredCounter,
    nodes: dict[str, NodeProcess],
    *,
    total: int,
    form: dict[str, Any],
    files: Callable[[], list[Material]],
    max_submit_seconds: float,
    drain_timeout: float,
) -> dict[str, Any]:
    """Submit ``total`` packets from all clients at once; wait until A holds every receipt."""
    base = counter.count()
    tickets = itertools.count()
    ids: list[tuple[str, str]] = []
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + max_submit_seconds

    def worker(hall: str, client: HallClient) -> None:
        while next(tickets) < total and time.monotonic() < stop_at:
            t0 = time.perf_counter()
            try:
                r = client.submit(
                    matter=ODA, to=[B], applicant=applicant(), form=form, files=files()
                )
            except Exception as exc:
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                continue
            with lock:
                latencies.append(time.perf_counter() - t0)
                ids.append((hall, r.packet_id))

    backlog_max = 0
    with Usage(nodes) as usage:
        start = time.perf_counter()
        workers = [threading.Thread(target=worker, args=hc, daemon=True) for hc in clients]
        for w in workers:
            w.start()
        submit_done = 0.0
        delivered = 0
        drain_deadline = float("inf")
        while True:
            time.sleep(0.02)
            delivered = counter.count() - base
            with lock:
                submitted = len(ids)
            backlog_max = max(backlog_max, submitted - delivered)
            if not submit_done and not any(w.is_alive() for w in workers):
                submit_done = time.perf_counter() - start
                drain_deadline = time.monotonic() + drain_timeout
                with lock:
                    submitted = len(ids)
            if submit_done and delivered >= submitted:
                break
            if time.monotonic() > drain_deadline:
                break
        e2e = time.perf_counter() - start
    n = len(ids)
    log(f"{label}: {delivered}/{n} delivered in {e2e:.1f} s (submits took {submit_done:.1f} s)")
    result = {
        "label": label,
        "clients": len(clients),
        "packets_submitted": n,
        "packets_delivered": delivered,
        "submit_errors": len(errors),
        "first_errors": errors[:3],
        "submit_seconds": round(submit_done, 3),
        "end_to_end_seconds": round(e2e, 3),
        "submit_per_s": round(n / submit_done, 1) if submit_done else 0.0,
        "end_to_end_per_s": round(delivered / e2e, 1),
        "submit_latency_ms": {
            "p50": round(percentile(latencies, 0.5) * 1000, 1),
            "p99": round(percentile(latencies, 0.99) * 1000, 1),
            "mean": round(statistics.fmean(latencies) * 1000, 1) if latencies else 0.0,
        },
        "max_backlog": backlog_max,
        "usage": usage.as_dict(),
        "cpu_ms_per_packet": {k: round(v / max(n, 1) * 1000, 2) for k, v in usage.cpu.items()},
        "packet_ids": ids,
    }
    return result


def run_big_file(
    client: HallClient,
    counter: DeliveredCounter,
    nodes: dict[str, NodeProcess],
    blocks: list[bytes],
    size: int,
    timeout: float,
) -> dict[str, Any]:
    material = Material(
        "材料.bin", None, "application/octet-stream", lambda: big_chunks(blocks, size), size
    )
    with Usage(nodes) as usage:
        start = time.perf_counter()
        r = client.submit(matter=ODA, to=[B], applicant=applicant(), form=form_of(2048),
                          files=[material])  # fmt: skip
        submitted = time.perf_counter() - start
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = counter.state_of(r.packet_id)
            if state == "delivered":
                break
            time.sleep(0.02)
        elapsed = time.perf_counter() - start
    log(f"big file: {state} after {elapsed:.1f} s (submit {submitted:.1f} s)")
    return {
        "bytes": size,
        "packet_id": r.packet_id,
        "state": state,
        "submit_seconds": round(submitted, 3),
        "delivery_seconds": round(elapsed - submitted, 3),
        "end_to_end_seconds": round(elapsed, 3),
        "submit_mb_per_s": round(size / submitted / MB, 1),
        "delivery_mb_per_s": round(size / (elapsed - submitted) / MB, 1),
        "end_to_end_mb_per_s": round(size / elapsed / MB, 1) if state == "delivered" else 0.0,
        "usage": usage.as_dict(),
        "client_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def verify_via_hall_api(
    clients: list[tuple[str, HallClient]], expected: dict[str, set[str]], timeout: float
) -> int:
    """How many of the expected packets (per hall) the hall's own inbox shows as delivered."""
    good = 0
    for hall, want in expected.items():
        if not want:
            continue
        client = next(c for h, c in clients if h == hall)
        seen: set[str] = set()
        stream = client.watch("out", include_existing=True, timeout=timeout)
        try:
            for item in stream:
                if item.packet_id in want and item.packet_id not in seen:
                    seen.add(item.packet_id)
                    good += item.deliveries.get(B) == "delivered"
                    if len(seen) == len(want):
                        break
        finally:
            stream.close()
    return good


# ---- report -------------------------------------------------------------------------------------


def source_state() -> dict[str, Any]:
    """The commit measured, and whether the node's sources differ from it."""
    repo = Path(__file__).resolve().parent.parent

    def git(*argv: str) -> str:
        try:
            done = subprocess.run(
                ["git", "-C", str(repo), *argv],
                check=False,
                capture_output=True,
                text=True,
                timeout=10,
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--", "server", "client", "keys", "storage")
    return {"commit": git("rev-parse", "HEAD"), "node_sources_modified": changed.splitlines()}


def fmt_rate(value: float, unit: str) -> str:
    return f"{value:,.1f} {unit}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts, 256 MiB file")
    parser.add_argument("--threads", type=int, default=8, help="concurrent hall clients")
    parser.add_argument("--workers", type=int, default=0, help="delivery workers (0: node.toml)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary federation")
    parser.add_argument(
        "--dir", default=None, help="parent of the temporary federation (default: system temp)"
    )
    parser.add_argument("--skip", default="", help="comma-separated phases to skip: a,b,c")
    args = parser.parse_args()
    quick: bool = args.quick
    skip = set(filter(None, args.skip.split(",")))
    # Counts are caps: a phase also stops submitting after its time budget.
    n_form = 2000 if quick else 12000
    n_app = 400 if quick else 3000
    big = (256 if quick else 1024) * MIB
    base_seconds = 0.5 if quick else 1.5
    budget_a = 6.0 if quick else 25.0
    budget_b = 5.0 if quick else 20.0

    root = Path(tempfile.mkdtemp(prefix="tongban-bench-", dir=args.dir))
    fed = root / "fed"
    endpoints = {A: f"127.0.0.1:{free_port()}", B: f"127.0.0.1:{free_port()}"}
    specs = node_specs((A, B), base_port=0, host="127.0.0.1", endpoints=endpoints, names={})
    write_federation(fed, specs, now=utcnow())
    env = {"TONGBAN_NODE_SHUTDOWN_GRACE_SECONDS": "5"}
    if args.workers:
        env["TONGBAN_DELIVERY_WORKERS"] = str(args.workers)
    nodes = {n: NodeProcess(n, fed, root / f"{n}.log", env) for n in (A, B)}
    pool = RandomPool()
    blocks = pool.blocks(SEGMENT)
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "grpcio": grpc.__version__,
        },
        "source": source_state(),
        "setup": {
            "nodes": "separate processes: python -m tongban.cli.main node serve",
            "storage": "SQLite (WAL, synchronous=FULL) + filesystem object store, same disk",
            "hall_clients": args.threads,
            "delivery_workers": args.workers or "node.toml default (8)",
            "segment_size": SEGMENT,
        },
    }
    try:
        # ---- baselines (single thread, this process, before the nodes start) ----
        roots = load_certificates((fed / "public" / "root.pem").read_bytes())
        directory = read_directory_file(fed / "public" / "directory.json", roots, at=utcnow())
        recipient = directory.node(B).encryption_key(utcnow()).encryption_key()
        raw = RawCrypto(recipient)
        store = FilesystemObjectStore(root / "raw-store")
        form2 = json.dumps(form_of(2048), ensure_ascii=False).encode()
        form4 = json.dumps(form_of(4096), ensure_ascii=False).encode()
        app_files = [form4, *(pool.take(SCAN_SIZE) for _ in range(3))]
        big_key = itertools.count()

        def seal_big() -> None:
            raw.packet([big_chunks(blocks, big)])

        def store_big() -> None:
            store.put_stream(f"out/big/{next(big_key)}", big_chunks(blocks, big))

        rates: dict[str, Callable[[], float]] = {
            "a_crypto_packets_per_s": lambda: timed_rate(
                lambda: raw.packet([segments(form2)]), base_seconds
            )[0],
            "a_store_packets_per_s": lambda: timed_rate(
                lambda: store_packet(store, [form2]), base_seconds
            )[0],
            "b_crypto_packets_per_s": lambda: timed_rate(
                lambda: raw.packet([segments(f) for f in app_files]), base_seconds
            )[0],
            "b_store_packets_per_s": lambda: timed_rate(
                lambda: store_packet(store, app_files[1:]), base_seconds
            )[0],
            "c_crypto_mb_per_s": lambda: big / MB / timed_once(seal_big),
            "c_store_mb_per_s": lambda: big / MB / timed_once(store_big),
        }
        # Best of two: a baseline is what the machine can do; the VM's disk and CPU vary.
        samples = {name: [measure(), measure()] for name, measure in rates.items()}
        baselines = {name: max(v) for name, v in samples.items()}
        results["baseline_samples"] = {k: [round(x, 1) for x in v] for k, v in samples.items()}
        shutil.rmtree(root / "raw-store", ignore_errors=True)
        results["baselines"] = {k: round(v, 1) for k, v in baselines.items()}
        log(f"baselines: {results['baselines']}")

        # ---- the relay ----
        for node in nodes.values():
            node.start()
        results["setup"]["pids"] = {n: p.pid for n, p in nodes.items()}
        log(f"nodes up: {results['setup']['pids']}")
        counter = DeliveredCounter(fed / A / "var" / "metadata.db")
        clients: list[tuple[str, HallClient]] = []
        for i in range(args.threads):
            hall = f"{A}-hall-{1 + i % 2}"
            clients.append((hall, HallClient.from_profile(fed / A / "halls" / hall)))
        # Warm up: channels, TLS sessions, the peer channel A -> B, SQLite caches.
        run_packets("warm-up", clients, counter, nodes, total=4 * args.threads,
                    form=form_of(2048), files=list, max_submit_seconds=30,
                    drain_timeout=30)  # fmt: skip
        phases: dict[str, Any] = {}
        if "a" not in skip:
            phases["a"] = run_packets(
                "form-only (2 KiB form)", clients, counter, nodes, total=n_form,
                form=form_of(2048), files=list, max_submit_seconds=budget_a,
                drain_timeout=120,
            )  # fmt: skip
        if "b" not in skip:
            phases["b"] = run_packets(
                "application (4 KiB form + 3 x 300 KB)", clients, counter, nodes,
                total=n_app, form=form_of(4096), files=lambda: scans(pool),
                max_submit_seconds=budget_b, drain_timeout=120,
            )  # fmt: skip
        if "c" not in skip:
            phases["c"] = run_big_file(clients[0][1], counter, nodes, blocks, big, timeout=600)
        expected: dict[str, set[str]] = {h: set() for h, _ in clients}
        for k in ("a", "b"):
            for hall, packet_id in phases.get(k, {}).get("packet_ids", []):
                expected[hall].add(packet_id)
        t0 = time.perf_counter()
        results["verified_via_hall_api"] = {
            "delivered": verify_via_hall_api(clients, expected, timeout=60),
            "expected": sum(len(v) for v in expected.values()),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        results["outbox_retried_or_failed"] = counter.failed()
        for k in ("a", "b"):
            if k in phases:
                phases[k].pop("packet_ids")
        results["phases"] = phases
        for _, c in clients:
            c.close()
        counter.close()
    finally:
        for node in nodes.values():
            node.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    results["summary"] = summarize(results)
    report(results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"relay-{stamp}.json"
    out.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nJSON: {out}" + (f"\nkept: {root}" if args.keep else ""))
    return 0


def summarize(results: dict[str, Any]) -> list[dict[str, Any]]:
    base = results["baselines"]
    phases = results.get("phases", {})
    rows = []
    spec = (
        ("a", "(a) form-only packets, end to end", "end_to_end_per_s", "/s", 800.0, "packets"),
        ("b", "(b) 4 KiB form + 3 x 300 KB, end to end", "end_to_end_per_s", "/s", 150.0,
         "packets"),
        ("c", "(c) one big file, end to end", "end_to_end_mb_per_s", "MB/s", 200.0, "mb"),
    )  # fmt: skip
    for key, label, metric, unit, target, kind in spec:
        if key not in phases:
            continue
        p = phases[key]
        value = float(p[metric])
        crypto = base[f"{key}_crypto_{'packets_per_s' if kind == 'packets' else 'mb_per_s'}"]
        stored = base[f"{key}_store_{'packets_per_s' if kind == 'packets' else 'mb_per_s'}"]
        rss = p["usage"]["peak_rss_mib"]
        row = {
            "figure": label,
            "value": value,
            "unit": unit,
            "raw_crypto": crypto,
            "ratio_to_raw_crypto": round(value / crypto, 3),
            "raw_store": stored,
            "ratio_to_raw_store": round(value / stored, 3),
            "peak_rss_mib": rss,
            "target": f">= {target:g} {unit}",
            "met": value >= target,
        }
        if key == "c":
            row["rss_target"] = "< 256 MiB per node"
            row["rss_met"] = all(v < 256 for v in rss.values())
            row["met"] = row["met"] and row["rss_met"]
        rows.append(row)
    return rows


def report(results: dict[str, Any]) -> None:
    setup = results["setup"]
    print(
        f"tongban relay benchmark{' (quick)' if results['quick'] else ''}: "
        f"{results['machine']['cpus']} CPUs, Python {results['machine']['python']}, "
        f"grpcio {results['machine']['grpcio']}"
    )
    print(
        f"nodes {A} -> {B} as separate processes; {setup['hall_clients']} hall clients; "
        f"delivery workers: {setup['delivery_workers']}"
    )
    head = (
        f"{'figure':<42} {'measured':>14} {'raw crypto':>14} {'ratio':>7} "
        f"{'raw store':>14} {'ratio':>7} {'peak RSS A / B':>16}  target"
    )
    print()
    print(head)
    print("-" * len(head) + "-" * 14)
    for row in results["summary"]:
        unit = row["unit"]
        rss = row["peak_rss_mib"]
        mark = "met" if row["met"] else "MISSED"
        rss_note = ""
        if "rss_target" in row:
            rss_note = f"; RSS {row['rss_target']} {'met' if row['rss_met'] else 'MISSED'}"
        print(
            f"{row['figure']:<42} {fmt_rate(row['value'], unit):>14} "
            f"{fmt_rate(row['raw_crypto'], unit):>14} {row['ratio_to_raw_crypto']:>6.3f}x "
            f"{fmt_rate(row['raw_store'], unit):>14} {row['ratio_to_raw_store']:>6.3f}x "
            f"{rss[A]:>7.0f} / {rss[B]:<6.0f}  {row['target']} {mark}" + rss_note
        )
    print()
    phases = results.get("phases", {})
    for key, p in phases.items():
        u = p["usage"]
        cpu = ", ".join(f"{k} {v:.1f} s" for k, v in u["cpu_s"].items())
        if key in ("a", "b"):
            lat = p["submit_latency_ms"]
            print(
                f"({key}) {p['packets_delivered']}/{p['packets_submitted']} packets, "
                f"{p['submit_errors']} errors; submit {p['submit_per_s']:,.1f}/s "
                f"(p50 {lat['p50']} ms, p99 {lat['p99']} ms); "
                f"backlog max {p['max_backlog']}; wall {u['wall_s']} s; CPU {cpu}"
            )
            per = ", ".join(f"{k} {v} ms" for k, v in p["cpu_ms_per_packet"].items())
            print(f"    CPU per packet: {per}")
        else:
            print(
                f"(c) {p['bytes'] / MIB:.0f} MiB: hall -> A durable {p['submit_seconds']} s "
                f"({p['submit_mb_per_s']} MB/s), A -> B receipt {p['delivery_seconds']} s "
                f"({p['delivery_mb_per_s']} MB/s); CPU {cpu}; "
                f"client peak RSS {p['client_peak_rss_mib']} MiB"
            )
        print(f"    peak RSS ({u['peak_rss_source']}): {u['peak_rss_mib']}")
    v = results.get("verified_via_hall_api")
    if v:
        print(f"hall API check: {v['delivered']}/{v['expected']} packets shown as delivered")
    print("MB = 10^6 bytes; baselines single-threaded in the client process over the same bytes")


if __name__ == "__main__":
    sys.exit(main())
