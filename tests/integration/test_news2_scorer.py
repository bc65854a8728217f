"""The NEWS2 stage against the real database, with an injectable clock and no broker:
readings are stored by the real sink and scored by the real scorer, as the worker does."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import orjson
import pytest
from psycopg_pool import AsyncConnectionPool

from api import alerting
from ingestion.identifiers import FNR_SYSTEM, patient_key
from ingestion.measurement import to_json
from ingestion.observations import parse_observation
from streams.agents import Envelope, process_batch
from streams.scorer import News2Scorer
from streams.sinks import ObservationSink
from tests.helpers import fresh_fnr

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

T0 = dt.datetime(2026, 11, 26, 6, 0, tzinfo=dt.UTC)
Records = list[tuple[bytes, bytes, Mapping[str, bytes]]]

# (code, value, unit) of the six physiological readings a home set sends, normal values.
NORMAL = {
    "respiration_rate": ("9279-1", 16, "/min"),
    "spo2": ("2708-6", 97, "%"),
    "pulse": ("8867-4", 70, "/min"),
    "temperature": ("8310-5", 36.8, "Cel"),
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Stage:
    """The persist-and-score stage of one worker, with a clock the test moves."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool
        self.now = T0
        self.emitted_scores: Records = []
        self.emitted_alerts: Records = []
        self.sink = ObservationSink(pool)
        self.scorer = News2Scorer(
            pool,
            emit_scores=self._collect_scores,
            emit_alerts=self._collect_alerts,
            clock=lambda: self.now,
        )
        self.fnr = fresh_fnr()
        self.key = str(patient_key(FNR_SYSTEM, self.fnr))
        self.organisation = f"org-{uuid.uuid4().hex[:8]}"

    async def _collect_scores(self, records: Sequence[Any]) -> None:
        self.emitted_scores += records

    async def _collect_alerts(self, records: Sequence[Any]) -> None:
        self.emitted_alerts += records

    async def settings(self, **values: Any) -> None:
        async with self.pool.connection() as conn:
            await alerting.put_patient_settings(
                conn=conn,
                patient_key=self.key,
                identifier=(FNR_SYSTEM, self.fnr),
                settings={"organisation": self.organisation, **values},
                set_by="HPR 9999999",
                now=self.now,
            )

    async def send(self, at: dt.datetime, **readings: Any) -> None:
        """Store and score readings taken at ``at`` (keyword: parameter=value)."""
        self.now = max(self.now, at)
        resources = [self._resource(name, value, at) for name, value in readings.items()]
        await self.replay(self._readings(resources))

    async def replay(self, batch: list[Envelope]) -> None:
        await process_batch(batch, sink=self.sink, scorer=self.scorer, dead_letter=_refuse)

    def _readings(self, resources: list[dict[str, Any]]) -> list[Envelope]:
        return [
            Envelope(m.patient_key.encode(), to_json(m), {}, "readings", 0, i)
            for i, m in enumerate(parse_observation(r, received=self.now) for r in resources)
        ]

    def _resource(self, name: str, value: Any, at: dt.datetime) -> dict[str, Any]:
        resource: dict[str, Any] = {
            "resourceType": "Observation",
            "status": "final",
            "subject": {"identifier": {"system": FNR_SYSTEM, "value": self.fnr}},
            "effectiveDateTime": at.isoformat(),
        }
        if name == "consciousness":
            code = {"system": "http://snomed.info/sct", "code": "1104441000000107"}
            return resource | {"code": {"coding": [code]}, "valueString": value}
        if name == "systolic_bp":
            components = [("8480-6", value), ("8462-4", 80)]
            return resource | {
                "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
                "component": [
                    {
                        "code": {"coding": [{"system": "http://loinc.org", "code": c}]},
                        "valueQuantity": _quantity(v, "mm[Hg]"),
                    }
                    for c, v in components
                ],
            }
        code, _, unit = NORMAL.get(name, ("3151-8", 0, "L/min"))
        coding = {"system": "http://loinc.org", "code": code}
        return resource | {"code": {"coding": [coding]}, "valueQuantity": _quantity(value, unit)}

    async def scores(self) -> list[dict[str, Any]]:
        return await self._rows(
            "SELECT effective, total, band, red_flag, partial_sum, level, inputs FROM news2_scores"
            " WHERE patient_key = %s ORDER BY effective"
        )

    async def alerts(self) -> list[dict[str, Any]]:
        return await self._rows(
            "SELECT kind, level, status, reason, escalated_at FROM alerts WHERE patient_key = %s"
            " ORDER BY raised_at"
        )

    async def _rows(self, query: str) -> list[dict[str, Any]]:
        from psycopg.rows import dict_row

        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(query, (self.key,))
            return await cur.fetchall()


