"""The segment stream's trust checks, each with the exact refusal it makes."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from tongban.keys.content import FileCipher, SealedSegment, new_data_key
from tongban.keys.errors import BadPeerData

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
