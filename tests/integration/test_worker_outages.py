"""The worker through outages of the services it depends on: a broker that is down does not
keep it from stopping, and a database that is down pauses it, without dead letters, until the
database is back; then everything is stored."""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from infra.dlq import list_dead_letters
from infra.embedded import EmbeddedBroker, EmbeddedPostgres
from infra.topics import ensure_topics
from ingestion.measurement import to_json
from ingestion.observations import parse_observation
from ingestion.rendering import to_observation
from ingestion.topics import Topics
from tests.engines import ENGINES, migrate_for_tests, session_engine
from tests.helpers import TEST_PARTITIONS, eventually, fresh_fnr, observation
from tests.integration.conftest import Worker, worker_env
from tests.integration.storage_helpers import scalar

pytestmark = pytest.mark.integration

READY = "SELECT coalesce(max(partitions), 0) FROM worker_status WHERE group_id = %s"
STORED = "SELECT count(*) FROM observations WHERE id = ANY(%s::uuid[])"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker of this test's own, which it may stop."""
    own = EmbeddedBroker(tmp_path / "broker")
    own.start()
    try:
        yield own
    finally:
        if own.process is not None and own.process.poll() is None:
            os.kill(own.process.pid, signal.SIGCONT)  # a frozen broker cannot stop
        own.stop()


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[tuple[EmbeddedPostgres, str]]:
    """A migrated database of this test's own (the session's engine), which it may stop."""
    expected = ENGINES[session_engine()]
    own = EmbeddedPostgres(tmp_path / "db", engine=expected.choice, license=expected.license)
    url = own.start()
    migrate_for_tests(url)
    try:
        yield own, url
    finally:
        own.stop()


@contextmanager
def _running(env: dict[str, str], log: Path, database_url: str) -> Iterator[Worker]:
    """A worker, once it holds its partitions; stopped at the end whatever happened."""
    worker = Worker(env, log)
    worker.start()
    try:
        group = env["MALESTROM_APP_ID"]
        eventually(lambda: scalar(database_url, READY, group) > 0, timeout=60, what="ready")
        yield worker
    finally:
        worker.stop()


