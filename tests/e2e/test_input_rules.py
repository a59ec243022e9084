"""Bad input on every way into a node: file names, header fields, forms, packet limits,
reused packet ids, malformed protobuf bytes. Each gets an exact status and message and
leaves the store as it was."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import grpc
import pytest

from tests.harness import (
    Cluster,
    ForgedFile,
    citizen_id,
    deliver,
    forge_delivery,
    snapshot,
)
from tongban.keys.envelope import canonical_json, sign_envelope
from tongban.keys.errors import ECHO_LIMIT, echo
from tongban.proto import hall_pb2, hall_pb2_grpc, relay_pb2, relay_pb2_grpc
from tongban.server.domain.statements import PACKET_TYPE
from tongban.server.grpc.converters import envelope_to_proto

ODA = ("HB-ODA-01", "异地办理营业执照变更登记")
EZ, WH = "420700", "420100"


def _channel(cluster: Cluster, node: str = EZ, hall: str = f"{EZ}-hall-1") -> grpc.Channel:
    d = cluster.fed / node / "halls" / hall
    creds = grpc.ssl_channel_credentials(
        (d / "root.pem").read_bytes(), (d / "key.pem").read_bytes(), (d / "cert.pem").read_bytes()
    )
    return grpc.secure_channel(
        cluster.directory().node(node).endpoint,
        creds,
        options=[("grpc.ssl_target_name_override", f"node-{node}.tongban")],
    )


def _stub(
    cluster: Cluster, node: str = EZ, hall: str = f"{EZ}-hall-1"
) -> hall_pb2_grpc.HallServiceStub:
    return hall_pb2_grpc.HallServiceStub(_channel(cluster, node, hall))


def _header(**kw: object) -> hall_pb2.SubmitHeader:
    base: dict[str, object] = dict(
        packet_id=str(uuid.uuid4()),
        kind=hall_pb2.PACKET_KIND_APPLICATION,
        mode=hall_pb2.HANDLING_MODE_ON_BEHALF,
        matter_code=ODA[0],
        matter_name=ODA[1],
        recipients=[hall_pb2.Recipient(node_id=WH)],
        applicant=hall_pb2.Applicant(
            name="张三", id_type=hall_pb2.APPLICANT_ID_TYPE_CITIZEN, id_number=citizen_id()
        ),
        form_json=b'{"a": 1}',
    )
    base.update(kw)
    return hall_pb2.SubmitHeader(**base)  # type: ignore[arg-type]


def _file(name: str, data: bytes = b"abc", size: int | None = None) -> list[hall_pb2.SubmitRequest]:
    return [
        hall_pb2.SubmitRequest(
            file_begin=hall_pb2.FileBegin(
                name=name, media_type="application/pdf", size=len(data) if size is None else size
            )
        ),
        hall_pb2.SubmitRequest(data=data),
        hall_pb2.SubmitRequest(file_end=hall_pb2.FileEnd(sha256=hashlib.sha256(data).hexdigest())),
    ]


def _submit(
    cluster: Cluster,
    header: hall_pb2.SubmitHeader,
    files: list[hall_pb2.SubmitRequest] = (),  # type: ignore[assignment]
) -> hall_pb2.SubmitResponse:
    reqs = [hall_pb2.SubmitRequest(header=header), *files]
    return _stub(cluster).Submit(iter(reqs), timeout=20)


def _refused(cluster: Cluster, node: str, call: object) -> tuple[grpc.StatusCode, str]:
    """Run ``call``; it must fail, and leave ``node``'s store as it was."""
    before = snapshot(cluster.nodes[node])
    with pytest.raises(grpc.RpcError) as exc:
        call()  # type: ignore[operator]
    assert snapshot(cluster.nodes[node]) == before, "a refusal must leave the store as it was"
    return exc.value.code(), exc.value.details()


# ---- malformed protobuf bytes ------------------------------------------------------------------

GARBAGE = b"\xff" * 16  # a varint longer than protobuf allows: no message parses from it


