"""Every shell example in README.md and docs/*.md runs, against one real devnet.

The cases come from ``tests/docs/doc_examples.py`` (how a doc marks a block's
home, an expected exit code or a skip with its reason). One ``datanet devnet``
(3 organizations, 6 daemons) serves the whole file; each command runs through
``bash`` in a scratch directory per doc file (shared by its commands), with
``DATANET_HOME`` set to its home (node0 of acme, the samples' publisher, unless
the doc says otherwise) and the docs' placeholders (``did:key:z6Mk…``,
``12D3KooW…``, ``DIR``, request ids…) replaced by the devnet's values. A failure
names the doc file and line.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from doc_examples import Case, cases_in, doc_files

from datanet.devnet import child_env

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 90
CASES = [case for path in doc_files(ROOT) for case in cases_in(path, ROOT)]

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="devnet processes")

# The docs' example request and grant ids, each standing for a distinct real one.
REQUEST_IDS = ("5f2e8e80ea61", "8b0c6a4d19f3", "c3e7f15a02b9")
GRANT_IDS = ("d6c0026530f0",)


@dataclass
class Devnet:
    base: Path
    scratch: Path
    doc: dict[str, Any]
    homes: dict[str, Path] = field(default_factory=dict)
    peer_ids: dict[Path, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)

    def node(self, name: str) -> Path:
        return self.base / name

    def org(self, name: str) -> str:
        return str(next(o["org_id"] for o in self.doc["orgs"] if o["name"] == name))

    def home(self, name: str | None) -> Path:
        name = name or "node0"
        if re.fullmatch(r"node\d+", name):
            return self.node(name)
        if name not in self.homes:
            self.homes[name] = self.scratch / "homes" / name
        return self.homes[name]

    def datanet(self, home: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "cli.main", "--data-dir", str(home), *args],
            cwd=self.scratch,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert not ok or result.returncode in (0, 9), (args, result.stdout, result.stderr)
        return result

    def peer_id(self, home: Path) -> str:
        if home not in self.peer_ids:
            if not (home / "node.key").exists():
                home = self.node("node0")
            self.peer_ids[home] = json.loads(self.datanet(home, "--json", "id").stdout)["peer_id"]
        return self.peer_ids[home]

    def request_id(self, example: str) -> str:
        """A real pending request on node0 (acme) for each of the docs' example ids."""
        if example not in self.ids:
            traffic = f"dn://{self.org('acme')}/traffic/counts"
            n = len(self.ids)
            out = self.datanet(
                self.node("node4"),
                "--json",
                "request",
                traffic,
                "--purpose",
                "research-and-development",
                "--note",
                f"doc example {n}",
            )
            self.ids[example] = json.loads(out.stdout)["request"]["request_id"][:12]
        return self.ids[example]

    def grant_id(self, example: str) -> str:
        """A real grant node0 issued (weather/stations is granted at once)."""
        if example not in self.ids:
            weather = f"dn://{self.org('acme')}/weather/stations"
            out = self.datanet(
                self.node("node4"),
                "--json",
                "request",
                weather,
                "--purpose",
                "academic-research",
                "--wait",
            )
            self.ids[example] = json.loads(out.stdout)["grant"]["grant_id"][:12]
        return self.ids[example]

    def substitute(self, case: Case, home: Path) -> str:
        cmd = case.command
        acme = self.org("acme")
        cmd = re.sub(r"/tmp/datanet-devnet-…", str(self.base), cmd)
        cmd = re.sub(r"(?<![\w./-])DIR(?=/)", str(self.base), cmd)
        cmd = cmd.replace("~/.local/share/datanet", str(home))
        cmd = cmd.replace("did:key:z6Mk…", acme)
        if "12D3KooW…" in cmd:
            cmd = re.sub(r"12D3KooW…(gw)?", self.peer_id(home), cmd)
        if "http://127.0.0.1:5080" in cmd:
            url = (home / "api.url").read_text().strip()
            cmd = cmd.replace("http://127.0.0.1:5080", url)
        if "<C>" in cmd:
            page = self.datanet(home, "--json", "search", "--limit", "1")
            cmd = cmd.replace("<C>", json.loads(page.stdout)["next_cursor"])
        for example in REQUEST_IDS:
            if example in cmd:
                cmd = cmd.replace(example, self.request_id(example))
        for example in GRANT_IDS:
            if example in cmd:
                cmd = cmd.replace(example, self.grant_id(example))
        return cmd


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    base = tmp_path_factory.mktemp("docnet") / "net"
    scratch = tmp_path_factory.mktemp("docwork")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "devnet", "--dir", str(base), "--json"],
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        readable, _, _ = select.select([proc.stdout], [], [], 180)
        assert readable, "the devnet did not become ready in time"
        line = proc.stdout.readline()
        assert line, f"the devnet exited: {proc.communicate(timeout=TIMEOUT)}"
        yield Devnet(base, scratch, json.loads(line))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.communicate(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


def test_the_docs_have_examples() -> None:
    assert len(CASES) > 100
    assert all(case.skip for case in CASES if "systemctl" in case.command)


@pytest.mark.parametrize("case", CASES, ids=[c.where for c in CASES])
def test_doc_example_runs(case: Case, devnet: Devnet) -> None:
    if case.skip:
        pytest.skip(f"{case.where}: {case.skip}")
    home = devnet.home(case.home)
    home.mkdir(parents=True, exist_ok=True)
    command = devnet.substitute(case, home)
    script = "\n".join([*(devnet.substitute(c_, home) for c_ in _prelude(case)), command])
    env = child_env()
    env["DATANET_HOME"] = str(home)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    cwd = devnet.scratch / "work" / case.file.replace("/", "_")
    cwd.mkdir(parents=True, exist_ok=True)
    if case.until_interrupted:
        _run_until_interrupted(case, script, env, cwd)
        return
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == case.expected_exit, (
        f"{case.where}: `{command}` exited {result.returncode}, "
        f"the doc expects {case.expected_exit}\n--- stdout\n{result.stdout[-3000:]}"
        f"\n--- stderr\n{result.stderr[-3000:]}"
    )


def _run_until_interrupted(case: Case, script: str, env: dict[str, str], cwd: Path) -> None:
    """A command that runs until Ctrl-C: still running after a while, clean exit on SIGINT."""
    proc = subprocess.Popen(
        ["bash", "-c", f"exec {script}" if "\n" not in script else script],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=4)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode in (0, 130), f"{case.where}: exit {proc.returncode} on SIGINT\n{err}"
        return
    pytest.fail(f"{case.where}: `{script}` ended by itself ({proc.returncode})\n{out}\n{err}")


def _prelude(case: Case) -> list[Case]:
    return [Case(case.file, case.line, line, case.home, 0, None, ()) for line in case.prelude]


def test_extractor_reads_directives(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (tmp_path / "README.md").write_text(
        "text\n\n<!-- doc-examples: skip (starts a daemon) -->\n```sh\ndatanet node start\n```\n"
        "<!-- doc-examples: home=alice -->\n```bash\nX=1   # set\n"
        "datanet a \\\n  --b 'c # d'   # exits 4\n"
        "datanet c  # doc-examples: skip (needs a second machine)\n```\n"
        "```console\n$ datanet id\n12D3KooW…\n```\n```python\nprint()\n```\n"
    )
    cases = cases_in(tmp_path / "README.md", tmp_path)
    assert [(c.line, c.command, c.home, c.expected_exit, bool(c.skip)) for c in cases] == [
        (5, "datanet node start", None, 0, True),
        (9, "X=1", "alice", 0, False),
        (10, "datanet a --b 'c # d'", "alice", 4, False),
        (12, "datanet c", "alice", 0, True),
        (15, "datanet id", None, 0, False),
    ]
    assert cases[2].prelude == ("X=1",)
    assert shutil.which("bash")


def test_findprovs_of_a_dataset_names_its_publisher_without_p2p_in_addresses(
    devnet: Devnet,
) -> None:
    weather = f"dn://{devnet.org('acme')}/weather/stations"
    publisher = devnet.peer_id(devnet.node("node0"))
    for key in (weather, weather.replace("dn://", "/dn/")):
        out = devnet.datanet(devnet.node("node4"), "--json", "routing", "findprovs", key)
        providers = json.loads(out.stdout)
        assert publisher in [p["peer_id"] for p in providers], (key, providers)
        assert all("/p2p/" not in a for p in providers for a in p["addrs"]), providers
    peers = json.loads(devnet.datanet(devnet.node("node4"), "--json", "peers").stdout)
    assert peers
    assert all("/p2p/" not in a for p in peers for a in p["addrs"]), peers


def test_routing_get_of_a_missing_key_names_it_as_text(devnet: Devnet) -> None:
    key = f"/dn/{devnet.org('acme')}/no/such"
    out = devnet.datanet(devnet.node("node4"), "routing", "get", key, ok=False)
    assert out.returncode == 5
    assert f"no valid value under {key}" in out.stderr
    assert "b'" not in out.stderr


def test_node_status_says_each_figure_once(devnet: Devnet) -> None:
    text = devnet.datanet(devnet.node("node0"), "node", "status").stdout
    for label in ("org:", "peer id:", "peers:"):
        assert sum(line.startswith(label) for line in text.splitlines()) == 1, text
    assert "peer_id:" not in text
    doc = json.loads(devnet.datanet(devnet.node("node0"), "--json", "node", "status").stdout)
    assert not {"peer_id", "org", "peers"} & set(doc["node"]), doc["node"]


def test_trust_add_echoes_the_name(devnet: Devnet) -> None:
    home = devnet.scratch / "homes" / "trusty"
    devnet.datanet(home, "init", "--no-passphrase")
    out = devnet.datanet(home, "trust", "add", devnet.org("globex"), "--name", "beta")
    assert out.stdout.strip() == f"Trusting {devnet.org('globex')} as 'beta'"
