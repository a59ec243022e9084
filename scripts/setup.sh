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
  # NSS's certutil makes the trust store pdfsig reads (the README's "Verify without tongban").
  apt_packages+=(libnss3-tools)
  test_programs+=(certutil)
  # The browser the verification-site tests drive through Playwright (never a downloaded one).
  apt_packages+=(chromium)
  test_programs+=(chromium)
  # A PostgreSQL server the outage tests start and stop themselves (initdb, pg_ctl).
  apt_packages+=(postgresql)
  # sm-crypto, the SM2 library of browser OFD viewers, checks GB/T 38540 seals (tests/node).
  # npm comes with NodeSource's nodejs and conflicts with Debian's npm package: it is added
  # below only where the nodejs installed brings none.
  apt_packages+=(nodejs)
  test_programs+=(node npm)
fi
step() { echo "setup: $*"; }

step "checking system packages: ${apt_packages[*]}"
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  # Another apt or dpkg run (unattended upgrades, a second set-up) holds the lock for a
  # while on a busy machine: wait for it rather than fail.
  apt=(apt-get -o DPkg::Lock::Timeout=600)
  step "updating the package lists (waits up to 10 minutes for another apt to finish)"
  $SUDO "${apt[@]}" update -q
  step "installing system packages: ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -q --no-install-recommends "${missing[@]}"
fi

if [[ $want_test == 1 ]] && ! command -v npm >/dev/null; then
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  echo "installing system packages: npm"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends npm >/dev/null
fi

if [[ $want_test == 1 ]]; then
  step "checking the programs the tests run: ${test_programs[*]}"
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
  step "creating the virtual environment .venv with $PY"
  "$PY" -m venv .venv
fi
step "upgrading pip in .venv"
.venv/bin/python -m pip install --upgrade pip
step "installing tongban and its development tools into .venv (pip install -e .[dev])"
.venv/bin/python -m pip install -e ".[dev]"
if [[ $want_test == 1 ]]; then
  step "installing the JavaScript verifiers into tests/node (npm ci)"
  # Project-local node_modules for the JavaScript verifiers, exactly as package-lock.json pins.
  (cd tests/node && npm ci --no-audit --no-fund)
fi
step "done: run the tests with .venv/bin/python -m pytest, or everything with scripts/test.sh"
