"""Access requests and grants on SQLite: the owner's inbox, the requester's outbox, issued grants.

Three tables, in their own file or in the node's database:

* ``access_incoming`` - requests for datasets this node decides (the owner's
  approval queue): ``pending`` until the policy, an operator or the deadline
  decides them ``granted`` or ``denied``;
* ``access_outgoing`` - requests this node sent, with the X25519 private key
  the access details are sealed to (``reply_secret``), until an answer arrives
  (``granted``, ``denied``) or the route fails (``failed``);
* ``access_grants`` - grants this node issued, and their revocations.

Every signed record (request, trace entries, grant, denial, revocation) is
stored verbatim: the exact bytes that were verified are the bytes handed on.
The trace is one MessagePack list of the entries' bytes.

Durability: WAL with ``synchronous=FULL`` (:mod:`datanet.store.db`); a method
that writes returns after its transaction committed, so an acknowledged request,
decision or grant survives a crash. The file is created ``0600`` (and tightened
to it when looser) because ``reply_secret`` is a private key.

Invariants:
* A request id is stored at most once per table: adding it again changes nothing.
* An incoming request is decided at most once: :meth:`AccessStore.decide` is one
  ``UPDATE … WHERE state = 'pending'``; any other state raises
  :class:`~datanet.errors.Conflict` and leaves the row exactly as it was.
  Likewise a grant is revoked at most once, and an outgoing request that got its
  answer (``granted``/``denied``) never changes again.
* Every value is bounded and checked before it is written (text printable,
  blobs within :data:`MAX_RECORD`); ``sqlite3`` errors leave as
  :class:`~datanet.errors.StorageError`, and a damaged row met on reading raises
  ``StorageError`` naming it.
* The schema is versioned in its own ``access_meta`` table, so the store can
  share the node's database file.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from datanet.errors import Conflict, DatanetError, InvalidInput, NotFound, StorageError
from datanet.store.db import connect, migrate, storage_errors, transaction
from identity.encoding import pack, unpack
from routing.access import MAX_HOPS

__all__ = [
    "ACCESS_SCHEMA_VERSION",
    "INCOMING_STATES",
    "MAX_LIST",
    "MAX_RECORD",
    "OUTGOING_STATES",
    "AccessStore",
    "GrantRow",
    "IncomingRow",
    "OutgoingRow",
]

MAX_RECORD = 64 * 1024
"""The largest signed record (request, trace entry, grant, denial, revocation) stored."""
MAX_LIST = 10_000
"""The most rows one ``list_*`` call returns."""
MAX_ID = 64
"""The longest request or grant id, in bytes."""
MIN_PREFIX = 8
"""The shortest hex prefix :meth:`AccessStore.find_incoming` and friends accept."""
MAX_TEXT = 1024
"""The longest message stored (failover messages name every hop that failed)."""
MAX_NOTE = 512
MAX_NAME = 512
_MAX_TRACE_BLOB = MAX_HOPS * MAX_RECORD + 64

INCOMING_STATES = ("pending", "granted", "denied")
OUTGOING_STATES = ("pending", "granted", "denied", "failed")
DECIDED_BY = ("policy", "operator", "deadline")
_REASON = re.compile(r"[a-z][a-z0-9_]{0,63}")
_HEX = re.compile(r"[0-9a-f]+")

_V1 = """
CREATE TABLE access_incoming (
    request_id      BLOB PRIMARY KEY,         -- sha256 of the request envelope
    dataset         TEXT NOT NULL,            -- dn://<org>/<name>
    requester_node  TEXT NOT NULL,            -- 12D3KooW…
    requester_org   TEXT NOT NULL,            -- did:key:z6Mk…
    purpose         TEXT NOT NULL,
    validity_days   INTEGER NOT NULL,
    note            TEXT NOT NULL,
    received_at     INTEGER NOT NULL,
    deadline        INTEGER NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'granted', 'denied')),
    request         BLOB NOT NULL,            -- the signed request, verbatim
    trace           BLOB NOT NULL,            -- MessagePack list of trace entries, verbatim
    decision        BLOB,                     -- the signed grant or denial; NULL while pending
    reason          TEXT,                     -- denial reason code; NULL for grants
    message         TEXT NOT NULL,
    decided_at      INTEGER,
    decided_by      TEXT CHECK (decided_by IN ('policy', 'operator', 'deadline')),
    grant_id        BLOB
);
CREATE INDEX access_incoming_by_state ON access_incoming (state, received_at);
CREATE INDEX access_incoming_by_dataset ON access_incoming (dataset, received_at);
CREATE INDEX access_incoming_due ON access_incoming (state, deadline);
CREATE TABLE access_outgoing (
    request_id      BLOB PRIMARY KEY,
    dataset         TEXT NOT NULL,
    purpose         TEXT NOT NULL,
    validity_days   INTEGER NOT NULL,
    note            TEXT NOT NULL,
    created         INTEGER NOT NULL,
    deadline        INTEGER NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'granted', 'denied', 'failed')),
    request         BLOB NOT NULL,
    reply_secret    BLOB NOT NULL,            -- X25519 private key (32 bytes)
    decision        BLOB,
    reason          TEXT,
    message         TEXT NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX access_outgoing_by_state ON access_outgoing (state, created);
