"""Idle connections cost no timers; a frame costs no cancel scope or lock round it can spare.

At 100 nodes on one machine about 10 % of all CPU went to trio expiring
deadlines (py-spy of ``bench_net.py --profile``): every inbound connection
polled for its own close every 5 s, and py-libp2p's Yamux swept each
connection's closed streams every 30 s and opened a ``fail_after`` scope for
every DATA frame's body. Both grow with the number of connections, which is
what stalled a 200-node network (docs/p2p.md, workaround 15).
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
import trio
import trio._core._run as trio_run

from datanet.p2p import Host, open_host
from datanet.p2p import _libp2p as lp
from datanet.testing.p2p import FAST, LOCAL, admission, member_hosts, node_key, org_key
from routing.wire import Message, MessageType, Record

ORG = org_key(1)
CLIENTS = 12


async def echo(msg: Message, from_peer: bytes) -> Message:
    return msg


@asynccontextmanager
async def echo_pair() -> AsyncIterator[tuple[Host, Host]]:
    """A client and an echoing kad server, connected, one request already made."""
    async with member_hosts(ORG) as (client, server):
        server.kad.set_handler(echo)
        await client.kad.request(server.peer_id, Message(MessageType.FIND_NODE, b"warm"))
        yield client, server


@pytest.fixture
def expired(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Cancel scopes of this process whose deadline passed (one count each)."""
    count = [0]
    cancel = trio_run.CancelScope._cancel

    def counted(self: Any, reason: Any) -> None:
        if reason is not None and reason.source == "deadline":
            count[0] += 1
        cancel(self, reason)

    monkeypatch.setattr(trio_run.CancelScope, "_cancel", counted)
    return count


async def test_idle_inbound_connections_expire_no_timers(expired: list[int]) -> None:
    server_key = node_key(1)
    async with AsyncExitStack() as stack:
        server = await stack.enter_async_context(
            open_host(server_key, LOCAL, admission("members", server_key, ORG), limits=FAST)
        )
        for n in range(CLIENTS):
            key = node_key(10 + n)
            client = await stack.enter_async_context(
                open_host(key, LOCAL, admission("members", key, ORG), limits=FAST)
            )
            await client.connect(server.peer_id, server.listen_addrs())
        await trio.sleep(1.5)  # admission settled, each connection's first RTT ping done
        before = expired[0]
        await trio.sleep(6.0)  # longer than the 5 s poll each inbound connection ran
        # py-libp2p's own inbound handler polled too: at least one expiry per connection
        assert expired[0] - before < CLIENTS // 2, expired[0] - before


async def test_a_data_body_that_noise_already_decrypted_opens_no_cancel_scope(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bounded = [0]
    read_body = lp.Yamux._read_data_body

    async def counted(self: Any, length: int) -> bytes:
        bounded[0] += 1
        return await read_body(self, length)

    monkeypatch.setattr(lp.Yamux, "_read_data_body", counted)
    async with echo_pair() as (client, server):
        bounded[0] = 0
        for i in range(40):
            key = b"key-%d" % i
            msg = Message(MessageType.PUT_VALUE, key, record=Record(key, bytes(300)))
            assert await client.kad.request(server.peer_id, msg) == msg
        # 80 DATA frames; each body arrived in the Noise message of its header
        assert bounded[0] <= 2, bounded[0]


def test_closed_streams_are_swept_every_five_minutes_not_every_30_s() -> None:
    yamux = sys.modules["libp2p.stream_muxer.yamux.yamux"]
    assert yamux._STALE_STREAM_SWEEP_INTERVAL == lp.YAMUX_SWEEP_INTERVAL == 300
    # the setting only works while py-libp2p's sweeper still reads that module global
    sweeper = inspect.getsource(lp.Yamux._stale_stream_sweeper)
    assert "trio.sleep(_STALE_STREAM_SWEEP_INTERVAL)" in sweeper


async def test_an_uncontended_socket_read_or_write_takes_its_lock_without_a_scheduler_round(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # trio's Lock.acquire() yields to the scheduler even when the lock is free; the
    # socket call yields anyway. In a 200-node run the extra round of the reads alone
    # was 16 % of a worker's CPU (py-spy), so a free lock is taken with acquire_nowait.
    waited = [0]
    acquire = trio.Lock.acquire

    async def counted(self: trio.Lock) -> None:
        caller = sys._getframe(1)
        outer = caller.f_back  # the caller's caller: through ``async with``
        callers = (caller.f_code, outer.f_code if outer is not None else caller.f_code)
        if any(
            c.co_name in ("_read_ahead", "_lean_tcp_write")
            or (c.co_name in ("read", "write") and c.co_filename.endswith("libp2p/io/trio.py"))
            for c in callers
        ):
            waited[0] += 1  # a TCP connection's lock (ours, or py-libp2p's own read and write)
        await acquire(self)

    monkeypatch.setattr(trio.Lock, "acquire", counted)
    async with echo_pair() as (client, server):
        waited[0] = 0
        for i in range(40):
            await client.kad.request(server.peer_id, Message(MessageType.FIND_NODE, b"%d" % i))
        # 80 socket reads and 80 writes; py-libp2p's own methods awaited the lock for each
        assert waited[0] <= 8, waited[0]
