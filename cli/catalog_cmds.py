"""Commands of the complete catalog: ``datanet watch``, ``deprecate``, ``catalog stats|sync``.

They talk to the running daemon through :mod:`datanet.client` like the other API
commands (``cli/api_cmds.py``): ``watch`` streams ``catalog/watch`` (server-sent
events), the others are single calls.

Invariants:
* At import time this module imports click and :mod:`cli` only; the client is
  imported inside the commands (fast ``datanet --help``).
* ``datanet watch`` runs until Ctrl-C, which ends it with exit code 0 and no
  traceback. With ``--json`` it prints one JSON object per line (JSON Lines, one
  per event, flushed at once) instead of the one document other commands print.
* Errors go through the root group's mapping (``cli/app.py``): a refused watch
  (too many watchers) exits 3, no daemon 7, the daemon ending the stream 7.
"""

# Imports of datanet inside commands are deliberate (fast start-up).

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from cli.app import (
    CliContext,
    cli,
    emit,
    format_time,
    json_option,
    pass_app,
    print_table,
    stored_on,
)
from cli.node import client_for, progress

if TYPE_CHECKING:
    from datanet.client import WatchEvent

__all__ = ["catalog", "deprecate", "watch"]


def _event_line(event: WatchEvent) -> str:
    when = format_time(int(event.at))[11:] if event.at else "--:--:--"
    text = f"{when}  {event.kind:<9} {event.dataset_id}  (sequence {event.sequence})"
    if event.kind == "withdrawn":
        return f"{text}  {event.reason or 'withdrawn'}" + (
            f": {event.title}" if event.title else ""
        )
    return f"{text}  {event.title}" if event.title else text


def _json_lines(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(CliContext).json = True


@cli.command("watch")
@click.argument("query", nargs=-1)
@click.option(
    "--json",
    is_flag=True,
    expose_value=False,
    callback=_json_lines,
    help="Print one JSON object per line (JSON Lines) instead of text.",
)
@pass_app
def watch(app: CliContext, query: tuple[str, ...]) -> None:
    """Print catalog changes as they happen, until Ctrl-C.

    With QUERY, only changes whose title, description, keywords or themes contain
    every word (as a word prefix: `clim` matches "climate"). One line per change:
    new, updated or withdrawn (deprecated, revoked, expired). With --json, one JSON
    object per line.
    """
    from datanet.errors import NetworkError

    text = " ".join(query)
    try:
        with client_for(app) as client:
            if not app.json:
                what = f" matching {text!r}" if text else ""
                click.echo(f"watching catalog changes{what} (Ctrl-C to stop)", err=True)
            for event in client.watch(text):
                if app.json:
                    click.echo(json.dumps(dict(event.fields), sort_keys=True))
                elif event.kind == "overflow":
                    click.echo(
                        f"... {event.lost} changes missed (this watcher fell behind)", err=True
                    )
                else:
                    click.echo(_event_line(event))
    except KeyboardInterrupt:
        return
    raise NetworkError("the daemon ended the stream (it is stopping)")


@cli.command("deprecate")
@click.argument("dataset_id", metavar="ID")
@click.option(
    "--reason", default="", metavar="TEXT", help="Why, for the people who use the dataset."
)
@json_option
@pass_app
def deprecate(app: CliContext, dataset_id: str, reason: str) -> None:
    """Deprecate the dataset ID (dn://did:key:…/name) of this node's organization.

    The node signs a withdrawal and announces it: every catalog drops the dataset.
    """
    with client_for(app) as client, progress(app, f"deprecating {dataset_id}…"):
        result = client.deprecate(dataset_id, reason)
    doc = {
        "dataset_id": result.dataset_id,
        "sequence": result.sequence,
        "replicas": result.replicas,
        "acked": result.replicas,
        "target": result.target,
        "pending": result.pending,
    }
    emit(
        app,
        doc,
        lambda: click.echo(
            f"deprecated {result.dataset_id} (sequence {result.sequence}) "
            f"on {stored_on(result.replicas, result.target, result.pending)}"
        ),
    )


@cli.group()
def catalog() -> None:
    """The node's complete catalog: statistics and sync."""


def _cell(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _flat(stats: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for name, value in sorted(stats.items()):
        if isinstance(value, dict) and value and not prefix:
            rows += _flat(value, f"{name}.")
        else:
            rows.append((f"{prefix}{name}", _cell(value)))
    return rows


@catalog.command("stats")
@json_option
@pass_app
def catalog_stats(app: CliContext) -> None:
    """Show catalog counts, gossip and sync statistics."""
    with client_for(app) as client:
        stats = client.catalog_stats()
    emit(
        app,
        stats,
        lambda: print_table("catalog", ["statistic", "value"], _flat(stats), empty="-"),
    )


@catalog.command("sync")
@click.option("--peer", "peer_id", metavar="PEER_ID", help="Sync with this peer (12D3KooW…) only.")
@click.option(
    "--peers",
    type=click.IntRange(1, 32),
    default=3,
    show_default=True,
    help="How many peers to sync with.",
)
@json_option
@pass_app
def catalog_sync(app: CliContext, peer_id: str | None, peers: int) -> None:
    """Run catalog sync (anti-entropy) with peers now and show what was exchanged."""
    with client_for(app) as client, progress(app, "syncing the catalog…"):
        synced = client.catalog_sync(peers, peer_id)
    columns: list[str] = []
    for item in synced:
        columns += [k for k in item if k not in columns]
    if "peer" in columns:
        columns.remove("peer")
        columns.insert(0, "peer")
    rows = [[_cell(item.get(c, "")) for c in columns] for item in synced]
    emit(
        app,
        synced,
        lambda: print_table(
            f"synced with {len(rows)} peer{'s' if len(rows) != 1 else ''}",
            columns,
            rows,
            empty="no peer to sync with",
        ),
    )
