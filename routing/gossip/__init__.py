"""routing.gossip: GossipSub v1.1 (``/meshsub/1.1.0``) as a pure state machine.

The wire codec of the pubsub ``rpc.proto`` (:mod:`routing.gossip.wire`), the
router (:mod:`routing.gossip.router`: mesh, fanout, gossip, validation gating),
peer scoring (:mod:`routing.gossip.score`) and its bounded caches
(:mod:`routing.gossip.cache`). Events and the current time in, actions out; the
libp2p adapter (``datanet/p2p/gossip.py``) and the simulator
(:mod:`routing.sim.gossip`) drive the very same code. See ``docs/gossip.md``.
"""

from routing.gossip.router import (
    GossipConfig,
    GossipRouter,
    SendRpc,
    Validate,
    ValidationResult,
)
from routing.gossip.score import ScoreParams, ScoreThresholds, TopicScoreParams
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
    decode_rpc,
    encode_rpc,
    message_id,
)

__all__ = [
    "RPC",
    "GossipConfig",
    "GossipRouter",
    "GossipWireLimits",
    "Graft",
    "IHave",
    "IWant",
    "PeerInfo",
    "Prune",
    "PubMessage",
    "ScoreParams",
    "ScoreThresholds",
    "SendRpc",
    "SubOpts",
    "TopicScoreParams",
    "Validate",
    "ValidationResult",
    "decode_rpc",
    "encode_rpc",
    "message_id",
]
