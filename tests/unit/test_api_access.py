"""Access requests over the control API's HTTP layer, in-process, over the in-memory node.

Every ``/api/v0/access/…`` route is called here; every answer is checked against the
response schema the OpenAPI document publishes, and every input bound is refused
with a clear 4xx that names the field.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import jsonschema
import pytest

from datanet.api.app import create_app
from datanet.api.openapi import openapi_document
from datanet.api.routes import API_PREFIX, OPERATIONS, ApiContext
from datanet.node.config import Config, ConfigFile
from datanet.records.policy import AccessPolicy
from datanet.testing.clock import DAY
from datanet.testing.memory_daemon import DENIAL_EXPLANATIONS, AccessMemoryNode
from datanet.testing.records import key

TOKEN = "test-token-0123456789abcdef"
ACCESS_PATHS = {
    "/api/v0/access/request",
    "/api/v0/access/refresh",
    "/api/v0/access/requests",
    "/api/v0/access/requests/show",
    "/api/v0/access/approve",
    "/api/v0/access/deny",
    "/api/v0/access/grants",
    "/api/v0/access/grants/show",
    "/api/v0/access/grants/verify",
    "/api/v0/access/grants/revoke",
    "/api/v0/access/purposes",
}
SCHEMAS = {op.path: op.response for op in OPERATIONS}


class Api:
    def __init__(self, tmp: Path, **settings: Any) -> None:
        config = Config.defaults()
        for name, value in settings.items():
            config = config.with_value(name.replace("__", "."), value)
        self.node = AccessMemoryNode()
        self.policies: dict[str, AccessPolicy] = {}
        ctx = ApiContext(self.node, ConfigFile(tmp / "config.toml"), config, lambda: None, TOKEN)
        self.app = create_app(ctx)
        self.open = self.dataset("weather/open", AccessPolicy(mode="open"))
        self.ask = self.dataset("weather/ask", AccessPolicy(mode="request"))
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url="http://127.0.0.1:5080",
            headers={"authorization": f"Bearer {TOKEN}"},
        )

    def dataset(self, name: str, policy: AccessPolicy) -> str:
        """The id of ``name``; :meth:`publish_all` publishes it with ``policy``."""
        self.policies[name] = policy
        return f"dn://{self.node.org}/{name}"

    async def publish_all(self) -> None:
        for name, policy in self.policies.items():
            await self.node.publish(self.node.make_descriptor(name, access_policy=policy))

    async def call(self, path: str, body: Any = None, status: int = 200) -> Any:
        r = await self.http.post(f"{API_PREFIX}{path}", json={} if body is None else body)
        assert r.status_code == status, r.text
        doc = r.json()
        if status == 200:
            jsonschema.validate(doc, SCHEMAS[path])
        else:
            assert set(doc) == {"error"}
            assert doc["error"]["message"]
        return doc

    async def verify(self, raw: bytes | str, status: int = 200, **query: str) -> Any:
        """``access/grants/verify``: the grant's bytes as the body, ``deep`` in the query."""
        data = base64.b64decode(raw) if isinstance(raw, str) else raw
        r = await self.http.post(
            f"{API_PREFIX}/access/grants/verify",
            content=data,
            params=query,
            headers={"content-type": "application/octet-stream"},
        )
        assert r.status_code == status, r.text
        if status == 200:
            jsonschema.validate(r.json(), SCHEMAS["/access/grants/verify"])
        return r.json()

    async def refused(self, path: str, body: Any, status: int = 400) -> tuple[str, str]:
        doc = await self.call(path, body, status)
        return doc["error"]["code"], doc["error"]["message"]


@pytest.fixture
async def api(tmp_path: Path) -> Any:
    a = Api(tmp_path)
    await a.publish_all()
    async with a.http:
        yield a


