"""Benchmark: what one publish sends across the whole network, message by message.

Starts a bench_net network (``--nodes`` real nodes in ``--processes`` localnet
workers, the same provisioning, join and seeds as ``bench_net.py``), reads
every node's traffic counters (the worker's ``{"op": "counters"}``: kad
requests by direction, kind and outcome; the gossip router's and transport's
counters; the witness counters), publishes ``--datasets`` descriptors one at a
time, waits ``--drain`` seconds for gossip and the background writes to end,
reads the counters again, and reports each counter's network-wide increase
divided by the number of publishes, with the CPU seconds of the phase.

It answers "which messages does a publish cost", not "how fast": its
latencies are printed for orientation only (bench_net and bench_peer measure
those). docs/benchmarks.md quotes its counts.

Run: ``python benchmarks/bench_publish_traffic.py`` (100 nodes, 20 publishes;
results in ``benchmarks/results/publish_traffic.json``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _machine import REPO_ROOT, results_header
from bench_net import (
    Net,
    add_arguments,
    check_sizes,
    in_workdir,
    parameters,
    provision_network,
    publications,
    start_network,
    stop_all,
)


def traffic(net: Net) -> Counter[str]:
    """Every node's counters, summed: ``kad out/find_node/ok``, ``gossip.router delivered``…"""
    total: Counter[str] = Counter()
    for node in sorted(net.where):
        counters = net.call(node, "counters")
        groups = {
            "kad": counters["kad"],
            "gossip.router": counters["gossip"]["router"],
            "gossip.transport": counters["gossip"]["transport"],
            "witness": counters["witness"],
        }
        for group, values in groups.items():
            for name, value in values.items():
                if isinstance(value, int) and not isinstance(value, bool):
                    total[f"{group} {name}"] += value
    return total


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    def log(msg: str) -> None:
        print(f"[bench_publish_traffic {args.nodes}] {msg}", file=sys.stderr, flush=True)

    specs, _ = provision_network(args, workdir)
    pubs, _ = publications(specs, args)
    net, timings = start_network(specs, args, workdir, log)
    try:
        time.sleep(args.settle)
        before, cpu_before = traffic(net), net.cpu_seconds()
        publish_ms = []
        for pub in pubs:
            answer = net.call(pub.publisher, "publish", raw=pub.raw_b64, key=pub.key_b64)
            publish_ms.append(answer["ms"])
        time.sleep(args.drain)
        after, cpu_after = traffic(net), net.cpu_seconds()
    finally:
        stop_all(net.workers)
    n = len(pubs)
    per_publish = {
        key: round((after[key] - before[key]) / n, 1)
        for key in sorted(after)
        if after[key] != before[key]
    }
    log(f"{n} publishes, p50 {statistics.median(publish_ms):.0f} ms")
    return {
        "nodes": args.nodes,
        "publishes": n,
        "per_publish": per_publish,
        "cpu_seconds": round(cpu_after - cpu_before, 2),
        "publish_p50_ms": round(statistics.median(publish_ms), 1),
        "timings": timings,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100)
    add_arguments(parser)
    parser.add_argument("--drain", type=float, default=8.0, help="seconds after the last publish")
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "benchmarks/results/publish_traffic.json"
    )
    parser.set_defaults(datasets=20, settle=5.0)
    args = parser.parse_args()
    check_sizes(parser, args, [args.nodes])
    started = time.perf_counter()
    body = in_workdir(args, "bench_publish_traffic", lambda path: run(args, path))
    for key, value in body["per_publish"].items():
        print(f"{value:10.1f}  {key}")
    out = {
        **results_header(),
        **body,
        "parameters": {**parameters(args), "drain_s": args.drain},
        "total_s": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
