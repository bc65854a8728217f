"""`malestrom up` as a user runs it: healthy, a Bundle in and out, clean stop, clean restart."""

from __future__ import annotations

import json
import os
import signal
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

from infra.devissuer import SIMULATED_ORGANISATION, DevIssuer
from infra.processes import free_port
from tests.helpers import for_patient, fresh_fnr, load_fixture

pytestmark = pytest.mark.e2e

FHIR = {"Content-Type": "application/fhir+json"}


def _env() -> dict[str, str]:
    """The environment for `malestrom up`: external services only when the tests were given them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALESTROM_")}
    if url := os.environ.get("MALESTROM_TEST_DATABASE_URL"):
        env["MALESTROM_DATABASE_URL"] = url
    if bootstrap := os.environ.get("MALESTROM_TEST_KAFKA_BOOTSTRAP"):
        env["MALESTROM_KAFKA_BOOTSTRAP"] = bootstrap
        env["MALESTROM_TOPIC_PREFIX"] = f"e2e-{uuid.uuid4().hex[:8]}"
        env["MALESTROM_BROKER_SESSION_TIMEOUT"] = "6"
    return env


@contextmanager
def malestrom_up(data_dir: Path, port: int) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Run `malestrom up` on a free port; on exit send SIGTERM and wait."""
    log = (data_dir.parent / f"up-{port}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "up", "--port", str(port), "--data-dir", str(data_dir)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_env(),
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
        called = subprocess.run(
            [sys.executable, "-m", "infra.cli", "call", "GET", "/api/v1/board", "--url", url,
             "--data-dir", str(data_dir)],
            capture_output=True, text=True, timeout=60, env=_env(), check=False,
        )  # fmt: skip
        assert called.returncode == 0, called.stderr
        assert json.loads(called.stdout)["organisation"] == SIMULATED_ORGANISATION
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
