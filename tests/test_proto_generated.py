"""The committed generated modules match the .proto files they came from."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

PROTO = Path(__file__).resolve().parent.parent / "proto"


def _drop_json_names(f: descriptor_pb2.FileDescriptorProto) -> None:
    # protoc records json_name in descriptor sets but not in generated modules.
    def walk(messages: object) -> None:
        for m in messages:  # type: ignore[attr-defined]
            for field in m.field:
                field.ClearField("json_name")
            walk(m.nested_type)

    walk(f.message_type)


@pytest.mark.parametrize("name", sorted(p.stem for p in PROTO.glob("*.proto")))
def test_generated_descriptor_matches_source(name: str, tmp_path: Path) -> None:
    from grpc_tools import protoc

    out = tmp_path / "set.pb"
    rc = protoc.main(
        [
            "protoc",
            f"-Itongban/proto={PROTO}",
            f"--descriptor_set_out={out}",
            f"tongban/proto/{name}.proto",
        ]
    )
    assert rc == 0, "protoc failed on the .proto source"
    fresh = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    module = importlib.import_module(f"tongban.proto.{name}_pb2")
    committed = descriptor_pb2.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb)
    _drop_json_names(fresh)
    _drop_json_names(committed)
    assert committed == fresh, f"proto/{name}_pb2.py is stale: run scripts/gen-proto.sh"
    assert (PROTO / f"{name}_pb2.pyi").exists() and (PROTO / f"{name}_pb2_grpc.pyi").exists()
