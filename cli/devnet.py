"""``datanet devnet``: run a local network of several organizations, or take the tour.

The work is done by :mod:`datanet.devnet` (layout, daemon processes, samples,
tour); this module parses the options, shows progress (rich, on stderr, only on
a terminal) and prints the result: a table of the nodes and commands to query
them, or the narrated tour.

Invariants:
* At import time this module imports click and :mod:`cli.app` only.
* Every daemon started here is stopped before the command returns, whatever
  happens (startup failure, tour failure, Ctrl-C, SIGTERM): the
  :class:`~datanet.devnet.DaemonSet` context owns them.
* SIGINT/SIGTERM only interrupt waits, never the spawning of a daemon; a second
  one during shutdown kills the remaining daemons at once.
* With ``--json`` stdout carries exactly one JSON document (on one line for a
  running devnet, printed once it is ready).
"""

# Imports of datanet inside the command are deliberate (fast start-up).

from __future__ import annotations

import json
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli.app import CliContext, cli, json_option, pass_app, print_table

if TYPE_CHECKING:
    from datanet.devnet import DaemonProcess, Devnet, PublishedSample, TourStep

__all__ = ["daemon_command", "devnet"]

EXIT_INTERRUPTED = 130


def daemon_command(home: Path) -> list[str]:
    """The command that runs one devnet node's daemon: ``datanet node start``, by this Python.

    The devnet (:mod:`datanet.devnet`) sits below the command line and takes this
    from its caller, so a devnet node runs exactly what an operator runs.
    """
    return [sys.executable, "-m", "cli.main", "--data-dir", str(home), "node", "start"]


