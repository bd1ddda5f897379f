"""What the control API needs from a node, as structural types.

The HTTP layer is written against :class:`NodeAPI` only, never against the concrete
``datanet.node.Node``, so that the real node plugs in unchanged and the HTTP layer's
own unit tests can use a small in-memory implementation.

Invariant: every member here is read-only (properties or methods), so frozen
dataclasses satisfy the protocols structurally; nothing in this module imports the
node, trio or libp2p.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from datanet.records.ids import DatasetId
from datanet.records.search import SearchFilters
from identity.certs import MembershipCertificate
from identity.keys import OrgId, PeerId

__all__ = [
    "CatalogEventLike",
    "CatalogFeedLike",
    "ConnectedPeerLike",
    "DeprecateOutcomeLike",
    "DescriptorLike",
    "FacetCountLike",
    "HitLike",
    "NodeAPI",
    "PublishOutcomeLike",
    "SearchPageLike",
    "VerifiedDescriptorLike",
]


class ConnectedPeerLike(Protocol):
    """A connected peer as the node sees it."""

    @property
    def peer_id(self) -> PeerId:
        """The peer's id."""

    @property
    def addrs(self) -> Sequence[str]:
        """Its known multiaddrs."""

    @property
    def org(self) -> OrgId | None:
        """The organization of its admitted certificate, if any."""

    @property
    def latency(self) -> float | None:
        """Last measured round trip in seconds, if measured."""


class PublishOutcomeLike(Protocol):
    """The outcome of publishing one ledger record (most often a descriptor)."""

    @property
    def dataset_id(self) -> DatasetId | None:
        """The published dataset (None for a revocation list or an org record)."""

    @property
    def kind(self) -> str:
        """descriptor, deprecation, revocation or org."""

    @property
    def key(self) -> str:
        """The record's DHT key."""

    @property
    def sequence(self) -> int:
        """The descriptor's sequence number."""

    @property
    def replicas(self) -> int:
        """How many peers acknowledged storing it."""


class DescriptorLike(Protocol):
    """The parts of ``datanet.records.descriptor.Descriptor`` the API shows."""

    @property
    def dataset_id(self) -> DatasetId:
        """The dataset this describes."""

    @property
    def sequence(self) -> int:
        """Its monotonically increasing sequence number."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe rendering."""


class VerifiedDescriptorLike(Protocol):
    """``datanet.records.descriptor.VerifiedDescriptor``: a descriptor whose checks passed."""

    @property
    def descriptor(self) -> DescriptorLike:
        """The decoded descriptor."""

    @property
    def certificate(self) -> MembershipCertificate:
        """The publishing node's membership certificate."""

    @property
    def raw(self) -> bytes:
        """The exact signed bytes."""


class HitLike(Protocol):
    """One catalog search result (``datanet.store.catalog.Hit``); every dataclass field is shown."""

    @property
    def dataset_id(self) -> str:
        """The dataset found, ``dn://…`` text."""

    @property
    def title(self) -> str:
        """Its title."""


class DeprecateOutcomeLike(Protocol):
    """The outcome of deprecating one dataset (a signed withdrawal, announced)."""

    @property
    def dataset_id(self) -> DatasetId | None:
        """The deprecated dataset (always set for a deprecation)."""

    @property
    def sequence(self) -> int:
        """The withdrawal's sequence number (above the last descriptor's)."""

    @property
    def replicas(self) -> int:
        """How many peers acknowledged storing it."""


class CatalogEventLike(Protocol):
    """``datanet.node.feed.CatalogEvent``: one catalog change, or an overflow marker."""

    @property
    def kind(self) -> str:
        """``new``, ``updated``, ``withdrawn`` or ``overflow``."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe rendering."""


class CatalogFeedLike(Protocol):
    """``datanet.node.feed.CatalogFeed``: the catalog's change feed."""

    def subscribe(
        self, query: str = ""
    ) -> AbstractAsyncContextManager[AsyncIterator[CatalogEventLike]]:
        """Events matching ``query`` while the block lasts.

        Raises:
            InvalidInput: too many subscribers, or ``query`` too long.
        """

    @property
    def subscribers(self) -> int:
        """How many subscribers are registered now."""

    def close(self) -> None:
        """End every subscription (the daemon stops): open watch streams finish at once."""


