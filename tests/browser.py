"""Headless Chromium from Debian's ``chromium`` package, driven by Playwright.

Playwright's own browser downloads are never used: the tests run the browser the system
installed (scripts/setup.sh installs it), at ``TONGBAN_CHROMIUM`` or ``chromium`` on PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image

from tests.availability import require_programs, unavailable

REPO = Path(__file__).resolve().parent.parent
PHONE = {"width": 360, "height": 740}


def chromium_path() -> str:
    explicit = os.environ.get("TONGBAN_CHROMIUM")
    if explicit:
        return explicit
    require_programs("chromium", install="apt-get install chromium (scripts/setup.sh does)")
    path = shutil.which("chromium")
    assert path is not None
    return path


@contextmanager
def headless_chromium() -> Iterator[object]:
    """A Playwright Browser on the system's Chromium."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - the dev extra installs it
        unavailable(f"playwright is not installed: {exc}")
    executable = chromium_path()
    with sync_playwright() as p:
        # No sandbox: the tests may run as root in a container, where Chromium's needs one
        # the kernel does not give.
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


def qr_codes_in_pdf(pdf: bytes, *, dpi: int = 200) -> list[str]:
    """The texts of the QR codes on a PDF's first page, rendered by poppler's pdftoppm and
    decoded by zxing-cpp."""
    import zxingcpp

    require_programs("pdftoppm", install="apt-get install poppler-utils")
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "sealed.pdf"
        source.write_bytes(pdf)
        subprocess.run(
            [
                "pdftoppm",
                "-png",
                "-r",
                str(dpi),
                "-singlefile",
                str(source),
                str(Path(tmp) / "page"),
            ],
            capture_output=True,
            check=True,
        )
        image = Image.open(Path(tmp) / "page.png")
        image.load()
    return [
        r.text for r in zxingcpp.read_barcodes(image) if r.format == zxingcpp.BarcodeFormat.QRCode
    ]


def screenshot_folder(tmp: Path) -> Path:
    """docs/screenshots when TONGBAN_SCREENSHOTS=docs (to refresh the committed ones),
    else a temporary folder, so that a test run leaves the work tree as it was."""
    if os.environ.get("TONGBAN_SCREENSHOTS") == "docs":
        folder = REPO / "docs" / "screenshots"
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return tmp