def test_the_openapi_document_lists_every_access_route_with_its_fields() -> None:
    doc = openapi_document()
    paths = {p for p in doc["paths"] if "/access/" in p}
    assert paths == ACCESS_PATHS
    body = doc["paths"][f"{API_PREFIX}/access/request"]["post"]["requestBody"]
    props = body["content"]["application/json"]["schema"]["properties"]
    assert props["purpose"]["maxLength"] == 64
    assert props["note"]["maxLength"] == 512
    assert (props["days"]["minimum"], props["days"]["maximum"]) == (1, 3650)
    assert (props["wait"]["minimum"], props["wait"]["maximum"]) == (0, 300)
    assert body["content"]["application/json"]["schema"]["required"] == ["id", "purpose"]
    ok = doc["paths"][f"{API_PREFIX}/access/request"]["post"]["responses"]["200"]
    outcome = ok["content"]["application/json"]["schema"]
    assert set(outcome["required"]) == {"state", "request", "grant", "denial"}
    for path in ACCESS_PATHS:
        assert doc["paths"][path]["post"]["tags"] == ["access"]
    verify = doc["paths"][f"{API_PREFIX}/access/grants/verify"]["post"]
    assert "application/octet-stream" in verify["requestBody"]["content"]
    assert [(p["name"], p["in"]) for p in verify["parameters"]] == [("deep", "query")]


async def test_an_open_dataset_is_granted_and_its_grant_verifies_until_revoked(api: Api) -> None:
    out = await api.call(
        "/access/request", {"id": api.open, "purpose": "academic-research", "days": 7}
    )
    assert out["state"] == "granted"
    assert out["denial"] is None
    grant, req = out["grant"], out["request"]
    assert req["decided_by"] == "policy"
    assert req["grant_id"] == grant["grant_id"]
    assert grant["not_after"] - grant["not_before"] == 7 * DAY
    assert [h["action"] for h in grant["route"]] == ["forward", "forward", "decide"]
    assert grant["details"]["endpoint"].startswith("https://")  # the requester's copy

    check = await api.verify(grant["envelope"])
    assert check["valid"] is True
    assert check["grant"]["grant_id"] == grant["grant_id"]

    listed = await api.call("/access/grants", {"role": "issued"})
    assert [g["grant_id"] for g in listed["grants"]] == [grant["grant_id"]]
    assert listed["grants"][0]["details"] is None
    shown = await api.call("/access/grants/show", {"id": grant["grant_id"][:8], "details": True})
    assert shown["details"] == grant["details"]

    revoked = await api.call(
        "/access/grants/revoke", {"id": grant["grant_id"], "reason": "project over"}
    )
    assert revoked["revoked_at"] is not None
    assert revoked["revocation_reason"] == "project over"
    assert (await api.verify(grant["envelope"]))["valid"] is True  # not deep: signature, dates
    deep = await api.verify(grant["envelope"], deep="true")
    assert deep["valid"] is False
    assert deep["error"]["code"] == "grant_revoked"
    assert (await api.call("/access/grants", {"active": True}))["grants"] == []


async def test_a_forged_or_garbled_grant_is_invalid_not_an_error(api: Api) -> None:
    out = await api.call("/access/request", {"id": api.open, "purpose": "academic-research"})
    raw = base64.b64decode(out["grant"]["envelope"])
    forged = raw.replace(b'"days"', b'"days"').replace(b"academic", b"commercial")
    for bad, code in ((forged, "bad_signature"), (b"hello", "decode_error")):
        check = await api.verify(bad)
        assert check == {
            "valid": False,
            "deep": False,
            "error": {"code": code, "message": check["error"]["message"]},
            "grant": None,
        }
    api.node.now += 31 * DAY
    expired = await api.verify(out["grant"]["envelope"])
    assert expired["error"]["code"] == "record_expired"


