"""Admission of calls into a node's gRPC servers, and the idle timeout of a call.

grpcio runs every call of a server on a thread of one pool, and a streaming call holds its
thread until it ends, so callers that open streams and stall could hold every thread. Here:

* every call enters a *lane*. On the mutual-TLS port a caller's certificate decides it
  (peer nodes, admins, everyone else — halls), so no hall can take capacity that peer
  deliveries need; health ``Check`` has a lane of its own on either port, and the
  long-lived tooling streams (health ``Watch``, reflection) another; ``VerifyService`` on
  the public port is the ``verify`` lane;
* a lane admits at most ``<lane>_calls`` calls at once, and at most
  ``<lane>_calls_per_caller`` from one caller (the certificate's holder; on the public port
  the peer address). A call over either limit is refused at once with
  ``RESOURCE_EXHAUSTED`` ``busy: …`` before a message is read — never queued;
* the server's pool has a thread for every call its lanes admit, plus spare threads that
  serve refusals, so a full lane never delays another (:meth:`Admission.threads`);
* a call that waits on its caller — for the next request message, or for a response it was
  sent to be taken — for longer than the idle timeout is ended with ``DEADLINE_EXCEEDED``
  ``idle-timeout: no message for N s`` (:class:`IdleWatchdog`). The handler then sees the
  stream fail, and cleans up as for any cancelled transfer.

Unary-request methods are served as client streams of one message, so that admission and
the idle timeout cover the wait for that message too (grpcio would otherwise read it on a
pool thread before any code of the node runs). On the wire the two are the same.

Example::

    watchdog = IdleWatchdog(policy.idle_timeout_seconds)
    admission = Admission(mtls_lanes(policy), certificate_caller, watchdog)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=admission.threads(policy.spare_threads)),
        interceptors=[admission],
    )
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import grpc

from tongban.keys.errors import KeysError
from tongban.keys.pki import Role, identity_from_certificate, load_certificate
from tongban.server.config import AdmissionPolicy
from tongban.server.domain.errors import Busy, IdleTimeout, InvalidRequest
from tongban.server.grpc.status import abort_with, status_code_of

__all__ = [
    "Admission",
    "Caller",
    "IdleWatchdog",
    "Lane",
    "address_caller",
    "certificate_caller",
    "mtls_lanes",
    "public_lanes",
]

_log = logging.getLogger("tongban.server.grpc.admission")

# Methods whose lane does not depend on who calls: health checks must be answered whatever
# halls do, and long-lived tooling streams must not take the health checks' threads.
_HEALTH_CHECK = "/grpc.health.v1.Health/Check"
_OPS_METHODS = ("/grpc.health.v1.Health/Watch", "/grpc.reflection.")


@dataclass(frozen=True)
class Lane:
    """A share of a server's threads: at most ``calls`` at once, ``calls_per_caller`` from one
    caller."""

    name: str
    calls: int
    calls_per_caller: int


@dataclass(frozen=True)
class Caller:
    """Whose share a call counts against, and the lane its calls enter (unless the method has
    a lane of its own)."""

    key: str
    lane: str


def mtls_lanes(policy: AdmissionPolicy) -> list[Lane]:
    """The lanes of the mutual-TLS port."""
    return [
        Lane("hall", policy.hall_calls, policy.hall_calls_per_caller),
        Lane("peer", policy.peer_calls, policy.peer_calls_per_caller),
        Lane("admin", policy.admin_calls, policy.admin_calls_per_caller),
        Lane("health", policy.health_calls, policy.health_calls_per_caller),
        Lane("ops", policy.ops_calls, policy.ops_calls_per_caller),
    ]


def public_lanes(policy: AdmissionPolicy) -> list[Lane]:
    """The lanes of the public port (no client certificates)."""
    return [
        Lane("verify", policy.verify_calls, policy.verify_calls_per_caller),
        Lane("health", policy.health_calls, policy.health_calls_per_caller),
        Lane("ops", policy.ops_calls, policy.ops_calls_per_caller),
    ]


_LANE_OF_ROLE = {Role.NODE: "peer", Role.ADMIN: "admin"}


def certificate_caller(context: grpc.ServicerContext) -> Caller:
    """The holder of the caller's client certificate; peer nodes and admins have lanes of their
    own, every other holder (halls) shares the ``hall`` lane."""
    pems = list(context.auth_context().get("x509_pem_cert") or [])
    if not pems:
        return Caller(f"address {_address(context.peer())}", "hall")
    return _caller_of_certificate(pems[0])


@lru_cache(maxsize=1024)
def _caller_of_certificate(pem: bytes) -> Caller:
    # Keyed by subject and issuer: a certificate that merely copies a hall's subject does
    # not share that hall's calls (the handler refuses it; until then it is someone else).
    try:
        cert = load_certificate(pem)
        identity = identity_from_certificate(cert)
    except KeysError:
        return Caller(f"certificate {hashlib.sha256(pem).hexdigest()[:16]}", "hall")
    key = f"{identity} (issuer {cert.issuer.rfc4514_string()})"
    return Caller(key, _LANE_OF_ROLE.get(identity.role, "hall"))


def address_caller(context: grpc.ServicerContext) -> Caller:
    """An anonymous caller, known by its address (without the port)."""
    return Caller(f"address {_address(context.peer())}", "verify")


def _address(peer: str) -> str:
    # "ipv4:10.1.2.3:5678", "ipv6:[::1]:5678" (or percent-encoded brackets)
    host, sep, _port = peer.rpartition(":")
    return host if sep else peer


class _Occupancy:
    """The calls a lane holds now, in all and per caller."""

    def __init__(self, lane: Lane) -> None:
        self.lane = lane
        self._lock = threading.Lock()
        self._total = 0
        self._per_caller: dict[str, int] = {}

    def enter(self, caller: str) -> None:
        """Count one more call of ``caller``.

        Raises:
            Busy: the lane or the caller's share of it is full.
        """
        lane = self.lane
        with self._lock:
            held = self._per_caller.get(caller, 0)
            if held >= lane.calls_per_caller:
                raise Busy(
                    f"limit {lane.calls_per_caller} concurrent {lane.name} calls per caller "
                    f"({lane.name}_calls_per_caller)"
                )
            if self._total >= lane.calls:
                raise Busy(f"limit {lane.calls} concurrent {lane.name} calls ({lane.name}_calls)")
            self._total += 1
            self._per_caller[caller] = held + 1

    def leave(self, caller: str) -> None:
        with self._lock:
            self._total -= 1
            left = self._per_caller[caller] - 1
            if left:
                self._per_caller[caller] = left
            else:
                del self._per_caller[caller]

    def held(self) -> int:
        with self._lock:
            return self._total


class _CallWatch:
    """One admitted call, as the idle watchdog sees it."""

    def __init__(self, context: grpc.ServicerContext, who: str, idle_timeout: float) -> None:
        self.context = context
        self.who = who
        self._idle_timeout = idle_timeout
        self._lock = threading.Lock()
        self._waiting_since: float | None = None
        self._expired = False

    def waiting_on_caller(self) -> None:
        """The call now waits for the caller to send a message or take one."""
        with self._lock:
            self._waiting_since = time.monotonic()

    def caller_answered(self) -> None:
        """The wait is over.

        Raises:
            IdleTimeout: the watchdog ended the call during the wait.
        """
        with self._lock:
            self._waiting_since = None
            if self._expired:
                raise self.timeout()

    def expire_if_idle(self, now: float) -> bool:
        """Mark the call expired if it has waited too long; True if it just was."""
        with self._lock:
            since = self._waiting_since
            if self._expired or since is None or now - since < self._idle_timeout:
                return False
            self._expired = True
            return True

    def timeout(self) -> IdleTimeout:
        return IdleTimeout(f"no message for {self._idle_timeout:g} s")


class IdleWatchdog:
    """Ends calls that wait on their caller for longer than ``idle_timeout`` seconds."""

    def __init__(self, idle_timeout: float) -> None:
        self.idle_timeout = idle_timeout
        self._lock = threading.Lock()
        self._calls: set[_CallWatch] = set()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="idle-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()

    def watch(self, context: grpc.ServicerContext, who: str) -> _CallWatch:
        call = _CallWatch(context, who, self.idle_timeout)
        with self._lock:
            self._calls.add(call)
        return call

    def forget(self, call: _CallWatch) -> None:
        with self._lock:
            self._calls.discard(call)

    def _run(self) -> None:
        interval = min(1.0, max(0.05, self.idle_timeout / 8))
        while not self._stopping.wait(interval):
            now = time.monotonic()
            with self._lock:
                calls = list(self._calls)
            for call in calls:
                if call.expire_if_idle(now):
                    timeout = call.timeout()
                    _log.warning("ending %s: %s: %s", call.who, timeout.code, timeout.message)
                    try:
                        _end_call(
                            call.context,
                            status_code_of(timeout),
                            f"{timeout.code}: {timeout.message}",
                        )
                    except Exception:  # one call's failure must not stop the watchdog
                        _log.exception("could not end %s", call.who)


def _end_call(context: grpc.ServicerContext, code: grpc.StatusCode, details: str) -> None:
    """End a call from outside its handler with a status its caller sees.

    grpcio's public ``cancel()`` leaves the caller a bare ``CANCELLED``; the core call behind
    the context takes the status and message too (``grpc_call_cancel_with_status``).
    ``tests/e2e/test_admission.py`` checks the caller gets them.
    """
    call = getattr(getattr(context, "_rpc_event", None), "call", None)
    if call is not None and hasattr(call, "cancel"):
        call.cancel(code.value[0], details)
    else:
        context.cancel()  # type: ignore[no-untyped-call]  # (untyped in grpc-stubs)


class _Ticket:
    """An admitted call: its place in a lane and its watch, given back exactly once."""

    def __init__(
        self,
        occupancy: _Occupancy,
        caller: str,
        watch: _CallWatch,
        watchdog: IdleWatchdog,
    ) -> None:
        self.watch = watch
        self._occupancy = occupancy
        self._caller = caller
        self._watchdog = watchdog
        self._lock = threading.Lock()
        self._held = True

    def release(self) -> None:
        with self._lock:
            if not self._held:
                return
            self._held = False
        self._watchdog.forget(self.watch)
        self._occupancy.leave(self._caller)


class _WatchedRequests(Iterator[Any]):
    """The caller's request stream, with every wait for a message watched."""

    def __init__(self, requests: Iterator[Any], watch: _CallWatch) -> None:
        self._requests = requests
        self._watch = watch

    def __iter__(self) -> _WatchedRequests:
        return self

    def __next__(self) -> Any:
        self._watch.waiting_on_caller()
        try:
            request = next(self._requests)
        except BaseException:
            # A stream the watchdog ended fails (or ends) here: say why, not how.
            self._watch.caller_answered()
            raise
        self._watch.caller_answered()
        return request

    def only(self, method: str) -> Any:
        """The single message of a unary request."""
        request = next(self, None)
        if request is None:
            raise InvalidRequest(f"{method} requires exactly one request message")
        return request


