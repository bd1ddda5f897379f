"""Benchmark: GossipSub v1.1 propagation on a simulated network of 10,000 nodes.

Runs the production router (:mod:`routing.gossip`) on :mod:`routing.sim.gossip`'s
fake network and clock: every node connects to about 20 random peers, each link
has its own one-way latency U(10 ms, 80 ms), heartbeats every 0.5 s (fake time),
validation is instant. After a warm-up (meshes form) ``--messages`` messages are
published from random live honest nodes, ``--spacing`` seconds apart, and the
run continues until each reached every live honest node (then settles 4 s).

Scenarios: ``honest``; ``vanished30`` (30% of nodes vanish without notice
after the warm-up, their peers keep them in meshes); ``junk5`` (5% of nodes
publish invalid messages every heartbeat, which honest validators reject);
``withhold5`` (5% never send a full message: no forwarding, IWANT unanswered,
but they advertise IHAVE).

Per scenario: time until 99% of live honest nodes accepted a message (p50/p99
over messages, fake ms), coverage, duplicate copies per delivery, hops
(median over every delivery, p99, max), wall time. Target (issue 9): every
descriptor reaches every node within a second.

Run: ``python benchmarks/bench_gossip_sim.py`` (``--nodes 1000`` for a quick look).
Results go to ``benchmarks/results/gossip_sim.json``.
"""

from __future__ import annotations

import argparse
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

from routing.gossip.router import GossipConfig
from routing.sim.gossip import GossipBehavior, GossipSimulation

SCENARIOS: dict[str, tuple[float, GossipBehavior | None]] = {
    "honest": (0.0, None),
    "vanished30": (0.3, None),
    "junk5": (0.0, GossipBehavior.JUNK),
    "withhold5": (0.0, GossipBehavior.WITHHOLD),
}


def pct(values: list[float], q: float) -> float:
    """The ``q`` percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _config(args: argparse.Namespace) -> GossipConfig:
    """The router parameters the simulated nodes run: the node's own, unless ``--config spec``."""
    if args.config == "spec":
        return GossipConfig()
    from datanet.node.gossip import CATALOG_GOSSIP  # noqa: PLC0415 - only for this choice

    return CATALOG_GOSSIP


