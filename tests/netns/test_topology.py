"""The namespace topology: isolation between organizations, real daemons gossiping
through gateways, and namespaces that are gone after the test whatever happened."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from datanet.records.ids import DatasetId
from datanet.testing.netns import Topology, run_prefix, start_topology_network
from datanet.testing.records import signed_by

pytestmark = pytest.mark.netns

LISTEN = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(b"hi")
    c.close()
"""

CONNECT = """
import errno, socket, sys
s = socket.socket()
s.settimeout(1.0)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print("ok" if s.recv(2) == b"hi" else "bad")
except socket.timeout:
    print("timeout")
except OSError as exc:
    print(errno.errorcode.get(exc.errno, str(exc.errno)))
"""

UNREACHABLE = {"ENETUNREACH", "EHOSTUNREACH", "timeout"}


def our_namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return [
        line.split()[0] for line in out.stdout.splitlines() if line.startswith(f"{run_prefix()}-")
    ]


def connect(topo: Topology, ns: str, ip: str, port: int) -> str:
    started = time.monotonic()
    result = topo.run(ns, [sys.executable, "-c", CONNECT, ip, str(port)], timeout=20)
    assert result.returncode == 0, result.stderr
    verdict = result.stdout.strip()
    if verdict != "ok":  # a refused connection must fail fast, never hang
        assert time.monotonic() - started < 10
    return verdict


