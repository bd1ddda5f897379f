"""A network of node *processes* on 127.0.0.1: publish, update, crash, restart.

Every node runs in its own ``python -m datanet.testing.localnet_worker`` process (real libp2p
over TCP, real SQLite files, real signatures), driven over its stdin/stdout.
Crashes are SIGKILL, restarts reuse the same data directory.
"""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from datanet.devnet import DevnetNode, provision
from datanet.records.ids import DatasetId
from datanet.testing.localnet import Localnet, LocalnetNode, OpFailed, check, stop_all
from datanet.testing.records import signed_by

READY_TIMEOUT = 60.0


def signed_b64(node: DevnetNode, name: str, sequence: int, title: str) -> str:
    """A descriptor of ``node``'s organization, signed by ``node``, as base64."""
    return base64.b64encode(signed_by(node, name, sequence, title)).decode()


def dataset(node: DevnetNode, name: str) -> str:
    return str(DatasetId(node.org.org_id, name))


def key_b64(node: DevnetNode, name: str) -> str:
    return base64.b64encode(DatasetId(node.org.org_id, name).dht_key()).decode()


class Network:
    """One runner process per node; ``procs[i]`` hosts ``specs[i]`` (None once killed)."""

    def __init__(self, specs: list[DevnetNode]) -> None:
        self.specs = specs
        self.procs: list[Localnet | None] = [None] * len(specs)

    def start(self, indexes: Sequence[int]) -> list[LocalnetNode]:
        """Start the given nodes in parallel; wait until all joined."""
        runners = {i: Localnet([self.specs[i].home], seed=i) for i in indexes}
        out = []
        for i, runner in runners.items():
            self.procs[i] = runner
            (info,) = runner.wait_ready(READY_TIMEOUT)
            out.append(info)
        return out

    def proc(self, i: int) -> Localnet:
        runner = self.procs[i]
        assert runner is not None, f"node {i} is not running"
        return runner

    def alive(self) -> list[int]:
        return [i for i, p in enumerate(self.procs) if p is not None]

    def kill(self, i: int) -> None:
        self.proc(i).kill()
        self.procs[i] = None

    def on_all(self, op: str, indexes: Sequence[int], **fields: object) -> dict[int, dict]:
        """Run ``op`` on several nodes at once; every one must succeed."""
        futures = {i: self.proc(i).submit(op, node=0, **fields) for i in indexes}
        return {i: check(f, 60.0) for i, f in futures.items()}

    def stop(self) -> None:
        stop_all(self.procs)


@contextlib.contextmanager
def network(base: Path, count: int, *, bootstraps: int = 2) -> Iterator[Network]:
    """``count`` node processes of 3 organizations; the first ``bootstraps`` start first."""
    _, specs = provision(base, orgs=3, nodes=count, bootstrap_count=bootstraps)
    net = Network(specs)
    try:
        net.start(range(bootstraps))
        net.start(range(bootstraps, count))
        # let the early joiners learn the late ones
        net.on_all("bootstrap", range(count))
        yield net
    finally:
        net.stop()


def test_publish_update_and_survive_the_publisher_crash(tmp_path: Path) -> None:
    with network(tmp_path, 9) as net:
        specs = net.specs
        publisher = 4
        reader = next(i for i in range(9) if specs[i].org != specs[publisher].org)
        name = "sensors/air"
        ident = dataset(specs[publisher], name)

        v1 = signed_b64(specs[publisher], name, 1, "Air v1")
        first = net.proc(publisher).call("publish", node=0, raw=v1)
        assert first["dataset_id"] == ident
        assert first["replicas"] >= 3

        got = net.proc(reader).call("resolve", node=0, dataset_id=ident, refresh=True)
        assert got["raw"] == v1  # the very bytes that were signed

        v2 = signed_b64(specs[publisher], name, 2, "Air v2")
        assert net.proc(publisher).call("publish", node=0, raw=v2)["sequence"] == 2
        others = [i for i in range(9) if i != publisher]
        answers = net.on_all("resolve", others, dataset_id=ident, refresh=True)
        assert {i: a["raw"] for i, a in answers.items()} == dict.fromkeys(others, v2)

        # the publisher crashes: its replicas still answer, with the newest version
        net.kill(publisher)
        answers = net.on_all("resolve", others, dataset_id=ident, refresh=True)
        assert {i: a["sequence"] for i, a in answers.items()} == dict.fromkeys(others, 2)

        # a dataset nobody published stays unknown
        with pytest.raises(OpFailed) as missing:
            net.proc(reader).call(
                "resolve", node=0, dataset_id=dataset(specs[0], "none"), refresh=True
            )
        assert missing.value.remote_code == "not_found"


def test_kill9_and_restart_keeps_identity_records_and_rejoins_without_bootstraps(
    tmp_path: Path,
) -> None:
    with network(tmp_path, 8) as net:
        specs = net.specs
        victim, other = 5, 3
        assert specs[victim].org != specs[other].org
        own = signed_b64(specs[victim], "stock/daily", 1, "Stock")
        foreign = signed_b64(specs[other], "rail/delays", 1, "Rail")
        net.proc(victim).call("publish", node=0, raw=own)
        published = net.proc(other).call("publish", node=0, raw=foreign)
        foreign_key = key_b64(specs[other], "rail/delays")
        # publish answers once dht.put_quorum peers stored it; the victim's copy
        # may be one of the writes still under way (published["pending"])
        deadline = time.monotonic() + 30
        while not (held := net.proc(victim).call("held", node=0, key=foreign_key))["held"]:
            assert time.monotonic() < deadline, ("never stored at the victim", published)
            time.sleep(0.2)
        assert held["value"] == foreign
        before = net.proc(victim).call("status", node=0)["status"]
        assert before["own_descriptors"] == 1

        # crash the node and both bootstrap peers
        net.kill(victim)
        net.kill(0)
        net.kill(1)

        (info,) = net.start([victim])
        assert info.peer_id == before["peer_id"] == str(specs[victim].peer_id)
        after = net.proc(victim).call("status", node=0)
        assert after["status"]["own_descriptors"] == 1
        assert after["status"]["records"] >= before["records"]
        # it rejoined through its address book: connected, with a routing table
        assert after["status"]["peers"] >= 3
        assert after["routing"]["routing_table_size"] >= 3
        held = net.proc(victim).call("held", node=0, key=foreign_key)
        assert held["value"] == foreign  # the replica it held survived the crash
        # its own descriptor answers locally (catalog restored from SQLite) ...
        local = net.proc(victim).call(
            "resolve", node=0, dataset_id=dataset(specs[victim], "stock/daily")
        )
        assert local["raw"] == own
        # ... and through the network, both ways
        fresh = net.proc(victim).call(
            "resolve", node=0, dataset_id=dataset(specs[other], "rail/delays"), refresh=True
        )
        assert fresh["raw"] == foreign
        newer = signed_b64(specs[victim], "stock/daily", 2, "Stock v2")
        assert net.proc(victim).call("publish", node=0, raw=newer)["replicas"] >= 3
        readers = [i for i in net.alive() if i != victim]
        answers = net.on_all(
            "resolve", readers, dataset_id=dataset(specs[victim], "stock/daily"), refresh=True
        )
        assert {i: a["raw"] for i, a in answers.items()} == dict.fromkeys(readers, newer)
