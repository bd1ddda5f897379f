"""The control API's answers about the node itself: id, peers, providers, config, status.

Part of :mod:`datanet.api.results`, which loads it on first use of one of its
names: creating a frozen dataclass costs about a millisecond, so a command-line
command pays only for the answers it reads.

Invariants: as :mod:`datanet.api.results` (strict parsing into frozen records,
:class:`~datanet.api.errors.ApiError` for any other shape; nothing heavy imported).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from datanet.api.results import _opt_text, bad_response, field_of, texts_of

__all__ = [
    "ConfigChange",
    "ConfigView",
    "NodeInfo",
    "NodeStatus",
    "PeerInfo",
    "ProviderInfo",
    "parse_node_info",
    "parse_peers",
    "parse_providers",
    "parse_status",
]


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
