"""Benchmark: Kademlia lookups on a simulated network of 1,000 and 10,000 nodes.

Runs the production routing code (coordinator, lookups, routing table, request
server, record stores) on :mod:`routing.sim`'s fake network and clock:

1. build ``N`` nodes and fill their routing tables "as if bootstrapped" (for
   ``--join-nodes`` sizes, also a network where every node bootstraps for real);
2. publish ``--keys`` values with real PUT_VALUE lookups from random nodes;
3. for each vanished fraction (0, 0.1, 0.3; cumulative), make that share of all
   nodes vanish without notice, then run ``--lookups`` GET_VALUE lookups for the
   published keys from random surviving nodes, ``--concurrency`` at a time.

Per run it reports the median and p99 of *rounds* (the longest chain of
request→response dependencies until the lookup terminated; see
docs/kademlia.md), messages (requests sent) per lookup, the success rate (the
lookup returned the published value), how many of the true 20 closest live
nodes the lookup found, the fake-time latency, and the wall time.

Targets (docs/architecture.md, the brief): median rounds <= ceil(log2(N)/3) + 1;
success >= 99% with 30% of nodes vanished; the 10,000-node run (setup included)
completes in under 10 minutes on this 2-core machine.

Run: ``python benchmarks/bench_sim.py`` (``--nodes 1000 --lookups 200`` for a
quick look). Results go to ``benchmarks/results/sim.json``.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _machine import REPO_ROOT, results_header

if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from routing.coordinator import Coordinator
from routing.keyspace import key_of
from routing.lookup import ValueResult
from routing.sim import LinkModel, Simulation
from routing.wire import MessageType

K = 20
WALL_LIMIT_10K = 600.0


def rounds_target(n: int) -> int:
    """The brief's bound on median rounds for ``n`` nodes."""
    return math.ceil(math.log2(n) / 3) + 1


def p99(values: list[float]) -> float:
    """The 99th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def true_closest_alive(sim: Simulation, keyed: list[tuple[int, bytes]], key: bytes) -> set[bytes]:
    """Ids of the K live nodes nearest to ``key`` (global knowledge)."""
    t = key_of(key)
    best = heapq.nsmallest(K, keyed, key=lambda kv: kv[0] ^ t)
    return {pid for _, pid in best}


def run_lookups(
    sim: Simulation,
    published: dict[bytes, bytes],
    lookups: int,
    concurrency: int,
    rng: random.Random,
) -> dict[str, Any]:
    """Run GET_VALUE lookups from random live nodes; return the run's figures."""
    alive = sim.alive()
    keyed = [(key_of(n.peer.id), n.peer.id) for n in alive]
    keys = list(published)
    rounds: list[float] = []
    messages: list[float] = []
    latency: list[float] = []
    timeouts: list[float] = []
    closest_found: list[float] = []
    successes = 0
    sent_before = sim.network.sent_by_type.copy()
    started = time.perf_counter()
    done = 0
    while done < lookups:
        batch = []
        for _ in range(min(concurrency, lookups - done)):
            asker = rng.choice(alive)
            key = rng.choice(keys)

            def op(c: Coordinator, now: float, key: bytes = key) -> int:
                return c.get_value(key, now)

            batch.append((asker, key, op))
        results = sim.run_many([(asker, op) for asker, _, op in batch])
        by_node: dict[tuple[bytes, bytes], ValueResult] = {}
        for qd, (asker, key, _) in zip(results, batch, strict=True):
            assert isinstance(qd.result, ValueResult)
            by_node[(asker.peer.id, key)] = qd.result
            r = qd.result
            rounds.append(r.stats.rounds)
            messages.append(r.stats.requests)
            timeouts.append(r.stats.timeouts)
            latency.append(r.stats.finished_at - r.stats.started_at)
            successes += r.best == published[key]
            truth = true_closest_alive(sim, keyed, key) - {asker.peer.id}
            found = {p.id for p in r.closest}
            closest_found.append(len(truth & found) / max(1, len(truth)))
        done += len(batch)
    wall = time.perf_counter() - started
    sent = sim.network.sent_by_type - sent_before
    return {
        "lookups": lookups,
        "median_rounds": statistics.median(rounds),
        "mean_rounds": round(statistics.mean(rounds), 3),
        "p99_rounds": p99(rounds),
        "max_rounds": max(rounds),
        "messages_per_lookup": round(statistics.mean(messages), 2),
        "median_messages": statistics.median(messages),
        "p99_messages": p99(messages),
        "timeouts_per_lookup": round(statistics.mean(timeouts), 2),
        "success_rate": successes / lookups,
        "closest_found_fraction": round(statistics.mean(closest_found), 4),
        "latency_p50_fake_s": round(statistics.median(latency), 4),
        "latency_p99_fake_s": round(p99(latency), 4),
        "pings_sent": sent[MessageType.PING],
        "wall_seconds": round(wall, 2),
    }


