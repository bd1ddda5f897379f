"""End to end: the complete catalog on 30 daemon processes of three organizations.

More nodes than k = 20, so DHT replicas alone cannot explain what every node
finds: gossip and anti-entropy must. Each daemon is a real ``datanet node
start`` process (libp2p over TCP on 127.0.0.1, SQLite, the HTTP API); the test
talks to them only through :class:`datanet.client.Client` and the CLI.

One network, one module fixture, checks in the order of the issue:

1. a descriptor published on one node is found by ``search`` on every node;
2. a node stopped during ten publishes has all ten soon after its restart;
3. a node that joins a network holding 2,000 descriptors (seeded into the stores
   before the daemons started) has all of them;
4. a revoked certificate's descriptors leave every catalog;
5. a deprecated dataset leaves every catalog, and ``resolve`` says why.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cli.devnet import daemon_command
from datanet.client import Client
from datanet.devnet import DaemonSet, DevnetNode, child_env, provision
from datanet.errors import DatanetError
from datanet.testing.records import signed_by
from datanet.testing.seed import catalog_descriptors, seed_catalog

ROOT = Path(__file__).resolve().parents[2]
NODES = 30
SEEDED = 2000
#: Generous: these are liveness bounds on a loaded 2-core CI machine, not speed
#: claims (speed is measured by benchmarks/bench_gossip.py).
DEADLINE = 60.0

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="daemon processes")


@dataclass
class Net:
    base: Path
    nodes: list[DevnetNode]
    daemons: DaemonSet
    clients: dict[int, Client]

    def client(self, index: int) -> Client:
        if index not in self.clients:
            self.clients[index] = Client(self.nodes[index].home, timeout=30)
        return self.clients[index]

    def running(self) -> list[int]:
        live = {d.node.index for d in self.daemons.daemons if d.alive()}
        return sorted(live)

    def start(self, *indexes: int) -> None:
        batch = [self.daemons.spawn(self.nodes[i]) for i in indexes]
        self.daemons.wait_ready(batch, timeout=120)
        for i in indexes:
            old = self.clients.pop(i, None)
            if old is not None:
                old.close()

    def stop(self, index: int) -> None:
        for daemon in self.daemons.daemons:
            if daemon.node.index == index and daemon.alive():
                daemon.proc.terminate()
                daemon.proc.wait(timeout=30)
        old = self.clients.pop(index, None)
        if old is not None:
            old.close()


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "--data-dir", str(home), *args],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def wait_until(what: str, check: Callable[[], list[int]], deadline: float = DEADLINE) -> None:
    """Poll ``check`` (it returns the nodes still lacking) until it returns [] or time is up."""
    end = time.monotonic() + deadline
    lacking: list[int] = []
    while time.monotonic() < end:
        try:
            lacking = check()
        except DatanetError as exc:
            lacking = [-1]
            last_error = str(exc)
        else:
            last_error = ""
        if not lacking:
            return
        time.sleep(0.5)
    pytest.fail(f"{what}: still lacking on nodes {lacking} after {deadline:.0f} s {last_error}")


def hits(client: Client, query: str) -> set[str]:
    page = client.search(query, limit=100)
    return {h.dataset_id for h in page.hits}


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    base = tmp_path_factory.mktemp("catalognet")
    _orgs, nodes = provision(base, orgs=3, nodes=NODES, bootstrap_count=3)
    # The last node joins later (check 3); every other node starts with the seeded catalog.
    seeded = catalog_descriptors(nodes[:6], SEEDED, prefix="seeded")
    for node in nodes[:-1]:
        seed_catalog(node.home, seeded)
    with DaemonSet(daemon_command, stop_timeout=20) as daemons:
        result = Net(base, nodes, daemons, {})
        result.start(*range(3))
        result.start(*range(3, NODES - 1))
        try:
            yield result
        finally:
            for client in result.clients.values():
                client.close()


def test_a_publish_reaches_every_catalog(net: Net) -> None:
    raw = signed_by(net.nodes[4], "fresh/kestrel", title="kestrel nesting survey")
    dataset = net.client(4).publish(raw).dataset_id

    def lacking() -> list[int]:
        return [i for i in net.running() if dataset not in hits(net.client(i), "kestrel nesting")]

    wait_until("the published descriptor is not found by search", lacking)


def test_b_a_restarted_node_catches_up(net: Net) -> None:
    net.stop(7)
    published = set()
    for n in range(10):
        raw = signed_by(net.nodes[5], f"offline/{n}", title=f"heron count {n}")
        published.add(net.client(5).publish(raw).dataset_id)
    net.start(7)

    def lacking() -> list[int]:
        return [] if published <= hits(net.client(7), "heron count") else [7]

    wait_until("the restarted node lacks descriptors published while it was down", lacking, 30)


def test_c_a_new_node_gets_the_whole_catalog(net: Net) -> None:
    newcomer = NODES - 1
    net.start(newcomer)
    want = net.client(0).catalog_stats()["catalog"]["descriptors"]
    assert want >= SEEDED

    def lacking() -> list[int]:
        held = net.client(newcomer).catalog_stats()["catalog"]["descriptors"]
        return [] if held >= want else [newcomer]

    wait_until(f"the new node does not hold all {want} descriptors", lacking, 60)


def test_d_revoked_certificates_leave_every_catalog(net: Net) -> None:
    victim = net.nodes[8]  # publishes in org victim.org
    raw = signed_by(victim, "revoked/owl", title="owl pellet analysis")
    dataset = net.client(8).publish(raw).dataset_id
    wait_until(
        "the soon-revoked descriptor did not spread",
        lambda: [i for i in net.running() if dataset not in hits(net.client(i), "owl pellet")],
    )
    serial = json.loads(cli(victim.home, "id", "--json").stdout)["memberships"][0]["serial"]
    admin = net.base / "orgs"
    out = net.base / "victim.rev"
    done = cli(admin, "org", "revoke", "--org", victim.org.name, str(serial), "--out", str(out))
    assert done.returncode == 0, done.stderr
    published = cli(net.nodes[0].home, "publish", str(out))
    assert published.returncode == 0, published.stderr

    def lacking() -> list[int]:
        return [i for i in net.running() if dataset in hits(net.client(i), "owl pellet")]

    wait_until("a revoked certificate's descriptor is still in the catalog", lacking)
    gone = cli(net.nodes[1].home, "resolve", dataset)
    assert gone.returncode != 0
    assert "revoked" in gone.stderr


def test_e_deprecated_datasets_leave_every_catalog(net: Net) -> None:
    raw = signed_by(net.nodes[9], "deprecated/lynx", title="lynx tracking collars")
    dataset = net.client(9).publish(raw).dataset_id
    wait_until(
        "the soon-deprecated descriptor did not spread",
        lambda: [i for i in net.running() if dataset not in hits(net.client(i), "lynx tracking")],
    )
    done = cli(net.nodes[9].home, "deprecate", dataset, "--reason", "superseded by lynx/v2")
    assert done.returncode == 0, done.stderr

    def lacking() -> list[int]:
        return [i for i in net.running() if dataset in hits(net.client(i), "lynx tracking")]

    wait_until("a deprecated dataset is still in the catalog", lacking)
    gone = cli(net.nodes[2].home, "resolve", dataset)
    assert gone.returncode != 0
    assert "withdrawn by its publisher" in gone.stderr
