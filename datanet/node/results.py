"""What the node's operations return: frozen records the API turns into JSON.

These are the node's own, typed results (``PeerId``, ``DatasetId``, latency in
seconds). The Python client has its own wire-facing results with other names
(:class:`datanet.client.PeerInfo`, :class:`datanet.client.PublishResult`: text
ids, milliseconds), so each name means one thing.

Invariant: imports nothing heavy (no trio, libp2p or sqlite3), so the API's test
doubles can return the very same types as the real node.
"""

from __future__ import annotations

from dataclasses import dataclass

from datanet.records.ids import DatasetId
from identity.keys import OrgId, PeerId

__all__ = ["ConnectedPeer", "PublishOutcome"]


@dataclass(frozen=True)
class ConnectedPeer:
    """A connected peer as this node sees it."""

    peer_id: PeerId
    addrs: tuple[str, ...]
    org: OrgId | None
    latency: float | None
    """Last measured round trip in seconds, ``None`` until measured."""


@dataclass(frozen=True)
class PublishOutcome:
    """The outcome of publishing one ledger record (most often a descriptor)."""

    dataset_id: DatasetId | None
    """The dataset (descriptors and deprecations); None for revocation lists and org records."""
    sequence: int
    replicas: int
    """How many peers acknowledged storing it (echoed the record) when the answer was given."""
    kind: str = "descriptor"
    """descriptor, deprecation, revocation or org."""
    key: str = ""
    """Its DHT key (``/dn/…``, ``/dn-rev/…``, ``/dn-org/…``); "" when not reported."""
    target: int = 0
    """How many peers the put aims at (the k closest found, or the nearest candidates so far)."""
    pending: int = 0
    """Writes still under way when the answer was given; they go on in the background."""
