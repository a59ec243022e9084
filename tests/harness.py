"""Starting real nodes for tests, and acting as a peer node or hall by hand."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from sqlalchemy import select

from tongban.cli.demo import free_ports
from tongban.cli.federation import node_specs, write_federation
from tongban.client.hall import HallClient
from tongban.keys.clock import utcnow
from tongban.keys.content import (
    FORM_FILE_INDEX,
    MAX_SEGMENT_SIZE,
    FileCipher,
    new_data_key,
    wrap_data_key,
)
from tongban.keys.directory import FederationDirectory
from tongban.keys.envelope import canonical_json, sign_envelope
from tongban.keys.pki import load_private_key
from tongban.keys.signing import PrivateKeySigner, Signer
from tongban.proto import relay_pb2, relay_pb2_grpc
from tongban.server.app import RelayNode
from tongban.server.config import load_config
from tongban.server.domain.statements import (
    EVENT_TYPE,
    PACKET_TYPE,
    EventStatement,
    FileEntry,
    PacketStatement,
    RecipientEntry,
)
from tongban.server.grpc.converters import envelope_to_proto
from tongban.storage.sql import Base

NODES = ("420700", "420100", "440300")


@dataclass
class Backend:
    """Where a node keeps its metadata and blobs."""

    database: Callable[[str], str] | None = None  # node id -> URL
    objects: Callable[[str], tuple[str, str, str]] | None = None  # node id -> (url, ak, sk)


@dataclass
class Cluster:
    root: Path
    fed: Path
    backend: Backend
    overrides: dict[str, dict[str, Any]]
    nodes: dict[str, RelayNode] = field(default_factory=dict)
    _clients: list[HallClient] = field(default_factory=list)

    def config(self, node_id: str):  # type: ignore[no-untyped-def]
        storage: dict[str, Any] = {}
        if self.backend.database:
            storage["database"] = self.backend.database(node_id)
        if self.backend.objects:
            url, ak, sk = self.backend.objects(node_id)
            storage.update(objects=url, s3_access_key=ak, s3_secret_key=sk)
        overrides = {k: dict(v) for k, v in self.overrides.items()}
        overrides.setdefault("storage", {}).update(storage)
        return load_config(self.fed / node_id / "node.toml", environ={}, overrides=overrides)

    def start(self, node_id: str, *, clock: Callable[[], datetime] = utcnow) -> RelayNode:
        node = RelayNode(self.config(node_id), clock=clock)
        node.start()
        self.nodes[node_id] = node
        return node

    def stop(self, node_id: str, grace: float = 1.0) -> None:
        self.nodes.pop(node_id).stop(grace)

    def hall(self, node_id: str, n: int = 1) -> HallClient:
        c = HallClient.from_profile(self.fed / node_id / "halls" / f"{node_id}-hall-{n}")
        self._clients.append(c)
        return c

    def close(self) -> None:
        for c in self._clients:
            c.close()
        for n in list(self.nodes):
            self.stop(n)

    def directory(self) -> FederationDirectory:
        return next(iter(self.nodes.values())).directory.current

    def node_channel(self, as_node: str, to_node: str) -> grpc.Channel:
        """A channel to ``to_node`` that presents ``as_node``'s TLS identity."""
        d = self.fed / as_node
        creds = grpc.ssl_channel_credentials(
            (d / "root.pem").read_bytes(),
            (d / "tls" / "node-key.pem").read_bytes(),
            (d / "tls" / "node.pem").read_bytes(),
        )
        endpoint = self.directory().node(to_node).endpoint
        return grpc.secure_channel(
            endpoint, creds, options=[("grpc.ssl_target_name_override", f"node-{to_node}.tongban")]
        )

    def signer_of(self, node_id: str) -> Signer:
        path = next((self.fed / node_id / "keys").glob("signing-*.pem"))
        key = load_private_key(path.read_bytes())
        assert not hasattr(key, "exchange")
        return PrivateKeySigner(key)  # type: ignore[arg-type]


