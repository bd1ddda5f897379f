"""Coordinator: table bookkeeping from driver events, request routing, pings, bootstrap.

Coordinators are joined by a synchronous fake link (h11 style): the harness
carries each OutboundRequest to the target coordinator's ``handle_request`` and
feeds the answer back, so what one side sends is what the other side sees.
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
)
from routing.keyspace import common_prefix_len, key_of
from routing.lookup import ClosestPeers, PutResult, ValueResult
from routing.sim.scenario import random_peer_id
from routing.sim.validator import SimValidator
from routing.stores import ProviderStore, RecordStore
from routing.wire import Message, MessageType, Peer

V = SimValidator(b"s")
T0 = float(NOW)  # the coordinator takes float seconds


def make(peer_id: bytes, **cfg: float) -> Coordinator:
    return Coordinator(
        Peer(peer_id, (b"/addr",)),
        validator=V,
        records=RecordStore(V),
        providers=ProviderStore(),
        rng=random.Random(0),
        config=CoordinatorConfig(**cfg),  # type: ignore[arg-type]
    )


class Link:
    """Carries requests between coordinators synchronously; ``down`` peers never answer."""

    def __init__(self, n: int, seed: int = 0, **cfg: float) -> None:
        rng = random.Random(seed)
        self.nodes = {}
        for _ in range(n):
            c = make(random_peer_id(rng), **cfg)
            self.nodes[c.self_peer.id] = c
        self.down: set[bytes] = set()
        self.done: list[QueryDone] = []
        self.sent: list[OutboundRequest] = []

    def pump(self, now: float) -> None:
        busy = True
        while busy:
            busy = False
            for src in list(self.nodes.values()):
                for action in src.poll(now):
                    busy = True
                    if isinstance(action, QueryDone):
                        self.done.append(action)
                        continue
                    self.sent.append(action)
                    dst = self.nodes.get(action.peer.id)
                    if dst is None or action.peer.id in self.down:
                        src.request_failed(action.request_id, now)
                        continue
                    try:
                        reply = dst.handle_request(
                            action.message, from_peer=src.self_peer.id, now=now
                        )
                    except DatanetError:
                        src.request_failed(action.request_id, now)
                        continue
                    src.response_received(action.request_id, reply, now)

    def know_all(self) -> None:
        for c in self.nodes.values():
            for other in self.nodes.values():
                c.peer_seen(other.self_peer, is_server=True, now=T0)
            c.poll(T0)  # drop any pings from the initial fill


def test_clients_stay_out_of_the_table() -> None:
    a, b = make(b"a" * 38), make(b"b" * 38)
    a.peer_seen(b.self_peer, is_server=False, now=T0)
    assert len(a.table) == 0
    reply = a.handle_request(Message(MessageType.FIND_NODE, key=b"x"), from_peer=b"b" * 38, now=T0)
    assert reply is not None
    assert len(a.table) == 0


def test_a_peer_that_answers_our_request_enters_the_table() -> None:
    link = Link(2)
    a, b = link.nodes.values()
    a.peer_seen(b.self_peer, is_server=True, now=T0)
    assert b.self_peer.id in a.table
    assert a.self_peer.id not in b.table
    a.find_node(b"target", T0)
    link.pump(T0)
    assert a.self_peer.id not in b.table  # b only saw a as a client
    assert [d.kind for d in link.done] == [QueryKind.FIND_NODE]


def test_inbound_answers_never_list_the_asker() -> None:
    link = Link(10)
    link.know_all()
    a, b = list(link.nodes.values())[:2]
    reply = a.handle_request(
        Message(MessageType.FIND_NODE, key=b.self_peer.id), from_peer=b.self_peer.id, now=T0
    )
    assert reply is not None
    assert b.self_peer.id not in {p.id for p in reply.closer_peers}
    assert len(reply.closer_peers) == 8


def test_bootstrap_needs_a_server_then_fills_the_table_and_refreshes() -> None:
    link = Link(60, seed=1)
    nodes = list(link.nodes.values())
    for c in nodes[1:]:  # everyone but the newcomer knows everyone
        for other in nodes[1:]:
            c.peer_seen(other.self_peer, is_server=True, now=T0)
        c.poll(T0)
    newcomer = nodes[0]
    with pytest.raises(InvalidInput):
        newcomer.bootstrap(T0)
    newcomer.peer_seen(nodes[1].self_peer, is_server=True, now=T0)
    qid = newcomer.bootstrap(T0)
    link.pump(T0)
    kinds = [d.kind for d in link.done]
    assert kinds[0] is QueryKind.BOOTSTRAP
    assert link.done[0].query_id == qid
    assert QueryKind.REFRESH in kinds
    assert len(newcomer.table) >= 20
    assert newcomer.running() == []
    assert newcomer.table.buckets_needing_refresh(T0, random.Random(0)) == []


def test_full_bucket_pings_the_oldest_and_evicts_it_when_the_ping_fails() -> None:
    me = make(random_peer_id(random.Random(9)), k=2)
    rng = random.Random(4)
    same_bucket: list[Peer] = []
    while len(same_bucket) < 3:
        pid = random_peer_id(rng)
        if common_prefix_len(key_of(pid), me.table.self_key) == 0:
            same_bucket.append(Peer(pid))
    me.peer_seen(same_bucket[0], is_server=True, now=T0)
    me.peer_seen(same_bucket[1], is_server=True, now=T0)
    # every entry seen within seen_recently: alive, the newcomer waits unpinged
    me.peer_seen(same_bucket[2], is_server=True, now=T0 + 1)
    assert me.poll(T0 + 1) == []
    later = T0 + me.config.seen_recently
    me.peer_seen(same_bucket[2], is_server=True, now=later)
    (ping,) = me.poll(later)
    assert isinstance(ping, OutboundRequest)
    assert ping.message.type is MessageType.PING
    assert ping.query_id is None
    assert ping.peer == same_bucket[0]
    me.request_failed(ping.request_id, later + 1)
    assert same_bucket[0].id not in me.table
    assert same_bucket[2].id in me.table
    assert me.outstanding_requests() == 0


def test_ping_answer_keeps_the_oldest() -> None:
    me = make(random_peer_id(random.Random(9)), k=1)
    rng = random.Random(4)
    bucket0: list[Peer] = []
    while len(bucket0) < 2:
        pid = random_peer_id(rng)
        if common_prefix_len(key_of(pid), me.table.self_key) == 0:
            bucket0.append(Peer(pid))
    later = T0 + me.config.seen_recently
    me.peer_seen(bucket0[0], is_server=True, now=T0)
    me.peer_seen(bucket0[1], is_server=True, now=later)
    (ping,) = me.poll(later)
    assert isinstance(ping, OutboundRequest)
    me.response_received(ping.request_id, Message(MessageType.PING), later + 1)
    assert bucket0[0].id in me.table
    assert bucket0[1].id not in me.table


def test_failed_requests_evict_after_max_failures() -> None:
    link = Link(30, seed=2, max_failures=1)
    link.know_all()
    a = next(iter(link.nodes.values()))
    victim = a.table.closest_to(b"t", 1)[0]
    link.down.add(victim.id)
    a.find_node(b"t", T0)
    link.pump(T0)
    assert victim.id not in a.table
    result = link.done[-1].result
    assert isinstance(result, ClosestPeers)
    assert victim.id not in {p.id for p in result.closest}
    assert result.stats.failures == 1


def test_timeouts_come_from_poll_at_the_deadline() -> None:
    me = make(b"m" * 38, request_timeout=3.0, alpha=1)
    me.peer_seen(Peer(b"x" * 38), is_server=True, now=T0)
    me.peer_seen(Peer(b"y" * 38), is_server=True, now=T0)
    qid = me.find_node(b"t", T0)
    (first,) = me.poll(T0)
    assert isinstance(first, OutboundRequest)
    assert first.query_id == qid
    assert me.next_deadline() == T0 + 3.0
    assert me.poll(T0 + 2.9) == []
    (second,) = me.poll(T0 + 3.0)
    assert isinstance(second, OutboundRequest)
    assert second.peer != first.peer
    (done,) = me.poll(T0 + 6.0)
    assert isinstance(done, QueryDone)
    assert done.result.stats.timeouts == 2
    # the driver's own timeout reports arrive later: table bookkeeping only
    me.request_failed(first.request_id, T0 + 6.0)
    me.request_failed(second.request_id, T0 + 6.0)
    assert me.poll(T0 + 6.0) == []
    assert me.next_deadline() is None


def test_unknown_and_duplicate_outcomes_are_ignored() -> None:
    me = make(b"m" * 38)
    me.response_received(42, Message(MessageType.PING), T0)
    me.request_failed(43, T0)
    assert me.poll(T0) == []


def test_get_value_competes_with_the_local_copy_and_put_corrects_others() -> None:
    link = Link(40, seed=3)
    link.know_all()
    nodes = list(link.nodes.values())
    key = b"/sim/k"
    old, new = V.make_value(key, 1, b"old"), V.make_value(key, 2, b"new")
    asker = nodes[0]
    asker.records.put(key, old, now=T0, from_peer=None)
    holders = asker.table.closest_to(key, 3)
    for p in holders:
        link.nodes[p.id].records.put(key, new, now=T0, from_peer=None)
    asker.get_value(key, T0)
    link.pump(T0)
    result = link.done[-1].result
    assert isinstance(result, ValueResult)
    assert result.best == new
    assert {p.id for p in result.holders} == {p.id for p in holders}
    assert len(result.missing) == 17
    asker.put_value(key, new, T0, targets=list(result.missing) + list(result.outdated))
    link.pump(T0)
    put = link.done[-1]
    assert put.kind is QueryKind.PUT_VALUE
    assert isinstance(put.result, PutResult)
    assert len(put.result.acked) == 17
    assert all(link.nodes[p.id].records.get(key, now=T0) == new for p in result.missing)


def test_put_to_a_peer_that_refuses_is_not_acknowledged() -> None:
    link = Link(5, seed=4)
    link.know_all()
    a = next(iter(link.nodes.values()))
    a.put_value(b"/sim/k", b"1:forged:0000000000000000", T0)
    link.pump(T0)
    result = link.done[-1].result
    assert isinstance(result, PutResult)
    assert result.acked == ()
    assert len(result.failed) == 4


def test_providers_round_trip_through_the_coordinators() -> None:
    link = Link(40, seed=5)
    link.know_all()
    nodes = list(link.nodes.values())
    nodes[0].add_provider(b"/sim/p", T0)
    link.pump(T0)
    ack = link.done[-1].result
    assert isinstance(ack, PutResult)
    assert len(ack.acked) == 20
    nodes[1].get_providers(b"/sim/p", T0, count=1)
    link.pump(T0)
    got = link.done[-1]
    assert got.kind is QueryKind.GET_PROVIDERS
    assert [p.id for p in got.result.providers] == [nodes[0].self_peer.id]  # type: ignore[union-attr]


def test_cancel_finishes_with_a_partial_result() -> None:
    me = make(b"m" * 38)
    me.peer_seen(Peer(b"x" * 38), is_server=True, now=T0)
    qid = me.find_node(b"t", T0)
    me.poll(T0)
    me.cancel(qid, T0 + 1)
    (done,) = me.poll(T0 + 1)
    assert isinstance(done, QueryDone)
    assert done.query_id == qid
    assert me.running() == []
    me.cancel(qid, T0 + 2)  # unknown now: nothing happens
    assert me.poll(T0 + 2) == []
