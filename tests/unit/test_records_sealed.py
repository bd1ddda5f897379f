"""Sealed boxes for the access details: round trip and every way opening fails."""

from __future__ import annotations

import pytest

from datanet.errors import DecodeError, InvalidInput
from datanet.records.sealed import MAX_PLAINTEXT, MAX_SEALED, new_reply_key, open_sealed, seal_to


def test_round_trip() -> None:
    private, public = new_reply_key()
    box = seal_to(public, b"token=abc", b"request-id")
    assert box[0] == 1
    assert len(box) == 1 + 32 + len(b"token=abc") + 16
    assert open_sealed(private, box, b"request-id") == b"token=abc"
    assert seal_to(public, b"token=abc", b"request-id") != box  # a fresh ephemeral key each time
    full = seal_to(public, b"x" * MAX_PLAINTEXT, b"")
    assert len(full) == MAX_SEALED
    assert open_sealed(private, full, b"") == b"x" * MAX_PLAINTEXT


def test_refusals() -> None:
    private, public = new_reply_key()
    other, _ = new_reply_key()
    box = seal_to(public, b"secret", b"ctx")
    with pytest.raises(DecodeError, match="could not be decrypted"):
        open_sealed(other, box, b"ctx")
    with pytest.raises(DecodeError, match="could not be decrypted"):
        open_sealed(private, box, b"another request")
    altered = bytearray(box)
    altered[40] ^= 1
    with pytest.raises(DecodeError):
        open_sealed(private, bytes(altered), b"ctx")
    with pytest.raises(DecodeError, match="version"):
        open_sealed(private, b"\x02" + box[1:], b"ctx")
    with pytest.raises(DecodeError, match="size"):
        open_sealed(private, box[:40], b"ctx")
    with pytest.raises(DecodeError):
        open_sealed(private[:31], box, b"ctx")
    with pytest.raises(InvalidInput):
        seal_to(public, b"x" * (MAX_PLAINTEXT + 1), b"")
    with pytest.raises(InvalidInput):
        seal_to(public[:31], b"x", b"")
    with pytest.raises(InvalidInput, match="usable"):
        seal_to(bytes(32), b"x", b"")  # a low-order point
