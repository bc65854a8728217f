"""Edge adapter: vendor JSON through device-mapping templates (``/ingest``).

``GET /ingest/templates`` lists the templates; ``POST /ingest/{template}`` maps one vendor payload
to Observations, all or nothing: ``201`` (or ``200`` when every reading was already known) with
a ``batch-response`` Bundle of their locations, ``422`` naming the failed rule or the offending
vendor element (JSONPath), ``404`` for an unknown template.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ingestion.exceptions import InvalidReadingError, UnavailableError
from ingestion.mapping import Template, apply_template
from ingestion.outcomes import Issue, operation_outcome
from ingestion.receiver import CORRELATION_HEADER, ReceiverDep, accept, correlation_of, read_json
from ingestion.responses import (
    FhirResponse,
    invalid_response,
    outcome_response,
    unavailable_response,
)

__all__ = ["router"]

router = APIRouter(prefix="/ingest", tags=["ingestion"])


def get_templates(request: Request) -> dict[str, Template]:
    """Dependency: the templates loaded at start-up."""
    templates: dict[str, Template] = request.app.state.templates
    return templates


TemplatesDep = Annotated[dict[str, Template], Depends(get_templates)]


@router.get("/templates")
async def list_templates(templates: TemplatesDep) -> dict[str, Any]:
    """The device-mapping templates this deployment has, by name."""
    return {
        "templates": [
            {
                "name": t.name,
                "description": t.description,
                "codes": [m.code for m in t.measurements],
                "example": t.example,
            }
            for t in templates.values()
        ]
    }


@router.post("/{name}")
async def post_vendor(
    name: str, request: Request, receiver: ReceiverDep, templates: TemplatesDep
) -> Response:
    """Map a vendor payload with the named template and accept its readings."""
    headers = {CORRELATION_HEADER: correlation_of(request)}
    template = templates.get(name)
    if template is None:
        issue = Issue("error", "not-found", f"no template {name!r}; see GET /ingest/templates")
        return outcome_response(404, [issue], headers)
    try:
        payload = await read_json(request)
        readings = apply_template(
            template, payload, received=dt.datetime.now(dt.UTC), mode=receiver.mode
        )
        measurements = [r.measurement for r in readings]
        sender = receiver.sender_of(request)
        known = await accept(receiver, measurements, headers[CORRELATION_HEADER], sender)
    except InvalidReadingError as exc:
        receiver.meter.refused(exc.code)
        response = invalid_response(exc)
        response.headers.update(headers)
        return response
    except UnavailableError as exc:
        receiver.meter.refused("transient")
        response = unavailable_response(exc)
        response.headers.update(headers)
        return response
    entries = [
        {
            "response": {
                "status": "200 OK" if r.measurement.id in known else "201 Created",
                "location": f"Observation/{r.measurement.id}",
                **({"outcome": operation_outcome(r.warnings)} if r.warnings else {}),
            }
        }
        for r in readings
    ]
    status = 200 if all(r.measurement.id in known for r in readings) else 201
    body = {"resourceType": "Bundle", "type": "batch-response", "entry": entries}
    return FhirResponse(body, status_code=status, headers=headers)
