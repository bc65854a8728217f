"""The OpenAPI document as the contract: every status an operation can answer, each error as
a FHIR OperationOutcome (``application/fhir+json``), FastAPI's 422 validation schema replaced
by what the API really sends (400 for a malformed parameter or field, 422 for a rule)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

__all__ = ["OPERATION_OUTCOME", "install_contract"]

OPERATION_OUTCOME: dict[str, Any] = {
    "type": "object",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"type": "string", "enum": ["OperationOutcome"]},
        "issue": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["severity", "code"],
                "properties": {
                    "severity": {"type": "string"},
                    "code": {"type": "string"},
                    "diagnostics": {"type": "string"},
                    "expression": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}
_REF = {"$ref": "#/components/schemas/OperationOutcome"}
_ERRORS = {
    "400": "a malformed parameter or field (named in expression)",
    "401": "no valid DPoP-bound token (WWW-Authenticate says why)",
    "403": "not allowed: scope, organisation or person",
    "404": "no such resource",
    "405": "method not allowed (see Allow)",
    "406": "a format other than FHIR JSON was asked for (Accept, _format)",
    "409": "a conflicting state (e.g. an alert already resolved)",
    "413": "the body is too large",
    "415": "the Content-Type is not one this endpoint takes",
    "422": "well-formed but against a rule",
    "500": "an unexpected error (with a correlation id)",
    "503": "a service is unavailable; retry after Retry-After",
}
_PUBLIC = {"/healthz", "/fhir/metadata"}
_JSON_BODY = {"type": "object", "description": "a FHIR resource (or vendor JSON), at most 1 MiB"}
# Raw-request endpoints: the body each reads itself.
_BODIES = {
    ("/fhir", "post"): "a Bundle (batch, transaction or collection) of Observations",
    ("/fhir/Observation", "post"): "one Observation",
    ("/ingest/{name}", "post"): "a vendor payload the named template maps",
}
_STREAMS = {"/api/v1/alerts/stream"}
_PROMETHEUS = {"/metrics"}  # the Prometheus text format


def _fhir(path: str, method: str) -> bool:
    """Routes whose successful answers are FHIR JSON."""
    return (
        path.startswith("/fhir")
        or (path.startswith("/ingest/") and method == "post")
        or path.endswith("/$document")
        or path in ("/api/v1/me/observations", "/api/v1/me/export")
    )


def _success(path: str, method: str, operation: dict[str, Any]) -> None:
    responses = operation["responses"]
    ok = responses.pop("200", {"description": "Successful Response"})
    if path in _STREAMS:
        ok["content"] = {"text/event-stream": {"schema": {"type": "string"}}}
    elif path in _PROMETHEUS:
        ok["content"] = {"text/plain": {"schema": {"type": "string"}}}
    elif _fhir(path, method):
        ok["content"] = {"application/fhir+json": {"schema": {"type": "object"}}}
    responses["200"] = ok
    if (path, method) in _BODIES:
        responses["201"] = {"description": "accepted: new readings", **{"content": ok["content"]}}
        operation["requestBody"] = {
            "required": True,
            "description": _BODIES[path, method],
            "content": {
                t: {"schema": _JSON_BODY} for t in ("application/fhir+json", "application/json")
            },
        }


def _errors(path: str) -> dict[str, Any]:
    codes = dict(_ERRORS)
    if not path.startswith("/fhir"):
        codes.pop("406")
    if path in _PUBLIC:
        for status in ("401", "403", "409", "413", "415", "422"):
            codes.pop(status)
    return {
        status: {
            "description": text,
            "content": {
                "application/fhir+json": {"schema": _REF},
                "application/json": {"schema": _REF},
            },
        }
        for status, text in codes.items()
    }


def install_contract(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the contract described above (built once)."""

    def contract() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title, version=app.version, routes=app.routes, description=app.description
            )
            components = document.setdefault("components", {}).setdefault("schemas", {})
            components.pop("HTTPValidationError", None)
            components.pop("ValidationError", None)
            components["OperationOutcome"] = OPERATION_OUTCOME
            for path, operations in document.get("paths", {}).items():
                for method, operation in operations.items():
                    responses = operation.setdefault("responses", {})
                    responses.pop("422", None)
                    _success(path, method, operation)
                    for status, answer in _errors(path).items():
                        responses.setdefault(status, answer)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = contract  # type: ignore[method-assign]
