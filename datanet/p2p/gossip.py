"""GossipSub streams on ``/meshsub/1.1.0``: the transport half of gossip.

The protocol logic (mesh, gossip, scoring) is the pure
:class:`routing.gossip.router.GossipRouter`; this module only moves its RPCs
(:mod:`routing.gossip.wire`, the pubsub ``rpc.proto``) between peers, as the
GossipSub specification lays the streams out: each side opens **one outbound
stream per peer** and only writes on it; what a peer sends arrives on the
stream *it* opened, which we only read. Frames are unsigned-varint
length-prefixed protobuf RPCs.

The node driver (``datanet/node/gossip.py``) owns the router: it hears peers
come and go through ``on_peer``, gets every decoded RPC through ``on_rpc``, and
hands RPCs to send to :meth:`GossipTransport.send`.

Invariants:
* :meth:`GossipTransport.send` never blocks and never raises: each peer has a
  bounded queue drained by one writer task; when it is full the RPC is dropped
  and counted (gossip repairs the loss, anti-entropy repairs the rest).
* The writer sends what queued up behind one RPC in the same frame (protobuf
  RPCs concatenate), never more than ``max_rpc_size`` bytes per frame.
* An inbound frame over ``max_rpc`` bytes or one that does not decode resets
  that stream only, and is counted; the peer's score is the router's business.
* A peer whose outbound stream cannot be opened (it does not speak
  ``/meshsub/1.1.0``, or is gone) is reported as left (``on_peer(peer, False)``)
  so the router stops choosing it; its queue is dropped.
* The service uses only the host's :class:`~.service.ServiceHost` surface.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from datanet.errors import DatanetError
from datanet.p2p._errors import translate
from datanet.p2p.addrs import as_peer
from datanet.p2p.events import PeerConnected, PeerDisconnected, PeerEvent
from datanet.p2p.streams import FramedStream
from identity.errors import DecodeError, RecordTooLarge
from identity.keys import PeerId
from routing.gossip.wire import RPC, GossipWireLimits, decode_rpc, encode_rpc

if TYPE_CHECKING:
    from datanet.p2p.service import ServiceHost

__all__ = ["MESHSUB_PROTOCOL", "GossipLimits", "GossipTransport"]

log = logging.getLogger("datanet.p2p.gossip")

MESHSUB_PROTOCOL = "/meshsub/1.1.0"

RpcHandler = Callable[[PeerId, RPC], None]
"""``on_rpc(peer, rpc)``: a decoded RPC from ``peer`` (synchronous, quick, never raises)."""
PeerHandler = Callable[[PeerId, bool, bool], None]
"""``on_peer(peer, joined, outbound)``: a gossip peer joined (True) or left (False)."""


@dataclass(frozen=True)
class GossipLimits:
    """Bounds of the gossip transport.

    Attributes:
        wire: the RPC codec's bounds (``max_rpc_size`` bounds a frame).
        queue: RPCs waiting to be written to one peer before new ones are dropped.
        write_timeout: time one frame may take to write before the stream is reset.
        open_timeout: time to open the outbound stream to a peer.
    """

    wire: GossipWireLimits = field(default_factory=GossipWireLimits)
    queue: int = 512
    write_timeout: float = 10.0
    open_timeout: float = 10.0


_Queued = tuple[bytes, tuple[int, ...]]
"""An encoded RPC and its counts (see :func:`_counts`), waiting to be written."""


def _counts(rpc: RPC) -> tuple[int, ...]:
    """What the decoder bounds per RPC: messages, subscriptions, control entries, ids."""
    return (
        len(rpc.publish),
        len(rpc.subscriptions),
        len(rpc.ihave),
        len(rpc.iwant),
        len(rpc.graft),
        len(rpc.prune),
        sum(len(h.message_ids) for h in rpc.ihave),
        sum(len(w.message_ids) for w in rpc.iwant),
    )


def _bounds(limits: GossipWireLimits) -> tuple[int, ...]:
    c = limits.max_control
    return (
        limits.max_messages,
        limits.max_subscriptions,
        c,
        c,
        c,
        c,
        limits.max_ihave_ids,
        limits.max_iwant_ids,
    )


class _Outbound:
    """One peer's send queue and its writer task."""

    __slots__ = ("pending", "receive", "send", "stream")

    def __init__(self, size: int) -> None:
        self.send, self.receive = trio.open_memory_channel[_Queued](size)
        self.stream: FramedStream | None = None
        self.pending: _Queued | None = None  # taken from the queue, for the next frame


