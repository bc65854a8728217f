"""Hostile and careless input never answers 5xx: each is a 4xx OperationOutcome that names
the parameter or field, checked against the real database."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from api.routes.alerts import resume_point
from api.routes.params import encode_cursor
from tests.helpers import bundle, fresh_fnr, observation

pytestmark = pytest.mark.integration

FHIR = {"Content-Type": "application/fhir+json"}


@pytest.fixture
def patient(api: TestClient) -> str:
    """A patient of the caller's organisation (accepted, so the access check passes)."""
    fnr = fresh_fnr()
    body = orjson.dumps(bundle(observation(fnr=fnr), identifier=str(uuid.uuid4())))
    assert api.post("/fhir", content=body, headers=FHIR).status_code == 200
    return fnr


def _cases(fnr: str, org: str) -> list[tuple[str, str, dict[str, Any], str]]:
    """(method, path, request arguments, the expression the answer must name)."""
    search = f"/fhir/Observation?patient.identifier={fnr}"
    trend = f"/api/v1/trends?patient.identifier={fnr}&code=8867-4"
    stats = f"/fhir/Observation/$stats?patient.identifier={fnr}&code=8867-4"
    cursor = encode_cursor(dt.datetime.now(dt.UTC), str(uuid.uuid4()))
    # fmt: off
    return [
        ("GET", "/api/v1/alerts?organisation=%00", {}, "organisation"),
        ("GET", f"{search}&code=8867-4%00", {}, "code"),
        ("GET", f"{search}&date=9999-12-31", {}, "date"),
        ("GET", f"{search}&date=0001-01-01T00:00:00%2B01:00", {}, "date"),
        ("GET", f"{search}&_lastUpdated=ge9999", {}, "_lastUpdated"),
        ("GET", f"{trend}&from=9999&to=9999", {}, "from"),
        ("GET", f"{stats}&period=9999/9999", {}, "period"),
        ("GET", f"{search}&_count={'9' * 5000}", {}, "_count"),
        ("GET", f"/fhir/Observation/$lastn?patient.identifier={fnr}&max={'7' * 5000}", {}, "max"),
        ("GET", f"{search}&_count=²", {}, "_count"),
        ("GET", f"{search}&_cursor=bm90LWEtY3Vyc29y", {}, "_cursor"),
        ("GET", f"{search}&_cursor={cursor[:-2]}AA", {}, "_cursor"),
        ("PUT", f"/api/v1/organisations/{org}/news2-settings",
         {"content": b'{"policy": {"rule": "total-or-single-three", "total": 1e400}}',
          "headers": {"Content-Type": "application/json"}}, "policy"),
        ("PUT", "/api/v1/patients/news2-settings",
         {"content": b'{"patient": {"value": "0467\\u00007406998"}, "spo2_scale": 1,'
                     b' "long_term_oxygen": false}',
          "headers": {"Content-Type": "application/json"}}, "patient.value"),
        ("POST", "/fhir/Observation",
         {"content": orjson.dumps(observation(fnr=fnr, device={"identifier": {"value": "A\x00"}})),
          "headers": FHIR}, "device.identifier.value"),
    ]
    # fmt: on


def test_hostile_input_is_a_4xx_naming_the_problem(api: TestClient, patient: str, org: str) -> None:
    """NUL bytes, dates PostgreSQL cannot hold, 5,000-digit numbers, forged cursors and
    infinite thresholds are refused with 400/422 and the parameter or field named."""
    for method, path, kwargs, expression in _cases(patient, org):
        answer = api.request(method, path, **kwargs)
        assert 400 <= answer.status_code < 500, f"{path[:80]}: {answer.status_code} {answer.text}"
        outcome = answer.json()
        assert outcome["resourceType"] == "OperationOutcome", path[:80]
        named = [e for issue in outcome["issue"] for e in issue.get("expression", [])]
        text = " ".join(issue["diagnostics"] for issue in outcome["issue"])
        assert any(expression in e for e in named) or expression in text, (path[:80], outcome)


def test_a_body_over_the_limit_is_refused_unread(api: TestClient) -> None:
    """A 5 MB settings document answers 413 before anything parses it."""
    huge = b'{"patient": {"value": "' + b"1" * (5 * 1024 * 1024) + b'"}}'
    answer = api.put(
        "/api/v1/patients/news2-settings",
        content=huge,
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 413
    assert answer.json()["issue"][0]["code"] == "too-costly"


def test_a_wrong_method_says_which_are_allowed(api: TestClient) -> None:
    """405 with Allow and an OperationOutcome."""
    answer = api.delete("/api/v1/board")
    assert answer.status_code == 405
    assert "GET" in answer.headers["Allow"]
    assert answer.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    ("last", "oldest", "newest", "resumes"),
    [(0, 1, 10, (0, False)), (7, 1, 10, (7, False)), (99, 1, 10, (10, False)),
     (3, 50, 60, (49, True)), (5, None, None, (0, True)), (0, None, None, (0, False))],
)  # fmt: skip
def test_last_event_id_out_of_range_resumes_sensibly(
    last: int, oldest: int | None, newest: int | None, resumes: tuple[int, bool]
) -> None:
    """Above the newest event: from the newest; below the oldest kept: from there, told."""
    assert resume_point(last, oldest=oldest, newest=newest) == resumes
