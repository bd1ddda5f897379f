"""The access-request protocol, ``/datanet/access/1.0.0``: one hop of a routed request.

Each hop opens one stream to the next and sends one MessagePack frame; the
answer comes back on the same stream, so a decision returns the way the request
came. The frames (the node fills and checks them; see ``docs/access-routing.md``)::

    request  {"op": "submit" | "status", "req": <request envelope>, "trace": [<trace entry>…]}
    answer   {"state": "granted" | "denied" | "pending",
              "grant": <grant>?, "denial": <denial>?, "trace": [<trace entry>…],
              "receipt": <audit receipt>?}

``receipt`` (issue 11) is the owner's audit receipt of its decision entry
(:mod:`datanet.records.audit`: signed tree head, entry, inclusion proof,
cosignatures); every hop passes it back untouched after verifying it.

This module only carries the frames within their bounds and times; what they
mean is :mod:`datanet.node.access`'s business.

Invariants:
* A frame is at most :data:`MAX_ACCESS_FRAME` bytes both ways.
* A hop waits for the rest of the route at most :func:`hop_timeout` of the hops
  still allowed, so an inner hop always gives up before the hop that called it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datanet.p2p import rpc
from datanet.p2p.service import ServiceHost
from datanet.p2p.streams import RequestHandler
from identity.keys import PeerId

__all__ = [
    "ACCESS_PROTOCOL",
    "HOP_SECONDS",
    "MAX_ACCESS_FRAME",
    "AccessTransport",
    "hop_timeout",
]

ACCESS_PROTOCOL = "/datanet/access/1.0.0"
#: A request (8 KiB), eight trace entries (4 KiB each) or a grant (64 KiB) and its framing.
MAX_ACCESS_FRAME = 160 * 1024
#: What each hop still to come may take (dial, verify, sign, answer).
HOP_SECONDS = 5.0


def hop_timeout(hops_left: int) -> float:
    """How long a hop waits for the rest of the route, ``hops_left`` hops at most."""
    return HOP_SECONDS * max(1, hops_left)


class AccessTransport:
    """Sends access frames to the next hop and serves them from the previous one."""

    def __init__(self, host: ServiceHost, *, max_hops: int) -> None:
        self._host = host
        self._max_hops = max_hops

    def serve(self, handler: RequestHandler) -> None:
        """Answer inbound frames with ``handler(frame, from_peer_bytes)``."""
        serve = rpc.request_stream_handler(
            handler, MAX_ACCESS_FRAME, hop_timeout(self._max_hops) + HOP_SECONDS
        )
        self._host.set_stream_handler(ACCESS_PROTOCOL, serve, gated=True)

    async def send(
        self, peer: PeerId, frame: Any, *, hops_left: int, addrs: Sequence[str] = ()
    ) -> Any:
        """Send ``frame`` to ``peer`` and return its answer.

        Raises:
            RemoteError: the peer (or a hop behind it) refused the request.
            PeerUnreachable, Timeout, ProtocolNotSupported, NetworkError: the hop failed.
        """
        return await rpc.request(
            self._host,
            peer,
            ACCESS_PROTOCOL,
            frame,
            timeout=hop_timeout(hops_left),
            max_size=MAX_ACCESS_FRAME,
            addrs=addrs,
        )