def bench_size(
    args: argparse.Namespace, n: int, tables: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """All runs for one network size; returns the runs and the size's totals.

    ``tables`` is ``"filled"`` (as if bootstrapped, from global knowledge) or
    ``"joined"`` (every node bootstraps for real through the previous one).
    """
    t0 = time.perf_counter()
    sim = Simulation(n, seed=args.seed, link=LinkModel(loss=args.loss))
    if tables == "joined":
        sim.join_all()
    else:
        sim.fill_tables()
    setup = time.perf_counter() - t0
    rng = random.Random(args.seed + 1)
    published: dict[bytes, bytes] = {}
    t1 = time.perf_counter()
    acks = []
    for i in range(args.keys):
        key = b"/sim/bench/%d" % i
        value = sim.validator.make_value(key, 1, b"value-%d" % i)
        acks.append(len(sim.publish(rng.choice(sim.nodes), key, value).acked))
        published[key] = value
    publish = time.perf_counter() - t1
    print(
        f"N={n} ({tables} tables): setup {setup:.1f} s, "
        f"published {args.keys} keys in {publish:.1f} s "
        f"(median acks {statistics.median(acks)})",
        flush=True,
    )
    runs = []
    for fraction in args.fractions:
        sim.vanish(fraction)
        run: dict[str, Any] = {"nodes": n, "vanished_fraction": fraction, "tables": tables}
        run.update(run_lookups(sim, published, args.lookups, args.concurrency, rng))
        run["rounds_target"] = rounds_target(n)
        run["meets_rounds_target"] = run["median_rounds"] <= rounds_target(n)
        if fraction >= 0.3:
            run["meets_success_target"] = run["success_rate"] >= 0.99
        runs.append(run)
        print(
            f"  vanished {fraction:.0%}: rounds median {run['median_rounds']} "
            f"p99 {run['p99_rounds']} (target <= {rounds_target(n)}), "
            f"messages {run['messages_per_lookup']}, success {run['success_rate']:.2%}, "
            f"wall {run['wall_seconds']} s",
            flush=True,
        )
    total = time.perf_counter() - t0
    totals: dict[str, Any] = {
        "nodes": n,
        "tables": tables,
        "setup_seconds": round(setup, 2),
        "publish_seconds": round(publish, 2),
        "median_publish_acks": statistics.median(acks),
        "total_wall_seconds": round(total, 2),
        "simulated_events": sim.loop.events_run,
        "requests_sent": sim.network.requests_sent,
    }
    if n >= 10_000 and tables == "filled":
        totals["meets_wall_target"] = total < WALL_LIMIT_10K
    return runs, totals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument(
        "--join-nodes",
        type=int,
        nargs="*",
        default=[1000],
        help="sizes also built by real bootstraps (slower; none: skip)",
    )
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.0, 0.1, 0.3])
    parser.add_argument("--lookups", type=int, default=1000, help="GET_VALUE lookups per run")
    parser.add_argument("--keys", type=int, default=200, help="values published per size")
    parser.add_argument("--concurrency", type=int, default=20, help="lookups in flight at once")
    parser.add_argument("--loss", type=float, default=0.0, help="per-message loss probability")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--output", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "sim.json"
    )
    args = parser.parse_args()

    runs: list[dict[str, Any]] = []
    sizes: list[dict[str, Any]] = []
    plan = [(n, "filled") for n in args.nodes] + [(n, "joined") for n in args.join_nodes]
    for n, tables in plan:
        size_runs, totals = bench_size(args, n, tables)
        runs.extend(size_runs)
        sizes.append(totals)
    result = {
        **results_header(),
        "parameters": {
            "k": K,
            "alpha": 3,
            "request_timeout_fake_s": 1.0,
            "lookups_per_run": args.lookups,
            "keys": args.keys,
            "concurrency": args.concurrency,
            "loss": args.loss,
            "seed": args.seed,
            "link": "per-node access delay U(2 ms, 40 ms); link = sum, +0-25% jitter",
            "tables": (
                "filled: as if bootstrapped, up to k random members per bucket range; "
                "joined: node i bootstraps for real through node i-1"
            ),
            "vanishing": "cumulative, without notice, after publishing",
            "rounds": "longest request->response dependency chain until termination",
        },
        "runs": runs,
        "sizes": sizes,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
