"""The control API's endpoints: one table that is both the router and the spec.

Each :class:`Operation` names its path, its request fields (a small subset of JSON
Schema that the HTTP layer checks before calling the node), its response schema
and its handler. :mod:`datanet.api.app` serves the table and
:mod:`datanet.api.openapi` turns the very same table into the OpenAPI document, so
the two cannot drift apart.

Invariants:
* Every endpoint is ``POST /api/v0/<path>`` (like Kubo's RPC API). JSON endpoints
  take one JSON object (an empty body means ``{}``); ``publish`` takes the raw signed
  descriptor file as ``application/octet-stream``. A *stream* operation (one with
  ``stream``: ``catalog/watch``) answers with server-sent events instead of JSON and
  also takes ``GET`` with its fields as query parameters (for ``EventSource``). A
  *lines* operation (one with ``lines``: ``audit/export``) answers with JSON Lines
  (``application/x-ndjson``), produced page by page so memory stays bounded.
* A handler receives arguments that already passed :func:`check_args`: right
  types, within bounds, no unknown fields. It raises only ``DatanetError``.
* Responses are JSON-safe (:func:`jsonable`): ids as text, bytes as standard
  base64, tuples as lists, no NaN.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import enum
import math
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio

from datanet.api._node_protocol import CatalogEventLike, NodeAPI
from datanet.api.errors import InvalidRequest
from datanet.api.metrics import ApiMetrics
from datanet.errors import DecodeError, RecordTooLarge
from datanet.node.config import SETTINGS, Config, ConfigFile
from datanet.records.dcat import to_dcat_jsonld
from datanet.records.descriptor import decode_descriptor_unverified
from datanet.records.ids import DatasetId
from datanet.records.search import MAX_FILTER_VALUE, MAX_FILTER_VALUES, SearchFilters
from identity.certs import MembershipCertificate
from identity.keys import OrgId, PeerId
from routing.records import MAX_KEY_SIZE

__all__ = [
    "API_PREFIX",
    "AUDIT_ALARM_SCHEMA",
    "AUDIT_ENTRY_SCHEMA",
    "AUDIT_HEAD_SCHEMA",
    "AUDIT_PROOF_SCHEMA",
    "AUDIT_VERIFY_SCHEMA",
    "EXPORT_PAGE",
    "MAX_AUDIT_LIMIT",
    "NDJSON",
    "OPERATIONS",
    "WITNESSED_HEAD_SCHEMA",
    "ApiContext",
    "Field",
    "Operation",
    "check_args",
    "jsonable",
    "transport_addrs",
]

API_PREFIX = "/api/v0"
_MAX_JSON_DEPTH = 8


def _version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

        return version("datanet")
    except PackageNotFoundError:
        return "0.0.0+unknown"


@dataclass
class ApiContext:
    """Everything a handler may use: the node, the config file, the stop switch."""

    node: NodeAPI
    config_file: ConfigFile
    running_config: Config
    request_stop: Callable[[], None]
    token: str
    started_monotonic: float = field(default_factory=time.monotonic)
    version: str = field(default_factory=_version)
    pid: int = field(default_factory=os.getpid)
    api_url: str = ""
    heartbeat_interval: float = 15.0
    """Seconds between the comment lines that keep an event stream open through proxies."""
    metrics: ApiMetrics = field(default_factory=ApiMetrics)
    """The API's own metrics (request latency), served with the node's on ``/metrics``."""

    @property
    def max_body_bytes(self) -> int:
        """``api.max_body_bytes`` of the running config."""
        return self.running_config.api.max_body_bytes

    @property
    def request_timeout(self) -> float:
        """``api.request_timeout`` of the running config."""
        return self.running_config.api.request_timeout

    @property
    def metrics_public(self) -> bool:
        """``metrics.public`` of the running config: ``/metrics`` needs no token."""
        return self.running_config.metrics.public


# --- request fields -----------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One field of a JSON request body.

    ``schema`` uses only ``type`` (string, integer, number, boolean, array of strings;
    absent = any JSON), ``minLength``/``maxLength``, ``minimum``/``maximum`` and
    ``maxItems`` (with ``items`` holding a string schema); :func:`check_args`
    enforces exactly those, and the OpenAPI document publishes them. An optional
    field whose default is ``None`` also takes ``null`` (absent).
    """

    name: str
    schema: Mapping[str, Any]
    help: str
    required: bool = False
    default: Any = None


def _string(max_length: int, min_length: int = 0, pattern: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "minLength": min_length, "maxLength": max_length}
    if pattern is not None:
        schema["pattern"] = pattern
    return schema


# Anchored patterns in the common subset of ECMA-262 and Python regexes. They catch
# the obvious mistakes early and make the published schema precise; the full
# grammar is still checked by the parsers (DatasetId.parse, PeerId.parse…).
_B58 = "[1-9A-HJ-NP-Za-km-z]"
DATASET_ID_PATTERN = f"^dn://did:key:z{_B58}+/[a-z0-9][a-z0-9._/-]*$"
PEER_ID_PATTERN = f"^12D3KooW{_B58}+$"
DHT_KEY_PATTERN = "^(/[A-Za-z0-9._-]+/.+|dn://.+)$"
"""A DHT key (``/ns/…``) or a dataset id (``dn://…``), which stands for its keys."""
BASE64_PATTERN = "^[A-Za-z0-9+/]*={0,2}$"


def _integer(minimum: int, maximum: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": minimum, "maximum": maximum}


def _strings(max_items: int, max_length: int) -> dict[str, Any]:
    return {
        "type": "array",
        "maxItems": max_items,
        "items": {"type": "string", "minLength": 1, "maxLength": max_length},
    }


_BOOLEAN: dict[str, Any] = {"type": "boolean"}


def _depth(value: Any, limit: int) -> int:
    if limit <= 0:
        return 1
    if isinstance(value, dict):
        return 1 + max((_depth(v, limit - 1) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v, limit - 1) for v in value), default=0)
    return 0


def check_args(fields: Sequence[Field], body: Any) -> dict[str, Any]:
    """Check a decoded JSON body against ``fields``; fill in defaults.

    Raises:
        InvalidRequest: not an object, an unknown or missing field, a value of the
            wrong type or out of bounds. The message names the field.
    """
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    by_name = {f.name: f for f in fields}
    unknown = [k for k in body if k not in by_name]
    if unknown:
        takes = ", ".join(by_name) or "no fields"
        raise InvalidRequest(f"unknown field {unknown[0][:40]!r}; this endpoint takes {takes}")
    out: dict[str, Any] = {}
    for f in fields:
        if f.name not in body:
            if f.required:
                raise InvalidRequest(f"missing required field {f.name!r}")
            out[f.name] = f.default
            continue
        value = body[f.name]
        if value is None and not f.required and f.default is None:
            out[f.name] = None  # an optional field without default: null means absent
            continue
        kind = f.schema.get("type")
        if kind == "string":
            if not isinstance(value, str):
                raise InvalidRequest(f"{f.name!r} must be a string")
            if not f.schema.get("minLength", 0) <= len(value) <= f.schema["maxLength"]:
                raise InvalidRequest(
                    f"{f.name!r} must be {f.schema.get('minLength', 0)} to "
                    f"{f.schema['maxLength']} characters"
                )
            pattern = f.schema.get("pattern")
            if pattern is not None and not re.search(pattern, value):
                raise InvalidRequest(f"{f.name!r} must match {pattern}")
        elif kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidRequest(f"{f.name!r} must be an integer")
            if not f.schema["minimum"] <= value <= f.schema["maximum"]:
                raise InvalidRequest(
                    f"{f.name!r} must be between {f.schema['minimum']} and {f.schema['maximum']}"
                )
        elif kind == "number":
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                raise InvalidRequest(f"{f.name!r} must be a number")
            if not f.schema["minimum"] <= value <= f.schema["maximum"]:
                raise InvalidRequest(
                    f"{f.name!r} must be between {f.schema['minimum']} and {f.schema['maximum']}"
                )
            value = float(value)
        elif kind == "boolean":
            if not isinstance(value, bool):
                raise InvalidRequest(f"{f.name!r} must be true or false")
        elif kind == "array":
            items = f.schema["items"]
            if not isinstance(value, list) or len(value) > f.schema["maxItems"]:
                raise InvalidRequest(
                    f"{f.name!r} must be a list of at most {f.schema['maxItems']} strings"
                )
            for item in value:
                if not isinstance(item, str) or not (
                    items.get("minLength", 0) <= len(item) <= items["maxLength"]
                ):
                    raise InvalidRequest(
                        f"each of {f.name!r} must be a string of {items.get('minLength', 0)} "
                        f"to {items['maxLength']} characters"
                    )
        elif _depth(value, _MAX_JSON_DEPTH + 1) > _MAX_JSON_DEPTH:
            raise InvalidRequest(f"{f.name!r} is nested too deeply")
        out[f.name] = value
    return out


