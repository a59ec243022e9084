"""Drawing a seal's picture: the round red seal with its name around the edge and a star.

A node draws it when an admin registers a seal without a picture; the command line draws it
for a preview. Drawing needs a CJK font: ``TONGBAN_SEAL_FONT``, or one of the usual system
fonts (Debian: ``apt-get install fonts-wqy-zenhei``).
"""

from __future__ import annotations

import io
import math
import os
import shutil
import subprocess
from pathlib import Path

import asn1crypto.tsp  # noqa: F401

from tongban.keys.errors import CallerError

__all__ = ["FONT_ENV_VAR", "SEAL_RED", "SealFontMissingError", "find_cjk_font", "render_seal_image"]


FONT_ENV_VAR = "TONGBAN_SEAL_FONT"

SEAL_RED = (230, 0, 18, 255)

# Well-known places of CJK fonts (Debian fonts-wqy-zenhei / fonts-noto-cjk / arphic,
# macOS, Windows), tried before asking fontconfig.
_FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Bold.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/System/Library/Fonts/STHeiti Medium.ttc",
    "/System/Library/Fonts/PingFang.ttc",
    "C:/Windows/Fonts/simsun.ttc",
    "C:/Windows/Fonts/simhei.ttf",
)


class SealFontMissingError(CallerError):
    """No font with Chinese characters is available to draw a seal image."""

    code = "seal-font-missing"


def find_cjk_font(font_path: Path | None = None) -> Path:
    """Locate a font that has Chinese characters.

    Tried in order: ``font_path``, the ``TONGBAN_SEAL_FONT`` environment variable, a few
    well-known locations, then ``fc-list :lang=zh``.

    Raises:
        SealFontMissingError: none found.
    """
    if font_path is not None:
        if not font_path.is_file():
            raise SealFontMissingError(f"seal font {font_path} does not exist")
        return font_path
    configured = os.environ.get(FONT_ENV_VAR)
    if configured:
        if not Path(configured).is_file():
            raise SealFontMissingError(f"{FONT_ENV_VAR}={configured} does not exist")
        return Path(configured)
    for candidate in _FONT_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    fc_list = shutil.which("fc-list")
    if fc_list:
        try:
            listing = subprocess.run(
                [fc_list, ":lang=zh", "file"],
                check=False,
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            listing = ""
        for line in sorted(listing.splitlines()):
            path = Path(line.split(":", 1)[0].strip())
            if path.suffix.lower() in (".ttf", ".ttc", ".otf") and path.is_file():
                return path
    raise SealFontMissingError(
        "no font with Chinese characters found to draw the seal image; install one "
        "(Debian: apt-get install fonts-wqy-zenhei or fonts-noto-cjk), set "
        f"{FONT_ENV_VAR} to a .ttf/.ttc/.otf file, or pass a seal image"
    )


def _star(cx: float, cy: float, outer: float) -> list[tuple[float, float]]:
    inner = outer * 0.382  # the golden-ratio inner radius of a regular pentagram
    points = []
    for i in range(10):
        radius = outer if i % 2 == 0 else inner
        angle = math.pi * i / 5
        points.append((cx + radius * math.sin(angle), cy - radius * math.cos(angle)))
    return points


def render_seal_image(name: str, *, size: int = 480, font_path: Path | None = None) -> bytes:
    """Draw the round red seal: ``name`` along the upper rim, a star in the centre; PNG.

    Raises:
        CallerError: an empty name or a size below 120 px.
        SealFontMissingError: no CJK font is found.
    """
    from PIL import Image, ImageDraw, ImageFont

    if not name.strip():
        raise CallerError("seal name is empty")
    if size < 120:
        raise CallerError(f"seal image size {size} px is too small; use at least 120")
    font_file = find_cjk_font(font_path)
    image = Image.new("RGBA", (size, size), (255, 255, 255, 0))
    draw = ImageDraw.Draw(image)
    centre = size / 2
    ring = size * 0.035
    outer = size / 2 - 2
    draw.ellipse(
        (centre - outer, centre - outer, centre + outer, centre + outer),
        outline=SEAL_RED,
        width=round(ring),
    )
    draw.polygon(_star(centre, centre, size * 0.17), fill=SEAL_RED)
    # Characters sit evenly on an arc over the top, as on a GA 241 official seal; long
    # names get smaller characters rather than a wider arc.
    chars = [c for c in name if not c.isspace()]
    span = math.radians(min(250.0, 32.0 * len(chars)))
    font_size = size * 0.14
    text_radius = outer - ring - font_size * 0.65
    font_size = min(font_size, text_radius * span / len(chars) * 0.92)
    text_radius = outer - ring - font_size * 0.62
    try:
        font = ImageFont.truetype(str(font_file), size=round(font_size))
    except OSError as exc:
        raise SealFontMissingError(f"cannot load seal font {font_file}: {exc}") from None
    cell = round(font_size * 1.5)
    for i, char in enumerate(chars):
        theta = -span / 2 + span * (i + 0.5) / len(chars)
        glyph = Image.new("RGBA", (cell, cell), (255, 255, 255, 0))
        ImageDraw.Draw(glyph).text(
            (cell / 2, cell / 2),
            char,
            font=font,
            fill=SEAL_RED,
            anchor="mm",
            stroke_width=max(1, round(font_size / 28)),
            stroke_fill=SEAL_RED,
        )
        glyph = glyph.rotate(-math.degrees(theta), resample=Image.Resampling.BICUBIC)
        x = centre + text_radius * math.sin(theta) - cell / 2
        y = centre - text_radius * math.cos(theta) - cell / 2
        image.alpha_composite(glyph, dest=(round(x), round(y)))
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
