"""Property tests: the provider store's stranger quotas (issue 12, gap 4).

Honest members adding within their documented rate (120 a minute per peer) are
never refused, whatever strangers do around them; the stranger caps (total, per
key, for unknown keys) are never exceeded; a stranger's add never evicts a
member's or this node's own entry.
"""

from __future__ import annotations

import contextlib
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from identity.errors import DatanetError
from routing.stores import ProviderSource, ProviderStore, RateLimited, StoreFull, StrangerQuotas
from routing.wire import Peer

QUOTAS = StrangerQuotas(window=60.0, per_peer=3, per_address=5, per_key=2, unknown_keys=3, total=6)
KEYS = [bytes([0x12, k]) for k in range(8)]  # even second byte: a known key


def _known(key: bytes) -> bool:
    return key[1] % 2 == 0


# (member?, peer index, address index, key index, seconds since the previous op)
ops = st.lists(
    st.tuples(
        st.booleans(),
        st.integers(0, 5),
        st.integers(0, 2),
        st.integers(0, len(KEYS) - 1),
        st.sampled_from([0.0, 0.0, 0.5, 1.0, 30.0]),
    ),
    max_size=120,
)


def _member_peer(i: int) -> bytes:
    return b"M" + bytes([i])


def _stranger_peer(i: int) -> bytes:
    return b"S" + bytes([i])


def _check_caps(store: ProviderStore) -> None:
    entries = list(store.entries())
    strangers = [e for e in entries if e.stranger]
    assert len(strangers) == store.stranger_count <= QUOTAS.total
    per_key = Counter(e.key for e in strangers)
    assert all(n <= QUOTAS.per_key for n in per_key.values())
    assert store.stranger_unknown_count <= QUOTAS.unknown_keys
    assert not any(e.own and e.stranger for e in entries)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_members_are_never_refused_and_stranger_caps_hold(
    script: list[tuple[bool, int, int, int, float]],
) -> None:
    store = ProviderStore(stranger_quotas=QUOTAS, known_key=_known)
    store.add(KEYS[0], Peer(b"self"), now=0.0, from_peer=None)
    now = 1.0
    last_member_add: dict[bytes, float] = {}
    for member, peer_i, addr_i, key_i, gap in script:
        now += gap
        key = KEYS[key_i]
        if member:
            peer = _member_peer(peer_i)
            # within the documented rate: at most one add every 0.5 s per member
            if now - last_member_add.get(peer, -1.0) < 0.5:
                continue
            last_member_add[peer] = now
            source = ProviderSource(peer, f"10.0.0.{addr_i}", member=True)
            store.add(key, Peer(peer), now=now, from_peer=peer, source=source)  # never raises
            assert Peer(peer) in store.get(key, now=now)
        else:
            peer = _stranger_peer(peer_i)
            before = {
                (e.key, e.peer.id) for e in store.entries() if not e.stranger and e.expires_at > now
            }
            source = ProviderSource(peer, f"127.0.0.{addr_i}", member=False)
            with contextlib.suppress(RateLimited, StoreFull):
                store.add(key, Peer(peer), now=now, from_peer=peer, source=source)
            after = {(e.key, e.peer.id) for e in store.entries()}
            assert before <= after, "a stranger evicted a member's or own entry"
        _check_caps(store)
    assert [e.peer.id for e in store.own_entries(now)] == [b"self"]


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 40), st.integers(1, 4))
def test_strangers_from_one_address_add_at_most_per_address_per_window(
    per_identity: int, identities: int
) -> None:
    store = ProviderStore(stranger_quotas=QUOTAS)
    stored = 0
    for i in range(identities):
        peer = _stranger_peer(i)
        source = ProviderSource(peer, "127.0.0.1", member=False)
        for n in range(per_identity):
            key = bytes([0x12, i, n])
            try:
                store.add(key, Peer(peer), now=1.0, from_peer=peer, source=source)
            except DatanetError:
                continue
            stored += 1
    assert stored == len(store) <= min(QUOTAS.per_address, QUOTAS.total)
    assert stored == min(
        QUOTAS.per_address, QUOTAS.total, identities * QUOTAS.per_peer, identities * per_identity
    )


@settings(max_examples=150, deadline=None)
@given(ops)
def test_a_full_store_makes_room_for_strangers_only_from_strangers(
    script: list[tuple[bool, int, int, int, float]],
) -> None:
    """Small slot and key budgets: a stranger's add still never evicts a member's entry."""
    store = ProviderStore(
        stranger_quotas=QUOTAS, known_key=_known, max_providers_per_key=3, max_keys=4
    )
    now = 1.0
    for member, peer_i, addr_i, key_i, gap in script:
        now += gap
        peer = _member_peer(peer_i) if member else _stranger_peer(peer_i)
        before = {(e.key, e.peer.id) for e in store.entries() if not e.stranger}
        source = ProviderSource(peer, f"127.0.0.{addr_i}", member=member)
        with contextlib.suppress(RateLimited, StoreFull):
            store.add(KEYS[key_i], Peer(peer), now=now, from_peer=peer, source=source)
        if not member:
            assert before <= {(e.key, e.peer.id) for e in store.entries()}
        assert store.key_count <= 4
        assert all(len(store.get(k, now=0.0)) <= 3 for k in KEYS)
        _check_caps(store)
