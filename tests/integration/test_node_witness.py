"""Witnessing on real in-process nodes: heads announced, proofs fetched, cosigned, alarms raised.

Three nodes of three organizations (devnet layout: node i belongs to org i % 3).
Node 0 keeps an audit log through a small stand-in of the node's audit trail
(:class:`FakeTrail`, the contract's interface); nodes 1 and 2 witness it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from datanet.node.driver import Node
from datanet.p2p import RemoteError
from datanet.p2p.audit import AuditTransport
from datanet.records.audit import AuditEntry, EntryKind, open_cosignature
from datanet.store.audit import AuditLog
from datanet.testing.network import in_process_network
from identity.keys import KeyPair
from routing.witness import is_witness


class FakeTrail:
    """The audit trail's interface, over one AuditLog (tests only)."""

    def __init__(self, log: AuditLog, key: KeyPair, chain: tuple[bytes, ...]) -> None:
        self.log = log
        self._key = key
        self._chain = chain
        self._callbacks: list[Callable[[bytes], None]] = []
        self.cosigs: list[bytes] = []

    def append(self, count: int, tag: str) -> bytes:
        now = int(time.time())
        self.log.append_many(
            AuditEntry.create(EntryKind.PUBLISH, now, None, {"n": i, "tag": tag})
            for i in range(count)
        )
        return self.head(fresh=True)

    def head(self, *, fresh: bool = False) -> bytes:
        latest = self.log.latest_head()
        if fresh or latest is None or latest.head.size != self.log.size:
            raw = self.log.sign_head(self._key, self._chain, int(time.time()))
            for cb in self._callbacks:
                cb(raw)
            return raw
        return latest.raw

    def add_cosignature(self, raw: bytes) -> bool:
        self.cosigs.append(raw)
        return True

    def cosignatures(self, head: bytes) -> list[bytes]:
        return list(self.cosigs)

    def on_head(self, callback: Callable[[bytes], None]) -> None:
        self._callbacks.append(callback)


async def until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    with trio.fail_after(timeout):
        while not check():
            await trio.sleep(0.05)


def witnessed_size(node: Node, log_node: str) -> int | None:
    assert node.witness is not None
    for row in node.witness.witnessed():
        if row["log_node"] == log_node:
            return int(row["size"])
    return None


def alarm_kinds(node: Node) -> list[str]:
    assert node.witness is not None
    return [a["kind"] for a in node.witness.alarms(100)]


async def test_heads_are_witnessed_cosigned_and_a_fork_raises_alarms(tmp_path: Path) -> None:
    async with in_process_network(tmp_path, 3) as (specs, nodes):
        log_node = nodes[0]
        me = str(specs[0].peer_id)
        assert all(n.witness is not None for n in nodes)
        trail = log_node.audit  # the node's own trail, which its witness service serves
        assert trail is not None
        witnesses = nodes[1:]

        def append(count: int) -> int:
            assert trail is not None
            for i in range(count):
                trail.record(EntryKind.PUBLISH, None, {"n": i, "tag": "a"})
            trail.head(fresh=True)
            return trail.log.size

        # trust on first use
        size = append(3)
        await until(lambda: all(witnessed_size(n, me) == size for n in witnesses))
        # growth: proven by a consistency proof fetched from node 0, then cosigned
        size = append(5)
        await until(lambda: all(witnessed_size(n, me) == size for n in witnesses))

        def cosigners() -> set[str]:
            assert trail is not None
            return {str(open_cosignature(c)[0].witness) for c in trail.cosignatures(trail.head())}

        await until(lambda: len(cosigners()) == 2)
        assert cosigners() == {str(specs[1].peer_id), str(specs[2].peer_id)}
        await until(lambda: all(n.witness.witnessed()[0]["cosigned"] for n in witnesses))  # type: ignore[union-attr]
        assert not any(alarm_kinds(n) for n in nodes)

        # node 0 rebuilds its log with another history (same key), and serves it
        forged = AuditLog(tmp_path / "forged0.sqlite")
        forged_trail = FakeTrail(forged, log_node._key, log_node._chain)
        forged_trail.append(size, "b")  # same size as the witnessed head: a fork
        fork_head = forged.latest_head()
        assert fork_head is not None
        assert log_node.witness is not None
        assert await log_node.witness.announce(fork_head.raw) == 2
        await until(lambda: all("fork" in alarm_kinds(n) for n in witnesses))
        # a larger forged head: the proof from the honest size to this one cannot hold,
        # because node 0 now serves the forged log
        trail.log = forged
        forged_trail.append(4, "b")
        grown = forged.latest_head()
        assert grown is not None
        await log_node.witness.announce(grown.raw)
        await until(lambda: all("bad_proof" in alarm_kinds(n) for n in witnesses))
        # reported, not trusted: the last proven head stays the honest one
        assert all(witnessed_size(n, me) == size for n in witnesses)
        alarm = nodes[1].witness.alarms(1)[0]  # type: ignore[union-attr]
        assert alarm["log_node"] == me
        assert alarm["log_org"] == str(specs[0].org.org_id)
        assert alarm["reported_by"] == str(specs[1].peer_id)
        assert len(alarm["heads"]) == 2
        assert not alarm_kinds(log_node)


