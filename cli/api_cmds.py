"""Commands that talk to the running daemon's HTTP API.

``datanet peers``, ``publish FILE``, ``resolve ID``, ``search [QUERY]``,
``routing get|put|findpeer|findprovs|stats`` and ``config show|set``.

Invariants:
* Everything goes through :mod:`datanet.client` (httpx), imported inside the
  commands; nothing here imports libp2p, trio or the node.
* ``config show|set`` fall back to the local config file only when no daemon is
  running on this data directory (no ``api.token``) and no API URL was given;
  they then say so.
"""

# Imports of datanet inside commands are deliberate (fast start-up).

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from cli.app import (
    CliContext,
    cli,
    emit,
    format_time,
    json_option,
    pass_app,
    print_table,
    read_input_file,
    stored_on,
    write_output_file,
)
from cli.node import API_URL_ENV, client_for, progress

__all__ = ["config", "peers", "publish", "resolve", "routing", "search"]

F = TypeVar("F", bound=Callable[..., Any])

_MAX_DESCRIPTOR_FILE = 64 * 1024
_MAX_VALUE_FILE = 1024 * 1024


@cli.command("peers")
@json_option
@pass_app
def peers(app: CliContext) -> None:
    """List the peers the daemon is connected to."""
    with client_for(app) as client:
        result = client.peers()
    doc = [
        {"peer_id": p.peer_id, "org": p.org, "latency_ms": p.latency_ms, "addrs": list(p.addrs)}
        for p in result
    ]
    rows = [
        (
            p.peer_id,
            p.org or "-",
            "-" if p.latency_ms is None else f"{p.latency_ms:.1f} ms",
            "\n".join(p.addrs),
        )
        for p in result
    ]
    emit(
        app,
        doc,
        lambda: print_table(
            f"{len(rows)} peers", ["peer id", "org", "latency", "addresses"], rows, empty="no peers"
        ),
    )


@cli.command("publish")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@json_option
@pass_app
def publish(app: CliContext, file: Path) -> None:
    """Publish the signed descriptor FILE (from `datanet descriptor sign`).

    FILE may also be another signed record every node should hold: an
    organization's revocation list (`datanet org revoke --out FILE`) or an org
    record. The daemon verifies it and sends it to every node.
    """
    data = read_input_file(file, max_size=_MAX_DESCRIPTOR_FILE)
    with client_for(app) as client, progress(app, f"publishing {file.name}…"):
        result = client.publish(data)
    doc = {
        "dataset_id": result.dataset_id,
        "sequence": result.sequence,
        "replicas": result.replicas,
        "kind": result.kind,
        "key": result.key,
        "acked": result.replicas,
        "target": result.target,
        "pending": result.pending,
    }
    what = result.dataset_id or f"the {result.kind} record {result.key}"
    emit(
        app,
        doc,
        lambda: click.echo(
            f"published {what} (sequence {result.sequence}) "
            f"on {stored_on(result.replicas, result.target, result.pending)}"
        ),
    )


def _show_descriptor(d: dict[str, Any], cert: Any) -> None:
    def line(label: str, value: object) -> None:
        text = str(value).strip() if value is not None else ""
        if text:
            click.echo(f"{label + ':':<14}{text}")

    click.echo(f"{d.get('dataset_id')}  (sequence {d.get('sequence')})")
    line("title", d.get("title"))
    line("description", d.get("description"))
    line("keywords", ", ".join(d.get("keywords") or []))
    line("themes", ", ".join(d.get("themes") or []))
    name = f" ({cert.org_name})" if cert.org_name else ""
    line("publisher", f"{d.get('publisher_org')}{name}")
    line("node", d.get("publisher_node"))
    line("license", d.get("license"))
    line("version", d.get("version"))
    for label in ("issued", "modified", "expires"):
        value = d.get(label)
        if isinstance(value, int):
            line(label, format_time(value))
    policy = d.get("access_policy") or {}
    line("access", policy.get("mode"))
    for dist in d.get("distributions") or []:
        title = f" {dist.get('title')}" if dist.get("title") else ""
        line("distribution", f"{dist.get('media_type')}{title} → {dist.get('access')}")


@cli.command("resolve")
@click.argument("dataset_id", metavar="ID")
@click.option("--refresh", is_flag=True, help="Ask the network even if the catalog holds a copy.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Also save the signed descriptor bytes to FILE.",
)
@click.option("--force", is_flag=True, help="Overwrite --out FILE if it exists.")
@json_option
@pass_app
def resolve(app: CliContext, dataset_id: str, refresh: bool, out: Path | None, force: bool) -> None:
    """Resolve the dataset ID (dn://did:key:…/name) to its newest valid descriptor."""
    with client_for(app) as client, progress(app, f"resolving {dataset_id}…"):
        found = client.resolve(dataset_id, refresh=refresh)
    if out is not None:
        write_output_file(out, found.raw, force=force)
    c = found.certificate
    doc = {
        "dataset_id": found.dataset_id,
        "sequence": found.sequence,
        "descriptor": dict(found.descriptor),
        "certificate": {
            "org": c.org,
            "org_name": c.org_name,
            "node": c.node,
            "roles": list(c.roles),
            "serial": c.serial,
            "not_before": c.not_before,
            "not_after": c.not_after,
        },
        "raw": base64.b64encode(found.raw).decode("ascii"),
    }
    emit(app, doc, lambda: _show_descriptor(dict(found.descriptor), c))


