"""NEWS2 for the nurse, through the running pipeline: settings, scores in FHIR search, alerts
with their lifecycle, the live stream, the VKP-DHO document, the board, and a worker restart."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from httpx_sse import connect_sse

from infra.devissuer import DpopAuth
from tests.helpers import FNR_SYSTEM, eventually, fresh_fnr
from tests.integration.conftest import Worker

pytestmark = pytest.mark.integration

FHIR = {"Content-Type": "application/fhir+json"}
NEWS2 = "http://snomed.info/sct|1104051000000101"
LOINC = {
    "respiration_rate": ("9279-1", "/min"),
    "spo2": ("2708-6", "%"),
    "pulse": ("8867-4", "/min"),
    "temperature": ("8310-5", "Cel"),
}
NORMAL = {
    "respiration_rate": 16,
    "spo2": 97,
    "pulse": 70,
    "temperature": 36.8,
    "systolic_bp": 125,
    "consciousness": "A",
}


class Patient:
    """A synthetic patient of the test's organisation, sending readings over HTTP as a nurse
    of that organisation whose login may also send readings."""

    def __init__(self, client: httpx.Client | TestClient, organisation: str) -> None:
        self.client = client
        self.fnr = fresh_fnr()
        self.organisation = organisation
        self.t0 = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=50)

    def settings(self, **values: Any) -> None:
        body = {
            "patient": {"value": self.fnr},
            "organisation": self.organisation,
            "spo2_scale": 1,
            **values,
        }
        response = self.client.put("/api/v1/patients/news2-settings", json=body)
        assert response.status_code == 200, response.text

    def send(self, minute: float, **readings: Any) -> None:
        at = (self.t0 + dt.timedelta(minutes=minute)).isoformat()
        entries = [
            {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": self._resource(k, v, at)}
            for k, v in readings.items()
        ]
        body = {"resourceType": "Bundle", "type": "batch", "entry": entries}
        response = self.client.post("/fhir", content=orjson.dumps(body), headers=FHIR)
        assert response.status_code == 200, response.text
        statuses = {e["response"]["status"] for e in response.json()["entry"]}
        assert statuses <= {"201 Created", "200 OK"}, response.text

    def _resource(self, name: str, value: Any, at: str) -> dict[str, Any]:
        base = {
            "resourceType": "Observation",
            "status": "final",
            "effectiveDateTime": at,
            "subject": {"identifier": {"system": FNR_SYSTEM, "value": self.fnr}},
        }
        if name == "consciousness":
            code = {"system": "http://snomed.info/sct", "code": "1104441000000107"}
            return base | {"code": {"coding": [code]}, "valueString": value}
        if name == "systolic_bp":
            return base | {
                "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
                "component": [_component("8480-6", value), _component("8462-4", 80)],
            }
        code, unit = LOINC[name]
        return base | {
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "valueQuantity": _quantity(value, unit),
        }

    def scores(self) -> list[dict[str, Any]]:
        params = {"patient.identifier": self.fnr, "code": NEWS2, "_count": 100}
        bundle = self.client.get("/fhir/Observation", params=params).json()
        return [e["resource"] for e in bundle.get("entry", [])]

    def alerts(self) -> list[dict[str, Any]]:
        response = self.client.get("/api/v1/alerts", params={"organisation": self.organisation})
        alerts: list[dict[str, Any]] = response.json()["alerts"]
        return alerts


def _quantity(value: Any, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}


def _component(code: str, value: Any) -> dict[str, Any]:
    return {
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "valueQuantity": _quantity(value, "mm[Hg]"),
    }


def _total(score: dict[str, Any]) -> int | None:
    quantity = score.get("valueQuantity")
    return None if quantity is None else int(quantity["value"])


def test_scores_are_fhir_observations_and_a_red_score_raises_an_alert(
    api: TestClient, org: str
) -> None:
    """Each reading gives a NEWS2 Observation, searchable by its SNOMED code; a red score alerts."""
    patient = Patient(api, org)
    patient.settings(long_term_oxygen=False)
    patient.send(0, **NORMAL)
    eventually(lambda: len(patient.scores()) == 1, timeout=60, what="the first score")
    patient.send(5, respiration_rate=26)
    scores = eventually(lambda: len(s := patient.scores()) == 2 and s, timeout=30, what="score 2")
    assert [_total(s) for s in scores] == [3, 0]  # newest first
    newest = scores[0]
    assert newest["category"][0]["coding"][0]["code"] == "survey"
    assert {c["code"]["coding"][0]["code"] for c in newest["component"]} >= {"1104301000000104"}
    assert len(newest["derivedFrom"]) == 6
    alerts = eventually(patient.alerts, timeout=30, what="the alert")
    assert [(a["kind"], a["level"], a["status"]) for a in alerts] == [("news2", "urgent", "open")]
    for code in ({"code": NEWS2}, {}):  # $lastn of the NEWS2 code, and of every code
        params = {"patient.identifier": patient.fnr, **code}
        lastn = patient.client.get("/fhir/Observation/$lastn", params=params).json()
        ids = [e["resource"]["id"] for e in lastn["entry"]]
        assert newest["id"] in ids


def test_alert_lifecycle_live_stream_and_document(
    api_url: str, org: str, staff_auth: DpopAuth
) -> None:
    """Raised, acknowledged, resolved reach the SSE stream, resumably; the closed alert exports;
    who acted comes from the login, not from the body."""
    client = httpx.Client(base_url=api_url, timeout=httpx.Timeout(10, read=60), auth=staff_auth)
    patient = Patient(client, org)
    patient.settings(long_term_oxygen=False)
    seen: list[dict[str, Any]] = []
    ids: list[str] = []

    def listen() -> None:
        with connect_sse(
            client, "GET", "/api/v1/alerts/stream", params={"organisation": patient.organisation}
        ) as source:
            for event in source.iter_sse():
                assert event.event == "alert"
                seen.append(orjson.loads(event.data))
                ids.append(event.id)
                if len(seen) == 3:
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    patient.send(0, **NORMAL)
    patient.send(3, respiration_rate=22, spo2=93, pulse=115)  # 2 + 2 + 2 = 6 → medium
    alert = eventually(patient.alerts, timeout=60, what="the alert")[0]
    ack = client.post(f"/api/v1/alerts/{alert['id']}/acknowledge", json={"by": "HPR 1111111"})
    assert (ack.json()["status"], ack.json()["acknowledged_by"]) == ("acknowledged", "HPR 9144900")
    assert client.post(f"/api/v1/alerts/{alert['id']}/acknowledge").status_code == 409
    note = "Ringte pasienten, avtalt besøk i dag."
    done = client.post(f"/api/v1/alerts/{alert['id']}/resolve", json={"note": note})
    assert (done.json()["status"], done.json()["resolution_note"]) == ("resolved", note)
    assert done.json()["resolved_by"] == "HPR 9144900"
    listener.join(30)
    assert [e["event"]["type"] for e in seen] == ["raised", "acknowledged", "resolved"]

    with connect_sse(
        client,
        "GET",
        "/api/v1/alerts/stream",
        headers={"Last-Event-ID": ids[0]},
        params={"organisation": patient.organisation},
    ) as source:
        resumed = []
        for event in source.iter_sse():
            resumed.append(orjson.loads(event.data)["event"]["type"])
            if len(resumed) == 2:
                break
    assert resumed == ["acknowledged", "resolved"]
    with connect_sse(
        client, "GET", "/api/v1/alerts/stream", params={"organisation": patient.organisation}
    ) as source:  # a replay from the start: each event with the alert as it stood then
        replayed = []
        for event in source.iter_sse():
            data = orjson.loads(event.data)
            replayed.append((data["event"]["type"], data["alert"]["status"],
                             data["alert"]["resolution_note"]))  # fmt: skip
            if len(replayed) == 3:
                break
    assert replayed == [
        ("raised", "open", None),
        ("acknowledged", "acknowledged", None),
        ("resolved", "resolved", note),
    ]

    document = client.get(f"/api/v1/alerts/{alert['id']}/$document").json()
    kinds = [e["resource"]["resourceType"] for e in document["entry"]]
    assert document["type"] == "document"
    assert kinds[:2] == ["Composition", "DetectedIssue"]
    assert kinds.count("Observation") == 7  # the score and its six inputs
    assert note in orjson.dumps(document).decode()


def test_board_sorts_by_urgency_with_trend_and_input_age(api: TestClient, org: str) -> None:
    """The board lists the organisation's patients, the alerted and rising one first."""
    calm, sick = Patient(api, org), Patient(api, org)
    for patient in (calm, sick):
        patient.settings(long_term_oxygen=False)
        patient.send(0, **NORMAL)
    sick.send(10, pulse=135)
    eventually(
        lambda: len(sick.scores()) == 2 and len(calm.scores()) == 1, timeout=60, what="scores"
    )
    board = api.get("/api/v1/board", params={"organisation": calm.organisation}).json()
    rows = board["patients"]
    assert [r["patient"]["value"] for r in rows] == [sick.fnr, calm.fnr]
    assert (rows[0]["trend"], rows[0]["news2"]["total"], rows[0]["alert"]["level"]) == (
        "rising",
        3,
        "urgent",
    )
    assert rows[1]["trend"] == "unknown"
    assert rows[1]["oldest_input_age_seconds"] >= 50 * 60 - 5


def test_worker_restart_mid_scenario_loses_and_duplicates_nothing(
    api: TestClient, worker: Worker, org: str
) -> None:
    """Stopping the worker between readings and starting it again: every score once, one alert."""
    patient = Patient(api, org)
    patient.settings(long_term_oxygen=False)
    patient.send(0, **NORMAL)
    patient.send(2, pulse=95)
    eventually(lambda: len(patient.scores()) == 2, timeout=60, what="two scores")
    worker.stop()
    patient.send(4, respiration_rate=26)  # accepted while no worker runs
    patient.send(6, pulse=100)
    worker.start()
    eventually(lambda: len(patient.scores()) == 4, timeout=90, what="four scores")
    patient.send(8, pulse=70)
    scores = eventually(
        lambda: len(s := patient.scores()) == 5 and s, timeout=60, what="five scores"
    )
    assert [_total(s) for s in reversed(scores)] == [0, 1, 4, 4, 3]
    assert [(a["level"], a["status"]) for a in patient.alerts()] == [("urgent", "open")]
