"""Benchmark the whole way through one streams worker: readings waiting in the topic → stored and
scored, against a bare consume + COPY of the same topic (the ceiling the broker and database
allow), in the same run; then the same with two workers.

    python bench/pipeline_bench.py [--readings 100000] [--patients 1000] [--partitions 4]

Each patient-minute is a full NEWS2 set of seven readings (respiration, SpO2, pulse, temperature,
blood pressure as a panel, ACVPU, room air), measured in the last minutes so they take the live
lane. The readings are parsed as the API parses them and published with the API's producer while
no worker runs; then a worker is started and readings/s is measured from the first stored row to
the last reading stored and the last score written (database timestamps). The bare consumer
reads the same topic in a new group and COPYs every record into a table, in batches of 500.

Starts an embedded PostgreSQL and broker in a temporary directory (loopback only) unless
MALESTROM_BENCH_DATABASE_URL / MALESTROM_BENCH_KAFKA_BOOTSTRAP are given; stops by itself.
Figures on a shared 2-core machine are noisy; they are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
from confluent_kafka import Consumer, Producer

from infra.embedded import EmbeddedBroker, EmbeddedPostgres
from infra.migrate import upgrade
from infra.processes import spawn, stop
from infra.topics import ensure_topics
from ingestion.identifiers import FNR_SYSTEM, synthetic_person_number
from ingestion.measurement import to_json
from ingestion.observations import parse_observation
from ingestion.rendering import to_observation
from ingestion.topics import Topics

LOINC, SNOMED, UCUM = "http://loinc.org", "http://snomed.info/sct", "http://unitsofmeasure.org"
QUANTITIES = (("9279-1", 16, "/min"), ("2708-6", 97, "%"), ("8867-4", 72, "/min"),
              ("8310-5", 36.8, "Cel"))  # fmt: skip
BARE_TABLE = "CREATE UNLOGGED TABLE IF NOT EXISTS bench_bare (key text, value jsonb)"


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def _news2_set(fnr: str, at: dt.datetime, rng: random.Random) -> list[dict[str, Any]]:
    base = {
        "resourceType": "Observation",
        "status": "final",
        "subject": {"identifier": {"system": FNR_SYSTEM, "value": fnr}},
        "effectiveDateTime": at.isoformat(),
        "device": {"identifier": {"value": "bench-hub"}},
    }
    out = [
        base
        | {
            "code": {"coding": [{"system": LOINC, "code": code}]},
            "valueQuantity": _quantity(round(value + rng.uniform(-2, 2), 1), unit),
        }
        for code, value, unit in QUANTITIES
    ]
    bp = [("8480-6", rng.randint(105, 140)), ("8462-4", rng.randint(65, 90))]
    out.append(
        base
        | {
            "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
            "component": [
                {
                    "code": {"coding": [{"system": LOINC, "code": c}]},
                    "valueQuantity": _quantity(v, "mm[Hg]"),
                }
                for c, v in bp
            ],
        }
    )
    out.append(
        base
        | {
            "code": {"coding": [{"system": SNOMED, "code": "1104441000000107"}]},
            "valueString": rng.choice("AAAAAAAAC"),
        }
    )
    out.append(base | {"code": {"coding": [{"system": SNOMED, "code": "722742002"}]}})
    return out


def make_readings(n: int, patients: int, seed: int) -> tuple[list[tuple[bytes, bytes]], set[str]]:
    """``n`` readings (key, value) as the API publishes them, and the patient keys."""
    rng = random.Random(seed)
    fnrs = [synthetic_person_number(rng, offset=80) for _ in range(patients)]
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    minutes = -(-n // (patients * 7))
    records: list[tuple[bytes, bytes]] = []
    keys: set[str] = set()
    for minute in range(minutes):
        at = now - dt.timedelta(minutes=minutes - minute)
        for fnr in fnrs:
            for resource in _news2_set(fnr, at, rng):
                m = parse_observation(resource, received=now)
                value = to_json(m, resource=orjson.dumps(to_observation(m)))  # as the API does
                records.append((m.patient_key.encode(), value))
                keys.add(m.patient_key)
    return records[:n], keys


def publish(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    """Publish with the API's producer settings (idempotent, acks=all)."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
         "linger.ms": 5}
    )  # fmt: skip
    for key, value in records:
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(60)


