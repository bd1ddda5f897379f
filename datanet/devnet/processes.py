"""The devnet's daemon processes: start them, wait until they answer, stop them all.

:class:`DaemonSet` starts one daemon per node as a child process (output to
``<node>/daemon.log``), waits until each API answers, and stops them all
(SIGTERM, then SIGKILL after a timeout). :class:`StopSignals` turns SIGINT and
SIGTERM into stop requests for the supervising process.

Which command runs a daemon is the caller's to say (``command``): this package
sits below the command line and must not depend on it, while the command line
knows best how it starts itself (``datanet node start`` through ``cli.main``,
with its passphrase handling, config and logging). A second, devnet-only entry
point into the daemon would be a second start-up path to keep in step with
``node start``; passing the command keeps exactly one, and lets the devnet run
precisely what an operator runs.

Invariants:
* Every daemon a :class:`DaemonSet` started is stopped when the set is closed,
  whatever the reason (normal end, error, signal): SIGTERM, a bounded wait, then
  SIGKILL, and every child is reaped. On Linux a daemon also receives SIGTERM if
  the devnet process itself dies (``PR_SET_PDEATHSIG``), so no daemon outlives it.
* Daemons run in their own process group: a Ctrl-C at the terminal reaches the
  devnet process only, which then stops the daemons in order.
* Nothing here talks to a daemon except through :class:`datanet.client.Client`
  (the HTTP API).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any, Self

from datanet.client import Client, NodeStatus
from datanet.devnet.layout import Devnet, DevnetError, DevnetNode, sign_org_records
from datanet.errors import DatanetError
from datanet.node.paths import API_URL_FILE, PID_FILE, TOKEN_FILE

__all__ = [
    "DaemonCommand",
    "DaemonProcess",
    "DaemonSet",
    "DaemonStartError",
    "StopSignals",
    "child_env",
    "cli_display_command",
    "daemon_pid",
    "publish_org_records",
    "start_network",
]

#: Given a node's data directory, the command line that runs its daemon in the
#: foreground until SIGTERM (e.g. ``datanet --data-dir DIR node start``).
DaemonCommand = Callable[[Path], Sequence[str]]


class DaemonStartError(DevnetError):
    """Raised when a node's daemon exits or does not answer in time; names its log file."""

    code = "daemon_start_failed"


def child_env(base: os._Environ[str] | dict[str, str] | None = None) -> dict[str, str]:
    """The environment for daemon and CLI child processes.

    Settings that would point a child at another data directory, daemon or
    passphrase are removed; the source tree is put on ``PYTHONPATH`` so that a
    command such as ``python -m cli.main`` works even where datanet is not installed.
    """
    env = dict(os.environ if base is None else base)
    for name in ("DATANET_HOME", "DATANET_API_URL", "DATANET_API_TOKEN", "DATANET_PASSPHRASE"):
        env.pop(name, None)
    root = str(Path(__file__).resolve().parents[2])  # the source tree
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != root]
    env["PYTHONPATH"] = os.pathsep.join([root, *paths])
    return env


def cli_display_command() -> str:
    """How a user types the ``datanet`` command that belongs to this Python.

    ``datanet`` when that is on ``PATH`` and is ours; else the console script
    next to this interpreter (e.g. ``.venv/bin/datanet``); else ``python -m cli.main``.
    """
    script = Path(sys.executable).parent / "datanet"
    if script.exists():
        found = _which("datanet")
        if found is not None and found.resolve() == script.resolve():
            return "datanet"
        with contextlib.suppress(ValueError):
            return str(script.relative_to(Path.cwd()))
        return str(script)
    return f"{sys.executable} -m cli.main"


def _which(name: str) -> Path | None:
    import shutil  # noqa: PLC0415 - only for display

    found = shutil.which(name)
    return Path(found) if found else None


def daemon_pid(home: Path) -> int | None:
    """The pid of the daemon running on ``home``, or None when none holds its pid lock."""
    path = home / PID_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGTERM when we die (Linux only).

    ``prctl`` is looked up here, in the parent, so the child runs nothing but
    two system calls between fork and exec.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
        if os.getppid() != parent:  # we died between fork and prctl
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def _tail(path: Path, lines: int = 8, max_bytes: int = 8192) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class DaemonProcess:
    """One daemon child process and what the devnet knows about it.

    ``stopped`` tells whether :meth:`DaemonSet.stop` found it running and stopped it
    (``returncode`` 0 means a clean exit; negative values are signals).
    """

    node: DevnetNode
    proc: subprocess.Popen[bytes]
    started: float
    status: NodeStatus | None = None
    ready_after: float | None = None
    returncode: int | None = None
    stopped: bool = False

    @property
    def pid(self) -> int:
        """The daemon's process id."""
        return self.proc.pid

    def alive(self) -> bool:
        """Whether the process still runs (reaps it when it has exited)."""
        return self.proc.poll() is None

    def failure(self, reason: str) -> DaemonStartError:
        """A start error for this node, naming its log file and quoting its end."""
        tail = _tail(self.node.log_path)
        quoted = "\n".join(f"    {line}" for line in tail.splitlines())
        return DaemonStartError(
            f"{self.node.name} ({self.node.org.name}) {reason}; see {self.node.log_path}"
            + (f"\n  last lines of its log:\n{quoted}" if quoted else "")
        )


