"""Store lookups that write while they walk and answer at a quorum (issue 14, "Publish").

A world of peers that all know each other answers ideally; answers arrive one
at a time in a seeded random order, so the walk and the writes interleave.
"""

from __future__ import annotations

import random

import pytest

from datanet.testing.clock import NOW
from identity.errors import DatanetError, InvalidInput
from routing.coordinator import (
    Coordinator,
    CoordinatorConfig,
    OutboundRequest,
    QueryDone,
    QueryKind,
    QuorumReached,
)
from routing.keyspace import key_of
from routing.lookup import (
    AddProviderLookup,
    Finished,
    LookupAction,
    NodeResponded,
    Poll,
    PutResult,
    PutValueLookup,
    SendRequest,
    WaitingAtCapacity,
    WaitingWithCapacity,
)
from routing.sim.scenario import random_peer_id
from routing.sim.validator import SimValidator
from routing.stores import ProviderStore, RecordStore
from routing.wire import Message, MessageType, Peer

SELF = b"\x00" * 38
V = SimValidator(b"secret")
T0 = float(NOW)


class World:
    def __init__(self, n: int, seed: int = 0) -> None:
        rng = random.Random(seed)
        self.peers = [Peer(random_peer_id(rng), (b"/w/%d" % i,)) for i in range(n)]

    def closest(self, target: bytes, count: int = 20) -> list[Peer]:
        t = key_of(target)
        return sorted(self.peers, key=lambda p: key_of(p.id) ^ t)[:count]

    def answer(self, peer: Peer, msg: Message) -> Message | None:
        if msg.type is MessageType.PUT_VALUE:
            return msg
        if msg.type is MessageType.ADD_PROVIDER:
            return None
        return Message(msg.type, key=msg.key, closer_peers=tuple(self.closest(msg.key)))


def run(
    lookup: PutValueLookup | AddProviderLookup, world: World, seed: int
) -> tuple[list[SendRequest], list[tuple[int, PutResult]], PutResult]:
    """Drive to the end; returns what was sent, the quorum results seen (with how
    many PUT answers had arrived then) and the final result."""
    order = random.Random(seed)
    now = T0
    sent: list[SendRequest] = []
    inflight: list[SendRequest] = []
    quorums: list[tuple[int, PutResult]] = []
    put_answers = 0
    action: LookupAction = lookup.advance(Poll(), now)
    for _ in range(10_000):
        while isinstance(action, SendRequest):
            sent.append(action)
            inflight.append(action)
            action = lookup.advance(Poll(), now)
        partial = lookup.quorum_result(now)
        if partial is not None and not isinstance(action, Finished):
            quorums.append((put_answers, partial))
        if isinstance(action, Finished):
            assert isinstance(action.result, PutResult)
            return sent, quorums, action.result
        assert isinstance(action, WaitingAtCapacity | WaitingWithCapacity)
        req = inflight.pop(order.randrange(len(inflight)))
        if req.message.type is not MessageType.FIND_NODE:
            put_answers += 1
        now += 0.01
        action = lookup.advance(
            NodeResponded(req.peer.id, world.answer(req.peer, req.message)), now
        )
    raise AssertionError("the lookup did not finish")


@pytest.mark.parametrize("seed", range(6))
def test_eager_put_writes_during_the_walk_and_reaches_every_final_closest_once(seed: int) -> None:
    world = World(300, seed=seed)
    key = b"/sim/k%d" % seed
    value = V.make_value(key, 1, b"v")
    seeds = world.peers[:20]
    lookup = PutValueLookup(1, key, value, seeds, self_id=SELF, now=T0, eager=True)
    sent, _, result = run(lookup, world, seed)
    kinds = [s.message.type for s in sent]
    puts = [s.peer.id for s in sent if s.message.type is MessageType.PUT_VALUE]
    last_find = max(i for i, t in enumerate(kinds) if t is MessageType.FIND_NODE)
    first_put = kinds.index(MessageType.PUT_VALUE)
    assert first_put < last_find, "no write went out before the walk ended"
    assert len(puts) == len(set(puts)), "a peer got the write twice"
    closest = {p.id for p in world.closest(key)}
    assert closest <= set(puts), "a final closest peer never got the write"
    assert {p.id for p in result.closest} == closest
    # Each write went to a peer that had answered the walk first.
    for i, s in enumerate(sent):
        if s.message.type is MessageType.PUT_VALUE:
            assert any(
                f.peer.id == s.peer.id and f.message.type is MessageType.FIND_NODE for f in sent[:i]
            )
    assert len(result.acked) == len(puts)
    assert result.pending == 0
    assert result.walk is not None


