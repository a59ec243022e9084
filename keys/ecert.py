"""Electronic-certificate (电子证照) identifiers and their signed status lists.

An identifier has the GB/T 36904 form
``1.2.156.3005.2.{type}.{issuer USCC}.{serial}.{version}.{check}``. The check character is
ISO 7064 MOD 37,36 (the hybrid system, M = 36) over everything after the prefix with the
dots removed; its alphabet is ``0-9A-Z`` only — the supplementary ``*`` belongs to the pure
system MOD 37-2, which GB/T 36904 does not use.

An issued e-certificate can later be revoked (撤销), cancelled (注销) or expire (失效). The
issuing node publishes those changes as a status list signed with its statement key, like
a CRL: an identifier that is not listed has not changed status.

Example:
    >>> ident = ECertIdentifier("11100000000013338W011", "11430000006122244L", "20230000403", "001")
    >>> str(ident)
    '1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.001.U'
    >>> parse_ecert_identifier(str(ident)) == ident
    True
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tongban.keys.clock import format_time, parse_time, require_aware
from tongban.keys.envelope import (
    Envelope,
    canonical_json,
    parse_json_object,
    sign_envelope,
    verify_envelope,
)
from tongban.keys.errors import BadPeerData, CallerError
from tongban.keys.identifiers import InvalidIdentifier, validate_credit_code
from tongban.keys.pki import CertificatePublicKey
from tongban.keys.signing import Signer, key_id_of

__all__ = [
    "ECERT_PREFIX",
    "ECERT_STATUS_LIST_PAYLOAD_TYPE",
    "ECertCheckCharacterError",
    "ECertIdentifier",
    "ECertIdentifierError",
    "ECertStatus",
    "ECertStatusEntry",
    "ECertStatusList",
    "StatusListStaleError",
    "load_status_list",
    "mod37_36_check_character",
    "parse_ecert_identifier",
    "sign_status_list",
    "verification_link",
]

ECERT_PREFIX = "1.2.156.3005.2"
ECERT_STATUS_LIST_PAYLOAD_TYPE = "application/vnd.tongban.ecert-status-list.v1+json"

_ALPHANUMERIC = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_TYPE_CODE = re.compile(r"[0-9A-Z]{1,32}")
_SERIAL = re.compile(r"[0-9A-Z]{1,64}")
_VERSION = re.compile(r"[0-9]{3}")
# A status list issued a little in the future is accepted: node clocks drift.
_CLOCK_SKEW = timedelta(minutes=5)


class ECertIdentifierError(BadPeerData):
    """An e-certificate identifier is malformed."""

    code = "bad-ecert-identifier"


class ECertCheckCharacterError(ECertIdentifierError):
    """An e-certificate identifier is well formed but its check character is wrong."""

    code = "bad-ecert-check-character"


class StatusListStaleError(BadPeerData):
    """A status list is not current at the moment asked about."""

    code = "status-list-stale"


def mod37_36_check_character(data: str) -> str:
    """ISO 7064 MOD 37,36 check character of ``data`` (characters ``0-9A-Z``).

    Raises:
        CallerError: ``data`` holds a character outside ``0-9A-Z``.
    """
    modulus = 36
    product = modulus
    for char in data:
        value = _ALPHANUMERIC.find(char)
        if value < 0:
            raise CallerError(f"character {char!r} is not in the MOD 37,36 alphabet 0-9A-Z")
        total = (product + value) % modulus or modulus
        product = (total * 2) % (modulus + 1)
    return _ALPHANUMERIC[(modulus + 1 - product) % modulus]


def _credit_code_problem(code: str) -> str | None:
    try:
        normalised = validate_credit_code(code)
    except InvalidIdentifier as exc:
        return exc.message
    return None if normalised == code else "not in its canonical upper-case form"


@dataclass(frozen=True)
class ECertIdentifier:
    """A GB/T 36904 e-certificate identifier; the check character is always computed.

    Raises:
        ECertIdentifierError: a part is malformed (on construction).
    """

    type_code: str
    issuer_uscc: str
    serial: str
    version: str = "001"

    def __post_init__(self) -> None:
        if not _TYPE_CODE.fullmatch(self.type_code):
            raise ECertIdentifierError(
                f"e-certificate type code {self.type_code!r} must be 1-32 characters 0-9A-Z"
            )
        problem = _credit_code_problem(self.issuer_uscc)
        if problem:
            raise ECertIdentifierError(f"issuer {self.issuer_uscc!r}: {problem}")
        if not _SERIAL.fullmatch(self.serial):
            raise ECertIdentifierError(
                f"e-certificate serial {self.serial!r} must be 1-64 characters 0-9A-Z"
            )
        if not _VERSION.fullmatch(self.version):
            raise ECertIdentifierError(
                f"e-certificate version {self.version!r} must be three digits"
            )

    @functools.cached_property
    def check(self) -> str:
        """The MOD 37,36 check character over type code, issuer, serial and version."""
        body = self.type_code + self.issuer_uscc + self.serial + self.version
        return mod37_36_check_character(body)

    def __str__(self) -> str:
        parts = (ECERT_PREFIX, self.type_code, self.issuer_uscc, self.serial, self.version)
        return ".".join((*parts, self.check))


def parse_ecert_identifier(text: str) -> ECertIdentifier:
    """Parse and validate an identifier, check character included.

    Raises:
        ECertIdentifierError: not of the GB/T 36904 form.
        ECertCheckCharacterError: the check character does not match.
    """
    prefix = ECERT_PREFIX + "."
    if not text.startswith(prefix):
        raise ECertIdentifierError(f"e-certificate identifier must start with {prefix!r}")
    parts = text[len(prefix) :].split(".")
    if len(parts) != 5:
        raise ECertIdentifierError(
            f"e-certificate identifier has {len(parts)} parts after the prefix, expected 5 "
            "(type, issuer, serial, version, check)"
        )
    type_code, issuer, serial, version, check = parts
    ident = ECertIdentifier(type_code, issuer, serial, version)
    if len(check) != 1 or check not in _ALPHANUMERIC:
        raise ECertIdentifierError(f"check character {check!r} must be one of 0-9A-Z")
    if check != ident.check:
        raise ECertCheckCharacterError(
            f"e-certificate identifier check character is {check!r}, expected {ident.check!r}"
        )
    return ident


def verification_link(base_url: str, identifier: ECertIdentifier) -> str:
    """The address a QR code carries: the verification service with the identifier."""
    separator = "&" if "?" in base_url else "?"
    return f"{base_url}{separator}ecert={quote(str(identifier), safe='')}"


class ECertStatus(enum.StrEnum):
    """An e-certificate's status: valid as issued, or revoked, cancelled or expired."""

    VALID = "valid"
    REVOKED = "revoked"  # 撤销 / 吊销
    CANCELLED = "cancelled"  # 注销
    EXPIRED = "expired"  # 失效


