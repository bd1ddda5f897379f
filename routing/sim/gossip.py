"""Simulated GossipSub networks: the production router on a fake network and clock.

A :class:`GossipSimulation` creates ``n`` :class:`~routing.gossip.router.GossipRouter`
instances, connects each to about ``degree`` random peers (as a DHT routing
table's connections would), gives every link its own one-way latency (uniform in
``latency``) and runs everything on :class:`~routing.sim.loop.EventLoop`:
heartbeats, validations (instant; data starting with :data:`JUNK` are
rejected) and RPC delivery. Scenarios add:

* vanished nodes (:meth:`GossipSimulation.vanish`): they stop receiving and
  sending at once; their peers are not told and keep them in their meshes;
* adversaries (:class:`GossipBehavior`): ``JUNK`` nodes publish invalid
  messages every heartbeat interval; ``WITHHOLD`` nodes never send a full
  message (no forwarding, IWANT unanswered) but gossip IHAVE like everyone.

Per tracked message it measures, over live honest nodes: when each received it
(first accepted copy), through how many hops (the sender's hop + 1; the
publisher is hop 0), how many copies arrived, and coverage
(:class:`MessageReport`).

Invariants:
* A run is a pure function of the seed and the calls made (all randomness from
  ``random.Random`` instances derived from the seed; candidate lists are sorted
  before sampling inside the router).
* The router code is the production code; only the network and the behaviour
  of adversarial nodes' *outputs* are simulated.
"""

from __future__ import annotations

import enum
import functools
import math
import random
from collections import Counter
from dataclasses import dataclass

from identity.errors import InvalidInput
from routing.gossip.router import GossipConfig, GossipRouter, SendRpc, ValidationResult
from routing.gossip.wire import RPC, decode_rpc, encode_rpc
from routing.sim.loop import EventLoop
from routing.sim.scenario import random_peer_id

__all__ = [
    "JUNK",
    "TOPIC",
    "GossipBehavior",
    "GossipSimulation",
    "MessageReport",
]

TOPIC = "/datanet/sim/descriptors"
JUNK = b"junk:"
"""Prefix of data the simulated validator rejects."""


class GossipBehavior(enum.Enum):
    """How a simulated node behaves."""

    HONEST = "honest"
    JUNK = "junk"
    WITHHOLD = "withhold"


@dataclass(frozen=True)
class MessageReport:
    """What happened to one published message (live honest nodes only, publisher excluded)."""

    published_at: float
    receivers: int
    targets: int
    reach99: float | None
    reach_all: float | None
    hops_median: float
    hops_max: int
    copies: int

    @property
    def coverage(self) -> float:
        """Share of live honest nodes (publisher excluded) that accepted the message."""
        return self.receivers / self.targets if self.targets else 1.0


class _Track:
    """Per-message bookkeeping."""

    __slots__ = ("at", "copies", "hops", "index", "published_at", "source")

    def __init__(self, index: int, source: int, published_at: float) -> None:
        self.index = index
        self.source = source
        self.published_at = published_at
        self.at: dict[int, float] = {}
        self.hops: dict[int, int] = {source: 0}
        self.copies = 0