CREATE TABLE access_grants (
    grant_id        BLOB PRIMARY KEY,
    request_id      BLOB NOT NULL,
    dataset         TEXT NOT NULL,
    grantee_node    TEXT NOT NULL,
    grantee_org     TEXT NOT NULL,
    purpose         TEXT NOT NULL,
    not_before      INTEGER NOT NULL,
    not_after       INTEGER NOT NULL,
    issued_at       INTEGER NOT NULL,
    grant           BLOB NOT NULL,            -- the signed grant, verbatim
    revoked_at      INTEGER,
    revocation      BLOB,                     -- the signed revocation, verbatim
    revocation_reason TEXT NOT NULL
);
CREATE INDEX access_grants_by_dataset ON access_grants (dataset, issued_at);
CREATE INDEX access_grants_by_issued ON access_grants (issued_at);
"""

_MIGRATIONS: tuple[str, ...] = (_V1,)
ACCESS_SCHEMA_VERSION = len(_MIGRATIONS)


# -- rows --------------------------------------------------------------------------------


@dataclass(frozen=True)
class IncomingRow:
    """A request for a dataset this node decides.

    Attributes:
        request_id: the request's id (sha256 of ``request``).
        dataset: the dataset id (``dn://…``).
        requester_node, requester_org: who asks (text forms).
        purpose: the declared purpose (vocabulary id).
        validity_days: the validity asked for.
        note: the requester's free-text note.
        received_at: when this node received it.
        deadline: the request's deadline; a pending request is denied after it.
        state: ``pending``, ``granted`` or ``denied``.
        request: the signed request, verbatim.
        trace: the signed trace entries it arrived with, verbatim, in order.
        decision: the signed grant or denial; None while pending.
        reason: the denial's reason code; None for a grant or while pending.
        message: for people: why it waits, or what was decided.
        decided_at: when it was decided.
        decided_by: ``policy``, ``operator`` or ``deadline``.
        grant_id: the grant issued, when granted.
    """

    request_id: bytes
    dataset: str
    requester_node: str
    requester_org: str
    purpose: str
    validity_days: int
    note: str
    received_at: int
    deadline: int
    state: str
    request: bytes
    trace: tuple[bytes, ...] = ()
    decision: bytes | None = None
    reason: str | None = None
    message: str = ""
    decided_at: int | None = None
    decided_by: str | None = None
    grant_id: bytes | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe summary (ids as hex; the signed bytes are left out)."""
        return {
            "request_id": self.request_id.hex(),
            "dataset": self.dataset,
            "requester_node": self.requester_node,
            "requester_org": self.requester_org,
            "purpose": self.purpose,
            "validity_days": self.validity_days,
            "note": self.note,
            "received_at": self.received_at,
            "deadline": self.deadline,
            "state": self.state,
            "hops": len(self.trace),
            "reason": self.reason,
            "message": self.message,
            "decided_at": self.decided_at,
            "decided_by": self.decided_by,
            "grant_id": None if self.grant_id is None else self.grant_id.hex(),
        }


@dataclass(frozen=True)
class OutgoingRow:
    """A request this node sent, and what became of it.

    Attributes:
        request_id: the request's id.
        dataset, purpose, validity_days, note: what was asked.
        created: when the request was signed.
        deadline: its deadline.
        state: ``pending``, ``granted``, ``denied`` or ``failed`` (no route or no
            hop answered; a new attempt may follow).
        request: the signed request, verbatim.
        reply_secret: the X25519 private key the access details are sealed to.
        decision: the signed grant or denial, once it came.
        reason: the denial's reason code (or the refusal code when ``failed``).
        message: for people.
        updated_at: when the state last changed.
    """

    request_id: bytes
    dataset: str
    purpose: str
    validity_days: int
    note: str
    created: int
    deadline: int
    state: str
    request: bytes
    reply_secret: bytes
    decision: bytes | None = None
    reason: str | None = None
    message: str = ""
    updated_at: int = 0

    def __repr__(self) -> str:  # never print the private key
        return (
            f"OutgoingRow(request_id={self.request_id.hex()}, dataset={self.dataset!r}, "
            f"state={self.state!r})"
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe summary (without the signed bytes and without the private key)."""
        return {
            "request_id": self.request_id.hex(),
            "dataset": self.dataset,
            "purpose": self.purpose,
            "validity_days": self.validity_days,
            "note": self.note,
            "created": self.created,
            "deadline": self.deadline,
            "state": self.state,
            "reason": self.reason,
            "message": self.message,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class GrantRow:
    """A grant this node issued.

    Attributes:
        grant_id: the grant's id.
        request_id: the request it answers.
        dataset, grantee_node, grantee_org, purpose: what it grants to whom.
        not_before, not_after: its validity window.
        issued_at: when it was signed.
        grant: the signed grant, verbatim.
        revoked_at: when it was revoked; None while it stands.
        revocation: the signed revocation, verbatim.
        revocation_reason: the operator's reason ("" while it stands).
    """

    grant_id: bytes
    request_id: bytes
    dataset: str
    grantee_node: str
    grantee_org: str
    purpose: str
    not_before: int
    not_after: int
    issued_at: int
    grant: bytes
    revoked_at: int | None = None
    revocation: bytes | None = None
    revocation_reason: str = ""

    def active_at(self, t: int) -> bool:
        """Within its window at ``t`` and not revoked by then."""
        revoked = self.revoked_at is not None and self.revoked_at <= t
        return self.not_before <= t < self.not_after and not revoked

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe summary (ids as hex; the signed bytes are left out)."""
        return {
            "grant_id": self.grant_id.hex(),
            "request_id": self.request_id.hex(),
            "dataset": self.dataset,
            "grantee_node": self.grantee_node,
            "grantee_org": self.grantee_org,
            "purpose": self.purpose,
            "not_before": self.not_before,
            "not_after": self.not_after,
            "issued_at": self.issued_at,
            "revoked_at": self.revoked_at,
            "revocation_reason": self.revocation_reason,
        }


# -- checks --------------------------------------------------------------------------------


def _int(name: str, value: object, low: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value < 2**62:
        raise InvalidInput(f"{name} must be an integer from {low}")
    return value


def _id(name: str, value: object) -> bytes:
    if not isinstance(value, bytes) or not 1 <= len(value) <= MAX_ID:
        raise InvalidInput(f"{name} must be 1 to {MAX_ID} bytes")
    return value


def _blob(name: str, value: object, *, optional: bool = False) -> bytes | None:
    if value is None and optional:
        return None
    if not isinstance(value, bytes) or not 1 <= len(value) <= MAX_RECORD:
        raise InvalidInput(f"{name} must be 1 to {MAX_RECORD} bytes")
    return value


def _text(name: str, value: object, limit: int, *, multiline: bool = False) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidInput(f"{name} must be text of at most {limit} characters")
    for ch in value:
        if not ch.isprintable() and not (multiline and ch in "\n\t"):
            raise InvalidInput(f"{name} contains a control character")
    return value


def _name(name: str, value: object) -> str:
    text = _text(name, value, MAX_NAME)
    if not text:
        raise InvalidInput(f"{name} must not be empty")
    return text


def _reason(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _REASON.fullmatch(value):
        raise InvalidInput("reason must be a code like 'purpose_not_allowed'")
    return value


def _limit(limit: object) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIST:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIST}")
    return limit


def _prefix_range(id_or_prefix: object, what: str) -> tuple[bytes, bytes]:
    """The blob range ``[low, high]`` holding every id that starts with the hex prefix."""
    if not isinstance(id_or_prefix, str):
        raise InvalidInput(f"{what} id must be hex text")
    text = id_or_prefix.strip().lower()
    if not MIN_PREFIX <= len(text) <= 2 * MAX_ID or not _HEX.fullmatch(text):
        raise InvalidInput(
            f"{what} id must be at least {MIN_PREFIX} hex digits (a prefix of the id), "
            f"got {str(id_or_prefix)[:80]!r}"
        )
    odd = len(text) % 2 == 1
    low = bytes.fromhex(text + "0" if odd else text)
    high = bytes.fromhex(text + "f" if odd else text) + b"\xff" * MAX_ID
    return low, high


def _pack_trace(trace: object) -> bytes:
    if not isinstance(trace, tuple | list) or len(trace) > MAX_HOPS:
        raise InvalidInput(f"a trace holds at most {MAX_HOPS} entries")
    for i, entry in enumerate(trace):
        _blob(f"trace entry {i}", entry)
    return pack([bytes(e) for e in trace])


def _unpack_trace(blob: bytes, request_id: bytes) -> tuple[bytes, ...]:
    try:
        items = unpack(blob, max_size=_MAX_TRACE_BLOB, max_items=MAX_HOPS)
    except DatanetError as exc:
        raise StorageError(f"the trace of request {request_id.hex()} is damaged: {exc}") from None
    if not isinstance(items, list) or not all(isinstance(e, bytes) for e in items):
        raise StorageError(f"the trace of request {request_id.hex()} is damaged")
    return tuple(items)


def _opt_bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


_INCOMING_COLS = (
    "request_id, dataset, requester_node, requester_org, purpose, validity_days, note, "
    "received_at, deadline, state, request, trace, decision, reason, message, decided_at, "
    "decided_by, grant_id"
)
_OUTGOING_COLS = (
    "request_id, dataset, purpose, validity_days, note, created, deadline, state, request, "
    "reply_secret, decision, reason, message, updated_at"
)
_GRANT_COLS = (
    "grant_id, request_id, dataset, grantee_node, grantee_org, purpose, not_before, "
    "not_after, issued_at, grant, revoked_at, revocation, revocation_reason"
)


@contextlib.contextmanager
def _damaged(what: str) -> Iterator[None]:
    try:
        yield
    except (TypeError, ValueError) as exc:
        raise StorageError(f"{what} is damaged: {exc}") from None


def _incoming(row: Sequence[Any]) -> IncomingRow:
    rid = bytes(row[0])
    with _damaged(f"request {rid.hex()}"):
        return IncomingRow(
            request_id=rid,
            dataset=str(row[1]),
            requester_node=str(row[2]),
            requester_org=str(row[3]),
            purpose=str(row[4]),
            validity_days=int(row[5]),
            note=str(row[6]),
            received_at=int(row[7]),
            deadline=int(row[8]),
            state=str(row[9]),
            request=bytes(row[10]),
            trace=_unpack_trace(bytes(row[11]), rid),
            decision=_opt_bytes(row[12]),
            reason=None if row[13] is None else str(row[13]),
            message=str(row[14]),
            decided_at=None if row[15] is None else int(row[15]),
            decided_by=None if row[16] is None else str(row[16]),
            grant_id=_opt_bytes(row[17]),
        )


def _outgoing(row: Sequence[Any]) -> OutgoingRow:
    rid = bytes(row[0])
    with _damaged(f"outgoing request {rid.hex()}"):
        return OutgoingRow(
            request_id=rid,
            dataset=str(row[1]),
            purpose=str(row[2]),
            validity_days=int(row[3]),
            note=str(row[4]),
            created=int(row[5]),
            deadline=int(row[6]),
            state=str(row[7]),
            request=bytes(row[8]),
            reply_secret=bytes(row[9]),
            decision=_opt_bytes(row[10]),
            reason=None if row[11] is None else str(row[11]),
            message=str(row[12]),
            updated_at=int(row[13]),
        )


def _grant(row: Sequence[Any]) -> GrantRow:
    gid = bytes(row[0])
    with _damaged(f"grant {gid.hex()}"):
        return GrantRow(
            grant_id=gid,
            request_id=bytes(row[1]),
            dataset=str(row[2]),
            grantee_node=str(row[3]),
            grantee_org=str(row[4]),
            purpose=str(row[5]),
            not_before=int(row[6]),
            not_after=int(row[7]),
            issued_at=int(row[8]),
            grant=bytes(row[9]),
            revoked_at=None if row[10] is None else int(row[10]),
            revocation=_opt_bytes(row[11]),
            revocation_reason=str(row[12]),
        )


def _private_file(path: Path) -> None:
    """Create ``path`` as 0600 if it does not exist; tighten it to 0600 if it is looser."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077 and hasattr(os, "fchmod"):
                os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StorageError(f"cannot open database {os.fspath(path)!r}: {exc}") from exc


# -- the store ---------------------------------------------------------------------------


class AccessStore:
    """The node's access requests (incoming and outgoing) and the grants it issued.

    Args:
        path: the database file (its own, or the node's ``datanet.sqlite``).

    Raises:
        StorageError: the file cannot be opened or migrated.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        _private_file(self.path)
        self._conn = connect(self.path)
        try:
            with storage_errors("access store schema setup failed"):
                self._conn.execute(
                    "CREATE TABLE IF NOT EXISTS access_meta "
                    "(name TEXT PRIMARY KEY, version INTEGER NOT NULL)"
                )
            migrate(
                self._conn,
                _MIGRATIONS,
                get_version="SELECT COALESCE("
                "(SELECT version FROM access_meta WHERE name = 'access'), 0)",
                set_version="INSERT OR REPLACE INTO access_meta VALUES ('access', {version})",
            )
        except BaseException:
            self._conn.close()
            raise

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with storage_errors("closing the access store failed"):
            self._conn.close()

    def __enter__(self) -> AccessStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self, sql: str, args: Sequence[object] = ()) -> list[Any]:
        with storage_errors("access store read failed"):
            return self._conn.execute(sql, tuple(args)).fetchall()

    def _find(self, table: str, column: str, cols: str, id_or_prefix: str, what: str) -> Any:
        low, high = _prefix_range(id_or_prefix, what)
        rows = self._read(
            f"SELECT {cols} FROM {table} WHERE {column} BETWEEN ? AND ? LIMIT 2",  # noqa: S608
            (low, high),
        )
        if not rows:
            raise NotFound(f"no {what} has an id starting with {id_or_prefix.strip().lower()}")
        if len(rows) > 1:
            raise InvalidInput(
                f"{what} id {id_or_prefix.strip().lower()} is ambiguous: it starts more than "
                "one id; give more hex digits"
            )
        return rows[0]

    # -- the owner's inbox -----------------------------------------------------------

    def add_incoming(self, row: IncomingRow) -> bool:
        """Store a request received for a dataset this node decides.

        Returns:
            True if stored; False if a request with that id is already held (a
            replay): nothing changes then.

        Raises:
            InvalidInput: a field is out of bounds, or the row is not pending-shaped
                consistently (a decided row must carry its decision).
            StorageError: nothing was written.
        """
        if not isinstance(row, IncomingRow):
            raise InvalidInput("add_incoming takes an IncomingRow")
        self._check_incoming(row)
        values = (
            row.request_id,
            row.dataset,
            row.requester_node,
            row.requester_org,
            row.purpose,
            row.validity_days,
            row.note,
            row.received_at,
            row.deadline,
            row.state,
            row.request,
            _pack_trace(row.trace),
            row.decision,
            row.reason,
            row.message,
            row.decided_at,
            row.decided_by,
            row.grant_id,
        )
        with transaction(self._conn) as conn:
            cur = conn.execute(
                f"INSERT OR IGNORE INTO access_incoming ({_INCOMING_COLS}) "  # noqa: S608
                f"VALUES ({', '.join('?' * len(values))})",
                values,
            )
            return cur.rowcount == 1

    @staticmethod
    def _check_incoming(row: IncomingRow) -> None:
        _id("request_id", row.request_id)
        _name("dataset", row.dataset)
        _name("requester_node", row.requester_node)
        _name("requester_org", row.requester_org)
        _name("purpose", row.purpose)
        _int("validity_days", row.validity_days, 1)
        _text("note", row.note, MAX_NOTE, multiline=True)
        _int("received_at", row.received_at)
        _int("deadline", row.deadline)
        if row.state not in INCOMING_STATES:
            raise InvalidInput(f"state must be one of {', '.join(INCOMING_STATES)}")
        _blob("request", row.request)
        _blob("decision", row.decision, optional=True)
        _reason(row.reason)
        _text("message", row.message, MAX_TEXT)
        if row.decided_at is not None:
            _int("decided_at", row.decided_at)
        if row.decided_by is not None and row.decided_by not in DECIDED_BY:
            raise InvalidInput(f"decided_by must be one of {', '.join(DECIDED_BY)}")
        if row.grant_id is not None:
            _id("grant_id", row.grant_id)
        decided = (row.decision, row.decided_at, row.decided_by)
        if row.state == "pending" and any(v is not None for v in (*decided, row.grant_id)):
            raise InvalidInput("a pending request carries no decision")
        if row.state != "pending" and any(v is None for v in decided):
            raise InvalidInput("a decided request carries its decision, time and decider")

    def incoming(self, request_id: bytes) -> IncomingRow | None:
        """The incoming request with this id, or None."""
        rows = self._read(
            f"SELECT {_INCOMING_COLS} FROM access_incoming WHERE request_id = ?",  # noqa: S608
            (request_id,),
        )
        return _incoming(rows[0]) if rows else None

    def find_incoming(self, id_or_prefix: str) -> IncomingRow:
        """The incoming request whose hex id starts with ``id_or_prefix``.

        Raises:
            InvalidInput: fewer than 8 hex digits, not hex, or ambiguous.
            NotFound: no request id starts with it.
        """
        return _incoming(
            self._find("access_incoming", "request_id", _INCOMING_COLS, id_or_prefix, "request")
        )

    def list_incoming(
        self, *, state: str | None = None, dataset: str | None = None, limit: int = 100
    ) -> list[IncomingRow]:
        """Incoming requests, newest first, optionally in one state or for one dataset.

        Raises:
            InvalidInput: unknown state or ``limit`` out of range.
        """
        limit = _limit(limit)
        where, args = [], []
        if state is not None:
            if state not in INCOMING_STATES:
                raise InvalidInput(f"state must be one of {', '.join(INCOMING_STATES)}")
            where.append("state = ?")
            args.append(state)
        if dataset is not None:
            where.append("dataset = ?")
            args.append(_name("dataset", dataset))
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        rows = self._read(
            f"SELECT {_INCOMING_COLS} FROM access_incoming {clause}"  # noqa: S608
            "ORDER BY received_at DESC, rowid DESC LIMIT ?",
            (*args, limit),
        )
        return [_incoming(r) for r in rows]

    def decide(
        self,
        request_id: bytes,
        *,
        state: Literal["granted", "denied"],
        decision: bytes,
        reason: str | None,
        message: str,
        decided_by: Literal["policy", "operator", "deadline"],
        at: int,
        grant_id: bytes | None,
    ) -> IncomingRow:
        """Record the decision on a pending request, atomically.

        Args:
            request_id: the request.
            state: ``granted`` (with ``grant_id``) or ``denied`` (with ``reason``).
            decision: the signed grant or denial, verbatim.
            reason: the denial's reason code; None for a grant.
            message: for people.
            decided_by: ``policy``, ``operator`` or ``deadline`` (a denial).
            at: when.
            grant_id: the grant's id when granted; None when denied.

        Returns:
            The row as it is now.

        Raises:
            InvalidInput: a field is out of bounds or inconsistent with ``state``.
            NotFound: no such request.
            Conflict: the request is no longer pending (the row is left as it was);
                the message names its state.
            StorageError: nothing was written.
        """
        _id("request_id", request_id)
        if state not in ("granted", "denied"):
            raise InvalidInput("a decision is 'granted' or 'denied'")
        if decided_by not in DECIDED_BY:
            raise InvalidInput(f"decided_by must be one of {', '.join(DECIDED_BY)}")
        _blob("decision", decision)
        _reason(reason)
        _text("message", message, MAX_TEXT)
        _int("at", at)
        if state == "granted":
            if grant_id is None or reason is not None or decided_by == "deadline":
                raise InvalidInput("a grant carries its grant_id, no reason, and is not a timeout")
            _id("grant_id", grant_id)
        elif grant_id is not None or reason is None:
            raise InvalidInput("a denial carries a reason and no grant_id")
        with transaction(self._conn) as conn:
            cur = conn.execute(
                "UPDATE access_incoming SET state = ?, decision = ?, reason = ?, message = ?, "
                "decided_at = ?, decided_by = ?, grant_id = ? "
                "WHERE request_id = ? AND state = 'pending'",
                (state, decision, reason, message, at, decided_by, grant_id, request_id),
            )
            row = conn.execute(
                f"SELECT {_INCOMING_COLS} FROM access_incoming WHERE request_id = ?",  # noqa: S608
                (request_id,),
            ).fetchone()
            updated = cur.rowcount == 1
        if row is None:
            raise NotFound(f"no incoming request {request_id.hex()}")
        current = _incoming(row)
        if not updated:
            by = f" by {current.decided_by}" if current.decided_by else ""
            raise Conflict(
                f"request {request_id.hex()[:16]} was already {current.state}{by}; "
                "a decision is final (revoke the grant to withdraw access)"
            )
        return current

    def due(self, now: int, limit: int = 100) -> list[IncomingRow]:
        """Pending requests whose deadline has passed (``deadline <= now``), earliest first."""
        rows = self._read(
            f"SELECT {_INCOMING_COLS} FROM access_incoming "  # noqa: S608
            "WHERE state = 'pending' AND deadline <= ? ORDER BY deadline, rowid LIMIT ?",
            (_int("now", now), _limit(limit)),
        )
        return [_incoming(r) for r in rows]

    # -- the requester's outbox --------------------------------------------------------

    def add_outgoing(self, row: OutgoingRow) -> None:
        """Store a request this node is sending.

        Raises:
            InvalidInput: a field is out of bounds.
            Conflict: a request with that id is already held.
            StorageError: nothing was written.
        """
        if not isinstance(row, OutgoingRow):
            raise InvalidInput("add_outgoing takes an OutgoingRow")
        _id("request_id", row.request_id)
        _name("dataset", row.dataset)
        _name("purpose", row.purpose)
        _int("validity_days", row.validity_days, 1)
        _text("note", row.note, MAX_NOTE, multiline=True)
        _int("created", row.created)
        _int("deadline", row.deadline)
        if row.state not in OUTGOING_STATES:
            raise InvalidInput(f"state must be one of {', '.join(OUTGOING_STATES)}")
        _blob("request", row.request)
        if not isinstance(row.reply_secret, bytes) or len(row.reply_secret) != 32:
            raise InvalidInput("reply_secret must be a 32-byte X25519 private key")
        _blob("decision", row.decision, optional=True)
        _reason(row.reason)
        _text("message", row.message, MAX_TEXT)
        _int("updated_at", row.updated_at)
        values = (
            row.request_id,
            row.dataset,
            row.purpose,
            row.validity_days,
            row.note,
            row.created,
            row.deadline,
            row.state,
            row.request,
            row.reply_secret,
            row.decision,
            row.reason,
            row.message,
            row.updated_at,
        )
        with transaction(self._conn) as conn:
            cur = conn.execute(
                f"INSERT OR IGNORE INTO access_outgoing ({_OUTGOING_COLS}) "  # noqa: S608
                f"VALUES ({', '.join('?' * len(values))})",
                values,
            )
            if cur.rowcount != 1:
                raise Conflict(f"request {row.request_id.hex()[:16]} was already sent")

    def outgoing(self, request_id: bytes) -> OutgoingRow | None:
        """The outgoing request with this id, or None."""
        rows = self._read(
            f"SELECT {_OUTGOING_COLS} FROM access_outgoing WHERE request_id = ?",  # noqa: S608
            (request_id,),
        )
        return _outgoing(rows[0]) if rows else None

    def find_outgoing(self, id_or_prefix: str) -> OutgoingRow:
        """The outgoing request whose hex id starts with ``id_or_prefix``.

        Raises:
            InvalidInput: fewer than 8 hex digits, not hex, or ambiguous.
            NotFound: no request id starts with it.
        """
        return _outgoing(
            self._find("access_outgoing", "request_id", _OUTGOING_COLS, id_or_prefix, "request")
        )

    def list_outgoing(self, *, state: str | None = None, limit: int = 100) -> list[OutgoingRow]:
        """Outgoing requests, newest first, optionally in one state."""
        limit = _limit(limit)
        if state is not None and state not in OUTGOING_STATES:
            raise InvalidInput(f"state must be one of {', '.join(OUTGOING_STATES)}")
        clause, args = ("WHERE state = ? ", [state]) if state is not None else ("", [])
        rows = self._read(
            f"SELECT {_OUTGOING_COLS} FROM access_outgoing {clause}"  # noqa: S608
            "ORDER BY created DESC, rowid DESC LIMIT ?",
            (*args, limit),
        )
        return [_outgoing(r) for r in rows]

    def update_outgoing(
        self,
        request_id: bytes,
        *,
        state: str,
        decision: bytes | None,
        reason: str | None,
        message: str,
        at: int,
    ) -> OutgoingRow:
        """Record what became of an outgoing request.

        A ``pending`` or ``failed`` request may move to any state (a failed one
        may be retried); a ``granted`` or ``denied`` one is final.

        Raises:
            InvalidInput: a field is out of bounds.
            NotFound: no such request.
            Conflict: it already got its answer (the row is left as it was).
            StorageError: nothing was written.
        """
        _id("request_id", request_id)
        if state not in OUTGOING_STATES:
            raise InvalidInput(f"state must be one of {', '.join(OUTGOING_STATES)}")
        _blob("decision", decision, optional=True)
        _reason(reason)
        _text("message", message, MAX_TEXT)
        _int("at", at)
        with transaction(self._conn) as conn:
            cur = conn.execute(
                "UPDATE access_outgoing SET state = ?, decision = ?, reason = ?, message = ?, "
                "updated_at = ? WHERE request_id = ? AND state IN ('pending', 'failed')",
                (state, decision, reason, message, at, request_id),
            )
            row = conn.execute(
                f"SELECT {_OUTGOING_COLS} FROM access_outgoing WHERE request_id = ?",  # noqa: S608
                (request_id,),
            ).fetchone()
            updated = cur.rowcount == 1
        if row is None:
            raise NotFound(f"no outgoing request {request_id.hex()}")
        current = _outgoing(row)
        if not updated:
            raise Conflict(
                f"request {request_id.hex()[:16]} was already {current.state}; "
                "its answer is final (send a new request to ask again)"
            )
        return current

    # -- grants --------------------------------------------------------------------------

    def add_grant(self, row: GrantRow) -> None:
        """Store a grant this node issued.

        Raises:
            InvalidInput: a field is out of bounds.
            Conflict: a grant with that id is already held.
            StorageError: nothing was written.
        """
        if not isinstance(row, GrantRow):
            raise InvalidInput("add_grant takes a GrantRow")
        _id("grant_id", row.grant_id)
        _id("request_id", row.request_id)
        _name("dataset", row.dataset)
        _name("grantee_node", row.grantee_node)
        _name("grantee_org", row.grantee_org)
        _name("purpose", row.purpose)
        _int("not_before", row.not_before)
        _int("not_after", row.not_after)
        _int("issued_at", row.issued_at)
        if row.not_after <= row.not_before:
            raise InvalidInput("a grant's not_after must be after its not_before")
        _blob("grant", row.grant)
        if row.revoked_at is not None:
            _int("revoked_at", row.revoked_at)
        if (row.revoked_at is None) != (row.revocation is None):
            raise InvalidInput("a revoked grant carries both revoked_at and its revocation")
        _blob("revocation", row.revocation, optional=True)
        _text("revocation_reason", row.revocation_reason, MAX_TEXT)
        values = (
            row.grant_id,
            row.request_id,
            row.dataset,
            row.grantee_node,
            row.grantee_org,
            row.purpose,
            row.not_before,
            row.not_after,
            row.issued_at,
            row.grant,
            row.revoked_at,
            row.revocation,
            row.revocation_reason,
        )
        with transaction(self._conn) as conn:
            cur = conn.execute(
                f"INSERT OR IGNORE INTO access_grants ({_GRANT_COLS}) "  # noqa: S608
                f"VALUES ({', '.join('?' * len(values))})",
                values,
            )
            if cur.rowcount != 1:
                raise Conflict(f"grant {row.grant_id.hex()[:16]} is already stored")

    def grant(self, grant_id: bytes) -> GrantRow | None:
        """The grant with this id, or None."""
        rows = self._read(
            f"SELECT {_GRANT_COLS} FROM access_grants WHERE grant_id = ?",  # noqa: S608
            (grant_id,),
        )
        return _grant(rows[0]) if rows else None

    def find_grant(self, id_or_prefix: str) -> GrantRow:
        """The grant whose hex id starts with ``id_or_prefix``.

        Raises:
            InvalidInput: fewer than 8 hex digits, not hex, or ambiguous.
            NotFound: no grant id starts with it.
        """
        return _grant(self._find("access_grants", "grant_id", _GRANT_COLS, id_or_prefix, "grant"))

    def list_grants(
        self, *, dataset: str | None = None, active_at: int | None = None, limit: int = 100
    ) -> list[GrantRow]:
        """Grants this node issued, newest first.

        Args:
            dataset: only grants for this dataset.
            active_at: only grants within their window at this time and not
                revoked by then.
            limit: at most this many.
        """
        limit = _limit(limit)
        where: list[str] = []
        args: list[object] = []
        if dataset is not None:
            where.append("dataset = ?")
            args.append(_name("dataset", dataset))
        if active_at is not None:
            t = _int("active_at", active_at)
            where.append(
                "not_before <= ? AND not_after > ? AND (revoked_at IS NULL OR revoked_at > ?)"
            )
            args.extend([t, t, t])
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        rows = self._read(
            f"SELECT {_GRANT_COLS} FROM access_grants {clause}"  # noqa: S608
            "ORDER BY issued_at DESC, rowid DESC LIMIT ?",
            (*args, limit),
        )
        return [_grant(r) for r in rows]

    def revoke_grant(self, grant_id: bytes, *, revocation: bytes, at: int, reason: str) -> GrantRow:
        """Record the revocation of a grant, atomically.

        Raises:
            InvalidInput: a field is out of bounds.
            NotFound: no such grant.
            Conflict: it was already revoked (the row is left as it was).
            StorageError: nothing was written.
        """
        _id("grant_id", grant_id)
        _blob("revocation", revocation)
        _int("at", at)
        _text("reason", reason, MAX_TEXT)
        with transaction(self._conn) as conn:
            cur = conn.execute(
                "UPDATE access_grants SET revoked_at = ?, revocation = ?, revocation_reason = ? "
                "WHERE grant_id = ? AND revoked_at IS NULL",
                (at, revocation, reason, grant_id),
            )
            row = conn.execute(
                f"SELECT {_GRANT_COLS} FROM access_grants WHERE grant_id = ?",  # noqa: S608
                (grant_id,),
            ).fetchone()
            updated = cur.rowcount == 1
        if row is None:
            raise NotFound(f"no grant {grant_id.hex()}")
        current = _grant(row)
        if not updated:
            raise Conflict(
                f"grant {grant_id.hex()[:16]} was already revoked at {current.revoked_at}"
            )
        return current

    # -- figures -------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Rows by table and state: ``incoming_pending``, …, ``grants``, ``grants_revoked``."""
        out = {f"incoming_{s}": 0 for s in INCOMING_STATES}
        out.update({f"outgoing_{s}": 0 for s in OUTGOING_STATES})
        for state, n in self._read("SELECT state, count(*) FROM access_incoming GROUP BY state"):
            out[f"incoming_{state}"] = int(n)
        for state, n in self._read("SELECT state, count(*) FROM access_outgoing GROUP BY state"):
            out[f"outgoing_{state}"] = int(n)
        total, revoked = self._read("SELECT count(*), count(revoked_at) FROM access_grants")[0]
        out["grants"] = int(total)
        out["grants_revoked"] = int(revoked)
        return out
