"""Commands of access requests: ``datanet request``, ``requests``, ``grants``, ``purposes``.

A requester asks a dataset's owner for access (``datanet request ID --purpose P``);
the owner's operator works through the inbox (``datanet requests``, ``requests
approve|deny``); both sides list, show, verify and revoke signed grants (``datanet
grants``). Every command is one or a few calls of :mod:`datanet.client`.

Exit codes beyond the common table (``cli/app.py``): ``datanet request`` exits
:data:`EXIT_DENIED` (8) when the owner denied the request and :data:`EXIT_PENDING`
(9) when it is still waiting for the owner's operator (without ``--wait``, or when
``--timeout`` ran out); ``datanet grants verify`` exits 1 for an invalid grant.

Invariants:
* At import time this module imports click and :mod:`cli` only; the client is
  imported inside the commands (fast ``datanet --help``; never libp2p).
* Tables show ids abbreviated to their first 12 hex digits; every command takes a
  full id or a unique prefix of at least 8 hex digits.
* ``--wait`` never waits longer than ``--timeout`` (plus one call's margin), and
  asks again in slices so that no single HTTP call outlives the daemon's timeout.
* With ``--json`` each command prints exactly one JSON document (the decision for
  ``request``, even when it exits 8 or 9).
"""

# Imports of datanet inside commands are deliberate (fast start-up).

from __future__ import annotations

import base64
import dataclasses
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli.app import CliContext, cli, emit, format_time, json_option, pass_app, print_table
from cli.node import client_for, progress

if TYPE_CHECKING:
    from datanet.client import AccessOutcome, AccessRequestInfo, GrantInfo, RouteHop

__all__ = [
    "EXIT_DENIED",
    "EXIT_GRANTED",
    "EXIT_INVALID_GRANT",
    "EXIT_PENDING",
    "grants",
    "purposes",
    "request",
    "requests",
]

EXIT_GRANTED = 0
EXIT_INVALID_GRANT = 1
EXIT_DENIED = 8
EXIT_PENDING = 9
WAIT_SLICE = 25.0
"""Seconds one ``--wait`` call asks the daemon to wait (it caps this below its timeout)."""
_MIN_ROUND = 1.0
"""Shortest time between two asks when the daemon answers ``pending`` at once."""
_ID_WIDTH = 12


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


def _short_id(hex_id: str | None) -> str:
    return "-" if not hex_id else hex_id[:_ID_WIDTH]


def _short_node(peer: str) -> str:
    return peer if len(peer) <= 14 else f"{peer[:4]}…{peer[-6:]}"


def _short_org(org: str) -> str:
    text = org.removeprefix("did:key:")
    return text if len(text) <= 14 else f"{text[:4]}…{text[-6:]}"


def _short_dataset(dataset_id: str) -> str:
    """``dn://did:key:z6Mk…/name`` as ``dn://z6Mk…abcdef/name`` (tables)."""
    org, sep, name = dataset_id.removeprefix("dn://").partition("/")
    return f"dn://{_short_org(org)}{sep}{name}" if dataset_id.startswith("dn://") else dataset_id


def route_chain(route: Sequence[RouteHop]) -> str:
    """A route as ``node@org -> gw@org -> …`` with abbreviated ids."""
    return " -> ".join(f"{_short_node(h.node)}@{_short_org(h.org)}" for h in route) or "-"


def _owner_org(outcome: AccessOutcome) -> str:
    for hop in outcome.request.route:
        if hop.action == "decide":
            return hop.org
    text = outcome.request.dataset_id.removeprefix("dn://")
    return text.split("/", 1)[0]


def _days(seconds: int) -> str:
    days = seconds // 86400
    return f"{days} day{'s' if days != 1 else ''}"


