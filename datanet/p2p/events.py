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
"""

from __future__ import annotations

from dataclasses import dataclass

from identity.keys import OrgId, PeerId

__all__ = ["KadServer", "PeerConnected", "PeerDisconnected", "PeerEvent"]


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
