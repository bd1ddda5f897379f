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
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from datanet.errors import ApiError
from datanet.records.search import FACETS, FacetCount

__all__ = [
    "MAX_EVENT_BYTES",
    "CertificateInfo",
    "ConfigChange",
    "ConfigView",
    "DeprecateResult",
    "FacetCount",
    "NodeInfo",
    "NodeStatus",
    "PeerInfo",
    "ProviderInfo",
    "PublishResult",
    "Resolved",
    "SearchHit",
    "SearchResult",
    "SseDecoder",
    "WatchEvent",
    "bad_response",
    "bytes_of",
    "field_of",
    "parse_deprecate",
    "parse_hits",
    "parse_node_info",
    "parse_peers",
    "parse_providers",
    "parse_publish",
    "parse_resolved",
    "parse_search",
    "parse_status",
    "parse_watch_event",
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
    """``publish``: what was stored and on how many peers.

    ``dataset_id`` is None for records that are not about one dataset (a
    revocation list, an org record); ``kind`` says which record it was.
    """

    dataset_id: str | None
    sequence: int
    replicas: int
    kind: str = "descriptor"
    key: str = ""


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
        _opt_text(doc, "dataset_id"),
        field_of(doc, "sequence", int),
        field_of(doc, "replicas", int),
        _opt_text(doc, "kind") or "descriptor",
        _opt_text(doc, "key") or "",
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


# --- the complete catalog (issue 9) -------------------------------------------------

MAX_EVENT_BYTES = 1024 * 1024
"""The largest server-sent event the client accepts (the daemon's are under 20 KiB)."""


@dataclass(frozen=True)
class DeprecateResult:
    """``deprecate``: the withdrawal's sequence and on how many peers it was stored."""

    dataset_id: str
    sequence: int
    replicas: int


@dataclass(frozen=True)
class WatchEvent:
    """One event of ``watch``: a catalog change, or an ``overflow`` marker.

    ``kind`` is ``new``, ``updated``, ``withdrawn`` (``reason``: ``deprecated``,
    ``revoked`` or ``expired``) or ``overflow`` (``lost`` events were missed here:
    the watcher fell behind). ``at`` is when the daemon learned it (Unix seconds);
    ``fields`` holds the whole JSON object as sent.
    """

    kind: str
    dataset_id: str = ""
    sequence: int = 0
    org: str = ""
    title: str = ""
    keywords: tuple[str, ...] = ()
    themes: tuple[str, ...] = ()
    description: str = ""
    reason: str | None = None
    at: float = 0.0
    lost: int = 0
    fields: Mapping[str, Any] = field(default_factory=dict)


def parse_deprecate(doc: Mapping[str, Any]) -> DeprecateResult:
    return DeprecateResult(
        field_of(doc, "dataset_id", str),
        field_of(doc, "sequence", int),
        field_of(doc, "replicas", int),
    )


_CHANGE_KINDS = ("new", "updated", "withdrawn")


def parse_watch_event(name: str, data: str) -> WatchEvent:
    """The event named ``name`` with JSON ``data``; a kind this client does not know
    yet (a newer daemon) comes back with only ``kind`` and ``fields``.

    Raises:
        ApiError: malformed JSON, a known kind of the wrong shape, or an ``event:``
            name other than the data's ``kind``.
    """
    try:
        doc = json.loads(data)
    except ValueError:
        raise bad_response("watch event (not JSON)") from None
    if not isinstance(doc, dict):
        raise bad_response("watch event")
    kind = field_of(doc, "kind", str)
    if kind != name:
        raise bad_response("watch event (event name and kind differ)")
    at = float(field_of(doc, "at", (int, float)))
    if kind == "overflow":
        return WatchEvent(kind, at=at, lost=field_of(doc, "lost", int), fields=doc)
    if kind not in _CHANGE_KINDS:
        return WatchEvent(kind, at=at, fields=doc)
    return WatchEvent(
        kind,
        dataset_id=field_of(doc, "dataset_id", str),
        sequence=field_of(doc, "sequence", int),
        org=field_of(doc, "org", str),
        title=field_of(doc, "title", str),
        keywords=texts_of(doc, "keywords"),
        themes=texts_of(doc, "themes"),
        description=field_of(doc, "description", str),
        reason=_opt_text(doc, "reason"),
        at=at,
        fields=doc,
    )


class SseDecoder:
    """Turns the lines of a ``text/event-stream`` into ``(event name, data)`` pairs.

    Follows the WHATWG rules the client needs: comments (``:`` lines) are skipped,
    ``data:`` lines are joined with newlines, a blank line dispatches, ``id`` and
    ``retry`` are ignored, the default name is ``message``.

    Raises:
        ApiError: one event's data exceeds :data:`MAX_EVENT_BYTES`.
    """

    def __init__(self) -> None:
        self._name = ""
        self._data: list[str] = []
        self._size = 0

    def feed(self, line: str) -> tuple[str, str] | None:
        """Take one line (without its line break); the event it completes, if any."""
        if not line:
            if not self._data:
                self._name = ""
                return None
            event = (self._name or "message", "\n".join(self._data))
            self._name, self._data, self._size = "", [], 0
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._name = value
        elif name == "data":
            self._size += len(value) + 1
            if self._size > MAX_EVENT_BYTES:
                raise bad_response(f"watch event (over {MAX_EVENT_BYTES} bytes)")
            self._data.append(value)
        return None
