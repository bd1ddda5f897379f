"""Every record a node's store accepts reaches the catalog and the schedule through one sink.

Paths: publish (own), ``routing put`` (own), an inbound PUT_VALUE (a replica).
Later paths (gossip, catalog sync) must go through the store as well.
"""

from __future__ import annotations

import time
from pathlib import Path

from datanet.records.ids import DatasetId
from datanet.records.validators import org_record_key, revocation_key
from datanet.testing.network import in_process_network, raw_put
from datanet.testing.records import signed_by
from identity.certs import issue_revocation
from identity.orgs import issue_org_record


async def test_a_descriptor_accepted_through_each_path_is_searchable(tmp_path: Path) -> None:
    async with in_process_network(tmp_path, 4) as (specs, nodes):
        publisher, putter, receiver, sender = nodes

        # publish
        published = signed_by(specs[0], "paths/publish", 1, "Walrus census")
        await publisher.publish(published)
        assert [h.title for h in publisher.search("walrus", limit=5).hits] == ["Walrus census"]
        publish_key = DatasetId(specs[0].org.org_id, "paths/publish").dht_key()
        assert publish_key in publisher.schedule.values()

        # routing put (a descriptor put as a plain DHT value by the node that signed it)
        put_raw = signed_by(specs[1], "paths/put", 1, "Narwhal sightings")
        put_key = DatasetId(specs[1].org.org_id, "paths/put").dht_key()
        await putter.routing_put(put_key, put_raw)
        assert [h.title for h in putter.search("narwhal", limit=5).hits] == ["Narwhal sightings"]
        assert put_key in putter.schedule.values()

        # inbound PUT_VALUE, sent raw so no other path can have indexed it
        inbound = signed_by(specs[3], "paths/inbound", 1, "Beluga acoustics")
        inbound_key = DatasetId(specs[3].org.org_id, "paths/inbound").dht_key()
        echoed, _ = await raw_put(sender, receiver, inbound_key, inbound)
        assert echoed
        assert [h.title for h in receiver.search("beluga", limit=5).hits] == ["Beluga acoustics"]
        # a replica is not ours to republish
        assert inbound_key not in receiver.schedule.values()


async def test_an_own_descriptor_replaced_from_elsewhere_is_no_longer_republished(
    tmp_path: Path,
) -> None:
    async with in_process_network(tmp_path, 4) as (specs, nodes):
        # specs 0 and 3 belong to the same org (provision assigns orgs round robin)
        assert specs[0].org == specs[3].org
        first = signed_by(specs[0], "moves/here", 1, "Before the move")
        await nodes[0].publish(first)
        key = DatasetId(specs[0].org.org_id, "moves/here").dht_key()
        assert key in nodes[0].schedule.values()
        assert nodes[0].status()["own_descriptors"] == 1

        moved = signed_by(specs[3], "moves/here", 2, "After the move")
        echoed, _ = await raw_put(nodes[3], nodes[0], key, moved)
        assert echoed
        assert key not in nodes[0].schedule.values()
        assert nodes[0].status()["own_descriptors"] == 0
        assert [h.title for h in nodes[0].search("move", limit=5).hits] == ["After the move"]


async def test_org_records_and_revocation_lists_travel_through_the_dht(tmp_path: Path) -> None:
    """The node's validator takes /dn-org/ and /dn-rev/ values: stored, replicated, served."""
    async with in_process_network(tmp_path, 4) as (specs, nodes):
        org = specs[0].org
        now = int(time.time())
        org_record = issue_org_record(
            org.key, name=org.name, gateways=(), sequence=1, expires=now + 3600
        )
        revocations = issue_revocation(org.key, [99], sequence=1, issued_at=now)
        for key, value in (
            (org_record_key(org.org_id), org_record),
            (revocation_key(org.org_id), revocations),
        ):
            assert await nodes[0].routing_put(key, value) >= 1
            assert key in nodes[0].schedule.values()  # own: republished like descriptors
            assert await nodes[2].routing_get(key) == value


async def test_maintenance_prunes_the_address_book_and_forgets_expired_own_records(
    tmp_path: Path,
) -> None:
    async with in_process_network(tmp_path, 3) as (specs, nodes):
        node = nodes[0]
        await node.publish(signed_by(specs[0], "short/lived", 1, "Short lived"))  # expires in 1 h
        key = DatasetId(specs[0].org.org_id, "short/lived").dht_key()
        assert key in node.schedule.values()
        storage = node._storage
        storage.upsert_peer(b"long-gone", [b"/ip4/10.0.0.1/tcp/1"], now=1.0)

        node._housekeeping(time.time() + 2 * 3600)  # what the maintenance task runs when due

        assert storage.get_peer(b"long-gone") is None  # not seen for PEER_MAX_AGE
        assert len(storage.load_peers()) >= 1  # the live peers stay
        assert key not in node.schedule.values()  # expired: nothing left to republish
        assert node.status()["own_descriptors"] == 0
