"""The runner side of :mod:`datanet.testing.localnet`: nodes in one process, driven by JSON lines.

``python -m datanet.testing.localnet_worker --home DIR [--home DIR ...]``; the
line protocol and its invariants are documented in :mod:`datanet.testing.localnet`.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gc
import json
import logging
import os
import random
import resource
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datanet.errors import DatanetError, InvalidInput
from datanet.node.heap import collector_tuned, native_memory, settle_heap, trim_until
from datanet.testing.localnet import MAX_LINE
from datanet.testing.raw import MAX_RAW_FRAME, put_value_payload, send_raw_kad

if TYPE_CHECKING:
    from datanet.node.driver import Node

__all__ = ["GC_PAUSES", "main"]

log = logging.getLogger("datanet.localnet")

_READ_CHUNK = 64 * 1024


class _Warm(DatanetError):
    code = "warm"


class _Stopped(DatanetError):
    """An op named a node that ``stop_node`` stopped (and no ``start_node`` restarted)."""

    code = "node_stopped"


#: Most flood tasks one runner keeps going at once (op ``flood``).
MAX_FLOODS = 32
#: ``DATANET_TRACEMALLOC=<frames>`` in the environment starts :mod:`tracemalloc` with
#: that many frames per allocation before any node opens (op ``tracemalloc``).
TRACEMALLOC_ENV = "DATANET_TRACEMALLOC"
#: Most allocation sites op ``tracemalloc`` returns, and most frames per site.
_MAX_TRACE_SITES = 50
_MAX_TRACE_FRAMES = 12
#: Longest a node may take to close (op ``stop_node``) or to rejoin (op ``start_node``).
_NODE_CHANGE_TIMEOUT = 120.0


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object, name: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise InvalidInput(f"{name} is not valid base64") from None


def _field(cmd: Mapping[str, Any], name: str, kind: type, default: Any = ...) -> Any:
    value = cmd.get(name, default)
    if value is ...:
        raise InvalidInput(f"missing field {name!r}")
    if kind is int and isinstance(value, bool):
        raise InvalidInput(f"{name} must be an integer")
    if not isinstance(value, kind):
        raise InvalidInput(f"{name} must be {kind.__name__}")
    return value


def _rss_mb() -> float:
    """This process's resident set size (VmRSS) in MB; the peak if /proc is absent."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _GcPauses:
    """Counts the garbage collector's pauses (``gc.callbacks``): a full collection of
    a large heap stops every node of the process at once. Wall time and the
    process's CPU time are both kept, per generation: with more workers than
    cores a pause's wall time includes time the worker was not running."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.wall = [0.0, 0.0, 0.0]
        self.cpu = [0.0, 0.0, 0.0]
        self.longest = 0.0
        self._started = (0.0, 0.0)

    def __call__(self, phase: str, info: Mapping[str, Any]) -> None:
        if phase == "start":
            self._started = (time.perf_counter(), time.process_time())
            return
        pause = time.perf_counter() - self._started[0]
        gen = int(info.get("generation", 2))
        self.count[gen] += 1
        self.wall[gen] += pause
        self.cpu[gen] += time.process_time() - self._started[1]
        self.longest = max(self.longest, pause)

    def reset(self) -> None:
        self.count = [0, 0, 0]
        self.wall = [0.0, 0.0, 0.0]
        self.cpu = [0.0, 0.0, 0.0]
        self.longest = 0.0

    def report(self) -> dict[str, Any]:
        return {
            "collections_since_ready": list(self.count),
            "pause_total_ms": round(sum(self.wall) * 1000, 1),
            "pause_ms_by_generation": [round(w * 1000, 1) for w in self.wall],
            "cpu_ms_by_generation": [round(c * 1000, 1) for c in self.cpu],
            "pause_max_ms": round(self.longest * 1000, 1),
            "frozen_objects": gc.get_freeze_count(),
            "tracked_objects": len(gc.get_objects()),
            "threshold": list(gc.get_threshold()),
        }


GC_PAUSES = _GcPauses()


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _open_fds() -> int:
    """How many file descriptors this process holds (``/proc/self/fd``; -1 without /proc)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def _memory_breakdown() -> dict[str, float | int | None]:
    """Where this process's memory is, so a soak can tell a leak from a cache filling up.

    ``python_blocks`` counts the interpreter's live small objects (their arenas are
    outside malloc); the native parts are :func:`datanet.node.heap.native_memory`'s.
    """
    out: dict[str, float | int | None] = {
        "python_blocks": sys.getallocatedblocks(),
        "threads": len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else None,
    }
    out.update(native_memory())
    return out


