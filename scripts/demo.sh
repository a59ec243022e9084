#!/usr/bin/env bash
# One command from a fresh clone to the demo: three city nodes, two cases, end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/tongban demo "$@"