def test_unparsable_request_bytes_are_invalid_argument(cluster: Cluster) -> None:
    ch = _channel(cluster)
    for method in (
        "/tongban.relay.v1.HallService/ListInbox",
        "/tongban.relay.v1.HallService/SubmitForm",
    ):
        call = ch.unary_unary(method)
        assert _refused(cluster, EZ, lambda c=call: c(GARBAGE, timeout=10)) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "malformed-request: the request bytes are not a valid message of this method",
        )
    submit = ch.stream_unary("/tongban.relay.v1.HallService/Submit")
    assert _refused(cluster, EZ, lambda: submit(iter([GARBAGE]), timeout=10)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "malformed-request: the request bytes are not a valid message of this method",
    )
    fetch = ch.unary_stream("/tongban.relay.v1.HallService/Fetch")
    assert _refused(cluster, EZ, lambda: list(fetch(GARBAGE, timeout=10))) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "malformed-request: the request bytes are not a valid message of this method",
    )
    with cluster.node_channel(EZ, WH) as node_ch:
        deliver_raw = node_ch.stream_unary("/tongban.relay.v1.RelayService/Deliver")
        assert _refused(cluster, WH, lambda: deliver_raw(iter([GARBAGE]), timeout=10)) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "malformed-request: the request bytes are not a valid message of this method",
        )


# ---- helpers to act as a peer node -------------------------------------------------------------


def _resigned(
    cluster: Cluster,
    reqs: list[relay_pb2.DeliverRequest],
    edit: Callable[[dict[str, Any]], None] | None = None,
    payload: bytes | None = None,
) -> list[relay_pb2.DeliverRequest]:
    """The delivery with its statement edited (or replaced) and signed again by the sender's
    real key: what a peer whose node files were taken could send."""
    statement = reqs[0].opening.statement
    data = json.loads(statement.payload)
    if edit is not None:
        edit(data)
    body = payload if payload is not None else canonical_json(data)
    env = sign_envelope(body, PACKET_TYPE, [cluster.signer_of(EZ)])
    statement.CopyFrom(envelope_to_proto(env))
    return reqs


def _refused_delivery(
    cluster: Cluster, reqs: list[relay_pb2.DeliverRequest]
) -> tuple[grpc.StatusCode, str]:
    return _refused(cluster, WH, lambda: deliver(cluster, reqs, as_node=EZ, to_node=WH))


def _batch_outcome(
    cluster: Cluster, reqs: list[relay_pb2.DeliverRequest]
) -> tuple[grpc.StatusCode, str]:
    """The same packet in DeliverBatch (segments inline): its outcome, store unchanged."""
    opening = relay_pb2.PacketOpening()
    opening.CopyFrom(reqs[0].opening)
    for r in reqs[1:]:
        opening.segments.add().CopyFrom(r.segment)
    before = snapshot(cluster.nodes[WH])
    with cluster.node_channel(EZ, WH) as ch:
        response = relay_pb2_grpc.RelayServiceStub(ch).DeliverBatch(
            relay_pb2.DeliverBatchRequest(packets=[opening]), timeout=20
        )
    assert snapshot(cluster.nodes[WH]) == before, "a refused packet must leave the store as it was"
    (outcome,) = response.outcomes
    codes = {c.value[0]: c for c in grpc.StatusCode}
    return codes[outcome.code], outcome.message


def _both_ways(
    cluster: Cluster, reqs: list[relay_pb2.DeliverRequest]
) -> tuple[grpc.StatusCode, str]:
    """Deliver and DeliverBatch give the packet the same answer; return it."""
    streamed = _refused_delivery(cluster, reqs)
    assert _batch_outcome(cluster, reqs) == streamed
    return streamed


# ---- file names --------------------------------------------------------------------------------

BAD_NAMES = [
    ("../../../../etc/passwd", "contains a path separator '/'"),
    ("a\\b.pdf", "contains a path separator '\\\\'"),
    ("a\u2215b.pdf", "contains a path separator '∕' (U+2215)"),
    ("..", "is '.' or '..'"),
    ("CON.txt", "is the Windows device name CON"),
    ("lpt9", "is the Windows device name LPT9"),
    ("invoice\u202efdp.exe", "contains a bidirectional control U+202E"),
    ("a\nb.pdf", "contains a control character U+000A"),
    (" a.pdf", "begins or ends with whitespace"),
    ("\u3000", "is only whitespace"),
    ("证" * 86, "is 258 bytes in UTF-8; the limit is 255"),
]


NAME_IDS = [
    "traversal",
    "backslash",
    "division-slash",
    "dot-dot",
    "device-con",
    "device-lpt9",
    "bidi-override",
    "newline",
    "leading-space",
    "ideographic-space",
    "too-long",
]


