"""The NEWS2 stage of the worker: after a batch of Observations is stored, (re)score the
affected patients from the database, store the scores and raise alerts.

State lives in the database, not in the worker: each batch reads the affected patients'
readings, settings and recent scores, so a restarted worker or the new owner of a partition
after a rebalance continues exactly where the last commit left off, and a replay recomputes
the same deterministic scores and alert ids (upserts, ``ON CONFLICT``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import orjson
import psycopg
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

import news2
from ingestion.exceptions import DatabaseUnavailableError
from streams import news2_sql as sql
from streams.agents import Envelope, Send, retry_unavailable
from streams.news2_fhir import to_news2_observation
from streams.scoring import (
    AlertDecision,
    PatientContext,
    Reading,
    ScoredSet,
    decide_alerts,
    parameter_of,
    score_sets,
    score_times,
    select_inputs,
)

__all__ = ["NewReading", "News2Scorer", "new_readings"]

log = logging.getLogger(__name__)
Clock = Callable[[], dt.datetime]
Records = list[tuple[bytes, bytes, Mapping[str, bytes]]]


@dataclass(frozen=True, slots=True)
class NewReading:
    """A stored Observation that feeds NEWS2."""

    patient_key: str
    parameter: str
    effective: dt.datetime


def new_readings(batch: Sequence[Envelope]) -> list[NewReading]:
    """The NEWS2 inputs among a batch of normalised Observations (others are ignored)."""
    found = []
    for env in batch:
        try:
            obs = orjson.loads(env.value)
            codes = [c.get("code", "") for c in obs["code"]["coding"]]
            effective = dt.datetime.fromisoformat(obs["effectiveDateTime"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue  # the persist stage has dead-lettered what is not an Observation
        parameters = {parameter_of(c) for c in codes}
        if "85354-9" in codes:
            parameters.add("systolic_bp")
        for parameter in parameters - {None}:
            assert parameter is not None
            found.append(NewReading(env.key.decode(), parameter, effective))
    return found


@dataclass
class _Patient:
    context: PatientContext
    identifier: tuple[str, str]
    readings: dict[str, list[Reading]] = field(default_factory=lambda: defaultdict(list))
    stored_times: list[dt.datetime] = field(default_factory=list)
    latest: list[ScoredSet] = field(default_factory=list)  # newest stored first (at most 2)
    active_level: str | None = None


class News2Scorer:
    """Scores batches, and runs the time-driven alert rules (escalation, missing data)."""

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

    async def score_batch(self, batch: Sequence[Envelope]) -> int:
        """Score what a stored batch changed; return the number of scores written."""
        readings = new_readings(batch)
        if not readings:
            return 0
        now = self._clock()
        try:
            async with self._pool.connection(timeout=5.0) as conn:
                patients = await self._load(conn, readings)
                scores = [s for s in score_sets(_requests(patients, readings)) if s is not None]
                rendered = _render(patients, scores, now)
                await _store_scores(conn, rendered)
                events = await _store_alerts(conn, _decide(patients, scores), now)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise DatabaseUnavailableError(f"database unavailable: {type(exc).__name__}") from exc
        records: Records = [(r.score.patient_key.encode(), r.resource, {}) for r in rendered]
        await retry_unavailable(partial(self._emit_scores, records), what="emit scores")
        await retry_unavailable(partial(self._emit_alerts, events), what="emit alert events")
        return len(scores)

    async def escalate_overdue(self) -> int:
        """Escalate open alerts nobody acknowledged in the organisation's time; return how many."""
        return await self._run_rule(sql.ESCALATE_OVERDUE)

    async def raise_missing(self) -> int:
        """Raise a missing-measurement alert for every patient overdue on their schedule."""
        return await self._run_rule(sql.RAISE_MISSING)

    async def _run_rule(self, statement: str) -> int:
        try:
            async with self._pool.connection(timeout=5.0) as conn:
                cur = await conn.execute(statement, {"now": self._clock()})
                rows = await cur.fetchall()
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise DatabaseUnavailableError(f"database unavailable: {type(exc).__name__}") from exc
        events = [_event_record(event_id, key) for event_id, key in rows]
        await retry_unavailable(partial(self._emit_alerts, events), what="emit alert events")
        return len(rows)

    async def _load(
        self, conn: AsyncConnection[Any], readings: list[NewReading]
    ) -> dict[str, _Patient]:
        keys = sorted({r.patient_key for r in readings})
        cur = await conn.execute(sql.CONTEXTS, {"keys": keys})
        patients = {row[0]: _patient_from_row(row) for row in await cur.fetchall()}
        spans = _spans(patients, readings)
        params = {
            "keys": list(spans),
            "lo": [s[0] for s in spans.values()],
            "hi": [s[1] for s in spans.values()],
        }
        cur = await conn.execute(sql.READINGS, params)
        measured_by: dict[str, tuple[dt.datetime, str]] = {}
        for key, obs_id, code, effective, value, text, organisation in await cur.fetchall():
            reading = _reading(obs_id, code, effective, value, text)
            if reading is not None:
                patients[key].readings[reading.parameter].append(reading)
            if organisation and (key not in measured_by or measured_by[key][0] < effective):
                measured_by[key] = (effective, organisation)
        for key, (_, organisation) in measured_by.items():
            if patients[key].context.organisation is None:
                patients[key].context = replace(patients[key].context, organisation=organisation)
        cur = await conn.execute(sql.SCORE_TIMES, params)
        for key, effective in await cur.fetchall():
            patients[key].stored_times.append(effective)
        cur = await conn.execute(sql.LATEST_SCORES, {"keys": keys})
        for key, effective, level, red_flag, band, total, partial_sum in await cur.fetchall():
            patient = patients[key]
            patient.latest.append(
                _stored_score(patient, effective, level, red_flag, band, total, partial_sum)
            )
        cur = await conn.execute(sql.ACTIVE_ALERTS, {"keys": keys})
        for key, level in await cur.fetchall():
            patients[key].active_level = level
        for patient in patients.values():
            for series in patient.readings.values():
                series.sort(key=lambda r: r.effective)
        return patients


