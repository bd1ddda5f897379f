"""Property tests of the kad-dht codec: round trips, interop with protobuf, fuzzing."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from libp2p.kad_dht.pb import kademlia_pb2 as pb

from identity.errors import DecodeError
from routing.wire import (
    ConnectionType,
    FrameDecoder,
    Message,
    MessageType,
    Peer,
    Record,
    decode_message,
    encode_frame,
    encode_message,
)

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True)

peers = st.builds(
    Peer,
    id=st.binary(max_size=128),
    addrs=st.lists(st.binary(max_size=64), max_size=6).map(tuple),
    connection=st.sampled_from(ConnectionType),
)
records = st.builds(
    Record,
    key=st.binary(max_size=512),
    value=st.binary(max_size=2048),
    time_received=st.text(max_size=16),
)
messages = st.builds(
    Message,
    type=st.sampled_from(MessageType),
    key=st.binary(max_size=512),
    record=st.none() | records,
    closer_peers=st.lists(peers, max_size=8).map(tuple),
    provider_peers=st.lists(peers, max_size=8).map(tuple),
    cluster_level=st.integers(-(2**31), 2**31 - 1),
)


@SETTINGS
@given(messages)
def test_round_trip(msg: Message) -> None:
    assert decode_message(encode_message(msg)) == msg


@SETTINGS
@given(messages)
def test_interop_with_py_libp2p_generated_protobuf(msg: Message) -> None:
    ours = encode_message(msg)
    parsed = pb.Message()
    parsed.ParseFromString(ours)
    assert parsed.SerializeToString() == ours  # canonical, byte for byte
    assert parsed.type == msg.type
    assert parsed.key == msg.key
    assert parsed.clusterLevelRaw == msg.cluster_level
    assert [(p.id, tuple(p.addrs), p.connection) for p in parsed.closerPeers] == [
        (p.id, p.addrs, p.connection) for p in msg.closer_peers
    ]
    # and the other way: what py-libp2p writes, we read back to the same message
    assert decode_message(parsed.SerializeToString()) == msg


@SETTINGS
@given(st.binary(max_size=2048))
def test_random_bytes_raise_only_decode_errors(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_message(data)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(messages, st.data())
def test_mutated_messages_raise_only_decode_errors(msg: Message, data: st.DataObject) -> None:
    raw = bytearray(encode_message(msg))
    if raw:
        for _ in range(data.draw(st.integers(1, 4))):
            pos = data.draw(st.integers(0, len(raw) - 1))
            raw[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    with contextlib.suppress(DecodeError):
        decode_message(bytes(raw[:cut]))


@settings(
    max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.lists(st.binary(max_size=300), max_size=10), st.data())
def test_frames_survive_any_chunking(payloads: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(encode_frame(p) for p in payloads)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    dec = FrameDecoder(max_size=300)
    got: list[bytes] = []
    prev = 0
    for cut in [*cuts, len(stream)]:
        got += dec.feed(stream[prev:cut])
        prev = cut
    assert got == payloads
    dec.close()


@SETTINGS
@given(st.binary(max_size=512))
def test_frame_decoder_on_random_bytes_raises_only_decode_errors(data: bytes) -> None:
    dec = FrameDecoder(max_size=100)
    try:
        for frame in dec.feed(data):
            assert len(frame) <= 100
        dec.close()
    except DecodeError:
        pass
