"""The audit trail of real in-process nodes: access hops, decisions, receipts, publications.

Same network as tests/integration/test_node_access.py: three organizations of
two nodes each; nodes 0-2 are their orgs' gateways, so a request from node 5
(org 2) for a dataset that node 3 (org 0) published goes 5 -> 2 -> 0 -> 3.
"""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from datanet.devnet import provision
from datanet.errors import VerificationError
from datanet.node.config import load_config
from datanet.node.driver import Node
from datanet.node.home import Home
from datanet.node.startup import open_node
from datanet.records.access import request_id
from datanet.records.audit import EntryKind, decode_receipt, make_receipt, verify_receipt
from datanet.records.ids import DatasetId
from datanet.records.policy import AccessPolicy
from datanet.store.audit import AuditLog
from datanet.testing.network import in_process_network
from datanet.testing.records import signed_by
from identity.certs import Role, TrustStore, issue_certificate, issue_revocation
from identity.orgs import Gateway, issue_org_record

ROOT = Path(__file__).resolve().parents[2]


async def publish_org_records(specs: list, nodes: list[Node]) -> None:  # type: ignore[type-arg]
    """Each org's record names its gateway (nodes 0-2) and gates egress (as test_node_access)."""
    now = int(time.time())
    gateways = {}
    for spec, node in zip(specs, nodes, strict=False):
        if spec.index < 3:
            addrs = tuple(a.rpartition("/p2p/")[0] for a in node.listen_addrs())
            gateways[spec.org.org_id] = (spec.org, Gateway(spec.peer_id, addrs))
    for org, gateway in gateways.values():
        raw = issue_org_record(
            org.key, name=org.name, gateways=[gateway], sequence=1, expires=now + 86400, egress=True
        )
        await nodes[0].publish(raw)
    await held(nodes, lambda n: all(n.access._org_route(o)[0].gateways for o in gateways))