def _print_grant(grant: GrantInfo, *, heading: str) -> None:
    click.echo(heading)
    click.echo(f"  grant     {grant.grant_id}")
    click.echo(f"  dataset   {grant.dataset_id} (sequence {grant.sequence})")
    click.echo(f"  purpose   {grant.purpose}")
    click.echo(
        f"  valid     {format_time(grant.not_before)} to {format_time(grant.not_after)} "
        f"({_days(grant.not_after - grant.not_before)})"
    )
    click.echo(f"  grantee   {grant.grantee_node} of {grant.grantee_org}")
    click.echo(f"  issuer    {grant.issuer_node} of {grant.issuer_org}")
    click.echo(f"  route     {route_chain(grant.route)}")
    if grant.revoked_at is not None:
        why = f": {grant.revocation_reason}" if grant.revocation_reason else ""
        click.echo(f"  revoked   {format_time(grant.revoked_at)}{why}")
    if grant.details:
        for name, value in sorted(grant.details.items()):
            click.echo(f"  {name:<9} {value}")


def _print_receipt(receipt: bytes | None) -> None:
    """One line on the owner's audit receipt of the decision (issue 11), when there is one."""
    if receipt is None:
        return
    from datanet.errors import DatanetError
    from datanet.records.audit import decode_receipt, open_tree_head

    try:
        parsed = decode_receipt(receipt)
        size = open_tree_head(parsed.head)[0].size
    except DatanetError as exc:
        click.echo(f"  receipt   unreadable ({exc})")
        return
    witnesses = len(parsed.cosignatures)
    click.echo(
        f"  receipt   entry {parsed.index} of the owner's audit log (tree size {size}, "
        f"{witnesses} witness cosignature{'s' if witnesses != 1 else ''}); logged here too"
    )


def _print_outcome(outcome: AccessOutcome, *, out: Path | None) -> None:
    req = outcome.request
    if outcome.grant is not None:
        _print_grant(outcome.grant, heading=f"granted: {req.dataset_id} for {req.purpose}")
        _print_receipt(outcome.receipt)
        if out is not None:
            click.echo(f"  written   {out}")
    elif outcome.denial is not None:
        denial = outcome.denial
        click.echo(f"denied: {req.dataset_id}: {denial.reason}")
        click.echo(f"  meaning   {denial.explanation}")
        if denial.message:
            click.echo(f"  message   {denial.message}")
        click.echo(f"  by        {denial.node} of {denial.org}, {format_time(denial.decided_at)}")
        click.echo(f"  route     {route_chain(denial.route)}")
        _print_receipt(outcome.receipt)
    else:
        rid = _short_id(req.request_id)
        click.echo(
            f"pending: request {rid} is waiting for approval by {_owner_org(outcome)}; "
            f"`datanet requests show {rid} --sent` asks again"
        )
        click.echo(f"  deadline  {format_time(req.deadline)}")
        click.echo(f"  route     {route_chain(req.route)}")


@cli.command("request")
@click.argument("dataset_id", metavar="ID")
@click.option(
    "--purpose",
    required=True,
    metavar="P",
    help="Why you need the data: a purpose id (`datanet purposes` lists them).",
)
@click.option(
    "--days",
    type=click.IntRange(1, 3650),
    default=30,
    show_default=True,
    help="How many days the grant should be valid.",
)
@click.option("--note", default="", metavar="TEXT", help="Free text for the owner's operator.")
@click.option("--wait", is_flag=True, help="Keep asking until decided or --timeout.")
@click.option(
    "--timeout",
    type=click.FloatRange(0, 86400),
    default=300.0,
    show_default=True,
    metavar="SECONDS",
    help="With --wait: give up after this long (the request stays pending).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Write the signed grant here when granted (0644).",
)
@click.option("--force", is_flag=True, help="Replace an existing --out file.")
@json_option
@click.pass_context
def request(
    ctx: click.Context,
    *,
    dataset_id: str,
    purpose: str,
    days: int,
    note: str,
    wait: bool,
    timeout: float,
    out: Path | None,
    force: bool,
) -> None:
    """Ask the owner of dataset ID (dn://did:key:…/name) for access.

    Prints the decision: granted (the grant, its validity, the route, access
    details), denied (the reason code, what it means, the owner's message) or
    pending (an operator of the owning organization must decide).

    Exit status: 0 granted, 8 denied, 9 still pending (without --wait, or after
    --timeout); the common codes otherwise (3 invalid purpose or days, 5 unknown
    dataset, 7 a gateway or the daemon unreachable).
    """
    from cli.app import write_output_file

    app = ctx.ensure_object(CliContext)
    deadline = time.monotonic() + timeout
    with client_for(app) as client, progress(app, f"asking for {dataset_id}…"):
        first = min(WAIT_SLICE, timeout) if wait else 0.0
        outcome = client.request_access(dataset_id, purpose, days=days, note=note, wait=first)
        while wait and outcome.state == "pending":
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            started = time.monotonic()
            outcome = client.refresh_request(
                outcome.request.request_id, wait=min(WAIT_SLICE, remaining)
            )
            pause = _MIN_ROUND - (time.monotonic() - started)
            if outcome.state == "pending" and pause > 0:
                time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
    written = None
    if outcome.grant is not None and out is not None:
        write_output_file(out, outcome.grant.envelope, force=force)
        written = out
    emit(app, _jsonable(outcome), lambda: _print_outcome(outcome, out=written))
    if outcome.state == "denied":
        ctx.exit(EXIT_DENIED)
    if outcome.state == "pending":
        ctx.exit(EXIT_PENDING)


