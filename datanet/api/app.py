"""The control API as an ASGI application (starlette), served by hypercorn's trio worker.

Request path, in order:

1. :class:`_Guard` (plain ASGI): ``GET``/``HEAD`` of the operator dashboard
   (``/``, ``/ui/…``: static files that hold no data, :mod:`datanet.api.ui`) is
   served without the token; every other request except ``GET /api/v0/openapi.json``
   (and ``GET /metrics`` when ``metrics.public`` is true) must carry
   ``Authorization: Bearer <token>`` (compared in constant time), else
   401 before anything else runs; a ``Content-Length`` above ``api.max_body_bytes``
   is refused with 413 before the body is read.
2. starlette's router: unknown paths answer 404 ``unknown_endpoint``, wrong methods
   405, both as JSON.
3. :func:`_endpoint`: reads the body (counting bytes, 413 past the limit even
   without a Content-Length), checks the Content-Type and the fields (of the JSON
   body, or an octet-stream operation's query parameters), runs the
   handler under ``api.request_timeout``, and turns every ``DatanetError`` into
   ``{"error": {"code", "message"}}`` with the status from
   :func:`datanet.api.errors.status_for`. Stream operations (``catalog/watch``) go
   through :func:`_stream_endpoint` instead: the same checks (GET takes the fields
   as query parameters), then :class:`datanet.api.sse.EventStream`, with no
   request timeout. JSON Lines operations (``audit/export``) go through
   :func:`_lines_endpoint`: the same checks, then a streamed ``application/x-ndjson``
   body. ``GET /metrics`` answers the node's and the API's metric families in the
   Prometheus text format (:func:`_metrics_endpoint`); JSON operations are timed
   into ``datanet_api_request_duration_seconds``.

Invariants:
* A request without the right token changes nothing and learns nothing but 401
  (or the dashboard's static files, which are the same for every node; ``/metrics``
  with ``metrics.public``: the metrics, which carry no ids nor keys).
* Every response body is JSON (but a stream operation's 200: server-sent events;
  ``/metrics``' 200: the Prometheus text format; the dashboard's files),
  including errors and unknown routes; an unexpected
  exception is logged with its traceback and answered with 500 ``internal_error``
  without details.
* The app uses anyio only (never trio directly), so it runs under hypercorn's trio
  worker in the daemon and under any ASGI test client.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from datanet.api.errors import (
    BodyTooLarge,
    InvalidJson,
    MethodNotAllowed,
    Unauthorized,
    UnknownEndpoint,
    UnsupportedMediaType,
    status_for,
)
from datanet.api.metrics import METRICS_CONTENT_TYPE, METRICS_PATH
from datanet.api.openapi import OPENAPI_PATH, openapi_document
from datanet.api.routes import (
    API_PREFIX,
    NDJSON,
    OPERATIONS,
    ApiContext,
    Operation,
    check_args,
    jsonable,
)
from datanet.api.sse import EventStream
from datanet.api.ui import Dashboard, is_ui_path
from datanet.errors import DatanetError, Timeout

__all__ = ["create_app", "error_response"]

log = logging.getLogger("datanet.api")


def error_response(exc: DatanetError, status: int | None = None) -> JSONResponse:
    """The JSON error response for ``exc``."""
    return JSONResponse(
        {"error": {"code": exc.code, "message": str(exc) or exc.code}},
        status_code=status_for(exc) if status is None else status,
        headers={"WWW-Authenticate": 'Bearer realm="datanet"'}
        if isinstance(exc, Unauthorized)
        else None,
    )


def _internal_error() -> JSONResponse:
    return JSONResponse(
        {"error": {"code": "internal_error", "message": "internal error; see the node's log"}},
        status_code=500,
    )


def _single_datanet_error(exc: BaseException) -> DatanetError | None:
    """The one DatanetError inside (nested) exception groups of one leaf, if that is all."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc if isinstance(exc, DatanetError) else None


