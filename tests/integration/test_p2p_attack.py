"""Connection floods and refused peers against real hosts on loopback (issue 12).

Each test here failed on main before the fix it names.
"""

from __future__ import annotations

import contextlib
import itertools

import trio

from datanet.p2p import Host, open_host
from datanet.p2p.limits import HostLimits
from datanet.testing.p2p import (
    LOCAL,
    admission,
    node_key,
    org_key,
    plain_connect,
    plain_host,
)

ORG = org_key(1)
ATTACKER_IP = "127.0.0.2"
NOISE_PROPOSAL = b"\x13/multistream/1.0.0\n\x07/noise\n"


def tcp_port(host: Host) -> int:
    return int(host.listen_addrs()[0].split("/")[4])


async def flood_one(port: int, variant: int) -> None:
    """Open one connection from the attacker's address, do ``variant``, close it."""
    sock = trio.socket.socket()
    try:
        await sock.bind((ATTACKER_IP, 0))
        await sock.connect(("127.0.0.1", port))
        if variant == 1:
            await sock.send(b"\xff" * 64)  # garbage
        elif variant == 2:
            await sock.send(NOISE_PROPOSAL)  # a header and /noise, then nothing
        # idle and half-negotiated connections hold on for longer than a
        # handshake may take; garbage is closed at once and reopened
        await trio.sleep(0.05 if variant == 1 else 6)
    except OSError:
        pass
    finally:
        sock.close()


async def flood(port: int, sockets: int, stop: trio.Event) -> None:
    """Keep ``sockets`` connections of the three variants open and reopening."""

    async def worker(n: int) -> None:
        for round_ in itertools.count():
            if stop.is_set():
                return
            await flood_one(port, (n + round_) % 3)

    async with trio.open_nursery() as nursery:
        for n in range(sockets):
            nursery.start_soon(worker, n)


async def test_a_flood_from_one_address_does_not_lock_out_a_member() -> None:
    """Gap 1: handshaking connections of one address filled every inbound slot."""
    limits = HostLimits(hello_timeout=3.0, dial_timeout=4.0, connections_per_address=32)
    node, fresh = node_key(1), node_key(2)
    async with (
        open_host(
            node, ["/ip4/0.0.0.0/tcp/0"], admission("members", node, ORG), limits=limits
        ) as target,
        open_host(fresh, LOCAL, admission("members", fresh, ORG), limits=limits) as newcomer,
    ):
        stop = trio.Event()
        most = 0
        async with trio.open_nursery() as nursery:
            nursery.start_soon(flood, tcp_port(target), 300, stop)
            await trio.sleep(2)  # the flood is in full swing
            addr = f"/ip4/127.0.0.1/tcp/{tcp_port(target)}"
            joined = False
            with trio.move_on_after(30):
                while not joined:
                    most = max(most, target.inbound_from(ATTACKER_IP))
                    try:
                        await newcomer.connect(node.peer_id, [addr], timeout=15)
                        joined = True
                    except Exception:
                        await trio.sleep(0.5)
            for _ in range(20):
                most = max(most, target.inbound_from(ATTACKER_IP))
                await trio.sleep(0.05)
            stop.set()
        assert joined, target.refused_connections()
        assert fresh.peer_id in target.connected_peers()
        assert most <= limits.connections_per_address
        refused = target.refused_connections()
        assert refused.get("per_address_limit", 0) + refused.get("pending_handshakes", 0) > 0


async def test_inbound_slots_are_released_when_connections_close() -> None:
    """py-libp2p 0.8.1 kept an inbound slot taken until the swarm stopped."""
    limits = HostLimits(max_connections=3, hello_timeout=2.0)
    node = node_key(1)
    async with open_host(node, LOCAL, admission("open", node, None), limits=limits) as target:
        for n in range(6):
            async with plain_host(node_key(20 + n)) as plain:
                with trio.fail_after(20):
                    await plain_connect(plain, target)
                    while node_key(20 + n).peer_id not in target.connected_peers():
                        await trio.sleep(0.05)
            with trio.fail_after(20):
                while target.connected_peers():
                    await trio.sleep(0.05)


async def test_a_refused_plain_peer_that_redials_loses_its_connection() -> None:
    """Gap 2: a plain node redialling right after its refusal kept its connection."""
    limits = HostLimits(hello_timeout=1.0, dial_timeout=2.0, request_timeout=3.0)
    node, plain_key = node_key(1), node_key(9)
    async with (
        open_host(node, LOCAL, admission("members", node, ORG), limits=limits) as target,
        plain_host(plain_key) as plain,
    ):
        await plain_connect(plain, target)
        with trio.fail_after(15):
            while "admission_refused" not in target.refused_connections() and not (
                target.refused_connections().get("recently_refused")
            ):
                if not target.is_connected(plain_key.peer_id):
                    break
                await trio.sleep(0.02)
        for _ in range(3):  # redial as soon as it is refused, again and again
            with trio.fail_after(15):
                while target.is_connected(plain_key.peer_id):
                    await trio.sleep(0.01)
            await trio.sleep(0.03)
            with contextlib.suppress(Exception):
                await plain_connect(plain, target)
        with trio.fail_after(15):
            while target.is_connected(plain_key.peer_id) or plain.get_network().get_connections(
                target_id(target)
            ):
                await trio.sleep(0.05)
        assert target.refused_connections().get("recently_refused", 0) >= 1


def target_id(host: Host) -> object:
    from libp2p.peer.id import ID

    return ID(host.peer_id.to_bytes())
