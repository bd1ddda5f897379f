"""End to end: SIGKILL a daemon under load, many times; nothing it acknowledged is lost.

Three daemon processes of three organizations (each its org's gateway). While a
load generator runs through the HTTP API (the victim publishes new versions of
its dataset, the two other daemons publish theirs, which PUTs them into the
victim, and the third asks for access to the victim's dataset, which the victim's
operator approves), the victim is SIGKILLed at a random moment, its SQLite files
are checked (``PRAGMA integrity_check``) while it is down, and it is started
again. After each restart:

* every publish the victim acknowledged is resolved at that version or newer;
* every descriptor it served before the kill is still served, no older;
* every request it answered ``pending``, every approval and every grant it
  acknowledged is in its inbox and grants listing;
* its audit log verifies (``datanet audit verify``) and is no shorter;
* it is connected to its peers again.

``DATANET_KILL9_ROUNDS`` (default 10) sets how many kills, ``DATANET_KILL9_SEED``
the seed (printed, so a failing run repeats).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cli.devnet import daemon_command
from datanet.client import Client
from datanet.devnet import DaemonProcess, DaemonSet, DevnetNode, child_env, provision
from datanet.devnet.layout import load_devnet
from datanet.devnet.processes import start_network
from datanet.errors import DatanetError
from datanet.records.ids import DatasetId
from datanet.records.policy import AccessPolicy
from datanet.testing.records import signed_by

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = int(os.environ.get("DATANET_KILL9_ROUNDS", "10"))
SEED = int(os.environ.get("DATANET_KILL9_SEED", str(random.SystemRandom().randrange(1 << 30))))
PURPOSE = "academic-research"

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="daemon processes"),
    pytest.mark.timeout(120 + 20 * ROUNDS),  # a round takes about 8 s on a loaded machine
]


def eventually(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while True:
        with contextlib.suppress(DatanetError):
            if check():
                return
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def resolved_sequence(node: DevnetNode, dataset: str) -> int:
    with Client(node.home, timeout=5.0) as client:
        return client.resolve(dataset).sequence


def peer_count(node: DevnetNode) -> int:
    with Client(node.home, timeout=5.0) as client:
        return len(client.peers())


def integrity_errors(home: Path) -> dict[str, str]:
    """``PRAGMA integrity_check`` of every SQLite file of a stopped node (only the bad ones)."""
    bad: dict[str, str] = {}
    files = sorted(home.glob("*.sqlite"))
    assert {p.name for p in files} >= {"datanet.sqlite", "access.sqlite", "audit.sqlite"}
    for path in files:
        conn = sqlite3.connect(path)  # recovers the WAL, as the daemon does on start
        try:
            result = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        finally:
            conn.close()
        if result != ["ok"]:
            bad[path.name] = "; ".join(str(r) for r in result[:5])
    return bad


@dataclass
class Acked:
    """What the victim acknowledged (and what it served), filled by the load threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    published: int = 0  # the newest sequence of the victim's dataset it acknowledged
    pending: set[str] = field(default_factory=set)  # requests it answered "pending"
    granted: dict[str, str] = field(default_factory=dict)  # request id -> grant id
    served: dict[str, int] = field(default_factory=dict)  # dataset -> newest sequence served
    ops: int = 0
    errors: int = 0
    failures: list[str] = field(default_factory=list)  # broken expectations in the load


class Load:
    """Three load threads against a 3-daemon network; the victim may die at any moment."""

    def __init__(self, base: Path, nodes: list[DevnetNode], victim: DevnetNode) -> None:
        self.base = base
        self.victim = victim
        self.others = [n for n in nodes if n is not victim]
        self.requester = self.others[-1]
        self.acked = Acked()
        self.stop = threading.Event()
        self.rng = random.Random(SEED)
        self.sequence = 1
        self.peer_sequence = {n.name: 1 for n in self.others}
        self.dataset = str(DatasetId(victim.org.org_id, "kill9/data"))
        self.peer_datasets = {
            n.name: str(DatasetId(n.org.org_id, f"kill9/{n.name}")) for n in self.others
        }
        self._threads: list[threading.Thread] = []

    def descriptor(self, node: DevnetNode, name: str, sequence: int) -> bytes:
        policy = AccessPolicy(mode="request", purposes=(PURPOSE,))
        return signed_by(node, name, sequence, f"{name} v{sequence}", access_policy=policy)

    def start(self) -> None:
        self.stop.clear()
        self._threads = [
            threading.Thread(target=self._loop, args=(part,), daemon=True)
            for part in (self._publish_own, self._publish_peers, self._request_and_approve)
        ]
        for t in self._threads:
            t.start()

    def halt(self) -> None:
        self.stop.set()
        for t in self._threads:
            t.join(timeout=60)
            assert not t.is_alive(), "a load thread hangs"

    def _loop(self, part: Callable[[], None]) -> None:
        while not self.stop.is_set():
            try:
                part()
                with self.acked.lock:
                    self.acked.ops += 1
            except DatanetError:
                with self.acked.lock:
                    self.acked.errors += 1
                self.stop.wait(0.1)
            except AssertionError as exc:
                with self.acked.lock:
                    self.acked.failures.append(f"{part.__name__}: {exc}")
                return

    def _publish_own(self) -> None:
        seq = self.sequence + 1
        raw = self.descriptor(self.victim, "kill9/data", seq)
        self.sequence = seq  # never reuse a sequence, acknowledged or not
        with Client(self.victim.home, timeout=10.0) as client:
            result = client.publish(raw)
        assert result.sequence == seq
        with self.acked.lock:
            self.acked.published = max(self.acked.published, seq)
        self.stop.wait(self.rng.uniform(0.05, 0.3))

    def _publish_peers(self) -> None:
        node = self.rng.choice(self.others)
        seq = self.peer_sequence[node.name] + 1
        self.peer_sequence[node.name] = seq
        raw = self.descriptor(node, f"kill9/{node.name}", seq)
        with Client(node.home, timeout=15.0) as client:
            client.publish(raw)  # stored on the k closest, the victim among them when it is up
        # what the victim serves now must survive its death
        dataset = self.peer_datasets[node.name]
        with Client(self.victim.home, timeout=5.0) as client:
            served = client.resolve(dataset).sequence
        with self.acked.lock:
            self.acked.served[dataset] = max(self.acked.served.get(dataset, 0), served)
        self.stop.wait(self.rng.uniform(0.05, 0.3))

    def _request_and_approve(self) -> None:
        with Client(self.requester.home, timeout=20.0) as client:
            outcome = client.request_access(self.dataset, PURPOSE, days=7)
        if outcome.denial is not None and outcome.denial.reason == "descriptor_outdated":
            # the victim published a newer version than the requester holds yet: ask again
            self.stop.wait(0.2)
            return
        if outcome.state != "pending":
            raise AssertionError(f"a request policy answers pending, got {outcome.denial}")
        request_id = outcome.request.request_id
        with self.acked.lock:
            self.acked.pending.add(request_id)
        with Client(self.victim.home, timeout=10.0) as client:
            pending = [
                r.request_id
                for r in client.access_requests(state="pending", dataset=self.dataset, limit=50)
            ]
            for rid in pending[:2]:
                approved = client.approve_request(rid)
                assert approved.state == "granted", approved
                assert approved.grant is not None
                with self.acked.lock:
                    self.acked.granted[rid] = approved.grant.grant_id
        self.stop.wait(self.rng.uniform(0.05, 0.3))


