"""When the hall SDK tries a call again: a retry policy as a value, and the node's own word.

The node says with every refusal whether the same call could succeed later (trailing
metadata ``tongban-retryable``, set from the error it raised); the SDK retries only those,
never a refusal of the request itself. A node that does not say (one of an older version,
or a call that never reached it) is judged by the status: ``UNAVAILABLE`` and
``DEADLINE_EXCEEDED`` only.

Example:
    >>> policy = RetryPolicy(initial=0.1, multiplier=2.0, maximum=1.0, attempts=4, jitter=0)
    >>> [policy.delay(n) for n in (1, 2, 3)]
    [0.1, 0.2, 0.4]
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

import grpc

__all__ = ["DEFAULT_RETRY", "RETRYABLE_KEY", "RetryPolicy", "is_retryable"]

RETRYABLE_KEY = "tongban-retryable"
_TRANSIENT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: ``attempts`` calls in all, the first at once."""

    initial: float = 0.2
    multiplier: float = 2.0
    maximum: float = 5.0
    attempts: int = 4
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {self.attempts}")
        if self.initial < 0 or self.maximum < self.initial or self.multiplier < 1:
            raise ValueError("a retry policy needs 0 <= initial <= maximum and multiplier >= 1")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter is a fraction in [0, 1), not {self.jitter}")

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        base = min(self.maximum, self.initial * self.multiplier ** (retry - 1))
        if not self.jitter:
            return base
        return base * random.uniform(1 - self.jitter, 1 + self.jitter)  # noqa: S311 - not crypto


DEFAULT_RETRY = RetryPolicy()


def is_retryable(exc: grpc.RpcError) -> bool:
    """Whether the node said the same call may succeed later (or, silent, the status does)."""
    metadata: Iterable[tuple[str, str | bytes]] = (
        exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None  # type: ignore[assignment]
    ) or ()
    for key, value in metadata:
        if key == RETRYABLE_KEY:
            return value == "true"
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    return code in _TRANSIENT
