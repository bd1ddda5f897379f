"""End to end: access requests on six daemon processes of three organizations, via the CLI.

Nodes 0-2 are their organizations' gateways (devnet layout: node i belongs to org
i % 3). The operators sign org records naming them and gating egress with
``datanet org record`` and publish them with ``datanet publish``, so a request
from node 5 (initech) for a dataset node 3 (acme) published travels
5 -> 2 -> 0 -> 3. Every step is a ``datanet`` process; nothing here imports the node.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cli.devnet import daemon_command
from datanet.devnet import DaemonSet, DevnetNode, child_env, provision
from datanet.records.ids import DatasetId
from datanet.records.policy import AccessPolicy
from datanet.testing.records import signed_by

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="daemon processes")


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


def cli_json(home: Path, *args: str, code: int = 0) -> Any:
    result = cli(home, "--json", *args)
    assert result.returncode == code, (args, result.returncode, result.stdout, result.stderr)
    return json.loads(result.stdout)


def eventually(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[DevnetNode]]]:
    base = tmp_path_factory.mktemp("accessnet")
    orgs, nodes = provision(base, orgs=3, nodes=6, bootstrap_count=3)
    with DaemonSet(daemon_command, stop_timeout=20) as daemons:
        daemons.wait_ready([daemons.spawn(n) for n in nodes[:3]], timeout=120)
        daemons.wait_ready([daemons.spawn(n) for n in nodes[3:]], timeout=120)
        admin = base / "orgs"
        for org, gateway in zip(orgs, nodes[:3], strict=True):
            path = base / f"{org.name}.org"
            signed = cli(
                admin,
                "org",
                "record",
                org.name,
                "--gateway",
                str(gateway.peer_id),
                "--addr",
                f"{gateway.peer_id}=/ip4/127.0.0.1/tcp/{gateway.port}",
                "--egress",
                "--out",
                str(path),
            )
            assert signed.returncode == 0, signed.stderr
            published = cli(nodes[0].home, "publish", str(path))
            assert published.returncode == 0, published.stderr
        for node in nodes:
            for org in orgs:
                eventually(
                    f"{org.name}'s org record at {node.name}",
                    lambda n=node, o=org: (
                        cli(n.home, "org", "show-record", str(o.org_id)).returncode == 0
                    ),
                )
        yield base, nodes


def publish(base: Path, node: DevnetNode, name: str, policy: AccessPolicy) -> str:
    path = base / f"{name.replace('/', '-')}.dnd"
    path.write_bytes(signed_by(node, name, 1, name, access_policy=policy))
    done = cli(node.home, "publish", str(path))
    assert done.returncode == 0, done.stderr
    return str(DatasetId(node.org.org_id, name))


def held_by(node: DevnetNode, dataset: str) -> None:
    eventually(
        f"{dataset} at {node.name}", lambda: cli(node.home, "resolve", dataset).returncode == 0
    )


def test_granted_verified_tampered_and_revoked(net: tuple[Path, list[DevnetNode]]) -> None:
    base, nodes = net
    owner, requester, bystander = nodes[3], nodes[5], nodes[4]
    dataset = publish(base, owner, "e2e/open", AccessPolicy(mode="open"))
    held_by(requester, dataset)
    grant_file = base / "open.grant"
    outcome = cli_json(
        requester.home,
        "request",
        dataset,
        "--purpose",
        "academic-research",
        "--out",
        str(grant_file),
    )
    assert outcome["state"] == "granted"
    assert [h["node"] for h in outcome["grant"]["route"]] == [
        str(nodes[2].peer_id),
        str(nodes[0].peer_id),
        str(owner.peer_id),
    ]
    # the access details were sealed to the requester: only it can read them
    shown = cli_json(
        requester.home, "grants", "show", outcome["grant"]["grant_id"][:10], "--details"
    )
    assert shown["details"]["token"]
    assert cli_json(bystander.home, "grants", "verify", str(grant_file), "--deep")["valid"] is True
    # the decision came with the owner's audit receipt; anyone checks it offline, and the
    # requester's own log holds it too
    receipt_file = base / "open.receipt"
    receipt_file.write_bytes(base64.b64decode(outcome["receipt"]))
    checked = cli_json(bystander.home, "audit", "check-proof", str(receipt_file))
    assert checked["valid"] is True, checked
    logged = cli_json(requester.home, "audit", "show", "--kind", "request_answered")
    assert logged, "the requester logged the answer"

    tampered = base / "tampered.grant"
    data = bytearray(grant_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    bad = cli_json(bystander.home, "grants", "verify", str(tampered), code=1)
    assert bad["valid"] is False
    assert bad["error"]["code"] in {"bad_signature", "decode_error"}

    revoked = cli_json(
        owner.home, "grants", "revoke", outcome["grant"]["grant_id"], "--reason", "study ended"
    )
    assert revoked["revoked_at"] is not None
    again = cli(owner.home, "--json", "grants", "revoke", outcome["grant"]["grant_id"])
    assert again.returncode == 3
    assert "already revoked" in again.stderr

    def refused() -> bool:
        result = cli(bystander.home, "--json", "grants", "verify", str(grant_file))
        return (
            result.returncode == 1 and json.loads(result.stdout)["error"]["code"] == "grant_revoked"
        )

    eventually("the revocation at a bystander", refused)


def test_operator_approves_and_denies(net: tuple[Path, list[DevnetNode]]) -> None:
    base, nodes = net
    owner, requester = nodes[3], nodes[5]
    policy = AccessPolicy(mode="request", purposes=("research-and-development",))
    dataset = publish(base, owner, "e2e/asked", policy)
    held_by(requester, dataset)

    first = cli_json(requester.home, "request", dataset, "--purpose", "scientific-research", code=9)
    second = cli_json(requester.home, "request", dataset, "--purpose", "academic-research", code=9)
    pending = cli_json(owner.home, "requests", "--state", "pending", "--dataset", dataset)
    ids = {r["request_id"] for r in pending}
    assert {first["request"]["request_id"], second["request"]["request_id"]} <= ids

    approved = cli_json(
        owner.home, "requests", "approve", first["request"]["request_id"], "--days", "3"
    )
    assert approved["state"] == "granted"
    denied = cli_json(
        owner.home, "requests", "deny", second["request"]["request_id"], "--reason", "no capacity"
    )
    assert denied["denial"]["reason"] == "denied_by_operator"

    one = cli_json(requester.home, "requests", "show", first["request"]["request_id"], "--sent")
    assert one["state"] == "granted"
    two = cli_json(requester.home, "requests", "show", second["request"]["request_id"], "--sent")
    assert (two["state"], two["reason"], two["message"]) == (
        "denied",
        "denied_by_operator",
        "no capacity",
    )
    received = cli_json(requester.home, "grants", "--received", "--dataset", dataset)
    assert [g["grant_id"] for g in received] == [one["grant_id"]]
    # a decided request cannot be decided again
    twice = cli(owner.home, "requests", "deny", first["request"]["request_id"], "--reason", "x")
    assert twice.returncode == 3
    assert "already granted" in twice.stderr


def test_policy_denial_and_bad_input(net: tuple[Path, list[DevnetNode]]) -> None:
    base, nodes = net
    owner, requester = nodes[3], nodes[5]
    policy = AccessPolicy(mode="open", purposes=("academic-research",), max_validity_days=7)
    dataset = publish(base, owner, "e2e/narrow", policy)
    held_by(requester, dataset)
    denied = cli_json(requester.home, "request", dataset, "--purpose", "marketing", code=8)
    assert denied["denial"]["reason"] == "purpose_not_allowed"
    too_long = cli_json(
        requester.home, "request", dataset, "--purpose", "academic-research", "--days", "30", code=8
    )
    assert too_long["denial"]["reason"] == "validity_too_long"
    unknown = cli(requester.home, "request", dataset, "--purpose", "acadmic-research")
    assert unknown.returncode == 3
    assert "academic-research" in unknown.stderr  # a suggestion
    assert (
        cli(requester.home, "request", dataset, "--purpose", "marketing", "--days", "0").returncode
        == 2
    )
    not_grant = base / "not.grant"
    not_grant.write_bytes(b"\x00" * 100)
    assert cli(requester.home, "grants", "verify", str(not_grant)).returncode == 1
    # nothing of these refusals reached the owner's inbox as pending
    assert cli_json(owner.home, "requests", "--state", "pending", "--dataset", dataset) == []
