"""CLI: request, requests, grants, purposes against a real daemon process (in-memory node).

The daemon is ``datanet.testing.memory_daemon``: the real daemon and HTTP API over
:class:`~datanet.testing.memory_daemon.AccessMemoryNode`, which is both the requester
and the owner of the datasets published here. Commands run in-process with
CliRunner; exit codes: 0 granted, 8 denied, 9 pending (cli/access_cmds.py).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli.access_cmds import EXIT_DENIED, EXIT_PENDING
from cli.app import EXIT_INVALID, EXIT_NOT_FOUND
from cli.main import datanet
from datanet.client import Client
from datanet.node.paths import API_URL_FILE
from datanet.records.policy import AccessPolicy
from datanet.testing.memory_daemon import DENIAL_EXPLANATIONS, AccessMemoryNode

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "DATANET_API_URL": "", "DATANET_API_TOKEN": ""}


def _daemon(data_dir: Path, **env: str) -> Iterator[Path]:
    (data_dir / "config.toml").write_text('[api]\naddress = "127.0.0.1:0"\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "datanet.testing.memory_daemon", str(data_dir)],
        cwd=ROOT,
        env={**ENV, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 15
        while not (data_dir / API_URL_FILE).exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        node = AccessMemoryNode()  # the daemon's node has the same fixed keys
        with Client(data_dir) as dn:
            for name, policy in (
                ("w/open", AccessPolicy(mode="open")),
                ("w/ask", AccessPolicy(mode="request")),
                ("w/closed", AccessPolicy(mode="closed")),
            ):
                dn.publish(node.make_descriptor(name, access_policy=policy))
        yield data_dir
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Path]:
    yield from _daemon(tmp_path)


def did(name: str) -> str:
    return f"dn://{AccessMemoryNode().org}/{name}"


def run(data_dir: Path, *args: str) -> Result:
    env = {"DATANET_API_URL": "", "DATANET_API_TOKEN": ""}
    return CliRunner().invoke(datanet, ["--data-dir", str(data_dir), *args], env=env)


def run_json(data_dir: Path, *args: str, code: int = 0) -> Any:
    result = run(data_dir, "--json", *args)
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def test_purposes_lists_the_vocabulary(running: Path) -> None:
    table = run(running, "purposes")
    assert table.exit_code == 0, table.output
    assert "academic-research" in table.output
    assert "research-and-development" in table.output
    items = run_json(running, "purposes")
    assert {p["id"]: p["parent"] for p in items}["academic-research"] == "research-and-development"


def test_granted_request_writes_a_grant_that_verifies_until_revoked(
    running: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    out = tmp_path_factory.mktemp("grants") / "weather.grant"
    granted = run(
        running, "request", did("w/open"), "--purpose", "academic-research", "--days", "7",
        "--out", str(out),
    )  # fmt: skip
    assert granted.exit_code == 0, granted.output
    assert granted.output.startswith(f"granted: {did('w/open')} for academic-research")
    assert "(7 days)" in granted.output
    assert " -> " in granted.output  # the route as a chain
    assert "endpoint  https://data.example/" in granted.output  # the access details
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    again = run(
        running, "request", did("w/open"), "--purpose", "academic-research", "--out", str(out)
    )
    assert again.exit_code == EXIT_INVALID  # never replaces a file without --force
    assert "exists" in again.output

    valid = run(running, "grants", "verify", str(out))
    assert valid.exit_code == 0, valid.output
    assert valid.output.startswith(f"valid: {out}")

    listed = run_json(running, "grants")
    grant_id = listed[0]["grant_id"]
    assert len(listed) == 2  # the second request was granted too (only --out was refused)
    table = run(running, "grants", "list")
    assert grant_id[:12] in table.output
    assert grant_id not in table.output  # abbreviated in tables
    shown = run(running, "grants", "show", grant_id[:8], "--details")
    assert shown.exit_code == 0, shown.output
    assert "token" in shown.output

    first = run_json(running, "grants", "verify", str(out))["grant"]["grant_id"]
    revoked = run(running, "grants", "revoke", first[:10], "--reason", "project over")
    assert revoked.exit_code == 0, revoked.output
    assert f"revoked grant {first[:12]}" in revoked.output
    deep = run(running, "grants", "verify", str(out), "--deep")
    assert deep.exit_code == 1
    assert "invalid" in deep.output
    assert "grant_revoked" in deep.output
    doc = run_json(running, "grants", "verify", str(out), "--deep", code=1)
    assert doc["valid"] is False
    assert doc["error"]["code"] == "grant_revoked"
    active = run_json(running, "grants", "--active")
    assert [g["grant_id"] for g in active] == [grant_id] != [first]


def test_garbage_is_an_invalid_grant(
    running: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    junk = tmp_path_factory.mktemp("junk") / "junk.grant"
    junk.write_bytes(b"not a grant")
    result = run(running, "grants", "verify", str(junk))
    assert result.exit_code == 1
    assert "decode_error" in result.output
    missing = run(running, "grants", "verify", str(junk.with_name("nope")))
    assert missing.exit_code == EXIT_NOT_FOUND


def test_pending_request_is_approved_by_the_operator(running: Path) -> None:
    pending = run(running, "request", did("w/ask"), "--purpose", "service-provision")
    assert pending.exit_code == EXIT_PENDING, pending.output
    assert "waiting for approval by did:key:" in pending.output
    assert "--sent` asks again" in pending.output

    inbox = run_json(running, "requests")
    rid = inbox[0]["request_id"]
    assert inbox[0]["state"] == "pending"
    table = run(running, "requests")
    assert rid[:12] in table.output
    assert "pending" in table.output
    assert run_json(running, "requests", "list", "--state", "granted") == []
    assert "no sent requests" not in run(running, "requests", "--sent").output

    shown = run(running, "requests", "show", rid[:8], "--sent")
    assert shown.exit_code == 0, shown.output
    assert "state     pending" in shown.output

    approved = run(running, "requests", "approve", rid, "--days", "5")
    assert approved.exit_code == 0, approved.output
    assert approved.output.startswith(f"approved {rid[:12]}: grant ")
    assert run_json(running, "requests", "show", rid, "--sent")["state"] == "granted"
    twice = run(running, "requests", "approve", rid)
    assert twice.exit_code == EXIT_INVALID
    assert "already granted" in twice.output


def test_denials_carry_reason_explanation_and_message(running: Path) -> None:
    closed = run(running, "request", did("w/closed"), "--purpose", "academic-research")
    assert closed.exit_code == EXIT_DENIED, closed.output
    assert "denied: " in closed.output
    assert "dataset_closed" in closed.output
    assert DENIAL_EXPLANATIONS["dataset_closed"] in closed.output

    doc = run_json(running, "request", did("w/ask"), "--purpose", "academic-research", code=9)
    rid = doc["request"]["request_id"]
    denied = run(running, "requests", "deny", rid, "--reason", "not for theses")
    assert denied.exit_code == 0, denied.output
    assert "not for theses" in denied.output
    seen = run_json(running, "requests", "show", rid, "--sent")
    assert seen["state"] == "denied"
    assert seen["reason"] == "denied_by_operator"
    assert seen["message"] == "not for theses"
    assert run(running, "requests", "deny", rid).exit_code == 2  # --reason is required


def test_wait_gives_up_after_the_timeout_as_pending(running: Path) -> None:
    started = time.monotonic()
    result = run(
        running, "request", did("w/ask"), "--purpose", "academic-research", "--wait",
        "--timeout", "1.5",
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.exit_code == EXIT_PENDING, result.output
    assert 1.4 < elapsed < 10


def test_wait_ends_with_the_operators_decision(running: Path) -> None:
    results: list[Result] = []
    waiter = threading.Thread(
        target=lambda: results.append(
            run(
                running,
                "request",
                did("w/ask"),
                "--purpose",
                "academic-research",
                "--wait",
                "--timeout",
                "60",
            )
        )
    )
    started = time.monotonic()
    waiter.start()
    with Client(running) as dn:
        while not (inbox := dn.access_requests(state="pending")):
            assert time.monotonic() - started < 20
            time.sleep(0.05)
        dn.approve_request(inbox[0].request_id)
    waiter.join(timeout=30)
    assert results, "the waiting command did not finish"
    assert results[0].exit_code == 0, results[0].output
    assert results[0].output.startswith("granted: ")
    assert time.monotonic() - started < 20


def test_bad_input_and_unknown_ids(running: Path) -> None:
    bad = run(running, "request", did("w/open"), "--purpose", "world-domination")
    assert bad.exit_code == EXIT_INVALID
    assert "purpose" in bad.output
    assert run(running, "request", did("w/open"), "--purpose", "x", "--days", "0").exit_code == 2
    assert run(running, "request", did("w/open")).exit_code == 2  # --purpose is required
    missing = run(running, "request", did("w/none"), "--purpose", "academic-research")
    assert missing.exit_code == EXIT_NOT_FOUND
    unknown = run(running, "requests", "show", "0123456789ab")
    assert unknown.exit_code == EXIT_NOT_FOUND
    err = run(running, "--json", "grants", "show", "0123456789ab")
    assert json.loads(err.stderr)["error"]["code"] == "not_found"


def test_help_documents_the_exit_codes() -> None:
    text = CliRunner().invoke(datanet, ["request", "--help"]).output
    assert "0 granted, 8 denied, 9 still pending" in text
    assert "1 invalid" in CliRunner().invoke(datanet, ["grants", "verify", "--help"]).output


@pytest.fixture
def gateway_down(tmp_path: Path) -> Iterator[Path]:
    yield from _daemon(tmp_path, APINODE_GATEWAY_DOWN="1")


def test_an_unreachable_gateway_names_the_hop(gateway_down: Path) -> None:
    result = run(gateway_down, "request", did("w/open"), "--purpose", "academic-research")
    assert result.exit_code == 7, result.output  # a network failure
    assert "hop 1 (gateway 12D3KooW" in result.output
    err = run(gateway_down, "--json", "request", did("w/open"), "--purpose", "academic-research")
    assert json.loads(err.stderr)["error"]["code"] == "gateway_unreachable"
