"""A new user's common mistakes: each ends in one line naming the problem and its fix, exit
code 2, no traceback, and nothing stored."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import Cluster, citizen_id, start_cluster
from tongban.cli.main import main

_HALL_FOLDER = (
    "a hall folder written by `tongban federation init`, e.g. fed/420700/halls/420700-hall-1"
)


def _hall(cluster: Cluster, node: str, n: int = 1) -> str:
    return str(cluster.fed / node / "halls" / f"{node}-hall-{n}")


def _submit_args(hall: str, *extra: str) -> list[str]:
    return [
        "hall",
        "--profile",
        hall,
        "submit",
        "--matter",
        "HB-ODA-01",
        "--to",
        "420100",
        "--applicant-name",
        "张三",
        "--id-number",
        citizen_id(),
        *extra,
    ]


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    lines = captured.out.splitlines()
    assert len(lines) == 1, captured.out
    return lines[0]


def _environ(**extra: str) -> dict[str, str]:
    """This process's environment without TONGBAN_* variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TONGBAN_")}
    return {**env, **extra}


@pytest.fixture(autouse=True)
def _no_tongban_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TONGBAN_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize("option", ["--file", "--form"])
def test_a_file_that_does_not_exist(
    cluster: Cluster,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    option: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(_submit_args(_hall(cluster, "420700"), option, "id-card.pdf")) == 2
    assert _one_line(capsys) == (
        f"tongban hall submit: {option} id-card.pdf does not exist (looked in {tmp_path}); "
        "give the path of an existing file"
    )
    assert cluster.hall("420700").inbox() == []


def test_a_form_that_is_not_json(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    form = tmp_path / "form.json"
    form.write_text("reason: moved", encoding="utf-8")
    assert main(_submit_args(_hall(cluster, "420700"), "--form", str(form))) == 2
    assert _one_line(capsys) == (
        f"tongban hall submit: --form {form} is not JSON "
        "(Expecting value: line 1 column 1 (char 0)); give a JSON object"
    )
    assert cluster.hall("420700").inbox() == []


def test_a_result_file_that_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Refused before any hall folder or node is needed.
    monkeypatch.chdir(tmp_path)
    assert main(["hall", "--profile", "x", "result", "0a1b2c3d", "--file", "permit.pdf"]) == 2
    assert _one_line(capsys) == (
        f"tongban hall result: --file permit.pdf does not exist (looked in {tmp_path}); "
        "give the path of an existing file"
    )


def test_tongban_hall_pointing_at_a_missing_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "fed" / "420700" / "halls" / "420700-hall-9"
    monkeypatch.setenv("TONGBAN_HALL", str(missing))
    assert main(["hall", "inbox"]) == 2
    assert _one_line(capsys) == (
        f"tongban hall inbox: TONGBAN_HALL={missing}: no such folder; point it at {_HALL_FOLDER}"
    )


def test_tongban_hall_pointing_at_a_folder_that_is_not_a_hall(
    cluster: Cluster, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    node_folder = cluster.fed / "420700"  # the node's folder, one level too high
    monkeypatch.setenv("TONGBAN_HALL", str(node_folder))
    assert main(["hall", "inbox"]) == 2
    assert _one_line(capsys) == (
        f"tongban hall inbox: TONGBAN_HALL={node_folder} is not a hall folder "
        f"(no hall.toml, cert.pem, key.pem); point it at {_HALL_FOLDER}"
    )


def test_no_hall_folder_at_all(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hall", "inbox"]) == 2
    assert _one_line(capsys) == (
        f"tongban hall inbox: no hall folder: give --profile HALL_FOLDER or set TONGBAN_HALL "
        f"to {_HALL_FOLDER}"
    )


def test_an_unknown_key_in_node_toml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cluster = start_cluster(tmp_path, ["420700"], start=False)
    config = cluster.fed / "420700" / "node.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[storage]\n", "[storage]\ndatabse = 'x'\n"), encoding="utf-8")
    assert "databse" in config.read_text(encoding="utf-8")
    assert main(["node", "serve", "--config", str(config)]) == 2
    assert _one_line(capsys) == (
        f"tongban node serve: {config}: unknown config key [storage] databse: "
        "did you mean database? correct or remove it"
    )


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("TONGBAN_STORGE_DATABASE", "did you mean TONGBAN_STORAGE_DATABASE? "),
        ("TONGBAN_NODE_LISTN", "did you mean TONGBAN_NODE_LISTEN? "),
        ("TONGBAN_HAL", "did you mean TONGBAN_HALL? "),
        ("TONGBAN_COLOUR", ""),
    ],
)
def test_an_unknown_tongban_variable_is_refused_by_every_command(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    suggestion: str,
) -> None:
    monkeypatch.setenv(name, "postgresql://relay@db/tongban")
    expected = f"tongban: unknown environment variable {name}: {suggestion}correct or unset it"
    assert main(["node", "serve", "--config", str(tmp_path / "node.toml")]) == 2
    assert _one_line(capsys) == expected
    assert main(["hall", "--profile", str(tmp_path), "inbox"]) == 2
    assert _one_line(capsys) == expected


