"""The node's Prometheus families (datanet.node.metrics) and GET /metrics on the API.

Pure code and the HTTP layer only: the sources are plain callables, the node an
in-memory double. The real node's scrape is in tests/integration/test_node_metrics.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from datanet.api.app import create_app
from datanet.api.metrics import METRICS_PATH
from datanet.api.routes import ApiContext
from datanet.node.config import Config, ConfigFile
from datanet.node.metrics import FAMILIES, MetricSources, NodeMetrics
from datanet.testing.doubles import MemoryNode

TOKEN = "metrics-token-0123456789abcdef"
AUTH = {"authorization": f"Bearer {TOKEN}"}
DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"


def sources(**over: Any) -> MetricSources:
    base: dict[str, Any] = {
        "peer_states": lambda: {"admitted": 3},
        "routing_table_size": lambda: 7,
        "kad_requests": lambda: {
            ("in", "find_node", "ok"): 5,
            ("out", "get_value", "timeout"): 2,
        },
        "records": lambda: (4, 1234),
        "providers": lambda: 2,
        "catalog_size": lambda: 9,
        "ledger": lambda: {"accepted": 8, "ignored": 1, "rejected": 0, "items": 99},
        "gossip": lambda: {
            "rpcs_sent": 10,
            "rpcs_received": 11,
            "bytes_sent": 100,
            "bytes_received": 110,
            "dropped_queue_full": 1,
            "bad_frames": 0,
            "streams_failed": 2,
            "mesh": 3,
        },
        "sync": lambda: {"sessions": 4, "failed": 1, "received": 6, "sent": 7, "cut_off": 0},
        "access": lambda: {
            "incoming_pending": 1,
            "incoming_granted": 2,
            "incoming_denied": 3,
            "outgoing_granted": 4,
            "grants": 5,
            "grants_revoked": 1,
            "relayed": 6,
            "decided": 5,
            "refused": 0,
            "sent": 4,
        },
        "audit": lambda: {"size": 12, "heads": 3, "alarms": 1},
        "refused_connections": lambda: {"admission_refused": 2},
        "puts": lambda: {"walked": 5, "direct": 1, "answered_early": 4, "completed": 6},
        "witness": lambda: {"heads_received": 9, "heads_not_witnessed": 7, "accepted": 2},
    }
    base.update(over)
    return MetricSources(**base)


def scrape(text: bytes) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """``{family: {sorted labels: value}}`` of every sample (names as exposed)."""
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text.decode("utf-8")):
        samples = out.setdefault(family.name, {})
        for sample in family.samples:
            samples[(("__name__", sample.name), *sorted(sample.labels.items()))] = sample.value
    return out


def value(
    families: Mapping[str, Any], name: str, sample: str | None = None, **labels: str
) -> float:
    key = (("__name__", sample or name), *sorted(labels.items()))
    return float(families[name][key])


# --- the collector ----------------------------------------------------------------------


def test_every_family_is_exported_with_its_values() -> None:
    metrics = NodeMetrics(sources())
    metrics.observe_lookup("get_value", "ok", 0.02)
    fams = scrape(metrics.render())
    assert set(FAMILIES) <= set(fams)
    assert value(fams, "datanet_peers", state="admitted") == 3
    assert value(fams, "datanet_routing_table_peers") == 7
    assert value(fams, "datanet_dht_puts", "datanet_dht_puts_total", event="answered_early") == 4
    assert (
        value(fams, "datanet_witness_events", "datanet_witness_events_total", event="accepted") == 2
    )
    assert (
        value(
            fams,
            "datanet_dht_requests",
            "datanet_dht_requests_total",
            direction="out",
            type="get_value",
            outcome="timeout",
        )
        == 2
    )
    assert value(fams, "datanet_dht_records") == 4
    assert value(fams, "datanet_dht_record_bytes") == 1234
    assert value(fams, "datanet_catalog_descriptors") == 9
    assert (
        value(fams, "datanet_ledger_records", "datanet_ledger_records_total", verdict="accepted")
        == 8
    )
    assert value(fams, "datanet_gossip_rpcs", "datanet_gossip_rpcs_total", direction="in") == 11
    assert (
        value(
            fams, "datanet_gossip_failures", "datanet_gossip_failures_total", reason="stream_failed"
        )
        == 2
    )
    assert value(fams, "datanet_gossip_mesh_peers") == 3
    assert (
        value(fams, "datanet_sync_sessions", "datanet_sync_sessions_total", outcome="failed") == 1
    )
    assert value(fams, "datanet_sync_records", "datanet_sync_records_total", direction="out") == 7
    assert value(fams, "datanet_access_requests", direction="received", state="denied") == 3
    assert value(fams, "datanet_access_requests", direction="sent", state="granted") == 4
    assert value(fams, "datanet_access_grants", state="active") == 4
    assert value(fams, "datanet_access_events", "datanet_access_events_total", event="relayed") == 6
    assert value(fams, "datanet_audit_alarms") == 1
    assert value(fams, "datanet_audit_heads_signed", "datanet_audit_heads_signed_total") == 3
    assert (
        value(
            fams,
            "datanet_refused_connections",
            "datanet_refused_connections_total",
            reason="admission_refused",
        )
        == 2
    )
    lookups = "datanet_dht_lookup_duration_seconds"
    assert value(fams, lookups, f"{lookups}_count", kind="get_value", outcome="ok") == 1
    assert (
        value(fams, lookups, f"{lookups}_bucket", kind="get_value", outcome="ok", le="0.025") == 1
    )
    assert value(fams, lookups, f"{lookups}_bucket", kind="get_value", outcome="ok", le="0.01") == 0


def test_families_follow_the_naming_rules() -> None:
    fams = {
        f.name: f for f in text_string_to_metric_families(NodeMetrics(sources()).render().decode())
    }
    for name, family in fams.items():
        assert name.startswith("datanet_"), name
        kind, labels = FAMILIES[name]
        assert family.type == kind, name
        for sample in family.samples:
            if kind == "counter":
                assert sample.name in (f"{name}_total", f"{name}_created"), sample.name
            assert set(sample.labels) - {"le"} == set(labels), (name, sample.labels)


def test_label_values_are_bounded() -> None:
    """Free text, peer ids and unknown kinds never become label values."""
    peer = "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo"
    metrics = NodeMetrics(
        sources(
            peer_states=lambda: {peer: 1, "Admitted": 2, "x y": 3},
            kad_requests=lambda: {("in", "find_node", 'bad"code\n'): 1},
        )
    )
    metrics.observe_lookup(peer, "ok", 0.1)
    text = metrics.render().decode()
    assert peer not in text
    fams = scrape(metrics.render())
    assert value(fams, "datanet_peers", state="other") == 4
    assert value(fams, "datanet_peers", state="admitted") == 2
    lookups = "datanet_dht_lookup_duration_seconds"
    assert value(fams, lookups, f"{lookups}_count", kind="other", outcome="ok") == 1


def test_a_failing_source_leaves_out_its_families_only() -> None:
    def broken() -> Mapping[str, int]:
        raise RuntimeError("sqlite is gone")

    fams = scrape(NodeMetrics(sources(access=broken)).render())
    assert "datanet_access_requests" not in fams
    assert value(fams, "datanet_catalog_descriptors") == 9
    assert (
        value(
            fams,
            "datanet_metrics_source_errors",
            "datanet_metrics_source_errors_total",
            family="access",
        )
        == 1
    )


def test_services_a_node_does_not_run_export_nothing() -> None:
    fams = scrape(NodeMetrics(sources(access=None, audit=None)).render())
    assert "datanet_access_requests" not in fams
    assert "datanet_audit_alarms" not in fams
    assert "datanet_peers" in fams


def test_two_nodes_in_one_process_keep_apart() -> None:
    a, b = NodeMetrics(sources()), NodeMetrics(sources())
    a.observe_lookup("find_node", "ok", 0.5)
    lookups = "datanet_dht_lookup_duration_seconds"
    assert (
        value(scrape(a.render()), lookups, f"{lookups}_count", kind="find_node", outcome="ok") == 1
    )
    assert ("find_node", "ok") not in {
        (s.get("kind"), s.get("outcome"))
        for fam in text_string_to_metric_families(b.render().decode())
        for s in [x.labels for x in fam.samples]
    }


# --- the API ------------------------------------------------------------------------------


def client(
    tmp: Path, *, public: bool = False, headers: dict[str, str] | None = None
) -> httpx.AsyncClient:
    config = Config.defaults().with_value("metrics.public", public)
    ctx = ApiContext(MemoryNode(), ConfigFile(tmp / "config.toml"), config, lambda: None, TOKEN)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(ctx)),
        base_url="http://127.0.0.1:5080",
        headers=AUTH if headers is None else headers,
    )


@pytest.mark.trio
async def test_metrics_needs_the_token(tmp_path: Path) -> None:
    async with client(tmp_path, headers={}) as c:
        r = await c.get(METRICS_PATH)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "unauthorized"
        r = await c.get(METRICS_PATH, headers={"authorization": "Bearer wrong-token-0123456789"})
        assert r.status_code == 401


@pytest.mark.trio
async def test_metrics_with_the_token_returns_node_and_api_families(tmp_path: Path) -> None:
    async with client(tmp_path) as c:
        assert (await c.post("/api/v0/id", json={})).status_code == 200
        assert (await c.post("/api/v0/resolve", json={"dataset_id": "nope"})).status_code == 400
        r = await c.get(METRICS_PATH)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    fams = scrape(r.content)
    assert "datanet_catalog_descriptors" in fams
    api = "datanet_api_request_duration_seconds"
    assert value(fams, api, f"{api}_count", operation="id", status="2xx") == 1
    assert value(fams, api, f"{api}_count", operation="resolve", status="4xx") == 1


@pytest.mark.trio
async def test_public_metrics_need_no_token_but_the_api_still_does(tmp_path: Path) -> None:
    async with client(tmp_path, public=True, headers={}) as c:
        r = await c.get(METRICS_PATH)
        assert r.status_code == 200
        assert "datanet_peers" in scrape(r.content)
        assert (await c.post("/api/v0/id", json={})).status_code == 401
        assert (await c.post(METRICS_PATH)).status_code == 401


@pytest.mark.trio
async def test_metrics_is_not_under_the_api_prefix(tmp_path: Path) -> None:
    async with client(tmp_path) as c:
        r = await c.get("/api/v0/metrics")
    assert r.status_code in (404, 405)


# --- the sample dashboard -------------------------------------------------------------------


def _exported_series() -> set[str]:
    names = set()
    metrics = NodeMetrics(sources())
    metrics.observe_lookup("get_value", "ok", 0.01)
    text = metrics.render().decode()
    for family in text_string_to_metric_families(text):
        names |= {s.name for s in family.samples}
        names.add(f"{family.name}_total" if family.type == "counter" else family.name)
    names |= {
        f"datanet_api_request_duration_seconds{suffix}" for suffix in ("_bucket", "_sum", "_count")
    }
    return names


def test_the_grafana_dashboard_uses_only_exported_families() -> None:
    doc = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 10
    exported = _exported_series()
    used = set()
    for expr in exprs:
        names = set(re.findall(r"\bdatanet_[a-z_]+", expr))
        assert names, expr
        assert names <= exported, (expr, names - exported)
        used |= names
    # every family of the issue appears on the dashboard
    for family in ("datanet_peers", "datanet_dht_requests_total", "datanet_audit_alarms"):
        assert family in used
