"""What the host tells its subscribers about peers (see :meth:`Host.subscribe`).

Invariants:
* :class:`PeerConnected` is sent once per peer when its first connection is up
  *and* it passed admission; :class:`PeerDisconnected` once when its last
  connection closed, and only for a peer that was reported connected.
* :class:`KadServer` is sent (after :class:`PeerConnected`) for a peer that
  answers ``/datanet/kad/1.0.0`` requests: a datanet node that announced the
  ``kad-server`` mode, or a plain libp2p node whose identify lists the protocol.
  Only such peers belong in a routing table.
* Addresses are transport multiaddrs without ``/p2p/…`` (as kad messages carry them).
* :class:`PeerEvents` never blocks the host: listeners are synchronous and
  subscriber channels are bounded (a full one misses events, logged).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import trio

from identity.keys import OrgId, PeerId

__all__ = [
    "KAD_PROTOCOL",
    "KadServer",
    "PeerConnected",
    "PeerDisconnected",
    "PeerEvent",
    "PeerEvents",
    "PeerListener",
]

log = logging.getLogger("datanet.p2p")

KAD_PROTOCOL = "/datanet/kad/1.0.0"
"""The DHT protocol a :class:`KadServer` serves (served and used by :mod:`.kad`)."""


@dataclass(frozen=True)
class PeerConnected:
    """A peer is connected and admitted.

    Attributes:
        peer: its peer id.
        org: the organization of its verified membership certificate, if any.
        inbound: whether it dialled us (its first connection).
        addrs: the addresses it listens on, as far as we know.
    """

    peer: PeerId
    org: OrgId | None
    inbound: bool
    addrs: tuple[str, ...] = ()


@dataclass(frozen=True)
class PeerDisconnected:
    """The last connection to a peer closed."""

    peer: PeerId


@dataclass(frozen=True)
class KadServer:
    """A connected peer serves the DHT protocol; ``addrs`` are its listen addresses."""

    peer: PeerId
    addrs: tuple[str, ...] = ()


PeerEvent = PeerConnected | PeerDisconnected | KadServer


PeerListener = Callable[[PeerEvent], None]
"""``listener(event)``: called synchronously for every peer event; quick, never raises."""


class PeerEvents:
    """Where the host's peer events go: listeners (callbacks) and subscribers (channels).

    Listeners are called first, in order, and never miss an event; a listener
    that raises is logged and skipped. Subscribers get bounded channels: the
    host never waits for one, so when a channel is full the event is dropped
    for that subscriber (and logged).
    """

    def __init__(self) -> None:
        self._listeners: list[PeerListener] = []
        self._subscribers: list[trio.MemorySendChannel[PeerEvent]] = []

    def add_listener(self, listener: PeerListener) -> None:
        """Call ``listener`` with every event from now on."""
        self._listeners.append(listener)

    def remove_listener(self, listener: PeerListener) -> None:
        """Stop calling ``listener`` (no error if it was not added)."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def subscribe(self, buffer: int) -> trio.MemoryReceiveChannel[PeerEvent]:
        """A channel of the events from now on (close it to unsubscribe)."""
        send, receive = trio.open_memory_channel[PeerEvent](buffer)
        self._subscribers.append(send)
        return receive

    def close_subscribers(self) -> None:
        """End every subscriber's channel (the host is shutting down)."""
        for channel in self._subscribers:
            channel.close()
        self._subscribers.clear()

    def emit(self, event: PeerEvent) -> None:
        """Deliver ``event`` to every listener, then every subscriber; never blocks."""
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("a peer listener failed on %r", event)
        for channel in list(self._subscribers):
            try:
                channel.send_nowait(event)
            except trio.WouldBlock:
                log.warning("a peer-event subscriber is full; dropped %r", event)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._subscribers.remove(channel)
