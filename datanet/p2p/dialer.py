"""Dialing a peer: each known address once, with our own timeout, one dial per peer at a time.

py-libp2p's ``Swarm.dial_peer`` waits 250 ms after starting each address's dial
unless that dial fails (every successful dial took at least 250 ms), and
blocks a peer for 60 s once all its addresses failed. The dialer uses
``Swarm.dial_addr`` instead: one attempt on one address, neither wait (see
``docs/p2p.md``, workarounds 3 to 5).

Invariants:
* At most one dial per peer is in progress; concurrent callers join it.
* Addresses are tried newest first, each for at most ``dial_timeout`` and
  never past the caller's deadline; the one that worked becomes the newest.
* Failures raise :class:`~datanet.errors.PeerUnreachable` only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from datanet.errors import DatanetError, PeerUnreachable
from datanet.p2p import _libp2p as lp
from datanet.p2p._errors import translate
from datanet.p2p.addrbook import AddressBook
from identity.keys import PeerId

__all__ = ["Dialer"]


class Dialer:
    """Dials peers at the addresses the address book knows.

    Args:
        swarm: py-libp2p's swarm.
        book: the host's address book.
        dial_timeout: time for one attempt (TCP, Noise, Yamux).
        is_connected: whether a peer has an open connection.
    """

    def __init__(
        self,
        swarm: Any,
        book: AddressBook,
        dial_timeout: float,
        is_connected: Callable[[PeerId], bool],
    ) -> None:
        self._swarm = swarm
        self._book = book
        self._dial_timeout = dial_timeout
        self._is_connected = is_connected
        self._dialing: dict[PeerId, trio.Event] = {}

    async def dial(self, peer: PeerId, deadline: float) -> None:
        """Connect to ``peer`` (or wait for the dial already under way), until ``deadline``.

        Raises:
            PeerUnreachable: no address is known, or none could be dialled in time.
        """
        pending = self._dialing.get(peer)
        if pending is not None:
            with trio.move_on_at(deadline):
                await pending.wait()
            if self._is_connected(peer):
                return
            raise PeerUnreachable(f"dial to {peer} (joined in progress) failed")
        addrs = self._book.get(peer)
        if not addrs:
            raise PeerUnreachable(f"no known address for {peer}")
        done = trio.Event()
        self._dialing[peer] = done
        failures: list[str] = []
        try:
            for addr in addrs:
                remaining = deadline - trio.current_time()
                if remaining <= 0:
                    failures.append("out of time")
                    break
                try:
                    # py-libp2p's dial_peer adds a 250 ms happy-eyeballs wait to
                    # every dial and blocks the peer for 60 s after a failure;
                    # dial_addr does one attempt on one address and neither.
                    with (
                        translate(f"dial {peer} at {addr.transport}"),
                        trio.fail_after(min(remaining, self._dial_timeout)),
                    ):
                        await self._swarm.dial_addr(
                            lp.Multiaddr(addr.transport), lp.to_libp2p_id(peer)
                        )
                    self._book.remember(peer, [addr])
                    return
                except DatanetError as exc:
                    failures.append(str(exc))
            raise PeerUnreachable(f"cannot reach {peer}: " + "; ".join(failures)[:500])
        finally:
            done.set()
            self._dialing.pop(peer, None)
