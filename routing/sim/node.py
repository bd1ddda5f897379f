"""A simulated node: the production :class:`~routing.coordinator.Coordinator` behind a fake driver.

The driver here does what the real trio driver does, on the fake clock: it
carries out the coordinator's actions, times each outbound request out after
``config.request_timeout``, reports every request's outcome exactly once, polls
the coordinator when its next deadline comes, and tells the coordinator about
peers that contact it as kad servers (what identify would tell the real node).

With :meth:`SimNode.start_maintenance` the node also runs the production
maintenance :class:`~routing.schedule.Schedule` on the fake clock, as the real
node's maintenance task does: expire the stores, refresh stale buckets,
republish its own values (from its record store) and re-provide its keys.

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
from routing.schedule import Expire, RefreshBuckets, Reprovide, Republish, Schedule
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
        self.schedule: Schedule | None = None
        self._maintain_at = float("inf")
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
            elif isinstance(action, QueryDone):  # QuorumReached: the sim waits for the end
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

    # -- maintenance ------------------------------------------------------------------------

    def start_maintenance(self, schedule: Schedule) -> None:
        """Run ``schedule`` from now on, carrying out its actions when they are due."""
        self.schedule = schedule
        self._arm_maintenance()

    def own_value(self, key: bytes, value: bytes) -> None:
        """Store ``value`` as our own (and republish it, with maintenance running)."""
        now = self.loop.now
        self.coordinator.records.put(key, value, now=now, from_peer=None)
        if self.schedule is not None:
            self.schedule.add_value(key, now)
            self._arm_maintenance()

    def own_provider(self, key: bytes) -> None:
        """Hold our own provider entry for ``key`` (and re-provide it, with maintenance running)."""
        now = self.loop.now
        self.coordinator.providers.add(key, self.peer, now=now, from_peer=None)
        if self.schedule is not None:
            self.schedule.add_provider(key, now)
            self._arm_maintenance()

    def _arm_maintenance(self) -> None:
        assert self.schedule is not None
        deadline = self.schedule.next_deadline()
        if deadline < self._maintain_at:
            self._maintain_at = deadline
            self.loop.call_at(deadline, self._maintain)

    def _maintain(self) -> None:
        if self.vanished or self.schedule is None or self.loop.now < self._maintain_at:
            return
        self._maintain_at = float("inf")
        now = self.loop.now
        coordinator = self.coordinator
        for action in self.schedule.poll(now):
            if isinstance(action, Expire):
                coordinator.records.expire(now)
                coordinator.providers.expire(now)
            elif isinstance(action, RefreshBuckets):
                for query_id in coordinator.refresh(now):
                    self.callbacks[query_id] = _ignore
            elif isinstance(action, Republish):
                entry = coordinator.records.entry(action.key)
                if entry is None or not entry.own or entry.expires_at <= now:
                    self.schedule.remove_value(action.key)
                    continue
                query_id = coordinator.put_value(entry.key, entry.value, now)
                self.callbacks[query_id] = _ignore
            elif isinstance(action, Reprovide):
                coordinator.providers.add(action.key, self.peer, now=now, from_peer=None)
                self.callbacks[coordinator.add_provider(action.key, now)] = _ignore
        self.flush()
        self._arm_maintenance()

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


def _ignore(done: QueryDone) -> None:
    """The result of a maintenance query: nobody waits for it."""
