"""Unit tests of the node database (datanet/storage.py) on real SQLite files."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from datanet.errors import SignatureError, StorageError
from datanet.node.paths import DB_FILENAME
from datanet.store.db import (
    MIGRATIONS,
    SCHEMA_VERSION,
    LedgerRow,
    Storage,
    connect,
    migrate,
    transaction,
)
from routing.stores import ProviderStore, PutOutcome, RecordStore, StoredRecord
from routing.wire import Peer


class SeqValidator:
    def validate(self, key: bytes, value: bytes, now: int) -> None:
        if not value.partition(b":")[0].isdigit():
            raise SignatureError("bad")

    def select(self, key: bytes, values: Sequence[bytes]) -> int:
        seqs = [int(v.partition(b":")[0]) for v in values]
        return seqs.index(max(seqs))


@pytest.fixture
def db(tmp_path: Path) -> Storage:
    s = Storage(tmp_path / DB_FILENAME)
    yield s  # type: ignore[misc]
    s.close()


def test_fresh_file_is_wal_full_and_versioned(tmp_path: Path) -> None:
    path = tmp_path / DB_FILENAME
    with Storage(path) as s:
        assert s.schema_version == SCHEMA_VERSION
        assert s.integrity_check() == ["ok"]
        assert s._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert s._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    with Storage(path) as again:  # reopening does not migrate twice
        assert again.schema_version == SCHEMA_VERSION


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / DB_FILENAME
    Storage(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StorageError, match=r"newer|upgrade"):
        Storage(path)


def test_failed_migration_rolls_back(tmp_path: Path) -> None:
    conn = connect(tmp_path / "m.sqlite")
    good = "CREATE TABLE a (x INTEGER);"
    bad = "CREATE TABLE b (x INTEGER); INSERT INTO nowhere VALUES (1);"
    with pytest.raises(StorageError):
        migrate(conn, [good, bad])
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"a"}
    assert migrate(conn, [good, "CREATE TABLE b (x INTEGER);"]) == 2
    conn.close()


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / DB_FILENAME
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StorageError):
        Storage(path)
    with pytest.raises(StorageError):
        Storage(tmp_path / "missing-dir" / DB_FILENAME)


def test_transaction_rolls_back_on_error(db: Storage) -> None:
    def write_then_fail() -> None:
        with transaction(db._conn) as conn:
            conn.execute("INSERT INTO peers (peer_id, addrs, last_seen) VALUES (x'01', x'90', 1)")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_then_fail()
    assert db.load_peers() == []
    with pytest.raises(StorageError):
        db.put_own_descriptor(b"k", None, sequence=1, expires_at=1, now=0)  # type: ignore[arg-type]


def test_record_store_write_through_and_restore(tmp_path: Path) -> None:
    path = tmp_path / DB_FILENAME
    with Storage(path) as s:
        store = RecordStore(SeqValidator(), sink=s, max_records=2)
        store.put(b"/t/own", b"1:mine", now=0, from_peer=None)
        store.put(b"/t/a", b"1:a", now=0, from_peer=b"p", expires_at=100)
        replaced = store.put(b"/t/a", b"2:a", now=1, from_peer=b"p", expires_at=100)
        assert replaced is PutOutcome.REPLACED_OLDER
        store.put(b"/t/b", b"1:b", now=2, from_peer=b"q", expires_at=150)  # evicts /t/a
    with Storage(path) as s:
        rows = {r.key: r for r in s.load_records()}
        assert set(rows) == {b"/t/own", b"/t/b"}  # /t/a expired soonest and was evicted
        assert rows[b"/t/own"] == StoredRecord(b"/t/own", b"1:mine", math.inf, 0, None, True)
        assert rows[b"/t/b"].from_peer == b"q"
        fresh = RecordStore(SeqValidator(), sink=s)
        assert fresh.restore(s.load_records(), now=160) == 1  # /t/b expired meanwhile
        assert fresh.get(b"/t/own", now=160) == b"1:mine"
        assert [r.key for r in s.load_records()] == [b"/t/own"]


def test_storage_failure_means_not_stored(tmp_path: Path) -> None:
    s = Storage(tmp_path / DB_FILENAME)
    store = RecordStore(SeqValidator(), sink=s)
    providers = ProviderStore(sink=s)
    s.close()
    with pytest.raises(StorageError):
        store.put(b"/t/a", b"1:a", now=0, from_peer=b"p")
    with pytest.raises(StorageError):
        providers.add(b"k", Peer(b"p"), now=0, from_peer=b"p")
    assert len(store) == 0
    assert len(providers) == 0


def test_provider_store_write_through_and_restore(tmp_path: Path) -> None:
    path = tmp_path / DB_FILENAME
    with Storage(path) as s:
        store = ProviderStore(sink=s, ttl=100)
        store.add(b"k", Peer(b"p1", (b"a1", b"a2")), now=0, from_peer=b"p1")
        store.add(b"k", Peer(b"me", (b"m",)), now=10, from_peer=None)
        store.add(b"k", Peer(b"p1", (b"a3",)), now=20, from_peer=b"p1")
        store.add(b"k2", Peer(b"p2"), now=0, from_peer=b"p2")
        store.expire(100)
    with Storage(path) as s:
        rows = sorted(s.load_providers(), key=lambda e: e.peer.id)
        assert [(e.key, e.peer, e.own) for e in rows] == [
            (b"k", Peer(b"me", (b"m",)), True),
            (b"k", Peer(b"p1", (b"a3",)), False),
        ]
        again = ProviderStore()
        assert again.restore(rows, now=50) == 2
        assert again.get(b"k", now=50) == [Peer(b"p1", (b"a3",)), Peer(b"me", (b"m",))]


def test_other_peers_values_and_providers_commit_without_an_fsync(db: Storage) -> None:
    # Soft state their owners put again: an fsync per PUT_VALUE or ADD_PROVIDER
    # served stalled every node sharing the event loop. Our own entries, and
    # removals, stay fsynced.
    statements: list[str] = []
    db._conn.set_trace_callback(statements.append)
    records = RecordStore(SeqValidator(), sink=db)
    providers = ProviderStore(sink=db, ttl=100)

    def synchronous_of(change: Callable[[], object]) -> str:
        statements.clear()
        change()
        return statements[0]

    peer_value = synchronous_of(
        lambda: records.put(b"/t/a", b"1:a", now=0, from_peer=b"p", expires_at=50)
    )
    own_value = synchronous_of(lambda: records.put(b"/t/own", b"1:mine", now=0, from_peer=None))
    peer_entry = synchronous_of(lambda: providers.add(b"k", Peer(b"p1"), now=0, from_peer=b"p1"))
    own_entry = synchronous_of(lambda: providers.add(b"k", Peer(b"me"), now=0, from_peer=None))
    assert (peer_value, peer_entry) == ("PRAGMA synchronous=NORMAL",) * 2
    assert (own_value, own_entry) == ("PRAGMA synchronous=FULL",) * 2
    statements.clear()
    records.expire(60)
    assert statements[0] == "PRAGMA synchronous=FULL"
    db._conn.set_trace_callback(None)


def test_address_book(db: Storage) -> None:
    db.upsert_peer(b"p1", [b"x"], now=10, ok=True)
    db.upsert_peer(b"p1", [b"y"], now=20)  # seen again, not (yet) ok: last_ok stays
    db.upsert_peer(b"p2", [b"z"], now=30)
    db.upsert_peer(b"p3", [b"w"] * 40, now=5, ok=True)
    p1 = db.get_peer(b"p1")
    assert p1 is not None
    assert (p1.addrs, p1.last_seen, p1.last_ok) == ((b"y",), 20, 10)
    assert [p.peer_id for p in db.load_peers()] == [b"p1", b"p3", b"p2"]
    assert len(db.get_peer(b"p3").addrs) == 32  # type: ignore[union-attr]
    assert db.get_peer(b"nobody") is None
    assert db.prune_peers(older_than=10) == 1
    assert [p.peer_id for p in db.load_peers(limit=5)] == [b"p1", b"p2"]


def test_address_book_is_bounded_least_recently_seen_go_first(tmp_path: Path) -> None:
    with Storage(tmp_path / DB_FILENAME, max_peers=3) as db:
        for n in range(3):
            db.upsert_peer(b"p%d" % n, [b"a"], now=10 + n, ok=True)
        db.upsert_peer(b"p0", [b"a"], now=20)  # seen again: now the most recent
        db.upsert_peer(b"p3", [b"a"], now=21)  # a fourth peer evicts p1 (seen at 11)
        assert sorted(p.peer_id for p in db.load_peers()) == [b"p0", b"p2", b"p3"]
        for n in range(4, 50):
            db.upsert_peer(b"p%d" % n, [b"a"], now=100 + n)
        assert sorted(p.peer_id for p in db.load_peers()) == [b"p47", b"p48", b"p49"]
        assert db.prune_peers(older_than=149) == 2
        assert [p.peer_id for p in db.load_peers()] == [b"p49"]


def test_version_1_files_migrate_and_keep_their_rows(tmp_path: Path) -> None:
    path = tmp_path / DB_FILENAME
    conn = connect(path)
    migrate(conn, MIGRATIONS[:1])
    conn.execute("INSERT INTO peers VALUES (x'01', x'90', 1, NULL)")
    conn.execute("INSERT INTO routing_snapshot VALUES (x'01', 0, 1)")
    conn.execute("INSERT INTO revocations VALUES ('o', 1, x'00')")
    conn.close()
    with Storage(path) as db:
        assert db.schema_version == SCHEMA_VERSION == 4
        tables = {r[0] for r in db._query("SELECT name FROM sqlite_master WHERE type='table'")}
        assert tables == {
            "dht_values",
            "dht_providers",
            "peers",
            "own_descriptors",
            "ledger_records",
        }
        assert [p.peer_id for p in db.load_peers()] == [b"\x01"]
        assert db.integrity_check() == ["ok"]


def test_own_descriptors(db: Storage) -> None:
    assert db.put_own_descriptor(b"/dn/a", b"v2", sequence=2, expires_at=500, now=1)
    assert not db.put_own_descriptor(b"/dn/a", b"v1", sequence=1, expires_at=900, now=2)
    assert db.put_own_descriptor(b"/dn/a", b"v2'", sequence=2, expires_at=600, now=3)
    assert db.put_own_descriptor(b"/dn/b", b"w", sequence=1, expires_at=100, now=3)
    rows = db.load_own_descriptors()
    assert [(r.key, r.raw, r.sequence) for r in rows] == [
        (b"/dn/b", b"w", 1),
        (b"/dn/a", b"v2'", 2),
    ]
    assert db.delete_own_descriptor(b"/dn/b")
    assert not db.delete_own_descriptor(b"/dn/b")


def test_corrupt_address_rows_are_a_storage_error(db: Storage) -> None:
    db._conn.execute("INSERT INTO peers VALUES (x'01', x'c1', 1, NULL)")
    with pytest.raises(StorageError):
        db.load_peers()


def test_ledger_records_keep_the_newest_per_key(db: Storage) -> None:
    row = LedgerRow(b"/dn-rev/o", "revocation", 2, 100, None, b"v2")
    assert db.put_ledger_record(row)
    assert not db.put_ledger_record(LedgerRow(b"/dn-rev/o", "revocation", 1, 90, None, b"v1"))
    assert not db.put_ledger_record(row)  # an equal sequence is not newer
    assert db.ledger_record(b"/dn-rev/o") == row
    newer = LedgerRow(b"/dn-rev/o", "revocation", 3, 120, 500.0, b"v3")
    assert db.put_ledger_record(newer)
    assert db.load_ledger_records() == [newer]
    assert db.delete_ledger_record(b"/dn-rev/o")
    assert db.ledger_record(b"/dn-rev/o") is None
