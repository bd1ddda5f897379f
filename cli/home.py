"""``datanet init`` and ``datanet id``: the node's data directory and identity.

Invariant: ``init`` never replaces an existing node key; ``id`` never needs the
passphrase (the peer id is stored in clear next to the encrypted seed).
"""

# Imports of identity/datanet inside commands are deliberate (fast start-up).

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cli.app import (
    CliContext,
    cli,
    emit,
    format_time,
    json_option,
    new_passphrase,
    pass_app,
    passphrase_file_option,
)

__all__ = ["id_command", "init"]


@cli.command()
@passphrase_file_option
@click.option(
    "--no-passphrase",
    is_flag=True,
    help="Store the node key unencrypted without asking (for scripts and tests).",
)
@json_option
@pass_app
def init(app: CliContext, passphrase_file: Path | None, no_passphrase: bool) -> None:
    """Create the data directory and this node's key.

    The key is encrypted when a passphrase is given (--passphrase-file,
    DATANET_PASSPHRASE, or the prompt on a terminal). An existing node key is
    never replaced.
    """
    home = app.home()
    passphrase = new_passphrase(passphrase_file, what="node key", no_passphrase=no_passphrase)
    key = home.init(passphrase)
    doc = {
        "peer_id": str(key.peer_id),
        "data_dir": str(home.path),
        "key_encrypted": passphrase is not None,
    }

    def human() -> None:
        click.echo(f"Initialized datanet node in {home.path}")
        click.echo(f"peer id: {key.peer_id}")
        if passphrase is None:
            click.echo("note: the node key is stored unencrypted (mode 0600)", err=True)

    emit(app, doc, human)


@cli.command("id")
@json_option
@pass_app
def id_command(app: CliContext) -> None:
    """Show this node's peer id, memberships, local orgs and trust settings."""
    from datanet.node.authority import Authorities
    from datanet.node.home import certificate_status

    home = app.home()
    peer = home.node_peer_id()
    now = app.now()
    trust = home.trust_store()
    memberships: list[dict[str, Any]] = [
        {
            "org": str(entry.cert.org),
            "org_name": entry.cert.org_name,
            "serial": entry.cert.serial,
            "roles": sorted(r.value for r in entry.cert.roles),
            "not_before": entry.cert.not_before,
            "not_after": entry.cert.not_after,
            "status": certificate_status(entry.cert, now, trust),
            "file": str(entry.path),
        }
        for entry in home.certificates()
    ]
    orgs = [{"name": o.name, "org": str(o.org)} for o in Authorities(home).list_orgs()]
    doc = {
        "peer_id": str(peer),
        "data_dir": str(home.path),
        "key_encrypted": home.node_key_encrypted(),
        "memberships": memberships,
        "orgs": orgs,
        "trusted": sorted(str(o) for o in trust.trusted),
        "accept_any": trust.accept_any,
    }

    def human() -> None:
        click.echo(f"peer id:   {peer}")
        click.echo(f"data dir:  {home.path}")
        click.echo(f"node key:  {'encrypted' if doc['key_encrypted'] else 'unencrypted'}")
        if memberships:
            click.echo("memberships:")
            for m in memberships:
                name = f"{m['org_name']} " if m["org_name"] else ""
                click.echo(
                    f"  {name}{m['org']}  serial {m['serial']}  roles {','.join(m['roles'])}"
                    f"  until {format_time(m['not_after'])}  [{m['status']}]"
                )
        else:
            click.echo("memberships: none (install one with `datanet cert install FILE`)")
        for o in orgs:
            click.echo(f"local org: {o['name']}  {o['org']}")
        accept = "  (accepting any org)" if trust.accept_any else ""
        click.echo(f"trusted orgs: {len(trust.trusted)}{accept}")

    emit(app, doc, human)
