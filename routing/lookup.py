"""Kademlia lookups as sans-I/O state machines: events in, one action out.

Each lookup follows the zikade / go-libp2p-kad-dht v2 query design. The driver
(the coordinator) calls ``advance(event, now)`` and gets back exactly one
action:

* :class:`SendRequest` - send this message to this peer, report the outcome as
  :class:`NodeResponded` or :class:`NodeFailed`, then advance again;
* :class:`WaitingAtCapacity` - α requests are in flight, wait for an outcome;
* :class:`WaitingWithCapacity` - requests are in flight and no other peer is
  worth asking until one answers;
* :class:`Finished` - the result; every later ``advance`` returns it again.

Events: :class:`Poll` (nothing new, e.g. time passed), :class:`NodeResponded`,
:class:`NodeFailed`, :class:`Cancel`.

Iteration (:class:`ClosestPeersIter`): candidates are kept in XOR-distance order
from the target. Walking them nearest first, a not-yet-contacted peer is asked
while fewer than ``k`` peers before it have answered or are being asked, at
most α at a time. The lookup terminates when the ``k`` nearest peers that are
still standing have all answered (failed and timed-out peers drop out), or when
nobody is left to ask. A request unanswered after ``request_timeout`` counts as
failed the next time the lookup is advanced at or after its deadline; a late
answer is still used.

Rounds: a request to a seed from our own table has depth 1; a request to a peer
first learned from a depth-``d`` answer has depth ``d + 1`` (the smallest such
``d`` known when it was contacted). ``QueryStats.rounds`` is the largest depth
of any request the lookup sent: the longest chain of request→response
dependencies until termination.

Invariants:
* At most ``alpha`` requests are in flight per lookup; a timed-out request no
  longer counts (as in go-libp2p-kad-dht). The store phase of PUT_VALUE /
  ADD_PROVIDER sends to all its targets at once, as go-libp2p-kad-dht does.
* With ``eager`` a store lookup does not wait for its walk to end: a peer gets
  the write as soon as it answered the walk while being among the ``k`` nearest
  candidates still standing; once the walk is over, every one of the final
  ``k`` closest that was not written to yet gets it. Each peer gets the write at
  most once, and only after its FIND_NODE answer (never two requests at once).
* With ``eager``, a store lookup writes *with* its walk (``ride``): a
  FIND_NODE to a peer that is among the ``k`` nearest candidates when it is sent
  carries the record (PUT_VALUE) or the provider entry (ADD_PROVIDER), and the
  server stores it and echoes it in its FIND_NODE answer (datanet's extension;
  a server that ignores the field answers a plain FIND_NODE, and that peer then
  gets a PUT_VALUE or ADD_PROVIDER as above). Such an ack counts
  towards the quorum only if the peer is still among the ``k`` nearest once its
  answer was taken in: a far seed of a large network is pushed out by the
  closer peers it names, so a quorum still means acks from the nearest.
* A store lookup's :meth:`Lookup.quorum_result` is non-None once ``quorum``
  writes were acknowledged; ``acked`` only ever lists peers whose answer
  acknowledged the write (never more than happened).
* Each peer is asked at most once per lookup; our own id is never asked.
* Only answers from peers we are waiting for (or that timed out) are used, so a
  stray or duplicate message cannot inject peers or values.
* A GET_VALUE result only ever holds a value that passed ``validator.validate``,
  chosen by the validator's stable ``select``; it never stops at the first value
  (or at a local copy) but asks the ``k`` closest peers.
* Nothing here reads a clock or a global random source.
"""

from __future__ import annotations

import bisect
import enum
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from identity.errors import DatanetError, InvalidInput
from routing.keyspace import key_of
from routing.records import Validator
from routing.wire import Message, MessageType, Peer, Record

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_REQUEST_TIMEOUT",
    "AddProviderLookup",
    "Cancel",
    "ClosestPeers",
    "ClosestPeersIter",
    "FindNodeLookup",
    "Finished",
    "GetProvidersLookup",
    "GetValueLookup",
    "Lookup",
    "LookupAction",
    "LookupEvent",
    "LookupResult",
    "NodeFailed",
    "NodeResponded",
    "Poll",
    "ProvidersResult",
    "PutResult",
    "PutValueLookup",
    "QueryStats",
    "SendRequest",
    "ValueResult",
    "WaitingAtCapacity",
    "WaitingWithCapacity",
]

DEFAULT_ALPHA = 3
DEFAULT_REQUEST_TIMEOUT = 10.0

# -- events ------------------------------------------------------------------------


@dataclass(frozen=True)
class Poll:
    """Event: nothing new happened; time may have passed (timeouts are checked)."""


