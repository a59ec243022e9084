"""The README's walk-through runs as written, against real nodes, so it cannot drift.

The blocks marked ``<!-- walkthrough: the test runs this block -->`` in README.md are taken
command by command and run in one bash session from a folder that stands for the
repository's root (the virtual environment and ``examples/`` linked in). Only the ports
change: the README's ``--base-port 50051`` and the public port ``127.0.0.1:50152`` are
replaced by free ones, each exactly once, so a README that changes its ports fails here.
Hall commands are retried for a while, as a person typing them would wait for a delivery;
after a node is started the script waits for both of its ports. Then the independent
verifiers are shown to refuse a tampered document and an untrusted root.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.availability import require_programs, unavailable
from tongban.keys.clock import utcnow
from tongban.keys.pki import certificate_pem, generate_root

REPO = Path(__file__).resolve().parents[2]
MARKER = "<!-- walkthrough: the test runs this block -->"
BASE_PORT = 50051
PUBLIC_OF_WUHAN = f"127.0.0.1:{BASE_PORT + 101}"

pytestmark = pytest.mark.slow


def readme_blocks(text: str) -> list[str]:
    """The shell blocks the README marks for this test, in order."""
    return re.findall(re.escape(MARKER) + r"\n```sh\n(.*?)\n```", text, flags=re.DOTALL)


def commands(block: str) -> list[str]:
    """Logical commands: continuation lines joined, comments and blank lines left out."""
    joined = re.sub(r"\\\n\s*", " ", block)
    out = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            out.append(stripped)
    return out


def _free_base() -> int:
    """A base port with base, base+1, base+100 and base+101 free on loopback."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + 101 > 65535:
            continue
        wanted = [base, base + 1, base + 100, base + 101]
        try:
            held = []
            for port in wanted:
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
        return base
    raise RuntimeError("no four free ports")


_PRELUDE = r"""
set -euo pipefail
trap 'kill $(jobs -p) 2>/dev/null || true; wait || true' EXIT
retry() {
  local i
  for i in $(seq 1 60); do
    if eval "$1"; then return 0; fi
    echo "(not yet, retrying: $1)" >&2
    sleep 0.5
  done
  eval "$1"
}
wait_port() {
  local i
  for i in $(seq 1 240); do
    if (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.25
  done
  echo "port $1 never opened" >&2
  return 1
}
"""


def script(blocks: list[str], base: int) -> str:
    """The bash script that runs the README's commands on ports counted from ``base``."""
    lines = [_PRELUDE]
    served = 0
    for block in blocks:
        for as_written in commands(block):
            command = _on_ports(as_written, base)
            if command.startswith("tongban node serve"):
                assert re.search(r"&(\s+#.*)?$", command), command
                lines.append(command)
                lines.append(f"wait_port {base + served}; wait_port {base + 100 + served}")
                served += 1
            elif command.startswith(("tongban hall", "TONGBAN_HALL=")):
                lines.append(f"retry {_quoted(command)}")
            else:
                lines.append(command)
    assert served == 2
    return "\n".join(lines) + "\n"


def _on_ports(command: str, base: int) -> str:
    """``command`` with the README's ports moved to those counted from ``base``."""
    if "--base-port" in command:
        assert f"--base-port {BASE_PORT}" in command, command
        command = command.replace(f"--base-port {BASE_PORT}", f"--base-port {base}")
    if "127.0.0.1:5" in command:
        assert PUBLIC_OF_WUHAN in command, command
        command = command.replace(PUBLIC_OF_WUHAN, f"127.0.0.1:{base + 101}")
    return command


def _quoted(command: str) -> str:
    return "'" + command.replace("'", "'\"'\"'") + "'"


def _printed_lines(readme: str) -> list[str]:
    """The lines the README says the verifiers print, less those it elides."""
    after = readme.split("They print:\n\n```\n", 1)[1].split("\n```", 1)[0]
    return [line for line in after.splitlines() if "…" not in line and "<" not in line]


