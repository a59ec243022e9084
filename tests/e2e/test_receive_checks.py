"""What a node checks in a packet a peer delivers, each check beside the packet it lets in:
the order of the delivery's messages and segments, the form against its signed digest and
shape, the one event the packet must carry, the hall it is addressed to, the case it joins,
and this node's limits exactly at the edge. Every refusal comes with its status and message
and leaves the receiving node's store as it was; Deliver and DeliverBatch answer alike."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.harness import (
    Cluster,
    ForgedFile,
    citizen_id,
    deliver,
    forge_delivery,
    snapshot,
    start_cluster,
)
from tongban.keys.envelope import canonical_json
from tongban.keys.signing import PrivateKeySigner
from tongban.proto import relay_pb2, relay_pb2_grpc
from tongban.server.config import FORM_HEADROOM

A, B, C = "420700", "420100", "440300"
MAX_FILES, MAX_FILE_BYTES, MAX_FORM_BYTES = 2, 1000, 100
FORM_LIMIT = MAX_FORM_BYTES + FORM_HEADROOM


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    limits = {"max_files": MAX_FILES, "max_file_bytes": MAX_FILE_BYTES}
    c = start_cluster(
        tmp_path_factory.mktemp("receive"),
        overrides={"limits": {**limits, "max_form_bytes": MAX_FORM_BYTES}},
    )
    yield c
    c.close()


def _inline(requests: list[relay_pb2.DeliverRequest]) -> relay_pb2.PacketOpening:
    opening = relay_pb2.PacketOpening()
    opening.CopyFrom(requests[0].opening)
    opening.segments.extend(r.segment for r in requests[1:])
    return opening


def _batch(
    cluster: Cluster, openings: list[relay_pb2.PacketOpening], *, as_node: str = A
) -> list[relay_pb2.DeliverOutcome]:
    with cluster.node_channel(as_node, B) as ch:
        response = relay_pb2_grpc.RelayServiceStub(ch).DeliverBatch(
            relay_pb2.DeliverBatchRequest(packets=openings), timeout=20
        )
    return list(response.outcomes)


def _refused(
    cluster: Cluster, requests: list[relay_pb2.DeliverRequest], *, as_node: str = A
) -> tuple[grpc.StatusCode, str]:
    """The streamed delivery's refusal; it changed nothing at node B."""
    before = snapshot(cluster.nodes[B])
    with pytest.raises(grpc.RpcError) as exc:
        deliver(cluster, requests, as_node=as_node, to_node=B)
    assert snapshot(cluster.nodes[B]) == before, "a refused delivery must leave the store as it was"
    return exc.value.code(), exc.value.details() or ""


def _both_ways(
    cluster: Cluster, requests: list[relay_pb2.DeliverRequest], *, as_node: str = A
) -> tuple[grpc.StatusCode, str]:
    """Deliver and DeliverBatch refuse the packet alike, and store nothing; the refusal."""
    streamed = _refused(cluster, requests, as_node=as_node)
    before = snapshot(cluster.nodes[B])
    [outcome] = _batch(cluster, [_inline(requests)], as_node=as_node)
    assert snapshot(cluster.nodes[B]) == before
    assert not outcome.HasField("receipt")
    assert (grpc.StatusCode(_status(outcome.code)), outcome.message) == streamed
    return streamed


def _status(number: int) -> tuple[int, str]:
    return next(c.value for c in grpc.StatusCode if c.value[0] == number)


def _accepted(
    cluster: Cluster, requests: list[relay_pb2.DeliverRequest], *, as_node: str = A
) -> None:
    """The packet is taken, by the stream and (as another packet) by a batch."""
    response = deliver(cluster, requests, as_node=as_node, to_node=B)
    assert response.HasField("receipt") and not response.duplicate


INVALID = grpc.StatusCode.INVALID_ARGUMENT


# ---- the order of what a delivery carries -----------------------------------------------------


def test_a_delivery_must_open_with_the_packet_opening(cluster: Cluster) -> None:
    requests = forge_delivery(cluster, sender=A, recipient=B, files=[ForgedFile("a.bin", b"a")])
    assert _refused(cluster, requests[1:] + requests[:1]) == (
        INVALID,
        "invalid-request: the first message of a delivery must be the packet opening",
    )


