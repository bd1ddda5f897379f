"""End to end: two real daemons of two organizations, driven only through the CLI and the API.

Every step is a separate `datanet` process (init, org, certificate, trust, config,
node start, descriptor, publish, resolve, status, stop) or a plain HTTP request
to a daemon's control API. Nothing here imports the node.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def datanet_argv() -> list[str]:
    script = Path(sys.executable).parent / "datanet"
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli.main"]


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("DATANET_HOME", "DATANET_API_URL", "DATANET_API_TOKEN", "DATANET_PASSPHRASE"):
        env.pop(name, None)
    return env


def dn(home: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*datanet_argv(), "--data-dir", str(home), *args],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if ok:
        assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


def dn_json(home: Path, *args: str) -> Any:
    return json.loads(dn(home, "--json", *args).stdout)


@dataclass
class Daemon:
    home: Path
    org: str
    org_id: str = ""
    peer_id: str = ""
    proc: subprocess.Popen[str] | None = None
    api_url: str = ""
    stderr_lines: list[str] = field(default_factory=list)

    def token(self) -> str:
        return (self.home / "api.token").read_text().strip()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [*datanet_argv(), "--data-dir", str(self.home), "--json", "node", "start"],
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        if not ready:
            self.stop_hard()
            raise AssertionError(f"{self.org} daemon did not start: {self.proc.communicate()}")
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"{self.org} daemon exited: {self.proc.communicate()}")
        doc = json.loads(line)
        assert doc["peer_id"] == self.peer_id
        self.api_url = doc["api_url"]

    def api(self, path: str, **kw: Any) -> httpx.Response:
        headers = kw.pop("headers", {"authorization": f"Bearer {self.token()}"})
        return httpx.post(f"{self.api_url}/api/v0/{path}", headers=headers, timeout=30, **kw)

    def stop_hard(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def _provision(home: Path, org: str) -> Daemon:
    d = Daemon(home, org)
    dn(home, "init", "--no-passphrase")
    d.org_id = dn_json(home, "org", "create", org, "--no-passphrase")["org"]
    d.peer_id = dn_json(home, "id")["peer_id"]
    cert = home / "node.cert"
    dn(
        home,
        "org",
        "issue",
        "--org",
        org,
        "--role",
        "publisher",
        "--role",
        "gateway",
        "--out",
        str(cert),
    )
    dn(home, "cert", "install", str(cert))
    dn(home, "config", "set", "network.listen", "/ip4/127.0.0.1/tcp/0")
    dn(home, "config", "set", "api.address", "127.0.0.1:0")
    return d


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, Daemon]]:
    base = tmp_path_factory.mktemp("e2e")
    a = _provision(base / "a", "acme")
    b = _provision(base / "b", "globex")
    dn(a.home, "trust", "add", b.org_id, "--name", "globex")
    dn(b.home, "trust", "add", a.org_id, "--name", "acme")
    try:
        a.start()
        me = a.api("id").json()
        addrs = me["addrs"]
        assert addrs, "the node announces no address"
        # addresses never carry /p2p/; a bootstrap address names the peer it expects
        dn(b.home, "config", "set", "network.bootstrap", f"{addrs[0]}/p2p/{me['peer_id']}")
        b.start()
        yield a, b
    finally:
        a.stop_hard()
        b.stop_hard()


def _descriptor(d: Daemon, name: str, title: str, sequence: int) -> Path:
    toml = d.home / f"{name.replace('/', '-')}-{sequence}.toml"
    dn(d.home, "descriptor", "new", d.org, name, "--out", str(toml), "--force")
    text = toml.read_text()
    text = text.replace('title = "Untitled dataset"', f'title = "{title}"')
    text = text.replace("# sequence = 1 ", f"sequence = {sequence} #")
    toml.write_text(text)
    out = toml.with_suffix(".dnd")
    dn(d.home, "descriptor", "sign", str(toml), "--out", str(out), "--force")
    return out


def test_publish_on_one_org_resolve_from_the_other(net: tuple[Daemon, Daemon]) -> None:
    a, b = net
    did = f"dn://{a.org_id}/weather/daily"
    published = dn_json(a.home, "publish", str(_descriptor(a, "weather/daily", "Daily weather", 1)))
    assert published["dataset_id"] == did
    assert published["sequence"] == 1
    assert published["replicas"] >= 1

    found = dn_json(b.home, "resolve", did)
    assert found["descriptor"]["title"] == "Daily weather"
    assert found["certificate"]["org"] == a.org_id
    assert "Daily weather" in dn(b.home, "resolve", did).stdout

    # An update (higher sequence) on A is what B sees when it asks the network again.
    dn(a.home, "publish", str(_descriptor(a, "weather/daily", "Daily weather v2", 2)))
    again = dn_json(b.home, "resolve", did, "--refresh")
    assert again["sequence"] == 2
    assert again["descriptor"]["title"] == "Daily weather v2"
    found = dn_json(b.home, "search", "weather")
    assert [h["dataset_id"] for h in found["hits"]] == [did]


def test_status_peers_and_routing(net: tuple[Daemon, Daemon]) -> None:
    a, b = net
    status = dn_json(b.home, "node", "status")
    assert status["peer_id"] == b.peer_id
    assert status["org"] == b.org_id
    assert status["peers"] >= 1
    peers = dn_json(b.home, "peers")
    assert a.peer_id in [p["peer_id"] for p in peers]
    assert dn_json(b.home, "routing", "findpeer", a.peer_id)["addrs"]
    assert isinstance(dn_json(a.home, "routing", "stats"), dict)


def test_wrong_or_missing_token_is_401_and_changes_nothing(net: tuple[Daemon, Daemon]) -> None:
    a, _ = net
    config_before = (a.home / "config.toml").read_bytes()
    raw = _descriptor(a, "secret/data", "Never published", 1).read_bytes()
    for headers in ({}, {"authorization": "Bearer not-the-token-at-all-0000"}):
        r = a.api("config/set", json={"key": "log.level", "value": "debug"}, headers=headers)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "unauthorized"
        r = a.api(
            "publish",
            content=raw,
            headers={**headers, "content-type": "application/octet-stream"},
        )
        assert r.status_code == 401
        r = a.api("node/stop", headers=headers)
        assert r.status_code == 401
    assert (a.home / "config.toml").read_bytes() == config_before
    missing = dn(a.home, "resolve", f"dn://{a.org_id}/secret/data", ok=False)
    assert missing.returncode == 5
    assert dn_json(a.home, "node", "status")["peer_id"] == a.peer_id  # still running


def test_malformed_and_oversized_requests_are_clear_4xx(net: tuple[Daemon, Daemon]) -> None:
    a, _ = net
    auth = {"authorization": f"Bearer {a.token()}", "content-type": "application/json"}
    r = a.api("resolve", content=b'{"id": ', headers=auth)
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_json")
    r = a.api("resolve", content=json.dumps({"id": 7}).encode(), headers=auth)
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_request")
    r = a.api("publish", content=b"x" * 200_000, headers={**auth, "content-type": ""})
    assert (r.status_code, r.json()["error"]["code"]) == (413, "body_too_large")
    r = a.api("no/such/thing", headers=auth)
    assert (r.status_code, r.json()["error"]["code"]) == (404, "unknown_endpoint")
    spec = httpx.get(f"{a.api_url}/api/v0/openapi.json", timeout=10).json()
    assert spec["openapi"] == "3.1.0"


def test_non_loopback_api_is_refused_unless_allowed(tmp_path: Path) -> None:
    home = tmp_path / "c"
    dn(home, "init", "--no-passphrase")
    refused = dn(home, "config", "set", "api.address", "0.0.0.0:5080", ok=False)
    assert refused.returncode == 3
    assert "allow_remote" in refused.stderr
    (home / "config.toml").write_text('[api]\naddress = "0.0.0.0:0"\n')
    start = dn(home, "node", "start", ok=False)
    assert start.returncode == 3
    assert "allow_remote" in start.stderr
    assert not (home / "api.token").exists()


def test_stop_both(net: tuple[Daemon, Daemon]) -> None:
    for d in net:
        result = dn(d.home, "node", "stop")
        assert "stopped" in result.stdout
        assert d.proc is not None
        assert d.proc.wait(timeout=30) == 0
        _, err = d.proc.communicate()
        assert "daemon_stopped" in err
        for name in ("api.token", "api.url", "datanet.pid"):
            assert not (d.home / name).exists()
        gone = dn(d.home, "node", "status", ok=False)
        assert gone.returncode == 7
