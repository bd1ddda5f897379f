"""CLI: watch, deprecate, catalog stats|sync against a real daemon process (in-memory node).

``datanet watch`` runs in its own process (it streams until Ctrl-C), so the test
can interrupt it with a real SIGINT; the others run in-process with CliRunner.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.main import datanet
from datanet.client import Client
from datanet.node.paths import API_URL_FILE
from datanet.testing.doubles import MemoryNode
from identity.keys import KeyPair

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "DATANET_API_URL": "", "DATANET_API_TOKEN": ""}


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "config.toml").write_text('[api]\naddress = "127.0.0.1:0"\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "datanet.testing.memory_daemon", str(tmp_path)],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 15
        while not (tmp_path / API_URL_FILE).exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        yield tmp_path
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def run(data_dir: Path, *args: str) -> Result:
    env = {"DATANET_API_URL": "", "DATANET_API_TOKEN": ""}
    return CliRunner().invoke(datanet, ["--data-dir", str(data_dir), *args], env=env)


def run_json(data_dir: Path, *args: str) -> object:
    result = run(data_dir, "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


class Watcher:
    """``datanet watch`` in a child process; its stdout lines arrive on a queue."""

    def __init__(self, data_dir: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "--data-dir", str(data_dir), "watch", *args],
            cwd=ROOT,
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None
        stdout = self.proc.stdout
        threading.Thread(target=lambda: [self.lines.put(x) for x in stdout], daemon=True).start()

    def line(self) -> str:
        return self.lines.get(timeout=30).rstrip("\n")  # a bound against hangs only

    def interrupt(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, err


def wait_for_watchers(data_dir: Path, count: int) -> None:
    with Client(data_dir) as dn:
        deadline = time.monotonic() + 30
        while dn.catalog_stats()["watchers"] != count:
            assert time.monotonic() < deadline
            time.sleep(0.02)


def test_watch_shows_changes_until_ctrl_c(
    running: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    node = MemoryNode()  # same fixed keys as the daemon's node
    did = f"dn://{node.org}/weather/daily"
    as_json = Watcher(running, "--json")
    as_text = Watcher(running, "daily")
    try:
        wait_for_watchers(running, 2)
        with Client(running) as dn:
            dn.publish(node.make_descriptor("sales/q1", title="Quarterly sales"))
            dn.publish(node.make_descriptor("weather/daily", title="Daily weather"))
        deprecated = run(running, "deprecate", did, "--reason", "replaced by weather/hourly")
        assert deprecated.exit_code == 0, deprecated.output
        docs = [json.loads(as_json.line()) for _ in range(3)]
        text = [as_text.line() for _ in range(2)]
    finally:
        json_exit, json_err = as_json.interrupt()
        text_exit, text_err = as_text.interrupt()
    assert [(d["kind"], d["sequence"]) for d in docs] == [("new", 1), ("new", 1), ("withdrawn", 2)]
    assert docs[1]["dataset_id"] == did
    assert docs[2]["reason"] == "deprecated"
    assert docs[0]["title"] == "Quarterly sales"
    assert " new " in text[0]
    assert did in text[0]
    assert "Daily weather" in text[0]
    assert " withdrawn " in text[1]
    assert "deprecated" in text[1]
    assert (json_exit, text_exit) == (0, 0)
    assert "Traceback" not in json_err + text_err
    assert "watching catalog changes matching 'daily'" in text_err
    assert json_err == ""
    wait_for_watchers(running, 0)


def test_deprecate_and_catalog_commands(running: Path) -> None:
    node = MemoryNode()
    did = f"dn://{node.org}/weather/daily"
    with Client(running) as dn:
        dn.publish(node.make_descriptor("weather/daily"))
        dn.publish(node.make_descriptor("sales/q1"))
    stats = run_json(running, "catalog", "stats")
    assert isinstance(stats, dict)
    assert stats["datasets"] == 2
    shown = run(running, "catalog", "stats")
    assert shown.exit_code == 0, shown.output
    assert "gossip.mesh_peers" in shown.output

    result = run(running, "deprecate", did)
    assert result.exit_code == 0, result.output
    assert f"deprecated {did} (sequence 2) on 0 peers" in result.output
    assert run_json(running, "catalog", "stats")["withdrawn"] == 1  # type: ignore[index]
    again = run(running, "--json", "deprecate", did)
    assert again.exit_code == 5
    assert json.loads(again.stderr)["error"]["code"] == "not_found"
    assert run(running, "deprecate", "garbage").exit_code == 3
    doc = run_json(running, "deprecate", f"dn://{node.org}/sales/q1", "--reason", "old")
    assert doc == {
        "dataset_id": f"dn://{node.org}/sales/q1",
        "sequence": 2,
        "replicas": 0,
        "acked": 0,
        "target": 0,
        "pending": 0,
    }

    assert run_json(running, "catalog", "sync") == []
    assert "no peer to sync with" in run(running, "catalog", "sync", "--peers", "5").output
    unknown = KeyPair.from_seed(b"\x09" * 32).peer_id  # not connected to the daemon
    missing = run(running, "catalog", "sync", "--peer", str(unknown))
    assert missing.exit_code == 5
    assert "not connected" in missing.output
    assert run(running, "catalog", "sync", "--peer", "12D3KooWnope").exit_code == 3
    assert run(running, "catalog", "sync", "--peers", "0").exit_code == 2


def test_commands_without_a_daemon_exit_7(tmp_path: Path) -> None:
    for args in (["watch"], ["deprecate", "dn://x/y"], ["catalog", "stats"], ["catalog", "sync"]):
        result = run(tmp_path, *args)
        assert result.exit_code == 7, (args, result.output)
        assert "datanet node start" in result.output


def test_stopping_the_daemon_ends_watch_streams_at_once(running: Path) -> None:
    """The daemon closes the feed when it stops: watchers end (exit 7) instead of holding
    the shutdown for hypercorn's graceful timeout."""
    watcher = Watcher(running, "--json")
    wait_for_watchers(running, 1)
    stopped = run(running, "node", "stop")
    assert stopped.exit_code == 0, stopped.output
    _, err = watcher.proc.communicate(timeout=30)
    assert watcher.proc.returncode == 7
    assert json.loads(err)["error"] == {
        "code": "network_error",
        "message": "the daemon ended the stream (it is stopping)",
    }