def test_only_segments_may_follow_the_opening(cluster: Cluster) -> None:
    requests = forge_delivery(cluster, sender=A, recipient=B, files=[ForgedFile("a.bin", b"a")])
    assert _refused(cluster, [requests[0], requests[0], *requests[1:]]) == (
        INVALID,
        "invalid-request: only segments may follow the packet opening",
    )


def test_a_segment_of_another_file_while_one_is_open_is_refused(cluster: Cluster) -> None:
    files = [ForgedFile("a.bin", b"a" * 30), ForgedFile("b.bin", b"b" * 30)]
    requests = forge_delivery(cluster, sender=A, recipient=B, files=files, segment_size=16)
    opening, a0, a1, b0, b1 = requests
    assert _both_ways(cluster, [opening, a0, b0, a1, b1]) == (
        grpc.StatusCode.DATA_LOSS,
        "truncated-stream: segment for file 1 arrived while file 0 was open",
    )
    _accepted(cluster, forge_delivery(cluster, sender=A, recipient=B, files=files, segment_size=16))


def test_a_segment_of_a_finished_file_while_the_next_is_open_is_refused(cluster: Cluster) -> None:
    files = [ForgedFile("a.bin", b"a" * 30), ForgedFile("b.bin", b"b" * 30)]
    requests = forge_delivery(cluster, sender=A, recipient=B, files=files, segment_size=16)
    opening, a0, a1, b0, b1 = requests
    assert _both_ways(cluster, [opening, a0, a1, b0, a0, b1]) == (
        grpc.StatusCode.DATA_LOSS,
        "truncated-stream: segment for file 0 arrived while file 1 was open",
    )


def test_a_packet_with_more_files_than_small_integers_is_taken(tmp_path: Path) -> None:
    """File indexes past 256, which Python does not share as one object, are compared by
    value: the segments of file 257 belong to file 257."""
    many = start_cluster(tmp_path, (A, B))
    try:
        files = [ForgedFile(f"{i}.bin", bytes([i % 256])) for i in range(258)]
        response = deliver(
            many, forge_delivery(many, sender=A, recipient=B, files=files), as_node=A, to_node=B
        )
        assert response.HasField("receipt") and not response.duplicate
        assert snapshot(many.nodes[B])["rows"]["packet_files"] == 258
    finally:
        many.close()


@pytest.mark.parametrize("files", [0, 1], ids=["form-only", "with-a-file"])
def test_data_after_the_last_file_is_refused(cluster: Cluster, files: int) -> None:
    stray = forge_delivery(cluster, sender=A, recipient=B, files=[ForgedFile("x.bin", b"x")])[1]
    requests = forge_delivery(
        cluster, sender=A, recipient=B, files=[ForgedFile("a.bin", b"a")] * files
    )
    assert _both_ways(cluster, [*requests, stray]) == (
        INVALID,
        "invalid-request: data arrived after the last file of the packet",
    )


# ---- the form ----------------------------------------------------------------------------------


def _same_size(below: bool) -> Callable[[bytes], bytes]:
    """Another form of the same length whose SHA-256 digest sorts below (or above) the
    signed one's: the value of the form's {"k": "v"} is another letter."""

    def sealed(plain: bytes) -> bytes:
        assert plain.count(b'"v"') == 1
        signed = hashlib.sha256(plain).hexdigest()
        for letter in b"abcdefghijklmnopqrstuwxyz":
            other = plain.replace(b'"v"', b'"' + bytes([letter]) + b'"')
            if (hashlib.sha256(other).hexdigest() < signed) == below:
                return other
        raise AssertionError("no letter gives such a digest")

    return sealed


