"""The verification site in a real browser: from the QR code on a PDF the node sealed to
the words a phone shows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import PHONE, headless_chromium, qr_codes_in_pdf, screenshot_folder
from tests.fixtures_seal import append_incremental_update
from tests.web_site import SEAL_NAME, SiteNode, start_site_node

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SiteNode]:
    node = start_site_node(tmp_path_factory.mktemp("browser-site"))
    yield node
    node.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with headless_chromium() as b:
        yield b


def _phone(browser: Any) -> Any:
    # The site presents the node's TLS certificate, issued by the federation's own root for
    # the node's name: a browser cannot know that root, so certificate errors are ignored
    # here (the httpx tests check the chain against the root).
    return browser.new_context(
        viewport=PHONE,
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        ignore_https_errors=True,
        locale="zh-CN",
    )


def _fits(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_qr_code_opens_the_page_that_says_valid_then_revoked(
    site: SiteNode, browser: Any, tmp_path: Path
) -> None:
    identifier, sealed = site.seal_pdf("Business licence 2026-0042", name="营业执照（副本）.pdf")
    [url] = qr_codes_in_pdf(sealed)
    assert url.startswith(f"{site.base_url}/v?ecert=")
    context = _phone(browser)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    response = page.goto(url)
    assert response is not None and response.status == 200
    assert page.inner_text("#verdict .word") == "有效"
    assert page.inner_text("#verdict .etsi") == "VALID"
    assert "营业执照（副本）.pdf" in page.inner_text("main")
    assert SEAL_NAME in page.inner_text("main")
    # The shipped style sheet applied (no CDN, no inline style): the verdict is green, large.
    color, size = page.eval_on_selector(
        "#verdict", "e => [getComputedStyle(e).color, getComputedStyle(e).fontSize]"
    )
    assert (color, size) == ("rgb(11, 107, 43)", "40px")
    assert _fits(page), "the page scrolls sideways at 360 px"
    assert page.locator("h1").count() == 1 and page.locator("label[for=document]").count() == 1
    assert errors == []
    page.screenshot(path=str(screenshot_folder(tmp_path) / "verify-page-phone.png"), full_page=True)

    site.admin().change_ecert_status(identifier, "revoked", "许可证被依法吊销")
    page.reload()
    assert page.inner_text("#verdict .word") == "无效"
    status = page.inner_text("dd.status")
    assert status.startswith("已撤销") and "原因：许可证被依法吊销" in status
    assert page.inner_text(".verdict .reason") == "电子证照已被撤销"
    context.close()


def test_tampered_upload_reads_invalid_with_the_reason(
    site: SiteNode, browser: Any, tmp_path: Path
) -> None:
    _, sealed = site.seal_pdf("Business licence 2026-0043")
    tampered = tmp_path / "营业执照.pdf"
    tampered.write_bytes(append_incremental_update(sealed))
    genuine = tmp_path / "genuine.pdf"
    genuine.write_bytes(sealed)
    context = _phone(browser)
    page = context.new_page()
    page.goto(site.base_url + "/")
    assert _fits(page)
    page.set_input_files("#document", str(genuine))
    page.click("button[type=submit] >> nth=1")
    assert page.inner_text("#verdict .word") == "有效"
    page.goto(site.base_url + "/")
    page.set_input_files("#document", str(tampered))
    page.click("button[type=submit] >> nth=1")
    assert page.inner_text("#verdict .word") == "无效"
    assert page.inner_text("#verdict .etsi") == "INVALID / HASH_FAILURE"
    assert page.inner_text(".verdict .reason") == "文件内容与签章不符：文件在盖章后被改动过"
    assert _fits(page)
    page.screenshot(
        path=str(screenshot_folder(tmp_path) / "upload-invalid-phone.png"), full_page=True
    )
    context.close()


def test_operations_view_for_an_admin_certificate(
    site: SiteNode, browser: Any, tmp_path: Path
) -> None:
    admin = site.fed / "420100" / "admins" / "420100-admin"
    context = browser.new_context(
        viewport={"width": 1024, "height": 800},
        ignore_https_errors=True,
        locale="zh-CN",
        client_certificates=[
            {
                "origin": site.base_url,
                "certPath": str(admin / "cert.pem"),
                "keyPath": str(admin / "key.pem"),
            }
        ],
    )
    page = context.new_page()
    response = page.goto(site.base_url + "/ops")
    assert response is not None and response.status == 200
    assert page.inner_text("h1") == "运维概况"
    assert "管理员 420100-admin" in page.inner_text("main")
    page.screenshot(path=str(screenshot_folder(tmp_path) / "operations-view.png"), full_page=True)
    context.close()
    anonymous = _phone(browser)
    page = anonymous.new_page()
    response = page.goto(site.base_url + "/ops")
    assert response is not None and response.status == 403
    assert page.inner_text("h1") == "需要管理员证书"
    anonymous.close()
