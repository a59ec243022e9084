"""The demo is the main job a newcomer runs; it must pass from start to end."""

from __future__ import annotations

import pytest

from tongban.cli.main import main


@pytest.mark.slow
def test_demo_runs_both_cases_and_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "openssl Verification successful, tongban VALID" in out.replace("\n", " ")
    assert "aggregate: decided (complete=True)" in out
    assert "demo complete: every step verified" in out
