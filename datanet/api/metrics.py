"""The control API's own metrics: request latency by operation, for ``GET /metrics``.

Invariants:
* One :class:`ApiMetrics` (one :class:`~prometheus_client.CollectorRegistry`) per app,
  never the process-wide default registry, so several APIs in one process never mix.
* The ``operation`` label is an operation's path from the API's own table (a bounded
  set); ``status`` is the status class (``2xx``, ``4xx``, ``5xx``), never free text.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

__all__ = ["API_BUCKETS", "METRICS_CONTENT_TYPE", "METRICS_PATH", "ApiMetrics"]

#: Where the metrics are served (outside ``/api/v0``, where scrapers look).
METRICS_PATH = "/metrics"
#: The Prometheus text format, version 0.0.4.
METRICS_CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
#: Histogram buckets of one API request, in seconds.
API_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ApiMetrics:
    """``datanet_api_request_duration_seconds{operation, status}``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._latency = Histogram(
            "datanet_api_request_duration_seconds",
            "Control API requests (JSON operations) by operation and status class.",
            ("operation", "status"),
            buckets=API_BUCKETS,
            registry=self.registry,
        )

    def observe(self, operation: str, status: int, seconds: float) -> None:
        """Record one request of ``operation`` (a path of the API's table: ``routing/get``)."""
        self._latency.labels(operation, f"{status // 100}xx").observe(max(0.0, seconds))

    def render(self) -> bytes:
        """This registry in the Prometheus text format."""
        return generate_latest(self.registry)
