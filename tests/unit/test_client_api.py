"""datanet.client: typed results, exceptions from error codes, where it finds the daemon.

AsyncClient talks to the real ASGI app in-process; the sync Client is exercised
against malformed servers with httpx.MockTransport (and against a real daemon
process in test_api_daemon.py).
"""

from __future__ import annotations

import base64
import importlib
import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from datanet.api.app import create_app
from datanet.api.errors import (
    ApiError,
    DaemonUnreachable,
    InvalidRequest,
    Unauthorized,
)
from datanet.api.routes import ApiContext, transport_addrs
from datanet.client import (
    AsyncClient,
    Client,
    ConfigChange,
    DeprecateResult,
    FacetCount,
    NodeInfo,
    PublishResult,
    Resolved,
    SearchResult,
    api_endpoint,
)
from datanet.errors import (
    CODES_NOT_MAPPED,
    ERRORS_BY_CODE,
    DatanetError,
    DecodeError,
    NotFound,
    StaleRecord,
    error_class_for_code,
)
from datanet.node.config import Config, ConfigError, ConfigFile
from datanet.node.paths import API_URL_FILE, TOKEN_FILE
from datanet.node.results import ConnectedPeer
from datanet.records.descriptor import verify_descriptor
from datanet.testing.doubles import MemoryNode
from identity.keys import KeyPair

TOKEN = "client-test-token-0123456789"
ROOT = Path(__file__).resolve().parents[2]


def _client(tmp: Path, node: MemoryNode, token: str = TOKEN) -> AsyncClient:
    ctx = ApiContext(node, ConfigFile(tmp / "config.toml"), Config.defaults(), lambda: None, TOKEN)
    return AsyncClient(
        base_url="http://127.0.0.1:5080",
        token=token,
        transport=httpx.ASGITransport(app=create_app(ctx)),
    )


async def test_typed_results_for_every_call(tmp_path: Path) -> None:
    node = MemoryNode()
    peer = KeyPair.from_seed(b"\x09" * 32).peer_id
    node.known_peers.append(ConnectedPeer(peer, ("/ip4/127.0.0.1/tcp/1",), None, 0.002))
    node.providers[b"/dn/k/x"] = [(peer, ["/ip4/127.0.0.1/tcp/1"])]
    raw = node.make_descriptor("sales/q1", title="Quarterly sales", keywords=("sales",))
    did = f"dn://{node.org}/sales/q1"
    async with _client(tmp_path, node) as dn:
        info = await dn.id()
        assert isinstance(info, NodeInfo)
        assert info.peer_id == str(node.peer_id)
        assert info.addrs == tuple(transport_addrs(node.listen_addrs()))  # no /p2p/
        peers = await dn.peers()
        assert peers[0].peer_id == str(peer)
        assert peers[0].latency_ms == 2.0
        published = await dn.publish(raw)
        assert published == PublishResult(
            did, 1, 1, "descriptor", "/dn/" + did.removeprefix("dn://")
        )
        found = await dn.resolve(did)
        assert isinstance(found, Resolved)
        assert found.raw == raw
        assert found.descriptor["title"] == "Quarterly sales"
        assert found.certificate.roles == ("gateway", "publisher")
        # A caller that does not trust its daemon re-verifies the bytes itself.
        assert verify_descriptor(found.raw, node.trust, node.now).descriptor.sequence == 1
        found = await dn.search("sales")
        assert isinstance(found, SearchResult)
        hits = found.hits
        assert [(h.dataset_id, h.title) for h in hits] == [(did, "Quarterly sales")]
        assert hits[0].fields["sequence"] == 1
        assert found.total == 1
        assert found.next_cursor is None
        assert found.facets["keyword"] == (FacetCount("sales", 1),)
        assert found.counted == 1
        assert (await dn.search("sales", keyword="other")).hits == ()
        narrowed = await dn.search(
            "", org=[str(node.org)], access=("request", "open"), temporal_from=None, facets=False
        )
        assert [h.dataset_id for h in narrowed.hits] == [did]
        assert narrowed.facets == {}
        key = f"/dn/{node.org}/sales/q1"
        assert await dn.routing_get(key) == raw
        assert await dn.routing_put(key.encode(), raw) == 1
        assert await dn.find_peer(peer) == ["/ip4/127.0.0.1/tcp/1"]
        provs = await dn.find_providers("/dn/k/x", 5)
        assert [p.peer_id for p in provs] == [str(peer)]
        assert (await dn.routing_stats())["records"] == 1
        change = await dn.config_set("limits.max_connections", "12")
        assert change == ConfigChange("limits.max_connections", 12, True)
        view = await dn.config_show()
        assert view.config["limits"]["max_connections"] == 12
        status = await dn.status()
        assert status.peers == 1
        assert status.node["catalog"] == 1
        assert await dn.stop() is True