async def test_a_request_policy_waits_for_the_operator_who_approves(api: Api) -> None:
    out = await api.call("/access/request", {"id": api.ask, "purpose": "academic-research"})
    assert out["state"] == "pending"
    assert out["grant"] is None
    assert out["denial"] is None
    rid = out["request"]["request_id"]
    inbox = await api.call("/access/requests", {})
    assert [r["request_id"] for r in inbox["requests"]] == [rid]
    assert inbox["requests"][0]["direction"] == "received"
    pending = await api.call("/access/requests", {"state": "pending", "dataset": api.ask})
    assert len(pending["requests"]) == 1
    assert (await api.call("/access/requests", {"state": "granted"}))["requests"] == []
    shown = await api.call("/access/requests/show", {"id": rid[:8].upper(), "direction": "sent"})
    assert shown["direction"] == "sent"
    assert shown["state"] == "pending"

    approved = await api.call("/access/approve", {"id": rid, "days": 10})
    assert approved["state"] == "granted"
    assert approved["request"]["decided_by"] == "operator"
    g = approved["grant"]
    assert g["not_after"] - g["not_before"] == 10 * DAY
    assert g["role"] == "issued"
    assert (await api.call("/access/refresh", {"id": rid}))["state"] == "granted"

    code, message = await api.refused("/access/approve", {"id": rid})
    assert code == "invalid_input"
    assert "already granted" in message
    code, _ = await api.refused("/access/deny", {"id": rid, "reason": "too late"})
    assert code == "invalid_input"


async def test_the_operator_denies_with_a_reason_the_requester_sees(api: Api) -> None:
    out = await api.call("/access/request", {"id": api.ask, "purpose": "service-provision"})
    rid = out["request"]["request_id"]
    denied = await api.call("/access/deny", {"id": rid, "reason": "not for this purpose"})
    assert denied["state"] == "denied"
    assert denied["denial"]["reason"] == "denied_by_operator"
    assert denied["denial"]["message"] == "not for this purpose"
    seen = await api.call("/access/refresh", {"id": rid})
    assert seen["state"] == "denied"
    assert seen["request"]["reason"] == "denied_by_operator"
    assert seen["denial"]["explanation"] == DENIAL_EXPLANATIONS["denied_by_operator"]


@pytest.mark.parametrize(
    ("policy", "body", "reason"),
    [
        (AccessPolicy(mode="closed"), {}, "dataset_closed"),
        (AccessPolicy(mode="open", allowed_orgs=(key("\x09").org_id,)), {}, "org_not_allowed"),
        (AccessPolicy(mode="open", purposes=("service-provision",)), {}, "purpose_not_allowed"),
        (AccessPolicy(mode="open", max_validity_days=5), {"days": 6}, "validity_too_long"),
    ],
)
async def test_policy_denials_carry_their_reason(
    api: Api, policy: AccessPolicy, body: dict[str, Any], reason: str
) -> None:
    await api.node.publish(api.node.make_descriptor("x/policy", access_policy=policy))
    did = f"dn://{api.node.org}/x/policy"
    out = await api.call("/access/request", {"id": did, "purpose": "academic-research", **body})
    assert out["state"] == "denied"
    assert out["denial"]["reason"] == reason
    assert out["denial"]["explanation"] == DENIAL_EXPLANATIONS[reason]
    assert out["request"]["decided_by"] == "policy"


async def test_a_purpose_is_allowed_by_its_broader_term(api: Api) -> None:
    policy = AccessPolicy(mode="open", purposes=("research-and-development",))
    await api.node.publish(api.node.make_descriptor("x/rnd", access_policy=policy))
    out = await api.call(
        "/access/request", {"id": f"dn://{api.node.org}/x/rnd", "purpose": "academic-research"}
    )
    assert out["state"] == "granted"


async def test_an_undecided_request_expires_at_its_deadline(api: Api) -> None:
    out = await api.call("/access/request", {"id": api.ask, "purpose": "academic-research"})
    api.node.now = out["request"]["deadline"]
    seen = await api.call("/access/refresh", {"id": out["request"]["request_id"]})
    assert seen["state"] == "denied"
    assert seen["denial"]["reason"] == "expired"
    assert seen["request"]["decided_by"] == "deadline"


