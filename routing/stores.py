"""The DHT record store and provider store: pure data structures with an injected clock.

Both stores hold what this node keeps for the network (and for itself), with
hard bounds: per-record size, a total byte budget, a count budget, and per-peer
write rates. Time is always passed in as ``now`` (seconds, float); nothing here
reads a clock, touches a disk or a socket.

Invariants:
* :meth:`RecordStore.get` never returns a value that is expired or that the
  namespace validator rejects *now*; :meth:`ProviderStore.get` never returns an
  expired provider and returns each peer id at most once.
* Nothing invalid, expired, oversized or stale (lower than held, per the
  validator's stable ``select``) is ever stored: ``put`` raises instead.
* Re-storing the identical value succeeds (``UNCHANGED``) and refreshes its
  lifetime: republishing depends on it.
* Records and providers of this node (``from_peer=None``) are never evicted and
  never rate limited. When a budget is exceeded, entries held for other peers
  are evicted, soonest expiry first; if only own entries are left, a foreign
  write is refused with :class:`StoreFull`.
* Strangers (a :class:`ProviderSource` that is not an admitted member: open
  mode, plain libp2p peers) are bounded by :class:`StrangerQuotas`: new entries
  per peer and per source address over a window, stranger entries per key, on
  keys with no valid record or known descriptor, and in total. A stranger's
  entry only ever evicts another stranger's entry (the oldest first); own and
  members' entries are never evicted to make room for a stranger, and members
  are never held to the stranger quotas.
* Write-through: every change (store, replace, refresh, eviction, expiry) is
  handed to the optional sink *before* it is applied in memory. If the sink
  raises (e.g. ``StorageError``), the store is left unchanged and the error
  propagates, so a caller acknowledges a write only once it is durable.
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Generic, Protocol, TypeVar

from identity.errors import (
    DatanetError,
    ExpiredRecord,
    InvalidInput,
    RecordTooLarge,
    ScopeError,
    StaleRecord,
)
from routing.records import Validator
from routing.wire import ConnectionType, Peer

__all__ = [
    "MAX_RECORD_SIZE",
    "PROVIDER_TTL",
    "RECORD_MAX_AGE",
    "PerPeerRateLimit",
    "ProviderEntry",
    "ProviderSink",
    "ProviderSource",
    "ProviderStore",
    "PutOutcome",
    "RateLimited",
    "RecordSink",
    "RecordStore",
    "StoreFull",
    "StoredRecord",
    "StrangerQuotas",
    "WindowQuota",
]

PROVIDER_TTL = 48 * 3600.0
"""How long a provider record lives without being re-provided (kad-dht spec: 48 h).

Nodes re-provide well before: :data:`routing.schedule.REPROVIDE_INTERVAL`."""

RECORD_MAX_AGE = 48 * 3600.0
"""How long a value held for another peer lives without being re-stored (at most).

Publishers re-store well before: :data:`routing.schedule.REPUBLISH_INTERVAL`."""

MAX_RECORD_SIZE = 64 * 1024
"""Default bound on one value: a revocation list may be 64 KiB (descriptors are <= 16 KiB)."""


class RateLimited(DatanetError):
    """Raised when a peer writes to a store faster than its per-minute allowance."""

    code = "rate_limited"


class StoreFull(DatanetError):
    """Raised when a foreign write cannot fit: only this node's own entries are left to evict."""

    code = "store_full"


class PutOutcome(Enum):
    """What :meth:`RecordStore.put` did with a valid value."""

    STORED = "stored"
    """No value was held under the key; this one is now."""
    UNCHANGED = "unchanged"
    """The identical value was held; its lifetime was refreshed."""
    REPLACED_OLDER = "replaced_older"
    """A value the validator ranks lower was held; this one replaced it."""


@dataclass(frozen=True)
class StoredRecord:
    """One value held by the record store.

    Attributes:
        key: the DHT key.
        value: the exact value bytes.
        expires_at: when it is dropped (``math.inf``: own value without an expiry).
        received_at: when it was last stored or refreshed.
        from_peer: the peer that sent it (``None``: written by this node).
        own: this node published it; never evicted, republished by the driver.
    """

    key: bytes
    value: bytes
    expires_at: float
    received_at: float
    from_peer: bytes | None
    own: bool

    @property
    def size(self) -> int:
        """Bytes this entry counts against the budget."""
        return len(self.key) + len(self.value)


@dataclass(frozen=True)
class ProviderEntry:
    """One provider held for a key: who, where, until when.

    ``stranger``: announced by a peer that is not an admitted member (counted
    against :class:`StrangerQuotas`, evicted before anything else).
    """

    key: bytes
    peer: Peer
    expires_at: float
    added_at: float
    own: bool
    stranger: bool = False

    @property
    def size(self) -> int:
        """Bytes this entry counts against the budget."""
        return len(self.key) + len(self.peer.id) + sum(len(a) for a in self.peer.addrs)


