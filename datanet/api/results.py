"""The control API's answers as typed, frozen records, and their strict parsing.

These are the wire-facing results the Python client returns (text ids, latency in
milliseconds); the node's own typed results are in :mod:`datanet.node.results`.
The names here are public through :mod:`datanet.client` and documented in
``docs/api.md``.

Invariants:
* A parser accepts only the documented JSON shape: a missing field or one of the
  wrong type raises :class:`~datanet.api.errors.ApiError` ("malformed response"),
  never ``KeyError`` or ``TypeError``.
* Imports nothing heavy (no httpx, starlette, trio or libp2p).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from datanet.errors import ApiError
from datanet.records.search import FACETS, FacetCount

__all__ = [
    "CertificateInfo",
    "ConfigChange",
    "ConfigView",
    "FacetCount",
    "NodeInfo",
    "NodeStatus",
    "PeerInfo",
    "ProviderInfo",
    "PublishResult",
    "Resolved",
    "SearchHit",
    "SearchResult",
    "bad_response",
    "bytes_of",
    "field_of",
    "parse_hits",
    "parse_node_info",
    "parse_peers",
    "parse_providers",
    "parse_publish",
    "parse_resolved",
    "parse_search",
    "parse_status",
    "texts_of",
]


# --- results ------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeInfo:
    """``id``: the node's identity."""

    peer_id: str
    org: str | None
    addrs: tuple[str, ...]
    agent: str


@dataclass(frozen=True)
class PeerInfo:
    """One connected peer; ``latency_ms`` is ``None`` until measured."""

    peer_id: str
    addrs: tuple[str, ...]
    org: str | None
    latency_ms: float | None


@dataclass(frozen=True)
class PublishResult:
    """``publish``: what was stored and on how many peers."""

    dataset_id: str
    sequence: int
    replicas: int


@dataclass(frozen=True)
class CertificateInfo:
    """The publishing node's membership certificate, as the daemon verified it."""

    org: str
    org_name: str
    node: str
    roles: tuple[str, ...]
    serial: int
    not_before: int
    not_after: int


@dataclass(frozen=True)
class Resolved:
    """``resolve``: the newest valid descriptor.

    ``raw`` is the signed envelope, so a caller that does not trust its daemon can
    verify it again with ``datanet.records.descriptor.verify_descriptor``.
    """

    dataset_id: str
    sequence: int
    descriptor: Mapping[str, Any]
    certificate: CertificateInfo
    raw: bytes


@dataclass(frozen=True)
class SearchHit:
    """One catalog hit; ``fields`` holds everything the catalog returned for it."""

    dataset_id: str
    title: str
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchResult:
    """``search``: one page of hits, the match count, facet counts and the next page's cursor.

    Attributes:
        hits: this page, best first.
        total: how many datasets match (for a text query: within the ranked window).
        facets: for each facet (``org``, ``keyword``, ``theme``, ``license``,
            ``media_type``, ``access``) its top values, most frequent first.
        next_cursor: pass it as ``cursor`` for the next page; ``None`` on the last.
        counted: how many of the ``total`` matches the facet counts cover.
    """

    hits: tuple[SearchHit, ...]
    total: int
    facets: Mapping[str, tuple[FacetCount, ...]]
    next_cursor: str | None
    counted: int


@dataclass(frozen=True)
class ProviderInfo:
    """``find_providers``: a peer that provides a key."""

    peer_id: str
    addrs: tuple[str, ...]


@dataclass(frozen=True)
class ConfigView:
    """``config_show``: the config file and whether the node runs something else."""

    path: str
    config: Mapping[str, Mapping[str, Any]]
    restart_required: bool


@dataclass(frozen=True)
class ConfigChange:
    """``config_set``: the value written (canonical form)."""

    key: str
    value: Any
    restart_required: bool


@dataclass(frozen=True)
class NodeStatus:
    """``status``: a summary of the running daemon; ``node`` is the node's own report."""

    peer_id: str
    org: str | None
    version: str
    pid: int
    uptime_s: float
    api_url: str
    peers: int
    node: Mapping[str, Any]


# --- parsing ------------------------------------------------------------------------


def bad_response(what: str) -> ApiError:
    return ApiError(f"the daemon sent a malformed {what} response")


