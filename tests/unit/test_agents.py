"""The streams agents' batch work, in memory: normalise, persist, dead-letter, retry."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import orjson
import psycopg
import pytest

from ingestion.exceptions import DatabaseUnavailableError
from ingestion.measurement import to_json
from ingestion.observations import parse_observation
from streams.agents import Envelope, normalise_batch, persist_batch
from streams.sinks import ObservationRow
from tests.helpers import RECEIVED, observation

Out = list[tuple[bytes, bytes, Mapping[str, bytes]]]


def _envelope(value: bytes, offset: int = 0, key: bytes = b"k") -> Envelope:
    return Envelope(key, value, {"correlation-id": b"c1"}, "readings", 0, offset)


def _reading(value: float = 72) -> bytes:
    return to_json(parse_observation(observation(value=value), received=RECEIVED))


class Collect:
    """A Send that keeps what it was given."""

    def __init__(self) -> None:
        self.records: Out = []

    async def __call__(self, records: Sequence[tuple[bytes, bytes, Mapping[str, bytes]]]) -> None:
        self.records += records


class FlakySink:
    """A sink that is unavailable a number of times, refuses some ids, and records writes."""

    def __init__(self, *, unavailable: int = 0, refuse: set[str] | None = None) -> None:
        self.unavailable = unavailable
        self.refuse = refuse or set()
        self.rows: list[ObservationRow] = []

    async def write(self, rows: Sequence[ObservationRow]) -> None:
        if self.unavailable:
            self.unavailable -= 1
            raise DatabaseUnavailableError("down", retry_after=0.01)
        if any(r.id in self.refuse for r in rows):
            raise psycopg.errors.DataError("refused")
        self.rows += rows


def test_normalise_emits_fhir_and_dead_letters_garbage() -> None:
    """Good readings become Observations; a broken record goes to the DLQ with stage and bytes."""
    emit, dlq = Collect(), Collect()
    batch = [_envelope(_reading(), 0), _envelope(b"garbage", 1)]
    asyncio.run(normalise_batch(batch, emit=emit, dead_letter=dlq))
    assert [orjson.loads(v)["resourceType"] for _, v, _ in emit.records] == ["Observation"]
    assert emit.records[0][2]["correlation-id"] == b"c1"
    ((key, value, headers),) = dlq.records
    assert (key, value) == (b"k", b"garbage")
    assert headers["dlq-stage"] == b"normalise"
    assert headers["dlq-offset"] == b"1"
    assert headers["correlation-id"] == b"c1"


def _observation_bytes(value: float) -> bytes:
    emit = Collect()
    asyncio.run(normalise_batch([_envelope(_reading(value))], emit=emit, dead_letter=Collect()))
    return emit.records[0][1]


def test_persist_retries_while_the_database_is_down() -> None:
    """An unavailable database pauses the batch and retries; nothing is dead-lettered or lost."""
    sink, dlq = FlakySink(unavailable=3), Collect()
    batch = [_envelope(_observation_bytes(70)), _envelope(_observation_bytes(71))]
    asyncio.run(persist_batch(batch, sink=sink, dead_letter=dlq))
    assert [r.value for r in sink.rows] == [70, 71]
    assert dlq.records == []


def test_persist_isolates_a_refused_row() -> None:
    """One row the database refuses is dead-lettered; the rest of the batch is written."""
    good, bad = _observation_bytes(70), _observation_bytes(71)
    sink, dlq = FlakySink(refuse={orjson.loads(bad)["id"]}), Collect()
    asyncio.run(persist_batch([_envelope(good, 0), _envelope(bad, 1)], sink=sink, dead_letter=dlq))
    assert [r.value for r in sink.rows] == [70]
    assert [(h["dlq-stage"], h["dlq-offset"]) for _, _, h in dlq.records] == [(b"persist", b"1")]


@pytest.mark.parametrize("garbage", [b"{}", b"[1]", b"not json"])
def test_persist_dead_letters_what_is_not_an_observation(garbage: bytes) -> None:
    """A record that is not a normalised Observation is dead-lettered, not written."""
    sink, dlq = FlakySink(), Collect()
    asyncio.run(persist_batch([_envelope(garbage)], sink=sink, dead_letter=dlq))
    assert sink.rows == []
    assert dlq.records[0][1] == garbage
