"""Closing a host is quick even when peers dial it, or reset its streams, meanwhile.

A host's close waits (at most 3 s) until every connection has left py-libp2p's
swarm, so that none is cancelled half-closed. A connection that arrives during
the close is never admitted; if the host did not close it too, the close would
sit out the whole bound waiting for the peer to hang up.
"""

from __future__ import annotations

from functools import partial

import pytest
import trio

from datanet.errors import NetworkError
from datanet.p2p import KAD_PROTOCOL, Host, PeerEvent, open_host, parse_addr, serve_host
from datanet.testing.p2p import FAST, LOCAL, admission, node_key, org_key, plain_host
from routing.wire import Message, MessageType, encode_frame

ORG = org_key(1)
QUICK = 1.5  # seconds; the wait for stray connections is bounded at 3 s


async def echo(msg: Message, from_peer: bytes) -> Message:
    return Message(type=msg.type, key=msg.key)


async def test_a_connection_that_arrives_during_shutdown_is_closed_at_once() -> None:
    """A peer dials the host as soon as its close begins (as a routing table does)."""
    a, b = node_key(1), node_key(2)
    async with (
        plain_host(node_key(3)) as dialer,
        open_host(b, LOCAL, admission("members", b, ORG), limits=FAST) as other,
    ):
        from libp2p.peer.id import ID
        from multiaddr import Multiaddr

        landed: list[bool] = []

        async def dial_when_closing(
            host: Host, events: trio.MemoryReceiveChannel[PeerEvent]
        ) -> None:
            target = ID(host.peer_id.to_bytes())
            addr = Multiaddr(parse_addr(host.listen_addrs()[0]).transport)
            async for _ in events:  # the host closes its subscribers first thing
                pass
            try:
                await dialer.get_network().dial_addr(addr, target)
                landed.append(True)
            except Exception:  # too late: the listener is gone
                landed.append(False)

        async with trio.open_nursery() as outer:
            async with trio.open_nursery() as inner:
                host: Host = await inner.start(
                    partial(serve_host, a, LOCAL, admission("members", a, ORG), limits=FAST)
                )
                # an admitted peer, so that the close has a connection to wait for
                await other.connect(host.peer_id, host.listen_addrs())
                outer.start_soon(dial_when_closing, host, host.subscribe())
                await trio.sleep(0.05)
                started = trio.current_time()
                inner.cancel_scope.cancel()
            took = trio.current_time() - started
        assert landed == [True], "the dial should reach the host while it closes"
        assert took < QUICK, f"closing the host took {took:.2f}s"
        assert not dialer.get_network().get_connections()


async def test_a_host_closes_quickly_after_the_peer_reset_its_kad_stream() -> None:
    a, b = node_key(1), node_key(2)
    async with open_host(b, LOCAL, admission("members", b, ORG), limits=FAST) as server:
        server.kad.set_handler(echo)
        async with trio.open_nursery() as inner:
            client: Host = await inner.start(
                partial(serve_host, a, LOCAL, admission("members", a, ORG), limits=FAST)
            )
            client.add_addrs(server.peer_id, server.listen_addrs())
            find = Message(type=MessageType.FIND_NODE, key=b"k")
            await client.kad.request(server.peer_id, find)  # the long-lived stream
            junk = await client.open_stream(server.peer_id, KAD_PROTOCOL)
            await junk.write(encode_frame(b"\xff\xff\xff\xff"))
            with pytest.raises(NetworkError), trio.fail_after(3):
                await junk.read_required(1000)  # the server resets an undecodable stream
            started = trio.current_time()
            inner.cancel_scope.cancel()
        took = trio.current_time() - started
        assert took < QUICK, f"closing the host took {took:.2f}s"
