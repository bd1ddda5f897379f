"""Real datanet hosts on 127.0.0.1: connecting, events, ping, security, dial fixes."""

from __future__ import annotations

import time

import pytest
import trio

from datanet.errors import InvalidInput, PeerUnreachable
from datanet.p2p import (
    Admission,
    Host,
    KadServer,
    PeerConnected,
    PeerDisconnected,
    PeerEvent,
    open_host,
    parse_addr,
)
from datanet.testing.p2p import (
    FAST,
    LOCAL,
    admission,
    node_key,
    org_key,
    plain_addrs,
    plain_host,
)
from identity import KeyPair
from routing.wire import Message, MessageType

ORG = org_key(1)


def members(n: int) -> tuple[KeyPair, Admission]:
    key = node_key(n)
    return key, admission("members", key, ORG)


async def serve_kad(msg: Message, from_peer: bytes) -> Message:
    return Message(type=msg.type, key=msg.key)


async def next_events(channel: trio.MemoryReceiveChannel[PeerEvent], n: int) -> list[PeerEvent]:
    with trio.fail_after(3):
        return [await channel.receive() for _ in range(n)]


async def test_connect_announces_admitted_peers_and_kad_servers() -> None:
    ka, aa = members(1)
    kb, ab = members(2)
    async with open_host(ka, LOCAL, aa, limits=FAST) as a, open_host(kb, LOCAL, ab) as b:
        a.kad.set_handler(serve_kad)
        b.kad.set_handler(serve_kad)
        a_events, b_events = a.subscribe(), b.subscribe()
        (addr,) = b.listen_addrs()
        assert parse_addr(addr).peer == b.peer_id
        await a.connect(b.peer_id.to_bytes(), [addr])

        first, second = await next_events(a_events, 2)
        assert first == PeerConnected(b.peer_id, ORG.org_id, False, (parse_addr(addr).transport,))
        assert second == KadServer(b.peer_id, (parse_addr(addr).transport,))
        first, second = await next_events(b_events, 2)
        assert isinstance(first, PeerConnected)
        assert first.inbound
        assert first.peer == a.peer_id
        # the dialer's listen address comes from its hello, not from the TCP socket
        assert first.addrs == (parse_addr(a.listen_addrs()[0]).transport,)
        assert isinstance(second, KadServer)
        assert b.peer_addrs(a.peer_id) == list(first.addrs)
        assert a.connected_peers() == [b.peer_id]
        assert b.peer_org(a.peer_id) == ORG.org_id

        await a.connect(b.peer_id)  # already connected: a no-op
        await a.disconnect(b.peer_id)
        assert await next_events(a_events, 1) == [PeerDisconnected(b.peer_id)]
        assert await next_events(b_events, 1) == [PeerDisconnected(a.peer_id)]
        assert a.connected_peers() == []


async def test_simultaneous_connects_in_both_directions() -> None:
    ka, aa = members(1)
    kb, ab = members(2)
    async with open_host(ka, LOCAL, aa, limits=FAST) as a, open_host(kb, LOCAL, ab) as b:
        a_events, b_events = a.subscribe(), b.subscribe()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(a.connect, b.peer_id, b.listen_addrs())
            nursery.start_soon(b.connect, a.peer_id, a.listen_addrs())
        (first,) = await next_events(a_events, 1)
        assert isinstance(first, PeerConnected)  # announced once, whichever dial won
        assert (first.peer, first.org) == (b.peer_id, ORG.org_id)
        assert first.addrs == (parse_addr(b.listen_addrs()[0]).transport,)
        (event,) = await next_events(b_events, 1)
        assert isinstance(event, PeerConnected)
        assert event.peer == a.peer_id
        assert a.connected_peers() == [b.peer_id]
        assert b.connected_peers() == [a.peer_id]
        assert await a.ping(b.peer_id) > 0  # a round trip over whichever connection won
        with pytest.raises(InvalidInput):
            await a.kad.request(a.peer_id, Message(type=MessageType.PING))


async def test_ping_and_reconnect_from_known_addresses() -> None:
    ka, aa = members(1)
    kb, ab = members(2)
    async with open_host(ka, LOCAL, aa, limits=FAST) as a, open_host(kb, LOCAL, ab) as b:
        a.add_addrs(b.peer_id, b.listen_addrs())
        rtt = await a.ping(b.peer_id)  # dials from the address book
        assert rtt > 0
        await a.disconnect(b.peer_id)
        with trio.fail_after(2):
            while a.is_connected(b.peer_id):
                await trio.sleep(0.01)
        assert await a.ping(b.peer_id.to_bytes()) > 0


async def test_bad_targets() -> None:
    ka, aa = members(1)
    kb, ab = members(2)
    kc, ac = members(3)
    async with (
        open_host(ka, LOCAL, aa, limits=FAST) as a,
        open_host(kb, LOCAL, ab) as b,
        open_host(kc, LOCAL, ac) as c,
    ):
        with pytest.raises(InvalidInput):
            await a.connect(a.peer_id, a.listen_addrs())
        with pytest.raises(PeerUnreachable):
            await a.connect(b.peer_id)  # no known address
        with pytest.raises(InvalidInput):
            await a.connect(b.peer_id, c.listen_addrs())  # /p2p/ names another peer
        # C's address without its /p2p/ part: Noise finds the wrong key there
        wrong = str(parse_addr(c.listen_addrs()[0]).transport)
        with pytest.raises(PeerUnreachable):
            await a.connect(b.peer_id, [wrong])
        assert not a.is_connected(b.peer_id)