def _quantity(value: Any, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}


async def _refuse(records: Sequence[Any]) -> None:
    raise AssertionError(f"nothing should be dead-lettered: {records!r}")


@pytest.fixture
async def stage(database_url: str) -> AsyncIterator[Stage]:
    async with AsyncConnectionPool(database_url, min_size=1, max_size=4, open=False) as pool:
        await pool.wait()
        yield Stage(pool)


def minutes(n: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=n)


NORMAL_SET = {
    "respiration_rate": 16,
    "spo2": 97,
    "pulse": 70,
    "temperature": 36.8,
    "systolic_bp": 125,
    "consciousness": "A",
}


async def test_a_complete_normal_set_scores_zero_and_raises_nothing(stage: Stage) -> None:
    """Six readings plus the care plan's room air make a complete set: NEWS2 0, no alert."""
    await stage.settings(long_term_oxygen=False)
    await stage.send(minutes(0), **NORMAL_SET)
    assert [(s["total"], s["band"]) for s in await stage.scores()] == [(0, "none")]
    assert await stage.alerts() == []
    assert len(stage.emitted_scores) == 1
    assert (
        orjson.loads(stage.emitted_scores[0][1])["code"]["coding"][0]["code"] == "1104051000000101"
    )


async def test_sets_are_assembled_across_devices_and_a_red_score_raises_one_alert(
    stage: Stage,
) -> None:
    """Readings from several devices join one set; a red score raises one alert, not one each."""
    await stage.settings(long_term_oxygen=False)
    await stage.send(minutes(0), **NORMAL_SET)
    await stage.send(minutes(5), respiration_rate=26)  # a single 3: red score, total 3
    await stage.send(minutes(6), respiration_rate=27)
    scores = await stage.scores()
    assert [(s["total"], s["band"], s["red_flag"]) for s in scores] == [
        (0, "none", False),
        (3, "low-medium", True),
        (3, "low-medium", True),
    ]
    assert [(a["kind"], a["level"], a["status"]) for a in await stage.alerts()] == [
        ("news2", "urgent", "open")
    ]


async def test_rising_to_high_upgrades_the_open_alert(stage: Stage) -> None:
    """From urgent to high the same alert is upgraded to emergency, and says why: the reason
    is the score that made it one."""
    await stage.settings(long_term_oxygen=False)
    await stage.send(minutes(0), **NORMAL_SET)
    await stage.send(minutes(5), pulse=115, temperature=38.5, respiration_rate=22)  # 5: medium
    assert [(a["level"], a["reason"]) for a in await stage.alerts()] == [
        ("urgent", "NEWS2 5 (medium)")
    ]
    await stage.send(minutes(6), spo2=93)  # + 2 = 7 → high
    alerts = await stage.alerts()
    assert [(a["level"], a["status"]) for a in alerts] == [("emergency", "open")]
    assert [s["band"] for s in await stage.scores()][-1] == "high"
    assert "NEWS2 7" in alerts[0]["reason"]


async def test_stale_parameters_make_the_set_incomplete(stage: Stage) -> None:
    """Vital signs older than 60 minutes are not reused: the later score is incomplete."""
    await stage.settings(long_term_oxygen=False)
    await stage.send(minutes(0), **NORMAL_SET)
    await stage.send(minutes(61), pulse=72)
    latest = (await stage.scores())[-1]
    assert (latest["total"], latest["band"], latest["partial_sum"]) == (None, "incomplete", 0)
    assert set(latest["inputs"]) == {"pulse", "consciousness"}


