"""`malestrom up` as a user runs it: healthy, a Bundle in and out, clean stop, clean restart."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from infra.devissuer import SIMULATED_ORGANISATION, DevIssuer
from infra.processes import free_port
from tests.engines import ENGINES, session_engine
from tests.helpers import bundle, for_patient, fresh_fnr, load_fixture, observation

pytestmark = pytest.mark.e2e

FHIR = {"Content-Type": "application/fhir+json"}


def _env(**settings: str) -> dict[str, str]:
    """The environment for `malestrom up`: external services only when the tests were given them,
    else the embedded engine of this session; ``settings`` override (``MALESTROM_…``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALESTROM_")}
    env.update(ENGINES[session_engine()].up_environment())
    if url := os.environ.get("MALESTROM_TEST_DATABASE_URL"):
        env["MALESTROM_DATABASE_URL"] = url
    if bootstrap := os.environ.get("MALESTROM_TEST_KAFKA_BOOTSTRAP"):
        env["MALESTROM_KAFKA_BOOTSTRAP"] = bootstrap
        env["MALESTROM_TOPIC_PREFIX"] = f"e2e-{uuid.uuid4().hex[:8]}"
        env["MALESTROM_BROKER_SESSION_TIMEOUT"] = "6"
    return {**env, **settings}


def _log(data_dir: Path, port: int) -> Path:
    return data_dir.parent / f"up-{port}.log"


@contextmanager
def malestrom_up(
    data_dir: Path, port: int, **settings: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Run `malestrom up` on a free port; on exit send SIGTERM and wait."""
    log = _log(data_dir, port).open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "up", "--port", str(port), "--data-dir", str(data_dir)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_env(**settings),
    )
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        log.close()


def _eventually(check: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except httpx.HTTPError:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.25)


def _metrics(port: int) -> dict[str, float]:
    """The sums of every counter and gauge on a loopback metrics port `up` turned on."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in (f"{family.name}_total", family.name):
                sums[family.name] = sums.get(family.name, 0.0) + sample.value
    return sums


def _drained(port: int) -> dict[str, float] | None:
    figures = _metrics(port)
    return figures if figures.get("malestrom_consumer_lag", -1) == 0 else None


def _roles(data_dir: Path) -> tuple[httpx.Auth, httpx.Auth]:
    """A hub and a nurse of the simulated organisation, from the issuer `up` made."""
    issuer = DevIssuer.ensure(data_dir / "dev-issuer")
    return issuer.mint("hub").auth(), issuer.mint("nurse").auth()


def _post(url: str, body: dict[str, Any], hub: httpx.Auth) -> int:
    return httpx.post(f"{url}/fhir", content=orjson.dumps(body), headers=FHIR, auth=hub).status_code


def _search(url: str, fnr: str, nurse: httpx.Auth) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{url}/fhir/Observation", params={"patient.identifier": fnr, "_count": 1000}, auth=nurse
    )
    entries: list[dict[str, Any]] = response.json()["entry"]
    return entries


def test_up_serves_a_bundle_and_stops_without_leftovers(tmp_path: Path) -> None:
    """Healthy in 60 s; 3 Observations back in 10 s; a resend leaves 3; SIGTERM leaves nothing."""
    data_dir, port = tmp_path / "data", free_port()
    fnr = fresh_fnr()
    body = for_patient(load_fixture("bundle_three_vitals.json"), fnr)
    with malestrom_up(data_dir, port) as (proc, url):
        _eventually(
            lambda: httpx.get(f"{url}/healthz").status_code == 200, timeout=60, what="healthy"
        )
        hub, nurse = _roles(data_dir)
        assert (
            httpx.post(f"{url}/fhir", content=orjson.dumps(body), headers=FHIR).status_code == 401
        )
        assert _post(url, body, hub) == 200
        _eventually(lambda: len(_search(url, fnr, nurse)) == 3, timeout=10, what="3 observations")
        assert _post(url, body, hub) == 200
        time.sleep(2)  # give a duplicate time to land, were it (wrongly) to be stored
        assert len(_search(url, fnr, nurse)) == 3
        worker = _eventually(lambda: _drained(port + 2), timeout=30, what="worker metrics, lag 0")
        assert worker["malestrom_readings_stored"] >= 3
        api = _metrics(port + 3)
        assert api["malestrom_readings_accepted"] == 3  # the resend was known: not counted
        called = subprocess.run(
            [sys.executable, "-m", "infra.cli", "call", "GET", "/api/v1/board", "--url", url,
             "--data-dir", str(data_dir)],
            capture_output=True, text=True, timeout=60, env=_env(), check=False,
        )  # fmt: skip
        assert called.returncode == 0, called.stderr
        assert json.loads(called.stdout)["organisation"] == SIMULATED_ORGANISATION
        letters = subprocess.run(
            [sys.executable, "-m", "infra.cli", "dlq", "list", "--data-dir", str(data_dir)],
            capture_output=True, text=True, timeout=60, env=_env(), check=False,
        )  # fmt: skip
        assert letters.returncode == 0, letters.stderr  # it finds up's embedded broker
        assert "0 dead letter(s)" in letters.stdout
        family = psutil.Process(proc.pid).children(recursive=True)
        assert len(family) >= 3  # worker, API, and the embedded services
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    _, alive = psutil.wait_procs(family, timeout=10)
    assert alive == []


def test_second_start_on_the_same_data_dir_keeps_the_data(tmp_path: Path) -> None:
    """A restart (even after the first was killed hard) is healthy and still has the readings."""
    data_dir = tmp_path / "data"
    fnr = fresh_fnr()
    body = for_patient(load_fixture("bundle_three_vitals.json"), fnr)
    with malestrom_up(data_dir, free_port()) as (proc, url):
        _eventually(
            lambda: httpx.get(f"{url}/healthz").status_code == 200, timeout=60, what="healthy"
        )
        hub, nurse = _roles(data_dir)
        assert _post(url, body, hub) == 200
        _eventually(lambda: len(_search(url, fnr, nurse)) == 3, timeout=10, what="3 observations")
        family = psutil.Process(proc.pid).children(recursive=True)
        proc.kill()  # no clean-up at all: children die with their parent, pid files stay behind
        proc.wait(10)
    psutil.wait_procs(family, timeout=30)
    with malestrom_up(data_dir, free_port()) as (proc, url):
        _eventually(
            lambda: httpx.get(f"{url}/healthz").status_code == 200, timeout=60, what="healthy again"
        )
        _, nurse = _roles(data_dir)  # the issuer's key survived; its identifier names the port
        assert len(_search(url, fnr, nurse)) == 3


START = dt.datetime(2026, 11, 23, 6, 10, tzinfo=dt.UTC)
ORIGIN = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def _z(t: dt.datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _trend(
    url: str, fnr: str, bucket: str, span: tuple[dt.datetime, dt.datetime], nurse: httpx.Auth
) -> Any:
    params = {"patient.identifier": fnr, "code": "8867-4", "bucket": bucket}
    response = httpx.get(
        f"{url}/api/v1/trends",
        params={**params, "from": _z(span[0]), "to": _z(span[1])},
        auth=nurse,
    )
    return {
        dt.datetime.fromisoformat(r["start"]): (r["count"], r["min"], r["max"], round(r["mean"], 9))
        for r in response.json()["rows"]
    }


def _expected(values: dict[dt.datetime, float], width: dt.timedelta) -> Any:
    buckets: dict[dt.datetime, list[float]] = {}
    for t, value in sorted(values.items()):
        buckets.setdefault(t - (t - ORIGIN) % width, []).append(value)
    return {b: (len(v), min(v), max(v), round(statistics.fmean(v), 9)) for b, v in buckets.items()}


def _round_trip(url: str, data_dir: Path) -> None:
    """A hub posts two days of pulses; a nurse reads them back and finds the trends equal to
    what was posted."""
    hub, nurse = _roles(data_dir)
    fnr = fresh_fnr()
    values = {START + i * dt.timedelta(minutes=47): 55 + (i * 29) % 60 for i in range(61)}
    readings = [observation(fnr=fnr, value=v, effective=_z(t)) for t, v in values.items()]
    assert _post(url, bundle(*readings, identifier=str(uuid.uuid4())), hub) == 200
    _eventually(lambda: len(_search(url, fnr, nurse)) == len(values), timeout=30, what="all stored")
    stored = {
        dt.datetime.fromisoformat(e["resource"]["effectiveDateTime"]): e["resource"][
            "valueQuantity"
        ]["value"]
        for e in _search(url, fnr, nurse)
    }
    assert stored == values
    span = START + dt.timedelta(minutes=20), START + dt.timedelta(hours=45)
    inside = {t: v for t, v in values.items() if span[0] <= t < span[1]}
    for bucket, width in (("1h", dt.timedelta(hours=1)), ("1d", dt.timedelta(days=1))):
        assert _trend(url, fnr, bucket, span, nurse) == _expected(inside, width)


def _storage_when_healthy(url: str) -> Any:
    return _eventually(
        lambda: (r := httpx.get(f"{url}/healthz")).status_code == 200 and r.json(),
        timeout=60, what="healthy",
    )["components"]["storage"]  # fmt: skip


def test_up_says_which_engine_runs_and_a_round_trip_holds_on_it(tmp_path: Path) -> None:
    """The start-up message and /healthz name the session's engine and edition; readings posted
    come back, and their trends equal them."""
    data_dir, port = tmp_path / "data", free_port()
    expected = ENGINES[session_engine()]
    with malestrom_up(data_dir, port) as (_proc, url):
        storage = _storage_when_healthy(url)
        assert (storage["engine"], storage["edition"]) == (expected.engine, expected.edition)
        assert f"storage: {expected.says}" in _log(data_dir, port).read_text()
        _round_trip(url, data_dir)


def _db_upgrade(data_dir: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra.cli", "db", "upgrade", "--data-dir", str(data_dir)],
        env=_env(**settings), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.engine("timescaledb")
@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"MALESTROM_ENGINE": "postgresql"}, "the server does not load it"),
        ({"MALESTROM_TIMESCALEDB_LICENSE": "apache"}, "runs the Apache edition"),
    ],
)
def test_a_timescaledb_database_on_a_lesser_engine_is_refused_with_the_fix(
    tmp_path: Path, settings: dict[str, str], says: str
) -> None:
    """A Community data directory started without TimescaleDB, or under the Apache licence,
    is refused at start-up with what to do, and is still good afterwards."""
    data_dir, port = tmp_path / "data", free_port()
    assert _db_upgrade(data_dir).returncode == 0
    with malestrom_up(data_dir, port, **settings) as (proc, _url):
        assert proc.wait(60) == 1
    said = _log(data_dir, port).read_text()
    assert says in said
    assert "could not start" in said
    again = _db_upgrade(data_dir)
    assert again.returncode == 0
    assert "Community edition" in again.stdout


@pytest.mark.engine("timescaledb")
def test_a_plain_database_keeps_its_profile_when_timescaledb_is_installed(tmp_path: Path) -> None:
    """A data directory made on plain PostgreSQL, started where TimescaleDB is installed, keeps
    the plain profile, says so, and serves readings as before."""
    data_dir, port = tmp_path / "data", free_port()
    assert _db_upgrade(data_dir, MALESTROM_ENGINE="postgresql").returncode == 0
    with malestrom_up(data_dir, port, MALESTROM_ENGINE="auto") as (_proc, url):
        storage = _storage_when_healthy(url)
        assert (storage["profile"], storage["engine"]) == ("postgresql", "postgresql")
        assert "keeps that profile" in _log(data_dir, port).read_text()
        _round_trip(url, data_dir)