@pytest.mark.parametrize(("name", "reason"), BAD_NAMES, ids=NAME_IDS)
def test_hall_submit_refuses_a_bad_file_name(cluster: Cluster, name: str, reason: str) -> None:
    got = _refused(cluster, EZ, lambda: _submit(cluster, _header(), _file(name)))
    assert got == (
        grpc.StatusCode.INVALID_ARGUMENT,
        f"bad-file-name: file 0 {echo(name)} {reason}",
    )


def test_hall_submit_refuses_names_equal_after_nfc_and_case_folding(cluster: Cluster) -> None:
    first, second = "Caf\u00e9.PDF", "cafe\u0301.pdf"  # é precomposed / decomposed
    got = _refused(
        cluster, EZ, lambda: _submit(cluster, _header(), _file(first) + _file(second, b"x"))
    )
    assert got == (
        grpc.StatusCode.INVALID_ARGUMENT,
        f"bad-file-name: file 1 {second!r} has the same name as file 0 {first!r} "
        "(compared after NFC normalisation and case folding)",
    )


@pytest.mark.parametrize(("name", "reason"), BAD_NAMES[:6], ids=NAME_IDS[:6])
def test_peer_packet_with_a_bad_file_name_is_refused(
    cluster: Cluster, name: str, reason: str
) -> None:
    reqs = forge_delivery(cluster, sender=EZ, recipient=WH, files=[ForgedFile(name, b"root:x")])
    assert _both_ways(cluster, reqs) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        f"bad-file-name: file 0 {echo(name)} {reason}",
    )


def test_peer_packet_with_two_names_equal_after_case_folding_is_refused(cluster: Cluster) -> None:
    files = [ForgedFile("a.pdf", b"1"), ForgedFile("A.PDF", b"2")]
    reqs = forge_delivery(cluster, sender=EZ, recipient=WH, files=files)
    assert _both_ways(cluster, reqs) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "bad-file-name: file 1 'A.PDF' has the same name as file 0 'a.pdf' "
        "(compared after NFC normalisation and case folding)",
    )


# ---- packet limits on the receiving side --------------------------------------------------------


def test_peer_packet_over_this_nodes_limits_is_refused_before_its_data(
    make_cluster: Callable[..., Cluster],
) -> None:
    cluster = make_cluster((EZ, WH), overrides={"limits": {"max_files": 2, "max_file_bytes": 100}})
    three = [ForgedFile(f"{i}.bin", b"x") for i in range(3)]
    opening_only = forge_delivery(cluster, sender=EZ, recipient=WH, files=three)[:1]
    # Only the opening is sent: the refusal cannot come from reading file data.
    assert _both_ways(cluster, opening_only) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "too-large: the packet holds 3 files; the limit is 2",
    )
    big = forge_delivery(cluster, sender=EZ, recipient=WH, files=[ForgedFile("a.bin", b"x" * 101)])
    assert _both_ways(cluster, big[:1]) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "too-large: file 0 'a.bin' is 101 bytes; the limit is 100",
    )


def test_peer_packet_with_negative_or_inconsistent_sizes_is_refused(cluster: Cluster) -> None:
    def size(n: int) -> Callable[[dict[str, Any]], None]:
        def edit(data: dict[str, Any]) -> None:
            data["content"]["files"][0]["size"] = n

        return edit

    reqs = forge_delivery(cluster, sender=EZ, recipient=WH, files=[ForgedFile("a.bin", b"xy")])
    assert _both_ways(cluster, _resigned(cluster, reqs, size(-5))) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "malformed-statement: file 0 declares size -5",
    )
    reqs = forge_delivery(cluster, sender=EZ, recipient=WH, files=[ForgedFile("a.bin", b"xy")])
    assert _both_ways(cluster, _resigned(cluster, reqs, size(5000))) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "malformed-statement: file 0 of 5000 bytes in segments of 1024 has 5 segments, not 1",
    )


# ---- header text fields ------------------------------------------------------------------------


