"""Unit tests of the kad-dht protobuf codec and the stream framing (routing/wire.py)."""

from __future__ import annotations

import contextlib

import pytest
from libp2p.kad_dht.pb import kademlia_pb2 as pb

from identity.errors import DecodeError, InvalidInput, RecordTooLarge
from routing.wire import (
    DEFAULT_LIMITS,
    MAX_MESSAGE_SIZE,
    ConnectionType,
    FrameDecoder,
    Message,
    MessageType,
    Peer,
    Record,
    WireLimits,
    decode_message,
    encode_frame,
    encode_message,
)

PEER_A = Peer(b"\x00$\x08\x01\x12 " + bytes(32), (b"\x04\x7f\x00\x00\x01\x06\x10\x00",))
PEER_B = Peer(b"\x00$\x08\x01\x12 " + bytes(range(32)), (), ConnectionType.CAN_CONNECT)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _tag(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _len_field(field: int, payload: bytes) -> bytes:
    return _tag(field, 2) + _varint(len(payload)) + payload


EXAMPLES = [
    Message(MessageType.PUT_VALUE, b"/dn/k", Record(b"/dn/k", b"value")),
    Message(MessageType.PUT_VALUE),
    Message(MessageType.GET_VALUE, b"/dn/k", closer_peers=(PEER_A, PEER_B)),
    Message(MessageType.GET_VALUE, b"/dn/k", Record(b"/dn/k", b"v", "2024-01-01T00:00:00Z")),
    Message(MessageType.ADD_PROVIDER, b"\x12\x20" + bytes(32), provider_peers=(PEER_A,)),
    Message(MessageType.GET_PROVIDERS, b"k", closer_peers=(PEER_B,), provider_peers=(PEER_A,)),
    Message(MessageType.FIND_NODE, PEER_A.id, cluster_level=3),
    Message(MessageType.PING, cluster_level=-1),
    Message(MessageType.GET_VALUE, record=Record(b"", b"")),
]


@pytest.mark.parametrize("msg", EXAMPLES)
def test_round_trip(msg: Message) -> None:
    assert decode_message(encode_message(msg)) == msg


def _to_pb(msg: Message) -> pb.Message:
    out = pb.Message(type=int(msg.type), key=msg.key, clusterLevelRaw=msg.cluster_level)
    if msg.record is not None:
        out.record.CopyFrom(
            pb.Record(
                key=msg.record.key, value=msg.record.value, timeReceived=msg.record.time_received
            )
        )
    for peers, field in (
        (msg.closer_peers, out.closerPeers),
        (msg.provider_peers, out.providerPeers),
    ):
        for p in peers:
            field.append(
                pb.Message.Peer(id=p.id, addrs=list(p.addrs), connection=int(p.connection))
            )
    return out


@pytest.mark.parametrize("msg", EXAMPLES)
def test_byte_identical_to_py_libp2p_protobuf(msg: Message) -> None:
    ours = encode_message(msg)
    theirs = _to_pb(msg).SerializeToString()
    assert ours == theirs
    parsed = pb.Message()
    parsed.ParseFromString(ours)
    assert parsed.type == msg.type
    assert parsed.HasField("record") == (msg.record is not None)


def test_fields_only_py_libp2p_knows_are_skipped() -> None:
    theirs = pb.Message(
        type=pb.Message.GET_VALUE,
        key=b"/dn/k",
        record=pb.Record(key=b"/dn/k", value=b"v", author=b"someone", signature=b"sig"),
        closerPeers=[pb.Message.Peer(id=b"p", addrs=[b"a"], signedRecord=b"env")],
        senderRecord=b"sender envelope",
    ).SerializeToString()
    msg = decode_message(theirs)
    assert msg == Message(
        MessageType.GET_VALUE, b"/dn/k", Record(b"/dn/k", b"v"), closer_peers=(Peer(b"p", (b"a",)),)
    )


def test_empty_input_is_the_default_message() -> None:
    assert decode_message(b"") == Message(MessageType.PUT_VALUE)


def test_every_truncation_decodes_or_raises_decode_error() -> None:
    data = encode_message(EXAMPLES[5])
    for cut in range(len(data)):
        with contextlib.suppress(DecodeError):
            decode_message(data[:cut])


@pytest.mark.parametrize(
    "data",
    [
        _tag(2, 2),  # tag only
        _tag(2, 2) + b"\x05ab",  # length past the end
        _tag(1, 0) + b"\x80",  # varint cut short
        _tag(1, 0) + b"\xff" * 10 + b"\x01",  # 11-byte varint
        _tag(1, 0) + b"\xff" * 9 + b"\x02",  # 10th byte overflows 64 bits
        _tag(7, 1) + b"1234567",  # fixed64 cut short
        _tag(7, 5) + b"123",  # fixed32 cut short
    ],
)
def test_truncated_or_overlong_input_is_rejected(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_message(data)


@pytest.mark.parametrize(
    "data",
    [
        _len_field(1, b"\x01"),  # type as bytes
        _tag(2, 0) + b"\x01",  # key as varint
        _tag(3, 0) + b"\x01",  # record as varint
        _tag(8, 5) + b"1234",  # closer peer as fixed32
        _tag(10, 2) + b"\x00",  # clusterLevel as bytes
        _len_field(3, _tag(2, 0) + b"\x01"),  # Record.value as varint
        _len_field(8, _tag(1, 0) + b"\x01"),  # Peer.id as varint
        _len_field(8, _len_field(3, b"")),  # Peer.connection as bytes
        _tag(2, 3) + _tag(2, 4),  # key as a group
    ],
)
def test_wrong_wire_type_for_known_field(data: bytes) -> None:
    with pytest.raises(DecodeError, match="wire type"):
        decode_message(data)


@pytest.mark.parametrize(
    "data",
    [
        _tag(7, 6),  # wire type 6 does not exist
        _tag(7, 7),
        b"\x00\x00",  # field number 0
        _tag(7, 4),  # end group without start
        _tag(7, 3) + _tag(8, 4),  # mismatched end group
        _tag(7, 3),  # unterminated group
        _varint(1 << 33) + b"\x00",  # tag wider than 32 bits
    ],
)
def test_malformed_structure(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_message(data)


def test_unknown_fields_of_every_wire_type_are_skipped() -> None:
    unknown = (
        _tag(20, 0)
        + _varint(2**63)
        + _tag(21, 1)
        + bytes(8)
        + _len_field(22, b"xyz")
        + _tag(23, 5)
        + bytes(4)
        + _tag(24, 3)
        + _tag(25, 3)
        + _tag(1, 0)
        + b"\x07"
        + _tag(25, 4)
        + _tag(24, 4)
    )
    data = unknown + _tag(1, 0) + b"\x04" + unknown + _len_field(2, b"key")
    assert decode_message(data) == Message(MessageType.FIND_NODE, b"key")


def test_deeply_nested_groups_are_refused() -> None:
    data = _tag(7, 3) * 40 + _tag(7, 4) * 40
    with pytest.raises(DecodeError, match="deeply"):
        decode_message(data)


def test_unknown_message_type_is_refused() -> None:
    with pytest.raises(DecodeError, match="message type"):
        decode_message(_tag(1, 0) + _varint(32))


def test_singular_fields_keep_the_last_value_and_records_merge() -> None:
    data = (
        _len_field(2, b"first")
        + _len_field(3, _len_field(1, b"rk"))
        + _len_field(2, b"second")
        + _len_field(3, _len_field(2, b"rv"))
        + _tag(1, 0)
        + b"\x01"
    )
    msg = decode_message(data)
    assert msg.key == b"second"
    assert msg.record == Record(b"rk", b"rv")
    parsed = pb.Message()
    parsed.ParseFromString(data)
    assert (parsed.record.key, parsed.record.value) == (b"rk", b"rv")


def test_unknown_connection_type_reads_as_not_connected() -> None:
    data = _len_field(8, _len_field(1, b"p") + _tag(3, 0) + b"\x09")
    assert decode_message(data).closer_peers == (Peer(b"p"),)


def test_negative_cluster_level_uses_ten_byte_varint() -> None:
    msg = Message(MessageType.PING, cluster_level=-(2**31))
    data = encode_message(msg)
    assert len(data) == 2 + 1 + 10  # type=PING, then the tag and ten varint bytes
    assert decode_message(data) == msg


def test_time_received_must_be_utf8() -> None:
    with pytest.raises(DecodeError, match="UTF-8"):
        decode_message(_len_field(3, _len_field(5, b"\xff\xfe")))


def test_non_bytes_input() -> None:
    with pytest.raises(DecodeError):
        decode_message("text")  # type: ignore[arg-type]


# --- limits -----------------------------------------------------------------


def test_peer_count_limit() -> None:
    peers = tuple(Peer(bytes([i])) for i in range(DEFAULT_LIMITS.max_peers))
    ok = Message(MessageType.FIND_NODE, closer_peers=peers, provider_peers=peers)
    assert decode_message(encode_message(ok)) == ok
    data = encode_message(ok) + _len_field(9, _len_field(1, b"x"))
    with pytest.raises(RecordTooLarge):
        decode_message(data)
    with pytest.raises(RecordTooLarge):
        encode_message(Message(MessageType.FIND_NODE, closer_peers=(*peers, Peer(b"x"))))


def test_addr_limits() -> None:
    addrs = tuple(b"a" * DEFAULT_LIMITS.max_addr_size for _ in range(DEFAULT_LIMITS.max_addrs))
    ok = Message(MessageType.FIND_NODE, closer_peers=(Peer(b"p", addrs),))
    assert decode_message(encode_message(ok)) == ok
    too_many = _len_field(8, b"".join(_len_field(2, b"a") for _ in range(33)))
    with pytest.raises(RecordTooLarge):
        decode_message(too_many)
    too_long = _len_field(8, _len_field(2, b"a" * 513))
    with pytest.raises(RecordTooLarge):
        decode_message(too_long)
    with pytest.raises(RecordTooLarge):
        encode_message(Message(MessageType.FIND_NODE, closer_peers=(Peer(b"p", (b"a" * 513,)),)))


def test_key_value_and_peer_id_limits() -> None:
    for data in (
        _len_field(2, b"k" * 513),
        _len_field(3, _len_field(1, b"k" * 513)),
        _len_field(3, _len_field(2, b"v" * (64 * 1024 + 1))),
        _len_field(8, _len_field(1, b"i" * 129)),
        _len_field(3, _len_field(5, b"t" * 65)),
    ):
        with pytest.raises(RecordTooLarge):
            decode_message(data)
    with pytest.raises(RecordTooLarge):
        encode_message(Message(MessageType.GET_VALUE, b"k" * 513))
    with pytest.raises(RecordTooLarge):
        encode_message(Message(MessageType.PUT_VALUE, record=Record(b"k", b"v" * (64 * 1024 + 1))))


def test_whole_message_limit() -> None:
    big = Message(MessageType.PUT_VALUE, b"k", Record(b"k", b"v" * 60_000))
    data = encode_message(big)
    with pytest.raises(RecordTooLarge):
        decode_message(data, max_size=50_000)
    with pytest.raises(RecordTooLarge):
        encode_message(big, max_size=50_000)
    with pytest.raises(RecordTooLarge):
        decode_message(b"\x00" * (MAX_MESSAGE_SIZE + 1))


def test_one_mebibyte_value_is_refused_unless_limits_are_raised() -> None:
    huge = Message(MessageType.PUT_VALUE, b"/dn/k", Record(b"/dn/k", b"x" * 2**20))
    with pytest.raises(RecordTooLarge):
        encode_message(huge)
    loose = WireLimits(max_value_size=2**21)
    data = encode_message(huge, max_size=2**21, limits=loose)
    with pytest.raises(RecordTooLarge):
        decode_message(data)
    assert decode_message(data, max_size=2**21, limits=loose) == huge


def test_encode_rejects_out_of_range_fields() -> None:
    with pytest.raises(InvalidInput):
        encode_message(Message(MessageType.PING, cluster_level=2**31))
    with pytest.raises(InvalidInput):
        encode_message(Message(7))  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        encode_message(Message(MessageType.PING, key="text"))  # type: ignore[arg-type]


# --- framing ----------------------------------------------------------------


def test_frames_in_one_chunk_and_byte_by_byte() -> None:
    payloads = [b"", b"a", b"b" * 200, b"c" * 70_000]
    stream = b"".join(encode_frame(p) for p in payloads)
    assert FrameDecoder().feed(stream) == payloads
    dec = FrameDecoder()
    got: list[bytes] = []
    for i in range(len(stream)):
        got += dec.feed(stream[i : i + 1])
    assert got == payloads
    assert dec.buffered == 0
    dec.close()


def test_oversized_frame_is_refused_from_its_prefix() -> None:
    dec = FrameDecoder(max_size=1000)
    with pytest.raises(RecordTooLarge):
        dec.feed(_varint(1001))
    with pytest.raises(RecordTooLarge):  # poisoned: the stream cannot resynchronise
        dec.feed(b"")
    one_mib = FrameDecoder()
    with pytest.raises(RecordTooLarge):
        one_mib.feed(_varint(2**20) + b"x" * 100)


def test_overlong_prefix_and_truncated_stream() -> None:
    dec = FrameDecoder(max_size=2**70)
    with pytest.raises(DecodeError, match="prefix"):
        dec.feed(b"\x80" * 11)
    with pytest.raises(DecodeError):
        dec.close()
    partial = FrameDecoder()
    assert partial.feed(encode_frame(b"hello")[:3]) == []
    assert partial.buffered == 2
    with pytest.raises(DecodeError, match="inside a frame"):
        partial.close()
    prefix_only = FrameDecoder()
    assert prefix_only.feed(b"\x05") == []
    with pytest.raises(DecodeError):
        prefix_only.close()


def test_encode_frame_limit() -> None:
    assert encode_frame(b"abc") == b"\x03abc"
    with pytest.raises(RecordTooLarge):
        encode_frame(b"x" * 11, max_size=10)
