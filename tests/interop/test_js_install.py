"""Installing the js peer: a failing ``npm ci`` is an error that says why, and leaves nothing."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from datanet.testing.jspeer import JsPeerError, install_js_peer, js_peer_missing

JS_DIR = Path(__file__).parent / "js"

pytestmark = pytest.mark.skipif(js_peer_missing() is not None, reason=str(js_peer_missing()))


def test_a_lockfile_out_of_step_fails_with_npms_words(tmp_path: Path) -> None:
    source = tmp_path / "js"
    shutil.copytree(JS_DIR, source)
    package = json.loads((source / "package.json").read_text())
    package["dependencies"]["libp2p"] = "2.9.0"  # no longer what the lockfile says
    (source / "package.json").write_text(json.dumps(package))
    cache = tmp_path / "cache"
    with pytest.raises(JsPeerError, match="npm ci failed") as failed:
        install_js_peer(source, cache)
    assert "does not satisfy libp2p@2.9.0" in str(failed.value)  # npm's own words are kept
    assert list(cache.iterdir()) == []  # no half-installed directory is ever reused


def test_an_installation_is_reused_and_keyed_by_the_lockfile(tmp_path: Path) -> None:
    source = tmp_path / "js"
    shutil.copytree(JS_DIR, source)
    cache = tmp_path / "cache"
    target = cache / hashlib.sha256((source / "package-lock.json").read_bytes()).hexdigest()[:16]
    target.mkdir(parents=True)
    (target / ".installed").write_text("ok\n")  # a finished installation's marker
    assert install_js_peer(source, cache) == target  # reused: npm never ran (no node_modules)
    assert not (target / "node_modules").exists()
    assert (target / "peer.mjs").read_bytes() == (source / "peer.mjs").read_bytes()
    assert [p.name for p in cache.iterdir()] == [target.name]
