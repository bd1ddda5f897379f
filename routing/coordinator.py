"""One node's Kademlia coordinator: owns the routing table and the running lookups.

The coordinator is the only object a driver talks to. The real node (trio +
libp2p) and the simulator drive the very same code:

* Driver → coordinator (events): :meth:`Coordinator.peer_seen`,
  :meth:`~Coordinator.handle_request` (an inbound request, answered at once),
  :meth:`~Coordinator.response_received`, :meth:`~Coordinator.request_failed`,
  and the operations :meth:`~Coordinator.find_node`, :meth:`~Coordinator.get_value`,
  :meth:`~Coordinator.get_providers`, :meth:`~Coordinator.put_value`,
  :meth:`~Coordinator.add_provider`, :meth:`~Coordinator.bootstrap`,
  :meth:`~Coordinator.refresh`, :meth:`~Coordinator.cancel`.
* Coordinator → driver (actions, from :meth:`~Coordinator.poll`):
  :class:`OutboundRequest` (send a kad message, report the outcome under its
  ``request_id``), :class:`QuorumReached` (a put's answer once enough peers
  acknowledged; the query goes on) and :class:`QueryDone` (an operation's result).

The driver's loop: after any event call ``poll(now)`` and carry out the
actions; also call ``poll(now)`` once ``now`` reaches :meth:`~Coordinator.next_deadline`.
Every request the driver sends must end in exactly one ``response_received`` or
``request_failed`` (the driver's own transport timeout should be
``config.request_timeout``; the lookups also time requests out themselves).

Invariants:
* The table only learns peers that answered one of *our* requests, or that the
  driver vouches for as servers; a peer that only sent us requests is never added.
* Answers from peers are routed to the lookup that asked, by request id; answers
  to finished or cancelled lookups still update the table and are then dropped.
* A lookup for a key marks that key's bucket as refreshed.
* A query emits at most one :class:`QuorumReached`, never after its
  :class:`QueryDone`, and only once its quorum was met.
* Time is the ``now`` passed in and randomness the injected ``random.Random``.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Sequence
from dataclasses import dataclass

from identity.errors import InvalidInput
from routing.keyspace import key_of
from routing.lookup import (
    DEFAULT_ALPHA,
    DEFAULT_REQUEST_TIMEOUT,
    AddProviderLookup,
    Cancel,
    FindNodeLookup,
    Finished,
    GetProvidersLookup,
    GetValueLookup,
    Lookup,
    LookupEvent,
    LookupResult,
    NodeFailed,
    NodeResponded,
    Poll,
    PutValueLookup,
    SendRequest,
)
from routing.records import Validator
from routing.server import handle_request
from routing.stores import ProviderSource, ProviderStore, RecordStore
from routing.table import DEFAULT_K, PingPeer, RoutingTable
from routing.wire import Message, MessageType, Peer

__all__ = [
    "Coordinator",
    "CoordinatorAction",
    "CoordinatorConfig",
    "OutboundRequest",
    "QueryDone",
    "QueryKind",
    "QuorumReached",
]


class QueryKind(enum.Enum):
    """What a running query is for (reported back in :class:`QueryDone`)."""

    FIND_NODE = "find_node"
    GET_VALUE = "get_value"
    GET_PROVIDERS = "get_providers"
    PUT_VALUE = "put_value"
    ADD_PROVIDER = "add_provider"
    BOOTSTRAP = "bootstrap"
    REFRESH = "refresh"


@dataclass(frozen=True)
class CoordinatorConfig:
    """Kademlia parameters (defaults: the libp2p kad-dht ones)."""

    k: int = DEFAULT_K
    alpha: int = DEFAULT_ALPHA
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    ping_timeout: float = 10.0
    #: A full bucket whose every entry was seen this recently asks no eviction ping.
    seen_recently: float = 30.0
    refresh_interval: float = 600.0
    max_failures: int = 2
    #: GET_VALUE ends once this many remote peers returned a valid value (0: walk to the end).
    value_quorum: int = 0
    #: PUT_VALUE / ADD_PROVIDER emit :class:`QuorumReached` once this many peers
    #: acknowledged (0: only :class:`QueryDone`).
    put_quorum: int = 0
    #: Stores write to peers while their walk goes on (see :mod:`routing.lookup`).
    eager_store: bool = False


@dataclass(frozen=True)
class OutboundRequest:
    """Action: send ``message`` to ``peer``; report the outcome under ``request_id``.

    ``query_id`` is None for the table's liveness pings.
    """

    request_id: int
    peer: Peer
    message: Message
    query_id: int | None


@dataclass(frozen=True)
class QueryDone:
    """Action: the query ``query_id`` is over with ``result``."""

    query_id: int
    kind: QueryKind
    result: LookupResult


@dataclass(frozen=True)
class QuorumReached:
    """Action: the put ``query_id`` met its quorum with ``result`` so far; it goes on.

    Its :class:`QueryDone` (with every write's outcome) follows later.
    """

    query_id: int
    kind: QueryKind
    result: LookupResult


CoordinatorAction = OutboundRequest | QuorumReached | QueryDone


@dataclass(frozen=True)
class _Pending:
    query_id: int | None
    peer: Peer


class Coordinator:
    """Turns driver events into actions for one node (see the module docstring)."""

    def __init__(
        self,
        self_peer: Peer,
        *,
        validator: Validator,
        records: RecordStore,
        providers: ProviderStore,
        rng: random.Random,
        config: CoordinatorConfig | None = None,
    ) -> None:
        """Create the coordinator of the node ``self_peer`` (our id and addresses).

        Args:
            self_peer: our binary peer id and the addresses we announce.
            validator: checks and orders DHT values (per namespace).
            records: the record store inbound PUT/GET_VALUE requests use.
            providers: the provider store inbound ADD/GET_PROVIDERS requests use.
            rng: randomness for refresh targets.
            config: Kademlia parameters.

        Raises:
            InvalidInput: a config value is out of range.
        """
        self.config = config or CoordinatorConfig()
        self.self_peer = self_peer
        self.validator = validator
        self.records = records
        self.providers = providers
        self.rng = rng
        self.table = RoutingTable(
            self_peer.id,
            k=self.config.k,
            max_failures=self.config.max_failures,
            ping_timeout=self.config.ping_timeout,
            refresh_interval=self.config.refresh_interval,
            seen_recently=self.config.seen_recently,
        )
        self._queries: dict[int, tuple[QueryKind, Lookup]] = {}
        self._quorum_told: set[int] = set()
        self._requests: dict[int, _Pending] = {}
        self._outbox: list[CoordinatorAction] = []
        self._next_query_id = 1
        self._next_request_id = 1

    # -- state --------------------------------------------------------------------

    def running(self) -> list[int]:
        """Ids of the queries still running."""
        return list(self._queries)

    def outstanding_requests(self) -> int:
        """Requests handed to the driver whose outcome has not been reported yet."""
        return len(self._requests)

    def next_deadline(self) -> float | None:
        """When ``poll`` must next be called even if nothing happens (or None)."""
        deadlines = [d for _, q in self._queries.values() if (d := q.next_deadline()) is not None]
        return min(deadlines, default=None)

    # -- events from the driver ------------------------------------------------------

    def peer_seen(self, peer: Peer, *, is_server: bool, now: float) -> None:
        """The driver saw ``peer`` (connected, identified); only servers enter the table."""
        self._offer(peer, is_server=is_server, now=now)

    def handle_request(
        self,
        message: Message,
        *,
        from_peer: bytes,
        now: float,
        source: ProviderSource | None = None,
    ) -> Message | None:
        """Answer an inbound kad request (server side).

        The asking peer is *not* added to the table here: asking makes it a
        client, not a server (the driver reports servers with :meth:`peer_seen`).
        The closer peers never include the asker. ``source`` (address, admission)
        is handed to the provider store's stranger quotas.

        Raises:
            DatanetError: the request is invalid (see :func:`routing.server.handle_request`);
                the driver should reset the stream.
        """

        return handle_request(
            message,
            from_peer=from_peer,
            now=now,
            closest=self.table.closest_to,
            records=self.records,
            providers=self.providers,
            k=self.config.k,
            self_peer=self.self_peer,
            source=source,
        )

    def response_received(self, request_id: int, response: Message | None, now: float) -> None:
        """The peer of ``request_id`` answered (``None``: delivered, no answer expected).

        A peer that answers our kad request is a server, so it is offered to the table.
        """
        pending = self._requests.pop(request_id, None)
        if pending is None:
            return
        self._offer(pending.peer, is_server=True, now=now)
        self.table.mark_alive(pending.peer.id, now)
        if pending.query_id is not None:
            self._drive(pending.query_id, NodeResponded(pending.peer.id, response), now)

    def request_failed(self, request_id: int, now: float) -> None:
        """The request ``request_id`` failed (unreachable, reset, timed out, junk)."""
        pending = self._requests.pop(request_id, None)
        if pending is None:
            return
        if pending.query_id is None:
            self.table.ping_failed(pending.peer.id, now)
        else:
            self.table.mark_failed(pending.peer.id, now)
            self._drive(pending.query_id, NodeFailed(pending.peer.id), now)

    # -- operations -------------------------------------------------------------------

    def _seeds(self, target: bytes) -> list[Peer]:
        return self.table.closest_to(target, self.config.k)

    def _new_id(self) -> int:
        query_id = self._next_query_id
        self._next_query_id += 1
        return query_id

    def _start(self, kind: QueryKind, lookup: Lookup, now: float) -> int:
        self._queries[lookup.query_id] = (kind, lookup)
        self._drive(lookup.query_id, Poll(), now)
        return lookup.query_id

    def _find_node(self, kind: QueryKind, target: bytes, now: float) -> int:
        c = self.config
        lookup = FindNodeLookup(
            self._new_id(),
            target,
            self._seeds(target),
            self_id=self.self_peer.id,
            now=now,
            k=c.k,
            alpha=c.alpha,
            request_timeout=c.request_timeout,
        )
        return self._start(kind, lookup, now)

    def find_node(self, target: bytes, now: float) -> int:
        """Start a FIND_NODE for ``target`` (a peer id); returns the query id."""
        return self._find_node(QueryKind.FIND_NODE, target, now)

    def get_value(self, key: bytes, now: float, *, quorum: int | None = None) -> int:
        """Start a GET_VALUE for ``key``; our own stored copy competes but never ends it.

        ``quorum`` overrides the configured ``value_quorum`` for this query (0: ask
        all k closest, as a census of a record's replicas does).
        """
        c = self.config
        lookup = GetValueLookup(
            self._new_id(),
            key,
            self._seeds(key),
            validator=self.validator,
            self_id=self.self_peer.id,
            now=now,
            local=self.records.get(key, now=now),
            quorum=c.value_quorum if quorum is None else quorum,
            k=c.k,
            alpha=c.alpha,
            request_timeout=c.request_timeout,
        )
        return self._start(QueryKind.GET_VALUE, lookup, now)

    def get_providers(self, key: bytes, now: float, *, count: int = DEFAULT_K) -> int:
        """Start a GET_PROVIDERS for ``key``; stops once ``count`` providers are known.

        Raises:
            InvalidInput: ``count`` is negative.
        """
        c = self.config
        lookup = GetProvidersLookup(
            self._new_id(),
            key,
            self._seeds(key),
            self_id=self.self_peer.id,
            now=now,
            count=count,
            local=self.providers.get(key, now=now),
            k=c.k,
            alpha=c.alpha,
            request_timeout=c.request_timeout,
        )
        return self._start(QueryKind.GET_PROVIDERS, lookup, now)

    def put_value(
        self,
        key: bytes,
        value: bytes,
        now: float,
        *,
        targets: Sequence[Peer] | None = None,
        quorum: int | None = None,
    ) -> int:
        """Start a PUT_VALUE of ``value`` to the k closest peers of ``key`` (or ``targets``).

        The caller stores its own copy; the result lists the peers that echoed
        the record back (stored) and those that did not. ``quorum`` overrides
        the configured ``put_quorum``: once that many peers acknowledged, a
        :class:`QuorumReached` is emitted and the writes go on.

        Raises:
            InvalidInput: ``quorum`` is negative.
        """
        c = self.config
        want = c.put_quorum if quorum is None else quorum
        lookup = PutValueLookup(
            self._new_id(),
            key,
            value,
            self._seeds(key),
            self_id=self.self_peer.id,
            now=now,
            targets=targets,
            k=c.k,
            # The first round's requests carry the write: with 2q of them in flight
            # the quorum is the q-th fastest of 2q answers, not the slowest of q
            # (on a loaded network the slowest answer is several times the median).
            alpha=max(c.alpha, 2 * want) if c.eager_store else c.alpha,
            request_timeout=c.request_timeout,
            quorum=want,
            eager=c.eager_store,
        )
        return self._start(QueryKind.PUT_VALUE, lookup, now)

    def add_provider(self, key: bytes, now: float, *, provider: Peer | None = None) -> int:
        """Start an ADD_PROVIDER announcing ``provider`` (default: ourselves) for ``key``.

        It writes while it walks (``eager_store``) and has no quorum: nobody waits
        for an announcement.
        """
        c = self.config
        lookup = AddProviderLookup(
            self._new_id(),
            key,
            provider or self.self_peer,
            self._seeds(key),
            self_id=self.self_peer.id,
            now=now,
            k=c.k,
            alpha=c.alpha,
            request_timeout=c.request_timeout,
            eager=c.eager_store,
        )
        return self._start(QueryKind.ADD_PROVIDER, lookup, now)

    def bootstrap(self, now: float) -> int:
        """Look ourselves up, then refresh every stale bucket (as separate REFRESH queries).

        The table must already hold at least one server (a bootstrap peer the
        driver connected to and reported with ``peer_seen(..., is_server=True)``).

        Raises:
            InvalidInput: the routing table is empty.
        """
        if not len(self.table):
            raise InvalidInput("bootstrap needs at least one known server in the routing table")
        return self._find_node(QueryKind.BOOTSTRAP, self.self_peer.id, now)

    def refresh(self, now: float) -> list[int]:
        """Start one FIND_NODE per stale bucket; returns their query ids."""
        ids = []
        for target in self.table.buckets_needing_refresh(now, self.rng):
            self.table.mark_refreshed(key_of(target), now)
            ids.append(self._find_node(QueryKind.REFRESH, target, now))
        return ids

    def cancel(self, query_id: int, now: float) -> None:
        """Stop a running query; its :class:`QueryDone` (partial result) is still emitted."""
        if query_id in self._queries:
            self._drive(query_id, Cancel(), now)

    # -- the loop -------------------------------------------------------------------------

    def poll(self, now: float) -> list[CoordinatorAction]:
        """Time out overdue requests, then hand over every pending action."""
        for query_id, (_, lookup) in list(self._queries.items()):
            deadline = lookup.next_deadline()
            if deadline is not None and deadline <= now:
                self._drive(query_id, Poll(), now)
        out, self._outbox = self._outbox, []
        return out

    def _offer(self, peer: Peer, *, is_server: bool, now: float) -> None:
        ping = self.table.add(peer, is_server=is_server, now=now)
        if isinstance(ping, PingPeer):
            self._send(None, ping.peer, Message(MessageType.PING))

    def _send(self, query_id: int | None, peer: Peer, message: Message) -> None:
        request_id = self._next_request_id
        self._next_request_id += 1
        self._requests[request_id] = _Pending(query_id, peer)
        self._outbox.append(OutboundRequest(request_id, peer, message, query_id))

    def _drive(self, query_id: int, event: LookupEvent, now: float) -> None:
        entry = self._queries.get(query_id)
        if entry is None:
            return
        kind, lookup = entry
        action = lookup.advance(event, now)
        while isinstance(action, SendRequest):
            self._send(query_id, action.peer, action.message)
            action = lookup.advance(Poll(), now)
        if query_id not in self._quorum_told:
            partial = lookup.quorum_result(now)
            if partial is not None:
                self._quorum_told.add(query_id)
                self._outbox.append(QuorumReached(query_id, kind, partial))
        if isinstance(action, Finished):
            self._quorum_told.discard(query_id)
            del self._queries[query_id]
            self.table.mark_refreshed(key_of(lookup.target), now)
            self._outbox.append(QueryDone(query_id, kind, action.result))
            if kind is QueryKind.BOOTSTRAP:
                self.refresh(now)
