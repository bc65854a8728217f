"""Prometheus pieces both processes use: the latency buckets, a process's own registry, the
database pool's figures, and a loopback exposition server (an edge of ingestion: it touches
psycopg_pool and HTTP).

Names follow Prometheus' conventions (``malestrom_…_total`` counters, ``_seconds``); labels
are few and bounded (lane, stage, error code, pool), never a patient or a value.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping

from prometheus_client import (
    CollectorRegistry,
    gc_collector,
    platform_collector,
    process_collector,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from psycopg_pool import AsyncConnectionPool

__all__ = ["LATENCY_BUCKETS", "PoolCollector", "process_registry", "serve_loopback"]

log = logging.getLogger(__name__)

# From a few milliseconds (one publish) to ten minutes (a backlog drained after an outage).
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 600.0,
)  # fmt: skip


def process_registry() -> CollectorRegistry:
    """A registry of one process's own: its CPU, memory, file descriptors and collector."""
    registry = CollectorRegistry()
    process_collector.ProcessCollector(registry=registry)
    platform_collector.PlatformCollector(registry=registry)
    gc_collector.GCCollector(registry=registry)
    return registry


# psycopg_pool's get_stats() keys: counters since the pool opened (nobody calls pop_stats).
_POOL_GAUGES = {
    "pool_size": ("malestrom_db_pool_connections", "connections open or being opened"),
    "pool_available": ("malestrom_db_pool_available", "connections idle in the pool"),
    "requests_waiting": ("malestrom_db_pool_waiting", "requests waiting for a connection now"),
}
_POOL_COUNTERS = {
    "requests_num": ("malestrom_db_pool_requests", "connections asked of the pool", 1.0),
    "requests_queued": ("malestrom_db_pool_waits", "requests that had to wait", 1.0),
    "requests_wait_ms": ("malestrom_db_pool_wait_seconds", "time spent waiting", 0.001),
    "requests_errors": ("malestrom_db_pool_errors", "requests that failed (timeouts)", 1.0),
    "connections_lost": ("malestrom_db_pool_connections_lost", "connections found broken", 1.0),
}


class PoolCollector(Collector):
    """The figures of named connection pools, read from ``get_stats()`` at each scrape."""

    def __init__(self, pools: Mapping[str, AsyncConnectionPool]) -> None:
        self._pools = dict(pools)

    def collect(self) -> Iterator[Metric]:
        """One family per figure, a sample per pool."""
        stats = {name: pool.get_stats() for name, pool in self._pools.items()}
        for key, (name, text) in _POOL_GAUGES.items():
            gauge = GaugeMetricFamily(name, text, labels=["pool"])
            for pool, figures in stats.items():
                gauge.add_metric([pool], figures.get(key, 0))
            yield gauge
        for key, (name, text, scale) in _POOL_COUNTERS.items():
            counter = CounterMetricFamily(name, text, labels=["pool"])
            for pool, figures in stats.items():
                counter.add_metric([pool], figures.get(key, 0) * scale)
            yield counter


@contextlib.contextmanager
def serve_loopback(registry: CollectorRegistry, port: int, *, what: str) -> Iterator[int | None]:
    """Serve ``registry`` on ``127.0.0.1:port`` while the block runs (``port`` 0: not at all);
    yield the port, or None when it is off or taken (logged: metrics never stop the work)."""
    if not port:
        yield None
        return
    try:
        server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    except OSError as exc:
        log.warning("%s metrics not served on 127.0.0.1:%d: %s", what, port, exc.strerror)
        yield None
        return
    try:
        yield port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=2.0)
