"""The streams worker: two lanes of readings consumed in batches, the NEWS2 stage, the timers.

Each lane is a confluent-kafka consumer whose batches are stored (`agents.store_batch`) and then
scored (`agents.score_stored`), the next batch being stored while one is scored; offsets are
committed only after a batch is scored, so after its database commits (at-least-once; the
writes are idempotent, so replays merge). Scores, alert events and dead letters leave through
one idempotent producer, a batch at a time.

- The live lane (``readings.v1``) is consumed in the group ``app_id``: Kafka's group protocol
  spreads its partitions over the workers.
- The backfill lane (``readings-backfill.v1``, readings that were old when accepted) follows
  it: the worker assigned live partition *p* also reads backfill partition *p* (one key, one
  partition number: both topics have the same partition count and every producer the same
  partitioner), so one worker owns a patient's NEWS2 state in both lanes. Its offsets are kept
  under the group ``app_id.backfill``.
- Live batches come first: batches are scored one at a time (a lock), the backfill lane stores
  or scores a batch only while no live batch is in flight, and takes small batches
  (``backfill_batch_size``) while live readings keep coming; so a reading measured now waits
  for at most one small backfill batch, never for the backlog behind it.

Faust is not used: its per-event machinery and one awaited send per record cost more than the
whole rest of the pipeline (see ``bench/pipeline_bench.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition
from psycopg_pool import AsyncConnectionPool

from ingestion.kafka import TopicWatch, client_config
from ingestion.prometheus import serve_loopback
from ingestion.publisher import KafkaPublisher
from ingestion.topics import Topics
from streams.agents import Envelope, Send, Stored, run_alert_rules, score_stored, store_batch
from streams.metrics import WorkerMetrics
from streams.partitions import maintain_storage
from streams.scorer import News2Scorer
from streams.settings import StreamsSettings
from streams.sinks import ObservationSink

__all__ = ["StreamsWorker", "run_worker"]

log = logging.getLogger(__name__)

_STATUS_SQL = """
INSERT INTO worker_status (worker_id, group_id, partitions, updated_at)
VALUES (%s, %s, %s, now())
ON CONFLICT (worker_id) DO UPDATE
SET partitions = EXCLUDED.partitions, updated_at = EXCLUDED.updated_at
"""


# Closing the clients may take this long at most: SIGTERM stops the worker within 10 s, even
# with the broker down.
_CLOSE_WITHIN = 5.0

_Handoff = asyncio.Queue[tuple[list[Envelope], list[Stored]]]  # stored batches, to be scored


class _Lane:
    """One topic's consumer; its calls run on the lane's own thread. The only other reader is
    the metrics scrape (offsets, for the lag), which stops before the consumer closes."""

    def __init__(self, name: str, config: dict[str, Any], on_error: Callable[[], None]) -> None:
        self.name = name
        self.consumer = Consumer(config)
        self._on_error = on_error
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"kafka-{name}")

    def call(self, fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
        """Run a consumer call on the lane's thread."""
        return asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def consume(self, size: int, within: float) -> list[Envelope]:
        messages: list[Message] = await self.call(self.consumer.consume, size, within)
        out = []
        for m in messages:
            if m.error() is not None:  # e.g. a topic gone with a restarted broker
                log.warning("%s lane: %s", self.name, m.error())
                self._on_error()
                continue
            out.append(_envelope(m))
        return out

    async def commit(self, batch: Sequence[Envelope]) -> None:
        """Commit the offsets after the batch."""
        last: dict[tuple[str, int], int] = {}
        for env in batch:  # a partition's records come in offset order
            last[(env.topic, env.partition)] = env.offset
        offsets = [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]
        await self.call(self._commit, offsets)

    def _commit(self, offsets: list[TopicPartition]) -> None:
        # Asynchronous: the next commit supersedes this one, and a lost one (the partition moved
        # in a rebalance) only means its new owner replays from the last commit that landed.
        try:
            self.consumer.commit(offsets=offsets, asynchronous=True)
        except Exception as exc:  # noqa: BLE001 - a lost commit only means a replay
            log.warning("offsets not committed: %s", type(exc).__name__)

    async def close(self) -> None:
        await self.call(self.consumer.close)
        self._thread.shutdown(wait=False)


