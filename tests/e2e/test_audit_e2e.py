"""End to end: a real daemon's audit log, tampered with in its database, is caught by the CLI.

A node is provisioned with the CLI, its audit file (``audit.sqlite`` in the data
directory, where the node keeps its log) is seeded with entries through
``AuditLog``, the daemon is started and a few descriptors are published (the
node's own trail appends to the same log), and ``datanet audit verify`` answers
0. Then, for each of three cases, the daemon is stopped, one row of
``audit_entries`` is edited, deleted, or swapped with its neighbour with sqlite3,
the daemon is started again, and ``datanet audit verify`` exits 4 naming the first
bad entry.

The daemon must implement the audit methods of the node API (issue 11's node
trail); on a tree where it does not yet, the test is skipped, saying so.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from datanet.records.audit import AuditEntry
from datanet.store.audit import AuditLog

ROOT = Path(__file__).resolve().parents[2]
SEEDED = 6


def _node_has_audit() -> bool:
    from datanet.node.driver import Node

    return all(
        hasattr(Node, name)
        for name in ("audit_entries", "audit_head", "audit_verify", "audit_prove")
    )


pytestmark = pytest.mark.skipif(
    not _node_has_audit(), reason="the node does not implement the audit API yet (issue 11)"
)


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
        timeout=120,
        check=False,
    )
    if ok:
        assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


def dn_json(home: Path, *args: str, ok: bool = True) -> Any:
    return json.loads(dn(home, "--json", *args, ok=ok).stdout)


@dataclass
class Daemon:
    home: Path
    proc: subprocess.Popen[str] | None = None

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
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        if not ready or not self.proc.stdout.readline():
            self.kill()
            raise AssertionError(f"the daemon did not start: {self.proc.communicate()}")

    def stop(self) -> None:
        dn(self.home, "node", "stop")
        assert self.proc is not None
        self.proc.wait(timeout=60)
        self.proc.communicate()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def _provision(home: Path) -> Daemon:
    dn(home, "init", "--no-passphrase")
    dn(home, "org", "create", "acme", "--no-passphrase")
    cert = home / "node.cert"
    dn(home, "org", "issue", "--org", "acme", "--role", "publisher", "--out", str(cert))
    dn(home, "cert", "install", str(cert))
    dn(home, "config", "set", "network.listen", "/ip4/127.0.0.1/tcp/0")
    dn(home, "config", "set", "api.address", "127.0.0.1:0")
    return Daemon(home)


def _descriptor(home: Path, name: str) -> Path:
    toml = home / f"{name.replace('/', '-')}.toml"
    dn(home, "descriptor", "new", "acme", name, "--out", str(toml), "--force")
    out = toml.with_suffix(".dnd")
    dn(home, "descriptor", "sign", str(toml), "--out", str(out), "--force")
    return out


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A node whose log holds seeded entries and its own, verified intact, then stopped."""
    home = tmp_path_factory.mktemp("audit-e2e") / "node"
    daemon = _provision(home)
    with AuditLog(home / "audit.sqlite") as log:
        log.append_many(
            AuditEntry.create("approval", 1_750_000_000 + n, None, {"seed": n})
            for n in range(SEEDED)
        )
    try:
        daemon.start()
        for name in ("weather/daily", "weather/hourly", "rain/gauges"):
            dn(home, "publish", str(_descriptor(home, name)), ok=False)  # logged when it works
        entries = dn_json(home, "audit", "show", "--limit", "1000")
        assert [e["index"] for e in entries[:SEEDED]] == list(range(SEEDED))
        assert [e["details"] for e in entries[:SEEDED]] == [{"seed": n} for n in range(SEEDED)]
        dn_json(home, "audit", "head", "--fresh")
        report = dn_json(home, "audit", "verify")
        assert report["ok"] is True, report
        assert report["size"] >= SEEDED
        daemon.stop()
    finally:
        daemon.kill()
    return home


def _tampered(pristine: Path, tmp: Path, sql: str, *params: Any) -> Path:
    home = tmp / "node"
    shutil.copytree(pristine, home)
    for leftover in ("api.url", "api.token", "node.pid"):
        (home / leftover).unlink(missing_ok=True)
    with sqlite3.connect(home / "audit.sqlite") as db:
        db.execute(sql, params)
    return home


def _verify_names(home: Path, index: int, words: str) -> None:
    daemon = Daemon(home)
    try:
        daemon.start()
        r = dn(home, "audit", "verify", ok=False)
        assert r.returncode == 4, (r.stdout, r.stderr)
        assert f"first bad entry {index}" in r.stdout
        assert words in r.stdout
        doc = dn_json(home, "audit", "verify", ok=False)
        assert (doc["ok"], doc["first_bad_index"]) == (False, index)
        daemon.stop()
    finally:
        daemon.kill()


def test_an_edited_row_is_named(pristine: Path, tmp_path: Path) -> None:
    with sqlite3.connect(pristine / "audit.sqlite") as db:
        (raw,) = db.execute("SELECT entry FROM audit_entries WHERE idx = 3").fetchone()
    edited = bytes(raw).replace(b"seed", b"seeD")
    assert edited != bytes(raw)
    home = _tampered(pristine, tmp_path, "UPDATE audit_entries SET entry = ? WHERE idx = 3", edited)
    _verify_names(home, 3, "was edited")


def test_a_deleted_row_is_named(pristine: Path, tmp_path: Path) -> None:
    home = _tampered(pristine, tmp_path, "DELETE FROM audit_entries WHERE idx = 2")
    _verify_names(home, 2, "missing")


def test_swapped_rows_are_named(pristine: Path, tmp_path: Path) -> None:
    home = _tampered(pristine, tmp_path, "UPDATE audit_entries SET idx = -1 WHERE idx = 4")
    with sqlite3.connect(home / "audit.sqlite") as db:
        db.execute("UPDATE audit_entries SET idx = 4 WHERE idx = 1")
        db.execute("UPDATE audit_entries SET idx = 1 WHERE idx = -1")
    _verify_names(home, 1, "out of place")
