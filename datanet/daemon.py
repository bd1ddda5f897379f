"""The node daemon: one process running the node and its control API in one trio nursery.

Start-up order (``run_daemon``): lock the pid file (one daemon per data directory)
→ load the config → set up logging → unlock the node key → write a fresh API token
→ open the node → serve the API (hypercorn's trio worker) → write ``api.url`` →
log ``daemon_ready``. It then runs until SIGINT/SIGTERM or ``POST /api/v0/node/stop``;
shutdown is the reverse: stop accepting API requests (in-flight ones finish), close
the node, remove ``api.url``, ``api.token`` and the pid file.

Files in the data directory:

* ``datanet.pid`` - the daemon's pid, ``flock``-ed while it runs.
* ``api.token`` - the bearer token (mode 0600), new at every start.
* ``api.url`` - the URL the API actually listens on (``http://127.0.0.1:5080``);
  present only while the API is serving. Clients read it first.

Invariants:
* The token file is created 0600 before the API listens, so no request can be
  authorised with a token another local user could have read.
* A second SIGINT/SIGTERM during shutdown, or one before the daemon is ready,
  cancels everything at once.
* Log lines are structured: ``key=value`` text or JSON objects, one per line.
* No logger and message template writes more than ``LOG_MAX_REPEATS`` lines per
  ``LOG_REPEAT_WINDOW``; the rest are counted and summarised in one line.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import logging
import os
import secrets
import signal
import socket
import sys
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

import trio

from datanet.api._node_protocol import NodeAPI
from datanet.errors import DaemonAlreadyRunning, DaemonError, DatanetError
from datanet.node.config import Config, ConfigFile
from datanet.node.heap import collector_tuned, settle_heap, trim_until
from datanet.node.paths import HomeLayout
from identity.keys import KeyPair
from identity.keystore import atomic_write

if TYPE_CHECKING:
    # trio-typing's stubs shadow trio's own annotations in this environment.
    from trio_typing import TaskStatus

__all__ = [
    "LOG_MAX_REPEATS",
    "LOG_REPEAT_WINDOW",
    "DaemonAlreadyRunning",
    "DaemonError",
    "JsonFormatter",
    "KeyValueFormatter",
    "NodeFactory",
    "RepeatFilter",
    "load_node_factory",
    "open_pid_lock",
    "run_daemon",
    "serve",
    "setup_logging",
    "write_token",
]


log = logging.getLogger("datanet.daemon")


class NodeFactory(Protocol):
    """Opens the node for the daemon: ``async with factory(data_dir, config, key) as node``."""

    def __call__(
        self, data_dir: Path, config: Config, node_key: KeyPair
    ) -> AbstractAsyncContextManager[NodeAPI]:
        """An async context manager that runs the node while it is entered."""


# --- logging ------------------------------------------------------------------------


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    kv = getattr(record, "kv", None)
    return dict(kv) if isinstance(kv, dict) else {}


def _quote(value: object) -> str:
    text = str(value)
    if text and all(c.isalnum() or c in "-_./:@+," for c in text):
        return text
    return json.dumps(text, ensure_ascii=False)


class KeyValueFormatter(logging.Formatter):
    """``ts=… level=info logger=datanet.api msg="…" key=value …`` (logfmt), one line each."""

    def format(self, record: logging.LogRecord) -> str:
        """Render one record; fields come from ``extra={"kv": {...}}``."""
        parts = [
            f"ts={_timestamp(record)}",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"msg={_quote(record.getMessage())}",
        ]
        parts += [f"{k}={_quote(v)}" for k, v in _fields(record).items()]
        if record.exc_info:
            parts.append(f"exc={_quote(self.formatException(record.exc_info))}")
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``msg``, fields, ``exc``."""

    def format(self, record: logging.LogRecord) -> str:
        """Render one record; fields come from ``extra={"kv": {...}}``."""
        doc: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _fields(record).items():
            doc.setdefault(key, value if isinstance(value, int | float | bool) else str(value))
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


LOG_MAX_REPEATS = 10
"""Lines of one logger and message template written per :data:`LOG_REPEAT_WINDOW`."""
LOG_REPEAT_WINDOW = 60.0
"""Seconds; see :class:`RepeatFilter`."""


