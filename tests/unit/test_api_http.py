"""The control API's HTTP layer, in-process (httpx ASGI transport) over an in-memory node.

Records are real (signed descriptors, real validators); only the network is a dict.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from datanet.api.app import create_app
from datanet.api.routes import OPERATIONS, ApiContext, transport_addrs
from datanet.errors import NetworkError, NotFound, Timeout
from datanet.node.config import Config, ConfigFile
from datanet.node.results import ConnectedPeer
from datanet.records.ids import DatasetId
from datanet.testing.doubles import MemoryNode
from identity.keys import KeyPair

TOKEN = "test-token-0123456789abcdef"
AUTH = {"authorization": f"Bearer {TOKEN}"}


class Harness:
    def __init__(self, tmp: Path, node: MemoryNode, config: Config) -> None:
        self.node = node
        self.stops = 0
        self.config_path = tmp / "config.toml"
        self.ctx = ApiContext(
            node=node,
            config_file=ConfigFile(self.config_path),
            running_config=config,
            request_stop=self._stop,
            token=TOKEN,
        )
        self.app = create_app(self.ctx)

    def _stop(self) -> None:
        self.stops += 1

    def client(self, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url="http://127.0.0.1:5080",
            headers=AUTH if headers is None else headers,
        )


def make(tmp: Path, node: MemoryNode | None = None, **settings: Any) -> Harness:
    config = Config.defaults()
    for key, value in settings.items():
        config = config.with_value(key.replace("__", "."), value)
    return Harness(tmp, node or MemoryNode(), config)


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return make(tmp_path)


def error(r: httpx.Response) -> tuple[int, str]:
    doc = r.json()
    assert set(doc) == {"error"}
    assert set(doc["error"]) == {"code", "message"}
    assert doc["error"]["message"]
    return r.status_code, doc["error"]["code"]


# --- auth -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer wrong-token-0123456789ab"},
        {"authorization": TOKEN},
        {"authorization": f"Basic {TOKEN}"},
        {"authorization": f"Bearer {TOKEN}x"},
        {"authorization": f"bearer  {TOKEN}"},
    ],
)
async def test_missing_or_wrong_token_is_401_and_changes_nothing(
    h: Harness, headers: dict[str, str]
) -> None:
    raw = h.node.make_descriptor()
    async with h.client(headers) as c:
        for path, kw in [
            ("/api/v0/publish", {"content": raw}),
            ("/api/v0/config/set", {"json": {"key": "log.level", "value": "debug"}}),
            ("/api/v0/node/stop", {}),
            ("/api/v0/id", {}),
            ("/api/v0/no/such/endpoint", {}),
        ]:
            r = await c.post(path, **kw)
            assert error(r) == (401, "unauthorized")
            assert r.headers["www-authenticate"].startswith("Bearer")
    assert h.node.catalog == {}
    assert not h.config_path.exists()
    assert h.stops == 0


async def test_openapi_needs_no_token(h: Harness) -> None:
    async with h.client({}) as c:
        r = await c.get("/api/v0/openapi.json")
    assert r.status_code == 200
    assert r.json()["openapi"] == "3.1.0"


def test_short_tokens_are_refused(tmp_path: Path) -> None:
    node = MemoryNode()
    ctx = ApiContext(node, ConfigFile(tmp_path / "c"), Config.defaults(), lambda: None, "short")
    with pytest.raises(ValueError, match="16 characters"):
        create_app(ctx)


# --- malformed requests -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{", "invalid_json"),
        (b"{'id': 1}", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b"[" * 100_00 + b"]" * 100_00, "invalid_json"),
        (b"[1, 2]", "invalid_request"),
        (b'"text"', "invalid_request"),
        (b'{"id": 5}', "invalid_request"),
        (b'{"id": ""}', "invalid_request"),
        (b'{"idd": "dn://x/y"}', "invalid_request"),
        (b"{}", "invalid_request"),
        (b'{"id": "dn://x/y", "refresh": "yes"}', "invalid_request"),
        (b'{"id": "not a dataset id"}', "invalid_request"),
        (b'{"id": "dn://did:key:z111/x"}', "decode_error"),
        (b'{"id": "dn://did:key:z6Mk/Upper"}', "invalid_request"),
    ],
)
async def test_malformed_bodies_are_clear_400s(h: Harness, body: bytes, code: str) -> None:
    async with h.client({**AUTH, "content-type": "application/json"}) as c:
        r = await c.post("/api/v0/resolve", content=body)
    assert error(r) == (400, code)


async def test_integer_bounds_and_types(h: Harness) -> None:
    async with h.client() as c:
        for body in [{"limit": 0}, {"limit": 101}, {"offset": 1}, {"limit": True}, {"limit": 1.5}]:
            r = await c.post("/api/v0/search", json=body)
            assert error(r) == (400, "invalid_request"), body


async def test_oversized_bodies_are_413_before_anything_runs(tmp_path: Path) -> None:
    h = make(tmp_path, api__max_body_bytes=2048)
    async with h.client() as c:
        r = await c.post("/api/v0/publish", content=b"x" * 4096)
        assert error(r) == (413, "body_too_large")

        r = await c.post("/api/v0/publish", content=b"x", headers={"content-length": "abc"})
        assert r.status_code == 400
    assert h.node.catalog == {}


async def test_bodies_without_content_length_are_counted_while_read(tmp_path: Path) -> None:
    """A chunked body has no Content-Length: the limit is enforced on the bytes read."""
    h = make(tmp_path, api__max_body_bytes=2048)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v0/publish",
        "raw_path": b"/api/v0/publish",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"authorization", AUTH["authorization"].encode())],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 5080),
    }
    sent_chunks = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent_chunks
        sent_chunks += 1
        return {"type": "http.request", "body": b"y" * 1000, "more_body": sent_chunks < 100}

    messages: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await h.app(scope, receive, send)
    assert messages[0]["status"] == 413
    assert json.loads(messages[1]["body"])["error"]["code"] == "body_too_large"
    assert sent_chunks <= 3  # stopped reading right after the limit
    assert h.node.catalog == {}


async def test_wrong_content_type_is_415(h: Harness) -> None:
    async with h.client() as c:
        r = await c.post(
            "/api/v0/publish", content=b"{}", headers={"content-type": "application/json"}
        )
        assert error(r) == (415, "unsupported_media_type")
        r = await c.post("/api/v0/id", content=b"a=b", headers={"content-type": "text/plain"})
        assert error(r) == (415, "unsupported_media_type")


async def test_unknown_paths_and_methods_are_json(h: Harness) -> None:
    async with h.client() as c:
        r = await c.post("/api/v0/nothing")
        assert error(r) == (404, "unknown_endpoint")
        r = await c.post("/api/v0/id/")
        assert error(r) == (404, "unknown_endpoint")
        r = await c.get("/api/v0/id")
        assert error(r) == (405, "method_not_allowed")
        r = await c.delete("/api/v0/node/stop")
        assert error(r) == (405, "method_not_allowed")
    assert h.stops == 0


# --- endpoints ---------------------------------------------------------------------------


async def test_id_and_peers(h: Harness) -> None:
    other = KeyPair.from_seed(b"\x05" * 32)
    h.node.known_peers.append(
        ConnectedPeer(other.peer_id, ("/ip4/127.0.0.1/tcp/9",), h.node.org, 0.0123)
    )
    h.node.known_peers.append(
        ConnectedPeer(KeyPair.from_seed(b"\x06" * 32).peer_id, (), None, None)
    )
    async with h.client() as c:
        r = await c.post("/api/v0/id")  # empty body = {}
        assert r.status_code == 200
        doc = r.json()
        assert doc["peer_id"] == str(h.node.peer_id)
        assert doc["org"] == str(h.node.org)
        assert doc["addrs"] == transport_addrs(h.node.listen_addrs())  # never /p2p/
        r = await c.post("/api/v0/peers", json={})
    peers = r.json()["peers"]
    assert peers[0] == {
        "peer_id": str(other.peer_id),
        "addrs": ["/ip4/127.0.0.1/tcp/9"],
        "org": str(h.node.org),
        "latency_ms": 12.3,
    }
    assert peers[1]["org"] is None
    assert peers[1]["latency_ms"] is None


async def test_publish_resolve_search_round_trip(h: Harness) -> None:
    raw = h.node.make_descriptor("weather/daily", title="Daily weather", keywords=("rain",))
    did = f"dn://{h.node.org}/weather/daily"
    async with h.client() as c:
        r = await c.post("/api/v0/publish", content=raw)
        assert r.status_code == 200
        assert r.json() == {
            "dataset_id": did,
            "sequence": 1,
            "replicas": 0,
            "kind": "descriptor",
            "key": "/dn/" + did.removeprefix("dn://"),
            "acked": 0,
            "target": 0,
            "pending": 0,
        }
        r = await c.post("/api/v0/resolve", json={"id": did})
        doc = r.json()
        assert r.status_code == 200
        assert base64.b64decode(doc["raw"]) == raw
        assert doc["descriptor"]["title"] == "Daily weather"
        assert doc["certificate"]["roles"] == ["gateway", "publisher"]
        assert doc["certificate"]["org"] == str(h.node.org)
        r = await c.post("/api/v0/search", json={"query": "rain", "limit": 5})
        assert [hit["dataset_id"] for hit in r.json()["hits"]] == [did]
        doc = r.json()
        assert doc["total"] == 1
        assert doc["next_cursor"] is None
        assert doc["facets"]["keyword"] == [{"value": "rain", "count": 1}]
        assert doc["hits"][0]["access"] == "request"
        r = await c.post("/api/v0/search", json={"query": "snow"})
        assert r.json()["hits"] == []


async def test_search_filters_facets_and_cursor(h: Harness) -> None:
    async with h.client() as c:
        for i in range(5):
            raw = h.node.make_descriptor(
                f"rain/d{i}",
                title=f"Rain {i}",
                keywords=("rain", "even" if i % 2 == 0 else "odd"),
                license="CC-BY-4.0" if i < 3 else "ODbL",
                temporal=(i * 100, i * 100 + 50),
            )
            assert (await c.post("/api/v0/publish", content=raw)).status_code == 200
        body = {"query": "rain", "keyword": ["even"], "license": ["cc-by-4.0", "x"], "limit": 1}
        r = await c.post("/api/v0/search", json=body)
        doc = r.json()
        assert r.status_code == 200, doc
        assert doc["total"] == 2
        assert len(doc["hits"]) == 1
        assert {f["value"]: f["count"] for f in doc["facets"]["license"]} == {"cc-by-4.0": 2}
        second = await c.post("/api/v0/search", json={**body, "cursor": doc["next_cursor"]})
        assert second.json()["next_cursor"] is None
        titles = {doc["hits"][0]["title"], second.json()["hits"][0]["title"]}
        assert titles == {"Rain 0", "Rain 2"}
        r = await c.post("/api/v0/search", json={"from": 120, "to": 260, "facets": False})
        assert sorted(hit["title"] for hit in r.json()["hits"]) == ["Rain 1", "Rain 2"]
        assert r.json()["facets"] == {}


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ({"keyword": "rain"}, "invalid_request", "list of at most 20 strings"),
        ({"keyword": ["x"] * 21}, "invalid_request", "list of at most 20 strings"),
        ({"theme": [""]}, "invalid_request", "1 to 256 characters"),
        ({"org": [3]}, "invalid_request", "1 to 256 characters"),
        ({"access": ["public"]}, "invalid_input", "open, request, closed"),
        ({"from": 10, "to": 5}, "invalid_input", "lies after"),
        ({"from": "2024-01-01"}, "invalid_request", "integer"),
        ({"cursor": "garbage"}, "invalid_input", "invalid cursor"),
        ({"cursor": ""}, "invalid_request", "1 to 256"),
        ({"facets": "no"}, "invalid_request", "true or false"),
    ],
)
async def test_bad_search_arguments_are_clear_400s(
    h: Harness, body: dict[str, object], code: str, message: str
) -> None:
    async with h.client() as c:
        r = await c.post("/api/v0/search", json=body)
    assert error(r) == (400, code)
    assert message in r.json()["error"]["message"]


async def test_publish_errors_map_to_status_and_code(h: Harness) -> None:
    raw = h.node.make_descriptor(sequence=5)
    async with h.client() as c:
        assert (await c.post("/api/v0/publish", content=raw)).status_code == 200
        stale = h.node.make_descriptor(sequence=4)
        assert error(await c.post("/api/v0/publish", content=stale)) == (422, "stale_record")
        tampered = bytearray(raw)
        tampered[-10] ^= 1
        status, _ = error(await c.post("/api/v0/publish", content=bytes(tampered)))
        assert status in (400, 422)
        assert error(await c.post("/api/v0/publish", content=b"junk")) == (400, "decode_error")
        assert error(await c.post("/api/v0/publish", content=b"")) == (400, "invalid_request")
        big = b"\x00" * 20_000
        assert error(await c.post("/api/v0/publish", content=big)) == (413, "record_too_large")
    held = next(iter(h.node.catalog.values()))
    assert held.descriptor.sequence == 5


async def test_resolve_not_found_is_404(h: Harness) -> None:
    async with h.client() as c:
        r = await c.post("/api/v0/resolve", json={"id": f"dn://{h.node.org}/nothing"})
    assert error(r) == (404, "not_found")


async def test_routing_endpoints(h: Harness) -> None:
    raw = h.node.make_descriptor("a")
    key = f"/dn/{h.node.org}/a"
    value = base64.b64encode(raw).decode()
    peer = KeyPair.from_seed(b"\x07" * 32).peer_id
    h.node.known_peers.append(ConnectedPeer(peer, ("/ip4/127.0.0.1/tcp/7",), None, None))
    # a dataset's providers are announced under its provider key, whichever spelling is asked
    provider_key = DatasetId.from_dht_key(key.encode()).provider_key()
    h.node.providers[provider_key] = [(peer, ["/ip4/127.0.0.1/tcp/7"])]
    async with h.client() as c:
        assert error(await c.post("/api/v0/routing/get", json={"key": key})) == (404, "not_found")
        r = await c.post("/api/v0/routing/put", json={"key": key, "value": value})
        assert r.json() == {"key": key, "replicas": 1}
        r = await c.post("/api/v0/routing/get", json={"key": key})
        assert r.json()["value"] == value
        # Wrong key for the record, bad base64, key too long, unknown namespace.
        wrong = await c.post("/api/v0/routing/put", json={"key": key + "x", "value": value})
        assert 400 <= wrong.status_code < 500
        bad = await c.post("/api/v0/routing/put", json={"key": key, "value": "%%%"})
        assert error(bad) == (400, "invalid_request")
        long_key = await c.post("/api/v0/routing/get", json={"key": "/dn/" + "é" * 300})
        assert error(long_key) == (400, "invalid_request")
        r = await c.post("/api/v0/routing/findpeer", json={"peer": str(peer)})
        assert r.json() == {"peer_id": str(peer), "addrs": ["/ip4/127.0.0.1/tcp/7"]}
        r = await c.post("/api/v0/routing/findpeer", json={"peer": "12D3KooWnope"})
        assert error(r) == (400, "decode_error")
        unknown = KeyPair.from_seed(b"\x08" * 32).peer_id
        r = await c.post("/api/v0/routing/findpeer", json={"peer": str(unknown)})
        assert error(r) == (404, "not_found")
        r = await c.post("/api/v0/routing/findprovs", json={"key": key, "count": 3})
        assert r.json()["providers"] == [{"peer_id": str(peer), "addrs": ["/ip4/127.0.0.1/tcp/7"]}]
        r = await c.post("/api/v0/routing/stats")
        assert r.json()["stats"]["records"] == 1
    assert h.node.values == {key.encode(): raw}


async def test_config_show_and_set(h: Harness) -> None:
    async with h.client() as c:
        r = await c.post("/api/v0/config/show")
        doc = r.json()
        assert doc["config"]["api"]["address"] == "127.0.0.1:5080"
        assert doc["restart_required"] is False
        r = await c.post("/api/v0/config/set", json={"key": "log.level", "value": "debug"})
        assert r.json() == {"key": "log.level", "value": "debug", "restart_required": True}
        r = await c.post("/api/v0/config/set", json={"key": "limits.max_connections", "value": 9})
        assert r.json()["value"] == 9
        before = h.config_path.read_bytes()
        for body in [
            {"key": "log.level", "value": "loud"},
            {"key": "api.address", "value": "0.0.0.0:5080"},
            {"key": "no.such", "value": 1},
            {"key": "limits.max_connections", "value": [1]},
        ]:
            r = await c.post("/api/v0/config/set", json=body)
            assert error(r)[0] == 400, body
            assert r.json()["error"]["code"] == "invalid_config"
        assert h.config_path.read_bytes() == before
        r = await c.post("/api/v0/config/show")
        assert r.json()["config"]["log"]["level"] == "debug"
        assert r.json()["restart_required"] is True


async def test_status_and_stop(h: Harness) -> None:
    async with h.client() as c:
        r = await c.post("/api/v0/node/status")
        doc = r.json()
        assert doc["peer_id"] == str(h.node.peer_id)
        assert doc["node"] == {"catalog": 0, "admission": "members", "started": True}
        assert doc["uptime_s"] >= 0
        r = await c.post("/api/v0/node/stop")
        assert r.json() == {"stopping": True}
    assert h.stops == 1


# --- the complete catalog: deprecate, catalog stats|sync, watch (finite answers) -------
# The event stream itself is tested over real sockets in test_api_watch.py.


async def test_deprecate(h: Harness) -> None:
    did = f"dn://{h.node.org}/weather/daily"
    async with h.client() as c:
        r = await c.post("/api/v0/publish", content=h.node.make_descriptor())
        assert r.status_code == 200
        r = await c.post("/api/v0/deprecate", json={"arg": did, "reason": "superseded"})
        assert r.json() == {
            "dataset_id": did,
            "sequence": 2,
            "replicas": 0,
            "acked": 0,
            "target": 0,
            "pending": 0,
        }
        assert error(await c.post("/api/v0/resolve", json={"id": did})) == (404, "not_found")
        r = await c.post("/api/v0/deprecate", json={"arg": did})  # reason is optional
        assert error(r) == (404, "not_found")
        for body in [{}, {"arg": "nonsense"}, {"arg": did, "reason": "x" * 1025}, {"id": did}]:
            assert error(await c.post("/api/v0/deprecate", json=body)) == (400, "invalid_request")
        stale = h.node.make_descriptor(sequence=2)
        assert error(await c.post("/api/v0/publish", content=stale)) == (422, "stale_record")
    assert h.node.withdrawn[h.node.make_dataset_id()] == (2, "superseded")


async def test_catalog_stats_and_sync(h: Harness) -> None:
    peer = KeyPair.from_seed(b"\x07" * 32).peer_id
    h.node.known_peers.append(ConnectedPeer(peer, (), None, None))
    async with h.client() as c:
        await c.post("/api/v0/publish", content=h.node.make_descriptor())
        r = await c.post("/api/v0/catalog/stats")
        stats = r.json()["stats"]
        assert stats["datasets"] == 1
        assert stats["watchers"] == 0
        r = await c.post("/api/v0/catalog/sync")
        assert r.json() == {
            "synced": [{"peer": str(peer), "received": 0, "sent": 0, "in_sync": True}]
        }
        r = await c.post("/api/v0/catalog/sync", json={"peer": str(peer), "peers": 1})
        assert [s["peer"] for s in r.json()["synced"]] == [str(peer)]
        other = KeyPair.from_seed(b"\x08" * 32).peer_id
        r = await c.post("/api/v0/catalog/sync", json={"peer": str(other)})
        assert error(r) == (404, "not_found")
        for body in [{"peers": 0}, {"peers": 33}, {"peer": "nope"}, {"peer": 5}]:
            r = await c.post("/api/v0/catalog/sync", json=body)
            assert error(r) == (400, "invalid_request"), body
    assert h.node.syncs == [(3, None), (1, peer), (3, other)]


async def test_watch_refusals_are_json(h: Harness) -> None:
    """Everything refused before the stream starts is an ordinary JSON error."""
    path = "/api/v0/catalog/watch"
    async with h.client({}) as c:
        assert error(await c.get(path))[0] == 401
        assert error(await c.post(path, json={"q": "x"}))[0] == 401
    async with h.client() as c:
        too_long = "q" * 513
        assert error(await c.post(path, json={"q": too_long})) == (400, "invalid_request")
        assert error(await c.get(path, params={"q": too_long})) == (400, "invalid_request")
        assert error(await c.get(path, params={"query": "x"})) == (400, "invalid_request")
        assert error(await c.post(path, content=b"{")) == (400, "invalid_json")
        assert error(await c.put(path))[0] == 405
    feed = h.node.feed
    subs = [feed.subscribe() for _ in range(feed.max_subscribers)]
    for sub in subs:
        await sub.__aenter__()
    try:
        async with h.client() as c:
            r = await c.post(path, json={"q": "rain"})
            assert error(r) == (400, "invalid_input")
            assert "too many catalog watchers" in r.json()["error"]["message"]
            assert error(await c.get(path))[0] == 400
    finally:
        for sub in subs:
            await sub.__aexit__(None, None, None)
    assert feed.subscribers == 0


# --- node failures ----------------------------------------------------------------------


class FailingNode(MemoryNode):
    failure: Callable[[], BaseException] = staticmethod(lambda: RuntimeError("boom"))  # type: ignore[assignment]

    async def resolve(self, dataset_id: Any, *, refresh: bool = False) -> Any:
        raise self.failure()


@pytest.mark.parametrize(
    ("failure", "status", "code"),
    [
        (lambda: RuntimeError("secret detail"), 500, "internal_error"),
        (lambda: Timeout("peer slow"), 504, "timeout"),
        (lambda: NetworkError("peer gone"), 502, "network_error"),
        (lambda: ExceptionGroup("g", [NotFound("in a group")]), 404, "not_found"),
        (lambda: ExceptionGroup("g", [NotFound("a"), NotFound("b")]), 500, "internal_error"),
    ],
)
async def test_node_failures_become_json_errors(
    tmp_path: Path, failure: Callable[[], BaseException], status: int, code: str
) -> None:
    node = FailingNode()
    node.failure = failure
    h = make(tmp_path, node)
    async with h.client() as c:
        r = await c.post("/api/v0/resolve", json={"id": f"dn://{node.org}/x"})
    assert error(r) == (status, code)
    assert "secret detail" not in r.text


class SlowNode(MemoryNode):
    async def resolve(self, dataset_id: Any, *, refresh: bool = False) -> Any:
        await anyio.sleep(30)


async def test_slow_node_calls_time_out_with_504(tmp_path: Path) -> None:
    h = make(tmp_path, SlowNode(), api__request_timeout=0.2)
    with anyio.fail_after(5):
        async with h.client() as c:
            r = await c.post("/api/v0/resolve", json={"id": f"dn://{h.node.org}/x"})
    assert error(r) == (504, "timeout")
    assert "0.2" in r.json()["error"]["message"]


async def test_dcat_exports_the_resolved_descriptor(h: Harness) -> None:
    await h.node.publish(h.node.make_descriptor("a", license="CC-BY-4.0"))
    dataset_id = f"dn://{h.node.org}/a"
    async with h.client() as c:
        r = await c.post("/api/v0/dcat", json={"id": dataset_id})
        missing = await c.post("/api/v0/dcat", json={"id": f"dn://{h.node.org}/none"})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert (doc["dataset_id"], doc["sequence"]) == (dataset_id, 1)
    assert doc["dcat"]["@type"] == "dcat:Dataset"
    assert doc["dcat"]["@id"] == dataset_id
    assert doc["dcat"]["dct:title"] == "Dataset a"
    assert error(missing) == (404, "not_found")


async def test_findprovs_takes_a_dataset_id(h: Harness) -> None:
    """docs/api.md promises `dn://` ids as findprovs keys; the field's pattern refused them."""
    dataset_id = f"dn://{h.node.org}/a"
    peer = KeyPair.from_seed(b"\x07" * 32).peer_id
    h.node.providers[DatasetId.parse(dataset_id).provider_key()] = [
        (peer, ["/ip4/127.0.0.1/tcp/7"])
    ]
    async with h.client() as c:
        r = await c.post("/api/v0/routing/findprovs", json={"key": dataset_id})
        bad = await c.post("/api/v0/routing/findprovs", json={"key": "weather"})
    assert r.status_code == 200, r.text
    assert r.json()["providers"] == [{"peer_id": str(peer), "addrs": ["/ip4/127.0.0.1/tcp/7"]}]
    assert error(bad) == (400, "invalid_request")