_ACVPU = frozenset("ACVPU")
# SNOMED CT answers for ACVPU, when a sender codes the value instead of writing the letter.
_ACVPU_SNOMED = {
    "248234008": "A",  # mentally alert
    "1104441000000107": "",  # the observable itself is no answer
    "450847001": "V",  # responds to voice
    "450848006": "P",  # responds to pain
    "422768004": "U",  # unresponsive
}


def _patient_from_row(row: tuple[Any, ...]) -> _Patient:
    key, system, value, organisation, scale, oxygen, fresh, context_fresh, policy = row
    context = PatientContext(
        patient_key=key,
        organisation=organisation,
        spo2_scale=int(scale),
        long_term_oxygen=oxygen,
        freshness=dt.timedelta(minutes=int(fresh)),
        context_freshness=dt.timedelta(minutes=int(context_fresh)),
        policy=news2.policy_from_spec(policy),
    )
    return _Patient(context, (system, value))


def _spans(
    patients: Mapping[str, _Patient], readings: list[NewReading]
) -> dict[str, tuple[dt.datetime, dt.datetime]]:
    """Per patient, the time span whose readings and scores the batch can touch."""
    spans: dict[str, tuple[dt.datetime, dt.datetime]] = {}
    for r in readings:
        ctx = patients[r.patient_key].context
        lookback = max(ctx.freshness, ctx.context_freshness)
        lo, hi = r.effective - lookback, r.effective + ctx.window(r.parameter)
        if r.patient_key in spans:
            lo, hi = min(lo, spans[r.patient_key][0]), max(hi, spans[r.patient_key][1])
        spans[r.patient_key] = (lo, hi)
    return spans


def _reading(
    obs_id: str, code: str, effective: dt.datetime, value: float | None, text: str | None
) -> Reading | None:
    parameter = "systolic_bp" if code == "85354-9" else parameter_of(code)
    if parameter is None:
        return None
    if parameter == "consciousness":
        letter = _ACVPU_SNOMED.get(text or "", (text or "").strip().upper())
        return Reading(parameter, effective, letter, obs_id) if letter in _ACVPU else None
    if parameter == "on_oxygen":
        if code == "722742002":
            return Reading(parameter, effective, False, obs_id)
        if value is None:
            return None
        threshold = 0.0 if code == "3151-8" else 21.0  # flow L/min, or concentration %
        return Reading(parameter, effective, value > threshold, obs_id)
    return None if value is None else Reading(parameter, effective, float(value), obs_id)


def _stored_score(
    patient: _Patient,
    effective: dt.datetime,
    level: str,
    red_flag: bool,
    band: str,
    total: int | None,
    partial_sum: int,
) -> ScoredSet:
    return ScoredSet(
        patient_key=patient.context.patient_key,
        effective=effective,
        total=total,
        band=band,
        red_flag=red_flag,
        partial_sum=partial_sum,
        level=level,
        spo2_scale=patient.context.spo2_scale,
        subscores={},
        inputs={},
        organisation=patient.context.organisation,
    )