class RecordSink(Protocol):
    """Receives every change of a :class:`RecordStore` before it is applied (persistence)."""

    def records_changed(self, upserted: Sequence[StoredRecord], removed: Sequence[bytes]) -> None:
        """Persist ``upserted`` and the removal of the ``removed`` keys, atomically.

        Values stored for other peers are soft state (their owners put them
        again), so a sink may skip the fsync for a change that holds none of
        our own values and removes nothing.
        """


class ProviderSink(Protocol):
    """Receives every change of a :class:`ProviderStore` before it is applied (persistence)."""

    def providers_changed(
        self, upserted: Sequence[ProviderEntry], removed: Sequence[tuple[bytes, bytes]]
    ) -> None:
        """Persist ``upserted`` and the removal of the ``(key, peer id)`` pairs, atomically.

        As with :meth:`RecordSink.records_changed`, a change that holds none
        of our own entries and removes nothing may skip the fsync.
        """


@dataclass(frozen=True)
class ProviderSource:
    """Who sent an ``ADD_PROVIDER``, as the network adapter knows it.

    Attributes:
        peer: the authenticated peer id (binary).
        address: the connection's remote IP address (text), if known.
        member: whether the peer was admitted with a valid membership
            certificate; ``False`` for strangers (open mode, plain libp2p peers).
    """

    peer: bytes
    address: str | None = None
    member: bool = False


@dataclass(frozen=True)
class StrangerQuotas:
    """What strangers (peers that are not admitted members) may make a node store.

    Attributes:
        window: seconds over which the per-peer and per-address allowances refill.
        per_peer: new provider entries one stranger peer may add per window.
        per_address: new entries all strangers from one remote IP may add per window.
        per_key: stranger entries kept per key (the oldest makes room).
        unknown_keys: stranger entries kept, in total, for keys with no valid
            record stored and no known descriptor (the oldest makes room).
        total: stranger entries kept in total (the oldest makes room).
        max_sources: how many peers' and addresses' allowances are remembered.
    """

    window: float = 3600.0
    per_peer: int = 20
    per_address: int = 40
    per_key: int = 8
    unknown_keys: int = 64
    total: int = 1024
    max_sources: int = 4096

    def __post_init__(self) -> None:
        counts = (self.per_peer, self.per_address, self.per_key, self.unknown_keys, self.total)
        if not self.window > 0 or min(counts) < 0 or self.max_sources < 1:
            raise InvalidInput("stranger quotas need window > 0, counts >= 0, max_sources >= 1")


# ---------------------------------------------------------------------------
# helpers


class WindowQuota:
    """A token bucket per source: ``limit`` tokens, refilled at ``limit`` per ``window`` seconds.

    Memory is bounded: at most ``max_sources`` buckets; the least recently used
    is forgotten first.
    """

    def __init__(self, limit: int, window: float, *, max_sources: int = 4096) -> None:
        if limit < 0 or not window > 0 or max_sources < 1:
            raise InvalidInput("a window quota needs limit >= 0, window > 0, max_sources >= 1")
        self._capacity = float(limit)
        self._rate = limit / window
        self._max = max_sources
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()

    def _level(self, source: Hashable, now: float) -> tuple[float, float]:
        tokens, last = self._buckets.get(source, (self._capacity, now))
        return min(self._capacity, tokens + max(0.0, now - last) * self._rate), max(now, last)

    def available(self, source: Hashable, now: float) -> bool:
        """Whether ``source`` has a token left at ``now`` (spends nothing)."""
        return self._level(source, now)[0] >= 1.0

    def spend(self, source: Hashable, now: float) -> None:
        """Spend one token of ``source`` (call after :meth:`available` said yes)."""
        tokens, last = self._level(source, now)
        self._buckets.pop(source, None)
        self._buckets[source] = (max(0.0, tokens - 1.0), last)
        while len(self._buckets) > self._max:
            self._buckets.popitem(last=False)


