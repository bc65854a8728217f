"""Replaying the whole readings topic from offset 0 (a new consumer group) changes no row count."""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from infra.devissuer import DevIssuer, DpopAuth
from infra.migrate import migration_ids
from infra.processes import spawn, stop
from ingestion.topics import Topics
from tests.helpers import bundle, fresh_fnr, observation, settings_trusting
from tests.integration.storage_helpers import scalar

pytestmark = pytest.mark.integration

FHIR = {"Content-Type": "application/fhir+json"}
PULSES = (
    "SELECT count(*) FROM observations o JOIN patients p USING (patient_key)"
    " WHERE p.identifier_value = %s AND o.code = '8867-4'"
)
# What the replay could duplicate: everything stored before the marker's day (2026-11-23).
COUNTS = {
    "observations": "SELECT count(*) FROM observations o JOIN patients p USING (patient_key)"
    " WHERE p.identifier_value = %s AND o.effective < '2026-11-23T00:00:00Z'",
    "hourly": "SELECT sum(n) FROM observations_hourly r JOIN patients p USING (patient_key)"
    " WHERE p.identifier_value = %s AND r.bucket < '2026-11-23T00:00:00Z'",
    "daily": "SELECT sum(n) FROM observations_daily r JOIN patients p USING (patient_key)"
    " WHERE p.identifier_value = %s AND r.bucket < '2026-11-23T00:00:00Z'",
    "latest": "SELECT count(*) FROM observations_latest r JOIN patients p USING (patient_key)"
    " WHERE p.identifier_value = %s",
}


@contextmanager
def _worker(env: dict[str, str], group: str, log: Path) -> Iterator[None]:
    proc = spawn(
        [sys.executable, "-m", "infra.cli", "worker"],
        env={**env, "MALESTROM_APP_ID": group},
        log=log,
    )
    try:
        yield
    finally:
        stop(proc)


def _eventually(check: Callable[[], Any], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.3)


def test_replaying_the_topic_from_offset_0_changes_no_row_count(
    topics: Topics,
    kafka_bootstrap: str,
    database_url: str,
    tmp_path: Path,
    issuer: DevIssuer,
    staff_auth: DpopAuth,
) -> None:
    """A second worker in a new group re-reads every reading; the stored counts stay the same."""
    env = {
        **os.environ,
        "MALESTROM_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "MALESTROM_DATABASE_URL": database_url,
        "MALESTROM_TOPIC_PREFIX": topics.prefix,
        "MALESTROM_BROKER_SESSION_TIMEOUT": "6",
    }
    settings = settings_trusting(
        issuer,
        kafka_bootstrap=kafka_bootstrap,
        database_url=database_url,
        topic_prefix=topics.prefix,
    )
    fnr = fresh_fnr()
    count = lambda: {name: scalar(database_url, q, fnr) for name, q in COUNTS.items()}  # noqa: E731
    pulses = lambda: scalar(database_url, PULSES, fnr)  # noqa: E731
    with TestClient(create_app(settings, expected_migrations=migration_ids())) as api:
        api.auth = staff_auth

        def post(*readings: dict[str, Any]) -> None:
            body = orjson.dumps(bundle(*readings, identifier=str(uuid.uuid4())))
            assert api.post("/fhir", content=body, headers=FHIR).status_code == 200

        with _worker(env, f"{topics.prefix}-first", tmp_path / "first.log"):
            for b in range(3):
                post(*(observation(fnr=fnr, value=60 + i, effective=f"2026-11-2{b}T07:{i:02d}:00Z")
                       for i in range(10)))  # fmt: skip
            _eventually(lambda: pulses() == 30, timeout=90, what="30 stored")
        before = count()
        with _worker(env, f"{topics.prefix}-replay", tmp_path / "replay.log"):
            post(observation(fnr=fnr, value=99, effective="2026-11-26T07:59:00Z"))  # the marker
            _eventually(lambda: pulses() == 31, timeout=90, what="the marker")
        after = count()
    assert after == before
