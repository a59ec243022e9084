"""Properties of object keys: the store accepts exactly the keys its documented rule
allows, and an accepted key never names a file outside the store's root."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tongban.storage.objects import FilesystemObjectStore, InvalidObjectKey


def key_is_valid(key: str) -> bool:
    """The rule of storage/objects.py, written out independently: a relative,
    slash-separated name of at most 1024 UTF-8 bytes whose segments are non-empty, not
    '.' or '..', not '.partial-…', at most 255 bytes, without backslash or control
    characters."""
    if not key or key.startswith("/") or "\\" in key:
        return False
    if any(ord(c) < 0x20 or ord(c) == 0x7F or 0xD800 <= ord(c) <= 0xDFFF for c in key):
        return False
    if len(key.encode("utf-8")) > 1024:
        return False
    return all(
        segment not in {"", ".", ".."}
        and not segment.startswith(".partial-")
        and len(segment.encode("utf-8")) <= 255
        for segment in key.split("/")
    )


# Segments built from the characters that matter, so that the edge cases come up often.
segments = st.one_of(
    st.sampled_from(["", ".", "..", ".partial-x", "...", ".a", "a.", "x" * 255, "案" * 86]),
    st.text(st.sampled_from("ab./\\\x00\x7f案 -_"), max_size=6),
    st.text(max_size=6),
)
keys = st.lists(segments, min_size=1, max_size=5).map("/".join) | st.text(max_size=30)

SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(key=keys)
@example(key="a/b")
@example(key="../x")
@example(key="a/" + "b" * 255)
@example(key="/".join(["x" * 255] * 4) + "/" + "y" * 4)  # 1024 bytes exactly
@example(key="/".join(["x" * 255] * 4) + "/" + "y" * 5)  # one byte more
def test_exactly_the_valid_keys_are_accepted(tmp_path: Path, key: str) -> None:
    store = FilesystemObjectStore(tmp_path / "root")
    if key_is_valid(key):
        assert not store.exists(key)
    else:
        with pytest.raises(InvalidObjectKey):
            store.exists(key)


@settings(SETTINGS, max_examples=100)  # each example writes and fsyncs a file
@given(key=keys.filter(key_is_valid))
def test_an_accepted_key_stays_inside_the_root_and_round_trips(tmp_path: Path, key: str) -> None:
    root = tmp_path / "root"
    with FilesystemObjectStore(root) as store:
        store.put_bytes(key, key.encode())
        try:
            written = [p for p in tmp_path.rglob("*") if p.is_file()]
            assert [p.relative_to(root).as_posix() for p in written] == [key]
            assert store.read_bytes(key) == key.encode()
            assert list(store.list_keys("")) == [key]
        finally:
            store.delete(key)
    assert list(root.iterdir()) == []


@SETTINGS
@given(prefix=keys | st.just(""))
def test_a_prefix_is_a_valid_key_or_empty_with_an_optional_trailing_slash(
    tmp_path: Path, prefix: str
) -> None:
    store = FilesystemObjectStore(tmp_path / "root")
    stem = prefix[:-1] if prefix.endswith("/") else prefix
    if prefix == "" or key_is_valid(stem):
        assert list(store.list_keys(prefix)) == []
    else:
        with pytest.raises(InvalidObjectKey):
            store.list_keys(prefix)
