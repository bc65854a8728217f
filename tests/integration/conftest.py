"""Fixtures for tests of the running pipeline: a streams worker subprocess, the API in-process."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ApiSettings
from infra.devissuer import DevIssuer, DpopAuth
from infra.migrate import migration_ids
from infra.processes import free_port, spawn, stop, wait_for_port
from ingestion.topics import Topics
from tests.helpers import TEST_PARTITIONS, fresh_orgnr, settings_trusting


class Worker:
    """A streams worker subprocess on one test's topics; it can be stopped and started again."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = spawn([sys.executable, "-m", "infra.cli", "worker"], env=self.env, log=self.log)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            if self.proc.returncode not in (0, -15):
                print(self.log.read_text()[-3000:])  # noqa: T201 - shown only when it failed


def worker_env(topics: Topics, kafka_bootstrap: str, database_url: str) -> dict[str, str]:
    """The environment of a streams worker on ``topics`` (created with ``TEST_PARTITIONS``)."""
    return {
        **os.environ,
        "MALESTROM_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "MALESTROM_DATABASE_URL": database_url,
        "MALESTROM_TOPIC_PREFIX": topics.prefix,
        "MALESTROM_PARTITIONS": str(TEST_PARTITIONS),
        "MALESTROM_APP_ID": f"{topics.prefix}-streams",
        "MALESTROM_BROKER_SESSION_TIMEOUT": "6",
        "MALESTROM_ALERT_CHECK_INTERVAL": "1",
    }


@pytest.fixture
def worker(
    topics: Topics, kafka_bootstrap: str, database_url: str, tmp_path: Path
) -> Iterator[Worker]:
    """A running streams worker on this test's topics."""
    env = worker_env(topics, kafka_bootstrap, database_url)
    running = Worker(env, tmp_path / "worker.log")
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def org() -> str:
    """A fresh synthetic organisation number: this test's home-care service."""
    return fresh_orgnr()


@pytest.fixture
def staff_auth(issuer: DevIssuer, org: str) -> DpopAuth:
    """A nurse of ``org`` whose login also lets her send readings (scopes ingest, read, alerts,
    settings): what the pipeline tests act as unless they say otherwise."""
    scopes = ("ingest", "read", "alerts", "settings")
    return issuer.mint("nurse", org=org, scopes=scopes).auth()


def api_settings(worker: Worker, issuer: DevIssuer, **overrides: str) -> ApiSettings:
    """Settings of an API on the worker's topics and database, trusting ``issuer``."""
    settings: ApiSettings = settings_trusting(
        issuer,
        kafka_bootstrap=worker.env["MALESTROM_KAFKA_BOOTSTRAP"],
        database_url=worker.env["MALESTROM_DATABASE_URL"],
        topic_prefix=worker.env["MALESTROM_TOPIC_PREFIX"],
        partitions=int(worker.env["MALESTROM_PARTITIONS"]),
        app_id=worker.env["MALESTROM_APP_ID"],
        **overrides,
    )
    return settings


@pytest.fixture
def api(worker: Worker, issuer: DevIssuer, staff_auth: DpopAuth) -> Iterator[TestClient]:
    """The API in-process, publishing to the real broker and reading the real database;
    requests carry ``staff_auth`` unless they pass their own ``auth``."""
    app = create_app(api_settings(worker, issuer), expected_migrations=migration_ids())
    with TestClient(app) as client:
        client.auth = staff_auth
        yield client


@pytest.fixture
def api_url(worker: Worker, issuer: DevIssuer) -> Iterator[str]:
    """The API served by uvicorn on a free loopback port (for streaming clients)."""
    app = create_app(api_settings(worker, issuer), expected_migrations=migration_ids())
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="api-under-test", daemon=True)
    thread.start()
    try:
        wait_for_port("127.0.0.1", port, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
