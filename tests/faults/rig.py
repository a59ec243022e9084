"""Two real nodes under load, broken on purpose, and a ledger that says what survived.

A :class:`FaultRig` runs a sending node (420700) and a receiving node (420100) as
``tongban node serve`` processes on one of two storage set-ups — SQLite and the filesystem,
or PostgreSQL and S3 — while a hall submits packets at the sender. A fault (kill -9, SIGTERM,
a database or S3 outage, a full disk, a peer down for a while) is applied during the load;
then the rig waits until the node has caught up and reconciles the ledger of acknowledged
submits with what arrived: every acknowledged packet must arrive once, with its bytes, and
no blob or unfinished write may be left behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from sqlalchemy import select

from tests.harness import Cluster, citizen_id, start_cluster
from tests.node_process import NodeProcess, read_directory
from tests.pg_instance import PostgresInstance
from tests.s3server import S3Server, _run_script, _wait_ready
from tongban.client.errors import HallClientError, RequestRefused
from tongban.client.hall import Applicant, HallClient, Material
from tongban.storage.objects import FilesystemObjectStore, S3ObjectStore, open_object_store
from tongban.storage.sql import PacketFileRow, PacketRow, open_metadata_store

__all__ = ["FAULTS", "SETUPS", "FaultRig", "Outcome"]

SENDER, RECEIVER = "420700", "420100"
ODA = ("HB-ODA-01", "异地办理营业执照变更登记")
SETUPS = ("sqlite+fs", "pg+s3")
HOOKS = Path(__file__).resolve().parent / "hooks"
# Leftovers are swept every second once a partial write is three seconds old.
_NODE_ENV = {
    "TONGBAN_STORAGE_ORPHAN_SWEEP_SECONDS": "1",
    "TONGBAN_STORAGE_LONGEST_TRANSFER_SECONDS": "3",
    "TONGBAN_NODE_HEALTH_PROBE_SECONDS": "0.5",
    "TONGBAN_DELIVERY_MAX_PEER_PROBE_INTERVAL": "1",
}
_PART = 5 << 20  # S3 multipart from 5 MiB, so that large files are uploaded in parts


@dataclass
class Outcome:
    """One fault run: what the halls were told, and what the ledger found."""

    fault: str
    setup: str
    load: str
    acknowledged: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    wrong_bytes: int = 0
    out_of_order: int = 0
    leftovers: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    recovery: float = 0.0

    @property
    def clean(self) -> bool:
        return not (
            self.lost or self.duplicated or self.wrong_bytes or self.out_of_order or self.leftovers
        )

    def row(self) -> str:
        codes = ", ".join(f"{k} {v}" for k, v in sorted(self.codes.items()))
        return (
            f"| {self.fault} | {self.setup} | {self.load} | {self.acknowledged} | "
            f"{self.delivered} | {self.lost} | {self.duplicated} | {self.wrong_bytes} | "
            f"{self.out_of_order} | {self.leftovers} | {codes} | {self.recovery:.1f} s |"
        )


TABLE_HEAD = (
    "| fault | storage | load | acknowledged | delivered | lost | duplicated | wrong bytes | "
    "out of order | leftovers | client-visible codes | recovery |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def _content(seed: str, size: int) -> bytes:
    block = hashlib.sha256(seed.encode()).digest() * 2048  # 64 KiB
    return (block * (size // len(block) + 1))[:size]


def _material(data: bytes) -> Material:
    def chunks() -> Iterator[bytes]:
        for at in range(0, len(data), 1 << 20):
            yield data[at : at + (1 << 20)]

    return Material("doc.bin", None, "application/octet-stream", chunks, len(data))


class Gateway:
    """Stops and starts only the S3 gateway (radosgw) of a test S3 server: an S3 outage."""

    def __init__(self, server: S3Server) -> None:
        self.server = server

    def stop(self) -> None:
        pid_file = self.server.state_dir / "run" / "client.rgw.a.pid"
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)

    def start(self) -> None:
        _run_script("up", self.server.state_dir, self.server._env(), timeout=180)
        _wait_ready(self.server.port, self.server.state_dir)


class FaultRig:
    """Two node processes on one storage set-up, a hall's load, and the ledger."""

    def __init__(
        self,
        root: Path,
        setup: str,
        *,
        s3: S3Server | None = None,
        pg: PostgresInstance | None = None,
    ) -> None:
        self.root = root
        self.setup = setup
        self.cluster: Cluster = start_cluster(root, (SENDER, RECEIVER), start=False)
        read_directory(self.cluster)
        self.pg = pg
        self.gateway = Gateway(s3) if s3 is not None else None
        self.room_file = root / "disk-room"
        self.storage: dict[str, dict[str, str]] = {}
        for node in (SENDER, RECEIVER):
            if setup == "pg+s3":
                assert pg is not None and s3 is not None
                database = f"n{node}_{uuid.uuid4().hex[:8]}"
                with psycopg.connect(pg.url, autocommit=True) as conn:
                    conn.execute(f'create database "{database}"')
                bucket = f"f-{uuid.uuid4().hex[:12]}-{node}"
                self.storage[node] = {
                    "TONGBAN_STORAGE_DATABASE": pg.url.rsplit("/", 1)[0] + f"/{database}",
                    "TONGBAN_STORAGE_OBJECTS": s3.url(bucket) + f"&part_size={_PART}",
                    "TONGBAN_STORAGE_S3_ACCESS_KEY": s3.access_key,
                    "TONGBAN_STORAGE_S3_SECRET_KEY": s3.secret_key,
                }
            else:
                self.storage[node] = {}
        env = {"PYTHONPATH": os.pathsep.join([str(HOOKS), os.environ.get("PYTHONPATH", "")])}
        self.nodes = {
            node: NodeProcess(
                self.cluster,
                node,
                root / f"{node}.log",
                {
                    **_NODE_ENV,
                    **self.storage[node],
                    **env,
                    # Only the sender's disk fills up.
                    "TONGBAN_TEST_DISK_ROOM_FILE": str(self.room_file) if node == SENDER else "",
                },
            )
            for node in (SENDER, RECEIVER)
        }
        self.ledger: dict[str, str] = {}  # acknowledged packet id -> SHA-256 of its file
        self.codes: Counter[str] = Counter()
        self._stop_load = threading.Event()
        self._loader: threading.Thread | None = None

    # ---- nodes and load ----------------------------------------------------------------

    def start(self) -> None:
        for node in self.nodes.values():
            node.start()

    def close(self) -> None:
        self.stop_load()
        for node in self.nodes.values():
            if node.running:
                node.kill9()

    def hall(self, node: str = SENDER) -> HallClient:
        return HallClient.from_profile(self.cluster.fed / node / "halls" / f"{node}-hall-1")

    def start_load(self, sizes: tuple[int, ...], *, pause: float = 0.0) -> None:
        """Submit packets with one file of each size in turn, in a thread, until stopped."""
        self._stop_load.clear()

        def run() -> None:
            rng = random.Random(7)
            with self.hall() as hall:
                n = 0
                while not self._stop_load.is_set():
                    packet_id = str(uuid.uuid4())
                    data = _content(packet_id, sizes[n % len(sizes)])
                    n += 1
                    try:
                        hall.submit(
                            matter=ODA,
                            to=[RECEIVER],
                            applicant=Applicant("张三", "citizen", citizen_id()),
                            form={"n": n},
                            files=[_material(data)],
                            packet_id=packet_id,
                        )
                    except RequestRefused as exc:
                        self.codes[exc.status.name] += 1
                        time.sleep(0.2 + rng.random() * 0.3)
                        continue
                    except HallClientError as exc:
                        self.codes[type(exc).__name__] += 1
                        continue
                    self.codes["OK"] += 1
                    self.ledger[packet_id] = hashlib.sha256(data).hexdigest()
                    if pause:
                        time.sleep(pause)

        self._loader = threading.Thread(target=run, name="fault-load", daemon=True)
        self._loader.start()

    def stop_load(self) -> None:
        self._stop_load.set()
        if self._loader is not None:
            self._loader.join(120)
            self._loader = None

    # ---- what arrived ------------------------------------------------------------------

    def _database_url(self, node: str) -> str:
        url = self.storage[node].get("TONGBAN_STORAGE_DATABASE")
        return url or f"sqlite:///{self.cluster.fed / node / 'var' / 'metadata.db'}"

    def _objects(self, node: str) -> FilesystemObjectStore | S3ObjectStore:
        env = self.storage[node]
        if not env:
            return FilesystemObjectStore(self.cluster.fed / node / "var" / "blobs")
        store = open_object_store(
            env["TONGBAN_STORAGE_OBJECTS"],
            access_key=env["TONGBAN_STORAGE_S3_ACCESS_KEY"],
            secret_key=env["TONGBAN_STORAGE_S3_SECRET_KEY"],
        )
        assert isinstance(store, S3ObjectStore)
        return store

    def arrived(self) -> Counter[str]:
        """Packet ids the receiver holds from the sender, and how many cases each made."""
        store = open_metadata_store(self._database_url(RECEIVER), migrate_schema=False)
        try:
            with store.read() as session:
                rows = session.execute(
                    select(PacketRow.packet_id, PacketRow.case_id).where(
                        PacketRow.direction == "in", PacketRow.sender_node == SENDER
                    )
                ).all()
        finally:
            store.close()
        cases = Counter(case_id for _, case_id in rows)
        return Counter({packet_id: cases[case_id] for packet_id, case_id in rows})

    def leftovers(self) -> int:
        """Blobs no committed packet names, and unfinished writes, on both nodes."""
        count = 0
        for node in (SENDER, RECEIVER):
            meta = open_metadata_store(self._database_url(node), migrate_schema=False)
            try:
                with meta.read() as session:
                    named = set(session.scalars(select(PacketFileRow.blob_key)))
            finally:
                meta.close()
            store = self._objects(node)
            try:
                keys = [k for p in ("out/", "in/") for k in store.list_keys(p)]
                count += sum(1 for k in keys if k not in named)
                if isinstance(store, FilesystemObjectStore):
                    count += len(list(store.root.rglob(".partial-*")))
                else:
                    uploads = store._client._list_multipart_uploads(store.bucket).uploads
                    count += len(uploads)
            finally:
                store.close()
        return count

    def wait_caught_up(self, since: float, timeout: float) -> float:
        """Seconds from ``since`` until every acknowledged packet arrived (or the timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):  # a node's database may still be coming back
                if set(self.ledger) <= set(self.arrived()):
                    return time.monotonic() - since
            time.sleep(0.25)
        return time.monotonic() - since

    def reconcile(self, outcome: Outcome, *, healed: float, timeout: float = 180.0) -> Outcome:
        """Wait for the nodes to catch up, then count what was lost, doubled, wrong or left."""
        outcome.recovery = self.wait_caught_up(healed, timeout)
        arrived = self.arrived()
        outcome.acknowledged = len(self.ledger)
        outcome.codes = Counter(self.codes)
        outcome.delivered = sum(1 for p in self.ledger if p in arrived)
        outcome.lost = outcome.acknowledged - outcome.delivered
        outcome.duplicated = sum(n - 1 for n in arrived.values() if n > 1)
        with self.hall(RECEIVER) as hall:
            for packet_id, sha in self.ledger.items():
                if packet_id not in arrived:
                    continue
                try:
                    got = hall.fetch(packet_id, self.root / "fetched" / packet_id)
                    good = len(got.files) == 1 and got.files[0].verified
                    good = (
                        good and hashlib.sha256(got.files[0].path.read_bytes()).hexdigest() == sha
                    )
                except HallClientError:
                    good = False
                outcome.wrong_bytes += not good
        # One packet per case in this load: order is what the per-case tests check.
        deadline = time.monotonic() + 20
        while (leftovers := self.leftovers()) and time.monotonic() < deadline:
            time.sleep(0.5)  # the sweep runs every second
        outcome.leftovers = leftovers
        return outcome


def _pause(low: float, high: float, rng: random.Random) -> None:
    time.sleep(low + rng.random() * (high - low))


def kill9(target: str, rounds: int) -> Callable[[FaultRig, random.Random], float]:
    """kill -9 of ``target`` at random points, restarted after a moment; ``rounds`` times."""

    def fault(rig: FaultRig, rng: random.Random) -> float:
        for _ in range(rounds):
            _pause(1.0, 3.0, rng)
            rig.nodes[target].kill9()
            _pause(0.2, 1.5, rng)
            rig.nodes[target].start()
        return time.monotonic()

    return fault


def sigterm_receiver(rig: FaultRig, rng: random.Random) -> float:
    """SIGTERM of the receiver in the middle of transfers; it must exit 0 after its grace."""
    _pause(1.0, 2.0, rng)
    code = rig.nodes[RECEIVER].terminate()
    assert code == 0, f"the receiver exited with {code}"
    rig.nodes[RECEIVER].start()
    return time.monotonic()


def peer_down(seconds: float) -> Callable[[FaultRig, random.Random], float]:
    """The receiver stopped for ``seconds`` while the sender keeps taking packets."""

    def fault(rig: FaultRig, rng: random.Random) -> float:
        _pause(0.5, 1.0, rng)
        rig.nodes[RECEIVER].terminate()
        time.sleep(seconds)
        rig.nodes[RECEIVER].start()
        return time.monotonic()

    return fault


def pg_outage(seconds: float) -> Callable[[FaultRig, random.Random], float]:
    """PostgreSQL stopped (fast shutdown: sessions cut) for ``seconds``, then started."""

    def fault(rig: FaultRig, rng: random.Random) -> float:
        assert rig.pg is not None
        _pause(0.5, 1.0, rng)
        rig.pg.stop()
        time.sleep(seconds)
        rig.pg.start()
        return time.monotonic()

    return fault


def s3_outage(seconds: float) -> Callable[[FaultRig, random.Random], float]:
    """The S3 gateway stopped for ``seconds``, then started on the same port and data."""

    def fault(rig: FaultRig, rng: random.Random) -> float:
        assert rig.gateway is not None
        _pause(0.5, 1.0, rng)
        rig.gateway.stop()
        time.sleep(seconds)
        rig.gateway.start()
        return time.monotonic()

    return fault


def disk_full(seconds: float, room: int) -> Callable[[FaultRig, random.Random], float]:
    """The sender's disk has room for files up to ``room`` bytes for ``seconds``."""

    def fault(rig: FaultRig, rng: random.Random) -> float:
        _pause(0.5, 1.0, rng)
        rig.room_file.write_text(str(room))
        time.sleep(seconds)
        rig.room_file.unlink()
        return time.monotonic()

    return fault


