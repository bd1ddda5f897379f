"""Python client of a datanet daemon's control API: :class:`Client` and :class:`AsyncClient`.

Example::

    from datanet.client import Client

    with Client() as dn:                      # reads api.url and api.token from the data dir
        found = dn.resolve("dn://did:key:z6Mk…/weather/daily")
        print(found.descriptor["title"], found.sequence)

Both clients have the same methods (the async one's are coroutines) and return
the same frozen dataclasses. Errors come back as the very ``DatanetError``
subclass the daemon raised (``NotFound``, ``StaleRecord``, ``ConfigError``…),
chosen by the error body's ``code``; :class:`~datanet.api.errors.DaemonUnreachable`
means nothing answered.

Invariants:
* This module imports httpx and light datanet modules only (never trio, libp2p,
  starlette or cryptography), so command-line tools that use it start fast. The
  answer records re-exported here come from :mod:`datanet.api.results`, which
  loads each subject's records on first use; the calls below reach them as
  ``_results.NAME`` for that reason.
* Every request carries the bearer token; a missing token file is reported
  before any request is sent.
* No httpx exception escapes: connection failures become ``DaemonUnreachable``,
  timeouts ``Timeout``, other transport errors ``NetworkError``.
* The sync client talks plain ``http://`` through the standard library
  (:class:`PlainTransport`): httpx's default transport imports httpcore, which
  imports trio when it is installed (about 90 ms of every command's start-up);
  and httpx's own command line (rich, pygments) is not imported.
"""

from __future__ import annotations

import base64
import http.client
import json
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

# httpx imports its own command line (httpx._main: rich, pygments) when it can,
# about half of `import httpx`; a None entry makes that import fail, which httpx
# expects (it then defines a stub `main`). Only when httpx is not loaded yet.
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
import httpx

from datanet.api import results as _results
from datanet.api.results import bad_response, bytes_of, field_of, texts_of
from datanet.errors import (
    ApiError,
    DaemonUnreachable,
    DatanetError,
    NetworkError,
    Timeout,
    error_class_for_code,
)
from datanet.node.paths import HomeLayout, resolve_data_dir
from identity.keystore import read_at_most

if TYPE_CHECKING:
    from datanet.api.results import (
        AccessOutcome,
        AccessRequestInfo,
        AuditAlarm,
        AuditEntryInfo,
        AuditHeadInfo,
        AuditProof,
        AuditVerifyReport,
        CertificateInfo,
        ConfigChange,
        ConfigView,
        CosignatureInfo,
        DenialInfo,
        DeprecateResult,
        FacetCount,
        GrantCheck,
        GrantInfo,
        NodeInfo,
        NodeStatus,
        PeerInfo,
        ProviderInfo,
        PublishResult,
        PurposeInfo,
        ReceiptCheck,
        Resolved,
        RouteHop,
        SearchHit,
        SearchResult,
        WatchEvent,
        WitnessedHead,
    )

__all__ = [
    "DEFAULT_TIMEOUT",
    "WAIT_MARGIN",
    "AccessOutcome",
    "AccessRequestInfo",
    "AsyncClient",
    "AuditAlarm",
    "AuditEntryInfo",
    "AuditHeadInfo",
    "AuditProof",
    "AuditVerifyReport",
    "CertificateInfo",
    "Client",
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
    "PlainTransport",
    "ProviderInfo",
    "PublishResult",
    "PurposeInfo",
    "ReceiptCheck",
    "Resolved",
    "RouteHop",
    "SearchHit",
    "SearchResult",
    "WatchEvent",
    "WitnessedHead",
    "api_endpoint",
    "check_receipt",
]


