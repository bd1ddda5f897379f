"""Soak: a network of N real nodes under churn and a flooding peer, watched for leaks.

Every node is a full datanet node (libp2p over TCP on 127.0.0.1, SQLite in WAL
mode) hosted by ``python -m datanet.testing.localnet_worker`` processes, as in
``bench_net.py``. For ``--minutes``:

* **publish**: every ``--publish-every`` seconds a live node publishes one of its
  own datasets: first every dataset of the pool (``--datasets-per-node`` per
  node) once, then updates of random ones (sequence + 1). The pool is fixed, so
  after warm-up the stored state should not grow.
* **lookups**: ``--lookup-threads`` threads resolve, ``--lookup-rate`` times a
  second in all, a random published dataset from a random live node that is not
  its publisher (``refresh=True``: a full DHT lookup).
* **churn**: every ``--churn-every`` seconds ``--churn-size`` random nodes (never
  a bootstrap node, never more than ``--churn-size`` at once) are closed, stay
  down ``--downtime`` seconds, and are opened again from the same data directory
  (same key, same database). A node is taken out of the workload before it stops.
* **flood**: one more admitted member node, alone in its own process, floods
  ``--flood-victims`` nodes the whole time with junk kad frames, oversized
  frames, idle streams, unknown protocols and raw TCP garbage.
* **samples**: every ``--sample-every`` seconds, while no node is down, per
  worker process: VmRSS, open fds (``/proc/<pid>/fd``), live trio tasks (the
  whole tree under the root task); per node: ``datanet.sqlite`` plus its
  ``-wal`` (and, for information, every other ``*.sqlite*`` file).

A lookup **succeeds** when the node answers with bytes this script published for
that dataset (any sequence: an update may still be spreading). It **fails** on an
error or no answer within 60 s. It is **not counted** (``excluded``) when, at its
start or its end, every node of the dataset's replica set was stopped: the k = 20
nodes closest to the dataset's DHT key, which with N <= 20 is every node; such a
lookup tests the churn, not the network.

A curve is **flat** when its end (median of the last 3 samples) is at most its
post-warm-up start (median of the first 3 samples after ``--warmup-minutes``)
times (1 + relative tolerance) plus an absolute allowance (see ``TOLERANCES``).

The script prints a short report and exits 1 when the success rate is below
99.9 % or a curve is not flat, so it can serve as a check. Results go to
``benchmarks/results/soak.json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _machine import REPO_ROOT, results_header

if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from bench_net import Net, start_network, summary

from datanet.devnet import DevnetNode, provision
from datanet.errors import DatanetError
from datanet.records.ids import DatasetId
from datanet.testing.localnet import Localnet, OpFailed, check, stop_all
from datanet.testing.records import signed_by
from routing.keyspace import key_of

#: The DHT's replication factor: a record lives on the k nodes closest to its key.
K = 20
#: A lookup without an answer after this many seconds is a failure.
LOOKUP_TIMEOUT = 60.0
SUCCESS_TARGET = 0.999

#: curve -> (relative tolerance, absolute allowance per worker or per node, why)
TOLERANCES: dict[str, tuple[float, float, str]] = {
    "rss_mb": (
        0.10,
        8.0,
        "CPython keeps freed memory in its arenas and bounded caches fill up; a leak of a "
        "node's state per churn cycle (several MB) exceeds it within a few cycles",
    ),
    "fds": (
        0.05,
        10.0,
        "a node holds one socket per connection and 4 databases (up to 12 fds); which peers "
        "are connected varies by a few percent between samples; a node's files leaked per "
        "restart exceed it within a few cycles",
    ),
    "tasks": (
        0.05,
        25.0,
        "tasks are per connection and per open stream (the flood's idle streams come and go); "
        "a node's service tasks leaked per restart (dozens) exceed it within a cycle or two",
    ),
    "db_bytes": (
        0.25,
        4.5 * 1024 * 1024,
        "the -wal file grows to SQLite's autocheckpoint (1000 pages, ~4 MiB) before it is "
        "reused; the dataset pool is fixed, so records replace records",
    ),
    "db_main_bytes": (
        0.25,
        256 * 1024,
        "datanet.sqlite without its -wal: a fixed pool of records, a fixed set of peers; "
        "pages freed by replaced records are reused",
    ),
}


def log(msg: str) -> None:
    print(f"[bench_soak] {msg}", file=sys.stderr, flush=True)


def db_sizes(home: Path) -> tuple[int, int, int]:
    """Bytes of ``datanet.sqlite``, of its ``-wal``, and of every other ``*.sqlite*`` file."""
    main = wal = other = 0
    for path in home.glob("*.sqlite*"):
        try:
            size = path.stat().st_size
        except OSError:
            continue
        if path.name == "datanet.sqlite":
            main += size
        elif path.name == "datanet.sqlite-wal":
            wal += size
        else:
            other += size
    return main, wal, other


class Soak:
    """The shared state of the workload, churn and sampling threads."""

    def __init__(self, net: Net, specs: list[DevnetNode], args: argparse.Namespace) -> None:
        self.net = net
        self.specs = specs
        self.args = args
        self.n = len(specs)
        self.rng = random.Random(args.seed)
        self.lock = threading.Condition()
        self.live = [True] * self.n
        self.busy = [0] * self.n
        self.stop = threading.Event()
        self.churn_lock = threading.Lock()  # held while nodes are down
        self.bootstraps = set(range(args.bootstraps))
        # dataset id -> publisher, sequence sent last, every raw (b64) sent
        self.datasets: dict[str, dict[str, Any]] = {}
        self.pool: list[tuple[int, str]] = [
            (node, f"soak/n{node}-d{d}")
            for node in range(self.n)
            for d in range(args.datasets_per_node)
        ]
        self.rng.shuffle(self.pool)
        self.outcomes: Counter[str] = Counter()
        self.failures: list[dict[str, Any]] = []
        self.lookup_ms: list[float] = []
        self.lookup_wall_ms: list[float] = []
        self.last_done = 0.0
        self.longest_gap_s = 0.0  # longest time without any lookup finishing
        self.publish_ms: list[float] = []
        self.publish_failures: list[dict[str, Any]] = []
        self.timeline: list[dict[str, Any]] = []  # lookups per sample window
        self.churn_cycles = 0
        self.restarts = 0
        self.errors: list[str] = []
        self.peer_keys = [key_of(spec.peer_id.to_bytes()) for spec in specs]

    # -- which nodes may take work --------------------------------------------

    def acquire(self, rng: random.Random, exclude: int | None = None) -> int | None:
        """A random live node, marked busy (it will not be stopped until released)."""
        with self.lock:
            choices = [i for i in range(self.n) if self.live[i] and i != exclude]
            if not choices:
                return None
            node = rng.choice(choices)
            self.busy[node] += 1
            return node

    def release(self, node: int) -> None:
        with self.lock:
            self.busy[node] -= 1
            self.lock.notify_all()

    def replicas(self, dataset: str) -> list[int]:
        target = key_of(DatasetId.parse(dataset).dht_key())
        order = sorted(range(self.n), key=lambda i: self.peer_keys[i] ^ target)
        return order[:K]

    def all_replicas_down(self, dataset: str) -> bool:
        with self.lock:
            return not any(self.live[i] for i in self.replicas(dataset))

    # -- threads ----------------------------------------------------------------

    def publisher(self) -> None:
        rng = random.Random(self.args.seed * 7 + 1)
        pending = list(self.pool)
        while not self.stop.wait(self.args.publish_every):
            with self.lock:
                live = [c for c in pending if self.live[c[0]]]
                if pending and not live:
                    continue  # the owners of the rest are down: next tick
                choice = live[-1] if pending else rng.choice(self.pool)
                owner, name = choice
                if not self.live[owner]:
                    continue  # try again next tick (its owner is down)
                self.busy[owner] += 1
            try:
                spec = self.specs[owner]
                ident = str(DatasetId(spec.org.org_id, name))
                state = self.datasets.get(ident)
                sequence = 1 if state is None else state["sequence"] + 1
                raw = base64.b64encode(
                    signed_by(spec, name, sequence, f"Soak dataset {name}", lifetime=6 * 3600)
                ).decode()
                with self.lock:
                    if state is None:
                        state = {"publisher": owner, "sequence": 0, "raws": set(), "done": False}
                        self.datasets[ident] = state
                    state["sequence"] = sequence
                    state["raws"].add(raw)
                try:
                    answer = self.net.call(owner, "publish", raw=raw)
                except (DatanetError, OSError) as exc:
                    self.publish_failures.append({"dataset": ident, "error": str(exc)[:300]})
                    continue
                self.publish_ms.append(float(answer["ms"]))
                with self.lock:
                    state["done"] = True
                if choice in pending:
                    pending.remove(choice)
            finally:
                self.release(owner)

    def looker(self, index: int) -> None:
        rng = random.Random(self.args.seed * 1000 + index)
        period = self.args.lookup_threads / self.args.lookup_rate
        next_at = time.monotonic()
        while not self.stop.is_set():
            next_at += period
            delay = next_at - time.monotonic()
            if delay > 0 and self.stop.wait(delay):
                return
            if delay < -10 * period:
                next_at = time.monotonic()  # far behind: do not burst to catch up
            with self.lock:
                ready = [d for d, s in self.datasets.items() if s["done"]]
            if not ready:
                continue
            dataset = rng.choice(sorted(ready))
            publisher = self.datasets[dataset]["publisher"]
            reader = self.acquire(rng, exclude=publisher)
            if reader is None:
                continue
            try:
                self.lookup(reader, dataset)
            finally:
                self.release(reader)

    def lookup(self, reader: int, dataset: str) -> None:
        down_at_start = self.all_replicas_down(dataset)
        error: str | None = None
        sent = time.monotonic()
        try:
            answer = check(
                self.net.submit(reader, "resolve", dataset_id=dataset, refresh=True),
                LOOKUP_TIMEOUT,
            )
        except OpFailed as exc:
            error = str(exc)[:300]
            ms = float(exc.answer.get("ms", 0.0))
        except DatanetError as exc:  # Timeout, LocalnetError
            error = f"{exc.code}: {exc}"[:300]
            ms = LOOKUP_TIMEOUT * 1000
        else:
            ms = float(answer["ms"])
            with self.lock:
                known = answer["raw"] in self.datasets[dataset]["raws"]
            if not known:
                error = "answered bytes this soak never published"
        done = time.monotonic()
        with self.lock:
            # the wall time includes the wait for the worker's event loop (ms does not)
            self.lookup_wall_ms.append((done - sent) * 1000)
            self.longest_gap_s = max(self.longest_gap_s, done - (self.last_done or self.t0))
            self.last_done = done
            if error is None:
                outcome = "success"
                self.lookup_ms.append(ms)
            elif down_at_start or self.all_replicas_down(dataset):
                outcome = "excluded"
            else:
                outcome = "failure"
                if len(self.failures) < 50:
                    self.failures.append(
                        {
                            "t": round(time.monotonic() - self.t0, 1),
                            "node": reader,
                            "dataset": dataset,
                            "error": error,
                            "ms": ms,
                        }
                    )
            self.outcomes[outcome] += 1

    def churner(self) -> None:
        rng = random.Random(self.args.seed * 31 + 3)
        candidates = [i for i in range(self.n) if i not in self.bootstraps]
        while not self.stop.wait(max(0.0, self.args.churn_every - self.args.downtime)):
            victims = rng.sample(candidates, min(self.args.churn_size, len(candidates)))
            with self.churn_lock:
                try:
                    self.churn(victims)
                except (DatanetError, OSError) as exc:
                    self.errors.append(f"churn: {exc}"[:300])
                    log(f"churn failed: {exc}")
                    self.stop.set()
                    return

    def churn(self, victims: list[int]) -> None:
        with self.lock:
            for node in victims:
                self.live[node] = False
            deadline = time.monotonic() + 2 * LOOKUP_TIMEOUT
            while any(self.busy[v] for v in victims):
                if not self.lock.wait(max(0.0, deadline - time.monotonic())):
                    break
        futures = [self.net.submit(v, "stop_node") for v in victims]
        for future in futures:
            check(future, 180)
        self.stop.wait(self.args.downtime)
        futures = [self.net.submit(v, "start_node") for v in victims]
        for future in futures:
            check(future, 180)
        with self.lock:
            for node in victims:
                self.live[node] = True
        self.churn_cycles += 1
        self.restarts += len(victims)

    # -- sampling -----------------------------------------------------------------

    def sample(self, t: float, flooder: Localnet) -> dict[str, Any]:
        with self.churn_lock:  # every node is up while we sample
            workers = []
            for worker in self.net.workers:
                inside = worker.call("sample", timeout=120)
                workers.append(
                    {
                        "rss_mb": round(worker.rss_mb(), 1),
                        "fds": worker.fd_count(),
                        "tasks": inside["tasks"],
                        "memory": inside.get("memory", {}),
                    }
                )
            sizes = [db_sizes(spec.home) for spec in self.specs]
        flood = flooder.call("sample", timeout=120)
        with self.lock:
            window = dict(self.outcomes)
        return {
            "t": round(t, 1),
            "workers": workers,
            "db_bytes": [main + wal for main, wal, _ in sizes],
            "db_main_bytes": [main for main, _, _ in sizes],
            "other_db_bytes": [other for _, _, other in sizes],
            "flooder": {"rss_mb": flood["rss_mb"], "fds": flood["fds"], "tasks": flood["tasks"]},
            "lookups_so_far": window,
        }

    t0 = 0.0


def curves(samples: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Per sample: the totals over the workers (rss, fds, tasks) and over the nodes (db)."""
    return {
        "rss_mb": [round(sum(w["rss_mb"] for w in s["workers"]), 1) for s in samples],
        "fds": [sum(w["fds"] for w in s["workers"]) for s in samples],
        "tasks": [sum(w["tasks"] for w in s["workers"]) for s in samples],
        "db_bytes": [sum(s["db_bytes"]) for s in samples],
        "db_main_bytes": [sum(s["db_main_bytes"]) for s in samples],
    }


