"""The NEWS2 stage of the worker: after a batch of readings is stored, (re)score the patients it
touched, store the scores and raise alerts; and the time-driven alert rules.

The stage keeps a `PatientState` per patient it owns (`streams.news2_sets`), loaded from the
database the first time the patient is seen after its partition was assigned, and dropped when
the partition is revoked (`forget`): the database stays the truth, so a restart or a rebalance
needs no state transfer, and a replay recomputes the same deterministic scores and alert ids
(upserts, ``ON CONFLICT``). Settings and open alerts are read with each batch, in one query,
because people change them through the API; so a settings change reaches the next batch.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any

import orjson
import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ingestion.exceptions import DatabaseUnavailableError
from ingestion.news2_inputs import NEWS2_CODE
from streams import news2_sql as sql
from streams.agents import Envelope, Send, retry_unavailable
from streams.news2_fhir import to_news2_observation
from streams.news2_sets import (
    NewReading,
    PatientState,
    alert_decisions,
    lookback,
    score_requests,
    stored_reading,
)
from streams.news2_store import (
    Rendered,
    Span,
    load_history,
    load_settings,
    store_alerts,
    store_scores,
)
from streams.outages import database_unavailable
from streams.scoring import PatientContext, ScoredSet, score_sets
from streams.sinks import ObservationRow

__all__ = ["News2Scorer", "new_readings"]

Clock = Callable[[], dt.datetime]
Records = list[tuple[bytes, bytes, Mapping[str, bytes]]]


def new_readings(stored: Sequence[tuple[Envelope, ObservationRow]]) -> list[NewReading]:
    """The NEWS2 inputs among a batch of stored rows (others are ignored)."""
    found = []
    for env, row in stored:
        reading = stored_reading(
            row.id,
            row.code,
            row.effective,
            value=row.value,
            systolic=row.systolic,
            acvpu=row.acvpu,
            on_oxygen=row.on_oxygen,
        )
        if reading is not None:
            found.append(NewReading(row.patient_key, env.partition, reading, row.organisation))
    return found


class News2Scorer:
    """Scores batches of stored readings, and runs the time-driven alert rules."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        emit_scores: Send,
        emit_alerts: Send,
        clock: Clock = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._pool = pool
        self._emit_scores = emit_scores
        self._emit_alerts = emit_alerts
        self._clock = clock
        self._states: dict[str, PatientState] = {}

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop the state of the patients on these partitions (revoked, or assigned anew)."""
        gone = set(partitions)
        self._states = {k: s for k, s in self._states.items() if s.partition not in gone}

    async def score_batch(self, stored: Sequence[tuple[Envelope, ObservationRow]]) -> int:
        """Score what a stored batch changed; return the number of scores written."""
        news = new_readings(stored)
        if not news:
            return 0
        keys = sorted({n.patient_key for n in news})
        try:
            rendered, events = await self._score(news, keys, self._clock())
        except (psycopg.OperationalError, PoolTimeout) as exc:
            self._drop(keys)  # what was loaded may not match what was stored: load it again
            if not database_unavailable(exc):
                raise
            raise DatabaseUnavailableError(f"database unavailable: {type(exc).__name__}") from exc
        except BaseException:
            self._drop(keys)  # what was loaded may not match what was stored: load it again
            raise
        records: Records = [(r.score.patient_key.encode(), r.resource, {}) for r in rendered]
        await retry_unavailable(partial(self._emit_scores, records), what="emit scores")
        alerts = [_event_record(event_id, key) for event_id, key in events]
        await retry_unavailable(partial(self._emit_alerts, alerts), what="emit alert events")
        return len(rendered)

    async def _score(
        self, news: list[NewReading], keys: list[str], now: dt.datetime
    ) -> tuple[list[Rendered], list[tuple[int, str]]]:
        async with self._pool.connection(timeout=5.0) as conn:
            settings = await load_settings(conn=conn, keys=keys)
            states = await self._load(conn, news, settings.contexts)
            for n in news:
                states[n.patient_key].add_readings([n.reading])
                states[n.patient_key].saw_organisation(n.reading.effective, n.organisation)
            contexts = {k: states[k].context(settings.contexts[k]) for k in keys}
            requests = score_requests(states, contexts, news)
            scores = [s for s in score_sets(requests) if s is not None]
            rendered = [_render(s, settings.identifiers[s.patient_key], now) for s in scores]
            decisions = alert_decisions(states, settings.active, scores)
            await store_scores(conn=conn, rendered=rendered)
            events = await store_alerts(conn=conn, decisions=decisions, now=now)
        self._remember(states, contexts, scores)  # committed: the scores are stored
        return rendered, events

    async def _load(
        self,
        conn: AsyncConnection[Any],
        news: list[NewReading],
        contexts: Mapping[str, PatientContext],
    ) -> dict[str, PatientState]:
        """The states of the batch's patients, loading what the state does not cover yet."""
        needed: dict[str, tuple[dt.datetime, int]] = {}
        for n in news:
            since = n.reading.effective - lookback(contexts[n.patient_key])
            if n.patient_key in needed:
                since = min(since, needed[n.patient_key][0])
            needed[n.patient_key] = (since, n.partition)
        spans: dict[str, Span] = {}
        first: list[str] = []
        for key, (since, partition) in needed.items():
            state = self._states.get(key)
            if state is None or state.partition != partition:
                self._states[key] = PatientState(partition, covered_from=since)
                spans[key] = (since, None)
                first.append(key)
            elif since < state.covered_from:
                spans[key] = (since, state.covered_from)
                state.covered_from = since
        history = await load_history(conn=conn, spans=spans, first=first)
        for key, found in history.readings.items():
            state = self._states[key]
            state.add_readings(r for r, _ in found)
            for reading, organisation in found:
                state.saw_organisation(reading.effective, organisation)
            state.add_scores(history.scores[key])
        return {key: self._states[key] for key in needed}

    def _remember(
        self,
        states: Mapping[str, PatientState],
        contexts: Mapping[str, PatientContext],
        scores: Sequence[ScoredSet],
    ) -> None:
        for s in scores:
            states[s.patient_key].add_scores([s])
        for key, state in states.items():
            newest = max(
                (series[-1].effective for series in state.readings.values() if series),
                default=None,
            )
            if newest is not None:
                state.forget_before(newest - 2 * lookback(contexts[key]))

    def _drop(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._states.pop(key, None)

    async def escalate_overdue(self) -> int:
        """Escalate open alerts nobody acknowledged in the organisation's time; return how many."""
        return await self._run_rule(sql.ESCALATE_OVERDUE)

    async def raise_missing(self) -> int:
        """Raise a missing-measurement alert for every patient overdue on their schedule."""
        return await self._run_rule(sql.RAISE_MISSING)

    async def _run_rule(self, statement: str) -> int:
        try:
            async with self._pool.connection(timeout=5.0) as conn:
                cur = await conn.execute(
                    statement, {"now": self._clock(), "news2_code": NEWS2_CODE}
                )
                rows = await cur.fetchall()
        except (psycopg.OperationalError, PoolTimeout) as exc:
            if not database_unavailable(exc):
                raise
            raise DatabaseUnavailableError(f"database unavailable: {type(exc).__name__}") from exc
        events = [_event_record(event_id, key) for event_id, key in rows]
        await retry_unavailable(partial(self._emit_alerts, events), what="emit alert events")
        return len(rows)


def _render(score: ScoredSet, patient: tuple[str, str], now: dt.datetime) -> Rendered:
    resource = to_news2_observation(score, patient=patient, issued=now)
    return Rendered(score, orjson.dumps(resource), now)


def _event_record(event_id: int, patient_key: str) -> tuple[bytes, bytes, Mapping[str, bytes]]:
    return patient_key.encode(), orjson.dumps({"event_id": event_id}), {}