def test_without_eager_the_walk_ends_before_the_first_write() -> None:
    world = World(300, seed=1)
    key = b"/sim/k"
    lookup = PutValueLookup(
        1, key, V.make_value(key, 1, b"v"), world.peers[:20], self_id=SELF, now=T0
    )
    sent, quorums, result = run(lookup, world, 1)
    kinds = [s.message.type for s in sent]
    first_put = kinds.index(MessageType.PUT_VALUE)
    assert MessageType.FIND_NODE not in kinds[first_put:]
    assert quorums == []  # no quorum asked for
    assert len(result.acked) == 20


@pytest.mark.parametrize("eager", [False, True])
def test_quorum_result_never_claims_more_acks_than_arrived(eager: bool) -> None:
    world = World(200, seed=2)
    key = b"/sim/q"
    lookup = PutValueLookup(
        1,
        key,
        V.make_value(key, 1, b"v"),
        world.peers[:20],
        self_id=SELF,
        now=T0,
        quorum=4,
        eager=eager,
    )
    _, quorums, result = run(lookup, world, 2)
    assert quorums, "the quorum was never reported"
    answers_then, first = quorums[0]
    assert len(first.acked) == 4 <= answers_then
    assert first.pending > 0
    assert first.target == 20
    for answered, partial in quorums:
        assert len(partial.acked) <= answered
    assert len(result.acked) == 20


def test_a_put_with_nobody_to_ask_finishes_with_no_ack_and_no_quorum() -> None:
    lookup = PutValueLookup(1, b"/k", b"v", [], self_id=SELF, now=T0, quorum=3, eager=True)
    done = lookup.advance(Poll(), T0)
    assert isinstance(done, Finished)
    assert isinstance(done.result, PutResult)
    assert done.result.acked == ()
    assert lookup.quorum_result(T0) is None


def test_negative_quorum_is_refused() -> None:
    with pytest.raises(InvalidInput):
        PutValueLookup(1, b"/k", b"v", [], self_id=SELF, now=T0, quorum=-1)


def test_eager_add_provider_announces_to_every_final_closest() -> None:
    world = World(300, seed=5)
    key = b"/sim/p"
    me = Peer(SELF, (b"/me",))
    lookup = AddProviderLookup(1, key, me, world.peers[:20], self_id=SELF, now=T0, eager=True)
    sent, _, result = run(lookup, world, 5)
    adds = {s.peer.id for s in sent if s.message.type is MessageType.ADD_PROVIDER}
    assert {p.id for p in world.closest(key)} <= adds
    assert len(result.acked) == len(adds)


# -- the coordinator ----------------------------------------------------------------


def _coordinators(n: int, **cfg: object) -> dict[bytes, Coordinator]:
    rng = random.Random(9)
    nodes: dict[bytes, Coordinator] = {}
    for _ in range(n):
        c = Coordinator(
            Peer(random_peer_id(rng), (b"/addr",)),
            validator=V,
            records=RecordStore(V),
            providers=ProviderStore(),
            rng=random.Random(0),
            config=CoordinatorConfig(**cfg),  # type: ignore[arg-type]
        )
        nodes[c.self_peer.id] = c
    for c in nodes.values():
        for other in nodes.values():
            c.peer_seen(other.self_peer, is_server=True, now=T0)
        c.poll(T0)
    return nodes