@dataclass(frozen=True)
class NodeResponded:
    """Event: ``peer_id`` answered our request.

    ``response`` is None only for a request the protocol does not answer
    (ADD_PROVIDER): it then means "delivered without a stream error".
    """

    peer_id: bytes
    response: Message | None


@dataclass(frozen=True)
class NodeFailed:
    """Event: the request to ``peer_id`` failed (unreachable, reset, timed out, junk)."""

    peer_id: bytes


@dataclass(frozen=True)
class Cancel:
    """Event: stop now and finish with what is known."""


LookupEvent = Poll | NodeResponded | NodeFailed | Cancel

# -- results -----------------------------------------------------------------------


@dataclass(frozen=True)
class QueryStats:
    """Counters of one lookup (see the module docstring for ``rounds``)."""

    requests: int
    successes: int
    failures: int
    timeouts: int
    rounds: int
    started_at: float
    finished_at: float


@dataclass(frozen=True)
class ClosestPeers:
    """Result of FIND_NODE: the (up to) k closest peers that answered, nearest first."""

    target: bytes
    closest: tuple[Peer, ...]
    stats: QueryStats


@dataclass(frozen=True)
class ValueResult:
    """Result of GET_VALUE.

    Attributes:
        key: the DHT key.
        best: the best valid value (validator ``select``), or None if none was found.
        holders: peers that returned ``best``.
        outdated: peers that returned another value (valid but not the best, or
            invalid); the driver should PUT ``best`` back to them.
        missing: peers among the closest that answered without a value; the
            driver should PUT ``best`` to them too.
        closest: the closest peers that answered, nearest first.
        stats: counters.
    """

    key: bytes
    best: bytes | None
    holders: tuple[Peer, ...]
    outdated: tuple[Peer, ...]
    missing: tuple[Peer, ...]
    closest: tuple[Peer, ...]
    stats: QueryStats


@dataclass(frozen=True)
class ProvidersResult:
    """Result of GET_PROVIDERS: providers de-duplicated by peer id, in discovery order."""

    key: bytes
    providers: tuple[Peer, ...]
    closest: tuple[Peer, ...]
    stats: QueryStats


@dataclass(frozen=True)
class PutResult:
    """Result of PUT_VALUE / ADD_PROVIDER: who acknowledged the write, who did not.

    Attributes:
        key: the DHT key.
        acked: peers that acknowledged the write, in the order they did.
        failed: peers whose write failed, timed out or was not answered.
        stats: counters (the walk's and the writes').
        closest: the k closest peers the walk found (the targets given, when
            the walk was skipped); empty in a :meth:`Lookup.quorum_result`
            taken before the walk ended.
        target: how many peers the write is meant for: the final closest set
            once known, else the k nearest candidates still standing.
        pending: writes not yet answered or not yet sent when this result was
            taken (0 in the final result).
        walk: the walk's own counters (None: the targets were given).
    """

    key: bytes
    acked: tuple[Peer, ...]
    failed: tuple[Peer, ...]
    stats: QueryStats
    closest: tuple[Peer, ...] = ()
    target: int = 0
    pending: int = 0
    walk: QueryStats | None = None


LookupResult = ClosestPeers | ValueResult | ProvidersResult | PutResult

# -- actions -----------------------------------------------------------------------


@dataclass(frozen=True)
class SendRequest:
    """Action: send ``message`` to ``peer`` and report the outcome."""

    peer: Peer
    message: Message


@dataclass(frozen=True)
class WaitingAtCapacity:
    """Action: the maximum number of requests is in flight; wait for an outcome."""


@dataclass(frozen=True)
class WaitingWithCapacity:
    """Action: requests are in flight and nobody else is worth asking yet."""


@dataclass(frozen=True)
class Finished:
    """Action: the lookup is over."""

    result: LookupResult


LookupAction = SendRequest | WaitingAtCapacity | WaitingWithCapacity | Finished

# -- the closest-peers iteration -------------------------------------------------


class _State(enum.Enum):
    NOT_CONTACTED = 0
    WAITING = 1
    SUCCEEDED = 2
    FAILED = 3
    UNRESPONSIVE = 4  # timed out; a late answer still counts


@dataclass(slots=True)
class _Candidate:
    peer: Peer
    distance: int
    depth: int
    state: _State = _State.NOT_CONTACTED
    deadline: float = 0.0


def _distance_of(c: _Candidate) -> int:
    return c.distance


class _Step(enum.Enum):
    WAIT_AT_CAPACITY = 0
    WAIT_WITH_CAPACITY = 1
    DONE = 2


@dataclass
class _Counters:
    requests: int = 0
    successes: int = 0
    failures: int = 0
    timeouts: int = 0
    rounds: int = 0


