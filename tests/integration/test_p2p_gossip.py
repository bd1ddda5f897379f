"""The gossip transport between real hosts on 127.0.0.1 (/meshsub/1.1.0)."""

from __future__ import annotations

import trio

from datanet.p2p import MESHSUB_PROTOCOL, GossipLimits, GossipTransport, open_host
from datanet.testing.p2p import FAST, LOCAL, admission, node_key, org_key
from identity.keys import PeerId
from routing.gossip.wire import RPC, GossipWireLimits, PubMessage, SubOpts

ORG = org_key(1)


class Recorder:
    def __init__(self) -> None:
        self.rpcs: list[tuple[PeerId, RPC]] = []
        self.peers: list[tuple[PeerId, bool]] = []
        self.changed = trio.Event()

    def on_rpc(self, peer: PeerId, rpc: RPC) -> None:
        self.rpcs.append((peer, rpc))
        self.changed.set()

    def on_peer(self, peer: PeerId, joined: bool, outbound: bool) -> None:
        self.peers.append((peer, joined))
        self.changed.set()

    async def wait(self, check: object, timeout: float = 10.0) -> None:
        with trio.fail_after(timeout):
            while not check():  # type: ignore[operator]
                self.changed = trio.Event()
                await self.changed.wait()


def pair() -> tuple[tuple[object, object], tuple[object, object]]:
    ka, kb = node_key(1), node_key(2)
    return (ka, admission("members", ka, ORG)), (kb, admission("members", kb, ORG))


async def test_rpcs_flow_both_ways_and_peers_come_and_go() -> None:
    (ka, pa), (kb, pb) = pair()
    ra, rb = Recorder(), Recorder()
    async with (
        open_host(ka, LOCAL, pa, limits=FAST) as a,
        open_host(kb, LOCAL, pb, limits=FAST) as b,
    ):
        ta, tb = GossipTransport(a), GossipTransport(b)
        ta.start(ra.on_rpc, ra.on_peer)
        tb.start(rb.on_rpc, rb.on_peer)
        await a.connect(b.peer_id, b.listen_addrs())
        await ra.wait(lambda: (b.peer_id, True) in ra.peers)
        await rb.wait(lambda: (a.peer_id, True) in rb.peers)
        hello = RPC(subscriptions=(SubOpts(True, "/t"),))
        for n in range(50):  # many frames on the one stream
            assert ta.send(b.peer_id, RPC(publish=(PubMessage("/t", b"m%d" % n),)))
        assert tb.send(a.peer_id, hello)
        await rb.wait(lambda: sum(len(r.publish) for _, r in rb.rpcs) == 50)
        await ra.wait(lambda: len(ra.rpcs) == 1)
        assert [m.data for _, r in rb.rpcs for m in r.publish] == [b"m%d" % n for n in range(50)]
        assert ra.rpcs[0] == (b.peer_id, hello)
        assert ta.stats()["rpcs_sent"] == 50
        await a.disconnect(b.peer_id)
        await ra.wait(lambda: (b.peer_id, False) in ra.peers)
        await rb.wait(lambda: (a.peer_id, False) in rb.peers)


async def test_an_oversized_or_junk_frame_resets_only_that_stream() -> None:
    (ka, pa), (kb, pb) = pair()
    ra, rb = Recorder(), Recorder()
    async with (
        open_host(ka, LOCAL, pa, limits=FAST) as a,
        open_host(kb, LOCAL, pb, limits=FAST) as b,
    ):
        small = GossipLimits(wire=GossipWireLimits(max_rpc_size=4096))
        GossipTransport(a).start(ra.on_rpc, ra.on_peer)
        tb = GossipTransport(b, limits=small)
        tb.start(rb.on_rpc, rb.on_peer)
        await a.connect(b.peer_id, b.listen_addrs())
        stream = await a.open_stream(b.peer_id, MESHSUB_PROTOCOL)
        await stream.write_frame(b"\xff\xff\xff junk", 1 << 20)
        with trio.fail_after(10):
            while tb.stats()["bad_frames"] == 0:
                await trio.sleep(0.02)
        assert rb.rpcs == []
        assert a.is_connected(b.peer_id)  # the connection stays; only the stream went


async def test_a_full_queue_drops_and_counts() -> None:
    (ka, pa), (kb, pb) = pair()
    ra = Recorder()
    async with (
        open_host(ka, LOCAL, pa, limits=FAST) as a,
        open_host(kb, LOCAL, pb, limits=FAST) as b,
    ):
        ta = GossipTransport(a, limits=GossipLimits(queue=2))
        ta.start(ra.on_rpc, ra.on_peer)
        await a.connect(b.peer_id, b.listen_addrs())
        rpc = RPC(publish=(PubMessage("/t", b"x"),))
        results = [ta.send(b.peer_id, rpc) for _ in range(10)]  # no checkpoint: nothing drains
        assert results[:2] == [True, True]
        assert not all(results)
        assert ta.stats()["dropped_queue_full"] == results.count(False)


async def test_queued_rpcs_go_out_coalesced_in_fewer_frames() -> None:
    (ka, pa), (kb, pb) = pair()
    ra, rb = Recorder(), Recorder()
    async with (
        open_host(ka, LOCAL, pa, limits=FAST) as a,
        open_host(kb, LOCAL, pb, limits=FAST) as b,
    ):
        ta = GossipTransport(a, limits=GossipLimits(queue=1000))
        ta.start(ra.on_rpc, ra.on_peer)
        GossipTransport(b).start(rb.on_rpc, rb.on_peer)
        await a.connect(b.peer_id, b.listen_addrs())
        for n in range(300):  # queued without a checkpoint: the writer finds them all waiting
            assert ta.send(b.peer_id, RPC(publish=(PubMessage("/t", b"%d" % n + b"x" * 900),)))
        await rb.wait(lambda: sum(len(r.publish) for _, r in rb.rpcs) == 300)
        got = [m.data.split(b"x")[0] for _, r in rb.rpcs for m in r.publish]
        assert got == [b"%d" % n for n in range(300)]  # all of them, in order
        stats = ta.stats()
        assert stats["rpcs_sent"] == 300
        assert 300 / 64 <= stats["frames_sent"] < 300  # merged, but never past 64 per RPC
        assert len(rb.rpcs) == stats["frames_sent"]  # a frame arrives as one merged RPC
        assert max(len(r.publish) for _, r in rb.rpcs) <= 64