def test_coordinator_tells_the_quorum_once_before_the_end() -> None:
    nodes = _coordinators(30, put_quorum=3, eager_store=True)
    asker = next(iter(nodes.values()))
    key = b"/sim/c"
    value = V.make_value(key, 1, b"v")
    query = asker.put_value(key, value, T0)
    seen: list[QuorumReached | QueryDone] = []
    backlog: list[OutboundRequest] = []
    rng = random.Random(3)
    for _ in range(10_000):
        for action in asker.poll(T0):
            if isinstance(action, OutboundRequest):
                backlog.append(action)
            else:
                seen.append(action)
        if any(isinstance(a, QueryDone) for a in seen):
            break
        req = backlog.pop(rng.randrange(len(backlog)))
        dst = nodes[req.peer.id]
        try:
            reply = dst.handle_request(req.message, from_peer=asker.self_peer.id, now=T0)
        except DatanetError:
            asker.request_failed(req.request_id, T0)
        else:
            asker.response_received(req.request_id, reply, T0)
    assert [type(a) for a in seen] == [QuorumReached, QueryDone]
    assert all(a.query_id == query and a.kind is QueryKind.PUT_VALUE for a in seen)
    quorum, done = seen[0].result, seen[1].result
    assert isinstance(quorum, PutResult)
    assert isinstance(done, PutResult)
    assert len(quorum.acked) == 3
    assert len(done.acked) >= 20
    holders = sum(1 for c in nodes.values() if c.records.get(key, now=T0) == value)
    assert holders == len(done.acked)


def test_coordinator_without_quorum_only_reports_the_end() -> None:
    nodes = _coordinators(10)
    asker = next(iter(nodes.values()))
    asker.put_value(b"/sim/d", V.make_value(b"/sim/d", 1, b"v"), T0, quorum=0)
    actions = asker.poll(T0)
    assert not any(isinstance(a, QuorumReached) for a in actions)


def _rounds_to_quorum(nodes: dict[bytes, Coordinator], key: bytes) -> tuple[int | None, int]:
    """Answer every request of a round at once: the round in which the quorum came,
    and how many requests the first round sent."""
    asker = next(iter(nodes.values()))
    asker.put_value(key, V.make_value(key, 1, b"v"), T0)
    pending = [a for a in asker.poll(T0) if isinstance(a, OutboundRequest)]
    first = len(pending)
    rounds = 0
    while pending:
        rounds += 1
        for req in pending:
            reply = nodes[req.peer.id].handle_request(
                req.message, from_peer=asker.self_peer.id, now=T0
            )
            asker.response_received(req.request_id, reply, T0)
        actions = asker.poll(T0)
        if any(isinstance(a, QuorumReached) for a in actions):
            return rounds, first
        pending = [a for a in actions if isinstance(a, OutboundRequest)]
    return None, first


def test_a_put_answers_in_one_round_trip_when_its_walk_carries_the_write() -> None:
    # With alpha = 3 and a quorum of 4, the 4th write waited for a 4th walk answer:
    # three round trips. Walking with as many requests in flight as the quorum made
    # it two (FIND_NODE to 4, then PUT_VALUE to those 4). The first FIND_NODEs now
    # carry the record to the nearest candidates, so the quorum comes in one.
    nodes = _coordinators(40, put_quorum=4, eager_store=True, alpha=3)
    # 2q in flight: the quorum is the q-th fastest answer, not the slowest of q.
    assert _rounds_to_quorum(nodes, b"/sim/rounds") == (1, 8)
    # Without eager writes the walk ends first, then the writes go out.
    lazy = _coordinators(40, put_quorum=4, eager_store=False, alpha=3)
    rounds, first = _rounds_to_quorum(lazy, b"/sim/rounds")
    assert first == 3
    assert rounds is not None
    assert rounds > 2


class EchoingWorld(World):
    """A world of datanet servers: a FIND_NODE that carries a write stores it too."""

    def answer(self, peer: Peer, msg: Message) -> Message | None:
        reply = super().answer(peer, msg)
        if msg.type is MessageType.FIND_NODE and reply is not None:
            return Message(
                MessageType.FIND_NODE,
                msg.key,
                record=msg.record,
                closer_peers=reply.closer_peers,
                provider_peers=msg.provider_peers,
            )
        return reply


