"""Benchmark NEWS2 in the stream.

1. Scoring stage: readings/s through store-and-score (`streams.agents.process_batch`: the
   worker's whole middle) against the embedded PostgreSQL, in batches of 500; no broker.
2. Alert latency: ``malestrom up`` on a free port; 100 readings/s are posted, each one a red
   score for a fresh patient (so each raises exactly one alert); the time from sending the
   POST to receiving the alert on ``/api/v1/alerts/stream`` is measured, p50/p99.
3. The same while a backfill drains: ``--backfill`` readings (default 100,000) measured two
   days ago are put on the backfill topic (as the API publishes them) just before the live
   readings start, so the worker drains them while the live readings come.

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
import random
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

from infra.devissuer import DevIssuer
from infra.embedded import EmbeddedBroker, EmbeddedPostgres
from infra.migrate import upgrade
from infra.processes import free_port
from ingestion.identifiers import FNR_SYSTEM, synthetic_person_number
from ingestion.measurement import to_json
from ingestion.observations import parse_observation
from ingestion.rendering import to_observation
from ingestion.topics import Topics
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


def _organisation_number(rng: random.Random) -> str:
    """A synthetic organisation number: nine digits, the 31… test series, valid mod-11."""
    while True:
        head = "31" + "".join(rng.choice("0123456789") for _ in range(6))
        weights = (3, 2, 7, 6, 5, 4, 3, 2)
        check = 11 - sum(int(d) * w for d, w in zip(head, weights, strict=True)) % 11
        if check < 10 or check == 11:
            return head + str(check % 11)


def publish_backlog(bootstrap: str, topic: str, count: int) -> float:
    """Put ``count`` pulse readings measured two days ago on the backfill topic, as the API
    publishes them (a hub's backlog, accepted while the worker was behind); return the seconds
    publishing took. The API stays free for the live readings, so what is measured is the
    worker's drain, not the API's parsing."""
    from confluent_kafka import Producer

    rng = random.Random(3)
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    fnrs = [synthetic_person_number(rng, offset=80) for _ in range(max(1, count // 100))]
    values = []
    for i in range(count):
        at = now - dt.timedelta(days=2) + dt.timedelta(minutes=i // len(fnrs))
        resource = _observation(fnrs[i % len(fnrs)], "8867-4", rng.randint(55, 95), "/min", at)
        m = parse_observation(resource, received=now)
        values.append(
            (m.patient_key.encode(), to_json(m, resource=orjson.dumps(to_observation(m))))
        )
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5}
    )
    start = time.perf_counter()
    for key, value in values:
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(60)
    return time.perf_counter() - start


async def bench_latency(
    url: str,
    rate: float,
    seconds: float,
    backfill: int = 0,
    *,
    issuer: DevIssuer,
    bootstrap: str,
    seed: int = 2,
) -> None:
    """Latency from POST /fhir to the alert on the SSE stream, at ``rate`` readings/s, while
    ``backfill`` old readings are posted and drained."""
    rng = random.Random(seed)  # each run its own patients and organisation: its own alerts
    organisation = _organisation_number(rng)
    # A nurse of the organisation who may also send readings (as the integration tests act).
    scopes = ("ingest", "read", "alerts", "settings")
    nurse = issuer.mint("nurse", org=organisation, scopes=scopes).auth()
    count = int(rate * seconds)
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
        if backfill:  # the backlog is waiting when the live readings start
            took = await asyncio.to_thread(publish_backlog, bootstrap, Topics().backfill, backfill)
            print(f"backfill: {backfill:,} readings measured 2 days ago published in {took:.1f} s")
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
        broker = EmbeddedBroker(Path(tmp) / "broker")  # ours, so the backlog can be put on it
        env["MALESTROM_KAFKA_BOOTSTRAP"] = bootstrap = broker.start()
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
            asyncio.run(
                bench_latency(base, args.rate, args.seconds, issuer=issuer, bootstrap=bootstrap)
            )
            if args.backfill:
                asyncio.run(
                    bench_latency(
                        base,
                        args.rate,
                        args.seconds,
                        args.backfill,
                        issuer=issuer,
                        bootstrap=bootstrap,
                        seed=4,
                    )
                )
        finally:
            up.send_signal(signal.SIGTERM)
            up.wait(60)
            broker.stop()


if __name__ == "__main__":
    main()
