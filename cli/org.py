"""``datanet org …``: organization root keys, certificates and revocations.

Invariants: an org key is never replaced; serials only increase (the counter
lives in ``orgs/<name>.toml`` and is saved before a certificate is written); a
revocation list is cumulative and its sequence only increases.
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
    print_table,
    unlock,
    write_output_file,
)

__all__ = ["org"]

_ROLES = ("publisher", "gateway", "requester", "admin")


@cli.group()
def org() -> None:
    """Organizations: root keys, membership certificates, revocations."""


@org.command("create")
@click.argument("name")
@passphrase_file_option
@click.option("--no-passphrase", is_flag=True, help="Store the org key unencrypted without asking.")
@json_option
@pass_app
def org_create(
    app: CliContext, name: str, passphrase_file: Path | None, no_passphrase: bool
) -> None:
    """Create an organization root key NAME (a-z 0-9 . _ -) on this machine."""
    from datanet.node.authority import Authorities
    from datanet.node.home import check_org_name

    authorities = Authorities(app.home())
    check_org_name(name)
    passphrase = new_passphrase(
        passphrase_file, what=f"org {name} key", no_passphrase=no_passphrase
    )
    key = authorities.create_org(name, passphrase)
    doc = {"name": name, "org": str(key.org_id), "key_encrypted": passphrase is not None}

    def human() -> None:
        click.echo(f"Created organization {name}: {key.org_id}")
        click.echo(f"root key: {authorities.layout.org_key(name)}")
        if passphrase is None:
            click.echo("note: the org key is stored unencrypted (mode 0600)", err=True)

    emit(app, doc, human)


@org.command("list")
@json_option
@pass_app
def org_list(app: CliContext) -> None:
    """List the organizations whose root keys live here."""
    from datanet.node.authority import Authorities

    orgs = Authorities(app.home()).list_orgs()
    doc = [
        {
            "name": o.name,
            "org": str(o.org),
            "key_encrypted": o.encrypted,
            "next_serial": o.next_serial,
            "issued": o.issued,
            "revoked": sorted(o.revoked),
            "revocation_sequence": o.revocation_sequence,
        }
        for o in orgs
    ]
    emit(
        app,
        doc,
        lambda: print_table(
            "",
            ("name", "org id", "issued", "revoked", "key"),
            (
                (
                    o.name,
                    str(o.org),
                    str(o.issued),
                    str(len(o.revoked)),
                    "encrypted" if o.encrypted else "plain",
                )
                for o in orgs
            ),
            empty="no organizations here (create one with `datanet org create NAME`)",
        ),
    )


@org.command("issue")
@click.option("--org", "org_name", required=True, metavar="NAME", help="The local org that signs.")
@click.option(
    "--node",
    metavar="PEERID",
    help="The node's peer id (12D3KooW…) [default: this node].",
)
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    type=click.Choice(_ROLES),
    help="A role to grant; repeat for several.",
)
@click.option(
    "--days",
    type=click.IntRange(1, 3660),
    default=365,
    show_default=True,
    help="Validity from now, in days.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Where to write the certificate [default: ./<org>-<serial>.cert].",
)
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@passphrase_file_option
@json_option
@pass_app
def org_issue(
    app: CliContext,
    *,
    org_name: str,
    node: str | None,
    roles: tuple[str, ...],
    days: int,
    out: Path | None,
    force: bool,
    passphrase_file: Path | None,
) -> None:
    """Issue a membership certificate of an org to a node.

    The serial is the org's next one (remembered in orgs/NAME.toml). Give the
    file to the node's operator: `datanet cert install FILE`.
    """
    from datanet.node.authority import Authorities
    from identity.certs import Role
    from identity.keys import PeerId

    home = app.home()
    authorities = Authorities(home)
    org_id = authorities.org_id(org_name)
    peer = PeerId.parse(node) if node else home.node_peer_id()
    if out is not None and out.exists() and not force:
        from datanet.errors import InvalidInput

        raise InvalidInput(f"{out} exists; refusing to overwrite it (use --force)")
    key = unlock(
        lambda p: authorities.load_org(org_name, p), passphrase_file, what=f"org {org_name} key"
    )
    cert, raw = authorities.issue_certificate(
        org_name, key, peer, [Role(r) for r in roles], now=app.now(), days=days
    )
    path = out if out is not None else Path(f"{org_name}-{cert.serial}.cert")
    write_output_file(path, raw, force=force)
    doc: dict[str, Any] = {
        "org": str(org_id),
        "org_name": org_name,
        "node": str(peer),
        "serial": cert.serial,
        "roles": sorted(r.value for r in cert.roles),
        "not_before": cert.not_before,
        "not_after": cert.not_after,
        "file": str(path),
    }

    def human() -> None:
        click.echo(
            f"Issued certificate {cert.serial} of {org_name} to {peer}\n"
            f"roles {', '.join(doc['roles'])}; valid until {format_time(cert.not_after)}\n"
            f"written to {path}"
        )

    emit(app, doc, human)


@org.command("revoke")
@click.option("--org", "org_name", required=True, metavar="NAME", help="The local org that signs.")
@click.argument("serials", nargs=-1, required=True, type=click.IntRange(min=1))
@click.option("--reason", default="", help="Why (at most 256 characters), kept in the list.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Also write the revocation list to FILE.",
)
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@passphrase_file_option
@json_option
@pass_app
def org_revoke(
    app: CliContext,
    *,
    org_name: str,
    serials: tuple[int, ...],
    reason: str,
    out: Path | None,
    force: bool,
    passphrase_file: Path | None,
) -> None:
    """Revoke certificate SERIALS of an org.

    Signs the org's cumulative revocation list with the next sequence number,
    keeps it in orgs/NAME.rev, applies it to this node, and writes it to --out.
    Other nodes apply it with `datanet trust add-revocation FILE`.
    """
    from datanet.node.authority import Authorities

    authorities = Authorities(app.home())
    authorities.org_id(org_name)
    if out is not None and out.exists() and not force:
        from datanet.errors import InvalidInput

        raise InvalidInput(f"{out} exists; refusing to overwrite it (use --force)")
    key = unlock(
        lambda p: authorities.load_org(org_name, p), passphrase_file, what=f"org {org_name} key"
    )
    rev, raw = authorities.revoke(org_name, key, serials, now=app.now(), reason=reason)
    if out is not None:
        write_output_file(out, raw, force=force)
    path = out if out is not None else authorities.revocation_path(org_name)
    doc = {
        "org": str(rev.org),
        "org_name": org_name,
        "sequence": rev.sequence,
        "revoked": sorted(rev.serials),
        "reason": rev.reason,
        "file": str(path),
    }

    def human() -> None:
        click.echo(
            f"Revocation list {rev.sequence} of {org_name} revokes serial(s) "
            f"{', '.join(str(s) for s in sorted(rev.serials))}\nwritten to {path}"
        )

    emit(app, doc, human)


def _split_addr(text: str) -> tuple[str, str]:
    peer, sep, addr = text.partition("=")
    if not sep or not peer or not addr:
        from datanet.errors import InvalidInput

        raise InvalidInput(f"--addr takes PEERID=/ip4/…/tcp/…, not {text[:80]!r}")
    return peer.strip(), addr.strip()


def _strip_p2p(addr: str) -> str:
    """``/ip4/…/tcp/…/p2p/12D3…`` -> ``/ip4/…/tcp/…`` (the record names the peer already)."""
    head, sep, _ = addr.partition("/p2p/")
    return head if sep else addr


def _known_addrs(client: Any, peer: Any) -> tuple[str, ...]:
    """What the daemon knows of ``peer``'s addresses (its own, or a DHT lookup); () if none."""
    from datanet.errors import DatanetError

    try:
        me = client.id()
        found = me.addrs if me.peer_id == str(peer) else client.find_peer(peer)
    except DatanetError:
        return ()
    addrs = [_strip_p2p(a) for a in found if a.startswith("/")]
    return tuple(dict.fromkeys(a for a in addrs if "/0.0.0.0/" not in a))[:8]


