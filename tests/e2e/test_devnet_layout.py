"""The devnet's parts that need no running node: layout, manifest, samples, signals, processes.

Real files, real keys and signatures, real child processes (plain Python
sleepers stand in for daemons where only process handling is under test).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.devnet import daemon_command
from cli.main import datanet
from datanet.devnet import (
    CERT_DAYS,
    MANIFEST_FILE,
    SAMPLE_DATASETS,
    TOUR_DATASET,
    DaemonProcess,
    DaemonSet,
    DaemonStartError,
    DevnetError,
    SamplesError,
    StopSignals,
    build_descriptor,
    child_env,
    is_devnet,
    load_devnet,
    parse_samples,
    provision,
    renew_certificates,
    samples_for,
    sign_for_node,
)
from datanet.devnet.processes import _die_with_parent
from datanet.errors import NotFound
from datanet.node.config import load_config
from datanet.node.home import Home
from datanet.records.descriptor import MAX_DESCRIPTOR_SIZE, verify_descriptor
from datanet.testing.clock import NOW


def test_provision_then_load_gives_the_same_network(tmp_path: Path) -> None:
    orgs, nodes = provision(tmp_path, orgs=3, nodes=5, bootstrap_count=2, now=NOW)
    assert is_devnet(tmp_path)
    net = load_devnet(tmp_path)
    assert [o.org_id for o in net.orgs] == [o.org_id for o in orgs]
    assert [(n.index, n.peer_id, n.port, n.api_port, n.home) for n in net.nodes] == [
        (n.index, n.peer_id, n.port, n.api_port, n.home) for n in nodes
    ]
    assert net.bootstrap_count == 2
    assert [n.org.name for n in net.nodes] == ["acme", "globex", "initech", "acme", "globex"]
    ports = [n.port for n in nodes] + [n.api_port for n in nodes]
    assert len(set(ports)) == len(ports)  # p2p and API ports never collide
    config = load_config(Home(nodes[3].home).config_path)
    assert config["network.bootstrap"] == (nodes[0].addr, nodes[1].addr)
    assert config["api.address"] == f"127.0.0.1:{nodes[3].api_port}"
    assert [n.name for n in net.nodes_of(net.orgs[0])] == ["node0", "node3"]
    assert net.outsider(net.orgs[0]).name == "node1"
    assert net.outsider(net.orgs[0], last=True).name == "node4"


def test_a_missing_or_damaged_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        load_devnet(tmp_path)
    provision(tmp_path, orgs=2, nodes=2, now=NOW)
    path = tmp_path / MANIFEST_FILE
    good = json.loads(path.read_text())
    damaged: list[object] = [
        "not json {",
        [],
        {**good, "version": 99},
        {**good, "orgs": "acme"},
        {**good, "nodes": [{**good["nodes"][0], "dir": "../elsewhere"}]},
        {**good, "nodes": [{**good["nodes"][0], "peer_id": good["nodes"][1]["peer_id"]}]},
        {**good, "nodes": list(reversed(good["nodes"]))},
        {**good, "orgs": [{**good["orgs"][0], "org_id": good["orgs"][1]["org_id"]}]},
        {**good, "bootstrap_count": 0},
        {**good, "nodes": [{**good["nodes"][0], "port": "4001"}]},
    ]
    for doc in damaged:
        path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
        with pytest.raises(DevnetError):
            load_devnet(tmp_path)
    path.write_bytes(b" " * (2 * 1024 * 1024))
    with pytest.raises(DevnetError, match="too large"):
        load_devnet(tmp_path)


def test_certificates_are_renewed_only_when_about_to_expire(tmp_path: Path) -> None:
    provision(tmp_path, orgs=2, nodes=3, now=NOW)
    net = load_devnet(tmp_path)
    assert renew_certificates(net, NOW) == []
    later = NOW + CERT_DAYS * 86400 - 3600  # one hour left
    assert [n.name for n in renew_certificates(net, later)] == ["node0", "node1", "node2"]
    for node in net.nodes:
        Home(node.home).membership_chain(later + 20 * 86400)  # valid again
    assert renew_certificates(net, later) == []


def test_every_sample_builds_signs_and_verifies(tmp_path: Path) -> None:
    provision(tmp_path, orgs=2, nodes=2, now=NOW)
    net = load_devnet(tmp_path)
    node = net.nodes[1]
    trust = Home(node.home).trust_store()
    for sample in (*SAMPLE_DATASETS, TOUR_DATASET):
        desc = build_descriptor(sample, node.org, node.peer_id, sequence=3, now=NOW)
        raw = sign_for_node(node, desc, NOW)
        assert len(raw) <= MAX_DESCRIPTOR_SIZE
        verified = verify_descriptor(raw, trust, NOW)
        d = verified.descriptor
        assert d == desc
        assert d.keywords
        assert d.themes
        assert d.license
        assert d.distributions
        assert d.temporal is not None
        assert d.temporal[0] <= d.temporal[1] <= NOW
        assert d.spatial
        assert "{org}" not in d.description + (d.spatial or "") + d.schema
        assert all("{org}" not in dist.access for dist in d.distributions)
    # each of three orgs publishes three different datasets
    names = [s.name for i in range(3) for s in samples_for(i, 3)]
    assert len(set(names)) == 9
    assert samples_for(0, 3)[0].name == "weather/stations"


def test_signing_for_another_org_is_refused(tmp_path: Path) -> None:
    provision(tmp_path, orgs=2, nodes=2, now=NOW)
    net = load_devnet(tmp_path)
    desc = build_descriptor(
        SAMPLE_DATASETS[0], net.orgs[0], net.nodes[1].peer_id, sequence=1, now=NOW
    )
    with pytest.raises(NotFound):  # node1 holds no certificate of acme
        sign_for_node(net.nodes[1], desc, NOW)


def test_stop_signals_interrupt_only_waits() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with StopSignals() as signals:

        def wait() -> None:
            with signals.interruptible():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)  # interrupted at once

        with pytest.raises(KeyboardInterrupt):
            wait()
        assert signals.requested
        assert not signals.forced
    with StopSignals() as signals:
        os.kill(os.getpid(), signal.SIGINT)  # outside a wait: only recorded
        time.sleep(0.01)
        assert signals.requested
        with pytest.raises(KeyboardInterrupt), signals.interruptible():
            pass
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)
        assert signals.forced
    assert signal.getsignal(signal.SIGTERM) == before


def _sleeper(tmp_path: Path, *, ignore_term: bool) -> subprocess.Popen[bytes]:
    code = "import signal, time\n"
    if ignore_term:
        code += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    code += "print('up', flush=True)\ntime.sleep(60)\n"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"up\n"
    proc.stdout.close()
    return proc


def test_stop_escalates_to_sigkill_and_reaps_everything(tmp_path: Path) -> None:
    provision(tmp_path, orgs=1, nodes=2, now=NOW)
    net = load_devnet(tmp_path)
    daemons = DaemonSet(daemon_command, stop_timeout=0.5)
    polite = DaemonProcess(net.nodes[0], _sleeper(tmp_path, ignore_term=False), time.monotonic())
    stubborn = DaemonProcess(net.nodes[1], _sleeper(tmp_path, ignore_term=True), time.monotonic())
    daemons.daemons += [polite, stubborn]
    started = time.monotonic()
    with daemons:
        pass
    assert time.monotonic() - started < 5
    assert polite.returncode == -signal.SIGTERM
    assert stubborn.returncode == -signal.SIGKILL
    assert polite.stopped
    assert stubborn.stopped


def test_a_daemon_that_exits_is_reported_with_its_log(tmp_path: Path) -> None:
    provision(tmp_path, orgs=1, nodes=1, now=NOW)
    node = load_devnet(tmp_path).nodes[0]
    node.log_path.write_text("line one\nError: cannot listen on api.address\n")
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    with DaemonSet(daemon_command) as daemons:
        daemon = DaemonProcess(node, proc, time.monotonic())
        daemons.daemons.append(daemon)
        with pytest.raises(DaemonStartError) as info:
            daemons.wait_ready([daemon], timeout=10)
    text = str(info.value)
    assert f"node0 (acme) exited with status 3; see {node.log_path}" in text
    assert "Error: cannot listen on api.address" in text


def test_a_daemon_that_never_answers_times_out(tmp_path: Path) -> None:
    provision(tmp_path, orgs=1, nodes=1, now=NOW)
    node = load_devnet(tmp_path).nodes[0]
    with DaemonSet(daemon_command, stop_timeout=2) as daemons:
        daemon = DaemonProcess(node, _sleeper(tmp_path, ignore_term=False), time.monotonic())
        daemons.daemons.append(daemon)
        with pytest.raises(DaemonStartError, match=r"did not answer within 0\.5 s"):
            daemons.wait_ready([daemon], timeout=0.5)
    assert daemon.returncode == -signal.SIGTERM


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG")
def test_a_daemon_dies_with_the_devnet_process(tmp_path: Path) -> None:
    # A middle process starts a sleeper the way DaemonSet does, then is SIGKILLed.
    script = (
        "import os, signal, subprocess, sys, time\n"
        "from datanet.devnet.processes import _die_with_parent\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],\n"
        "                         process_group=0, preexec_fn=_die_with_parent())\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    middle = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, env=child_env(), text=True
    )
    assert middle.stdout is not None
    child = int(middle.stdout.readline())
    middle.stdout.close()
    middle.kill()
    middle.wait()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}").exists():
        status = Path(f"/proc/{child}/stat").read_text().split()[2:3]
        if status == ["Z"]:  # exited; waiting for init to reap it
            break
        assert time.monotonic() < deadline, "the child outlived its parent"
        time.sleep(0.02)
    assert _die_with_parent() is not None


def test_usage_errors_start_nothing(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(datanet, ["devnet", "--tour", "--orgs", "1"])
    assert result.exit_code == 2
    assert "at least 2 organizations" in result.output
    result = runner.invoke(datanet, ["devnet", "--orgs", "3", "--nodes", "2"])
    assert result.exit_code == 2
    (tmp_path / "something.txt").write_text("mine")
    result = runner.invoke(datanet, ["devnet", "--dir", str(tmp_path)])
    assert result.exit_code == 3
    assert "holds no devnet" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["something.txt"]


def test_a_damaged_samples_file_is_refused_naming_the_entry_and_field() -> None:
    good = resources.files("datanet.devnet").joinpath("samples.toml").read_text("utf-8")
    assert parse_samples(good).datasets == SAMPLE_DATASETS
    cases = {
        "samples = [": "is not valid TOML",
        good.replace('name = "air-quality/pm"\n', ""): r"samples\[1\]: 'name' is missing",
        good.replace(
            "since = 2015-01-01", 'since = "2015"'
        ): r"\(weather/stations\): 'since' is not a date",
        good.replace(
            'access = { mode = "open" }', 'access = { mode = "shut" }', 1
        ): "tour.dataset \\(water/river-levels\\): access: access_policy mode",
        good.replace(
            "size = 48_200_000", "size = 1.5"
        ): r"distributions\[0\]: 'size' is not an integer",
        good.replace(
            'search = "river"', 'search = "river"\nextra = 1'
        ): r"tour: unknown field\(s\) 'extra'",
        good.replace(
            'name = "traffic/counts"', 'name = "weather/stations"'
        ): "repeated: weather/stations",
    }
    for text, message in cases.items():
        with pytest.raises(SamplesError, match=message):
            parse_samples(text, "samples.toml")
