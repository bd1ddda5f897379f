"""The node's SQLite database (``<data dir>/datanet.sqlite``): what must survive a crash.

Tables: DHT values and providers (write-through from the pure stores in
:mod:`routing.stores`), the address book (bounded: at most ``MAX_PEERS`` rows,
the least recently seen go first), and this node's own descriptors. The node's
own keys, certificates and trust store are files in the data directory
(:mod:`datanet.node.home`), not rows here; org records and revocation lists of
other orgs are DHT values (``/dn-org/``, ``/dn-rev/``) like any other.

Durability: WAL journal with ``synchronous=FULL``. A method that writes returns
only after its transaction committed and the WAL was fsynced, so anything a
caller acknowledges after the call survives a crash of the process or of the
machine. Writes that may be lost without harm are committed with
``synchronous=NORMAL``: they survive a process crash, and a power loss can only
lose the newest of them, never corrupt the file. Those are the address book,
and the DHT values and provider entries other peers stored here: soft state
that their owners put again (the republish and reprovide intervals), so an
fsync per ``PUT_VALUE`` or ``ADD_PROVIDER`` served would buy nothing and stall
the node's event loop. A change that holds this node's own value or provider
entry, or removes any, is fsynced.

Invariants:
* Every method is synchronous and runs one short transaction; ``sqlite3``
  errors leave as :class:`~datanet.errors.StorageError`, never ``sqlite3.Error``.
* The schema version is ``PRAGMA user_version``; migrations run in order, each
  in its own transaction, and a database written by a newer datanet is refused.
* The node runs under trio: calling these methods on the trio thread is fine
  because each write is one small transaction (about a millisecond, most of it
  the fsync). Bulk work (catalog ingest) batches many rows per transaction.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datanet.errors import DatanetError, StorageError
from identity.encoding import pack, unpack
from routing.stores import ProviderEntry, StoredRecord
from routing.wire import Peer

__all__ = [
    "MAX_PEERS",
    "PEER_MAX_AGE",
    "SCHEMA_VERSION",
    "LedgerRow",
    "OwnDescriptor",
    "PeerAddress",
    "Storage",
    "connect",
    "migrate",
    "storage_errors",
    "transaction",
]

MAX_ADDRS = 32
MAX_PEERS = 2000
"""Rows the address book keeps; a new peer beyond it evicts the least recently seen."""
PEER_MAX_AGE = 30 * 24 * 3600.0
"""Address-book entries not seen for this long are pruned (the driver's maintenance)."""
_MAX_ADDR_BLOB = 64 * 1024

_V1 = """
CREATE TABLE dht_values (
    key         BLOB PRIMARY KEY,
    value       BLOB NOT NULL,
    expires_at  REAL,                     -- NULL: own value without an expiry
    received_at REAL NOT NULL,
    from_peer   BLOB,                     -- NULL: written by this node
    own         INTEGER NOT NULL CHECK (own IN (0, 1))
) WITHOUT ROWID;
CREATE TABLE dht_providers (
    key         BLOB NOT NULL,
    peer_id     BLOB NOT NULL,
    addrs       BLOB NOT NULL,            -- MessagePack list of multiaddr bytes
    expires_at  REAL NOT NULL,
    added_at    REAL NOT NULL,
    own         INTEGER NOT NULL CHECK (own IN (0, 1)),
    PRIMARY KEY (key, peer_id)
) WITHOUT ROWID;
CREATE TABLE peers (
    peer_id     BLOB PRIMARY KEY,
    addrs       BLOB NOT NULL,            -- MessagePack list of multiaddr bytes
    last_seen   REAL NOT NULL,
    last_ok     REAL                      -- last successful exchange; NULL: never
) WITHOUT ROWID;
CREATE TABLE routing_snapshot (
    peer_id     BLOB PRIMARY KEY,
    position    INTEGER NOT NULL,
    saved_at    REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE certificates (
    org         TEXT NOT NULL,            -- did:key of the issuing org
    serial      INTEGER NOT NULL,
    node        BLOB NOT NULL,            -- binary peer id of the certified node
    not_after   INTEGER NOT NULL,
    raw         BLOB NOT NULL,            -- the signed certificate bytes
    PRIMARY KEY (org, serial)
);
CREATE INDEX certificates_by_node ON certificates (node);
CREATE TABLE revocations (
    org         TEXT PRIMARY KEY,
    sequence    INTEGER NOT NULL,
    raw         BLOB NOT NULL
);
CREATE TABLE own_descriptors (
    key         BLOB PRIMARY KEY,         -- the DHT key /dn/<org>/<name>
    raw         BLOB NOT NULL,            -- the signed descriptor envelope
    sequence    INTEGER NOT NULL,
    expires_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
) WITHOUT ROWID;
"""

# V2: the routing snapshot was written and never read (the address book already
# lets a restarted node rejoin); certificates and revocations had no user (trust
# is the home's trust store; revocation lists travel as /dn-rev/ DHT values).
# The address book gets an index for evicting the least recently seen.
_V2 = """
DROP TABLE routing_snapshot;
DROP TABLE certificates;
DROP TABLE revocations;
CREATE INDEX peers_by_last_seen ON peers (last_seen);
"""

# V3: the ledger records the catalog does not hold itself (revocation lists and
# org records learnt from gossip or sync): the newest per DHT key, so a restarted
# node still applies them and hands them on in anti-entropy.
_V3 = """
CREATE TABLE ledger_records (
    key         BLOB PRIMARY KEY,         -- /dn-rev/<org> or /dn-org/<org>
    kind        TEXT NOT NULL,            -- revocation | org
    sequence    INTEGER NOT NULL,
    timestamp   INTEGER NOT NULL,         -- from the signed body (the sync order)
    expires_at  REAL,                     -- NULL: does not expire
    raw         BLOB NOT NULL             -- the exact signed bytes
) WITHOUT ROWID;
"""

# V4: provider entries remember whether a stranger (a peer admitted without a
# membership certificate) announced them, so the stranger quotas of the provider
# store still hold after a restart.
_V4 = """
ALTER TABLE dht_providers
    ADD COLUMN stranger INTEGER NOT NULL DEFAULT 0 CHECK (stranger IN (0, 1));
"""

MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4)
"""``MIGRATIONS[i]`` brings a database from version ``i`` to ``i + 1``; append only."""

