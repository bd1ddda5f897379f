"""Benchmark: datanet against js-libp2p, the same workload on both, one after the other.

One invocation runs ``bench_net.py``'s workload twice on this machine:

1. **datanet**: ``--nodes`` datanet nodes in ``--processes`` worker processes,
   exactly as ``bench_net.py`` (start and join, idle RSS of one more node,
   ``--datasets`` publishes, ``--resolves`` cold resolves);
2. **js-libp2p**: the same number of stock js-libp2p nodes (the versions pinned in
   ``tests/interop/js/package-lock.json``: libp2p 2.10, @libp2p/kad-dht 15.1.11)
   in the same number of Node.js processes (``benchmarks/js/peernet.mjs``), with
   the **same peer ids** (each js node uses its datanet twin's Ed25519 key, so
   both networks have the same key space), the same bootstrap layout, the **same
   signed descriptors under the same DHT keys**, the same publishers and the same
   seeded reader choices (a cold reader holds no copy on its own network).

Both sides are driven by the same functions of ``bench_net.py`` (``start_network``,
``idle_rss``, ``workload``) over the same line protocol; latency is measured inside
the process that owns the node (``time.perf_counter`` in Python,
``performance.now()`` in Node.js); CPU seconds and RSS are read from ``/proc`` the
same way for both.

The report, ``benchmarks/results/peer.json`` (``--out`` to change), holds both
columns (``datanet``, ``js``), ``ratios`` (datanet ÷ js: ``resolve_p50``,
``resolve_p99``, ``publish_p50``, ``publish_p99``, ``cpu_seconds_per_node``,
``join_seconds``, ``idle_rss_mb``; below 1.0 means datanet is ahead),
``other_ratios`` against the other js counterparts, and ``settings_differ``: the
settings in which the two sides differ, and why the ratios use the counterparts
they use.

Invariants:
* Both networks live on 127.0.0.1 only and never run at the same time.
* The js side needs ``node`` (20 or newer) and ``npm``; its packages are installed
  once by :func:`datanet.testing.jspeer.install_js_peer` (the interop tests' cache).

Run: ``python benchmarks/bench_peer.py --nodes 100`` (about as long as two
``bench_net.py --nodes 100`` runs; ``--nodes 12 --processes 3`` for a quick look).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _machine import REPO_ROOT, results_header
from bench_net import (
    GROWTH as HEADLINE,
)
from bench_net import (
    add_arguments,
    check_sizes,
    idle_rss,
    in_workdir,
    parameters,
    provision_network,
    publications,
    report,
    run_datanet,
    start_network,
    workload,
)

if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from datanet.devnet import DevnetNode
from datanet.errors import InvalidInput
from datanet.testing.jspeer import install_js_peer, js_peer_missing
from datanet.testing.localnet import Localnet, stop_all

JS_SOURCE = REPO_ROOT / "tests/interop/js"
PEERNET = REPO_ROOT / "benchmarks/js/peernet.mjs"

#: ratio key -> (datanet figure, js figure): the counterparts the ratios use.
RATIOS = {
    "resolve_p50": ("resolve_ms.p50", "resolve_first_value_ms.p50"),
    "resolve_p99": ("resolve_ms.p99", "resolve_first_value_ms.p99"),
    "publish_p50": ("publish_ms.p50", "publish_ms.p50"),
    "publish_p99": ("publish_ms.p99", "publish_ms.p99"),
    "cpu_seconds_per_node": ("cpu_seconds_per_node", "cpu_seconds_per_node"),
    "join_seconds": ("join_s", "join_s"),
    "idle_rss_mb": ("idle_rss_mb", "idle_rss_mb"),
}

#: The same figures against js's other counterparts (reported, not the headline).
OTHER_RATIOS = {
    "resolve_p50_vs_full_query": ("resolve_ms.p50", "resolve_ms.p50"),
    "resolve_p99_vs_full_query": ("resolve_ms.p99", "resolve_ms.p99"),
    "publish_p50_vs_quorum_acks": ("publish_ms.p50", "publish_quorum_ack_ms.p50"),
    "publish_p99_vs_quorum_acks": ("publish_ms.p99", "publish_quorum_ack_ms.p99"),
}

SETTINGS_DIFFER = [
    "Resolve: datanet's GET_VALUE stops once dht.value_quorum = 4 peers returned a valid "
    "value; js-libp2p's get() always walks the whole query, sends corrections, and only "
    "then yields its pick. The ratios use js's *first value* (the time the first remote "
    "peer's value arrived, measured in the same get): that is a quorum of one, so it is "
    "the fair counterpart of a quorum and a generous one to js (datanet waits for four "
    "values, js's figure for one). The full-query ratios are in other_ratios.",
    "Publish: both sides store locally, walk to the k = 20 closest peers and write the "
    "record to them; the figure is the whole operation as its caller waits for it "
    "(datanet's Node.publish, js's dht.put() to its end). datanet answers once "
    "dht.put_quorum = 4 peers acknowledged (the other writes go on in the background) "
    "and its walk's requests to the nearest candidates carry the record (a FIND_NODE with "
    "the record, which datanet servers store and echo; docs/kademlia.md), so most writes "
    "need no PUT_VALUE of their own; js walks the whole query, then sends PUT_VALUE to "
    "the 20 closest. datanet also verifies the signature and certificate chain, appends "
    "to its audit log and hands the record to gossip before the put (its provider "
    "announcement, where it runs in the background, is not in the figure); js runs a "
    "structural validator only (the interop peer's: envelope shape and sequence, no "
    "signature check). js's time to the 4th echoed PUT is in other_ratios, the "
    "counterpart of datanet's quorum of acks.",
    "Lookups: datanet uses alpha = 3 on one path, and 2 x put_quorum = 8 requests in "
    "flight for a put's walk; js-libp2p uses its stock alpha = 10 and 10 disjoint paths. "
    "Both use k = 20.",
    "Validation on receipt: every datanet node verifies Ed25519 signatures and the "
    "membership chain of each record it stores or returns; js nodes check structure only.",
    "Storage: datanet keeps records in SQLite (WAL) files; js-libp2p in its default "
    "in-memory datastore.",
    "Admission: datanet admits only member peers (certificate exchange after Noise); "
    "js-libp2p accepts any peer. js's connection monitor (periodic pings) is off, as in "
    "the issue's side-by-side run; datanet has no such pinger. js's per-address inbound "
    "connection rate limit (5/s) and pending-connection cap (10) are lifted, since every "
    "peer dials from 127.0.0.1 (they reset a 25-node network's joins); datanet's gater "
    "counts only connections not yet admitted against its per-address limit, so its "
    "members on one address are not held to it either.",
    "Randomness: datanet nodes are seeded (--seed); js-libp2p draws from the operating "
    "system. The workload's choices (publishers, readers, records, peer ids) are the same "
    "on both sides.",
    "Garbage collection: datanet's workers tune Python's collector as the daemon does "
    "(datanet/node/heap.py: a young-generation threshold of 20,000 allocations instead of "
    "700, gc.freeze() once joined); Node.js runs with its defaults.",
]


class JsWorker(Localnet):
    """One ``node peernet.mjs`` process: the js-libp2p counterpart of a localnet worker.

    It speaks :class:`Localnet`'s line protocol, so everything but the command line
    (:meth:`submit`, :meth:`wait_ready`, :meth:`cpu_seconds`, :meth:`rss_mb`,
    :meth:`quit`, …) is :class:`Localnet`'s own.

    Args:
        directory: the installed js packages (:func:`install_js_peer`) holding ``peernet.mjs``.
        seeds: one 32-byte Ed25519 seed per node (its peer id).
        bootstraps: the bootstrap peers' full multiaddrs, or how many of this process's
            first nodes are the bootstrap peers.
        join_concurrency: how many nodes join at once (after the first).
        log: the file the process's logs go to (default: inherited stderr).
    """

    def __init__(  # the parent's __init__ would start a Python worker
        self,
        directory: Path,
        seeds: list[bytes],
        *,
        bootstraps: list[str] | int,
        join_concurrency: int = 4,
        quorum: int = 4,
        log: Path | None = None,
    ) -> None:
        node = shutil.which("node")
        if node is None:
            raise InvalidInput("node is not on PATH")
        if not seeds:
            raise InvalidInput("a js worker hosts at least one node")
        cmd = [node, str(directory / PEERNET.name), "--join-concurrency", str(join_concurrency)]
        cmd += ["--quorum", str(quorum)]
        for seed in seeds:
            cmd += ["--key", seed.hex()]
        if isinstance(bootstraps, int):
            cmd += ["--bootstraps", str(bootstraps)]
        else:
            for addr in bootstraps:
                cmd += ["--bootstrap", addr]
        self.homes = ()
        with contextlib.ExitStack() as stack:  # the child keeps its own copy of the log
            stderr = None if log is None else stack.enter_context(log.open("wb"))
            self._start(cmd, stderr, cwd=directory)


def install(directory: Path | None = None) -> Path:
    """The js packages, installed (or reused) with ``peernet.mjs`` next to them."""
    missing = js_peer_missing()
    if missing is not None:
        raise SystemExit(f"bench_peer: {missing}")
    if directory is not None:
        shutil.copyfile(PEERNET, directory / PEERNET.name)
        return directory
    return install_js_peer(JS_SOURCE, scripts=[PEERNET])


def run_js(
    specs: list[DevnetNode],
    idle_spec: DevnetNode,
    pubs: Any,
    rng: random.Random,
    args: argparse.Namespace,
    workdir: Path,
    directory: Path,
    log: Any,
) -> dict[str, Any]:
    """The js-libp2p side: the same start, idle RSS and :func:`workload` as datanet's."""
    workdir.mkdir(parents=True, exist_ok=True)

    def spawn(index: int, block: list[int], bootstraps: list[str]) -> Localnet:
        return JsWorker(
            directory,
            [specs[i].key.seed() for i in block],
            bootstraps=bootstraps if index else args.bootstraps,
            join_concurrency=args.join_concurrency,
            quorum=args.quorum,
            log=workdir / f"worker{index}.log",
        )

    wall = time.perf_counter()
    net, timings = start_network(specs, args, workdir, log, spawn=spawn)
    try:
        cpu_joined = net.cpu_seconds()
        first = net.workers[0]
        bootstraps = [node.addrs[0] for node in first.nodes[: args.bootstraps]]
        prober = JsWorker(
            directory,
            [idle_spec.key.seed()],
            bootstraps=bootstraps,
            join_concurrency=1,
            log=workdir / "idle.log",
        )
        memory = idle_rss(idle_spec, args, workdir, worker=prober)
        log(f"idle node RSS {memory['idle_rss_mb']} MB")
        worker_rss = [round(w.rss_mb(), 1) for w in net.workers]
        figures = workload(net, pubs, rng, args, log)
        cpu_total = net.cpu_seconds()
        wall_s = time.perf_counter() - wall
    finally:
        stop_all(net.workers)
    return report(
        len(specs), args, timings, memory, worker_rss, figures, cpu_joined, cpu_total, wall_s
    )


