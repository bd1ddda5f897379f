"""A read-ahead buffer for a connection's socket: one receive serves many small reads.

py-libp2p reads a Noise message as two socket receives (the 2-byte length, then
the body), each through a lock and a scheduler round, so every yamux frame costs
at least two system calls on the receiving side. :class:`ReadAhead` holds what
one large receive brought and hands it out in the sizes the reader asks for;
:mod:`datanet.p2p._libp2p` puts one in front of every TCP connection.

Invariants:
* Bytes come out in the order they went in, none lost or repeated.
* A read of ``n`` returns at most ``n`` bytes (any amount if ``n`` is None) and
  never an empty result while bytes are buffered.
* The buffer holds at most what one receive brought (:data:`READ_AHEAD` bytes).
"""

from __future__ import annotations

__all__ = ["READ_AHEAD", "ReadAhead"]

READ_AHEAD = 64 * 1024
"""Bytes asked of the socket per receive (a Noise message is at most 65,535 + 2)."""


class ReadAhead:
    """Bytes received from a socket but not yet read."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def __len__(self) -> int:
        return len(self._buf)

    def put(self, data: bytes) -> None:
        """Append what one receive brought (at most :data:`READ_AHEAD` bytes).

        Raises:
            ValueError: ``data`` is longer than :data:`READ_AHEAD`, or the buffer
                is not empty (a receive happens only once it is drained).
        """
        if self._buf:
            raise ValueError("read-ahead refilled before it was drained")
        if len(data) > READ_AHEAD:
            raise ValueError(f"a receive of {len(data)} bytes exceeds {READ_AHEAD}")
        self._buf += data

    def take(self, n: int | None) -> bytes:
        """Up to ``n`` buffered bytes (all of them if ``n`` is None); b"" if empty."""
        buf = self._buf
        if n is None or n >= len(buf):
            data = bytes(buf)
            buf.clear()
            return data
        data = bytes(buf[:n])
        del buf[:n]
        return data
