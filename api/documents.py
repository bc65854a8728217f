"""A closed alert as the document VKP-DHO journals: a FHIR document Bundle of Composition
(the nurse's note), DetectedIssue (the alert) and the Observations that triggered it."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from ingestion.codes import NEWS2_CODE

__all__ = ["alert_document"]

_NAMESPACE = uuid.UUID("5c1e9a3b-7d2f-4e6a-8b0c-1f3d5e7a9b24")
_SEVERITY = {"emergency": "high", "urgent": "moderate"}
_ALERT_CODES = {
    "news2": (NEWS2_CODE, "http://snomed.info/sct", "NEWS2 early warning"),
    "missing-measurement": (
        "missing-measurement",
        "https://malestrom.no/fhir/CodeSystem/alert-kind",
        "Expected measurement missing",
    ),
}


def alert_document(
    alert: dict[str, Any], observations: list[dict[str, Any]], *, now: dt.datetime
) -> dict[str, Any]:
    """Render a resolved alert, with the Observations it rests on, as a document Bundle."""
    subject = {
        "identifier": {"system": alert["identifier_system"], "value": alert["identifier_value"]}
    }
    issue_url = _urn(alert["id"], "DetectedIssue")
    obs_urls = [_urn(o["id"], "Observation") for o in observations]
    code, system, display = _ALERT_CODES[alert["kind"]]
    detected_issue = {
        "resourceType": "DetectedIssue",
        "id": str(uuid.uuid5(_NAMESPACE, f"{alert['id']}|DetectedIssue")),
        "status": "final",
        "code": {"coding": [{"system": system, "code": code, "display": display}]},
        "severity": _SEVERITY.get(alert["level"], "moderate"),
        "patient": subject,
        "identifiedDateTime": _instant(alert["raised_at"]),
        "implicated": [{"reference": url} for url in obs_urls],
        "detail": alert["reason"],
        "mitigation": [
            {
                "action": {"text": alert["resolution_note"]},
                "date": _instant(alert["resolved_at"]),
                "author": {"display": alert["resolved_by"]},
            }
        ],
    }
    composition = {
        "resourceType": "Composition",
        "id": str(uuid.uuid5(_NAMESPACE, f"{alert['id']}|Composition")),
        "status": "final",
        "type": {
            "coding": [
                {"system": "http://loinc.org", "code": "11506-3", "display": "Progress note"}
            ]
        },
        "subject": subject,
        "date": _instant(now),
        "author": [{"display": alert["resolved_by"]}],
        "title": f"Varsel fra hjemmemåling: {display}",
        "section": [
            {
                "title": "Varsel",
                "text": _narrative(alert["reason"]),
                "entry": [{"reference": issue_url}, *({"reference": u} for u in obs_urls)],
            },
            {"title": "Vurdering og tiltak", "text": _narrative(alert["resolution_note"])},
        ],
    }
    entries = [(_urn(alert["id"], "Composition"), composition), (issue_url, detected_issue)]
    entries += list(zip(obs_urls, observations, strict=True))
    return {
        "resourceType": "Bundle",
        "type": "document",
        "identifier": {
            "system": "urn:ietf:rfc:3986",
            "value": _urn(alert["id"], "Bundle"),
        },
        "timestamp": _instant(now),
        "entry": [{"fullUrl": url, "resource": resource} for url, resource in entries],
    }


def _urn(alert_id: str, what: str) -> str:
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, f'{alert_id}|{what}')}"


def _narrative(text: str) -> dict[str, str]:
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return {
        "status": "generated",
        "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{escaped}</div>',
    }


def _instant(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
