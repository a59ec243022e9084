"""The e-certificate checks: the identifier a seal carries (GB/T 36904) and its current status.

The status comes from the issuing node's verification service when one is given, otherwise
from the node's signed status list (checked with its key, and only if recent enough); a
seal whose e-certificate was revoked, cancelled or expired is INVALID with the matching
sub-indication, one whose status cannot be learned is INDETERMINATE/TRY_LATER.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

from tongban.keys.clock import format_time
from tongban.keys.ecert import (
    ECertIdentifierError,
    ECertStatus,
    ECertStatusEntry,
    load_status_list,
    parse_ecert_identifier,
)
from tongban.keys.envelope import Envelope
from tongban.keys.errors import BadPeerData
from tongban.keys.pki import CertificatePublicKey
from tongban.keys.seals import SealRecord
from tongban.keys.verification._der import _Signed
from tongban.keys.verification._report import SubIndication, _Checks, _Context

OnlineStatusLookup = Callable[[str], ECertStatusEntry]
"""Ask the issuing node's verification service for an identifier's current status."""


@dataclass(frozen=True)
class _StatusSource:
    """The issuing node's signed status list, the key(s) to check it, and how old it may be."""

    envelope: Envelope
    keys: CertificatePublicKey | Mapping[str, CertificatePublicKey]
    max_age: timedelta | None


def _check_ecert(
    signed: _Signed,
    record: SealRecord | None,
    node_id: str,
    checks: _Checks,
    context: _Context,
    *,
    online: OnlineStatusLookup | None,
    status_source: _StatusSource | None,
) -> None:
    """The e-certificate identifier the seal carries, and its current status."""
    if signed.identifier is None:
        checks.skipped("ecert_identifier", "the seal carries no e-certificate identifier")
        checks.skipped("ecert_status", "no e-certificate identifier")
        return
    context.identifier = signed.identifier
    try:
        identifier = parse_ecert_identifier(signed.identifier)
    except ECertIdentifierError as exc:
        checks.failed(
            "ecert_identifier",
            SubIndication.FORMAT_FAILURE,
            f"{signed.identifier!r}: {exc.message}",
        )
        checks.skipped("ecert_status", "the e-certificate identifier is malformed")
        return
    if record is not None and identifier.issuer_uscc != record.org_uscc:
        checks.undecided(
            "ecert_identifier",
            SubIndication.SIG_CONSTRAINTS_FAILURE,
            f"the identifier names issuer {identifier.issuer_uscc}, but the seal belongs "
            f"to {record.org_uscc}",
        )
    else:
        checks.passed("ecert_identifier", f"{identifier} (GB/T 36904, check character ok)")
    _check_ecert_status(
        str(identifier), node_id, checks, context, online=online, status_source=status_source
    )


def _check_ecert_status(
    identifier: str,
    node_id: str,
    checks: _Checks,
    context: _Context,
    *,
    online: OnlineStatusLookup | None,
    status_source: _StatusSource | None,
) -> None:
    """The e-certificate's current status, from the online service or the status list."""
    name = "ecert_status"
    entry: ECertStatusEntry | None
    if online is not None:
        try:
            entry = online(identifier)
        except Exception as exc:  # whatever the transport raised, the status is unknown
            checks.undecided(
                name, SubIndication.TRY_LATER, f"the verification service failed: {exc}"
            )
            return
        source = "the issuing node's verification service"
    elif status_source is not None:
        try:
            status_list = load_status_list(
                status_source.envelope,
                status_source.keys,
                at=context.at,
                max_age=status_source.max_age,
            )
        except BadPeerData as exc:
            checks.undecided(
                name, SubIndication.TRY_LATER, f"status list not usable: {exc.message}"
            )
            return
        if node_id and status_list.node_id != node_id:
            checks.undecided(
                name,
                SubIndication.TRY_LATER,
                f"the status list is node {status_list.node_id}'s; the e-certificate was "
                f"issued by node {node_id}",
            )
            return
        entry = status_list.status_at(identifier, context.at)
        source = (
            f"the status list of node {status_list.node_id} issued "
            f"{format_time(status_list.issued_at)}"
        )
    else:
        checks.skipped(name, "no status list was given; the current status was not checked")
        return
    status = entry.status if entry is not None else ECertStatus.VALID
    context.ecert_status = status
    if status is ECertStatus.VALID or entry is None:
        checks.passed(name, f"valid according to {source}")
        return
    checks.failed(
        name,
        _STATUS_SUB[status],
        f"{status.value} ({_STATUS_ZH[status]}) at {format_time(entry.changed_at)}: "
        f"{entry.reason or 'no reason given'} (according to {source})",
    )


_STATUS_SUB = {
    ECertStatus.REVOKED: SubIndication.ECERT_REVOKED,
    ECertStatus.CANCELLED: SubIndication.ECERT_CANCELLED,
    ECertStatus.EXPIRED: SubIndication.ECERT_EXPIRED,
}
_STATUS_ZH = {
    ECertStatus.VALID: "有效",
    ECertStatus.REVOKED: "撤销",
    ECertStatus.CANCELLED: "注销",
    ECertStatus.EXPIRED: "失效",
}
