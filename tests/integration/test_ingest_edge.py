"""The ingestion edge against the real broker and database: units come back canonical, a broker
that is down answers 503 and the retry is stored exactly once, resends answer 200, and dead
letters are listed and replayed with their original key and headers.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ApiSettings
from infra.devissuer import DevIssuer, DpopAuth
from infra.dlq import list_dead_letters, replay_dead_letters
from infra.embedded import EmbeddedBroker
from infra.processes import free_port
from infra.topics import ensure_topics
from ingestion.measurement import from_json
from ingestion.topics import Topics
from tests.helpers import (
    bundle,
    eventually,
    fresh_fnr,
    load_fixture,
    merge_patch,
    observation,
    settings_trusting,
)

pytestmark = pytest.mark.integration

FHIR = {"Content-Type": "application/fhir+json"}
SEARCH = "/fhir/Observation?patient.identifier=urn:oid:2.16.578.1.12.4.1.4.1|{fnr}&_count=1000"
UCUM = "http://unitsofmeasure.org"


def _settings(bootstrap: str, database_url: str, prefix: str, issuer: DevIssuer) -> ApiSettings:
    settings: ApiSettings = settings_trusting(
        issuer,
        kafka_bootstrap=bootstrap,
        database_url=database_url,
        topic_prefix=prefix,
        app_id=f"{prefix}-streams",
    )
    return settings


def _stored(client: TestClient, fnr: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in client.get(SEARCH.format(fnr=fnr)).json()["entry"]]


def _by_code(client: TestClient, fnr: str) -> dict[str, dict[str, Any]]:
    return {r["code"]["coding"][0]["code"]: r for r in _stored(client, fnr)}


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def test_converted_units_come_back_canonical_from_the_search(api: TestClient) -> None:
    """[degF], kPa and [lb_av] readings are stored and searched in Cel, mm[Hg] and kg."""
    fnr = fresh_fnr()
    loinc = "http://loinc.org"
    temperature = observation(fnr=fnr, code="8310-5", value=100.4, unit="[degF]")
    weight = observation(fnr=fnr, code="29463-7", value=154.3, unit="[lb_av]")
    pressure = merge_patch(
        observation(fnr=fnr, code="85354-9"),
        {
            "valueQuantity": None,
            "component": [
                {"code": {"coding": [{"system": loinc, "code": c}]}, "valueQuantity": q}
                for c, q in (("8480-6", _quantity(17.6, "kPa")), ("8462-4", _quantity(11.2, "kPa")))
            ],
        },
    )
    body = bundle(temperature, weight, pressure, identifier=str(uuid.uuid4()))
    assert api.post("/fhir", content=orjson.dumps(body), headers=FHIR).status_code == 200

    wanted = {"8310-5", "29463-7", "85354-9"}
    by_code = eventually(
        lambda: wanted <= set(found := _by_code(api, fnr)) and found, timeout=60, what="readings"
    )
    assert by_code["8310-5"]["valueQuantity"]["code"] == "Cel"
    assert by_code["8310-5"]["valueQuantity"]["value"] == pytest.approx(38.0, abs=0.01)
    assert by_code["29463-7"]["valueQuantity"]["code"] == "kg"
    assert by_code["29463-7"]["valueQuantity"]["value"] == pytest.approx(69.99, abs=0.01)
    components = by_code["85354-9"]["component"]
    assert [c["valueQuantity"]["code"] for c in components] == ["mm[Hg]", "mm[Hg]"]
    assert [c["valueQuantity"]["value"] for c in components] == [
        pytest.approx(132.01, abs=0.01),
        pytest.approx(84.01, abs=0.01),
    ]


def test_resend_days_later_answers_200_and_stores_nothing_new(api: TestClient) -> None:
    """Once stored, a resend answers 200 OK with the same ids (the store knows them)."""
    fnr = fresh_fnr()
    body = bundle(
        observation(fnr=fnr), observation(fnr=fnr, value=81), identifier=str(uuid.uuid4())
    )
    first = api.post("/fhir", content=orjson.dumps(body), headers=FHIR).json()["entry"]
    ids = {e["response"]["location"].removeprefix("Observation/") for e in first}
    eventually(lambda: ids <= {r["id"] for r in _stored(api, fnr)}, timeout=60, what="2 readings")
    api.app.state.receiver.recent.__init__()  # type: ignore[attr-defined]  # a fresh process
    second = api.post("/fhir", content=orjson.dumps(body), headers=FHIR).json()["entry"]
    assert [e["response"]["status"] for e in second] == ["200 OK", "200 OK"]
    assert [e["response"]["location"] for e in second] == [e["response"]["location"] for e in first]


def _readings(bootstrap: str, topic: str) -> list[bytes]:
    """Every record value on the topic, read to the end of each partition."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": str(uuid.uuid4()),
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        pending, values = set(partitions), []
        while pending:
            message = consumer.poll(10)
            assert message is not None, "timed out reading the topic"
            if message.error() is not None:
                pending.discard(message.partition() or 0)
                continue
            values.append(message.value() or b"")
        return values
    finally:
        consumer.close()


