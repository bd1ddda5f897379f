"""Commands of the audit transparency log: ``datanet audit show|verify|prove|check-proof|…``.

Each node keeps an append-only Merkle-tree log of what it did (``docs/audit.md``).
These commands read it through the daemon (:mod:`datanet.client`), except
``check-proof``, which verifies a receipt file offline on any machine, with the trust
store of ``--data-dir`` when there is one.

Exit codes beyond the common table (``cli/app.py``): ``audit verify`` exits
:data:`EXIT_VERIFY` (4) when the log is damaged, naming the first bad entry;
``audit check-proof`` exits :data:`EXIT_INVALID_RECEIPT` (1) for an invalid receipt;
``audit alarms --fail-on-alarm`` exits :data:`EXIT_ALARM` (10) when there are alarms.

Invariants:
* At import time this module imports click and :mod:`cli` only; the client and the
  audit records are imported inside the commands (fast ``datanet --help``).
* With ``--json`` each command prints exactly one JSON document (``export`` prints
  JSON Lines, one entry per line, whatever the flag).
* Text that came from a log (details, reasons) is printed without control characters.
"""

# Imports of datanet inside commands are deliberate (fast start-up).

from __future__ import annotations

import base64
import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli.app import (
    EXIT_VERIFY,
    CliContext,
    cli,
    emit,
    format_time,
    json_option,
    pass_app,
    print_table,
)
from cli.node import client_for, progress

if TYPE_CHECKING:
    from datanet.client import AuditEntryInfo, ReceiptCheck

__all__ = [
    "EXIT_ALARM",
    "EXIT_INVALID_RECEIPT",
    "EXIT_VERIFY",
    "audit",
    "summary",
]

EXIT_INVALID_RECEIPT = 1
EXIT_ALARM = 10
MAX_RECEIPT_FILE = 128 * 1024
"""The largest receipt file ``check-proof`` reads (a receipt is at most 80 KiB)."""
_SUMMARY_WIDTH = 72
_KINDS = (
    "publish",
    "withdraw",
    "request_received",
    "request_forwarded",
    "request_answered",
    "decision",
    "grant",
    "grant_revoked",
    "approval",
    "denial",
    "cert_change",
    "trust_change",
)


def _clean(text: str) -> str:
    """``text`` without control characters (log contents are not to steer the terminal)."""
    return "".join(c if c.isprintable() else "?" for c in text)


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def summary(details: Mapping[str, Any], width: int = _SUMMARY_WIDTH) -> str:
    """A one-line summary of an entry's details: ``key=value`` pairs, shortened."""
    parts = []
    for name in sorted(details):
        value = details[name]
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        if len(text) > 24 and name in ("request", "grant", "from", "to", "peer"):
            text = text[:12] + "…"
        parts.append(f"{name}={text}")
    line = _clean(" ".join(parts)) or "-"
    return line if len(line) <= width else line[: width - 1] + "…"


def _entry_json(e: AuditEntryInfo) -> dict[str, Any]:
    """The API's entry shape (``record`` base64)."""
    doc: dict[str, Any] = _jsonable(e)
    return doc


@cli.group()
def audit() -> None:
    """The node's tamper-evident audit log: show, verify, prove, export, alarms."""


@audit.command("show")
@click.option(
    "--since",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    metavar="N",
    help="Start at entry N.",
)
@click.option(
    "--kind",
    type=click.Choice(_KINDS),
    metavar="K",
    help="Only entries of this kind (publish, grant, decision, …).",
)
@click.option(
    "--limit",
    type=click.IntRange(1, 1000),
    default=100,
    show_default=True,
    metavar="N",
    help="Most entries to show.",
)
@json_option
@pass_app
def audit_show(app: CliContext, since: int, kind: str | None, limit: int) -> None:
    """List entries of this node's audit log, oldest first."""
    with client_for(app) as client:
        entries = client.audit_entries(since, kind, limit)
    rows = [[str(e.index), format_time(e.timestamp), e.kind, summary(e.details)] for e in entries]
    emit(
        app,
        [_entry_json(e) for e in entries],
        lambda: print_table(
            "audit log", ["#", "time", "kind", "summary"], rows, empty="no audit entries"
        ),
    )


