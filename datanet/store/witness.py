"""What this node witnessed of other organizations' audit logs, on SQLite.

Two tables: ``witness_heads`` holds the last checked tree head per log node
(what the next head must be proven to extend, kept across restarts), and
``witness_alarms`` every inconsistency found (shrink, fork, bad proof, bad
head) with the signed heads that prove it, newest first when read.

Invariants:
* The schema is versioned in its own ``witness_meta`` table, so the store can
  live in its own file or share another database (the node's, or its audit log's).
* At most ``max_logs`` heads and ``max_alarms`` alarms are kept: the least
  recently checked heads and the oldest alarms go first.
* Every write is one durable transaction; ``sqlite3`` errors leave as
  :class:`~datanet.errors.StorageError`.
* Text kept is printable and bounded (org ids, details at 400 characters);
  evidence is at most ``MAX_EVIDENCE`` heads of ``MAX_HEAD_SIZE`` bytes each.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datanet.errors import DatanetError, InvalidInput, StorageError
from datanet.records.audit import HASH_SIZE, MAX_HEAD_SIZE
from datanet.store.db import connect, migrate, storage_errors, transaction
from identity.encoding import pack, unpack
from identity.keys import PeerId

__all__ = [
    "ALARM_KINDS",
    "MAX_ALARMS",
    "MAX_EVIDENCE",
    "MAX_WITNESSED",
    "StoredAlarm",
    "WitnessStore",
    "WitnessedHead",
]

MAX_WITNESSED = 10_000
MAX_ALARMS = 10_000
#: Signed heads kept as the evidence of one alarm.
MAX_EVIDENCE = 4
MAX_DETAIL = 400
MAX_ORG = 200
ALARM_KINDS = frozenset({"shrink", "fork", "bad_proof", "bad_head"})

_V1 = """
CREATE TABLE witness_heads (
    log_node    BLOB PRIMARY KEY,         -- the log node's binary peer id
    log_org     TEXT NOT NULL,
    size        INTEGER NOT NULL,
    root        BLOB NOT NULL,
    timestamp   INTEGER NOT NULL,         -- the head's own time
    raw         BLOB NOT NULL,            -- the signed dn/audit-head/v1 envelope
    from_peer   BLOB NOT NULL,            -- who sent it
    checked_at  REAL NOT NULL,            -- when this node accepted it
    cosigned    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX witness_heads_by_time ON witness_heads (checked_at);
CREATE TABLE witness_alarms (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          REAL NOT NULL,
    kind        TEXT NOT NULL,
    log_node    BLOB NOT NULL,
    log_org     TEXT NOT NULL,
    detail      TEXT NOT NULL,
    heads       BLOB NOT NULL             -- MessagePack list of signed head envelopes
);
"""

_MIGRATIONS: tuple[str, ...] = (_V1,)


def _text(value: str, limit: int) -> str:
    return "".join(c if c.isprintable() else " " for c in str(value))[:limit]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _peer_text(raw: bytes) -> str:
    try:
        return str(PeerId.from_bytes(raw))
    except DatanetError:
        return raw.hex()


@dataclass(frozen=True)
class WitnessedHead:
    """The last checked head of one log node.

    Attributes:
        log_node: its binary peer id.
        log_org: its organization.
        size, root, timestamp: the head's fields.
        raw: the signed envelope.
        from_peer: who sent it.
        checked_at: when this node accepted it (Unix seconds).
        cosigned: whether this node's cosignature reached the log node.
    """

    log_node: bytes
    log_org: str
    size: int
    root: bytes
    timestamp: int
    raw: bytes
    from_peer: bytes
    checked_at: float
    cosigned: bool = False

    def to_json(self) -> dict[str, Any]:
        """The API's shape (``audit_witnessed``)."""
        return {
            "log_node": _peer_text(self.log_node),
            "log_org": self.log_org,
            "size": self.size,
            "root": self.root.hex(),
            "timestamp": self.timestamp,
            "checked_at": self.checked_at,
            "cosigned": self.cosigned,
        }


@dataclass(frozen=True)
class StoredAlarm:
    """One inconsistency found in another node's log.

    Attributes:
        id: storage order.
        at: when it was found.
        kind: ``shrink``, ``fork``, ``bad_proof`` or ``bad_head``.
        log_node, log_org: whose log.
        reported_by: this node (the witness), as text.
        detail: what was wrong, for people.
        heads: the signed heads that show it.
    """

    id: int
    at: float
    kind: str
    log_node: bytes
    log_org: str
    reported_by: str
    detail: str
    heads: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        """The API's shape (``audit_alarms``)."""
        return {
            "at": self.at,
            "kind": self.kind,
            "log_node": _peer_text(self.log_node),
            "log_org": self.log_org,
            "reported_by": self.reported_by,
            "detail": self.detail,
            "heads": [_b64(h) for h in self.heads],
        }


class WitnessStore:
    """Last heads and alarms of the logs this node witnesses.

    Args:
        path: the database file (its own, or shared with another store).
        reported_by: this node's peer id as text (recorded in alarms).
        max_logs: heads kept at most.
        max_alarms: alarms kept at most.

    Raises:
        StorageError: the file cannot be opened or migrated.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        reported_by: str,
        max_logs: int = MAX_WITNESSED,
        max_alarms: int = MAX_ALARMS,
    ) -> None:
        self.path = Path(path)
        self.reported_by = _text(reported_by, 100)
        self.max_logs = max_logs
        self.max_alarms = max_alarms
        self._conn = connect(self.path)
        try:
            with storage_errors("witness store schema setup failed"):
                self._conn.execute(
                    "CREATE TABLE IF NOT EXISTS witness_meta "
                    "(name TEXT PRIMARY KEY, version INTEGER NOT NULL)"
                )
            migrate(
                self._conn,
                _MIGRATIONS,
                get_version="SELECT COALESCE("
                "(SELECT version FROM witness_meta WHERE name = 'witness'), 0)",
                set_version="INSERT OR REPLACE INTO witness_meta VALUES ('witness', {version})",
            )
        except BaseException:
            self._conn.close()
            raise

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with storage_errors("closing the witness store failed"):
            self._conn.close()

    def __enter__(self) -> WitnessStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- last heads ----------------------------------------------------------

    def put_head(self, head: WitnessedHead) -> None:
        """Keep ``head`` as the last checked head of its log (not cosigned yet).

        Raises:
            InvalidInput: a field is out of bounds.
            StorageError: nothing was written.
        """
        if len(head.root) != HASH_SIZE or len(head.raw) > MAX_HEAD_SIZE:
            raise InvalidInput("a witnessed head has a 32-byte root and at most 6 KiB of envelope")
        with transaction(self._conn) as conn:
            conn.execute(
                "INSERT OR REPLACE INTO witness_heads VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)",
                (
                    head.log_node,
                    _text(head.log_org, MAX_ORG),
                    head.size,
                    head.root,
                    head.timestamp,
                    head.raw,
                    head.from_peer,
                    head.checked_at,
                ),
            )
            conn.execute(
                "DELETE FROM witness_heads WHERE log_node IN (SELECT log_node FROM witness_heads "
                "ORDER BY checked_at DESC LIMIT -1 OFFSET ?)",
                (self.max_logs,),
            )

    def mark_cosigned(self, log_node: bytes, raw: bytes) -> bool:
        """Record that the cosignature of head ``raw`` reached ``log_node``; False if not last.

        Raises:
            StorageError: the database failed.
        """
        with transaction(self._conn) as conn:
            cur = conn.execute(
                "UPDATE witness_heads SET cosigned = 1 WHERE log_node = ? AND raw = ?",
                (log_node, raw),
            )
        return cur.rowcount > 0

    def heads(self) -> list[WitnessedHead]:
        """Every last head kept, least recently checked first.

        Raises:
            StorageError: the database failed.
        """
        with storage_errors("witness store read failed"):
            rows = self._conn.execute(
                "SELECT log_node, log_org, size, root, timestamp, raw, from_peer, checked_at, "
                "cosigned FROM witness_heads ORDER BY checked_at, log_node"
            ).fetchall()
        return [
            WitnessedHead(
                bytes(r[0]),
                str(r[1]),
                int(r[2]),
                bytes(r[3]),
                int(r[4]),
                bytes(r[5]),
                bytes(r[6]),
                float(r[7]),
                bool(r[8]),
            )
            for r in rows
        ]

    # -- alarms --------------------------------------------------------------

    def add_alarm(
        self,
        *,
        at: float,
        kind: str,
        log_node: bytes,
        log_org: str,
        detail: str,
        heads: tuple[bytes, ...] | list[bytes],
    ) -> int:
        """Keep an alarm; returns its id (the oldest beyond ``max_alarms`` are dropped).

        Raises:
            InvalidInput: ``kind`` is unknown or the evidence is over its bounds.
            StorageError: nothing was written.
        """
        if kind not in ALARM_KINDS:
            raise InvalidInput(f"unknown alarm kind {kind[:40]!r}")
        evidence = [bytes(h) for h in heads][:MAX_EVIDENCE]
        if any(len(h) > MAX_HEAD_SIZE for h in evidence):
            raise InvalidInput(f"an alarm's heads are at most {MAX_HEAD_SIZE} bytes each")
        with transaction(self._conn) as conn:
            cur = conn.execute(
                "INSERT INTO witness_alarms (at, kind, log_node, log_org, detail, heads) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    at,
                    kind,
                    log_node,
                    _text(log_org, MAX_ORG),
                    _text(detail, MAX_DETAIL),
                    pack(evidence),
                ),
            )
            conn.execute(
                "DELETE FROM witness_alarms WHERE id IN (SELECT id FROM witness_alarms "
                "ORDER BY id DESC LIMIT -1 OFFSET ?)",
                (self.max_alarms,),
            )
        return int(cur.lastrowid or 0)

    def alarms(self, limit: int = 100) -> list[StoredAlarm]:
        """The newest ``limit`` alarms, newest first.

        Raises:
            InvalidInput: ``limit`` is not between 1 and ``MAX_ALARMS``.
            StorageError: the database failed or a row is damaged.
        """
        if not 1 <= limit <= MAX_ALARMS:
            raise InvalidInput(f"limit must be between 1 and {MAX_ALARMS}")
        with storage_errors("witness store read failed"):
            rows = self._conn.execute(
                "SELECT id, at, kind, log_node, log_org, detail, heads FROM witness_alarms "
                "ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        out = []
        for r in rows:
            try:
                heads = unpack(bytes(r[6]), max_size=MAX_EVIDENCE * (MAX_HEAD_SIZE + 8) + 8)
            except DatanetError as exc:
                raise StorageError(f"witness alarm {r[0]} is damaged: {exc}") from None
            if not isinstance(heads, list) or not all(isinstance(h, bytes) for h in heads):
                raise StorageError(f"witness alarm {r[0]} is damaged")
            out.append(
                StoredAlarm(
                    int(r[0]),
                    float(r[1]),
                    str(r[2]),
                    bytes(r[3]),
                    str(r[4]),
                    self.reported_by,
                    str(r[5]),
                    tuple(heads),
                )
            )
        return out

    def alarm_count(self) -> int:
        """Alarms kept.

        Raises:
            StorageError: the database failed.
        """
        with storage_errors("witness store read failed"):
            return int(self._conn.execute("SELECT count(*) FROM witness_alarms").fetchone()[0])
