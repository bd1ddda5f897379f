"""Property tests of the gossipsub codec and router: round trips, fuzzing, invariants."""

from __future__ import annotations

import contextlib
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from identity.errors import DecodeError
from routing.gossip.outbox import Outbox
from routing.gossip.router import GossipConfig, GossipRouter, ValidationResult
from routing.gossip.wire import (
    RPC,
    GossipWireLimits,
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

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True)

topics = st.text(max_size=8)
ids = st.lists(st.binary(max_size=40), max_size=5).map(tuple)
author = st.none() | st.binary(max_size=16)
rpcs = st.builds(
    RPC,
    subscriptions=st.lists(st.builds(SubOpts, st.booleans(), topics), max_size=4).map(tuple),
    publish=st.lists(
        st.builds(PubMessage, topics, st.binary(max_size=64), author, author, author, author),
        max_size=4,
    ).map(tuple),
    ihave=st.lists(st.builds(IHave, topics, ids), max_size=3).map(tuple),
    iwant=st.lists(st.builds(IWant, ids), max_size=3).map(tuple),
    graft=st.lists(st.builds(Graft, topics), max_size=3).map(tuple),
    prune=st.lists(
        st.builds(
            Prune,
            topics,
            st.lists(st.builds(PeerInfo, st.binary(max_size=8), author), max_size=3).map(tuple),
            st.none() | st.integers(0, 2**64 - 1),
        ),
        max_size=3,
    ).map(tuple),
)


@SETTINGS
@given(rpcs)
def test_round_trip(rpc: RPC) -> None:
    assert decode_rpc(encode_rpc(rpc)) == rpc


@SETTINGS
@given(st.binary(max_size=300))
def test_garbage_never_raises_anything_else(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_rpc(data)


@SETTINGS
@given(rpcs, st.integers(0, 2000), st.integers(0, 255))
def test_mutated_encodings_decode_or_fail_cleanly(rpc: RPC, pos: int, byte: int) -> None:
    data = bytearray(encode_rpc(rpc))
    if data:
        data[pos % len(data)] = byte
    with contextlib.suppress(DecodeError):
        decode_rpc(bytes(data))


PEERS = [bytes([i]) * 4 for i in range(1, 7)]
TOPIC_POOL = ["net", "other", ""]

events = st.one_of(
    st.tuples(st.just("add"), st.sampled_from(PEERS), st.booleans()),
    st.tuples(st.just("remove"), st.sampled_from(PEERS)),
    st.tuples(st.just("rpc"), st.sampled_from(PEERS), rpcs),
    st.tuples(st.just("sub"), st.sampled_from(TOPIC_POOL)),
    st.tuples(st.just("unsub"), st.sampled_from(TOPIC_POOL)),
    st.tuples(st.just("publish"), st.sampled_from(TOPIC_POOL), st.binary(max_size=8)),
    st.tuples(st.just("advance"), st.floats(0.0, 10.0)),
    st.tuples(st.just("verdict"), st.sampled_from(ValidationResult)),
    st.tuples(st.just("app"), st.sampled_from(PEERS), st.floats(-100, 100)),
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(events, max_size=40))
def test_any_event_sequence_keeps_invariants(seq: list[tuple[object, ...]]) -> None:
    cfg = GossipConfig(max_seen=8, max_pending_validations=4)
    router = GossipRouter(b"self", config=cfg, rng=random.Random(1), now=0.0)
    now = 0.0
    pending: list[bytes] = []
    for event in seq:
        kind = event[0]
        if kind == "add":
            router.add_peer(event[1], outbound=event[2], now=now)  # type: ignore[arg-type]
        elif kind == "remove":
            router.remove_peer(event[1], now)  # type: ignore[arg-type]
        elif kind == "rpc":
            router.handle_rpc(event[1], event[2], now)  # type: ignore[arg-type]
        elif kind == "sub":
            router.subscribe(event[1], now)  # type: ignore[arg-type]
        elif kind == "unsub":
            router.unsubscribe(event[1], now)  # type: ignore[arg-type]
        elif kind == "publish":
            data = event[2]
            assert router.publish(event[1], data, now) == message_id(data)  # type: ignore[arg-type]
        elif kind == "advance":
            now += event[1]  # type: ignore[operator]
        elif kind == "verdict" and pending:
            router.report_validation(pending.pop(0), event[1], now)  # type: ignore[arg-type]
        elif kind == "app":
            router.set_app_score(event[1], event[2])  # type: ignore[arg-type]
        for action in router.poll(now):
            if hasattr(action, "message_id"):
                pending.append(action.message_id)
            else:
                assert action.peer in router.peers()
                encode_rpc(action.rpc)  # everything sent fits the wire limits
        peers = router.peers()
        for topic in TOPIC_POOL:
            assert router.mesh(topic) <= peers
            assert router.fanout(topic) <= peers
        stats = router.stats()
        assert stats["seen"] <= cfg.max_seen
        assert stats["pending_validations"] <= cfg.max_pending_validations
        assert router.next_deadline() >= 0


@SETTINGS
@given(
    st.lists(st.binary(max_size=3000), max_size=30),
    st.lists(st.builds(IHave, st.text(max_size=20), ids), max_size=20),
    st.lists(st.builds(Graft, st.text(max_size=20)), max_size=20),
    st.integers(1, 5),
)
def test_outbox_rpcs_always_fit_the_limits(
    datas: list[bytes], ihaves: list[IHave], grafts: list[Graft], small: int
) -> None:
    limits = GossipWireLimits(
        max_rpc_size=8192, max_messages=small, max_control=small, max_ihave_ids=5
    )
    box = Outbox(limits)
    for d in datas:
        box.msg(b"p", PubMessage("topic", d))
    for h in ihaves:
        box.ihave(b"p", h)
    for g in grafts:
        box.graft(b"p", g)
    rpcs = [rpc for _, rpc in box.flush()]
    for rpc in rpcs:
        assert decode_rpc(encode_rpc(rpc, limits), limits) == rpc
    assert [m.data for r in rpcs for m in r.publish] == datas
    assert [h for r in rpcs for h in r.ihave] == ihaves
    assert [g for r in rpcs for g in r.graft] == grafts