_FACET_SHOWN = 5  # values per facet in the human output (--json has all the daemon sent)


class _Time(click.ParamType[int]):
    """``YYYY-MM-DD`` (UTC; the end of that day for ``--to``) or Unix seconds."""

    name = "DATE"

    def __init__(self, *, end_of_day: bool = False) -> None:
        self.end_of_day = end_of_day

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip()
        if re.fullmatch(r"-?[0-9]{1,19}", text):
            return int(text)
        try:
            day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            self.fail(f"{value!r} is neither a date (YYYY-MM-DD) nor Unix seconds", param, ctx)
        return int(day.timestamp()) + (86399 if self.end_of_day else 0)


def _values_option(name: str, metavar: str, help_text: str) -> Callable[[F], F]:
    return click.option(name, multiple=True, metavar=metavar, help=help_text + " (repeatable)")


@cli.command("search")
@click.argument("query", nargs=-1)
@_values_option("--org", "ORG", "Only datasets of this organization (did:key)")
@_values_option("--keyword", "K", "Only datasets with this keyword")
@_values_option("--theme", "T", "Only datasets with this theme")
@_values_option("--license", "L", "Only datasets under this license")
@_values_option("--media-type", "M", "Only datasets with a distribution of this media type")
@click.option(
    "--access",
    multiple=True,
    type=click.Choice(["open", "request", "closed"]),
    help="Only datasets with this access mode (repeatable).",
)
@click.option("--from", "start", type=_Time(), help="Only coverage ending on or after DATE.")
@click.option(
    "--to", "end", type=_Time(end_of_day=True), help="Only coverage starting on or before DATE."
)
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
@click.option("--cursor", metavar="C", help="Next page: the cursor the previous page printed.")
@click.option("--facets/--no-facets", default=True, show_default=True, help="Count facet values.")
@json_option
@pass_app
def search(
    app: CliContext,
    *,
    query: tuple[str, ...],
    org: tuple[str, ...],
    keyword: tuple[str, ...],
    theme: tuple[str, ...],
    license: tuple[str, ...],  # noqa: A002 - the option's name
    media_type: tuple[str, ...],
    access: tuple[str, ...],
    start: int | None,
    end: int | None,
    limit: int,
    cursor: str | None,
    facets: bool,
) -> None:
    """Search the daemon's catalog (no QUERY lists the newest datasets).

    Values of one filter are OR'ed, filters are AND'ed. Dates are YYYY-MM-DD
    (UTC) or Unix seconds. Page with --cursor (same QUERY and filters).
    """
    text = " ".join(query)
    with client_for(app) as client:
        result = client.search(
            text,
            org=org,
            keyword=keyword,
            theme=theme,
            license=license,
            media_type=media_type,
            access=access,
            temporal_from=start,
            temporal_to=end,
            limit=limit,
            cursor=cursor,
            facets=facets,
        )
    doc = {
        "query": text,
        "hits": [dict(h.fields) for h in result.hits],
        "total": result.total,
        "facets": {
            name: [{"value": f.value, "count": f.count} for f in values]
            for name, values in result.facets.items()
        },
        "counted": result.counted,
        "next_cursor": result.next_cursor,
    }

    def human() -> None:
        rows = [
            (
                h.dataset_id,
                h.title,
                str(h.fields.get("access", "")),
                str(h.fields.get("license", "")),
            )
            for h in result.hits
        ]
        matching = f" matching {text!r}" if text else ""
        print_table(
            f"{len(rows)} of {result.total} datasets{matching}",
            ["dataset id", "title", "access", "license"],
            rows,
            empty="no datasets found",
        )
        facet_rows = [
            (name, f.value, str(f.count))
            for name, values in result.facets.items()
            for f in values[:_FACET_SHOWN]
        ]
        if facet_rows and result.total:
            note = "" if result.counted >= result.total else f" (over {result.counted} matches)"
            click.echo()
            print_table(f"facets{note}", ["facet", "value", "datasets"], facet_rows)
        if result.next_cursor is not None:
            click.echo(f"\nnext page: --cursor {result.next_cursor}")

    emit(app, doc, human)


# --- routing ------------------------------------------------------------------------


@cli.group()
def routing() -> None:
    """Query the DHT directly (for debugging)."""


@routing.command("get")
@click.argument("key")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Write the value to FILE instead of printing it (base64).",
)
@click.option("--force", is_flag=True, help="Overwrite --out FILE if it exists.")
@json_option
@pass_app
def routing_get(app: CliContext, key: str, out: Path | None, force: bool) -> None:
    """Get the best valid value under KEY (e.g. /dn/did:key:…/name)."""
    with client_for(app) as client, progress(app, f"looking up {key}…"):
        value = client.routing_get(key)
    encoded = base64.b64encode(value).decode("ascii")
    if out is not None:
        write_output_file(out, value, force=force)
    doc = {"key": key, "value": encoded, "size": len(value)}

    def human() -> None:
        if out is not None:
            click.echo(f"wrote {len(value)} bytes to {out}")
        else:
            click.echo(encoded)

    emit(app, doc, human)