async def test_replicas_lists_each_answering_peer_with_its_state(h: Harness) -> None:
    await h.node.publish(h.node.make_descriptor("a"))
    dataset_id = DatasetId.parse(f"dn://{h.node.org}/a")
    current = KeyPair.from_seed(b"\x08" * 32).peer_id
    missing = KeyPair.from_seed(b"\x09" * 32).peer_id
    h.node.replica_census[dataset_id] = [
        (current, ["/ip4/127.0.0.1/tcp/8/p2p/" + str(current)], "current"),
        (missing, ["/ip4/127.0.0.1/tcp/9"], "missing"),
    ]
    async with h.client() as c:
        r = await c.post("/api/v0/replicas", json={"id": str(dataset_id)})
        unknown = await c.post("/api/v0/replicas", json={"id": f"dn://{h.node.org}/none"})
        bad = await c.post("/api/v0/replicas", json={"id": "weather"})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "dataset_id": str(dataset_id),
        "replicas": [  # addresses without /p2p/, as everywhere
            {"peer_id": str(current), "addrs": ["/ip4/127.0.0.1/tcp/8"], "state": "current"},
            {"peer_id": str(missing), "addrs": ["/ip4/127.0.0.1/tcp/9"], "state": "missing"},
        ],
    }
    assert error(unknown) == (404, "not_found")
    assert error(bad) == (400, "invalid_request")


def test_every_operation_has_a_test_above() -> None:
    """Here, or for access requests (issue 10) in test_api_access.py, or for the audit
    log (issue 11) in test_api_audit.py."""
    here = Path(__file__).parent
    source = "".join(
        p.read_text()
        for p in (Path(__file__), here / "test_api_access.py", here / "test_api_audit.py")
    )
    for op in OPERATIONS:
        assert f'"/api/v0{op.path}"' in source, op.path
