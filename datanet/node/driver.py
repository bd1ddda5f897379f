"""The node: the routing state machines driven over a real libp2p host.

One :class:`Node` per process. It owns the pure parts (the Kademlia
:class:`~routing.coordinator.Coordinator` with its record and provider stores)
and the I/O parts (the :mod:`datanet.p2p` host, the SQLite :class:`Storage` and
:class:`Catalog`), and carries out what the coordinator asks for:

* a **driver** task polls the coordinator and sends each ``OutboundRequest`` in
  its own task, reporting exactly one outcome per request;
* the kad stream handler answers inbound requests with the coordinator;
* peer events from the host feed the routing table (only DHT servers) and the
  address book;
* a **maintenance** task carries out what the pure maintenance
  :class:`~routing.schedule.Schedule` hands out: expire the stores and the
  address book, refresh stale buckets, republish own values, re-provide;
* a **put** (publish, republish) answers once ``dht.put_quorum`` peers stored
  the record; its other writes go on in a background task of the node's
  nursery (:meth:`Node._put`), and a republish writes straight to the closest
  peers the last full put found while they are fresh (``CLOSEST_MAX_AGE``);
* every value the record store accepts (publish, ``routing put``, inbound
  PUT_VALUE) reaches :meth:`Node._on_records_accepted` through the store's
  change sink, right after it was made durable: it keeps the schedule's list of
  own values current and indexes descriptors with :meth:`Node._index`, the one
  way into the catalog (a replica fetched by a lookup goes there too).

Invariants:
* The coordinator is only touched from trio tasks of this node (one thread),
  and after every event the driver is woken so new actions go out at once.
* At most ``MAX_BACKGROUND_PUTS`` puts are under way at once (a put beyond
  waits for a slot); their background tasks never raise, and a put's answer
  never counts more acknowledgements than arrived.
* ``now`` is wall-clock Unix seconds everywhere (stores and certificates use it);
  coordinator deadlines are converted to trio's clock only to sleep.
* Writes are persisted by the stores' sink (``Storage``) *before* they are
  acknowledged to a peer or to the API caller.
* What the node does is logged in its audit trail (:mod:`datanet.node.audit`)
  before it is acknowledged: records it publishes (``publish``/``withdraw``),
  revocation lists that change its trust store (``trust_change``), and the
  access service's entries.
"""

from __future__ import annotations

import base64
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import trio

from datanet.errors import DatanetError, DatasetWithdrawn, NotFound, ScopeError, Timeout
from datanet.node.access import AccessService
from datanet.node.antientropy import AntiEntropy, LedgerBackend
from datanet.node.audit import AuditTrail, PendingEntry, revocation_details
from datanet.node.config import Config
from datanet.node.feed import CatalogFeed
from datanet.node.gossip import CATALOG_TOPIC, GossipDriver
from datanet.node.ledger import Ledger
from datanet.node.metrics import MetricSources, NodeMetrics
from datanet.node.results import ConnectedPeer, PublishOutcome
from datanet.node.witness import WitnessService
from datanet.p2p import (
    AccessTransport,
    AuditTransport,
    GossipTransport,
    Host,
    KadServer,
    PeerConnected,
    PeerDisconnected,
    addr_from_bytes,
    addr_to_bytes,
    dialable,
    parse_peer_addr,
)
from datanet.p2p.sync import SyncService
from datanet.records.audit import (
    EntryKind,
    JsonValue,
    decode_receipt,
    open_cosignature,
    open_tree_head,
)
from datanet.records.deprecation import deprecation_for, sign_deprecation
from datanet.records.descriptor import (
    VerifiedDescriptor,
    decode_descriptor_unverified,
    verify_descriptor,
)
from datanet.records.ids import DHT_NAMESPACE, DatasetId
from datanet.records.ledger import RecordKind, record_kind, verify_ledger_record
from datanet.records.validators import default_validator
from datanet.store.access import AccessStore
from datanet.store.catalog import Catalog, SearchFilters, SearchPage
from datanet.store.db import PEER_MAX_AGE, Storage
from datanet.store.witness import WitnessStore
from identity.certs import Revocation, Role, TrustStore, parse_certificate
from identity.keys import KeyPair, OrgId, PeerId
from routing.access import MAX_HOPS
from routing.coordinator import (
    Coordinator,
    CoordinatorConfig,
    OutboundRequest,
    QueryDone,
    QuorumReached,
)
from routing.gossip.router import ValidationResult
from routing.lookup import ClosestPeers, LookupResult, ProvidersResult, PutResult, ValueResult
from routing.records import namespace_of
from routing.schedule import (
    MAINTENANCE_INTERVAL,
    REPUBLISH_INTERVAL,
    Expire,
    RefreshBuckets,
    Reprovide,
    Republish,
    Schedule,
)
from routing.stores import ProviderStore, RecordStore, StoredRecord, StrangerQuotas
from routing.wire import Message, Peer, expects_response
from routing.witness import WITNESSES_PER_LOG, is_witness, witness_key

if TYPE_CHECKING:
    from trio_typing import TaskStatus

__all__ = ["Node"]

log = logging.getLogger("datanet.node")

#: How long one operation (a whole lookup) may take before it is cancelled.
QUERY_TIMEOUT = 30.0
#: Address-book peers dialled at start when no bootstrap peer answers.
ADDRESS_BOOK_DIALS = 20
#: An isolated node (empty routing table) tries to join again after this many
#: seconds, doubling up to MAINTENANCE_INTERVAL.
REJOIN_FIRST_DELAY = 1.0
#: How often a publisher node checks that its organization's datasets published by
#: other nodes of the org still have a reachable publisher (org keep-alive).
KEEPALIVE_INTERVAL = 600.0
#: Puts under way at once, at most (answered at their quorum, other writes still
#: going on); a publish beyond this waits for one of them to end.
MAX_BACKGROUND_PUTS = 16
#: A republish writes straight to the closest peers the last full put of the key
#: found, when they were found less than this long ago (else it walks again).
#: 1.5 republish intervals: every other republish walks the network.
CLOSEST_MAX_AGE = 1.5 * REPUBLISH_INTERVAL
#: Closest sets remembered, at most (one per own key; the oldest goes first).
MAX_CLOSEST_SETS = 10_000
#: Our audit heads go to this many peers beyond the WITNESSES_PER_LOG nearest to
#: our witness key: each peer decides from its own routing table whether it is a
#: witness, and tables differ a little (docs/witnessing.md).
ANNOUNCE_MARGIN = 4
#: DHT namespaces whose values are ledger records (the complete catalog's input).
_LEDGER_NAMESPACES = frozenset({"dn", "dn-org", "dn-rev", "dn-grev"})


def _now() -> float:
    return time.time()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _key_text(key: bytes) -> str:
    """``key`` as text for a message: UTF-8 when printable, else its escaped form (≤ 80 bytes)."""
    text = key[:80].decode("utf-8", "backslashreplace")
    if not text.isprintable():
        text = ascii(key[:80])[2:-1]
    return text + ("…" if len(key) > 80 else "")


