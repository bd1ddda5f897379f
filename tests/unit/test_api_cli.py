"""The CLI commands that talk to the daemon, against a real daemon process (in-memory node).

Every command is run with and without --json; exit codes follow docs/cli.md.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.main import datanet
from datanet.node.config import load_config
from datanet.node.paths import API_URL_FILE, PID_FILE, TOKEN_FILE
from datanet.testing.doubles import MemoryNode

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "config.toml").write_text('[api]\naddress = "127.0.0.1:0"\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "datanet.testing.memory_daemon", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
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


def test_commands_against_a_running_daemon(
    running: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    files = tmp_path_factory.mktemp("files")
    node = MemoryNode()  # same fixed keys as the daemon's node: its certificate is trusted there
    dnd = files / "weather.dnd"
    dnd.write_bytes(node.make_descriptor("weather/daily", title="Daily weather"))
    did = f"dn://{node.org}/weather/daily"

    assert run_json(running, "peers") == []
    assert "no peers" in run(running, "peers").output

    published = run(running, "publish", str(dnd))
    assert published.exit_code == 0, published.output
    assert f"published {did} (sequence 1) on 0 peers" in published.output
    assert run_json(running, "publish", str(dnd)) == {
        "dataset_id": did,
        "sequence": 1,
        "replicas": 0,
        "kind": "descriptor",
        "key": "/dn/" + did.removeprefix("dn://"),
        "acked": 0,
        "target": 0,
        "pending": 0,
    }

    shown = run(running, "resolve", did)
    assert shown.exit_code == 0, shown.output
    assert "Daily weather" in shown.output
    assert "(test-org)" in shown.output
    doc = run_json(running, "resolve", did, "--out", str(files / "copy.dnd"))
    assert isinstance(doc, dict)
    assert base64.b64decode(doc["raw"]) == dnd.read_bytes()
    assert (files / "copy.dnd").read_bytes() == dnd.read_bytes()

    found = run_json(running, "search", "daily", "weather")
    assert isinstance(found, dict)
    assert [h["dataset_id"] for h in found["hits"]] == [did]
    assert found["total"] == 1
    assert "Daily weather" in run(running, "search", "weather").output
    assert "no datasets found" in run(running, "search", "snow").output

    key = f"/dn/{node.org}/weather/daily"
    got = run_json(running, "routing", "get", key)
    assert isinstance(got, dict)
    assert base64.b64decode(got["value"]) == dnd.read_bytes()
    assert run_json(running, "routing", "put", key, str(dnd)) == {"key": key, "replicas": 0}
    stats = run_json(running, "routing", "stats")
    assert isinstance(stats, dict)
    assert stats["records"] == 1
    assert "records" in run(running, "routing", "stats").output
    assert run_json(running, "routing", "findprovs", key) == []

    status = run_json(running, "node", "status")
    assert isinstance(status, dict)
    assert status["peer_id"] == str(node.peer_id)
    assert "running:   yes" in run(running, "node", "status").output


def test_faceted_search_pages_and_json(
    running: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    files = tmp_path_factory.mktemp("files")
    node = MemoryNode()
    for i in range(5):
        dnd = files / f"d{i}.dnd"
        dnd.write_bytes(
            node.make_descriptor(
                f"rain/d{i}",
                title=f"Rain gauge {i}",
                keywords=("rain", "even" if i % 2 == 0 else "odd"),
                license="CC-BY-4.0" if i < 3 else "ODbL",
                temporal=(1_700_000_000 + i * 86400, 1_700_000_000 + i * 86400 + 3600),
            )
        )
        assert run(running, "publish", str(dnd)).exit_code == 0
    doc = run_json(running, "search", "rain", "--keyword", "even", "--license", "cc-by-4.0")
    assert isinstance(doc, dict)
    assert sorted(h["title"] for h in doc["hits"]) == ["Rain gauge 0", "Rain gauge 2"]
    assert doc["total"] == 2
    assert {f["value"]: f["count"] for f in doc["facets"]["keyword"]} == {"rain": 2, "even": 2}
    assert doc["next_cursor"] is None
    # pages: every hit once
    seen: list[str] = []
    args = ["search", "rain", "--limit", "2"]
    while True:
        page = run_json(running, *args)
        assert isinstance(page, dict)
        seen += [h["title"] for h in page["hits"]]
        if page["next_cursor"] is None:
            break
        args = ["search", "rain", "--limit", "2", "--cursor", page["next_cursor"]]
    assert sorted(seen) == [f"Rain gauge {i}" for i in range(5)]
    # dates: YYYY-MM-DD (the end of that day for --to) or Unix seconds
    # (gauge i covers an hour from 1_700_000_000 + i days: 2023-11-14T22:13:20Z for i = 0)
    dated = run_json(running, "search", "--from", "2023-11-14", "--to", "1700086400")
    assert sorted(h["title"] for h in dated["hits"]) == ["Rain gauge 0", "Rain gauge 1"]  # type: ignore[index]
    dated = run_json(running, "search", "--from", "1700003600", "--to", "2023-11-14")
    assert [h["title"] for h in dated["hits"]] == ["Rain gauge 0"]  # type: ignore[index]
    human = run(running, "search", "rain", "--limit", "2", "--access", "request")
    assert human.exit_code == 0, human.output
    assert "2 of 5 datasets matching 'rain'" in human.output
    assert "next page: --cursor " in human.output
    assert "cc-by-4.0" in human.output  # the facet table
    assert "facets" not in run(running, "search", "rain", "--no-facets").output
    bad = run(running, "--json", "search", "rain", "--cursor", "garbage")
    assert bad.exit_code == 3
    assert "invalid cursor" in json.loads(bad.stderr)["error"]["message"]
    assert run(running, "search", "--from", "yesterday").exit_code == 2  # usage error
    assert run(running, "search", "--access", "public").exit_code == 2


def test_error_exit_codes(running: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    node = MemoryNode()
    junk = tmp_path_factory.mktemp("files") / "junk.dnd"
    junk.write_bytes(b"junk")
    assert run(running, "publish", str(junk)).exit_code == 3  # invalid input
    assert run(running, "publish", str(junk.parent / "missing.dnd")).exit_code == 5
    missing = run(running, "resolve", f"dn://{node.org}/nothing")
    assert missing.exit_code == 5
    assert "no descriptor" in missing.output
    assert run(running, "resolve", "garbage").exit_code == 3
    bad = run(running, "--json", "routing", "findpeer", "12D3KooWnope")
    assert bad.exit_code == 3
    assert json.loads(bad.stderr)["error"]["code"] == "decode_error"


def test_config_through_the_daemon(running: Path) -> None:
    shown = run_json(running, "config", "show")
    assert isinstance(shown, dict)
    assert shown["daemon"] is True
    assert shown["config"]["api.address"] == "127.0.0.1:0"
    assert run_json(running, "config", "show", "log.level")["config"] == {"log.level": "info"}  # type: ignore[index]
    changed = run_json(running, "config", "set", "network.admission", "closed")
    assert changed == {
        "key": "network.admission",
        "value": "closed",
        "restart_required": True,
        "daemon": True,
    }
    assert load_config(running / "config.toml")["network.admission"] == "closed"
    refused = run(running, "config", "set", "api.address", "0.0.0.0:5080")
    assert refused.exit_code == 3
    assert "allow_remote" in refused.output
    assert run(running, "config", "show", "no.such").exit_code == 3


def test_node_stop_waits_until_the_daemon_is_gone(running: Path) -> None:
    result = run(running, "node", "stop")
    assert result.exit_code == 0, result.output
    assert "stopped" in result.output
    for name in (API_URL_FILE, TOKEN_FILE, PID_FILE):
        assert not (running / name).exists()
    gone = run(running, "node", "status")
    assert gone.exit_code == 7
    assert "datanet node start" in gone.output


def test_config_without_a_daemon_edits_the_file(tmp_path: Path) -> None:
    result = run(tmp_path, "config", "set", "network.bootstrap", "")
    assert result.exit_code == 0, result.output
    doc = run_json(tmp_path, "config", "set", "log.level", "debug")
    assert doc == {"key": "log.level", "value": "debug", "restart_required": False, "daemon": False}
    shown = run(tmp_path, "config", "show")
    assert 'log.level = "debug"' in shown.output
    assert "(daemon not running)" in shown.output
    assert run(tmp_path, "config", "set", "log.level", "loud").exit_code == 3


def test_api_commands_without_a_daemon_exit_7(tmp_path: Path) -> None:
    for args in (["peers"], ["search"], ["resolve", "dn://x/y"], ["node", "status"]):
        result = run(tmp_path, *args)
        assert result.exit_code == 7, (args, result.output)


def test_node_start_needs_an_initialised_data_dir(tmp_path: Path) -> None:
    result = run(tmp_path, "node", "start")
    assert result.exit_code == 5
    assert "datanet init" in result.output
