"""One server interceptor that counts and times every gRPC call, by method and status code.

Refusals show here by their status (``INVALID_ARGUMENT``, ``PERMISSION_DENIED`` …), so
``tongban_grpc_requests_total{method=".../SubmitPacket",code!="OK"}`` are the packets refused
by reason. It sits outside admission, so calls admission turns away count too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["GrpcMetrics"]

Behavior = Callable[..., Any]


class GrpcMetrics(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """Counts calls by method and final status code, and times them by method."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "tongban_grpc_requests",
            "gRPC calls answered, by method and status code",
            ["method", "code"],
            registry=registry,
        )
        self.latency = Histogram(
            "tongban_grpc_request_seconds",
            "Time from a gRPC call's start to its last response or error, by method",
            ["method"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )

    def _done(self, method: str, started: float, code: grpc.StatusCode) -> None:
        self.latency.labels(method=method).observe(time.perf_counter() - started)
        self.requests.labels(method=method, code=code.name).inc()

    @staticmethod
    def _code(context: grpc.ServicerContext, error: BaseException | None) -> grpc.StatusCode:
        code = context.code()  # type: ignore[attr-defined]
        if isinstance(code, grpc.StatusCode):
            return code
        return grpc.StatusCode.OK if error is None else grpc.StatusCode.UNKNOWN

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method
        if handler.response_streaming:
            behavior = handler.stream_stream or handler.unary_stream
            make = (
                grpc.stream_stream_rpc_method_handler
                if handler.request_streaming
                else grpc.unary_stream_rpc_method_handler
            )
            return make(
                self._streaming(method, behavior),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        behavior = handler.stream_unary or handler.unary_unary
        make = (
            grpc.stream_unary_rpc_method_handler
            if handler.request_streaming
            else grpc.unary_unary_rpc_method_handler
        )
        return make(
            self._unary(method, behavior),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _unary(self, method: str, behavior: Behavior | None) -> Behavior:
        assert behavior is not None

        def measured(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            error: BaseException | None = None
            try:
                return behavior(request, context)
            except BaseException as exc:
                error = exc
                raise
            finally:
                self._done(method, started, self._code(context, error))

        return measured

    def _streaming(self, method: str, behavior: Behavior | None) -> Behavior:
        assert behavior is not None

        def measured(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            started = time.perf_counter()
            error: BaseException | None = None
            try:
                yield from behavior(request, context)
            except BaseException as exc:
                error = exc
                raise
            finally:
                self._done(method, started, self._code(context, error))

        return measured