def listen(topo: Topology, ns: str, ip: str, port: int) -> None:
    proc = topo.popen(
        ns, [sys.executable, "-c", LISTEN, ip, str(port)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"


@pytest.fixture
def topo() -> Iterator[Topology]:
    with Topology(["a", "b", "c"]) as t:
        yield t
    assert our_namespaces() == []


def test_names_and_addresses(topo: Topology) -> None:
    assert topo.ns("a", "int") == f"{run_prefix()}-a-int"
    assert topo.internal_ip("b") == "10.2.0.2"
    assert topo.gateway_ips("c") == ("10.3.0.1", "10.99.0.13")
    assert sorted(our_namespaces()) == sorted(topo.namespaces())
    assert len(topo.namespaces()) == 7
    with pytest.raises(ValueError, match="not an organization"):
        topo.ns("z", "gw")


def test_organizations_are_isolated_and_gateways_meet_on_the_backbone(topo: Topology) -> None:
    a_int, a_gw = topo.ns("a", "int"), topo.ns("a", "gw")
    b_int, b_gw = topo.ns("b", "int"), topo.ns("b", "gw")
    a_ip = topo.internal_ip("a")
    a_gw_int, a_gw_bb = topo.gateway_ips("a")
    listen(topo, a_int, a_ip, 7000)
    listen(topo, a_gw, a_gw_bb, 7001)
    listen(topo, a_int, "127.0.0.1", 7002)

    assert connect(topo, a_gw, a_ip, 7000) == "ok"  # the org's own gateway
    for ns in (b_gw, b_int, topo.backbone):
        assert connect(topo, ns, a_ip, 7000) in UNREACHABLE, ns
    assert connect(topo, b_gw, a_gw_bb, 7001) == "ok"  # gateways meet on the backbone
    assert connect(topo, topo.backbone, a_gw_bb, 7001) == "ok"
    assert connect(topo, b_int, a_gw_bb, 7001) in UNREACHABLE  # internal nodes do not
    assert connect(topo, b_gw, a_gw_int, 7000) in UNREACHABLE
    # every namespace has its own loopback, and it is up
    assert connect(topo, a_int, "127.0.0.1", 7002) == "ok"
    assert connect(topo, b_int, "127.0.0.1", 7002) == "ECONNREFUSED"
    # Even with a route through A's gateway, A's gateway forwards nothing.
    route = topo.run(b_gw, ["ip", "route", "add", "10.1.0.0/24", "via", a_gw_bb], timeout=10)
    assert route.returncode == 0, route.stderr
    assert connect(topo, b_gw, a_ip, 7000) in UNREACHABLE


def _raise_inside(t: Topology, exc: BaseException, procs: list[subprocess.Popen[bytes]]) -> None:
    procs.append(t.popen(t.ns(t.orgs[0], "int"), ["sleep", "300"]))
    assert len(our_namespaces()) == 1 + 2 * len(t.orgs)
    raise exc


def test_namespaces_are_removed_when_the_body_raises() -> None:
    t = Topology(["x", "y"])
    procs: list[subprocess.Popen[bytes]] = []
    with pytest.raises(RuntimeError, match="boom"), t:
        _raise_inside(t, RuntimeError("boom"), procs)
    assert our_namespaces() == []
    assert procs[0].poll() is not None  # killed and reaped
    t.close()  # idempotent
    assert our_namespaces() == []


def test_namespaces_are_removed_on_keyboard_interrupt_and_processes_killed() -> None:
    t = Topology(["x"])
    procs: list[subprocess.Popen[bytes]] = []
    with pytest.raises(KeyboardInterrupt), t:
        _raise_inside(t, KeyboardInterrupt(), procs)
    assert procs[0].poll() is not None
    assert our_namespaces() == []


def test_a_stale_namespace_of_a_crashed_run_is_removed_at_start() -> None:
    stale = f"{run_prefix()}-a-int"
    subprocess.run(["ip", "netns", "add", stale], check=True)
    leftover = f"{run_prefix()}-old"
    subprocess.run(["ip", "netns", "add", leftover], check=True)
    try:
        with Topology(["a"]) as t:
            assert leftover not in our_namespaces()
            assert stale in our_namespaces()  # made anew
            assert t.run(stale, ["true"], timeout=10).returncode == 0
    finally:
        for ns in (stale, leftover):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
    assert our_namespaces() == []


@pytest.mark.slow
def test_a_descriptor_gossips_from_one_internal_node_to_another_orgs_through_gateways(
    tmp_path: Path,
) -> None:
    with start_topology_network(tmp_path, orgs=3, internal_per_org=1) as net:
        a_int, c_int = net.internal("acme"), net.internal("initech")
        assert a_int.namespace.endswith("acme-int")
        assert net.gateway("acme").addrs == (
            "/ip4/10.1.0.1/tcp/4001",
            "/ip4/10.99.0.11/tcp/4001",
        )
        # Neither A's internal node nor A's gateway can reach C's internal daemon.
        c_ip, c_port = net.topology.internal_ip("initech"), int(c_int.addrs[0].rsplit("/")[-1])
        for ns in (a_int.namespace, net.gateway("acme").namespace):
            assert connect(net.topology, ns, c_ip, c_port) in UNREACHABLE
        assert connect(net.topology, net.gateway("initech").namespace, c_ip, c_port) == "bad"
        raw = signed_by(a_int.devnet, "river-levels", 1, "River levels of the acme basin")
        path = tmp_path / "river.dnd"
        path.write_bytes(raw)
        published = a_int.cli("publish", str(path))
        assert published.returncode == 0, published.stderr
        dataset = str(DatasetId(a_int.devnet.org.org_id, "river-levels"))
        deadline = time.monotonic() + 60
        hits: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            found = c_int.cli("search", "river", "--json")
            assert found.returncode == 0, found.stderr
            hits = json.loads(found.stdout)["hits"]
            if hits:
                break
            time.sleep(0.5)
        assert [h["dataset_id"] for h in hits] == [dataset]
        # every org's record (gateway, egress) reached C's internal node
        for org, o in net.orgs.items():
            shown = c_int.cli("org", "show-record", str(o.org_id), "--json")
            assert shown.returncode == 0, shown.stderr
            doc = json.loads(shown.stdout)
            assert doc["egress"] is True
            assert [g["peer"] for g in doc["gateways"]] == [str(net.gateway(org).peer_id)]
        # stop and start a gateway: the daemon comes back on the same addresses
        gw = net.gateway("acme")
        gw.stop()
        assert not gw.running
        gw.start()
        assert gw.running
        assert gw.cli("node", "status").returncode == 0
    assert our_namespaces() == []
