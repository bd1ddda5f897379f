"""GossipSub v1.1 as a pure state machine: events in, actions out, injected clock and rng.

The driver (the libp2p adapter, or the simulator) tells the router what
happened and carries out what :meth:`GossipRouter.poll` returns:

* events: :meth:`~GossipRouter.add_peer` / :meth:`~GossipRouter.remove_peer`
  (a connection that speaks ``/meshsub/1.1.0``), :meth:`~GossipRouter.handle_rpc`
  (a decoded RPC), :meth:`~GossipRouter.report_validation` (the answer to a
  :class:`Validate`), and the operations :meth:`~GossipRouter.subscribe`,
  :meth:`~GossipRouter.unsubscribe`, :meth:`~GossipRouter.publish`;
* actions: :class:`SendRpc` (encode and write to the peer) and :class:`Validate`
  (check the data, then call ``report_validation``).

After any event call ``poll(now)``; also call it once ``now`` reaches
:meth:`~GossipRouter.next_deadline` (the heartbeat, a validation timeout).

Invariants:
* A received message is emitted as :class:`Validate` at most once per id while
  its id is remembered; it is forwarded (to mesh peers, never to a peer that
  delivered it) and cached for gossip only after ``ACCEPT``. Validation is asked
  only for topics we subscribe to.
* A peer that joins a mesh (our GRAFT or its accepted GRAFT) is sent an IHAVE of
  the gossip window at once: what was forwarded before it joined reaches it too.
* ``mesh(t) ⊆ peers()``, ``fanout ⊆ peers()``; the seen cache, pending
  validations, promises, backoffs and per-peer topic sets are bounded.
* A peer below the graylist threshold has its RPCs ignored; below the gossip
  threshold no IHAVE/IWANT is exchanged with it; below the publish threshold it
  gets no flood-published message; a negative score keeps it out of meshes.
* Randomness is the injected ``random.Random``, always applied to sorted
  candidate lists, so a run is a function of the seed and the events.
"""

from __future__ import annotations

import enum
import random
import statistics
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from identity.errors import InvalidInput, RecordTooLarge
from routing.gossip.cache import MessageCache, SeenCache, SeenState
from routing.gossip.outbox import Outbox
from routing.gossip.score import PeerScores, ScoreParams, ScoreThresholds
from routing.gossip.wire import (
    RPC,
    GossipWireLimits,
    Graft,
    IHave,
    IWant,
    PeerInfo,
    Prune,
    PubMessage,
    SubOpts,
    message_id,
)

__all__ = [
    "GossipConfig",
    "GossipRouter",
    "SendRpc",
    "Validate",
    "ValidationResult",
]


class ValidationResult(enum.Enum):
    """The application's verdict on a message."""

    ACCEPT = "accept"
    REJECT = "reject"
    IGNORE = "ignore"


@dataclass(frozen=True)
class SendRpc:
    """Action: send ``rpc`` to ``peer``."""

    peer: bytes
    rpc: RPC


@dataclass(frozen=True)
class Validate:
    """Action: validate ``data`` (received from ``from_peer``), then report the result."""

    message_id: bytes
    topic: str
    data: bytes
    from_peer: bytes