# --- the owner's inbox: datanet requests ------------------------------------------------


def _request_rows(items: Sequence[AccessRequestInfo]) -> list[list[str]]:
    return [
        [
            _short_id(r.request_id),
            r.state if r.reason is None else f"{r.state} ({r.reason})",
            _short_dataset(r.dataset_id),
            r.purpose,
            str(r.days),
            _short_org(r.requester_org),
            format_time(r.created),
        ]
        for r in items
    ]


def _list_requests(
    app: CliContext, sent: bool, state: str | None, dataset: str | None, limit: int
) -> None:
    direction = "sent" if sent else "received"
    with client_for(app) as client:
        items = client.access_requests(direction, state, dataset, limit)
    emit(
        app,
        _jsonable(items),
        lambda: print_table(
            f"{direction} requests",
            ["id", "state", "dataset", "purpose", "days", "requester org", "created"],
            _request_rows(items),
            empty=f"no {direction} requests",
        ),
    )


def _list_options(func: Any) -> Any:
    for option in reversed(
        (
            click.option(
                "--sent", is_flag=True, help="Requests this node sent (default: received)."
            ),
            click.option(
                "--state",
                type=click.Choice(["pending", "granted", "denied", "failed"]),
                help="Only requests in this state.",
            ),
            click.option("--dataset", metavar="ID", help="Only requests for this dataset."),
            click.option(
                "--limit",
                type=click.IntRange(1, 1000),
                default=100,
                show_default=True,
                help="Most requests to list.",
            ),
            json_option,
        )
    ):
        func = option(func)
    return func


@cli.group("requests", invoke_without_command=True)
@_list_options
@click.pass_context
def requests(
    ctx: click.Context, sent: bool, state: str | None, dataset: str | None, limit: int
) -> None:
    """Access requests: the operator's inbox (received) by default, or --sent.

    Without a subcommand, lists them (newest first), like `datanet requests list`.
    """
    if ctx.invoked_subcommand is None:
        _list_requests(ctx.ensure_object(CliContext), sent, state, dataset, limit)


@requests.command("list")
@_list_options
@pass_app
def requests_list(
    app: CliContext, sent: bool, state: str | None, dataset: str | None, limit: int
) -> None:
    """List access requests received (the inbox) or --sent, newest first."""
    _list_requests(app, sent, state, dataset, limit)


def _print_request(r: AccessRequestInfo) -> None:
    click.echo(f"request   {r.request_id} ({r.direction})")
    click.echo(f"  state     {r.state}" + (f" ({r.reason})" if r.reason else ""))
    if r.message:
        click.echo(f"  message   {r.message}")
    click.echo(f"  dataset   {r.dataset_id} (sequence {r.sequence})")
    click.echo(f"  purpose   {r.purpose}, {r.days} day{'s' if r.days != 1 else ''}")
    if r.note:
        click.echo(f"  note      {r.note}")
    click.echo(f"  requester {r.requester_node} of {r.requester_org}")
    click.echo(f"  created   {format_time(r.created)}, deadline {format_time(r.deadline)}")
    if r.decided_at is not None:
        click.echo(f"  decided   {format_time(r.decided_at)} by {r.decided_by or '?'}")
    if r.grant_id:
        click.echo(f"  grant     {r.grant_id}")
    click.echo(f"  route     {route_chain(r.route)}")