# --- JSON rendering -----------------------------------------------------------------


def jsonable(value: Any, _depth: int = 0) -> Any:
    """A JSON-safe copy of ``value``.

    Names (peer, org, dataset ids) become their text, bytes standard base64,
    dataclasses and mappings objects, sequences and sets lists, enums their value,
    and non-finite floats ``null``. Anything else becomes its ``str``.
    """
    if _depth > 32:
        return None
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, PeerId | OrgId | DatasetId):
        return str(value)
    if isinstance(value, enum.Enum):
        return jsonable(value.value, _depth + 1)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: jsonable(getattr(value, f.name), _depth + 1) for f in dataclasses.fields(value)
        }
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, frozenset | set):
        return sorted((jsonable(v, _depth + 1) for v in value), key=str)
    if isinstance(value, list | tuple):
        return [jsonable(v, _depth + 1) for v in value]
    return str(value)


def _b64decode(name: str, text: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise InvalidRequest(f"{name!r} must be standard base64") from None


def _dht_key(text: str) -> bytes:
    """The DHT key ``text`` names: a dataset id stands for its descriptor's ``/dn/`` key.

    Raises:
        InvalidRequest: too long.
        InvalidInput: ``dn://…`` that is not a dataset id.
    """
    if text.startswith("dn://"):
        return DatasetId.parse(text).dht_key()
    key = text.encode("utf-8")
    if len(key) > MAX_KEY_SIZE:
        raise InvalidRequest(f"'key' is {len(key)} bytes; the limit is {MAX_KEY_SIZE}")
    return key


def _provider_key(text: str) -> bytes:
    """The provider key ``text`` names: a dataset's, whether given as ``dn://…`` or ``/dn/…``.

    Publishers announce a dataset under the multihash of its ``/dn/`` key
    (:meth:`DatasetId.provider_key`), never under the ``/dn/`` key itself, so
    both spellings of a dataset are mapped to it; any other key is asked as is.
    """
    key = _dht_key(text)
    if key.startswith(b"/dn/"):
        try:
            return DatasetId.from_dht_key(key).provider_key()
        except DecodeError:
            return key  # not a dataset's key: asked as is, like any other key
    return key


_PEER_SUFFIX = re.compile(r"/p2p/[1-9A-HJ-NP-Za-km-z]+$")


def transport_addrs(addrs: Sequence[str]) -> list[str]:
    """``addrs`` without a trailing ``/p2p/<id>``: the API prints the peer id on its own.

    One rule everywhere the API shows addresses (id, peers, findpeer, findprovs,
    status), as kad messages carry them (docs/p2p.md); a relay address keeps
    its inner ``/p2p/`` (the relay's id is part of the path).
    """
    out = []
    for addr in addrs:
        bare = _PEER_SUFFIX.sub("", addr)
        if bare and bare not in out:
            out.append(bare)
    return out


def certificate_json(cert: MembershipCertificate) -> dict[str, Any]:
    """The JSON form of a membership certificate, as the API shows it."""
    return {
        "org": str(cert.org),
        "org_name": cert.org_name,
        "node": str(cert.node),
        "roles": sorted(r.value for r in cert.roles),
        "serial": cert.serial,
        "not_before": cert.not_before,
        "not_after": cert.not_after,
    }


# --- handlers -----------------------------------------------------------------------

Handler = Callable[[ApiContext, dict[str, Any], bytes], Awaitable[dict[str, Any]]]
StreamOpener = Callable[
    [ApiContext, dict[str, Any]], AbstractAsyncContextManager[AsyncIterator[CatalogEventLike]]
]
"""Opens a stream operation's events (checked args in); leaving the block ends them."""
LineOpener = Callable[[ApiContext, dict[str, Any]], AsyncIterator[Mapping[str, Any]]]
"""Yields a JSON Lines operation's objects (checked args in), one per line, lazily."""


async def _id(ctx: ApiContext, args: dict[str, Any], body: bytes) -> dict[str, Any]:
    node = ctx.node
    return {
        "peer_id": str(node.peer_id),
        "org": None if node.org is None else str(node.org),
        "addrs": transport_addrs(node.listen_addrs()),
        "agent": f"datanet/{ctx.version}",
    }


async def _peers(ctx: ApiContext, args: dict[str, Any], body: bytes) -> dict[str, Any]:
    peers = []
    for info in ctx.node.peers():
        latency = info.latency
        peers.append(
            {
                "peer_id": str(info.peer_id),
                "addrs": transport_addrs(info.addrs),
                "org": None if info.org is None else str(info.org),
                "latency_ms": None
                if latency is None or not math.isfinite(latency)
                else round(latency * 1000, 3),
            }
        )
    return {"peers": peers}


async def _publish(ctx: ApiContext, args: dict[str, Any], body: bytes) -> dict[str, Any]:
    if not body:
        raise InvalidRequest(
            "the body must be a signed record file (.dnd bytes, a revocation list…)"
        )
    result = await ctx.node.publish(body)
    return {
        "dataset_id": None if result.dataset_id is None else str(result.dataset_id),
        "sequence": result.sequence,
        "replicas": result.replicas,
        "kind": result.kind,
        "key": result.key,
        **_put_progress(result),
    }


def _put_progress(outcome: Any) -> dict[str, int]:
    """``acked`` (= ``replicas``), ``target`` and ``pending`` of a publish's put."""
    return {"acked": outcome.replicas, "target": outcome.target, "pending": outcome.pending}


_PUT_PROGRESS_SCHEMA = {
    "acked": {
        "type": "integer",
        "description": "peers that stored the record when the answer was given (= replicas)",
    },
    "target": {
        "type": "integer",
        "description": "how many peers the put aims at: the k closest found so far",
    },
    "pending": {
        "type": "integer",
        "description": "writes still under way when the answer was given; they go on in the "
        "background (0: the put is complete)",
    },
}


async def _resolve(ctx: ApiContext, args: dict[str, Any], body: bytes) -> dict[str, Any]:
    dataset_id = DatasetId.parse(args["id"])
    verified = await ctx.node.resolve(dataset_id, refresh=args["refresh"])
    descriptor = verified.descriptor
    return {
        "dataset_id": str(descriptor.dataset_id),
        "sequence": descriptor.sequence,
        "descriptor": jsonable(descriptor.to_json()),
        "certificate": certificate_json(verified.certificate),
        "raw": base64.b64encode(verified.raw).decode("ascii"),
    }


async def _dcat(ctx: ApiContext, args: dict[str, Any], body: bytes) -> dict[str, Any]:
    dataset_id = DatasetId.parse(args["id"])
    verified = await ctx.node.resolve(dataset_id, refresh=args["refresh"])
    # the node verified these exact bytes; decode them into the record dcat.py exports
    descriptor = decode_descriptor_unverified(verified.raw)
    return {
        "dataset_id": str(descriptor.dataset_id),
        "sequence": descriptor.sequence,
        "dcat": jsonable(to_dcat_jsonld(descriptor)),
    }


async def _search(ctx: ApiContext, args: dict[str, Any], body: bytes) -> dict[str, Any]:
    filters = SearchFilters(
        orgs=tuple(args["org"]),
        keywords=tuple(args["keyword"]),
        themes=tuple(args["theme"]),
        licenses=tuple(args["license"]),
        media_types=tuple(args["media_type"]),
        access=tuple(args["access"]),
        temporal_from=args["from"],
        temporal_to=args["to"],
    )
    page = ctx.node.search(
        args["query"],
        filters=filters,
        limit=args["limit"],
        cursor=args["cursor"],
        facets=args["facets"],
    )
    return {
        "query": args["query"],
        "limit": args["limit"],
        "hits": [jsonable(hit) for hit in page.hits],
        "total": page.total,
        "facets": {
            name: [{"value": f.value, "count": f.count} for f in values]
            for name, values in page.facets.items()
        },
        "counted": page.counted,
        "next_cursor": page.next_cursor,
    }


async def _routing_get(ctx: ApiContext, args: dict[str, Any], body: bytes) -> dict[str, Any]:
    value = await ctx.node.routing_get(_dht_key(args["key"]))
    return {"key": args["key"], "value": base64.b64encode(value).decode("ascii")}


async def _routing_put(ctx: ApiContext, args: dict[str, Any], body: bytes) -> dict[str, Any]:
    key = _dht_key(args["key"])
    value = _b64decode("value", args["value"])
    replicas = await ctx.node.routing_put(key, value)
    return {"key": args["key"], "replicas": replicas}


async def _routing_findpeer(ctx: ApiContext, args: dict[str, Any], body: bytes) -> dict[str, Any]:
    peer = PeerId.parse(args["peer"])
    addrs = await ctx.node.find_peer(peer)
    return {"peer_id": str(peer), "addrs": transport_addrs(addrs)}


async def _routing_findprovs(ctx: ApiContext, args: dict[str, Any], body: bytes) -> dict[str, Any]:
    providers = await ctx.node.find_providers(_provider_key(args["key"]), args["count"])
    return {
        "key": args["key"],
        "providers": [
            {"peer_id": str(p), "addrs": transport_addrs(addrs)} for p, addrs in providers
        ],
    }


async def _replicas(ctx: ApiContext, args: dict[str, Any], body: bytes) -> dict[str, Any]:
    dataset_id = DatasetId.parse(args["id"])
    census = await ctx.node.replicas(dataset_id)
    return {
        "dataset_id": str(dataset_id),
        "replicas": [
            {"peer_id": str(p), "addrs": transport_addrs(addrs), "state": state}
            for p, addrs, state in census
        ],
    }


async def _routing_stats(ctx: ApiContext, args: dict[str, Any], body: bytes) -> dict[str, Any]:
    return {"stats": jsonable(ctx.node.routing_stats())}


async def _config_show(ctx: ApiContext, args: dict[str, Any], body: bytes) -> dict[str, Any]:
    on_disk = ctx.config_file.read()
    return {
        "path": str(ctx.config_file.path),
        "config": on_disk.to_mapping(),
        "restart_required": on_disk != ctx.running_config,
    }


async def _config_set(ctx: ApiContext, args: dict[str, Any], body: bytes) -> dict[str, Any]:
    new = ctx.config_file.set(args["key"], args["value"])
    value = new[args["key"]]
    return {
        "key": args["key"],
        "value": list(value) if isinstance(value, tuple) else value,
        "restart_required": new != ctx.running_config,
    }


async def _node_status(ctx: ApiContext, args: dict[str, Any], body: bytes) -> dict[str, Any]:
    node = ctx.node
    return {
        "peer_id": str(node.peer_id),
        "org": None if node.org is None else str(node.org),
        "version": ctx.version,
        "pid": ctx.pid,
        "uptime_s": round(time.monotonic() - ctx.started_monotonic, 3),
        "api_url": ctx.api_url,
        "peers": len(node.peers()),
        "node": _own_report(node.status()),
    }


_STATUS_TOP = frozenset({"peer_id", "org", "peers"})


def _own_report(status: Mapping[str, Any]) -> Any:
    """The node's report without what the status answer already says at its top level."""
    report = {k: v for k, v in status.items() if k not in _STATUS_TOP}
    if isinstance(report.get("addresses"), list):
        report["addresses"] = transport_addrs(report["addresses"])
    return jsonable(report)


async def _node_stop(ctx: ApiContext, args: dict[str, Any], body: bytes) -> dict[str, Any]:
    ctx.request_stop()
    return {"stopping": True}


# --- the table ----------------------------------------------------------------------

_TEXT_LIST: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
#: ``resolve`` and ``dcat`` take the same fields: which dataset, and whether to ask the network.
_RESOLVE_FIELDS = (
    Field("id", _string(400, 1, DATASET_ID_PATTERN), "dataset id, dn://did:key:z6Mk…/name", True),
    Field("refresh", _BOOLEAN, "ask the network even if the catalog holds a copy", False, False),
)
_PEER_ID: dict[str, Any] = {"type": "string", "description": "peer id, 12D3KooW…"}
_ORG_OR_NULL: dict[str, Any] = {"type": ["string", "null"], "description": "did:key:z6Mk…"}


def _object(properties: Mapping[str, Any], *, extra: bool = False) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(properties),
        "properties": dict(properties),
        "additionalProperties": extra,
    }