def _publish_readings(
    bootstrap: str, topics: Topics, count: int, *, backfill: bool = False
) -> list[str]:
    """Put ``count`` pulse readings on a lane as the API does: measured now on the live topic,
    or measured two hours before acceptance on the backfill topic; return their ids."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    age = dt.timedelta(hours=2) if backfill else dt.timedelta()
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    ids = []
    for i in range(count):
        effective = (now - age - dt.timedelta(seconds=i)).isoformat()
        m = parse_observation(observation(fnr=fresh_fnr(), effective=effective), received=now)
        value = to_json(m, resource=orjson.dumps(to_observation(m)))
        topic = topics.backfill if backfill else topics.readings
        producer.produce(topic, value, m.patient_key.encode())
        ids.append(m.id)
    assert producer.flush(10) == 0
    return ids


def _stop(broker: EmbeddedBroker) -> None:
    broker.stop()


def _freeze(broker: EmbeddedBroker) -> None:
    """Connections stay open and nothing answers: requests wait for their timeouts."""
    assert broker.process is not None
    os.kill(broker.process.pid, signal.SIGSTOP)


@pytest.mark.parametrize("outage", [_stop, _freeze], ids=["stopped", "frozen"])
def test_sigterm_stops_the_worker_within_10_s_while_the_broker_is_down(
    broker: EmbeddedBroker,
    database_url: str,
    tmp_path: Path,
    outage: Callable[[EmbeddedBroker], None],
) -> None:
    """A worker that has just stored a backlog, the broker stopped (or frozen) under it:
    SIGTERM ends it cleanly (exit 0) within 10 s; offsets it could not commit are simply read
    again later."""
    own = Topics(f"test-{uuid.uuid4().hex[:12]}")
    ensure_topics(broker.bootstrap, own, partitions=TEST_PARTITIONS)
    env = worker_env(own, broker.bootstrap, database_url)
    with _running(env, tmp_path / "worker.log", database_url) as worker:
        assert worker.proc is not None
        backlog = _publish_readings(broker.bootstrap, own, 3000)  # work in flight when it goes
        eventually(lambda: scalar(database_url, STORED, backlog) > 0, timeout=30, what="stored")
        outage(broker)
        time.sleep(3)  # the worker meets the broker's absence: failed fetches, commits, heartbeats

        started = time.monotonic()
        worker.proc.terminate()
        code = worker.proc.wait(30)
        took = time.monotonic() - started

    assert code == 0, worker.log.read_text()[-2000:]
    assert took < 10, f"the worker took {took:.1f} s to stop"


def test_after_a_broker_restart_the_worker_waits_for_the_topics_and_resumes_by_itself(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path
) -> None:
    """The in-memory broker restarted, its topics gone: the worker says which are missing and
    waits, without filling its log; once they are created again it stores what is sent."""
    own = Topics(f"test-{uuid.uuid4().hex[:12]}")
    ensure_topics(broker.bootstrap, own, partitions=TEST_PARTITIONS)
    env = worker_env(own, broker.bootstrap, database_url)
    with _running(env, tmp_path / "worker.log", database_url) as worker:
        broker.stop()
        broker.start()
        eventually(
            lambda: "missing: " in worker.log.read_text(), timeout=20, what="the missing topics"
        )
        time.sleep(5)  # waiting, not crashing
        assert worker.proc is not None
        assert worker.proc.poll() is None, "the worker stopped"

        ensure_topics(broker.bootstrap, own, partitions=TEST_PARTITIONS)
        after = _publish_readings(broker.bootstrap, own, 20)

        eventually(
            lambda: scalar(database_url, STORED, after) == 20, timeout=40, what="stored after"
        )
        assert worker.log.read_text().count("\n") < 100, "the restart filled the log"


@pytest.mark.parametrize("seen_missing", [True, False], ids=["seen-missing", "recreated-at-once"])
def test_after_a_broker_restart_the_recreated_topics_are_read_from_their_first_record(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path, seen_missing: bool
) -> None:
    """Topics lost with the broker and created again are new topics: neither the offsets the
    worker reached on the old ones (fetch positions, commits of batches still in flight) nor
    anything committed before make it skip a record of the new ones, on either lane; whether
    the worker saw them missing or they were created again at once, with its backlog in flight."""
    own = Topics(f"test-{uuid.uuid4().hex[:12]}")
    ensure_topics(broker.bootstrap, own, partitions=TEST_PARTITIONS)
    env = worker_env(own, broker.bootstrap, database_url)
    with _running(env, tmp_path / "worker.log", database_url) as worker:
        before = [
            *_publish_readings(broker.bootstrap, own, 50),
            *_publish_readings(broker.bootstrap, own, 50, backfill=True),
        ]
        eventually(lambda: scalar(database_url, STORED, before) == 100, timeout=30, what="before")
        time.sleep(1)  # the offsets after them are committed
        if not seen_missing:  # batches in flight, to be committed after the restart
            backlog = [
                *_publish_readings(broker.bootstrap, own, 3000),
                *_publish_readings(broker.bootstrap, own, 3000, backfill=True),
            ]
            eventually(lambda: scalar(database_url, STORED, backlog) > 0, timeout=30, what="some")

        broker.stop()
        broker.start()
        if seen_missing:
            eventually(
                lambda: "missing: " in worker.log.read_text(), timeout=20, what="missing topics"
            )
        ensure_topics(broker.bootstrap, own, partitions=TEST_PARTITIONS)
        # More on each partition than there were before: an old offset would skip records.
        after = [
            *_publish_readings(broker.bootstrap, own, 80),
            *_publish_readings(broker.bootstrap, own, 80, backfill=True),
        ]

        eventually(
            lambda: scalar(database_url, STORED, after) == 160, timeout=60, what="stored after"
        )
        assert worker.proc is not None
        assert worker.proc.poll() is None, "the worker stopped"


def test_the_worker_waits_out_a_database_outage_and_then_stores_everything(
    kafka_bootstrap: str,
    topics: Topics,
    postgres: tuple[EmbeddedPostgres, str],
    tmp_path: Path,
) -> None:
    """Readings sent while the database is stopped are neither dead-lettered nor lost: the
    worker stays up, and once the database is back every reading is stored."""
    server, url = postgres
    env = worker_env(topics, kafka_bootstrap, url)
    with _running(env, tmp_path / "worker.log", url) as worker:
        before = _publish_readings(kafka_bootstrap, topics, 30)
        eventually(lambda: scalar(url, STORED, before) == 30, timeout=30, what="the first 30")

        server.stop()
        during = _publish_readings(kafka_bootstrap, topics, 30)
        time.sleep(8)  # the worker meets the outage: failed writes, retried
        assert worker.proc is not None
        assert worker.proc.poll() is None, "the worker stopped on the outage"
        server.start()

        eventually(lambda: scalar(url, STORED, during) == 30, timeout=30, what="the 30 sent during")
        assert list_dead_letters(kafka_bootstrap, topics) == []
        assert worker.log.read_text().count("\n") < 100, "the outage filled the log"
