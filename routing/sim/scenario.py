"""Build and run simulated networks: the helpers tests and ``benchmarks/bench_sim.py`` share.

A :class:`Simulation` creates ``n`` nodes, each with the production
:class:`~routing.coordinator.Coordinator`, record store and provider store, on
one :class:`~routing.sim.network.SimNetwork` and fake clock. Setting up tens of
thousands of nodes through real bootstrap lookups would take long, so
:meth:`Simulation.fill_tables` fills every routing table "as if bootstrapped"
from global knowledge: for each bucket range of a node, up to ``k`` random
members of that range, added through the table's own ``add``. After that,
everything (lookups, pings, stores) runs through the production code.

Invariants:
* A simulation is a pure function of its seed and the calls made on it: node
  ids, latencies, table contents, loss and vanishing are all drawn from
  ``random.Random`` instances derived from the seed.
* Nodes are identified by 38-byte ids shaped like Ed25519 libp2p peer ids.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable, Iterable, Sequence

from identity.errors import InvalidInput
from routing.coordinator import Coordinator, CoordinatorConfig, QueryDone
from routing.keyspace import KEY_BITS, key_of
from routing.lookup import ClosestPeers, ProvidersResult, PutResult, ValueResult
from routing.schedule import Schedule
from routing.sim.loop import EventLoop
from routing.sim.network import LinkModel, SimNetwork
from routing.sim.node import Behavior, SimNode
from routing.sim.validator import SimValidator
from routing.stores import ProviderStore, RecordStore
from routing.wire import Peer

__all__ = ["SIM_CONFIG", "SIM_EPOCH", "Simulation", "random_peer_id"]

SIM_EPOCH = 1_700_000_000.0
"""Fake time at which simulations start (a realistic Unix time, for validators)."""

SIM_CONFIG = CoordinatorConfig(request_timeout=1.0, ping_timeout=1.0)
"""Kademlia defaults, with a 1 s request timeout (simulated links take < 0.1 s)."""

_PEER_ID_PREFIX = b"\x00\x24\x08\x01\x12\x20"
_MAX_QUERY_TIME = 3600.0


def random_peer_id(rng: random.Random) -> bytes:
    """A random 38-byte id shaped like an Ed25519 libp2p peer id."""
    return _PEER_ID_PREFIX + rng.randbytes(32)


class Simulation:
    """A simulated network of :class:`SimNode` (see the module docstring)."""

    def __init__(
        self,
        n: int,
        *,
        seed: int,
        link: LinkModel | None = None,
        config: CoordinatorConfig = SIM_CONFIG,
        identify: bool = True,
        behaviors: dict[int, Behavior] | None = None,
        secret: bytes = b"datanet-sim",
    ) -> None:
        """Create ``n`` nodes with empty routing tables.

        Args:
            n: number of nodes.
            seed: the seed everything random derives from.
            link: the latency/loss model.
            config: the Kademlia parameters of every node.
            identify: nodes learn requesters as kad servers (as identify tells a real node).
            behaviors: liar behaviours by node index (others are honest).
            secret: the key honest publishers "sign" simulator values with.

        Raises:
            InvalidInput: ``n`` < 1.
        """
        if n < 1:
            raise InvalidInput("a simulation needs at least one node")
        self.seed = seed
        self.rng = random.Random(seed)
        self.config = config
        self.loop = EventLoop(SIM_EPOCH)
        self.validator = SimValidator(secret)
        self.network = SimNetwork(self.loop, random.Random(self.rng.getrandbits(64)), link)
        behaviors = behaviors or {}
        self.nodes: list[SimNode] = []
        self._index: dict[bytes, int] = {}
        for i in range(n):
            peer = Peer(random_peer_id(self.rng), (b"/sim/%d" % i,))
            coordinator = Coordinator(
                peer,
                validator=self.validator,
                records=RecordStore(self.validator, writes_per_peer_per_minute=10_000),
                providers=ProviderStore(adds_per_peer_per_minute=10_000),
                rng=random.Random(self.rng.getrandbits(64)),
                config=config,
            )
            node = SimNode(
                self.network,
                coordinator,
                behavior=behaviors.get(i, Behavior.HONEST),
                identify=identify,
            )
            self._index[peer.id] = i
            self.nodes.append(node)
        self._sorted_keys: list[int] = []
        self._sorted_nodes: list[SimNode] = []

    # -- topology -------------------------------------------------------------------------

    def _sort(self) -> None:
        pairs = sorted((key_of(node.peer.id), i) for i, node in enumerate(self.nodes))
        self._sorted_keys = [k for k, _ in pairs]
        self._sorted_nodes = [self.nodes[i] for _, i in pairs]

    def fill_tables(self, per_bucket: int | None = None) -> None:
        """Fill every routing table "as if bootstrapped", from global knowledge.

        For each node and each bucket range (the keys sharing exactly ``cpl``
        leading bits with the node), up to ``per_bucket`` (default ``k``)
        random members of the range are added as servers. Each member then
        counts as connected to the node (it already knows the node from the
        bootstrap), so the node's first request does not set off a new identify.
        """
        self._sort()
        keys = self._sorted_keys
        members = self._sorted_nodes
        limit = per_bucket or self.config.k
        now = self.loop.now
        for node in self.nodes:
            rng = random.Random(self.rng.getrandbits(64))
            table = node.coordinator.table
            mine = table.self_key
            for cpl in range(KEY_BITS):
                shift = KEY_BITS - 1 - cpl
                lo = ((mine >> shift) ^ 1) << shift
                i = bisect.bisect_left(keys, lo)
                j = bisect.bisect_left(keys, lo + (1 << shift))
                if j > i:
                    for idx in rng.sample(range(i, j), min(limit, j - i)):
                        member = members[idx]
                        table.add(member.peer, is_server=True, now=now)
                        member.identified(node.peer.id)
                own_lo = (mine >> shift) << shift
                own_i = bisect.bisect_left(keys, own_lo)
                own_j = bisect.bisect_left(keys, own_lo + (1 << shift))
                if own_j - own_i <= 1:
                    break

    def join(self, node: SimNode, via: SimNode) -> QueryDone:
        """Bootstrap ``node`` through the real protocol, knowing only ``via``.

        The node learns ``via`` as a server (as after dialling a configured
        bootstrap peer), runs :meth:`Coordinator.bootstrap` (a self-lookup, then
        one refresh lookup per stale bucket) and the network runs until every
        lookup it started is over.

        Raises:
            InvalidInput: the bootstrap did not finish within an hour of fake time.
        """
        node.coordinator.peer_seen(via.peer, is_server=True, now=self.loop.now)
        done = self.run(node, lambda c, now: c.bootstrap(now))
        if not self.loop.run_until(
            lambda: not node.coordinator.running(), max_time=self.loop.now + _MAX_QUERY_TIME
        ):
            raise InvalidInput("bucket refresh did not finish within an hour of fake time")
        return done

    def join_all(self) -> None:
        """Build the network by real bootstraps: node ``i`` joins through node ``i - 1``.

        Slower than :meth:`fill_tables` (every node runs a dozen lookups) but
        exercises bootstrap and refresh end to end.
        """
        for prev, node in zip(self.nodes, self.nodes[1:], strict=False):
            self.join(node, prev)

    def node(self, peer_id: bytes) -> SimNode:
        """The node with this id.

        Raises:
            InvalidInput: no such node.
        """
        try:
            return self.nodes[self._index[peer_id]]
        except KeyError:
            raise InvalidInput("no simulated node has this id") from None

    def alive(self) -> list[SimNode]:
        """Nodes that have not vanished."""
        return [n for n in self.nodes if not n.vanished]

    def vanish(self, fraction: float, *, keep: Iterable[SimNode] = ()) -> list[SimNode]:
        """Make ``fraction`` of all nodes vanish without notice (counting earlier ones).

        Args:
            fraction: the share of all nodes that should be gone afterwards.
            keep: nodes that must stay (e.g. the ones issuing lookups).

        Returns:
            The nodes that vanished now.

        Raises:
            InvalidInput: ``fraction`` is not in ``[0, 1)``.
        """
        if not 0 <= fraction < 1:
            raise InvalidInput("fraction must be in [0, 1)")
        kept = {n.peer.id for n in keep}
        gone_already = sum(1 for n in self.nodes if n.vanished)
        wanted = round(fraction * len(self.nodes)) - gone_already
        pool = [n for n in self.nodes if not n.vanished and n.peer.id not in kept]
        chosen = self.rng.sample(pool, max(0, min(wanted, len(pool))))
        for node in chosen:
            node.vanish()
        return chosen

    def true_closest(self, target: bytes, count: int, *, alive_only: bool = True) -> list[bytes]:
        """The ids of the ``count`` nodes nearest to ``target`` (global knowledge)."""
        t = key_of(target)
        pool = [n for n in self.nodes if not (alive_only and n.vanished)]
        pool.sort(key=lambda n: key_of(n.peer.id) ^ t)
        return [n.peer.id for n in pool[:count]]

    # -- maintenance and time -------------------------------------------------------------

    def start_maintenance(self, **intervals: float) -> None:
        """Run the production maintenance :class:`~routing.schedule.Schedule` on every node.

        Args:
            intervals: :class:`~routing.schedule.Schedule` interval overrides
                (e.g. ``republish_interval=600``); the defaults are production's.
        """
        for node in self.nodes:
            node.start_maintenance(Schedule(self.loop.now, **intervals))

    def run_for(self, seconds: float) -> None:
        """Let ``seconds`` of fake time pass, running everything due meanwhile."""
        self.loop.run(until=self.loop.now + seconds)

    # -- running operations -----------------------------------------------------------------

    def run(self, node: SimNode, operation: Callable[[Coordinator, float], int]) -> QueryDone:
        """Start one operation on ``node`` and run the network until it is done.

        Raises:
            InvalidInput: the operation did not finish within an hour of fake time.
        """
        return self.run_many([(node, operation)])[0]

    def run_many(
        self, operations: Sequence[tuple[SimNode, Callable[[Coordinator, float], int]]]
    ) -> list[QueryDone]:
        """Start several operations at the same fake instant and run until all are done.

        Raises:
            InvalidInput: some operation did not finish within an hour of fake time.
        """
        results: list[QueryDone | None] = [None] * len(operations)
        remaining = [len(operations)]

        def collector(slot: int) -> Callable[[QueryDone], None]:
            def done(result: QueryDone) -> None:
                results[slot] = result
                remaining[0] -= 1

            return done

        for slot, (node, operation) in enumerate(operations):
            node.start(operation, collector(slot))
        if not self.loop.run_until(
            lambda: remaining[0] == 0, max_time=self.loop.now + _MAX_QUERY_TIME
        ):
            raise InvalidInput("simulated operations did not finish within an hour of fake time")
        return [r for r in results if r is not None]

    def find_node(self, node: SimNode, target: bytes) -> ClosestPeers:
        """Run a FIND_NODE from ``node``."""
        result = self.run(node, lambda c, now: c.find_node(target, now)).result
        assert isinstance(result, ClosestPeers)
        return result

    def get_value(self, node: SimNode, key: bytes) -> ValueResult:
        """Run a GET_VALUE from ``node``."""
        result = self.run(node, lambda c, now: c.get_value(key, now)).result
        assert isinstance(result, ValueResult)
        return result

    def get_providers(self, node: SimNode, key: bytes, *, count: int = 20) -> ProvidersResult:
        """Run a GET_PROVIDERS from ``node``."""
        result = self.run(node, lambda c, now: c.get_providers(key, now, count=count)).result
        assert isinstance(result, ProvidersResult)
        return result

    def publish(self, node: SimNode, key: bytes, value: bytes) -> PutResult:
        """Store ``value`` on ``node`` itself, then PUT_VALUE it to the k closest peers.

        With maintenance running, ``node`` republishes it from then on.
        """
        node.own_value(key, value)
        result = self.run(node, lambda c, now: c.put_value(key, value, now)).result
        assert isinstance(result, PutResult)
        return result

    def provide(self, node: SimNode, key: bytes) -> PutResult:
        """Announce ``node`` as a provider of ``key`` to the k closest peers.

        With maintenance running, ``node`` re-provides it from then on.
        """
        node.own_provider(key)
        result = self.run(node, lambda c, now: c.add_provider(key, now)).result
        assert isinstance(result, PutResult)
        return result
