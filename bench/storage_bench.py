"""Storage benchmark: writer throughput against a bare COPY, on-disk size, and query latency
over HTTP, on one engine or several side by side.

    python bench/storage_bench.py [--engine both] [--year-rows 525600] [--others 1000]
                                  [--requests 200]

``--engine``: ``postgresql``, ``timescaledb`` (Community), ``timescaledb-apache``, ``both``
(plain PostgreSQL and TimescaleDB Community; the default) or ``all``. TimescaleDB must be built
into the embedded PostgreSQL (``../shared/tools/build-timescaledb``). Each engine gets an
embedded server of its own in a temporary directory (or MALESTROM_BENCH_DATABASE_URL, which is
then written to, as the one engine), the migrations, and:

1. rows/s of the writer (`ObservationSink`: binary COPY into observations + latest values +
   rollup deltas where the engine has no continuous aggregates, falling back to INSERT … ON
   CONFLICT on a replay) and of a bare binary COPY of the same rows into the same table, in the
   same batches, and the ratio;
2. a year of minute data for one patient among ``--others`` patients, loaded through the
   writer; then what the engine's policies do to it (on TimescaleDB Community the continuous
   aggregates' refresh and the columnstore policy, run now), and the on-disk size of the
   observations (tables, indexes, TOAST) before and after that, and of the aggregates;
3. p50/p99 latency through the HTTP API (uvicorn subprocess on 127.0.0.1) of ``$lastn``, a
   24-hour search page, a 30-day hourly trend and a 1-year daily trend, for that patient.

Figures on a shared 2-core machine are noisy; they are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import orjson
import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import Format
from psycopg_pool import AsyncConnectionPool

from infra.devissuer import DevIssuer
from infra.embedded import EmbeddedPostgres
from infra.engine import EngineChoice, License
from infra.migrate import upgrade
from streams.sinks import ObservationRow, ObservationSink, observation_row

FNR_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.1"
NOW = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
BATCH = 500  # the worker's default batch size
ENGINES: dict[str, tuple[EngineChoice, License]] = {
    "postgresql": ("postgresql", "timescale"),
    "timescaledb": ("timescaledb", "timescale"),
    "timescaledb-apache": ("timescaledb", "apache"),
}
CHOICES = {**{name: [name] for name in ENGINES}, "both": ["postgresql", "timescaledb"],
           "all": list(ENGINES)}  # fmt: skip
Figures = dict[str, float]


class _RawJsonb(str):
    """JSON text sent as binary jsonb without re-serialising it (for the bare COPY)."""


class _RawJsonbDumper(Dumper):
    format = Format.BINARY

    def dump(self, obj: str) -> bytes:
        return b"\x01" + obj.encode()


def _rows(fnr: str, times: list[dt.datetime], rng: random.Random) -> list[ObservationRow]:
    key = str(uuid.uuid5(uuid.NAMESPACE_OID, fnr))
    out = []
    for t in times:
        when = t.isoformat().replace("+00:00", "Z")
        resource = {
            "resourceType": "Observation",
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{fnr}/{when}")),
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"identifier": {"system": FNR_SYSTEM, "value": fnr}},
            "effectiveDateTime": when,
            "issued": when,
            "valueQuantity": {"value": rng.randint(45, 130), "unit": "/min", "code": "/min"},
            "device": {"identifier": {"value": "bench-device"}},
        }
        out.append(observation_row(key, orjson.dumps(resource)))
    return out


async def _writer(pool: AsyncConnectionPool, rows: list[ObservationRow]) -> float:
    sink = ObservationSink(pool)
    start = time.perf_counter()
    for i in range(0, len(rows), BATCH):
        await sink.write(rows[i : i + BATCH])
    return time.perf_counter() - start


async def _bare_copy(url: str, rows: list[ObservationRow]) -> float:
    values = [
        (uuid.UUID(r.id), uuid.UUID(r.patient_key), r.code_system, r.code, r.effective, r.value,
         r.unit, None, r.device, r.source, r.organisation, r.received, _RawJsonb(r.resource))
        for r in rows
    ]  # fmt: skip
    columns = "id, patient_key, code_system, code, effective, value, unit, components, device,"
    columns += " source, organisation, received, resource"
    types = ["uuid", "uuid", "text", "text", "timestamptz", "float8", "text", "jsonb", "text",
             "text", "text", "timestamptz", "jsonb"]  # fmt: skip
    async with await psycopg.AsyncConnection.connect(url) as conn:
        conn.adapters.register_dumper(_RawJsonb, _RawJsonbDumper)
        start = time.perf_counter()
        for i in range(0, len(values), BATCH):
            async with conn.transaction(), conn.cursor() as cur:
                sql = f"COPY observations ({columns}) FROM STDIN (FORMAT BINARY)"
                async with cur.copy(sql) as copy:
                    copy.set_types(types)
                    for v in values[i : i + BATCH]:
                        await copy.write_row(v)
        return time.perf_counter() - start


async def _forget(url: str, rows: list[ObservationRow]) -> None:
    keys = sorted({r.patient_key for r in rows})
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("SELECT aggregates = 'rollup' FROM storage_layout")
        rollups = (await cur.fetchone() or (False,))[0]
        # The daily rollup is a view of the hourly one; continuous aggregates follow by themselves.
        tables = ["observations", "observations_latest", *(["observations_hourly"] * rollups)]
        for table in tables:
            await conn.execute(f"DELETE FROM {table} WHERE patient_key = ANY(%s::uuid[])", (keys,))  # noqa: S608
        await conn.execute("VACUUM ANALYZE observations")


async def bench_writer(url: str, n: int) -> Figures:
    """Writer vs bare COPY rows/s over the same rows, alternating the order."""
    rng = random.Random(5)
    rows: list[ObservationRow] = []
    for p in range(200):
        times = [NOW - dt.timedelta(minutes=rng.randrange(3 * 1440)) for _ in range(n // 200)]
        rows += _rows(f"9{p:010d}", sorted(set(times)), rng)
    rng.shuffle(rows)
    async with AsyncConnectionPool(url, min_size=1, max_size=2) as pool:
        firsts = list({r.patient_key: r for r in rows}.values())
        await _writer(pool, firsts)  # patients (the bare COPY needs them), partitions, caches
        await _forget(url, rows)
        results: dict[str, list[float]] = {"writer": [], "bare COPY": []}
        for _ in range(2):
            results["bare COPY"].append(len(rows) / await _bare_copy(url, rows))
            await _forget(url, rows)
            results["writer"].append(len(rows) / await _writer(pool, rows))
            await _forget(url, rows)
    print(f"  writer throughput, {len(rows)} rows in batches of {BATCH}, 2 rounds each:")
    for name, rates in results.items():
        each = ", ".join(f"{r:.0f}" for r in rates)
        print(f"    {name:10s} {statistics.fmean(rates):9.0f} rows/s  ({each})")
    writer, bare = (statistics.fmean(results[k]) for k in ("writer", "bare COPY"))
    return {
        "writer rows/s": writer,
        "bare COPY rows/s": bare,
        "writer / bare COPY %": 100 * writer / bare,
    }


async def load_year(url: str, year_rows: int, others: int) -> str:
    """Store a year of minute data for one patient plus ``others`` patients; return its fnr."""
    rng = random.Random(7)
    fnr = "80000000001"
    async with AsyncConnectionPool(url, min_size=1, max_size=2) as pool:
        async with pool.connection() as conn:
            await conn.execute(
                "SELECT malestrom_ensure_partitions(%s, %s)",
                ((NOW - dt.timedelta(days=370)).date(), NOW.date() + dt.timedelta(days=2)),
            )
        sink = ObservationSink(pool)
        start = time.perf_counter()
        # Oldest first, as a year of readings arrives.
        times = [NOW - dt.timedelta(minutes=i) for i in reversed(range(year_rows))]
        for i in range(0, len(times), 20_000):
            rows = _rows(fnr, times[i : i + 20_000], rng)
            for j in range(0, len(rows), 5000):
                await sink.write(rows[j : j + 5000])
        other_rows: list[ObservationRow] = []
        for p in range(others):
            other_times = {NOW - dt.timedelta(minutes=rng.randrange(525_600)) for _ in range(200)}
            other_rows += _rows(f"7{p:010d}", sorted(other_times), rng)
        for j in range(0, len(other_rows), 5000):
            await sink.write(other_rows[j : j + 5000])
        took = time.perf_counter() - start
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("VACUUM ANALYZE")
    print(f"  loaded {year_rows + len(other_rows)} rows in {took:.0f} s through the writer")
    return fnr


_POLICIES = """
SELECT job_id FROM timescaledb_information.jobs
WHERE proc_name = ANY(%s) AND hypertable_schema = 'public' ORDER BY proc_name DESC
"""
_SIZES = {  # MB of the observations (with indexes and TOAST), and of the aggregates
    "postgresql": (
        "SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('observations')",
        "SELECT pg_total_relation_size('observations_hourly')",
    ),
    "timescaledb": (
        "SELECT hypertable_size('observations')",
        "SELECT coalesce(sum(hypertable_size(format('%I.%I', materialization_hypertable_schema,"
        " materialization_hypertable_name)::regclass)), 0)"
        " FROM timescaledb_information.continuous_aggregates",
    ),
}


def settle(url: str) -> Figures:
    """Run what the engine's background jobs would have done to a year (on TimescaleDB
    Community: refresh the aggregates, then move chunks older than 7 days to the columnstore);
    return the on-disk sizes before and after."""
    with psycopg.connect(url, autocommit=True) as conn:
        engine, aggregates = conn.execute(
            "SELECT engine, aggregates FROM storage_layout"
        ).fetchone() or ("", "")
        sizes = _SIZES["postgresql" if engine == "postgresql" else "timescaledb"]
        rollups = conn.execute(sizes[1]).fetchone() or (0,)
        before = conn.execute(sizes[0]).fetchone() or (0,)
        start = time.perf_counter()
        if aggregates == "continuous":
            procs = ["policy_refresh_continuous_aggregate", "policy_compression"]
            for (job,) in conn.execute(_POLICIES, (procs,)).fetchall():
                conn.execute("CALL run_job(%s)", (job,))
        conn.execute("VACUUM ANALYZE")
        after = conn.execute(sizes[0]).fetchone() or (0,)
        aggregate = conn.execute(sizes[1]).fetchone() if aggregates == "continuous" else rollups
    took = time.perf_counter() - start
    mb = 1024 * 1024
    print(f"  policies run in {took:.0f} s; observations {before[0] / mb:.0f} MB before,"
          f" {after[0] / mb:.0f} MB after")  # fmt: skip
    return {
        "observations MB, loaded": before[0] / mb,
        "observations MB, settled": after[0] / mb,
        "size ratio (loaded / settled)": before[0] / after[0],
        "aggregates MB": (aggregate or (0,))[0] / mb,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_http(url: str, fnr: str, requests: int) -> Figures:
    """p50/p99 (ms) of the four questions through the HTTP API, asked by a hospital clinician
    of the development issuer (tokens and proofs checked as in production, on every engine)."""
    port = _free_port()
    issuer = DevIssuer.ensure(Path(tempfile.mkdtemp(prefix="storage-bench-issuer-")))
    env = {**os.environ, **issuer.env(), "MALESTROM_DATABASE_URL": url,
           "MALESTROM_KAFKA_BOOTSTRAP": "127.0.0.1:9"}  # fmt: skip
    api = subprocess.Popen(  # its Kafka client complains of the absent broker: not our figures
        [sys.executable, "-m", "infra.cli", "api", "--port", str(port)],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    patient = f"{FNR_SYSTEM}|{fnr}"
    rng = random.Random(11)

    def jitter(t: dt.datetime) -> str:
        return (t - dt.timedelta(seconds=rng.randrange(3600))).isoformat().replace("+00:00", "Z")

    questions = {
        "$lastn max=1": lambda: (
            "/fhir/Observation/$lastn", {"patient.identifier": patient, "code": "8867-4"}),
        "$lastn all codes max=10": lambda: (
            "/fhir/Observation/$lastn", {"patient.identifier": patient, "max": "10"}),
        "24 h search page (_count=100)": lambda: ("/fhir/Observation", {
            "patient.identifier": patient, "code": "http://loinc.org|8867-4", "_count": "100",
            "date": [f"ge{jitter(day := NOW - dt.timedelta(days=rng.randrange(1, 360)))}",
                     f"lt{jitter(day + dt.timedelta(days=1))}"],
        }),
        "30-day hourly trend": lambda: ("/api/v1/trends", {
            "patient.identifier": patient, "code": "8867-4", "bucket": "1h",
            "from": jitter(NOW - dt.timedelta(days=30)), "to": jitter(NOW),
        }),
        "1-year daily trend": lambda: ("/api/v1/trends", {
            "patient.identifier": patient, "code": "8867-4", "bucket": "1d",
            "from": jitter(NOW - dt.timedelta(days=365)), "to": jitter(NOW),
        }),
    }  # fmt: skip
    try:
        auth = issuer.mint("clinician").auth()
        with httpx.Client(base_url=base, timeout=30, auth=auth) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if (
                        client.get(
                            "/fhir/Observation/$lastn", params={"patient.identifier": patient}
                        ).status_code
                        == 200
                    ):
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("the API did not start")
                time.sleep(0.2)
            print(f"  HTTP latency, {requests} sequential requests each after 20 warm-up (ms):")
            figures: Figures = {}
            for name, make in questions.items():
                for _ in range(20):
                    client.get(make()[0], params=make()[1])
                took = []
                for _ in range(requests):
                    path, params = make()
                    t = time.perf_counter()
                    response = client.get(path, params=params)
                    took.append((time.perf_counter() - t) * 1000)
                    assert response.status_code == 200, response.text
                took.sort()
                p50, p99 = took[len(took) // 2], took[min(len(took) - 1, int(len(took) * 0.99))]
                print(f"    {name:32s} p50 {p50:7.2f}   p99 {p99:7.2f}")
                figures[f"{name} p50 ms"], figures[f"{name} p99 ms"] = p50, p99
            return figures
    finally:
        api.terminate()
        api.wait(10)


def bench_engine(url: str, args: argparse.Namespace) -> Figures:
    """Every figure of one engine, on the database at ``url``."""
    upgrade(url)
    figures = asyncio.run(bench_writer(url, args.write_rows))
    if args.year_rows:
        fnr = asyncio.run(load_year(url, args.year_rows, args.others))
        figures |= settle(url)
        figures |= bench_http(url, fnr, args.requests)
    return figures


def print_side_by_side(results: dict[str, Figures]) -> None:
    """One row per figure, one column per engine."""
    names = list(results)
    print(f"\n{'':44s}" + "".join(f"{n:>20s}" for n in names))
    for figure in next(iter(results.values())):
        print(f"{figure:44s}" + "".join(f"{results[n].get(figure, 0):20.2f}" for n in names))


def main() -> None:
    """Run the benchmark on each engine asked for and print the figures side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=list(CHOICES), default="both")
    parser.add_argument("--write-rows", type=int, default=60_000)
    parser.add_argument("--year-rows", type=int, default=525_600, help="0: writer only")
    parser.add_argument("--others", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    external = os.environ.get("MALESTROM_BENCH_DATABASE_URL")
    if external:
        print("external database (MALESTROM_BENCH_DATABASE_URL):")
        print_side_by_side({"external": bench_engine(external, args)})
        return
    results: dict[str, Figures] = {}
    for name in CHOICES[args.engine]:
        print(f"\n{name}:")
        choice, licence = ENGINES[name]
        with tempfile.TemporaryDirectory() as tmp:
            postgres = EmbeddedPostgres(Path(tmp), engine=choice, license=licence)
            try:
                results[name] = bench_engine(postgres.start(), args)
            finally:
                postgres.stop()
    print_side_by_side(results)


if __name__ == "__main__":
    main()
