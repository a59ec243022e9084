"""The file-name rule: a table of refusals, and properties over any text (hypothesis)."""

from __future__ import annotations

import contextlib
import unicodedata
from pathlib import Path, PurePosixPath, PureWindowsPath

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from tongban.keys.errors import BadFileName
from tongban.keys.file_names import (
    BIDI_CONTROLS,
    MAX_FILE_NAME_BYTES,
    PATH_SEPARATORS,
    WINDOWS_DEVICE_NAMES,
    DistinctFileNames,
    check_file_name,
    check_file_names,
)


def _reason(name: str) -> str:
    with pytest.raises(BadFileName) as exc:
        check_file_name(name)
    return exc.value.message


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "file name '' is empty"),
        (".", "file name '.' is '.' or '..'"),
        ("..", "file name '..' is '.' or '..'"),
        ("a/b", "file name 'a/b' contains a path separator '/'"),
        ("a\\b", "file name 'a\\\\b' contains a path separator '\\\\'"),
        ("C:x", "file name 'C:x' contains a path separator ':'"),
        ("a\u2215b", "file name 'a∕b' contains a path separator '∕' (U+2215)"),
        ("a\u2044b", "file name 'a⁄b' contains a path separator '⁄' (U+2044)"),
        ("a\uff0fb", "file name 'a／b' contains a path separator '／' (U+FF0F)"),
        ("a\u29f8b", "file name 'a⧸b' contains a path separator '⧸' (U+29F8)"),
        ("a\x00b", "file name 'a\\x00b' contains a control character U+0000"),
        ("a\x7fb", "file name 'a\\x7fb' contains a control character U+007F"),
        ("a\x85b", "file name 'a\\x85b' contains a control character U+0085"),
        ("a\u2028b", "file name 'a\\u2028b' contains a control character U+2028"),
        *[
            (f"x{c}y", f"file name {f'x{c}y'!r} contains a bidirectional control U+{ord(c):04X}")
            for c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
        ],
        (" ", "file name ' ' is only whitespace"),
        ("\t", "file name '\\t' contains a control character U+0009"),
        ("a.pdf ", "file name 'a.pdf ' begins or ends with whitespace"),
        ("\u3000a.pdf", "file name '\\u3000a.pdf' begins or ends with whitespace"),
        (" a.pdf", "file name ' a.pdf' begins or ends with whitespace"),
        ("a.", "file name 'a.' ends with a dot, which Windows drops"),
        ("\ud800.pdf", "file name '\\ud800.pdf' is not Unicode text (it holds a lone surrogate)"),
        ("a" * 256, f"file name '{'a' * 78}… is 256 bytes in UTF-8; the limit is 255"),
        *[
            (n, f"file name {n!r} is the Windows device name {n.split('.')[0].upper()}")
            for n in ("CON", "con", "Prn.txt", "aux.tar.gz", "nul", "COM1", "com9.pdf", "LPT1")
        ],
        ("lpt5 .txt", "file name 'lpt5 .txt' is the Windows device name LPT5"),
    ],
)
def test_refused_names(name: str, message: str) -> None:
    assert _reason(name) == message


@pytest.mark.parametrize(
    "name",
    [
        "营业执照.pdf",
        "a",
        "a.b.c.pdf",
        ".hidden",
        "CONSOLE.pdf",
        "com10.txt",
        "LPT0",
        "a" * 255,
        "证" * 85,
        "申请表（副本）.docx",
        "Ｃ.pdf",
    ],
)
def test_accepted_names(name: str) -> None:
    check_file_name(name)


def test_a_name_of_a_str_subclass_is_judged_by_its_text() -> None:
    """Names may come as a str subclass (a parser's own string type): equal text, equal verdict."""

    class Text(str):
        __slots__ = ()

    check_file_name(Text("营业执照.pdf"))
    with pytest.raises(BadFileName) as exc:
        check_file_name(Text("a.pdf "))
    assert exc.value.message == "file name 'a.pdf ' begins or ends with whitespace"


def test_what_a_name_is_must_be_named() -> None:
    """The label in the message is never taken for the name itself."""
    with pytest.raises(TypeError, match=r"takes 1 positional argument but 2 were given"):
        check_file_name("a.pdf", "form")  # type: ignore[misc]
    with pytest.raises(TypeError, match=r"takes 2 positional arguments but 3 were given"):
        DistinctFileNames().add("a.pdf", "form")  # type: ignore[misc]


