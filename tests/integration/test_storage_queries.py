"""The time-series questions through the HTTP API, checked against the raw rows they summarise."""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from infra.devissuer import DevIssuer
from streams.sinks import ObservationRow
from tests.helpers import FNR_SYSTEM, fresh_fnr
from tests.integration.storage_helpers import reading_client, row, write

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 10, 28, 22, 17, tzinfo=dt.UTC)  # deliberately not bucket-aligned


@pytest.fixture(scope="module")
def client(database_url: str, issuer: DevIssuer) -> Iterator[TestClient]:
    """The API in-process on the real database, asked by a hospital clinician with a care
    relationship (the rows are written straight to the database, so no organisation holds
    them)."""
    with reading_client(database_url, issuer) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def series(database_url: str) -> tuple[str, list[ObservationRow]]:
    """A patient with 3 days of pulse every 7 minutes, plus SpO2 and a NEWS2 score."""
    fnr = fresh_fnr()
    rows = [row(fnr, T0 + dt.timedelta(minutes=7 * i), 55 + (i * 13) % 61) for i in range(620)]
    rows += [
        row(fnr, T0 + dt.timedelta(hours=i), 90 + i % 9, code="59408-5", unit="%")
        for i in range(30)
    ]
    rows += [
        row(fnr, T0, 3, code="1104051000000101", system="http://snomed.info/sct", unit="{score}")
    ]
    write(database_url, rows, batch=97)
    return fnr, rows


def _values(
    rows: list[ObservationRow], start: dt.datetime, end: dt.datetime, code: str = "8867-4"
) -> list[float]:
    return [
        r.value
        for r in rows
        if r.code == code and start <= r.effective < end and r.value is not None
    ]


def _patient(fnr: str) -> str:
    return f"{FNR_SYSTEM}|{fnr}"


