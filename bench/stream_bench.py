"""Benchmark NEWS2 in the stream.

1. Scoring stage: readings/s through store-and-score (`streams.agents.process_batch`: the
   worker's whole middle) against the embedded PostgreSQL, in batches of 500; no broker.
2. Alert latency: ``malestrom up`` on a free port; 100 readings/s are posted, each one a red
   score for a fresh patient (so each raises exactly one alert); the time from sending the
   POST to receiving the alert on ``/api/v1/alerts/stream`` is measured, p50/p99.
3. The same while a backfill drains: ``--backfill`` readings (default 100,000) measured more
   than a day ago are posted in Bundles of 100 just before and during the live readings.

Usage: ``python bench/stream_bench.py [--patients 200] [--rate 100] [--seconds 20]
[--backfill 100000]``
Prints figures; asserts nothing about time. Loopback only; stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
from httpx_sse import aconnect_sse
from psycopg_pool import AsyncConnectionPool

from infra.devissuer import SIMULATED_ORGANISATION, DevIssuer
from infra.embedded import EmbeddedPostgres
from infra.migrate import upgrade
from infra.processes import free_port
from ingestion.identifiers import FNR_SYSTEM, synthetic_person_number
from ingestion.measurement import to_json
from ingestion.observations import parse_observation
from streams.agents import Envelope, process_batch
from streams.scorer import News2Scorer
from streams.sinks import ObservationSink

FHIR = {"Content-Type": "application/fhir+json"}
VITALS = (
    ("9279-1", 16.0, "/min"),
    ("2708-6", 97.0, "%"),
    ("8867-4", 70.0, "/min"),
    ("8310-5", 36.8, "Cel"),
)


def _observation(fnr: str, code: str, value: float, unit: str, at: dt.datetime) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"identifier": {"system": FNR_SYSTEM, "value": fnr}},
        "effectiveDateTime": at.isoformat(),
        "valueQuantity": {
            "value": value,
            "unit": unit,
            "system": "http://unitsofmeasure.org",
            "code": unit,
        },
    }


async def _nothing(_records: Sequence[Any]) -> None:
    return None


async def bench_stage(database_url: str, patients: int, readings_each: int) -> None:
    """Readings/s through persist + score, in batches of 500."""
    import random

    rng = random.Random(1)
    fnrs = [synthetic_person_number(rng) for _ in range(patients)]
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    now = dt.datetime.now(dt.UTC)
    envelopes: list[Envelope] = []
    for i in range(readings_each):
        at = start + dt.timedelta(minutes=i)
        for fnr in fnrs:
            code, base, unit = VITALS[i % len(VITALS)]
            m = parse_observation(
                _observation(fnr, code, base + rng.uniform(-2, 2), unit, at), received=now
            )
            envelopes.append(
                Envelope(m.patient_key.encode(), to_json(m), {}, "r", 0, len(envelopes))
            )
    async with AsyncConnectionPool(database_url, min_size=2, max_size=4, open=False) as pool:
        await pool.wait()
        sink = ObservationSink(pool)
        scorer = News2Scorer(pool, emit_scores=_nothing, emit_alerts=_nothing)
        t0 = time.perf_counter()
        for lo in range(0, len(envelopes), 500):
            batch = envelopes[lo : lo + 500]
            await process_batch(batch, sink=sink, scorer=scorer, dead_letter=_nothing)
        took = time.perf_counter() - t0
    n = len(envelopes)
    print(f"scoring stage: {n:,} readings ({patients} patients × {readings_each}), batches of 500")
    print(f"  store+score: {n / took:,.0f} readings/s")


async def post_backfill(client: httpx.AsyncClient, count: int) -> tuple[int, float]:
    """Post ``count`` pulse readings measured two days ago, in Bundles of 100, four at a time;
    return how many were accepted and how long posting took."""
    import random

    rng = random.Random(3)
    fnrs = [synthetic_person_number(rng, offset=80) for _ in range(max(1, count // 100))]
    old = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(days=2)
    bodies = [
        {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [
                {
                    "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                    "resource": _observation(
                        fnr, "8867-4", rng.randint(55, 95), "/min", old + dt.timedelta(minutes=i)
                    ),
                }
                for i in range(100)
            ],
        }
        for fnr in fnrs
    ]
    accepted = 0
    gate = asyncio.Semaphore(4)

    async def post(body: dict[str, Any]) -> None:
        nonlocal accepted
        async with gate:
            answer = await client.post("/fhir", content=orjson.dumps(body), headers=FHIR)
            accepted += 100 if answer.status_code == 200 else 0

    start = time.perf_counter()
    await asyncio.gather(*(post(b) for b in bodies))
    return accepted, time.perf_counter() - start


async def bench_latency(
    url: str,
    rate: float,
    seconds: float,
    backfill: int = 0,
    *,
    issuer: DevIssuer,
    seed: int = 2,
) -> None:
    """Latency from POST /fhir to the alert on the SSE stream, at ``rate`` readings/s, while
    ``backfill`` old readings are posted and drained."""
    organisation = SIMULATED_ORGANISATION  # the development nurse's; no simulator runs here
    # A nurse of the organisation who may also send readings (as the integration tests act).
    nurse = issuer.mint("nurse", scopes=("ingest", "read", "alerts", "settings")).auth()
    count = int(rate * seconds)
    import random

    rng = random.Random(seed)  # each run its own patients: an open alert raises nothing new
    fnrs = list({synthetic_person_number(rng, offset=80) for _ in range(count)})
    sent: dict[str, float] = {}
    received: dict[str, float] = {}
    timeout = httpx.Timeout(10, read=None)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, auth=nurse) as client:
        refused = 0
        for fnr in fnrs:  # the organisation's patients, breathing room air per care plan
            answer = await client.put(
                "/api/v1/patients/news2-settings",
                json={
                    "patient": {"value": fnr},
                    "set_by": "bench",
                    "organisation": organisation,
                    "spo2_scale": 1,
                    "long_term_oxygen": False,
                },
            )
            refused += answer.status_code != 200
        done = asyncio.Event()

        async def listen() -> None:
            async with aconnect_sse(
                client, "GET", "/api/v1/alerts/stream", params={"organisation": organisation}
            ) as source:
                async for event in source.aiter_sse():
                    if event.event != "alert":
                        continue
                    value = orjson.loads(event.data)["alert"]["patient"]["value"]
                    received.setdefault(value, time.perf_counter())
                    if len(received) == len(fnrs):
                        done.set()
                        return

        listener = asyncio.create_task(listen())
        await asyncio.sleep(1.0)
        backfilling = asyncio.create_task(post_backfill(client, backfill)) if backfill else None
        await asyncio.sleep(2.0 if backfill else 0.0)  # the backlog is building when live starts
        start = time.perf_counter()
        posts = []
        for i, fnr in enumerate(fnrs):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            at = dt.datetime.now(dt.UTC)
            body = {
                "resourceType": "Bundle",
                "type": "batch",
                "entry": [
                    {
                        "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                        "resource": _observation(fnr, "8867-4", 135, "/min", at),
                    }
                ],
            }
            sent[fnr] = time.perf_counter()
            posts.append(
                asyncio.create_task(client.post("/fhir", content=orjson.dumps(body), headers=FHIR))
            )
        statuses = [r.status_code for r in await asyncio.gather(*posts)]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 60)
        listener.cancel()
        if backfilling is not None:
            accepted, took = await backfilling
            print(f"backfill: {accepted:,} readings measured 2 days ago accepted in {took:.1f} s")
    latencies = sorted(received[f] - sent[f] for f in fnrs if f in received)
    print(
        f"alert latency{' during the backfill' if backfill else ''}: {len(fnrs)} red-score "
        f"readings at {rate:.0f}/s over {seconds:.0f} s; {statuses.count(200)} accepted, "
        f"{len(latencies)} alerts seen on the stream; {refused} settings refused"
    )
    if latencies:
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(
            f"  POST → SSE alert: p50 {statistics.median(latencies) * 1000:.0f} ms, "
            f"p99 {p99 * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--readings", type=int, default=100, help="readings per patient (stage)")
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--backfill", type=int, default=100_000)
    parser.add_argument("--skip-stage", action="store_true")
    args = parser.parse_args()
    print("machine: 2 cores shared with whatever else runs; figures are indicative")
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_stage:
            postgres = EmbeddedPostgres(Path(tmp) / "stage")
            try:
                url = postgres.start()
                upgrade(url)
                asyncio.run(bench_stage(url, args.patients, args.readings))
            finally:
                postgres.stop()
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALESTROM_")}
        up = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "infra.cli",
                "up",
                "--port",
                str(port),
                "--data-dir",
                str(Path(tmp) / "up"),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            issuer = DevIssuer.ensure(Path(tmp) / "up" / "dev-issuer")  # made by `up`
            asyncio.run(bench_latency(base, args.rate, args.seconds, issuer=issuer))
            if args.backfill:
                asyncio.run(
                    bench_latency(
                        base, args.rate, args.seconds, args.backfill, issuer=issuer, seed=4
                    )
                )
        finally:
            up.send_signal(signal.SIGTERM)
            up.wait(60)


if __name__ == "__main__":
    main()
