"""The API's metrics (`ApiMetrics`), served by ``GET /metrics`` (`api.routes.metrics`).

``/metrics`` is an operator's route like the access log: a DPoP-bound token with the ``admin``
scope. A Prometheus server cannot sign DPoP proofs, so it scrapes the same figures from
``MALESTROM_API_METRICS_PORT`` instead, served on 127.0.0.1 only and never through the public
listener (the practice of a separate, internal metrics port).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from psycopg_pool import AsyncConnectionPool

from ingestion.prometheus import LATENCY_BUCKETS, PoolCollector, process_registry

__all__ = ["ApiMetrics"]


class ApiMetrics:
    """One API process's figures, in a registry of its own; the HTTP edge's `IngestMeter`."""

    def __init__(self) -> None:
        self.registry = r = process_registry()
        self._accepted = Counter(
            "malestrom_readings_accepted",
            "readings published to the broker and accepted, alone or as a batch entry (resends of"
            " stored ones are not)",
            ["lane"],
            registry=r,
        )
        self._refused = Counter(
            "malestrom_readings_refused",
            "readings or whole requests refused at the edge, by FHIR issue type",
            ["code"],
            registry=r,
        )
        self._publish = Histogram(
            "malestrom_publish_duration_seconds",
            "one publish to the broker until every record was acknowledged",
            ["lane"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

    def accepted(self, lane: str, count: int) -> None:
        """Count readings published on ``lane``."""
        self._accepted.labels(lane).inc(count)

    def refused(self, code: str, count: int = 1) -> None:
        """Count readings refused with ``code``."""
        self._refused.labels(code).inc(count)

    def published(self, lane: str, seconds: float) -> None:
        """Observe one publish's latency."""
        self._publish.labels(lane).observe(seconds)

    def watch(
        self, *, pools: Mapping[str, AsyncConnectionPool], sse_clients: Callable[[], int]
    ) -> Callable[[], None]:
        """Report the pools and the live stream's clients; return what stops reporting them."""
        collectors = [PoolCollector(pools), _SseCollector(sse_clients)]
        for collector in collectors:
            self.registry.register(collector)

        def unwatch() -> None:
            for collector in collectors:
                self.registry.unregister(collector)

        return unwatch


class _SseCollector(Collector):
    def __init__(self, clients: Callable[[], int]) -> None:
        self._clients = clients

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "malestrom_sse_clients", "clients of the live alert stream (API and pages)"
        )
        gauge.add_metric([], self._clients())
        yield gauge
