"""The pages' own database questions (what the API's JSON does not already answer), keyword-only
over an async connection as in `api.queries`. Access is decided before any of these is asked."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from ingestion.panels import stored_component

__all__ = [
    "active_alerts",
    "alert_history",
    "latest_alert_event",
    "latest_score_change",
    "latest_subscores",
    "raw_series",
    "recent_readings",
    "score_history",
    "settings_history",
]


async def latest_subscores(
    *, conn: AsyncConnection[Any], keys: Sequence[str]
) -> dict[str, dict[str, int | None]]:
    """The sub-scores of each patient's latest NEWS2 score."""
    cur = await conn.execute(
        "SELECT DISTINCT ON (patient_key) patient_key::text, subscores FROM news2_scores"
        " WHERE patient_key = ANY(%s::uuid[]) ORDER BY patient_key, effective DESC",
        (list(keys),),
    )
    return {row[0]: row[1] for row in await cur.fetchall()}


async def active_alerts(
    *, conn: AsyncConnection[Any], organisations: Sequence[str]
) -> list[dict[str, Any]]:
    """Unresolved alerts of the organisations, open ones first, newest first."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        """
        SELECT a.id::text AS id, a.patient_key::text AS patient_key, p.identifier_value,
               a.kind, a.level, a.status, a.reason, a.raised_at, a.acknowledged_by,
               a.acknowledged_at
        FROM alerts a JOIN patients p USING (patient_key)
        WHERE a.status <> 'resolved' AND a.organisation = ANY(%s::text[])
        ORDER BY (a.status = 'open') DESC, a.raised_at DESC LIMIT 1000
        """,
        (list(organisations),),
    )
    return await cur.fetchall()


async def latest_alert_event(*, conn: AsyncConnection[Any]) -> int:
    """The id of the newest alert event (where a fresh board's live stream starts)."""
    cur = await conn.execute("SELECT coalesce(max(id), 0) FROM alert_events")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def latest_score_change(
    *, conn: AsyncConnection[Any], organisations: Sequence[str]
) -> dt.datetime | None:
    """When a score of the organisations' patients was last computed (the board's live tick)."""
    cur = await conn.execute(
        "SELECT max(computed_at) FROM news2_scores WHERE organisation = ANY(%s::text[])",
        (list(organisations),),
    )
    row = await cur.fetchone()
    return row[0] if row else None


async def raw_series(
    *, conn: AsyncConnection[Any], keys: Sequence[str], code: str, since: dt.datetime
) -> list[tuple[dt.datetime, float]]:
    """Every value of one code since ``since``, oldest first; of a component code (systolic
    of blood pressure) also the values of that component in the panels."""
    params = {"keys": list(keys), "code": code, "since": since}
    query: sql.Composable = sql.SQL(
        "SELECT effective, value FROM observations WHERE patient_key = ANY(%(keys)s::uuid[])"
        " AND code = %(code)s AND effective >= %(since)s AND value IS NOT NULL"
    )
    component = stored_component(None, code)
    if component is not None:
        params["panel"] = component.panel
        query = sql.SQL(
            "{} UNION ALL SELECT effective, {c} FROM observations"
            " WHERE patient_key = ANY(%(keys)s::uuid[]) AND code = %(panel)s"
            " AND effective >= %(since)s AND {c} IS NOT NULL"
        ).format(query, c=sql.Identifier(component.column))
    cur = await conn.execute(sql.SQL("{} ORDER BY 1 LIMIT 5000").format(query), params)
    return [(r[0], float(r[1])) for r in await cur.fetchall()]


async def score_history(
    *, conn: AsyncConnection[Any], keys: Sequence[str], since: dt.datetime
) -> list[dict[str, Any]]:
    """The NEWS2 scores since ``since``, oldest first, with sub-scores and inputs."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT effective, total, band, red_flag, partial_sum, level, spo2_scale, subscores,"
        " inputs FROM news2_scores WHERE patient_key = ANY(%s::uuid[]) AND effective >= %s"
        " ORDER BY effective LIMIT 5000",
        (list(keys), since),
    )
    return await cur.fetchall()


async def input_values(
    *, conn: AsyncConnection[Any], keys: Sequence[str], ids: Sequence[str]
) -> dict[str, tuple[str, float | None, list[Any] | None]]:
    """The code, value and components of the readings ``ids`` (the inputs of scores)."""
    cur = await conn.execute(
        "SELECT id::text, code, value, components FROM observations"
        " WHERE patient_key = ANY(%s::uuid[]) AND id = ANY(%s::uuid[])",
        (list(keys), list(ids)),
    )
    return {r[0]: (r[1], r[2], r[3]) for r in await cur.fetchall()}


async def alert_history(
    *, conn: AsyncConnection[Any], keys: Sequence[str], limit: int = 50
) -> list[dict[str, Any]]:
    """The patient's alerts, newest first, each with its events (who did what, when)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        """
        SELECT a.id::text AS id, a.kind, a.level, a.status, a.reason, a.raised_at,
               a.resolution_note, a.organisation,
               coalesce((SELECT jsonb_agg(jsonb_build_object('type', e.type, 'actor', e.actor,
                                 'at', e.at) ORDER BY e.id)
                         FROM alert_events e WHERE e.alert_id = a.id), '[]') AS events
        FROM alerts a WHERE a.patient_key = ANY(%s::uuid[])
        ORDER BY a.raised_at DESC LIMIT %s
        """,
        (list(keys), limit),
    )
    return await cur.fetchall()


async def settings_history(
    *, conn: AsyncConnection[Any], keys: Sequence[str]
) -> list[dict[str, Any]]:
    """Every version of the patient's NEWS2 settings, newest first."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT settings, set_by, set_at FROM patient_settings_history"
        " WHERE patient_key = ANY(%s::uuid[]) ORDER BY set_at DESC, id DESC LIMIT 100",
        (list(keys),),
    )
    return await cur.fetchall()


async def recent_readings(
    *, conn: AsyncConnection[Any], keys: Sequence[str], limit: int = 50
) -> list[dict[str, Any]]:
    """The newest measurements (no NEWS2 scores), with when each was received."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT code, effective, value, unit, components, received FROM observations"
        " WHERE patient_key = ANY(%s::uuid[]) AND source <> 'news2'"
        " ORDER BY effective DESC LIMIT %s",
        (list(keys), limit),
    )
    return await cur.fetchall()