@requests.command("show")
@click.argument("request_id", metavar="ID")
@click.option("--sent", is_flag=True, help="A request this node sent (default: received).")
@json_option
@pass_app
def requests_show(app: CliContext, request_id: str, sent: bool) -> None:
    """Show one access request (ID: hex, or a unique prefix of 8+ digits).

    A sent request that is still pending is asked about again at its owner (through
    the same gateways), so this shows the owner's decision as soon as there is one.
    """
    from datanet.errors import DatanetError

    with client_for(app) as client:
        item = client.access_request(request_id, "sent" if sent else "received")
        if sent and item.state == "pending":
            try:
                item = client.refresh_request(item.request_id, wait=0.0).request
            except DatanetError as exc:
                click.echo(
                    f"note: the owner could not be asked again ({exc}); "
                    "this is the last state known here",
                    err=True,
                )
    emit(app, _jsonable(item), lambda: _print_request(item))


@requests.command("approve")
@click.argument("request_id", metavar="ID")
@click.option(
    "--days",
    type=click.IntRange(1, 3650),
    default=None,
    help="Grant fewer days than requested [default: as requested].",
)
@json_option
@pass_app
def requests_approve(app: CliContext, request_id: str, days: int | None) -> None:
    """Approve a pending request: sign the grant and send it back to the requester."""
    with client_for(app) as client, progress(app, "approving…"):
        outcome = client.approve_request(request_id, days)

    def human() -> None:
        grant = outcome.grant
        assert grant is not None
        click.echo(
            f"approved {_short_id(outcome.request.request_id)}: grant {_short_id(grant.grant_id)} "
            f"for {grant.grantee_org}, valid until {format_time(grant.not_after)}"
        )

    emit(app, _jsonable(outcome), human)


@requests.command("deny")
@click.argument("request_id", metavar="ID")
@click.option(
    "--reason", required=True, metavar="TEXT", help="Why, in words the requester will read."
)
@json_option
@pass_app
def requests_deny(app: CliContext, request_id: str, reason: str) -> None:
    """Deny a pending request; the requester sees `denied_by_operator` and your reason."""
    with client_for(app) as client, progress(app, "denying…"):
        outcome = client.deny_request(request_id, reason)
    emit(
        app,
        _jsonable(outcome),
        lambda: click.echo(
            f"denied {_short_id(outcome.request.request_id)} ({outcome.request.dataset_id}): "
            f"{reason}"
        ),
    )


# --- grants ---------------------------------------------------------------------------


def _grant_status(grant: GrantInfo, now: int) -> str:
    if grant.revoked_at is not None:
        return "revoked"
    if now >= grant.not_after:
        return "expired"
    return "active"


def _list_grants(
    app: CliContext, received: bool, dataset: str | None, active: bool, limit: int
) -> None:
    role = "received" if received else "issued"
    with client_for(app) as client:
        items = client.grants(role, dataset, active, limit)
    other = "issuer org" if received else "grantee org"
    rows = [
        [
            _short_id(g.grant_id),
            _grant_status(g, app.now()),
            _short_dataset(g.dataset_id),
            g.purpose,
            _short_org(g.issuer_org if received else g.grantee_org),
            format_time(g.not_after),
        ]
        for g in items
    ]
    emit(
        app,
        _jsonable(items),
        lambda: print_table(
            f"{role} grants",
            ["id", "status", "dataset", "purpose", other, "valid until"],
            rows,
            empty=f"no {role} grants",
        ),
    )


