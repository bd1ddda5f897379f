"""Admission modes with real hosts: closed, members, open, and plain py-libp2p nodes."""

from __future__ import annotations

import pytest
import trio

from datanet.errors import NetworkError
from datanet.p2p import AdmissionRefused, Host, KadServer, PeerConnected, open_host
from datanet.p2p.streams import FramedStream
from datanet.testing.p2p import (
    FAST,
    LOCAL,
    NOW,
    admission,
    node_key,
    org_key,
    plain_addrs,
    plain_connect,
    plain_host,
    plain_kad_request,
)
from identity import TrustStore, issue_revocation, parse_revocation
from routing.wire import Message, MessageType

ORG_A, ORG_B = org_key(1), org_key(2)
FIND = Message(type=MessageType.FIND_NODE, key=b"target")


async def serve_kad(msg: Message, from_peer: bytes) -> Message:
    return Message(type=msg.type, key=b"served:" + msg.key)


async def ask_raw(stream: FramedStream) -> bytes:
    await stream.write_frame(b"\x08\x04", 100)  # FIND_NODE, no key
    return await stream.read_required(100)


async def wait_disconnected(host: Host, peer: object) -> None:
    with trio.fail_after(3):
        while host.is_connected(peer):  # type: ignore[arg-type]
            await trio.sleep(0.01)


async def test_closed_network_admits_trusted_orgs_only() -> None:
    a, b, c = node_key(1), node_key(2), node_key(3)
    trusted = (ORG_A, ORG_B)
    async with (
        open_host(a, LOCAL, admission("closed", a, ORG_A, trusted=trusted), limits=FAST) as ha,
        open_host(b, LOCAL, admission("closed", b, ORG_B, trusted=trusted), limits=FAST) as hb,
        open_host(c, LOCAL, admission("closed", c, org_key(3), trusted=trusted), limits=FAST) as hc,
    ):
        hb.kad.set_handler(serve_kad)
        await ha.connect(b.peer_id, hb.listen_addrs())
        assert (await ha.kad.request(b.peer_id, FIND)).key == b"served:target"
        assert hb.peer_org(a.peer_id) == ORG_A.org_id

        c_events, b_events = hc.subscribe(), hb.subscribe()
        with pytest.raises(AdmissionRefused, match="untrusted_organization"):
            await hc.connect(b.peer_id, hb.listen_addrs())
        await wait_disconnected(hb, c.peer_id)
        with pytest.raises(AdmissionRefused):
            await hc.kad.request(b.peer_id, FIND)
        for channel in (c_events, b_events):
            with pytest.raises(trio.WouldBlock):
                channel.receive_nowait()
        assert hb.kad.requests_served == 1


async def test_the_dialer_refuses_an_untrusted_listener() -> None:
    a, b = node_key(1), node_key(2)
    async with (
        open_host(a, LOCAL, admission("closed", a, ORG_A, trusted=(ORG_A,)), limits=FAST) as ha,
        open_host(b, LOCAL, admission("members", b, ORG_B), limits=FAST) as hb,
    ):
        # b accepts any org, so it admits a; a does not trust b's org.
        with pytest.raises(AdmissionRefused, match="untrusted_organization"):
            await ha.connect(b.peer_id, hb.listen_addrs())
        await wait_disconnected(hb, a.peer_id)


async def test_members_network_admits_any_org_but_not_nodes_without_a_chain() -> None:
    a, b, c = node_key(1), node_key(2), node_key(3)
    async with (
        open_host(a, LOCAL, admission("members", a, ORG_A), limits=FAST) as ha,
        open_host(b, LOCAL, admission("members", b, ORG_B), limits=FAST) as hb,
        open_host(c, LOCAL, admission("members", c, None), limits=FAST) as hc,
    ):
        hb.kad.set_handler(serve_kad)
        await ha.connect(b.peer_id, hb.listen_addrs())
        assert (await ha.kad.request(b.peer_id, FIND)).type == MessageType.FIND_NODE
        assert hb.peer_org(a.peer_id) == ORG_A.org_id
        with pytest.raises(AdmissionRefused):
            await hc.connect(b.peer_id, hb.listen_addrs())


@pytest.mark.parametrize("mode", ["closed", "members"])
async def test_plain_libp2p_node_cannot_use_datanet_protocols(mode: str) -> None:
    ours = node_key(1)
    policy = admission(mode, ours, ORG_A, trusted=(ORG_A,))
    async with (
        open_host(ours, LOCAL, policy, limits=FAST) as host,
        plain_host(node_key(9)) as plain,
    ):
        host.kad.set_handler(serve_kad)
        events = host.subscribe()
        await plain_connect(plain, host)
        with pytest.raises(Exception) as info:  # py-libp2p's stream errors
            await plain_kad_request(plain, host.peer_id, FIND)
        assert not isinstance(info.value, trio.TooSlowError)
        await wait_disconnected(host, node_key(9).peer_id)
        assert host.kad.requests_served == 0
        with pytest.raises(trio.WouldBlock):
            events.receive_nowait()
        # and we cannot use a plain node either
        with pytest.raises(AdmissionRefused):
            await host.connect(node_key(9).peer_id, plain_addrs(plain))


