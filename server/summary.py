"""What a node says when it starts: one summary of who it is, where it listens, where it
keeps things and what it can seal with. Nothing in it is a secret: database and object
store addresses are shown without user names, passwords or keys."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from tongban.keys.directory import FederationDirectory
from tongban.keys.seals import SealRecord
from tongban.server.config import NodeConfig
from tongban.server.usecases.seal_keys import SealBook
from tongban.storage.sql import MetadataStore, SealRow

__all__ = ["NodeSummary", "database_location", "object_store_location", "usable_seals"]


def database_location(url: str) -> str:
    """The metadata database as ``kind location``, without user name or password."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return "unknown (the database URL does not parse)"
    kind = parsed.get_backend_name()
    if kind == "sqlite":
        return f"sqlite {parsed.database or ':memory:'}"
    host = parsed.host or "localhost"
    port = f":{parsed.port}" if parsed.port else ""
    return f"{kind} {host}{port}/{parsed.database or ''}"


def object_store_location(objects: str) -> str:
    """The object store as ``kind location``, without any user information in its URL."""
    if "://" not in objects:
        return f"filesystem {objects}"
    parts = urlsplit(objects)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return f"{parts.scheme} {urlunsplit((parts.scheme, netloc, parts.path, '', ''))}"


def usable_seals(metadata: MetadataStore, book: SealBook | None, at: datetime) -> list[str]:
    """The registered seals that may seal at ``at`` (in their window, not revoked), as
    ``seal id (name)``; none when the node holds no seal CA."""
    if book is None:
        return []
    with metadata.read() as session:
        rows = list(session.scalars(select(SealRow).order_by(SealRow.created_at)))
    usable = []
    for row in rows:
        record = SealRecord.from_json_dict(json.loads(row.record))
        if record.valid_at(at) and book.key_path(row.seal_id).exists():
            usable.append(f"{row.seal_id} ({row.name})")
    return usable


@dataclass(frozen=True)
class NodeSummary:
    """The facts a node states on start."""

    node_id: str
    name: str
    relay: str
    public: str
    database: str
    objects: str
    directory_version: int
    seals: tuple[str, ...]

    @classmethod
    def of(
        cls,
        config: NodeConfig,
        *,
        directory: FederationDirectory,
        seals: list[str],
        port: int,
        public_port: int,
    ) -> NodeSummary:
        host = config.listen.rpartition(":")[0]
        public = ""
        if config.public_listen:
            public = f"{config.public_listen.rpartition(':')[0]}:{public_port}"
        return cls(
            node_id=config.node_id,
            name=directory.node(config.node_id).name,
            relay=f"{host}:{port}",
            public=public,
            database=database_location(config.database),
            objects=object_store_location(config.objects),
            directory_version=directory.version,
            seals=tuple(seals),
        )

    def text(self) -> str:
        """The summary as a few lines, the first naming the node."""
        seals = ", ".join(self.seals) if self.seals else "none (results cannot be sealed)"
        public = self.public or "off ([node] public_listen is empty)"
        return "\n".join(
            [
                f"node {self.node_id} {self.name} serving",
                f"  relay port   {self.relay} (mutual TLS: halls, admins, peer nodes)",
                f"  public port  {public} (TLS, anyone: seal verification)",
                f"  metadata     {self.database}",
                f"  objects      {self.objects}",
                f"  directory    version {self.directory_version}",
                f"  usable seals {seals}",
            ]
        )
