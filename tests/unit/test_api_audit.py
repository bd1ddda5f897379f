"""The audit log over the control API's HTTP layer, in-process, over the in-memory node.

Every ``/api/v0/audit/…`` route is called; every answer is checked against the
response schema the OpenAPI document publishes, every input bound is refused with a
4xx naming the field, and ``audit/export`` streams JSON Lines page by page.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from datanet.api.app import create_app
from datanet.api.openapi import openapi_document
from datanet.api.routes import API_PREFIX, EXPORT_PAGE, OPERATIONS, ApiContext
from datanet.node.config import Config, ConfigFile
from datanet.records.audit import verify_receipt
from datanet.records.policy import AccessPolicy
from datanet.store.audit import AuditLog
from datanet.testing.memory_daemon import AccessMemoryNode
from identity.keys import KeyPair

TOKEN = "test-token-0123456789abcdef"
AUDIT_PATHS = {
    "/api/v0/audit/entries",
    "/api/v0/audit/head",
    "/api/v0/audit/verify",
    "/api/v0/audit/prove",
    "/api/v0/audit/export",
    "/api/v0/audit/alarms",
    "/api/v0/audit/witnessed",
}
SCHEMAS = {op.path: op.response for op in OPERATIONS}


class Api:
    def __init__(self, tmp: Path) -> None:
        self.node = AccessMemoryNode(audit_path=tmp / "audit.sqlite")
        ctx = ApiContext(
            self.node, ConfigFile(tmp / "config.toml"), Config.defaults(), lambda: None, TOKEN
        )
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(ctx)),
            base_url="http://127.0.0.1:5080",
            headers={"authorization": f"Bearer {TOKEN}"},
        )

    async def call(self, path: str, body: Any = None, status: int = 200) -> Any:
        r = await self.http.post(f"{API_PREFIX}{path}", json={} if body is None else body)
        assert r.status_code == status, r.text
        doc = r.json()
        if status == 200:
            jsonschema.validate(doc, SCHEMAS[path])
        else:
            assert set(doc) == {"error"}
        return doc

    async def export(self, body: Any = None) -> httpx.Response:
        return await self.http.post(f"{API_PREFIX}/audit/export", json=body or {})


@pytest.fixture
async def api(tmp_path: Path) -> Any:
    a = Api(tmp_path)
    for name, mode in (("w/open", "open"), ("w/ask", "request")):
        policy = AccessPolicy(mode=mode)  # type: ignore[arg-type]
        await a.node.publish(a.node.make_descriptor(name, access_policy=policy))
    async with a.http:
        yield a
    a.node.close()


def test_the_openapi_document_lists_every_audit_route_with_bounds() -> None:
    doc = openapi_document()
    assert {p for p in doc["paths"] if "/audit/" in p} == AUDIT_PATHS
    body = doc["paths"][f"{API_PREFIX}/audit/entries"]["post"]["requestBody"]
    props = body["content"]["application/json"]["schema"]["properties"]
    assert (props["limit"]["minimum"], props["limit"]["maximum"]) == (1, 1000)
    assert props["since"]["minimum"] == 0
    assert props["kind"]["maxLength"] == 20
    export = doc["paths"][f"{API_PREFIX}/audit/export"]["post"]["responses"]["200"]
    assert set(export["content"]) == {"application/x-ndjson"}
    prove = doc["paths"][f"{API_PREFIX}/audit/prove"]["post"]["requestBody"]
    assert prove["content"]["application/json"]["schema"]["required"] == ["index"]
    outcome = doc["paths"][f"{API_PREFIX}/access/request"]["post"]["responses"]["200"]
    schema = outcome["content"]["application/json"]["schema"]
    assert "receipt" in schema["properties"]
    assert "receipt" not in schema["required"]  # older owners send none


async def test_entries_list_what_the_node_did_oldest_first(api: Api) -> None:
    doc = await api.call("/audit/entries")
    kinds = [e["kind"] for e in doc["entries"]]
    assert kinds == ["publish", "publish"]
    assert [e["index"] for e in doc["entries"]] == [0, 1]
    assert doc["next"] is None
    first = doc["entries"][0]
    assert base64.b64decode(first["record"]) == api.node.audit.entry(0).entry.record
    assert first["leaf_hash"] == api.node.audit.entry(0).leaf_hash.hex()
    await api.call(
        "/access/request", {"id": f"dn://{api.node.org}/w/open", "purpose": "academic-research"}
    )
    grants = await api.call("/audit/entries", {"kind": "grant"})
    assert [e["kind"] for e in grants["entries"]] == ["grant"]
    page = await api.call("/audit/entries", {"since": 1, "limit": 2})
    assert [e["index"] for e in page["entries"]] == [1, 2]
    assert page["next"] == 3


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"since": -1}, "since"),
        ({"since": 2**63}, "since"),
        ({"kind": "nonsense"}, "kind"),
        ({"kind": "x" * 21}, "kind"),
        ({"since": "0"}, "since"),
        ({"other": 1}, "other"),
    ],
)
async def test_entries_refuse_out_of_bound_inputs_naming_the_field(
    api: Api, body: dict[str, Any], field: str
) -> None:
    doc = await api.call("/audit/entries", body, status=400)
    assert field in doc["error"]["message"]


async def test_head_is_signed_by_the_node_and_carries_cosignatures(api: Api) -> None:
    head = await api.call("/audit/head")
    assert head["size"] == 2
    assert head["node"] == str(api.node.peer_id)
    assert head["cosignatures"] == []
    assert head["root"] == api.node.audit.root().hex()
    again = await api.call("/audit/head")
    assert again["head"] == head["head"]  # nothing new: the same head
    fresh = await api.call("/audit/head", {"fresh": True})
    assert len(api.node.audit.heads()) == 2
    assert fresh["size"] == 2
    api.node.cosign_latest()
    cosigned = await api.call("/audit/head")
    assert [c["org"] for c in cosigned["cosignatures"]] == [str(api.node.witness_org.org_id)]
    await api.call("/audit/head", {"fresh": "yes"}, status=400)


async def test_verify_reports_ok_then_names_an_edited_entry(api: Api, tmp_path: Path) -> None:
    await api.call("/audit/head")
    doc = await api.call("/audit/verify")
    assert doc["ok"] is True
    assert doc["first_bad_index"] is None
    assert (doc["size"], doc["heads_checked"]) == (2, 1)
    with sqlite3.connect(tmp_path / "audit.sqlite") as db:
        (raw,) = db.execute("SELECT entry FROM audit_entries WHERE idx = 1").fetchone()
        edited = bytes(raw).replace(b"w/ask", b"w/asc")
        assert edited != bytes(raw)
        db.execute("UPDATE audit_entries SET entry = ? WHERE idx = 1", (edited,))
    bad = await api.call("/audit/verify")
    assert bad["ok"] is False
    assert bad["first_bad_index"] == 1
    assert "entry 1" in bad["reason"]


async def test_prove_gives_a_receipt_that_verifies_offline(api: Api) -> None:
    api.node.cosign_latest()
    doc = await api.call("/audit/prove", {"index": 1})
    receipt = base64.b64decode(doc["receipt"])
    verified = verify_receipt(receipt, api.node.trust, api.node.now)
    assert verified.index == 1
    assert verified.entry.kind == "publish"
    assert verified.witness_orgs == {api.node.witness_org.org_id}
    assert doc["size"] == verified.head.head.size
    missing = await api.call("/audit/prove", {"index": 2}, status=404)
    assert missing["error"]["code"] == "not_found"
    await api.call("/audit/prove", {}, status=400)
    await api.call("/audit/prove", {"index": -1}, status=400)


async def test_export_streams_every_entry_as_json_lines_page_by_page(api: Api) -> None:
    for n in range(EXPORT_PAGE + 5):
        api.node.record("approval", None, {"n": n})
    total = api.node.audit.size
    calls: list[int] = []
    original = api.node.audit_entries

    def counting(**kw: Any) -> Any:
        calls.append(kw["limit"])
        return original(**kw)

    api.node.audit_entries = counting  # type: ignore[method-assign]
    r = await api.export()
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/x-ndjson")
    lines = r.text.splitlines()
    assert len(lines) == total
    entry_schema = SCHEMAS["/audit/export"]
    docs = [json.loads(line) for line in lines]
    for doc in docs[:3] + docs[-3:]:
        jsonschema.validate(doc, entry_schema)
    assert [d["index"] for d in docs] == list(range(total))
    assert calls == [EXPORT_PAGE, EXPORT_PAGE]  # bounded pages, never the whole log
    since = await api.export({"since": total - 1})
    assert [json.loads(x)["index"] for x in since.text.splitlines()] == [total - 1]
    kind = await api.export({"kind": "publish"})
    assert len(kind.text.splitlines()) == 2
    empty = await api.export({"since": total})
    assert (empty.status_code, empty.text) == (200, "")


async def test_export_refuses_bad_input_as_json_and_reports_a_late_failure_in_band(
    api: Api,
) -> None:
    r = await api.export({"kind": "nope"})
    assert r.status_code == 400
    assert "kind" in r.json()["error"]["message"]
    from datanet.errors import StorageError

    original = api.node.audit_entries
    for _ in range(EXPORT_PAGE):
        api.node.record("approval", None, {})

    def failing(**kw: Any) -> Any:
        if kw["since"] > 0:
            raise StorageError("audit entry 300 is damaged")
        return original(**kw)

    api.node.audit_entries = failing  # type: ignore[method-assign]
    r = await api.export()
    assert r.status_code == 200
    lines = [json.loads(x) for x in r.text.splitlines()]
    assert len(lines) == EXPORT_PAGE + 1
    assert lines[-1] == {
        "error": {"code": "storage_error", "message": "audit entry 300 is damaged"}
    }


async def test_alarms_and_witnessed_heads(api: Api, tmp_path: Path) -> None:
    assert (await api.call("/audit/alarms"))["alarms"] == []
    assert (await api.call("/audit/witnessed"))["witnessed"] == []
    other = AuditLog(tmp_path / "other.sqlite")
    try:
        wkey: KeyPair = api.node.witness_key
        from datanet.records.audit import AuditEntry

        other.append(AuditEntry.create("publish", api.node.now, b"x", {}))
        head1 = other.sign_head(wkey, api.node.witness_chain, api.node.now)
        api.node.observe(head1)
        seen = (await api.call("/audit/witnessed"))["witnessed"]
        assert [(w["log_node"], w["size"], w["cosigned"]) for w in seen] == [
            (str(wkey.peer_id), 1, True)
        ]
        forked = AuditLog(tmp_path / "forked.sqlite")
        forked.append(AuditEntry.create("publish", api.node.now, b"y", {}))
        head2 = forked.sign_head(wkey, api.node.witness_chain, api.node.now)
        forked.close()
        api.node.raise_alarm("fork", [head1, head2], "two roots for size 1")
        api.node.raise_alarm("shrink", [head1], "later")
    finally:
        other.close()
    alarms = (await api.call("/audit/alarms"))["alarms"]
    assert [a["kind"] for a in alarms] == ["shrink", "fork"]  # newest first
    assert alarms[1]["log_org"] == str(api.node.witness_org.org_id)
    assert [base64.b64decode(h) for h in alarms[1]["heads"]] == [head1, head2]
    assert len((await api.call("/audit/alarms", {"limit": 1}))["alarms"]) == 1
    await api.call("/audit/alarms", {"limit": 0}, status=400)
    await api.call("/audit/alarms", {"limit": 1001}, status=400)


async def test_every_audit_route_needs_the_token(api: Api) -> None:
    for path in sorted(AUDIT_PATHS):
        r = await api.http.post(path, json={}, headers={"authorization": "Bearer wrong"})
        assert r.status_code == 401, path