def test_the_first_walk_requests_carry_the_write_and_their_acks_count() -> None:
    world = EchoingWorld(60, seed=3)
    key = b"/sim/ride"
    value = V.make_value(key, 1, b"v")
    lookup = PutValueLookup(
        1, key, value, world.peers, self_id=SELF, now=T0, eager=True, quorum=4, alpha=4
    )
    sent, quorums, result = run(lookup, world, seed=3)
    riding = [s for s in sent[:4] if s.message.type is MessageType.FIND_NODE]
    assert len(riding) == 4
    assert all(s.message.record is not None and s.message.record.value == value for s in riding)
    assert quorums, "no quorum before the end"
    assert quorums[0][0] == 0, "the quorum waited for PUT_VALUE answers"
    written = [s.peer.id for s in sent if s.message.record is not None]
    assert len(written) == len(set(written)), "a peer got the write twice"
    assert {p.id for p in world.closest(key)} <= set(written)
    assert len(result.acked) == len(written)


def test_acks_of_far_seeds_do_not_make_the_quorum() -> None:
    # In a large network our nearest known peers may be far from the key: their
    # answers name closer peers, which push them out of the k nearest, so their
    # acks (they did store the record) must not count towards the quorum.
    world = EchoingWorld(2000, seed=4)
    key = b"/sim/far"
    value = V.make_value(key, 1, b"v")
    far = world.closest(key, count=2000)[-4:]
    lookup = PutValueLookup(1, key, value, far, self_id=SELF, now=T0, eager=True, quorum=4, alpha=4)
    first = [lookup.advance(Poll(), T0) for _ in range(4)]
    assert all(isinstance(a, SendRequest) and a.message.record is not None for a in first)
    for a in first:
        assert isinstance(a, SendRequest)
        lookup.advance(NodeResponded(a.peer.id, world.answer(a.peer, a.message)), T0)
    assert lookup.quorum_result(T0) is None
    assert len(lookup._acked) == 4  # stored there, just not counted


def test_a_server_that_ignores_the_carried_record_gets_a_put_value() -> None:
    world = World(60, seed=5)  # answers a FIND_NODE without the record: no ack
    key = b"/sim/plain"
    value = V.make_value(key, 1, b"v")
    lookup = PutValueLookup(
        1, key, value, world.peers, self_id=SELF, now=T0, eager=True, quorum=4, alpha=4
    )
    sent, _, result = run(lookup, world, seed=5)
    assert any(s.message.type is MessageType.FIND_NODE and s.message.record for s in sent)
    puts = {s.peer.id for s in sent if s.message.type is MessageType.PUT_VALUE}
    assert {p.id for p in world.closest(key)} <= puts
    assert {p.id for p in result.acked} == puts


def test_an_announcement_rides_on_its_walk_and_every_final_closest_gets_it_once() -> None:
    world = EchoingWorld(300, seed=6)
    key = b"/sim/provided"
    me = Peer(SELF, (b"/me",))
    lookup = AddProviderLookup(
        1, key, me, world.peers[:20], self_id=SELF, now=T0, eager=True, alpha=4
    )
    sent, _, result = run(lookup, world, seed=6)
    riding = [
        s for s in sent if s.message.type is MessageType.FIND_NODE and s.message.provider_peers
    ]
    assert riding, "no walk request carried the announcement"
    assert all(s.message.provider_peers == (me,) for s in riding)
    written = [
        s.peer.id
        for s in sent
        if s.message.type is MessageType.ADD_PROVIDER or s.message.provider_peers
    ]
    assert len(written) == len(set(written)), "a peer got the announcement twice"
    assert {p.id for p in world.closest(key)} <= set(written)
    assert len(result.acked) == len(written)
    adds = [s for s in sent if s.message.type is MessageType.ADD_PROVIDER]
    assert len(adds) < len(riding), "most announcements should ride"


def test_a_walk_answer_without_the_provider_echo_is_no_ack() -> None:
    world = World(60, seed=7)  # answers a FIND_NODE without echoing: an ADD_PROVIDER follows
    key = b"/sim/plain-provider"
    me = Peer(SELF, (b"/me",))
    lookup = AddProviderLookup(1, key, me, world.peers, self_id=SELF, now=T0, eager=True, alpha=4)
    sent, _, result = run(lookup, world, seed=7)
    assert any(s.message.provider_peers for s in sent if s.message.type is MessageType.FIND_NODE)
    adds = {s.peer.id for s in sent if s.message.type is MessageType.ADD_PROVIDER}
    assert {p.id for p in world.closest(key)} <= adds
    assert {p.id for p in result.acked} == adds
