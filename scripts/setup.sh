#!/usr/bin/env bash
# Installs what tongban needs on a fresh Debian machine: system packages (when run as root
# or with sudo), then a virtual environment in .venv with the project and its dev tools.
# Usage: scripts/setup.sh [--with-test-deps]
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[[ "${1:-}" == "--with-test-deps" ]] && want_test=1

apt_packages=(openssl fonts-wqy-zenhei)
# Programs the tests run; with CI=true a missing one fails the run rather than skipping.
test_programs=(openssl)
if [[ $want_test == 1 ]]; then
  # A real S3 server for the integration tests (Ceph radosgw, single node); ceph-common and
  # ceph-base, pulled in by these, bring ceph, ceph-authtool, radosgw-admin and monmaptool.
  apt_packages+=(radosgw ceph-mon ceph-osd)
  test_programs+=(ceph-mon ceph-osd radosgw radosgw-admin ceph ceph-authtool monmaptool)
  # Independent PDF checkers the seal tests run against sealed PDFs.
  apt_packages+=(poppler-utils qpdf)
  test_programs+=(pdfsig qpdf)
  # sm-crypto, the SM2 library of browser OFD viewers, checks GB/T 38540 seals (tests/node).
  # npm comes with NodeSource's nodejs and conflicts with Debian's npm package: it is added
  # below only where the nodejs installed brings none.
  apt_packages+=(nodejs)
  test_programs+=(node npm)
fi
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  echo "installing system packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ $want_test == 1 ]] && ! command -v npm >/dev/null; then
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  echo "installing system packages: npm"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends npm >/dev/null
fi

if [[ $want_test == 1 ]]; then
  absent=()
  for program in "${test_programs[@]}"; do
    command -v "$program" >/dev/null || absent+=("$program")
  done
  if ((${#absent[@]})); then
    echo "setup: the tests need programs that are still missing: ${absent[*]}" >&2
    exit 1
  fi
fi

PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".[dev]"
if [[ $want_test == 1 ]]; then
  # Project-local node_modules for the JavaScript verifiers, exactly as package-lock.json pins.
  (cd tests/node && npm ci --no-audit --no-fund --silent)
fi
