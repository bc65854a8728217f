"""Clinical response to a NEWS2 band (RCP Chart 4) and per-organisation escalation.

``EscalationPolicy`` says which result raises which alert level. The RCP default
maps bands to levels; ``EscalationPolicy.total_or_single_three`` expresses the
common Norwegian rule (Oslo University Hospital: total ≥ 5 or any single 3). Rules
on totals and red scores also apply to incomplete sets, using the partial sum (a
lower bound of the total) and the red flag of the present parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Any, Final, Literal, get_args

from news2.chart import BANDS, Band
from news2.scoring import News2Result

MAX_TOTAL: Final = 20  # the highest NEWS2 total there is

__all__ = [
    "ALERT_LEVELS",
    "RESPONSES",
    "AlertLevel",
    "ClinicalResponse",
    "EscalationPolicy",
    "alert_level",
    "clinical_response",
    "policy_from_spec",
]

AlertLevel = Literal["none", "urgent", "emergency"]
#: Alert levels, least to most severe.
ALERT_LEVELS: Final[tuple[AlertLevel, ...]] = get_args(AlertLevel)


@dataclass(frozen=True, slots=True)
class ClinicalResponse:
    """What RCP Chart 4 asks for at a band.

    Attributes:
        band: The band.
        monitoring: Minimum frequency of monitoring, as text.
        max_interval: Longest time to the next observation set; ``None`` when
            monitoring is continuous or the set must be completed/corrected now.
        response: The clinical response, as text.
    """

    band: Band
    monitoring: str
    max_interval: timedelta | None
    response: str


_RESPONSES = (
    ClinicalResponse(
        "none", "minimum 12-hourly", timedelta(hours=12), "Continue routine NEWS monitoring."
    ),
    ClinicalResponse(
        "low",
        "minimum 4–6-hourly",
        timedelta(hours=6),
        "Inform the registered nurse, who must assess the patient and decide whether "
        "increased monitoring and/or escalation of care is required.",
    ),
    ClinicalResponse(
        "low-medium",
        "minimum 1-hourly",
        timedelta(hours=1),
        "Registered nurse to inform the medical team caring for the patient, who will "
        "review and decide whether escalation of care is necessary (urgent ward-based review).",
    ),
    ClinicalResponse(
        "medium",
        "minimum 1-hourly",
        timedelta(hours=1),
        "Registered nurse to inform the medical team immediately and request urgent "
        "assessment by a clinician or team competent in acute illness; provide clinical "
        "care in an environment with monitoring facilities.",
    ),
    ClinicalResponse(
        "high",
        "continuous monitoring of vital signs",
        None,
        "Registered nurse to inform the medical team immediately (at least specialist "
        "registrar level); emergency assessment by a team with critical-care competencies; "
        "consider transfer to a level 2 or 3 care facility (HDU or ICU).",
    ),
    ClinicalResponse(
        "incomplete",
        "complete the observation set now",
        None,
        "The set is incomplete: measure the missing parameters; never assume they are normal.",
    ),
    ClinicalResponse(
        "invalid",
        "repeat the observation now",
        None,
        "An input is not a plausible measurement: check the device and repeat the measurement.",
    ),
)

#: Clinical response per band.
RESPONSES: Final[Mapping[str, ClinicalResponse]] = MappingProxyType(
    {response.band: response for response in _RESPONSES}
)


def clinical_response(band: str) -> ClinicalResponse:
    """Return the RCP Chart 4 response to a band."""
    return RESPONSES[band]


@dataclass(frozen=True, slots=True)
class EscalationPolicy:
    """An organisation's escalation settings.

    Attributes:
        name: Shown to users, e.g. ``"RCP"`` or ``"OUS"``.
        band_levels: Level raised by each band of a complete set (others: ``"none"``).
        total_levels: ``(threshold, level)`` pairs: a total, or the partial sum of an
            incomplete set, at or above the threshold raises the level.
        red_flag_level: Level raised by any single parameter scoring 3.
    """

    name: str
    band_levels: Mapping[str, AlertLevel] = field(default_factory=dict)
    total_levels: tuple[tuple[int, AlertLevel], ...] = ()
    red_flag_level: AlertLevel = "none"

    def __post_init__(self) -> None:
        """Check the settings and freeze the mapping."""
        levels = {*self.band_levels.values(), *(level for _, level in self.total_levels)}
        unknown = ({*self.band_levels} - set(BANDS)) | (levels | {self.red_flag_level}) - set(
            ALERT_LEVELS
        )
        if unknown:
            raise ValueError(f"unknown band or alert level: {sorted(unknown)}")
        object.__setattr__(self, "band_levels", MappingProxyType(dict(self.band_levels)))

    @classmethod
    def rcp(cls) -> EscalationPolicy:
        """RCP Chart 4: low-medium and medium urgent, high emergency."""
        return cls(
            name="RCP",
            band_levels={"low-medium": "urgent", "medium": "urgent", "high": "emergency"},
            total_levels=((5, "urgent"), (7, "emergency")),
            red_flag_level="urgent",
        )

    @classmethod
    def total_or_single_three(
        cls, *, name: str = "OUS", total: int = 5, emergency_total: int | None = 7
    ) -> EscalationPolicy:
        """The Norwegian rule: total ≥ ``total`` or any single 3 is urgent."""
        levels: list[tuple[int, AlertLevel]] = [(total, "urgent")]
        if emergency_total is not None:
            levels.append((emergency_total, "emergency"))
        return cls(name=name, total_levels=tuple(levels), red_flag_level="urgent")


def policy_from_spec(spec: Mapping[str, Any] | None) -> EscalationPolicy:
    """Build an organisation's policy from stored settings (RCP when unset).

    Forms: ``{"rule": "rcp"}``; ``{"rule": "total-or-single-three", "total": 5,
    "emergency_total": 7}`` (the common Norwegian rule); or explicit ``{"band_levels": {...},
    "total_levels": [[5, "urgent"]], "red_flag_level": "urgent"}``.

    Raises:
        ValueError: an unknown rule, band or level.
    """
    spec = dict(spec or {})
    rule = spec.get("rule", "explicit" if "band_levels" in spec else "rcp")
    name = str(spec.get("name", rule))
    if rule == "rcp":
        return EscalationPolicy.rcp()
    if rule == "total-or-single-three":
        emergency = spec.get("emergency_total", 7)
        return EscalationPolicy.total_or_single_three(
            name=name,
            total=_total(spec.get("total", 5), "total"),
            emergency_total=None if emergency is None else _total(emergency, "emergency_total"),
        )
    if rule == "explicit":
        return EscalationPolicy(
            name=name,
            band_levels=dict(spec.get("band_levels", {})),
            total_levels=tuple(
                (_total(t, "total_levels"), level) for t, level in spec.get("total_levels", ())
            ),
            red_flag_level=spec.get("red_flag_level", "none"),
        )
    raise ValueError(f"unknown escalation rule {rule!r}")


def _total(value: Any, name: str) -> int:
    """A NEWS2 total threshold: a whole number from 1 to 20 (the highest total there is)."""
    whole = (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, float) and value.is_integer()
    )
    if not whole or not 1 <= value <= MAX_TOTAL:
        raise ValueError(f"{name} must be a whole number from 1 to {MAX_TOTAL}")
    return int(value)


def alert_level(result: News2Result, policy: EscalationPolicy | None = None) -> AlertLevel:
    """Return the most severe alert level the policy (default RCP) gives a result."""
    policy = policy or EscalationPolicy.rcp()
    raised = [policy.band_levels.get(result.band, "none")]
    raised += [level for threshold, level in policy.total_levels if result.partial_sum >= threshold]
    if result.red_flag:
        raised.append(policy.red_flag_level)
    return max(raised, key=ALERT_LEVELS.index)
