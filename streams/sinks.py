"""The database sink: batched, idempotent writes of normalised Observations.

``write(rows)`` commits a whole batch or raises; ``ON CONFLICT DO NOTHING`` on the deterministic
id makes a replayed stream merge instead of duplicating. A database that is down or slow raises
`DatabaseUnavailableError` with ``retry_after`` so the caller pauses consumption and retries.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ingestion.exceptions import DatabaseUnavailableError, InvalidReadingError

__all__ = ["ObservationRow", "ObservationSink", "Sink", "observation_row"]

_PATIENT_SQL = """
INSERT INTO patients (patient_key, identifier_system, identifier_value)
VALUES (%s, %s, %s) ON CONFLICT DO NOTHING
"""
_OBSERVATION_SQL = """
INSERT INTO observations (id, patient_key, code, effective, value, unit, components, device,
                          source, organisation, received, resource)
VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s::jsonb)
ON CONFLICT DO NOTHING
"""


@dataclass(frozen=True, slots=True)
class ObservationRow:
    """The columns of one stored Observation; ``resource`` is its JSON text."""

    id: str
    patient_key: str
    patient_system: str
    patient_value: str
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
        return ObservationRow(
            id=obs["id"],
            patient_key=patient_key,
            patient_system=ident["system"],
            patient_value=ident["value"],
            code=obs["code"]["coding"][0]["code"],
            effective=dt.datetime.fromisoformat(obs["effectiveDateTime"]),
            value=quantity.get("value"),
            unit=quantity.get("code"),
            components=orjson.dumps(components).decode() if components else None,
            device=(obs.get("device") or {}).get("identifier", {}).get("value"),
            source="fhir",
            organisation=None,
            received=dt.datetime.fromisoformat(obs["issued"]),
            resource=resource_json.decode(),
        )
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise InvalidReadingError(
            f"not a normalised Observation: {type(exc).__name__}", code="structure"
        ) from exc


class ObservationSink:
    """Writes batches of Observations to PostgreSQL in one transaction each."""

    def __init__(self, pool: AsyncConnectionPool, *, timeout: float = 5.0) -> None:
        self._pool = pool
        self._timeout = timeout

    async def write(self, rows: Sequence[ObservationRow]) -> None:
        """Write all rows in one transaction.

        Raises:
            DatabaseUnavailableError: the database is down, refused or timed out.
            psycopg.Error: a row was refused (data error); the caller isolates it.
        """
        if not rows:
            return
        patients = sorted({(r.patient_key, r.patient_system, r.patient_value) for r in rows})
        values = [
            (r.id, r.patient_key, r.code, r.effective, r.value, r.unit, r.components, r.device,
             r.source, r.organisation, r.received, r.resource)
            for r in rows
        ]  # fmt: skip
        try:
            async with self._pool.connection(timeout=self._timeout) as conn, conn.cursor() as cur:
                await cur.executemany(_PATIENT_SQL, patients)
                await cur.executemany(_OBSERVATION_SQL, values)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise DatabaseUnavailableError(
                f"database unavailable: {type(exc).__name__}", retry_after=1.0
            ) from exc