class ClosestPeersIter:
    """Which peer to ask next and when to stop (zikade's ``ClosestNodesIter`` + query)."""

    def __init__(
        self,
        target_key: int,
        seeds: Iterable[Peer],
        *,
        self_id: bytes,
        k: int,
        alpha: int,
        request_timeout: float,
    ) -> None:
        """Start from ``seeds`` (normally the k closest peers of our routing table).

        Raises:
            InvalidInput: ``k``, ``alpha`` or ``request_timeout`` is not positive.
        """
        if k < 1 or alpha < 1 or request_timeout <= 0:
            raise InvalidInput("k, alpha and request_timeout must be positive")
        self.target_key = target_key
        self.k = k
        self.alpha = alpha
        self.request_timeout = request_timeout
        self._self_id = self_id
        self._by_id: dict[bytes, _Candidate] = {}
        self._order: list[_Candidate] = []
        self._inflight: dict[bytes, _Candidate] = {}
        self.counters = _Counters()
        self._add(seeds, depth=1)

    def _add(self, peers: Iterable[Peer], depth: int) -> None:
        for peer in peers:
            if not peer.id or peer.id == self._self_id:
                continue
            known = self._by_id.get(peer.id)
            if known is not None:
                if known.state is _State.NOT_CONTACTED and depth < known.depth:
                    known.depth = depth
                if not known.peer.addrs and peer.addrs:
                    known.peer = peer
                continue
            cand = _Candidate(peer, key_of(peer.id) ^ self.target_key, depth)
            self._by_id[peer.id] = cand
            bisect.insort(self._order, cand, key=_distance_of)

    def peer(self, peer_id: bytes) -> Peer:
        """The candidate ``peer_id`` as known (with addresses), or a bare Peer."""
        cand = self._by_id.get(peer_id)
        return Peer(peer_id) if cand is None else cand.peer

    def expecting(self, peer_id: bytes) -> bool:
        """True if an answer from ``peer_id`` would be used (asked, not yet answered)."""
        cand = self._by_id.get(peer_id)
        return cand is not None and cand.state in (_State.WAITING, _State.UNRESPONSIVE)

    def on_response(self, peer_id: bytes, closer: Sequence[Peer]) -> None:
        """``peer_id`` answered with ``closer`` peers (at most ``k`` of them are used)."""
        cand = self._by_id.get(peer_id)
        if cand is None or cand.state not in (_State.WAITING, _State.UNRESPONSIVE):
            return
        if cand.state is _State.WAITING:
            del self._inflight[peer_id]
        cand.state = _State.SUCCEEDED
        self.counters.successes += 1
        self._add(closer[: self.k], cand.depth + 1)

    def on_failure(self, peer_id: bytes) -> None:
        """The request to ``peer_id`` failed; it drops out of the candidate set."""
        cand = self._by_id.get(peer_id)
        if cand is None or cand.state not in (_State.WAITING, _State.UNRESPONSIVE):
            return
        if cand.state is _State.WAITING:
            del self._inflight[peer_id]
            self.counters.failures += 1
        cand.state = _State.FAILED

    def next_deadline(self) -> float | None:
        """When the earliest in-flight request times out, or None if none is in flight."""
        return min((c.deadline for c in self._inflight.values()), default=None)

    def in_flight(self) -> int:
        """Requests sent and not yet answered, failed or timed out."""
        return len(self._inflight)

    def step(self, now: float) -> Peer | _Step:
        """Expire overdue requests, then pick the next peer to ask, or say why not."""
        for peer_id, cand in list(self._inflight.items()):
            if cand.deadline <= now:
                cand.state = _State.UNRESPONSIVE
                del self._inflight[peer_id]
                self.counters.timeouts += 1
        answered = 0
        busy = 0
        for cand in self._order:
            state = cand.state
            if state is _State.SUCCEEDED:
                answered += 1
                if answered >= self.k and busy == 0:
                    return _Step.DONE
            elif state is _State.WAITING:
                busy += 1
            elif state is _State.NOT_CONTACTED:
                if answered + busy >= self.k:
                    break
                if len(self._inflight) >= self.alpha:
                    return _Step.WAIT_AT_CAPACITY
                cand.state = _State.WAITING
                cand.deadline = now + self.request_timeout
                self._inflight[cand.peer.id] = cand
                self.counters.requests += 1
                self.counters.rounds = max(self.counters.rounds, cand.depth)
                return cand.peer
        if self._inflight:
            if len(self._inflight) >= self.alpha:
                return _Step.WAIT_AT_CAPACITY
            return _Step.WAIT_WITH_CAPACITY
        return _Step.DONE

    def answered_among_nearest(self, count: int) -> list[Peer]:
        """Peers that answered and are among the ``count`` nearest candidates still standing.

        Standing: not failed nor timed out. A peer listed here can still be pushed
        out by closer peers learned later; a peer not listed cannot come back in
        unless a nearer one fails.
        """
        out: list[Peer] = []
        standing = 0
        for cand in self._order:
            state = cand.state
            if state is _State.FAILED or state is _State.UNRESPONSIVE:
                continue
            standing += 1
            if standing > count:
                break
            if state is _State.SUCCEEDED:
                out.append(cand.peer)
        return out

    def among_nearest(self, peer_id: bytes, count: int) -> bool:
        """Whether ``peer_id`` is among the ``count`` nearest candidates still standing."""
        standing = 0
        for cand in self._order:
            if cand.state is _State.FAILED or cand.state is _State.UNRESPONSIVE:
                continue
            if cand.peer.id == peer_id:
                return True
            standing += 1
            if standing >= count:
                return False
        return False

    def standing(self, count: int) -> int:
        """How many candidates are still standing (not failed nor timed out), at most ``count``."""
        n = 0
        for cand in self._order:
            if cand.state is not _State.FAILED and cand.state is not _State.UNRESPONSIVE:
                n += 1
                if n >= count:
                    break
        return n

    def closest(self, count: int) -> list[Peer]:
        """The ``count`` nearest peers that answered, nearest first."""
        out: list[Peer] = []
        for cand in self._order:
            if cand.state is _State.SUCCEEDED:
                out.append(cand.peer)
                if len(out) >= count:
                    break
        return out

    def stats(self, started_at: float, finished_at: float) -> QueryStats:
        """Counters so far as a frozen record."""
        c = self.counters
        return QueryStats(
            c.requests, c.successes, c.failures, c.timeouts, c.rounds, started_at, finished_at
        )


