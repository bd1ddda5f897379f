"""What the control API needs from a node, as structural types.

The HTTP layer is written against :class:`NodeAPI` only, never against the concrete
``datanet.node.Node``, so that the real node plugs in unchanged and the HTTP layer's
own unit tests can use a small in-memory implementation.

Invariants:
* Every member here is read-only (properties or methods), so frozen dataclasses
  satisfy the protocols structurally; nothing in this module imports the node,
  trio or libp2p.
* The access-request methods (issue 10) return JSON-ready mappings whose keys are
  fixed (``AccessOutcome``, ``RequestView``, ``GrantView``, ``DenialView``,
  ``GrantCheck``, ``RouteHop``; their schemas are the response schemas of
  :mod:`datanet.api.routes`, in the OpenAPI document): the HTTP layer passes them on
  unchanged, so the node, the API and the client agree on one shape.
* So do the audit methods (issue 11: ``AuditEntry``, ``AuditHead``, ``AuditVerify``,
  ``AuditProof``, ``AuditAlarm``, ``WitnessedHead``); bytes in them are standard
  base64 text and hashes lowercase hex, already JSON-ready.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, Protocol

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

    @property
    def target(self) -> int:
        """How many peers the put aims at (0: not reported)."""

    @property
    def pending(self) -> int:
        """Writes still under way when the answer was given (they go on in the background)."""


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

    @property
    def target(self) -> int:
        """How many peers the put aims at (0: not reported)."""

    @property
    def pending(self) -> int:
        """Writes still under way when the answer was given (they go on in the background)."""


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

    async def replicas(self, dataset_id: DatasetId) -> Sequence[tuple[PeerId, Sequence[str], str]]:
        """The k closest peers' copies of the dataset's descriptor: (peer, addrs, state),
        state ``current``, ``outdated`` or ``missing``."""
        ...

    async def find_providers(
        self, key: bytes, count: int
    ) -> Sequence[tuple[PeerId, Sequence[str]]]:
        """Up to ``count`` providers of ``key`` with their addresses."""

    def routing_stats(self) -> Mapping[str, Any]:
        """Routing table and store statistics (JSON-safe values)."""

    def status(self) -> Mapping[str, Any]:
        """A summary of the node's state (JSON-safe values)."""

    def metrics_text(self) -> bytes:
        """The node's metric families in the Prometheus text format 0.0.4 (``GET /metrics``)."""

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

    # -- access requests (issue 10) ---------------------------------------------------
    async def request_access(
        self, dataset_id: DatasetId, *, purpose: str, days: int, note: str, wait: float
    ) -> Mapping[str, Any]:
        """Send a signed access request to the dataset's owner; an ``AccessOutcome``.

        Waits up to ``wait`` seconds for the decision; a request still undecided
        then comes back ``pending``.

        Raises:
            NotFound: the dataset is unknown.
            InvalidInput: a purpose outside the vocabulary, or ``days`` out of bounds.
            NetworkError: a hop failed (``gateway_unreachable``, ``no_route``…); the
                message names the hop.
        """

    async def refresh_request(self, request_id: str, *, wait: float) -> Mapping[str, Any]:
        """Ask the owner again about a sent request; an ``AccessOutcome``.

        Raises:
            NotFound: no sent request has this id (hex, or a unique prefix of 8+).
        """

    def access_requests(
        self,
        *,
        direction: Literal["received", "sent"],
        state: str | None,
        dataset: DatasetId | None,
        limit: int,
    ) -> Sequence[Mapping[str, Any]]:
        """Requests this node received (as owner) or sent, newest first; ``RequestView`` each."""

    def access_request(
        self, request_id: str, *, direction: Literal["received", "sent"]
    ) -> Mapping[str, Any]:
        """One request (``RequestView``); ``request_id`` is hex or a unique prefix of 8+.

        Raises:
            NotFound: no such request in that direction.
            InvalidInput: the prefix is ambiguous.
        """

    async def approve_request(self, request_id: str, *, days: int | None) -> Mapping[str, Any]:
        """Grant a pending received request (``days`` may shorten it); an ``AccessOutcome``.

        Raises:
            NotFound: no such received request.
            InvalidInput: it is already decided, or ``days`` is longer than asked.
        """

    async def deny_request(self, request_id: str, *, reason: str) -> Mapping[str, Any]:
        """Deny a pending received request (reason code ``denied_by_operator``,
        message ``reason``); an ``AccessOutcome``.

        Raises:
            NotFound: no such received request.
            InvalidInput: it is already decided.
        """

    def grants(
        self,
        *,
        role: Literal["issued", "received"],
        dataset: DatasetId | None,
        active: bool,
        limit: int,
    ) -> Sequence[Mapping[str, Any]]:
        """Grants this node issued (as owner) or received, newest first; ``GrantView`` each."""

    def grant(self, grant_id: str, *, details: bool) -> Mapping[str, Any]:
        """One grant (``GrantView``); with ``details``, a received grant's access details
        decrypted.

        Raises:
            NotFound: no such grant.
        """

    def verify_grant(self, raw: bytes, *, deep: bool) -> Mapping[str, Any]:
        """Check a signed grant (``GrantCheck``): ``valid`` false with the error's code and
        message for an invalid one; never raises for an invalid grant."""

    async def revoke_grant(self, grant_id: str, *, reason: str) -> Mapping[str, Any]:
        """Revoke a grant this node issued and publish the revocation; its ``GrantView``.

        Raises:
            NotFound: no such issued grant.
        """

    def purposes(self) -> Sequence[Mapping[str, Any]]:
        """The purpose vocabulary: ``{"id", "iri", "label", "description", "parent"}`` each."""

    # -- the audit transparency log (issue 11) ------------------------------------------
    def audit_entries(
        self, *, since: int, kind: str | None, limit: int
    ) -> Sequence[Mapping[str, Any]]:
        """Entries of this node's audit log from index ``since``, oldest first, at most
        ``limit``, only of ``kind`` if given; ``AuditEntry`` each (``index``, ``kind``,
        ``timestamp``, ``details``, ``record`` base64 or None, ``record_hash`` and
        ``leaf_hash`` hex).

        Raises:
            InvalidInput: an unknown ``kind``.
            StorageError: the log cannot be read or a row is damaged.
        """

    def audit_head(self, *, fresh: bool) -> Mapping[str, Any]:
        """The latest signed tree head (``AuditHead``: ``node``, ``org``, ``size``, ``root``,
        ``timestamp``, ``head`` base64, ``cosignatures``); signs a new one if entries
        arrived since the last, or when ``fresh``."""

    def audit_verify(self) -> Mapping[str, Any]:
        """Recompute the whole log and check every signed head (``AuditVerify``:
        ``ok``, ``size``, ``root``, ``entries_checked``, ``heads_checked``,
        ``first_bad_index``, ``reason``). Never raises for a damaged log: that is the answer.

        Raises:
            StorageError: the database cannot be read at all.
        """

    def audit_prove(self, index: int) -> Mapping[str, Any]:
        """A receipt for entry ``index`` under a signed head covering it (``AuditProof``:
        ``index``, ``size``, ``root``, ``receipt`` base64).

        Raises:
            NotFound: there is no entry ``index``.
        """

    def audit_alarms(self, *, limit: int) -> Sequence[Mapping[str, Any]]:
        """Alarms this node raised as a witness of other logs, newest first; ``AuditAlarm``
        each (``at``, ``kind``: shrink, fork, bad_proof or bad_head, ``log_node``,
        ``log_org``, ``reported_by``, ``detail``, ``heads`` base64)."""

    def audit_witnessed(self) -> Sequence[Mapping[str, Any]]:
        """The last head this node keeps of each other log it witnesses; ``WitnessedHead``
        each (``log_node``, ``log_org``, ``size``, ``root``, ``timestamp``, ``checked_at``,
        ``cosigned``)."""
