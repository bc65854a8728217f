"""The API's questions about NEWS2: settings, scores, alerts and the nurse's board.

Keyword-only functions over an async connection, as in `api.queries`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

__all__ = [
    "ALERT_COLUMNS",
    "acknowledge_alert",
    "alert_events_after",
    "event_id_range",
    "get_alert",
    "get_patient_settings",
    "list_alerts",
    "organisation_board",
    "put_organisation_settings",
    "put_patient_settings",
    "resolve_alert",
    "score_inputs",
]

ALERT_COLUMNS = """
a.id::text AS id, a.patient_key::text AS patient_key, p.identifier_system, p.identifier_value,
a.organisation, a.kind, a.level, a.status, a.reason, a.score_effective, a.raised_at,
a.acknowledged_by, a.acknowledged_at, a.resolved_by, a.resolved_at, a.resolution_note,
a.escalated_at
"""


async def put_patient_settings(
    *,
    conn: AsyncConnection[Any],
    patient_key: str,
    identifier: tuple[str, str],
    settings: dict[str, Any],
    set_by: str,
    now: dt.datetime,
) -> None:
    """Store a patient's NEWS2 settings and keep the previous versions."""
    await conn.execute(
        """
        INSERT INTO patients (patient_key, identifier_system, identifier_value)
        VALUES (%s, %s, %s) ON CONFLICT DO NOTHING
        """,
        (patient_key, *identifier),
    )
    columns = (
        "organisation",
        "spo2_scale",
        "long_term_oxygen",
        "freshness_minutes",
        "context_freshness_minutes",
        "expected_interval_minutes",
    )
    values = {c: settings.get(c) for c in columns}
    values["spo2_scale"] = values["spo2_scale"] or 1
    await conn.execute(
        """
        INSERT INTO patient_settings (patient_key, organisation, spo2_scale, long_term_oxygen,
            freshness_minutes, context_freshness_minutes, expected_interval_minutes,
            set_by, set_at)
        VALUES (%(key)s, %(organisation)s, %(spo2_scale)s, %(long_term_oxygen)s,
            %(freshness_minutes)s, %(context_freshness_minutes)s,
            %(expected_interval_minutes)s, %(set_by)s, %(now)s)
        ON CONFLICT (patient_key) DO UPDATE SET
            organisation = EXCLUDED.organisation, spo2_scale = EXCLUDED.spo2_scale,
            long_term_oxygen = EXCLUDED.long_term_oxygen,
            freshness_minutes = EXCLUDED.freshness_minutes,
            context_freshness_minutes = EXCLUDED.context_freshness_minutes,
            expected_interval_minutes = EXCLUDED.expected_interval_minutes,
            set_by = EXCLUDED.set_by, set_at = EXCLUDED.set_at
        """,
        {**values, "key": patient_key, "set_by": set_by, "now": now},
    )
    await conn.execute(
        "INSERT INTO patient_settings_history (patient_key, settings, set_by, set_at)"
        " VALUES (%s, %s, %s, %s)",
        (patient_key, Jsonb(values), set_by, now),
    )
    if values["organisation"] is not None:
        await _assign_unplaced_alerts(conn, patient_key, values["organisation"], set_by, now)


async def _assign_unplaced_alerts(
    conn: AsyncConnection[Any], patient_key: str, organisation: str, by: str, now: dt.datetime
) -> None:
    """Give the patient's alerts raised before any organisation was known that organisation,
    with an event, so that they reach its alert list and live stream."""
    cur = await conn.execute(
        "UPDATE alerts SET organisation = %s WHERE patient_key = %s AND organisation IS NULL"
        " RETURNING id::text",
        (organisation, patient_key),
    )
    for (alert_id,) in await cur.fetchall():
        await _event(conn, alert_id, "assigned", by, now, {"organisation": organisation})


