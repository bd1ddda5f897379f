"""The complete catalog on real in-process nodes: gossip, junk, anti-entropy, org keep-alive."""

from __future__ import annotations

import time
from pathlib import Path

import trio

from datanet.node.driver import Node
from datanet.node.gossip import CATALOG_TOPIC
from datanet.records.ids import DatasetId
from datanet.testing.network import in_process_network
from datanet.testing.records import forge_body, signed_by
from routing.gossip.router import ValidationResult
from routing.gossip.wire import RPC, PubMessage


async def held_everywhere(nodes: list[Node], dataset: str, timeout: float = 20.0) -> None:
    with trio.fail_after(timeout):
        while not all(n.ledger.catalog.get(dataset) is not None for n in nodes):
            await trio.sleep(0.05)


async def test_gossip_carries_a_publish_to_every_catalog(tmp_path: Path) -> None:
    async with in_process_network(tmp_path, 8) as (specs, nodes):
        raw = signed_by(specs[2], "birds/count", 1, "Bird count")
        dataset = str(DatasetId(specs[2].org.org_id, "birds/count"))
        events = []
        async with nodes[6].feed.subscribe("bird") as watch:
            await nodes[2].publish(raw)
            await held_everywhere(nodes, dataset)
            with trio.fail_after(5):
                async for event in watch:
                    events.append(event)
                    break
        assert events[0].dataset_id == dataset
        assert events[0].kind == "new"
        assert all(n.ledger.catalog.get(dataset) == raw for n in nodes)


async def test_junk_by_gossip_is_rejected_and_never_forwarded(tmp_path: Path) -> None:
    async with in_process_network(tmp_path, 5) as (specs, nodes):
        attacker, victim = nodes[0], nodes[1]
        genuine = signed_by(specs[3], "fish/stock", 1, "Fish stock")
        forged = forge_body(genuine, title="Fish stock (forged)")
        # Straight onto the wire, past the attacker's own ledger.
        attacker.gossip._transport.send(
            victim.peer_id, RPC(publish=(PubMessage(CATALOG_TOPIC, forged),))
        )
        with trio.fail_after(10):
            while victim.ledger.counters["rejected"] == 0:
                await trio.sleep(0.05)
        await trio.sleep(1.0)
        dataset = str(DatasetId(specs[3].org.org_id, "fish/stock"))
        assert all(n.ledger.catalog.get(dataset) is None for n in nodes)
        assert victim.gossip.router.stats()["rejected"] >= 1
        assert victim.gossip.router.score(attacker.peer_id.to_bytes(), time.time()) < 0


async def test_anti_entropy_fills_a_catalog_gossip_missed(tmp_path: Path) -> None:
    async with in_process_network(tmp_path, 4) as (specs, nodes):
        raws = [signed_by(specs[0], f"missed/{i}", 1, f"missed {i}") for i in range(30)]
        for raw in raws:  # straight into one node's ledger: nobody else heard of them
            assert nodes[0].ledger.ingest(raw).result is ValidationResult.ACCEPT
        sessions = await nodes[3].catalog_sync(peer=nodes[0].peer_id)
        assert sessions[0]["ok"], sessions
        for i in range(30):
            assert nodes[3].ledger.catalog.get(str(DatasetId(specs[0].org.org_id, f"missed/{i}")))


async def test_org_keep_alive_revives_an_offline_publishers_dataset(tmp_path: Path) -> None:
    # 6 provisioned, 5 running: node 5 (org of node 2) is offline for good.
    async with in_process_network(tmp_path, 6, start=5) as (specs, nodes):
        offline, keeper = specs[5], nodes[2]
        assert offline.org == specs[2].org
        raw = signed_by(offline, "kept/alive", 1, "Kept alive")
        dataset = DatasetId(offline.org.org_id, "kept/alive")
        assert keeper.ledger.ingest(raw).result is ValidationResult.ACCEPT
        revived = await keeper.keep_alive_once()
        assert revived == 1
        got = await nodes[0].resolve(dataset, refresh=True)
        assert got.raw == raw
        providers = await nodes[4].find_providers(str(dataset).encode(), 5)
        assert keeper.peer_id in [p for p, _ in providers]


async def test_a_record_that_arrives_by_dht_put_first_is_gossiped_on(tmp_path: Path) -> None:
    """A publisher's DHT put can overtake its gossip copy; the copy is then "not newer".

    The node that took the put must relay the record to its gossip mesh itself, or
    a node that is the only way onward (an organization's gateway) stops it (the
    netns access test's lost revocation). Relayed, not flood-published: that is
    for the publisher's own copy.
    """
    async with in_process_network(tmp_path, 3) as (specs, nodes):
        sender, relay = nodes[0], nodes[1]
        raw = signed_by(specs[0], "put/first", 1, "Put before gossip")
        dataset_id = DatasetId(specs[0].org.org_id, "put/first")
        key = dataset_id.dht_key()
        relayed = relay.gossip.router.stats()["relayed"]
        published = relay.gossip.router.stats()["published"]
        # A bare DHT put, past the sender's record store and gossip.
        await sender._query("put_value", lambda t: sender.coordinator.put_value(key, raw, t))
        with trio.fail_after(10):
            while (
                relay.ledger.catalog.get(str(DatasetId(specs[0].org.org_id, "put/first"))) is None
            ):
                await trio.sleep(0.05)
        assert relay.gossip.router.stats()["relayed"] == relayed + 1
        assert relay.gossip.router.stats()["published"] == published
        await held_everywhere(nodes, str(dataset_id))
        # The same record put again is not new: it is not gossiped a second time.
        await sender._query("put_value", lambda t: sender.coordinator.put_value(key, raw, t))
        await trio.sleep(0.5)
        assert relay.gossip.router.stats()["relayed"] == relayed + 1
