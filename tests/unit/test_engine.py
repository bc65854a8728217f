"""The engine choice of the embedded server, and how a changed engine meets a recorded profile."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.engine import (
    EngineChoice,
    EngineMismatchError,
    Recorded,
    Running,
    describe,
    judge,
    server_options,
    timescaledb_installed,
)

PLAIN = Recorded("postgresql", None, "rollup")
COMMUNITY = Recorded("timescaledb", "timescale", "continuous")
APACHE = Recorded("timescaledb", "apache", "rollup")
ON_PLAIN = Running("18.6", None, None)
ON_COMMUNITY = Running("18.6", "2.29.2", "timescale")
ON_APACHE = Running("18.6", "2.29.2", "apache")
PRELOAD = ["-c", "shared_preload_libraries=timescaledb"]


@pytest.mark.parametrize(
    ("choice", "installed", "expected"),
    [
        ("auto", True, [*PRELOAD, "-c", "timescaledb.license=apache"]),
        ("auto", False, []),
        ("postgresql", True, []),
        ("timescaledb", True, [*PRELOAD, "-c", "timescaledb.license=apache"]),
    ],
)
def test_timescaledb_is_preloaded_when_installed_unless_plain_is_asked_for(
    choice: EngineChoice, installed: bool, expected: list[str]
) -> None:
    """auto loads TimescaleDB exactly when it is installed; postgresql never does."""
    options = server_options(choice, "apache", installed=installed)
    assert options[: len(expected)] == expected
    assert bool(options) == bool(expected)


def test_requiring_timescaledb_where_it_is_not_installed_says_how_to_build_it() -> None:
    """MALESTROM_ENGINE=timescaledb without the extension is refused, naming the build script."""
    with pytest.raises(EngineMismatchError, match="build-timescaledb"):
        server_options("timescaledb", "timescale", installed=False)


def test_installed_means_the_control_file_and_the_library(tmp_path: Path) -> None:
    """A half installation (control file only) does not count as installed."""
    (tmp_path / "share" / "extension").mkdir(parents=True)
    (tmp_path / "lib").mkdir()
    (tmp_path / "share" / "extension" / "timescaledb.control").touch()
    assert not timescaledb_installed(tmp_path)
    (tmp_path / "lib" / "timescaledb.so").touch()
    assert timescaledb_installed(tmp_path)


@pytest.mark.parametrize(
    ("recorded", "running", "says"),
    [
        (None, ON_COMMUNITY, None),
        (PLAIN, ON_PLAIN, None),
        (COMMUNITY, ON_COMMUNITY, None),
        (APACHE, ON_APACHE, None),
        (PLAIN, ON_COMMUNITY, "keeps that profile"),
        (APACHE, ON_COMMUNITY, "keeps that profile"),
    ],
)
def test_an_engine_that_can_serve_the_profile_is_accepted(
    recorded: Recorded | None, running: Running, says: str | None
) -> None:
    """Same engine: nothing to say; a richer engine than the profile needs: it keeps the profile."""
    said = judge(recorded, running)
    assert (said is None) == (says is None)
    assert says is None or says in (said or "")


@pytest.mark.parametrize(
    ("recorded", "running", "fix"),
    [
        (COMMUNITY, ON_PLAIN, "unset MALESTROM_ENGINE=postgresql"),
        (APACHE, ON_PLAIN, "unset MALESTROM_ENGINE=postgresql"),
        (COMMUNITY, ON_APACHE, "MALESTROM_TIMESCALEDB_LICENSE"),
    ],
)
def test_an_engine_that_cannot_serve_the_profile_is_refused_with_the_fix(
    recorded: Recorded, running: Running, fix: str
) -> None:
    """A TimescaleDB database without TimescaleDB, or Community features under Apache: refused."""
    with pytest.raises(EngineMismatchError, match=fix):
        judge(recorded, running)


@pytest.mark.parametrize(
    ("recorded", "running", "line"),
    [
        (PLAIN, ON_PLAIN, "PostgreSQL 18.6; plain profile"),
        (COMMUNITY, ON_COMMUNITY, "TimescaleDB 2.29.2 (Community edition) on PostgreSQL 18.6;"),
        (APACHE, ON_APACHE, "TimescaleDB 2.29.2 (Apache edition) on PostgreSQL 18.6;"),
        (None, ON_PLAIN, "PostgreSQL 18.6"),
    ],
)
def test_the_description_names_engine_edition_and_layout(
    recorded: Recorded | None, running: Running, line: str
) -> None:
    """The start-up line says the engine, its edition and what the schema uses of it."""
    assert describe(recorded, running).startswith(line)
