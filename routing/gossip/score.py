"""GossipSub v1.1 peer scoring: parameters, thresholds and the per-peer counters.

The score of a peer (gossipsub v1.1 specification)::

    score = min(cap, sum over topics of topic_weight * (w1*P1 + w2*P2 + w3*P3 + w3b*P3b + w4*P4))
            + w5*P5 + w6*P6 + w7*P7

* P1 time in mesh (quanta, capped), P2 first message deliveries (capped),
  P3 mesh message delivery deficit squared (only once the peer has been in the
  mesh for the activation time), P3b sticky mesh failure penalty, P4 invalid
  messages squared, P5 the application's score, P6 IP colocation surplus squared,
  P7 behaviour penalty surplus squared.
* Counters decay once per heartbeat (:meth:`PeerScores.decay`); a counter that
  falls below ``decay_to_zero`` becomes 0.
* Stats of a peer that disconnects are retained for ``retain_score`` seconds, so
  reconnecting does not wash a bad score (bounded by ``max_retained``).

Invariants:
* Pure: time is the ``now`` passed in; no randomness.
* Memory is bounded: one entry per connected peer, per topic it is or was in
  (bounded by the router's topic bounds), plus at most ``max_retained`` retained.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from identity.errors import InvalidInput

__all__ = ["PeerScores", "ScoreParams", "ScoreThresholds", "TopicScoreParams"]


@dataclass(frozen=True)
class TopicScoreParams:
    """Per-topic score parameters (the same set applies to every topic).

    Decays are factors applied once per heartbeat. P3/P3b are disabled by
    default (weights 0), as in most deployments: the right threshold depends on
    the topic's message rate, which datanet does not know in advance.
    """

    topic_weight: float = 1.0
    time_in_mesh_weight: float = 0.01
    time_in_mesh_quantum: float = 1.0
    time_in_mesh_cap: float = 100.0
    first_message_deliveries_weight: float = 1.0
    first_message_deliveries_decay: float = 0.995
    first_message_deliveries_cap: float = 20.0
    mesh_message_deliveries_weight: float = 0.0
    mesh_message_deliveries_decay: float = 0.97
    mesh_message_deliveries_threshold: float = 1.0
    mesh_message_deliveries_cap: float = 10.0
    mesh_message_deliveries_activation: float = 10.0
    mesh_message_deliveries_window: float = 0.05
    mesh_failure_penalty_weight: float = 0.0
    mesh_failure_penalty_decay: float = 0.97
    invalid_message_deliveries_weight: float = -10.0
    invalid_message_deliveries_decay: float = 0.995

    def __post_init__(self) -> None:
        if self.mesh_message_deliveries_weight > 0 or self.mesh_failure_penalty_weight > 0:
            raise InvalidInput("P3/P3b weights must be <= 0")
        if self.invalid_message_deliveries_weight > 0:
            raise InvalidInput("the P4 weight must be <= 0")
        if self.time_in_mesh_quantum <= 0:
            raise InvalidInput("time_in_mesh_quantum must be > 0")


@dataclass(frozen=True)
class ScoreParams:
    """Peer-level score parameters (P5-P7, cap, decay, retention)."""

    topic: TopicScoreParams = field(default_factory=TopicScoreParams)
    topic_score_cap: float = 32.0
    app_specific_weight: float = 1.0
    ip_colocation_factor_weight: float = -5.0
    ip_colocation_factor_threshold: int = 10
    behaviour_penalty_weight: float = -10.0
    behaviour_penalty_threshold: float = 0.0
    behaviour_penalty_decay: float = 0.99
    decay_to_zero: float = 0.01
    retain_score: float = 600.0
    max_retained: int = 10_000

    def __post_init__(self) -> None:
        if self.ip_colocation_factor_weight > 0 or self.behaviour_penalty_weight > 0:
            raise InvalidInput("P6/P7 weights must be <= 0")
        if self.ip_colocation_factor_threshold < 1:
            raise InvalidInput("ip_colocation_factor_threshold must be >= 1")


@dataclass(frozen=True)
class ScoreThresholds:
    """What a score allows (gossipsub v1.1).

    Below ``gossip_threshold`` no IHAVE/IWANT is exchanged with the peer; below
    ``publish_threshold`` it gets no flood-published message; below
    ``graylist_threshold`` all its RPCs are ignored. PX from a PRUNE is accepted
    only from peers at ``accept_px_threshold`` or more; opportunistic grafting
    happens when the mesh's median score is below ``opportunistic_graft_threshold``.
    """

    gossip_threshold: float = -10.0
    publish_threshold: float = -50.0
    graylist_threshold: float = -80.0
    accept_px_threshold: float = 10.0
    opportunistic_graft_threshold: float = 1.0

    def __post_init__(self) -> None:
        if not self.graylist_threshold <= self.publish_threshold <= self.gossip_threshold <= 0:
            raise InvalidInput("thresholds must satisfy graylist <= publish <= gossip <= 0")
        if self.accept_px_threshold < 0 or self.opportunistic_graft_threshold < 0:
            raise InvalidInput("accept_px and opportunistic_graft thresholds must be >= 0")


@dataclass
class _TopicStats:
    in_mesh: bool = False
    grafted_at: float = 0.0
    mesh_time: float = 0.0
    first_deliveries: float = 0.0
    mesh_deliveries: float = 0.0
    mesh_active: bool = False
    mesh_failure: float = 0.0
    invalid: float = 0.0


@dataclass
class _PeerStats:
    ip: str | None = None
    topics: dict[str, _TopicStats] = field(default_factory=dict)
    behaviour: float = 0.0
    app: float = 0.0
    expires: float = 0.0


class PeerScores:
    """The counters behind every peer's score (see the module docstring)."""

    def __init__(self, params: ScoreParams) -> None:
        """Start with no peers."""
        self.params = params
        self._peers: dict[bytes, _PeerStats] = {}
        self._retained: OrderedDict[bytes, _PeerStats] = OrderedDict()
        self._ips: dict[str, set[bytes]] = {}

    # -- lifecycle ----------------------------------------------------------

    def add_peer(self, peer: bytes, ip: str | None, now: float) -> None:
        """Start (or resume, if retained) scoring ``peer``."""
        if peer in self._peers:
            return
        stats = self._retained.pop(peer, None)
        if stats is None or stats.expires < now:
            stats = _PeerStats()
        stats.ip = ip
        for ts in stats.topics.values():
            ts.in_mesh = False
        self._peers[peer] = stats
        if ip is not None:
            self._ips.setdefault(ip, set()).add(peer)

    def remove_peer(self, peer: bytes, now: float) -> None:
        """Stop scoring ``peer``; keep its stats for ``retain_score`` seconds if they hurt."""
        stats = self._peers.pop(peer, None)
        if stats is None:
            return
        if stats.ip is not None:
            group = self._ips.get(stats.ip)
            if group is not None:
                group.discard(peer)
                if not group:
                    del self._ips[stats.ip]
        for topic in list(stats.topics):
            self.prune(peer, topic, stats=stats)
        if self._score(stats, now) < 0 or stats.behaviour > 0:
            stats.expires = now + self.params.retain_score
            self._retained[peer] = stats
            while len(self._retained) > self.params.max_retained:
                self._retained.popitem(last=False)

    # -- events ---------------------------------------------------------------

    def _topic(self, peer: bytes, topic: str) -> _TopicStats | None:
        stats = self._peers.get(peer)
        if stats is None:
            return None
        ts = stats.topics.get(topic)
        if ts is None:
            ts = stats.topics[topic] = _TopicStats()
        return ts

    def graft(self, peer: bytes, topic: str, now: float) -> None:
        """``peer`` joined our mesh of ``topic``."""
        ts = self._topic(peer, topic)
        if ts is not None:
            ts.in_mesh, ts.grafted_at, ts.mesh_time = True, now, 0.0
            ts.mesh_active = False

    def prune(self, peer: bytes, topic: str, *, stats: _PeerStats | None = None) -> None:
        """``peer`` left our mesh of ``topic``: a delivery deficit becomes sticky (P3b)."""
        stats = stats or self._peers.get(peer)
        if stats is None or topic not in stats.topics:
            return
        ts = stats.topics[topic]
        tp = self.params.topic
        if (
            ts.in_mesh
            and ts.mesh_active
            and ts.mesh_deliveries < tp.mesh_message_deliveries_threshold
        ):
            deficit = tp.mesh_message_deliveries_threshold - ts.mesh_deliveries
            ts.mesh_failure += deficit * deficit
        ts.in_mesh = False

    def first_delivery(self, peer: bytes, topic: str) -> None:
        """``peer`` delivered a valid message first (P2, and P3 when in mesh)."""
        ts = self._topic(peer, topic)
        if ts is None:
            return
        tp = self.params.topic
        ts.first_deliveries = min(ts.first_deliveries + 1, tp.first_message_deliveries_cap)
        if ts.in_mesh:
            ts.mesh_deliveries = min(ts.mesh_deliveries + 1, tp.mesh_message_deliveries_cap)

    def near_first_delivery(self, peer: bytes, topic: str) -> None:
        """``peer`` delivered a valid message within the P3 window after the first (P3 only)."""
        ts = self._topic(peer, topic)
        if ts is not None and ts.in_mesh:
            cap = self.params.topic.mesh_message_deliveries_cap
            ts.mesh_deliveries = min(ts.mesh_deliveries + 1, cap)

    def invalid(self, peer: bytes, topic: str) -> None:
        """``peer`` delivered an invalid message (P4)."""
        ts = self._topic(peer, topic)
        if ts is not None:
            ts.invalid += 1

    def penalise(self, peer: bytes, amount: float = 1.0) -> None:
        """Add to ``peer``'s behaviour penalty (P7): broken promise, GRAFT in backoff, flood."""
        stats = self._peers.get(peer)
        if stats is not None:
            stats.behaviour += amount

    def set_app_score(self, peer: bytes, value: float) -> None:
        """Set the application-specific score (P5) of ``peer``."""
        stats = self._peers.get(peer)
        if stats is not None:
            stats.app = value

    # -- heartbeat --------------------------------------------------------------

    def decay(self, now: float) -> None:
        """Decay every counter once (call on each heartbeat); refresh mesh times."""
        p = self.params
        tp = p.topic
        zero = p.decay_to_zero

        def dec(value: float, factor: float) -> float:
            value *= factor
            return 0.0 if value < zero else value

        for stats in self._peers.values():
            for ts in stats.topics.values():
                ts.first_deliveries = dec(ts.first_deliveries, tp.first_message_deliveries_decay)
                ts.mesh_deliveries = dec(ts.mesh_deliveries, tp.mesh_message_deliveries_decay)
                ts.mesh_failure = dec(ts.mesh_failure, tp.mesh_failure_penalty_decay)
                ts.invalid = dec(ts.invalid, tp.invalid_message_deliveries_decay)
                if ts.in_mesh:
                    ts.mesh_time = now - ts.grafted_at
                    if ts.mesh_time > tp.mesh_message_deliveries_activation:
                        ts.mesh_active = True
            stats.behaviour = dec(stats.behaviour, p.behaviour_penalty_decay)
        while self._retained:
            peer, stats = next(iter(self._retained.items()))
            if stats.expires >= now:
                break
            del self._retained[peer]

    # -- reading ----------------------------------------------------------------

    def _score(self, stats: _PeerStats, now: float) -> float:
        p = self.params
        tp = p.topic
        topic_score = 0.0
        for ts in stats.topics.values():
            s = 0.0
            if ts.in_mesh:
                quanta = max(0.0, now - ts.grafted_at) / tp.time_in_mesh_quantum
                s += tp.time_in_mesh_weight * min(quanta, tp.time_in_mesh_cap)
            s += tp.first_message_deliveries_weight * ts.first_deliveries
            threshold = tp.mesh_message_deliveries_threshold
            if ts.in_mesh and ts.mesh_active and ts.mesh_deliveries < threshold:
                deficit = threshold - ts.mesh_deliveries
                s += tp.mesh_message_deliveries_weight * deficit * deficit
            s += tp.mesh_failure_penalty_weight * ts.mesh_failure
            s += tp.invalid_message_deliveries_weight * ts.invalid * ts.invalid
            topic_score += tp.topic_weight * s
        if p.topic_score_cap > 0:
            topic_score = min(topic_score, p.topic_score_cap)
        score = topic_score + p.app_specific_weight * stats.app
        if stats.ip is not None:
            surplus = len(self._ips.get(stats.ip, ())) - p.ip_colocation_factor_threshold
            if surplus > 0:
                score += p.ip_colocation_factor_weight * surplus * surplus
        excess = stats.behaviour - p.behaviour_penalty_threshold
        if excess > 0:
            score += p.behaviour_penalty_weight * excess * excess
        return score

    def score(self, peer: bytes, now: float) -> float:
        """The current score of ``peer`` (0 for an unknown peer)."""
        stats = self._peers.get(peer)
        return 0.0 if stats is None else self._score(stats, now)

    def __len__(self) -> int:
        """Peers scored (connected)."""
        return len(self._peers)

    @property
    def retained(self) -> int:
        """Disconnected peers whose stats are retained."""
        return len(self._retained)
