"""routing: sans-I/O Kademlia, GossipSub v1.1 and set reconciliation - pure state machines.

Pure state machines: events and the current time in, actions out. No trio, no
libp2p, no sqlite3 (enforced by import-linter). See ``docs/kademlia.md``.

What is here: the kad-dht wire codec (:mod:`routing.wire`), the keyspace and
routing table, the lookup state machines and the :class:`Coordinator` that runs
them, the server side of a request, the bounded record and provider stores, the
maintenance :class:`Schedule` (republish, re-provide, refresh, expire), the
GossipSub v1.1 router (:mod:`routing.gossip`, ``docs/gossip.md``), range-based
set reconciliation for anti-entropy (:mod:`routing.sync`, ``docs/sync.md``) and
a simulator that runs all of it on a fake network and clock (:mod:`routing.sim`).

Reserved here for what comes next (``docs/architecture.md``):
``routing/access.py`` (access-request hops, deadlines, loop detection).
"""

from routing.coordinator import (
    Coordinator,
    CoordinatorConfig,
    OutboundRequest,
    QueryDone,
    QueryKind,
)
from routing.records import NamespacedValidator, Validator, namespace_of
from routing.schedule import Schedule, ScheduleAction
from routing.table import RoutingTable

__all__ = [
    "Coordinator",
    "CoordinatorConfig",
    "NamespacedValidator",
    "OutboundRequest",
    "QueryDone",
    "QueryKind",
    "RoutingTable",
    "Schedule",
    "ScheduleAction",
    "Validator",
    "namespace_of",
]
