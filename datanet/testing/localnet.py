"""A local network runner: several datanet nodes in one process, driven by JSON lines.

``python -m datanet.testing.localnet --home DIR [--home DIR ...]`` opens one node per
provisioned data directory (see :func:`datanet.devnet.provision`), joins them
to the network, prints a ``ready`` line, then serves commands read as JSON lines
on stdin, answering each with one JSON line on stdout. Multi-process tests and
``benchmarks/bench_net.py`` spread a network over several such processes and
drive them with :class:`Localnet` (the parent side of the pipe).

Protocol (one JSON object per line, UTF-8):

* out, once: ``{"event": "ready", "pid": …, "ms": join time, "nodes": [{"index", "peer_id",
  "org", "addrs"}, …]}`` (or ``{"event": "error", …}`` and exit status 1).
* in: ``{"op": <name>, "id": <any JSON scalar>, "node": <index>, …}``; out:
  ``{"id": …, "ok": true, "ms": …, …}`` or ``{"id": …, "ok": false, "error":
  {"code", "type", "message"}}``. Commands run concurrently, so answers may come
  in any order: match them by ``id``. ``ms`` is measured inside this process
  (``time.perf_counter``) around the operation alone, so pipe latency is not in it.
* ops: ``ping``; ``status`` (node status and routing statistics); ``publish``
  (``raw``: base64 signed descriptor); ``resolve`` (``dataset_id``, ``refresh``,
  ``cold``: refuse with code ``warm`` if the node already holds the record);
  ``routing_get`` (``key``: base64); ``held`` (what the node's record store holds
  under ``key``, no network); ``put_raw`` (send a PUT_VALUE of arbitrary ``key``
  and ``value`` bytes to ``peer`` at ``addrs``, past the client's own limits,
  and report whether the peer stored it); ``bootstrap`` (look ourselves up again);
  ``usage`` (this process's CPU seconds, resident memory and garbage collector
  pauses); ``gc_freeze`` (collect, then ``gc.freeze()`` every object alive now:
  call it once the network settled); ``quit``.

Invariants:
* stdout carries protocol lines only; logs go to stderr.
* An input line longer than :data:`MAX_LINE` bytes is skipped and answered with
  an ``invalid_input`` error; a malformed command is answered with an error. No
  input ends the runner except ``quit`` and the end of stdin.
* Errors carry the :class:`~datanet.errors.DatanetError` code of the failure.
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
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from datanet.errors import DatanetError, InvalidInput, Timeout

if TYPE_CHECKING:
    from datanet.node.driver import Node
    from datanet.p2p import Host
    from identity.keys import PeerId

__all__ = [
    "MAX_LINE",
    "Localnet",
    "LocalnetError",
    "LocalnetNode",
    "OpFailed",
    "check",
    "main",
    "put_value_payload",
    "running",
    "send_raw_kad",
    "stop_all",
]

log = logging.getLogger("datanet.localnet")

#: Longest command or answer line, in bytes (a 1 MiB value in base64 fits).
MAX_LINE = 4 * 1024 * 1024
#: Largest frame ``put_raw`` sends (it exists to send oversized ones).
MAX_RAW_FRAME = 2 * 1024 * 1024
_READ_CHUNK = 64 * 1024
_RAW_TIMEOUT = 5.0


class LocalnetError(DatanetError):
    """Raised when a runner process fails to start, dies, or breaks the line protocol."""

    code = "localnet_error"


class OpFailed(DatanetError):
    """Raised by :meth:`Localnet.call` when the runner answered ``ok: false``.

    Attributes:
        remote_code: the error code the runner reported (``not_found``, ``warm``, …).
        answer: the whole answer object.
    """

    code = "op_failed"

    def __init__(self, answer: Mapping[str, Any]) -> None:
        error = answer.get("error") or {}
        self.remote_code = str(error.get("code", "unknown"))
        self.answer = dict(answer)
        super().__init__(f"{self.remote_code}: {error.get('message', '')}")


class _Warm(DatanetError):
    code = "warm"


# --------------------------------------------------------------------------- raw kad


def put_value_payload(key: bytes, value: bytes) -> bytes:
    """A kad PUT_VALUE message of ``key`` and ``value``, encoded past the usual limits.

    Raises:
        RecordTooLarge: the message exceeds :data:`MAX_RAW_FRAME`.
    """
    from routing.wire import Message, MessageType, Record, WireLimits, encode_message  # noqa: PLC0415

    limits = WireLimits(max_key_size=max(512, len(key)), max_value_size=MAX_RAW_FRAME)
    msg = Message(MessageType.PUT_VALUE, key, record=Record(key, value))
    return encode_message(msg, max_size=MAX_RAW_FRAME, limits=limits)


async def send_raw_kad(
    host: Host,
    peer: PeerId,
    frames: Sequence[bytes],
    *,
    addrs: Sequence[str] = (),
    timeout: float = _RAW_TIMEOUT,
    want: int = 1,
) -> tuple[list[bytes], str | None]:
    """Write ``frames`` (raw payloads, each length-prefixed) on a fresh kad stream to ``peer``.

    This deliberately bypasses the kad client's encoding limits: it is how tests
    send what a misbehaving peer would (oversized, forged, junk messages).

    Args:
        host: our host.
        peer: the receiver.
        frames: payloads to send, one frame each.
        addrs: addresses to dial if not connected.
        timeout: for the whole exchange.
        want: how many response frames to wait for at most.

    Returns:
        The response payloads read, and why the exchange stopped early (the
        stream was reset or closed, a timeout), or None if it completed.

    Raises:
        PeerUnreachable, AdmissionRefused, Timeout, ProtocolNotSupported: no
            kad stream could be opened to ``peer``.
    """
    import trio  # noqa: PLC0415 - only the runner side needs trio

    from datanet.p2p import KAD_PROTOCOL  # noqa: PLC0415

    deadline = trio.current_time() + timeout
    # open_stream turns its own deadline into Timeout, so this helper raises
    # only DatanetError, as its callers expect (trio.TooSlowError escaped here
    # once and failed flood tests on a busy machine).
    stream = await host.open_stream(peer, KAD_PROTOCOL, timeout=timeout, addrs=addrs)
    responses: list[bytes] = []
    stopped: str | None = None
    try:
        with trio.move_on_at(deadline) as scope:
            for frame in frames:
                await stream.write_frame(frame, MAX_RAW_FRAME)
            while len(responses) < want:
                got = await stream.read_frame(MAX_RAW_FRAME)
                if got is None:
                    stopped = "the peer closed the stream"
                    break
                responses.append(got)
        if scope.cancelled_caught:
            stopped = "timed out"
    except DatanetError as exc:
        stopped = f"{exc.code}: {exc}"
    finally:
        with trio.CancelScope(shield=True):
            await stream.reset()
    return responses, stopped


# --------------------------------------------------------------------------- runner side


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
        result = await node.publish(_unb64(cmd.get("raw"), "raw"))
        return {
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
    from datanet.node.driver import open_node  # noqa: PLC0415
    from datanet.node.home import Home  # noqa: PLC0415

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
    """Entry point of ``python -m datanet.testing.localnet``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m datanet.testing.localnet",
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


