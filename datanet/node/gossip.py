"""Gossip on the node: the pure GossipSub router carried out over the host.

:class:`GossipDriver` owns a :class:`routing.gossip.router.GossipRouter` and
does what it asks: ``SendRpc`` goes to :class:`datanet.p2p.gossip.GossipTransport`,
``Validate`` goes to the node's :class:`~datanet.node.ledger.Ledger` (verify,
hold if newer) and its verdict goes back to the router, which forwards only what
was accepted and scores the sender. RPCs and peer changes from the transport
are handed to the router as they arrive.

The node gossips one topic, :data:`CATALOG_TOPIC`, validated by the ledger.
(Audit heads once had a topic of their own; they now go straight to their
witnesses, see ``docs/witnessing.md``.)

Invariants:
* The router is touched only from trio tasks of this node (one thread); after
  every event the driver loop is woken so new RPCs go out at once.
* ``now`` is wall-clock Unix seconds (the router's deadlines too).
* Validation is synchronous (a signature check, well under a millisecond), so a
  message is forwarded in the same loop turn it was accepted.
* A message on any other topic is ignored (never forwarded).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import trio

from datanet.node.ledger import Ledger
from datanet.p2p.gossip import GossipTransport
from identity.keys import PeerId
from routing.gossip.router import (
    GossipConfig,
    GossipRouter,
    SendRpc,
    Validate,
    ValidationResult,
)
from routing.gossip.wire import RPC

__all__ = ["CATALOG_GOSSIP", "CATALOG_TOPIC", "GossipDriver"]

log = logging.getLogger("datanet.node.gossip")

CATALOG_TOPIC = "/datanet/catalog/1.0.0"
"""The one topic of a datanet network: every ledger record (descriptors,
deprecations, revocation lists, org records). The network itself is set apart
by its kad protocol id and admission, so one topic name serves every network."""


#: datanet's router parameters. The specification's defaults assume a node has
#: a handful of pubsub peers; a datanet node is connected to many (every DHT lookup
#: dials; in a 100-node network, to nearly all), and py-libp2p spends ~0.4 ms of
#: CPU per frame (Noise and yamux in Python, both sides). With a mesh of 6-12,
#: IHAVE to a quarter of all other peers and a 0.5 s heartbeat, 100 nodes on two
#: cores saturated at 2-4 messages/s and coverage fell to 32-80%. The publisher
#: still floods its first hop (most nodes get a record in one hop), a mesh of
#: 2-5 carries it to the rest, IHAVE goes to 3 peers once a second, and
#: anti-entropy repairs whatever gossip misses. (A mesh of 3-6 was measured too:
#: 13% slower on the real network, but full coverage in the 10,000-node simulator
#: with 30% of nodes vanished, where 2-5 misses 0.04% of deliveries;
#: benchmarks/results/gossip.json, "parameter_trial".)
CATALOG_GOSSIP = GossipConfig(
    D=3, D_lo=2, D_hi=5, D_lazy=3, D_score=2, D_out=1, gossip_factor=0.0, heartbeat_interval=1.0
)


class GossipDriver:
    """Runs the router for one node; see the module docstring.

    Args:
        self_id: this node's binary peer id.
        transport: the ``/meshsub/1.1.0`` streams.
        ledger: validates and holds what arrives.
        config: router parameters.
        rng: randomness for peer selection.
        clock: wall-clock Unix seconds.
    """

    def __init__(
        self,
        self_id: bytes,
        *,
        transport: GossipTransport,
        ledger: Ledger,
        config: GossipConfig | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self.router = GossipRouter(
            self_id,
            config=config or CATALOG_GOSSIP,
            rng=rng or random.Random(),
            now=clock(),
        )
        self.router.subscribe(CATALOG_TOPIC, clock())
        self._transport = transport
        self._ledger = ledger
        self._wake = trio.Event()

    def _validate(self, action: Validate) -> ValidationResult:
        if action.topic != CATALOG_TOPIC:
            return ValidationResult.IGNORE
        return self._ledger.ingest(action.data, from_peer=action.from_peer).result

    def start(self, already_connected: Sequence[PeerId] = ()) -> None:
        """Hear peers and RPCs from the transport (call before the node joins).

        ``already_connected``: peers admitted before this call (a peer may dial
        a restarted node before it starts gossip); they count as inbound.
        """
        self._transport.start(self._on_rpc, self._on_peer)
        for peer in already_connected:
            self._on_peer(peer, True, False)

    def _on_rpc(self, peer: PeerId, rpc: RPC) -> None:
        try:
            self.router.handle_rpc(peer.to_bytes(), rpc, self._clock())
        except Exception:  # the router is pure and must not raise; never let it kill the host
            log.exception("gossip router failed on an rpc")
        self._wake.set()

    def _on_peer(self, peer: PeerId, joined: bool, outbound: bool) -> None:
        now = self._clock()
        if joined:
            self.router.add_peer(peer.to_bytes(), outbound=outbound, now=now)
        else:
            self.router.remove_peer(peer.to_bytes(), now)
        self._wake.set()

    def publish(self, raw: bytes) -> bytes:
        """Send an accepted ledger record now; returns its message id."""
        message_id = self.router.publish(CATALOG_TOPIC, raw, self._clock())
        self._wake.set()
        return message_id

    def relay(self, raw: bytes) -> bytes:
        """Pass on an accepted record another node published (mesh only); its message id."""
        message_id = self.router.relay(CATALOG_TOPIC, raw, self._clock())
        self._wake.set()
        return message_id

    async def run(self) -> None:
        """The driver loop: carry out the router's actions until cancelled."""
        while True:
            for action in self.router.poll(self._clock()):
                if isinstance(action, SendRpc):
                    self._transport.send(action.peer, action.rpc)
                elif isinstance(action, Validate):
                    result = self._validate(action)
                    self.router.report_validation(action.message_id, result, self._clock())
                    self._wake.set()
            wait = max(0.0, min(1.0, self.router.next_deadline() - self._clock()))
            with trio.move_on_after(wait):
                await self._wake.wait()
            self._wake = trio.Event()

    def stats(self) -> dict[str, Any]:
        """Router and transport figures (JSON-safe)."""
        return {
            "topic": CATALOG_TOPIC,
            "router": self.router.stats(),
            "transport": self._transport.stats(),
            "mesh": len(self.router.mesh(CATALOG_TOPIC)),
        }
