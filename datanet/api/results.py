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
    "AccessOutcome",
    "AccessRequestInfo",
    "AuditAlarm",
    "AuditEntryInfo",
    "AuditHeadInfo",
    "AuditProof",
    "AuditVerifyReport",
    "CertificateInfo",
    "ConfigChange",
    "ConfigView",
    "CosignatureInfo",
    "DenialInfo",
    "DeprecateResult",
    "FacetCount",
    "GrantCheck",
    "GrantInfo",
    "NodeInfo",
    "NodeStatus",
    "PeerInfo",
    "ProviderInfo",
    "PublishResult",
    "PurposeInfo",
    "ReceiptCheck",
    "Resolved",
    "RouteHop",
    "SearchHit",
    "SearchResult",
    "SseDecoder",
    "WatchEvent",
    "WitnessedHead",
    "bad_response",
    "bytes_of",
    "field_of",
    "parse_access_requests",
    "parse_audit_alarms",
    "parse_audit_entries",
    "parse_audit_witnessed",
    "parse_deprecate",
    "parse_grants",
    "parse_hits",
    "parse_node_info",
    "parse_peers",
    "parse_providers",
    "parse_publish",
    "parse_purposes",
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


# --- access requests, approvals and grants (issue 10) --------------------------------


def _opt_int(doc: Mapping[str, Any], name: str) -> int | None:
    value = doc.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise bad_response(name)
    return value


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise bad_response(what)
    return value


