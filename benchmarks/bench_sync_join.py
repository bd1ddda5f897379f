"""Benchmark: a new node joins a real network whose nodes hold 10,000 descriptors.

``--nodes`` full datanet nodes in ``--processes`` ``localnet_worker`` processes
start with ``--descriptors`` signed descriptors already in their catalogs (one
catalog file is seeded and copied, so the benchmark does not spend its time
publishing). Then one more node, with an empty catalog, starts in a process of
its own: it joins (bootstrap, self-lookup) and reconciles with a few peers
(range-based set reconciliation, ``/datanet/catalog-sync/1.0.0``), fetching and
verifying every record it lacks. ``join_complete_seconds`` is the time from
starting its process until its catalog holds them all (``ready_seconds``: until
it had joined; the rest is anti-entropy).

Target (issue 9): join_complete_seconds <= 10 s for 10,000 descriptors on 100 nodes.

Run: ``python benchmarks/bench_sync_join.py``; the figures are written into the
``join`` key of ``benchmarks/results/sync.json`` (other keys are kept).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _machine import REPO_ROOT, results_header
from bench_net import start_network

if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from datanet.devnet import provision
from datanet.node.home import Home
from datanet.testing.localnet import Localnet, stop_all
from datanet.testing.seed import catalog_descriptors, seed_catalog

TARGET_S = 10.0


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    def log(msg: str) -> None:
        print(f"[bench_sync_join] {msg}", file=sys.stderr, flush=True)

    n = args.nodes
    _, specs = provision(workdir / "nodes", orgs=min(args.orgs, n), nodes=n + 1, bootstrap_count=3)
    newcomer, specs = specs[-1], specs[:-1]
    started = time.perf_counter()
    raws = catalog_descriptors(specs[: args.orgs], args.descriptors, prefix="join")
    seed_catalog(specs[0].home, raws)
    source = Home(specs[0].home).layout.catalog
    for spec in specs[1:]:
        shutil.copyfile(source, Home(spec.home).layout.catalog)
    log(
        f"seeded {args.descriptors} descriptors into {n} catalogs in "
        f"{time.perf_counter() - started:.1f} s"
    )
    args.join_concurrency, args.gc_freeze = 4, False
    net, timings = start_network(specs, args, workdir, log)
    try:
        started = time.perf_counter()
        worker = Localnet(
            [newcomer.home], seed=args.seed, stderr=(workdir / "newcomer.log").open("wb")
        )
        try:
            worker.wait_ready(120)
            ready = time.perf_counter() - started
            held = 0
            while time.perf_counter() - started < args.timeout:
                held = worker.call("catalog", timeout=60)["nodes"][0]["catalog_size"]
                if held >= args.descriptors:
                    break
                time.sleep(0.1)
            complete = time.perf_counter() - started
            stats = worker.call("catalog", timeout=60)["nodes"][0]["stats"]
        finally:
            worker.quit()
    finally:
        stop_all(net.workers)
    log(f"newcomer ready after {ready:.2f} s, complete ({held}) after {complete:.2f} s")
    return {
        "nodes": n,
        "descriptors": args.descriptors,
        "held": held,
        "ready_seconds": round(ready, 2),
        "join_complete_seconds": round(complete, 2) if held >= args.descriptors else None,
        "target_seconds": TARGET_S,
        "meets_target": held >= args.descriptors and complete <= TARGET_S,
        "sync": stats.get("sync"),
        "network_timings": timings,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--orgs", type=int, default=8)
    parser.add_argument("--descriptors", type=int, default=10_000)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks/results/sync.json")
    args = parser.parse_args()
    args.bootstraps = 3
    with tempfile.TemporaryDirectory(prefix="bench_sync_join-") as tmp:
        body = run(args, Path(tmp))
    doc: dict[str, Any] = {}
    if args.out.exists():
        doc = json.loads(args.out.read_text())
    doc["join"] = {**results_header(), **body}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps({"join_complete_seconds": body["join_complete_seconds"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