_CERTIFICATE = _object(
    {
        "org": {"type": "string"},
        "org_name": {"type": "string"},
        "node": _PEER_ID,
        "roles": _TEXT_LIST,
        "serial": {"type": "integer"},
        "not_before": {"type": "integer"},
        "not_after": {"type": "integer"},
    }
)

_KEY_FIELD = Field(
    "key",
    _string(MAX_KEY_SIZE, 4, DHT_KEY_PATTERN),
    "DHT key as text, e.g. /dn/did:key:z6Mk…/name, or a dataset id dn://did:key:z6Mk…/name",
    True,
)


@dataclass(frozen=True)
class Operation:
    """One endpoint: ``POST {API_PREFIX}{path}``."""

    path: str
    summary: str
    handler: Handler
    response: Mapping[str, Any]
    fields: tuple[Field, ...] = ()
    body: Literal["json", "octet-stream"] = "json"
    tag: str = "node"
    description: str = ""
    stream: StreamOpener | None = None
    """Set for an event-stream operation; ``handler`` is then never called."""
    lines: LineOpener | None = None
    """Set for a JSON Lines operation (``audit/export``); ``handler`` is then never called."""

    @property
    def operation_id(self) -> str:
        """A stable OpenAPI operationId (``routing_findprovs``)."""
        return self.path.strip("/").replace("/", "_")


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "/id",
        "This node's identity and addresses",
        _id,
        _object(
            {
                "peer_id": _PEER_ID,
                "org": _ORG_OR_NULL,
                "addrs": _TEXT_LIST,
                "agent": {"type": "string"},
            }
        ),
    ),
    Operation(
        "/peers",
        "Connected peers",
        _peers,
        _object(
            {
                "peers": {
                    "type": "array",
                    "items": _object(
                        {
                            "peer_id": _PEER_ID,
                            "addrs": _TEXT_LIST,
                            "org": _ORG_OR_NULL,
                            "latency_ms": {"type": ["number", "null"]},
                        }
                    ),
                }
            }
        ),
    ),
    Operation(
        "/publish",
        "Publish a signed descriptor (or another signed ledger record)",
        _publish,
        _object(
            {
                "dataset_id": {"type": ["string", "null"]},
                "sequence": {"type": "integer"},
                "replicas": {"type": "integer"},
                "kind": {
                    "type": "string",
                    "enum": ["descriptor", "deprecation", "revocation", "org"],
                },
                "key": {"type": "string"},
                **_PUT_PROGRESS_SCHEMA,
            }
        ),
        body="octet-stream",
        tag="datasets",
        description="The body is the signed descriptor file exactly as `datanet descriptor "
        "sign` wrote it (Content-Type: application/octet-stream), or another signed ledger "
        "record: a deprecation, an org's revocation list (`datanet org revoke --out`), an org "
        "record. The node verifies it, holds it, sends it to every node by gossip and stores "
        "it on the closest peers. It answers once `dht.put_quorum` peers stored it (`acked`, "
        "out of `target`); the `pending` other writes go on in the background.",
    ),
    Operation(
        "/resolve",
        "Resolve a dataset id to its newest valid descriptor",
        _resolve,
        _object(
            {
                "dataset_id": {"type": "string"},
                "sequence": {"type": "integer"},
                "descriptor": {"type": "object"},
                "certificate": _CERTIFICATE,
                "raw": {"type": "string", "description": "the signed bytes, base64"},
            }
        ),
        fields=_RESOLVE_FIELDS,
        tag="datasets",
    ),
    Operation(
        "/dcat",
        "A dataset's newest valid descriptor as DCAT-3 JSON-LD",
        _dcat,
        _object(
            {
                "dataset_id": {"type": "string"},
                "sequence": {"type": "integer"},
                "dcat": {"type": "object", "description": "a dcat:Dataset, compact JSON-LD"},
            }
        ),
        fields=_RESOLVE_FIELDS,
        tag="datasets",
        description="The descriptor `resolve` answers with, exported as `datanet descriptor "
        "export --dcat` does (the dashboard's DCAT view).",
    ),
    Operation(
        "/search",
        "Full-text and faceted search of the local catalog",
        _search,
        _object(
            {
                "query": {"type": "string"},
                "limit": {"type": "integer"},
                "hits": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["dataset_id", "title"],
                        "properties": {
                            "dataset_id": {"type": "string"},
                            "title": {"type": "string"},
                            "org": {"type": "string"},
                            "sequence": {"type": "integer"},
                            "modified": {"type": "integer"},
                            "keywords": _TEXT_LIST,
                            "description": {"type": "string"},
                            "score": {"type": ["number", "null"]},
                            "license": {"type": "string"},
                            "access": {"type": "string"},
                            "media_types": _TEXT_LIST,
                            "themes": _TEXT_LIST,
                        },
                    },
                },
                "total": {"type": "integer"},
                "facets": {
                    "type": "object",
                    "description": "facet name -> its top values, most frequent first",
                    "additionalProperties": {
                        "type": "array",
                        "items": _object(
                            {"value": {"type": "string"}, "count": {"type": "integer"}}
                        ),
                    },
                },
                "counted": {
                    "type": "integer",
                    "description": "how many of the matches the facet counts cover",
                },
                "next_cursor": {"type": ["string", "null"]},
            }
        ),
        fields=(
            Field("query", _string(1024), "words to find; empty lists the newest", False, ""),
            *(
                Field(name, _strings(MAX_FILTER_VALUES, MAX_FILTER_VALUE), text, False, [])
                for name, text in (
                    ("org", "only these organizations (did:key), any of them"),
                    ("keyword", "only datasets with any of these keywords"),
                    ("theme", "only datasets with any of these themes"),
                    ("license", "only datasets under any of these licenses"),
                    ("media_type", "only datasets with a distribution of any of these media types"),
                    ("access", "only these access modes: open, request, closed"),
                )
            ),
            Field(
                "from",
                _integer(-(2**63) + 1, 2**63 - 1),
                "only coverage ending at or after this time (Unix seconds)",
            ),
            Field(
                "to",
                _integer(-(2**63) + 1, 2**63 - 1),
                "only coverage starting at or before this time (Unix seconds)",
            ),
            Field("limit", _integer(1, 100), "most hits to return", False, 20),
            Field("cursor", _string(256, 1), "next_cursor of the previous page", False, None),
            Field("facets", _BOOLEAN, "count facet values", False, True),
        ),
        tag="datasets",
        description="Values within one filter are OR'ed, filters are AND'ed (as CKAN). Page "
        "with `cursor` (the previous answer's `next_cursor`, same query and filters); a cursor "
        "of another search is rejected. For a text query, `total` and the facet counts cover "
        "the ranked window (the 1,000 most recently ingested matches per tier).",
    ),
    Operation(
        "/routing/get",
        "Get the best valid DHT value under a key",
        _routing_get,
        _object({"key": {"type": "string"}, "value": {"type": "string"}}),
        fields=(_KEY_FIELD,),
        tag="routing",
    ),
    Operation(
        "/routing/put",
        "Validate a value and store it on the closest peers",
        _routing_put,
        _object({"key": {"type": "string"}, "replicas": {"type": "integer"}}),
        fields=(
            _KEY_FIELD,
            Field("value", _string(32_768, 1, BASE64_PATTERN), "the value, standard base64", True),
        ),
        tag="routing",
    ),
    Operation(
        "/routing/findpeer",
        "Find a peer's addresses",
        _routing_findpeer,
        _object({"peer_id": _PEER_ID, "addrs": _TEXT_LIST}),
        fields=(Field("peer", _string(80, 1, PEER_ID_PATTERN), "peer id, 12D3KooW…", True),),
        tag="routing",
    ),
    Operation(
        "/routing/findprovs",
        "Find providers of a key",
        _routing_findprovs,
        _object(
            {
                "key": {"type": "string"},
                "providers": {
                    "type": "array",
                    "items": _object({"peer_id": _PEER_ID, "addrs": _TEXT_LIST}),
                },
            }
        ),
        fields=(
            Field(
                "key",
                _string(MAX_KEY_SIZE, 4, DHT_KEY_PATTERN),
                "DHT key as text (/dn/did:key:z6Mk…/name), or a dataset id (dn://…) for the "
                "nodes that published it",
                True,
            ),
            Field("count", _integer(1, 100), "most providers", False, 20),
        ),
        tag="routing",
    ),
    Operation(
        "/replicas",
        "Which of the k closest peers hold a dataset's newest descriptor",
        _replicas,
        _object(
            {
                "dataset_id": {"type": "string"},
                "replicas": {
                    "type": "array",
                    "items": _object(
                        {
                            "peer_id": _PEER_ID,
                            "addrs": _TEXT_LIST,
                            "state": {"type": "string", "enum": ["current", "outdated", "missing"]},
                        }
                    ),
                },
            }
        ),
        fields=_RESOLVE_FIELDS[:1],
        tag="datasets",
        description="A full DHT lookup of the descriptor's key that asks every one of the k "
        "closest peers (no quorum): `current` peers hold the newest valid copy, `outdated` an "
        "older or invalid one, `missing` none. Peers that did not answer are not listed.",
    ),
    Operation(
        "/routing/stats",
        "Routing table and store statistics",
        _routing_stats,
        _object({"stats": {"type": "object"}}),
        tag="routing",
    ),
    Operation(
        "/config/show",
        "The config file's settings",
        _config_show,
        _object(
            {
                "path": {"type": "string"},
                "config": {"type": "object"},
                "restart_required": {"type": "boolean"},
            }
        ),
        tag="config",
        description="`restart_required` is true when the file differs from the settings the "
        "node is running with.",
    ),
    Operation(
        "/config/set",
        "Change one setting in the config file",
        _config_set,
        _object({"key": {"type": "string"}, "value": {}, "restart_required": {"type": "boolean"}}),
        fields=(
            Field(
                "key",
                _string(64, 1),
                "dotted key: " + ", ".join(s.key for s in SETTINGS),
                True,
            ),
            Field("value", {}, "new value (typed JSON, or text as on the command line)", True),
        ),
        tag="config",
        description="The file is checked and replaced atomically; the node applies it on restart.",
    ),
    Operation(
        "/node/status",
        "Node status",
        _node_status,
        _object(
            {
                "peer_id": _PEER_ID,
                "org": _ORG_OR_NULL,
                "version": {"type": "string"},
                "pid": {"type": "integer"},
                "uptime_s": {"type": "number"},
                "api_url": {"type": "string"},
                "peers": {"type": "integer"},
                "node": {"type": "object"},
            }
        ),
    ),
    Operation(
        "/node/stop",
        "Stop the daemon cleanly",
        _node_stop,
        _object({"stopping": {"type": "boolean"}}),
        description="Answers first, then shuts the node down as on SIGTERM.",
    ),
)