@routing.command("put")
@click.argument("key")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@json_option
@pass_app
def routing_put(app: CliContext, key: str, file: Path) -> None:
    """Validate the value in FILE and store it under KEY on the closest peers."""
    value = read_input_file(file, max_size=_MAX_VALUE_FILE)
    with client_for(app) as client, progress(app, f"storing {key}…"):
        replicas = client.routing_put(key, value)
    emit(
        app,
        {"key": key, "replicas": replicas},
        lambda: click.echo(f"stored {key} on {replicas} peer{'s' if replicas != 1 else ''}"),
    )


@routing.command("findpeer")
@click.argument("peer")
@json_option
@pass_app
def routing_findpeer(app: CliContext, peer: str) -> None:
    """Find the addresses of PEER (12D3KooW…)."""
    with client_for(app) as client, progress(app, f"finding {peer}…"):
        addrs = client.find_peer(peer)
    emit(app, {"peer_id": peer, "addrs": addrs}, lambda: click.echo("\n".join(addrs)))


@routing.command("findprovs")
@click.argument("key")
@click.option("--count", type=click.IntRange(1, 100), default=20, show_default=True)
@json_option
@pass_app
def routing_findprovs(app: CliContext, key: str, count: int) -> None:
    """Find up to --count peers that provide KEY."""
    with client_for(app) as client, progress(app, f"finding providers of {key}…"):
        providers = client.find_providers(key, count)
    doc = [{"peer_id": p.peer_id, "addrs": list(p.addrs)} for p in providers]
    rows = [(p.peer_id, "\n".join(p.addrs)) for p in providers]
    emit(
        app,
        doc,
        lambda: print_table(
            f"{len(rows)} providers", ["peer id", "addresses"], rows, empty="no providers found"
        ),
    )


@routing.command("stats")
@json_option
@pass_app
def routing_stats(app: CliContext) -> None:
    """Show routing table and record store statistics."""
    with client_for(app) as client:
        stats = client.routing_stats()
    rows = [
        (str(k), v if isinstance(v, str) else json.dumps(v, sort_keys=True))
        for k, v in sorted(stats.items())
    ]
    emit(app, stats, lambda: print_table("routing", ["statistic", "value"], rows, empty="-"))


# --- config -------------------------------------------------------------------------


def _local_only(app: CliContext) -> Path | None:
    """The local config file when no daemon runs here and no API URL was given."""
    if os.environ.get(API_URL_ENV):
        return None
    from datanet.node.home import resolve_data_dir
    from datanet.node.paths import HomeLayout

    layout = HomeLayout(resolve_data_dir(app.data_dir))
    if layout.api_token.exists():
        return None
    return layout.config


@cli.group()
def config() -> None:
    """Show or change the node's config file (applied when the node restarts)."""


@config.command("show")
@click.argument("key", required=False)
@json_option
@pass_app
def config_show(app: CliContext, key: str | None) -> None:
    """Show every setting, or only KEY (e.g. api.address)."""
    local = _local_only(app)
    if local is None:
        with client_for(app) as client:
            view = client.config_show()
        path, settings, restart = view.path, view.config, view.restart_required
    else:
        from datanet.node.config import load_config

        path, settings, restart = str(local), load_config(local).to_mapping(), False
    flat = {
        f"{section}.{name}": value
        for section, table in settings.items()
        for name, value in table.items()
    }
    if key is not None:
        from datanet.node.config import ConfigError

        if key not in flat:
            raise ConfigError(f"unknown config key {key!r}; known keys: {', '.join(flat)}")
        flat = {key: flat[key]}
    doc = {"path": path, "config": flat, "restart_required": restart, "daemon": local is None}

    def human() -> None:
        for k, v in flat.items():
            click.echo(f"{k} = {json.dumps(v)}")
        if key is None:
            click.echo(f"# {path}" + ("" if local is None else " (daemon not running)"))
        if restart:
            click.echo("# the file differs from the running settings: restart to apply")

    emit(app, doc, human)


@config.command("set")
@click.argument("key")
@click.argument("value")
@json_option
@pass_app
def config_set(app: CliContext, key: str, value: str) -> None:
    """Set KEY to VALUE in the config file (lists: comma-separated or a TOML array)."""
    local = _local_only(app)
    if local is None:
        with client_for(app) as client:
            change = client.config_set(key, value)
        new_value, restart = change.value, change.restart_required
    else:
        from datanet.node.config import ConfigFile

        updated = ConfigFile(local).set(key, value)[key]
        new_value = list(updated) if isinstance(updated, tuple) else updated
        restart = False
    doc = {"key": key, "value": new_value, "restart_required": restart, "daemon": local is None}

    def human() -> None:
        click.echo(f"{key} = {json.dumps(new_value)}")
        if restart:
            click.echo("restart the node to apply: datanet node stop && datanet node start")

    emit(app, doc, human)