async def test_received_and_sent_are_separate_views(api: Api) -> None:
    from datanet.records.ids import DatasetId

    rid = api.node.receive_request(DatasetId.parse(api.ask), note="for a thesis")
    inbox = (await api.call("/access/requests", {"direction": "received"}))["requests"]
    assert [(r["request_id"], r["note"]) for r in inbox] == [(rid, "for a thesis")]
    assert inbox[0]["requester_org"] != str(api.node.org)
    assert (await api.call("/access/requests", {"direction": "sent"}))["requests"] == []
    code, _ = await api.refused("/access/refresh", {"id": rid}, 404)
    assert code == "not_found"
    code, _ = await api.refused("/access/requests/show", {"id": rid, "direction": "sent"}, 404)
    assert code == "not_found"
    assert (await api.call("/access/approve", {"id": rid}))["grant"]["role"] == "issued"
    received = await api.call("/access/grants", {"role": "received"})
    assert received["grants"] == []  # the grant went to the other organization


async def test_list_limit_and_newest_first(api: Api) -> None:
    ids = []
    for _ in range(3):
        out = await api.call("/access/request", {"id": api.ask, "purpose": "academic-research"})
        ids.append(out["request"]["request_id"])
    listed = await api.call("/access/requests", {"direction": "sent", "limit": 2})
    assert [r["request_id"] for r in listed["requests"]] == ids[::-1][:2]


async def test_purposes_list_the_vocabulary(api: Api) -> None:
    doc = await api.call("/access/purposes")
    by_id = {p["id"]: p for p in doc["purposes"]}
    assert by_id["academic-research"]["parent"] == "research-and-development"
    assert by_id["academic-research"]["iri"] == "https://w3id.org/dpv#AcademicResearch"
    code, message = await api.refused(
        "/access/request", {"id": api.open, "purpose": "world-domination"}
    )
    assert code == "invalid_input"
    assert "purpose" in message


async def test_a_long_wait_does_not_block_and_ends_with_the_decision(api: Api) -> None:
    results: dict[str, Any] = {}

    async def ask() -> None:
        results["out"] = await api.call(
            "/access/request", {"id": api.ask, "purpose": "academic-research", "wait": 20}
        )

    started = time.monotonic()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            inbox: list[Any] = []
            while not inbox:  # the waiting call is in; other calls are still served
                await anyio.sleep(0.01)
                inbox = (await api.call("/access/requests", {"state": "pending"}))["requests"]
            await api.call("/access/approve", {"id": inbox[0]["request_id"]})
    assert results["out"]["state"] == "granted"
    assert time.monotonic() - started < 5


async def test_wait_is_capped_below_the_request_timeout(tmp_path: Path) -> None:
    a = Api(tmp_path, api__request_timeout=5.5)
    await a.publish_all()
    async with a.http:
        started = time.monotonic()
        with anyio.fail_after(10):
            out = await a.call(
                "/access/request", {"id": a.ask, "purpose": "academic-research", "wait": 300}
            )
        assert out["state"] == "pending"  # answered (not a 504 timeout) once the cap ran out
        assert 0.4 < time.monotonic() - started < 5


async def test_an_unreachable_gateway_is_a_502_naming_the_hop(api: Api) -> None:
    api.node.gateway_down = True
    code, message = await api.refused(
        "/access/request", {"id": api.open, "purpose": "academic-research"}, 502
    )
    assert code == "gateway_unreachable"
    assert "hop 1" in message
    assert str(api.node.gateway_key.peer_id) in message
    assert (await api.call("/access/requests", {"direction": "sent"}))["requests"] == []
    api.node.gateway_down = False
    out = await api.call("/access/request", {"id": api.open, "purpose": "academic-research"})
    assert out["state"] == "granted"


async def test_unknown_ids_are_404(api: Api) -> None:
    for path, body in [
        ("/access/refresh", {"id": "ab" * 16}),
        ("/access/requests/show", {"id": "ab" * 16}),
        ("/access/approve", {"id": "ab" * 16}),
        ("/access/deny", {"id": "ab" * 16, "reason": "x"}),
        ("/access/grants/show", {"id": "ab" * 16}),
        ("/access/grants/revoke", {"id": "ab" * 16}),
        ("/access/request", {"id": f"dn://{api.node.org}/no/such", "purpose": "academic-research"}),
    ]:
        code, _ = await api.refused(path, body, 404)
        assert code == "not_found", path