async def get_patient_settings(
    *, conn: AsyncConnection[Any], patient_key: str
) -> dict[str, Any] | None:
    """A patient's current NEWS2 settings, or None when none were set."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        """
        SELECT organisation, spo2_scale, long_term_oxygen, freshness_minutes,
               context_freshness_minutes, expected_interval_minutes, set_by, set_at
        FROM patient_settings WHERE patient_key = %s
        """,
        (patient_key,),
    )
    return await cur.fetchone()


async def put_organisation_settings(
    *,
    conn: AsyncConnection[Any],
    org_id: str,
    settings: dict[str, Any],
    set_by: str,
    now: dt.datetime,
) -> None:
    """Store an organisation's NEWS2 settings (policy, freshness, acknowledgement time)."""
    await conn.execute(
        """
        INSERT INTO organisations (org_id, name, policy, freshness_minutes,
            context_freshness_minutes, ack_timeout_minutes, updated_by, updated_at)
        VALUES (%(org)s, %(name)s, %(policy)s, %(fresh)s, %(context)s, %(ack)s, %(by)s, %(now)s)
        ON CONFLICT (org_id) DO UPDATE SET
            name = coalesce(EXCLUDED.name, organisations.name), policy = EXCLUDED.policy,
            freshness_minutes = EXCLUDED.freshness_minutes,
            context_freshness_minutes = EXCLUDED.context_freshness_minutes,
            ack_timeout_minutes = EXCLUDED.ack_timeout_minutes,
            updated_by = EXCLUDED.updated_by, updated_at = EXCLUDED.updated_at
        """,
        {
            "org": org_id,
            "name": settings.get("name"),
            "policy": Jsonb(settings["policy"]),
            "fresh": settings["freshness_minutes"],
            "context": settings["context_freshness_minutes"],
            "ack": settings["ack_timeout_minutes"],
            "by": set_by,
            "now": now,
        },
    )


async def list_alerts(
    *,
    conn: AsyncConnection[Any],
    organisations: Sequence[str] | None,
    status: str | None,
    level: str | None,
    patient_key: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Alerts matching the filters, newest first."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        f"""
        SELECT {ALERT_COLUMNS}
        FROM alerts a JOIN patients p ON p.patient_key = a.patient_key
        WHERE (%(all)s OR a.organisation = ANY(%(orgs)s::text[]))
          AND (%(status)s::text IS NULL OR a.status = %(status)s::text)
          AND (%(level)s::text IS NULL OR a.level = %(level)s::text)
          AND (%(patient)s::uuid IS NULL OR a.patient_key = %(patient)s::uuid)
        ORDER BY a.raised_at DESC, a.id
        LIMIT %(limit)s
        """,  # noqa: S608 - the only interpolation is a constant column list
        {
            "all": organisations is None,
            "orgs": list(organisations or ()),
            "status": status,
            "level": level,
            "patient": patient_key,
            "limit": limit,
        },
    )
    return await cur.fetchall()


async def get_alert(*, conn: AsyncConnection[Any], alert_id: str) -> dict[str, Any] | None:
    """One alert, or None."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        f"SELECT {ALERT_COLUMNS} FROM alerts a JOIN patients p USING (patient_key)"  # noqa: S608
        " WHERE a.id = %s",
        (alert_id,),
    )
    return await cur.fetchone()


async def acknowledge_alert(
    *, conn: AsyncConnection[Any], alert_id: str, by: str, now: dt.datetime
) -> bool:
    """Acknowledge an open alert; False when it is not open."""
    cur = await conn.execute(
        """
        UPDATE alerts SET status = 'acknowledged', acknowledged_by = %s, acknowledged_at = %s
        WHERE id = %s AND status = 'open' RETURNING id
        """,
        (by, now, alert_id),
    )
    if await cur.fetchone() is None:
        return False
    await _event(conn, alert_id, "acknowledged", by, now, None)
    return True


async def resolve_alert(
    *, conn: AsyncConnection[Any], alert_id: str, by: str, note: str, now: dt.datetime
) -> bool:
    """Resolve an open or acknowledged alert with the nurse's note; False when already resolved."""
    cur = await conn.execute(
        """
        UPDATE alerts SET status = 'resolved', resolved_by = %s, resolved_at = %s,
            resolution_note = %s,
            acknowledged_by = coalesce(acknowledged_by, %s),
            acknowledged_at = coalesce(acknowledged_at, %s)
        WHERE id = %s AND status <> 'resolved' RETURNING id
        """,
        (by, now, note, by, now, alert_id),
    )
    if await cur.fetchone() is None:
        return False
    await _event(conn, alert_id, "resolved", by, now, {"note": note})
    return True