def _task_count() -> int:
    """How many trio tasks are alive: the whole tree under the root task."""
    import trio  # noqa: PLC0415

    count = 0
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        if task is None:
            continue
        count += 1
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return count


class _Hosting:
    """Which nodes of this process run, and how to stop and restart one (churn).

    Each node lives in its own task of the hosting nursery and leaves when its
    ``leave`` event is set, closing exactly as on ``quit``; a restart opens the
    same data directory (same key, same database) again.
    """

    def __init__(self, homes: Sequence[Path], seed: int | None) -> None:
        import trio  # noqa: PLC0415

        self.homes = tuple(homes)
        self.seed = seed
        self.slots: list[Node | None] = [None] * len(homes)
        self.leave = [trio.Event() for _ in homes]
        self.closed = [trio.Event() for _ in homes]
        self.starts = [0] * len(homes)
        self.nursery: Any = None

    async def host(self, index: int, *, task_status: Any = None) -> None:
        import trio  # noqa: PLC0415

        from datanet.node.config import load_config  # noqa: PLC0415
        from datanet.node.home import Home  # noqa: PLC0415
        from datanet.node.startup import open_node  # noqa: PLC0415

        if task_status is None:
            task_status = trio.TASK_STATUS_IGNORED
        home = Home(self.homes[index])
        config = load_config(home.config_path)
        # a restarted node draws other random numbers than its first life did
        salt = self.starts[index] * 7919
        self.starts[index] += 1
        rng = random.Random(None if self.seed is None else self.seed * 1_000_003 + index + salt)
        try:
            async with open_node(home.path, config, home.load_node_key(), rng=rng) as node:
                self.slots[index] = node
                task_status.started()
                await self.leave[index].wait()
                self.slots[index] = None
        finally:
            self.slots[index] = None
            self.closed[index].set()

    def running(self, index: int) -> bool:
        return self.slots[index] is not None

    async def stop(self, index: int) -> None:
        """Close node ``index`` (as on ``quit``) and wait until its files are closed."""
        import trio  # noqa: PLC0415

        if self.slots[index] is None:
            raise _Stopped(f"node {index} is not running")
        self.leave[index].set()
        with trio.fail_after(_NODE_CHANGE_TIMEOUT):
            await self.closed[index].wait()

    async def start(self, index: int) -> None:
        """Open node ``index`` again from its data directory; returns once it joined."""
        import trio  # noqa: PLC0415

        if self.slots[index] is not None or not self.closed[index].is_set():
            raise InvalidInput(f"node {index} is running")
        self.leave[index] = trio.Event()
        self.closed[index] = trio.Event()
        with trio.fail_after(_NODE_CHANGE_TIMEOUT):
            await self.nursery.start(self.host, index)

    def leave_all(self) -> None:
        for event in self.leave:
            event.set()


