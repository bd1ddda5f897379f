"""Routing table: bucket placement, the ping-before-evict policy, replacements, refresh."""

from __future__ import annotations

import random

import pytest

from identity.errors import InvalidInput
from routing.keyspace import KEY_BITS, common_prefix_len, key_of
from routing.sim.scenario import random_peer_id
from routing.table import PingPeer, RoutingTable
from routing.wire import Peer

SELF = random_peer_id(random.Random(1))
SELF_KEY = key_of(SELF)


def peers_in_bucket(cpl: int, count: int, seed: int = 0) -> list[Peer]:
    """``count`` random peers whose ids share exactly ``cpl`` bits with SELF."""
    rng = random.Random(seed)
    out: list[Peer] = []
    while len(out) < count:
        pid = random_peer_id(rng)
        if common_prefix_len(key_of(pid), SELF_KEY) == cpl:
            out.append(Peer(pid, (b"/addr/%d" % len(out),)))
    return out


def full_bucket(k: int = 4) -> tuple[RoutingTable, list[Peer]]:
    table = RoutingTable(SELF, k=k)
    members = peers_in_bucket(0, k + 3)
    for t, p in enumerate(members[:k]):
        assert table.add(p, is_server=True, now=float(t)) is None
    return table, members


def test_clients_and_self_are_never_added() -> None:
    table = RoutingTable(SELF)
    (p,) = peers_in_bucket(0, 1)
    assert table.add(p, is_server=False, now=0) is None
    assert p.id not in table
    assert table.add(Peer(SELF), is_server=True, now=0) is None
    assert len(table) == 0


def test_peers_go_to_the_bucket_of_their_common_prefix_length() -> None:
    table = RoutingTable(SELF)
    for cpl in (0, 1, 3):
        for p in peers_in_bucket(cpl, 2, seed=cpl):
            table.add(p, is_server=True, now=0)
    assert table.bucket_sizes() == {0: 2, 1: 2, 3: 2}


def test_full_bucket_asks_to_ping_the_least_recently_seen_and_caches_newcomer() -> None:
    table, members = full_bucket()
    newcomer = members[4]
    action = table.add(newcomer, is_server=True, now=10)
    assert action == PingPeer(members[0])
    assert newcomer.id not in table
    assert table.replacements(0) == [newcomer]
    # a second newcomer while the ping is outstanding: cached, no second ping
    assert table.add(members[5], is_server=True, now=11) is None
    assert table.replacements(0) == [newcomer, members[5]]


def test_ping_success_keeps_the_old_peer() -> None:
    table, members = full_bucket()
    table.add(members[4], is_server=True, now=10)
    table.mark_alive(members[0].id, now=12)
    assert members[0].id in table
    assert members[4].id not in table
    entry = table.get(members[0].id)
    assert entry is not None
    assert entry.last_seen == 12
    # the next full-bucket event pings the new least recently seen entry
    assert table.add(members[5], is_server=True, now=13) == PingPeer(members[1])


def test_ping_failure_evicts_and_promotes_the_newest_replacement() -> None:
    table, members = full_bucket()
    table.add(members[4], is_server=True, now=10)
    table.add(members[5], is_server=True, now=11)
    assert table.ping_failed(members[0].id, now=12)
    assert members[0].id not in table
    assert members[5].id in table  # most recently seen replacement first
    assert table.replacements(0) == [members[4]]


def test_unanswered_ping_blocks_new_pings_only_until_ping_timeout() -> None:
    table = RoutingTable(SELF, k=4, ping_timeout=5)
    members = peers_in_bucket(0, 7)
    for p in members[:4]:
        table.add(p, is_server=True, now=0)
    assert table.add(members[4], is_server=True, now=1) == PingPeer(members[0])
    assert table.add(members[5], is_server=True, now=5.9) is None
    assert table.add(members[6], is_server=True, now=6) == PingPeer(members[0])


def test_a_bucket_whose_every_entry_was_seen_recently_asks_no_ping() -> None:
    table = RoutingTable(SELF, k=4, seen_recently=30)
    members = peers_in_bucket(0, 7)
    for t, p in enumerate(members[:4]):
        table.add(p, is_server=True, now=float(t))
    # the least recently seen entry was seen 29 s ago: alive, no ping
    assert table.add(members[4], is_server=True, now=29) is None
    assert members[4].id not in table
    assert table.replacements(0) == [members[4]]
    # 30 s after it was last seen, the oldest entry is pinged again
    assert table.add(members[5], is_server=True, now=30) == PingPeer(members[0])
    table.mark_alive(members[0].id, now=30.5)
    # members[1], seen at 1, is the oldest now: seen 29.5 s ago, no ping yet
    assert table.add(members[6], is_server=True, now=30.5) is None
    assert table.add(members[6], is_server=True, now=31) == PingPeer(members[1])
    with pytest.raises(InvalidInput):
        RoutingTable(SELF, seen_recently=-1)


