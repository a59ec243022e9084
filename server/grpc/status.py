"""The one place where an error becomes a gRPC status, and where a refusal is logged.

Every error the node can end a call with is mapped here: its own (``tongban.server.domain
.errors``), those of ``tongban.keys`` and of ``tongban.storage``. Anything else is a bug:
``INTERNAL`` with a generic message, logged with its traceback. Whether a call may be
retried travels with the status as the trailing metadata ``tongban-retryable``, so the hall
SDK and a sending node decide from the same flag the error carries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import NoReturn, TypeVar

import grpc

from tongban.keys.content import TruncatedStreamError
from tongban.keys.errors import (
    BadPeerData,
    CallerError,
    DecryptionError,
    KeysError,
    SignatureError,
    UnknownKeyError,
)
from tongban.keys.identifiers import InvalidIdentifier
from tongban.server.domain.errors import (
    Busy,
    ClockSkewed,
    Conflict,
    IdleTimeout,
    IllegalTransition,
    IntegrityFailure,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    RelayError,
    TooLarge,
    Unauthenticated,
    Unavailable,
)
from tongban.server.domain.matters import MatterError
from tongban.storage.objects import (
    ObjectNotFound,
    ObjectStoreError,
    ObjectStoreFull,
    ObjectStoreUnavailable,
)
from tongban.storage.sql import MetadataUnavailable

__all__ = [
    "DATABASE_UNREACHABLE",
    "MAX_STATUS_MESSAGE",
    "OBJECT_STORE_UNREACHABLE",
    "RETRYABLE_KEY",
    "STORAGE_FULL",
    "abort_with",
    "guard",
    "guard_stream",
    "refusal_of",
    "retryable_of",
    "status_code_of",
    "status_of",
]

_log = logging.getLogger("tongban.server")
T = TypeVar("T")

# Trailing metadata that says whether the same call may succeed later.
RETRYABLE_KEY = "tongban-retryable"

# What a caller is told when the node's own storage fails; the cause (the driver's or the
# operating system's words) goes to the node's log, not to the caller.
DATABASE_UNREACHABLE = "database-unavailable: the node's database is unreachable; try again later"
OBJECT_STORE_UNREACHABLE = (
    "object-store-unavailable: the node's object store is unreachable; try again later"
)
STORAGE_FULL = "storage-full: the node's storage is full; try again later"

_STATUS: dict[type[RelayError], grpc.StatusCode] = {
    InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    IntegrityFailure: grpc.StatusCode.DATA_LOSS,
    Conflict: grpc.StatusCode.ALREADY_EXISTS,
    IllegalTransition: grpc.StatusCode.FAILED_PRECONDITION,
    ClockSkewed: grpc.StatusCode.FAILED_PRECONDITION,
    TooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Busy: grpc.StatusCode.RESOURCE_EXHAUSTED,
    IdleTimeout: grpc.StatusCode.DEADLINE_EXCEEDED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
}


def status_code_of(exc: RelayError) -> grpc.StatusCode:
    """The status of one of the node's own errors (its nearest mapped class)."""
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return grpc.StatusCode.INTERNAL


