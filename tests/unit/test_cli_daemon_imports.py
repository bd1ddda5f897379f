"""The daemon commands of the CLI import nothing heavy (issue 13: start-up under 300 ms).

Each command runs in a fresh interpreter, as a shell runs it, against a real daemon
process (the in-memory node of ``datanet.testing.memory_daemon``), with the human
output (tables included); the interpreter then lists which heavy modules it loaded.
A command against a running daemon needs the client (httpx over the standard
library's http.client), click and, to print a table, rich: never the node
(libp2p, trio), the server (starlette, hypercorn), httpcore, or cryptography
(``datanet.client`` → ``datanet.api.results`` → ``datanet.errors`` →
``identity`` used to load it: about 40 ms of every command).

Not a timing test: ``benchmarks/bench_cli.py`` measures the wall time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from datanet.node.paths import API_URL_FILE
from datanet.testing.doubles import MemoryNode

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("cryptography", "trio", "httpcore", "starlette", "hypercorn", "libp2p", "sqlite3")

# Runs one command as the console script does, then prints the heavy modules it loaded.
_PROBE = """
import json, sys
heavy = json.loads(sys.argv[1])
args = json.loads(sys.argv[2])
import cli.main
try:
    cli.main.datanet.main(args=args, prog_name="datanet")
except SystemExit as exc:
    code = exc.code
else:
    code = 0
loaded = sorted({m.split(".")[0] for m in sys.modules} & set(heavy))
print(json.dumps({"code": code, "heavy": loaded}), file=sys.stderr)
"""


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATANET_API_URL": "",
        "DATANET_API_TOKEN": "",
    }


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, Path]]:
    """(data dir of a running in-memory daemon, the id of its one dataset, its signed file)."""
    home = tmp_path_factory.mktemp("daemon")
    (home / "config.toml").write_text('[api]\naddress = "127.0.0.1:0"\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "datanet.testing.memory_daemon", str(home)],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not (home / API_URL_FILE).exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the daemon did not start"
            time.sleep(0.05)
        node = MemoryNode()  # the daemon's node has the same fixed keys: it trusts this cert
        dnd = tmp_path_factory.mktemp("files") / "weather.dnd"
        dnd.write_bytes(node.make_descriptor("weather/daily", title="Daily weather"))
        assert _run(home, ["publish", str(dnd)])["code"] == 0
        yield home, f"dn://{node.org}/weather/daily", dnd
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def _run(home: Path, args: list[str]) -> dict[str, object]:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _PROBE,
            json.dumps(HEAVY),
            json.dumps(["--data-dir", str(home), *args]),
        ],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    last = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else ""
    assert last.startswith("{"), out.stderr
    doc: dict[str, object] = json.loads(last)
    doc["stdout"] = out.stdout
    return doc


DAEMON_COMMANDS = {
    "resolve": ["resolve", "{id}"],
    "search": ["search", "weather"],
    "peers": ["peers"],
    "node status": ["node", "status"],
    "routing stats": ["routing", "stats"],
    "routing findprovs": ["routing", "findprovs", "{id}"],
    "catalog stats": ["catalog", "stats"],
    "audit show": ["audit", "show"],
    "requests": ["requests"],
    "grants": ["grants"],
    "purposes": ["purposes"],
}


@pytest.mark.parametrize("name", sorted(DAEMON_COMMANDS))
def test_daemon_command_imports_no_heavy_module(daemon: tuple[Path, str, Path], name: str) -> None:
    home, dataset_id, _ = daemon
    args = [a.replace("{id}", dataset_id) for a in DAEMON_COMMANDS[name]]
    result = _run(home, args)
    assert result["code"] == 0, result
    assert result["heavy"] == [], f"`datanet {name}` imported {result['heavy']}"


def test_resolve_still_shows_the_descriptor(daemon: tuple[Path, str, Path]) -> None:
    """The lazy imports change nothing in what a command prints."""
    home, dataset_id, _ = daemon
    result = _run(home, ["resolve", dataset_id])
    assert result["code"] == 0, result
    assert dataset_id in str(result["stdout"])
    assert "Daily weather" in str(result["stdout"])


def test_the_probe_sees_a_heavy_import(daemon: tuple[Path, str, Path]) -> None:
    """The check can fail: a command that checks a signature loads cryptography, and says so."""
    home, _, dnd = daemon
    result = _run(home, ["descriptor", "verify", "--accept-any-org", str(dnd)])
    # 0, or 4 when the test certificate's validity does not cover the wall clock
    assert result["code"] in (0, 4), result
    assert result["heavy"] == ["cryptography"]


def test_every_lazy_result_name_resolves() -> None:
    """datanet.api.results and datanet.client still offer every public name they list."""
    code = (
        "import datanet.api.results as r, datanet.client as c\n"
        "missing = [n for m in (r, c) for n in m.__all__ if getattr(m, n, None) is None]\n"
        "assert not missing, missing\n"
        "assert c.Resolved is r.Resolved and r.FacetCount.__module__ == 'datanet.records.search'\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.strip() == "ok", out.stderr