def test_a_misspelt_database_variable_does_not_start_a_node_on_sqlite(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path, ["420700"], start=False)
    config = cluster.fed / "420700" / "node.toml"
    done = subprocess.run(
        [sys.executable, "-m", "tongban.cli.main", "node", "serve", "--config", str(config)],
        env=_environ(TONGBAN_STORGE_DATABASE="postgresql://relay@db/tongban"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (2, "")
    assert done.stdout == (
        "tongban: unknown environment variable TONGBAN_STORGE_DATABASE: "
        "did you mean TONGBAN_STORAGE_DATABASE? correct or unset it\n"
    )
    assert not (cluster.fed / "420700" / "var").exists()


@pytest.mark.parametrize("which", ["listen", "public_listen"])
def test_a_port_already_in_use(tmp_path: Path, which: str) -> None:
    cluster = start_cluster(tmp_path, ["420700"], start=False)
    config = cluster.fed / "420700" / "node.toml"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = f"127.0.0.1:{holder.getsockname()[1]}"
        done = subprocess.run(
            [sys.executable, "-m", "tongban.cli.main", "node", "serve", "--config", str(config)],
            env=_environ(**{f"TONGBAN_NODE_{which.upper()}": busy}),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2
    # The log may say what the node noticed on its way up (a calendar year it does not
    # know, say); nothing on it is an error, and no traceback.
    for line in done.stderr.splitlines():
        assert re.match(r"\d{4}-\d\d-\d\d [\d:,]+ (INFO|WARNING) tongban\.", line), line
    assert done.stdout == (
        f"tongban node serve: cannot listen on {busy}: the address is in use by another "
        f"program; stop that program or choose a free port ([node] {which} in node.toml)\n"
    )


def _submitted_case(cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    assert main(_submit_args(_hall(cluster, "420700"))) == 0
    out = capsys.readouterr().out
    packet = re.search(r"packet (\S+)", out).group(1)  # type: ignore[union-attr]
    case = re.search(r"case\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    return packet, case


def test_a_short_or_mistyped_case_id(cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    _, case = _submitted_case(cluster, capsys)
    ez = _hall(cluster, "420700")
    assert main(["hall", "--profile", ez, "case", case[:3]]) == 2
    assert _one_line(capsys) == (
        f"tongban hall: INVALID_ARGUMENT: invalid-request: case id '{case[:3]}' is too short: "
        "give at least 4 characters; copy it from `tongban hall inbox`"
    )
    typo = ("0" if case[0] != "0" else "1") + case[1:8]
    assert main(["hall", "--profile", ez, "case", typo]) == 2
    assert _one_line(capsys) == (
        f"tongban hall: NOT_FOUND: not-found: hall 420700-hall-1 has no case whose id starts "
        f"'{typo}'; copy it from `tongban hall inbox`"
    )
    assert main(["hall", "--profile", ez, "case", "case-1"]) == 2
    assert _one_line(capsys) == (
        "tongban hall: INVALID_ARGUMENT: invalid-request: case id 'case-1' is not an id "
        "(ids are hex digits and hyphens); copy it from `tongban hall inbox`"
    )
