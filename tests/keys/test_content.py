"""The segment stream's trust checks, each with the exact refusal it makes."""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections import deque

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from tongban.keys.content import (
    DEFAULT_SEGMENT_SIZE,
    FORM_FILE_INDEX,
    TAG_SIZE,
    FileCipher,
    SealedSegment,
    _take,
    new_data_key,
    unwrap_data_key,
    wrap_data_key,
)
from tongban.keys.errors import BadPeerData, CallerError, DecryptionError
from tongban.keys.pki import generate_encryption_key

PACKET = uuid.UUID("6f1c2a57-0d1e-4c3b-9a8f-2b7e5d4c3a21")


@pytest.mark.parametrize("extra_is_final", [True, False], ids=["extra-final", "extra-not-final"])
def test_a_segment_after_the_final_one_is_refused(extra_is_final: bool) -> None:
    """Whoever holds the data key can seal a valid segment 1 after a final segment 0; the
    stream still ends at the final one, and nothing past it is opened."""
    key = new_data_key()
    sealer = FileCipher(key, PACKET, 0, segment_size=16)
    final = SealedSegment(0, True, sealer.seal(0, b"hello", final=True))
    extra = SealedSegment(1, extra_is_final, sealer.seal(1, b"more", final=extra_is_final))
    opener = FileCipher(key, PACKET, 0, segment_size=16)
    opened: list[bytes] = []
    with pytest.raises(BadPeerData) as refused:
        for plain in opener.decrypt_segments([final, extra]):
            opened.append(plain)
    assert type(refused.value) is BadPeerData
    assert str(refused.value) == "segment 1 follows the final segment"
    assert opened == [b"hello"]
    assert (opener.plaintext_digest.size, opener.plaintext_digest.hexdigest()) == (
        5,
        hashlib.sha256(b"hello").hexdigest(),
    )


# ---- the segment layout, as a peer of another version must find it --------------------------


def _expected_segment(
    key: bytes, packet: uuid.UUID, file_index: int, index: int, final: bool, plain: bytes
) -> bytes:
    """AES-256-GCM with the documented nonce (file index ‖ segment index ‖ final flag) and
    associated data (label ‖ packet id ‖ nonce)."""
    nonce = file_index.to_bytes(4, "big") + index.to_bytes(7, "big") + bytes([final])
    return AESGCM(key).encrypt(nonce, plain, b"tongban/v1/segment" + packet.bytes + nonce)


@pytest.mark.parametrize(
    ("file_index", "index", "final"),
    [(0, 0, True), (3, 5, False), (FORM_FILE_INDEX, (1 << 56) - 1, True)],
)
def test_segments_are_sealed_with_the_documented_nonce_and_associated_data(
    file_index: int, index: int, final: bool
) -> None:
    key = new_data_key()
    cipher = FileCipher(key, PACKET, file_index, segment_size=16)
    sealed = cipher.seal(index, b"sixteen bytes!!!", final=final)
    assert sealed == _expected_segment(key, PACKET, file_index, index, final, b"sixteen bytes!!!")
    assert cipher.open(index, sealed, final=final) == b"sixteen bytes!!!"


def test_default_and_largest_segment_sizes() -> None:
    assert FileCipher(new_data_key(), PACKET, 0).segment_size == DEFAULT_SEGMENT_SIZE == 1 << 20
    assert FileCipher(new_data_key(), PACKET, 0, segment_size=4 << 20).segment_size == 4 << 20
    assert FileCipher(new_data_key(), PACKET, 0, segment_size=1).segment_size == 1
    for size in (-1, 0, (4 << 20) + 1):
        with pytest.raises(CallerError, match=r"^segment size must be 1\.\.4194304 bytes$"):
            FileCipher(new_data_key(), PACKET, 0, segment_size=size)


def test_file_indexes_stop_at_the_form_index() -> None:
    assert FORM_FILE_INDEX == 0xFFFFFFFF
    FileCipher(new_data_key(), PACKET, FORM_FILE_INDEX)
    for index in (-1, FORM_FILE_INDEX + 1):
        with pytest.raises(CallerError, match=r"^file index out of range$"):
            FileCipher(new_data_key(), PACKET, index)