def datanet_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "--data-dir", str(home), *args],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def check_victim(load: Load, audit_size: int) -> int:
    """Everything the victim acknowledged is there; returns its audit log size."""
    victim = load.victim
    acked = load.acked
    with Client(victim.home, timeout=30.0) as client:
        if acked.published:
            assert client.resolve(load.dataset).sequence >= acked.published
        for dataset, seq in acked.served.items():
            assert client.resolve(dataset).sequence >= seq, f"{dataset} went back"
        received = {
            r.request_id: r for r in client.access_requests(dataset=load.dataset, limit=1000)
        }
        missing = acked.pending - set(received)
        assert not missing, f"acknowledged requests lost: {sorted(missing)[:3]}"
        for rid, grant_id in acked.granted.items():
            assert received[rid].state == "granted", received[rid]
            assert received[rid].grant_id == grant_id
        issued = {g.grant_id for g in client.grants(dataset=load.dataset, limit=1000)}
        lost = set(acked.granted.values()) - issued
        assert not lost, f"acknowledged grants lost: {sorted(lost)[:3]}"
        report = client.audit_verify()
        assert report.ok, report
        assert report.size >= audit_size, "the audit log got shorter"
        size = report.size
    verified = datanet_cli(victim.home, "--json", "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["ok"] is True
    return size


def test_kill9_under_load_loses_nothing_acknowledged(tmp_path: Path) -> None:
    print(f"kill -9 test: seed {SEED}, {ROUNDS} rounds (DATANET_KILL9_SEED to repeat)")
    rng = random.Random(SEED)
    base = tmp_path / "net"
    provision(base, orgs=3, nodes=3, bootstrap_count=3)
    devnet = load_devnet(base)
    nodes = list(devnet.nodes)
    victim = nodes[1]
    with DaemonSet(daemon_command, stop_timeout=20) as daemons:
        start_network(devnet, daemons, timeout=120)
        proc: DaemonProcess = next(d for d in daemons.daemons if d.node is victim)
        load = Load(base, nodes, victim)
        # the dataset exists and the requester holds it before the load starts
        with Client(victim.home, timeout=30.0) as client:
            client.publish(load.descriptor(victim, "kill9/data", 1))
        load.acked.published = 1
        eventually(
            "the victim's dataset at the requester",
            lambda: resolved_sequence(load.requester, load.dataset) >= 1,
        )
        audit_size = 0
        for round_no in range(ROUNDS):
            load.start()
            time.sleep(rng.uniform(0.3, 1.5))
            proc.proc.kill()  # SIGKILL, mid-whatever
            proc.proc.wait(timeout=30)
            load.halt()
            assert not load.acked.failures, load.acked.failures
            bad = integrity_errors(victim.home)
            assert not bad, f"round {round_no}: integrity_check failed: {bad}"
            proc = daemons.spawn(victim)
            daemons.wait_ready([proc], timeout=120)
            audit_size = check_victim(load, audit_size)
            eventually(
                f"round {round_no}: the victim reconnected",
                lambda: peer_count(victim) >= len(load.others),
            )
            print(
                f"round {round_no}: published {load.acked.published}, "
                f"requests {len(load.acked.pending)}, grants {len(load.acked.granted)}, "
                f"served {load.acked.served}, audit {audit_size}, "
                f"ops {load.acked.ops}, errors {load.acked.errors}"
            )
        assert load.acked.published > ROUNDS // 2, "the load generator barely ran"
        assert load.acked.granted, "no approval was acknowledged"
