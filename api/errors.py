"""The one exception handler: domain errors → FHIR OperationOutcome with the right status.

A database that is down or slow answers 503 with ``Retry-After`` (never a hang, never a 500);
anything unexpected is a 500 OperationOutcome that carries the correlation id, and is logged
with it — never a plain-text error page.
"""

from __future__ import annotations

import logging

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException
from starlette.responses import Response

from api.auth.access import AccessDeniedError, record_refusal
from api.auth.errors import AuthError, auth_error_response
from api.requests_log import path_template
from ingestion.exceptions import InvalidReadingError, UnavailableError
from ingestion.outcomes import Issue
from ingestion.responses import invalid_response, outcome_response, unavailable_response

__all__ = ["install_error_handlers", "note_refusal"]

log = logging.getLogger(__name__)


def install_error_handlers(app: FastAPI) -> None:
    """Map every error the API can meet to an OperationOutcome."""

    @app.exception_handler(AuthError)
    async def refused(request: Request, exc: AuthError) -> Response:
        await note_refusal(request, exc)
        return auth_error_response(exc)

    @app.exception_handler(InvalidReadingError)
    async def invalid(_request: Request, exc: InvalidReadingError) -> Response:
        return invalid_response(exc)

    @app.exception_handler(UnavailableError)
    async def unavailable(_request: Request, exc: UnavailableError) -> Response:
        return unavailable_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation(_request: Request, exc: RequestValidationError) -> Response:
        issues = [
            Issue("error", "invalid", str(e.get("msg")), ".".join(str(p) for p in e["loc"][1:]))
            for e in exc.errors()
        ]
        return outcome_response(400, issues)

    @app.exception_handler(HTTPException)
    async def http(request: Request, exc: HTTPException) -> Response:
        code = {404: "not-found", 405: "not-supported"}.get(exc.status_code, "processing")
        detail, headers = str(exc.detail), dict(exc.headers or {})
        if exc.status_code == 405:  # every method of the path, not only those of one route
            operations = app.openapi()["paths"].get(path_template(request.scope), {})
            allowed = ", ".join(sorted(m.upper() for m in operations)) or headers.get("Allow", "")
            headers["Allow"] = allowed
            detail = f"{detail}; this path takes {allowed}"
        issue = Issue("error", code, detail)
        return outcome_response(exc.status_code, [issue], headers=headers)

    @app.exception_handler(PoolTimeout)
    @app.exception_handler(psycopg.OperationalError)
    async def database_down(_request: Request, exc: Exception) -> Response:
        log.warning("database unavailable: %s", type(exc).__name__)
        return unavailable_response(UnavailableError("the database is unavailable"))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        correlation = getattr(request.state, "correlation_id", None) or "none"
        log.error("unexpected %s (correlation id %s)", type(exc).__name__, correlation,
                  exc_info=exc)  # fmt: skip
        text = f"an unexpected error; quote correlation id {correlation} when you report it"
        return outcome_response(500, [Issue("error", "exception", text)],
                                headers={"correlation-id": correlation})  # fmt: skip


async def note_refusal(request: Request, exc: AuthError) -> None:
    """Access-log a refused read of named patients' data, on a connection of its own (the
    request's own transaction is rolled back with the error). Best effort: the answer is a
    refusal and shows nothing, so a database that fails here does not change it."""
    if not isinstance(exc, AccessDeniedError):
        return
    correlation = getattr(request.state, "correlation_id", None) or "none"
    try:
        async with request.app.state.pool.connection() as conn:
            await record_refusal(
                conn=conn,
                refusal=exc,
                resource=path_template(request.scope),
                correlation_id=correlation,
            )
    except (psycopg.Error, PoolTimeout) as error:
        log.warning("a refused read went unrecorded: %s (correlation id %s)",
                    type(error).__name__, correlation)  # fmt: skip
