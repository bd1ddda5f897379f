"""End to end: `datanet devnet` as a real process, with real daemon processes under it.

The tour runs on a fresh directory; the same directory is then restarted as a
running devnet, queried with the CLI from another organization's node, and
stopped with SIGINT. Startup that fails half-way and a SIGTERM during startup
must leave no daemon behind either. Orphans are looked for by pid (from the
daemons' logs and pid files) and by scanning every process's command line for
the devnet's directory.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datanet.devnet import child_env, daemon_pid, provision

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")


def devnet_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli.main", "devnet", *args]


def datanet(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "--data-dir", str(home), *args],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def logged_pids(base: Path) -> dict[str, list[int]]:
    """Every daemon pid each node's daemon.log reports as ready, by node."""
    out = {}
    for log in sorted(base.glob("node*/daemon.log")):
        text = log.read_text()
        out[log.parent.name] = [int(p) for p in re.findall(r"msg=daemon_ready .*pid=(\d+)", text)]
    return out


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def processes_mentioning(base: Path) -> list[str]:
    """Command lines of live processes that mention ``base`` (our daemons do)."""
    needle = str(base).encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline:
            text = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{proc.name}: {text}")
    return found


def assert_nothing_left(base: Path, pids: list[int]) -> None:
    assert pids, "no daemon pid was found"
    assert [p for p in pids if alive(p)] == []
    assert processes_mentioning(base) == []
    for home in base.glob("node*"):
        assert daemon_pid(home) is None
        for name in ("datanet.pid", "api.url", "api.token"):
            assert not (home / name).exists(), home / name


@pytest.fixture(scope="module")
def tour(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    base = tmp_path_factory.mktemp("devnet") / "net"
    result = subprocess.run(
        devnet_argv("--tour", "--orgs", "2", "--nodes", "4", "--dir", str(base)),
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    return base, result


def test_tour_narrates_every_step_and_exits_0(
    tour: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    _, result = tour
    assert result.returncode == 0, (result.stdout, result.stderr)
    out = result.stdout
    steps = re.findall(r"^\s+(\d)\. (\w+)\s+(.*)\[(\d+) ms\]$", out, re.MULTILINE)
    assert [(n, action) for n, action, _, _ in steps] == [
        ("1", "publish"),
        ("2", "resolve"),
        ("3", "update"),
        ("4", "resolve"),
        ("5", "search"),
        ("6", "request"),
        ("7", "approve"),
        ("8", "deny"),
    ]
    assert "(sequence 1)" in steps[1][2]
    assert "node1 of globex" in steps[1][2]  # another organization's node
    assert "River levels and flood warnings (hourly)" in steps[3][2]
    assert "(sequence 2)" in steps[3][2]
    assert "granted at once" in steps[5][2]
    assert "operator approves" in steps[6][2]
    assert "denied, purpose_not_allowed" in steps[7][2]
    assert "Tour complete: 8 steps" in out
    # the nodes table: every node with its org, and the sample datasets were published
    for i, org in enumerate(["acme", "globex", "acme", "globex"]):
        assert re.search(rf"{org}\s+│ node{i} ", out), out
    assert result.stderr.count("sequence 1, ") == 6  # 3 samples per org
    assert "stopped 4 node(s)" in result.stderr


def test_tour_leaves_no_daemon_behind(
    tour: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    base, result = tour
    assert result.returncode == 0, result.stderr
    pids = logged_pids(base)
    assert sorted(pids) == ["node0", "node1", "node2", "node3"]
    assert all(len(p) == 1 for p in pids.values())
    for log in base.glob("node*/daemon.log"):
        assert "msg=daemon_stopped" in log.read_text()
    assert_nothing_left(base, [p for ps in pids.values() for p in ps])


def _read_ready(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdout is not None
    readable, _, _ = select.select([proc.stdout], [], [], TIMEOUT)
    assert readable, "the devnet did not become ready in time"
    line = proc.stdout.readline()
    assert line, f"the devnet exited: {proc.communicate(timeout=TIMEOUT)}"
    doc: dict[str, Any] = json.loads(line)
    return doc


@pytest.fixture
def running(
    tour: tuple[Path, subprocess.CompletedProcess[str]],
) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    base, _ = tour
    proc = subprocess.Popen(
        devnet_argv("--dir", str(base), "--json"),
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield base, proc
    finally:
        if proc.poll() is None:  # the test failed half-way: still stop everything
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=TIMEOUT)


def test_restart_query_from_another_org_then_sigint(
    running: tuple[Path, subprocess.Popen[str]],
) -> None:
    base, proc = running
    manifest = json.loads((base / "devnet.json").read_text())
    doc = _read_ready(proc)
    assert doc["event"] == "ready"
    # restarted, not re-provisioned: the same nodes, and the datasets were kept
    assert [n["peer_id"] for n in doc["nodes"]] == [n["peer_id"] for n in manifest["nodes"]]
    assert len(doc["datasets"]) == 6
    assert all(d["replicas"] is None for d in doc["datasets"])
    pids = [n["pid"] for n in doc["nodes"]]
    for node in doc["nodes"]:
        assert daemon_pid(Path(node["data_dir"])) == node["pid"]

    weather = next(d for d in doc["datasets"] if d["dataset_id"].endswith("/weather/stations"))
    assert weather["org"] == "acme"
    reader = next(n for n in doc["nodes"] if n["org"] != "acme")
    found = datanet(Path(reader["data_dir"]), "--json", "resolve", weather["dataset_id"])
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["descriptor"]["title"] == weather["title"]
    # what the tour published before the restart is still there, at its last version
    river = weather["dataset_id"].replace("/weather/stations", "/water/river-levels")
    again = json.loads(datanet(Path(reader["data_dir"]), "--json", "resolve", river).stdout)
    assert again["sequence"] == 2
    assert any(f"resolve {weather['dataset_id']}" in c for c in doc["commands"])

    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    assert err == ""  # --json: nothing but the one document, no progress chatter
    assert_nothing_left(base, pids)


def test_startup_failure_half_way_stops_the_started_nodes(tmp_path: Path) -> None:
    base = tmp_path / "net"
    _, nodes = provision(base, orgs=2, nodes=3)
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", nodes[2].api_port))
    blocker.listen()
    try:
        result = subprocess.run(
            devnet_argv("--dir", str(base)),
            cwd=ROOT,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    finally:
        blocker.close()
    assert result.returncode == 1
    assert (
        f"node2 (acme) exited with status 1; see {base / 'node2' / 'daemon.log'}" in result.stderr
    )
    assert "Address already in use" in result.stderr  # the log's end is quoted
    assert "devnet ready" not in result.stdout
    pids = [p for ps in logged_pids(base).values() for p in ps]
    assert len(pids) == 2  # node0 and node1 were up
    assert_nothing_left(base, pids)


def test_sigterm_during_startup_leaves_nothing(tmp_path: Path) -> None:
    base = tmp_path / "net"
    proc = subprocess.Popen(
        devnet_argv("--orgs", "2", "--nodes", "2", "--dir", str(base)),
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (base / "node0" / "daemon.log").exists():
            assert proc.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert "devnet ready" not in out
    assert processes_mentioning(base) == []
    for home in base.glob("node*"):
        assert daemon_pid(home) is None
