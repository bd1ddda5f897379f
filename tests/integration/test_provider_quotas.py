"""Strangers cannot fill a node's provider store (issue 12, gap 4).

In open mode any fresh identity is admitted. Before the stranger quotas, three
fresh identities took a node from 2 to 362 provider records (120 each, the
per-peer rate), persisted for 48 h. Now strangers from one address add at most
``dht.stranger_providers_per_address`` new records per hour, while an admitted
member (a peer with a membership certificate) still adds at its own rate.
"""

from __future__ import annotations

import contextlib
import random
from pathlib import Path

import trio

from datanet.errors import DatanetError
from datanet.node.driver import Node
from datanet.p2p import open_host
from datanet.testing.network import in_process_network
from datanet.testing.p2p import FAST, LOCAL, admission, node_key
from datanet.testing.raw import send_raw_kad
from routing.wire import Message, MessageType, Peer, encode_message

PER_ADDRESS = 40  # the default of dht.stranger_providers_per_address (docs/operators.md)
PER_IDENTITY = 120  # the per-peer rate limit: what one identity could add at once
BATCH = 10


def _provide_frames(me: Peer, keys: list[bytes]) -> list[bytes]:
    frames = [
        encode_message(Message(MessageType.ADD_PROVIDER, key, provider_peers=(me,))) for key in keys
    ]
    # A PING last: its answer proves every frame before it was handled (or the
    # stream was reset because one was refused).
    return [*frames, encode_message(Message(MessageType.PING))]


async def _provide(host: object, me: Peer, victim: Node, keys: list[bytes]) -> None:
    for start in range(0, len(keys), BATCH):
        with contextlib.suppress(DatanetError):
            await send_raw_kad(
                host,  # type: ignore[arg-type]
                victim.peer_id,
                _provide_frames(me, keys[start : start + BATCH]),
                addrs=victim.listen_addrs(),
                want=1,
                timeout=30.0,
            )


def _fresh_keys(rng: random.Random, count: int) -> list[bytes]:
    return [b"\x12\x20" + rng.randbytes(32) for _ in range(count)]


async def test_three_fresh_identities_cannot_flood_the_provider_store(tmp_path: Path) -> None:
    rng = random.Random(12)
    async with in_process_network(tmp_path, 3, start=2, settings={"network.admission": "open"}) as (
        _,
        nodes,
    ):
        victim, member = nodes
        before = len(victim.providers)
        for i in range(3):
            key = node_key(300 + i)
            async with open_host(key, LOCAL, admission("open", key, None), limits=FAST) as host:
                me = Peer(key.peer_id.to_bytes(), ())
                await _provide(host, me, victim, _fresh_keys(rng, PER_IDENTITY))
        added = len(victim.providers) - before
        print(f"provider records: {before} -> {len(victim.providers)} after 3 strangers")
        # main: 2 -> 362 (every announcement stored)
        assert added <= PER_ADDRESS
        assert victim.providers.stranger_count == added
        stored = victim._storage.load_providers()
        assert sum(1 for e in stored if e.stranger) == added

        # An admitted member is not held to the strangers' quotas.
        me = Peer(member.peer_id.to_bytes(), ())
        keys = _fresh_keys(rng, 60)
        await _provide(member.host, me, victim, keys)
        with trio.fail_after(30):
            while not victim.providers.get(keys[-1], now=0.0):
                await trio.sleep(0.05)
        held = {k for k in keys if victim.providers.get(k, now=0.0)}
        assert held == set(keys)
        assert victim.providers.stranger_count == added