@pytest.mark.parametrize(
    ("bucket", "width", "span"),
    [
        ("15m", dt.timedelta(minutes=15), dt.timedelta(hours=7, minutes=3)),
        ("1h", dt.timedelta(hours=1), dt.timedelta(hours=50, minutes=41)),
        ("1d", dt.timedelta(days=1), dt.timedelta(days=3, minutes=5)),
    ],
)
def test_trend_buckets_equal_the_raw_rows(
    client: TestClient,
    series: tuple[str, list[ObservationRow]],
    bucket: str,
    width: dt.timedelta,
    span: dt.timedelta,
) -> None:
    """Each trend row equals count/min/max/mean of the raw readings of its bucket in [from, to)."""
    fnr, rows = series
    start = T0 + dt.timedelta(minutes=23)
    end = start + span
    response = client.get(
        "/api/v1/trends",
        params={"patient.identifier": _patient(fnr), "code": "http://loinc.org|8867-4",
                "from": start.isoformat(), "to": end.isoformat(), "bucket": bucket},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    got = response.json()["rows"]
    origin = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    expected: dict[dt.datetime, list[float]] = {}
    for r in rows:
        if r.code == "8867-4" and start <= r.effective < end and r.value is not None:
            b = r.effective - (r.effective - origin) % width
            expected.setdefault(b, []).append(r.value)
    assert [dt.datetime.fromisoformat(g["start"]) for g in got] == sorted(expected)
    for g in got:
        values = expected[dt.datetime.fromisoformat(g["start"])]
        assert (g["count"], g["min"], g["max"]) == (len(values), min(values), max(values))
        assert g["mean"] == pytest.approx(statistics.fmean(values))


def test_stats_equal_the_raw_rows(
    client: TestClient, series: tuple[str, list[ObservationRow]]
) -> None:
    """$stats over a period equals the statistics of the raw readings in it (ends inclusive)."""
    fnr, rows = series
    start, end = T0 + dt.timedelta(minutes=41), T0 + dt.timedelta(days=2, hours=3, minutes=9)
    period = f"{start.isoformat()}/{end.isoformat()}".replace("+00:00", "Z")
    response = client.get(
        "/fhir/Observation/$stats",
        params={"patient.identifier": _patient(fnr), "code": "8867-4", "period": period,
                "statistic": "average,minimum,maximum,count"},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    (parameter,) = response.json()["parameter"]
    observed = {
        c["code"]["coding"][0]["code"]: c["valueQuantity"]["value"]
        for c in parameter["resource"]["component"]
    }
    values = _values(rows, start, end + dt.timedelta(seconds=1))
    assert observed["count"] == len(values)
    assert (observed["minimum"], observed["maximum"]) == (min(values), max(values))
    assert observed["average"] == pytest.approx(statistics.fmean(values))


@pytest.mark.parametrize(("code", "expected_codes"), [
    ("8867-4", {"8867-4"}),
    ("http://snomed.info/sct|1104051000000101", {"1104051000000101"}),
    ("http://loinc.org|1104051000000101", set()),
    (None, {"8867-4", "59408-5", "1104051000000101"}),
])  # fmt: skip
def test_lastn_returns_the_newest_of_each_code(
    client: TestClient,
    series: tuple[str, list[ObservationRow]],
    code: str | None,
    expected_codes: set[str],
) -> None:
    """$lastn gives the max newest readings of each matching code, newest first."""
    fnr, rows = series
    params: dict[str, Any] = {"patient.identifier": _patient(fnr), "max": 3}
    if code:
        params["code"] = code
    entries = client.get("/fhir/Observation/$lastn", params=params).json()["entry"]
    by_code: dict[str, list[str]] = {}
    for e in entries:
        by_code.setdefault(e["resource"]["code"]["coding"][0]["code"], []).append(
            e["resource"]["id"]
        )
    assert set(by_code) == expected_codes
    for c, ids in by_code.items():
        newest = sorted((r for r in rows if r.code == c), key=lambda r: r.effective, reverse=True)[
            :3
        ]
        assert ids == [r.id for r in newest]


def test_search_pages_stay_correct_while_data_arrives(
    database_url: str, client: TestClient, series: tuple[str, list[ObservationRow]]
) -> None:
    """Following next links yields each reading once, in order, while newer ones arrive."""
    fnr, rows = series
    url: str | None = "/fhir/Observation"
    params: dict[str, Any] | None = {
        "patient.identifier": _patient(fnr), "code": "8867-4", "_count": 100,
        "date": ["ge2026-10-29", "lt2026-10-31T00:00:00Z"],
    }  # fmt: skip
    seen: list[str] = []
    while url:
        bundle = client.get(url, params=params).json()
        seen += [e["resource"]["id"] for e in bundle["entry"]]
        if len(seen) == 100:  # a reading newer than this page arrives: it must not shift pages
            write(
                database_url, [row(fnr, dt.datetime(2026, 10, 30, 23, 59, 30, tzinfo=dt.UTC), 77)]
            )
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
        params = None
    start, end = dt.datetime(2026, 10, 29, tzinfo=dt.UTC), dt.datetime(2026, 10, 31, tzinfo=dt.UTC)
    expected = sorted((r for r in rows if r.code == "8867-4" and start <= r.effective < end),
                      key=lambda r: (r.effective, r.id), reverse=True)  # fmt: skip
    assert seen == [r.id for r in expected]


TREND = {"code": "8867-4", "from": "2026-10-29", "to": "2026-10-30"}


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/fhir/Observation", {"date": "ne2026-10-29"}, 400),
        ("/fhir/Observation", {"date": "yesterday"}, 400),
        ("/fhir/Observation", {"_sort": "value"}, 400),
        ("/fhir/Observation", {"_cursor": "bm90IGEgY3Vyc29y"}, 400),
        ("/fhir/Observation/$lastn", {"max": "0"}, 400),
        ("/fhir/Observation/$stats", {"code": "8867-4"}, 422),
        ("/fhir/Observation/$stats", {"period": "2026-10-29/2026-10-30"}, 422),
        ("/fhir/Observation/$stats",
         {"code": "8867-4", "period": "2026-10-29/2026-10-30", "statistic": "median"}, 400),
        ("/api/v1/trends", {**TREND, "bucket": "5m"}, 400),
        ("/api/v1/trends", {**TREND, "from": "2026-10-31"}, 400),
        ("/api/v1/trends", {**TREND, "from": "2020-01-01", "bucket": "15m"}, 400),
    ],
)  # fmt: skip
def test_bad_parameters_answer_with_an_operation_outcome(
    client: TestClient, path: str, params: dict[str, str], status: int
) -> None:
    """A parameter the server cannot honour is refused (400; 422 when required and missing)."""
    response = client.get(path, params={"patient.identifier": fresh_fnr(), **params})
    assert response.status_code == status
    assert response.json()["resourceType"] == "OperationOutcome"


def test_reads_are_audited(
    database_url: str, client: TestClient, series: tuple[str, list[ObservationRow]]
) -> None:
    """$lastn, $stats and trends each write an audit event for the patient read."""
    from tests.integration.storage_helpers import scalar

    fnr, _ = series
    key = scalar(database_url, "SELECT patient_key FROM patients WHERE identifier_value = %s", fnr)
    query = "SELECT count(*) FROM audit_events WHERE patient_key = %s AND action = %s"
    before = {a: scalar(database_url, query, key, a) for a in ("lastn", "stats", "trends")}
    client.get("/fhir/Observation/$lastn", params={"patient.identifier": fnr})
    client.get(
        "/fhir/Observation/$stats",
        params={"patient.identifier": fnr, "code": "8867-4", "period": "2026-10-29/2026-10-30"},
    )
    client.get(
        "/api/v1/trends",
        params={
            "patient.identifier": fnr,
            "code": "8867-4",
            "from": "2026-10-29",
            "to": "2026-10-30",
        },
    )
    assert {a: scalar(database_url, query, key, a) - before[a] for a in before} == {
        "lastn": 1,
        "stats": 1,
        "trends": 1,
    }
