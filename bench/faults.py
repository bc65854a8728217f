"""Fault injection on separate processes: does anything answered 2xx get lost or stored twice?

    python bench/faults.py [--short] [--readings N] [--seconds S] [--scenario NAME ...]

PostgreSQL (embedded), the broker (embedded Tansu, or the Kafka at MALESTROM_TEST_KAFKA_BOOTSTRAP),
the API and the streams worker(s) run as their own processes (`python -m infra.cli api|worker`).
For each scenario a fresh deployment (its own topics and consumer group) takes a bounded,
paced load: complete NEWS2 sets of seven Observations per Bundle, every Observation with its own
identifier (``urn:malestrom:faults``), for synthetic patients (fødselsnummer, month + 80). The
senders record which readings were answered 2xx and, like a hub, send again what failed
(non-2xx, connection errors) until it is accepted. Mid-load, a fault:

- ``worker-kill``: the worker is killed (SIGKILL) and started again;
- ``two-workers-one-killed``: one of two workers is killed; the other takes its partitions;
- ``db-restart``: PostgreSQL is stopped for a few seconds and started again;
- ``broker-restart``: once the first 20 % are stored (their offsets committed), the embedded
  broker (memory only) is restarted mid-load under the running worker and its topics created
  again; then the senders resend everything they sent (a resend is their remedy). The worker
  must read the recreated topics from their first record: no offset from before (a position,
  a commit in flight) may skip one. An external broker cannot be restarted from here: the
  step is skipped and said so, and the senders resend all the same, which must then lose
  nothing either;
- ``api-restart``: the API is killed (SIGKILL) and started again on its port.

Afterwards it counts per identifier what was accepted (answered 2xx), stored, lost (accepted,
never stored) and duplicated (stored more than once), and checks that the rollups
(``observations_hourly``) count exactly the stored readings per patient, code and hour, that
every stored NEWS2 reading has a score at its time, and that every complete set's score is the
one `news2.score` gives for it. The full run prints a table; ``--short`` runs the three
scenarios CI runs (tests/faults/test_faults.py).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg

import news2
from infra.devissuer import DevIssuer
from infra.embedded import EmbeddedBroker, EmbeddedPostgres
from infra.engine import EngineChoice, License
from infra.migrate import upgrade
from infra.processes import free_port, spawn, stop, wait_for_port
from infra.topics import ensure_topics
from ingestion.identifiers import FNR_SYSTEM, patient_key, synthetic_person_number
from ingestion.news2_inputs import NEWS2_CODE
from ingestion.topics import Topics

__all__ = ["SCENARIOS", "SHORT", "Cluster", "Outcome", "run_scenario"]

LOINC, SNOMED, UCUM = "http://loinc.org", "http://snomed.info/sct", "http://unitsofmeasure.org"
IDENTIFIER_SYSTEM = "urn:malestrom:faults"
FHIR = {"Content-Type": "application/fhir+json"}
PARTITIONS = 4


# --- the readings -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewsSet:
    """Seven Observations of one patient at one time, as one Bundle, and the score they make."""

    patient_key: str
    effective: dt.datetime
    identifiers: tuple[str, ...]
    body: bytes
    total: int


def _quantity(code: str, value: float, unit: str) -> dict[str, Any]:
    return {
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    }


def _news_set(fnr: str, at: dt.datetime, tag: str, rng: random.Random) -> NewsSet:
    vitals: dict[str, Any] = {
        "respiration_rate": rng.choice((11, 14, 16, 18, 21)),
        "spo2": rng.choice((93, 95, 97, 98)),
        "on_oxygen": False,
        "systolic_bp": rng.choice((105, 120, 135)),
        "pulse": rng.choice((48, 70, 85, 95)),
        "consciousness": rng.choice("AAAAC"),
        "temperature": rng.choice((35.8, 36.8, 37.4, 38.3)),
    }
    parts = [
        _quantity("9279-1", vitals["respiration_rate"], "/min"),
        _quantity("2708-6", vitals["spo2"], "%"),
        _quantity("3150-0", 21, "%"),  # inhaled oxygen 21 %: room air
        {
            "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
            "component": [
                _quantity("8480-6", vitals["systolic_bp"], "mm[Hg]"),
                _quantity("8462-4", 80, "mm[Hg]"),
            ],
        },
        _quantity("8867-4", vitals["pulse"], "/min"),
        {
            "code": {"coding": [{"system": SNOMED, "code": "1104441000000107"}]},
            "valueString": vitals["consciousness"],
        },
        _quantity("8310-5", vitals["temperature"], "Cel"),
    ]
    identifiers = tuple(f"{tag}-{i}" for i in range(len(parts)))
    entries = [
        {
            "fullUrl": f"urn:uuid:{uuid.uuid4()}",
            "resource": {
                "resourceType": "Observation",
                "status": "final",
                "identifier": [{"system": IDENTIFIER_SYSTEM, "value": ident}],
                "subject": {"identifier": {"system": FNR_SYSTEM, "value": fnr}},
                "effectiveDateTime": at.isoformat(),
                **part,
            },
        }
        for ident, part in zip(identifiers, parts, strict=True)
    ]
    body = orjson.dumps({"resourceType": "Bundle", "type": "batch", "entry": entries})
    total = news2.score(**vitals).total
    assert total is not None
    return NewsSet(str(patient_key(FNR_SYSTEM, fnr)), at, identifiers, body, total)


def make_sets(readings: int, run: str, seed: int) -> list[NewsSet]:
    """About ``readings`` readings: five sets per patient, ten minutes apart, in the last hour
    (so they take the live lane), in an order that interleaves the patients."""
    rng = random.Random(seed)
    count = max(1, -(-readings // 7))
    patients = [synthetic_person_number(rng, offset=80) for _ in range(-(-count // 5))]
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return [
        _news_set(fnr, now - dt.timedelta(minutes=50 - 10 * k), f"{run}-{k}-{p}", rng)
        for k in range(5)
        for p, fnr in enumerate(patients)
    ][:count]


# --- the senders --------------------------------------------------------------------------------


class Senders:
    """Hubs posting the sets at a steady pace from a few threads, recording what was accepted;
    `resend` sends again what failed (or everything), as a hub would, until it is accepted."""

    def __init__(self, url: str, issuer: DevIssuer, sets: list[NewsSet], *, threads: int = 4):
        self.url = url
        self.sets = sets
        self.accepted: set[str] = set()
        self.refused: set[str] = set()
        self.answers: collections.Counter[str] = collections.Counter()
        self._issuer = issuer
        self._threads = threads
        self._failed: set[int] = set()
        self._sent = 0
        self._lock = threading.Lock()
        self._runner: threading.Thread | None = None

    def start(self, indexes: range, *, seconds: float) -> None:
        """Post ``sets[i]`` for i in ``indexes`` over about ``seconds``, in the background."""
        self._runner = threading.Thread(target=self._run, args=(indexes, seconds), daemon=True)
        self._runner.start()

    def wait_sent(self, count: int, timeout: float = 120) -> None:
        """Wait until ``count`` Bundles have been posted (answered or failed)."""
        deadline = time.monotonic() + timeout
        while self._sent < count and time.monotonic() < deadline:
            time.sleep(0.05)

    def join(self) -> None:
        """Wait for the load started by `start` to be posted."""
        if self._runner is not None:
            self._runner.join()

    def resend(self, *, everything: bool = False, timeout: float = 90) -> int:
        """Send what failed (or every set) again, round after round, until all is accepted;
        return how many sets are still not accepted at the deadline."""
        pending = set(range(len(self.sets))) if everything else set(self._failed)
        deadline = time.monotonic() + timeout
        with self._client() as (client, auth):
            while pending and time.monotonic() < deadline:
                pending = {i for i in sorted(pending) if not self._post(client, auth, i)}
                if pending:
                    time.sleep(0.5)
        return len(pending)

    @contextlib.contextmanager
    def _client(self) -> Iterator[tuple[httpx.Client, httpx.Auth]]:
        with httpx.Client(base_url=self.url, timeout=10.0) as client:
            yield client, self._issuer.mint("hub").auth()

    def _run(self, indexes: range, seconds: float) -> None:
        gap = seconds / max(1, len(indexes))
        start = time.monotonic()
        queue = iter(enumerate(indexes))

        def post_all() -> None:
            with self._client() as (client, auth):
                while True:
                    with self._lock:
                        slot, index = next(queue, (-1, -1))
                    if index < 0:
                        return
                    time.sleep(max(0.0, start + slot * gap - time.monotonic()))
                    self._post(client, auth, index)
                    with self._lock:
                        self._sent += 1

        threads = [threading.Thread(target=post_all, daemon=True) for _ in range(self._threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _post(self, client: httpx.Client, auth: httpx.Auth, index: int) -> bool:
        """Post one set; True when every reading in it was answered 2xx."""
        news = self.sets[index]
        try:
            response = client.post("/fhir", content=news.body, headers=FHIR, auth=auth)
        except httpx.HTTPError as exc:
            return self._note(index, type(exc).__name__, [])
        if response.status_code != 200:
            return self._note(index, str(response.status_code), [])
        statuses = [e["response"]["status"][:3] for e in response.json()["entry"]]
        by_status = dict(zip(news.identifiers, statuses, strict=True))
        ok = [i for i, status in by_status.items() if status.startswith("2")]
        refused = {i for i, status in by_status.items() if status.startswith("4")}
        return self._note(index, f"200 ({'/'.join(sorted(set(statuses)))})", ok, refused)

    def _note(
        self, index: int, answer: str, accepted: list[str], refused: set[str] | None = None
    ) -> bool:
        """Record an answer; True when every reading of the set has a final answer (2xx, or a
        4xx: bad data, which a hub does not send again)."""
        done = len(accepted) + len(refused or ()) == len(self.sets[index].identifiers)
        with self._lock:
            self.answers[answer] += 1
            self.accepted.update(accepted)
            self.refused.update(refused or ())
            (self._failed.discard if done else self._failed.add)(index)
        return done


# --- the processes ------------------------------------------------------------------------------


class Cluster:
    """PostgreSQL and the broker, shared by the scenarios of one run, and the dev issuer."""

    def __init__(
        self,
        root: Path,
        *,
        kafka: str | None = None,
        engine: EngineChoice = "auto",
        license: License = "timescale",
    ) -> None:
        self.root = root
        self.postgres = EmbeddedPostgres(root / "services", engine=engine, license=license)
        self.broker = None if kafka else EmbeddedBroker(root / "services")
        self.external_kafka = kafka
        self.issuer = DevIssuer.ensure(root / "dev-issuer")
        self.database_url = ""
        self.bootstrap = kafka or ""

    def start(self) -> None:
        """Start PostgreSQL (and the embedded broker) and migrate."""
        self.database_url = self.postgres.start()
        upgrade(self.database_url)
        if self.broker is not None:
            self.bootstrap = self.broker.start()

    def stop(self) -> None:
        """Stop what `start` started."""
        if self.broker is not None:
            self.broker.stop()
        self.postgres.stop()

    def restart_database(self, down: float) -> None:
        """Fast shutdown, ``down`` seconds without a database, start on the same port."""
        self.postgres.stop()
        time.sleep(down)
        self.postgres.start()

    def restart_broker(self, topics: Topics) -> bool:
        """Restart the embedded broker on its port and create ``topics`` again; False (and
        nothing done) for an external broker."""
        if self.broker is None:
            return False
        self.broker.stop()
        self.broker.start()
        ensure_topics(self.bootstrap, topics, partitions=PARTITIONS)
        return True


class Deployment:
    """One scenario's API and workers, on topics and a consumer group of their own."""

    def __init__(self, cluster: Cluster, name: str) -> None:
        prefix = f"faults-{name}-{uuid.uuid4().hex[:6]}"
        self.topics = Topics(prefix)
        self.logs = cluster.root / "logs" / prefix
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers: list[subprocess.Popen[bytes]] = []
        self.api: subprocess.Popen[bytes] | None = None
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MALESTROM_")} | {
            **cluster.issuer.env(),
            "MALESTROM_KAFKA_BOOTSTRAP": cluster.bootstrap,
            "MALESTROM_DATABASE_URL": cluster.database_url,
            "MALESTROM_TOPIC_PREFIX": prefix,
            "MALESTROM_APP_ID": f"{prefix}-streams",
            "MALESTROM_BROKER_SESSION_TIMEOUT": "6",
        }
        ensure_topics(cluster.bootstrap, self.topics, partitions=PARTITIONS)

    def start_api(self) -> None:
        """Start the API process on this deployment's port and wait until it listens."""
        args = ["api", "--host", "127.0.0.1", "--port", str(self.port)]
        self.api = self._spawn(args, "api")
        api = self.api
        wait_for_port("127.0.0.1", self.port, timeout=60, alive=lambda: api.poll() is None)

    def kill_api(self) -> None:
        """SIGKILL the API: requests in flight fail, nothing is shut down cleanly."""
        if self.api is not None:
            self.api.kill()
            self.api.wait(10)

    def start_worker(self) -> None:
        """Start one more streams worker."""
        self.workers.append(self._spawn(["worker"], f"worker-{len(self.workers)}"))

    def kill_worker(self, index: int = -1) -> None:
        """SIGKILL a worker: no commit, no leaving the group."""
        self.workers[index].kill()
        self.workers[index].wait(10)

    def stop_workers(self) -> float:
        """SIGTERM every worker; return the seconds the slowest took to exit."""
        began = time.monotonic()
        for proc in self.workers:
            stop(proc)
        return time.monotonic() - began

    def stop(self) -> None:
        """Stop the workers and the API."""
        self.stop_workers()
        if self.api is not None:
            stop(self.api)

    def _spawn(self, args: list[str], log: str) -> subprocess.Popen[bytes]:
        path = self.logs / f"{log}.log"
        return spawn([sys.executable, "-m", "infra.cli", *args], env=self.env, log=path)


