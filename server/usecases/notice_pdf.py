"""The default-approval notice (默认许可决定书) as a PDF with the case's data in Chinese.

The matter's template (``${field}`` placeholders, see
:data:`~tongban.server.domain.matters.NOTICE_FIELDS`) is filled and set in a CJK font
(the one seal images use); the first line is the title. The PDF is then sealed (PAdES)
like every result.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Mapping

from tongban.server.domain.matters import NOTICE_FIELDS, Matter
from tongban.server.usecases.seal_image import find_cjk_font

__all__ = ["fill_notice", "render_notice_pdf"]


def fill_notice(matter: Matter, fields: Mapping[str, str]) -> str:
    """The notice text of ``matter`` with ``fields`` filled in (every known field given)."""
    missing = sorted(NOTICE_FIELDS - set(fields))
    if missing:
        raise ValueError(f"notice fields {missing} are not given")
    return string.Template(matter.notice).substitute(fields)


def render_notice_pdf(text: str) -> bytes:
    """A one-or-more-page A4 PDF of ``text``: the first line as the title, centred."""
    from fpdf import FPDF

    # fontTools reports the font's bitmap tables it drops from the subset; nothing is lost.
    logging.getLogger("fontTools.subset").setLevel(logging.ERROR)
    pdf = FPDF(format="A4")
    pdf.set_margins(25, 30, 25)
    pdf.set_creator("tongban")
    pdf.set_title("默认许可决定书")
    pdf.add_page()
    font = find_cjk_font()
    pdf.add_font("cjk", fname=str(font), collection_font_number=0)
    title, _, body = text.partition("\n")
    pdf.set_font("cjk", size=20)
    pdf.cell(0, 16, title.strip(), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    pdf.set_font("cjk", size=12)
    for line in body.splitlines():
        pdf.multi_cell(0, 8, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