class DaemonSet:
    """The daemons a devnet runs; closing the set stops every one of them.

    Use as a context manager: whatever ends the block (return, exception,
    KeyboardInterrupt), every daemon started through :meth:`spawn` is sent
    SIGTERM, waited for up to ``stop_timeout`` seconds, then SIGKILLed and reaped.

    Args:
        command: the command line that runs a node's daemon (see
            :data:`DaemonCommand`); run with :func:`child_env`'s environment.
        stop_timeout: seconds to wait for clean exits before SIGKILL.
        force: polled while stopping; when it returns True the remaining
            daemons are SIGKILLed at once (e.g. a second Ctrl-C).
    """

    def __init__(
        self,
        command: DaemonCommand,
        *,
        stop_timeout: float = 15.0,
        force: Callable[[], bool] | None = None,
    ) -> None:
        self.command = command
        self.daemons: list[DaemonProcess] = []
        self.stop_timeout = stop_timeout
        self._force = force or (lambda: False)
        self._preexec = _die_with_parent()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def spawn(self, node: DevnetNode) -> DaemonProcess:
        """Start ``node``'s daemon; its stdout and stderr are appended to its ``daemon.log``.

        Stale runtime files of a daemon that was killed (``api.url``, ``api.token``)
        are removed first so that readiness is judged on the new daemon only.

        Raises:
            DaemonStartError: a daemon already runs on that data directory, or the
                process cannot be started.
        """
        running = daemon_pid(node.home)
        if running is not None:
            raise DaemonStartError(
                f"a daemon (pid {running}) already runs on {node.home}; stop it first "
                f"(datanet --data-dir {node.home} node stop)"
            )
        for name in (API_URL_FILE, TOKEN_FILE):
            (node.home / name).unlink(missing_ok=True)
        try:
            log: IO[bytes] = node.log_path.open("ab")
        except OSError as exc:
            raise DaemonStartError(f"cannot open {node.log_path}: {exc.strerror}") from None
        with log:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            log.write(f"--- datanet devnet: starting {node.name} at {stamp} ---\n".encode())
            log.flush()
            try:
                proc = subprocess.Popen(  # noqa: S603 - the caller's own command
                    list(self.command(node.home)),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=child_env(),
                    process_group=0,
                    preexec_fn=self._preexec,  # noqa: PLW1509 - no other thread runs here
                )
            except OSError as exc:
                raise DaemonStartError(f"cannot start {node.name}: {exc.strerror}") from None
        daemon = DaemonProcess(node, proc, time.monotonic())
        self.daemons.append(daemon)
        return daemon

    def wait_ready(
        self,
        daemons: Sequence[DaemonProcess],
        *,
        timeout: float,
        on_ready: Callable[[DaemonProcess], None] | None = None,
        tick: Callable[[], None] | None = None,
        poll: float = 0.1,
    ) -> None:
        """Wait until every daemon's API answers ``node/status`` with its own pid.

        Raises:
            DaemonStartError: a daemon exited, or did not answer within ``timeout``
                seconds; the message names the node and its log file.
        """
        deadline = time.monotonic() + timeout
        pending = list(daemons)
        while pending:
            for daemon in list(pending):
                if not daemon.alive():
                    daemon.returncode = daemon.proc.returncode
                    raise daemon.failure(f"exited with status {daemon.proc.returncode}")
                status = _probe(daemon.node.home)
                if status is None:
                    continue
                if status.pid != daemon.pid:
                    raise daemon.failure(f"is answered by another process (pid {status.pid})")
                daemon.status = status
                daemon.ready_after = time.monotonic() - daemon.started
                pending.remove(daemon)
                if on_ready is not None:
                    on_ready(daemon)
            if not pending:
                return
            if time.monotonic() > deadline:
                raise pending[0].failure(f"did not answer within {timeout:g} s")
            time.sleep(poll)
            if tick is not None:
                tick()

    def check_alive(self) -> list[DaemonProcess]:
        """The daemons that exited since they were started (each reported once)."""
        dead = []
        for daemon in self.daemons:
            if daemon.returncode is None and not daemon.alive():
                daemon.returncode = daemon.proc.returncode
                dead.append(daemon)
        return dead

    def stop(self) -> None:
        """Stop every daemon: SIGTERM, wait up to ``stop_timeout``, then SIGKILL; reap all."""
        live = [d for d in self.daemons if d.alive()]
        for daemon in live:
            daemon.stopped = True
            with contextlib.suppress(ProcessLookupError):
                daemon.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        while live and time.monotonic() < deadline and not self._force():
            live = [d for d in live if d.alive()]
            if live:
                time.sleep(0.05)
        for daemon in live:
            if daemon.alive():
                with contextlib.suppress(ProcessLookupError):
                    daemon.proc.kill()
        for daemon in self.daemons:
            daemon.returncode = daemon.proc.wait()