def test_the_readme_walkthrough_runs_as_written(tmp_path: Path) -> None:
    require_programs(
        "openssl", "pdfsig", "certutil", install="bash scripts/setup.sh --with-test-deps"
    )
    venv_bin = Path(sys.prefix) / "bin"
    if not (venv_bin / "pyhanko").exists():
        unavailable(f"needs pyHanko's command line in {venv_bin}: pip install -e '.[dev]'")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = readme_blocks(readme)
    assert len(blocks) == 2, "the walk-through and the 'Verify without tongban' commands"
    root = tmp_path / "repo"
    root.mkdir()
    (root / ".venv").symlink_to(sys.prefix)
    (root / "examples").symlink_to(REPO / "examples")
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TONGBAN_")}
    env["TMPDIR"] = str(temp)
    base = _free_base()
    run = subprocess.run(
        ["bash", "-c", script(blocks, base)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    out = run.stdout
    assert run.returncode == 0, f"stdout:\n{out}\nstderr:\n{run.stderr}"

    [work] = list(temp.iterdir())  # the walk-through's mktemp -d folder
    assert f"public 127.0.0.1:{base + 100}" in out and f"public 127.0.0.1:{base + 101}" in out
    assert "chain intact" in out
    assert (
        "VALID: sealed by 武汉市行政审批局行政审批专用章 (wh-approval) of 11420100MB1646962Q at "
        in out
    )
    for line in _printed_lines(readme):
        assert line in out + run.stderr, line  # openssl cms reports on stderr
    # The accepting hall holds the result byte for byte, with its seal.
    permit = (REPO / "examples" / "permit.pdf").read_bytes()
    assert (work / "result" / "permit.pdf").read_bytes() == permit
    assert (work / "result" / "permit.pdf.p7s").stat().st_size > 0
    # Everything a verifier needs is published, readable by anyone.
    public = work / "fed" / "public"
    assert sorted(str(p.relative_to(public)) for p in public.rglob("*") if p.is_file()) == [
        "420100/seal-registry.json",
        "420100/status-list.json",
        "directory.json",
        "root.pem",
    ]
    assert {p.stat().st_mode & 0o777 for p in public.rglob("*") if p.is_file()} == {0o644}

    _independent_verifiers_refuse(work, venv_bin / "pyhanko")


def _independent_verifiers_refuse(work: Path, pyhanko: Path) -> None:
    """The same commands say no to a changed document and to another root."""
    other = work / "other-root.pem"
    other.write_bytes(certificate_pem(generate_root(now=utcnow(), name="another root")[1]))
    changed = work / "changed.pdf"
    changed.write_bytes((work / "result" / "permit.pdf").read_bytes().replace(b"Notice", b"Motice"))

    def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(a) for a in argv], cwd=work, capture_output=True, text=True, check=False
        )

    cms = ("openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in")
    seal = "result/permit.pdf.p7s"
    tail = ("-purpose", "any", "-out", "/dev/null")
    bad_content = run(*cms, seal, "-content", changed, "-CAfile", "fed/public/root.pem", *tail)
    assert bad_content.returncode != 0
    assert "CMS Verification failure" in bad_content.stderr
    bad_root = run(*cms, seal, "-content", "result/permit.pdf", "-CAfile", other, *tail)
    assert bad_root.returncode != 0
    assert "unable to get local issuer certificate" in bad_root.stderr

    sealed = (work / "permit.sealed.pdf").read_bytes()
    at = sealed.index(b"Notice")
    tampered = work / "tampered.sealed.pdf"
    tampered.write_bytes(sealed[:at] + b"M" + sealed[at + 1 :])
    assert (
        "Signature Validation: Digest Mismatch."
        in run("pdfsig", "-nssdir", "sql:nss", tampered).stdout
    )
    (work / "nss-other").mkdir()
    run("certutil", "-N", "-d", "sql:nss-other", "--empty-password")
    run("certutil", "-A", "-d", "sql:nss-other", "-n", "other", "-t", ",C,", "-i", other)
    untrusted = run("pdfsig", "-nssdir", "sql:nss-other", "permit.sealed.pdf").stdout
    assert "Signature is Valid." in untrusted
    assert "Certificate Validation: Certificate issuer is unknown." in untrusted

    validate = (pyhanko, "sign", "validate", "--trust-replace", "--trust")
    trusted = run(*validate, "fed/public/root.pem", "permit.sealed.pdf")
    assert trusted.returncode == 0 and ":INTACT:TRUSTED,UNTOUCHED" in trusted.stdout
    other_root = run(*validate, other, "permit.sealed.pdf")
    assert other_root.returncode != 0
    assert ":INTACT:UNTRUSTED," in other_root.stdout
    broken = run(*validate, "fed/public/root.pem", tampered)
    assert broken.returncode != 0
    assert broken.stdout.strip().endswith(":INVALID")
