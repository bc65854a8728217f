"""NEWS2 in a stream: assemble each score's set from readings taken at different moments,
score many sets at once, and decide which scores raise an alert. No I/O here.

A score is made at the time of every NEWS2 reading ("whenever a reading changes the picture").
Its set holds, per parameter, the latest reading at or before that time and within the
parameter's freshness window: the vital signs' window (default 60 min) or the longer context
window for consciousness and oxygen status (nurse visit, questionnaire). Without a fresh oxygen
reading the care plan decides (``long_term_oxygen``); without one either, the item is missing
and the set is incomplete — never filled in as normal.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, cast

import numpy as np

import news2
from news2 import EscalationPolicy

__all__ = [
    "CONTEXT_PARAMETERS",
    "PARAMETERS",
    "AlertDecision",
    "PatientContext",
    "Reading",
    "ScoredSet",
    "decide_alerts",
    "score_sets",
    "score_times",
    "select_inputs",
]

PARAMETERS = (
    "respiration_rate", "spo2", "on_oxygen", "systolic_bp", "pulse", "consciousness", "temperature",
)  # fmt: skip
CONTEXT_PARAMETERS = frozenset({"consciousness", "on_oxygen"})
_SCORE_NAMESPACE = uuid.UUID("3d6f1b7e-9c4a-4f0e-b1d2-5e8a7c6b4f21")
_ALERT_NAMESPACE = uuid.UUID("8a2e4c6d-1f3b-4d5e-9a7c-2b4d6f8e0a13")


@dataclass(frozen=True, slots=True)
class Reading:
    """One input to NEWS2: a parameter's value at a time, from one Observation."""

    parameter: str
    effective: dt.datetime
    value: float | bool | str
    id: str


@dataclass(frozen=True, slots=True)
class PatientContext:
    """A patient's NEWS2 settings, merged with their organisation's."""

    patient_key: str
    organisation: str | None = None
    spo2_scale: int = 1
    long_term_oxygen: bool | None = None
    freshness: dt.timedelta = dt.timedelta(minutes=60)
    context_freshness: dt.timedelta = dt.timedelta(hours=24)
    policy: EscalationPolicy = field(default_factory=EscalationPolicy.rcp)

    def window(self, parameter: str) -> dt.timedelta:
        """How long a reading of this parameter stays usable."""
        return self.context_freshness if parameter in CONTEXT_PARAMETERS else self.freshness


@dataclass(frozen=True)  # no slots: `id` is computed once and cached
class ScoredSet:
    """One NEWS2 score of a patient at a time, with the readings it used."""

    patient_key: str
    effective: dt.datetime
    total: int | None
    band: str
    red_flag: bool
    partial_sum: int
    level: str
    spo2_scale: int
    subscores: Mapping[str, int | None]
    inputs: Mapping[str, Reading]
    organisation: str | None

    @cached_property
    def id(self) -> str:
        """The deterministic id of the score Observation: one per patient and instant."""
        return str(uuid.uuid5(_SCORE_NAMESPACE, f"{self.patient_key}|{self.effective.isoformat()}"))

    @property
    def oldest_input(self) -> dt.datetime | None:
        """When the oldest reading used was taken."""
        return min((r.effective for r in self.inputs.values()), default=None)


def score_times(
    new: Iterable[tuple[dt.datetime, dt.timedelta]], existing: Iterable[dt.datetime]
) -> list[dt.datetime]:
    """The times to (re)score after new readings arrive.

    Each new reading, given as ``(time, freshness window of its parameter)``, makes a score at
    its own time; an existing score within that window after it may have used an older value
    of the parameter, so it is scored again (late data).
    """
    new = list(new)
    if not new:
        return []
    affected = {t for t, _ in new}
    first, last = min(t for t, _ in new), max(t + window for t, window in new)
    for when in set(existing):
        if first < when <= last and any(t < when <= t + window for t, window in new):
            affected.add(when)
    return sorted(affected)


def select_inputs(
    readings: Mapping[str, Sequence[Reading]], at: dt.datetime, context: PatientContext
) -> dict[str, Reading]:
    """The latest fresh reading of each parameter at ``at`` (readings sorted by time)."""
    chosen: dict[str, Reading] = {}
    for parameter, series in readings.items():
        oldest = at - context.window(parameter)
        for reading in reversed(series):
            if reading.effective <= at:
                if reading.effective >= oldest:
                    chosen[parameter] = reading
                break
    return chosen


