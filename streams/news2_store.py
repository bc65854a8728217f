"""The NEWS2 stage's database side: read settings, open alerts and history; store scores and
alerts. Keyword-only functions over one connection; the caller owns the transaction."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

import news2
from ingestion.news2_inputs import NEWS2_CODE, input_codes
from streams import news2_sql as sql
from streams.news2_sets import stored_reading
from streams.scoring import AlertDecision, PatientContext, Reading, ScoredSet
from streams.sinks import JsonbTextDumper, UuidDumper

__all__ = [
    "History",
    "Rendered",
    "Settings",
    "Span",
    "load_history",
    "load_settings",
    "store_alerts",
    "store_scores",
]

Span = tuple[dt.datetime, dt.datetime | None]  # from, until (None: no end)
_CODES = input_codes()


@dataclass(frozen=True, slots=True)
class Settings:
    """What the batch's patients are now: settings, identifier and open alert level."""

    contexts: dict[str, PatientContext]
    identifiers: dict[str, tuple[str, str]]
    active: dict[str, str]


@dataclass(frozen=True, slots=True)
class History:
    """Stored readings and scores of some patients in their spans."""

    readings: dict[str, list[tuple[Reading, str | None]]]  # with the measuring organisation
    scores: dict[str, list[ScoredSet]]


@dataclass(frozen=True, slots=True)
class Rendered:
    """A score with its FHIR Observation, rendered and serialised once."""

    score: ScoredSet
    resource: bytes
    issued: dt.datetime


async def load_settings(*, conn: AsyncConnection[Any], keys: Sequence[str]) -> Settings:
    """The settings, identifiers and open NEWS2 alert levels of these patients."""
    cur = await conn.execute(sql.CONTEXTS, {"keys": list(keys)})
    contexts, identifiers, active = {}, {}, {}
    policies: dict[bytes, news2.EscalationPolicy] = {}
    for (
        key,
        org,
        scale,
        oxygen,
        fresh,
        ctx_fresh,
        policy,
        system,
        value,
        level,
    ) in await cur.fetchall():
        spec = orjson.dumps(policy, option=orjson.OPT_SORT_KEYS)
        if spec not in policies:
            policies[spec] = news2.policy_from_spec(policy)
        contexts[key] = PatientContext(
            patient_key=key,
            organisation=org,
            spo2_scale=int(scale),
            long_term_oxygen=oxygen,
            freshness=dt.timedelta(minutes=int(fresh)),
            context_freshness=dt.timedelta(minutes=int(ctx_fresh)),
            policy=policies[spec],
        )
        identifiers[key] = (system, value)
        if level is not None:
            active[key] = level
    return Settings(contexts, identifiers, active)


async def load_history(
    *, conn: AsyncConnection[Any], spans: Mapping[str, Span], first: Sequence[str]
) -> History:
    """Readings and scores in each patient's span, and the newest two scores of ``first``."""
    readings: dict[str, list[tuple[Reading, str | None]]] = {k: [] for k in spans}
    scores: dict[str, list[ScoredSet]] = {k: [] for k in spans}
    if not spans:
        return History(readings, scores)
    params = {
        "keys": list(spans),
        "lo": [lo for lo, _ in spans.values()],
        "hi": [hi for _, hi in spans.values()],
        "codes": _CODES,
        "first": list(first),
    }
    cur = await conn.execute(sql.READINGS, params)
    for key, obs_id, code, effective, value, systolic, acvpu, oxygen, org in await cur.fetchall():
        reading = stored_reading(
            obs_id, code, effective, value=value, systolic=systolic, acvpu=acvpu, on_oxygen=oxygen
        )
        if reading is not None:
            readings[key].append((reading, org))
    cur = await conn.execute(sql.SCORES, params)
    for (
        key,
        effective,
        level,
        red_flag,
        band,
        total,
        partial_sum,
        scale,
        org,
    ) in await cur.fetchall():
        scores[key].append(
            ScoredSet(
                patient_key=key,
                effective=effective,
                total=total,
                band=band,
                red_flag=red_flag,
                partial_sum=partial_sum,
                level=level,
                spo2_scale=scale,
                subscores={},
                inputs={},
                organisation=org,
            )
        )
    return History(readings, scores)


async def store_scores(*, conn: AsyncConnection[Any], rendered: Sequence[Rendered]) -> None:
    """Upsert the scores and their Observations: one COPY into a staging table, two inserts."""
    if not rendered:
        return
    await conn.execute(sql.SCORE_STAGING)
    async with conn.cursor() as cur:
        # Binary, with the JSON texts sent as they are: a text COPY escapes every resource.
        cur.adapters.register_dumper(None, UuidDumper)
        cur.adapters.register_dumper(None, JsonbTextDumper)
        async with cur.copy(sql.COPY_SCORES) as copy:
            copy.set_types(sql.SCORE_TYPES)
            for r in rendered:
                await copy.write_row(_staging_row(r))
    params = {"now": rendered[0].issued, "news2_code": NEWS2_CODE}
    await conn.execute(sql.UPSERT_SCORES, params)
    await conn.execute(sql.UPSERT_SCORE_OBSERVATIONS, params)


def _staging_row(r: Rendered) -> tuple[Any, ...]:
    s = r.score
    inputs = {p: {"id": i.id, "effective": i.effective} for p, i in s.inputs.items()}
    total = None if s.total is None else int(s.total)
    return (
        s.patient_key,
        s.effective,
        s.id,
        s.organisation,
        total,
        s.band,
        s.red_flag,
        s.partial_sum,
        s.level,
        s.spo2_scale,
        orjson.dumps(dict(s.subscores)),
        orjson.dumps(inputs),
        s.oldest_input,
        r.resource,
    )


async def store_alerts(
    *, conn: AsyncConnection[Any], decisions: Sequence[AlertDecision], now: dt.datetime
) -> list[tuple[int, str]]:
    """Raise or upgrade alerts; return the (event id, patient key) of each event recorded."""
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
        cur = await conn.execute(
            sql.INSERT_EVENT,
            {
                "id": row[0],
                "now": now,
                "type": "raised" if d.action == "raise" else "upgraded",
                "actor": "system",
                "detail": Jsonb({"reason": d.reason, "score": d.score.id}),
            },
        )
        event = await cur.fetchone()
        if event is not None:
            events.append((int(event[0]), d.score.patient_key))
    return events
