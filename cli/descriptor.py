"""``datanet descriptor new|sign|verify|show|export``: signed dataset descriptors.

Invariants: ``sign`` signs with the node key and the installed certificate of the
dataset's org; ``verify`` and ``export`` act only on descriptors that pass full
verification against this node's trust store (or any org with
``--accept-any-org``); ``show`` always says whether the record verified. No
output file is ever replaced without ``--force``.
"""

# Imports of identity/datanet inside commands are deliberate (fast start-up).

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli.app import (
    CliContext,
    cli,
    emit,
    format_time,
    json_option,
    pass_app,
    passphrase_file_option,
    read_input_file,
    unlock,
    write_output_file,
)

if TYPE_CHECKING:
    from datanet.records.descriptor import Descriptor, VerifiedDescriptor
    from identity.certs import TrustStore

__all__ = ["descriptor"]

_MAX_TOML = 256 * 1024
_FILE = click.Path(dir_okay=False, path_type=Path)


@cli.group()
def descriptor() -> None:
    """Dataset descriptors: write, sign, verify, show, export."""


@descriptor.command("new")
@click.argument("org", metavar="ORG_OR_DID")
@click.argument("name")
@click.option("--out", type=_FILE, metavar="FILE", help="Write the template to FILE, not stdout.")
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@pass_app
def descriptor_new(app: CliContext, org: str, name: str, out: Path | None, force: bool) -> None:
    """Write a descriptor file (TOML) for dataset NAME of an organization.

    ORG_OR_DID is a did:key, a local org (datanet org list) or a trusted org's
    name (datanet trust list). Edit the file, then `datanet descriptor sign FILE`.
    """
    from datanet.node.authority import find_org
    from datanet.records.descriptor_file import descriptor_template
    from datanet.records.ids import DatasetId

    dataset_id = DatasetId(find_org(app.home(), org), name)
    text = descriptor_template(dataset_id, now=app.now())
    if out is None:
        click.echo(text, nl=False)
        return
    write_output_file(out, text.encode("utf-8"), force=force)
    click.echo(f"Wrote a descriptor file for {dataset_id} to {out}", err=app.json)


@descriptor.command("sign")
@click.argument("file", type=_FILE)
@click.option("--out", type=_FILE, metavar="FILE", help="Where to write [default: FILE.dnd].")
@click.option("--force", is_flag=True, help="Replace the output file if it exists.")
@passphrase_file_option
@json_option
@pass_app
def descriptor_sign(
    app: CliContext, file: Path, out: Path | None, force: bool, passphrase_file: Path | None
) -> None:
    """Sign descriptor file FILE with this node's key and certificate.

    The certificate must be of the dataset's org and grant the publisher role.
    """
    from datanet.errors import InvalidInput
    from datanet.records.descriptor import sign_descriptor
    from datanet.records.descriptor_file import descriptor_from_toml
    from identity.certs import Role

    home = app.home()
    now = app.now()
    raw_text = read_input_file(file, max_size=_MAX_TOML)
    try:
        text = raw_text.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{file} is not UTF-8 text") from None
    target = out if out is not None else file.with_suffix(".dnd")
    if target.exists() and not force:
        raise InvalidInput(f"{target} exists; refusing to overwrite it (use --force)")
    desc = descriptor_from_toml(text, publisher_node=home.node_peer_id(), now=now)
    chain = home.membership_chain(now, org=desc.dataset_id.org, role=Role.PUBLISHER)
    key = unlock(home.load_node_key, passphrase_file, what="node key")
    data = sign_descriptor(desc, key, chain)
    write_output_file(target, data, force=force)
    doc = {
        "dataset_id": str(desc.dataset_id),
        "sequence": desc.sequence,
        "expires": desc.expires,
        "bytes": len(data),
        "file": str(target),
    }
    emit(
        app,
        doc,
        lambda: click.echo(
            f"Signed {desc.dataset_id} (sequence {desc.sequence}, {len(data)} bytes) into {target}"
        ),
    )


def _trust(app: CliContext, accept_any_org: bool) -> TrustStore:
    store = app.home().trust_store()
    if accept_any_org:
        store.accept_any = True
    return store


def _verified_doc(v: VerifiedDescriptor) -> dict[str, Any]:
    cert = v.certificate
    return {
        "valid": True,
        "dataset_id": str(v.descriptor.dataset_id),
        "title": v.descriptor.title,
        "sequence": v.descriptor.sequence,
        "publisher_node": str(v.descriptor.publisher_node),
        "expires": v.descriptor.expires,
        "valid_until": v.valid_until,
        "certificate": {
            "org": str(cert.org),
            "org_name": cert.org_name,
            "serial": cert.serial,
            "roles": sorted(r.value for r in cert.roles),
            "not_after": cert.not_after,
        },
    }


_ACCEPT_ANY = click.option(
    "--accept-any-org",
    is_flag=True,
    help="Accept a valid certificate of any org, not only trusted ones.",
)


