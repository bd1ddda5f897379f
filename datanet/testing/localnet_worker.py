"""The runner side of :mod:`datanet.testing.localnet`: nodes in one process, driven by JSON lines.

``python -m datanet.testing.localnet_worker --home DIR [--home DIR ...]``; the
line protocol and its invariants are documented in :mod:`datanet.testing.localnet`.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import logging
import os
import random
import resource
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datanet.errors import DatanetError, InvalidInput
from datanet.testing.localnet import MAX_LINE
from datanet.testing.raw import MAX_RAW_FRAME, put_value_payload, send_raw_kad

if TYPE_CHECKING:
    from datanet.node.driver import Node

__all__ = ["GC_PAUSES", "main"]

log = logging.getLogger("datanet.localnet")

_READ_CHUNK = 64 * 1024


class _Warm(DatanetError):
    code = "warm"


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
    a large heap stops every node of the process at once."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.total = 0.0
        self.longest = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: Mapping[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        self.count[int(info.get("generation", 2))] += 1
        self.total += pause
        self.longest = max(self.longest, pause)

    def reset(self) -> None:
        self.count = [0, 0, 0]
        self.total = self.longest = 0.0

    def report(self) -> dict[str, Any]:
        return {
            "collections_since_ready": list(self.count),
            "pause_total_ms": round(self.total * 1000, 1),
            "pause_max_ms": round(self.longest * 1000, 1),
            "frozen_objects": gc.get_freeze_count(),
        }


GC_PAUSES = _GcPauses()


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Runner:
    """Executes commands against the nodes of this process."""

    def __init__(self, nodes: list[Node], stop: Any) -> None:
        self.nodes = nodes
        self.stop = stop
        self.nursery: Any = None
        # Per node: dataset id -> wall-clock time its catalog event arrived (op track).
        self.arrivals: list[dict[str, float]] = [{} for _ in nodes]
        self.tracking = False

    def node(self, cmd: Mapping[str, Any]) -> Node:
        index: int = _field(cmd, "node", int, 0)
        if not 0 <= index < len(self.nodes):
            raise InvalidInput(f"node must be 0..{len(self.nodes) - 1}")
        return self.nodes[index]

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
        return {"nodes": len(self.nodes)}

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
            for index, node in enumerate(self.nodes):
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
                {
                    "catalog_size": len(n.ledger.catalog),
                    "ledger_items": n.ledger.held_ids(),
                    "stats": dict(n.catalog_stats()),
                }
                for n in self.nodes
            ]
        }

    async def op_sync(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        node = self.node(cmd)
        return {"sessions": list(await node.catalog_sync(peers=_field(cmd, "peers", int, 3)))}

    async def op_bootstrap(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        node = self.node(cmd)
        return {"routing_table_size": await node.bootstrap()}

    async def op_usage(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "cpu_seconds": _cpu_seconds(),
            "rss_mb": round(_rss_mb(), 2),
            "gc": GC_PAUSES.report(),
        }

    async def op_gc_freeze(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        gc.collect()
        gc.freeze()
        GC_PAUSES.reset()
        return {"frozen_objects": gc.get_freeze_count()}

    async def op_quit(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        self.stop.set()
        return {}


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

    from datanet.node.config import load_config  # noqa: PLC0415
    from datanet.node.home import Home  # noqa: PLC0415
    from datanet.node.startup import open_node  # noqa: PLC0415

    started = time.perf_counter()
    slots: list[Node | None] = [None] * len(homes)
    stop = trio.Event()

    async def host(index: int, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        home = Home(homes[index])
        config = load_config(home.config_path)
        rng = random.Random(None if seed is None else seed * 1_000_003 + index)
        async with open_node(home.path, config, home.load_node_key(), rng=rng) as node:
            slots[index] = node
            task_status.started()
            await stop.wait()

    limiter = trio.Semaphore(max(1, join_concurrency))
    async with trio.open_nursery() as nursery:

        async def start(index: int) -> None:
            async with limiter:
                await nursery.start(host, index)

        # the first node alone: the others may bootstrap from it
        await nursery.start(host, 0)
        async with trio.open_nursery() as starters:
            for index in range(1, len(homes)):
                starters.start_soon(start, index)
        nodes = [n for n in slots if n is not None]
        if gc_freeze:
            # Everything built while joining lives as long as the nodes: move it out
            # of the collector's sight, so full collections scan only newer objects
            # (with many nodes in one process they otherwise pause it for 100+ ms).
            gc.collect()
            gc.freeze()
        GC_PAUSES.reset()  # report the pauses of the running network, not of the join
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
        await _serve(_Runner(nodes, stop))
        stop.set()
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
        help="do not gc.freeze() the objects that exist once all nodes joined",
    )
    parser.add_argument(
        "--log-level", default="warning", choices=["debug", "info", "warning", "error"]
    )
    args = parser.parse_args(argv)
    gc.callbacks.append(GC_PAUSES)
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s",
    )
    import trio  # noqa: PLC0415

    try:
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