# -- lookups -----------------------------------------------------------------------


class Lookup(ABC):
    """A state machine for one DHT operation (see the module docstring)."""

    query_id: int

    @abstractmethod
    def advance(self, event: LookupEvent, now: float) -> LookupAction:
        """Feed one event and get the next action."""

    @abstractmethod
    def next_deadline(self) -> float | None:
        """The next time at which ``advance(Poll(), now)`` would time a request out."""

    @property
    @abstractmethod
    def finished(self) -> bool:
        """True once :class:`Finished` has been returned."""

    @property
    @abstractmethod
    def target(self) -> bytes:
        """The peer id or DHT key this lookup walks towards."""

    def quorum_result(self, now: float) -> LookupResult | None:
        """A result to answer with before the end, once the lookup's quorum is met.

        None while it is not (and always for lookups without a quorum). The
        lookup carries on; its :class:`Finished` result comes later.
        """
        return None


class _IterativeLookup(Lookup):
    """Common driver of FIND_NODE, GET_VALUE and GET_PROVIDERS over a ClosestPeersIter."""

    def __init__(
        self,
        query_id: int,
        target: bytes,
        seeds: Iterable[Peer],
        *,
        self_id: bytes,
        now: float,
        k: int,
        alpha: int,
        request_timeout: float,
    ) -> None:
        self.query_id = query_id
        self._target = target
        self.k = k
        self._iter = ClosestPeersIter(
            key_of(target),
            seeds,
            self_id=self_id,
            k=k,
            alpha=alpha,
            request_timeout=request_timeout,
        )
        self._started_at = now
        self._done: Finished | None = None

    @property
    def target(self) -> bytes:
        return self._target

    @property
    def finished(self) -> bool:
        return self._done is not None

    def next_deadline(self) -> float | None:
        return None if self._done is not None else self._iter.next_deadline()

    def advance(self, event: LookupEvent, now: float) -> LookupAction:
        if self._done is not None:
            return self._done
        if isinstance(event, Cancel):
            return self._finish(now)
        if isinstance(event, NodeResponded):
            if self._iter.expecting(event.peer_id):
                closer = self._accept(event.peer_id, event.response, now)
                if closer is None:
                    self._iter.on_failure(event.peer_id)
                else:
                    self._iter.on_response(event.peer_id, closer)
        elif isinstance(event, NodeFailed):
            self._iter.on_failure(event.peer_id)
        if self._satisfied():
            return self._finish(now)
        step = self._iter.step(now)
        if isinstance(step, Peer):
            return SendRequest(step, self._request())
        if step is _Step.WAIT_AT_CAPACITY:
            return WaitingAtCapacity()
        if step is _Step.WAIT_WITH_CAPACITY:
            return WaitingWithCapacity()
        return self._finish(now)

    def _finish(self, now: float) -> Finished:
        self._done = Finished(self._result(self._iter.stats(self._started_at, now)))
        return self._done

    def _satisfied(self) -> bool:
        """True when the lookup may stop before the iteration ends (early exit)."""
        return False

    @abstractmethod
    def _request(self) -> Message:
        """The message sent to every peer this lookup asks."""

    @abstractmethod
    def _accept(
        self, peer_id: bytes, response: Message | None, now: float
    ) -> Sequence[Peer] | None:
        """Take what a response carries; return its closer peers, or None if it is junk."""

    @abstractmethod
    def _result(self, stats: QueryStats) -> LookupResult:
        """Build the result once the lookup is over."""


