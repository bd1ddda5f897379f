"""A stock js-libp2p node against real datanet nodes in ``open`` mode (and ``members``).

The js peer (``js/peer.mjs``) runs ``/datanet/kad/1.0.0`` with a structural
``dn`` validator that never checks signatures, and GossipSub with StrictNoSign:
so whatever a datanet node refuses is refused by datanet's own checks.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import trio

from datanet.devnet import DevnetNode
from datanet.node.driver import Node
from datanet.node.gossip import CATALOG_TOPIC
from datanet.records.ids import DatasetId
from datanet.testing.jspeer import JsPeer
from datanet.testing.network import in_process_network
from datanet.testing.records import forge_body, signed_by
from identity.keys import PeerId

KAD = "/datanet/kad/1.0.0"
MESHSUB = "/meshsub/1.1.0"
OPEN = {"network.admission": "open"}


async def until(check: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    """Poll a synchronous ``check`` until it is true (generous bound: loaded machine)."""
    with trio.fail_after(timeout):
        while not check():
            await trio.sleep(0.05)
    assert check(), what


async def until_async(check: Callable[[], object], timeout: float = 30.0) -> None:
    with trio.fail_after(timeout):
        while not await check():  # type: ignore[misc]
            await trio.sleep(0.1)


@contextlib.asynccontextmanager
async def joined(
    base: Path, js: JsPeer, count: int = 4
) -> AsyncIterator[tuple[list[DevnetNode], list[Node]]]:
    """``count`` open-mode datanet nodes, each connected to the js peer both ways round."""
    async with in_process_network(base, count, settings=OPEN) as (specs, nodes):
        js_id = PeerId.parse(js.peer_id)
        for node in nodes:
            await js.dial(node.listen_addrs()[0])

        async def identified() -> bool:
            for node in nodes:
                if KAD not in await js.protocols(str(node.peer_id)):
                    return False
            return True

        await until_async(identified)
        # Each datanet node counts the js peer as a kad server in its routing table.
        await until(
            lambda: all(js_id.to_bytes() in n.coordinator.table for n in nodes),
            "js peer in every routing table",
        )
        yield specs, nodes


def not_in_store(nodes: list[Node], key: bytes, value: bytes) -> bool:
    return all(
        (entry := n.records.entry(key)) is None or entry.value != value for n in nodes
    )


async def test_values_both_ways_are_byte_identical(tmp_path: Path, js_peer: JsPeer) -> None:
    async with joined(tmp_path, js_peer) as (specs, nodes):
        ours = {str(n.peer_id) for n in nodes}
        # datanet -> js
        raw = signed_by(specs[0], "interop/from-datanet", 1, "From datanet")
        key = DatasetId(specs[0].org.org_id, "interop/from-datanet").dht_key()
        await nodes[0].publish(raw)
        values, best = await js_peer.get(key)
        assert {peer for peer, _ in values} & ours, values
        assert all(value == raw for _, value in values)
        assert best == raw
        # js -> datanet
        raw = signed_by(specs[1], "interop/from-js", 1, "From js")
        dataset = DatasetId(specs[1].org.org_id, "interop/from-js")
        acked, errors = await js_peer.put(dataset.dht_key(), raw)
        assert set(acked) & ours, (acked, errors)
        for node in nodes:
            if str(node.peer_id) in acked:
                entry = node.records.entry(dataset.dht_key())
                assert entry is not None and entry.value == raw
        got = await nodes[3].resolve(dataset, refresh=True)
        assert got.raw == raw