@dataclass(frozen=True)
class ECertStatusEntry:
    """One change of status: what it became, when, and why."""

    identifier: str
    status: ECertStatus
    changed_at: datetime
    reason: str = ""

    def to_json_dict(self) -> dict[str, Any]:
        """The entry as it appears in the signed status list payload."""
        return {
            "identifier": self.identifier,
            "status": self.status.value,
            "changed_at": format_time(self.changed_at),
            "reason": self.reason,
        }

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> ECertStatusEntry:
        """Raises: BadPeerData on missing or malformed fields."""
        try:
            return cls(
                identifier=str(data["identifier"]),
                status=ECertStatus(data["status"]),
                changed_at=parse_time(data["changed_at"]),
                reason=str(data.get("reason", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BadPeerData(f"malformed status entry: {exc!r}") from None


@dataclass(frozen=True)
class ECertStatusList:
    """Status changes of the e-certificates one node issued, current until ``next_update``."""

    node_id: str
    issued_at: datetime
    next_update: datetime
    entries: tuple[ECertStatusEntry, ...] = ()
    envelope: Envelope | None = field(default=None, compare=False)

    def status_at(self, identifier: str, at: datetime) -> ECertStatusEntry | None:
        """The latest change of ``identifier`` made at or before ``at``, or None."""
        at = require_aware(at, "at")
        changes = [e for e in self.entries if e.identifier == identifier and e.changed_at <= at]
        return max(changes, key=lambda e: e.changed_at) if changes else None

    def with_change(
        self,
        identifier: ECertIdentifier,
        status: ECertStatus,
        *,
        changed_at: datetime,
        reason: str,
        issued_at: datetime,
        next_update: datetime,
    ) -> ECertStatusList:
        """A new, unsigned list with one more change.

        Raises:
            CallerError: no reason for a revocation or cancellation, or an empty window.
        """
        if status in (ECertStatus.REVOKED, ECertStatus.CANCELLED) and not reason.strip():
            raise CallerError(f"a {status.value} e-certificate needs a reason")
        entry = ECertStatusEntry(
            str(identifier), status, require_aware(changed_at, "changed_at"), reason
        )
        return _checked_list(
            self.node_id, issued_at, next_update, (*self.entries, entry), envelope=None
        )

    def to_payload(self) -> bytes:
        """The canonical JSON bytes the node signs (see :func:`sign_status_list`)."""
        return canonical_json(
            {
                "type": "tongban-ecert-status-list",
                "node_id": self.node_id,
                "issued_at": format_time(self.issued_at),
                "next_update": format_time(self.next_update),
                "entries": [e.to_json_dict() for e in self.entries],
            }
        )

    @classmethod
    def empty(cls, node_id: str, *, issued_at: datetime, next_update: datetime) -> ECertStatusList:
        """An unsigned list with no changes: every e-certificate of the node is as issued.

        Raises:
            CallerError: a naive time, or ``next_update`` not after ``issued_at``.
        """
        return _checked_list(node_id, issued_at, next_update, (), envelope=None)


def _checked_list(
    node_id: str,
    issued_at: datetime,
    next_update: datetime,
    entries: Iterable[ECertStatusEntry],
    *,
    envelope: Envelope | None,
) -> ECertStatusList:
    start = require_aware(issued_at, "issued_at")
    end = require_aware(next_update, "next_update")
    if end <= start:
        raise CallerError(
            f"status list window is empty: {format_time(start)} .. {format_time(end)}"
        )
    return ECertStatusList(node_id, start, end, tuple(entries), envelope)


def sign_status_list(status_list: ECertStatusList, signer: Signer) -> Envelope:
    """Sign a status list with the issuing node's statement key."""
    return sign_envelope(status_list.to_payload(), ECERT_STATUS_LIST_PAYLOAD_TYPE, [signer])


def _key_map(
    keys: CertificatePublicKey | Mapping[str, CertificatePublicKey],
) -> Mapping[str, CertificatePublicKey]:
    if isinstance(keys, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
        return {key_id_of(keys): keys}
    return keys


def load_status_list(
    envelope: Envelope,
    keys: CertificatePublicKey | Mapping[str, CertificatePublicKey],
    *,
    at: datetime,
    max_age: timedelta | None = None,
) -> ECertStatusList:
    """Verify a signed status list and check that it is current at ``at``.

    ``keys`` is the issuing node's statement key, or its keys by key id as the directory
    publishes them. A list is current when ``issued_at <= at <= next_update`` and, if
    ``max_age`` is given, it was issued no more than ``max_age`` before ``at``.

    Raises:
        SignatureError: not signed by one of ``keys``.
        BadPeerData: malformed.
        StatusListStaleError: not current at ``at``.
    """
    at = require_aware(at, "at")
    verify_envelope(envelope, _key_map(keys), payload_type=ECERT_STATUS_LIST_PAYLOAD_TYPE)
    data = parse_json_object(envelope.payload, "status list")
    try:
        if data["type"] != "tongban-ecert-status-list":
            raise ValueError(f"type is {data['type']!r}")
        status_list = ECertStatusList(
            node_id=str(data["node_id"]),
            issued_at=parse_time(data["issued_at"]),
            next_update=parse_time(data["next_update"]),
            entries=tuple(ECertStatusEntry.from_json_dict(e) for e in data["entries"]),
            envelope=envelope,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BadPeerData(f"malformed status list: {exc!r}") from None
    if status_list.issued_at > at + _CLOCK_SKEW:
        raise StatusListStaleError(
            f"status list of node {status_list.node_id} is issued at "
            f"{format_time(status_list.issued_at)}, after {format_time(at)}"
        )
    if at > status_list.next_update:
        raise StatusListStaleError(
            f"status list of node {status_list.node_id} was due for update at "
            f"{format_time(status_list.next_update)}"
        )
    if max_age is not None and at - status_list.issued_at > max_age:
        raise StatusListStaleError(
            f"status list of node {status_list.node_id} issued at "
            f"{format_time(status_list.issued_at)} is older than {max_age}"
        )
    return status_list
