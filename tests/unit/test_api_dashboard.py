"""The dashboard's static files at /ui/: served without the token, nothing else is.

In-process (httpx ASGI transport) over the in-memory node, as test_api_http.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from datanet.api.app import create_app
from datanet.api.routes import ApiContext
from datanet.api.ui import ASSETS, CSP
from datanet.node.config import Config, ConfigFile
from datanet.testing.doubles import MemoryNode

TOKEN = "dashboard-token-0123456789"
UI_DIR = Path(__file__).resolve().parents[2] / "datanet" / "api" / "ui"


@pytest.fixture
def client(tmp_path: Path) -> httpx.AsyncClient:
    ctx = ApiContext(
        MemoryNode(), ConfigFile(tmp_path / "c.toml"), Config.defaults(), lambda: None, TOKEN
    )
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(ctx)), base_url="http://127.0.0.1:5080"
    )


@pytest.mark.parametrize("name", ["", "index.html", "app.js", "style.css"])
async def test_assets_are_served_without_the_token_with_a_strict_csp(
    client: httpx.AsyncClient, name: str
) -> None:
    async with client:
        r = await client.get(f"/ui/{name}")
    assert r.status_code == 200
    assert r.content == (UI_DIR / (name or "index.html")).read_bytes()
    assert r.headers["content-type"] == ASSETS[name or "index.html"]
    assert r.headers["content-security-policy"] == CSP
    assert "default-src 'self'" in CSP
    assert "unsafe" not in CSP
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize("path", ["/", "/ui"])
async def test_root_redirects_to_the_dashboard(client: httpx.AsyncClient, path: str) -> None:
    async with client:
        r = await client.get(path)
    assert r.status_code == 308
    assert r.headers["location"] == "/ui/"


@pytest.mark.parametrize(
    "path", ["/ui/..%2F__init__.py", "/ui/__init__.py", "/ui/%2e%2e/app.py", "/ui/nope.js"]
)
async def test_nothing_but_the_assets(client: httpx.AsyncClient, path: str) -> None:
    async with client:
        r = await client.get(path)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "unknown_endpoint"


async def test_only_get_and_head(client: httpx.AsyncClient) -> None:
    async with client:
        head = await client.head("/ui/app.js")
        post = await client.post("/ui/app.js")
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["content-length"]) == len((UI_DIR / "app.js").read_bytes())
    # a POST is no dashboard request: the token is asked for, as for any other path
    assert post.status_code == 401


async def test_the_api_still_needs_the_token(client: httpx.AsyncClient) -> None:
    async with client:
        refused = await client.post("/api/v0/id")
        ok = await client.post("/api/v0/id", headers={"authorization": f"Bearer {TOKEN}"})
    assert refused.status_code == 401
    assert ok.status_code == 200


def test_the_page_loads_nothing_from_elsewhere_and_writes_no_html() -> None:
    html = (UI_DIR / "index.html").read_text()
    js = (UI_DIR / "app.js").read_text()
    css = (UI_DIR / "style.css").read_text()
    for text in (html, js, css):
        assert not re.search(r"https?://", text), "no absolute URL: nothing from outside the node"
        assert "@import" not in text
    assert not re.search(r"<script>|<style>| style=| on[a-z]+=", html), "nothing inline (CSP)"
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(", js)
