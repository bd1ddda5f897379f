"""The node's Prometheus metrics: one registry per node, rendered for ``GET /metrics``.

Two kinds of figures:

* **observed** ones the node records as things happen: :meth:`NodeMetrics.observe_lookup`
  (DHT lookup latency, a histogram);
* **read** ones a custom collector takes at scrape time from state the node already
  keeps (:class:`MetricSources`): peers, the routing table, the stores, the catalog,
  the kad, gossip and sync counters of the services, access requests, the audit log.

Families (every name has the ``datanet_`` prefix, base units, ``_total`` counters):
:data:`FAMILIES` lists them with their type and labels; ``docs/operators.md``
documents them and ``docs/grafana-dashboard.json`` uses them.

Invariants:
* Each :class:`NodeMetrics` has its own :class:`~prometheus_client.CollectorRegistry`
  (never the process-wide default one), so several nodes in one process never mix.
* Label values come from bounded sets only (message types, outcomes, error codes,
  states, fixed counter names): never peer ids, keys or other caller-chosen text;
  a label value outside the set a family allows is folded into ``other``.
* A scrape never fails because one source does: that family is left out, the failure
  is logged and counted in ``datanet_metrics_source_errors_total``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = [
    "FAMILIES",
    "LOOKUP_BUCKETS",
    "LOOKUP_KINDS",
    "MetricSources",
    "NodeMetrics",
]

log = logging.getLogger("datanet.node.metrics")

#: Histogram buckets of a DHT lookup, in seconds.
LOOKUP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: The lookup kinds the node reports (the ``kind`` label).
LOOKUP_KINDS = frozenset(
    {"bootstrap", "find_node", "get_value", "put_value", "add_provider", "get_providers"}
)
#: At most this many distinct label sets per family read from a source.
MAX_SERIES = 256
#: A label value is a short lowercase identifier (codes, states, message types).
_LABEL_VALUE = re.compile(r"[a-z][a-z0-9_]{0,47}")

#: Every family the node exports: name -> (type, labels). Counters are listed
#: without the ``_total`` suffix the exposition adds.
FAMILIES: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "datanet_peers": ("gauge", ("state",)),
    "datanet_refused_connections": ("counter", ("reason",)),
    "datanet_routing_table_peers": ("gauge", ()),
    "datanet_dht_requests": ("counter", ("direction", "type", "outcome")),
    "datanet_dht_lookup_duration_seconds": ("histogram", ("kind", "outcome")),
    "datanet_dht_records": ("gauge", ()),
    "datanet_dht_record_bytes": ("gauge", ()),
    "datanet_dht_providers": ("gauge", ()),
    "datanet_dht_puts": ("counter", ("event",)),
    "datanet_catalog_descriptors": ("gauge", ()),
    "datanet_ledger_records": ("counter", ("verdict",)),
    "datanet_gossip_rpcs": ("counter", ("direction",)),
    "datanet_gossip_bytes": ("counter", ("direction",)),
    "datanet_gossip_failures": ("counter", ("reason",)),
    "datanet_gossip_mesh_peers": ("gauge", ()),
    "datanet_sync_sessions": ("counter", ("outcome",)),
    "datanet_sync_records": ("counter", ("direction",)),
    "datanet_access_requests": ("gauge", ("direction", "state")),
    "datanet_access_grants": ("gauge", ("state",)),
    "datanet_access_events": ("counter", ("event",)),
    "datanet_audit_log_entries": ("gauge", ()),
    "datanet_audit_heads_signed": ("counter", ()),
    "datanet_audit_alarms": ("gauge", ()),
    "datanet_witness_events": ("counter", ("event",)),
    "datanet_metrics_source_errors": ("counter", ("family",)),
}


def _none() -> Mapping[str, int]:
    return {}


@dataclass(frozen=True)
class MetricSources:
    """Where the collector reads each figure at scrape time (plain callables).

    Each returns current values; a mapping's keys become label values (bounded:
    see the module's invariants). ``None`` for a whole service means the node does
    not run it (no family is emitted).
    """

    peer_states: Callable[[], Mapping[str, int]]
    """Connected peers by admission state (``admitted``…)."""
    routing_table_size: Callable[[], int]
    kad_requests: Callable[[], Mapping[tuple[str, str, str], int]]
    """Kad requests by ``(direction, type, outcome)`` (``KadService.request_counts``)."""
    records: Callable[[], tuple[int, int]]
    """DHT records held and their total bytes."""
    providers: Callable[[], int]
    catalog_size: Callable[[], int]
    ledger: Callable[[], Mapping[str, int]]
    """The ledger's verdicts: ``accepted``, ``ignored``, ``rejected``."""
    gossip: Callable[[], Mapping[str, int]]
    """The gossip transport's counters plus ``mesh`` (peers in the catalog topic's mesh)."""
    sync: Callable[[], Mapping[str, int]]
    """Anti-entropy counters: ``sessions``, ``failed``, ``received``, ``sent``."""
    access: Callable[[], Mapping[str, int]] | None = None
    """``AccessService.stats()``: store counts (``incoming_<state>``…) and event counters."""
    audit: Callable[[], Mapping[str, int]] | None = None
    """``size``, ``heads`` and ``alarms`` of the audit trail and the witness."""
    refused_connections: Callable[[], Mapping[str, int]] = field(default=_none)
    """Connections refused so far by reason (admission refusals, limits)."""
    puts: Callable[[], Mapping[str, int]] = field(default=_none)
    """DHT puts by event: ``walked``, ``direct`` (started), ``answered_early``,
    ``completed``, ``timed_out``."""
    witness: Callable[[], Mapping[str, int]] = field(default=_none)
    """The witness service's counters (``heads_received``, ``accepted``, ``cosigned``…)."""