# --- the complete catalog: deprecate, catalog stats|sync, catalog watch (issue 9) ----


async def _deprecate(ctx: ApiContext, args: dict[str, Any], body: bytes) -> dict[str, Any]:
    dataset_id = DatasetId.parse(args["arg"])
    outcome = await ctx.node.deprecate(dataset_id, reason=args["reason"])
    return {
        "dataset_id": str(outcome.dataset_id),
        "sequence": outcome.sequence,
        "replicas": outcome.replicas,
        **_put_progress(outcome),
    }


async def _catalog_stats(ctx: ApiContext, args: dict[str, Any], body: bytes) -> dict[str, Any]:
    return {"stats": jsonable(ctx.node.catalog_stats())}


async def _catalog_sync(ctx: ApiContext, args: dict[str, Any], body: bytes) -> dict[str, Any]:
    peer = PeerId.parse(args["peer"]) if args["peer"] else None
    results = await ctx.node.catalog_sync(peers=args["peers"], peer=peer)
    return {"synced": [jsonable(r) for r in results]}


def _watch(
    ctx: ApiContext, args: dict[str, Any]
) -> AbstractAsyncContextManager[AsyncIterator[CatalogEventLike]]:
    return ctx.node.feed.subscribe(args["q"])


async def _stream_only(ctx: ApiContext, args: dict[str, Any], body: bytes) -> dict[str, Any]:
    raise InvalidRequest("this endpoint answers with an event stream")  # pragma: no cover


