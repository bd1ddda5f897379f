"""Benchmark: full descriptor verification per second on one core.

Builds ``--count`` distinct signed descriptors from a few organizations and
nodes, then times :func:`datanet.records.descriptor.verify_descriptor` (decode +
certificate chain + signature + expiry) over all of them:

* ``warm``: one trust store for the whole run, as a node has: each node's
  certificate signature is checked once and then served from the store's cache.
* ``cold``: a fresh trust store for every descriptor, so every verification
  checks two signatures (certificate and descriptor).

Each mode runs ``--repeat`` times; the median rate is reported. The process is
pinned to one CPU where the OS allows it. Results go to
``benchmarks/results/verify.json``. Target: >= 5,000 descriptors/s (warm).

Run: ``python benchmarks/bench_verify.py`` (``--count 2000`` for a quick look).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from _machine import REPO_ROOT, results_header

if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from datanet.records.descriptor import (
    AccessPolicy,
    Distribution,
    verify_descriptor,
)
from datanet.testing.clock import NOW
from datanet.testing.records import certificate, descriptor, signed
from identity.certs import Role, TrustStore
from identity.keys import KeyPair, OrgId

TARGET = 5000
DESCRIPTION = (
    "Hourly observations from automatic weather stations: air temperature, "
    "relative humidity, pressure, wind speed and direction, precipitation. "
    "Quality-controlled; gaps are marked, never interpolated. "
) * 2


def build(count: int, orgs: int, nodes_per_org: int) -> tuple[list[bytes], list[KeyPair]]:
    """``count`` distinct signed descriptors spread over the orgs' publishing nodes."""
    org_keys = [KeyPair.from_seed(bytes([1, o]) + bytes(30)) for o in range(orgs)]
    publishers = []
    for o, org_key in enumerate(org_keys):
        for n in range(nodes_per_org):
            node_key = KeyPair.from_seed(bytes([2, o, n]) + bytes(29))
            cert = certificate(
                org_key,
                node_key,
                [Role.PUBLISHER, Role.GATEWAY],
                serial=o * 1000 + n,
                org_name=f"Organization {o}",
            )
            publishers.append((org_key, node_key, cert))
    records = []
    for i in range(count):
        org_key, node_key, cert = publishers[i % len(publishers)]
        desc = descriptor(
            f"weather/stations-{i}",
            org=org_key,
            node=node_key,
            title=f"Weather station observations, series {i}",
            description=DESCRIPTION,
            keywords=("weather", "temperature", "precipitation", "wind", f"series-{i % 97}"),
            themes=("http://publications.europa.eu/resource/authority/data-theme/ENVI",),
            license="https://creativecommons.org/licenses/by/4.0/",
            version="2.1",
            issued=NOW - 30 * 86400,
            modified=NOW - 3600,
            schema="https://example.org/schemas/weather-observation.json",
            distributions=(
                Distribution("text/csv", "Full table", "request", 1_048_576 + i),
                Distribution("application/parquet", "Columnar", "request", None),
            ),
            temporal=(NOW - 5 * 365 * 86400, NOW - 86400),
            spatial="13.08,52.33,13.76,52.68",
            access_policy=AccessPolicy("request", (), ("research", "statistics"), 90),
            sequence=NOW + i,
            expires=NOW + 30 * 86400,
        )
        records.append(signed(desc, key=node_key, chain=[cert]))
    return records, org_keys


def run_warm(records: list[bytes], trusted: set[OrgId]) -> float:
    trust = TrustStore(set(trusted))
    start = time.perf_counter()
    for data in records:
        verify_descriptor(data, trust, NOW)
    return len(records) / (time.perf_counter() - start)


def run_cold(records: list[bytes], trusted: set[OrgId]) -> float:
    start = time.perf_counter()
    for data in records:
        verify_descriptor(data, TrustStore(set(trusted)), NOW)
    return len(records) / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000, help="distinct descriptors")
    parser.add_argument("--orgs", type=int, default=4)
    parser.add_argument("--nodes-per-org", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3, help="runs per mode (median is kept)")
    parser.add_argument(
        "--output", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "verify.json"
    )
    args = parser.parse_args()

    pinned = None
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        pinned = cpu

    t0 = time.perf_counter()
    records, org_keys = build(args.count, args.orgs, args.nodes_per_org)
    build_seconds = time.perf_counter() - t0
    trusted = {k.org_id for k in org_keys}
    sizes = sorted(len(r) for r in records)
    print(
        f"built {len(records)} descriptors in {build_seconds:.1f} s "
        f"(median {sizes[len(sizes) // 2]} bytes, max {sizes[-1]} bytes)"
    )

    warm_runs, cold_runs = [], []
    for _ in range(args.repeat):
        warm_runs.append(run_warm(records, trusted))
        cold_runs.append(run_cold(records, trusted))
    warm = statistics.median(warm_runs)
    cold = statistics.median(cold_runs)
    warm_list = [round(r) for r in warm_runs]
    cold_list = [round(r) for r in cold_runs]
    print(f"warm (certificate cache): {warm:,.0f} descriptors/s  runs: {warm_list}")
    print(f"cold (no cache):          {cold:,.0f} descriptors/s  runs: {cold_list}")
    print(f"target >= {TARGET:,}/s: {'met' if warm >= TARGET else 'NOT met'}")

    result = {
        **results_header(),
        "descriptors_per_second": round(warm),
        "descriptors_per_second_cold": round(cold),
        "target_descriptors_per_second": TARGET,
        "target_met": warm >= TARGET,
        "count": len(records),
        "orgs": args.orgs,
        "nodes_per_org": args.nodes_per_org,
        "repeat": args.repeat,
        "warm_runs": warm_list,
        "cold_runs": cold_list,
        "median_descriptor_bytes": sizes[len(sizes) // 2],
        "pinned_cpu": pinned,
        "build_seconds": round(build_seconds, 2),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
