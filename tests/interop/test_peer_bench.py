"""The js-libp2p side of ``benchmarks/bench_peer.py``: a small js network runs bench_net's workload.

Real Node.js processes (``benchmarks/js/peernet.mjs``) with real js-libp2p nodes on
127.0.0.1, driven by the same ``bench_net`` functions as the datanet side. Skipped
like the other interop tests when ``node`` or ``npm`` is missing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datanet.testing.jspeer import install_js_peer
from datanet.testing.localnet import LocalnetError
from identity.keys import KeyPair

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
JS_DIR = Path(__file__).parent / "js"


@pytest.fixture(scope="module")
def bench() -> Iterator[Any]:
    """The ``bench_peer`` module (benchmarks/ is a script folder, not a package)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import bench_peer

        yield bench_peer
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.fixture
def peernet_dir(js_peer_dir: Path, bench: Any) -> Path:
    """The interop tests' npm install, with ``peernet.mjs`` copied next to ``peer.mjs``."""
    return install_js_peer(JS_DIR, js_peer_dir.parent, scripts=[bench.PEERNET])


def workload_args(**changes: Any) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from bench_net import add_arguments
    finally:
        sys.path.remove(str(BENCHMARKS))
    add_arguments(parser)
    args = parser.parse_args([])
    for key, value in {"nodes": 6, "processes": 2, "bootstraps": 2, **changes}.items():
        setattr(args, key, value)
    return args


def test_six_js_nodes_in_two_processes_publish_and_resolve(
    tmp_path: Path, bench: Any, peernet_dir: Path
) -> None:
    args = workload_args(datasets=2, resolves=2, settle=0.5, join_concurrency=2)
    specs, idle_spec = bench.provision_network(args, tmp_path / "provision")
    pubs, rng = bench.publications(specs, args)
    logs: list[str] = []
    js = bench.run_js(specs, idle_spec, pubs, rng, args, tmp_path / "js", peernet_dir, logs.append)

    assert js["nodes"] == 6
    assert js["processes"] == 2
    assert js["success_rate"] == 1.0, js["resolve_failures"]
    assert js["resolves"] == 2
    assert js["first_value_wrong"] == 0  # the first value a peer sent is the published bytes
    # every figure a ratio needs is there and plausible
    assert js["replicas"]["min"] >= 1  # a put reached peers that echoed the record
    assert js["publish_ms"]["p50"] > 0
    assert js["resolve_ms"]["p50"] > 0
    first = js["resolve_first_value_ms"]
    assert 0 < first["p50"] <= js["resolve_ms"]["max"]
    assert js["cpu_seconds_per_node"] > 0
    assert js["idle_rss_mb"] > 10  # a Node.js process holding one libp2p node
    assert js["memory"]["idle_node_routing_table"] >= 1
    assert js["join_s"] > 0
    assert js["timings"]["routing_table_min"] >= 1
    assert any("joined" in line for line in logs)


def test_a_js_node_carries_its_datanet_twins_peer_id(bench: Any, peernet_dir: Path) -> None:
    keys = [KeyPair.from_seed(bytes([i]) * 32) for i in (7, 8)]
    worker = bench.JsWorker(peernet_dir, [k.seed() for k in keys], bootstraps=1)
    try:
        nodes = worker.wait_ready(120)
        assert [n.peer_id for n in nodes] == [str(k.peer_id) for k in keys]
        assert all(a.startswith("/ip4/127.0.0.1/tcp/") for n in nodes for a in n.addrs)
        assert worker.call("bootstrap", node=1)["routing_table_size"] == 1
    finally:
        worker.quit(10)


def test_js_worker_refuses_a_bad_key_with_an_error_line(bench: Any, peernet_dir: Path) -> None:
    worker = bench.JsWorker(peernet_dir, [b"\x01" * 31], bootstraps=1)  # 31 bytes: no key
    try:
        with pytest.raises(LocalnetError, match="64 hex digits"):
            worker.wait_ready(60)
    finally:
        worker.quit(10)


def test_ratios_are_datanet_over_js_and_none_when_a_figure_is_missing(bench: Any) -> None:
    datanet = {"resolve_ms": {"p50": 10.0}, "idle_rss_mb": 80.0}
    js = {"resolve_first_value_ms": {"p50": 40.0}, "idle_rss_mb": 0.0}
    got = bench.ratios(
        datanet,
        js,
        {
            "resolve_p50": ("resolve_ms.p50", "resolve_first_value_ms.p50"),
            "idle_rss_mb": ("idle_rss_mb", "idle_rss_mb"),
            "join_seconds": ("join_s", "join_s"),
        },
    )
    assert got == {"resolve_p50": 0.25, "idle_rss_mb": None, "join_seconds": None}