class FindNodeLookup(_IterativeLookup):
    """FIND_NODE: the k closest peers to a peer id (or any key)."""

    def __init__(
        self,
        query_id: int,
        target: bytes,
        seeds: Iterable[Peer],
        *,
        self_id: bytes,
        now: float,
        k: int = 20,
        alpha: int = DEFAULT_ALPHA,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        """Walk towards ``target`` starting from ``seeds``.

        Raises:
            InvalidInput: ``k``, ``alpha`` or ``request_timeout`` is not positive.
        """
        super().__init__(
            query_id,
            target,
            seeds,
            self_id=self_id,
            now=now,
            k=k,
            alpha=alpha,
            request_timeout=request_timeout,
        )
        self._message = Message(MessageType.FIND_NODE, key=target)

    def _request(self) -> Message:
        return self._message

    def _accept(
        self, peer_id: bytes, response: Message | None, now: float
    ) -> Sequence[Peer] | None:
        if response is None or response.type is not MessageType.FIND_NODE:
            return None
        return response.closer_peers

    def _result(self, stats: QueryStats) -> ClosestPeers:
        return ClosestPeers(self._target, tuple(self._iter.closest(self.k)), stats)

    def answered_among_nearest(self) -> list[Peer]:
        """Peers that answered and are among the k nearest candidates still standing."""
        return self._iter.answered_among_nearest(self.k)

    def among_nearest(self, peer_id: bytes) -> bool:
        """Whether ``peer_id`` is among the k nearest candidates still standing."""
        return self._iter.among_nearest(peer_id, self.k)

    def standing(self) -> int:
        """How many of the k nearest candidates are still standing."""
        return self._iter.standing(self.k)

    def so_far(self, now: float) -> ClosestPeers:
        """The result as it stands (the walk goes on)."""
        return ClosestPeers(
            self._target,
            tuple(self._iter.closest(self.k)),
            self._iter.stats(self._started_at, now),
        )


class GetValueLookup(_IterativeLookup):
    """GET_VALUE: collect, validate and select values from the k closest peers."""

    def __init__(
        self,
        query_id: int,
        key: bytes,
        seeds: Iterable[Peer],
        *,
        validator: Validator,
        self_id: bytes,
        now: float,
        local: bytes | None = None,
        quorum: int = 0,
        k: int = 20,
        alpha: int = DEFAULT_ALPHA,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        """Look ``key`` up; ``local`` is our own copy, which competes but never ends the walk.

        ``quorum`` > 0 ends the walk once that many *remote* peers returned a valid
        value (the best of what was collected wins); 0 walks until the k closest
        answered. A quorum trades a small window of staleness right after an
        update for latency, as go-libp2p-kad-dht's quorum option does.

        Raises:
            InvalidInput: ``quorum`` is negative, or ``k``, ``alpha`` or
                ``request_timeout`` is not positive.
        """
        if quorum < 0:
            raise InvalidInput("quorum must be >= 0")
        super().__init__(
            query_id,
            key,
            seeds,
            self_id=self_id,
            now=now,
            k=k,
            alpha=alpha,
            request_timeout=request_timeout,
        )
        self._validator = validator
        self._message = Message(MessageType.GET_VALUE, key=key)
        self._values: list[bytes] = []  # distinct valid values, first seen first
        self._from: dict[bytes, tuple[Peer, bytes | None]] = {}  # peer -> value (None: invalid)
        self._quorum = quorum
        self._valid_answers = 0
        if local is not None and self._valid(local, now):
            self._values.append(local)

    def _valid(self, value: bytes, now: float) -> bool:
        try:
            self._validator.validate(self._target, value, int(now))
        except DatanetError:
            return False
        return True

    def _request(self) -> Message:
        return self._message

    def _accept(
        self, peer_id: bytes, response: Message | None, now: float
    ) -> Sequence[Peer] | None:
        if response is None or response.type is not MessageType.GET_VALUE:
            return None
        record = response.record
        if record is not None:
            value: bytes | None = None
            if record.key == self._target and self._valid(record.value, now):
                value = record.value
                self._valid_answers += 1
                if value not in self._values:
                    self._values.append(value)
            self._from[peer_id] = (self._iter.peer(peer_id), value)
        return response.closer_peers

    def _satisfied(self) -> bool:
        return self._quorum > 0 and self._valid_answers >= self._quorum

    def _result(self, stats: QueryStats) -> ValueResult:
        closest = tuple(self._iter.closest(self.k))
        best: bytes | None = None
        if self._values:
            best = self._values[self._validator.select(self._target, self._values)]
        holders: list[Peer] = []
        outdated: list[Peer] = []
        for peer, value in self._from.values():
            if value is not None and value == best:
                holders.append(peer)
            else:
                outdated.append(peer)
        missing = tuple(p for p in closest if p.id not in self._from)
        return ValueResult(
            self._target, best, tuple(holders), tuple(outdated), missing, closest, stats
        )


class GetProvidersLookup(_IterativeLookup):
    """GET_PROVIDERS: de-duplicated providers; stops early once ``count`` are known."""

    def __init__(
        self,
        query_id: int,
        key: bytes,
        seeds: Iterable[Peer],
        *,
        self_id: bytes,
        now: float,
        count: int = 20,
        local: Sequence[Peer] = (),
        k: int = 20,
        alpha: int = DEFAULT_ALPHA,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        """Look up providers of ``key``; ``count`` 0 means "walk to the end".

        Raises:
            InvalidInput: ``count`` is negative, or ``k``/``alpha``/``request_timeout``
                is not positive.
        """
        if count < 0:
            raise InvalidInput("count must be >= 0")
        super().__init__(
            query_id,
            key,
            seeds,
            self_id=self_id,
            now=now,
            k=k,
            alpha=alpha,
            request_timeout=request_timeout,
        )
        self._count = count
        self._message = Message(MessageType.GET_PROVIDERS, key=key)
        self._providers: dict[bytes, Peer] = {}
        self._merge(local)

    def _merge(self, providers: Iterable[Peer]) -> None:
        for p in providers:
            if not p.id:
                continue
            known = self._providers.get(p.id)
            if known is None or (not known.addrs and p.addrs):
                self._providers[p.id] = p

    def _request(self) -> Message:
        return self._message

    def _accept(
        self, peer_id: bytes, response: Message | None, now: float
    ) -> Sequence[Peer] | None:
        if response is None or response.type is not MessageType.GET_PROVIDERS:
            return None
        self._merge(response.provider_peers[: max(self.k, self._count)])
        return response.closer_peers

    def _satisfied(self) -> bool:
        return self._count > 0 and len(self._providers) >= self._count

    def _result(self, stats: QueryStats) -> ProvidersResult:
        providers = tuple(self._providers.values())
        if self._count:
            providers = providers[: self._count]
        return ProvidersResult(self._target, providers, tuple(self._iter.closest(self.k)), stats)


class _StoreLookup(Lookup):
    """FIND_NODE for the key, then (or, with ``eager``, meanwhile) the write to the k closest."""

    def __init__(
        self,
        query_id: int,
        key: bytes,
        message: Message,
        seeds: Iterable[Peer],
        *,
        self_id: bytes,
        now: float,
        targets: Sequence[Peer] | None,
        k: int,
        alpha: int,
        request_timeout: float,
        quorum: int = 0,
        eager: bool = False,
        ride: Message | None = None,
    ) -> None:
        if quorum < 0:
            raise InvalidInput("quorum must be >= 0")
        self.query_id = query_id
        self._key = key
        self._message = message
        self._ride = ride if eager else None  # the FIND_NODE that carries the write
        self._riding: dict[bytes, Peer] = {}  # peers whose walk request carries the write
        self._quorum_acks = 0
        self._self_id = self_id
        self._k = k
        self._quorum = quorum
        self._eager = eager
        self._request_timeout = request_timeout
        self._started_at = now
        self._find: FindNodeLookup | None = None
        self._find_stats: QueryStats | None = None
        self._closest: tuple[Peer, ...] = ()
        self._queue: list[Peer] = []
        self._sent: set[bytes] = set()  # peers the write was queued or sent to
        self._pending: dict[bytes, tuple[Peer, float]] = {}
        self._acked: list[Peer] = []
        self._failed: list[Peer] = []
        self._counters = _Counters()
        self._done: Finished | None = None
        if targets is None:
            self._find = FindNodeLookup(
                query_id,
                key,
                seeds,
                self_id=self_id,
                now=now,
                k=k,
                alpha=alpha,
                request_timeout=request_timeout,
            )
        else:
            self._closest = tuple(p for p in {p.id: p for p in targets}.values() if p.id != self_id)
            self._enqueue(self._closest)

    @property
    def target(self) -> bytes:
        return self._key

    @property
    def finished(self) -> bool:
        return self._done is not None

    def next_deadline(self) -> float | None:
        if self._done is not None:
            return None
        deadlines = [deadline for _, deadline in self._pending.values()]
        if self._find is not None and (walk := self._find.next_deadline()) is not None:
            deadlines.append(walk)
        return min(deadlines, default=None)

    def _enqueue(self, peers: Iterable[Peer]) -> None:
        for peer in peers:
            if peer.id not in self._sent:
                self._sent.add(peer.id)
                self._queue.append(peer)

    def _target_count(self) -> int:
        if self._find is None:
            return len(self._closest)
        return self._find.standing()

    def quorum_result(self, now: float) -> PutResult | None:
        if self._quorum <= 0 or self._quorum_acks < self._quorum:
            return None
        if self._done is not None:
            result = self._done.result
            assert isinstance(result, PutResult)
            return result
        return self._result(now)

    def advance(self, event: LookupEvent, now: float) -> LookupAction:
        if self._done is not None:
            return self._done
        if isinstance(event, Cancel):
            return self._finish(now)
        if isinstance(event, NodeResponded | NodeFailed) and event.peer_id in self._pending:
            peer, _ = self._pending.pop(event.peer_id)
            if isinstance(event, NodeResponded) and self._acknowledges(event.response):
                self._counters.successes += 1
                self._acked.append(peer)
                self._quorum_acks += 1
            else:
                self._counters.failures += 1
                self._failed.append(peer)
            event = Poll()
        for peer_id, (peer, deadline) in list(self._pending.items()):
            if deadline <= now:
                del self._pending[peer_id]
                self._counters.timeouts += 1
                self._failed.append(peer)
        ridden: tuple[Peer, NodeResponded | NodeFailed] | None = None
        if isinstance(event, NodeResponded | NodeFailed) and event.peer_id in self._riding:
            ridden = (self._riding.pop(event.peer_id), event)
        waiting: LookupAction = WaitingWithCapacity()
        if self._find is None and ridden is not None:  # a late answer, after the walk
            self._ridden(*ridden)
        if self._find is not None:
            action = self._find.advance(event, now)
            if ridden is not None:
                self._ridden(*ridden)
            if isinstance(action, SendRequest):
                return self._with_write(action)
            waiting = action
            if isinstance(action, Finished):
                assert isinstance(action.result, ClosestPeers)
                self._find_stats = action.result.stats
                self._closest = action.result.closest
                self._find = None
                self._enqueue(self._closest)
            elif self._eager:
                self._enqueue(self._find.answered_among_nearest())
        if self._queue:
            peer = self._queue.pop(0)
            self._pending[peer.id] = (peer, now + self._request_timeout)
            self._counters.requests += 1
            return SendRequest(peer, self._message)
        if self._find is not None:
            return waiting
        if self._pending:
            return WaitingWithCapacity()
        return self._finish(now)

    def _with_write(self, action: SendRequest) -> SendRequest:
        """The walk's request, carrying the write if the peer is among the k nearest now."""
        find = self._find
        peer = action.peer
        if (
            self._ride is None
            or find is None
            or peer.id in self._sent
            or not find.among_nearest(peer.id)
        ):
            return action
        self._sent.add(peer.id)
        self._riding[peer.id] = peer
        return SendRequest(peer, self._ride)

    def _ridden(self, peer: Peer, event: NodeResponded | NodeFailed) -> None:
        """The answer to a walk request that carried the write (already taken in by the walk)."""
        response = event.response if isinstance(event, NodeResponded) else None
        if response is None or response.type is not MessageType.FIND_NODE:
            self._failed.append(peer)
            return
        if not self._ride_acknowledged(response):
            # The server ignored the write: write to it the usual way if it stays near.
            self._sent.discard(peer.id)
            return
        self._acked.append(peer)
        find = self._find
        near = find.among_nearest(peer.id) if find else any(p.id == peer.id for p in self._closest)
        if near:
            self._quorum_acks += 1

    @abstractmethod
    def _acknowledges(self, response: Message | None) -> bool:
        """True if ``response`` says the receiver stored the write."""

    @abstractmethod
    def _ride_acknowledged(self, response: Message) -> bool:
        """True if the FIND_NODE answer ``response`` echoes the write it carried."""

    def _stats(self, now: float) -> QueryStats:
        f = self._find_stats
        if f is None and self._find is not None:
            f = self._find.so_far(now).stats
        c = self._counters
        return QueryStats(
            requests=c.requests + (f.requests if f else 0),
            successes=c.successes + (f.successes if f else 0),
            failures=c.failures + (f.failures if f else 0),
            timeouts=c.timeouts + (f.timeouts if f else 0),
            rounds=(f.rounds if f else 0) + (1 if c.requests else 0),
            started_at=self._started_at,
            finished_at=now,
        )

    def _result(self, now: float) -> PutResult:
        if self._find is not None:
            pending = max(0, self._target_count() - len(self._acked) - len(self._failed))
            pending = max(pending, len(self._pending) + len(self._queue))
        else:
            pending = len(self._pending) + len(self._queue)
        return PutResult(
            self._key,
            tuple(self._acked),
            tuple(self._failed),
            self._stats(now),
            closest=self._closest if self._find is None else (),
            target=self._target_count(),
            pending=pending,
            walk=self._find_stats,
        )

    def _finish(self, now: float) -> Finished:
        # Writes still pending (or never sent) at cancel time count as not acknowledged.
        self._failed.extend(peer for peer, _ in self._pending.values())
        self._pending.clear()
        self._failed.extend(self._queue)
        self._queue.clear()
        self._failed.extend(self._riding.values())  # their walk request never came back
        self._riding.clear()
        if self._find is not None:
            walked = self._find.so_far(now)
            self._find_stats = walked.stats
            self._closest = walked.closest
            self._find = None
        self._done = Finished(self._result(now))
        return self._done


class PutValueLookup(_StoreLookup):
    """PUT_VALUE to the k closest; a peer acks by echoing the record it stored (spec)."""

    def __init__(
        self,
        query_id: int,
        key: bytes,
        value: bytes,
        seeds: Iterable[Peer],
        *,
        self_id: bytes,
        now: float,
        targets: Sequence[Peer] | None = None,
        k: int = 20,
        alpha: int = DEFAULT_ALPHA,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        quorum: int = 0,
        eager: bool = False,
    ) -> None:
        """Store ``value`` under ``key`` on the k closest peers, or on ``targets`` if given.

        ``targets`` skips the FIND_NODE phase: used to correct the outdated and
        missing copies a GET_VALUE found, and to republish to a closest set
        known to be fresh. ``quorum`` > 0 makes :meth:`quorum_result` answer once
        that many peers acknowledged; ``eager`` writes to peers while the walk
        goes on, and its FIND_NODE requests to the nearest candidates carry the
        record (see the module docstring).

        Raises:
            InvalidInput: ``quorum`` is negative, or ``k``, ``alpha`` or
                ``request_timeout`` is not positive.
        """
        self._record = Record(key, value)
        super().__init__(
            query_id,
            key,
            Message(MessageType.PUT_VALUE, key=key, record=self._record),
            seeds,
            self_id=self_id,
            now=now,
            targets=targets,
            k=k,
            alpha=alpha,
            request_timeout=request_timeout,
            quorum=quorum,
            eager=eager,
            ride=Message(MessageType.FIND_NODE, key=key, record=self._record),
        )

    def _acknowledges(self, response: Message | None) -> bool:
        return (
            response is not None
            and response.type is MessageType.PUT_VALUE
            and self._ride_acknowledged(response)
        )

    def _ride_acknowledged(self, response: Message) -> bool:
        return (
            response.record is not None
            and response.record.key == self._record.key
            and response.record.value == self._record.value
        )


class AddProviderLookup(_StoreLookup):
    """ADD_PROVIDER to the k closest.

    The kad-dht specification defines no answer to ADD_PROVIDER, so a write
    counts as acknowledged when it was delivered without a stream error
    (``NodeResponded(peer, None)``) or when the peer answered with an
    ADD_PROVIDER message.
    """

    def __init__(
        self,
        query_id: int,
        key: bytes,
        provider: Peer,
        seeds: Iterable[Peer],
        *,
        self_id: bytes,
        now: float,
        targets: Sequence[Peer] | None = None,
        k: int = 20,
        alpha: int = DEFAULT_ALPHA,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        quorum: int = 0,
        eager: bool = False,
    ) -> None:
        """Announce ``provider`` (normally ourselves, with our addresses) for ``key``.

        ``quorum`` and ``eager`` as for :class:`PutValueLookup`; an eager
        announcement's FIND_NODE requests to the nearest candidates carry the
        provider entry, and a server that stored it echoes it in
        ``provider_peers`` (see the module docstring).

        Raises:
            InvalidInput: ``quorum`` is negative, or ``k``, ``alpha`` or
                ``request_timeout`` is not positive.
        """
        self._provider = provider
        super().__init__(
            query_id,
            key,
            Message(MessageType.ADD_PROVIDER, key=key, provider_peers=(provider,)),
            seeds,
            self_id=self_id,
            now=now,
            targets=targets,
            k=k,
            alpha=alpha,
            request_timeout=request_timeout,
            quorum=quorum,
            eager=eager,
            ride=Message(MessageType.FIND_NODE, key=key, provider_peers=(provider,)),
        )

    def _acknowledges(self, response: Message | None) -> bool:
        return response is None or response.type is MessageType.ADD_PROVIDER

    def _ride_acknowledged(self, response: Message) -> bool:
        return any(p.id == self._provider.id for p in response.provider_peers)
