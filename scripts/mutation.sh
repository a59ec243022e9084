#!/usr/bin/env bash
# Mutation testing of the trust code (cosmic-ray); regenerates docs/mutation.md.
# Usage: scripts/mutation.sh [--fast] [--no-report | --report-only] [MODULE_PATH ...]
#   no MODULE_PATH: every module in scripts/mutation/targets.toml
#   --fast: the small modules marked fast; exits 1 if a mutant survives that is not
#           listed as equivalent (for CI; does not touch the report)
# Mutants are written into the source files in place while it runs: do not edit or test
# this work tree meanwhile. An interrupted run puts the original file back.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
if ! "$PY" -c "import cosmic_ray" 2>/dev/null; then
  echo "cosmic-ray is missing: bash scripts/setup.sh (installs the dev extras)" >&2
  exit 2
fi
exec "$PY" scripts/mutation/run.py "$@"