@pytest.mark.parametrize("index", [-1, 1 << 56, (1 << 56) + 1, 1 << 60])
def test_segment_indexes_outside_seven_bytes_are_refused(index: int) -> None:
    cipher = FileCipher(new_data_key(), PACKET, 0, segment_size=16)
    with pytest.raises(BadPeerData, match=rf"^segment index {index} out of range$"):
        cipher.seal(index, b"x", final=True)
    with pytest.raises(BadPeerData, match=rf"^segment index {index} out of range$"):
        cipher.open(index, bytes(TAG_SIZE), final=True)


def test_a_segment_may_hold_exactly_the_segment_size() -> None:
    cipher = FileCipher(new_data_key(), PACKET, 0, segment_size=16)
    assert len(cipher.seal(0, b"x" * 16, final=True)) == 16 + TAG_SIZE
    with pytest.raises(CallerError, match=r"^segment larger than the segment size$"):
        cipher.seal(0, b"x" * 17, final=True)


@pytest.mark.parametrize("length", [0, TAG_SIZE - 1, 16 + TAG_SIZE + 1])
def test_segments_of_impossible_length_are_refused_before_decryption(length: int) -> None:
    cipher = FileCipher(new_data_key(), PACKET, 0, segment_size=16)
    with pytest.raises(DecryptionError, match=r"^segment 2 has an impossible length$"):
        cipher.open(2, bytes(length), final=True)


@pytest.mark.parametrize("plain", [b"", b"x" * 16], ids=["empty", "full"])
def test_the_shortest_and_longest_segments_open(plain: bytes) -> None:
    key = new_data_key()
    sealed = FileCipher(key, PACKET, 0, segment_size=16).seal(0, plain, final=True)
    assert len(sealed) == len(plain) + TAG_SIZE
    assert FileCipher(key, PACKET, 0, segment_size=16).open(0, sealed, final=True) == plain


def test_a_stream_of_whole_segments_ends_with_a_full_final_segment() -> None:
    """32 bytes in 16-byte segments are two segments, the second final: no empty third."""
    key = new_data_key()
    sealer = FileCipher(key, PACKET, 0, segment_size=16)
    segs = list(sealer.encrypt_chunks([b"a" * 10, b"", b"b" * 22]))
    assert [(s.index, s.final, len(s.ciphertext)) for s in segs] == [
        (0, False, 32),
        (1, True, 32),
    ]
    assert (sealer.plaintext_digest.size, sealer.plaintext_digest.hexdigest()) == (
        32,
        hashlib.sha256(b"a" * 10 + b"b" * 22).hexdigest(),
    )
    opener = FileCipher(key, PACKET, 0, segment_size=16)
    assert b"".join(opener.decrypt_segments(segs)) == b"a" * 10 + b"b" * 22


def test_chunks_are_recut_across_boundaries() -> None:
    key = new_data_key()
    chunks = [b"abc", b"defghij", b"k", b"lmnopqrstu", b"vwxyz"]
    segs = list(FileCipher(key, PACKET, 0, segment_size=4).encrypt_chunks(chunks))
    opener = FileCipher(key, PACKET, 0, segment_size=4)
    assert [opener.open(s.index, s.ciphertext, final=s.final) for s in segs] == [
        b"abcd",
        b"efgh",
        b"ijkl",
        b"mnop",
        b"qrst",
        b"uvwx",
        b"yz",
    ]
    assert [s.final for s in segs] == [False] * 6 + [True]


@pytest.mark.parametrize(
    ("order", "message"),
    [
        ([0, 0, 1, 2], "segment 0 arrived where 1 was expected"),
        ([0, 2, 1], "segment 2 arrived where 1 was expected"),
    ],
    ids=["repeated", "skipped"],
)
def test_a_repeated_or_skipped_segment_is_refused_before_it_is_opened(
    order: list[int], message: str
) -> None:
    key = new_data_key()
    segs = list(FileCipher(key, PACKET, 0, segment_size=4).encrypt_chunks([b"abcdefghij"]))
    opener = FileCipher(key, PACKET, 0, segment_size=4)
    opened: list[bytes] = []
    with pytest.raises(BadPeerData) as refused:
        for plain in opener.decrypt_segments([segs[i] for i in order]):
            opened.append(plain)
    assert type(refused.value) is BadPeerData
    assert str(refused.value) == message
    assert opened == [b"abcd"]


