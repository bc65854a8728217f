"""The database sink: batched, idempotent writes of normalised Observations.

``write(rows)`` commits a whole batch or raises. A new batch is COPYed straight into
``observations``; a batch with a row already stored (a replay) fails that COPY on the
deterministic id and is inserted again with ``ON CONFLICT DO NOTHING``, so a replayed stream
merges instead of duplicating. A database that is down or slow raises `DatabaseUnavailableError`
with ``retry_after`` so the caller pauses consumption and retries.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
import psycopg
from psycopg import postgres
from psycopg.adapt import Dumper
from psycopg.pq import Format
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ingestion.exceptions import DatabaseUnavailableError, InvalidReadingError
from ingestion.measurement import Measurement
from ingestion.news2_inputs import ACVPU_CODE
from ingestion.panels import COMPONENT_SYSTEM, STORED_COMPONENTS, column_values, components_of_panel
from ingestion.rendering import code_system_of, components_of, to_observation
from streams.outages import database_unavailable
from streams.partitions import ensure_days

__all__ = [
    "JsonbTextDumper",
    "ObservationRow",
    "ObservationSink",
    "Sink",
    "UuidDumper",
    "measurement_row",
    "observation_row",
]

log = logging.getLogger(__name__)

_STAGING_SQL = """
CREATE TEMP TABLE IF NOT EXISTS malestrom_staging (
    id text, patient_key text, patient_system text, patient_value text, code_system text,
    code text, effective timestamptz, value double precision, unit text, components text,
    device text, source text, organisation text, received timestamptz, resource text,
    systolic double precision, acvpu text, on_oxygen boolean, client_id text,
    client_organisation text, diastolic double precision
) ON COMMIT DELETE ROWS;
"""
# Text in staging for uuid and jsonb: the server casts once, the client sends bytes as they are.
_STAGING_TYPES = [
    "text", "text", "text", "text", "text", "text", "timestamptz", "float8", "text", "text",
    "text", "text", "text", "timestamptz", "text", "float8", "text", "bool", "text", "text",
    "float8",
]  # fmt: skip
_COPY_SQL = "COPY malestrom_staging FROM STDIN (FORMAT BINARY)"
# The fast path: the rows straight into observations (COPY inserts many rows per call,
# INSERT … SELECT one by one), then the latest values and rollups the writer worked out.
_SAVEPOINT_SQL = "SAVEPOINT malestrom_copy"
_ROLLBACK_SQL = "ROLLBACK TO SAVEPOINT malestrom_copy"
_OBSERVATIONS_COPY_SQL = """
COPY observations (id, patient_key, code_system, code, effective, value, unit, components,
                   device, source, organisation, received, resource, systolic, acvpu,
                   on_oxygen, client_id, client_organisation, diastolic)
FROM STDIN (FORMAT BINARY)
"""
_OBSERVATIONS_TYPES = [
    "uuid", "uuid", "text", "text", "timestamptz", "float8", "text", "jsonb", "text", "text",
    "text", "timestamptz", "jsonb", "float8", "text", "bool", "text", "text", "float8",
]  # fmt: skip
_PATIENTS_SQL = """
INSERT INTO patients (patient_key, identifier_system, identifier_value)
SELECT DISTINCT patient_key::uuid, patient_system, patient_value FROM {staging}
ORDER BY 1 ON CONFLICT DO NOTHING
"""
_NEW_PATIENTS_SQL = """
INSERT INTO patients (patient_key, identifier_system, identifier_value)
SELECT * FROM unnest(%s::uuid[], %s::text[], %s::text[]) ON CONFLICT DO NOTHING
"""
_KNOWN_PATIENTS = 100_000  # patients the writer remembers as stored, to skip their upsert
# Only rows actually inserted move the latest values and the rollups, so a replayed batch, which
# inserts nothing, changes nothing: on the fast path every copied row (the COPY fails whole on a
# duplicate), on the replay path the rows the INSERT returned.
_RETURNED_ROWS = """
    INSERT INTO observations (id, patient_key, code_system, code, effective, value, unit,
                              components, device, source, organisation, received, resource,
                              systolic, acvpu, on_oxygen, client_id, client_organisation,
                              diastolic)
    SELECT id::uuid, patient_key::uuid, code_system, code, effective, value, unit,
           components::jsonb, device, source, organisation, received, resource::jsonb,
           systolic, acvpu, on_oxygen, client_id, client_organisation, diastolic
    FROM malestrom_staging
    ON CONFLICT DO NOTHING
    RETURNING id, patient_key, code_system, code, effective, value, unit, systolic, diastolic
