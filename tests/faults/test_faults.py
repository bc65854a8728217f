"""The short fault run (bench/faults.py): separate processes, about 700 uniquely identified
readings per scenario, a fault mid-load; nothing answered 2xx is lost or stored twice, and the
rollups and NEWS2 scores agree with the stored readings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.faults import SHORT, Cluster, run_scenario
from tests.engines import ENGINES, session_engine

pytestmark = pytest.mark.faults

READINGS = 700  # 100 complete NEWS2 sets of seven readings
LOAD_SECONDS = 8.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """PostgreSQL (embedded, this session's engine) and the broker (embedded, or the external
    one of MALESTROM_TEST_KAFKA_BOOTSTRAP), shared by the scenarios."""
    engine = ENGINES[session_engine()]
    running = Cluster(
        Path(tmp_path_factory.mktemp("faults")),
        kafka=os.environ.get("MALESTROM_TEST_KAFKA_BOOTSTRAP"),
        engine=engine.choice,
        license=engine.license,
    )
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.mark.parametrize("scenario", SHORT)
def test_nothing_accepted_is_lost_or_duplicated_and_derived_data_agree(
    cluster: Cluster, scenario: str
) -> None:
    """Every reading is accepted in the end (the senders resend what failed); each one accepted
    is stored exactly once; rollups and scores agree with what is stored."""
    outcome = run_scenario(cluster, scenario, readings=READINGS, seconds=LOAD_SECONDS)
    report = "; ".join([*outcome.notes, outcome.checked, *outcome.problems])
    assert (outcome.accepted, outcome.refused) == (READINGS, 0), report
    assert (outcome.stored, outcome.lost, outcome.duplicated) == (READINGS, 0, 0), report
    assert outcome.problems == [], report
    assert outcome.checked.endswith(f" {READINGS // 7} complete sets"), report
