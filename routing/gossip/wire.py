"""The pubsub ``rpc.proto`` (``/meshsub/1.1.0``) with a bounded, hand-written protobuf codec.

GossipSub peers exchange one message type, ``RPC``: subscriptions, published
messages and control messages (IHAVE, IWANT, GRAFT, PRUNE). As with the kad-dht
codec (:mod:`routing.wire`) the codec is written by hand so that every limit is
ours (:class:`GossipWireLimits`); it reuses that module's protobuf primitives.

Field numbers (libp2p pubsub ``rpc.proto``): ``RPC``: subscriptions=1, publish=2,
control=3. ``SubOpts``: subscribe=1, topicid=2. ``Message``: from=1, data=2, seqno=3,
topic=4, signature=5, key=6. ``ControlMessage``: ihave=1, iwant=2, graft=3, prune=4
(idontwant=5 of v1.2 is skipped as unknown). ``ControlIHave``: topicID=1,
messageIDs=2. ``ControlIWant``: messageIDs=1. ``ControlGraft``: topicID=1.
``ControlPrune``: topicID=1, peers=2, backoff=3. ``PeerInfo``: peerID=1,
signedPeerRecord=2.

datanet runs the ``StrictNoSign`` signature policy: the data are themselves signed
envelopes and the message id is ``sha256(data)`` (:func:`message_id`). A message
that carries ``from``/``seqno``/``signature``/``key`` is still decoded (the fields
are kept on :class:`PubMessage`, see :attr:`PubMessage.has_author_fields`) so that
the router can reject it and penalise its sender.

Invariants:
* :func:`decode_rpc` raises only :class:`~identity.errors.DecodeError` /
  :class:`~identity.errors.RecordTooLarge`, whatever the bytes, and never builds
  more than the limits allow. :func:`encode_rpc` applies the same limits, so
  what we send every datanet peer accepts.
* ``decode_rpc(encode_rpc(r)) == r`` for every RPC within the limits. Repeated
  ``control`` fields merge (their lists concatenate), unknown fields are skipped.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from identity.errors import DecodeError, InvalidInput, RecordTooLarge
from routing.wire import _expect, _fields, _put_len, _put_varint, _slice

__all__ = [
    "RPC",
    "GossipWireLimits",
    "Graft",
    "IHave",
    "IWant",
    "PeerInfo",
    "Prune",
    "PubMessage",
    "SubOpts",
    "decode_rpc",
    "encode_rpc",
    "message_id",
]

_VARINT, _LEN = 0, 2


@dataclass(frozen=True)
class SubOpts:
    """A subscription change: ``subscribe`` (True) or leave ``topic``."""

    subscribe: bool
    topic: str


@dataclass(frozen=True)
class PubMessage:
    """A published message (``rpc.proto`` ``Message``).

    Under ``StrictNoSign`` only ``topic`` and ``data`` may be present; the four
    author fields are decoded only so that a violating sender can be caught.
    """

    topic: str
    data: bytes
    from_peer: bytes | None = None
    seqno: bytes | None = None
    signature: bytes | None = None
    key: bytes | None = None

    @property
    def has_author_fields(self) -> bool:
        """Whether any field ``StrictNoSign`` forbids is present."""
        return not (
            self.from_peer is None
            and self.seqno is None
            and self.signature is None
            and self.key is None
        )


@dataclass(frozen=True)
class PeerInfo:
    """Peer exchange entry of a PRUNE: a peer id and optionally its signed peer record."""

    peer_id: bytes
    signed_peer_record: bytes | None = None


@dataclass(frozen=True)
class IHave:
    """Gossip: the sender holds these message ids of ``topic``."""

    topic: str
    message_ids: tuple[bytes, ...]


@dataclass(frozen=True)
class IWant:
    """Request for full messages previously advertised by IHAVE."""

    message_ids: tuple[bytes, ...]


@dataclass(frozen=True)
class Graft:
    """The sender added us to its mesh of ``topic``."""

    topic: str


@dataclass(frozen=True)
class Prune:
    """The sender removed us from its mesh of ``topic``; ``backoff`` in seconds."""

    topic: str
    peers: tuple[PeerInfo, ...] = ()
    backoff: int | None = None


@dataclass(frozen=True)
class RPC:
    """One pubsub RPC frame."""

    subscriptions: tuple[SubOpts, ...] = ()
    publish: tuple[PubMessage, ...] = ()
    ihave: tuple[IHave, ...] = ()
    iwant: tuple[IWant, ...] = ()
    graft: tuple[Graft, ...] = ()
    prune: tuple[Prune, ...] = ()

    def is_empty(self) -> bool:
        """Whether the RPC carries nothing at all."""
        return not (
            self.subscriptions
            or self.publish
            or self.ihave
            or self.iwant
            or self.graft
            or self.prune
        )


@dataclass(frozen=True)
class GossipWireLimits:
    """Bounds applied to every decoded (and encoded) RPC.

    Attributes:
        max_rpc_size: bytes of one encoded RPC.
        max_message_size: bytes of one message's ``data``.
        max_messages: published messages per RPC.
        max_subscriptions: subscription entries per RPC.
        max_topic: bytes of a topic (UTF-8).
        max_ihave_ids: message ids over all IHAVEs of one RPC.
        max_iwant_ids: message ids over all IWANTs of one RPC.
        max_control: entries per control kind (IHAVE, IWANT, GRAFT, PRUNE) per RPC;
            also PX peers per PRUNE.
        max_message_id: bytes of one message id.
        max_author_field: bytes of each of from/seqno/signature/key, of a PX peer
            id; a signed peer record may take ``max_message_size``.
    """

    max_rpc_size: int = 1 << 20
    max_message_size: int = 64 * 1024
    max_messages: int = 64
    max_subscriptions: int = 64
    max_topic: int = 256
    max_ihave_ids: int = 5000
    max_iwant_ids: int = 5000
    max_control: int = 256
    max_message_id: int = 64
    max_author_field: int = 256


DEFAULT_GOSSIP_LIMITS = GossipWireLimits()


def message_id(data: bytes) -> bytes:
    """The content-addressed message id: ``sha256(data)`` (data are signed bytes)."""
    return hashlib.sha256(data).digest()


# ---------------------------------------------------------------------------
# encoding


def _b(name: str, value: bytes, limit: int) -> bytes:
    if not isinstance(value, bytes):
        raise InvalidInput(f"{name} must be bytes, got {type(value).__name__}")
    if len(value) > limit:
        raise RecordTooLarge(f"{name} is {len(value)} bytes; the limit is {limit}")
    return value


def _topic(topic: str, limits: GossipWireLimits) -> bytes:
    if not isinstance(topic, str):
        raise InvalidInput(f"topic must be a str, got {type(topic).__name__}")
    return _b("topic", topic.encode("utf-8"), limits.max_topic)


def _count(name: str, n: int, limit: int) -> None:
    if n > limit:
        raise RecordTooLarge(f"{n} {name} in one RPC; the limit is {limit}")


def _encode_message(msg: PubMessage, limits: GossipWireLimits) -> bytes:
    out = bytearray()
    lim = limits.max_author_field
    if msg.from_peer is not None:
        _put_len(out, 1, _b("from", msg.from_peer, lim))
    _put_len(out, 2, _b("data", msg.data, limits.max_message_size))
    if msg.seqno is not None:
        _put_len(out, 3, _b("seqno", msg.seqno, lim))
    _put_len(out, 4, _topic(msg.topic, limits))
    if msg.signature is not None:
        _put_len(out, 5, _b("signature", msg.signature, lim))
    if msg.key is not None:
        _put_len(out, 6, _b("key", msg.key, lim))
    return bytes(out)


def _encode_ids(out: bytearray, field_no: int, ids: tuple[bytes, ...], lim: int) -> None:
    for mid in ids:
        _put_len(out, field_no, _b("message id", mid, lim))


def _encode_prune(prune: Prune, limits: GossipWireLimits) -> bytes:
    out = bytearray()
    _put_len(out, 1, _topic(prune.topic, limits))
    _count("PX peers", len(prune.peers), limits.max_control)
    for info in prune.peers:
        pi = bytearray()
        _put_len(pi, 1, _b("PX peer id", info.peer_id, limits.max_author_field))
        if info.signed_peer_record is not None:
            spr = _b("signed peer record", info.signed_peer_record, limits.max_message_size)
            _put_len(pi, 2, spr)
        _put_len(out, 2, bytes(pi))
    if prune.backoff is not None:
        if isinstance(prune.backoff, bool) or not 0 <= prune.backoff < 1 << 64:
            raise InvalidInput(f"backoff must be a uint64, got {prune.backoff!r}")
        _put_varint(out, 3, prune.backoff)
    return bytes(out)


def _encode_control(rpc: RPC, limits: GossipWireLimits) -> bytes:
    out = bytearray()
    for name, items in (
        ("IHAVEs", rpc.ihave),
        ("IWANTs", rpc.iwant),
        ("GRAFTs", rpc.graft),
        ("PRUNEs", rpc.prune),
    ):
        _count(name, len(items), limits.max_control)
    _count("IHAVE ids", sum(len(h.message_ids) for h in rpc.ihave), limits.max_ihave_ids)
    _count("IWANT ids", sum(len(w.message_ids) for w in rpc.iwant), limits.max_iwant_ids)
    for ihave in rpc.ihave:
        part = bytearray()
        _put_len(part, 1, _topic(ihave.topic, limits))
        _encode_ids(part, 2, ihave.message_ids, limits.max_message_id)
        _put_len(out, 1, bytes(part))
    for iwant in rpc.iwant:
        part = bytearray()
        _encode_ids(part, 1, iwant.message_ids, limits.max_message_id)
        _put_len(out, 2, bytes(part))
    for graft in rpc.graft:
        part = bytearray()
        _put_len(part, 1, _topic(graft.topic, limits))
        _put_len(out, 3, bytes(part))
    for prune in rpc.prune:
        _put_len(out, 4, _encode_prune(prune, limits))
    return bytes(out)


def encode_rpc(rpc: RPC, limits: GossipWireLimits = DEFAULT_GOSSIP_LIMITS) -> bytes:
    """Encode ``rpc`` as the pubsub protobuf ``RPC``.

    Raises:
        RecordTooLarge: a field, a list or the whole encoding exceeds its limit.
        InvalidInput: a field has the wrong type or range.
    """
    _count("subscriptions", len(rpc.subscriptions), limits.max_subscriptions)
    _count("messages", len(rpc.publish), limits.max_messages)
    out = bytearray()
    for sub in rpc.subscriptions:
        part = bytearray()
        _put_varint(part, 1, 1 if sub.subscribe else 0)
        _put_len(part, 2, _topic(sub.topic, limits))
        _put_len(out, 1, bytes(part))
    for msg in rpc.publish:
        _put_len(out, 2, _encode_message(msg, limits))
    if rpc.ihave or rpc.iwant or rpc.graft or rpc.prune:
        _put_len(out, 3, _encode_control(rpc, limits))
    if len(out) > limits.max_rpc_size:
        raise RecordTooLarge(f"encoded RPC is {len(out)} bytes; the limit is {limits.max_rpc_size}")
    return bytes(out)


# ---------------------------------------------------------------------------
# decoding


def _text(data: bytes, a: int, b: int, limits: GossipWireLimits) -> str:
    raw = _slice(data, a, b, "topic", limits.max_topic)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError("topic is not UTF-8") from None


def _decode_subopts(data: bytes, start: int, end: int, limits: GossipWireLimits) -> SubOpts:
    subscribe = False
    topic = ""
    for field_no, wire, a, b in _fields(data, start, end):
        if field_no == 1:
            _expect(wire, _VARINT, "SubOpts.subscribe")
            subscribe = a != 0
        elif field_no == 2:
            _expect(wire, _LEN, "SubOpts.topicid")
            topic = _text(data, a, b, limits)
    return SubOpts(subscribe=subscribe, topic=topic)


def _decode_message(data: bytes, start: int, end: int, limits: GossipWireLimits) -> PubMessage:
    fields: dict[int, bytes] = {}
    topic = ""
    names = {1: "from", 2: "data", 3: "seqno", 5: "signature", 6: "key"}
    for field_no, wire, a, b in _fields(data, start, end):
        if field_no == 4:
            _expect(wire, _LEN, "Message.topic")
            topic = _text(data, a, b, limits)
        elif field_no in names:
            _expect(wire, _LEN, f"Message.{names[field_no]}")
            limit = limits.max_message_size if field_no == 2 else limits.max_author_field
            fields[field_no] = _slice(data, a, b, names[field_no], limit)
    return PubMessage(
        topic=topic,
        data=fields.get(2, b""),
        from_peer=fields.get(1),
        seqno=fields.get(3),
        signature=fields.get(5),
        key=fields.get(6),
    )


class _Control:
    """Accumulates control entries over (possibly repeated) ``control`` fields."""

    def __init__(self, limits: GossipWireLimits) -> None:
        self.limits = limits
        self.ihave: list[IHave] = []
        self.iwant: list[IWant] = []
        self.graft: list[Graft] = []
        self.prune: list[Prune] = []
        self.ihave_ids = 0
        self.iwant_ids = 0

    def _room(self, n: int, name: str) -> None:
        if n >= self.limits.max_control:
            raise RecordTooLarge(f"more than {self.limits.max_control} {name} in one RPC")

    def _ids(self, data: bytes, start: int, end: int, field_no: int, name: str) -> list[bytes]:
        ids: list[bytes] = []
        for number, wire, a, b in _fields(data, start, end):
            if number == field_no:
                _expect(wire, _LEN, f"{name}.messageIDs")
                ids.append(_slice(data, a, b, "message id", self.limits.max_message_id))
                if name == "IHave":
                    self.ihave_ids += 1
                    if self.ihave_ids > self.limits.max_ihave_ids:
                        raise RecordTooLarge("too many IHAVE message ids in one RPC")
                else:
                    self.iwant_ids += 1
                    if self.iwant_ids > self.limits.max_iwant_ids:
                        raise RecordTooLarge("too many IWANT message ids in one RPC")
        return ids

    def _topic_of(self, data: bytes, start: int, end: int, name: str) -> str:
        topic = ""
        for number, wire, a, b in _fields(data, start, end):
            if number == 1:
                _expect(wire, _LEN, f"{name}.topicID")
                topic = _text(data, a, b, self.limits)
        return topic

    def _prune(self, data: bytes, start: int, end: int) -> Prune:
        topic = ""
        peers: list[PeerInfo] = []
        backoff: int | None = None
        lim = self.limits
        for number, wire, a, b in _fields(data, start, end):
            if number == 1:
                _expect(wire, _LEN, "Prune.topicID")
                topic = _text(data, a, b, lim)
            elif number == 2:
                _expect(wire, _LEN, "Prune.peers")
                if len(peers) >= lim.max_control:
                    raise RecordTooLarge(f"more than {lim.max_control} PX peers in a PRUNE")
                pid = b""
                spr: bytes | None = None
                for n2, w2, a2, b2 in _fields(data, a, b):
                    if n2 == 1:
                        _expect(w2, _LEN, "PeerInfo.peerID")
                        pid = _slice(data, a2, b2, "PX peer id", lim.max_author_field)
                    elif n2 == 2:
                        _expect(w2, _LEN, "PeerInfo.signedPeerRecord")
                        spr = _slice(data, a2, b2, "signed peer record", lim.max_message_size)
                peers.append(PeerInfo(peer_id=pid, signed_peer_record=spr))
            elif number == 3:
                _expect(wire, _VARINT, "Prune.backoff")
                backoff = a
        return Prune(topic=topic, peers=tuple(peers), backoff=backoff)

    def feed(self, data: bytes, start: int, end: int) -> None:
        for field_no, wire, a, b in _fields(data, start, end):
            if field_no == 1:
                _expect(wire, _LEN, "ControlMessage.ihave")
                self._room(len(self.ihave), "IHAVEs")
                topic = self._topic_of(data, a, b, "IHave")
                self.ihave.append(IHave(topic, tuple(self._ids(data, a, b, 2, "IHave"))))
            elif field_no == 2:
                _expect(wire, _LEN, "ControlMessage.iwant")
                self._room(len(self.iwant), "IWANTs")
                self.iwant.append(IWant(tuple(self._ids(data, a, b, 1, "IWant"))))
            elif field_no == 3:
                _expect(wire, _LEN, "ControlMessage.graft")
                self._room(len(self.graft), "GRAFTs")
                self.graft.append(Graft(self._topic_of(data, a, b, "Graft")))
            elif field_no == 4:
                _expect(wire, _LEN, "ControlMessage.prune")
                self._room(len(self.prune), "PRUNEs")
                self.prune.append(self._prune(data, a, b))


def decode_rpc(data: bytes, limits: GossipWireLimits = DEFAULT_GOSSIP_LIMITS) -> RPC:
    """Decode one pubsub ``RPC`` from untrusted bytes (the frame payload).

    Raises:
        RecordTooLarge: the bytes, a field or a list exceed their limit.
        DecodeError: truncation, an over-long varint, a wrong wire type for a
            known field, a topic that is not UTF-8.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"expected bytes, got {type(data).__name__}")
    if len(data) > limits.max_rpc_size:
        raise RecordTooLarge(f"RPC is {len(data)} bytes; the limit is {limits.max_rpc_size}")
    data = bytes(data)
    subs: list[SubOpts] = []
    msgs: list[PubMessage] = []
    control = _Control(limits)
    for field_no, wire, a, b in _fields(data, 0, len(data)):
        if field_no == 1:
            _expect(wire, _LEN, "RPC.subscriptions")
            if len(subs) >= limits.max_subscriptions:
                raise RecordTooLarge(f"more than {limits.max_subscriptions} subscriptions")
            subs.append(_decode_subopts(data, a, b, limits))
        elif field_no == 2:
            _expect(wire, _LEN, "RPC.publish")
            if len(msgs) >= limits.max_messages:
                raise RecordTooLarge(f"more than {limits.max_messages} messages in one RPC")
            msgs.append(_decode_message(data, a, b, limits))
        elif field_no == 3:
            _expect(wire, _LEN, "RPC.control")
            control.feed(data, a, b)
    return RPC(
        subscriptions=tuple(subs),
        publish=tuple(msgs),
        ihave=tuple(control.ihave),
        iwant=tuple(control.iwant),
        graft=tuple(control.graft),
        prune=tuple(control.prune),
    )
