"""What the site asks of whoever answers it: a running node, or a node's published lists."""

from __future__ import annotations

from typing import BinaryIO, Protocol

from tongban.keys.verification import SealVerificationReport
from tongban.server.web.ecert_view import ECertView

__all__ = ["VerificationBackend"]


class VerificationBackend(Protocol):
    """Answers the verification site's two questions.

    Both raise ``ECertIdentifierError`` for a malformed identifier, ``NotFound`` for one the
    backend does not know and ``Unavailable`` when it cannot answer now; never a report
    that claims more than was checked.
    """

    @property
    def site_name(self) -> str:
        """Whose site this is, for the page header."""
        ...

    def ecert(self, identifier: str) -> ECertView:
        """The records of one e-certificate and the report over them."""
        ...

    def verify(self, document: BinaryIO, seal: bytes | None) -> SealVerificationReport:
        """Verify an uploaded sealed PDF, or a file with its detached ``.p7s``."""
        ...