SCHEMA_VERSION = len(MIGRATIONS)


# ---------------------------------------------------------------------------
# connection helpers (shared with datanet.store.catalog)


@contextlib.contextmanager
def storage_errors(what: str) -> Iterator[None]:
    """Translate ``sqlite3`` (and OS) errors raised inside the block into StorageError."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StorageError(f"{what}: {exc}") from exc
    except OSError as exc:
        raise StorageError(f"{what}: {exc}") from exc


def _setup(conn: sqlite3.Connection, cache_kib: int | None) -> None:
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StorageError(f"database refused WAL mode (got {mode!r})")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    if cache_kib is not None:
        conn.execute(f"PRAGMA cache_size=-{int(cache_kib)}")


def connect(path: str | os.PathLike[str], *, cache_kib: int | None = None) -> sqlite3.Connection:
    """Open (creating if needed) a database file in WAL mode with ``synchronous=FULL``.

    The connection is in autocommit mode: use :func:`transaction` for writes.

    Args:
        path: the database file.
        cache_kib: SQLite page cache for this connection (default: SQLite's 2 MiB).

    Raises:
        StorageError: the file cannot be opened, is not a database, or refuses WAL.
    """
    with storage_errors(f"cannot open database {os.fspath(path)!r}"):
        conn = sqlite3.connect(os.fspath(path), isolation_level=None, timeout=10.0)
        try:
            _setup(conn, cache_kib)
        except BaseException:
            conn.close()
            raise
    return conn


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
    """Run the block in one ``BEGIN IMMEDIATE`` transaction; commit on success.

    Args:
        conn: a connection from :func:`connect`.
        durable: fsync the commit (``synchronous=FULL``); ``False`` commits with
            ``NORMAL`` (survives a process crash, may be lost on power loss).

    Raises:
        StorageError: the transaction failed; it was rolled back.
    """
    with storage_errors("database write failed"):
        conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        finally:
            if not durable:
                conn.execute("PRAGMA synchronous=FULL")


def migrate(
    conn: sqlite3.Connection,
    migrations: Sequence[str],
    *,
    get_version: str = "PRAGMA user_version",
    set_version: str = "PRAGMA user_version = {version}",
) -> int:
    """Bring the schema up to ``len(migrations)``, one transaction per step.

    Returns:
        The schema version now in the file.

    Raises:
        StorageError: a migration failed (rolled back), or the file's version is
            newer than this code knows.
    """
    with storage_errors("schema migration failed"):
        row = conn.execute(get_version).fetchone()
        current = int(row[0]) if row is not None else 0
        if current > len(migrations):
            raise StorageError(
                f"the database has schema version {current}; this datanet knows up to "
                f"{len(migrations)} - upgrade datanet"
            )
        for version in range(current + 1, len(migrations) + 1):
            script = migrations[version - 1]
            stamp = set_version.format(version=version)
            try:
                conn.executescript(f"BEGIN IMMEDIATE;\n{script}\n{stamp};\nCOMMIT;")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
    return len(migrations)


def _pack_addrs(addrs: Sequence[bytes]) -> bytes:
    return pack([bytes(a) for a in addrs[:MAX_ADDRS]])


def _unpack_addrs(blob: bytes) -> tuple[bytes, ...]:
    try:
        items = unpack(blob, max_size=_MAX_ADDR_BLOB, max_items=MAX_ADDRS)
    except DatanetError as exc:
        raise StorageError(f"corrupt address list in the database: {exc}") from None
    if not isinstance(items, list) or not all(isinstance(a, bytes) for a in items):
        raise StorageError("corrupt address list in the database")
    return tuple(items)


def _inf_to_null(value: float) -> float | None:
    return None if math.isinf(value) else value


# ---------------------------------------------------------------------------
# records


@dataclass(frozen=True)
class PeerAddress:
    """One address-book entry."""

    peer_id: bytes
    addrs: tuple[bytes, ...]
    last_seen: float
    last_ok: float | None


@dataclass(frozen=True)
class LedgerRow:
    """A revocation list or org record held in ``ledger_records``."""

    key: bytes
    kind: str
    sequence: int
    timestamp: int
    expires_at: float | None
    raw: bytes


@dataclass(frozen=True)
class OwnDescriptor:
    """A descriptor this node published and must keep republishing."""

    key: bytes
    raw: bytes
    sequence: int
    expires_at: float
    updated_at: float


class Storage:
    """The node's database; implements the stores' persistence sinks.

    Design: the pure stores (:class:`routing.stores.RecordStore`,
    :class:`routing.stores.ProviderStore`) take this object as their ``sink``;
    they call :meth:`records_changed` / :meth:`providers_changed` with every
    change *before* applying it in memory, so a write the node acknowledges is
    already committed. At start-up the driver reads :meth:`load_records` and
    :meth:`load_providers` and hands them to the stores' ``restore``.

    Args:
        path: the database file (usually ``Home.database_path``).
        max_peers: the address book's bound (rows).

    Raises:
        StorageError: the file cannot be opened or migrated.
    """

    def __init__(self, path: str | os.PathLike[str], *, max_peers: int = MAX_PEERS) -> None:
        self.path = Path(path)
        self._max_peers = max_peers
        self._conn = connect(self.path)
        try:
            migrate(self._conn, MIGRATIONS)
        except BaseException:
            self._conn.close()
            raise

    # -- lifecycle

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with storage_errors("closing the database failed"):
            self._conn.close()

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        """The ``user_version`` of the file."""
        return int(self._query_one("PRAGMA user_version")[0])

    def integrity_check(self) -> list[str]:
        """Run ``PRAGMA integrity_check``; returns its messages (``["ok"]`` when sound)."""
        with storage_errors("integrity check failed"):
            return [str(row[0]) for row in self._conn.execute("PRAGMA integrity_check")]

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with storage_errors("database read failed"):
            return self._conn.execute(sql, params).fetchall()

    def _query_one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with storage_errors("database read failed"):
            return self._conn.execute(sql, params).fetchone()

    # -- DHT values (RecordSink)

    def records_changed(self, upserted: Sequence[StoredRecord], removed: Sequence[bytes]) -> None:
        """Persist a record-store change atomically (see :class:`RecordSink`).

        Durably (fsynced) when it holds one of our own values or removes any;
        values only stored for other peers are not fsynced (module docstring).

        Raises:
            StorageError: nothing was written.
        """
        durable = bool(removed) or any(r.own for r in upserted)
        with transaction(self._conn, durable=durable) as conn:
            conn.executemany("DELETE FROM dht_values WHERE key = ?", [(k,) for k in removed])
            conn.executemany(
                "INSERT OR REPLACE INTO dht_values "
                "(key, value, expires_at, received_at, from_peer, own) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (
                        r.key,
                        r.value,
                        _inf_to_null(r.expires_at),
                        r.received_at,
                        r.from_peer,
                        int(r.own),
                    )
                    for r in upserted
                ],
            )

    def load_records(self) -> list[StoredRecord]:
        """Every stored value, for :meth:`RecordStore.restore`."""
        rows = self._query(
            "SELECT key, value, expires_at, received_at, from_peer, own FROM dht_values"
        )
        return [
            StoredRecord(
                key=bytes(k),
                value=bytes(v),
                expires_at=math.inf if exp is None else float(exp),
                received_at=float(rec),
                from_peer=None if frm is None else bytes(frm),
                own=bool(own),
            )
            for k, v, exp, rec, frm, own in rows
        ]

    # -- providers (ProviderSink)

    def providers_changed(
        self, upserted: Sequence[ProviderEntry], removed: Sequence[tuple[bytes, bytes]]
    ) -> None:
        """Persist a provider-store change atomically (see :class:`ProviderSink`).

        Durably (fsynced) when it holds our own entry or removes any; entries
        other peers announced are not fsynced (module docstring).

        Raises:
            StorageError: nothing was written.
        """
        durable = bool(removed) or any(e.own for e in upserted)
        with transaction(self._conn, durable=durable) as conn:
            conn.executemany(
                "DELETE FROM dht_providers WHERE key = ? AND peer_id = ?", list(removed)
            )
            conn.executemany(
                "INSERT OR REPLACE INTO dht_providers "
                "(key, peer_id, addrs, expires_at, added_at, own, stranger) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        e.key,
                        e.peer.id,
                        _pack_addrs(e.peer.addrs),
                        e.expires_at,
                        e.added_at,
                        int(e.own),
                        int(e.stranger),
                    )
                    for e in upserted
                ],
            )

    def load_providers(self) -> list[ProviderEntry]:
        """Every stored provider entry, for :meth:`ProviderStore.restore`.

        Raises:
            StorageError: unreadable or corrupt rows.
        """
        rows = self._query(
            "SELECT key, peer_id, addrs, expires_at, added_at, own, stranger FROM dht_providers"
        )
        return [
            ProviderEntry(
                key=bytes(k),
                peer=Peer(bytes(pid), _unpack_addrs(bytes(addrs))),
                expires_at=float(exp),
                added_at=float(added),
                own=bool(own),
                stranger=bool(stranger),
            )
            for k, pid, addrs, exp, added, own, stranger in rows
        ]

    # -- address book

    def upsert_peer(
        self, peer_id: bytes, addrs: Sequence[bytes], *, now: float, ok: bool = False
    ) -> None:
        """Remember ``peer_id`` at ``addrs`` (replacing older addresses).

        Peers announce themselves, so the book is bounded: a new entry beyond
        ``max_peers`` rows evicts the least recently seen ones.

        Args:
            peer_id: binary peer id.
            addrs: multiaddr bytes (the first 32 are kept).
            now: sets ``last_seen``; also ``last_ok`` when ``ok``.
            ok: a request to the peer just succeeded.

        Raises:
            StorageError: nothing was written.
        """
        with transaction(self._conn, durable=False) as conn:
            conn.execute(
                "INSERT INTO peers (peer_id, addrs, last_seen, last_ok) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (peer_id) DO UPDATE SET addrs = excluded.addrs, "
                "last_seen = excluded.last_seen, "
                "last_ok = COALESCE(excluded.last_ok, peers.last_ok)",
                (peer_id, _pack_addrs(addrs), now, now if ok else None),
            )
            excess = conn.execute("SELECT COUNT(*) FROM peers").fetchone()[0] - self._max_peers
            if excess > 0:
                conn.execute(
                    "DELETE FROM peers WHERE peer_id IN "
                    "(SELECT peer_id FROM peers ORDER BY last_seen, peer_id LIMIT ?)",
                    (excess,),
                )

    def get_peer(self, peer_id: bytes) -> PeerAddress | None:
        """The address-book entry of ``peer_id``, if any."""
        row = self._query_one(
            "SELECT peer_id, addrs, last_seen, last_ok FROM peers WHERE peer_id = ?", (peer_id,)
        )
        return None if row is None else self._peer_row(row)

    @staticmethod
    def _peer_row(row: Sequence[Any]) -> PeerAddress:
        pid, addrs, seen, ok = row
        return PeerAddress(
            bytes(pid), _unpack_addrs(bytes(addrs)), float(seen), None if ok is None else float(ok)
        )

    def load_peers(self, *, limit: int = 1000) -> list[PeerAddress]:
        """Known peers, the most recently successful first (then the most recently seen)."""
        rows = self._query(
            "SELECT peer_id, addrs, last_seen, last_ok FROM peers "
            "ORDER BY last_ok IS NULL, last_ok DESC, last_seen DESC LIMIT ?",
            (limit,),
        )
        return [self._peer_row(r) for r in rows]

    def peer_address(self, peer_id: bytes) -> PeerAddress | None:
        """The address book's entry for one peer, if any."""
        rows = self._query(
            "SELECT peer_id, addrs, last_seen, last_ok FROM peers WHERE peer_id = ?", (peer_id,)
        )
        return self._peer_row(rows[0]) if rows else None

    def prune_peers(self, *, older_than: float) -> int:
        """Drop peers not seen since ``older_than``; returns how many."""
        with transaction(self._conn, durable=False) as conn:
            return int(
                conn.execute("DELETE FROM peers WHERE last_seen < ?", (older_than,)).rowcount
            )

    # -- own descriptors

    def put_own_descriptor(
        self, key: bytes, raw: bytes, *, sequence: int, expires_at: float, now: float
    ) -> bool:
        """Remember a descriptor this node publishes, unless a higher sequence is held.

        Re-storing the same sequence replaces the row (a re-signed copy).

        Returns:
            Whether it was stored.

        Raises:
            StorageError: nothing was written.
        """
        with transaction(self._conn) as conn:
            cur = conn.execute(
                "INSERT INTO own_descriptors (key, raw, sequence, expires_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET raw = excluded.raw, "
                "sequence = excluded.sequence, expires_at = excluded.expires_at, "
                "updated_at = excluded.updated_at "
                "WHERE excluded.sequence >= own_descriptors.sequence",
                (key, raw, sequence, expires_at, now),
            )
            return bool(cur.rowcount)

    def load_own_descriptors(self) -> list[OwnDescriptor]:
        """Every own descriptor, soonest expiry first."""
        rows = self._query(
            "SELECT key, raw, sequence, expires_at, updated_at FROM own_descriptors "
            "ORDER BY expires_at"
        )
        return [
            OwnDescriptor(bytes(k), bytes(r), int(s), float(e), float(u)) for k, r, s, e, u in rows
        ]

    def delete_own_descriptor(self, key: bytes) -> bool:
        """Forget the own descriptor under ``key``; returns whether it was held.

        The node calls it when its record store no longer holds the descriptor as
        its own: replaced by a newer one from another node of the org (the dataset
        moved), or expired.
        """
        with transaction(self._conn) as conn:
            return bool(conn.execute("DELETE FROM own_descriptors WHERE key = ?", (key,)).rowcount)

    # -- ledger records (revocation lists, org records)

    def put_ledger_record(self, row: LedgerRow) -> bool:
        """Hold ``row`` unless a record with an equal or higher sequence is held under its key.

        Returns:
            Whether it was stored.

        Raises:
            StorageError: nothing was written.
        """
        with transaction(self._conn) as conn:
            cur = conn.execute(
                "INSERT INTO ledger_records (key, kind, sequence, timestamp, expires_at, raw) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET kind = excluded.kind, "
                "sequence = excluded.sequence, timestamp = excluded.timestamp, "
                "expires_at = excluded.expires_at, raw = excluded.raw "
                "WHERE excluded.sequence > ledger_records.sequence",
                (row.key, row.kind, row.sequence, row.timestamp, row.expires_at, row.raw),
            )
            return bool(cur.rowcount)

    def load_ledger_records(self) -> list[LedgerRow]:
        """Every held ledger record."""
        rows = self._query(
            "SELECT key, kind, sequence, timestamp, expires_at, raw FROM ledger_records"
        )
        return [
            LedgerRow(
                bytes(k), str(kind), int(s), int(t), None if e is None else float(e), bytes(r)
            )
            for k, kind, s, t, e, r in rows
        ]

    def ledger_record(self, key: bytes) -> LedgerRow | None:
        """The ledger record held under ``key``, if any."""
        rows = self._query(
            "SELECT key, kind, sequence, timestamp, expires_at, raw FROM ledger_records "
            "WHERE key = ?",
            (key,),
        )
        if not rows:
            return None
        k, kind, s, t, e, r = rows[0]
        return LedgerRow(
            bytes(k), str(kind), int(s), int(t), None if e is None else float(e), bytes(r)
        )

    def delete_ledger_record(self, key: bytes) -> bool:
        """Forget the ledger record under ``key``; returns whether one was held."""
        with transaction(self._conn) as conn:
            return bool(conn.execute("DELETE FROM ledger_records WHERE key = ?", (key,)).rowcount)
