"""Tests of tongban.server.domain.matters: the bundled catalogue, lookups and file validation."""

from __future__ import annotations

import dataclasses
import doctest
import json
from pathlib import Path
from typing import Any

import pytest

from tongban.server.domain import matters as matters_module
from tongban.server.domain.matters import (
    Matter,
    MatterCatalog,
    MatterCatalogInvalid,
    MatterError,
    MatterNameMismatch,
    UnknownMatter,
)


@pytest.fixture(scope="module")
def catalog() -> MatterCatalog:
    return MatterCatalog.load_default()


def entry(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "code": "T-01",
        "name": "测试事项",
        "lead": "测试局",
        "pilots": [],
        "cooperating": [],
        "promised_days": 3,
        "legal_days": 10,
    }
    base.update(changes)
    return base


def document(*entries: dict[str, Any], **top: Any) -> str:
    return json.dumps({"matters": list(entries), **top}, ensure_ascii=False)


# --- the bundled catalogue -------------------------------------------------------------


def test_default_catalogue_has_the_19_joint_matters_and_the_remote_ones(
    catalog: MatterCatalog,
) -> None:
    codes = [m.code for m in catalog]
    joint = [c for c in codes if not c.startswith("HB-ODA-")]
    assert joint == [f"HB-2020-{n:02d}" for n in range(1, 10)] + [
        f"HB-2021-{n:02d}" for n in range(1, 11)
    ]
    assert [c for c in codes if c.startswith("HB-ODA-")] == [f"HB-ODA-{n:02d}" for n in range(1, 6)]
    assert len(catalog) == 24


def test_default_catalogue_entries(catalog: MatterCatalog) -> None:
    restaurant = catalog.get("HB-2020-09")
    assert restaurant.name == "我要开饭店"
    assert restaurant.lead == "省市场监管局"
    assert restaurant.pilots == ("鄂州市",)
    assert restaurant.cooperating == ("应急", "公安", "住建(城管)", "环保", "税务")
    assert restaurant.joint
    assert not restaurant.illustrative
    assert catalog.get("HB-2021-10").name == "企业缴纳税费"
    licence = catalog.get("HB-ODA-01")
    assert licence.name == "异地办理营业执照变更登记"
    assert not licence.joint
    assert licence.illustrative


def test_default_catalogue_limits_are_consistent(catalog: MatterCatalog) -> None:
    for matter in catalog:
        assert 0 <= matter.promised_days <= matter.legal_days, matter.code
        assert matter.joint == (not matter.code.startswith("HB-ODA-")), matter.code


def test_bundled_file_says_the_limits_are_illustrative() -> None:
    path = Path(matters_module.__file__).with_name("matters.json")
    about = json.loads(path.read_text("utf-8"))["about"]
    assert "illustrative" in about
    assert "not an official limit" in about or "none is an official limit" in about


# --- lookups ---------------------------------------------------------------------------


def test_unknown_code(catalog: MatterCatalog) -> None:
    with pytest.raises(UnknownMatter) as caught:
        catalog.get("HB-2020-99")
    assert str(caught.value) == "unknown matter code 'HB-2020-99'"
    assert caught.value.code == "unknown-matter"
    assert caught.value.matter_code == "HB-2020-99"
    assert isinstance(caught.value, MatterError)
    with pytest.raises(UnknownMatter):
        catalog.check("hb-2020-09")


def test_check_accepts_the_right_name_or_none(catalog: MatterCatalog) -> None:
    assert catalog.check("HB-2020-09").code == "HB-2020-09"
    assert catalog.check("HB-2020-09", "我要开饭店").code == "HB-2020-09"
    # Full-width brackets and surrounding blanks are the same name.
    assert catalog.check("HB-2020-05", " 我要办一级以下医疗机构（诊所除外） ").code == "HB-2020-05"


def test_check_rejects_another_name(catalog: MatterCatalog) -> None:
    with pytest.raises(MatterNameMismatch) as caught:
        catalog.check("HB-2020-09", "我要开药店")
    assert str(caught.value) == "matter HB-2020-09 is named '我要开饭店', not '我要开药店'"
    assert caught.value.code == "matter-name-mismatch"
    assert caught.value.given_name == "我要开药店"


def test_contains(catalog: MatterCatalog) -> None:
    assert "HB-ODA-03" in catalog
    assert "HB-ODA-99" not in catalog
    assert 42 not in catalog


def test_matter_is_frozen(catalog: MatterCatalog) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        catalog.get("HB-2020-09").name = "x"  # type: ignore[misc]


# --- catalogue files -------------------------------------------------------------------


def test_from_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "matters.json"
    path.write_text(
        document(entry(), entry(code="T-02", cooperating=["税务"], illustrative=True)),
        "utf-8",
    )
    loaded = MatterCatalog.from_file(path)
    assert len(loaded) == 2
    assert loaded.get("T-02") == Matter(
        code="T-02",
        name="测试事项",
        lead="测试局",
        pilots=(),
        cooperating=("税务",),
        promised_days=3,
        legal_days=10,
        illustrative=True,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "test is not JSON: "),
        ("[]", 'test: the document must be an object with a "matters" list'),
        (document(extra=1), "test: unknown top-level keys ['extra']"),
        (document(entry(), entry()), "test: matter code T-01 appears twice"),
        (document("x"), "test: matters[0] must be an object"),  # type: ignore[arg-type]
        (document(entry(days=3)), "test: matters[0] has unknown keys ['days']"),
        (
            document({"code": "T-01", "name": "x"}),
            "test: matters[0] lacks keys ['cooperating', 'lead', 'legal_days', 'pilots', "
            "'promised_days']",
        ),
        (
            document(entry(legal_days="10")),
            "test: matters[0].legal_days must be of type int",
        ),
        (
            document(entry(promised_days=True)),
            "test: matters[0].promised_days must be of type int",
        ),
        (document(entry(pilots=[1])), "test: matters[0].pilots must be a list of strings"),
        (
            document(entry(promised_days=11)),
            "test: matter T-01 must have 0 <= promised_days <= legal_days and legal_days > 0, "
            "got 11 and 10",
        ),
        (
            document(entry(promised_days=-1)),
            "test: matter T-01 must have 0 <= promised_days <= legal_days and legal_days > 0, "
            "got -1 and 10",
        ),
        (
            document(entry(code="hb 1")),
            "test: matter code 'hb 1' must be uppercase letters and digits joined by '-', "
            "at most 32 characters",
        ),
        (document(entry(name=" ")), "test: matter T-01 needs a name and a lead department"),
    ],
)
def test_invalid_catalogues(text: str, message: str) -> None:
    with pytest.raises(MatterCatalogInvalid) as caught:
        MatterCatalog.from_json(text, source="test")
    assert caught.value.message.startswith(message)
    assert caught.value.code == "matter-catalog-invalid"


def test_module_docstring_example_runs() -> None:
    result = doctest.testmod(matters_module)
    assert result.attempted > 0
    assert result.failed == 0
