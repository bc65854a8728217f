"""Builders for the storage tests: normalised Observations written straight through the sink,
the API reading them, databases of their own, TimescaleDB policies run on demand."""

from __future__ import annotations

import asyncio
import datetime as dt
import statistics
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
import psycopg
from fastapi.testclient import TestClient
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from api.main import create_app
from infra.devissuer import DevIssuer
from infra.migrate import migration_ids
from ingestion.publisher import Record
from streams.sinks import ObservationRow, ObservationSink, observation_row
from tests.engines import migrate_for_tests
from tests.helpers import FNR_SYSTEM, settings_trusting

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


def execute(database_url: str, statement: str) -> None:
    """Run one statement that returns nothing, and commit."""
    with psycopg.connect(database_url) as conn:
        conn.execute(statement.encode())


def scalar(database_url: str, query: str, *args: Any) -> Any:
    """The single value a query returns."""
    with psycopg.connect(database_url) as conn:
        found = conn.execute(query, args or None).fetchone()
        return found[0] if found else None


class QuietPublisher:
    """No broker is needed to read."""

    async def publish(self, topic: str, records: Sequence[Record]) -> None:
        raise AssertionError("reads publish nothing")

    async def ping(self) -> bool:
        return True


@contextmanager
def reading_client(database_url: str, issuer: DevIssuer) -> Iterator[TestClient]:
    """The API in-process on the database, without a broker (reads only), asked by a hospital
    clinician with a care relationship (rows written straight to the database belong to no
    organisation)."""
    settings = settings_trusting(issuer, kafka_bootstrap="unused:9092", database_url=database_url)
    app = create_app(settings, expected_migrations=migration_ids(), publisher=QuietPublisher())
    with TestClient(app) as client:
        client.auth = issuer.mint("clinician").auth()
        yield client


@contextmanager
def own_database(server_url: str) -> Iterator[str]:
    """A new migrated database on the same server, dropped afterwards, for tests whose policies
    act on whole tables (refresh, columnstore, retention) and so must not touch shared data."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = server_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = f"{server_url.rsplit('/', 1)[0]}/{name}"
    try:
        migrate_for_tests(url)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def run_policy(database_url: str, proc: str, relation: str) -> None:
    """Run a TimescaleDB policy job now, as its scheduler would (``proc`` as in the jobs view)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        found = conn.execute(
            "SELECT job_id FROM timescaledb_information.jobs"
            " WHERE proc_name = %s AND hypertable_name = %s",
            (proc, relation),
        ).fetchone()
        assert found is not None, f"no {proc} job on {relation}"
        conn.execute("CALL run_job(%s)", found)


def refresh_aggregates(database_url: str) -> None:
    """Run the refresh policies of both continuous aggregates."""
    for grain in ("hourly", "daily"):
        run_policy(database_url, "policy_refresh_continuous_aggregate", f"observations_{grain}")


TrendRow = tuple[int, float, float, float]  # count, min, max, mean (rounded)
ORIGIN = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def expected_trend(
    rows: Iterable[ObservationRow], start: dt.datetime, end: dt.datetime, width: dt.timedelta
) -> dict[dt.datetime, TrendRow]:
    """Count, min, max and mean per bucket, computed here from the rows written."""
    buckets: dict[dt.datetime, list[float]] = {}
    for r in rows:
        if start <= r.effective < end and r.value is not None:
            buckets.setdefault(r.effective - (r.effective - ORIGIN) % width, []).append(r.value)
    return {
        b: (len(v), min(v), max(v), round(statistics.fmean(v), 9))
        for b, v in sorted(buckets.items())
    }


def trend(
    client: TestClient, fnr: str, start: dt.datetime, end: dt.datetime, bucket: str
) -> dict[dt.datetime, TrendRow]:
    """The trend of the patient's pulse as ``GET /api/v1/trends`` answers it."""
    response = client.get(
        "/api/v1/trends",
        params={"patient.identifier": fnr, "code": "8867-4", "bucket": bucket,
                "from": start.isoformat(), "to": end.isoformat()},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    return {
        dt.datetime.fromisoformat(g["start"]): (g["count"], g["min"], g["max"], round(g["mean"], 9))
        for g in response.json()["rows"]
    }