Behavior = Callable[[Any, grpc.ServicerContext], Any]

if TYPE_CHECKING:  # generic only in the type stubs
    _ServerInterceptor = grpc.ServerInterceptor[Any, Any]
else:
    _ServerInterceptor = grpc.ServerInterceptor


class Admission(_ServerInterceptor):
    """The lanes of one server, applied to its every call (a server interceptor)."""

    def __init__(
        self,
        lanes: Sequence[Lane],
        identify: Callable[[grpc.ServicerContext], Caller],
        watchdog: IdleWatchdog,
    ) -> None:
        self._lanes = {lane.name: _Occupancy(lane) for lane in lanes}
        self._identify = identify
        self._watchdog = watchdog
        self._wrapped: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
        self._wrapped_lock = threading.Lock()

    def threads(self, spare: int) -> int:
        """Threads the server needs: one for every call its lanes admit, and ``spare`` more
        for refusing calls while every lane is full."""
        return sum(o.lane.calls for o in self._lanes.values()) + spare

    def held(self, lane: str) -> int:
        """Calls the lane holds now."""
        return self._lanes[lane].held()

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method: str = handler_call_details.method
        wrapped = self._wrapped.get(method)
        if wrapped is not None:
            return wrapped
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        wrapped = self._wrap(method, handler)
        with self._wrapped_lock:
            self._wrapped[method] = wrapped
        return wrapped

    def _wrap(
        self, method: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        behavior: Behavior | None
        if handler.request_streaming and handler.response_streaming:
            behavior, one_request = handler.stream_stream, False
        elif handler.request_streaming:
            behavior, one_request = handler.stream_unary, False
        elif handler.response_streaming:
            behavior, one_request = handler.unary_stream, True
        else:
            behavior, one_request = handler.unary_unary, True
        if behavior is None:
            raise ValueError(f"{method} has no behavior for its arity")
        lane = _method_lane(method)
        if lane is not None and lane not in self._lanes:
            raise ValueError(f"{method} needs lane {lane!r}, which this server does not have")
        if handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(
                self._serve_stream(method, lane, behavior, one_request),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.stream_unary_rpc_method_handler(
            self._serve_unary(method, lane, behavior, one_request),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _admit(self, method: str, lane: str | None, context: grpc.ServicerContext) -> _Ticket:
        caller = self._identify(context)
        occupancy = self._lanes[lane or caller.lane]
        try:
            occupancy.enter(caller.key)
        except Busy as exc:
            abort_with(context, exc, who=f"{method} from {caller.key}")
        watch = self._watchdog.watch(context, f"{method} from {caller.key}")
        return _Ticket(occupancy, caller.key, watch, self._watchdog)

    def _serve_unary(
        self, method: str, lane: str | None, behavior: Behavior, one_request: bool
    ) -> Behavior:
        def serve(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
            ticket = self._admit(method, lane, context)
            try:
                watched = _WatchedRequests(requests, ticket.watch)
                return behavior(watched.only(method) if one_request else watched, context)
            except (IdleTimeout, InvalidRequest) as exc:
                abort_with(context, exc, who=method)
            finally:
                ticket.release()

        return serve

    def _serve_stream(
        self, method: str, lane: str | None, behavior: Behavior, one_request: bool
    ) -> Behavior:
        def serve(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
            ticket = self._admit(method, lane, context)
            # grpcio may stop iterating a call that ended without closing the iterator.
            context.add_callback(ticket.release)
            try:
                watched = _WatchedRequests(requests, ticket.watch)
                responses = behavior(watched.only(method) if one_request else watched, context)
                for response in responses:
                    ticket.watch.waiting_on_caller()
                    yield response
                    ticket.watch.caller_answered()
            except (IdleTimeout, InvalidRequest) as exc:
                abort_with(context, exc, who=method)
            finally:
                ticket.release()

        return serve


def _method_lane(method: str) -> str | None:
    if method == _HEALTH_CHECK:
        return "health"
    if method.startswith(_OPS_METHODS):
        return "ops"
    return None