WATCH_QUERY_MAX = 512
"""The longest ``q`` of ``catalog/watch`` (the feed's and the catalog's query bound)."""

_CATALOG_EVENT = {
    "type": "object",
    "required": ["kind", "at"],
    "properties": {
        "kind": {"type": "string", "enum": ["new", "updated", "withdrawn", "overflow"]},
        "dataset_id": {"type": "string"},
        "sequence": {"type": "integer"},
        "org": {"type": "string"},
        "title": {"type": "string"},
        "keywords": _TEXT_LIST,
        "themes": _TEXT_LIST,
        "description": {"type": "string"},
        "reason": {"type": ["string", "null"], "enum": ["deprecated", "revoked", "expired", None]},
        "at": {"type": "number"},
        "lost": {"type": "integer", "description": "overflow only: events this watcher missed"},
    },
}
"""The ``data:`` of one event of ``catalog/watch`` (its ``event:`` line is ``kind``)."""

_CATALOG_OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "/deprecate",
        "Deprecate one of this organization's datasets",
        _deprecate,
        _object(
            {
                "dataset_id": {"type": "string"},
                "sequence": {"type": "integer"},
                "replicas": {"type": "integer"},
                **_PUT_PROGRESS_SCHEMA,
            }
        ),
        fields=(
            Field(
                "arg",
                _string(400, 1, DATASET_ID_PATTERN),
                "dataset id, dn://did:key:z6Mk…/name",
                True,
            ),
            Field("reason", _string(1024), "why, for the people who use it", False, ""),
        ),
        tag="datasets",
        description="The node signs a withdrawal one sequence above the descriptor it holds, "
        "stores it and announces it; every catalog drops the dataset and watchers see a "
        "`withdrawn` event with reason `deprecated`. Only the dataset's own organization "
        "can deprecate it.",
    ),
    Operation(
        "/catalog/stats",
        "Catalog, gossip and sync statistics",
        _catalog_stats,
        _object({"stats": {"type": "object"}}),
        tag="catalog",
    ),
    Operation(
        "/catalog/sync",
        "Run anti-entropy catalog sync now",
        _catalog_sync,
        _object({"synced": {"type": "array", "items": {"type": "object"}}}),
        fields=(
            Field(
                "peer",
                _string(80, 0, f"^(12D3KooW{_B58}+)?$"),
                "sync with this peer only (12D3KooW…); empty: pick peers",
                False,
                "",
            ),
            Field("peers", _integer(1, 32), "how many peers to sync with", False, 3),
        ),
        tag="catalog",
        description="One object per peer synced (what was exchanged); the node's own "
        "periodic sync runs regardless.",
    ),
    Operation(
        "/catalog/watch",
        "Stream catalog changes (server-sent events)",
        _stream_only,
        _CATALOG_EVENT,
        fields=(
            Field(
                "q",
                _string(WATCH_QUERY_MAX),
                "only changes whose text has every word of this (as word prefixes); "
                "empty: every change",
                False,
                "",
            ),
        ),
        tag="catalog",
        description="`text/event-stream`: one `event: <kind>` and `data: <JSON>` per catalog "
        "change (`new`, `updated`, `withdrawn`), in order, until the client disconnects; a "
        "comment line every 15 s keeps proxies from closing it. A watcher that falls behind "
        "loses events and gets one `overflow` event (`lost`: how many) in their place. "
        "`GET` with `?q=` works too (EventSource); the bearer token is needed either way. "
        "Too many watchers at once: `400 invalid_input`.",
        stream=_watch,
    ),
)

OPERATIONS = (*OPERATIONS, *_CATALOG_OPERATIONS)


# --- access requests, approvals and grants (issue 10) --------------------------------

MAX_ACCESS_PURPOSE = 64
"""The longest purpose id a request may name (``datanet.records.policy.MAX_PURPOSE``)."""
MAX_ACCESS_NOTE = 512
MAX_ACCESS_REASON = 256
MAX_ACCESS_DAYS = 3650
MAX_ACCESS_WAIT = 300.0
MAX_ACCESS_LIMIT = 1000
MAX_GRANT_BYTES = 64 * 1024
"""The largest signed grant ``access/grants/verify`` takes (decoded)."""
WAIT_MARGIN = 5.0
"""Seconds of ``api.request_timeout`` kept free for the node's own work around a wait."""

_NO_CONTROL = "^[^\\x00-\\x1f\\x7f]*$"
_NO_CONTROL_BUT_LINES = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f]*$"
HEX_ID_PATTERN = "^[0-9a-fA-F]{8,64}$"


def _hex_id(text: str) -> str:
    return text.lower()


def _wait_for(ctx: ApiContext, wait: float) -> float:
    """``wait``, capped so that the call ends well within ``api.request_timeout``."""
    return max(0.0, min(wait, ctx.request_timeout - WAIT_MARGIN))


def _optional_dataset(text: str | None) -> DatasetId | None:
    return None if text is None else DatasetId.parse(text)


async def _access_request(ctx: ApiContext, args: dict[str, Any], body: bytes) -> dict[str, Any]:
    outcome = await ctx.node.request_access(
        DatasetId.parse(args["id"]),
        purpose=args["purpose"],
        days=args["days"],
        note=args["note"],
        wait=_wait_for(ctx, args["wait"]),
    )
    return dict(jsonable(outcome))


async def _access_refresh(ctx: ApiContext, args: dict[str, Any], body: bytes) -> dict[str, Any]:
    outcome = await ctx.node.refresh_request(_hex_id(args["id"]), wait=_wait_for(ctx, args["wait"]))
    return dict(jsonable(outcome))


async def _access_requests(ctx: ApiContext, args: dict[str, Any], body: bytes) -> dict[str, Any]:
    views = ctx.node.access_requests(
        direction=args["direction"],
        state=args["state"],
        dataset=_optional_dataset(args["dataset"]),
        limit=args["limit"],
    )
    return {"requests": [jsonable(v) for v in views]}