async def test_errors_come_back_as_datanet_exceptions(tmp_path: Path) -> None:
    node = MemoryNode()
    async with _client(tmp_path, node) as dn:
        with pytest.raises(NotFound):
            await dn.resolve(f"dn://{node.org}/nothing")
        with pytest.raises(DecodeError):
            await dn.resolve("dn://did:key:z111/x")
        with pytest.raises(InvalidRequest):
            await dn.resolve("nonsense")
        await dn.publish(node.make_descriptor(sequence=3))
        with pytest.raises(StaleRecord) as stale:
            await dn.publish(node.make_descriptor(sequence=2))
        assert stale.value.code == "stale_record"
        with pytest.raises(ConfigError, match=r"log\.level"):
            await dn.config_set("log.level", "loud")
        with pytest.raises(DecodeError):
            await dn.publish(b"junk")
    async with _client(tmp_path, node, token="wrong-token-0123456789") as bad:
        with pytest.raises(Unauthorized):
            await bad.id()


def test_error_codes_map_to_classes() -> None:
    assert error_class_for_code("not_found") is NotFound
    assert error_class_for_code("stale_record") is StaleRecord
    assert error_class_for_code("invalid_config") is ConfigError
    assert error_class_for_code("unauthorized") is Unauthorized
    assert error_class_for_code("no such code") is ApiError


def _every_module() -> None:
    """Import every datanet and cli module, so every error class is defined."""
    for package in ("identity", "datanet", "cli", "routing"):
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, f"{package}."):
            importlib.import_module(info.name)


def _coded_subclasses(cls: type[DatanetError]) -> set[type[DatanetError]]:
    found = {cls} if "code" in cls.__dict__ else set()
    for sub in cls.__subclasses__():
        found |= _coded_subclasses(sub)
    return found


def test_every_error_code_is_mapped_or_named_as_not_mapped() -> None:
    _every_module()
    missing = {
        f"{c.__module__}.{c.__qualname__} ({c.code})"
        for c in _coded_subclasses(DatanetError)
        if ERRORS_BY_CODE.get(c.code) is not c and c.code not in CODES_NOT_MAPPED
    }
    assert not missing, "add these to datanet.errors.ERRORS_BY_CODE (or CODES_NOT_MAPPED)"
    assert not set(ERRORS_BY_CODE) & set(CODES_NOT_MAPPED)
    assert all(cls.code == code for code, cls in ERRORS_BY_CODE.items())


def test_documented_error_codes_are_mapped() -> None:
    text = (ROOT / "docs" / "api.md").read_text()
    table = text[text.index("| status | when | example codes |") :].split("\n\n", 1)[0]
    documented = set(re.findall(r"`([a-z_]+)`", table))
    assert documented
    assert documented <= set(ERRORS_BY_CODE) | set(CODES_NOT_MAPPED)


def _mock(handler: httpx.MockTransport) -> Client:
    return Client(base_url="http://127.0.0.1:1", token=TOKEN, transport=handler)


def test_malformed_server_answers_are_api_errors() -> None:
    answers = iter(
        [
            httpx.Response(200, content=b"not json"),
            httpx.Response(200, json=[1, 2]),
            httpx.Response(200, json={"peer_id": 5, "org": None, "addrs": [], "agent": "x"}),
            httpx.Response(502, content=b"<html>bad gateway</html>"),
            httpx.Response(418, json={"error": {"code": "teapot", "message": "short and stout"}}),
            httpx.Response(404, json={"error": {"code": "not_found", "message": "gone"}}),
        ]
    )
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return next(answers)

    with _mock(httpx.MockTransport(handler)) as dn:
        for _ in range(4):
            with pytest.raises(ApiError):
                dn.id()
        with pytest.raises(ApiError, match="short and stout") as teapot:
            dn.id()
        assert teapot.value.code == "teapot"
        with pytest.raises(NotFound, match="gone"):
            dn.id()
    assert seen[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert seen[0].url.path == "/api/v0/id"
    assert json.loads(seen[0].content) == {}


def test_bad_base64_value_is_an_api_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"key": "/a/b", "value": "%%%"})

    with _mock(httpx.MockTransport(handler)) as dn, pytest.raises(ApiError):
        dn.routing_get("/a/b")


def test_publish_sends_octet_stream_and_put_sends_base64() -> None:
    got: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        got.append(request)
        if request.url.path.endswith("/publish"):
            return httpx.Response(
                200, json={"dataset_id": "dn://x/y", "sequence": 1, "replicas": 0}
            )
        return httpx.Response(200, json={"key": "/a/b", "replicas": 2})

    value = b"\xff" * 3
    with _mock(httpx.MockTransport(handler)) as dn:
        assert dn.publish(b"\x00\x01").replicas == 0
        assert dn.routing_put("/a/b", value) == 2
    assert got[0].headers["content-type"] == "application/octet-stream"
    assert got[0].content == b"\x00\x01"
    expected = {"key": "/a/b", "value": base64.b64encode(value).decode()}
    assert json.loads(got[1].content) == expected


