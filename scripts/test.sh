#!/usr/bin/env bash
# One command from a fresh clone to a full test run: install, lint, type-check, test.
# Extra arguments go to pytest, e.g.  scripts/test.sh -m "not slow"
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-test-deps
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy --strict"
PYTHON=.venv/bin/python bash scripts/typecheck.sh
echo "== import contracts"
bash scripts/lint-imports.sh
echo "== docstrings of the public API (keys, client)"
.venv/bin/interrogate keys client
echo "== pytest"
.venv/bin/python -m pytest "$@"
