"""The node's audit transparency log on SQLite: an append-only RFC 9162 Merkle tree.

Each row of ``audit_entries`` is one leaf: the exact entry bytes
(:class:`~datanet.records.audit.AuditEntry`), its leaf hash, the hashes of the
complete subtrees that this leaf closes (level 1 upwards; leaf ``e`` closes the
subtree of level ``l`` and index ``i`` when ``e = (i + 1) * 2**l - 1``, as CT
logs keep them), and a row check ``SHA-256("dn-audit-row" || index || leaf)``
truncated to 16 bytes. Any subtree hash is then one row lookup away, so a proof
or a past root costs O(log n) lookups at any size (about 40 at 10**6 entries),
never a rehash. ``audit_heads`` holds every tree head this node signed.

:meth:`AuditLog.verify` recomputes everything from the entry bytes alone and
names the first bad entry: a deleted row (a gap), an edited entry (its leaf hash
no longer matches), a moved row (its row check names another position), a stored
subtree hash that does not match the entries below it, or a signed head whose
root differs from the recomputed tree at its size. The row check and the stored
subtree hashes pin naive edits to one row; a deliberate rewrite that recomputes
them too is still caught by the signed heads (and by witnesses, who hold heads
the operator cannot recall), reported as the first entry no matching head covers.

Durability: WAL with ``synchronous=FULL`` (:mod:`datanet.store.db`); an append
returns after its transaction committed, so an acknowledged entry survives a
crash. :meth:`AuditLog.append_many` writes a whole batch in one transaction.

Invariants:
* Rows are only ever inserted at ``size``: the log never rewrites or deletes.
* The in-memory frontier (the right edge of the tree) changes only after a
  commit; if another connection appended meanwhile it is reloaded first.
* ``sqlite3`` errors leave as :class:`~datanet.errors.StorageError`; a damaged row
  met outside :meth:`verify` raises ``StorageError`` naming the entry.
* The schema is versioned in its own ``audit_meta`` table, so the log can live
  in its own file or share the node's database.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datanet.errors import DatanetError, InvalidInput, NotFound, StorageError
from datanet.records.audit import (
    EMPTY_ROOT,
    HASH_SIZE,
    AuditEntry,
    EntryKind,
    MerkleFrontier,
    TreeHead,
    consistency_path,
    decode_entry,
    inclusion_path,
    leaf_hash,
    make_receipt,
    node_hash,
    open_tree_head,
    sign_tree_head,
)
from datanet.store.db import connect, migrate, storage_errors, transaction
from identity.keys import KeyPair

__all__ = [
    "AUDIT_SCHEMA_VERSION",
    "MAX_ENTRIES_PAGE",
    "AuditLog",
    "LogEntry",
    "StoredHead",
    "VerifyReport",
    "row_check",
]

MAX_ENTRIES_PAGE = 10_000
"""The most entries one :meth:`AuditLog.entries` call returns."""
_ROW_CHECK_SIZE = 16

_V1 = """
CREATE TABLE audit_entries (
    idx         INTEGER PRIMARY KEY,      -- the leaf's position, from 0
    kind        TEXT NOT NULL,            -- EntryKind, for filtering
    timestamp   INTEGER NOT NULL,         -- the entry's own time (Unix seconds)
    entry       BLOB NOT NULL,            -- the exact entry bytes: the leaf's data
    leaf        BLOB NOT NULL,            -- SHA-256(0x00 || entry)
    nodes       BLOB NOT NULL,            -- hashes of the subtrees this leaf closes, level 1 up
    rowcheck    BLOB NOT NULL             -- SHA-256("dn-audit-row" || idx || leaf)[:16]
);
CREATE INDEX audit_entries_by_kind ON audit_entries (kind, idx);
CREATE TABLE audit_heads (
    id          INTEGER PRIMARY KEY,      -- signing order
    size        INTEGER NOT NULL,
    timestamp   INTEGER NOT NULL,
    root        BLOB NOT NULL,
    raw         BLOB NOT NULL             -- the signed dn/audit-head/v1 envelope
);
"""

_MIGRATIONS: tuple[str, ...] = (_V1,)
AUDIT_SCHEMA_VERSION = len(_MIGRATIONS)


def row_check(index: int, leaf: bytes) -> bytes:
    """The row check binding a leaf hash to its position (16 bytes)."""
    digest = hashlib.sha256(b"dn-audit-row\0" + index.to_bytes(8, "big") + leaf).digest()
    return digest[:_ROW_CHECK_SIZE]


@dataclass(frozen=True)
class LogEntry:
    """One entry as the log holds it.

    Attributes:
        index: its position (the leaf index).
        entry: the decoded entry.
        raw: the exact entry bytes (the leaf's data).
        leaf_hash: ``SHA-256(0x00 || raw)``.
    """

    index: int
    entry: AuditEntry
    raw: bytes
    leaf_hash: bytes

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (one line of ``datanet audit export``): index, leaf hash, entry."""
        return {"index": self.index, "leaf_hash": self.leaf_hash.hex(), **self.entry.to_json()}


@dataclass(frozen=True)
class StoredHead:
    """A tree head this node signed, as stored.

    Attributes:
        head: the decoded head (size, root, timestamp, node).
        raw: the signed envelope bytes (ship these).
    """

    head: TreeHead
    raw: bytes


@dataclass(frozen=True)
class VerifyReport:
    """What :meth:`AuditLog.verify` found.

    Attributes:
        ok: nothing is wrong.
        size: entries in the log (rows found).
        root: the root recomputed from the entries checked (all of them when ``ok``).
        entries_checked: entries recomputed before the first problem (``size`` when ``ok``).
        heads_checked: signed heads whose root matched the recomputed tree.
        first_bad_index: the first entry that is missing, edited, moved, or not
            covered by a matching head; None when ``ok``.
        reason: why, for people; None when ``ok``.
    """

    ok: bool
    size: int
    root: bytes
    entries_checked: int
    heads_checked: int
    first_bad_index: int | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (root as lowercase hex)."""
        return {
            "ok": self.ok,
            "size": self.size,
            "root": self.root.hex(),
            "entries_checked": self.entries_checked,
            "heads_checked": self.heads_checked,
            "first_bad_index": self.first_bad_index,
            "reason": self.reason,
        }


class AuditLog:
    """The node's append-only audit log.

    Args:
        path: the database file (its own, e.g. ``audit.sqlite``, or the node's).

    Raises:
        StorageError: the file cannot be opened or migrated.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._conn = connect(self.path, cache_kib=16 * 1024)
        try:
            with storage_errors("audit log schema setup failed"):
                self._conn.execute(
                    "CREATE TABLE IF NOT EXISTS audit_meta "
                    "(name TEXT PRIMARY KEY, version INTEGER NOT NULL)"
                )
            migrate(
                self._conn,
                _MIGRATIONS,
                get_version="SELECT COALESCE("
                "(SELECT version FROM audit_meta WHERE name = 'audit'), 0)",
                set_version="INSERT OR REPLACE INTO audit_meta VALUES ('audit', {version})",
            )
        except BaseException:
            self._conn.close()
            raise
        #: Why the log cannot be appended to (a damaged right edge), else None. A damaged
        #: log still opens, so that :meth:`verify` can name the first bad entry.
        self.damaged: str | None = None
        try:
            self._front = self._load_frontier(self._stored_size())
        except StorageError as exc:
            self.damaged = (
                f"the audit log is damaged ({exc}); `datanet audit verify` names the first "
                "bad entry; nothing more is logged until the file is restored"
            )
            self._front = MerkleFrontier()
        except BaseException:
            self._conn.close()
            raise

    @property
    def _frontier(self) -> MerkleFrontier:
        """The right edge of the tree; refuses when the log is damaged."""
        if self.damaged is not None:
            raise StorageError(self.damaged)
        return self._front

    @_frontier.setter
    def _frontier(self, frontier: MerkleFrontier) -> None:
        self._front = frontier

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with storage_errors("closing the audit log failed"):
            self._conn.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading the tree --------------------------------------------------

    @property
    def size(self) -> int:
        """Entries in the log."""
        if self.damaged is not None:
            return self._stored_size()
        return self._frontier.size

    def _stored_size(self) -> int:
        with storage_errors("audit log read failed"):
            row = self._conn.execute("SELECT max(idx) FROM audit_entries").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def _node(self, level: int, index: int) -> bytes:
        """The stored hash of the complete subtree ``(level, index)``."""
        last = ((index + 1) << level) - 1
        with storage_errors("audit log read failed"):
            row = self._conn.execute(
                "SELECT leaf, nodes FROM audit_entries WHERE idx = ?", (last,)
            ).fetchone()
        if row is None:
            raise StorageError(f"audit entry {last} is missing (run `datanet audit verify`)")
        if level == 0:
            value = bytes(row[0])
        else:
            value = bytes(row[1])[(level - 1) * HASH_SIZE : level * HASH_SIZE]
        if len(value) != HASH_SIZE:
            raise StorageError(f"audit entry {last} is damaged (run `datanet audit verify`)")
        return value

    def _subtree(self, start: int, end: int) -> bytes:
        """MTH of leaves ``[start, end)`` from the stored complete subtrees."""
        n = end - start
        if n & (n - 1) == 0 and start % n == 0:
            return self._node(n.bit_length() - 1, start // n)
        k = 1 << ((n - 1).bit_length() - 1)
        return node_hash(self._subtree(start, start + k), self._subtree(start + k, end))

    def _load_frontier(self, size: int) -> MerkleFrontier:
        spans = MerkleFrontier.subtree_spans(size)
        return MerkleFrontier(size, [self._node(level, index) for level, index in spans])

    def _check_size(self, name: str, size: int | None) -> int:
        if size is None:
            return self.size
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= self.size:
            raise InvalidInput(f"{name} must be between 0 and the log's size {self.size}")
        return size

    def root(self, size: int | None = None) -> bytes:
        """The root of the first ``size`` entries (default: all; ``EMPTY_ROOT`` for none).

        Raises:
            InvalidInput: ``size`` is larger than the log.
            StorageError: the database failed or is damaged.
        """
        size = self._check_size("size", size)
        if size == self.size:
            return self._frontier.root()
        if size == 0:
            return EMPTY_ROOT
        return self._load_frontier(size).root()

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The proof that entry ``index`` is in the tree of the first ``size`` entries.

        Raises:
            InvalidInput: ``index`` is not below ``size`` or ``size`` beyond the log.
            StorageError: the database failed or is damaged.
        """
        size = self._check_size("size", size)
        return inclusion_path(index, size, self._subtree)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """The proof that the tree of ``size2`` (default: all) entries extends that of ``size1``.

        Raises:
            InvalidInput: not ``0 <= size1 <= size2 <= size``.
            StorageError: the database failed or is damaged.
        """
        size2 = self._check_size("size2", size2)
        return consistency_path(size1, size2, self._subtree)

    # -- reading entries ---------------------------------------------------

    @staticmethod
    def _log_entry(index: int, raw: bytes, leaf: bytes) -> LogEntry:
        try:
            entry = decode_entry(raw)
        except DatanetError as exc:
            raise StorageError(
                f"audit entry {index} is damaged: {exc} (run `datanet audit verify`)"
            ) from None
        return LogEntry(index, entry, raw, leaf)

    def entry(self, index: int) -> LogEntry:
        """Entry ``index``.

        Raises:
            NotFound: there is no such entry.
            StorageError: the database failed or the row is damaged.
        """
        with storage_errors("audit log read failed"):
            row = self._conn.execute(
                "SELECT entry, leaf FROM audit_entries WHERE idx = ?", (index,)
            ).fetchone()
        if row is None:
            raise NotFound(f"the audit log has no entry {index} (size {self.size})")
        return self._log_entry(index, bytes(row[0]), bytes(row[1]))

    def entries(
        self, since: int = 0, kind: EntryKind | str | None = None, limit: int = 100
    ) -> list[LogEntry]:
        """Entries from index ``since`` on, oldest first, optionally of one ``kind``.

        Args:
            since: the first index to consider.
            kind: only entries of this kind.
            limit: at most this many (1 to ``MAX_ENTRIES_PAGE``).

        Raises:
            InvalidInput: ``kind`` is unknown or ``limit`` out of range.
            StorageError: the database failed or a row is damaged.
        """
        if not 1 <= limit <= MAX_ENTRIES_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_ENTRIES_PAGE}")
        if kind is not None and kind not in set(EntryKind):
            raise InvalidInput(f"unknown audit entry kind {str(kind)[:40]!r}")
        with storage_errors("audit log read failed"):
            if kind is None:
                rows = self._conn.execute(
                    "SELECT idx, entry, leaf FROM audit_entries WHERE idx >= ? "
                    "ORDER BY idx LIMIT ?",
                    (max(since, 0), limit),
                ).fetchall()
            else:
                rows = self._conn.execute(
                    "SELECT idx, entry, leaf FROM audit_entries WHERE kind = ? AND idx >= ? "
                    "ORDER BY idx LIMIT ?",
                    (str(kind), max(since, 0), limit),
                ).fetchall()
        return [self._log_entry(int(i), bytes(raw), bytes(leaf)) for i, raw, leaf in rows]

    # -- appending ---------------------------------------------------------

    def append(self, entry: AuditEntry) -> int:
        """Append one entry durably; returns its index.

        Raises:
            InvalidInput: ``entry`` is not an :class:`AuditEntry`.
            StorageError: nothing was written.
        """
        return self.append_many([entry])[0]

    def append_many(self, entries: Iterable[AuditEntry]) -> list[int]:
        """Append entries in one durable transaction; returns their indexes, in order.

        Either all of them are in the log when this returns, or none is.

        Raises:
            InvalidInput: an item is not an :class:`AuditEntry`.
            StorageError: nothing was written.
        """
        encoded = []
        for e in entries:
            if not isinstance(e, AuditEntry):
                raise InvalidInput("the audit log appends AuditEntry values")
            encoded.append((str(e.kind), e.timestamp, e.encode()))
        if not encoded:
            return []
        with transaction(self._conn) as conn:
            if self._stored_size() != self._frontier.size:  # another writer appended
                self._frontier = self._load_frontier(self._stored_size())
            frontier = self._frontier.copy()
            first = frontier.size
            rows = []
            for kind, timestamp, raw in encoded:
                index = frontier.size
                leaf = leaf_hash(raw)
                closed = frontier.append(leaf)
                nodes = b"".join(h for _, _, h in closed)
                rows.append((index, kind, timestamp, raw, leaf, nodes, row_check(index, leaf)))
            conn.executemany("INSERT INTO audit_entries VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        self._frontier = frontier
        return list(range(first, frontier.size))

    # -- signed heads ------------------------------------------------------

    def sign_head(self, key: KeyPair, chain: Sequence[bytes], now: int) -> bytes:
        """Sign the current tree head with the node's key and keep it; returns its bytes.

        Raises:
            ScopeError, CertificateError, DecodeError: ``chain`` is not ``key``'s.
            StorageError: the head was not stored.
        """
        head = TreeHead(node=key.peer_id, size=self.size, root=self.root(), timestamp=now)
        raw = sign_tree_head(head, key, chain)
        with transaction(self._conn) as conn:
            conn.execute(
                "INSERT INTO audit_heads (size, timestamp, root, raw) VALUES (?, ?, ?, ?)",
                (head.size, head.timestamp, head.root, raw),
            )
        return raw

    def heads(self) -> list[StoredHead]:
        """Every head this node signed, in signing order.

        Raises:
            StorageError: the database failed or a stored head is damaged.
        """
        with storage_errors("audit log read failed"):
            rows = self._conn.execute("SELECT raw FROM audit_heads ORDER BY id").fetchall()
        return [self._stored_head(bytes(r[0])) for r in rows]

    def find_head(self, size: int, root: bytes, timestamp: int) -> StoredHead | None:
        """The head this node signed of ``size`` entries, ``root`` and ``timestamp``, if any.

        Raises:
            StorageError: the database failed or the head is damaged.
        """
        with storage_errors("audit log read failed"):
            row = self._conn.execute(
                "SELECT raw FROM audit_heads WHERE size = ? AND root = ? AND timestamp = ? "
                "ORDER BY id DESC LIMIT 1",
                (size, root, timestamp),
            ).fetchone()
        return None if row is None else self._stored_head(bytes(row[0]))

    def head_count(self) -> int:
        """How many heads this node signed."""
        with storage_errors("audit log read failed"):
            return int(self._conn.execute("SELECT count(*) FROM audit_heads").fetchone()[0])

    def latest_head(self) -> StoredHead | None:
        """The most recently signed head, or None.

        Raises:
            StorageError: the database failed or the head is damaged.
        """
        with storage_errors("audit log read failed"):
            row = self._conn.execute(
                "SELECT raw FROM audit_heads ORDER BY id DESC LIMIT 1"
            ).fetchone()
        return None if row is None else self._stored_head(bytes(row[0]))

    @staticmethod
    def _stored_head(raw: bytes) -> StoredHead:
        try:
            head, _ = open_tree_head(raw)
        except DatanetError as exc:
            raise StorageError(f"a stored tree head is damaged: {exc}") from None
        return StoredHead(head, raw)

    def receipt(self, index: int, head: bytes | None = None) -> bytes:
        """A receipt for entry ``index``: a signed head (default: the latest), the entry, its proof.

        Args:
            index: the entry.
            head: signed head bytes of this log covering ``index`` (default: the latest).

        Raises:
            NotFound: no head has been signed yet.
            InvalidInput: the head does not cover ``index`` or is not this log's.
            StorageError: the database failed or is damaged.
        """
        if head is None:
            latest = self.latest_head()
            if latest is None:
                raise NotFound("the audit log has no signed head yet")
            stored = latest
        else:
            try:
                stored = StoredHead(open_tree_head(head)[0], bytes(head))
            except DatanetError as exc:
                raise InvalidInput(f"not a signed tree head: {exc}") from None
        size = stored.head.size
        if not 0 <= index < size:
            raise InvalidInput(f"the head of size {size} does not cover entry {index}")
        if size > self.size or self.root(size) != stored.head.root:
            raise InvalidInput("the head is not of this log")
        proof = self.inclusion_proof(index, size)
        return make_receipt(stored.raw, index, proof, self.entry(index).raw)

    # -- verification --------------------------------------------------------

    def verify(self) -> VerifyReport:
        """Recompute the whole tree from the entry bytes and check every stored part.

        Checks, entry by entry in index order: no gap, the entry decodes, its leaf
        hash and row check, the subtree hashes it closes, and every signed head
        whose size is reached. Stops at the first problem and names that entry.

        Raises:
            StorageError: the database cannot be read.
        """
        with storage_errors("audit log read failed"):
            self._conn.execute("BEGIN")  # one snapshot of entries and heads (WAL: no lock)
        try:
            return self._verify()
        finally:
            with storage_errors("audit log read failed"):
                self._conn.execute("ROLLBACK")

    def _verify(self) -> VerifyReport:
        with storage_errors("audit log read failed"):
            head_rows = self._conn.execute(
                "SELECT id, size, timestamp, root, raw FROM audit_heads ORDER BY size, id"
            ).fetchall()
            stored_size = self._stored_size()
        frontier = MerkleFrontier()
        state = _VerifyState(frontier, stored_size)
        heads = list(head_rows)
        signer: bytes | None = None
        for _, size, timestamp, root, raw in heads:
            try:
                head, env = open_tree_head(bytes(raw))
            except DatanetError as exc:
                return state.fail(min(int(size), stored_size), f"a stored head is damaged: {exc}")
            if (head.size, head.timestamp, head.root) != (int(size), int(timestamp), bytes(root)):
                return state.fail(
                    min(head.size, stored_size), "a stored head's columns differ from its record"
                )
            if signer is not None and env.signer != signer:
                return state.fail(0, "the stored heads are signed by different nodes")
            signer = env.signer
        next_head = 0

        def check_heads(reached: int) -> str | None:
            nonlocal next_head
            while next_head < len(heads) and heads[next_head][1] == reached:
                _, size, timestamp, root, _ = heads[next_head]
                if bytes(root) != frontier.root():
                    return (
                        f"the head signed at {timestamp} for {size} entries does not match "
                        f"them: an entry from {state.covered} to {size - 1} was changed"
                    )
                state.covered = reached
                state.heads_checked += 1
                next_head += 1
            return None

        problem = check_heads(0)
        if problem is not None:
            return state.fail(state.covered, problem)
        with storage_errors("audit log read failed"):
            cursor = self._conn.execute(
                "SELECT idx, entry, leaf, nodes, rowcheck FROM audit_entries ORDER BY idx"
            )
            for idx, stored_raw, leaf, nodes, check in cursor:
                p = frontier.size
                if idx != p:
                    return state.fail(p, f"entry {p} is missing (a row was deleted)")
                raw = bytes(stored_raw)
                try:
                    decode_entry(raw)
                except DatanetError as exc:
                    return state.fail(p, f"entry {p} does not decode: {exc}")
                computed = leaf_hash(raw)
                if bytes(leaf) != computed:
                    return state.fail(
                        p, f"entry {p} was edited: it no longer matches its leaf hash"
                    )
                if bytes(check) != row_check(p, computed):
                    return state.fail(
                        p, f"entry {p} is out of place: its row was written at another index"
                    )
                closed = frontier.append(computed)
                stored_nodes = bytes(nodes)
                for n, (level, _, h) in enumerate(closed):
                    if stored_nodes[n * HASH_SIZE : (n + 1) * HASH_SIZE] != h:
                        start = p + 1 - (1 << level)
                        return state.fail(
                            start,
                            f"the stored hash of entries {start} to {p} does not match them: "
                            "one of them was rewritten, or the hash was edited",
                        )
                if len(stored_nodes) != len(closed) * HASH_SIZE:
                    return state.fail(p, f"entry {p} stores subtree hashes it does not close")
                problem = check_heads(frontier.size)
                if problem is not None:
                    return state.fail(state.covered, problem)
        if next_head < len(heads):
            size = heads[next_head][1]
            return state.fail(
                frontier.size,
                f"a head was signed for {size} entries but the log holds {frontier.size}: "
                f"entries from {frontier.size} on were deleted",
            )
        return VerifyReport(
            ok=True,
            size=frontier.size,
            root=frontier.root(),
            entries_checked=frontier.size,
            heads_checked=state.heads_checked,
        )


class _VerifyState:
    """Progress of one :meth:`AuditLog.verify` run."""

    def __init__(self, frontier: MerkleFrontier, stored_size: int) -> None:
        self.frontier = frontier
        self.stored_size = stored_size
        self.covered = 0  # entries below this are covered by a matching signed head
        self.heads_checked = 0

    def fail(self, index: int, reason: str) -> VerifyReport:
        return VerifyReport(
            ok=False,
            size=self.stored_size,
            root=self.frontier.root(),
            entries_checked=self.frontier.size,
            heads_checked=self.heads_checked,
            first_bad_index=index,
            reason=reason,
        )
