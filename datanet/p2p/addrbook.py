"""The host's in-memory address book: where each known peer listens.

Addresses come from three places: the caller (``host.add_addrs``, kad results),
a peer's own announcement (its admission hello or identify answer) and a dial
that succeeded. They are kept as transport addresses (no ``/p2p/``), newest
first, and are what the host dials.

Invariants:
* At most ``per_peer`` addresses per peer and ``max_peers`` peers
  (:data:`ADDR_BOOK_PEERS` by default); past that the least recently updated
  peer is forgotten. Memory stays bounded whatever peers announce.
* Never an entry for our own peer id.
* Pure data: no I/O, no clock, no trio.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from datanet.errors import InvalidInput
from datanet.p2p.addrs import TcpAddr, parse_addr
from identity.keys import PeerId

__all__ = ["ADDR_BOOK_PEERS", "AddressBook"]

ADDR_BOOK_PEERS = 20_000
"""Peers remembered at most (least recently updated forgotten first)."""


class AddressBook:
    """Known transport addresses of peers, newest first; bounded (see the module).

    Args:
        own: our own peer id (never remembered).
        per_peer: addresses kept per peer (``HostLimits.max_peer_addrs``).
        max_peers: peers kept.
    """

    def __init__(self, own: PeerId, *, per_peer: int, max_peers: int = ADDR_BOOK_PEERS) -> None:
        if per_peer < 1 or max_peers < 1:
            raise InvalidInput("an address book keeps at least one peer and one address")
        self._own = own
        self._per_peer = per_peer
        self._max_peers = max_peers
        self._book: OrderedDict[PeerId, list[TcpAddr]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._book)

    def __contains__(self, peer: object) -> bool:
        return peer in self._book

    def get(self, peer: PeerId) -> list[TcpAddr]:
        """The addresses of ``peer``, most recent first (a copy; empty if unknown)."""
        return list(self._book.get(peer, []))

    def transports(self, peer: PeerId) -> tuple[str, ...]:
        """The addresses of ``peer`` as transport multiaddr strings."""
        return tuple(a.transport for a in self._book.get(peer, []))

    def remember(self, peer: PeerId, addrs: Sequence[TcpAddr]) -> None:
        """Put ``addrs`` first in ``peer``'s list (``/p2p/`` parts dropped)."""
        if not addrs or peer == self._own:
            return
        known = self._book.pop(peer, [])
        fresh = [TcpAddr(a.family, a.host, a.port) for a in addrs]
        self._book[peer] = list(dict.fromkeys(fresh + known))[: self._per_peer]
        while len(self._book) > self._max_peers:
            self._book.popitem(last=False)

    def remember_announced(
        self, peer: PeerId, addrs: Sequence[str], observed: str | None = None
    ) -> tuple[str, ...]:
        """Remember the listen addresses a peer announced; returns the usable ones.

        Malformed addresses and addresses naming another peer are skipped. A peer
        listening on ``0.0.0.0`` (or ``::``) announces that address; it is replaced
        by the IP we see the peer at (``observed``), which is reachable from here.
        """
        good: list[TcpAddr] = []
        for text in addrs[: self._per_peer]:
            try:
                parsed = parse_addr(text)
            except InvalidInput:
                continue
            if parsed.peer is not None and parsed.peer != peer:
                continue
            if parsed.host in ("0.0.0.0", "::"):  # noqa: S104 - comparing, not binding
                family = "ip6" if observed is not None and ":" in observed else "ip4"
                if observed is None or family != parsed.family:
                    continue
                parsed = TcpAddr(family, observed, parsed.port)
            good.append(parsed)
        self.remember(peer, good)
        return tuple(a.transport for a in good)
