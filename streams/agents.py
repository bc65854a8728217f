"""The work of the streams agents, one batch at a time, free of Faust so it is easy to test.

Error policy (one place, `handle_failure`): bad data (`InvalidReadingError`, or any unexpected
error on one record) is dead-lettered with the stage and the original bytes and the stream moves
on; an unavailable service (`UnavailableError`) is retried with back-off while consumption
pauses. Nothing is dropped without a record, and offsets are acknowledged only after the batch
returns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import orjson
import psycopg

from ingestion.exceptions import UnavailableError
from ingestion.measurement import from_json
from ingestion.rendering import to_observation
from streams.deadletter import dead_letter_headers
from streams.sinks import ObservationRow, Sink, observation_row

__all__ = [
    "AlertRules",
    "BatchScorer",
    "Envelope",
    "Send",
    "normalise_batch",
    "persist_batch",
    "retry_unavailable",
    "run_alert_rules",
    "score_batch",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Envelope:
    """One consumed Kafka record, independent of the client library."""

    key: bytes
    value: bytes
    headers: Mapping[str, bytes]
    topic: str
    partition: int
    offset: int


class BatchScorer(Protocol):
    """Port: the NEWS2 stage."""

    async def score_batch(self, batch: Sequence[Envelope]) -> int:
        """Score what the stored batch changed."""


class AlertRules(Protocol):
    """Port: the time-driven alert rules."""

    async def escalate_overdue(self) -> int:
        """Escalate unacknowledged alerts."""

    async def raise_missing(self) -> int:
        """Raise missing-measurement alerts."""


# Send records to a topic and return once the broker acknowledged all of them.
Send = Callable[[Sequence[tuple[bytes, bytes, Mapping[str, bytes]]]], Awaitable[None]]


async def normalise_batch(batch: Sequence[Envelope], *, emit: Send, dead_letter: Send) -> None:
    """Render each reading as a normalised FHIR Observation and emit it."""
    out: list[tuple[bytes, bytes, Mapping[str, bytes]]] = []
    failed: list[tuple[bytes, bytes, Mapping[str, bytes]]] = []
    for env in batch:
        try:
            observation = to_observation(from_json(env.value))
            out.append((env.key, orjson.dumps(observation), env.headers))
        except Exception as exc:  # noqa: BLE001 - the error policy: any bad record is dead-lettered
            failed.append(_dead_letter(env, exc, stage="normalise"))
    await retry_unavailable(lambda: emit(out), what="emit observations")
    if failed:
        await retry_unavailable(lambda: dead_letter(failed), what="dead-letter")


async def persist_batch(batch: Sequence[Envelope], *, sink: Sink, dead_letter: Send) -> None:
    """Write a batch of Observations; isolate and dead-letter rows the database refuses."""
    rows: list[tuple[Envelope, ObservationRow]] = []
    failed: list[tuple[bytes, bytes, Mapping[str, bytes]]] = []
    for env in batch:
        try:
            rows.append((env, observation_row(env.key.decode(), env.value)))
        except Exception as exc:  # noqa: BLE001 - the error policy: any bad record is dead-lettered
            failed.append(_dead_letter(env, exc, stage="persist"))
    try:
        await retry_unavailable(lambda: sink.write([r for _, r in rows]), what="write batch")
    except psycopg.Error:  # one refused row must not sink the batch: find it
        failed += await _isolate_refused(rows, sink)
    if failed:
        await retry_unavailable(lambda: dead_letter(failed), what="dead-letter")


async def score_batch(batch: Sequence[Envelope], *, scorer: BatchScorer, dead_letter: Send) -> None:
    """Score what a stored batch changed; a batch the scorer cannot handle is dead-lettered."""
    try:
        await retry_unavailable(partial(scorer.score_batch, batch), what="score")
    except Exception as exc:  # noqa: BLE001 - the error policy: never block the stream on a bug
        failed = [_dead_letter(env, exc, stage="score") for env in batch]
        await retry_unavailable(partial(dead_letter, failed), what="dead-letter")


async def run_alert_rules(scorer: AlertRules) -> None:
    """Escalate overdue alerts and raise missing-measurement alerts (time-driven rules)."""
    try:
        await scorer.escalate_overdue()
        await scorer.raise_missing()
    except UnavailableError as exc:
        log.warning("alert rules skipped this round: %s", type(exc).__name__)


async def retry_unavailable(
    action: Callable[[], Awaitable[object]], *, what: str, max_backoff: float = 30.0
) -> None:
    """Run ``action`` until it succeeds, backing off while a service is unavailable."""
    delay = 0.0
    while True:
        try:
            await action()
            return
        except UnavailableError as exc:
            delay = min(max_backoff, max(exc.retry_after, delay * 2 or 0.5))
            log.warning("%s: %s; retrying in %.1f s", what, type(exc).__name__, delay)
            await asyncio.sleep(delay)


async def _isolate_refused(
    rows: Sequence[tuple[Envelope, ObservationRow]], sink: Sink
) -> list[tuple[bytes, bytes, Mapping[str, bytes]]]:
    refused = []
    for env, row in rows:
        try:
            await retry_unavailable(partial(sink.write, [row]), what="write row")
        except psycopg.Error as exc:
            refused.append(_dead_letter(env, exc, stage="persist"))
    return refused


def _dead_letter(
    env: Envelope, error: BaseException, *, stage: str
) -> tuple[bytes, bytes, Mapping[str, bytes]]:
    log.warning(
        "dead-lettering %s/%d@%d at %s: %s",
        env.topic,
        env.partition,
        env.offset,
        stage,
        type(error).__name__,
    )
    headers = dead_letter_headers(
        error=error,
        stage=stage,
        topic=env.topic,
        partition=env.partition,
        offset=env.offset,
        original=env.headers,
    )
    return env.key, env.value, headers