#: The parts of a worker's memory a sample reads (``localnet_worker._memory_breakdown``).
MEMORY_PARTS = (
    "malloc_in_use_mb",
    "malloc_free_mb",
    "malloc_mmap_mb",
    "sqlite_mb",
    "python_blocks",
)


def memory_totals(sample: dict[str, Any]) -> dict[str, float]:
    """Each memory part of one sample, summed over the workers (parts a worker lacks: left out)."""
    out: dict[str, float] = {}
    for part in MEMORY_PARTS:
        values = [w.get("memory", {}).get(part) for w in sample["workers"]]
        if all(v is not None for v in values):
            out[part] = sum(values)
    return out


def memory_parts(samples: list[dict[str, Any]], warmup_s: float) -> dict[str, Any]:
    """Where the RSS went after warm-up: each part's start and end (medians of the first
    and last 3 samples, summed over the workers), to tell a leak from caches filling."""
    after = [memory_totals(s) for s in samples if s["t"] >= warmup_s]
    head = min(3, len(after) // 2)
    out: dict[str, Any] = {}
    if head == 0:
        return out
    for part in MEMORY_PARTS:
        values = [totals[part] for totals in after if part in totals]
        if len(values) == len(after):
            start = statistics.median(values[:head])
            end = statistics.median(values[-head:])
            out[part] = {"start": round(start, 2), "end": round(end, 2)}
    return out


def slope_per_hour(ts: list[float], ys: list[float]) -> float:
    """Least-squares slope of ``ys`` over ``ts`` (seconds), per hour."""
    if len(ts) < 2:
        return 0.0
    mt, my = statistics.fmean(ts), statistics.fmean(ys)
    den = sum((t - mt) ** 2 for t in ts)
    if den == 0:
        return 0.0
    return sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / den * 3600


def judge(samples: list[dict[str, Any]], warmup_s: float, units: dict[str, int]) -> dict[str, Any]:
    """Start/end values, slopes and the flatness verdict of every curve after warm-up."""
    after = [s for s in samples if s["t"] >= warmup_s]
    out: dict[str, Any] = {}
    if len(after) < 2:
        return {"error": f"only {len(after)} samples after warm-up: run longer"}
    ts = [s["t"] for s in after]
    for name, values in curves(after).items():
        head = min(3, len(values) // 2)
        start = statistics.median(values[:head])
        end = statistics.median(values[-head:])
        rel, per_unit, why = TOLERANCES[name]
        bound = start * (1 + rel) + per_unit * units[name]
        out[name] = {
            "start": start,
            "end": end,
            "min": min(values),
            "max": max(values),
            "slope_per_hour": round(slope_per_hour(ts, values), 2),
            "bound": round(bound, 1),
            "flat": end <= bound,
            "tolerance": f"end <= start * {1 + rel:g} + {per_unit:g} x {units[name]}",
            "why": why,
        }
    return out


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    n = args.nodes
    _, specs = provision(
        workdir / "nodes", orgs=min(args.orgs, n), nodes=n + 1, bootstrap_count=args.bootstraps
    )
    flood_spec, specs = specs[-1], specs[:-1]
    wall = time.perf_counter()
    net, timings = start_network(specs, args, workdir, log)
    flooder: Localnet | None = None
    try:
        flooder = Localnet(
            [flood_spec.home], seed=args.seed + 99, stderr=(workdir / "flooder.log").open("wb")
        )
        flooder.wait_ready(300)
        soak = Soak(net, specs, args)
        rng = random.Random(args.seed + 5)
        victims = rng.sample(range(n), min(args.flood_victims, n))
        for v in victims:
            flooder.call(
                "flood",
                peer=str(specs[v].peer_id),
                addrs=[f"/ip4/127.0.0.1/tcp/{specs[v].port}"],
                interval=args.flood_interval,
                seed=args.seed + v,
            )
        log(f"flooding nodes {victims}; soak for {args.minutes} min")
        threads = [threading.Thread(target=soak.publisher, daemon=True)]
        threads += [
            threading.Thread(target=soak.looker, args=(i,), daemon=True)
            for i in range(args.lookup_threads)
        ]
        threads.append(threading.Thread(target=soak.churner, daemon=True))
        duration = args.minutes * 60
        samples: list[dict[str, Any]] = []
        soak.t0 = t0 = time.monotonic()
        for thread in threads:
            thread.start()
        next_sample = t0
        while True:
            now = time.monotonic()
            if now - t0 >= duration or soak.stop.is_set():
                break
            if now >= next_sample:
                sample = soak.sample(now - t0, flooder)
                samples.append(sample)
                c = curves([sample])
                parts = ", ".join(f"{k} {v:.6g}" for k, v in memory_totals(sample).items())
                log(
                    f"t={sample['t']:.0f}s rss {c['rss_mb'][0]} MB "
                    f"({parts}), "
                    f"fds {c['fds'][0]}, "
                    f"tasks {c['tasks'][0]}, db {c['db_bytes'][0] / 1e6:.2f} MB, "
                    f"lookups {sample['lookups_so_far']}, cycles {soak.churn_cycles}"
                )
                next_sample += args.sample_every
            time.sleep(min(1.0, max(0.05, next_sample - time.monotonic())))
        samples.append(soak.sample(time.monotonic() - t0, flooder))
        soak.stop.set()
        for thread in threads:
            thread.join(3 * LOOKUP_TIMEOUT)
        sent = flooder.call("flood_stop")["sent"]
        wall_s = time.perf_counter() - wall
    finally:
        stop_all([*net.workers, flooder])

    counted = soak.outcomes["success"] + soak.outcomes["failure"]
    rate = soak.outcomes["success"] / counted if counted else 0.0
    units = {
        "rss_mb": len(net.workers),
        "fds": len(net.workers),
        "tasks": len(net.workers),
        "db_bytes": n,
        "db_main_bytes": n,
    }
    verdict = judge(samples, args.warmup_minutes * 60, units)
    flat = "error" not in verdict and all(v["flat"] for v in verdict.values())
    return {
        "nodes": n,
        "processes": args.processes,
        "minutes": args.minutes,
        "success_rate": round(rate, 5),
        "success_target": SUCCESS_TARGET,
        "lookups": dict(soak.outcomes),
        "lookup_ms": summary(soak.lookup_ms),
        "lookup_wall_ms": summary(soak.lookup_wall_ms),
        "longest_gap_between_lookups_s": round(soak.longest_gap_s, 1),
        "lookup_failures": soak.failures,
        "publishes": len(soak.publish_ms),
        "publish_ms": summary(soak.publish_ms),
        "publish_failures": {
            "count": len(soak.publish_failures),
            "first": soak.publish_failures[:10],
        },
        "churn": {"cycles": soak.churn_cycles, "restarts": soak.restarts, "errors": soak.errors},
        "flood": {"victims": victims, "rounds_sent": sent},
        "curves": verdict,
        "memory_parts": memory_parts(samples, args.warmup_minutes * 60),
        "flat": flat,
        "passed": flat and rate >= SUCCESS_TARGET and not soak.errors,
        "samples": samples,
        "timings": {**timings, "wall_s": round(wall_s, 1)},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument(
        "--churn-every",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds between the starts of two churn cycles",
    )
    parser.add_argument("--churn-size", type=int, default=2, help="nodes down at once")
    parser.add_argument(
        "--downtime",
        type=float,
        default=None,
        metavar="S",
        help="seconds a churned node stays down (default: churn-every / 3)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--orgs", type=int, default=4)
    parser.add_argument("--bootstraps", type=int, default=3)
    parser.add_argument("--datasets-per-node", type=int, default=3)
    parser.add_argument("--publish-every", type=float, default=2.0, metavar="S")
    parser.add_argument("--lookup-rate", type=float, default=2.0, help="lookups per second")
    parser.add_argument("--lookup-threads", type=int, default=2)
    parser.add_argument("--flood-victims", type=int, default=3)
    parser.add_argument(
        "--flood-interval",
        type=float,
        default=0.05,
        metavar="S",
        help="pause between two flood rounds against one victim",
    )
    parser.add_argument(
        "--sample-every",
        type=float,
        default=None,
        metavar="S",
        help="default: 30 s, or minutes * 5 s on runs under 6 minutes",
    )
    parser.add_argument(
        "--warmup-minutes",
        type=float,
        default=None,
        help="samples before this are not judged (default: min(3, minutes * 0.3))",
    )
    parser.add_argument("--join-concurrency", type=int, default=4)
    parser.add_argument("--no-gc-freeze", dest="gc_freeze", action="store_false")
    parser.add_argument("--workdir", type=Path, default=None, help="keep data dirs and logs here")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks/results/soak.json")
    args = parser.parse_args()
    if args.nodes < 4 or not 1 <= args.processes <= args.nodes:
        parser.error("need at least 4 nodes and 1..nodes processes")
    if args.bootstraps < 1 or args.bootstraps > args.nodes // args.processes:
        parser.error("the bootstrap nodes must all fit in the first process")
    if not 1 <= args.churn_size <= max(1, (args.nodes - args.bootstraps) // 3):
        parser.error("churn at most a third of the non-bootstrap nodes at once")
    if args.downtime is None:
        args.downtime = args.churn_every / 3
    if not 0 < args.downtime < args.churn_every:
        parser.error("--downtime must be shorter than --churn-every")
    if args.sample_every is None:
        args.sample_every = 30.0 if args.minutes >= 6 else args.minutes * 5
    if args.warmup_minutes is None:
        args.warmup_minutes = min(3.0, args.minutes * 0.3)

    started = time.perf_counter()
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        body = run(args, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="bench_soak-") as tmp:
            body = run(args, Path(tmp))
    out = {
        **results_header(),
        **body,
        "parameters": {
            "churn_every_s": args.churn_every,
            "churn_size": args.churn_size,
            "downtime_s": args.downtime,
            "bootstraps_never_churned": args.bootstraps,
            "datasets": args.datasets_per_node * args.nodes,
            "publish_every_s": args.publish_every,
            "lookup_rate_per_s": args.lookup_rate,
            "flood_victims": args.flood_victims,
            "flood_interval_s": args.flood_interval,
            "sample_every_s": args.sample_every,
            "warmup_minutes": args.warmup_minutes,
            "seed": args.seed,
            "k": K,
            "lookup": "resolve refresh=True from a live node that is not the publisher",
            "success": "the answer is bytes this soak published for that dataset",
            "excluded": "every node of the dataset's replica set was down at start or end",
        },
        "total_s": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    report(out)
    return 0 if out["passed"] else 1


def report(out: dict[str, Any]) -> None:
    lookups = out["lookups"]
    print(
        f"soak: {out['nodes']} nodes, {out['minutes']} min, "
        f"{out['churn']['cycles']} churn cycles ({out['churn']['restarts']} restarts), "
        f"flood rounds {sum(out['flood']['rounds_sent'].values())}"
    )
    print(
        f"lookups: {lookups.get('success', 0)} ok, {lookups.get('failure', 0)} failed, "
        f"{lookups.get('excluded', 0)} excluded; success {out['success_rate']:.4%} "
        f"(target {out['success_target']:.1%}); p50 {out['lookup_ms'].get('p50')} ms, "
        f"wall p99 {out['lookup_wall_ms'].get('p99')} ms, "
        f"longest gap {out['longest_gap_between_lookups_s']} s"
    )
    curves_ = out["curves"]
    if "error" in curves_:
        print(f"curves: {curves_['error']}")
    for name, c in curves_.items():
        if name == "error":
            continue
        print(
            f"{name:>9}: start {c['start']:.6g} end {c['end']:.6g} "
            f"slope {c['slope_per_hour']:+.6g}/h bound {c['bound']:.6g} "
            f"{'flat' if c['flat'] else 'NOT FLAT'}"
        )
    parts = out.get("memory_parts", {})
    if parts:
        print(
            "   memory: "
            + ", ".join(f"{k} {v['start']:g} -> {v['end']:g}" for k, v in parts.items())
        )
    print("PASSED" if out["passed"] else "FAILED")


if __name__ == "__main__":
    raise SystemExit(main())