class _RecordSink:
    """The record store's sink: the database first (durability), then the node.

    The store calls it before applying a change in memory; if the database
    write raises, the node hears nothing and the store stays unchanged.
    """

    def __init__(
        self,
        storage: Storage,
        accepted: Callable[[Sequence[StoredRecord], Sequence[bytes]], None],
    ) -> None:
        self._storage = storage
        self._accepted = accepted

    def records_changed(self, upserted: Sequence[StoredRecord], removed: Sequence[bytes]) -> None:
        self._storage.records_changed(upserted, removed)
        self._accepted(upserted, removed)


class _PutWaiter:
    """One put under way: answered at its quorum (or at its end), done at its end."""

    def __init__(self) -> None:
        self.answered = trio.Event()
        self.done = trio.Event()
        self.first: PutResult | None = None
        self.final: PutResult | None = None

    def answer(self, result: LookupResult) -> None:
        if self.first is None and isinstance(result, PutResult):
            self.first = result
        self.answered.set()

    def finish(self, result: LookupResult) -> None:
        self.answer(result)
        if isinstance(result, PutResult):
            self.final = result
        self.done.set()


class Node:
    """A running datanet node; create it with :func:`open_node`.

    Args:
        key: the node's key (its peer id).
        host: the started libp2p host.
        storage: the node's database.
        catalog: the searchable catalog of verified descriptors.
        trust: the trust store records are verified against.
        config: the node's configuration.
        org: the organization of this node's certificate, if installed.
        rng: randomness for bucket refresh targets.
        chain: this node's membership chain (it signs deprecations with it).
        access: the access store (requests, grants); access requests are served
            only when it is given.
        access_details: the operator's optional ``access-details.toml``.
        audit: the node's audit trail (what it did, under signed heads); None: nothing is logged.
        witness_store: where witnessed heads and alarms are kept; other
            organizations' audit logs are witnessed only when it is given.
    """

    def __init__(
        self,
        *,
        key: KeyPair,
        host: Host,
        storage: Storage,
        catalog: Catalog,
        trust: TrustStore,
        config: Config,
        org: OrgId | None,
        rng: random.Random,
        chain: Sequence[bytes] = (),
        access: AccessStore | None = None,
        access_details: Path | None = None,
        audit: AuditTrail | None = None,
        witness_store: WitnessStore | None = None,
    ) -> None:
        self._key = key
        self.audit = audit
        self._host = host
        self._storage = storage
        self._catalog = catalog
        self._trust = trust
        self._config = config
        self._org = org
        self._chain = tuple(chain)
        self._rng = rng
        self.validator = default_validator(trust)
        self.schedule = Schedule(_now())
        self.records = RecordStore(
            self.validator,
            max_total_bytes=config.limits.record_store_bytes,
            sink=_RecordSink(storage, self._on_records_accepted),
        )
        # Provider keys (multihashes) of the valid /dn/ records held: a stranger's
        # provider record for any other key counts against a lower quota.
        self._known_provider_keys: set[bytes] = set()
        self.providers = ProviderStore(
            sink=storage,
            stranger_quotas=StrangerQuotas(
                per_peer=config.dht.stranger_providers_per_peer,
                per_address=config.dht.stranger_providers_per_address,
                total=config.dht.stranger_providers_total,
            ),
            known_key=self._known_provider_keys.__contains__,
        )
        self_peer = Peer(key.peer_id.to_bytes(), self._own_addrs())
        self.coordinator = Coordinator(
            self_peer,
            validator=self.validator,
            records=self.records,
            providers=self.providers,
            rng=rng,
            config=CoordinatorConfig(
                request_timeout=config.limits.request_timeout,
                value_quorum=config.dht.value_quorum,
                put_quorum=config.dht.put_quorum,
                eager_store=True,
            ),
        )
        self._waiters: dict[int, tuple[trio.Event, list[LookupResult]]] = {}
        self._puts: dict[int, _PutWaiter] = {}
        self._put_slots = trio.Semaphore(MAX_BACKGROUND_PUTS)
        # Own key -> (when found, the k closest the last full put wrote to).
        self._closest_sets: dict[bytes, tuple[float, tuple[Peer, ...]]] = {}
        #: Puts by how they went: ``answered_early`` (at the quorum, writes still
        #: under way), ``completed``, ``timed_out``, ``direct`` (a republish to a
        #: fresh closest set, no walk), ``walked``.
        self.put_counts: Counter[str] = Counter()
        self._wake = trio.Event()
        self._latency: dict[bytes, float] = {}
        self._started_at = _now()
        self._nursery: trio.Nursery | None = None
        # The complete catalog: one ledger fed by gossip, anti-entropy and the DHT.
        self.keepalive_interval = KEEPALIVE_INTERVAL
        self.feed = CatalogFeed()
        self.ledger = Ledger(
            catalog=catalog,
            storage=storage,
            trust=trust,
            feed=self.feed,
            clock=_now,
            on_revocation=self._revocation_applied,
        )
        self.gossip = GossipDriver(
            key.peer_id.to_bytes(),
            transport=GossipTransport(host),
            ledger=self.ledger,
            rng=rng,
            clock=_now,
        )
        self.antientropy = AntiEntropy(
            SyncService(host, LedgerBackend(self.ledger)),
            peers=host.connected_peers,
            disconnect=host.disconnect,
            rng=rng,
        )
        self.access: AccessService | None = None
        if access is not None:
            self.access = AccessService(
                key=key,
                chain=self._chain,
                transport=AccessTransport(host, max_hops=MAX_HOPS),
                store=access,
                storage=storage,
                trust=trust,
                descriptor_of=self.resolve,
                addrs_of=self._addrs_for_access,
                publish=self.publish,
                revoked=lambda: frozenset(self.ledger.revoked_grants),
                details_file=access_details,
                clock=_now,
                audit=audit,
            )
        # Witnessing (docs/witnessing.md); the node's audit trail is attached with
        # ``self.witness.attach(trail)`` so its heads are announced and its log served.
        self.witness: WitnessService | None = None
        if witness_store is not None:
            self.witness = WitnessService(
                key=key,
                chain=self._chain,
                org=org,
                trust=trust,
                store=witness_store,
                transport=AuditTransport(host),
                addrs_of=self._addrs_for_access,
                announce_to=self._witness_candidates,
                responsible=self._witnesses_log,
                clock=_now,
                trail=audit,
            )
        self.metrics = NodeMetrics(self._metric_sources())

    # -- identity -------------------------------------------------------------------

    @property
    def peer_id(self) -> PeerId:
        """This node's peer id."""
        return self._key.peer_id

    @property
    def org(self) -> OrgId | None:
        """The organization of this node's certificate, if installed."""
        return self._org

    @property
    def host(self) -> Host:
        """The node's libp2p host (for diagnostics and adversarial tests)."""
        return self._host

    def listen_addrs(self) -> list[str]:
        """Full multiaddrs (with ``/p2p/``) the node listens on."""
        return self._host.listen_addrs()

    def _own_addrs(self) -> tuple[bytes, ...]:
        out = []
        for addr in self._host.listen_addrs():
            head, _, _ = addr.rpartition("/p2p/")
            out.append(addr_to_bytes(head or addr))
        return tuple(out)

    def peers(self) -> list[ConnectedPeer]:
        """Connected peers."""
        out = []
        for peer in self._host.connected_peers():
            org = self._host.peer_org(peer)
            out.append(
                ConnectedPeer(
                    peer,
                    tuple(self._host.peer_addrs(peer)),
                    org if isinstance(org, OrgId) else None,
                    self._latency.get(peer.to_bytes()),
                )
            )
        return out

    # -- running ----------------------------------------------------------------------

    async def _run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._host.kad.set_handler(self._handle_kad)
            self.ledger.load()
            self.gossip.start(already_connected=self._host.connected_peers())
            events = self._host.subscribe()
            nursery.start_soon(self._peer_events, events)
            nursery.start_soon(self._driver)
            nursery.start_soon(self.gossip.run)
            if self.access is not None:
                self.access.start()
                nursery.start_soon(self.access.run)
            if self.audit is not None:
                nursery.start_soon(self.audit.run)
            if self.witness is not None:
                self.witness.start()
                nursery.start_soon(self.witness.run)
            self._restore()
            await self._join()
            nursery.start_soon(self._maintenance)
            nursery.start_soon(self.antientropy.run)
            nursery.start_soon(self._keep_alive)
            task_status.started()

    def _restore(self) -> None:
        now = _now()
        self.records.restore(self._storage.load_records(), now=now)
        for held in self.records.entries():
            self._note_provider_key(held.key, known=True)
        self.providers.restore(self._storage.load_providers(), now=now)
        # The network may have lost our records while we were down: put them again at once.
        for record in self.records.own_records(now):
            self.schedule.add_value(record.key, now, republish_now=True)
            self._index(record.key, record.value)
        for entry in self.providers.own_entries(now):
            self.schedule.add_provider(entry.key, now, reprovide_now=True)
        for own in self._storage.load_own_descriptors():
            try:
                provider_key = DatasetId.from_dht_key(own.key).provider_key()
            except DatanetError:
                continue  # a damaged row: its value is still republished
            self.schedule.add_provider(provider_key, now, reprovide_now=True)

    async def _join(self) -> None:
        """Connect to the bootstrap peers, else the address book, then look ourselves up.

        The address book (peers seen as DHT servers before, persisted in SQLite)
        is dialled when no bootstrap peer is configured *or none answered*, so a
        restarted node rejoins while its bootstrap peers are down.
        """
        tried: set[bytes] = {self.peer_id.to_bytes()}
        bootstrap = list(self._config.network.bootstrap)
        async with trio.open_nursery() as nursery:
            for addr in bootstrap:
                try:
                    peer, transport = parse_peer_addr(str(addr))
                except DatanetError as exc:
                    log.warning("bad bootstrap address", extra={"kv": {"error": str(exc)}})
                    continue
                if peer.to_bytes() in tried:
                    continue
                tried.add(peer.to_bytes())
                nursery.start_soon(self._dial, peer, [transport])
        if not len(self.coordinator.table):
            async with trio.open_nursery() as nursery:
                for entry in self._storage.load_peers(limit=ADDRESS_BOOK_DIALS + len(tried)):
                    if entry.peer_id in tried or not entry.addrs:
                        continue
                    tried.add(entry.peer_id)
                    try:
                        peer = PeerId.from_bytes(entry.peer_id)
                    except DatanetError:
                        continue
                    addrs = dialable(entry.addrs)
                    if addrs:
                        nursery.start_soon(self._dial, peer, addrs)
        if len(self.coordinator.table):
            try:
                await self._query("bootstrap", self.coordinator.bootstrap)
            except DatanetError as exc:
                log.warning("bootstrap lookup failed", extra={"kv": {"error": str(exc)}})

    async def _dial(self, peer: PeerId, addrs: Sequence[str]) -> None:
        try:
            with trio.fail_after(10):
                await self._host.connect(peer, addrs)
            # Bootstrap peers are DHT servers by configuration: vouch for them now
            # rather than wait for their hello, so the self-lookup can start.
            self.coordinator.peer_seen(
                Peer(peer.to_bytes(), tuple(addr_to_bytes(a) for a in addrs)),
                is_server=True,
                now=_now(),
            )
            self._wake.set()
        except (DatanetError, trio.TooSlowError) as exc:
            log.info("dial failed", extra={"kv": {"peer": str(peer), "error": str(exc)}})

    async def _peer_events(self, events: trio.MemoryReceiveChannel[Any]) -> None:
        async for event in events:
            now = _now()
            if isinstance(event, KadServer):
                addrs = tuple(addr_to_bytes(a) for a in event.addrs)
                self.coordinator.peer_seen(
                    Peer(event.peer.to_bytes(), addrs), is_server=True, now=now
                )
                if addrs:
                    try:
                        self._storage.upsert_peer(event.peer.to_bytes(), addrs, now=now, ok=True)
                    except DatanetError as exc:
                        log.warning("address book write failed", extra={"kv": {"error": str(exc)}})
                self._wake.set()
            elif isinstance(event, PeerConnected | PeerDisconnected):
                log.debug(type(event).__name__, extra={"kv": {"peer": str(event.peer)}})

    async def _handle_kad(self, msg: Message, from_peer: bytes) -> Message | None:
        source = self._host.kad.source_of(from_peer)
        response = self.coordinator.handle_request(
            msg, from_peer=from_peer, now=_now(), source=source
        )
        self._wake.set()
        return response

    async def _driver(self) -> None:
        assert self._nursery is not None
        while True:
            for action in self.coordinator.poll(_now()):
                if isinstance(action, OutboundRequest):
                    self._nursery.start_soon(self._send, action)
                elif isinstance(action, QuorumReached):
                    put = self._puts.get(action.query_id)
                    if put is not None:
                        put.answer(action.result)
                elif isinstance(action, QueryDone):
                    put = self._puts.pop(action.query_id, None)
                    if put is not None:
                        put.finish(action.result)
                    waiter = self._waiters.pop(action.query_id, None)
                    if waiter is not None:
                        waiter[1].append(action.result)
                        waiter[0].set()
            deadline = self.coordinator.next_deadline()
            wait = 1.0 if deadline is None else max(0.0, min(1.0, deadline - _now()))
            with trio.move_on_after(wait):
                await self._wake.wait()
            self._wake = trio.Event()

    async def _send(self, action: OutboundRequest) -> None:
        peer = action.peer
        started = trio.current_time()
        try:
            # Addresses only matter for dialling. They come from other peers, so a
            # malformed one is skipped, never allowed to raise out of this task.
            addrs = [] if self._host.is_connected(peer.id) else dialable(peer.addrs)
            if expects_response(action.message.type):
                response = await self._host.kad.request(peer.id, action.message, addrs=addrs)
            else:
                await self._host.kad.send(peer.id, action.message, addrs=addrs)
                response = None
        except DatanetError as exc:
            log.debug("kad request failed", extra={"kv": {"error": str(exc)}})
            self.coordinator.request_failed(action.request_id, _now())
        else:
            self._latency[peer.id] = trio.current_time() - started
            self.coordinator.response_received(action.request_id, response, _now())
        self._wake.set()

    async def _query(self, kind: str, start: Callable[[float], int]) -> LookupResult:
        """Start a coordinator query and wait for its result (cancelled after QUERY_TIMEOUT).

        ``kind`` names the operation in the lookup latency histogram (``get_value``…).
        """
        started = time.perf_counter()
        try:
            result = await self._query_once(start)
        except DatanetError as exc:
            self.metrics.observe_lookup(kind, exc.code, time.perf_counter() - started)
            raise
        self.metrics.observe_lookup(kind, "ok", time.perf_counter() - started)
        return result

    async def _query_once(self, start: Callable[[float], int]) -> LookupResult:
        query_id = start(_now())
        done = trio.Event()
        box: list[LookupResult] = []
        self._waiters[query_id] = (done, box)
        self._wake.set()
        with trio.move_on_after(QUERY_TIMEOUT):
            await done.wait()
        if not box:
            self.coordinator.cancel(query_id, _now())
            self._wake.set()
            with trio.move_on_after(1.0):
                await done.wait()
        self._waiters.pop(query_id, None)
        if not box:
            raise Timeout(f"the DHT lookup did not finish within {QUERY_TIMEOUT:.0f} s")
        return box[0]

    async def _maintenance(self) -> None:
        assert self._nursery is not None
        rejoin_delay = REJOIN_FIRST_DELAY
        while True:
            if not len(self.coordinator.table):
                # Isolated: every join dial failed (peers down or overloaded) or every
                # peer was evicted. Try to join again soon, backing off.
                await trio.sleep(rejoin_delay)
                rejoin_delay = min(rejoin_delay * 2, MAINTENANCE_INTERVAL)
                try:
                    await self._join()
                except DatanetError as exc:
                    log.warning("rejoin failed", extra={"kv": {"error": str(exc)}})
                continue
            rejoin_delay = REJOIN_FIRST_DELAY
            await trio.sleep(max(0.0, self.schedule.next_deadline() - _now()))
            puts = self._housekeeping(_now())
            if puts:
                self._nursery.start_soon(self._republish, puts)

    def _housekeeping(self, now: float) -> list[Republish | Reprovide]:
        """Carry out the schedule's due actions that need no network; return the puts."""
        puts: list[Republish | Reprovide] = []
        for action in self.schedule.poll(now):
            try:
                if isinstance(action, Expire):
                    self.records.expire(now)
                    self.providers.expire(now)
                    self.ledger.expire(now)
                    self._storage.prune_peers(older_than=now - PEER_MAX_AGE)
                elif isinstance(action, RefreshBuckets):
                    self.coordinator.refresh(now)
                    self._wake.set()
                else:
                    puts.append(action)
            except DatanetError as exc:
                log.warning("maintenance step failed", extra={"kv": {"error": str(exc)}})
        return puts

    async def _republish(self, actions: Sequence[Republish | Reprovide]) -> None:
        """Put own values and provider announcements to the k closest again.

        A value's put answers at its quorum and finishes in the background, so
        up to ``MAX_BACKGROUND_PUTS`` values are under way at once. A value whose
        closest peers were found recently is written straight to them.
        """
        for action in actions:
            try:
                if isinstance(action, Reprovide):
                    await self._provide(action.key)
                    continue
                entry = self.records.entry(action.key)
                if entry is None or not entry.own or entry.expires_at <= _now():
                    self.schedule.remove_value(action.key)
                    self._closest_sets.pop(action.key, None)
                    continue
                await self._put(entry.key, entry.value, targets=self._fresh_closest(entry.key))
            except DatanetError as exc:
                log.info("republish failed", extra={"kv": {"error": str(exc)}})

    def _fresh_closest(self, key: bytes) -> tuple[Peer, ...] | None:
        """The closest peers of ``key`` the last full put found, if found within CLOSEST_MAX_AGE."""
        known = self._closest_sets.get(key)
        if known is None or _now() - known[0] > CLOSEST_MAX_AGE or not known[1]:
            return None
        return known[1]

    def _remember_closest(self, key: bytes, closest: tuple[Peer, ...], now: float) -> None:
        self._closest_sets.pop(key, None)
        self._closest_sets[key] = (now, closest)
        while len(self._closest_sets) > MAX_CLOSEST_SETS:
            del self._closest_sets[next(iter(self._closest_sets))]

    async def _put(
        self, key: bytes, value: bytes, *, targets: Sequence[Peer] | None = None
    ) -> PutResult:
        """Put ``value`` under ``key`` on its k closest peers (or ``targets``, no walk).

        Answers once ``dht.put_quorum`` peers acknowledged, or once every write
        ended if fewer did (no peer reachable: nothing acknowledged); the result
        says how many acknowledged (``acked``), how many the put aims at
        (``target``) and how many writes were still under way (``pending``).
        The other writes go on in a task of the node's nursery, which also
        remembers the closest set a full put found (for :meth:`_republish`).
        At most ``MAX_BACKGROUND_PUTS`` puts are under way; beyond, this waits.

        Raises:
            Timeout: no answer within ``QUERY_TIMEOUT``.
        """
        await self._put_slots.acquire()
        started = time.perf_counter()
        waiter = _PutWaiter()
        try:
            query_id = self.coordinator.put_value(key, value, _now(), targets=targets)
        except BaseException:
            self._put_slots.release()
            raise
        self._puts[query_id] = waiter
        self.put_counts["walked" if targets is None else "direct"] += 1
        self._wake.set()
        if self._nursery is None:  # not running: nobody would finish it in the background
            await self._finish_put(key, query_id, waiter, started, direct=targets is not None)
        else:
            self._nursery.start_soon(
                self._finish_put, key, query_id, waiter, started, targets is not None
            )
        await waiter.answered.wait()
        if waiter.first is None:
            raise Timeout(f"the DHT put did not finish within {QUERY_TIMEOUT:.0f} s")
        if waiter.first.pending:
            self.put_counts["answered_early"] += 1
        return waiter.first

    async def _finish_put(
        self, key: bytes, query_id: int, waiter: _PutWaiter, started: float, direct: bool = False
    ) -> None:
        """Wait for a put's last write (``QUERY_TIMEOUT`` at most), then free its slot.

        Never raises (but ``Cancelled``): its outcome is logged and counted.
        """
        try:
            with trio.move_on_after(QUERY_TIMEOUT):
                await waiter.done.wait()
            if not waiter.done.is_set():
                self.coordinator.cancel(query_id, _now())
                self._wake.set()
                with trio.move_on_after(1.0):
                    await waiter.done.wait()
            self._puts.pop(query_id, None)
            waiter.answered.set()  # a put that never answered: its caller raises Timeout
            final = waiter.final
            elapsed = time.perf_counter() - started
            if final is None:
                self.put_counts["timed_out"] += 1
                self.metrics.observe_lookup("put_value", "timeout", elapsed)
                return
            self.put_counts["completed"] += 1
            self.metrics.observe_lookup("put_value", "ok", elapsed)
            if not direct and final.closest:
                self._remember_closest(key, final.closest, _now())
            elif direct and len(final.acked) * 2 < len(final.closest):
                self._closest_sets.pop(key, None)  # most of them are gone: walk next time
            log.debug(
                "put finished",
                extra={
                    "kv": {
                        "key": _key_text(key),
                        "acked": len(final.acked),
                        "failed": len(final.failed),
                        "ms": round(elapsed * 1000, 1),
                    }
                },
            )
        except DatanetError as exc:
            log.warning("finishing a put failed", extra={"kv": {"error": str(exc)}})
        finally:
            self._put_slots.release()

    async def bootstrap(self) -> int:
        """Look ourselves up again (then refresh stale buckets) to learn peers that joined later.

        Returns:
            The routing table size once the self-lookup finished.

        Raises:
            InvalidInput: the routing table is empty (no peer to ask).
            Timeout: the lookup did not finish within ``QUERY_TIMEOUT``.
        """
        await self._query("bootstrap", self.coordinator.bootstrap)
        return len(self.coordinator.table)

    # -- catalog --------------------------------------------------------------------

    def _index(self, key: bytes, value: bytes, *, forward: bool = False) -> None:
        """Hand a DHT value the node accepted under ``key`` to the ledger.

        Descriptors, deprecations, revocation lists and org records reach the
        complete catalog through :meth:`Ledger.ingest`, like those that arrive by
        gossip and anti-entropy. With ``forward``, a record new to the ledger is
        also relayed to the gossip mesh: a publisher's DHT put can overtake its
        gossip copy, and the copy is then ignored here as "not newer", so a node
        that is the only way onward (an organization's gateway) would otherwise
        stop it. Relayed, not published: the publisher has already flooded it,
        and a flood from each of the k nodes its put reached would send most
        nodes many more copies. Never raises: the record itself is already held.
        """
        try:
            if namespace_of(key) in _LEDGER_NAMESPACES:
                intake = self.ledger.ingest(value)
                if forward and intake.result is ValidationResult.ACCEPT:
                    self.gossip.relay(value)
        except DatanetError as exc:
            log.debug("indexing a record failed", extra={"kv": {"error": str(exc)}})

    def _note_provider_key(self, key: bytes, *, known: bool) -> None:
        """Track the provider key of a ``/dn/`` record held (or no longer held)."""
        if not key.startswith(DHT_NAMESPACE):
            return
        try:
            provider_key = DatasetId.from_dht_key(key).provider_key()
        except DatanetError:
            return
        if known:
            self._known_provider_keys.add(provider_key)
        else:
            self._known_provider_keys.discard(provider_key)

    def _on_records_accepted(
        self, upserted: Sequence[StoredRecord], removed: Sequence[bytes]
    ) -> None:
        """React to a record-store change that was just made durable.

        Every value the store accepts comes through here, whichever way it came
        (publish, ``routing put``, inbound PUT_VALUE; later gossip and catalog
        sync): the schedule learns which values are this node's own, and
        descriptors are indexed into the catalog (:meth:`_index`). An own
        descriptor that was replaced by a newer one from another node of its org,
        or that expired, is no longer republished. Never raises: the change is
        already durable, and the store applies it next.
        """
        for record in upserted:
            self._note_provider_key(record.key, known=True)
            try:
                if record.own:
                    self.schedule.add_value(record.key, record.received_at)
                elif self.schedule.remove_value(record.key):
                    self._storage.delete_own_descriptor(record.key)
            except DatanetError as exc:
                log.warning("forgetting an own record failed", extra={"kv": {"error": str(exc)}})
            self._index(record.key, record.value, forward=True)
        for key in removed:
            self._note_provider_key(key, known=False)
            try:
                if self.schedule.remove_value(key):
                    self._storage.delete_own_descriptor(key)
            except DatanetError as exc:
                log.warning("forgetting an own record failed", extra={"kv": {"error": str(exc)}})

    def search(
        self,
        query: str = "",
        *,
        filters: SearchFilters = SearchFilters(),  # noqa: B008 - frozen, immutable
        limit: int = 20,
        cursor: str | None = None,
        facets: bool = True,
    ) -> SearchPage:
        """Full-text and faceted search of the local catalog (expired descriptors left out).

        Raises:
            InvalidInput: a bad query, limit or cursor (see :meth:`Catalog.search`).
        """
        return self._catalog.search(
            query, filters=filters, limit=limit, cursor=cursor, facets=facets, now=int(_now())
        )

    # -- operations -----------------------------------------------------------------

    async def publish(self, raw: bytes) -> PublishOutcome:
        """Verify, store, and put a signed descriptor on the k closest peers.

        Any other ledger record (a deprecation, a revocation list, an org record)
        is verified, stored under its DHT key and sent the same ways.

        Raises:
            DatanetError: the record is invalid or older than the one held.
        """
        if record_kind(raw) is not RecordKind.DESCRIPTOR:
            return await self._publish_record(raw)
        now = _now()
        verified = verify_descriptor(raw, self._trust, int(now))
        desc = verified.descriptor
        key = desc.dataset_id.dht_key()
        self.records.put(key, raw, now=now, from_peer=None, expires_at=verified.valid_until)
        self._storage.put_own_descriptor(
            key, raw, sequence=desc.sequence, expires_at=verified.valid_until, now=now
        )
        self._log_publish(
            EntryKind.PUBLISH,
            raw,
            {"kind": "descriptor", "dataset": str(desc.dataset_id), "sequence": desc.sequence},
        )
        self.gossip.publish(raw)  # every node within a second; the DHT put below is for lookups
        result = await self._put(key, raw)
        self._provide_soon(desc.dataset_id)
        return PublishOutcome(
            desc.dataset_id,
            desc.sequence,
            len(result.acked),
            target=result.target,
            pending=result.pending,
        )

    async def _publish_record(self, raw: bytes) -> PublishOutcome:
        """Publish a deprecation, revocation list or org record: here, by gossip, in the DHT."""
        now = _now()
        record = verify_ledger_record(raw, self._trust, int(now))
        self.records.put(
            record.key,
            raw,
            now=now,
            from_peer=None,
            expires_at=float("inf") if record.expires is None else float(record.expires),
        )
        if record.kind is RecordKind.DEPRECATION:
            self._storage.delete_own_descriptor(record.key)
        details: dict[str, JsonValue] = {
            "kind": str(record.kind),
            "key": record.key.decode("utf-8", "replace")[:256],
            "sequence": record.sequence,
        }
        if record.dataset_id is not None:
            details["dataset"] = str(record.dataset_id)
        kind = EntryKind.WITHDRAW if record.kind is RecordKind.DEPRECATION else EntryKind.PUBLISH
        self._log_publish(kind, raw, details)
        self.gossip.publish(raw)
        result = await self._put(record.key, raw)
        return PublishOutcome(
            record.dataset_id,
            record.sequence,
            len(result.acked),
            kind=str(record.kind),
            key=record.key.decode("utf-8", "replace"),
            target=result.target,
            pending=result.pending,
        )

    async def deprecate(self, dataset_id: DatasetId, *, reason: str = "") -> PublishOutcome:
        """Withdraw ``dataset_id``: sign a tombstone with this node's key and publish it.

        The tombstone's sequence is one above the newest descriptor known (here or
        in the DHT), so it wins everywhere the way a newer descriptor would.

        Raises:
            ScopeError: this node holds no publisher certificate of the dataset's org.
            NotFound: no descriptor of ``dataset_id`` is known.
        """
        cert = parse_certificate(self._chain[0]) if self._chain else None
        if cert is None or cert.org != dataset_id.org or Role.PUBLISHER not in cert.roles:
            raise ScopeError(
                f"this node holds no publisher certificate of {dataset_id.org}; "
                "only a publisher node of the dataset's organization can deprecate it"
            )
        current = await self.resolve(dataset_id)
        tombstone = deprecation_for(
            current.descriptor, node=self.peer_id, now=int(_now()), reason=reason
        )
        return await self._publish_record(sign_deprecation(tombstone, self._key, self._chain))

    def _provide_soon(self, dataset_id: DatasetId) -> None:
        """Announce this node as a provider of ``dataset_id`` in the background."""
        if self._nursery is None:
            return
        key = dataset_id.provider_key()

        async def provide() -> None:
            try:
                await self._provide(key)
            except DatanetError as exc:
                log.debug("provide failed", extra={"kv": {"error": str(exc)}})

        self._nursery.start_soon(provide)

    async def _provide(self, key: bytes) -> None:
        """Hold our own provider entry for ``key`` (durably) and announce it to the k closest.

        The own entry is what a restarted node re-provides; the schedule re-provides
        it every ``REPROVIDE_INTERVAL``.
        """
        now = _now()
        self.providers.add(key, self.coordinator.self_peer, now=now, from_peer=None)
        self.schedule.add_provider(key, now)
        await self._query("add_provider", lambda t: self.coordinator.add_provider(key, t))

    async def resolve(self, dataset_id: DatasetId, *, refresh: bool = False) -> VerifiedDescriptor:
        """The newest valid descriptor for ``dataset_id``: the catalog first, else the DHT.

        Args:
            dataset_id: what to resolve.
            refresh: skip the local catalog and ask the network.

        Raises:
            NotFound: no valid descriptor was found.
        """
        if not refresh:
            raw = self._catalog.get(str(dataset_id))
            if raw is not None:
                try:
                    return verify_descriptor(raw, self._trust, int(_now()))
                except DatanetError:
                    pass  # expired or revoked since: ask the network
            self._raise_if_deprecated(dataset_id)
        key = dataset_id.dht_key()
        result = await self._query("get_value", lambda t: self.coordinator.get_value(key, t))
        assert isinstance(result, ValueResult)
        if result.best is not None and record_kind(result.best) is RecordKind.DEPRECATION:
            self.ledger.ingest(result.best)
            self._raise_if_deprecated(dataset_id)
        if result.best is None:
            raise self._not_found(dataset_id)
        try:
            verified = verify_descriptor(result.best, self._trust, int(_now()))
        except DatanetError:
            raise self._not_found(dataset_id) from None
        self._index(key, result.best)
        self._correct(key, result)
        return verified

    def _raise_if_deprecated(self, dataset_id: DatasetId) -> None:
        withdrawal = self._catalog.withdrawal(str(dataset_id))
        if withdrawal is not None and withdrawal.reason == "deprecated":
            raise self._not_found(dataset_id)

    def _not_found(self, dataset_id: DatasetId) -> NotFound:
        """NotFound, saying why the dataset left the catalog when it did."""
        withdrawal = self._catalog.withdrawal(str(dataset_id))
        if withdrawal is None:
            return NotFound(f"no valid descriptor found for {dataset_id}")
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(withdrawal.at))
        why = {
            "deprecated": "was withdrawn by its publisher",
            "revoked": "left the catalog: its publisher's certificate was revoked",
            "expired": "left the catalog: its descriptor expired",
        }.get(withdrawal.reason, f"left the catalog ({withdrawal.reason})")
        return DatasetWithdrawn(f"{dataset_id} {why} on {when}")

    def _correct(self, key: bytes, result: ValueResult) -> None:
        """Put the best value back to peers that held an outdated copy (in the background)."""
        stale = [*result.outdated]
        if not stale or result.best is None or self._nursery is None:
            return
        best = result.best

        async def correct() -> None:
            try:
                await self._query(
                    "put_value", lambda t: self.coordinator.put_value(key, best, t, targets=stale)
                )
            except DatanetError as exc:
                log.debug("correction failed", extra={"kv": {"error": str(exc)}})

        self._nursery.start_soon(correct)

    async def routing_get(self, key: bytes) -> bytes:
        """The best valid DHT value under ``key``.

        Raises:
            NotFound: no valid value was found.
        """
        namespace_of(key)
        result = await self._query("get_value", lambda t: self.coordinator.get_value(key, t))
        assert isinstance(result, ValueResult)
        if result.best is None:
            raise NotFound(f"no valid value under {_key_text(key)}")
        self._index(key, result.best)
        self._correct(key, result)
        return result.best

    async def routing_put(self, key: bytes, value: bytes) -> int:
        """Validate and store a value here and on the k closest peers; returns replicas.

        Raises:
            DatanetError: the value is invalid for its namespace, or stale.
        """
        self.records.put(key, value, now=_now(), from_peer=None)
        result = await self._query("put_value", lambda t: self.coordinator.put_value(key, value, t))
        assert isinstance(result, PutResult)
        return len(result.acked)

    async def find_peer(self, peer: PeerId) -> list[str]:
        """Known or discovered multiaddrs of ``peer``.

        Raises:
            NotFound: the peer could not be found.
        """
        if peer == self.peer_id:
            return self.listen_addrs()
        known = self._host.peer_addrs(peer)
        if known:
            return known
        result = await self._query(
            "find_node", lambda t: self.coordinator.find_node(peer.to_bytes(), t)
        )
        assert isinstance(result, ClosestPeers)
        for found in result.closest:
            if found.id == peer.to_bytes() and dialable(found.addrs):
                return dialable(found.addrs)
        raise NotFound(f"peer {peer} was not found")

    async def find_providers(self, key: bytes, count: int) -> list[tuple[PeerId, list[str]]]:
        """Up to ``count`` providers of ``key`` with their addresses.

        ``key`` may also be a dataset id (``dn://…``): its :meth:`DatasetId.provider_key`
        is asked for, which lists the nodes that published the dataset.

        Raises:
            InvalidInput: ``key`` starts with ``dn://`` but is not a dataset id.
        """
        if key.startswith(b"dn://"):
            key = DatasetId.parse(key.decode("utf-8", "replace")).provider_key()
        result = await self._query(
            "get_providers", lambda t: self.coordinator.get_providers(key, t, count=count)
        )
        assert isinstance(result, ProvidersResult)
        out = []
        for provider in result.providers[:count]:
            try:
                out.append(
                    (PeerId.from_bytes(provider.id), [addr_from_bytes(a) for a in provider.addrs])
                )
            except DatanetError:
                continue
        return out

    async def replicas(self, dataset_id: DatasetId) -> list[tuple[PeerId, list[str], str]]:
        """Which of the k peers closest to a dataset's DHT key hold its newest descriptor.

        A full GET_VALUE (no quorum: every one of the k closest is asked); each peer
        that answered is ``current`` (holds the best valid copy), ``outdated`` (an
        older or invalid one) or ``missing`` (none). Peers that did not answer are
        not listed.
        """
        key = dataset_id.dht_key()
        result = await self._query(
            "get_value", lambda t: self.coordinator.get_value(key, t, quorum=0)
        )
        assert isinstance(result, ValueResult)
        out: list[tuple[PeerId, list[str], str]] = []
        for state, peers in (
            ("current", result.holders),
            ("outdated", result.outdated),
            ("missing", result.missing),
        ):
            for peer in peers:
                try:
                    addrs = [addr_from_bytes(a) for a in peer.addrs]
                    out.append((PeerId.from_bytes(peer.id), addrs, state))
                except DatanetError:
                    continue
        return out

    def routing_stats(self) -> Mapping[str, Any]:
        """Routing table and store statistics (JSON-safe)."""
        table = self.coordinator.table
        return {
            "routing_table_size": len(table),
            "buckets": {str(k): v for k, v in sorted(table.bucket_sizes().items())},
            "records": len(self.records),
            "record_bytes": self.records.total_bytes,
            "providers": len(self.providers),
            "running_queries": len(self.coordinator.running()),
            "outstanding_requests": self.coordinator.outstanding_requests(),
            "open_kad_streams": self._host.kad.open_streams(),
            "puts": dict(sorted(self.put_counts.items())),
            "puts_under_way": len(self._puts),
        }

    def status(self) -> Mapping[str, Any]:
        """A summary of the node's state (JSON-safe)."""
        return {
            "peer_id": str(self.peer_id),
            "org": str(self._org) if self._org else None,
            "addresses": self.listen_addrs(),
            "admission": self._config.network.admission,
            "peers": len(self._host.connected_peers()),
            "routing_table_size": len(self.coordinator.table),
            "records": len(self.records),
            "own_descriptors": len(self._storage.load_own_descriptors()),
            "catalog_size": len(self._catalog),
            "gossip_mesh": len(self.gossip.router.mesh(CATALOG_TOPIC)),
            "uptime_seconds": round(_now() - self._started_at, 3),
            "certificate": self._certificate_summary(),
            "access": None if self.access is None else self.access.stats(),
            "audit": None
            if self.audit is None
            else {
                "size": self.audit.log.size,
                "heads": self.audit.heads_signed,
                "alarms": 0 if self.witness is None else self.witness.store.alarm_count(),
                "witnessed_logs": 0 if self.witness is None else len(self.witness.witnessed()),
            },
        }

    def _certificate_summary(self) -> dict[str, Any] | None:
        """This node's membership certificate, as the dashboard and ``node status`` show it."""
        if not self._chain:
            return None
        cert = parse_certificate(self._chain[0])
        return {
            "org": str(cert.org),
            "org_name": cert.org_name,
            "serial": cert.serial,
            "roles": sorted(role.value for role in cert.roles),
            "not_before": cert.not_before,
            "not_after": cert.not_after,
        }

    # -- metrics --------------------------------------------------------------------

    def _metric_sources(self) -> MetricSources:
        """What ``GET /metrics`` reads at scrape time (docs/operators.md, "Metrics")."""
        host = self._host

        def gossip() -> Mapping[str, int]:
            transport = self.gossip.stats()["transport"]
            return {**transport, "mesh": len(self.gossip.router.mesh(CATALOG_TOPIC))}

        def audit() -> Mapping[str, int]:
            assert self.audit is not None
            alarms = 0 if self.witness is None else self.witness.store.alarm_count()
            return {"size": self.audit.log.size, "heads": self.audit.heads_signed, "alarms": alarms}

        access = self.access
        return MetricSources(
            peer_states=host.peer_states,
            routing_table_size=lambda: len(self.coordinator.table),
            kad_requests=lambda: host.kad.request_counts,
            records=lambda: (len(self.records), self.records.total_bytes),
            providers=lambda: len(self.providers),
            catalog_size=lambda: len(self._catalog),
            ledger=lambda: self.ledger.counters,
            gossip=gossip,
            sync=lambda: self.antientropy.counters,
            access=None if access is None else access.stats,
            audit=None if self.audit is None else audit,
            refused_connections=self.refused_connections,
            puts=lambda: self.put_counts,
            witness=lambda: {} if self.witness is None else self.witness.counters,
        )

    def refused_connections(self) -> Mapping[str, int]:
        """Peer connections refused so far by reason (``datanet_refused_connections_total``)."""
        return dict(self._host.refused_connections())

    def metrics_text(self) -> bytes:
        """Every metric family in the Prometheus text format (``GET /metrics``)."""
        return self.metrics.render()

    # -- the audit trail ------------------------------------------------------------

    def _audit(self) -> AuditTrail:
        if self.audit is None:
            raise NotFound("this node keeps no audit log")
        return self.audit

    def _log_publish(self, kind: EntryKind, raw: bytes, details: dict[str, JsonValue]) -> None:
        """Log a record this node publishes, durably, before it leaves the node."""
        if self.audit is not None:
            self.audit.record(kind, raw, details)

    def _revocation_applied(self, raw: bytes, rev: Revocation) -> None:
        """The ledger applied a newer revocation list: the trust store changed; log it."""
        if self.audit is None:
            return
        try:
            self.audit.record_many(
                [PendingEntry(EntryKind.TRUST_CHANGE, raw, revocation_details(rev))]
            )
        except DatanetError as exc:
            log.warning("logging a trust change failed", extra={"kv": {"error": str(exc)}})

    def audit_entries(
        self, *, since: int, kind: str | None, limit: int
    ) -> Sequence[Mapping[str, Any]]:
        """Entries of the node's audit log from index ``since``, oldest first.

        Raises:
            InvalidInput: an unknown kind or a limit out of range.
        """
        out = []
        for item in self._audit().log.entries(since=since, kind=kind, limit=limit):
            entry = item.entry
            subject = entry.subject_hash
            out.append(
                {
                    "index": item.index,
                    "kind": str(entry.kind),
                    "timestamp": entry.timestamp,
                    "details": entry.details,
                    "record": None if entry.record is None else _b64(entry.record),
                    "record_hash": None if subject is None else subject.hex(),
                    "leaf_hash": item.leaf_hash.hex(),
                }
            )
        return out

    def audit_head(self, *, fresh: bool) -> Mapping[str, Any]:
        """The latest signed tree head (a new one if entries arrived or ``fresh``).

        Raises:
            NotFound: this node has no audit log or no certificate to sign with.
        """
        trail = self._audit()
        raw = trail.head(fresh=fresh)
        head, _ = open_tree_head(raw)
        cosignatures = []
        for cosig_raw in trail.cosignatures(raw):
            cosig, env = open_cosignature(cosig_raw)
            org = parse_certificate(env.chain[0]).org if env.chain else None
            cosignatures.append(
                {
                    "witness": str(cosig.witness),
                    "org": None if org is None else str(org),
                    "at": cosig.witnessed_at,
                    "cosignature": _b64(cosig_raw),
                }
            )
        return {
            "node": str(head.node),
            "org": None if self._org is None else str(self._org),
            "size": head.size,
            "root": head.root.hex(),
            "timestamp": head.timestamp,
            "head": _b64(raw),
            "cosignatures": cosignatures,
        }

    def audit_verify(self) -> Mapping[str, Any]:
        """Recompute the whole log and check every signed head (``AuditLog.verify``)."""
        return self._audit().log.verify().to_json()

    def audit_prove(self, index: int) -> Mapping[str, Any]:
        """A receipt for entry ``index``: signed head, entry, inclusion proof, cosignatures.

        Raises:
            InvalidInput: there is no such entry.
            NotFound: no audit log, or no certificate to sign a head with.
        """
        raw = self._audit().receipt(index)
        receipt = decode_receipt(raw)
        head, _ = open_tree_head(receipt.head)
        return {
            "index": index,
            "size": head.size,
            "root": head.root.hex(),
            "receipt": _b64(raw),
        }

    def audit_alarms(self, *, limit: int) -> Sequence[Mapping[str, Any]]:
        """Alarms this node raised as a witness of other logs, newest first."""
        if self.witness is None:
            return []
        return list(self.witness.alarms(limit=limit))

    def audit_witnessed(self) -> Sequence[Mapping[str, Any]]:
        """The last head this node keeps of each other log it witnesses."""
        if self.witness is None:
            return []
        return list(self.witness.witnessed())

    # -- the complete catalog ------------------------------------------------------

    def catalog_stats(self) -> Mapping[str, Any]:
        """The catalog, gossip and anti-entropy figures (JSON-safe)."""
        return {
            "catalog": self._catalog.stats(),
            "ledger": self.ledger.stats(),
            "gossip": self.gossip.stats(),
            "sync": self.antientropy.stats(),
            "watchers": self.feed.subscribers,
        }

    async def catalog_sync(
        self, *, peers: int = 3, peer: PeerId | None = None
    ) -> Sequence[Mapping[str, Any]]:
        """Reconcile the ledger now with ``peer`` or ``peers`` random connected peers."""
        return await self.antientropy.sync_some(peers, peer)

    async def _keep_alive(self) -> None:
        """Org keep-alive, every KEEPALIVE_INTERVAL (jittered), while the node runs."""
        while True:
            await trio.sleep(self.keepalive_interval * (0.75 + self._rng.random() / 2))
            try:
                await self.keep_alive_once()
            except DatanetError as exc:
                log.info("org keep-alive failed", extra={"kv": {"error": str(exc)}})

    async def keep_alive_once(self) -> int:
        """Re-put and re-announce the org's datasets whose publishing node is unreachable.

        Only a node holding the publisher role of an organization does this, and
        only for that organization's live descriptors published by *other* nodes
        (its own are republished anyway). The original signed bytes go out
        unchanged, so nothing is re-signed on another node's behalf.

        Returns:
            How many descriptors were re-announced.
        """
        cert = parse_certificate(self._chain[0]) if self._chain else None
        if cert is None or Role.PUBLISHER not in cert.roles:
            return 0
        revived = 0
        for _dataset_id, raw in self._catalog.by_org(str(cert.org)):
            try:
                desc = decode_descriptor_unverified(raw)
            except DatanetError:
                continue
            if desc.publisher_node == self.peer_id or await self._reachable(desc.publisher_node):
                continue
            key = desc.dataset_id.dht_key()
            self.gossip.publish(raw)
            await self._query("put_value", lambda t: self.coordinator.put_value(key, raw, t))  # noqa: B023
            provider_key = desc.dataset_id.provider_key()
            self.providers.add(provider_key, self.coordinator.self_peer, now=_now(), from_peer=None)
            await self._query(
                "add_provider",
                lambda t: self.coordinator.add_provider(provider_key, t),  # noqa: B023
            )
            revived += 1
        if revived:
            log.info("org keep-alive re-announced datasets", extra={"kv": {"count": revived}})
        return revived

    async def _reachable(self, peer: PeerId) -> bool:
        """Whether ``peer`` is connected or can be dialled within a few seconds."""
        if self._host.is_connected(peer):
            return True
        try:
            with trio.fail_after(5):
                addrs = await self.find_peer(peer)
                await self._host.connect(peer, addrs)
        except (DatanetError, trio.TooSlowError):
            return False
        return True

    # -- witnessing -----------------------------------------------------------------------

    def _witnesses_log(self, log_node: bytes) -> bool:
        """Whether this node is one of the witnesses of ``log_node``'s audit log.

        The routing table's peers nearest to the log's witness key decide
        (:func:`routing.witness.is_witness`).
        """
        nearest = self.coordinator.table.closest_to(
            witness_key(log_node), WITNESSES_PER_LOG, exclude=log_node
        )
        return is_witness(self.peer_id.to_bytes(), (p.id for p in nearest), log_node)

    def _witness_candidates(self) -> list[PeerId]:
        """The peers our audit heads are announced to: the nearest to our witness key.

        ``ANNOUNCE_MARGIN`` more than witness a log, so that a peer whose table
        differs a little from ours is not missed; each decides for itself.
        """
        me = self.peer_id.to_bytes()
        nearest = self.coordinator.table.closest_to(
            witness_key(me), WITNESSES_PER_LOG + ANNOUNCE_MARGIN, exclude=me
        )
        return [PeerId.from_bytes(p.id) for p in nearest]

    # -- access requests ----------------------------------------------------------------

    async def _addrs_for_access(self, peer: PeerId) -> list[str]:
        """Addresses to reach the next hop of an access request ([] when connected)."""
        if self._host.is_connected(peer):
            return []
        known = list(self._host.peer_addrs(peer))
        entry = self._storage.peer_address(peer.to_bytes())
        if entry is not None:  # the address book outlives restarts (a gateway's members)
            known += [a for a in dialable(entry.addrs) if a not in known]
        if known:
            return known
        try:
            return [a.rpartition("/p2p/")[0] or a for a in await self.find_peer(peer)]
        except DatanetError:
            return []

    def _access(self) -> AccessService:
        if self.access is None:
            raise NotFound("this node keeps no access store; access requests are off")
        return self.access

    async def request_access(
        self, dataset_id: DatasetId, *, purpose: str, days: int, note: str, wait: float
    ) -> Mapping[str, Any]:
        """Ask the dataset's owner for access (see :class:`AccessService`)."""
        return await self._access().request_access(
            dataset_id, purpose=purpose, days=days, note=note, wait=wait
        )

    async def refresh_request(self, request_id: str, *, wait: float) -> Mapping[str, Any]:
        """Ask the owner again about a request this node sent."""
        return await self._access().refresh_request(request_id, wait=wait)

    def access_requests(
        self,
        *,
        direction: Literal["received", "sent"],
        state: str | None,
        dataset: DatasetId | None,
        limit: int,
    ) -> Sequence[Mapping[str, Any]]:
        """Requests received (the operator's inbox) or sent, newest first."""
        return self._access().requests(
            direction=direction, state=state, dataset=dataset, limit=limit
        )

    def access_request(
        self, request_id: str, *, direction: Literal["received", "sent"]
    ) -> Mapping[str, Any]:
        """One request by id or unique prefix."""
        return self._access().request_view(request_id, direction=direction)

    async def approve_request(self, request_id: str, *, days: int | None) -> Mapping[str, Any]:
        """Grant a pending request (the operator's decision)."""
        return await self._access().approve(request_id, days=days)

    async def deny_request(self, request_id: str, *, reason: str) -> Mapping[str, Any]:
        """Deny a pending request with the operator's reason."""
        return self._access().deny(request_id, reason=reason)

    def grants(
        self,
        *,
        role: Literal["issued", "received"],
        dataset: DatasetId | None,
        active: bool,
        limit: int,
    ) -> Sequence[Mapping[str, Any]]:
        """Grants issued by this node, or received by it."""
        return self._access().grants(role=role, dataset=dataset, active=active, limit=limit)

    def grant(self, grant_id: str, *, details: bool) -> Mapping[str, Any]:
        """One grant by id or unique prefix (details decrypted for a received one)."""
        return self._access().grant_view(grant_id, details=details)

    def verify_grant(self, raw: bytes, *, deep: bool) -> Mapping[str, Any]:
        """Check a grant against this node's trust store and the revocations it holds."""
        return self._access().verify(raw, deep=deep)

    async def revoke_grant(self, grant_id: str, *, reason: str) -> Mapping[str, Any]:
        """Revoke a grant this node issued and publish the revocation."""
        return await self._access().revoke(grant_id, reason=reason)

    def purposes(self) -> Sequence[Mapping[str, Any]]:
        """The purpose vocabulary requests use."""
        return AccessService.purposes()
