"""The worker's metrics, served by prometheus_client on 127.0.0.1
(``MALESTROM_WORKER_METRICS_PORT``; 0 is off).

Consumer lag is computed at each scrape, per lane and partition the worker owns, as the end
offset less the committed offset (the earliest offset where nothing is committed yet). The
end is the highest of what the broker says it is (``ListOffsets``), the high watermark of
the consumer's latest fetch, and the consumer's own position: the embedded Tansu broker
answers ``ListOffsets`` with the base offset of its last batch plus one (measured: 49 for a
partition holding 72 records), so its answer alone would hide a backlog and report a drained
partition as negative; the fetch's high watermark is right there, and on Kafka all agree.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import logging
import threading
from collections import Counter as Tally
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from psycopg_pool import AsyncConnectionPool

from ingestion.prometheus import LATENCY_BUCKETS, PoolCollector, process_registry
from streams.agents import Send, Stored

__all__ = ["WorkerMetrics", "partition_lag"]

log = logging.getLogger(__name__)

_NOTHING = -1001  # librdkafka's OFFSET_INVALID: no commit, no fetch yet
_BROKER_TIMEOUT = 2.0  # seconds a scrape waits for the broker's answers


class WorkerMetrics:
    """One worker's figures, in a registry of its own."""

    def __init__(self, *, pool: AsyncConnectionPool, consumers: Mapping[str, Consumer]) -> None:
        self.registry = r = process_registry()
        r.register(PoolCollector({"worker": pool}))
        self._lag = _LagCollector(consumers)
        r.register(self._lag)
        self._stored = Counter(
            "malestrom_readings_stored", "readings stored in the database", ["lane"], registry=r
        )
        self._scored = Counter(
            "malestrom_readings_scored", "stored readings the NEWS2 stage has scored", ["lane"],
            registry=r,
        )  # fmt: skip
        self._to_stored = _Delays(
            "malestrom_received_to_stored_seconds",
            "from a reading's acceptance at the edge to its database commit",
        )
        self._to_scored = _Delays(
            "malestrom_received_to_scored_seconds",
            "from a reading's acceptance at the edge to its NEWS2 scoring",
        )
        r.register(self._to_stored)
        r.register(self._to_scored)
        self._dead_letters = Counter(
            "malestrom_dead_letters",
            "records sent to the dead-letter topic, by stage and error type",
            ["stage", "error"],
            registry=r,
        )

    def stored(self, lane: str, rows: Sequence[Stored]) -> None:
        """Count a stored batch and observe how long each reading took to get there."""
        self._observe(self._stored, self._to_stored, lane, rows)

    def scored(self, lane: str, rows: Sequence[Stored]) -> None:
        """Count a scored batch and observe how long each reading took to get there."""
        self._observe(self._scored, self._to_scored, lane, rows)

    def stop_lag(self, timeout: float = 3.0) -> bool:
        """Before the consumers close: wait for a scrape reading them, and read them no more."""
        return self._lag.stop(timeout)

    def counting_dead_letters(self, send: Send) -> Send:
        """``send`` to the dead-letter topic, counting each record by its stage and error."""
        counter = self._dead_letters

        async def dead_letter(records: Sequence[tuple[bytes, bytes, Mapping[str, bytes]]]) -> None:
            await send(records)
            for _key, _value, headers in records:
                stage = headers.get("dlq-stage", b"").decode()
                counter.labels(stage, headers.get("dlq-error-type", b"").decode()).inc()

        return dead_letter

    @staticmethod
    def _observe(counter: Counter, delays: _Delays, lane: str, rows: Sequence[Stored]) -> None:
        if not rows:
            return
        now = dt.datetime.now(dt.UTC)
        counter.labels(lane).inc(len(rows))
        # The readings of one request share their received time: one delay each, counted.
        received = Tally(row.received for _env, row in rows)
        delays.observe(lane, {(now - at).total_seconds(): n for at, n in received.items()})


