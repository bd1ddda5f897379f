"""The control API's answers about datasets: publish, resolve, search, deprecate, watch.

Part of :mod:`datanet.api.results`, which loads it on first use of one of its
names: creating a frozen dataclass costs about a millisecond, so a command-line
command pays only for the answers it reads.

Invariants: as :mod:`datanet.api.results` (strict parsing into frozen records,
:class:`~datanet.api.errors.ApiError` for any other shape; nothing heavy imported).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from datanet.api.results import (
    MAX_EVENT_BYTES,
    _opt_text,
    bad_response,
    bytes_of,
    field_of,
    texts_of,
)

if TYPE_CHECKING:
    from datanet.records.search import FacetCount

__all__ = [
    "CertificateInfo",
    "DeprecateResult",
    "PublishResult",
    "Resolved",
    "SearchHit",
    "SearchResult",
    "SseDecoder",
    "WatchEvent",
    "parse_deprecate",
    "parse_hits",
    "parse_publish",
    "parse_resolved",
    "parse_search",
    "parse_watch_event",
]


@dataclass(frozen=True)
class PublishResult:
    """``publish``: what was stored and on how many peers.

    ``dataset_id`` is None for records that are not about one dataset (a
    revocation list, an org record); ``kind`` says which record it was. The
    daemon answers once ``dht.put_quorum`` peers stored the record:
    ``replicas`` of ``target`` peers had then, and ``pending`` writes went on
    in the background.
    """

    dataset_id: str | None
    sequence: int
    replicas: int
    kind: str = "descriptor"
    key: str = ""
    target: int = 0
    pending: int = 0


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


def parse_publish(doc: Mapping[str, Any]) -> PublishResult:
    return PublishResult(
        _opt_text(doc, "dataset_id"),
        field_of(doc, "sequence", int),
        field_of(doc, "replicas", int),
        _opt_text(doc, "kind") or "descriptor",
        _opt_text(doc, "key") or "",
        _opt_int(doc, "target"),
        _opt_int(doc, "pending"),
    )


def _opt_int(doc: Mapping[str, Any], name: str) -> int:
    """An optional non-negative count (0 when absent: an older daemon)."""
    return field_of(doc, name, int) if doc.get(name) is not None else 0


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
    # Imported here: datanet.records.search (and the policy tables it imports) is
    # needed by `search` only, not by every command that imports the client.
    from datanet.records.search import FACETS, FacetCount  # noqa: PLC0415

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


@dataclass(frozen=True)
class DeprecateResult:
    """``deprecate``: the withdrawal's sequence and on how many peers it was stored."""

    dataset_id: str
    sequence: int
    replicas: int
    target: int = 0
    pending: int = 0


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
        _opt_int(doc, "target"),
        _opt_int(doc, "pending"),
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
