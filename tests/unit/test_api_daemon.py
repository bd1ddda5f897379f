"""datanet.daemon: real hypercorn on 127.0.0.1, token and pid files, signals, logs.

The node is the in-memory double; everything else is real: sockets, HTTP, files,
processes and signals.
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio

from datanet.api.errors import DaemonUnreachable, Unauthorized
from datanet.client import AsyncClient, Client
from datanet.daemon import (
    DaemonAlreadyRunning,
    DaemonError,
    JsonFormatter,
    KeyValueFormatter,
    open_pid_lock,
    serve,
    setup_logging,
    write_token,
)
from datanet.errors import NotFound
from datanet.node.config import Config, ConfigFile, save_config
from datanet.node.paths import API_URL_FILE, PID_FILE, TOKEN_FILE
from datanet.testing.doubles import MemoryNode

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _config(**values: object) -> Config:
    c = Config.defaults().with_value("api.address", "127.0.0.1:0")
    for key, value in values.items():
        c = c.with_value(key.replace("__", "."), value)
    return c


# --- in-process: serve() ----------------------------------------------------------------


async def test_serve_listens_on_loopback_and_stops(tmp_path: Path) -> None:
    node = MemoryNode()
    stop = trio.Event()
    token = write_token(tmp_path)
    config = _config()
    async with trio.open_nursery() as nursery:
        url = await nursery.start(
            lambda task_status: serve(
                node,
                data_dir=tmp_path,
                config=config,
                config_file=ConfigFile(tmp_path / "config.toml"),
                token=token,
                stop=stop,
                task_status=task_status,
            )
        )
        assert url.startswith("http://127.0.0.1:")
        assert (tmp_path / API_URL_FILE).read_text().strip() == url
        async with AsyncClient(tmp_path) as client:  # reads api.url and api.token
            info = await client.id()
            assert info.peer_id == str(node.peer_id)
            status = await client.status()
            assert status.api_url == url
            with pytest.raises(NotFound):
                await client.resolve(f"dn://{node.org}/missing")
            async with httpx.AsyncClient() as raw:
                r = await raw.post(f"{url}/api/v0/id", headers={"authorization": "Bearer nope"})
                assert r.status_code == 401
            assert await client.stop() is True  # sets the stop event
    assert stop.is_set()
    assert not (tmp_path / API_URL_FILE).exists()


async def test_serve_reports_a_busy_port(tmp_path: Path) -> None:
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        config = _config(api__address=f"127.0.0.1:{port}")
        with pytest.raises(DaemonError, match=r"cannot listen on api\.address"):
            await serve(
                MemoryNode(),
                data_dir=tmp_path,
                config=config,
                config_file=ConfigFile(tmp_path / "c.toml"),
                token="x" * 32,
                stop=trio.Event(),
            )


def test_token_file_is_private_and_fresh(tmp_path: Path) -> None:
    first = write_token(tmp_path)
    path = tmp_path / TOKEN_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text().strip() == first
    assert len(first) >= 40
    second = write_token(tmp_path)
    assert second != first
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [TOKEN_FILE]


def test_pid_lock_admits_one_daemon_per_directory(tmp_path: Path) -> None:
    with open_pid_lock(tmp_path) as path:
        assert path.read_text().strip() == str(os.getpid())
        with pytest.raises(DaemonAlreadyRunning, match=str(os.getpid())), open_pid_lock(tmp_path):
            pass
    assert not (tmp_path / PID_FILE).exists()
    # A stale pid file (no lock held) is taken over.
    (tmp_path / PID_FILE).write_text("999999\n")
    with open_pid_lock(tmp_path) as path:
        assert path.read_text().strip() == str(os.getpid())


# --- logs ----------------------------------------------------------------------------------


def _record(msg: str, **kv: object) -> logging.LogRecord:
    record = logging.LogRecord("datanet.test", logging.WARNING, __file__, 1, msg, (), None)
    record.kv = kv
    return record


def test_key_value_log_lines() -> None:
    line = KeyValueFormatter().format(_record("hello world", peer="12D3KooWx", n=3, s="a b"))
    assert " level=warning logger=datanet.test " in line
    assert 'msg="hello world" peer=12D3KooWx n=3 s="a b"' in line
    assert line.startswith("ts=")
    assert "\n" not in line


def test_json_log_lines() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        record = _record("failed", code="x")
        record.exc_info = sys.exc_info()
    doc = json.loads(JsonFormatter().format(record))
    assert doc["level"] == "warning"
    assert doc["msg"] == "failed"
    assert doc["code"] == "x"
    assert "ValueError: bad" in doc["exc"]


def test_setup_logging_filters_by_level() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        setup_logging("warning", "json", stream)
        logging.getLogger("datanet.x").info("hidden")
        logging.getLogger("datanet.x").error("shown", extra={"kv": {"k": 1}})
    finally:
        root.handlers, root.level = saved[0], saved[1]
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(d["msg"], d["k"]) for d in lines] == [("shown", 1)]


# --- the daemon as its own process ---------------------------------------------------------


class Daemon:
    def __init__(self, data_dir: Path, **env_extra: str) -> None:
        self.data_dir = data_dir
        env = {**os.environ, "PYTHONPATH": str(ROOT), **env_extra}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "datanet.testing.memory_daemon", str(data_dir)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.url = ""

    def wait_ready(self, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while not (self.data_dir / API_URL_FILE).exists():
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited: {self.proc.communicate()}")
            if time.monotonic() > deadline:
                raise AssertionError("daemon did not become ready")
            time.sleep(0.02)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        return self.url

    def wait_exit(self, timeout: float = 15.0) -> tuple[int, str]:
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path)
    try:
        yield d
    finally:
        d.kill()


def _config_file(data_dir: Path, config: Config) -> None:
    save_config(data_dir / "config.toml", config)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_daemon_cleanly(tmp_path: Path, daemon: Daemon, signum: int) -> None:
    _config_file(tmp_path, _config(log__format="json"))
    url = daemon.wait_ready()
    assert url.startswith("http://127.0.0.1:")
    assert (tmp_path / PID_FILE).read_text().strip() == str(daemon.proc.pid)
    assert (tmp_path / TOKEN_FILE).stat().st_mode & 0o777 == 0o600
    with Client(tmp_path) as client:
        assert client.status().pid == daemon.proc.pid
    daemon.proc.send_signal(signum)
    code, err = daemon.wait_exit()
    assert code == 0, err
    events = [json.loads(line)["msg"] for line in err.splitlines()]
    for event in ("daemon_starting", "daemon_ready", "signal_received", "daemon_stopped"):
        assert event in events, (event, err)
    for name in (PID_FILE, TOKEN_FILE, API_URL_FILE):
        assert not (tmp_path / name).exists(), name
    with pytest.raises(DaemonUnreachable):
        Client(tmp_path)


def test_a_signal_while_the_node_starts_exits_at_once(tmp_path: Path) -> None:
    _config_file(tmp_path, _config())
    d = Daemon(tmp_path, APINODE_SLOW_START="60")
    try:
        assert d.proc.stdout is not None
        assert d.proc.stdout.readline().strip() == "opening"
        started = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        code, err = d.wait_exit(timeout=15)
    finally:
        d.kill()
    assert code == 0, err
    assert time.monotonic() - started < 10
    assert "signal_forcing_exit" in err
    assert "daemon_ready" not in err
    for name in (PID_FILE, TOKEN_FILE, API_URL_FILE):
        assert not (tmp_path / name).exists(), name


def test_api_stop_and_second_daemon_refused(tmp_path: Path, daemon: Daemon) -> None:
    _config_file(tmp_path, _config())
    url = daemon.wait_ready()
    second = Daemon(tmp_path)
    try:
        code, err = second.wait_exit()
    finally:
        second.kill()
    assert code == 1
    assert "daemon_already_running" in err
    # The token of the running daemon was not replaced by the refused one.
    with Client(tmp_path) as client:
        assert client.id().peer_id
        with pytest.raises(Unauthorized), Client(base_url=url, token="wrong-token-01234") as bad:
            bad.status()
        assert client.stop() is True
    code, err = daemon.wait_exit()
    assert code == 0, err
    with (
        pytest.raises(DaemonUnreachable, match="no datanet daemon answers"),
        Client(base_url=url, token="t" * 20) as gone,
    ):
        gone.status()


def test_non_loopback_api_address_is_refused_at_start(tmp_path: Path, daemon: Daemon) -> None:
    (tmp_path / "config.toml").write_text('[api]\naddress = "0.0.0.0:0"\n')
    code, err = daemon.wait_exit()
    assert code == 1
    assert "invalid_config" in err
    assert "allow_remote" in err
    assert not (tmp_path / TOKEN_FILE).exists()
    assert not (tmp_path / PID_FILE).exists()
