"""When the witness service gossips our own audit heads again (the start republish)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import trio
import trio.testing

from datanet.node.gossip import AUDIT_HEADS_TOPIC
from datanet.node.witness import HEAD_REPUBLISH, REPUBLISH_FIRST, WitnessService
from datanet.store.witness import WitnessStore
from identity.certs import TrustStore
from identity.keys import KeyPair


class FakeGossip:
    """What the service uses of the gossip driver: publish, add_topic, the router's mesh."""

    def __init__(self, mesh: frozenset[bytes]) -> None:
        self.sent: list[tuple[bytes, float]] = []
        self.router = SimpleNamespace(mesh=lambda topic: mesh)

    def publish(self, raw: bytes, topic: str) -> bytes:
        assert topic == AUDIT_HEADS_TOPIC
        self.sent.append((raw, trio.current_time()))
        return b"id"


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


@pytest.mark.parametrize(("mesh", "sends_at_start"), [(frozenset({b"peer"}), 1), (frozenset(), 2)])
async def test_the_start_republish_skips_a_head_that_already_reached_a_mesh(
    tmp_path: Path,
    autojump_clock: trio.testing.MockClock,
    mesh: frozenset[bytes],
    sends_at_start: int,
) -> None:
    # A node signs its first head at start; gossiping it again REPUBLISH_FIRST later,
    # as every node of a joining network did, doubled the witnessing work of a join.
    # A head gossiped while the node had no mesh yet reached nobody: then it goes again.
    gossip = FakeGossip(mesh)
    trail = FakeTrail(b"head-3")
    with WitnessStore(tmp_path / "w.sqlite", reported_by="me") as store:
        service = WitnessService(
            key=KeyPair.generate(),
            chain=(),
            org=None,
            trust=TrustStore(),
            store=store,
            transport=Any,  # type: ignore[arg-type]  # not used: nothing is fetched here
            gossip=gossip,  # type: ignore[arg-type]
            trail=trail,  # type: ignore[arg-type]
            clock=trio.current_time,
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(service._publish_heads)
            nursery.start_soon(service._republish)
            trail.callbacks[0](b"head-3")  # the trail signed its first head
            await trio.sleep(REPUBLISH_FIRST + 1)
            assert [raw for raw, _ in gossip.sent] == [b"head-3"] * sends_at_start
            await trio.sleep(HEAD_REPUBLISH)  # the periodic republish still happens
            assert len(gossip.sent) == sends_at_start + 1
            nursery.cancel_scope.cancel()