@audit.command("verify")
@json_option
@click.pass_context
def audit_verify(ctx: click.Context) -> None:
    """Recompute the whole log and check every signed head.

    Exit status: 0 intact, 4 damaged (the first bad entry is named: a row deleted,
    edited or moved, or a history that no signed head matches).
    """
    app = ctx.ensure_object(CliContext)
    with client_for(app) as client, progress(app, "verifying the audit log…"):
        report = client.audit_verify()

    def human() -> None:
        if report.ok:
            click.echo(
                f"ok: {report.size} entries recomputed, {report.heads_checked} signed heads "
                f"match (root {report.root[:16]}…)"
            )
        else:
            click.echo(f"DAMAGED: first bad entry {report.first_bad_index}")
            click.echo(f"  reason    {_clean(report.reason or '?')}")
            click.echo(
                f"  checked   {report.entries_checked} of {report.size} entries, "
                f"{report.heads_checked} heads matched"
            )

    emit(app, _jsonable(report), human)
    if not report.ok:
        ctx.exit(EXIT_VERIFY)


@audit.command("prove")
@click.argument("entry", type=click.IntRange(0), metavar="ENTRY")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Write the receipt here (default: print it as base64).",
)
@click.option("--force", is_flag=True, help="Replace an existing --out file.")
@json_option
@pass_app
def audit_prove(app: CliContext, entry: int, out: Path | None, force: bool) -> None:
    """Make a receipt for ENTRY: the signed head, the inclusion proof, the entry, cosignatures.

    Anyone can check it offline with `datanet audit check-proof FILE`.
    """
    from cli.app import write_output_file

    with client_for(app) as client:
        proof = client.audit_prove(entry)
    if out is not None:
        write_output_file(out, proof.receipt, force=force)
    doc = {**_jsonable(proof), "written": None if out is None else str(out)}

    def human() -> None:
        click.echo(f"entry {proof.index} is in the log's head of {proof.size} entries")
        click.echo(f"  root      {proof.root}")
        if out is not None:
            click.echo(f"  written   {out} ({len(proof.receipt)} bytes)")
        else:
            click.echo(base64.b64encode(proof.receipt).decode("ascii"))

    emit(app, doc, human)


def _trust_for(app: CliContext) -> tuple[Any, str | None]:
    """The trust store of the data directory when it has one, and where it came from."""
    home = app.home()
    if not home.trust_path.exists():
        return None, None
    return home.trust_store(), str(home.trust_path)


def _print_check(check: ReceiptCheck, file: Path, trust_file: str | None) -> None:
    if not check.valid:
        click.echo(f"invalid: {file}: {check.error_code}: {_clean(check.error_message or '')}")
        return
    click.echo(f"valid: {file}")
    click.echo(f"  entry     {check.index}: {check.kind}, {format_time(check.timestamp or 0)}")
    click.echo(f"  details   {summary(check.details)}")
    click.echo(f"  log       node {check.log_node} of {check.log_org}")
    click.echo(
        f"  head      {check.size} entries, signed {format_time(check.head_timestamp or 0)}, "
        f"root {(check.root or '')[:16]}…"
    )
    if check.witness_orgs:
        click.echo(f"  witnesses {', '.join(check.witness_orgs)}")
    else:
        click.echo("  witnesses none of another organization")
    if trust_file is None:
        click.echo(
            "  note      hashes and signatures checked; the organizations were NOT checked "
            "against a trust store (no trust.toml in the data directory)"
        )
    else:
        click.echo(f"  trust     organizations checked against {trust_file}")


@audit.command("check-proof")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE")
@click.option(
    "--witnesses",
    "min_witnesses",
    type=click.IntRange(0, 8),
    default=0,
    show_default=True,
    metavar="N",
    help="Demand cosignatures by at least N organizations other than the log's.",
)
@click.option(
    "--witness-org",
    "witness_orgs",
    multiple=True,
    metavar="ORG",
    help="Demand a cosignature by this organization (did:key:…); repeatable.",
)
@json_option
@click.pass_context
def audit_check_proof(
    ctx: click.Context, file: Path, min_witnesses: int, witness_orgs: tuple[str, ...]
) -> None:
    """Verify a receipt FILE offline (no daemon needed).

    Checks the log's signed head, the inclusion proof of the entry and the witnesses'
    cosignatures; the organizations are checked against the trust store of the data
    directory when there is one, else only hashes and signatures are. With
    --witnesses or --witness-org, a receipt whose head was not cosigned by enough
    other organizations (or by the ones named) is invalid: `datanet audit prove`
    again later, once witnesses have checked a head that covers the entry.

    Exit status: 0 valid, 1 invalid (the reason is printed).
    """
    from cli.app import read_input_file
    from datanet.client import check_receipt

    app = ctx.ensure_object(CliContext)
    raw = read_input_file(file, max_size=MAX_RECEIPT_FILE)
    trust, trust_file = _trust_for(app)
    check = check_receipt(raw, trust, now=app.now())
    if check.valid:
        others = {o for o in check.witness_orgs if o != check.log_org}
        missing = sorted(set(witness_orgs) - others)
        if len(others) < min_witnesses or missing:
            check = dataclasses.replace(
                check,
                valid=False,
                error_code="not_witnessed",
                error_message=(
                    f"the head is cosigned by {len(others)} other organization(s)"
                    + (f"; missing {', '.join(missing)}" if missing else "")
                    + (f"; {min_witnesses} demanded" if len(others) < min_witnesses else "")
                ),
            )
    doc = {**_jsonable(check), "trust_store": trust_file}
    emit(app, doc, lambda: _print_check(check, file, trust_file))
    if not check.valid:
        ctx.exit(EXIT_INVALID_RECEIPT)


