"""Packet content encryption: per-packet data keys, HPKE-wrapped, and files in sealed segments.

A fresh data key per packet is HPKE-wrapped for each recipient node, and each file is
sealed in fixed-size segments (a STREAM construction over AES-256-GCM).

Each segment's nonce is (file index, segment index, final flag) and its associated data
binds the packet id as well, so segments cannot be reordered, moved between files or
packets, or cut off: a stream is complete only once a segment flagged final has opened.
No file is ever held whole in memory.

Example:
    >>> import uuid
    >>> from tongban.keys.pki import generate_encryption_key
    >>> node_key = generate_encryption_key()
    >>> packet_id = uuid.uuid4()
    >>> data_key = new_data_key()
    >>> wrapped = wrap_data_key(data_key, node_key.public_key(), packet_id, "420100")
    >>> unwrap_data_key(wrapped, [node_key], packet_id, "420100") == data_key
    True
    >>> sealer = FileCipher(data_key, packet_id, 0, segment_size=4)
    >>> segs = list(sealer.encrypt_chunks([b"hello ", b"world"]))
    >>> b"".join(sealer.decrypt_segments(segs))
    b'hello world'
"""

from __future__ import annotations

import hashlib
import os
import struct
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from tongban.keys.errors import BadPeerData, CallerError, DecryptionError

__all__ = [
    "DEFAULT_SEGMENT_SIZE",
    "FORM_FILE_INDEX",
    "MAX_SEGMENT_SIZE",
    "TAG_SIZE",
    "FileCipher",
    "SealedSegment",
    "StreamDigest",
    "TruncatedStreamError",
    "new_data_key",
    "unwrap_data_key",
    "wrap_data_key",
]

DEFAULT_SEGMENT_SIZE = 1 << 20
MAX_SEGMENT_SIZE = 4 << 20
TAG_SIZE = 16
# The form travels as a one-segment "file" with an index no material file can have.
FORM_FILE_INDEX = 0xFFFFFFFF
_MAX_SEGMENTS = 1 << 56
_SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)
_WRAP_INFO = b"tongban/v1/data-key"
_SEGMENT_AAD = b"tongban/v1/segment"


class TruncatedStreamError(BadPeerData):
    """A segment stream ended before its final segment."""

    code = "truncated-stream"


def new_data_key() -> bytes:
    """A fresh random 256-bit data key."""
    return os.urandom(32)


def _wrap_info(packet_id: uuid.UUID, node_id: str) -> bytes:
    return b"%s|%s|%s" % (_WRAP_INFO, packet_id.bytes, node_id.encode())


def wrap_data_key(
    data_key: bytes, recipient: x25519.X25519PublicKey, packet_id: uuid.UUID, node_id: str
) -> bytes:
    """HPKE-seal (RFC 9180, base mode) the data key to one recipient node.

    The packet id and recipient node id are bound in as HPKE ``info``, so a wrapped key
    cannot be replayed for another packet or node.
    """
    if len(data_key) != 32:
        raise CallerError("data key must be 32 bytes")
    return _SUITE.encrypt(data_key, recipient, _wrap_info(packet_id, node_id))


def unwrap_data_key(
    wrapped: bytes,
    keys: Sequence[x25519.X25519PrivateKey],
    packet_id: uuid.UUID,
    node_id: str,
) -> bytes:
    """Open a wrapped data key with whichever of the node's live keys it was wrapped for.

    Raises:
        DecryptionError: no key opens it (the same error whatever the reason).
    """
    info = _wrap_info(packet_id, node_id)
    for key in keys:
        try:
            data_key = _SUITE.decrypt(wrapped, key, info)
        except Exception:  # noqa: S112 - every failure must look the same to the caller
            continue
        if len(data_key) == 32:
            return data_key
    raise DecryptionError("data key could not be unwrapped")


@dataclass(frozen=True)
class SealedSegment:
    """One encrypted segment of a file: its place in the stream and whether it ends it."""

    index: int
    final: bool
    ciphertext: bytes


