"""One reading's whole path against the real broker and database:
HTTP → readings.v1 → Faust normalise → observations.v1 → Faust persist → PostgreSQL → search.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ApiSettings
from infra.migrate import migration_ids
from infra.processes import spawn, stop
from ingestion.topics import Topics
from tests.helpers import SYNTHETIC_FNR, bundle, fresh_fnr, load_fixture, observation

pytestmark = pytest.mark.integration

FHIR = {"Content-Type": "application/fhir+json"}
SEARCH = "/fhir/Observation?patient.identifier=urn:oid:2.16.578.1.12.4.1.4.1|{fnr}&_count=1000"


@pytest.fixture
def worker(
    topics: Topics, kafka_bootstrap: str, database_url: str, tmp_path: Path
) -> Iterator[dict[str, str]]:
    """A streams worker subprocess on this test's topics; yields its environment."""
    env = {
        **os.environ,
        "MALESTROM_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "MALESTROM_DATABASE_URL": database_url,
        "MALESTROM_TOPIC_PREFIX": topics.prefix,
        "MALESTROM_APP_ID": f"{topics.prefix}-streams",
        "MALESTROM_BROKER_SESSION_TIMEOUT": "6",
    }
    log = tmp_path / "worker.log"
    proc = spawn([sys.executable, "-m", "infra.cli", "worker"], env=env, log=log)
    try:
        yield env
    finally:
        stop(proc)
        if proc.returncode not in (0, -15):
            print(log.read_text()[-3000:])  # noqa: T201 - shown only when the worker failed


@pytest.fixture
def api(worker: dict[str, str]) -> Iterator[TestClient]:
    """The API in-process, publishing to the real broker and reading the real database."""
    settings = ApiSettings(
        kafka_bootstrap=worker["MALESTROM_KAFKA_BOOTSTRAP"],
        database_url=worker["MALESTROM_DATABASE_URL"],  # type: ignore[arg-type]
        topic_prefix=worker["MALESTROM_TOPIC_PREFIX"],
        app_id=worker["MALESTROM_APP_ID"],
    )
    with TestClient(create_app(settings, expected_migrations=migration_ids())) as client:
        yield client


def _eventually(check: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


def _stored(client: TestClient, fnr: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = client.get(SEARCH.format(fnr=fnr)).json()["entry"]
    return entries


def test_bundle_flows_to_the_database_and_back(api: TestClient) -> None:
    """Three posted Observations come back from the search, newest first, as normalised FHIR."""
    body = load_fixture("bundle_three_vitals.json")
    body["identifier"]["value"] = str(uuid.uuid4())  # this test's own sender identity
    response = api.post("/fhir", content=orjson.dumps(body), headers=FHIR)
    assert response.status_code == 200
    locations = [e["response"]["location"] for e in response.json()["entry"]]

    entries = _eventually(
        lambda: len(_stored(api, SYNTHETIC_FNR)) >= 3 and _stored(api, SYNTHETIC_FNR),
        timeout=60,
        what="3 stored observations",
    )
    mine = [e for e in entries if f"Observation/{e['resource']['id']}" in locations]
    assert len(mine) == 3
    times = [e["resource"]["effectiveDateTime"] for e in mine]
    assert times == sorted(times, reverse=True)
    assert mine[0]["resource"]["valueQuantity"]["code"] == "Cel"


def test_resending_creates_nothing_new(api: TestClient) -> None:
    """A Bundle posted twice is stored once; a later marker proves the resend was consumed."""
    fnr = fresh_fnr()  # this test's own patient, so counts are its alone
    readings = [
        observation(fnr=fnr, value=60 + i, effective=f"2026-11-26T07:0{i}:00Z") for i in range(3)
    ]
    body = bundle(*readings, identifier=str(uuid.uuid4()))
    for _ in range(2):
        assert api.post("/fhir", content=orjson.dumps(body), headers=FHIR).status_code == 200
    marker = bundle(observation(fnr=fnr, value=99, effective="2026-11-26T07:09:00Z"))
    assert api.post("/fhir", content=orjson.dumps(marker), headers=FHIR).status_code == 200
    values = lambda: [e["resource"]["valueQuantity"]["value"] for e in _stored(api, fnr)]  # noqa: E731
    _eventually(lambda: 99 in values(), timeout=60, what="the marker")
    assert len(_stored(api, fnr)) == 4


def test_healthz_turns_up_when_the_worker_has_partitions(api: TestClient) -> None:
    """/healthz is 200 once the schema is migrated, the broker answers and the worker is ready."""
    response = _eventually(
        lambda: (r := api.get("/healthz")).status_code == 200 and r, timeout=60, what="healthy"
    )
    components = response.json()["components"]
    assert components["worker"]["partitions"] > 0
    assert components["database"]["pending"] == []


def test_search_post_form_matches_get(api: TestClient) -> None:
    """POST /fhir/Observation/_search with a form body answers like the GET."""
    form = {"patient.identifier": SYNTHETIC_FNR}
    posted = api.post("/fhir/Observation/_search", data=form)
    got = api.get("/fhir/Observation", params=form)
    assert posted.status_code == got.status_code == 200
    assert posted.json()["entry"] == got.json()["entry"]
