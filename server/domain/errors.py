"""Errors of the relay node, by what went wrong, each with a stable code and ``retryable``.

The code is the first word of the status message a caller sees. Mapping errors (these, and
those of ``tongban.keys`` and ``tongban.storage``) to gRPC statuses happens once, in
:mod:`tongban.server.grpc.status`.
"""

from __future__ import annotations

__all__ = [
    "Busy",
    "ClockSkewed",
    "Conflict",
    "IdleTimeout",
    "IllegalTransition",
    "IntegrityFailure",
    "InvalidRequest",
    "NoUsableSeal",
    "NotFound",
    "PermissionDenied",
    "RelayError",
    "TooLarge",
    "Unauthenticated",
    "Unavailable",
]


class RelayError(Exception):
    """Base of the node's own errors: a stable ``code`` and whether retrying could help.

    Which gRPC status each one becomes is decided in one place,
    :mod:`tongban.server.grpc.status`; this layer knows nothing of the transport.
    """

    code = "relay-error"
    retryable = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidRequest(RelayError):
    code = "invalid-request"


class NotFound(RelayError):
    code = "not-found"


class PermissionDenied(RelayError):
    code = "permission-denied"


class Unauthenticated(RelayError):
    code = "unauthenticated"


class IntegrityFailure(RelayError):
    """Content does not match what was signed, or ciphertext failed authentication."""

    code = "integrity-failure"


class Conflict(RelayError):
    code = "conflict"


class IllegalTransition(RelayError):
    code = "illegal-transition"


class NoUsableSeal(IllegalTransition):
    """A result cannot be sealed: the node has no seal it may apply now."""

    code = "no-usable-seal"


class TooLarge(RelayError):
    code = "too-large"


class Busy(RelayError):
    """A lane of the server, or the caller's share of it, is full; nothing was read."""

    code = "busy"
    retryable = True


class IdleTimeout(RelayError):
    """The caller sent no message (or took none) for longer than the idle timeout."""

    code = "idle-timeout"
    retryable = True


class Unavailable(RelayError):
    code = "unavailable"
    retryable = True


class ClockSkewed(RelayError):
    """This node's clock disagrees with its peers' by more than it may seal or stamp with."""

    code = "clock-skew"