def _post_ok(client: TestClient, body: bytes) -> Any:
    response = client.post("/fhir", content=body, headers=FHIR)
    return response if response.status_code == 200 else None


def test_broker_down_answers_503_and_the_retry_lands_once(
    database_url: str, tmp_path: Path, issuer: DevIssuer, staff_auth: DpopAuth
) -> None:
    """Broker stopped: 503 with Retry-After; restarted: the retry is accepted, and a resend
    of what is not stored yet is published again under the same ids (storage merges them)."""
    port = free_port()
    topics = Topics(f"test-{uuid.uuid4().hex[:12]}")
    broker = EmbeddedBroker(tmp_path / "first", port=port)
    bootstrap = broker.start()
    ensure_topics(bootstrap, topics, partitions=2)
    body = orjson.dumps(load_fixture("bundle_three_vitals.json"))
    settings = _settings(bootstrap, database_url, topics.prefix, issuer)
    with TestClient(create_app(settings, expected_migrations=())) as client:
        client.auth = staff_auth
        broker.stop()
        down = client.post("/fhir", content=body, headers=FHIR)
        assert down.status_code == 503
        assert int(down.headers["Retry-After"]) >= 1
        broker = EmbeddedBroker(tmp_path / "second", port=port)
        broker.start()
        try:
            ensure_topics(bootstrap, topics, partitions=2)
            up = eventually(lambda: _post_ok(client, body), timeout=60, what="the broker")
            assert {e["response"]["status"] for e in up.json()["entry"]} == {"201 Created"}
            again = client.post("/fhir", content=body, headers=FHIR).json()["entry"]
            assert {e["response"]["status"] for e in again} == {"201 Created"}  # none stored
            # Measured days before they were sent: the backfill lane.
            ids = [from_json(v).id for v in _readings(bootstrap, topics.backfill)]
            accepted = sorted(e["response"]["location"].removeprefix("Observation/") for e in again)
            assert sorted(ids) == sorted(accepted * 2)
        finally:
            broker.stop()


def test_dead_letters_are_listed_and_replayed_with_key_and_headers(
    kafka_bootstrap: str, topics: Topics
) -> None:
    """`dlq list` shows stage and error; `dlq replay` re-feeds the stage's input topic."""
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all"})
    headers = {
        "correlation-id": b"c-1",
        "dlq-stage": b"normalise",
        "dlq-topic": topics.readings.encode(),
        "dlq-error": b"not a measurement record: KeyError",
        "dlq-error-type": b"InvalidReadingError",
    }
    producer.produce(topics.readings_dlq, b"{}", b"patient-1", headers=list(headers.items()))
    assert producer.flush(10) == 0

    letters = list_dead_letters(kafka_bootstrap, topics)
    assert [(d.header("dlq-stage"), d.header("dlq-error-type")) for d in letters] == [
        ("normalise", "InvalidReadingError")
    ]
    replayed = replay_dead_letters(kafka_bootstrap, topics, ids=[letters[0].id])
    assert [d.id for d in replayed] == [letters[0].id]
    assert _readings(kafka_bootstrap, topics.readings) == [b"{}"]
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": str(uuid.uuid4())})
    consumer.assign([TopicPartition(topics.readings, p, 0) for p in (0, 1)])
    message = eventually(lambda: consumer.poll(1), timeout=20, what="the replayed record")
    consumer.close()
    assert message.key() == b"patient-1"
    assert ("correlation-id", b"c-1") in message.headers()
    assert not any(k == "dlq-stage" for k, _ in message.headers())
