"""The Faust application: topics, agents and the liveness heartbeat, built from settings.

Agents are short loops: take a batch of events, hand it to the pure-ish work in `agents`, and
let Faust acknowledge the offsets only after the batch returned (at-least-once; the database
writes are idempotent, so replays merge).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import faust
from aiokafka.errors import KafkaError
from psycopg_pool import AsyncConnectionPool

from ingestion.exceptions import BrokerUnavailableError
from ingestion.topics import Topics
from streams.agents import (
    Envelope,
    Send,
    normalise_batch,
    persist_batch,
    run_alert_rules,
    score_batch,
)
from streams.partitions import maintain_storage
from streams.scorer import News2Scorer
from streams.settings import StreamsSettings
from streams.sinks import ObservationSink

__all__ = ["build_app", "run_worker"]

log = logging.getLogger(__name__)

_STATUS_SQL = """
INSERT INTO worker_status (worker_id, group_id, partitions, updated_at)
VALUES (%s, %s, %s, now())
ON CONFLICT (worker_id) DO UPDATE
SET partitions = EXCLUDED.partitions, updated_at = EXCLUDED.updated_at
"""


def build_app(settings: StreamsSettings) -> faust.App:
    """Build the Faust app with its agents; nothing connects until the worker starts."""
    _set_fetch_max_wait(settings.fetch_max_wait_ms)
    topics = Topics(settings.topic_prefix)
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        web_enabled=False,
        topic_allow_declare=False,  # topics are created by `malestrom up` / infra.topics
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.broker_session_timeout,
        broker_heartbeat_interval=max(0.5, settings.broker_session_timeout / 6),
        broker_commit_interval=1.0,
        producer_acks=-1,
    )
    readings = _raw_topic(app, topics.readings)
    observations = _raw_topic(app, topics.observations)
    dlq = _raw_topic(app, topics.readings_dlq)
    scores_topic, alerts_topic = _raw_topic(app, topics.news2), _raw_topic(app, topics.alerts)
    pool = AsyncConnectionPool(
        settings.database_url.get_secret_value(), open=False, min_size=1, max_size=4
    )
    sink = ObservationSink(pool)
    emit, dead_letter = _sender(observations), _sender(dlq)
    scorer = News2Scorer(pool, emit_scores=_sender(scores_topic), emit_alerts=_sender(alerts_topic))
    worker_id = f"{socket.gethostname()}-{os.getpid()}"

    @app.task  # type: ignore[untyped-decorator]
    async def open_pool() -> None:
        await pool.open(wait=False)

    @app.agent(readings)
    async def normalise(stream: faust.StreamT[bytes]) -> None:
        async for batch in _batches(stream, settings):
            await normalise_batch(batch, emit=emit, dead_letter=dead_letter)

    @app.agent(observations)
    async def persist(stream: faust.StreamT[bytes]) -> None:
        async for batch in _batches(stream, settings):
            await persist_batch(batch, sink=sink, dead_letter=dead_letter)
            await score_batch(batch, scorer=scorer, dead_letter=dead_letter)

    @app.timer(interval=settings.alert_check_interval)  # type: ignore[untyped-decorator]
    async def time_driven_alerts() -> None:
        await run_alert_rules(scorer)

    @app.timer(interval=3600.0, on_leader=True)  # type: ignore[untyped-decorator]
    async def storage_maintenance() -> None:  # partitions ahead, retention (issue 5)
        await maintain_storage(pool)

    @app.timer(interval=2.0)  # type: ignore[untyped-decorator]
    async def heartbeat() -> None:
        owned = {topics.readings, topics.observations}
        assigned = sum(1 for tp in app.consumer.assignment() if tp.topic in owned)
        try:
            async with pool.connection(timeout=2.0) as conn:
                await conn.execute(_STATUS_SQL, (worker_id, settings.app_id, assigned))
        except Exception as exc:  # noqa: BLE001 - liveness is best effort; /healthz shows it
            log.warning("heartbeat not recorded: %s", type(exc).__name__)

    return app


def _set_fetch_max_wait(max_wait_ms: int) -> None:
    """Bound how long the broker may hold a fetch that finds no new records.

    faust-streaming 0.15 hard-codes ``fetch_max_wait_ms=1500`` for its consumer. Kafka answers a
    fetch as soon as records arrive, but a broker that does not (Tansu, measured here) then adds
    up to 1.5 s per hop; a short bound keeps a reading's way to the nurse well under a second.
    """
    from faust.transport.drivers import aiokafka as driver

    thread = driver.AIOKafkaConsumerThread
    original = getattr(thread, "_malestrom_original_create", thread._create_worker_consumer)

    def create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = max_wait_ms  # read when the consumer starts its fetcher
        return consumer

    thread._malestrom_original_create = original  # type: ignore[attr-defined]
    thread._create_worker_consumer = create_worker_consumer  # type: ignore[method-assign]


def _raw_topic(app: faust.App, name: str) -> faust.TopicT:
    return app.topic(
        name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )


async def _batches(stream: Any, settings: StreamsSettings) -> AsyncIterator[list[Envelope]]:
    # take_events acks a batch's offsets only after the loop body returns (at-least-once).
    async for events in stream.take_events(settings.batch_size, within=settings.batch_within):
        yield [_envelope(e) for e in events]


def _envelope(event: Any) -> Envelope:
    message = event.message
    return Envelope(
        key=message.key or b"",
        value=message.value or b"",
        headers=dict(message.headers or ()),
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
    )


def _sender(topic: faust.TopicT) -> Send:
    async def send(records: Sequence[tuple[bytes, bytes, Mapping[str, bytes]]]) -> None:
        try:
            pending = [
                await topic.send(key=key, value=value, headers=dict(headers))
                for key, value, headers in records
            ]
            await asyncio.gather(*pending)
        except (KafkaError, TimeoutError) as exc:
            raise BrokerUnavailableError(f"send to {topic.get_topic_name()} failed") from exc

    return send


def run_worker(settings: StreamsSettings) -> None:
    """Run the streams worker until SIGTERM or SIGINT."""
    from faust.worker import Worker

    app = build_app(settings)
    worker = Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