class GossipTransport:
    """Client and server of ``/meshsub/1.1.0`` on one host."""

    def __init__(self, host: ServiceHost, *, limits: GossipLimits | None = None) -> None:
        self._host = host
        self.limits = limits or GossipLimits()
        self._on_rpc: RpcHandler | None = None
        self._on_peer: PeerHandler | None = None
        self._out: dict[PeerId, _Outbound] = {}
        self.counters: dict[str, int] = {
            "rpcs_sent": 0,
            "frames_sent": 0,
            "rpcs_received": 0,
            "bytes_sent": 0,
            "bytes_received": 0,
            "dropped_queue_full": 0,
            "bad_frames": 0,
            "streams_failed": 0,
        }

    def start(self, on_rpc: RpcHandler, on_peer: PeerHandler) -> None:
        """Serve the protocol and report peers from now on.

        Call it before connecting to peers (the node does so before joining), so
        every admitted peer is seen.
        """
        self._on_rpc = on_rpc
        self._on_peer = on_peer
        self._host.set_stream_handler(MESHSUB_PROTOCOL, self._serve, gated=True)
        self._host.add_peer_listener(self._on_peer_event)

    # ----------------------------------------------------------------- peers

    def _on_peer_event(self, event: PeerEvent) -> None:
        if self._on_peer is None:
            return
        if isinstance(event, PeerConnected):
            self._on_peer(event.peer, True, not event.inbound)
        elif isinstance(event, PeerDisconnected):
            self._forget(event.peer)
            self._on_peer(event.peer, False, False)

    def _forget(self, peer: PeerId) -> None:
        out = self._out.pop(peer, None)
        if out is not None:
            out.send.close()
            if out.stream is not None:
                self._host.start_soon(out.stream.reset)

    # ----------------------------------------------------------------- sending

    def send(self, peer: PeerId | bytes, rpc: RPC) -> bool:
        """Queue ``rpc`` for ``peer``; False if it was dropped (queue full, unencodable)."""
        try:
            pid = as_peer(peer)
            payload = encode_rpc(rpc, self.limits.wire)
        except (DatanetError, DecodeError, RecordTooLarge) as exc:
            log.warning("gossip rpc not sent", extra={"kv": {"error": str(exc)}})
            return False
        out = self._out.get(pid)
        if out is None:
            out = self._out[pid] = _Outbound(self.limits.queue)
            self._host.start_soon(self._writer, pid, out)
        try:
            out.send.send_nowait((payload, _counts(rpc)))
        except (trio.WouldBlock, trio.ClosedResourceError):
            self.counters["dropped_queue_full"] += 1
            return False
        return True

    async def _writer(self, peer: PeerId, out: _Outbound) -> None:
        limit = self.limits.wire.max_rpc_size
        try:
            with translate(f"gossip stream to {peer}"):
                out.stream = await self._host.open_stream(
                    peer, MESHSUB_PROTOCOL, timeout=self.limits.open_timeout
                )
                while True:
                    first, out.pending = out.pending, None
                    if first is None:
                        try:
                            first = await out.receive.receive()
                        except trio.EndOfChannel:
                            break
                    payload, count = self._coalesce(first, out, limit)
                    with trio.fail_after(self.limits.write_timeout):
                        await out.stream.write_frame(payload, limit)
                    self.counters["rpcs_sent"] += count
                    self.counters["frames_sent"] += 1
                    self.counters["bytes_sent"] += len(payload)
        except (DatanetError, trio.TooSlowError) as exc:
            self.counters["streams_failed"] += 1
            log.debug("gossip stream failed", extra={"kv": {"peer": str(peer), "error": str(exc)}})
            if self._out.get(peer) is out:
                self._forget(peer)
                if self._on_peer is not None:
                    self._on_peer(peer, False, False)
        finally:
            if out.stream is not None and self._out.get(peer) is not out:
                await out.stream.reset()

    def _coalesce(self, first: _Queued, out: _Outbound, limit: int) -> tuple[bytes, int]:
        """``first`` and the RPCs queued behind it, as one frame the peer's decoder accepts.

        Protobuf concatenates repeated fields, so the concatenation of encoded
        RPCs is the encoding of one RPC holding all their parts. Each frame costs
        py-libp2p about 0.3 ms of CPU per side (Noise and yamux in Python), so
        under load, writing what queued up as one frame is what keeps up. The
        merged RPC stays within ``limit`` bytes and every count the decoder bounds.
        """
        bounds = _bounds(self.limits.wire)
        parts, size, counts = [first[0]], len(first[0]), list(first[1])
        while True:
            try:
                nxt = out.receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            grown = [a + b for a, b in zip(counts, nxt[1], strict=True)]
            if size + len(nxt[0]) > limit or any(g > b for g, b in zip(grown, bounds, strict=True)):
                out.pending = nxt
                break
            parts.append(nxt[0])
            size += len(nxt[0])
            counts = grown
        return b"".join(parts), len(parts)

    # ----------------------------------------------------------------- receiving

    async def _serve(self, stream: FramedStream, peer: PeerId) -> None:
        limit = self.limits.wire.max_rpc_size
        while True:
            frame = await stream.read_frame(limit)
            if frame is None:
                await stream.close()
                return
            try:
                rpc = decode_rpc(frame, self.limits.wire)
            except (DecodeError, RecordTooLarge) as exc:
                self.counters["bad_frames"] += 1
                log.info("bad gossip frame", extra={"kv": {"peer": str(peer), "error": str(exc)}})
                await stream.reset()
                return
            self.counters["rpcs_received"] += 1
            self.counters["bytes_received"] += len(frame)
            if self._on_rpc is not None:
                self._on_rpc(peer, rpc)

    def stats(self) -> dict[str, int]:
        """Counters and open outbound streams (JSON-safe)."""
        return {**self.counters, "outbound_peers": len(self._out)}
