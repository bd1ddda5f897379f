"""Property tests: the audit log's Merkle tree against RFC 9162's own definitions.

The reference below is written here, independently of ``datanet.records.audit``,
straight from the recursive definitions of RFC 9162 section 2.1 (MTH, PATH,
SUBPROOF over lists of entries, slicing as the RFC does). The implementation
must agree with it on every root and every proof, its verifiers must accept
exactly the reference proofs, and any changed bit, index or size must fail.
The SQLite log must give the same roots and proofs as the reference at every size.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datanet.errors import DatanetError, VerificationError
from datanet.records.audit import (
    EMPTY_ROOT,
    AuditEntry,
    EntryKind,
    MerkleFrontier,
    consistency_proof,
    decode_entry,
    decode_receipt,
    inclusion_proof,
    merkle_root,
    verify_consistency,
    verify_inclusion,
    verify_receipt,
    verify_tree_head,
)
from datanet.store.audit import AuditLog
from datanet.testing.clock import NOW
from identity.certs import TrustStore

SETTINGS = settings(
    derandomize=True,
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ---------------------------------------------------------------------------
# The reference: RFC 9162 2.1.1 - 2.1.4, recursive, over the entries themselves.


def ref_leaf(d: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + d).digest()


def ref_k(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return ref_leaf(d[0])
    k = ref_k(n)
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = ref_k(n)
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = ref_k(n)
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def ref_proof(m: int, d: list[bytes]) -> list[bytes]:
    if m in (0, len(d)):
        return []
    return ref_subproof(m, d, True)


# ---------------------------------------------------------------------------


# Distinct entries (their index is in them): two equal leaves could legitimately
# swap places, which is not what these properties are about.
def entries_of(n: int, salt: int) -> list[bytes]:
    return [b"entry-%d-%d" % (salt, i) * (1 + i % 3) for i in range(n)]


sizes = st.integers(min_value=1, max_value=70)
salts = st.integers(min_value=0, max_value=2**16)


@SETTINGS
@given(n=st.integers(min_value=0, max_value=70), salt=salts)
def test_roots_match_mth(n: int, salt: int) -> None:
    d = entries_of(n, salt)
    leaves = [ref_leaf(x) for x in d]
    assert merkle_root(leaves) == ref_mth(d)
    frontier = MerkleFrontier()
    for leaf in leaves:
        frontier.append(leaf)
    assert frontier.root() == ref_mth(d)
    # a frontier rebuilt from the complete subtrees of its size gives the same root
    spans = MerkleFrontier.subtree_spans(n)
    rebuilt = MerkleFrontier(n, [merkle_root(leaves[i << lv : (i + 1) << lv]) for lv, i in spans])
    assert rebuilt.root() == ref_mth(d)


@SETTINGS
@given(n=sizes, salt=salts)
def test_frontier_names_each_completed_subtree(n: int, salt: int) -> None:
    leaves = [ref_leaf(x) for x in entries_of(n, salt)]
    frontier = MerkleFrontier()
    seen = set()
    for leaf in leaves:
        for level, index, h in frontier.append(leaf):
            assert h == merkle_root(leaves[index << level : (index + 1) << level])
            seen.add((level, index))
    expected = {(lv, i) for lv in range(1, n.bit_length()) for i in range(n >> lv)}
    assert seen == expected


@SETTINGS
@given(n=sizes, salt=salts, data=st.data())
def test_inclusion_proofs_match_path_and_verify(n: int, salt: int, data: st.DataObject) -> None:
    d = entries_of(n, salt)
    leaves = [ref_leaf(x) for x in d]
    size = data.draw(st.integers(min_value=1, max_value=n), label="size")
    root = ref_mth(d[:size])
    for m in range(size):
        proof = inclusion_proof(leaves, m, size)
        assert proof == ref_path(m, d[:size])
        verify_inclusion(leaves[m], m, size, proof, root)


@SETTINGS
@given(n=sizes, salt=salts, data=st.data())
def test_consistency_proofs_match_subproof_and_verify(
    n: int, salt: int, data: st.DataObject
) -> None:
    d = entries_of(n, salt)
    leaves = [ref_leaf(x) for x in d]
    size2 = data.draw(st.integers(min_value=0, max_value=n), label="size2")
    root2 = ref_mth(d[:size2])
    for size1 in range(size2 + 1):
        proof = consistency_proof(leaves, size1, size2)
        assert proof == ref_proof(size1, d[:size2])
        verify_consistency(size1, size2, ref_mth(d[:size1]), root2, proof)


def _flip(data: bytes, bit: int) -> bytes:
    bit %= len(data) * 8
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@SETTINGS
@given(n=sizes, salt=salts, data=st.data())
def test_any_bit_flip_breaks_an_inclusion_proof(n: int, salt: int, data: st.DataObject) -> None:
    d = entries_of(n, salt)
    leaves = [ref_leaf(x) for x in d]
    m = data.draw(st.integers(min_value=0, max_value=n - 1), label="index")
    proof = ref_path(m, d)
    root = ref_mth(d)
    bit = data.draw(st.integers(min_value=0, max_value=2**20), label="bit")
    where = data.draw(st.integers(min_value=0, max_value=len(proof) + 1), label="where")
    leaf = leaves[m]
    if where < len(proof):
        proof = [*proof[:where], _flip(proof[where], bit), *proof[where + 1 :]]
    elif where == len(proof):
        leaf = _flip(leaf, bit)
    else:
        root = _flip(root, bit)
    with pytest.raises(VerificationError):
        verify_inclusion(leaf, m, n, proof, root)


@SETTINGS
@given(n=sizes, salt=salts, data=st.data())
def test_inclusion_accepts_only_the_reference_proof(n: int, salt: int, data: st.DataObject) -> None:
    """A proof made for (index, size) verifies against the genuine root of another
    (index', size') only where it is that pair's reference proof too."""
    d = entries_of(n, salt)
    leaves = [ref_leaf(x) for x in d]
    m = data.draw(st.integers(min_value=0, max_value=n - 1), label="index")
    size = data.draw(st.integers(min_value=m + 1, max_value=n), label="size")
    proof = ref_path(m, d[:size])
    m2 = data.draw(st.integers(min_value=0, max_value=n + 2), label="other index")
    size2 = data.draw(st.integers(min_value=0, max_value=n + 2), label="other size")
    if (m2, size2) == (m, size):
        return
    root2 = ref_mth(d[:size2]) if size2 <= n else ref_mth(d)
    try:
        verify_inclusion(leaves[m], m2, size2, proof, root2)
    except VerificationError:
        return
    # it verified: then it is the true statement, proved by the reference proof
    assert size2 <= n
    assert m2 < size2
    assert leaves[m] == leaves[m2]
    assert proof == ref_path(m2, d[:size2])


