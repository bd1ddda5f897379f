"""Inbound streams: the protocol registry, negotiation, per-peer limits and gating.

Every stream a peer opens to us enters :meth:`InboundStreams.accept`: it is
negotiated (multistream-select, bounded in time and line size), counted
against the peer's limits, checked against admission for gated protocols, and
handed to the protocol's registered handler.

Invariants:
* At most ``negotiating_per_peer`` streams of one peer negotiate or use an
  ungated protocol (identify, ping, ``/datanet/id``) at once, and at most
  ``inbound_streams_per_peer`` use gated protocols; a stream over either cap is
  reset at once.
* A gated handler runs only for a peer its session admits *now* (its
  certificate is re-checked per stream). In gated networks a refused peer, or
  one that dialled us and has not begun admission, gets ``na`` for gated
  protocols at once (:meth:`.PeerSessions.may_negotiate`).
* Whatever goes wrong with one stream resets that stream only, and is logged;
  nothing propagates to py-libp2p's swarm.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from datanet.errors import DatanetError, InvalidInput
from datanet.p2p import _libp2p as lp
from datanet.p2p._errors import translate
from datanet.p2p.limits import HostLimits
from datanet.p2p.peer import StreamKind
from datanet.p2p.service import StreamHandler
from datanet.p2p.sessions import Peer, PeerSessions
from datanet.p2p.streams import FramedStream, multistream_accept
from identity.errors import DecodeError
from identity.keys import PeerId

__all__ = ["InboundStreams"]

log = logging.getLogger("datanet.p2p")

_MAX_PROTOCOL_ID = 256


@dataclass(frozen=True)
class _Registered:
    handler: StreamHandler
    gated: bool


class InboundStreams:
    """The protocols a host serves and the entry point of every inbound stream.

    Args:
        limits: the host's limits.
        sessions: the peers' admission sessions (stream counters and gating).
        accepting: whether a peer's streams are served now (the host is open
            and the peer connected).
    """

    def __init__(
        self,
        limits: HostLimits,
        sessions: PeerSessions,
        accepting: Callable[[PeerId], bool],
    ) -> None:
        self._limits = limits
        self._sessions = sessions
        self._accepting = accepting
        self._handlers: dict[str, _Registered] = {}

    def register(self, protocol: str, handler: StreamHandler, *, gated: bool) -> None:
        """Serve ``protocol`` with ``handler`` (replacing any before).

        Raises:
            InvalidInput: not a protocol id (``/…``, one line, at most 256 characters).
        """
        if (
            not isinstance(protocol, str)
            or not protocol.startswith("/")
            or len(protocol) > _MAX_PROTOCOL_ID
            or "\n" in protocol
        ):
            raise InvalidInput(f"not a protocol id: {str(protocol)[:80]!r}")
        self._handlers[protocol] = _Registered(handler, gated)

    def protocols(self) -> list[str]:
        """The protocol ids served (for identify)."""
        return list(self._handlers)

    def _supported(self, protocol: str, p: Peer) -> bool:
        entry = self._handlers.get(protocol)
        return entry is not None and (not entry.gated or self._sessions.may_negotiate(p))

    async def accept(self, raw: Any) -> None:
        """Serve one inbound py-libp2p stream (the swarm's stream handler)."""
        try:
            peer = lp.peer_id_from_libp2p(raw.muxed_conn.peer_id)
        except DecodeError:
            await FramedStream(raw, "stream").reset()
            return
        if not self._accepting(peer):
            await FramedStream(raw, "stream").reset()
            return
        p = self._sessions.for_peer(peer, inbound=True)
        session = p.session
        stream = FramedStream(raw, f"inbound stream from {peer}")
        try:
            if not session.stream_opened(StreamKind.NEGOTIATING):
                log.debug("too many negotiating streams from %s; reset", peer)
                await stream.reset()
                return
            try:
                with translate(f"negotiation with {peer}"):
                    with trio.fail_after(self._limits.negotiate_timeout):
                        protocol = await multistream_accept(
                            stream, lambda proposal: self._supported(proposal, p)
                        )
                entry = self._handlers[protocol]
                stream.what = f"{protocol} stream from {peer}"
                if not entry.gated:
                    await entry.handler(stream, peer)
                    return
            finally:
                session.stream_closed(StreamKind.NEGOTIATING)
            if not session.stream_opened(StreamKind.DATANET):
                log.debug("peer %s exceeds %s concurrent streams; reset", peer, protocol)
                await stream.reset()
                return
            try:
                if not await self._sessions.gate(p):
                    await stream.reset()
                    return
                await entry.handler(stream, peer)
            finally:
                session.stream_closed(StreamKind.DATANET)
        except DatanetError as exc:
            log.debug("%s: %s; reset", stream.what, exc)
            await stream.reset()
        except Exception:
            log.exception("%s: handler failed; reset", stream.what)
            await stream.reset()
