"""The HTTP receiver: per-entry results, whole-request errors, and 503 when the broker is down."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ApiSettings
from ingestion.exceptions import BrokerUnavailableError
from ingestion.measurement import from_json
from ingestion.publisher import Record
from tests.helpers import SYNTHETIC_FNR, bundle, load_fixture, observation

FHIR = {"Content-Type": "application/fhir+json"}


class FakePublisher:
    """Records what was published; can be told the broker is down."""

    def __init__(self) -> None:
        self.published: list[tuple[str, Record]] = []
        self.down = False

    async def publish(self, topic: str, records: Sequence[Record]) -> None:
        if self.down:
            raise BrokerUnavailableError("broker down", retry_after=3)
        self.published += [(topic, r) for r in records]

    async def ping(self) -> bool:
        return not self.down


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def client(publisher: FakePublisher) -> Iterator[TestClient]:
    settings = ApiSettings(
        kafka_bootstrap="127.0.0.1:1",
        database_url="postgresql://nobody@127.0.0.1:1/none",  # type: ignore[arg-type]
    )
    app = create_app(settings, expected_migrations=(), publisher=publisher)
    with TestClient(app) as test_client:
        yield test_client


def _post(client: TestClient, body: Any, path: str = "/fhir", **headers: str) -> Any:
    return client.post(path, content=orjson.dumps(body), headers={**FHIR, **headers})


def test_batch_is_answered_entry_by_entry_after_publishing(
    client: TestClient, publisher: FakePublisher
) -> None:
    """Three good entries: batch-response with 201 each, echoing fullUrl; three records sent."""
    body = load_fixture("bundle_three_vitals.json")
    response = _post(client, body)
    assert response.status_code == 200
    answer = response.json()
    assert answer["type"] == "batch-response"
    assert [e["fullUrl"] for e in answer["entry"]] == [e["fullUrl"] for e in body["entry"]]
    assert {e["response"]["status"] for e in answer["entry"]} == {"201 Created"}
    assert [topic for topic, _ in publisher.published] == ["malestrom.readings.v1"] * 3
    key, value, _headers = publisher.published[0][1]
    assert from_json(value).patient_key == key.decode()


def test_one_bad_entry_does_not_sink_the_others(
    client: TestClient, publisher: FakePublisher
) -> None:
    """A mixed batch: the good entries are accepted, the bad one carries its OperationOutcome."""
    bad = observation(unit="/h")
    response = _post(client, bundle(observation(), bad, observation(value=80)))
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses == ["201 Created", "422 Unprocessable Entity", "201 Created"]
    outcome = response.json()["entry"][1]["response"]["outcome"]
    assert outcome["issue"][0]["expression"] == ["Bundle.entry[1].resource.valueQuantity.code"]
    assert len(publisher.published) == 2


def test_transaction_is_all_or_nothing(client: TestClient, publisher: FakePublisher) -> None:
    """One bad entry in a transaction rejects the whole and publishes nothing."""
    response = _post(client, bundle(observation(), observation(unit="/h"), kind="transaction"))
    assert response.status_code == 422
    assert response.json()["resourceType"] == "OperationOutcome"
    assert publisher.published == []


def test_resent_bundle_maps_to_the_same_ids(client: TestClient, publisher: FakePublisher) -> None:
    """Bundle.identifier + fullUrl decide the ids: a resend carries the same ids."""
    body = load_fixture("bundle_three_vitals.json")
    first = [e["response"]["location"] for e in _post(client, body).json()["entry"]]
    second = [e["response"]["location"] for e in _post(client, body).json()["entry"]]
    assert first == second


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"{not json", FHIR, 400),
        (b'{"resourceType": "Patient"}', FHIR, 400),
        (b'{"resourceType": "Bundle", "type": "document"}', FHIR, 422),
        (orjson.dumps(bundle()), {"Content-Type": "text/plain"}, 415),
        (b" " * (1024 * 1024 + 1), FHIR, 413),
        (orjson.dumps(bundle(*[observation()] * 1001)), FHIR, 413),
    ],
)
def test_whole_request_problems(
    client: TestClient, body: bytes, headers: dict[str, str], status: int
) -> None:
    """Whole-request problems answer with an OperationOutcome and the specified status."""
    response = client.post("/fhir", content=body, headers=headers)
    assert response.status_code == status
    assert response.json()["resourceType"] == "OperationOutcome"
    assert response.json()["issue"][0]["diagnostics"]


def test_broker_down_answers_503_with_retry_after(
    client: TestClient, publisher: FakePublisher
) -> None:
    """Nothing accepted without the broker: 503 and Retry-After, never a silent 2xx."""
    publisher.down = True
    response = _post(client, load_fixture("bundle_three_vitals.json"))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "3"
    assert response.json()["issue"][0]["code"] == "transient"


def test_correlation_id_travels_and_returns(client: TestClient, publisher: FakePublisher) -> None:
    """The correlation-id header comes back and rides along in the Kafka headers."""
    response = _post(client, bundle(observation()), **{"correlation-id": "abc-123"})
    assert response.headers["correlation-id"] == "abc-123"
    assert ("correlation-id", b"abc-123") in publisher.published[0][1][2]


def test_single_observation_gets_201_and_location(
    client: TestClient, publisher: FakePublisher
) -> None:
    """POST /fhir/Observation answers 201 with Location once published."""
    response = _post(client, observation(), path="/fhir/Observation")
    assert response.status_code == 201
    assert response.headers["Location"].startswith("Observation/")
    assert len(publisher.published) == 1


def test_responses_never_contain_the_identity_number_in_errors(client: TestClient) -> None:
    """An error about the patient identifier does not echo the number back."""
    body = bundle(observation(fnr=SYNTHETIC_FNR[:-1] + "0"))
    text = _post(client, body).text
    assert SYNTHETIC_FNR[:-1] + "0" not in text