@audit.command("export")
@click.option(
    "--since",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    metavar="N",
    help="Start at entry N.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Write the JSON Lines here (default: standard output).",
)
@click.option("--force", is_flag=True, help="Replace an existing --out file.")
@pass_app
def audit_export(app: CliContext, since: int, out: Path | None, force: bool) -> None:
    """Export the log as JSON Lines: one entry object per line (the API's entry shape)."""
    from datanet.errors import InvalidInput

    with client_for(app) as client:
        if out is None:
            for e in client.audit_export(since):
                sys.stdout.write(json.dumps(_entry_json(e), sort_keys=True) + "\n")
            sys.stdout.flush()
            return
        try:
            fh = out.open("w" if force else "x", encoding="utf-8")
        except FileExistsError:
            raise InvalidInput(f"{out} exists; refusing to overwrite it (use --force)") from None
        count = 0
        with fh:
            for e in client.audit_export(since):
                fh.write(json.dumps(_entry_json(e), sort_keys=True) + "\n")
                count += 1
    click.echo(f"exported {count} entries to {out}", err=True)


@audit.command("alarms")
@click.option(
    "--limit",
    type=click.IntRange(1, 1000),
    default=100,
    show_default=True,
    metavar="N",
    help="Most alarms to show.",
)
@click.option("--fail-on-alarm", is_flag=True, help="Exit 10 when there is any alarm.")
@json_option
@click.pass_context
def audit_alarms(ctx: click.Context, limit: int, fail_on_alarm: bool) -> None:
    """Alarms this node raised while witnessing other nodes' logs, newest first.

    An alarm means another node's log shrank, forked (two heads of one size with
    different roots) or failed a proof: see docs/audit.md for what to do.
    Exit status: 0 (even with alarms), or 10 with --fail-on-alarm when there are any.
    """
    app = ctx.ensure_object(CliContext)
    with client_for(app) as client:
        alarms = client.audit_alarms(limit)

    def human() -> None:
        if not alarms:
            click.echo("no alarms")
            return
        click.echo(f"ALARM: {len(alarms)} alarm{'s' if len(alarms) != 1 else ''}")
        print_table(
            "",
            ["time", "kind", "log node", "log org", "detail"],
            [
                [
                    format_time(a.at),
                    a.kind.upper(),
                    a.log_node,
                    a.log_org or "?",
                    _clean(a.detail),
                ]
                for a in alarms
            ],
        )

    emit(app, _jsonable(alarms), human)
    if alarms and fail_on_alarm:
        ctx.exit(EXIT_ALARM)


@audit.command("head")
@click.option("--fresh", is_flag=True, help="Sign a new head now.")
@json_option
@pass_app
def audit_head(app: CliContext, fresh: bool) -> None:
    """The latest signed tree head of this node's log, with the witnesses' cosignatures."""
    with client_for(app) as client:
        head = client.audit_head(fresh)

    def human() -> None:
        click.echo(f"head      {head.size} entries, signed {format_time(head.timestamp)}")
        click.echo(f"  root      {head.root}")
        click.echo(f"  node      {head.node} of {head.org or '?'}")
        for c in head.cosignatures:
            click.echo(f"  cosigned  by {c.witness} of {c.org}, {format_time(c.at)}")
        if not head.cosignatures:
            click.echo("  cosigned  by no witness yet")

    emit(app, _jsonable(head), human)


@audit.command("witnessed")
@json_option
@pass_app
def audit_witnessed(app: CliContext) -> None:
    """The last head this node keeps of each other node's log it witnesses."""
    with client_for(app) as client:
        heads = client.audit_witnessed()
    rows: Sequence[list[str]] = [
        [
            h.log_node,
            h.log_org or "?",
            str(h.size),
            h.root[:16] + "…",
            format_time(h.checked_at),
            "yes" if h.cosigned else "no",
        ]
        for h in heads
    ]
    emit(
        app,
        _jsonable(heads),
        lambda: print_table(
            "witnessed logs",
            ["log node", "log org", "size", "root", "checked", "cosigned"],
            rows,
            empty="no witnessed logs",
        ),
    )
