"""Publish answers at ``dht.put_quorum`` acks; the rest of the put finishes in the background.

Real in-process nodes (libp2p on 127.0.0.1, SQLite, signatures). Waits poll for
conditions with generous bounds: the machine is shared and loaded.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

import trio

from datanet.devnet import provision
from datanet.node.config import load_config
from datanet.node.driver import Node
from datanet.node.home import Home
from datanet.node.startup import open_node
from datanet.records.ids import DatasetId
from datanet.testing.network import in_process_network
from datanet.testing.records import signed_by
from routing.schedule import Republish


async def until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    with trio.fail_after(timeout):
        while not condition():
            await trio.sleep(0.05)


def holders(nodes: list[Node], key: bytes, raw: bytes) -> int:
    """Peers (not the publisher, nodes[0]) holding ``raw`` under ``key`` in their DHT store."""
    return sum(1 for n in nodes[1:] if n.records.get(key, now=time.time()) == raw)


def sent(node: Node, request: str) -> int:
    """Kad requests of one kind (``find_node``, ``put_value``, ...) the node sent."""
    return sum(
        v
        for (d, kind, _), v in node.host.kad.request_counts.items()
        if d == "out" and kind == request
    )


def find_nodes_sent(node: Node) -> int:
    return sent(node, "find_node")


def puts_sent(node: Node) -> int:
    return sent(node, "put_value")


def providing(nodes: list[Node], provider_key: bytes) -> int:
    """Peers (not nodes[0]) that hold nodes[0] as a provider of ``provider_key``."""
    me = nodes[0].coordinator.self_peer.id
    return sum(
        1
        for n in nodes[1:]
        if any(p.id == me for p in n.providers.get(provider_key, now=time.time(), limit=20))
    )


async def test_publish_answers_at_the_quorum_and_every_closest_peer_holds_it_soon(
    tmp_path: Path,
) -> None:
    async with in_process_network(tmp_path, 8, settings={"dht.put_quorum": 2}) as (specs, nodes):
        raw = signed_by(specs[0], "quorum/a", 1, "quorum")
        key = DatasetId(specs[0].org.org_id, "quorum/a").dht_key()
        outcome = await nodes[0].publish(raw)
        held_then = holders(nodes, key, raw)  # no checkpoint since the answer
        assert outcome.replicas >= 2
        assert outcome.replicas <= held_then, "the answer claimed acks that never happened"
        assert outcome.target >= outcome.replicas
        # The background writes reach every other node (7 < k: all are among the closest).
        await until(lambda: holders(nodes, key, raw) == len(nodes) - 1)
        await until(lambda: nodes[0].routing_stats()["puts_under_way"] == 0)
        assert nodes[0].put_counts["completed"] >= 1
        assert nodes[0].put_counts["timed_out"] == 0
        # Every peer was among the k nearest when the walk asked it: each write
        # rode on its FIND_NODE, and no PUT_VALUE was needed.
        assert puts_sent(nodes[0]) == 0
        # The provider announcement's walk carries the entry the same way.
        provider_key = DatasetId(specs[0].org.org_id, "quorum/a").provider_key()
        await until(lambda: providing(nodes, provider_key) == len(nodes) - 1)
        await until(lambda: not nodes[0].coordinator.running())
        assert sent(nodes[0], "add_provider") == 0


async def test_a_publish_nobody_can_store_still_answers_with_zero_replicas(
    tmp_path: Path,
) -> None:
    _, specs = provision(tmp_path, orgs=1, nodes=2)
    home = Home(specs[0].home)  # its bootstrap peer (specs[1]) never starts
    config = load_config(home.config_path)
    async with open_node(specs[0].home, config, home.load_node_key(), rng=random.Random(1)) as node:
        outcome = await node.publish(signed_by(specs[0], "alone/a", 1, "alone"))
        assert (outcome.replicas, outcome.pending) == (0, 0)


async def test_a_republish_with_a_fresh_closest_set_walks_nowhere(tmp_path: Path) -> None:
    async with in_process_network(tmp_path, 6, settings={"dht.put_quorum": 2}) as (specs, nodes):
        raw = signed_by(specs[0], "quorum/b", 1, "quorum")
        key = DatasetId(specs[0].org.org_id, "quorum/b").dht_key()
        node = nodes[0]
        await node.publish(raw)
        await until(lambda: node.routing_stats()["puts_under_way"] == 0)
        await until(lambda: holders(nodes, key, raw) == len(nodes) - 1)
        # The provider announcement walks too; wait until it is over.
        await until(lambda: not node.coordinator.running())

        finds, puts = find_nodes_sent(node), puts_sent(node)
        await node._republish([Republish(key)])
        await until(lambda: node.routing_stats()["puts_under_way"] == 0)
        assert find_nodes_sent(node) == finds, "a republish with a fresh closest set walked"
        assert puts_sent(node) - puts == len(nodes) - 1
        assert node.put_counts["direct"] == 1

        # Without a known closest set, the same republish walks again.
        node._closest_sets.clear()
        await node._republish([Republish(key)])
        await until(lambda: node.routing_stats()["puts_under_way"] == 0)
        assert find_nodes_sent(node) > finds


async def test_puts_under_way_are_bounded_and_a_publish_beyond_waits(tmp_path: Path) -> None:
    async with in_process_network(tmp_path, 5, settings={"dht.put_quorum": 1}) as (specs, nodes):
        node = nodes[0]
        node._put_slots = trio.Semaphore(1)
        most = 0
        outcomes = []

        async def watch() -> None:
            nonlocal most
            while True:
                most = max(most, len(node._puts))
                await trio.sleep(0)

        async def publish(name: str) -> None:
            outcomes.append(await node.publish(signed_by(specs[0], name, 1, "bounded")))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            with trio.fail_after(120):
                async with trio.open_nursery() as publishers:
                    for i in range(3):
                        publishers.start_soon(publish, f"bounded/{i}")
            nursery.cancel_scope.cancel()
        assert most == 1, "more puts were under way than the node allows"
        assert len(outcomes) == 3
        assert all(o.replicas >= 1 for o in outcomes)
        await until(lambda: node.routing_stats()["puts_under_way"] == 0)
        assert node.put_counts["completed"] == 3
