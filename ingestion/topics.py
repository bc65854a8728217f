"""Kafka topic names: versioned, defined in this one place.

Every message is keyed by the patient key, so one patient's data stays ordered on one partition.
A prefix (``malestrom`` by default) lets tests and tenants run side by side on one cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Topics"]


@dataclass(frozen=True, slots=True)
class Topics:
    """The names of malestrom's topics under one prefix."""

    prefix: str = "malestrom"

    @property
    def readings(self) -> str:
        """Canonical measurements accepted at the edge."""
        return f"{self.prefix}.readings.v1"

    @property
    def backfill(self) -> str:
        """Canonical measurements that were old when accepted: their own lane, so a reading
        measured now never waits behind a hub catching up after days offline."""
        return f"{self.prefix}.readings-backfill.v1"

    @property
    def readings_dlq(self) -> str:
        """Readings that failed after acceptance, with the error, stage and original bytes."""
        return f"{self.prefix}.readings.v1.dlq"

    @property
    def news2(self) -> str:
        """NEWS2 scores as FHIR Observations."""
        return f"{self.prefix}.news2.v1"

    @property
    def alerts(self) -> str:
        """Alert lifecycle events."""
        return f"{self.prefix}.alerts.v1"

    def all(self) -> tuple[str, ...]:
        """Every topic, for creation at start-up."""
        return (self.readings, self.backfill, self.readings_dlq, self.news2, self.alerts)