# --- counting and consistency -------------------------------------------------------------------

_STORED_SQL = """
    SELECT resource -> 'identifier' -> 0 ->> 'value', count(*) FROM observations
    WHERE patient_key = ANY(%s::uuid[]) AND resource -> 'identifier' -> 0 ->> 'system' = %s
    GROUP BY 1"""
# Rollups (writer-kept deltas, or TimescaleDB's real-time continuous aggregate) against the rows
# of the readings. The NEWS2 score Observations the worker stores beside them are left out: the
# writer does not roll them up, while TimescaleDB's continuous aggregate does.
_ROLLUP_SQL = """
    WITH raw AS (
        SELECT patient_key, code, date_bin('1 hour', effective, '2000-01-01') AS bucket,
               count(value) AS n, sum(value) AS total
        FROM observations WHERE patient_key = ANY(%(keys)s::uuid[]) AND value IS NOT NULL
            AND code <> %(score)s
        GROUP BY 1, 2, 3),
    rolled AS (
        SELECT patient_key, code, bucket, sum(n) AS n, sum(total) AS total
        FROM observations_hourly WHERE patient_key = ANY(%(keys)s::uuid[])
            AND code <> %(score)s
        GROUP BY 1, 2, 3)
    SELECT count(*) FILTER (WHERE raw.n IS DISTINCT FROM rolled.n
                                OR abs(raw.total - rolled.total) > 1e-6
                                OR raw.total IS NULL OR rolled.total IS NULL),
           count(*)
    FROM raw FULL JOIN rolled USING (patient_key, code, bucket)"""