def start_cluster(
    root: Path,
    node_ids: Sequence[str] = NODES,
    *,
    backend: Backend | None = None,
    start: bool = True,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> Cluster:
    ports = free_ports(2 * len(node_ids))
    endpoints = {n: f"127.0.0.1:{p}" for n, p in zip(node_ids, ports, strict=False)}
    public = {n: f"127.0.0.1:{p}" for n, p in zip(node_ids, ports[len(node_ids) :], strict=True)}
    specs = node_specs(
        node_ids,
        base_port=0,
        host="127.0.0.1",
        endpoints=endpoints,
        names={},
        public_endpoints=public,
    )
    write_federation(root / "fed", specs, now=utcnow())
    fast = {"delivery": {"poll_interval": 0.2, "initial_backoff": 0.1, "max_backoff": 1.0}}
    for k, v in (overrides or {}).items():
        fast.setdefault(k, {}).update(v)
    cluster = Cluster(root, root / "fed", backend or Backend(), fast)
    if start:
        for n in node_ids:
            cluster.start(n)
    return cluster


def snapshot(node: RelayNode) -> dict[str, Any]:
    """What "the store is unchanged" compares: every row of every table and every blob.

    ``rows`` holds the row count of each table and ``blobs`` the sorted blob keys (tests
    read both); ``tables`` a SHA-256 over each table's rows in primary-key order, every
    column included (for deliveries, whose state the sender's retries move on, their keys),
    and ``blob_digests`` the size and SHA-256 of each blob, so that a changed row or blob
    shows even when no count changes.
    """
    rt = node
    counts: dict[str, int] = {}
    tables: dict[str, str] = {}
    with rt.metadata.transaction() as session:
        for table in Base.metadata.sorted_tables:
            if table.name == "outbox":
                continue  # the sender's own retry bookkeeping is not the receiver's store
            # A delivery's state and attempts move on by themselves while the sender retries;
            # which deliveries exist is what a refusal must not change.
            columns = table.primary_key.columns if table.name == "deliveries" else table.columns
            rows = session.execute(select(*columns).order_by(*table.primary_key.columns)).all()
            digest = hashlib.sha256()
            for row in rows:
                digest.update(repr(tuple(row)).encode())
                digest.update(b"\n")
            counts[table.name] = len(rows)
            tables[table.name] = digest.hexdigest()
    keys = sorted(rt.objects.list_keys(""))
    blob_digests = {}
    for key in keys:
        blob = hashlib.sha256()
        size = 0
        for chunk in rt.objects.open_stream(key):
            blob.update(chunk)
            size += len(chunk)
        blob_digests[key] = (size, blob.hexdigest())
    return {"rows": counts, "blobs": keys, "tables": tables, "blob_digests": blob_digests}


def citizen_id(body: str = "42070419900307123") -> str:
    from tongban.keys.identifiers import citizen_id_check_char

    return body + citizen_id_check_char(body)


# ---- a hand-made peer ----------------------------------------------------------------------


@dataclass
class ForgedFile:
    name: str
    data: bytes
    media_type: str = "application/octet-stream"


def forge_delivery(
    cluster: Cluster,
    *,
    sender: str,
    recipient: str,
    files: Sequence[ForgedFile] = (),
    signer: Signer | None = None,
    addressed_to: Sequence[str] | None = None,
    segment_size: int = 1024,
    manifest_sha: Callable[[int, str], str] = lambda i, sha: sha,
    manifest_size: Callable[[int, int], int] = lambda i, size: size,
    mutate_segments: Callable[
        [list[relay_pb2.DeliverRequest]], list[relay_pb2.DeliverRequest]
    ] = lambda s: s,
    form: dict[str, Any] | None = None,
    packet_id: uuid.UUID | None = None,
    matter: tuple[str, str] = ("HB-ODA-01", "异地办理营业执照变更登记"),
    case_id: uuid.UUID | None = None,
    hall: str | None = None,
    content: dict[str, Any] | None = None,
    sealed_form: Callable[[bytes], bytes] = lambda plain: plain,
    event: Callable[[EventStatement], EventStatement] = lambda e: e,
    event_copies: int = 1,
) -> list[relay_pb2.DeliverRequest]:
    """A complete application delivery as ``sender`` would send it, with knobs to break it.

    ``content`` replaces the whole decrypted form (applicant and form); ``sealed_form`` turns
    the form the statement names into the one actually encrypted; ``event`` changes the
    "submitted" event before it is signed, and ``event_copies`` is how many copies travel;
    ``hall`` is the recipient hall the statement names."""
    directory = cluster.directory()
    now = utcnow()
    signer = signer or cluster.signer_of(sender)
    pid = packet_id or uuid.uuid4()
    case_id = case_id or uuid.uuid4()
    key = new_data_key()
    plain = canonical_json(
        content
        if content is not None
        else {
            "applicant": {"name": "张三", "id_type": "citizen", "id_number": citizen_id()},
            "form": form if form is not None else {"k": "v"},
        }
    )
    entries, segments = [], []
    for i, f in enumerate(files):
        cipher = FileCipher(key, pid, i, segment_size=segment_size)
        segs = list(cipher.encrypt_chunks([f.data]))
        entries.append(
            FileEntry(
                i,
                f.name,
                f.media_type,
                manifest_size(i, len(f.data)),
                manifest_sha(i, hashlib.sha256(f.data).hexdigest()),
                len(segs),
            )
        )
        segments += [
            relay_pb2.DeliverRequest(
                segment=relay_pb2.Segment(
                    file_index=i, segment_index=s.index, final=s.final, ciphertext=s.ciphertext
                )
            )
            for s in segs
        ]
    to = list(addressed_to or [recipient])
    st = PacketStatement(
        packet_id=pid,
        case_id=case_id,
        kind="application",
        mode="on_behalf" if len(to) == 1 else "joint",
        matter_code=matter[0],
        matter_name=matter[1],
        sender_node=sender,
        sender_hall=f"{sender}-hall-1",
        recipients=tuple(RecipientEntry(n, hall or f"{n}-hall-1", "") for n in to),
        created_at=now,
        segment_size=segment_size,
        form_size=len(plain),
        form_sha256=hashlib.sha256(plain).hexdigest(),
        files=tuple(entries),
    )
    env = sign_envelope(st.to_payload(), PACKET_TYPE, [signer])
    submitted = EventStatement(
        case_id=case_id,
        leg=recipient,
        seq=1,
        prev="",
        event="submitted",
        actor_node=sender,
        actor_hall=f"{sender}-hall-1",
        at=now,
        detail={"packet_id": str(pid)},
        packet_id=str(pid),
    )
    event_env = sign_envelope(event(submitted).to_payload(), EVENT_TYPE, [signer])
    enc = directory.node(recipient).encryption_key(now)
    opening = relay_pb2.PacketOpening(
        statement=envelope_to_proto(env),
        wrapped_key=wrap_data_key(key, enc.encryption_key(), pid, recipient),
        recipient_key_id=enc.key_id,
        form_ciphertext=FileCipher(key, pid, FORM_FILE_INDEX, segment_size=MAX_SEGMENT_SIZE).seal(
            0, sealed_form(plain), final=True
        ),
        events=[envelope_to_proto(event_env)] * event_copies,
    )
    return [relay_pb2.DeliverRequest(opening=opening), *mutate_segments(segments)]


def deliver(
    cluster: Cluster, requests: list[relay_pb2.DeliverRequest], *, as_node: str, to_node: str
) -> relay_pb2.DeliverResponse:
    with cluster.node_channel(as_node, to_node) as ch:
        return relay_pb2_grpc.RelayServiceStub(ch).Deliver(iter(requests), timeout=20)


def wait_until(what: str, probe: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` on timeout."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def delivered(client: HallClient, packet_id: str) -> Callable[[], bool]:
    def probe() -> bool:
        items = [i for i in client.inbox("out") if i.packet_id == packet_id]
        return bool(items) and all(s == "delivered" for s in items[0].deliveries.values())

    return probe


def register_seal(
    cluster: Cluster,
    node_id: str,
    seal_id: str = "result-seal",
    *,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> str:
    """Register a seal at ``node_id`` through its admin, as a handling node needs for results."""
    from tongban.client.seals import SealClient

    now = utcnow()
    with SealClient.from_profile(cluster.fed / node_id / "admins" / f"{node_id}-admin") as admin:
        admin.register_seal(
            seal_id,
            "武汉市行政审批局行政审批专用章",
            "11420100MB1646962Q",
            org_name="武汉市行政审批局",
            not_before=not_before or now - timedelta(minutes=1),
            not_after=not_after or now + timedelta(days=365),
        )
    return seal_id
