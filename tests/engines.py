"""The database engine a test session runs on, chosen by ``MALESTROM_TEST_ENGINE``.

``postgresql`` (the default: what ``pytest`` alone runs, even where TimescaleDB is installed),
``timescaledb`` (the Community edition) or ``timescaledb-apache``. The session's database must
be exactly that engine and profile, or every test that uses it fails; a test that holds on some
engines only says so with ``@pytest.mark.engine(...)`` and is deselected (never skipped) on the
others.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import psycopg

from infra.engine import EngineChoice, License, Recorded, probe_engine
from infra.migrate import upgrade

__all__ = ["ENGINES", "EngineUnderTest", "migrate_for_tests", "mismatches", "session_engine"]


@dataclass(frozen=True, slots=True)
class EngineUnderTest:
    """How to start an engine, and the storage profile the migrations must record on it."""

    choice: EngineChoice
    license: License
    recorded: Recorded
    edition: str | None  # as /healthz names it
    says: str  # how `malestrom up` names the engine, after "storage: "

    @property
    def timescaledb(self) -> bool:
        """Whether the server must load TimescaleDB."""
        return self.choice == "timescaledb"

    @property
    def engine(self) -> str:
        """The engine /healthz names."""
        return self.recorded.engine

    def up_environment(self) -> dict[str, str]:
        """The settings that make `malestrom up` start this engine."""
        return {"MALESTROM_ENGINE": self.choice, "MALESTROM_TIMESCALEDB_LICENSE": self.license}


ENGINES = {
    "postgresql": EngineUnderTest(
        "postgresql", "timescale", Recorded("postgresql", None, "rollup"), None, "PostgreSQL 18"
    ),
    "timescaledb": EngineUnderTest(
        "timescaledb",
        "timescale",
        Recorded("timescaledb", "timescale", "continuous"),
        "community",
        "TimescaleDB 2.29.2 (Community edition) on PostgreSQL 18",
    ),
    "timescaledb-apache": EngineUnderTest(
        "timescaledb",
        "apache",
        Recorded("timescaledb", "apache", "rollup"),
        "apache",
        "TimescaleDB 2.29.2 (Apache edition) on PostgreSQL 18",
    ),
}


def session_engine() -> str:
    """The engine name of this session (``MALESTROM_TEST_ENGINE``, default ``postgresql``)."""
    name = os.environ.get("MALESTROM_TEST_ENGINE", "postgresql")
    if name not in ENGINES:
        raise ValueError(f"MALESTROM_TEST_ENGINE must be one of {', '.join(ENGINES)}: {name!r}")
    return name


def mismatches(database_url: str, name: str) -> list[str]:
    """What differs between the database and the engine ``name`` (empty when it is that one)."""
    expected = ENGINES[name]
    recorded, running = probe_engine(database_url)
    found: list[str] = []
    if recorded != expected.recorded:
        found.append(f"storage profile {recorded} instead of {expected.recorded}")
    if bool(running.timescaledb) != expected.timescaledb:
        found.append(f"TimescaleDB loaded: {running.timescaledb or 'no'}")
    if expected.timescaledb and running.license != expected.license:
        found.append(f"timescaledb.license = {running.license}")
    return found


# TimescaleDB's scheduler runs a new database's policies at once and then on their schedules;
# a test runs them when it means to (run_job runs a paused job all the same), never behind its
# back, so a test's answers cannot change under it.
PAUSE_POLICIES = """
SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs
WHERE hypertable_schema = 'public'
"""


def migrate_for_tests(database_url: str) -> None:
    """Apply the migrations; on TimescaleDB pause the policies of the new layout."""
    upgrade(database_url)
    with psycopg.connect(database_url) as conn:
        if conn.execute("SELECT to_regclass('timescaledb_information.jobs')").fetchone() != (None,):
            conn.execute(PAUSE_POLICIES)