_SCORES_SQL = """
    SELECT patient_key::text, effective, total FROM news2_scores
    WHERE patient_key = ANY(%s::uuid[])"""


@dataclass(slots=True)
class Outcome:
    """What a scenario did to the readings answered 2xx, and whether the derived data agree."""

    scenario: str
    accepted: int = 0
    refused: int = 0  # answered 4xx: the harness sends only valid readings, so this is a defect
    stored: int = 0
    lost: int = 0
    duplicated: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked: str = ""  # how much the consistency check compared
    seconds: float = 0.0

    @property
    def consistent(self) -> bool:
        """Rollups equal the rows, and every score is there and right."""
        return not self.problems


def count(database_url: str, senders: Senders, outcome: Outcome) -> Outcome:
    """Fill in ``outcome`` from the database: stored, lost, duplicated and the consistency."""
    keys = sorted({s.patient_key for s in senders.sets})
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        stored: dict[str, int] = dict(
            conn.execute(_STORED_SQL, (keys, IDENTIFIER_SYSTEM)).fetchall()
        )
        rollups = conn.execute(_ROLLUP_SQL, {"keys": keys, "score": NEWS2_CODE}).fetchone()
        scores = {(k, t): total for k, t, total in conn.execute(_SCORES_SQL, (keys,))}
    outcome.accepted = len(senders.accepted)
    outcome.refused = len(senders.refused - senders.accepted)
    outcome.stored = sum(1 for i in senders.accepted if i in stored)
    outcome.lost = outcome.accepted - outcome.stored
    outcome.duplicated = sum(n - 1 for n in stored.values())
    differ, buckets = rollups or (-1, 0)
    outcome.problems = _problems(senders.sets, stored, differ, scores)
    complete = sum(all(i in stored for i in news.identifiers) for news in senders.sets)
    outcome.checked = f"{buckets} rollup buckets, {len(scores)} scores, {complete} complete sets"
    return outcome


