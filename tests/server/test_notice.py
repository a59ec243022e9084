"""The default-approval notice: a matter's own template filled with the case's data, set
as a PDF whose text reads back in Chinese."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tongban.server.domain.matters import NOTICE_FIELDS, Matter
from tongban.server.usecases.notice_pdf import fill_notice, render_notice_pdf

FIELDS = {f: f"<{f}>" for f in NOTICE_FIELDS} | {
    "case_id": "6b1f0f7e-0000-4000-8000-000000000001",
    "matter_name": "异地办理营业执照变更登记",
    "decided_date": "2026年12月18日",
}


def matter(template: str = "") -> Matter:
    return Matter(
        code="HB-ODA-01",
        name="异地办理营业执照变更登记",
        lead="市场监督管理局",
        pilots=(),
        cooperating=(),
        promised_days=3,
        legal_days=15,
        notice_template=template,
    )


def test_a_matter_template_is_filled_with_the_case_data() -> None:
    text = fill_notice(
        matter("准予许可决定书\n${matter_name}：${case_id}，$$0，${decided_date}起生效"), FIELDS
    )
    assert text == (
        "准予许可决定书\n异地办理营业执照变更登记：6b1f0f7e-0000-4000-8000-000000000001，$0，"
        "2026年12月18日起生效"
    )


def test_the_default_template_names_the_case_and_the_rule() -> None:
    text = fill_notice(matter(), FIELDS)
    assert text.startswith("默认许可决定书\n")
    assert "案件编号：6b1f0f7e-0000-4000-8000-000000000001" in text
    assert "超时默认、自动用印" in text
    assert "承诺办结时限：<promised_days>个工作日，至<due_date>届满" in text
    assert "$" not in text  # every placeholder filled


def test_every_field_must_be_given() -> None:
    with pytest.raises(ValueError, match=r"notice fields \['due_date'\] are not given"):
        fill_notice(matter(), {k: v for k, v in FIELDS.items() if k != "due_date"})


def test_the_pdf_reads_back_in_chinese(tmp_path: Path) -> None:
    if shutil.which("pdftotext") is None:
        pytest.fail("pdftotext (poppler-utils) is needed; scripts/setup.sh installs it")
    pdf = render_notice_pdf(fill_notice(matter(), FIELDS))
    assert pdf.startswith(b"%PDF-")
    path = tmp_path / "notice.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(
        ["pdftotext", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "默认许可决定书" in text
    assert "案件编号：6b1f0f7e-0000-4000-8000-000000000001" in text
    assert "异地办理营业执照变更登记" in text
