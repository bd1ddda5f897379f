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
* Cheap to import: this module holds the parsing helpers only. The records and
  their parsers live in four private modules by subject (``_results_node``,
  ``_results_catalog``, ``_results_access``, ``_results_audit``), each imported on
  first use of one of its names (PEP 562 ``__getattr__``): a frozen dataclass
  costs about a millisecond to create, and a command-line command reads the
  answers of one subject only (``tests/unit/test_cli_daemon_imports.py``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from datanet.errors import ApiError
from identity._lazy import lazy_names

if TYPE_CHECKING:
    from datanet.api._results_access import (
        AccessOutcome,
        AccessRequestInfo,
        DenialInfo,
        GrantCheck,
        GrantInfo,
        PurposeInfo,
        RouteHop,
        parse_access_requests,
        parse_grants,
        parse_purposes,
    )
    from datanet.api._results_audit import (
        AuditAlarm,
        AuditEntryInfo,
        AuditHeadInfo,
        AuditProof,
        AuditVerifyReport,
        CosignatureInfo,
        ReceiptCheck,
        WitnessedHead,
        parse_audit_alarms,
        parse_audit_entries,
        parse_audit_witnessed,
    )
    from datanet.api._results_catalog import (
        CertificateInfo,
        DeprecateResult,
        PublishResult,
        Resolved,
        SearchHit,
        SearchResult,
        SseDecoder,
        WatchEvent,
        parse_deprecate,
        parse_hits,
        parse_publish,
        parse_resolved,
        parse_search,
        parse_watch_event,
    )
    from datanet.api._results_node import (
        ConfigChange,
        ConfigView,
        NodeInfo,
        NodeStatus,
        PeerInfo,
        ProviderInfo,
        parse_node_info,
        parse_peers,
        parse_providers,
        parse_status,
    )
    from datanet.records.search import FacetCount

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

#: Where each record and parser lives (imported on first access, see the invariants).
_HOMES: dict[str, str] = {
    "AccessOutcome": "datanet.api._results_access",
    "AccessRequestInfo": "datanet.api._results_access",
    "AuditAlarm": "datanet.api._results_audit",
    "AuditEntryInfo": "datanet.api._results_audit",
    "AuditHeadInfo": "datanet.api._results_audit",
    "AuditProof": "datanet.api._results_audit",
    "AuditVerifyReport": "datanet.api._results_audit",
    "CertificateInfo": "datanet.api._results_catalog",
    "ConfigChange": "datanet.api._results_node",
    "ConfigView": "datanet.api._results_node",
    "CosignatureInfo": "datanet.api._results_audit",
    "DenialInfo": "datanet.api._results_access",
    "DeprecateResult": "datanet.api._results_catalog",
    "FacetCount": "datanet.records.search",
    "GrantCheck": "datanet.api._results_access",
    "GrantInfo": "datanet.api._results_access",
    "NodeInfo": "datanet.api._results_node",
    "NodeStatus": "datanet.api._results_node",
    "PeerInfo": "datanet.api._results_node",
    "ProviderInfo": "datanet.api._results_node",
    "PublishResult": "datanet.api._results_catalog",
    "PurposeInfo": "datanet.api._results_access",
    "ReceiptCheck": "datanet.api._results_audit",
    "Resolved": "datanet.api._results_catalog",
    "RouteHop": "datanet.api._results_access",
    "SearchHit": "datanet.api._results_catalog",
    "SearchResult": "datanet.api._results_catalog",
    "SseDecoder": "datanet.api._results_catalog",
    "WatchEvent": "datanet.api._results_catalog",
    "WitnessedHead": "datanet.api._results_audit",
    "parse_access_requests": "datanet.api._results_access",
    "parse_audit_alarms": "datanet.api._results_audit",
    "parse_audit_entries": "datanet.api._results_audit",
    "parse_audit_witnessed": "datanet.api._results_audit",
    "parse_deprecate": "datanet.api._results_catalog",
    "parse_grants": "datanet.api._results_access",
    "parse_hits": "datanet.api._results_catalog",
    "parse_node_info": "datanet.api._results_node",
    "parse_peers": "datanet.api._results_node",
    "parse_providers": "datanet.api._results_node",
    "parse_publish": "datanet.api._results_catalog",
    "parse_purposes": "datanet.api._results_access",
    "parse_resolved": "datanet.api._results_catalog",
    "parse_search": "datanet.api._results_catalog",
    "parse_status": "datanet.api._results_node",
    "parse_watch_event": "datanet.api._results_catalog",
}


__getattr__, __dir__ = lazy_names(__name__, globals(), _HOMES, __all__)


# --- parsing helpers ------------------------------------------------------------------


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


def bytes_of(doc: Mapping[str, Any], name: str) -> bytes:
    try:
        return base64.b64decode(field_of(doc, name, str), validate=True)
    except binascii.Error:
        raise bad_response(name) from None


MAX_EVENT_BYTES = 1024 * 1024
"""The largest server-sent event the client accepts (the daemon's are under 20 KiB)."""


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


def _hex_field(doc: Mapping[str, Any], name: str) -> str:
    text: str = field_of(doc, name, str)
    try:
        bytes.fromhex(text)
    except ValueError:
        raise bad_response(name) from None
    return text


def _opt_b64(doc: Mapping[str, Any], name: str) -> bytes | None:
    return None if doc.get(name) is None else _b64_field(doc, name)
