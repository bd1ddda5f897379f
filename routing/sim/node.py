"""A simulated node: the production :class:`~routing.coordinator.Coordinator` behind a fake driver.

The driver here does what the real trio driver does, on the fake clock: it
carries out the coordinator's actions, times each outbound request out after
``config.request_timeout``, reports every request's outcome exactly once, polls
the coordinator when its next deadline comes, and tells the coordinator about
peers that contact it as kad servers (what identify would tell the real node).

Misbehaving nodes (``Behavior``) change only what they *serve*:
* ``FORGE`` answers every GET_VALUE with a forged record (higher sequence
  number, wrong mac) instead of what it holds;
* ``STALE`` keeps the first value it got for a key, ignores newer PUT_VALUEs while
  still echoing them as if stored, and serves its old value.

Invariants:
* Every :class:`~routing.coordinator.OutboundRequest` ends in exactly one
  ``response_received`` or ``request_failed`` call (an answer that arrives after
  the timeout is dropped, as a real driver would after cancelling the stream).
* A vanished node does nothing at all any more: it serves nothing and takes no
  answers or timeouts.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from routing.coordinator import Coordinator, OutboundRequest, QueryDone
from routing.wire import Message, MessageType, Peer, Record

if TYPE_CHECKING:
    from routing.sim.network import SimNetwork

__all__ = ["Behavior", "SimNode"]

FORGED_SEQ = 10**9


class Behavior(enum.Enum):
    """How a simulated node treats what it serves."""

    HONEST = "honest"
    FORGE = "forge"
    STALE = "stale"


class SimNode:
    """One simulated node (see the module docstring)."""

    def __init__(
        self,
        network: SimNetwork,
        coordinator: Coordinator,
        *,
        behavior: Behavior = Behavior.HONEST,
        identify: bool = True,
    ) -> None:
        """Attach a node running ``coordinator`` to ``network``.

        Args:
            network: the fake network.
            coordinator: the production coordinator of this node.
            behavior: honest or one of the liar behaviours.
            identify: tell the coordinator that a peer sending us its first
                request is a kad server (every simulated node is one), as
                identify does once per connection.
        """
        self.network = network
        self.loop = network.loop
        self.coordinator = coordinator
        self.peer = coordinator.self_peer
        self.behavior = behavior
        self.identify = identify
        self.vanished = False
        self.done: dict[int, QueryDone] = {}
        self.callbacks: dict[int, Callable[[QueryDone], None]] = {}
        self._inflight: set[int] = set()
        self._identified: set[bytes] = set()
        self._wake_at = float("inf")
        network.attach(self)

    # -- driving the coordinator -------------------------------------------------------

    def start(
        self,
        operation: Callable[[Coordinator, float], int],
        callback: Callable[[QueryDone], None] | None = None,
    ) -> int:
        """Start an operation, e.g. ``lambda c, now: c.get_value(key, now)``; returns its id."""
        query_id = operation(self.coordinator, self.loop.now)
        if callback is not None:
            self.callbacks[query_id] = callback
        self.flush()
        return query_id

    def flush(self) -> None:
        """Poll the coordinator and carry out its actions."""
        if self.vanished:
            return
        timeout = self.coordinator.config.request_timeout
        for action in self.coordinator.poll(self.loop.now):
            if isinstance(action, OutboundRequest):
                rid = action.request_id
                self._inflight.add(rid)
                self.network.send_request(self, action.peer.id, rid, action.message)
                self.loop.call_later(timeout, partial(self._timed_out, rid))
            else:
                callback = self.callbacks.pop(action.query_id, None)
                if callback is not None:
                    callback(action)
                else:
                    self.done[action.query_id] = action
        deadline = self.coordinator.next_deadline()
        if deadline is not None and deadline < self._wake_at:
            self._wake_at = deadline
            self.loop.call_at(deadline, self._wake)

    def _wake(self) -> None:
        if self.loop.now >= self._wake_at:
            self._wake_at = float("inf")
            self.flush()

    def reply(self, request_id: int, response: Message | None, *, ok: bool) -> None:
        """The network delivers the answer to one of our requests (``ok`` False: reset)."""
        if self.vanished or request_id not in self._inflight:
            return
        self._inflight.discard(request_id)
        if ok:
            self.coordinator.response_received(request_id, response, self.loop.now)
        else:
            self.coordinator.request_failed(request_id, self.loop.now)
        self.flush()

    def _timed_out(self, request_id: int) -> None:
        if self.vanished or request_id not in self._inflight:
            return
        self._inflight.discard(request_id)
        self.coordinator.request_failed(request_id, self.loop.now)
        self.flush()

    # -- serving --------------------------------------------------------------------------

    def serve(self, message: Message, from_peer: Peer) -> Message | None:
        """Answer an inbound request (raises DatanetError where the server would reset)."""
        now = self.loop.now
        coordinator = self.coordinator
        if self.identify and from_peer.id not in self._identified:
            # identify runs once per connection, not per request
            self._identified.add(from_peer.id)
            coordinator.peer_seen(from_peer, is_server=True, now=now)
        if (
            self.behavior is Behavior.STALE
            and message.type is MessageType.PUT_VALUE
            and message.record is not None
            and coordinator.records.get(message.key, now=now) is not None
        ):
            reply: Message | None = Message(
                MessageType.PUT_VALUE, key=message.key, record=message.record
            )
        else:
            reply = coordinator.handle_request(message, from_peer=from_peer.id, now=now)
        if (
            self.behavior is Behavior.FORGE
            and message.type is MessageType.GET_VALUE
            and reply is not None
        ):
            forged = b"%d:forged:%s" % (FORGED_SEQ, b"0" * 16)
            reply = Message(
                MessageType.GET_VALUE,
                key=message.key,
                record=Record(message.key, forged),
                closer_peers=reply.closer_peers,
            )
        self.flush()
        return reply

    def identified(self, peer_id: bytes) -> None:
        """Record that ``peer_id`` already identified itself to us (an open connection)."""
        self._identified.add(peer_id)

    def vanish(self) -> None:
        """Disappear without notice: stop serving, answering and timing anything."""
        self.vanished = True
        self._inflight.clear()
