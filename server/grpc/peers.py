"""Calls to peer nodes over gRPC with mutual TLS: the node's :class:`PeerTransport`.

Each channel trusts only the peer's identity CA from the signed directory and checks the
peer's host name (docs/adr/0004-certificate-hierarchy.md). A failed call becomes a
:class:`PeerCallFailed` carrying the peer's own ``retryable`` word when it sent one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

import grpc

from tongban.keys.directory import NodeEntry
from tongban.keys.envelope import Envelope
from tongban.keys.pki import certificate_pem, node_host_name
from tongban.proto import relay_pb2, relay_pb2_grpc
from tongban.server.grpc.converters import (
    deliver_requests,
    envelope_from_proto,
    envelope_to_proto,
    opening_to_proto,
)
from tongban.server.grpc.status import RETRYABLE_KEY
from tongban.server.usecases.delivery import BatchOutcome, PeerCallFailed
from tongban.server.usecases.messages import DeliverOpening, DeliverPart

__all__ = ["GrpcPeerTransport", "PeerChannels", "peer_call_failed"]

# Without the peer's word (a call that never reached it, or a peer of an older version):
# these statuses mean it judged the content itself, and the same bytes cannot succeed.
_JUDGED = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.DATA_LOSS,
        grpc.StatusCode.ALREADY_EXISTS,
    }
)


# Reconnect backoff of a channel to a peer: from half a second up to two seconds.
_RECONNECT_INITIAL_MS = 500
_RECONNECT_MAX_MS = 2000


def _status(code: int) -> grpc.StatusCode:
    return next((c for c in grpc.StatusCode if c.value[0] == code), grpc.StatusCode.UNKNOWN)


def _retryable(code: grpc.StatusCode, metadata: object) -> bool:
    for key, value in metadata or ():  # type: ignore[attr-defined]
        if key == RETRYABLE_KEY:
            return bool(value == "true")
    return code not in _JUDGED


def peer_call_failed(exc: grpc.RpcError) -> PeerCallFailed:
    """What a failed call to a peer means for delivery."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = str(exc.details() if hasattr(exc, "details") else exc) or ""
    metadata = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else ()
    return PeerCallFailed(
        code.name,
        details,
        retryable=_retryable(code, metadata),
        # Over the peer's message limit, as opposed to a full lane or a full disk.
        too_large=code == grpc.StatusCode.RESOURCE_EXHAUSTED
        and not details.startswith(("busy:", "storage-full:")),
    )


class PeerChannels:
    """mTLS channels to the other nodes, each pinned to the peer's identity CA and name.

    A channel trusts nothing but the identity CA that the signed directory lists for that
    peer, and checks that the certificate names the peer's host: a certificate issued by
    any other CA under the federation root, or for another node, fails the handshake.
    """

    def __init__(self, cert_chain: bytes, private_key: bytes, max_message: int) -> None:
        self._chain = cert_chain
        self._key = private_key
        self._max = max_message
        self._lock = threading.Lock()
        self._channels: dict[tuple[str, str, bytes], grpc.Channel] = {}

    def stub(self, peer: NodeEntry) -> relay_pb2_grpc.RelayServiceStub:
        anchor = certificate_pem(peer.identity_ca)
        key = (peer.node_id, peer.endpoint, anchor)
        with self._lock:
            channel = self._channels.get(key)
            if channel is None:
                creds = grpc.ssl_channel_credentials(anchor, self._key, self._chain)
                channel = grpc.secure_channel(
                    peer.endpoint,
                    creds,
                    options=[
                        # The certificate must name this very node, not just any member.
                        ("grpc.ssl_target_name_override", node_host_name(peer.node_id)),
                        ("grpc.max_send_message_length", self._max),
                        ("grpc.max_receive_message_length", self._max),
                        # gRPC's default reconnect backoff grows to two minutes, and calls
                        # meanwhile fail on the cached error: a peer that is back must be
                        # reached within seconds.
                        ("grpc.initial_reconnect_backoff_ms", _RECONNECT_INITIAL_MS),
                        ("grpc.min_reconnect_backoff_ms", _RECONNECT_INITIAL_MS),
                        ("grpc.max_reconnect_backoff_ms", _RECONNECT_MAX_MS),
                    ],
                )
                self._channels[key] = channel
        return relay_pb2_grpc.RelayServiceStub(channel)

    def close(self) -> None:
        with self._lock:
            for channel in self._channels.values():
                channel.close()
            self._channels.clear()


class GrpcPeerTransport:
    """The node's calls to its peers' RelayService."""

    def __init__(self, channels: PeerChannels) -> None:
        self._channels = channels

    def deliver(
        self, peer: NodeEntry, parts: Iterator[DeliverPart], *, timeout: float
    ) -> tuple[Envelope, bool]:
        try:
            response = self._channels.stub(peer).Deliver(deliver_requests(parts), timeout=timeout)
        except grpc.RpcError as exc:
            raise peer_call_failed(exc) from None
        return envelope_from_proto(response.receipt), response.duplicate

    def deliver_batch(
        self, peer: NodeEntry, openings: Sequence[DeliverOpening], *, timeout: float
    ) -> list[BatchOutcome]:
        request = relay_pb2.DeliverBatchRequest(packets=[opening_to_proto(o) for o in openings])
        try:
            response = self._channels.stub(peer).DeliverBatch(request, timeout=timeout)
        except grpc.RpcError as exc:
            raise peer_call_failed(exc) from None
        outcomes = []
        for outcome in response.outcomes:
            if outcome.code == grpc.StatusCode.OK.value[0]:
                receipt = envelope_from_proto(outcome.receipt)
                outcomes.append(BatchOutcome(receipt, duplicate=outcome.duplicate))
            else:
                code = _status(outcome.code)
                refusal = PeerCallFailed(code.name, outcome.message, retryable=code not in _JUDGED)
                outcomes.append(BatchOutcome(None, refusal=refusal))
        return outcomes

    def push_event(self, peer: NodeEntry, event: Envelope, *, timeout: float) -> Envelope:
        request = relay_pb2.PushEventRequest(event=envelope_to_proto(event))
        try:
            response = self._channels.stub(peer).PushEvent(request, timeout=timeout)
        except grpc.RpcError as exc:
            raise peer_call_failed(exc) from None
        return envelope_from_proto(response.ack)

    def close(self) -> None:
        self._channels.close()
