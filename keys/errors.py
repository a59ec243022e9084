"""Exceptions of tongban.keys.

Every error has a stable ``code``. They are split by source, as the transport layer maps
them to statuses in one place: :class:`BadPeerData` (what a peer sent is wrong),
:class:`CallerError` (the local caller asked for something impossible).
"""

from __future__ import annotations

__all__ = [
    "ECHO_LIMIT",
    "BadFileName",
    "BadPeerData",
    "CallerError",
    "DecryptionError",
    "KeysError",
    "SignatureError",
    "UnknownKeyError",
    "echo",
]

# Longest piece of a caller's value an error message repeats (gRPC trailers are small).
ECHO_LIMIT = 80


def echo(value: object, limit: int = ECHO_LIMIT) -> str:
    """``repr(value)`` cut to ``limit`` characters with an ellipsis: how a message shows a
    value it was given, so that no caller can make an error message arbitrarily long."""
    shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


class KeysError(Exception):
    """Base class of every tongban.keys error."""

    code = "keys-error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadPeerData(KeysError):
    """Data received from elsewhere failed a check."""

    code = "bad-peer-data"


class SignatureError(BadPeerData):
    """A signature does not verify under any acceptable key."""

    code = "bad-signature"


class UnknownKeyError(BadPeerData):
    """No acceptable key was found for a signer or recipient."""

    code = "unknown-key"


class DecryptionError(BadPeerData):
    """Ciphertext failed authentication. Deliberately says nothing about why."""

    code = "decryption-failed"


class BadFileName(KeysError):
    """A file name fails the file-name rule, whether a hall or a peer node sent it."""

    code = "bad-file-name"


class CallerError(KeysError):
    """The local caller passed arguments that cannot work."""

    code = "caller-error"
