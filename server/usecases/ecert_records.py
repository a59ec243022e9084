"""What a node's records say about one of its e-certificates, for the verification site.

A QR code carries only the identifier: the page shows what the node recorded when it issued
it (document, seal, time, digest) and its current status. A database that cannot be reached
is :class:`Unavailable`, never an answer, so no page claims a status it could not read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy.exc import SQLAlchemyError

from tongban.keys.ecert import ECertStatus, ECertStatusEntry, parse_ecert_identifier
from tongban.keys.seals import SealRecord
from tongban.server.domain.errors import NotFound, Unavailable
from tongban.server.usecases.runtime import DirectoryHolder
from tongban.server.usecases.seals import SealOffice
from tongban.storage.sql import ECertRow, MetadataStore, MetadataUnavailable, SealRow

__all__ = ["ECertRecord", "ECertRecords"]

_T = TypeVar("_T")


@dataclass(frozen=True)
class ECertRecord:
    """An issued e-certificate as the issuing node recorded it, with its current status."""

    identifier: str
    type_code: str
    document_name: str
    document_sha256: str
    issued_at: datetime
    status: ECertStatusEntry
    seal: SealRecord | None


@contextmanager
def _database() -> Iterator[None]:
    try:
        yield
    except (SQLAlchemyError, MetadataUnavailable):
        raise Unavailable("the node's database cannot be reached; try again later") from None


def _guarded(call: Callable[[], _T]) -> _T:
    with _database():
        return call()


class ECertRecords:
    """What this node recorded of the e-certificates it issued, for the verification site.

    Its dependencies are its constructor's arguments: the metadata store, the directory
    (seal records other nodes publish) and the seal office (this node's seals and the live
    status of its e-certificates).
    """

    def __init__(
        self,
        *,
        node_id: str,
        metadata: MetadataStore,
        directory: DirectoryHolder,
        seals: SealOffice,
    ) -> None:
        self.node_id = node_id
        self.metadata = metadata
        self.directory = directory
        self.seals = seals

    def record(self, identifier: str) -> ECertRecord:
        """The record of an e-certificate this node issued.

        Raises:
            ECertIdentifierError: malformed identifier or bad check character.
            NotFound: this node did not issue it.
            Unavailable: the database cannot be reached.
        """
        parse_ecert_identifier(identifier)
        with _database(), self.metadata.read() as session:
            row = session.get(ECertRow, identifier)
            if row is None:
                raise NotFound(f"e-certificate {identifier} was not issued by node {self.node_id}")
            seal_row = session.get(SealRow, row.seal_id)
            seal = SealRecord.from_json_dict(json.loads(seal_row.record)) if seal_row else None
            return ECertRecord(
                identifier=row.identifier,
                type_code=row.type_code,
                document_name=row.document_name,
                document_sha256=row.document_sha256,
                issued_at=row.issued_at,
                status=ECertStatusEntry(
                    row.identifier, ECertStatus(row.status), row.changed_at, row.reason
                ),
                seal=seal,
            )

    def seal_records(self) -> list[SealRecord]:
        """This node's seal records and those the federation directory publishes.

        Raises:
            Unavailable: the database cannot be reached.
        """
        published = [SealRecord.from_json_dict(s) for s in self.directory.current.seals]
        return [*_guarded(self.seals.registered_seals), *published]

    def online_status(self, identifier: str) -> ECertStatusEntry:
        """The current status of an e-certificate this node issued.

        Raises:
            NotFound: not issued here.
            Unavailable: the database cannot be reached.
        """
        return _guarded(lambda: self.seals.ecert_status(identifier))