async def _connect_seconds(a: Host, b: Host) -> float:
    start = time.perf_counter()
    await a.connect(b.peer_id, b.listen_addrs())
    return time.perf_counter() - start


async def test_dial_latency_to_a_local_peer_is_under_100ms() -> None:
    """Regression: py-libp2p's dial_peer waits 250 ms after every successful dial."""
    ka, aa = members(1)
    async with open_host(ka, LOCAL, aa, limits=FAST) as a:
        timings = []
        for n in range(2, 5):
            kb, ab = members(n)
            async with open_host(kb, LOCAL, ab) as b:
                timings.append(await _connect_seconds(a, b))
        assert max(timings) < 0.1, timings


async def test_stock_py_libp2p_dial_peer_waits_250ms() -> None:
    """Why the host dials addresses itself: the stock swarm's dial_peer is slow."""
    from libp2p.peer.id import ID
    from multiaddr import Multiaddr

    async with plain_host(node_key(11)) as plain_a, plain_host(node_key(12)) as plain_b:
        swarm = plain_a.get_network()
        target = ID(node_key(12).peer_id.to_bytes())
        swarm.peerstore.add_addrs(target, [Multiaddr(plain_addrs(plain_b)[0])], 3600)
        start = time.perf_counter()
        await swarm.dial_peer(target)
        assert time.perf_counter() - start >= 0.25


async def test_peer_that_was_down_is_dialable_as_soon_as_it_is_back() -> None:
    """Regression: py-libp2p blocks every dial to a peer for 60 s after one failure."""
    ka, aa = members(1)
    kb, ab = members(2)
    async with open_host(ka, LOCAL, aa, limits=FAST) as a:
        async with open_host(kb, LOCAL, ab) as b:
            addrs = b.listen_addrs()
        start = time.perf_counter()
        with pytest.raises(PeerUnreachable):
            await a.connect(kb.peer_id, addrs)
        assert time.perf_counter() - start < 0.5  # no retries with backoff either
        port = parse_addr(addrs[0]).port
        async with open_host(kb, [f"/ip4/127.0.0.1/tcp/{port}"], ab) as b_again:
            await a.connect(kb.peer_id, addrs)
            assert a.is_connected(b_again.peer_id)


async def test_stock_py_libp2p_blocks_a_peer_after_one_failed_dial() -> None:
    """Why the negative cache is disabled: the stock swarm refuses to redial for 60 s."""
    from libp2p.network.exceptions import SwarmException
    from libp2p.peer.id import ID
    from multiaddr import Multiaddr

    async with plain_host(node_key(11)) as plain_a:
        swarm = plain_a.get_network()
        async with plain_host(node_key(12)) as plain_b:
            addr = plain_addrs(plain_b)[0]
        target = ID(node_key(12).peer_id.to_bytes())
        swarm.peerstore.add_addrs(target, [Multiaddr(addr)], 3600)
        with pytest.raises(SwarmException):
            await swarm.dial_peer(target)
        port = parse_addr(addr).port
        ka, aa = members(12)
        async with open_host(ka, [f"/ip4/127.0.0.1/tcp/{port}"], aa):
            with pytest.raises(SwarmException, match="negative cache"):
                await swarm.dial_peer(target)


@pytest.mark.parametrize("security", ["plaintext", "secio"])
async def test_only_noise_is_spoken(security: str) -> None:
    """A host that offers only plaintext (or secio) can neither dial us nor be dialled."""
    from libp2p.peer.peerinfo import info_from_p2p_addr
    from multiaddr import Multiaddr

    key = node_key(1)
    async with (
        open_host(key, LOCAL, admission("open", key, None), limits=FAST) as ours,
        plain_host(node_key(5), security=security) as insecure,
    ):
        events = ours.subscribe()
        with pytest.raises(Exception) as info:  # py-libp2p's own error types
            with trio.fail_after(5):
                await insecure.connect(info_from_p2p_addr(Multiaddr(ours.listen_addrs()[0])))
        assert "Noise" not in type(info.value).__name__
        with pytest.raises(PeerUnreachable):
            await ours.connect(node_key(5).peer_id, plain_addrs(insecure))
        assert not ours.is_connected(node_key(5).peer_id)
        with pytest.raises(trio.WouldBlock):
            events.receive_nowait()


async def test_shutdown_with_many_connections_is_quick() -> None:
    ka, aa = members(1)
    async with open_host(ka, LOCAL, aa, limits=FAST) as hub:
        async with trio.open_nursery() as nursery:
            hosts: list[Host] = []

            async def spoke(n: int, task_status: trio.TaskStatus[None]) -> None:
                kb, ab = members(n)
                async with open_host(kb, LOCAL, ab) as h:
                    hosts.append(h)
                    await h.connect(hub.peer_id, hub.listen_addrs())
                    task_status.started()
                    await trio.sleep_forever()

            for n in range(2, 8):
                await nursery.start(spoke, n)
            assert len(hub.connected_peers()) == 6
            start = time.perf_counter()
            nursery.cancel_scope.cancel()
        assert time.perf_counter() - start < 2
