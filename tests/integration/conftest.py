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
from infra.migrate import migration_ids
from infra.processes import free_port, spawn, stop, wait_for_port
from ingestion.topics import Topics


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


@pytest.fixture
def worker(
    topics: Topics, kafka_bootstrap: str, database_url: str, tmp_path: Path
) -> Iterator[Worker]:
    """A running streams worker on this test's topics."""
    env = {
        **os.environ,
        "MALESTROM_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "MALESTROM_DATABASE_URL": database_url,
        "MALESTROM_TOPIC_PREFIX": topics.prefix,
        "MALESTROM_APP_ID": f"{topics.prefix}-streams",
        "MALESTROM_BROKER_SESSION_TIMEOUT": "6",
        "MALESTROM_ALERT_CHECK_INTERVAL": "1",
    }
    running = Worker(env, tmp_path / "worker.log")
    running.start()
    try:
        yield running
    finally:
        running.stop()


def _api_settings(worker: Worker) -> ApiSettings:
    return ApiSettings(
        kafka_bootstrap=worker.env["MALESTROM_KAFKA_BOOTSTRAP"],
        database_url=worker.env["MALESTROM_DATABASE_URL"],  # type: ignore[arg-type]
        topic_prefix=worker.env["MALESTROM_TOPIC_PREFIX"],
        app_id=worker.env["MALESTROM_APP_ID"],
    )


@pytest.fixture
def api(worker: Worker) -> Iterator[TestClient]:
    """The API in-process, publishing to the real broker and reading the real database."""
    app = create_app(_api_settings(worker), expected_migrations=migration_ids())
    with TestClient(app) as client:
        yield client


@pytest.fixture
def api_url(worker: Worker) -> Iterator[str]:
    """The API served by uvicorn on a free loopback port (for streaming clients)."""
    app = create_app(_api_settings(worker), expected_migrations=migration_ids())
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