@pytest.mark.parametrize(
    "sealed",
    [_same_size(True), _same_size(False), lambda plain: plain + b" ", lambda plain: plain[:-1]],
    ids=["same-size-lower-digest", "same-size-higher-digest", "longer", "shorter"],
)
def test_a_form_other_than_the_signed_one_is_refused(cluster: Cluster, sealed: Any) -> None:
    requests = forge_delivery(cluster, sender=A, recipient=B, sealed_form=sealed)
    assert _both_ways(cluster, requests) == (
        grpc.StatusCode.DATA_LOSS,
        "manifest-digest-mismatch: the form does not match its signed digest",
    )


def _applicant(**fields: object) -> dict[str, object]:
    return {"name": "张三", "id_type": "citizen", "id_number": citizen_id(), **fields}


MALFORMED = [
    ({"form": []}, "packet form content is malformed"),
    ({"form": "text"}, "packet form content is malformed"),
    ({"applicant": [], "form": {}}, "packet form content is malformed"),
    ({"applicant": "张三", "form": {}}, "packet form content is malformed"),
    ({"applicant": {"id_number": citizen_id()}, "form": {}}, "packet form has no applicant name"),
    ({"applicant": _applicant(name=7), "form": {}}, "packet form has no applicant name"),
    ({"applicant": {"name": "张三"}, "form": {}}, "packet form has no applicant id number"),
    ({"applicant": _applicant(id_number=7), "form": {}}, "packet form has no applicant id number"),
]


@pytest.mark.parametrize(("content", "message"), MALFORMED)
def test_a_form_of_the_wrong_shape_is_refused(
    cluster: Cluster, content: dict[str, Any], message: str
) -> None:
    requests = forge_delivery(cluster, sender=A, recipient=B, content=content)
    assert _both_ways(cluster, requests) == (INVALID, f"malformed-form: {message}")


@pytest.mark.parametrize(
    ("field", "key", "limit"),
    [("applicant name", "name", 128), ("applicant id number", "id_number", 32)],
    ids=["name", "id-number"],
)
def test_applicant_fields_are_held_to_their_limits(
    cluster: Cluster, field: str, key: str, limit: int
) -> None:
    """Up to the limit the field is taken (no check of its content here: the form is the
    sending hall's); one character more is refused."""
    at_limit = {"applicant": _applicant(**{key: "张" * limit}), "form": {}}
    _accepted(cluster, forge_delivery(cluster, sender=A, recipient=B, content=at_limit))
    over = {"applicant": _applicant(**{key: "张" * (limit + 1)}), "form": {}}
    assert _both_ways(cluster, forge_delivery(cluster, sender=A, recipient=B, content=over)) == (
        INVALID,
        f"field-too-long: {field} is {limit + 1} characters; the limit is {limit}",
    )


@pytest.mark.parametrize(
    "content",
    [{"form": {}}, {"applicant": None, "form": {}}, {"applicant": _applicant(), "form": {}}],
    ids=["no-applicant", "null-applicant", "applicant"],
)
def test_a_form_of_the_right_shape_is_taken(cluster: Cluster, content: dict[str, Any]) -> None:
    _accepted(cluster, forge_delivery(cluster, sender=A, recipient=B, content=content))


# ---- the event the packet carries ---------------------------------------------------------------


@pytest.mark.parametrize("copies", [0, 2])
def test_an_application_carries_exactly_one_submitted_event(cluster: Cluster, copies: int) -> None:
    requests = forge_delivery(cluster, sender=A, recipient=B, event_copies=copies)
    assert _both_ways(cluster, requests) == (
        INVALID,
        "invalid-request: a application packet must carry exactly one 'submitted' event",
    )


def test_an_event_of_another_packet_is_refused(cluster: Cluster) -> None:
    pid = uuid.uuid4()
    other = str(uuid.uuid4())
    requests = forge_delivery(
        cluster, sender=A, recipient=B, packet_id=pid, event=lambda e: replace(e, packet_id=other)
    )
    assert _both_ways(cluster, requests) == (
        INVALID,
        f"invalid-request: event 'submitted' does not belong to packet {pid}",
    )


# ---- where the packet goes: this node's hall, a case of the sender -------------------------------