async def test_late_reading_rescores_and_corrects_the_newer_score(stage: Stage) -> None:
    """A reading older than the last score re-scores its own time and corrects the newer score."""
    await stage.settings(long_term_oxygen=False)
    await stage.send(minutes(0), **NORMAL_SET)
    await stage.send(minutes(30), pulse=70)
    assert [s["total"] for s in await stage.scores()] == [0, 0]
    await stage.send(minutes(20), temperature=39.2)  # late: taken before the 30-minute score
    scores = await stage.scores()
    assert [(s["effective"], s["total"]) for s in scores] == [
        (minutes(0), 0),
        (minutes(20), 2),
        (minutes(30), 2),
    ]


async def test_scale_2_patient_on_home_oxygen(stage: Stage) -> None:
    """A scale-2 patient on long-term oxygen: SpO2 94 on oxygen scores 1, oxygen scores 2."""
    await stage.settings(spo2_scale=2, long_term_oxygen=True)
    await stage.send(minutes(0), **(NORMAL_SET | {"spo2": 94}))
    score = (await stage.scores())[0]
    assert (score["total"], score["band"]) == (3, "low")


async def test_oxygen_reading_overrides_the_care_plan(stage: Stage) -> None:
    """A measured oxygen flow of 2 L/min puts a room-air patient on oxygen for that score."""
    await stage.settings(long_term_oxygen=False)
    await stage.send(minutes(0), on_oxygen=2, **NORMAL_SET)
    assert [s["total"] for s in await stage.scores()] == [2]


async def test_replaying_a_batch_duplicates_no_score_and_no_alert(stage: Stage) -> None:
    """At-least-once: scoring the same stored batch again changes nothing."""
    await stage.settings(long_term_oxygen=False)
    await stage.send(minutes(0), **NORMAL_SET)
    batch = stage._readings([stage._resource("respiration_rate", 26, minutes(5))])
    await stage.replay(batch)
    before = (await stage.scores(), await stage.alerts())
    await stage.replay(batch)
    assert (await stage.scores(), await stage.alerts()) == before


async def test_unacknowledged_alert_escalates_after_the_organisations_time(stage: Stage) -> None:
    """An open alert nobody acknowledged within 15 minutes goes up a level, once, recorded."""
    await stage.settings(long_term_oxygen=False)
    await stage.send(minutes(0), **NORMAL_SET)
    await stage.send(minutes(1), respiration_rate=26)
    stage.now = minutes(1 + 14)
    await stage.scorer.escalate_overdue()
    assert (await stage.alerts())[0]["level"] == "urgent"
    stage.now = minutes(1 + 16)
    await stage.scorer.escalate_overdue()
    alert = (await stage.alerts())[0]
    assert (alert["level"], alert["escalated_at"]) == ("emergency", minutes(17))
    stage.now = minutes(60)
    await stage.scorer.escalate_overdue()
    assert (await stage.alerts())[0]["escalated_at"] == minutes(17)


async def test_missing_measurement_raises_one_alert(stage: Stage) -> None:
    """A patient expected every 12 hours who has been silent for longer gets one alert."""
    await stage.settings(long_term_oxygen=False, expected_interval_minutes=12 * 60)
    await stage.send(minutes(0), **NORMAL_SET)
    stage.now = minutes(11 * 60)
    await stage.scorer.raise_missing()
    assert await stage.alerts() == []
    stage.now = minutes(13 * 60)
    await stage.scorer.raise_missing()
    await stage.scorer.raise_missing()
    alerts = await stage.alerts()
    assert [(a["kind"], a["status"]) for a in alerts] == [("missing-measurement", "open")]
    assert "no measurement since" in alerts[0]["reason"]