class RepeatFilter(logging.Filter):
    """Drops a line repeated too often and summarises the drops once.

    A record whose logger and message template (``record.msg``, before its
    arguments) were already let through ``max_repeats`` times in the current
    ``window`` is dropped. When the window of a template with drops is over,
    one line ``<template> … repeated K times`` at the level of the last dropped
    record is written, so an attacker cannot grow the log by repeating an event,
    and the operator still learns that it happened and how often.

    Args:
        handler: the handler the summaries are written to (install the filter on it).
        max_repeats: lines of one template let through per window.
        window: seconds.
        max_templates: templates tracked at once (the oldest are forgotten).
        clock: monotonic seconds (injected for tests).
    """

    def __init__(
        self,
        handler: logging.Handler,
        *,
        max_repeats: int = LOG_MAX_REPEATS,
        window: float = LOG_REPEAT_WINDOW,
        max_templates: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._handler = handler
        self._max = max_repeats
        self._window = window
        self._max_templates = max_templates
        self._clock = clock
        # template -> [window start, lines let through, lines dropped, last dropped record]
        self._seen: OrderedDict[tuple[str, str], list[Any]] = OrderedDict()
        self._swept = clock()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "datanet_summary", False):
            return True
        now = self._clock()
        if now - self._swept >= self._window:
            self._sweep(now)
        key = (record.name, str(record.msg)[:200])
        entry = self._seen.get(key)
        if entry is None or now - entry[0] >= self._window:
            if entry is not None:
                self._summarise(key, entry)
            entry = [now, 0, 0, None]
            self._seen[key] = entry
            self._seen.move_to_end(key)
            while len(self._seen) > self._max_templates:
                old_key, old = self._seen.popitem(last=False)
                self._summarise(old_key, old)
        if entry[1] < self._max:
            entry[1] += 1
            return True
        entry[2] += 1
        entry[3] = record
        return False

    def flush(self) -> None:
        """Write the summaries of every template with drops now (at shutdown)."""
        for key, entry in list(self._seen.items()):
            self._summarise(key, entry)
        self._seen.clear()

    def _sweep(self, now: float) -> None:
        self._swept = now
        for key, entry in list(self._seen.items()):
            if now - entry[0] >= self._window:
                del self._seen[key]
                self._summarise(key, entry)

    def _summarise(self, key: tuple[str, str], entry: list[Any]) -> None:
        dropped, last = entry[2], entry[3]
        entry[2], entry[3] = 0, None
        if not dropped or last is None:
            return
        summary = logging.LogRecord(
            key[0],
            last.levelno,
            last.pathname,
            last.lineno,
            "%s … repeated %d times",
            (key[1], dropped),
            None,
        )
        summary.datanet_summary = True
        self._handler.handle(summary)


def setup_logging(
    level: str, fmt: str, stream: IO[str] | None = None, *, libp2p_level: str = "warning"
) -> logging.Handler:
    """Send every log record at ``level`` or above to ``stream`` (stderr) in ``fmt``.

    Installed on the root logger, replacing its handlers, so library loggers
    (hypercorn, py-libp2p through the adapter's filters) come out in the same format.
    py-libp2p's internals (``libp2p.*``, and its ``multiaddr.*``) are written at ``libp2p_level`` or
    above instead, whatever ``level`` is. Lines repeated more than
    :data:`LOG_MAX_REPEATS` times per :data:`LOG_REPEAT_WINDOW` are summarised
    (:class:`RepeatFilter`).
    """
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    handler.addFilter(RepeatFilter(handler))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    libp2p = logging.getLogger("libp2p")
    libp2p.setLevel(libp2p_level.upper())
    # py-multiaddr, py-libp2p's address library, logs several lines per address
    # parsed at debug: with log.level = "debug" it drowned everything else.
    logging.getLogger("multiaddr").setLevel(libp2p_level.upper())
    # py-libp2p's package __init__ (skipped by the adapter, but run if anything
    # imports ``libp2p`` itself) cuts its loggers off from the root logger.
    libp2p.propagate = True
    return handler


# --- files --------------------------------------------------------------------------


