"""The database sink: batched, idempotent writes of normalised Observations.

``write(rows)`` commits a whole batch or raises; ``ON CONFLICT DO NOTHING`` on the deterministic
id makes a replayed stream merge instead of duplicating. A database that is down or slow raises
`DatabaseUnavailableError` with ``retry_after`` so the caller pauses consumption and retries.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ingestion.exceptions import DatabaseUnavailableError, InvalidReadingError
from streams.partitions import ensure_days

__all__ = ["ObservationRow", "ObservationSink", "Sink", "observation_row"]

log = logging.getLogger(__name__)

_STAGING_SQL = """
CREATE TEMP TABLE IF NOT EXISTS malestrom_staging (
    id text, patient_key text, patient_system text, patient_value text, code_system text,
    code text, effective timestamptz, value double precision, unit text, components text,
    device text, source text, organisation text, received timestamptz, resource text
) ON COMMIT DELETE ROWS
"""
# Text in staging for uuid and jsonb: the server casts once, the client sends bytes as they are.
_STAGING_TYPES = [
    "text", "text", "text", "text", "text", "text", "timestamptz", "float8", "text", "text",
    "text", "text", "text", "timestamptz", "text",
]  # fmt: skip
_COPY_SQL = "COPY malestrom_staging FROM STDIN (FORMAT BINARY)"
_PATIENTS_SQL = """
INSERT INTO patients (patient_key, identifier_system, identifier_value)
SELECT DISTINCT patient_key::uuid, patient_system, patient_value FROM malestrom_staging
ORDER BY 1 ON CONFLICT DO NOTHING
"""
# Only rows this statement inserted (RETURNING) move the latest values and the rollups, so a
# replayed batch, which inserts nothing, changes nothing.
_INSERT_SQL = """
WITH inserted AS (
    INSERT INTO observations (id, patient_key, code_system, code, effective, value, unit,
                              components, device, source, organisation, received, resource)
    SELECT id::uuid, patient_key::uuid, code_system, code, effective, value, unit,
           components::jsonb, device, source, organisation, received, resource::jsonb
    FROM malestrom_staging
    ON CONFLICT DO NOTHING
    RETURNING id, patient_key, code_system, code, effective, value, unit
), latest AS (
    INSERT INTO observations_latest AS l
        (patient_key, code_system, code, effective, id, value, unit)
    SELECT DISTINCT ON (patient_key, code, code_system)
           patient_key, code_system, code, effective, id, value, unit
    FROM inserted ORDER BY patient_key, code, code_system, effective DESC, id DESC
    ON CONFLICT (patient_key, code, code_system) DO UPDATE
    SET effective = EXCLUDED.effective, id = EXCLUDED.id, value = EXCLUDED.value,
        unit = EXCLUDED.unit
    WHERE (EXCLUDED.effective, EXCLUDED.id) > (l.effective, l.id)
){rollups}
SELECT count(*) FROM inserted
"""
_ROLLUP_SQL = """, {grain} AS (
    INSERT INTO observations_{grain} AS r
        (patient_key, code_system, code, bucket, n, total, minimum, maximum)
    SELECT patient_key, code_system, code,
           date_bin(interval '{width}', effective, timestamptz '2000-01-01 00:00:00+00'),
           count(*), sum(value), min(value), max(value)
    FROM inserted WHERE value IS NOT NULL
    GROUP BY 1, 2, 3, 4 ORDER BY 1, 3, 4, 2
    ON CONFLICT (patient_key, code, bucket, code_system) DO UPDATE
    SET n = r.n + EXCLUDED.n, total = r.total + EXCLUDED.total,
        minimum = least(r.minimum, EXCLUDED.minimum),
        maximum = greatest(r.maximum, EXCLUDED.maximum)
)"""
WRITER_ROLLUPS_SQL = _INSERT_SQL.format(
    rollups=_ROLLUP_SQL.format(grain="hourly", width="1 hour")
    + _ROLLUP_SQL.format(grain="daily", width="1 day")
)
CONTINUOUS_AGGREGATES_SQL = _INSERT_SQL.format(rollups="")
_LAYOUT_SQL = """
SELECT engine, aggregates, ((now() - retention) AT TIME ZONE 'UTC')::date,
       ((now() AT TIME ZONE 'UTC')::date + ahead_days)