def test_a_stream_of_more_than_256_segments_opens_in_order() -> None:
    """Indexes past the small integers Python shares: the order check compares values."""
    key = new_data_key()
    plain = bytes(range(256)) + b"tail of the stream"
    segs = list(FileCipher(key, PACKET, 0, segment_size=1).encrypt_chunks([plain]))
    assert [s.index for s in segs] == list(range(len(plain)))
    opener = FileCipher(key, PACKET, 0, segment_size=1)
    assert b"".join(opener.decrypt_segments(segs)) == plain


def test_the_segment_size_and_the_final_flag_must_be_named() -> None:
    """A positional True cannot be taken for the final flag, nor a number for the size."""
    key = new_data_key()
    with pytest.raises(TypeError, match=r"takes 4 positional arguments but 5 were given"):
        FileCipher(key, PACKET, 0, 16)  # type: ignore[misc]
    cipher = FileCipher(key, PACKET, 0, segment_size=16)
    sealed = cipher.seal(0, b"x", final=True)
    with pytest.raises(TypeError, match=r"takes 3 positional arguments but 4 were given"):
        cipher.seal(0, b"x", True)  # type: ignore[misc]
    with pytest.raises(TypeError, match=r"takes 3 positional arguments but 4 were given"):
        cipher.open(0, sealed, True)  # type: ignore[misc]


def test_a_sealed_segment_cannot_be_altered() -> None:
    seg = SealedSegment(0, False, b"")
    with pytest.raises(dataclasses.FrozenInstanceError):
        seg.final = True  # type: ignore[misc]


# ---- re-cutting chunks without copying them -------------------------------------------------
# Sizes above 256 so that a comparison by identity ("is") cannot pass for one by value.


def _left(pieces: deque[memoryview]) -> list[bytes]:
    return [bytes(p) for p in pieces]


def test_take_returns_a_view_of_a_piece_that_holds_the_bytes() -> None:
    whole = b"a" * 300
    pieces = deque([memoryview(whole)])
    got = _take(pieces, 300)
    assert isinstance(got, memoryview)
    assert got.obj is whole
    assert _left(pieces) == []


def test_take_cuts_the_first_piece_and_keeps_the_rest() -> None:
    pieces = deque([memoryview(b"a" * 500), memoryview(b"b" * 10)])
    got = _take(pieces, 300)
    assert isinstance(got, memoryview)
    assert bytes(got) == b"a" * 300
    assert _left(pieces) == [b"a" * 200, b"b" * 10]


def test_take_joins_pieces_and_leaves_no_empty_one() -> None:
    pieces = deque([memoryview(b"a" * 200), memoryview(b"b" * 100), memoryview(b"c" * 5)])
    assert bytes(_take(pieces, 300)) == b"a" * 200 + b"b" * 100
    assert _left(pieces) == [b"c" * 5]


def test_take_splits_the_piece_it_ends_in() -> None:
    pieces = deque([memoryview(b"a" * 200), memoryview(b"b" * 200), memoryview(b"c" * 200)])
    assert bytes(_take(pieces, 300)) == b"a" * 200 + b"b" * 100
    assert _left(pieces) == [b"b" * 100, b"c" * 200]
    assert _take(pieces, 0) == b""
    assert _left(pieces) == [b"b" * 100, b"c" * 200]


# ---- wrapped data keys -----------------------------------------------------------------------


@pytest.mark.parametrize("length", [31, 33])
def test_only_a_32_byte_data_key_is_wrapped(length: int) -> None:
    node_key = generate_encryption_key()
    with pytest.raises(CallerError, match=r"^data key must be 32 bytes$"):
        wrap_data_key(bytes(length), node_key.public_key(), PACKET, "420100")


@pytest.mark.parametrize("length", [16, 31, 33])
def test_a_wrapped_key_of_another_length_is_refused(length: int) -> None:
    """A sender could HPKE-seal a 16-byte key (AES-128) itself; only 32 bytes are taken."""
    node_key = generate_encryption_key()
    info = b"tongban/v1/data-key|" + PACKET.bytes + b"|420100"
    suite = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)
    wrapped = suite.encrypt(b"k" * length, node_key.public_key(), info)
    with pytest.raises(DecryptionError, match=r"^data key could not be unwrapped$"):
        unwrap_data_key(wrapped, [node_key], PACKET, "420100")
    good = suite.encrypt(b"k" * 32, node_key.public_key(), info)
    assert unwrap_data_key(good, [node_key], PACKET, "420100") == b"k" * 32