async def test_news2_trends_are_computed_from_the_stored_scores(stage: Stage) -> None:
    """Scores are not in the rollups (they can be corrected): their trend comes from raw rows."""
    from api.queries import aggregate_buckets
    from api.storage import aggregate_grains, plan_segments
    from ingestion.codes import NEWS2_CODE

    await stage.settings(long_term_oxygen=False)
    await stage.send(minutes(0), **NORMAL_SET)
    await stage.send(minutes(5), respiration_rate=26)
    codes = [("http://snomed.info/sct", NEWS2_CODE)]
    grains = aggregate_grains(codes, ["daily", "hourly"])
    assert grains == []
    async with stage.pool.connection() as conn:
        rows = await aggregate_buckets(
            conn=conn,
            keys=[stage.key],
            codes=codes,
            width=dt.timedelta(hours=1),
            segments=plan_segments(minutes(-60), minutes(120), grains),
        )
    assert [(start, n, total) for start, n, total, _, _ in rows] == [(T0, 2, 3.0)]


async def test_a_settings_change_reaches_the_next_batch_of_a_known_patient(stage: Stage) -> None:
    """State is kept per patient, but settings are read with each batch: a change applies."""
    await stage.settings(long_term_oxygen=False)
    await stage.send(minutes(0), **(NORMAL_SET | {"spo2": 94}))  # scale 1: SpO2 94 scores 1
    await stage.settings(spo2_scale=2, long_term_oxygen=True)
    await stage.send(minutes(1), pulse=70)  # scale 2 on oxygen: 94 scores 1, oxygen 2
    assert [(s["total"], s["band"]) for s in await stage.scores()] == [(1, "low"), (3, "low")]


async def test_a_resolved_alert_lets_the_next_red_score_raise_a_new_one(stage: Stage) -> None:
    """The open alert is read with each batch: once a nurse resolves it, a new one can rise."""
    await stage.settings(long_term_oxygen=False)
    await stage.send(minutes(0), **NORMAL_SET)
    await stage.send(minutes(1), respiration_rate=26)
    async with stage.pool.connection() as conn:
        await conn.execute(
            "UPDATE alerts SET status = 'resolved' WHERE patient_key = %s", (stage.key,)
        )
    await stage.send(minutes(2), respiration_rate=16)
    await stage.send(minutes(3), respiration_rate=27)
    assert [a["status"] for a in await stage.alerts()] == ["resolved", "open"]


async def test_a_new_owner_continues_from_the_database(stage: Stage) -> None:
    """A restarted worker (a fresh scorer) loads the patient on first sight: a late reading
    still corrects the newer score it did not compute itself."""
    await stage.settings(long_term_oxygen=False)
    await stage.send(minutes(0), **NORMAL_SET)
    await stage.send(minutes(30), pulse=70)
    stage.scorer = News2Scorer(
        stage.pool, emit_scores=_collect, emit_alerts=_collect, clock=lambda: stage.now
    )
    await stage.send(minutes(20), temperature=39.2)
    assert [(s["effective"], s["total"]) for s in await stage.scores()] == [
        (minutes(0), 0),
        (minutes(20), 2),
        (minutes(30), 2),
    ]


async def test_a_reading_older_than_the_state_covers_is_scored_from_the_database(
    stage: Stage,
) -> None:
    """After two days of readings, one from the first day loads that day back and re-scores."""
    await stage.settings(long_term_oxygen=False)
    await stage.send(minutes(0), **NORMAL_SET)
    await stage.send(minutes(10), pulse=70)
    await stage.send(minutes(3 * 24 * 60), **NORMAL_SET)  # the state now covers the last days
    await stage.send(minutes(5), temperature=39.2)  # late by three days
    totals = {s["effective"]: s["total"] for s in await stage.scores()}
    assert (totals[minutes(5)], totals[minutes(10)]) == (2, 2)


async def test_forgetting_a_partition_drops_its_patients_and_reloads_them(stage: Stage) -> None:
    """After a revocation the state is gone; the next batch loads it again and scores the same."""
    await stage.settings(long_term_oxygen=False)
    await stage.send(minutes(0), **NORMAL_SET)
    stage.scorer.forget([0])
    await stage.send(minutes(5), respiration_rate=26)
    assert [s["total"] for s in await stage.scores()] == [0, 3]
    assert len(await stage.alerts()) == 1


async def _collect(records: Sequence[Any]) -> None:
    return None
