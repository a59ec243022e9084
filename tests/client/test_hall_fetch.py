"""The hall SDK never writes outside ``out_dir``, whatever names the node sends."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tongban.client.errors import FetchVerificationError, UnsafeFileName
from tongban.client.hall import HallClient
from tongban.proto import hall_pb2


class _Node:
    """Stands in for a node's HallService: Fetch answers with the given messages."""

    def __init__(self, messages: list[hall_pb2.FetchResponse]) -> None:
        self.messages = messages

    def Fetch(self, request: hall_pb2.FetchRequest) -> Iterator[hall_pb2.FetchResponse]:
        yield from self.messages


def _client(messages: list[hall_pb2.FetchResponse]) -> HallClient:
    client = HallClient("127.0.0.1:1", node_id="420100", cert_pem=b"", key_pem=b"", root_pem=b"")
    client._stub = _Node(messages)  # type: ignore[assignment]
    return client


def _info(index: int, name: str, data: bytes) -> hall_pb2.FileInfo:
    return hall_pb2.FileInfo(
        index=index,
        name=name,
        media_type="application/pdf",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _packet(
    files: list[tuple[str, bytes]], begun: list[str] | None = None
) -> list[hall_pb2.FetchResponse]:
    """What a node sends for a packet: the opening (manifest), then each file; ``begun``
    replaces the names the file_begin messages carry."""
    infos = [_info(i, name, data) for i, (name, data) in enumerate(files)]
    out = [
        hall_pb2.FetchResponse(
            opening=hall_pb2.FetchOpening(
                entry=hall_pb2.InboxEntry(packet_id="p"), form_json=b"{}", files=infos
            )
        )
    ]
    for i, (info, (_, data)) in enumerate(zip(infos, files, strict=True)):
        begin = hall_pb2.FileInfo()
        begin.CopyFrom(info)
        if begun is not None:
            begin.name = begun[i]
        out += [
            hall_pb2.FetchResponse(file_begin=begin),
            hall_pb2.FetchResponse(data=data),
            hall_pb2.FetchResponse(
                file_end=hall_pb2.FetchFileEnd(index=i, sha256=info.sha256, verified=True)
            ),
        ]
    return out


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_fetch_writes_good_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    packet = _client(_packet([("营业执照.pdf", b"one"), ("b.pdf", b"two")])).fetch("p", out)
    assert [f.name for f in packet.files] == ["营业执照.pdf", "b.pdf"]
    assert (out / "营业执照.pdf").read_bytes() == b"one"
    assert _tree(tmp_path) == ["out", "out/b.pdf", "out/营业执照.pdf"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "../../../../etc/passwd",
            "the node sent an unsafe file name: file 0 '../../../../etc/passwd' contains a "
            "path separator '/'",
        ),
        (
            "/etc/passwd",
            "the node sent an unsafe file name: file 0 '/etc/passwd' contains a path separator '/'",
        ),
        ("..", "the node sent an unsafe file name: file 0 '..' is '.' or '..'"),
        (
            "a\\..\\..\\b",
            "the node sent an unsafe file name: file 0 'a\\\\..\\\\..\\\\b' "
            "contains a path separator '\\\\'",
        ),
        (
            "NUL.pdf",
            "the node sent an unsafe file name: file 0 'NUL.pdf' is the Windows device name NUL",
        ),
        ("", "the node sent an unsafe file name: file 0 '' is empty"),
    ],
    ids=["traversal", "absolute", "dot-dot", "backslash", "device", "empty"],
)
def test_fetch_refuses_an_unsafe_name_before_writing_anything(
    tmp_path: Path, name: str, message: str
) -> None:
    out = tmp_path / "a" / "b" / "out"
    with pytest.raises(UnsafeFileName) as exc:
        _client(_packet([(name, b"root:x:0:0")])).fetch("p", out)
    assert str(exc.value) == message
    assert _tree(tmp_path) == ["a", "a/b", "a/b/out"], "nothing may be written anywhere"


def test_fetch_refuses_names_equal_after_case_folding(tmp_path: Path) -> None:
    with pytest.raises(UnsafeFileName) as exc:
        _client(_packet([("a.pdf", b"1"), ("A.PDF", b"2")])).fetch("p", tmp_path / "out")
    assert str(exc.value) == (
        "the node sent an unsafe file name: file 1 'A.PDF' has the same name as file 0 "
        "'a.pdf' (compared after NFC normalisation and case folding)"
    )
    assert _tree(tmp_path) == ["out"]


def test_fetch_refuses_a_file_name_outside_the_manifest(tmp_path: Path) -> None:
    # The manifest is clean; the file_begin names something else.
    messages = _packet([("a.pdf", b"1")], begun=["../../escape"])
    with pytest.raises(FetchVerificationError) as exc:
        _client(messages).fetch("p", tmp_path / "out")
    assert str(exc.value) == "file 0 '../../escape' is not in the packet's manifest"
    assert _tree(tmp_path) == ["out"]


def test_fetch_does_not_follow_a_symlink_out_of_out_dir(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"keep")
    (out / "a.pdf").symlink_to(outside)
    with pytest.raises(UnsafeFileName) as exc:
        _client(_packet([("a.pdf", b"overwrite")])).fetch("p", out)
    assert str(exc.value) == f"file name 'a.pdf' does not stay inside {out.resolve()}"
    assert outside.read_bytes() == b"keep"
    assert _tree(tmp_path) == ["out", "out/a.pdf", "outside.txt"]
