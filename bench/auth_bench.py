"""What authentication costs: the checks per request (µs), and ingest and search throughput
with the checks on against off, side by side in one run.

Starts the embedded stack, then:

1. the checks in-process, per request: token verification (first sight, then remembered),
   the DPoP proof, and the replay check (one INSERT in PostgreSQL, shared by all replicas);
2. the API under uvicorn twice, alternating rounds: with the checks (a hub's DPoP-bound token
   from a development issuer) and without them (``MALESTROM_BENCH_AUTH=off``: a fixed
   principal, see ``bench_app``). Ingest: ``POST /fhir`` with 100-entry Bundles. Search: one
   patient's page of 50 readings.

    python bench/auth_bench.py [--seconds 8] [--rounds 2] [--workers 2] [--concurrency 16]

Client, API and database share this machine's cores; compare the two columns, not machines.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from psycopg_pool import AsyncConnectionPool

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.auth.authenticator import RequestFacts, build_authenticator
from api.auth.replay import MemoryReplayCache, ReplayCache, configure_replay_connection
from api.settings import ApiSettings
from bench.ingest_bench import fresh, load, make_bundle, uvicorn_command
from infra.devissuer import DevIssuer, DpopAuth
from infra.embedded import EmbeddedBroker, EmbeddedPostgres
from infra.migrate import upgrade
from infra.processes import free_port, spawn, stop, wait_for_port
from infra.topics import ensure_topics
from ingestion.identifiers import synthetic_person_number
from ingestion.topics import Topics

URL = "http://127.0.0.1:8080/fhir/Observation"


async def check_costs(issuer: DevIssuer, database_url: str, n: int) -> dict[str, float]:
    """Microseconds per request for each check, in this process."""
    settings = ApiSettings(
        kafka_bootstrap="unused:9092",
        database_url=database_url,  # type: ignore[arg-type]
        **{k.removeprefix("MALESTROM_").lower(): v for k, v in issuer.env().items()},
    )
    minted = [issuer.mint("nurse") for _ in range(n)]
    async with AsyncConnectionPool(
        database_url, min_size=2, max_size=4, configure=configure_replay_connection
    ) as pool:
        memory = build_authenticator(settings, MemoryReplayCache())
        shared = build_authenticator(settings, ReplayCache(pool))
        fresh_tokens = [_facts(m.auth()) for m in minted]
        one = minted[0].auth()
        same_token = [_facts(one) for _ in range(n)]
        for facts in fresh_tokens[:20]:  # warm up (imports, key load)
            await memory.authenticate(facts)
        costs = {
            "new token + proof": await _per_call(memory, fresh_tokens[20:]),
            "known token + proof": await _per_call(memory, same_token),
            "known token + proof + replay INSERT": await _per_call(
                shared, [_facts(one) for _ in range(n)]
            ),
        }
    return costs


def _facts(auth: DpopAuth) -> RequestFacts:
    return RequestFacts(
        method="GET",
        url=URL,
        authorization=f"DPoP {auth.token}",
        proofs=[auth.proof("GET", URL)],
    )


async def _per_call(authenticator: Any, requests: list[RequestFacts]) -> float:
    start = time.perf_counter()
    for facts in requests:
        await authenticator.authenticate(facts)
    return (time.perf_counter() - start) / len(requests) * 1e6


async def search(url: str, patient: str, seconds: float, concurrency: int, auth: Any) -> int:
    """Search one patient's page repeatedly for ``seconds``; return the answered requests."""
    deadline = time.monotonic() + seconds
    done = 0
    params = {"patient.identifier": patient, "_count": "50"}
    async with httpx.AsyncClient(base_url=url, timeout=30, auth=auth) as client:

        async def one() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                response = await client.get("/fhir/Observation", params=params)
                if response.status_code != 200:
                    raise SystemExit(f"search answered {response.status_code}: {response.text}")
                done += 1

        await asyncio.gather(*(one() for _ in range(concurrency)))
    return done


def main() -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    rng = random.Random(7)
    patients = [synthetic_person_number(rng) for _ in range(200)]
    bodies = [make_bundle(rng, patients, dt.datetime.now(dt.UTC)) for _ in range(100)]
    results: dict[str, dict[str, list[float]]] = {"ingest": {}, "search": {}}
    with tempfile.TemporaryDirectory(prefix="malestrom-bench-") as tmp:
        data = Path(tmp)
        postgres, broker = EmbeddedPostgres(data), EmbeddedBroker(data)
        try:
            database_url = postgres.start()
            upgrade(database_url)
            bootstrap = broker.start()
            topics = Topics(f"bench-{uuid.uuid4().hex[:8]}")
            ensure_topics(bootstrap, topics, partitions=8)
            issuer = DevIssuer.ensure(data / "dev-issuer")
            costs = asyncio.run(check_costs(issuer, database_url, 2000))
            env = {
                **os.environ,
                **issuer.env(),
                "MALESTROM_KAFKA_BOOTSTRAP": bootstrap,
                "MALESTROM_DATABASE_URL": database_url,
                "MALESTROM_TOPIC_PREFIX": topics.prefix,
            }
            for _ in range(args.rounds):
                for mode in ("off", "on"):
                    _round(mode, env, data, issuer, bodies, patients[0], args, results)
        finally:
            broker.stop()
            postgres.stop()
    _report(costs, results, args)
    return 0


def _round(
    mode: str,
    env: dict[str, str],
    data: Path,
    issuer: DevIssuer,
    bodies: list[bytes],
    patient: str,
    args: Any,
    results: dict[str, dict[str, list[float]]],
) -> None:
    port = free_port()
    api = spawn(
        uvicorn_command(port, args.workers),
        env={**env, "MALESTROM_BENCH_AUTH": mode},
        log=data / f"api-{mode}.log",
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=60, alive=lambda: api.poll() is None)
        url = f"http://127.0.0.1:{port}"
        hub = issuer.mint("hub").auth() if mode == "on" else None
        nurse = issuer.mint("nurse").auth() if mode == "on" else None
        asyncio.run(load(url, [fresh(b) for b in bodies[:20]], 2.0, 4, hub))  # warm up
        start = time.perf_counter()
        accepted, failed = asyncio.run(load(url, bodies, args.seconds, args.concurrency, hub))
        elapsed = time.perf_counter() - start
        if failed:
            raise SystemExit(f"{failed} ingest requests failed with auth {mode}")
        results["ingest"].setdefault(mode, []).append(accepted / elapsed)
        start = time.perf_counter()
        answered = asyncio.run(search(url, patient, args.seconds, args.concurrency, nurse))
        results["search"].setdefault(mode, []).append(answered / (time.perf_counter() - start))
    finally:
        stop(api)


def _report(costs: dict[str, float], results: dict[str, dict[str, list[float]]], args: Any) -> None:
    cores = os.cpu_count() or 1
    lines = [f"authentication: the checks, in-process, µs per request ({cores} cores)"]
    lines += [f"  {name:38s} {us:8.1f}" for name, us in costs.items()]
    lines.append(
        f"\nthroughput, {args.workers} API worker(s), {args.concurrency} concurrent, "
        f"{args.rounds} alternating rounds of {args.seconds:.0f} s"
    )
    for kind, unit in (("ingest", "readings/s (100-entry Bundles)"), ("search", "searches/s")):
        off, on = (statistics.fmean(results[kind][m]) for m in ("off", "on"))
        lines.append(
            f"  {kind:7s} checks off {off:9,.0f}   on {on:9,.0f}  {unit}   "
            f"cost {1 - on / off:+.1%} (ceiling 10 %)"
        )
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