FROM storage_layout
"""


@dataclass(frozen=True, slots=True)
class ObservationRow:
    """The columns of one stored Observation; ``resource`` is its JSON text."""

    id: str
    patient_key: str
    patient_system: str
    patient_value: str
    code_system: str
    code: str
    effective: dt.datetime
    value: float | None
    unit: str | None
    components: str | None
    device: str | None
    source: str
    organisation: str | None
    received: dt.datetime
    resource: str


class Sink(Protocol):
    """Port: a batching sink."""

    async def write(self, rows: Sequence[ObservationRow]) -> None:
        """Durably write every row, or raise."""


def observation_row(patient_key: str, resource_json: bytes) -> ObservationRow:
    """Extract the stored columns from a normalised Observation (as rendered by ingestion).

    Raises:
        InvalidReadingError: the bytes are not a normalised Observation.
    """
    try:
        obs: dict[str, Any] = orjson.loads(resource_json)
        quantity = obs.get("valueQuantity") or {}
        components = obs.get("component")
        ident = obs["subject"]["identifier"]
        coding = obs["code"]["coding"][0]
        return ObservationRow(
            id=obs["id"],
            patient_key=patient_key,
            patient_system=ident["system"],
            patient_value=ident["value"],
            code_system=coding["system"],
            code=coding["code"],
            effective=dt.datetime.fromisoformat(obs["effectiveDateTime"]),
            value=quantity.get("value", obs.get("valueInteger")),  # NEWS2 scores are integers
            unit=quantity.get("code"),
            components=orjson.dumps(components).decode() if components else None,
            device=(obs.get("device") or {}).get("identifier", {}).get("value"),
            source="fhir",
            organisation=_organisation(obs),
            received=dt.datetime.fromisoformat(obs["issued"]),
            resource=resource_json.decode(),
        )
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise InvalidReadingError(
            f"not a normalised Observation: {type(exc).__name__}", code="structure"
        ) from exc


@dataclass(slots=True)
class _Layout:
    """What the writer must know of the schema, read once from ``storage_layout``."""

    partitioned: bool
    insert_sql: str
    oldest_day: dt.date
    newest_day: dt.date
    made_days: set[dt.date] = field(default_factory=set)


def _organisation(obs: dict[str, Any]) -> str | None:
    """The responsible organisation's number, from the performer slice that names it."""
    for performer in obs.get("performer") or ():
        if performer.get("type") == "Organization":
            value = (performer.get("identifier") or {}).get("value")
            return str(value) if value else None
    return None


class ObservationSink:
    """Writes batches of Observations: binary COPY into a staging table, then one
    ``INSERT … ON CONFLICT DO NOTHING`` that also moves latest values and, where the engine has
    no continuous aggregates, the hourly and daily rollups; one transaction per batch."""

    def __init__(
        self, pool: AsyncConnectionPool, *, timeout: float = 5.0, statement_timeout: float = 30.0
    ) -> None:
        self._pool = pool
        self._timeout = timeout
        self._statement_timeout_ms = int(statement_timeout * 1000)
        self._layout: _Layout | None = None

    async def write(self, rows: Sequence[ObservationRow]) -> None:
        """Write all rows in one transaction.

        Raises:
            DatabaseUnavailableError: the database is down, slow, refused or timed out.
            psycopg.Error: a row was refused (data error); the caller isolates it.
        """
        if not rows:
            return
        try:
            layout = await self._read_layout()
            await self._make_partitions(layout, rows)
            async with self._pool.connection(timeout=self._timeout) as conn:
                await self._write(conn, layout.insert_sql, rows)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise DatabaseUnavailableError(
                f"database unavailable: {type(exc).__name__}", retry_after=1.0
            ) from exc

    async def _write(
        self, conn: psycopg.AsyncConnection[Any], insert_sql: str, rows: Sequence[ObservationRow]
    ) -> None:
        # One round trip before the COPY, one after it: the per-batch overhead is what makes a
        # writer slower than a bare COPY, so it is kept to the minimum.
        await conn.execute(
            f"SET LOCAL statement_timeout = {self._statement_timeout_ms}; {_STAGING_SQL}"
        )
        async with conn.cursor() as cur:
            async with cur.copy(_COPY_SQL) as copy:
                copy.set_types(_STAGING_TYPES)
                for r in rows:
                    await copy.write_row(
                        (r.id, r.patient_key, r.patient_system, r.patient_value, r.code_system,
                         r.code, r.effective, r.value, r.unit, r.components, r.device, r.source,
                         r.organisation, r.received, r.resource)
                    )  # fmt: skip
            await cur.execute(f"{_PATIENTS_SQL}; {insert_sql}")

    async def _read_layout(self) -> _Layout:
        if self._layout is None:
            async with self._pool.connection(timeout=self._timeout) as conn:
                cur = await conn.execute(_LAYOUT_SQL)
                engine, aggregates, oldest, newest = await cur.fetchone() or ("", "", None, None)
            rollups = aggregates == "rollup"
            self._layout = _Layout(
                partitioned=engine == "postgresql",
                insert_sql=WRITER_ROLLUPS_SQL if rollups else CONTINUOUS_AGGREGATES_SQL,
                oldest_day=oldest,
                newest_day=newest,
            )
        return self._layout

    async def _make_partitions(self, layout: _Layout, rows: Sequence[ObservationRow]) -> None:
        # Backfilled or late days get their partition on demand, so the default partition
        # only ever holds readings outside the retention window or implausibly far ahead.
        if not layout.partitioned:
            return
        first = min(r.effective for r in rows).astimezone(dt.UTC).date()
        last = max(r.effective for r in rows).astimezone(dt.UTC).date()
        first, last = max(first, layout.oldest_day), min(last, layout.newest_day)
        days = {first + dt.timedelta(days=k) for k in range((last - first).days + 1)}
        days -= layout.made_days
        if days and await ensure_days(self._pool, min(days), max(days)):
            layout.made_days.update(days)