def test_a_packet_for_a_hall_this_node_does_not_have_is_refused(cluster: Cluster) -> None:
    requests = forge_delivery(cluster, sender=A, recipient=B, hall=f"{B}-hall-9")
    assert _both_ways(cluster, requests) == (
        INVALID,
        f"invalid-request: node {B} has no hall '{B}-hall-9'",
    )
    _accepted(cluster, forge_delivery(cluster, sender=A, recipient=B, hall=f"{B}-hall-2"))


@pytest.mark.parametrize(("owner", "intruder"), [(A, C), (C, A)])
def test_an_application_joining_another_nodes_case_is_refused(
    cluster: Cluster, owner: str, intruder: str
) -> None:
    case_id = uuid.uuid4()
    _accepted(
        cluster, forge_delivery(cluster, sender=owner, recipient=B, case_id=case_id), as_node=owner
    )
    requests = forge_delivery(cluster, sender=intruder, recipient=B, case_id=case_id)
    assert _both_ways(cluster, requests, as_node=intruder) == (
        grpc.StatusCode.PERMISSION_DENIED,
        f"permission-denied: case {case_id} belongs to node {owner}",
    )


# ---- who sends it: the connection, not the statement ------------------------------------------


@pytest.mark.parametrize("named", [B, C], ids=["below", "above"])
def test_a_packet_naming_another_sender_than_its_connection_is_refused(
    cluster: Cluster, named: str
) -> None:
    """Signed with the connected node's own key, so only the sender check can refuse it."""
    requests = forge_delivery(cluster, sender=named, recipient=B, signer=cluster.signer_of(A))
    assert _both_ways(cluster, requests) == (
        grpc.StatusCode.PERMISSION_DENIED,
        f"permission-denied: packet names sender {named} but came from node {A}",
    )


# ---- the files against their signed digests -----------------------------------------------------


@pytest.mark.parametrize(
    ("sha", "size"),
    [
        (lambda i, sha: "0" * 64, lambda i, size: size),
        (lambda i, sha: "f" * 64, lambda i, size: size),
        (lambda i, sha: sha, lambda i, size: size + 1),
        (lambda i, sha: sha, lambda i, size: size - 1),
    ],
    ids=["lower-digest", "higher-digest", "larger", "smaller"],
)
def test_a_file_other_than_the_signed_one_is_refused(cluster: Cluster, sha: Any, size: Any) -> None:
    files = [ForgedFile("a.bin", b"a" * 30)]
    requests = forge_delivery(
        cluster,
        sender=A,
        recipient=B,
        files=files,
        segment_size=16,
        manifest_sha=sha,
        manifest_size=size,
    )
    assert _both_ways(cluster, requests) == (
        grpc.StatusCode.DATA_LOSS,
        "manifest-digest-mismatch: file 0 'a.bin' does not match its signed SHA-256 digest",
    )


# ---- this node's limits, exactly at the edge -----------------------------------------------------


def test_files_up_to_the_limits_are_taken_and_one_more_is_refused(cluster: Cluster) -> None:
    at_limit = [ForgedFile(f"{i}.bin", b"x" * MAX_FILE_BYTES) for i in range(MAX_FILES)]
    _accepted(cluster, forge_delivery(cluster, sender=A, recipient=B, files=at_limit))
    one_more = [ForgedFile(f"{i}.bin", b"x") for i in range(MAX_FILES + 1)]
    assert _both_ways(cluster, forge_delivery(cluster, sender=A, recipient=B, files=one_more)) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"too-large: the packet holds {MAX_FILES + 1} files; the limit is {MAX_FILES}",
    )
    larger = [ForgedFile("a.bin", b"x" * (MAX_FILE_BYTES + 1))]
    assert _both_ways(cluster, forge_delivery(cluster, sender=A, recipient=B, files=larger)) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"too-large: file 0 'a.bin' is {MAX_FILE_BYTES + 1} bytes; the limit is {MAX_FILE_BYTES}",
    )


def _form_of_size(size: int) -> dict[str, Any]:
    """Form content whose canonical JSON is exactly ``size`` bytes."""
    content: dict[str, Any] = {"applicant": _applicant(), "form": {"k": ""}}
    content["form"]["k"] = "x" * (size - len(canonical_json(content)))
    assert len(canonical_json(content)) == size
    return content