class _Display:
    """Progress on stderr: a rich progress bar on a terminal, plain lines otherwise."""

    def __init__(self, *, quiet: bool) -> None:
        self.quiet = quiet
        self._progress: Any = None
        self._task: Any = None

    def note(self, text: str) -> None:
        if not self.quiet:
            if self._progress is not None:
                self._progress.console.print(text, markup=False, highlight=False)
            else:
                click.echo(text, err=True)

    def begin(self, total: int, text: str) -> None:
        if self.quiet:
            return
        if not sys.stderr.isatty():
            click.echo(text, err=True)
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        # No refresh thread (auto_refresh=False): daemons are forked while it shows.
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            auto_refresh=False,
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task(text, total=total)
        self._progress.refresh()

    def advance(self, text: str) -> None:
        self.note(text)
        if self._progress is not None:
            self._progress.advance(self._task)
            self._progress.refresh()

    def tick(self) -> None:
        if self._progress is not None:
            self._progress.refresh()

    def end(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


@cli.command("devnet")
@click.option(
    "--orgs",
    type=click.IntRange(1, 8),
    default=3,
    show_default=True,
    help="Organizations in a new devnet.",
)
@click.option(
    "--nodes",
    type=click.IntRange(1, 32),
    default=6,
    show_default=True,
    help="Nodes in a new devnet (spread round-robin over the organizations).",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Keep the devnet in DIR; if DIR holds one already, restart it [default: a new "
    "temporary directory, removed at the end].",
)
@click.option("--tour", is_flag=True, help="Run the scripted tour, then stop and exit.")
@click.option(
    "--timeout",
    type=click.FloatRange(1, 600),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="How long the nodes may take to answer on their API.",
)
@json_option
@pass_app
@click.pass_context
def devnet(
    ctx: click.Context,
    app: CliContext,
    *,
    orgs: int,
    nodes: int,
    directory: Path | None,
    tour: bool,
    timeout: float,
) -> None:
    """Start a local network of several organizations, one daemon process per node.

    Lays out the organizations, their certificates and the nodes' data
    directories, starts every node, publishes sample datasets, prints how to
    query them, and runs until Ctrl-C or SIGTERM, then stops every node.
    With --tour it walks through publish → resolve → update → resolve → search
    instead, and exits 0 when every step worked.
    """
    from datanet.devnet import DaemonSet, StopSignals, is_devnet
    from datanet.errors import DatanetError

    if tour and orgs < 2:
        raise click.UsageError("the tour needs at least 2 organizations (--orgs 2 or more)")
    if nodes < orgs and (directory is None or not is_devnet(directory)):
        raise click.UsageError(f"--nodes {nodes} is fewer than --orgs {orgs}")
    display = _Display(quiet=app.json)
    temporary = directory is None
    base = Path(tempfile.mkdtemp(prefix="datanet-devnet-")) if directory is None else directory
    ready = False
    with StopSignals() as signals:
        daemons = DaemonSet(daemon_command, force=lambda: signals.forced)
        try:
            net = _layout(ctx, app, display, base, orgs=orgs, nodes=nodes, temporary=temporary)
            if tour and len(net.orgs) < 2:
                raise click.UsageError(
                    f"{base} holds a devnet of one organization; the tour needs 2"
                )
            with daemons:
                try:
                    started = _start(net, daemons, display, signals, timeout)
                    with signals.interruptible():
                        samples = _publish(net, app, display)
                        if tour:
                            _tour(net, app, started, samples)
                        else:
                            _announce(net, app, started, samples)
                            ready = True
                            signals.wait(tick=lambda: _report_dead(daemons, display))
                finally:
                    display.end()
                    if daemons.daemons:
                        display.note(f"stopping {len(daemons.daemons)} node(s)…")
        except KeyboardInterrupt:
            display.note(_stopped_text(daemons))
            if not ready:
                display.note("interrupted; every node was stopped")
                _cleanup(base, temporary, display, keep=True)
                raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        except (DatanetError, click.ClickException):
            if daemons.daemons:
                display.note(_stopped_text(daemons))
            _cleanup(base, temporary, display, keep=True)
            raise
        else:
            display.note(_stopped_text(daemons))
    _cleanup(base, temporary, display, keep=False)


def _layout(
    ctx: click.Context,
    app: CliContext,
    display: _Display,
    base: Path,
    *,
    orgs: int,
    nodes: int,
    temporary: bool,
) -> Devnet:
    """Load the devnet in ``base``, or provision a new one there."""
    from datanet.devnet import is_devnet, load_devnet, provision, renew_certificates
    from datanet.errors import InvalidInput

    if is_devnet(base):
        net = load_devnet(base)
        explicit = any(
            ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
            for name in ("orgs", "nodes")
        )
        if explicit and (len(net.orgs), len(net.nodes)) != (orgs, nodes):
            display.note(
                f"note: {base} already holds a devnet of {len(net.orgs)} organizations and "
                f"{len(net.nodes)} nodes; restarting it as it is (--orgs/--nodes ignored)"
            )
        display.note(
            f"restarting the devnet in {base}: {len(net.orgs)} organizations, "
            f"{len(net.nodes)} nodes"
        )
        for node in renew_certificates(net, app.now()):
            display.note(f"  renewed the certificate of {node.name} ({node.org.name})")
        return net
    if base.exists() and any(base.iterdir()) and not temporary:
        raise InvalidInput(
            f"{base} is not empty and holds no devnet; give a new or empty directory"
        )
    display.note(f"laying out {orgs} organizations and {nodes} nodes in {base}")
    provision(base, orgs=orgs, nodes=nodes, now=app.now())
    return load_devnet(base)


def _start(
    net: Devnet, daemons: Any, display: _Display, signals: Any, timeout: float
) -> list[DaemonProcess]:
    from datanet.devnet import start_network

    display.begin(len(net.nodes), f"starting {len(net.nodes)} nodes")

    def ready(d: DaemonProcess) -> None:
        api = d.status.api_url if d.status is not None else "?"
        display.advance(
            f"  {d.node.name} ({d.node.org.name}) ready in {d.ready_after or 0:.1f} s, "
            f"pid {d.pid}, API {api}"
        )

    started = start_network(
        net,
        daemons,
        timeout=timeout,
        on_ready=ready,
        tick=display.tick,
        waiting=signals.interruptible,
    )
    display.end()
    return started


def _publish(net: Devnet, app: CliContext, display: _Display) -> list[PublishedSample]:
    from datanet.devnet import publish_samples

    display.note("publishing sample datasets")

    def published(p: PublishedSample) -> None:
        how = (
            "kept (already published)"
            if p.replicas is None
            else f"sequence {p.sequence}, {p.replicas} replica(s), {p.ms:.0f} ms"
        )
        display.note(f"  {p.org}: {p.title} — {how}")

    return publish_samples(net, now=app.now(), on_published=published)


def _command(node_home: Path, *args: str) -> str:
    from datanet.devnet import cli_display_command

    return " ".join(
        [cli_display_command(), "--data-dir", shlex.quote(str(node_home)), *map(shlex.quote, args)]
    )


def _commands(net: Devnet, samples: list[PublishedSample]) -> list[str]:
    first_org = net.orgs[0]
    mine = [s for s in samples if s.org == first_org.name]
    others = [n for n in net.nodes if n.org.org_id != first_org.org_id]
    reader = others[0] if others else net.nodes[-1]
    searcher = others[-1] if others else net.nodes[-1]
    out = []
    if mine:
        out.append(_command(reader.home, "resolve", mine[0].dataset_id))
        word = mine[0].dataset_id.rsplit("/", 2)[-2]
        out.append(_command(searcher.home, "search", word.replace("-", " ").split()[0]))
    out.append(_command(searcher.home, "search"))
    out.append(_command(reader.home, "peers"))
    out.append(_command(net.nodes[0].home, "node", "status"))
    out.append(_command(net.nodes[0].home, "routing", "stats"))
    return out


def _node_doc(d: DaemonProcess) -> dict[str, Any]:
    return {
        "index": d.node.index,
        "name": d.node.name,
        "org": d.node.org.name,
        "peer_id": str(d.node.peer_id),
        "pid": d.pid,
        "api_url": d.status.api_url if d.status is not None else None,
        "addr": d.node.addr,
        "data_dir": str(d.node.home),
        "log": str(d.node.log_path),
    }


def _sample_doc(s: PublishedSample) -> dict[str, Any]:
    return {
        "dataset_id": s.dataset_id,
        "title": s.title,
        "org": s.org,
        "node": s.node.name,
        "sequence": s.sequence,
        "replicas": s.replicas,
    }


def _print_network(net: Devnet, started: list[DaemonProcess]) -> None:
    print_table(
        f"{len(net.orgs)} organizations",
        ["org", "org id", "nodes"],
        [(o.name, str(o.org_id), ", ".join(n.name for n in net.nodes_of(o))) for o in net.orgs],
    )
    click.echo()
    print_table(
        f"{len(started)} nodes",
        ["org", "node", "peer id", "API", "data dir"],
        [
            (
                d.node.org.name,
                d.node.name,
                str(d.node.peer_id),
                d.status.api_url if d.status is not None else "?",
                str(d.node.home),
            )
            for d in started
        ],
    )


def _announce(
    net: Devnet, app: CliContext, started: list[DaemonProcess], samples: list[PublishedSample]
) -> None:
    commands = _commands(net, samples)
    if app.json:
        doc = {
            "event": "ready",
            "dir": str(net.base),
            "orgs": [{"name": o.name, "org_id": str(o.org_id)} for o in net.orgs],
            "nodes": [_node_doc(d) for d in started],
            "datasets": [_sample_doc(s) for s in samples],
            "commands": commands,
        }
        click.echo(json.dumps(doc))
    else:
        _print_network(net, started)
        click.echo()
        click.echo(f"{len(samples)} datasets:")
        for s in samples:
            click.echo(f"  {s.dataset_id}  {s.title}")
        click.echo()
        click.echo("Query it from another terminal:")
        for line in commands:
            click.echo(f"  {line}")
        click.echo(f"Daemon logs: {net.base}/node*/daemon.log")
        click.echo()
        click.echo(
            f"devnet ready: {len(started)} nodes of {len(net.orgs)} organizations, "
            f"{len(samples)} datasets. Press Ctrl-C to stop."
        )
    sys.stdout.flush()


def _tour(
    net: Devnet, app: CliContext, started: list[DaemonProcess], samples: list[PublishedSample]
) -> None:
    from datanet.devnet import run_tour

    if not app.json:
        _print_network(net, started)
        click.echo()
        click.echo(
            f"Tour: {net.orgs[0].name} publishes a dataset, a node of another organization "
            "finds it, sees its update, and searches for it."
        )
        sys.stdout.flush()

    def narrate(step: TourStep) -> None:
        if app.json:
            return
        click.echo(f"  {step.number}. {step.action:<8} {step.text}  [{step.ms:.0f} ms]")
        sys.stdout.flush()

    began = time.perf_counter()
    steps = run_tour(net, now=app.now(), on_step=narrate)
    total = (time.perf_counter() - began) * 1000
    if app.json:
        doc = {
            "dir": str(net.base),
            "nodes": [_node_doc(d) for d in started],
            "datasets": [_sample_doc(s) for s in samples],
            "steps": [
                {
                    "number": s.number,
                    "action": s.action,
                    "node": s.node.name,
                    "text": s.text,
                    "ms": s.ms,
                    **s.detail,
                }
                for s in steps
            ],
            "ms": round(total, 1),
        }
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo(f"Tour complete: {len(steps)} steps in {total:.0f} ms. Stopping the devnet.")
    sys.stdout.flush()


def _report_dead(daemons: Any, display: _Display) -> None:
    for d in daemons.check_alive():
        display.note(
            f"warning: {d.node.name} ({d.node.org.name}) exited with status {d.returncode}; "
            f"see {d.node.log_path}"
        )


def _stopped_text(daemons: Any) -> str:
    stopped = [d for d in daemons.daemons if d.stopped]
    text = f"stopped {len(stopped)} node(s)"
    unclean = [f"{d.node.name}: {d.returncode}" for d in stopped if d.returncode != 0]
    if unclean:
        text += f"; not cleanly: {', '.join(unclean)}"
    gone = [f"{d.node.name}: {d.returncode}" for d in daemons.daemons if not d.stopped]
    if gone:
        text += f"; had exited before: {', '.join(gone)}"
    return text


def _cleanup(base: Path, temporary: bool, display: _Display, *, keep: bool) -> None:
    """Remove the temporary directory, unless it holds logs worth reading (``keep``)."""
    if not temporary:
        return
    if keep and base.is_dir() and any(base.iterdir()):
        display.note(f"the devnet's files and logs are kept in {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)
