"""The libp2p Kademlia wire messages (kad-dht specification), with a bounded protobuf codec.

The types mirror the proto3 ``Message`` of the libp2p kad-dht specification (as in
go-libp2p-kad-dht ``pb/dht.proto`` and py-libp2p ``kademlia.proto``). The codec is
written by hand so that every limit is ours: no generated code, no allocation a
peer can steer past the bounds in :class:`WireLimits`.

Field numbers (kad-dht spec, ``message Message``): type=1, clusterLevelRaw=10, key=2,
record=3, closerPeers=8, providerPeers=9. ``Record``: key=1, value=2, timeReceived=5.
``Peer``: id=1, addrs=2, connection=3.

Invariants:
* :func:`decode_message` and :class:`FrameDecoder` raise only
  :class:`~identity.errors.DecodeError` / :class:`~identity.errors.RecordTooLarge`,
  whatever the input bytes, and never hold more than the configured limits.
* :func:`encode_message` writes proto3 canonical form (fields in number order,
  default scalars omitted, ``record`` emitted whenever it is not ``None``), so its
  output is byte-identical to the output of protobuf's own serializer, and
  ``decode_message(encode_message(m)) == m`` for every message within the limits.
* Decoding follows protobuf rules: unknown fields (and groups) are skipped, a
  singular field seen twice keeps its last value (``record`` is merged), and a
  known field with the wrong wire type is an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum

from identity.errors import DecodeError, InvalidInput, RecordTooLarge

__all__ = [
    "DEFAULT_LIMITS",
    "MAX_MESSAGE_SIZE",
    "ConnectionType",
    "FrameDecoder",
    "Message",
    "MessageType",
    "Peer",
    "Record",
    "WireLimits",
    "decode_message",
    "encode_frame",
    "encode_message",
    "expects_response",
]

# A value may be a revocation list (up to 64 KiB, identity.certs.MAX_REVOCATION_SIZE);
# the rest of a message (key, closer peers) fits easily in the remaining 32 KiB.
MAX_MESSAGE_SIZE = 96 * 1024


class MessageType(IntEnum):
    """``Message.MessageType`` of the kad-dht specification."""

    PUT_VALUE = 0
    GET_VALUE = 1
    ADD_PROVIDER = 2
    GET_PROVIDERS = 3
    FIND_NODE = 4
    PING = 5


_NO_RESPONSE = frozenset({MessageType.ADD_PROVIDER})


def expects_response(message_type: MessageType) -> bool:
    """Whether a request of ``message_type`` is answered on its stream.

    The kad-dht specification gives ``ADD_PROVIDER`` no response: the sender
    writes the request and is done (delivery without a stream error is the
    acknowledgement). Every other request gets one response of its own type.
    The server (:func:`routing.server.handle_request` returns ``None``) and the
    drivers (send, or send and read the answer) both follow this one rule.
    """
    return message_type not in _NO_RESPONSE


class ConnectionType(IntEnum):
    """``Message.ConnectionType``: what the sender knows of its link to a peer."""

    NOT_CONNECTED = 0
    CONNECTED = 1
    CAN_CONNECT = 2
    CANNOT_CONNECT = 3


@dataclass(frozen=True)
class Peer:
    """A peer as carried in closerPeers/providerPeers: binary peer id and multiaddrs (bytes)."""

    id: bytes
    addrs: tuple[bytes, ...] = ()
    connection: ConnectionType = ConnectionType.NOT_CONNECTED


@dataclass(frozen=True)
class Record:
    """A DHT value record: key, value bytes, and when the sender received it (RFC 3339 text)."""

    key: bytes
    value: bytes
    time_received: str = ""


@dataclass(frozen=True)
class Message:
    """One kad-dht request or response."""

    type: MessageType
    key: bytes = b""
    record: Record | None = None
    closer_peers: tuple[Peer, ...] = ()
    provider_peers: tuple[Peer, ...] = ()
    cluster_level: int = 0


@dataclass(frozen=True)
class WireLimits:
    """Bounds applied to every decoded (and encoded) message.

    Attributes:
        max_key_size: ``Message.key`` and ``Record.key``.
        max_value_size: ``Record.value``.
        max_peers: entries in ``closerPeers`` and, separately, in ``providerPeers``.
        max_addrs: multiaddrs per peer.
        max_addr_size: bytes per multiaddr.
        max_peer_id_size: bytes per peer id (Ed25519 ids are 38 bytes).
        max_time_received: bytes of ``Record.timeReceived``.
    """

    max_key_size: int = 512
    max_value_size: int = 64 * 1024
    max_peers: int = 64
    max_addrs: int = 32
    max_addr_size: int = 512
    max_peer_id_size: int = 128
    max_time_received: int = 64


DEFAULT_LIMITS = WireLimits()

# protobuf wire types
_VARINT, _I64, _LEN, _SGROUP, _EGROUP, _I32 = 0, 1, 2, 3, 4, 5
_MAX_GROUP_DEPTH = 32
_U64 = (1 << 64) - 1
_WIRE_NAMES = {_VARINT: "varint", _I64: "fixed64", _LEN: "length-delimited", _I32: "fixed32"}


# ---------------------------------------------------------------------------
# encoding


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _put_len(out: bytearray, field_no: int, payload: bytes) -> None:
    out += _uvarint((field_no << 3) | _LEN)
    out += _uvarint(len(payload))
    out += payload


def _put_varint(out: bytearray, field_no: int, value: int) -> None:
    out += _uvarint((field_no << 3) | _VARINT)
    out += _uvarint(value & _U64)  # int32/enum: negatives are sign-extended to 64 bits


def _check_int32(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not -(2**31) <= value < 2**31:
        raise InvalidInput(f"{name} must be a 32-bit integer, got {value!r}")
    return value


def _bounded(name: str, data: bytes, limit: int) -> bytes:
    if not isinstance(data, bytes):
        raise InvalidInput(f"{name} must be bytes, got {type(data).__name__}")
    if len(data) > limit:
        raise RecordTooLarge(f"{name} is {len(data)} bytes; the limit is {limit}")
    return data


def _encode_peer(peer: Peer, limits: WireLimits) -> bytes:
    out = bytearray()
    if peer.id:
        _put_len(out, 1, _bounded("peer id", peer.id, limits.max_peer_id_size))
    if len(peer.addrs) > limits.max_addrs:
        raise RecordTooLarge(f"a peer has {len(peer.addrs)} addrs; the limit is {limits.max_addrs}")
    for addr in peer.addrs:
        _put_len(out, 2, _bounded("multiaddr", addr, limits.max_addr_size))
    connection = ConnectionType(_check_int32("connection", peer.connection))
    if connection:
        _put_varint(out, 3, connection)
    return bytes(out)


def _encode_record(record: Record, limits: WireLimits) -> bytes:
    out = bytearray()
    if record.key:
        _put_len(out, 1, _bounded("record key", record.key, limits.max_key_size))
    if record.value:
        _put_len(out, 2, _bounded("record value", record.value, limits.max_value_size))
    if record.time_received:
        text = record.time_received.encode("utf-8")
        _put_len(out, 5, _bounded("timeReceived", text, limits.max_time_received))
    return bytes(out)


def _encode_peers(out: bytearray, field_no: int, peers: tuple[Peer, ...], lim: WireLimits) -> None:
    if len(peers) > lim.max_peers:
        raise RecordTooLarge(f"{len(peers)} peers in one list; the limit is {lim.max_peers}")
    for peer in peers:
        _put_len(out, field_no, _encode_peer(peer, lim))


def encode_message(
    msg: Message, *, max_size: int = MAX_MESSAGE_SIZE, limits: WireLimits = DEFAULT_LIMITS
) -> bytes:
    """Encode ``msg`` as the kad-dht protobuf ``Message`` (proto3 canonical form).

    The same limits as :func:`decode_message` apply, so a message this function
    accepts is one every datanet peer accepts.

    Args:
        msg: the message.
        max_size: the largest acceptable encoding.
        limits: per-field bounds.

    Raises:
        RecordTooLarge: a field, a list or the whole encoding exceeds its limit.
        InvalidInput: an enum or ``cluster_level`` is out of range.
    """
    try:
        mtype = MessageType(_check_int32("type", msg.type))
    except ValueError:
        raise InvalidInput(f"unknown message type {msg.type!r}") from None
    out = bytearray()
    if mtype:
        _put_varint(out, 1, mtype)
    if msg.key:
        _put_len(out, 2, _bounded("key", msg.key, limits.max_key_size))
    if msg.record is not None:
        _put_len(out, 3, _encode_record(msg.record, limits))
    _encode_peers(out, 8, msg.closer_peers, limits)
    _encode_peers(out, 9, msg.provider_peers, limits)
    cluster = _check_int32("cluster_level", msg.cluster_level)
    if cluster:
        _put_varint(out, 10, cluster)
    if len(out) > max_size:
        raise RecordTooLarge(f"encoded message is {len(out)} bytes; the limit is {max_size}")
    return bytes(out)


# ---------------------------------------------------------------------------
# decoding


def _read_uvarint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """Read one protobuf varint (at most 10 bytes, at most 64 bits)."""
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise DecodeError("truncated varint")
        byte = data[pos]
        pos += 1
        if shift == 63 and byte > 1:
            raise DecodeError("varint overflows 64 bits")
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _next_field(data: bytes, pos: int, end: int) -> tuple[int, int, int, int, int]:
    """Read one field: (field number, wire type, a, b, next position).

    For varints ``a`` is the value; for length-delimited and fixed fields
    ``data[a:b]`` is the payload; for group markers both are 0.
    """
    tag, pos = _read_uvarint(data, pos, end)
    if tag > 0xFFFFFFFF:
        raise DecodeError("field tag longer than 32 bits")
    field_no, wire = tag >> 3, tag & 7
    if field_no == 0:
        raise DecodeError("field number 0 is invalid")
    if wire == _VARINT:
        value, pos = _read_uvarint(data, pos, end)
        return field_no, wire, value, 0, pos
    if wire == _LEN:
        size, pos = _read_uvarint(data, pos, end)
        if size > end - pos:
            raise DecodeError("truncated length-delimited field")
        return field_no, wire, pos, pos + size, pos + size
    if wire in (_I64, _I32):
        size = 8 if wire == _I64 else 4
        if size > end - pos:
            raise DecodeError("truncated fixed-width field")
        return field_no, wire, pos, pos + size, pos + size
    if wire in (_SGROUP, _EGROUP):
        return field_no, wire, 0, 0, pos
    raise DecodeError(f"invalid wire type {wire}")


def _skip_group(data: bytes, pos: int, end: int, field_no: int) -> int:
    """Skip a (deprecated) group started by ``field_no``; return the position after it."""
    open_groups = [field_no]
    while open_groups:
        if pos >= end:
            raise DecodeError("truncated group")
        number, wire, _, _, pos = _next_field(data, pos, end)
        if wire == _SGROUP:
            if len(open_groups) >= _MAX_GROUP_DEPTH:
                raise DecodeError("groups nested too deeply")
            open_groups.append(number)
        elif wire == _EGROUP:
            opened = open_groups.pop()
            if opened != number:
                raise DecodeError("mismatched end of group")
    return pos


def _fields(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """Yield (field number, wire type, a, b) for each field of data[start:end]."""
    pos = start
    while pos < end:
        field_no, wire, a, b, pos = _next_field(data, pos, end)
        if wire == _SGROUP:
            pos = _skip_group(data, pos, end, field_no)
        elif wire == _EGROUP:
            raise DecodeError("end of group without a start")
        yield field_no, wire, a, b


def _expect(wire: int, wanted: int, name: str) -> None:
    if wire != wanted:
        got = _WIRE_NAMES.get(wire, "group")
        raise DecodeError(f"field {name} has wire type {got}; expected {_WIRE_NAMES[wanted]}")


def _slice(data: bytes, a: int, b: int, name: str, limit: int) -> bytes:
    if b - a > limit:
        raise RecordTooLarge(f"{name} is {b - a} bytes; the limit is {limit}")
    return data[a:b]


def _decode_peer(data: bytes, start: int, end: int, limits: WireLimits) -> Peer:
    peer_id = b""
    addrs: list[bytes] = []
    connection = ConnectionType.NOT_CONNECTED
    for field_no, wire, a, b in _fields(data, start, end):
        if field_no == 1:
            _expect(wire, _LEN, "Peer.id")
            peer_id = _slice(data, a, b, "peer id", limits.max_peer_id_size)
        elif field_no == 2:
            _expect(wire, _LEN, "Peer.addrs")
            if len(addrs) >= limits.max_addrs:
                raise RecordTooLarge(f"a peer has more than {limits.max_addrs} addrs")
            addrs.append(_slice(data, a, b, "multiaddr", limits.max_addr_size))
        elif field_no == 3:
            _expect(wire, _VARINT, "Peer.connection")
            raw = _int32(a)
            # An unknown connection type is only advice about reachability: read it as
            # "no information" rather than refusing the whole message (proto3 open enums).
            connection = (
                ConnectionType(raw)
                if raw in ConnectionType._value2member_map_
                else ConnectionType.NOT_CONNECTED
            )
    return Peer(id=peer_id, addrs=tuple(addrs), connection=connection)


def _decode_record(data: bytes, limits: WireLimits) -> Record:
    key = b""
    value = b""
    time_received = ""
    for field_no, wire, a, b in _fields(data, 0, len(data)):
        if field_no == 1:
            _expect(wire, _LEN, "Record.key")
            key = _slice(data, a, b, "record key", limits.max_key_size)
        elif field_no == 2:
            _expect(wire, _LEN, "Record.value")
            value = _slice(data, a, b, "record value", limits.max_value_size)
        elif field_no == 5:
            _expect(wire, _LEN, "Record.timeReceived")
            raw = _slice(data, a, b, "timeReceived", limits.max_time_received)
            try:
                time_received = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise DecodeError("Record.timeReceived is not UTF-8") from None
    return Record(key=key, value=value, time_received=time_received)


def decode_message(
    data: bytes, *, max_size: int = MAX_MESSAGE_SIZE, limits: WireLimits = DEFAULT_LIMITS
) -> Message:
    """Decode one kad-dht protobuf ``Message`` from untrusted bytes.

    Args:
        data: exactly one message (the frame payload, without its length prefix).
        max_size: the largest acceptable encoding.
        limits: per-field bounds.

    Returns:
        The message. Absent fields take their proto3 defaults; ``record`` is
        ``None`` only when the field is absent.

    Raises:
        RecordTooLarge: the bytes, a field or a list exceed their limit.
        DecodeError: anything else wrong: truncation, an over-long varint, a wrong
            wire type for a known field, an unknown message type, bad UTF-8.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_size:
        raise RecordTooLarge(f"message is {len(data)} bytes; the limit is {max_size}")
    data = bytes(data)
    type_raw = 0
    key = b""
    record_parts: list[bytes] = []
    closer: list[Peer] = []
    providers: list[Peer] = []
    cluster = 0
    for field_no, wire, a, b in _fields(data, 0, len(data)):
        if field_no == 1:
            _expect(wire, _VARINT, "Message.type")
            type_raw = _int32(a)
        elif field_no == 2:
            _expect(wire, _LEN, "Message.key")
            key = _slice(data, a, b, "key", limits.max_key_size)
        elif field_no == 3:
            _expect(wire, _LEN, "Message.record")
            record_parts.append(data[a:b])
        elif field_no in (8, 9):
            _expect(wire, _LEN, "Message.closerPeers" if field_no == 8 else "providerPeers")
            peers = closer if field_no == 8 else providers
            if len(peers) >= limits.max_peers:
                raise RecordTooLarge(f"more than {limits.max_peers} peers in one list")
            peers.append(_decode_peer(data, a, b, limits))
        elif field_no == 10:
            _expect(wire, _VARINT, "Message.clusterLevelRaw")
            cluster = _int32(a)
    try:
        mtype = MessageType(type_raw)
    except ValueError:
        raise DecodeError(f"unknown kad-dht message type {type_raw}") from None
    # Repeated occurrences of an embedded message merge; for a message of scalar
    # fields that is exactly "decode the concatenation".
    record = _decode_record(b"".join(record_parts), limits) if record_parts else None
    return Message(
        type=mtype,
        key=key,
        record=record,
        closer_peers=tuple(closer),
        provider_peers=tuple(providers),
        cluster_level=cluster,
    )


