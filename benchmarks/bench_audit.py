"""Benchmark: the audit log - durable appends, proofs and verification at 1,000,000 entries.

Figures (``benchmarks/results/audit.json``):

* ``appends_per_second``: durable appends (``synchronous=FULL``, one fsynced
  transaction per batch) in batches of ``--batch`` (1,000) on a fresh log; target
  >= 10,000/s. ``appends_per_second_single``: one entry per transaction.
* the log is then grown to ``--entries`` (1,000,000) in batches of 10,000;
  ``build_seconds`` is that time.
* ``inclusion_proof_bytes``: the proof of one entry at that size (hashes only;
  ``receipt_bytes`` is a whole receipt: signed head + entry + proof);
  ``inclusion_proof_us``: producing one from SQLite; ``verify_proof_us``:
  checking one (median over ``--proofs`` random entries).
* ``consistency_proof_bytes`` (median and max over random older sizes) and
  ``verify_consistency_us``.
* ``verify_log_seconds``: :meth:`AuditLog.verify` over the whole log (every entry
  decoded and rehashed, every subtree hash and signed head checked).

Entries are realistic: a mix of kinds, each holding a signed record of 200 to
1,500 bytes and a few details. The process is pinned to one CPU where the OS
allows it. Run once: ``python benchmarks/bench_audit.py`` (``--entries 100000``
for a quick look).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _machine import REPO_ROOT, results_header

if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from datanet.records.audit import (
    AuditEntry,
    EntryKind,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from datanet.store.audit import AuditLog
from datanet.testing.clock import NOW
from datanet.testing.records import NODE_A, certificate

TARGET = 10_000
KINDS = list(EntryKind)


def make_entry(i: int) -> AuditEntry:
    size = 200 + (i * 37) % 1300
    record = (b"signed-record-%d:" % i).ljust(size, b"\xa5")
    return AuditEntry.create(
        KINDS[i % len(KINDS)],
        NOW + i // 100,
        record,
        {"dataset": f"dn://z6Mk-org/weather/stations-{i % 997}", "peer": f"node-{i % 31}"},
    )


def rate_of_appends(log: AuditLog, count: int, batch: int, start: int) -> float:
    entries = [make_entry(start + i) for i in range(count)]
    began = time.perf_counter()
    for at in range(0, count, batch):
        log.append_many(entries[at : at + batch])
    return count / (time.perf_counter() - began)


def timed_us(fn: object, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append((time.perf_counter() - began) * 1e6)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="size of the big log")
    parser.add_argument("--batch", type=int, default=1000, help="entries per durable batch")
    parser.add_argument("--append-count", type=int, default=50_000, help="entries timed")
    parser.add_argument("--proofs", type=int, default=2000, help="proofs timed")
    parser.add_argument("--dir", type=Path, default=None, help="where the database goes")
    parser.add_argument(
        "--output", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "audit.json"
    )
    args = parser.parse_args()

    pinned = None
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        pinned = cpu
    rng = random.Random(11)
    chain = [certificate()]

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "audit.sqlite"
        with AuditLog(path) as log:
            single_count = 300
            single_entries = [make_entry(i) for i in range(single_count)]
            began = time.perf_counter()
            for e in single_entries:
                log.append(e)
            single = single_count / (time.perf_counter() - began)
            batched = rate_of_appends(log, args.append_count, args.batch, log.size)
            print(
                f"durable appends: {batched:,.0f}/s in batches of {args.batch}, "
                f"{single:,.0f}/s one by one"
            )

            began = time.perf_counter()
            while log.size < args.entries:
                count = min(10_000, args.entries - log.size)
                log.append_many([make_entry(log.size + i) for i in range(count)])
            build_seconds = time.perf_counter() - began
            size = log.size
            head = log.sign_head(NODE_A, chain, NOW + 10**6)
            print(f"grew the log to {size:,} entries in {build_seconds:.1f} s")

            root = log.root()
            indexes = [rng.randrange(size) for _ in range(args.proofs)]
            proofs = {i: log.inclusion_proof(i) for i in indexes}
            leaves = {i: leaf_hash(log.entry(i).raw) for i in indexes}
            proof_lengths = sorted(len(p) for p in proofs.values())
            gen_us = timed_us(lambda: log.inclusion_proof(rng.randrange(size)), 300)
            verify_samples = []
            for i in indexes:
                began = time.perf_counter()
                verify_inclusion(leaves[i], i, size, proofs[i], root)
                verify_samples.append((time.perf_counter() - began) * 1e6)
            verify_us = statistics.median(verify_samples)
            receipt_bytes = len(log.receipt(indexes[0], head))
            print(
                f"inclusion proof at {size:,}: {proof_lengths[-1]} hashes "
                f"({proof_lengths[-1] * 32} bytes); made in {gen_us:.0f} us, "
                f"verified in {verify_us:.1f} us; a receipt is {receipt_bytes} bytes"
            )

            olds = [rng.randrange(1, size) for _ in range(200)]
            consistency = {m: (log.root(m), log.consistency_proof(m)) for m in olds}
            c_sizes = sorted(len(p) * 32 for _, p in consistency.values())
            c_verify = []
            for m, (old_root, proof) in consistency.items():
                began = time.perf_counter()
                verify_consistency(m, size, old_root, root, proof)
                c_verify.append((time.perf_counter() - began) * 1e6)
            print(
                f"consistency proof to {size:,}: median {statistics.median(c_sizes):.0f} "
                f"bytes, max {c_sizes[-1]}; verified in {statistics.median(c_verify):.1f} us"
            )

            began = time.perf_counter()
            report = log.verify()
            verify_log_seconds = time.perf_counter() - began
            assert report.ok, report
            print(
                f"verified the whole log ({report.size:,} entries, "
                f"{report.heads_checked} head) in {verify_log_seconds:.1f} s"
            )
        db_bytes = sum(f.stat().st_size for f in Path(tmp).iterdir())

    entry_sizes = sorted(len(make_entry(i).encode()) for i in range(0, 10_000, 7))
    result = {
        **results_header(),
        "appends_per_second": round(batched),
        "appends_per_second_single": round(single),
        "target_appends_per_second": TARGET,
        "target_met": batched >= TARGET,
        "batch": args.batch,
        "appends_timed": args.append_count,
        "entries": size,
        "build_seconds": round(build_seconds, 1),
        "database_bytes": db_bytes,
        "median_entry_bytes": entry_sizes[len(entry_sizes) // 2],
        "inclusion_proof_bytes": proof_lengths[-1] * 32,
        "inclusion_proof_hashes": proof_lengths[-1],
        "inclusion_proof_us": round(gen_us, 1),
        "verify_proof_us": round(verify_us, 1),
        "receipt_bytes": receipt_bytes,
        "consistency_proof_bytes": round(statistics.median(c_sizes)),
        "consistency_proof_bytes_max": c_sizes[-1],
        "verify_consistency_us": round(statistics.median(c_verify), 1),
        "verify_log_seconds": round(verify_log_seconds, 1),
        "proofs_timed": args.proofs,
        "pinned_cpu": pinned,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
