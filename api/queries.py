"""The API's database questions, as keyword-only functions over an async connection."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

__all__ = [
    "PatientRef",
    "applied_migrations",
    "record_audit",
    "search_observations",
    "worker_partitions",
]

PatientRef = tuple[str | None, str]  # (identifier system or None for any, identifier value)


async def search_observations(
    *, conn: AsyncConnection[Any], patient: PatientRef, count: int
) -> list[tuple[str, str, str]]:
    """Return ``(patient_key, id, resource JSON)`` of a patient's Observations, newest first."""
    system, value = patient
    cur = await conn.execute(
        """
        SELECT o.patient_key::text, o.id::text, o.resource::text
        FROM observations o
        WHERE o.patient_key IN (
            SELECT patient_key FROM patients
            WHERE identifier_value = %(value)s
              AND (%(system)s::text IS NULL OR identifier_system = %(system)s::text))
        ORDER BY o.effective DESC, o.id DESC
        LIMIT %(count)s
        """,
        {"system": system, "value": value, "count": count},
    )
    return [(row[0], row[1], row[2]) for row in await cur.fetchall()]


async def record_audit(
    *,
    conn: AsyncConnection[Any],
    patient_keys: set[str],
    agent: str,
    action: str,
    resource: str,
    outcome: str,
    organisation: str | None = None,
    purpose: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Write one audit event per patient whose data was read (one event when none matched)."""
    keys: list[str | None] = [*sorted(patient_keys)] or [None]
    async with conn.cursor() as cur:
        await cur.executemany(
            """
            INSERT INTO audit_events
                (patient_key, agent, organisation, purpose, action, resource, outcome, detail)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
            """,
            [
                (key, agent, organisation, purpose, action, resource, outcome, Jsonb(detail))
                for key in keys
            ],
        )


async def applied_migrations(*, conn: AsyncConnection[Any]) -> set[str]:
    """Return the ids of applied migrations (empty when the schema was never migrated)."""
    cur = await conn.execute("SELECT to_regclass('_yoyo_migration') IS NOT NULL")
    row = await cur.fetchone()
    if not row or not row[0]:
        return set()
    cur = await conn.execute("SELECT migration_id FROM _yoyo_migration")
    return {r[0] for r in await cur.fetchall()}


async def worker_partitions(
    *, conn: AsyncConnection[Any], group_id: str, fresh_within_s: float
) -> int:
    """Return how many partitions the group's live workers hold (0 when none is alive)."""
    cur = await conn.execute(
        """
        SELECT coalesce(sum(partitions), 0) FROM worker_status
        WHERE group_id = %s AND updated_at > now() - make_interval(secs => %s)
        """,
        (group_id, fresh_within_s),
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0
