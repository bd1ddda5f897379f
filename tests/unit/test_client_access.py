"""datanet.client: access requests, approvals and grants as typed results, both clients.

AsyncClient talks to the real ASGI app over the in-memory node; the sync Client is
checked against httpx.MockTransport for what it sends (bodies, the grant as raw
bytes, the HTTP timeout of a waiting call) and for malformed answers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from datanet.api.app import create_app
from datanet.api.errors import ApiError
from datanet.api.routes import ApiContext
from datanet.client import (
    AccessOutcome,
    AccessRequestInfo,
    AsyncClient,
    Client,
    DenialInfo,
    GrantCheck,
    GrantInfo,
    PurposeInfo,
    RouteHop,
)
from datanet.errors import DatanetError, InvalidInput, NotFound
from datanet.node.config import Config, ConfigFile
from datanet.records.policy import AccessPolicy
from datanet.testing.clock import DAY
from datanet.testing.memory_daemon import AccessMemoryNode

TOKEN = "client-test-token-0123456789"


async def _setup(tmp: Path) -> tuple[AccessMemoryNode, AsyncClient, str, str]:
    node = AccessMemoryNode()
    for name, mode in (("w/open", "open"), ("w/ask", "request")):
        policy = AccessPolicy(mode=mode)  # type: ignore[arg-type]
        await node.publish(node.make_descriptor(name, access_policy=policy))
    ctx = ApiContext(node, ConfigFile(tmp / "config.toml"), Config.defaults(), lambda: None, TOKEN)
    client = AsyncClient(
        base_url="http://127.0.0.1:5080",
        token=TOKEN,
        transport=httpx.ASGITransport(app=create_app(ctx)),
    )
    return node, client, f"dn://{node.org}/w/open", f"dn://{node.org}/w/ask"


async def test_an_open_request_round_trips_as_typed_results(tmp_path: Path) -> None:
    node, client, open_id, _ = await _setup(tmp_path)
    async with client as dn:
        out = await dn.request_access(open_id, "academic-research", days=3, note="thesis")
        assert isinstance(out, AccessOutcome)
        assert out.state == "granted"
        assert out.denial is None
        assert isinstance(out.request, AccessRequestInfo)
        assert out.request.note == "thesis"
        assert out.request.direction == "sent"
        grant = out.grant
        assert isinstance(grant, GrantInfo)
        assert grant.not_after - grant.not_before == 3 * DAY
        assert all(isinstance(h, RouteHop) for h in grant.route)
        assert grant.route[-1].action == "decide"
        assert isinstance(grant.envelope, bytes)
        assert grant.details is not None

        check = await dn.verify_grant(grant.envelope)
        assert isinstance(check, GrantCheck)
        assert check.valid
        assert check.error_code is None
        assert check.grant is not None
        assert check.grant.grant_id == grant.grant_id

        listed = await dn.grants()
        assert [g.grant_id for g in listed] == [grant.grant_id]
        shown = await dn.grant(grant.grant_id[:10], details=True)
        assert shown.details == grant.details
        revoked = await dn.revoke_grant(grant.grant_id, "done")
        assert revoked.revoked_at == node.now
        assert revoked.revocation_reason == "done"
        deep = await dn.verify_grant(grant.envelope, deep=True)
        assert not deep.valid
        assert deep.error_code == "grant_revoked"
        assert (await dn.verify_grant(grant.envelope)).valid  # shallow: signature and dates
        assert await dn.grants(active=True) == []

        purposes = await dn.purposes()
        assert all(isinstance(p, PurposeInfo) for p in purposes)
        assert {p.id: p.parent for p in purposes}["academic-research"] == (
            "research-and-development"
        )


async def test_the_operator_round_trip(tmp_path: Path) -> None:
    _, client, _, ask_id = await _setup(tmp_path)
    async with client as dn:
        pending = await dn.request_access(ask_id, "service-provision", wait=0.2)
        assert pending.state == "pending"
        assert pending.grant is None
        rid = pending.request.request_id
        inbox = await dn.access_requests(state="pending", dataset=ask_id)
        assert [r.request_id for r in inbox] == [rid]
        assert await dn.access_requests(state="denied") == []
        assert (await dn.access_request(rid[:8], direction="sent")).state == "pending"
        approved = await dn.approve_request(rid, days=2)
        assert approved.grant is not None
        assert approved.grant.not_after - approved.grant.not_before == 2 * DAY
        assert (await dn.refresh_request(rid)).state == "granted"
        with pytest.raises(InvalidInput, match="already granted"):
            await dn.approve_request(rid)

        other = await dn.request_access(ask_id, "service-provision")
        denied = await dn.deny_request(other.request.request_id, "no")
        assert isinstance(denied.denial, DenialInfo)
        assert denied.denial.reason == "denied_by_operator"
        assert denied.denial.message == "no"
        assert denied.denial.explanation
        sent = await dn.access_requests("sent", limit=1)
        assert [r.request_id for r in sent] == [other.request.request_id]


async def test_errors_come_back_by_code(tmp_path: Path) -> None:
    node, client, open_id, _ = await _setup(tmp_path)
    async with client as dn:
        with pytest.raises(NotFound):
            await dn.refresh_request("ab" * 16)
        with pytest.raises(NotFound):
            await dn.grant("cd" * 16)
        with pytest.raises(InvalidInput, match="purpose"):
            await dn.request_access(open_id, "not-a-purpose")
        with pytest.raises(InvalidInput, match="'days'"):
            await dn.request_access(open_id, "academic-research", days=0)
        node.gateway_down = True
        with pytest.raises(DatanetError, match="hop 1") as failed:
            await dn.request_access(open_id, "academic-research")
        assert failed.value.code == "gateway_unreachable"


def _outcome(state: str = "pending", grant: Any = None, denial: Any = None) -> dict[str, Any]:
    request = {
        "request_id": "ab" * 16,
        "direction": "sent",
        "dataset_id": "dn://x/y",
        "sequence": 1,
        "purpose": "academic-research",
        "days": 30,
        "note": "",
        "requester_node": "12D3KooWx",
        "requester_org": "did:key:z6Mk",
        "created": 1,
        "deadline": 2,
        "state": state,
        "reason": None,
        "message": "",
        "decided_at": None,
        "decided_by": None,
        "grant_id": None,
        "route": [
            {"hop": 0, "node": "12D3KooWx", "org": "did:key:z6Mk", "action": "forward", "at": 1}
        ],
    }
    return {"state": state, "request": request, "grant": grant, "denial": denial}


def test_what_the_sync_client_sends() -> None:
    got: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        got.append(request)
        if request.url.path.endswith("/verify"):
            return httpx.Response(
                200,
                json={
                    "valid": False,
                    "deep": True,
                    "error": {"code": "bad_signature", "message": "no"},
                    "grant": None,
                },
            )
        if request.url.path.endswith("/purposes"):
            return httpx.Response(200, json={"purposes": []})
        return httpx.Response(200, json=_outcome())

    transport = httpx.MockTransport(handler)
    with Client(base_url="http://127.0.0.1:1", token=TOKEN, transport=transport) as dn:
        dn.request_access("dn://x/y", "academic-research", wait=100.0)
        dn.refresh_request("ab" * 8)
        dn.approve_request("ab" * 8)
        dn.deny_request("ab" * 8, "because")
        check = dn.verify_grant(b"\x00grant", deep=True)
        assert check.error_code == "bad_signature"
        assert dn.purposes() == []
    bodies = [json.loads(r.content) if r.url.path[-6:] != "verify" else None for r in got]
    assert bodies[0] == {
        "id": "dn://x/y",
        "purpose": "academic-research",
        "days": 30,
        "note": "",
        "wait": 100.0,
    }
    assert got[0].url.path == "/api/v0/access/request"
    assert got[0].extensions["timeout"]["read"] == 115.0  # wait + the margin
    assert got[1].extensions["timeout"]["read"] == 60.0  # no wait: the client's own timeout
    assert bodies[1] == {"id": "ab" * 8, "wait": 0.0}
    assert bodies[2] == {"id": "ab" * 8}
    assert bodies[3] == {"id": "ab" * 8, "reason": "because"}
    assert got[4].headers["content-type"] == "application/octet-stream"
    assert got[4].content == b"\x00grant"
    assert got[4].url.params["deep"] == "true"


@pytest.mark.parametrize(
    "answer",
    [
        _outcome("granted"),  # granted without its grant
        _outcome("denied"),  # denied without its denial
        _outcome("maybe"),
        {**_outcome(), "request": None},
        {**_outcome(), "request": {**_outcome()["request"], "days": "30"}},
        {**_outcome(), "request": {**_outcome()["request"], "route": [{"hop": 0}]}},
    ],
)
def test_malformed_outcomes_are_api_errors(answer: dict[str, Any]) -> None:
    transport = httpx.MockTransport(lambda _: httpx.Response(200, json=answer))
    with (
        Client(base_url="http://127.0.0.1:1", token=TOKEN, transport=transport) as dn,
        pytest.raises(ApiError, match="malformed"),
    ):
        dn.refresh_request("ab" * 8)


def test_a_check_that_is_valid_with_an_error_is_malformed() -> None:
    doc = {"valid": True, "deep": False, "error": {"code": "x", "message": "y"}, "grant": None}
    transport = httpx.MockTransport(lambda _: httpx.Response(200, json=doc))
    with (
        Client(base_url="http://127.0.0.1:1", token=TOKEN, transport=transport) as dn,
        pytest.raises(ApiError, match="malformed"),
    ):
        dn.verify_grant(b"g")
