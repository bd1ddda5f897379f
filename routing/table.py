"""The Kademlia routing table: k-buckets by common prefix length with our own key.

Policy (Kademlia paper, section 2.2; go-libp2p-kad-dht):
* Only peers the driver vouches for as **servers** (they answered one of our kad
  requests, or advertise the kad protocol) are ever added. A peer that only sent
  us requests is a client and stays out, or lookups would be routed to it.
* Long-lived peers are preferred. When a bucket is full the newcomer goes into the
  bucket's replacement cache and the table asks the driver to PING the
  least-recently-seen entry (:class:`PingPeer`). That entry is evicted only if
  the ping fails; then the most recently seen replacement takes its place. If
  even that entry was seen within ``seen_recently`` seconds, every entry was,
  and there is no ping: the newcomer waits in the cache (rust-libp2p's rule,
  which pings only a disconnected entry). A busy node otherwise pings the same
  live peers over and over as newcomers come and go.
* A peer that fails ``max_failures`` requests in a row is evicted the same way;
  any answer resets its count.
* Buckets that saw no lookup for ``refresh_interval`` seconds are reported by
  :meth:`RoutingTable.buckets_needing_refresh` with a random target id inside
  each, drawn from an injected ``random.Random``.

Invariants:
* Each bucket holds at most ``k`` entries and ``k`` replacements; our own id is
  never in the table; a peer id is in at most one bucket.
* Entries in a bucket are ordered least recently seen first.
* At most one ping per bucket is outstanding (until ``ping_timeout`` passes).
* Time is the ``now`` passed in (seconds, any epoch); nothing reads a clock.
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass

from identity.errors import InvalidInput
from routing.keyspace import (
    KEY_BITS,
    MAX_REFRESH_CPL,
    common_prefix_len,
    key_of,
    random_peer_id_in_bucket,
)
from routing.wire import Peer

__all__ = ["DEFAULT_K", "PingPeer", "RoutingTable", "TableEntry"]

DEFAULT_K = 20


@dataclass(frozen=True)
class PingPeer:
    """Action: PING ``peer`` and report the outcome (it may be evicted if it fails)."""

    peer: Peer


@dataclass(slots=True)
class TableEntry:
    """One peer in a bucket (mutable: the table updates it as the peer is seen)."""

    peer: Peer
    key: int
    added_at: float
    last_seen: float
    failures: int = 0


class _Bucket:
    __slots__ = ("entries", "ping_sent_at", "pinging", "replacements")

    def __init__(self) -> None:
        # Least recently seen first (dicts keep insertion order; re-insert to move).
        self.entries: dict[bytes, TableEntry] = {}
        # Oldest sighting first.
        self.replacements: dict[bytes, Peer] = {}
        self.pinging: bytes | None = None
        self.ping_sent_at = 0.0


class RoutingTable:
    """k-buckets around ``self_id``; see the module docstring for the policy."""

    def __init__(
        self,
        self_id: bytes,
        *,
        k: int = DEFAULT_K,
        max_failures: int = 2,
        ping_timeout: float = 10.0,
        refresh_interval: float = 600.0,
        seen_recently: float = 0.0,
    ) -> None:
        """Create an empty table.

        Args:
            self_id: our binary peer id.
            k: bucket size (and replacement cache size).
            max_failures: consecutive failed requests after which a peer is evicted.
            ping_timeout: after this long an unanswered eviction ping no longer
                blocks a new one for the same bucket.
            refresh_interval: a bucket with no lookup for this long needs refresh.
            seen_recently: a full bucket whose least recently seen entry was seen
                within this many seconds asks no ping (0: always ping).

        Raises:
            InvalidInput: a parameter is out of range.
        """
        if k < 1 or max_failures < 1 or ping_timeout <= 0 or refresh_interval <= 0:
            raise InvalidInput("routing table parameters must be positive")
        if seen_recently < 0:
            raise InvalidInput("seen_recently must not be negative")
        self.self_id = self_id
        self.self_key = key_of(self_id)
        self.k = k
        self.max_failures = max_failures
        self.ping_timeout = ping_timeout
        self.refresh_interval = refresh_interval
        self.seen_recently = seen_recently
        self._buckets: dict[int, _Bucket] = {}
        self._where: dict[bytes, int] = {}  # peer id -> bucket index (cpl)
        self._refreshed_at: dict[int, float] = {}

    # -- membership --------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, peer_id: object) -> bool:
        return peer_id in self._where

    def get(self, peer_id: bytes) -> TableEntry | None:
        """The entry for ``peer_id``, or None if it is not in a bucket."""
        cpl = self._where.get(peer_id)
        return None if cpl is None else self._buckets[cpl].entries[peer_id]

    def peers(self) -> list[Peer]:
        """Every peer in the table, bucket by bucket, least recently seen first."""
        return [
            e.peer for cpl in sorted(self._buckets) for e in self._buckets[cpl].entries.values()
        ]

    def bucket_sizes(self) -> dict[int, int]:
        """Entries per non-empty bucket, by common prefix length."""
        return {cpl: len(b.entries) for cpl, b in sorted(self._buckets.items()) if b.entries}

    def replacements(self, cpl: int) -> list[Peer]:
        """The replacement cache of one bucket, oldest sighting first."""
        bucket = self._buckets.get(cpl)
        return [] if bucket is None else list(bucket.replacements.values())

    def bucket_index(self, peer_id: bytes) -> int:
        """The bucket a peer id belongs in: its common prefix length with us."""
        return common_prefix_len(key_of(peer_id), self.self_key)

    # -- events from the driver --------------------------------------------------

    def add(self, peer: Peer, *, is_server: bool, now: float) -> PingPeer | None:
        """Offer a peer we have just seen; returns a ping to send if its bucket is full.

        Args:
            peer: the peer (id and addresses) as seen.
            is_server: True only if the driver knows the peer serves kad requests.
            now: current time.

        Returns:
            ``PingPeer(least recently seen entry)`` when the bucket is full, no
            ping for it is outstanding and that entry was not seen recently;
            otherwise None (added, refreshed, cached as a replacement, or ignored
            as a client / ourselves).
        """
        if not is_server or peer.id == self.self_id:
            return None
        cpl = self.bucket_index(peer.id)
        bucket = self._buckets.get(cpl)
        if bucket is None:
            bucket = self._buckets[cpl] = _Bucket()
        entry = bucket.entries.pop(peer.id, None)
        if entry is not None:
            if peer.addrs and peer.addrs != entry.peer.addrs:
                entry.peer = peer
            entry.last_seen = now
            entry.failures = 0
            bucket.entries[peer.id] = entry  # now the most recently seen
            return None
        if len(bucket.entries) < self.k:
            bucket.replacements.pop(peer.id, None)
            bucket.entries[peer.id] = TableEntry(peer, key_of(peer.id), now, now)
            self._where[peer.id] = cpl
            return None
        bucket.replacements.pop(peer.id, None)
        bucket.replacements[peer.id] = peer
        while len(bucket.replacements) > self.k:
            del bucket.replacements[next(iter(bucket.replacements))]
        if bucket.pinging is not None and now < bucket.ping_sent_at + self.ping_timeout:
            return None
        oldest = next(iter(bucket.entries.values()))
        if now - oldest.last_seen < self.seen_recently:
            return None
        bucket.pinging = oldest.peer.id
        bucket.ping_sent_at = now
        return PingPeer(oldest.peer)

    def mark_alive(self, peer_id: bytes, now: float) -> None:
        """A peer in the table answered (a request or a ping): it is now the most recent."""
        cpl = self._where.get(peer_id)
        if cpl is None:
            return
        bucket = self._buckets[cpl]
        entry = bucket.entries.pop(peer_id)
        entry.last_seen = now
        entry.failures = 0
        bucket.entries[peer_id] = entry
        if bucket.pinging == peer_id:
            bucket.pinging = None

    def mark_failed(self, peer_id: bytes, now: float) -> bool:
        """A request to a peer failed or timed out; returns True if it was evicted.

        A peer under an eviction ping is evicted at once; others after
        ``max_failures`` consecutive failures.
        """
        cpl = self._where.get(peer_id)
        if cpl is None:
            return False
        bucket = self._buckets[cpl]
        entry = bucket.entries[peer_id]
        entry.failures += 1
        if bucket.pinging == peer_id or entry.failures >= self.max_failures:
            self._evict(cpl, peer_id, now)
            return True
        return False

    def ping_failed(self, peer_id: bytes, now: float) -> bool:
        """The eviction ping (or any liveness check) of a peer failed: evict it now."""
        cpl = self._where.get(peer_id)
        if cpl is None:
            return False
        self._evict(cpl, peer_id, now)
        return True

    def remove(self, peer_id: bytes) -> bool:
        """Drop a peer without promoting a replacement (e.g. it stopped serving kad)."""
        cpl = self._where.pop(peer_id, None)
        if cpl is None:
            return False
        bucket = self._buckets[cpl]
        del bucket.entries[peer_id]
        if bucket.pinging == peer_id:
            bucket.pinging = None
        return True

    def _evict(self, cpl: int, peer_id: bytes, now: float) -> None:
        bucket = self._buckets[cpl]
        del bucket.entries[peer_id]
        del self._where[peer_id]
        if bucket.pinging == peer_id:
            bucket.pinging = None
        if bucket.replacements:
            newest_id = next(reversed(bucket.replacements))
            newest = bucket.replacements.pop(newest_id)
            bucket.entries[newest_id] = TableEntry(newest, key_of(newest_id), now, now)
            self._where[newest_id] = cpl

    # -- queries -------------------------------------------------------------------

    def closest(self, key: int, count: int, *, exclude: bytes | None = None) -> list[Peer]:
        """The ``count`` peers nearest to keyspace position ``key``, nearest first.

        Args:
            key: a keyspace position (see :func:`routing.keyspace.key_of`).
            count: how many peers at most.
            exclude: a peer id to leave out (e.g. the peer asking).
        """
        if count <= 0:
            return []
        entries = [e for b in self._buckets.values() for e in b.entries.values()]
        best = heapq.nsmallest(count + 1, entries, key=lambda e: e.key ^ key)
        return [e.peer for e in best if e.peer.id != exclude][:count]

    def closest_to(self, target: bytes, count: int, *, exclude: bytes | None = None) -> list[Peer]:
        """Like :meth:`closest` for a peer id or DHT key given as bytes."""
        return self.closest(key_of(target), count, exclude=exclude)

    # -- refresh -------------------------------------------------------------------

    def mark_refreshed(self, key: int, now: float) -> None:
        """A lookup for ``key`` ran: the bucket that holds ``key`` is fresh."""
        self._refreshed_at[common_prefix_len(key, self.self_key)] = now

    def buckets_needing_refresh(self, now: float, rng: random.Random) -> list[bytes]:
        """FIND_NODE targets that refresh the stale parts of the table.

        A bucket is stale when no lookup landed in it for ``refresh_interval``
        seconds. Buckets deeper than the one of our ``k``-th nearest known peer
        hold only peers among our ``k`` nearest, which one lookup of our own id
        finds all of: they are refreshed together by that self-lookup (our own
        id is a target when no self-lookup ran for ``refresh_interval``), not by
        a random lookup each. Shallower buckets, up to ``MAX_REFRESH_CPL``, get
        a random target each. At 100 nodes a join then runs 4 lookups, not 7
        (with ``k`` = 20 the horizon is about ``log2(n / k)``).

        Args:
            now: current time.
            rng: the randomness for the targets (seeded in tests and the simulator).
        """

        def stale(cpl: int) -> bool:
            return self._refreshed_at.get(cpl, -math.inf) + self.refresh_interval <= now

        deepest = max((cpl for cpl, b in self._buckets.items() if b.entries), default=0)
        nearest = self.closest(self.self_key, self.k)
        horizon = deepest
        if len(nearest) >= self.k:
            horizon = min(deepest, common_prefix_len(key_of(nearest[-1].id), self.self_key))
        last = min(horizon, MAX_REFRESH_CPL)
        targets = [
            random_peer_id_in_bucket(self.self_key, cpl, rng)
            for cpl in range(last + 1)
            if stale(cpl)
        ]
        if deepest > last and stale(KEY_BITS):
            targets.append(self.self_id)
        return targets
