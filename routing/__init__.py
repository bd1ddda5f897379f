"""routing: sans-I/O Kademlia - routing table, lookups, coordinator, stores, maintenance schedule.

Pure state machines: events and the current time in, actions out. No trio, no
libp2p, no sqlite3 (enforced by import-linter). See ``docs/kademlia.md``.

What is here: the kad-dht wire codec (:mod:`routing.wire`), the keyspace and
routing table, the lookup state machines and the :class:`Coordinator` that runs
them, the server side of a request, the bounded record and provider stores, the
maintenance :class:`Schedule` (republish, re-provide, refresh, expire) and a
simulator that runs all of it on a fake network and clock (:mod:`routing.sim`).

Reserved here for what comes next (``docs/architecture.md``), none of which
exists yet: ``routing/gossip/`` (the GossipSub v1.1 state machine),
``routing/sync.py`` (anti-entropy: what to ask whom) and ``routing/access.py``
(access-request hops, deadlines, loop detection).
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
