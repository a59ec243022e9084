"""The one rule for the name of a material file, applied by nodes and again by the hall SDK.

A node applies it wherever a name enters (a hall's submit, a peer's delivery); the hall
SDK applies it again before it writes a file.

A good name is one plain file name that means the same thing on every system a hall may
run: not empty and at most :data:`MAX_FILE_NAME_BYTES` bytes of UTF-8; no control
character, bidirectional control or path separator (look-alikes included); no leading or
trailing whitespace and no trailing dot; not ``.`` or ``..``; not a Windows device name
(``CON``, ``PRN``, ``AUX``, ``NUL``, ``COM1``-``COM9``, ``LPT1``-``LPT9``, with any
extension, in any case). Within one packet no two names may be equal after NFC
normalisation and case folding, so no file can overwrite another on a case-insensitive disk.

Example:
    >>> check_file_name("营业执照.pdf")
    >>> check_file_name("../../etc/passwd")
    Traceback (most recent call last):
    ...
    tongban.keys.errors.BadFileName: file name '../../etc/passwd' contains a path separator '/'
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from tongban.keys.errors import BadFileName, echo

__all__ = [
    "BIDI_CONTROLS",
    "MAX_FILE_NAME_BYTES",
    "PATH_SEPARATORS",
    "WINDOWS_DEVICE_NAMES",
    "DistinctFileNames",
    "check_file_name",
    "check_file_names",
    "file_name_key",
]

# The longest name ext4, XFS, APFS and NTFS all store (NTFS counts UTF-16 units, fewer).
MAX_FILE_NAME_BYTES = 255
# Embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069) and the marks that
# reorder text as well (LRM, RLM, ALM): each can make "exe.pdf" display as "fdp.exe".
BIDI_CONTROLS = frozenset(
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
)
# Solidus and reverse solidus, and the characters that look like them.
PATH_SEPARATORS = frozenset(
    "/\\"
    "\u2215"  # DIVISION SLASH
    "\u2044"  # FRACTION SLASH
    "\uff0f"  # FULLWIDTH SOLIDUS
    "\u29f8"  # BIG SOLIDUS
    "\uff3c"  # FULLWIDTH REVERSE SOLIDUS
    "\u29f9"  # BIG REVERSE SOLIDUS
    "\u2216"  # SET MINUS
    "\ufe68"  # SMALL REVERSE SOLIDUS
    ":"  # a drive ("C:x") or an alternate data stream ("a.pdf:x") on Windows
)
WINDOWS_DEVICE_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL"}
    | {f"{port}{n}" for port in ("COM", "LPT") for n in (*"123456789", "¹", "²", "³")}
)


def _reason(name: str) -> str | None:
    """Why ``name`` breaks the rule, or None when it is a good name."""
    if not name:
        return "is empty"
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not Unicode text (it holds a lone surrogate)"
    if size > MAX_FILE_NAME_BYTES:
        return f"is {size} bytes in UTF-8; the limit is {MAX_FILE_NAME_BYTES}"
    for c in name:
        if c in PATH_SEPARATORS:
            return f"contains a path separator {c!r}" + (
                "" if c in "/\\:" else f" (U+{ord(c):04X})"
            )
        if c in BIDI_CONTROLS:
            return f"contains a bidirectional control U+{ord(c):04X}"
        if unicodedata.category(c) in ("Cc", "Zl", "Zp"):
            return f"contains a control character U+{ord(c):04X}"
    if not name.strip():
        return "is only whitespace"
    if name != name.strip():
        return "begins or ends with whitespace"
    if name in (".", ".."):
        return "is '.' or '..'"
    if name.endswith("."):
        return "ends with a dot, which Windows drops"
    stem = name.split(".", 1)[0].rstrip(" ").upper()
    if stem in WINDOWS_DEVICE_NAMES:
        return f"is the Windows device name {stem}"
    return None


def check_file_name(name: str, *, what: str = "file name") -> None:
    """Accept ``name`` only if it is one plain, portable file name.

    Raises:
        BadFileName: the name breaks the rule; the message names the reason.
    """
    reason = _reason(name)
    if reason is not None:
        raise BadFileName(f"{what} {echo(name)} {reason}")


def file_name_key(name: str) -> str:
    """What two names are compared by: NFC, case-folded (then NFC again)."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())


class DistinctFileNames:
    """The names of one packet so far, each checked and none equal to another."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, str]] = {}

    def add(self, name: str, *, what: str = "file name") -> None:
        """Check ``name`` and that no earlier name equals it.

        Raises:
            BadFileName: the name breaks the rule or repeats an earlier one.
        """
        check_file_name(name, what=what)
        key = file_name_key(name)
        earlier = self._seen.get(key)
        if earlier is not None:
            raise BadFileName(
                f"{what} {echo(name)} has the same name as {earlier[0]} {echo(earlier[1])} "
                "(compared after NFC normalisation and case folding)"
            )
        self._seen[key] = (what, name)


def check_file_names(names: Iterable[str]) -> None:
    """Check every name of one packet, and that no two are the same.

    Raises:
        BadFileName: the first name that breaks the rule or repeats an earlier one.
    """
    seen = DistinctFileNames()
    for index, name in enumerate(names):
        seen.add(name, what=f"file {index}")