async def _access_request_show(
    ctx: ApiContext, args: dict[str, Any], body: bytes
) -> dict[str, Any]:
    view = ctx.node.access_request(_hex_id(args["id"]), direction=args["direction"])
    return dict(jsonable(view))


async def _access_approve(ctx: ApiContext, args: dict[str, Any], body: bytes) -> dict[str, Any]:
    outcome = await ctx.node.approve_request(_hex_id(args["id"]), days=args["days"])
    return dict(jsonable(outcome))


async def _access_deny(ctx: ApiContext, args: dict[str, Any], body: bytes) -> dict[str, Any]:
    outcome = await ctx.node.deny_request(_hex_id(args["id"]), reason=args["reason"])
    return dict(jsonable(outcome))


async def _access_grants(ctx: ApiContext, args: dict[str, Any], body: bytes) -> dict[str, Any]:
    views = ctx.node.grants(
        role=args["role"],
        dataset=_optional_dataset(args["dataset"]),
        active=args["active"],
        limit=args["limit"],
    )
    return {"grants": [jsonable(v) for v in views]}


async def _access_grant_show(ctx: ApiContext, args: dict[str, Any], body: bytes) -> dict[str, Any]:
    return dict(jsonable(ctx.node.grant(_hex_id(args["id"]), details=args["details"])))


async def _access_grant_verify(
    ctx: ApiContext, args: dict[str, Any], body: bytes
) -> dict[str, Any]:
    if not body:
        raise InvalidRequest(
            "the body must be a signed grant file (what `datanet request --out` wrote)"
        )
    if len(body) > MAX_GRANT_BYTES:
        raise RecordTooLarge(f"the grant is {len(body)} bytes; the limit is {MAX_GRANT_BYTES}")
    return dict(jsonable(ctx.node.verify_grant(body, deep=args["deep"])))


async def _access_grant_revoke(
    ctx: ApiContext, args: dict[str, Any], body: bytes
) -> dict[str, Any]:
    view = await ctx.node.revoke_grant(_hex_id(args["id"]), reason=args["reason"])
    return dict(jsonable(view))


async def _access_purposes(ctx: ApiContext, args: dict[str, Any], body: bytes) -> dict[str, Any]:
    return {"purposes": [jsonable(p) for p in ctx.node.purposes()]}


_INT: dict[str, Any] = {"type": "integer"}
_TEXT: dict[str, Any] = {"type": "string"}
_HEX: dict[str, Any] = {"type": "string", "description": "hex id"}
_HEX_OR_NULL: dict[str, Any] = {"type": ["string", "null"], "description": "hex id"}
_INT_OR_NULL: dict[str, Any] = {"type": ["integer", "null"]}

ROUTE_HOP_SCHEMA = _object(
    {
        "hop": _INT,
        "node": _PEER_ID,
        "org": {"type": "string", "description": "did:key:z6Mk…"},
        "action": {"type": "string", "enum": ["forward", "decide"]},
        "at": {"type": "integer", "description": "Unix seconds"},
    }
)
_ROUTE = {"type": "array", "items": ROUTE_HOP_SCHEMA}

REQUEST_VIEW_SCHEMA = _object(
    {
        "request_id": _HEX,
        "direction": {"type": "string", "enum": ["sent", "received"]},
        "dataset_id": _TEXT,
        "sequence": {"type": "integer", "description": "the descriptor sequence the requester saw"},
        "purpose": _TEXT,
        "days": _INT,
        "note": _TEXT,
        "requester_node": _PEER_ID,
        "requester_org": _TEXT,
        "created": _INT,
        "deadline": _INT,
        "state": {"type": "string", "enum": ["pending", "granted", "denied", "failed"]},
        "reason": {"type": ["string", "null"], "description": "denial reason code"},
        "message": _TEXT,
        "decided_at": _INT_OR_NULL,
        "decided_by": {
            "type": ["string", "null"],
            "enum": ["policy", "operator", "deadline", None],
        },
        "grant_id": _HEX_OR_NULL,
        "route": _ROUTE,
    }
)

GRANT_VIEW_SCHEMA = _object(
    {
        "grant_id": _HEX,
        "request_id": _HEX,
        "dataset_id": _TEXT,
        "sequence": _INT,
        "grantee_node": _PEER_ID,
        "grantee_org": _TEXT,
        "purpose": _TEXT,
        "not_before": _INT,
        "not_after": _INT,
        "valid_until": _INT,
        "issuer_node": _PEER_ID,
        "issuer_org": _TEXT,
        "issued_at": _INT,
        "route": _ROUTE,
        "role": {"type": "string", "enum": ["issued", "received"]},
        "revoked_at": _INT_OR_NULL,
        "revocation_reason": _TEXT,
        "details": {
            "type": ["object", "null"],
            "description": "the decrypted access details (received grants, when asked)",
        },
        "envelope": {"type": "string", "description": "the signed grant, standard base64"},
    }
)

DENIAL_VIEW_SCHEMA = _object(
    {
        "reason": {"type": "string", "description": "machine-readable reason code"},
        "explanation": _TEXT,
        "message": {"type": "string", "description": "the owner's own words, if any"},
        "node": _PEER_ID,
        "org": _TEXT,
        "decided_at": _INT,
        "route": _ROUTE,
        "envelope": {"type": "string", "description": "the signed denial, standard base64"},
    }
)

ACCESS_OUTCOME_SCHEMA = _object(
    {
        "state": {"type": "string", "enum": ["granted", "pending", "denied"]},
        "request": REQUEST_VIEW_SCHEMA,
        "grant": {"anyOf": [GRANT_VIEW_SCHEMA, {"type": "null"}]},
        "denial": {"anyOf": [DENIAL_VIEW_SCHEMA, {"type": "null"}]},
    }
)
# Issue 11: a decision carries the owner's audit receipt (optional: older nodes send none).
ACCESS_OUTCOME_SCHEMA["properties"]["receipt"] = {
    "type": ["string", "null"],
    "description": "the owner's audit receipt of the decision (head, inclusion proof, "
    "entry, cosignatures), standard base64; `datanet audit check-proof` verifies it",
}

GRANT_CHECK_SCHEMA = _object(
    {
        "valid": {"type": "boolean"},
        "deep": {"type": "boolean"},
        "error": {
            "anyOf": [_object({"code": _TEXT, "message": _TEXT}), {"type": "null"}],
        },
        "grant": {"anyOf": [GRANT_VIEW_SCHEMA, {"type": "null"}]},
    }
)

PURPOSE_SCHEMA = _object(
    {
        "id": _TEXT,
        "iri": _TEXT,
        "label": _TEXT,
        "description": _TEXT,
        "parent": {"type": ["string", "null"]},
    }
)

_ID_FIELD = Field(
    "id",
    _string(64, 8, HEX_ID_PATTERN),
    "hex id, or a unique prefix of at least 8 hex digits",
    True,
)


def _wait_field(what: str) -> Field:
    return Field(
        "wait",
        {"type": "number", "minimum": 0, "maximum": MAX_ACCESS_WAIT},
        f"seconds to wait for {what} (capped at api.request_timeout - {WAIT_MARGIN:g} s)",
        False,
        0.0,
    )


def _dataset_filter() -> Field:
    return Field(
        "dataset", _string(400, 1, DATASET_ID_PATTERN), "only this dataset (dn://…)", False, None
    )


def _limit_field() -> Field:
    return Field("limit", _integer(1, MAX_ACCESS_LIMIT), "most items to return", False, 100)


_WAIT_NOTE = (
    " With `wait` the call holds up to that many seconds for the decision (other calls "
    "are served meanwhile); the daemon caps it at `api.request_timeout` minus "
    f"{WAIT_MARGIN:g} s so the call always answers, `pending` if still undecided. Set "
    "the client's HTTP timeout above `wait`."
)

