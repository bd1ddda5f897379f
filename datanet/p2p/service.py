"""What a protocol service may use of the host: :class:`ServiceHost`.

A *service* is a protocol implemented on top of the host: the kad client and
server (:mod:`.kad`, ``host.kad``), the request/response protocols
(:mod:`.rpc`), and later gossip and access requests. A service gets the host
typed as :class:`ServiceHost` and uses nothing else of it: it registers stream
handlers, opens streams to admitted peers, listens to peer events and runs
background tasks in the host's nursery. Connections, admission and the address
book stay the host's business.

Invariants:
* Services never call an ``_``-prefixed member of the host (a unit test checks
  the services in this package), so the host can change inside freely.
* Handlers registered with ``gated=True`` only ever see admitted peers, within
  the host's per-peer stream limits.
* Peer listeners are called synchronously, in order, for every event, and
  must not block or raise (an exception is logged and ignored).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from datanet.p2p.events import PeerListener
from datanet.p2p.limits import HostLimits
from datanet.p2p.streams import FramedStream
from identity.keys import PeerId

__all__ = ["PeerListener", "ServiceHost", "StreamHandler"]

StreamHandler = Callable[[FramedStream, PeerId], Awaitable[None]]
"""``async handler(stream, peer)`` serving one inbound stream of a protocol.

The stream is already negotiated; the handler owns it (close or reset it). A
:class:`~datanet.errors.DatanetError` or any other exception it raises resets
the stream (and is logged); it never reaches the host.
"""


class ServiceHost(Protocol):
    """The host's surface for services (implemented by :class:`~.host.Host`)."""

    @property
    def peer_id(self) -> PeerId:
        """This node's peer id."""
        ...

    @property
    def limits(self) -> HostLimits:
        """The host's limits and timeouts (services apply the ones that concern them)."""
        ...

    def set_stream_handler(
        self, protocol: str, handler: StreamHandler, *, gated: bool = True
    ) -> None:
        """Serve ``protocol`` with ``handler`` (gated: admitted peers only)."""
        ...

    async def open_stream(
        self,
        peer: PeerId | bytes,
        protocol: str,
        *,
        timeout: float | None = None,
        addrs: Sequence[str] = (),
    ) -> FramedStream:
        """A negotiated stream to an admitted peer, dialling and admitting it if needed."""
        ...

    def add_peer_listener(self, listener: PeerListener) -> None:
        """Call ``listener`` with every peer event from now on."""
        ...

    def remove_peer_listener(self, listener: PeerListener) -> None:
        """Stop calling ``listener`` (no error if it was not added)."""
        ...

    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run ``fn(*args)`` in the host's nursery (dropped once the host is closing)."""
        ...

    def add_addrs(self, peer: PeerId | bytes, addrs: Sequence[str]) -> None:
        """Remember addresses where ``peer`` may be dialled."""
        ...

    def is_connected(self, peer: PeerId | bytes) -> bool:
        """Whether ``peer`` has an open connection."""
        ...
