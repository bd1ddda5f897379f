"""catalog/watch over real sockets: hypercorn on 127.0.0.1, the in-memory node's feed, httpx.

httpx's ASGI transport buffers whole responses, so an endless event stream needs a
real server; everything here runs in one trio run (server, node, clients).
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from datanet.api.app import create_app
from datanet.api.results import SseDecoder, parse_watch_event
from datanet.api.routes import ApiContext
from datanet.client import AsyncClient, Client, WatchEvent
from datanet.errors import ApiError, InvalidInput, Timeout
from datanet.node.config import Config, ConfigFile
from datanet.node.feed import CatalogEvent, CatalogFeed
from datanet.testing.doubles import MemoryNode

# httpx/httpcore read a response through nested async generators and cannot close the
# inner ones when a stream is left early (the point of a watch); trio then reports them
# as garbage-collected unexhausted. Harmless here: the connection itself is closed.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <async_generator object "
    r"\w*(Response|Stream|Connection)\w*\.:"
    "pytest.PytestUnraisableExceptionWarning"
)

TOKEN = "watch-test-token-0123456789"
AUTH = {"authorization": f"Bearer {TOKEN}"}


@contextlib.asynccontextmanager
async def serving(tmp: Path, node: MemoryNode, *, heartbeat: float = 15.0) -> AsyncIterator[str]:
    """The API of ``node`` on a free loopback port; yields its base URL."""
    ctx = ApiContext(
        node=node,
        config_file=ConfigFile(tmp / "config.toml"),
        running_config=Config.defaults(),
        request_stop=lambda: None,
        token=TOKEN,
        heartbeat_interval=heartbeat,
    )
    hc = HypercornConfig()
    hc.bind = ["127.0.0.1:0"]
    hc.accesslog = None
    hc.graceful_timeout = 0.5
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            functools.partial(hypercorn_serve, create_app(ctx), hc, shutdown_trigger=stop.wait)
        )
        try:
            yield binds[0]
        finally:
            stop.set()


async def until(condition: Callable[[], bool]) -> None:
    """Wait until ``condition()`` holds (a bound against hangs, not a timing assertion)."""
    with trio.fail_after(10):
        while not condition():
            await trio.sleep(0.005)


def change(n: int, *, title: str = "Daily weather", kind: str = "new") -> CatalogEvent:
    return CatalogEvent(kind, f"dn://did:key:z6MkX/d{n}", n, "did:key:z6MkX", title=title, at=n)


async def read_events(lines: AsyncIterator[str], count: int) -> list[tuple[str, str]]:
    decoder = SseDecoder()
    out: list[tuple[str, str]] = []
    async for line in lines:
        item = decoder.feed(line)
        if item is not None:
            out.append(item)
            if len(out) == count:
                break
    return out


async def test_events_arrive_in_order_and_disconnect_frees_the_watcher(tmp_path: Path) -> None:
    node = MemoryNode()
    async with serving(tmp_path, node) as url, httpx.AsyncClient(base_url=url) as http:
        async with http.stream(
            "POST", "/api/v0/catalog/watch", json={"q": "weather"}, headers=AUTH
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["cache-control"] == "no-cache"
            async with contextlib.aclosing(response.aiter_lines()) as lines:
                assert await lines.__anext__() == ": datanet catalog watch"
                assert node.feed.subscribers == 1
                node.feed.publish(change(1))
                node.feed.publish(change(2, title="Sales"))  # filtered out
                node.feed.publish(change(3, kind="updated"))
                await node.publish(node.make_descriptor("weather/daily", title="Weather"))
                await node.deprecate(node.make_dataset_id("weather/daily"), reason="old")
                got = await read_events(lines, 4)
        await until(lambda: node.feed.subscribers == 0)
    assert [name for name, _ in got] == ["new", "updated", "new", "withdrawn"]
    events = [parse_watch_event(name, data) for name, data in got]
    assert [e.sequence for e in events] == [1, 3, 1, 2]
    assert events[3].reason == "deprecated"
    assert events[3].dataset_id == f"dn://{node.org}/weather/daily"
    assert json.loads(got[0][1]) == change(1).to_json()


async def test_get_for_event_source_and_heartbeats(tmp_path: Path) -> None:
    node = MemoryNode()
    async with (
        serving(tmp_path, node, heartbeat=0.02) as url,
        httpx.AsyncClient(base_url=url) as http,
        http.stream("GET", "/api/v0/catalog/watch", params={"q": "rain"}, headers=AUTH) as r,
        contextlib.aclosing(r.aiter_lines()) as lines,
    ):
        assert r.status_code == 200
        seen: list[str] = []
        async for line in lines:
            seen.append(line)
            if seen.count(": keep-alive") == 2:
                break
        node.feed.publish(change(7, title="Rain gauges"))
        got = await read_events(lines, 1)
    assert seen[0] == ": datanet catalog watch"
    assert got[0][0] == "new"
    assert json.loads(got[0][1])["sequence"] == 7


async def test_a_watcher_that_falls_behind_gets_an_overflow_event(tmp_path: Path) -> None:
    node = MemoryNode(feed=CatalogFeed(buffer=2))
    async with (
        serving(tmp_path, node) as url,
        AsyncClient(base_url=url, token=TOKEN) as dn,
        contextlib.aclosing(dn.watch()) as events,
    ):
        first: list[WatchEvent] = []

        async def read_one() -> None:
            first.append(await events.__anext__())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_one)
            await until(lambda: node.feed.subscribers == 1)
            for n in range(1, 11):  # no checkpoint in between: the stream cannot keep up
                node.feed.publish(change(n))
        got = first + [await events.__anext__() for _ in range(2)]
        node.feed.publish(change(11))
        got.append(await events.__anext__())
    assert [(e.kind, e.sequence) for e in got[:2]] == [("new", 1), ("new", 2)]
    assert got[2].kind == "overflow"
    assert got[2].lost == 8
    assert (got[3].kind, got[3].sequence) == ("new", 11)


async def test_async_client_watch_ends_when_the_feed_closes(tmp_path: Path) -> None:
    node = MemoryNode()
    async with serving(tmp_path, node) as url, AsyncClient(base_url=url, token=TOKEN) as dn:
        got: list[WatchEvent] = []

        async def watch() -> None:
            async with contextlib.aclosing(dn.watch("daily")) as events:
                async for event in events:
                    got.append(event)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            await until(lambda: node.feed.subscribers == 1)
            node.feed.publish(change(1))
            node.feed.close()
    assert [e.sequence for e in got] == [1]
    assert node.feed.subscribers == 0


async def test_sync_client_watch_in_a_thread(tmp_path: Path) -> None:
    node = MemoryNode()
    async with serving(tmp_path, node) as url:
        got: list[WatchEvent] = []

        def watch() -> None:
            with Client(base_url=url, token=TOKEN) as dn:
                for event in dn.watch("weather", timeout=30):
                    got.append(event)
                    if len(got) == 2:
                        break  # closes the stream: the daemon frees the watcher

        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.to_thread.run_sync, watch)
            await until(lambda: node.feed.subscribers == 1)
            node.feed.publish(change(1))
            node.feed.publish(change(2, title="Sales"))
            node.feed.publish(change(3))
        await until(lambda: node.feed.subscribers == 0)
    assert [(e.kind, e.sequence, e.title) for e in got] == [
        ("new", 1, "Daily weather"),
        ("new", 3, "Daily weather"),
    ]
    assert got[0].fields["org"] == "did:key:z6MkX"


async def test_watch_errors_come_back_as_datanet_exceptions(tmp_path: Path) -> None:
    node = MemoryNode(feed=CatalogFeed(max_subscribers=1))
    async with (
        serving(tmp_path, node) as url,
        AsyncClient(base_url=url, token=TOKEN) as dn,
        node.feed.subscribe(),  # the one watcher allowed
    ):
        with pytest.raises(InvalidInput, match="too many catalog watchers"):
            await dn.watch().__anext__()
        with pytest.raises(InvalidInput):
            await dn.watch("x" * 600).__anext__()
    quiet = MemoryNode()
    async with serving(tmp_path, quiet) as url, AsyncClient(base_url=url, token=TOKEN) as dn:
        with pytest.raises(Timeout, match=r"within 0\.05 s"):
            async for _ in dn.watch(timeout=0.05):
                pass
        await until(lambda: quiet.feed.subscribers == 0)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["event: new", 'data: {"kind": "new"', "data: }", ""], [("new", '{"kind": "new"\n}')]),
        ([": comment", "", "data:x", "id: 5", "retry: 10", ""], [("message", "x")]),
        (["event: a", "", "event: b", "data: 1", ""], [("b", "1")]),
    ],
)
def test_sse_decoder(lines: list[str], expected: list[tuple[str, str]]) -> None:
    decoder = SseDecoder()
    assert [e for e in map(decoder.feed, lines) if e is not None] == expected


def test_malformed_events_are_api_errors() -> None:
    for name, data in [
        ("new", "not json"),
        ("new", "[1]"),
        ("new", '{"kind": "updated", "at": 1}'),
        ("new", '{"kind": "new", "at": 1}'),  # missing fields
        ("overflow", '{"kind": "overflow", "at": 1, "lost": "3"}'),
    ]:
        with pytest.raises(ApiError):
            parse_watch_event(name, data)
    future = parse_watch_event("moved", '{"kind": "moved", "at": 2, "to": "x"}')
    assert (future.kind, future.fields["to"]) == ("moved", "x")
    decoder = SseDecoder()
    for _ in range(1000):
        decoder.feed("data: " + "x" * 1024)
    with pytest.raises(ApiError):
        decoder.feed("data: " + "x" * 100_000)
