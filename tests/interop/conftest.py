"""js-libp2p interop: a stock js-libp2p peer (``js/peer.mjs``) against real datanet nodes.

The peer's npm packages are pinned in ``js/package-lock.json`` and installed once
with ``npm ci`` into ``~/.cache/datanet/interop/<lockfile hash>/``. Without
``node`` on PATH these tests are skipped. With it, an old Node.js, a missing
``npm`` (when nothing is installed yet) or a failing ``npm ci`` skip them too,
except in CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from datanet.errors import DatanetError
from datanet.testing.jspeer import JsPeer, install_js_peer, js_peer_missing, open_js_peer

JS_DIR = Path(__file__).parent / "js"
MIN_NODE = 20


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the js-libp2p interop tests: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def js_peer_dir() -> Path:
    """The installed js peer (``npm ci`` once per lockfile)."""
    if shutil.which("node") is None:  # a skip, even in CI
        pytest.skip(f"{js_peer_missing()}; skipping the js-libp2p interop tests")
    version = subprocess.run(
        ["node", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    found = re.match(r"v(\d+)\.", version)
    major = int(found.group(1)) if found else 0
    if major < MIN_NODE:
        _skip_or_fail(f"js-libp2p interop needs Node.js {MIN_NODE} or newer, found {version!r}")
    try:
        return install_js_peer(JS_DIR)
    except (DatanetError, OSError, subprocess.TimeoutExpired) as exc:
        _skip_or_fail(f"could not install the js peer's npm packages: {exc}")
        raise  # unreachable: skip and fail raise


@pytest.fixture
async def js_peer(js_peer_dir: Path) -> AsyncIterator[JsPeer]:
    """A running js peer, killed after the test."""
    async with open_js_peer(js_peer_dir) as peer:
        yield peer
