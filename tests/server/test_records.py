"""Re-cutting a stored object's byte stream into delivery records."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tongban.server.usecases.outgoing import records_of as _records


@given(
    chunks=st.lists(st.binary(max_size=40), max_size=12),
    size=st.integers(min_value=1, max_value=16),
)
def test_records_are_the_stream_cut_into_equal_pieces(chunks: list[bytes], size: int) -> None:
    data = b"".join(chunks)
    expected = [data[i : i + size] for i in range(0, len(data), size)]
    assert list(_records(chunks, size)) == expected


def test_a_chunk_of_exactly_one_record_passes_through_uncopied() -> None:
    record = b"r" * 8
    out = list(_records([record, b"abc", b"defgh", record], 8))
    assert out == [record, b"abcdefgh", record]
    assert out[0] is record
