"""A started devnet publishes every org's record (gateway, loopback address, no egress
gating), and every node's ledger holds all of them; a restart publishes newer ones."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from datanet.client import Client
from datanet.devnet import DaemonSet, load_devnet, provision, start_network
from datanet.devnet.layout import Devnet
from datanet.records.ledger import org_record_key
from identity.orgs import Gateway, parse_org_record

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="daemon processes"),
]


def command(home: Path) -> list[str]:
    return [sys.executable, "-m", "cli.main", "--data-dir", str(home), "node", "start"]


def held(devnet: Devnet, expect_sequence: int) -> None:
    """Every node's ledger holds every org's record at ``expect_sequence`` (waits up to 30 s)."""
    deadline = time.monotonic() + 30
    for node in devnet.nodes:
        with Client(node.home) as client:
            while client.catalog_stats()["ledger"]["items"] < len(devnet.orgs):
                assert time.monotonic() < deadline, f"{node.name} lacks org records"
                time.sleep(0.2)
            for org in devnet.orgs:
                record = parse_org_record(
                    client.routing_get(org_record_key(org.org_id)), int(time.time())
                )
                gw = devnet.gateway_of(org)
                assert record.name == org.name
                assert record.sequence == expect_sequence
                assert record.gateways == (Gateway(gw.peer_id, (gw.listen_addr,)),)
                assert record.egress is False


def test_every_node_holds_every_org_record_and_a_restart_renews_them(tmp_path: Path) -> None:
    provision(tmp_path / "net", orgs=3, nodes=4)
    devnet = load_devnet(tmp_path / "net")
    with DaemonSet(command) as daemons:
        start_network(devnet, daemons, timeout=60)
        held(devnet, expect_sequence=1)
    with DaemonSet(command) as daemons:
        start_network(load_devnet(tmp_path / "net"), daemons, timeout=60)
        held(devnet, expect_sequence=2)