def score_sets(
    requests: Sequence[tuple[PatientContext, dt.datetime, Mapping[str, Reading]]],
) -> list[ScoredSet | None]:
    """Score many sets with the vectorised scorer; None where an input is not a measurement."""
    if not requests:
        return []
    columns = {p: _column(p, requests) for p in PARAMETERS}
    scales = np.array([ctx.spo2_scale for ctx, _, _ in requests], dtype=np.int64)
    batch = news2.score_many(**columns, spo2_scale=scales)
    subscores = batch.subscores
    out: list[ScoredSet | None] = []
    for row, (ctx, at, inputs) in enumerate(requests):
        if not batch.valid[row]:
            out.append(None)
            continue
        total = int(batch.total[row])
        result_subscores = {
            name: (int(values[row]) if values[row] >= 0 else None)
            for name, values in subscores.items()
        }
        result = news2.News2Result(
            total=None if total < 0 else total,
            band=cast(news2.Band, str(batch.band[row])),
            red_flag=bool(batch.red_flag[row]),
            subscores=result_subscores,
            partial_sum=int(batch.partial_sum[row]),
            missing=tuple(k for k, v in result_subscores.items() if v is None),
            spo2_scale=ctx.spo2_scale,
        )
        out.append(
            ScoredSet(
                patient_key=ctx.patient_key,
                effective=at,
                total=result.total,
                band=result.band,
                red_flag=result.red_flag,
                partial_sum=result.partial_sum,
                level=news2.alert_level(result, ctx.policy),
                spo2_scale=ctx.spo2_scale,
                subscores=result_subscores,
                inputs=dict(inputs),
                organisation=ctx.organisation,
            )
        )
    return out


def _column(
    parameter: str, requests: Sequence[tuple[PatientContext, dt.datetime, Mapping[str, Reading]]]
) -> Any:
    if parameter == "consciousness":
        return np.array(
            [str(i["consciousness"].value) if "consciousness" in i else "" for _, _, i in requests]
        )
    if parameter == "on_oxygen":
        return np.array([_oxygen(ctx, inputs) for ctx, _, inputs in requests], dtype=np.float64)
    return np.array(
        [float(i[parameter].value) if parameter in i else np.nan for _, _, i in requests],
        dtype=np.float64,
    )


def _oxygen(context: PatientContext, inputs: Mapping[str, Reading]) -> float:
    if "on_oxygen" in inputs:
        return 1.0 if inputs["on_oxygen"].value else 0.0
    if context.long_term_oxygen is None:
        return np.nan
    return 1.0 if context.long_term_oxygen else 0.0


@dataclass(frozen=True, slots=True)
class AlertDecision:
    """What a score does to the patient's NEWS2 alert."""

    action: str  # "raise" or "upgrade"
    alert_id: str
    level: str
    reason: str
    score: ScoredSet


_LEVEL_RANK = {"none": 0, "urgent": 1, "emergency": 2}


def decide_alerts(
    scores: Sequence[ScoredSet],
    *,
    previous: ScoredSet | None,
    active_level: str | None,
) -> list[AlertDecision]:
    """Walk a patient's scores in time order and decide which raise or upgrade an alert.

    An alert is raised when the level rises into an escalation level, or on a new red score;
    while an alert is active (open or acknowledged) a higher level upgrades it and anything
    else is quiet, so a patient who stays high does not get an alert per reading.

    Args:
        scores: New or re-scored scores of one patient, from the newest known score onward.
        previous: The score just before the first of them, if any.
        active_level: The level of the patient's unresolved NEWS2 alert, if one exists.
    """
    decisions: list[AlertDecision] = []
    for current in sorted(scores, key=lambda s: s.effective):
        rank = _LEVEL_RANK[current.level]
        before = _LEVEL_RANK[previous.level] if previous else 0
        new_red = current.red_flag and not (previous and previous.red_flag)
        rises = rank > before or (new_red and rank > 0)
        if rises and active_level is None:
            decisions.append(_decision("raise", current))
            active_level = current.level
        elif active_level is not None and rank > _LEVEL_RANK[active_level]:
            decisions.append(_decision("upgrade", current))
            active_level = current.level
        previous = current
    return decisions


def _decision(action: str, score: ScoredSet) -> AlertDecision:
    reasons = []
    if score.band not in ("none", "low", "incomplete"):
        reasons.append(f"NEWS2 {score.total} ({score.band})")
    elif score.band == "incomplete":
        reasons.append(f"NEWS2 incomplete, at least {score.partial_sum}")
    if score.red_flag:
        reasons.append("a single parameter scores 3")
    alert_id = str(
        uuid.uuid5(_ALERT_NAMESPACE, f"{score.patient_key}|news2|{score.effective.isoformat()}")
    )
    return AlertDecision(action, alert_id, score.level, "; ".join(reasons), score)
