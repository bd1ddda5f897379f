"""Benchmark: publish and cold resolve on a real network of N nodes over several processes.

Every node is a full datanet node (libp2p over TCP on 127.0.0.1 with Noise and
Yamux, SQLite in WAL mode, signed descriptors) hosted by ``python -m
datanet.testing.localnet_worker`` processes, driven over their stdin/stdout:

1. provision ``--nodes`` data directories of ``--orgs`` organizations (plus one
   more for the idle-memory probe); the first ``--bootstraps`` nodes are
   everyone's bootstrap peers;
2. start the worker holding the bootstrap nodes, then the other workers
   (``--processes`` in all, contiguous blocks of nodes); every node then looks
   itself up once more, so that early joiners learn the late ones;
3. idle memory: one more node joins alone in its own process; after
   ``--settle`` seconds its VmRSS is read, then it leaves (so the measured
   network has exactly ``--nodes`` nodes);
4. publish ``--datasets`` descriptors, one at a time, each from a random node
   (latency = ``Node.publish``: verify, store, PUT_VALUE to the k closest);
5. ``--resolves`` cold resolves, one at a time: a random dataset from a random
   node that holds no copy of it (``refresh=True``: a full DHT lookup); success
   means the very bytes that were published came back.

Latencies are measured inside the worker (``time.perf_counter`` around the
operation), so pipe latency between this script and the workers is not in them.
CPU seconds are the workers' user+system time from ``/proc/<pid>/stat`` over the
whole run (start, join, publish, resolve), divided by the node count.

Targets (the brief, 100 nodes): resolve p50 <= 30 ms, p99 <= 150 ms, success
100%; publish p50 <= 200 ms; idle node RSS <= 100 MB.

Run: ``python benchmarks/bench_net.py`` (50 nodes) or ``--nodes 100``; several
sizes in one invocation with ``--nodes 25 50 100 200`` (each size is a fresh
network, one after the other; every figure is reported per size, in ``sizes``,
and side by side in ``growth``). Results go to ``benchmarks/results/net.json``
(``--out`` to change).

``benchmarks/bench_peer.py`` runs the same workload (:func:`workload`) on a
js-libp2p network: the functions here take the workers to drive as a ``spawn``
callable, and a worker needs only the line protocol of
``datanet.testing.localnet_worker``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _machine import REPO_ROOT, results_header

if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from datanet.devnet import DevnetNode, provision
from datanet.records.descriptor import decode_descriptor_unverified
from datanet.testing.localnet import Localnet, OpFailed, check, stop_all
from datanet.testing.records import signed_by

#: py-spy next to this interpreter (``pip install py-spy``), else on PATH.
PY_SPY = (
    str(Path(sys.executable).with_name("py-spy"))
    if Path(sys.executable).with_name("py-spy").exists()
    else (shutil.which("py-spy") or "py-spy")
)

TARGETS = {
    "resolve_p50_ms": 30.0,
    "resolve_p99_ms": 150.0,
    "success_rate": 1.0,
    "publish_p50_ms": 200.0,
    "idle_rss_mb": 100.0,
}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "p50": round(statistics.median(values), 2),
        "p90": round(percentile(values, 90), 2),
        "p99": round(percentile(values, 99), 2),
        "max": round(max(values), 2),
        "mean": round(statistics.fmean(values), 2),
    }


#: Starts one worker process: (worker index, the nodes it hosts, the bootstrap peers'
#: full multiaddrs, empty for the first worker, which hosts them). A worker is a
#: :class:`Localnet` or anything with its methods and line protocol.
Spawn = Callable[[int, list[int], list[str]], Localnet]


def ready_timeout(nodes: int) -> float:
    """How long to wait for a worker's nodes to join: generous, growing with the network
    (a 200-node network on 2 loaded cores joins in many minutes)."""
    return max(300.0, 8.0 * nodes)


class Net:
    """The workers and which (worker, slot) hosts each node."""

    def __init__(self) -> None:
        self.workers: list[Localnet] = []
        self.where: dict[int, tuple[Localnet, int]] = {}

    def submit(self, node: int, op: str, **fields: Any) -> Future[dict[str, Any]]:
        worker, slot = self.where[node]
        return worker.submit(op, node=slot, **fields)

    def call(self, node: int, op: str, **fields: Any) -> dict[str, Any]:
        return check(self.submit(node, op, **fields), 120.0)

    def cpu_seconds(self) -> float:
        return sum(w.cpu_seconds() for w in self.workers)


def sign(spec: DevnetNode, name: str, sequence: int) -> bytes:
    return signed_by(
        spec,
        name,
        sequence,
        f"Benchmark dataset {name}",
        description="A dataset published by bench_net.",
        keywords=("benchmark", "network"),
        lifetime=6 * 3600,
    )


def start_network(
    specs: list[DevnetNode],
    args: argparse.Namespace,
    workdir: Path,
    log: Any,
    spawn: Spawn | None = None,
) -> tuple[Net, dict[str, float]]:
    """Start the workers (bootstrap block first); every node then bootstraps again.

    ``spawn`` starts one worker (default: a datanet :class:`Localnet` of the
    provisioned nodes, whose configuration names the bootstrap peers).
    """
    n, p = len(specs), args.processes
    blocks = [list(range(i * n // p, (i + 1) * n // p)) for i in range(p)]
    net = Net()
    timings: dict[str, float] = {}
    wait = ready_timeout(n)

    def datanet_worker(index: int, block: list[int], bootstraps: list[str]) -> Localnet:
        with (workdir / f"worker{index}.log").open("wb") as stderr:  # the child keeps its copy
            return Localnet(
                [specs[i].home for i in block],
                seed=args.seed * 100 + index,
                stderr=stderr,
                join_concurrency=args.join_concurrency,
                gc_freeze=args.gc_freeze,
            )

    def start(index: int, block: list[int], bootstraps: list[str]) -> Localnet:
        worker = (spawn or datanet_worker)(index, block, bootstraps)
        net.workers.append(worker)
        for slot, node in enumerate(block):
            net.where[node] = (worker, slot)
        return worker

    started = time.perf_counter()
    try:
        first = start(0, blocks[0], [])
        nodes = first.wait_ready(wait)
        bootstraps = [
            f"{a}/p2p/{node.peer_id}" if "/p2p/" not in a else a
            for node in nodes[: args.bootstraps]
            for a in node.addrs[:1]
        ]
        rest = [start(i, block, bootstraps) for i, block in enumerate(blocks[1:], start=1)]
        for worker in rest:
            worker.wait_ready(wait)
        timings["join_s"] = round(time.perf_counter() - started, 2)
        log(f"{n} nodes in {p} processes joined in {timings['join_s']} s")

        started = time.perf_counter()
        sizes = [bootstrap(net, i) for i in range(n)]
    except BaseException:
        stop_all(net.workers)  # a worker that did not join is not left running
        raise
    timings["bootstrap_s"] = round(time.perf_counter() - started, 2)
    timings["routing_table_min"] = min(sizes)
    timings["routing_table_median"] = statistics.median(sizes)
    timings["join_and_bootstrap_s"] = round(timings["join_s"] + timings["bootstrap_s"], 2)
    log(f"self-lookups done in {timings['bootstrap_s']} s; table sizes min {min(sizes)}")
    if args.gc_freeze and spawn is None:
        for worker in net.workers:
            worker.call("gc_freeze", timeout=120)
    return net, timings


@contextlib.contextmanager
def profiled(net: Net, directory: Path | None, phase: str) -> Iterator[None]:
    """Sample every worker with py-spy during the block (``--profile DIR``), if asked."""
    if directory is None:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    spies = [
        subprocess.Popen(
            [
                PY_SPY,
                "record",
                "--pid",
                str(worker.pid),
                "--rate",
                "200",
                "--format",
                "raw",
                "--output",
                str(directory / f"{phase}-worker{i}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i, worker in enumerate(net.workers)
    ]
    time.sleep(1.0)  # let py-spy attach
    try:
        yield
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)
        for spy in spies:
            spy.wait(30)


def bootstrap(net: Net, node: int, patience: float = 300.0) -> int:
    """Have ``node`` look itself up again; an isolated node rejoins by itself, so retry.

    On a loaded machine a node can lose every routing table entry to timeouts
    and need a while to rejoin: it is retried every 2 s for up to ``patience``
    seconds.
    """
    deadline = time.monotonic() + patience
    while True:
        try:
            return int(net.call(node, "bootstrap")["routing_table_size"])
        except OpFailed as exc:
            if exc.remote_code != "invalid_input" or time.monotonic() > deadline:
                raise
            time.sleep(2.0)  # an empty routing table: the node retries its join


def idle_rss(
    spec: DevnetNode, args: argparse.Namespace, workdir: Path, worker: Localnet | None = None
) -> dict[str, float]:
    """VmRSS of one node alone in its own process, after it joined and settled.

    ``worker``: that process, already started (default: a datanet worker of ``spec``).
    """
    if worker is None:
        with (workdir / "idle.log").open("wb") as stderr:
            worker = Localnet([spec.home], seed=args.seed, stderr=stderr, join_concurrency=1)
    try:
        worker.wait_ready(300)
        joined = worker.rss_mb()
        time.sleep(args.settle)
        settled = worker.rss_mb()
        usage = worker.call("usage")
        table = worker.call("status", node=0)["routing"]["routing_table_size"]
    finally:
        worker.quit()
    return {
        "idle_rss_mb": round(settled, 1),
        "rss_just_joined_mb": round(joined, 1),
        "idle_node_routing_table": table,
        "idle_node_cpu_seconds": round(usage["cpu_seconds"], 2),
    }


@dataclass(frozen=True)
class Publication:
    """One descriptor of the workload: who publishes it, its bytes, id and DHT key."""

    publisher: int
    raw: bytes
    dataset_id: str
    key: bytes

    @property
    def raw_b64(self) -> str:
        return base64.b64encode(self.raw).decode()

    @property
    def key_b64(self) -> str:
        return base64.b64encode(self.key).decode()


def publications(
    specs: list[DevnetNode], args: argparse.Namespace
) -> tuple[list[Publication], random.Random]:
    """The ``--datasets`` descriptors, each signed by a random node (seeded by ``--seed``).

    Returns them and the random generator, positioned for :func:`workload`'s reader
    choices (so a second network can replay the same choices from a copy of it).
    """
    rng = random.Random(args.seed)
    out = []
    for d in range(args.datasets):
        publisher = rng.randrange(len(specs))
        raw = sign(specs[publisher], f"bench/set{d}", 1)
        ident = decode_descriptor_unverified(raw).dataset_id
        out.append(Publication(publisher, raw, str(ident), ident.dht_key()))
    return out, rng


def workload(
    net: Net,
    pubs: list[Publication],
    rng: random.Random,
    args: argparse.Namespace,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Publish every descriptor, then ``--resolves`` cold resolves, one at a time.

    Ops sent (the localnet worker's): ``publish`` (``raw``, ``key``), ``held``
    (``key``), ``resolve`` (``dataset_id``, ``key``, ``refresh``). A worker that
    answers a publish with ``ack_ms`` (the time each replica echoed the record)
    and a resolve with ``first_ms``/``first_raw`` (the first value a peer sent)
    gets those figures reported too (the js peer network does).
    """
    n = len(net.where)
    publish_ms: list[float] = []
    quorum_ack_ms: list[float] = []
    replicas: list[int] = []
    cpu_before = net.cpu_seconds()
    with profiled(net, args.profile, "publish"):
        for pub in pubs:
            answer = net.call(pub.publisher, "publish", raw=pub.raw_b64, key=pub.key_b64)
            publish_ms.append(answer["ms"])
            replicas.append(answer["replicas"])
            acks = answer.get("ack_ms")
            if acks is not None and len(acks) >= args.quorum:
                quorum_ack_ms.append(sorted(acks)[args.quorum - 1])
    cpu_publish = net.cpu_seconds() - cpu_before
    log(f"published {len(pubs)}: p50 {statistics.median(publish_ms):.1f} ms")

    # cold resolves
    by_id = {pub.dataset_id: pub for pub in pubs}
    datasets = sorted(by_id)
    resolve_ms: list[float] = []
    first_ms: list[float] = []
    failures: list[dict[str, Any]] = []
    first_wrong = 0
    warm_skips = 0
    warm_resolves = 0
    plan = []  # (dataset, reader): a cold reader holds no copy
    for r in range(args.resolves):
        pub = by_id[datasets[r % len(datasets)]]
        readers = [i for i in range(n) if i != pub.publisher]
        rng.shuffle(readers)
        # on networks of k+1 nodes or fewer every node is a replica: then a
        # replica resolves (still a full lookup, its copy does not end it)
        chosen = readers[0]
        for reader in readers[: args.cold_tries]:
            if not net.call(reader, "held", key=pub.key_b64)["held"]:
                chosen = reader
                break
            warm_skips += 1
        plan.append((pub, chosen))
    cpu_before = net.cpu_seconds()
    with profiled(net, args.profile, "resolve"):
        for pub, chosen in plan:
            try:
                answer = net.call(
                    chosen, "resolve", dataset_id=pub.dataset_id, key=pub.key_b64, refresh=True
                )
            except OpFailed as exc:
                failures.append({"dataset": pub.dataset_id, "node": chosen, "error": str(exc)})
                resolve_ms.append(float(exc.answer.get("ms", 0.0)))
                continue
            resolve_ms.append(answer["ms"])
            warm_resolves += answer["held_before"]
            if answer["raw"] != pub.raw_b64:
                failures.append({"dataset": pub.dataset_id, "node": chosen, "error": "wrong bytes"})
            if answer.get("first_ms") is not None:
                first_ms.append(answer["first_ms"])
                first_wrong += answer.get("first_raw") != pub.raw_b64
    cpu_resolve = net.cpu_seconds() - cpu_before
    attempts = len(resolve_ms)
    log(f"resolved {attempts}: p50 {summary(resolve_ms)['p50']} ms, {len(failures)} failed")
    out: dict[str, Any] = {
        "publish_ms": summary(publish_ms),
        "resolve_ms": summary(resolve_ms),
        "success_rate": round((attempts - len(failures)) / attempts, 4) if attempts else 0.0,
        "replicas": {"min": min(replicas), "median": statistics.median(replicas)},
        "resolves": attempts,
        "resolve_ms_halves": {
            "first": summary(resolve_ms[: attempts // 2]),
            "second": summary(resolve_ms[attempts // 2 :]),
        },
        "resolve_failures": failures[:20],
        "warm_readers_skipped": warm_skips,
        "resolves_by_a_replica": warm_resolves,
        "cpu_seconds_publish_phase": round(cpu_publish, 2),
        "cpu_seconds_resolve_phase": round(cpu_resolve, 2),
    }
    if quorum_ack_ms:
        out["publish_quorum_ack_ms"] = summary(quorum_ack_ms)
    if first_ms:
        out["resolve_first_value_ms"] = summary(first_ms)
        out["first_value_wrong"] = first_wrong
    return out


def provision_network(
    args: argparse.Namespace, workdir: Path
) -> tuple[list[DevnetNode], DevnetNode]:
    """``--nodes`` provisioned data directories, and one more for the idle-memory probe."""
    n = args.nodes
    _, specs = provision(
        workdir / "nodes",
        orgs=min(args.orgs, n),
        nodes=n + 1,
        bootstrap_count=args.bootstraps,
    )
    return specs[:-1], specs[-1]


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """One network of ``args.nodes`` datanet nodes: start, idle RSS, publish, resolve."""

    def log(msg: str) -> None:
        print(f"[bench_net {args.nodes}] {msg}", file=sys.stderr, flush=True)

    specs, idle_spec = provision_network(args, workdir)
    pubs, rng = publications(specs, args)
    return run_datanet(specs, idle_spec, pubs, rng, args, workdir, log)


def run_datanet(
    specs: list[DevnetNode],
    idle_spec: DevnetNode,
    pubs: list[Publication],
    rng: random.Random,
    args: argparse.Namespace,
    workdir: Path,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """The datanet side: start the network, measure idle RSS, run :func:`workload`."""
    n = len(specs)
    wall = time.perf_counter()
    net, timings = start_network(specs, args, workdir, log)
    try:
        cpu_joined = net.cpu_seconds()
        memory = idle_rss(idle_spec, args, workdir)
        log(f"idle node RSS {memory['idle_rss_mb']} MB")
        worker_rss = [round(w.rss_mb(), 1) for w in net.workers]
        figures = workload(net, pubs, rng, args, log)
        cpu_total = net.cpu_seconds()
        gc_stats = [w.call("usage")["gc"] for w in net.workers]
        wall_s = time.perf_counter() - wall
    finally:
        stop_all(net.workers)
    return report(n, args, timings, memory, worker_rss, figures, cpu_joined, cpu_total, wall_s) | {
        "worker_gc": gc_stats
    }


def report(
    n: int,
    args: argparse.Namespace,
    timings: dict[str, float],
    memory: dict[str, float],
    worker_rss: list[float],
    figures: dict[str, Any],
    cpu_joined: float,
    cpu_total: float,
    wall_s: float,
) -> dict[str, Any]:
    """The results of one network, in net.json's layout (headline figures first)."""
    pub, res = figures["publish_ms"], figures["resolve_ms"]
    results = {
        "nodes": n,
        "processes": args.processes,
        "publish_p50_ms": pub["p50"],
        "publish_p99_ms": pub["p99"],
        "resolve_p50_ms": res["p50"],
        "resolve_p99_ms": res["p99"],
        "success_rate": figures["success_rate"],
        "idle_rss_mb": memory["idle_rss_mb"],
        "cpu_seconds_per_node": round(cpu_total / n, 3),
        "join_s": timings["join_and_bootstrap_s"],
    }
    rest = {
        k: v
        for k, v in figures.items()
        if k not in ("success_rate", "cpu_seconds_publish_phase", "cpu_seconds_resolve_phase")
    }
    return {
        **results,
        "targets": TARGETS,
        "meets_targets": {
            key: (results[key] >= goal if key == "success_rate" else results[key] <= goal)
            for key, goal in TARGETS.items()
        },
        **rest,
        "memory": {**memory, "worker_rss_mb": worker_rss},
        "cpu_seconds": {
            "total": round(cpu_total, 2),
            "start_and_join": round(cpu_joined, 2),
            "publish_phase": figures["cpu_seconds_publish_phase"],
            "resolve_phase": figures["cpu_seconds_resolve_phase"],
        },
        "timings": {**timings, "wall_s": round(wall_s, 1)},
    }


#: The per-size figures ``growth`` puts side by side (``--nodes`` with several sizes).
GROWTH = (
    "publish_p50_ms",
    "publish_p99_ms",
    "resolve_p50_ms",
    "resolve_p99_ms",
    "success_rate",
    "idle_rss_mb",
    "cpu_seconds_per_node",
    "join_s",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options bench_net and bench_peer share (everything but ``--nodes`` and ``--out``)."""
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--orgs", type=int, default=8)
    parser.add_argument("--bootstraps", type=int, default=3)
    parser.add_argument("--datasets", type=int, default=50)
    parser.add_argument("--resolves", type=int, default=200)
    parser.add_argument("--settle", type=float, default=10.0, help="seconds before reading RSS")
    parser.add_argument("--join-concurrency", type=int, default=4)
    parser.add_argument("--cold-tries", type=int, default=40, help="readers tried per resolve")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--quorum",
        type=int,
        default=4,
        help="report the time to this many replica acks of a publish, where the peer says",
    )
    parser.add_argument(
        "--no-gc-freeze",
        dest="gc_freeze",
        action="store_false",
        help="workers leave the collector untuned: no gc.freeze() once joined, CPython's "
        "thresholds (see datanet.node.heap)",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="keep data dirs and logs here")
    parser.add_argument(
        "--profile", type=Path, default=None, help="write py-spy samples of each phase here"
    )


def check_sizes(
    parser: argparse.ArgumentParser, args: argparse.Namespace, sizes: list[int]
) -> None:
    """Refuse sizes the process layout cannot hold."""
    if min(sizes) < 2 or not 1 <= args.processes <= min(sizes):
        parser.error("need at least 2 nodes and 1..nodes processes")
    if args.bootstraps < 1 or args.bootstraps > min(sizes) // args.processes:
        parser.error("the bootstrap nodes must all fit in the first process")


def parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The workload's settings, recorded in the results."""
    return {
        "orgs": args.orgs,
        "bootstraps": args.bootstraps,
        "datasets": args.datasets,
        "resolves": args.resolves,
        "settle_s": args.settle,
        "seed": args.seed,
        "k": 20,
        "alpha": 3,
        "admission": "members",
        "gc_freeze": args.gc_freeze,
        "transport": "TCP on 127.0.0.1, Noise, Yamux",
        "latency": "measured inside the worker process around the node operation",
        "cold": "refresh=True from a node holding no copy (not the publisher, no replica)",
        "join_s": "workers started and joined, then every node's second self-lookup",
    }


def in_workdir(args: argparse.Namespace, name: str, body: Callable[[Path], Any]) -> Any:
    """Run ``body`` in ``--workdir``/name (kept) or in a temporary directory."""
    if args.workdir is not None:
        path = args.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return body(path)
    with tempfile.TemporaryDirectory(prefix=f"{name}-") as tmp:
        return body(Path(tmp))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--nodes",
        type=int,
        nargs="+",
        default=[50],
        help="network size; several sizes run one after the other (e.g. 25 50 100 200)",
    )
    add_arguments(parser)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks/results/net.json")
    args = parser.parse_args()
    sizes: list[int] = args.nodes
    check_sizes(parser, args, sizes)

    started = time.perf_counter()
    bodies = []
    for size in sizes:
        one = argparse.Namespace(**{**vars(args), "nodes": size})
        bodies.append(in_workdir(args, f"bench_net-{size}", lambda path, one=one: run(one, path)))
        print(json.dumps({k: bodies[-1][k] for k in ("nodes", *GROWTH)}), flush=True)
    out = {
        **results_header(),
        "sizes": bodies,
        "growth": {key: {str(b["nodes"]): b[key] for b in bodies} for key in GROWTH},
        "parameters": parameters(args),
        "total_s": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
