"""The two bounded caches of a GossipSub router: seen message ids and the message cache.

* :class:`SeenCache` remembers every message id the router has handled (so a
  message is validated and forwarded at most once) for ``ttl`` seconds and at
  most ``max_entries`` ids, oldest first out. Each entry also records what the
  router needs for scoring: validation state, when it was validated and which
  peers delivered it.
* :class:`MessageCache` keeps the full messages the router accepted for the last
  ``history`` heartbeats, in windows; IHAVE gossip advertises the newest
  ``gossip`` windows and IWANT is served from all of them.

Invariants:
* ``len(SeenCache) <= max_entries`` always; an entry older than ``ttl`` is gone
  after the next :meth:`SeenCache.expire`.
* The message cache holds only what was put in during the last ``history``
  shifts; an id is in :attr:`MessageCache.messages` iff it is in some window.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass, field

from identity.errors import InvalidInput
from routing.gossip.wire import PubMessage

__all__ = ["MessageCache", "SeenCache", "SeenEntry", "SeenState"]

MAX_DELIVERERS = 64
"""Peers remembered per message (for P3 near-first deliveries and P4 on REJECT)."""


class SeenState(enum.Enum):
    """Where a seen message stands."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    IGNORED = "ignored"


@dataclass
class SeenEntry:
    """What the router knows of one message id."""

    expires: float
    topic: str
    state: SeenState
    validated_at: float = 0.0
    first_peer: bytes | None = None
    deliverers: set[bytes] = field(default_factory=set)
    receipts: int = 0


class SeenCache:
    """Seen message ids, bounded by count and age (see the module docstring)."""

    def __init__(self, ttl: float, max_entries: int) -> None:
        """Create an empty cache.

        Raises:
            InvalidInput: a bound is not positive.
        """
        if ttl <= 0 or max_entries < 1:
            raise InvalidInput("seen cache bounds must be positive")
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, SeenEntry] = OrderedDict()

    def __len__(self) -> int:
        """Ids held."""
        return len(self._entries)

    def __contains__(self, mid: object) -> bool:
        """Whether ``mid`` was seen (and not yet forgotten)."""
        return mid in self._entries

    def get(self, mid: bytes) -> SeenEntry | None:
        """The entry of ``mid``, if held."""
        return self._entries.get(mid)

    def add(
        self, mid: bytes, topic: str, state: SeenState, now: float, peer: bytes | None
    ) -> tuple[SeenEntry, bytes | None]:
        """Remember ``mid``; return its entry and the id evicted to make room (if any)."""
        entry = SeenEntry(expires=now + self.ttl, topic=topic, state=state, first_peer=peer)
        if peer is not None:
            entry.deliverers.add(peer)
            entry.receipts = 1
        self._entries[mid] = entry
        evicted = None
        if len(self._entries) > self.max_entries:
            evicted, _ = self._entries.popitem(last=False)
        return entry, evicted

    def note_delivery(self, entry: SeenEntry, peer: bytes) -> bool:
        """Record that ``peer`` (also) delivered the message; False if it already had."""
        entry.receipts += 1
        if peer in entry.deliverers:
            return False
        if len(entry.deliverers) < MAX_DELIVERERS:
            entry.deliverers.add(peer)
        return True

    def expire(self, now: float) -> list[bytes]:
        """Forget ids older than ``ttl``; return them (oldest first)."""
        gone: list[bytes] = []
        entries = self._entries
        while entries:
            mid, entry = next(iter(entries.items()))
            if entry.expires > now:
                break
            del entries[mid]
            gone.append(mid)
        return gone


class MessageCache:
    """Accepted messages of the last ``history`` heartbeats (see the module docstring)."""

    def __init__(self, history: int, gossip: int) -> None:
        """Create an empty cache.

        Raises:
            InvalidInput: ``gossip`` is not within ``1..history``.
        """
        if not 1 <= gossip <= history:
            raise InvalidInput("mcache: need 1 <= gossip <= history")
        self.gossip = gossip
        self.messages: dict[bytes, PubMessage] = {}
        self._windows: list[list[tuple[bytes, str]]] = [[] for _ in range(history)]

    def __len__(self) -> int:
        """Messages held."""
        return len(self.messages)

    def put(self, mid: bytes, msg: PubMessage) -> None:
        """Add an accepted message to the newest window (once)."""
        if mid in self.messages:
            return
        self.messages[mid] = msg
        self._windows[0].append((mid, msg.topic))

    def get(self, mid: bytes) -> PubMessage | None:
        """The message ``mid``, if still cached."""
        return self.messages.get(mid)

    def gossip_ids(self, topic: str) -> list[bytes]:
        """Ids of ``topic`` in the newest ``gossip`` windows (to advertise in IHAVE)."""
        return [
            mid
            for window in self._windows[: self.gossip]
            for mid, t in window
            if t == topic and mid in self.messages
        ]

    def shift(self) -> None:
        """Open a new window and drop the oldest (call on each heartbeat)."""
        for mid, _ in self._windows.pop():
            self.messages.pop(mid, None)
        self._windows.insert(0, [])
