"""Refusing requests whose bytes do not parse: ``INVALID_ARGUMENT``, not grpc's ``INTERNAL``.

Request bytes that do not parse as their protobuf message are the caller's mistake:
they are refused with ``INVALID_ARGUMENT`` (``malformed-request:``), where grpc itself
would answer ``INTERNAL: Exception deserializing request!``.

A service is registered through :func:`add_checked_service`, which wraps each method's
request deserializer; a request that fails to parse reaches the method as a marker that
ends the call with the refusal (a unary call) or raises :class:`InvalidRequest` from the
request iterator (a client stream, where the servicer's guard maps it).

Example:
    add_checked_service(hall_pb2_grpc.add_HallServiceServicer_to_server, servicer, server)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import grpc

from tongban.server.domain.errors import InvalidRequest

__all__ = ["MALFORMED_REQUEST", "add_checked_service"]

MALFORMED_REQUEST = "the request bytes are not a valid message of this method"
S = TypeVar("S")


class _Undecodable:
    """Stands in for a request whose bytes did not parse."""


_UNDECODABLE = _Undecodable()


def _lenient(parse: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if parse is None:
        return None

    def lenient(data: bytes) -> Any:
        try:
            return parse(data)
        except Exception:
            return _UNDECODABLE

    return lenient


def _refuse(context: grpc.ServicerContext) -> None:
    context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed-request: {MALFORMED_REQUEST}")


def _checked_requests(requests: Iterator[Any]) -> Iterator[Any]:
    for request in requests:
        if request is _UNDECODABLE:
            raise InvalidRequest(MALFORMED_REQUEST, code="malformed-request")
        yield request


def _checked(handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
    """The same method, its requests parsed leniently and an unparsable one refused."""
    h = cast(Any, handler)
    parse, reply = _lenient(h.request_deserializer), h.response_serializer
    if h.unary_unary is not None:
        unary_unary = h.unary_unary

        def uu(request: Any, context: grpc.ServicerContext) -> Any:
            if request is _UNDECODABLE:
                _refuse(context)
            return unary_unary(request, context)

        return grpc.unary_unary_rpc_method_handler(uu, parse, reply)
    if h.unary_stream is not None:
        unary_stream = h.unary_stream

        def us(request: Any, context: grpc.ServicerContext) -> Any:
            if request is _UNDECODABLE:
                _refuse(context)
            return unary_stream(request, context)

        return grpc.unary_stream_rpc_method_handler(us, parse, reply)
    if h.stream_unary is not None:
        stream_unary = h.stream_unary

        def su(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
            return stream_unary(_checked_requests(requests), context)

        return grpc.stream_unary_rpc_method_handler(su, parse, reply)
    stream_stream = h.stream_stream

    def ss(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
        return stream_stream(_checked_requests(requests), context)

    return grpc.stream_stream_rpc_method_handler(ss, parse, reply)


if TYPE_CHECKING:
    _GenericHandlerBase = grpc.GenericRpcHandler[Any, Any]
else:  # the stubs are generic, grpc's class is not
    _GenericHandlerBase = grpc.GenericRpcHandler


class _CheckedGenericHandler(_GenericHandlerBase):
    def __init__(self, inner: grpc.GenericRpcHandler[Any, Any]) -> None:
        self._inner = inner

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = self._inner.service(handler_call_details)
        return None if handler is None else _checked(handler)


class _CheckingServer:
    """What a generated ``add_*Servicer_to_server`` sees as the server: it registers the
    service's handlers with the real server, each wrapped by :func:`_checked`."""

    def __init__(self, server: grpc.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(
        self, handlers: Sequence[grpc.GenericRpcHandler[Any, Any]]
    ) -> None:
        self._server.add_generic_rpc_handlers(tuple(_CheckedGenericHandler(h) for h in handlers))

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        checked = {name: _checked(h) for name, h in method_handlers.items()}
        cast(Any, self._server).add_registered_method_handlers(service_name, checked)


def add_checked_service(
    add: Callable[[S, grpc.Server], None], servicer: S, server: grpc.Server
) -> None:
    """Register ``servicer`` with ``add`` (a generated ``add_*Servicer_to_server``) so that
    requests which do not parse are refused as ``INVALID_ARGUMENT``."""
    add(servicer, cast(grpc.Server, _CheckingServer(server)))
