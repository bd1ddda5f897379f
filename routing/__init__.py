"""routing: sans-I/O Kademlia, record and provider stores, gossip and request-routing policy.

Pure state machines: events and the current time in, actions out. No trio, no
libp2p, no sqlite3 (enforced by import-linter). See ``docs/kademlia.md``.
"""

from routing.coordinator import (
    Coordinator,
    CoordinatorConfig,
    OutboundRequest,
    QueryDone,
    QueryKind,
)
from routing.records import NamespacedValidator, Validator, namespace_of
from routing.table import RoutingTable

__all__ = [
    "Coordinator",
    "CoordinatorConfig",
    "NamespacedValidator",
    "OutboundRequest",
    "QueryDone",
    "QueryKind",
    "RoutingTable",
    "Validator",
    "namespace_of",
]
