"""FHIR OperationOutcome issues: what went wrong, where (FHIRPath), and how bad."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ingestion.exceptions import InvalidReadingError

__all__ = ["Issue", "issue_from_error", "operation_outcome"]


@dataclass(frozen=True, slots=True)
class Issue:
    """One OperationOutcome issue.

    ``code`` is a FHIR IssueType code (``invalid``, ``required``, ``value``, ``structure``,
    ``code-invalid``, ``not-supported``, ``business-rule``, ``too-costly``, ``transient``,
    ``informational``…).
    """

    severity: str
    code: str
    diagnostics: str
    expression: str = ""

    def to_fhir(self) -> dict[str, Any]:
        """Render as an ``OperationOutcome.issue`` element."""
        out: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": self.diagnostics,
        }
        if self.expression:
            out["expression"] = [self.expression]
        return out


def issue_from_error(error: InvalidReadingError, *, prefix: str = "") -> Issue:
    """Turn a domain error into an error issue, its expression placed under ``prefix``."""
    expression = error.expression
    if prefix and not expression.startswith(prefix):
        expression = f"{prefix}.{expression}" if expression else prefix
    return Issue("error", error.code, error.message, expression)


def operation_outcome(issues: Iterable[Issue]) -> dict[str, Any]:
    """Render issues as an OperationOutcome resource (an informational one when empty)."""
    rendered = [i.to_fhir() for i in issues]
    if not rendered:
        rendered = [{"severity": "information", "code": "informational", "diagnostics": "ok"}]
    return {"resourceType": "OperationOutcome", "issue": rendered}