@descriptor.command("verify")
@click.argument("file", type=_FILE)
@_ACCEPT_ANY
@json_option
@pass_app
def descriptor_verify(app: CliContext, file: Path, accept_any_org: bool) -> None:
    """Fully verify a signed descriptor FILE (signature, certificate, trust, expiry).

    Exits 0 if it is valid, 4 if a check fails, 3 if FILE is not a descriptor.
    """
    from datanet.records.descriptor import MAX_DESCRIPTOR_SIZE, verify_descriptor

    data = read_input_file(file, max_size=MAX_DESCRIPTOR_SIZE)
    v = verify_descriptor(data, _trust(app, accept_any_org), app.now())
    doc = _verified_doc(v)
    org_name = f" ({v.certificate.org_name})" if v.certificate.org_name else ""
    emit(
        app,
        doc,
        lambda: click.echo(
            f"valid: {v.descriptor.dataset_id}\n"
            f"  sequence {v.descriptor.sequence}, valid until {format_time(v.valid_until)}\n"
            f"  signed by {v.descriptor.publisher_node}\n"
            f"  certificate {v.certificate.serial} of {v.certificate.org}{org_name}"
        ),
    )


def _show_human(desc: Descriptor, status: str) -> None:
    d = desc.to_json()
    click.echo(f"{d.get('dataset_id')}  [{status}]")
    click.echo(f"  title:       {desc.title}")
    for key in ("description", "license", "version", "schema", "spatial"):
        value = d.get(key)
        if value:
            text = str(value).strip().replace("\n", " ")
            click.echo(f"  {key + ':':<12} {text[:200]}")
    if desc.keywords:
        click.echo(f"  keywords:    {', '.join(desc.keywords)}")
    if desc.themes:
        click.echo(f"  themes:      {', '.join(desc.themes)}")
    click.echo(f"  publisher:   {desc.publisher_node}")
    click.echo(f"  sequence:    {desc.sequence}")
    click.echo(f"  issued:      {format_time(desc.issued)}")
    click.echo(f"  modified:    {format_time(desc.modified)}")
    click.echo(f"  expires:     {format_time(desc.expires)}")
    policy = d.get("access_policy")
    if isinstance(policy, dict):
        click.echo(f"  access:      {policy.get('mode')}")
    for dist in d.get("distributions") or []:
        if isinstance(dist, dict):
            click.echo(f"  distribution: {dist.get('media_type')}  {dist.get('access')}")


@descriptor.command("show")
@click.argument("file", type=_FILE)
@_ACCEPT_ANY
@json_option
@pass_app
def descriptor_show(app: CliContext, file: Path, accept_any_org: bool) -> None:
    """Show a signed descriptor FILE and whether it verifies here.

    A descriptor whose signature is broken is refused (exit 4); one that fails
    only trust, certificate or expiry checks is shown, marked NOT VERIFIED.
    """
    from datanet.errors import VerificationError
    from datanet.records.descriptor import (
        MAX_DESCRIPTOR_SIZE,
        decode_descriptor_unverified,
        verify_descriptor,
    )

    data = read_input_file(file, max_size=MAX_DESCRIPTOR_SIZE)
    desc = decode_descriptor_unverified(data)
    error: dict[str, str] | None = None
    try:
        verify_descriptor(data, _trust(app, accept_any_org), app.now())
    except VerificationError as exc:
        error = {"code": exc.code, "message": str(exc)}
    doc = {"descriptor": desc.to_json(), "verified": error is None, "error": error}
    status = "verified" if error is None else f"NOT VERIFIED: {error['message']}"
    emit(app, doc, lambda: _show_human(desc, status))


@descriptor.command("export")
@click.argument("file", type=_FILE)
@click.option("--dcat", is_flag=True, help="Export as DCAT-3 JSON-LD (the only format today).")
@click.option("--out", type=_FILE, metavar="FILE", help="Write to FILE instead of stdout.")
@click.option("--force", is_flag=True, help="Replace the output file if it exists.")
@_ACCEPT_ANY
@click.option("--no-verify", is_flag=True, help="Export even if the descriptor does not verify.")
@pass_app
def descriptor_export(
    app: CliContext,
    *,
    file: Path,
    dcat: bool,
    out: Path | None,
    force: bool,
    accept_any_org: bool,
    no_verify: bool,
) -> None:
    """Export a signed descriptor FILE in another format (--dcat: DCAT-3 JSON-LD).

    The descriptor must verify (see `descriptor verify`) unless --no-verify.
    """
    if not dcat:
        raise click.UsageError("choose an export format: --dcat")
    from datanet.records.dcat import to_dcat_jsonld
    from datanet.records.descriptor import (
        MAX_DESCRIPTOR_SIZE,
        decode_descriptor_unverified,
        verify_descriptor,
    )

    data = read_input_file(file, max_size=MAX_DESCRIPTOR_SIZE)
    if no_verify:
        desc = decode_descriptor_unverified(data)
    else:
        desc = verify_descriptor(data, _trust(app, accept_any_org), app.now()).descriptor
    text = json.dumps(to_dcat_jsonld(desc), indent=2, ensure_ascii=False) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        write_output_file(out, text.encode("utf-8"), force=force)