def run_scenario(args: argparse.Namespace, name: str) -> dict[str, Any]:
    """Build, warm up and measure one scenario."""
    vanish, adversary = SCENARIOS[name]
    n = args.nodes
    behaviors: dict[int, GossipBehavior] = {}
    if adversary is not None:
        picked = random.Random(args.seed + 1).sample(range(n), n // 20)
        behaviors = dict.fromkeys(picked, adversary)
    started = time.perf_counter()
    sim = GossipSimulation(
        n, seed=args.seed, degree=args.degree, behaviors=behaviors, config=_config(args)
    )
    sim.run_for(args.warmup)
    setup_wall = time.perf_counter() - started
    if vanish:
        sim.vanish(vanish)
    live = sim.honest_live()
    for k in range(args.messages):
        data = b"descriptor-%06d:" % k + bytes(args.size)
        sim.publish(sim.rng.choice(live), data)
        sim.run_for(args.spacing)
    delivered = sim.run_until_delivered(sim.loop.now + args.max_time)
    sim.run_for(4.0)
    wall = time.perf_counter() - started
    reports = sim.reports()
    reach99 = [r.reach99 * 1000 for r in reports if r.reach99 is not None]
    reach_all = [r.reach_all * 1000 for r in reports if r.reach_all is not None]
    hops = sim.hop_counts()
    hop_list = sorted(hops.elements())
    receivers = sum(r.receivers for r in reports)
    copies = sum(r.copies for r in reports)
    stats = sim.router_stats(live)
    out: dict[str, Any] = {
        "scenario": name,
        "nodes": n,
        "live_honest": len(live),
        "adversaries": len(behaviors),
        "vanished": len(sim.vanished),
        "messages": len(reports),
        "all_delivered": delivered,
        "reach99_p50_ms": round(statistics.median(reach99), 1) if reach99 else None,
        "reach99_p99_ms": round(pct(reach99, 0.99), 1) if reach99 else None,
        "reach99_max_ms": round(max(reach99), 1) if reach99 else None,
        "reach_all_p50_ms": round(statistics.median(reach_all), 1) if reach_all else None,
        "reach_all_max_ms": round(max(reach_all), 1) if reach_all else None,
        "coverage": round(min(r.coverage for r in reports), 6),
        "coverage_mean": round(statistics.fmean(r.coverage for r in reports), 6),
        "duplicates_per_delivery": round((copies - receivers) / max(1, receivers), 3),
        "rounds_p50": hop_list[len(hop_list) // 2] if hop_list else None,
        "rounds_p99": round(pct([float(h) for h in hop_list], 0.99)) if hop_list else None,
        "rounds_max": hop_list[-1] if hop_list else None,
        "hop_histogram": {str(h): c for h, c in sorted(hops.items())},
        "rpcs_sent": sim.rpcs_sent,
        "full_messages_sent": sim.messages_sent,
        "honest_router_totals": {
            k: stats[k]
            for k in (
                "delivered",
                "duplicates",
                "rejected",
                "graylisted_rpcs",
                "broken_promises",
                "iwant_sent",
                "iwant_served",
                "ihave_sent",
                "flood_prunes",
                "prunes_sent",
            )
        },
        "mesh_size_mean": round(stats["mesh_peers"] / max(1, len(live)), 2),
        "peers_mean": round(stats["peers"] / max(1, len(live)), 2),
        "junk_sent_by_honest": sim.junk_sent_by_honest,
        "fake_time_s": round(sim.loop.now, 2),
        "events": sim.loop.events_run,
        "setup_wall_s": round(setup_wall, 1),
        "wall_s": round(wall, 1),
    }
    print(
        f"{name:>11}: reach99 p50 {out['reach99_p50_ms']} ms p99 {out['reach99_p99_ms']} ms, "
        f"coverage {out['coverage']}, dup/delivery {out['duplicates_per_delivery']}, "
        f"hops p50 {out['rounds_p50']} max {out['rounds_max']}, wall {out['wall_s']} s",
        flush=True,
    )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--degree", type=int, default=20)
    parser.add_argument("--messages", type=int, default=20, help="messages per scenario")
    parser.add_argument("--spacing", type=float, default=0.1, help="fake s between publishes")
    parser.add_argument("--size", type=int, default=1024, help="padding bytes per message")
    parser.add_argument("--warmup", type=float, default=3.0, help="fake s before publishing")
    parser.add_argument("--max-time", type=float, default=30.0, help="fake s to wait for delivery")
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--config",
        choices=("datanet", "spec"),
        default="datanet",
        help="router parameters: datanet's (datanet.node.gossip.CATALOG_GOSSIP) or the spec's",
    )
    parser.add_argument(
        "--output", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "gossip_sim.json"
    )
    args = parser.parse_args()
    cfg = _config(args)
    runs = [run_scenario(args, name) for name in args.scenarios]
    result = {
        **results_header(),
        "parameters": {
            "nodes": args.nodes,
            "degree": args.degree,
            "messages": args.messages,
            "spacing_fake_s": args.spacing,
            "message_bytes": args.size + 18,
            "warmup_fake_s": args.warmup,
            "seed": args.seed,
            "link": "one-way latency per link U(10 ms, 80 ms), no jitter, no loss",
            "validation": "instant; data starting with b'junk:' rejected by honest nodes",
            "router_config": args.config,
            "router": {
                "D": cfg.D,
                "D_lo": cfg.D_lo,
                "D_hi": cfg.D_hi,
                "D_lazy": cfg.D_lazy,
                "heartbeat_interval_s": cfg.heartbeat_interval,
                "flood_publish": cfg.flood_publish,
                "gossip_factor": cfg.gossip_factor,
            },
            "reach99": "fake time from publish until 99% of live honest nodes accepted it",
            "rounds": "hops from the publisher along the first accepted copies",
        },
        "scenarios": {run["scenario"]: run for run in runs},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