def _requests(
    patients: Mapping[str, _Patient], readings: list[NewReading]
) -> list[tuple[PatientContext, dt.datetime, Mapping[str, Reading]]]:
    by_patient: dict[str, list[NewReading]] = defaultdict(list)
    for r in readings:
        by_patient[r.patient_key].append(r)
    requests: list[tuple[PatientContext, dt.datetime, Mapping[str, Reading]]] = []
    for key, news in by_patient.items():
        patient = patients[key]
        ctx = patient.context
        new = [(r.effective, ctx.window(r.parameter)) for r in news]
        for at in score_times(new, patient.stored_times):
            requests.append((ctx, at, select_inputs(patient.readings, at, ctx)))
    return requests


def _decide(patients: Mapping[str, _Patient], scores: list[ScoredSet]) -> list[AlertDecision]:
    """Alert decisions per patient, over the scores at or after the newest stored one."""
    by_patient: dict[str, list[ScoredSet]] = defaultdict(list)
    for s in scores:
        by_patient[s.patient_key].append(s)
    decisions: list[AlertDecision] = []
    for key, fresh in by_patient.items():
        patient = patients[key]
        frontier = patient.latest[0].effective if patient.latest else None
        current = sorted(
            (s for s in fresh if frontier is None or s.effective >= frontier),
            key=lambda s: s.effective,
        )
        if not current:
            continue  # only late scores: they correct history but raise nothing now
        timeline = {s.effective: s for s in patient.latest} | {s.effective: s for s in fresh}
        before = [s for t, s in timeline.items() if t < current[0].effective]
        previous = max(before, key=lambda s: s.effective, default=None)
        decisions += decide_alerts(current, previous=previous, active_level=patient.active_level)
    return decisions


async def _store_scores(conn: AsyncConnection[Any], rendered: list[_Rendered]) -> None:
    """Upsert the scores and their Observations: one COPY into a staging table, two inserts."""
    if not rendered:
        return
    await conn.execute(sql.SCORE_STAGING)
    async with conn.cursor().copy(sql.COPY_SCORES) as copy:
        for r in rendered:
            await copy.write_row(_staging_row(r))
    await conn.execute(sql.UPSERT_SCORES, {"now": rendered[0].issued})
    await conn.execute(sql.UPSERT_SCORE_OBSERVATIONS, {"now": rendered[0].issued})


def _staging_row(r: _Rendered) -> tuple[Any, ...]:
    s = r.score
    inputs = {p: {"id": i.id, "effective": i.effective} for p, i in s.inputs.items()}
    return (
        s.patient_key,
        s.effective,
        s.id,
        s.organisation,
        s.total,
        s.band,
        s.red_flag,
        s.partial_sum,
        s.level,
        s.spo2_scale,
        orjson.dumps(dict(s.subscores)).decode(),
        orjson.dumps(inputs).decode(),
        s.oldest_input,
        r.resource.decode(),
    )


@dataclass(frozen=True, slots=True)
class _Rendered:
    """A score with its FHIR Observation, rendered and serialised once."""

    score: ScoredSet
    resource: bytes
    issued: dt.datetime


def _render(
    patients: Mapping[str, _Patient], scores: list[ScoredSet], now: dt.datetime
) -> list[_Rendered]:
    out = []
    for s in scores:
        resource = to_news2_observation(s, patient=patients[s.patient_key].identifier, issued=now)
        out.append(_Rendered(s, orjson.dumps(resource), now))
    return out


async def _store_alerts(
    conn: AsyncConnection[Any], decisions: list[AlertDecision], now: dt.datetime
) -> list[tuple[bytes, bytes, Mapping[str, bytes]]]:
    events = []
    for d in decisions:
        params = {
            "id": d.alert_id,
            "patient_key": d.score.patient_key,
            "organisation": d.score.organisation,
            "level": d.level,
            "reason": d.reason,
            "score_effective": d.score.effective,
            "now": now,
        }
        cur = await conn.execute(
            sql.RAISE_ALERT if d.action == "raise" else sql.UPGRADE_ALERT, params
        )
        row = await cur.fetchone()
        if row is None:
            continue  # a replay, or another alert is already active
        detail = {"reason": d.reason, "score": d.score.id}
        cur = await conn.execute(
            sql.INSERT_EVENT,
            {
                "id": row[0],
                "now": now,
                "type": "raised" if d.action == "raise" else "upgraded",
                "actor": "system",
                "detail": Jsonb(detail),
            },
        )
        event = await cur.fetchone()
        if event is not None:
            events.append(_event_record(event[0], d.score.patient_key))
    return events


def _event_record(event_id: int, patient_key: str) -> tuple[bytes, bytes, Mapping[str, bytes]]:
    return patient_key.encode(), orjson.dumps({"event_id": event_id}), {}