"""
_MAINTAIN_SQL = """
WITH inserted AS ({inserted}), latest AS (
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
# The rollups are append-only deltas, one row per hour bucket and batch; readers aggregate them,
# the storage maintenance compacts them, and the daily rollup is a view of them (see
# infra/migrations/engines/common.py); the components of panels likewise, each under its own
# code (infra/migrations/engines/components.py).
_COMPONENT_VALUES = ", ".join(
    f"('{COMPONENT_SYSTEM}', '{c.code}', CASE WHEN i.code = '{c.panel}' THEN i.{c.column} END)"
    for c in STORED_COMPONENTS
)
_ROLLUPS = f""", hourly AS (
    INSERT INTO observations_hourly
        (patient_key, code_system, code, bucket, n, total, minimum, maximum)
    SELECT patient_key, code_system, code,
           date_bin(interval '1 hour', effective, timestamptz '2000-01-01 00:00:00+00'),
           count(*), sum(value), min(value), max(value)
    FROM inserted WHERE value IS NOT NULL
    GROUP BY 1, 2, 3, 4 ORDER BY 1, 3, 4
), component_hourly AS (
    INSERT INTO observation_components_hourly
        (patient_key, code_system, code, bucket, n, total, minimum, maximum)
    SELECT i.patient_key, c.code_system, c.code,
           date_bin(interval '1 hour', i.effective, timestamptz '2000-01-01 00:00:00+00'),
           count(*), sum(c.v), min(c.v), max(c.v)
    FROM inserted i CROSS JOIN LATERAL (VALUES {_COMPONENT_VALUES}) AS c(code_system, code, v)
    WHERE c.v IS NOT NULL
    GROUP BY 1, 2, 3, 4 ORDER BY 1, 3, 4
)"""  # noqa: S608 - the only interpolation is _COMPONENT_VALUES, made of our constants


# On the fast path every copied row was inserted (the COPY fails whole on a duplicate), so the
# writer sends the batch's newest value per code and its hourly deltas, worked out in Python,
# sorted so that concurrent writers lock the latest rows in one order.
_FAST_LATEST = """
INSERT INTO observations_latest AS l (patient_key, code_system, code, effective, id, value, unit)
SELECT * FROM json_to_recordset(%(latest)s::json) AS x(
    patient_key uuid, code_system text, code text, effective timestamptz, id uuid,
    value double precision, unit text)
ON CONFLICT (patient_key, code, code_system) DO UPDATE
SET effective = EXCLUDED.effective, id = EXCLUDED.id, value = EXCLUDED.value,
    unit = EXCLUDED.unit
WHERE (EXCLUDED.effective, EXCLUDED.id) > (l.effective, l.id)
"""
_FAST_COMPONENTS = """
INSERT INTO observation_components_hourly
    (patient_key, code_system, code, bucket, n, total, minimum, maximum)
SELECT * FROM json_to_recordset(%(components)s::json) AS x(
    patient_key uuid, code_system text, code text, bucket timestamptz, n bigint,
    total double precision, minimum double precision, maximum double precision)
"""
_FAST_HOURLY = """
INSERT INTO observations_hourly (patient_key, code_system, code, bucket, n, total, minimum, maximum)
SELECT * FROM json_to_recordset(%(hourly)s::json) AS x(
    patient_key uuid, code_system text, code text, bucket timestamptz, n bigint,
    total double precision, minimum double precision, maximum double precision)
"""


@dataclass(frozen=True, slots=True)
class _Statements:
    """The writer's last statements for one engine (with rollups, or left to continuous
    aggregates)."""

    fast: str  # after the COPY into observations succeeded; takes the `_Deltas` as parameters
    replay: str  # after it failed on a duplicate; ends the transaction
    rollups: bool

    @classmethod
    def build(cls, *, rollups: bool) -> _Statements:
        more = _ROLLUPS if rollups else ""
        replay = _MAINTAIN_SQL.format(inserted=_RETURNED_ROWS, rollups=more)
        fast = (
            f"WITH latest AS ({_FAST_LATEST}), components AS ({_FAST_COMPONENTS}) {_FAST_HOURLY}"
            if rollups
            else _FAST_LATEST
        )
        return cls(
            fast=fast,
            replay=f"{_PATIENTS_SQL.format(staging='malestrom_staging')}; {replay}; COMMIT",
            rollups=rollups,
        )


_BucketKey = tuple[str, str, str, dt.datetime]  # patient key, code system, code, hour


def _add(buckets: dict[_BucketKey, list[float]], key: _BucketKey, value: float) -> None:
    """Count one value into its bucket's ``[n, total, minimum, maximum]``."""
    bucket = buckets.get(key)
    if bucket is None:
        buckets[key] = [1, value, value, value]
        return
    bucket[0] += 1
    bucket[1] += value
    bucket[2] = min(bucket[2], value)
    bucket[3] = max(bucket[3], value)


def _rollup_json(buckets: dict[_BucketKey, list[float]]) -> str:
    sums = ("n", "total", "minimum", "maximum")
    return orjson.dumps(
        [
            {"patient_key": k[0], "code_system": k[1], "code": k[2], "bucket": k[3]}
            | dict(zip(sums, v, strict=True))
            for k, v in sorted(buckets.items())
        ]
    ).decode()


def _deltas(rows: Sequence[ObservationRow], *, rollups: bool) -> dict[str, str]:
    """The newest row per patient and code, and the hourly rollup deltas (of the readings and
    of the components of panels), of inserted rows."""
    latest: dict[tuple[str, str, str], ObservationRow] = {}
    hourly: dict[_BucketKey, list[float]] = {}
    components: dict[_BucketKey, list[float]] = {}
    for r in rows:
        key = (r.patient_key, r.code, r.code_system)
        seen = latest.get(key)
        if seen is None or (r.effective, r.id) > (seen.effective, seen.id):
            latest[key] = r
        if not rollups:
            continue
        hour = r.effective.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
        if r.value is not None:
            _add(hourly, (r.patient_key, r.code_system, r.code, hour), r.value)
        for c in components_of_panel(r.code_system, r.code):
            value = getattr(r, c.column)
            if value is not None:
                _add(components, (r.patient_key, COMPONENT_SYSTEM, c.code, hour), value)
    # As JSON, serialised in one call by orjson: psycopg's array dumpers cost more per value.
    news = [latest[k] for k in sorted(latest)]
    fields = ("patient_key", "code_system", "code", "effective", "id", "value", "unit")
    return {
        "latest": orjson.dumps([{f: getattr(r, f) for f in fields} for r in news]).decode(),
        "hourly": _rollup_json(hourly),
        "components": _rollup_json(components),
    }


_LAYOUT_SQL = """
SELECT engine, aggregates, ((now() - retention) AT TIME ZONE 'UTC')::date,
       ((now() AT TIME ZONE 'UTC')::date + ahead_days)
FROM storage_layout
"""


@dataclass(frozen=True, slots=True)
class ObservationRow:
    """The columns of one stored Observation; ``resource`` is its JSON text.

    ``systolic``, ``acvpu`` and ``on_oxygen`` are the NEWS2 inputs the scorer reads
    (`ingestion.news2_inputs`), ``systolic`` and ``diastolic`` the components of a blood
    pressure panel (`ingestion.panels`); ``source`` is the format or template, ``client_id`` and
    ``client_organisation`` the system that sent it (from its access token).
    """

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
    systolic: float | None = None
    acvpu: str | None = None
    on_oxygen: bool | None = None
    client_id: str | None = None
    client_organisation: str | None = None
    diastolic: float | None = None


class Sink(Protocol):
    """Port: a batching sink."""

    async def write(self, rows: Sequence[ObservationRow]) -> None:
        """Durably write every row, or raise."""


def measurement_row(m: Measurement, resource: str | None = None) -> ObservationRow:
    """The stored row of a measurement: its columns as they are, and its Observation as the
    edge rendered it (``resource``, JSON text), or rendered here for a record without one."""
    if resource is None:
        resource = orjson.dumps(to_observation(m)).decode()
    columns = column_values(m.code, ((c.code, c.value) for c in m.components))
    return ObservationRow(
        id=m.id,
        patient_key=m.patient_key,
        patient_system=m.patient_system,
        patient_value=m.patient_value,
        code_system=code_system_of(m),
        code=m.code,
        effective=m.effective,
        value=m.value,
        unit=m.unit,
        components=orjson.dumps(components_of(m)).decode() if m.components else None,
        device=m.device,
        source=m.source,
        organisation=m.organisation,
        received=m.received,
        resource=resource,
        systolic=columns["systolic"],
        acvpu=m.value_code if m.code == ACVPU_CODE else None,
        on_oxygen=m.on_oxygen,
        client_id=m.client_id,
        client_organisation=m.client_organisation,
        diastolic=columns["diastolic"],
    )


def observation_row(patient_key: str, resource_json: bytes) -> ObservationRow:
    """Extract the stored columns from a normalised Observation from elsewhere (a test, a bench,
    an import); the worker stores `measurement_row` instead and parses nothing back.

    Raises:
        InvalidReadingError: the bytes are not a normalised Observation.
    """
    try:
        obs: dict[str, Any] = orjson.loads(resource_json)
        quantity = obs.get("valueQuantity") or {}
        components = obs.get("component")
        ident = obs["subject"]["identifier"]
        coding = obs["code"]["coding"][0]
        columns = column_values(coding["code"], _component_values(components or ()))
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
            source="fhir",  # what a foreign Observation is; a Measurement keeps its own
            organisation=_organisation(obs),
            received=dt.datetime.fromisoformat(obs["issued"]),
            resource=resource_json.decode(),
            systolic=columns["systolic"],
            diastolic=columns["diastolic"],
        )
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise InvalidReadingError(
            f"not a normalised Observation: {type(exc).__name__}", code="structure"
        ) from exc