def retryable_of(exc: BaseException) -> bool:
    """Whether the same call could succeed later: the error says so itself."""
    return bool(getattr(exc, "retryable", False))


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str] | None:
    """The gRPC status and message for a known error, or None for a bug."""
    if isinstance(exc, RelayError):
        return status_code_of(exc), f"{exc.code}: {exc.message}"
    if isinstance(exc, DecryptionError | TruncatedStreamError):
        return grpc.StatusCode.DATA_LOSS, f"{exc.code}: {exc.message}"
    if isinstance(exc, SignatureError | UnknownKeyError):
        return grpc.StatusCode.UNAUTHENTICATED, f"{exc.code}: {exc.message}"
    if isinstance(exc, InvalidIdentifier | BadPeerData | CallerError):
        return grpc.StatusCode.INVALID_ARGUMENT, f"{exc.code}: {exc.message}"
    if isinstance(exc, KeysError):
        return grpc.StatusCode.INVALID_ARGUMENT, f"{exc.code}: {exc.message}"
    if isinstance(exc, MatterError):
        return grpc.StatusCode.INVALID_ARGUMENT, f"{exc.code}: {exc}"
    if isinstance(exc, MetadataUnavailable):
        return grpc.StatusCode.UNAVAILABLE, DATABASE_UNREACHABLE
    if isinstance(exc, ObjectNotFound):
        return grpc.StatusCode.DATA_LOSS, f"blob-missing: {exc}"
    if isinstance(exc, ObjectStoreFull):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, STORAGE_FULL
    if isinstance(exc, ObjectStoreUnavailable):
        return grpc.StatusCode.UNAVAILABLE, OBJECT_STORE_UNREACHABLE
    if isinstance(exc, ObjectStoreError) and exc.retryable:
        return grpc.StatusCode.UNAVAILABLE, f"object-store: {exc.code}"
    if isinstance(exc, ObjectStoreError):
        # Not the caller's fault and not healed by retrying: the node's own store is wrong.
        return grpc.StatusCode.INTERNAL, f"object-store: {exc.code}"
    return None


# Longest status message a refusal carries: the message travels percent-encoded in the
# trailers, whose whole size gRPC limits to 8 KiB.
MAX_STATUS_MESSAGE = 400


def refusal_of(exc: BaseException, *, who: str) -> tuple[grpc.StatusCode, str]:
    """Log a refused or failed request and return the status and message it ends with."""
    mapped = status_of(exc)
    if mapped is None:
        _log.error("internal error serving %s", who, exc_info=exc)
        return grpc.StatusCode.INTERNAL, "internal: the node failed; see its log"
    code, message = mapped
    if len(message) > MAX_STATUS_MESSAGE:
        message = message[: MAX_STATUS_MESSAGE - 1] + "…"
    cause = _cause_of(exc)
    if cause and cause not in message:
        _log.warning("refused %s: %s %s (%s)", who, code.name, message, cause)
    else:
        _log.warning("refused %s: %s %s", who, code.name, message)
    return code, message


def _cause_of(exc: BaseException) -> str:
    """What the node's operator needs beyond the caller's message: the storage's own words."""
    if isinstance(exc, MetadataUnavailable | ObjectStoreError):
        return exc.message
    return ""


def abort_with(context: grpc.ServicerContext, exc: BaseException, *, who: str) -> NoReturn:
    """Log a refused or failed call and end it with the mapped status and retry flag.

    A call that was cancelled (by the node's graceful shutdown once its grace period ran
    out, or by the caller) ends its request stream with a bare ``grpc.RpcError``: that is
    no failure of the node, and it is logged as what it is, without a traceback.
    """
    if isinstance(exc, grpc.RpcError) and not context.is_active():
        _log.info(
            "%s cancelled before it finished (the node is shutting down or the caller went "
            "away); nothing of it was committed",
            who,
        )
        context.abort(grpc.StatusCode.CANCELLED, "cancelled")
    code, message = refusal_of(exc, who=who)
    context.set_trailing_metadata(((RETRYABLE_KEY, "true" if retryable_of(exc) else "false"),))
    context.abort(code, message)


def guard(context: grpc.ServicerContext, who: str, call: Callable[[], T]) -> T:
    """Run a unary handler; any error ends the call with its mapped status."""
    try:
        return call()
    except Exception as exc:
        abort_with(context, exc, who=who)


def guard_stream(
    context: grpc.ServicerContext, who: str, stream: Callable[[], Iterator[T]]
) -> Iterator[T]:
    """Run a streaming handler; an error ends the stream with its mapped status."""
    try:
        yield from stream()
    except Exception as exc:
        abort_with(context, exc, who=who)