def _problems(
    sets: list[NewsSet], stored: dict[str, int], rollups: int, scores: dict[Any, int | None]
) -> list[str]:
    missing = wrong = 0
    for news in sets:
        present = [i in stored for i in news.identifiers]
        score = scores.get((news.patient_key, news.effective), "none")
        if any(present) and score == "none":
            missing += 1
        elif all(present) and score != news.total:
            wrong += 1
    out = [f"{rollups} rollup buckets differ from the rows"] if rollups else []
    out += [f"{missing} times with stored NEWS2 readings have no score"] if missing else []
    out += [f"{wrong} complete sets scored other than news2.score"] if wrong else []
    return out


def settle(database_url: str, senders: Senders, outcome: Outcome, *, quiet: float) -> Outcome:
    """Count until nothing accepted is missing and all agrees, or nothing changed for ``quiet``
    seconds (then what is missing is lost)."""
    last: tuple[int, int, tuple[str, ...]] = (-1, -1, ())
    changed = time.monotonic()
    while True:
        with contextlib.suppress(psycopg.OperationalError):
            count(database_url, senders, outcome)
        if outcome.lost == 0 and outcome.consistent and outcome.accepted:
            return outcome
        now = (outcome.stored, outcome.duplicated, tuple(outcome.problems))
        if now != last:
            last, changed = now, time.monotonic()
        elif time.monotonic() - changed > quiet:
            return outcome
        time.sleep(1)