class _Guard:
    """Bearer-token check and Content-Length limit in front of the whole app."""

    def __init__(
        self,
        app: ASGIApp,
        token: str,
        max_body_bytes: int,
        *,
        public_metrics: bool = False,
        ui: ASGIApp | None = None,
    ) -> None:
        if len(token) < 16:
            raise ValueError("the API token must be at least 16 characters")
        self._app = app
        self._ui = ui
        self._expected = f"Bearer {token}".encode("ascii")
        self._max_body = max_body_bytes
        self._public = {OPENAPI_PATH} | ({METRICS_PATH} if public_metrics else set())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        if scope["path"] in self._public and scope["method"] in ("GET", "HEAD"):
            await self._app(scope, receive, send)
            return
        method = scope["method"]
        if self._ui is not None and is_ui_path(scope["path"]) and method in ("GET", "HEAD"):
            await self._ui(scope, receive, send)
            return
        headers = dict(scope["headers"])  # last value wins on duplicates
        got = headers.get(b"authorization", b"")
        if not hmac.compare_digest(got, self._expected):
            message = "missing bearer token" if not got else "wrong bearer token"
            client = scope.get("client") or ("?", 0)
            log.info(
                "api_unauthorized",
                extra={"kv": {"path": scope["path"][:200], "client": client[0], "why": message}},
            )
            await error_response(Unauthorized(message))(scope, receive, send)
            return
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                await error_response(InvalidJson("bad Content-Length header"))(scope, receive, send)
                return
            if int(length) > self._max_body:
                await error_response(
                    BodyTooLarge(f"the body is {int(length)} bytes; the limit is {self._max_body}")
                )(scope, receive, send)
                return
        await self._app(scope, receive, send)


