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
from datanet.records.access import TraceEntry, request_id, verify_grant
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


def _request_from(spec, dataset: DatasetId, **changes) -> bytes:  # type: ignore[no-untyped-def]
    """A request signed by ``spec``'s node with its own files (``changes`` alter fields)."""
    import secrets

    from datanet.node.home import Home
    from datanet.records.access import AccessRequest, sign_request
    from datanet.records.sealed import new_reply_key

    home = Home(spec.home)
    now = int(time.time())
    fields = {
        "dataset_id": dataset,
        "sequence": 1,
        "purpose": "academic-research",
        "validity_days": 5,
        "node": spec.peer_id,
        "org": spec.org.org_id,
        "nonce": secrets.token_bytes(16),
        "created": now,
        "deadline": now + 3600,
        "reply_key": new_reply_key()[1],
        **changes,
    }
    return sign_request(AccessRequest(**fields), home.load_node_key(), home.membership_chain(now))


async def test_junk_is_refused_at_the_first_hop_and_changes_nothing(tmp_path: Path) -> None:
    from datanet.p2p.access import MAX_ACCESS_FRAME
    from identity.envelope import open_envelope, seal

    async with in_process_network(tmp_path, 6) as (specs, nodes):
        await publish_org_records(specs, nodes)
        dataset = await publish(nodes, specs, 3, "guarded/data", AccessPolicy(mode="open"))
        attacker, gateway, owner = nodes[5], nodes[2], nodes[3]
        send = attacker.access._transport.send
        genuine = _request_from(specs[5], dataset)
        env = open_envelope(genuine, tag="dn/access-request/v1", max_size=8192)
        bad_signature = seal(attacker._key, env.tag, env.body, env.chain)
        bad_signature = type(bad_signature)(
            env.tag, env.body, env.signer, bytes(64), env.chain
        ).encode()
        other_node = _request_from(specs[4], dataset)  # signed by node 4, sent by node 5
        theirs = open_envelope(other_node, tag="dn/access-request/v1", max_size=8192)
        impostor = seal(attacker._key, theirs.tag, theirs.body, theirs.chain).encode()
        expired = _request_from(specs[5], dataset, created=int(time.time()) - 7200,
                                deadline=int(time.time()) - 3600)  # fmt: skip
        # a trace entry by a node without the gateway role, claiming to forward
        own_entry = seal(
            attacker._key,
            "dn/access-trace/v1",
            TraceEntry(
                request_id=request_id(genuine),
                hop=0,
                node=attacker.peer_id,
                org=specs[5].org.org_id,
                prev=request_id(genuine),
                at=int(time.time()),
                action="forward",
                next=gateway.peer_id,
            ).encode_body(),
            attacker.access._chain,
        ).encode()
        before = (owner.access.store.counts(), gateway.access.counters["relayed"])
        cases = {
            "bad_signature": {"op": "submit", "req": bad_signature, "trace": []},
            "wrong_scope": {"op": "submit", "req": impostor, "trace": []},
            "decode_error": {"op": "submit", "req": b"\x93junk", "trace": []},
            "request_expired": {"op": "submit", "req": expired, "trace": []},
            "wrong_sender": {"op": "submit", "req": other_node, "trace": []},
            "invalid_input": {"op": "fly", "req": genuine, "trace": []},
            "hop_limit": {"op": "submit", "req": genuine, "trace": [b"x"] * 9},
            "role_not_granted": {"op": "submit", "req": genuine, "trace": [own_entry]},
        }
        for code, frame in cases.items():
            with pytest.raises(DatanetError) as err:
                await send(gateway.peer_id, frame, hops_left=3)
            assert err.value.remote_code == code, err.value
        with pytest.raises(DatanetError):  # over the frame limit: the stream is cut
            await send(
                gateway.peer_id,
                {"op": "submit", "req": genuine, "trace": [b"y" * 4096] * 50},
                hops_left=3,
            )
        assert len(b"y" * 4096 * 50) > MAX_ACCESS_FRAME
        # the genuine request passes; sent again it is a replay, refused at the gateway
        ok = await send(gateway.peer_id, {"op": "submit", "req": genuine, "trace": []}, hops_left=3)
        assert ok["state"] == "granted"
        with pytest.raises(DatanetError) as err:
            await send(gateway.peer_id, {"op": "submit", "req": genuine, "trace": []}, hops_left=3)
        assert err.value.remote_code == "replayed_request"
        counts, relayed = before
        assert gateway.access.counters["relayed"] == relayed + 1
        assert owner.access.store.counts()["grants"] == counts["grants"] + 1
        assert gateway.access.counters["refused"] >= len(cases) + 1