#: The records and parsers of datanet.api.results, reachable here too; each is
#: imported on first use there.
_LAZY = frozenset(_results.__all__)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(_results, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


DEFAULT_TIMEOUT = 60.0
WAIT_MARGIN = 15.0
"""Seconds added to a call's ``wait`` for its HTTP timeout (the route, the node's work)."""
_MAX_TOKEN_FILE = 4096
T = TypeVar("T")


def _key_text(key: str | bytes) -> str:
    if isinstance(key, bytes):
        try:
            return key.decode("utf-8")
        except UnicodeDecodeError:
            raise DatanetError("DHT keys are sent as UTF-8 text") from None
    return key


_MAX_CHUNK = 65536


class _ResponseStream(httpx.SyncByteStream):
    """The body of one :class:`PlainTransport` response; closing it closes the connection."""

    def __init__(
        self, response: http.client.HTTPResponse, conn: http.client.HTTPConnection, url: str
    ) -> None:
        self._response = response
        self._conn = conn
        self._url = url

    def __iter__(self) -> Iterator[bytes]:
        while True:
            try:
                chunk = self._response.read1(_MAX_CHUNK)
            except TimeoutError:
                raise httpx.ReadTimeout(f"no data from {self._url} in time") from None
            except (OSError, http.client.HTTPException) as exc:
                raise httpx.ReadError(f"{type(exc).__name__} reading {self._url}") from None
            if not chunk:
                return
            yield chunk

    def close(self) -> None:
        self._response.close()
        self._conn.close()


class PlainTransport(httpx.BaseTransport):
    """HTTP/1.1 over :mod:`http.client`, one connection per request, ``http://`` only.

    What the sync client needs from a loopback daemon, without httpx's default
    transport (httpcore, and through it trio). Timeouts come from the request's
    ``timeout`` extension (``connect`` for the connection, ``read`` for each read);
    failures are raised as the httpx exceptions the client already translates.
    """

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme != "http":
            raise httpx.UnsupportedProtocol(f"PlainTransport speaks http only, not {url.scheme}")
        timeouts = request.extensions.get("timeout", {})
        where = f"{url.host}:{url.port or 80}"
        conn = http.client.HTTPConnection(url.host, url.port or 80, timeout=timeouts.get("connect"))
        try:
            conn.connect()
        except TimeoutError:
            conn.close()
            raise httpx.ConnectTimeout(f"connecting to {where} timed out") from None
        except OSError as exc:
            conn.close()
            raise httpx.ConnectError(f"{exc.strerror or exc} ({where})") from None
        try:
            if conn.sock is not None:
                conn.sock.settimeout(timeouts.get("read"))
            conn.putrequest(
                request.method,
                url.raw_path.decode("ascii"),
                skip_host=True,
                skip_accept_encoding=True,
            )
            for name, value in request.headers.raw:
                conn.putheader(name.decode("latin-1"), value.decode("latin-1"))
            conn.endheaders(request.read() or None)
            response = conn.getresponse()
        except TimeoutError:
            conn.close()
            raise httpx.ReadTimeout(f"no answer from {where} in time") from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise httpx.RemoteProtocolError(f"{type(exc).__name__} talking to {where}") from None
        headers = [
            (k, v) for k, v in response.getheaders() if k.lower() != "transfer-encoding"
        ]  # http.client already undid the chunking
        return httpx.Response(
            response.status,
            headers=headers,
            stream=_ResponseStream(response, conn, where),
            extensions={"http_version": b"HTTP/1.1"},
        )


@dataclass(frozen=True)
class _Call(Generic[T]):
    """One API call: where, what, and how to read the answer."""

    path: str
    parse: Callable[[Mapping[str, Any]], T]
    json_body: Mapping[str, Any] | None = None
    content: bytes | None = None
    params: Mapping[str, str] | None = None
    """Query parameters (the options of an octet-stream call)."""
    wait: float = 0.0
    """Seconds the daemon may hold the call; its HTTP timeout is at least ``wait + WAIT_MARGIN``."""


class _Calls:
    """The calls, shared by the sync and the async client."""

    @staticmethod
    def id() -> _Call[NodeInfo]:
        return _Call("/id", _results.parse_node_info)

    @staticmethod
    def peers() -> _Call[list[PeerInfo]]:
        return _Call("/peers", _results.parse_peers)

    @staticmethod
    def publish(data: bytes) -> _Call[PublishResult]:
        return _Call("/publish", _results.parse_publish, content=bytes(data))

    @staticmethod
    def resolve(dataset_id: object, refresh: bool) -> _Call[Resolved]:
        return _Call(
            "/resolve", _results.parse_resolved, {"id": str(dataset_id), "refresh": refresh}
        )

    @staticmethod
    def search(
        query: str, filters: Mapping[str, str | Sequence[str]], **options: Any
    ) -> _Call[SearchResult]:
        body: dict[str, Any] = {"query": query}
        for name, given in filters.items():
            values = [given] if isinstance(given, str) else [str(v) for v in given]
            if values:
                body[name] = values
        for name, arg in (("from", "temporal_from"), ("to", "temporal_to")):
            if options[arg] is not None:
                body[name] = options[arg]
        body["limit"] = options["limit"]
        if options["cursor"] is not None:
            body["cursor"] = options["cursor"]
        if not options["facets"]:
            body["facets"] = False
        return _Call("/search", _results.parse_search, body)

    @staticmethod
    def routing_get(key: str | bytes) -> _Call[bytes]:
        return _Call("/routing/get", lambda d: bytes_of(d, "value"), {"key": _key_text(key)})

    @staticmethod
    def routing_put(key: str | bytes, value: bytes) -> _Call[int]:
        body = {"key": _key_text(key), "value": base64.b64encode(value).decode("ascii")}
        return _Call("/routing/put", lambda d: int(field_of(d, "replicas", int)), body)

    @staticmethod
    def find_peer(peer: object) -> _Call[list[str]]:
        return _Call("/routing/findpeer", lambda d: list(texts_of(d, "addrs")), {"peer": str(peer)})

    @staticmethod
    def find_providers(key: str | bytes, count: int) -> _Call[list[ProviderInfo]]:
        return _Call(
            "/routing/findprovs", _results.parse_providers, {"key": _key_text(key), "count": count}
        )

    @staticmethod
    def routing_stats() -> _Call[dict[str, Any]]:
        return _Call("/routing/stats", lambda d: dict(field_of(d, "stats", dict)))

    @staticmethod
    def config_show() -> _Call[ConfigView]:
        return _Call(
            "/config/show",
            lambda d: _results.ConfigView(
                field_of(d, "path", str),
                field_of(d, "config", dict),
                field_of(d, "restart_required", bool),
            ),
        )

    @staticmethod
    def config_set(key: str, value: object) -> _Call[ConfigChange]:
        return _Call(
            "/config/set",
            lambda d: _results.ConfigChange(
                field_of(d, "key", str), d.get("value"), field_of(d, "restart_required", bool)
            ),
            {"key": key, "value": value},
        )

    @staticmethod
    def status() -> _Call[NodeStatus]:
        return _Call("/node/status", _results.parse_status)

    @staticmethod
    def stop() -> _Call[bool]:
        return _Call("/node/stop", lambda d: bool(d.get("stopping")))

    # -- the complete catalog (issue 9) ---------------------------------------------
    @staticmethod
    def deprecate(dataset_id: object, reason: str) -> _Call[DeprecateResult]:
        return _Call(
            "/deprecate", _results.parse_deprecate, {"arg": str(dataset_id), "reason": reason}
        )

    @staticmethod
    def catalog_stats() -> _Call[dict[str, Any]]:
        return _Call("/catalog/stats", lambda d: dict(field_of(d, "stats", dict)))

    @staticmethod
    def catalog_sync(peers: int, peer: object | None) -> _Call[list[dict[str, Any]]]:
        body: dict[str, Any] = {"peers": peers}
        if peer is not None:
            body["peer"] = str(peer)
        return _Call("/catalog/sync", _parse_synced, body)

    # -- access requests, approvals and grants (issue 10) ------------------------------
    @staticmethod
    def request_access(
        dataset_id: object, purpose: str, days: int, note: str, wait: float
    ) -> _Call[AccessOutcome]:
        body = {
            "id": str(dataset_id),
            "purpose": purpose,
            "days": days,
            "note": note,
            "wait": wait,
        }
        return _Call("/access/request", _results.AccessOutcome.from_json, body, wait=wait)

    @staticmethod
    def refresh_request(request_id: str, wait: float) -> _Call[AccessOutcome]:
        body = {"id": request_id, "wait": wait}
        return _Call("/access/refresh", _results.AccessOutcome.from_json, body, wait=wait)

    @staticmethod
    def access_requests(
        direction: str, state: str | None, dataset: object | None, limit: int
    ) -> _Call[list[AccessRequestInfo]]:
        body: dict[str, Any] = {"direction": direction, "limit": limit}
        if state is not None:
            body["state"] = state
        if dataset is not None:
            body["dataset"] = str(dataset)
        return _Call("/access/requests", _results.parse_access_requests, body)

    @staticmethod
    def access_request(request_id: str, direction: str) -> _Call[AccessRequestInfo]:
        body = {"id": request_id, "direction": direction}
        return _Call("/access/requests/show", _results.AccessRequestInfo.from_json, body)

    @staticmethod
    def approve_request(request_id: str, days: int | None) -> _Call[AccessOutcome]:
        body: dict[str, Any] = {"id": request_id}
        if days is not None:
            body["days"] = days
        return _Call("/access/approve", _results.AccessOutcome.from_json, body)

    @staticmethod
    def deny_request(request_id: str, reason: str) -> _Call[AccessOutcome]:
        return _Call(
            "/access/deny", _results.AccessOutcome.from_json, {"id": request_id, "reason": reason}
        )

    @staticmethod
    def grants(
        role: str, dataset: object | None, active: bool, limit: int
    ) -> _Call[list[GrantInfo]]:
        body: dict[str, Any] = {"role": role, "active": active, "limit": limit}
        if dataset is not None:
            body["dataset"] = str(dataset)
        return _Call("/access/grants", _results.parse_grants, body)

    @staticmethod
    def grant(grant_id: str, details: bool) -> _Call[GrantInfo]:
        body = {"id": grant_id, "details": details}
        return _Call("/access/grants/show", _results.GrantInfo.from_json, body)

    @staticmethod
    def verify_grant(raw: bytes, deep: bool) -> _Call[GrantCheck]:
        params = {"deep": "true" if deep else "false"}
        return _Call(
            "/access/grants/verify",
            _results.GrantCheck.from_json,
            content=bytes(raw),
            params=params,
        )

    @staticmethod
    def revoke_grant(grant_id: str, reason: str) -> _Call[GrantInfo]:
        body = {"id": grant_id, "reason": reason}
        return _Call("/access/grants/revoke", _results.GrantInfo.from_json, body)

    @staticmethod
    def purposes() -> _Call[list[PurposeInfo]]:
        return _Call("/access/purposes", _results.parse_purposes)

    # -- the audit transparency log (issue 11) ----------------------------------------
    @staticmethod
    def audit_entries(since: int, kind: str | None, limit: int) -> _Call[list[AuditEntryInfo]]:
        body: dict[str, Any] = {"since": since, "limit": limit}
        if kind is not None:
            body["kind"] = kind
        return _Call("/audit/entries", _results.parse_audit_entries, body)

    @staticmethod
    def audit_head(fresh: bool) -> _Call[AuditHeadInfo]:
        return _Call("/audit/head", _results.AuditHeadInfo.from_json, {"fresh": fresh})

    @staticmethod
    def audit_verify() -> _Call[AuditVerifyReport]:
        return _Call("/audit/verify", _results.AuditVerifyReport.from_json)

    @staticmethod
    def audit_prove(index: int) -> _Call[AuditProof]:
        return _Call("/audit/prove", _results.AuditProof.from_json, {"index": index})

    @staticmethod
    def audit_alarms(limit: int) -> _Call[list[AuditAlarm]]:
        return _Call("/audit/alarms", _results.parse_audit_alarms, {"limit": limit})

    @staticmethod
    def audit_witnessed() -> _Call[list[WitnessedHead]]:
        return _Call("/audit/witnessed", _results.parse_audit_witnessed)


_EXPORT_PATH = "/audit/export"
MAX_EXPORT_LINE = 64 * 1024
"""The longest line ``audit_export`` accepts (an entry is at most ~12 KiB as JSON)."""


def _export_kwargs(since: int, kind: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"since": since}
    if kind is not None:
        body["kind"] = kind
    return {
        "content": json.dumps(body).encode("utf-8"),
        "headers": {"content-type": "application/json", "accept": "application/x-ndjson"},
    }


def _export_line(line: str) -> AuditEntryInfo | None:
    """One line of ``audit/export``: an entry, None for a blank line; an error line raises."""
    if not line.strip():
        return None
    if len(line) > MAX_EXPORT_LINE:
        raise bad_response("audit export line")
    try:
        doc = json.loads(line)
    except ValueError:
        raise bad_response("audit export line") from None
    if not isinstance(doc, dict):
        raise bad_response("audit export line")
    if "error" in doc and "index" not in doc:
        error = doc["error"] if isinstance(doc["error"], dict) else {}
        code, message = str(error.get("code", "api_error")), str(error.get("message", ""))
        exc = error_class_for_code(code)(message or code)
        if type(exc).__dict__.get("code") != code:
            exc.code = code
        raise exc
    return _results.AuditEntryInfo.from_json(doc)


def check_receipt(raw: bytes, trust: Any = None, *, now: int | None = None) -> ReceiptCheck:
    """Verify an audit receipt offline (no daemon): head signature, inclusion proof, cosignatures.

    Args:
        raw: the receipt's bytes (what ``datanet audit prove`` wrote, or an access
            decision's ``receipt``).
        trust: an :class:`identity.certs.TrustStore`. With one, the log's and the
            witnesses' organizations must be acceptable to it (``trusted`` is True).
            Without one, certificate chains and signatures are still checked, but any
            organization is accepted (``trusted`` is False): say so to the user.
        now: the current Unix time (default: the clock).

    Returns:
        A :class:`ReceiptCheck`; an invalid receipt is ``valid=False`` with the error's
        code and message, never an exception.
    """
    import time  # noqa: PLC0415 - keeps this module's import light

    from datanet.errors import DatanetError as _Error  # noqa: PLC0415
    from datanet.records.audit import verify_receipt  # noqa: PLC0415
    from identity.certs import TrustStore  # noqa: PLC0415

    store = TrustStore(accept_any=True) if trust is None else trust
    at = int(time.time()) if now is None else now
    if not isinstance(raw, bytes | bytearray | memoryview):
        return _results.ReceiptCheck(
            False, trust is not None, "invalid_input", "a receipt is bytes"
        )
    try:
        verified = verify_receipt(bytes(raw), store, at)
    except _Error as exc:
        return _results.ReceiptCheck(False, trust is not None, exc.code, str(exc) or exc.code)
    head = verified.head
    subject = verified.entry.subject_hash
    return _results.ReceiptCheck(
        valid=True,
        trusted=trust is not None,
        index=verified.index,
        kind=str(verified.entry.kind),
        timestamp=verified.entry.timestamp,
        details=dict(verified.entry.details),
        record_hash=None if subject is None else subject.hex(),
        log_node=str(head.head.node),
        log_org=str(head.org),
        size=head.head.size,
        root=head.head.root.hex(),
        head_timestamp=head.head.timestamp,
        witnesses=tuple((str(c.cosignature.witness), str(c.org)) for c in verified.cosignatures),
        witness_orgs=tuple(sorted(str(o) for o in verified.witness_orgs)),
    )


def _parse_synced(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    items = field_of(doc, "synced", list)
    if not all(isinstance(item, dict) for item in items):
        raise bad_response("synced")
    return [dict(item) for item in items]


_WATCH_PATH = "/catalog/watch"


def _watch_kwargs(query: str, default: float, timeout: float | None) -> dict[str, Any]:
    """The streaming request of ``watch``: the read timeout is ``timeout`` (None: none)."""
    return {
        "content": json.dumps({"q": query}).encode("utf-8"),
        "headers": {"content-type": "application/json", "accept": "text/event-stream"},
        "timeout": httpx.Timeout(default, read=timeout),
    }


def _watch_error(exc: httpx.HTTPError, url: str, timeout: float | None) -> DatanetError:
    if isinstance(exc, httpx.ReadTimeout):
        return Timeout(f"no catalog event nor heartbeat from {url} within {timeout:g} s")
    if isinstance(exc, httpx.RemoteProtocolError):
        return NetworkError(f"the daemon at {url} closed the event stream (did it stop?)")
    return _transport_error(exc, url)


# --- connection settings ------------------------------------------------------------


def _read_small(path: Path) -> str | None:
    try:
        with path.open("rb") as fh:
            data = read_at_most(fh, _MAX_TOKEN_FILE)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DaemonUnreachable(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > _MAX_TOKEN_FILE:
        raise DaemonUnreachable(f"{path} is not a datanet API file (too large)")
    return data.decode("utf-8", "replace").strip() or None


def api_endpoint(
    data_dir: str | Path | None = None,
    *,
    base_url: str | None = None,
    token: str | None = None,
) -> tuple[str, str]:
    """The API URL and token to use: explicit values, else the data directory's files.

    The URL is ``<data_dir>/api.url`` (written by the running daemon), else
    ``api.address`` from the data directory's config file. The token is
    ``<data_dir>/api.token``. ``data_dir`` defaults as everywhere (``$DATANET_HOME``,
    then the platform's user data directory).

    Raises:
        DaemonUnreachable: no token was given and the data directory has none
            (the daemon is not running there).
        ConfigError: the config file is invalid.
    """
    if base_url is not None and token is not None:
        return base_url.rstrip("/"), token
    directory = resolve_data_dir(data_dir)
    layout = HomeLayout(directory)
    if base_url is None:
        base_url = _read_small(layout.api_url)
    if base_url is None:
        # Only without api.url (no daemon wrote one): the config module is not light.
        from datanet.node.config import load_config  # noqa: PLC0415

        config = load_config(layout.config)
        host, port = config.api.host_port
        base_url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    if token is None:
        token = _read_small(layout.api_token)
        if token is None:
            raise DaemonUnreachable(
                f"no API token in {directory} (is the daemon running? start it with "
                "`datanet node start`)"
            )
    return base_url.rstrip("/"), token


def _error_from(response: httpx.Response) -> DatanetError:
    try:
        doc = response.json()
        error = doc["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        return ApiError(f"the daemon answered HTTP {response.status_code} without a JSON error")
    cls = error_class_for_code(code)
    try:
        exc = cls(message)
    except TypeError:  # a class with a custom constructor
        exc = ApiError(message)
    if type(exc).__dict__.get("code") != code:
        exc.code = code
    return exc


def _parse(call: _Call[T], response: httpx.Response) -> T:
    if response.status_code != 200:
        raise _error_from(response)
    try:
        doc = response.json()
    except (ValueError, UnicodeDecodeError):
        raise bad_response("non-JSON") from None
    if not isinstance(doc, dict):
        raise bad_response(call.path)
    return call.parse(doc)


def _transport_error(exc: httpx.HTTPError, url: str) -> DatanetError:
    if isinstance(exc, httpx.ConnectError):
        return DaemonUnreachable(
            f"no datanet daemon answers at {url} (start one with `datanet node start`)"
        )
    if isinstance(exc, httpx.TimeoutException):
        return Timeout(f"the daemon at {url} did not answer in time")
    return NetworkError(f"talking to the daemon at {url} failed: {exc}")


def _request_kwargs(call: _Call[Any], timeout: float) -> dict[str, Any]:
    """The request's body and headers; its timeout is at least ``call.wait + WAIT_MARGIN``."""
    extra: dict[str, Any] = {}
    if call.params is not None:
        extra["params"] = dict(call.params)
    if call.wait > 0:
        extra["timeout"] = max(timeout, call.wait + WAIT_MARGIN)
    if call.content is not None:
        return {
            "content": call.content,
            "headers": {"content-type": "application/octet-stream"},
            **extra,
        }
    return {
        "content": json.dumps(call.json_body or {}).encode("utf-8"),
        "headers": {"content-type": "application/json"},
        **extra,
    }


class _Settings:
    def __init__(
        self,
        data_dir: str | Path | None,
        base_url: str | None,
        token: str | None,
    ) -> None:
        self.base_url, self.token = api_endpoint(data_dir, base_url=base_url, token=token)
        self.headers = {"authorization": f"Bearer {self.token}", "accept": "application/json"}
        # Certificates are verified for https URLs. For plain http (the loopback default)
        # there is nothing to verify, and skipping the CA bundle saves ~150 ms per start.
        self.tls = self.base_url.startswith("https://")


# --- the clients --------------------------------------------------------------------


class Client:
    """Synchronous client of a datanet daemon.

    Args:
        data_dir: where to read ``api.url``/``api.token`` (default: as everywhere).
        base_url: the API URL, e.g. ``http://127.0.0.1:5080`` (default: from the data dir).
        token: the bearer token (default: from the data dir).
        timeout: seconds to wait for an answer.
        transport: an httpx transport (tests: ``httpx.MockTransport``).

    Raises:
        DaemonUnreachable: no token given and none in the data directory.
    """

    def __init__(
        self,
        data_dir: str | Path | None = None,
        *,
        base_url: str | None = None,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        s = _Settings(data_dir, base_url, token)
        self.base_url = s.base_url
        self._timeout = timeout
        if transport is None and not s.tls:
            transport = PlainTransport()
        self._http = httpx.Client(
            base_url=s.base_url + "/api/v0",
            headers=s.headers,
            timeout=timeout,
            transport=transport,
            verify=s.tls,
        )

    def _run(self, call: _Call[T]) -> T:
        try:
            response = self._http.post(call.path, **_request_kwargs(call, self._timeout))
        except httpx.HTTPError as exc:
            raise _transport_error(exc, self.base_url) from None
        return _parse(call, response)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def id(self) -> NodeInfo:
        """The node's peer id, organization and addresses."""
        return self._run(_Calls.id())

    def peers(self) -> list[PeerInfo]:
        """Connected peers."""
        return self._run(_Calls.peers())

    def publish(self, data: bytes) -> PublishResult:
        """Publish a signed descriptor (the bytes of a ``.dnd`` file).

        Raises:
            DecodeError, VerificationError, StaleRecord: the daemon refused it.
        """
        return self._run(_Calls.publish(data))

    def resolve(self, dataset_id: object, *, refresh: bool = False) -> Resolved:
        """The newest valid descriptor of ``dataset_id`` (``dn://…`` text or a DatasetId).

        Raises:
            NotFound: no valid descriptor was found.
            DecodeError: ``dataset_id`` is malformed.
        """
        return self._run(_Calls.resolve(dataset_id, refresh))

    def search(
        self,
        query: str = "",
        *,
        org: str | Sequence[str] = (),
        keyword: str | Sequence[str] = (),
        theme: str | Sequence[str] = (),
        license: str | Sequence[str] = (),  # noqa: A002 - the API's field name
        media_type: str | Sequence[str] = (),
        access: str | Sequence[str] = (),
        temporal_from: int | None = None,
        temporal_to: int | None = None,
        limit: int = 20,
        cursor: str | None = None,
        facets: bool = True,
    ) -> SearchResult:
        """Full-text and faceted search of the node's catalog, one page at a time.

        Each filter takes one value or several (OR'ed); filters are AND'ed.
        ``temporal_from``/``temporal_to`` (Unix seconds) keep datasets whose
        temporal coverage overlaps them. Pass ``next_cursor`` of a result as
        ``cursor`` (with the same query and filters) for the next page.

        Raises:
            InvalidInput: a filter value, the limit or the cursor was refused.
        """
        return self._run(
            _Calls.search(
                query,
                {
                    "org": org,
                    "keyword": keyword,
                    "theme": theme,
                    "license": license,
                    "media_type": media_type,
                    "access": access,
                },
                temporal_from=temporal_from,
                temporal_to=temporal_to,
                limit=limit,
                cursor=cursor,
                facets=facets,
            )
        )

    def routing_get(self, key: str | bytes) -> bytes:
        """The best valid DHT value under ``key``.

        Raises:
            NotFound: no valid value was found.
        """
        return self._run(_Calls.routing_get(key))

    def routing_put(self, key: str | bytes, value: bytes) -> int:
        """Store a value on the closest peers; returns how many acknowledged it."""
        return self._run(_Calls.routing_put(key, value))

    def find_peer(self, peer: object) -> list[str]:
        """The multiaddrs of ``peer`` (``12D3KooW…`` text or a PeerId)."""
        return self._run(_Calls.find_peer(peer))

    def find_providers(self, key: str | bytes, count: int = 20) -> list[ProviderInfo]:
        """Up to ``count`` providers of ``key``."""
        return self._run(_Calls.find_providers(key, count))

    def routing_stats(self) -> dict[str, Any]:
        """Routing table and store statistics."""
        return self._run(_Calls.routing_stats())

    def config_show(self) -> ConfigView:
        """The daemon's config file."""
        return self._run(_Calls.config_show())

    def config_set(self, key: str, value: object) -> ConfigChange:
        """Change one setting in the daemon's config file (applied on restart).

        Raises:
            ConfigError: unknown key or refused value; the file is unchanged.
        """
        return self._run(_Calls.config_set(key, value))

    def status(self) -> NodeStatus:
        """The daemon's status."""
        return self._run(_Calls.status())

    def stop(self) -> bool:
        """Ask the daemon to shut down cleanly; True once it has accepted."""
        return self._run(_Calls.stop())

    # -- the complete catalog (issue 9) ---------------------------------------------
    def deprecate(self, dataset_id: object, reason: str = "") -> DeprecateResult:
        """Deprecate one of this node's organization's datasets (a signed withdrawal).

        Raises:
            NotFound: the daemon holds no such dataset.
            ScopeError: it belongs to another organization.
        """
        return self._run(_Calls.deprecate(dataset_id, reason))

    def catalog_stats(self) -> dict[str, Any]:
        """Catalog counts, gossip and sync statistics."""
        return self._run(_Calls.catalog_stats())

    def catalog_sync(self, peers: int = 3, peer: object | None = None) -> list[dict[str, Any]]:
        """Run catalog sync now with ``peer`` (a PeerId or its text), or up to ``peers`` peers.

        Raises:
            NotFound: ``peer`` is not known to the daemon.
        """
        return self._run(_Calls.catalog_sync(peers, peer))

    # -- access requests, approvals and grants (issue 10) ------------------------------
    def request_access(
        self, dataset_id: object, purpose: str, *, days: int = 30, note: str = "", wait: float = 0.0
    ) -> AccessOutcome:
        """Ask the owner of ``dataset_id`` for access, for ``purpose`` (a vocabulary id).

        The daemon signs the request and sends it through the gateways; the answer is
        ``granted`` (``grant``), ``denied`` (``denial``: reason code, explanation, the
        owner's message) or ``pending`` (an operator must decide: ask again with
        :meth:`refresh_request`). ``wait``: seconds to wait for the decision (the
        daemon caps it below its ``api.request_timeout``); this call's HTTP timeout
        grows to ``wait`` + 15 s.

        Raises:
            NotFound: the dataset is unknown.
            InvalidInput: a purpose outside the vocabulary, or ``days`` out of 1-3650.
            NetworkError: a hop failed (``gateway_unreachable``, ``no_route``…).
        """
        return self._run(_Calls.request_access(dataset_id, purpose, days, note, wait))

    def refresh_request(self, request_id: str, wait: float = 0.0) -> AccessOutcome:
        """Ask the owner again about a request this node sent (hex id or a prefix of 8+).

        Raises:
            NotFound: no sent request has this id.
        """
        return self._run(_Calls.refresh_request(request_id, wait))

    def access_requests(
        self,
        direction: str = "received",
        state: str | None = None,
        dataset: object | None = None,
        limit: int = 100,
    ) -> list[AccessRequestInfo]:
        """Requests received (the operator's inbox) or ``sent``, newest first."""
        return self._run(_Calls.access_requests(direction, state, dataset, limit))

    def access_request(self, request_id: str, direction: str = "received") -> AccessRequestInfo:
        """One request, by hex id or unique prefix of 8+ hex digits.

        Raises:
            NotFound: no such request in that direction.
        """
        return self._run(_Calls.access_request(request_id, direction))

    def approve_request(self, request_id: str, days: int | None = None) -> AccessOutcome:
        """Approve a pending received request (``days`` may shorten the grant).

        Raises:
            NotFound: no such received request.
            InvalidInput: it is already decided, or ``days`` is longer than asked.
        """
        return self._run(_Calls.approve_request(request_id, days))

    def deny_request(self, request_id: str, reason: str) -> AccessOutcome:
        """Deny a pending received request; ``reason`` is the message the requester sees.

        Raises:
            NotFound: no such received request.
            InvalidInput: it is already decided.
        """
        return self._run(_Calls.deny_request(request_id, reason))

    def grants(
        self,
        role: str = "issued",
        dataset: object | None = None,
        active: bool = False,
        limit: int = 100,
    ) -> list[GrantInfo]:
        """Grants this node issued or ``received``, newest first (``active``: only valid ones)."""
        return self._run(_Calls.grants(role, dataset, active, limit))

    def grant(self, grant_id: str, details: bool = False) -> GrantInfo:
        """One grant; ``details`` decrypts a received grant's access details.

        Raises:
            NotFound: no such grant.
        """
        return self._run(_Calls.grant(grant_id, details))

    def verify_grant(self, raw: bytes, deep: bool = False) -> GrantCheck:
        """Check a signed grant's bytes; an invalid grant is ``valid=False``, not an error.

        Raises:
            RecordTooLarge: larger than 64 KiB.
        """
        return self._run(_Calls.verify_grant(raw, deep))

    def revoke_grant(self, grant_id: str, reason: str = "") -> GrantInfo:
        """Revoke a grant this node issued; the daemon publishes the revocation.

        Raises:
            NotFound: no such issued grant.
        """
        return self._run(_Calls.revoke_grant(grant_id, reason))

    def purposes(self) -> list[PurposeInfo]:
        """The purpose vocabulary requests may declare."""
        return self._run(_Calls.purposes())

    # -- the audit transparency log (issue 11) ----------------------------------------
    def audit_entries(
        self, since: int = 0, kind: str | None = None, limit: int = 100
    ) -> list[AuditEntryInfo]:
        """Entries of the node's audit log from index ``since``, oldest first (``kind``:
        only that kind, e.g. ``grant``; ``limit``: at most 1000).

        Raises:
            InvalidInput: an unknown kind, or a bound exceeded.
        """
        return self._run(_Calls.audit_entries(since, kind, limit))

    def audit_head(self, fresh: bool = False) -> AuditHeadInfo:
        """The latest signed tree head of the node's log (``fresh``: sign a new one now)."""
        return self._run(_Calls.audit_head(fresh))

    def audit_verify(self) -> AuditVerifyReport:
        """Recompute the whole log and check every signed head; ``ok`` or the first bad entry."""
        return self._run(_Calls.audit_verify())

    def audit_prove(self, index: int) -> AuditProof:
        """A receipt for entry ``index`` (verify it anywhere with :func:`check_receipt`).

        Raises:
            NotFound: no such entry.
        """
        return self._run(_Calls.audit_prove(index))

    def audit_alarms(self, limit: int = 100) -> list[AuditAlarm]:
        """Alarms the node raised as a witness of other logs, newest first."""
        return self._run(_Calls.audit_alarms(limit))

    def audit_witnessed(self) -> list[WitnessedHead]:
        """The last head the node keeps of each log it witnesses."""
        return self._run(_Calls.audit_witnessed())

    def audit_export(self, since: int = 0, kind: str | None = None) -> Iterator[AuditEntryInfo]:
        """Every entry from ``since`` on, streamed (a generator; memory stays bounded).

        Raises:
            InvalidInput: an unknown kind.
            StorageError: the log failed midway (the entries before were yielded).
            NetworkError: the connection broke.
        """
        try:
            with self._http.stream("POST", _EXPORT_PATH, **_export_kwargs(since, kind)) as r:
                if r.status_code != 200:
                    r.read()
                    raise _error_from(r)
                for line in r.iter_lines():
                    entry = _export_line(line)
                    if entry is not None:
                        yield entry
        except httpx.HTTPError as exc:
            raise _transport_error(exc, self.base_url) from None

    def watch(self, query: str = "", *, timeout: float | None = None) -> Iterator[WatchEvent]:
        """Catalog changes matching ``query`` as they happen, until the caller stops.

        A generator over the daemon's ``catalog/watch`` event stream: ``break`` or
        ``close()`` it to disconnect (the daemon then frees the watcher). The
        subscription starts with the first ``next()``. ``timeout``: seconds to wait
        for the next event or heartbeat (the daemon sends one every 15 s); ``None``
        waits as long as the stream is open. The iteration ends when the daemon
        ends the stream (it stops).

        Raises:
            InvalidInput: too many watchers on the daemon, or ``query`` too long.
            Timeout: nothing arrived within ``timeout`` seconds.
            NetworkError: the connection broke.
        """
        decoder = _results.SseDecoder()
        try:
            with self._http.stream(
                "POST", _WATCH_PATH, **_watch_kwargs(query, self._timeout, timeout)
            ) as response:
                if response.status_code != 200:
                    response.read()
                    raise _error_from(response)
                for line in response.iter_lines():
                    item = decoder.feed(line)
                    if item is not None:
                        yield _results.parse_watch_event(*item)
        except httpx.HTTPError as exc:
            raise _watch_error(exc, self.base_url, timeout) from None


class AsyncClient:
    """Asynchronous client (asyncio or trio); the same methods as :class:`Client`.

    Raises:
        DaemonUnreachable: no token given and none in the data directory.
    """

    def __init__(
        self,
        data_dir: str | Path | None = None,
        *,
        base_url: str | None = None,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        s = _Settings(data_dir, base_url, token)
        self.base_url = s.base_url
        self._timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=s.base_url + "/api/v0",
            headers=s.headers,
            timeout=timeout,
            transport=transport,
            verify=s.tls,
        )

    async def _run(self, call: _Call[T]) -> T:
        try:
            response = await self._http.post(call.path, **_request_kwargs(call, self._timeout))
        except httpx.HTTPError as exc:
            raise _transport_error(exc, self.base_url) from None
        return _parse(call, response)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def id(self) -> NodeInfo:
        """See :meth:`Client.id`."""
        return await self._run(_Calls.id())

    async def peers(self) -> list[PeerInfo]:
        """See :meth:`Client.peers`."""
        return await self._run(_Calls.peers())

    async def publish(self, data: bytes) -> PublishResult:
        """See :meth:`Client.publish`."""
        return await self._run(_Calls.publish(data))

    async def resolve(self, dataset_id: object, *, refresh: bool = False) -> Resolved:
        """See :meth:`Client.resolve`."""
        return await self._run(_Calls.resolve(dataset_id, refresh))

    async def search(
        self,
        query: str = "",
        *,
        org: str | Sequence[str] = (),
        keyword: str | Sequence[str] = (),
        theme: str | Sequence[str] = (),
        license: str | Sequence[str] = (),  # noqa: A002 - the API's field name
        media_type: str | Sequence[str] = (),
        access: str | Sequence[str] = (),
        temporal_from: int | None = None,
        temporal_to: int | None = None,
        limit: int = 20,
        cursor: str | None = None,
        facets: bool = True,
    ) -> SearchResult:
        """See :meth:`Client.search`."""
        return await self._run(
            _Calls.search(
                query,
                {
                    "org": org,
                    "keyword": keyword,
                    "theme": theme,
                    "license": license,
                    "media_type": media_type,
                    "access": access,
                },
                temporal_from=temporal_from,
                temporal_to=temporal_to,
                limit=limit,
                cursor=cursor,
                facets=facets,
            )
        )

    async def routing_get(self, key: str | bytes) -> bytes:
        """See :meth:`Client.routing_get`."""
        return await self._run(_Calls.routing_get(key))

    async def routing_put(self, key: str | bytes, value: bytes) -> int:
        """See :meth:`Client.routing_put`."""
        return await self._run(_Calls.routing_put(key, value))

    async def find_peer(self, peer: object) -> list[str]:
        """See :meth:`Client.find_peer`."""
        return await self._run(_Calls.find_peer(peer))

    async def find_providers(self, key: str | bytes, count: int = 20) -> list[ProviderInfo]:
        """See :meth:`Client.find_providers`."""
        return await self._run(_Calls.find_providers(key, count))

    async def routing_stats(self) -> dict[str, Any]:
        """See :meth:`Client.routing_stats`."""
        return await self._run(_Calls.routing_stats())

    async def config_show(self) -> ConfigView:
        """See :meth:`Client.config_show`."""
        return await self._run(_Calls.config_show())

    async def config_set(self, key: str, value: object) -> ConfigChange:
        """See :meth:`Client.config_set`."""
        return await self._run(_Calls.config_set(key, value))

    async def status(self) -> NodeStatus:
        """See :meth:`Client.status`."""
        return await self._run(_Calls.status())

    async def stop(self) -> bool:
        """See :meth:`Client.stop`."""
        return await self._run(_Calls.stop())

    # -- the complete catalog (issue 9) ---------------------------------------------
    async def deprecate(self, dataset_id: object, reason: str = "") -> DeprecateResult:
        """See :meth:`Client.deprecate`."""
        return await self._run(_Calls.deprecate(dataset_id, reason))

    async def catalog_stats(self) -> dict[str, Any]:
        """See :meth:`Client.catalog_stats`."""
        return await self._run(_Calls.catalog_stats())

    async def catalog_sync(
        self, peers: int = 3, peer: object | None = None
    ) -> list[dict[str, Any]]:
        """See :meth:`Client.catalog_sync`."""
        return await self._run(_Calls.catalog_sync(peers, peer))

    # -- access requests, approvals and grants (issue 10) ------------------------------
    async def request_access(
        self, dataset_id: object, purpose: str, *, days: int = 30, note: str = "", wait: float = 0.0
    ) -> AccessOutcome:
        """See :meth:`Client.request_access`."""
        return await self._run(_Calls.request_access(dataset_id, purpose, days, note, wait))

    async def refresh_request(self, request_id: str, wait: float = 0.0) -> AccessOutcome:
        """See :meth:`Client.refresh_request`."""
        return await self._run(_Calls.refresh_request(request_id, wait))

    async def access_requests(
        self,
        direction: str = "received",
        state: str | None = None,
        dataset: object | None = None,
        limit: int = 100,
    ) -> list[AccessRequestInfo]:
        """See :meth:`Client.access_requests`."""
        return await self._run(_Calls.access_requests(direction, state, dataset, limit))

    async def access_request(
        self, request_id: str, direction: str = "received"
    ) -> AccessRequestInfo:
        """See :meth:`Client.access_request`."""
        return await self._run(_Calls.access_request(request_id, direction))

    async def approve_request(self, request_id: str, days: int | None = None) -> AccessOutcome:
        """See :meth:`Client.approve_request`."""
        return await self._run(_Calls.approve_request(request_id, days))

    async def deny_request(self, request_id: str, reason: str) -> AccessOutcome:
        """See :meth:`Client.deny_request`."""
        return await self._run(_Calls.deny_request(request_id, reason))

    async def grants(
        self,
        role: str = "issued",
        dataset: object | None = None,
        active: bool = False,
        limit: int = 100,
    ) -> list[GrantInfo]:
        """See :meth:`Client.grants`."""
        return await self._run(_Calls.grants(role, dataset, active, limit))

    async def grant(self, grant_id: str, details: bool = False) -> GrantInfo:
        """See :meth:`Client.grant`."""
        return await self._run(_Calls.grant(grant_id, details))

    async def verify_grant(self, raw: bytes, deep: bool = False) -> GrantCheck:
        """See :meth:`Client.verify_grant`."""
        return await self._run(_Calls.verify_grant(raw, deep))

    async def revoke_grant(self, grant_id: str, reason: str = "") -> GrantInfo:
        """See :meth:`Client.revoke_grant`."""
        return await self._run(_Calls.revoke_grant(grant_id, reason))

    async def purposes(self) -> list[PurposeInfo]:
        """See :meth:`Client.purposes`."""
        return await self._run(_Calls.purposes())

    # -- the audit transparency log (issue 11) ----------------------------------------
    async def audit_entries(
        self, since: int = 0, kind: str | None = None, limit: int = 100
    ) -> list[AuditEntryInfo]:
        """See :meth:`Client.audit_entries`."""
        return await self._run(_Calls.audit_entries(since, kind, limit))

    async def audit_head(self, fresh: bool = False) -> AuditHeadInfo:
        """See :meth:`Client.audit_head`."""
        return await self._run(_Calls.audit_head(fresh))

    async def audit_verify(self) -> AuditVerifyReport:
        """See :meth:`Client.audit_verify`."""
        return await self._run(_Calls.audit_verify())

    async def audit_prove(self, index: int) -> AuditProof:
        """See :meth:`Client.audit_prove`."""
        return await self._run(_Calls.audit_prove(index))

    async def audit_alarms(self, limit: int = 100) -> list[AuditAlarm]:
        """See :meth:`Client.audit_alarms`."""
        return await self._run(_Calls.audit_alarms(limit))

    async def audit_witnessed(self) -> list[WitnessedHead]:
        """See :meth:`Client.audit_witnessed`."""
        return await self._run(_Calls.audit_witnessed())

    async def audit_export(
        self, since: int = 0, kind: str | None = None
    ) -> AsyncIterator[AuditEntryInfo]:
        """See :meth:`Client.audit_export`; an async generator (close it when done)."""
        try:
            async with self._http.stream("POST", _EXPORT_PATH, **_export_kwargs(since, kind)) as r:
                if r.status_code != 200:
                    await r.aread()
                    raise _error_from(r)
                async for line in r.aiter_lines():
                    entry = _export_line(line)
                    if entry is not None:
                        yield entry
        except httpx.HTTPError as exc:
            raise _transport_error(exc, self.base_url) from None

    async def watch(
        self, query: str = "", *, timeout: float | None = None
    ) -> AsyncIterator[WatchEvent]:
        """See :meth:`Client.watch`; an async generator. Close it when done, e.g.
        ``async with contextlib.aclosing(dn.watch("rain")) as events: async for e in events``.
        """
        decoder = _results.SseDecoder()
        try:
            async with self._http.stream(
                "POST", _WATCH_PATH, **_watch_kwargs(query, self._timeout, timeout)
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise _error_from(response)
                async for line in response.aiter_lines():
                    item = decoder.feed(line)
                    if item is not None:
                        yield _results.parse_watch_event(*item)
        except httpx.HTTPError as exc:
            raise _watch_error(exc, self.base_url, timeout) from None
