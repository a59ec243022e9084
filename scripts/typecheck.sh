#!/usr/bin/env bash
# mypy --strict over the project's own code, under its installed names (tongban.*).
# The source folders are mapped onto tongban.* by setuptools' package-dir; mypy cannot read
# that mapping, so it checks a tree of links that mirrors it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
tree=build/typecheck
rm -rf "$tree" && mkdir -p "$tree/tongban"
for pkg in proto keys storage server client cli; do
  ln -s "../../../$pkg" "$tree/tongban/$pkg"
done
MYPYPATH="$tree" "$PY" -m mypy --config-file pyproject.toml \
  -p tongban.keys -p tongban.storage -p tongban.server -p tongban.client -p tongban.cli "$@"
