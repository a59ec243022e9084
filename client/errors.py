"""Errors raised by the hall SDK."""

from __future__ import annotations

import grpc

__all__ = ["FetchVerificationError", "HallClientError", "RequestRefused"]


class HallClientError(Exception):
    code = "client-error"


class RequestRefused(HallClientError):
    """The node refused the call; ``status`` and ``message`` are the node's words."""

    code = "refused"

    def __init__(self, status: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{status.name}: {message}")
        self.status = status
        self.message = message


class FetchVerificationError(HallClientError):
    """A fetched file did not match the signed manifest; it was not kept."""

    code = "fetch-unverified"
