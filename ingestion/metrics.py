"""The ingest meter port: what the HTTP edge counts. The API implements it with Prometheus
(`api.metrics`); the receiver's own tests count nothing."""

from __future__ import annotations

from typing import Protocol

__all__ = ["IngestMeter", "NullMeter"]


class IngestMeter(Protocol):
    """Port: what the HTTP edge counts (the API implements it with Prometheus)."""

    def accepted(self, lane: str, count: int) -> None:
        """``count`` readings published on ``lane`` (live or backfill)."""

    def refused(self, code: str, count: int = 1) -> None:
        """``count`` readings (or one whole request) refused with FHIR issue type ``code``."""

    def published(self, lane: str, seconds: float) -> None:
        """One publish to the broker took ``seconds`` until it was acknowledged."""


class NullMeter:
    """An `IngestMeter` that counts nothing (tests of the receiver alone)."""

    def accepted(self, lane: str, count: int) -> None:
        """Count nothing."""

    def refused(self, code: str, count: int = 1) -> None:
        """Count nothing."""

    def published(self, lane: str, seconds: float) -> None:
        """Count nothing."""