class GossipSimulation:
    """A simulated gossipsub network (see the module docstring)."""

    def __init__(
        self,
        n: int,
        *,
        seed: int,
        degree: int = 20,
        latency: tuple[float, float] = (0.010, 0.080),
        config: GossipConfig | None = None,
        behaviors: dict[int, GossipBehavior] | None = None,
        wire: bool = False,
    ) -> None:
        """Create and connect ``n`` routers, all subscribed to :data:`TOPIC`.

        Args:
            n: number of nodes.
            seed: the seed everything random derives from.
            degree: average number of connections per node.
            latency: bounds of the per-link one-way latency, in seconds.
            config: every router's parameters.
            behaviors: adversarial behaviours by node index (others are honest).
            wire: pass every RPC through the codec (slower; exercises it).

        Raises:
            InvalidInput: ``n`` < 2, or bad degree/latency.
        """
        if n < 2 or not 1 <= degree < n or not 0 <= latency[0] <= latency[1]:
            raise InvalidInput("need n >= 2, 1 <= degree < n, 0 <= min latency <= max")
        self.rng = random.Random(seed)
        self.loop = EventLoop()
        self.config = config or GossipConfig()
        self.behaviors = dict(behaviors or {})
        self.wire = wire
        self.ids = [random_peer_id(self.rng) for _ in range(n)]
        self.index = {pid: i for i, pid in enumerate(self.ids)}
        self.routers = [
            GossipRouter(pid, config=self.config, rng=random.Random(self.rng.random()), now=0.0)
            for pid in self.ids
        ]
        self.vanished: set[int] = set()
        self._wake_at = [math.inf] * n
        self._latency: dict[tuple[int, int], float] = {}
        self._tracks: dict[bytes, _Track] = {}
        self._junk_seq = 0
        self._remaining = 0
        self.rpcs_sent = 0
        self.messages_sent = 0
        self.junk_sent_by_honest = 0
        self._connect(degree, latency)
        for i, router in enumerate(self.routers):
            router.subscribe(TOPIC, 0.0)
            self._run(i)
        for i, behavior in sorted(self.behaviors.items()):
            if behavior is GossipBehavior.JUNK:
                self.loop.call_at(
                    self.rng.uniform(0.0, 1.0), functools.partial(self._inject_junk, i)
                )

    # -- setup -------------------------------------------------------------------

    def _connect(self, degree: int, latency: tuple[float, float]) -> None:
        n = len(self.ids)
        lo, hi = latency
        per_node = max(1, degree // 2)  # each node dials half; the other half dial it
        for i in range(n):
            for j in self.rng.sample(range(n), per_node + 1):
                if j == i:
                    continue
                key = (i, j) if i < j else (j, i)
                if key in self._latency:
                    continue
                self._latency[key] = self.rng.uniform(lo, hi)
                self.routers[i].add_peer(self.ids[j], outbound=True, now=0.0)
                self.routers[j].add_peer(self.ids[i], outbound=False, now=0.0)

    def behavior(self, i: int) -> GossipBehavior:
        """The behaviour of node ``i``."""
        return self.behaviors.get(i, GossipBehavior.HONEST)

    def honest_live(self) -> list[int]:
        """Indices of nodes that are honest and have not vanished."""
        return [
            i for i in range(len(self.ids)) if i not in self.vanished and i not in self.behaviors
        ]

    def vanish(self, fraction: float, *, protect: set[int] | None = None) -> set[int]:
        """Make a random ``fraction`` of the remaining nodes vanish without notice."""
        pool = [i for i in range(len(self.ids)) if i not in self.vanished]
        if protect:
            pool = [i for i in pool if i not in protect]
        gone = set(self.rng.sample(pool, round(fraction * len(self.ids))))
        self.vanished |= gone
        return gone

    # -- running -------------------------------------------------------------------

    def _schedule(self, i: int) -> None:
        when = self.routers[i].next_deadline()
        if when < self._wake_at[i]:
            self._wake_at[i] = when
            self.loop.call_at(when, lambda: self._wake(i, when))

    def _wake(self, i: int, when: float) -> None:
        if self._wake_at[i] != when:
            return  # superseded by an earlier wake-up
        self._wake_at[i] = math.inf
        self._run(i)

    def _run(self, i: int) -> None:
        """Poll node ``i`` and carry out its actions until it has none."""
        if i in self.vanished:
            return
        router = self.routers[i]
        now = self.loop.now
        behavior = self.behavior(i)
        actions = router.poll(now)
        while actions:
            for action in actions:
                if isinstance(action, SendRpc):
                    self._send(i, action, behavior)
                    continue
                verdict = ValidationResult.ACCEPT
                if behavior is GossipBehavior.HONEST and action.data.startswith(JUNK):
                    verdict = ValidationResult.REJECT
                if verdict is ValidationResult.ACCEPT:
                    self._accepted(i, action.data, action.from_peer, now)
                router.report_validation(action.message_id, verdict, now)
            actions = router.poll(now)
        self._schedule(i)

    def _send(self, i: int, action: SendRpc, behavior: GossipBehavior) -> None:
        rpc = action.rpc
        if behavior is GossipBehavior.WITHHOLD and rpc.publish:
            rpc = RPC(
                subscriptions=rpc.subscriptions,
                ihave=rpc.ihave,
                iwant=rpc.iwant,
                graft=rpc.graft,
                prune=rpc.prune,
            )
            if rpc.is_empty():
                return
        elif self.behaviors and behavior is GossipBehavior.HONEST:
            self.junk_sent_by_honest += sum(m.data.startswith(JUNK) for m in rpc.publish)
        j = self.index[action.peer]
        key = (i, j) if i < j else (j, i)
        self.rpcs_sent += 1
        self.messages_sent += len(rpc.publish)
        if self.wire:
            rpc = decode_rpc(encode_rpc(rpc, self.config.wire), self.config.wire)
        self.loop.call_later(self._latency[key], lambda: self._deliver(i, j, rpc))

    def _deliver(self, src: int, dst: int, rpc: RPC) -> None:
        if dst in self.vanished:
            return
        if self._tracks and dst not in self.behaviors:
            for msg in rpc.publish:
                track = self._tracks.get(msg.data)
                if track is not None:
                    track.copies += 1
        self.routers[dst].handle_rpc(self.ids[src], rpc, self.loop.now)
        self._run(dst)

    def _accepted(self, i: int, data: bytes, from_peer: bytes, now: float) -> None:
        track = self._tracks.get(data)
        if track is None or i in track.at:
            return
        sender = self.index[from_peer]
        track.hops[i] = track.hops.get(sender, 0) + 1
        if i not in self.behaviors:
            track.at[i] = now
            self._remaining -= 1

    def _inject_junk(self, i: int) -> None:
        if i in self.vanished:
            return
        self._junk_seq += 1
        data = JUNK + i.to_bytes(4, "big") + self._junk_seq.to_bytes(8, "big")
        self.routers[i].publish(TOPIC, data, self.loop.now)
        self._run(i)
        self.loop.call_later(self.config.heartbeat_interval, lambda: self._inject_junk(i))

    # -- operations ----------------------------------------------------------------

    def run_for(self, seconds: float) -> None:
        """Advance the fake clock by ``seconds``, running every event due."""
        self.loop.run(until=self.loop.now + seconds)

    def publish(self, source: int, data: bytes) -> bytes:
        """Publish tracked ``data`` from node ``source`` now; return the message id."""
        self._tracks[data] = _Track(len(self._tracks), source, self.loop.now)
        mid = self.routers[source].publish(TOPIC, data, self.loop.now)
        self._run(source)
        return mid

    def run_until_delivered(self, max_time: float) -> bool:
        """Run until every tracked message reached every live honest node, or ``max_time``."""
        live = set(self.honest_live())
        self._remaining = sum(
            len(live - {t.source}) - sum(1 for i in t.at if i in live)
            for t in self._tracks.values()
        )

        def done() -> bool:
            return self._remaining <= 0

        return self.loop.run_until(done, max_time=max(max_time, self.loop.now))

    def reports(self) -> list[MessageReport]:
        """One report per tracked message, in publishing order."""
        live = set(self.honest_live())
        out = []
        for track in self._tracks.values():
            targets = len(live - {track.source})
            times = sorted(t - track.published_at for i, t in track.at.items() if i in live)
            hops = sorted(h for i, h in track.hops.items() if i in live and i != track.source)
            need99 = math.ceil(0.99 * targets)
            out.append(
                MessageReport(
                    published_at=track.published_at,
                    receivers=len(times),
                    targets=targets,
                    reach99=times[need99 - 1] if need99 and len(times) >= need99 else None,
                    reach_all=times[-1] if times and len(times) >= targets else None,
                    hops_median=float(hops[len(hops) // 2]) if hops else 0.0,
                    hops_max=hops[-1] if hops else 0,
                    copies=track.copies,
                )
            )
        return out

    def hop_counts(self) -> Counter[int]:
        """How many (message, live honest node) deliveries took each number of hops."""
        live = set(self.honest_live())
        return Counter(
            h
            for t in self._tracks.values()
            for i, h in t.hops.items()
            if i in live and i != t.source
        )

    def router_stats(self, nodes: list[int]) -> dict[str, float]:
        """Sum of the routers' counters over ``nodes``."""
        total: Counter[str] = Counter()
        for i in nodes:
            total.update(self.routers[i].stats())
        return {k: float(v) for k, v in sorted(total.items())}