def figure(results: dict[str, Any], path: str) -> float | None:
    """``results["a"]["b"]`` for ``path`` ``"a.b"`` (None when missing)."""
    value: Any = results
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return float(value)


def ratios(
    datanet: dict[str, Any], js: dict[str, Any], which: dict[str, tuple[str, str]]
) -> dict[str, float | None]:
    """datanet ÷ js for each ratio key (None when a figure is missing or js's is 0)."""
    out: dict[str, float | None] = {}
    for key, (ours, theirs) in which.items():
        a, b = figure(datanet, ours), figure(js, theirs)
        out[key] = None if a is None or not b else round(a / b, 3)
    return out


def run(args: argparse.Namespace, workdir: Path, directory: Path) -> dict[str, Any]:
    def log(msg: str) -> None:
        print(f"[bench_peer {args.nodes}] {msg}", file=sys.stderr, flush=True)

    specs, idle_spec = provision_network(args, workdir)
    pubs, rng = publications(specs, args)
    replay = random.Random()
    replay.setstate(rng.getstate())  # the js side makes the same reader choices
    log(f"datanet: {args.nodes} nodes in {args.processes} processes")
    (workdir / "datanet").mkdir(exist_ok=True)
    datanet = run_datanet(specs, idle_spec, pubs, rng, args, workdir / "datanet", log)
    log(f"datanet figures: {json.dumps({k: datanet[k] for k in HEADLINE})}")
    log(f"js-libp2p: {args.nodes} nodes in {args.processes} processes")
    js = run_js(specs, idle_spec, pubs, replay, args, workdir / "js", directory, log)
    log(f"js figures: {json.dumps({k: js[k] for k in HEADLINE})}")
    sizes = sorted(len(p.raw) for p in pubs)
    return {
        "nodes": args.nodes,
        "processes": args.processes,
        "ratios": ratios(datanet, js, RATIOS),
        "other_ratios": ratios(datanet, js, OTHER_RATIOS),
        "settings_differ": SETTINGS_DIFFER,
        "record_bytes": {"min": sizes[0], "median": sizes[len(sizes) // 2], "max": sizes[-1]},
        "datanet": datanet,
        "js": js,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100)
    add_arguments(parser)
    parser.add_argument(
        "--js-dir",
        type=Path,
        default=None,
        help="an installed copy of tests/interop/js (default: install or reuse the cache)",
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks/results/peer.json")
    args = parser.parse_args()
    check_sizes(parser, args, [args.nodes])
    directory = install(args.js_dir)
    versions = json.loads((JS_SOURCE / "package.json").read_text())["dependencies"]
    node_version = subprocess.run(
        ["node", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()

    started = time.perf_counter()
    body = in_workdir(args, "bench_peer", lambda path: run(args, path, directory))
    out = {
        **results_header(),
        **body,
        "parameters": {
            **parameters(args),
            "js": {"node": node_version, "packages": versions},
            "ratio_counterparts": {k: {"datanet": a, "js": b} for k, (a, b) in RATIOS.items()},
        },
        "total_s": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({"nodes": args.nodes, "ratios": out["ratios"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