async def _event(
    conn: AsyncConnection[Any],
    alert_id: str,
    kind: str,
    actor: str,
    now: dt.datetime,
    detail: dict[str, Any] | None,
) -> None:
    await conn.execute(
        """
        INSERT INTO alert_events (alert_id, at, type, actor, level, status, detail)
        SELECT id, %s, %s, %s, level, status, %s FROM alerts WHERE id = %s
        """,
        (now, kind, actor, Jsonb(detail) if detail is not None else None, alert_id),
    )


async def alert_events_after(
    *,
    conn: AsyncConnection[Any],
    after: int,
    organisations: Sequence[str] | None,
    skip: list[int] | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """Alert events with an id above ``after`` (the SSE resume point) except ``skip``."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        f"""
        SELECT e.id AS event_id, e.type AS event, e.at AS event_at, e.actor AS event_actor,
               e.level AS event_level, e.status AS event_status, {ALERT_COLUMNS}
        FROM alert_events e
        JOIN alerts a ON a.id = e.alert_id
        JOIN patients p ON p.patient_key = a.patient_key
        WHERE e.id > %(after)s AND NOT (e.id = ANY(%(skip)s::bigint[]))
          AND (%(all)s OR a.organisation = ANY(%(orgs)s::text[]))
        ORDER BY e.id
        LIMIT %(limit)s
        """,  # noqa: S608 - the only interpolation is a constant column list
        {
            "after": after,
            "skip": skip or [],
            "all": organisations is None,
            "orgs": list(organisations or ()),
            "limit": limit,
        },
    )
    return await cur.fetchall()


async def event_id_range(*, conn: AsyncConnection[Any]) -> tuple[int | None, int | None]:
    """The oldest and newest alert event ids kept (None, None when there are none)."""
    cur = await conn.execute("SELECT min(id), max(id) FROM alert_events")
    row = await cur.fetchone()
    return (row[0], row[1]) if row else (None, None)


async def organisation_board(
    *, conn: AsyncConnection[Any], organisations: Sequence[str]
) -> list[dict[str, Any]]:
    """Every patient of the organisations with their latest scores and active alert."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        """
        WITH members AS (
            SELECT patient_key FROM patient_settings WHERE organisation = ANY(%(orgs)s::text[])
            UNION
            SELECT DISTINCT patient_key FROM news2_scores
            WHERE organisation = ANY(%(orgs)s::text[])
        )
        SELECT p.patient_key::text AS patient_key, p.identifier_system, p.identifier_value,
               latest.scores, alert.id::text AS alert_id, alert.level AS alert_level,
               alert.status AS alert_status, alert.kind AS alert_kind,
               alert.raised_at AS alert_raised_at
        FROM members m
        JOIN patients p ON p.patient_key = m.patient_key
        LEFT JOIN LATERAL (
            SELECT jsonb_agg(jsonb_build_object(
                       'effective', s.effective, 'total', s.total, 'band', s.band,
                       'red_flag', s.red_flag, 'partial_sum', s.partial_sum, 'level', s.level,
                       'oldest_input', s.oldest_input) ORDER BY s.effective DESC) AS scores
            FROM (SELECT * FROM news2_scores WHERE patient_key = m.patient_key
                  ORDER BY effective DESC LIMIT 3) s
        ) latest ON true
        LEFT JOIN LATERAL (
            SELECT id, level, status, kind, raised_at FROM alerts
            WHERE patient_key = m.patient_key AND status <> 'resolved'
            ORDER BY CASE level WHEN 'emergency' THEN 0 ELSE 1 END, raised_at DESC LIMIT 1
        ) alert ON true
        """,
        {"orgs": list(organisations)},
    )
    return await cur.fetchall()


async def score_inputs(
    *, conn: AsyncConnection[Any], patient_key: str, effective: dt.datetime
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The score Observation at a time and the Observations it was derived from."""
    cur = await conn.execute(
        "SELECT resource FROM observations WHERE patient_key = %s AND effective = %s"
        " AND code = '1104051000000101'",
        (patient_key, effective),
    )
    row = await cur.fetchone()
    if row is None:
        return None, []
    score: dict[str, Any] = row[0]
    ids = [ref["reference"].split("/", 1)[1] for ref in score.get("derivedFrom", [])]
    cur = await conn.execute(
        "SELECT resource FROM observations WHERE patient_key = %s AND id = ANY(%s::uuid[])",
        (patient_key, ids),
    )
    return score, [r[0] for r in await cur.fetchall()]
