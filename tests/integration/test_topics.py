"""Topics are managed, never auto-created: a check names what is missing or wrong, the API and
the worker wait for the topics rather than creating them, and both carry on once they exist."""

from __future__ import annotations

import datetime as dt
import uuid

import orjson
import pytest
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from fastapi.testclient import TestClient

from infra.topics import check_topics, ensure_topics
from ingestion.topics import Topics
from tests.helpers import TEST_PARTITIONS, eventually, fresh_fnr, observation

pytestmark = pytest.mark.integration

FHIR = {"Content-Type": "application/fhir+json"}
SEARCH = "/fhir/Observation?patient.identifier=urn:oid:2.16.578.1.12.4.1.4.1|{fnr}"


def _now_reading(fnr: str) -> bytes:
    """A pulse measured now: it takes the live lane (readings.v1)."""
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return orjson.dumps(observation(fnr=fnr, effective=now))


def _existing(bootstrap: str, topics: Topics) -> set[str]:
    names = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics
    return set(names) & set(topics.all())


def _create(bootstrap: str, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, num_partitions=partitions)]).values():
        future.result(10)


@pytest.fixture
def topics() -> Topics:
    """A unique prefix whose topics do not exist yet (the worker and the API start without)."""
    return Topics(f"test-{uuid.uuid4().hex[:12]}")


def test_the_check_names_missing_topics_and_wrong_partition_counts(
    kafka_bootstrap: str, topics: Topics
) -> None:
    """Two topics made by hand, one with 3 partitions where 2 are configured: the other three
    are missing and the one is wrong; creating the rest leaves only the wrong one."""
    _create(kafka_bootstrap, topics.readings, 3)
    _create(kafka_bootstrap, topics.backfill, TEST_PARTITIONS)

    status = check_topics(kafka_bootstrap, topics, partitions=TEST_PARTITIONS)

    assert status.missing == (topics.readings_dlq, topics.news2, topics.alerts)
    assert dict(status.wrong_partitions) == {topics.readings: 3}
    assert not status.ok
    ensure_topics(kafka_bootstrap, topics, partitions=TEST_PARTITIONS)
    after = check_topics(kafka_bootstrap, topics, partitions=TEST_PARTITIONS)
    assert after.missing == ()
    assert dict(after.wrong_partitions) == {topics.readings: 3}


def test_without_topics_ingest_is_refused_healthz_names_them_and_nothing_creates_them(
    api: TestClient, kafka_bootstrap: str, topics: Topics
) -> None:
    """With the worker and the API running and no topics: a reading is answered 503 with
    Retry-After and an OperationOutcome, /healthz is 503 and lists every topic as missing, and
    no client (producer, consumers, checks) has created any."""
    fnr = fresh_fnr()
    response = api.post("/fhir/Observation", content=_now_reading(fnr), headers=FHIR)

    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 1
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert topics.readings in outcome["issue"][0]["diagnostics"]
    health = api.get("/healthz")
    assert health.status_code == 503
    assert health.json()["components"]["topics"]["missing"] == list(topics.all())
    assert _existing(kafka_bootstrap, topics) == set()


def test_once_the_topics_are_created_healthz_and_the_worker_carry_on_by_themselves(
    api: TestClient, kafka_bootstrap: str, topics: Topics
) -> None:
    """The worker started without topics; after `ensure_topics` the API's topic check is up,
    a reading is accepted (201) and the worker, resumed by itself, stores it."""
    assert api.get("/healthz").json()["components"]["topics"]["status"] == "down"

    ensure_topics(kafka_bootstrap, topics, partitions=TEST_PARTITIONS)

    assert api.get("/healthz").json()["components"]["topics"] == {"status": "up"}
    fnr = fresh_fnr()
    body = _now_reading(fnr)
    assert api.post("/fhir/Observation", content=body, headers=FHIR).status_code == 201
    eventually(
        lambda: api.get(SEARCH.format(fnr=fnr)).json().get("entry"),
        timeout=40,
        what="the reading stored by the resumed worker",
    )
    eventually(lambda: api.get("/healthz").status_code == 200, timeout=30, what="healthy overall")