async def test_open_network_serves_and_uses_plain_libp2p_nodes() -> None:
    ours = node_key(1)
    seen: list[Message] = []

    async def plain_kad(msg: Message) -> Message:
        seen.append(msg)
        return Message(type=msg.type, key=b"from-plain")

    async with (
        open_host(ours, LOCAL, admission("open", ours, None), limits=FAST) as host,
        plain_host(node_key(9), kad=plain_kad) as plain,
    ):
        host.kad.set_handler(serve_kad)
        events = host.subscribe()
        # a plain node dials us and uses the DHT protocol
        await plain_connect(plain, host)
        reply = await plain_kad_request(plain, host.peer_id, FIND)
        assert reply.key == b"served:target"
        with trio.fail_after(3):
            connected = await events.receive()
            kad_server = await events.receive()
        assert connected == PeerConnected(node_key(9).peer_id, None, True, ())
        # identify told us it serves /datanet/kad/1.0.0, and where it listens
        assert kad_server == KadServer(
            node_key(9).peer_id, (plain_addrs(plain)[0].split("/p2p/")[0],)
        )
        # and we use it
        answer = await host.kad.request(node_key(9).peer_id, FIND)
        assert answer.key == b"from-plain"
        assert seen == [FIND]
        # py-libp2p identified us (our identify answer parses) and pings us
        from libp2p.host.ping import PingService
        from libp2p.peer.id import ID

        ours_id = ID(host.peer_id.to_bytes())
        with trio.fail_after(3):
            while "/datanet/kad/1.0.0" not in plain.get_peerstore().get_protocols(ours_id):
                await trio.sleep(0.02)
        assert len(await PingService(plain).ping(ours_id, ping_amt=2)) == 2


async def test_open_network_dialling_a_plain_node() -> None:
    ours = node_key(1)

    async def plain_kad(msg: Message) -> Message:
        return Message(type=msg.type, key=b"plain")

    async with (
        open_host(ours, LOCAL, admission("open", ours, None), limits=FAST) as host,
        plain_host(node_key(9), kad=plain_kad) as plain,
        plain_host(node_key(8)) as no_kad,
    ):
        events = host.subscribe()
        await host.connect(node_key(9).peer_id, plain_addrs(plain))
        await host.connect(node_key(8).peer_id, plain_addrs(no_kad))
        with trio.fail_after(3):
            got = [await events.receive() for _ in range(3)]
        servers = [e.peer for e in got if isinstance(e, KadServer)]
        assert servers == [node_key(9).peer_id]
        assert (await host.kad.request(node_key(9).peer_id, FIND)).key == b"plain"
        assert await host.ping(node_key(8).peer_id) < 0.5  # py-libp2p's ping service


async def test_revoked_or_expired_peers_lose_access_while_connected() -> None:
    a, b = node_key(1), node_key(2)
    clock = [NOW]
    trust = TrustStore()
    trust.trust(ORG_A.org_id)
    policy_b = admission("closed", b, ORG_A, trust=trust, clock=lambda: clock[0])
    async with (
        open_host(a, LOCAL, admission("closed", a, ORG_A, trusted=(ORG_A,)), limits=FAST) as ha,
        open_host(b, LOCAL, policy_b, limits=FAST) as hb,
    ):
        hb.kad.set_handler(serve_kad)
        await ha.connect(b.peer_id, hb.listen_addrs())
        await ha.kad.request(b.peer_id, FIND)
        # a's certificate (serial 1) is revoked by its org; b learns of it
        trust.add_revocation(
            parse_revocation(issue_revocation(ORG_A, [1], sequence=1, issued_at=NOW))
        )
        stream = await ha.open_stream(b.peer_id, "/datanet/kad/1.0.0")  # checked again
        with pytest.raises(NetworkError):
            await ask_raw(stream)
        await wait_disconnected(hb, a.peer_id)
        assert hb.kad.requests_served == 1

    clock[0] = NOW  # expiry: b's clock moves past a's not_after
    trust = TrustStore()
    trust.trust(ORG_A.org_id)
    policy_b = admission("closed", b, ORG_A, trust=trust, clock=lambda: clock[0])
    async with (
        open_host(a, LOCAL, admission("closed", a, ORG_A, trusted=(ORG_A,)), limits=FAST) as ha,
        open_host(b, LOCAL, policy_b, limits=FAST) as hb,
    ):
        hb.kad.set_handler(serve_kad)
        await ha.connect(b.peer_id, hb.listen_addrs())
        clock[0] = NOW + 7200
        stream = await ha.open_stream(b.peer_id, "/datanet/kad/1.0.0")
        with pytest.raises(NetworkError):
            await ask_raw(stream)
        await wait_disconnected(hb, a.peer_id)
