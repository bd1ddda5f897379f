"""Benchmark: CPU per DHT request on one connection, requester side and responder side.

Two full datanet nodes (libp2p over TCP on 127.0.0.1, Noise, Yamux, SQLite,
signature checks), each in its own process so each side's CPU is its own
process's CPU (``time.process_time``):

* the **responder** is this script run with ``--serve`` (started by the parent);
  it answers kad requests with the node's real handler and reports its CPU
  time (and, with ``--profile``, a cProfile of CPU time) on request;
* the **requester** is the parent process's node, connected to the responder
  by bootstrap: one connection, one reused kad stream, ``--requests`` sequential
  requests of each kind through ``host.kad.request``: ``PUT_VALUE`` (a fresh
  signed descriptor each time: a tie is refused; at most 100, the store's
  per-peer write allowance is 120 a minute), ``GET_VALUE`` of a held record,
  ``FIND_NODE`` and ``GET_PROVIDERS`` of a key the responder holds a provider
  for.

Each side's figure is (CPU during the batch - idle CPU rate x batch wall time)
/ requests; the idle rate (gossip heartbeats, maintenance) is measured over
``--idle`` seconds before the batches. ``cpu_ms_per_request`` is the mean over
the four kinds of requester + responder CPU, i.e. what one request costs the
network in total. Wall time is per request, round trip.

With ``--profile DIR`` the batches run again under cProfile (CPU clock) on both
sides; the per-function statistics go to ``DIR/{requester,responder}.pstats`` and
a breakdown by layer (Noise, Yamux, multistream, wire codec, validation, SQLite,
logging, trio, ...) into the results under ``profile`` (figures under cProfile
are inflated; only the shares matter).

With py-spy (``pip install py-spy``)::

    py-spy record --subprocesses -f raw -o /tmp/spy.txt -- python benchmarks/bench_request.py
    python benchmarks/bench_request.py --spy-layers /tmp/spy.txt

charges every sample to the innermost frame of a known layer (what a yamux
write spends in trio and the socket counts for yamux), with little overhead:
the breakdown in ``docs/decisions/0011-request-cpu.md`` comes from it.

Run: ``python benchmarks/bench_request.py`` (results in
``benchmarks/results/request.json``); ``--merge-into benchmarks/results/net.json``
also adds ``cpu_ms_per_request`` (and the per-side detail) to that file.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _machine import REPO_ROOT, results_header

if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

import trio

from datanet.devnet import provision
from datanet.node.config import load_config
from datanet.node.home import Home
from datanet.node.startup import open_node
from datanet.testing.records import signed_by
from routing.wire import Message, MessageType, Record

KINDS = ("put_value", "get_value", "find_node", "get_providers")
MAX_PUTS = 100
WARMUP = 5

# Where a function's own CPU time goes, by the file it lives in (first match wins).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("noise (py-libp2p framing + ChaCha20-Poly1305)", ("libp2p/security/", "aead", "chacha")),
    ("yamux framing", ("libp2p/stream_muxer/",)),
    ("multistream-select", ("libp2p/protocol_muxer/",)),
    ("py-libp2p swarm, streams, io", ("libp2p/",)),
    ("datanet adapter (p2p/)", ("datanet/p2p/",)),
    ("kad wire codec (routing/wire.py)", ("routing/wire.py",)),
    ("validation (signatures, records)", ("identity/", "datanet/records/", "ed25519", "nacl")),
    ("sqlite", ("sqlite3", "datanet/store/")),
    ("routing (coordinator, stores, table)", ("routing/",)),
    ("node (driver, ledger, gossip)", ("datanet/node/",)),
    ("logging", ("logging/",)),
    ("trio scheduling and I/O", ("trio/", "select.epoll", "selectors", "socket")),
    ("cryptography (other)", ("cryptography/",)),
)


def layer_of(filename: str, function: str) -> str:
    """The layer a profiled function belongs to (see :data:`LAYERS`)."""
    where = f"{filename}:{function}".lower()
    for name, needles in LAYERS:
        if any(n in where for n in needles):
            return name
    return "other (interpreter, stdlib)"


def breakdown(stats: pstats.Stats) -> dict[str, float]:
    """Share of own CPU time per layer, in percent, largest first."""
    totals: dict[str, float] = {}
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (filename, _line, function), (_cc, _nc, tottime, _ct, _callers) in raw.items():
        layer = layer_of(filename, function)
        totals[layer] = totals.get(layer, 0.0) + tottime
    whole = sum(totals.values()) or 1.0
    return {k: round(100 * v / whole, 1) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}


def top_functions(stats: pstats.Stats, count: int = 25) -> list[dict[str, Any]]:
    """The ``count`` functions with the most own CPU time."""
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    whole = sum(v[2] for v in raw.values()) or 1.0
    rows = sorted(raw.items(), key=lambda kv: -kv[1][2])[:count]
    out = []
    for (filename, line, function), (_cc, ncalls, tottime, cumtime, _callers) in rows:
        short = filename.split("site-packages/")[-1].replace(str(REPO_ROOT) + "/", "")
        out.append(
            {
                "function": f"{short}:{line}({function})",
                "calls": ncalls,
                "own_pct": round(100 * tottime / whole, 1),
                "cum_pct": round(100 * cumtime / whole, 1),
            }
        )
    return out


# py-spy: ``py-spy record --subprocesses -f raw -o FILE -- python benchmarks/bench_request.py``
# writes collapsed stacks; --spy-layers FILE charges each sample to the innermost
# frame of a known layer, so trio's and the socket's work inside a yamux write
# counts for yamux, and only the scheduler's own loop counts for trio.
SPY_LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("noise: ChaCha20-Poly1305 (noiseprotocol, cryptography)", ("cryptography/", "(noise/")),
    ("noise: py-libp2p framing", ("libp2p/security/",)),
    ("yamux (py-libp2p)", ("libp2p/stream_muxer/",)),
    ("multistream-select", ("libp2p/protocol_muxer/", "multistream")),
    ("py-libp2p swarm, net_stream, io", ("libp2p/",)),
    ("kad wire codec (routing/wire.py)", ("routing/wire.py",)),
    ("validation (signatures, records)", ("identity/", "datanet/records/")),
    ("sqlite", ("sqlite3", "datanet/store/")),
    ("logging", ("logging/",)),
    ("datanet adapter (datanet/p2p)", ("datanet/p2p/",)),
    ("routing (coordinator, stores)", ("routing/",)),
    ("node (driver, ledger, gossip)", ("datanet/node/",)),
)
# setup, and the thread that reads the responder's commands (not the event loop)
_SPY_SETUP = (
    "_find_and_load",
    "provision",
    "signed_by",
    "open_node",
    "calibration",
    "Popen",
    "Thread.run",
)
_SPY_GENERIC = (
    "trio/",
    "(<string>",
    "attrs generated",
    "bench_request.py",
    "contextlib",
    "outcome",
)


def spy_layer(frames: list[str]) -> str:
    """The layer one py-spy sample (root-first frames) is charged to."""
    for frame in reversed(frames):
        if "trio/_socket.py" in frame or "_highlevel_socket" in frame:
            return "socket send/recv (trio + system calls)"
        if any(g in frame for g in _SPY_GENERIC):
            continue
        for name, needles in SPY_LAYERS:
            if any(n in frame for n in needles):
                return name
        return "other (interpreter, stdlib)"
    return "trio scheduler (run loop, epoll)"


def spy_layers(path: Path) -> dict[str, dict[str, float]]:
    """Per process (requester, responder): percent of samples per layer, setup excluded."""
    counts: dict[str, dict[str, int]] = {"requester": {}, "responder": {}}
    for line in path.read_text(encoding="utf-8").splitlines():
        stack, _, n = line.rpartition(" ")
        side = "responder" if "--serve" in stack.split(";<module>")[0] else "requester"
        frames = [f for f in stack.split(";") if not f.startswith("process ")]
        if any(s in f for f in frames for s in _SPY_SETUP):
            continue
        layer = spy_layer(frames)
        counts[side][layer] = counts[side].get(layer, 0) + int(n)
    out = {}
    for side, layers in counts.items():
        whole = sum(layers.values()) or 1
        out[side] = {
            k: round(100 * v / whole, 1) for k, v in sorted(layers.items(), key=lambda kv: -kv[1])
        }
    return out


# --------------------------------------------------------------------- responder


def serve(home: Path, seed: int) -> int:
    """Run the responder node; answer ``cpu`` / ``profile_on`` / ``profile_off PATH`` / ``quit``."""
    profiler: list[cProfile.Profile] = []

    def command(line: str) -> dict[str, Any]:
        word, _, arg = line.strip().partition(" ")
        if word == "cpu":
            return {"cpu": time.process_time()}
        if word == "profile_on":
            profiler.append(cProfile.Profile(time.process_time))
            profiler[-1].enable()
            return {"ok": True}
        if word == "profile_off":
            prof = profiler.pop()
            prof.disable()
            prof.dump_stats(arg)
            return {"ok": True}
        return {"error": f"unknown command {word!r}"}

    async def main() -> None:
        config = load_config(Home(home).config_path)
        import random  # noqa: PLC0415

        async with open_node(
            home, config, Home(home).load_node_key(), rng=random.Random(seed)
        ) as node:
            print(
                json.dumps({"ready": True, "peer_id": str(node.peer_id)}),
                flush=True,
            )
            while True:
                line = await trio.to_thread.run_sync(sys.stdin.readline)
                if not line or line.strip() == "quit":
                    return
                print(json.dumps(command(line)), flush=True)

    trio.run(main)
    return 0


# --------------------------------------------------------------------- requester


class Responder:
    """The responder process, driven over its stdin/stdout."""

    def __init__(self, home: Path, seed: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(home), "--seed", str(seed)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._lock = threading.Lock()

    def ask(self, line: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        with self._lock:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
            answer = self.proc.stdout.readline()
        if not answer:
            raise RuntimeError("the responder exited")
        result: dict[str, Any] = json.loads(answer)
        return result

    def ready(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        answer: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return answer

    def close(self) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


async def _remote_cpu(responder: Responder) -> float:
    answer = await trio.to_thread.run_sync(responder.ask, "cpu")
    return float(answer["cpu"])


async def run(args: argparse.Namespace, base: Path) -> dict[str, Any]:
    """Provision two nodes, start the responder, measure; the results as a dict."""
    _, specs = provision(base, orgs=2, nodes=2)
    server_spec, client_spec = specs
    responder = Responder(server_spec.home, args.seed)
    try:
        hello = responder.ready()
        if not hello.get("ready"):
            raise RuntimeError(f"responder failed: {hello}")
        import random  # noqa: PLC0415

        from identity.keys import PeerId  # noqa: PLC0415

        server = PeerId.parse(hello["peer_id"])
        home = Home(client_spec.home)
        config = load_config(home.config_path)
        async with open_node(
            client_spec.home, config, home.load_node_key(), rng=random.Random(args.seed + 1)
        ) as node:
            if not node.host.is_connected(server):
                raise RuntimeError("the requester did not connect to the responder")
            kad = node.host.kad
            puts = min(args.requests, MAX_PUTS)
            raws = [signed_by(client_spec, f"bench/r{i}", 1) for i in range(puts + WARMUP)]
            keys = [_dht_key(raw) for raw in raws]
            held = keys[0]
            provider_key = b"\x12\x20" + bytes(32)
            me = node.coordinator.self_peer

            def message(kind: str, i: int) -> Message:
                if kind == "put_value":
                    return Message(MessageType.PUT_VALUE, keys[i], record=Record(keys[i], raws[i]))
                if kind == "get_value":
                    return Message(MessageType.GET_VALUE, held)
                if kind == "find_node":
                    return Message(MessageType.FIND_NODE, bytes([i % 256]) * 34)
                return Message(MessageType.GET_PROVIDERS, provider_key)

            await kad.send(
                server, Message(MessageType.ADD_PROVIDER, provider_key, provider_peers=(me,))
            )

            # The idle rate of each side: heartbeats and maintenance, not requests.
            r0, l0, w0 = await _remote_cpu(responder), time.process_time(), time.perf_counter()
            await trio.sleep(args.idle)
            r1, l1, w1 = await _remote_cpu(responder), time.process_time(), time.perf_counter()
            idle_remote, idle_local = (r1 - r0) / (w1 - w0), (l1 - l0) / (w1 - w0)

            async def batch(kind: str, start: int, count: int) -> None:
                for i in range(start, start + count):
                    await kad.request(server, message(kind, i))

            results: dict[str, Any] = {}
            offset = {"put_value": 0}
            for kind in KINDS:
                count = puts if kind == "put_value" else args.requests
                await batch(kind, 0, WARMUP)
                start = WARMUP if kind == "put_value" else 0
                offset[kind] = start + count
                r0, l0, w0 = await _remote_cpu(responder), time.process_time(), time.perf_counter()
                await batch(kind, start, count)
                w1, l1 = time.perf_counter(), time.process_time()
                r1 = await _remote_cpu(responder)
                wall = w1 - w0
                out_ms = 1000 * ((l1 - l0) - idle_local * wall) / count
                in_ms = 1000 * ((r1 - r0) - idle_remote * wall) / count
                results[kind] = {
                    "requests": count,
                    "outbound_cpu_ms": round(out_ms, 3),
                    "inbound_cpu_ms": round(in_ms, 3),
                    "wall_ms": round(1000 * wall / count, 3),
                }
            profile: dict[str, Any] | None = None
            if args.profile is not None:
                profile = await _profiled(args, responder, batch, offset, puts)
            counts = dict(kad.request_counts)
    finally:
        await trio.to_thread.run_sync(responder.close)
    bad = {k: v for k, v in counts.items() if k[2] != "ok"}
    if bad:
        raise RuntimeError(f"some requests failed: {bad}")
    per_kind = list(results.values())
    outbound = sum(r["outbound_cpu_ms"] for r in per_kind) / len(per_kind)
    inbound = sum(r["inbound_cpu_ms"] for r in per_kind) / len(per_kind)
    report: dict[str, Any] = {
        **results_header(),
        "requests_per_kind": args.requests,
        "cpu_ms_per_request": round(outbound + inbound, 3),
        "outbound_cpu_ms_per_request": round(outbound, 3),
        "inbound_cpu_ms_per_request": round(inbound, 3),
        "wall_ms_per_request": round(sum(r["wall_ms"] for r in per_kind) / len(per_kind), 3),
        "idle_cpu_ms_per_second": {
            "requester": round(1000 * idle_local, 2),
            "responder": round(1000 * idle_remote, 2),
        },
        "kinds": results,
    }
    if profile is not None:
        report["profile"] = profile
    return report


async def _profiled(
    args: argparse.Namespace,
    responder: Responder,
    batch: Callable[[str, int, int], Any],
    offset: dict[str, int],
    puts: int,
) -> dict[str, Any]:
    """The batches again under cProfile on both sides (puts: the records not yet sent)."""
    out_dir = Path(args.profile)
    out_dir.mkdir(parents=True, exist_ok=True)
    remote_path = out_dir / "responder.pstats"
    local_path = out_dir / "requester.pstats"
    prof = cProfile.Profile(time.process_time)
    await trio.to_thread.run_sync(responder.ask, "profile_on")
    prof.enable()
    for kind in KINDS:
        count = args.requests
        if kind == "put_value":
            # fresh records only (a tie is refused); the put store allows 120 a minute
            count = 0
        await batch(kind, offset.get(kind, 0), count)
    prof.disable()
    await trio.to_thread.run_sync(responder.ask, f"profile_off {remote_path}")
    prof.dump_stats(local_path)
    sides = {}
    for side, path in (("requester", local_path), ("responder", remote_path)):
        stats = pstats.Stats(str(path))
        sides[side] = {"layers_pct": breakdown(stats), "top": top_functions(stats)}
    return {"note": "get_value, find_node, get_providers; own CPU time per layer", **sides}


def _dht_key(raw: bytes) -> bytes:
    from datanet.records.descriptor import open_descriptor  # noqa: PLC0415

    desc, _ = open_descriptor(raw)
    return desc.dataset_id.dht_key()


def print_report(report: dict[str, Any]) -> None:
    """A short table on stdout."""
    print(f"{'kind':<14}{'out cpu ms':>12}{'in cpu ms':>12}{'wall ms':>10}")
    for kind, row in report["kinds"].items():
        print(
            f"{kind:<14}{row['outbound_cpu_ms']:>12.3f}{row['inbound_cpu_ms']:>12.3f}"
            f"{row['wall_ms']:>10.3f}"
        )
    print(
        f"cpu_ms_per_request {report['cpu_ms_per_request']} "
        f"(out {report['outbound_cpu_ms_per_request']}, in {report['inbound_cpu_ms_per_request']})"
    )
    for side in ("requester", "responder"):
        layers = report.get("profile", {}).get(side, {}).get("layers_pct")
        if layers:
            print(f"{side} CPU by layer (%):")
            for name, pct in layers.items():
                print(f"  {pct:5.1f}  {name}")


def merge_into(path: Path, report: dict[str, Any]) -> None:
    """Add ``cpu_ms_per_request`` (and its detail) to an existing results file."""
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    data["cpu_ms_per_request"] = report["cpu_ms_per_request"]
    data["cpu_per_request"] = {
        "command": report["command"],
        "date": report["date"],
        "outbound_ms": report["outbound_cpu_ms_per_request"],
        "inbound_ms": report["inbound_cpu_ms_per_request"],
        "kinds": report["kinds"],
    }
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=500, help="requests per kind")
    parser.add_argument("--idle", type=float, default=3.0, help="seconds of idle measurement")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks/results/request.json")
    parser.add_argument("--merge-into", type=Path, default=None, metavar="NET_JSON")
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR")
    parser.add_argument(
        "--spy-layers", type=Path, default=None, metavar="RAW", help="classify py-spy raw output"
    )
    parser.add_argument("--serve", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.spy_layers is not None:
        for side, layers in spy_layers(args.spy_layers).items():
            print(f"{side} CPU by layer (% of py-spy samples):")
            for name, pct in layers.items():
                print(f"  {pct:5.1f}  {name}")
        return 0
    if args.serve is not None:
        return serve(args.serve, args.seed)
    if args.requests < 1:
        parser.error("--requests must be at least 1")
    with tempfile.TemporaryDirectory(prefix="bench-request-") as tmp:
        report = trio.run(run, args, Path(tmp))
    print_report(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.merge_into is not None:
        merge_into(args.merge_into, report)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