@SETTINGS
@given(n=sizes, salt=salts, data=st.data())
def test_consistency_breaks_on_any_change(n: int, salt: int, data: st.DataObject) -> None:
    d = entries_of(n, salt)
    size1 = data.draw(st.integers(min_value=1, max_value=n), label="size1")
    size2 = data.draw(st.integers(min_value=size1, max_value=n), label="size2")
    root1, root2 = ref_mth(d[:size1]), ref_mth(d[:size2])
    proof = ref_proof(size1, d[:size2])
    bit = data.draw(st.integers(min_value=0, max_value=2**20), label="bit")
    where = data.draw(st.integers(min_value=0, max_value=len(proof) + 1), label="where")
    if where < len(proof):
        proof = [*proof[:where], _flip(proof[where], bit), *proof[where + 1 :]]
    elif where == len(proof):
        root1 = _flip(root1, bit)
    else:
        root2 = _flip(root2, bit)
    with pytest.raises(VerificationError):
        verify_consistency(size1, size2, root1, root2, proof)


@SETTINGS
@given(n=sizes, salt=salts, data=st.data())
def test_consistency_accepts_only_the_reference_proof(
    n: int, salt: int, data: st.DataObject
) -> None:
    d = entries_of(n, salt)
    size1 = data.draw(st.integers(min_value=1, max_value=n), label="size1")
    size2 = data.draw(st.integers(min_value=size1, max_value=n), label="size2")
    proof = ref_proof(size1, d[:size2])
    other1 = data.draw(st.integers(min_value=0, max_value=n), label="other size1")
    other2 = data.draw(st.integers(min_value=0, max_value=n), label="other size2")
    if (other1, other2) == (size1, size2):
        return
    try:
        verify_consistency(other1, other2, ref_mth(d[:other1]), ref_mth(d[:other2]), proof)
    except VerificationError:
        return
    assert other1 <= other2
    assert proof == ref_proof(other1, d[:other2])