# --------------------------------------------------------------------------- parent side


@dataclass(frozen=True)
class LocalnetNode:
    """A node as its runner announced it in the ``ready`` line."""

    index: int
    peer_id: str
    org: str | None
    addrs: tuple[str, ...]


class Localnet:
    """One runner process (``python -m datanet.testing.localnet``) and its line protocol.

    Thread-safe: :meth:`submit` may be called from several threads; a reader
    thread matches answers to requests by ``id``.

    Args:
        homes: the data directories of the nodes this process hosts.
        seed: seed of the nodes' randomness.
        log_level: the runner's stderr log level.
        stderr: where the runner's logs go (default: inherited).
        python: the interpreter to run.
        join_concurrency: how many nodes join at once (after the first).
        gc_freeze: ``gc.freeze()`` once all nodes joined (see ``--no-gc-freeze``).
    """

    def __init__(
        self,
        homes: Sequence[Path],
        *,
        seed: int | None = None,
        log_level: str = "warning",
        stderr: IO[bytes] | int | None = None,
        python: str = sys.executable,
        join_concurrency: int = 8,
        gc_freeze: bool = True,
    ) -> None:
        if not homes:
            raise InvalidInput("a runner hosts at least one node")
        cmd = [python, "-m", "datanet.testing.localnet", "--log-level", log_level]
        cmd += ["--join-concurrency", str(join_concurrency)]
        if not gc_freeze:
            cmd.append("--no-gc-freeze")
        if seed is not None:
            cmd += ["--seed", str(seed)]
        for home in homes:
            cmd += ["--home", str(home)]
        self.homes = tuple(Path(h) for h in homes)
        self._proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        self._lock = threading.Lock()
        self._next_id = 0
        self._pending: dict[int, Future[dict[str, Any]]] = {}
        self._ready: Future[dict[str, Any]] = Future()
        self._dead: str | None = None
        self.nodes: list[LocalnetNode] = []
        self.ready_ms: float | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        """The runner's process id."""
        return self._proc.pid

    def _read(self) -> None:
        assert self._proc.stdout is not None
        reason = "the runner exited"
        try:
            for raw in self._proc.stdout:
                if len(raw) > MAX_LINE:
                    reason = "the runner sent an overlong line"
                    break
                try:
                    msg = json.loads(raw)
                except ValueError:
                    reason = f"the runner sent a malformed line: {raw[:200]!r}"
                    break
                if not isinstance(msg, dict):
                    continue
                if "event" in msg:
                    if not self._ready.done():
                        self._ready.set_result(msg)
                    continue
                with self._lock:
                    future = self._pending.pop(msg.get("id"), None)  # type: ignore[arg-type]
                if future is not None:
                    future.set_result(msg)
        except (OSError, ValueError) as exc:
            reason = f"reading from the runner failed: {exc}"
        with self._lock:
            self._dead = reason
            pending, self._pending = self._pending, {}
        error = LocalnetError(reason)
        if not self._ready.done():
            self._ready.set_exception(error)
        for future in pending.values():
            future.set_exception(error)

    def wait_ready(self, timeout: float = 60.0) -> list[LocalnetNode]:
        """Wait for the ``ready`` line; returns the nodes (in ``--home`` order).

        Raises:
            LocalnetError: the runner failed to start or reported an error.
            Timeout: not ready within ``timeout`` seconds.
        """
        try:
            msg = self._ready.result(timeout)
        except TimeoutError:
            raise Timeout(f"runner {self.pid} not ready after {timeout:.0f} s") from None
        if msg.get("event") != "ready":
            raise LocalnetError(f"runner {self.pid} failed to start: {msg.get('error')}")
        self.ready_ms = float(msg.get("ms", 0.0))
        self.nodes = [
            LocalnetNode(int(n["index"]), str(n["peer_id"]), n.get("org"), tuple(n["addrs"]))
            for n in msg["nodes"]
        ]
        return self.nodes

    def submit(self, op: str, **fields: Any) -> Future[dict[str, Any]]:
        """Send a command; the future gets the answer object (``ok`` true or false).

        Raises:
            LocalnetError: the runner is gone.
        """
        with self._lock:
            if self._dead is not None:
                raise LocalnetError(f"runner {self.pid} is gone: {self._dead}")
            ident = self._next_id
            self._next_id += 1
            future: Future[dict[str, Any]] = Future()
            self._pending[ident] = future
            line = json.dumps({"op": op, "id": ident, **fields}, separators=(",", ":"))
            assert self._proc.stdin is not None
            try:
                self._proc.stdin.write(line.encode() + b"\n")
                self._proc.stdin.flush()
            except OSError as exc:
                self._pending.pop(ident, None)
                raise LocalnetError(f"runner {self.pid} is gone: {exc}") from None
        return future

    def call(self, op: str, *, timeout: float = 60.0, **fields: Any) -> dict[str, Any]:
        """Send a command and wait for its answer.

        Raises:
            OpFailed: the runner answered with an error (see ``remote_code``).
            LocalnetError: the runner is gone.
            Timeout: no answer within ``timeout`` seconds.
        """
        return check(self.submit(op, **fields), timeout)

    def kill(self) -> None:
        """SIGKILL the runner (a crash) and reap it."""
        with contextlib.suppress(ProcessLookupError):
            self._proc.send_signal(signal.SIGKILL)
        self._proc.wait()
        self._close_pipes()

    def request_quit(self) -> None:
        """Ask the runner to stop (without waiting); see :meth:`wait`."""
        if self._proc.poll() is None:
            with contextlib.suppress(DatanetError):
                self.submit("quit")

    def wait(self, timeout: float = 15.0) -> int:
        """Wait for the runner to exit; SIGKILL it after ``timeout`` seconds.

        Returns:
            Its exit status.
        """
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._close_pipes()
        return int(self._proc.returncode)

    def quit(self, timeout: float = 15.0) -> int:
        """Ask the runner to stop and wait for it; SIGKILL it after ``timeout``.

        Returns:
            Its exit status.
        """
        self.request_quit()
        return self.wait(timeout)

    def _close_pipes(self) -> None:
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        self._reader.join(5)

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the runner so far (from /proc, Linux).

        Raises:
            LocalnetError: /proc is unavailable or the runner is gone.
        """
        try:
            with open(f"/proc/{self.pid}/stat", encoding="ascii") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError) as exc:
            raise LocalnetError(f"cannot read the runner's CPU time: {exc}") from None
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def rss_mb(self) -> float:
        """The runner's VmRSS in MB (Linux).

        Raises:
            LocalnetError: /proc is unavailable or the runner is gone.
        """
        try:
            with open(f"/proc/{self.pid}/status", encoding="ascii") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        except (OSError, ValueError, IndexError) as exc:
            raise LocalnetError(f"cannot read the runner's memory: {exc}") from None
        raise LocalnetError("no VmRSS line in /proc status")


def check(future: Future[dict[str, Any]], timeout: float = 60.0) -> dict[str, Any]:
    """The answer of a submitted command, raising if it failed.

    Raises:
        OpFailed: the runner answered with an error.
        LocalnetError: the runner is gone.
        Timeout: no answer within ``timeout`` seconds.
    """
    try:
        answer = future.result(timeout)
    except TimeoutError:
        raise Timeout(f"no answer within {timeout:.0f} s") from None
    if not answer.get("ok"):
        raise OpFailed(answer)
    return answer


@contextlib.contextmanager
def running(*runners: Localnet) -> Iterator[tuple[Localnet, ...]]:
    """Stop every runner (``quit``, else SIGKILL) when the block ends."""
    try:
        yield runners
    finally:
        stop_all(runners)


def stop_all(runners: Iterable[Localnet | None], timeout: float = 15.0) -> None:
    """Ask every runner to quit at once, then wait for each (SIGKILL after ``timeout``)."""
    live = [r for r in runners if r is not None]
    for runner in live:
        runner.request_quit()
    for runner in live:
        runner.wait(timeout)


if __name__ == "__main__":
    raise SystemExit(main())