def test_a_form_up_to_the_limit_is_taken_and_one_byte_more_is_refused(cluster: Cluster) -> None:
    _accepted(
        cluster, forge_delivery(cluster, sender=A, recipient=B, content=_form_of_size(FORM_LIMIT))
    )
    requests = forge_delivery(cluster, sender=A, recipient=B, content=_form_of_size(FORM_LIMIT + 1))
    assert _both_ways(cluster, requests) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"too-large: the form is {FORM_LIMIT + 1} bytes; the limit is {FORM_LIMIT}",
    )


# ---- who signed it, whom it is for ----------------------------------------------------------------


def test_a_packet_signed_by_a_key_the_directory_does_not_list_is_refused(cluster: Cluster) -> None:
    stranger = PrivateKeySigner(ed25519.Ed25519PrivateKey.generate())
    requests = forge_delivery(cluster, sender=A, recipient=B, signer=stranger)
    assert _both_ways(cluster, requests) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "bad-signature: no signature verifies under a key this signer holds",
    )


def test_a_packet_for_other_nodes_is_refused(cluster: Cluster) -> None:
    pid = uuid.uuid4()
    requests = forge_delivery(cluster, sender=A, recipient=B, packet_id=pid, addressed_to=[C])
    assert _both_ways(cluster, requests) == (
        INVALID,
        f"wrong-recipient: packet {pid} is addressed to {C}, not to this node {B}",
    )


# ---- the segments ---------------------------------------------------------------------------------


def test_a_tampered_or_truncated_file_is_refused(cluster: Cluster) -> None:
    files = [ForgedFile("a.bin", b"a" * 30)]
    opening, first, last = forge_delivery(
        cluster, sender=A, recipient=B, files=files, segment_size=16
    )
    tampered = relay_pb2.DeliverRequest()
    tampered.CopyFrom(last)
    tampered.segment.ciphertext = (
        bytes([last.segment.ciphertext[0] ^ 1]) + last.segment.ciphertext[1:]
    )
    assert _both_ways(cluster, [opening, first, tampered]) == (
        grpc.StatusCode.DATA_LOSS,
        "decryption-failed: segment 1 failed authentication",
    )
    assert _both_ways(cluster, [opening, first]) == (
        grpc.StatusCode.DATA_LOSS,
        "truncated-stream: stream ended after 1 segments without the final one",
    )
    _accepted(cluster, [opening, first, last])


# ---- a packet held already --------------------------------------------------------------------------


def test_a_packet_delivered_again_gets_its_first_receipt_and_changes_nothing(
    cluster: Cluster,
) -> None:
    requests = forge_delivery(cluster, sender=A, recipient=B, files=[ForgedFile("a.bin", b"a")])
    first = deliver(cluster, requests, as_node=A, to_node=B)
    held = snapshot(cluster.nodes[B])
    again = deliver(cluster, requests, as_node=A, to_node=B)
    assert (again.duplicate, first.duplicate, again.receipt) == (True, False, first.receipt)
    [outcome] = _batch(cluster, [_inline(requests)])
    assert (outcome.duplicate, outcome.receipt) == (True, first.receipt)
    assert snapshot(cluster.nodes[B]) == held


def test_a_held_packet_id_with_other_content_is_a_conflict(cluster: Cluster) -> None:
    """Other statements under the same id, sorting below and above the held one's bytes."""
    pid = uuid.uuid4()
    held = forge_delivery(cluster, sender=A, recipient=B, packet_id=pid)
    _accepted(cluster, held)
    payload = held[0].opening.statement.payload
    others: dict[bool, list[relay_pb2.DeliverRequest]] = {}
    while len(others) < 2:
        other = forge_delivery(cluster, sender=A, recipient=B, packet_id=pid)
        others.setdefault(other[0].opening.statement.payload < payload, other)
    for other in others.values():
        assert _both_ways(cluster, other) == (
            grpc.StatusCode.ALREADY_EXISTS,
            f"conflict: packet id {pid} is already held with other content",
        )
