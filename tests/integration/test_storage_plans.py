"""The plans of the four storage questions for one patient, on the session's engine: only the
partitions or chunks that hold the asked time are read, each through an index, and no page is
read by a sequential scan (plain PostgreSQL may "scan" its default partition, which is empty by
design: the writer makes a partition for every day within retention).

The statements are those of `api.queries`, built as the routes build them, run through a
connection that EXPLAIN ANALYZEs each one before running it. On TimescaleDB Community the data
is in its steady state first: aggregates refreshed and old chunks in the columnstore.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import AsyncConnection, sql

from api import queries
from api.routes.trends import BUCKETS
from api.storage import aggregate_grains, plan_segments
from tests.integration.storage_helpers import (
    own_database,
    refresh_aggregates,
    row,
    run_policy,
    scalar,
    write,
)

pytestmark = pytest.mark.integration


def _last_half_past_23() -> dt.datetime:
    """The latest 23:30 UTC that has passed. The data ends there, so the newest day's chunk
    always holds 23½ hours and a question's last half hour comes from the raw rows: its plan is
    the same at any time of day (just after midnight a chunk of minutes is read by a sequential
    scan, rightly, and the test would fail for the clock's sake)."""
    now = dt.datetime.now(dt.UTC)
    last = now.replace(hour=23, minute=30, second=0, microsecond=0)
    return last if last <= now else last - dt.timedelta(days=1)


NOW = _last_half_past_23()
DAYS = 60
PULSE = [("http://loinc.org", "8867-4")]
# The latest values of many more patients, as a production table holds them.
MORE_LATEST = """
INSERT INTO observations_latest
SELECT gen_random_uuid(), 'http://loinc.org', '8867-4', now(), gen_random_uuid(), 70, '/min'
FROM generate_series(1, 20000)
"""
LEAVES = {  # the relations that hold the rows of observations, by engine
    "postgresql": "SELECT relid::regclass::text FROM pg_partition_tree('observations')"
    " WHERE isleaf",
    "timescaledb": "SELECT c.relname::text FROM pg_class c"
    " WHERE c.oid IN (SELECT show_chunks('observations'))",
}


class Explaining:
    """Stands in for an `AsyncConnection`: EXPLAINs each statement, then runs it."""

    def __init__(self, conn: AsyncConnection[Any]) -> None:
        self.conn = conn
        self.plans: list[dict[str, Any]] = []

    async def execute(self, query: Any, params: Any = None) -> Any:
        composed = query if isinstance(query, sql.Composable) else sql.SQL(query)
        explain = sql.SQL("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {}").format(composed)
        cur = await self.conn.execute(explain, params)
        found = await cur.fetchone()
        assert found is not None
        self.plans.append(found[0][0]["Plan"])
        return await self.conn.execute(query, params)


Question = Callable[[Any, str], Awaitable[list[Any]]]


def _stats(conn: Any, key: str, start: dt.datetime, width: dt.timedelta | None) -> Any:
    """$stats (``width`` None) and trends: segments planned as the routes plan them."""
    grains = BUCKETS["1d"][1]
    segments = plan_segments(start, NOW, aggregate_grains(PULSE, grains))
    return queries.aggregate_buckets(
        conn=conn, keys=[key], codes=PULSE, segments=segments, width=width
    )


DAY, HOURS_5 = dt.timedelta(days=1), dt.timedelta(hours=5)
QUESTIONS: dict[str, tuple[Question, int]] = {  # question, how many partitions it may read
    "search: a 24-hour page": (
        lambda conn, key: queries.search_observations(
            conn=conn,
            keys=[key],
            count=100,
            wanted=queries.SearchFilter(
                codes=PULSE,
                dates=[(">=", NOW - 30 * DAY - HOURS_5), ("<", NOW - 29 * DAY - HOURS_5)],
            ),
        ),
        2,
    ),
    "$lastn: every code, max 10": (
        lambda conn, key: queries.last_n(conn=conn, keys=[key], codes=[], max_n=10),
        3,  # its first window: the two days before each code's latest value
    ),
    "$stats: 7 days": (lambda conn, key: _stats(conn, key, NOW - 7 * DAY, None), 3),
    "trend: 1 year, daily": (lambda conn, key: _stats(conn, key, NOW - 365 * DAY, DAY), 3),
}


@pytest.fixture(scope="module")
def stored(database_url: str, engine: str) -> Iterator[tuple[str, str]]:
    """A database of its own: a patient with 60 days of readings every 10 minutes among 200
    patients with one every 4 hours; returns its URL and the patient's key."""
    with own_database(database_url) as db:
        fnr = "80000000001"
        rows = [
            row(fnr, NOW - dt.timedelta(minutes=10 * i), 60 + i % 40) for i in range(DAYS * 144)
        ]
        for p in range(200):
            rows += [
                row(f"7{p:010d}", NOW - dt.timedelta(hours=4 * i, minutes=p), 60 + i % 40)
                for i in range(DAYS * 6)
            ]
        write(db, rows, batch=2000)
        if engine == "timescaledb":
            refresh_aggregates(db)
            run_policy(db, "policy_compression", "observations")
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(MORE_LATEST)
            conn.execute("VACUUM ANALYZE")
        yield (
            db,
            scalar(db, "SELECT patient_key::text FROM patients WHERE identifier_value = %s", fnr),
        )


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _explain(db: str, key: str, question: Question) -> tuple[list[Any], list[dict[str, Any]]]:
    async def run() -> tuple[list[Any], list[dict[str, Any]]]:
        async with await AsyncConnection.connect(db) as conn:
            explaining = Explaining(conn)
            answer = await question(explaining, key)
            return answer, [n for p in explaining.plans for n in _nodes(p)]

    return asyncio.run(run())


@pytest.mark.parametrize("name", QUESTIONS)
def test_a_question_reads_only_its_time_and_only_through_indexes(
    stored: tuple[str, str], engine: str, name: str
) -> None:
    """The question answers, reads at most the few partitions (chunks) of its time of the 60
    days stored, and no relation is read by a sequential scan."""
    db, key = stored
    question, most = QUESTIONS[name]
    answer, nodes = _explain(db, key, question)
    assert answer
    assert [n["Relation Name"] for n in nodes if n["Node Type"] == "Seq Scan" and _pages(n)] == []
    leaves = {
        r[0] for r in _all(db, LEAVES["postgresql" if engine == "postgresql" else "timescaledb"])
    }
    read = {
        n["Relation Name"] for n in nodes if n.get("Relation Name") in leaves and n["Actual Loops"]
    }
    assert len(leaves) > DAYS
    assert 1 <= len(read) <= most, sorted(read)


def _pages(node: dict[str, Any]) -> int:
    return int(node["Shared Hit Blocks"] + node["Shared Read Blocks"])


def _all(db: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db) as conn:
        return conn.execute(query.encode()).fetchall()
