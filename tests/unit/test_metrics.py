"""What the metrics count, without a broker or database: the edge's accepted and refused
readings, the consumer lag's arithmetic (Tansu's wrong end offsets included), the database
pool's figures and the dead letters."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast

import httpx
import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from psycopg_pool import AsyncConnectionPool

from api.metrics import ApiMetrics
from infra.devissuer import DevIssuer
from infra.processes import free_port
from ingestion.known import RecentIds
from ingestion.prometheus import PoolCollector, serve_loopback
from streams.metrics import WorkerMetrics, partition_lag
from tests.helpers import bundle, observation
from tests.unit.offline import offline_api
from tests.unit.test_receiver import FakePublisher, FakeStore

FHIR = {"Content-Type": "application/fhir+json"}
NOTHING = -1001


@pytest.fixture
def edge(issuer: DevIssuer) -> Iterator[tuple[TestClient, FakePublisher, CollectorRegistry]]:
    """An offline API whose store knows no ids, its fake broker and its metrics."""
    fake = FakePublisher()
    with offline_api(fake, issuer) as client:
        state = client.app.state  # type: ignore[attr-defined]
        state.receiver = dataclasses.replace(
            state.receiver, recent=RecentIds(), known=FakeStore(set())
        )
        metrics: ApiMetrics = state.metrics
        yield client, fake, metrics.registry


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_the_edge_counts_accepted_and_refused_readings(
    edge: tuple[TestClient, FakePublisher, CollectorRegistry],
) -> None:
    """Two good entries and one with a wrong unit: 2 accepted in one publish, 1 refused by its
    issue code; a request the broker cannot take is refused as transient."""
    client, fake, registry = edge
    body = bundle(observation(), observation(unit="/h"), observation(value=80))
    assert client.post("/fhir", content=orjson.dumps(body), headers=FHIR).status_code == 200
    assert _value(registry, "malestrom_readings_accepted_total", lane="backfill") == 2
    assert _value(registry, "malestrom_publish_duration_seconds_count", lane="backfill") == 1
    assert _value(registry, "malestrom_readings_refused_total", code="value") == 1
    fake.down = True
    one = orjson.dumps(observation(value=90))
    assert client.post("/fhir/Observation", content=one, headers=FHIR).status_code == 503
    assert _value(registry, "malestrom_readings_refused_total", code="transient") == 1
    assert _value(registry, "malestrom_readings_accepted_total", lane="backfill") == 2


@pytest.mark.parametrize(
    ("case", "offsets", "lag"),
    [
        ("Tansu lists too low; the fetch knows", (5, 0, 72, 49, 6), 67),
        ("Tansu, drained: committed above what it lists", (72, 0, 72, 49, 72), 0),
        ("nothing committed: from the earliest offset", (NOTHING, 0, 12, 7, NOTHING), 12),
        ("nothing fetched yet: what the broker lists", (3, 0, NOTHING, 10, NOTHING), 7),
        ("retention moved the earliest offset", (NOTHING, 40, 50, 50, NOTHING), 10),
        ("nothing known", (NOTHING, NOTHING, NOTHING, NOTHING, NOTHING), 0),
    ],
)
def test_partition_lag_takes_the_highest_end_anyone_knows(
    case: str, offsets: tuple[int, int, int, int, int], lag: int
) -> None:
    """Lag is the highest known end less the committed offset, never negative."""
    committed, low, fetched, listed, position = offsets
    assert (
        partition_lag(
            committed=committed,
            low=low,
            fetched_high=fetched,
            listed_high=listed,
            position=position,
        )
        == lag
    ), case


class _Pool:
    def __init__(self, stats: Mapping[str, int]) -> None:
        self.stats = dict(stats)

    def get_stats(self) -> dict[str, int]:
        return self.stats


def test_pool_figures_come_from_get_stats() -> None:
    """Waits and their time are counters (seconds), the pool's size and queue gauges."""
    registry = CollectorRegistry()
    pool = _Pool(
        {"pool_size": 4, "requests_waiting": 2, "requests_queued": 3, "requests_wait_ms": 1500}
    )
    registry.register(PoolCollector({"api": cast(AsyncConnectionPool, pool)}))
    assert _value(registry, "malestrom_db_pool_connections", pool="api") == 4
    assert _value(registry, "malestrom_db_pool_waiting", pool="api") == 2
    assert _value(registry, "malestrom_db_pool_waits_total", pool="api") == 3
    assert _value(registry, "malestrom_db_pool_wait_seconds_total", pool="api") == 1.5
    assert _value(registry, "malestrom_db_pool_requests_total", pool="api") == 0


