"""Benchmark: access requests through two gateways, and offline grant verification.

Six real datanet nodes of three organizations, each in its own
``localnet_worker`` process on loopback. Every organization publishes an org
record naming its gateway (node ``i`` of org ``i``) and gating egress, so a
request from node 5 (org 2) for an ``open`` dataset that node 3 (org 0)
published travels 5 -> 2 (own gateway) -> 0 (owner's gateway) -> 3 and back
with a signed grant. ``decision_ms`` is the time of ``Node.request_access``
inside the requester's process: signing, three hops each verifying the request
and the trace and signing its own entry, the owner's policy evaluation and
grant, and every hop verifying the grant on the way back.

``grants_verified_per_second``: the grants collected are then verified in this
process with ``verify_grant`` (one signature; the request and trace are bound by
the issuer's signature) and, separately, with ``deep=True`` (every hop's
signature too).

Targets (issue 10): decision p50 <= 50 ms, p99 <= 150 ms on loopback;
>= 5,000 grants verified per second.

Run: ``python benchmarks/bench_access.py`` (writes ``benchmarks/results/access.json``).
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _machine import REPO_ROOT, results_header

if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

from datanet.devnet import provision
from datanet.node.home import Home
from datanet.records.access import verify_grant
from datanet.records.policy import AccessPolicy
from datanet.testing.localnet import Localnet, stop_all
from datanet.testing.records import signed_by
from identity.orgs import Gateway, issue_org_record

TARGET_P50_MS = 50.0
TARGET_P99_MS = 150.0
TARGET_VERIFY = 5000.0


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    def log(msg: str) -> None:
        print(f"[bench_access] {msg}", file=sys.stderr, flush=True)

    _, specs = provision(workdir / "nodes", orgs=3, nodes=6, bootstrap_count=3)
    workers = []
    try:
        for spec in specs:
            worker = Localnet(
                [spec.home],
                seed=args.seed + spec.index,
                stderr=(workdir / f"{spec.index}.log").open("wb"),
            )
            workers.append(worker)
            worker.wait_ready(120)
        for worker in workers:
            worker.call("bootstrap", node=0, timeout=60)
        now = int(time.time())
        for spec in specs[:3]:
            addrs = tuple(f"/ip4/127.0.0.1/tcp/{spec.port}" for _ in (0,))
            raw = issue_org_record(
                spec.org.key,
                name=spec.org.name,
                gateways=[Gateway(spec.peer_id, addrs)],
                sequence=1,
                expires=now + 86400,
                egress=True,
            )
            workers[0].call("publish", node=0, raw=base64.b64encode(raw).decode())
        desc = signed_by(
            specs[3], "bench/open", 1, "Benchmark dataset", access_policy=AccessPolicy(mode="open")
        )
        workers[3].call("publish", node=0, raw=base64.b64encode(desc).decode())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            items = [w.call("catalog")["nodes"][0]["ledger_items"] for w in workers]
            if min(items) >= 4:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"records did not reach every node: {items}")
        dataset = f"dn://{specs[3].org.org_id}/bench/open"
        for _ in range(args.warmup):
            workers[5].call(
                "request_access", node=0, dataset_id=dataset, purpose="academic-research"
            )
        times: list[float] = []
        grants: list[bytes] = []
        route: list[Any] = []
        for _ in range(args.requests):
            answer = workers[5].call(
                "request_access", node=0, dataset_id=dataset, purpose="academic-research"
            )
            if answer["state"] != "granted":
                raise RuntimeError(f"expected a grant, got {answer['state']}: {answer}")
            times.append(float(answer["ms"]))
            grants.append(base64.b64decode(answer["grant"]["envelope"]))
            route = answer["grant"]["route"]
        log(f"{len(times)} requests: p50 {statistics.median(times):.1f} ms")
        trust = Home(specs[1].home).trust_store()
    finally:
        stop_all(workers)

    def rate(deep: bool) -> float:
        best = 0.0
        for _ in range(3):
            started = time.perf_counter()
            for raw in grants:
                verify_grant(raw, trust, int(time.time()), deep=deep)
            best = max(best, len(grants) / (time.perf_counter() - started))
        return best

    verified = rate(False)
    deep = rate(True)
    log(f"grants verified: {verified:,.0f}/s (deep: {deep:,.0f}/s)")
    p50, p99 = statistics.median(times), _pct(times, 0.99)
    return {
        "nodes": 6,
        "processes": 6,
        "requests": len(times),
        "route": [f"{h['action']}@{h['node'][:16]}" for h in route],
        "decision_p50_ms": round(p50, 2),
        "decision_p99_ms": round(p99, 2),
        "decision_mean_ms": round(statistics.fmean(times), 2),
        "grants_verified_per_second": round(verified),
        "grants_deep_verified_per_second": round(deep),
        "targets": {
            "decision_p50_ms": TARGET_P50_MS,
            "decision_p99_ms": TARGET_P99_MS,
            "grants_verified_per_second": TARGET_VERIFY,
        },
        "meets_targets": p50 <= TARGET_P50_MS
        and p99 <= TARGET_P99_MS
        and verified >= TARGET_VERIFY,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks/results/access.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_access-") as tmp:
        body = run(args, Path(tmp))
    doc = {**results_header(), **body}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(
        json.dumps(
            {
                k: body[k]
                for k in ("decision_p50_ms", "decision_p99_ms", "grants_verified_per_second")
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