BIG = "x" * 65


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/access/request", {"purpose": BIG}, "purpose"),
        ("/access/request", {"purpose": ""}, "purpose"),
        ("/access/request", {"purpose": "academic\x07research"}, "purpose"),
        ("/access/request", {"note": "n" * 513}, "note"),
        ("/access/request", {"note": "bell\x07"}, "note"),
        ("/access/request", {"days": 0}, "days"),
        ("/access/request", {"days": 3651}, "days"),
        ("/access/request", {"days": 1.5}, "days"),
        ("/access/request", {"wait": -1}, "wait"),
        ("/access/request", {"wait": 300.5}, "wait"),
        ("/access/request", {"wait": "soon"}, "wait"),
        ("/access/request", {"wait": True}, "wait"),
        ("/access/request", {"id": "dn://nope"}, "id"),
        ("/access/request", {"extra": 1}, "extra"),
        ("/access/refresh", {"id": "abc"}, "id"),
        ("/access/refresh", {"id": "z" * 16}, "id"),
        ("/access/refresh", {"id": "a" * 65}, "id"),
        ("/access/refresh", {"id": "ab" * 8, "wait": 301}, "wait"),
        ("/access/requests", {"limit": 0}, "limit"),
        ("/access/requests", {"limit": 1001}, "limit"),
        ("/access/requests", {"direction": "both"}, "direction"),
        ("/access/requests", {"state": "lost"}, "state"),
        ("/access/requests", {"dataset": "weather"}, "dataset"),
        ("/access/requests/show", {"id": "ab" * 8, "direction": "up"}, "direction"),
        ("/access/approve", {"id": "ab" * 8, "days": 0}, "days"),
        ("/access/approve", {"id": "ab" * 8, "days": 3651}, "days"),
        ("/access/deny", {"id": "ab" * 8, "reason": "r" * 257}, "reason"),
        ("/access/deny", {"id": "ab" * 8, "reason": ""}, "reason"),
        ("/access/deny", {"id": "ab" * 8}, "reason"),
        ("/access/grants", {"limit": 1001}, "limit"),
        ("/access/grants", {"role": "owner"}, "role"),
        ("/access/grants", {"active": "yes"}, "active"),
        ("/access/grants/show", {"id": "ab" * 8, "details": 1}, "details"),
        ("/access/grants/revoke", {"id": "ab" * 8, "reason": "r" * 257}, "reason"),
    ],
)
async def test_every_bound_is_refused_with_a_clear_400(
    api: Api, path: str, body: dict[str, Any], field: str
) -> None:
    base: dict[str, Any] = {}
    if path == "/access/request":
        base = {"id": api.open, "purpose": "academic-research"}
    code, message = await api.refused(path, {**base, **body})
    assert code == "invalid_request"
    assert repr(field) in message
    assert (await api.call("/access/requests", {"direction": "sent"}))["requests"] == []


async def test_a_grant_upload_is_bounded_and_checked(api: Api) -> None:
    big = await api.verify(b"\0" * (64 * 1024 + 1), 413)
    assert big["error"]["code"] == "body_too_large"
    assert (await api.verify(b"\0" * (64 * 1024)))["valid"] is False  # 64 KiB is taken
    for body, status, code in (
        (b"", 400, "invalid_request"),
        (b"abc", 400, "invalid_request"),  # deep=maybe
    ):
        query = {"deep": "maybe"} if body else {}
        doc = await api.verify(body, status, **query)
        assert doc["error"]["code"] == code
    unknown = await api.verify(b"abc", 400, strict="true")
    assert "'strict'" in unknown["error"]["message"]
    r = await api.http.post(f"{API_PREFIX}/access/grants/verify", json={"grant": "QUJD"})
    assert r.status_code == 415


async def test_a_grant_over_64_kib_is_413_even_with_a_larger_body_limit(tmp_path: Path) -> None:
    a = Api(tmp_path, api__max_body_bytes=200_000)
    async with a.http:
        doc = await a.verify(b"\0" * (64 * 1024 + 1), 413)
        assert doc["error"]["code"] == "record_too_large"
        assert "65536" in doc["error"]["message"]