def test_hall_header_fields_have_limits(cluster: Cluster) -> None:
    cases = [
        (
            _header(recipients=[hall_pb2.Recipient(node_id=WH, department="部" * 1_000_000)]),
            "field-too-long: department is 1000000 characters; the limit is 128",
        ),
        (
            _header(
                applicant=hall_pb2.Applicant(
                    name="张" * 100_000,
                    id_type=hall_pb2.APPLICANT_ID_TYPE_CITIZEN,
                    id_number=citizen_id(),
                )
            ),
            "field-too-long: applicant name is 100000 characters; the limit is 128",
        ),
        (
            _header(matter_name="事" * 257),
            "field-too-long: matter name is 257 characters; the limit is 256",
        ),
        (
            _header(matter_code="H" * 65),
            "field-too-long: matter code is 65 characters; the limit is 64",
        ),
        (
            _header(recipients=[hall_pb2.Recipient(node_id=WH, hall_id="h" * 129)]),
            "field-too-long: hall id is 129 characters; the limit is 128",
        ),
    ]
    for header, message in cases:
        for send in (
            lambda h=header: _submit(cluster, h),
            lambda h=header: _stub(cluster).SubmitForm(h, timeout=20),
        ):
            assert _refused(cluster, EZ, send) == (grpc.StatusCode.INVALID_ARGUMENT, message)
    media = [
        hall_pb2.SubmitRequest(
            file_begin=hall_pb2.FileBegin(name="a.pdf", media_type="a/" + "b" * 127, size=1)
        )
    ]
    assert _refused(cluster, EZ, lambda: _submit(cluster, _header(), media)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "field-too-long: media type is 129 characters; the limit is 128",
    )


def test_peer_header_fields_have_limits(cluster: Cluster) -> None:
    def department(data: dict[str, Any]) -> None:
        data["recipients"][0]["department"] = "部" * 200_000

    reqs = _resigned(cluster, forge_delivery(cluster, sender=EZ, recipient=WH), department)
    assert _both_ways(cluster, reqs) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "field-too-long: department is 200000 characters; the limit is 128",
    )

    def matter(data: dict[str, Any]) -> None:
        data["matter"]["name"] = "事" * 300

    reqs = _resigned(cluster, forge_delivery(cluster, sender=EZ, recipient=WH), matter)
    assert _both_ways(cluster, reqs) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "field-too-long: matter name is 300 characters; the limit is 256",
    )


# ---- malformed forms and statements ------------------------------------------------------------

DEEP = b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}"
MALFORMED_FORMS = [
    (DEEP, "form nests deeper than 32 levels"),
    (b'{"a": NaN}', "form holds NaN, which JSON does not allow"),
    (b'{"a": -Infinity}', "form holds -Infinity, which JSON does not allow"),
    (b'{"a": 1e400}', "form holds a number too large for a float (Infinity)"),
    (b'{"a": ' + b"9" * 5000 + b"}", "form holds an integer longer than 4300 digits"),
    (b'{"a": "\\ud800"}', "form holds a lone surrogate, which is not Unicode text"),
]


@pytest.mark.parametrize(
    ("form", "reason"),
    MALFORMED_FORMS,
    ids=["deep", "nan", "minus-infinity", "overflow", "long-int", "lone-surrogate"],
)
def test_hall_form_that_is_not_plain_json_is_refused(
    cluster: Cluster, form: bytes, reason: str
) -> None:
    header = _header(form_json=form)
    for send in (
        lambda: _submit(cluster, header),
        lambda: _stub(cluster).SubmitForm(header, timeout=20),
    ):
        assert _refused(cluster, EZ, send) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            f"malformed-form: {reason}",
        )


def test_form_at_the_depth_limit_is_accepted(cluster: Cluster) -> None:
    at_limit = b'{"a": ' + b"[" * 31 + b"]" * 31 + b"}"  # 32 levels with the object
    assert not _submit(cluster, _header(form_json=at_limit)).duplicate


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (
            b'{"type": ' + b"[" * 40 + b"]" * 40 + b"}",
            "packet statement nests deeper than 32 levels",
        ),
        (b'{"type": NaN}', "packet statement holds NaN, which JSON does not allow"),
        (
            b'{"type": ' + b"1" * 5000 + b"}",
            "packet statement holds an integer longer than 4300 digits",
        ),
        (
            b'{"type": "\\udc00"}',
            "packet statement holds a lone surrogate, which is not Unicode text",
        ),
    ],
    ids=["deep", "nan", "long-int", "lone-surrogate"],
)
def test_peer_statement_that_is_not_plain_json_is_refused(
    cluster: Cluster, payload: bytes, reason: str
) -> None:
    reqs = _resigned(cluster, forge_delivery(cluster, sender=EZ, recipient=WH), payload=payload)
    assert _both_ways(cluster, reqs) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        f"malformed-statement: {reason}",
    )


