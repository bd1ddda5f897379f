"""The simulator's fake network: per-link latency, message loss, silent vanished nodes.

Latency model: every node gets an access delay drawn once, uniformly from
``[access_min, access_max]``; a message from ``a`` to ``b`` takes
``(access(a) + access(b)) * (1 + jitter * u)`` seconds with ``u`` uniform in
``[0, 1)`` drawn per message. So each link has its own base latency and every
message its own jitter, without storing N² links.

Invariants:
* The network never reports failures: a lost message, or a request to a node
  that vanished, simply gets no answer, exactly as on the internet. The sending
  node's driver times the request out.
* A node that vanished neither receives nor answers anything from that moment
  on (answers already in flight are still delivered, as packets on the wire).
* All randomness comes from the ``random.Random`` given at construction.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from identity.errors import DatanetError, InvalidInput
from routing.sim.loop import EventLoop
from routing.wire import Message, MessageType

if TYPE_CHECKING:
    from routing.sim.node import SimNode

__all__ = ["LinkModel", "SimNetwork"]


@dataclass(frozen=True)
class LinkModel:
    """Latency and loss of the simulated links (see the module docstring)."""

    access_min: float = 0.002
    access_max: float = 0.040
    jitter: float = 0.25
    loss: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.access_min <= self.access_max or self.jitter < 0:
            raise InvalidInput("latency bounds must satisfy 0 <= access_min <= access_max")
        if not 0 <= self.loss < 1:
            raise InvalidInput("loss is a probability in [0, 1)")


class SimNetwork:
    """Carries requests and answers between :class:`SimNode` objects on an :class:`EventLoop`."""

    def __init__(self, loop: EventLoop, rng: random.Random, link: LinkModel | None = None) -> None:
        """Create an empty network.

        Args:
            loop: the event loop (fake clock) messages are scheduled on.
            rng: randomness for access delays, jitter and loss.
            link: the latency/loss model.
        """
        self.loop = loop
        self.rng = rng
        self.link = link or LinkModel()
        self.nodes: dict[bytes, SimNode] = {}
        self._access: dict[bytes, float] = {}
        self.requests_sent = 0
        self.requests_lost = 0
        self.sent_by_type: Counter[MessageType] = Counter()

    def attach(self, node: SimNode) -> None:
        """Connect ``node`` to the network under its peer id."""
        self.nodes[node.peer.id] = node
        self._access[node.peer.id] = self.rng.uniform(self.link.access_min, self.link.access_max)

    def delay(self, a: bytes, b: bytes) -> float:
        """One message's travel time from ``a`` to ``b`` (jitter drawn now)."""
        base = self._access[a] + self._access[b]
        return base * (1.0 + self.link.jitter * self.rng.random())

    def _lost(self) -> bool:
        return self.link.loss > 0 and self.rng.random() < self.link.loss

    def send_request(self, src: SimNode, dst_id: bytes, request_id: int, message: Message) -> None:
        """Carry a request from ``src`` to ``dst_id``; the answer comes back to ``src``."""
        self.requests_sent += 1
        self.sent_by_type[message.type] += 1
        dst = self.nodes.get(dst_id)
        if dst is None or self._lost():
            self.requests_lost += 1
            return
        self.loop.call_later(
            self.delay(src.peer.id, dst_id), lambda: self._arrive(src, dst, request_id, message)
        )

    def _arrive(self, src: SimNode, dst: SimNode, request_id: int, message: Message) -> None:
        if dst.vanished:
            return
        try:
            reply = dst.serve(message, src.peer)
            ok = True
        except DatanetError:
            reply, ok = None, False  # the server resets the stream
        if self._lost():
            self.requests_lost += 1
            return
        self.loop.call_later(
            self.delay(dst.peer.id, src.peer.id), lambda: src.reply(request_id, reply, ok=ok)
        )
