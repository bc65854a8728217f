"""Blood pressure everywhere: the systolic (8480-6) and diastolic (8462-4) components of the
85354-9 panel are searchable (``component-code``, ``combo-code``), trended, rolled up and given
``$stats``, and each answer equals a computation here, in plain Python, from the readings sent.
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import uuid
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from infra.devissuer import DevIssuer
from streams.sinks import ObservationRow, observation_row
from tests.helpers import FNR_SYSTEM, bundle, eventually, fresh_fnr, observation
from tests.integration.storage_helpers import (
    execute,
    own_database,
    reading_client,
    row,
    run_policy,
    write,
)

pytestmark = pytest.mark.integration

FHIR = {"Content-Type": "application/fhir+json"}
LOINC = "http://loinc.org"
PANEL, SYSTOLIC, DIASTOLIC = "85354-9", "8480-6", "8462-4"
ORIGIN = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
DAY0 = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(
    days=6
)
Reading = tuple[dt.datetime, float, float]  # effective, systolic, diastolic


def _component(code: str, value: float) -> dict[str, Any]:
    quantity = {"value": value, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org"}
    return {
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "valueQuantity": quantity | {"code": "mm[Hg]"},
    }


def _panel(fnr: str, at: dt.datetime, systolic: float, diastolic: float) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": PANEL}]},
        "subject": {"identifier": {"system": FNR_SYSTEM, "value": fnr}},
        "effectiveDateTime": at.isoformat(),
        "component": [_component(SYSTOLIC, systolic), _component(DIASTOLIC, diastolic)],
    }


def _readings(seed: int) -> list[Reading]:
    """Four days of three to six readings a day at uneven times, some in the same hour."""
    rng = random.Random(seed)
    out: dict[dt.datetime, Reading] = {}
    for day in range(4):
        for _ in range(rng.randint(3, 6)):
            at = DAY0 + dt.timedelta(days=day, minutes=rng.randrange(0, 24 * 60))
            out[at] = (at, rng.randint(95, 190), rng.randint(50, 110))
    return sorted(out.values())


def _bucket(at: dt.datetime, width: dt.timedelta) -> dt.datetime:
    return at - (at - ORIGIN) % width


Row = tuple[int, float, float, float]  # count, min, max, mean


def expected_rows(
    values: list[tuple[dt.datetime, float]],
    start: dt.datetime,
    end: dt.datetime,
    width: dt.timedelta,
) -> dict[str, Row]:
    """Per UTC-aligned bucket of ``width``: count, min, max and mean of the values in
    ``[start, end)``, keyed by the bucket's start as the API writes it."""
    buckets: dict[dt.datetime, list[float]] = {}
    for at, value in values:
        if start <= at < end:
            buckets.setdefault(_bucket(at, width), []).append(value)
    return {
        b.isoformat().replace("+00:00", "Z"): (len(v), min(v), max(v), statistics.fmean(v))
        for b, v in sorted(buckets.items())
    }


def _rows(answer: list[dict[str, Any]]) -> dict[str, Row]:
    return {r["start"]: (r["count"], r["min"], r["max"], r["mean"]) for r in answer}


