"""Errors of the relay node, and the one place where every error becomes a gRPC status.

Each error has a stable ``code`` (the first word of the status message) and says whether
retrying could help. Errors from ``tongban.keys`` and ``tongban.storage`` are mapped here
too, so servicers never choose status codes themselves.
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
from tongban.server.matters import MatterError
from tongban.storage.objects import ObjectNotFound, ObjectStoreError

__all__ = [
    "MAX_STATUS_MESSAGE",
    "Busy",
    "Conflict",
    "IdleTimeout",
    "IllegalTransition",
    "IntegrityFailure",
    "InvalidRequest",
    "NotFound",
    "PermissionDenied",
    "RelayError",
    "TooLarge",
    "Unauthenticated",
    "Unavailable",
    "abort_with",
    "guard",
    "guard_stream",
    "refusal_of",
    "status_of",
]

_log = logging.getLogger("tongban.server")
T = TypeVar("T")


class RelayError(Exception):
    """Base of the node's own errors."""

    code = "relay-error"
    status = grpc.StatusCode.INTERNAL
    retryable = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidRequest(RelayError):
    code = "invalid-request"
    status = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(RelayError):
    code = "not-found"
    status = grpc.StatusCode.NOT_FOUND


class PermissionDenied(RelayError):
    code = "permission-denied"
    status = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(RelayError):
    code = "unauthenticated"
    status = grpc.StatusCode.UNAUTHENTICATED


class IntegrityFailure(RelayError):
    """Content does not match what was signed, or ciphertext failed authentication."""

    code = "integrity-failure"
    status = grpc.StatusCode.DATA_LOSS


class Conflict(RelayError):
    code = "conflict"
    status = grpc.StatusCode.ALREADY_EXISTS


class IllegalTransition(RelayError):
    code = "illegal-transition"
    status = grpc.StatusCode.FAILED_PRECONDITION


class TooLarge(RelayError):
    code = "too-large"
    status = grpc.StatusCode.RESOURCE_EXHAUSTED


class Busy(RelayError):
    """A lane of the server, or the caller's share of it, is full; nothing was read."""

    code = "busy"
    status = grpc.StatusCode.RESOURCE_EXHAUSTED
    retryable = True


class IdleTimeout(RelayError):
    """The caller sent no message (or took none) for longer than the idle timeout."""

    code = "idle-timeout"
    status = grpc.StatusCode.DEADLINE_EXCEEDED
    retryable = True


class Unavailable(RelayError):
    code = "unavailable"
    status = grpc.StatusCode.UNAVAILABLE
    retryable = True


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str] | None:
    """The gRPC status and message for a known error, or None for a bug."""
    if isinstance(exc, RelayError):
        return exc.status, f"{exc.code}: {exc.message}"
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
    if isinstance(exc, ObjectNotFound):
        return grpc.StatusCode.DATA_LOSS, f"blob-missing: {exc}"
    if isinstance(exc, ObjectStoreError) and exc.retryable:
        return grpc.StatusCode.UNAVAILABLE, f"object-store: {exc}"
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
    _log.warning("refused %s: %s %s", who, code.name, message)
    return code, message


def abort_with(context: grpc.ServicerContext, exc: BaseException, *, who: str) -> NoReturn:
    """Log a refused or failed call and end it with the mapped status."""
    code, message = refusal_of(exc, who=who)
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