def test_peer_form_nested_too_deep_is_refused(cluster: Cluster) -> None:
    deep: Any = []
    for _ in range(40):
        deep = [deep]
    reqs = forge_delivery(cluster, sender=EZ, recipient=WH, form={"a": deep})
    assert _both_ways(cluster, reqs) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "malformed-form: packet form nests deeper than 33 levels",
    )


# ---- values echoed in messages ------------------------------------------------------------------


def test_echoed_values_are_cut_to_80_characters(cluster: Cluster) -> None:
    long_id = "x" * 100_000
    got = _refused(cluster, EZ, lambda: _stub(cluster).SubmitForm(_header(packet_id=long_id)))
    assert got == (
        grpc.StatusCode.INVALID_ARGUMENT,
        f"invalid-request: packet id '{'x' * 78}… is not a UUID",
    )
    got = _refused(cluster, EZ, lambda: _stub(cluster).SubmitForm(_header(matter_code="Q" * 64)))
    assert got == (
        grpc.StatusCode.INVALID_ARGUMENT,
        f"unknown-matter: unknown matter code '{'Q' * 64}'",
    )


def test_echo_cuts_with_an_ellipsis() -> None:
    assert echo("abc") == "'abc'"
    cut = echo("y" * 500)
    assert len(cut) == ECHO_LIMIT and cut == "'" + "y" * 78 + "…"


# ---- the same packet id again -------------------------------------------------------------------


def _reused(pid: str) -> tuple[grpc.StatusCode, str]:
    return (
        grpc.StatusCode.ALREADY_EXISTS,
        f"conflict: packet id {pid} is already used for a different packet; "
        "send this one under a new packet id",
    )


def test_resend_with_other_content_is_a_conflict(cluster: Cluster) -> None:
    pid = str(uuid.uuid4())
    first = _submit(cluster, _header(packet_id=pid, form_json=b'{"a": 1}'))
    again = _submit(cluster, _header(packet_id=pid, form_json=b'{"a": 1}'))
    assert again.duplicate and (again.packet_id, again.case_id) == (pid, first.case_id)
    for header in (
        _header(packet_id=pid, form_json=b'{"a": 2}'),
        _header(packet_id=pid, matter_name=""),
        _header(packet_id=pid, recipients=[hall_pb2.Recipient(node_id="440300")]),
    ):
        assert _refused(cluster, EZ, lambda h=header: _submit(cluster, h)) == _reused(pid)
        assert _refused(
            cluster, EZ, lambda h=header: _stub(cluster).SubmitForm(h, timeout=20)
        ) == _reused(pid)


def test_resend_with_other_files_is_a_conflict(cluster: Cluster) -> None:
    pid = str(uuid.uuid4())
    header = _header(packet_id=pid)
    first = _submit(cluster, header, _file("a.pdf", b"one"))
    again = _submit(cluster, header, _file("a.pdf", b"one"))
    assert again.duplicate and again.case_id == first.case_id
    for files in (
        _file("a.pdf", b"two"),
        _file("b.pdf", b"one"),
        _file("a.pdf", b"one") + _file("c.pdf", b"3"),
        [],
    ):
        assert _refused(cluster, EZ, lambda f=files: _submit(cluster, header, f)) == _reused(pid)


def test_another_halls_packet_id_gets_the_same_answer_as_any_conflict(cluster: Cluster) -> None:
    pid = str(uuid.uuid4())
    _submit(cluster, _header(packet_id=pid))
    other = _stub(cluster, EZ, f"{EZ}-hall-2")
    # Even the very same packet: the id is not this hall's, so nothing says whose it is.
    for send in (
        lambda: other.SubmitForm(_header(packet_id=pid), timeout=20),
        lambda: other.Submit(iter([hall_pb2.SubmitRequest(header=_header(packet_id=pid))])),
        lambda: other.Submit(
            iter([hall_pb2.SubmitRequest(header=_header(packet_id=pid)), *_file("a.pdf")])
        ),
    ):
        assert _refused(cluster, EZ, send) == _reused(pid)
    # A received packet's id, used by the hall that received it.
    reqs = forge_delivery(cluster, sender=EZ, recipient=WH)
    deliver(cluster, reqs, as_node=EZ, to_node=WH)
    received = json.loads(reqs[0].opening.statement.payload)["packet_id"]
    wh = _stub(cluster, WH, f"{WH}-hall-1")
    header = _header(packet_id=received, recipients=[hall_pb2.Recipient(node_id=EZ)])
    assert _refused(cluster, WH, lambda: wh.SubmitForm(header, timeout=20)) == _reused(received)


