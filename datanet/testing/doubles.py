"""An in-memory implementation of ``datanet.api._node_protocol.NodeAPI`` for HTTP-layer tests.

It is a test double for the *network*, not for the records: descriptors are real
signed envelopes checked with ``verify_descriptor``, DHT values are checked with
the real validators. Only the DHT and the peers are replaced by dicts. Catalog
changes go to a real :class:`~datanet.node.feed.CatalogFeed` (``feed``), as the
real node's do: ``new``/``updated`` on publish, ``withdrawn`` on deprecate.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from datanet.errors import InvalidInput, NotFound, StaleRecord
from datanet.node.feed import CatalogFeed, event_for
from datanet.node.metrics import MetricSources, NodeMetrics
from datanet.node.results import ConnectedPeer, PublishOutcome
from datanet.records.descriptor import (
    Descriptor,
    VerifiedDescriptor,
    verify_descriptor,
)
from datanet.records.ids import DatasetId
from datanet.records.search import FACETS, FacetCount, SearchFilters
from datanet.records.validators import default_validator
from datanet.store.catalog import Hit, SearchPage
from datanet.testing.clock import DAY, NOW
from datanet.testing.records import certificate, descriptor, key, signed
from identity.certs import Role, TrustStore
from identity.errors import ScopeError
from identity.keys import KeyPair, OrgId, PeerId


@dataclass
class MemoryNode:
    """A node whose network is a dict. Deterministic: keys from fixed seeds."""

    node_key: KeyPair = field(default_factory=lambda: key("\x01"))
    org_key: KeyPair = field(default_factory=lambda: key("\x02"))
    now: int = NOW
    catalog: dict[DatasetId, VerifiedDescriptor] = field(default_factory=dict)
    values: dict[bytes, bytes] = field(default_factory=dict)
    providers: dict[bytes, list[tuple[PeerId, list[str]]]] = field(default_factory=dict)
    replica_census: dict[DatasetId, list[tuple[PeerId, list[str], str]]] = field(
        default_factory=dict
    )
    known_peers: list[ConnectedPeer] = field(default_factory=list)
    feed: CatalogFeed = field(default_factory=CatalogFeed)
    withdrawn: dict[DatasetId, tuple[int, str]] = field(default_factory=dict)
    """Deprecated datasets: the withdrawal's sequence and the reason given."""
    syncs: list[tuple[int, PeerId | None]] = field(default_factory=list)
    """Every ``catalog_sync(peers, peer)`` call, in order."""

    def __post_init__(self) -> None:
        self.trust = TrustStore()
        self.trust.trust(self.org_key.org_id)
        self.chain = [
            certificate(
                self.org_key,
                self.node_key,
                [Role.PUBLISHER, Role.GATEWAY],
                not_before=self.now - 10,
                not_after=self.now + 365 * DAY,
                serial=1,
                org_name="test-org",
            )
        ]
        self.validator = default_validator(self.trust)

    # -- helpers for tests --------------------------------------------------------
    def make_descriptor(
        self, name: str = "weather/daily", *, sequence: int = 1, **kw: Any
    ) -> bytes:
        fields: dict[str, Any] = {
            "title": f"Dataset {name}",
            "description": "test data",
            "keywords": ("test",),
            "issued": self.now - 100,
            "modified": self.now - 50,
            "expires": self.now + 30 * DAY,
            **kw,
        }
        desc = descriptor(name, org=self.org_key, node=self.node_key, sequence=sequence, **fields)
        return signed(desc, key=self.node_key, chain=self.chain)

    def make_dataset_id(self, name: str = "weather/daily") -> DatasetId:
        return DatasetId(self.org_key.org_id, name)

    # -- NodeAPI -------------------------------------------------------------------
    @property
    def peer_id(self) -> PeerId:
        return self.node_key.peer_id

    @property
    def org(self) -> OrgId | None:
        return self.org_key.org_id

    def listen_addrs(self) -> list[str]:
        return [f"/ip4/127.0.0.1/tcp/4001/p2p/{self.peer_id}"]

    def peers(self) -> Sequence[ConnectedPeer]:
        return list(self.known_peers)

    async def publish(self, raw: bytes) -> PublishOutcome:
        verified = verify_descriptor(raw, self.trust, self.now)
        desc = verified.descriptor
        held = self.catalog.get(desc.dataset_id)
        if held is not None and held.descriptor.sequence > desc.sequence:
            raise StaleRecord(f"holding sequence {held.descriptor.sequence}")
        gone = self.withdrawn.get(desc.dataset_id)
        if gone is not None and gone[0] >= desc.sequence:
            raise StaleRecord(f"deprecated at sequence {gone[0]}")
        self.catalog[desc.dataset_id] = verified
        self.values[desc.dataset_id.dht_key()] = raw
        if held is None or held.descriptor.sequence < desc.sequence:
            kind = "new" if held is None else "updated"
            self.feed.publish(event_for(kind, desc, at=float(self.now)))
        return PublishOutcome(
            desc.dataset_id,
            desc.sequence,
            len(self.known_peers),
            key=desc.dataset_id.dht_key().decode(),
        )

    async def resolve(self, dataset_id: DatasetId, *, refresh: bool = False) -> VerifiedDescriptor:
        try:
            return self.catalog[dataset_id]
        except KeyError:
            raise NotFound(f"no descriptor for {dataset_id}") from None

    def search(
        self,
        query: str = "",
        *,
        filters: SearchFilters = SearchFilters(),  # noqa: B008 - frozen, immutable
        limit: int = 20,
        cursor: str | None = None,
        facets: bool = True,
    ) -> SearchPage:
        """Every word as a substring, the filters as the catalog applies them, sorted by id.

        Its cursor is a plain position (``m<offset>``); anything else is an ``InvalidInput``.
        """
        if not 1 <= limit <= 1000:
            raise InvalidInput("limit must be 1-1000")
        offset = 0
        if cursor is not None:
            if not re.fullmatch(r"m[0-9]{1,6}", cursor):
                raise InvalidInput("invalid cursor: garbled; search again without a cursor")
            offset = int(cursor[1:])
        words = query.lower().split()
        found: list[Hit] = []
        counts: dict[str, Counter[str]] = {name: Counter() for name in FACETS}
        for v in sorted(self.catalog.values(), key=lambda v: str(v.descriptor.dataset_id)):
            d = v.descriptor
            text = " ".join([d.title, d.description, *d.keywords]).lower()
            values = _facet_values(d)
            if not all(w in text for w in words) or not _keeps(filters, d, values):
                continue
            for name, vals in values.items():
                counts[name].update(vals)
            found.append(
                Hit(
                    str(d.dataset_id),
                    d.title,
                    str(d.dataset_id.org),
                    d.sequence,
                    d.modified,
                    d.keywords,
                    d.description[:200],
                    0.0,
                    license=d.license.casefold(),
                    access=d.access_policy.mode,
                    media_types=tuple(values["media_type"]),
                    themes=d.themes,
                )
            )
        page = found[offset : offset + limit]
        more = offset + limit < len(found)
        top = {
            name: [FacetCount(v, n) for v, n in sorted(c.items(), key=lambda i: (-i[1], i[0]))[:20]]
            for name, c in counts.items()
        }
        return SearchPage(
            page,
            len(found),
            top if facets else {},
            f"m{offset + limit}" if more else None,
            len(found) if facets else 0,
        )

    async def routing_get(self, key: bytes) -> bytes:
        try:
            return self.values[key]
        except KeyError:
            raise NotFound(f"no value under {key[:80]!r}") from None

    async def routing_put(self, key: bytes, value: bytes) -> int:
        self.validator.validate(key, value, self.now)
        self.values[key] = value
        return len(self.known_peers)

    async def find_peer(self, peer: PeerId) -> list[str]:
        for info in self.known_peers:
            if info.peer_id == peer:
                return list(info.addrs)
        raise NotFound(f"peer {peer} not found")

    async def replicas(self, dataset_id: DatasetId) -> list[tuple[PeerId, list[str], str]]:
        """The in-memory node holds every copy itself: no other replica to list."""
        await self.resolve(dataset_id)  # NotFound as the real node answers
        return list(self.replica_census.get(dataset_id, []))

    async def find_providers(self, key: bytes, count: int) -> list[tuple[PeerId, list[str]]]:
        return self.providers.get(key, [])[:count]

    def routing_stats(self) -> Mapping[str, Any]:
        return {"table_size": len(self.known_peers), "records": len(self.values), "buckets": [1, 2]}

    def status(self) -> Mapping[str, Any]:
        return {"catalog": len(self.catalog), "admission": "members", "started": True}

    def metrics_text(self) -> bytes:
        """The real node's families, read from this double's dicts."""
        return NodeMetrics(
            MetricSources(
                peer_states=lambda: {"admitted": len(self.known_peers)},
                routing_table_size=lambda: len(self.known_peers),
                kad_requests=dict,
                records=lambda: (len(self.values), sum(len(v) for v in self.values.values())),
                providers=lambda: sum(len(p) for p in self.providers.values()),
                catalog_size=lambda: len(self.catalog),
                ledger=dict,
                gossip=dict,
                sync=dict,
            )
        ).render()

    # -- the complete catalog (issue 9) -------------------------------------------------
    async def deprecate(self, dataset_id: DatasetId, *, reason: str) -> PublishOutcome:
        """Withdraw one of this org's datasets: a withdrawal one sequence above the copy held."""
        if dataset_id.org != self.org_key.org_id:
            raise ScopeError(f"{dataset_id} belongs to another organization")
        held = self.catalog.pop(dataset_id, None)
        if held is None:
            raise NotFound(f"no descriptor for {dataset_id}")
        sequence = held.descriptor.sequence + 1
        self.withdrawn[dataset_id] = (sequence, reason)
        self.values.pop(dataset_id.dht_key(), None)
        self.feed.publish(
            event_for(
                "withdrawn",
                held.descriptor,
                at=float(self.now),
                reason="deprecated",
                sequence=sequence,
            )
        )
        return PublishOutcome(dataset_id, sequence, len(self.known_peers))

    def catalog_stats(self) -> Mapping[str, Any]:
        orgs = {d.org for d in self.catalog}
        return {
            "datasets": len(self.catalog),
            "organizations": len(orgs),
            "withdrawn": len(self.withdrawn),
            "watchers": self.feed.subscribers,
            "gossip": {"mesh_peers": len(self.known_peers), "received": 0},
            "sync": {"rounds": len(self.syncs)},
        }

    async def catalog_sync(self, *, peers: int, peer: PeerId | None) -> list[dict[str, Any]]:
        self.syncs.append((peers, peer))
        if peer is not None:
            if all(info.peer_id != peer for info in self.known_peers):
                raise NotFound(f"peer {peer} is not connected")
            chosen = [peer]
        else:
            chosen = [info.peer_id for info in self.known_peers[:peers]]
        return [{"peer": str(p), "received": 0, "sent": 0, "in_sync": True} for p in chosen]


def _facet_values(d: Descriptor) -> dict[str, list[str]]:
    def folded(values: Any) -> list[str]:
        return list(dict.fromkeys(v.casefold() for v in values if v))

    return {
        "org": [str(d.dataset_id.org)],
        "keyword": folded(d.keywords),
        "theme": folded(d.themes),
        "license": folded([d.license]),
        "media_type": folded(x.media_type for x in d.distributions),
        "access": [d.access_policy.mode],
    }


def _keeps(filters: SearchFilters, d: Descriptor, values: dict[str, list[str]]) -> bool:
    for facet, wanted in filters.by_facet().items():
        if not set(wanted) & set(values[facet]):
            return False
    if filters.temporal_from is not None or filters.temporal_to is not None:
        if d.temporal is None:
            return False
        if filters.temporal_from is not None and d.temporal[1] < filters.temporal_from:
            return False
        if filters.temporal_to is not None and d.temporal[0] > filters.temporal_to:
            return False
    return True