def _label(value: object) -> str:
    text = str(value).lower()
    return text if _LABEL_VALUE.fullmatch(text) else "other"


def _counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=list(labels) if labels else None)


def _gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels) if labels else None)


def _single(metric: CounterMetricFamily | GaugeMetricFamily, value: float) -> Metric:
    metric.add_metric([], value)
    return metric


def _by_label(metric: CounterMetricFamily | GaugeMetricFamily, values: Mapping[str, int]) -> Metric:
    """One sample per key (folded to ``other`` when not a plain identifier)."""
    summed: dict[str, float] = {}
    for key, value in list(values.items())[:MAX_SERIES]:
        label = _label(key)
        summed[label] = summed.get(label, 0) + value
    for label, total in sorted(summed.items()):
        metric.add_metric([label], total)
    return metric


def _pick(values: Mapping[str, int], names: Mapping[str, str]) -> dict[str, int]:
    """``{label: values[key]}`` for each ``key -> label`` present in ``values``."""
    return {label: int(values[key]) for key, label in names.items() if key in values}


class _SourceCollector(Collector):
    """Reads :class:`MetricSources` at every scrape."""

    def __init__(self, sources: MetricSources, errors: dict[str, int]) -> None:
        self._sources = sources
        self._errors = errors

    def collect(self) -> Iterable[Metric]:
        out: list[Metric] = []
        for name, build in self._builders():
            try:
                out.extend(build())
            except Exception:  # a failing source must not fail the whole scrape
                log.warning("metrics source failed", extra={"kv": {"family": name}}, exc_info=True)
                self._errors[name] = self._errors.get(name, 0) + 1
        errors = _counter(
            "datanet_metrics_source_errors",
            "Scrapes in which a metrics source failed, by family group.",
            ("family",),
        )
        out.append(_by_label(errors, self._errors))
        return out

    def _builders(self) -> list[tuple[str, Callable[[], Iterator[Metric]]]]:
        s = self._sources
        builders: list[tuple[str, Callable[[], Iterator[Metric]]]] = [
            ("peers", self._peers),
            ("dht", self._dht),
            ("catalog", self._catalog),
            ("gossip", self._gossip),
            ("sync", self._sync),
        ]
        if s.access is not None:
            builders.append(("access", self._access))
        if s.audit is not None:
            builders.append(("audit", self._audit))
        return builders

    def _peers(self) -> Iterator[Metric]:
        s = self._sources
        yield _by_label(
            _gauge("datanet_peers", "Connected peers by admission state.", ("state",)),
            s.peer_states(),
        )
        yield _by_label(
            _counter(
                "datanet_refused_connections",
                "Peer connections refused, by reason.",
                ("reason",),
            ),
            s.refused_connections(),
        )

    def _dht(self) -> Iterator[Metric]:
        s = self._sources
        yield _single(
            _gauge("datanet_routing_table_peers", "Peers in the Kademlia routing table."),
            s.routing_table_size(),
        )
        requests = _counter(
            "datanet_dht_requests",
            "Kademlia requests served (in) and sent (out), by message type and outcome.",
            ("direction", "type", "outcome"),
        )
        for (direction, kind, outcome), n in sorted(s.kad_requests().items())[:MAX_SERIES]:
            requests.add_metric([_label(direction), _label(kind), _label(outcome)], n)
        yield requests
        count, size = s.records()
        yield _single(_gauge("datanet_dht_records", "DHT records held."), count)
        yield _single(_gauge("datanet_dht_record_bytes", "Bytes of the DHT records held."), size)
        yield _single(_gauge("datanet_dht_providers", "Provider records held."), s.providers())
        yield _by_label(
            _counter(
                "datanet_dht_puts",
                "DHT puts (publish, republish) by event: started walking or direct to known "
                "closest peers, answered at the quorum before every write ended, completed, "
                "timed out.",
                ("event",),
            ),
            s.puts(),
        )

    def _catalog(self) -> Iterator[Metric]:
        s = self._sources
        yield _single(
            _gauge("datanet_catalog_descriptors", "Descriptors in the local catalog."),
            s.catalog_size(),
        )
        yield _by_label(
            _counter(
                "datanet_ledger_records",
                "Records offered to the ledger (gossip, sync, DHT, publish), by verdict.",
                ("verdict",),
            ),
            _pick(s.ledger(), {v: v for v in ("accepted", "ignored", "rejected")}),
        )

    def _gossip(self) -> Iterator[Metric]:
        g = self._sources.gossip()
        yield _by_label(
            _counter("datanet_gossip_rpcs", "Gossip RPCs sent and received.", ("direction",)),
            _pick(g, {"rpcs_sent": "out", "rpcs_received": "in"}),
        )
        yield _by_label(
            _counter("datanet_gossip_bytes", "Gossip bytes sent and received.", ("direction",)),
            _pick(g, {"bytes_sent": "out", "bytes_received": "in"}),
        )
        yield _by_label(
            _counter("datanet_gossip_failures", "Gossip frames lost, by reason.", ("reason",)),
            _pick(
                g,
                {
                    "dropped_queue_full": "queue_full",
                    "bad_frames": "bad_frame",
                    "streams_failed": "stream_failed",
                },
            ),
        )
        yield _single(
            _gauge("datanet_gossip_mesh_peers", "Peers in the catalog topic's gossip mesh."),
            g.get("mesh", 0),
        )

    def _sync(self) -> Iterator[Metric]:
        c = self._sources.sync()
        sessions = {"ok": int(c.get("sessions", 0)), "failed": int(c.get("failed", 0))}
        yield _by_label(
            _counter("datanet_sync_sessions", "Anti-entropy sessions, by outcome.", ("outcome",)),
            sessions,
        )
        yield _by_label(
            _counter(
                "datanet_sync_records",
                "Records received (accepted) and sent by anti-entropy.",
                ("direction",),
            ),
            _pick(c, {"received": "in", "sent": "out"}),
        )

    def _access(self) -> Iterator[Metric]:
        assert self._sources.access is not None
        stats = self._sources.access()
        requests = _gauge(
            "datanet_access_requests",
            "Access requests held, by direction (received, sent) and state (decision).",
            ("direction", "state"),
        )
        for key, n in sorted(stats.items()):
            direction, _, state = key.partition("_")
            if direction in ("incoming", "outgoing") and state:
                label = "received" if direction == "incoming" else "sent"
                requests.add_metric([label, _label(state)], n)
        yield requests
        grants = int(stats.get("grants", 0))
        revoked = int(stats.get("grants_revoked", 0))
        yield _by_label(
            _gauge("datanet_access_grants", "Grants issued, by state.", ("state",)),
            {"active": grants - revoked, "revoked": revoked},
        )
        yield _by_label(
            _counter(
                "datanet_access_events",
                "Access requests relayed, decided, refused and sent by this node.",
                ("event",),
            ),
            _pick(stats, {e: e for e in ("relayed", "decided", "refused", "sent")}),
        )

    def _audit(self) -> Iterator[Metric]:
        assert self._sources.audit is not None
        a = self._sources.audit()
        yield _single(
            _gauge("datanet_audit_log_entries", "Entries in this node's audit log."),
            a.get("size", 0),
        )
        yield _single(
            _counter("datanet_audit_heads_signed", "Signed tree heads of the audit log."),
            a.get("heads", 0),
        )
        yield _single(
            _gauge(
                "datanet_audit_alarms",
                "Alarms raised as a witness of other logs (shrink, fork, bad proof or head).",
            ),
            a.get("alarms", 0),
        )
        yield _by_label(
            _counter(
                "datanet_witness_events",
                "Witnessing: heads announced to us, only verified (not witnessed here), "
                "accepted, cosigned, proofs that could not be fetched, our own heads announced...",
                ("event",),
            ),
            self._sources.witness(),
        )


class NodeMetrics:
    """One node's registry: the observed histograms and the source collector."""

    def __init__(self, sources: MetricSources) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._errors: dict[str, int] = {}
        self._lookups = Histogram(
            "datanet_dht_lookup_duration_seconds",
            "DHT lookups (whole operations) by kind and outcome.",
            ("kind", "outcome"),
            buckets=LOOKUP_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_SourceCollector(sources, self._errors))

    def observe_lookup(self, kind: str, outcome: str, seconds: float) -> None:
        """Record one lookup; ``kind`` is one of :data:`LOOKUP_KINDS` (else ``other``),
        ``outcome`` ``ok`` or an error code."""
        kind = kind if kind in LOOKUP_KINDS else "other"
        self._lookups.labels(kind, _label(outcome)).observe(max(0.0, seconds))

    def render(self) -> bytes:
        """The Prometheus text exposition (format 0.0.4) of every family."""
        return generate_latest(self.registry)