async def held(nodes: list[Node], check, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    with trio.fail_after(timeout):
        while not all(check(n) for n in nodes):
            await trio.sleep(0.05)


async def publish(
    nodes: list[Node],
    specs: list,  # type: ignore[type-arg]
    index: int,
    name: str,
    policy: AccessPolicy,
) -> DatasetId:
    raw = signed_by(specs[index], name, 1, name, access_policy=policy)
    await nodes[index].publish(raw)
    dataset = DatasetId(specs[index].org.org_id, name)
    await held(nodes, lambda n: n.ledger.catalog.get(str(dataset)) is not None)
    return dataset


def entries(node: Node, kind: EntryKind | None = None) -> list[Any]:
    assert node.audit is not None
    return [e.entry for e in node.audit.log.entries(kind=kind, limit=10_000)]


def about(node: Node, rid: bytes) -> list[tuple[str, dict[str, Any]]]:
    """The kinds and details of ``node``'s entries about request ``rid``, in order."""
    return [
        (str(e.kind), e.details) for e in entries(node) if e.details.get("request") == rid.hex()
    ]


def trust_of(specs: list) -> TrustStore:  # type: ignore[type-arg]
    return TrustStore({s.org.org_id for s in specs})


async def test_a_grant_through_two_gateways_is_logged_at_every_hop(tmp_path: Path) -> None:
    async with in_process_network(tmp_path, 6) as (specs, nodes):
        await publish_org_records(specs, nodes)
        dataset = await publish(nodes, specs, 3, "open/data", AccessPolicy(mode="open"))
        requester, egress, ingress, owner = nodes[5], nodes[2], nodes[0], nodes[3]
        outcome = await requester.request_access(
            dataset, purpose="academic-research", days=30, note="", wait=0
        )
        assert outcome["state"] == "granted", outcome
        rid = bytes.fromhex(outcome["request"]["request_id"])
        grant = owner.access.store.list_grants(limit=1)[0].grant
        peer = {n: str(n.peer_id) for n in nodes}
        # Each relay: received from the previous hop, forwarded on its leg, answered back.
        for relay, before, after, leg in (
            (egress, requester, ingress, "ingress"),
            (ingress, egress, owner, "internal"),
        ):
            logged = about(relay, rid)
            assert [k for k, _ in logged] == [
                "request_received",
                "request_forwarded",
                "request_answered",
            ]
            assert logged[0][1]["from"] == peer[before]
            assert (logged[1][1]["to"], logged[1][1]["leg"]) == (peer[after], leg), logged
            assert logged[2][1] == {
                "request": rid.hex(),
                "dataset": str(dataset),
                "state": "granted",
                "to": peer[before],
            }
        # The owner: received, its decision holding the signed grant, answered.
        logged = about(owner, rid)
        assert [k for k, _ in logged] == ["request_received", "grant", "request_answered"]
        decision = next(e for e in entries(owner, EntryKind.GRANT))
        assert decision.refers_to(grant)
        assert decision.subject_hash == hashlib.sha256(grant).digest()
        # The requester's outcome carries a receipt that verifies offline.
        raw = base64.b64decode(outcome["receipt"])
        checked = verify_receipt(raw, trust_of(specs), int(time.time()))
        assert checked.head.head.node == owner.peer_id
        assert checked.entry.kind is EntryKind.GRANT
        assert checked.entry.details["request"] == rid.hex()
        assert checked.entry.subject_hash == hashlib.sha256(grant).digest()
        # ... and the requester logged where it sent the request and the receipt it got.
        logged = about(requester, rid)
        assert [k for k, _ in logged] == ["request_forwarded", "request_answered"]
        assert (logged[0][1]["to"], logged[0][1]["leg"]) == (peer[egress], "egress")
        answered = [e for e in entries(requester) if e.details.get("request") == rid.hex()][-1]
        assert answered.refers_to(raw)
        # Nothing private: no entry anywhere holds the reply secret.
        secret = requester.access.store.outgoing(rid).reply_secret
        for node in nodes:
            for entry in entries(node):
                assert secret not in entry.encode()


async def test_pending_then_approved_carries_receipts_of_each_decision(tmp_path: Path) -> None:
    async with in_process_network(tmp_path, 6) as (specs, nodes):
        await publish_org_records(specs, nodes)
        dataset = await publish(nodes, specs, 3, "asked/data", AccessPolicy(mode="request"))
        requester, owner = nodes[4], nodes[3]
        trust = trust_of(specs)
        outcome = await requester.request_access(
            dataset, purpose="public-benefit", days=10, note="", wait=0
        )
        assert outcome["state"] == "pending"
        queued = verify_receipt(base64.b64decode(outcome["receipt"]), trust, int(time.time()))
        assert (queued.entry.kind, queued.entry.details["state"]) == (EntryKind.DECISION, "pending")
        rid = outcome["request"]["request_id"]
        # Asking again: a fresh receipt of the same entry.
        again = await requester.refresh_request(rid, wait=0)
        second = verify_receipt(base64.b64decode(again["receipt"]), trust, int(time.time()))
        assert second.index == queued.index
        assert second.entry_bytes == queued.entry_bytes
        await owner.approve_request(rid[:12], days=5)
        kinds = [k for k, _ in about(owner, bytes.fromhex(rid))]
        assert kinds == ["request_received", "decision", "request_answered", "approval", "grant"]
        approved = await requester.refresh_request(rid, wait=0)
        assert approved["state"] == "granted"
        final = verify_receipt(base64.b64decode(approved["receipt"]), trust, int(time.time()))
        assert final.entry.kind is EntryKind.GRANT
        assert final.entry.refers_to(base64.b64decode(approved["grant"]["envelope"]))
        # The requester logged each new state it learned (pending, then granted), not every poll.
        states = [
            d["state"] for k, d in about(requester, bytes.fromhex(rid)) if k.endswith("answered")
        ]
        assert states == ["pending", "granted"]


async def test_operator_denial_and_revocation_are_logged(tmp_path: Path) -> None:
    async with in_process_network(tmp_path, 6) as (specs, nodes):
        await publish_org_records(specs, nodes)
        asked = await publish(nodes, specs, 3, "asked/data", AccessPolicy(mode="request"))
        opened = await publish(nodes, specs, 3, "open/data", AccessPolicy(mode="open"))
        owner = nodes[3]
        pending = await nodes[5].request_access(
            asked, purpose="public-benefit", days=3, note="", wait=0
        )
        await owner.deny_request(pending["request"]["request_id"], reason="not this year")
        denial = entries(owner, EntryKind.DENIAL)[-1]
        assert denial.details["reason"] == "not this year"  # the operator's reason text
        refused = await nodes[5].refresh_request(pending["request"]["request_id"], wait=0)
        assert refused["state"] == "denied"
        checked = verify_receipt(
            base64.b64decode(refused["receipt"]), trust_of(specs), int(time.time())
        )
        assert checked.entry.refers_to(base64.b64decode(refused["denial"]["envelope"]))
        granted = await nodes[5].request_access(
            opened, purpose="academic-research", days=3, note="", wait=0
        )
        await owner.revoke_grant(granted["grant"]["grant_id"], reason="ended")
        revoked = entries(owner, EntryKind.GRANT_REVOKED)[-1]
        assert revoked.details["grant"] == granted["grant"]["grant_id"]
        published = entries(owner, EntryKind.PUBLISH)[-1]
        assert published.details["kind"] == "grant_revocation"
        assert revoked.subject_hash == published.subject_hash  # the same signed revocation


async def test_a_relay_refuses_a_receipt_about_another_request(tmp_path: Path) -> None:
    async with in_process_network(tmp_path, 6) as (specs, nodes):
        await publish_org_records(specs, nodes)
        dataset = await publish(nodes, specs, 3, "open/data", AccessPolicy(mode="open"))
        first = await nodes[5].request_access(
            dataset, purpose="academic-research", days=3, note="", wait=0
        )
        second = await nodes[4].request_access(
            dataset, purpose="academic-research", days=3, note="", wait=0
        )
        # The answer to the second request, carrying the first one's (genuine) receipt.
        access = nodes[2].access
        grant = base64.b64decode(second["grant"]["envelope"])
        rid = bytes.fromhex(second["request"]["request_id"])
        frame = {
            "state": "granted",
            "grant": grant,
            "trace": [],
            "receipt": base64.b64decode(first["receipt"]),
        }
        with pytest.raises(VerificationError, match="another request"):
            access._check_answer(frame, rid, nodes[0].peer_id)
        # A receipt whose proof was tampered with does not verify.
        genuine = decode_receipt(base64.b64decode(second["receipt"]))
        bad = make_receipt(
            genuine.head,
            genuine.index,
            [bytes(32)] * len(genuine.proof) or [bytes(32)],
            genuine.entry,
        )
        with pytest.raises(VerificationError, match="does not verify"):
            access._check_answer({**frame, "receipt": bad}, rid, nodes[0].peer_id)
        frame["receipt"] = base64.b64decode(second["receipt"])
        assert access._check_answer(frame, rid, nodes[0].peer_id).receipt == frame["receipt"]
        assert request_id  # imported for symmetry with the access tests


async def test_publish_withdraw_and_revocation_are_logged(tmp_path: Path) -> None:
    async with in_process_network(tmp_path, 6) as (specs, nodes):
        raw = signed_by(specs[3], "pub/data", 1, "pub/data")
        await nodes[3].publish(raw)
        published = entries(nodes[3], EntryKind.PUBLISH)
        assert [e.details["kind"] for e in published] == ["descriptor"]
        assert published[0].refers_to(raw)
        dataset = published[0].details["dataset"]
        await held(nodes, lambda n: n.ledger.catalog.get(dataset) is not None)
        await nodes[3].deprecate(DatasetId.parse(dataset), reason="superseded")
        withdrawn = entries(nodes[3], EntryKind.WITHDRAW)
        assert [e.details["dataset"] for e in withdrawn] == [dataset]
        # A revocation list that changes the trust store is logged where it is applied.
        org = specs[1].org
        revocation = issue_revocation(org.key, [999], sequence=1, issued_at=int(time.time()))
        before = {n.peer_id: len(entries(n, EntryKind.TRUST_CHANGE)) for n in nodes}
        await nodes[1].publish(revocation)
        await held(nodes, lambda n: len(entries(n, EntryKind.TRUST_CHANGE)) > before[n.peer_id])
        change = entries(nodes[4], EntryKind.TRUST_CHANGE)[-1]
        assert change.details == {
            "source": "revocation",
            "org": str(org.org_id),
            "sequence": 1,
            "serials": 1,
        }
        assert change.refers_to(revocation)
        # Publishing it again changes nothing and logs no trust change.
        status = nodes[4].status()["audit"]
        assert status["size"] == nodes[4].audit.log.size
        assert status["alarms"] == 0


async def test_a_new_certificate_is_logged_once_at_start(tmp_path: Path) -> None:
    _, specs = provision(tmp_path, orgs=3, nodes=3)
    spec = specs[0]
    home = Home(spec.home)
    config = load_config(home.config_path)

    async def restart() -> list[Any]:
        async with open_node(spec.home, config, home.load_node_key()) as node:
            return entries(node, EntryKind.CERT_CHANGE)

    assert len(await restart()) == 1  # the first start logs the certificate
    assert len(await restart()) == 1  # nothing changed: nothing logged
    await trio.sleep(1.1)  # the renewed certificate is newer (not_before) than the devnet's
    now = int(time.time())
    renewed = issue_certificate(
        spec.org.key,
        spec.peer_id,
        [Role.PUBLISHER, Role.REQUESTER, Role.GATEWAY],
        not_before=now,
        not_after=now + 86400,
        serial=4242,
    )
    home.install_certificate(renewed, now)
    assert home.membership_chain(now) == [renewed]
    changes = await restart()
    assert len(changes) == 2
    assert changes[-1].details["serial"] == 4242
    assert changes[-1].refers_to(renewed)
    assert len(await restart()) == 2  # and not again on the next restart
    # The whole log verifies, heads included.
    log = AuditLog(home.layout.audit)
    try:
        assert log.verify().ok
    finally:
        log.close()


CHILD = textwrap.dedent(
    """
    import sys, trio
    from pathlib import Path
    from datanet.node.config import load_config
    from datanet.node.home import Home
    from datanet.node.startup import open_node
    from datanet.devnet.layout import DevnetNode

    home_dir = Path(sys.argv[1])
    raws = [bytes.fromhex(line) for line in Path(sys.argv[2]).read_text().split()]

    async def main():
        home = Home(home_dir)
        async with open_node(home_dir, load_config(home.config_path), home.load_node_key()) as node:
            print("ready", flush=True)
            for i, raw in enumerate(raws):
                await node.publish(raw)
                print("ack", i, flush=True)
            await trio.sleep_forever()

    trio.run(main)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_an_acknowledged_publish_survives_kill_9(tmp_path: Path) -> None:
    _, specs = provision(tmp_path, orgs=3, nodes=3)
    spec = specs[0]
    raws = [signed_by(spec, f"crash/{n}", 1, f"crash {n}") for n in range(40)]
    (tmp_path / "raws").write_text("\n".join(r.hex() for r in raws))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(spec.home), str(tmp_path / "raws")],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    acked = -1
    try:
        assert child.stdout is not None
        deadline = time.monotonic() + 60
        for line in child.stdout:
            if line.startswith("ack"):
                acked = int(line.split()[1])
                if acked >= 5:
                    break
            assert time.monotonic() < deadline
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert acked >= 5
    log = AuditLog(Home(spec.home).layout.audit)
    try:
        published = [e.entry for e in log.entries(kind=EntryKind.PUBLISH, limit=1000)]
        for n in range(acked + 1):
            assert any(e.refers_to(raws[n]) for e in published), n
        assert log.verify().ok
    finally:
        log.close()