class _Runner:
    """Executes commands against the nodes of this process."""

    def __init__(self, hosting: _Hosting, stop: Any) -> None:
        self.hosting = hosting
        self.stop = stop
        self.nursery: Any = None
        # Per node: dataset id -> wall-clock time its catalog event arrived (op track).
        self.arrivals: list[dict[str, float]] = [{} for _ in hosting.slots]
        self.tracking = False
        self.floods: dict[str, Any] = {}  # flood name -> its cancel scope
        self.flood_sent: dict[str, int] = {}
        self.trace_baseline: tracemalloc.Snapshot | None = None
        self.type_baseline: Counter[str] | None = None

    @property
    def nodes(self) -> list[Node]:
        """The running nodes (all of them unless ``stop_node`` stopped some)."""
        return [n for n in self.hosting.slots if n is not None]

    def index(self, cmd: Mapping[str, Any]) -> int:
        index: int = _field(cmd, "node", int, 0)
        if not 0 <= index < len(self.hosting.slots):
            raise InvalidInput(f"node must be 0..{len(self.hosting.slots) - 1}")
        return index

    def node(self, cmd: Mapping[str, Any]) -> Node:
        index = self.index(cmd)
        node = self.hosting.slots[index]
        if node is None:
            raise _Stopped(f"node {index} is stopped")
        return node

    async def run(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        op = _field(cmd, "op", str)
        handler: Callable[[Mapping[str, Any]], Any] | None = getattr(self, f"op_{op}", None)
        if handler is None:
            raise InvalidInput(f"unknown op {op[:40]!r}")
        started = time.perf_counter()
        result: dict[str, Any] = await handler(cmd)
        result["ms"] = round((time.perf_counter() - started) * 1000, 3)
        return result

    async def op_ping(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        return {"nodes": len(self.hosting.slots)}

    async def op_status(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        node = self.node(cmd)
        return {"status": dict(node.status()), "routing": dict(node.routing_stats())}

    async def op_publish(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        node = self.node(cmd)
        at = time.time()
        result = await node.publish(_unb64(cmd.get("raw"), "raw"))
        return {
            "at": at,
            "dataset_id": str(result.dataset_id),
            "sequence": result.sequence,
            "replicas": result.replicas,
        }

    async def op_resolve(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        from datanet.records.ids import DatasetId  # noqa: PLC0415

        node = self.node(cmd)
        dataset_id = DatasetId.parse(_field(cmd, "dataset_id", str))
        refresh = _field(cmd, "refresh", bool, False)
        held = node.records.entry(dataset_id.dht_key()) is not None
        if _field(cmd, "cold", bool, False) and held:
            raise _Warm(f"node already holds a record for {dataset_id}")
        verified = await node.resolve(dataset_id, refresh=refresh)
        return {
            "raw": _b64(verified.raw),
            "sequence": verified.descriptor.sequence,
            "held_before": held,
        }

    async def op_request_access(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        from datanet.records.ids import DatasetId  # noqa: PLC0415

        node = self.node(cmd)
        outcome = await node.request_access(
            DatasetId.parse(_field(cmd, "dataset_id", str)),
            purpose=_field(cmd, "purpose", str),
            days=_field(cmd, "days", int, 30),
            note="",
            wait=0.0,
        )
        return dict(outcome)

    async def op_routing_get(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        node = self.node(cmd)
        value = await node.routing_get(_unb64(cmd.get("key"), "key"))
        return {"value": _b64(value)}

    async def op_held(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        node = self.node(cmd)
        entry = node.records.entry(_unb64(cmd.get("key"), "key"))
        if entry is None:
            return {"held": False, "value": None, "own": False}
        return {"held": True, "value": _b64(entry.value), "own": entry.own}

    async def op_put_raw(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        from identity.keys import PeerId  # noqa: PLC0415
        from routing.wire import decode_message  # noqa: PLC0415

        node = self.node(cmd)
        peer = PeerId.parse(_field(cmd, "peer", str))
        addrs = _field(cmd, "addrs", list, [])
        if not all(isinstance(a, str) for a in addrs):
            raise InvalidInput("addrs must be a list of strings")
        key = _unb64(cmd.get("key"), "key")
        value = _unb64(cmd.get("value"), "value")
        payload = put_value_payload(key, value)
        responses, stopped = await send_raw_kad(node.host, peer, [payload], addrs=addrs)
        stored = False
        if responses:
            try:
                echo = decode_message(responses[0], max_size=MAX_RAW_FRAME)
            except DatanetError:
                echo = None
            stored = echo is not None and echo.record is not None and echo.record.value == value
        return {"stored": stored, "refusal": stopped}

    async def op_announce(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        """Verify a record into the node's ledger and send it by gossip only (no DHT put)."""
        node = self.node(cmd)
        raw = _unb64(cmd.get("raw"), "raw")
        from routing.gossip.router import ValidationResult  # noqa: PLC0415

        at = time.time()
        intake = node.ledger.ingest(raw)
        if intake.result is not ValidationResult.ACCEPT:
            raise InvalidInput(f"the record was not accepted: {intake.reason}")
        node.gossip.publish(raw)
        return {"at": at}

    async def op_track(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        """Record, on every node here, when each catalog event arrives (see op arrivals)."""
        if not self.tracking:
            self.tracking = True
            for index, node in enumerate(self.hosting.slots):
                if node is not None:
                    self.nursery.start_soon(self._track, index, node)
        return {"tracking": len(self.nodes)}

    async def _track(self, index: int, node: Node) -> None:
        async with node.feed.subscribe("") as events:
            async for event in events:
                if getattr(event, "kind", "") in ("new", "updated", "withdrawn"):
                    self.arrivals[index].setdefault(
                        f"{event.dataset_id}#{event.sequence}", time.time()
                    )

    async def op_arrivals(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        """Arrival times per node of ``keys`` (``dataset_id#sequence``); then forgets them."""
        keys = _field(cmd, "keys", list, [])
        out = []
        for seen in self.arrivals:
            out.append({k: seen.pop(k) for k in keys if k in seen})
        return {"arrivals": out}

    async def op_catalog(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        """Catalog size and gossip/sync figures of every node here."""
        return {
            "nodes": [
                {"stopped": True}
                if n is None
                else {
                    "catalog_size": len(n.ledger.catalog),
                    "ledger_items": n.ledger.held_ids(),
                    "stats": dict(n.catalog_stats()),
                }
                for n in self.hosting.slots
            ]
        }

    async def op_sync(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        node = self.node(cmd)
        return {"sessions": list(await node.catalog_sync(peers=_field(cmd, "peers", int, 3)))}

    async def op_bootstrap(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        node = self.node(cmd)
        return {"routing_table_size": await node.bootstrap()}

    async def op_counters(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        """Where a node's traffic goes: kad requests (direction/kind/outcome), gossip, witness."""
        node = self.node(cmd)
        kad = {"/".join(k): n for k, n in sorted(node.host.kad.request_counts.items())}
        witness = {} if node.witness is None else dict(node.witness.counters)
        return {
            "kad": kad,
            "gossip": node.gossip.stats(),
            "witness": witness,
            "routing": dict(node.routing_stats()),
            "peers": len(node.host.connected_peers()),
        }

    async def op_objects(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        """Which kinds of objects the collector tracks grew since the previous call.

        Cheaper than op ``tracemalloc`` (no tracing needed): live container objects
        (``gc.get_objects()``) counted by type, the ``limit`` types that grew most.
        The first call (or ``reset``) only takes the baseline.
        """
        limit = _field(cmd, "limit", int, 20)
        if not 1 <= limit <= _MAX_TRACE_SITES:
            raise InvalidInput(f"limit must be 1..{_MAX_TRACE_SITES}")
        gc.collect()
        counts = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.get_objects())
        baseline, self.type_baseline = self.type_baseline, counts
        out: dict[str, Any] = {"objects": sum(counts.values())}
        if baseline is None or _field(cmd, "reset", bool, False):
            return {**out, "types": []}
        grown = counts.copy()
        grown.subtract(baseline)
        return {
            **out,
            "types": [
                {"type": name, "count_diff": diff, "count": counts[name]}
                for name, diff in grown.most_common(limit)
            ],
        }

    async def op_usage(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "cpu_seconds": _cpu_seconds(),
            "rss_mb": round(_rss_mb(), 2),
            "gc": GC_PAUSES.report(),
        }

    async def op_sample(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        """What a soak watches for leaks: memory, open files, trio tasks, running nodes."""
        return {
            "pid": os.getpid(),
            "rss_mb": round(_rss_mb(), 2),
            "fds": _open_fds(),
            "tasks": _task_count(),
            "memory": _memory_breakdown(),
            "cpu_seconds": round(_cpu_seconds(), 3),
            "running": [self.hosting.running(i) for i in range(len(self.hosting.slots))],
            "starts": list(self.hosting.starts),
            "floods": dict(self.flood_sent),
        }

    async def op_tracemalloc(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        """Where memory grew since the previous call: the top ``limit`` allocation sites of
        a :mod:`tracemalloc` snapshot diff, grouped by ``key`` (``traceback`` or ``lineno``).

        The first call (or ``reset``) only takes the baseline. Needs the worker started
        with ``DATANET_TRACEMALLOC=<frames>`` in its environment (code ``invalid_input``
        otherwise): tracing costs CPU and memory, so it is never on by default.
        """
        if not tracemalloc.is_tracing():
            raise InvalidInput(f"start the worker with {TRACEMALLOC_ENV}=<frames> to trace")
        key = _field(cmd, "key", str, "traceback")
        if key not in ("traceback", "lineno"):
            raise InvalidInput("key must be traceback or lineno")
        limit = _field(cmd, "limit", int, 15)
        if not 1 <= limit <= _MAX_TRACE_SITES:
            raise InvalidInput(f"limit must be 1..{_MAX_TRACE_SITES}")
        reset = _field(cmd, "reset", bool, False)
        gc.collect()
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [
                tracemalloc.Filter(False, tracemalloc.__file__),
                tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"),
            ]
        )
        baseline, self.trace_baseline = self.trace_baseline, snapshot
        traced, peak = tracemalloc.get_traced_memory()
        out: dict[str, Any] = {"traced_mb": round(traced / 1e6, 2), "peak_mb": round(peak / 1e6, 2)}
        if baseline is None or reset:
            return {**out, "sites": []}
        sites = []
        for stat in snapshot.compare_to(baseline, key)[:limit]:
            # the innermost frames first: the allocation itself, then its callers
            frames = stat.traceback.format(limit=_MAX_TRACE_FRAMES, most_recent_first=True)
            sites.append(
                {
                    "size_diff_kb": round(stat.size_diff / 1024, 1),
                    "count_diff": stat.count_diff,
                    "size_kb": round(stat.size / 1024, 1),
                    "count": stat.count,
                    "traceback": [line.strip() for line in frames if line.strip()],
                }
            )
        return {**out, "sites": sites}

    async def op_stop_node(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        """Close one node (same as on ``quit``); its data directory stays."""
        await self.hosting.stop(self.index(cmd))
        return {}

    async def op_start_node(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        """Open a stopped node again from its data directory (same key, same database)."""
        index = self.index(cmd)
        await self.hosting.start(index)
        node = self.hosting.slots[index]
        assert node is not None
        return {"peer_id": str(node.peer_id), "addrs": node.listen_addrs()}

    async def op_flood(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        """Flood ``peer`` at ``addrs`` from node ``node`` until ``flood_stop``: junk kad frames,
        oversized frames, idle streams, unknown protocols and raw TCP garbage, one round
        every ``interval`` seconds (see :func:`_flood`)."""
        import trio  # noqa: PLC0415

        from identity.keys import PeerId  # noqa: PLC0415

        node = self.node(cmd)
        peer = PeerId.parse(_field(cmd, "peer", str))
        addrs = _field(cmd, "addrs", list, [])
        if not addrs or not all(isinstance(a, str) for a in addrs):
            raise InvalidInput("addrs must be a non-empty list of strings")
        interval = cmd.get("interval", 0.05)
        if isinstance(interval, bool) or not isinstance(interval, int | float):
            raise InvalidInput("interval must be a number")
        if not 0.001 <= interval <= 60:
            raise InvalidInput("interval must be 0.001..60 seconds")
        name = str(peer)
        if name in self.floods:
            return {"flooding": len(self.floods)}
        if len(self.floods) >= MAX_FLOODS:
            raise InvalidInput(f"at most {MAX_FLOODS} floods at once")
        scope = trio.CancelScope()
        self.floods[name] = scope
        self.flood_sent.setdefault(name, 0)
        seed = _field(cmd, "seed", int, 0)

        async def run() -> None:
            with scope:
                await _flood(
                    node,
                    peer,
                    list(addrs),
                    interval=float(interval),
                    seed=seed,
                    sent=self.flood_sent,
                    name=name,
                )

        self.nursery.start_soon(run)
        return {"flooding": len(self.floods)}

    async def op_flood_stop(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        """Stop every flood; returns how many rounds each sent."""
        for scope in self.floods.values():
            scope.cancel()
        self.floods.clear()
        return {"sent": dict(self.flood_sent)}

    async def op_gc_freeze(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        frozen = settle_heap()
        GC_PAUSES.reset()
        return {"frozen_objects": frozen}

    async def op_quit(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        self.stop.set()
        return {}


async def _flood(
    node: Node,
    peer: Any,
    addrs: list[str],
    *,
    interval: float,
    seed: int,
    sent: dict[str, int],
    name: str,
) -> None:
    """Junk at every layer against one peer, a round every ``interval`` s, until cancelled.

    A round: a kad stream of 1-3 random frames; every tenth round a 300 KiB frame;
    every round a few idle kad streams held open for 2 s (more than a peer's
    per-peer stream budget over time); a request of a protocol nobody serves; a
    raw TCP connection sending garbage instead of a Noise handshake. Every
    error of the victim's side (refused, reset, stopped) is expected and ignored.
    """
    import contextlib  # noqa: PLC0415

    import trio  # noqa: PLC0415

    from datanet.p2p import parse_addr  # noqa: PLC0415

    rng = random.Random(seed)
    tcp = parse_addr(addrs[0])
    big = bytes(300 * 1024)

    async def idle() -> None:
        with contextlib.suppress(DatanetError):
            await send_raw_kad(node.host, peer, [], addrs=addrs, timeout=2.0)

    async def garbage() -> None:
        with contextlib.suppress(OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            with trio.move_on_after(2.0):
                stream = await trio.open_tcp_stream(tcp.host, tcp.port)
                async with stream:
                    await stream.send_all(rng.randbytes(4096))

    async with trio.open_nursery() as nursery:
        rounds = 0
        while True:
            frames = [rng.randbytes(rng.randrange(1, 2000)) for _ in range(rng.randrange(1, 4))]
            with contextlib.suppress(DatanetError):
                await send_raw_kad(node.host, peer, frames, addrs=addrs, timeout=1.0)
            if rounds % 10 == 0:
                with contextlib.suppress(DatanetError):
                    await send_raw_kad(node.host, peer, [big], addrs=addrs, timeout=1.0)
            for _ in range(3):
                nursery.start_soon(idle)
            with contextlib.suppress(DatanetError):
                await node.host.request(peer, "/datanet/nope/1.0.0", {"x": 1}, timeout=1.0)
            nursery.start_soon(garbage)
            rounds += 1
            sent[name] = sent.get(name, 0) + 1
            await trio.sleep(interval)


def _emit(obj: Mapping[str, Any]) -> None:
    line = json.dumps(obj, separators=(",", ":"))
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _error(exc: BaseException) -> dict[str, str]:
    code = exc.code if isinstance(exc, DatanetError) else "internal_error"
    return {"code": code, "type": type(exc).__name__, "message": str(exc)[:2000]}


async def _lines(stream: Any) -> AsyncIterator[bytes | None]:
    """Yield input lines (bytes, without newline); ``None`` for a line over MAX_LINE."""
    buf = bytearray()
    skipping = False
    while True:
        chunk = await stream.receive_some(_READ_CHUNK)
        if not chunk:
            if buf and not skipping:
                yield bytes(buf)
            return
        buf += chunk
        while True:
            cut = buf.find(b"\n")
            if cut < 0:
                break
            line = bytes(buf[:cut])
            del buf[: cut + 1]
            if skipping:
                skipping = False
                continue
            yield line
        if len(buf) > MAX_LINE:
            if not skipping:
                yield None
            skipping = True
            buf.clear()


def _parse_command(raw: bytes | None) -> dict[str, Any]:
    """One input line as a command object.

    Raises:
        InvalidInput: the line is too long, not JSON, not an object, or its id is not a scalar.
    """
    if raw is None:
        raise InvalidInput(f"command line longer than {MAX_LINE} bytes")
    try:
        cmd = json.loads(raw)
    except ValueError:
        raise InvalidInput("command is not valid JSON") from None
    if not isinstance(cmd, dict):
        raise InvalidInput("command must be a JSON object")
    if not isinstance(cmd.get("id"), str | int | float | None):
        raise InvalidInput("id must be a JSON scalar")
    return cmd


async def _serve(runner: _Runner) -> None:
    import trio  # noqa: PLC0415

    async def one(raw: bytes | None) -> None:
        ident: Any = None
        try:
            cmd = _parse_command(raw)
            ident = cmd.get("id")
            result = await runner.run(cmd)
        except DatanetError as exc:
            _emit({"id": ident, "ok": False, "error": _error(exc)})
        except Exception as exc:
            log.exception("command failed")
            _emit({"id": ident, "ok": False, "error": _error(exc)})
        else:
            _emit({"id": ident, "ok": True, **result})

    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    async with stdin, trio.open_nursery() as nursery:
        runner.nursery = nursery

        async def read_commands() -> None:
            async for raw in _lines(stdin):
                if raw is not None and not raw.strip():
                    continue
                nursery.start_soon(one, raw)
            runner.stop.set()  # stdin closed: the parent is gone

        nursery.start_soon(read_commands)
        await runner.stop.wait()
        nursery.cancel_scope.cancel()


async def _main_async(
    homes: Sequence[Path], *, seed: int | None, join_concurrency: int, gc_freeze: bool
) -> int:
    import trio  # noqa: PLC0415

    started = time.perf_counter()
    hosting = _Hosting(homes, seed)
    stop = trio.Event()

    limiter = trio.Semaphore(max(1, join_concurrency))
    async with trio.open_nursery() as nursery:
        hosting.nursery = nursery

        async def start(index: int) -> None:
            async with limiter:
                await nursery.start(hosting.host, index)

        # the first node alone: the others may bootstrap from it
        await nursery.start(hosting.host, 0)
        async with trio.open_nursery() as starters:
            for index in range(1, len(homes)):
                starters.start_soon(start, index)
        nodes = [n for n in hosting.slots if n is not None]
        if gc_freeze:
            # Everything built while joining lives as long as the nodes: out of the
            # collector's sight, full collections scan only newer objects (with many
            # nodes in one process they otherwise pause it for 100+ ms).
            settle_heap()
        GC_PAUSES.reset()  # report the pauses of the running network, not of the join
        nursery.start_soon(trim_until, stop)  # as the daemon does
        _emit(
            {
                "event": "ready",
                "pid": os.getpid(),
                "ms": round((time.perf_counter() - started) * 1000, 3),
                "nodes": [
                    {
                        "index": i,
                        "peer_id": str(n.peer_id),
                        "org": str(n.org) if n.org else None,
                        "addrs": n.listen_addrs(),
                    }
                    for i, n in enumerate(nodes)
                ],
            }
        )
        try:
            await _serve(_Runner(hosting, stop))
        finally:
            stop.set()
            hosting.leave_all()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m datanet.testing.localnet_worker``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m datanet.testing.localnet_worker",
        description="Run provisioned datanet nodes in one process, driven by JSON lines.",
    )
    parser.add_argument("--home", action="append", required=True, type=Path, metavar="DIR")
    parser.add_argument("--seed", type=int, default=None, help="seed of the nodes' randomness")
    parser.add_argument("--join-concurrency", type=int, default=8, metavar="N")
    parser.add_argument(
        "--no-gc-freeze",
        dest="gc_freeze",
        action="store_false",
        help="leave the collector as CPython sets it; by default the worker tunes it as the "
        "daemon does (datanet.node.heap: a higher young threshold, gc.freeze() once joined)",
    )
    parser.add_argument(
        "--log-level", default="warning", choices=["debug", "info", "warning", "error"]
    )
    args = parser.parse_args(argv)
    frames = os.environ.get(TRACEMALLOC_ENV, "")
    if frames.isdigit() and int(frames) > 0:
        tracemalloc.start(min(int(frames), 64))
    gc.callbacks.append(GC_PAUSES)
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s",
    )
    import trio  # noqa: PLC0415

    try:
        with collector_tuned() if args.gc_freeze else contextlib.nullcontext():
            return trio.run(
                lambda: _main_async(
                    args.home,
                    seed=args.seed,
                    join_concurrency=args.join_concurrency,
                    gc_freeze=args.gc_freeze,
                )
            )
    except KeyboardInterrupt:
        return 130
    except BaseException as exc:
        error = _datanet_error(exc)
        if error is None:
            raise
        _emit({"event": "error", "error": _error(error)})
        return 1


def _datanet_error(exc: BaseException) -> DatanetError | None:
    """The first DatanetError in ``exc`` (or in the exception groups around it)."""
    if isinstance(exc, DatanetError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _datanet_error(inner)
            if found is not None:
                return found
    return None


if __name__ == "__main__":
    raise SystemExit(main())