def field_of(doc: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = doc.get(name)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
        raise bad_response(f"{name!r} in the")
    return value


def texts_of(doc: Mapping[str, Any], name: str) -> tuple[str, ...]:
    values = field_of(doc, name, list)
    if not all(isinstance(v, str) for v in values):
        raise bad_response(name)
    return tuple(values)


def _opt_text(doc: Mapping[str, Any], name: str) -> str | None:
    value = doc.get(name)
    if value is not None and not isinstance(value, str):
        raise bad_response(name)
    return value


def parse_node_info(doc: Mapping[str, Any]) -> NodeInfo:
    return NodeInfo(
        field_of(doc, "peer_id", str),
        _opt_text(doc, "org"),
        texts_of(doc, "addrs"),
        field_of(doc, "agent", str),
    )


def parse_peers(doc: Mapping[str, Any]) -> list[PeerInfo]:
    out = []
    for item in field_of(doc, "peers", list):
        if not isinstance(item, dict):
            raise bad_response("peers")
        latency = item.get("latency_ms")
        if latency is not None and (
            isinstance(latency, bool) or not isinstance(latency, int | float)
        ):
            raise bad_response("latency_ms")
        out.append(
            PeerInfo(
                field_of(item, "peer_id", str),
                texts_of(item, "addrs"),
                _opt_text(item, "org"),
                None if latency is None else float(latency),
            )
        )
    return out


def parse_publish(doc: Mapping[str, Any]) -> PublishResult:
    return PublishResult(
        field_of(doc, "dataset_id", str),
        field_of(doc, "sequence", int),
        field_of(doc, "replicas", int),
    )


def bytes_of(doc: Mapping[str, Any], name: str) -> bytes:
    try:
        return base64.b64decode(field_of(doc, name, str), validate=True)
    except binascii.Error:
        raise bad_response(name) from None


def parse_resolved(doc: Mapping[str, Any]) -> Resolved:
    cert = field_of(doc, "certificate", dict)
    return Resolved(
        dataset_id=field_of(doc, "dataset_id", str),
        sequence=field_of(doc, "sequence", int),
        descriptor=field_of(doc, "descriptor", dict),
        certificate=CertificateInfo(
            org=field_of(cert, "org", str),
            org_name=field_of(cert, "org_name", str),
            node=field_of(cert, "node", str),
            roles=texts_of(cert, "roles"),
            serial=field_of(cert, "serial", int),
            not_before=field_of(cert, "not_before", int),
            not_after=field_of(cert, "not_after", int),
        ),
        raw=bytes_of(doc, "raw"),
    )


def parse_hits(doc: Mapping[str, Any]) -> list[SearchHit]:
    out = []
    for item in field_of(doc, "hits", list):
        if not isinstance(item, dict):
            raise bad_response("hits")
        title = item.get("title", "")
        out.append(
            SearchHit(
                field_of(item, "dataset_id", str), title if isinstance(title, str) else "", item
            )
        )
    return out


def parse_search(doc: Mapping[str, Any]) -> SearchResult:
    facets: dict[str, tuple[FacetCount, ...]] = {}
    for name, values in field_of(doc, "facets", dict).items():
        if name not in FACETS or not isinstance(values, list):
            raise bad_response("facets")
        counts = []
        for item in values:
            if not isinstance(item, dict):
                raise bad_response("facets")
            counts.append(FacetCount(field_of(item, "value", str), field_of(item, "count", int)))
        facets[name] = tuple(counts)
    return SearchResult(
        hits=tuple(parse_hits(doc)),
        total=field_of(doc, "total", int),
        facets=facets,
        next_cursor=_opt_text(doc, "next_cursor"),
        counted=field_of(doc, "counted", int),
    )


def parse_providers(doc: Mapping[str, Any]) -> list[ProviderInfo]:
    out = []
    for item in field_of(doc, "providers", list):
        if not isinstance(item, dict):
            raise bad_response("providers")
        out.append(ProviderInfo(field_of(item, "peer_id", str), texts_of(item, "addrs")))
    return out


def parse_status(doc: Mapping[str, Any]) -> NodeStatus:
    return NodeStatus(
        peer_id=field_of(doc, "peer_id", str),
        org=_opt_text(doc, "org"),
        version=field_of(doc, "version", str),
        pid=field_of(doc, "pid", int),
        uptime_s=float(field_of(doc, "uptime_s", (int, float))),
        api_url=field_of(doc, "api_url", str),
        peers=field_of(doc, "peers", int),
        node=field_of(doc, "node", dict),
    )