def _probe(home: Path) -> NodeStatus | None:
    """The daemon's status if its API answers now, else None."""
    try:
        with Client(home, timeout=2.0) as client:
            return client.status()
    except DatanetError:
        return None


def start_network(
    devnet: Devnet,
    daemons: DaemonSet,
    *,
    timeout: float,
    on_spawn: Callable[[DaemonProcess], None] | None = None,
    on_ready: Callable[[DaemonProcess], None] | None = None,
    tick: Callable[[], None] | None = None,
    waiting: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
    org_records: bool = True,
) -> list[DaemonProcess]:
    """Start every node of ``devnet``: the bootstrap nodes first, then all others at once.

    Once every daemon answers, each org's org record is signed anew and published
    through its gateway node (:func:`publish_org_records`), so that every node's
    ledger learns every org's gateway.

    Args:
        devnet: the network to start.
        daemons: the set that owns (and will stop) the processes.
        timeout: seconds each phase may take until every API answers.
        on_spawn: called as each process starts.
        on_ready: called as each API answers.
        tick: called between polls (e.g. to redraw a progress display).
        waiting: a context entered around each wait (e.g. to let signals
            interrupt the wait, but not the spawning).
        org_records: whether to sign and publish the org records.

    Raises:
        DaemonStartError: a node failed to start, or an org record could not
            be published; the caller's ``DaemonSet`` stops the others.
    """
    started: list[DaemonProcess] = []
    first = devnet.nodes[: devnet.bootstrap_count]
    rest = devnet.nodes[devnet.bootstrap_count :]
    for phase in (first, rest):
        batch = []
        for node in phase:
            daemon = daemons.spawn(node)
            batch.append(daemon)
            if on_spawn is not None:
                on_spawn(daemon)
        with waiting():
            daemons.wait_ready(batch, timeout=timeout, on_ready=on_ready, tick=tick)
        started += batch
    if org_records:
        with waiting():
            publish_org_records(devnet, sign_org_records(devnet, int(time.time())))
    return started


def publish_org_records(devnet: Devnet, records: dict[str, bytes]) -> None:
    """Publish each org's record through its gateway node's API.

    Raises:
        DaemonStartError: a daemon refused a record or did not answer; names the node.
    """
    for org in devnet.orgs:
        raw = records.get(org.name)
        if raw is None:
            continue
        node = devnet.gateway_of(org)
        try:
            with Client(node.home, timeout=30.0) as client:
                client.publish(raw)
        except DatanetError as exc:
            raise DaemonStartError(
                f"{node.name} ({org.name}) did not publish the org record: {exc}"
            ) from None


class StopSignals:
    """SIGINT and SIGTERM as stop requests, for a process that supervises children.

    Outside :meth:`interruptible` blocks a signal is only recorded (so it never
    interrupts the spawning of a child half-way); inside one, the first signal
    raises :class:`KeyboardInterrupt`. :attr:`forced` becomes true with the second
    signal, which :class:`DaemonSet` uses to SIGKILL instead of waiting. The
    previous handlers are restored on exit. Only works in the main thread.
    """

    def __init__(self) -> None:
        self.count = 0
        self.last: int | None = None
        self._depth = 0
        self._old: dict[int, Any] = {}

    def __enter__(self) -> Self:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._old[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        for signum, old in self._old.items():
            signal.signal(signum, old)
        self._old.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        self.last = signum
        if self._depth and self.count == 1:
            raise KeyboardInterrupt

    @property
    def requested(self) -> bool:
        """Whether a stop was asked for."""
        return self.count > 0

    @property
    def forced(self) -> bool:
        """Whether a second signal asked to stop at once."""
        return self.count > 1

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """Inside this block a stop request raises :class:`KeyboardInterrupt`."""
        if self.requested:
            raise KeyboardInterrupt
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1

    def wait(self, poll: float = 0.2, tick: Callable[[], None] | None = None) -> None:
        """Block until a stop is requested, calling ``tick`` every ``poll`` seconds."""
        while not self.requested:
            time.sleep(poll)
            if tick is not None:
                tick()


# --- sample datasets ----------------------------------------------------------------
