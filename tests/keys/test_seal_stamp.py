"""The visible stamp of a sealed PDF, as a viewer draws it: the seal picture never covers
the QR code or the e-certificate text, and the stamp stays on the page, at any page size.

Judged by rendering the sealed page with poppler's pdftoppm and reading its pixels.
"""

from __future__ import annotations

import io
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from tests.availability import require_programs
from tests.fixtures_seal import ECERT, NOW, VERIFY_URL, make_pdf, seal_image, seal_world
from tongban.keys.seals import seal_pdf

Box = tuple[int, int, int, int]


def _bbox(image: Image.Image, keep: Callable[[int, int, int], bool]) -> Box | None:
    """The smallest box around the pixels ``keep`` picks, or None when it picks none."""
    xs: list[int] = []
    ys: list[int] = []
    data = image.convert("RGB").tobytes()
    for index in range(0, len(data), 3):
        if keep(data[index], data[index + 1], data[index + 2]):
            y, x = divmod(index // 3, image.width)
            xs.append(x)
            ys.append(y)
    return (min(xs), min(ys), max(xs), max(ys)) if xs else None


def _red(r: int, g: int, b: int) -> bool:
    return r > 180 and g < 140 and b < 140


def _dark(r: int, g: int, b: int) -> bool:
    return max(r, g, b) < 110


def _render(pdf: bytes, tmp_path: Path, long_side_px: int = 900) -> Image.Image:
    require_programs("pdftoppm", install="apt-get install poppler-utils")
    source = tmp_path / "sealed.pdf"
    source.write_bytes(pdf)
    subprocess.run(
        [
            "pdftoppm",
            "-png",
            "-singlefile",
            "-scale-to",
            str(long_side_px),
            str(source),
            str(tmp_path / "page"),
        ],
        check=True,
        capture_output=True,
    )
    return Image.open(tmp_path / "page.png").convert("RGB")


@pytest.mark.parametrize(
    "media_box",
    [(595, 842), (842, 595), (420, 595), (612, 792), (300, 200), (200, 300), (2384, 3370)],
    ids=["A4", "A4-landscape", "A5", "Letter", "small-landscape", "small-portrait", "A0"],
)
def test_the_seal_picture_covers_neither_qr_code_nor_text(
    tmp_path: Path, media_box: tuple[int, int]
) -> None:
    world = seal_world()
    out = io.BytesIO()
    seal_pdf(
        make_pdf("", media_box=media_box),
        out,
        world.signer,
        world.record.certificate,
        at=NOW,
        ecert_identifier=ECERT,
        verification_url=VERIFY_URL,
        seal_image_png=seal_image(),
    )
    page = _render(out.getvalue(), tmp_path)
    red, dark = _bbox(page, _red), _bbox(page, _dark)
    assert red is not None and dark is not None, "the stamp was not drawn"
    # The QR code and the text (dark) lie wholly left of the seal picture (red).
    assert dark[2] < red[0], (dark, red)
    # Everything is on the page, clear of its edges.
    for box in (red, dark):
        assert box[0] > 0 and box[1] > 0 and box[2] < page.width - 1 and box[3] < page.height - 1
