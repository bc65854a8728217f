"""The HTTP receiver: per-entry results, whole-request errors, and 503 when the broker is down.

The request corpus in tests/fixtures/corpus/requests.json drives the status checks: each case
gives the body, the media type, the expected status, per-entry statuses and the FHIRPath each
error (or correction warning) must point at.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from infra.devissuer import DevIssuer
from ingestion.exceptions import BrokerUnavailableError
from ingestion.known import RecentIds
from ingestion.measurement import from_json
from ingestion.publisher import Record
from tests.helpers import SYNTHETIC_FNR, bundle, corpus, fresh_fnr, load_fixture, observation
from tests.unit.offline import offline_api

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


class FakeStore:
    """A store that already holds the given ids."""

    def __init__(self, ids: set[str]) -> None:
        self.ids = ids

    async def known(self, ids: Sequence[str]) -> set[str]:
        return self.ids & set(ids)


@pytest.fixture(scope="module")
def _app(issuer: DevIssuer) -> Iterator[tuple[TestClient, FakePublisher]]:
    # One app per module: starting the app's lifespan is slow without a database.
    fake = FakePublisher()
    with offline_api(fake, issuer) as test_client:
        yield test_client, fake


@pytest.fixture
def publisher(_app: tuple[TestClient, FakePublisher]) -> FakePublisher:
    """The fake broker, emptied for each test."""
    fake = _app[1]
    fake.published, fake.down = [], False
    return fake


@pytest.fixture
def client(_app: tuple[TestClient, FakePublisher], publisher: FakePublisher) -> TestClient:
    """The API, with a fresh memory of accepted ids and no database."""
    test_client = _app[0]
    state = test_client.app.state  # type: ignore[attr-defined]
    state.receiver = dataclasses.replace(state.receiver, recent=RecentIds(), known=FakeStore(set()))
    return test_client


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
    # Measured days before they arrive: the backfill lane.
    assert [topic for topic, _ in publisher.published] == ["malestrom.readings-backfill.v1"] * 3
    key, value, _headers = publisher.published[0][1]
    assert from_json(value).patient_key == key.decode()


@pytest.mark.parametrize("case", corpus("requests", "requests"))
def test_request_corpus(client: TestClient, publisher: FakePublisher, case: dict[str, Any]) -> None:
    """Each request gets its status, per-entry results, and issues that point at the element."""
    body = case["raw"].encode() if "raw" in case else orjson.dumps(case["body"])
    media = case.get("content_type", "application/fhir+json")
    response = client.post(case.get("path", "/fhir"), content=body, headers={"Content-Type": media})
    assert response.status_code == case["status"]
    answer = response.json()
    if "entries" not in case and response.status_code < 300:  # a create: the resource, stored
        assert answer["resourceType"] == "Observation"
        assert response.headers["Location"] == f"Observation/{answer['id']}"
        return
    if "entries" not in case:
        assert answer["resourceType"] == "OperationOutcome"
        assert all(i["code"] and i["diagnostics"] for i in answer["issue"])
        if case.get("expression"):
            assert answer["issue"][0]["expression"] == [case["expression"]]
        return
    assert answer["type"] == case.get("response_type", "batch-response")
    assert [e["response"]["status"][:3] for e in answer["entry"]] == case["entries"]
    for index, expression in {**case.get("expressions", {}), **case.get("warnings", {})}.items():
        issues = answer["entry"][int(index)]["response"]["outcome"]["issue"]
        assert [expression] in [i["expression"] for i in issues]
    for index in case.get("warnings", {}):
        issues = answer["entry"][int(index)]["response"]["outcome"]["issue"]
        assert {i["severity"] for i in issues} == {"warning"}
    assert len(publisher.published) == case["entries"].count("201")


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


def test_a_resend_before_storage_is_published_again_with_the_same_ids(
    client: TestClient, publisher: FakePublisher
) -> None:
    """Bundle.identifier + fullUrl decide the ids. Until the store holds them, a resend is
    published again (the broker may have lost the first copy; storage merges the two)."""
    body = load_fixture("bundle_three_vitals.json")
    first = _post(client, body).json()["entry"]
    second = _post(client, body).json()["entry"]
    assert [e["response"]["location"] for e in first] == [e["response"]["location"] for e in second]
    assert {e["response"]["status"] for e in second} == {"201 Created"}
    ids = [orjson.loads(record[1])["id"] for _, record in publisher.published]
    assert len(ids) == 6
    assert ids[:3] == ids[3:]


def test_ids_the_store_knows_answer_200(client: TestClient, publisher: FakePublisher) -> None:
    """An id the store already holds (e.g. accepted by another replica days ago) answers 200."""
    stored = _post(client, observation(), path="/fhir/Observation").headers["Location"]
    state = client.app.state  # type: ignore[attr-defined]
    state.receiver = dataclasses.replace(
        state.receiver, recent=RecentIds(), known=FakeStore({stored.removeprefix("Observation/")})
    )
    response = _post(client, observation(), path="/fhir/Observation")
    assert (response.status_code, response.headers["Location"]) == (200, stored)
    assert len(publisher.published) == 1


def test_broker_down_then_up_resend_is_accepted_once(
    client: TestClient, publisher: FakePublisher
) -> None:
    """After a 503 nothing is remembered as accepted: the retry is published exactly once."""
    body = load_fixture("bundle_three_vitals.json")
    publisher.down = True
    assert _post(client, body).status_code == 503
    publisher.down = False
    statuses = [e["response"]["status"] for e in _post(client, body).json()["entry"]]
    assert statuses == ["201 Created"] * 3
    assert len(publisher.published) == 3


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"{not json", FHIR, 400),
        (b'{"resourceType": "Patient"}', FHIR, 400),
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


@pytest.mark.parametrize(
    ("age", "topic"),
    [
        (dt.timedelta(minutes=1), "malestrom.readings.v1"),
        (dt.timedelta(minutes=59), "malestrom.readings.v1"),
        (dt.timedelta(minutes=61), "malestrom.readings-backfill.v1"),
        (dt.timedelta(days=3), "malestrom.readings-backfill.v1"),
    ],
)
def test_readings_old_on_arrival_take_the_backfill_lane(
    client: TestClient, publisher: FakePublisher, age: dt.timedelta, topic: str
) -> None:
    """A reading measured more than an hour before it arrives goes to the backfill topic."""
    at = (dt.datetime.now(dt.UTC) - age).isoformat()
    response = _post(client, bundle(observation(effective=at, fnr=fresh_fnr())))
    assert response.status_code == 200, response.text
    assert [t for t, _ in publisher.published] == [topic]


@pytest.mark.parametrize(
    ("prefer", "kind"),
    [(None, "Observation"), ("return=representation", "Observation"),
     ("return=OperationOutcome", "OperationOutcome"), ("return=minimal", None)],
)  # fmt: skip
def test_a_create_answers_as_the_client_prefers(
    client: TestClient, publisher: FakePublisher, prefer: str | None, kind: str | None
) -> None:
    """201 with Location, and the resource as stored, the OperationOutcome, or nothing."""
    headers = {**FHIR, **({"Prefer": prefer} if prefer else {})}
    response = client.post(
        "/fhir/Observation", content=orjson.dumps(observation(value=61)), headers=headers
    )
    assert response.status_code == 201
    assert response.headers["Location"].startswith("Observation/")
    if kind is None:
        assert response.content == b""
    else:
        assert response.json()["resourceType"] == kind
    if kind == "Observation":
        assert response.json()["valueQuantity"]["value"] == 61
