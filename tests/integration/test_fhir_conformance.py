"""What a standard FHIR client expects of the server: a CapabilityStatement that states what the
routes do, reads at the ids the server hands out, and searches that are honest about the
parameters they apply."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from tests.helpers import bundle, eventually, fresh_fnr, observation

pytestmark = pytest.mark.integration

FHIR = {"Content-Type": "application/fhir+json"}
NEWS2 = "http://snomed.info/sct|1104051000000101"


def _post(api: TestClient, *resources: dict[str, Any]) -> list[str]:
    answer = api.post(
        "/fhir",
        content=orjson.dumps(bundle(*resources, identifier=str(uuid.uuid4()))),
        headers=FHIR,
    )
    assert answer.status_code == 200, answer.text
    return [e["response"]["location"] for e in answer.json()["entry"]]


def _search(api: TestClient, **params: Any) -> Any:
    answer = api.get("/fhir/Observation", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_capability_statement_states_what_the_routes_do(api: TestClient) -> None:
    """R4 instance statement, JSON; every interaction and operation it lists is routed, and
    every FHIR route is listed."""
    statement = api.get("/fhir/metadata", auth=None)  # public, as FHIR clients expect
    assert statement.status_code == 200
    cs = statement.json()
    assert (cs["resourceType"], cs["kind"], cs["fhirVersion"]) == (
        "CapabilityStatement",
        "instance",
        "4.0.1",
    )
    assert "json" in cs["format"]
    rest = cs["rest"][0]
    assert "DPoP" in rest["security"]["description"]
    routed = api.get("/openapi.json").json()["paths"]
    observation_cs = next(r for r in rest["resource"] if r["type"] == "Observation")
    codes = {i["code"] for i in observation_cs["interaction"]}
    assert codes == {"read", "search-type", "create"}
    assert {"/fhir/Observation", "/fhir/Observation/{resource_id}"} <= set(routed)
    names = {q["name"] for q in observation_cs["searchParam"]}
    documented = {q["name"] for q in routed["/fhir/Observation"]["get"]["parameters"]}
    assert names == documented
    assert {"code", "date", "category", "_count", "_elements", "_summary"} <= names
    operations = {o["name"] for o in rest["operation"]}
    assert operations == {"lastn", "stats", "document"}
    fhir_routes = {p for p in routed if p.startswith("/fhir/") and p != "/fhir/metadata"}
    listed = {f"/fhir/{r['type']}" for r in rest["resource"]}
    assert {p.split("/")[2] for p in fhir_routes} == {p.split("/")[2] for p in listed}


def test_every_location_resolves_to_the_stored_resource(api: TestClient) -> None:
    """A Location answered by POST /fhir reads back (200, versionId, lastUpdated, ETag)."""
    fnr = fresh_fnr()
    [location] = _post(api, observation(fnr=fnr))
    answer = api.get(f"/fhir/{location}")
    assert answer.status_code == 200, answer.text
    resource = answer.json()
    assert resource["id"] == location.removeprefix("Observation/")
    assert resource["meta"]["versionId"]
    assert resource["meta"]["lastUpdated"].endswith("Z")
    assert answer.headers["ETag"] == f'W/"{resource["meta"]["versionId"]}"'
    missing = api.get(f"/fhir/Observation/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert missing.json()["resourceType"] == "OperationOutcome"
    assert api.get("/fhir/Observation/not-an-id").status_code == 404


def test_search_is_honest_about_its_parameters(api: TestClient) -> None:
    """Unknown parameters: ignored and left out of the self link (lenient), or a 400 naming
    them (strict); _count=0 and _summary=count give a count only; _total=accurate a total."""
    fnr = fresh_fnr()
    _post(api, *(observation(fnr=fnr, value=60 + i, effective=f"2026-11-2{i}T08:00:00Z")
                 for i in range(3)))  # fmt: skip
    eventually(lambda: len(_search(api, **{"patient.identifier": fnr})["entry"]) == 3,
               timeout=60, what="three stored")  # fmt: skip
    lenient = _search(api, **{"patient.identifier": fnr, "colour": "blue"})
    assert "colour" not in lenient["link"][0]["url"]
    assert len(lenient["entry"]) == 3
    strict = api.get(
        "/fhir/Observation",
        params={"patient.identifier": fnr, "colour": "blue"},
        headers={"Prefer": "handling=strict"},
    )
    assert strict.status_code == 400
    assert strict.json()["issue"][0]["expression"] == ["colour"]
    for count_only in ({"_count": "0"}, {"_summary": "count"}):
        counted = _search(api, **{"patient.identifier": fnr, **count_only})
        assert (counted["total"], "entry" in counted) == (3, False)
    paged = _search(api, **{"patient.identifier": fnr, "_count": "2", "_total": "accurate"})
    assert (paged["total"], len(paged["entry"])) == (3, 2)
    assert any(link["relation"] == "next" for link in paged["link"])


def test_elements_and_category_are_applied(api: TestClient) -> None:
    """_elements keeps the asked-for and the mandatory elements (tagged SUBSETTED); category
    vital-signs finds the measurements, survey the NEWS2 scores, laboratory nothing here."""
    fnr = fresh_fnr()
    _post(api, observation(fnr=fnr))
    eventually(lambda: _search(api, **{"patient.identifier": fnr}).get("entry"),
               timeout=60, what="stored")  # fmt: skip
    subset = _search(api, **{"patient.identifier": fnr, "_elements": "value"})
    resource = subset["entry"][0]["resource"]
    assert set(resource) == {"resourceType", "id", "meta", "status", "code", "valueQuantity"}
    assert any(t["code"] == "SUBSETTED" for t in resource["meta"]["tag"])
    vital = _search(api, **{"patient.identifier": fnr, "category": "vital-signs"})
    assert len(vital["entry"]) == 1
    lab = _search(api, **{"patient.identifier": fnr, "category": "laboratory"})
    assert lab.get("entry") == []


def test_summary_keeps_the_summary_or_the_text_elements(api: TestClient) -> None:
    """_summary=true keeps the Observation's summary (Σ) elements, tagged SUBSETTED; text keeps
    id, meta and the mandatory ones; data and false keep everything; any other value is a 400
    that lists the valid ones."""
    fnr = fresh_fnr()
    _post(api, observation(fnr=fnr))
    full = eventually(lambda: _search(api, **{"patient.identifier": fnr}).get("entry"),
                      timeout=60, what="stored")[0]["resource"]  # fmt: skip
    summary = _search(api, **{"patient.identifier": fnr, "_summary": "true"})["entry"][0]
    resource = summary["resource"]
    assert "category" in full
    assert "category" not in resource  # category is not a summary element of an Observation
    assert {"status", "code", "subject", "effectiveDateTime", "valueQuantity"} <= set(resource)
    assert any(t["code"] == "SUBSETTED" for t in resource["meta"]["tag"])
    text = _search(api, **{"patient.identifier": fnr, "_summary": "text"})["entry"][0]["resource"]
    assert set(text) == {"resourceType", "id", "meta", "status", "code"}
    for everything in ("data", "false"):
        same = _search(api, **{"patient.identifier": fnr, "_summary": everything})
        assert same["entry"][0]["resource"] == full
    wrong = api.get("/fhir/Observation", params={"patient.identifier": fnr, "_summary": "some"})
    assert wrong.status_code == 400
    assert "true, text, data, count, false" in wrong.text


def test_a_missing_date_says_missing_not_malformed(api: TestClient) -> None:
    """Trends without ``from`` are refused saying it is missing (422), with an example; a
    malformed one says it is not a date (400)."""
    fnr = fresh_fnr()
    _post(api, observation(fnr=fnr))
    query = {"patient.identifier": fnr, "code": "8867-4", "to": "2026-12-01"}
    missing = api.get("/api/v1/trends", params=query)
    assert missing.status_code == 422
    issue = missing.json()["issue"][0]
    assert (issue["code"], issue["expression"]) == ("required", ["from"])
    assert "from is missing" in issue["diagnostics"]
    malformed = api.get("/api/v1/trends", params=query | {"from": "yesterday"})
    assert malformed.status_code == 400
    assert "not a FHIR date" in malformed.json()["issue"][0]["diagnostics"]


def test_only_json_is_served_and_asking_for_another_format_is_a_406(api: TestClient) -> None:
    """FHIR JSON under any of its names is served (``_format`` is then no unknown parameter,
    even under strict handling); XML by ``_format`` or ``Accept`` is a 406 naming which."""
    fnr = fresh_fnr()
    _post(api, observation(fnr=fnr))
    strict = {"Prefer": "handling=strict"}
    for fmt in ("json", "application/fhir+json"):
        answer = api.get(
            "/fhir/Observation", params={"patient.identifier": fnr, "_format": fmt}, headers=strict
        )
        assert answer.status_code == 200, answer.text
        assert "_format" not in answer.json()["link"][0]["url"]
    assert api.get("/fhir/metadata", headers={"Accept": "application/fhir+json"}).status_code == 200
    xml = api.get("/fhir/metadata", params={"_format": "xml"})
    assert xml.status_code == 406
    assert xml.json()["issue"][0]["expression"] == ["_format"]
    accept = api.get("/fhir/metadata", headers={"Accept": "application/fhir+xml"})
    assert accept.status_code == 406
    assert accept.json()["issue"][0]["expression"] == ["Accept"]