_ACCESS_OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "/access/request",
        "Request access to a dataset from its owner",
        _access_request,
        ACCESS_OUTCOME_SCHEMA,
        fields=(
            Field(
                "id",
                _string(400, 1, DATASET_ID_PATTERN),
                "dataset id, dn://did:key:z6Mk…/name",
                True,
            ),
            Field(
                "purpose",
                _string(MAX_ACCESS_PURPOSE, 1, _NO_CONTROL),
                "a purpose id of the vocabulary (access/purposes)",
                True,
            ),
            Field(
                "days",
                _integer(1, MAX_ACCESS_DAYS),
                "how many days the grant should be valid",
                False,
                30,
            ),
            Field(
                "note",
                _string(MAX_ACCESS_NOTE, 0, _NO_CONTROL_BUT_LINES),
                "free text for the owner's operator",
                False,
                "",
            ),
            _wait_field("the decision"),
        ),
        tag="access",
        description="The node signs a request (dataset, the descriptor sequence it holds, "
        "purpose, validity, a nonce, a deadline) and sends it through the gateways to the "
        "dataset's owner. `state` is `granted` (with `grant`), `denied` (with `denial`: the "
        "reason code, its explanation, the owner's message) or `pending` (waiting for the "
        "owner's operator)." + _WAIT_NOTE + " A failed hop is an error naming the hop "
        "(`gateway_unreachable` 502, `no_route` 502, …).",
    ),
    Operation(
        "/access/refresh",
        "Ask the owner again about a sent request",
        _access_refresh,
        ACCESS_OUTCOME_SCHEMA,
        fields=(_ID_FIELD, _wait_field("the decision")),
        tag="access",
        description="For a request this node sent: the owner's current answer." + _WAIT_NOTE,
    ),
    Operation(
        "/access/requests",
        "List access requests received (the operator's inbox) or sent",
        _access_requests,
        _object({"requests": {"type": "array", "items": REQUEST_VIEW_SCHEMA}}),
        fields=(
            Field(
                "direction",
                _string(8, 4, "^(received|sent)$"),
                "received (as the data's owner) or sent",
                False,
                "received",
            ),
            Field(
                "state",
                _string(7, 6, "^(pending|granted|denied|failed)$"),
                "only requests in this state",
                False,
                None,
            ),
            _dataset_filter(),
            _limit_field(),
        ),
        tag="access",
        description="Newest first.",
    ),
    Operation(
        "/access/requests/show",
        "One access request",
        _access_request_show,
        REQUEST_VIEW_SCHEMA,
        fields=(
            _ID_FIELD,
            Field(
                "direction",
                _string(8, 4, "^(received|sent)$"),
                "received or sent",
                False,
                "received",
            ),
        ),
        tag="access",
    ),
    Operation(
        "/access/approve",
        "Approve a pending received request: issue the grant",
        _access_approve,
        ACCESS_OUTCOME_SCHEMA,
        fields=(
            _ID_FIELD,
            Field(
                "days",
                _integer(1, MAX_ACCESS_DAYS),
                "a shorter validity than requested (default: as requested)",
                False,
                None,
            ),
        ),
        tag="access",
        description="The node signs a grant and sends it back along the request's route. "
        "A request that is already decided is refused (400 invalid_input).",
    ),
    Operation(
        "/access/deny",
        "Deny a pending received request",
        _access_deny,
        ACCESS_OUTCOME_SCHEMA,
        fields=(
            Field(
                "reason",
                _string(MAX_ACCESS_REASON, 1, _NO_CONTROL),
                "the operator's words to the requester",
                True,
            ),
            _ID_FIELD,
        ),
        tag="access",
        description="The denial's reason code is `denied_by_operator`; `reason` becomes its "
        "message.",
    ),
    Operation(
        "/access/grants",
        "List grants issued (as the data's owner) or received",
        _access_grants,
        _object({"grants": {"type": "array", "items": GRANT_VIEW_SCHEMA}}),
        fields=(
            Field(
                "role",
                _string(8, 6, "^(issued|received)$"),
                "issued or received",
                False,
                "issued",
            ),
            _dataset_filter(),
            Field("active", _BOOLEAN, "only grants neither expired nor revoked", False, False),
            _limit_field(),
        ),
        tag="access",
        description="Newest first.",
    ),
    Operation(
        "/access/grants/show",
        "One grant",
        _access_grant_show,
        GRANT_VIEW_SCHEMA,
        fields=(
            _ID_FIELD,
            Field(
                "details",
                _BOOLEAN,
                "decrypt the access details of a received grant",
                False,
                False,
            ),
        ),
        tag="access",
    ),
    Operation(
        "/access/grants/verify",
        "Verify a signed grant",
        _access_grant_verify,
        GRANT_CHECK_SCHEMA,
        fields=(
            Field(
                "deep",
                _BOOLEAN,
                "also check the issuer's revocations of grants this node knows",
                False,
                False,
            ),
        ),
        body="octet-stream",
        tag="access",
        description="The body is the signed grant file's bytes (Content-Type: "
        f"application/octet-stream, at most {MAX_GRANT_BYTES} bytes); `deep` is a query "
        "parameter (`?deep=true`). An invalid grant is not an HTTP error: the answer is "
        "`valid: false` with the error's code and message (`bad_signature`, "
        "`record_expired`, `grant_revoked`, …).",
    ),
    Operation(
        "/access/grants/revoke",
        "Revoke a grant this node issued",
        _access_grant_revoke,
        GRANT_VIEW_SCHEMA,
        fields=(
            _ID_FIELD,
            Field(
                "reason",
                _string(MAX_ACCESS_REASON, 0, _NO_CONTROL),
                "why, for the grantee",
                False,
                "",
            ),
        ),
        tag="access",
        description="The node signs and publishes the revocation; verifiers that have "
        "received it refuse the grant (`grant_revoked`).",
    ),
    Operation(
        "/access/purposes",
        "The purpose vocabulary requests may declare",
        _access_purposes,
        _object({"purposes": {"type": "array", "items": PURPOSE_SCHEMA}}),
        tag="access",
        description="Terms of the W3C Data Privacy Vocabulary's purposes, with their parent.",
    ),
)

OPERATIONS = (*OPERATIONS, *_ACCESS_OPERATIONS)


# --- the audit transparency log (issue 11) -------------------------------------------

MAX_AUDIT_LIMIT = 1000
"""The most entries or alarms one call returns."""
EXPORT_PAGE = 256
"""Entries ``audit/export`` reads from the node at a time (its memory bound)."""
MAX_AUDIT_INDEX = 2**63 - 1
NDJSON = "application/x-ndjson"
_AUDIT_KINDS = (
    "publish",
    "withdraw",
    "request_received",
    "request_forwarded",
    "request_answered",
    "decision",
    "grant",
    "grant_revoked",
    "approval",
    "denial",
    "cert_change",
    "trust_change",
)
_ALARM_KINDS = ("shrink", "fork", "bad_proof", "bad_head")
_KIND_PATTERN = "^(" + "|".join(_AUDIT_KINDS) + ")$"
_HASH_HEX: dict[str, Any] = {"type": "string", "description": "SHA-256, lowercase hex"}
_B64: dict[str, Any] = {"type": "string", "description": "standard base64"}


async def _audit_entries(ctx: ApiContext, args: dict[str, Any], body: bytes) -> dict[str, Any]:
    entries = [
        jsonable(e)
        for e in ctx.node.audit_entries(since=args["since"], kind=args["kind"], limit=args["limit"])
    ]
    following = entries[-1]["index"] + 1 if len(entries) == args["limit"] else None
    return {"entries": entries, "next": following}


async def _audit_head(ctx: ApiContext, args: dict[str, Any], body: bytes) -> dict[str, Any]:
    return dict(jsonable(ctx.node.audit_head(fresh=args["fresh"])))


