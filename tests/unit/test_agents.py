"""The worker's batch work, in memory: store, score, and the one error policy of every stage."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from types import SimpleNamespace
from typing import Any, cast

import psycopg
import pytest
from psycopg_pool import PoolTimeout

from ingestion.exceptions import DatabaseUnavailableError, InvalidReadingError
from ingestion.measurement import to_json
from ingestion.observations import parse_observation
from streams.agents import (
    Envelope,
    Policy,
    Stored,
    policy_for,
    process_batch,
    run_alert_rules,
)
from streams.scorer import News2Scorer
from streams.sinks import ObservationRow
from tests.helpers import RECEIVED, observation

Out = list[tuple[bytes, bytes, Mapping[str, bytes]]]


def _envelope(value: bytes, offset: int = 0, key: bytes = b"k") -> Envelope:
    return Envelope(key, value, {"correlation-id": b"c1"}, "readings", 0, offset)


def _reading(value: float = 72, minute: int = 0) -> bytes:
    at = f"2026-11-26T08:{minute:02d}:00+01:00"
    return to_json(parse_observation(observation(value=value, effective=at), received=RECEIVED))


class Collect:
    """A Send that keeps what it was given."""

    def __init__(self) -> None:
        self.records: Out = []

    async def __call__(self, records: Sequence[tuple[bytes, bytes, Mapping[str, bytes]]]) -> None:
        self.records += records


class FlakySink:
    """A sink that is unavailable a number of times, refuses some values, and records writes."""

    def __init__(self, *, unavailable: int = 0, refuse: float | None = None) -> None:
        self.unavailable = unavailable
        self.refuse = refuse
        self.rows: list[ObservationRow] = []

    async def write(self, rows: Sequence[ObservationRow]) -> None:
        if self.unavailable:
            self.unavailable -= 1
            raise DatabaseUnavailableError("down", retry_after=0.01)
        if any(r.value == self.refuse for r in rows):
            raise psycopg.errors.DataError("refused")
        self.rows += rows


class Scorer:
    """A scorer that records what it was given, and fails on a value if told to."""

    def __init__(self, *, fail_on: float | None = None) -> None:
        self.fail_on = fail_on
        self.seen: list[float | None] = []

    async def score_batch(self, stored: Sequence[Stored]) -> int:
        if any(row.value == self.fail_on for _, row in stored):
            raise ValueError("a bug")
        self.seen += [row.value for _, row in stored]
        return len(stored)


def _run(batch: list[Envelope], sink: FlakySink, scorer: Scorer, dlq: Collect) -> None:
    asyncio.run(process_batch(batch, sink=sink, scorer=scorer, dead_letter=dlq))


def test_readings_are_stored_with_their_rendered_observation_and_scored() -> None:
    """Each reading becomes one stored row (source kept, FHIR rendered once) and is scored."""
    sink, scorer, dlq = FlakySink(), Scorer(), Collect()
    _run([_envelope(_reading(70), 0), _envelope(_reading(71, 1), 1)], sink, scorer, dlq)
    assert [r.value for r in sink.rows] == [70, 71]
    assert sink.rows[0].source == "fhir"
    assert '"resourceType":"Observation"' in sink.rows[0].resource
    assert scorer.seen == [70, 71]
    assert dlq.records == []


def test_garbage_is_dead_lettered_with_stage_and_bytes() -> None:
    """A record that is not a measurement goes to the DLQ; the rest of the batch is stored."""
    sink, scorer, dlq = FlakySink(), Scorer(), Collect()
    _run([_envelope(_reading(70), 0), _envelope(b"garbage", 1)], sink, scorer, dlq)
    assert [r.value for r in sink.rows] == [70]
    ((key, value, headers),) = dlq.records
    assert (key, value) == (b"k", b"garbage")
    assert (headers["dlq-stage"], headers["dlq-offset"]) == (b"decode", b"1")
    assert headers["correlation-id"] == b"c1"


def test_storing_retries_while_the_database_is_down() -> None:
    """An unavailable database pauses the batch and retries; nothing is dead-lettered or lost."""
    sink, scorer, dlq = FlakySink(unavailable=3), Scorer(), Collect()
    _run([_envelope(_reading(70), 0), _envelope(_reading(71, 1), 1)], sink, scorer, dlq)
    assert [r.value for r in sink.rows] == [70, 71]
    assert dlq.records == []


def test_a_refused_row_is_isolated_and_not_scored() -> None:
    """One row the database refuses is dead-lettered at persist; the others are stored, scored."""
    batch = [_envelope(_reading(70 + i, i), i) for i in range(5)]
    sink, scorer, dlq = FlakySink(refuse=72), Scorer(), Collect()
    _run(batch, sink, scorer, dlq)
    assert sorted(r.value or 0 for r in sink.rows) == [70, 71, 73, 74]
    assert sorted(scorer.seen, key=lambda v: v or 0) == [70, 71, 73, 74]
    assert [(h["dlq-stage"], h["dlq-offset"]) for _, _, h in dlq.records] == [(b"persist", b"2")]


def test_a_reading_the_scorer_fails_on_is_dead_lettered_at_score() -> None:
    """A bug on one reading dead-letters that reading at the score stage, not the batch."""
    batch = [_envelope(_reading(70 + i, i), i) for i in range(4)]
    sink, scorer, dlq = FlakySink(), Scorer(fail_on=73), Collect()
    _run(batch, sink, scorer, dlq)
    assert len(sink.rows) == 4
    assert [(h["dlq-stage"], h["dlq-offset"]) for _, _, h in dlq.records] == [(b"score", b"3")]


@pytest.mark.parametrize(
    ("error", "policy"),
    [
        (DatabaseUnavailableError("down"), Policy.RETRY),
        (InvalidReadingError("bad"), Policy.DEAD_LETTER),
        (ValueError("a bug"), Policy.DEAD_LETTER),
        (psycopg.errors.DataError("refused"), Policy.DEAD_LETTER),
        (psycopg.errors.UndefinedColumn("not migrated"), Policy.STOP),
        (psycopg.OperationalError("connection refused"), Policy.RETRY),
        (psycopg.errors.AdminShutdown("terminating connection"), Policy.RETRY),
        (psycopg.errors.DeadlockDetected("deadlock"), Policy.RETRY),
        (PoolTimeout("no connection in 3 s"), Policy.RETRY),
        (psycopg.errors.ProgramLimitExceeded("index row size exceeds"), Policy.DEAD_LETTER),
        (psycopg.errors.ReadOnlySqlTransaction("read-only transaction"), Policy.RETRY),
    ],
)
def test_the_error_policy_names_what_each_failure_does(error: Exception, policy: Policy) -> None:
    """Unavailable → retry; bad data or a bug → dead-letter; a broken deployment → stop. A
    program limit (a value too large) fails every time: the record's fault, not an outage. A
    hot standby after a failover (read-only transaction) is an outage: retried, so nothing in
    flight is dead-lettered."""
    assert policy_for(error) is policy


def test_a_broken_deployment_stops_the_worker() -> None:
    """A database without the expected schema stops the batch instead of dead-lettering it."""

    class Unmigrated(FlakySink):
        async def write(self, rows: Sequence[ObservationRow]) -> None:
            raise psycopg.errors.UndefinedColumn("column systolic does not exist")

    dlq = Collect()
    with pytest.raises(psycopg.errors.UndefinedColumn):
        _run([_envelope(_reading())], Unmigrated(), Scorer(), dlq)
    assert dlq.records == []


class FailingRules:
    """Alert rules whose first query fails with ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    async def escalate_overdue(self) -> int:
        self.calls += 1
        raise self.error

    async def raise_missing(self) -> int:
        self.calls += 1
        return 0


