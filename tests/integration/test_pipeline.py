"""One reading's whole path against the real broker and database:
HTTP → readings.v1 (or the backfill lane) → the worker stores and scores → PostgreSQL → search.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from tests.helpers import SYNTHETIC_FNR, bundle, eventually, fresh_fnr, load_fixture, observation

pytestmark = pytest.mark.integration

FHIR = {"Content-Type": "application/fhir+json"}
SEARCH = "/fhir/Observation?patient.identifier=urn:oid:2.16.578.1.12.4.1.4.1|{fnr}&_count=1000"


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

    entries = eventually(
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
    eventually(lambda: 99 in values(), timeout=60, what="the marker")
    assert len(_stored(api, fnr)) == 4


def test_healthz_turns_up_when_the_worker_has_partitions(api: TestClient) -> None:
    """/healthz is 200 once the schema is migrated, the broker answers and the worker is ready."""
    response = eventually(
        lambda: (r := api.get("/healthz")).status_code == 200 and r, timeout=60, what="healthy"
    )
    components = response.json()["components"]
    assert components["worker"]["partitions"] > 0
    assert components["database"]["pending"] == []


def test_search_post_form_matches_get(api: TestClient) -> None:
    """POST /fhir/Observation/_search with a form body answers like the GET."""
    fnr = fresh_fnr()
    body = orjson.dumps(bundle(observation(fnr=fnr), identifier=str(uuid.uuid4())))
    assert api.post("/fhir", content=body, headers=FHIR).status_code == 200
    eventually(lambda: len(_stored(api, fnr)) == 1, timeout=60, what="the stored reading")
    form = {"patient.identifier": fnr}
    posted = api.post("/fhir/Observation/_search", data=form)
    got = api.get("/fhir/Observation", params=form)
    assert posted.status_code == got.status_code == 200
    assert posted.json()["entry"] == got.json()["entry"]


def test_live_and_backfill_lanes_both_reach_the_database(api: TestClient) -> None:
    """A reading measured now (live lane) and one measured two days ago (backfill lane) are
    both stored by the worker, whichever lane carried them."""
    fnr = fresh_fnr()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    body = bundle(
        observation(fnr=fnr, value=61, effective=now.isoformat()),
        observation(fnr=fnr, value=62, effective=(now - dt.timedelta(days=2)).isoformat()),
    )
    assert api.post("/fhir", content=orjson.dumps(body), headers=FHIR).status_code == 200
    values = lambda: sorted(e["resource"]["valueQuantity"]["value"] for e in _stored(api, fnr))  # noqa: E731
    eventually(lambda: values() == [61, 62], timeout=60, what="both lanes stored")