class PerPeerRateLimit:
    """A token bucket per peer: ``per_minute`` writes a minute, bursts up to ``per_minute``.

    Memory is bounded: at most ``max_peers`` buckets are kept; the least recently
    active peer's bucket is forgotten first (it starts full again if it returns).

    Args:
        per_minute: the allowance; 0 refuses everything.
        max_peers: how many peers' buckets to remember.
    """

    def __init__(self, per_minute: float, *, max_peers: int = 4096) -> None:
        if per_minute < 0 or max_peers < 1:
            raise InvalidInput("a rate limit needs per_minute >= 0 and max_peers >= 1")
        self._capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._max_peers = max_peers
        self._buckets: OrderedDict[bytes, tuple[float, float]] = OrderedDict()

    def allow(self, peer: bytes, now: float) -> bool:
        """Spend one token of ``peer`` at ``now``; False if none is left."""
        tokens, last = self._buckets.pop(peer, (self._capacity, now))
        tokens = min(self._capacity, tokens + max(0.0, now - last) * self._rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[peer] = (tokens, max(now, last))
        while len(self._buckets) > self._max_peers:
            self._buckets.popitem(last=False)
        return allowed


K = TypeVar("K", bound=Hashable)
_HeapItem = tuple[float, int, K]


class _ExpiryQueue(Generic[K]):
    """A min-heap of ids by expiry with lazy deletion (each id appears once when live)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, K]] = []
        self._tokens: dict[K, int] = {}
        self._counter = 0

    def __len__(self) -> int:
        return len(self._tokens)

    def set(self, ident: K, expires_at: float) -> None:
        self._counter += 1
        self._tokens[ident] = self._counter
        heapq.heappush(self._heap, (expires_at, self._counter, ident))
        if len(self._heap) > 2 * len(self._tokens) + 1024:
            self._heap = [item for item in self._heap if self._tokens.get(item[2]) == item[1]]
            heapq.heapify(self._heap)

    def discard(self, ident: K) -> None:
        self._tokens.pop(ident, None)

    def _clean(self) -> None:
        heap = self._heap
        while heap and self._tokens.get(heap[0][2]) != heap[0][1]:
            heapq.heappop(heap)

    def peek(self) -> tuple[float, K] | None:
        self._clean()
        return (self._heap[0][0], self._heap[0][2]) if self._heap else None

    def take(self) -> tuple[float, int, K] | None:
        """Pop the soonest live item; give it back with :meth:`untake` to undo."""
        self._clean()
        return heapq.heappop(self._heap) if self._heap else None

    def untake(self, items: Iterable[tuple[float, int, K]]) -> None:
        for item in items:
            heapq.heappush(self._heap, item)


# ---------------------------------------------------------------------------
# record store


class RecordStore:
    """The values this node holds under DHT keys, validated and bounded.

    Args:
        validator: validates values by key namespace and ranks them (stable ``select``).
        max_record_size: the largest value accepted (bytes).
        max_total_bytes: budget for keys plus values of all entries.
        max_records: budget for the number of entries.
        writes_per_peer_per_minute: rate limit on ``put`` attempts per sending peer.
        max_record_age: lifetime of a foreign value that is not re-stored.
        expiry_of: optional ``(key, value) -> expiry or None``, used when ``put`` is
            not told the value's own expiry (e.g. read from the decoded descriptor).
        sink: optional persistence hook, see :class:`RecordSink`.
    """

    def __init__(
        self,
        validator: Validator,
        *,
        max_record_size: int = MAX_RECORD_SIZE,
        max_total_bytes: int = 64 * 1024 * 1024,
        max_records: int = 100_000,
        writes_per_peer_per_minute: float = 120,
        max_record_age: float = RECORD_MAX_AGE,
        expiry_of: Callable[[bytes, bytes], float | None] | None = None,
        sink: RecordSink | None = None,
    ) -> None:
        self._validator = validator
        self._max_record_size = max_record_size
        self._max_total_bytes = max_total_bytes
        self._max_records = max_records
        self._max_record_age = max_record_age
        self._expiry_of = expiry_of
        self._sink = sink
        self._limit = PerPeerRateLimit(writes_per_peer_per_minute)
        self._entries: dict[bytes, StoredRecord] = {}
        self._own_queue: _ExpiryQueue[bytes] = _ExpiryQueue()
        self._foreign_queue: _ExpiryQueue[bytes] = _ExpiryQueue()
        self._total_bytes = 0

    # -- reading

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    @property
    def total_bytes(self) -> int:
        """Bytes of keys plus values held."""
        return self._total_bytes

    def entries(self) -> Iterator[StoredRecord]:
        """Every entry held (including ones that expired but were not yet collected)."""
        return iter(list(self._entries.values()))

    def entry(self, key: bytes) -> StoredRecord | None:
        """The raw entry for ``key`` (no expiry or validity check); for drivers and tests."""
        return self._entries.get(key)

    def own_records(self, now: float) -> list[StoredRecord]:
        """This node's own live values (what the driver republishes)."""
        return [e for e in self._entries.values() if e.own and e.expires_at > now]

    def _valid(self, entry: StoredRecord, now: float) -> bool:
        if entry.expires_at <= now:
            return False
        try:
            self._validator.validate(entry.key, entry.value, int(now))
        except DatanetError:
            return False
        return True

    def get(self, key: bytes, *, now: float) -> bytes | None:
        """The value held under ``key``, if it is still unexpired and valid at ``now``.

        The value is validated again on every read: a certificate may have expired
        or been revoked since the value was stored.
        """
        entry = self._entries.get(key)
        if entry is None or not self._valid(entry, now):
            return None
        return entry.value

    # -- writing

    def put(
        self,
        key: bytes,
        value: bytes,
        *,
        now: float,
        from_peer: bytes | None,
        expires_at: float | None = None,
    ) -> PutOutcome:
        """Validate and store ``value`` under ``key``.

        Args:
            key: the DHT key.
            value: the value bytes.
            now: the current time (seconds).
            from_peer: the sending peer's id, or ``None`` when this node publishes.
            expires_at: the value's own expiry if the caller knows it; else
                ``expiry_of`` is asked. Foreign values live at most ``max_record_age``.

        Returns:
            What happened (see :class:`PutOutcome`).

        Raises:
            RateLimited: ``from_peer`` exceeded its write allowance.
            RecordTooLarge: the value exceeds ``max_record_size`` (or the key its limit).
            ExpiredRecord: ``expires_at`` is not in the future.
            StaleRecord: the held value ranks at least as high (ties keep the held one).
            StoreFull: no room can be made for a foreign value.
            DatanetError: the validator's verdict (bad signature, scope, ...) or the
                sink's error (e.g. ``StorageError``); the store is then unchanged.
        """
        if not isinstance(key, bytes) or not isinstance(value, bytes):
            raise InvalidInput("DHT keys and values are bytes")
        if from_peer is not None and not self._limit.allow(from_peer, now):
            raise RateLimited("too many writes from this peer; try again later")
        if len(value) > self._max_record_size:
            raise RecordTooLarge(
                f"value is {len(value)} bytes; this store takes at most {self._max_record_size}"
            )
        self._validator.validate(key, value, int(now))
        if expires_at is None and self._expiry_of is not None:
            expires_at = self._expiry_of(key, value)
        if expires_at is not None and expires_at <= now:
            raise ExpiredRecord("the value's expiry is not in the future")

        held = self._entries.get(key)
        if held is not None and not self._valid(held, now):
            held = None  # an expired or no longer valid value counts as absent
        if held is None:
            outcome = PutOutcome.STORED
        elif held.value == value:
            outcome = PutOutcome.UNCHANGED
        elif self._validator.select(key, [held.value, value]) == 1:
            outcome = PutOutcome.REPLACED_OLDER
        else:
            raise StaleRecord("a better or equally ranked value is already held for this key")

        own = from_peer is None or (
            outcome is PutOutcome.UNCHANGED and held is not None and held.own
        )
        limit = math.inf if own else now + self._max_record_age
        new = StoredRecord(
            key=key,
            value=value,
            expires_at=min(limit, expires_at) if expires_at is not None else limit,
            received_at=now,
            from_peer=None if own else from_peer,
            own=own,
        )
        self._commit([new], [])
        return outcome

    def remove(self, key: bytes) -> bool:
        """Drop the value under ``key`` (e.g. the operator withdrew a dataset).

        Returns:
            Whether a value was held.

        Raises:
            DatanetError: from the sink; the store is then unchanged.
        """
        if key not in self._entries:
            return False
        self._commit([], [key])
        return True

    def expire(self, now: float) -> list[bytes]:
        """Drop every value whose expiry is at or before ``now``; return their keys.

        Raises:
            DatanetError: from the sink; the store is then unchanged.
        """
        doomed: list[bytes] = []
        for queue in (self._foreign_queue, self._own_queue):
            taken: list[tuple[float, int, bytes]] = []
            while (head := queue.peek()) is not None and head[0] <= now:
                item = queue.take()
                assert item is not None
                taken.append(item)
                doomed.append(item[2])
            queue.untake(taken)  # _commit discards them for good
        if doomed:
            self._commit([], doomed)
        return doomed

    def restore(self, entries: Iterable[StoredRecord], *, now: float) -> int:
        """Load entries read back from persistent storage (at start-up).

        Each is validated again; expired or invalid ones are dropped (and the sink
        told). No rate limit applies. Budgets are enforced as for ``put``.

        Returns:
            How many entries were loaded.

        Raises:
            DatanetError: from the sink.
        """
        loaded = 0
        dropped: list[bytes] = []
        for entry in entries:
            if self._valid(entry, now):
                self._apply([entry], [])
                loaded += 1
            else:
                dropped.append(entry.key)
        if dropped:
            self._notify([], dropped)
        self._commit([], [])  # enforce the budgets if they shrank since the last run
        return loaded

    # -- internals

    def _notify(self, upserted: Sequence[StoredRecord], removed: Sequence[bytes]) -> None:
        if self._sink is not None and (upserted or removed):
            self._sink.records_changed(upserted, removed)

    def _commit(self, upserted: list[StoredRecord], removed: list[bytes]) -> None:
        """Plan evictions for ``upserted``, tell the sink, then apply - or change nothing."""
        removed_set = set(removed)
        total = self._total_bytes
        count = len(self._entries)
        for key in removed_set:
            if key in self._entries:
                total -= self._entries[key].size
                count -= 1
        for new in upserted:
            old = self._entries.get(new.key)
            if old is not None and new.key not in removed_set:
                total -= old.size
                count -= 1
            total += new.size
            count += 1
        new_keys = {e.key for e in upserted}
        foreign_new = [e for e in upserted if not e.own]
        taken: list[tuple[float, int, bytes]] = []
        victims: list[bytes] = []
        try:
            while total > self._max_total_bytes or count > self._max_records:
                head = self._foreign_queue.peek()
                soonest_new = min((e.expires_at for e in foreign_new), default=math.inf)
                if head is None or soonest_new <= head[0]:
                    if foreign_new:
                        raise StoreFull(
                            "the record store is full of values that expire later than this one"
                        )
                    break  # own values always fit; budgets bound what we hold for others
                item = self._foreign_queue.take()
                assert item is not None
                taken.append(item)
                key = item[2]
                if key in new_keys or key in removed_set:
                    continue
                victims.append(key)
                total -= self._entries[key].size
                count -= 1
            self._notify(upserted, [*removed, *victims])
        finally:
            self._foreign_queue.untake(taken)
        self._apply(upserted, [*removed, *victims])

    def _apply(self, upserted: Iterable[StoredRecord], removed: Iterable[bytes]) -> None:
        for key in removed:
            old = self._entries.pop(key, None)
            if old is not None:
                self._total_bytes -= old.size
                self._own_queue.discard(key)
                self._foreign_queue.discard(key)
        for new in upserted:
            old = self._entries.get(new.key)
            if old is not None:
                self._total_bytes -= old.size
                self._own_queue.discard(new.key)
                self._foreign_queue.discard(new.key)
            self._entries[new.key] = new
            self._total_bytes += new.size
            (self._own_queue if new.own else self._foreign_queue).set(new.key, new.expires_at)


# ---------------------------------------------------------------------------
# provider store

_ProviderId = tuple[bytes, bytes]


class ProviderStore:
    """Who provides what: provider peers by key, de-duplicated by peer id.

    A peer may only announce itself (kad-dht spec); the newest announcement of a
    peer replaces its addresses and restarts its TTL.

    Args:
        ttl: how long an announcement lives (48 h).
        max_providers_per_key: providers kept per key; when full, the one that
            expires soonest (never this node) makes room.
        max_keys: keys kept.
        max_total_bytes: budget for keys, peer ids and addresses of all entries.
        adds_per_peer_per_minute: rate limit per announcing peer.
        max_key_size: the longest key accepted (kad-dht provider keys are multihashes).
        max_addrs: addresses kept per provider (the first ones announced).
        sink: optional persistence hook, see :class:`ProviderSink`.
        stranger_quotas: the bounds on what strangers may store.
        known_key: ``known_key(key)`` tells whether the node holds a valid record
            or knows a descriptor for the provider key (``None``: every key is
            known, so only the other quotas apply).
    """

    def __init__(
        self,
        *,
        ttl: float = PROVIDER_TTL,
        max_providers_per_key: int = 32,
        max_keys: int = 50_000,
        max_total_bytes: int = 32 * 1024 * 1024,
        adds_per_peer_per_minute: float = 120,
        max_key_size: int = 128,
        max_addrs: int = 8,
        sink: ProviderSink | None = None,
        stranger_quotas: StrangerQuotas | None = None,
        known_key: Callable[[bytes], bool] | None = None,
    ) -> None:
        quotas = stranger_quotas if stranger_quotas is not None else StrangerQuotas()
        self._quotas = quotas
        self._known_key = known_key
        self._per_peer_quota = WindowQuota(
            quotas.per_peer, quotas.window, max_sources=quotas.max_sources
        )
        self._per_address_quota = WindowQuota(
            quotas.per_address, quotas.window, max_sources=quotas.max_sources
        )
        # Stranger entries, oldest announcement first (refresh moves to the end);
        # the ones added for unknown keys; stranger entries per key.
        self._strangers: OrderedDict[_ProviderId, None] = OrderedDict()
        self._strangers_unknown: OrderedDict[_ProviderId, None] = OrderedDict()
        self._strangers_per_key: dict[bytes, int] = {}
        self._ttl = ttl
        self._per_key = max_providers_per_key
        self._max_keys = max_keys
        self._max_total_bytes = max_total_bytes
        self._max_key_size = max_key_size
        self._max_addrs = max_addrs
        self._sink = sink
        self._limit = PerPeerRateLimit(adds_per_peer_per_minute)
        self._keys: dict[bytes, dict[bytes, ProviderEntry]] = {}
        self._own_queue: _ExpiryQueue[_ProviderId] = _ExpiryQueue()
        self._foreign_queue: _ExpiryQueue[_ProviderId] = _ExpiryQueue()
        self._total_bytes = 0
        self._count = 0

    def __len__(self) -> int:
        """Number of (key, provider) entries."""
        return self._count

    @property
    def key_count(self) -> int:
        """Number of keys with at least one provider."""
        return len(self._keys)

    @property
    def total_bytes(self) -> int:
        """Bytes counted against the budget."""
        return self._total_bytes

    @property
    def stranger_count(self) -> int:
        """Number of entries announced by strangers."""
        return len(self._strangers)

    @property
    def stranger_unknown_count(self) -> int:
        """Number of stranger entries added for keys that were unknown then."""
        return len(self._strangers_unknown)

    @property
    def quotas(self) -> StrangerQuotas:
        """The stranger quotas in force."""
        return self._quotas

    def entries(self) -> Iterator[ProviderEntry]:
        """Every entry held (including expired ones not yet collected)."""
        return iter([e for per_key in self._keys.values() for e in per_key.values()])

    def own_entries(self, now: float) -> list[ProviderEntry]:
        """This node's own live announcements (what the driver re-provides)."""
        return [e for e in self.entries() if e.own and e.expires_at > now]

    def get(self, key: bytes, *, now: float, limit: int | None = None) -> list[Peer]:
        """Live providers of ``key``, newest announcement first, each peer id once."""
        per_key = self._keys.get(key)
        if not per_key:
            return []
        live = sorted(
            (e for e in per_key.values() if e.expires_at > now),
            key=lambda e: e.added_at,
            reverse=True,
        )
        return [e.peer for e in live[:limit]]

    def add(
        self,
        key: bytes,
        provider: Peer,
        *,
        now: float,
        from_peer: bytes | None,
        source: ProviderSource | None = None,
    ) -> None:
        """Record that ``provider`` provides ``key`` from ``now`` for ``ttl`` seconds.

        Args:
            key: the provided key.
            provider: the provider's id and addresses (at most ``max_addrs`` kept).
            now: the current time.
            from_peer: the announcing peer, or ``None`` when this node provides.
            source: who sent it (address, admission); a source that is not a
                member is a stranger, held to :class:`StrangerQuotas`. ``None``
                (callers that know no better, e.g. the simulator) counts as a member.

        Raises:
            ScopeError: a peer announced someone other than itself.
            InvalidInput: empty key or provider id.
            RecordTooLarge: the key is longer than ``max_key_size``.
            RateLimited: ``from_peer`` exceeded its allowance, or a stranger
                (peer or address) its quota of new entries.
            StoreFull: no room can be made (only own entries left to evict, or
                for a stranger, only own and members' entries).
            DatanetError: from the sink; the store is then unchanged.
        """
        if not isinstance(key, bytes) or not key:
            raise InvalidInput("a provider key is non-empty bytes")
        if len(key) > self._max_key_size:
            raise RecordTooLarge(f"provider key is {len(key)} bytes; limit {self._max_key_size}")
        if not provider.id:
            raise InvalidInput("a provider needs a peer id")
        if from_peer is not None and provider.id != from_peer:
            raise ScopeError("a peer may only announce itself as a provider")
        if from_peer is not None and not self._limit.allow(from_peer, now):
            raise RateLimited("too many provider announcements from this peer")
        held = self._keys.get(key, {}).get(provider.id)
        own = from_peer is None or (held is not None and held.own)
        stranger = not own and source is not None and not source.member
        entry = ProviderEntry(
            key=key,
            peer=Peer(
                provider.id, tuple(provider.addrs[: self._max_addrs]), ConnectionType.NOT_CONNECTED
            ),
            expires_at=now + self._ttl,
            added_at=now,
            own=own,
            stranger=stranger,
        )
        victims: list[_ProviderId] = []
        unknown = False
        if stranger:
            assert source is not None
            unknown, victims = self._stranger_plan(entry, held, source, now)
        victims = self._plan(entry, held, victims)
        if self._sink is not None:
            self._sink.providers_changed([entry], victims)
        for victim in victims:
            self._drop(victim)
        self._put(entry, unknown=unknown)
        if stranger and not (held is not None and held.stranger):
            assert source is not None
            self._per_peer_quota.spend(source.peer, now)
            if source.address is not None:
                self._per_address_quota.spend(source.address, now)

    def remove(self, key: bytes, peer_id: bytes) -> bool:
        """Forget one provider of ``key``; returns whether it was held.

        Raises:
            DatanetError: from the sink; the store is then unchanged.
        """
        if peer_id not in self._keys.get(key, {}):
            return False
        if self._sink is not None:
            self._sink.providers_changed([], [(key, peer_id)])
        self._drop((key, peer_id))
        return True

    def expire(self, now: float) -> list[tuple[bytes, bytes]]:
        """Drop every announcement that expired at or before ``now``; return (key, peer id) pairs.

        Raises:
            DatanetError: from the sink; the store is then unchanged.
        """
        doomed: list[_ProviderId] = []
        for queue in (self._foreign_queue, self._own_queue):
            taken: list[tuple[float, int, _ProviderId]] = []
            while (head := queue.peek()) is not None and head[0] <= now:
                item = queue.take()
                assert item is not None
                taken.append(item)
                doomed.append(item[2])
            queue.untake(taken)
        if doomed:
            if self._sink is not None:
                self._sink.providers_changed([], doomed)
            for ident in doomed:
                self._drop(ident)
        return doomed

    def restore(self, entries: Iterable[ProviderEntry], *, now: float) -> int:
        """Load entries read back from persistent storage; expired ones are dropped.

        If the budgets shrank since the entries were written, foreign entries are
        evicted (soonest expiry first) until they hold again.

        Returns:
            How many entries were loaded.

        Raises:
            DatanetError: from the sink.
        """
        loaded = 0
        dropped: list[_ProviderId] = []
        for entry in sorted(entries, key=lambda e: e.added_at):
            if entry.expires_at <= now or entry.peer.id in self._keys.get(entry.key, {}):
                dropped.append((entry.key, entry.peer.id))
                continue
            unknown = (
                entry.stranger and self._known_key is not None and not self._known_key(entry.key)
            )
            self._put(entry, unknown=unknown)
            loaded += 1
        for ident in self._stranger_excess():
            dropped.append(ident)
            self._drop(ident)
        taken: list[tuple[float, int, _ProviderId]] = []
        while self._total_bytes > self._max_total_bytes or len(self._keys) > self._max_keys:
            item = self._foreign_queue.take()
            if item is None:
                break
            taken.append(item)
            dropped.append(item[2])
            self._drop(item[2])
        self._foreign_queue.untake(taken)  # dropped ids are stale now; the queue skips them
        if dropped and self._sink is not None:
            self._sink.providers_changed([], dropped)
        return loaded

    # -- internals

    def _stranger_excess(self) -> list[_ProviderId]:
        """Stranger entries beyond the quotas (restored under smaller quotas), oldest first."""
        q = self._quotas
        excess: list[_ProviderId] = []
        per_key = dict(self._strangers_per_key)
        unknown = len(self._strangers_unknown)
        total = len(self._strangers)
        for ident in list(self._strangers):
            over_key = per_key.get(ident[0], 0) > q.per_key
            over_unknown = ident in self._strangers_unknown and unknown > q.unknown_keys
            if total > q.total or over_key or over_unknown:
                excess.append(ident)
                total -= 1
                per_key[ident[0]] -= 1
                if ident in self._strangers_unknown:
                    unknown -= 1
        return excess

    def _stranger_plan(
        self, entry: ProviderEntry, held: ProviderEntry | None, source: ProviderSource, now: float
    ) -> tuple[bool, list[_ProviderId]]:
        """Apply the stranger quotas to ``entry``: (added for an unknown key?, victims).

        Raises:
            RateLimited: the peer or its address has no new entry left this window.
            StoreFull: a quota is 0.
        """
        q = self._quotas
        ident = (entry.key, entry.peer.id)
        unknown = self._known_key is not None and not self._known_key(entry.key)
        if held is not None and held.stranger:
            # A refresh grows nothing: no allowance spent, nothing evicted.
            return ident in self._strangers_unknown, []
        if not self._per_peer_quota.available(source.peer, now):
            raise RateLimited("this peer added its quota of provider records for now")
        if source.address is not None and not self._per_address_quota.available(
            source.address, now
        ):
            raise RateLimited("peers from this address added their quota of provider records")
        if q.total == 0 or q.per_key == 0 or (unknown and q.unknown_keys == 0):
            raise StoreFull("this node keeps no provider records of strangers")
        victims: list[_ProviderId] = []
        chosen: set[_ProviderId] = set()

        def evict_oldest(pool: Iterable[_ProviderId]) -> None:
            for candidate in pool:
                if candidate not in chosen and candidate != ident:
                    victims.append(candidate)
                    chosen.add(candidate)
                    return

        if self._strangers_per_key.get(entry.key, 0) >= q.per_key:
            evict_oldest(i for i in self._strangers if i[0] == entry.key)
        if unknown:
            in_pool = sum(1 for v in victims if v in self._strangers_unknown)
            if len(self._strangers_unknown) - in_pool >= q.unknown_keys:
                evict_oldest(self._strangers_unknown)
        if len(self._strangers) - len(victims) >= q.total:
            evict_oldest(self._strangers)
        return unknown, victims

    def _plan(
        self,
        entry: ProviderEntry,
        held: ProviderEntry | None,
        victims: list[_ProviderId],
    ) -> list[_ProviderId]:
        """Choose the entries to evict so that ``entry`` fits; raise StoreFull if it cannot.

        ``victims`` are already chosen (by the stranger quotas). A stranger's
        entry only evicts strangers' entries; others evict strangers' first.
        """
        victims = list(victims)
        per_key = self._keys.get(entry.key, {})
        in_key = sum(1 for k, _ in victims if k == entry.key)
        if held is None and len(per_key) - in_key >= self._per_key:
            candidates = [
                e
                for e in per_key.values()
                if not e.own
                and (e.stranger or not entry.stranger)
                and (e.key, e.peer.id) not in victims
            ]
            if not candidates:
                if not entry.own:
                    raise StoreFull("every provider slot of this key this peer may take is taken")
            else:
                best = min(candidates, key=lambda e: (not e.stranger, e.expires_at))
                victims.append((entry.key, best.peer.id))
        total = self._total_bytes + entry.size - (held.size if held is not None else 0)
        remaining = {entry.key: len(per_key) + (0 if held is not None else 1)}
        keys = len(self._keys) + (0 if per_key else 1)
        for key, peer_id in victims:
            total -= self._keys[key][peer_id].size
            if key not in remaining:
                remaining[key] = len(self._keys[key])
            remaining[key] -= 1
            if remaining[key] == 0:
                keys -= 1
        taken: list[tuple[float, int, _ProviderId]] = []
        try:
            while total > self._max_total_bytes or keys > self._max_keys:
                item = self._foreign_queue.take()
                if item is None or item[0] >= entry.expires_at:
                    if item is not None:
                        taken.append(item)
                    if entry.own:
                        break
                    raise StoreFull("the provider store is full")
                taken.append(item)
                ident = item[2]
                if ident in victims or ident == (entry.key, entry.peer.id):
                    continue
                victim_key, peer_id = ident
                if entry.stranger and not self._keys[victim_key][peer_id].stranger:
                    continue  # a stranger never evicts a member's entry
                victims.append(ident)
                total -= self._keys[victim_key][peer_id].size
                if victim_key not in remaining:
                    remaining[victim_key] = len(self._keys[victim_key])
                remaining[victim_key] -= 1
                if remaining[victim_key] == 0:
                    keys -= 1
        finally:
            self._foreign_queue.untake(taken)
        return victims

    def _put(self, entry: ProviderEntry, *, unknown: bool = False) -> None:
        per_key = self._keys.setdefault(entry.key, {})
        ident = (entry.key, entry.peer.id)
        old = per_key.get(entry.peer.id)
        if old is not None:
            self._total_bytes -= old.size
            self._count -= 1
            self._own_queue.discard(ident)
            self._foreign_queue.discard(ident)
            self._forget_stranger(old)
        per_key[entry.peer.id] = entry
        self._total_bytes += entry.size
        self._count += 1
        (self._own_queue if entry.own else self._foreign_queue).set(ident, entry.expires_at)
        if entry.stranger:
            self._strangers[ident] = None
            self._strangers_per_key[entry.key] = self._strangers_per_key.get(entry.key, 0) + 1
            if unknown:
                self._strangers_unknown[ident] = None

    def _forget_stranger(self, entry: ProviderEntry) -> None:
        if not entry.stranger:
            return
        ident = (entry.key, entry.peer.id)
        self._strangers.pop(ident, None)
        self._strangers_unknown.pop(ident, None)
        left = self._strangers_per_key.get(entry.key, 0) - 1
        if left > 0:
            self._strangers_per_key[entry.key] = left
        else:
            self._strangers_per_key.pop(entry.key, None)

    def _drop(self, ident: _ProviderId) -> None:
        key, peer_id = ident
        per_key = self._keys.get(key)
        if per_key is None:
            return
        old = per_key.pop(peer_id, None)
        if old is None:
            return
        self._total_bytes -= old.size
        self._count -= 1
        self._own_queue.discard(ident)
        self._foreign_queue.discard(ident)
        self._forget_stranger(old)
        if not per_key:
            del self._keys[key]