@dataclass(slots=True)
class _Layout:
    """What the writer must know of the schema, read once from ``storage_layout``."""

    partitioned: bool
    statements: _Statements
    oldest_day: dt.date
    newest_day: dt.date
    made_days: set[dt.date] = field(default_factory=set)


def _component_values(components: Any) -> list[tuple[str, float]]:
    """``(code, value)`` of the components that carry a LOINC code and a quantity."""
    found = []
    for c in components:
        coding = next((x for x in c["code"]["coding"] if x.get("system") == COMPONENT_SYSTEM), None)
        value = (c.get("valueQuantity") or {}).get("value")
        if coding is not None and isinstance(value, int | float):
            found.append((coding["code"], float(value)))
    return found


def _organisation(obs: dict[str, Any]) -> str | None:
    """The responsible organisation's number, from the performer slice that names it."""
    for performer in obs.get("performer") or ():
        if performer.get("type") == "Organization":
            value = (performer.get("identifier") or {}).get("value")
            return str(value) if value else None
    return None


class UuidDumper(Dumper):
    """A uuid as its 16 bytes, from the text the rows carry (or a `uuid.UUID`)."""

    format = Format.BINARY
    oid = postgres.types["uuid"].oid

    def dump(self, obj: str | uuid.UUID) -> bytes:
        return obj.bytes if isinstance(obj, uuid.UUID) else bytes.fromhex(obj.replace("-", ""))