@SETTINGS
@given(n=sizes, salt=salts, data=st.data())
def test_a_forked_log_fails_consistency(n: int, salt: int, data: st.DataObject) -> None:
    """Two histories that differ in any entry below size1 are never consistent."""
    d = entries_of(n, salt)
    size1 = data.draw(st.integers(min_value=1, max_value=n), label="size1")
    size2 = data.draw(st.integers(min_value=size1, max_value=n), label="size2")
    changed = data.draw(st.integers(min_value=0, max_value=size1 - 1), label="changed")
    forked = [*d[:changed], b"rewritten", *d[changed + 1 :]]
    proof = ref_proof(size1, forked[:size2])
    with pytest.raises(VerificationError):
        verify_consistency(size1, size2, ref_mth(d[:size1]), ref_mth(forked[:size2]), proof)


# ---------------------------------------------------------------------------
# untrusted bytes


@SETTINGS
@given(raw=st.binary(max_size=600))
def test_random_bytes_are_refused_with_datanet_errors_only(raw: bytes) -> None:
    trust = TrustStore(accept_any=True)
    for parse in (
        decode_entry,
        decode_receipt,
        lambda b: verify_tree_head(b, trust, NOW),
        lambda b: verify_receipt(b, trust, NOW),
    ):
        with contextlib.suppress(DatanetError):
            parse(raw)


@SETTINGS
@given(
    proof=st.lists(st.binary(min_size=0, max_size=40), max_size=140),
    index=st.integers(min_value=-5, max_value=2**64),
    size=st.integers(min_value=-5, max_value=2**64),
    leaf=st.binary(min_size=31, max_size=33),
)
def test_arbitrary_proof_arguments_raise_datanet_errors_only(
    proof: list[bytes], index: int, size: int, leaf: bytes
) -> None:
    for check in (
        lambda: verify_inclusion(leaf, index, size, proof, leaf),
        lambda: verify_consistency(index, size, leaf, leaf, proof),
        lambda: verify_consistency(index, size, leaf, EMPTY_ROOT, proof),
    ):
        with contextlib.suppress(DatanetError):
            check()


entry_details = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63) + 1, 2**63 - 1) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@SETTINGS
@given(
    kind=st.sampled_from(list(EntryKind)),
    timestamp=st.integers(min_value=0, max_value=2**63 - 1),
    record=st.none() | st.binary(max_size=5000),
    details=st.dictionaries(st.text(max_size=8), entry_details, max_size=4),
)
def test_entries_round_trip_or_are_refused(
    kind: EntryKind, timestamp: int, record: bytes | None, details: dict[str, object]
) -> None:
    try:
        entry = AuditEntry.create(kind, timestamp, record, details)
    except DatanetError:
        return  # too deep or too large: refused with a reason
    raw = entry.encode()
    assert decode_entry(raw) == entry
    if record is not None:
        assert entry.refers_to(record)
        assert (entry.record is None) == (len(record) > 4096)


# ---------------------------------------------------------------------------
# the SQLite log agrees with the reference at every size


@settings(
    derandomize=True,
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(batches=st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=6))
def test_the_sqlite_log_matches_the_reference(batches: list[int]) -> None:
    entries = []
    with tempfile.TemporaryDirectory() as tmp:
        with AuditLog(Path(tmp) / "audit.sqlite") as log:
            for count in batches:
                batch = [
                    AuditEntry.create(EntryKind.DECISION, NOW + len(entries) + i, b"r%d" % i)
                    for i in range(count)
                ]
                log.append_many(batch)
                entries.extend(e.encode() for e in batch)
        with AuditLog(Path(tmp) / "audit.sqlite") as log:  # reopened: the frontier reloads
            n = len(entries)
            assert log.size == n
            assert log.root(0) == EMPTY_ROOT
            for size in range(1, n + 1):
                assert log.root(size) == ref_mth(entries[:size])
                for m in range(size):
                    assert log.inclusion_proof(m, size) == ref_path(m, entries[:size])
                for size1 in range(size + 1):
                    assert log.consistency_proof(size1, size) == ref_proof(size1, entries[:size])
            assert log.verify().ok
