"""How the witness service announces our own audit heads: to whom, and when again."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio
import trio.testing

from datanet.errors import PeerUnreachable
from datanet.node.witness import HEAD_REPUBLISH, REPUBLISH_FIRST, WitnessService
from datanet.store.witness import WitnessStore
from identity.certs import TrustStore
from identity.keys import KeyPair, PeerId


class FakeTransport:
    """What the service uses of the audit transport to announce our heads: ``announce``."""

    def __init__(self, reachable: bool) -> None:
        self.sent: list[tuple[PeerId, bytes, float]] = []
        self.reachable = reachable

    async def announce(self, peer: PeerId, head: bytes, *, addrs: Sequence[str] = ()) -> bool:
        self.sent.append((peer, head, trio.current_time()))
        if not self.reachable:
            raise PeerUnreachable(f"{peer} is not reachable")
        return True


class FakeTrail:
    """An audit trail whose latest head is ``raw`` (3 entries)."""

    def __init__(self, raw: bytes) -> None:
        self.log = SimpleNamespace(
            latest_head=lambda: SimpleNamespace(head=SimpleNamespace(size=3), raw=raw)
        )
        self.callbacks: list[Callable[[bytes], None]] = []

    def on_head(self, callback: Callable[[bytes], None]) -> None:
        self.callbacks.append(callback)

    def add_cosignature(self, raw: bytes) -> bool:
        return False


def service(tmp_path: Path, transport: FakeTransport, peers: list[PeerId]) -> WitnessService:
    return WitnessService(
        key=KeyPair.generate(),
        chain=(),
        org=None,
        trust=TrustStore(),
        store=WitnessStore(tmp_path / "w.sqlite", reported_by="me"),
        transport=transport,  # type: ignore[arg-type]
        trail=FakeTrail(b"head-3"),  # type: ignore[arg-type]
        announce_to=lambda: peers,
        clock=trio.current_time,
    )


async def test_a_head_goes_to_each_peer_the_node_names_once(tmp_path: Path) -> None:
    peers = [KeyPair.generate().peer_id for _ in range(5)]
    transport = FakeTransport(reachable=True)
    witness = service(tmp_path, transport, peers)
    assert await witness.announce(b"head-3") == 5
    assert sorted(str(p) for p, _, _ in transport.sent) == sorted(str(p) for p in peers)
    assert {raw for _, raw, _ in transport.sent} == {b"head-3"}
    assert witness.counters["heads_announced"] == 1
    witness.store.close()


@pytest.mark.parametrize(("reachable", "sends_at_start"), [(True, 1), (False, 2)])
async def test_the_start_republish_skips_a_head_that_already_reached_a_peer(
    tmp_path: Path,
    autojump_clock: trio.testing.MockClock,
    reachable: bool,
    sends_at_start: int,
) -> None:
    # A node signs its first head at start; announcing it again REPUBLISH_FIRST later,
    # as every node of a joining network did, doubled the witnessing work of a join.
    # A head that reached no peer (none reachable yet) goes again.
    transport = FakeTransport(reachable)
    witness = service(tmp_path, transport, [KeyPair.generate().peer_id])
    trail = witness.trail
    assert isinstance(trail, FakeTrail)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(witness._publish_heads)
        nursery.start_soon(witness._republish)
        trail.callbacks[0](b"head-3")  # the trail signed its first head
        await trio.sleep(REPUBLISH_FIRST + 1)
        assert [raw for _, raw, _ in transport.sent] == [b"head-3"] * sends_at_start
        await trio.sleep(HEAD_REPUBLISH)  # the periodic republish still happens
        assert len(transport.sent) == sends_at_start + 1
        nursery.cancel_scope.cancel()
    witness.store.close()
