"""Forged, replayed and oversized records sent over the wire are refused and never served.

Each attack goes from an admitted member node to every other node as a raw
PUT_VALUE frame. "Refused" is checked three ways: the receiver does not echo
the record (the kad-dht acknowledgement of a stored record), the receiver's
record store does not hold it, and no node's resolve ever returns it.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import trio

from datanet.errors import (
    NotFound,
    ScopeError,
    SignatureError,
    StaleRecord,
)
from datanet.node.driver import Node
from datanet.node.home import Home
from datanet.records.descriptor import verify_descriptor
from datanet.records.ids import DatasetId
from datanet.testing.network import in_process_network, raw_put
from datanet.testing.records import forge_body, node_descriptor, sign_as, signed_by

OWNER, ATTACKER = 1, 2  # nodes of two different organizations


async def assert_everyone_serves(nodes: list[Node], dataset: DatasetId, expected: bytes) -> None:
    """Every node's store holds ``expected`` and every resolve through the DHT returns it."""
    key = dataset.dht_key()
    for node in nodes:
        entry = node.records.entry(key)
        assert entry is not None
        assert entry.value == expected
    for node in nodes:
        with trio.fail_after(10):
            got = await node.resolve(dataset, refresh=True)
        assert got.raw == expected


async def test_forged_descriptors_are_refused_and_never_served(tmp_path: Path) -> None:
    async with in_process_network(tmp_path, 5) as (specs, nodes):
        owner, attacker = specs[OWNER], specs[ATTACKER]
        assert owner.org != attacker.org
        victims = [n for i, n in enumerate(nodes) if i != ATTACKER]
        dataset = DatasetId(owner.org.org_id, "health/beds")
        genuine = signed_by(owner, "health/beds", 1)
        await nodes[OWNER].publish(genuine)

        forgeries = {
            # a higher version, the body changed under the owner's signature
            "bad signature": (
                forge_body(genuine, sequence=99, title="forged"),
                SignatureError,
            ),
            # the attacker's own, valid certificate is of another organization
            "wrong-org certificate": (
                sign_as(
                    attacker,
                    node_descriptor(owner, "health/beds", 99, "forged", publisher=attacker),
                    attacker,
                ),
                ScopeError,
            ),
            # the owner's certificate attached to the attacker's signature
            "stolen certificate": (
                sign_as(
                    attacker,
                    node_descriptor(owner, "health/beds", 99, "forged", publisher=attacker),
                    owner,
                ),
                ScopeError,
            ),
            # claims to come from the owner node, signed by the attacker
            "impersonation": (
                sign_as(attacker, node_descriptor(owner, "health/beds", 99, "forged"), owner),
                ScopeError,
            ),
        }
        trust = Home(specs[0].home).trust_store()
        for name, (forged, error) in forgeries.items():
            # the forgery fails verification for the reason it was built for
            with pytest.raises(error):
                verify_descriptor(forged, trust, int(time.time()))
            for victim in victims:
                stored, why = await raw_put(nodes[ATTACKER], victim, dataset.dht_key(), forged)
                assert not stored, name
                assert why is not None, name
        await assert_everyone_serves(nodes, dataset, genuine)

        # a forgery for a key nobody holds is not stored either
        fresh = DatasetId(owner.org.org_id, "never/published")
        forged = sign_as(
            attacker,
            node_descriptor(owner, "never/published", 1, "f", publisher=attacker),
            attacker,
        )
        for victim in victims:
            stored, _ = await raw_put(nodes[ATTACKER], victim, fresh.dht_key(), forged)
            assert not stored
            assert victim.records.entry(fresh.dht_key()) is None
        with trio.fail_after(10), pytest.raises(NotFound):
            await nodes[0].resolve(fresh, refresh=True)

        # control: the same raw path stores a genuine record
        other = DatasetId(owner.org.org_id, "control")
        good = signed_by(owner, "control", 1)
        stored, why = await raw_put(nodes[ATTACKER], nodes[0], other.dht_key(), good)
        assert stored, why
        assert nodes[0].records.entry(other.dht_key()) is not None


async def test_a_replayed_lower_sequence_is_refused_and_never_served(tmp_path: Path) -> None:
    async with in_process_network(tmp_path, 5) as (specs, nodes):
        owner = specs[OWNER]
        dataset = DatasetId(owner.org.org_id, "energy/prices")
        old = signed_by(owner, "energy/prices", 1, "v1")
        new = signed_by(owner, "energy/prices", 2, "v2")
        await nodes[OWNER].publish(old)
        await nodes[OWNER].publish(new)
        await assert_everyone_serves(nodes, dataset, new)

        # the old version is genuinely signed, so only its sequence gives it away
        trust = Home(specs[0].home).trust_store()
        assert verify_descriptor(old, trust, int(time.time())).descriptor.sequence == 1
        for i, victim in enumerate(nodes):
            if i == ATTACKER:
                continue
            stored, why = await raw_put(nodes[ATTACKER], victim, dataset.dht_key(), old)
            assert not stored
            assert why is not None
        # the attacker's own node refuses it too, and so does the owner's publish
        with pytest.raises(StaleRecord):
            await nodes[ATTACKER].routing_put(dataset.dht_key(), old)
        with pytest.raises(StaleRecord):
            await nodes[OWNER].publish(old)
        await assert_everyone_serves(nodes, dataset, new)


async def test_oversized_values_are_refused_and_the_receiver_keeps_serving(
    tmp_path: Path,
) -> None:
    async with in_process_network(tmp_path, 5) as (specs, nodes):
        owner = specs[OWNER]
        dataset = DatasetId(owner.org.org_id, "big/blob")
        key = dataset.dht_key()
        victims = [n for i, n in enumerate(nodes) if i != ATTACKER]
        mib = bytes(range(256)) * 4096  # 1 MiB: over the 96 KiB frame limit
        # 60 KiB: fits a kad frame, but over the 16 KiB a descriptor may have
        large = bytes(60 * 1024)
        for value in (mib, large):
            for victim in victims:
                stored, why = await raw_put(nodes[ATTACKER], victim, key, value)
                assert not stored
                assert why is not None
                assert victim.records.entry(key) is None
        for node in nodes:
            with trio.fail_after(10), pytest.raises(NotFound):
                await node.routing_get(key)

        # the receivers still take genuine records, and lookups still work
        genuine = signed_by(owner, "big/blob", 1)
        stored, why = await raw_put(nodes[ATTACKER], victims[0], key, genuine)
        assert stored, why
        await nodes[OWNER].publish(genuine)
        await assert_everyone_serves(nodes, dataset, genuine)
