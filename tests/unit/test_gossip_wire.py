"""Unit tests of the pubsub rpc.proto codec (routing/gossip/wire.py)."""

from __future__ import annotations

import hashlib

import pytest
from libp2p.pubsub.pb import rpc_pb2 as pb

from identity.errors import DecodeError, RecordTooLarge
from routing.gossip.outbox import Outbox
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

MID = hashlib.sha256(b"x").digest()

EXAMPLES = [
    RPC(),
    RPC(subscriptions=(SubOpts(True, "dn/net"), SubOpts(False, "other"))),
    RPC(publish=(PubMessage("dn/net", b"payload"), PubMessage("t", b""))),
    RPC(ihave=(IHave("dn/net", (MID, MID[:5])),), iwant=(IWant((MID,)),)),
    RPC(graft=(Graft("a"), Graft("b")), prune=(Prune("a"),)),
    RPC(prune=(Prune("a", (PeerInfo(b"p1"), PeerInfo(b"p2", b"spr")), backoff=60),)),
    RPC(publish=(PubMessage("t", b"d", from_peer=b"f", seqno=b"\x00\x01", signature=b"s"),)),
    RPC(prune=(Prune("a", backoff=0),)),
]


@pytest.mark.parametrize("rpc", EXAMPLES)
def test_round_trip(rpc: RPC) -> None:
    assert decode_rpc(encode_rpc(rpc)) == rpc


def test_is_empty() -> None:
    assert RPC().is_empty()
    assert not RPC(graft=(Graft("t"),)).is_empty()


def test_message_id_is_sha256_of_data() -> None:
    assert message_id(b"x") == MID


def test_author_fields_are_flagged() -> None:
    assert not PubMessage("t", b"d").has_author_fields
    assert PubMessage("t", b"d", seqno=b"\x01").has_author_fields
    assert PubMessage("t", b"d", key=b"").has_author_fields


def test_interop_with_protobuf() -> None:
    ours = RPC(
        subscriptions=(SubOpts(True, "t"),),
        publish=(PubMessage("t", b"data"),),
        ihave=(IHave("t", (MID,)),),
        iwant=(IWant((MID,)),),
        graft=(Graft("t"),),
        prune=(Prune("t", (PeerInfo(b"peer"),), backoff=60),),
    )
    parsed = pb.RPC()
    parsed.ParseFromString(encode_rpc(ours))
    assert parsed.subscriptions[0].subscribe
    assert parsed.subscriptions[0].topicid == "t"
    assert parsed.publish[0].data == b"data"
    assert list(parsed.publish[0].topicIDs) == ["t"]
    assert not parsed.publish[0].HasField("seqno")
    assert list(parsed.control.ihave[0].messageIDs) == [MID]
    assert list(parsed.control.iwant[0].messageIDs) == [MID]
    assert parsed.control.graft[0].topicID == "t"
    assert parsed.control.prune[0].backoff == 60
    assert parsed.control.prune[0].peers[0].peerID == b"peer"
    # and back: protobuf's own encoding decodes to the same RPC
    assert decode_rpc(parsed.SerializeToString()) == ours


def test_protobuf_signed_message_keeps_author_fields() -> None:
    raw = pb.RPC()
    m = raw.publish.add()
    m.data = b"d"
    m.topicIDs.append("t")
    m.seqno = b"\x00" * 8
    m.from_id = b"someone"
    got = decode_rpc(raw.SerializeToString())
    assert got.publish[0].has_author_fields
    assert got.publish[0].from_peer == b"someone"


def test_unknown_fields_are_skipped() -> None:
    raw = pb.RPC()
    raw.control.idontwant.add().messageIDs.append(MID)
    raw.subscriptions.add(subscribe=True, topicid="t")
    assert decode_rpc(raw.SerializeToString()) == RPC(subscriptions=(SubOpts(True, "t"),))


@pytest.mark.parametrize(
    "data",
    [b"\x0a", b"\x0a\x05\x08", b"\xff" * 11, b"\x12\x03\x22\x01", b"\x08\x01", b"\x0f"],
)
def test_garbage_is_a_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_rpc(data)


def test_topic_must_be_utf8() -> None:
    bad = b"\x0a\x04\x12\x02\xff\xfe"  # SubOpts{topicid: b"\xff\xfe"}
    with pytest.raises(DecodeError):
        decode_rpc(bad)


def test_oversize_is_refused() -> None:
    small = GossipWireLimits(max_rpc_size=100, max_message_size=10, max_messages=2)
    with pytest.raises(RecordTooLarge):
        decode_rpc(b"\x00" * 101, small)
    big_msg = encode_rpc(RPC(publish=(PubMessage("t", b"x" * 11),)))
    with pytest.raises(RecordTooLarge):
        decode_rpc(big_msg, small)
    many = encode_rpc(RPC(publish=(PubMessage("t", b"1"),) * 3))
    with pytest.raises(RecordTooLarge):
        decode_rpc(many, small)
    with pytest.raises(RecordTooLarge):
        encode_rpc(RPC(publish=(PubMessage("t", b"x" * 11),)), small)


def test_id_and_control_counts_are_bounded() -> None:
    lim = GossipWireLimits(max_ihave_ids=3, max_iwant_ids=3, max_control=2, max_message_id=4)
    with pytest.raises(RecordTooLarge):
        decode_rpc(encode_rpc(RPC(ihave=(IHave("t", (b"1", b"2")), IHave("t", (b"3", b"4"))))), lim)
    with pytest.raises(RecordTooLarge):
        decode_rpc(encode_rpc(RPC(iwant=(IWant((b"1", b"2", b"3", b"4")),))), lim)
    with pytest.raises(RecordTooLarge):
        decode_rpc(encode_rpc(RPC(graft=(Graft("a"), Graft("b"), Graft("c")))), lim)
    with pytest.raises(RecordTooLarge):
        decode_rpc(encode_rpc(RPC(iwant=(IWant((b"12345",)),))), lim)
    # repeated control fields merge and are bounded together
    one = encode_rpc(RPC(graft=(Graft("a"), Graft("b"))))
    with pytest.raises(RecordTooLarge):
        decode_rpc(one + one, lim)
    assert decode_rpc(one + one).graft == (Graft("a"), Graft("b"), Graft("a"), Graft("b"))


def test_outbox_splits_within_limits() -> None:
    lim = GossipWireLimits(max_rpc_size=4096, max_messages=4, max_control=3, max_ihave_ids=5)
    box = Outbox(lim)
    peer = b"p"
    for i in range(10):
        box.msg(peer, PubMessage("t", bytes([i]) * 1000))
    for _ in range(5):
        box.graft(peer, Graft("t"))
        box.ihave(peer, IHave("t", (MID, MID)))
    rpcs = [rpc for _, rpc in box.flush()]
    assert len(rpcs) > 1
    for rpc in rpcs:
        assert decode_rpc(encode_rpc(rpc, lim), lim) == rpc
    assert sum(len(r.publish) for r in rpcs) == 10
    assert sum(len(r.graft) for r in rpcs) == 5
    assert sum(len(r.ihave) for r in rpcs) == 5
    assert [m.data[0] for r in rpcs for m in r.publish] == list(range(10))
    assert not box
