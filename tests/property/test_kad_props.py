"""Property tests: keyspace algebra, routing-table, lookup and schedule invariants."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from datanet.testing.clock import NOW
from routing.keyspace import KEY_BITS, common_prefix_len, distance, key_of
from routing.lookup import (
    ClosestPeers,
    FindNodeLookup,
    Finished,
    LookupAction,
    NodeFailed,
    NodeResponded,
    Poll,
    SendRequest,
)
from routing.schedule import MAINTENANCE_INTERVAL, REPUBLISH_INTERVAL, Republish, Schedule
from routing.sim.scenario import random_peer_id
from routing.table import PingPeer, RoutingTable
from routing.wire import Message, MessageType, Peer

keys = st.integers(min_value=0, max_value=(1 << KEY_BITS) - 1)


@given(keys, keys, keys)
def test_xor_metric(a: int, b: int, c: int) -> None:
    assert distance(a, b) == distance(b, a)
    assert (distance(a, b) == 0) == (a == b)
    assert distance(a, c) <= distance(a, b) + distance(b, c)
    assert common_prefix_len(a, b) == KEY_BITS - distance(a, b).bit_length()
    # a shared prefix with b and with c implies at least that much with each other
    assert common_prefix_len(b, c) >= min(common_prefix_len(a, b), common_prefix_len(a, c))


ops = st.lists(
    st.tuples(
        st.sampled_from(["add", "client", "alive", "fail", "ping_fail", "remove"]),
        st.integers(min_value=0, max_value=59),
    ),
    max_size=300,
)


@settings(max_examples=60, deadline=None)
@given(ops, st.integers(min_value=1, max_value=6))
def test_table_invariants_hold_under_any_event_sequence(
    events: list[tuple[str, int]], k: int
) -> None:
    rng = random.Random(0)
    me = random_peer_id(rng)
    pool = [Peer(random_peer_id(rng)) for _ in range(60)]
    table = RoutingTable(me, k=k, max_failures=2)
    clients = set()
    for now, (op, i) in enumerate(events):
        p = pool[i]
        if op == "add":
            action = table.add(p, is_server=True, now=now)
            if action is not None:
                assert isinstance(action, PingPeer)
                assert action.peer.id in table
                assert table.bucket_index(action.peer.id) == table.bucket_index(p.id)
        elif op == "client":
            was_in = p.id in table
            table.add(p, is_server=False, now=now)
            if not was_in:
                clients.add(p.id)
                assert p.id not in table
        elif op == "alive":
            table.mark_alive(p.id, now)
        elif op == "fail":
            table.mark_failed(p.id, now)
        elif op == "ping_fail":
            table.ping_failed(p.id, now)
        else:
            table.remove(p.id)
        sizes = table.bucket_sizes()
        assert all(0 < s <= k for s in sizes.values())
        assert sum(sizes.values()) == len(table)
        assert me not in table
        for peer in table.peers():
            assert table.bucket_index(peer.id) in sizes
        for cpl in sizes:
            repl = table.replacements(cpl)
            assert len(repl) <= k
            assert not {r.id for r in repl} & {q.id for q in table.peers()}


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=120),
    seed=st.integers(min_value=0, max_value=2**32),
    k=st.integers(min_value=1, max_value=20),
    alpha=st.integers(min_value=1, max_value=4),
    fail_share=st.sampled_from([0.0, 0.2, 0.5]),
)
def test_lookup_invariants(n: int, seed: int, k: int, alpha: int, fail_share: float) -> None:
    rng = random.Random(seed)
    peers = [Peer(random_peer_id(rng)) for _ in range(n)]
    failing = {p.id for p in peers if rng.random() < fail_share}
    target = rng.randbytes(8)
    t = key_of(target)
    by_distance = sorted(peers, key=lambda p: key_of(p.id) ^ t)
    seeds = rng.sample(peers, rng.randint(1, n))
    lookup = FindNodeLookup(1, target, seeds, self_id=b"me", now=0, k=k, alpha=alpha)

    asked: list[bytes] = []
    inflight: list[bytes] = []
    action: LookupAction = lookup.advance(Poll(), 0)
    for _ in range(20 * n + 10):
        while isinstance(action, SendRequest):
            assert action.peer.id not in asked, "asked twice"
            asked.append(action.peer.id)
            inflight.append(action.peer.id)
            assert len(inflight) <= alpha
            action = lookup.advance(Poll(), 0)
        if isinstance(action, Finished):
            break
        pid = inflight.pop(rng.randrange(len(inflight)))
        if pid in failing:
            action = lookup.advance(NodeFailed(pid), 0)
        else:
            closer = tuple(q for q in by_distance if q.id != pid)[:k]
            reply = Message(MessageType.FIND_NODE, key=target, closer_peers=closer)
            action = lookup.advance(NodeResponded(pid, reply), 0)
    assert isinstance(action, Finished)
    result = action.result
    assert isinstance(result, ClosestPeers)
    got = [p.id for p in result.closest]
    assert len(got) <= k
    assert not failing & set(got)
    assert got == sorted(got, key=lambda i: key_of(i) ^ t)
    if not failing:
        assert got == [p.id for p in by_distance[:k]]
    assert result.stats.requests == len(asked)


schedule_ops = st.lists(
    st.tuples(
        st.sampled_from(["add", "add_now", "remove", "poll"]),
        st.integers(0, 3),  # which key
        st.floats(0, 3 * REPUBLISH_INTERVAL, allow_nan=False),  # time step
    ),
    max_size=60,
)


@given(schedule_ops)
def test_republish_turns_hold_under_any_sequence_of_events(
    ops: list[tuple[str, int, float]],
) -> None:
    """Tracked keys come out at most once per interval and never later than due (if polled);
    untracked keys never come out."""
    now = float(NOW)
    s = Schedule(now)
    tracked: dict[bytes, float] = {}  # key -> when it is due (model)
    last_out: dict[bytes, float] = {}
    for op, which, step in ops:
        now += step
        key = b"/k/%d" % which
        if op == "add" and key not in tracked:
            s.add_value(key, now)
            tracked[key] = now + REPUBLISH_INTERVAL
        elif op == "add_now" and key not in tracked:
            s.add_value(key, now, republish_now=True)
            tracked[key] = now
        elif op == "remove":
            assert s.remove_value(key) == (key in tracked)
            tracked.pop(key, None)
            last_out.pop(key, None)  # a key added again is a new turn
        elif op == "poll":
            out = {a.key for a in s.poll(now) if isinstance(a, Republish)}
            assert out <= set(tracked)
            assert out == {k for k, due in tracked.items() if due <= now}
            for k in out:
                if k in last_out:
                    assert now - last_out[k] >= REPUBLISH_INTERVAL
                last_out[k] = now
                tracked[k] = now + REPUBLISH_INTERVAL
        assert sorted(s.values()) == sorted(tracked)
        assert s.next_deadline() <= min([*tracked.values(), now + MAINTENANCE_INTERVAL])
