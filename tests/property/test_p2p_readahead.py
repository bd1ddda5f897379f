"""The socket read-ahead buffer hands out exactly the bytes it received, in order, bounded."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datanet.p2p.readahead import READ_AHEAD, ReadAhead

receives = st.lists(st.binary(min_size=1, max_size=300), max_size=20)
reads = st.lists(st.one_of(st.none(), st.integers(min_value=1, max_value=400)), min_size=1)


@given(receives, reads)
def test_reads_return_every_byte_in_order_and_within_size(
    chunks: list[bytes], sizes: list[int | None]
) -> None:
    buf = ReadAhead()
    got = bytearray()
    pending = list(chunks)
    i = 0
    while pending or len(buf):
        if not len(buf):
            buf.put(pending.pop(0))  # a receive happens only when the buffer is drained
        n = sizes[i % len(sizes)]
        i += 1
        data = buf.take(n)
        assert data, "a read of a non-empty buffer returned nothing"
        assert n is None or len(data) <= n
        got += data
    assert bytes(got) == b"".join(chunks)
    assert buf.take(5) == b""


def test_refill_before_drained_and_oversized_receives_are_refused() -> None:
    buf = ReadAhead()
    buf.put(b"abc")
    with pytest.raises(ValueError, match="drained"):
        buf.put(b"d")
    assert buf.take(2) == b"ab"
    assert buf.take(None) == b"c"
    with pytest.raises(ValueError, match="exceeds"):
        buf.put(bytes(READ_AHEAD + 1))
    buf.put(bytes(READ_AHEAD))
    assert len(buf) == READ_AHEAD