# --- the scenarios ------------------------------------------------------------------------------

Scenario = Callable[[Cluster, Deployment, Senders, float], list[str]]


def _worker_kill(cluster: Cluster, d: Deployment, s: Senders, seconds: float) -> list[str]:
    d.start_worker()
    s.start(range(len(s.sets)), seconds=seconds)
    s.wait_sent(len(s.sets) * 2 // 5)
    d.kill_worker()
    time.sleep(1)
    d.start_worker()
    s.join()
    return ["worker killed (SIGKILL) at 40 % of the load, started again 1 s later"]


def _two_workers(cluster: Cluster, d: Deployment, s: Senders, seconds: float) -> list[str]:
    d.start_worker()
    d.start_worker()
    s.start(range(len(s.sets)), seconds=seconds)
    s.wait_sent(len(s.sets) * 2 // 5)
    d.kill_worker(0)
    s.join()
    return ["one of two workers killed (SIGKILL) at 40 % of the load, not restarted"]


def _db_restart(cluster: Cluster, d: Deployment, s: Senders, seconds: float) -> list[str]:
    d.start_worker()
    s.start(range(len(s.sets)), seconds=seconds)
    s.wait_sent(len(s.sets) // 3)
    cluster.restart_database(down=5)
    s.join()
    return ["PostgreSQL stopped (fast shutdown) at 33 % of the load, started again after 5 s"]


def _broker_restart(cluster: Cluster, d: Deployment, s: Senders, seconds: float) -> list[str]:
    first = len(s.sets) // 5
    d.start_worker()
    s.start(range(first), seconds=seconds / 5)
    s.join()
    stored = settle(cluster.database_url, s, Outcome("first part"), quiet=30).stored
    s.start(range(first, len(s.sets)), seconds=seconds * 4 / 5)
    s.wait_sent(len(s.sets) // 2)
    notes = [
        f"the first 20 % stored ({stored} readings, their offsets committed); the worker keeps "
        "running through the restart, with batches in flight"
    ]
    if cluster.restart_broker(d.topics):
        notes.append("embedded broker restarted at 50 % of the load and its topics created again")
    else:
        notes.append("external broker (MALESTROM_TEST_KAFKA_BOOTSTRAP): not restarted")
    s.join()
    unsent = s.resend(everything=True)
    notes.append(f"senders resent all {len(s.sets)} sets; {unsent} still not accepted")
    return notes


def _api_restart(cluster: Cluster, d: Deployment, s: Senders, seconds: float) -> list[str]:
    d.start_worker()
    s.start(range(len(s.sets)), seconds=seconds)
    s.wait_sent(len(s.sets) * 2 // 5)
    d.kill_api()
    time.sleep(1)
    d.start_api()
    s.join()
    return ["API killed (SIGKILL) at 40 % of the load, started again on its port after 1 s"]


SCENARIOS: dict[str, Scenario] = {
    "worker-kill": _worker_kill,
    "two-workers-one-killed": _two_workers,
    "db-restart": _db_restart,
    "broker-restart": _broker_restart,
    "api-restart": _api_restart,
}
SHORT = ("worker-kill", "db-restart", "broker-restart")


def run_scenario(
    cluster: Cluster, name: str, *, readings: int, seconds: float, quiet: float = 20
) -> Outcome:
    """Run one scenario on a fresh deployment; count and check what it did."""
    began = time.monotonic()
    sets = make_sets(readings, f"{name}-{uuid.uuid4().hex[:6]}", seed=hash(name) & 0xFFFF)
    deployment = Deployment(cluster, name)
    outcome = Outcome(name)
    try:
        deployment.start_api()
        senders = Senders(deployment.url, cluster.issuer, sets)
        outcome.notes = SCENARIOS[name](cluster, deployment, senders, seconds)
        if left := senders.resend():
            outcome.notes.append(f"{left} sets never accepted however often they were resent")
        settle(cluster.database_url, senders, outcome, quiet=quiet)
        answers = ", ".join(f"{a}: {n}" for a, n in sorted(senders.answers.items()))
        outcome.notes.append(f"answers to {len(sets)} sets and their resends: {answers}")
    finally:
        deployment.stop()
    outcome.seconds = time.monotonic() - began
    return outcome


# --- the command --------------------------------------------------------------------------------


def print_table(outcomes: list[Outcome]) -> None:
    """The table: scenario, accepted, stored, lost, duplicated, consistency, seconds."""
    head = ("scenario", "accepted", "refused", "stored", "lost", "duplicated", "consistency",
            "seconds")  # fmt: skip
    rows = [
        (o.scenario, o.accepted, o.refused, o.stored, o.lost, o.duplicated,
         "ok" if o.consistent else "NOT OK", f"{o.seconds:.0f}")
        for o in outcomes
    ]  # fmt: skip
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=True)]
    for row in (head, *rows):
        print("  ".join(str(x).rjust(w) if i else str(x).ljust(w)
                        for i, (x, w) in enumerate(zip(row, widths, strict=True))))  # fmt: skip
    for o in outcomes:
        for line in [*o.notes, f"checked {o.checked}", *o.problems]:
            print(f"  {o.scenario}: {line}")


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios, print the table; exit 1 when anything was lost, duplicated or wrong."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help=f"only {', '.join(SHORT)}")
    parser.add_argument("--readings", type=int, default=None, help="per scenario")
    parser.add_argument("--seconds", type=float, default=None, help="load duration per scenario")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    args = parser.parse_args(argv)
    names = args.scenario or (SHORT if args.short else tuple(SCENARIOS))
    readings = args.readings or (700 if args.short else 4200)
    seconds = args.seconds or (8.0 if args.short else 30.0)
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="malestrom-faults-") as tmp:
        cluster = Cluster(Path(tmp), kafka=os.environ.get("MALESTROM_TEST_KAFKA_BOOTSTRAP"))
        cluster.start()
        try:
            for name in names:
                outcomes.append(run_scenario(cluster, name, readings=readings, seconds=seconds))
                print(f"{name}: done in {outcomes[-1].seconds:.0f} s", file=sys.stderr)
        finally:
            cluster.stop()
    print_table(outcomes)
    clean = all(o.lost == o.duplicated == o.refused == 0 and o.consistent for o in outcomes)
    return 0 if clean else 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(main())
