"""The bounds every packet statement is held to, from a hall or a peer: each limit exactly."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.server.test_statements import _packet as statement_for_parsing
from tongban.keys.content import MAX_SEGMENT_SIZE
from tongban.keys.envelope import canonical_json
from tongban.server.domain.errors import InvalidRequest
from tongban.server.domain.statements import (
    TEXT_LIMITS,
    EventAck,
    EventStatement,
    FileEntry,
    PacketStatement,
    Receipt,
    RecipientEntry,
    check_statement_bounds,
    check_text,
)

AT = datetime(2026, 11, 1, 8, 30, tzinfo=UTC)


def _packet(**changes: Any) -> PacketStatement:
    """The statement of the parsing tests, with segments small enough to count by hand."""
    files = (
        FileEntry(0, "id-card.pdf", "application/pdf", 0, "cd" * 32, 1),
        FileEntry(1, "licence.pdf", "application/pdf", 9, "ef" * 32, 3),
    )
    return statement_for_parsing(**{"segment_size": 4, "files": files, **changes})


def _refusal(st: PacketStatement) -> tuple[str, str]:
    with pytest.raises(InvalidRequest) as exc:
        check_statement_bounds(st)
    return exc.value.code, exc.value.message


def _file(**changes: Any) -> tuple[FileEntry, ...]:
    good = FileEntry(0, "a.pdf", "application/pdf", 9, "ef" * 32, 3)
    return (dataclasses.replace(good, **changes),)


def test_a_statement_within_every_bound_passes() -> None:
    check_statement_bounds(_packet())


@pytest.mark.parametrize(("field", "limit"), sorted(TEXT_LIMITS.items()))
def test_each_text_field_is_allowed_its_limit_and_not_one_more(field: str, limit: int) -> None:
    check_text(field, "x" * limit)
    with pytest.raises(InvalidRequest) as exc:
        check_text(field, "x" * (limit + 1))
    assert (exc.value.code, exc.value.message) == (
        "field-too-long",
        f"{field} is {limit + 1} characters; the limit is {limit}",
    )


def test_the_limits_are_the_documented_ones() -> None:
    assert dict(TEXT_LIMITS) == {
        "matter code": 64,
        "matter name": 256,
        "node id": 16,
        "hall id": 128,
        "department": 128,
        "media type": 128,
        "applicant name": 128,
        "applicant id number": 32,
    }


def test_every_recipient_is_checked() -> None:
    second = RecipientEntry("440300", "440300-hall-1", "消" * 129)
    st = _packet(recipients=(_packet().recipients[0], second))
    assert _refusal(st) == ("field-too-long", "department is 129 characters; the limit is 128")


@pytest.mark.parametrize("size", [1, 2, MAX_SEGMENT_SIZE])
def test_segment_sizes_from_one_to_the_maximum_pass(size: int) -> None:
    check_statement_bounds(_packet(segment_size=size, files=()))


@pytest.mark.parametrize("size", [-1, 0, MAX_SEGMENT_SIZE + 1])
def test_segment_sizes_outside_are_refused(size: int) -> None:
    assert _refusal(_packet(segment_size=size, files=())) == (
        "malformed-statement",
        f"segment size {size} is not between 1 and {MAX_SEGMENT_SIZE}",
    )


def test_form_size_zero_passes_and_negative_is_refused() -> None:
    check_statement_bounds(_packet(form_size=0))
    assert _refusal(_packet(form_size=-1)) == ("malformed-statement", "form size -1 is negative")


@pytest.mark.parametrize("digest", ["AB" * 32, "ab" * 31, "ab" * 32 + "a", ""])
def test_a_form_digest_that_is_not_sha256_hex_is_refused(digest: str) -> None:
    assert _refusal(_packet(form_sha256=digest)) == (
        "malformed-statement",
        "the form digest is not a SHA-256",
    )


def test_a_file_digest_that_is_not_sha256_hex_is_refused() -> None:
    assert _refusal(_packet(files=_file(sha256="EF" * 32))) == (
        "malformed-statement",
        "file 0 digest is not a SHA-256",
    )


def test_a_negative_file_size_is_refused() -> None:
    assert _refusal(_packet(files=_file(size=-1, segments=1))) == (
        "malformed-statement",
        "file 0 declares size -1",
    )


@pytest.mark.parametrize(
    ("size", "segment_size", "segments"),
    [(0, 4, 1), (1, 4, 1), (4, 4, 1), (5, 4, 2), (9, 4, 3), (12, 4, 3), (13, 4, 4), (7, 1, 7)],
)
def test_segment_counts_that_agree_pass(size: int, segment_size: int, segments: int) -> None:
    check_statement_bounds(
        _packet(segment_size=segment_size, files=_file(size=size, segments=segments))
    )


@pytest.mark.parametrize(
    ("size", "segments", "expected"), [(0, 0, 1), (0, 2, 1), (9, 2, 3), (9, 4, 3)]
)
def test_segment_counts_that_disagree_are_refused(size: int, segments: int, expected: int) -> None:
    assert _refusal(_packet(files=_file(size=size, segments=segments))) == (
        "malformed-statement",
        f"file 0 of {size} bytes in segments of 4 has {expected} segments, not {segments}",
    )


def test_every_file_is_checked() -> None:
    files = (*_file(), FileEntry(1, "b.pdf", "application/pdf", 9, "ef" * 32, 2))
    assert _refusal(_packet(files=files)) == (
        "malformed-statement",
        "file 1 of 9 bytes in segments of 4 has 3 segments, not 2",
    )


def _examples() -> dict[str, tuple[Any, bytes]]:
    from tests.server.test_statements import _event

    return {
        "packet": (PacketStatement.from_payload, _packet().to_payload()),
        "event": (EventStatement.from_payload, _event().to_payload()),
        "receipt": (
            Receipt.from_payload,
            Receipt(_packet().packet_id, "420100", "ab" * 32, "cd" * 32, AT).to_payload(),
        ),
        "event-ack": (EventAck.from_payload, EventAck("ab" * 32, "420100", AT).to_payload()),
    }


@pytest.mark.parametrize("kind", ["packet", "event", "receipt", "event-ack"])
def test_each_example_parses(kind: str) -> None:
    parse, payload = _examples()[kind]
    parse(payload)


@pytest.mark.parametrize("kind", ["packet", "event", "receipt", "event-ack"])
@pytest.mark.parametrize("wrong", ["a", "tongban-a", "tongban-z", "z"])
def test_a_statement_of_another_type_is_refused(kind: str, wrong: str) -> None:
    parse, payload = _examples()[kind]
    data = json.loads(payload)
    data["type"] = wrong
    with pytest.raises(InvalidRequest) as exc:
        parse(canonical_json(data))
    assert exc.value.code == "malformed-statement"


def test_segment_counts_beyond_small_integers_are_compared_by_value() -> None:
    check_statement_bounds(_packet(files=_file(size=1200, segments=int("300"))))


def test_a_recipient_is_found_by_its_node_id_as_text() -> None:
    node_id = "".join(["4201", "00"])  # built at run time, not the same object
    assert _packet().recipient(node_id) == _packet().recipients[0]
    assert _packet().recipient("110000") is None


def _payload_with(edit: Any) -> bytes:
    data = json.loads(_packet().to_payload())
    edit(data)
    return canonical_json(data)


@pytest.mark.parametrize("cipher", ["aes-0", "zzz"])
def test_another_cipher_is_refused(cipher: str) -> None:
    payload = _payload_with(lambda d: d["content"].__setitem__("cipher", cipher))
    with pytest.raises(InvalidRequest) as exc:
        PacketStatement.from_payload(payload)
    assert exc.value.code == "malformed-statement"


@pytest.mark.parametrize("indexes", [(0, 0), (1, 0), (0, 2)])
def test_file_indexes_must_count_from_zero(indexes: tuple[int, int]) -> None:
    def edit(d: dict[str, Any]) -> None:
        for f, i in zip(d["content"]["files"], indexes, strict=True):
            f["index"] = i

    with pytest.raises(InvalidRequest) as exc:
        PacketStatement.from_payload(_payload_with(edit))
    assert (exc.value.code, exc.value.message) == (
        "invalid-request",
        "packet manifest file indexes must be 0..n-1 in order",
    )


def test_bytes_that_are_not_json_are_a_malformed_statement() -> None:
    with pytest.raises(InvalidRequest) as exc:
        PacketStatement.from_payload(b"not json")
    assert exc.value.code == "malformed-statement"