async def _audit_verify(ctx: ApiContext, args: dict[str, Any], body: bytes) -> dict[str, Any]:
    return dict(jsonable(ctx.node.audit_verify()))


async def _audit_prove(ctx: ApiContext, args: dict[str, Any], body: bytes) -> dict[str, Any]:
    return dict(jsonable(ctx.node.audit_prove(args["index"])))


async def _audit_alarms(ctx: ApiContext, args: dict[str, Any], body: bytes) -> dict[str, Any]:
    return {"alarms": [jsonable(a) for a in ctx.node.audit_alarms(limit=args["limit"])]}


async def _audit_witnessed(ctx: ApiContext, args: dict[str, Any], body: bytes) -> dict[str, Any]:
    out = []
    for w in ctx.node.audit_witnessed():
        doc = jsonable(w)
        if isinstance(doc.get("checked_at"), float):  # the store keeps seconds as REAL
            doc["checked_at"] = int(doc["checked_at"])  # the schema (and the client): integer
        out.append(doc)
    return {"witnessed": out}


async def _audit_export(ctx: ApiContext, args: dict[str, Any]) -> AsyncIterator[Mapping[str, Any]]:
    """Every entry from ``since`` on, one page of ``EXPORT_PAGE`` at a time."""
    since = args["since"]
    while True:
        page = ctx.node.audit_entries(since=since, kind=args["kind"], limit=EXPORT_PAGE)
        for entry in page:
            yield jsonable(entry)
        if len(page) < EXPORT_PAGE:
            return
        since = int(page[-1]["index"]) + 1
        await anyio.sleep(0)  # let other requests in between pages


AUDIT_ENTRY_SCHEMA = _object(
    {
        "index": _INT,
        "kind": {"type": "string", "enum": list(_AUDIT_KINDS)},
        "timestamp": {"type": "integer", "description": "Unix seconds"},
        "details": {"type": "object"},
        "record": {
            "type": ["string", "null"],
            "description": "the exact signed bytes the entry refers to (up to 4 KiB), base64",
        },
        "record_hash": {
            "type": ["string", "null"],
            "description": "SHA-256 of those bytes, lowercase hex",
        },
        "leaf_hash": _HASH_HEX,
    }
)

_COSIGNATURE_SCHEMA = _object(
    {
        "witness": _PEER_ID,
        "org": _TEXT,
        "at": {"type": "integer", "description": "when the witness checked the head"},
        "cosignature": _B64,
    }
)

AUDIT_HEAD_SCHEMA = _object(
    {
        "node": _PEER_ID,
        "org": _ORG_OR_NULL,
        "size": _INT,
        "root": _HASH_HEX,
        "timestamp": _INT,
        "head": {"type": "string", "description": "the signed dn/audit-head/v1, base64"},
        "cosignatures": {"type": "array", "items": _COSIGNATURE_SCHEMA},
    }
)

AUDIT_VERIFY_SCHEMA = _object(
    {
        "ok": _BOOLEAN,
        "size": _INT,
        "root": _HASH_HEX,
        "entries_checked": _INT,
        "heads_checked": _INT,
        "first_bad_index": _INT_OR_NULL,
        "reason": {"type": ["string", "null"]},
    }
)

AUDIT_PROOF_SCHEMA = _object(
    {
        "index": _INT,
        "size": _INT,
        "root": _HASH_HEX,
        "receipt": {
            "type": "string",
            "description": "the receipt (signed head, inclusion proof, entry, cosignatures), "
            "base64",
        },
    }
)

AUDIT_ALARM_SCHEMA = _object(
    {
        "at": _INT,
        "kind": {"type": "string", "enum": list(_ALARM_KINDS)},
        "log_node": _PEER_ID,
        "log_org": _ORG_OR_NULL,
        "reported_by": _PEER_ID,
        "detail": _TEXT,
        "heads": {"type": "array", "items": _B64},
    }
)

WITNESSED_HEAD_SCHEMA = _object(
    {
        "log_node": _PEER_ID,
        "log_org": _ORG_OR_NULL,
        "size": _INT,
        "root": _HASH_HEX,
        "timestamp": _INT,
        "checked_at": _INT,
        "cosigned": _BOOLEAN,
    }
)


def _since_field() -> Field:
    return Field("since", _integer(0, MAX_AUDIT_INDEX), "the first entry index", False, 0)


def _kind_field() -> Field:
    return Field("kind", _string(20, 4, _KIND_PATTERN), "only entries of this kind", False, None)


def _audit_limit(what: str) -> Field:
    return Field("limit", _integer(1, MAX_AUDIT_LIMIT), f"most {what} to return", False, 100)


_AUDIT_OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "/audit/entries",
        "Entries of this node's audit log",
        _audit_entries,
        _object(
            {
                "entries": {"type": "array", "items": AUDIT_ENTRY_SCHEMA},
                "next": {
                    "type": ["integer", "null"],
                    "description": "`since` of the next page; null: this was the last",
                },
            }
        ),
        fields=(_since_field(), _kind_field(), _audit_limit("entries")),
        tag="audit",
        description="Oldest first from index `since`. `next` is set when the page is full.",
    ),
    Operation(
        "/audit/head",
        "The latest signed tree head of this node's log",
        _audit_head,
        AUDIT_HEAD_SCHEMA,
        fields=(
            Field("fresh", _BOOLEAN, "sign a new head now, even without new entries", False, False),
        ),
        tag="audit",
        description="The node signs a new head when entries arrived since the last one "
        "(or with `fresh`); `cosignatures` are the witnesses' cosignatures it holds.",
    ),
    Operation(
        "/audit/verify",
        "Recompute the whole log and check every signed head",
        _audit_verify,
        AUDIT_VERIFY_SCHEMA,
        tag="audit",
        description="A damaged log is not an HTTP error: `ok` is false, `first_bad_index` "
        "names the first entry that is missing, edited, moved or not covered by a matching "
        "signed head, and `reason` says which. Takes time proportional to the log (about "
        "34 s per million entries).",
    ),
    Operation(
        "/audit/prove",
        "A receipt for one entry: signed head, inclusion proof, entry, cosignatures",
        _audit_prove,
        AUDIT_PROOF_SCHEMA,
        fields=(Field("index", _integer(0, MAX_AUDIT_INDEX), "the entry index", True),),
        tag="audit",
        description="The receipt verifies offline on any machine "
        "(`datanet audit check-proof`, `datanet.client.check_receipt`).",
    ),
    Operation(
        "/audit/export",
        "Every entry from `since` on, as JSON Lines",
        _stream_only,
        AUDIT_ENTRY_SCHEMA,
        fields=(_since_field(), _kind_field()),
        tag="audit",
        description=f"`{NDJSON}`: one entry object per line (the shape of `audit/entries`), "
        f"oldest first; the daemon reads {EXPORT_PAGE} entries at a time, so any size "
        "streams in bounded memory. If the log fails midway the last line is "
        '`{"error": {"code", "message"}}`.',
        lines=_audit_export,
    ),
    Operation(
        "/audit/alarms",
        "Alarms raised while witnessing other nodes' logs",
        _audit_alarms,
        _object({"alarms": {"type": "array", "items": AUDIT_ALARM_SCHEMA}}),
        fields=(_audit_limit("alarms"),),
        tag="audit",
        description="Newest first. `shrink`: a log's new head is smaller than one seen "
        "before; `fork`: two heads of one size with different roots; `bad_proof`: a "
        "consistency proof failed; `bad_head`: a malformed or wrongly signed head. `heads` "
        "holds the conflicting signed heads (the evidence).",
    ),
    Operation(
        "/audit/witnessed",
        "The last head this node keeps of each log it witnesses",
        _audit_witnessed,
        _object({"witnessed": {"type": "array", "items": WITNESSED_HEAD_SCHEMA}}),
        tag="audit",
    ),
)

OPERATIONS = (*OPERATIONS, *_AUDIT_OPERATIONS)
