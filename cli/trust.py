"""``datanet cert …`` and ``datanet trust …``: this node's certificates and trust store.

Invariant: only verified records are stored (a certificate must be this node's
and signed by its org; a revocation list must be signed by its org and newer
than the held one).
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
    pass_app,
    print_table,
    read_input_file,
)

__all__ = ["cert", "trust"]


@cli.group()
def cert() -> None:
    """This node's membership certificates."""


@cert.command("install")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@json_option
@pass_app
def cert_install(app: CliContext, file: Path) -> None:
    """Install a membership certificate FILE issued to this node (trusts its org)."""
    home = app.home()
    c = home.install_certificate(read_input_file(file, max_size=4096), app.now())
    doc: dict[str, Any] = {
        "org": str(c.org),
        "org_name": c.org_name,
        "serial": c.serial,
        "roles": sorted(r.value for r in c.roles),
        "not_before": c.not_before,
        "not_after": c.not_after,
    }

    def human() -> None:
        name = f"{c.org_name} " if c.org_name else ""
        click.echo(
            f"Installed certificate {c.serial} of {name}{c.org}\n"
            f"roles {', '.join(doc['roles'])}; valid until {format_time(c.not_after)}"
        )

    emit(app, doc, human)


@cert.command("list")
@json_option
@pass_app
def cert_list(app: CliContext) -> None:
    """List the installed certificates of this node and their state."""
    from datanet.node.home import certificate_status

    home = app.home()
    now = app.now()
    trust = home.trust_store()
    entries = home.certificates()
    doc: list[dict[str, Any]] = [
        {
            "org": str(e.cert.org),
            "org_name": e.cert.org_name,
            "serial": e.cert.serial,
            "roles": sorted(r.value for r in e.cert.roles),
            "not_before": e.cert.not_before,
            "not_after": e.cert.not_after,
            "status": certificate_status(e.cert, now, trust),
            "file": str(e.path),
        }
        for e in entries
    ]
    emit(
        app,
        doc,
        lambda: print_table(
            "",
            ("org", "serial", "roles", "valid until", "status"),
            (
                (
                    d["org_name"] or d["org"],
                    str(d["serial"]),
                    ",".join(d["roles"]),
                    format_time(d["not_after"]),
                    d["status"],
                )
                for d in doc
            ),
            empty="no certificates installed (`datanet cert install FILE`)",
        ),
    )


@cli.group()
def trust() -> None:
    """Which organizations this node trusts, and their revocations."""


@trust.command("add")
@click.argument("org_id", metavar="ORGID")
@click.option("--name", default="", help="A local name for the org (usable instead of its id).")
@json_option
@pass_app
def trust_add(app: CliContext, org_id: str, name: str) -> None:
    """Trust organization ORGID (did:key:z6Mk…): accept its certificates."""
    from datanet.node.home import check_org_name
    from identity.keys import OrgId

    org_value = OrgId.parse(org_id)
    if name:
        check_org_name(name)
    added = app.home().trust(org_value, name)
    doc = {"org": str(org_value), "name": name, "added": added}
    named = f" as {name!r}" if name else ""
    emit(
        app,
        doc,
        lambda: click.echo(
            f"Trusting {org_value}{named}" if added else f"{org_value} was already trusted"
        ),
    )


@trust.command("remove")
@click.argument("org_id", metavar="ORGID")
@json_option
@pass_app
def trust_remove(app: CliContext, org_id: str) -> None:
    """Stop trusting organization ORGID."""
    from identity.keys import OrgId

    org_value = OrgId.parse(org_id)
    removed = app.home().untrust(org_value)
    doc = {"org": str(org_value), "removed": removed}
    emit(
        app,
        doc,
        lambda: click.echo(
            f"No longer trusting {org_value}" if removed else f"{org_value} was not trusted"
        ),
    )


@trust.command("list")
@json_option
@pass_app
def trust_list(app: CliContext) -> None:
    """List the trusted organizations and the accept-any flag."""
    home = app.home()
    orgs = home.trusted_orgs()
    accept_any = home.accepts_any_org()
    revs = {r.org: r for r in home.revocations()}
    doc: dict[str, Any] = {
        "accept_any": accept_any,
        "trusted": [
            {
                "org": str(t.org),
                "name": t.name,
                "revoked": sorted(revs[t.org].serials) if t.org in revs else [],
            }
            for t in orgs
        ],
    }

    def human() -> None:
        click.echo(f"accept any org: {'yes' if accept_any else 'no'}")
        print_table(
            "",
            ("name", "org id", "revoked serials"),
            (
                (e["name"], e["org"], ",".join(str(s) for s in e["revoked"]) or "-")
                for e in doc["trusted"]
            ),
            empty="no trusted organizations (`datanet trust add ORGID`)",
        )

    emit(app, doc, human)


@trust.command("accept-any")
@click.argument("value", type=click.Choice(["on", "off"]))
@json_option
@pass_app
def trust_accept_any(app: CliContext, value: str) -> None:
    """Accept (on) or refuse (off) valid certificates of orgs not in the list."""
    app.home().set_accept_any(value == "on")
    emit(app, {"accept_any": value == "on"}, lambda: click.echo(f"accept any org: {value}"))


@trust.command("add-revocation")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@json_option
@pass_app
def trust_add_revocation(app: CliContext, file: Path) -> None:
    """Apply an org's signed revocation list FILE (kept if newer than the held one)."""
    rev = app.home().add_revocation(read_input_file(file, max_size=64 * 1024))
    doc = {"org": str(rev.org), "sequence": rev.sequence, "revoked": sorted(rev.serials)}
    emit(
        app,
        doc,
        lambda: click.echo(
            f"Applied revocation list {rev.sequence} of {rev.org}: "
            f"{len(rev.serials)} serial(s) revoked"
        ),
    )
