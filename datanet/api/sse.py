"""Server-sent events (``text/event-stream``) for the control API's stream operations.

:class:`EventStream` is the ASGI response of ``catalog/watch``: it opens the events
(a subscription), answers 200 and writes one ``event: <kind>`` / ``data: <JSON>``
block per event, a comment line every ``heartbeat`` seconds so that proxies keep the
connection open, and stops when the client disconnects or the events end.

Invariants:
* The events are opened *inside* the response, so a refused subscription (too many
  watchers) becomes a normal JSON error response, and a subscription is always
  closed when the response ends, however it ends (disconnect, cancellation, error).
* One event is one ``data:`` line: the JSON is rendered without newlines.
* Writes are serialized (the heartbeat and the events share one lock); no timeout
  applies to the stream itself (``api.request_timeout`` is for JSON calls).
* anyio only, like the rest of the app.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datanet.api._node_protocol import CatalogEventLike
from identity.errors import DatanetError

__all__ = ["EVENT_STREAM", "EventStream", "comment", "encode_event"]

EVENT_STREAM = "text/event-stream"
log = logging.getLogger("datanet.api")

Opener = Callable[[], AbstractAsyncContextManager[AsyncIterator[CatalogEventLike]]]


def encode_event(kind: str, data: Any) -> bytes:
    """One SSE block: ``event: kind``, ``data: <compact JSON>``, blank line."""
    name = "".join(c for c in kind if c not in "\r\n") or "message"
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return f"event: {name}\ndata: {text}\n\n".encode()


def comment(text: str) -> bytes:
    """An SSE comment line (ignored by clients, keeps the connection busy)."""
    return f": {text.replace(chr(10), ' ').replace(chr(13), ' ')}\n\n".encode()


class EventStream:
    """The ASGI response streaming the events that ``open_events`` yields.

    Args:
        open_events: opens the events (may raise ``DatanetError``: answered as JSON).
        render: an event's JSON-safe ``data``.
        heartbeat: seconds between keep-alive comments.
        on_error: the JSON error response for a ``DatanetError`` raised on opening.
        path: for the log.
        head: a ``HEAD`` request: headers only.
    """

    def __init__(
        self,
        open_events: Opener,
        *,
        render: Callable[[CatalogEventLike], Any],
        heartbeat: float,
        on_error: Callable[[DatanetError], ASGIApp],
        path: str,
        head: bool = False,
    ) -> None:
        self._open = open_events
        self._render = render
        self._heartbeat = heartbeat
        self._on_error = on_error
        self._path = path
        self._head = head
        self.sent = 0
        self._started = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the stream until the client leaves or the events end."""
        started = time.perf_counter()
        try:
            async with self._open() as events:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [
                            (b"content-type", b"text/event-stream; charset=utf-8"),
                            (b"cache-control", b"no-cache"),
                            (b"x-accel-buffering", b"no"),
                        ],
                    }
                )
                self._started = True
                if self._head:
                    await send({"type": "http.response.body", "body": b""})
                    return
                await self._stream(events, receive, send)
        except DatanetError as exc:
            if self._started:
                raise
            await self._on_error(exc)(scope, receive, send)
        finally:
            log.debug(
                "api_stream",
                extra={
                    "kv": {
                        "path": self._path,
                        "events": self.sent,
                        "s": round(time.perf_counter() - started, 3),
                    }
                },
            )

    async def _stream(
        self, events: AsyncIterator[CatalogEventLike], receive: Receive, send: Send
    ) -> None:
        lock = anyio.Lock()
        ended = False

        async with anyio.create_task_group() as tg:

            async def write(chunk: bytes) -> None:
                async with lock:
                    try:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    except OSError:  # the connection is gone: as a disconnect
                        tg.cancel_scope.cancel()

            async def until_disconnect() -> None:
                while True:
                    message: Message = await receive()
                    if message["type"] == "http.disconnect":
                        tg.cancel_scope.cancel()
                        return

            async def heartbeats() -> None:
                while True:
                    await anyio.sleep(self._heartbeat)
                    await write(comment("keep-alive"))

            async def forward() -> None:
                nonlocal ended
                async for event in events:
                    await write(encode_event(event.kind, self._render(event)))
                    self.sent += 1
                ended = True
                tg.cancel_scope.cancel()

            tg.start_soon(until_disconnect)
            await write(comment("datanet catalog watch"))
            tg.start_soon(heartbeats)
            tg.start_soon(forward)
        if ended:  # the events ended (the node stops): finish the response properly
            async with lock:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
