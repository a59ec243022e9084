"""How the delivery loop talks to peer nodes: the transport interface and its outcomes.

The node's transport is gRPC (:mod:`tongban.server.grpc.peers`); use cases see only this.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Protocol

from tongban.keys.directory import NodeEntry
from tongban.keys.envelope import Envelope
from tongban.server.usecases.messages import DeliverOpening, DeliverPart

__all__ = ["BatchOutcome", "PeerCallFailed", "PeerTransport"]


class PeerCallFailed(Exception):
    """A call to a peer node ended without an answer: the peer refused it, or was not reached.

    ``retryable`` is the peer's own word (or, for a call that never reached it, the
    transport's): a refusal that is not retryable judged the content and parks the item.
    ``too_large`` says the peer refused the size of a batch call, not its packets.
    """

    def __init__(
        self, status: str, message: str, *, retryable: bool, too_large: bool = False
    ) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.retryable = retryable
        self.too_large = too_large


@dataclasses.dataclass(frozen=True)
class BatchOutcome:
    """The peer's answer for one packet of a batch: a signed receipt, or a refusal."""

    receipt: Envelope | None
    duplicate: bool = False
    refusal: PeerCallFailed | None = None


class PeerTransport(Protocol):
    """Calls to peer nodes, whatever carries them (gRPC over mTLS in the node)."""

    def deliver(
        self, peer: NodeEntry, parts: Iterator[DeliverPart], *, timeout: float
    ) -> tuple[Envelope, bool]:
        """Stream one packet; the peer's signed receipt and whether it held the packet already.

        Raises:
            PeerCallFailed: refused or not reached.
        """
        ...

    def deliver_batch(
        self, peer: NodeEntry, openings: Sequence[DeliverOpening], *, timeout: float
    ) -> list[BatchOutcome]:
        """Send packets with inline segments in one call; one outcome per packet, in order.

        Raises:
            PeerCallFailed: the whole call was refused or not reached.
        """
        ...

    def push_event(self, peer: NodeEntry, event: Envelope, *, timeout: float) -> Envelope:
        """Send one signed case event; the peer's signed acknowledgement.

        Raises:
            PeerCallFailed: refused or not reached.
        """
        ...
