"""The hall SDK's retries: transient failures only, after the policy's delays, never a refusal."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from tongban.client.errors import RequestRefused
from tongban.client.hall import Applicant, HallClient
from tongban.client.retry import RETRYABLE_KEY, RetryPolicy, call_with_retry, is_retryable
from tongban.proto import hall_pb2


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, retryable: str | None = None) -> None:
        self._code = code
        self._metadata = () if retryable is None else ((RETRYABLE_KEY, retryable),)

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return f"{self._code.name.lower()}: from the fake node"

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata


class Script:
    """Answers calls in order: an exception is raised, anything else returned."""

    def __init__(self, *answers: object) -> None:
        self.answers = list(answers)
        self.calls = 0

    def __call__(self, *_: object, **__: object) -> Any:
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


POLICY = RetryPolicy(initial=0.5, multiplier=3.0, maximum=2.0, attempts=5, jitter=0)


def _client(sleeps: list[float], policy: RetryPolicy = POLICY, **stubs: Script) -> HallClient:
    client = HallClient(
        "127.0.0.1:1",
        node_id="420100",
        cert_pem=b"",
        key_pem=b"",
        root_pem=b"",
        retry=policy,
        sleep=sleeps.append,
    )
    client._stub = type("Stub", (), {k: staticmethod(v) for k, v in stubs.items()})()
    return client


UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


def test_policy_delays_grow_by_the_multiplier_up_to_the_cap() -> None:
    assert [POLICY.delay(n) for n in range(1, 6)] == [0.5, 1.5, 2.0, 2.0, 2.0]


def test_jitter_stays_within_its_fraction_and_varies() -> None:
    policy = RetryPolicy(initial=1.0, multiplier=2.0, maximum=8.0, attempts=3, jitter=0.25)
    rng = random.Random(7)
    drawn = [policy.delay(2, rng) for _ in range(200)]
    assert all(1.5 <= d <= 2.5 for d in drawn)
    assert max(drawn) - min(drawn) > 0.5


@pytest.mark.parametrize(
    ("code", "said", "expected"),
    [
        (grpc.StatusCode.UNAVAILABLE, None, True),
        (grpc.StatusCode.DEADLINE_EXCEEDED, None, True),
        (grpc.StatusCode.UNAVAILABLE, "true", True),
        (grpc.StatusCode.UNAVAILABLE, "false", False),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "false", False),
        # A refusal is never retried, whatever the node adds to it.
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "true", False),
        (grpc.StatusCode.INVALID_ARGUMENT, None, False),
        (grpc.StatusCode.FAILED_PRECONDITION, None, False),
        (grpc.StatusCode.NOT_FOUND, None, False),
        (grpc.StatusCode.INTERNAL, "true", False),
    ],
)
def test_only_transient_statuses_are_retryable(
    code: grpc.StatusCode, said: str | None, expected: bool
) -> None:
    assert is_retryable(FakeRpcError(code, said)) is expected


def test_call_with_retry_sleeps_the_policy_delays_then_gives_up() -> None:
    sleeps: list[float] = []
    script = Script(*[FakeRpcError(UNAVAILABLE)] * 5)
    with pytest.raises(FakeRpcError):
        call_with_retry(script, POLICY, sleep=sleeps.append)
    assert script.calls == 5
    assert sleeps == [0.5, 1.5, 2.0, 2.0]


def test_call_with_retry_returns_the_first_success() -> None:
    sleeps: list[float] = []
    script = Script(FakeRpcError(UNAVAILABLE), FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED), 42)
    assert call_with_retry(script, POLICY, sleep=sleeps.append) == 42
    assert sleeps == [0.5, 1.5]


def test_inbox_retries_unavailable_and_returns_the_answer() -> None:
    sleeps: list[float] = []
    entry = hall_pb2.InboxEntry(packet_id="p-1", case_id="c-1")
    stub = Script(FakeRpcError(UNAVAILABLE), hall_pb2.InboxResponse(entries=[entry]))
    items = _client(sleeps, ListInbox=stub).inbox()
    assert [i.packet_id for i in items] == ["p-1"]
    assert stub.calls == 2
    assert sleeps == [0.5]


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.PERMISSION_DENIED,
    ],
)
def test_a_refusal_is_reported_at_once(code: grpc.StatusCode) -> None:
    sleeps: list[float] = []
    stub = Script(FakeRpcError(code, "true"))
    with pytest.raises(RequestRefused) as refused:
        _client(sleeps, GetCase=stub).case("c-1")
    assert refused.value.status == code
    assert stub.calls == 1
    assert sleeps == []


def test_the_node_saying_not_retryable_stops_retries() -> None:
    sleeps: list[float] = []
    stub = Script(FakeRpcError(UNAVAILABLE, "false"))
    with pytest.raises(RequestRefused):
        _client(sleeps, History=stub).history("c-1")
    assert (stub.calls, sleeps) == (1, [])


def test_submit_retries_with_the_same_packet_id_and_gives_up_after_the_attempts() -> None:
    sleeps: list[float] = []
    stub = Script(*[FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED)] * 5)
    seen: list[str] = []

    def submit_form(header: hall_pb2.SubmitHeader) -> None:
        seen.append(header.packet_id)
        stub()

    client = _client(sleeps, SubmitForm=Script())
    client._stub.SubmitForm = submit_form
    with pytest.raises(RequestRefused) as refused:
        client.submit(
            matter=("HB-ODA-01", ""),
            to=["420100"],
            applicant=Applicant("张三", "citizen", "11010519491231002X"),
            form={},
        )
    assert refused.value.status == grpc.StatusCode.DEADLINE_EXCEEDED
    assert len(seen) == 5 and len(set(seen)) == 1
    assert sleeps == [0.5, 1.5, 2.0, 2.0]


def test_an_action_on_a_case_is_not_repeated() -> None:
    sleeps: list[float] = []
    stub = Script(FakeRpcError(UNAVAILABLE))
    with pytest.raises(RequestRefused):
        _client(sleeps, Act=stub).accept("c-1")
    assert (stub.calls, sleeps) == (1, [])


def test_fetch_retries_and_undoes_the_progress_of_the_failed_attempt(tmp_path: Path) -> None:
    sleeps: list[float] = []
    data = b"permit"
    info = hall_pb2.FileInfo(
        index=0, name="permit.pdf", size=len(data), sha256=hashlib.sha256(data).hexdigest()
    )
    opening = hall_pb2.FetchOpening(entry=hall_pb2.InboxEntry(packet_id="p-1"), files=[info])
    opening.form_json = b"{}"

    def broken() -> Iterator[hall_pb2.FetchResponse]:
        yield hall_pb2.FetchResponse(opening=opening)
        yield hall_pb2.FetchResponse(file_begin=info)
        yield hall_pb2.FetchResponse(data=data[:3])
        raise FakeRpcError(UNAVAILABLE)

    def whole() -> Iterator[hall_pb2.FetchResponse]:
        yield hall_pb2.FetchResponse(opening=opening)
        yield hall_pb2.FetchResponse(file_begin=info)
        yield hall_pb2.FetchResponse(data=data)
        yield hall_pb2.FetchResponse(file_end=hall_pb2.FetchFileEnd(verified=True))

    stub = Script(broken(), whole())
    progress: list[int] = []
    fetched = _client(sleeps, Fetch=stub).fetch("p-1", tmp_path, progress=progress.append)
    assert (tmp_path / "permit.pdf").read_bytes() == data
    assert [f.name for f in fetched.files] == ["permit.pdf"]
    assert sum(progress) == len(data)
    assert sleeps == [0.5]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["permit.pdf"]
