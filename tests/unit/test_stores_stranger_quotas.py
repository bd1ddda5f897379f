"""The provider store's stranger quotas: windows, refreshes, unknown keys, persistence."""

from __future__ import annotations

from pathlib import Path

import pytest

from datanet.node.paths import DB_FILENAME
from datanet.store.db import MIGRATIONS, Storage, connect, migrate
from routing.stores import (
    ProviderSource,
    ProviderStore,
    RateLimited,
    StoreFull,
    StrangerQuotas,
    WindowQuota,
)
from routing.wire import Peer

Q = StrangerQuotas(window=60.0, per_peer=2, per_address=3, per_key=2, unknown_keys=2, total=4)


def _stranger(n: int, address: str = "127.0.0.1") -> tuple[bytes, ProviderSource]:
    peer = b"S%d" % n
    return peer, ProviderSource(peer, address, member=False)


def _add(store: ProviderStore, key: bytes, n: int, now: float, address: str = "127.0.0.1") -> None:
    peer, source = _stranger(n, address)
    store.add(key, Peer(peer), now=now, from_peer=peer, source=source)


def test_window_quota_refills_over_its_window() -> None:
    q = WindowQuota(2, 60.0)
    for _ in range(2):
        assert q.available("a", 0.0)
        q.spend("a", 0.0)
    assert not q.available("a", 0.0)
    assert not q.available("a", 29.0)
    assert q.available("a", 30.0)  # one token back after window / limit
    assert q.available("b", 0.0)


def test_per_peer_and_per_address_quotas_and_free_refreshes() -> None:
    store = ProviderStore(stranger_quotas=Q)
    _add(store, b"k1", 1, 0.0)
    _add(store, b"k2", 1, 0.0)
    with pytest.raises(RateLimited):
        _add(store, b"k3", 1, 0.0)  # peer quota
    _add(store, b"k1", 1, 1.0)  # a refresh of a held entry spends nothing
    _add(store, b"k3", 2, 1.0)
    with pytest.raises(RateLimited):
        _add(store, b"k4", 3, 1.0)  # address quota: 3 new entries from 127.0.0.1
    _add(store, b"k4", 3, 1.0, address="127.0.0.2")
    assert store.stranger_count == len(store) == 4
    _add(store, b"k5", 4, 60.0, address="127.0.0.3")  # total 4: the oldest stranger entry goes
    assert store.stranger_count == 4
    assert not store.get(b"k2", now=60.0)  # k1 was refreshed at 1.0, so k2 (0.0) was oldest


def test_members_and_own_entries_are_neither_limited_nor_evicted() -> None:
    store = ProviderStore(stranger_quotas=Q, max_providers_per_key=2)
    store.add(b"k", Peer(b"self"), now=0.0, from_peer=None)
    store.add(b"k", Peer(b"M"), now=0.0, from_peer=b"M", source=ProviderSource(b"M", None, True))
    with pytest.raises(StoreFull):
        _add(store, b"k", 1, 1.0)
    assert {p.id for p in store.get(b"k", now=1.0)} == {b"self", b"M"}
    member = ProviderSource(b"M", "127.0.0.1", member=True)
    for n in range(30):  # a member is held to the per-minute rate only
        store.add(b"m%d" % n, Peer(b"M"), now=2.0, from_peer=b"M", source=member)
    assert len(store) == 32
    assert store.stranger_count == 0


def test_unknown_keys_have_a_lower_cap() -> None:
    store = ProviderStore(stranger_quotas=Q, known_key=lambda key: key.startswith(b"known"))
    _add(store, b"u1", 1, 0.0, "10.0.0.1")
    _add(store, b"u2", 2, 0.0, "10.0.0.2")
    _add(store, b"u3", 3, 0.0, "10.0.0.3")  # third unknown key: the oldest unknown one goes
    assert store.stranger_unknown_count == 2
    assert not store.get(b"u1", now=0.0)
    _add(store, b"known1", 4, 0.0, "10.0.0.4")
    assert store.stranger_count == 3


def test_zero_quotas_refuse_strangers() -> None:
    store = ProviderStore(stranger_quotas=StrangerQuotas(total=0))
    with pytest.raises(StoreFull):
        _add(store, b"k", 1, 0.0)
    assert len(store) == 0


def test_the_stranger_flag_survives_a_restart_and_smaller_quotas(tmp_path: Path) -> None:
    path = tmp_path / DB_FILENAME
    with Storage(path) as db:
        store = ProviderStore(stranger_quotas=Q, sink=db)
        store.add(b"own", Peer(b"self"), now=0.0, from_peer=None)
        for n in range(4):
            _add(store, b"k%d" % n, n, float(n), f"10.0.0.{n}")
    with Storage(path) as db:
        rows = db.load_providers()
        assert sorted(e.peer.id for e in rows if e.stranger) == [b"S0", b"S1", b"S2", b"S3"]
        smaller = ProviderStore(stranger_quotas=StrangerQuotas(window=60.0, total=2), sink=db)
        assert smaller.restore(rows, now=10.0) == 5
        assert smaller.stranger_count == 2  # the two oldest stranger entries went
        assert {e.peer.id for e in smaller.entries()} == {b"self", b"S2", b"S3"}
    with Storage(path) as db:
        assert {e.peer.id for e in db.load_providers()} == {b"self", b"S2", b"S3"}


def test_version_3_provider_rows_migrate_as_members(tmp_path: Path) -> None:
    path = tmp_path / DB_FILENAME
    conn = connect(path)
    migrate(conn, MIGRATIONS[:3])
    conn.execute("INSERT INTO dht_providers VALUES (x'01', x'02', x'90', 99.0, 1.0, 0)")
    conn.close()
    with Storage(path) as db:
        [entry] = db.load_providers()
        assert (entry.key, entry.peer.id, entry.stranger, entry.own) == (
            b"\x01",
            b"\x02",
            False,
            False,
        )
