"""A local network runner: several datanet nodes in one process, driven by JSON lines.

``python -m datanet.testing.localnet_worker --home DIR [--home DIR ...]`` opens one node per
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
  ``announce`` (``raw``: verify a record into the ledger and send it by gossip only);
  ``track`` (from now on, record when each catalog event arrives on every node of
  the process) and ``arrivals`` (``keys``: those times, per node); ``catalog``
  (catalog size and gossip/sync figures of every node); ``sync`` (reconcile now);
  ``usage`` (this process's CPU seconds, resident memory and garbage collector
  pauses); ``gc_freeze`` (collect, then ``gc.freeze()`` every object alive now:
  call it once the network settled); ``quit``.
* churn and soak ops: ``stop_node`` (close one node as on ``quit``; its data
  directory stays; ops naming it then fail with code ``node_stopped``);
  ``start_node`` (open it again from the same directory, same key and database,
  and rejoin); ``sample`` (resident memory, open file descriptors, the number of
  live trio tasks, which nodes run); ``flood`` (``peer``, ``addrs``,
  ``interval``: node ``node`` floods that peer with junk at every layer until
  ``flood_stop``, which reports the rounds sent).

Invariants:
* stdout carries protocol lines only; logs go to stderr.
* An input line longer than :data:`MAX_LINE` bytes is skipped and answered with
  an ``invalid_input`` error; a malformed command is answered with an error. No
  input ends the runner except ``quit`` and the end of stdin.
* Errors carry the :class:`~datanet.errors.DatanetError` code of the failure.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from datanet.errors import DatanetError, InvalidInput, Timeout

if TYPE_CHECKING:
    pass

__all__ = [
    "MAX_LINE",
    "Localnet",
    "LocalnetError",
    "LocalnetNode",
    "OpFailed",
    "check",
    "running",
    "stop_all",
]

log = logging.getLogger("datanet.localnet")

#: Longest command or answer line, in bytes (a 1 MiB value in base64 fits).
MAX_LINE = 4 * 1024 * 1024


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


@dataclass(frozen=True)
class LocalnetNode:
    """A node as its runner announced it in the ``ready`` line."""

    index: int
    peer_id: str
    org: str | None
    addrs: tuple[str, ...]


class Localnet:
    """One runner process (``python -m datanet.testing.localnet_worker``) and its line protocol.

    Thread-safe: :meth:`submit` may be called from several threads; a reader
    thread matches answers to requests by ``id``.

    Args:
        homes: the data directories of the nodes this process hosts.
        seed: seed of the nodes' randomness.
        log_level: the runner's stderr log level.
        stderr: where the runner's logs go (default: inherited).
        python: the interpreter to run.
        join_concurrency: how many nodes join at once (after the first).
        gc_freeze: tune the collector as the daemon does (``datanet.node.heap``: a
            higher young threshold, ``gc.freeze()`` once all nodes joined).
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
        cmd = [python, "-m", "datanet.testing.localnet_worker", "--log-level", log_level]
        cmd += ["--join-concurrency", str(join_concurrency)]
        if not gc_freeze:
            cmd.append("--no-gc-freeze")
        if seed is not None:
            cmd += ["--seed", str(seed)]
        for home in homes:
            cmd += ["--home", str(home)]
        self.homes = tuple(Path(h) for h in homes)
        self._start(cmd, stderr)

    def _start(
        self, cmd: list[str], stderr: IO[bytes] | int | None, cwd: Path | None = None
    ) -> None:
        """Spawn the runner ``cmd`` (any program that speaks the line protocol) and read it."""
        self._proc = subprocess.Popen(  # noqa: S603 - a runner command built by the caller
            cmd,
            cwd=cwd,
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

    def fd_count(self) -> int:
        """How many file descriptors the runner holds (``/proc/<pid>/fd``, Linux).

        Raises:
            LocalnetError: /proc is unavailable or the runner is gone.
        """
        try:
            return len(os.listdir(f"/proc/{self.pid}/fd"))
        except OSError as exc:
            raise LocalnetError(f"cannot list the runner's file descriptors: {exc}") from None


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
