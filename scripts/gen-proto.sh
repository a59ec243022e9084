#!/usr/bin/env bash
# Regenerates the Python code and type stubs for proto/*.proto into proto/.
# The generated modules import each other as tongban.proto.*, the installed package name.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
BIN=$(dirname "$(command -v "$PY")")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
files=()
for f in proto/*.proto; do files+=("tongban/proto/$(basename "$f")"); done
PATH="$BIN:$PATH" "$PY" -m grpc_tools.protoc -Itongban/proto=proto \
  --python_out="$out" --grpc_python_out="$out" --mypy_out="$out" --mypy_grpc_out="$out" \
  "${files[@]}" >/dev/null
rm -f proto/*_pb2*.py proto/*_pb2*.pyi
cp "$out"/tongban/proto/* proto/