def _items(doc: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    return [_mapping(item, name) for item in field_of(doc, name, list)]


def _b64_field(doc: Mapping[str, Any], name: str) -> bytes:
    text = field_of(doc, name, str)
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise bad_response(name) from None


@dataclass(frozen=True)
class RouteHop:
    """One hop of a request's route: who handled it, and whether it forwarded or decided."""

    hop: int
    node: str
    org: str
    action: str
    at: int

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> RouteHop:
        """Parse one ``RouteHop`` object.

        Raises:
            ApiError: a missing field or one of the wrong type.
        """
        return cls(
            field_of(doc, "hop", int),
            field_of(doc, "node", str),
            field_of(doc, "org", str),
            field_of(doc, "action", str),
            field_of(doc, "at", int),
        )


def _route(doc: Mapping[str, Any]) -> tuple[RouteHop, ...]:
    return tuple(RouteHop.from_json(h) for h in _items(doc, "route"))


@dataclass(frozen=True)
class AccessRequestInfo:
    """An access request as this node sees it (``direction``: ``sent`` or ``received``).

    ``state`` is ``pending``, ``granted``, ``denied`` or ``failed``; once decided,
    ``reason`` (a denial's code), ``message``, ``decided_at`` and ``decided_by``
    (``policy``, ``operator`` or ``deadline``) say how; ``grant_id`` names the grant.
    """

    request_id: str
    direction: str
    dataset_id: str
    sequence: int
    purpose: str
    days: int
    note: str
    requester_node: str
    requester_org: str
    created: int
    deadline: int
    state: str
    reason: str | None
    message: str
    decided_at: int | None
    decided_by: str | None
    grant_id: str | None
    route: tuple[RouteHop, ...]

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> AccessRequestInfo:
        """Parse one ``RequestView`` object.

        Raises:
            ApiError: a missing field or one of the wrong type.
        """
        return cls(
            field_of(doc, "request_id", str),
            field_of(doc, "direction", str),
            field_of(doc, "dataset_id", str),
            field_of(doc, "sequence", int),
            field_of(doc, "purpose", str),
            field_of(doc, "days", int),
            field_of(doc, "note", str),
            field_of(doc, "requester_node", str),
            field_of(doc, "requester_org", str),
            field_of(doc, "created", int),
            field_of(doc, "deadline", int),
            field_of(doc, "state", str),
            _opt_text(doc, "reason"),
            field_of(doc, "message", str),
            _opt_int(doc, "decided_at"),
            _opt_text(doc, "decided_by"),
            _opt_text(doc, "grant_id"),
            _route(doc),
        )


@dataclass(frozen=True)
class GrantInfo:
    """A signed grant: who may use which dataset, for what, until when.

    ``role`` is ``issued`` (this node's org owns the data) or ``received``;
    ``details`` holds the decrypted access details when they were asked for;
    ``envelope`` is the signed grant itself (what ``datanet grants verify`` checks).
    """

    grant_id: str
    request_id: str
    dataset_id: str
    sequence: int
    grantee_node: str
    grantee_org: str
    purpose: str
    not_before: int
    not_after: int
    valid_until: int
    issuer_node: str
    issuer_org: str
    issued_at: int
    route: tuple[RouteHop, ...]
    role: str
    revoked_at: int | None
    revocation_reason: str
    details: Mapping[str, Any] | None
    envelope: bytes

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> GrantInfo:
        """Parse one ``GrantView`` object.

        Raises:
            ApiError: a missing field or one of the wrong type.
        """
        details = doc.get("details")
        return cls(
            field_of(doc, "grant_id", str),
            field_of(doc, "request_id", str),
            field_of(doc, "dataset_id", str),
            field_of(doc, "sequence", int),
            field_of(doc, "grantee_node", str),
            field_of(doc, "grantee_org", str),
            field_of(doc, "purpose", str),
            field_of(doc, "not_before", int),
            field_of(doc, "not_after", int),
            field_of(doc, "valid_until", int),
            field_of(doc, "issuer_node", str),
            field_of(doc, "issuer_org", str),
            field_of(doc, "issued_at", int),
            _route(doc),
            field_of(doc, "role", str),
            _opt_int(doc, "revoked_at"),
            field_of(doc, "revocation_reason", str),
            None if details is None else dict(_mapping(details, "details")),
            _b64_field(doc, "envelope"),
        )


@dataclass(frozen=True)
class DenialInfo:
    """A signed denial: the machine-readable ``reason``, what it means, the owner's words."""

    reason: str
    explanation: str
    message: str
    node: str
    org: str
    decided_at: int
    route: tuple[RouteHop, ...]
    envelope: bytes

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> DenialInfo:
        """Parse one ``DenialView`` object.

        Raises:
            ApiError: a missing field or one of the wrong type.
        """
        return cls(
            field_of(doc, "reason", str),
            field_of(doc, "explanation", str),
            field_of(doc, "message", str),
            field_of(doc, "node", str),
            field_of(doc, "org", str),
            field_of(doc, "decided_at", int),
            _route(doc),
            _b64_field(doc, "envelope"),
        )


_OUTCOME_STATES = ("granted", "pending", "denied")


@dataclass(frozen=True)
class AccessOutcome:
    """The answer to a request: ``granted`` (``grant`` set), ``denied`` (``denial`` set)
    or ``pending`` (neither: the owner's operator has not decided yet)."""

    state: str
    request: AccessRequestInfo
    grant: GrantInfo | None
    denial: DenialInfo | None
    receipt: bytes | None = None
    """The owner's audit receipt of the decision (issue 11), when the owner sent one."""

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> AccessOutcome:
        """Parse one ``AccessOutcome`` object.

        Raises:
            ApiError: a missing field, one of the wrong type, or a state without
                its grant or denial.
        """
        state = field_of(doc, "state", str)
        grant, denial = doc.get("grant"), doc.get("denial")
        outcome = cls(
            state,
            AccessRequestInfo.from_json(_mapping(doc.get("request"), "request")),
            None if grant is None else GrantInfo.from_json(_mapping(grant, "grant")),
            None if denial is None else DenialInfo.from_json(_mapping(denial, "denial")),
            None if doc.get("receipt") is None else _b64_field(doc, "receipt"),
        )
        if state not in _OUTCOME_STATES or (state == "granted") != (outcome.grant is not None):
            raise bad_response("access outcome")
        if (state == "denied") != (outcome.denial is not None):
            raise bad_response("access outcome")
        return outcome


@dataclass(frozen=True)
class GrantCheck:
    """``verify_grant``: ``valid``, or the ``error_code``/``error_message`` that says why not;
    ``grant`` is the decoded grant when it could be decoded."""

    valid: bool
    deep: bool
    error_code: str | None
    error_message: str | None
    grant: GrantInfo | None

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> GrantCheck:
        """Parse one ``GrantCheck`` object.

        Raises:
            ApiError: a missing field or one of the wrong type.
        """
        error, grant = doc.get("error"), doc.get("grant")
        code = message = None
        if error is not None:
            error = _mapping(error, "error")
            code, message = field_of(error, "code", str), field_of(error, "message", str)
        valid = field_of(doc, "valid", bool)
        if valid == (error is not None):
            raise bad_response("grant check")
        return cls(
            valid,
            field_of(doc, "deep", bool),
            code,
            message,
            None if grant is None else GrantInfo.from_json(_mapping(grant, "grant")),
        )


@dataclass(frozen=True)
class PurposeInfo:
    """One purpose of the vocabulary (a W3C DPV term) and its broader term."""

    id: str
    iri: str
    label: str
    description: str
    parent: str | None

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> PurposeInfo:
        """Parse one purpose object.

        Raises:
            ApiError: a missing field or one of the wrong type.
        """
        return cls(
            field_of(doc, "id", str),
            field_of(doc, "iri", str),
            field_of(doc, "label", str),
            field_of(doc, "description", str),
            _opt_text(doc, "parent"),
        )


def parse_access_requests(doc: Mapping[str, Any]) -> list[AccessRequestInfo]:
    """The ``requests`` list of ``access/requests``."""
    return [AccessRequestInfo.from_json(item) for item in _items(doc, "requests")]


def parse_grants(doc: Mapping[str, Any]) -> list[GrantInfo]:
    """The ``grants`` list of ``access/grants``."""
    return [GrantInfo.from_json(item) for item in _items(doc, "grants")]


def parse_purposes(doc: Mapping[str, Any]) -> list[PurposeInfo]:
    """The ``purposes`` list of ``access/purposes``."""
    return [PurposeInfo.from_json(item) for item in _items(doc, "purposes")]


# --- the audit transparency log (issue 11) -------------------------------------------


def _hex_field(doc: Mapping[str, Any], name: str) -> str:
    text: str = field_of(doc, name, str)
    try:
        bytes.fromhex(text)
    except ValueError:
        raise bad_response(name) from None
    return text


def _opt_b64(doc: Mapping[str, Any], name: str) -> bytes | None:
    return None if doc.get(name) is None else _b64_field(doc, name)


@dataclass(frozen=True)
class AuditEntryInfo:
    """One entry of a node's audit log (one line of ``audit export``).

    ``record`` holds the exact signed bytes the entry refers to (up to 4 KiB), else
    None; ``record_hash`` is their SHA-256 (hex) either way, None when the entry
    refers to no record; ``leaf_hash`` is the entry's RFC 9162 leaf hash (hex).
    """

    index: int
    kind: str
    timestamp: int
    details: Mapping[str, Any]
    record: bytes | None
    record_hash: str | None
    leaf_hash: str

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> AuditEntryInfo:
        """Parse one ``AuditEntry`` object.

        Raises:
            ApiError: a missing field or one of the wrong type.
        """
        record_hash = doc.get("record_hash")
        return cls(
            field_of(doc, "index", int),
            field_of(doc, "kind", str),
            field_of(doc, "timestamp", int),
            dict(_mapping(doc.get("details"), "details")),
            _opt_b64(doc, "record"),
            None if record_hash is None else _hex_field(doc, "record_hash"),
            _hex_field(doc, "leaf_hash"),
        )


@dataclass(frozen=True)
class CosignatureInfo:
    """A witness's cosignature of a head: which node of which org checked it, and when."""

    witness: str
    org: str
    at: int
    cosignature: bytes

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> CosignatureInfo:
        """Parse one cosignature object.

        Raises:
            ApiError: a missing field or one of the wrong type.
        """
        return cls(
            field_of(doc, "witness", str),
            field_of(doc, "org", str),
            field_of(doc, "at", int),
            _b64_field(doc, "cosignature"),
        )


@dataclass(frozen=True)
class AuditHeadInfo:
    """``audit head``: a signed tree head of the node's log (``head``: the signed bytes)."""

    node: str
    org: str | None
    size: int
    root: str
    timestamp: int
    head: bytes
    cosignatures: tuple[CosignatureInfo, ...]

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> AuditHeadInfo:
        """Parse one ``AuditHead`` object.

        Raises:
            ApiError: a missing field or one of the wrong type.
        """
        return cls(
            field_of(doc, "node", str),
            _opt_text(doc, "org"),
            field_of(doc, "size", int),
            _hex_field(doc, "root"),
            field_of(doc, "timestamp", int),
            _b64_field(doc, "head"),
            tuple(CosignatureInfo.from_json(c) for c in _items(doc, "cosignatures")),
        )


@dataclass(frozen=True)
class AuditVerifyReport:
    """``audit verify``: ``ok``, or the first bad entry and why."""

    ok: bool
    size: int
    root: str
    entries_checked: int
    heads_checked: int
    first_bad_index: int | None
    reason: str | None

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> AuditVerifyReport:
        """Parse one ``AuditVerify`` object.

        Raises:
            ApiError: a missing field, one of the wrong type, or a failure without its entry.
        """
        report = cls(
            field_of(doc, "ok", bool),
            field_of(doc, "size", int),
            _hex_field(doc, "root"),
            field_of(doc, "entries_checked", int),
            field_of(doc, "heads_checked", int),
            _opt_int(doc, "first_bad_index"),
            _opt_text(doc, "reason"),
        )
        if report.ok == (report.first_bad_index is not None):
            raise bad_response("audit verify")
        return report


@dataclass(frozen=True)
class AuditProof:
    """``audit prove``: the receipt of entry ``index`` under a head of ``size`` entries."""

    index: int
    size: int
    root: str
    receipt: bytes

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> AuditProof:
        """Parse one ``AuditProof`` object.

        Raises:
            ApiError: a missing field or one of the wrong type.
        """
        return cls(
            field_of(doc, "index", int),
            field_of(doc, "size", int),
            _hex_field(doc, "root"),
            _b64_field(doc, "receipt"),
        )


@dataclass(frozen=True)
class AuditAlarm:
    """An alarm raised while witnessing another node's log (``heads``: the evidence)."""

    at: int
    kind: str
    log_node: str
    log_org: str | None
    reported_by: str
    detail: str
    heads: tuple[bytes, ...]

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> AuditAlarm:
        """Parse one ``AuditAlarm`` object.

        Raises:
            ApiError: a missing field or one of the wrong type.
        """
        heads = texts_of(doc, "heads")
        return cls(
            field_of(doc, "at", int),
            field_of(doc, "kind", str),
            field_of(doc, "log_node", str),
            _opt_text(doc, "log_org"),
            field_of(doc, "reported_by", str),
            field_of(doc, "detail", str),
            tuple(_b64_field({"head": h}, "head") for h in heads),
        )


@dataclass(frozen=True)
class WitnessedHead:
    """The last head a node keeps of another node's log, and whether it cosigned it."""

    log_node: str
    log_org: str | None
    size: int
    root: str
    timestamp: int
    checked_at: int
    cosigned: bool

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> WitnessedHead:
        """Parse one ``WitnessedHead`` object.

        Raises:
            ApiError: a missing field or one of the wrong type.
        """
        return cls(
            field_of(doc, "log_node", str),
            _opt_text(doc, "log_org"),
            field_of(doc, "size", int),
            _hex_field(doc, "root"),
            field_of(doc, "timestamp", int),
            field_of(doc, "checked_at", int),
            field_of(doc, "cosigned", bool),
        )


def parse_audit_entries(doc: Mapping[str, Any]) -> list[AuditEntryInfo]:
    """The ``entries`` list of ``audit/entries``."""
    return [AuditEntryInfo.from_json(item) for item in _items(doc, "entries")]


def parse_audit_alarms(doc: Mapping[str, Any]) -> list[AuditAlarm]:
    """The ``alarms`` list of ``audit/alarms``."""
    return [AuditAlarm.from_json(item) for item in _items(doc, "alarms")]


def parse_audit_witnessed(doc: Mapping[str, Any]) -> list[WitnessedHead]:
    """The ``witnessed`` list of ``audit/witnessed``."""
    return [WitnessedHead.from_json(item) for item in _items(doc, "witnessed")]


@dataclass(frozen=True)
class ReceiptCheck:
    """What :func:`datanet.client.check_receipt` found in a receipt.

    ``valid`` false comes with ``error_code``/``error_message`` (and the other fields
    None or empty). ``trusted`` says whether the organizations were checked against a
    trust store; without one, only hashes, signatures and certificate chains were
    checked, so any organization's node could have signed it.
    """

    valid: bool
    trusted: bool
    error_code: str | None = None
    error_message: str | None = None
    index: int | None = None
    kind: str | None = None
    timestamp: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    record_hash: str | None = None
    log_node: str | None = None
    log_org: str | None = None
    size: int | None = None
    root: str | None = None
    head_timestamp: int | None = None
    witnesses: tuple[tuple[str, str], ...] = ()
    """(witness node, its org) of each cosignature."""
    witness_orgs: tuple[str, ...] = ()
    """Organizations other than the log's own that cosigned the head."""
