#!/usr/bin/env bash
# The layer rules of the import contracts in pyproject.toml ([tool.importlinter]), checked
# over the same tree of links as scripts/typecheck.sh, since the source folders are mapped
# onto tongban.* by setuptools' package-dir.
set -euo pipefail
cd "$(dirname "$0")/.."
tree=build/imports
rm -rf "$tree" && mkdir -p "$tree/tongban"
for pkg in proto keys storage server client cli; do
  ln -s "../../../$pkg" "$tree/tongban/$pkg"
done
# An empty __init__ makes tongban a regular package for the import graph.
touch "$tree/tongban/__init__.py"
PYTHONPATH="$tree" "${LINT_IMPORTS:-.venv/bin/lint-imports}" --no-cache "$@"