def test_seen_again_moves_to_most_recent_and_updates_addresses() -> None:
    table, members = full_bucket()
    moved = Peer(members[0].id, (b"/new",))
    assert table.add(moved, is_server=True, now=20) is None
    assert table.peers()[-1] == moved
    assert table.add(members[4], is_server=True, now=21) == PingPeer(members[1])


def test_request_failures_evict_after_max_failures_and_reset_on_answer() -> None:
    table = RoutingTable(SELF, k=4, max_failures=2)
    (a,) = peers_in_bucket(2, 1)
    table.add(a, is_server=True, now=0)
    assert not table.mark_failed(a.id, now=1)
    table.mark_alive(a.id, now=2)
    assert not table.mark_failed(a.id, now=3)
    assert table.mark_failed(a.id, now=4)
    assert a.id not in table


def test_failure_of_the_pinged_peer_evicts_at_once() -> None:
    table, members = full_bucket()
    table.add(members[4], is_server=True, now=10)
    assert table.mark_failed(members[0].id, now=11)
    assert members[4].id in table


def test_remove_does_not_promote() -> None:
    table, members = full_bucket()
    table.add(members[4], is_server=True, now=10)
    assert table.remove(members[1].id)
    assert len(table) == 3
    assert not table.remove(members[1].id)


def test_closest_is_sorted_by_xor_distance_and_honours_exclude() -> None:
    table = RoutingTable(SELF)
    rng = random.Random(3)
    everyone = [Peer(random_peer_id(rng)) for _ in range(200)]
    for p in everyone:
        table.add(p, is_server=True, now=0)
    target = key_of(b"target")
    got = table.closest(target, 10)
    in_table = sorted(table.peers(), key=lambda p: key_of(p.id) ^ target)
    assert got == in_table[:10]
    assert table.closest(target, 10, exclude=got[0].id) == in_table[1:11]
    assert table.closest(target, 0) == []
    assert table.closest_to(b"target", 3) == got[:3]


def test_bucket_never_exceeds_k() -> None:
    table = RoutingTable(SELF, k=5)
    for p in peers_in_bucket(0, 30):
        table.add(p, is_server=True, now=0)
    assert table.bucket_sizes() == {0: 5}
    assert len(table.replacements(0)) == 5


def test_buckets_needing_refresh_until_a_lookup_lands_there() -> None:
    table = RoutingTable(SELF, refresh_interval=100)
    for cpl in (0, 1, 2):
        table.add(peers_in_bucket(cpl, 1, seed=cpl)[0], is_server=True, now=0)
    rng = random.Random(5)
    targets = table.buckets_needing_refresh(0, rng)
    assert [common_prefix_len(key_of(t), SELF_KEY) for t in targets] == [0, 1, 2]
    for t in targets[:2]:
        table.mark_refreshed(key_of(t), now=10)
    again = table.buckets_needing_refresh(50, rng)
    assert [common_prefix_len(key_of(t), SELF_KEY) for t in again] == [2]
    later = table.buckets_needing_refresh(110, rng)
    assert len(later) == 3


def test_empty_table_refreshes_bucket_zero_only() -> None:
    table = RoutingTable(SELF)
    targets = table.buckets_needing_refresh(0, random.Random(0))
    assert len(targets) == 1
    assert common_prefix_len(key_of(targets[0]), SELF_KEY) == 0
    assert common_prefix_len(SELF_KEY, SELF_KEY) == KEY_BITS


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(InvalidInput):
        RoutingTable(SELF, k=0)


def test_buckets_beyond_the_kth_nearest_peer_are_refreshed_by_one_self_lookup() -> None:
    # A random lookup per bucket down to the deepest one cost a 100-node network's
    # join 7 lookups per node; the buckets deeper than our k-th nearest peer hold
    # only peers among our k nearest, which a single self-lookup finds.
    table = RoutingTable(SELF, k=5, refresh_interval=100)
    layout = {0: 5, 1: 5, 4: 3, 6: 2}  # the 5 nearest: 2 at cpl 6, 3 at cpl 4
    for cpl, count in layout.items():
        for p in peers_in_bucket(cpl, count, seed=cpl):
            table.add(p, is_server=True, now=0)
    targets = table.buckets_needing_refresh(0, random.Random(1))
    assert [common_prefix_len(key_of(t), SELF_KEY) for t in targets] == [0, 1, 2, 3, 4, KEY_BITS]
    assert targets[-1] == SELF
    table.mark_refreshed(SELF_KEY, now=10)  # a self-lookup ran: the deep buckets are fresh
    again = table.buckets_needing_refresh(50, random.Random(1))
    assert [common_prefix_len(key_of(t), SELF_KEY) for t in again] == [0, 1, 2, 3, 4]
