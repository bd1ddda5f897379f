"""The operator dashboard: static files served by the control API at ``/ui/``.

:class:`Dashboard` is a plain ASGI app that serves the page (HTML, vanilla JS and
CSS shipped in this package, no build step, nothing loaded from outside the node).
The page itself holds no data: every figure it shows comes from the ``/api/v0``
operations, called by the browser with ``Authorization: Bearer <token>``.

Invariants:
* Only the files named in :data:`ASSETS`, read once when the app is created, are
  ever served; no file-system path is built from a request, so nothing else can be
  reached (``/ui/../x`` is a 404).
* GET and HEAD only; anything else is a JSON 405. ``/`` and ``/ui`` redirect to ``/ui/``.
* Every answer carries a strict Content-Security-Policy (:data:`CSP`: ``default-src
  'self'``, no inline script or style, no framing), ``nosniff`` and ``no-referrer``.
* The shell is served without the token (it holds no data); the API behind it is not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

from starlette.types import Receive, Scope, Send

__all__ = ["ASSETS", "CSP", "MAX_ASSET_BYTES", "UI_PATH", "Asset", "Dashboard", "is_ui_path"]

UI_PATH = "/ui/"
"""Where the dashboard is served."""

ASSETS: Mapping[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
"""The files served, by name, with their media types."""

MAX_ASSET_BYTES = 256 * 1024
"""Bound on one asset's size (checked when the app is created)."""

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
"""The Content-Security-Policy of every dashboard response."""

_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode("ascii")),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-cache"),
)


def is_ui_path(path: str) -> bool:
    """True for the paths the dashboard answers: ``/``, ``/ui`` and ``/ui/…``."""
    return path in ("/", "/ui") or path.startswith(UI_PATH)


@dataclass(frozen=True)
class Asset:
    """One served file."""

    body: bytes
    media_type: str


def _load() -> dict[str, Asset]:
    root = resources.files(__name__)
    out = {}
    for name, media_type in ASSETS.items():
        body = root.joinpath(name).read_bytes()
        if len(body) > MAX_ASSET_BYTES:
            raise ValueError(f"dashboard asset {name} is {len(body)} bytes (> {MAX_ASSET_BYTES})")
        out[name] = Asset(body, media_type)
    return out


class Dashboard:
    """The ASGI app serving :data:`ASSETS` under :data:`UI_PATH`."""

    def __init__(self) -> None:
        self._assets = _load()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        if method not in ("GET", "HEAD"):
            await _send(
                send,
                405,
                _error("method_not_allowed", "the dashboard accepts GET only"),
                "application/json",
                extra=((b"allow", b"GET, HEAD"),),
            )
            return
        if path in ("/", "/ui"):
            await _send(send, 308, b"", "text/plain", extra=((b"location", UI_PATH.encode()),))
            return
        name = path[len(UI_PATH) :] or "index.html"
        asset = self._assets.get(name)
        if asset is None:
            body = _error("unknown_endpoint", f"no dashboard file {path[:200]}")
            await _send(send, 404, body, "application/json")
            return
        await _send(
            send,
            200,
            b"" if method == "HEAD" else asset.body,
            asset.media_type,
            length=len(asset.body),
        )


def _error(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode("utf-8")


async def _send(
    send: Send,
    status: int,
    body: bytes,
    media_type: str,
    *,
    length: int | None = None,
    extra: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    headers = [
        (b"content-type", media_type.encode("ascii")),
        (b"content-length", str(len(body) if length is None else length).encode("ascii")),
        *_HEADERS,
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
