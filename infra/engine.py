"""Which database engine runs, and whether it fits the schema the database already holds.

The storage profile (``storage_layout``: plain PostgreSQL, or TimescaleDB in the Community or
the Apache edition) is chosen by the first migration from the engine at hand and recorded; it
never changes by itself afterwards. When the engine under an existing database changes:

- a TimescaleDB database on a server that does not load TimescaleDB, or a Community-edition
  database (continuous aggregates, columnstore) on an Apache-licensed server, cannot work:
  `check_engine` refuses with `EngineMismatchError`, whose message says how to fix it;
- a plain-PostgreSQL database on a server that loads TimescaleDB, or an Apache-profile database
  on a Community server, keeps its profile (the writer keeps its rollups), and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psycopg

from ingestion.exceptions import MalestromError

__all__ = [
    "EngineChoice",
    "EngineMismatchError",
    "License",
    "Recorded",
    "Running",
    "check_engine",
    "describe",
    "judge",
    "probe_engine",
    "server_options",
    "timescaledb_installed",
]

EngineChoice = Literal["auto", "postgresql", "timescaledb"]
License = Literal["timescale", "apache"]

BUILD_HINT = "../shared/tools/build-timescaledb builds it into the embedded PostgreSQL"


class EngineMismatchError(MalestromError):
    """The server's engine cannot serve the schema this database was built for (configuration)."""


def timescaledb_installed(install_dir: Path) -> bool:
    """Whether TimescaleDB is installed in the PostgreSQL at ``install_dir``."""
    return (install_dir / "share" / "extension" / "timescaledb.control").exists() and (
        install_dir / "lib" / "timescaledb.so"
    ).exists()


def server_options(choice: EngineChoice, license: License, *, installed: bool) -> list[str]:
    """The ``postgres -c`` options that load the chosen engine (none for plain PostgreSQL).

    Raises:
        EngineMismatchError: TimescaleDB was required but is not installed.
    """
    if choice == "timescaledb" and not installed:
        raise EngineMismatchError(
            f"MALESTROM_ENGINE=timescaledb, but it is not installed: {BUILD_HINT}"
        )
    if choice == "postgresql" or not installed:
        return []
    return [
        "-c", "shared_preload_libraries=timescaledb",
        "-c", f"timescaledb.license={license}",
        "-c", "timescaledb.telemetry_level=off",  # a local server phones nobody
    ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Recorded:
    """The storage profile recorded in ``storage_layout`` by the first migration."""

    engine: str  # "postgresql" | "timescaledb"
    license: str | None  # the TimescaleDB licence it was built under
    aggregates: str  # "rollup" (kept by the writer) | "continuous"


@dataclass(frozen=True, slots=True)
class Running:
    """What the server offers now."""

    server_version: str
    timescaledb: str | None  # the version of a loaded TimescaleDB, else None
    license: str | None  # timescaledb.license, when it is loaded


_PROBE_SQL = r"""
SELECT current_setting('server_version'),
       CASE WHEN current_setting('shared_preload_libraries') ~ '(^|[\s,])timescaledb($|[\s,])'
            THEN (SELECT coalesce(
                (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'),
                (SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb')))
       END,
       current_setting('timescaledb.license', true),
       to_regclass('storage_layout') IS NOT NULL
"""


def probe_engine(database_url: str) -> tuple[Recorded | None, Running]:
    """Read the recorded profile (None before the first migration) and the running engine."""
    with psycopg.connect(database_url, connect_timeout=10) as conn:
        version, timescale, licence, migrated = conn.execute(_PROBE_SQL).fetchone() or ()
        running = Running(version, timescale, licence if timescale else None)
        if not migrated:
            return None, running
        found = conn.execute("SELECT engine, license, aggregates FROM storage_layout").fetchone()
    return (Recorded(*found) if found else None), running


def judge(recorded: Recorded | None, running: Running) -> str | None:
    """Say how the profile relates to the running engine; None when they simply agree.

    Raises:
        EngineMismatchError: the running engine cannot serve the recorded profile.
    """
    if recorded is None or recorded.engine == "postgresql":
        if recorded is not None and running.timescaledb:
            return (
                "this database was made on plain PostgreSQL and keeps that profile; TimescaleDB "
                "is loaded but unused (a new --data-dir gets the TimescaleDB profile)"
            )
        return None
    if running.timescaledb is None:
        raise EngineMismatchError(
            "this database was made on TimescaleDB, but the server does not load it: install "
            f"TimescaleDB ({BUILD_HINT}) and unset MALESTROM_ENGINE=postgresql, or start on a "
            "new --data-dir for plain PostgreSQL"
        )
    if recorded.aggregates == "continuous" and running.license == "apache":
        raise EngineMismatchError(
            "this database uses TimescaleDB Community features (continuous aggregates, "
            "columnstore), but the server runs the Apache edition: unset "
            "MALESTROM_TIMESCALEDB_LICENSE=apache (or set it to timescale)"
        )
    if recorded.aggregates == "rollup" and running.license != "apache":
        return (
            "this database was made on the TimescaleDB Apache edition and keeps that profile "
            "(rollups kept by the writer) on the Community edition"
        )
    return None


def describe(recorded: Recorded | None, running: Running) -> str:
    """One line for a person: the engine, its edition and what the schema uses of it."""
    if running.timescaledb:
        edition = "Apache" if running.license == "apache" else "Community"
        engine = f"TimescaleDB {running.timescaledb} ({edition} edition) on PostgreSQL"
    else:
        engine = "PostgreSQL"
    engine += f" {running.server_version}"
    if recorded is None:
        return engine
    layout = {
        "postgresql": "plain profile: daily partitions, rollups kept by the writer",
        "rollup": "hypertable, rollups kept by the writer",
        "continuous": "hypertable, columnstore, continuous aggregates",
    }
    kind = "postgresql" if recorded.engine == "postgresql" else recorded.aggregates
    return f"{engine}; {layout[kind]}"


def check_engine(database_url: str) -> tuple[str, str | None]:
    """Describe the engine and judge it against the recorded profile.

    Returns:
        The description, and what to say about a changed engine (None when nothing changed).

    Raises:
        EngineMismatchError: the running engine cannot serve the recorded profile.
    """
    recorded, running = probe_engine(database_url)
    return describe(recorded, running), judge(recorded, running)