# name -> (which set-ups it applies to, how to build it for a scale factor)
FAULTS: dict[
    str, tuple[tuple[str, ...], Callable[[float], Callable[[FaultRig, random.Random], float]]]
] = {
    "kill -9 receiver": (SETUPS, lambda scale: kill9(RECEIVER, max(1, int(2 * scale)))),
    "kill -9 sender": (SETUPS, lambda scale: kill9(SENDER, max(1, int(2 * scale)))),
    "SIGTERM receiver mid-transfer": (SETUPS, lambda scale: sigterm_receiver),
    "peer down": (SETUPS, lambda scale: peer_down(5.0 * scale)),
    "PostgreSQL outage": (("pg+s3",), lambda scale: pg_outage(4.0 * scale)),
    "S3 gateway outage": (("pg+s3",), lambda scale: s3_outage(4.0 * scale)),
    "disk full (ENOSPC)": (("sqlite+fs",), lambda scale: disk_full(4.0 * scale, 512 << 10)),
}


def run_fault(
    rig: FaultRig,
    name: str,
    *,
    scale: float,
    sizes: tuple[int, ...],
    seed: int = 1,
) -> Outcome:
    """Start the nodes and the load, apply the fault, stop the load, and reconcile."""
    _setups, build = FAULTS[name]
    rng = random.Random(seed)
    rig.start()
    rig.start_load(sizes)
    healed = build(scale)(rig, rng)
    time.sleep(1.0 * scale)  # load goes on a little after the fault healed
    rig.stop_load()
    load = f"{'/'.join(_size(s) for s in sizes)} files"
    return rig.reconcile(Outcome(name, rig.setup, load), healed=healed)


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"
