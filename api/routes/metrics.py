"""``GET /metrics``: the API's metrics in the Prometheus text format, for operators (the
``admin`` scope, as the access log; Prometheus itself scrapes the loopback port of
`api.metrics`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from api.deps import AdminDep
from api.metrics import ApiMetrics

__all__ = ["router"]

router = APIRouter(tags=["operations"])


@router.get("/metrics", response_class=Response)
async def read_metrics(request: Request, _principal: AdminDep) -> Response:
    """The API's metrics in the Prometheus text format (operators)."""
    metrics: ApiMetrics = request.app.state.metrics
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
