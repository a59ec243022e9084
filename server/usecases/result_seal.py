"""Which seal a handling node applies to its results, or why it cannot seal them.

Every result goes out sealed or not at all: a node without a seal it may apply now (none
registered, the configured one unknown, revoked or outside its window) refuses the result
with :class:`NoUsableSeal`, whose message names the seal and the command that registers one.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from tongban.keys.clock import format_time
from tongban.keys.seals import SealRecord
from tongban.server.domain.errors import NoUsableSeal
from tongban.server.usecases.seal_keys import SealBook
from tongban.storage.sql import SealRow

__all__ = ["register_command", "result_seal_id"]


def register_command(node_id: str, book: SealBook | None, seal_id: str = "ID") -> str:
    """The ``tongban seal register`` command for this node, with its admin profile's folder
    where ``federation init`` put it (beside the node's seal folder)."""
    profile = f"<admin profile of node {node_id}>"
    if book is not None:
        admins = book.folder.parent / "admins"
        first = min(admins.iterdir(), default=None) if admins.is_dir() else None
        if first is not None:
            profile = _shown(first)
    return (
        f"tongban seal register --profile {profile} --seal-id {seal_id} --name NAME "
        "--org-name ORGANISATION --uscc CODE"
    )


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it, else absolute."""
    absolute = path.resolve()
    try:
        return str(absolute.relative_to(Path(os.getcwd()).resolve()))
    except ValueError:
        return str(absolute)


def _why_unusable(record: SealRecord) -> str:
    if record.revoked_at is not None:
        return f"was revoked at {format_time(record.revoked_at)}"
    return f"is valid only from {format_time(record.not_before)} to {format_time(record.not_after)}"


def result_seal_id(
    session: Session, *, node_id: str, book: SealBook | None, now: datetime, configured: str
) -> str:
    """The seal for this node's results: ``[seals] result_seal``, else the newest usable one.

    Raises:
        NoUsableSeal: no seal CA, the configured seal unknown or unusable now, or no
            registered seal usable now; nothing may be sent unsealed.
    """
    if book is None:
        raise NoUsableSeal(
            f"node {node_id} has no seal CA ([seals] dir in node.toml), so it cannot seal "
            "results; give it the seals/ folder that tongban federation init wrote"
        )
    if configured:
        row = session.get(SealRow, configured)
        if row is None:
            raise NoUsableSeal(
                f"the result seal {configured} ([seals] result_seal) is not registered at node "
                f"{node_id}; register it: {register_command(node_id, book, configured)}"
            )
        record = SealRecord.from_json_dict(json.loads(row.record))
        if not record.valid_at(now):
            raise NoUsableSeal(
                f"the result seal {configured} ([seals] result_seal) of node {node_id} "
                f"{_why_unusable(record)}; register another, name it in [seals] "
                f"result_seal: {register_command(node_id, book)}"
            )
        return configured
    unusable = []
    for row in session.scalars(select(SealRow).order_by(SealRow.created_at.desc())):
        record = SealRecord.from_json_dict(json.loads(row.record))
        if not book.key_path(row.seal_id).exists():
            # Results are sealed as CMS: a national-format seal has no key in the CMS book.
            unusable.append(f"{row.seal_id} is a national-format seal")
        elif record.valid_at(now):
            return row.seal_id
        else:
            unusable.append(f"{row.seal_id} {_why_unusable(record)}")
    if not unusable:
        raise NoUsableSeal(
            f"node {node_id} has no seal registered, so its results cannot be sealed; "
            f"register one: {register_command(node_id, book)}"
        )
    raise NoUsableSeal(
        # The command first: a long list is what the status message's length limit cuts.
        f"node {node_id} has no usable seal for its results; register another: "
        f"{register_command(node_id, book)} ({'; '.join(unusable)})"
    )