@dataclass(frozen=True)
class GossipConfig:
    """Router parameters (gossipsub v1.1 names; times in seconds). See ``docs/gossip.md``."""

    D: int = 6
    D_lo: int = 5
    D_hi: int = 12
    D_lazy: int = 6
    D_score: int = 4
    D_out: int = 2
    heartbeat_interval: float = 0.5
    fanout_ttl: float = 60.0
    mcache_len: int = 5
    mcache_gossip: int = 3
    seen_ttl: float = 120.0
    max_seen: int = 100_000
    prune_backoff: float = 60.0
    unsubscribe_backoff: float = 10.0
    gossip_factor: float = 0.25
    max_ihave_length: int = 5000
    max_ihave_messages: int = 10
    iwant_followup_time: float = 3.0
    flood_publish: bool = True
    opportunistic_graft_ticks: int = 60
    validation_timeout: float = 5.0
    max_pending_validations: int = 1024
    score: ScoreParams = field(default_factory=ScoreParams)
    thresholds: ScoreThresholds = field(default_factory=ScoreThresholds)
    # additions beyond the agreed interface
    wire: GossipWireLimits = field(default_factory=GossipWireLimits)
    opportunistic_graft_peers: int = 2
    graft_flood_threshold: float = 10.0
    gossip_retransmission: int = 3
    max_iwant_served: int = 5000
    flood_threshold: int = 32
    prune_peers: int = 16
    do_px: bool = True
    max_px_candidates: int = 256
    max_backoff: float = 3600.0
    max_backoffs: int = 65_536
    max_promises: int = 10_000
    max_topics: int = 64
    max_peer_topics: int = 64

    def __post_init__(self) -> None:
        if not 0 <= self.D_lo <= self.D <= self.D_hi or self.D < 1:
            raise InvalidInput("need 0 <= D_lo <= D <= D_hi and D >= 1")
        if not (0 <= self.D_out <= self.D_lo and self.D_out <= self.D // 2):
            raise InvalidInput("need D_out <= D_lo and D_out <= D/2")
        if not 0 <= self.D_score <= self.D:
            raise InvalidInput("need 0 <= D_score <= D")
        if self.heartbeat_interval <= 0 or self.validation_timeout <= 0:
            raise InvalidInput("heartbeat_interval and validation_timeout must be > 0")
        if self.max_ihave_length > min(self.wire.max_ihave_ids, self.wire.max_iwant_ids):
            raise InvalidInput("max_ihave_length exceeds the wire limits on ids per RPC")
        if self.max_pending_validations < 1:
            raise InvalidInput("max_pending_validations must be >= 1")


@dataclass
class _Peer:
    outbound: bool
    ip: str | None
    topics: set[str] = field(default_factory=set)
    ihaves: int = 0  # IHAVE-carrying RPCs received this heartbeat
    asked: int = 0  # ids we asked it for this heartbeat
    served: int = 0  # ids we served it this heartbeat
    floods: int = 0  # invalid messages, GRAFTs, refused IWANTs this heartbeat


@dataclass
class _Pending:
    msg: PubMessage
    deadline: float


class GossipRouter:
    """One node's GossipSub v1.1 router (see the module docstring)."""

    def __init__(
        self,
        self_id: bytes,
        *,
        config: GossipConfig = GossipConfig(),
        rng: random.Random,
        now: float,
    ) -> None:
        """Create a router with no peers and no subscriptions.

        The first heartbeat is due at a random point within one interval, so
        that routers started together do not beat in lockstep.
        """
        self.self_id = self_id
        self.config = config
        self._rng = rng
        self._peers: dict[bytes, _Peer] = {}
        self._topic_peers: dict[str, set[bytes]] = {}
        self._topics: set[str] = set()
        self._mesh: dict[str, set[bytes]] = {}
        self._fanout: dict[str, set[bytes]] = {}
        self._fanout_pub: dict[str, float] = {}
        self._backoff: dict[tuple[str, bytes], float] = {}
        self._seen = SeenCache(config.seen_ttl, config.max_seen)
        self._mcache = MessageCache(config.mcache_len, config.mcache_gossip)
        self._retrans: dict[bytes, dict[bytes, int]] = {}
        self._pending: OrderedDict[bytes, _Pending] = OrderedDict()
        self._promises: dict[bytes, dict[bytes, float]] = {}
        self._px: OrderedDict[bytes, PeerInfo] = OrderedDict()
        self._scores = PeerScores(config.score)
        self._out = Outbox(config.wire)
        self._validate: list[Validate] = []
        self._next_heartbeat = now + rng.uniform(0.0, config.heartbeat_interval)
        self._ticks = 0
        self._counters: dict[str, int] = dict.fromkeys(
            (
                "published",
                "relayed",
                "delivered",
                "duplicates",
                "invalid",
                "rejected",
                "ignored",
                "validation_timeouts",
                "validation_throttled",
                "graylisted_rpcs",
                "unknown_peer_rpcs",
                "unsubscribed_messages",
                "strict_nosign_violations",
                "broken_promises",
                "iwant_refused",
                "flood_prunes",
                "grafts_sent",
                "prunes_sent",
                "ihave_sent",
                "iwant_sent",
                "iwant_served",
            ),
            0,
        )

    # -- membership ------------------------------------------------------------

    def add_peer(self, peer: bytes, *, outbound: bool, now: float, ip: str | None = None) -> None:
        """A connection to ``peer`` speaking gossipsub opened; send it our subscriptions."""
        if peer == self.self_id or peer in self._peers:
            return
        self._peers[peer] = _Peer(outbound=outbound, ip=ip)
        self._scores.add_peer(peer, ip, now)
        for topic in sorted(self._topics):
            self._out.sub(peer, SubOpts(subscribe=True, topic=topic))

    def remove_peer(self, peer: bytes, now: float) -> None:
        """The connection to ``peer`` closed: forget it everywhere (its score is retained)."""
        st = self._peers.pop(peer, None)
        if st is None:
            return
        for topic in st.topics:
            self._untrack(peer, topic)
        for topic, mesh in self._mesh.items():
            if peer in mesh:
                mesh.discard(peer)
                self._scores.prune(peer, topic)
        for fanout in self._fanout.values():
            fanout.discard(peer)
        self._out.drop(peer)
        self._scores.remove_peer(peer, now)

    def _untrack(self, peer: bytes, topic: str) -> None:
        group = self._topic_peers.get(topic)
        if group is not None:
            group.discard(peer)
            if not group:
                del self._topic_peers[topic]

    # -- operations ------------------------------------------------------------

    def subscribe(self, topic: str, now: float) -> None:
        """Join ``topic``: build its mesh (fanout peers first) and announce it.

        Raises:
            InvalidInput: already ``max_topics`` subscriptions.
        """
        if topic in self._topics:
            return
        if len(self._topics) >= self.config.max_topics:
            raise InvalidInput(f"at most {self.config.max_topics} topics")
        self._topics.add(topic)
        scores = self._score_all(now)
        mesh: set[bytes] = set()
        for p in sorted(self._fanout.pop(topic, set())):
            if scores[p] >= 0 and not self._in_backoff(topic, p, now):
                mesh.add(p)
        self._fanout_pub.pop(topic, None)
        need = self.config.D - len(mesh)
        if need > 0:
            mesh.update(self._pick(self._mesh_candidates(topic, mesh, scores, now), need))
        self._mesh[topic] = set()
        for p in sorted(mesh):
            self._graft(topic, p, now)
        for p in self._peers:
            self._out.sub(p, SubOpts(subscribe=True, topic=topic))

    def unsubscribe(self, topic: str, now: float) -> None:
        """Leave ``topic``: announce it and prune the mesh (with the unsubscribe backoff)."""
        if topic not in self._topics:
            return
        self._topics.discard(topic)
        for p in self._peers:
            self._out.sub(p, SubOpts(subscribe=False, topic=topic))
        backoff = self.config.unsubscribe_backoff
        for p in sorted(self._mesh.pop(topic, set())):
            self._scores.prune(p, topic)
            self._send_prune(topic, p, now, backoff=backoff, px=False)

    def publish(self, topic: str, data: bytes, now: float) -> bytes:
        """Publish our own (already valid) ``data`` on ``topic``; return its message id.

        Sent at once to every topic peer above the publish threshold (flood
        publish), else to the mesh or fanout. Re-publishing a seen id sends
        nothing of its own; a peer's copy that awaits validation is accepted
        (:meth:`_send_valid`).

        Raises:
            RecordTooLarge: ``data`` exceeds the wire's ``max_message_size``.
        """
        return self._send_valid(topic, data, now, own=True)

    def relay(self, topic: str, data: bytes, now: float) -> bytes:
        """Pass on valid ``data`` that another node published; return its message id.

        For a message that reached us some other way than gossip (a DHT write
        from its publisher): sent to the mesh only, as a received message
        that passed validation is, never flood-published, which is for a
        node's own messages. A node that relays floods would send a copy to
        every topic peer, most of whom already hold it. Not subscribed to
        ``topic``, it sends nothing. A seen id is as in :meth:`publish`.

        Raises:
            RecordTooLarge: ``data`` exceeds the wire's ``max_message_size``.
        """
        return self._send_valid(topic, data, now, own=False)

    def _send_valid(self, topic: str, data: bytes, now: float, *, own: bool) -> bytes:
        """Take in and send ``data`` the caller holds as valid; its message id.

        A seen id sends nothing new, but a peer's copy of it that still awaits
        validation is accepted now, and so forwarded as an accepted message is.
        (Otherwise that copy would be judged "already held" and never forwarded,
        and a node that is the only way onward, a gateway, would stop it.)
        """
        if len(data) > self.config.wire.max_message_size:
            raise RecordTooLarge(
                f"message is {len(data)} bytes; the limit is {self.config.wire.max_message_size}"
            )
        mid = message_id(data)
        if mid in self._seen:
            if mid in self._pending:
                self.report_validation(mid, ValidationResult.ACCEPT, now)
            return mid
        msg = PubMessage(topic=topic, data=data)
        entry, _ = self._seen.add(mid, topic, SeenState.ACCEPTED, now, None)
        entry.validated_at = now
        self._mcache.put(mid, msg)
        self._counters["published" if own else "relayed"] += 1
        targets = self._publish_targets(topic, now) if own else sorted(self._mesh.get(topic, ()))
        for p in targets:
            self._out.msg(p, msg)
        return mid

    def _publish_targets(self, topic: str, now: float) -> list[bytes]:
        """Where our own message goes: flood publish, else the mesh, else the fanout."""
        if topic not in self._topics:
            self._touch_fanout(topic, now)
        if self.config.flood_publish:
            threshold = self.config.thresholds.publish_threshold
            return [
                p
                for p in sorted(self._topic_peers.get(topic, ()))
                if self._scores.score(p, now) >= threshold
            ]
        if topic in self._mesh:
            return sorted(self._mesh[topic])
        return sorted(self._fanout.get(topic, ()))

    def _touch_fanout(self, topic: str, now: float) -> None:
        if topic not in self._fanout:
            while len(self._fanout) >= self.config.max_topics:
                oldest = min(self._fanout_pub, key=lambda t: (self._fanout_pub[t], t))
                del self._fanout[oldest]
                del self._fanout_pub[oldest]
            threshold = self.config.thresholds.publish_threshold
            cands = [
                p
                for p in self._topic_peers.get(topic, ())
                if self._scores.score(p, now) >= threshold
            ]
            self._fanout[topic] = set(self._pick(cands, self.config.D))
        self._fanout_pub[topic] = now

    def set_app_score(self, peer: bytes, value: float) -> None:
        """Set the application-specific score (P5) of a connected ``peer``."""
        self._scores.set_app_score(peer, value)

    def take_px_peers(self) -> list[PeerInfo]:
        """Peers suggested by PRUNE peer exchange from well-scored peers (then forgotten)."""
        out = list(self._px.values())
        self._px.clear()
        return out

    # -- inbound RPCs ----------------------------------------------------------

    def handle_rpc(self, peer: bytes, rpc: RPC, now: float) -> None:
        """Process one decoded RPC from ``peer`` (ignored if unknown or graylisted)."""
        st = self._peers.get(peer)
        if st is None:
            self._counters["unknown_peer_rpcs"] += 1
            return
        score = self._scores.score(peer, now)
        if score < self.config.thresholds.graylist_threshold:
            self._counters["graylisted_rpcs"] += 1
            return
        for sub in rpc.subscriptions:
            self._handle_sub(peer, st, sub)
        for msg in rpc.publish:
            self._handle_message(peer, st, msg, now)
        gossip_ok = score >= self.config.thresholds.gossip_threshold
        if rpc.ihave and gossip_ok:
            self._handle_ihave(peer, st, rpc.ihave, now)
        if rpc.iwant and gossip_ok:
            self._handle_iwant(peer, st, rpc.iwant)
        for graft in rpc.graft:
            self._handle_graft(peer, st, graft.topic, now)
        for prune in rpc.prune:
            self._handle_prune(peer, prune, now)
        if st.floods > self.config.flood_threshold:
            self._flood_prune(peer, st, now)

    def _handle_sub(self, peer: bytes, st: _Peer, sub: SubOpts) -> None:
        topic = sub.topic
        if sub.subscribe:
            if topic in st.topics or len(st.topics) >= self.config.max_peer_topics:
                return
            st.topics.add(topic)
            self._topic_peers.setdefault(topic, set()).add(peer)
            return
        if topic not in st.topics:
            return
        st.topics.discard(topic)
        self._untrack(peer, topic)
        mesh = self._mesh.get(topic)
        if mesh is not None and peer in mesh:
            mesh.discard(peer)
            self._scores.prune(peer, topic)
        fanout = self._fanout.get(topic)
        if fanout is not None:
            fanout.discard(peer)

    def _handle_message(self, peer: bytes, st: _Peer, msg: PubMessage, now: float) -> None:
        topic = msg.topic
        if topic not in self._topics:
            self._counters["unsubscribed_messages"] += 1
            return
        if msg.has_author_fields:  # StrictNoSign: refuse, the sender is at fault
            self._counters["strict_nosign_violations"] += 1
            self._counters["invalid"] += 1
            self._scores.invalid(peer, topic)
            st.floods += 1
            return
        mid = message_id(msg.data)
        self._fulfil(mid, peer)
        entry = self._seen.get(mid)
        if entry is not None:
            self._counters["duplicates"] += 1
            new = self._seen.note_delivery(entry, peer)
            if entry.state is SeenState.ACCEPTED:
                window = self.config.score.topic.mesh_message_deliveries_window
                if new and entry.first_peer is not None and now - entry.validated_at <= window:
                    self._scores.near_first_delivery(peer, topic)
            elif entry.state is SeenState.REJECTED:
                self._scores.invalid(peer, topic)
                st.floods += 1
            return
        if len(self._pending) >= self.config.max_pending_validations:
            self._counters["validation_throttled"] += 1
            return
        _, evicted = self._seen.add(mid, topic, SeenState.PENDING, now, peer)
        if evicted is not None:
            self._pending.pop(evicted, None)
        self._pending[mid] = _Pending(msg=msg, deadline=now + self.config.validation_timeout)
        self._validate.append(Validate(message_id=mid, topic=topic, data=msg.data, from_peer=peer))

    def report_validation(self, message_id: bytes, result: ValidationResult, now: float) -> None:
        """The application's verdict on a :class:`Validate` (unknown or late ids are ignored)."""
        pending = self._pending.pop(message_id, None)
        entry = self._seen.get(message_id)
        if pending is None or entry is None:
            return
        topic = pending.msg.topic
        if result is ValidationResult.ACCEPT:
            entry.state = SeenState.ACCEPTED
            entry.validated_at = now
            self._counters["delivered"] += 1
            self._mcache.put(message_id, pending.msg)
            for p in sorted(entry.deliverers):
                if p == entry.first_peer:
                    self._scores.first_delivery(p, topic)
                else:
                    self._scores.near_first_delivery(p, topic)
            for p in sorted(self._mesh.get(topic, ())):
                if p not in entry.deliverers:
                    self._out.msg(p, pending.msg)
        elif result is ValidationResult.REJECT:
            entry.state = SeenState.REJECTED
            self._counters["rejected"] += 1
            self._counters["invalid"] += 1
            for p in sorted(entry.deliverers):
                self._scores.invalid(p, topic)
                st = self._peers.get(p)
                if st is not None:
                    st.floods += 1
                    if st.floods > self.config.flood_threshold:
                        self._flood_prune(p, st, now)
        else:
            entry.state = SeenState.IGNORED
            self._counters["ignored"] += 1

    def _handle_ihave(self, peer: bytes, st: _Peer, ihaves: Iterable[IHave], now: float) -> None:
        cfg = self.config
        st.ihaves += 1
        if st.ihaves > cfg.max_ihave_messages or st.asked >= cfg.max_ihave_length:
            return
        want: dict[bytes, None] = {}
        for ihave in ihaves:
            if ihave.topic not in self._topics:
                continue
            for mid in ihave.message_ids:
                if mid not in self._seen:
                    want[mid] = None
        if not want:
            return
        ids = list(want)
        room = cfg.max_ihave_length - st.asked
        if len(ids) > room:
            self._rng.shuffle(ids)
            ids = ids[:room]
        st.asked += len(ids)
        self._out.iwant(peer, IWant(message_ids=tuple(ids)))
        self._counters["iwant_sent"] += 1
        if len(self._promises) < cfg.max_promises:
            mid = self._rng.choice(ids)
            self._promises.setdefault(mid, {}).setdefault(peer, now + cfg.iwant_followup_time)

    def _fulfil(self, mid: bytes, peer: bytes) -> None:
        promised = self._promises.get(mid)
        if promised is not None:
            promised.pop(peer, None)
            if not promised:
                del self._promises[mid]

    def _handle_iwant(self, peer: bytes, st: _Peer, iwants: Iterable[IWant]) -> None:
        cfg = self.config
        for iwant in iwants:
            for mid in iwant.message_ids:
                msg = self._mcache.get(mid)
                if msg is None:
                    continue
                counts = self._retrans.setdefault(mid, {})
                count = counts.get(peer, 0) + 1
                if count > cfg.gossip_retransmission or st.served >= cfg.max_iwant_served:
                    self._counters["iwant_refused"] += 1
                    st.floods += 1
                    continue
                counts[peer] = count
                st.served += 1
                self._counters["iwant_served"] += 1
                self._out.msg(peer, msg)

    def _handle_graft(self, peer: bytes, st: _Peer, topic: str, now: float) -> None:
        cfg = self.config
        st.floods += 1
        mesh = self._mesh.get(topic)
        if mesh is None or peer in mesh:
            return  # not subscribed (spam hardening: no answer), or already in
        until = self._backoff.get((topic, peer))
        if until is not None and now < until:
            self._scores.penalise(peer)
            if now < until - cfg.prune_backoff + cfg.graft_flood_threshold:
                self._scores.penalise(peer)
            self._send_prune(topic, peer, now, backoff=cfg.prune_backoff, px=False)
            return
        if self._scores.score(peer, now) < 0:
            self._send_prune(topic, peer, now, backoff=cfg.prune_backoff, px=False)
            return
        if len(mesh) >= cfg.D_hi and not st.outbound:
            self._send_prune(topic, peer, now, backoff=cfg.prune_backoff, px=True)
            return
        mesh.add(peer)
        self._scores.graft(peer, topic, now)
        self._offer_recent(topic, peer)

    def _handle_prune(self, peer: bytes, prune: Prune, now: float) -> None:
        cfg = self.config
        topic = prune.topic
        mesh = self._mesh.get(topic)
        if mesh is not None and peer in mesh:
            mesh.discard(peer)
            self._scores.prune(peer, topic)
        backoff = float(prune.backoff) if prune.backoff else cfg.prune_backoff
        self._set_backoff(topic, peer, now + min(backoff, cfg.max_backoff))
        if prune.peers and self._scores.score(peer, now) >= cfg.thresholds.accept_px_threshold:
            for info in prune.peers[: cfg.prune_peers]:
                pid = info.peer_id
                if pid and pid != self.self_id and pid not in self._peers:
                    self._px[pid] = info
                    while len(self._px) > cfg.max_px_candidates:
                        self._px.popitem(last=False)

    def _flood_prune(self, peer: bytes, st: _Peer, now: float) -> None:
        """``peer`` exceeded the per-heartbeat flood bound: out of every mesh, penalised."""
        self._counters["flood_prunes"] += 1
        st.floods = 0
        self._scores.penalise(peer)
        for topic, mesh in self._mesh.items():
            if peer in mesh:
                mesh.discard(peer)
                self._scores.prune(peer, topic)
                self._send_prune(topic, peer, now, backoff=self.config.prune_backoff, px=False)

    # -- helpers ---------------------------------------------------------------

    def _pick(self, candidates: Iterable[bytes], k: int) -> list[bytes]:
        pool = sorted(candidates)
        if k >= len(pool):
            return pool
        return self._rng.sample(pool, k)

    def _score_all(self, now: float) -> dict[bytes, float]:
        return {p: self._scores.score(p, now) for p in self._peers}

    def _in_backoff(self, topic: str, peer: bytes, now: float) -> bool:
        until = self._backoff.get((topic, peer))
        return until is not None and now < until

    def _set_backoff(self, topic: str, peer: bytes, until: float) -> None:
        key = (topic, peer)
        if self._backoff.get(key, 0.0) < until:
            self._backoff.pop(key, None)
            self._backoff[key] = until
            while len(self._backoff) > self.config.max_backoffs:
                del self._backoff[next(iter(self._backoff))]

    def _mesh_candidates(
        self, topic: str, exclude: set[bytes], scores: dict[bytes, float], now: float
    ) -> list[bytes]:
        return [
            p
            for p in self._topic_peers.get(topic, ())
            if p not in exclude and scores.get(p, 0.0) >= 0 and not self._in_backoff(topic, p, now)
        ]

    def _graft(self, topic: str, peer: bytes, now: float) -> None:
        self._mesh[topic].add(peer)
        self._scores.graft(peer, topic, now)
        self._out.graft(peer, Graft(topic=topic))
        self._counters["grafts_sent"] += 1
        self._offer_recent(topic, peer)

    def _offer_recent(self, topic: str, peer: bytes) -> None:
        """Send a peer that just joined our mesh an IHAVE of the recent message ids.

        A message forwarded while the mesh lacked this peer (a node that just
        started forwards to nobody until its first heartbeat grafts) reaches it
        neither by forwarding nor by heartbeat gossip, which skips mesh peers.
        """
        ihave = self._recent_ihave(topic)
        if ihave is not None:
            self._out.ihave(peer, ihave)
            self._counters["ihave_sent"] += 1

    def _recent_ihave(self, topic: str) -> IHave | None:
        """The message ids of ``topic`` in the gossip window (at most ``max_ihave_length``)."""
        ids = self._mcache.gossip_ids(topic)
        if not ids:
            return None
        if len(ids) > self.config.max_ihave_length:
            self._rng.shuffle(ids)
            ids = ids[: self.config.max_ihave_length]
        return IHave(topic=topic, message_ids=tuple(ids))

    def _send_prune(self, topic: str, peer: bytes, now: float, *, backoff: float, px: bool) -> None:
        peers: tuple[PeerInfo, ...] = ()
        if px and self.config.do_px and self._scores.score(peer, now) >= 0:
            cands = [
                p
                for p in self._topic_peers.get(topic, ())
                if p != peer and self._scores.score(p, now) >= 0
            ]
            peers = tuple(PeerInfo(p) for p in self._pick(cands, self.config.prune_peers))
        self._set_backoff(topic, peer, now + backoff)
        self._out.prune(peer, Prune(topic=topic, peers=peers, backoff=round(backoff)))
        self._counters["prunes_sent"] += 1

    # -- heartbeat ---------------------------------------------------------------

    def _heartbeat(self, now: float) -> None:
        cfg = self.config
        self._ticks += 1
        self._scores.decay(now)
        for mid in list(self._promises):
            promised = self._promises[mid]
            for p, deadline in list(promised.items()):
                if deadline < now:
                    del promised[p]
                    self._counters["broken_promises"] += 1
                    self._scores.penalise(p)
            if not promised:
                del self._promises[mid]
        for key in [k for k, until in self._backoff.items() if until <= now]:
            del self._backoff[key]
        for mid in self._seen.expire(now):
            self._pending.pop(mid, None)
        scores = self._score_all(now)
        opportunistic = self._ticks % cfg.opportunistic_graft_ticks == 0
        for topic in sorted(self._mesh):
            self._maintain_mesh(topic, scores, now, opportunistic=opportunistic)
            self._emit_gossip(topic, self._mesh[topic], scores)
        for topic in sorted(self._fanout):
            if self._fanout_pub[topic] + cfg.fanout_ttl < now:
                del self._fanout[topic]
                del self._fanout_pub[topic]
                continue
            fanout = self._fanout[topic]
            subscribed = self._topic_peers.get(topic, set())
            threshold = cfg.thresholds.publish_threshold
            for p in list(fanout):
                if p not in subscribed or scores[p] < threshold:
                    fanout.discard(p)
            if len(fanout) < cfg.D:
                cands = [p for p in subscribed if p not in fanout and scores[p] >= threshold]
                fanout.update(self._pick(cands, cfg.D - len(fanout)))
            self._emit_gossip(topic, fanout, scores)
        self._mcache.shift()
        for mid in [m for m in self._retrans if self._mcache.get(m) is None]:
            del self._retrans[mid]
        for st in self._peers.values():
            st.ihaves = st.asked = st.served = st.floods = 0

    def _maintain_mesh(
        self, topic: str, scores: dict[bytes, float], now: float, *, opportunistic: bool
    ) -> None:
        cfg = self.config
        mesh = self._mesh[topic]
        for p in sorted(mesh):
            if scores[p] < 0:
                mesh.discard(p)
                self._scores.prune(p, topic)
                self._send_prune(topic, p, now, backoff=cfg.prune_backoff, px=False)
        if len(mesh) < cfg.D_lo:
            cands = self._mesh_candidates(topic, mesh, scores, now)
            for p in self._pick(cands, cfg.D - len(mesh)):
                self._graft(topic, p, now)
        if len(mesh) > cfg.D_hi:
            ordered = self._pick(mesh, len(mesh))  # shuffled, then stable-sorted by score
            ordered.sort(key=lambda p: scores[p], reverse=True)
            keep = ordered[: cfg.D_score]
            rest = ordered[cfg.D_score :]
            self._rng.shuffle(rest)
            need_out = cfg.D_out - sum(self._peers[p].outbound for p in keep)
            outs = [p for p in rest if self._peers[p].outbound][: max(0, need_out)]
            others = [p for p in rest if p not in outs]
            keep += outs + others[: max(0, cfg.D - len(keep) - len(outs))]
            kept = set(keep)
            for p in sorted(mesh - kept):
                mesh.discard(p)
                self._scores.prune(p, topic)
                self._send_prune(topic, p, now, backoff=cfg.prune_backoff, px=True)
        if len(mesh) >= cfg.D_lo:
            outbound = sum(self._peers[p].outbound for p in mesh)
            if outbound < cfg.D_out:
                cands = [
                    p
                    for p in self._mesh_candidates(topic, mesh, scores, now)
                    if self._peers[p].outbound
                ]
                for p in self._pick(cands, cfg.D_out - outbound):
                    self._graft(topic, p, now)
        if opportunistic and len(mesh) > 1:
            median = statistics.median(scores[p] for p in mesh)
            if median < cfg.thresholds.opportunistic_graft_threshold:
                cands = [
                    p for p in self._mesh_candidates(topic, mesh, scores, now) if scores[p] > median
                ]
                for p in self._pick(cands, cfg.opportunistic_graft_peers):
                    self._graft(topic, p, now)

    def _emit_gossip(self, topic: str, exclude: set[bytes], scores: dict[bytes, float]) -> None:
        cfg = self.config
        ihave = self._recent_ihave(topic)
        if ihave is None:
            return
        threshold = cfg.thresholds.gossip_threshold
        cands = [
            p
            for p in self._topic_peers.get(topic, ())
            if p not in exclude and scores[p] >= threshold
        ]
        target = max(cfg.D_lazy, int(cfg.gossip_factor * len(cands)))
        for p in self._pick(cands, target):
            self._out.ihave(p, ihave)
            self._counters["ihave_sent"] += 1

    # -- driving -----------------------------------------------------------------

    def poll(self, now: float) -> list[SendRpc | Validate]:
        """Run the heartbeat if due, time out validations (as IGNORE); return the actions."""
        if now >= self._next_heartbeat:
            self._heartbeat(now)
            interval = self.config.heartbeat_interval
            self._next_heartbeat += interval
            if self._next_heartbeat <= now:  # the driver fell behind: do not beat in a burst
                self._next_heartbeat = now + interval
        while self._pending:
            mid, pending = next(iter(self._pending.items()))
            if pending.deadline > now:
                break
            self._counters["validation_timeouts"] += 1
            self.report_validation(mid, ValidationResult.IGNORE, now)
        actions: list[SendRpc | Validate] = list(self._validate)
        self._validate.clear()
        if self._out:
            actions.extend(SendRpc(peer=p, rpc=rpc) for p, rpc in self._out.flush())
        return actions

    def next_deadline(self) -> float:
        """When :meth:`poll` next has work of its own (heartbeat, validation timeout)."""
        if self._pending:
            return min(self._next_heartbeat, next(iter(self._pending.values())).deadline)
        return self._next_heartbeat

    # -- reading -----------------------------------------------------------------

    def score(self, peer: bytes, now: float) -> float:
        """The current score of ``peer`` (0 if unknown)."""
        return self._scores.score(peer, now)

    def mesh(self, topic: str) -> frozenset[bytes]:
        """Our mesh peers of ``topic`` (empty if not subscribed)."""
        return frozenset(self._mesh.get(topic, ()))

    def fanout(self, topic: str) -> frozenset[bytes]:
        """Our fanout peers of ``topic`` (empty unless we published there unsubscribed)."""
        return frozenset(self._fanout.get(topic, ()))

    def peers(self) -> frozenset[bytes]:
        """Every connected gossipsub peer."""
        return frozenset(self._peers)

    def topics(self) -> frozenset[str]:
        """Our subscriptions."""
        return frozenset(self._topics)

    def peer_topics(self, peer: bytes) -> frozenset[str]:
        """The topics ``peer`` told us it subscribes to."""
        st = self._peers.get(peer)
        return frozenset(st.topics) if st is not None else frozenset()

    def in_backoff(self, topic: str, peer: bytes, now: float) -> bool:
        """Whether ``peer`` may not be grafted into ``topic`` yet."""
        return self._in_backoff(topic, peer, now)

    def stats(self, now: float | None = None) -> dict[str, int | float]:
        """JSON-safe counters and sizes.

        ``invalid`` counts refused messages (REJECT verdicts and StrictNoSign
        violations). With ``now``, ``graylisted`` counts peers currently below the
        graylist threshold (else it is omitted: scores depend on the time).
        """
        sizes = [len(m) for m in self._mesh.values()]
        out: dict[str, int | float] = {
            "peers": len(self._peers),
            "topics": len(self._topics),
            "mesh_peers": sum(sizes),
            "mesh_min": min(sizes, default=0),
            "mesh_max": max(sizes, default=0),
            "fanout_peers": sum(len(f) for f in self._fanout.values()),
            "seen": len(self._seen),
            "mcache": len(self._mcache),
            "pending_validations": len(self._pending),
            "promises": sum(len(p) for p in self._promises.values()),
            "backoffs": len(self._backoff),
            "retained_scores": self._scores.retained,
            "heartbeats": self._ticks,
        }
        if now is not None:
            floor = self.config.thresholds.graylist_threshold
            out["graylisted"] = sum(1 for p in self._peers if self._scores.score(p, now) < floor)
        out.update(self._counters)
        return out
