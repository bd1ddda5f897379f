"""Yamux frames per kad request with real hosts: no receive-credit frame per small message.

py-libp2p 0.8.1 sends a WINDOW_UPDATE after most small reads, one extra frame
(a Noise message, a socket write and a wake-up on both sides) for about every
second request on a long-lived kad stream. The adapter batches that credit in
half windows, as go-yamux does (``datanet/p2p/_libp2p.py``, decision 0011);
these tests count the frames each host writes and check that large transfers,
which do need credit back, still flow both ways.
"""

from __future__ import annotations

import inspect
import struct
import sys
from collections import Counter
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from datanet.p2p import Host
from datanet.p2p import _libp2p as lp
from datanet.testing.p2p import member_hosts, org_key
from routing.wire import Message, MessageType, Record

ORG = org_key(1)
DATA, WINDOW_UPDATE = 0, 1


def two_hosts() -> AbstractAsyncContextManager[tuple[Host, Host]]:
    return member_hosts(ORG)


@pytest.fixture
def frames(monkeypatch: pytest.MonkeyPatch) -> Counter[int]:
    """Yamux frames written by every host of this process, by frame type."""
    counts: Counter[int] = Counter()
    write = lp.Yamux._write_frame

    async def counted(self: Any, data: bytes) -> None:
        counts[struct.unpack(">BBHII", data[:12])[1]] += 1
        await write(self, data)

    monkeypatch.setattr(lp.Yamux, "_write_frame", counted)
    return counts


async def echo(msg: Message, from_peer: bytes) -> Message:
    return msg


async def test_small_requests_send_no_window_update_each(frames: Counter[int]) -> None:
    async with two_hosts() as (client, server):
        server.kad.set_handler(echo)
        await client.kad.request(server.peer_id, Message(MessageType.FIND_NODE, b"warm"))
        frames.clear()
        requests = 60
        for i in range(requests):
            key = b"key-%d" % i
            msg = Message(MessageType.PUT_VALUE, key, record=Record(key, bytes(300)))
            assert await client.kad.request(server.peer_id, msg) == msg
        # one DATA frame each way per request; py-libp2p alone adds ~0.6 WINDOW_UPDATE
        assert frames[DATA] == 2 * requests
        assert frames[WINDOW_UPDATE] <= 2, frames


async def test_transfers_larger_than_the_window_flow_both_ways(frames: Counter[int]) -> None:
    async with two_hosts() as (client, server):
        server.kad.set_handler(echo)
        value = bytes(range(256)) * 240  # 60 KiB: 30 requests move 1.8 MiB each way
        for i in range(30):
            key = b"big-%d" % i
            msg = Message(MessageType.PUT_VALUE, key, record=Record(key, value))
            assert await client.kad.request(server.peer_id, msg, timeout=20) == msg
        assert client.kad.open_streams() == 1
        # 1.8 MiB through a 256 KiB window: credit went back in batches, not per read
        assert 2 <= frames[WINDOW_UPDATE] <= 40, frames


def test_connections_ping_for_their_rtt_every_ten_minutes_not_every_30_s() -> None:
    # py-libp2p's Yamux reads its module's interval at every round of its RTT loop;
    # 30 s on every connection was 2-3 % of a 100-node network's CPU (docs/p2p.md, 14).
    yamux = sys.modules["libp2p.stream_muxer.yamux.yamux"]
    assert yamux.RTT_MEASURE_INTERVAL == lp.YAMUX_RTT_INTERVAL == 600
    # the setting only works while py-libp2p's loop still reads that module global
    loop = inspect.getsource(lp.Yamux._measure_rtt_loop)
    assert "move_on_after(RTT_MEASURE_INTERVAL)" in loop