class StreamDigest:
    """Running SHA-256 and byte count of a plaintext stream."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.size = 0

    def update(self, data: bytes) -> None:
        """Add the next piece of the stream."""
        self._hash.update(data)
        self.size += len(data)

    def hexdigest(self) -> str:
        """SHA-256 of everything added so far, lowercase hex; more may still be added."""
        return self._hash.hexdigest()


def _take(pieces: deque[memoryview], n: int) -> bytes | bytearray | memoryview:
    """The first ``n`` bytes of ``pieces``, without copying when one piece holds them."""
    if n == 0:
        return b""
    first = pieces[0]
    if len(first) >= n:
        if len(first) == n:
            pieces.popleft()
        else:
            pieces[0] = first[n:]
        return first[:n]
    out = bytearray()
    while len(out) < n:
        piece = pieces[0]
        need = n - len(out)
        if len(piece) <= need:
            out += piece
            pieces.popleft()
        else:
            out += piece[:need]
            pieces[0] = piece[need:]
    return out


class FileCipher:
    """Seals and opens the segments of one file of one packet."""

    def __init__(
        self,
        data_key: bytes,
        packet_id: uuid.UUID,
        file_index: int,
        *,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
    ) -> None:
        if not 0 < segment_size <= MAX_SEGMENT_SIZE:
            raise CallerError(f"segment size must be 1..{MAX_SEGMENT_SIZE} bytes")
        if not 0 <= file_index <= FORM_FILE_INDEX:
            raise CallerError("file index out of range")
        self._aead = AESGCM(data_key)
        self._packet = packet_id.bytes
        self._file_index = file_index
        self.segment_size = segment_size
        self.plaintext_digest = StreamDigest()

    def _nonce_and_aad(self, index: int, final: bool) -> tuple[bytes, bytes]:
        if not 0 <= index < _MAX_SEGMENTS:
            raise BadPeerData(f"segment index {index} out of range")
        nonce = struct.pack(">I", self._file_index) + index.to_bytes(7, "big") + bytes([final])
        aad = _SEGMENT_AAD + self._packet + nonce
        return nonce, aad

    def seal(self, index: int, plaintext: bytes | bytearray | memoryview, *, final: bool) -> bytes:
        """Seal one segment (``plaintext`` at most ``segment_size`` bytes)."""
        if len(plaintext) > self.segment_size:
            raise CallerError("segment larger than the segment size")
        nonce, aad = self._nonce_and_aad(index, final)
        return self._aead.encrypt(nonce, plaintext, aad)

    def open(self, index: int, ciphertext: bytes, *, final: bool) -> bytes:
        """Open one segment.

        Raises:
            DecryptionError: the segment was altered, moved or belongs elsewhere.
        """
        if len(ciphertext) > self.segment_size + TAG_SIZE or len(ciphertext) < TAG_SIZE:
            raise DecryptionError(f"segment {index} has an impossible length")
        nonce, aad = self._nonce_and_aad(index, final)
        try:
            return self._aead.decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise DecryptionError(f"segment {index} failed authentication") from None

    def encrypt_chunks(self, chunks: Iterable[bytes]) -> Iterator[SealedSegment]:
        """Re-cut plaintext chunks of any size into sealed segments; the last is final.

        An empty input yields one empty final segment, so every file has an end marker.
        The plaintext's SHA-256 and size accumulate in :attr:`plaintext_digest`.
        """
        size = self.segment_size
        pieces: deque[memoryview] = deque()
        total = 0
        index = 0
        for chunk in chunks:
            if not chunk:
                continue
            self.plaintext_digest.update(chunk)
            pieces.append(memoryview(chunk))
            total += len(chunk)
            # Only a segment known to be followed by more data can be sealed as non-final.
            while total > size:
                yield SealedSegment(
                    index, False, self.seal(index, _take(pieces, size), final=False)
                )
                total -= size
                index += 1
        yield SealedSegment(index, True, self.seal(index, _take(pieces, total), final=True))

    def decrypt_segments(self, segments: Iterable[SealedSegment]) -> Iterator[bytes]:
        """Open segments in order, checking the sequence and the final marker.

        Raises:
            DecryptionError: a segment fails authentication.
            BadPeerData: a segment is out of order or follows the final one.
            TruncatedStreamError: the segments stop before the final one.
        """
        expected = 0
        done = False
        for seg in segments:
            if done:
                raise BadPeerData(f"segment {seg.index} follows the final segment")
            if seg.index != expected:
                raise BadPeerData(f"segment {seg.index} arrived where {expected} was expected")
            plain = self.open(seg.index, seg.ciphertext, final=seg.final)
            self.plaintext_digest.update(plain)
            expected += 1
            done = seg.final
            yield plain
        if not done:
            raise TruncatedStreamError(
                f"stream ended after {expected} segments without the final one"
            )
