"""Lookup state machines driven directly by a test harness over an ideal world.

The harness plays the driver: it carries out SendRequest actions, answers from
global knowledge (every peer knows everyone, answers with the k closest), and
feeds the outcome back - in order, out of order, late, or never.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from identity.errors import InvalidInput
from routing.keyspace import key_of
from routing.lookup import (
    AddProviderLookup,
    Cancel,
    ClosestPeers,
    FindNodeLookup,
    Finished,
    GetProvidersLookup,
    GetValueLookup,
    Lookup,
    LookupAction,
    LookupResult,
    NodeFailed,
    NodeResponded,
    Poll,
    ProvidersResult,
    PutResult,
    PutValueLookup,
    SendRequest,
    ValueResult,
    WaitingAtCapacity,
    WaitingWithCapacity,
)
from routing.sim.scenario import random_peer_id
from routing.sim.validator import SimValidator
from routing.wire import Message, MessageType, Peer, Record

SELF = b"\x00" * 38
V = SimValidator(b"secret")
Answer = Callable[[Peer, Message], Message | None]


class World:
    """N peers that all know each other; answers FIND_NODE-style requests ideally."""

    def __init__(self, n: int, seed: int = 0, k: int = 20) -> None:
        rng = random.Random(seed)
        self.peers = [Peer(random_peer_id(rng), (b"/w/%d" % i,)) for i in range(n)]
        self.k = k
        self.values: dict[bytes, bytes] = {}  # peer id -> value served
        self.providers: dict[bytes, tuple[Peer, ...]] = {}

    def closest(self, target: bytes, count: int) -> list[Peer]:
        t = key_of(target)
        return sorted(self.peers, key=lambda p: key_of(p.id) ^ t)[:count]

    def answer(self, peer: Peer, msg: Message) -> Message | None:
        closer = tuple(self.closest(msg.key, self.k))
        if msg.type is MessageType.GET_VALUE:
            value = self.values.get(peer.id)
            record = None if value is None else Record(msg.key, value)
            return Message(msg.type, key=msg.key, record=record, closer_peers=closer)
        if msg.type is MessageType.GET_PROVIDERS:
            return Message(
                msg.type,
                key=msg.key,
                closer_peers=closer,
                provider_peers=self.providers.get(peer.id, ()),
            )
        if msg.type is MessageType.PUT_VALUE:
            return msg
        if msg.type is MessageType.ADD_PROVIDER:
            return None
        return Message(msg.type, key=msg.key, closer_peers=closer)


def drive(
    lookup: Lookup,
    answer: Answer,
    *,
    alpha: int = 3,
    order: random.Random | None = None,
    sent: list[SendRequest] | None = None,
) -> LookupResult:
    """Run ``lookup`` to the end; answers are delivered one at a time (random order if given)."""
    now = 0.0
    inflight: list[SendRequest] = []
    action: LookupAction = lookup.advance(Poll(), now)
    for _ in range(10_000):
        while isinstance(action, SendRequest):
            inflight.append(action)
            if sent is not None:
                sent.append(action)
            action = lookup.advance(Poll(), now)
        if isinstance(action, Finished):
            return action.result
        assert isinstance(action, WaitingAtCapacity | WaitingWithCapacity)
        assert len(inflight) > 0
        if not isinstance(lookup, PutValueLookup | AddProviderLookup):
            assert len(inflight) <= alpha
        req = inflight.pop(order.randrange(len(inflight)) if order else 0)
        now += 0.01
        action = lookup.advance(NodeResponded(req.peer.id, answer(req.peer, req.message)), now)
    raise AssertionError("lookup did not finish")


def find(world: World, target: bytes, seeds: list[Peer], **kw: object) -> FindNodeLookup:
    return FindNodeLookup(1, target, seeds, self_id=SELF, now=0.0, **kw)  # type: ignore[arg-type]


def test_find_node_converges_to_the_true_closest() -> None:
    world = World(400)
    target = b"some-target"
    far = sorted(world.peers, key=lambda p: key_of(p.id) ^ key_of(target))[-5:]
    sent: list[SendRequest] = []
    result = drive(find(world, target, far), world.answer, order=random.Random(1), sent=sent)
    assert isinstance(result, ClosestPeers)
    assert list(result.closest) == world.closest(target, 20)
    asked = [s.peer.id for s in sent]
    assert len(asked) == len(set(asked)), "a peer was asked twice"
    assert all(s.message == Message(MessageType.FIND_NODE, key=target) for s in sent)
    assert result.stats.requests == len(sent) == result.stats.successes
    assert result.stats.rounds >= 2


def test_at_most_alpha_in_flight_then_waiting_at_capacity() -> None:
    world = World(50)
    lookup = find(world, b"t", world.peers[:10], alpha=3)
    actions = [lookup.advance(Poll(), 0.0) for _ in range(4)]
    assert [type(a) for a in actions] == [SendRequest] * 3 + [WaitingAtCapacity]


def test_stops_once_the_k_closest_answered_without_asking_the_rest() -> None:
    world = World(60)
    target = b"t"
    seeds = world.closest(target, 10)
    sent: list[SendRequest] = []
    result = drive(find(world, target, seeds, k=4), world.answer, sent=sent)
    assert isinstance(result, ClosestPeers)
    assert list(result.closest) == world.closest(target, 4)
    assert len(sent) == 4


def test_unanswered_requests_time_out_when_polled_past_the_deadline() -> None:
    world = World(10)
    lookup = find(world, b"t", world.peers[:4], alpha=2, request_timeout=5.0)
    assert isinstance(lookup.advance(Poll(), 0.0), SendRequest)
    assert isinstance(lookup.advance(Poll(), 1.0), SendRequest)
    assert lookup.next_deadline() == 5.0
    assert isinstance(lookup.advance(Poll(), 4.9), WaitingAtCapacity)
    nxt = lookup.advance(Poll(), 5.0)  # the first request expired: its slot is free
    assert isinstance(nxt, SendRequest)
    assert isinstance(lookup.advance(Poll(), 6.0), SendRequest)  # the second expired too
    assert isinstance(lookup.advance(Poll(), 7.0), WaitingAtCapacity)
    done = lookup.advance(Poll(), 100.0)
    assert isinstance(done, Finished)
    assert isinstance(done.result, ClosestPeers)
    assert done.result.closest == ()
    assert done.result.stats.timeouts == 4
    assert lookup.next_deadline() is None


def test_late_answer_after_timeout_is_still_used() -> None:
    world = World(30)
    lookup = find(world, b"t", world.peers[:2], alpha=1, request_timeout=1.0)
    a = lookup.advance(Poll(), 0.0)
    assert isinstance(a, SendRequest)
    b = lookup.advance(Poll(), 1.5)  # a timed out, b is asked
    assert isinstance(b, SendRequest)
    assert b.peer != a.peer
    late = lookup.advance(NodeResponded(a.peer.id, world.answer(a.peer, a.message)), 1.6)
    assert isinstance(late, WaitingAtCapacity)  # late answer accepted; b still in flight
    result = drive_rest(lookup, world, [b], now=1.7)
    assert isinstance(result, ClosestPeers)
    assert list(result.closest) == world.closest(b"t", 20)
    assert result.stats.timeouts == 1
    assert result.stats.successes == result.stats.requests


def drive_rest(
    lookup: Lookup, world: World, inflight: list[SendRequest], now: float
) -> LookupResult:
    action: LookupAction = lookup.advance(Poll(), now)
    while True:
        while isinstance(action, SendRequest):
            inflight.append(action)
            action = lookup.advance(Poll(), now)
        if isinstance(action, Finished):
            return action.result
        req = inflight.pop(0)
        now += 0.01
        action = lookup.advance(
            NodeResponded(req.peer.id, world.answer(req.peer, req.message)), now
        )


def test_answers_from_peers_not_asked_are_ignored() -> None:
    world = World(30)
    lookup = find(world, b"t", world.peers[:1], alpha=1)
    a = lookup.advance(Poll(), 0.0)
    assert isinstance(a, SendRequest)
    stranger = world.peers[5]
    bogus = Message(MessageType.FIND_NODE, key=b"t", closer_peers=tuple(world.peers[10:20]))
    assert isinstance(lookup.advance(NodeResponded(stranger.id, bogus), 0.1), WaitingAtCapacity)
    # the real answer says "nobody else": the bogus peers were never added
    empty = Message(MessageType.FIND_NODE, key=b"t")
    done = lookup.advance(NodeResponded(a.peer.id, empty), 0.2)
    assert isinstance(done, Finished)
    assert isinstance(done.result, ClosestPeers)
    assert done.result.closest == (a.peer,)
    # a duplicate answer after the end changes nothing
    assert lookup.advance(NodeResponded(a.peer.id, bogus), 0.3) is done


def test_wrong_response_type_counts_as_failure() -> None:
    world = World(10)
    lookup = find(world, b"t", world.peers[:1], alpha=1)
    a = lookup.advance(Poll(), 0.0)
    assert isinstance(a, SendRequest)
    done = lookup.advance(NodeResponded(a.peer.id, Message(MessageType.PING)), 0.1)
    assert isinstance(done, Finished)
    assert isinstance(done.result, ClosestPeers)
    assert done.result.closest == ()
    assert done.result.stats.failures == 1


def test_failed_peers_drop_out_and_others_take_their_place() -> None:
    world = World(100)
    target = b"t"
    dead = {p.id for p in world.closest(target, 5)}

    def answer(peer: Peer, msg: Message) -> Message | None:
        return Message(MessageType.PING) if peer.id in dead else world.answer(peer, msg)

    result = drive(find(world, target, world.peers[:20]), answer)
    assert isinstance(result, ClosestPeers)
    got = [p.id for p in result.closest]
    assert len(got) == 20
    assert not dead & set(got)
    assert {p.id for p in world.closest(target, 20)} - dead <= set(got)
    assert got == sorted(got, key=lambda i: key_of(i) ^ key_of(target))
    assert result.stats.failures == 5


def test_node_failed_event_and_cancel() -> None:
    world = World(30)
    lookup = find(world, b"t", world.peers[:5], alpha=2)
    a = lookup.advance(Poll(), 0.0)
    assert isinstance(a, SendRequest)
    lookup.advance(NodeFailed(a.peer.id), 0.1)
    done = lookup.advance(Cancel(), 0.2)
    assert isinstance(done, Finished)
    assert lookup.finished
    assert isinstance(done.result, ClosestPeers)
    assert done.result.stats.failures == 1
    assert lookup.advance(Poll(), 0.3) is done


def test_rounds_count_the_longest_dependency_chain() -> None:
    # A chain: each peer only knows the next one, so depth grows one per hop.
    world = World(6)
    chain = world.peers
    nxt = {chain[i].id: chain[i + 1] for i in range(len(chain) - 1)}

    def answer(peer: Peer, msg: Message) -> Message | None:
        closer = (nxt[peer.id],) if peer.id in nxt else ()
        return Message(MessageType.FIND_NODE, key=msg.key, closer_peers=closer)

    result = drive(find(world, b"t", [chain[0]]), answer)
    assert result.stats.rounds == len(chain)
    assert result.stats.requests == len(chain)


def test_self_is_never_asked() -> None:
    world = World(10)
    lookup = FindNodeLookup(1, b"t", [world.peers[0]], self_id=world.peers[0].id, now=0)
    done = lookup.advance(Poll(), 0)
    assert isinstance(done, Finished)
    assert done.result.stats.requests == 0


@pytest.mark.parametrize("kw", [{"k": 0}, {"alpha": 0}, {"request_timeout": 0.0}])
def test_bad_parameters(kw: dict[str, float]) -> None:
    with pytest.raises(InvalidInput):
        FindNodeLookup(1, b"t", [], self_id=SELF, now=0, **kw)  # type: ignore[arg-type]


# -- GET_VALUE -------------------------------------------------------------------


def get_value(world: World, key: bytes, local: bytes | None = None) -> ValueResult:
    lookup = GetValueLookup(
        7, key, world.peers[:20], validator=V, self_id=SELF, now=0.0, local=local
    )
    result = drive(lookup, world.answer, order=random.Random(2))
    assert isinstance(result, ValueResult)
    return result


def test_get_value_picks_the_best_valid_value_and_names_outdated_and_missing() -> None:
    world = World(200)
    key = b"/sim/k"
    v1, v2 = V.make_value(key, 1, b"old"), V.make_value(key, 2, b"new")
    forged = b"99:evil:0000000000000000"
    closest = world.closest(key, 20)
    for p in closest[:5]:
        world.values[p.id] = v2
    for p in closest[5:8]:
        world.values[p.id] = v1
    world.values[closest[8].id] = forged
    result = get_value(world, key, local=v1)
    assert result.best == v2
    assert {p.id for p in result.holders} == {p.id for p in closest[:5]}
    assert {p.id for p in result.outdated} == {p.id for p in closest[5:9]}
    assert {p.id for p in result.missing} == {p.id for p in closest[9:20]}
    assert list(result.closest) == closest
    assert all(p.addrs for p in result.holders + result.outdated)


def test_get_value_does_not_stop_at_a_local_copy() -> None:
    world = World(100)
    key = b"/sim/k"
    newer = V.make_value(key, 5, b"newer")
    far_holder = world.closest(key, 20)[-1]
    world.values[far_holder.id] = newer
    result = get_value(world, key, local=V.make_value(key, 1, b"mine"))
    assert result.best == newer
    assert result.stats.requests >= 20


def test_get_value_never_returns_forged_or_wrong_key_records() -> None:
    world = World(80)
    key = b"/sim/k"
    closest = world.closest(key, 20)
    world.values[closest[0].id] = b"7:x:0123456789abcdef"
    world.values[closest[1].id] = V.make_value(b"/sim/other", 9, b"other key")
    result = get_value(world, key)
    assert result.best is None
    assert result.holders == ()
    assert {p.id for p in result.outdated} == {closest[0].id, closest[1].id}


def test_get_value_ignores_an_invalid_local_copy() -> None:
    world = World(30)
    result = get_value(world, b"/sim/k", local=b"junk")
    assert result.best is None


# -- GET_PROVIDERS --------------------------------------------------------------------


def test_get_providers_deduplicates_and_keeps_addresses() -> None:
    world = World(100)
    key = b"/sim/p"
    closest = world.closest(key, 20)
    prov = Peer(b"provider-1")
    world.providers[closest[0].id] = (prov,)
    world.providers[closest[1].id] = (Peer(b"provider-1", (b"/a",)), Peer(b"provider-2"))
    lookup = GetProvidersLookup(1, key, world.peers[:20], self_id=SELF, now=0, count=0)
    result = drive(lookup, world.answer)
    assert isinstance(result, ProvidersResult)
    assert [p.id for p in result.providers] == [b"provider-1", b"provider-2"]
    assert result.providers[0].addrs == (b"/a",)


def test_get_providers_stops_early_once_count_are_known() -> None:
    world = World(300)
    key = b"/sim/p"
    for i, p in enumerate(world.peers):
        world.providers[p.id] = (Peer(b"prov-%d" % (i % 2)),)
    sent: list[SendRequest] = []
    lookup = GetProvidersLookup(1, key, world.peers[:20], self_id=SELF, now=0, count=2)
    result = drive(lookup, world.answer, sent=sent)
    assert isinstance(result, ProvidersResult)
    assert len(result.providers) == 2
    assert len(sent) <= 3 + 2


def test_get_providers_with_enough_local_providers_sends_nothing() -> None:
    lookup = GetProvidersLookup(
        1, b"k", [Peer(b"x")], self_id=SELF, now=0, count=1, local=[Peer(b"me")]
    )
    done = lookup.advance(Poll(), 0)
    assert isinstance(done, Finished)
    assert isinstance(done.result, ProvidersResult)
    assert done.result.providers == (Peer(b"me"),)


def test_get_providers_rejects_negative_count() -> None:
    with pytest.raises(InvalidInput):
        GetProvidersLookup(1, b"k", [], self_id=SELF, now=0, count=-1)


# -- PUT_VALUE / ADD_PROVIDER -----------------------------------------------------------


def test_put_value_stores_on_the_k_closest_and_counts_only_echoes() -> None:
    world = World(150)
    key = b"/sim/k"
    value = V.make_value(key, 1, b"v")
    closest = world.closest(key, 20)
    refuses = closest[3]
    lies = closest[4]

    def answer(peer: Peer, msg: Message) -> Message | None:
        if msg.type is MessageType.PUT_VALUE:
            if peer.id == refuses.id:
                return Message(MessageType.PUT_VALUE, key=key)  # no echo: not stored
            if peer.id == lies.id:
                return Message(MessageType.PUT_VALUE, key=key, record=Record(key, b"other"))
        return world.answer(peer, msg)

    sent: list[SendRequest] = []
    lookup = PutValueLookup(1, key, value, world.peers[:20], self_id=SELF, now=0)
    result = drive(lookup, answer, sent=sent)
    assert isinstance(result, PutResult)
    puts = [s for s in sent if s.message.type is MessageType.PUT_VALUE]
    assert {s.peer.id for s in puts} == {p.id for p in closest}
    assert all(s.message.record == Record(key, value) for s in puts)
    assert {p.id for p in result.failed} == {refuses.id, lies.id}
    assert len(result.acked) == 18
    finds = [s for s in sent if s.message.type is MessageType.FIND_NODE]
    assert result.stats.requests == len(finds) + len(puts)
    assert result.stats.rounds >= 2


def test_put_value_to_explicit_targets_skips_the_walk_and_times_out() -> None:
    targets = [Peer(b"a"), Peer(b"b"), Peer(b"a")]
    lookup = PutValueLookup(
        1, b"/sim/k", b"v", [], self_id=SELF, now=0, targets=targets, request_timeout=2.0
    )
    first = lookup.advance(Poll(), 0)
    second = lookup.advance(Poll(), 0)
    assert isinstance(first, SendRequest)
    assert isinstance(second, SendRequest)
    assert {first.peer.id, second.peer.id} == {b"a", b"b"}
    assert isinstance(lookup.advance(Poll(), 0), WaitingWithCapacity)
    echo = Message(MessageType.PUT_VALUE, key=b"/sim/k", record=Record(b"/sim/k", b"v"))
    lookup.advance(NodeResponded(first.peer.id, echo), 0.5)
    done = lookup.advance(Poll(), 2.0)
    assert isinstance(done, Finished)
    assert isinstance(done.result, PutResult)
    assert [p.id for p in done.result.acked] == [first.peer.id]
    assert [p.id for p in done.result.failed] == [second.peer.id]
    assert done.result.stats.timeouts == 1
    assert done.result.stats.rounds == 1


def test_add_provider_counts_delivery_as_ack() -> None:
    world = World(60)
    key = b"/sim/p"
    me = Peer(SELF, (b"/me",))
    sent: list[SendRequest] = []
    lookup = AddProviderLookup(1, key, me, world.peers[:20], self_id=SELF, now=0)
    result = drive(lookup, world.answer, sent=sent)
    assert isinstance(result, PutResult)
    adds = [s for s in sent if s.message.type is MessageType.ADD_PROVIDER]
    assert len(adds) == 20 == len(result.acked)
    assert all(s.message.provider_peers == (me,) for s in adds)


def test_store_lookup_cancel_counts_pending_as_failed() -> None:
    lookup = PutValueLookup(1, b"/k", b"v", [], self_id=SELF, now=0, targets=[Peer(b"a")])
    assert isinstance(lookup.advance(Poll(), 0), SendRequest)
    done = lookup.advance(Cancel(), 1)
    assert isinstance(done, Finished)
    assert isinstance(done.result, PutResult)
    assert done.result.failed == (Peer(b"a"),)
    assert lookup.next_deadline() is None
