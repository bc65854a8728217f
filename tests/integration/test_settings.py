"""NEWS2 settings never change silently: a PUT is the whole document and refuses one without
the clinical fields, a PATCH changes only what it names, the history keeps every version, and
an alert raised before a patient had an organisation joins it once one is set."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import orjson
import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.helpers import FNR_SYSTEM, eventually, fresh_fnr

pytestmark = pytest.mark.integration

SETTINGS = "/api/v1/patients/news2-settings"
MERGE = {"Content-Type": "application/merge-patch+json"}


def _put(api: TestClient, body: dict[str, Any]) -> Any:
    return api.put(SETTINGS, json=body)


def test_a_put_without_the_clinical_fields_is_refused(api: TestClient, org: str) -> None:
    """Leaving out scale or oxygen in a PUT answers 422 naming the field; nothing changes."""
    fnr = fresh_fnr()
    full = {"patient": {"value": fnr}, "organisation": org, "spo2_scale": 2,
            "long_term_oxygen": True}  # fmt: skip
    assert _put(api, full).status_code == 200
    for missing in ("spo2_scale", "long_term_oxygen"):
        partial = {k: v for k, v in full.items() if k != missing}
        answer = _put(api, partial | {"expected_interval_minutes": 60})
        assert answer.status_code == 422
        assert answer.json()["issue"][0]["expression"] == [missing]
    now = api.get(SETTINGS, params={"patient.identifier": fnr}).json()
    assert (now["spo2_scale"], now["long_term_oxygen"], now["expected_interval_minutes"]) == (
        2,
        True,
        None,
    )


def test_a_patch_changes_only_what_it_names(api: TestClient, org: str, database_url: str) -> None:
    """A merge patch of the schedule keeps scale 2 and oxygen; each change is in the history
    with who made it."""
    fnr = fresh_fnr()
    full = {"patient": {"value": fnr}, "organisation": org, "spo2_scale": 2,
            "long_term_oxygen": True}  # fmt: skip
    assert _put(api, full).status_code == 200
    patched = api.patch(
        SETTINGS,
        params={"patient.identifier": fnr},
        content=orjson.dumps({"expected_interval_minutes": 240}),
        headers=MERGE,
    )
    assert patched.status_code == 200, patched.text
    now = api.get(SETTINGS, params={"patient.identifier": fnr}).json()
    assert (now["spo2_scale"], now["long_term_oxygen"], now["expected_interval_minutes"]) == (
        2,
        True,
        240,
    )
    bad = api.patch(
        SETTINGS, params={"patient.identifier": fnr}, content=b'{"spo2_scale": 3}', headers=MERGE
    )
    assert bad.status_code == 400
    assert bad.json()["issue"][0]["expression"] == ["spo2_scale"]
    with psycopg.connect(database_url) as conn:
        history = conn.execute(
            "SELECT h.set_by, h.settings->>'expected_interval_minutes' FROM"
            " patient_settings_history h JOIN patients p USING (patient_key)"
            " WHERE p.identifier_value = %s ORDER BY h.id",
            (fnr,),
        ).fetchall()
    assert history == [("HPR 9144900", None), ("HPR 9144900", "240")]


def _red_reading(fnr: str) -> dict[str, Any]:
    at = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    return {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "9279-1"}]},
                    "subject": {"identifier": {"system": FNR_SYSTEM, "value": fnr}},
                    "effectiveDateTime": at,
                    "valueQuantity": {
                        "value": 30,
                        "unit": "/min",
                        "system": "http://unitsofmeasure.org",
                        "code": "/min",
                    },
                },
            }
        ],
    }


def test_an_alert_without_an_organisation_joins_the_one_set_later(
    api: TestClient, org: str
) -> None:
    """A red score of an unplaced patient alerts with no organisation; placing the patient
    puts the alert on that organisation's list, with an event saying so."""
    fnr = fresh_fnr()
    answer = api.post(
        "/fhir",
        content=orjson.dumps(_red_reading(fnr)),
        headers={"Content-Type": "application/fhir+json"},
    )
    assert answer.status_code == 200
    scores = {"patient.identifier": fnr, "code": "http://snomed.info/sct|1104051000000101"}
    eventually(lambda: api.get("/fhir/Observation", params=scores).json().get("entry"),
               timeout=60, what="the score")  # fmt: skip
    assert api.get("/api/v1/alerts", params={"organisation": org}).json()["alerts"] == []
    body = {"patient": {"value": fnr}, "organisation": org, "spo2_scale": 1,
            "long_term_oxygen": False}  # fmt: skip
    assert _put(api, body).status_code == 200
    alerts = api.get("/api/v1/alerts", params={"organisation": org}).json()["alerts"]
    assert [(a["patient"]["value"], a["organisation"]) for a in alerts] == [(fnr, org)]
