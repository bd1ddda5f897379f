"""Unit tests of the GossipSub v1.1 router state machine (routing/gossip/router.py)."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable

import pytest

from identity.errors import InvalidInput, RecordTooLarge
from routing.gossip.router import (
    GossipConfig,
    GossipRouter,
    SendRpc,
    Validate,
    ValidationResult,
)
from routing.gossip.wire import (
    RPC,
    Graft,
    IHave,
    IWant,
    PeerInfo,
    Prune,
    PubMessage,
    SubOpts,
    decode_rpc,
    encode_rpc,
    message_id,
)

TOPIC = "dn/net"
SELF = b"self-peer"
A, B, C, D = b"peer-a", b"peer-b", b"peer-c", b"peer-d"
HB = GossipConfig().heartbeat_interval


def pid(i: int) -> bytes:
    return b"node-" + i.to_bytes(4, "big")


def sends(actions: list[SendRpc | Validate]) -> list[SendRpc]:
    return [a for a in actions if isinstance(a, SendRpc)]


def validates(actions: list[SendRpc | Validate]) -> list[Validate]:
    return [a for a in actions if isinstance(a, Validate)]


def published_to(actions: list[SendRpc | Validate]) -> dict[bytes, list[bytes]]:
    out: dict[bytes, list[bytes]] = defaultdict(list)
    for s in sends(actions):
        out[s.peer].extend(m.data for m in s.rpc.publish)
    return {p: d for p, d in out.items() if d}


def subscribed_router(
    peers: list[bytes], *, config: GossipConfig | None = None, outbound: bool = True
) -> GossipRouter:
    """A router subscribed to TOPIC whose peers all subscribed too, after one heartbeat."""
    r = GossipRouter(SELF, config=config or GossipConfig(), rng=random.Random(7), now=0.0)
    r.subscribe(TOPIC, 0.0)
    for p in peers:
        r.add_peer(p, outbound=outbound, now=0.0)
        r.handle_rpc(p, RPC(subscriptions=(SubOpts(True, TOPIC),)), 0.0)
    r.poll(HB)  # first heartbeat: the mesh fills
    return r


class Net:
    """Routers wired together; RPCs go through the real codec; delivery in rounds."""

    def __init__(self, n: int, *, config: GossipConfig | None = None, seed: int = 1) -> None:
        cfg = config or GossipConfig()
        self.now = 0.0
        self.ids = [pid(i) for i in range(n)]
        self.routers = {
            p: GossipRouter(p, config=cfg, rng=random.Random(seed * 1000 + i), now=0.0)
            for i, p in enumerate(self.ids)
        }
        self.accepted: dict[bytes, list[bytes]] = defaultdict(list)
        self.validator: Callable[[bytes, bytes], ValidationResult] = lambda _node, _data: (
            ValidationResult.ACCEPT
        )
        self.silent: set[bytes] = set()  # routers whose output is dropped

    def connect(self, a: bytes, b: bytes) -> None:
        self.routers[a].add_peer(b, outbound=True, now=self.now)
        self.routers[b].add_peer(a, outbound=False, now=self.now)

    def pump(self, max_rounds: int = 100) -> None:
        for _ in range(max_rounds):
            moved = False
            for node, router in self.routers.items():
                for action in router.poll(self.now):
                    moved = True
                    if isinstance(action, Validate):
                        verdict = self.validator(node, action.data)
                        if verdict is ValidationResult.ACCEPT:
                            self.accepted[node].append(action.data)
                        router.report_validation(action.message_id, verdict, self.now)
                    elif node not in self.silent:
                        rpc = decode_rpc(encode_rpc(action.rpc))
                        self.routers[action.peer].handle_rpc(node, rpc, self.now)
            if not moved:
                return

    def advance(self, seconds: float, step: float = 0.1) -> None:
        end = self.now + seconds
        while self.now < end - 1e-9:
            self.now = min(end, self.now + step)
            self.pump()


# -- mesh ---------------------------------------------------------------------


def test_mesh_sizes_stay_within_bounds() -> None:
    cfg = GossipConfig()
    net = Net(30, config=cfg)
    for i, a in enumerate(net.ids):
        for b in net.ids[i + 1 :]:
            net.connect(a, b)
    for r in net.routers.values():
        r.subscribe(TOPIC, 0.0)
    net.advance(5.0)
    for node, r in net.routers.items():
        mesh = r.mesh(TOPIC)
        assert cfg.D_lo <= len(mesh) <= cfg.D_hi, node
        assert r.stats()["mesh_min"] == len(mesh)
        assert mesh <= r.peers()
        # meshes are symmetric once GRAFT/PRUNE have been exchanged
        for p in mesh:
            assert node in net.routers[p].mesh(TOPIC)


def test_oversubscribed_mesh_is_pruned_to_d_keeping_outbound_quota() -> None:
    cfg = GossipConfig()
    peers = [pid(i) for i in range(20)]
    r = subscribed_router(peers[:3], config=cfg, outbound=False)
    outbound = set(peers[-2:])
    for p in peers[3:]:
        r.add_peer(p, outbound=p in outbound, now=HB)
        r.handle_rpc(p, RPC(subscriptions=(SubOpts(True, TOPIC),), graft=(Graft(TOPIC),)), HB)
    # inbound GRAFTs beyond D_hi are refused; the two outbound ones are taken
    assert len(r.mesh(TOPIC)) == cfg.D_hi + 2
    refused = [s for s in sends(r.poll(HB)) if s.rpc.prune]
    assert len(refused) == 20 - cfg.D_hi - 2 + 2 - 3 + 3 - 2  # 6 inbound over the bound
    actions = r.poll(2 * HB)
    assert len(r.mesh(TOPIC)) == cfg.D
    prunes = [s for s in sends(actions) if s.rpc.prune]
    assert len(prunes) == cfg.D_hi + 2 - cfg.D
    assert outbound <= r.mesh(TOPIC)  # the only outbound peers fill the D_out quota
    assert all(s.rpc.prune[0].backoff == 60 for s in prunes)


def test_trimming_keeps_the_d_score_best_peers() -> None:
    cfg = GossipConfig()
    peers = [pid(i) for i in range(16)]
    r = subscribed_router(peers[:2], config=cfg)
    for p in peers[2:]:
        r.add_peer(p, outbound=True, now=HB)
        r.handle_rpc(p, RPC(subscriptions=(SubOpts(True, TOPIC),), graft=(Graft(TOPIC),)), HB)
    best = set(peers[-cfg.D_score :])
    for p in best:
        r.set_app_score(p, 5.0)
    assert len(r.mesh(TOPIC)) > cfg.D_hi
    r.poll(2 * HB)
    assert len(r.mesh(TOPIC)) == cfg.D
    assert best <= r.mesh(TOPIC)


def test_graft_is_answered_with_prune_during_backoff_and_penalised() -> None:
    r = subscribed_router([A, B])
    r.handle_rpc(A, RPC(prune=(Prune(TOPIC, backoff=60),)), HB)
    assert A not in r.mesh(TOPIC)
    assert r.in_backoff(TOPIC, A, HB + 1)
    for t in range(2, 40):  # heartbeats do not re-graft A during its backoff
        r.poll(t * HB)
        assert A not in r.mesh(TOPIC)
    before = r.score(A, 20.0)
    r.handle_rpc(A, RPC(graft=(Graft(TOPIC),)), 20.0)
    actions = r.poll(20.0)
    assert A not in r.mesh(TOPIC)
    assert any(s.peer == A and s.rpc.prune for s in sends(actions))
    assert r.score(A, 20.0) < before
    assert r.in_backoff(TOPIC, A, 75.0)  # the refused GRAFT refreshed the backoff
    r.poll(81.0)
    assert not r.in_backoff(TOPIC, A, 81.0)


def test_negative_score_peers_leave_the_mesh() -> None:
    r = subscribed_router([A, B, C])
    r.set_app_score(A, -5.0)
    r.poll(2 * HB)
    assert A not in r.mesh(TOPIC)
    assert {B, C} <= r.mesh(TOPIC)


def test_unsubscribe_prunes_with_unsubscribe_backoff() -> None:
    r = subscribed_router([A, B])
    r.unsubscribe(TOPIC, HB)
    actions = r.poll(HB)
    assert r.mesh(TOPIC) == frozenset()
    backoffs = {s.peer: s.rpc.prune[0].backoff for s in sends(actions) if s.rpc.prune}
    assert backoffs == {A: 10, B: 10}
    assert all(any(not x.subscribe for x in s.rpc.subscriptions) for s in sends(actions))


# -- validation and forwarding ---------------------------------------------------


def test_forwarded_only_after_accept_and_never_back_to_the_sender() -> None:
    r = subscribed_router([A, B, C])
    r.handle_rpc(A, RPC(publish=(PubMessage(TOPIC, b"m1"),)), 1.0)
    actions = r.poll(1.0)
    assert published_to(actions) == {}
    (v,) = validates(actions)
    assert (v.message_id, v.topic, v.data, v.from_peer) == (message_id(b"m1"), TOPIC, b"m1", A)
    r.handle_rpc(B, RPC(publish=(PubMessage(TOPIC, b"m1"),)), 1.0)  # same id while pending
    assert validates(r.poll(1.0)) == []
    r.report_validation(v.message_id, ValidationResult.ACCEPT, 1.0)
    assert published_to(r.poll(1.0)) == {C: [b"m1"]}
    assert r.stats()["duplicates"] == 1
    assert r.score(A, 1.0) > r.score(B, 1.0) - 1e-9  # A delivered first (P2)


def test_reject_is_never_forwarded_and_penalises_every_deliverer() -> None:
    r = subscribed_router([A, B, C])
    r.handle_rpc(A, RPC(publish=(PubMessage(TOPIC, b"junk"),)), 1.0)
    r.handle_rpc(B, RPC(publish=(PubMessage(TOPIC, b"junk"),)), 1.0)
    (v,) = validates(r.poll(1.0))
    r.report_validation(v.message_id, ValidationResult.REJECT, 1.0)
    assert published_to(r.poll(1.0)) == {}
    assert r.score(A, 1.0) < 0
    assert r.score(B, 1.0) < 0
    assert r.score(C, 1.0) >= 0
    r.handle_rpc(C, RPC(publish=(PubMessage(TOPIC, b"junk"),)), 1.0)  # a later copy: also P4
    assert r.score(C, 1.0) < 0
    assert validates(r.poll(1.0)) == []


def test_ignore_drops_without_penalty() -> None:
    r = subscribed_router([A, B])
    r.handle_rpc(A, RPC(publish=(PubMessage(TOPIC, b"meh"),)), 1.0)
    (v,) = validates(r.poll(1.0))
    r.report_validation(v.message_id, ValidationResult.IGNORE, 1.0)
    assert published_to(r.poll(1.0)) == {}
    assert r.score(A, 1.0) >= 0


def test_validation_timeout_counts_as_ignore() -> None:
    cfg = GossipConfig(validation_timeout=2.0)
    r = subscribed_router([A, B], config=cfg)
    r.handle_rpc(A, RPC(publish=(PubMessage(TOPIC, b"slow"),)), 1.0)
    (v,) = validates(r.poll(1.0))
    assert r.next_deadline() <= 3.0
    r.poll(3.5)
    assert r.stats()["validation_timeouts"] == 1
    r.report_validation(v.message_id, ValidationResult.ACCEPT, 3.6)  # too late: no effect
    assert published_to(r.poll(3.6)) == {}


@pytest.mark.parametrize("send", ["publish", "relay"])
def test_sending_bytes_whose_copy_awaits_validation_accepts_and_forwards_it(send: str) -> None:
    # A gateway got a record by a DHT write while the gossip copy waited for
    # validation; judged then, the copy was "already held" and never forwarded,
    # so nobody behind the gateway got it. Sending the bytes accepts the copy.
    r = subscribed_router([A, B, C])
    take = getattr(r, send)
    r.handle_rpc(A, RPC(publish=(PubMessage(TOPIC, b"raced"),)), 1.0)
    (v,) = validates(r.poll(1.0))
    assert take(TOPIC, b"raced", 1.1) == v.message_id
    out = published_to(r.poll(1.1))
    assert A not in out  # it came from A
    assert out, "the copy was not forwarded"
    assert all(data == [b"raced"] for data in out.values())
    r.report_validation(v.message_id, ValidationResult.IGNORE, 1.2)  # the late verdict: no effect
    assert published_to(r.poll(1.2)) == {}
    assert r.stats()["delivered"] == 1
    assert take(TOPIC, b"raced", 1.3) == v.message_id  # accepted already: a no-op
    assert published_to(r.poll(1.3)) == {}


def test_relay_sends_to_the_mesh_only_and_never_floods() -> None:
    peers = [pid(i) for i in range(20)]
    r = subscribed_router(peers)
    mesh = r.mesh(TOPIC)
    assert 0 < len(mesh) < len(peers)
    mid = r.relay(TOPIC, b"theirs", 1.0)
    assert mid == message_id(b"theirs")
    assert published_to(r.poll(1.0)) == {p: [b"theirs"] for p in mesh}
    assert r.stats()["relayed"] == 1
    assert r.stats()["published"] == 0
    r.handle_rpc(peers[0], RPC(publish=(PubMessage(TOPIC, b"theirs"),)), 1.1)
    assert validates(r.poll(1.1)) == []  # held already: a duplicate, not validated again
    assert r.relay(TOPIC, b"theirs", 1.2) == mid
    assert published_to(r.poll(1.2)) == {}
    with pytest.raises(RecordTooLarge):
        r.relay(TOPIC, b"x" * (64 * 1024 + 1), 1.3)


def test_relay_without_a_subscription_sends_nothing() -> None:
    r = GossipRouter(SELF, config=GossipConfig(), rng=random.Random(7), now=0.0)
    for p in (A, B):
        r.add_peer(p, outbound=True, now=0.0)
        r.handle_rpc(p, RPC(subscriptions=(SubOpts(True, TOPIC),)), 0.0)
    r.relay(TOPIC, b"theirs", 1.0)
    assert published_to(r.poll(1.0)) == {}


def test_pending_validations_are_bounded() -> None:
    cfg = GossipConfig(max_pending_validations=3)
    r = subscribed_router([A], config=cfg)
    msgs = tuple(PubMessage(TOPIC, bytes([i])) for i in range(5))
    r.handle_rpc(A, RPC(publish=msgs), 1.0)
    assert len(validates(r.poll(1.0))) == 3
    assert r.stats()["validation_throttled"] == 2


def test_strict_no_sign_violation_is_rejected_and_penalised() -> None:
    r = subscribed_router([A, B])
    signed = PubMessage(TOPIC, b"m", from_peer=A, seqno=b"\x00\x01")
    r.handle_rpc(A, RPC(publish=(signed,)), 1.0)
    assert validates(r.poll(1.0)) == []
    assert r.score(A, 1.0) < 0
    assert r.stats()["strict_nosign_violations"] == 1
    r.handle_rpc(B, RPC(publish=(PubMessage(TOPIC, b"m"),)), 1.0)  # the clean copy passes
    assert len(validates(r.poll(1.0))) == 1


def test_validation_is_only_asked_for_subscribed_topics() -> None:
    r = subscribed_router([A])
    r.handle_rpc(A, RPC(publish=(PubMessage("elsewhere", b"m"),)), 1.0)
    assert validates(r.poll(1.0)) == []
    assert r.stats()["unsubscribed_messages"] == 1


def test_publish_floods_to_topic_peers_and_repeat_is_a_no_op() -> None:
    r = subscribed_router([A, B, C])
    r.add_peer(D, outbound=True, now=1.0)  # not subscribed to TOPIC
    mid = r.publish(TOPIC, b"own", 1.0)
    assert mid == message_id(b"own")
    assert published_to(r.poll(1.0)) == {A: [b"own"], B: [b"own"], C: [b"own"]}
    assert r.publish(TOPIC, b"own", 1.1) == mid
    assert published_to(r.poll(1.1)) == {}
    with pytest.raises(RecordTooLarge):
        r.publish(TOPIC, b"x" * (64 * 1024 + 1), 1.2)


def test_fanout_publish_without_flood() -> None:
    cfg = GossipConfig(flood_publish=False, D=2, D_lo=1, D_hi=4, D_score=1, D_out=1)
    r = GossipRouter(SELF, config=cfg, rng=random.Random(3), now=0.0)
    for p in (A, B, C, D):
        r.add_peer(p, outbound=True, now=0.0)
        r.handle_rpc(p, RPC(subscriptions=(SubOpts(True, TOPIC),)), 0.0)
    r.publish(TOPIC, b"x", 0.1)
    targets = published_to(r.poll(0.1))
    assert len(targets) == 2
    assert set(targets) == set(r.fanout(TOPIC))
    r.poll(100.0)  # fanout_ttl passes without publishing
    assert r.fanout(TOPIC) == frozenset()


def test_subscribe_is_announced_to_new_peers() -> None:
    r = GossipRouter(SELF, rng=random.Random(1), now=0.0)
    r.subscribe(TOPIC, 0.0)
    r.add_peer(A, outbound=True, now=0.0)
    (send,) = sends(r.poll(0.0))
    assert send.peer == A
    assert send.rpc.subscriptions == (SubOpts(True, TOPIC),)
    for i in range(63):
        r.subscribe(f"t{i}", 0.0)
    with pytest.raises(InvalidInput):
        r.subscribe("one-too-many", 0.0)


# -- gossip -------------------------------------------------------------------------


def test_ihave_iwant_recovers_a_missed_message() -> None:
    net = Net(2)
    a, b = net.ids
    for r in net.routers.values():
        r.subscribe(TOPIC, 0.0)
    net.connect(a, b)
    net.pump()
    net.silent.add(a)  # a's direct publish is lost...
    net.routers[a].publish(TOPIC, b"missed", 0.0)
    net.pump()
    net.silent.clear()
    assert net.accepted[b] == []
    # ...but the mesh is a's only peer; make b a non-mesh peer so a gossips to it
    net.routers[a].handle_rpc(b, RPC(prune=(Prune(TOPIC, backoff=60),)), 0.0)
    net.routers[b].handle_rpc(a, RPC(prune=(Prune(TOPIC, backoff=60),)), 0.0)
    net.advance(2.0)
    assert net.accepted[b] == [b"missed"]
    assert net.routers[a].stats()["iwant_served"] == 1


def test_ihave_is_bounded_and_ignored_for_low_scores() -> None:
    cfg = GossipConfig(max_ihave_length=3, max_ihave_messages=2)
    r = subscribed_router([A, B], config=cfg)
    ids = tuple(message_id(bytes([i])) for i in range(10))
    beat = r.next_deadline()
    r.poll(beat)
    t = beat + 0.1  # between two heartbeats
    r.handle_rpc(A, RPC(ihave=(IHave(TOPIC, ids),)), t)
    (want,) = [s for s in sends(r.poll(t)) if s.rpc.iwant]
    assert len(want.rpc.iwant[0].message_ids) == 3
    r.handle_rpc(A, RPC(ihave=(IHave(TOPIC, ids),)), t)
    assert not [s for s in sends(r.poll(t)) if s.rpc.iwant]  # budget spent this heartbeat
    t = beat + HB
    r.poll(t)  # a heartbeat renews the budget
    r.handle_rpc(A, RPC(ihave=(IHave(TOPIC, ids),)), t)
    assert [s for s in sends(r.poll(t)) if s.rpc.iwant]
    r.set_app_score(B, -20.0)  # below the gossip threshold
    r.handle_rpc(B, RPC(ihave=(IHave(TOPIC, ids),)), t)
    assert not [s for s in sends(r.poll(t)) if s.rpc.iwant]


def test_broken_iwant_promise_is_penalised() -> None:
    r = subscribed_router([A, B])
    r.handle_rpc(A, RPC(ihave=(IHave(TOPIC, (message_id(b"never"),)),)), 1.0)
    assert any(s.rpc.iwant for s in sends(r.poll(1.0)))
    r.poll(3.0)
    assert r.stats()["broken_promises"] == 0
    r.poll(4.5)  # past iwant_followup_time (3 s), at a heartbeat
    assert r.stats()["broken_promises"] == 1
    assert r.score(A, 4.5) < 0


def test_iwant_retransmissions_are_refused_beyond_three() -> None:
    r = subscribed_router([A])
    mid = r.publish(TOPIC, b"m", 1.0)
    r.poll(1.0)
    served = 0
    for _ in range(5):
        r.handle_rpc(A, RPC(iwant=(IWant((mid,)),)), 1.0)
        served += sum(len(s.rpc.publish) for s in sends(r.poll(1.0)))
    assert served == 3
    assert r.stats()["iwant_refused"] == 2


# -- scoring and protection ---------------------------------------------------------------


def test_graylisted_peer_is_ignored() -> None:
    r = subscribed_router([A, B])
    for i in range(3):  # three invalid messages: P4 = -10 * 3^2 = -90 < -80
        r.handle_rpc(A, RPC(publish=(PubMessage(TOPIC, b"bad%d" % i),)), 1.0)
    for v in validates(r.poll(1.0)):
        r.report_validation(v.message_id, ValidationResult.REJECT, 1.0)
    assert r.score(A, 1.0) < GossipConfig().thresholds.graylist_threshold
    r.handle_rpc(A, RPC(publish=(PubMessage(TOPIC, b"good"),), graft=(Graft(TOPIC),)), 1.0)
    assert validates(r.poll(1.0)) == []
    assert r.stats()["graylisted_rpcs"] == 1
    assert r.stats(1.0)["graylisted"] == 1
    assert r.stats()["invalid"] == 3
    r.poll(1.5)  # the next heartbeat drops the negative-score peer from the mesh
    assert A not in r.mesh(TOPIC)


def test_score_decays_back_towards_zero() -> None:
    r = subscribed_router([A, B])
    r.handle_rpc(A, RPC(publish=(PubMessage(TOPIC, b"bad"),)), 1.0)
    (v,) = validates(r.poll(1.0))
    r.report_validation(v.message_id, ValidationResult.REJECT, 1.0)
    first = r.score(A, 1.0)
    assert first < 0
    t = 1.0
    for _ in range(100):
        t += HB
        r.poll(t)
    later = r.score(A, t)
    assert first < later < 0
    for _ in range(2000):
        t += HB
        r.poll(t)
    assert r.score(A, t) >= 0


def test_score_is_retained_across_reconnects() -> None:
    r = subscribed_router([A, B])
    r.set_app_score(A, -30.0)
    r.remove_peer(A, 1.0)
    r.add_peer(A, outbound=True, now=2.0)
    assert r.score(A, 2.0) == pytest.approx(-30.0)


def test_ip_colocation_penalty() -> None:
    r = GossipRouter(SELF, rng=random.Random(1), now=0.0)
    for i in range(12):
        r.add_peer(pid(i), outbound=False, now=0.0, ip="10.0.0.1")
    assert r.score(pid(0), 0.0) == pytest.approx(-5.0 * 2 * 2)
    r.remove_peer(pid(11), 0.0)
    assert r.score(pid(0), 0.0) == pytest.approx(-5.0)


def test_invalid_message_flood_prunes_the_peer() -> None:
    cfg = GossipConfig(flood_threshold=4)
    r = subscribed_router([A, B], config=cfg)
    assert A in r.mesh(TOPIC)
    junk = tuple(PubMessage(TOPIC, b"j", seqno=bytes([i])) for i in range(6))
    r.handle_rpc(A, RPC(publish=junk), 1.0)
    assert A not in r.mesh(TOPIC)
    assert r.stats()["flood_prunes"] == 1
    assert any(s.peer == A and s.rpc.prune for s in sends(r.poll(1.0)))


def test_prune_px_is_taken_only_from_well_scored_peers() -> None:
    r = subscribed_router([A, B])
    px = (PeerInfo(b"new-1"), PeerInfo(SELF), PeerInfo(B))
    r.handle_rpc(A, RPC(prune=(Prune(TOPIC, px, 60),)), 1.0)
    assert r.take_px_peers() == []  # A's score (about 0) is below accept_px (10)
    r.set_app_score(A, 50.0)
    r.handle_rpc(A, RPC(prune=(Prune(TOPIC, px, 60),)), 1.0)
    assert r.take_px_peers() == [PeerInfo(b"new-1")]


def test_unknown_peer_rpcs_are_ignored() -> None:
    r = subscribed_router([A])
    r.handle_rpc(B, RPC(publish=(PubMessage(TOPIC, b"m"),)), 1.0)
    assert validates(r.poll(1.0)) == []
    assert r.stats()["unknown_peer_rpcs"] == 1


def test_seen_cache_is_bounded_by_count_and_ttl() -> None:
    cfg = GossipConfig(max_seen=5, seen_ttl=10.0)
    r = subscribed_router([A], config=cfg)
    for i in range(8):
        r.publish(TOPIC, bytes([i]), 1.0)
    assert r.stats()["seen"] == 5
    r.poll(12.0)
    assert r.stats()["seen"] == 0


# -- a small network -------------------------------------------------------------------


def test_every_node_gets_every_message_exactly_once() -> None:
    net = Net(40)
    rng = random.Random(5)
    for i, a in enumerate(net.ids):
        for b in rng.sample(net.ids[:i], min(i, 4)):
            net.connect(a, b)
    for r in net.routers.values():
        r.subscribe(TOPIC, 0.0)
    net.advance(1.0)
    for k in range(5):
        net.routers[net.ids[k * 7]].publish(TOPIC, b"msg%d" % k, net.now)
    net.advance(1.0)
    for i, node in enumerate(net.ids):
        expected = {b"msg%d" % k for k in range(5) if k * 7 != i}
        assert sorted(net.accepted[node]) == sorted(expected)


def test_a_message_forwarded_before_the_mesh_formed_reaches_the_new_mesh_peers() -> None:
    """A restarted gateway: a message arrives before its first heartbeat grafted anyone.

    It is forwarded to nobody (the mesh is empty), and once the heartbeat grafts
    the peers, plain gossip skips them (they are mesh peers now). Without the
    catch-up IHAVE sent with each graft, the message never got past this node
    (the netns access test's lost revocation).
    """
    net = Net(3)
    gw, owner, other = net.ids
    for r in net.routers.values():
        r.subscribe(TOPIC, 0.0)
    net.connect(gw, other)
    net.connect(owner, gw)
    # subscriptions are exchanged, but no heartbeat has run: every mesh is empty
    for node, router in net.routers.items():
        for action in router.poll(0.0):
            assert isinstance(action, SendRpc)
            net.routers[action.peer].handle_rpc(node, action.rpc, 0.0)
    assert all(not r.mesh(TOPIC) for r in net.routers.values())
    net.routers[owner].publish(TOPIC, b"revocation", 0.0)
    net.pump()
    assert net.accepted[gw] == [b"revocation"]
    assert net.accepted[other] == []
    net.advance(3 * HB)
    assert net.accepted[other] == [b"revocation"]


def test_a_graft_is_answered_with_the_recent_message_ids() -> None:
    r = subscribed_router([A, B])
    r.publish(TOPIC, b"recent", HB)
    r.poll(HB)
    r.add_peer(C, outbound=False, now=HB)
    r.handle_rpc(C, RPC(subscriptions=(SubOpts(True, TOPIC),), graft=(Graft(TOPIC),)), HB)
    assert C in r.mesh(TOPIC)
    to_c = [s.rpc for s in sends(r.poll(HB)) if s.peer == C]
    offered = [i for rpc in to_c for h in rpc.ihave for i in h.message_ids]
    assert offered == [message_id(b"recent")]