def _grant_list_options(func: Any) -> Any:
    for option in reversed(
        (
            click.option(
                "--received", is_flag=True, help="Grants this node received (default: issued)."
            ),
            click.option("--dataset", metavar="ID", help="Only grants for this dataset."),
            click.option("--active", is_flag=True, help="Only grants neither expired nor revoked."),
            click.option(
                "--limit",
                type=click.IntRange(1, 1000),
                default=100,
                show_default=True,
                help="Most grants to list.",
            ),
            json_option,
        )
    ):
        func = option(func)
    return func


@cli.group("grants", invoke_without_command=True)
@_grant_list_options
@click.pass_context
def grants(
    ctx: click.Context, received: bool, dataset: str | None, active: bool, limit: int
) -> None:
    """Signed grants: issued by this node's organization by default, or --received.

    Without a subcommand, lists them (newest first), like `datanet grants list`.
    """
    if ctx.invoked_subcommand is None:
        _list_grants(ctx.ensure_object(CliContext), received, dataset, active, limit)


@grants.command("list")
@_grant_list_options
@pass_app
def grants_list(
    app: CliContext, received: bool, dataset: str | None, active: bool, limit: int
) -> None:
    """List grants issued (or --received), newest first."""
    _list_grants(app, received, dataset, active, limit)


@grants.command("show")
@click.argument("grant_id", metavar="ID")
@click.option("--details", is_flag=True, help="Decrypt a received grant's access details.")
@json_option
@pass_app
def grants_show(app: CliContext, grant_id: str, details: bool) -> None:
    """Show one grant (ID: hex, or a unique prefix of 8+ digits)."""
    with client_for(app) as client:
        grant = client.grant(grant_id, details)
    heading = f"{grant.role} grant, {_grant_status(grant, app.now())}"
    emit(app, _jsonable(grant), lambda: _print_grant(grant, heading=heading))


@grants.command("verify")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE")
@click.option(
    "--deep",
    is_flag=True,
    help="Also verify the request's and every hop's signature and certificate.",
)
@json_option
@click.pass_context
def grants_verify(ctx: click.Context, file: Path, deep: bool) -> None:
    """Verify the signed grant in FILE (what `datanet request --out` wrote).

    Exit status: 0 valid, 1 invalid (the reason is printed).
    """
    from cli.app import read_input_file

    app = ctx.ensure_object(CliContext)
    raw = read_input_file(file, max_size=64 * 1024)
    with client_for(app) as client:
        check = client.verify_grant(raw, deep)

    def human() -> None:
        if check.valid and check.grant is not None:
            _print_grant(check.grant, heading=f"valid{' (deep)' if deep else ''}: {file}")
        elif check.valid:
            click.echo(f"valid: {file}")
        else:
            click.echo(f"invalid: {file}: {check.error_code}: {check.error_message}")

    error = None
    if check.error_code is not None:
        error = {"code": check.error_code, "message": check.error_message or ""}
    doc = {
        "valid": check.valid,
        "deep": check.deep,
        "error": error,
        "grant": _jsonable(check.grant),
    }
    emit(app, doc, human)  # the API's GrantCheck shape
    if not check.valid:
        ctx.exit(EXIT_INVALID_GRANT)


@grants.command("revoke")
@click.argument("grant_id", metavar="ID")
@click.option("--reason", default="", metavar="TEXT", help="Why, for the grantee.")
@json_option
@pass_app
def grants_revoke(app: CliContext, grant_id: str, reason: str) -> None:
    """Revoke a grant this node's organization issued, and publish the revocation."""
    with client_for(app) as client, progress(app, "revoking…"):
        grant = client.revoke_grant(grant_id, reason)
    emit(
        app,
        _jsonable(grant),
        lambda: click.echo(
            f"revoked grant {_short_id(grant.grant_id)} ({grant.dataset_id}, {grant.grantee_org})"
        ),
    )


@cli.command("purposes")
@json_option
@pass_app
def purposes(app: CliContext) -> None:
    """List the purposes a request may declare (W3C Data Privacy Vocabulary terms)."""
    with client_for(app) as client:
        items = client.purposes()
    emit(
        app,
        _jsonable(items),
        lambda: print_table(
            "purposes",
            ["id", "label", "parent"],
            [[p.id, p.label, p.parent or "-"] for p in items],
            empty="no purposes",
        ),
    )
