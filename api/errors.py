"""The one exception handler: domain errors → FHIR OperationOutcome with the right status."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from api.auth.errors import AuthError, auth_error_response
from ingestion.exceptions import InvalidReadingError, UnavailableError
from ingestion.outcomes import Issue
from ingestion.responses import invalid_response, outcome_response, unavailable_response

__all__ = ["install_error_handlers"]


def install_error_handlers(app: FastAPI) -> None:
    """Map every error the API can meet to an OperationOutcome."""

    @app.exception_handler(AuthError)
    async def refused(_request: Request, exc: AuthError) -> Response:
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
    async def http(_request: Request, exc: HTTPException) -> Response:
        code = "not-found" if exc.status_code == 404 else "processing"
        return outcome_response(exc.status_code, [Issue("error", code, str(exc.detail))])