def test_endpoint_comes_from_the_data_dir(tmp_path: Path) -> None:
    with pytest.raises(DaemonUnreachable, match="is the daemon running"):
        api_endpoint(tmp_path)
    (tmp_path / TOKEN_FILE).write_text("abc\n")
    assert api_endpoint(tmp_path) == ("http://127.0.0.1:5080", "abc")
    (tmp_path / "config.toml").write_text('[api]\naddress = "[::1]:6000"\n')
    assert api_endpoint(tmp_path) == ("http://[::1]:6000", "abc")
    (tmp_path / API_URL_FILE).write_text("http://127.0.0.1:7000/\n")
    assert api_endpoint(tmp_path) == ("http://127.0.0.1:7000", "abc")
    assert api_endpoint(tmp_path, base_url="http://h:1", token="t") == ("http://h:1", "t")
    (tmp_path / API_URL_FILE).unlink()
    (tmp_path / "config.toml").write_text('[api]\naddress = "nonsense"\n')
    with pytest.raises(ConfigError):
        api_endpoint(tmp_path)


def test_env_data_dir_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATANET_HOME", str(tmp_path))
    (tmp_path / TOKEN_FILE).write_text("from-env\n")
    assert api_endpoint()[1] == "from-env"


def test_unreachable_daemon() -> None:
    with (
        Client(base_url="http://127.0.0.1:9", token=TOKEN, timeout=2) as dn,
        pytest.raises(DaemonUnreachable) as info,
    ):
        dn.status()
    assert isinstance(info.value, DatanetError)
    assert info.value.code == "daemon_unreachable"


def test_client_import_stays_light() -> None:
    """The CLI imports the client; it must not pull in the node or the web server.

    (httpx's httpcore imports trio when a client is created, if trio is installed.)
    """
    code = (
        "import sys, datanet.client; "
        "datanet.client.Client(base_url='http://127.0.0.1:1', token='t').close(); "
        "bad = [m for m in ('libp2p', 'starlette', 'hypercorn', 'cli') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""


# --- the complete catalog (issue 9); watch itself: test_api_watch.py ---------------------


async def test_catalog_calls(tmp_path: Path) -> None:
    node = MemoryNode()
    peer = KeyPair.from_seed(b"\x09" * 32).peer_id
    node.known_peers.append(ConnectedPeer(peer, (), None, None))
    did = f"dn://{node.org}/sales/q1"
    async with _client(tmp_path, node) as dn:
        await dn.publish(node.make_descriptor("sales/q1"))
        assert (await dn.catalog_stats())["datasets"] == 1
        assert await dn.deprecate(did, reason="replaced") == DeprecateResult(did, 2, 1)
        assert node.withdrawn[node.make_dataset_id("sales/q1")] == (2, "replaced")
        with pytest.raises(NotFound):
            await dn.deprecate(did)
        synced = await dn.catalog_sync()
        assert [s["peer"] for s in synced] == [str(peer)]
        assert (await dn.catalog_sync(peers=1, peer=peer))[0]["in_sync"] is True
        with pytest.raises(NotFound):
            await dn.catalog_sync(peer=KeyPair.from_seed(b"\x0a" * 32).peer_id)
    assert node.syncs[-2:] == [(1, peer), (3, KeyPair.from_seed(b"\x0a" * 32).peer_id)]


def test_catalog_calls_send_documented_bodies() -> None:
    got: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        got.append(request)
        if request.url.path.endswith("/deprecate"):
            return httpx.Response(
                200, json={"dataset_id": "dn://x/y", "sequence": 4, "replicas": 2}
            )
        return httpx.Response(200, json={"synced": [1]})

    with _mock(httpx.MockTransport(handler)) as dn:
        assert dn.deprecate("dn://x/y").sequence == 4
        with pytest.raises(ApiError):
            dn.catalog_sync(peer="12D3KooWx")
    assert json.loads(got[0].content) == {"arg": "dn://x/y", "reason": ""}
    assert json.loads(got[1].content) == {"peers": 3, "peer": "12D3KooWx"}


def test_search_sends_only_given_filters_and_checks_the_answer() -> None:
    got: list[httpx.Request] = []
    good = {
        "hits": [{"dataset_id": "dn://x/y", "title": "T", "license": "odbl"}],
        "total": 3,
        "facets": {"license": [{"value": "odbl", "count": 3}]},
        "counted": 3,
        "next_cursor": "abc",
    }
    answers = iter(
        [
            good,
            {**good, "facets": {"colour": []}},
            {**good, "facets": {"license": [{"value": "odbl", "count": "3"}]}},
            {**good, "next_cursor": 5},
            {key: value for key, value in good.items() if key != "total"},
        ]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        got.append(request)
        return httpx.Response(200, json=next(answers))

    with _mock(httpx.MockTransport(handler)) as dn:
        page = dn.search(
            "rain", license="ODbL", keyword=["a", "b"], temporal_to=9, cursor="c", facets=False
        )
        assert page.total == 3
        assert page.next_cursor == "abc"
        assert page.hits[0].fields["license"] == "odbl"
        assert page.facets == {"license": (FacetCount("odbl", 3),)}
        for _ in range(4):
            with pytest.raises(ApiError, match="malformed"):
                dn.search()
    assert json.loads(got[0].content) == {
        "query": "rain",
        "keyword": ["a", "b"],
        "license": ["ODbL"],
        "to": 9,
        "limit": 20,
        "cursor": "c",
        "facets": False,
    }
    assert json.loads(got[1].content) == {"query": "", "limit": 20}
