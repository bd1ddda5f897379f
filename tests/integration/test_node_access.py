"""Access requests on real in-process nodes: routed through gateways, decided, verified.

Three organizations of two nodes each (devnet layout: node i belongs to org i % 3;
nodes 0-2 are their orgs' gateways). Every org publishes an org record naming its
gateway and gating egress, so a request from node 5 (org 2) for a dataset that
node 3 (org 0) published travels 5 -> 2 (own gateway) -> 0 (owner gateway) -> 3.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import trio

from datanet.errors import DatanetError
from datanet.node.driver import Node
from datanet.records.access import verify_grant
from datanet.records.ids import DatasetId
from datanet.records.policy import AccessPolicy
from datanet.testing.network import in_process_network
from datanet.testing.records import signed_by
from identity.orgs import Gateway, issue_org_record


async def publish_org_records(specs: list, nodes: list[Node], *, egress: bool = True) -> None:
    now = int(time.time())
    gateways = {}
    for spec, node in zip(specs, nodes, strict=False):
        if spec.index < 3:
            addrs = tuple(a.rpartition("/p2p/")[0] for a in node.listen_addrs())
            gateways[spec.org.org_id] = (spec.org, Gateway(spec.peer_id, addrs))
    for org, gateway in gateways.values():
        raw = issue_org_record(
            org.key,
            name=org.name,
            gateways=[gateway],
            sequence=1,
            expires=now + 86400,
            egress=egress,
        )
        await nodes[0].publish(raw)
    await held(nodes, lambda n: all(n.access._org_route(o)[0].gateways for o in gateways))


async def held(nodes: list[Node], check, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    with trio.fail_after(timeout):
        while not all(check(n) for n in nodes):
            await trio.sleep(0.05)


async def publish(
    nodes: list[Node], specs: list, index: int, name: str, policy: AccessPolicy
) -> DatasetId:
    raw = signed_by(specs[index], name, 1, name, access_policy=policy)
    await nodes[index].publish(raw)
    dataset = DatasetId(specs[index].org.org_id, name)
    await held(nodes, lambda n: n.ledger.catalog.get(str(dataset)) is not None)
    return dataset


async def test_request_crosses_two_gateways_and_is_granted(tmp_path: Path) -> None:
    async with in_process_network(tmp_path, 6) as (specs, nodes):
        await publish_org_records(specs, nodes)
        dataset = await publish(nodes, specs, 3, "open/data", AccessPolicy(mode="open"))
        outcome = await nodes[5].request_access(
            dataset, purpose="academic-research", days=30, note="thesis", wait=0
        )
        assert outcome["state"] == "granted", outcome
        route = [(h["node"], h["action"]) for h in outcome["grant"]["route"]]
        assert route == [
            (str(specs[2].peer_id), "forward"),
            (str(specs[0].peer_id), "forward"),
            (str(specs[3].peer_id), "decide"),
        ]
        # The private details reached the grantee only.
        view = nodes[5].grant(outcome["grant"]["grant_id"], details=True)
        assert view["details"]["token"]
        raw = nodes[3].access.store.list_grants(limit=1)[0].grant
        checked = verify_grant(raw, nodes[1]._trust, int(time.time()), deep=True)
        assert checked.grant.grantee_node == specs[5].peer_id
        # Nothing about it was stored by the relays.
        assert nodes[2].access.store.counts()["grants"] == 0
        assert nodes[0].access.store.counts()["incoming_pending"] == 0


async def test_request_policy_waits_for_the_operator_then_is_granted(tmp_path: Path) -> None:
    async with in_process_network(tmp_path, 6) as (specs, nodes):
        await publish_org_records(specs, nodes)
        dataset = await publish(nodes, specs, 3, "asked/data", AccessPolicy(mode="request"))
        outcome = await nodes[4].request_access(
            dataset, purpose="public-benefit", days=10, note="", wait=0
        )
        assert outcome["state"] == "pending"
        request_id = outcome["request"]["request_id"]
        inbox = nodes[3].access_requests(
            direction="received", state="pending", dataset=None, limit=10
        )
        assert [r["request_id"] for r in inbox] == [request_id]
        approved = await nodes[3].approve_request(request_id[:12], days=5)
        assert approved["state"] == "granted"
        again = await nodes[4].refresh_request(request_id[:12], wait=0)
        assert again["state"] == "granted"
        assert again["grant"]["not_after"] - again["grant"]["not_before"] == 5 * 86400


async def test_denial_carries_its_reason_and_replay_is_refused(tmp_path: Path) -> None:
    async with in_process_network(tmp_path, 6) as (specs, nodes):
        await publish_org_records(specs, nodes)
        policy = AccessPolicy(mode="open", purposes=("academic-research",), max_validity_days=7)
        dataset = await publish(nodes, specs, 3, "narrow/data", policy)
        outcome = await nodes[5].request_access(
            dataset, purpose="marketing", days=3, note="", wait=0
        )
        assert outcome["state"] == "denied"
        assert outcome["denial"]["reason"] == "purpose_not_allowed"
        too_long = await nodes[5].request_access(
            dataset, purpose="academic-research", days=30, note="", wait=0
        )
        assert too_long["denial"]["reason"] == "validity_too_long"
        # The same signed request sent again is refused at the first hop and changes nothing.
        row = nodes[5].access.store.find_outgoing(outcome["request"]["request_id"])
        before = nodes[3].access.store.counts()
        with pytest.raises(DatanetError) as err:
            await nodes[5].access._route("submit", row.request, ())
        assert err.value.code == "replayed_request"
        assert nodes[3].access.store.counts() == before
