"""``datanet node start|stop|status``: run the daemon in the foreground and control it.

``start`` is the only command here that loads the node (py-libp2p, trio,
hypercorn), and only once it runs; ``stop`` and ``status`` talk to the daemon's
HTTP API through :mod:`datanet.client` (httpx), imported inside the commands.

Invariant: at import time this module imports click and :mod:`cli.app` only.
"""

# Imports of datanet inside commands are deliberate (fast start-up).

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli.app import CliContext, cli, emit, json_option, pass_app, passphrase_file_option, unlock

if TYPE_CHECKING:
    from datanet.client import Client

__all__ = ["API_TOKEN_ENV", "API_URL_ENV", "client_for", "node", "progress"]

API_URL_ENV = "DATANET_API_URL"
API_TOKEN_ENV = "DATANET_API_TOKEN"  # noqa: S105 - a variable name


def client_for(app: CliContext) -> Client:
    """A client of the daemon: ``$DATANET_API_URL``/``$DATANET_API_TOKEN`` or the data dir.

    Raises:
        DaemonUnreachable: no token given and none in the data directory.
    """
    from datanet.client import Client

    return Client(
        app.data_dir,
        base_url=os.environ.get(API_URL_ENV) or None,
        token=os.environ.get(API_TOKEN_ENV) or None,
    )


@contextlib.contextmanager
def progress(app: CliContext, text: str) -> Iterator[None]:
    """A spinner on stderr while a long call runs (only on a terminal, never with --json)."""
    if app.json or not sys.stderr.isatty():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(text):
        yield


def _human_duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    return f"{minutes}m {secs}s"


@cli.group()
def node() -> None:
    """Run the node daemon and control it."""


@node.command("start")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Config file [default: DATA_DIR/config.toml].",
)
@passphrase_file_option
@json_option
@pass_app
def node_start(app: CliContext, config_path: Path | None, passphrase_file: Path | None) -> None:
    """Run the node and its HTTP API in the foreground until Ctrl-C or SIGTERM.

    Logs go to stderr (format and level from the config: log.format, log.level).
    When the API accepts requests, one line (one JSON document with --json) is
    printed on stdout with its URL.
    """
    from datanet.daemon import load_node_factory, run_daemon

    home = app.home()
    key = unlock(home.load_node_key, passphrase_file, what="node key")
    factory = load_node_factory()

    def ready(url: str) -> None:
        # One line either way, so a supervisor or a script can wait for it.
        doc = {"api_url": url, "pid": os.getpid(), "peer_id": str(key.peer_id)}
        if app.json:
            click.echo(json.dumps(doc))
        else:
            click.echo(f"datanet node {key.peer_id} ready; API at {url}")
        sys.stdout.flush()

    run_daemon(home.path, key, factory, config_path=config_path, on_ready=ready)


@node.command("stop")
@click.option(
    "--timeout",
    type=click.FloatRange(0, 3600),
    default=30.0,
    show_default=True,
    help="Seconds to wait for the daemon to finish stopping.",
)
@json_option
@pass_app
def node_stop(app: CliContext, timeout: float) -> None:
    """Stop the running daemon cleanly (as SIGTERM would) and wait until it is gone."""
    from datanet.errors import Timeout
    from datanet.node.home import resolve_data_dir
    from datanet.node.paths import HomeLayout

    with client_for(app) as client:
        pid = client.status().pid
        client.stop()
    # The daemon removes api.url when the API stops and the pid file as its very last
    # step; a remote daemon (DATANET_API_URL) is only waited for until it stops answering.
    layout = HomeLayout(resolve_data_dir(app.data_dir))
    local = not os.environ.get(API_URL_ENV)
    deadline = time.monotonic() + timeout
    with progress(app, "waiting for the daemon to stop…"):
        while _still_running(layout.api_url, layout.pid_file, local=local, app=app):
            if time.monotonic() > deadline:
                raise Timeout(f"the daemon (pid {pid}) is still stopping after {timeout:g} s")
            time.sleep(0.05)
    emit(app, {"stopped": True, "pid": pid}, lambda: click.echo(f"stopped (pid {pid})"))


def _still_running(url_file: Path, pid_file: Path, *, local: bool, app: CliContext) -> bool:
    if local:
        return url_file.exists() or pid_file.exists()
    from datanet.errors import NetworkError

    try:
        with client_for(app) as client:
            client.status()
    except NetworkError:
        return False
    return True


_SHOWN = frozenset({"peer_id", "org", "peers", "pid", "version", "api_url"})
"""What ``status`` prints on its own lines, so never again from the node's report."""


@node.command("status")
@json_option
@pass_app
def node_status(app: CliContext) -> None:
    """Show the running daemon's status."""
    with client_for(app) as client:
        status = client.status()
    doc: dict[str, Any] = {
        "peer_id": status.peer_id,
        "org": status.org,
        "version": status.version,
        "pid": status.pid,
        "uptime_s": status.uptime_s,
        "api_url": status.api_url,
        "peers": status.peers,
        "node": dict(status.node),
    }

    def human() -> None:
        click.echo(f"running:   yes (pid {status.pid}, up {_human_duration(status.uptime_s)})")
        click.echo(f"peer id:   {status.peer_id}")
        click.echo(f"org:       {status.org or '(no certificate)'}")
        click.echo(f"api:       {status.api_url}")
        click.echo(f"peers:     {status.peers}")
        click.echo(f"version:   {status.version}")
        for key, value in sorted(status.node.items()):
            if key not in _SHOWN and not isinstance(value, dict | list):
                click.echo(f"{key + ':':<10} {value}")

    emit(app, doc, human)