def _held_sequence(client: Any, org_id: Any) -> int:
    """The sequence of ``org_id``'s org record the daemon can find (0 when none)."""
    from datanet.errors import DatanetError
    from datanet.records.ledger import org_record_key
    from identity.orgs import decode_org_record

    try:
        raw = client.routing_get(org_record_key(org_id))
        return decode_org_record(raw).sequence
    except DatanetError:
        return 0


def _record_doc(record: Any, org_name: str) -> dict[str, Any]:
    return {
        "org": str(record.org),
        "org_name": org_name,
        "name": record.name,
        "sequence": record.sequence,
        "expires": record.expires,
        "egress": record.egress,
        "gateways": [{"peer": str(g.peer), "addrs": list(g.addrs)} for g in record.gateways],
    }


def _show_record(doc: dict[str, Any]) -> None:
    click.echo(f"org record {doc['sequence']} of {doc['name']} ({doc['org']})")
    click.echo(f"valid until {format_time(doc['expires'])}; egress gated: {doc['egress']}")
    for g in doc["gateways"]:
        click.echo(f"  gateway {g['peer']}  {' '.join(g['addrs']) or '(no address)'}")


@org.command("record")
@click.argument("org_name", metavar="ORG")
@click.option(
    "--gateway",
    "gateways",
    multiple=True,
    required=True,
    metavar="PEERID",
    help="A gateway node of the org (12D3KooW…); repeat for several (at most 16).",
)
@click.option(
    "--addr",
    "addrs",
    multiple=True,
    metavar="PEERID=MULTIADDR",
    help="An address of a gateway (/ip4/…/tcp/…); repeat for several. "
    "[default: what the daemon knows of that peer]",
)
@click.option(
    "--egress/--no-egress",
    default=False,
    show_default=True,
    help="Whether the org's own nodes must send access requests out through its gateways.",
)
@click.option(
    "--days",
    type=click.IntRange(1, 3660),
    default=30,
    show_default=True,
    help="Validity from now, in days.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Also write the signed record to FILE (it is always kept as orgs/ORG.org).",
)
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@click.option("--publish", is_flag=True, help="Publish it through this node's daemon.")
@passphrase_file_option
@json_option
@pass_app
def org_record(
    app: CliContext,
    *,
    org_name: str,
    gateways: tuple[str, ...],
    addrs: tuple[str, ...],
    egress: bool,
    days: int,
    out: Path | None,
    force: bool,
    publish: bool,
    passphrase_file: Path | None,
) -> None:
    """Sign the org record of local org ORG: its gateways and whether it gates egress.

    The sequence is one above the last one signed here and, with --publish, above
    the one the daemon finds in the network. Gateways without --addr get the
    addresses the daemon knows for them. Other nodes use the record to route
    access requests to (and, with --egress, from) the org.
    """
    from datanet.errors import InvalidInput
    from datanet.node.authority import Authorities
    from identity.keys import PeerId
    from identity.orgs import MAX_GATEWAYS, Gateway

    authorities = Authorities(app.home())
    org_id = authorities.org_id(org_name)
    if out is not None and out.exists() and not force:
        raise InvalidInput(f"{out} exists; refusing to overwrite it (use --force)")
    peers = list(dict.fromkeys(PeerId.parse(g) for g in gateways))
    if len(peers) > MAX_GATEWAYS:
        raise InvalidInput(f"an org record lists at most {MAX_GATEWAYS} gateways")
    given: dict[PeerId, list[str]] = {p: [] for p in peers}
    for text in addrs:
        peer_text, addr = _split_addr(text)
        peer = PeerId.parse(peer_text)
        if peer not in given:
            raise InvalidInput(f"--addr names {peer}, which is not one of the --gateway peers")
        given[peer].append(addr)
    missing = [p for p in peers if not given[p]]
    client = None
    try:
        if publish or missing:
            from cli.node import client_for

            client = client_for(app)
        for peer in missing:
            assert client is not None
            given[peer] = list(_known_addrs(client, peer))
            if not given[peer]:
                raise InvalidInput(
                    f"the daemon knows no address of gateway {peer}; give --addr {peer}=/ip4/…"
                )
        after = _held_sequence(client, org_id) if publish and client is not None else 0
        key = unlock(
            lambda p: authorities.load_org(org_name, p), passphrase_file, what=f"org {org_name} key"
        )
        record, raw = authorities.sign_org_record(
            org_name,
            key,
            [Gateway(p, tuple(given[p])) for p in peers],
            egress=egress,
            now=app.now(),
            days=days,
            after=after,
        )
        if out is not None:
            write_output_file(out, raw, force=force)
        doc = _record_doc(record, org_name)
        doc["file"] = str(out if out is not None else authorities.org_record_path(org_name))
        doc["replicas"] = None
        if publish:
            assert client is not None
            doc["replicas"] = client.publish(raw).replicas
    finally:
        if client is not None:
            client.close()

    def human() -> None:
        _show_record(doc)
        click.echo(f"written to {doc['file']}")
        if doc["replicas"] is not None:
            click.echo(f"published on {doc['replicas']} peer(s)")

    emit(app, doc, human)


@org.command("show-record")
@click.argument("org_name", metavar="ORG")
@json_option
@pass_app
def org_show_record(app: CliContext, org_name: str) -> None:
    """Print the org record of ORG that the daemon holds or finds in the network.

    ORG is a local org, a trusted org's name or a did:key.
    """
    from cli.node import client_for
    from datanet.errors import NotFound
    from datanet.node.authority import find_org
    from datanet.records.ledger import org_record_key
    from identity.orgs import decode_org_record

    org_id = find_org(app.home(), org_name)
    with client_for(app) as client:
        try:
            raw = client.routing_get(org_record_key(org_id))
        except NotFound:
            raise NotFound(f"no org record of {org_name} ({org_id}) was found") from None
    record = decode_org_record(raw)
    doc = _record_doc(record, org_name)
    emit(app, doc, lambda: _show_record(doc))
