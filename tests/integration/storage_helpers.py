"""Builders for the storage tests: normalised Observations written straight through the sink."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Iterable
from typing import Any

import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool

from streams.sinks import ObservationRow, ObservationSink, observation_row
from tests.helpers import FNR_SYSTEM

LOINC = "http://loinc.org"


def row(
    fnr: str,
    effective: dt.datetime,
    value: float | None,
    *,
    code: str = "8867-4",
    system: str = LOINC,
    unit: str = "/min",
) -> ObservationRow:
    """One normalised Observation as the sink receives it (deterministic id from its fields)."""
    rid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{fnr}/{system}/{code}/{effective.isoformat()}"))
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"identifier": {"system": FNR_SYSTEM, "value": fnr}},
        "effectiveDateTime": effective.isoformat(),
        "issued": effective.isoformat(),
    }
    if value is not None:
        resource["valueQuantity"] = {"value": value, "unit": unit, "code": unit}
    key = str(uuid.uuid5(uuid.NAMESPACE_OID, fnr))
    return observation_row(key, orjson.dumps(resource))


def write(database_url: str, rows: Iterable[ObservationRow], *, batch: int = 500) -> None:
    """Write rows through the real sink, in batches like the worker's."""

    async def run() -> None:
        async with AsyncConnectionPool(database_url, min_size=1, max_size=2) as pool:
            sink = ObservationSink(pool)
            pending = list(rows)
            for i in range(0, len(pending), batch):
                await sink.write(pending[i : i + batch])

    asyncio.run(run())


def scalar(database_url: str, query: str, *args: Any) -> Any:
    """The single value a query returns."""
    with psycopg.connect(database_url) as conn:
        found = conn.execute(query, args or None).fetchone()
        return found[0] if found else None