@pytest.mark.parametrize(
    "error",
    [
        DatabaseUnavailableError("down"),
        psycopg.errors.UndefinedTable('relation "alerts" does not exist: patient 12345678901'),
    ],
)
def test_a_failing_alert_rule_skips_the_round_and_logs_only_the_error_type(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    """A database error in a time-driven rule (an outage or not) skips this round instead of
    ending the timer; the log names the error's type, never its message (it may quote data)."""
    rules = FailingRules(error)
    asyncio.run(run_alert_rules(rules))
    assert rules.calls == 1
    assert type(error).__name__ in caplog.text
    assert str(error) not in caplog.text


@pytest.mark.parametrize(
    "error",
    [
        psycopg.errors.ProgramLimitExceeded("value too large"),  # not an outage: raised as is
        psycopg.errors.AdminShutdown("terminating connection"),  # an outage
        ValueError("a bug"),
    ],
)
def test_a_failed_scoring_forgets_the_half_updated_state_of_its_patients(
    error: Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever fails while a batch is scored, the state it had begun to change is dropped, so
    the patients' next batch loads it again from what is stored."""
    scorer = News2Scorer(cast(Any, None), emit_scores=Collect(), emit_alerts=Collect())
    news = [SimpleNamespace(patient_key="p1"), SimpleNamespace(patient_key="p2")]
    monkeypatch.setattr("streams.scorer.new_readings", lambda _stored: news)

    async def half_done(_news: object, keys: list[str], _now: object) -> None:
        scorer._states.update(dict.fromkeys(keys, cast(Any, "half-updated")))
        raise error

    monkeypatch.setattr(scorer, "_score", half_done)
    with pytest.raises((type(error), DatabaseUnavailableError)):
        asyncio.run(scorer.score_batch([]))
    assert scorer._states == {}