class FacetCountLike(Protocol):
    """``datanet.records.search.FacetCount``: one facet value and its count."""

    @property
    def value(self) -> str:
        """The facet value."""

    @property
    def count(self) -> int:
        """How many matches carry it."""


class SearchPageLike(Protocol):
    """``datanet.store.catalog.SearchPage``: one page of a catalog search."""

    @property
    def hits(self) -> Sequence[HitLike]:
        """This page, best first."""

    @property
    def total(self) -> int:
        """How many descriptors match (text queries: within the ranked window)."""

    @property
    def facets(self) -> Mapping[str, Sequence[FacetCountLike]]:
        """Top values per facet: org, keyword, theme, license, media_type, access."""

    @property
    def next_cursor(self) -> str | None:
        """The next page's cursor; ``None`` on the last page."""

    @property
    def counted(self) -> int:
        """How many of the matches the facet counts cover."""


class NodeAPI(Protocol):
    """The node operations the control API exposes."""

    @property
    def peer_id(self) -> PeerId:
        """This node's peer id."""

    @property
    def org(self) -> OrgId | None:
        """The organization of this node's certificate, if installed."""

    def listen_addrs(self) -> list[str]:
        """Full multiaddrs (with ``/p2p/``) the node listens on."""

    def peers(self) -> Sequence[ConnectedPeerLike]:
        """Connected peers."""

    async def publish(self, raw: bytes) -> PublishOutcomeLike:
        """Verify, store and announce a signed descriptor.

        Raises:
            DatanetError: the descriptor is invalid, stale, or could not be stored.
        """

    async def resolve(
        self, dataset_id: DatasetId, *, refresh: bool = False
    ) -> VerifiedDescriptorLike:
        """Find the newest valid descriptor for ``dataset_id``.

        Raises:
            NotFound: no valid descriptor was found.
        """

    def search(
        self,
        query: str = "",
        *,
        filters: SearchFilters = ...,
        limit: int = 20,
        cursor: str | None = None,
        facets: bool = True,
    ) -> SearchPageLike:
        """Full-text and faceted search of the local catalog.

        Raises:
            InvalidInput: a bad query, limit or cursor.
        """

    async def routing_get(self, key: bytes) -> bytes:
        """The best valid DHT value under ``key``.

        Raises:
            NotFound: no valid value was found.
        """

    async def routing_put(self, key: bytes, value: bytes) -> int:
        """Store a validated value on the closest peers; returns the replica count."""

    async def find_peer(self, peer: PeerId) -> list[str]:
        """Known or discovered multiaddrs of ``peer``.

        Raises:
            NotFound: the peer could not be found.
        """

    async def find_providers(
        self, key: bytes, count: int
    ) -> Sequence[tuple[PeerId, Sequence[str]]]:
        """Up to ``count`` providers of ``key`` with their addresses."""

    def routing_stats(self) -> Mapping[str, Any]:
        """Routing table and store statistics (JSON-safe values)."""

    def status(self) -> Mapping[str, Any]:
        """A summary of the node's state (JSON-safe values)."""

    # -- the complete catalog (issue 9) -------------------------------------------------
    @property
    def feed(self) -> CatalogFeedLike:
        """The catalog's change feed (what ``catalog/watch`` streams)."""

    async def deprecate(self, dataset_id: DatasetId, *, reason: str) -> DeprecateOutcomeLike:
        """Sign and announce the withdrawal of one of this node's org's datasets.

        Raises:
            NotFound: the dataset is not held.
            DatanetError: it belongs to another org, or the withdrawal could not be stored.
        """

    def catalog_stats(self) -> Mapping[str, Any]:
        """Catalog counts, gossip and sync statistics (JSON-safe values)."""

    async def catalog_sync(self, *, peers: int, peer: PeerId | None) -> Sequence[Mapping[str, Any]]:
        """Run anti-entropy now with ``peer``, or with up to ``peers`` peers; one dict per peer.

        Raises:
            NotFound: ``peer`` is not connected or known.
        """
