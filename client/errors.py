"""Errors of the client SDK: a node's refusal, and fetched files that failed verification."""

from __future__ import annotations

import grpc

__all__ = ["FetchVerificationError", "HallClientError", "RequestRefused", "UnsafeFileName"]


class HallClientError(Exception):
    """Base of the client SDK's own errors; ``code`` is a stable word for each kind."""

    code = "client-error"


class RequestRefused(HallClientError):
    """The node refused the call; ``status`` and ``message`` are the node's words."""

    code = "refused"

    def __init__(self, status: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{status.name}: {message}")
        self.status = status
        self.message = message

    @classmethod
    def from_rpc_error(cls, exc: grpc.RpcError) -> RequestRefused:
        """The node's status and message out of a failed call."""
        code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
        details = exc.details() if hasattr(exc, "details") else None
        return cls(code, details or str(exc))


class FetchVerificationError(HallClientError):
    """A fetched file did not match the signed manifest; it was not kept."""

    code = "fetch-unverified"


class UnsafeFileName(FetchVerificationError):
    """The node named a file that is not one plain name inside the output folder; nothing
    of that file was written."""

    code = "bad-file-name"
