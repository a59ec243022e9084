"""The node's matter catalogue in its database: every change is a new, recorded version.

The bundled (or configured) catalogue file seeds an empty table; from then on admins edit
it. A case's clock keeps the limits of the matter version in force when it started.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from tongban.server.domain.errors import InvalidRequest, NotFound
from tongban.server.domain.matters import Matter, MatterCatalog, MatterError
from tongban.server.usecases.runtime import Clock
from tongban.storage.deadline_tables import MatterRow, MatterVersionRow
from tongban.storage.sql import MetadataStore

__all__ = ["MatterBook", "MatterVersion"]

_log = logging.getLogger("tongban.server.matters")
_SETTABLE = frozenset(
    {"name", "lead", "promised_days", "legal_days", "exempt", "deferrable", "notice_template"}
)


@dataclass(frozen=True)
class MatterVersion:
    matter: Matter
    version: int
    changed_at: datetime
    changed_by: str


def _encode(matter: Matter) -> bytes:
    return json.dumps(matter.to_json(), ensure_ascii=False, sort_keys=True).encode()


def _decode(data: bytes, code: str) -> Matter:
    return Matter.from_json(json.loads(data), where=f"stored matter {code}")


class MatterBook:
    """The matters table. Dependencies: the metadata store and the clock."""

    def __init__(self, *, metadata: MetadataStore, clock: Clock) -> None:
        self.metadata = metadata
        self.clock = clock

    def seed(self, catalog: MatterCatalog, *, actor: str = "catalogue file") -> int:
        """Fill an empty table from ``catalog`` (version 1 of each); returns how many."""
        with self.metadata.transaction() as session:
            if session.scalar(select(func.count()).select_from(MatterRow)):
                return 0
            now = self.clock()
            for matter in catalog:
                self._store(session, matter, 1, now, actor)
            return len(catalog)

    @staticmethod
    def _store(session: Any, matter: Matter, version: int, now: datetime, actor: str) -> None:
        data = _encode(matter)
        row = session.get(MatterRow, matter.code)
        if row is None:
            session.add(
                MatterRow(
                    code=matter.code, version=version, entry=data, changed_at=now, changed_by=actor
                )
            )
        else:
            row.version, row.entry, row.changed_at, row.changed_by = version, data, now, actor
        session.add(
            MatterVersionRow(
                code=matter.code, version=version, entry=data, changed_at=now, changed_by=actor
            )
        )

    def all(self) -> list[MatterVersion]:
        """Every matter in its current version, by code."""
        with self.metadata.read() as session:
            rows = session.scalars(select(MatterRow).order_by(MatterRow.code))
            return [
                MatterVersion(_decode(r.entry, r.code), r.version, r.changed_at, r.changed_by)
                for r in rows
            ]

    def get(self, code: str) -> MatterVersion:
        """The current version of one matter.

        Raises:
            NotFound: no such matter code.
        """
        with self.metadata.read() as session:
            row = session.get(MatterRow, code)
            if row is None:
                raise NotFound(f"unknown matter code {code!r}", code="unknown-matter")
            return MatterVersion(
                _decode(row.entry, code), row.version, row.changed_at, row.changed_by
            )

    def history(self, code: str) -> list[MatterVersion]:
        """Every version of one matter, oldest first.

        Raises:
            NotFound: no such matter code.
        """
        with self.metadata.read() as session:
            rows = list(
                session.scalars(
                    select(MatterVersionRow)
                    .where(MatterVersionRow.code == code)
                    .order_by(MatterVersionRow.version)
                )
            )
        if not rows:
            raise NotFound(f"unknown matter code {code!r}", code="unknown-matter")
        return [
            MatterVersion(_decode(r.entry, code), r.version, r.changed_at, r.changed_by)
            for r in rows
        ]

    def set(self, code: str, changes: dict[str, Any], *, actor: str) -> MatterVersion:
        """Change fields of one matter; a new version when anything differs.

        Raises:
            NotFound: no such matter code.
            InvalidRequest: an unknown field, or the changed matter is impossible (a promised
                limit longer than the legal one, a template with an unknown field…); nothing
                is changed.
        """
        unknown = sorted(set(changes) - _SETTABLE)
        if unknown:
            raise InvalidRequest(f"matter fields {unknown} cannot be set", code="matter-invalid")
        with self.metadata.transaction() as session:
            row = session.get(MatterRow, code)
            if row is None:
                raise NotFound(f"unknown matter code {code!r}", code="unknown-matter")
            current = _decode(row.entry, code)
            values = dict(changes)
            if "deferrable" in values:
                values["deferrable"] = tuple(values["deferrable"])
            try:
                new = replace(current, **values)
            except MatterError as exc:
                raise InvalidRequest(exc.message, code=exc.code) from None
            if new == current:
                return MatterVersion(current, row.version, row.changed_at, row.changed_by)
            now = self.clock()
            self._store(session, new, row.version + 1, now, actor)
        _log.info("matter %s version %d set by %s", code, row.version, actor)
        return MatterVersion(new, row.version, now, actor)

    def import_json(self, text: bytes, *, source: str, actor: str) -> list[MatterVersion]:
        """Add or change the matters of a catalogue file; returns those that changed.

        Raises:
            InvalidRequest: the file is refused as a whole (see
                :meth:`MatterCatalog.from_json`); nothing is changed.
        """
        try:
            catalog = MatterCatalog.from_json(text, source=source)
        except MatterError as exc:
            raise InvalidRequest(exc.message, code=exc.code) from None
        changed: list[MatterVersion] = []
        now = self.clock()
        with self.metadata.transaction() as session:
            for matter in catalog:
                row = session.get(MatterRow, matter.code)
                if row is not None and _decode(row.entry, matter.code) == matter:
                    continue
                version = 1 if row is None else row.version + 1
                self._store(session, matter, version, now, actor)
                changed.append(MatterVersion(matter, version, now, actor))
        _log.info("%d matters changed by %s from %s", len(changed), actor, source)
        return changed