# ---------------------------------------------------------------------------
# framing: unsigned-varint length prefix, as on every kad-dht stream

_MAX_PREFIX = 10


def encode_frame(payload: bytes, *, max_size: int = MAX_MESSAGE_SIZE) -> bytes:
    """Prefix ``payload`` with its length as an unsigned varint.

    Raises:
        RecordTooLarge: ``payload`` is longer than ``max_size``.
    """
    if len(payload) > max_size:
        raise RecordTooLarge(f"frame is {len(payload)} bytes; the limit is {max_size}")
    return _uvarint(len(payload)) + bytes(payload)


class FrameDecoder:
    """Incremental decoder of varint length-prefixed frames (bytes in, frames out).

    Holds at most one partial frame (``max_size`` bytes plus its prefix) beyond the
    chunk being fed. After an error the decoder is poisoned: every later call
    raises the same error, since the stream can no longer be re-synchronised.

    Args:
        max_size: the largest acceptable frame payload.
    """

    def __init__(self, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self._max_size = max_size
        self._buf = bytearray()
        self._need: int | None = None
        self._error: DecodeError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a frame (including a prefix)."""
        return len(self._buf)

    def _fail(self, error: DecodeError) -> DecodeError:
        self._error = error
        self._buf.clear()
        return error

    def _read_prefix(self, pos: int) -> tuple[int, int] | None:
        """Parse a length prefix at ``pos``: (length, new pos), or None if incomplete."""
        result = 0
        for i in range(_MAX_PREFIX):
            if pos + i >= len(self._buf):
                return None
            byte = self._buf[pos + i]
            result |= (byte & 0x7F) << (7 * i)
            if result > self._max_size:
                raise self._fail(
                    RecordTooLarge(f"frame announces more than {self._max_size} bytes")
                )
            if byte < 0x80:
                return result, pos + i + 1
        raise self._fail(DecodeError("frame length prefix longer than 10 bytes"))

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every frame they complete, in order.

        Raises:
            RecordTooLarge: a frame announces more than ``max_size`` bytes (raised as
                soon as the prefix says so, before the payload arrives).
            DecodeError: the length prefix is malformed.
        """
        if self._error is not None:
            raise type(self._error)(str(self._error))
        self._buf += data
        frames: list[bytes] = []
        pos = 0
        while True:
            if self._need is None:
                parsed = self._read_prefix(pos)
                if parsed is None:
                    break
                self._need, pos = parsed
            if len(self._buf) - pos < self._need:
                break
            frames.append(bytes(self._buf[pos : pos + self._need]))
            pos += self._need
            self._need = None
        del self._buf[:pos]
        return frames

    def close(self) -> None:
        """Signal the end of the stream.

        Raises:
            DecodeError: the stream ended in the middle of a frame.
        """
        if self._error is not None:
            raise type(self._error)(str(self._error))
        if self._buf or self._need is not None:
            raise self._fail(DecodeError("stream ended inside a frame"))
