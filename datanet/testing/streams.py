"""In-memory raw streams under FramedStream, for tests of p2p services without sockets.

A :class:`MemoryRawStream` has the shape of the raw libp2p stream the host
wraps (``read``, ``write``, ``close``, ``reset``) over trio's in-memory
streams, and records what was written and whether it was reset, so a test can
check exactly what a service or a session put on the wire.
"""

from __future__ import annotations

from typing import Any

import trio.testing

from datanet.p2p.streams import FramedStream

__all__ = ["MemoryRawStream", "framed_pair", "raw_pair"]


class MemoryRawStream:
    """One end of an in-memory stream: sends on ``send``, receives on ``receive``."""

    def __init__(self, send: Any, receive: Any) -> None:
        self.send = send
        self.receive = receive
        self.was_reset = False
        self.chunks: list[bytes] = []

    async def read(self, n: int | None = None) -> bytes:
        return bytes(await self.receive.receive_some(n))

    async def write(self, data: bytes) -> None:
        self.chunks.append(data)
        await self.send.send_all(data)

    async def close(self) -> None:
        await self.send.aclose()

    async def reset(self) -> None:
        self.was_reset = True
        await self.send.aclose()
        await self.receive.aclose()


def raw_pair() -> tuple[MemoryRawStream, MemoryRawStream]:
    """Two connected ends: what one writes, the other reads."""
    a_send, b_recv = trio.testing.memory_stream_one_way_pair()
    b_send, a_recv = trio.testing.memory_stream_one_way_pair()
    return MemoryRawStream(a_send, a_recv), MemoryRawStream(b_send, b_recv)


def framed_pair(a: str = "a", b: str = "b") -> tuple[FramedStream, FramedStream]:
    """Two connected framed streams named ``a`` and ``b`` (names appear in errors)."""
    ra, rb = raw_pair()
    return FramedStream(ra, a), FramedStream(rb, b)
