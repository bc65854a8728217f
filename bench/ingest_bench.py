"""Ingestion throughput: readings/s through ``POST /fhir`` with 100-entry Bundles.

Starts the embedded stack (PostgreSQL + Tansu, migrated, topics created) in a temporary
directory, runs the API under uvicorn on a free 127.0.0.1 port (``--workers`` processes), and
posts unique 100-entry Bundles from an async httpx client for ``--seconds``, as a hub with a
DPoP-bound token of a development issuer (as a hub meets the API). Prints readings/s
and where the time goes per reading: parse + validate (in-process), publish to the broker
(in-process, acks=all), and the HTTP rest (server framework, client, transport).

    python bench/ingest_bench.py [--seconds 10] [--workers 2] [--concurrency 16]

Figures depend on the machine and on whatever else runs on it; compare runs on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra.devissuer import DevIssuer
from infra.embedded import EmbeddedBroker, EmbeddedPostgres
from infra.migrate import upgrade
from infra.processes import free_port, spawn, stop, wait_for_port
from infra.topics import ensure_topics
from ingestion.bundles import parse_bundle
from ingestion.identifiers import synthetic_person_number
from ingestion.measurement import to_json
from ingestion.publisher import KafkaPublisher
from ingestion.topics import Topics

ENTRIES = 100
PLACEHOLDER = "00000000-0000-0000-0000-000000000000"  # replaced per request: every Bundle is new
FNR = "urn:oid:2.16.578.1.12.4.1.4.1"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
VITALS = (("8867-4", "/min", 60, 100), ("2708-6", "%", 90, 100), ("9279-1", "/min", 12, 24))


def make_bundle(rng: random.Random, patients: list[str], now: dt.datetime) -> bytes:
    """A 100-entry batch Bundle of vital signs; `fresh` gives it a new Bundle.identifier."""
    entries = []
    for i in range(ENTRIES):
        code, unit, low, high = VITALS[i % len(VITALS)]
        when = (now - dt.timedelta(seconds=rng.randrange(0, 3600))).isoformat()
        entries.append(
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "request": {"method": "POST", "url": "Observation"},
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": LOINC, "code": code}]},
                    "subject": {"identifier": {"system": FNR, "value": rng.choice(patients)}},
                    "effectiveDateTime": when,
                    "valueQuantity": {
                        "value": rng.randrange(low, high),
                        "unit": unit,
                        "system": UCUM,
                        "code": unit,
                    },
                    "device": {"identifier": {"value": f"SN-{i}"}},
                },
            }
        )
    body = {
        "resourceType": "Bundle",
        "type": "batch",
        "identifier": {"system": "urn:bench", "value": PLACEHOLDER},
        "entry": entries,
    }
    return orjson.dumps(body)


def fresh(body: bytes) -> bytes:
    """The Bundle with a new identifier, so that all its readings are new (not resends)."""
    return body.replace(PLACEHOLDER.encode(), str(uuid.uuid4()).encode(), 1)


def in_process_costs(bodies: list[bytes], bootstrap: str, topics: Topics) -> dict[str, float]:
    """Seconds per reading for parse + validate and for publish, measured in this process."""
    now = dt.datetime.now(dt.UTC)
    start = time.process_time()
    parsed = [parse_bundle(orjson.loads(fresh(b)), received=now) for b in bodies]
    parse_s = (time.process_time() - start) / (len(bodies) * ENTRIES)
    records = [
        [
            (m.patient_key.encode(), to_json(m), [("correlation-id", b"bench")])
            for m in p.measurements
        ]
        for p in parsed
    ]
    publisher = KafkaPublisher(bootstrap=bootstrap)

    async def publish_all() -> None:
        await asyncio.gather(*(publisher.publish(topics.readings, r) for r in records))

    start = time.process_time()  # includes librdkafka's threads
    asyncio.run(publish_all())
    publish_s = (time.process_time() - start) / (len(bodies) * ENTRIES)
    publisher.close()
    return {"parse": parse_s, "publish": publish_s}


async def load(
    url: str,
    bodies: list[bytes],
    seconds: float,
    concurrency: int,
    auth: httpx.Auth | None = None,
) -> tuple[int, int]:
    """Post bundles for ``seconds`` (as ``auth``); return (readings accepted, non-200s)."""
    headers = {"Content-Type": "application/fhir+json"}
    deadline = time.monotonic() + seconds
    accepted = failed = 0
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30, auth=auth) as client:

        async def one_worker(offset: int) -> None:
            nonlocal accepted, failed
            i = offset
            while time.monotonic() < deadline:
                response = await client.post(
                    "/fhir", content=fresh(bodies[i % len(bodies)]), headers=headers
                )
                i += concurrency
                if response.status_code == 200:
                    accepted += sum(
                        e["response"]["status"][:3] == "201"
                        for e in orjson.loads(response.content)["entry"]
                    )
                else:
                    failed += 1

        await asyncio.gather(*(one_worker(k) for k in range(concurrency)))
    return accepted, failed


def main() -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--bundles", type=int, default=100, help="bundle shapes to cycle")
    args = parser.parse_args()
    rng = random.Random(7)
    patients = [synthetic_person_number(rng) for _ in range(200)]
    now = dt.datetime.now(dt.UTC)
    bodies = [make_bundle(rng, patients, now) for _ in range(args.bundles)]
    with tempfile.TemporaryDirectory(prefix="malestrom-bench-") as tmp:
        data = Path(tmp)
        postgres, broker = EmbeddedPostgres(data), EmbeddedBroker(data)
        api = None
        try:
            database_url = postgres.start()
            upgrade(database_url)
            bootstrap = broker.start()
            topics = Topics(f"bench-{uuid.uuid4().hex[:8]}")
            ensure_topics(bootstrap, topics, partitions=8)
            port = free_port()
            issuer = DevIssuer.ensure(data / "dev-issuer")
            env = {
                **os.environ,
                **issuer.env(),
                "MALESTROM_KAFKA_BOOTSTRAP": bootstrap,
                "MALESTROM_DATABASE_URL": database_url,
                "MALESTROM_TOPIC_PREFIX": topics.prefix,
            }
            api = spawn(uvicorn_command(port, args.workers), env=env, log=data / "api.log")
            wait_for_port("127.0.0.1", port, timeout=60, alive=lambda: api.poll() is None)
            costs = in_process_costs(bodies[:50], bootstrap, topics)
            hub = issuer.mint("hub").auth()
            asyncio.run(load(f"http://127.0.0.1:{port}", bodies[:20], 2.0, 4, hub))  # warm up
            start = time.perf_counter()
            accepted, failed = asyncio.run(
                load(f"http://127.0.0.1:{port}", bodies, args.seconds, args.concurrency, hub)
            )
            elapsed = time.perf_counter() - start
        finally:
            if api is not None:
                stop(api)
            broker.stop()
            postgres.stop()
    _report(accepted, failed, elapsed, costs, args)
    return 0


def uvicorn_command(port: int, workers: int) -> list[str]:
    """The API under uvicorn (the benchmark's app factory) on ``port``."""
    return [
        sys.executable, "-m", "uvicorn", "bench_app:create", "--factory",
        "--app-dir", str(Path(__file__).parent),
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip


def _report(accepted: int, failed: int, elapsed: float, costs: dict[str, float], args: Any) -> None:
    rate = accepted / elapsed
    per_reading = elapsed / accepted if accepted else float("nan")
    cores = os.cpu_count() or 1
    rest = per_reading * cores - costs["parse"] - costs["publish"]
    lines = [
        f"POST /fhir, {ENTRIES}-entry batch Bundles, {args.workers} API worker(s), "
        f"{args.concurrency} concurrent requests, {args.seconds:.0f} s",
        f"  readings accepted (201) : {accepted}   non-200 responses: {failed}",
        f"  throughput              : {rate:,.0f} readings/s",
        f"  wall per reading        : {per_reading * 1e6:.1f} µs ({cores} cores busy)",
        "  where the time goes, CPU µs per reading:",
        f"    parse + validate      : {costs['parse'] * 1e6:6.1f}  (in-process)",
        f"    publish, acks=all     : {costs['publish'] * 1e6:6.1f}  (in-process, client side)",
        f"    the rest              : {rest * 1e6:6.1f}  (HTTP server + client, broker, database)",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
