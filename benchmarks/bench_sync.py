"""Benchmark: anti-entropy reconciliation of two 100,000-item catalogs (routing/sync.py).

Two sets of ``--count`` items (random 32-byte ids, timestamps spread over 30
days, as records published over a month) share all but a fraction of their
items: half of the difference is only in A, half only in B. A (initiator) and
B (responder) run :class:`routing.sync.Reconciler` against each other in one
process, with the service's frame limit (``SyncLimits.frame`` less the
MessagePack envelope), until A knows exactly what to fetch and what to push.

Figures per difference (0.1 %, 1 %, 10 %): ``round_trips``, ``bytes_exchanged``
(every reconciliation frame both ways; the missing records themselves are
extra), ``seconds`` (both sides, one process; the CPU of each side is given
too), the largest frame, and ``naive_bytes``: what one side's full id list
would cost (32 bytes per item), the trivial alternative; and the same for a
new node with an empty set reconciling with a full one. The top-level
``round_trips``/``bytes_exchanged``/``seconds`` are the 1 % case. Setup (building the
indexes) is not timed. Results go to ``benchmarks/results/sync.json``.

Run: ``python benchmarks/bench_sync.py`` (``--count 10000`` for a quick look).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

from _machine import REPO_ROOT, results_header

if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from datanet.p2p.sync import SyncLimits
from routing.sync import ID_SIZE, Item, Reconciler, SyncIndex

T0 = 1_750_000_000
SPAN = 30 * 86400
ENVELOPE = 64  # as datanet.p2p.sync: the MessagePack frame around a message


def build(count: int, difference: float, seed: int) -> tuple[SyncIndex, SyncIndex, int, int]:
    rng = random.Random(seed)

    def item() -> Item:
        return Item(T0 - rng.randrange(SPAN), rng.randbytes(ID_SIZE))

    each = round(count * difference / 2)
    common = [item() for _ in range(count - each)]
    a = SyncIndex(common + [item() for _ in range(each)])
    b = SyncIndex(common + [item() for _ in range(each)])
    return a, b, each, each


def reconcile(a: SyncIndex, b: SyncIndex, frame: int, rounds: int) -> dict[str, object]:
    ra = Reconciler(a, frame_size_limit=frame, max_rounds=rounds)
    rb = Reconciler(b, frame_size_limit=frame, max_rounds=rounds)
    cpu_a = cpu_b = 0.0
    total = largest = 0
    started = time.perf_counter()
    t = time.process_time()
    message: bytes | None = ra.initiate()
    cpu_a += time.process_time() - t
    while message is not None:
        total += len(message)
        largest = max(largest, len(message))
        t = time.process_time()
        reply = rb.reconcile(message)
        cpu_b += time.process_time() - t
        assert reply is not None
        total += len(reply)
        largest = max(largest, len(reply))
        t = time.process_time()
        message = ra.reconcile(reply)
        cpu_a += time.process_time() - t
    seconds = time.perf_counter() - started
    return {
        "round_trips": ra.rounds,
        "bytes_exchanged": total,
        "seconds": round(seconds, 4),
        "cpu_seconds_initiator": round(cpu_a, 4),
        "cpu_seconds_responder": round(cpu_b, 4),
        "largest_frame": largest,
        "have": len(ra.have_ids),
        "need": len(ra.need_ids),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--output", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "sync.json"
    )
    args = parser.parse_args()
    limits = SyncLimits()
    frame = limits.frame - ENVELOPE
    load_start = os.getloadavg()[0]
    cases: dict[str, dict[str, object]] = {}
    for label, difference in (("0.1%", 0.001), ("1%", 0.01), ("10%", 0.1)):
        a, b, only_a, only_b = build(args.count, difference, args.seed)
        figures = reconcile(a, b, frame, limits.rounds)
        assert figures["have"] == only_a, figures
        assert figures["need"] == only_b, figures
        naive = args.count * ID_SIZE
        cases[label] = {
            "only_in_a": only_a,
            "only_in_b": only_b,
            **figures,
            "naive_bytes": naive,
            "naive_over_exchanged": round(naive / int(str(figures["bytes_exchanged"])), 2),
            "difference_ids_bytes": (only_a + only_b) * ID_SIZE,
        }
        print(f"  {label}: {cases[label]}", file=sys.stderr)
    # A new node (empty set) catching up with a full one: every id crosses once.
    a, b, _, _ = build(args.count, 0.0, args.seed)
    empty = reconcile(SyncIndex(), b, frame, limits.rounds)
    assert empty["need"] == args.count, empty
    empty["naive_bytes"] = args.count * ID_SIZE
    print(f"  empty initiator: {empty}", file=sys.stderr)
    main_case = cases["1%"]
    result = {
        **results_header(),
        "count": args.count,
        "timestamp_span_seconds": SPAN,
        "frame_limit": frame,
        "max_rounds": limits.rounds,
        "round_trips": main_case["round_trips"],
        "bytes_exchanged": main_case["bytes_exchanged"],
        "seconds": main_case["seconds"],
        "naive_bytes": args.count * ID_SIZE,
        "by_difference": cases,
        "empty_initiator": empty,
        # Other processes share this machine's two cores: a load above ~1 inflates figures.
        "load_average_1min": [round(load_start, 2), round(os.getloadavg()[0], 2)],
    }
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