def write_token(data_dir: Path) -> str:
    """Create a fresh random API token in ``<data_dir>/api.token`` (mode 0600).

    Raises:
        DaemonError: the file cannot be written.
    """
    token = secrets.token_urlsafe(32)
    path = HomeLayout(data_dir).api_token
    try:
        # Created 0600 from its first byte: no window in which others could read it.
        atomic_write(path, token.encode("ascii") + b"\n", mode=0o600)
    except OSError as exc:
        raise DaemonError(f"cannot write {path}: {exc.strerror}") from None
    return token


@contextlib.contextmanager
def open_pid_lock(data_dir: Path) -> Iterator[Path]:
    """Hold ``<data_dir>/datanet.pid`` locked and holding our pid while inside.

    Raises:
        DaemonAlreadyRunning: another live process holds the lock.
        DaemonError: the file cannot be created.
    """
    path = HomeLayout(data_dir).pid_file
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise DaemonError(f"cannot open {path}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            raise DaemonAlreadyRunning(
                f"a datanet daemon (pid {other or '?'}) is already running on {data_dir}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        os.fsync(fd)
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)
    finally:
        os.close(fd)


# --- serving ------------------------------------------------------------------------


def _bound_socket(host: str, port: int, address: str) -> int:
    """A TCP socket bound to ``host:port``; returns its file descriptor (caller owns it).

    Raises:
        DaemonError: the address cannot be bound (in use, not local, no permission).
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise DaemonError(f"cannot listen on api.address {address}: {exc.strerror}") from None
    return sock.detach()


async def serve(
    node: NodeAPI,
    *,
    data_dir: Path,
    config: Config,
    config_file: ConfigFile,
    token: str,
    stop: trio.Event,
    task_status: TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the control API for ``node`` until ``stop`` is set.

    Reports the URL it listens on through ``task_status.started(url)`` after
    writing it to ``<data_dir>/api.url``; removes that file when it returns.

    Raises:
        DaemonError: the API address cannot be bound.
    """
    from hypercorn.config import Config as HypercornConfig  # noqa: PLC0415
    from hypercorn.trio import serve as hypercorn_serve  # noqa: PLC0415

    from datanet.api.app import create_app  # noqa: PLC0415
    from datanet.api.routes import ApiContext  # noqa: PLC0415

    host, port = config.api.host_port
    ctx = ApiContext(
        node=node,
        config_file=config_file,
        running_config=config,
        request_stop=stop.set,
        token=token,
    )
    app: Any = create_app(ctx)  # starlette's ASGI types vs hypercorn's: same protocol
    hc = HypercornConfig()
    # Bind here rather than in hypercorn: a bind failure becomes a clear DaemonError
    # (hypercorn would raise it inside exception groups and leak the socket).
    hc.bind = [f"fd://{_bound_socket(host, port, config.api.address)}"]
    hc.accesslog = None
    hc.errorlog = logging.getLogger("datanet.api.server")
    hc.include_server_header = False
    hc.graceful_timeout = 5.0
    hc.keep_alive_timeout = 30.0
    url_path = HomeLayout(data_dir).api_url
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(
            functools.partial(hypercorn_serve, app, hc, shutdown_trigger=stop.wait)
        )
        url = binds[0]
        ctx.api_url = url
        try:
            atomic_write(url_path, url.encode("ascii") + b"\n", mode=0o644)
            log.info("api_listening", extra={"kv": {"url": url}})
            task_status.started(url)
            await stop.wait()
            log.info("api_stopping")
            node.feed.close()  # ends catalog/watch streams now, not after graceful_timeout
        finally:
            url_path.unlink(missing_ok=True)


