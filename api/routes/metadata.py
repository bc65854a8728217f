"""``GET /fhir/metadata``: the CapabilityStatement, made from the routes the app really has
and the parameter tables the routes really read, so that it cannot drift from them."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from api.routes import params as p
from ingestion.responses import FhirResponse

__all__ = ["capability_statement", "router"]

router = APIRouter(tags=["fhir"])

_SECURITY = "http://terminology.hl7.org/CodeSystem/restful-security-service"
_TYPES = {q.name: q.type for q in p.SEARCH} | {"date": "date", "patient.identifier": "token"}
_OPERATION_PARAMS: dict[str, tuple[p.Param, ...]] = {"lastn": p.LASTN, "stats": p.STATS}
_DEFINITIONS = {
    "lastn": "http://hl7.org/fhir/OperationDefinition/Observation-lastn",
    "stats": "http://hl7.org/fhir/OperationDefinition/Observation-stats",
    "document": "http://hl7.org/fhir/OperationDefinition/Composition-document",
}


@router.get("/fhir/metadata")
async def metadata(request: Request) -> Response:
    """What this server supports: resources, interactions, search parameters, operations,
    security (HelseID and ID-porten tokens bound with DPoP)."""
    base = str(request.base_url).rstrip("/") + "/fhir"
    return FhirResponse(capability_statement(request.app.openapi()["paths"], base=base))


def capability_statement(paths: dict[str, dict[str, Any]], *, base: str) -> dict[str, Any]:
    """The CapabilityStatement of the routes in an OpenAPI ``paths`` object."""
    resources: dict[str, dict[str, Any]] = {}
    system: list[dict[str, str]] = []
    operations: list[dict[str, Any]] = []
    for path, methods in sorted(paths.items()):
        for method, operation in methods.items():
            _describe(path, method.upper(), operation, resources, system, operations)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-01",
        "publisher": "malestrom",
        "kind": "instance",
        "software": {"name": "malestrom", "version": "0.1.0"},
        "implementation": {"description": "malestrom: home measurements and NEWS2", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["json", "application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "security": _security(),
                "resource": [resources[name] for name in sorted(resources)],
                "interaction": system,
                "operation": operations,
            }
        ],
    }


def _describe(
    path: str,
    method: str,
    spec: dict[str, Any],
    resources: dict[str, dict[str, Any]],
    system: list[dict[str, str]],
    operations: list[dict[str, Any]],
) -> None:
    if path == "/fhir" and method == "POST":
        system.extend([{"code": "batch"}, {"code": "transaction"}])
        return
    operation = re.search(r"/\$([a-z]+)$", path)
    if operation:
        name = operation.group(1)
        entry = {"name": name, "definition": _DEFINITIONS.get(name, name)}
        if name in _OPERATION_PARAMS:
            names = ", ".join(q.name for q in _OPERATION_PARAMS[name])
            entry["documentation"] = f"GET {path} with {names}"
        else:
            entry["documentation"] = f"GET {path}"
        if entry not in operations:
            operations.append(entry)
        return
    match = re.fullmatch(r"/fhir/([A-Z][A-Za-z]+)(/\{[a-z_]+\}|/_search)?", path)
    if not match:
        return
    name, tail = match.group(1), match.group(2)
    code = {
        ("GET", None): "search-type",
        ("POST", "/_search"): "search-type",
        ("POST", None): "create",
        ("GET", "/{resource_id}"): "read",
    }.get((method, tail))
    if code is None:
        return
    resource = resources.setdefault(name, {"type": name, "interaction": []})
    if {"code": code} not in resource["interaction"]:
        resource["interaction"].append({"code": code})
    if code == "search-type" and method == "GET":  # the parameters the route documents
        resource["searchParam"] = [
            {
                "name": q["name"],
                "type": _TYPES.get(q["name"], "string"),
                "documentation": q.get("description", ""),
            }
            for q in spec.get("parameters", [])
            if q.get("in") == "query"
        ]
    if code == "read":
        resource["versioning"] = "versioned"
        resource["readHistory"] = False
    if code == "create":
        resource["conditionalCreate"] = False


def _security() -> dict[str, Any]:
    return {
        "cors": False,
        "service": [
            {
                "coding": [{"system": _SECURITY, "code": "OAuth"}],
                "text": "HelseID (staff, systems) and ID-porten/Helsenorge (citizens)",
            }
        ],
        "description": (
            "Every request carries an access token bound to the caller's key with DPoP "
            "(RFC 9449): 'Authorization: DPoP <token>' and a 'DPoP' proof header. Scopes "
            "nhn:malestrom/ingest, read, alerts, settings, admin and citizen. Staff tokens come "
            "from HelseID at security level 4; citizens see only their own data."
        ),
    }
