"""Unit tests of the pure record store (routing/stores.py)."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import pytest

from identity.errors import (
    DatanetError,
    DecodeError,
    ExpiredRecord,
    InvalidInput,
    RecordTooLarge,
    SignatureError,
    StaleRecord,
)
from routing.stores import (
    PerPeerRateLimit,
    PutOutcome,
    RateLimited,
    RecordStore,
    StoredRecord,
    StoreFull,
)

HOUR = 3600.0
PEER = b"peer-1"
OTHER = b"peer-2"


class SeqValidator:
    """Values are ``b"<seq>:<payload>"``; ``bad`` payloads and revoked ones fail."""

    def __init__(self) -> None:
        self.revoked: set[bytes] = set()
        self.calls = 0

    def validate(self, key: bytes, value: bytes, now: int) -> None:
        self.calls += 1
        if not key.startswith(b"/t/"):
            raise DecodeError("wrong namespace")
        seq, _, payload = value.partition(b":")
        if not seq.isdigit() or payload == b"bad":
            raise SignatureError("bad value")
        if value in self.revoked:
            raise SignatureError("revoked")

    def select(self, key: bytes, values: Sequence[bytes]) -> int:
        seqs = [int(v.partition(b":")[0]) for v in values]
        return seqs.index(max(seqs))


class ListSink:
    def __init__(self) -> None:
        self.calls: list[tuple[list[StoredRecord], list[bytes]]] = []
        self.fail = False

    def records_changed(self, upserted: Sequence[StoredRecord], removed: Sequence[bytes]) -> None:
        if self.fail:
            raise DatanetError("disk on fire")
        self.calls.append((list(upserted), list(removed)))


def make(**kw: object) -> tuple[RecordStore, SeqValidator]:
    v = SeqValidator()
    return RecordStore(v, **kw), v  # type: ignore[arg-type]


def test_store_get_unchanged_replace_and_stale() -> None:
    store, _ = make()
    assert store.put(b"/t/a", b"1:x", now=0, from_peer=PEER) is PutOutcome.STORED
    assert store.get(b"/t/a", now=1) == b"1:x"
    assert store.put(b"/t/a", b"1:x", now=5, from_peer=OTHER) is PutOutcome.UNCHANGED
    assert store.entry(b"/t/a") is not None
    assert store.entry(b"/t/a").received_at == 5  # type: ignore[union-attr]
    assert store.put(b"/t/a", b"2:y", now=6, from_peer=PEER) is PutOutcome.REPLACED_OLDER
    with pytest.raises(StaleRecord):
        store.put(b"/t/a", b"1:x", now=7, from_peer=PEER)
    with pytest.raises(StaleRecord):  # same rank, different bytes: the held value stays
        store.put(b"/t/a", b"2:z", now=7, from_peer=PEER)
    assert store.get(b"/t/a", now=8) == b"2:y"
    assert store.get(b"/t/missing", now=8) is None
    assert store.get(b"no-namespace", now=8) is None


def test_unchanged_refreshes_lifetime() -> None:
    store, _ = make(max_record_age=10 * HOUR)
    store.put(b"/t/a", b"1:x", now=0, from_peer=PEER)
    store.put(b"/t/a", b"1:x", now=8 * HOUR, from_peer=PEER)
    assert store.get(b"/t/a", now=12 * HOUR) == b"1:x"
    assert store.expire(12 * HOUR) == []
    assert store.expire(18 * HOUR) == [b"/t/a"]
    assert len(store) == 0


def test_invalid_oversized_and_expired_values_are_never_stored() -> None:
    store, _ = make(max_record_size=100)
    with pytest.raises(SignatureError):
        store.put(b"/t/a", b"1:bad", now=0, from_peer=PEER)
    with pytest.raises(DecodeError):
        store.put(b"/x/a", b"1:ok", now=0, from_peer=PEER)
    with pytest.raises(RecordTooLarge):
        store.put(b"/t/a", b"1:" + b"v" * 100, now=0, from_peer=PEER)
    with pytest.raises(ExpiredRecord):
        store.put(b"/t/a", b"1:ok", now=10, from_peer=PEER, expires_at=10)
    with pytest.raises(InvalidInput):
        store.put(b"/t/a", "1:ok", now=0, from_peer=PEER)  # type: ignore[arg-type]
    assert len(store) == 0
    assert store.total_bytes == 0


def test_value_expiry_from_put_or_expiry_of() -> None:
    store, _ = make(expiry_of=lambda k, v: 100.0 if v.endswith(b"short") else None)
    store.put(b"/t/a", b"1:short", now=0, from_peer=PEER)
    store.put(b"/t/b", b"1:long", now=0, from_peer=PEER, expires_at=500)
    store.put(b"/t/c", b"1:own", now=0, from_peer=None)
    assert store.get(b"/t/a", now=100) is None
    assert store.get(b"/t/b", now=100) == b"1:long"
    assert store.expire(499) == [b"/t/a"]
    assert store.expire(500) == [b"/t/b"]
    entry = store.entry(b"/t/c")
    assert entry is not None
    assert entry.own
    assert entry.expires_at == math.inf
    assert store.expire(1e12) == []


def test_foreign_values_live_at_most_max_record_age() -> None:
    store, _ = make(max_record_age=HOUR)
    store.put(b"/t/a", b"1:x", now=0, from_peer=PEER, expires_at=1e9)
    assert store.get(b"/t/a", now=HOUR - 1) == b"1:x"
    assert store.get(b"/t/a", now=HOUR) is None


def test_get_revalidates_and_a_held_invalid_value_counts_as_absent() -> None:
    store, validator = make()
    store.put(b"/t/a", b"5:x", now=0, from_peer=PEER)
    validator.revoked.add(b"5:x")
    assert store.get(b"/t/a", now=1) is None
    # a lower value may now replace it: the held one is no longer valid
    assert store.put(b"/t/a", b"1:y", now=2, from_peer=PEER) is PutOutcome.STORED
    assert store.get(b"/t/a", now=3) == b"1:y"


def test_rate_limit_per_peer_refills_and_spares_own_writes() -> None:
    store, _ = make(writes_per_peer_per_minute=3)
    for i in range(3):
        store.put(b"/t/%d" % i, b"1:x", now=0, from_peer=PEER)
    with pytest.raises(RateLimited):
        store.put(b"/t/9", b"1:x", now=1, from_peer=PEER)
    with pytest.raises(RateLimited):  # rejected attempts count too: no free floods
        store.put(b"/t/9", b"1:bad", now=2, from_peer=PEER)
    store.put(b"/t/9", b"1:x", now=2, from_peer=OTHER)
    for i in range(10):
        store.put(b"/t/own%d" % i, b"1:x", now=2, from_peer=None)
    store.put(b"/t/9", b"1:x", now=22, from_peer=PEER)  # one token back after 20 s


def test_rate_limiter_memory_is_bounded() -> None:
    limit = PerPeerRateLimit(1, max_peers=10)
    for i in range(100):
        assert limit.allow(b"p%d" % i, 0)
    assert len(limit._buckets) == 10
    assert not limit.allow(b"p99", 0)
    assert PerPeerRateLimit(0).allow(b"p", 0) is False


def test_eviction_soonest_expiry_first_never_own() -> None:
    store, _ = make(max_records=3)
    store.put(b"/t/own", b"1:x", now=0, from_peer=None)
    store.put(b"/t/a", b"1:x", now=0, from_peer=PEER, expires_at=100)
    store.put(b"/t/b", b"1:x", now=0, from_peer=PEER, expires_at=300)
    assert store.put(b"/t/c", b"1:x", now=1, from_peer=PEER, expires_at=200) is PutOutcome.STORED
    assert b"/t/a" not in store
    assert {b"/t/own", b"/t/b", b"/t/c"} == {e.key for e in store.entries()}
    # a newcomer that expires sooner than everything held is refused, not churned in
    with pytest.raises(StoreFull):
        store.put(b"/t/d", b"1:x", now=1, from_peer=PEER, expires_at=150)
    assert len(store) == 3


def test_own_values_always_fit_and_foreign_ones_are_refused_when_only_own_are_left() -> None:
    store, _ = make(max_records=2)
    store.put(b"/t/o1", b"1:x", now=0, from_peer=None)
    store.put(b"/t/o2", b"1:x", now=0, from_peer=None)
    store.put(b"/t/o3", b"1:x", now=0, from_peer=None)
    assert len(store) == 3
    with pytest.raises(StoreFull):
        store.put(b"/t/f", b"1:x", now=0, from_peer=PEER)
    assert [r.key for r in store.own_records(now=0)] == [b"/t/o1", b"/t/o2", b"/t/o3"]


def test_byte_budget() -> None:
    store, _ = make(max_total_bytes=100)
    store.put(b"/t/a", b"1:" + b"x" * 50, now=0, from_peer=PEER, expires_at=10)
    store.put(b"/t/b", b"1:" + b"x" * 50, now=0, from_peer=PEER, expires_at=20)
    assert len(store) == 1
    assert store.total_bytes == 4 + 52
    assert store.get(b"/t/b", now=1) is not None
    # replacing with a bigger value accounts the difference, not the sum
    store.put(b"/t/b", b"2:" + b"x" * 90, now=0, from_peer=PEER, expires_at=20)
    assert store.total_bytes == 4 + 92


def test_peer_restoring_our_own_value_keeps_it_own() -> None:
    store, _ = make()
    store.put(b"/t/a", b"1:x", now=0, from_peer=None)
    store.put(b"/t/a", b"1:x", now=1, from_peer=PEER)
    entry = store.entry(b"/t/a")
    assert entry is not None
    assert entry.own
    assert entry.from_peer is None
    # a newer value from elsewhere (another node of our org) replaces it as foreign
    store.put(b"/t/a", b"2:x", now=2, from_peer=PEER)
    entry = store.entry(b"/t/a")
    assert entry is not None
    assert not entry.own
    assert entry.from_peer == PEER


def test_sink_sees_every_change_before_it_is_applied() -> None:
    sink = ListSink()
    store, _ = make(max_records=2, sink=sink)
    store.put(b"/t/a", b"1:x", now=0, from_peer=PEER, expires_at=10)
    store.put(b"/t/b", b"1:x", now=0, from_peer=PEER, expires_at=20)
    store.put(b"/t/c", b"1:x", now=0, from_peer=PEER, expires_at=30)
    assert [([r.key for r in up], rm) for up, rm in sink.calls] == [
        ([b"/t/a"], []),
        ([b"/t/b"], []),
        ([b"/t/c"], [b"/t/a"]),
    ]
    store.expire(25)
    assert sink.calls[-1] == ([], [b"/t/b"])
    assert store.remove(b"/t/c")
    assert not store.remove(b"/t/c")
    assert sink.calls[-1] == ([], [b"/t/c"])


def test_failing_sink_leaves_the_store_unchanged() -> None:
    sink = ListSink()
    store, _ = make(max_records=1, sink=sink)
    store.put(b"/t/a", b"1:x", now=0, from_peer=PEER, expires_at=10)
    before = (list(store.entries()), store.total_bytes)
    sink.fail = True
    with pytest.raises(DatanetError, match="fire"):
        store.put(b"/t/b", b"1:x", now=0, from_peer=PEER, expires_at=20)  # would evict /t/a
    with pytest.raises(DatanetError):
        store.put(b"/t/a", b"2:x", now=0, from_peer=PEER)
    with pytest.raises(DatanetError):
        store.expire(100)
    assert (list(store.entries()), store.total_bytes) == before
    sink.fail = False
    assert store.expire(100) == [b"/t/a"]
    store.put(b"/t/b", b"1:x", now=100, from_peer=PEER)
    assert store.get(b"/t/b", now=101) == b"1:x"


def test_restore_validates_and_drops_expired() -> None:
    sink = ListSink()
    store, validator = make(sink=sink, max_records=2)
    validator.revoked.add(b"1:revoked")
    rows = [
        StoredRecord(b"/t/a", b"1:x", 100, 0, PEER, False),
        StoredRecord(b"/t/b", b"1:x", 5, 0, PEER, False),
        StoredRecord(b"/t/c", b"1:revoked", 100, 0, PEER, False),
        StoredRecord(b"/t/d", b"1:x", math.inf, 0, None, True),
        StoredRecord(b"/t/e", b"1:x", 50, 0, PEER, False),
    ]
    assert store.restore(rows, now=10) == 3
    # the budget shrank to 2: the foreign value expiring soonest goes
    assert sorted(e.key for e in store.entries()) == [b"/t/a", b"/t/d"]
    assert sink.calls == [([], [b"/t/b", b"/t/c"]), ([], [b"/t/e"])]


def test_random_operations_keep_the_invariants() -> None:
    rng = random.Random(7)
    store, validator = make(max_records=20, max_total_bytes=600, writes_per_peer_per_minute=1e9)
    now = 0.0
    for _ in range(3000):
        now += rng.random() * 50
        key = b"/t/%d" % rng.randrange(40)
        value = b"%d:%s" % (rng.randrange(5), b"v" * rng.randrange(30))
        op = rng.random()
        try:
            if op < 0.8:
                store.put(
                    key,
                    value,
                    now=now,
                    from_peer=None if rng.random() < 0.05 else b"p",
                    expires_at=now + rng.random() * 2000,
                )
            elif op < 0.9:
                store.expire(now)
            else:
                validator.revoked.add(value)
        except DatanetError:
            pass
        entries = list(store.entries())
        assert store.total_bytes == sum(e.size for e in entries)
        foreign = [e for e in entries if not e.own]
        assert len(foreign) <= 20
        assert sum(e.size for e in foreign) <= 600
        for e in entries:
            got = store.get(e.key, now=now)
            assert got is None or (got == e.value and e.expires_at > now)