def bare_consume_copy(bootstrap: str, topic: str, url: str, n: int) -> float:
    """Readings/s of a bare consumer that COPYs every record into a table."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"bare-{uuid.uuid4().hex[:8]}",
         "auto.offset.reset": "earliest", "enable.auto.commit": False}
    )  # fmt: skip
    consumer.subscribe([topic])
    seen, start = 0, None
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(BARE_TABLE)
        conn.execute("TRUNCATE bench_bare")
        while seen < n:
            messages = consumer.consume(500, 1.0)
            if not messages:
                continue
            start = start or time.perf_counter()
            with conn.transaction(), conn.cursor().copy("COPY bench_bare FROM STDIN") as copy:
                for m in messages:
                    copy.write_row((m.key().decode(), m.value().decode()))
            consumer.commit(asynchronous=False)
            seen += len(messages)
    consumer.close()
    assert start is not None
    return seen / (time.perf_counter() - start)


def measure_workers(
    env: dict[str, str], url: str, keys: set[str], n: int, workers: int, log_dir: Path
) -> tuple[float, float, float]:
    """Start ``workers`` workers; return (readings/s, seconds to all stored, to all scored)."""
    procs = [
        spawn([sys.executable, "-m", "infra.cli", "worker"], env=env, log=log_dir / f"w{i}.log")
        for i in range(workers)
    ]
    key_list = list(keys)
    deadline = time.monotonic() + 900
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            while time.monotonic() < deadline:
                time.sleep(1.0)
                stored, scores, wanted = conn.execute(
                    """SELECT (SELECT count(*) FROM observations
                               WHERE patient_key = ANY(%(k)s::uuid[]) AND source <> 'news2'),
                              (SELECT count(*) FROM news2_scores
                               WHERE patient_key = ANY(%(k)s::uuid[])),
                              (SELECT count(DISTINCT (patient_key, effective)) FROM observations
                               WHERE patient_key = ANY(%(k)s::uuid[]) AND source <> 'news2')""",
                    {"k": key_list},
                ).fetchone() or (0, 0, 0)
                if stored >= n and scores >= wanted:
                    break
            first, last_row, last_score = conn.execute(
                """SELECT (SELECT min(stored) FROM observations
                           WHERE patient_key = ANY(%(k)s::uuid[]) AND source <> 'news2'),
                          (SELECT max(stored) FROM observations
                           WHERE patient_key = ANY(%(k)s::uuid[]) AND source <> 'news2'),
                          (SELECT max(computed_at) FROM news2_scores
                           WHERE patient_key = ANY(%(k)s::uuid[]))""",
                {"k": key_list},
            ).fetchone() or (None, None, None)
    finally:
        for proc in procs:
            stop(proc)
    if stored < n or scores < wanted:
        print(f"  incomplete: {stored}/{n} readings, {scores}/{wanted} scores stored")
    end = max(last_row, last_score)
    span = (end - first).total_seconds()
    return n / span, (last_row - first).total_seconds(), (last_score - first).total_seconds()


@contextlib.contextmanager
def services(tmp: Path) -> Iterator[tuple[str, str]]:
    """The database and broker: external when given, else embedded."""
    url = os.environ.get("MALESTROM_BENCH_DATABASE_URL")
    bootstrap = os.environ.get("MALESTROM_BENCH_KAFKA_BOOTSTRAP")
    postgres = None if url else EmbeddedPostgres(tmp / "pg")
    broker = None if bootstrap else EmbeddedBroker(tmp / "broker")
    try:
        url = url or postgres.start()  # type: ignore[union-attr]
        bootstrap = bootstrap or broker.start()  # type: ignore[union-attr]
        upgrade(url)
        yield url, bootstrap
    finally:
        if broker is not None:
            broker.stop()
        if postgres is not None:
            postgres.stop()


def run(args: argparse.Namespace, url: str, bootstrap: str, workers: int, tmp: Path) -> None:
    """One measured run: fresh topics and patients, the workers, then the bare ceiling."""
    topics = Topics(f"bench-{uuid.uuid4().hex[:8]}")
    ensure_topics(bootstrap, topics, partitions=args.partitions)
    records, keys = make_readings(args.readings, args.patients, seed=workers)
    t0 = time.perf_counter()
    publish(bootstrap, topics.readings, records)
    print(f"{workers} worker(s): {len(records):,} readings of {len(keys)} patients published "
          f"in {time.perf_counter() - t0:.1f} s")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALESTROM_")}
    env |= {
        "MALESTROM_KAFKA_BOOTSTRAP": bootstrap,
        "MALESTROM_DATABASE_URL": url,
        "MALESTROM_TOPIC_PREFIX": topics.prefix,
        "MALESTROM_APP_ID": f"{topics.prefix}-streams",
        "MALESTROM_BROKER_SESSION_TIMEOUT": "6",
    }
    rate, stored_s, scored_s = measure_workers(env, url, keys, len(records), workers, tmp)
    ceiling = bare_consume_copy(bootstrap, topics.readings, url, len(records))
    print(f"  worker(s):  {rate:,.0f} readings/s stored and scored "
          f"(all stored after {stored_s:.1f} s, all scored after {scored_s:.1f} s)")  # fmt: skip
    print(f"  bare consume+COPY: {ceiling:,.0f} readings/s")
    print(f"  ratio: {rate / ceiling:.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=100_000)
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    args = parser.parse_args()
    print("machine: 2 cores shared with whatever else runs; figures are indicative")
    with tempfile.TemporaryDirectory() as tmp, services(Path(tmp)) as (url, bootstrap):
        for workers in args.workers:
            run(args, url, bootstrap, workers, Path(tmp))
    asyncio.run(asyncio.sleep(0))


if __name__ == "__main__":
    main()
