"""End to end: a node whose audit log is rebuilt with another history is flagged by its witnesses.

Three organizations, one node each, each node its own process (real libp2p over
TCP on 127.0.0.1, SQLite). Node 2 keeps an audit log and appends entries; nodes
0 and 1 (the other organizations) witness its heads. Node 2 is stopped, its
audit file rebuilt with a different history (same node key, other entries,
signed heads) and restarted: its witnesses raise ``fork`` (or ``shrink`` /
``bad_proof``) alarms, read here from their witness stores.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from datanet.devnet import DevnetNode, child_env, provision
from datanet.node.home import Home
from datanet.records.audit import AuditEntry, EntryKind
from datanet.store.audit import AuditLog
from datanet.store.witness import WitnessStore

WORKER = Path(__file__).with_name("witness_worker.py")
ENTRIES = 8
#: Liveness bounds on a loaded 2-core machine, not speed claims.
DEADLINE = 90.0

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="node processes")


class Procs:
    def __init__(self) -> None:
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def start(self, node: DevnetNode, role: str, tag: str, count: int) -> None:
        ready = Path(node.home) / "worker.ready"
        ready.unlink(missing_ok=True)
        with (Path(node.home) / "worker.log").open("ab") as log:
            self.procs[node.index] = subprocess.Popen(
                [sys.executable, str(WORKER), str(node.home), role, tag, str(count)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=child_env(),
            )
        until(lambda: ready.exists() or self.procs[node.index].poll() is not None, 60)
        assert self.procs[node.index].poll() is None, (Path(node.home) / "worker.log").read_text()

    def stop(self, index: int) -> None:
        proc = self.procs.pop(index)
        proc.kill()
        proc.wait(timeout=30)

    def stop_all(self) -> None:
        for index in list(self.procs):
            self.stop(index)


def until(check: Callable[[], bool], timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.2)


def witnessed(node: DevnetNode, log_node: bytes) -> int | None:
    with WitnessStore(Home(node.home).database_path, reported_by="test") as store:
        for head in store.heads():
            if head.log_node == log_node:
                return head.size
    return None


def alarms(node: DevnetNode) -> list[dict[str, object]]:
    with WitnessStore(Home(node.home).database_path, reported_by="test") as store:
        return [a.to_json() for a in store.alarms(100)]


def rebuild(node: DevnetNode, count: int) -> None:
    """Replace the node's audit file by another history, signed with the node's own key."""
    home = Home(node.home)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{node.home}/audit.sqlite{suffix}").unlink(missing_ok=True)
    key = home.load_node_key()
    chain = home.membership_chain(int(time.time()))
    with AuditLog(Path(node.home) / "audit.sqlite") as log:
        for i in range(count):
            log.append(AuditEntry.create(EntryKind.PUBLISH, int(time.time()), None, {"forged": i}))
            if i % 3 == 2:
                log.sign_head(key, chain, int(time.time()))
        log.sign_head(key, chain, int(time.time()))


@pytest.fixture
def procs() -> Iterator[Procs]:
    p = Procs()
    try:
        yield p
    finally:
        p.stop_all()


def test_a_rebuilt_log_is_flagged_by_witnesses_in_other_processes(
    tmp_path: Path, procs: Procs
) -> None:
    _, nodes = provision(tmp_path, orgs=3, nodes=3)
    log_node, witnesses = nodes[2], nodes[:2]
    log_id = log_node.peer_id.to_bytes()
    for node in witnesses:
        procs.start(node, "witness", "", 0)
    procs.start(log_node, "log", "honest", ENTRIES)

    # the node's own trail logs its identity at start, then the worker's entries:
    # wait until both witnesses hold a head of the whole honest log
    def log_size() -> int:
        with AuditLog(log_node.home / "audit.sqlite") as log:
            return log.size

    until(lambda: log_size() >= ENTRIES)
    until(lambda: all(witnessed(n, log_id) == log_size() for n in witnesses))
    honest = log_size()
    assert not any(alarms(n) for n in witnesses)

    procs.stop(2)
    rebuild(log_node, ENTRIES)
    procs.start(log_node, "log", "forged", 0)
    until(lambda: all(alarms(n) for n in witnesses))
    for node in witnesses:
        found = alarms(node)
        assert {a["kind"] for a in found} <= {"fork", "shrink", "bad_proof"}, found
        assert all(a["log_node"] == str(log_node.peer_id) for a in found)
        assert all(a["log_org"] == str(log_node.org.org_id) for a in found)
        # reported, not trusted: the witnessed head is still the honest one
        assert witnessed(node, log_id) == honest
    assert os.path.exists(Path(log_node.home) / "audit.sqlite")
