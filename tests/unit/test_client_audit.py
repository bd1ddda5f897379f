"""datanet.client: the audit methods as typed results, the export iterator, check_receipt.

AsyncClient talks to the real ASGI app over the in-memory node (a real AuditLog);
the sync client is checked against httpx.MockTransport for malformed answers and an
export that fails midway; ``check_receipt`` runs with no daemon at all.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from datanet.api.app import create_app
from datanet.api.routes import ApiContext
from datanet.client import (
    AsyncClient,
    AuditEntryInfo,
    AuditHeadInfo,
    AuditProof,
    AuditVerifyReport,
    Client,
    check_receipt,
)
from datanet.errors import ApiError, InvalidInput, NotFound, StorageError
from datanet.node.config import Config, ConfigFile
from datanet.records.audit import decode_receipt, make_receipt
from datanet.records.policy import AccessPolicy
from datanet.testing.memory_daemon import AccessMemoryNode
from identity.certs import TrustStore

TOKEN = "client-audit-token-0123456789"


async def _setup(tmp: Path) -> tuple[AccessMemoryNode, AsyncClient]:
    node = AccessMemoryNode(audit_path=tmp / "audit.sqlite")
    await node.publish(node.make_descriptor("w/open", access_policy=AccessPolicy(mode="open")))
    ctx = ApiContext(node, ConfigFile(tmp / "config.toml"), Config.defaults(), lambda: None, TOKEN)
    client = AsyncClient(
        base_url="http://127.0.0.1:5080",
        token=TOKEN,
        transport=httpx.ASGITransport(app=create_app(ctx)),
    )
    return node, client


async def test_audit_calls_round_trip_as_typed_results(tmp_path: Path) -> None:
    node, client = await _setup(tmp_path)
    async with client as dn:
        out = await dn.request_access(f"dn://{node.org}/w/open", "academic-research")
        assert out.receipt is None  # the in-memory owner sends none; the field parses
        entries = await dn.audit_entries()
        assert all(isinstance(e, AuditEntryInfo) for e in entries)
        assert [e.kind for e in entries] == ["publish", "request_received", "grant"]
        assert entries[0].record == node.audit.entry(0).entry.record
        grants = await dn.audit_entries(kind="grant")
        assert [e.index for e in grants] == [2]
        node.cosign_latest()
        head = await dn.audit_head()
        assert isinstance(head, AuditHeadInfo)
        assert (head.size, head.node) == (3, str(node.peer_id))
        assert [c.org for c in head.cosignatures] == [str(node.witness_org.org_id)]
        report = await dn.audit_verify()
        assert isinstance(report, AuditVerifyReport)
        assert report.ok
        proof = await dn.audit_prove(2)
        assert isinstance(proof, AuditProof)
        check = check_receipt(proof.receipt, node.trust, now=node.now)
        assert (check.valid, check.trusted, check.kind, check.index) == (True, True, "grant", 2)
        assert check.witness_orgs == (str(node.witness_org.org_id),)
        assert check.record_hash is not None
        with pytest.raises(NotFound):
            await dn.audit_prove(3)
        with pytest.raises(InvalidInput):
            await dn.audit_entries(kind="nonsense")
        exported = [e async for e in dn.audit_export(since=1)]
        assert [e.index for e in exported] == [1, 2]
        assert await dn.audit_alarms() == []
        assert await dn.audit_witnessed() == []
    node.close()


def test_check_receipt_without_a_trust_store_checks_signatures_only(tmp_path: Path) -> None:
    node = AccessMemoryNode(audit_path=tmp_path / "audit.sqlite")
    node.record("approval", None, {"request": "ab" * 16})
    raw = base64.b64decode(node.audit_prove(0)["receipt"])
    check = check_receipt(raw, now=node.now)
    assert (check.valid, check.trusted) == (True, False)
    assert check.log_org == str(node.org)
    assert check.details == {"request": "ab" * 16}
    # an org outside the trust store is refused when there is one
    refused = check_receipt(raw, TrustStore(), now=node.now)
    assert not refused.valid
    assert refused.error_code
    # the entry swapped for another: the proof no longer leads to the head's root
    r = decode_receipt(raw)
    other = node.audit.entry(0).raw.replace(b"ab", b"cd", 1)
    forged = make_receipt(r.head, r.index, r.proof, other, r.cosignatures)
    bad = check_receipt(forged, now=node.now)
    assert (bad.valid, bad.error_code) == (False, "verification_failed")
    assert check_receipt(b"junk", now=node.now).valid is False
    assert check_receipt("text", now=node.now).error_code == "invalid_input"  # type: ignore[arg-type]
    node.close()


def _mock(handler: Any) -> Client:
    return Client(base_url="http://x", token="t" * 20, transport=httpx.MockTransport(handler))


def test_export_raises_the_error_line_after_yielding_what_came_before() -> None:
    entry = {
        "index": 0,
        "kind": "publish",
        "timestamp": 1,
        "details": {},
        "record": None,
        "record_hash": None,
        "leaf_hash": "00" * 32,
    }
    body = (
        json.dumps(entry)
        + "\n"
        + json.dumps({"error": {"code": "storage_error", "message": "entry 1 is damaged"}})
        + "\n"
    )

    def handler(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content) == {"since": 0}
        return httpx.Response(200, content=body.encode())

    with _mock(handler) as dn:
        entries = dn.audit_export()
        assert next(entries).index == 0
        with pytest.raises(StorageError, match="entry 1 is damaged"):
            next(entries)


@pytest.mark.parametrize(
    "doc",
    [
        {
            "ok": True,
            "size": 1,
            "root": "zz",
            "entries_checked": 1,
            "heads_checked": 0,
            "first_bad_index": None,
            "reason": None,
        },
        {
            "ok": True,
            "size": 1,
            "root": "00",
            "entries_checked": 1,
            "heads_checked": 0,
            "first_bad_index": 0,
            "reason": "x",
        },
        {
            "ok": False,
            "size": 1,
            "root": "00",
            "entries_checked": 1,
            "heads_checked": 0,
            "first_bad_index": None,
            "reason": None,
        },
        {"ok": "yes"},
    ],
)
def test_malformed_verify_answers_are_refused(doc: dict[str, Any]) -> None:
    with _mock(lambda r: httpx.Response(200, json=doc)) as dn, pytest.raises(ApiError):
        dn.audit_verify()


def test_a_malformed_export_line_is_refused() -> None:
    with _mock(lambda r: httpx.Response(200, content=b"[1]\n")) as dn, pytest.raises(ApiError):
        list(dn.audit_export())
