"""Access requests across three organizations in their own network namespaces.

Each organization's internal node lives in a namespace with no route to any other
organization; its gateway is attached to the internal network and to a shared
backbone. Every org record names the gateway and gates egress, so a request from
initech's internal node for a dataset of acme's internal node crosses initech's
gateway and acme's gateway, and the answer returns the same way. Everything is
driven through the real CLI inside the namespaces, against real daemons.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from datanet.records.ids import DatasetId
from datanet.records.policy import AccessPolicy
from datanet.testing.netns import TopologyNetwork, TopoNode, start_topology_network
from datanet.testing.records import signed_by

pytestmark = [pytest.mark.netns, pytest.mark.slow]


def run_json(node: TopoNode, *args: str, codes: tuple[int, ...] = (0,)) -> Any:
    result = node.cli(*args, "--json")
    assert result.returncode in codes, (args, result.returncode, result.stdout, result.stderr)
    return json.loads(result.stdout)


def eventually(
    check: Callable[[], bool],
    what: str,
    timeout: float = 60.0,
    net: TopologyNetwork | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}" + gossip_state(net))
        time.sleep(0.3)


def gossip_state(net: TopologyNetwork | None) -> str:
    """Each node's ledger and gossip figures, for a failure message."""
    if net is None:
        return ""
    lines = []
    for node in net.nodes:
        result = node.cli("catalog", "stats", "--json")
        try:
            stats = json.loads(result.stdout)
            gossip = stats["gossip"]
            lines.append(
                f"{node.name} ({node.org} {node.role}): ledger={stats['ledger']} "
                f"mesh={gossip['mesh']} router={gossip['router']} sync={stats['sync']}"
            )
        except (ValueError, KeyError, TypeError):
            lines.append(f"{node.name}: catalog stats failed: {result.stderr.strip()[:200]}")
    return "\n" + "\n".join(lines)


def publish(net: TopologyNetwork, tmp_path: Path, name: str, policy: AccessPolicy) -> str:
    owner = net.internal("acme")
    raw = signed_by(owner.devnet, name, 1, f"{name} of acme", access_policy=policy)
    path = tmp_path / f"{name.replace('/', '-')}.dnd"
    path.write_bytes(raw)
    done = owner.cli("publish", str(path))
    assert done.returncode == 0, done.stderr
    return str(DatasetId(owner.devnet.org.org_id, name))


def test_requests_cross_two_gateways_in_namespaces(tmp_path: Path) -> None:
    with start_topology_network(tmp_path, orgs=3, internal_per_org=1) as net:
        owner, requester, other = (
            net.internal("acme"),
            net.internal("initech"),
            net.internal("globex"),
        )
        open_id = publish(net, tmp_path, "water/open", AccessPolicy(mode="open"))
        asked_id = publish(
            net,
            tmp_path,
            "water/asked",
            AccessPolicy(mode="request", purposes=("research-and-development",)),
        )
        for dataset in (open_id, asked_id):
            eventually(
                lambda d=dataset: requester.cli("resolve", d).returncode == 0,
                f"{dataset} in initech's catalog",
            )

        # 1. granted at once, through initech's gateway and acme's gateway
        grant_file = tmp_path / "open.grant"
        granted = run_json(
            requester,
            "request",
            open_id,
            "--purpose",
            "academic-research",
            "--days",
            "30",
            "--out",
            str(grant_file),
        )
        assert granted["state"] == "granted"
        assert [(h["node"], h["action"]) for h in granted["grant"]["route"]] == [
            (str(net.gateway("initech").peer_id), "forward"),
            (str(net.gateway("acme").peer_id), "forward"),
            (str(owner.peer_id), "decide"),
        ]
        assert grant_file.stat().st_size > 0
        # anyone verifies it offline: globex's node, which took no part
        checked = run_json(other, "grants", "verify", str(grant_file), "--deep")
        assert checked["valid"] is True, checked

        # 2. a request-policy dataset waits for acme's operator, who approves it
        pending = run_json(
            requester, "request", asked_id, "--purpose", "scientific-research", codes=(9,)
        )
        assert pending["state"] == "pending"
        request_id = pending["request"]["request_id"]
        inbox = run_json(owner, "requests", "--state", "pending")
        assert [r["request_id"] for r in inbox] == [request_id]
        approved = run_json(owner, "requests", "approve", request_id[:12], "--days", "7")
        assert approved["state"] == "granted"
        shown = run_json(requester, "requests", "show", request_id[:12], "--sent")
        assert shown["state"] == "granted", shown

        # 3. a denial carries its machine-readable reason back
        denied = run_json(requester, "request", asked_id, "--purpose", "marketing", codes=(8,))
        assert denied["denial"]["reason"] == "purpose_not_allowed"
        assert owner.cli("requests", "deny", request_id, "--reason", "x").returncode != 0

        # 4. the owner's gateway goes down: a clear error naming the hop; back up: served
        gateway = net.gateway("acme")
        gateway.stop()
        down = requester.cli("request", open_id, "--purpose", "academic-research")
        assert down.returncode != 0
        assert "gateway_unreachable" in down.stderr or "answered" in down.stderr, down.stderr
        assert str(gateway.peer_id)[:12] in down.stderr, down.stderr
        gateway.start()
        eventually(
            lambda: (
                requester.cli("request", open_id, "--purpose", "academic-research").returncode == 0
            ),
            "service after the gateway restarted",
        )

        # 5. the owner revokes the first grant; once the revocation arrives it fails
        grant_id = granted["grant"]["grant_id"]
        revoked = run_json(owner, "grants", "revoke", grant_id[:12], "--reason", "study ended")
        assert revoked["revoked_at"] is not None

        def refused() -> bool:
            result = other.cli("grants", "verify", str(grant_file), "--json")
            doc = json.loads(result.stdout)
            return result.returncode == 1 and doc["error"]["code"] == "grant_revoked"

        eventually(refused, "the revocation at globex", net=net)
