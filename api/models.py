"""Request bodies of the clinical API, named by direction (``…Update``, ``…Request``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from news2 import policy_from_spec

__all__ = [
    "AcknowledgeRequest",
    "IdentifierIn",
    "OrganisationSettingsUpdate",
    "OrganisationUpdate",
    "PatientSettingsUpdate",
    "ResolveRequest",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IdentifierIn(_Strict):
    """A patient identifier (``subject.identifier`` in FHIR)."""

    system: str = "urn:oid:2.16.578.1.12.4.1.4.1"
    value: str


class PatientSettingsUpdate(_Strict):
    """A clinician's NEWS2 settings for a patient; unset fields fall back to the organisation's."""

    patient: IdentifierIn
    set_by: str | None = Field(
        None, deprecated=True, description="ignored: who sets them comes from the access token"
    )
    organisation: str | None = Field(
        None, description="the organisation number (9 digits) whose patient this is"
    )
    spo2_scale: Literal[1, 2] = Field(1, description="1, or 2 for confirmed hypercapnic failure")
    long_term_oxygen: bool | None = Field(
        None, description="true: on oxygen per care plan; false: room air; null: unknown"
    )
    freshness_minutes: int | None = Field(None, gt=0, le=24 * 60)
    context_freshness_minutes: int | None = Field(None, gt=0, le=14 * 24 * 60)
    expected_interval_minutes: int | None = Field(None, gt=0, le=31 * 24 * 60)


class OrganisationUpdate(_Strict):
    """An organisation's name and its parent (Enhetsregisteret: a unit under a main entity)."""

    name: str | None = Field(None, max_length=200)
    parent: str | None = Field(None, description="the parent's organisation number (9 digits)")


class OrganisationSettingsUpdate(_Strict):
    """An organisation's NEWS2 response settings."""

    set_by: str | None = Field(
        None, deprecated=True, description="ignored: who sets them comes from the access token"
    )
    name: str | None = Field(None, max_length=200)
    policy: dict[str, Any] = Field(default_factory=lambda: {"rule": "rcp"})
    freshness_minutes: int = Field(60, gt=0, le=24 * 60)
    context_freshness_minutes: int = Field(24 * 60, gt=0, le=14 * 24 * 60)
    ack_timeout_minutes: int = Field(15, gt=0, le=24 * 60)

    @model_validator(mode="after")
    def _policy_is_known(self) -> OrganisationSettingsUpdate:
        try:
            policy_from_spec(self.policy)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"policy: {exc}") from exc
        return self


class AcknowledgeRequest(_Strict):
    """A nurse takes an alert."""

    by: str | None = Field(
        None, deprecated=True, description="ignored: who acknowledges comes from the access token"
    )


class ResolveRequest(_Strict):
    """A nurse closes an alert with a note (journaled as VKP-DHO's Composition)."""

    by: str | None = Field(
        None, deprecated=True, description="ignored: who resolves comes from the access token"
    )
    note: str = Field(min_length=1, max_length=10_000)
