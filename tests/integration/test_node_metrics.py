"""GET /metrics figures from real in-process nodes that did real work.

Six nodes of three organizations (datanet.testing.network): one publishes a
descriptor, another resolves it through the DHT, a third asks for access through
two gateways. Each node's scrape is parsed with prometheus_client's own parser.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio
from prometheus_client.parser import text_string_to_metric_families

from datanet.node.driver import Node
from datanet.node.metrics import FAMILIES
from datanet.records.ids import DatasetId
from datanet.records.policy import AccessPolicy
from datanet.testing.network import in_process_network
from datanet.testing.records import signed_by
from identity.orgs import Gateway, issue_org_record


async def held(nodes: list[Node], check: Callable[[Node], bool], timeout: float = 30.0) -> None:
    with trio.fail_after(timeout):
        while not all(check(n) for n in nodes):
            await trio.sleep(0.05)


async def publish_org_records(specs: list[Any], nodes: list[Node]) -> None:
    """Each org's record names its first node as gateway (as tests/integration/test_node_access)."""
    now = int(time.time())
    for spec, node in list(zip(specs, nodes, strict=False))[:3]:
        addrs = tuple(a.rpartition("/p2p/")[0] for a in node.listen_addrs())
        raw = issue_org_record(
            spec.org.key,
            name=spec.org.name,
            gateways=[Gateway(spec.peer_id, addrs)],
            sequence=1,
            expires=now + 86400,
            egress=True,
        )
        await nodes[0].publish(raw)
    orgs = [spec.org.org_id for spec in specs[:3]]
    await held(nodes, lambda n: all(n.access._org_route(o)[0].gateways for o in orgs))  # type: ignore[union-attr]


async def publish(nodes: list[Node], specs: list[Any], index: int, name: str) -> DatasetId:
    raw = signed_by(specs[index], name, 1, name, access_policy=AccessPolicy(mode="open"))
    await nodes[index].publish(raw)
    dataset = DatasetId(specs[index].org.org_id, name)
    await held(nodes, lambda n: n.ledger.catalog.get(str(dataset)) is not None)
    return dataset


def scrape(node: Node) -> dict[str, list[Any]]:
    """``{family name: samples}`` of one node's exposition."""
    text = node.metrics_text().decode("utf-8")
    return {f.name: list(f.samples) for f in text_string_to_metric_families(text)}


def total(samples: list[Any], suffix: str = "", **labels: str) -> float:
    return sum(
        s.value
        for s in samples
        if s.name.endswith(suffix) and all(s.labels.get(k) == v for k, v in labels.items())
    )


async def test_a_working_network_moves_every_family(tmp_path: Path) -> None:
    async with in_process_network(tmp_path, 6) as (specs, nodes):
        before = scrape(nodes[4])
        await publish_org_records(specs, nodes)
        dataset = await publish(nodes, specs, 3, "open/data")
        await nodes[4].resolve(dataset, refresh=True)
        outcome = await nodes[5].request_access(
            dataset, purpose="academic-research", days=30, note="metrics", wait=0
        )
        assert outcome["state"] == "granted", outcome
        with trio.fail_after(30):  # heads are signed at most every 2 s
            while not total(scrape(nodes[3])["datanet_audit_heads_signed"]):
                await trio.sleep(0.1)

        fams = {i: scrape(n) for i, n in enumerate(nodes)}
        for i, got in fams.items():
            assert set(FAMILIES) <= set(got), (i, set(FAMILIES) - set(got))
            assert total(got["datanet_peers"], state="admitted") >= 1
            assert total(got["datanet_routing_table_peers"]) >= 1
            assert total(got["datanet_catalog_descriptors"]) >= 1
            assert total(got["datanet_dht_records"]) >= 1

        reader = fams[4]
        lookups = reader["datanet_dht_lookup_duration_seconds"]
        assert total(lookups, "_count", kind="get_value", outcome="ok") >= 1
        assert total(before["datanet_dht_lookup_duration_seconds"], "_count", kind="get_value") == 0
        out_gets = total(
            reader["datanet_dht_requests"], "_total", direction="out", type="get_value"
        )
        assert out_gets > total(before["datanet_dht_requests"], "_total", type="get_value")
        served = sum(
            total(f["datanet_dht_requests"], "_total", direction="in", outcome="ok")
            for f in fams.values()
        )
        assert served >= 1
        # gossip carried the descriptor and org records everywhere
        assert total(reader["datanet_gossip_rpcs"], "_total", direction="in") >= 1
        assert total(reader["datanet_ledger_records"], "_total", verdict="accepted") >= 1
        # the owner decided, the requester's request is granted
        owner, requester = fams[3], fams[5]
        assert total(owner["datanet_access_requests"], direction="received", state="granted") == 1
        assert total(owner["datanet_access_events"], "_total", event="decided") == 1
        assert total(requester["datanet_access_requests"], direction="sent", state="granted") == 1
        assert total(owner["datanet_access_grants"], state="active") == 1
        assert total(owner["datanet_audit_log_entries"]) >= 1
        assert total(owner["datanet_audit_alarms"]) == 0
        assert sum(total(f["datanet_dht_puts"], "_total", event="walked") for f in fams.values())
        assert sum(
            total(f["datanet_witness_events"], "_total", event="heads_received")
            for f in fams.values()
        )
        assert not any(total(f["datanet_metrics_source_errors"], "_total") for f in fams.values())
        # no peer id ever appears in a scrape
        text = nodes[4].metrics_text().decode()
        assert not any(str(s.peer_id) in text for s in specs)