# ---- ListInbox, declared sizes ------------------------------------------------------------------


def test_list_inbox_limit_is_capped_and_not_negative(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tongban.server.usecases import inbox as packets

    stub = _stub(cluster)
    for _ in range(3):
        _submit(cluster, _header())
    assert len(stub.ListInbox(hall_pb2.InboxRequest(limit=50)).entries) == 3
    monkeypatch.setattr(packets, "MAX_INBOX_PAGE", 2)
    assert len(stub.ListInbox(hall_pb2.InboxRequest(limit=50)).entries) == 2
    assert len(stub.ListInbox(hall_pb2.InboxRequest()).entries) == 2
    assert _refused(cluster, EZ, lambda: stub.ListInbox(hall_pb2.InboxRequest(limit=-1))) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid-request: limit -1 is negative; use 0 for 100 entries",
    )


def test_declared_file_size_below_minus_one_is_refused(cluster: Cluster) -> None:
    got = _refused(cluster, EZ, lambda: _submit(cluster, _header(), _file("a.pdf", size=-2)))
    assert got == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid-request: file 0 'a.pdf' declares size -2; a size is -1 (unknown) or 0 and up",
    )
    # -1 means "unknown" and is accepted.
    assert not _submit(cluster, _header(), _file("a.pdf", size=-1)).duplicate


# ---- seal images ------------------------------------------------------------------------------


def _png(width: int, height: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGBA", (width, height), (230, 0, 18, 255)).save(out, format="PNG")
    return out.getvalue()


def _jpeg() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (100, 100), (230, 0, 18)).save(out, format="JPEG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (b"not an image at all", "bad-seal-image: seal image is not a PNG"),
        (_jpeg(), "bad-seal-image: seal image is not a PNG"),
        (
            _png(4000, 100),
            "bad-seal-image: seal image is 4000x100 pixels; each side must be 32-2048",
        ),
        (_png(16, 16), "bad-seal-image: seal image is 16x16 pixels; each side must be 32-2048"),
        (
            _png(100, 100)[:-40],
            "bad-seal-image: seal image does not decode as a PNG: image file is truncated",
        ),
        (
            b"\x89PNG\r\n\x1a\n" + b"\0" * (1 << 20),
            f"bad-seal-image: seal image is {(1 << 20) + 8} bytes; the limit is {1 << 20}",
        ),
    ],
    ids=["garbage", "jpeg", "too-wide", "too-small", "truncated", "too-many-bytes"],
)
def test_register_seal_refuses_an_image_that_is_not_a_good_png(
    cluster: Cluster, image: bytes, message: str
) -> None:
    from tongban.keys.clock import format_time, utcnow
    from tongban.proto import seal_pb2, seal_pb2_grpc

    d = cluster.fed / WH / "admins" / f"{WH}-admin"
    creds = grpc.ssl_channel_credentials(
        (d / "root.pem").read_bytes(), (d / "key.pem").read_bytes(), (d / "cert.pem").read_bytes()
    )
    now = utcnow()
    request = seal_pb2.RegisterSealRequest(
        seal_id="wh-approval",
        name="武汉市行政审批局行政审批专用章",
        org_uscc="11420100MB0000123A",
        org_name="武汉市行政审批局",
        not_before=format_time(now - timedelta(minutes=1)),
        not_after=format_time(now + timedelta(days=30)),
        image_png=image,
    )
    keys = cluster.fed / WH / "seals" / "keys"
    with grpc.secure_channel(
        cluster.directory().node(WH).endpoint,
        creds,
        options=[("grpc.ssl_target_name_override", f"node-{WH}.tongban")],
    ) as ch:
        stub = seal_pb2_grpc.SealServiceStub(ch)
        got = _refused(cluster, WH, lambda: stub.RegisterSeal(request, timeout=20))
        assert got == (grpc.StatusCode.INVALID_ARGUMENT, message)
        assert not (keys / "wh-approval.pem").exists()
        # A good PNG registers.
        request.image_png = _png(480, 480)
        assert stub.RegisterSeal(request, timeout=20).seal_id == "wh-approval"
