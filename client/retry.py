"""When the hall SDK tries a call again: a retry policy as a value, and the node's own word.

Only a call that ended ``UNAVAILABLE`` or ``DEADLINE_EXCEEDED`` is tried again, and not
even then when the node said the same call cannot succeed later (trailing metadata
``tongban-retryable: false``, set from the error it raised). Every other status is the
node's refusal of the request itself and goes back to the caller at once.

Example:
    >>> policy = RetryPolicy(initial=0.1, multiplier=2.0, maximum=1.0, attempts=4, jitter=0)
    >>> [policy.delay(n) for n in (1, 2, 3)]
    [0.1, 0.2, 0.4]
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import grpc

__all__ = ["DEFAULT_RETRY", "RETRYABLE_KEY", "RetryPolicy", "call_with_retry", "is_retryable"]

T = TypeVar("T")

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

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry).

        The jitter spreads it over ``base * (1 ± jitter)``, drawn from ``rng`` when given.
        """
        base = min(self.maximum, self.initial * self.multiplier ** (retry - 1))
        if not self.jitter:
            return base
        draw = (rng or random).uniform(1 - self.jitter, 1 + self.jitter)  # jitter, not a secret
        return base * draw


DEFAULT_RETRY = RetryPolicy()


def is_retryable(exc: grpc.RpcError) -> bool:
    """Whether the call failed in transit (``UNAVAILABLE``, ``DEADLINE_EXCEEDED``) and the
    node did not say that the same call cannot succeed later."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    if code not in _TRANSIENT:
        return False
    metadata: Iterable[tuple[str, str | bytes]] = (
        exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None  # type: ignore[assignment]
    ) or ()
    return all(value != "false" for key, value in metadata if key == RETRYABLE_KEY)


def call_with_retry(
    call: Callable[[], T],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    before_retry: Callable[[], None] | None = None,
) -> T:
    """Run ``call``, trying again after the policy's delay while it fails retryably.

    ``before_retry`` runs before each new attempt (to undo a progress count, say).

    Raises:
        grpc.RpcError: the last attempt's error, or the first one that is not retryable.
    """
    for attempt in range(1, policy.attempts + 1):
        try:
            return call()
        except grpc.RpcError as exc:
            if attempt == policy.attempts or not is_retryable(exc):
                raise
        sleep(policy.delay(attempt, rng))
        if before_retry is not None:
            before_retry()
    raise AssertionError("unreachable: the last attempt returns or raises")
