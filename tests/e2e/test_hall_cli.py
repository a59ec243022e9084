"""The `tongban hall` and `tongban federation init` commands, end to end against live nodes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.harness import Cluster, citizen_id, delivered, wait_until
from tongban.cli.main import main


def _hall(cluster: Cluster, node: str) -> str:
    return str(cluster.fed / node / "halls" / f"{node}-hall-1")


def test_hall_commands_walk_a_case(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    form = tmp_path / "form.json"
    form.write_text(json.dumps({"变更事项": "住所"}, ensure_ascii=False), encoding="utf-8")
    scan = tmp_path / "id.jpg"
    scan.write_bytes(b"\xff\xd8" + b"x" * 5000)
    ez, wh = _hall(cluster, "420700"), _hall(cluster, "420100")
    assert (
        main(
            [
                "hall",
                "--profile",
                ez,
                "submit",
                "--matter",
                "HB-ODA-01",
                "--matter-name",
                "异地办理营业执照变更登记",
                "--to",
                "420100",
                "--applicant-name",
                "张三",
                "--id-number",
                citizen_id(),
                "--form",
                str(form),
                "--file",
                str(scan),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    packet = re.search(r"packet (\S+)", out).group(1)  # type: ignore[union-attr]
    case = re.search(r"case\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    wait_until("delivery", delivered(cluster.hall("420700"), packet))
    assert main(["hall", "--profile", wh, "fetch", packet, "--out", str(tmp_path / "got")]) == 0
    assert "ok " in capsys.readouterr().out
    assert (tmp_path / "got" / "id.jpg").read_bytes() == scan.read_bytes()
    assert main(["hall", "--profile", wh, "accept", case]) == 0
    assert main(["hall", "--profile", wh, "decide", case, "--decision", "approved"]) == 0
    capsys.readouterr()
    # An illegal step is a message and exit code 2, not a traceback.
    assert main(["hall", "--profile", wh, "refuse", case, "--reason", "太晚了"]) == 2
    assert capsys.readouterr().out.strip() == (
        "tongban hall: FAILED_PRECONDITION: illegal-transition: leg 420100 is decided; 'refused' is not allowed now"
    )
    assert main(["hall", "--profile", wh, "history", case]) == 0
    history = capsys.readouterr().out
    assert "chain intact" in history and "decided" in history
    # A bad ID number is refused before anything is sent.
    assert (
        main(
            [
                "hall",
                "--profile",
                ez,
                "submit",
                "--matter",
                "HB-ODA-01",
                "--to",
                "420100",
                "--applicant-name",
                "李四",
                "--id-number",
                "110105194912310021",
            ]
        )
        == 2
    )
    assert "check digit" in capsys.readouterr().out


def test_federation_init_refuses_a_non_empty_folder_and_bad_node_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fed"
    assert (
        main(["federation", "init", "--out", str(out), "--node", "420700", "--node", "420100"]) == 0
    )
    assert (out / "420700" / "node.toml").exists() and (out / "public" / "directory.json").exists()
    assert oct((out / "root" / "root-key.pem").stat().st_mode & 0o777) == "0o600"
    assert main(["federation", "init", "--out", str(out), "--node", "420700"]) == 2
    assert "is not empty; refusing to overwrite a federation" in capsys.readouterr().out
    assert main(["federation", "init", "--out", str(tmp_path / "other"), "--node", "999999"]) == 2
    assert capsys.readouterr().out.startswith("tongban federation init: ")
    assert not (tmp_path / "other").exists()