@contextlib.asynccontextmanager
async def _signals_set(stop: trio.Event, ready: trio.Event) -> AsyncIterator[None]:
    """SIGINT/SIGTERM set ``stop``: a clean shutdown.

    A signal cancels everything at once instead when the daemon is not ready yet
    (still joining the network: nothing to shut down cleanly) or is the second one.
    """
    async with trio.open_nursery() as nursery:

        async def watch(task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                task_status.started()
                async for signum in signals:
                    if stop.is_set() or not ready.is_set():
                        log.warning("signal_forcing_exit", extra={"kv": {"signal": signum}})
                        nursery.cancel_scope.cancel()
                        return
                    log.info("signal_received", extra={"kv": {"signal": signum}})
                    stop.set()

        await nursery.start(watch)
        yield
        nursery.cancel_scope.cancel()


async def _run(
    *,
    data_dir: Path,
    config: Config,
    config_file: ConfigFile,
    node_key: KeyPair,
    node_factory: NodeFactory,
    on_ready: Callable[[str], None] | None,
) -> None:
    stop, ready = trio.Event(), trio.Event()
    async with _signals_set(stop, ready):
        token = write_token(data_dir)
        started = time.monotonic()
        try:
            async with node_factory(data_dir, config, node_key) as node:
                settle_heap()  # what starting built lives as long as the daemon
                log.info(
                    "node_started",
                    extra={
                        "kv": {
                            "peer_id": str(node.peer_id),
                            "ms": round((time.monotonic() - started) * 1000, 1),
                        }
                    },
                )
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(trim_until, stop)  # freed heap pages back to the OS
                    url = await nursery.start(
                        functools.partial(
                            serve,
                            node,
                            data_dir=data_dir,
                            config=config,
                            config_file=config_file,
                            token=token,
                            stop=stop,
                        )
                    )
                    log.info("daemon_ready", extra={"kv": {"api": url, "pid": os.getpid()}})
                    ready.set()
                    if on_ready is not None:
                        on_ready(url)
                log.info("node_stopping")
        finally:
            HomeLayout(data_dir).api_token.unlink(missing_ok=True)


def run_daemon(
    data_dir: Path,
    node_key: KeyPair,
    node_factory: NodeFactory,
    *,
    config_path: Path | None = None,
    log_stream: IO[str] | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Run the daemon in the foreground until SIGINT, SIGTERM or ``node/stop``.

    Args:
        data_dir: the node's data directory (initialised, holding ``node.key``).
        node_key: the unlocked node key.
        node_factory: opens the node (``datanet.node.driver`` in production).
        config_path: the config file; ``<data_dir>/config.toml`` by default.
        log_stream: where log lines go (stderr by default).
        on_ready: called with the API URL once the API accepts requests.

    Raises:
        DaemonAlreadyRunning: another daemon runs on ``data_dir``.
        ConfigError: the config file is invalid.
        DaemonError: files cannot be written or the API address cannot be bound.
    """
    config_file = ConfigFile(config_path or HomeLayout(data_dir).config)
    with open_pid_lock(data_dir):
        config = config_file.read()
        handler = setup_logging(
            config.log.level, config.log.format, log_stream, libp2p_level=config.log.libp2p_level
        )
        log.info(
            "daemon_starting",
            extra={"kv": {"data_dir": str(data_dir), "config": str(config_file.path)}},
        )
        try:
            with collector_tuned():
                trio.run(
                    functools.partial(
                        _run,
                        data_dir=data_dir,
                        config=config,
                        config_file=config_file,
                        node_key=node_key,
                        node_factory=node_factory,
                        on_ready=on_ready,
                    )
                )
        except Exception as exc:
            err = _single_datanet_error(exc)
            if err is None:
                log.exception("daemon_crashed")
                raise
            log.error("daemon_failed", extra={"kv": {"code": err.code, "error": str(err)}})  # noqa: TRY400 - an expected failure: no traceback
            raise err from None
        finally:
            for f in handler.filters:
                if isinstance(f, RepeatFilter):
                    f.flush()  # the last summaries, before daemon_stopped
        log.info("daemon_stopped")


def _single_datanet_error(exc: BaseException) -> DatanetError | None:
    """The one DatanetError inside (nested) single-leaf exception groups, if that is all."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc if isinstance(exc, DatanetError) else None


def load_node_factory() -> NodeFactory:
    """The production node factory, ``datanet.node.startup.open_node``, imported only now.

    Importing the node loads py-libp2p (tens of MB), so nothing imports it before
    the daemon actually starts. Assigning it to :class:`NodeFactory` also makes
    mypy check that the real ``Node`` satisfies the API's ``NodeAPI`` protocol.
    """
    from datanet.node.startup import open_node  # noqa: PLC0415 - heavy: only when starting

    factory: NodeFactory = open_node
    return factory