class _Delays(Collector):
    """A histogram per lane that takes a batch's delays at once, each with its count
    (prometheus_client's costs about 1 µs per observation: a few ms per batch of 2,000)."""

    def __init__(self, name: str, documentation: str) -> None:
        self._name = name
        self._doc = documentation
        self._lock = threading.Lock()
        self._counts: dict[str, list[int]] = {}  # per lane: per bucket, and +Inf last
        self._sums: dict[str, float] = {}

    def observe(self, lane: str, delays: Mapping[float, int]) -> None:
        """Add ``count`` observations of each delay (seconds; below 0 counts as 0)."""
        with self._lock:
            counts = self._counts.setdefault(lane, [0] * (len(LATENCY_BUCKETS) + 1))
            for delay, count in delays.items():
                counts[bisect.bisect_left(LATENCY_BUCKETS, delay)] += count
                self._sums[lane] = self._sums.get(lane, 0.0) + max(0.0, delay) * count

    def collect(self) -> Iterator[Metric]:
        """The histogram, cumulative as Prometheus wants it."""
        family = HistogramMetricFamily(self._name, self._doc, labels=["lane"])
        with self._lock:
            edges = [*(str(b) for b in LATENCY_BUCKETS), "+Inf"]
            for lane, counts in self._counts.items():
                buckets = list(zip(edges, itertools.accumulate(counts), strict=True))
                family.add_metric([lane], buckets, self._sums[lane])
        yield family


def partition_lag(
    *, committed: int, low: int, fetched_high: int, listed_high: int, position: int
) -> int:
    """Records after the committed offset: the end is the highest offset any source knows
    (each may be unknown, `_NOTHING`, or too low, as Tansu's ``ListOffsets``)."""
    end = max(fetched_high, listed_high, position, committed, 0)
    start = committed if committed >= 0 else max(low, 0)
    return max(0, end - start)


class _LagCollector(Collector):
    """``malestrom_consumer_lag`` per lane and owned partition, computed at each scrape.

    The scrape runs on the metrics server's thread; librdkafka allows that, except while a
    consumer closes. `stop` waits for a scrape in progress and makes later ones skip the lag,
    so a consumer is never read while (or after) it closes.
    """

    def __init__(self, consumers: Mapping[str, Consumer]) -> None:
        self._consumers = consumers
        self._lock = threading.Lock()
        self._stopped = False

    def stop(self, timeout: float) -> bool:
        """No lag from now on; return whether a scrape in progress ended within ``timeout``."""
        finished = self._lock.acquire(timeout=timeout)
        self._stopped = True
        if finished:
            self._lock.release()
        return finished

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "malestrom_consumer_lag",
            "records on the partition after the worker's committed offset",
            labels=["lane", "partition"],
        )
        with self._lock:
            for lane, consumer in ({} if self._stopped else self._consumers).items():
                try:
                    lags = _lags(consumer)
                except (KafkaException, RuntimeError) as exc:  # broker away, consumer closed
                    log.warning("consumer lag of the %s lane unknown: %s", lane, exc)
                    continue
                for partition, lag in sorted(lags.items()):
                    gauge.add_metric([lane, str(partition)], lag)
        yield gauge


def _lags(consumer: Consumer) -> dict[int, int]:
    owned: list[TopicPartition] = consumer.assignment()
    if not owned:
        return {}
    committed = {tp.partition: tp.offset for tp in consumer.committed(owned, _BROKER_TIMEOUT)}
    position = {tp.partition: tp.offset for tp in consumer.position(owned)}
    lags = {}
    for tp in owned:
        fetched: Any = consumer.get_watermark_offsets(tp, cached=True)
        listed: Any = consumer.get_watermark_offsets(tp, timeout=_BROKER_TIMEOUT, cached=False)
        lags[tp.partition] = partition_lag(
            committed=committed.get(tp.partition, _NOTHING),
            low=listed[0] if listed else _NOTHING,
            fetched_high=fetched[1] if fetched else _NOTHING,
            listed_high=listed[1] if listed else _NOTHING,
            position=position.get(tp.partition, _NOTHING),
        )
    return lags