async def test_an_announced_junk_head_is_refused_with_its_reason(tmp_path: Path) -> None:
    async with in_process_network(tmp_path, 3) as (specs, nodes):
        transport = AuditTransport(nodes[0].host)
        with pytest.raises(RemoteError, match="refused: not a valid"):
            await transport.announce(specs[1].peer_id, b"\x93not a head")
        assert nodes[1].witness.counters["heads_rejected"] == 1  # type: ignore[union-attr]
        assert not nodes[1].witness.witnessed()  # type: ignore[union-attr]
        assert not nodes[1].witness.alarms(10)  # type: ignore[union-attr]


async def test_only_the_nodes_nearest_to_a_logs_witness_key_witness_it(tmp_path: Path) -> None:
    # 12 nodes of 3 orgs: node 0's log is witnessed by the WITNESSES_PER_LOG nodes
    # nearest to its witness key that are of another org, not by all 8 of other orgs
    # (at 100 nodes, everyone witnessing everyone drew ~90 proof requests and
    # cosignatures onto a publisher within a second of each publish).
    async with in_process_network(tmp_path, 12) as (specs, nodes):
        log_node = nodes[0]
        log_id = specs[0].peer_id.to_bytes()
        ids = [s.peer_id.to_bytes() for s in specs]
        for node in nodes:  # every node knows every other: the choice is the full-knowledge one
            await until(lambda node=node: len(node.coordinator.table) == len(nodes) - 1)
        expected = {
            i
            for i, spec in enumerate(specs)
            if spec.org != specs[0].org and is_witness(ids[i], ids, log_id)
        }
        others = {i for i, spec in enumerate(specs) if spec.org != specs[0].org}
        assert 0 < len(expected) < len(others)  # a real choice, not everyone
        trail = log_node.audit
        assert trail is not None
        trail.record(EntryKind.PUBLISH, None, {"n": 1, "tag": "a"})
        trail.head(fresh=True)
        size = trail.log.size
        me = str(specs[0].peer_id)
        await until(lambda: all(witnessed_size(nodes[i], me) == size for i in expected))
        # announced to all 11 others (fewer than 8 + margin); no one else takes it up
        await trio.sleep(2.0)
        # (a node may have taken up an earlier head while its routing table was filling)
        witnessing = {i for i in others if witnessed_size(nodes[i], me) == size}
        assert witnessing == expected
        for i in others - expected:
            counters = nodes[i].witness.counters  # type: ignore[union-attr]
            assert counters["heads_not_witnessed"] >= 1
