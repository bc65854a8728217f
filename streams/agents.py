"""The work of the streams worker, one batch at a time, free of Kafka so it is easy to test.

A batch of readings (canonical Measurements with the Observations the edge rendered) is decoded
once, stored as rows, and scored from those rows: nothing is rendered again or parsed back.

Error policy (one function, `policy_for`, applied by `guarded` at every stage): a service that
is unavailable (`UnavailableError`, or a database error that means the server is down or gone,
in case a layer did not wrap it) is retried by `retry_unavailable` with back-off (at most
5 s apart, so the worker is back within seconds of the database) while consumption pauses: the
lane takes no new batch, and nothing is dead-lettered because a service is down; a
deployment that cannot work (the schema is missing or not migrated, no privilege) stops the
worker, because dead-lettering every record would only hide it; anything else is bad data or a
bug in one record: the batch is split until the record is found, and it is dead-lettered with
the stage, the error and the original bytes while the rest moves on. Nothing is dropped
without a record, and offsets are committed only after the batch returned.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol, TypeVar

import psycopg

from ingestion.exceptions import UnavailableError
from ingestion.measurement import from_record
from streams.deadletter import dead_letter_headers
from streams.outages import database_unavailable
from streams.sinks import ObservationRow, Sink, measurement_row

__all__ = [
    "AlertRules",
    "BatchScorer",
    "Envelope",
    "Policy",
    "Send",
    "Stored",
    "guarded",
    "policy_for",
    "process_batch",
    "retry_unavailable",
    "run_alert_rules",
    "score_stored",
    "store_batch",
]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Envelope:
    """One consumed Kafka record, independent of the client library."""

    key: bytes
    value: bytes
    headers: Mapping[str, bytes]
    topic: str
    partition: int
    offset: int


Stored = tuple[Envelope, ObservationRow]


class BatchScorer(Protocol):
    """Port: the NEWS2 stage."""

    async def score_batch(self, stored: Sequence[Stored]) -> int:
        """Score what the stored batch changed."""


class AlertRules(Protocol):
    """Port: the time-driven alert rules."""

    async def escalate_overdue(self) -> int:
        """Escalate unacknowledged alerts."""

    async def raise_missing(self) -> int:
        """Raise missing-measurement alerts."""


# Send records to a topic and return once the broker acknowledged all of them.
Send = Callable[[Sequence[tuple[bytes, bytes, Mapping[str, bytes]]]], Awaitable[None]]


class Policy(enum.Enum):
    """What a failure does to the stream."""

    RETRY = "retry"
    DEAD_LETTER = "dead-letter"
    STOP = "stop"


# A database without the schema the worker was built for: no record is to blame.
_BROKEN_DEPLOYMENT = (
    psycopg.errors.UndefinedTable,
    psycopg.errors.UndefinedColumn,
    psycopg.errors.UndefinedFunction,
    psycopg.errors.InsufficientPrivilege,
)


def policy_for(error: BaseException) -> Policy:
    """The error policy: retry an unavailable service, stop on a broken deployment, else
    dead-letter the record that failed."""
    if isinstance(error, UnavailableError) or database_unavailable(error):
        return Policy.RETRY
    if isinstance(error, _BROKEN_DEPLOYMENT):
        return Policy.STOP
    return Policy.DEAD_LETTER


async def process_batch(
    batch: Sequence[Envelope], *, sink: Sink, scorer: BatchScorer, dead_letter: Send
) -> None:
    """Store a batch of readings, then score what it changed."""
    stored = await store_batch(batch, sink=sink, dead_letter=dead_letter)
    await score_stored(stored, scorer=scorer, dead_letter=dead_letter)


async def store_batch(batch: Sequence[Envelope], *, sink: Sink, dead_letter: Send) -> list[Stored]:
    """Decode a batch of readings and store them; return what was stored, to be scored."""
    decoded: list[Stored] = []
    failed = []
    for env in batch:
        try:
            decoded.append((env, measurement_row(*from_record(env.value))))
        except Exception as exc:
            if policy_for(exc) is Policy.STOP:
                raise
            failed.append(_dead_letter(env, exc, stage="decode"))
    if failed:
        await retry_unavailable(partial(dead_letter, failed), what="dead-letter")
    return await guarded(_write(sink), decoded, stage="persist", dead_letter=dead_letter)


async def score_stored(
    stored: Sequence[Stored], *, scorer: BatchScorer, dead_letter: Send
) -> list[Stored]:
    """Score what a stored batch changed; return what was scored (not dead-lettered)."""
    return await guarded(scorer.score_batch, stored, stage="score", dead_letter=dead_letter)


def _write(sink: Sink) -> Callable[[Sequence[Stored]], Awaitable[None]]:
    async def write(items: Sequence[Stored]) -> None:
        await sink.write([row for _, row in items])

    return write


async def guarded(
    action: Callable[[Sequence[tuple[Envelope, T]]], Awaitable[object]],
    items: Sequence[tuple[Envelope, T]],
    *,
    stage: str,
    dead_letter: Send,
) -> list[tuple[Envelope, T]]:
    """Run a stage on a batch under the error policy; return the items it succeeded on.

    A failing batch is split in halves until the failing records are found, so one bad record
    costs a few extra calls, not the batch.
    """
    if not items:
        return []
    try:
        await retry_unavailable(partial(action, items), what=stage)
        return list(items)
    except Exception as exc:
        if policy_for(exc) is Policy.STOP:
            raise
        if len(items) == 1:
            record = _dead_letter(items[0][0], exc, stage=stage)
            await retry_unavailable(partial(dead_letter, [record]), what="dead-letter")
            return []
    half = len(items) // 2
    first = await guarded(action, items[:half], stage=stage, dead_letter=dead_letter)
    return first + await guarded(action, items[half:], stage=stage, dead_letter=dead_letter)


async def run_alert_rules(scorer: AlertRules) -> None:
    """Escalate overdue alerts and raise missing-measurement alerts (time-driven rules).

    A failure skips this round (the next comes soon), whether the database is unavailable or a
    query failed: the timer must not die with it. Logged by type only: a message may quote data.
    """
    try:
        await scorer.escalate_overdue()
        await scorer.raise_missing()
    except (UnavailableError, psycopg.Error) as exc:
        log.warning("alert rules skipped this round: %s", type(exc).__name__)


async def retry_unavailable(
    action: Callable[[], Awaitable[object]], *, what: str, max_backoff: float = 5.0
) -> None:
    """Run ``action`` until it succeeds, backing off while a service is unavailable (what
    `policy_for` says to retry); any other error is raised."""
    delay = 0.0
    while True:
        try:
            await action()
            return
        except Exception as exc:
            if policy_for(exc) is not Policy.RETRY:
                raise
            wanted = exc.retry_after if isinstance(exc, UnavailableError) else 1.0
            delay = min(max_backoff, max(wanted, delay * 2 or 0.5))
            log.warning("%s: %s; retrying in %.1f s", what, type(exc).__name__, delay)
            await asyncio.sleep(delay)


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
