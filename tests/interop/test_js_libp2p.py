"""A stock js-libp2p node against real datanet nodes in ``open`` mode (and ``members``).

The js peer (``js/peer.mjs``) runs ``/datanet/kad/1.0.0`` with a structural
``dn`` validator that never checks signatures, and GossipSub with StrictNoSign:
so whatever a datanet node refuses is refused by datanet's own checks.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import trio

from datanet.devnet import DevnetNode
from datanet.node.driver import Node
from datanet.node.gossip import CATALOG_TOPIC
from datanet.records.ids import DatasetId
from datanet.testing.jspeer import JsPeer, JsPeerError
from datanet.testing.network import in_process_network
from datanet.testing.records import forge_body, signed_by
from identity.keys import PeerId

KAD = "/datanet/kad/1.0.0"
OPEN = {"network.admission": "open"}


async def until(check: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    """Poll a synchronous ``check`` until it is true (generous bound: loaded machine)."""
    with trio.move_on_after(timeout):
        while not check():
            await trio.sleep(0.05)
    assert check(), f"not within {timeout} s: {what}"


async def until_async(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    """Poll an async ``check`` (one that asks the js peer) until it is true."""
    with trio.fail_after(timeout):
        while not await check():
            await trio.sleep(0.1)


@contextlib.asynccontextmanager
async def joined(
    base: Path, js: JsPeer, count: int = 4
) -> AsyncIterator[tuple[list[DevnetNode], list[Node]]]:
    """``count`` open-mode datanet nodes, each in the js peer's kad routing table and
    holding the js peer in its own."""
    async with in_process_network(base, count, settings=OPEN) as (specs, nodes):
        js_id = PeerId.parse(js.peer_id)
        for node in nodes:
            await js.dial(node.listen_addrs()[0])

        async def identified() -> bool:
            for node in nodes:
                if KAD not in await js.protocols(str(node.peer_id)):
                    return False
            return {str(n.peer_id) for n in nodes} <= set(await js.routing_table())

        await until_async(identified)
        # Each datanet node counts the js peer as a kad server in its routing table.
        await until(
            lambda: all(js_id.to_bytes() in n.coordinator.table for n in nodes),
            "js peer in every routing table",
        )
        yield specs, nodes


def not_in_store(nodes: list[Node], key: bytes, value: bytes) -> bool:
    return all((entry := n.records.entry(key)) is None or entry.value != value for n in nodes)


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
                assert entry is not None
                assert entry.value == raw
        got = await nodes[3].resolve(dataset, refresh=True)
        assert got.raw == raw


async def test_provider_records_both_ways(tmp_path: Path, js_peer: JsPeer) -> None:
    async with joined(tmp_path, js_peer) as (specs, nodes):
        # datanet -> js: publishing announces the publisher under the dataset's provider key.
        raw = signed_by(specs[2], "interop/provided", 1, "Provided by datanet")
        dataset = DatasetId(specs[2].org.org_id, "interop/provided")
        await nodes[2].publish(raw)

        async def js_finds_datanet() -> bool:
            return str(nodes[2].peer_id) in await js_peer.find_providers(dataset.provider_key())

        await until_async(js_finds_datanet)
        # js -> datanet: a raw-codec CID whose multihash is another dataset's provider key.
        other = DatasetId(specs[1].org.org_id, "interop/provided-by-js").provider_key()
        await js_peer.provide(other)
        for node in (nodes[0], nodes[3]):
            found = await node.find_providers(other, 5)
            assert js_peer.peer_id in [str(peer) for peer, _ in found], found
            addrs = next(a for p, a in found if str(p) == js_peer.peer_id)
            bare = {a.rsplit("/p2p/", 1)[0] for a in js_peer.addrs}  # js sends them with /p2p/
            assert {a.rsplit("/p2p/", 1)[0] for a in addrs} & bare, addrs


async def test_forged_and_replayed_values_from_js_are_refused_and_never_served(
    tmp_path: Path, js_peer: JsPeer
) -> None:
    async with joined(tmp_path, js_peer) as (specs, nodes):
        ours = {str(n.peer_id) for n in nodes}
        genuine = signed_by(specs[0], "interop/forged", 2, "Genuine")
        dataset = DatasetId(specs[0].org.org_id, "interop/forged")
        key = dataset.dht_key()
        await nodes[0].publish(genuine)
        # A replay: the publisher's own earlier version, validly signed, lower sequence.
        older = signed_by(specs[0], "interop/forged", 1, "Genuine, older")
        # A higher sequence under the genuine signature: the js validator lets it by.
        over = forge_body(genuine, title="Forged", sequence=9)
        # And one for a dataset nobody published.
        lone_id = DatasetId(specs[1].org.org_id, "interop/forged-alone")
        lone = forge_body(signed_by(specs[1], "interop/forged-alone", 1, "x"), title="Forged")
        for k, forged in ((key, over), (lone_id.dht_key(), lone), (key, older)):
            acked, _ = await js_peer.put(k, forged)
            assert not set(acked) & ours, acked  # no datanet node echoed (stored) it
        await trio.sleep(1.0)  # give a late store every chance to show
        assert not_in_store(nodes, key, over)
        assert not_in_store(nodes, key, older)
        assert not_in_store(nodes, lone_id.dht_key(), lone)
        for node in nodes:
            assert (await node.resolve(dataset, refresh=True)).raw == genuine
            assert node.ledger.catalog.get(str(lone_id)) is None
        values, _ = await js_peer.get(key)  # what datanet nodes serve to js
        served = {value for peer, value in values if peer in ours}
        assert served == {genuine}, values
        values, _ = await js_peer.get(lone_id.dht_key())
        assert not [v for peer, v in values if peer in ours], values
        # js's get sends its own pick (the forgery it stored) back as a correction: refused too.
        await trio.sleep(1.0)
        assert not_in_store(nodes, key, over)
        assert not_in_store(nodes, lone_id.dht_key(), lone)


async def test_gossip_both_ways_and_invalid_messages_cost_the_js_peer(
    tmp_path: Path, js_peer: JsPeer
) -> None:
    async with joined(tmp_path, js_peer) as (specs, nodes):
        js_id = PeerId.parse(js_peer.peer_id).to_bytes()
        await js_peer.subscribe(CATALOG_TOPIC)
        await until(
            lambda: all(CATALOG_TOPIC in n.gossip.router.peer_topics(js_id) for n in nodes),
            "every datanet router knows the js peer's subscription",
        )

        async def js_sees_datanet_topic() -> bool:
            return {str(n.peer_id) for n in nodes} <= set(await js_peer.subscribers(CATALOG_TOPIC))

        await until_async(js_sees_datanet_topic)
        # GRAFTs cross both ways: each datanet router keeps the js peer in its mesh.
        await until(
            lambda: all(js_id in n.gossip.router.mesh(CATALOG_TOPIC) for n in nodes),
            "the js peer in every datanet mesh",
        )

        # datanet -> js: a published descriptor arrives, exact bytes.
        raw = signed_by(specs[0], "interop/gossip-out", 1, "Gossiped by datanet")
        await nodes[0].publish(raw)

        async def js_got_it() -> bool:
            return raw in [m.data for m in await js_peer.received(CATALOG_TOPIC)]

        await until_async(js_got_it)

        # js -> datanet: a valid descriptor reaches every catalog; search finds it.
        raw = signed_by(specs[1], "interop/gossip-in", 1, "Pelican census from js")
        dataset = str(DatasetId(specs[1].org.org_id, "interop/gossip-in"))
        recipients = await js_peer.publish(CATALOG_TOPIC, raw)
        assert set(recipients) & {str(n.peer_id) for n in nodes}, recipients
        await until(
            lambda: all(n.ledger.catalog.get(dataset) == raw for n in nodes), "in every catalog"
        )
        for node in nodes:
            page = node.search("pelican")
            assert [hit.dataset_id for hit in page.hits] == [dataset], page

        # js -> datanet, forged: dropped everywhere, and the js peer's score falls.
        forged = forge_body(
            signed_by(specs[2], "interop/gossip-forged", 1, "Forged heron count"),
            title="Forged heron count!",
        )
        forged_id = str(DatasetId(specs[2].org.org_id, "interop/gossip-forged"))
        rejected = [n.ledger.counters["rejected"] for n in nodes]
        recipients = await js_peer.publish(CATALOG_TOPIC, forged)
        receivers = [n for n in nodes if str(n.peer_id) in recipients]
        assert receivers, recipients
        await until(
            lambda: all(
                n.ledger.counters["rejected"] > rejected[nodes.index(n)] for n in receivers
            ),
            "every receiver rejected it",
        )
        await trio.sleep(1.0)  # a forward, had there been one, has arrived by now
        for node in nodes:
            assert node.ledger.catalog.get(forged_id) is None
            assert node.search("heron").hits == []
        for node in receivers:
            assert node.gossip.router.score(js_id, time.time()) < 0
        for node in nodes:  # every frame js sent decoded: only the content was refused
            assert node.gossip._transport.stats()["bad_frames"] == 0


async def test_members_mode_refuses_the_js_peer_quickly(tmp_path: Path, js_peer: JsPeer) -> None:
    async with in_process_network(tmp_path, 3) as (_, nodes):  # the devnet default: members
        node = nodes[0]
        js_id = PeerId.parse(js_peer.peer_id)
        started = time.monotonic()
        with contextlib.suppress(JsPeerError):  # refused mid-dial is fine too
            await js_peer.dial(node.listen_addrs()[0])

        async def gone() -> bool:
            return str(node.peer_id) not in await js_peer.connections() and not (
                node.host.is_connected(js_id)
            )

        await until_async(gone, timeout=30.0)
        elapsed = time.monotonic() - started
        # Refused as soon as it is known to be a plain peer: well before the 5 s hello timeout.
        quick = 0.8 * node.host.limits.hello_timeout
        assert elapsed < quick, elapsed
        await trio.sleep(2.0)
        # It stays out: js may dial again (its DHT remembers the node), and each attempt
        # is refused as quickly; no connection lingers or is kept.
        await until_async(gone, timeout=quick)
        assert all(str(p.peer_id) != js_peer.peer_id for p in node.peers())
        assert js_id.to_bytes() not in node.coordinator.table
