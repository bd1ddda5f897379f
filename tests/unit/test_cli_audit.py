"""CLI: ``datanet audit …`` against a real daemon process over the in-memory node.

The daemon is ``datanet.testing.memory_daemon``: the real daemon and HTTP API over
:class:`~datanet.testing.memory_daemon.AccessMemoryNode`, whose audit log is a real
``AuditLog`` at ``audit.sqlite`` in the data directory (so tampering with it is
tampering with the daemon's log). ``check-proof`` runs with no daemon at all.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from click.testing import CliRunner, Result

from cli.app import EXIT_NOT_FOUND, EXIT_VERIFY
from cli.audit_cmds import EXIT_ALARM, EXIT_INVALID_RECEIPT, summary
from cli.main import datanet
from datanet.client import Client
from datanet.node.paths import API_URL_FILE
from datanet.records.policy import AccessPolicy
from datanet.store.audit import AuditLog
from datanet.testing.memory_daemon import AccessMemoryNode
from identity.keys import KeyPair

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "DATANET_API_URL": "", "DATANET_API_TOKEN": ""}


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Path]:
    data_dir = tmp_path / "node"
    data_dir.mkdir()
    (data_dir / "config.toml").write_text('[api]\naddress = "127.0.0.1:0"\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "datanet.testing.memory_daemon", str(data_dir)],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 15
        while not (data_dir / API_URL_FILE).exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        node = AccessMemoryNode(audit_path=tmp_path / "unused.sqlite")  # same fixed keys
        with Client(data_dir) as dn:
            for name, mode in (("w/open", "open"), ("w/ask", "request")):
                policy = AccessPolicy(mode=mode)  # type: ignore[arg-type]
                dn.publish(node.make_descriptor(name, access_policy=policy))
            dn.request_access(f"dn://{node.org}/w/open", "academic-research")
        node.close()
        yield data_dir
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def run(data_dir: Path, *args: str) -> Result:
    env = {"DATANET_API_URL": "", "DATANET_API_TOKEN": "", "DATANET_HOME": ""}
    return CliRunner().invoke(datanet, ["--data-dir", str(data_dir), *args], env=env)


def test_show_lists_entries_with_a_summary_and_filters(running: Path) -> None:
    r = run(running, "audit", "show")
    assert r.exit_code == 0, r.output
    for kind in ("publish", "request_received", "grant"):
        assert kind in r.output
    assert "dataset=dn://" in r.output
    r = run(running, "--json", "audit", "show", "--kind", "grant")
    docs = json.loads(r.output)
    assert [d["kind"] for d in docs] == ["grant"]
    assert set(docs[0]) == {
        "index",
        "kind",
        "timestamp",
        "details",
        "record",
        "record_hash",
        "leaf_hash",
    }
    r = run(running, "--json", "audit", "show", "--since", "1", "--limit", "1")
    assert [d["index"] for d in json.loads(r.output)] == [1]
    assert run(running, "audit", "show", "--kind", "bogus").exit_code == 2
    assert run(running, "audit", "show", "--limit", "0").exit_code == 2


def test_summary_is_one_clean_bounded_line() -> None:
    line = summary({"reason": "a\nb\x1b[31m", "dataset": "dn://x/" + "y" * 200})
    assert "\n" not in line
    assert "\x1b" not in line
    assert len(line) <= 72
    assert summary({}) == "-"


def test_verify_exits_0_then_4_naming_the_edited_entry(running: Path) -> None:
    r = run(running, "audit", "head")  # sign a head so the rewrite below is caught
    assert r.exit_code == 0, r.output
    r = run(running, "audit", "verify")
    assert r.exit_code == 0, r.output
    assert r.output.startswith("ok:")
    with sqlite3.connect(running / "audit.sqlite") as db:
        (raw,) = db.execute("SELECT entry FROM audit_entries WHERE idx = 1").fetchone()
        db.execute(
            "UPDATE audit_entries SET entry = ? WHERE idx = 1",
            (bytes(raw).replace(b"w/ask", b"w/xyz"),),
        )
    r = run(running, "audit", "verify")
    assert r.exit_code == EXIT_VERIFY, r.output
    assert "first bad entry 1" in r.output
    r = run(running, "--json", "audit", "verify")
    assert r.exit_code == EXIT_VERIFY
    assert json.loads(r.output)["first_bad_index"] == 1


def test_prove_writes_a_receipt_that_check_proof_verifies_offline(
    running: Path, tmp_path: Path
) -> None:
    receipt = tmp_path / "r.bin"
    r = run(running, "audit", "prove", "0", "--out", str(receipt))
    assert r.exit_code == 0, r.output
    assert receipt.stat().st_size > 100
    assert run(running, "audit", "prove", "0", "--out", str(receipt)).exit_code == 3
    r = run(running, "--json", "audit", "prove", "0")
    assert base64.b64decode(json.loads(r.output)["receipt"])[:1]
    assert run(running, "audit", "prove", "999").exit_code == EXIT_NOT_FOUND
    # offline, on "another machine": an empty data dir, no daemon, no trust store
    elsewhere = tmp_path / "elsewhere"
    r = run(elsewhere, "audit", "check-proof", str(receipt))
    assert r.exit_code == 0, r.output
    assert "valid:" in r.output
    assert "publish" in r.output
    assert "NOT checked against a trust store" in r.output
    doc = json.loads(run(elsewhere, "--json", "audit", "check-proof", str(receipt)).output)
    assert (doc["valid"], doc["trusted"], doc["index"], doc["kind"]) == (True, False, 0, "publish")
    assert doc["log_org"] == str(AccessMemoryNode(audit_path=tmp_path / "x.sqlite").org)
    # a byte flipped inside the entry: the inclusion proof no longer holds
    data = bytearray(receipt.read_bytes())
    data[-40] ^= 0x01
    bad = tmp_path / "bad.bin"
    bad.write_bytes(bytes(data))
    r = run(elsewhere, "audit", "check-proof", str(bad))
    assert r.exit_code == EXIT_INVALID_RECEIPT, r.output
    assert r.output.startswith("invalid:")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00" * 10)
    assert run(elsewhere, "audit", "check-proof", str(junk)).exit_code == EXIT_INVALID_RECEIPT


def test_check_proof_uses_the_trust_store_of_the_data_dir(running: Path, tmp_path: Path) -> None:
    receipt = tmp_path / "r.bin"
    assert run(running, "audit", "prove", "2", "--out", str(receipt)).exit_code == 0
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "trust.toml").write_text("accept_any = false\ntrusted = []\n")
    r = run(stranger, "audit", "check-proof", str(receipt))
    assert r.exit_code == EXIT_INVALID_RECEIPT, r.output
    friend = tmp_path / "friend"
    friend.mkdir()
    org = AccessMemoryNode(audit_path=tmp_path / "y.sqlite").org
    (friend / "trust.toml").write_text(f'accept_any = false\n[[trusted]]\nid = "{org}"\n')
    r = run(friend, "--json", "audit", "check-proof", str(receipt))
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["trusted"] is True
    assert doc["trust_store"].endswith("trust.toml")
    assert doc["kind"] == "request_received"


def test_export_writes_json_lines(running: Path, tmp_path: Path) -> None:
    r = run(running, "audit", "export")
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in r.output.splitlines()]
    assert [x["index"] for x in lines] == list(range(len(lines)))
    assert len(lines) >= 4
    out = tmp_path / "audit.jsonl"
    r = run(running, "audit", "export", "--since", "2", "--out", str(out))
    assert r.exit_code == 0, r.output
    assert [json.loads(x)["index"] for x in out.read_text().splitlines()] == list(
        range(2, len(lines))
    )
    assert run(running, "audit", "export", "--out", str(out)).exit_code == 3


def test_alarms_exit_0_but_show_them_and_10_on_request(running: Path, tmp_path: Path) -> None:
    r = run(running, "audit", "alarms")
    assert (r.exit_code, r.output.strip()) == (0, "no alarms")
    assert run(running, "audit", "alarms", "--fail-on-alarm").exit_code == 0
    assert json.loads(run(running, "--json", "audit", "witnessed").output) == []
    assert "no witnessed logs" in run(running, "audit", "witnessed").output


def test_alarms_and_witnessed_are_shown_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datanet.api.app import create_app
    from datanet.api.routes import ApiContext
    from datanet.node.config import Config, ConfigFile
    from datanet.records.audit import AuditEntry

    node = AccessMemoryNode(audit_path=tmp_path / "a.sqlite")
    other = AuditLog(tmp_path / "o.sqlite")
    other.append(AuditEntry.create("publish", node.now, b"x", {}))
    wkey: KeyPair = node.witness_key
    head = other.sign_head(wkey, node.witness_chain, node.now)
    other.close()
    node.observe(head, cosigned=False)
    node.raise_alarm("fork", [head, head], "two roots for size 1\x1b[2J")
    token = "cli-audit-token-0123456789"
    ctx = ApiContext(node, ConfigFile(tmp_path / "c.toml"), Config.defaults(), lambda: None, token)
    transport = httpx.ASGITransport(app=create_app(ctx))

    def client(_app: object) -> Client:
        return Client(base_url="http://t", token=token, transport=_SyncAsgi(transport))

    monkeypatch.setattr("cli.audit_cmds.client_for", client)
    try:
        r = run(tmp_path, "audit", "alarms")
        assert r.exit_code == 0, r.output
        assert "ALARM: 1 alarm" in r.output
        assert "FORK" in r.output
        assert "\x1b" not in r.output
        assert run(tmp_path, "audit", "alarms", "--fail-on-alarm").exit_code == EXIT_ALARM
        r = run(tmp_path, "--json", "audit", "witnessed")
        assert json.loads(r.output)[0]["cosigned"] is False
    finally:
        node.close()


class _SyncAsgi(httpx.BaseTransport):
    """A sync httpx transport over an ASGI app (runs each request on its own loop)."""

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self._transport = transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def go() -> httpx.Response:
            body = request.read()
            req = httpx.Request(request.method, request.url, headers=request.headers, content=body)
            response = await self._transport.handle_async_request(req)
            content = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=content)

        return anyio.run(go)


def test_check_proof_can_demand_witnesses_of_other_organizations(tmp_path: Path) -> None:
    """A requester may refuse a receipt whose head no other organization cosigned."""
    from datanet.records.audit import (
        AuditEntry,
        EntryKind,
        cosign_head,
        make_receipt,
        open_tree_head,
    )
    from datanet.store.audit import AuditLog
    from datanet.testing.clock import NOW
    from datanet.testing.records import NODE_A, NODE_B, ORG_A, ORG_B, certificate

    with AuditLog(tmp_path / "log.sqlite") as log:
        log.append(AuditEntry.create(EntryKind.DECISION, NOW, b"a decision", {"state": "granted"}))
        head = log.sign_head(NODE_A, [certificate(ORG_A, NODE_A, ())], NOW)
        proof = log.inclusion_proof(0)
        entry = log.entry(0).raw
    cosig = cosign_head(open_tree_head(head)[0], NODE_B, [certificate(ORG_B, NODE_B, ())], NOW + 5)
    bare, cosigned = tmp_path / "bare.bin", tmp_path / "cosigned.bin"
    bare.write_bytes(make_receipt(head, 0, proof, entry))
    cosigned.write_bytes(make_receipt(head, 0, proof, entry, [cosig]))
    elsewhere = tmp_path / "elsewhere"
    assert run(elsewhere, "audit", "check-proof", str(bare)).exit_code == 0
    r = run(elsewhere, "audit", "check-proof", str(bare), "--witnesses", "1")
    assert r.exit_code == EXIT_INVALID_RECEIPT, r.output
    assert "not_witnessed" in r.output
    assert run(elsewhere, "audit", "check-proof", str(cosigned), "--witnesses", "1").exit_code == 0
    org_b = str(ORG_B.org_id)
    ok = run(elsewhere, "audit", "check-proof", str(cosigned), "--witness-org", org_b)
    assert ok.exit_code == 0, ok.output
    org_a = str(ORG_A.org_id)  # the log's own org never counts as a witness
    r = run(elsewhere, "--json", "audit", "check-proof", str(cosigned), "--witness-org", org_a)
    assert r.exit_code == EXIT_INVALID_RECEIPT
    assert json.loads(r.output)["error_code"] == "not_witnessed"