def test_the_limit_is_255_bytes_of_utf8() -> None:
    check_file_name("证" * 85)  # 255 bytes
    assert _reason("证" * 85 + "a").endswith("is 256 bytes in UTF-8; the limit is 255")


def test_names_equal_after_nfc_and_case_folding_are_refused() -> None:
    check_file_names(["a.pdf", "b.pdf", "a.pdf.p7s"])
    for first, second in [("a.pdf", "A.PDF"), ("Caf\u00e9", "cafe\u0301"), ("straße", "STRASSE")]:
        with pytest.raises(BadFileName) as exc:
            check_file_names([first, "other", second])
        assert exc.value.message == (
            f"file 2 {second!r} has the same name as file 0 {first!r} "
            "(compared after NFC normalisation and case folding)"
        )


# ---- properties ---------------------------------------------------------------------------------

ANY_TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=300)
SAFE_CHAR = st.characters(
    categories=("L", "N", "Pd", "Pc"), exclude_characters="".join(PATH_SEPARATORS)
)
GOOD_NAME = st.text(SAFE_CHAR, min_size=1, max_size=60).filter(
    lambda n: n.split(".", 1)[0].rstrip(" ").upper() not in WINDOWS_DEVICE_NAMES
)
DANGEROUS = st.sampled_from(
    sorted(PATH_SEPARATORS | BIDI_CONTROLS | {"\x00", "\n", "\r", "\x1b", "\x7f", "\u2029"})
)


@given(ANY_TEXT)
@example("../../../../etc/passwd")
@example("..\\..\\x")
@example("C:\\x")
def test_an_accepted_name_is_one_plain_name_on_every_system(name: str) -> None:
    try:
        check_file_name(name)
    except BadFileName:
        return
    assert 0 < len(name.encode("utf-8")) <= MAX_FILE_NAME_BYTES
    assert name == name.strip() and name not in (".", "..") and not name.endswith(".")
    assert not any(c in PATH_SEPARATORS or c in BIDI_CONTROLS for c in name)
    assert not any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in name)
    assert name.split(".", 1)[0].rstrip(" ").upper() not in WINDOWS_DEVICE_NAMES
    for pure in (PurePosixPath, PureWindowsPath):
        path = pure("root") / name
        assert path.parent == pure("root") and path.name == name
    assert (Path("/srv/out") / name).parent == Path("/srv/out")


@given(GOOD_NAME)
def test_a_plain_name_is_accepted(name: str) -> None:
    assume(not name.endswith("."))
    check_file_name(name)


@given(GOOD_NAME, DANGEROUS, st.integers(min_value=0))
def test_any_separator_or_control_anywhere_refuses_the_name(
    name: str, bad: str, where: int
) -> None:
    i = where % (len(name) + 1)
    with pytest.raises(BadFileName):
        check_file_name(name[:i] + bad + name[i:])


@given(GOOD_NAME, st.sampled_from(sorted(WINDOWS_DEVICE_NAMES)), st.booleans())
def test_device_names_are_refused_with_any_extension_and_case(
    ext: str, device: str, lower: bool
) -> None:
    stem = device.lower() if lower else device
    with pytest.raises(BadFileName):
        check_file_name(f"{stem}.{ext}")


@given(GOOD_NAME)
def test_case_and_normalisation_variants_of_a_name_collide(name: str) -> None:
    assume(not name.endswith("."))
    for variant in {name.upper(), name.lower(), unicodedata.normalize("NFD", name)}:
        try:
            check_file_name(variant)
        except BadFileName:
            continue  # the variant itself breaks the rule (it may grow, e.g. ß -> SS)
        if variant.casefold() != name.casefold() and unicodedata.normalize(
            "NFC", variant
        ) != unicodedata.normalize("NFC", name):
            continue
        with pytest.raises(BadFileName):
            check_file_names([name, variant])


@given(st.lists(ANY_TEXT, max_size=5))
def test_check_file_names_raises_nothing_but_bad_file_name(names: list[str]) -> None:
    with contextlib.suppress(BadFileName):
        check_file_names(names)
