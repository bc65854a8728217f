"""The figures an operator watches, scraped as Prometheus scrapes them: the API's ``/metrics``
and the worker's own port, parsed with prometheus_client's parser, against the real broker
and database."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from infra.devissuer import DevIssuer
from infra.processes import free_port
from tests.helpers import bundle, eventually, fresh_fnr, observation
from tests.integration.conftest import Worker

pytestmark = pytest.mark.integration

FHIR = {"Content-Type": "application/fhir+json"}
N = 12

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _parse(text: str) -> Samples:
    """Every sample of a scrape, by name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def _lags(samples: Samples) -> dict[tuple[str, str], float]:
    return {
        (dict(ls)["lane"], dict(ls)["partition"]): v
        for (n, ls), v in samples.items()
        if n == "malestrom_consumer_lag"
    }


def _readings(fnr: str) -> bytes:
    """N distinct heart rates of one patient, measured in the last hour (the live lane)."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    readings = [
        observation(
            fnr=fnr, value=60 + i, effective=(now - dt.timedelta(minutes=i + 1)).isoformat()
        )
        for i in range(N)
    ]
    return orjson.dumps(bundle(*readings, identifier=str(uuid.uuid4())))


def _scraper(port: int) -> Callable[[], Samples]:
    def scrape() -> Samples:
        try:
            return _parse(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
        except httpx.TransportError:  # the worker is still starting
            return {}

    return scrape


def test_metrics_count_every_reading_and_the_lag_drains(
    api: TestClient, worker: Worker, issuer: DevIssuer
) -> None:
    """N readings accepted are N stored and N scored, each histogram has N observations, a
    backlog shows as lag, and the lag is 0 on every partition once the worker drained it."""
    # Stopped once it is in the group (it leaves it then, and the next worker need not wait
    # for a half-joined member), the worker leaves the readings in the broker: a backlog.
    eventually(lambda: api.get("/healthz").status_code == 200, timeout=60, what="the worker")
    worker.stop()
    port = free_port()
    database = worker.env["MALESTROM_DATABASE_URL"]
    worker.env["MALESTROM_WORKER_METRICS_PORT"] = str(port)

    answer = api.post("/fhir", content=_readings(fresh_fnr()), headers=FHIR)
    assert answer.status_code == 200
    assert [e["response"]["status"] for e in answer.json()["entry"]] == ["201 Created"] * N
    wrong = observation(fnr=fresh_fnr(), code="0000-0")
    assert api.post("/fhir/Observation", content=orjson.dumps(wrong), headers=FHIR).is_client_error

    # A worker without its database takes the partitions and stores nothing: the lag stays.
    worker.env["MALESTROM_DATABASE_URL"] = f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    worker.start()
    scrape = _scraper(port)
    stalled = eventually(
        lambda: (s := scrape()) and sum(_lags(s).values()) >= N and s, timeout=60, what="lag"
    )
    assert _total(stalled, "malestrom_readings_stored_total") == 0
    worker.stop()

    worker.env["MALESTROM_DATABASE_URL"] = database
    worker.start()
    drained = eventually(
        lambda: (
            (s := scrape())
            and _total(s, "malestrom_readings_scored_total") >= N
            and _lags(s)
            and not any(_lags(s).values())
            and s
        ),
        timeout=90,
        what="every reading scored and no lag",
    )
    assert _total(drained, "malestrom_readings_stored_total", lane="live") == N
    assert _total(drained, "malestrom_readings_scored_total", lane="live") == N
    assert _total(drained, "malestrom_received_to_stored_seconds_count") == N
    assert _total(drained, "malestrom_received_to_scored_seconds_count") == N
    assert _total(drained, "malestrom_dead_letters_total") == 0
    assert {lane for lane, _ in _lags(drained)} == {"live", "backfill"}
    assert _total(drained, "malestrom_db_pool_requests_total", pool="worker") > 0

    operator = issuer.mint("admin").auth()
    scraped = api.get("/metrics", auth=operator)
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    edge = _parse(scraped.text)
    assert _total(edge, "malestrom_readings_accepted_total", lane="live") == N
    assert _total(edge, "malestrom_readings_accepted_total", lane="backfill") == 0
    assert _total(edge, "malestrom_readings_refused_total") == 1
    assert _total(edge, "malestrom_publish_duration_seconds_count", lane="live") == 1
    assert _total(edge, "malestrom_sse_clients") == 0
    assert _total(edge, "malestrom_db_pool_requests_total", pool="api") > 0


def test_metrics_are_for_operators(api: TestClient) -> None:
    """A nurse's token, however many staff scopes, is refused ``/metrics``."""
    answer = api.get("/metrics")
    assert answer.status_code == 403
    assert 'error="insufficient_scope"' in answer.headers["WWW-Authenticate"]