class JsonbTextDumper(Dumper):
    """JSON text as binary jsonb, without parsing and re-serialising it in Python."""

    format = Format.BINARY
    oid = postgres.types["jsonb"].oid

    def dump(self, obj: str | bytes) -> bytes:
        return b"\x01" + (obj if isinstance(obj, bytes) else obj.encode())


class ObservationSink:
    """Writes batches of Observations, one transaction per batch: binary COPY into
    ``observations`` inside a savepoint (``INSERT … ON CONFLICT DO NOTHING`` from staging when
    that meets a stored row), then the latest values and, where the engine has no continuous
    aggregates, the hourly rollup deltas, from only the rows inserted."""

    def __init__(
        self, pool: AsyncConnectionPool, *, timeout: float = 5.0, statement_timeout: float = 30.0
    ) -> None:
        self._pool = pool
        self._timeout = timeout
        self._statement_timeout_ms = int(statement_timeout * 1000)
        self._layout: _Layout | None = None
        self._patients: set[str] = set()

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
                await self._write(conn, layout.statements, rows)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            if not database_unavailable(exc):
                raise
            raise DatabaseUnavailableError(
                f"database unavailable: {type(exc).__name__}", retry_after=1.0
            ) from exc
        if len(self._patients) > _KNOWN_PATIENTS:
            self._patients.clear()
        self._patients.update(r.patient_key for r in rows)  # committed, so they exist

    async def _write(
        self,
        conn: psycopg.AsyncConnection[Any],
        statements: _Statements,
        rows: Sequence[ObservationRow],
    ) -> None:
        # The fast path: the rows straight into observations by COPY, then the latest values
        # and rollup deltas from Python, in as few round trips as possible: the per-batch
        # overhead is what makes a writer slower than a bare COPY.
        async with conn.cursor() as cur:
            cur.adapters.register_dumper(None, UuidDumper)
            cur.adapters.register_dumper(None, JsonbTextDumper)
            # The savepoint by hand, so that it travels with the statements before the COPY.
            await cur.execute(
                f"SET LOCAL statement_timeout = {self._statement_timeout_ms}; {_STAGING_SQL};"
                f" {_SAVEPOINT_SQL}"
            )
            new = {r.patient_key: r for r in rows if r.patient_key not in self._patients}
            if new:
                people = [new[k] for k in sorted(new)]
                await cur.execute(
                    _NEW_PATIENTS_SQL,
                    (
                        [p.patient_key for p in people],
                        [p.patient_system for p in people],
                        [p.patient_value for p in people],
                    ),
                )
            try:
                async with cur.copy(_OBSERVATIONS_COPY_SQL) as copy:
                    copy.set_types(_OBSERVATIONS_TYPES)
                    for r in rows:
                        await copy.write_row(
                            (r.id, r.patient_key, r.code_system, r.code, r.effective, r.value,
                             r.unit, r.components, r.device, r.source, r.organisation,
                             r.received, r.resource, r.systolic, r.acvpu, r.on_oxygen,
                             r.client_id, r.client_organisation, r.diastolic)
                        )  # fmt: skip
            except (psycopg.errors.UniqueViolation, psycopg.errors.ForeignKeyViolation):
                # A replay, a duplicate within the batch, or a patient gone since it was seen.
                await cur.execute(_ROLLBACK_SQL)
                self._patients.clear()
                await self._replay(cur, statements.replay, rows)
            else:
                await cur.execute(statements.fast, _deltas(rows, rollups=statements.rollups))
                await cur.execute("COMMIT")

    @staticmethod
    async def _replay(
        cur: psycopg.AsyncCursor[Any], replay_sql: str, rows: Sequence[ObservationRow]
    ) -> None:
        """The slow path: all columns into staging, then insert only the rows that are new."""
        async with cur.copy(_COPY_SQL) as copy:
            copy.set_types(_STAGING_TYPES)
            for r in rows:
                await copy.write_row(
                    (r.id, r.patient_key, r.patient_system, r.patient_value, r.code_system,
                     r.code, r.effective, r.value, r.unit, r.components, r.device, r.source,
                     r.organisation, r.received, r.resource, r.systolic, r.acvpu, r.on_oxygen,
                     r.client_id, r.client_organisation, r.diastolic)
                )  # fmt: skip
        await cur.execute(replay_sql)

    async def _read_layout(self) -> _Layout:
        if self._layout is None:
            async with self._pool.connection(timeout=self._timeout) as conn:
                cur = await conn.execute(_LAYOUT_SQL)
                engine, aggregates, oldest, newest = await cur.fetchone() or ("", "", None, None)
            rollups = aggregates == "rollup"
            self._layout = _Layout(
                partitioned=engine == "postgresql",
                statements=_Statements.build(rollups=rollups),
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
