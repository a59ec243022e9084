"""``tongban calendar`` and ``tongban matters`` on a node's database: seeding, edits,
versions, and refused input that changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tongban.cli.main import main

MINIMAL = """
[node]
id = "420700"
[tls]
cert = "tls/node.pem"
key = "tls/node-key.pem"
root = "root.pem"
[federation]
directory = "directory.json"
[keys]
dir = "keys"
"""


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "node.toml"
    path.write_text(MINIMAL, encoding="utf-8")
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def year_json(capsys: pytest.CaptureFixture[str], config: str, year: int) -> dict[str, object]:
    code, out, _ = run(capsys, "calendar", "show", str(year), "--config", config, "--json")
    assert code == 0
    result: dict[str, object] = json.loads(out)
    return result


def test_calendar_is_seeded_from_the_package(
    capsys: pytest.CaptureFixture[str], config: str
) -> None:
    code, out, _ = run(capsys, "calendar", "show", "2026", "--config", config)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "2026: known (from chinese-calendar)"
    assert "2026-02-14 Sat workday  Spring Festival" in lines
    assert "2026-02-16 Mon holiday  Spring Festival" in lines
    assert "2026-10-10 Sat workday  National Day" in lines
    assert "2026-09-20 Sun workday  National Day" in lines
    code, out, _ = run(capsys, "calendar", "show", "2027", "--config", config)
    assert out == (
        "2027: NOT KNOWN - deadlines in 2027 are counted on weekends only and shown as uncertain\n"
    )


def test_calendar_import_completes_a_year(
    capsys: pytest.CaptureFixture[str], config: str, tmp_path: Path
) -> None:
    f = tmp_path / "2027.json"
    f.write_text(
        json.dumps(
            {
                "years": [2027],
                "holidays": [{"date": "2027-10-01", "name": "国庆节"}],
                "workdays": [{"date": "2027-10-09", "name": "国庆节调休"}],
            }
        ),
        encoding="utf-8",
    )
    code, out, _ = run(capsys, "calendar", "import", str(f), "--config", config)
    assert (code, out) == (0, f"calendar years 2027 imported from {f}\n")
    doc = year_json(capsys, config, 2027)
    assert doc["known"] is True
    assert doc["days"] == [
        {"date": "2027-10-01", "kind": "holiday", "name": "国庆节"},
        {"date": "2027-10-09", "kind": "workday", "name": "国庆节调休"},
    ]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            {"years": [2027], "holidays": [{"date": "2027-02-29"}]},
            "holidays[0]: '2027-02-29' is not a date",
        ),
        (
            {"years": [2027], "holidays": [{"date": "2027-10-01"}, {"date": "2027-10-01"}]},
            "holidays[1]: 2027-10-01 is listed twice",
        ),
        (
            {
                "years": [2027],
                "holidays": [{"date": "2027-10-01"}],
                "workdays": [{"date": "2027-10-01"}],
            },
            "workdays[0]: 2027-10-01 is both a holiday and a working day",
        ),
    ],
)
def test_calendar_import_refuses_a_bad_file_and_changes_nothing(
    capsys: pytest.CaptureFixture[str],
    config: str,
    tmp_path: Path,
    doc: dict[str, object],
    message: str,
) -> None:
    before = year_json(capsys, config, 2027)
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(doc), encoding="utf-8")
    code, out, err = run(capsys, "calendar", "import", str(f), "--config", config)
    assert (code, out, err) == (1, "", f"tongban calendar import: {f}: {message}\n")
    assert year_json(capsys, config, 2027) == before


def test_calendar_set_and_its_refusals(capsys: pytest.CaptureFixture[str], config: str) -> None:
    code, out, _ = run(
        capsys, "calendar", "set", "2027-10-01", "holiday", "--name", "国庆节", "--config", config
    )
    assert (code, out) == (0, "2027-10-01 is now a holiday\n")
    doc = year_json(capsys, config, 2027)
    assert doc["known"] is False  # one day does not complete a year
    assert doc["days"] == [{"date": "2027-10-01", "kind": "holiday", "name": "国庆节"}]
    code, out, err = run(capsys, "calendar", "set", "2027-10-02", "weekend", "--config", config)
    assert (code, out, err) == (
        1,
        "",
        "tongban calendar set: a day is 'workday' or 'holiday', not 'weekend'\n",
    )
    code, out, err = run(capsys, "calendar", "set", "2027-13-01", "holiday", "--config", config)
    assert (code, err) == (2, "tongban calendar set: '2027-13-01' is not a date (YYYY-MM-DD)\n")
    assert year_json(capsys, config, 2027) == doc


def test_matters_are_seeded_listed_and_versioned(
    capsys: pytest.CaptureFixture[str], config: str, tmp_path: Path
) -> None:
    code, out, _ = run(capsys, "matters", "list", "--config", config, "--json")
    matters = {m["code"]: m for m in json.loads(out)}
    assert len(matters) == 24
    assert matters["HB-ODA-04"]["exempt"] is True and matters["HB-ODA-01"]["exempt"] is False
    assert matters["HB-ODA-01"]["deferrable"] == ["公司章程修正案"]
    assert {m["version"] for m in matters.values()} == {1}

    code, out, err = run(
        capsys, "matters", "set", "HB-ODA-01", "--promised-days", "2", "--config", config
    )
    assert code == 0, err
    assert "HB-ODA-01 异地办理营业执照变更登记 (version 2," in out
    assert "  promised: 2 working days; legal: 15 working days" in out
    code, out, _ = run(capsys, "matters", "show", "HB-ODA-01", "--config", config)
    assert [
        line.split(" by ")[0].split()[0] for line in out.split("  versions:\n")[1].splitlines()
    ] == ["1", "2"]

    code, out, _ = run(capsys, "matters", "list", "--config", config)
    assert any(line.startswith("HB-ODA-01    v2     2/15 ") for line in out.splitlines())


def _matter_json(capsys: pytest.CaptureFixture[str], config: str) -> str:
    return run(capsys, "matters", "list", "--config", config, "--json")[1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--promised-days", "25"],
            "matter HB-ODA-01 must have 0 <= promised_days <= legal_days and legal_days > 0, "
            "got 25 and 15",
        ),
        (
            ["--legal-days", "0"],
            "matter HB-ODA-01 must have 0 <= promised_days <= legal_days "
            "and legal_days > 0, got 3 and 0",
        ),
    ],
)
def test_matters_set_refuses_impossible_limits(
    capsys: pytest.CaptureFixture[str], config: str, argv: list[str], message: str
) -> None:
    before = _matter_json(capsys, config)
    code, out, err = run(capsys, "matters", "set", "HB-ODA-01", *argv, "--config", config)
    assert (code, out, err) == (1, "", f"tongban matters set: {message}\n")
    assert _matter_json(capsys, config) == before


def test_a_template_with_an_unknown_field_is_refused(
    capsys: pytest.CaptureFixture[str], config: str, tmp_path: Path
) -> None:
    before = _matter_json(capsys, config)
    template = tmp_path / "notice.txt"
    template.write_text("决定书 ${case_id} ${applicant_phone}", encoding="utf-8")
    code, _, err = run(
        capsys,
        "matters",
        "set",
        "HB-ODA-01",
        "--notice-template",
        str(template),
        "--config",
        config,
    )
    assert code == 1
    assert err.startswith(
        "tongban matters set: matter HB-ODA-01: the notice template uses unknown fields "
        "['applicant_phone']; known are ['accepted_date', "
    )
    template.write_text("决定书 ${case_id", encoding="utf-8")
    code, _, err = run(
        capsys,
        "matters",
        "set",
        "HB-ODA-01",
        "--notice-template",
        str(template),
        "--config",
        config,
    )
    assert (code, err) == (
        1,
        "tongban matters set: matter HB-ODA-01: the notice template has a malformed "
        "placeholder (use ${field}, and $$ for a dollar sign)\n",
    )
    code, _, err = run(capsys, "matters", "set", "HB-XX-99", "--exempt", "yes", "--config", config)
    assert (code, err) == (1, "tongban matters set: unknown matter code 'HB-XX-99'\n")
    assert _matter_json(capsys, config) == before


def test_matters_import_adds_and_changes_and_refuses_whole_files(
    capsys: pytest.CaptureFixture[str], config: str, tmp_path: Path
) -> None:
    entry = {
        "code": "T-01",
        "name": "测试事项",
        "lead": "测试局",
        "pilots": [],
        "cooperating": [],
        "promised_days": 0,
        "legal_days": 1,
        "exempt": True,
    }
    f = tmp_path / "m.json"
    f.write_text(json.dumps({"matters": [entry]}, ensure_ascii=False), encoding="utf-8")
    code, out, _ = run(capsys, "matters", "import", str(f), "--config", config)
    assert (code, out) == (0, "T-01 now version 1\n1 matters changed\n")
    code, out, _ = run(capsys, "matters", "import", str(f), "--config", config)
    assert (code, out) == (0, "0 matters changed\n")
    before = _matter_json(capsys, config)
    bad = [dict(entry, promised_days=3), dict(entry, code="T-02")]
    f.write_text(json.dumps({"matters": bad}, ensure_ascii=False), encoding="utf-8")
    code, out, err = run(capsys, "matters", "import", str(f), "--config", config)
    assert (code, out) == (1, "")
    assert err == (
        f"tongban matters import: {f}: matter T-01 must have 0 <= promised_days <= "
        "legal_days and legal_days > 0, got 3 and 1\n"
    )
    assert _matter_json(capsys, config) == before
