"""Unit tests of the SQLite audit log: append, persist, reopen, proofs, heads, receipts,
and ``verify`` naming the first edited, deleted, moved or rewritten entry."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from datanet.errors import InvalidInput, NotFound, ScopeError, StorageError
from datanet.records.audit import (
    EMPTY_ROOT,
    AuditEntry,
    EntryKind,
    leaf_hash,
    merkle_root,
    verify_consistency,
    verify_inclusion,
    verify_receipt,
    verify_tree_head,
)
from datanet.store.audit import AuditLog, row_check
from datanet.testing.clock import NOW
from datanet.testing.records import NODE_A, NODE_B, ORG_A, certificate
from identity.certs import TrustStore

CHAIN = [certificate(ORG_A, NODE_A)]
KINDS = list(EntryKind)


def entry(i: int) -> AuditEntry:
    return AuditEntry.create(KINDS[i % len(KINDS)], NOW + i, b"signed record %d" % i, {"i": i})


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "audit.sqlite"


@pytest.fixture
def log(path: Path) -> Iterator[AuditLog]:
    with AuditLog(path) as opened:
        yield opened


def fill(log: AuditLog, n: int, batch: int = 7) -> list[bytes]:
    entries = [entry(i) for i in range(log.size, log.size + n)]
    for start in range(0, n, batch):
        log.append_many(entries[start : start + batch])
    return [e.encode() for e in entries]


def raw_db(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


# -- appending and reading ----------------------------------------------------------


def test_empty_log(log: AuditLog) -> None:
    assert log.size == 0
    assert log.root() == EMPTY_ROOT
    assert log.entries() == []
    assert log.heads() == []
    assert log.latest_head() is None
    report = log.verify()
    assert report.ok
    assert report.root == EMPTY_ROOT
    with pytest.raises(InvalidInput):
        log.inclusion_proof(0)
    with pytest.raises(NotFound):
        log.receipt(0)


def test_append_returns_indexes_and_persists(path: Path) -> None:
    with AuditLog(path) as log:
        assert log.append(entry(0)) == 0
        assert log.append_many([entry(1), entry(2)]) == [1, 2]
        assert log.append_many([]) == []
        root = log.root()
    with AuditLog(path) as log:
        assert log.size == 3
        assert log.root() == root
        assert log.entry(1).entry == entry(1)
        assert log.entry(1).leaf_hash == leaf_hash(entry(1).encode())
        assert log.append(entry(3)) == 3
        assert log.root() == merkle_root(leaf_hash(entry(i).encode()) for i in range(4))


def test_a_bad_batch_writes_nothing(log: AuditLog) -> None:
    log.append(entry(0))
    with pytest.raises(InvalidInput):
        log.append_many([entry(1), "not an entry"])  # type: ignore[list-item]
    assert log.size == 1
    assert log.verify().ok


def test_entries_filter_and_page(log: AuditLog) -> None:
    fill(log, 30)
    assert [e.index for e in log.entries(since=25)] == [25, 26, 27, 28, 29]
    assert [e.index for e in log.entries(limit=3)] == [0, 1, 2]
    grants = log.entries(kind=EntryKind.GRANT)
    assert [e.index for e in grants] == [i for i in range(30) if KINDS[i % len(KINDS)] == "grant"]
    assert all(e.entry.kind == EntryKind.GRANT for e in grants)
    assert [e.index for e in log.entries(since=10, kind="grant")] == [18]
    with pytest.raises(InvalidInput):
        log.entries(kind="shredded")
    with pytest.raises(InvalidInput):
        log.entries(limit=0)
    with pytest.raises(NotFound):
        log.entry(30)


def test_roots_and_proofs_at_every_size(log: AuditLog) -> None:
    raws = fill(log, 41)
    leaves = [leaf_hash(r) for r in raws]
    for size in range(42):
        assert log.root(size) == merkle_root(leaves[:size])
    for size in (1, 2, 5, 16, 17, 41):
        root = log.root(size)
        for index in range(size):
            verify_inclusion(leaves[index], index, size, log.inclusion_proof(index, size), root)
        for size1 in range(size + 1):
            proof = log.consistency_proof(size1, size)
            verify_consistency(size1, size, log.root(size1), root, proof)
    with pytest.raises(InvalidInput):
        log.root(42)
    with pytest.raises(InvalidInput):
        log.consistency_proof(5, 42)


def test_two_writers_on_one_file_stay_consistent(path: Path) -> None:
    with AuditLog(path) as first, AuditLog(path) as second:
        first.append(entry(0))
        second.append(entry(1))  # sees the other's append before writing
        first.append(entry(2))
        assert first.size == 3
        assert first.root() == merkle_root(leaf_hash(entry(i).encode()) for i in range(3))
        assert first.verify().ok


# -- heads and receipts -------------------------------------------------------------


def test_signed_heads_are_stored_and_verify(log: AuditLog) -> None:
    fill(log, 5)
    first = log.sign_head(NODE_A, CHAIN, NOW + 10)
    fill(log, 3)
    second = log.sign_head(NODE_A, CHAIN, NOW + 20)
    heads = log.heads()
    assert [h.raw for h in heads] == [first, second]
    assert [h.head.size for h in heads] == [5, 8]
    assert heads[0].head.root == log.root(5)
    latest = log.latest_head()
    assert latest is not None
    assert latest.raw == second
    verified = verify_tree_head(second, TrustStore({ORG_A.org_id}), NOW + 20)
    assert verified.head.root == log.root()
    report = log.verify()
    assert report.ok
    assert report.heads_checked == 2


def test_sign_head_refuses_another_nodes_chain(log: AuditLog) -> None:
    with pytest.raises(ScopeError, match="certificate is for node"):
        log.sign_head(NODE_B, CHAIN, NOW)
    assert log.heads() == []


def test_receipts_verify_offline(log: AuditLog) -> None:
    fill(log, 9)
    old_head = log.sign_head(NODE_A, CHAIN, NOW + 10)
    fill(log, 4)
    log.sign_head(NODE_A, CHAIN, NOW + 20)
    trust = TrustStore({ORG_A.org_id})
    receipt = verify_receipt(log.receipt(11), trust, NOW + 30)
    assert receipt.index == 11
    assert receipt.entry == entry(11)
    assert receipt.head.head.size == 13
    from_old = verify_receipt(log.receipt(3, old_head), trust, NOW + 30)
    assert from_old.head.head.size == 9
    with pytest.raises(InvalidInput, match="does not cover"):
        log.receipt(11, old_head)


def test_receipt_refuses_a_head_of_another_log(log: AuditLog, tmp_path: Path) -> None:
    fill(log, 4)
    with AuditLog(tmp_path / "other.sqlite") as other:
        other.append_many([entry(9), entry(8), entry(7), entry(6)])
        foreign = other.sign_head(NODE_A, CHAIN, NOW)
    with pytest.raises(InvalidInput, match="not of this log"):
        log.receipt(1, foreign)


# -- verify finds tampering ----------------------------------------------------------


def signed_log(path: Path, n: int = 20) -> list[bytes]:
    with AuditLog(path) as log:
        raws = fill(log, n)
        log.sign_head(NODE_A, CHAIN, NOW)
    return raws


def verify(path: Path) -> tuple[bool, int | None, str]:
    with AuditLog(path) as log:
        report = log.verify()
    return report.ok, report.first_bad_index, report.reason or ""


def test_an_edited_entry_is_named(path: Path) -> None:
    signed_log(path)
    with raw_db(path) as db:
        db.execute("UPDATE audit_entries SET entry = ? WHERE idx = 13", (entry(99).encode(),))
    ok, index, reason = verify(path)
    assert not ok
    assert index == 13
    assert "edited" in reason


def test_an_undecodable_entry_is_named(path: Path) -> None:
    signed_log(path)
    with raw_db(path) as db:
        db.execute("UPDATE audit_entries SET entry = x'c1' WHERE idx = 4")
    assert verify(path)[:2] == (False, 4)


def test_a_deleted_row_is_named(path: Path) -> None:
    signed_log(path)
    with raw_db(path) as db:
        db.execute("DELETE FROM audit_entries WHERE idx = 6")
    ok, index, reason = verify(path)
    assert (ok, index) == (False, 6)
    assert "missing" in reason


def test_deleted_rows_at_the_end_are_found_by_the_signed_head(path: Path) -> None:
    signed_log(path)
    with raw_db(path) as db:
        db.execute("DELETE FROM audit_entries WHERE idx >= 17")
    ok, index, reason = verify(path)
    assert (ok, index) == (False, 17)
    assert "deleted" in reason


def test_reordered_rows_are_named(path: Path) -> None:
    signed_log(path)
    with raw_db(path) as db:
        db.execute("UPDATE audit_entries SET idx = -1 WHERE idx = 3")
        db.execute("UPDATE audit_entries SET idx = 3 WHERE idx = 11")
        db.execute("UPDATE audit_entries SET idx = 11 WHERE idx = -1")
    ok, index, reason = verify(path)
    assert (ok, index) == (False, 3)
    assert "out of place" in reason


def test_a_row_rewritten_with_its_hashes_is_found_by_the_subtree_hashes(path: Path) -> None:
    signed_log(path)
    forged = entry(99).encode()
    leaf = leaf_hash(forged)
    with raw_db(path) as db:
        db.execute(
            "UPDATE audit_entries SET entry = ?, leaf = ?, rowcheck = ?, kind = ? WHERE idx = 9",
            (forged, leaf, row_check(9, leaf), "grant"),
        )
    ok, index, reason = verify(path)
    assert (ok, index) == (False, 8)  # entries 8 and 9 share the first subtree above them
    assert "8 to 9" in reason


def test_an_edited_subtree_hash_is_found(path: Path) -> None:
    signed_log(path)
    with raw_db(path) as db:
        db.execute("UPDATE audit_entries SET nodes = zeroblob(length(nodes)) WHERE idx = 15")
    ok, index, _ = verify(path)
    assert (ok, index) == (False, 14)


def test_a_history_rebuilt_consistently_is_found_by_the_signed_heads(path: Path) -> None:
    """The operator rebuilds the whole log with one entry changed and keeps the heads."""
    signed_log(path, 20)
    with AuditLog(path) as log:
        fill(log, 10)
        log.sign_head(NODE_A, CHAIN, NOW + 1)  # a head at 30: both heads cover entry 12
    rebuilt = path.with_name("rebuilt.sqlite")
    with AuditLog(rebuilt) as log:
        log.append_many([entry(i) if i != 12 else entry(99) for i in range(30)])
    with raw_db(rebuilt) as db:
        db.execute(f"ATTACH DATABASE '{path}' AS genuine")
        db.execute("INSERT INTO audit_heads SELECT * FROM genuine.audit_heads")
    ok, index, reason = verify(rebuilt)
    assert (ok, index) == (False, 0)  # no matching head covers anything before 20
    assert "head signed at" in reason
    assert "20" in reason


def test_a_damaged_head_is_reported(path: Path) -> None:
    signed_log(path)
    with raw_db(path) as db:
        db.execute("UPDATE audit_heads SET raw = x'00'")
    ok, index, reason = verify(path)
    assert not ok
    assert "damaged" in reason
    assert index == 20
    with AuditLog(path) as log, pytest.raises(StorageError):
        log.heads()


def test_a_damaged_row_raises_storage_error_outside_verify(path: Path) -> None:
    signed_log(path)
    with raw_db(path) as db:
        db.execute("UPDATE audit_entries SET entry = x'c1' WHERE idx = 2")
        db.execute("DELETE FROM audit_entries WHERE idx = 7")
    with AuditLog(path) as log:
        with pytest.raises(StorageError, match="entry 2"):
            log.entry(2)
        with pytest.raises(StorageError, match="entry 7"):
            log.inclusion_proof(6, 16)


def test_receipt_refuses_garbage_head_bytes(log: AuditLog) -> None:
    fill(log, 2)
    with pytest.raises(InvalidInput, match="not a signed tree head"):
        log.receipt(0, b"\x93garbage")


def test_json_forms_for_export_and_the_api(log: AuditLog) -> None:
    fill(log, 3)
    line = log.entry(1).to_json()
    assert line["index"] == 1
    assert line["leaf_hash"] == leaf_hash(entry(1).encode()).hex()
    assert line["kind"] == str(entry(1).kind)
    assert line["details"] == {"i": 1}
    report = log.verify().to_json()
    assert report == {
        "ok": True,
        "size": 3,
        "root": log.root().hex(),
        "entries_checked": 3,
        "heads_checked": 0,
        "first_bad_index": None,
        "reason": None,
    }