async def _read_body(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async with contextlib.aclosing(request.stream()) as stream:
        async for chunk in stream:
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(f"the body is larger than {limit} bytes")
            chunks.append(chunk)
    return b"".join(chunks)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _check_media(op: Operation, media: str) -> None:
    """Refuse a Content-Type other than the endpoint's (a missing one is accepted)."""
    if op.body == "json":
        if media not in ("", "application/json") and not media.endswith("+json"):
            raise UnsupportedMediaType(f"{op.path} takes application/json, got {media[:80]}")
    elif media not in ("", "application/octet-stream"):
        raise UnsupportedMediaType(f"{op.path} takes application/octet-stream, got {media[:80]}")


def _decode_json_body(body: bytes) -> Any:
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise InvalidJson(f"the body is not valid JSON: {str(exc)[:200]}") from None


def _query_args(op: Operation, request: Request) -> dict[str, Any]:
    """The query parameters of an octet-stream operation, booleans as JSON values."""
    args: dict[str, Any] = dict(request.query_params)
    for f in op.fields:
        if f.schema.get("type") == "boolean" and f.name in args:
            text = args[f.name].lower()
            args[f.name] = {"true": True, "1": True, "false": False, "0": False}.get(text, text)
    return args


def _endpoint(ctx: ApiContext, op: Operation) -> Any:
    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            body = await _read_body(request, ctx.max_body_bytes)
            _check_media(op, _media_type(request))
            if op.body == "json":
                args, payload = check_args(op.fields, _decode_json_body(body)), b""
            else:  # the body is the payload; the fields (if any) come as query parameters
                args, payload = check_args(op.fields, _query_args(op, request)), body
            try:
                with anyio.fail_after(ctx.request_timeout):
                    result = await op.handler(ctx, args, payload)
            except TimeoutError:
                raise Timeout(
                    f"{op.path} did not finish within api.request_timeout "
                    f"({ctx.request_timeout:g} s)"
                ) from None
            status = 200
            return JSONResponse(result)
        except Exception as exc:
            err = _single_datanet_error(exc)
            if err is None:
                log.exception("api_internal_error", extra={"kv": {"path": op.path}})
                return _internal_error()
            response = error_response(err)
            status = response.status_code
            return response
        finally:
            elapsed = time.perf_counter() - started
            ctx.metrics.observe(op.path.lstrip("/"), status, elapsed)
            log.log(
                logging.DEBUG if status < 400 else logging.INFO,
                "api_request",
                extra={"kv": {"path": op.path, "status": status, "ms": round(elapsed * 1000, 1)}},
            )

    return endpoint


def _line(doc: Any) -> bytes:
    return (json.dumps(doc, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")


def _lines_endpoint(ctx: ApiContext, op: Operation) -> Any:
    """A JSON Lines operation (``audit/export``): the JSON checks, then one object per line.

    The first line is produced before answering, so an error there is a normal JSON
    error response; an error later ends the stream with an ``{"error": …}`` line.
    """
    opener = op.lines
    assert opener is not None

    async def endpoint(request: Request) -> Response:
        try:
            body = await _read_body(request, ctx.max_body_bytes)
            _check_media(op, _media_type(request))
            args = check_args(op.fields, _decode_json_body(body))
            items = opener(ctx, args)
            try:
                first = await anext(items)
            except StopAsyncIteration:
                return Response(b"", media_type=NDJSON)
        except Exception as exc:
            err = _single_datanet_error(exc)
            if err is None:
                log.exception("api_internal_error", extra={"kv": {"path": op.path}})
                return _internal_error()
            return error_response(err)

        async def produce() -> AsyncIterator[bytes]:
            try:
                yield _line(first)
                async for item in items:
                    yield _line(item)
            except DatanetError as exc:
                yield _line({"error": {"code": exc.code, "message": str(exc) or exc.code}})
            finally:
                await items.aclose()  # type: ignore[attr-defined]

        return StreamingResponse(produce(), media_type=NDJSON)

    return endpoint


def _stream_endpoint(ctx: ApiContext, op: Operation) -> Any:
    """A stream operation (server-sent events): POST with JSON, or GET/HEAD with a query."""
    opener = op.stream
    assert opener is not None

    async def endpoint(request: Request) -> Any:
        try:
            if request.method == "POST":
                body = await _read_body(request, ctx.max_body_bytes)
                _check_media(op, _media_type(request))
                args = check_args(op.fields, _decode_json_body(body))
            else:
                args = check_args(op.fields, dict(request.query_params))
        except DatanetError as exc:
            return error_response(exc)
        return EventStream(
            lambda: opener(ctx, args),
            render=lambda event: jsonable(event.to_json()),
            heartbeat=ctx.heartbeat_interval,
            on_error=error_response,
            path=op.path,
            head=request.method == "HEAD",
        )

    return endpoint


def _metrics_endpoint(ctx: ApiContext) -> Any:
    """``GET /metrics``: the node's families, then the API's own (Prometheus text 0.0.4)."""

    async def endpoint(request: Request) -> Response:
        try:
            body = ctx.node.metrics_text() + ctx.metrics.render()
        except Exception:
            log.exception("api_internal_error", extra={"kv": {"path": METRICS_PATH}})
            return _internal_error()
        return Response(body, media_type=METRICS_CONTENT_TYPE)

    return endpoint


async def _http_exception(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException) and exc.status_code == 405:
        response = error_response(MethodNotAllowed(f"{request.url.path[:200]} accepts POST only"))
        response.headers["Allow"] = (exc.headers or {}).get("Allow", "POST")
        return response
    if isinstance(exc, HTTPException) and exc.status_code == 404:
        return error_response(UnknownEndpoint(f"no endpoint {request.url.path[:200]}"))
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    return JSONResponse(
        {"error": {"code": "http_error", "message": f"HTTP {status}"}}, status_code=status
    )


def create_app(ctx: ApiContext) -> ASGIApp:
    """The control API for ``ctx.node``, guarded by ``ctx.token``.

    Raises:
        ValueError: ``ctx.token`` is shorter than 16 characters.
    """
    spec = json.dumps(openapi_document()).encode("utf-8")

    async def openapi(request: Request) -> Response:
        return Response(spec, media_type="application/json")

    routes = [
        Route(f"{API_PREFIX}{op.path}", _endpoint(ctx, op), methods=["POST"])
        for op in OPERATIONS
        if op.stream is None and op.lines is None
    ]
    routes += [
        Route(f"{API_PREFIX}{op.path}", _lines_endpoint(ctx, op), methods=["POST"])
        for op in OPERATIONS
        if op.lines is not None
    ]
    routes += [
        Route(f"{API_PREFIX}{op.path}", _stream_endpoint(ctx, op), methods=["GET", "POST"])
        for op in OPERATIONS
        if op.stream is not None
    ]
    routes.append(Route(OPENAPI_PATH, openapi, methods=["GET"]))
    routes.append(Route(METRICS_PATH, _metrics_endpoint(ctx), methods=["GET"]))
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_exception})
    app.router.redirect_slashes = False
    return _Guard(
        app, ctx.token, ctx.max_body_bytes, public_metrics=ctx.metrics_public, ui=Dashboard()
    )
