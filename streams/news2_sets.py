"""What the NEWS2 stage knows of each patient it owns, and the pure steps from a batch of stored
readings to the sets to score and the alert decisions. No I/O here.

A `PatientState` holds every NEWS2 reading and stored score of one patient from ``covered_from``
on (plus the newest two scores, whenever they were), so that scoring the next reading needs no
database round trip. Settings and the open alert are not kept: people change them through the
API and the escalation timer changes alerts, so the stage reads them with each batch.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from ingestion.news2_inputs import ACVPU_LETTERS, input_of
from streams.scoring import (
    AlertDecision,
    PatientContext,
    Reading,
    ScoredSet,
    decide_alerts,
    score_times,
    select_inputs,
)

__all__ = [
    "NewReading",
    "PatientState",
    "ScoreRequest",
    "alert_decisions",
    "lookback",
    "score_requests",
    "stored_reading",
]

ScoreRequest = tuple[PatientContext, dt.datetime, Mapping[str, Reading]]


@dataclass(frozen=True, slots=True)
class NewReading:
    """A NEWS2 reading of the batch, just stored, with the partition that owns its patient."""

    patient_key: str
    partition: int
    reading: Reading
    organisation: str | None


def stored_reading(
    obs_id: str,
    code: str,
    effective: dt.datetime,
    *,
    value: float | None,
    systolic: float | None,
    acvpu: str | None,
    on_oxygen: bool | None,
) -> Reading | None:
    """The NEWS2 reading a stored row is, from its typed columns (None: not a usable input)."""
    found = input_of(code)
    if found is None:
        return None
    chosen: float | bool | str | None
    if found.column == "value":
        chosen = None if value is None else float(value)
    elif found.column == "systolic":
        chosen = None if systolic is None else float(systolic)
    elif found.column == "acvpu":
        chosen = acvpu if acvpu in ACVPU_LETTERS else None
    else:
        chosen = on_oxygen
    return None if chosen is None else Reading(found.parameter, effective, chosen, obs_id)


def lookback(context: PatientContext) -> dt.timedelta:
    """How far back a score at some time may look for its inputs."""
    return max(context.freshness, context.context_freshness)


@dataclass
class PatientState:
    """Every NEWS2 reading and stored score of one patient from ``covered_from`` on."""

    partition: int
    covered_from: dt.datetime
    readings: dict[str, list[Reading]] = field(default_factory=lambda: defaultdict(list))
    scores: dict[dt.datetime, ScoredSet] = field(default_factory=dict)
    measured_by: tuple[dt.datetime, str] | None = None  # newest organisation seen in a reading
    _ids: set[str] = field(default_factory=set)

    def add_readings(self, readings: Iterable[Reading]) -> None:
        """Add readings (known ids are skipped), keeping each parameter's series in time order."""
        for r in readings:
            if r.id in self._ids:
                continue
            self._ids.add(r.id)
            series = self.readings[r.parameter]
            if not series or series[-1].effective <= r.effective:
                series.append(r)
            else:
                bisect.insort(series, r, key=lambda x: x.effective)

    def add_scores(self, scores: Iterable[ScoredSet]) -> None:
        """Record stored scores (a re-score replaces the score of its instant)."""
        for s in scores:
            self.scores[s.effective] = s

    def saw_organisation(self, effective: dt.datetime, organisation: str | None) -> None:
        """Remember the organisation of the newest reading that names one."""
        if organisation and (self.measured_by is None or self.measured_by[0] < effective):
            self.measured_by = (effective, organisation)

    def context(self, settings: PatientContext) -> PatientContext:
        """The settings, with the measuring organisation for a patient no clinician placed."""
        if settings.organisation is None and self.measured_by is not None:
            return replace(settings, organisation=self.measured_by[1])
        return settings

    def newest_scores(self, n: int = 2) -> list[ScoredSet]:
        """The newest ``n`` stored scores, newest first."""
        return [self.scores[t] for t in sorted(self.scores, reverse=True)[:n]]

    def forget_before(self, cutoff: dt.datetime) -> None:
        """Drop what is older than ``cutoff`` (but keep the newest two scores)."""
        if cutoff <= self.covered_from:
            return
        for parameter, series in self.readings.items():
            keep = bisect.bisect_left(series, cutoff, key=lambda x: x.effective)
            self._ids.difference_update(r.id for r in series[:keep])
            self.readings[parameter] = series[keep:]
        newest = {s.effective for s in self.newest_scores()}
        self.scores = {t: s for t, s in self.scores.items() if t >= cutoff or t in newest}
        self.covered_from = cutoff


def score_requests(
    states: Mapping[str, PatientState],
    contexts: Mapping[str, PatientContext],
    news: Sequence[NewReading],
) -> list[ScoreRequest]:
    """The sets to score: at each new reading's time, and at each stored score it may change."""
    by_patient: dict[str, list[NewReading]] = defaultdict(list)
    for n in news:
        by_patient[n.patient_key].append(n)
    requests: list[ScoreRequest] = []
    for key, mine in by_patient.items():
        state, ctx = states[key], contexts[key]
        new = [(n.reading.effective, ctx.window(n.reading.parameter)) for n in mine]
        for at in score_times(new, state.scores):
            requests.append((ctx, at, select_inputs(state.readings, at, ctx)))
    return requests


def alert_decisions(
    states: Mapping[str, PatientState],
    active: Mapping[str, str],
    scores: Sequence[ScoredSet],
) -> list[AlertDecision]:
    """Alert decisions per patient over the new scores at or after the newest stored one.

    Args:
        states: The patients' states, before the new scores are added.
        active: The level of each patient's unresolved NEWS2 alert, where there is one.
        scores: The new or re-scored scores of the batch.
    """
    by_patient: dict[str, list[ScoredSet]] = defaultdict(list)
    for s in scores:
        by_patient[s.patient_key].append(s)
    decisions: list[AlertDecision] = []
    for key, fresh in by_patient.items():
        state = states[key]
        newest = state.newest_scores(1)
        frontier = newest[0].effective if newest else None
        current = sorted(
            (s for s in fresh if frontier is None or s.effective >= frontier),
            key=lambda s: s.effective,
        )
        if not current:
            continue  # only late scores: they correct history but raise nothing now
        timeline = dict(state.scores) | {s.effective: s for s in fresh}
        before = [s for t, s in timeline.items() if t < current[0].effective]
        previous = max(before, key=lambda s: s.effective, default=None)
        decisions += decide_alerts(current, previous=previous, active_level=active.get(key))
    return decisions
