"""Unit tests of the pure provider store (routing/stores.py)."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from identity.errors import DatanetError, InvalidInput, RecordTooLarge, ScopeError
from routing.schedule import REPROVIDE_INTERVAL
from routing.stores import (
    PROVIDER_TTL,
    ProviderEntry,
    ProviderStore,
    RateLimited,
    StoreFull,
)
from routing.wire import ConnectionType, Peer

KEY = b"\x12\x20" + bytes(32)


def peer(n: int, *addrs: bytes) -> Peer:
    return Peer(b"peer-%d" % n, addrs)


class ListSink:
    def __init__(self) -> None:
        self.calls: list[tuple[list[ProviderEntry], list[tuple[bytes, bytes]]]] = []
        self.fail = False

    def providers_changed(
        self, upserted: Sequence[ProviderEntry], removed: Sequence[tuple[bytes, bytes]]
    ) -> None:
        if self.fail:
            raise DatanetError("disk full")
        self.calls.append((list(upserted), list(removed)))


def test_constants_follow_the_spec() -> None:
    assert PROVIDER_TTL == 48 * 3600
    assert REPROVIDE_INTERVAL == 22 * 3600


def test_add_get_deduplicated_newest_addrs_win() -> None:
    store = ProviderStore()
    store.add(KEY, peer(1, b"a1"), now=0, from_peer=b"peer-1")
    store.add(KEY, peer(2, b"b1"), now=1, from_peer=b"peer-2")
    store.add(KEY, Peer(b"peer-1", (b"a2",), ConnectionType.CONNECTED), now=2, from_peer=b"peer-1")
    got = store.get(KEY, now=3)
    assert got == [Peer(b"peer-1", (b"a2",)), Peer(b"peer-2", (b"b1",))]
    assert len(store) == 2
    assert store.get(KEY, now=3, limit=1) == [Peer(b"peer-1", (b"a2",))]
    assert store.get(b"other", now=3) == []


def test_a_peer_may_only_announce_itself() -> None:
    store = ProviderStore()
    with pytest.raises(ScopeError):
        store.add(KEY, peer(2), now=0, from_peer=b"peer-1")
    store.add(KEY, peer(2), now=0, from_peer=None)  # this node announces itself
    assert store.own_entries(now=0)[0].peer.id == b"peer-2"


def test_bad_input() -> None:
    store = ProviderStore(max_key_size=40)
    with pytest.raises(InvalidInput):
        store.add(b"", peer(1), now=0, from_peer=b"peer-1")
    with pytest.raises(RecordTooLarge):
        store.add(b"k" * 41, peer(1), now=0, from_peer=b"peer-1")
    with pytest.raises(InvalidInput):
        store.add(KEY, Peer(b""), now=0, from_peer=None)


def test_expiry_after_ttl_and_re_provide_refreshes() -> None:
    store = ProviderStore(ttl=100)
    store.add(KEY, peer(1), now=0, from_peer=b"peer-1")
    store.add(KEY, peer(2), now=50, from_peer=b"peer-2")
    assert [p.id for p in store.get(KEY, now=99)] == [b"peer-2", b"peer-1"]
    assert [p.id for p in store.get(KEY, now=100)] == [b"peer-2"]
    store.add(KEY, peer(2), now=140, from_peer=b"peer-2")
    assert store.expire(160) == [(KEY, b"peer-1")]
    assert [p.id for p in store.get(KEY, now=230)] == [b"peer-2"]
    assert store.expire(240) == [(KEY, b"peer-2")]
    assert store.key_count == 0
    assert store.total_bytes == 0


def test_rate_limit() -> None:
    store = ProviderStore(adds_per_peer_per_minute=2)
    store.add(b"k1", peer(1), now=0, from_peer=b"peer-1")
    store.add(b"k2", peer(1), now=0, from_peer=b"peer-1")
    with pytest.raises(RateLimited):
        store.add(b"k3", peer(1), now=0, from_peer=b"peer-1")
    store.add(b"k3", peer(1), now=30, from_peer=b"peer-1")
    for i in range(10):
        store.add(b"own%d" % i, peer(0), now=30, from_peer=None)


def test_per_key_limit_evicts_soonest_expiring_never_own() -> None:
    store = ProviderStore(max_providers_per_key=3)
    store.add(KEY, peer(0), now=0, from_peer=None)
    store.add(KEY, peer(1), now=1, from_peer=b"peer-1")
    store.add(KEY, peer(2), now=2, from_peer=b"peer-2")
    store.add(KEY, peer(3), now=3, from_peer=b"peer-3")
    assert sorted(p.id for p in store.get(KEY, now=4)) == [b"peer-0", b"peer-2", b"peer-3"]
    full = ProviderStore(max_providers_per_key=1)
    full.add(KEY, peer(0), now=0, from_peer=None)
    with pytest.raises(StoreFull):
        full.add(KEY, peer(1), now=1, from_peer=b"peer-1")


def test_key_budget_and_byte_budget() -> None:
    store = ProviderStore(max_keys=2)
    store.add(b"k1", peer(1), now=0, from_peer=b"peer-1")
    store.add(b"k2", peer(1), now=1, from_peer=b"peer-1")
    store.add(b"k3", peer(1), now=2, from_peer=b"peer-1")
    assert store.get(b"k1", now=3) == []
    assert store.key_count == 2
    small = ProviderStore(max_total_bytes=50)
    small.add(b"k1", peer(1, b"x" * 20), now=0, from_peer=b"peer-1")
    small.add(b"k2", peer(2, b"x" * 20), now=1, from_peer=b"peer-2")
    assert small.get(b"k1", now=2) == []
    assert small.total_bytes == 2 + 6 + 20


def test_only_own_entries_left_refuses_foreign() -> None:
    store = ProviderStore(max_keys=1)
    store.add(b"k1", peer(0), now=0, from_peer=None)
    with pytest.raises(StoreFull):
        store.add(b"k2", peer(1), now=1, from_peer=b"peer-1")
    store.add(b"k2", peer(0), now=1, from_peer=None)  # own always fits
    assert store.key_count == 2


def test_addresses_are_capped() -> None:
    store = ProviderStore(max_addrs=2)
    store.add(KEY, peer(1, b"a", b"b", b"c"), now=0, from_peer=b"peer-1")
    assert store.get(KEY, now=0) == [Peer(b"peer-1", (b"a", b"b"))]


def test_sink_and_failure_atomicity() -> None:
    sink = ListSink()
    store = ProviderStore(max_providers_per_key=1, sink=sink)
    store.add(KEY, peer(1), now=0, from_peer=b"peer-1")
    sink.fail = True
    with pytest.raises(DatanetError):
        store.add(KEY, peer(2), now=1, from_peer=b"peer-2")
    with pytest.raises(DatanetError):
        store.expire(1e9)
    assert store.get(KEY, now=2) == [Peer(b"peer-1")]
    sink.fail = False
    store.add(KEY, peer(2), now=3, from_peer=b"peer-2")
    assert sink.calls[-1][1] == [(KEY, b"peer-1")]
    assert [e.peer.id for e in sink.calls[-1][0]] == [b"peer-2"]
    assert store.remove(KEY, b"peer-2")
    assert not store.remove(KEY, b"peer-2")
    assert sink.calls[-1] == ([], [(KEY, b"peer-2")])


def test_restore() -> None:
    sink = ListSink()
    store = ProviderStore(sink=sink, max_keys=1)
    rows = [
        ProviderEntry(b"k1", Peer(b"p1"), 100, 0, False),
        ProviderEntry(b"k1", Peer(b"p2"), 5, 0, False),
        ProviderEntry(b"k2", Peer(b"p3"), 50, 0, False),
        ProviderEntry(b"k3", Peer(b"me"), 200, 0, True),
    ]
    assert store.restore(rows, now=10) == 3
    assert store.get(b"k3", now=10) == [Peer(b"me")]
    assert store.key_count == 1  # budget of one key: foreign ones go, own stays
    assert sink.calls == [([], [(b"k1", b"p2"), (b"k2", b"p3"), (b"k1", b"p1")])]


def test_random_operations_keep_the_invariants() -> None:
    rng = random.Random(3)
    store = ProviderStore(
        ttl=500,
        max_providers_per_key=4,
        max_keys=10,
        max_total_bytes=500,
        adds_per_peer_per_minute=1e9,
    )
    now = 0.0
    for _ in range(3000):
        now += rng.random() * 20
        n = rng.randrange(30)
        own = rng.random() < 0.05
        try:
            if rng.random() < 0.9:
                store.add(
                    b"k%d" % rng.randrange(25),
                    Peer(b"p%d" % n, (b"a" * rng.randrange(20),)),
                    now=now,
                    from_peer=None if own else b"p%d" % n,
                )
            else:
                store.expire(now)
        except DatanetError:
            pass
        entries = list(store.entries())
        assert store.total_bytes == sum(e.size for e in entries)
        assert len(store) == len(entries)
        foreign = [e for e in entries if not e.own]
        assert sum(e.size for e in foreign) <= 500
        for key in {e.key for e in entries}:
            got = store.get(key, now=now)
            assert len({p.id for p in got}) == len(got)