def _trend(client: TestClient, fnr: str, code: str, start: dt.datetime, end: dt.datetime,
           bucket: str) -> dict[str, Any]:  # fmt: skip
    answer = client.get(
        "/api/v1/trends",
        params={"patient.identifier": fnr, "code": code, "bucket": bucket,
                "from": start.isoformat(), "to": end.isoformat()},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _stats(client: TestClient, fnr: str, code: str, start: dt.datetime,
           end: dt.datetime) -> list[dict[str, Any]]:  # fmt: skip
    period = f"{start.isoformat()}/{end.isoformat()}".replace("+00:00", "Z")
    answer = client.get(
        "/fhir/Observation/$stats",
        params={"patient.identifier": fnr, "code": code, "period": period,
                "statistic": "average,minimum,maximum,count,sum"},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    return [p["resource"] for p in answer.json()["parameter"]]


def _statistic(resource: dict[str, Any]) -> tuple[str, dict[str, float]]:
    """The code of a statistic Observation and its values by statistic."""
    coding = resource["code"]["coding"][0]
    values = {
        c["code"]["coding"][0]["code"]: c["valueQuantity"]["value"] for c in resource["component"]
    }
    return f"{coding['system']}|{coding['code']}", values


def expected_stats(values: list[float]) -> dict[str, float]:
    """$stats computed here: average, minimum, maximum, count and sum of the values."""
    return {
        "average": statistics.fmean(values),
        "minimum": min(values),
        "maximum": max(values),
        "count": len(values),
        "sum": sum(values),
    }


def _same_rows(found: dict[str, Row], expected: dict[str, Row]) -> None:
    assert found.keys() == expected.keys()
    for start, (n, lo, hi, mean) in expected.items():
        assert found[start][:3] == (n, lo, hi), start
        assert found[start][3] == pytest.approx(mean, rel=1e-12), start


def _same_stats(found: dict[str, float], expected: dict[str, float]) -> None:
    assert found.keys() == expected.keys()
    for name, value in expected.items():
        assert found[name] == pytest.approx(value, rel=1e-12), name


def _search(api: TestClient, params: dict[str, str], *, strict: bool = False) -> Any:
    headers = {"Prefer": "handling=strict"} if strict else None
    answer = api.get("/fhir/Observation", params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _ids(found: Any) -> set[str]:
    return {e["resource"]["id"] for e in found.get("entry", [])}


@pytest.fixture
def posted(api: TestClient) -> tuple[str, list[Reading], str]:
    """A patient's blood pressure panels over four days and one pulse reading, sent through the
    API and stored by the worker: the patient, the readings, and the pulse reading's id."""
    fnr = fresh_fnr()
    readings = _readings(seed=11)
    pulse = observation(fnr=fnr, effective=(DAY0 + dt.timedelta(hours=30)).isoformat())
    resources = [_panel(fnr, at, s, d) for at, s, d in readings] + [pulse]
    answer = api.post(
        "/fhir",
        content=orjson.dumps(bundle(*resources, identifier=str(uuid.uuid4()))),
        headers=FHIR,
    )
    assert answer.status_code == 200, answer.text
    pulse_id = answer.json()["entry"][-1]["response"]["location"].removeprefix("Observation/")
    everything = {"patient.identifier": fnr, "_count": "100"}
    eventually(lambda: len(_search(api, everything)["entry"]) == len(resources),
               timeout=60, what="every reading stored")  # fmt: skip
    return fnr, readings, pulse_id


def test_trends_of_each_component_equal_a_computation_from_the_readings(
    api: TestClient, posted: tuple[str, list[Reading], str]
) -> None:
    """Daily and hourly trends of 8480-6 and 8462-4, over whole days and over ragged edges (so
    that aggregates and raw rows both answer), equal the same statistics computed here; 85354-9
    gives both series as its components."""
    fnr, readings, _ = posted
    systolic = [(at, s) for at, s, _ in readings]
    diastolic = [(at, d) for at, _, d in readings]
    whole = (DAY0, DAY0 + dt.timedelta(days=4))
    ragged = (DAY0 + dt.timedelta(hours=7, minutes=30), DAY0 + dt.timedelta(days=3, hours=17))
    for start, end in (whole, ragged):
        for bucket, width in (("1d", dt.timedelta(days=1)), ("1h", dt.timedelta(hours=1))):
            for code, values in ((SYSTOLIC, systolic), (DIASTOLIC, diastolic)):
                body = _trend(api, fnr, code, start, end, bucket)
                assert body["unit"] == "mm[Hg]"
                assert "components" not in body
                _same_rows(_rows(body["rows"]), expected_rows(values, start, end, width))
            panel = _trend(api, fnr, f"{LOINC}|{PANEL}", start, end, bucket)
            assert panel["rows"] == []  # the panel has no value of its own
            series = {c["code"]: c for c in panel["components"]}
            assert list(series) == [f"{LOINC}|{SYSTOLIC}", f"{LOINC}|{DIASTOLIC}"]
            for code, values in ((SYSTOLIC, systolic), (DIASTOLIC, diastolic)):
                expected = expected_rows(values, start, end, width)
                _same_rows(_rows(series[f"{LOINC}|{code}"]["rows"]), expected)
                assert series[f"{LOINC}|{code}"]["unit"] == "mm[Hg]"
    assert sum(r["count"] for r in _trend(api, fnr, SYSTOLIC, *whole, "1d")["rows"]) == len(
        readings
    )


def test_stats_of_each_component_equal_a_computation_from_the_readings(
    api: TestClient, posted: tuple[str, list[Reading], str]
) -> None:
    """$stats of 8480-6 and of 8462-4 equal average, minimum, maximum, count and sum computed
    here over the period; 85354-9 answers one statistic Observation per component, as FHIR's
    $stats does for a panel."""
    fnr, readings, _ = posted
    start, end = DAY0 + dt.timedelta(hours=5), DAY0 + dt.timedelta(days=3, hours=20)
    inside = [(s, d) for at, s, d in readings if start <= at < end]
    assert 0 < len(inside) < len(readings)  # the period cuts the readings
    expected = {
        f"{LOINC}|{SYSTOLIC}": expected_stats([s for s, _ in inside]),
        f"{LOINC}|{DIASTOLIC}": expected_stats([d for _, d in inside]),
    }
    for code in (SYSTOLIC, DIASTOLIC):
        [resource] = _stats(api, fnr, code, start, end)
        name, values = _statistic(resource)
        assert name == f"{LOINC}|{code}"
        _same_stats(values, expected[name])
        assert resource["component"][0]["valueQuantity"]["unit"] == "mm[Hg]"
    found = dict(_statistic(r) for r in _stats(api, fnr, PANEL, start, end))
    assert list(found) == list(expected)
    for name, values in found.items():
        _same_stats(values, expected[name])


def test_component_code_and_combo_code_search(
    api: TestClient, posted: tuple[str, list[Reading], str]
) -> None:
    """component-code finds the panels with that component, combo-code the Observations with
    that code or a component of it; both take system|code, are in the CapabilityStatement as
    tokens, are kept under strict handling, and a bad token is a 400 naming the parameter."""
    fnr, readings, pulse_id = posted
    patient = {"patient.identifier": fnr, "_count": "100"}
    panels = _ids(_search(api, {**patient, "code": PANEL}))
    assert len(panels) == len(readings)
    for code in (SYSTOLIC, f"{LOINC}|{DIASTOLIC}"):
        assert _ids(_search(api, {**patient, "component-code": code})) == panels
    assert _ids(_search(api, {**patient, "component-code": "8867-4"})) == set()
    assert (
        _ids(_search(api, {**patient, "component-code": f"http://snomed.info/sct|{SYSTOLIC}"}))
        == set()
    )
    assert _ids(_search(api, {**patient, "combo-code": SYSTOLIC})) == panels
    assert _ids(_search(api, {**patient, "combo-code": PANEL})) == panels
    assert _ids(_search(api, {**patient, "combo-code": "8867-4"})) == {pulse_id}
    both = _search(api, {**patient, "combo-code": f"{DIASTOLIC},{LOINC}|8867-4"})
    assert _ids(both) == panels | {pulse_id}
    assert "combo-code" in both["link"][0]["url"]
    counted = _search(
        api, {**patient, "component-code": SYSTOLIC, "_summary": "count"}, strict=True
    )
    assert counted["total"] == len(readings)
    for name in ("component-code", "combo-code"):
        bad = api.get("/fhir/Observation", params={**patient, name: f"{LOINC}|"})
        assert bad.status_code == 400
        assert bad.json()["issue"][0]["expression"] == [name]
    statement = api.get("/fhir/metadata", auth=None).json()
    observation_cs = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Observation")
    types = {q["name"]: q["type"] for q in observation_cs["searchParam"]}
    assert (types["component-code"], types["combo-code"]) == ("token", "token")


def test_lastn_of_a_component_code_gives_the_panels_that_carry_it(
    api: TestClient, posted: tuple[str, list[Reading], str]
) -> None:
    """$lastn of 8480-6 with max 2 gives the two newest panels, which carry the systolic
    value."""
    fnr, readings, _ = posted
    answer = api.get(
        "/fhir/Observation/$lastn", params={"patient.identifier": fnr, "code": SYSTOLIC, "max": 2}
    )
    assert answer.status_code == 200, answer.text
    found = [e["resource"] for e in answer.json()["entry"]]
    newest = sorted(readings, reverse=True)[:2]
    assert [dt.datetime.fromisoformat(r["effectiveDateTime"]) for r in found] == [
        at for at, _, _ in newest
    ]
    assert [r["component"][0]["valueQuantity"]["value"] for r in found] == [s for _, s, _ in newest]


def _stored_panel(fnr: str, at: dt.datetime, systolic: float, diastolic: float) -> ObservationRow:
    resource = _panel(fnr, at, systolic, diastolic)
    resource["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{fnr}/{PANEL}/{at.isoformat()}"))
    resource["issued"] = at.isoformat()
    return observation_row(str(uuid.uuid5(uuid.NAMESPACE_OID, fnr)), orjson.dumps(resource))


def _maintain(db: str, engine: str) -> None:
    """What the storage maintenance does in the background: compact the rollup deltas, or on
    TimescaleDB Community refresh the continuous aggregates of the panels."""
    if engine != "timescaledb":
        execute(db, "SELECT malestrom_compact_rollups('-infinity')")
        return
    for grain in ("hourly", "daily"):
        proc = "policy_refresh_continuous_aggregate"
        run_policy(db, proc, f"observation_panels_{grain}")


def test_rollups_of_components_count_panels_and_standalone_readings(
    database_url: str, issuer: DevIssuer, engine: str
) -> None:
    """In a database of its own, written through the sink in batches, half of the rows sent
    again with the rest (so rollup deltas pile up, from both of the writer's paths): trends and
    $stats of 8480-6 count the panels' systolic values with stand-alone systolic Observations;
    the same after the rollups are compacted and, on TimescaleDB Community, after the
    continuous aggregates are refreshed."""
    fnr = "80000000002"
    readings = _readings(seed=12)
    alone = [(at + dt.timedelta(minutes=7), float(s - 3)) for at, s, _ in readings[::3]]
    rows = [_stored_panel(fnr, at, s, d) for at, s, d in readings]
    rows += [row(fnr, at, v, code=SYSTOLIC, unit="mm[Hg]") for at, v in alone]
    systolic = sorted([(at, float(s)) for at, s, _ in readings] + alone)
    start, end = DAY0 + dt.timedelta(hours=3), DAY0 + dt.timedelta(days=3, hours=22)
    with own_database(database_url) as db:
        write(db, rows[::2], batch=4)
        write(db, rows, batch=7)  # batches with stored rows take the writer's replay path
        with reading_client(db, issuer) as client:
            for maintained in (False, True):
                if maintained:
                    _maintain(db, engine)
                for bucket, width in (("1d", dt.timedelta(days=1)), ("1h", dt.timedelta(hours=1))):
                    body = _trend(client, fnr, SYSTOLIC, start, end, bucket)
                    _same_rows(_rows(body["rows"]), expected_rows(systolic, start, end, width))
                [stat] = _stats(client, fnr, SYSTOLIC, start, end)
                inside = [v for at, v in systolic if start <= at < end]
                _same_stats(_statistic(stat)[1], expected_stats(inside))