def test_dead_letters_are_counted_by_stage_and_error_once_sent() -> None:
    """Each record sent to the dead-letter topic counts under its stage and error type."""
    metrics = WorkerMetrics(pool=cast(AsyncConnectionPool, _Pool({})), consumers={})
    sent: list[Any] = []

    async def send(records: Sequence[Any]) -> None:
        sent.extend(records)

    counting = metrics.counting_dead_letters(send)
    record = (b"k", b"v", {"dlq-stage": b"persist", "dlq-error-type": b"DataError"})
    asyncio.run(counting([record, record]))
    assert len(sent) == 2
    labels = {"stage": "persist", "error": "DataError"}
    assert _value(metrics.registry, "malestrom_dead_letters_total", **labels) == 2


class _Consumer:
    """A consumer on one partition: committed at 5, fetched up to 9; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def assignment(self) -> list[TopicPartition]:
        self.calls += 1
        return [TopicPartition("t", 0)]

    def committed(self, owned: list[TopicPartition], _timeout: float) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, 5) for tp in owned]

    def position(self, owned: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, 9) for tp in owned]

    def get_watermark_offsets(self, _tp: TopicPartition, **_: Any) -> tuple[int, int]:
        return 0, 9


def test_consumer_lag_is_read_per_partition_until_the_consumers_close() -> None:
    """Lag is the end less the committed offset; once the worker stops it (before closing its
    consumers) a scrape no longer touches them."""
    consumer = _Consumer()
    metrics = WorkerMetrics(
        pool=cast(AsyncConnectionPool, _Pool({})), consumers={"live": cast(Consumer, consumer)}
    )
    assert _value(metrics.registry, "malestrom_consumer_lag", lane="live", partition="0") == 4
    assert metrics.stop_lag(timeout=1.0)
    calls = consumer.calls
    assert b"malestrom_consumer_lag{" not in generate_latest(metrics.registry)
    assert consumer.calls == calls


def test_the_metrics_port_serves_on_loopback_and_never_stops_the_work() -> None:
    """A set port serves the registry on 127.0.0.1; 0 serves nothing; a taken port is skipped."""
    registry = CollectorRegistry()
    port = free_port()
    with serve_loopback(registry, 0, what="test") as off:
        assert off is None
    with serve_loopback(registry, port, what="test") as served:
        assert served == port
        answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert answer.status_code == 200
        with serve_loopback(registry, port, what="test") as taken:
            assert taken is None
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)


def test_delays_since_received_are_one_observation_per_reading() -> None:
    """Three readings of one request and one of another: four observations, each in the
    bucket of its own delay, with their sum."""
    metrics = WorkerMetrics(pool=cast(AsyncConnectionPool, _Pool({})), consumers={})
    now = dt.datetime.now(dt.UTC)
    rows: list[Any] = [(None, Row(now - dt.timedelta(seconds=20)))] * 3 + [(None, Row(now))]
    metrics.stored("live", rows)
    name = "malestrom_received_to_stored_seconds"
    registry = metrics.registry
    assert _value(registry, f"{name}_count", lane="live") == 4
    assert _value(registry, f"{name}_bucket", lane="live", le="10.0") == 1
    assert _value(registry, f"{name}_bucket", lane="live", le="30.0") == 4
    assert 60.0 <= _value(registry, f"{name}_sum", lane="live") < 61.0
    assert _value(registry, "malestrom_readings_stored_total", lane="live") == 4


@dataclasses.dataclass
class Row:
    """The one column of a stored row the delays read."""

    received: dt.datetime