class _LivePriority:
    """Live batches first: the backfill lane waits while a live batch is in flight, and takes
    small batches while live readings keep coming, so a reading measured now waits for at
    most one small backfill batch."""

    def __init__(self, *, quiet_after: float = 1.0) -> None:
        self._quiet_after = quiet_after
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._last = -quiet_after

    def live_started(self) -> None:
        self._in_flight += 1
        self._idle.clear()
        self._last = time.monotonic()

    def live_done(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0:
            self._idle.set()

    async def live_idle(self) -> None:
        await self._idle.wait()

    def live_lately(self) -> bool:
        return time.monotonic() - self._last < self._quiet_after


class StreamsWorker:
    """The streams worker process: lanes, the NEWS2 stage, timers, heartbeat."""

    def __init__(self, settings: StreamsSettings) -> None:
        self._settings = settings
        self._topics = Topics(settings.topic_prefix)
        self._pool = AsyncConnectionPool(
            settings.database_url.get_secret_value(), open=False, min_size=2, max_size=8
        )
        self._publisher = KafkaPublisher(bootstrap=settings.kafka_bootstrap)
        self._sink = ObservationSink(self._pool)
        self._scorer = News2Scorer(
            self._pool,
            emit_scores=self._sender(self._topics.news2),
            emit_alerts=self._sender(self._topics.alerts),
        )
        self._watch = watch = TopicWatch(
            settings.kafka_bootstrap, self._topics.all(), partitions=settings.partitions
        )
        self._live = _Lane("live", _consumer_config(settings, settings.app_id, watch), watch.poke)
        backfill_config = _consumer_config(settings, f"{settings.app_id}.backfill", watch)
        self._backfill = _Lane("backfill", backfill_config, watch.poke)
        lanes = {lane.name: lane.consumer for lane in (self._live, self._backfill)}
        self._metrics = WorkerMetrics(pool=self._pool, consumers=lanes)
        self._dead_letter = self._metrics.counting_dead_letters(
            self._sender(self._topics.readings_dlq)
        )
        self._gate = asyncio.Lock()
        self._priority = _LivePriority()
        self._owned: set[int] = set()
        self._pending: set[Any] = set()  # backfill assignments on their way
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker_id = f"{socket.gethostname()}-{os.getpid()}"
        self.closed_cleanly = True
        self._closing = False

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then leave the group and close everything."""
        self._loop = asyncio.get_running_loop()
        await self._pool.open(wait=False)
        await self._watch.check()
        self._subscribe()
        s = self._settings
        tasks = [
            asyncio.create_task(self._watch.watch()),
            asyncio.create_task(self._run_lane(self._live, backfill=False)),
            asyncio.create_task(self._run_lane(self._backfill, backfill=True)),
            asyncio.create_task(_every(s.alert_check_interval, self._alert_rules)),
            asyncio.create_task(_every(3600.0, self._maintenance)),
            asyncio.create_task(_every(2.0, self._heartbeat)),
        ]
        stopped = asyncio.create_task(stop.wait())
        with serve_loopback(self._metrics.registry, s.worker_metrics_port, what="worker"):
            await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        self.closed_cleanly = await self._close()
        for result in results:  # a lane that stopped on the error policy stops the worker
            if isinstance(result, Exception) and not isinstance(result, asyncio.CancelledError):
                raise result

    async def _close(self) -> bool:
        """Leave the group, flush, close; all at once and within ``_CLOSE_WITHIN`` seconds.

        With the broker down a consumer's close waits for a coordinator that does not answer,
        and a flush for acknowledgements that do not come. Nothing is lost by not waiting:
        offsets not committed are read again by the partitions' next owner, and storage is
        idempotent. Returns whether everything closed in time.
        """
        self._closing = True
        if not await asyncio.to_thread(self._metrics.stop_lag):
            log.warning("a metrics scrape still reads the consumers; closing them anyway")
        closing = [
            asyncio.ensure_future(self._live.close()),
            asyncio.ensure_future(self._backfill.close()),
            asyncio.ensure_future(asyncio.to_thread(self._publisher.close, 2.0)),
            asyncio.ensure_future(self._pool.close(timeout=2.0)),
        ]
        _, pending = await asyncio.wait(closing, timeout=_CLOSE_WITHIN)
        if pending:
            log.warning(
                "the Kafka clients did not close within %.0f s (broker down?); stopping anyway:"
                " offsets not committed are read again",
                _CLOSE_WITHIN,
            )
        return not pending

    def _subscribe(self) -> None:
        self._live.consumer.subscribe(
            [self._topics.readings],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )

    async def _topics_ready(self, lane: _Lane) -> None:
        """Wait while a topic is missing (a restarted in-memory broker has none): consuming or
        producing then only fails. Once they are back, subscribe again, so that the consumer
        looks them up now rather than at its next metadata refresh (minutes away)."""
        if not self._watch.status.missing:
            return
        log.error(
            "%s lane paused until the topics exist (`malestrom up` creates them): %s",
            lane.name,
            self._watch.status.describe(),
        )
        await self._watch.wait_ready()
        log.warning("%s lane resumed: the topics exist", lane.name)
        if lane is self._live:  # the new assignment makes the backfill lane follow
            await lane.call(self._subscribe)

    async def _run_lane(self, lane: _Lane, *, backfill: bool) -> None:
        # Two stages, one batch apart: while a batch is scored, the next is decoded and stored,
        # so the worker's Python and the database work at the same time.
        # A task group: when one stage fails (the error policy's STOP), the other is cancelled
        # rather than left running, and the error ends the lane.
        stored: _Handoff = asyncio.Queue(maxsize=1)
        try:
            async with asyncio.TaskGroup() as stages:
                stages.create_task(self._store_lane(lane, stored, backfill=backfill))
                stages.create_task(self._score_lane(lane, stored, backfill=backfill))
        except BaseExceptionGroup as group:
            raise group.exceptions[0] from None

    async def _store_lane(
        self,
        lane: _Lane,
        stored: _Handoff,
        *,
        backfill: bool,
    ) -> None:
        s = self._settings
        while True:
            await self._topics_ready(lane)
            size = s.batch_size
            if backfill and self._priority.live_lately():
                size = s.backfill_batch_size  # small, so a live batch never waits long
            batch = await lane.consume(size, s.batch_within)
            if backfill:  # a partition revoked while its batch was in flight: not ours now
                batch = [env for env in batch if env.partition in self._owned]
            if not batch:
                continue
            if backfill:
                await self._priority.live_idle()
            else:
                self._priority.live_started()
            rows = await store_batch(batch, sink=self._sink, dead_letter=self._dead_letter)
            self._metrics.stored(lane.name, rows)
            await stored.put((batch, rows))

    async def _score_lane(self, lane: _Lane, stored: _Handoff, *, backfill: bool) -> None:
        dead = self._dead_letter
        while True:
            batch, rows = await stored.get()
            if backfill:
                await self._priority.live_idle()
            async with self._gate:  # one patient's state is touched by one batch at a time
                scored = await score_stored(rows, scorer=self._scorer, dead_letter=dead)
            self._metrics.scored(lane.name, scored)
            await lane.commit(batch)  # stored and scored: the offsets may move
            if not backfill:
                self._priority.live_done()

    # Rebalance callbacks run on the live lane's thread, inside its consume call.
    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._assigned, [p.partition for p in partitions])

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._revoked, [p.partition for p in partitions])

    def _assigned(self, partitions: list[int]) -> None:
        self._scorer.forget(partitions)  # state is loaded on first sight, never inherited
        self._owned |= set(partitions)
        self._follow()

    def _revoked(self, partitions: list[int]) -> None:
        self._scorer.forget(partitions)
        self._owned -= set(partitions)
        self._follow()

    def _follow(self) -> None:
        """Make the backfill lane read the partitions the live lane owns."""
        if self._closing:  # the live lane's close revokes everything: nothing to follow
            return
        wanted = [TopicPartition(self._topics.backfill, p) for p in sorted(self._owned)]
        done = self._backfill.call(self._backfill.consumer.assign, wanted)
        self._pending.add(done)
        asyncio.ensure_future(done).add_done_callback(self._pending.discard)

    async def _alert_rules(self) -> None:
        await run_alert_rules(self._scorer)

    async def _maintenance(self) -> None:
        if 0 in self._owned:  # one worker does it: the owner of partition 0
            await maintain_storage(self._pool)

    async def _heartbeat(self) -> None:
        s = self._settings
        try:
            async with self._pool.connection(timeout=2.0) as conn:
                await conn.execute(_STATUS_SQL, (self._worker_id, s.app_id, len(self._owned)))
        except Exception as exc:  # noqa: BLE001 - liveness is best effort; /healthz shows it
            log.warning("heartbeat not recorded: %s", type(exc).__name__)

    def _sender(self, topic: str) -> Send:
        publisher = self._publisher

        async def send(records: Sequence[tuple[bytes, bytes, Any]]) -> None:
            await publisher.publish(topic, [(k, v, list(h.items())) for k, v, h in records])

        return send


def _consumer_config(settings: StreamsSettings, group: str, watch: TopicWatch) -> dict[str, Any]:
    session_ms = int(settings.broker_session_timeout * 1000)
    return client_config(
        settings.kafka_bootstrap,
        {
            "group.id": group,
            "error_cb": watch.poke,  # a broker gone or back: check the topics again
            # A subscribed topic that was missing is looked for again at each metadata refresh
            # (every 5 minutes by default): so often, a recreated topic is read within seconds.
            "topic.metadata.refresh.interval.ms": 5000,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": session_ms,
            "heartbeat.interval.ms": max(500, session_ms // 6),
            # A broker that holds an empty fetch for the whole wait (Tansu does) would add it to
            # every reading's way to the nurse; and librdkafka waits fetch.error.backoff.ms (500 ms
            # by default) after every empty answer before it fetches again: measured as a 0.5-1 s
            # tail on the alert latency.
            "fetch.wait.max.ms": settings.fetch_max_wait_ms,
            "fetch.error.backoff.ms": 20,
            "partition.assignment.strategy": "range",
        },
    )


def _envelope(message: Message) -> Envelope:
    headers: list[tuple[str, str | bytes | None]] = message.headers() or []  # type: ignore[assignment]
    return Envelope(
        key=message.key() or b"",
        value=message.value() or b"",
        headers={k: _bytes(v) for k, v in headers},
        topic=message.topic() or "",
        partition=message.partition() or 0,
        offset=message.offset() or 0,
    )


def _bytes(value: str | bytes | None) -> bytes:
    return value.encode() if isinstance(value, str) else value or b""


async def _every(interval: float, action: Callable[[], Awaitable[None]]) -> None:
    while True:
        await asyncio.sleep(interval)
        await action()


def run_worker(settings: StreamsSettings) -> None:
    """Run the streams worker until SIGTERM or SIGINT."""
    logging.basicConfig(level=settings.log_level.upper())
    # The NEWS2 state is many small objects that live long and hold no cycles; with the default
    # thresholds the collector walks all of them again and again (measured on 60,000 readings:
    # 0.64 s in 619 collections, against 0.07 s in 2 with these).
    gc.set_threshold(100_000, 50, 50)

    async def main() -> bool:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        worker = StreamsWorker(settings)
        await worker.run(stop)
        return worker.closed_cleanly

    with contextlib.suppress(KeyboardInterrupt):
        if not asyncio.run(main()):
            # A client still blocked in librdkafka (its close, with the broker down) would keep
            # the interpreter's exit waiting for its thread: leave now, the work is safe.
            logging.shutdown()
            os._exit(0)
